/* results.c -- flashmeta-bench: the method beside the figures, the
 * tables (perftest's columns, a unit in every one), each path beside its
 * floor, and all of it as JSON with every parameter and the machine. */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "jsonw.h"

const char *const hb_variant_name[V_N] = { "engine, cache", "engine, no cache",
					   "engine, cache without merging",
					   "engine, by message (RPC per I/O)",
					   "volumes only (no FlashCopy)" };
const char *const hb_variant_key[V_N] = { "cache", "nocache", "nomerge", "msg", "volume" };

const char *const hb_class_name[C_BASE_N] = {
	"hit", "miss: READ, then direct", "miss: redirect (READ, src, READ)",
	"lock, found split (lost race)", "split: lock+copy+flush+commit",
	"source read (no decision)", "volume I/O (movers alone)",
};
const char *const hb_class_key[C_BASE_N] = { "hit", "miss", "redirect", "lock_race", "split",
					     "source_read", "volume" };

const char *const hb_part_name[PT_BASE_N] = { "  split: start to locked",
					     "  split: SPLIT_COMMIT to answer",
					     "  lost race: start to locked" };
const char *const hb_part_key[PT_BASE_N] = { "split_to_locked", "split_commit",
					    "lock_race_to_locked" };

const char *const hb_floor_name[F_N] = { "READ 64 B", "CAS+READ together", "CAS+READ, then CAS",
					 "CAS", "message round trip" };
const char *const hb_floor_key[F_N] = { "read64", "casread", "casread_cas", "cas", "msg_rtt" };

const char *const hb_trig_name[T_N] = { "map-prepare", "map-start", "trigger: prepare + start",
					"map-stop", "map-show (no revoke)" };
const char *const hb_trig_key[T_N] = { "map_prepare", "map_start", "trigger", "map_stop",
				       "ctl_rtt" };

const char *const hb_method_text =
	"Processes: a real flashmeta-owner (fork+exec, pool in a temp dir), N client\n"
	"processes of M engine threads each, a floor server; the coordinator opens no\n"
	"transport.  Every I/O goes through fm_engine_rw (engine.h) on reference volumes\n"
	"(refvol.h): closed loop, one I/O in flight per thread.  A sample is one I/O:\n"
	"one clock read before the call and one after (CLOCK_MONOTONIC), in usec.\n"
	"Variants, the same I/O streams (same seed per round): 'cache' = the agent with\n"
	"its confirmation cache, warm from the pre-split and the warm-up round; 'no\n"
	"cache' = an agent with fm_agent_cfg.no_cache: it keeps no confirmation, so\n"
	"every decision READs the owner's bitmap (its own mapping set, the same\n"
	"pre-split grains); 'no merge' = an agent with fm_agent_cfg.cache_no_merge:\n"
	"its cache keeps every fill as a range of its own, never joined to the ranges\n"
	"it touches (its own mapping set too), so a lookup's run ends at its fill's\n"
	"end and the cache holds more, smaller ranges; 'by message' = an agent with\n"
	"fm_agent_cfg.decide_by_message, the lock-manager baseline (RPC per I/O): every\n"
	"decision is a message to the owner and its answer -- SPLIT_QUERY for the split\n"
	"bits of a window (instead of the READ), LOCK_REQUEST granted by the owner's\n"
	"CAS (no client CAS), SPLIT_QUERY under the lock, UNLOCK -- and nothing is\n"
	"cached (its own mapping set too); 'volumes only' =\n"
	"fm_refvol_do on the same volumes, no FlashCopy at all.  Floor: raw\n"
	"fm_lane_post_* + fm_lane_wait on a floor server serving a REMOTE_READ and a\n"
	"REMOTE_ATOMIC region as the owner does, from every engine thread at once, with\n"
	"the agent's transport settings; message round trips from thread 0 of each client.\n"
	"Rounds: round 0 is warm-up and dropped; each round runs the six units one after\n"
	"the other, the first rotating by round.  t_typical = median of the per-round\n"
	"medians (of all samples, marked *, when a round had fewer than 20 of the path);\n"
	"n, min, avg, 99%, 99.9%, max over every sample pooled; I/Os/s =\n"
	"I/Os of all threads / (first start to last end), typical = median over rounds;\n"
	"decisions = grains of the I/Os that ask whether a grain is split (all but\n"
	"source reads).\n"
	"Paths, from each I/O's fm_engine_io_stats and the engine's trace hook: hit (no\n"
	"READ, no lock), miss (READ, then as asked), redirect (a target read of unsplit\n"
	"grains: READ, the source read, the re-check READ), lock found split (locked,\n"
	"but another I/O split the grain meanwhile), split (locked, copied, flushed,\n"
	"committed), source read (no decision).  Parts, timed inside the I/O from the\n"
	"trace hook's events: a split's start to its lock (the plan's READ and an\n"
	"uncontended lock) and its SPLIT_COMMIT to the answer; a lost race's start to\n"
	"the lock handed over (a contended lock).  Contended locks: also the owner's\n"
	"LOCK_REQUEST count over the batches.  Ratio = path t_typical / floor, the floor\n"
	"being what the path must do at the least, each part at its t_typical: the\n"
	"mover (the volumes-only I/O), READs, CAS+READ, lock (CAS+READ, then CAS), msg\n"
	"rtt.\n"
	"Owner CPU: utime+stime of /proc/PID/stat, or the schedstat ns of its threads\n"
	"when the same threads live at both ends, sampled at each batch's start line\n"
	"and end; '-idle' subtracts the rate of the owner idle with every client joined.\n"
	"Split fraction: the owner's count (map-show) after the warm-up and at the end:\n"
	"writes of the measured phase split grains, so it drifts up during the run.\n"
	"Trigger (--triggers K, a seventh unit of every round): the cache engine runs\n"
	"the round's streams on a mapping of its own while the coordinator cycles it K\n"
	"times on the owner's control socket: map-prepare, map-start, map-show, a pause\n"
	"(COPYING), map-stop, a pause (STOPPED); pauses of --batch-ms / 2K.  A sample is\n"
	"one command from before fm_ownerd_ctl's connect to the answer's last line: a\n"
	"Unix-socket connect and round trip, the owner's revoke -- RELEASE_REQUEST to\n"
	"every session holding the mapping (all 4N agents) and their RELEASED, each\n"
	"after draining its I/O on it -- the store transition (durable), MAP_GRANT.  The\n"
	"owner reports no revoke duration of its own: the release round trip is inside\n"
	"every prepare, start and stop, not apart.  Baselines of the same rounds: the\n"
	"map-show (the socket round trip, no revoke) and the floor's message round trip\n"
	"(a release round trip takes at least one).  trigger = prepare + start.\n"
	"Operations per I/O, per variant: the agents' counters (fm_agent_stats) and the\n"
	"owner's `status` counters, deltas over the variant's kept batches, / its I/Os.\n"
	"READ = fetches + locks (a FETCH is one READ of a bitmap window; a lock\n"
	"acquisition one READ of the grain's word, posted with its CAS or after a\n"
	"hand-over); CAS = locks + unlocks (one CAS to take the word, one to release\n"
	"it); client messages = SPLIT_COMMITs sent + LOCK_REQUESTs + SPLIT_QUERYs (the\n"
	"owner's received counts) [+ UNLOCKs by message = unlocks, by-message variant];\n"
	"owner messages = SPLIT_ACKs + LOCK_GRANTs + query answers (one per query).  By\n"
	"message, fetches and locks are messages, not READs or CASes.  Not counted (no\n"
	"counter): CASes retried against a word another thread of the same agent holds,\n"
	"the READ of a re-entered lock, an UNLOCK message after a release CAS that found\n"
	"waiters, error answers, the owner's own CAS and READ on its memory.";

