/* main.c -- flashmeta-bench: the harness a storage engineer can check.
 *
 * One RUN POINT (a split fraction; --sweep-split runs several, each with
 * fresh processes and a fresh pool):
 *
 *   1  a temp dir (pool, key, control socket; the file volumes unless
 *      --vol-dir), the run's shared memory (the hot lock step)
 *   2  fork the floor server (floor.h) and N client processes (client.c);
 *      fork + exec flashmeta-owner.  This process never makes a transport.
 *   3  on the owner's control socket: map-create, map-prepare and
 *      map-start (the trigger) of the four mapping sets
 *   4  SETUP: every client joins with its four agents, opens its volumes and
 *      engines and its floor connection, starts its engine threads
 *   5  the owner idle for 500 ms, every client joined: its idle CPU rate
 *   6  PRESPLIT: the chosen fraction of every mapping's grains split by
 *      whole-grain target writes through the engine, after the trigger
 *   7  rounds 0..R: each round runs the seven units -- the engine with
 *      the cache, the engine without, the engine with a cache that never
 *      merges ranges, the engine deciding by message (the lock-manager
 *      baseline), the volumes alone, the transport floor, the trigger
 *      (below) -- one after the other, the first unit rotating by round; a
 *      variant's batch replays the round's I/O streams (same seed) for
 *      --batch-ms (or --count I/Os per thread).  Round 0 is warm-up: its
 *      samples are dropped.  Around every batch: the owner's CPU time
 *      (/proc, sampled at the batch's start line and end) and its
 *      `status` counters; the split fraction of every set after round 0
 *      (the measured phase's start) and after the last round.
 *   8  stop everything, compute the figures, print, plot.
 *
 * THE TRIGGER UNIT (--triggers K, 0: none).  The clients run the cache
 * engine's streams on the trigger mapping (harness.h), STOPPED when the
 * unit begins, until told to stop; meanwhile this process runs K cycles
 * on the control socket, each command timed from before fm_ownerd_ctl's
 * connect to its answer: map-prepare, map-start (the trigger: prepare +
 * start), map-show (the socket's round trip, no revoke), a pause with
 * the mapping COPYING, map-stop, a pause with it STOPPED (the pauses:
 * --batch-ms / 2K each, so that I/O is in flight at every command).
 * Each of prepare, start and stop waits for one release round trip: the
 * owner's RELEASE_REQUEST to every session holding the mapping and their
 * RELEASED, after each drained its I/O on it.  The owner's answers and
 * `status` carry no revoke duration, so the command is what is timed.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "flashmeta/error.h"
#include "harness.h"

static pid_t main_pid;
static struct fm_bench_owner owner;
static pid_t floor_pid;
static struct hb_client clients[HB_MAX_CLIENTS];
static struct hb_shared *sh;
static char vol_files[2 * (HB_MAX_MAPS + 1)][512];
static unsigned nvol_files;

static void unlink_volumes(void)
{
	for (unsigned i = 0; i < nvol_files; i++)
		(void)unlink(vol_files[i]);
	nvol_files = 0;
}

static void cleanup(void)
{
	if (getpid() != main_pid)
		return;
	for (unsigned i = 0; i < HB_MAX_CLIENTS; i++)
		hb_client_stop(&clients[i]);
	fm_floor_server_stop(&floor_pid);
	fm_bench_owner_stop(&owner);
	if (!getenv("FM_KEEP"))
		unlink_volumes();
}

void hb_die(int rc, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "flashmeta-bench%s: ", getpid() == main_pid ? "" : " (client)");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, ": %d (%s)\n", rc, fm_errormsg());
	if (getpid() != main_pid)
		_exit(1);
	exit(1); /* atexit: cleanup() */
}

/* ^C, SIGTERM: async-signal-safe calls only -- kill every child, remove
 * what the run made (paths known before any child started), _exit */
static bool keep_files;
static char owner_log[320];

