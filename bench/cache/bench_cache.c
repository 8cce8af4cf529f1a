/* bench_cache.c -- lookup cost of the confirmation cache vs a flat bitmap.
 *
 * For R in {10^3, 10^4, 10^5, 10^6} ranges (lengths and gaps uniform in
 * [1, 2*avg-1], volume = what they span), the same content is loaded into:
 *   cache        fm_cache_lookup (the structure under test), run computed
 *   cache+rwlock the same call inside a shared pthread_rwlock read lock: what
 *                a per-mapping rwlock would add (its counter line bounces)
 *   bitmap       a flat bit per grain, "split?" + run by ctz over words:
 *                the baseline (what SVC/Ceph keep; never evicted)
 *   bitmap-probe the same bitmap, "split?" only
 *   roaring      CRoaring roaring_bitmap_contains after run_optimize (run
 *                containers = merged ranges); "split?" only
 *   sorted       sorted array of [start, last] + binary search, run computed
 * Lookups are uniform random grains (inline xorshift) or sequential.  Each
 * timed sample is a batch of --batch lookups (ns/lookup reported); the first
 * 10% of samples are warm-up and dropped.  With 2 threads both threads look
 * up concurrently; samples of both are pooled.
 */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "flashmeta/cache.h"
#include "report.h"
#ifdef FM_HAVE_ROARING
#include <roaring/roaring.h>
#endif

struct range {
	uint64_t s, l;
};

struct content {
	uint64_t nr, grains;
	struct range *r;   /* sorted */
	uint64_t *bits;	   /* bitmap */
	struct fm_cache *c;
	pthread_rwlock_t rw;
#ifdef FM_HAVE_ROARING
	roaring_bitmap_t *rb;
#endif
};

enum kind { K_CACHE, K_CACHE_RW, K_BITMAP, K_BITMAP_PROBE, K_ROARING, K_SORTED, K_N };
static const char *kind_name[K_N] = { "cache", "cache+rwlock", "bitmap", "bitmap-probe",
				      "roaring", "sorted" };

static uint64_t xs(uint64_t *s)
{
	uint64_t x = *s;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return *s = x;
}

static inline bool bm_lookup(const struct content *ct, uint64_t g, uint64_t *run)
{
	const uint64_t *b = ct->bits;

	if (!((b[g / 64] >> (g % 64)) & 1))
		return false;
	uint64_t n = 0, x = g;

	for (;;) {
		uint64_t w = ~b[x / 64] >> (x % 64);

		if (w) {
			n += (uint64_t)__builtin_ctzll(w);
			break;
		}
		n += 64 - x % 64;
		x = g + n;
		if (x >= ct->grains)
			break;
	}
	*run = n;
	return true;
}

static inline bool sorted_lookup(const struct content *ct, uint64_t g, uint64_t *run)
{
	uint64_t lo = 0, hi = ct->nr;

	while (lo < hi) { /* first range with l >= g */
		uint64_t mid = (lo + hi) / 2;

		if (ct->r[mid].l < g)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo == ct->nr || ct->r[lo].s > g)
		return false;
	*run = ct->r[lo].l - g + 1;
	return true;
}

struct job {
	const struct content *ct;
	enum kind k;
	bool seq;
	size_t nsamples, batch;
	double *samples;
	uint64_t seed, sink;
	pthread_barrier_t *bar;
};