/* -------------------------------------------------------------- point */

void hb_point_init(struct hb_point *pt)
{
	memset(pt, 0, sizeof(*pt));
	pt->owner_sched = pt->client_sched = true; /* until a batch had no schedstat */
}

/* t_typical: the median of the round medians when every kept round had
 * HB_ROUND_MIN samples of the series or more; else (a rare path: its
 * round medians are a handful of samples each) the pooled median */
#define HB_ROUND_MIN 20u

static bool typ_pooled(const struct series_stats *s)
{
	return s->rounds < opt.rounds || s->min_round_n < HB_ROUND_MIN;
}

static double typ(const struct series_stats *s)
{
	if (!s->st.n)
		return NAN;
	return typ_pooled(s) ? s->pooled_median : s->st.median;
}

void hb_point_finish(struct hb_point *pt)
{
	for (unsigned v = 0; v < V_N; v++) {
		struct series_stats ss;

		for (unsigned c = 0; c < SE_N; c++)
			se_stats(&pt->S[v][c], &pt->st[v][c]);
		se_stats(&pt->all[v], &pt->st_all[v]);
		se_stats(&pt->iops[v], &ss);
		pt->iops_typ[v] = typ(&ss);
		pt->iops_min[v] = ss.st.n ? ss.st.min : NAN;
		pt->iops_max[v] = ss.st.n ? ss.st.max : NAN;
		se_stats(&pt->dps[v], &ss);
		pt->dps_typ[v] = typ(&ss);
	}
	for (unsigned f = 0; f < F_N; f++)
		se_stats(&pt->F[f], &pt->st_f[f]);
	for (unsigned t = 0; t < T_N; t++)
		se_stats(&pt->T[t], &pt->st_t[t]);
}

void hb_point_free(struct hb_point *pt)
{
	for (unsigned v = 0; v < V_N; v++) {
		for (unsigned c = 0; c < SE_N; c++)
			se_free(&pt->S[v][c]);
		se_free(&pt->all[v]);
		se_free(&pt->iops[v]);
		se_free(&pt->dps[v]);
	}
	for (unsigned f = 0; f < F_N; f++)
		se_free(&pt->F[f]);
	for (unsigned t = 0; t < T_N; t++)
		se_free(&pt->T[t]);
}

/* The floor of class c (hot or not) and its name; NAN: none.  What the
 * path must do at the least, each part at its floor's t_typical: the
 * mover I/O (the volumes-only variant's), the bitmap READs, the lock
 * word's CAS+READ and release CAS, a message round trip (SPLIT_COMMIT;
 * for a lost race the LOCK_REQUEST).  The copy of a split is left out:
 * "at least". */
static double floor_of(const struct hb_point *pt, unsigned c, const char **name)
{
	double mover = typ(&pt->st_all[V_VOLUME]), rd = typ(&pt->st_f[F_READ]);
	double lock = typ(&pt->st_f[F_CASRD_CAS]), msg = typ(&pt->st_f[F_MSG]);

	if (c >= C_N) { /* a part */
		switch ((c - C_N) % PT_BASE_N) {
		case PT_SPLIT_LOCK:
			*name = "READ + CAS+READ";
			return rd + typ(&pt->st_f[F_CASRD]);
		case PT_SPLIT_COMMIT:
			*name = "msg rtt";
			return msg;
		default:
			*name = "READ + CAS+READ + msg rtt";
			return rd + typ(&pt->st_f[F_CASRD]) + msg;
		}
	}
	switch (c % C_BASE_N) {
	case C_HIT:
	case C_SRCREAD:
		*name = "mover";
		return mover;
	case C_MISS:
		*name = "READ + mover";
		return rd + mover;
	case C_REDIRECT:
		*name = "2 READ + mover";
		return 2 * rd + mover;
	case C_LOCKRACE:
	case C_SPLIT:
		*name = "lock + msg rtt + mover";
		return lock + msg + mover;
	default:
		*name = "-";
		return NAN;
	}
}

/* series c of a variant: a class (c < C_N) or a part */
static bool is_hot(unsigned c)
{
	return c < C_N ? c >= C_BASE_N : c - C_N >= PT_BASE_N;
}

static void class_label(unsigned c, char *out, size_t cap)
{
	if (c < C_N)
		snprintf(out, cap, "%s%s", is_hot(c) ? "hot: " : "", hb_class_name[c % C_BASE_N]);
	else
		snprintf(out, cap, "  %s%s", is_hot(c) ? "hot: " : "",
			 hb_part_name[(c - C_N) % PT_BASE_N] + 2);
}

static void class_key(unsigned c, char *out, size_t cap)
{
	if (c < C_N)
		snprintf(out, cap, "%s%s", is_hot(c) ? "hot_" : "", hb_class_key[c % C_BASE_N]);
	else
		snprintf(out, cap, "%s%s", is_hot(c) ? "hot_" : "",
			 hb_part_key[(c - C_N) % PT_BASE_N]);
}

/* the order of the rows: every class, each followed by its parts */
static unsigned listing(unsigned *out)
{
	unsigned n = 0;

	for (unsigned c = 0; c < C_N; c++) {
		unsigned p0 = C_N + (c >= C_BASE_N ? PT_BASE_N : 0);

		out[n++] = c;
		if (c % C_BASE_N == C_SPLIT) {
			out[n++] = p0 + PT_SPLIT_LOCK;
			out[n++] = p0 + PT_SPLIT_COMMIT;
		} else if (c % C_BASE_N == C_LOCKRACE) {
			out[n++] = p0 + PT_RACE_LOCK;
		}
	}
	return n;
}

