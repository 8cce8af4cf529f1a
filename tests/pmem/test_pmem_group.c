/* test_pmem_group.c -- format 1.2 slot extensions in the pmem store: the
 * autodelete flag and consistency groups, their validation, 1.1 pools
 * beside them, and the group start losing power before every drain. */
#include <errno.h>
#include <inttypes.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <sys/wait.h>
#include <cmocka.h>

#include "flashmeta/error.h"
#include "flashmeta/pmem_store.h"
#include "format.h"
#include "persist.h"
#include "pmem_test_util.h"
#include "pool_edit.h"

#define GRAIN 4096u

static const struct fm_store_config cfg = {
	.max_mappings = 8, .max_grains = 1000, .view = FM_STORE_VIEW_MIRROR,
};

static void mk_map(struct fm_mapping *m, uint64_t id, uint64_t grains)
{
	assert_int_equal(fm_mapping_init(m, id, 100 + id, 200 + id,
					 grains * GRAIN, GRAIN), 0);
}

static void create_prepared(struct fm_store *s, uint64_t id)
{
	struct fm_mapping m;

	mk_map(&m, id, 64);
	assert_int_equal(fm_store_map_create(s, &m), 0);
	assert_int_equal(fm_store_map_transition(s, id, FM_MAP_EV_PREPARE, NULL), 0);
	assert_int_equal(fm_store_map_transition(s, id, FM_MAP_EV_PREPARE_DONE, NULL), 0);
}

static struct fm_store_map_info get(struct fm_store *s, uint64_t id)
{
	struct fm_store_map_info i;

	assert_int_equal(fm_store_map_get(s, id, &i), 0);
	return i;
}

/* ---- format -------------------------------------------------------- */

static void format__slot_ext__roundtrip_at_offsets(void **state)
{
	(void)state;
	struct fm_slot s = { 0 }, back;
	struct fm_slot_media m;
	const uint8_t *b = (const uint8_t *)&m;

	s.flags = FM_SLOT_IN_USE | FM_SLOT_AUTODELETE | FM_SLOT_GROUP_PENDING;
	s.group = 0x1122334455667788ull;
	mk_map(&s.m, 3, 10);
	fm_slot_encode(&m, &s);
	assert_int_equal(b[68], 0x7);     /* flags, LE */
	assert_int_equal(b[72], 0x88);    /* group, LE */
	assert_int_equal(b[79], 0x11);
	for (size_t k = 80; k < 124; k++) /* reserved */
		assert_int_equal(b[k], 0);
	fm_slot_decode(&back, &m);
	assert_int_equal(back.flags, s.flags);
	assert_int_equal(back.group, s.group);
	/* the checksum covers the group */
	m.group.b[3] ^= 1;
	assert_int_not_equal(fm_le32_get(&m.checksum), fm_slot_checksum(&m));
}

static void format__validate__flags_and_group_by_pool_features(void **state)
{
	(void)state;
	struct fm_sb sb;
	struct fm_slot s = { 0 };

	assert_int_equal(fm_layout_compute(&sb, 4, 1000), 0);
	assert_true(sb.incompat & FM_POOL_INCOMPAT_SLOT_EXT);
	assert_int_equal(sb.minor, 4);
	mk_map(&s.m, 3, 10);
	s.bitmap_off = sb.bitmap_off;
	s.bitmap_len = fm_bitmap_len(10);
	s.flags = FM_SLOT_IN_USE | FM_SLOT_AUTODELETE;
	s.group = 9;
	assert_int_equal(fm_slot_validate(&sb, 0, &s), 0);
	s.flags |= FM_SLOT_GROUP_PENDING;
	assert_int_equal(fm_slot_validate(&sb, 0, &s), 0);
	s.group = 0; /* pending needs a group */
	assert_int_equal(fm_slot_validate(&sb, 0, &s), -EDOM);
	assert_non_null(strstr(fm_errormsg(), "pending without a group"));
	s.flags = FM_SLOT_IN_USE | 0x20; /* unknown flag */
	assert_int_equal(fm_slot_validate(&sb, 0, &s), -EDOM);
	s.flags = FM_SLOT_AUTODELETE; /* not in use */
	assert_int_equal(fm_slot_validate(&sb, 0, &s), -EDOM);
	/* a 1.1 pool: only IN_USE, group must be zero */
	sb.incompat = FM_POOL_INCOMPAT_1_1;
	sb.minor = 1;
	s.flags = FM_SLOT_IN_USE;
	assert_int_equal(fm_slot_validate(&sb, 0, &s), 0);
	s.flags = FM_SLOT_IN_USE | FM_SLOT_AUTODELETE;
	assert_int_equal(fm_slot_validate(&sb, 0, &s), -EDOM);
	assert_non_null(strstr(fm_errormsg(), "1.0/1.1 pool"));
	s.flags = FM_SLOT_IN_USE;
	s.group = 1;
	assert_int_equal(fm_slot_validate(&sb, 0, &s), -EDOM);
	assert_non_null(strstr(fm_errormsg(), "reserved bytes"));
}