static void *job_run(void *arg)
{
	struct job *j = arg;
	const struct content *ct = j->ct;
	uint64_t s = j->seed, sink = 0, g = j->seed % ct->grains, run = 0;

	pthread_barrier_wait(j->bar);
	for (size_t i = 0; i < j->nsamples; i++) {
		uint64_t t0 = fm_now_ns();

		for (size_t b = 0; b < j->batch; b++) {
			if (j->seq) {
				if (++g == ct->grains)
					g = 0;
			} else {
				g = (uint64_t)(((unsigned __int128)xs(&s) * ct->grains) >> 64);
			}
			bool hit = false;

			switch (j->k) {
			case K_CACHE:
				hit = fm_cache_lookup(ct->c, 1, g, &run);
				break;
			case K_CACHE_RW:
				pthread_rwlock_rdlock((pthread_rwlock_t *)&ct->rw);
				hit = fm_cache_lookup(ct->c, 1, g, &run);
				pthread_rwlock_unlock((pthread_rwlock_t *)&ct->rw);
				break;
			case K_BITMAP:
				hit = bm_lookup(ct, g, &run);
				break;
			case K_BITMAP_PROBE:
				hit = (ct->bits[g / 64] >> (g % 64)) & 1;
				run = 1;
				break;
			case K_ROARING:
#ifdef FM_HAVE_ROARING
				hit = roaring_bitmap_contains(ct->rb, (uint32_t)g);
				run = 1;
#endif
				break;
			case K_SORTED:
				hit = sorted_lookup(ct, g, &run);
				break;
			default:
				break;
			}
			sink += hit ? run : 0;
		}
		j->samples[i] = (double)(fm_now_ns() - t0) / (double)j->batch;
	}
	j->sink = sink;
	return NULL;
}

/* Runs `threads` jobs; pooled samples minus warm-up in *out (malloc). */
static size_t measure(const struct content *ct, enum kind k, bool seq, int threads,
		      size_t nsamples, size_t batch, double **out)
{
	pthread_t th[2];
	struct job j[2];
	pthread_barrier_t bar;
	size_t warm = nsamples / 10, n = 0;
	double *all = malloc(sizeof(double) * nsamples * (size_t)threads);

	pthread_barrier_init(&bar, NULL, (unsigned)threads);
	for (int t = 0; t < threads; t++) {
		j[t] = (struct job){ .ct = ct, .k = k, .seq = seq, .nsamples = nsamples,
				     .batch = batch, .seed = 0x9E3779B97F4A7C15ull * (t + 1) + 1,
				     .bar = &bar };
		j[t].samples = malloc(sizeof(double) * nsamples);
		pthread_create(&th[t], NULL, job_run, &j[t]);
	}
	for (int t = 0; t < threads; t++) {
		pthread_join(th[t], NULL);
		memcpy(all + n, j[t].samples + warm, (nsamples - warm) * sizeof(double));
		n += nsamples - warm;
		free(j[t].samples);
	}
	pthread_barrier_destroy(&bar);
	*out = all;
	return n;
}

static double build(struct content *ct, uint64_t nr, uint64_t avg, uint64_t *seed)
{
	uint64_t g = 0;

	memset(ct, 0, sizeof(*ct));
	ct->nr = nr;
	ct->r = malloc(nr * sizeof(*ct->r));
	for (uint64_t i = 0; i < nr; i++) {
		g += 1 + xs(seed) % (2 * avg - 1); /* gap >= 1: ranges stay apart */
		ct->r[i].s = g;
		g += xs(seed) % (2 * avg - 1);
		ct->r[i].l = g;
		g++;
	}
	ct->grains = g + 1 + xs(seed) % (2 * avg - 1);
	ct->bits = calloc(ct->grains / 64 + 1, sizeof(uint64_t));
	for (uint64_t i = 0; i < nr; i++)
		for (uint64_t x = ct->r[i].s; x <= ct->r[i].l; x++)
			ct->bits[x / 64] |= 1ull << (x % 64);
	pthread_rwlock_init(&ct->rw, NULL);
#ifdef FM_HAVE_ROARING
	ct->rb = roaring_bitmap_create();
	for (uint64_t i = 0; i < nr; i++)
		roaring_bitmap_add_range(ct->rb, ct->r[i].s, ct->r[i].l + 1);
	roaring_bitmap_run_optimize(ct->rb);
#endif
	/* the cache: inserted in random order (the directory grows as it goes) */
	struct fm_cache_cfg cfg = { 0 };
	uint64_t e, *perm = malloc(nr * sizeof(*perm));

	if (fm_cache_new(&ct->c, &cfg) || fm_cache_map_add(ct->c, 1, ct->grains) ||
	    fm_cache_map_grant(ct->c, 1, 1) || fm_cache_map_epoch(ct->c, 1, &e)) {
		fprintf(stderr, "cache setup failed\n");
		exit(1);
	}
	for (uint64_t i = 0; i < nr; i++)
		perm[i] = i;
	for (uint64_t i = nr; i > 1; i--) {
		uint64_t k = xs(seed) % i, t = perm[i - 1];

		perm[i - 1] = perm[k];
		perm[k] = t;
	}
	uint64_t t0 = fm_now_ns();

	for (uint64_t i = 0; i < nr; i++)
		if (fm_cache_insert(ct->c, 1, e, ct->r[perm[i]].s, ct->r[perm[i]].l)) {
			fprintf(stderr, "insert failed\n");
			exit(1);
		}
	double ins = (double)(fm_now_ns() - t0) / (double)nr;

	free(perm);
	return ins;
}