/* ------------------------------------------------------- ops per I/O */

void hb_ops_of(const struct hb_point *pt, unsigned v, struct hb_ops *o)
{
	const struct hb_agent_delta *a = &pt->ag[v];
	double n = (double)pt->ios[v];
	bool msg = v == V_MSG;

	memset(o, 0, sizeof(*o));
	o->ios = pt->ios[v];
	if (!pt->ios[v] || v >= HB_SETS) {
		o->reads = o->cas = o->client_msgs = o->owner_msgs = NAN;
		o->fetches = o->locks = o->unlocks = o->commits_sent = NAN;
		o->lock_requests = o->queries = o->unlock_msgs = o->acks = o->lock_grants = NAN;
		return;
	}
	o->fetches = (double)a->fetches / n;
	o->locks = (double)a->locks / n;
	o->unlocks = (double)a->unlocks / n;
	o->commits_sent = (double)a->commits_sent / n;
	o->lock_requests = (double)pt->lock_requests[v] / n;
	o->queries = (double)pt->queries[v] / n;
	o->acks = (double)pt->acks[v] / n;
	o->lock_grants = (double)pt->lock_grants[v] / n;
	/* by message every unlock is an UNLOCK message; one-sided, a release
	 * CAS that found waiters sends one too, and nothing counts those */
	o->unlock_msgs = msg ? o->unlocks : NAN;
	/* by message a fetch is a SPLIT_QUERY and a lock a LOCK_REQUEST plus
	 * a SPLIT_QUERY: messages the owner counted, no READ, no CAS */
	o->reads = msg ? 0 : o->fetches + o->locks;
	o->cas = msg ? 0 : o->locks + o->unlocks;
	o->client_msgs = o->commits_sent + o->lock_requests + o->queries + (msg ? o->unlocks : 0);
	o->owner_msgs = o->acks + o->lock_grants + o->queries;
}

/* ------------------------------------------------------------- header */

static const char *pattern_name(void)
{
	return opt.pattern == PAT_SEQ ? "seq" : opt.pattern == PAT_ZIPF ? "zipf" : "uniform";
}

static void size_str(uint64_t b, char *out, size_t cap)
{
	if (b >= (1ull << 30) && !(b % (1ull << 30)))
		snprintf(out, cap, "%" PRIu64 " GiB", b >> 30);
	else if (b >= (1ull << 20) && !(b % (1ull << 20)))
		snprintf(out, cap, "%" PRIu64 " MiB", b >> 20);
	else if (b >= 1024 && !(b % 1024))
		snprintf(out, cap, "%" PRIu64 " KiB", b >> 10);
	else
		snprintf(out, cap, "%" PRIu64 " B", b);
}

void hb_print_header(void)
{
	struct hb_machine m;
	char vs[32], gs[32], is[32];
	const char *l = hb_method_text;

	hb_machine(&m);
	size_str(opt.volume_size, vs, sizeof(vs));
	size_str(opt.grain_size, gs, sizeof(gs));
	size_str(opt.io_size, is, sizeof(is));
	printf("# flashmeta-bench: %u client%s x %u engine thread%s over %s (%s), owner %s\n",
	       opt.clients, opt.clients > 1 ? "s" : "", opt.threads, opt.threads > 1 ? "s" : "",
	       opt.provider, opt.addr, opt.owner_bin);
	printf("# volumes %s, %u mapping%s per set of %s (%" PRIu64 " grains of %s), I/O %s\n",
	       opt.vol_kind, opt.mappings, opt.mappings > 1 ? "s" : "", vs,
	       opt.volume_size / opt.grain_size, gs, is);
	printf("# workload %s", pattern_name());
	if (opt.pattern == PAT_ZIPF)
		printf(" (theta %.3f)", opt.theta);
	printf(", mix rs=%u ws=%u rt=%u wt=%u, split layout %s", opt.mix[0], opt.mix[1],
	       opt.mix[2], opt.mix[3], opt.split_prefix ? "prefix" : "random");
	if (!opt.split_prefix && opt.split_run > 1)
		printf(" (runs of %u grains)", opt.split_run);
	printf(", hot %s", opt.hot ? "" : "off");
	if (opt.hot)
		printf("%u clients on one grain", opt.hot);
	printf("\n# %u rounds (+1 warm-up, dropped) of %u units: ", opt.rounds, U_N);
	if (opt.count)
		printf("%" PRIu64 " I/Os per thread and variant", opt.count);
	else
		printf("%u ms per variant", opt.batch_ms);
	printf(", %u floor ops per kind and thread; seed %" PRIu64 "\n", opt.floor_ops, opt.seed);
	printf("# machine: %ld CPUs (%s), %s, host %s\n", m.cpus, m.model, m.kernel, m.host);
	if ((long)(opt.clients * opt.threads) >= m.cpus)
		printf("# note: %u engine threads run flat out on %ld CPUs, beside the owner and "
		       "the agents' threads: a step that\n#  sleeps (a commit, a contended lock, "
		       "a message) also waits for a CPU to run on again\n",
		       opt.clients * opt.threads, m.cpus);
	printf("#\n# method:\n");
	while (*l) {
		const char *e = strchr(l, '\n');
		int n = e ? (int)(e - l) : (int)strlen(l);

		printf("#  %.*s\n", n, l);
		l += n + (e ? 1 : 0);
	}
}

/* -------------------------------------------------------------- tables */

static void lat_header(void)
{
	printf("%-40s %9s %7s %10s %12s %10s %10s %10s %10s\n", "case", "n", "share", "t_min",
	       "t_typical", "t_avg", "99%", "99.9%", "t_max");
	printf("%-40s %9s %7s %10s %12s %10s %10s %10s %10s\n", "", "", "[%]", "[usec]",
	       "[usec]", "[usec]", "[usec]", "[usec]", "[usec]");
}

static void lat_row(const char *label, const struct series_stats *s, double share)
{
	char sh[16] = "-", t[32];

	if (isfinite(share))
		snprintf(sh, sizeof(sh), "%.1f", share);
	snprintf(t, sizeof(t), "%.2f%s", typ(s), typ_pooled(s) ? "*" : "");
	printf("%-40s %9zu %7s %10.2f %12s %10.2f %10.2f %10.2f %10.2f\n", label, s->st.n, sh,
	       s->st.min, t, s->st.avg, s->st.p99, s->st.p999, s->st.max);
}

static double per_m(double ms, uint64_t n)
{
	return n ? ms * 1e6 / (double)n : NAN;
}

static double owner_beyond_idle(const struct hb_point *pt, unsigned v)
{
	return pt->owner_cpu_ms[v] - pt->idle_owner_ms_per_s * pt->owner_wall_s[v];
}

