/* proc.c -- the parent's processes: the real flashmeta-owner (fork +
 * exec, its control socket) and the client processes (fork, reap,
 * restart), and the run directory on tmpfs.
 *
 * Every child gets PR_SET_PDEATHSIG(SIGKILL): if the parent dies (a ctest
 * timeout), nothing is left behind.  The parent reaps each pid by itself
 * (never waitpid(-1)), so an owner kill never eats a client's status.
 * Deaths: a client killed by us (expect_kill), or killed while we hold it
 * stopped (the owner's fence), is expected; any other exit during the run
 * is counted in client_deaths / owner_deaths and fails the run.
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
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "flashmeta/ownerd.h"
#include "run.h"

uint64_t pit_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

uint64_t pit_rnd(uint64_t *x)
{
	*x ^= *x << 13;
	*x ^= *x >> 7;
	*x ^= *x << 17;
	return *x;
}

/* splitmix64 of both: seeds that differ in one bit give unrelated streams */
uint64_t pit_rnd_seed(uint64_t a, uint64_t b)
{
	uint64_t z = a * 0x9e3779b97f4a7c15ull + b + 0x632be59bd9b4e019ull;

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	z ^= z >> 31;
	return z ? z : 1;
}

uint64_t pit_rnd_below(uint64_t *x, uint64_t n)
{
	return pit_rnd(x) % n;
}

void pit_sleep_ms(uint32_t ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000 };

	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

