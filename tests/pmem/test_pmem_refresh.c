/* test_pmem_refresh.c -- format 1.4 incremental refresh in the pmem store
 * (fm_store_map_refresh, fm_store_changed_*): the kept bits are exactly
 * "split and not changed" against a reference, CHANGED_UNKNOWN falls back
 * to a full recopy, the refusals write nothing, the checks of the changed
 * bitmaps, and the crash order (store.c, refresh: F1..F4) -- a child
 * killed or losing power before each drain of the refresh, and again
 * before each drain of the recovery of that image, must leave the mapping
 * either as it was (its changed set intact) or fully refreshed.
 *
 * Checked to fail (mutants in store.c, not committed): F1 without its
 * flush fails the crash test (a power image after the F2 drain has the
 * new slot and the old bits; recovery skips F1); the changed bitmap
 * cleared before F1 (step 2) fails the first test at once. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "flashmeta/error.h"
#include "flashmeta/pmem_store.h"
#include "format.h"
#include "persist.h"
#include "drain_crash.h"
#include "pmem_test_util.h"
#include "pool_edit.h"

#define ID 7
#define GRAINS 200 /* 3 words and a partial one */
#define GRAIN 4096u

/* A pool of `slots` slots with mapping ID (10 -> 20) COPYING, generation
 * 1, the grains of `bits` split (durable) and of `changed` in its changed
 * set (reported as runs, as a client's ranges would be). */
static void mk_pool(const char *path, uint32_t slots, const uint8_t *bits,
		    const uint8_t *changed)
{
	struct fm_store_config cfg = { .max_mappings = slots, .max_grains = 512 };
	struct fm_store *s;
	struct fm_mapping m;

	unlink(path);
	assert_int_equal(fm_store_create(&s, path, &cfg), 0);
	assert_int_equal(fm_mapping_init(&m, ID, 10, 20, GRAINS * GRAIN, GRAIN), 0);
	assert_int_equal(fm_store_map_create(s, &m), 0);
	assert_int_equal(fm_store_map_transition(s, ID, FM_MAP_EV_PREPARE, NULL), 0);
	assert_int_equal(fm_store_map_transition(s, ID, FM_MAP_EV_PREPARE_DONE, NULL), 0);
	assert_int_equal(fm_store_map_transition(s, ID, FM_MAP_EV_START, NULL), 0);
	for (uint64_t g = 0; g < GRAINS; g++)
		if (bits[g])
			assert_true(fm_store_split_set(s, ID, 1, g) >= 0);
	assert_true(fm_store_split_commit(s) >= 0);
	for (uint64_t g = 0; g < GRAINS;) {
		uint64_t n = 0;

		while (g + n < GRAINS && changed[g + n])
			n++;
		if (n)
			assert_int_equal(fm_store_changed_set_range(s, ID, 1, g, n), 0);
		g += n ? n : 1;
	}
	fm_store_close(&s);
}

static void random_sets(uint8_t *bits, uint8_t *changed, uint64_t seed)
{
	uint64_t rng = seed;

	for (int g = 0; g < GRAINS; g++) {
		bits[g] = fmt_rand(&rng) % 3 != 0;
		changed[g] = fmt_rand(&rng) % 4 == 0;
	}
	for (int g = 64; g < 140; g++) /* a run across two word boundaries */
		changed[g] = 1;
	bits[0] = 1; /* split and changed, split and not, in the partial word */
	changed[0] = 1;
	bits[GRAINS - 1] = 1;
	changed[GRAINS - 1] = 0;
	changed[GRAINS - 2] = 1;
}

static uint64_t count(const uint8_t *v)
{
	uint64_t n = 0;

	for (int g = 0; g < GRAINS; g++)
		n += v[g];
	return n;
}

/* 1: the mapping as before the refresh (split bits, changed count); 2:
 * refreshed (generation 2, split AND NOT changed, changed set empty); 0
 * (with a message): anything else. */