static void print_throughput(const struct hb_point *pt)
{
	printf("\nthroughput (typical = median of the %u round figures; CPU over the kept "
	       "rounds)\n", opt.rounds);
	printf("%-30s %10s %19s %12s %9s %7s %9s %13s %13s %13s\n", "variant", "I/Os/s",
	       "rounds min..max", "decisions/s", "vs cache", "errors", "restarts", "owner CPU",
	       "owner CPU", "client CPU");
	printf("%-30s %10s %19s %12s %9s %7s %9s %13s %13s %13s\n", "", "[IO/s]", "[IO/s]",
	       "[1/s]", "[x]", "", "", "[ms/1e6 dec]", "-idle [ms/..]", "[ms/1e6 IO]");
	for (unsigned v = 0; v < V_N; v++) {
		char dps[24] = "-", o1[24] = "-", o2[24] = "-", mm[40];

		if (v != V_VOLUME) {
			snprintf(dps, sizeof(dps), "%.0f", pt->dps_typ[v]);
			snprintf(o1, sizeof(o1), "%.1f", per_m(pt->owner_cpu_ms[v],
							       pt->decisions[v]));
			snprintf(o2, sizeof(o2), "%.1f", per_m(owner_beyond_idle(pt, v),
							       pt->decisions[v]));
		}
		snprintf(mm, sizeof(mm), "%.0f..%.0f", pt->iops_min[v], pt->iops_max[v]);
		printf("%-30s %10.0f %19s %12s %9.2f %7" PRIu64 " %9" PRIu64 " %13s %13s %13.1f\n",
		       hb_variant_name[v], pt->iops_typ[v], mm, dps,
		       pt->iops_typ[v] / pt->iops_typ[0], pt->errors[v], pt->restarts[v], o1, o2,
		       per_m(pt->client_cpu_ms[v], pt->ios[v]));
	}
	printf("(rounds min..max: the spread of the per-round I/Os/s; owner CPU by %s; idle "
	       "owner: %.2f ms of CPU per s;\n client CPU: every thread of every client "
	       "process, by %s)\n",
	       pt->owner_sched ? "schedstat ns" : "clock ticks", pt->idle_owner_ms_per_s,
	       pt->client_sched ? "schedstat ns" : "clock ticks");
	for (unsigned v = 0; v < HB_SETS; v++) {
		const struct hb_agent_delta *a = &pt->ag[v];
		uint64_t dec_ios = 0;
		uint64_t hits = pt->st[v][C_HIT].st.n + pt->st[v][C_HIT + C_BASE_N].st.n;

		for (unsigned c = 0; c < C_N; c++)
			if (c % C_BASE_N != C_SRCREAD && c % C_BASE_N != C_VOL)
				dec_ios += pt->st[v][c].st.n;
		printf("%s: %.1f%% of deciding I/Os were hits; cache lookups %" PRIu64
		       ", hit %.1f%%; in the caches at the end %" PRIu64 " ranges, %" PRIu64
		       " bytes; agent %s %" PRIu64 ", locks %" PRIu64 ", commits %" PRIu64
		       "; owner LOCK_REQUESTs (contended) %" PRIu64 ", SPLIT_COMMITs %" PRIu64 "\n",
		       hb_variant_name[v], dec_ios ? 100.0 * (double)hits / (double)dec_ios : 0.0,
		       a->lookups,
		       a->lookups ? 100.0 * (double)a->cache_hits / (double)a->lookups : 0.0,
		       a->ranges, a->bytes, v == V_MSG ? "SPLIT_QUERY answers" : "READs",
		       a->fetches, a->locks, a->commits, pt->lock_requests[v],
		       pt->owner_commits[v]);
	}
}

static void print_latency(const struct hb_point *pt)
{
	printf("\nlatency per path (t_typical = median of %u round medians; share = of the "
	       "variant's I/Os)\n", opt.rounds);
	unsigned order[SE_N], n = listing(order);

	lat_header();
	for (unsigned v = 0; v < V_N; v++) {
		printf("-- %s\n", hb_variant_name[v]);
		for (unsigned i = 0; i < n; i++) {
			unsigned c = order[i];
			char label[64];

			if (!pt->st[v][c].st.n)
				continue;
			class_label(c, label, sizeof(label));
			lat_row(label, &pt->st[v][c],
				c < C_N ? 100.0 * (double)pt->st[v][c].st.n /
						  (double)pt->st_all[v].st.n
					: NAN);
		}
		if (v != V_VOLUME)
			lat_row("all I/Os", &pt->st_all[v], 100.0);
	}
	printf("-- transport floor (raw lane operations, every engine thread at once)\n");
	for (unsigned f = 0; f < F_N; f++)
		lat_row(hb_floor_name[f], &pt->st_f[f], NAN);
	printf("(* t_typical is the median of all samples: a kept round had fewer than %u "
	       "samples of the path, or none.\n indented: parts of the I/Os above them, timed "
	       "inside them through the engine's trace hook)\n", HB_ROUND_MIN);
}

