/* tables.c -- what fm-bench-agent prints: the method beside the figures,
 * one row per case (the columns of report.h, t_typical = the median of
 * the per-round medians), the hit decision's scaling, each path beside its
 * floor with the design's target (printed, never asserted), the commits
 * with the owner's counters, the owner's CPU; and all of it as JSON. */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench_agent.h"
#include "flashmeta/error.h"

static char hit_names[2][3][BA_MAX_THREADS][40];

static const char *kind_label[3] = { "agent io_begin+plan+io_end", "floor fm_cache_lookup",
				     "floor flat-bitmap probe" };
static const char *kind_key[3] = { "hit", "lookup", "bitmap" };

void run_series_init(struct run *R)
{
	static const struct {
		int i;
		const char *name, *unit;
	} fixed[] = {
		{ S_TIMER, "timer (two clock reads)", "nsec" },
		{ S_CPUCAS, "cpu-cas (local word)", "nsec" },
		{ S_BRACKET, "  var: io_begin+io_end only", "nsec" },
		{ S_PLAN, "  var: plan only (bracket open)", "nsec" },
		{ S_MISS, "agent is_split (miss, READ)", "nsec" },
		{ S_MISS_RB, "  var: agent read_bitmap 64 B", "nsec" },
		{ S_READ_EV, "floor lane READ 64 B", "nsec" },
		{ S_READ_BUSY, "floor lane READ 64 B (busy)", "nsec" },
		{ S_LOCKPAIR, "agent lock+unlock", "nsec" },
		{ S_LOCK, "  agent lock alone", "nsec" },
		{ S_UNLOCK, "  agent unlock alone", "nsec" },
		{ S_CAS2_EV, "floor 2 lane CAS", "nsec" },
		{ S_CASRD_EV, "floor CAS+READ, then CAS", "nsec" },
		{ S_CASRD1_EV, "floor CAS+READ together", "nsec" },
		{ S_CAS1_EV, "floor 1 lane CAS", "nsec" },
		{ S_CAS2_BUSY, "floor 2 lane CAS (busy)", "nsec" },
		{ S_CASRD_BUSY, "floor CAS+READ, then CAS (busy)", "nsec" },
		{ S_CASRD1_BUSY, "floor CAS+READ together (busy)", "nsec" },
		{ S_CAS1_BUSY, "floor 1 lane CAS (busy)", "nsec" },
		{ S_C1, "agent lock+commit (1 proc)", "nsec" },
		{ S_C1_LOCK, "  lock alone", "nsec" },
		{ S_C1_COMMIT, "  commit_split alone", "nsec" },
		{ S_C2, "agent lock+commit (2 procs)", "nsec" },
		{ S_MSGRTT, "floor message round trip", "nsec" },
		{ S_HANDOFF, "floor thread hand-off round trip", "nsec" },
		{ S_MSYNC, "floor msync 4 KiB (pool dir)", "nsec" },
		{ S_RATE1, "commits/s, 1 process", "ops/s" },
		{ S_RATE2, "commits/s, 2 processes", "ops/s" },
	};

	for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++) {
		R->S[fixed[i].i].name = fixed[i].name;
		R->S[fixed[i].i].unit = fixed[i].unit;
	}
	for (unsigned k = 0; k < 3; k++)
		for (unsigned t = 0; t < R->opt->nthreads; t++) {
			snprintf(hit_names[0][k][t], sizeof(hit_names[0][k][t]), "%s x%u",
				 kind_key[k], R->opt->threads[t]);
			snprintf(hit_names[1][k][t], sizeof(hit_names[1][k][t]), "%s x%u aggregate",
				 kind_key[k], R->opt->threads[t]);
			R->S[S_HIT0 + k * BA_MAX_THREADS + t].name = hit_names[0][k][t];
			R->S[S_HIT0 + k * BA_MAX_THREADS + t].unit = "nsec";
			R->S[S_HITR0 + k * BA_MAX_THREADS + t].name = hit_names[1][k][t];
			R->S[S_HITR0 + k * BA_MAX_THREADS + t].unit = "Mops/s";
		}
}

