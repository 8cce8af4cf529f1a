/* drain_crash.h -- crash an operation on a pool before each of its drains,
 * and its recovery before each of its own, in a forked child; shared by
 * the slot-switching operations' tests (test_pmem_reverse.c,
 * test_pmem_refresh.c).  Include after <cmocka.h>: the sweep asserts.
 *
 * In the child, the shadow of the pool starts as the file (durable: the
 * open persisted it); flush() stages the flushed lines, drain() makes them
 * shadow.  Before drain number `at` the child writes two images -- "kill"
 * (the live mapping: a SIGKILL keeps every store, flushed or not) and
 * "power" (the shadow: only what was drained) -- and exits 42.  It exits 0
 * if the operation ends first.
 *
 * The sweep: for every drain `at` of open + operation + close, both images
 * must be in one of the two outcomes (as before, or fully done), and the
 * recovery of each, itself crashed before each of its drains, must reach
 * the same outcome.  Among the power images, once a drain made the
 * operation done every later one is done too (no undo after the switch).
 */
#ifndef FM_DRAIN_CRASH_H
#define FM_DRAIN_CRASH_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "flashmeta/error.h"
#include "flashmeta/pmem_store.h"
#include "format.h"
#include "persist.h"
#include "pmem_test_util.h"

#define DC_LINES 4096
static struct {
	uint8_t *shadow;
	size_t len;
	unsigned n, at;
	struct { size_t off; uint8_t data[64]; } line[DC_LINES];
	unsigned nline;
	char kill_path[600], power_path[600];
} dc_sh;

static void dc_flush(void *arg, const struct fm_persist *p, size_t off, size_t len)
{
	(void)arg;
	for (size_t o = off & ~(size_t)63; o < off + len && o < dc_sh.len; o += 64) {
		if (dc_sh.nline == DC_LINES)
			_exit(5);
		dc_sh.line[dc_sh.nline].off = o;
		memcpy(dc_sh.line[dc_sh.nline++].data, p->base + o, 64);
	}
}

static int dc_drain(void *arg, const struct fm_persist *p)
{
	(void)arg;
	if (dc_sh.n++ == dc_sh.at) {
		if (fmt_write_file(dc_sh.kill_path, p->base, dc_sh.len) ||
		    fmt_write_file(dc_sh.power_path, dc_sh.shadow, dc_sh.len))
			_exit(6);
		_exit(42);
	}
	for (unsigned k = 0; k < dc_sh.nline; k++)
		memcpy(dc_sh.shadow + dc_sh.line[k].off, dc_sh.line[k].data, 64);
	dc_sh.nline = 0;
	return 0;
}

static const struct fm_persist_hooks dc_hooks = { .flush = dc_flush, .drain = dc_drain };

/* The operation under test, on an open store: 0 or a negative errno. */
typedef int (*dc_op_fn)(struct fm_store *s);

/* Open `path` (its recovery) and, if `op`, run it, crashing before drain
 * `at`: 42 (images written), 0 (done first), else failed (3: open, 4: op,
 * 5..7: the shadow). */
static inline int dc_run(const char *path, dc_op_fn op, unsigned at, const char *kill_path,
			 const char *power_path)
{
	int st;
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (pid == 0) {
		struct fm_store *s;

		dc_sh.shadow = fmt_read_file(path, &dc_sh.len);
		if (!dc_sh.shadow)
			_exit(7);
		dc_sh.n = 0;
		dc_sh.at = at;
		dc_sh.nline = 0;
		snprintf(dc_sh.kill_path, sizeof(dc_sh.kill_path), "%s", kill_path);
		snprintf(dc_sh.power_path, sizeof(dc_sh.power_path), "%s", power_path);
		fm_persist_set_hooks(&dc_hooks);
		if (fm_store_open(&s, path, NULL))
			_exit(3);
		if (op && op(s))
			_exit(4);
		fm_store_close(&s);
		_exit(0);
	}
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st));
	return WEXITSTATUS(st);
}