void pit_sleep_us(uint32_t us)
{
	struct timespec ts = { .tv_sec = us / 1000000, .tv_nsec = (long)(us % 1000000) * 1000 };

	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

double pit_rel_s(const struct pit_env *e, uint64_t t_ns)
{
	return t_ns < e->t0_ns ? -(double)(e->t0_ns - t_ns) / 1e9 : (double)(t_ns - e->t0_ns) / 1e9;
}

void pit_vol_path(const struct pit_env *e, uint32_t vol, char *buf, size_t cap)
{
	snprintf(buf, cap, "%s/vol%u", e->dir, vol);
}

void pit_log_path(const struct pit_env *e, unsigned idx, uint32_t inc, char *buf, size_t cap)
{
	snprintf(buf, cap, "%s/log.c%u.i%u", e->dir, idx, inc);
}

void pit_say(const struct pit_run *r, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "[%8.3f] ", pit_rel_s(&r->env, pit_now_ns()));
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

/* ------------------------------------------------------------------ run */

int pit_run_init(struct pit_run *r, const struct pit_cfg *cfg)
{
	struct pit_env *e = &r->env;
	const char *base = cfg->dir_base;
	FILE *f;

	memset(r, 0, sizeof(*r));
	r->cfg = cfg;
	e->cfg = cfg;
	e->t0_ns = pit_now_ns();
	for (unsigned i = 0; i <= PIT_MAX_CLIENTS; i++)
		r->kids[i].cmd_fd = r->kids[i].reply_fd = -1;
	if (!base)
		base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
	snprintf(e->dir, sizeof(e->dir), "%s/fm-pit-XXXXXX", base);
	if (!mkdtemp(e->dir)) {
		fprintf(stderr, "fm-pit: mkdtemp %s: %s\n", e->dir, strerror(errno));
		return -errno;
	}
	if (cfg->addr)
		snprintf(e->addr, sizeof(e->addr), "%s", cfg->addr);
	else
		snprintf(e->addr, sizeof(e->addr), "shm:/fm-pit-%d", (int)getpid());
	e->key_len = (size_t)snprintf(e->key, sizeof(e->key), "fm-pit-%d-%" PRIx64,
				      (int)getpid(), cfg->seed);
	snprintf(r->ctl, sizeof(r->ctl), "%s/ctl", e->dir);
	snprintf(r->pool, sizeof(r->pool), "%s/pool", e->dir);
	snprintf(r->keyfile, sizeof(r->keyfile), "%s/key", e->dir);
	snprintf(r->fence, sizeof(r->fence), "%s/fence", e->dir);
	snprintf(r->owner_log, sizeof(r->owner_log), "%s/owner.log", e->dir);
	f = fopen(r->keyfile, "w");
	if (!f || fputs(e->key, f) < 0 || fclose(f)) {
		fprintf(stderr, "fm-pit: %s: %s\n", r->keyfile, strerror(errno));
		return -EIO;
	}
	e->sh = mmap(NULL, sizeof(*e->sh), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
		     -1, 0);
	if (e->sh == MAP_FAILED) {
		e->sh = NULL;
		return -errno;
	}
	e->maps[0] = (struct pit_map){ .id = 1, .src_vol = 1, .tgt_vol = 2,
				       .grains = cfg->big_grains, .hot_grains = 64 };
	e->maps[1] = (struct pit_map){ .id = 2, .src_vol = 3, .tgt_vol = 4,
				       .grains = cfg->small_grains };
	e->nmaps = 2;
	e->writers = cfg->clients * cfg->threads;
	r->rng = pit_rnd_seed(cfg->seed, 0);
	signal(SIGPIPE, SIG_IGN);
	return 0;
}

void pit_run_fini(struct pit_run *r)
{
	for (unsigned i = 0; i <= PIT_MAX_CLIENTS; i++) {
		struct pit_child *k = &r->kids[i];

		if (k->pid > 0) {
			kill(k->pid, SIGKILL);
			kill(k->pid, SIGCONT);
			(void)waitpid(k->pid, NULL, 0);
			k->pid = 0;
		}
		if (k->cmd_fd >= 0)
			close(k->cmd_fd);
		if (k->reply_fd >= 0)
			close(k->reply_fd);
		k->cmd_fd = k->reply_fd = -1;
	}
	if (r->owner > 0) {
		kill(r->owner, SIGKILL);
		(void)waitpid(r->owner, NULL, 0);
		r->owner = 0;
	}
	if (r->env.dir[0] && !r->cfg->keep) {
		char cmd[600];

		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", r->env.dir);
		(void)!system(cmd);
	} else if (r->env.dir[0]) {
		fprintf(stderr, "fm-pit: kept %s\n", r->env.dir);
	}
	free(r->incs);
	free(r->trig);
	if (r->env.sh)
		munmap(r->env.sh, sizeof(*r->env.sh));
}

/* ---------------------------------------------------------------- owner */

int pit_ctl(struct pit_run *r, char *out, size_t cap, const char *fmt, ...)
{
	char line[512], tmp[4096];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line) - 2, fmt, ap);
	va_end(ap);
	if (n < 0 || n >= (int)sizeof(line) - 2)
		return -EINVAL;
	strcat(line, "\n");
	if (!out) {
		out = tmp;
		cap = sizeof(tmp);
	}
	return fm_ownerd_ctl(r->ctl, line, out, cap, 30000);
}