static void print_ratios(const struct hb_point *pt)
{
	unsigned order[SE_N], n = listing(order);

	printf("\neach path beside its floor (t_typical / t_typical)\n");
	printf("%-48s %-28s %11s %11s %8s\n", "path", "floor", "path", "floor", "ratio");
	printf("%-48s %-28s %11s %11s %8s\n", "", "", "[usec]", "[usec]", "[x]");
	for (unsigned v = 0; v < HB_SETS; v++)
		for (unsigned i = 0; i < n; i++) {
			unsigned c = order[i];
			char label[96], cl[64];
			const char *fname;
			double fl, p = typ(&pt->st[v][c]);

			if (!pt->st[v][c].st.n || c % C_BASE_N == C_VOL)
				continue;
			fl = floor_of(pt, c, &fname);
			class_label(c, cl, sizeof(cl));
			snprintf(label, sizeof(label), "%s: %s", hb_variant_key[v], cl);
			printf("%-48s %-28s %11.2f %11.2f %8.2f\n", label, fname, p, fl, p / fl);
		}
	for (unsigned v = 0; v < HB_SETS; v++) {
		char label[64];

		snprintf(label, sizeof(label), "%s: all I/Os", hb_variant_key[v]);
		printf("%-48s %-28s %11.2f %11.2f %8.2f\n", label, "mover",
		       typ(&pt->st_all[v]), typ(&pt->st_all[V_VOLUME]),
		       typ(&pt->st_all[v]) / typ(&pt->st_all[V_VOLUME]));
	}
	printf("%-48s %-28s %11.2f %11.2f %8.2f\n", "nocache: all I/Os", "cache: all I/Os",
	       typ(&pt->st_all[V_NOCACHE]), typ(&pt->st_all[V_CACHE]),
	       typ(&pt->st_all[V_NOCACHE]) / typ(&pt->st_all[V_CACHE]));
	printf("%-48s %-28s %11.2f %11.2f %8.2f\n", "nomerge: all I/Os", "cache: all I/Os",
	       typ(&pt->st_all[V_NOMERGE]), typ(&pt->st_all[V_CACHE]),
	       typ(&pt->st_all[V_NOMERGE]) / typ(&pt->st_all[V_CACHE]));
	/* closed loop, one I/O in flight per thread: I/Os/s = threads / t_avg,
	 * so the mean, not the median, is what throughput sees */
	printf("the cache's gain: I/Os/s x%.2f, t_avg of all I/Os x%.2f (no cache / cache; "
	       "the medians above are of the cheap paths,\n the mean carries the splits)\n",
	       pt->iops_typ[V_CACHE] / pt->iops_typ[V_NOCACHE],
	       pt->st_all[V_NOCACHE].st.avg / pt->st_all[V_CACHE].st.avg);
	printf("range merging: the caches held %.2fx the ranges and %.2fx the bytes without it "
	       "(no merge / cache, at the end);\n I/Os/s x%.2f (cache / no merge)\n",
	       (double)pt->ag[V_NOMERGE].ranges / (double)pt->ag[V_CACHE].ranges,
	       (double)pt->ag[V_NOMERGE].bytes / (double)pt->ag[V_CACHE].bytes,
	       pt->iops_typ[V_CACHE] / pt->iops_typ[V_NOMERGE]);
	printf("against the lock-manager baseline (RPC per I/O): decisions/s x%.2f, I/Os/s x%.2f, "
	       "t_avg of all I/Os x%.2f (cache / by message)\n",
	       pt->dps_typ[V_CACHE] / pt->dps_typ[V_MSG],
	       pt->iops_typ[V_CACHE] / pt->iops_typ[V_MSG],
	       pt->st_all[V_MSG].st.avg / pt->st_all[V_CACHE].st.avg);
}

static void print_ops(const struct hb_point *pt)
{
	printf("\noperations per I/O (agent and owner counters over the variant's kept batches / "
	       "its I/Os; READ, CAS one-sided, msgs two-sided)\n");
	printf("%-34s %10s %7s %7s %8s %8s | %7s %7s %7s %7s %7s %7s %7s %7s %7s\n", "variant",
	       "I/Os", "READ", "CAS", "msgs", "msgs", "fetch", "lock", "unlock", "COMMIT",
	       "LOCK_RQ", "QUERY", "UNLOCK", "ACK", "GRANT");
	printf("%-34s %10s %7s %7s %8s %8s | %7s %7s %7s %7s %7s %7s %7s %7s %7s\n", "", "[n]",
	       "[/IO]", "[/IO]", "client", "owner", "[/IO]", "[/IO]", "[/IO]", "sent", "recv",
	       "recv", "msg", "sent", "sent");
	for (unsigned v = 0; v < HB_SETS; v++) {
		struct hb_ops o;
		char um[16] = "n/c";

		hb_ops_of(pt, v, &o);
		if (isfinite(o.unlock_msgs))
			snprintf(um, sizeof(um), "%.3f", o.unlock_msgs);
		printf("%-34s %10" PRIu64 " %7.3f %7.3f %8.3f %8.3f | %7.3f %7.3f %7.3f %7.3f %7.3f "
		       "%7.3f %7s %7.3f %7.3f\n", hb_variant_name[v], o.ios, o.reads, o.cas,
		       o.client_msgs, o.owner_msgs, o.fetches, o.locks, o.unlocks, o.commits_sent,
		       o.lock_requests, o.queries, um, o.acks, o.lock_grants);
	}
	printf("(READ = fetch + lock, CAS = lock + unlock; by message both are 0: its fetches "
	       "and locks are SPLIT_QUERY and\n LOCK_REQUEST messages.  n/c: no counter -- the "
	       "UNLOCK message a release CAS sends when it finds waiters.\n Not counted "
	       "anywhere: CASes retried against our own thread's word, the READ of a re-entered "
	       "lock,\n error answers, the owner's own CAS and READ on its memory)\n");
}

static void print_triggers(const struct hb_point *pt)
{
	double msg = typ(&pt->st_f[F_MSG]), ctl = typ(&pt->st_t[T_CTL]);

	if (!opt.triggers)
		return;
	printf("\ntrigger and release round trip: %" PRIu64 " cycles on the trigger mapping "
	       "(%u per round), %u holders (%u agents x %u clients),\n under the cache engine's "
	       "I/O on it: %" PRIu64 " I/Os in %.2f s (%.0f IO/s), %" PRIu64 " restarts; "
	       "stops skipped (copy complete): %" PRIu64 "\n", pt->trig_cycles, opt.triggers,
	       HB_SETS * opt.clients, HB_SETS, opt.clients, pt->trig_ios, pt->trig_seconds,
	       pt->trig_seconds > 0 ? (double)pt->trig_ios / pt->trig_seconds : NAN,
	       pt->trig_restarts, pt->trig_skipped_stops);
	lat_header();
	for (unsigned t = 0; t < T_N; t++)
		if (pt->st_t[t].st.n)
			lat_row(hb_trig_name[t], &pt->st_t[t], NAN);
	lat_row("floor: message round trip", &pt->st_f[F_MSG], NAN);
	printf("(each of prepare, start and stop holds one release round trip: RELEASE_REQUEST to "
	       "every holder, their RELEASED\n after draining their I/O, plus the store's durable "
	       "transition and MAP_GRANT; the owner reports no revoke\n duration, so the whole "
	       "control command is timed.  trigger / msg rtt %.1fx, map-start / map-show "
	       "%.1fx;\n map-show runs right after map-start, map-start right after "
	       "map-prepare; the first command of a cycle, map-prepare,\n comes after a pause "
	       "and may wait for the owner to be scheduled)\n",
	       typ(&pt->st_t[T_TRIGGER]) / msg, typ(&pt->st_t[T_START]) / ctl);
}

void hb_print_point(const struct hb_point *pt)
{
	printf("\n== split %.1f%%: grains split %.2f%% / %.2f%% / %.2f%% / %.2f%% (cache / "
	       "no-cache / no-merge / by-message set) at the measured phase's start, %.2f%% / "
	       "%.2f%% / %.2f%% / %.2f%% at its end\n", pt->split_pct, pt->split_start[0],
	       pt->split_start[1], pt->split_start[2], pt->split_start[3], pt->split_end[0],
	       pt->split_end[1], pt->split_end[2], pt->split_end[3]);
	printf("   pre-split took %.2f s; store persist %s; load average %s at start, %s at end; "
	       "the point took %.1f s\n", pt->presplit_s, pt->persist, pt->la0, pt->la1,
	       pt->run_s);
	print_throughput(pt);
	print_latency(pt);
	print_ratios(pt);
	print_ops(pt);
	print_triggers(pt);
}

