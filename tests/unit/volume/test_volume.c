/* test_volume.c -- the fence table (flashmeta/fence_table.h) and the
 * reference volumes (flashmeta/refvol.h).
 *
 * The lock exclusion is checked across processes, because that is where
 * it matters: a child holds a writer's admission (enter) of one session
 * while the parent, as the owner, tries to raise; the raise must wait for
 * it (-EAGAIN), must not wait for another session or client, and must go
 * through once the writer is gone -- including when it was SIGKILLed
 * mid-write (the kernel drops its locks).
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "flashmeta/error.h"
#include "flashmeta/fence_table.h"
#include "flashmeta/refvol.h"

#define TOK(inc, ep) ((uint64_t)(inc) << 32 | (uint32_t)(ep))

static char DIR_[64];

static const char *path(const char *name)
{
	static char p[4][128];
	static int k;

	k = (k + 1) % 4;
	snprintf(p[k], sizeof(p[k]), "%s/%s", DIR_, name);
	return p[k];
}

static int setup(void **state)
{
	(void)state;
	snprintf(DIR_, sizeof(DIR_), "/tmp/fm-test-volume-XXXXXX");
	return mkdtemp(DIR_) ? 0 : -1;
}

static int teardown(void **state)
{
	char cmd[128];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", DIR_);
	return system(cmd) == 0 ? 0 : -1;
}

/* ------------------------------------------------------------ the table */

static void table__created_once__reopened_and_checked(void **state)
{
	struct fm_fence_table *a, *b;
	const char *p = path("t1");
	struct stat sb;

	(void)state;
	assert_int_equal(fm_fence_table_open(p, 0, &a), -ENOENT);
	assert_int_equal(fm_fence_table_open(p, FM_FENCE_TABLE_CREATE | FM_FENCE_TABLE_RAISE,
					     &a), 0);
	assert_int_equal(stat(p, &sb), 0);
	assert_int_equal(sb.st_mode & 0777, 0600);
	assert_int_equal(fm_fence_table_open(p, FM_FENCE_TABLE_CREATE, &b), 0);
	assert_int_equal(fm_fence_table_floor(b, 7), 0);
	assert_int_equal(fm_fence_table_clients(a, 7, 7, TOK(3, 0), true), 0);
	assert_int_equal(fm_fence_table_floor(b, 7), TOK(3, 0)); /* seen through b's map */
	assert_int_equal(fm_fence_table_clients(a, 7, 7, TOK(2, 0), true), 0); /* never lowered */
	assert_int_equal(fm_fence_table_floor(b, 7), TOK(3, 0));
	/* a writer's table cannot raise; client 0 and beyond are refused */
	assert_int_equal(fm_fence_table_clients(b, 7, 7, TOK(9, 0), false), -EBADF);
	assert_int_equal(fm_fence_table_enter(b, 0, 1), -EINVAL);
	assert_int_equal(fm_fence_table_enter(b, FM_FENCE_TABLE_CLIENTS, 1), -EINVAL);
	fm_fence_table_close(&a);
	fm_fence_table_close(&b);
	assert_null(b);
	fm_fence_table_close(&b); /* NULL-safe */
}

static void table__not_a_table__refused_untouched(void **state)
{
	const char *p = path("notatable");
	struct fm_fence_table *t;
	char buf[64] = { 0 };
	int fd = open(p, O_CREAT | O_WRONLY, 0600);

	(void)state;
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "precious data", 13), 13);
	close(fd);
	assert_int_equal(fm_fence_table_open(p, FM_FENCE_TABLE_CREATE | FM_FENCE_TABLE_RAISE,
					     &t), -EINVAL);
	fd = open(p, O_RDONLY);
	assert_int_equal(read(fd, buf, sizeof(buf)), 13);
	close(fd);
	assert_string_equal(buf, "precious data");
}

