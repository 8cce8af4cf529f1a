/* demo_run.c -- flashmeta-demo: the run directory and what lives in it (key,
 * fence table, volume files, golden and expected images), and the owner
 * daemon's life (start, control commands, stop).
 *
 * Only what this run made is removed at the end: every file is created with
 * O_EXCL (or found absent before the owner creates it) and recorded in
 * run->made; the directory is removed only when the run made it.
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
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "demo.h"
#include "flashmeta/error.h"

static int path_in(char *out, size_t cap, const char *dir, const char *name)
{
	int n = snprintf(out, cap, "%s/%s", dir, name);

	if (n < 0 || (size_t)n >= cap)
		return fm_err(-ENAMETOOLONG, "%s/%s: path too long", dir, name);
	return 0;
}

void demo_run_adopt(struct demo_run *run, const char *path)
{
	if (run->nmade < sizeof(run->made) / sizeof(run->made[0]))
		snprintf(run->made[run->nmade++], sizeof(run->made[0]), "%s", path);
}

/* the transport: verbs on an RDMA device with an IPv4 address (asked
 * for, or found by --transport auto), else shm; cfg->why says which and
 * why */
static int transport_choose(struct demo_cfg *cfg)
{
	const char *t = cfg->transport_opt;
	char ip[16]; /* INET_ADDRSTRLEN */
	int rc;

	cfg->device[0] = 0;
	if (t && !strcmp(t, "shm")) {
		snprintf(cfg->why, sizeof(cfg->why), "shm (--transport shm)");
	} else if ((rc = demo_rdma_ipv4(cfg->device_opt, cfg->device, sizeof(cfg->device), ip,
					sizeof(ip))) == 0) {
		snprintf(cfg->transport, sizeof(cfg->transport), "verbs");
		snprintf(cfg->addr, sizeof(cfg->addr), "%s:%u", ip,
			 cfg->port ? cfg->port : 20000u + (unsigned)getpid() % 20000u);
		snprintf(cfg->why, sizeof(cfg->why), "verbs on RDMA device %s, %s (%s)",
			 cfg->device, cfg->addr, t ? "--transport verbs" : "found");
		return 0;
	} else if (t) { /* verbs asked for: fm_errormsg() says why not */
		return rc;
	} else {
		snprintf(cfg->why, sizeof(cfg->why), "shm (%s)", fm_errormsg());
		cfg->device[0] = 0;
	}
	snprintf(cfg->transport, sizeof(cfg->transport), "shm");
	snprintf(cfg->addr, sizeof(cfg->addr), "shm:/fm-demo-%d", (int)getpid());
	return 0;
}

int demo_run_dir(struct demo_cfg *cfg, struct demo_run *run)
{
	static const char *const ours[] = { "key", "pool", "ctl", "fence", "source.img",
					    "target.img", "golden.img", "expected.img",
					    "owner.log" };
	struct stat sb;
	int rc = 0;

	if (cfg->dir_opt) {
		if (snprintf(cfg->dir, sizeof(cfg->dir), "%s", cfg->dir_opt) >=
		    (int)sizeof(cfg->dir))
			return fm_err(-ENAMETOOLONG, "--dir %s: path too long", cfg->dir_opt);
		if (mkdir(cfg->dir, 0700) == 0)
			run->made_dir = true;
		else if (errno != EEXIST)
			return fm_err(-errno, "--dir %s: %s", cfg->dir, strerror(errno));
		else if (stat(cfg->dir, &sb) || !S_ISDIR(sb.st_mode))
			return fm_err(-ENOTDIR, "--dir %s: not a directory", cfg->dir);
	} else {
		snprintf(cfg->dir, sizeof(cfg->dir), "/tmp/fm-demo-XXXXXX");
		if (!mkdtemp(cfg->dir))
			return fm_err(-errno, "mkdtemp %s: %s", cfg->dir, strerror(errno));
		run->made_dir = true;
	}
	rc = rc ?: path_in(cfg->keyfile, sizeof(cfg->keyfile), cfg->dir, "key");
	rc = rc ?: path_in(cfg->pool, sizeof(cfg->pool), cfg->dir, "pool");
	rc = rc ?: path_in(cfg->ctl, sizeof(cfg->ctl), cfg->dir, "ctl");
	rc = rc ?: path_in(cfg->fence, sizeof(cfg->fence), cfg->dir, "fence");
	rc = rc ?: path_in(cfg->src, sizeof(cfg->src), cfg->dir, "source.img");
	rc = rc ?: path_in(cfg->tgt, sizeof(cfg->tgt), cfg->dir, "target.img");
	rc = rc ?: path_in(cfg->golden, sizeof(cfg->golden), cfg->dir, "golden.img");
	rc = rc ?: path_in(cfg->expected, sizeof(cfg->expected), cfg->dir, "expected.img");
	rc = rc ?: path_in(cfg->log, sizeof(cfg->log), cfg->dir, "owner.log");
	if (rc)
		return rc;
	/* a unix socket path is at most 107 bytes (sockaddr_un) */
	if (strlen(cfg->ctl) > 107)
		return fm_err(-ENAMETOOLONG, "%s: a control socket path is at most 107 bytes",
			      cfg->ctl);
	/* a --dir that holds files of an earlier run: refuse rather than
	 * reuse or delete what is not ours */
	for (size_t i = 0; i < sizeof(ours) / sizeof(ours[0]); i++) {
		char p[PATH_MAX];

		if (path_in(p, sizeof(p), cfg->dir, ours[i]))
			return -ENAMETOOLONG;
		if (lstat(p, &sb) == 0)
			return fm_err(-EEXIST, "%s exists (an earlier run?): choose an empty "
				      "--dir or remove it", p);
	}
	return transport_choose(cfg);
}