static double typ(const struct run *R, int i)
{
	struct series_stats ss;

	se_stats(&R->S[i], &ss);
	return ss.st.median;
}

static double cpu_ms_ticks(const struct cpu_phase *p)
{
	return (double)(p->b.ticks - p->a.ticks) * 1000.0 / (double)sysconf(_SC_CLK_TCK);
}

static double cpu_ms_sched(const struct cpu_phase *p)
{
	return (double)(p->b.sched_ns - p->a.sched_ns) / 1e6;
}

static double wall_ms(const struct cpu_phase *p)
{
	return (double)(p->b.wall_ns - p->a.wall_ns) / 1e6;
}

/* one comparison row of the summary; target <= 0: none */
struct cmp_row {
	const char *what, *against;
	double path, floor, ratio, target;
	bool le; /* target is an upper bound (ratio <= target) */
	const char *note;
};

static void cmp_print(const struct cmp_row *c)
{
	char tgt[32] = "-", got[8] = "";

	if (c->target > 0) {
		snprintf(tgt, sizeof(tgt), "%s %.2f", c->le ? "<=" : ">=", c->target);
		snprintf(got, sizeof(got), "%s",
			 (c->le ? c->ratio <= c->target : c->ratio >= c->target) ? "yes" : "NO");
	}
	printf("%-32s %-32s %12.2f %12.2f %8.2f %10s %6s%s%s\n", c->what, c->against, c->path,
	       c->floor, c->ratio, tgt, got, c->note ? "  " : "", c->note ? c->note : "");
}

static void cmp_json(struct fm_json *j, const struct cmp_row *c)
{
	struct fm_report_stats st = { .n = 1, .min = c->ratio, .median = c->ratio,
				      .avg = c->ratio, .p99 = c->ratio, .p999 = c->ratio,
				      .max = c->ratio };
	char name[128];

	snprintf(name, sizeof(name), "ratio: %s / %s", c->what, c->against);
	fm_report_json_result(j, name, "ratio", &st, "path", c->path, "floor", c->floor, "target",
			      c->target > 0 ? c->target : NAN, NULL);
}