static void destroy(struct content *ct)
{
	fm_cache_delete(&ct->c);
	free(ct->r);
	free(ct->bits);
	pthread_rwlock_destroy(&ct->rw);
#ifdef FM_HAVE_ROARING
	roaring_bitmap_free(ct->rb);
#endif
}

static double bytes_per_range(const struct content *ct, enum kind k)
{
	struct fm_cache_stats st;

	switch (k) {
	case K_CACHE:
	case K_CACHE_RW:
		fm_cache_stats(ct->c, &st);
		return (double)st.bytes / (double)ct->nr;
	case K_BITMAP:
	case K_BITMAP_PROBE:
		return (double)((ct->grains / 64 + 1) * 8) / (double)ct->nr;
	case K_ROARING:
#ifdef FM_HAVE_ROARING
		return (double)roaring_bitmap_portable_size_in_bytes(ct->rb) / (double)ct->nr;
#else
		return 0;
#endif
	case K_SORTED:
		return 16.0;
	default:
		return 0;
	}
}

static void usage(FILE *f)
{
	fprintf(f, "usage: fm-bench-cache [--quick] [--json FILE] [--samples N] [--batch N]\n"
		   "                      [--avg N] [--max-ranges N]\n"
		   "  lookup cost at 10^3..10^6 ranges vs a flat bitmap in the same run,\n"
		   "  on 1 and 2 threads, random and sequential grains.\n"
		   "  --quick       fewer samples (CI smoke, < 20 s)\n"
		   "  --json FILE   also write the results as JSON\n"
		   "  --samples N   timed samples per case (default 1000, quick 200)\n"
		   "  --batch N     lookups per sample (default 1000)\n"
		   "  --avg N       mean range length and gap in grains (default: two\n"
		   "                layouts, 8 = dense and 128 = sparse)\n"
		   "  --max-ranges N largest size (default 1000000)\n");
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "help", no_argument, NULL, 'h' },	  { "quick", no_argument, NULL, 'q' },
		{ "json", required_argument, NULL, 'j' }, { "samples", required_argument, NULL, 's' },
		{ "batch", required_argument, NULL, 'b' },  { "avg", required_argument, NULL, 'a' },
		{ "max-ranges", required_argument, NULL, 'm' }, { 0 } };
	size_t nsamples = 0, batch = 1000;
	uint64_t avg = 0, maxr = 1000000, seed = 0x12345678abcdefull;
	bool quick = false;
	const char *json = NULL;
	int o;

	while ((o = getopt_long(argc, argv, "hqj:s:b:a:m:", opts, NULL)) != -1) {
		switch (o) {
		case 'h': usage(stdout); return 0;
		case 'q': quick = true; break;
		case 'j': json = optarg; break;
		case 's': nsamples = strtoull(optarg, NULL, 0); break;
		case 'b': batch = strtoull(optarg, NULL, 0); break;
		case 'a': avg = strtoull(optarg, NULL, 0); break;
		case 'm': maxr = strtoull(optarg, NULL, 0); break;
		default: usage(stderr); return 2;
		}
	}
	if (!nsamples)
		nsamples = quick ? 200 : 1000;
	if (batch < 1 || nsamples < 10) {
		usage(stderr);
		return 2;
	}

	FILE *jf = NULL;
	struct fm_json j;

	if (json) {
		jf = fopen(json, "w");
		if (!jf) {
			perror(json);
			return 1;
		}
		fm_report_json_open(&j, jf, "fm-bench-cache");
		fm_report_json_param_num(&j, "samples", (double)nsamples);
		fm_report_json_param_num(&j, "warmup_samples", (double)(nsamples / 10));
		fm_report_json_param_num(&j, "batch", (double)batch);
		fm_report_json_param_str(&j, "layouts", avg ? "one (--avg)" : "avg 8 (dense), avg 128 (sparse)");
		fm_report_json_param_str(&j, "quick", quick ? "yes" : "no");
		fm_report_json_results(&j);
	}
	printf("# fm-bench-cache: samples %zu (first %zu dropped), batch %zu lookups/sample\n",
	       nsamples, nsamples / 10, batch);
	for (int layout = 0; layout < 2; layout++) {
	uint64_t a = avg ? avg : layout ? 128 : 8;

	if (avg && layout)
		break;
	printf("# layout: range length and gap uniform in [1, %llu] grains (%s)\n",
	       (unsigned long long)(2 * a - 1), a <= 8 ? "dense" : "sparse");
	fm_report_header(stdout, "nsec");
	for (uint64_t nr = 1000; nr <= maxr; nr *= 10) {
		struct content ct;
		double ins = build(&ct, nr, a, &seed);

		printf("# %llu ranges, %llu grains; cache insert %.1f ns/range (random order); "
		       "bytes/range: cache %.1f bitmap %.2f roaring %.2f sorted %.1f\n",
		       (unsigned long long)nr, (unsigned long long)ct.grains, ins,
		       bytes_per_range(&ct, K_CACHE), bytes_per_range(&ct, K_BITMAP),
		       bytes_per_range(&ct, K_ROARING), bytes_per_range(&ct, K_SORTED));
		for (int seq = 0; seq <= 1; seq++) {
			for (int threads = 1; threads <= 2; threads++) {
				double base = 0;

				/* the baseline first, so every other row gets its ratio */
				static const enum kind order[K_N] = { K_BITMAP, K_BITMAP_PROBE,
					K_CACHE, K_CACHE_RW, K_ROARING, K_SORTED };

				for (int ki = 0; ki < K_N; ki++) {
					enum kind k = order[ki];

#ifndef FM_HAVE_ROARING
					if (k == K_ROARING)
						continue;
#endif
					if (quick && (seq || threads == 2) && k != K_CACHE && k != K_BITMAP)
						continue;
					double *smp;
					char name[96];
					size_t n = measure(&ct, k, seq, threads, nsamples, batch, &smp);

					snprintf(name, sizeof(name), "%s R=%llu %s t=%d", kind_name[k],
						 (unsigned long long)nr, seq ? "seq" : "rand", threads);
					struct fm_report_stats st = fm_report_row(stdout, name, smp, n);

					if (k == K_BITMAP)
						base = st.median;
					double ratio = base > 0 ? st.median / base : 0;

					if (k != K_BITMAP)
						printf("%-36s ratio to bitmap (typical): %.2f\n", "", ratio);
					if (jf)
						fm_report_json_result(&j, name, "nsec", &st,
							"ranges", (double)nr, "grains", (double)ct.grains,
							"avg_len_and_gap", (double)a,
							"threads", (double)threads, "sequential", (double)seq,
							"bytes_per_range", bytes_per_range(&ct, k),
							"insert_ns", k <= K_CACHE_RW ? ins : 0.0,
							"ratio_to_bitmap", ratio, NULL);
					free(smp);
				}
			}
		}
		destroy(&ct);
	}
	}
	if (jf) {
		fm_report_json_close(&j);
		fclose(jf);
	}
	return 0;
}
