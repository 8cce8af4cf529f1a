/* demo_opts.c -- flashmeta-demo: the command line (every option, its
 * range and the usage text) and where the owner daemon is. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "demo.h"
#include "flashmeta/error.h"
#include "flashmeta/input.h"

static void usage(FILE *f)
{
	fprintf(f,
		"usage: flashmeta-demo [options]\n"
		"\n"
		"The main job: one FlashCopy mapping under load on this host, every part\n"
		"real -- the owner daemon (flashmeta-owner), client processes with agents\n"
		"and I/O engines over verbs when this host has an RDMA device with an IPv4\n"
		"address, else over shm, source and target volumes as files with a fence\n"
		"table.  Phase 1 writes the source (mapping idle); the trigger\n"
		"(map-prepare, map-start) saves the source as golden.img; phase 2 runs random\n"
		"reads and writes of 4 KiB..256 KiB on both volumes from every thread (target\n"
		"writes only in the writer's own 256 KiB stripes, each logged); target reads\n"
		"are checked in line.  A last client then reads the whole target through the\n"
		"engine and compares it with golden.img + the logged writes.\n"
		"\n"
		"The report (text, and JSON with --json): I/O rates and latencies by how the\n"
		"engine served each I/O; the owner's and the clients' CPU time over phase 2,\n"
		"also per 10^6 I/O decisions (cache hits + bitmap READs + grain locks); each\n"
		"client's confirmation cache (ranges, bytes, hit ratio); the transport (shm,\n"
		"and whether this host has an RDMA device) and the pool's persistence as the\n"
		"owner reports it (msync: a file, not on DAX; pmem: DAX).\n"
		"\n"
		"  --clients N     client processes, 1..%u (default 2; the verifier is one more)\n"
		"  --threads N     engine threads per client, 1..%u (default 2)\n"
		"  --depth N       I/Os in flight on the last thread of each client, which\n"
		"                  uses the polled form (fm_engine_submit/poll) when there\n"
		"                  are 2 or more threads; 0..%u, 0 = all synchronous (default 4)\n"
		"  --seconds N     length of phase 2, 1..%u (default 10)\n"
		"  --size SIZE     volume size, K/M/G suffixes (powers of 1024), a multiple of\n"
		"                  4 KiB in [1M, 4G] (default 64M); the run dir needs 4x SIZE\n"
		"  --grain SIZE    grain, a power of two in [4K, 1G], at most SIZE, and SIZE\n"
		"                  at most %u grains (default 64K)\n"
		"  --seed N        random seed (default: from the clock; printed)\n"
		"  --dir DIR       run directory (made if missing; must not hold files of an\n"
		"                  earlier run); default: a new /tmp/fm-demo-XXXXXX\n"
		"  --keep          keep the run directory (volumes, images, pool, owner.log)\n"
		"  --owner PATH    the owner daemon (default: flashmeta-owner next to this\n"
		"                  program)\n"
		"  --json FILE     also write the report's figures as JSON\n"
		"  --transport T   auto (default: verbs when an RDMA device has an IPv4\n"
		"                  address on its network device, else shm), shm, or verbs\n"
		"                  (an error when there is no such device)\n"
		"  --device DEV    verbs: this RDMA device (default: the first with an address)\n"
		"  --port N        verbs: the owner's port (default: 20000 + pid %% 20000)\n"
		"  --direct D      the volumes' I/O: auto (default: O_DIRECT where the file\n"
		"                  system allows it, else the page cache), on (O_DIRECT or\n"
		"                  fail), off (the page cache)\n"
		"  --help          this text\n"
		"\n"
		"Environment: FM_DEBUG=1 runs the owner with --log-level debug (its log is\n"
		"owner.log in the run directory; printed in part when the owner fails).\n"
		"\n"
		"Only what the run made is removed at the end.  The last line of the report is\n"
		"`invariant: OK (...)`, `invariant: VIOLATED (...)` or, when I/Os failed and\n"
		"the data state is unknown, `invariant: UNKNOWN (...)`.\n"
		"Exit status: 0 the invariant held and the run was clean (no I/O errors, every\n"
		"process exited 0, the owner stopped cleanly on SIGTERM); 1 otherwise; 2 bad\n"
		"usage.\n",
		DEMO_MAX_CLIENTS, DEMO_MAX_THREADS, DEMO_MAX_DEPTH, DEMO_MAX_SECONDS,
		DEMO_MAX_GRAINS);
}

/* digits with an optional K/M/G/T suffix (powers of 1024) */
static int parse_size(const char *what, const char *s, uint64_t *out)
{
	char digits[32];
	size_t n = strspn(s, "0123456789");
	unsigned shift = 0;
	uint64_t v;
	int rc;

	if (n == 0 || n >= sizeof(digits))
		return fm_err(-EINVAL, "%s: '%s' is not a size (digits and K, M, G or T)", what, s);
	if (s[n]) {
		const char *suf = s + n;

		switch (*suf) {
		case 'k': case 'K': shift = 10; break;
		case 'm': case 'M': shift = 20; break;
		case 'g': case 'G': shift = 30; break;
		case 't': case 'T': shift = 40; break;
		default:
			return fm_err(-EINVAL, "%s: '%s' is not a size (digits and K, M, G or T)",
				      what, s);
		}
		if (suf[1] && strcmp(suf + 1, "iB") && strcmp(suf + 1, "B"))
			return fm_err(-EINVAL, "%s: '%s' is not a size (digits and K, M, G or T)",
				      what, s);
	}
	memcpy(digits, s, n);
	digits[n] = 0;
	rc = fm_u64_parse(what, digits, 0, UINT64_MAX >> shift, &v);
	if (rc)
		return rc;
	*out = v << shift;
	return 0;
}

