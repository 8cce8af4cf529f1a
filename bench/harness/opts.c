/* opts.c -- flashmeta-bench: options and --help. */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"

struct hb_opts opt = {
	.provider = "shm", .vol_kind = "memory", .clients = 2, .threads = 2,
	.pattern = PAT_UNIFORM, .theta = 0.99,
	.mix = { [FM_IO_READ_SOURCE] = 10, [FM_IO_WRITE_SOURCE] = 20,
		 [FM_IO_READ_TARGET] = 60, [FM_IO_WRITE_TARGET] = 10 },
	.io_size = 4096, .grain_size = 4096, .volume_size = 1ull << 30, .mappings = 1,
	.split_pct = { 50 }, .npoints = 1, .split_run = 1, .rounds = 5, .batch_ms = 300,
	.floor_ops = 500, .seed = 1, .triggers = 20,
};

static void usage(FILE *f)
{
	fprintf(f,
		"usage: flashmeta-bench [options]\n"
		"  A real flashmeta-owner and N client processes x M engine threads doing\n"
		"  host I/O through the library's engine (engine.h) on reference volumes;\n"
		"  each path's latency beside its floor, the same workload with no cache,\n"
		"  with a cache that never merges ranges, deciding by message (the\n"
		"  lock-manager baseline: every decision a message to the owner) and on the\n"
		"  volumes alone, in interleaved rounds of one run.\n"
		"\n"
		" where\n"
		"  --provider shm|verbs   transport (default shm)\n"
		"  --addr ADDR            the owner's: IP:PORT for verbs (required; the floor\n"
		"                         server takes PORT+1), shm:/NAME for shm (default\n"
		"                         shm:/flashmeta-bench-PID)\n"
		"  --device NAME          RDMA device (default: env FM_RDMA_DEV, else the first)\n"
		"  --owner PATH           flashmeta-owner (default: env FM_OWNER_BIN, else the\n"
		"                         one built beside this program)\n"
		"  --pool-dir DIR         the owner's pool, key, control socket (default\n"
		"                         /dev/shm if writable, else /tmp)\n"
		"  --volumes memory|file  reference volumes (refvol.h): memory (default; a\n"
		"                         metadata-only run, each process its own buffers) or\n"
		"                         file (shared files, pread/pwrite, FLUSH = fdatasync)\n"
		"  --vol-dir DIR          file volumes: where (default: the run's temp dir)\n"
		" who\n"
		"  --clients N            client processes, 1..%u (default 2)\n"
		"  --threads M            engine threads per client, 1..%u (default 2)\n"
		" what\n"
		"  --workload seq|uniform|zipf   where I/Os go (default uniform)\n"
		"  --theta T              zipfian skew, 0 < T < 1 (default 0.99)\n"
		"  --mix rs=N,ws=N,rt=N,wt=N     percent of source/target reads/writes\n"
		"                         (default rs=10,ws=20,rt=60,wt=10)\n"
		"  --io-size B            bytes per I/O, a multiple of 512 (default 4096)\n"
		"  --grain-size B         the mappings' grain, a power of 2 up to 16M\n"
		"                         (default 4096)\n"
		"  --volume-size B        bytes per volume, K/M/G suffixes (default 1G)\n"
		"  --mappings K           mappings the I/Os spread over, 1..%u (default 1)\n"
		"  --split PCT            grains split before the measured phase, 0..100\n"
		"                         (default 50)\n"
		"  --sweep-split LIST     one run point per fraction, e.g. 0,25,50,75,100\n"
		"  --split-layout random|prefix  which grains (default random: scattered)\n"
		"  --split-run G          random layout: chosen in runs of G grains (default 1;\n"
		"                         larger: fewer commits to pre-split, fewer ranges)\n"
		"  --hot K                K clients (thread 0 of each, K >= 2) write one fresh\n"
		"                         grain together, step after step (default 0: off)\n"
		"  --sweep-contention LIST  instead of the I/O run: one point per k, e.g.\n"
		"                         1,2,4,8,16: k processes lock one hot grain (lock, a\n"
		"                         tiny critical section, unlock), beside a plain CAS\n"
		"                         spin without backoff on one word, interleaved\n"
		" how long\n"
		"  --rounds N             reported rounds, >= 1 (default 5; one more runs\n"
		"                         first as warm-up and is dropped)\n"
		"  --batch-ms MS          one variant's batch per round (default 300)\n"
		"  --duration S           measured seconds per variant: sets --batch-ms\n"
		"  --count N              instead: I/Os per engine thread, variant and round\n"
		"  --floor-ops N          floor operations per kind, thread and round\n"
		"                         (default 500)\n"
		"  --triggers K           map-prepare/start/stop cycles per round on a mapping\n"
		"                         of their own, under the cache engine's I/O on it,\n"
		"                         each control command timed (default 20; --quick 8;\n"
		"                         0: no trigger unit)\n"
		"  --seed N               the workload's seed (default 1)\n"
		"  --quick                a short smoke run (2 rounds of 100 ms, 256 MiB)\n"
		" the suite\n"
		"  --suite                the standard set into one results folder: the I/O run\n"
		"                         (every variant), a split sweep (0,50,95,100), the\n"
		"                         contention sweep (k = 1,2,4,8,16), cache bytes vs\n"
		"                         volume size and vs ranges; the tables, one JSON with\n"
		"                         every parameter and the machine, the plots, the\n"
		"                         elapsed time (with --quick: fewer points)\n"
		"  --results DIR          the suite's folder (default\n"
		"                         results/<UTC timestamp>-<provider>; must not exist)\n"
		"  --ref-atomic-ns N      the suite: perftest's ib_atomic_lat t_typical on the\n"
		"                         device, in ns; each path is also reported as a ratio\n"
		"                         to the device floor built from these\n"
		"  --ref-read-ns N        ... ib_read_lat (64 B)\n"
		"  --ref-send-ns N        ... ib_send_lat (perftest's one-way figure: half\n"
		"                         a round trip)\n"
		" output\n"
		"  --json FILE            every figure, parameter and the machine, as JSON\n"
		"  --plot DIR             latency CDFs and throughput vs split (contention:\n"
		"                         goodput vs k) as PNG\n"
		"                         (gnuplot; without it the data and scripts only)\n"
		"  -h, --help             this text\n"
		"Nothing is asserted: the exit status is 0 whenever the run completed.\n",
		HB_MAX_CLIENTS, HB_MAX_THREADS, HB_MAX_MAPS);
}

