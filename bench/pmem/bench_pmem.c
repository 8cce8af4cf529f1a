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
 *                   Baseline read_2MiB: pmem_map_file + reading the bitmap.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <libpmem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "flashmeta/error.h"
#include "flashmeta/pmem_store.h"
#include "report.h"

#define GRAINS (UINT64_C(1) << 24) /* 1 TiB / 64 KiB */
#define GRAIN_SIZE (UINT64_C(64) << 10)
#define ID 1

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

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ "json", required_argument, NULL, 'j' },
		{ "dir", required_argument, NULL, 'd' },
		{ "quick", no_argument, NULL, 'q' },
		{ NULL, 0, NULL, 0 },
	};
	const char *json_path = NULL, *dir = getenv("FM_PMEM_DIR");
	int quick = 0, o;
	char path[512], raw_path[512];

	while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (o) {
		case 'h':
			printf("usage: fm-bench-pmem [--dir DIR] [--json FILE] [--quick]\n"
			       "  group-commit split throughput at batch sizes 1..4096 and\n"
			       "  open+validate time of a 1 TiB / 64 KiB-grain pool, with\n"
			       "  raw libpmem baselines.  DIR: where pools go (a DAX mount\n"
			       "  measures DAX); default $FM_PMEM_DIR, else /dev/shm.\n");
			return 0;
		case 'j': json_path = optarg; break;
		case 'd': dir = optarg; break;
		case 'q': quick = 1; break;
		default: return 2;
		}
	}
	if (!dir)
		dir = "/dev/shm";
	snprintf(path, sizeof(path), "%s/fm-bench-pmem.%d.pool", dir, (int)getpid());
	snprintf(raw_path, sizeof(raw_path), "%s/fm-bench-pmem.%d.raw", dir, (int)getpid());

	FILE *jf = json_path ? fopen(json_path, "w") : NULL;
	struct fm_json j;
	struct fm_store *s = make_pool(path);
	struct fm_store_stats st;
	const void *view;
	size_t vlen;
	enum fm_store_view vmode;

	fm_store_stats(s, &st);
	fm_store_bitmap_view(s, ID, &view, &vlen, &vmode);
	printf("# fm-bench-pmem: dir %s, persistence %s (is_pmem=%d), view %s,"
	       " %s\n", dir, st.persist_mode, st.is_pmem, fm_store_view_name(vmode),
	       quick ? "quick" : "full");
	if (jf) {
		fm_report_json_open(&j, jf, "fm-bench-pmem");
		fm_report_json_param_str(&j, "dir", dir);
		fm_report_json_param_str(&j, "persist_mode", st.persist_mode);
		fm_report_json_param_num(&j, "is_pmem", st.is_pmem);
		fm_report_json_param_str(&j, "view", fm_store_view_name(vmode));
		fm_report_json_param_num(&j, "quick", quick);
		fm_report_json_param_num(&j, "grains", (double)GRAINS);
		fm_report_json_results(&j);
	}

	/* raw baseline file: same size as the bitmap */
	size_t raw_len;
	int raw_pmem;
	unlink(raw_path);
	uint64_t *raw = pmem_map_file(raw_path, GRAINS / 8, PMEM_FILE_CREATE, 0644,
				      &raw_len, &raw_pmem);
	if (!raw) {
		perror("raw map");
		return 1;
	}

	size_t max_rounds = quick ? 200 : 2000;
	double budget_ns = quick ? 0.1e9 : 0.5e9;
	double *samples = malloc(max_rounds * sizeof(double));
	uint64_t next = 0, gen = 1;

	printf("\n## group commit (sample = one batch: B split_set + 1 commit)\n");
	fm_report_header(stdout, "nsec");
	uint64_t *grains = malloc(4096 * sizeof(*grains));
	struct { char name[32]; double bits_s, commits_s, bits_typ; } sum[24];
	int nsum = 0;
	for (uint32_t batch = 1; batch <= 4096; batch *= 4) {
		for (int kind = 0; kind < 3; kind++) {
			static const char *const kname[] = {
				"split_commit", "split_many", "raw_persist" };
			size_t n = 0, warm = 5;
			double total = 0;
			char name[32];
			snprintf(name, sizeof(name), "%s/%u", kname[kind], batch);
			if (next + (uint64_t)batch * (max_rounds + warm) > GRAINS) {
				fm_store_map_restart(s, ID, &gen); /* fresh bitmap */
				memset(raw, 0, raw_len);
				pmem_msync(raw, raw_len);
				next = 0;
			}
			for (size_t r = 0; r < max_rounds + warm; r++) {
				uint64_t t0 = fm_now_ns();
				if (kind == 0) {
					for (uint32_t b = 0; b < batch; b++) {
						int ret = fm_store_split_set(s, ID, gen, perm(next++));
						if (ret != 1)
							die("split_set", ret);
					}
					int ret = fm_store_split_commit(s);
					if (ret != (int)batch)
						die("commit", ret);
				} else if (kind == 1) {
					for (uint32_t b = 0; b < batch; b++)
						grains[b] = perm(next++);
					int ret = fm_store_split_set_many(s, ID, gen, grains, batch);
					if (ret != (int)batch)
						die("split_set_many", ret);
					ret = fm_store_split_commit(s);
					if (ret != (int)batch)
						die("commit", ret);
				} else {
					uintptr_t lo = UINTPTR_MAX, hi = 0;
					for (uint32_t b = 0; b < batch; b++) {
						uint64_t g = perm(next++);
						uint64_t *w = &raw[g / 64];
						__atomic_fetch_or(w, UINT64_C(1) << (g % 64),
								  __ATOMIC_RELAXED);
						if (raw_pmem) {
							pmem_flush(w, 8);
						} else {
							if ((uintptr_t)w < lo) lo = (uintptr_t)w;
							if ((uintptr_t)w + 8 > hi) hi = (uintptr_t)w + 8;
						}
					}
					if (raw_pmem)
						pmem_drain();
					else
						pmem_msync((void *)lo, hi - lo);
				}
				double dt = (double)(fm_now_ns() - t0);
				if (r >= warm) {
					samples[n++] = dt;
					total += dt;
					if (total > budget_ns && n >= 20)
						break;
				}
			}
			double bits_s = (double)batch * (double)n / (total / 1e9);
			double commits_s = (double)n / (total / 1e9);
			struct fm_report_stats rs = fm_report_row(stdout, name, samples, n);
			/* from the median batch: robust to a noisy host's outliers */
			double bits_typ = (double)batch / (rs.median / 1e9);
			if (jf)
				fm_report_json_result(&j, name, "nsec", &rs, "batch",
						      (double)batch, "bits_per_s", bits_s,
						      "commits_per_s", commits_s,
						      "bits_per_s_typical", bits_typ, NULL);
			snprintf(sum[nsum].name, sizeof(sum[nsum].name), "%s", name);
			sum[nsum].bits_typ = bits_typ;
			sum[nsum].bits_s = bits_s;
			sum[nsum++].commits_s = commits_s;
		}
	}
	printf("\n%-20s %14s %14s %22s\n", "case", "bits[1/s]", "commits[1/s]",
	       "bits@typical[1/s]");
	for (int k = 0; k < nsum; k++)
		printf("%-20s %14.0f %14.0f %22.0f\n", sum[k].name, sum[k].bits_s,
		       sum[k].commits_s, sum[k].bits_typ);

	/* recovery: half the bits set, then open + close repeatedly */
	fm_store_map_restart(s, ID, &gen);
	for (uint64_t g = 0; g < GRAINS; g += 2) {
		fm_store_split_set(s, ID, gen, g);
		if ((g & 0xfffff) == 0)
			fm_store_split_commit(s);
	}
	fm_store_split_commit(s);
	fm_store_close(&s);

	size_t rounds = quick ? 10 : 50;
	printf("\n## recovery: open + validate + close, 1 TiB at 64 KiB grains\n");
	fm_report_header(stdout, "nsec");
	for (int kind = 0; kind < 2; kind++) {
		size_t n = 0;
		for (size_t r = 0; r < rounds + 2; r++) {
			uint64_t t0 = fm_now_ns();
			if (kind == 0) {
				int ret = fm_store_open(&s, path, NULL);
				if (ret)
					die("open", ret);
				fm_store_close(&s);
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
			if (r >= 2)
				samples[n++] = (double)(fm_now_ns() - t0);
		}
		const char *name = kind ? "map_read_baseline" : "open_1TiB_64KiB";
		struct fm_report_stats rs = fm_report_row(stdout, name, samples, n);
		if (jf)
			fm_report_json_result(&j, name, "nsec", &rs, NULL);
	}
	if (jf) {
		fm_report_json_close(&j);
		fclose(jf);
	}
	pmem_unmap(raw, raw_len);
	unlink(raw_path);
	unlink(path);
	free(grains);
	free(samples);
	return 0;
}
