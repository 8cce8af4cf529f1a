/* report.h -- perftest-style latency reports for flashmeta's benchmarks.
 *
 * A benchmark collects raw samples (nanoseconds) per measured case, drops a
 * warm-up prefix, and hands them here.  fm_report_row() sorts the samples
 * and prints one row under a header with a unit in every column:
 *
 *   case                 n  t_min[nsec]  t_typical[nsec]  t_avg[nsec]  99%[nsec]  99.9%[nsec]  t_max[nsec]
 *
 * "typical" is the median.  Every row is also appended to a JSON document
 * (fm_report_json_*) together with the run's parameters, so tools read the
 * same figures people see.
 */
#ifndef FM_BENCH_REPORT_H
#define FM_BENCH_REPORT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

struct fm_report_stats {
	size_t n;
	double min, median, avg, p99, p999, max; /* in the samples' unit */
};

/* Monotonic clock in nanoseconds. */
uint64_t fm_now_ns(void);

/* Sorts `samples` in place and fills `st`.  n == 0 gives all zeros. */
void fm_report_compute(double *samples, size_t n, struct fm_report_stats *st);

/* Prints the header row; `unit` like "nsec" or "usec". */
void fm_report_header(FILE *out, const char *unit);
/* Prints one row (sorting `samples`) and returns its statistics. */
struct fm_report_stats fm_report_row(FILE *out, const char *name,
				     double *samples, size_t n);

/*
 * JSON: fm_report_json_open() writes `{"benchmark":..., "params":{`,
 * fm_report_json_param*() add parameters, fm_report_json_results() closes
 * params and opens the results array, fm_report_json_result() adds one
 * result object (stats plus free-form extra numeric fields given as
 * alternating name/value pairs ending with NULL), fm_report_json_close()
 * ends the document.  Strings are escaped.
 */
struct fm_json {
	FILE *out;
	int nfields; /* fields written in the current object */
};
void fm_report_json_open(struct fm_json *j, FILE *out, const char *benchmark);
void fm_report_json_param_str(struct fm_json *j, const char *k, const char *v);
void fm_report_json_param_num(struct fm_json *j, const char *k, double v);
void fm_report_json_results(struct fm_json *j);
void fm_report_json_result(struct fm_json *j, const char *name, const char *unit,
			   const struct fm_report_stats *st, ...);
void fm_report_json_close(struct fm_json *j);

#endif /* FM_BENCH_REPORT_H */