static int parse_uint(const char *what, const char *s, uint64_t min, uint64_t max,
		      unsigned *out)
{
	uint64_t v;
	int rc = fm_u64_parse(what, s, min, max, &v);

	if (!rc)
		*out = (unsigned)v;
	return rc;
}

int demo_opts_parse(int argc, char **argv, struct demo_cfg *cfg)
{
	static const struct option lopts[] = {
		{ "clients", required_argument, NULL, 'c' },
		{ "threads", required_argument, NULL, 't' },
		{ "depth", required_argument, NULL, 'q' },
		{ "seconds", required_argument, NULL, 's' },
		{ "size", required_argument, NULL, 'S' },
		{ "grain", required_argument, NULL, 'g' },
		{ "seed", required_argument, NULL, 'r' },
		{ "dir", required_argument, NULL, 'd' },
		{ "keep", no_argument, NULL, 'k' },
		{ "owner", required_argument, NULL, 'o' },
		{ "json", required_argument, NULL, 'j' },
		{ "transport", required_argument, NULL, 'T' },
		{ "device", required_argument, NULL, 'D' },
		{ "port", required_argument, NULL, 'P' },
		{ "direct", required_argument, NULL, 'O' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	bool seeded = false;
	uint64_t grains;
	int c, rc = 0;

	while ((c = getopt_long(argc, argv, "h", lopts, NULL)) != -1) {
		switch (c) {
		case 'c':
			rc = parse_uint("--clients", optarg, 1, DEMO_MAX_CLIENTS, &cfg->clients);
			break;
		case 't':
			rc = parse_uint("--threads", optarg, 1, DEMO_MAX_THREADS, &cfg->threads);
			break;
		case 'q':
			rc = parse_uint("--depth", optarg, 0, DEMO_MAX_DEPTH, &cfg->depth);
			break;
		case 's':
			rc = parse_uint("--seconds", optarg, 1, DEMO_MAX_SECONDS, &cfg->seconds);
			break;
		case 'S': rc = parse_size("--size", optarg, &cfg->size); break;
		case 'g': rc = parse_size("--grain", optarg, &cfg->grain); break;
		case 'r':
			rc = fm_u64_parse("--seed", optarg, 0, UINT64_MAX, &cfg->seed);
			seeded = true;
			break;
		case 'd': cfg->dir_opt = optarg; break;
		case 'k': cfg->keep = true; break;
		case 'o': cfg->owner_opt = optarg; break;
		case 'j': cfg->json_path = optarg; break;
		case 'T':
			if (!strcmp(optarg, "auto"))
				cfg->transport_opt = NULL;
			else if (!strcmp(optarg, "shm") || !strcmp(optarg, "verbs"))
				cfg->transport_opt = optarg;
			else
				rc = fm_err(-EINVAL, "--transport %s: auto, shm or verbs", optarg);
			break;
		case 'D': cfg->device_opt = optarg; break;
		case 'P': rc = parse_uint("--port", optarg, 1, 65535, &cfg->port); break;
		case 'O':
			if (!strcmp(optarg, "auto"))
				cfg->direct = FM_REFVOL_DIRECT_TRY;
			else if (!strcmp(optarg, "on"))
				cfg->direct = FM_REFVOL_DIRECT;
			else if (!strcmp(optarg, "off"))
				cfg->direct = FM_REFVOL_BUFFERED;
			else
				rc = fm_err(-EINVAL, "--direct %s: auto, on or off", optarg);
			break;
		case 'h': usage(stdout); return 1;
		default:
			fprintf(stderr, "(" DEMO_NAME " --help lists the options)\n");
			return -EINVAL;
		}
		if (rc) {
			fprintf(stderr, DEMO_NAME ": %s\n", fm_errormsg());
			return rc;
		}
	}
	if (optind < argc) {
		fprintf(stderr, DEMO_NAME ": unexpected argument '%s' (--help lists the "
			"options)\n", argv[optind]);
		return -EINVAL;
	}
	if (cfg->size < DEMO_MIN_SIZE || cfg->size > DEMO_MAX_SIZE || cfg->size % DEMO_ALIGN) {
		fprintf(stderr, DEMO_NAME ": --size %" PRIu64 ": a multiple of 4 KiB in "
			"[1 MiB, 4 GiB] is needed\n", cfg->size);
		return -EINVAL;
	}
	if (cfg->grain < 4096 || cfg->grain > (UINT64_C(1) << 30) ||
	    (cfg->grain & (cfg->grain - 1))) {
		fprintf(stderr, DEMO_NAME ": --grain %" PRIu64 ": a power of two in [4 KiB, "
			"1 GiB] is needed\n", cfg->grain);
		return -EINVAL;
	}
	if (cfg->grain > cfg->size) {
		fprintf(stderr, DEMO_NAME ": --grain %" PRIu64 " is larger than --size %" PRIu64
			"\n", cfg->grain, cfg->size);
		return -EINVAL;
	}
	grains = (cfg->size + cfg->grain - 1) / cfg->grain;
	if (grains > DEMO_MAX_GRAINS) {
		fprintf(stderr, DEMO_NAME ": --size %" PRIu64 " / --grain %" PRIu64 " = %" PRIu64
			" grains; the demo's owner pool holds at most %u per mapping (a larger "
			"grain, or a smaller size)\n", cfg->size, cfg->grain, grains,
			DEMO_MAX_GRAINS);
		return -EINVAL;
	}
	if (!seeded) {
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		cfg->seed = (uint64_t)ts.tv_nsec ^ (uint64_t)ts.tv_sec << 20 ^ (uint64_t)getpid();
	}
	return 0;
}

int demo_owner_path(struct demo_cfg *cfg)
{
	char self[PATH_MAX];
	ssize_t n;
	char *slash;

	if (cfg->owner_opt) {
		if (snprintf(cfg->owner, sizeof(cfg->owner), "%s", cfg->owner_opt) >=
		    (int)sizeof(cfg->owner))
			return fm_err(-ENAMETOOLONG, "--owner: path too long");
	} else {
		n = readlink("/proc/self/exe", self, sizeof(self) - 1);
		if (n < 0)
			return fm_err(-errno, "readlink /proc/self/exe: %s (name the owner with "
				      "--owner PATH)", strerror(errno));
		self[n] = 0;
		slash = strrchr(self, '/');
		*(slash ? slash + 1 : self) = 0;
		if (snprintf(cfg->owner, sizeof(cfg->owner), "%sflashmeta-owner", self) >=
		    (int)sizeof(cfg->owner))
			return fm_err(-ENAMETOOLONG, "owner path too long");
	}
	if (access(cfg->owner, X_OK))
		return fm_err(-ENOENT, "the owner daemon %s: %s (build the flashmeta-owner "
			      "target, or name it with --owner PATH)", cfg->owner,
			      strerror(errno));
	return 0;
}
