/* test_operator.c -- operator mistakes against the real programs: what is
 * at the --control path, two owners on one pool, FIFOs and devices named
 * as config or key files, malformed config files, numbers that do not fit,
 * malformed control lines, and the mapping lifecycle's edges: deleting
 * (forced or not), autodelete, a transition a client does not answer, the
 * limits between mappings, consistency groups through the CLI.  Each case runs flashmeta-owner and
 * flashmeta (fork + exec) in a directory of its own, and checks three
 * things: the program refuses with a clear message (or exits at all: a
 * hang is a failure after a few seconds, not a stuck test), nothing it was
 * not asked to touch changed, and a running owner still serves.
 *
 *   test_operator --owner PATH --cli PATH      (or FM_OWNER_BIN, FM_CLI_BIN)
 */
#include <errno.h>
#include <fcntl.h>
#include <regex.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "flashmeta/agent.h"
#include "flashmeta/ctl.h"
#include "flashmeta/error.h"

#define HANG_MS 4000 /* a refusal takes milliseconds; this long is a hang */

static const char *g_owner, *g_cli;
static pid_t g_running[4]; /* owners started and not yet stopped */
static char g_root[256];  /* the run's temp dir */
static const char *g_max_maps = "128"; /* owner_start's --pool-max-maps */
static char g_dir[300];   /* the current case's dir */
static int g_seq;

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* a fresh directory for one case; returns it */
static const char *fresh(const char *name)
{
	snprintf(g_dir, sizeof(g_dir), "%s/%s", g_root, name);
	assert_int_equal(mkdir(g_dir, 0700), 0);
	return g_dir;
}

/* g_dir/name, in a rotating set of buffers (several per expression) */
static const char *at(const char *name)
{
	static char bufs[8][400];
	static unsigned next;
	char *b = bufs[next++ % 8];

	snprintf(b, sizeof(bufs[0]), "%s/%s", g_dir, name);
	return b;
}

static void write_file(const char *path, const void *data, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, len), (ssize_t)len);
	close(fd);
}

/* the file's content (NUL-terminated, at most 64 KiB) in a static buffer */
static const char *slurp(const char *path)
{
	static char buf[65536];
	ssize_t n = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);

	buf[0] = '\0';
	if (fd < 0)
		return buf;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	buf[n > 0 ? n : 0] = '\0';
	return buf;
}

/* fork + exec argv with stdout to `log` and stderr to `errlog` (NULL: to
 * `log` as well), stdin /dev/null */
static pid_t spawn2(char *const argv[], const char *log, const char *errlog)
{
	pid_t pid;

	fflush(NULL);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		int in = open("/dev/null", O_RDONLY);
		int out = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		int err = errlog ? open(errlog, O_WRONLY | O_CREAT | O_TRUNC, 0600) : out;

		if (in < 0 || out < 0 || err < 0 || dup2(in, 0) < 0 || dup2(out, 1) < 0 ||
		    dup2(err, 2) < 0)
			_exit(126);
		execv(argv[0], argv);
		_exit(127);
	}
	return pid;
}

/* fork + exec argv with stdout and stderr to `log`, stdin /dev/null */
static pid_t spawn(char *const argv[], const char *log)
{
	return spawn2(argv, log, NULL);
}

/* exit status, 128 + signal, or -1 after timeout_ms (then it is killed) */
static int wait_for(pid_t pid, int timeout_ms)
{
	uint64_t end = now_ms() + (uint64_t)timeout_ms;
	int st;

	for (;;) {
		pid_t p = waitpid(pid, &st, WNOHANG);

		if (p == pid)
			return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
		if (now_ms() > end) {
			kill(pid, SIGKILL);
			waitpid(pid, &st, 0);
			fprintf(stderr, "pid %d still running after %d ms: killed\n", (int)pid,
				timeout_ms);
			return -1;
		}
		usleep(5000);
	}
}

static int vrun(const char *log, const char *errlog, const char *prog, va_list ap)
{
	char *argv[40];
	int argc = 0;

	argv[argc++] = (char *)prog;
	while (argc < 39 && (argv[argc] = va_arg(ap, char *)))
		argc++;
	argv[argc] = NULL;
	return wait_for(spawn2(argv, log, errlog), HANG_MS);
}

/* run prog (g_owner or g_cli) with the NULL-terminated arguments; stdout
 * and stderr land in g_dir/log; returns what wait_for returns */
static int run(const char *prog, ...)
{
	va_list ap;
	int rc;

	va_start(ap, prog);
	rc = vrun(at("log"), NULL, prog, ap);
	va_end(ap);
	return rc;
}

/* run, with stdout in g_dir/out and stderr in g_dir/err */
static int run_out_err(const char *prog, ...)
{
	va_list ap;
	int rc;

	va_start(ap, prog);
	rc = vrun(at("out"), at("err"), prog, ap);
	va_end(ap);
	return rc;
}

/* the last run's output holds `needle` (printed when not) */
static int log_has(const char *needle)
{
	const char *log = slurp(at("log"));

	if (strstr(log, needle))
		return 1;
	fprintf(stderr, "expected \"%s\" in the output:\n%s\n", needle, log);
	return 0;
}

struct owner {
	pid_t pid;
	char listen[64], pool[400], ctl[400], key[400], log[400];
};

static void owner_paths(struct owner *o, const char *pool, const char *ctl)
{
	memset(o, 0, sizeof(*o));
	snprintf(o->listen, sizeof(o->listen), "shm:/fm-op-%d-%d", (int)getpid(), ++g_seq);
	snprintf(o->pool, sizeof(o->pool), "%s", at(pool));
	snprintf(o->ctl, sizeof(o->ctl), "%s", at(ctl));
	snprintf(o->key, sizeof(o->key), "%s", at("key"));
	snprintf(o->log, sizeof(o->log), "%s", at("owner.log"));
	write_file(o->key, "operator-test-key", 17);
}

static int ctl(const char *path, char *out, size_t cap, const char *line)
{
	return fm_ownerd_ctl(path, line, out, cap, 10000);
}

/* start an owner on o's paths (+ extra flags) and wait until its control
 * socket answers */
static void owner_start(struct owner *o, const char *extra1, const char *extra2)
{
	char *argv[] = { (char *)g_owner, "--listen", o->listen, "--pmem", o->pool,
			 "--key-file", o->key, "--control", o->ctl, "--lease-ms", "600",
			 "--pool-max-maps", (char *)g_max_maps, "--pool-max-grains", "65536",
			 (char *)extra1, (char *)extra2, NULL };
	uint64_t end = now_ms() + 5000;
	int st;

	o->pid = spawn(argv, o->log);
	for (unsigned i = 0; i < 4; i++)
		if (!g_running[i]) {
			g_running[i] = o->pid;
			break;
		}
	while (ctl(o->ctl, NULL, 0, "status\n") != 0) {
		if (waitpid(o->pid, &st, WNOHANG) == o->pid || now_ms() > end) {
			fprintf(stderr, "owner did not come up:\n%s\n", slurp(o->log));
			fail();
		}
		usleep(10000);
	}
}

/* SIGTERM; the owner must exit 0 */
static void owner_stop(struct owner *o)
{
	for (unsigned i = 0; i < 4; i++)
		if (g_running[i] == o->pid)
			g_running[i] = 0;
	assert_int_equal(kill(o->pid, SIGTERM), 0);
	assert_int_equal(wait_for(o->pid, 5000), 0);
	o->pid = 0;
}

/* after each case: an owner a failed case left running is killed */
static int reap(void **state)
{
	(void)state;
	unsetenv("JOURNAL_STREAM"); /* a failed log case may have left it */
	g_max_maps = "128";
	for (unsigned i = 0; i < 4; i++)
		if (g_running[i]) {
			kill(g_running[i], SIGKILL);
			waitpid(g_running[i], NULL, 0);
			g_running[i] = 0;
		}
	return 0;
}

static void same_inode(const struct stat *a, const char *path)
{
	struct stat b;

	assert_int_equal(lstat(path, &b), 0);
	assert_true(a->st_dev == b.st_dev && a->st_ino == b.st_ino);
}

/* a unix socket file nobody listens on (its process closed it) */
static void make_stale_socket(const char *path)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);

	assert_true(strlen(path) < sizeof(sun.sun_path));
	memcpy(sun.sun_path, path, strlen(path) + 1);
	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sun, sizeof(sun)), 0);
	close(fd);
}

/* a raw control connection */
static int raw_connect(const char *path)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(strlen(path) < sizeof(sun.sun_path));
	memcpy(sun.sun_path, path, strlen(path) + 1);
	assert_true(fd >= 0);
	assert_int_equal(connect(fd, (struct sockaddr *)&sun, sizeof(sun)), 0);
	return fd;
}

/* read until `lines` answers ("ok..." or "error..." lines) arrived; the
 * text in out; returns how many arrived before timeout_ms or EOF */
static int raw_answers(int fd, char *out, size_t cap, int lines, int timeout_ms)
{
	uint64_t end = now_ms() + (uint64_t)timeout_ms;
	size_t used = 0;
	int got = 0;

	out[0] = '\0';
	while (got < lines && now_ms() < end && used < cap - 1) {
		ssize_t n = recv(fd, out + used, cap - 1 - used, MSG_DONTWAIT);

		if (n == 0)
			break;
		if (n < 0) {
			usleep(5000);
			continue;
		}
		used += (size_t)n;
		out[used] = '\0';
		got = 0;
		for (const char *l = out; *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : "")
			if (!strncmp(l, "ok", 2) || !strncmp(l, "error", 5))
				got += strchr(l, '\n') != NULL;
	}
	return got;
}

/* ---- 1. what is at the --control path ---- */

static void control__regular_file__refused_untouched(void **state)
{
	struct owner o;

	(void)state;
	fresh("ctl-file");
	owner_paths(&o, "pool", "precious.txt");
	write_file(o.ctl, "precious data\n", 14);
	assert_int_equal(run(g_owner, "-l", o.listen, "-p", o.pool, "-k", o.key, "-C", o.ctl,
			     NULL), 1);
	assert_true(log_has("a regular file is there; not replaced"));
	assert_string_equal(slurp(o.ctl), "precious data\n");
}