void demo_run_cleanup(const struct demo_cfg *cfg, struct demo_run *run)
{
	if (cfg->keep)
		return;
	while (run->nmade) {
		const char *p = run->made[--run->nmade];

		if (unlink(p) && errno != ENOENT)
			fprintf(stderr, DEMO_NAME ": unlink %s: %s\n", p, strerror(errno));
	}
	if (run->made_dir && rmdir(cfg->dir))
		fprintf(stderr, DEMO_NAME ": rmdir %s: %s (left in place)\n", cfg->dir,
			strerror(errno));
}

int demo_file_new(struct demo_run *run, const char *path, uint64_t size)
{
	int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);

	if (fd < 0)
		return fm_err(-errno, "%s: %s", path, strerror(errno));
	demo_run_adopt(run, path);
	if (size && ftruncate(fd, (off_t)size)) {
		int rc = fm_err(-errno, "%s: ftruncate %" PRIu64 ": %s", path, size,
				strerror(errno));

		close(fd);
		return rc;
	}
	close(fd);
	return 0;
}

/* A random 128-bit key, written as 32 hex digits (the owner and the
 * agents use the file's bytes as the key: fm_key_file_read) */
int demo_key_write(struct demo_run *run, const struct demo_cfg *cfg)
{
	uint8_t raw[16];
	char hex[2 * sizeof(raw) + 2];
	int fd, rc = 0;

	if (getrandom(raw, sizeof(raw), 0) != (ssize_t)sizeof(raw))
		return fm_err(-errno, "getrandom: %s", strerror(errno));
	for (size_t i = 0; i < sizeof(raw); i++)
		snprintf(hex + 2 * i, 3, "%02x", raw[i]);
	strcat(hex, "\n");
	fd = open(cfg->keyfile, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		return fm_err(-errno, "%s: %s", cfg->keyfile, strerror(errno));
	demo_run_adopt(run, cfg->keyfile);
	if (demo_write_all(fd, hex, strlen(hex)))
		rc = fm_err(-EIO, "%s: write failed", cfg->keyfile);
	close(fd);
	return rc;
}

int demo_ctl(const struct demo_cfg *cfg, char *out, size_t cap, const char *fmt, ...)
{
	char line[FM_CTL_LINE_MAX + 1];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line) - 1, fmt, ap);
	va_end(ap);
	if (n < 0 || n >= (int)sizeof(line) - 1)
		return fm_err(-EINVAL, "control command too long");
	strcat(line, "\n");
	return fm_ownerd_ctl(cfg->ctl, line, out, cap, 30000);
}

void demo_owner_log_tail(const struct demo_cfg *cfg, int lines)
{
	char buf[64 * 1024];
	FILE *f = fopen(cfg->log, "r");
	size_t n;
	int seen = 0;
	long i;

	if (!f)
		return;
	if (fseek(f, 0, SEEK_END) == 0 && ftell(f) > (long)sizeof(buf) - 1)
		fseek(f, -(long)(sizeof(buf) - 1), SEEK_END);
	else
		fseek(f, 0, SEEK_SET);
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = 0;
	for (i = (long)n - 1; i > 0; i--)
		if (buf[i - 1] == '\n' && ++seen > lines)
			break;
	fprintf(stderr, "--- the owner's log (%s), last lines ---\n%s", cfg->log, buf + i);
	if (n && buf[n - 1] != '\n')
		fputc('\n', stderr);
	fprintf(stderr, "---\n");
}