static void print_header(const struct run *R)
{
	const struct ba_opts *o = R->opt;

	printf("# fm-bench-agent: provider %s, owner %s (pid %d, lease 3000 ms, pool in %s, "
	       "store persist %s); agents spin %u us before sleeping on a completion\n",
	       o->provider, R->owner_bin, (int)R->owner_pid, o->pool_dir, R->oc_end.persist,
	       o->spin_us == FM_AGENT_NO_SPIN ? 0 : o->spin_us ? o->spin_us : 50);
	printf("# %u rounds reported (+1 warm-up dropped); per round: %u ops per per-op "
	       "batch, %u hit batches of ~%u ms per case and thread count, %u commits per "
	       "batch and process\n",
	       o->rounds, o->batch, HIT_BATCHES, o->hit_ms, o->commit_batch);
	printf("# hit decisions per batch (counted before the rounds to last ~%u ms on one "
	       "thread): path %" PRIu64 ", lookup %" PRIu64 ", bitmap %" PRIu64
	       ", bracket %" PRIu64 ", plan %" PRIu64 "\n",
	       o->hit_ms, R->hit_ops[HIT_PATH], R->hit_ops[HIT_LOOKUP], R->hit_ops[HIT_BITMAP],
	       R->hit_ops[HIT_BRACKET], R->hit_ops[HIT_PLAN]);
	printf("# machine: %ld CPUs; engine threads %s; this process's main thread, the "
	       "agent's protocol thread, the owner, the peer and the floor server are not "
	       "pinned; load average %s at start, %s at end; run took %.1f s\n",
	       sysconf(_SC_NPROCESSORS_ONLN),
	       o->pin ? "pinned (thread i -> CPU i mod CPUs)" : "not pinned", R->la0, R->la1,
	       R->seconds);
	printf("#\n# method:\n"
	       "#  per-op rows: one clock read before and one after each call; a sample is\n"
	       "#   that one operation's wall time and includes one clock read (timer row).\n"
	       "#  hit rows (hit/lookup/bitmap, var:): batch-timed; a sample is one engine\n"
	       "#   thread's batch time / its decisions (threads start together from a\n"
	       "#   start line); aggregate = all threads' decisions / (first thread's\n"
	       "#   start to last thread's end).\n"
	       "#  t_typical = median of the per-round medians; n, min, avg, 99%%, 99.9%%,\n"
	       "#   max over every sample of the reported rounds.\n"
	       "#  interleaving: every round runs every case; a path's batch and its\n"
	       "#   floor's batch run back to back, which one first alternating by round;\n"
	       "#   the three hit kinds alternate batch by batch.\n"
	       "#  floor = raw lane operations (fm_lane_post_* + fm_lane_wait) on a floor\n"
	       "#   server forked by this run, serving a REMOTE_READ and a REMOTE_ATOMIC\n"
	       "#   region as the owner serves its bitmap and lock table, with the agent's\n"
	       "#   transport settings (event wait mode, lane depth 4)%s.\n"
	       "#  an shm atomic, measured here: lane CAS %.0f ns typical (post + wait, one\n"
	       "#   clock read included), CPU CAS on a local word %.0f ns, timer %.0f ns.\n"
	       "#  sanity: %" PRIu64 " bitmap READs during the hit batches (0 expected);\n"
	       "#   %.2f READs per miss (1 expected).\n",
	       R->have_busy ? "; the (busy) rows spin on the\n#   completion queue instead, as "
			      "perftest does"
			    : ";\n#   on shm an operation completes at post: the wait mode changes "
			      "nothing",
	       typ(R, S_CAS1_EV), typ(R, S_CPUCAS), typ(R, S_TIMER), R->hit_fetches,
	       R->miss_calls ? (double)R->miss_fetches / (double)R->miss_calls : 0.0);
}

static FILE *json_begin(const struct run *R, struct fm_json *j)
{
	const struct ba_opts *o = R->opt;
	char tl[64] = "";
	FILE *f;

	if (!o->json)
		return NULL;
	f = fopen(o->json, "w");
	if (!f)
		ba_die(-errno, "--json %s", o->json);
	for (unsigned i = 0; i < o->nthreads; i++)
		snprintf(tl + strlen(tl), sizeof(tl) - strlen(tl), "%s%u", i ? "," : "",
			 o->threads[i]);
	fm_report_json_open(j, f, "fm-bench-agent");
	fm_report_json_param_str(j, "provider", o->provider);
	fm_report_json_param_str(j, "addr", o->addr);
	fm_report_json_param_str(j, "device", o->device ? o->device : "");
	fm_report_json_param_num(j, "rounds", o->rounds);
	fm_report_json_param_num(j, "batch", o->batch);
	fm_report_json_param_num(j, "hit_ms", o->hit_ms);
	fm_report_json_param_num(j, "hit_batches_per_round", HIT_BATCHES);
	fm_report_json_param_num(j, "hit_ops_path", (double)R->hit_ops[HIT_PATH]);
	fm_report_json_param_num(j, "hit_ops_lookup", (double)R->hit_ops[HIT_LOOKUP]);
	fm_report_json_param_num(j, "hit_ops_bitmap", (double)R->hit_ops[HIT_BITMAP]);
	fm_report_json_param_num(j, "commit_batch", o->commit_batch);
	fm_report_json_param_num(j, "cpu_ops", o->cpu_ops);
	fm_report_json_param_str(j, "threads", tl);
	fm_report_json_param_num(j, "pinned", o->pin);
	fm_report_json_param_num(j, "agent_spin_us",
				 o->spin_us == FM_AGENT_NO_SPIN ? 0 : o->spin_us ? o->spin_us : 50);
	fm_report_json_param_num(j, "cpus", (double)sysconf(_SC_NPROCESSORS_ONLN));
	fm_report_json_param_str(j, "loadavg_start", R->la0);
	fm_report_json_param_str(j, "loadavg_end", R->la1);
	fm_report_json_param_str(j, "owner", R->owner_bin);
	fm_report_json_param_str(j, "pool_dir", o->pool_dir);
	fm_report_json_param_str(j, "store_persist", R->oc_end.persist);
	fm_report_json_param_num(j, "grains", (double)R->grains);
	fm_report_json_param_num(j, "grain_size", BA_GRAIN_SIZE);
	fm_report_json_param_num(j, "lease_ms", 3000);
	fm_report_json_param_str(j, "typical", "median of per-round medians");
	if (o->ref_atomic_ns > 0)
		fm_report_json_param_num(j, "ref_atomic_ns", o->ref_atomic_ns);
	if (o->ref_read_ns > 0)
		fm_report_json_param_num(j, "ref_read_ns", o->ref_read_ns);
	fm_report_json_results(j);
	return f;
}

