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
		execl(s->owner_bin, s->owner_bin, "--listen", s->addr, "--transport", s->provider,
		      "--pmem", s->pool, "--key-file", s->keyfile, "--control", s->ctl,
		      "--lease-ms", lease, "--clients", "1-16", "--pool-max-maps", "8",
		      "--pool-max-grains", "65536", "--fence-table", s->fence,
		      (getenv("FM_DEBUG") ? "--log-level" : NULL),
		      "debug", (char *)NULL);
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
	struct fm_agent_cfg cfg = {
		.provider = s->provider, .addr = s->addr, .client_id = id,
		.key = key ? key : key_shared, .key_len = strlen(key ? key : key_shared),
		.wait_ms = 8000, .retry_min_ms = 20, .retry_max_ms = 200,
	};
	struct fm_agent *a = NULL;

	if (fm_agent_new(&a, &cfg))
		DIE("fm_agent_new: %s", fm_errormsg());
	return a;
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

/* ------------------------------------------------------- engine I/O */

static int file_io(int fd, bool write, uint64_t off, uint64_t len, void *buf)
{
	ssize_t n = write ? pwrite(fd, buf, len, (off_t)off) : pread(fd, buf, len, (off_t)off);

	if (n == (ssize_t)len)
		return 0;
	return fm_err(-EIO, "%s fd %d [%llu, +%llu): %zd (%s)", write ? "pwrite" : "pread", fd,
		      (unsigned long long)off, (unsigned long long)len, n,
		      n < 0 ? strerror(errno) : "short");
}

/* A write as a data step (lease.h R2): only while the lease has its
 * margin left. */
static int step_write(struct fm_agent *a, struct fm_agent_io *io, int fd, uint64_t off,
		      uint64_t len, uint8_t *buf)
{
	int rc = fm_agent_step_begin(a, io, NULL);

	if (rc)
		return rc;
	rc = file_io(fd, true, off, len, buf);
	fm_agent_step_end(a, io);
	return rc;
}

/*
 * One grain of COPY_THEN_WRITE / WRITE_AND_SPLIT.  Durability order:
 *   1. lock the grain (answer: already split?)
 *   2. (a data step) copy the source grain to the target (unless the
 *      write covers it), the target write if the I/O is one, and
 *      fdatasync(target): the copied data is durable
 *   3. commit the split; returns after the owner made it durable
 *   4. only now (a data step) the source write, if the I/O is one
 */
static int cow_grain(struct fm_agent *a, struct fm_agent_io *io, struct vols *v,
		     enum fm_io_op op, uint64_t g, uint32_t gshift, bool copy, uint64_t off,
		     uint64_t len, uint8_t *buf)
{
	uint64_t gs = 1ull << gshift, goff = g << gshift;
	bool tgt = op == FM_IO_WRITE_TARGET;
	int rc = fm_agent_lock(a, v->map, g); /* 1 */
	uint8_t *tmp;

	if (rc < 0)
		return rc;
	if (rc == 1) { /* split meanwhile: plain write */
		fm_agent_unlock(a, v->map, g);
		return step_write(a, io, tgt ? v->tgt : v->src, off, len, buf);
	}
	rc = fm_agent_step_begin(a, io, NULL); /* 2 */
	if (rc) {
		fm_agent_unlock(a, v->map, g);
		return rc;
	}
	if (copy) {
		tmp = malloc(gs);
		if (file_io(v->src, false, goff, gs, tmp) || file_io(v->tgt, true, goff, gs, tmp))
			rc = -EIO;
		free(tmp);
	}
	if (!rc && tgt && file_io(v->tgt, true, off, len, buf))
		rc = -EIO;
	if (!rc)
		fdatasync(v->tgt);
	fm_agent_step_end(a, io);
	if (rc) {
		fm_agent_unlock(a, v->map, g);
		return rc;
	}
	rc = fm_agent_commit_split(a, v->map, g); /* 3 */
	if (rc)
		return rc;
	return tgt ? 0 : step_write(a, io, v->src, off, len, buf); /* 4 */
}