static int classify(struct fm_store *s, const uint8_t *bits, const uint8_t *changed)
{
	struct fm_store_map_info info;
	uint64_t nch = 99;
	bool ref;

	if (fm_store_map_get(s, ID, &info) || fm_store_changed_count(s, ID, &nch) < 0) {
		print_error("mapping %u missing\n", ID);
		return 0;
	}
	ref = info.map.generation == 2;
	if (info.map.state != FM_MAP_COPYING || (!ref && info.map.generation != 1) ||
	    nch != (ref ? 0 : count(changed)) || info.changed_unknown) {
		print_error("state %d generation %lu changed %lu unknown %d\n", info.map.state,
			    (unsigned long)info.map.generation, (unsigned long)nch,
			    info.changed_unknown);
		return 0;
	}
	for (uint64_t g = 0; g < GRAINS; g++) {
		int want = ref ? bits[g] && !changed[g] : bits[g];

		if (fm_store_split_test(s, ID, g) != want) {
			print_error("%s: grain %lu split %d, want %d\n", ref ? "refreshed" :
				    "as before", (unsigned long)g, !want, want);
			return 0;
		}
	}
	return ref ? 2 : 1;
}

/* The changed bits of slot `slot` in a pool image equal `changed`. */
static void assert_changed_area(const uint8_t *b, uint32_t slot, const uint8_t *changed)
{
	struct fm_sb sb = pe_sb(b);
	const uint8_t *ch = b + sb.changed_off + (uint64_t)slot * sb.bitmap_stride;

	for (uint64_t g = 0; g < GRAINS; g++)
		assert_int_equal((ch[g / 8] >> (g % 8)) & 1, changed[g]);
}

