/* pit.c -- fm-pit: the point-in-time checker (options, the run, the verdict).
 *
 * A run: start the real flashmeta-owner on a pool in a fresh tmpfs
 * directory; create the mappings (a big one of >= 4096 grains of 4 KiB
 * with a hot region, a small contended one) and prepare them; fork the
 * client processes (no transport exists in the parent, ever); let them
 * write the sources for a moment, then trigger every mapping under load;
 * inject faults from the seeded schedule (faults.c) until the duration,
 * the I/O count and the fault counts are reached; stop the clients; fork
 * the final reader, which reads every block of every volume through the
 * engine and saves the published bitmaps; stop the owner (SIGTERM) and
 * dump its pool; check everything (check.c).  A scenario (scenario.c)
 * replaces the random load and faults by one arranged interleaving.
 *
 * Output: details on stderr; ONE summary line on stdout.  Exit 0 when the
 * check found nothing and no process died unasked; 1 otherwise; 2 for a
 * run that could not be set up.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "engine.h"
#include "run.h"

static void usage(FILE *f)
{
	fprintf(f,
"usage: fm-pit [--short | --long] [options]\n"
"\n"
"Checks that a FlashCopy target always reads as its source did at the trigger plus\n"
"its own writes, with the real flashmeta-owner, forked clients doing random I/O\n"
"through the library's I/O engine (flashmeta/engine.h) on file volumes that check\n"
"the owner's fence table, and faults from a seed (client SIGKILL/SIGSTOP, owner\n"
"SIGKILL, re-triggers).\n"
"\n"
"modes\n"
"  --short               CI: 15 s of load, every fault a few times, the mix that\n"
"                        passes today (default)\n"
"  --long                >= 10^6 I/Os and >= 100 faults of every kind (lease 500 ms,\n"
"                        fault gap 250 ms, rate 5000)\n"
"  --full                add the interleavings known to break today: slow storage\n"
"                        steps (5%% of copy steps, 1..400 ms) and stops of 0.9..1.8 x\n"
"                        lease (the owner's fence window)\n"
"  --scenario NAME       restart-race | stall-race: one arranged interleaving\n"
"\n"
"load and faults\n"
"  --seed N              fault schedule and workload seed (default: random, printed)\n"
"  --duration S          seconds of load                        [short 15, long 60]\n"
"  --ios N               ... and at least N acknowledged I/Os         [long 1000000]\n"
"  --min-faults K        ... and at least K faults of each enabled kind [short 3, long 100]\n"
"  --max-s S             hard cap of the load phase           [short 45, long 10800]\n"
"  --clients N           client processes (3..%u)                      [4]\n"
"  --threads N           engine threads per client (1..%u)             [2]\n"
"  --lease-ms MS         the owner's --lease-ms                 [1000; long 500]\n"
"  --fault-gap-ms MS     mean pause between faults; 0 = no faults [500; long 250]\n"
"  --faults LIST         kind=weight,...: client-kill, owner-kill, client-stop,\n"
"                        retrigger; 'none' disables all               [all =1]\n"
"  --stop-bands LIST     SIGSTOP lengths, x lease: lo-hi,...  [0.5-0.9,1.8-3; --full 0.5-3]\n"
"  --slow PCT,MS         slow storage steps: PCT %% of copy/write steps sleep 1..MS ms\n"
"                        (scenarios: MS caps A's stall) [0,0; --full 5,400; scenario 0,5000]\n"
"  --aim-ms MS           how long an aimed fault waits for its moment [1000]\n"
"  --big-grains N, --small-grains N   mapping sizes in 4 KiB grains  [4096, 128]\n"
"  --retry-ms MS         an I/O is restarted for at most this long   [60000]\n"
"  --form F              the engine's form: sync (fm_engine_rw), polled (submit +\n"
"                        poll), mixed (even threads sync, odd polled)   [mixed]\n"
"  --mutate NAME         self-test: storage that breaks the copy-on-write order on\n"
"                        purpose (skip-copy, source-first, no-recheck)\n"
"  --expect-fail         exit 0 only if the check finds violations or lost acks\n"
"  --rate N              I/Os per second over all clients; 0 = flat out [short 10000,\n"
"                        long 5000]\n"
"  --copy-rate N         background copy at copy rate N (0..150, map-rate) after\n"
"                        the trigger, by every client's engine copier        [0]\n"
"\n"
"where\n"
"  --owner PATH          flashmeta-owner (or FM_OWNER_BIN)\n"
"  --pmem-tool PATH      flashmeta-pmem, to check the pool (or FM_PMEM_TOOL)\n"
"  --provider shm|verbs  (or FM_PROVIDER)                             [shm]\n"
"  --addr A              shm:/NAME or IP:PORT (or FM_ADDR)            [shm:/fm-pit-PID]\n"
"  --device DEV          verbs device\n"
"  --dir DIR             where the run directory is made   [/dev/shm, else /tmp]\n"
"  --keep                keep the run directory (logs, volumes, pool, owner.log)\n"
"  --owner-debug         owner log level debug\n"
"  -v, --verbose         --max-reports 100 and progress lines\n"
"  --max-reports N       detailed reports per violation kind      [20]\n"
"  -h, --help\n",
		PIT_MAX_CLIENTS, PIT_MAX_THREADS);
}

enum { O_SHORT = 256, O_LONG, O_FULL, O_SCEN, O_SEED, O_DUR, O_IOS, O_MINF, O_MAXS, O_CLIENTS,
       O_THREADS, O_LEASE, O_GAP, O_FAULTS, O_STOP, O_SLOW, O_AIM, O_BIG, O_SMALL, O_RETRY,
       O_RATE, O_MUTATE, O_EXPECT_FAIL, O_OWNER, O_PTOOL, O_PROV, O_ADDR, O_DEV, O_DIR,
       O_KEEP, O_ODEBUG, O_MAXREP, O_FORM, O_COPY };

static const struct option opts[] = {
	{ "short", no_argument, NULL, O_SHORT },
	{ "long", no_argument, NULL, O_LONG },
	{ "full", no_argument, NULL, O_FULL },
	{ "scenario", required_argument, NULL, O_SCEN },
	{ "seed", required_argument, NULL, O_SEED },
	{ "duration", required_argument, NULL, O_DUR },
	{ "ios", required_argument, NULL, O_IOS },
	{ "min-faults", required_argument, NULL, O_MINF },
	{ "max-s", required_argument, NULL, O_MAXS },
	{ "clients", required_argument, NULL, O_CLIENTS },
	{ "threads", required_argument, NULL, O_THREADS },
	{ "lease-ms", required_argument, NULL, O_LEASE },
	{ "fault-gap-ms", required_argument, NULL, O_GAP },
	{ "faults", required_argument, NULL, O_FAULTS },
	{ "stop-bands", required_argument, NULL, O_STOP },
	{ "slow", required_argument, NULL, O_SLOW },
	{ "aim-ms", required_argument, NULL, O_AIM },
	{ "big-grains", required_argument, NULL, O_BIG },
	{ "small-grains", required_argument, NULL, O_SMALL },
	{ "retry-ms", required_argument, NULL, O_RETRY },
	{ "rate", required_argument, NULL, O_RATE },
	{ "copy-rate", required_argument, NULL, O_COPY },
	{ "mutate", required_argument, NULL, O_MUTATE },
	{ "form", required_argument, NULL, O_FORM },
	{ "expect-fail", no_argument, NULL, O_EXPECT_FAIL },
	{ "owner", required_argument, NULL, O_OWNER },
	{ "pmem-tool", required_argument, NULL, O_PTOOL },
	{ "provider", required_argument, NULL, O_PROV },
	{ "addr", required_argument, NULL, O_ADDR },
	{ "device", required_argument, NULL, O_DEV },
	{ "dir", required_argument, NULL, O_DIR },
	{ "keep", no_argument, NULL, O_KEEP },
	{ "owner-debug", no_argument, NULL, O_ODEBUG },
	{ "max-reports", required_argument, NULL, O_MAXREP },
	{ "verbose", no_argument, NULL, 'v' },
	{ "help", no_argument, NULL, 'h' },
	{ 0 },
};

static int parse_faults(struct pit_cfg *cfg, const char *arg)
{
	char buf[256], *save = NULL, *tok;

	memset(cfg->weight, 0, sizeof(cfg->weight));
	if (!strcmp(arg, "none"))
		return 0;
	snprintf(buf, sizeof(buf), "%s", arg);
	for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		char *eq = strchr(tok, '=');
		unsigned w = eq ? (unsigned)atoi(eq + 1) : 1;
		int k;

		if (eq)
			*eq = '\0';
		for (k = 0; k < PIT_F_KINDS; k++)
			if (!strcmp(tok, pit_fault_name((enum pit_fault_kind)k)))
				break;
		if (k == PIT_F_KINDS || w > 16)
			return -1;
		cfg->weight[k] = w;
	}
	return 0;
}

static int parse_bands(struct pit_cfg *cfg, const char *arg)
{
	const char *p = arg;

	cfg->stop_bands = 0;
	while (*p && cfg->stop_bands < 4) {
		char *x;
		double lo = strtod(p, &x), hi;

		if (*x != '-')
			return -1;
		hi = strtod(x + 1, &x);
		if (hi < lo || lo < 0)
			return -1;
		cfg->stop_lo[cfg->stop_bands] = lo;
		cfg->stop_hi[cfg->stop_bands++] = hi;
		if (*x == ',')
			x++;
		else if (*x)
			return -1;
		p = x;
	}
	return cfg->stop_bands ? 0 : -1;
}

static const char *env_or(const char *name, const char *dflt)
{
	const char *v = getenv(name);

	return v && *v ? v : dflt;
}

/* ------------------------------------------------------------ the run */

