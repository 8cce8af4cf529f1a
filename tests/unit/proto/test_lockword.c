/* test_lockword.c -- lock words: layout round trips, rejection of words
 * nobody should have written, classification of a release CAS result, and
 * the human-readable format.  Links lockword.c (through fm_core) only. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "flashmeta/error.h"
#include "flashmeta/lockword.h"

static void make__fields_round_trip_at_the_documented_bits(void **state)
{
	uint64_t w = fm_lockword_make(0xbeef, 0x12345678u, FM_LOCKWORD_F_HELD);

	(void)state;
	/* 63..48 client, 47..16 epoch, 15..0 flags */
	assert_int_equal(w, UINT64_C(0xbeef123456780001));
	assert_int_equal(fm_lockword_client(w), 0xbeef);
	assert_int_equal(fm_lockword_epoch(w), 0x12345678u);
	assert_int_equal(fm_lockword_flags(w), FM_LOCKWORD_F_HELD);
	/* the extremes do not bleed into each other */
	w = fm_lockword_make(0xffff, 0xffffffffu, 0);
	assert_int_equal(w, UINT64_C(0xffffffffffff0000));
	assert_int_equal(fm_lockword_flags(w), 0);
	w = fm_lockword_make(0, 0, 0xffff);
	assert_int_equal(fm_lockword_client(w), 0);
	assert_int_equal(fm_lockword_epoch(w), 0);
	assert_int_equal(w, 0xffff);
	assert_int_equal(fm_lockword_make(0, 0, 0), FM_LOCKWORD_FREE);
}

static void same_holder__ignores_flags_only(void **state)
{
	uint64_t a = fm_lockword_make(3, 9, FM_LOCKWORD_F_HELD);

	(void)state;
	assert_true(fm_lockword_same_holder(a, a | FM_LOCKWORD_F_WAITERS));
	assert_true(fm_lockword_same_holder(a, fm_lockword_make(3, 9, 0)));
	assert_false(fm_lockword_same_holder(a, fm_lockword_make(3, 10, FM_LOCKWORD_F_HELD)));
	assert_false(fm_lockword_same_holder(a, fm_lockword_make(4, 9, FM_LOCKWORD_F_HELD)));
}

static void index_offset__stripes_by_lock_shift(void **state)
{
	(void)state;
	assert_int_equal(fm_lockword_index(0, 0), 0);
	assert_int_equal(fm_lockword_index(77, 0), 77);
	assert_int_equal(fm_lockword_offset(77, 0), 77 * 8);
	assert_int_equal(fm_lockword_index(15, 4), 0);
	assert_int_equal(fm_lockword_index(16, 4), 1);
	assert_int_equal(fm_lockword_offset(33, 4), 16);
	assert_int_equal(fm_lockword_index(UINT64_MAX, 32), UINT64_MAX >> 32);
}

static void check__free_and_held_words_pass(void **state)
{
	(void)state;
	assert_int_equal(fm_lockword_check(FM_LOCKWORD_FREE), 0);
	assert_int_equal(fm_lockword_check(fm_lockword_make(1, 1, FM_LOCKWORD_F_HELD)), 0);
	assert_int_equal(fm_lockword_check(fm_lockword_make(65535, 0xffffffffu,
							    FM_LOCKWORD_F_KNOWN)), 0);
	/* epoch 0 is not forbidden by the layout (the owner never hands it
	 * out, but check() is about what nobody could have written) */
	assert_int_equal(fm_lockword_check(fm_lockword_make(2, 0, FM_LOCKWORD_F_HELD)), 0);
}

