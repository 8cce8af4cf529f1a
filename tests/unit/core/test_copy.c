/* test_copy.c -- the copy rate table (flashmeta/copy.h): every rate against
 * the table written out again here, the batch size and the pace. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "flashmeta/copy.h"

#define KIB (UINT64_C(1024))
#define MIB (KIB * 1024)
#define GIB (MIB * 1024)

/* IBM's table as operators read it: rates lo..hi copy bps bytes/s */
static const struct {
	uint32_t lo, hi;
	uint64_t bps;
} table[] = {
	{ 1, 10, 128 * KIB },   { 11, 20, 256 * KIB },  { 21, 30, 512 * KIB },
	{ 31, 40, 1 * MIB },    { 41, 50, 2 * MIB },    { 51, 60, 4 * MIB },
	{ 61, 70, 8 * MIB },    { 71, 80, 16 * MIB },   { 81, 90, 32 * MIB },
	{ 91, 100, 64 * MIB },  { 101, 110, 128 * MIB }, { 111, 120, 256 * MIB },
	{ 121, 130, 512 * MIB }, { 131, 140, 1 * GIB },  { 141, 150, 2 * GIB },
};

static void rate_bps__every_rate__matches_the_table(void **state)
{
	uint32_t covered = 0;

	(void)state;
	assert_int_equal(fm_copy_rate_bps(0), 0);
	for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++)
		for (uint32_t r = table[i].lo; r <= table[i].hi; r++) {
			assert_int_equal(fm_copy_rate_bps(r), table[i].bps);
			covered++;
		}
	assert_int_equal(covered, FM_COPY_RATE_MAX);
	/* doubling every 10 */
	for (uint32_t r = 11; r <= FM_COPY_RATE_MAX; r++)
		assert_int_equal(fm_copy_rate_bps(r), 2 * fm_copy_rate_bps(r - 10));
}

static void rate_bps__beyond_the_max__none(void **state)
{
	(void)state;
	assert_int_equal(fm_copy_rate_bps(FM_COPY_RATE_MAX + 1), 0);
	assert_int_equal(fm_copy_rate_bps(1000), 0);
	assert_int_equal(fm_copy_rate_bps(UINT32_MAX), 0);
}

static void batch_grains__about_a_batch_time__clamped(void **state)
{
	(void)state;
	/* rate 50: 2 MiB/s, 64 KiB grains: 32 grains a second */
	assert_int_equal(fm_copy_batch_grains(50, 16, 1000), 2 * MIB * FM_COPY_BATCH_MS / 1000 /
			 (64 * KIB));
	/* never less than one grain, even a 1 GiB grain at the slowest rate */
	assert_int_equal(fm_copy_batch_grains(1, 30, 1000), 1);
	/* never more than asked, nor more than the protocol's limit */
	assert_int_equal(fm_copy_batch_grains(150, 12, 16), 16);
	assert_int_equal(fm_copy_batch_grains(150, 12, UINT32_MAX), FM_COPY_BATCH_MAX);
	/* rate 0 or nothing asked: none */
	assert_int_equal(fm_copy_batch_grains(0, 16, 100), 0);
	assert_int_equal(fm_copy_batch_grains(50, 16, 0), 0);
}

static void copy_ns__bytes_over_rate(void **state)
{
	(void)state;
	assert_true(fm_copy_ns(1, 128 * KIB) == 1000000000u);      /* one second */
	assert_true(fm_copy_ns(150, 2 * GIB) == 1000000000u);
	assert_true(fm_copy_ns(31, 512 * KIB) == 500000000u);      /* half of 1 MiB/s */
	assert_true(fm_copy_ns(41, 1) == 1000000000u / (2 * MIB)); /* rounded down */
	assert_true(fm_copy_ns(0, 1) == UINT64_MAX);
	/* 2^57 bytes at the slowest rate does not wrap */
	assert_true(fm_copy_ns(1, UINT64_C(1) << 57) == UINT64_MAX);
}

static void status_name__every_status(void **state)
{
	(void)state;
	assert_string_equal(fm_copy_status_name(FM_COPY_OK), "ok");
	assert_string_equal(fm_copy_status_name(FM_COPY_WAIT), "wait");
	assert_string_equal(fm_copy_status_name(FM_COPY_DONE), "done");
	assert_string_equal(fm_copy_status_name(FM_COPY_STALE), "stale");
	assert_string_equal(fm_copy_status_name(FM_COPY_STATUS_COUNT), "?");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(rate_bps__every_rate__matches_the_table),
		cmocka_unit_test(rate_bps__beyond_the_max__none),
		cmocka_unit_test(batch_grains__about_a_batch_time__clamped),
		cmocka_unit_test(copy_ns__bytes_over_rate),
		cmocka_unit_test(status_name__every_status),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
