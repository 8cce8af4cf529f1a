/* svc_util.h -- helpers for the multi-process service tests: a temp dir,
 * the real flashmeta-owner binary as a child, its control socket, forked
 * client processes with pipe barriers, and the I/O path an engine runs
 * through fm_agent (copy-on-write through the plan). */
#ifndef FM_TESTS_SVC_UTIL_H
#define FM_TESTS_SVC_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "flashmeta/agent.h"

struct svc {
	char dir[256];
	char owner_bin[512];
	char provider[16];
	char addr[128];       /* shm:/... or IP:PORT */
	char ctl[300];
	char pool[300];
	char keyfile[300];
	char fence[300];      /* the owner's storage fence table */
	uint32_t lease_ms;
	const char *owner_extra[4]; /* more flashmeta-owner arguments (NULL-ended) */
	pid_t owner;
	int owner_bad;        /* owner exits that were not the signal we sent
			       * (e.g. 66: ThreadSanitizer halted it) */
};

/* Parse --owner PATH --provider P --addr A (or env FM_OWNER_BIN,
 * FM_PROVIDER, FM_ADDR), make a temp dir and a key file. */
void svc_init(struct svc *s, int argc, char **argv, const char *name);
/* stop the owner, remove the dir; non-zero if an owner ever died on its own */
int svc_fini(struct svc *s);
/* start flashmeta-owner, wait for its control socket */
void svc_owner_start(struct svc *s);
void svc_owner_kill(struct svc *s, int sig);
/* one control command; returns 0 for "ok"; output (may be NULL) gets the text */
int svc_ctl(struct svc *s, char *out, size_t cap, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
/* an agent for client `id` (key: the shared one unless key != NULL) */
struct fm_agent *svc_agent(struct svc *s, uint32_t id, const char *key);
/* ... deciding by message (fm_agent_cfg.decide_by_message) or not */
struct fm_agent *svc_agent_mode(struct svc *s, uint32_t id, const char *key, bool by_message);
/* an agent of *cfg (client_id and the rest set by the caller) with this
 * service's provider, address, key (NULL: the shared one) and timeouts */
struct fm_agent *svc_agent_cfg(struct svc *s, struct fm_agent_cfg *cfg, const char *key);
/* until agent a holds mapping `map` in a generation >= gen, granted: 0, or
 * -1 after 8 s */
int svc_wait_gen(struct fm_agent *a, uint64_t map, uint64_t gen);

/* the value of `key` in map-show's line of mapping `map`, as text: 0, or
 * -1 (the command failed, no such key) */
int svc_map_show(struct svc *s, uint64_t map, const char *key, char *val, size_t cap);
/* ... as a number; -1 when not there */
long svc_map_show_num(struct svc *s, uint64_t map, const char *key);

/* children */
struct child {
	pid_t pid;
	int to[2], from[2]; /* parent -> child, child -> parent */
};
typedef int (*child_fn)(struct svc *s, int idx, int rfd, int wfd, void *arg);
void child_start(struct svc *s, struct child *c, int idx, child_fn fn, void *arg);
int child_wait(struct child *c, int timeout_ms); /* exit status, or -1 */
void sig_send(int fd, char c);
/* wait for a byte; returns it, or -1 on timeout/EOF */
int sig_wait(int fd, int timeout_ms);

uint64_t rnd(uint64_t *state);
uint64_t mono_ms(void);
/* $FM_SEED (strtoull, any base) or `dflt`, said on stderr as
 * "<what>: seed N (FM_SEED)" so that a failed run can be replayed */
uint64_t svc_seed(const char *what, uint64_t dflt);

/*
 * The main() of a test of named scenarios:
 *   test_NAME SCENARIO --owner PATH [--provider P --addr A] [more]
 * runs the scenario argv[1] names on *s (svc_init named after it, so each
 * scenario has its own dir and address), then kills and reaps the
 * children in reap[] still running (a check that failed left them), then
 * svc_fini; says "NAME SCENARIO: PASS|FAIL in N ms".  Returns main's exit
 * code: 0 pass, 1 fail, 2 usage (no or an unknown scenario).
 */
struct svc_scenario {
	const char *name;
	int (*fn)(struct svc *s);
};

struct svc_test {
	const char *name;               /* "service": test_service */
	const struct svc_scenario *sc;
	size_t n;
	const char *usage_more;         /* more arguments for the usage line, or NULL */
	struct child *reap;             /* children to kill at the end, or NULL */
	size_t nreap;
};

int svc_main(const struct svc_test *t, struct svc *s, int argc, char **argv);

#define CHECK(cond) do { if (!(cond)) { \
	fprintf(stderr, "%s:%d: CHECK failed: %s (%s)\n", __FILE__, __LINE__, #cond, \
		fm_errormsg()); return 1; } } while (0)
#define DIE(...) do { fprintf(stderr, __VA_ARGS__); fputc('\n', stderr); exit(1); } while (0)

#endif