static void refresh__kept_is_split_and_not_changed__durable(void **state)
{
	char path[600];
	uint8_t bits[GRAINS], changed[GRAINS], none[GRAINS] = { 0 };
	struct fm_store *s;
	struct fm_store_map_info info;
	struct fm_store_refresh out;
	uint64_t nch, kept = 0, *b;
	size_t len;

	(void)state;
	for (uint64_t seed = 1; seed <= 20; seed++) {
		random_sets(bits, changed, seed);
		kept = 0;
		for (int g = 0; g < GRAINS; g++)
			kept += bits[g] && !changed[g];
		mk_pool(fmt_path(path, sizeof(path), "ref"), 3, bits, changed);
		b = (uint64_t *)fmt_read_file(path, &len);
		assert_non_null(b);
		assert_changed_area((uint8_t *)b, 0, changed);
		free(b);
		assert_int_equal(fm_store_open(&s, path, NULL), 0);
		assert_int_equal(classify(s, bits, changed), 1);
		/* a split of the old generation pending: committed first */
		assert_true(fm_store_split_set(s, ID, 1, GRAINS - 1) >= 0);
		assert_int_equal(fm_store_map_refresh(s, ID, FM_STORE_REFRESH_CHECK, NULL), 0);
		assert_int_equal(classify(s, bits, changed), 1); /* nothing written */
		assert_int_equal(fm_store_map_refresh(s, ID, 0, &out), 0);
		assert_int_equal(out.map.generation, 2);
		assert_int_equal(out.map.state, FM_MAP_COPYING);
		assert_false(out.full);
		assert_int_equal(out.kept, kept);
		assert_int_equal(out.dropped, count(bits) - kept);
		assert_int_equal(classify(s, bits, changed), 2);
		/* the old generation's reports and splits are refused now */
		assert_int_equal(fm_store_changed_set_range(s, ID, 1, 3, 1), -ESTALE);
		assert_int_equal(fm_store_split_set(s, ID, 1, 5), -ESTALE);
		fm_store_close(&s);
		/* durable, the pool checks clean, the changed area is empty */
		b = (uint64_t *)fmt_read_file(path, &len);
		assert_non_null(b);
		assert_changed_area((uint8_t *)b, 0, none);
		free(b);
		assert_int_equal(fm_store_open(&s, path, NULL), 0);
		assert_int_equal(classify(s, bits, changed), 2);
		fm_store_close(&s);
	}
	/* from idle_or_copied: copy to 100 %, write 3 grains, refresh */
	assert_int_equal(fm_store_open(&s, path, NULL), 0);
	for (uint64_t g = 0; g < GRAINS; g++)
		assert_true(fm_store_split_set(s, ID, 2, g) >= 0);
	assert_int_equal(fm_store_map_transition(s, ID, FM_MAP_EV_COPY_COMPLETE, NULL), 0);
	assert_int_equal(fm_store_changed_set_range(s, ID, 2, 10, 2), 0);
	assert_int_equal(fm_store_changed_set_range(s, ID, 2, 11, 1), 0); /* overlap */
	assert_int_equal(fm_store_changed_set_range(s, ID, 2, GRAINS - 1, 1), 0);
	assert_int_equal(fm_store_changed_count(s, ID, &nch), 0);
	assert_int_equal(nch, 3);
	assert_int_equal(fm_store_map_refresh(s, ID, 0, &out), 0);
	assert_int_equal(out.kept, GRAINS - 3);
	assert_int_equal(out.dropped, 3);
	assert_int_equal(fm_store_map_get(s, ID, &info), 0);
	assert_int_equal(info.map.state, FM_MAP_COPYING);
	assert_int_equal(info.split_count, GRAINS - 3);
	assert_int_equal(fm_store_split_test(s, ID, 11), 0);
	assert_int_equal(fm_store_split_test(s, ID, 12), 1);
	/* a plain start (stop, prepare, start) also empties the set */
	assert_int_equal(fm_store_changed_set_range(s, ID, 3, 0, GRAINS), 0);
	assert_int_equal(fm_store_map_transition(s, ID, FM_MAP_EV_STOP, NULL), 0);
	assert_int_equal(fm_store_map_transition(s, ID, FM_MAP_EV_STOP_DONE, NULL), 0);
	assert_int_equal(fm_store_map_transition(s, ID, FM_MAP_EV_PREPARE, NULL), 0);
	assert_int_equal(fm_store_map_transition(s, ID, FM_MAP_EV_PREPARE_DONE, NULL), 0);
	assert_int_equal(fm_store_map_transition(s, ID, FM_MAP_EV_START, NULL), 0);
	assert_int_equal(fm_store_changed_count(s, ID, &nch), 0);
	assert_int_equal(nch, 0);
	fm_store_close(&s);
	unlink(path);
}

static void refresh__changed_unknown__full_recopy_then_known(void **state)
{
	char path[600];
	uint8_t bits[GRAINS], changed[GRAINS];
	struct fm_store *s;
	struct fm_store_map_info info;
	struct fm_store_refresh out;
	uint64_t nch;

	(void)state;
	random_sets(bits, changed, 3);
	mk_pool(fmt_path(path, sizeof(path), "unk"), 2, bits, changed);
	assert_int_equal(fm_store_open(&s, path, NULL), 0);
	assert_int_equal(fm_store_changed_unknown(s, ID, 0), -ESTALE);
	assert_int_equal(fm_store_changed_unknown(s, ID, 1), 0);
	assert_int_equal(fm_store_changed_unknown(s, ID, 1), 0); /* idempotent */
	fm_store_close(&s);
	assert_int_equal(fm_store_open(&s, path, NULL), 0); /* durable */
	assert_int_equal(fm_store_map_get(s, ID, &info), 0);
	assert_true(info.changed_unknown);
	assert_int_equal(fm_store_changed_count(s, ID, &nch), 1);
	assert_int_equal(fm_store_map_refresh(s, ID, 0, &out), 0);
	assert_true(out.full);
	assert_int_equal(out.kept, 0);
	assert_int_equal(out.dropped, count(bits));
	assert_int_equal(fm_store_map_get(s, ID, &info), 0);
	assert_false(info.changed_unknown);
	assert_int_equal(info.split_count, 0);
	assert_int_equal(info.map.generation, 2);
	assert_int_equal(fm_store_changed_count(s, ID, &nch), 0);
	assert_int_equal(nch, 0);
	fm_store_close(&s);
	unlink(path);
}