static __attribute__((noreturn)) void bad(const char *fmt, const char *a, const char *b)
{
	fprintf(stderr, "flashmeta-bench: ");
	fprintf(stderr, fmt, a, b);
	fprintf(stderr, "\n");
	exit(2);
}

static uint64_t num(const char *what, const char *s, uint64_t lo, uint64_t hi, bool suffix)
{
	char *end;
	unsigned long long v;
	uint64_t mul = 1;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (suffix && end != s && *end && !end[1]) {
		switch (*end) {
		case 'k': case 'K': mul = 1ull << 10; end++; break;
		case 'm': case 'M': mul = 1ull << 20; end++; break;
		case 'g': case 'G': mul = 1ull << 30; end++; break;
		case 't': case 'T': mul = 1ull << 40; end++; break;
		default: break;
		}
	}
	if (errno || end == s || *end || s[0] == '-' || v > hi / mul || v * mul < lo) {
		fprintf(stderr, "flashmeta-bench: %s '%s': want %llu..%llu\n", what, s,
			(unsigned long long)lo, (unsigned long long)hi);
		exit(2);
	}
	return v * mul;
}

static double fnum(const char *what, const char *s, double lo, double hi)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno || end == s || *end || !(v >= lo && v <= hi)) {
		fprintf(stderr, "flashmeta-bench: %s '%s': want %g..%g\n", what, s, lo, hi);
		exit(2);
	}
	return v;
}

