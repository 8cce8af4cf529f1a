/* bench_cache.c -- lookup cost of the confirmation cache beside a flat bitmap.
 *
 * For R in {10^3, 10^4, 10^5, 10^6} ranges (lengths and gaps uniform in
 * [1, 2*avg-1], volume = what they span), the same content is loaded into:
 *   bitmap        a flat bit per grain, "split?" + run by ctz over words:
 *                 baseline 1, the same answer the cache gives (what SVC/Ceph
 *                 keep; never evicted)
 *   bitmap-probe  the same bitmap, one bit test, no run: baseline 2, the
 *                 least any lookup can cost
 *   cache         fm_cache_lookup (the structure under test), run computed
 *   cache+rwlock  the same call inside a shared pthread_rwlock read lock: what
 *                 a per-mapping rwlock would add (its counter line bounces)
 *   roaring       CRoaring roaring_bitmap_contains after run_optimize (run
 *                 containers = merged ranges); "split?" only
 *   sorted        sorted array of [start, last] + binary search, run computed
 *   loop-only     the timed loops with the lookup replaced by (grain & 1): the
 *                 cost of the loop itself, a reference, not a baseline
 *
 * Method (also printed under "# method:" and in the JSON's params.method):
 * see method_text below.  In short: probe grains are made before each timed
 * batch; two modes, independent lookups (throughput) and a dependent chain
 * (latency); every round runs every kind, the order reversed every other
 * round, each kind after untimed batches of its own; round 0 is dropped; t_typical = median of the per-round medians;
 * ratios divide typicals and show the range of the per-round ratios.
 */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "flashmeta/cache.h"
#include "procstat.h"
#include "report.h"
#include "series.h"
#ifdef FM_HAVE_ROARING
#include <roaring/roaring.h>
#endif

static const char *const method_text =
	"a sample = one timed batch of B lookups by one thread; ns/lookup = batch\n"
	" time / B; the two clock reads are outside the lookups, inside the sample.\n"
	"probe grains: made before each batch's timed loop, untimed (xorshift,\n"
	" uniform over the volume; seq: consecutive grains); every kind of a round\n"
	" gets the same grains (same seeds).\n"
	"tput (throughput): the B lookups are independent (grain b from an array):\n"
	" the CPU overlaps their cache misses; cost per lookup at full overlap.\n"
	"lat (latency): one lookup at a time, a dependent chain: probe b+1 looks\n"
	" up g[2p + (hit_b & 1)], p the next element of a fixed cyclic permutation\n"
	" of 0..B-1 (seq: p+1), and an lfence (x86) after each lookup keeps a\n"
	" correctly predicted branch inside a lookup from starting the next one\n"
	" early (params.lat_fence says what this build does); cost per lookup when\n"
	" the next step waits for the answer, as an I/O path's does.\n"
	"baselines, same content, same run: bitmap (bit test + run by ctz, the\n"
	" answer the cache gives) and bitmap-probe (one bit test, no run).\n"
	" loop-only: the loops with the lookup replaced by (grain & 1).\n"
	"interleaving: every round runs every kind, S samples each, in a fixed\n"
	" order on even rounds and reversed on odd ones; round 0 is warm-up and\n"
	" dropped; t=2: two threads run the same kind at once, samples pooled.\n"
	"warm-up per kind: before its S samples of a round each kind runs W\n"
	" untimed batches (params.warmup_batches), so its data is in the CPU\n"
	" caches as far as it fits whichever kind ran before it (without them a\n"
	" kind run right after one sharing its data, bitmap after bitmap-probe,\n"
	" started warm and the other cold: dense bit probe 78 vs 49 ns).\n"
	"t_typical = median of the per-round medians; n, min, avg, 99%, 99.9%,\n"
	" max over every sample of the kept rounds.\n"
	"ratio = a kind's t_typical / the baseline's t_typical; (lo..hi) = the\n"
	" smallest and largest ratio of the two medians within one round.";

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

/* the order rows are printed in and the forward order of a round */
enum kind { K_BITMAP, K_PROBE, K_CACHE, K_CACHE_RW, K_ROARING, K_SORTED, K_LOOP, K_N };
static const char *const kind_name[K_N] = { "bitmap", "bitmap-probe", "cache", "cache+rwlock",
					    "roaring", "sorted", "loop-only" };

enum mode { M_TPUT, M_LAT, M_N };
static const char *const mode_name[M_N] = { "tput", "lat" };