void hb_print_sweep(struct hb_point *const *pts, unsigned n)
{
	printf("\n== sweep: throughput vs split fraction (typical I/Os/s; split at the measured "
	       "phase's start -> end, cache set)\n");
	printf("%8s %18s %12s %14s %12s %12s %12s %12s %12s %12s %14s %12s %12s\n", "split",
	       "measured", "cache", "cache", "no cache", "no cache", "no merge", "no merge",
	       "by message", "by message", "volumes", "cache /", "cache / msg");
	printf("%8s %18s %12s %14s %12s %12s %12s %12s %12s %12s %14s %12s %12s\n", "[%]", "[%]",
	       "[IO/s]", "[dec/s]", "[IO/s]", "[dec/s]", "[IO/s]", "[dec/s]", "[IO/s]", "[dec/s]",
	       "only [IO/s]", "no cache [x]", "[dec/s x]");
	for (unsigned i = 0; i < n; i++) {
		const struct hb_point *p = pts[i];
		char meas[32];

		snprintf(meas, sizeof(meas), "%.1f -> %.1f", p->split_start[0], p->split_end[0]);
		printf("%8.1f %18s %12.0f %14.0f %12.0f %12.0f %12.0f %12.0f %12.0f %12.0f %14.0f "
		       "%12.2f %12.2f\n",
		       p->split_pct, meas, p->iops_typ[V_CACHE], p->dps_typ[V_CACHE],
		       p->iops_typ[V_NOCACHE], p->dps_typ[V_NOCACHE], p->iops_typ[V_NOMERGE],
		       p->dps_typ[V_NOMERGE], p->iops_typ[V_MSG], p->dps_typ[V_MSG],
		       p->iops_typ[V_VOLUME], p->iops_typ[V_CACHE] / p->iops_typ[V_NOCACHE],
		       p->dps_typ[V_CACHE] / p->dps_typ[V_MSG]);
	}
}

/* ---------------------------------------------------------------- JSON */

static void json_stats(struct fm_jw *w, const struct series_stats *s)
{
	fm_jw_str(w, "unit", "usec");
	fm_jw_u64(w, "n", s->st.n);
	fm_jw_u64(w, "rounds", s->rounds);
	fm_jw_num(w, "t_min", s->st.min);
	fm_jw_num(w, "t_typical", typ(s));
	fm_jw_str(w, "typical_of", typ_pooled(s) ? "pooled samples" : "round medians");
	fm_jw_u64(w, "min_round_n", s->min_round_n);
	fm_jw_num(w, "t_median_rounds", s->st.n ? s->st.median : NAN);
	fm_jw_num(w, "t_median_pooled", s->st.n ? s->pooled_median : NAN);
	fm_jw_num(w, "t_avg", s->st.avg);
	fm_jw_num(w, "p99", s->st.p99);
	fm_jw_num(w, "p99_9", s->st.p999);
	fm_jw_num(w, "t_max", s->st.max);
}

void hb_json_params(struct fm_jw *w)
{
	fm_jw_obj(w, "params");
	fm_jw_str(w, "provider", opt.provider);
	fm_jw_str(w, "addr", opt.addr);
	fm_jw_str(w, "device", opt.device ? opt.device : "");
	fm_jw_str(w, "owner", opt.owner_bin);
	fm_jw_str(w, "pool_dir", opt.pool_dir);
	fm_jw_str(w, "volumes", opt.vol_kind);
	fm_jw_str(w, "vol_dir", opt.vol_dir ? opt.vol_dir : "");
	fm_jw_u64(w, "clients", opt.clients);
	fm_jw_u64(w, "threads", opt.threads);
	fm_jw_str(w, "workload", pattern_name());
	fm_jw_num(w, "theta", opt.theta);
	fm_jw_obj(w, "mix_pct");
	fm_jw_u64(w, "rs", opt.mix[FM_IO_READ_SOURCE]);
	fm_jw_u64(w, "ws", opt.mix[FM_IO_WRITE_SOURCE]);
	fm_jw_u64(w, "rt", opt.mix[FM_IO_READ_TARGET]);
	fm_jw_u64(w, "wt", opt.mix[FM_IO_WRITE_TARGET]);
	fm_jw_end(w);
	fm_jw_u64(w, "io_size", opt.io_size);
	fm_jw_u64(w, "grain_size", opt.grain_size);
	fm_jw_u64(w, "volume_size", opt.volume_size);
	fm_jw_u64(w, "grains", opt.volume_size / opt.grain_size);
	fm_jw_u64(w, "mappings", opt.mappings);
	fm_jw_arr(w, "split_pct");
	for (unsigned i = 0; i < opt.npoints; i++)
		fm_jw_num(w, NULL, opt.split_pct[i]);
	fm_jw_end(w);
	fm_jw_bool(w, "sweep", opt.sweep);
	fm_jw_str(w, "split_layout", opt.split_prefix ? "prefix" : "random");
	fm_jw_u64(w, "split_run", opt.split_run);
	fm_jw_u64(w, "hot_clients", opt.hot);
	fm_jw_u64(w, "rounds", opt.rounds);
	fm_jw_u64(w, "warmup_rounds", 1);
	fm_jw_u64(w, "batch_ms", opt.count ? 0 : opt.batch_ms);
	fm_jw_u64(w, "count", opt.count);
	fm_jw_u64(w, "floor_ops", opt.floor_ops);
	fm_jw_u64(w, "triggers", opt.triggers);
	fm_jw_u64(w, "seed", opt.seed);
	fm_jw_u64(w, "lease_ms", 3000);
	fm_jw_bool(w, "quick", opt.quick);
	fm_jw_arr(w, "contention_k");
	for (unsigned i = 0; i < opt.ncontend; i++)
		fm_jw_u64(w, NULL, opt.contend_k[i]);
	fm_jw_end(w);
	fm_jw_str(w, "typical", "median of per-round medians");
	fm_jw_str(w, "latency_unit", "usec");
	fm_jw_end(w);
}