static void on_signal(int sig)
{
	(void)sig;
	if (getpid() != main_pid)
		_exit(130);
	for (unsigned i = 0; i < HB_MAX_CLIENTS; i++)
		if (clients[i].pid > 0)
			kill(clients[i].pid, SIGKILL);
	if (floor_pid > 0)
		kill(floor_pid, SIGKILL);
	if (owner.pid > 0)
		kill(owner.pid, SIGKILL);
	while (waitpid(-1, NULL, 0) > 0)
		;
	if (!keep_files) {
		if (owner.dir[0]) {
			unlink(owner.pool);
			unlink(owner.keyfile);
			unlink(owner.ctl);
			unlink(owner_log);
			rmdir(owner.dir);
		}
		for (unsigned i = 0; i < nvol_files; i++)
			unlink(vol_files[i]);
	}
	_exit(130);
}

/* ------------------------------------------------------------- machine */

void hb_machine(struct hb_machine *m)
{
	struct utsname u;
	char line[256];
	FILE *f;

	memset(m, 0, sizeof(*m));
	m->cpus = sysconf(_SC_NPROCESSORS_ONLN);
	snprintf(m->model, sizeof(m->model), "unknown");
	f = fopen("/proc/cpuinfo", "r");
	while (f && fgets(line, sizeof(line), f)) {
		char *c = strchr(line, ':');

		if (!strncmp(line, "model name", 10) && c) {
			c += 2;
			c[strcspn(c, "\n")] = '\0';
			snprintf(m->model, sizeof(m->model), "%s", c);
			break;
		}
	}
	if (f)
		fclose(f);
	if (!uname(&u)) {
		snprintf(m->kernel, sizeof(m->kernel), "%.32s %.64s", u.sysname, u.release);
		snprintf(m->host, sizeof(m->host), "%.63s", u.nodename);
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
	snprintf(buf, sizeof(buf), "%.*sflashmeta-owner", slash ? (int)(slash - argv0 + 1) : 0,
		 argv0);
	return buf;
}

static void sleep_until(uint64_t t)
{
	struct timespec ts = { .tv_sec = (time_t)(t / 1000000000u),
			       .tv_nsec = (long)(t % 1000000000u) };

	clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
}

/* ---------------------------------------------------------- one point */

static unsigned nmaps(void)
{
	return opt.mappings + (opt.hot ? 1 : 0);
}

static void volumes_make(const char *dir)
{
	nvol_files = 0;
	for (unsigned k = 0; k < nmaps(); k++)
		for (int t = 0; t < 2; t++) {
			char *path = vol_files[nvol_files++];
			int fd;

			snprintf(path, sizeof(vol_files[0]), "%s/%s-%u", dir, t ? "tgt" : "src", k);
			fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
			if (fd < 0)
				hb_die(-errno, "volume file %s", path);
			if (ftruncate(fd, (off_t)opt.volume_size)) {
				int rc = -errno;

				close(fd);
				hb_die(rc, "volume file %s: %" PRIu64 " bytes", path,
				       opt.volume_size);
			}
			close(fd);
		}
}

static void all_send(const struct hb_cmd *cmd)
{
	for (unsigned i = 0; i < opt.clients; i++)
		hb_client_send(&clients[i], cmd);
}

/* every client's reply to a command without samples */
static void all_rc(const char *what)
{
	for (unsigned i = 0; i < opt.clients; i++) {
		struct hb_reply r;

		hb_client_reply(&clients[i], &r);
		if (r.rc) {
			fm_err(r.rc, "%s", r.err);
			hb_die(r.rc, "%s", what);
		}
	}
}

/* the split fraction of a mapping set, percent (the hot mapping apart) */
static double split_now(unsigned set)
{
	uint64_t split = 0, grains = 0;

	for (unsigned k = 0; k < opt.mappings; k++) {
		uint64_t s, g;
		int rc = fm_bench_owner_map_split(&owner, hb_map_id(set, k), &s, &g);

		if (rc)
			hb_die(rc, "map-show");
		split += s;
		grains += g;
	}
	return grains ? 100.0 * (double)split / (double)grains : 0;
}

static void owner_cpu(struct fm_proc_cpu *s)
{
	int rc = fm_proc_cpu_sample(owner.pid, s);

	if (rc)
		hb_die(rc, "/proc/%d/stat of the owner", (int)owner.pid);
}

static double *samples_buf(size_t n)
{
	static double *buf;
	static size_t cap;

	if (n > cap) {
		free(buf);
		cap = n * 2;
		buf = malloc(cap * sizeof(*buf));
		if (!buf)
			hb_die(-ENOMEM, "%zu samples", n);
	}
	return buf;
}

/* ------------------------------------------------------------ trigger */

/* one control command on the trigger mapping; its time in ns from before
 * the connect to the answer's last line.  The answer in out; *rc its
 * error (dies on one unless rc is given) */
static uint64_t trig_cmd(const char *verb, char *out, size_t cap, int *rc)
{
	uint64_t t0 = fm_now_ns(), t1;
	int e = fm_bench_owner_ctl(&owner, out, cap, "%s %" PRIu64, verb, hb_trig_id());

	t1 = fm_now_ns();
	if (e && !rc)
		hb_die(e, "%s %" PRIu64 ": %.200s", verb, hb_trig_id(), out);
	if (rc)
		*rc = e;
	return t1 - t0;
}

/* the trigger mapping: made and triggered like the others, then stopped
 * (the state every trigger unit begins and ends in) */
static void trig_create(void)
{
	char out[1024];
	uint64_t id = hb_trig_id();
	int rc = fm_bench_owner_ctl(&owner, out, sizeof(out), "map-create %" PRIu64 " %" PRIu64
				    " %" PRIu64 " %" PRIu64 " %" PRIu64, id, 10000 + 2 * id,
				    10001 + 2 * id, opt.volume_size, opt.grain_size);

	if (rc)
		hb_die(rc, "trigger mapping %" PRIu64 ": %s", id, out);
	(void)trig_cmd("map-prepare", out, sizeof(out), NULL);
	(void)trig_cmd("map-start", out, sizeof(out), NULL);
	(void)trig_cmd("map-stop", out, sizeof(out), NULL);
}

/* a sample in usec (round 0's are dropped by se_round_end) */
static void trig_add(struct hb_point *pt, unsigned t, uint64_t ns)
{
	se_add(&pt->T[t], (double)ns / 1e3);
}

/* The coordinator's side of the trigger unit: opt.triggers cycles on the
 * trigger mapping while the clients' I/O runs on it (main.c's header). */
static void trig_cycles(struct hb_point *pt, uint64_t t_start, bool keep)
{
	uint64_t gap = (uint64_t)opt.batch_ms * 1000000ull / (2 * opt.triggers);
	uint64_t t = t_start + gap;
	char out[1024];

	for (unsigned i = 0; i < opt.triggers; i++) {
		uint64_t prep, start, ns;
		int rc = 0;

		sleep_until(t);
		prep = trig_cmd("map-prepare", out, sizeof(out), NULL);
		start = trig_cmd("map-start", out, sizeof(out), NULL);
		/* the baseline right behind the start, as the start is right
		 * behind the prepare: the owner as awake for it */
		trig_add(pt, T_CTL, trig_cmd("map-show", out, sizeof(out), NULL));
		trig_add(pt, T_PREPARE, prep);
		trig_add(pt, T_START, start);
		trig_add(pt, T_TRIGGER, prep + start);
		sleep_until(fm_now_ns() + gap);
		/* a copy that completed meanwhile (every grain split: the
		 * owner made it idle_or_copied by itself) cannot be stopped;
		 * map-prepare takes it as it is */
		for (int a = 0; a < 3; a++) {
			ns = trig_cmd("map-stop", out, sizeof(out), &rc);
			if (!rc || !strstr(out, "EALREADY"))
				break;
			usleep(10000);
		}
		if (!rc) {
			trig_add(pt, T_STOP, ns);
		} else {
			char show[1024];

			(void)trig_cmd("map-show", show, sizeof(show), NULL);
			if (!strstr(show, " state idle_or_copied "))
				hb_die(rc, "map-stop %" PRIu64 ": %.200s", hb_trig_id(), out);
			if (keep)
				pt->trig_skipped_stops++;
		}
		if (keep)
			pt->trig_cycles++;
		t = fm_now_ns() + gap;
	}
}

/* one unit's batch on every client at once */
static void batch(struct hb_point *pt, unsigned unit, unsigned round, bool keep)
{
	struct hb_cmd cmd = { .op = unit == U_FLOOR ? CMD_FLOOR : CMD_RUN, .unit = unit,
			      .seed = opt.seed + round, .count = opt.count };
	struct fm_bench_owner_counts oc0 = { 0 }, oc1 = { 0 };
	struct fm_proc_cpu o0, o1, od;
	uint64_t t_first = UINT64_MAX, t_last = 0, ios = 0, decisions = 0;
	double client_ms = 0;
	bool client_sched = true;
	int rc;

	if (unit < V_N && (rc = fm_bench_owner_counts(&owner, &oc0)))
		hb_die(rc, "owner status");
	atomic_store(&sh->arrive, 0);
	atomic_store(&sh->stop, false);
	atomic_store(&sh->broken, false);
	atomic_store(&sh->io_stop, false);
	/* a start line 20 ms ahead: every thread of every client starts at it */
	cmd.t_start = fm_now_ns() + 20000000ull;
	cmd.t_end = cmd.t_start + (uint64_t)opt.batch_ms * 1000000ull;
	all_send(&cmd);
	sleep_until(cmd.t_start);
	owner_cpu(&o0);
	if (unit == U_TRIGGER) {
		trig_cycles(pt, cmd.t_start, keep);
		atomic_store(&sh->io_stop, true);
	} else if (!opt.count && unit != U_FLOOR) {
		sleep_until(cmd.t_end);
		owner_cpu(&o1);
	}
	for (unsigned i = 0; i < opt.clients; i++) {
		struct hb_reply r;

		hb_client_reply(&clients[i], &r);
		if (r.rc) {
			fm_err(r.rc, "%s", r.err);
			hb_die(r.rc, "round %u, %s", round,
			       unit == U_FLOOR ? "floor" : unit == U_TRIGGER ? "trigger"
			       : hb_variant_name[unit]);
		}
		for (unsigned c = 0; c < SE_N; c++) {
			double *v = samples_buf(r.n[c]);

			hb_client_read(&clients[i], v, r.n[c] * sizeof(double));
			if (unit < V_N) { /* the trigger unit's I/O is load only */
				se_add_n(&pt->S[unit][c], v, r.n[c]);
				if (c < C_N) /* an I/O, not a part of one */
					se_add_n(&pt->all[unit], v, r.n[c]);
			}
		}
		for (unsigned f = 0; f < F_N; f++) {
			double *v = samples_buf(r.nf[f]);

			hb_client_read(&clients[i], v, r.nf[f] * sizeof(double));
			se_add_n(&pt->F[f], v, r.nf[f]);
		}
		if (unit == U_FLOOR)
			continue;
		if (unit == U_TRIGGER && keep) {
			pt->trig_ios += r.ios;
			pt->trig_restarts += r.restarts;
		}
		if (r.t_first && r.t_first < t_first)
			t_first = r.t_first;
		if (r.t_last > t_last)
			t_last = r.t_last;
		ios += r.ios;
		decisions += r.decisions;
		client_ms += r.cpu_ms;
		client_sched = client_sched && r.cpu_sched;
		if (keep && unit < V_N) {
			struct hb_agent_delta *a = &pt->ag[unit];

			pt->errors[unit] += r.errors;
			pt->restarts[unit] += r.restarts;
			pt->hot_ios[unit] += r.hot_ios;
			a->fetches += r.ag.fetches;
			a->locks += r.ag.locks;
			a->commits += r.ag.commits;
			a->unlocks += r.ag.unlocks;
			a->commits_sent += r.ag.commits_sent;
			a->lookups += r.ag.lookups;
			a->cache_hits += r.ag.cache_hits;
			a->cache_misses += r.ag.cache_misses;
			a->inserts += r.ag.inserts;
			a->evictions += r.ag.evictions;
			if (i == 0) {
				a->bytes = 0;
				a->ranges = 0;
			}
			a->bytes += r.ag.bytes; /* every client's cache now */
			a->ranges += r.ag.ranges;
		}
	}
	if (unit == U_FLOOR)
		return;
	if (unit == U_TRIGGER) {
		if (keep && t_first < t_last)
			pt->trig_seconds += (double)(t_last - t_first) / 1e9;
		return;
	}
	if (opt.count)
		owner_cpu(&o1);
	if ((rc = fm_bench_owner_counts(&owner, &oc1)))
		hb_die(rc, "owner status");
	if (t_first < t_last) {
		double s = (double)(t_last - t_first) / 1e9;

		se_add(&pt->iops[unit], (double)ios / s);
		se_add(&pt->dps[unit], (double)decisions / s);
		if (keep)
			pt->seconds[unit] += s;
	}
	if (!keep)
		return;
	fm_proc_cpu_delta(&o0, &o1, &od);
	pt->ios[unit] += ios;
	pt->decisions[unit] += decisions;
	pt->owner_cpu_ms[unit] += fm_proc_cpu_ms(&od);
	pt->owner_wall_s[unit] += (double)od.wall_ns / 1e9;
	pt->owner_sched = pt->owner_sched && od.have_sched;
	pt->client_cpu_ms[unit] += client_ms;
	pt->client_sched = pt->client_sched && client_sched;
	pt->lock_requests[unit] += oc1.lock_requests - oc0.lock_requests;
	pt->owner_commits[unit] += oc1.owner_commits - oc0.owner_commits;
	pt->lock_grants[unit] += oc1.lock_grants - oc0.lock_grants;
	pt->acks[unit] += oc1.acks - oc0.acks;
	pt->queries[unit] += oc1.queries - oc0.queries;
	snprintf(pt->persist, sizeof(pt->persist), "%s", oc1.persist);
}

void hb_run_point(struct hb_point *pt, double pct)
{
	struct fm_bench_owner_cfg oc = {
		.provider = opt.provider, .device = opt.device, .addr = opt.addr,
		.lease_ms = 3000, .max_maps = HB_SETS * (opt.mappings + 1) + 1,
		.max_grains = opt.volume_size / opt.grain_size,
	};
	struct hb_cmd setup = { .op = CMD_SETUP }, pre = { .op = CMD_PRESPLIT, .pct = pct };
	struct fm_floor_cfg fc = { .provider = opt.provider, .device = opt.device,
				   .addr = opt.floor_addr };
	struct fm_proc_cpu i0, i1, idle;
	char clients_range[32], out[4096];
	const char *vol_dir;
	uint64_t t0 = fm_now_ns(), tp;
	int rc;

	hb_point_init(pt);
	pt->split_pct = pct;
	pt->grains = opt.volume_size / opt.grain_size;
	fm_loadavg(pt->la0, sizeof(pt->la0));
	if ((rc = fm_bench_owner_dir(&owner, opt.pool_dir, "flashmeta-bench", HB_KEY)))
		hb_die(rc, "the run's dir");
	snprintf(owner_log, sizeof(owner_log), "%.250s/owner.log", owner.dir);
	vol_dir = opt.vol_dir ? opt.vol_dir : owner.dir;
	if (!strcmp(opt.vol_kind, "file"))
		volumes_make(vol_dir);
	memset(sh, 0, sizeof(*sh));

	/* the processes: the floor server and the clients first (forks of
	 * this transport-free process), then the owner */
	if ((rc = fm_floor_server_start(&fc, opt.clients, &floor_pid)))
		hb_die(rc, "floor server on %s", opt.floor_addr);
	for (unsigned i = 0; i < opt.clients; i++)
		hb_client_start(&clients[i], i, sh, vol_dir);
	snprintf(clients_range, sizeof(clients_range), "1-%u", HB_SETS * opt.clients);
	oc.clients = clients_range;
	if ((rc = fm_bench_owner_start(&owner, &oc)))
		hb_die(rc, "owner start");
	for (unsigned s = 0; s < HB_SETS; s++)
		for (unsigned k = 0; k < nmaps(); k++) {
			uint64_t id = hb_map_id(s, k);

			if ((rc = fm_bench_owner_ctl(&owner, out, sizeof(out),
						     "map-create %" PRIu64 " %" PRIu64 " %" PRIu64
						     " %" PRIu64 " %" PRIu64, id, 10000 + 2 * id,
						     10001 + 2 * id, opt.volume_size,
						     opt.grain_size)) ||
			    (rc = fm_bench_owner_ctl(&owner, out, sizeof(out),
						     "map-prepare %" PRIu64, id)) ||
			    (rc = fm_bench_owner_ctl(&owner, out, sizeof(out),
						     "map-start %" PRIu64, id)))
				hb_die(rc, "mapping %" PRIu64 ": %s", id, out);
		}
	if (opt.triggers)
		trig_create();
	all_send(&setup);
	all_rc("client setup");

	/* the owner with everybody joined and nothing asked of it */
	owner_cpu(&i0);
	usleep(500000);
	owner_cpu(&i1);
	fm_proc_cpu_delta(&i0, &i1, &idle);
	pt->idle_owner_ms_per_s = fm_proc_cpu_ms(&idle) / ((double)idle.wall_ns / 1e9);

	tp = fm_now_ns();
	all_send(&pre);
	all_rc("pre-split");
	pt->presplit_s = (double)(fm_now_ns() - tp) / 1e9;

	for (unsigned r = 0; r <= opt.rounds; r++) {
		bool keep = r > 0;

		for (unsigned v = 0; v < V_N; v++) {
			se_round_begin(pt->S[v], SE_N);
			se_round_begin(&pt->all[v], 1);
			se_round_begin(&pt->iops[v], 1);
			se_round_begin(&pt->dps[v], 1);
		}
		se_round_begin(pt->F, F_N);
		se_round_begin(pt->T, T_N);
		for (unsigned u = 0; u < U_N; u++) {
			unsigned unit = (u + r) % U_N;

			if (unit != U_TRIGGER || opt.triggers)
				batch(pt, unit, r, keep);
		}
		for (unsigned v = 0; v < V_N; v++) {
			se_round_end(pt->S[v], SE_N, keep);
			se_round_end(&pt->all[v], 1, keep);
			se_round_end(&pt->iops[v], 1, keep);
			se_round_end(&pt->dps[v], 1, keep);
		}
		se_round_end(pt->F, F_N, keep);
		se_round_end(pt->T, T_N, keep);
		if (r == 0)
			for (unsigned s = 0; s < HB_SETS; s++)
				pt->split_start[s] = split_now(s);
	}
	for (unsigned s = 0; s < HB_SETS; s++)
		pt->split_end[s] = split_now(s);

	for (unsigned i = 0; i < opt.clients; i++)
		hb_client_stop(&clients[i]);
	fm_floor_server_stop(&floor_pid);
	fm_bench_owner_stop(&owner);
	if (!getenv("FM_KEEP"))
		unlink_volumes();
	fm_loadavg(pt->la1, sizeof(pt->la1));
	pt->run_s = (double)(fm_now_ns() - t0) / 1e9;
}

int main(int argc, char **argv)
{
	static struct hb_point *pts[HB_MAX_SWEEP];

	main_pid = getpid();
	setvbuf(stdout, NULL, _IOLBF, 0);
	signal(SIGPIPE, SIG_IGN);
	hb_opts_parse(argc, argv);
	snprintf(owner.bin, sizeof(owner.bin), "%s",
		 opt.owner_bin ? opt.owner_bin : owner_bin_default(argv[0]));
	opt.owner_bin = owner.bin;
	if (access(owner.bin, X_OK)) {
		fprintf(stderr, "flashmeta-bench: no flashmeta-owner at %s (--owner PATH)\n",
			owner.bin);
		return 2;
	}
	sh = mmap(NULL, sizeof(*sh), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (sh == MAP_FAILED)
		hb_die(-errno, "shared memory");
	keep_files = getenv("FM_KEEP") != NULL;
	atexit(cleanup);
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);

	if (opt.suite) {
		hb_suite_run(&owner, &floor_pid, argc, argv);
		return 0;
	}
	if (opt.ncontend) {
		hb_contend_run(&owner, &floor_pid);
		return 0;
	}
	hb_print_header();
	for (unsigned p = 0; p < opt.npoints; p++) {
		pts[p] = calloc(1, sizeof(*pts[p]));
		if (!pts[p])
			hb_die(-ENOMEM, "run point");
		hb_run_point(pts[p], opt.split_pct[p]);
		hb_point_finish(pts[p]);
		hb_print_point(pts[p]);
		if (opt.plot)
			hb_plot_point(pts[p], opt.plot);
		hb_point_free(pts[p]);
	}
	if (opt.npoints > 1)
		hb_print_sweep(pts, opt.npoints);
	if (opt.plot)
		hb_plot_sweep(pts, opt.npoints, opt.plot);
	if (opt.json)
		hb_json_write(pts, opt.npoints, opt.json);
	for (unsigned p = 0; p < opt.npoints; p++)
		free(pts[p]);
	return 0;
}