static int pool_dump(struct pit_run *r, const char *out_path)
{
	const char *tool = r->cfg->pmem_tool;
	int st;
	pid_t pid;

	fflush(NULL);
	pid = fork();
	if (pid < 0)
		return -errno;
	if (pid == 0) {
		int fd = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);

		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (fd < 0)
			_exit(126);
		dup2(fd, 1);
		execl(tool, tool, "dump", r->pool, "--json", "--runs", "100000000", (char *)NULL);
		_exit(127);
	}
	if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		pit_say(r, "%s dump %s: status 0x%x", tool, r->pool, st);
		return -EIO;
	}
	return 0;
}

static bool faults_done(const struct pit_run *r)
{
	for (int k = 0; k < PIT_F_KINDS; k++)
		if (r->cfg->weight[k] && r->fs.n[k] < r->cfg->min_faults)
			return false;
	return true;
}

static bool faults_on(const struct pit_cfg *cfg)
{
	if (!cfg->fault_gap_ms)
		return false;
	for (int k = 0; k < PIT_F_KINDS; k++)
		if (cfg->weight[k])
			return true;
	return false;
}

/* the presets of a mode; flags override them */
static void preset(struct pit_cfg *cfg, const char *mode, bool full)
{
	*cfg = (struct pit_cfg){
		.scenario = cfg->scenario, .provider = cfg->provider, .addr = cfg->addr,
		.owner_bin = cfg->owner_bin, .pmem_tool = cfg->pmem_tool,
		.clients = 4, .threads = 2, .lease_ms = 1000, .duration_ms = 15000,
		.min_faults = 3, .max_ms = 45000, .fault_gap_ms = 500, .rate = 10000,
		.weight = { 1, 1, 1, 1 }, .aim_ms = 1000, .big_grains = 4096,
		.small_grains = 128, .retry_ms = 60000,
		/* around the owner's fence window, which --full adds */
		.stop_lo = { 0.5, 1.8 }, .stop_hi = { 0.9, 3.0 }, .stop_bands = 2,
	};
	if (!strcmp(mode, "long")) {
		cfg->min_ios = 1000000;
		cfg->min_faults = 100;
		cfg->duration_ms = 60000;
		cfg->max_ms = 3 * 3600 * 1000;
		cfg->rate = 5000;
		cfg->lease_ms = 500;
		cfg->fault_gap_ms = 250;
	}
	if (full) {
		cfg->slow_pct = 5;
		cfg->slow_ms = 400;
		cfg->stop_bands = 1;
		cfg->stop_lo[0] = 0.5;
		cfg->stop_hi[0] = 3.0;
	}
	if (cfg->scenario) { /* two scripted clients, two threads each */
		cfg->clients = 2;
		cfg->slow_pct = 0;
		cfg->slow_ms = 5000; /* the longest a gated stall may last */
	}
}