static void refresh__refusals__nothing_written(void **state)
{
	char path[600];
	uint8_t bits[GRAINS] = { 0 }, changed[GRAINS] = { 0 };
	struct fm_store *s;
	struct fm_store_stats st0, st1;
	struct fm_mapping m;
	uint64_t nch;
	size_t len;
	uint8_t *b;

	(void)state;
	bits[3] = 1;
	changed[4] = 1;
	mk_pool(fmt_path(path, sizeof(path), "refuse"), 3, bits, changed);
	assert_int_equal(fm_store_open(&s, path, NULL), 0);
	fm_store_stats(s, &st0);
	assert_int_equal(fm_store_map_refresh(s, 99, 0, NULL), -ENOENT);
	assert_int_equal(fm_store_map_refresh(s, ID, 0x2, NULL), -EINVAL);
	assert_int_equal(fm_store_changed_set_range(s, 99, 1, 0, 1), -ENOENT);
	assert_int_equal(fm_store_changed_set_range(s, ID, 2, 0, 1), -ESTALE);
	assert_int_equal(fm_store_changed_set_range(s, ID, 1, 0, 0), -ERANGE);
	assert_int_equal(fm_store_changed_set_range(s, ID, 1, GRAINS, 1), -ERANGE);
	assert_int_equal(fm_store_changed_set_range(s, ID, 1, 1, GRAINS), -ERANGE);
	assert_int_equal(fm_store_changed_set_range(s, ID, 1, 1, UINT64_MAX), -ERANGE);
	/* preparing, prepared, stopping, stopped: a second mapping */
	assert_int_equal(fm_mapping_init(&m, 8, 30, 40, GRAINS * GRAIN, GRAIN), 0);
	assert_int_equal(fm_store_map_create(s, &m), 0);
	assert_int_equal(fm_store_map_transition(s, 8, FM_MAP_EV_PREPARE, NULL), 0);
	assert_int_equal(fm_store_map_refresh(s, 8, 0, NULL), -EPERM);
	assert_non_null(strstr(fm_errormsg(), "is preparing: a refresh needs copying or"));
	assert_int_equal(fm_store_map_transition(s, 8, FM_MAP_EV_PREPARE_DONE, NULL), 0);
	assert_int_equal(fm_store_map_refresh(s, 8, 0, NULL), -EPERM);
	assert_int_equal(fm_store_map_transition(s, 8, FM_MAP_EV_START, NULL), 0);
	assert_int_equal(fm_store_map_transition(s, 8, FM_MAP_EV_STOP, NULL), 0);
	assert_int_equal(fm_store_map_refresh(s, 8, 0, NULL), -EPERM);
	assert_int_equal(fm_store_map_transition(s, 8, FM_MAP_EV_STOP_DONE, NULL), 0);
	assert_int_equal(fm_store_map_refresh(s, 8, 0, NULL), -EPERM);
	assert_non_null(strstr(fm_errormsg(), "stopped"));
	assert_int_equal(fm_store_map_delete(s, 8), 0);
	/* a grouped mapping */
	assert_int_equal(fm_store_map_set_group(s, ID, 5), 0);
	fm_store_stats(s, &st0);
	assert_int_equal(fm_store_map_refresh(s, ID, 0, NULL), -EBUSY);
	assert_non_null(strstr(fm_errormsg(), "consistency group 5"));
	fm_store_stats(s, &st1);
	assert_int_equal(st1.log_seq, st0.log_seq);
	assert_int_equal(fm_store_map_set_group(s, ID, 0), 0);
	/* a restored mapping (its changed set went with the restore) */
	assert_int_equal(fm_store_map_reverse(s, ID, 0, NULL), 0);
	assert_int_equal(fm_store_changed_count(s, ID, &nch), 0);
	assert_int_equal(nch, 0);
	fm_store_stats(s, &st0);
	assert_int_equal(fm_store_map_refresh(s, ID, 0, NULL), -EPERM);
	assert_non_null(strstr(fm_errormsg(), "restored"));
	fm_store_stats(s, &st1);
	assert_int_equal(st1.log_seq, st0.log_seq);
	assert_int_equal(fm_store_map_reverse(s, ID, 0, NULL), 0); /* back */
	assert_int_equal(fm_store_map_refresh(s, ID, FM_STORE_REFRESH_CHECK, NULL), 0);
	fm_store_close(&s);
	/* a 1.3 pool opens and refuses (no changed bitmaps to trust) */
	b = fmt_read_file(path, &len);
	assert_non_null(b);
	pe_downgrade(b, 3, FM_POOL_INCOMPAT_1_3);
	assert_int_equal(fmt_write_file(path, b, len), 0);
	free(b);
	assert_int_equal(fm_store_open(&s, path, NULL), 0);
	assert_int_equal(fm_store_map_refresh(s, ID, 0, NULL), -EOPNOTSUPP);
	assert_non_null(strstr(fm_errormsg(), "format 1.3"));
	assert_int_equal(fm_store_changed_set_range(s, ID, 3, 0, 1), -EOPNOTSUPP);
	assert_int_equal(fm_store_changed_unknown(s, ID, 3), -EOPNOTSUPP);
	assert_int_equal(fm_store_changed_count(s, ID, &nch), -EOPNOTSUPP);
	/* a start still works, and leaves no changed area behind */
	assert_int_equal(fm_store_map_restart(s, ID, NULL), 0);
	fm_store_close(&s);
	unlink(path);
}

