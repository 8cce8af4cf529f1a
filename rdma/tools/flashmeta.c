/* flashmeta.c -- the command line: join, show, lock/unlock, split, admin
 * (and admin --watch: watch.c). */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <stdarg.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "flashmeta/agent.h"
#include "flashmeta/ctl.h"
#include "flashmeta/ctl_json.h"
#include "flashmeta/error.h"
#include "flashmeta/input.h"
#include "flashmeta/wire.h"
#include "watch.h"

/* the owner's answer to one admin command: status lists every mapping */
#define ADMIN_ANSWER_MAX (1024 * 1024)

static volatile sig_atomic_t g_stop;

static void on_sigint(int sig)
{
	(void)sig;
	g_stop = 1;
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: flashmeta [options] COMMAND [ARGS]     (options before COMMAND)\n"
		"\n"
		"Commands (client side: a session with the owner, as client --id):\n"
		"  join                 connect, print the session and the mappings\n"
		"  show MAP             geometry, generation, split count (one-sided READ of\n"
		"                       the owner's bitmap), cached confirmation ranges\n"
		"  lock MAP GRAIN       take a grain lock and hold the session (Ctrl-C or\n"
		"                       --hold); prints what the session holds, after locking\n"
		"                       and before unlocking: \"held map M first G last G\n"
		"                       word-index W since-ms T held-ms D token 0x.. epoch E\n"
		"                       count N\" (T: CLOCK_MONOTONIC ms, when it was taken)\n"
		"  unlock MAP GRAIN     take and give back (a lock dies with its session)\n"
		"  split MAP GRAIN      lock -> commit split (durable on the owner) -> unlock\n"
		"Admin (the owner's control socket, --control):\n"
		"  admin CMD [ARGS]     status | maps | sessions | map-create ID SRC TGT SIZE\n"
		"                       [GRAIN] [autodelete] | map-show ID | lock-show MAP\n"
		"                       GRAIN | map-prepare ID | map-start ID | map-restart ID\n"
		"                       | map-stop ID | map-restore ID (the source made\n"
		"                       equal to the target's image, copying only split\n"
		"                       grains back; source and target swap) |\n"
		"                       map-refresh ID (a new image of the source,\n"
		"                       recopying only grains written since the last\n"
		"                       trigger; copying or idle_or_copied; refused for\n"
		"                       a restored mapping, a group member: EBUSY) |\n"
		"                       map-rate\n"
		"                       ID RATE (background copy\n"
		"                       rate 0..150; map-show: split-pct, rate, eta-s,\n"
		"                       copiers, changed, changed-unknown) | map-delete\n"
		"                       ID [force] (force: a mapping\n"
		"                       not idle_or_copied or stopped; its target is then no\n"
		"                       point-in-time image) | map-autodelete ID on|off\n"
		"                       (delete when the copy completes) | group-create G\n"
		"                       MAP... | group-add G MAP... | group-remove G MAP...\n"
		"                       | group-show [G] | group-prepare G | group-start G\n"
		"                       (one trigger for every member) | group-stop G |\n"
		"                       group-delete G\n"
		"                       (one line, <= %d bytes)\n"
		"  --watch[=SECONDS] admin status | maps | map-show ID (options first):\n"
		"                       ask again every SECONDS (1..%u, default 1) and\n"
		"                       draw each mapping's copy: a bar of grains split /\n"
		"                       total, percent, rate and bytes/s, the speed seen\n"
		"                       since the last update, ETA, copiers, state.  On a\n"
		"                       terminal it redraws in place; otherwise one line\n"
		"                       per mapping and update, \"progress update N\n"
		"                       elapsed-ms T map ID state S split N grains N\n"
		"                       split-pct P grain B rate R rate-bytes-per-s N\n"
		"                       eta-s S copiers N [split-bytes-per-s N]\", then\n"
		"                       \"end reason R [map ID] updates N\"; with --json\n"
		"                       one object per update.  Ends on Ctrl-C (reason\n"
		"                       interrupted), or for map-show when the mapping is\n"
		"                       idle_or_copied, stopped or deleted (the reason),\n"
		"                       exit 0; when the owner is gone or refuses, exit 1\n"
		"\n"
		"Options:\n"
		"  -t, --transport P    shm | verbs (default shm, or FM_PROVIDER)\n"
		"  -a, --addr A         owner address: IP:PORT or shm:/NAME (or FM_ADDR)\n"
		"  -i, --id N           client id, 1..65535 (default 1)\n"
		"  -k, --key-file PATH  shared key, a regular file (or FM_KEY_FILE)\n"
		"  -C, --control PATH   owner's control socket (admin)\n"
		"  -H, --hold SECONDS   lock: hold this long instead of until Ctrl-C\n"
		"  -w, --watch[=SECONDS] see admin above (1..%u s, default 1)\n"
		"      --json           JSON on stdout (messages stay on stderr):\n"
		"                       admin: the owner's answer as one object, {\"records\":\n"
		"                       [...], \"ok\": true|false[, \"error\", \"message\"]};\n"
		"                       the other commands: one object per result as it\n"
		"                       happens, {\"record\": \"held\", \"map\": 1, ...}, then\n"
		"                       {\"ok\": true} or {\"ok\": false, \"error\", \"message\"};\n"
		"                       --watch: {\"records\": [{\"record\": \"watch\", \"update\":\n"
		"                       N, ...}, {\"record\": \"progress\", ...}], \"ok\": true}\n"
		"                       per update, the end as {\"records\": [{\"record\":\n"
		"                       \"end\", \"reason\": R, ...}], \"ok\": true}\n"
		"  -h, --help\n"
		"\n"
		"Numbers (N, MAP, GRAIN, SECONDS, admin arguments) are decimal digits only.\n"
		"Exit status: 0 done; 1 the command failed (or the owner said error; with\n"
		"--json its error object was printed); 2 bad command line (nothing on stdout).\n",
		FM_CTL_LINE_MAX, WATCH_INTERVAL_MAX, WATCH_INTERVAL_MAX);
}