static void control__is_the_pool__pool_kept(void **state)
{
	struct owner o, same;
	char out[4096];

	(void)state;
	fresh("ctl-pool");
	owner_paths(&o, "pool", "ctl");
	owner_start(&o, NULL, NULL);
	assert_int_equal(ctl(o.ctl, out, sizeof(out), "map-create 7 1 2 1048576 4096\n"), 0);
	owner_stop(&o);
	/* --control names the pool itself */
	assert_int_equal(run(g_owner, "-l", o.listen, "-p", o.pool, "-k", o.key, "-C", o.pool,
			     NULL), 1);
	assert_true(log_has("a regular file is there; not replaced"));
	/* the pool is still a pool, with its mapping */
	same = o;
	owner_start(&same, NULL, NULL);
	assert_int_equal(ctl(same.ctl, out, sizeof(out), "map-show 7\n"), 0);
	assert_non_null(strstr(out, "map 7 source 1 target 2"));
	owner_stop(&same);
}

static void control__directory_fifo_symlink__refused_untouched(void **state)
{
	static const struct {
		const char *name, *says;
	} kinds[] = { { "dir", "a directory is there" }, { "fifo", "a FIFO is there" },
		      { "link", "a symbolic link is there" } };
	struct owner o;
	struct stat st;

	(void)state;
	fresh("ctl-kinds");
	owner_paths(&o, "pool", "unused");
	assert_int_equal(mkdir(at("dir"), 0700), 0);
	assert_int_equal(mkfifo(at("fifo"), 0600), 0);
	write_file(at("target"), "x", 1);
	assert_int_equal(symlink(at("target"), at("link")), 0);
	for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
		assert_int_equal(lstat(at(kinds[i].name), &st), 0);
		assert_int_equal(run(g_owner, "-l", o.listen, "-p", o.pool, "-k", o.key, "-C",
				     at(kinds[i].name), NULL), 1);
		assert_true(log_has(kinds[i].says));
		same_inode(&st, at(kinds[i].name));
	}
	assert_string_equal(slurp(at("target")), "x");
}

static void control__stale_socket__replaced(void **state)
{
	struct owner o;
	struct stat st;

	(void)state;
	fresh("ctl-stale");
	owner_paths(&o, "pool", "ctl");
	make_stale_socket(o.ctl);
	owner_start(&o, NULL, NULL);
	assert_true(strstr(slurp(o.log), "stale") != NULL);
	owner_stop(&o);
	/* at exit our own socket goes */
	assert_int_equal(lstat(o.ctl, &st), -1);
	assert_int_equal(errno, ENOENT);
}

/* ---- 2. a second owner: same pool, or the same control path ---- */

static void second_owner__same_pool_same_control__refused_first_untouched(void **state)
{
	struct owner a, b;
	struct stat st;
	char out[4096];

	(void)state;
	fresh("two-same");
	owner_paths(&a, "pool", "ctl");
	owner_start(&a, NULL, NULL);
	assert_int_equal(lstat(a.ctl, &st), 0);
	owner_paths(&b, "pool", "ctl");
	assert_int_equal(run(g_owner, "-l", b.listen, "-p", b.pool, "-k", b.key, "-C", b.ctl,
			     NULL), 1);
	assert_true(log_has("in use by"));
	/* the same pool, another control path: nothing made there either */
	assert_int_equal(run(g_owner, "-l", b.listen, "-p", b.pool, "-k", b.key, "-C",
			     at("ctl2"), NULL), 1);
	assert_true(log_has("in use by"));
	assert_int_equal(access(at("ctl2"), F_OK), -1);
	/* the first owner still answers on its own socket */
	same_inode(&st, a.ctl);
	assert_int_equal(ctl(a.ctl, out, sizeof(out), "status\n"), 0);
	assert_non_null(strstr(out, a.listen));
	owner_stop(&a);
}

static void second_owner__other_pool_same_control__refused_socket_kept(void **state)
{
	struct owner a, b;
	struct stat st;
	char out[4096];

	(void)state;
	fresh("two-ctl");
	owner_paths(&a, "pool-a", "ctl");
	owner_start(&a, NULL, NULL);
	assert_int_equal(lstat(a.ctl, &st), 0);
	owner_paths(&b, "pool-b", "ctl");
	assert_int_equal(run(g_owner, "-l", b.listen, "-p", b.pool, "-k", b.key, "-C", b.ctl,
			     NULL), 1);
	assert_true(log_has("in use by a running owner"));
	same_inode(&st, a.ctl);
	assert_int_equal(ctl(a.ctl, out, sizeof(out), "status\n"), 0);
	assert_non_null(strstr(out, a.listen));
	owner_stop(&a);
}

/* ---- 3. FIFOs and devices as config or key files; bounded config ---- */

static void key_file__fifo__refused_without_hanging(void **state)
{
	struct owner o;

	(void)state;
	fresh("key-fifo");
	owner_paths(&o, "pool", "ctl");
	assert_int_equal(mkfifo(at("fifo"), 0600), 0);
	assert_int_equal(run(g_owner, "-l", o.listen, "-p", o.pool, "-k", at("fifo"), NULL), 2);
	assert_true(log_has("a FIFO, not a regular file"));
	assert_int_equal(run(g_cli, "-a", o.listen, "-k", at("fifo"), "join", NULL), 1);
	assert_true(log_has("a FIFO, not a regular file"));
	assert_int_equal(run(g_cli, "-a", o.listen, "-k", "/dev/zero", "join", NULL), 1);
	assert_true(log_has("a character device, not a regular file"));
	assert_int_equal(access(o.pool, F_OK), -1); /* refused before anything was made */
}

static void config__fifo_and_dev_zero__refused_without_hanging(void **state)
{
	(void)state;
	fresh("cfg-fifo");
	assert_int_equal(mkfifo(at("fifo"), 0600), 0);
	assert_int_equal(run(g_owner, "-c", at("fifo"), NULL), 2);
	assert_true(log_has("a FIFO, not a regular file"));
	assert_int_equal(run(g_owner, "-c", "/dev/zero", NULL), 2);
	assert_true(log_has("a character device, not a regular file"));
	assert_int_equal(run(g_owner, "-c", g_dir, NULL), 2);
	assert_true(log_has("a directory"));
}

static void config__nul_long_line_big_file__refused_naming_the_line(void **state)
{
	static const char nul[] = "# ok\nlease_ms = 1\0" "000\n";
	char line[1500], *big;
	size_t big_len = 70 * 1024;

	(void)state;
	fresh("cfg-bad");
	write_file(at("nul.conf"), nul, sizeof(nul) - 1);
	assert_int_equal(run(g_owner, "-c", at("nul.conf"), NULL), 2);
	assert_true(log_has("nul.conf:2: a NUL byte"));

	/* a line cut in two would set pmem to its first half */
	memset(line, 'x', sizeof(line));
	memcpy(line, "pmem = /", 8);
	line[sizeof(line) - 1] = '\n';
	write_file(at("long.conf"), line, sizeof(line));
	assert_int_equal(run(g_owner, "-c", at("long.conf"), NULL), 2);
	assert_true(log_has("long.conf:1: line of 1499 bytes, at most 1023"));

	big = malloc(big_len);
	assert_non_null(big);
	memset(big, '#', big_len);
	big[big_len - 1] = '\n';
	write_file(at("big.conf"), big, big_len);
	free(big);
	assert_int_equal(run(g_owner, "-c", at("big.conf"), NULL), 2);
	assert_true(log_has("71680 bytes, at most 65536"));
}

/* ---- 4. config messages: their own text, file and line ---- */

static void config__errors__name_file_line_and_key(void **state)
{
	static const char bad_key[] = "listen = shm:/a\n\nbogus = 1\n";
	static const char twice[] = "lease_ms = 1000\n# again:\nlease_ms = 2000\n";
	static const char range[] = "lease_ms = 5\n";

	(void)state;
	fresh("cfg-msg");
	write_file(at("a.conf"), bad_key, sizeof(bad_key) - 1);
	assert_int_equal(run(g_owner, "-c", at("a.conf"), NULL), 2);
	assert_true(log_has("flashmeta-owner: "));
	assert_true(log_has("a.conf:3: unknown key 'bogus'\n"));
	write_file(at("b.conf"), twice, sizeof(twice) - 1);
	assert_int_equal(run(g_owner, "-c", at("b.conf"), NULL), 2);
	assert_true(log_has("b.conf:3: lease_ms given again (first on line 1)"));
	write_file(at("c.conf"), range, sizeof(range) - 1);
	assert_int_equal(run(g_owner, "-c", at("c.conf"), NULL), 2);
	assert_true(log_has("c.conf:1: lease_ms 5: not in 10..600000"));
}

/* ---- 5. numbers: decimal, whole, no sign, in range ---- */

static void cli__numbers__strict(void **state)
{
	static const struct {
		const char *a[4], *says;
	} bad[] = {
		{ { "-i", "4294967297", "join" }, "--id 4294967297: not in 1..65535" },
		{ { "-i", "0", "join" }, "--id 0: not in 1..65535" },
		{ { "-i", "-1", "join" }, "--id '-1': not a decimal number" },
		{ { "-i", "0x2", "join" }, "--id '0x2': not a decimal number" },
		{ { "-i", "99999999999999999999", "join" }, "above 18446744073709551615" },
		{ { "-H", "-1", "lock" }, "--hold '-1': not a decimal number" },
		{ { "show", "abc" }, "MAP 'abc': not a decimal number" },
		{ { "lock", "1", "-2" }, "GRAIN '-2': not a decimal number" },
		{ { "show", "1", "2" }, "MAP required (and nothing else)" },
		{ { "join", "now" }, "takes no argument" },
	};
	struct owner o;

	(void)state;
	fresh("cli-num");
	owner_paths(&o, "pool", "ctl");
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(run(g_cli, "-a", o.listen, "-k", o.key, bad[i].a[0], bad[i].a[1],
				     bad[i].a[2], bad[i].a[3], NULL), 2);
		assert_true(log_has(bad[i].says));
	}
}

