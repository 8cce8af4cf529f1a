/* bench_agent.c -- fm-bench-agent: the client agent against a real owner,
 * each path beside its floor, measured in the same run.
 *
 * Processes, all forked before this one makes a transport (verbs cannot
 * work in a child forked after its parent's first RDMA call):
 *   flashmeta-owner  fork + exec, flags, a pool in a temp dir, its control
 *                    socket (map-create / map-prepare / map-start, status)
 *   floor server     floor.c: two regions served like the owner's bitmap
 *                    (REMOTE_READ) and lock table (REMOTE_ATOMIC)
 *   peer             peer.c: the second client process (client 2)
 *   this process     client 1: the agent, its engine threads, the floors
 *
 * Mapping 1, 4 KiB grains.  Grain layout (512-grain windows: the agent
 * READs one 64-byte window per miss, so a window's contents matter):
 *   window 0   grains 0, 2, .., 126 split at setup: 64 separate cached
 *              ranges, the hit set
 *   window 1   never split: every fm_agent_is_split there is a miss
 *   window 2   never split: locked and unlocked
 *   4.. up     fresh grains for commits, this process's, then the peer's
 *
 * Cases, each beside its floor:
 *   1 hit      fm_agent_io_begin + fm_agent_plan(READ_TARGET, one cached
 *              grain) + fm_agent_io_end, vs bare fm_cache_lookup on the
 *              agent's cache, vs a bit test in a flat uint64_t array; on
 *              each --threads count of ONE agent's engine threads.
 *              Variants: the bracket alone, the plan alone.
 *   2 miss     fm_agent_is_split on a never-split grain (READ of the
 *              owner's window on this thread's lane), vs a 64-byte
 *              fm_lane_post_read + fm_lane_wait on the floor server.
 *              Variant: fm_agent_read_bitmap of the same 64 bytes.
 *   3 lock     fm_agent_lock + fm_agent_unlock of a never-split grain
 *              (each half timed too), vs two raw CAS (post + wait each),
 *              and vs CAS+READ posted together then a CAS: the agent's
 *              own one-sided operations, raw.
 *   4 commit   fm_agent_lock + fm_agent_commit_split of a fresh grain
 *              (halves timed); the owner's `status` counters before and
 *              after each batch give its persists per commit.
 *   5 2 procs  the same on this process and the peer at once: commits/s
 *              of both vs this process alone.
 *   6 owner CPU /proc/<owner>/stat utime+stime (and the per-thread
 *              schedstat ns where the kernel keeps them) around --cpu-ops
 *              hits, lock pairs and misses (and --cpu-ops/100 commits),
 *              beside an idle second of the same owner.
 * Rounds: round 0 is warm-up and dropped; every round runs every case in
 * the order above, a path's batch and its floor's batch back to back
 * (which one first alternates per round).
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bench_agent.h"
#include "flashmeta/error.h"

static struct ba_opts opt = {
	.provider = "shm", .rounds = 20, .batch = 2000, .hit_ms = 10,
	.commit_batch = 200, .threads = { 1, 2, 4 }, .nthreads = 3, .cpu_ops = 100000,
};

/* ------------------------------------------------------ dying cleanly */

static pid_t main_pid;
static struct fm_bench_owner owner;
static pid_t floor_pid;
static struct peer peer;

static void cleanup(void)
{
	if (getpid() != main_pid)
		return;
	peer_stop(&peer);
	fm_floor_server_stop(&floor_pid);
	fm_bench_owner_stop(&owner);
}

void ba_die(int rc, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "fm-bench-agent%s: ", getpid() == main_pid ? "" : " (child)");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, ": %d (%s)\n", rc, fm_errormsg());
	if (getpid() != main_pid)
		_exit(1);
	exit(1); /* atexit: cleanup() */
}

/* ------------------------------------------------------------- agent */

struct fm_agent *agent_join(const struct ba_opts *op, uint32_t client_id)
{
	struct fm_agent_cfg cfg = {
		.provider = op->provider, .device = op->device, .addr = op->addr,
		.client_id = client_id, .key = BA_KEY, .key_len = strlen(BA_KEY),
		.wait_ms = 10000, .spin_us = op->spin_us,
	};
	struct fm_agent_map m;
	struct fm_agent *a;
	int rc;

