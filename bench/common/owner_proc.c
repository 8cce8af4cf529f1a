/* owner_proc.c -- the real flashmeta-owner as a benchmark's child
 * (owner_proc.h). */
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

#include "flashmeta/ctl.h"
#include "flashmeta/error.h"
#include "owner_proc.h"

int fm_bench_owner_dir(struct fm_bench_owner *o, const char *pool_dir, const char *tag,
		       const char *key)
{
	FILE *f;

	o->pid = 0;
	snprintf(o->dir, sizeof(o->dir), "%s/%s-XXXXXX", pool_dir, tag);
	if (!mkdtemp(o->dir)) {
		int rc = -errno;

		o->dir[0] = '\0';
		return fm_err(rc, "mkdtemp in %s", pool_dir);
	}
	snprintf(o->ctl, sizeof(o->ctl), "%s/ctl", o->dir);
	snprintf(o->pool, sizeof(o->pool), "%s/pool", o->dir);
	snprintf(o->keyfile, sizeof(o->keyfile), "%s/key", o->dir);
	f = fopen(o->keyfile, "w");
	if (!f)
		return fm_err(-errno, "key file %s", o->keyfile);
	if (fputs(key, f) < 0) {
		fclose(f);
		return fm_err(-EIO, "key file %s", o->keyfile);
	}
	if (fclose(f))
		return fm_err(-EIO, "key file %s", o->keyfile);
	return 0;
}

void fm_bench_owner_log_tail(const struct fm_bench_owner *o)
{
	char path[320], line[512];
	FILE *f;

	snprintf(path, sizeof(path), "%s/owner.log", o->dir);
	f = fopen(path, "r");
	if (!f)
		return;
	fprintf(stderr, "owner log (%s):\n", path);
	while (fgets(line, sizeof(line), f))
		fprintf(stderr, "  %s", line);
	fclose(f);
}

int fm_bench_owner_start(struct fm_bench_owner *o, const struct fm_bench_owner_cfg *cfg)
{
	char ngrains[32], nmaps[16], lease[16], logpath[320];
	const char *argv[32];
	int k = 0, st;
	pid_t pid;

	snprintf(ngrains, sizeof(ngrains), "%" PRIu64, cfg->max_grains);
	snprintf(nmaps, sizeof(nmaps), "%u", cfg->max_maps);
	snprintf(lease, sizeof(lease), "%u", cfg->lease_ms);
	snprintf(logpath, sizeof(logpath), "%s/owner.log", o->dir);
	argv[k++] = o->bin;
	argv[k++] = "--listen";
	argv[k++] = cfg->addr;
	argv[k++] = "--transport";
	argv[k++] = cfg->provider;
	if (cfg->device) {
		argv[k++] = "--device";
		argv[k++] = cfg->device;
	}
	argv[k++] = "--pmem";
	argv[k++] = o->pool;
	argv[k++] = "--key-file";
	argv[k++] = o->keyfile;
	argv[k++] = "--control";
	argv[k++] = o->ctl;
	argv[k++] = "--lease-ms";
	argv[k++] = lease;
	argv[k++] = "--clients";
	argv[k++] = cfg->clients;
	argv[k++] = "--pool-max-maps";
	argv[k++] = nmaps;
	argv[k++] = "--pool-max-grains";
	argv[k++] = ngrains;
	argv[k++] = "--log-level";
	argv[k++] = cfg->log_level ? cfg->log_level : "warn";
	argv[k] = NULL;
	(void)unlink(o->ctl);
	fflush(NULL);
	pid = fork();
	if (pid < 0)
		return fm_err(-errno, "fork");
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
		if (fm_bench_owner_ctl(o, NULL, 0, "status") == 0)
			return 0;
		if (waitpid(pid, &st, WNOHANG) == pid) {
			o->pid = 0;
			fm_bench_owner_log_tail(o);
			return fm_err(-ECHILD, "the owner (%s) exited with %d before it served",
				      o->bin, WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
		}
		usleep(10000);
	}
	fm_bench_owner_log_tail(o);
	return fm_err(-ETIMEDOUT, "the owner did not answer on %s within 10 s", o->ctl);
}

int fm_bench_owner_ctl(struct fm_bench_owner *o, char *out, size_t cap, const char *fmt, ...)
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

/* the number after `key` on the line starting with `line_prefix`; 0 and
 * *found = false when there is none */
static uint64_t status_num(const char *text, const char *line_prefix, const char *key,
			   bool *found)
{
	const char *l = text;
	size_t pl = strlen(line_prefix);

	while (l && *l) {
		const char *eol = strchr(l, '\n');

		if (!strncmp(l, line_prefix, pl)) {
			const char *k = strstr(l, key);

			if (k && (!eol || k < eol)) {
				if (found)
					*found = true;
				return strtoull(k + strlen(key), NULL, 10);
			}
		}
		l = eol ? eol + 1 : NULL;
	}
	if (found)
		*found = false;
	return 0;
}

int fm_bench_owner_counts(struct fm_bench_owner *o, struct fm_bench_owner_counts *c)
{
	static __thread char out[1 << 16];
	const char *p, *e;
	int rc = fm_bench_owner_ctl(o, out, sizeof(out), "status");

	memset(c, 0, sizeof(*c));
	if (rc)
		return fm_err(rc, "owner status: %.200s", out);
	/* "store PATH persist MODE view V mappings N/M commits N" */
	c->store_commits = status_num(out, "store ", " commits ", NULL);
	/* "locks requests N grants N reclaimed N commits N acks N" */
	c->owner_commits = status_num(out, "locks ", " commits ", NULL);
	c->lock_requests = status_num(out, "locks ", "requests ", NULL);
	c->lock_grants = status_num(out, "locks ", " grants ", NULL);
	c->acks = status_num(out, "locks ", " acks ", NULL);
	/* "split-queries received N refused-busy N read-failures N" */
	c->queries = status_num(out, "split-queries ", "received ", NULL);
	/* newer owners: "group-commit persists N store-commits N drains N ...
	 * thread-commits N thread-persists N" */
	c->have_group = strstr(out, "\ngroup-commit ") != NULL;
	if (c->have_group) {
		c->drains = status_num(out, "group-commit ", " drains ", NULL);
		c->thread_commits = status_num(out, "group-commit ", " thread-commits ", NULL);
	}
	p = strstr(out, " persist ");
	e = p ? strstr(p, " view ") : NULL;
	if (p && e) {
		size_t n = (size_t)(e - p - 9);

		snprintf(c->persist, sizeof(c->persist), "%.*s",
			 (int)(n < sizeof(c->persist) ? n : sizeof(c->persist) - 1), p + 9);
	}
	return 0;
}

int fm_bench_owner_map_split(struct fm_bench_owner *o, uint64_t map_id, uint64_t *split,
			     uint64_t *grains)
{
	char out[1024];
	bool f1, f2;
	int rc = fm_bench_owner_ctl(o, out, sizeof(out), "map-show %" PRIu64, map_id);

	if (rc)
		return fm_err(rc, "owner map-show %" PRIu64 ": %.200s", map_id, out);
	/* "map ID source S target T size N grain G grains N state S
	 *  generation N split N ..." */
	*split = status_num(out, "map ", " split ", &f1);
	*grains = status_num(out, "map ", " grains ", &f2);
	if (!f1 || !f2)
		return fm_err(-EPROTO, "owner map-show %" PRIu64 ": no split/grains in '%.200s'",
			      map_id, out);
	return 0;
}

void fm_bench_owner_stop(struct fm_bench_owner *o)
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