static void owner__flags__strict(void **state)
{
	static const struct {
		const char *flag, *value, *says;
	} bad[] = {
		{ "--lease-ms", "0x3e8", "lease_ms '0x3e8': not a decimal number" },
		{ "--lease-ms", "-5", "lease_ms '-5': not a decimal number" },
		{ "--clients", "1--5", "clients: last id '-5': not a decimal number" },
		{ "--clients", "1-65536", "clients: last id 65536: not in 1..65535" },
		{ "--clients", "9-3", "clients 9-3: last below first" },
		{ "--pool-max-maps", "4294967297", "pool_max_maps 4294967297: not in 1..1024" },
		{ "--listen", "", "--listen given twice" },
		{ "--device", "", "--device: device: empty value" },
		{ "--log-level", "loud", "log_level 'loud'" },
	};
	struct owner o;
	char longpath[300];

	(void)state;
	fresh("owner-num");
	owner_paths(&o, "pool", "ctl");
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		const char *l = strcmp(bad[i].flag, "--listen") ? o.listen : "shm:/unused";

		assert_int_equal(run(g_owner, "-l", l, "-p", o.pool, "-k", o.key, bad[i].flag,
				     bad[i].value, NULL), 2);
		assert_true(log_has(bad[i].says));
	}
	/* given twice: neither silently wins */
	assert_int_equal(run(g_owner, "-l", o.listen, "-p", o.pool, "-k", o.key, "--pmem",
			     at("other"), NULL), 2);
	assert_true(log_has("--pmem given twice"));
	/* a control path no sockaddr_un holds: refused before a pool is made */
	memset(longpath, 'c', sizeof(longpath) - 1);
	longpath[sizeof(longpath) - 1] = '\0';
	assert_int_equal(run(g_owner, "-l", o.listen, "-p", o.pool, "-k", o.key, "-C", longpath,
			     NULL), 2);
	assert_true(log_has("a unix socket path holds at most 107"));
	assert_int_equal(access(o.pool, F_OK), -1);
}

/* a flag is taken as it is: '#' is no comment there */
static void owner__hash_in_flag__kept(void **state)
{
	struct owner o;

	(void)state;
	fresh("owner-hash");
	owner_paths(&o, "pool#1", "ctl");
	owner_start(&o, NULL, NULL);
	owner_stop(&o);
	assert_int_equal(access(at("pool#1"), F_OK), 0);
	assert_int_equal(access(at("pool"), F_OK), -1);
}

/* every line of `text` matches `re` (extended); prints the first that
 * does not */
static bool lines_match(const char *text, const char *re)
{
	regex_t rx;
	bool all = true;

	assert_int_equal(regcomp(&rx, re, REG_EXTENDED | REG_NOSUB), 0);
	for (const char *l = text; *l && all;) {
		const char *nl = strchr(l, '\n');
		char line[1024];

		snprintf(line, sizeof(line), "%.*s", nl ? (int)(nl - l) : (int)strlen(l), l);
		if (regexec(&rx, line, 0, NULL, 0)) {
			fprintf(stderr, "line \"%s\" does not match /%s/\n", line, re);
			all = false;
		}
		l = nl ? nl + 1 : l + strlen(l);
	}
	regfree(&rx);
	return all;
}

/* JOURNAL_STREAM naming `path` (created empty), as systemd sets it */
static void journal_is(const char *path)
{
	struct stat st;
	char v[64];

	write_file(path, "", 0);
	assert_int_equal(stat(path, &st), 0);
	snprintf(v, sizeof(v), "%llu:%llu", (unsigned long long)st.st_dev,
		 (unsigned long long)st.st_ino);
	assert_int_equal(setenv("JOURNAL_STREAM", v, 1), 0);
}

/* the owner's log: ISO 8601 UTC with milliseconds on a file or terminal;
 * on the journal's stream the syslog priority instead of a time, also on
 * the errors it prints before its log starts */
static void owner__log__iso_utc_or_journal_priority(void **state)
{
	static const char iso[] = "^flashmeta-owner\\[[0-9]+\\] "
				  "[0-9]{4}-[01][0-9]-[0-3][0-9]T[0-2][0-9]:[0-5][0-9]:[0-6][0-9]"
				  "\\.[0-9]{3}Z (error|warn|info|debug): [^ ]";
	static const char prio[] = "^(<3>error|<4>warn|<6>info|<7>debug): [^ ]";
	struct owner o;
	const char *log, *t;
	struct tm tm = { 0 };
	time_t now = time(NULL), then;

	(void)state;
	fresh("owner-log");
	unsetenv("JOURNAL_STREAM");
	owner_paths(&o, "pool", "ctl");
	owner_start(&o, "--log-level", "debug");
	owner_stop(&o);
	log = slurp(o.log);
	assert_non_null(strstr(log, " info: serving on "));
	assert_true(lines_match(log, iso));
	/* the time is now, in UTC */
	t = strchr(log, ' ') + 1;
	assert_non_null(strptime(t, "%Y-%m-%dT%H:%M:%S", &tm));
	then = timegm(&tm);
	assert_true(then >= now - 60 && then <= now + 60);

	/* stderr is the journal: priorities, no time, no pid */
	journal_is(o.log);
	owner_start(&o, "--log-level", "debug");
	owner_stop(&o);
	log = slurp(o.log);
	assert_non_null(strstr(log, "<6>info: serving on "));
	assert_non_null(strstr(log, "<7>debug: "));
	assert_true(lines_match(log, prio));
	journal_is(at("log"));
	assert_int_equal(run(g_owner, "--lease-ms", "5", "-l", o.listen, NULL), 2);
	assert_true(log_has("<3>flashmeta-owner: --lease-ms: lease_ms 5: not in 10..600000\n"));

	/* JOURNAL_STREAM names another file (a journal the owner's parent
	 * had, say): not ours, the plain form */
	journal_is(at("elsewhere"));
	owner_start(&o, NULL, NULL);
	owner_stop(&o);
	assert_true(lines_match(slurp(o.log), iso));
	assert_int_equal(run(g_owner, "--lease-ms", "5", "-l", o.listen, NULL), 2);
	assert_int_equal(strncmp(slurp(at("log")), "flashmeta-owner: --lease-ms", 27), 0);
	unsetenv("JOURNAL_STREAM");
}

/* ---- 5, 6, 7. the control socket ---- */

static void control__commands__strict(void **state)
{
	static const struct {
		const char *line, *says;
	} bad[] = {
		{ "map-show -5\n", "error EINVAL: map id '-5': not a decimal number" },
		{ "map-start 0x1\n", "error EINVAL: map id '0x1': not a decimal number" },
		{ "map-show 18446744073709551616\n", "error ERANGE: map id" },
		{ "status extra\n", "error EINVAL: usage: status" },
		{ "map-show\n", "error EINVAL: usage: map-show ID" },
		{ "map-create 1 10 20 99999999999999999999\n", "error ERANGE: size" },
		{ "map-create 1 10 20 1048576 4096 9\n", "error EINVAL: usage: map-create" },
		{ "map-create -1 10 20 1048576\n", "error EINVAL: map id '-1'" },
		{ "map-create 1 10 20 1048576 2147483648\n", "error ERANGE: grain 2147483648" },
		{ "map-create 1 10 20 1 2 3\n", "error EINVAL: usage: map-create" },
		{ "map-create 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25 26 27 28 29 30 31 32 33 34\n", "error E2BIG: more than 34 words" },
		{ "map-stop 1\n", "error ENOENT: map 1 unknown" },
		{ "map-rate 1\n", "error EINVAL: usage: map-rate ID RATE" },
		{ "map-rate 1 151\n", "error ERANGE: copy rate 151: not in 0..150" },
		{ "map-rate 1 -1\n", "error EINVAL: copy rate '-1'" },
		{ "map-rate 1 50\n", "error ENOENT: map 1 unknown" },
	};
	struct owner o;
	char out[4096];

	(void)state;
	fresh("ctl-cmds");
	owner_paths(&o, "pool", "ctl");
	owner_start(&o, NULL, NULL);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(ctl(o.ctl, out, sizeof(out), bad[i].line), -EREMOTEIO);
		if (!strstr(out, bad[i].says))
			fprintf(stderr, "'%s' answered '%s'\n", bad[i].line, out);
		assert_non_null(strstr(out, bad[i].says));
	}
	/* the CLI passes "-5" on (options end at COMMAND) */
	assert_int_equal(run(g_cli, "-C", o.ctl, "admin", "map-show", "-5", NULL), 1);
	assert_true(log_has("map id '-5': not a decimal number"));
	/* too long: refused whole, never cut into another command */
	{
		char arg[600];

		memset(arg, '1', sizeof(arg) - 1);
		arg[sizeof(arg) - 1] = '\0';
		assert_int_equal(run(g_cli, "-C", o.ctl, "admin", "map-start", arg, NULL), 2);
		assert_true(log_has("command longer than 511 bytes"));
	}
	owner_stop(&o);
}

/* the number after " key " in a record line (fails the case when absent);
 * `last`: its last occurrence */
static uint64_t field(const char *text, const char *key, bool last)
{
	char pat[64];
	const char *p = NULL, *q = text;

	snprintf(pat, sizeof(pat), " %s ", key);
	while ((q = strstr(q, pat))) {
		p = q;
		q++;
		if (!last)
			break;
	}
	if (!p || p[strlen(pat)] < '0' || p[strlen(pat)] > '9') {
		fprintf(stderr, "no number for '%s' in:\n%s\n", key, text);
		fail();
	}
	return strtoull(p + strlen(pat), NULL, 10);
}

/* the file's content holds `needle`, within timeout_ms */
static bool file_gets(const char *path, const char *needle, int timeout_ms)
{
	uint64_t end = now_ms() + (uint64_t)timeout_ms;

	while (!strstr(slurp(path), needle)) {
		if (now_ms() > end) {
			fprintf(stderr, "expected \"%s\" in %s:\n%s\n", needle, path, slurp(path));
			return false;
		}
		usleep(20000);
	}
	return true;
}

/* introspection: who holds a grain lock (and since when, on the holder's
 * side), who waits for it and how long, every session's lease and age,
 * and the answers as JSON */