static void json_variant(struct fm_jw *w, const struct hb_point *pt, unsigned v)
{
	const struct hb_agent_delta *a = &pt->ag[v];
	unsigned order[SE_N], n = listing(order);

	fm_jw_obj(w, NULL);
	fm_jw_str(w, "variant", hb_variant_key[v]);
	fm_jw_str(w, "name", hb_variant_name[v]);
	fm_jw_num(w, "ios_per_s", pt->iops_typ[v]);
	fm_jw_num(w, "ios_per_s_round_min", pt->iops_min[v]);
	fm_jw_num(w, "ios_per_s_round_max", pt->iops_max[v]);
	fm_jw_num(w, "ios_per_s_mean", pt->seconds[v] > 0 ? (double)pt->ios[v] / pt->seconds[v]
							   : NAN);
	fm_jw_num(w, "decisions_per_s", v == V_VOLUME ? NAN : pt->dps_typ[v]);
	fm_jw_u64(w, "ios", pt->ios[v]);
	fm_jw_u64(w, "decisions", pt->decisions[v]);
	fm_jw_num(w, "seconds", pt->seconds[v]);
	fm_jw_u64(w, "errors", pt->errors[v]);
	fm_jw_u64(w, "restarts", pt->restarts[v]);
	fm_jw_u64(w, "hot_ios", pt->hot_ios[v]);
	fm_jw_num(w, "owner_cpu_ms", pt->owner_cpu_ms[v]);
	fm_jw_num(w, "owner_cpu_window_s", pt->owner_wall_s[v]);
	fm_jw_num(w, "owner_cpu_ms_per_1e6_decisions",
		  v == V_VOLUME ? NAN : per_m(pt->owner_cpu_ms[v], pt->decisions[v]));
	fm_jw_num(w, "owner_cpu_ms_per_1e6_decisions_beyond_idle",
		  v == V_VOLUME ? NAN : per_m(owner_beyond_idle(pt, v), pt->decisions[v]));
	fm_jw_num(w, "client_cpu_ms", pt->client_cpu_ms[v]);
	fm_jw_num(w, "client_cpu_ms_per_1e6_ios", per_m(pt->client_cpu_ms[v], pt->ios[v]));
	fm_jw_u64(w, "owner_lock_requests", pt->lock_requests[v]);
	fm_jw_u64(w, "owner_split_commits", pt->owner_commits[v]);
	if (v != V_VOLUME) {
		struct hb_ops o;

		fm_jw_obj(w, "agent");
		fm_jw_u64(w, "fetches", a->fetches);
		fm_jw_u64(w, "locks", a->locks);
		fm_jw_u64(w, "commits", a->commits);
		fm_jw_u64(w, "commits_sent", a->commits_sent);
		fm_jw_u64(w, "unlocks", a->unlocks);
		fm_jw_end(w);
		fm_jw_u64(w, "owner_lock_grants", pt->lock_grants[v]);
		fm_jw_u64(w, "owner_split_acks", pt->acks[v]);
		fm_jw_u64(w, "owner_split_queries", pt->queries[v]);
		/* null: no counter (unlock_msgs of the one-sided variants) */
		hb_ops_of(pt, v, &o);
		fm_jw_obj(w, "ops_per_io");
		fm_jw_u64(w, "ios", o.ios);
		fm_jw_num(w, "reads", o.reads);
		fm_jw_num(w, "cas", o.cas);
		fm_jw_num(w, "client_msgs", o.client_msgs);
		fm_jw_num(w, "owner_msgs", o.owner_msgs);
		fm_jw_num(w, "fetches", o.fetches);
		fm_jw_num(w, "locks", o.locks);
		fm_jw_num(w, "unlocks", o.unlocks);
		fm_jw_num(w, "split_commits_sent", o.commits_sent);
		fm_jw_num(w, "lock_requests", o.lock_requests);
		fm_jw_num(w, "split_queries", o.queries);
		fm_jw_num(w, "unlock_msgs", o.unlock_msgs);
		fm_jw_num(w, "split_acks", o.acks);
		fm_jw_num(w, "lock_grants", o.lock_grants);
		fm_jw_end(w);
		fm_jw_obj(w, "cache");
		fm_jw_u64(w, "lookups", a->lookups);
		fm_jw_u64(w, "hits", a->cache_hits);
		fm_jw_u64(w, "misses", a->cache_misses);
		fm_jw_num(w, "hit_ratio", a->lookups ? (double)a->cache_hits / (double)a->lookups
						   : NAN);
		fm_jw_u64(w, "inserts", a->inserts);
		fm_jw_u64(w, "evictions", a->evictions);
		fm_jw_u64(w, "bytes_end", a->bytes);
		fm_jw_u64(w, "ranges_end", a->ranges);
		fm_jw_end(w);
	}
	fm_jw_arr(w, "paths");
	for (unsigned i = 0; i < n; i++) {
		unsigned c = order[i];
		char key[32];
		const char *fname;
		double fl;

		if (!pt->st[v][c].st.n)
			continue;
		class_key(c, key, sizeof(key));
		fl = floor_of(pt, c, &fname);
		fm_jw_obj(w, NULL);
		fm_jw_str(w, "case", key);
		if (c >= C_N) {
			unsigned p = (c - C_N) % PT_BASE_N, hot = is_hot(c) ? C_BASE_N : 0;
			char of[32];

			class_key(hot + (p == PT_RACE_LOCK ? C_LOCKRACE : C_SPLIT), of, sizeof(of));
			fm_jw_str(w, "part_of", of);
		}
		json_stats(w, &pt->st[v][c]);
		fm_jw_num(w, "share_pct",
			  c < C_N ? 100.0 * (double)pt->st[v][c].st.n / (double)pt->st_all[v].st.n
				  : NAN);
		fm_jw_str(w, "floor", fname);
		fm_jw_num(w, "floor_t_typical", fl);
		fm_jw_num(w, "ratio_to_floor", typ(&pt->st[v][c]) / fl);
		fm_jw_end(w);
	}
	fm_jw_obj(w, NULL);
	fm_jw_str(w, "case", "all");
	json_stats(w, &pt->st_all[v]);
	fm_jw_num(w, "share_pct", 100);
	fm_jw_str(w, "floor", v == V_VOLUME ? "-" : "mover");
	fm_jw_num(w, "floor_t_typical", v == V_VOLUME ? NAN : typ(&pt->st_all[V_VOLUME]));
	fm_jw_num(w, "ratio_to_floor",
		  v == V_VOLUME ? NAN : typ(&pt->st_all[v]) / typ(&pt->st_all[V_VOLUME]));
	fm_jw_end(w);
	fm_jw_end(w);
	fm_jw_end(w);
}