/* The checks of the changed bitmaps at open: own errno, nothing written. */
static void open__changed_area_damage__own_errno(void **state)
{
	char path[600];
	uint8_t bits[GRAINS] = { 0 }, changed[GRAINS] = { 0 };
	struct fm_store *s;
	struct fm_check c;
	struct fm_sb sb;
	size_t len;
	uint8_t *gold, *b;

	(void)state;
	changed[5] = 1;
	mk_pool(fmt_path(path, sizeof(path), "dmg"), 2, bits, changed);
	gold = fmt_read_file(path, &len);
	assert_non_null(gold);
	sb = pe_sb(gold);
	assert_int_equal(sb.changed_off, sb.bitmap_off + 2 * sb.bitmap_stride);
	assert_int_equal(sb.pool_size, sb.changed_off + 2 * sb.bitmap_stride);
	b = malloc(len);
	assert_non_null(b);
	/* a bit past grain_count (200: word 3, bit 8) */
	memcpy(b, gold, len);
	b[sb.changed_off + 3 * 8 + 1] = 1;
	assert_int_equal(fm_pool_check(b, len, &c, NULL), -ERANGE);
	assert_non_null(strstr(fm_errormsg(), "changed bits set past grain"));
	/* past the bitmap's bytes */
	memcpy(b, gold, len);
	b[sb.changed_off + 64] = 1;
	assert_int_equal(fm_pool_check(b, len, &c, NULL), -ERANGE);
	/* in the free slot's area */
	memcpy(b, gold, len);
	b[sb.changed_off + sb.bitmap_stride + 100] = 1;
	assert_int_equal(fm_pool_check(b, len, &c, NULL), -ENOTEMPTY);
	assert_non_null(strstr(fm_errormsg(), "changed bitmap"));
	assert_int_equal(fmt_write_file(path, b, len), 0);
	s = (void *)1;
	assert_int_equal(fm_store_open(&s, path, NULL), -ENOTEMPTY);
	assert_null(s);
	/* a changed_off in a pool without CHANGED; a misplaced one */
	memcpy(b, gold, len);
	sb = pe_sb(b);
	sb.incompat = FM_POOL_INCOMPAT_1_3;
	pe_put_sb(b, &sb);
	assert_int_equal(fm_pool_check(b, len, &c, NULL), -EINVAL);
	assert_non_null(strstr(fm_errormsg(), "reserved"));
	memcpy(b, gold, len);
	sb = pe_sb(b);
	sb.changed_off += 4096;
	pe_put_sb(b, &sb);
	assert_int_equal(fm_pool_check(b, len, &c, NULL), -EINVAL);
	assert_non_null(strstr(fm_errormsg(), "changed bitmaps at"));
	/* a CHANGED_UNKNOWN flag in a 1.3 pool is an unknown flag */
	memcpy(b, gold, len);
	pe_downgrade(b, 3, FM_POOL_INCOMPAT_1_3);
	memset(b + pe_sb(gold).changed_off, 0, 2 * sb.bitmap_stride);
	{
		struct fm_slot_media *sm = (struct fm_slot_media *)(b + FM_TABLE_OFF);

		fm_le32_put(&sm->flags, FM_SLOT_IN_USE | FM_SLOT_CHANGED_UNKNOWN);
		fm_le32_put(&sm->checksum, fm_slot_checksum(sm));
	}
	assert_int_equal(fm_pool_check(b, len, &c, NULL), -EDOM);
	/* the gold pool is fine */
	assert_int_equal(fm_pool_check(gold, len, &c, NULL), 0);
	free(b);
	free(gold);
	unlink(path);
}