static __attribute__((noreturn)) void oom(void)
{
	fprintf(stderr, "fm-bench-cache: out of memory\n");
	exit(1);
}

static uint64_t xs(uint64_t *s)
{
	uint64_t x = *s;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return *s = x;
}

static uint64_t splitmix(uint64_t x)
{
	x += 0x9E3779B97F4A7C15ull;
	x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
	x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
	return x ^ (x >> 31);
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

/* One lookup of kind k; k is a constant wherever this is inlined. */
static inline __attribute__((always_inline)) bool probe(struct content *ct, enum kind k,
							uint64_t g, uint64_t *run)
{
	bool hit = false;

	switch (k) {
	case K_BITMAP:
		return bm_lookup(ct, g, run);
	case K_PROBE:
		*run = 1;
		return (ct->bits[g / 64] >> (g % 64)) & 1;
	case K_CACHE:
		return fm_cache_lookup(ct->c, 1, g, run);
	case K_CACHE_RW:
		pthread_rwlock_rdlock(&ct->rw);
		hit = fm_cache_lookup(ct->c, 1, g, run);
		pthread_rwlock_unlock(&ct->rw);
		return hit;
	case K_ROARING:
#ifdef FM_HAVE_ROARING
		hit = roaring_bitmap_contains(ct->rb, (uint32_t)g);
#endif
		*run = 1;
		return hit;
	case K_SORTED:
		return sorted_lookup(ct, g, run);
	case K_LOOP:
		*run = 1;
		return g & 1;
	default:
		return false;
	}
}

/*
 * The end of one lookup in latency mode.  The chain alone is not enough:
 * where a lookup's answer comes out of a branch (any call the compiler
 * cannot see into), a correctly predicted branch lets the CPU start the
 * next lookup before this one's loads return, and a branch-free kind (the
 * bit probe) would pay a strict chain the others do not.  An lfence (x86)
 * starts nothing until every earlier instruction is done: one lookup at a
 * time for every kind alike.  Elsewhere only the chain (LAT_FENCE says).
 */
#if defined(__x86_64__) || defined(__i386__)
#define LAT_FENCE "lfence after each lookup"
static inline __attribute__((always_inline)) void lat_fence(void)
{
	__builtin_ia32_lfence();
}
#else
#define LAT_FENCE "none (not x86): the chain only"
static inline __attribute__((always_inline)) void lat_fence(void)
{
	__asm__ volatile("" ::: "memory");
}
#endif

/*
 * One timed batch of `batch` lookups of kind k in mode m; returns ns per
 * lookup.  gi: 2*batch grains made before the call (untimed); nxt: the
 * latency chain's order, a cyclic permutation of 0..batch-1.
 */
static inline __attribute__((always_inline)) double
batch_k(struct content *ct, enum kind k, enum mode m, const uint64_t *gi, const uint32_t *nxt,
	size_t batch, uint64_t *sink)
{
	uint64_t run = 0, s = 0, t0, t1;

	t0 = fm_now_ns();
	if (m == M_TPUT) {
		for (size_t b = 0; b < batch; b++) {
			bool hit = probe(ct, k, gi[2 * b], &run);

			s += hit ? run : 0;
		}
	} else {
		uint32_t pos = (uint32_t)(batch - 1);
		uint64_t h = 0;

		/* the walk visits every pos once; the grain depends on the last answer */
		for (size_t b = 0; b < batch; b++) {
			pos = nxt[pos];
			bool hit = probe(ct, k, gi[2 * (size_t)pos + (h & 1)], &run);

			h = hit;
			s += hit ? run : 0;
			lat_fence();
		}
	}
	t1 = fm_now_ns();
	*sink += s;
	return (double)(t1 - t0) / (double)batch;
}

#define KCASE(K)                                                                      \
	case K:                                                                       \
		return m == M_LAT ? batch_k(ct, K, M_LAT, gi, nxt, batch, sink)       \
				  : batch_k(ct, K, M_TPUT, gi, nxt, batch, sink)

/* batch_k with the kind and mode as constants: one loop per pair */
static double timed_batch(struct content *ct, enum kind k, enum mode m, const uint64_t *gi,
			  const uint32_t *nxt, size_t batch, uint64_t *sink)
{
	switch (k) {
	KCASE(K_BITMAP);
	KCASE(K_PROBE);
	KCASE(K_CACHE);
	KCASE(K_CACHE_RW);
	KCASE(K_ROARING);
	KCASE(K_SORTED);
	KCASE(K_LOOP);
	default:
		return 0;
	}
}

struct job {
	struct content *ct;
	enum kind k;
	enum mode m;
	bool seq;
	size_t nwarm, nsamples, batch;
	const uint32_t *nxt;
	uint64_t seed; /* the same for every kind of a round: the same grains */
	double *samples;
	uint64_t sink;
	pthread_barrier_t *bar;
};

/* the grains of one batch: pairs (g[2i], g[2i+1]); seq: both = the next grain */
static void fill(uint64_t *gi, size_t n, bool seq, uint64_t grains, uint64_t *s, uint64_t *cur)
{
	for (size_t i = 0; i + 1 < n; i += 2) {
		if (seq) {
			gi[i] = gi[i + 1] = *cur;
			if (++*cur == grains)
				*cur = 0;
		} else {
			gi[i] = (uint64_t)(((unsigned __int128)xs(s) * grains) >> 64);
			gi[i + 1] = (uint64_t)(((unsigned __int128)xs(s) * grains) >> 64);
		}
	}
}

static void *job_run(void *arg)
{
	struct job *j = arg;
	uint64_t *gi = malloc(2 * j->batch * sizeof(*gi));
	uint64_t s = j->seed, cur = j->seed % j->ct->grains;

	if (!gi)
		oom();
	pthread_barrier_wait(j->bar);
	for (size_t i = 0; i < j->nwarm; i++) { /* untimed: this kind's data in the caches */
		fill(gi, 2 * j->batch, j->seq, j->ct->grains, &s, &cur);
		(void)timed_batch(j->ct, j->k, j->m, gi, j->nxt, j->batch, &j->sink);
	}
	for (size_t i = 0; i < j->nsamples; i++) {
		fill(gi, 2 * j->batch, j->seq, j->ct->grains, &s, &cur); /* untimed */
		j->samples[i] = timed_batch(j->ct, j->k, j->m, gi, j->nxt, j->batch, &j->sink);
	}
	free(gi);
	return NULL;
}

/* One kind's share of a round: `threads` threads x (nwarm batches dropped,
 * then nsamples samples into se). */
static void measure(struct content *ct, enum kind k, enum mode m, bool seq, int threads,
		    size_t nwarm, size_t nsamples, size_t batch, const uint32_t *nxt, uint64_t seed,
		    struct series *se, uint64_t *sink)
{
	pthread_t th[2];
	struct job j[2];
	pthread_barrier_t bar;

	pthread_barrier_init(&bar, NULL, (unsigned)threads);
	for (int t = 0; t < threads; t++) {
		j[t] = (struct job){ .ct = ct, .k = k, .m = m, .seq = seq, .nwarm = nwarm,
				     .nsamples = nsamples, .batch = batch, .nxt = nxt,
				     .seed = splitmix(seed + (uint64_t)t) | 1, .bar = &bar };
		j[t].samples = malloc(sizeof(double) * nsamples);
		if (!j[t].samples)
			oom();
		if (pthread_create(&th[t], NULL, job_run, &j[t])) {
			fprintf(stderr, "fm-bench-cache: pthread_create failed\n");
			exit(1);
		}
	}
	for (int t = 0; t < threads; t++) {
		pthread_join(th[t], NULL);
		se_add_n(se, j[t].samples, nsamples);
		*sink += j[t].sink;
		free(j[t].samples);
	}
	pthread_barrier_destroy(&bar);
}

static double build(struct content *ct, uint64_t nr, uint64_t avg, uint64_t *seed)
{
	uint64_t g = 0;

	memset(ct, 0, sizeof(*ct));
	ct->nr = nr;
	ct->r = malloc(nr * sizeof(*ct->r));
	if (!ct->r)
		oom();
	for (uint64_t i = 0; i < nr; i++) {
		g += 1 + xs(seed) % (2 * avg - 1); /* gap >= 1: ranges stay apart */
		ct->r[i].s = g;
		g += xs(seed) % (2 * avg - 1);
		ct->r[i].l = g;
		g++;
	}
	ct->grains = g + 1 + xs(seed) % (2 * avg - 1);
	ct->bits = calloc(ct->grains / 64 + 1, sizeof(uint64_t));
	if (!ct->bits)
		oom();
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

	if (!perm)
		oom();
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
	case K_PROBE:
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

/* the headline: the cache against both baselines at the largest size */
struct summary {
	uint64_t avg, nr;
	int threads;
	enum mode m;
	double cache, bitmap, probe;
	struct se_ratio to_bitmap, to_probe;
};

static void usage(FILE *f)
{
	fprintf(f, "usage: fm-bench-cache [--quick] [--json FILE] [--rounds N] [--samples N]\n"
		   "                      [--warmup N] [--batch N] [--mode MODE] [--avg N]\n"
		   "                      [--max-ranges N]\n"
		   "  lookup cost at 10^3..10^6 ranges beside a flat bitmap (bit + run) and\n"
		   "  a plain bit probe in the same run, interleaved by round; throughput\n"
		   "  (independent lookups) and latency (a dependent chain); 1 and 2\n"
		   "  threads; random and sequential grains.  The method is printed with\n"
		   "  the figures.\n"
		   "  --quick        fewer rounds and samples, fewer kinds in the seq and\n"
		   "                 2-thread cases (CI smoke)\n"
		   "  --json FILE    also write the results and the method as JSON\n"
		   "  --rounds N     rounds kept (default 10, quick 3; one more is warm-up)\n"
		   "  --samples N    timed samples per case and round (default 100, quick 20)\n"
		   "  --warmup N     untimed batches before them (default: as --samples)\n"
		   "  --batch N      lookups per sample (default 1000)\n"
		   "  --mode MODE    throughput, latency or both (default both)\n"
		   "  --avg N        mean range length and gap in grains (default: two\n"
		   "                 layouts, 8 = dense and 128 = sparse)\n"
		   "  --max-ranges N largest size (default 1000000)\n"
		   "exit status: 0 done, 1 failed, 2 bad command line\n");
}

static void print_method(void)
{
	const char *l = method_text;

	printf("#\n# method:\n");
	while (*l) {
		const char *e = strchr(l, '\n');
		int n = e ? (int)(e - l) : (int)strlen(l);

		printf("#  %.*s\n", n, l);
		l += n + (e ? 1 : 0);
	}
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "help", no_argument, NULL, 'h' },	  { "quick", no_argument, NULL, 'q' },
		{ "json", required_argument, NULL, 'j' }, { "samples", required_argument, NULL, 's' },
		{ "batch", required_argument, NULL, 'b' },  { "avg", required_argument, NULL, 'a' },
		{ "max-ranges", required_argument, NULL, 'm' },
		{ "rounds", required_argument, NULL, 'r' }, { "mode", required_argument, NULL, 'M' },
		{ "warmup", required_argument, NULL, 'w' },
		{ 0 } };
	size_t nsamples = 0, rounds = 0, batch = 1000, nwarm = SIZE_MAX;
	uint64_t avg = 0, maxr = 1000000, seed = 0x12345678abcdefull, sink = 0;
	bool quick = false, modes[M_N] = { true, true };
	const char *json = NULL, *mode_arg = "both";
	char la0[64], la1[64];
	int o;

	while ((o = getopt_long(argc, argv, "hqj:s:b:a:m:r:M:w:", opts, NULL)) != -1) {
		switch (o) {
		case 'h': usage(stdout); return 0;
		case 'q': quick = true; break;
		case 'j': json = optarg; break;
		case 's': nsamples = strtoull(optarg, NULL, 0); break;
		case 'b': batch = strtoull(optarg, NULL, 0); break;
		case 'a': avg = strtoull(optarg, NULL, 0); break;
		case 'm': maxr = strtoull(optarg, NULL, 0); break;
		case 'r': rounds = strtoull(optarg, NULL, 0); break;
		case 'w': nwarm = strtoull(optarg, NULL, 0); break;
		case 'M':
			mode_arg = optarg;
			if (!strcmp(optarg, "throughput")) {
				modes[M_LAT] = false;
			} else if (!strcmp(optarg, "latency")) {
				modes[M_TPUT] = false;
			} else if (strcmp(optarg, "both")) {
				usage(stderr);
				return 2;
			}
			break;
		default: usage(stderr); return 2;
		}
	}
	if (optind < argc) {
		usage(stderr);
		return 2;
	}
	if (!nsamples)
		nsamples = quick ? 20 : 100;
	if (!rounds)
		rounds = quick ? 3 : 10;
	if (nwarm == SIZE_MAX)
		nwarm = nsamples;
	if (batch < 1 || batch > (1u << 24) || maxr < 1000) {
		usage(stderr);
		return 2;
	}

	/* the latency chain's orders: a random single cycle (Sattolo), and p+1 */
	uint32_t *nxt_rand = malloc(batch * sizeof(uint32_t));
	uint32_t *nxt_seq = malloc(batch * sizeof(uint32_t));
	uint64_t ps = 0x2545F4914F6CDD1Dull;

	if (!nxt_rand || !nxt_seq)
		oom();
	for (size_t i = 0; i < batch; i++) {
		nxt_rand[i] = (uint32_t)i;
		nxt_seq[i] = (uint32_t)((i + 1) % batch);
	}
	for (size_t i = batch; i > 1; i--) {
		size_t k = xs(&ps) % (i - 1); /* k < i - 1: one cycle through all */
		uint32_t t = nxt_rand[i - 1];

		nxt_rand[i - 1] = nxt_rand[k];
		nxt_rand[k] = t;
	}

	FILE *jf = NULL;
	struct fm_json j;

	fm_loadavg(la0, sizeof(la0));
	if (json) {
		jf = fopen(json, "w");
		if (!jf) {
			perror(json);
			return 1;
		}
		fm_report_json_open(&j, jf, "fm-bench-cache");
		fm_report_json_param_num(&j, "rounds", (double)rounds);
		fm_report_json_param_num(&j, "warmup_rounds", 1);
		fm_report_json_param_num(&j, "samples_per_round", (double)nsamples);
		fm_report_json_param_num(&j, "warmup_batches", (double)nwarm);
		fm_report_json_param_num(&j, "batch", (double)batch);
		fm_report_json_param_str(&j, "modes", mode_arg);
		fm_report_json_param_str(&j, "layouts", avg ? "one (--avg)" : "avg 8 (dense), avg 128 (sparse)");
		fm_report_json_param_num(&j, "max_ranges", (double)maxr);
		fm_report_json_param_str(&j, "quick", quick ? "yes" : "no");
		fm_report_json_param_str(&j, "typical", "median of per-round medians");
		fm_report_json_param_str(&j, "baselines", "bitmap, bitmap-probe");
		fm_report_json_param_num(&j, "cpus", (double)sysconf(_SC_NPROCESSORS_ONLN));
		fm_report_json_param_str(&j, "loadavg_start", la0);
		fm_report_json_param_str(&j, "lat_fence", LAT_FENCE);
		fm_report_json_param_str(&j, "method", method_text);
		fm_report_json_results(&j);
	}
	printf("# fm-bench-cache: %zu rounds (+1 warm-up, dropped) x (%zu untimed + %zu timed "
	       "samples) x %zu lookups per case and kind; modes %s\n", rounds, nwarm, nsamples,
	       batch, mode_arg);
	printf("# machine: %ld CPUs, load average %s at start; latency mode fence: %s\n",
	       sysconf(_SC_NPROCESSORS_ONLN), la0, LAT_FENCE);
	print_method();

	struct summary sum[8];
	int nsum = 0;
	uint64_t top = 1000;

	while (top * 10 <= maxr)
		top *= 10;
	for (int layout = 0; layout < 2; layout++) {
	uint64_t a = avg ? avg : layout ? 128 : 8;

	if (avg && layout)
		break;
	printf("\n# layout: range length and gap uniform in [1, %llu] grains (%s)\n",
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
		for (int m = 0; m < M_N; m++) {
		if (!modes[m])
			continue;
		for (int seq = 0; seq <= 1; seq++) {
			for (int threads = 1; threads <= 2; threads++) {
				enum kind ks[K_N];
				int nk = 0;
				struct series se[K_N];

				memset(se, 0, sizeof(se));
				for (int k = 0; k < K_N; k++) {
#ifndef FM_HAVE_ROARING
					if (k == K_ROARING)
						continue;
#endif
					if (quick && (seq || threads == 2) &&
					    (k == K_CACHE_RW || k == K_ROARING || k == K_SORTED))
						continue;
					ks[nk++] = (enum kind)k;
				}
				for (size_t r = 0; r <= rounds; r++) {
					uint64_t rseed = splitmix(seed ^ (r << 32) ^ nr ^ ((uint64_t)m << 20) ^
								  ((uint64_t)seq << 21) ^ ((uint64_t)threads << 22));

					se_round_begin(se, K_N);
					for (int i = 0; i < nk; i++) {
						enum kind k = ks[r & 1 ? nk - 1 - i : i];

						measure(&ct, k, (enum mode)m, seq, threads, nwarm, nsamples,
							batch, seq ? nxt_seq : nxt_rand, rseed,
							&se[k], &sink);
					}
					se_round_end(se, K_N, r > 0);
				}
				for (int i = 0; i < nk; i++) {
					enum kind k = ks[i];
					char name[96];
					struct series_stats ss;

					snprintf(name, sizeof(name), "%s R=%llu %s t=%d %s", kind_name[k],
						 (unsigned long long)nr, seq ? "seq" : "rand", threads,
						 mode_name[m]);
					se_row(&se[k], name, &ss);
					struct se_ratio rb = se_ratio(&se[k], &se[K_BITMAP]);
					struct se_ratio rp = se_ratio(&se[k], &se[K_PROBE]);

					if (k != K_BITMAP && k != K_LOOP)
						printf("%-36s / bitmap %.2f (%.2f..%.2f)", "", rb.typ, rb.lo,
						       rb.hi);
					if (k == K_BITMAP)
						printf("%-36s", "");
					if (k != K_PROBE && k != K_LOOP)
						printf("  / bitmap-probe %.2f (%.2f..%.2f)", rp.typ, rp.lo,
						       rp.hi);
					if (k != K_LOOP)
						printf("\n");
					if (jf)
						fm_report_json_result(&j, name, "nsec", &ss.st,
							"ranges", (double)nr, "grains", (double)ct.grains,
							"avg_len_and_gap", (double)a,
							"threads", (double)threads, "sequential", (double)seq,
							"latency_mode", (double)(m == M_LAT),
							"rounds", (double)ss.rounds,
							"pooled_median", ss.pooled_median,
							"bytes_per_range", bytes_per_range(&ct, k),
							"insert_ns", k == K_CACHE || k == K_CACHE_RW ? ins : 0.0,
							"ratio_to_bitmap", rb.typ,
							"ratio_to_bitmap_round_min", rb.lo,
							"ratio_to_bitmap_round_max", rb.hi,
							"ratio_to_bitmap_probe", rp.typ,
							"ratio_to_bitmap_probe_round_min", rp.lo,
							"ratio_to_bitmap_probe_round_max", rp.hi, NULL);
				}
				if (nr == top && !seq && nsum < 8) {
					struct series_stats sc, sb, sp;

					se_stats(&se[K_CACHE], &sc);
					se_stats(&se[K_BITMAP], &sb);
					se_stats(&se[K_PROBE], &sp);
					sum[nsum++] = (struct summary){
						.avg = a, .nr = nr, .threads = threads, .m = (enum mode)m,
						.cache = sc.st.median, .bitmap = sb.st.median,
						.probe = sp.st.median,
						.to_bitmap = se_ratio(&se[K_CACHE], &se[K_BITMAP]),
						.to_probe = se_ratio(&se[K_CACHE], &se[K_PROBE]) };
				}
				for (int k = 0; k < K_N; k++)
					se_free(&se[k]);
			}
		}
		}
		destroy(&ct);
	}
	}
	fm_loadavg(la1, sizeof(la1));
	printf("\n## summary: cache beside its baselines at %llu ranges, random grains "
	       "(t_typical; ratio (lo..hi per round))\n", (unsigned long long)top);
	printf("%-8s %4s %5s %14s %14s %18s %22s %22s\n", "layout", "t", "mode", "cache[nsec]",
	       "bitmap[nsec]", "bitmap-probe[nsec]", "cache/bitmap", "cache/bitmap-probe");
	for (int i = 0; i < nsum; i++) {
		char rb[40], rp[40];

		snprintf(rb, sizeof(rb), "%.2f (%.2f..%.2f)", sum[i].to_bitmap.typ,
			 sum[i].to_bitmap.lo, sum[i].to_bitmap.hi);
		snprintf(rp, sizeof(rp), "%.2f (%.2f..%.2f)", sum[i].to_probe.typ,
			 sum[i].to_probe.lo, sum[i].to_probe.hi);
		printf("%-8s %4d %5s %14.1f %14.1f %18.1f %22s %22s\n",
		       sum[i].avg <= 8 ? "dense" : "sparse", sum[i].threads, mode_name[sum[i].m],
		       sum[i].cache, sum[i].bitmap, sum[i].probe, rb, rp);
	}
	printf("# load average %s at start, %s at end; checksum %llu\n", la0, la1,
	       (unsigned long long)(sink & 0xffff));
	if (jf) {
		fm_report_json_close(&j);
		if (fclose(jf)) {
			perror(json);
			return 1;
		}
	}
	free(nxt_rand);
	free(nxt_seq);
	return 0;
}