/* ---- store: autodelete, groups ------------------------------------- */

static void autodelete__persisted_across_reopen(void **state)
{
	(void)state;
	char path[600];
	struct fm_store *s;
	struct fm_mapping m;
	struct fm_store_stats st;
	uint64_t ops;

	assert_int_equal(fm_store_create(&s, fmt_path(path, sizeof(path), "ad"), &cfg), 0);
	mk_map(&m, 1, 64);
	assert_int_equal(fm_store_map_create_opt(s, &m, FM_STORE_CREATE_AUTODELETE), 0);
	mk_map(&m, 2, 64);
	assert_int_equal(fm_store_map_create(s, &m), 0);
	assert_int_equal(fm_store_map_create_opt(s, &m, 0x10), -EINVAL);
	assert_true(get(s, 1).autodelete);
	assert_false(get(s, 2).autodelete);
	assert_int_equal(fm_store_map_set_autodelete(s, 2, true), 0);
	assert_int_equal(fm_store_map_set_autodelete(s, 1, false), 0);
	fm_store_stats(s, &st);
	ops = st.log_ops;
	assert_int_equal(fm_store_map_set_autodelete(s, 1, false), 0); /* already */
	fm_store_stats(s, &st);
	assert_int_equal(st.log_ops, ops); /* nothing logged */
	assert_int_equal(fm_store_map_set_autodelete(s, 7, true), -ENOENT);
	fm_store_close(&s);

	assert_int_equal(fm_store_open(&s, path, NULL), 0);
	assert_false(get(s, 1).autodelete);
	assert_true(get(s, 2).autodelete);
	/* the flag survives a transition (the slot image carries it) */
	assert_int_equal(fm_store_map_transition(s, 2, FM_MAP_EV_PREPARE, NULL), 0);
	assert_true(get(s, 2).autodelete);
	fm_store_close(&s);
	unlink(path);
}

static void group__members_and_set__limits(void **state)
{
	(void)state;
	char path[600];
	struct fm_store *s;
	struct fm_mapping m;
	uint64_t ids[4];

	assert_int_equal(fm_store_create(&s, fmt_path(path, sizeof(path), "grp"), &cfg), 0);
	for (uint64_t id = 1; id <= 3; id++) {
		mk_map(&m, id, 64);
		assert_int_equal(fm_store_map_create(s, &m), 0);
	}
	assert_int_equal(fm_store_group_members(s, 0, ids, 4), -EINVAL);
	assert_int_equal(fm_store_group_members(s, 5, ids, 4), 0);
	assert_int_equal(fm_store_map_set_group(s, 3, 5), 0);
	assert_int_equal(fm_store_map_set_group(s, 1, 5), 0);
	assert_int_equal(fm_store_map_set_group(s, 1, 5), 0); /* already */
	assert_int_equal(fm_store_map_set_group(s, 1, 6), -EBUSY);
	assert_non_null(strstr(fm_errormsg(), "is in group 5"));
	assert_int_equal(fm_store_map_set_group(s, 9, 5), -ENOENT);
	assert_int_equal(fm_store_group_members(s, 5, ids, 4), 2);
	assert_int_equal(ids[0], 1); /* slot order */
	assert_int_equal(ids[1], 3);
	assert_int_equal(fm_store_group_members(s, 5, ids, 1), 2); /* count beyond cap */
	fm_store_close(&s);

	assert_int_equal(fm_store_open(&s, path, NULL), 0);
	assert_int_equal(get(s, 1).group, 5);
	assert_int_equal(get(s, 2).group, 0);
	assert_int_equal(fm_store_map_set_group(s, 3, 0), 0);
	assert_int_equal(fm_store_group_members(s, 5, ids, 4), 1);
	fm_store_close(&s);
	unlink(path);
}

