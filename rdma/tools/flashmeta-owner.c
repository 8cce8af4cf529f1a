/* flashmeta-owner.c -- the owner daemon: config file + flags -> fm_ownerd. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "flashmeta/error.h"
#include "flashmeta/ownerd.h"

static struct fm_ownerd *g_d;

static void on_signal(int sig)
{
	(void)sig;
	if (g_d)
		fm_ownerd_stop(g_d);
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: flashmeta-owner [--config FILE] [options]\n"
		"\n"
		"Serves FlashCopy metadata to clients over RDMA (verbs) or shared memory (shm).\n"
		"Flags override the config file (same keys, 'key = value' lines); each flag\n"
		"at most once, each key at most once per file.\n"
		"\n"
		"  -c, --config FILE     config file, a regular file of at most 64 KiB\n"
		"                        (e.g. deploy/systemd/owner.conf.example)\n"
		"  -l, --listen ADDR     IP:PORT (verbs) or shm:/NAME (shm)       [listen]\n"
		"  -t, --transport NAME  verbs | shm (default shm)                [transport]\n"
		"  -d, --device NAME     RDMA device (default: first)             [device]\n"
		"  -p, --pmem PATH       pool file; created when absent           [pmem]\n"
		"  -C, --control PATH    admin unix socket, at most 107 bytes;    [control]\n"
		"                        only a stale socket there is replaced\n"
		"      --control-idle-ms MS  close idle control connections   [control_idle_ms]\n"
		"                            after MS, 100..86400000 (60000)\n"
		"  -k, --key-file PATH   shared client key (1..64 bytes), a regular file\n"
		"                                                                 [key_file]\n"
		"  -L, --lease-ms MS     client lease term, 10..600000 (3000)     [lease_ms]\n"
		"      --transition-timeout-ms MS                   [transition_timeout_ms]\n"
		"                        a map-* command fails ETIMEDOUT when clients have\n"
		"                        not released the mapping after MS, nothing changed;\n"
		"                        100..3600000 (30000)\n"
		"  -i, --clients N[-M]   allowed client ids in 1..65535 (1-64)    [clients]\n"
		"      --shm-uids U[,U]  uids that may connect over shm, at most [shm_uids]\n"
		"                        8 (default: ours); shm is one trust domain\n"
		"      --pool-max-maps N     pool slots at creation, 1..1024 (64) [pool_max_maps]\n"
		"      --pool-max-grains N   grains per mapping at creation,    [pool_max_grains]\n"
		"                            1..2^45 (1048576)\n"
		"      --fence-table PATH    storage fence table the volumes   [fence_table]\n"
		"                            check; created when absent (none)\n"
		"  -v, --log-level LVL   err | warn | info | debug (default info) [log_level]\n"
		"  -h, --help\n"
		"\n"
		"Numbers are decimal digits only: no sign, no 0x.  A flag's value is taken as\n"
		"it is; in a file, '#' at a line's start or after a blank starts a comment.\n"
		"\n"
		"Control commands (flashmeta admin ...): status, maps, sessions,\n"
		"lock-show MAP GRAIN, map-create ID SRC TGT SIZE [GRAIN] [autodelete],\n"
		"map-show ID, map-prepare ID, map-start ID, map-restart ID, map-stop ID,\n"
		"map-restore ID (copying or idle_or_copied after a trigger: the source\n"
		"becomes the target's image; format 1.3 pool, one free slot, no group),\n"
		"map-refresh ID (copying or idle_or_copied after a trigger: a new image of\n"
		"the source, recopying only the grains clients reported written since the\n"
		"last trigger; all of them when a writer's report may be missing; format\n"
		"1.4 pool; refused for a restored mapping and a group member (EBUSY)),\n"
		"map-rate ID RATE (background copy, 0..150), map-delete ID [force] (force:\n"
		"not idle_or_copied or stopped; the target is then no point-in-time image),\n"
		"map-autodelete ID on|off (delete when the copy completes; kept in a pool of\n"
		"format 1.2), group-create G MAP..., group-add G MAP..., group-remove G\n"
		"MAP..., group-show [G], group-prepare G, group-start G (one trigger for\n"
		"every member), group-stop G, group-delete G (consistency groups: at most\n"
		"32 members; map-prepare/start/restart/stop of a member are refused), quit;\n"
		"\"json CMD\" answers as one JSON object.\n"
		"Limits: 256 mappings per source volume, one per target, no cascades.\n"
		"SIGTERM/SIGINT: clean shutdown.\n"
		"Log: one line per event on stderr, \"flashmeta-owner[PID] TIME LEVEL: ...\"\n"
		"(TIME in ISO 8601 UTC, e.g. 2026-11-29T01:23:45.678Z); when stderr is the\n"
		"systemd journal (JOURNAL_STREAM), \"<N>LEVEL: ...\" with the syslog priority.\n"
		"Exit status: 0 stopped cleanly; 1 could not start (e.g. the pool or the control\n"
		"socket in use by another owner) or failed while running; 2 bad flags or config.\n");
}

static const struct option opts[] = {
	{ "config", required_argument, NULL, 'c' },
	{ "listen", required_argument, NULL, 'l' },
	{ "transport", required_argument, NULL, 't' },
	{ "provider", required_argument, NULL, 't' },
	{ "device", required_argument, NULL, 'd' },
	{ "pmem", required_argument, NULL, 'p' },
	{ "control", required_argument, NULL, 'C' },
	{ "key-file", required_argument, NULL, 'k' },
	{ "lease-ms", required_argument, NULL, 'L' },
	{ "clients", required_argument, NULL, 'i' },
	{ "pool-max-maps", required_argument, NULL, 1 },
	{ "pool-max-grains", required_argument, NULL, 2 },
	{ "control-idle-ms", required_argument, NULL, 3 },
	{ "shm-uids", required_argument, NULL, 4 },
	{ "fence-table", required_argument, NULL, 5 },
	{ "transition-timeout-ms", required_argument, NULL, 6 },
	{ "log-level", required_argument, NULL, 'v' },
	{ "help", no_argument, NULL, 'h' },
	{ 0 },
};

/* one error line on stderr, "flashmeta-owner: ...", with the syslog
 * priority "<3>" in front when stderr is the journal (as the log's lines) */