static void table__session_fenced__its_writes_refused_others_not(void **state)
{
	struct fm_fence_table *o, *w;
	const char *p = path("t2");

	(void)state;
	assert_int_equal(fm_fence_table_open(p, FM_FENCE_TABLE_CREATE | FM_FENCE_TABLE_RAISE,
					     &o), 0);
	assert_int_equal(fm_fence_table_open(p, 0, &w), 0);
	assert_int_equal(fm_fence_table_enter(w, 3, TOK(1, 5)), 0);
	fm_fence_table_exit(w, 3, TOK(1, 5));
	assert_int_equal(fm_fence_table_try_session(o, 3, TOK(1, 5)), 0);
	assert_int_equal(fm_fence_table_enter(w, 3, TOK(1, 5)), -EKEYREJECTED);
	assert_int_equal(fm_fence_table_enter(w, 3, TOK(1, 4)), -EKEYREJECTED);
	assert_int_equal(fm_fence_table_enter(w, 3, TOK(1, 9)), 0); /* a later session */
	assert_int_equal(fm_fence_table_enter(w, 4, TOK(1, 2)), 0); /* another client */
	/* the owner restarts: every session of the old incarnation is out */
	fm_fence_table_exit(w, 3, TOK(1, 9));
	assert_int_equal(fm_fence_table_clients(o, 1, 3, TOK(2, 0), false), 0);
	assert_int_equal(fm_fence_table_enter(w, 3, TOK(1, 9)), -EKEYREJECTED);
	assert_int_equal(fm_fence_table_enter(w, 3, TOK(2, 1)), 0);
	fm_fence_table_exit(w, 3, TOK(2, 1));
	fm_fence_table_exit(w, 4, TOK(1, 2));
	fm_fence_table_close(&w);
	fm_fence_table_close(&o);
}

/* a child holding an admission of (client, token) until killed */
static pid_t holder(const char *p, uint32_t client, uint64_t token)
{
	int fds[2];
	char c;
	pid_t pid;

	assert_int_equal(pipe(fds), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct fm_fence_table *w;

		close(fds[0]);
		if (fm_fence_table_open(p, 0, &w) || fm_fence_table_enter(w, client, token))
			_exit(1);
		(void)!write(fds[1], "h", 1);
		for (;;)
			pause(); /* "mid-write" */
	}
	close(fds[1]);
	assert_int_equal(read(fds[0], &c, 1), 1);
	close(fds[0]);
	return pid;
}

static void table__raise_waits_for_a_write_in_flight__even_a_killed_one(void **state)
{
	struct fm_fence_table *o;
	const char *p = path("t3");
	pid_t pid;
	int st;

	(void)state;
	assert_int_equal(fm_fence_table_open(p, FM_FENCE_TABLE_CREATE | FM_FENCE_TABLE_RAISE,
					     &o), 0);
	pid = holder(p, 5, TOK(1, 7));
	assert_int_equal(fm_fence_table_try_session(o, 5, TOK(1, 7)), -EAGAIN);
	assert_int_equal(fm_fence_table_clients(o, 4, 6, TOK(2, 0), false), -EAGAIN);
	assert_int_equal(fm_fence_table_floor(o, 5), 0); /* nothing raised */
	/* other sessions and clients are not held up */
	assert_int_equal(fm_fence_table_try_session(o, 5, TOK(1, 6)), 0);
	assert_int_equal(fm_fence_table_clients(o, 6, 9, TOK(2, 0), false), 0);
	/* the writer stopped (SIGSTOP) still holds it: that is the point */
	kill(pid, SIGSTOP);
	assert_int_equal(fm_fence_table_try_session(o, 5, TOK(1, 7)), -EAGAIN);
	kill(pid, SIGKILL);
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_int_equal(fm_fence_table_try_session(o, 5, TOK(1, 7)), 0);
	assert_int_equal(fm_fence_table_floor(o, 5), TOK(1, 8));
	fm_fence_table_close(&o);
}

static void table__threads_of_one_process__share_the_admission(void **state)
{
	struct fm_fence_table *o, *w;
	const char *p = path("t4");

	(void)state;
	assert_int_equal(fm_fence_table_open(p, FM_FENCE_TABLE_CREATE | FM_FENCE_TABLE_RAISE,
					     &o), 0);
	assert_int_equal(fm_fence_table_open(p, 0, &w), 0);
	/* two writes of one session in flight (one lock of the description):
	 * the first to finish must not let a raise through */
	assert_int_equal(fm_fence_table_enter(w, 2, TOK(1, 3)), 0);
	assert_int_equal(fm_fence_table_enter(w, 2, TOK(1, 3)), 0);
	fm_fence_table_exit(w, 2, TOK(1, 3));
	assert_int_equal(fm_fence_table_try_session(o, 2, TOK(1, 3)), -EAGAIN);
	fm_fence_table_exit(w, 2, TOK(1, 3));
	assert_int_equal(fm_fence_table_try_session(o, 2, TOK(1, 3)), 0);
	fm_fence_table_close(&w);
	fm_fence_table_close(&o);
}

/* -------------------------------------------------------------- volumes */

static int run(struct fm_refvol *v, enum fm_mover_op op, uint64_t off, uint64_t len, void *buf,
	       uint64_t token)
{
	struct fm_mover_req r = { .op = op, .offset = off, .length = len, .buf = buf,
				  .token = token };

	return fm_refvol_do(v, &r);
}

