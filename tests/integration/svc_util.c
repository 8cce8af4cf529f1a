/* svc_util.c -- see svc_util.h. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "flashmeta/ctl.h"
#include "flashmeta/error.h"
#include "svc_util.h"

static const char *key_shared = "flashmeta-test-key";

uint64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

uint64_t rnd(uint64_t *x)
{
	*x ^= *x << 13;
	*x ^= *x >> 7;
	*x ^= *x << 17;
	return *x;
}

void svc_init(struct svc *s, int argc, char **argv, const char *name)
{
	const char *e;
	FILE *f;

	memset(s, 0, sizeof(*s));
	s->lease_ms = 600;
	snprintf(s->provider, sizeof(s->provider), "%s",
		 (e = getenv("FM_PROVIDER")) ? e : "shm");
	if ((e = getenv("FM_OWNER_BIN")))
		snprintf(s->owner_bin, sizeof(s->owner_bin), "%s", e);
	if ((e = getenv("FM_ADDR")))
		snprintf(s->addr, sizeof(s->addr), "%s", e);
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--owner") && i + 1 < argc)
			snprintf(s->owner_bin, sizeof(s->owner_bin), "%s", argv[++i]);
		else if (!strcmp(argv[i], "--provider") && i + 1 < argc)
			snprintf(s->provider, sizeof(s->provider), "%s", argv[++i]);
		else if (!strcmp(argv[i], "--addr") && i + 1 < argc)
			snprintf(s->addr, sizeof(s->addr), "%s", argv[++i]);
	}
	if (!s->owner_bin[0])
		DIE("%s: --owner PATH (or FM_OWNER_BIN) is required", name);
	if (!s->addr[0])
		snprintf(s->addr, sizeof(s->addr), "shm:/fm-it-%s-%d", name, (int)getpid());
	snprintf(s->dir, sizeof(s->dir), "/tmp/fm-it-%s-XXXXXX", name);
	if (!mkdtemp(s->dir))
		DIE("mkdtemp: %s", strerror(errno));
	snprintf(s->ctl, sizeof(s->ctl), "%s/ctl", s->dir);
	snprintf(s->pool, sizeof(s->pool), "%s/pool", s->dir);
	snprintf(s->keyfile, sizeof(s->keyfile), "%s/key", s->dir);
	snprintf(s->fence, sizeof(s->fence), "%s/fence", s->dir);
	f = fopen(s->keyfile, "w");
	fputs(key_shared, f);
	fclose(f);
	signal(SIGPIPE, SIG_IGN);
	fprintf(stderr, "%s: provider %s addr %s dir %s\n", name, s->provider, s->addr, s->dir);
}

int svc_fini(struct svc *s)
{
	char cmd[600];

	if (s->owner > 0)
		svc_owner_kill(s, SIGTERM);
	if (!getenv("FM_KEEP")) {
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", s->dir);
		(void)!system(cmd);
	}
	return s->owner_bad;
}

void svc_owner_start(struct svc *s)
{
	char lease[32];
	pid_t pid;

	snprintf(lease, sizeof(lease), "%u", s->lease_ms);
	(void)unlink(s->ctl);
	pid = fork();
	if (pid == 0) {
		/* a test killed by its timeout must not leave its owner behind */
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		const char *av[40] = {
			s->owner_bin, "--listen", s->addr, "--transport", s->provider,
			"--pmem", s->pool, "--key-file", s->keyfile, "--control", s->ctl,
			"--lease-ms", lease, "--clients", "1-16", "--pool-max-maps", "8",
			"--pool-max-grains", "65536", "--fence-table", s->fence,
		};
		int n = 21;

		for (int i = 0; i < 4 && s->owner_extra[i]; i++)
			av[n++] = s->owner_extra[i];
		if (getenv("FM_DEBUG")) {
			av[n++] = "--log-level";
			av[n++] = "debug";
		}
		av[n] = NULL;
		execv(s->owner_bin, (char *const *)av);
		_exit(127);
	}
	s->owner = pid;
	for (int i = 0; i < 500; i++) {
		if (svc_ctl(s, NULL, 0, "status") == 0)
			return;
		usleep(10000);
	}
	DIE("owner did not come up");
}

void svc_owner_kill(struct svc *s, int sig)
{
	int st;

	if (s->owner <= 0)
		return;
	kill(s->owner, sig);
	waitpid(s->owner, &st, 0);
	/* SIGTERM: a clean exit 0; SIGKILL: killed by it.  Anything else
	 * means it died before we asked, e.g. a sanitizer report */
	if (sig == SIGTERM ? !WIFEXITED(st) || WEXITSTATUS(st) != 0
			   : !WIFSIGNALED(st) || WTERMSIG(st) != sig) {
		fprintf(stderr, "owner pid %d: %s %d, not the signal %d we sent\n",
			(int)s->owner, WIFEXITED(st) ? "exit" : "signal",
			WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st), sig);
		s->owner_bad++;
	}
	s->owner = 0;
}

int svc_ctl(struct svc *s, char *out, size_t cap, const char *fmt, ...)
{
	char line[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line) - 1, fmt, ap);
	va_end(ap);
	strcat(line, "\n");
	return fm_ownerd_ctl(s->ctl, line, out, cap, 30000) ? -1 : 0;
}

struct fm_agent *svc_agent(struct svc *s, uint32_t id, const char *key)
{
	return svc_agent_mode(s, id, key, false);
}