static int io_once(struct fm_agent *a, struct vols *v, enum fm_io_op op, uint64_t off,
		   uint64_t len, uint8_t *buf)
{
	struct fm_extent ext[16];
	struct fm_grain_range lk[16];
	struct fm_plan plan;
	struct fm_agent_io io;
	bool wr = op == FM_IO_WRITE_SOURCE || op == FM_IO_WRITE_TARGET;
	int fd = (op == FM_IO_READ_SOURCE || op == FM_IO_WRITE_SOURCE) ? v->src : v->tgt;
	int rc;

	rc = fm_agent_io_begin(a, v->map, &io);
	if (rc)
		return rc;
	fm_plan_setup(&plan, ext, 16, lk, 16);
	rc = fm_agent_plan(a, &io, op, off, len, &plan);
	for (uint64_t e = 0; !rc && e < plan.ext_count; e++) {
		/* NOTE: fm_plan_io fills ext.offset with the VOLUME offset
		 * (planner.c close_extent), not "within the I/O" as planner.h
		 * says; reported. */
		uint64_t eoff = ext[e].offset, elen = ext[e].length;
		uint8_t *ebuf = buf + (ext[e].offset - off);
		uint32_t sh = io.map.grain_shift;

		switch (ext[e].kind) {
		case FM_EXT_DIRECT:
			rc = wr ? step_write(a, &io, fd, eoff, elen, ebuf) :
				  file_io(fd, false, eoff, elen, ebuf);
			break;
		case FM_EXT_REDIRECT_TO_SOURCE:
			/* read the source, then prove it was still unsplit */
			rc = file_io(v->src, false, eoff, elen, ebuf);
			for (uint64_t g = ext[e].first_grain; !rc && g <= ext[e].last_grain; g++) {
				uint64_t s0 = g << sh, s1 = s0 + (1ull << sh);
				int sp = fm_agent_is_split(a, v->map, g);

				if (sp < 0) {
					rc = sp;
				} else if (sp == 1) {
					uint64_t a0 = s0 > eoff ? s0 : eoff;
					uint64_t a1 = s1 < eoff + elen ? s1 : eoff + elen;

					rc = file_io(v->tgt, false, a0, a1 - a0, buf + (a0 - off));
				}
			}
			break;
		case FM_EXT_COPY_THEN_WRITE:
		case FM_EXT_WRITE_AND_SPLIT:
			for (uint64_t g = ext[e].first_grain; !rc && g <= ext[e].last_grain; g++) {
				uint64_t s0 = g << sh, s1 = s0 + (1ull << sh);
				uint64_t a0 = s0 > eoff ? s0 : eoff;
				uint64_t a1 = s1 < eoff + elen ? s1 : eoff + elen;

				rc = cow_grain(a, &io, v, op, g, sh,
					       ext[e].kind == FM_EXT_COPY_THEN_WRITE, a0, a1 - a0,
					       buf + (a0 - off));
			}
			break;
		default:
			rc = -EINVAL;
		}
	}
	fm_agent_io_end(a, &io);
	return rc;
}

int eng_io(struct fm_agent *a, struct vols *v, enum fm_io_op op, uint64_t off, uint64_t len,
	   void *buf)
{
	uint64_t end = mono_ms() + 20000;
	int rc;

	/* a broken session, a lost lease or a release mid-I/O: start the I/O
	 * again (agent.h lists these) */
	while ((rc = io_once(a, v, op, off, len, buf)) &&
	       (rc == -ECONNRESET || rc == -EAGAIN || rc == -ESTALE || rc == -ETIMEDOUT ||
		rc == -ENOLCK || rc == -ENOTCONN || rc == -EKEYEXPIRED) && mono_ms() < end)
		usleep(10000);
	return rc;
}