static void json_point(struct fm_jw *w, const struct hb_point *pt)
{
	fm_jw_obj(w, NULL);
	fm_jw_num(w, "split_pct", pt->split_pct);
	fm_jw_obj(w, "split_start_pct");
	fm_jw_num(w, "cache", pt->split_start[0]);
	fm_jw_num(w, "nocache", pt->split_start[1]);
	fm_jw_num(w, "nomerge", pt->split_start[2]);
	fm_jw_num(w, "msg", pt->split_start[3]);
	fm_jw_end(w);
	fm_jw_obj(w, "split_end_pct");
	fm_jw_num(w, "cache", pt->split_end[0]);
	fm_jw_num(w, "nocache", pt->split_end[1]);
	fm_jw_num(w, "nomerge", pt->split_end[2]);
	fm_jw_num(w, "msg", pt->split_end[3]);
	fm_jw_end(w);
	fm_jw_num(w, "presplit_s", pt->presplit_s);
	fm_jw_num(w, "run_s", pt->run_s);
	fm_jw_str(w, "loadavg_start", pt->la0);
	fm_jw_str(w, "loadavg_end", pt->la1);
	fm_jw_str(w, "store_persist", pt->persist);
	fm_jw_num(w, "idle_owner_cpu_ms_per_s", pt->idle_owner_ms_per_s);
	fm_jw_str(w, "owner_cpu_clock", pt->owner_sched ? "schedstat" : "ticks");
	fm_jw_num(w, "cache_vs_nocache_ios", pt->iops_typ[V_CACHE] / pt->iops_typ[V_NOCACHE]);
	fm_jw_num(w, "nocache_vs_cache_t_avg",
		  pt->st_all[V_NOCACHE].st.avg / pt->st_all[V_CACHE].st.avg);
	fm_jw_num(w, "cache_vs_nomerge_ios", pt->iops_typ[V_CACHE] / pt->iops_typ[V_NOMERGE]);
	fm_jw_num(w, "nomerge_vs_cache_ranges",
		  (double)pt->ag[V_NOMERGE].ranges / (double)pt->ag[V_CACHE].ranges);
	fm_jw_num(w, "nomerge_vs_cache_bytes",
		  (double)pt->ag[V_NOMERGE].bytes / (double)pt->ag[V_CACHE].bytes);
	/* issue 12's figure: the cache against the lock-manager baseline */
	fm_jw_num(w, "cache_vs_msg_decisions", pt->dps_typ[V_CACHE] / pt->dps_typ[V_MSG]);
	fm_jw_num(w, "cache_vs_msg_ios", pt->iops_typ[V_CACHE] / pt->iops_typ[V_MSG]);
	fm_jw_arr(w, "variants");
	for (unsigned v = 0; v < V_N; v++)
		json_variant(w, pt, v);
	fm_jw_end(w);
	if (opt.triggers) {
		double msg = typ(&pt->st_f[F_MSG]);

		fm_jw_obj(w, "triggers");
		fm_jw_u64(w, "cycles", pt->trig_cycles);
		fm_jw_u64(w, "per_round", opt.triggers);
		fm_jw_u64(w, "holders", HB_SETS * opt.clients);
		fm_jw_num(w, "pause_ms", (double)opt.batch_ms / (2.0 * opt.triggers));
		fm_jw_u64(w, "ios", pt->trig_ios);
		fm_jw_num(w, "ios_per_s", pt->trig_seconds > 0 ?
				  (double)pt->trig_ios / pt->trig_seconds : NAN);
		fm_jw_u64(w, "restarts", pt->trig_restarts);
		fm_jw_u64(w, "stops_skipped", pt->trig_skipped_stops);
		fm_jw_str(w, "interval", "one control command: connect, the line, the owner's "
					 "revoke (RELEASE_REQUEST to every holder, their "
					 "RELEASED), the store transition, MAP_GRANT, the answer");
		fm_jw_num(w, "msg_rtt_t_typical", msg);
		fm_jw_num(w, "trigger_vs_msg_rtt", typ(&pt->st_t[T_TRIGGER]) / msg);
		fm_jw_num(w, "trigger_vs_ctl_rtt",
			  typ(&pt->st_t[T_TRIGGER]) / typ(&pt->st_t[T_CTL]));
		fm_jw_arr(w, "commands");
		for (unsigned t = 0; t < T_N; t++) {
			fm_jw_obj(w, NULL);
			fm_jw_str(w, "case", hb_trig_key[t]);
			fm_jw_str(w, "name", hb_trig_name[t]);
			json_stats(w, &pt->st_t[t]);
			fm_jw_end(w);
		}
		fm_jw_end(w);
		fm_jw_end(w);
	}
	fm_jw_arr(w, "floors");
	for (unsigned f = 0; f < F_N; f++) {
		fm_jw_obj(w, NULL);
		fm_jw_str(w, "case", hb_floor_key[f]);
		fm_jw_str(w, "name", hb_floor_name[f]);
		json_stats(w, &pt->st_f[f]);
		fm_jw_end(w);
	}
	fm_jw_end(w);
	fm_jw_end(w);
}

void hb_json_machine(struct fm_jw *w, const char *la0, const char *la1)
{
	struct hb_machine m;

	hb_machine(&m);
	fm_jw_obj(w, "machine");
	fm_jw_u64(w, "cpus", (uint64_t)m.cpus);
	fm_jw_str(w, "cpu_model", m.model);
	fm_jw_str(w, "kernel", m.kernel);
	fm_jw_str(w, "host", m.host);
	fm_jw_str(w, "provider", opt.provider);
	if (la0) {
		fm_jw_str(w, "device", opt.device ? opt.device : "");
		fm_jw_str(w, "loadavg_before", la0);
		fm_jw_str(w, "loadavg_after", la1 ? la1 : "");
	}
	fm_jw_end(w);
}

void hb_json_write(struct hb_point *const *pts, unsigned n, const char *path)
{
	struct fm_jw w;
	FILE *f = fopen(path, "w");

	if (!f)
		hb_die(-errno, "--json %s", path);
	fm_jw_init(&w, f);
	fm_jw_obj(&w, NULL);
	fm_jw_str(&w, "benchmark", "flashmeta-bench");
	fm_jw_u64(&w, "format", 1);
	hb_json_params(&w);
	hb_json_machine(&w, NULL, NULL);
	fm_jw_str(&w, "method", hb_method_text);
	fm_jw_arr(&w, "points");
	for (unsigned i = 0; i < n; i++)
		json_point(&w, pts[i]);
	fm_jw_end(&w);
	fm_jw_end(&w);
	if (fclose(f))
		hb_die(-EIO, "--json %s", path);
}

/* ------------------------------------------------------ for the suite */

double hb_t_typical(const struct series_stats *s)
{
	return typ(s);
}

double hb_floor_of(const struct hb_point *pt, unsigned c, const char **name)
{
	return floor_of(pt, c, name);
}