/* ---- crashes -------------------------------------------------------- */

static int refresh_op(struct fm_store *s)
{
	return fm_store_map_refresh(s, ID, 0, NULL);
}

struct sets {
	const uint8_t *bits, *changed;
};

/* Check an image read-only, then open it: as before or refreshed; the
 * changed bits on media as `changed` (before) or none (after). */
static int image_state(const char *path, void *arg)
{
	static const uint8_t none[GRAINS];
	const struct sets *st = arg;
	struct fm_store *s;
	size_t len;
	uint8_t *b;
	int rc;

	if (dc_open_checked(path, &s))
		return 0;
	rc = classify(s, st->bits, st->changed);
	fm_store_close(&s);
	b = fmt_read_file(path, &len); /* after the recovery */
	assert_non_null(b);
	if (rc)
		assert_changed_area(b, 0, rc == 2 ? none : st->changed);
	free(b);
	return rc;
}

/* Killed or losing power before each drain of the refresh, and its
 * recovery before each of its own (drain_crash.h): as before (changed set
 * intact) or fully refreshed, the same after the recovery (F1 skipped
 * once F2 is durable). */
static void refresh__crash_before_each_drain__old_or_new_and_recovery_too(void **state)
{
	char base[600];
	uint8_t bits[GRAINS], changed[GRAINS];
	struct sets st = { bits, changed };
	struct dc_sweep sw;

	(void)state;
	random_sets(bits, changed, 23);
	mk_pool(fmt_path(base, sizeof(base), "crash"), 2, bits, changed);
	dc_sweep(base, "crash", refresh_op, FM_LOG_REFRESH, image_state, &st, &sw);
	assert_true(sw.seen_new);
	assert_true(sw.seen_pending); /* some image had the record pending */
	assert_true(sw.drains >= 3); /* the record, F1+F2, F3, the applied word */
	print_message("refresh: %u crash images, %u recovery-crash images\n", sw.images,
		      sw.replays);
	unlink(base);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(refresh__kept_is_split_and_not_changed__durable),
		cmocka_unit_test(refresh__changed_unknown__full_recopy_then_known),
		cmocka_unit_test(refresh__refusals__nothing_written),
		cmocka_unit_test(open__changed_area_damage__own_errno),
		cmocka_unit_test(refresh__crash_before_each_drain__old_or_new_and_recovery_too),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