static void refvol__bad_config__clear_errors_no_file_harmed(void **state)
{
	struct fm_refvol *v;
	struct fm_refvol_cfg c = { .size = 0 };
	const char *p = path("short");
	int fd = open(p, O_CREAT | O_WRONLY, 0600);
	struct stat sb;

	(void)state;
	assert_int_equal(fm_refvol_open(&c, &v), -EINVAL);
	c.size = 4096;
	c.path = path("missing");
	assert_int_equal(fm_refvol_open(&c, &v), -ENOENT);
	assert_int_equal(write(fd, "x", 1), 1);
	close(fd);
	c.path = p;
	c.create = true;
	assert_int_equal(fm_refvol_open(&c, &v), -EINVAL); /* shorter: never resized */
	assert_int_equal(stat(p, &sb), 0);
	assert_int_equal(sb.st_size, 1);
	c.path = DIR_;
	assert_int_equal(fm_refvol_open(&c, &v), -EISDIR);
}

static void refvol__fenced_session__its_write_lands_nowhere(void **state)
{
	struct fm_fence_table *o, *w;
	struct fm_refvol *v;
	struct fm_refvol_stats st;
	uint8_t buf[512], back[512];
	struct fm_refvol_cfg c = { .size = 1 << 20, .path = path("vol"), .create = true,
				   .client_id = 9 };

	(void)state;
	assert_int_equal(fm_fence_table_open(path("t5"), FM_FENCE_TABLE_CREATE |
					     FM_FENCE_TABLE_RAISE, &o), 0);
	assert_int_equal(fm_fence_table_open(path("t5"), 0, &w), 0);
	c.fence = w;
	assert_int_equal(fm_refvol_open(&c, &v), 0);
	memset(buf, 0xa1, sizeof(buf));
	assert_int_equal(run(v, FM_MOVER_WRITE, 4096, sizeof(buf), buf, TOK(1, 4)), 0);
	assert_int_equal(run(v, FM_MOVER_FLUSH, 0, 0, NULL, TOK(1, 4)), 0);
	assert_int_equal(fm_fence_table_try_session(o, 9, TOK(1, 4)), 0);
	memset(buf, 0xb2, sizeof(buf));
	assert_int_equal(run(v, FM_MOVER_WRITE, 4096, sizeof(buf), buf, TOK(1, 4)),
			 -EKEYREJECTED);
	assert_int_equal(run(v, FM_MOVER_FLUSH, 0, 0, NULL, TOK(1, 4)), -EKEYREJECTED);
	assert_int_equal(run(v, FM_MOVER_READ, 4096, sizeof(back), back, 0), 0);
	for (size_t i = 0; i < sizeof(back); i++)
		assert_int_equal(back[i], 0xa1);
	/* the next session writes */
	assert_int_equal(run(v, FM_MOVER_WRITE, 4096, sizeof(buf), buf, TOK(1, 11)), 0);
	assert_int_equal(run(v, FM_MOVER_READ, 4096, sizeof(back), back, 0), 0);
	assert_int_equal(back[0], 0xb2);
	/* beyond the end */
	assert_int_equal(run(v, FM_MOVER_WRITE, (1 << 20) - 100, sizeof(buf), buf, TOK(1, 11)),
			 -ERANGE);
	fm_refvol_stats(v, &st);
	assert_int_equal(st.refused, 2);
	assert_int_equal(st.writes, 2);
	fm_refvol_close(&v);
	/* reopened: the data is in the file */
	c.fence = NULL;
	c.client_id = 0;
	c.create = false;
	assert_int_equal(fm_refvol_open(&c, &v), 0);
	assert_int_equal(run(v, FM_MOVER_READ, 4096, sizeof(back), back, 0), 0);
	assert_int_equal(back[511], 0xb2);
	fm_refvol_close(&v);
	fm_fence_table_close(&w);
	fm_fence_table_close(&o);
}

static void refvol__memory__roundtrip(void **state)
{
	struct fm_refvol *v;
	struct fm_refvol_cfg c = { .size = 8192 };
	uint8_t buf[100], back[100];

	(void)state;
	assert_int_equal(fm_refvol_open(&c, &v), 0);
	memset(buf, 0x3c, sizeof(buf));
	assert_int_equal(run(v, FM_MOVER_WRITE, 8092, sizeof(buf), buf, 0), 0);
	assert_int_equal(run(v, FM_MOVER_READ, 8092, sizeof(back), back, 0), 0);
	assert_memory_equal(buf, back, sizeof(buf));
	assert_int_equal(run(v, FM_MOVER_READ, 8093, sizeof(back), back, 0), -ERANGE);
	assert_int_equal(run(v, FM_MOVER_COPY, 0, 100, NULL, 0), -EOPNOTSUPP);
	fm_refvol_close(&v);
	assert_null(v);
}