static void group_start__all_members__one_step(void **state)
{
	(void)state;
	char path[600];
	struct fm_store *s;
	struct fm_store_map_info i;
	uint8_t *before, *after;
	size_t l1, l2;

	assert_int_equal(fm_store_create(&s, fmt_path(path, sizeof(path), "gs"), &cfg), 0);
	create_prepared(s, 4);
	create_prepared(s, 2);
	create_prepared(s, 7); /* not in the group */
	assert_int_equal(fm_store_map_set_group(s, 4, 11), 0);
	assert_int_equal(fm_store_map_set_group(s, 2, 11), 0);
	assert_int_equal(fm_store_group_start(s, 0), -EINVAL);
	assert_int_equal(fm_store_group_start(s, 12), -ENOENT);
	assert_int_equal(fm_store_group_start(s, 11), 2);
	for (uint64_t id = 2; id <= 4; id += 2) {
		i = get(s, id);
		assert_int_equal(i.map.state, FM_MAP_COPYING);
		assert_int_equal(i.map.generation, 1);
		assert_int_equal(i.group, 11);
	}
	assert_int_equal(get(s, 7).map.state, FM_MAP_PREPARED);
	/* bits of the new generation, then a second start is refused and
	 * writes nothing: the members are copying, not prepared */
	assert_int_equal(fm_store_split_set(s, 2, 1, 3), 1);
	assert_int_equal(fm_store_split_commit(s), 1);
	before = fmt_read_file(path, &l1);
	assert_int_equal(fm_store_group_start(s, 11), -EPERM);
	assert_non_null(strstr(fm_errormsg(), "not prepared: nothing started"));
	after = fmt_read_file(path, &l2);
	assert_int_equal(l1, l2);
	assert_memory_equal(before, after, l1);
	free(before);
	free(after);
	fm_store_close(&s);

	/* durable; no flag left behind (a reopen completes nothing) */
	assert_int_equal(fm_store_open(&s, path, NULL), 0);
	{
		struct fm_store_stats st;

		fm_store_stats(s, &st);
		assert_int_equal(st.recovered_groups, 0);
	}
	assert_int_equal(get(s, 4).map.state, FM_MAP_COPYING);
	assert_int_equal(get(s, 2).split_count, 1);
	fm_store_close(&s);
	unlink(path);
}

/* A 1.1 pool (made by the previous release): opens and works, refuses the
 * 1.2 features with a message naming its format, and stays 1.1. */
static void legacy_1_1__opens__ext_refused__stays_1_1(void **state)
{
	(void)state;
	char path[600];
	struct fm_store *s;
	struct fm_mapping m;
	struct fm_check c;
	size_t len;
	uint8_t *b;

	assert_int_equal(fm_store_create(&s, fmt_path(path, sizeof(path), "v11"), &cfg), 0);
	create_prepared(s, 1);
	fm_store_close(&s);
	b = fmt_read_file(path, &len);
	pe_downgrade(b, 1, FM_POOL_INCOMPAT_1_1);
	assert_int_equal(fmt_write_file(path, b, len), 0);
	free(b);

	assert_int_equal(fm_store_open(&s, path, NULL), 0);
	mk_map(&m, 2, 64);
	assert_int_equal(fm_store_map_create_opt(s, &m, FM_STORE_CREATE_AUTODELETE),
			 -EOPNOTSUPP);
	assert_non_null(strstr(fm_errormsg(), "pool format 1.1 has no room for autodelete"));
	assert_int_equal(fm_store_map_set_autodelete(s, 1, true), -EOPNOTSUPP);
	assert_int_equal(fm_store_map_set_group(s, 1, 3), -EOPNOTSUPP);
	assert_int_equal(fm_store_group_start(s, 3), -EOPNOTSUPP);
	assert_int_equal(fm_store_map_create(s, &m), 0);
	assert_int_equal(fm_store_map_transition(s, 1, FM_MAP_EV_START, NULL), 0);
	fm_store_close(&s);

	b = fmt_read_file(path, &len);
	assert_int_equal(fm_pool_check(b, len, &c, NULL), 0);
	assert_int_equal(c.sb.minor, 1);
	assert_int_equal(c.sb.incompat, FM_POOL_INCOMPAT_1_1);
	free(b);
	unlink(path);
}

