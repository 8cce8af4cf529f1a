/* test_geometry.c -- fm_geom_init / fm_geom_grain_bytes / fm_geom_range. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "flashmeta/error.h"
#include "flashmeta/geometry.h"

#define KiB (UINT64_C(1) << 10)
#define MiB (UINT64_C(1) << 20)
#define GiB (UINT64_C(1) << 30)

/* A geometry pre-filled with a marker, to see that errors leave it alone. */
static struct fm_geom marked(void)
{
	struct fm_geom g;

	memset(&g, 0xa5, sizeof(g));
	return g;
}

static void assert_untouched(const struct fm_geom *g)
{
	struct fm_geom m = marked();

	/* Field by field: padding need not survive the copy in marked(). */
	assert_true(g->volume_size == m.volume_size);
	assert_true(g->grain_count == m.grain_count);
	assert_int_equal(g->grain_shift, m.grain_shift);
}

static void init__default_grain__64k(void **state)
{
	(void)state;
	struct fm_geom g;

	assert_int_equal(fm_geom_init(&g, 1 * MiB, 0), 0);
	assert_int_equal(g.grain_shift, FM_GRAIN_SHIFT_DEFAULT);
	assert_int_equal(fm_geom_grain_size(&g), 64 * KiB);
	assert_int_equal(g.grain_count, 16);
	assert_int_equal(g.volume_size, 1 * MiB);
}

static void init__zero_volume__einval(void **state)
{
	(void)state;
	struct fm_geom g = marked();

	fm_err_clear();
	assert_int_equal(fm_geom_init(&g, 0, 0), -EINVAL);
	assert_non_null(strstr(fm_errormsg(), "is 0"));
	assert_untouched(&g);
}

static void init__above_max__einval(void **state)
{
	(void)state;
	struct fm_geom g = marked();

	assert_int_equal(fm_geom_init(&g, FM_VOLUME_SIZE_MAX + FM_SECTOR_SIZE, 0), -EINVAL);
	assert_non_null(strstr(fm_errormsg(), "maximum"));
	assert_int_equal(fm_geom_init(&g, UINT64_MAX, 0), -EINVAL);
	assert_int_equal(fm_geom_init(&g, UINT64_MAX - 511, 0), -EINVAL);
	assert_untouched(&g);
}

static void init__max_volume_max_grain__no_overflow(void **state)
{
	(void)state;
	struct fm_geom g;

	assert_int_equal(fm_geom_init(&g, FM_VOLUME_SIZE_MAX, GiB), 0);
	assert_true(g.grain_count == FM_VOLUME_SIZE_MAX / GiB);
	/* The largest volume that is not a grain multiple rounds up. */
	assert_int_equal(fm_geom_init(&g, FM_VOLUME_SIZE_MAX - FM_SECTOR_SIZE, GiB), 0);
	assert_true(g.grain_count == FM_VOLUME_SIZE_MAX / GiB);
	assert_true(fm_geom_grain_bytes(&g, g.grain_count - 1) == GiB - FM_SECTOR_SIZE);
	assert_int_equal(fm_geom_init(&g, FM_VOLUME_SIZE_MAX, 4 * KiB), 0);
	assert_true(g.grain_count == FM_VOLUME_SIZE_MAX / (4 * KiB));
}

static void init__not_sector_aligned__einval(void **state)
{
	(void)state;
	struct fm_geom g = marked();

	assert_int_equal(fm_geom_init(&g, 1 * MiB + 1, 0), -EINVAL);
	assert_non_null(strstr(fm_errormsg(), "sector"));
	assert_int_equal(fm_geom_init(&g, 511, 0), -EINVAL);
	assert_untouched(&g);
}

static void init__grain_not_power_of_two__einval(void **state)
{
	(void)state;
	struct fm_geom g = marked();

	assert_int_equal(fm_geom_init(&g, 1 * MiB, 3000), -EINVAL);
	assert_non_null(strstr(fm_errormsg(), "power of two"));
	assert_int_equal(fm_geom_init(&g, 1 * MiB, 12 * KiB), -EINVAL);
	assert_int_equal(fm_geom_init(&g, 1 * MiB, UINT64_MAX), -EINVAL);
	assert_untouched(&g);
}