	if ((rc = fm_agent_new(&a, &cfg)))
		ba_die(rc, "fm_agent_new (client %u)", client_id);
	if ((rc = fm_agent_wait_active(a, 20000)))
		ba_die(rc, "client %u: no session", client_id);
	for (int i = 0; i < 2000; i++) {
		if (!fm_agent_map_get(a, BA_MAP, &m) && m.granted && m.state == FM_MAP_COPYING)
			return a;
		usleep(5000);
	}
	ba_die(-ETIMEDOUT, "client %u: mapping %u not granted COPYING within 10 s", client_id,
	       BA_MAP);
}

/* ----------------------------------------------------------- options */

static void usage(FILE *f)
{
	fprintf(f,
		"usage: fm-bench-agent [options]\n"
		"  The client agent (fm_agent) against a real flashmeta-owner, each path\n"
		"  beside its floor in the same run: hit decision (1/2/4 engine threads),\n"
		"  miss, lock+unlock, lock+commit, commits from 1 vs 2 processes, owner CPU.\n"
		"\n"
		"  --provider shm|verbs   transport (default shm)\n"
		"  --addr ADDR            owner address: IP:PORT for verbs (required; the floor\n"
		"                         server listens on PORT+1), shm:/NAME for shm\n"
		"                         (default shm:/fm-bench-agent-PID)\n"
		"  --device NAME          RDMA device (default: env FM_RDMA_DEV, else the first)\n"
		"  --owner PATH           flashmeta-owner binary (default: env FM_OWNER_BIN,\n"
		"                         else the one built with this benchmark)\n"
		"  --pool-dir DIR         where the owner's pool, key and control socket go\n"
		"                         (default /dev/shm if writable, else /tmp; a pool on\n"
		"                         a disk makes every commit an msync to that disk)\n"
		"  --rounds N             reported rounds, >= 1 (default 20; one more runs first\n"
		"                         as warm-up and is dropped)\n"
		"  --batch N              operations per batch of the per-operation timed cases\n"
		"                         (miss, lock, their floors; default 2000)\n"
		"  --hit-ms MS            length of a hit batch on one thread: decisions per\n"
		"                         batch are counted to last about MS before the run\n"
		"                         (default 10; %u batches per case and round)\n"
		"  --commit-batch N       commits per batch and process (default 200)\n"
		"  --threads LIST         engine thread counts for the hit case (default 1,2,4;\n"
		"                         at most %u counts, each 1..%u)\n"
		"  --pin                  pin engine thread i to CPU i mod CPUs (default: not\n"
		"                         pinned)\n"
		"  --cpu-ops N            operations per owner-CPU phase (default 100000)\n"
		"  --spin-us N            the agents' fm_agent_cfg.spin_us: busy-poll this long\n"
		"                         before sleeping on a completion; 0 = sleep at once\n"
		"                         (default: the library's, 50)\n"
		"  --ref-atomic-ns NS     ib_atomic_lat t_typical measured beside this run\n"
		"  --ref-read-ns NS       ib_read_lat t_typical measured beside this run\n"
		"                         (both only add ratio rows; see run-verbs.sh)\n"
		"  --quick                a short smoke run (3 rounds, small batches)\n"
		"  --json FILE            the figures and the run's parameters as JSON\n"
		"  -h, --help             this text\n"
		"Nothing is asserted: the exit status is 0 whenever the run completed.\n",
		HIT_BATCHES, BA_MAX_THREADS, BA_MAX_THREADS);
}

static unsigned num(const char *what, const char *s, unsigned lo, unsigned hi)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || end == s || *end || v < lo || v > hi) {
		fprintf(stderr, "fm-bench-agent: %s '%s': want %u..%u\n", what, s, lo, hi);
		exit(2);
	}
	return (unsigned)v;
}

static void parse_threads(const char *s)
{
	char buf[128], *save = NULL, *tok;

	snprintf(buf, sizeof(buf), "%s", s);
	opt.nthreads = 0;
	for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		if (opt.nthreads == BA_MAX_THREADS) {
			fprintf(stderr, "fm-bench-agent: --threads: at most %u counts\n",
				BA_MAX_THREADS);
			exit(2);
		}
		opt.threads[opt.nthreads++] = num("--threads", tok, 1, BA_MAX_THREADS);
	}
	if (!opt.nthreads) {
		fprintf(stderr, "fm-bench-agent: --threads: empty list\n");
		exit(2);
	}
}

