/* test_pmem_reverse.c -- format 1.3 restore in the pmem store
 * (fm_store_map_reverse): the bitmap inverted and the direction swapped,
 * the refusals, and the crash order (store.c, restore: R1..R4) -- a child
 * killed or losing power before each drain of the reverse, and again
 * before each drain of the recovery of that image, must leave the mapping
 * either as it was or fully reversed, never a mix.
 *
 * Checked to fail (mutant in store.c, not committed): R1 redone even when
 * slot j already is the image (no idempotence guard) fails the crash test
 * at once -- a recovery killed after R3 began recomputes the new bitmap
 * from the half-cleared old one. */
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
 * 1, and the grains of `bits` split (durable). */
static void mk_pool(const char *path, uint32_t slots, const uint8_t *bits)
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
	fm_store_close(&s);
}

static void random_bits(uint8_t *bits, uint64_t seed)
{
	uint64_t rng = seed;

	for (int g = 0; g < GRAINS; g++)
		bits[g] = fmt_rand(&rng) % 3 == 0;
	bits[0] = 1;          /* first and last grain of the partial word */
	bits[GRAINS - 1] = 0;
}

/* 1: the mapping as before the reverse; 2: fully reversed; 0 (with a
 * message): anything else */
static int classify(struct fm_store *s, const uint8_t *bits)
{
	struct fm_store_map_info info;
	bool rev;

	if (fm_store_map_get(s, ID, &info)) {
		print_error("mapping %u missing\n", ID);
		return 0;
	}
	rev = info.map.generation == 2;
	if (info.map.state != FM_MAP_COPYING || (!rev && info.map.generation != 1) ||
	    info.map.source_vol != (rev ? 20u : 10u) || info.map.target_vol != (rev ? 10u : 20u) ||
	    info.reversed != rev) {
		print_error("state %d generation %lu source %lu reversed %d\n", info.map.state,
			    (unsigned long)info.map.generation, (unsigned long)info.map.source_vol,
			    info.reversed);
		return 0;
	}
	for (uint64_t g = 0; g < GRAINS; g++) {
		int b = fm_store_split_test(s, ID, g);

		if (b != (rev ? !bits[g] : bits[g])) {
			print_error("%s: grain %lu split %d, bit before %d\n", rev ? "reversed" :
				    "as before", (unsigned long)g, b, bits[g]);
			return 0;
		}
	}
	return rev ? 2 : 1;
}

static void reverse__bitmap_inverted_direction_swapped__twice_is_identity(void **state)
{
	char path[600];
	uint8_t bits[GRAINS];
	struct fm_store *s;
	struct fm_store_map_info before, after;
	struct fm_mapping out;
	uint64_t n = 0;

	(void)state;
	random_bits(bits, 11);
	for (int g = 0; g < GRAINS; g++)
		n += bits[g];
	mk_pool(fmt_path(path, sizeof(path), "rev"), 3, bits);
	assert_int_equal(fm_store_open(&s, path, NULL), 0);
	assert_int_equal(classify(s, bits), 1);
	assert_int_equal(fm_store_map_get(s, ID, &before), 0);
	/* a split of the old generation pending: committed before, counted */
	assert_int_equal(fm_store_map_reverse(s, ID, FM_STORE_REVERSE_CHECK, NULL), 0);
	assert_int_equal(classify(s, bits), 1); /* the check wrote nothing */
	assert_int_equal(fm_store_map_reverse(s, ID, 0, &out), 0);
	assert_int_equal(out.generation, 2);
	assert_int_equal(out.source_vol, 20);
	assert_int_equal(classify(s, bits), 2);
	assert_int_equal(fm_store_map_get(s, ID, &after), 0);
	assert_int_not_equal(after.slot, before.slot);
	assert_int_equal(after.split_count, GRAINS - n);
	/* a split of the old generation is refused now */
	assert_int_equal(fm_store_split_set(s, ID, 1, 5), -ESTALE);
	fm_store_close(&s);
	/* durable: a reopen sees the same, and the pool checks clean */
	assert_int_equal(fm_store_open(&s, path, NULL), 0);
	assert_int_equal(classify(s, bits), 2);
	/* again: the original direction, the original bits */
	assert_int_equal(fm_store_map_reverse(s, ID, 0, &out), 0);
	assert_int_equal(out.generation, 3);
	assert_int_equal(out.source_vol, 10);
	assert_int_equal(fm_store_map_get(s, ID, &after), 0);
	assert_false(after.reversed);
	assert_int_equal(after.split_count, n);
	for (uint64_t g = 0; g < GRAINS; g++)
		assert_int_equal(fm_store_split_test(s, ID, g), bits[g]);
	/* a copy complete (every grain split) and a restore of idle_or_copied */
	for (uint64_t g = 0; g < GRAINS; g++)
		assert_true(fm_store_split_set(s, ID, 3, g) >= 0);
	assert_int_equal(fm_store_map_transition(s, ID, FM_MAP_EV_COPY_COMPLETE, NULL), 0);
	assert_int_equal(fm_store_map_reverse(s, ID, 0, &out), 0);
	assert_int_equal(fm_store_map_get(s, ID, &after), 0);
	assert_int_equal(after.split_count, 0); /* everything is copied back */
	assert_int_equal(after.map.state, FM_MAP_COPYING);
	fm_store_close(&s);
	unlink(path);
}