/* --json: stdout carries only JSON objects, one per line */
static bool g_json;

/* one result line, "NAME K V K V ..." (the owner's record form,
 * flashmeta/ctl_json.h): printed as it is, or with --json as one JSON
 * object.  (Results people read in other words print those instead,
 * unless --json.) */
static void result(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void result(const char *fmt, ...)
{
	char line[512], *j = NULL;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (!g_json)
		puts(line);
	else if (fm_ctl_json_line(line, &j) == 0)
		puts(j);
	else
		fprintf(stderr, "flashmeta: %s\n", fm_errormsg());
	free(j);
}

/* the end of a command: rc < 0 is printed on stderr (`what`: the command)
 * and, with --json, as the last object; so is success.  Returns the exit
 * status. */
static int finish(const char *what, int rc)
{
	const char *name = rc < 0 && strerrorname_np(-rc) ? strerrorname_np(-rc) : "EIO";

	if (rc < 0)
		fprintf(stderr, "flashmeta %s: %s\n", what, fm_errormsg());
	if (g_json && rc < 0)
		result("error %s: %s", name, fm_errormsg());
	else if (g_json)
		result("ok");
	fflush(stdout);
	return rc < 0 ? 1 : 0;
}

/* admin --watch: status | maps | map-show ID only; bad ones exit 2 */
static int admin_watch(const char *path, unsigned interval_s, int argc, char **argv)
{
	struct watch_cfg wc = { .control = path, .interval_s = interval_s, .json = g_json };

	if (!path) {
		fprintf(stderr, "flashmeta admin: --control PATH required\n");
		return 2;
	}
	if (argc == 1 && (!strcmp(argv[0], "status") || !strcmp(argv[0], "maps")))
		return watch_run(&wc);
	if (argc == 2 && !strcmp(argv[0], "map-show")) {
		if (fm_u64_parse("map id", argv[1], 0, UINT64_MAX, &wc.map_id)) {
			fprintf(stderr, "flashmeta --watch: %s\n", fm_errormsg());
			return 2;
		}
		wc.one_map = true;
		return watch_run(&wc);
	}
	fprintf(stderr, "flashmeta --watch: only admin status, maps or map-show ID\n");
	return 2;
}

static int admin(const char *path, int argc, char **argv)
{
	char line[FM_CTL_LINE_MAX + 1], *out;
	size_t used = 0;
	int rc;

	if (!path) {
		fprintf(stderr, "flashmeta admin: --control PATH required\n");
		return 2;
	}
	if (argc == 0) {
		fprintf(stderr, "flashmeta admin: COMMAND required (see --help)\n");
		return 2;
	}
	/* one line of the words, refused whole rather than cut: a cut
	 * "map-start 12" would be another command */
	if (g_json)
		used = (size_t)snprintf(line, sizeof(line), "json ");
	for (int i = 0; i < argc; i++) {
		int n = snprintf(line + used, sizeof(line) - used, "%s%s", argv[i],
				 i + 1 < argc ? " " : "\n");

		if (n < 0 || (size_t)n >= sizeof(line) - used) {
			fprintf(stderr, "flashmeta admin: command longer than %d bytes\n",
				FM_CTL_LINE_MAX);
			return 2;
		}
		if (strpbrk(argv[i], "\n\r")) {
			fprintf(stderr, "flashmeta admin: a line break inside argument %d\n",
				i + 1);
			return 2;
		}
		used += (size_t)n;
	}
	out = malloc(ADMIN_ANSWER_MAX);
	if (!out) {
		fprintf(stderr, "flashmeta admin: out of memory\n");
		return 1;
	}
	rc = fm_ownerd_ctl(path, line, out, ADMIN_ANSWER_MAX, 60000);
	if (g_json && (rc == 0 || rc == -EREMOTEIO) && out[0] == '{') {
		/* the owner's JSON line; its "ok"/"error" line after it is
		 * only the framing (the object has the error) */
		char *nl = strchr(out, '\n');

		printf("%.*s\n", nl ? (int)(nl - out) : (int)strlen(out), out);
	} else if (rc == 0 || rc == -EREMOTEIO) {
		fputs(out, rc ? stderr : stdout);
	}
	if (rc && rc != -EREMOTEIO) {
		/* no answer: the owner's object, made here */
		char *j = NULL;

		fprintf(stderr, "flashmeta admin: %s\n", fm_errormsg());
		snprintf(out, ADMIN_ANSWER_MAX, "error %s: %s\n",
			 strerrorname_np(-rc) ? strerrorname_np(-rc) : "EIO", fm_errormsg());
		if (g_json && fm_ctl_json(out, &j) == 0)
			puts(j);
		free(j);
	}
	free(out);
	return rc ? 1 : 0;
}

/* a number argument; prints why not and returns -1 */
static int arg_u64(const char *what, const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
	if (fm_u64_parse(what, s, min, max, out) == 0)
		return 0;
	fprintf(stderr, "flashmeta: %s\n", fm_errormsg());
	return -1;
}

static void print_map(const struct fm_agent_map *m)
{
	if (g_json)
		result("map %" PRIu64 " state %s generation %" PRIu64 " grain %u grains %" PRIu64
		       " granted %d", m->map_id, fm_map_state_name(m->state), m->generation,
		       1u << m->grain_shift, m->grain_count, m->granted ? 1 : 0);
	else
		printf("map %" PRIu64 ": %s, generation %" PRIu64 ", %" PRIu64
		       " grains of %u bytes%s\n", m->map_id, fm_map_state_name(m->state),
		       m->generation, m->grain_count, 1u << m->grain_shift,
		       m->granted ? ", granted" : "");
}

/* what this agent holds now: one record line per lock word ("held KEY
 * VALUE ..."), since-ms in CLOCK_MONOTONIC ms (the owner's clock too, on
 * one host), held-ms how long ago that was */
static void print_held(struct fm_agent *a)
{
	struct fm_agent_held h[16];
	int n = fm_agent_locks(a, h, 16);
	uint64_t now;
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	now = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
	for (int i = 0; i < n && i < 16; i++)
		result("held map %" PRIu64 " first %" PRIu64 " last %" PRIu64 " word-index %"
		       PRIu64 " since-ms %" PRIu64 " held-ms %" PRIu64 " token 0x%016" PRIx64
		       " epoch %u count %u", h[i].map_id, h[i].first, h[i].last,
		       h[i].word_index, h[i].since_ms,
		       now > h[i].since_ms ? now - h[i].since_ms : 0, h[i].token, h[i].epoch,
		       h[i].count);
	if (n > 16)
		result("held-not-shown %d", n - 16);
	fflush(stdout);
}

static int cmd_show(struct fm_agent *a, uint64_t id)
{
	struct fm_agent_map m;
	struct fm_cache_stats cs;
	uint64_t split = 0, bytes, ranges = 0;
	uint8_t *bm;

	if (fm_agent_map_get(a, id, &m))
		return fm_err(-ENOENT, "map %" PRIu64 " unknown to this session", id);
	print_map(&m);
	bytes = ((m.grain_count + 63) / 64) * 8;
	bm = calloc(1, bytes);
	if (!bm)
		return fm_err(-ENOMEM, "show: a bitmap of %" PRIu64 " bytes", bytes);
	/* one-sided READs of the published bitmap, 32 KiB at a time */
	for (uint64_t off = 0; off < bytes; off += 32768) {
		size_t n = bytes - off < 32768 ? (size_t)(bytes - off) : 32768;
		int rc = fm_agent_read_bitmap(a, id, off, bm + off, n);

		if (rc) {
			free(bm);
			return rc;
		}
	}
	for (uint64_t g = 0; g < m.grain_count; g++)
		split += bm[g / 8] >> (g % 8) & 1;
	free(bm);
	if (g_json)
		result("bitmap map %" PRIu64 " split %" PRIu64 " grains %" PRIu64, id, split,
		       m.grain_count);
	else
		printf("  split %" PRIu64 " of %" PRIu64 " grains (bitmap READ)\n"
		       "  cached confirmations:", split, m.grain_count);
	for (uint64_t g = 0; g < m.grain_count;) {
		uint64_t run = 0;

		if (fm_cache_lookup(fm_agent_cache(a), id, g, &run) && run) {
			if (g_json)
				result("cached map %" PRIu64 " first %" PRIu64 " last %" PRIu64, id,
				       g, g + run - 1);
			else
				printf(" [%" PRIu64 "-%" PRIu64 "]", g, g + run - 1);
			ranges++;
			g += run;
		} else {
			g++;
		}
	}
	if (!g_json)
		printf("%s\n", ranges ? "" : " none");
	fm_cache_stats(fm_agent_cache(a), &cs);
	if (g_json)
		result("cache ranges %" PRIu64 " bytes %" PRIu64 " hits %" PRIu64
		       " lookups %" PRIu64, cs.ranges, cs.bytes, cs.hits, cs.lookups);
	else
		printf("  cache: %" PRIu64 " ranges, %" PRIu64 " bytes, %" PRIu64 " hits / %" PRIu64
		       " lookups\n", cs.ranges, cs.bytes, cs.hits, cs.lookups);
	return 0;
}

static void cmd_join(struct fm_agent *a, const char *addr, uint32_t id, const char *provider)
{
	struct fm_agent_map m[64];
	struct fm_agent_stats st;
	int n = fm_agent_maps(a, m, 64);

	fm_agent_stats(a, &st);
	if (g_json) {
		result("joined addr %s client %u transport %s mappings %d", addr, id, provider, n);
		result("session token 0x%016" PRIx64 " lease-ms %u lease-left-ms %" PRIu64,
		       st.token, st.lease_term_ms, st.lease_left_ms);
	} else {
		printf("joined %s as client %u (%s), %d mapping(s)\n", addr, id, provider, n);
		printf("session token 0x%016" PRIx64 ", lease %u ms, %" PRIu64 " ms left\n",
		       st.token, st.lease_term_ms, st.lease_left_ms);
	}
	for (int i = 0; i < n && i < 64; i++)
		print_map(&m[i]);
}

/* lock (hold until Ctrl-C or --hold, then unlock) or unlock (take and give
 * back at once) */
static int cmd_lock(struct fm_agent *a, uint64_t map, uint64_t grain, bool hold_it, bool hold,
		    uint64_t hold_s)
{
	int rc = fm_agent_lock(a, map, grain);

	if (rc < 0)
		return rc;
	/* Ctrl-C is ours once "locked" is printed: it unlocks */
	if (hold_it) {
		signal(SIGINT, on_sigint);
		signal(SIGTERM, on_sigint);
	}
	if (g_json)
		result("locked map %" PRIu64 " grain %" PRIu64 " already-split %d", map, grain,
		       rc == 1);
	else
		printf("locked map %" PRIu64 " grain %" PRIu64 "%s\n", map, grain,
		       rc == 1 ? " (already split)" : "");
	fflush(stdout);
	if (hold_it) {
		print_held(a);
		for (uint64_t t = 0; !g_stop && (!hold || t < hold_s * 10); t++)
			usleep(100000);
		print_held(a); /* how long it was held */
	}
	rc = fm_agent_unlock(a, map, grain);
	if (rc)
		return rc;
	if (g_json)
		result("unlocked map %" PRIu64 " grain %" PRIu64, map, grain);
	else
		printf("unlocked\n");
	return 0;
}

/* lock -> commit split (durable on the owner) -> unlock */
static int cmd_split(struct fm_agent *a, uint64_t map, uint64_t grain)
{
	int rc = fm_agent_lock(a, map, grain);

	if (rc == 1) {
		rc = fm_agent_unlock(a, map, grain);
		if (rc)
			return rc;
		if (g_json)
			result("split map %" PRIu64 " grain %" PRIu64 " already-split 1", map,
			       grain);
		else
			printf("map %" PRIu64 " grain %" PRIu64 " already split\n", map, grain);
		return 0;
	}
	if (rc < 0)
		return rc;
	rc = fm_agent_commit_split(a, map, grain);
	if (rc)
		return rc;
	if (g_json)
		result("split map %" PRIu64 " grain %" PRIu64 " already-split 0", map, grain);
	else
		printf("map %" PRIu64 " grain %" PRIu64 " split (durable)\n", map, grain);
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "transport", required_argument, NULL, 't' },
		{ "provider", required_argument, NULL, 't' },
		{ "addr", required_argument, NULL, 'a' },
		{ "id", required_argument, NULL, 'i' },
		{ "key-file", required_argument, NULL, 'k' },
		{ "control", required_argument, NULL, 'C' },
		{ "hold", required_argument, NULL, 'H' },
		{ "json", no_argument, NULL, 'j' },
		{ "watch", optional_argument, NULL, 'w' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	const char *provider = getenv("FM_PROVIDER"), *addr = getenv("FM_ADDR");
	const char *keyfile = getenv("FM_KEY_FILE"), *control = NULL, *cmd;
	struct fm_agent_cfg cfg = { 0 };
	struct fm_agent *a = NULL;
	uint8_t key[FM_KEY_MAX];
	uint32_t id = 1;
	int c, rc = 0, klen, nargs;
	uint64_t map = 0, grain = 0, hold_s = 0, v;
	unsigned watch_s = 0; /* 0: no --watch */
	bool hold = false;

	/* '+': options end at COMMAND, so "admin map-show -5" reaches the owner */
	while ((c = getopt_long(argc, argv, "+t:a:i:k:C:H:w::h", opts, NULL)) != -1) {
		switch (c) {
		case 't': provider = optarg; break;
		case 'a': addr = optarg; break;
		case 'i':
			if (arg_u64("--id", optarg, 1, FM_WIRE_CLIENT_ID_MAX, &v))
				return 2;
			id = (uint32_t)v;
			break;
		case 'k': keyfile = optarg; break;
		case 'C': control = optarg; break;
		case 'H':
			if (arg_u64("--hold", optarg, 0, UINT32_MAX, &hold_s))
				return 2;
			hold = true;
			break;
		case 'j': g_json = true; break;
		case 'w':
			/* --watch=S (-wS): an optional argument is only ever
			 * attached; "--watch 5" leaves 5 to be the COMMAND */
			if (!optarg) {
				watch_s = 1;
				break;
			}
			if (arg_u64("--watch", optarg, 1, WATCH_INTERVAL_MAX, &v))
				return 2;
			watch_s = (unsigned)v;
			break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind >= argc) {
		usage(stderr);
		return 2;
	}
	cmd = argv[optind++];
	if (watch_s && strcmp(cmd, "admin")) {
		fprintf(stderr, "flashmeta --watch: only admin status, maps or map-show ID\n");
		return 2;
	}
	if (!strcmp(cmd, "admin") && watch_s)
		return admin_watch(control, watch_s, argc - optind, argv + optind);
	if (!strcmp(cmd, "admin"))
		return admin(control, argc - optind, argv + optind);
	if (!strcmp(cmd, "join")) {
		nargs = 0;
	} else if (!strcmp(cmd, "show")) {
		nargs = 1;
	} else if (!strcmp(cmd, "lock") || !strcmp(cmd, "unlock") || !strcmp(cmd, "split")) {
		nargs = 2;
	} else {
		fprintf(stderr, "flashmeta: unknown command '%s' (see --help)\n", cmd);
		return 2;
	}
	if (argc - optind != nargs) {
		fprintf(stderr, "flashmeta %s: %s\n", cmd,
			nargs == 0 ? "takes no argument" :
			nargs == 1 ? "MAP required (and nothing else)" :
				     "MAP GRAIN required (and nothing else)");
		return 2;
	}
	if ((nargs >= 1 && arg_u64("MAP", argv[optind], 0, UINT64_MAX, &map)) ||
	    (nargs >= 2 && arg_u64("GRAIN", argv[optind + 1], 0, UINT64_MAX, &grain)))
		return 2;
	if (!addr || !keyfile) {
		fprintf(stderr, "flashmeta: --addr and --key-file are required\n");
		return 2;
	}
	klen = fm_key_file_read(keyfile, key, sizeof(key));
	if (klen < 0)
		return finish(cmd, klen);
	cfg = (struct fm_agent_cfg){ .provider = provider, .addr = addr, .client_id = id,
				     .key = key, .key_len = (size_t)klen };
	rc = fm_agent_new(&a, &cfg);
	rc = rc ?: fm_agent_wait_active(a, 5000);
	if (rc) {
		rc = finish(cmd, rc);
		fm_agent_delete(&a);
		return rc;
	}
	usleep(20000); /* MAP_GRANTs right after WELCOME */
	if (!strcmp(cmd, "join"))
		cmd_join(a, addr, id, provider ? provider : "shm");
	else if (!strcmp(cmd, "show"))
		rc = cmd_show(a, map);
	else if (!strcmp(cmd, "lock") || !strcmp(cmd, "unlock"))
		rc = cmd_lock(a, map, grain, !strcmp(cmd, "lock"), hold, hold_s);
	else
		rc = cmd_split(a, map, grain);
	rc = finish(cmd, rc);
	fm_agent_delete(&a);
	return rc;
}