/* Slot corruption in a 1.2 pool: each with its errno, nothing written. */
static void open__ext_slot_corruption__edom(void **state)
{
	(void)state;
	char path[600];
	struct fm_store *s;
	size_t len;
	uint8_t *b;
	static const struct { uint32_t flags; uint64_t group; const char *msg; } bad[] = {
		{ FM_SLOT_IN_USE | 0x20, 0, "flags 0x21 unknown" },
		{ FM_SLOT_IN_USE | FM_SLOT_GROUP_PENDING, 0, "pending without a group" },
	};

	assert_int_equal(fm_store_create(&s, fmt_path(path, sizeof(path), "bad"), &cfg), 0);
	create_prepared(s, 1);
	fm_store_close(&s);
	for (size_t k = 0; k < sizeof(bad) / sizeof(bad[0]); k++) {
		struct fm_slot_media *sm;
		uint8_t *after;
		size_t l2;

		b = fmt_read_file(path, &len);
		sm = (struct fm_slot_media *)(b + FM_TABLE_OFF);
		fm_le32_put(&sm->flags, bad[k].flags);
		fm_le64_put(&sm->group, bad[k].group);
		fm_le32_put(&sm->checksum, fm_slot_checksum(sm));
		assert_int_equal(fmt_write_file(path, b, len), 0);
		s = (void *)1;
		assert_int_equal(fm_store_open(&s, path, NULL), -EDOM);
		assert_non_null(strstr(fm_errormsg(), bad[k].msg));
		assert_null(s);
		after = fmt_read_file(path, &l2);
		assert_memory_equal(after, b, len);
		free(after);
		/* put the good pool back for the next case */
		fm_le32_put(&sm->flags, FM_SLOT_IN_USE);
		fm_le64_put(&sm->group, 0);
		fm_le32_put(&sm->checksum, fm_slot_checksum(sm));
		assert_int_equal(fmt_write_file(path, b, len), 0);
		free(b);
	}
	unlink(path);
}

/* ---- crash: the group start killed before every drain ------------------ */

/*
 * A power failure model in the child (the shadow-image idea of
 * test_pmem_powerfail, kept small): the shadow starts as the pool file;
 * each flushed cache line is staged with its bytes at the flush; a drain
 * makes the staged lines part of the shadow.  Before drain k + 1 the
 * child writes the shadow -- exactly what was durable -- over the pool
 * file and dies.
 */
#define SH_LINES 8192
static struct {
	const char *path;
	uint8_t *shadow;
	size_t len;
	unsigned long crash_after, drains;
	size_t n;
	struct { size_t off; uint8_t data[64]; } line[SH_LINES];
} sh;

static void sh_flush(void *arg, const struct fm_persist *p, size_t off, size_t len)
{
	(void)arg;
	for (size_t a = off & ~(size_t)63; a < off + len && a + 64 <= sh.len; a += 64) {
		if (sh.n == SH_LINES)
			_exit(5); /* the test's own limit: fails loudly */
		sh.line[sh.n].off = a;
		memcpy(sh.line[sh.n].data, (const uint8_t *)p->base + a, 64);
		sh.n++;
	}
}

static int sh_drain(void *arg, const struct fm_persist *p)
{
	(void)arg;
	(void)p;
	if (++sh.drains > sh.crash_after) {
		if (fmt_write_file(sh.path, sh.shadow, sh.len))
			_exit(6);
		_exit(42); /* power lost before this drain */
	}
	for (size_t k = 0; k < sh.n; k++)
		memcpy(sh.shadow + sh.line[k].off, sh.line[k].data, 64);
	sh.n = 0;
	return 0;
}

static const struct fm_persist_hooks sh_hooks = { .flush = sh_flush, .drain = sh_drain };

#define CR_MEMBERS 3

/*
 * A child opens the pool (3 members PREPARED at generation 0, and one
 * PREPARED mapping outside the group) and runs fm_store_group_start,
 * losing power (above) before drain number k + 1; k goes from 0 until the
 * start completes.  After each death the parent reopens (which completes
 * a committed start) and checks all-or-nothing: every member PREPARED at
 * generation 0, or every member COPYING at generation 1.  Then the next k
 * on a fresh copy of the pool.  A store that started members one by one
 * without the commit point fails here at the kill between two members'
 * STARTs.
 */