static void reverse__refusals__nothing_written(void **state)
{
	char path[600];
	uint8_t bits[GRAINS] = { 0 };
	struct fm_store *s;
	struct fm_store_stats st0, st1;
	struct fm_mapping m;
	size_t len;
	uint8_t *b;

	(void)state;
	bits[3] = 1;
	mk_pool(fmt_path(path, sizeof(path), "refuse"), 2, bits);
	assert_int_equal(fm_store_open(&s, path, NULL), 0);
	fm_store_stats(s, &st0);
	assert_int_equal(fm_store_map_reverse(s, 99, 0, NULL), -ENOENT);
	assert_int_equal(fm_store_map_reverse(s, ID, 0x2, NULL), -EINVAL);
	/* the other slot taken: no room to move */
	assert_int_equal(fm_mapping_init(&m, 8, 30, 40, GRAINS * GRAIN, GRAIN), 0);
	assert_int_equal(fm_store_map_create(s, &m), 0);
	fm_store_stats(s, &st0);
	assert_int_equal(fm_store_map_reverse(s, ID, 0, NULL), -ENOSPC);
	assert_non_null(strstr(fm_errormsg(), "free slot"));
	/* never started (idle_or_copied, generation 0) */
	assert_int_equal(fm_store_map_delete(s, ID), -EBUSY);
	assert_int_equal(fm_store_map_reverse(s, 8, 0, NULL), -EPERM);
	assert_non_null(strstr(fm_errormsg(), "never started"));
	/* preparing, prepared, stopped */
	assert_int_equal(fm_store_map_transition(s, 8, FM_MAP_EV_PREPARE, NULL), 0);
	assert_int_equal(fm_store_map_reverse(s, 8, 0, NULL), -EPERM);
	assert_int_equal(fm_store_map_transition(s, 8, FM_MAP_EV_PREPARE_DONE, NULL), 0);
	assert_int_equal(fm_store_map_reverse(s, 8, 0, NULL), -EPERM);
	assert_int_equal(fm_store_map_transition(s, 8, FM_MAP_EV_STOP, NULL), 0);
	assert_int_equal(fm_store_map_reverse(s, 8, 0, NULL), -EPERM);
	assert_non_null(strstr(fm_errormsg(), "nothing to restore"));
	/* a grouped mapping */
	assert_int_equal(fm_store_map_delete(s, 8), 0);
	assert_int_equal(fm_store_map_set_group(s, ID, 5), 0);
	fm_store_stats(s, &st0);
	assert_int_equal(fm_store_map_reverse(s, ID, 0, NULL), -EBUSY);
	assert_non_null(strstr(fm_errormsg(), "consistency group 5"));
	fm_store_stats(s, &st1);
	assert_int_equal(st1.log_seq, st0.log_seq);
	assert_int_equal(fm_store_map_set_group(s, ID, 0), 0);
	fm_store_close(&s);
	/* a 1.2 pool opens and refuses (its binary would not know the record) */
	b = fmt_read_file(path, &len);
	assert_non_null(b);
	pe_downgrade(b, 2, FM_POOL_INCOMPAT_1_2);
	assert_int_equal(fmt_write_file(path, b, len), 0);
	free(b);
	assert_int_equal(fm_store_open(&s, path, NULL), 0);
	assert_int_equal(fm_store_map_reverse(s, ID, 0, NULL), -EOPNOTSUPP);
	assert_non_null(strstr(fm_errormsg(), "format 1.2"));
	assert_int_equal(classify(s, bits), 1);
	fm_store_close(&s);
	unlink(path);
}