int pit_owner_start(struct pit_run *r)
{
	const struct pit_cfg *cfg = r->cfg;
	char lease[32], grains[32];
	const char *argv[40];
	int n = 0;
	pid_t pid;

	snprintf(lease, sizeof(lease), "%u", cfg->lease_ms);
	snprintf(grains, sizeof(grains), "%" PRIu64,
		 cfg->big_grains > 65536 ? cfg->big_grains : (uint64_t)65536);
	argv[n++] = cfg->owner_bin;
	argv[n++] = "--listen";
	argv[n++] = r->env.addr;
	argv[n++] = "--transport";
	argv[n++] = cfg->provider;
	if (cfg->device) {
		argv[n++] = "--device";
		argv[n++] = cfg->device;
	}
	argv[n++] = "--pmem";
	argv[n++] = r->pool;
	argv[n++] = "--key-file";
	argv[n++] = r->keyfile;
	argv[n++] = "--control";
	argv[n++] = r->ctl;
	argv[n++] = "--lease-ms";
	argv[n++] = lease;
	argv[n++] = "--clients";
	argv[n++] = "1-64";
	argv[n++] = "--pool-max-maps";
	argv[n++] = "8";
	argv[n++] = "--pool-max-grains";
	argv[n++] = grains;
	argv[n++] = "--fence-table"; /* raised at every restart and fence */
	argv[n++] = r->fence;
	argv[n++] = "--log-level";
	argv[n++] = cfg->owner_debug ? "debug" : "info";
	argv[n] = NULL;
	(void)unlink(r->ctl);
	fflush(NULL);
	pid = fork();
	if (pid < 0)
		return -errno;
	if (pid == 0) {
		int fd = open(r->owner_log, O_WRONLY | O_CREAT | O_APPEND, 0644);

		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		execv(cfg->owner_bin, (char *const *)argv);
		_exit(127);
	}
	r->owner = pid;
	r->owner_starts++;
	for (int i = 0; i < 3000; i++) {
		int st;

		if (waitpid(pid, &st, WNOHANG) == pid) {
			r->owner = 0;
			r->owner_deaths++;
			pit_say(r, "owner pid %d died at start (status 0x%x), see %s", (int)pid, st,
				r->owner_log);
			return -ECHILD;
		}
		if (pit_ctl(r, NULL, 0, "status") == 0)
			return 0;
		pit_sleep_ms(5);
	}
	pit_say(r, "owner did not answer on %s", r->ctl);
	return -ETIMEDOUT;
}

void pit_owner_kill(struct pit_run *r, int sig)
{
	int st;

	if (r->owner <= 0)
		return;
	kill(r->owner, sig);
	if (waitpid(r->owner, &st, 0) == r->owner &&
	    (sig == SIGTERM ? !WIFEXITED(st) || WEXITSTATUS(st) != 0
			    : !WIFSIGNALED(st) || WTERMSIG(st) != sig)) {
		pit_say(r, "owner pid %d: %s %d, not the signal %d we sent", (int)r->owner,
			WIFEXITED(st) ? "exit" : "signal",
			WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st), sig);
		r->owner_deaths++;
	}
	r->owner = 0;
}

int pit_maps_setup(struct pit_run *r)
{
	char out[4096];

	for (unsigned m = 0; m < r->env.nmaps; m++) {
		const struct pit_map *mp = &r->env.maps[m];
		uint64_t size = mp->grains * PIT_GRAIN;
		uint32_t vols[2] = { mp->src_vol, mp->tgt_vol };

		for (int v = 0; v < 2; v++) {
			char p[400];
			int fd;

			pit_vol_path(&r->env, vols[v], p, sizeof(p));
			fd = open(p, O_RDWR | O_CREAT | O_TRUNC, 0644);
			if (fd < 0 || ftruncate(fd, (off_t)size)) {
				pit_say(r, "%s: %s", p, strerror(errno));
				return -EIO;
			}
			close(fd);
		}
		if (pit_ctl(r, out, sizeof(out), "map-create %" PRIu64 " %u %u %" PRIu64 " %u",
			    mp->id, mp->src_vol, mp->tgt_vol, size, PIT_GRAIN) ||
		    pit_ctl(r, out, sizeof(out), "map-prepare %" PRIu64, mp->id)) {
			pit_say(r, "map %" PRIu64 ": %s", mp->id, out);
			return -EIO;
		}
	}
	return 0;
}

int pit_trigger(struct pit_run *r, unsigned map, const char *cmd)
{
	struct pit_trigger t = { .map = map };
	char out[4096];
	const char *g;
	int rc;

	t.t_sent_ns = pit_now_ns();
	rc = pit_ctl(r, out, sizeof(out), "%s %" PRIu64, cmd, r->env.maps[map].id);
	t.t_done_ns = pit_now_ns();
	if (rc) {
		pit_say(r, "%s map %" PRIu64 ": %d %s", cmd, r->env.maps[map].id, rc, out);
		return rc;
	}
	g = strstr(out, " generation ");
	if (!g)
		return -EPROTO;
	t.gen = strtoull(g + 12, NULL, 10);
	if (r->ntrig == r->captrig) {
		r->captrig = r->captrig ? 2 * r->captrig : 64;
		r->trig = realloc(r->trig, r->captrig * sizeof(*r->trig));
	}
	r->trig[r->ntrig++] = t;
	if (r->cfg->verbose)
		pit_say(r, "%s map %" PRIu64 ": generation %" PRIu64 " in %.1f ms", cmd,
			r->env.maps[map].id, t.gen, (double)(t.t_done_ns - t.t_sent_ns) / 1e6);
	return 0;
}