static void check__malformed_words_einval_with_reason(void **state)
{
	(void)state;
	/* unknown flag bits, even on an otherwise good word */
	fm_err_clear();
	assert_int_equal(fm_lockword_check(fm_lockword_make(1, 1, FM_LOCKWORD_F_HELD | 0x4)),
			 -EINVAL);
	assert_non_null(strstr(fm_errormsg(), "unknown flags"));
	assert_int_equal(fm_lockword_check(UINT64_C(0x8000)), -EINVAL);
	assert_non_null(strstr(fm_errormsg(), "unknown flags"));
	/* not free but not HELD: a client id or epoch without the bit */
	assert_int_equal(fm_lockword_check(fm_lockword_make(5, 7, 0)), -EINVAL);
	assert_non_null(strstr(fm_errormsg(), "not held"));
	assert_int_equal(fm_lockword_check(fm_lockword_make(0, 0, FM_LOCKWORD_F_WAITERS)),
			 -EINVAL);
	assert_non_null(strstr(fm_errormsg(), "not held"));
	/* HELD by client 0 (ids are 1..65535) */
	assert_int_equal(fm_lockword_check(fm_lockword_make(0, 4, FM_LOCKWORD_F_HELD)),
			 -EINVAL);
	assert_non_null(strstr(fm_errormsg(), "client 0"));
}

static void release_result__classifies_every_case(void **state)
{
	uint64_t mine = fm_lockword_make(3, 9, FM_LOCKWORD_F_HELD);

	(void)state;
	/* the CAS matched: word is free now */
	assert_int_equal(fm_lockword_release_result(mine, mine), FM_LOCKWORD_RELEASED);
	/* the owner armed it: unchanged, send UNLOCK */
	assert_int_equal(fm_lockword_release_result(mine, mine | FM_LOCKWORD_F_WAITERS),
			 FM_LOCKWORD_NOTIFY);
	/* the caller already knew about WAITERS and compared with it */
	assert_int_equal(fm_lockword_release_result(mine | FM_LOCKWORD_F_WAITERS,
						    mine | FM_LOCKWORD_F_WAITERS),
			 FM_LOCKWORD_RELEASED);
	/* reclaimed: free, another client, an older/newer epoch of ours */
	assert_int_equal(fm_lockword_release_result(mine, FM_LOCKWORD_FREE), FM_LOCKWORD_LOST);
	assert_int_equal(fm_lockword_release_result(mine, fm_lockword_make(4, 9,
						    FM_LOCKWORD_F_HELD)), FM_LOCKWORD_LOST);
	assert_int_equal(fm_lockword_release_result(mine, fm_lockword_make(3, 10,
						    FM_LOCKWORD_F_HELD | FM_LOCKWORD_F_WAITERS)),
			 FM_LOCKWORD_LOST);
	/* our id+epoch with WAITERS but without HELD is not a word we hold */
	assert_int_equal(fm_lockword_release_result(mine, fm_lockword_make(3, 9,
						    FM_LOCKWORD_F_WAITERS)), FM_LOCKWORD_LOST);
}

static void format__names_free_holder_and_flags(void **state)
{
	char buf[64];
	char tiny[5];

	(void)state;
	assert_string_equal(fm_lockword_format(0, buf, sizeof(buf)), "free");
	assert_string_equal(fm_lockword_format(fm_lockword_make(3, 9, FM_LOCKWORD_F_HELD),
					       buf, sizeof(buf)), "c=3 e=9 held");
	assert_string_equal(fm_lockword_format(fm_lockword_make(3, 9, FM_LOCKWORD_F_KNOWN),
					       buf, sizeof(buf)), "c=3 e=9 held waiters");
	assert_string_equal(fm_lockword_format(fm_lockword_make(7, 1, 0x10),
					       buf, sizeof(buf)), "c=7 e=1 bad-flags");
	/* truncates, stays terminated, returns the buffer */
	assert_ptr_equal(fm_lockword_format(fm_lockword_make(65535, 4000000000u,
					    FM_LOCKWORD_F_KNOWN), tiny, sizeof(tiny)), tiny);
	assert_string_equal(tiny, "c=65");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(make__fields_round_trip_at_the_documented_bits),
		cmocka_unit_test(same_holder__ignores_flags_only),
		cmocka_unit_test(index_offset__stripes_by_lock_shift),
		cmocka_unit_test(check__free_and_held_words_pass),
		cmocka_unit_test(check__malformed_words_einval_with_reason),
		cmocka_unit_test(release_result__classifies_every_case),
		cmocka_unit_test(format__names_free_holder_and_flags),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