static int run_random(struct pit_run *r)
{
	const struct pit_cfg *cfg = r->cfg;
	uint64_t t_load, next_progress;

	if (pit_owner_start(r) || pit_maps_setup(r))
		return -1;
	for (unsigned i = 0; i < cfg->clients; i++)
		if (pit_child_start(r, i, PIT_CLIENT_RANDOM))
			return -1;
	for (unsigned i = 0; i < cfg->clients; i++)
		if (!pit_wait_ready(r, i, 30000)) {
			pit_say(r, "client %u did not come up", i);
			return -1;
		}
	/* sources get data of generation 0, then the trigger, under load */
	pit_idle(r, cfg->duration_ms / 10 < 1000 ? cfg->duration_ms / 10 : 1000);
	for (unsigned m = 0; m < r->env.nmaps; m++)
		if (pit_trigger(r, m, "map-start"))
			return -1;
	for (unsigned m = 0; cfg->copy_rate && m < r->env.nmaps; m++) {
		char out[4096];

		/* durable in the pool: owner restarts keep it */
		if (pit_ctl(r, out, sizeof(out), "map-rate %" PRIu64 " %u", r->env.maps[m].id,
			    cfg->copy_rate)) {
			pit_say(r, "map-rate: %s", out);
			return -1;
		}
	}
	t_load = pit_now_ns();
	next_progress = t_load + 30000000000ull;
	for (;;) {
		uint64_t el = (pit_now_ns() - t_load) / 1000000;

		if ((el >= cfg->duration_ms && pit_ios_done(r) >= cfg->min_ios && faults_done(r)) ||
		    el >= cfg->max_ms)
			break;
		if (faults_on(cfg))
			pit_fault_next(r);
		else
			pit_idle(r, 100);
		if (pit_now_ns() > next_progress) {
			pit_say(r, "progress: %" PRIu64 " I/Os, faults %u/%u/%u/%u",
				pit_ios_done(r), r->fs.n[0], r->fs.n[1], r->fs.n[2], r->fs.n[3]);
			next_progress += 30000000000ull;
		}
	}
	if (pit_now_ns() - t_load >= (uint64_t)cfg->max_ms * 1000000 &&
	    (pit_ios_done(r) < cfg->min_ios || !faults_done(r)))
		pit_say(r, "load phase capped at %u s before the I/O or fault goal",
			cfg->max_ms / 1000);
	atomic_store(&r->env.sh->stop, 1);
	for (unsigned i = 0; i < cfg->clients; i++)
		(void)pit_child_wait(r, i, 60000);
	return 0;
}