static void parse_mix(const char *s)
{
	static const char *const key[FM_IO_OP_COUNT] = {
		[FM_IO_READ_SOURCE] = "rs", [FM_IO_WRITE_SOURCE] = "ws",
		[FM_IO_READ_TARGET] = "rt", [FM_IO_WRITE_TARGET] = "wt",
	};
	char buf[128], *save = NULL, *tok;
	unsigned sum = 0;

	snprintf(buf, sizeof(buf), "%s", s);
	memset(opt.mix, 0, sizeof(opt.mix));
	for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		char *eq = strchr(tok, '=');
		int k;

		if (!eq)
			bad("--mix: '%s' is not KEY=PERCENT%s", tok, "");
		*eq = '\0';
		for (k = 0; k < FM_IO_OP_COUNT; k++)
			if (!strcmp(tok, key[k]))
				break;
		if (k == FM_IO_OP_COUNT)
			bad("--mix: unknown '%s' (rs, ws, rt, wt)%s", tok, "");
		opt.mix[k] = (unsigned)num("--mix percent", eq + 1, 0, 100, false);
	}
	for (int k = 0; k < FM_IO_OP_COUNT; k++)
		sum += opt.mix[k];
	if (sum != 100)
		bad("--mix '%s': the percentages must add up to 100%s", s, "");
}

static void parse_sweep(const char *s)
{
	char buf[256], *save = NULL, *tok;

	snprintf(buf, sizeof(buf), "%s", s);
	opt.npoints = 0;
	for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		if (opt.npoints == HB_MAX_SWEEP)
			bad("--sweep-split: at most 16 points%s%s", "", "");
		opt.split_pct[opt.npoints++] = fnum("--sweep-split", tok, 0, 100);
	}
	if (!opt.npoints)
		bad("--sweep-split: empty list%s%s", "", "");
	opt.sweep = true;
}

static void parse_contention(const char *s)
{
	char buf[256], *save = NULL, *tok;

	snprintf(buf, sizeof(buf), "%s", s);
	opt.ncontend = 0;
	for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		if (opt.ncontend == HB_MAX_SWEEP)
			bad("--sweep-contention: at most 16 points%s%s", "", "");
		opt.contend_k[opt.ncontend++] =
			(unsigned)num("--sweep-contention k", tok, 1, HB_MAX_CLIENTS, false);
	}
	if (!opt.ncontend)
		bad("--sweep-contention: empty list%s%s", "", "");
}