static void complain(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void complain(const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	fprintf(stderr, "%sflashmeta-owner: %s\n", fm_ownerd_log_is_journal() ? "<3>" : "", msg);
}

/* "--pmem" for 'p': the long name of a flag, for messages */
static const char *flag_name(int c)
{
	static char buf[32];

	for (const struct option *o = opts; o->name; o++)
		if (o->val == c) {
			snprintf(buf, sizeof(buf), "--%s", o->name);
			return buf;
		}
	return "?";
}

int main(int argc, char **argv)
{
	/* the config key of each flag */
	static const char *const key[128] = {
		['l'] = "listen", ['t'] = "transport", ['d'] = "device", ['p'] = "pmem",
		['C'] = "control", ['k'] = "key_file", ['L'] = "lease_ms",
		['i'] = "clients", [1] = "pool_max_maps", [2] = "pool_max_grains",
		['v'] = "log_level", [3] = "control_idle_ms", [4] = "shm_uids", [5] = "fence_table",
		[6] = "transition_timeout_ms",
	};
	struct fm_ownerd_cfg cfg = { .log_level = FM_LOGLVL_INFO };
	struct sigaction sa = { .sa_handler = on_signal };
	const char *sopts = "+c:l:t:d:p:C:k:L:i:v:h";
	unsigned char given[128] = { 0 };
	int c, li, rc = 0;

	/* pass 1: the config file, so that flags override it; each flag once */
	while ((c = getopt_long(argc, argv, sopts, opts, &li)) != -1) {
		if (c == 'h') {
			usage(stdout);
			goto out;
		}
		if (c == '?' || c < 0 || c >= 128) {
			usage(stderr);
			rc = 2;
			goto out;
		}
		if (given[c]++) {
			complain("%s given twice", flag_name(c));
			rc = 2;
			goto out;
		}
		if (c == 'c' && fm_ownerd_cfg_load(&cfg, optarg)) {
			complain("%s", fm_errormsg());
			rc = 2;
			goto out;
		}
	}
	if (optind < argc) {
		complain("unexpected argument '%s'", argv[optind]);
		rc = 2;
		goto out;
	}
	/* pass 2: the flags, taken as they are (no '#' comment, no trimming) */
	optind = 1;
	while ((c = getopt_long(argc, argv, sopts, opts, &li)) != -1) {
		if (c == 'c' || c < 0 || c >= 128 || !key[c])
			continue;
		if (fm_ownerd_cfg_set(&cfg, key[c], optarg)) {
			complain("%s: %s", flag_name(c), fm_errormsg());
			rc = 2;
			goto out;
		}
	}
	if (!cfg.listen || !cfg.pmem_path || !cfg.key_len) {
		complain("listen, pmem and key_file are required "
				"(see --help)");
		rc = 2;
		goto out;
	}
	rc = fm_ownerd_new(&g_d, &cfg);
	if (rc) {
		complain("%s (%s)", fm_errormsg(), strerror(-rc));
		rc = 1;
		goto out;
	}
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	rc = fm_ownerd_run(g_d);
	if (rc)
		complain("%s", fm_errormsg());
	fm_ownerd_delete(&g_d);
	rc = rc ? 1 : 0;
out:
	fm_ownerd_cfg_fini(&cfg);
	return rc;
}
