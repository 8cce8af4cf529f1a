/* report.c -- perftest-style latency tables and JSON for the benchmarks. */
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "report.h"

uint64_t fm_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/* Nearest-rank percentile of sorted samples. */
static double percentile(const double *s, size_t n, double p)
{
	size_t rank = (size_t)ceil(p / 100.0 * (double)n);

	if (rank == 0)
		rank = 1;
	return s[rank - 1];
}

void fm_report_compute(double *samples, size_t n, struct fm_report_stats *st)
{
	double sum = 0;

	memset(st, 0, sizeof(*st));
	if (n == 0)
		return;
	qsort(samples, n, sizeof(*samples), cmp_double);
	for (size_t i = 0; i < n; i++)
		sum += samples[i];
	st->n = n;
	st->min = samples[0];
	st->max = samples[n - 1];
	st->median = n % 2 ? samples[n / 2] : (samples[n / 2 - 1] + samples[n / 2]) / 2;
	st->avg = sum / (double)n;
	st->p99 = percentile(samples, n, 99.0);
	st->p999 = percentile(samples, n, 99.9);
}

void fm_report_header(FILE *out, const char *unit)
{
	fprintf(out, "%-36s %9s %12s %16s %12s %12s %13s %12s\n", "case", "n",
		"t_min", "t_typical", "t_avg", "99%", "99.9%", "t_max");
	fprintf(out, "%-36s %9s %12s %16s %12s %12s %13s %12s\n", "", "",
		unit, unit, unit, unit, unit, unit);
}

struct fm_report_stats fm_report_row(FILE *out, const char *name,
				     double *samples, size_t n)
{
	struct fm_report_stats st;

	fm_report_compute(samples, n, &st);
	fprintf(out, "%-36s %9zu %12.2f %16.2f %12.2f %12.2f %13.2f %12.2f\n",
		name, st.n, st.min, st.median, st.avg, st.p99, st.p999, st.max);
	return st;
}

static void json_str(FILE *out, const char *s)
{
	fputc('"', out);
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;

		if (ch == '"' || ch == '\\')
			fprintf(out, "\\%c", ch);
		else if (ch < 0x20)
			fprintf(out, "\\u%04x", ch);
		else
			fputc(ch, out);
	}
	fputc('"', out);
}

static void json_num(FILE *out, double v)
{
	if (isfinite(v))
		fprintf(out, "%.6g", v);
	else
		fputs("null", out);
}

static void json_key(struct fm_json *j, const char *k)
{
	if (j->nfields++)
		fputc(',', j->out);
	json_str(j->out, k);
	fputc(':', j->out);
}

void fm_report_json_open(struct fm_json *j, FILE *out, const char *benchmark)
{
	j->out = out;
	j->nfields = 0;
	fputs("{\"benchmark\":", out);
	json_str(out, benchmark);
	fputs(",\"params\":{", out);
}

void fm_report_json_param_str(struct fm_json *j, const char *k, const char *v)
{
	json_key(j, k);
	json_str(j->out, v);
}

void fm_report_json_param_num(struct fm_json *j, const char *k, double v)
{
	json_key(j, k);
	json_num(j->out, v);
}

void fm_report_json_results(struct fm_json *j)
{
	fputs("},\"results\":[", j->out);
	j->nfields = 0;
}

void fm_report_json_result(struct fm_json *j, const char *name, const char *unit,
			   const struct fm_report_stats *st, ...)
{
	va_list ap;
	const char *k;

	if (j->nfields++)
		fputc(',', j->out);
	fputs("{\"case\":", j->out);
	json_str(j->out, name);
	fputs(",\"unit\":", j->out);
	json_str(j->out, unit);
	fprintf(j->out, ",\"n\":%zu,\"t_min\":", st->n);
	json_num(j->out, st->min);
	fputs(",\"t_typical\":", j->out);
	json_num(j->out, st->median);
	fputs(",\"t_avg\":", j->out);
	json_num(j->out, st->avg);
	fputs(",\"p99\":", j->out);
	json_num(j->out, st->p99);
	fputs(",\"p99_9\":", j->out);
	json_num(j->out, st->p999);
	fputs(",\"t_max\":", j->out);
	json_num(j->out, st->max);
	va_start(ap, st);
	while ((k = va_arg(ap, const char *)) != NULL) {
		double v = va_arg(ap, double);

		fputc(',', j->out);
		json_str(j->out, k);
		fputc(':', j->out);
		json_num(j->out, v);
	}
	va_end(ap);
	fputc('}', j->out);
}

void fm_report_json_close(struct fm_json *j)
{
	fputs("]}\n", j->out);
	fflush(j->out);
}