static void print_rows(const struct run *R, struct fm_json *j)
{
	static const struct {
		const char *title;
		int rows[14];
	} groups[] = {
		{ "reference", { S_TIMER, S_CPUCAS, -1 } },
		{ "2 miss", { S_MISS, S_MISS_RB, S_READ_EV, S_READ_BUSY, -1 } },
		{ "3 lock+unlock", { S_LOCKPAIR, S_LOCK, S_UNLOCK, S_CAS2_EV, S_CASRD_EV,
				     S_CASRD1_EV, S_CAS1_EV, S_CAS2_BUSY, S_CASRD_BUSY,
				     S_CASRD1_BUSY, S_CAS1_BUSY, -1 } },
		{ "4 lock+commit (5: the 2-process row is this process's share)",
		  { S_C1, S_C1_LOCK, S_C1_COMMIT, S_C2, S_MSGRTT, S_HANDOFF, S_MSYNC, -1 } },
	};

	printf("\nper operation (t_typical = median of %u round medians)\n", R->opt->rounds);
	se_header("[nsec]");
	for (size_t g = 0; g < sizeof(groups) / sizeof(groups[0]); g++) {
		printf("-- %s\n", groups[g].title);
		for (int i = 0; groups[g].rows[i] >= 0; i++)
			if (R->S[groups[g].rows[i]].used)
				se_row(&R->S[groups[g].rows[i]], NULL, NULL);
	}
	printf("-- 1 hit decision (batch time / n, per engine thread)\n");
	for (unsigned ti = 0; ti < R->opt->nthreads; ti++)
		for (unsigned k = 0; k < 3; k++) {
			char label[64];

			snprintf(label, sizeof(label), "%s x%u", kind_label[k], R->opt->threads[ti]);
			se_row(&R->S[S_HIT0 + k * BA_MAX_THREADS + ti], label, NULL);
		}
	se_row(&R->S[S_BRACKET], NULL, NULL);
	se_row(&R->S[S_PLAN], NULL, NULL);
	if (!j)
		return;
	for (int i = 0; i < S_N; i++) {
		struct series_stats ss;

		if (!R->S[i].used)
			continue;
		se_stats(&R->S[i], &ss);
		fm_report_json_result(j, R->S[i].name, R->S[i].unit, &ss.st, "rounds",
				      (double)ss.rounds, "pooled_median", ss.pooled_median, NULL);
	}
}

static void print_scaling(const struct run *R)
{
	printf("\nhit decision, aggregate over engine threads of one agent (median of round "
	       "medians)\n");
	printf("%-36s %9s %16s %16s %16s\n", "case", "threads", "aggregate", "vs 1 thread",
	       "per thread");
	printf("%-36s %9s %16s %16s %16s\n", "", "", "[Mops/s]", "[x]", "[nsec]");
	for (unsigned k = 0; k < 3; k++) {
		double base = 0;

		for (unsigned ti = 0; ti < R->opt->nthreads; ti++)
			if (R->opt->threads[ti] == 1)
				base = typ(R, S_HITR0 + k * BA_MAX_THREADS + ti);
		for (unsigned ti = 0; ti < R->opt->nthreads; ti++) {
			double m = typ(R, S_HITR0 + k * BA_MAX_THREADS + ti);
			char ratio[24] = "-";

			if (base > 0)
				snprintf(ratio, sizeof(ratio), "%.2f", m / base);
			printf("%-36s %9u %16.2f %16s %16.2f\n", kind_label[k], R->opt->threads[ti], m,
			       ratio, typ(R, S_HIT0 + k * BA_MAX_THREADS + ti));
		}
	}
	printf("(the flat-bitmap floor touches no shared line: its scaling is what the machine "
	       "gives this many threads now)\n");
}

