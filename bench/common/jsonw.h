/* jsonw.h -- a small streaming JSON writer for the benchmarks' nested
 * reports (report.h's fm_report_json_* writes the flat kind).
 *
 *   struct fm_jw w;
 *   fm_jw_init(&w, f);
 *   fm_jw_obj(&w, NULL);              {
 *   fm_jw_num(&w, "clients", 2);        "clients":2,
 *   fm_jw_arr(&w, "points");            "points":[
 *   fm_jw_obj(&w, NULL);                  {
 *   fm_jw_end(&w);                        }
 *   fm_jw_end(&w);                      ]
 *   fm_jw_end(&w);                    }
 *
 * A key is given inside an object and NULL inside an array (or at the
 * top).  Strings are escaped; a number that is not finite is null.  Depth
 * at most 32; deeper is a programming error (abort).
 */
#ifndef FM_BENCH_JSONW_H
#define FM_BENCH_JSONW_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

struct fm_jw {
	FILE *f;
	int depth;
	bool first[32];   /* nothing written yet at this depth */
	char close[32];   /* '}' or ']' */
};

void fm_jw_init(struct fm_jw *w, FILE *f);
void fm_jw_obj(struct fm_jw *w, const char *key);
void fm_jw_arr(struct fm_jw *w, const char *key);
void fm_jw_end(struct fm_jw *w);
void fm_jw_str(struct fm_jw *w, const char *key, const char *v);
void fm_jw_num(struct fm_jw *w, const char *key, double v);
void fm_jw_u64(struct fm_jw *w, const char *key, uint64_t v);
void fm_jw_bool(struct fm_jw *w, const char *key, bool v);
/* the JSON document in file `path`, copied verbatim as the value (its final
 * newline dropped); null when it cannot be read.  The file is trusted to
 * hold one valid JSON value (one this writer wrote).  Returns 0 or -errno. */
int fm_jw_file(struct fm_jw *w, const char *key, const char *path);

#endif /* FM_BENCH_JSONW_H */
