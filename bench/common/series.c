/* series.c -- samples kept per round (see series.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "series.h"

static __attribute__((noreturn)) void oom(void)
{
	fprintf(stderr, "bench: out of memory for samples\n");
	exit(1);
}

static void grow(double **p, size_t *cap, size_t need)
{
	size_t nc;
	double *n;

	if (need <= *cap)
		return;
	nc = *cap ? *cap * 2 : 1024;
	while (nc < need)
		nc *= 2;
	n = realloc(*p, nc * sizeof(*n));
	if (!n)
		oom();
	*p = n;
	*cap = nc;
}

void se_add(struct series *se, double v)
{
	grow(&se->s, &se->cap, se->n + 1);
	se->s[se->n++] = v;
	se->used = true;
}

void se_add_n(struct series *se, const double *v, size_t n)
{
	if (!n)
		return;
	grow(&se->s, &se->cap, se->n + n);
	memcpy(se->s + se->n, v, n * sizeof(*v));
	se->n += n;
	se->used = true;
}

void se_round_begin(struct series *all, size_t n)
{
	for (size_t i = 0; i < n; i++)
		all[i].round0 = all[i].n;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static double median_of(double *v, size_t n)
{
	qsort(v, n, sizeof(*v), cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

void se_round_end(struct series *all, size_t n, bool keep)
{
	for (size_t i = 0; i < n; i++) {
		struct series *se = &all[i];
		size_t k = se->n - se->round0;
		double *copy;

		if (!keep || k == 0) {
			se->n = se->round0;
			continue;
		}
		copy = malloc(k * sizeof(*copy));
		if (!copy)
			oom();
		memcpy(copy, se->s + se->round0, k * sizeof(*copy));
		grow(&se->rmed, &se->capr, se->nr + 1);
		se->rmed[se->nr++] = median_of(copy, k);
		if (!se->min_round_n || k < se->min_round_n)
			se->min_round_n = k;
		free(copy);
	}
}

void se_stats(const struct series *se, struct series_stats *out)
{
	double *copy;

	memset(out, 0, sizeof(*out));
	if (se->n == 0 || se->nr == 0)
		return;
	copy = malloc((se->n > se->nr ? se->n : se->nr) * sizeof(*copy));
	if (!copy)
		oom();
	memcpy(copy, se->s, se->n * sizeof(*copy));
	fm_report_compute(copy, se->n, &out->st);
	out->pooled_median = out->st.median;
	memcpy(copy, se->rmed, se->nr * sizeof(*copy));
	out->st.median = median_of(copy, se->nr);
	out->rounds = se->nr;
	out->min_round_n = se->min_round_n;
	free(copy);
}

double *se_sorted(const struct series *se, size_t *n)
{
	double *copy;
	struct fm_report_stats st;

	*n = se->n;
	if (!se->n)
		return NULL;
	copy = malloc(se->n * sizeof(*copy));
	if (!copy)
		oom();
	memcpy(copy, se->s, se->n * sizeof(*copy));
	fm_report_compute(copy, se->n, &st); /* sorts */
	return copy;
}

struct se_ratio se_ratio(const struct series *a, const struct series *b)
{
	struct series_stats sa, sb;
	struct se_ratio r = { 0, 0, 0 };
	size_t n = a->nr < b->nr ? a->nr : b->nr;

	se_stats(a, &sa);
	se_stats(b, &sb);
	if (sb.st.median > 0)
		r.typ = sa.st.median / sb.st.median;
	for (size_t i = 0; i < n; i++) {
		double x = b->rmed[i] > 0 ? a->rmed[i] / b->rmed[i] : 0;

		if (i == 0 || x < r.lo)
			r.lo = x;
		if (i == 0 || x > r.hi)
			r.hi = x;
	}
	return r;
}

void se_free(struct series *se)
{
	free(se->s);
	free(se->rmed);
	se->s = se->rmed = NULL;
	se->n = se->cap = se->nr = se->capr = se->round0 = se->min_round_n = 0;
	se->used = false;
}

void se_header(const char *unit)
{
	fm_report_header(stdout, unit);
}

double se_row(const struct series *se, const char *label, struct series_stats *out)
{
	struct series_stats ss;

	se_stats(se, &ss);
	/* the columns of fm_report_row, typical = median of round medians */
	printf("%-36s %9zu %12.2f %16.2f %12.2f %12.2f %13.2f %12.2f\n",
	       label ? label : se->name, ss.st.n, ss.st.min, ss.st.median, ss.st.avg,
	       ss.st.p99, ss.st.p999, ss.st.max);
	if (out)
		*out = ss;
	return ss.st.median;
}