static void control__introspection__lock_holder_sessions_json(void **state)
{
	struct owner o;
	char out[4096];
	char *lock_argv[] = { (char *)g_cli, "-a", NULL, "-k", NULL, "-i", "3", "lock", "1", "5",
			      NULL };
	char *wait_argv[] = { (char *)g_cli, "-a", NULL, "-k", NULL, "-i", "4", "-H", "0", "lock",
			      "1", "5", NULL };
	uint64_t end, age, waited, hsince, hheld, wsince;
	const char *j;
	pid_t holder, waiter;

	(void)state;
	fresh("ctl-intro");
	owner_paths(&o, "pool", "ctl");
	owner_start(&o, NULL, NULL);
	assert_int_equal(ctl(o.ctl, out, sizeof(out), "map-create 1 10 11 16777216\n"), 0);
	/* the owner answers JSON itself: one line, then the usual framing;
	 * also for a deferred command (its answer comes after the revoke) */
	assert_int_equal(ctl(o.ctl, out, sizeof(out), "json map-prepare 1\n"), 0);
	assert_non_null(strstr(out, "{\"records\": [{\"record\": \"map\", \"map\": 1, "));
	assert_non_null(strstr(out, "\"state\": \"prepared\""));
	assert_non_null(strstr(out, "], \"ok\": true}\nok\n"));
	assert_int_equal(ctl(o.ctl, out, sizeof(out), "json map-show 7\n"), -EREMOTEIO);
	assert_non_null(strstr(out, "\"ok\": false, \"error\": \"ENOENT\""));
	assert_int_equal(ctl(o.ctl, out, sizeof(out), "map-start 1\n"), 0);
	assert_null(strstr(out, "{")); /* text without "json" */
	assert_int_equal(ctl(o.ctl, out, sizeof(out), "lock-show 1 5\n"), 0);
	assert_non_null(strstr(out, "state free client 0"));
	assert_int_equal(field(out, "waiters-queued", false), 0);
	assert_int_equal(field(out, "holder-session-age-ms", false), 0);
	/* client 3 holds grain 5 until SIGINT; once it printed what it
	 * holds, its handler is in place */
	lock_argv[2] = wait_argv[2] = o.listen;
	lock_argv[4] = wait_argv[4] = o.key;
	holder = spawn(lock_argv, at("holder.log"));
	assert_true(file_gets(at("holder.log"), "held map 1 first 5 last 5 word-index 5 since-ms ",
			      5000));
	assert_int_equal(ctl(o.ctl, out, sizeof(out), "lock-show 1 5\n"), 0);
	assert_non_null(strstr(out, "state held client 3 epoch"));
	assert_non_null(strstr(out, "holder-session active holder-lease-left-ms"));
	assert_true(field(out, "holder-session-age-ms", false) > 0);
	assert_int_equal(field(out, "waiters-queued", false), 0); /* uncontended: unseen */
	assert_int_equal(field(out, "oldest-waiter-ms", false), 0);
	/* client 4 asks for it: the owner queues its LOCK_REQUEST */
	waiter = spawn(wait_argv, at("waiter.log"));
	end = now_ms() + 5000;
	do {
		usleep(20000);
		assert_int_equal(ctl(o.ctl, out, sizeof(out), "lock-show 1 5\n"), 0);
	} while (field(out, "waiters-queued", false) == 0 && now_ms() < end);
	assert_int_equal(field(out, "waiters-queued", false), 1);
	assert_int_equal(field(out, "oldest-waiter-client", false), 4);
	waited = field(out, "oldest-waiter-ms", false);
	age = field(out, "holder-session-age-ms", false);
	usleep(100000);
	assert_int_equal(ctl(o.ctl, out, sizeof(out), "lock-show 1 5\n"), 0);
	assert_non_null(strstr(out, "state held client 3 epoch"));
	assert_non_null(strstr(out, " waiters 1 ")); /* armed: the holder must tell */
	assert_int_equal(field(out, "waiters-queued", false), 1);
	assert_true(field(out, "oldest-waiter-ms", false) >= waited + 100);
	assert_true(field(out, "oldest-waiter-ms", false) > 0);
	assert_true(field(out, "holder-session-age-ms", false) >= age + 100);
	/* the same as JSON through the CLI: every field, numbers as numbers */
	assert_int_equal(run(g_cli, "-C", o.ctl, "--json", "admin", "lock-show", "1", "5", NULL),
			 0);
	assert_true(log_has("\"record\": \"lock\", \"map\": 1, \"grain\": 5"));
	assert_true(log_has("\"state\": \"held\", \"client\": 3"));
	assert_true(log_has("\"holder-session\": \"active\", \"holder-lease-left-ms\": "));
	assert_true(log_has(", \"waiters-queued\": 1, \"oldest-waiter-client\": 4, "
			    "\"oldest-waiter-ms\": "));
	assert_true(log_has("\"ok\": true}"));
	j = strstr(slurp(at("log")), "\"oldest-waiter-ms\": ");
	assert_non_null(j);
	assert_true(j[20] >= '1' && j[20] <= '9');
	j = strstr(slurp(at("log")), "\"holder-session-age-ms\": ");
	assert_non_null(j);
	assert_true(j[25] >= '1' && j[25] <= '9');
	assert_int_equal(run(g_cli, "-C", o.ctl, "--json", "admin", "sessions", NULL), 0);
	assert_true(log_has("\"record\": \"session\""));
	assert_true(log_has("\"client\": 3"));
	assert_true(log_has("\"state\": \"active\""));
	assert_true(log_has("\"lock-waits\": 1, \"age-ms\": "));
	/* errors: in the object, and the exit status */
	assert_int_equal(run(g_cli, "-C", o.ctl, "--json", "admin", "map-show", "9", NULL), 1);
	assert_true(log_has("\"ok\": false, \"error\": \"ENOENT\", \"message\": \"map 9 unknown\""));
	assert_int_equal(ctl(o.ctl, out, sizeof(out), "lock-show 1 256\n"), -EREMOTEIO);
	assert_non_null(strstr(out, "error ERANGE"));
	assert_int_equal(ctl(o.ctl, out, sizeof(out), "lock-show 2 0\n"), -EREMOTEIO);
	assert_non_null(strstr(out, "error ENOENT"));
	/* the holder lets go and leaves: the owner hands the word to client
	 * 4, which took it no earlier than the holder's last word on it */
	assert_int_equal(kill(holder, SIGINT), 0);
	assert_int_equal(wait_for(holder, 5000), 0);
	assert_int_equal(wait_for(waiter, 10000), 0);
	hsince = field(slurp(at("holder.log")), "since-ms", true);
	hheld = field(slurp(at("holder.log")), "held-ms", true);
	assert_true(hheld >= 100);
	assert_non_null(strstr(slurp(at("holder.log")), "unlocked"));
	assert_non_null(strstr(slurp(at("waiter.log")), "locked map 1 grain 5\n"
			       "held map 1 first 5 last 5 word-index 5 since-ms "));
	wsince = field(slurp(at("waiter.log")), "since-ms", false);
	assert_true(wsince >= hsince + hheld);
	assert_int_equal(ctl(o.ctl, out, sizeof(out), "lock-show 1 5\n"), 0);
	assert_non_null(strstr(out, "state free"));
	assert_int_equal(field(out, "waiters-queued", false), 0);
	assert_int_equal(field(out, "oldest-waiter-ms", false), 0);
	owner_stop(&o);
}

/* flashmeta --json on the client commands: one JSON object per result on
 * stdout as it happens, then {"ok": ...}; messages stay on stderr; a bad
 * command line prints no JSON (exit 2) */
static void cli__json__one_object_per_result(void **state)
{
	static const char obj[] = "^\\{\"(record|ok)\": .*\\}$";
	struct owner o;
	char out[4096];
	const char *s;

	(void)state;
	fresh("cli-json");
	owner_paths(&o, "pool", "ctl");
	owner_start(&o, NULL, NULL);
	assert_int_equal(ctl(o.ctl, out, sizeof(out), "map-create 1 10 11 16777216\n"), 0);
	assert_int_equal(ctl(o.ctl, out, sizeof(out), "map-prepare 1\n"), 0);
	assert_int_equal(ctl(o.ctl, out, sizeof(out), "map-start 1\n"), 0);

	assert_int_equal(run_out_err(g_cli, "-a", o.listen, "-k", o.key, "--json", "split", "1",
				     "5", NULL), 0);
	assert_string_equal(slurp(at("out")), "{\"record\": \"split\", \"map\": 1, \"grain\": 5, "
					      "\"already-split\": 0}\n{\"ok\": true}\n");
	assert_string_equal(slurp(at("err")), "");
	assert_int_equal(run_out_err(g_cli, "-a", o.listen, "-k", o.key, "--json", "split", "1",
				     "5", NULL), 0);
	assert_non_null(strstr(slurp(at("out")), "\"grain\": 5, \"already-split\": 1}\n"));

	assert_int_equal(run_out_err(g_cli, "-a", o.listen, "-k", o.key, "-i", "2", "--json",
				     "join", NULL), 0);
	s = slurp(at("out"));
	assert_true(lines_match(s, obj));
	assert_non_null(strstr(s, "{\"record\": \"joined\", \"addr\": \""));
	assert_non_null(strstr(s, "\", \"client\": 2, \"transport\": \"shm\", \"mappings\": 1}\n"
				  "{\"record\": \"session\", \"token\": \"0x"));
	assert_non_null(strstr(s, ", \"lease-ms\": 600, \"lease-left-ms\": "));
	assert_non_null(strstr(s, "{\"record\": \"map\", \"map\": 1, \"state\": \"copying\", "
				  "\"generation\": 1, \"grain\": 65536, \"grains\": 256, "
				  "\"granted\": 1}\n{\"ok\": true}\n"));

	assert_int_equal(run_out_err(g_cli, "-a", o.listen, "-k", o.key, "--json", "show", "1",
				     NULL), 0);
	s = slurp(at("out"));
	assert_true(lines_match(s, obj));
	assert_non_null(strstr(s, "{\"record\": \"bitmap\", \"map\": 1, \"split\": 1, "
				  "\"grains\": 256}\n"));
	assert_non_null(strstr(s, "{\"record\": \"cache\", \"ranges\": "));

	assert_int_equal(run_out_err(g_cli, "-a", o.listen, "-k", o.key, "--json", "-H", "0",
				     "lock", "1", "7", NULL), 0);
	s = slurp(at("out"));
	assert_true(lines_match(s, obj));
	assert_non_null(strstr(s, "{\"record\": \"locked\", \"map\": 1, \"grain\": 7, "
				  "\"already-split\": 0}\n{\"record\": \"held\", \"map\": 1, "
				  "\"first\": 7, \"last\": 7, \"word-index\": 7, \"since-ms\": "));
	assert_non_null(strstr(s, ", \"token\": \"0x"));
	assert_non_null(strstr(s, "{\"record\": \"unlocked\", \"map\": 1, \"grain\": 7}\n"
				  "{\"ok\": true}\n"));
	assert_int_equal(run_out_err(g_cli, "-a", o.listen, "-k", o.key, "--json", "unlock", "1",
				     "7", NULL), 0);
	assert_non_null(strstr(slurp(at("out")), "{\"record\": \"unlocked\", \"map\": 1, "
						  "\"grain\": 7}\n{\"ok\": true}\n"));

	/* failures: the error object last, the message on stderr too */
	assert_int_equal(run_out_err(g_cli, "-a", o.listen, "-k", o.key, "--json", "show", "9",
				     NULL), 1);
	assert_string_equal(slurp(at("out")), "{\"ok\": false, \"error\": \"ENOENT\", "
					      "\"message\": \"map 9 unknown to this session\"}\n");
	assert_non_null(strstr(slurp(at("err")), "flashmeta show: map 9 unknown"));
	assert_int_equal(run_out_err(g_cli, "-a", o.listen, "-k", at("nokey"), "--json", "join",
				     NULL), 1);
	assert_non_null(strstr(slurp(at("out")), "{\"ok\": false, \"error\": \"ENOENT\", "));
	assert_int_equal(run_out_err(g_cli, "-C", at("nosock"), "--json", "admin", "status",
				     NULL), 1);
	assert_non_null(strstr(slurp(at("out")), "{\"records\": [], \"ok\": false, "
						  "\"error\": \"ENOENT\", \"message\": "));
	assert_int_equal(run_out_err(g_cli, "-a", o.listen, "-k", o.key, "--json", "show",
				     NULL), 2);
	assert_string_equal(slurp(at("out")), "");
	/* without --json: the text as before */
	assert_int_equal(run_out_err(g_cli, "-a", o.listen, "-k", o.key, "split", "1", "6",
				     NULL), 0);
	assert_string_equal(slurp(at("out")), "map 1 grain 6 split (durable)\n");
	owner_stop(&o);
}

