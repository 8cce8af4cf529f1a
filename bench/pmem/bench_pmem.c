/* bench_pmem.c -- fm-bench-pmem: group-commit split throughput and
 * recovery time of the pmem store, each with an in-run baseline.
 *
 *   split_commit/B  set B new split bits with B fm_store_split_set calls
 *                   + one fm_store_split_commit; sample = one batch, ns.
 *   split_many/B    the same bits with one fm_store_split_set_many call
 *                   + one commit (the batch API; split_commit/B is kept
 *                   for comparison: it is what per-bit callers pay).
 *                   Baseline raw_persist/B: the
 *                   same 8-byte OR stores on a plain libpmem mapping, then
 *                   pmem_flush+pmem_drain (DAX) or one pmem_msync.
 *   open_1TiB       fm_store_open + close of a pool describing 1 TiB at 64 KiB
 *                   grains (16 M grains, 2 MiB bitmap, half the bits set).
 *                   Baseline map_read_baseline: pmem_map_file + reading the
 *                   pool a word per cache line.
 *
 * Method: method_text below (printed under "# method:", params.method).
 * The raw baseline's file is written through once before anything is
 * timed, as the store's pool is when it is made: without that the raw
 * rows paid a first-touch page fault per page (512 in a quick run) and
 * the store none, and looked 5x slower at batch 1 and 4.  Page faults
 * are counted around every phase and printed beside its row, so a reader
 * sees both sides pay the same.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <libpmem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "flashmeta/error.h"
#include "flashmeta/pmem_store.h"
#include "report.h"
#include "series.h"

#define GRAINS (UINT64_C(1) << 24) /* 1 TiB / 64 KiB */
#define GRAIN_SIZE (UINT64_C(64) << 10)
#define ID 1

static const char *const method_text =
	"group commit: a sample = one batch of B new bits, ns: split_commit = B\n"
	" fm_store_split_set + fm_store_split_commit; split_many = one\n"
	" fm_store_split_set_many + commit; raw_persist = the same 8-byte OR\n"
	" stores on a plain libpmem mapping of a 2 MiB file, then flush+drain\n"
	" per word (DAX) or one pmem_msync over the words' span.\n"
	"grains: a fixed odd-multiplier permutation of 0..2^24-1, never the same\n"
	" bit twice between restarts; each batch's grains are made before its\n"
	" timed call, untimed.  Bitmaps are cleared (restart, memset + persist)\n"
	" between rounds when the next round would run out of fresh bits.\n"
	"pre-fault: the raw file is written through (every page) and persisted\n"
	" before anything is timed, as making the pool writes the store's.\n"
	"page faults: getrusage(RUSAGE_THREAD) minor/major fault counts around\n"
	" each kind's samples of each kept round (outside the timed calls, the\n"
	" untimed grain making included), printed beside each row.\n"
	"interleaving: every round runs every kind, S samples each (recovery:\n"
	" one each), order reversed on odd rounds; round 0 is warm-up, dropped;\n"
	" group commit: each kind runs S/10 (at least 1) untimed batches of its\n"
	" own before its samples of a round (params.warmup_batches).\n"
	"t_typical = median of the per-round medians; n, min, avg, tails over\n"
	" every sample of the kept rounds.  ratio = t_typical / the baseline's,\n"
	" (lo..hi) = the smallest and largest ratio within one round.\n"
	"bits[1/s], commits[1/s]: over the kept samples' total time;\n"
	" bits@typical = B / t_typical.";

struct faults {
	uint64_t minor, major;
};

/* this thread's page fault counters (the process's where RUSAGE_THREAD
 * is missing) */
static void faults_now(struct faults *f)
{
	struct rusage ru;

#ifdef RUSAGE_THREAD
	getrusage(RUSAGE_THREAD, &ru);
#else
	getrusage(RUSAGE_SELF, &ru);
#endif
	f->minor = (uint64_t)ru.ru_minflt;
	f->major = (uint64_t)ru.ru_majflt;
}

static void faults_add(struct faults *sum, const struct faults *a, const struct faults *b)
{
	sum->minor += b->minor - a->minor;
	sum->major += b->major - a->major;
}

static uint64_t perm(uint64_t k)
{
	return (k * UINT64_C(0x9E3779B1)) & (GRAINS - 1); /* odd multiplier: bijection */
}

static void die(const char *what, int ret)
{
	fprintf(stderr, "%s: %d %s\n", what, ret, fm_errormsg());
	exit(1);
}

