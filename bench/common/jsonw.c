/* jsonw.c -- a small streaming JSON writer (jsonw.h). */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>

#include "jsonw.h"

void fm_jw_init(struct fm_jw *w, FILE *f)
{
	w->f = f;
	w->depth = 0;
	w->first[0] = true;
}

static void str(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;

		if (ch == '"' || ch == '\\')
			fprintf(f, "\\%c", ch);
		else if (ch < 0x20)
			fprintf(f, "\\u%04x", ch);
		else
			fputc(ch, f);
	}
	fputc('"', f);
}

/* the separator and the key of the next value */
static void key(struct fm_jw *w, const char *k)
{
	if (!w->first[w->depth])
		fputc(',', w->f);
	w->first[w->depth] = false;
	if (k) {
		str(w->f, k);
		fputc(':', w->f);
	}
}

static void jw_open(struct fm_jw *w, const char *k, char o, char c)
{
	key(w, k);
	if (w->depth + 1 >= 32)
		abort();
	fputc(o, w->f);
	w->depth++;
	w->first[w->depth] = true;
	w->close[w->depth] = c;
}

void fm_jw_obj(struct fm_jw *w, const char *k)
{
	jw_open(w, k, '{', '}');
}

void fm_jw_arr(struct fm_jw *w, const char *k)
{
	jw_open(w, k, '[', ']');
}

void fm_jw_end(struct fm_jw *w)
{
	if (w->depth == 0)
		abort();
	fputc(w->close[w->depth--], w->f);
	if (w->depth == 0)
		fputc('\n', w->f);
}

void fm_jw_str(struct fm_jw *w, const char *k, const char *v)
{
	key(w, k);
	str(w->f, v ? v : "");
}

void fm_jw_num(struct fm_jw *w, const char *k, double v)
{
	key(w, k);
	if (isfinite(v))
		fprintf(w->f, "%.6g", v);
	else
		fputs("null", w->f);
}

void fm_jw_u64(struct fm_jw *w, const char *k, uint64_t v)
{
	key(w, k);
	fprintf(w->f, "%" PRIu64, v);
}

void fm_jw_bool(struct fm_jw *w, const char *k, bool v)
{
	key(w, k);
	fputs(v ? "true" : "false", w->f);
}

int fm_jw_file(struct fm_jw *w, const char *k, const char *path)
{
	FILE *in = fopen(path, "r");
	int ch, pending = -1; /* one character behind: the last newline is dropped */

	key(w, k);
	if (!in) {
		fputs("null", w->f);
		return -errno;
	}
	while ((ch = fgetc(in)) != EOF) {
		if (pending >= 0)
			fputc(pending, w->f);
		pending = ch;
	}
	if (pending >= 0 && pending != '\n')
		fputc(pending, w->f);
	else if (pending < 0)
		fputs("null", w->f);
	fclose(in);
	return 0;
}