/* Check the image at `path` read-only, then open it (its recovery) into
 * *s: 0, or -1 with a message (the image is neither outcome). */
static inline int dc_open_checked(const char *path, struct fm_store **s)
{
	struct fm_check c;
	size_t len;
	uint8_t *b = fmt_read_file(path, &len);
	int rc;

	assert_non_null(b);
	rc = fm_pool_check(b, len, &c, NULL);
	free(b);
	if (rc) {
		print_error("%s: check: %s\n", path, fm_errormsg());
		return -1;
	}
	if (fm_store_open(s, path, NULL)) {
		print_error("%s: open: %s\n", path, fm_errormsg());
		return -1;
	}
	return 0;
}

/* Which outcome the image at `path` holds: 1 as before, 2 done, 0 (with a
 * message) anything else.  It may open (recover) the file. */
typedef int (*dc_state_fn)(const char *path, void *arg);

struct dc_sweep {
	unsigned drains;   /* drains of open + op + close: the images' count / 2 */
	unsigned images;   /* crash images checked */
	unsigned replays;  /* images of crashed recoveries checked */
	bool seen_new;     /* some power image had the operation done */
	bool seen_pending; /* some image had a `log_op` record pending */
};

/* The sweep of the header comment on a copy of the pool at `base`; the
 * images are "<name>.kill" ... beside it, removed at the end. */
static inline void dc_sweep(const char *base, const char *name, dc_op_fn op, uint32_t log_op,
			    dc_state_fn state, void *arg, struct dc_sweep *out)
{
	char kill_p[600], power_p[600], k2[600], p2[600], copy[600], n[64];
	uint8_t *img;
	size_t len;
	unsigned at, at2;
	int rc;

	memset(out, 0, sizeof(*out));
#define DC_PATH(buf, suffix) \
	(snprintf(n, sizeof(n), "%s.%s", name, suffix), fmt_path(buf, sizeof(buf), n))
	DC_PATH(kill_p, "kill");
	DC_PATH(power_p, "power");
	DC_PATH(k2, "kill2");
	DC_PATH(p2, "power2");
	DC_PATH(copy, "copy");
#undef DC_PATH
	img = fmt_read_file(base, &len);
	assert_non_null(img);
	for (at = 0;; at++) {
		assert_int_equal(fmt_write_file(copy, img, len), 0);
		rc = dc_run(copy, op, at, kill_p, power_p);
		if (rc == 0)
			break; /* every drain of open + op + close visited */
		assert_int_equal(rc, 42);
		for (int which = 0; which < 2; which++) {
			const char *p = which ? power_p : kill_p;
			uint8_t *b2;
			size_t len2;
			struct fm_check c;
			int got;

			b2 = fmt_read_file(p, &len2);
			assert_non_null(b2);
			assert_int_equal(fm_pool_check(b2, len2, &c, NULL), 0);
			out->seen_pending |= c.log_pending && c.rec.op == log_op;
			assert_int_equal(fmt_write_file(copy, b2, len2), 0);
			got = state(copy, arg);
			assert_int_not_equal(got, 0);
			/* its recovery killed before each of its drains: the
			 * same outcome */
			for (at2 = 0;; at2++) {
				assert_int_equal(fmt_write_file(copy, b2, len2), 0);
				rc = dc_run(copy, NULL, at2, k2, p2);
				if (rc == 0)
					break;
				assert_int_equal(rc, 42);
				for (int w2 = 0; w2 < 2; w2++) {
					int g2 = state(w2 ? p2 : k2, arg);

					assert_int_equal(g2, got);
					out->replays++;
				}
			}
			free(b2);
			/* power: once a drain made it done, every later one is */
			if (which == 1) {
				if (out->seen_new)
					assert_int_equal(got, 2);
				out->seen_new |= got == 2;
			}
			out->images++;
		}
	}
	out->drains = at;
	free(img);
	unlink(kill_p);
	unlink(power_p);
	unlink(k2);
	unlink(p2);
	unlink(copy);
}

#endif