static void control__nul_byte__answered_and_next_line_runs(void **state)
{
	static const char lines[] = "status\0junk\nmap-show 3\n";
	struct owner o;
	char out[8192];
	int fd;

	(void)state;
	fresh("ctl-nul");
	owner_paths(&o, "pool", "ctl");
	owner_start(&o, NULL, NULL);
	assert_int_equal(ctl(o.ctl, NULL, 0, "map-create 3 1 2 1048576\n"), 0);
	fd = raw_connect(o.ctl);
	assert_int_equal(send(fd, lines, sizeof(lines) - 1, 0), (ssize_t)sizeof(lines) - 1);
	assert_int_equal(raw_answers(fd, out, sizeof(out), 2, 3000), 2);
	assert_non_null(strstr(out, "error EINVAL: a NUL byte in the command line\n"));
	assert_non_null(strstr(out, "map 3 source 1 target 2"));
	close(fd);
	owner_stop(&o);
}

static void control__long_line__error_and_closed(void **state)
{
	struct owner o;
	char line[700], out[512];
	int fd;

	(void)state;
	fresh("ctl-long");
	owner_paths(&o, "pool", "ctl");
	owner_start(&o, NULL, NULL);
	fd = raw_connect(o.ctl);
	memset(line, 'a', sizeof(line));
	assert_int_equal(send(fd, line, sizeof(line), MSG_NOSIGNAL), (ssize_t)sizeof(line));
	assert_int_equal(raw_answers(fd, out, sizeof(out), 1, 3000), 1);
	assert_non_null(strstr(out, "error EINVAL: line too long"));
	close(fd);
	assert_int_equal(ctl(o.ctl, NULL, 0, "status\n"), 0);
	owner_stop(&o);
}

/* status lists every mapping: an answer over 8 KiB arrives whole */
static void control__status_of_many_maps__whole(void **state)
{
	struct owner o;
	int maps = 0;

	(void)state;
	fresh("ctl-many");
	owner_paths(&o, "pool", "ctl");
	owner_start(&o, NULL, NULL);
	for (int i = 1; i <= 100; i++) {
		char line[80];

		snprintf(line, sizeof(line), "map-create %d %d %d 262144 4096\n", i, 2 * i,
			 2 * i + 1);
		assert_int_equal(ctl(o.ctl, NULL, 0, line), 0);
	}
	assert_int_equal(run(g_cli, "-C", o.ctl, "admin", "status", NULL), 0);
	for (const char *p = slurp(at("log")); (p = strstr(p, "\nmap ")); p++)
		maps++;
	assert_int_equal(maps, 100);
	owner_stop(&o);
}

/* ---- idle control connections; the socket at exit; control before pool ---- */

/* 16 idle connections: a 17th (status) takes the longest-idle one's slot */
static void control__slots_full_of_idle__longest_idle_evicted(void **state)
{
	struct owner o;
	char out[4096];
	int fds[16];

	(void)state;
	fresh("ctl-evict");
	owner_paths(&o, "pool", "ctl");
	owner_start(&o, NULL, NULL);
	for (int i = 0; i < 16; i++) {
		fds[i] = raw_connect(o.ctl);
		usleep(20000); /* an order of idleness the owner can see */
	}
	assert_int_equal(ctl(o.ctl, out, sizeof(out), "status\n"), 0);
	/* the first (longest idle) was told and closed; the last still works */
	assert_int_equal(raw_answers(fds[0], out, sizeof(out), 1, 3000), 1);
	assert_non_null(strstr(out, "error ETIMEDOUT: closed, idle for"));
	assert_int_equal(send(fds[15], "map-show 1\n", 11, MSG_NOSIGNAL), 11);
	assert_int_equal(raw_answers(fds[15], out, sizeof(out), 1, 3000), 1);
	assert_non_null(strstr(out, "error ENOENT: map 1 unknown"));
	for (int i = 0; i < 16; i++)
		close(fds[i]);
	owner_stop(&o);
}

static void control__idle__closed_after_control_idle_ms(void **state)
{
	struct owner o;
	char out[512];
	uint64_t t0;
	int fd;

	(void)state;
	fresh("ctl-idle");
	owner_paths(&o, "pool", "ctl");
	owner_start(&o, "--control-idle-ms", "300");
	fd = raw_connect(o.ctl);
	t0 = now_ms();
	assert_int_equal(raw_answers(fd, out, sizeof(out), 1, 5000), 1);
	assert_true(now_ms() - t0 >= 250);
	assert_non_null(strstr(out, "error ETIMEDOUT: closed, idle for"));
	assert_int_equal(recv(fd, out, sizeof(out), 0), 0); /* closed */
	close(fd);
	owner_stop(&o);
}

/* an operator replaced the socket while the owner ran: left alone at exit */
static void control__replaced_while_running__left_at_exit(void **state)
{
	struct owner o;

	(void)state;
	fresh("ctl-replaced");
	owner_paths(&o, "pool", "ctl");
	owner_start(&o, NULL, NULL);
	assert_int_equal(unlink(o.ctl), 0);
	write_file(o.ctl, "not yours\n", 10);
	owner_stop(&o);
	assert_string_equal(slurp(o.ctl), "not yours\n");
}

/* a refused --control comes before the pool: none created, none written */
static void control__refused__no_pool_made(void **state)
{
	struct owner o;

	(void)state;
	fresh("ctl-first");
	owner_paths(&o, "pool", "file");
	write_file(o.ctl, "x", 1);
	assert_int_equal(run(g_owner, "-l", o.listen, "-p", o.pool, "-k", o.key, "-C", o.ctl,
			     NULL), 1);
	assert_true(log_has("a regular file is there; not replaced"));
	assert_int_equal(access(o.pool, F_OK), -1);
}

/*
 * A client that renews its lease but never answers a release: a child
 * process whose agent (client `client`) opens an I/O bracket on `map` and
 * keeps it open until told otherwise.  *to: write a byte to end the
 * bracket (the child then lives on, still in its lease); *from: one byte
 * 'B' once the bracket is open.  Killed by reap if a case fails.
 */
static pid_t bracket_holder(const struct owner *o, uint32_t client, uint64_t map, int *to,
			    int *from)
{
	int down[2], up[2];
	pid_t pid;

	assert_int_equal(pipe(down), 0);
	assert_int_equal(pipe(up), 0);
	fflush(NULL);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct fm_agent_cfg cfg = { .addr = o->listen, .client_id = client,
					    .key = "operator-test-key", .key_len = 17 };
		struct fm_agent *a = NULL;
		struct fm_agent_io io;
		char c;

		close(down[1]);
		close(up[0]);
		if (fm_agent_new(&a, &cfg) || fm_agent_wait_active(a, 5000) ||
		    fm_agent_io_begin(a, map, &io))
			_exit(3);
		if (write(up[1], "B", 1) != 1 || read(down[0], &c, 1) != 1)
			_exit(4);
		fm_agent_io_end(a, &io);
		for (;;)
			pause(); /* in its lease, holding nothing */
	}
	close(down[0]);
	close(up[1]);
	for (unsigned i = 0; i < 4; i++)
		if (!g_running[i]) {
			g_running[i] = pid;
			break;
		}
	*to = down[1];
	*from = up[0];
	return pid;
}

static void child_end(pid_t pid)
{
	for (unsigned i = 0; i < 4; i++)
		if (g_running[i] == pid)
			g_running[i] = 0;
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
}

/* map-delete: idle_or_copied and stopped mappings go, others only with
 * force (and say why); the slot is free and the id reusable; durable */
