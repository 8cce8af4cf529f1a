/* owner.c -- the real flashmeta-owner as a child process, configured
 * through its flags and driven through its control socket, the way
 * tests/integration/svc_util.c does.  Its CPU time: bench/common/proc_cpu.h. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench_agent.h"
#include "flashmeta/ctl.h"
#include "flashmeta/error.h"

void owner_dir_make(struct owner *o, const char *pool_dir)
{
	FILE *f;

	snprintf(o->dir, sizeof(o->dir), "%s/fm-bench-agent-XXXXXX", pool_dir);
	if (!mkdtemp(o->dir))
		ba_die(-errno, "mkdtemp in %s", pool_dir);
	snprintf(o->ctl, sizeof(o->ctl), "%s/ctl", o->dir);
	snprintf(o->pool, sizeof(o->pool), "%s/pool", o->dir);
	snprintf(o->keyfile, sizeof(o->keyfile), "%s/key", o->dir);
	f = fopen(o->keyfile, "w");
	if (!f || fputs(BA_KEY, f) < 0 || fclose(f))
		ba_die(-EIO, "key file %s", o->keyfile);
}

static void log_tail(struct owner *o)
{
	char path[320], line[512];
	FILE *f;

	snprintf(path, sizeof(path), "%s/owner.log", o->dir);
	f = fopen(path, "r");
	if (!f)
		return;
	fprintf(stderr, "fm-bench-agent: owner log (%s):\n", path);
	while (fgets(line, sizeof(line), f))
		fprintf(stderr, "  %s", line);
	fclose(f);
}

void owner_start(struct owner *o, const struct ba_opts *op, uint64_t grains)
{
	char ngrains[32], logpath[320];
	const char *argv[32];
	int k = 0, st;
	pid_t pid;

	snprintf(ngrains, sizeof(ngrains), "%" PRIu64, grains);
	snprintf(logpath, sizeof(logpath), "%s/owner.log", o->dir);
	argv[k++] = o->bin;
	argv[k++] = "--listen";
	argv[k++] = op->addr;
	argv[k++] = "--transport";
	argv[k++] = op->provider;
	if (op->device) {
		argv[k++] = "--device";
		argv[k++] = op->device;
	}
	argv[k++] = "--pmem";
	argv[k++] = o->pool;
	argv[k++] = "--key-file";
	argv[k++] = o->keyfile;
	argv[k++] = "--control";
	argv[k++] = o->ctl;
	argv[k++] = "--lease-ms";
	argv[k++] = "3000";
	argv[k++] = "--clients";
	argv[k++] = "1-16";
	argv[k++] = "--pool-max-maps";
	argv[k++] = "4";
	argv[k++] = "--pool-max-grains";
	argv[k++] = ngrains;
	argv[k++] = "--log-level";
	argv[k++] = "warn";
	argv[k] = NULL;
	(void)unlink(o->ctl);
	fflush(NULL);
	pid = fork();
	if (pid < 0)
		ba_die(-errno, "fork");
	if (pid == 0) {
		int fd = open(logpath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		execv(o->bin, (char *const *)argv);
		fprintf(stderr, "exec %s: %s\n", o->bin, strerror(errno));
		_exit(127);
	}
	o->pid = pid;
	for (int i = 0; i < 1000; i++) {
		if (owner_ctl(o, NULL, 0, "status") == 0)
			return;
		if (waitpid(pid, &st, WNOHANG) == pid) {
			o->pid = 0;
			log_tail(o);
			ba_die(-ECHILD, "the owner (%s) exited with %d before it served",
			       o->bin, WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
		}
		usleep(10000);
	}
	log_tail(o);
	ba_die(-ETIMEDOUT, "the owner did not answer on %s within 10 s", o->ctl);
}

int owner_ctl(struct owner *o, char *out, size_t cap, const char *fmt, ...)
{
	char line[512];
	va_list ap;
	size_t n;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line) - 2, fmt, ap);
	va_end(ap);
	n = strlen(line);
	line[n] = '\n';
	line[n + 1] = '\0';
	return fm_ownerd_ctl(o->ctl, line, out, cap, 30000);
}

/* the number after `key` on the line starting with `line_prefix` */
static uint64_t status_num(const char *text, const char *line_prefix, const char *key)
{
	const char *l = text;
	size_t pl = strlen(line_prefix);

	while (l && *l) {
		const char *eol = strchr(l, '\n');

		if (!strncmp(l, line_prefix, pl)) {
			const char *k = strstr(l, key);

			if (k && (!eol || k < eol))
				return strtoull(k + strlen(key), NULL, 10);
		}
		l = eol ? eol + 1 : NULL;
	}
	return 0;
}

void owner_counts(struct owner *o, struct owner_counts *c)
{
	static char out[1 << 16];
	const char *p, *e;
	int rc = owner_ctl(o, out, sizeof(out), "status");

	if (rc)
		ba_die(rc, "owner status: %s", out);
	memset(c, 0, sizeof(*c));
	/* "store PATH persist MODE view V mappings N/M commits N" */
	c->store_commits = status_num(out, "store ", " commits ");
	/* "locks requests N grants N reclaimed N commits N acks N" */
	c->owner_commits = status_num(out, "locks ", " commits ");
	c->lock_requests = status_num(out, "locks ", "requests ");
	/* newer owners: "group-commit persists N store-commits N drains N ...
	 * thread-commits N thread-persists N" */
	c->have_group = strstr(out, "\ngroup-commit ") != NULL;
	if (c->have_group) {
		c->drains = status_num(out, "group-commit ", " drains ");
		c->thread_commits = status_num(out, "group-commit ", " thread-commits ");
	}
	p = strstr(out, " persist ");
	e = p ? strstr(p, " view ") : NULL;
	if (p && e) {
		size_t n = (size_t)(e - p - 9);

		snprintf(c->persist, sizeof(c->persist), "%.*s",
			 (int)(n < sizeof(c->persist) ? n : sizeof(c->persist) - 1), p + 9);
	}
}

void owner_stop(struct owner *o)
{
	char cmd[320];
	int st;

	if (o->pid > 0) {
		kill(o->pid, SIGTERM);
		for (int i = 0; i < 500 && waitpid(o->pid, &st, WNOHANG) == 0; i++)
			usleep(10000);
		if (waitpid(o->pid, &st, WNOHANG) == 0) {
			kill(o->pid, SIGKILL);
			waitpid(o->pid, &st, 0);
		}
		o->pid = 0;
	}
	if (o->dir[0] && !getenv("FM_KEEP")) {
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", o->dir);
		(void)!system(cmd);
		o->dir[0] = '\0';
	}
}