struct fm_agent *svc_agent_cfg(struct svc *s, struct fm_agent_cfg *cfg, const char *key)
{
	struct fm_agent *a = NULL;

	cfg->provider = s->provider;
	cfg->addr = s->addr;
	cfg->key = key ? key : key_shared;
	cfg->key_len = strlen(cfg->key);
	cfg->wait_ms = cfg->wait_ms ? cfg->wait_ms : 8000;
	cfg->retry_min_ms = 20;
	cfg->retry_max_ms = 200;
	if (fm_agent_new(&a, cfg))
		DIE("fm_agent_new: %s", fm_errormsg());
	return a;
}

struct fm_agent *svc_agent_mode(struct svc *s, uint32_t id, const char *key, bool by_message)
{
	struct fm_agent_cfg cfg = { .client_id = id, .decide_by_message = by_message };

	return svc_agent_cfg(s, &cfg, key);
}

int svc_wait_gen(struct fm_agent *a, uint64_t map, uint64_t gen)
{
	struct fm_agent_map m;
	uint64_t end = mono_ms() + 8000;

	while (mono_ms() < end) {
		if (!fm_agent_map_get(a, map, &m) && m.generation >= gen && m.granted)
			return 0;
		usleep(5000);
	}
	return -1;
}

int svc_map_show(struct svc *s, uint64_t map, const char *key, char *val, size_t cap)
{
	char out[4096], want[64], *p;

	if (svc_ctl(s, out, sizeof(out), "map-show %" PRIu64, map))
		return -1;
	snprintf(want, sizeof(want), " %s ", key);
	if (!(p = strstr(out, want)))
		return -1;
	p += strlen(want);
	snprintf(val, cap, "%.*s", (int)strcspn(p, " \n"), p);
	return 0;
}

long svc_map_show_num(struct svc *s, uint64_t map, const char *key)
{
	char v[64];

	return svc_map_show(s, map, key, v, sizeof(v)) ? -1 : strtol(v, NULL, 10);
}

void child_start(struct svc *s, struct child *c, int idx, child_fn fn, void *arg)
{
	if (pipe(c->to) || pipe(c->from))
		DIE("pipe");
	fflush(NULL);
	c->pid = fork();
	if (c->pid == 0) {
		int rc;

		close(c->to[1]);
		close(c->from[0]);
		s->owner = 0; /* not ours to kill */
		rc = fn(s, idx, c->to[0], c->from[1], arg);
		fflush(NULL);
		_exit(rc);
	}
	close(c->to[0]);
	close(c->from[1]);
}

int child_wait(struct child *c, int timeout_ms)
{
	uint64_t end = mono_ms() + (uint64_t)timeout_ms;
	int st;

	for (;;) {
		pid_t p = waitpid(c->pid, &st, WNOHANG);

		if (p == c->pid)
			break;
		if (mono_ms() > end) {
			kill(c->pid, SIGKILL);
			waitpid(c->pid, &st, 0);
			fprintf(stderr, "child %d: timeout, killed\n", (int)c->pid);
			return -1;
		}
		usleep(5000);
	}
	close(c->to[1]);
	close(c->from[0]);
	if (WIFSIGNALED(st))
		return 128 + WTERMSIG(st);
	return WEXITSTATUS(st);
}

void sig_send(int fd, char c)
{
	(void)!write(fd, &c, 1);
}

int sig_wait(int fd, int timeout_ms)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	char c;

	if (poll(&p, 1, timeout_ms) <= 0)
		return -1;
	if (read(fd, &c, 1) != 1)
		return -1;
	return (unsigned char)c;
}


uint64_t svc_seed(const char *what, uint64_t dflt)
{
	const char *e = getenv("FM_SEED");
	uint64_t seed = e ? strtoull(e, NULL, 0) : dflt;

	fprintf(stderr, "%s: seed %" PRIu64 " (FM_SEED)\n", what, seed);
	return seed;
}

static int svc_usage(const struct svc_test *t)
{
	fprintf(stderr, "usage: test_%s ", t->name);
	for (size_t i = 0; i < t->n; i++)
		fprintf(stderr, "%s%s", i ? "|" : "", t->sc[i].name);
	fprintf(stderr, " --owner PATH%s%s [--provider P --addr A]\n",
		t->usage_more ? " " : "", t->usage_more ? t->usage_more : "");
	return 2;
}

int svc_main(const struct svc_test *t, struct svc *s, int argc, char **argv)
{
	const struct svc_scenario *sc = NULL;
	uint64_t t0 = mono_ms();
	int rc;

	for (size_t i = 0; argc >= 2 && i < t->n; i++)
		if (!strcmp(argv[1], t->sc[i].name))
			sc = &t->sc[i];
	if (!sc)
		return svc_usage(t);
	svc_init(s, argc, argv, sc->name);
	rc = sc->fn(s);
	for (size_t i = 0; i < t->nreap; i++)
		if (t->reap[i].pid > 0) { /* a check failed with it running */
			kill(t->reap[i].pid, SIGKILL);
			(void)child_wait(&t->reap[i], 5000);
		}
	rc |= svc_fini(s);
	fprintf(stderr, "%s %s: %s in %" PRIu64 " ms\n", t->name, sc->name, rc ? "FAIL" : "PASS",
		mono_ms() - t0);
	return rc ? 1 : 0;
}