static void init__grain_out_of_bounds__einval(void **state)
{
	(void)state;
	struct fm_geom g = marked();

	assert_int_equal(fm_geom_init(&g, 1 * MiB, 2 * KiB), -EINVAL);
	assert_non_null(strstr(fm_errormsg(), "outside"));
	assert_int_equal(fm_geom_init(&g, 1 * MiB, 2 * GiB), -EINVAL);
	assert_int_equal(fm_geom_init(&g, 1 * MiB, UINT64_C(1) << 63), -EINVAL);
	assert_int_equal(fm_geom_init(&g, 1 * MiB, 1), -EINVAL);
	assert_untouched(&g);
}

static void init__grain_bounds__accepted(void **state)
{
	(void)state;
	struct fm_geom g;

	assert_int_equal(fm_geom_init(&g, 1 * MiB, 4 * KiB), 0);
	assert_int_equal(g.grain_shift, 12);
	assert_int_equal(g.grain_count, 256);
	/* Grain larger than the volume: one partial grain. */
	assert_int_equal(fm_geom_init(&g, 1 * MiB, GiB), 0);
	assert_int_equal(g.grain_shift, 30);
	assert_int_equal(g.grain_count, 1);
	assert_true(fm_geom_grain_bytes(&g, 0) == 1 * MiB);
}

static void init__null__einval(void **state)
{
	(void)state;
	assert_int_equal(fm_geom_init(NULL, 1 * MiB, 0), -EINVAL);
}

static void grain_bytes__partial_last__remainder(void **state)
{
	(void)state;
	struct fm_geom g;

	/* 4 full 4 KiB grains and one of 1 KiB. */
	assert_int_equal(fm_geom_init(&g, 17 * KiB, 4 * KiB), 0);
	assert_int_equal(g.grain_count, 5);
	for (uint64_t i = 0; i < 4; i++)
		assert_int_equal(fm_geom_grain_bytes(&g, i), 4 * KiB);
	assert_int_equal(fm_geom_grain_bytes(&g, 4), 1 * KiB);
	assert_int_equal(fm_geom_grain_bytes(&g, 5), 0);
	assert_int_equal(fm_geom_grain_bytes(&g, UINT64_MAX), 0);
	/* One sector in the last grain. */
	assert_int_equal(fm_geom_init(&g, 16 * KiB + 512, 4 * KiB), 0);
	assert_int_equal(fm_geom_grain_bytes(&g, 4), 512);
}

static void grain_bytes__exact_multiple__all_full(void **state)
{
	(void)state;
	struct fm_geom g;

	assert_int_equal(fm_geom_init(&g, 16 * KiB, 4 * KiB), 0);
	assert_int_equal(g.grain_count, 4);
	assert_int_equal(fm_geom_grain_bytes(&g, 3), 4 * KiB);
	assert_int_equal(fm_geom_grain_bytes(&g, 4), 0);
}

static void range__basic__grains(void **state)
{
	(void)state;
	struct fm_geom g;
	uint64_t f, l;

	assert_int_equal(fm_geom_init(&g, 17 * KiB, 4 * KiB), 0);
	assert_int_equal(fm_geom_range(&g, 0, 1, &f, &l), 0);
	assert_true(f == 0 && l == 0);
	assert_int_equal(fm_geom_range(&g, 4095, 2, &f, &l), 0);
	assert_true(f == 0 && l == 1);
	assert_int_equal(fm_geom_range(&g, 4096, 4096, &f, &l), 0);
	assert_true(f == 1 && l == 1);
	assert_int_equal(fm_geom_range(&g, 0, 17 * KiB, &f, &l), 0);
	assert_true(f == 0 && l == 4);
	/* Last byte of the volume. */
	assert_int_equal(fm_geom_range(&g, 17 * KiB - 1, 1, &f, &l), 0);
	assert_true(f == 4 && l == 4);
}

static void range__zero_length__einval(void **state)
{
	(void)state;
	struct fm_geom g;
	uint64_t f = 7, l = 7;

	assert_int_equal(fm_geom_init(&g, 17 * KiB, 4 * KiB), 0);
	assert_int_equal(fm_geom_range(&g, 0, 0, &f, &l), -EINVAL);
	assert_true(f == 7 && l == 7);
}