static void control__delete__idle_stopped_or_forced(void **state)
{
	struct owner o;
	char out[4096];

	(void)state;
	fresh("ctl-delete");
	owner_paths(&o, "pool", "ctl");
	owner_start(&o, NULL, NULL);
	assert_int_equal(ctl(o.ctl, out, sizeof(out), "map-create 1 10 20 1048576 4096\n"), 0);
	assert_int_equal(ctl(o.ctl, out, sizeof(out), "map-create 2 30 40 1048576 4096\n"), 0);
	assert_int_equal(ctl(o.ctl, out, sizeof(out), "map-create 3 50 60 1048576 4096\n"), 0);
	assert_int_equal(ctl(o.ctl, out, sizeof(out), "map-delete 1\n"), 0);
	assert_non_null(strstr(out, "deleted map 1 state idle_or_copied forced 0 autodelete 0\n"));
	assert_int_equal(ctl(o.ctl, out, sizeof(out), "map-show 1\n"), -EREMOTEIO);
	assert_non_null(strstr(out, "error ENOENT: map 1 unknown"));
	assert_int_equal(ctl(o.ctl, out, sizeof(out), "map-delete 1\n"), -EREMOTEIO);
	assert_non_null(strstr(out, "error ENOENT: map 1 unknown"));
	/* copying: refused, naming the state and the way out */
	assert_int_equal(ctl(o.ctl, out, sizeof(out), "map-prepare 2\n"), 0);
	assert_int_equal(ctl(o.ctl, out, sizeof(out), "map-delete 2\n"), -EREMOTEIO);
	assert_non_null(strstr(out, "error EBUSY: map 2 is prepared: map-delete takes a mapping "
			       "that is idle_or_copied or stopped"));
	assert_int_equal(ctl(o.ctl, out, sizeof(out), "map-start 2\n"), 0);
	assert_int_equal(ctl(o.ctl, out, sizeof(out), "map-delete 2\n"), -EREMOTEIO);
	assert_non_null(strstr(out, "error EBUSY: map 2 is copying"));
	assert_non_null(strstr(out, "map-delete 2 force (its target is then no point-in-time "
			       "image)"));
	assert_int_equal(ctl(o.ctl, out, sizeof(out), "map-delete 2 now\n"), -EREMOTEIO);
	assert_non_null(strstr(out, "error EINVAL: usage: map-delete ID [force]"));
	assert_int_equal(ctl(o.ctl, out, sizeof(out), "map-delete 2 force 1\n"), -EREMOTEIO);
	assert_non_null(strstr(out, "error EINVAL: usage: map-delete ID [force]"));
	assert_int_equal(ctl(o.ctl, out, sizeof(out), "map-show 2\n"), 0);
	assert_non_null(strstr(out, "state copying"));
	/* forced: stopped durably first, then deleted */
	assert_int_equal(ctl(o.ctl, out, sizeof(out), "map-delete 2 force\n"), 0);
	assert_non_null(strstr(out, "deleted map 2 state stopped forced 1 autodelete 0\n"));
	assert_true(file_gets(o.log, "map 2: forced delete while copying: target volume 40 "
			      "will be no point-in-time image", 2000));
	/* stopped: no force needed; through the CLI, with --json */
	assert_int_equal(ctl(o.ctl, out, sizeof(out), "map-prepare 3\n"), 0);
	assert_int_equal(ctl(o.ctl, out, sizeof(out), "map-stop 3\n"), 0);
	assert_int_equal(run(g_cli, "-C", o.ctl, "--json", "admin", "map-delete", "3", NULL), 0);
	assert_true(log_has("{\"record\": \"deleted\", \"map\": 3, \"state\": \"stopped\", "
			    "\"forced\": 0, \"autodelete\": 0}"));
	assert_int_equal(ctl(o.ctl, out, sizeof(out), "status\n"), 0);
	assert_non_null(strstr(out, " mappings 0/128 "));
	/* the ids and volumes are free again, and it all survives a restart */
	assert_int_equal(ctl(o.ctl, out, sizeof(out), "map-create 2 30 40 2097152 4096\n"), 0);
	owner_stop(&o);
	owner_start(&o, NULL, NULL);
	assert_int_equal(ctl(o.ctl, out, sizeof(out), "status\n"), 0);
	assert_non_null(strstr(out, " mappings 1/128 "));
	assert_non_null(strstr(out, "map 2 source 30 target 40 size 2097152 "));
	assert_int_equal(ctl(o.ctl, out, sizeof(out), "map-show 1\n"), -EREMOTEIO);
	owner_stop(&o);
}

/* autodelete: a mapping whose copy completes (here: every grain split by
 * foreground writes, `flashmeta split`) is deleted; without the flag it
 * stays, idle_or_copied */
static void control__autodelete__deleted_when_copy_completes(void **state)
{
	struct owner o;
	char out[4096], g[4];
	uint64_t end;

	(void)state;
	fresh("ctl-autodelete");
	owner_paths(&o, "pool", "ctl");
	owner_start(&o, NULL, NULL);
	assert_int_equal(ctl(o.ctl, out, sizeof(out), "map-create 1 10 20 16384 4096 "
			     "autodelete\n"), 0);
	assert_int_equal(ctl(o.ctl, out, sizeof(out), "map-create 2 30 40 16384 autodelete\n"),
			 0);
	assert_int_equal(ctl(o.ctl, out, sizeof(out), "map-show 2\n"), 0);
	assert_non_null(strstr(out, " grain 65536 ")); /* GRAIN may be left out */
	assert_non_null(strstr(out, " autodelete 1 group 0 reversed 0 "));
	assert_int_equal(ctl(o.ctl, out, sizeof(out), "map-create 3 50 60 16384 4096\n"), 0);
	assert_int_equal(ctl(o.ctl, out, sizeof(out), "map-show 3\n"), 0);
	assert_non_null(strstr(out, " autodelete 0 group 0 reversed 0 "));
	assert_int_equal(ctl(o.ctl, out, sizeof(out), "map-autodelete 2 off\n"), 0);
	assert_non_null(strstr(out, " autodelete 0 group 0 reversed 0 "));

	assert_int_equal(ctl(o.ctl, out, sizeof(out), "map-autodelete 2 yes\n"), -EREMOTEIO);
	assert_non_null(strstr(out, "error EINVAL: usage: map-autodelete ID on|off"));
	assert_int_equal(ctl(o.ctl, out, sizeof(out), "map-autodelete 9 on\n"), -EREMOTEIO);
	assert_non_null(strstr(out, "error ENOENT: map 9 unknown"));
	assert_int_equal(run(g_cli, "-C", o.ctl, "admin", "map-autodelete", "2", "on", NULL), 0);
	assert_true(log_has(" autodelete 1 group 0 reversed 0 "));
	for (int m = 1; m <= 3; m += 2) {
		snprintf(out, sizeof(out), "map-prepare %d\n", m);
		assert_int_equal(ctl(o.ctl, NULL, 0, out), 0);
		snprintf(out, sizeof(out), "map-start %d\n", m);
		assert_int_equal(ctl(o.ctl, NULL, 0, out), 0);
		for (int i = 0; i < 4; i++) {
			snprintf(g, sizeof(g), "%d", i);
			assert_int_equal(run(g_cli, "-a", o.listen, "-k", o.key, "-i", "1", "split",
					     m == 1 ? "1" : "3", g, NULL), 0);
		}
	}
	end = now_ms() + 5000;
	while (ctl(o.ctl, out, sizeof(out), "map-show 1\n") == 0 && now_ms() < end)
		usleep(20000);
	assert_non_null(strstr(out, "error ENOENT: map 1 unknown"));
	assert_true(file_gets(o.log, "map 1: deleted (idle_or_copied, autodelete)", 2000));
	end = now_ms() + 5000;
	do {
		assert_int_equal(ctl(o.ctl, out, sizeof(out), "map-show 3\n"), 0);
	} while (!strstr(out, "idle_or_copied") && now_ms() < end && !usleep(20000));
	assert_non_null(strstr(out, "state idle_or_copied"));
	assert_int_equal(ctl(o.ctl, out, sizeof(out), "map-show 2\n"), 0); /* never started */
	/* kept in the pool (format 1.2): an owner restart keeps it */
	owner_stop(&o);
	owner_start(&o, NULL, NULL);
	assert_int_equal(ctl(o.ctl, out, sizeof(out), "map-show 2\n"), 0);
	assert_non_null(strstr(out, " autodelete 1 group 0 reversed 0 "));
	assert_int_equal(ctl(o.ctl, out, sizeof(out), "map-show 3\n"), 0);
	assert_non_null(strstr(out, " autodelete 0 group 0 reversed 0 "));
	owner_stop(&o);
}

/* A client renews its lease but never releases (its I/O never ends): the
 * transition fails ETIMEDOUT naming it and changes nothing; once the I/O
 * ends the client is served again and the same command succeeds */
static void control__transition_timeout__names_client_changes_nothing(void **state)
{
	struct owner o;
	char out[4096], c;
	int to, from;
	pid_t holder;
	uint64_t t0;

	(void)state;
	fresh("ctl-timeout");
	owner_paths(&o, "pool", "ctl");
	owner_start(&o, "--transition-timeout-ms", "400");
	assert_int_equal(ctl(o.ctl, out, sizeof(out), "map-create 1 10 20 1048576 4096\n"), 0);
	holder = bracket_holder(&o, 7, 1, &to, &from);
	assert_int_equal(read(from, &c, 1), 1);
	t0 = now_ms();
	assert_int_equal(ctl(o.ctl, out, sizeof(out), "map-prepare 1\n"), -EREMOTEIO);
	assert_true(now_ms() - t0 >= 400);
	assert_non_null(strstr(out, "error ETIMEDOUT: map 1: map-prepare: not released after "
			       "400 ms by client 7 (active); nothing changed, the mapping stays "
			       "idle_or_copied"));
	assert_int_equal(ctl(o.ctl, out, sizeof(out), "map-show 1\n"), 0);
	assert_non_null(strstr(out, "state idle_or_copied generation 0 "));
	assert_non_null(strstr(out, " revoking 0 "));
	/* a delete waits for the client the same way, and the mapping stays */
	assert_int_equal(ctl(o.ctl, out, sizeof(out), "map-delete 1\n"), -EREMOTEIO);
	assert_non_null(strstr(out, "error ETIMEDOUT: map 1: map-delete: not released after "
			       "400 ms by client 7 (active)"));
	assert_int_equal(ctl(o.ctl, out, sizeof(out), "map-show 1\n"), 0);
	assert_true(file_gets(o.log, "map 1: map-prepare given up after ", 1000));
	/* its I/O ends: it answers the old request, is granted again, and the
	 * next transition completes */
	assert_int_equal(write(to, "E", 1), 1);
	assert_int_equal(ctl(o.ctl, out, sizeof(out), "map-prepare 1\n"), 0);
	assert_non_null(strstr(out, "state prepared"));
	assert_int_equal(ctl(o.ctl, out, sizeof(out), "sessions\n"), 0);
	assert_non_null(strstr(out, "client 7 "));
	assert_non_null(strstr(out, "state active"));
	assert_int_equal(ctl(o.ctl, out, sizeof(out), "map-start 1\n"), 0);
	assert_int_equal(ctl(o.ctl, out, sizeof(out), "map-delete 1 force\n"), 0);
	child_end(holder);
	close(to);
	close(from);
	owner_stop(&o);
}