/* the final reader, the owner's clean stop, the pool dump */
static int finish(struct pit_run *r, char *pool_json, size_t cap)
{
	unsigned sweep = r->cfg->clients;
	int st;

	atomic_store(&r->env.sh->stop, 1);
	if (!r->owner && pit_owner_start(r))
		return -1;
	if (pit_child_start(r, sweep, PIT_CLIENT_SWEEP))
		return -1;
	st = pit_child_wait(r, sweep, 600000);
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
		pit_say(r, "final sweep failed (status 0x%x)", st);
	pit_owner_kill(r, SIGTERM);
	pool_json[0] = '\0';
	if (r->cfg->pmem_tool) {
		snprintf(pool_json, cap, "%s/pool.json", r->env.dir);
		if (pool_dump(r, pool_json))
			pool_json[0] = '\0';
	}
	return 0;
}

static void summary(const struct pit_run *r, const struct pit_check_out *o, const char *mode,
		    int reached, double secs, bool pass)
{
	const struct pit_cfg *cfg = r->cfg;
	const struct pit_fault_stats *f = &r->fs;
	uint64_t ios = o->ios[0] + o->ios[1] + o->ios[2] + o->ios[3];
	char gens[64] = "", copy[32] = "";
	uint64_t max_trig = 0, failed = 0;
	const char *reach = reached < 0 ? "" : reached ? " reached=yes" : " reached=no";

	for (unsigned i = 0; i <= PIT_MAX_CLIENTS; i++)
		failed += atomic_load(&r->env.sh->c[i].failed);

	for (size_t i = 0; i < r->ntrig; i++)
		if (r->trig[i].t_done_ns - r->trig[i].t_sent_ns > max_trig)
			max_trig = r->trig[i].t_done_ns - r->trig[i].t_sent_ns;

	for (unsigned m = 0; m < r->env.nmaps; m++)
		snprintf(gens + strlen(gens), sizeof(gens) - strlen(gens), "%s%" PRIu64,
			 m ? "/" : "", o->max_gen[m]);
	if (cfg->copy_rate)
		snprintf(copy, sizeof(copy), "copy-rate=%u ", cfg->copy_rate);
	printf("fm-pit: %s mode=%s seed=%" PRIu64 " provider=%s form=%s clients=%ux%u lease=%ums "
	       "%sios=%" PRIu64 " (read-src %" PRIu64 " write-src %" PRIu64
	       " read-tgt %" PRIu64
	       " write-tgt %" PRIu64 ", retried %" PRIu64 ", cut %" PRIu64
	       ") blocks-checked=%" PRIu64 " splits-acked=%" PRIu64
	       " faults: client-kill=%u (mid-copy %u, slow %u)"
	       " owner-kill=%u (mid-commit %u, mid-copy %u, slow %u) client-stop=%u (mid-copy %u,"
	       " fenced %u, survived-fence %u) retrigger=%u gens=%s violations=%" PRIu64
	       " lost-acks=%" PRIu64 " deaths=%u hangs=%u io-errors=%" PRIu64
	       " slowest-io=%.1fs slowest-trigger=%.1fs%s"
	       " duration=%.1fs\n",
	       pass ? "PASS" : "FAIL", mode, cfg->seed, cfg->provider,
	       cfg->form == PIT_FORM_SYNC ? "sync" : cfg->form == PIT_FORM_POLLED ? "polled" : "mixed",
	       cfg->clients, cfg->threads,
	       cfg->lease_ms, copy, ios, o->ios[FM_IO_READ_SOURCE], o->ios[FM_IO_WRITE_SOURCE],
	       o->ios[FM_IO_READ_TARGET], o->ios[FM_IO_WRITE_TARGET], o->retried, o->unfinished,
	       o->target_blocks + o->source_blocks, o->commits_acked, f->n[PIT_F_CLIENT_KILL],
	       f->client_kill_in_copy, f->client_kill_in_slow, f->n[PIT_F_OWNER_KILL],
	       f->owner_kill_in_commit, f->owner_kill_in_copy, f->owner_kill_in_slow,
	       f->n[PIT_F_CLIENT_STOP], f->stop_in_copy, f->stop_fenced, f->stop_survived,
	       f->n[PIT_F_RETRIGGER], gens, o->violations, o->lost_acks,
	       r->client_deaths + r->owner_deaths, r->client_hangs, failed,
	       (double)o->max_io_ns / 1e9, (double)max_trig / 1e9, reach, secs);
	fflush(stdout);
	if (o->max_io_what[0])
		fprintf(stderr, "fm-pit: the slowest attempt: %s\n", o->max_io_what);
}