static void group_start__power_lost_before_each_drain__all_or_nothing(void **state)
{
	(void)state;
	char path[600], gold[600];
	struct fm_store *s;
	size_t len;
	uint8_t *b;
	unsigned long k;
	unsigned none = 0, all = 0, recovered = 0;

	assert_int_equal(fm_store_create(&s, fmt_path(gold, sizeof(gold), "crgold"), &cfg), 0);
	for (uint64_t id = 1; id <= CR_MEMBERS; id++) {
		create_prepared(s, id * 10);
		assert_int_equal(fm_store_map_set_group(s, id * 10, 77), 0);
	}
	create_prepared(s, 99); /* outside the group: never touched */
	fm_store_close(&s);
	b = fmt_read_file(gold, &len);
	fmt_path(path, sizeof(path), "crash");

	for (k = 0; k < 1000; k++) {
		pid_t pid;
		int st, started;
		struct fm_store_stats ss;

		assert_int_equal(fmt_write_file(path, b, len), 0);
		pid = fork();
		assert_true(pid >= 0);
		if (pid == 0) {
			if (fm_store_open(&s, path, NULL))
				_exit(3);
			sh.path = path;
			sh.shadow = fmt_read_file(path, &sh.len); /* durable: open persisted */
			sh.crash_after = k;
			if (!sh.shadow)
				_exit(7);
			fm_persist_set_hooks(&sh_hooks);
			_exit(fm_store_group_start(s, 77) == CR_MEMBERS ? 0 : 4);
		}
		assert_int_equal(waitpid(pid, &st, 0), pid);
		assert_true(WIFEXITED(st));
		assert_true(WEXITSTATUS(st) == 0 || WEXITSTATUS(st) == 42);

		assert_int_equal(fm_store_open(&s, path, NULL), 0);
		fm_store_stats(s, &ss);
		recovered += ss.recovered_groups ? 1 : 0;
		started = get(s, 10).map.state == FM_MAP_COPYING;
		for (uint64_t id = 1; id <= CR_MEMBERS; id++) {
			struct fm_store_map_info i = get(s, id * 10);

			if (started) {
				assert_int_equal(i.map.state, FM_MAP_COPYING);
				assert_int_equal(i.map.generation, 1);
			} else {
				if (i.map.state != FM_MAP_PREPARED)
					fail_msg("kill before drain %lu: member 10 not started, "
						 "member %" PRIu64 " is %s", k + 1, id * 10,
						 fm_map_state_name(i.map.state));
				assert_int_equal(i.map.generation, 0);
			}
			assert_int_equal(i.group, 77);
		}
		assert_int_equal(get(s, 99).map.state, FM_MAP_PREPARED);
		fm_store_close(&s);
		/* the reopened pool is clean: a second open completes nothing */
		assert_int_equal(fm_store_open(&s, path, NULL), 0);
		fm_store_stats(s, &ss);
		assert_int_equal(ss.recovered_groups, 0);
		fm_store_close(&s);
		if (started)
			all++;
		else
			none++;
		if (WEXITSTATUS(st) == 0)
			break; /* ran to the end: every kill point seen */
	}
	print_message("group start: %lu kill points, %u none started, %u all started,"
		      " %u completed by recovery\n", k, none, all, recovered);
	/* the test saw both sides and recovery doing the completion */
	assert_true(none > 0);
	assert_true(recovered > 0);
	assert_true(all > recovered);
	free(b);
	unlink(path);
	unlink(gold);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(format__slot_ext__roundtrip_at_offsets),
		cmocka_unit_test(format__validate__flags_and_group_by_pool_features),
		cmocka_unit_test(autodelete__persisted_across_reopen),
		cmocka_unit_test(group__members_and_set__limits),
		cmocka_unit_test(group_start__all_members__one_step),
		cmocka_unit_test(legacy_1_1__opens__ext_refused__stays_1_1),
		cmocka_unit_test(open__ext_slot_corruption__edom),
		cmocka_unit_test(group_start__power_lost_before_each_drain__all_or_nothing),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