#define CMP(w, a, p, f, t, le, note) \
	(cmp[nc++] = (struct cmp_row){ (w), (a), (p), (f), (p) / (f), (t), (le), (note) })

static void print_cmp(const struct run *R, struct fm_json *j)
{
	const struct ba_opts *o = R->opt;
	double hit1 = 0, look1 = 0, bm1 = 0, hitx1 = 0, hitx2 = 0, bmx1 = 0, bmx2 = 0;
	struct cmp_row cmp[20];
	int nc = 0;

	for (unsigned ti = 0; ti < o->nthreads; ti++) {
		if (o->threads[ti] == 1) {
			hit1 = typ(R, S_HIT0 + ti);
			look1 = typ(R, S_HIT0 + BA_MAX_THREADS + ti);
			bm1 = typ(R, S_HIT0 + 2 * BA_MAX_THREADS + ti);
			hitx1 = typ(R, S_HITR0 + ti);
			bmx1 = typ(R, S_HITR0 + 2 * BA_MAX_THREADS + ti);
		}
		if (o->threads[ti] == 2) {
			hitx2 = typ(R, S_HITR0 + ti);
			bmx2 = typ(R, S_HITR0 + 2 * BA_MAX_THREADS + ti);
		}
	}
	if (hit1 > 0) {
		CMP("hit x1 [ns]", "fm_cache_lookup x1", hit1, look1, 1.5, true, NULL);
		CMP("hit x1 [ns]", "flat-bitmap probe x1", hit1, bm1, 0, true, NULL);
	}
	if (hitx1 > 0 && hitx2 > 0)
		CMP("hit x2 aggregate [Mops/s]", "hit x1 aggregate", hitx2, hitx1, 1.8, false,
		    NULL);
	if (bmx1 > 0 && bmx2 > 0) {
		CMP("bitmap x2 aggregate [Mops/s]", "bitmap x1 aggregate", bmx2, bmx1, 0, false,
		    "(control: what 2 threads can get)");
		if (hitx1 > 0 && hitx2 > 0)
			CMP("hit x2/x1 scaling", "bitmap x2/x1 scaling", hitx2 / hitx1,
			    bmx2 / bmx1, 0, false, "(the hit's scaling, the machine's taken out)");
	}
	CMP("miss (is_split) [ns]", "floor lane READ 64 B", typ(R, S_MISS), typ(R, S_READ_EV), 0,
	    true, NULL);
	if (R->have_busy)
		CMP("miss (is_split) [ns]", "floor READ 64 B (busy)", typ(R, S_MISS),
		    typ(R, S_READ_BUSY), 0, true, NULL);
	CMP("lock+unlock [ns]", "floor 2 lane CAS", typ(R, S_LOCKPAIR), typ(R, S_CAS2_EV), 0, true,
	    NULL);
	CMP("lock+unlock [ns]", "floor CAS+READ, CAS", typ(R, S_LOCKPAIR), typ(R, S_CASRD_EV), 0,
	    true, "(the agent's own operations)");
	CMP("lock alone [ns]", "floor CAS+READ together", typ(R, S_LOCK), typ(R, S_CASRD1_EV), 0,
	    true, NULL);
	if (R->have_busy)
		CMP("lock alone [ns]", "floor CAS+READ (busy)", typ(R, S_LOCK),
		    typ(R, S_CASRD1_BUSY), 0, true, NULL);
	if (!R->have_busy) {
		CMP("miss (is_split) [ns]", "1000 ns", typ(R, S_MISS), 1000, 1.0, true,
		    "(design: under 1 us on shm)");
		CMP("lock alone [ns]", "1000 ns", typ(R, S_LOCK), 1000, 1.0, true,
		    "(design: under 1 us on shm)");
		CMP("lock+unlock [ns]", "1000 ns", typ(R, S_LOCKPAIR), 1000, 1.0, true, NULL);
	}
	if (o->ref_atomic_ns > 0) {
		CMP("lock alone [ns]", "ib_atomic_lat (given)", typ(R, S_LOCK), o->ref_atomic_ns,
		    1.15, true, NULL);
		CMP("floor 1 lane CAS [ns]", "ib_atomic_lat (given)",
		    typ(R, R->have_busy ? S_CAS1_BUSY : S_CAS1_EV), o->ref_atomic_ns, 0, true,
		    "(the transport alone)");
	}
	if (o->ref_read_ns > 0) {
		CMP("miss (is_split) [ns]", "ib_read_lat (given)", typ(R, S_MISS), o->ref_read_ns,
		    1.15, true, NULL);
		CMP("floor lane READ 64 B [ns]", "ib_read_lat (given)",
		    typ(R, R->have_busy ? S_READ_BUSY : S_READ_EV), o->ref_read_ns, 0, true,
		    "(the transport alone)");
	}
	CMP("commits/s, 2 processes", "commits/s, 1 process", typ(R, S_RATE2), typ(R, S_RATE1),
	    1.8, false, NULL);
	CMP("commit_split alone [ns]", "floor message round trip", typ(R, S_C1_COMMIT),
	    typ(R, S_MSGRTT), 0, true, NULL);

	printf("\neach path beside its floor (typical values; ratio = path / floor; the design "
	       "targets are printed, not asserted)\n");
	printf("%-32s %-32s %12s %12s %8s %10s %6s\n", "path", "floor", "path", "floor", "ratio",
	       "target", "met");
	for (int i = 0; i < nc; i++) {
		cmp_print(&cmp[i]);
		if (j)
			cmp_json(j, &cmp[i]);
	}
}