/* ---- crashes -------------------------------------------------------- */

static int reverse_op(struct fm_store *s)
{
	return fm_store_map_reverse(s, ID, 0, NULL);
}

/* Check an image read-only, then open it: as before or reversed. */
static int image_state(const char *path, void *arg)
{
	const uint8_t *bits = arg;
	struct fm_store *s;
	int rc;

	if (dc_open_checked(path, &s))
		return 0;
	rc = classify(s, bits);
	fm_store_close(&s);
	return rc;
}

/* Killed or losing power before each drain of the reverse, and its
 * recovery before each of its own (drain_crash.h): as before or fully
 * reversed, the same after the recovery (replay is idempotent, R1 never
 * redone on a half-cleared old bitmap). */
static void reverse__crash_before_each_drain__old_or_new_and_recovery_too(void **state)
{
	char base[600];
	uint8_t bits[GRAINS];
	struct dc_sweep sw;

	(void)state;
	random_bits(bits, 23);
	mk_pool(fmt_path(base, sizeof(base), "crash"), 3, bits);
	dc_sweep(base, "crash", reverse_op, FM_LOG_REVERSE, image_state, bits, &sw);
	assert_true(sw.seen_new);
	assert_true(sw.drains >= 4); /* the record, R1, R2, R3, the applied word */
	print_message("reverse: %u crash images, %u recovery-crash images\n", sw.images,
		      sw.replays);
	unlink(base);
}

/* A pending reverse whose old slot was damaged before the switch: the
 * open refuses it (recovery would invert garbage) and writes nothing. */
static void reverse__pending_with_damaged_from_slot__enotrecoverable(void **state)
{
	char base[600], kill_p[600], power_p[600], copy[600];
	uint8_t bits[GRAINS], *img, *b;
	size_t len, len2;
	struct fm_check c;
	struct fm_store *s = NULL;
	bool found = false;

	(void)state;
	random_bits(bits, 5);
	mk_pool(fmt_path(base, sizeof(base), "pend"), 3, bits);
	fmt_path(kill_p, sizeof(kill_p), "pend.kill");
	fmt_path(power_p, sizeof(power_p), "pend.power");
	fmt_path(copy, sizeof(copy), "pend.copy");
	img = fmt_read_file(base, &len);
	assert_non_null(img);
	for (unsigned at = 0; !found; at++) {
		assert_int_equal(fmt_write_file(copy, img, len), 0);
		assert_int_equal(dc_run(copy, reverse_op, at, kill_p, power_p), 42);
		b = fmt_read_file(power_p, &len2);
		assert_non_null(b);
		assert_int_equal(fm_pool_check(b, len2, &c, NULL), 0);
		found = c.log_pending && c.rec.op == FM_LOG_REVERSE;
		if (found) {
			/* before R2: slot j is not the image yet */
			uint8_t *from = b + c.sb.table_off + c.rec.from_slot * FM_SLOT_SIZE;

			from[8] ^= 1; /* source_vol: the checksum fails */
			assert_int_equal(fm_pool_check(b, len2, &c, NULL), -ENOTRECOVERABLE);
			assert_non_null(strstr(fm_errormsg(), "no longer holds it intact"));
			assert_int_equal(fmt_write_file(copy, b, len2), 0);
			assert_int_equal(fm_store_open(&s, copy, NULL), -ENOTRECOVERABLE);
			assert_null(s);
			{ /* nothing written */
				size_t len3;
				uint8_t *after = fmt_read_file(copy, &len3);

				assert_non_null(after);
				assert_int_equal(len3, len2);
				assert_int_equal(memcmp(after, b, len2), 0);
				free(after);
			}
		}
		free(b);
	}
	free(img);
	unlink(base);
	unlink(kill_p);
	unlink(power_p);
	unlink(copy);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(reverse__bitmap_inverted_direction_swapped__twice_is_identity),
		cmocka_unit_test(reverse__refusals__nothing_written),
		cmocka_unit_test(reverse__crash_before_each_drain__old_or_new_and_recovery_too),
		cmocka_unit_test(reverse__pending_with_damaged_from_slot__enotrecoverable),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