/* the limits between mappings, and of the pool, each with its own error */
/* consistency groups through the CLI (`flashmeta admin group-*`): every
 * step's exit status and words, the refusals on stderr with exit 1, the
 * JSON form; test_groups has every state through the socket */
static void cli__groups__lifecycle_and_refusals(void **state)
{
	struct owner o;

	(void)state;
	fresh("cli-groups");
	owner_paths(&o, "pool", "ctl");
	owner_start(&o, NULL, NULL);
	assert_int_equal(run(g_cli, "-C", o.ctl, "admin", "map-create", "1", "10", "20",
			     "1048576", NULL), 0);
	assert_int_equal(run(g_cli, "-C", o.ctl, "admin", "map-create", "2", "11", "21",
			     "1048576", NULL), 0);
	assert_int_equal(run(g_cli, "-C", o.ctl, "admin", "group-create", "7", "1", "2", NULL), 0);
	assert_true(log_has("group 7 members 2 maps 1,2 states idle_or_copied,idle_or_copied "
			    "operation -\nok\n"));
	assert_int_equal(run_out_err(g_cli, "-C", o.ctl, "admin", "group-start", "7", NULL), 1);
	assert_non_null(strstr(slurp(at("err")), "error EPERM: group 7: map 1 is idle_or_copied;"
			       " group-start needs every member prepared: nothing done"));
	assert_int_equal(run(g_cli, "-C", o.ctl, "admin", "group-prepare", "7", NULL), 0);
	assert_int_equal(run_out_err(g_cli, "-C", o.ctl, "admin", "map-start", "1", NULL), 1);
	assert_non_null(strstr(slurp(at("err")), "error EBUSY: map 1 is in consistency group 7"));
	assert_int_equal(run(g_cli, "-C", o.ctl, "admin", "group-start", "7", NULL), 0);
	assert_true(log_has("states copying,copying operation -\n"));
	assert_int_equal(run_out_err(g_cli, "-C", o.ctl, "--json", "admin", "group-show", NULL),
			 0);
	assert_string_equal(slurp(at("out")), "{\"records\": [{\"record\": \"group\", "
			    "\"group\": 7, \"members\": 2, \"maps\": \"1,2\", \"states\": "
			    "\"copying,copying\", \"operation\": \"-\"}], \"ok\": true}\n");
	assert_int_equal(run(g_cli, "-C", o.ctl, "admin", "group-stop", "7", NULL), 0);
	assert_int_equal(run(g_cli, "-C", o.ctl, "admin", "group-delete", "7", NULL), 0);
	assert_true(log_has("deleted group 7 members 2\nok\n"));
	assert_int_equal(run(g_cli, "-C", o.ctl, "admin", "map-delete", "1", NULL), 0);
	owner_stop(&o);
}

/* the last run's stderr holds `needle` (printed when not) */
static int err_has(const char *needle)
{
	const char *err = slurp(at("err"));

	if (strstr(err, needle))
		return 1;
	fprintf(stderr, "expected \"%s\" on stderr:\n%s\n", needle, err);
	return 0;
}

/* map-show ID's state and reversed flag, through the control socket */
static void map_state(struct owner *o, unsigned id, char *state, size_t cap, int *reversed)
{
	char out[2048], cmd[64], *p;

	snprintf(cmd, sizeof(cmd), "map-show %u\n", id);
	state[0] = '\0';
	*reversed = -1;
	if (ctl(o->ctl, out, sizeof(out), cmd))
		return; /* gone */
	if ((p = strstr(out, " state ")))
		sscanf(p, " state %31s", state);
	if ((p = strstr(out, " reversed ")))
		*reversed = atoi(p + 10);
	(void)cap;
}

/* drive a fresh mapping `id` into one of the states a lifecycle table
 * starts from, with control lines */
static void drive(struct owner *o, unsigned id, int st)
{
	char cmd[96], out[2048], state[32];
	int rev;
	uint64_t end = now_ms() + 10000;

	snprintf(cmd, sizeof(cmd), "map-create %u %u %u 1048576\n", id, 1000 + id, 2000 + id);
	assert_int_equal(ctl(o->ctl, out, sizeof(out), cmd), 0);
	if (st == 0)
		return; /* idle_or_copied, never started */
	snprintf(cmd, sizeof(cmd), "map-prepare %u\n", id);
	assert_int_equal(ctl(o->ctl, out, sizeof(out), cmd), 0);
	if (st == 1)
		return; /* prepared */
	snprintf(cmd, sizeof(cmd), st == 3 ? "map-stop %u\n" : "map-start %u\n", id);
	assert_int_equal(ctl(o->ctl, out, sizeof(out), cmd), 0);
	if (st != 4)
		return; /* copying, stopped */
	/* idle_or_copied after a trigger: a restore of a mapping nothing was
	 * written to has every grain split at once (the old bitmap was
	 * empty), so its copy completes without a copier */
	snprintf(cmd, sizeof(cmd), "map-restore %u\n", id);
	assert_int_equal(ctl(o->ctl, out, sizeof(out), cmd), 0);
	do {
		map_state(o, id, state, sizeof(state), &rev);
		if (!strcmp(state, "idle_or_copied"))
			return;
		usleep(10000);
	} while (now_ms() < end);
	fail_msg("map %u: copy of the restore not complete: %s", id, state);
}

/*
 * Every lifecycle command from every state the CLI can hold a mapping
 * in, legal and illegal: the exit status and the state after.  Columns:
 * map-prepare, map-start, map-restart, map-stop, map-restore, map-delete,
 * map-refresh;
 * "-" after: the mapping is gone.  map-restore from copying may complete
 * at once (nothing was split: every grain is split once reversed), so
 * copying|idle_or_copied is accepted there.
 */
static void cli__lifecycle__every_command_from_every_state(void **state)
{
	static const char *const cmds[] = { "map-prepare", "map-start", "map-restart", "map-stop",
					     "map-restore", "map-delete", "map-refresh" };
	static const char *const names[] = { "idle_or_copied (never started)", "prepared",
					      "copying", "stopped", "idle_or_copied (copied)" };
	static const struct { int rc; const char *after; int reversed; } want[5][7] = {
		/* idle, never started */
		{ { 0, "prepared", 0 }, { 1, "idle_or_copied", 0 }, { 0, "idle_or_copied", 0 },
		  { 1, "idle_or_copied", 0 }, { 1, "idle_or_copied", 0 }, { 0, "-", -1 },
		  { 1, "idle_or_copied", 0 } },
		/* prepared */
		{ { 1, "prepared", 0 }, { 0, "copying", 0 }, { 0, "prepared", 0 },
		  { 0, "stopped", 0 }, { 1, "prepared", 0 }, { 1, "prepared", 0 },
		  { 1, "prepared", 0 } },
		/* copying */
		{ { 1, "copying", 0 }, { 1, "copying", 0 }, { 0, "copying", 0 },
		  { 0, "stopped", 0 }, { 0, "copying|idle_or_copied", 1 }, { 1, "copying", 0 },
		  { 0, "copying", 0 } },
		/* stopped */
		{ { 0, "prepared", 0 }, { 1, "stopped", 0 }, { 0, "stopped", 0 },
		  { 1, "stopped", 0 }, { 1, "stopped", 0 }, { 0, "-", -1 },
		  { 1, "stopped", 0 } },
		/* idle_or_copied after a restore's copy: reversed */
		{ { 0, "prepared", 1 }, { 1, "idle_or_copied", 1 }, { 0, "idle_or_copied", 1 },
		  { 1, "idle_or_copied", 1 }, { 0, "copying", 0 }, { 0, "-", -1 },
		  { 1, "idle_or_copied", 1 } },
	};
	struct owner o;
	char idb[16], st[32], alt[64];
	unsigned id = 0;
	int rev;

	(void)state;
	fresh("cli-lifecycle");
	owner_paths(&o, "pool", "ctl");
	owner_start(&o, NULL, NULL);
	for (int s = 0; s < 5; s++) {
		for (int c = 0; c < 7; c++) {
			int rc;

			id++;
			drive(&o, id, s);
			snprintf(idb, sizeof(idb), "%u", id);
			rc = run_out_err(g_cli, "-C", o.ctl, "admin", cmds[c], idb, NULL);
			map_state(&o, id, st, sizeof(st), &rev);
			snprintf(alt, sizeof(alt), "|%s|", want[s][c].after);
			if (!st[0])
				snprintf(st, sizeof(st), "-");
			if (rc != want[s][c].rc || !strstr(alt, st) ||
			    (st[0] != '-' && rev != want[s][c].reversed))
				fail_msg("%s from %s: exit %d, now %s reversed %d; want exit %d, %s "
					 "reversed %d (stderr: %s)", cmds[c], names[s], rc, st, rev,
					 want[s][c].rc, want[s][c].after, want[s][c].reversed,
					 slurp(at("err")));
			/* a refusal says why, on stderr, and changed nothing */
			if (rc)
				assert_true(err_has("error E"));
		}
	}
	/* the refusals of map-restore, each with its reason */
	assert_int_equal(run_out_err(g_cli, "-C", o.ctl, "admin", "map-restore", "25", NULL), 1);
	assert_true(err_has("error EPERM: mapping 25 is stopped: its target "
			       "is no point-in-time image, there is nothing to restore"));
	/* map 2: its map-start was refused, never started */
	assert_int_equal(run_out_err(g_cli, "-C", o.ctl, "admin", "map-restore", "2", NULL), 1);
	assert_true(err_has("never started"));
	assert_int_equal(run_out_err(g_cli, "-C", o.ctl, "admin", "map-restore", "999", NULL), 1);
	assert_true(err_has("error ENOENT"));
	/* a cascade: map 100 10->20 and map 101 10->30; restoring 100 would
	 * copy 20->10 while 10 is map 101's source */
	assert_int_equal(run(g_cli, "-C", o.ctl, "admin", "map-create", "100", "10", "20",
			     "1048576", NULL), 0);
	assert_int_equal(run(g_cli, "-C", o.ctl, "admin", "map-create", "101", "10", "30",
			     "1048576", NULL), 0);
	assert_int_equal(run(g_cli, "-C", o.ctl, "admin", "map-prepare", "100", NULL), 0);
	assert_int_equal(run(g_cli, "-C", o.ctl, "admin", "map-start", "100", NULL), 0);
	assert_int_equal(run_out_err(g_cli, "-C", o.ctl, "admin", "map-restore", "100", NULL), 1);
	assert_true(err_has("error EOPNOTSUPP: map 100: a restore copies "
			       "volume 20 to volume 10, refused: target volume 10 is the source "
			       "of map 101: cascades are not supported"));
	/* a member of a group */
	assert_int_equal(run(g_cli, "-C", o.ctl, "admin", "map-delete", "101", NULL), 0);
	assert_int_equal(run(g_cli, "-C", o.ctl, "admin", "group-create", "5", "100", NULL), 0);
	assert_int_equal(run_out_err(g_cli, "-C", o.ctl, "admin", "map-restore", "100", NULL), 1);
	assert_true(err_has("error EBUSY: map 100 is in consistency group 5"));
	/* map-refresh says why it refuses: a group member, a restored
	 * mapping, a state without an image, one never started */
	assert_int_equal(run_out_err(g_cli, "-C", o.ctl, "admin", "map-refresh", "100", NULL), 1);
	assert_true(err_has("error EBUSY: map 100 is in consistency group 5: map-refresh"));
	assert_int_equal(run(g_cli, "-C", o.ctl, "admin", "group-delete", "5", NULL), 0);
	assert_int_equal(run_out_err(g_cli, "-C", o.ctl, "admin", "map-refresh", "35", NULL), 1);
	assert_true(err_has("error EPERM: mapping 35 is restored"));
	assert_int_equal(run_out_err(g_cli, "-C", o.ctl, "admin", "map-refresh", "28", NULL), 1);
	assert_true(err_has("error EPERM: mapping 28 is stopped: a refresh needs copying or "
			    "idle_or_copied"));
	assert_int_equal(run_out_err(g_cli, "-C", o.ctl, "admin", "map-refresh", "7", NULL), 1);
	assert_true(err_has("error EPERM: mapping 7 was never started"));
	/* and what it did, as a record (nothing was written: nothing dropped) */
	assert_int_equal(run_out_err(g_cli, "-C", o.ctl, "--json", "admin", "map-refresh", "100",
				     NULL), 0);
	assert_non_null(strstr(slurp(at("out")), "\"record\": \"refreshed\", \"map\": 100, "
			       "\"generation\": 2, \"kept\": 0, \"dropped\": 0, \"full\": 0}"));
	assert_non_null(strstr(slurp(at("out")), "\"changed\": 0, \"changed-unknown\": 0}"));
	/* now it may: the JSON answer shows the mapping reversed */
	assert_int_equal(run_out_err(g_cli, "-C", o.ctl, "--json", "admin", "map-restore", "100",
				     NULL), 0);
	assert_non_null(strstr(slurp(at("out")), "\"source\": 20, \"target\": 10"));
	assert_non_null(strstr(slurp(at("out")), "\"reversed\": 1, "));
	owner_stop(&o);
	/* durable: a restarted owner serves it reversed */
	owner_start(&o, NULL, NULL);
	map_state(&o, 100, st, sizeof(st), &rev);
	assert_int_equal(rev, 1);
	owner_stop(&o);
}