static void parse(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "provider", required_argument, NULL, 'p' },
		{ "addr", required_argument, NULL, 'a' },
		{ "device", required_argument, NULL, 'd' },
		{ "owner", required_argument, NULL, 'o' },
		{ "pool-dir", required_argument, NULL, 'D' },
		{ "rounds", required_argument, NULL, 'r' },
		{ "batch", required_argument, NULL, 'b' },
		{ "hit-ms", required_argument, NULL, 'H' },
		{ "commit-batch", required_argument, NULL, 'c' },
		{ "threads", required_argument, NULL, 't' },
		{ "pin", no_argument, NULL, 'P' },
		{ "cpu-ops", required_argument, NULL, 'C' },
		{ "spin-us", required_argument, NULL, 'S' },
		{ "ref-atomic-ns", required_argument, NULL, 'A' },
		{ "ref-read-ns", required_argument, NULL, 'R' },
		{ "quick", no_argument, NULL, 'q' },
		{ "json", required_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	int o;

	opt.device = getenv("FM_RDMA_DEV");
	opt.owner_bin = getenv("FM_OWNER_BIN");
	while ((o = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
		switch (o) {
		case 'p': opt.provider = optarg; break;
		case 'a': snprintf(opt.addr, sizeof(opt.addr), "%s", optarg); break;
		case 'd': opt.device = optarg; break;
		case 'o': opt.owner_bin = optarg; break;
		case 'D': opt.pool_dir = optarg; break;
		case 'r': opt.rounds = num("--rounds", optarg, 1, 100000); break;
		case 'b': opt.batch = num("--batch", optarg, 1, 100000000); break;
		case 'H': opt.hit_ms = num("--hit-ms", optarg, 1, 10000); break;
		case 'c': opt.commit_batch = num("--commit-batch", optarg, 1, 1000000); break;
		case 't': parse_threads(optarg); break;
		case 'P': opt.pin = true; break;
		case 'C': opt.cpu_ops = num("--cpu-ops", optarg, 100, 100000000); break;
		case 'S':
			opt.spin_us = num("--spin-us", optarg, 0, 1000000);
			if (!opt.spin_us)
				opt.spin_us = FM_AGENT_NO_SPIN;
			break;
		case 'A': opt.ref_atomic_ns = num("--ref-atomic-ns", optarg, 1, 1000000000); break;
		case 'R': opt.ref_read_ns = num("--ref-read-ns", optarg, 1, 1000000000); break;
		case 'q':
			opt.rounds = 3;
			opt.batch = 200;
			opt.hit_ms = 2;
			opt.commit_batch = 20;
			opt.cpu_ops = 10000;
			break;
		case 'j': opt.json = optarg; break;
		case 'h': usage(stdout); exit(0);
		default: usage(stderr); exit(2);
		}
	}
	if (optind < argc) {
		usage(stderr);
		exit(2);
	}
	if (strcmp(opt.provider, "shm") && strcmp(opt.provider, "verbs")) {
		fprintf(stderr, "fm-bench-agent: --provider shm or verbs\n");
		exit(2);
	}
	if (!strcmp(opt.provider, "shm")) {
		if (!opt.addr[0])
			snprintf(opt.addr, sizeof(opt.addr), "shm:/fm-bench-agent-%d", (int)getpid());
		snprintf(opt.floor_addr, sizeof(opt.floor_addr), "%.100s-floor", opt.addr);
	} else {
		char *colon = strrchr(opt.addr, ':');
		unsigned port;

		if (!opt.addr[0] || !colon) {
			fprintf(stderr, "fm-bench-agent: verbs needs --addr IP:PORT\n");
			exit(2);
		}
		port = num("--addr port", colon + 1, 1, 65534);
		snprintf(opt.floor_addr, sizeof(opt.floor_addr), "%.*s:%u",
			 (int)(colon - opt.addr), opt.addr, port + 1);
	}
	if (!opt.pool_dir) {
		struct stat st;

		opt.pool_dir = !stat("/dev/shm", &st) && S_ISDIR(st.st_mode) &&
					       !access("/dev/shm", W_OK)
				       ? "/dev/shm"
				       : "/tmp";
	}
}

static const char *owner_bin_default(const char *argv0)
{
	static char buf[512];
	const char *slash = strrchr(argv0, '/');

#ifdef FM_BENCH_OWNER_BIN
	if (!access(FM_BENCH_OWNER_BIN, X_OK))
		return FM_BENCH_OWNER_BIN;
#endif
	/* beside this binary (build/bin) */
	snprintf(buf, sizeof(buf), "%.*sflashmeta-owner", slash ? (int)(slash - argv0 + 1) : 0,
		 argv0);
	return buf;
}

/* --------------------------------------------------------- the run */

static struct run R; /* big: off the stack */

/* the whole cast: owner, floor server, peer, this agent, the floors */
struct cast {
	struct fm_agent *a;
	struct floor fev, fbusy;
	struct hitset hs;
	struct engines *eng;
	uint64_t c1_next;       /* this process's next fresh grain */
};

static void counts_delta(const struct fm_bench_owner_counts *a,
			 const struct fm_bench_owner_counts *b,
			 struct commit_acc *acc, uint64_t ops)
{
	acc->store += b->store_commits - a->store_commits;
	acc->drains += b->drains - a->drains;
	acc->thread += b->thread_commits - a->thread_commits;
	acc->owner += b->owner_commits - a->owner_commits;
	acc->ops += ops;
}

static void cpu_sample(pid_t pid, struct fm_proc_cpu *s)
{
	int rc = fm_proc_cpu_sample(pid, s);

	if (rc)
		ba_die(rc, "/proc/%d/stat", (int)pid);
}

static void phase_begin(struct cpu_phase *p)
{
	cpu_sample(getpid(), &p->sa);
	cpu_sample(owner.pid, &p->a);
}

static void phase_end(struct cpu_phase *p)
{
	cpu_sample(owner.pid, &p->b);
	cpu_sample(getpid(), &p->sb);
}

/* decisions per hit batch, per kind: about opt.hit_ms on one thread */
static void calibrate(struct engines *eng)
{
	double per[BA_MAX_THREADS];

	for (int k = 0; k < HIT_KINDS; k++) {
		double ns;

		engines_run(eng, (enum hit_kind)k, 1, 20000, per); /* warm */
		engines_run(eng, (enum hit_kind)k, 1, 20000, per);
		ns = per[0] > 0.05 ? per[0] : 0.05;
		R.hit_ops[k] = (uint64_t)((double)opt.hit_ms * 1e6 / ns);
		if (R.hit_ops[k] < 1000)
			R.hit_ops[k] = 1000;
	}
}

/* the hit set: 64 separate split grains, confirmed in the cache */
static void hitset_make(struct cast *c)
{
	struct fm_agent_map m;
	struct fm_extent ext[2];
	struct fm_grain_range lk[2];
	struct fm_plan plan;
	struct fm_agent_io io;
	struct hitset *hs = &c->hs;
	int rc;

	fm_agent_map_get(c->a, BA_MAP, &m);
	hs->a = c->a;
	hs->grain_shift = m.grain_shift;
	hs->bits = calloc((R.grains + 63) / 64, sizeof(uint64_t));
	if (!hs->bits)
		ba_die(-ENOMEM, "bitmap");
	for (unsigned i = 0; i < BA_NHIT; i++) {
		uint64_t g = 2 * i;

		hs->grains[i] = g;
		if ((rc = fm_agent_lock(c->a, BA_MAP, g)) ||
		    (rc = fm_agent_commit_split(c->a, BA_MAP, g)))
			ba_die(rc, "hit set: grain %" PRIu64, g);
		if (!fm_cache_lookup(fm_agent_cache(c->a), BA_MAP, g, NULL))
			ba_die(-ENOENT, "hit set: grain %" PRIu64 " not cached after commit", g);
		hs->bits[g / 64] |= UINT64_C(1) << (g % 64);
	}
	/* what a hit plans: one DIRECT extent, no READ */
	if ((rc = fm_agent_io_begin(c->a, BA_MAP, &io)))
		ba_die(rc, "io_begin");
	fm_plan_setup(&plan, ext, 2, lk, 2);
	rc = fm_agent_plan(c->a, &io, FM_IO_READ_TARGET, 2ull << hs->grain_shift,
			   1ull << hs->grain_shift, &plan);
	fm_agent_io_end(c->a, &io);
	if (rc || plan.ext_count != 1 || ext[0].kind != FM_EXT_DIRECT)
		ba_die(rc ? rc : -EPROTO, "a hit does not plan as one DIRECT extent");
}

/* 1: hits on every thread count, the three kinds alternating batch by
 * batch (the first kind rotates by round); the variants on one thread */
static void round_hits(struct cast *c, unsigned r, bool keep)
{
	struct fm_agent_stats st0, st1;
	double per[BA_MAX_THREADS];

	fm_agent_stats(c->a, &st0);
	for (unsigned ti = 0; ti < opt.nthreads; ti++) {
		unsigned T = opt.threads[ti];

		for (unsigned b = 0; b < HIT_BATCHES; b++)
			for (unsigned k3 = 0; k3 < 3; k3++) {
				unsigned k = (k3 + b + r) % 3;
				double rate = engines_run(c->eng, (enum hit_kind)k, T, R.hit_ops[k],
							  per);

				for (unsigned i = 0; i < T; i++)
					se_add(&R.S[S_HIT0 + k * BA_MAX_THREADS + ti], per[i]);
				se_add(&R.S[S_HITR0 + k * BA_MAX_THREADS + ti], rate / 1e6);
			}
	}
	for (unsigned b = 0; b < HIT_BATCHES; b++) {
		engines_run(c->eng, HIT_BRACKET, 1, R.hit_ops[HIT_BRACKET], per);
		se_add(&R.S[S_BRACKET], per[0]);
		engines_run(c->eng, HIT_PLAN, 1, R.hit_ops[HIT_PLAN], per);
		se_add(&R.S[S_PLAN], per[0]);
	}
	fm_agent_stats(c->a, &st1);
	if (keep)
		R.hit_fetches += st1.fetches - st0.fetches;
}

/* 2: the miss beside a raw 64-byte READ */
static void round_miss(struct cast *c, bool flip, bool keep)
{
	struct fm_agent_stats st0, st1;

	for (int half = 0; half < 2; half++) {
		if (half == flip) {
			fm_agent_stats(c->a, &st0);
			for (unsigned i = 0; i < opt.batch; i++)
				se_add(&R.S[S_MISS], path_miss(c->a, i));
			fm_agent_stats(c->a, &st1);
			if (keep) {
				R.miss_fetches += st1.fetches - st0.fetches;
				R.miss_calls += opt.batch;
			}
			for (unsigned i = 0; i < opt.batch; i++)
				se_add(&R.S[S_MISS_RB], path_read_bitmap(c->a));
		} else {
			for (unsigned i = 0; i < opt.batch; i++)
				se_add(&R.S[S_READ_EV], floor_read64(&c->fev));
			if (R.have_busy)
				for (unsigned i = 0; i < opt.batch; i++)
					se_add(&R.S[S_READ_BUSY], floor_read64(&c->fbusy));
		}
	}
}

static void lock_floors(struct floor *f, int cas2, int casrd_cas, int casrd, int cas1)
{
	for (unsigned i = 0; i < opt.batch; i++)
		se_add(&R.S[cas2], floor_cas2(f));
	for (unsigned i = 0; i < opt.batch; i++)
		se_add(&R.S[casrd_cas], floor_casread_cas(f));
	for (unsigned i = 0; i < opt.batch; i++)
		se_add(&R.S[casrd], floor_casread(f));
	for (unsigned i = 0; i < opt.batch; i++)
		se_add(&R.S[cas1], floor_cas(f));
}

/* 3: lock+unlock beside raw CAS */
static void round_lock(struct cast *c, bool flip)
{
	for (int half = 0; half < 2; half++) {
		if (half != flip) {
			lock_floors(&c->fev, S_CAS2_EV, S_CASRD_EV, S_CASRD1_EV, S_CAS1_EV);
			if (R.have_busy)
				lock_floors(&c->fbusy, S_CAS2_BUSY, S_CASRD_BUSY, S_CASRD1_BUSY,
					    S_CAS1_BUSY);
			continue;
		}
		for (unsigned i = 0; i < opt.batch; i++) {
			double l, u;

			se_add(&R.S[S_LOCKPAIR], path_lock_unlock(c->a, i, &l, &u));
			se_add(&R.S[S_LOCK], l);
			se_add(&R.S[S_UNLOCK], u);
		}
	}
}

/* 4 and 5: commits from this process alone, and from it and the peer at
 * once; then what a commit is made of: a message round trip, thread
 * wake-ups, a persist */
static void round_commits(struct cast *c, bool flip, bool keep)
{
	struct fm_bench_owner_counts oc0, oc1;
	struct peer_result pr;
	uint64_t t0, t1;

	for (int half = 0; half < 2; half++) {
		bool two = half != flip;

		owner_counts(&owner, &oc0);
		if (two)
			peer_commit_go(&peer, opt.commit_batch);
		t0 = fm_now_ns();
		for (unsigned i = 0; i < opt.commit_batch; i++) {
			double l, k, all = path_lock_commit(c->a, c->c1_next++, &l, &k);

			if (two) {
				se_add(&R.S[S_C2], all);
			} else {
				se_add(&R.S[S_C1], all);
				se_add(&R.S[S_C1_LOCK], l);
				se_add(&R.S[S_C1_COMMIT], k);
			}
		}
		t1 = fm_now_ns();
		if (two) {
			peer_commit_wait(&peer, &pr);
			if (pr.t_start < t0)
				t0 = pr.t_start;
			if (pr.t_end > t1)
				t1 = pr.t_end;
			se_add(&R.S[S_RATE2], 2.0 * opt.commit_batch / ((double)(t1 - t0) / 1e9));
		} else {
			se_add(&R.S[S_RATE1], opt.commit_batch / ((double)(t1 - t0) / 1e9));
		}
		owner_counts(&owner, &oc1);
		if (keep)
			counts_delta(&oc0, &oc1, &R.acc[two], (two ? 2ull : 1ull) * opt.commit_batch);
	}
	for (unsigned i = 0; i < opt.commit_batch; i++)
		se_add(&R.S[S_MSGRTT], floor_msg_rtt(&c->fev));
	for (unsigned i = 0; i < opt.batch; i++)
		se_add(&R.S[S_HANDOFF], local_handoff());
	for (unsigned i = 0; i < opt.batch; i++)
		se_add(&R.S[S_MSYNC], local_msync(owner.dir));
}

/* 6: the owner's CPU around --cpu-ops calls of each kind, after an idle
 * second of the same owner with both clients joined */
static void cpu_phases(struct cast *c)
{
	struct cpu_phase *ph = R.ph;
	double l, u;

	ph[PH_IDLE].name = "idle (1 s, no calls)";
	ph[PH_HIT].name = "hit decisions";
	ph[PH_LOCK].name = "lock+unlock pairs";
	ph[PH_MISS].name = "misses (is_split)";
	ph[PH_COMMIT].name = "lock+commit";
	ph[PH_HIT].ops = ph[PH_LOCK].ops = ph[PH_MISS].ops = opt.cpu_ops;
	ph[PH_COMMIT].ops = opt.cpu_ops / 100;
	phase_begin(&ph[PH_IDLE]);
	usleep(1000000);
	phase_end(&ph[PH_IDLE]);
	phase_begin(&ph[PH_HIT]);
	hit_loop(&c->hs, HIT_PATH, opt.cpu_ops);
	phase_end(&ph[PH_HIT]);
	phase_begin(&ph[PH_LOCK]);
	for (unsigned i = 0; i < opt.cpu_ops; i++)
		(void)path_lock_unlock(c->a, i, &l, &u);
	phase_end(&ph[PH_LOCK]);
	phase_begin(&ph[PH_MISS]);
	for (unsigned i = 0; i < opt.cpu_ops; i++)
		(void)path_miss(c->a, i);
	phase_end(&ph[PH_MISS]);
	phase_begin(&ph[PH_COMMIT]);
	for (uint64_t i = 0; i < ph[PH_COMMIT].ops; i++)
		(void)path_lock_commit(c->a, c->c1_next++, &l, &u);
	phase_end(&ph[PH_COMMIT]);
}

int main(int argc, char **argv)
{
	static struct cast c;
	uint64_t c1_need, c2_need, c2_first, t_start = fm_now_ns();
	unsigned maxthreads = 1;
	char out[4096];

	main_pid = getpid();
	setvbuf(stdout, NULL, _IOLBF, 0);
	signal(SIGPIPE, SIG_IGN);
	parse(argc, argv);
	R.opt = &opt;
	R.have_busy = strcmp(opt.provider, "shm") != 0;
	run_series_init(&R);
	for (unsigned i = 0; i < opt.nthreads; i++)
		if (opt.threads[i] > maxthreads)
			maxthreads = opt.threads[i];
	fm_loadavg(R.la0, sizeof(R.la0));

	/* grains: the hit/miss/lock windows, then every commit's own grain */
	c1_need = (uint64_t)(opt.rounds + 1) * opt.commit_batch * 2 + opt.cpu_ops / 100 + 1;
	c2_need = (uint64_t)(opt.rounds + 1) * opt.commit_batch + 1;
	c.c1_next = BA_COMMIT_BASE;
	c2_first = (c.c1_next + c1_need + BA_WIN - 1) / BA_WIN * BA_WIN;
	R.grains = (c2_first + c2_need + BA_WIN - 1) / BA_WIN * BA_WIN;
	if (R.grains < 65536)
		R.grains = 65536;

	/* the processes, before this one opens any transport */
	snprintf(owner.bin, sizeof(owner.bin), "%s",
		 opt.owner_bin ? opt.owner_bin : owner_bin_default(argv[0]));
	opt.owner_bin = owner.bin;
	if (access(owner.bin, X_OK)) {
		fprintf(stderr, "fm-bench-agent: no flashmeta-owner at %s (--owner PATH)\n",
			owner.bin);
		return 2;
	}
	atexit(cleanup);
	owner_dir_make(&owner, opt.pool_dir);
	floor_pid = floor_server_start(&opt, R.have_busy ? 2 : 1);
	peer_start(&peer, &opt, c2_first);
	owner_start(&owner, &opt, R.grains);
	R.owner_pid = owner.pid;
	R.owner_bin = owner.bin;
	if (fm_bench_owner_ctl(&owner, out, sizeof(out), "map-create %u 1 2 %" PRIu64 " %u",
			       BA_MAP, R.grains * BA_GRAIN_SIZE, BA_GRAIN_SIZE) ||
	    fm_bench_owner_ctl(&owner, out, sizeof(out), "map-prepare %u", BA_MAP) ||
	    fm_bench_owner_ctl(&owner, out, sizeof(out), "map-start %u", BA_MAP))
		ba_die(-EREMOTEIO, "mapping setup: %s", out);

	/* client 1 (this process), client 2 (the peer), the floors */
	c.a = agent_join(&opt, 1);
	peer_join(&peer);
	floor_open(&c.fev, &opt, FM_WAIT_EVENT, "event");
	if (R.have_busy)
		floor_open(&c.fbusy, &opt, FM_WAIT_BUSY, "busy");
	hitset_make(&c);
	engines_start(&c.eng, &c.hs, maxthreads, opt.pin);
	calibrate(c.eng);

	/* round 0 is warm-up; in every round each path's batch and its
	 * floor's run back to back, which one first alternating */
	for (unsigned r = 0; r <= opt.rounds; r++) {
		bool keep = r > 0, flip = r & 1;

		se_round_begin(R.S, S_N);
		for (unsigned i = 0; i < opt.batch; i++) {
			se_add(&R.S[S_TIMER], local_timer());
			se_add(&R.S[S_CPUCAS], local_cpu_cas());
		}
		round_hits(&c, r, keep);
		round_miss(&c, flip, keep);
		round_lock(&c, flip);
		round_commits(&c, flip, keep);
		se_round_end(R.S, S_N, keep);
	}
	cpu_phases(&c);
	owner_counts(&owner, &R.oc_end);

	engines_stop(&c.eng);
	local_stop();
	floor_close(&c.fev);
	if (R.have_busy)
		floor_close(&c.fbusy);
	fm_agent_delete(&c.a);
	peer_stop(&peer);
	fm_loadavg(R.la1, sizeof(R.la1));
	R.seconds = (double)(fm_now_ns() - t_start) / 1e9;

	tables_print(&R);
	free(c.hs.bits);
	for (int i = 0; i < S_N; i++) {
		free(R.S[i].s);
		free(R.S[i].rmed);
	}
	return 0;
}