void hb_opts_parse(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "provider", required_argument, NULL, 'p' },
		{ "addr", required_argument, NULL, 'a' },
		{ "device", required_argument, NULL, 'd' },
		{ "owner", required_argument, NULL, 'o' },
		{ "pool-dir", required_argument, NULL, 'D' },
		{ "volumes", required_argument, NULL, 'V' },
		{ "vol-dir", required_argument, NULL, 'W' },
		{ "clients", required_argument, NULL, 'c' },
		{ "threads", required_argument, NULL, 't' },
		{ "workload", required_argument, NULL, 'w' },
		{ "theta", required_argument, NULL, 'T' },
		{ "mix", required_argument, NULL, 'm' },
		{ "io-size", required_argument, NULL, 'i' },
		{ "grain-size", required_argument, NULL, 'g' },
		{ "volume-size", required_argument, NULL, 'v' },
		{ "mappings", required_argument, NULL, 'M' },
		{ "split", required_argument, NULL, 's' },
		{ "sweep-split", required_argument, NULL, 'S' },
		{ "split-layout", required_argument, NULL, 'L' },
		{ "split-run", required_argument, NULL, 'R' },
		{ "hot", required_argument, NULL, 'H' },
		{ "sweep-contention", required_argument, NULL, 'K' },
		{ "rounds", required_argument, NULL, 'r' },
		{ "batch-ms", required_argument, NULL, 'b' },
		{ "duration", required_argument, NULL, 'u' },
		{ "count", required_argument, NULL, 'n' },
		{ "floor-ops", required_argument, NULL, 'f' },
		{ "triggers", required_argument, NULL, 'G' },
		{ "seed", required_argument, NULL, 'e' },
		{ "quick", no_argument, NULL, 'q' },
		{ "json", required_argument, NULL, 'j' },
		{ "plot", required_argument, NULL, 'P' },
		{ "suite", no_argument, NULL, 'Z' },
		{ "results", required_argument, NULL, 'O' },
		{ "ref-atomic-ns", required_argument, NULL, 'x' },
		{ "ref-read-ns", required_argument, NULL, 'y' },
		{ "ref-send-ns", required_argument, NULL, 'z' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	double duration = 0;
	bool split_set = false, batch_set = false, vol_set = false, rounds_set = false;
	bool floor_set = false, triggers_set = false;
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
		case 'V': opt.vol_kind = optarg; break;
		case 'W': opt.vol_dir = optarg; break;
		case 'c': opt.clients = (unsigned)num("--clients", optarg, 1, HB_MAX_CLIENTS, 0);
			  break;
		case 't': opt.threads = (unsigned)num("--threads", optarg, 1, HB_MAX_THREADS, 0);
			  break;
		case 'w':
			if (!strcmp(optarg, "seq") || !strcmp(optarg, "sequential"))
				opt.pattern = PAT_SEQ;
			else if (!strcmp(optarg, "uniform"))
				opt.pattern = PAT_UNIFORM;
			else if (!strcmp(optarg, "zipf") || !strcmp(optarg, "zipfian"))
				opt.pattern = PAT_ZIPF;
			else
				bad("--workload '%s': seq, uniform or zipf%s", optarg, "");
			break;
		case 'T': opt.theta = fnum("--theta", optarg, 0.01, 0.999); break;
		case 'm': parse_mix(optarg); break;
		case 'i': opt.io_size = num("--io-size", optarg, 512, 1ull << 24, true); break;
		case 'g': opt.grain_size = num("--grain-size", optarg, 512, 1ull << 24, true);
			  break;
		case 'v': opt.volume_size = num("--volume-size", optarg, 4096, 1ull << 50, true);
			  vol_set = true;
			  break;
		case 'M': opt.mappings = (unsigned)num("--mappings", optarg, 1, HB_MAX_MAPS, false);
			  break;
		case 's': opt.split_pct[0] = fnum("--split", optarg, 0, 100);
			  split_set = true;
			  break;
		case 'S': parse_sweep(optarg); break;
		case 'L':
			if (!strcmp(optarg, "prefix"))
				opt.split_prefix = true;
			else if (strcmp(optarg, "random"))
				bad("--split-layout '%s': random or prefix%s", optarg, "");
			break;
		case 'R': opt.split_run = (unsigned)num("--split-run", optarg, 1, 1u << 20, 0);
			  break;
		case 'K': parse_contention(optarg); break;
		case 'H': opt.hot = (unsigned)num("--hot", optarg, 0, HB_MAX_CLIENTS, false); break;
		case 'r': opt.rounds = (unsigned)num("--rounds", optarg, 1, 100000, false);
			  rounds_set = true;
			  break;
		case 'b': opt.batch_ms = (unsigned)num("--batch-ms", optarg, 10, 600000, false);
			  batch_set = true;
			  break;
		case 'u': duration = fnum("--duration", optarg, 0.01, 86400); break;
		case 'n': opt.count = num("--count", optarg, 1, 1ull << 40, false); break;
		case 'f': opt.floor_ops = (unsigned)num("--floor-ops", optarg, 1, 10000000, false);
			  floor_set = true;
			  break;
		case 'G': opt.triggers = (unsigned)num("--triggers", optarg, 0, 100000, false);
			  triggers_set = true;
			  break;
		case 'e': opt.seed = num("--seed", optarg, 0, UINT64_MAX, false); break;
		case 'q': opt.quick = true; break;
		case 'j': opt.json = optarg; break;
		case 'P': opt.plot = optarg; break;
		case 'Z': opt.suite = true; break;
		case 'O': opt.results = optarg; break;
		case 'x': opt.ref_ns[0] = fnum("--ref-atomic-ns", optarg, 1, 1e9); break;
		case 'y': opt.ref_ns[1] = fnum("--ref-read-ns", optarg, 1, 1e9); break;
		case 'z': opt.ref_ns[2] = fnum("--ref-send-ns", optarg, 1, 1e9); break;
		case 'h': usage(stdout); exit(0);
		default: usage(stderr); exit(2);
		}
	}
	if (optind < argc) {
		usage(stderr);
		exit(2);
	}
	if (opt.quick) { /* what was not given explicitly */
		if (!rounds_set)
			opt.rounds = 2;
		if (!batch_set)
			opt.batch_ms = 100;
		if (!floor_set)
			opt.floor_ops = 200;
		if (!triggers_set)
			opt.triggers = 8;
		if (!vol_set)
			opt.volume_size = 256ull << 20;
	}
	if (duration > 0) {
		if (batch_set || opt.count)
			bad("--duration goes with neither --batch-ms nor --count%s%s", "", "");
		opt.batch_ms = (unsigned)ceil(duration * 1000.0 / opt.rounds);
		if (opt.batch_ms < 10)
			opt.batch_ms = 10;
	}
	if (opt.sweep && split_set)
		bad("--split and --sweep-split: one or the other%s%s", "", "");
	if (opt.ncontend && (opt.sweep || split_set || opt.hot || opt.count))
		bad("--sweep-contention runs instead of the I/O run: not with --split, "
		    "--sweep-split, --hot or --count%s%s", "", "");
	if (opt.suite && (opt.sweep || split_set || opt.ncontend || opt.json || opt.plot))
		bad("--suite chooses the points and the output itself: not with --split, "
		    "--sweep-split, --sweep-contention, --json or --plot (--results DIR)%s%s", "",
		    "");
	if (!opt.suite && (opt.results || opt.ref_ns[0] || opt.ref_ns[1] || opt.ref_ns[2]))
		bad("--results and --ref-*-ns go with --suite%s%s", "", "");
	if (strcmp(opt.provider, "shm") && strcmp(opt.provider, "verbs"))
		bad("--provider '%s': shm or verbs%s", opt.provider, "");
	if (strcmp(opt.vol_kind, "memory") && strcmp(opt.vol_kind, "file"))
		bad("--volumes '%s': memory or file%s", opt.vol_kind, "");
	if (opt.grain_size & (opt.grain_size - 1))
		bad("--grain-size: a power of 2%s%s", "", "");
	if (opt.io_size % 512)
		bad("--io-size: a multiple of 512%s%s", "", "");
	if (opt.volume_size % opt.io_size || opt.volume_size % opt.grain_size ||
	    opt.volume_size < opt.io_size)
		bad("--volume-size: a multiple of --io-size and --grain-size%s%s", "", "");
	if (opt.volume_size / opt.grain_size > (1ull << 45))
		bad("--volume-size / --grain-size: at most 2^45 grains%s%s", "", "");
	if (opt.hot == 1 || opt.hot > opt.clients)
		bad("--hot K: 2 <= K <= --clients (K clients on one grain)%s%s", "", "");
	if (opt.hot && opt.hot == opt.clients && opt.threads == 1)
		fprintf(stderr, "flashmeta-bench: note: --hot takes every engine thread: no "
				"other workload runs\n");
	if (!strcmp(opt.provider, "shm")) {
		if (!opt.addr[0])
			snprintf(opt.addr, sizeof(opt.addr), "shm:/flashmeta-bench-%d",
				 (int)getpid());
		snprintf(opt.floor_addr, sizeof(opt.floor_addr), "%.100s-floor", opt.addr);
	} else {
		char *colon = strrchr(opt.addr, ':');
		unsigned port;

		if (!opt.addr[0] || !colon)
			bad("verbs needs --addr IP:PORT%s%s", "", "");
		port = (unsigned)num("--addr port", colon + 1, 1, 65534, false);
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