int demo_owner_start(const struct demo_cfg *cfg, struct demo_run *run)
{
	char lease[16];
	uint64_t end;
	int logfd, st;
	pid_t pid;

	if (access(cfg->owner, X_OK))
		return fm_err(-ENOENT, "the owner daemon %s: %s (build flashmeta-owner, or "
			      "name it with --owner PATH)", cfg->owner, strerror(errno));
	logfd = open(cfg->log, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (logfd < 0)
		return fm_err(-errno, "%s: %s", cfg->log, strerror(errno));
	demo_run_adopt(run, cfg->log);
	/* the owner makes these; they were checked absent (demo_run_dir) */
	demo_run_adopt(run, cfg->pool);
	demo_run_adopt(run, cfg->ctl);
	demo_run_adopt(run, cfg->fence);
	snprintf(lease, sizeof(lease), "%u", DEMO_LEASE_MS);
	fflush(NULL);
	pid = fork();
	if (pid < 0) {
		close(logfd);
		return fm_err(-errno, "fork: %s", strerror(errno));
	}
	if (pid == 0) {
		/* the owner goes when we go, even if we are killed */
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		dup2(logfd, STDOUT_FILENO);
		dup2(logfd, STDERR_FILENO);
		const char *av[40] = {
			cfg->owner, "--listen", cfg->addr, "--transport", cfg->transport,
			"--pmem", cfg->pool, "--key-file", cfg->keyfile, "--control", cfg->ctl,
			"--lease-ms", lease, "--clients", "1-16", "--pool-max-maps", "8",
			"--pool-max-grains", "65536", "--fence-table", cfg->fence,
		};
		int n = 21;

		if (cfg->device[0]) {
			av[n++] = "--device";
			av[n++] = cfg->device;
		}
		if (getenv("FM_DEBUG")) {
			av[n++] = "--log-level";
			av[n++] = "debug";
		}
		av[n] = NULL;
		execv(cfg->owner, (char *const *)av);
		fprintf(stderr, "exec %s: %s\n", cfg->owner, strerror(errno));
		_exit(127);
	}
	close(logfd);
	run->owner = pid;
	run->owner_exit = -1;
	end = demo_now_ns() + UINT64_C(10000000000);
	while (demo_now_ns() < end) {
		if (waitpid(pid, &st, WNOHANG) == pid) {
			run->owner = 0;
			demo_owner_log_tail(cfg, 20);
			return fm_err(-ECHILD, "the owner %s exited at start (%s %d; its log is "
				      "above)", cfg->owner, WIFEXITED(st) ? "status" : "signal",
				      WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
		}
		if (demo_ctl(cfg, NULL, 0, "status") == 0)
			return 0;
		usleep(10000);
	}
	demo_owner_log_tail(cfg, 20);
	return fm_err(-ETIMEDOUT, "the owner's control socket %s did not answer in 10 s",
		      cfg->ctl);
}

int demo_owner_stop(struct demo_run *run)
{
	uint64_t end;
	int st;

	if (run->owner <= 0)
		return -ECHILD;
	kill(run->owner, SIGTERM);
	end = demo_now_ns() + UINT64_C(10000000000);
	for (;;) {
		pid_t p = waitpid(run->owner, &st, WNOHANG);

		if (p == run->owner)
			break;
		if (demo_now_ns() > end) {
			kill(run->owner, SIGKILL);
			waitpid(run->owner, &st, 0);
			run->owner = 0;
			run->owner_exit = 128 + SIGKILL;
			return fm_err(-ETIMEDOUT, "the owner did not stop in 10 s after SIGTERM "
				      "(killed)");
		}
		usleep(5000);
	}
	run->owner = 0;
	run->owner_exit = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
	if (run->owner_exit)
		return fm_err(-EIO, "the owner ended with %s %d after SIGTERM",
			      WIFEXITED(st) ? "status" : "signal",
			      WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
	return 0;
}

/* ------------------------------------------------- golden and expected */

int demo_golden(const struct demo_cfg *cfg, struct demo_run *run, char *why, size_t cap)
{
	uint64_t seed = demo_seed_source(cfg->seed);
	uint8_t *got = malloc(DEMO_CHUNK), *want = malloc(DEMO_CHUNK);
	int in = -1, out = -1, rc = 0;

	why[0] = 0;
	if (!got || !want) {
		rc = fm_err(-ENOMEM, "golden: out of memory");
		goto out;
	}
	rc = demo_file_new(run, cfg->golden, 0);
	if (rc)
		goto out;
	in = open(cfg->src, O_RDONLY | O_CLOEXEC);
	out = open(cfg->golden, O_WRONLY | O_CLOEXEC);
	if (in < 0 || out < 0) {
		rc = fm_err(-errno, "golden: open: %s", strerror(errno));
		goto out;
	}
	for (uint64_t off = 0; off < cfg->size; off += DEMO_CHUNK) {
		uint64_t len = cfg->size - off < DEMO_CHUNK ? cfg->size - off : DEMO_CHUNK;

		if (pread(in, got, len, (off_t)off) != (ssize_t)len ||
		    pwrite(out, got, len, (off_t)off) != (ssize_t)len) {
			rc = fm_err(-EIO, "golden: copy at %" PRIu64 ": %s", off, strerror(errno));
			goto out;
		}
		demo_fill(want, off, len, seed);
		if (!why[0] && memcmp(got, want, len)) {
			uint64_t i = 0;

			while (got[i] == want[i])
				i++;
			snprintf(why, cap, "the source after phase 1 differs from the pattern "
				 "written at byte %" PRIu64 " (0x%02x, written 0x%02x)", off + i,
				 got[i], want[i]);
		}
	}
out:
	if (in >= 0)
		close(in);
	if (out >= 0)
		close(out);
	free(got);
	free(want);
	return rc;
}

/*
 * expected.img = golden.img + every logged target write.  Each thread's log
 * is applied NEWEST FIRST, a 4 KiB block at a time, and a block once
 * written is never written again: the newest write of a block is the one
 * that counts, so the cost is at most one pattern per block of the volume
 * however many writes were logged.  Threads' stripes are disjoint, so the
 * order between threads does not matter -- checked here, not assumed: a
 * write outside its writer's stripes is a defect of the demo itself.
 */
int demo_expected(const struct demo_cfg *cfg, struct demo_run *run,
		  struct demo_twrite *const *logs, const uint64_t *nlogs, unsigned nthr,
		  char *why, size_t cap)
{
	uint64_t nblk = cfg->size / DEMO_ALIGN;
	uint64_t *done = calloc((nblk + 63) / 64, sizeof(uint64_t));
	uint8_t *map = MAP_FAILED;
	int in = -1, out = -1, rc;

	why[0] = 0;
	if (!done)
		return fm_err(-ENOMEM, "expected: out of memory");
	rc = demo_file_new(run, cfg->expected, cfg->size);
	if (rc)
		goto out;
	in = open(cfg->golden, O_RDONLY | O_CLOEXEC);
	out = open(cfg->expected, O_RDWR | O_CLOEXEC);
	if (in < 0 || out < 0) {
		rc = fm_err(-errno, "expected: open: %s", strerror(errno));
		goto out;
	}
	map = mmap(NULL, cfg->size, PROT_READ | PROT_WRITE, MAP_SHARED, out, 0);
	if (map == MAP_FAILED) {
		rc = fm_err(-errno, "expected: mmap: %s", strerror(errno));
		goto out;
	}
	for (uint64_t off = 0; off < cfg->size; off += DEMO_CHUNK) {
		uint64_t len = cfg->size - off < DEMO_CHUNK ? cfg->size - off : DEMO_CHUNK;

		if (pread(in, map + off, len, (off_t)off) != (ssize_t)len) {
			rc = fm_err(-EIO, "expected: read golden at %" PRIu64 ": %s", off,
				    strerror(errno));
			goto out;
		}
	}
	for (unsigned s = 0; s < nthr; s++) {
		for (uint64_t i = nlogs[s]; i-- > 0;) {
			const struct demo_twrite *w = &logs[s][i];
			uint64_t last = w->offset + w->length - 1;

			if (!w->length || w->length > DEMO_IO_MAX || w->offset % DEMO_ALIGN ||
			    w->length % DEMO_ALIGN || last >= cfg->size ||
			    demo_slot_of(cfg, w->offset) != s || demo_slot_of(cfg, last) != s ||
			    w->offset / DEMO_STRIPE != last / DEMO_STRIPE) {
				snprintf(why, cap, "writer slot %u logged a target write of %" PRIu64
					 " bytes at %" PRIu64 " outside its stripes", s, w->length,
					 w->offset);
				rc = -EBADMSG;
				goto out;
			}
			for (uint64_t b = w->offset / DEMO_ALIGN; b <= last / DEMO_ALIGN; b++) {
				if (done[b / 64] >> (b % 64) & 1)
					continue;
				done[b / 64] |= UINT64_C(1) << (b % 64);
				demo_fill(map + b * DEMO_ALIGN, b * DEMO_ALIGN, DEMO_ALIGN, w->seed);
			}
		}
	}
out:
	if (map != MAP_FAILED)
		munmap(map, cfg->size);
	if (in >= 0)
		close(in);
	if (out >= 0)
		close(out);
	free(done);
	return rc;
}