int main(int argc, char **argv)
{
	static struct pit_run run;
	struct pit_cfg cfg = { 0 };
	struct pit_check_out out;
	struct pit_check_in in;
	const char *mode = "short";
	bool seeded = false, full = false;
	unsigned max_reports = 20;
	char pool_json[400];
	int c, reached = -1, rc;
	uint64_t t0;
	bool pass;

	cfg.provider = env_or("FM_PROVIDER", "shm");
	cfg.addr = env_or("FM_ADDR", NULL);
	cfg.owner_bin = env_or("FM_OWNER_BIN", NULL);
	cfg.pmem_tool = env_or("FM_PMEM_TOOL", NULL);
	/* pass 1: the mode, whose presets the other flags then override */
	opterr = 0;
	while ((c = getopt_long(argc, argv, "vh", opts, NULL)) != -1) {
		if (c == O_LONG)
			mode = "long";
		else if (c == O_SHORT)
			mode = "short";
		else if (c == O_FULL)
			full = true;
		else if (c == O_SCEN)
			cfg.scenario = optarg;
	}
	preset(&cfg, mode, full);
	opterr = 1;
	optind = 1;
	while ((c = getopt_long(argc, argv, "vh", opts, NULL)) != -1) {
		switch (c) {
		case O_SHORT: case O_LONG: case O_FULL: case O_SCEN: break;
		case O_SEED: cfg.seed = strtoull(optarg, NULL, 0); seeded = true; break;
		case O_DUR: cfg.duration_ms = (uint32_t)(atof(optarg) * 1000); break;
		case O_IOS: cfg.min_ios = strtoull(optarg, NULL, 0); break;
		case O_MINF: cfg.min_faults = (unsigned)atoi(optarg); break;
		case O_MAXS: cfg.max_ms = (uint32_t)(atof(optarg) * 1000); break;
		case O_CLIENTS: cfg.clients = (unsigned)atoi(optarg); break;
		case O_THREADS: cfg.threads = (unsigned)atoi(optarg); break;
		case O_LEASE: cfg.lease_ms = (uint32_t)atoi(optarg); break;
		case O_GAP: cfg.fault_gap_ms = (uint32_t)atoi(optarg); break;
		case O_FAULTS:
			if (parse_faults(&cfg, optarg)) {
				fprintf(stderr, "fm-pit: --faults %s: kind=weight,... or none\n",
					optarg);
				return 2;
			}
			break;
		case O_STOP:
			if (parse_bands(&cfg, optarg)) {
				fprintf(stderr, "fm-pit: --stop-bands %s: lo-hi,...\n", optarg);
				return 2;
			}
			break;
		case O_SLOW:
			if (sscanf(optarg, "%u,%u", &cfg.slow_pct, &cfg.slow_ms) != 2 ||
			    cfg.slow_pct > 100) {
				fprintf(stderr, "fm-pit: --slow PCT,MS\n");
				return 2;
			}
			break;
		case O_AIM: cfg.aim_ms = (uint32_t)atoi(optarg); break;
		case O_BIG: cfg.big_grains = strtoull(optarg, NULL, 0); break;
		case O_SMALL: cfg.small_grains = strtoull(optarg, NULL, 0); break;
		case O_RETRY: cfg.retry_ms = (uint32_t)atoi(optarg); break;
		case O_RATE: cfg.rate = (uint32_t)atoi(optarg); break;
		case O_COPY:
			cfg.copy_rate = (uint32_t)atoi(optarg);
			if (cfg.copy_rate > 150) {
				fprintf(stderr, "fm-pit: --copy-rate 0..150\n");
				return 2;
			}
			break;
		case O_MUTATE:
			for (cfg.mutation = 0; cfg.mutation < PIT_MUT_COUNT; cfg.mutation++)
				if (!strcmp(optarg, pit_mutation_name(cfg.mutation)))
					break;
			if (cfg.mutation == PIT_MUT_COUNT) {
				fprintf(stderr, "fm-pit: --mutate skip-copy|source-first|"
					"no-recheck\n");
				return 2;
			}
			break;
		case O_FORM:
			if (!strcmp(optarg, "mixed")) {
				cfg.form = PIT_FORM_MIXED;
			} else if (!strcmp(optarg, "sync")) {
				cfg.form = PIT_FORM_SYNC;
			} else if (!strcmp(optarg, "polled")) {
				cfg.form = PIT_FORM_POLLED;
			} else {
				fprintf(stderr, "fm-pit: --form sync|polled|mixed\n");
				return 2;
			}
			break;
		case O_EXPECT_FAIL: cfg.expect_fail = true; break;
		case O_OWNER: cfg.owner_bin = optarg; break;
		case O_PTOOL: cfg.pmem_tool = optarg; break;
		case O_PROV: cfg.provider = optarg; break;
		case O_ADDR: cfg.addr = optarg; break;
		case O_DEV: cfg.device = optarg; break;
		case O_DIR: cfg.dir_base = optarg; break;
		case O_KEEP: cfg.keep = true; break;
		case O_ODEBUG: cfg.owner_debug = true; break;
		case O_MAXREP: max_reports = (unsigned)atoi(optarg); break;
		case 'v': cfg.verbose++; max_reports = 100; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind < argc || !cfg.owner_bin) {
		fprintf(stderr, "fm-pit: %s\n",
			optind < argc ? "unexpected argument"
				      : "--owner PATH (or FM_OWNER_BIN) is required");
		usage(stderr);
		return 2;
	}
	if ((!cfg.scenario && cfg.clients < 3) || cfg.clients > PIT_MAX_CLIENTS ||
	    cfg.threads < 1 || cfg.threads > PIT_MAX_THREADS || cfg.lease_ms < 100 ||
	    cfg.big_grains < 16 || cfg.small_grains < 16 || cfg.big_grains % 8 ||
	    cfg.small_grains % 8) {
		fprintf(stderr, "fm-pit: clients 3..%u, threads 1..%u, lease >= 100 ms, mapping "
			"sizes multiples of 8 grains >= 16\n", PIT_MAX_CLIENTS, PIT_MAX_THREADS);
		return 2;
	}
	if (!seeded)
		cfg.seed = (pit_now_ns() ^ (uint64_t)getpid() << 20) % 1000000007u;
	if (pit_run_init(&run, &cfg))
		return 2;
	t0 = pit_now_ns();
	fprintf(stderr, "fm-pit: %s%s seed %" PRIu64 " (--seed %" PRIu64 " repeats the schedule), "
		"provider %s, addr %s, dir %s\n", cfg.scenario ? cfg.scenario : mode,
		full ? " --full" : "", cfg.seed, cfg.seed,
		cfg.provider, run.env.addr, run.env.dir);
	if (cfg.scenario)
		rc = reached = pit_scenario_run(&run);
	else
		rc = run_random(&run);
	if (rc < 0 || finish(&run, pool_json, sizeof(pool_json))) {
		fprintf(stderr, "fm-pit: the run could not be set up (owner log: %s)\n",
			run.owner_log);
		if (!cfg.keep)
			fprintf(stderr, "fm-pit: rerun with --keep to look at it\n");
		pit_run_fini(&run);
		return 2;
	}
	in = (struct pit_check_in){
		.env = &run.env, .incs = run.incs, .nincs = run.nincs, .trig = run.trig,
		.ntrig = run.ntrig, .bitmaps = true, .pool_json = pool_json[0] ? pool_json : NULL,
		.max_reports = max_reports,
	};
	if (pit_check(&in, &out)) {
		pit_run_fini(&run);
		return 2;
	}
	pass = out.violations == 0 && out.lost_acks == 0 && run.client_deaths == 0 &&
	       run.owner_deaths == 0 && run.client_hangs == 0;
	if (!pass && !cfg.keep)
		fprintf(stderr, "fm-pit: to look closer: --seed %" PRIu64 " --keep\n", cfg.seed);
	if (cfg.scenario)
		mode = cfg.scenario;
	else if (full)
		mode = strcmp(mode, "long") ? "short-full" : "long-full";
	summary(&run, &out, mode, reached, (double)(pit_now_ns() - t0) / 1e9, pass);
	pit_run_fini(&run);
	if (cfg.expect_fail) { /* a self-test: the check must have found the breakage */
		bool found = out.violations || out.lost_acks;

		fprintf(stderr, "fm-pit: --expect-fail: the check %s\n",
			found ? "caught the breakage" : "found NOTHING");
		return found ? 0 : 1;
	}
	return pass ? 0 : 1;
}