/* -------------------------------------------------------------- clients */

int pit_child_start(struct pit_run *r, unsigned idx, enum pit_client_kind kind)
{
	struct pit_child *k = &r->kids[idx];
	int to[2] = { -1, -1 }, from[2] = { -1, -1 };
	pid_t pid;

	/* close-on-exec: an owner started later must not hold a client's pipe */
	if (kind == PIT_CLIENT_SCRIPTED && (pipe2(to, O_CLOEXEC) || pipe2(from, O_CLOEXEC)))
		return -errno;
	if (r->nincs == r->capincs) {
		r->capincs = r->capincs ? 2 * r->capincs : 64;
		r->incs = realloc(r->incs, r->capincs * sizeof(*r->incs));
	}
	k->idx = idx;
	k->inc++;
	k->kind = kind;
	k->expect_kill = k->stopped = false;
	k->inc_slot = r->nincs;
	r->incs[r->nincs++] = (struct pit_inc){ .idx = idx, .inc = k->inc,
						.start_ns = pit_now_ns(), .end_ns = UINT64_MAX };
	atomic_store(&r->env.sh->c[idx].ready, 0);
	atomic_store(&r->env.sh->c[idx].in_copy, 0);
	atomic_store(&r->env.sh->c[idx].in_commit, 0);
	atomic_store(&r->env.sh->c[idx].in_slow, 0);
	fflush(NULL);
	pid = fork();
	if (pid < 0)
		return -errno;
	if (pid == 0) {
		int rc;

		prctl(PR_SET_PDEATHSIG, SIGKILL);
		for (unsigned j = 0; j <= PIT_MAX_CLIENTS; j++) {
			if (r->kids[j].cmd_fd >= 0)
				close(r->kids[j].cmd_fd);
			if (r->kids[j].reply_fd >= 0)
				close(r->kids[j].reply_fd);
		}
		if (to[1] >= 0)
			close(to[1]);
		if (from[0] >= 0)
			close(from[0]);
		rc = pit_client_main(&r->env, idx, k->inc, kind, to[0], from[1]);
		fflush(NULL);
		_exit(rc);
	}
	k->pid = pid;
	if (kind == PIT_CLIENT_SCRIPTED) {
		close(to[0]);
		close(from[1]);
		k->cmd_fd = to[1];
		k->reply_fd = from[0];
	}
	return 0;
}

static void child_gone(struct pit_run *r, struct pit_child *k, int st)
{
	struct pit_inc *inc = &r->incs[k->inc_slot];

	inc->end_ns = pit_now_ns();
	inc->status = st;
	k->pid = 0;
	if (k->cmd_fd >= 0)
		close(k->cmd_fd);
	if (k->reply_fd >= 0)
		close(k->reply_fd);
	k->cmd_fd = k->reply_fd = -1;
}

static bool death_expected(const struct pit_run *r, const struct pit_child *k, int st)
{
	if (WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL && (k->expect_kill || k->stopped))
		return true;
	/* a clean exit once told to stop (or the sweep / a script ending) */
	return WIFEXITED(st) && WEXITSTATUS(st) == 0 &&
	       (atomic_load(&r->env.sh->stop) || k->kind != PIT_CLIENT_RANDOM);
}