static void print_commits(const struct run *R)
{
	const struct fm_bench_owner_counts *oc = &R->oc_end;

	printf("\ncommits (lock + commit_split of a fresh grain; the owner's status counters "
	       "around every batch)\n");
	printf("%-22s %12s %10s %14s %14s %10s %14s %16s\n", "processes", "commits/s",
	       "vs 1 proc", "SPLIT_COMMITs", "store commits", "drains", "on commit thr",
	       "persists/commit");
	for (int i = 0; i < 2; i++) {
		const struct commit_acc *c = &R->acc[i];
		uint64_t persists = oc->have_group ? c->drains : c->store;
		char dr[24] = "-", th[24] = "-";

		if (oc->have_group) {
			snprintf(dr, sizeof(dr), "%" PRIu64, c->drains);
			snprintf(th, sizeof(th), "%" PRIu64, c->thread);
		}
		printf("%-22s %12.0f %10.2f %14" PRIu64 " %14" PRIu64 " %10s %14s %16.3f\n",
		       i ? "2 (this one + peer)" : "1 (this one)", typ(R, i ? S_RATE2 : S_RATE1),
		       typ(R, i ? S_RATE2 : S_RATE1) / typ(R, S_RATE1), c->owner, c->store, dr, th,
		       c->owner ? (double)persists / (double)c->owner : 0.0);
	}
	printf("(SPLIT_COMMITs: \"locks ... commits N\" of the owner's `status`; store commits: "
	       "\"store ... commits N\"%s; persist = %s)\n",
	       oc->have_group ? "; drains and the commit thread's share: \"group-commit ...\"; "
				"persists = drains"
			      : ", one drain each (this owner prints no group-commit line)",
	       oc->persist);
}