static struct fm_store *make_pool(const char *path)
{
	struct fm_store_config cfg = { .max_mappings = 4, .max_grains = GRAINS };
	struct fm_store *s;
	struct fm_mapping m;
	int ret;

	unlink(path);
	if ((ret = fm_store_create(&s, path, &cfg)))
		die("create", ret);
	fm_mapping_init(&m, ID, 1, 2, GRAINS * GRAIN_SIZE, GRAIN_SIZE);
	if ((ret = fm_store_map_create(s, &m)))
		die("map_create", ret);
	fm_store_map_transition(s, ID, FM_MAP_EV_PREPARE, NULL);
	fm_store_map_transition(s, ID, FM_MAP_EV_PREPARE_DONE, NULL);
	if ((ret = fm_store_map_transition(s, ID, FM_MAP_EV_START, NULL)))
		die("start", ret);
	return s;
}

/* the group-commit kinds, in a round's forward order */
enum gkind { G_SPLIT, G_MANY, G_RAW, G_N };
static const char *const gname[G_N] = { "split_commit", "split_many", "raw_persist" };

struct bench {
	struct fm_store *s;
	uint64_t gen, next; /* the store's generation; next grain index of perm() */
	uint64_t *raw;      /* the raw baseline's mapping */
	size_t raw_len;
	int raw_pmem;
};

/* the raw file: every page written, then persisted (its pages are mapped
 * before anything is timed, as the pool's are) */
static void raw_clear(struct bench *b)
{
	memset(b->raw, 0, b->raw_len);
	if (b->raw_pmem)
		pmem_persist(b->raw, b->raw_len);
	else
		pmem_msync(b->raw, b->raw_len);
}

/* both bitmaps empty again, the grain cursor back at 0 */
static void fresh(struct bench *b)
{
	int ret = fm_store_map_restart(b->s, ID, &b->gen);

	if (ret)
		die("restart", ret);
	raw_clear(b);
	b->next = 0;
}