static void control__limits__clean_errors(void **state)
{
	static const struct {
		const char *line, *says;
	} bad[] = {
		{ "map-create 9 1 2 1048576\n", "error EEXIST: map 1 already copies volume 1 to "
		  "volume 2 (duplicate source/target pair)" },
		{ "map-create 1 7 8 1048576\n", "error EEXIST: map 1 exists" },
		{ "map-create 9 2 3 1048576\n", "error EOPNOTSUPP: source volume 2 is the target of "
		  "map 1: cascades are not supported" },
		{ "map-create 9 5 1 1048576\n", "error EOPNOTSUPP: target volume 1 is the source of "
		  "map 1: cascades are not supported" },
		{ "map-create 9 5 2 1048576\n", "error EADDRINUSE: target volume 2 is already the "
		  "target of map 1" },
		{ "map-create 9 5 5 1048576\n", "error EINVAL: mapping 9: source and target are the "
		  "same volume 5" },
		{ "map-create 9 5 6 0\n", "error ERANGE: size 0" },
		{ "map-create 9 5 6 1000\n", "error EINVAL" },
		{ "map-create 9 5 6 1099511627776 4096\n", "error EFBIG: map 9: 268435456 grains "
		  "of 4096 bytes, more than the pool holds per mapping (pool_max_grains" },
	};
	struct owner o;
	char out[4096], line[96];

	(void)state;
	fresh("ctl-limits");
	g_max_maps = "260";
	owner_paths(&o, "pool", "ctl");
	owner_start(&o, NULL, NULL);
	assert_int_equal(ctl(o.ctl, out, sizeof(out), "map-create 1 1 2 1048576\n"), 0);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(ctl(o.ctl, out, sizeof(out), bad[i].line), -EREMOTEIO);
		if (!strstr(out, bad[i].says))
			fprintf(stderr, "'%s' answered '%s'\n", bad[i].line, out);
		assert_non_null(strstr(out, bad[i].says));
	}
	/* 256 mappings of one source (map 1 and 255 more), not 257 */
	for (int i = 2; i <= 256; i++) {
		snprintf(line, sizeof(line), "map-create %d 1 %d 65536\n", i, 1000 + i);
		assert_int_equal(ctl(o.ctl, NULL, 0, line), 0);
	}
	assert_int_equal(ctl(o.ctl, out, sizeof(out), "map-create 257 1 2000 65536\n"),
			 -EREMOTEIO);
	assert_non_null(strstr(out, "error EMLINK: source volume 1 has 256 mappings, the most "
			       "one volume may have"));
	/* the pool's slots: 260 at creation */
	for (int i = 257; i <= 260; i++) {
		snprintf(line, sizeof(line), "map-create %d %d %d 65536\n", i, 3000 + 2 * i,
			 3001 + 2 * i);
		assert_int_equal(ctl(o.ctl, NULL, 0, line), 0);
	}
	assert_int_equal(ctl(o.ctl, out, sizeof(out), "map-create 261 5 6 65536\n"), -EREMOTEIO);
	assert_non_null(strstr(out, "error ENOSPC: the pool holds at most 260 mappings "
			       "(pool_max_maps when it was created) and has 260: map-delete one "
			       "first"));
	assert_int_equal(ctl(o.ctl, out, sizeof(out), "map-delete 260\n"), 0);
	assert_int_equal(ctl(o.ctl, out, sizeof(out), "map-create 261 5 6 65536\n"), 0);
	owner_stop(&o);
}

static int setup(void **state)
{
	(void)state;
	snprintf(g_root, sizeof(g_root), "/tmp/fm-op-XXXXXX");
	return mkdtemp(g_root) ? 0 : -1;
}

static int teardown(void **state)
{
	char cmd[300];

	(void)state;
	if (getenv("FM_KEEP"))
		return 0;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", g_root);
	return system(cmd) == 0 ? 0 : -1;
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(control__regular_file__refused_untouched, reap),
		cmocka_unit_test_teardown(control__introspection__lock_holder_sessions_json, reap),
		cmocka_unit_test_teardown(cli__json__one_object_per_result, reap),
		cmocka_unit_test_teardown(control__is_the_pool__pool_kept, reap),
		cmocka_unit_test_teardown(control__directory_fifo_symlink__refused_untouched, reap),
		cmocka_unit_test_teardown(control__stale_socket__replaced, reap),
		cmocka_unit_test_teardown(second_owner__same_pool_same_control__refused_first_untouched, reap),
		cmocka_unit_test_teardown(second_owner__other_pool_same_control__refused_socket_kept, reap),
		cmocka_unit_test_teardown(key_file__fifo__refused_without_hanging, reap),
		cmocka_unit_test_teardown(config__fifo_and_dev_zero__refused_without_hanging, reap),
		cmocka_unit_test_teardown(config__nul_long_line_big_file__refused_naming_the_line, reap),
		cmocka_unit_test_teardown(config__errors__name_file_line_and_key, reap),
		cmocka_unit_test_teardown(cli__numbers__strict, reap),
		cmocka_unit_test_teardown(owner__flags__strict, reap),
		cmocka_unit_test_teardown(owner__hash_in_flag__kept, reap),
		cmocka_unit_test_teardown(owner__log__iso_utc_or_journal_priority, reap),
		cmocka_unit_test_teardown(control__commands__strict, reap),
		cmocka_unit_test_teardown(control__nul_byte__answered_and_next_line_runs, reap),
		cmocka_unit_test_teardown(control__long_line__error_and_closed, reap),
		cmocka_unit_test_teardown(control__status_of_many_maps__whole, reap),
		cmocka_unit_test_teardown(control__slots_full_of_idle__longest_idle_evicted, reap),
		cmocka_unit_test_teardown(control__idle__closed_after_control_idle_ms, reap),
		cmocka_unit_test_teardown(control__replaced_while_running__left_at_exit, reap),
		cmocka_unit_test_teardown(control__refused__no_pool_made, reap),
		cmocka_unit_test_teardown(control__delete__idle_stopped_or_forced, reap),
		cmocka_unit_test_teardown(control__autodelete__deleted_when_copy_completes, reap),
		cmocka_unit_test_teardown(control__transition_timeout__names_client_changes_nothing,
					  reap),
		cmocka_unit_test_teardown(control__limits__clean_errors, reap),
		cmocka_unit_test_teardown(cli__groups__lifecycle_and_refusals, reap),
		cmocka_unit_test_teardown(cli__lifecycle__every_command_from_every_state, reap),
	};

	g_owner = getenv("FM_OWNER_BIN");
	g_cli = getenv("FM_CLI_BIN");
	for (int i = 1; i + 1 < argc; i++) {
		if (!strcmp(argv[i], "--owner"))
			g_owner = argv[++i];
		else if (!strcmp(argv[i], "--cli"))
			g_cli = argv[++i];
	}
	if (!g_owner || !g_cli) {
		fprintf(stderr, "usage: test_operator --owner PATH --cli PATH\n");
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, setup, teardown);
}