static void print_cpu(const struct run *R, struct fm_json *j)
{
	const struct cpu_phase *ph = R->ph;
	bool sch = ph[PH_IDLE].a.have_sched;
	/* the idle owner's CPU per wall ms (schedstat ns, else ticks) */
	double idle_rate = (sch ? cpu_ms_sched(&ph[PH_IDLE]) : cpu_ms_ticks(&ph[PH_IDLE])) /
			   wall_ms(&ph[PH_IDLE]);

	printf("\nowner CPU (/proc/%d/stat utime+stime, clock ticks of %.0f ms; and the sum of "
	       "its threads' /proc/PID/task/*/schedstat ns%s); this client process's beside it\n",
	       (int)R->owner_pid, 1000.0 / (double)sysconf(_SC_CLK_TCK),
	       sch ? "" : ": not available here, ticks only");
	printf("%-20s %8s %9s %9s %10s %10s %12s %10s %12s\n", "phase", "ops", "wall", "owner",
	       "owner", "idle", "owner", "owner", "client");
	printf("%-20s %8s %9s %9s %10s %10s %12s %10s %12s\n", "", "", "", "ticks", "sched",
	       "expects", "-idle/1e5", "-idle/op", "sched/1e5");
	printf("%-20s %8s %9s %9s %10s %10s %12s %10s %12s\n", "", "", "[ms]", "[ms]", "[ms]",
	       "[ms]", "[ms]", "[us]", "[ms]");
	for (int i = 0; i < PH_N; i++) {
		const struct cpu_phase *p = &ph[i];
		double idle_ms = idle_rate * wall_ms(p);
		double used = sch ? cpu_ms_sched(p) : cpu_ms_ticks(p);
		double client = (double)(p->sb.sched_ns - p->sa.sched_ns) / 1e6;
		double own = p->ops ? (used - idle_ms) * 1e5 / (double)p->ops : NAN;
		double cper = p->ops ? client * 1e5 / (double)p->ops : NAN;

		printf("%-20s %8" PRIu64 " %9.1f %9.1f %10.3f %10.3f ", p->name, p->ops, wall_ms(p),
		       cpu_ms_ticks(p), cpu_ms_sched(p), idle_ms);
		if (p->ops)
			printf("%12.3f %10.3f %12.3f\n", own, own / 100, cper);
		else
			printf("%12s %10s %12s\n", "-", "-", "-");
		if (j) {
			struct fm_report_stats s1 = { .n = 1, .min = own, .median = own, .avg = own,
						      .p99 = own, .p999 = own, .max = own };
			char name[64];

			snprintf(name, sizeof(name), "owner cpu: %s", p->name);
			fm_report_json_result(j, name, "ms per 1e5 ops", &s1, "ops", (double)p->ops,
					      "wall_ms", wall_ms(p), "owner_ticks_ms", cpu_ms_ticks(p),
					      "owner_sched_ms", cpu_ms_sched(p), "idle_expected_ms",
					      idle_ms, "client_sched_ms_per_1e5", cper, NULL);
		}
	}
	printf("(idle: the owner with both clients joined and nothing called -- lease renewals, "
	       "its 150 ms tick; idle expects = that rate x the\n phase's wall time; owner -idle "
	       "= its CPU beyond that; client = every thread of this process, the agent's "
	       "protocol thread included)\n");
	if (R->have_busy)
		printf("(verbs: rxe runs one-sided operations in the kernel (softirq), on whatever "
		       "CPU and task it interrupts: not accounted to the owner)\n");
	if (idle_rate > 0.5)
		printf("(NOTE: the idle owner used %.0f%% of a CPU: it does not sleep while idle, "
		       "and every figure above shared the machine with it)\n", idle_rate * 100);
}

void tables_print(struct run *R)
{
	struct fm_json j;
	FILE *jf;

	print_header(R);
	jf = json_begin(R, &j);
	print_rows(R, jf ? &j : NULL);
	print_scaling(R);
	print_cmp(R, jf ? &j : NULL);
	print_commits(R);
	print_cpu(R, jf ? &j : NULL);
	if (jf) {
		fm_report_json_close(&j);
		fclose(jf);
	}
}