/* O_DIRECT where the file system allows it: aligned requests (buffers
 * aligned or not) land in the file, unaligned ones are refused before
 * anything is written; where it refuses: FM_REFVOL_DIRECT says so
 * clearly, FM_REFVOL_DIRECT_TRY falls back to the page cache */
static void refvol__direct__aligned_io_or_a_clear_refusal(void **state)
{
	struct fm_refvol_cfg c = { .size = 65536, .path = path("direct"), .create = true,
				   .direct = FM_REFVOL_DIRECT };
	struct fm_refvol *v = NULL, *b = NULL;
	struct fm_refvol_stats st;
	uint8_t *mem = aligned_alloc(4096, 4 * 4096), *back = malloc(4 * 4096 + 1);
	uint32_t al;
	int rc;

	(void)state;
	assert_non_null(mem);
	assert_non_null(back);
	rc = fm_refvol_open(&c, &v);
	if (rc) { /* this file system refuses O_DIRECT */
		assert_int_equal(rc, -EINVAL);
		assert_non_null(strstr(fm_errormsg(), "O_DIRECT"));
		c.direct = FM_REFVOL_DIRECT_TRY;
		assert_int_equal(fm_refvol_open(&c, &v), 0);
		fm_refvol_stats(v, &st);
		assert_false(st.direct);
		print_message("O_DIRECT refused under %s: checked the fallback only\n", DIR_);
		goto out;
	}
	fm_refvol_stats(v, &st);
	assert_true(st.direct);
	assert_true(st.align >= 512 && st.align <= 4096 && st.align % 512 == 0);
	al = st.align;
	/* aligned buffer out, unaligned buffer (bounced) back */
	memset(mem, 0x5a, al);
	assert_int_equal(run(v, FM_MOVER_WRITE, al, al, mem, 0), 0);
	assert_int_equal(run(v, FM_MOVER_READ, al, al, back + 1, 0), 0);
	assert_memory_equal(mem, back + 1, al);
	memset(back + 1, 0x77, al);
	assert_int_equal(run(v, FM_MOVER_WRITE, 2 * al, al, back + 1, 0), 0);
	assert_int_equal(run(v, FM_MOVER_FLUSH, 0, 0, NULL, 0), 0);
	fm_refvol_stats(v, &st);
	assert_int_equal(st.bounced, 2);
	/* unaligned offset or length: refused, nothing written */
	assert_int_equal(run(v, FM_MOVER_WRITE, al + 512 / 2, al, mem, 0), -EINVAL);
	assert_non_null(strstr(fm_errormsg(), "multiples"));
	assert_int_equal(run(v, FM_MOVER_WRITE, 0, al / 2, mem, 0), -EINVAL);
	fm_refvol_stats(v, &st);
	assert_int_equal(st.writes, 2);
	/* the file holds it: a buffered volume on it reads the same */
	c.direct = FM_REFVOL_BUFFERED;
	c.create = false;
	assert_int_equal(fm_refvol_open(&c, &b), 0);
	assert_int_equal(run(b, FM_MOVER_READ, al, 2 * al, back, 0), 0);
	assert_memory_equal(mem, back, al);
	assert_int_equal(back[al], 0x77);
	assert_int_equal(back[0], 0x5a);
	assert_int_equal(run(b, FM_MOVER_READ, 0, al, back, 0), 0);
	assert_int_equal(back[0], 0);
	fm_refvol_stats(b, &st);
	assert_false(st.direct);
	fm_refvol_close(&b);
out:
	fm_refvol_close(&v);
	free(mem);
	free(back);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(table__created_once__reopened_and_checked),
		cmocka_unit_test(table__not_a_table__refused_untouched),
		cmocka_unit_test(table__session_fenced__its_writes_refused_others_not),
		cmocka_unit_test(table__raise_waits_for_a_write_in_flight__even_a_killed_one),
		cmocka_unit_test(table__threads_of_one_process__share_the_admission),
		cmocka_unit_test(refvol__bad_config__clear_errors_no_file_harmed),
		cmocka_unit_test(refvol__fenced_session__its_write_lands_nowhere),
		cmocka_unit_test(refvol__memory__roundtrip),
		cmocka_unit_test(refvol__direct__aligned_io_or_a_clear_refusal),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