static void say_status(const struct pit_run *r, const struct pit_child *k, int st,
		       const char *what)
{
	pit_say(r, "client %u.%u (pid %d) %s: %s %d", k->idx, k->inc, (int)k->pid, what,
		WIFEXITED(st) ? "exit" : "signal", WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
}

void pit_reap(struct pit_run *r)
{
	int st;

	if (r->owner > 0 && waitpid(r->owner, &st, WNOHANG) == r->owner) {
		pit_say(r, "owner pid %d died on its own: %s %d (see %s)", (int)r->owner,
			WIFEXITED(st) ? "exit" : "signal",
			WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st), r->owner_log);
		r->owner = 0;
		r->owner_deaths++;
		if (!atomic_load(&r->env.sh->stop) && pit_owner_start(r))
			pit_say(r, "owner restart failed");
	}
	for (unsigned i = 0; i <= PIT_MAX_CLIENTS; i++) {
		struct pit_child *k = &r->kids[i];

		if (k->pid <= 0 || k->stopped || waitpid(k->pid, &st, WNOHANG) != k->pid)
			continue;
		if (!death_expected(r, k, st)) {
			say_status(r, k, st, "died unexpectedly");
			r->client_deaths++;
		}
		child_gone(r, k, st);
		if (k->kind == PIT_CLIENT_RANDOM && !atomic_load(&r->env.sh->stop))
			(void)pit_child_start(r, i, PIT_CLIENT_RANDOM);
	}
}

int pit_child_wait(struct pit_run *r, unsigned idx, int timeout_ms)
{
	struct pit_child *k = &r->kids[idx];
	uint64_t end = pit_now_ns() + (uint64_t)timeout_ms * 1000000;
	int st = 0;

	if (k->pid <= 0)
		return r->incs[k->inc_slot].status;
	for (;;) {
		if (waitpid(k->pid, &st, WNOHANG) == k->pid)
			break;
		if (pit_now_ns() > end) {
			pit_say(r, "client %u.%u did not exit in %d ms: killed", k->idx, k->inc,
				timeout_ms);
			r->client_hangs++;
			k->expect_kill = true;
			kill(k->pid, SIGKILL);
			kill(k->pid, SIGCONT);
			(void)waitpid(k->pid, &st, 0);
			break;
		}
		pit_sleep_ms(5);
	}
	if (!death_expected(r, k, st)) {
		say_status(r, k, st, "ended badly");
		r->client_deaths++;
	}
	child_gone(r, k, st);
	return st;
}

void pit_child_kill(struct pit_run *r, unsigned idx)
{
	struct pit_child *k = &r->kids[idx];
	int st;

	if (k->pid <= 0)
		return;
	k->expect_kill = true;
	kill(k->pid, SIGKILL);
	kill(k->pid, SIGCONT);
	if (waitpid(k->pid, &st, 0) != k->pid)
		return;
	if (!death_expected(r, k, st)) {
		say_status(r, k, st, "died before our SIGKILL");
		r->client_deaths++;
	}
	child_gone(r, k, st);
}

uint64_t pit_ios_done(const struct pit_run *r)
{
	uint64_t n = 0;

	for (unsigned i = 0; i <= PIT_MAX_CLIENTS; i++)
		for (int op = 0; op < 4; op++)
			n += atomic_load(&r->env.sh->c[i].ios[op]);
	return n;
}

bool pit_wait_ready(struct pit_run *r, unsigned idx, int timeout_ms)
{
	uint64_t end = pit_now_ns() + (uint64_t)timeout_ms * 1000000;

	while (!atomic_load(&r->env.sh->c[idx].ready)) {
		if (pit_now_ns() > end || r->kids[idx].pid <= 0)
			return false;
		pit_reap(r);
		pit_sleep_ms(5);
	}
	return true;
}

void pit_idle(struct pit_run *r, uint32_t ms)
{
	uint64_t end = pit_now_ns() + (uint64_t)ms * 1000000;

	for (;;) {
		uint64_t now = pit_now_ns();

		pit_reap(r);
		if (now >= end)
			return;
		pit_sleep_ms((end - now) / 1000000 < 10 ? (uint32_t)((end - now) / 1000000) + 1
							: 10);
	}
}