static void range__past_end__erange(void **state)
{
	(void)state;
	struct fm_geom g;
	uint64_t f = 7, l = 7;

	assert_int_equal(fm_geom_init(&g, 17 * KiB, 4 * KiB), 0);
	assert_int_equal(fm_geom_range(&g, 0, 17 * KiB + 1, &f, &l), -ERANGE);
	assert_non_null(strstr(fm_errormsg(), "past the volume end"));
	assert_int_equal(fm_geom_range(&g, 17 * KiB, 1, &f, &l), -ERANGE);
	assert_int_equal(fm_geom_range(&g, 17 * KiB - 1, 2, &f, &l), -ERANGE);
	assert_int_equal(fm_geom_range(&g, UINT64_MAX, 1, &f, &l), -ERANGE);
	assert_true(f == 7 && l == 7);
}

static void range__overflow_near_uint64_max__erange(void **state)
{
	(void)state;
	struct fm_geom g;
	uint64_t f = 7, l = 7;

	assert_int_equal(fm_geom_init(&g, FM_VOLUME_SIZE_MAX, GiB), 0);
	/* offset + length wraps to a small number: must not be accepted. */
	assert_int_equal(fm_geom_range(&g, 4096, UINT64_MAX - 4095, &f, &l), -ERANGE);
	assert_int_equal(fm_geom_range(&g, 4096, UINT64_MAX, &f, &l), -ERANGE);
	assert_int_equal(fm_geom_range(&g, UINT64_MAX - 10, 20, &f, &l), -ERANGE);
	assert_int_equal(fm_geom_range(&g, 0, UINT64_MAX, &f, &l), -ERANGE);
	assert_true(f == 7 && l == 7);
	/* The whole largest volume is fine. */
	assert_int_equal(fm_geom_range(&g, 0, FM_VOLUME_SIZE_MAX, &f, &l), 0);
	assert_true(f == 0 && l == g.grain_count - 1);
	assert_int_equal(fm_geom_range(&g, FM_VOLUME_SIZE_MAX - 1, 1, &f, &l), 0);
	assert_true(f == g.grain_count - 1 && l == f);
}

static void range__null__einval(void **state)
{
	(void)state;
	struct fm_geom g;
	uint64_t f, l;

	assert_int_equal(fm_geom_init(&g, 17 * KiB, 4 * KiB), 0);
	assert_int_equal(fm_geom_range(NULL, 0, 1, &f, &l), -EINVAL);
	assert_int_equal(fm_geom_range(&g, 0, 1, NULL, &l), -EINVAL);
	assert_int_equal(fm_geom_range(&g, 0, 1, &f, NULL), -EINVAL);
}

/* Every byte range of a small odd volume against a per-byte count. */
static void range__all_small_ranges__match_division(void **state)
{
	(void)state;
	struct fm_geom g;
	const uint64_t vol = 17 * KiB + 512;

	assert_int_equal(fm_geom_init(&g, vol, 4 * KiB), 0);
	for (uint64_t off = 0; off <= vol; off += 256) {
		for (uint64_t len = 0; len <= vol + 512; len += 256) {
			uint64_t f = 0, l = 0;
			int ret = fm_geom_range(&g, off, len, &f, &l);

			if (len == 0)
				assert_int_equal(ret, -EINVAL);
			else if (off + len > vol)
				assert_int_equal(ret, -ERANGE);
			else {
				assert_int_equal(ret, 0);
				assert_true(f == off / (4 * KiB));
				assert_true(l == (off + len - 1) / (4 * KiB));
			}
		}
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(init__default_grain__64k),
		cmocka_unit_test(init__zero_volume__einval),
		cmocka_unit_test(init__above_max__einval),
		cmocka_unit_test(init__max_volume_max_grain__no_overflow),
		cmocka_unit_test(init__not_sector_aligned__einval),
		cmocka_unit_test(init__grain_not_power_of_two__einval),
		cmocka_unit_test(init__grain_out_of_bounds__einval),
		cmocka_unit_test(init__grain_bounds__accepted),
		cmocka_unit_test(init__null__einval),
		cmocka_unit_test(grain_bytes__partial_last__remainder),
		cmocka_unit_test(grain_bytes__exact_multiple__all_full),
		cmocka_unit_test(range__basic__grains),
		cmocka_unit_test(range__zero_length__einval),
		cmocka_unit_test(range__past_end__erange),
		cmocka_unit_test(range__overflow_near_uint64_max__erange),
		cmocka_unit_test(range__null__einval),
		cmocka_unit_test(range__all_small_ranges__match_division),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