/* one timed batch of kind k over grains[0..batch); returns ns */
static double one_batch(struct bench *b, enum gkind k, const uint64_t *grains, uint32_t batch)
{
	uint64_t t0 = fm_now_ns();
	int ret;

	if (k == G_SPLIT) {
		for (uint32_t i = 0; i < batch; i++) {
			ret = fm_store_split_set(b->s, ID, b->gen, grains[i]);
			if (ret != 1)
				die("split_set", ret);
		}
		ret = fm_store_split_commit(b->s);
		if (ret != (int)batch)
			die("commit", ret);
	} else if (k == G_MANY) {
		ret = fm_store_split_set_many(b->s, ID, b->gen, grains, batch);
		if (ret != (int)batch)
			die("split_set_many", ret);
		ret = fm_store_split_commit(b->s);
		if (ret != (int)batch)
			die("commit", ret);
	} else {
		uintptr_t lo = UINTPTR_MAX, hi = 0;

		for (uint32_t i = 0; i < batch; i++) {
			uint64_t g = grains[i];
			uint64_t *w = &b->raw[g / 64];

			__atomic_fetch_or(w, UINT64_C(1) << (g % 64), __ATOMIC_RELAXED);
			if (b->raw_pmem) {
				pmem_flush(w, 8);
			} else {
				if ((uintptr_t)w < lo)
					lo = (uintptr_t)w;
				if ((uintptr_t)w + 8 > hi)
					hi = (uintptr_t)w + 8;
			}
		}
		if (b->raw_pmem)
			pmem_drain();
		else
			pmem_msync((void *)lo, hi - lo);
	}
	return (double)(fm_now_ns() - t0);
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

/* the line under a row: its page faults, and its ratio to the baseline */
static void faults_line(const struct faults *f, size_t n, const struct se_ratio *r,
			const char *base)
{
	printf("%-36s page faults: minor %llu (%.2f/sample), major %llu", "",
	       (unsigned long long)f->minor, n ? (double)f->minor / (double)n : 0.0,
	       (unsigned long long)f->major);
	if (r)
		printf("; / %s %.2f (%.2f..%.2f)", base, r->typ, r->lo, r->hi);
	printf("\n");
}

static void usage(FILE *f)
{
	fprintf(f, "usage: fm-bench-pmem [--dir DIR] [--json FILE] [--quick] [--rounds N]\n"
		   "                     [--samples N]\n"
		   "  group-commit split throughput at batch sizes 1..4096 and\n"
		   "  open+validate time of a 1 TiB / 64 KiB-grain pool, with\n"
		   "  raw libpmem baselines in the same run, interleaved by round,\n"
		   "  page faults counted beside every row; the method is printed\n"
		   "  with the figures.  DIR: where pools go (a DAX mount\n"
		   "  measures DAX); default $FM_PMEM_DIR, else /dev/shm.\n"
		   "  --quick       fewer rounds and samples (CI smoke)\n"
		   "  --rounds N    rounds kept (group commit: default 10, quick 3;\n"
		   "                recovery: 5x that); one more is warm-up\n"
		   "  --samples N   group-commit samples per kind and round\n"
		   "                (default 100, quick 20)\n"
		   "exit status: 0 done, 1 failed, 2 bad command line\n");
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ "json", required_argument, NULL, 'j' },
		{ "dir", required_argument, NULL, 'd' },
		{ "quick", no_argument, NULL, 'q' },
		{ "rounds", required_argument, NULL, 'r' },
		{ "samples", required_argument, NULL, 's' },
		{ NULL, 0, NULL, 0 },
	};
	const char *json_path = NULL, *dir = getenv("FM_PMEM_DIR");
	int quick = 0, o;
	size_t rounds = 0, nsamples = 0;
	char path[512], raw_path[512];

	while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (o) {
		case 'h': usage(stdout); return 0;
		case 'j': json_path = optarg; break;
		case 'd': dir = optarg; break;
		case 'q': quick = 1; break;
		case 'r': rounds = strtoull(optarg, NULL, 0); break;
		case 's': nsamples = strtoull(optarg, NULL, 0); break;
		default: usage(stderr); return 2;
		}
	}
	if (optind < argc) {
		usage(stderr);
		return 2;
	}
	if (!rounds)
		rounds = quick ? 3 : 10;
	if (!nsamples)
		nsamples = quick ? 20 : 100;
	if (!dir)
		dir = "/dev/shm";
	snprintf(path, sizeof(path), "%s/fm-bench-pmem.%d.pool", dir, (int)getpid());
	snprintf(raw_path, sizeof(raw_path), "%s/fm-bench-pmem.%d.raw", dir, (int)getpid());

	FILE *jf = NULL;
	struct fm_json j;
	struct bench B = { .gen = 1 };
	struct fm_store_stats st;
	const void *view;
	size_t vlen, rec_rounds = rounds * 5, nwarm = nsamples / 10 ? nsamples / 10 : 1;
	enum fm_store_view vmode;

	if (json_path) {
		jf = fopen(json_path, "w");
		if (!jf) {
			perror(json_path);
			return 1;
		}
	}
	B.s = make_pool(path);
	fm_store_stats(B.s, &st);
	fm_store_bitmap_view(B.s, ID, &view, &vlen, &vmode);

	/* raw baseline file: same size as the bitmap, every page written */
	unlink(raw_path);
	B.raw = pmem_map_file(raw_path, GRAINS / 8, PMEM_FILE_CREATE, 0644, &B.raw_len,
			      &B.raw_pmem);
	if (!B.raw) {
		perror("raw map");
		return 1;
	}
	raw_clear(&B);

	printf("# fm-bench-pmem: dir %s, persistence %s (is_pmem=%d), view %s, raw file "
	       "is_pmem=%d, %s\n", dir, st.persist_mode, st.is_pmem, fm_store_view_name(vmode),
	       B.raw_pmem, quick ? "quick" : "full");
	printf("# group commit: %zu rounds (+1 warm-up, dropped) x (%zu untimed + %zu timed "
	       "samples) per kind; recovery: %zu rounds (+1) x 1 sample per kind; machine: %ld "
	       "CPUs\n", rounds, nwarm, nsamples, rec_rounds, sysconf(_SC_NPROCESSORS_ONLN));
	print_method();
	if (jf) {
		fm_report_json_open(&j, jf, "fm-bench-pmem");
		fm_report_json_param_str(&j, "dir", dir);
		fm_report_json_param_str(&j, "persist_mode", st.persist_mode);
		fm_report_json_param_num(&j, "is_pmem", st.is_pmem);
		fm_report_json_param_num(&j, "raw_is_pmem", B.raw_pmem);
		fm_report_json_param_str(&j, "view", fm_store_view_name(vmode));
		fm_report_json_param_num(&j, "quick", quick);
		fm_report_json_param_num(&j, "grains", (double)GRAINS);
		fm_report_json_param_num(&j, "rounds", (double)rounds);
		fm_report_json_param_num(&j, "recovery_rounds", (double)rec_rounds);
		fm_report_json_param_num(&j, "warmup_rounds", 1);
		fm_report_json_param_num(&j, "samples_per_round", (double)nsamples);
		fm_report_json_param_num(&j, "warmup_batches", (double)nwarm);
		fm_report_json_param_str(&j, "typical", "median of per-round medians");
		fm_report_json_param_str(&j, "baselines", "raw_persist/B, map_read_baseline");
		fm_report_json_param_str(&j, "raw_prefault", "every page written and persisted "
					 "before timing");
		fm_report_json_param_str(&j, "page_faults", "getrusage RUSAGE_THREAD ru_minflt, "
					 "ru_majflt around each kind's samples per kept round");
		fm_report_json_param_num(&j, "cpus", (double)sysconf(_SC_NPROCESSORS_ONLN));
		fm_report_json_param_str(&j, "method", method_text);
		fm_report_json_results(&j);
	}

	uint64_t *grains = malloc(4096 * sizeof(*grains));
	struct {
		char name[32];
		double bits_s, commits_s, bits_typ, minflt, majflt;
		struct se_ratio to_raw;
	} sum[24];
	int nsum = 0;

	if (!grains)
		die("malloc", -ENOMEM);
	printf("\n## group commit (sample = one batch: B new bits + 1 commit)\n");
	fm_report_header(stdout, "nsec");
	for (uint32_t batch = 1; batch <= 4096; batch *= 4) {
		struct series se[G_N];
		struct faults fsum[G_N];
		char names[G_N][32];
		double total[G_N] = { 0 };

		memset(se, 0, sizeof(se));
		memset(fsum, 0, sizeof(fsum));
		for (size_t r = 0; r <= rounds; r++) {
			if (B.next + (uint64_t)batch * (nwarm + nsamples) * G_N > GRAINS)
				fresh(&B); /* outside any timing */
			se_round_begin(se, G_N);
			for (int i = 0; i < G_N; i++) {
				enum gkind k = (enum gkind)(r & 1 ? G_N - 1 - i : i);
				struct faults f0, f1;

				for (size_t n = 0; n < nwarm; n++) { /* untimed */
					for (uint32_t b = 0; b < batch; b++)
						grains[b] = perm(B.next++);
					(void)one_batch(&B, k, grains, batch);
				}
				faults_now(&f0);
				for (size_t n = 0; n < nsamples; n++) {
					for (uint32_t b = 0; b < batch; b++)
						grains[b] = perm(B.next++);
					double dt = one_batch(&B, k, grains, batch);

					se_add(&se[k], dt);
					if (r > 0)
						total[k] += dt;
				}
				faults_now(&f1);
				if (r > 0)
					faults_add(&fsum[k], &f0, &f1);
			}
			se_round_end(se, G_N, r > 0);
		}
		for (int k = 0; k < G_N; k++) {
			struct series_stats ss;
			struct se_ratio rr = se_ratio(&se[k], &se[G_RAW]);

			snprintf(names[k], sizeof(names[k]), "%s/%u", gname[k], batch);
			se_row(&se[k], names[k], &ss);
			faults_line(&fsum[k], ss.st.n, k == G_RAW ? NULL : &rr, "raw_persist");
			double bits_s = (double)batch * (double)ss.st.n / (total[k] / 1e9);
			double commits_s = (double)ss.st.n / (total[k] / 1e9);
			/* from the typical batch: robust to a noisy host's outliers */
			double bits_typ = (double)batch / (ss.st.median / 1e9);
			double n = ss.st.n ? (double)ss.st.n : 1;

			if (jf)
				fm_report_json_result(&j, names[k], "nsec", &ss.st, "batch",
					(double)batch, "bits_per_s", bits_s,
					"commits_per_s", commits_s,
					"bits_per_s_typical", bits_typ,
					"rounds", (double)ss.rounds,
					"pooled_median", ss.pooled_median,
					"minflt", (double)fsum[k].minor,
					"majflt", (double)fsum[k].major,
					"minflt_per_sample", (double)fsum[k].minor / n,
					"majflt_per_sample", (double)fsum[k].major / n,
					"ratio_to_raw_persist", rr.typ,
					"ratio_to_raw_persist_round_min", rr.lo,
					"ratio_to_raw_persist_round_max", rr.hi, NULL);
			snprintf(sum[nsum].name, sizeof(sum[nsum].name), "%s", names[k]);
			sum[nsum].bits_typ = bits_typ;
			sum[nsum].bits_s = bits_s;
			sum[nsum].commits_s = commits_s;
			sum[nsum].minflt = (double)fsum[k].minor / n;
			sum[nsum].majflt = (double)fsum[k].major / n;
			sum[nsum++].to_raw = rr;
		}
		for (int k = 0; k < G_N; k++)
			se_free(&se[k]);
	}
	printf("\n%-20s %14s %14s %18s %14s %14s %22s\n", "case", "bits[1/s]", "commits[1/s]",
	       "bits@typical[1/s]", "minflt[1/smp]", "majflt[1/smp]", "/raw_persist[typical]");
	for (int k = 0; k < nsum; k++) {
		char rr[40] = "-";

		if (strncmp(sum[k].name, "raw_persist", 11))
			snprintf(rr, sizeof(rr), "%.2f (%.2f..%.2f)", sum[k].to_raw.typ,
				 sum[k].to_raw.lo, sum[k].to_raw.hi);
		printf("%-20s %14.0f %14.0f %18.0f %14.2f %14.2f %22s\n", sum[k].name,
		       sum[k].bits_s, sum[k].commits_s, sum[k].bits_typ, sum[k].minflt,
		       sum[k].majflt, rr);
	}

	/* recovery: half the bits set, then open + close repeatedly */
	fm_store_map_restart(B.s, ID, &B.gen);
	for (uint64_t g = 0; g < GRAINS; g += 2) {
		fm_store_split_set(B.s, ID, B.gen, g);
		if ((g & 0xfffff) == 0)
			fm_store_split_commit(B.s);
	}
	fm_store_split_commit(B.s);
	fm_store_close(&B.s);

	static const char *const rname[2] = { "open_1TiB_64KiB", "map_read_baseline" };
	struct series rse[2];
	struct faults rf[2];

	memset(rse, 0, sizeof(rse));
	memset(rf, 0, sizeof(rf));
	printf("\n## recovery: open + validate + close, 1 TiB at 64 KiB grains\n");
	fm_report_header(stdout, "nsec");
	for (size_t r = 0; r <= rec_rounds; r++) {
		se_round_begin(rse, 2);
		for (int i = 0; i < 2; i++) {
			int kind = r & 1 ? 1 - i : i;
			struct faults f0, f1;

			faults_now(&f0);
			uint64_t t0 = fm_now_ns();

			if (kind == 0) {
				int ret = fm_store_open(&B.s, path, NULL);

				if (ret)
					die("open", ret);
				fm_store_close(&B.s);
			} else {
				size_t l;
				int ip;
				volatile uint64_t acc = 0;
				uint8_t *p = pmem_map_file(path, 0, 0, 0, &l, &ip);

				if (!p) {
					perror("map");
					return 1;
				}
				for (size_t k = 0; k + 8 <= l; k += 64)
					acc += *(uint64_t *)(p + k);
				pmem_unmap(p, l);
				if (acc == 1)
					printf(" ");
			}
			se_add(&rse[kind], (double)(fm_now_ns() - t0));
			faults_now(&f1);
			if (r > 0)
				faults_add(&rf[kind], &f0, &f1);
		}
		se_round_end(rse, 2, r > 0);
	}
	for (int kind = 0; kind < 2; kind++) {
		struct series_stats ss;
		struct se_ratio rr = se_ratio(&rse[kind], &rse[1]);
		double n;

		se_row(&rse[kind], rname[kind], &ss);
		faults_line(&rf[kind], ss.st.n, kind ? NULL : &rr, "map_read_baseline");
		n = ss.st.n ? (double)ss.st.n : 1;
		if (jf)
			fm_report_json_result(&j, rname[kind], "nsec", &ss.st,
				"rounds", (double)ss.rounds,
				"minflt", (double)rf[kind].minor, "majflt", (double)rf[kind].major,
				"minflt_per_sample", (double)rf[kind].minor / n,
				"majflt_per_sample", (double)rf[kind].major / n,
				"ratio_to_map_read_baseline", rr.typ,
				"ratio_to_map_read_baseline_round_min", rr.lo,
				"ratio_to_map_read_baseline_round_max", rr.hi, NULL);
		se_free(&rse[kind]);
	}
	if (jf) {
		fm_report_json_close(&j);
		if (fclose(jf)) {
			perror(json_path);
			return 1;
		}
	}
	pmem_unmap(B.raw, B.raw_len);
	unlink(raw_path);
	unlink(path);
	free(grains);
	return 0;
}
