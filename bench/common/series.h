/* series.h -- samples kept per round, for benchmarks measured in
 * interleaved rounds.  "typical" is the median of the per-round medians (a
 * round disturbed by another job on the machine moves one of them, not
 * the figure); n, min, avg and the tails are over all samples pooled.
 *
 * A benchmark keeps an array of series (one per table row), calls
 * se_round_begin() on all of them, adds samples, and se_round_end() with
 * keep = false for the warm-up round (its samples are dropped).  Out of
 * memory ends the process (exit 1, atexit handlers run).
 */
#ifndef FM_BENCH_SERIES_H
#define FM_BENCH_SERIES_H

#include <stdbool.h>
#include <stddef.h>

#include "report.h"

struct series {
	const char *name;       /* table row */
	const char *unit;       /* "nsec", "Mops/s", ... */
	double *s;              /* samples of the kept rounds */
	size_t n, cap;
	size_t round0;          /* first sample of the round in progress */
	double *rmed;           /* one median per kept round */
	size_t nr, capr;
	size_t min_round_n;     /* fewest samples of a kept round that had any */
	bool used;
};

struct series_stats {
	struct fm_report_stats st; /* pooled; st.median = median of round medians */
	double pooled_median;
	size_t rounds;             /* kept rounds that had samples */
	size_t min_round_n;        /* ... the fewest samples one of them had */
};

void se_add(struct series *se, double v);
/* n values at once (one round's samples of a process, say) */
void se_add_n(struct series *se, const double *v, size_t n);
/* every series: start a round / end it (keep = false drops its samples) */
void se_round_begin(struct series *all, size_t n);
void se_round_end(struct series *all, size_t n, bool keep);
void se_stats(const struct series *se, struct series_stats *out);
/* every sample of the kept rounds, sorted ascending (for CDFs); NULL
 * when there is none; the caller frees it */
double *se_sorted(const struct series *se, size_t *n);
void se_header(const char *unit);
/* one table row; returns the typical value (median of round medians) */
double se_row(const struct series *se, const char *label, struct series_stats *out);
/* a's typical / b's typical, and the smallest and largest ratio of their
 * medians within one round (rounds both kept, in order): how far one
 * round's comparison strays from the reported one */
struct se_ratio {
	double typ, lo, hi; /* 0 where b has no samples */
};
struct se_ratio se_ratio(const struct series *a, const struct series *b);
/* free the samples; the series may be used again */
void se_free(struct series *se);

#endif /* FM_BENCH_SERIES_H */
