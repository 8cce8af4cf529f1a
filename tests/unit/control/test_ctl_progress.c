/* test_ctl_progress.c -- a mapping's copy progress from the owner's map
 * record (ctl_progress.h): keys not values, every field required and
 * checked, the bar full only when every grain is split, the human units. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "flashmeta/ctl_progress.h"

/* a map-show line as rdma/owner/control.c ctl_show writes it */
#define MAP_LINE                                                                            \
	"map 7 source 1 target 2 size 1048576 grain 4096 grains 256 state copying "          \
	"generation 3 split 64 served-generation 3 revoking 0 split-pct 25 rate 21 "         \
	"rate-bytes-per-s 524288 eta-s 1 copiers 2 copy-grains-out 32 "                      \
	"copy-grains-returned 0 copy-batches 4 autodelete 0\n"

static void record_value__keys_only__not_values_nor_the_name(void **state)
{
	const char *v;
	size_t len;

	(void)state;
	/* "split" is a key and the prefix of another; 64 is also a value */
	assert_int_equal(fm_ctl_record_value(MAP_LINE, "split", &v, &len), 0);
	assert_int_equal(len, 2);
	assert_memory_equal(v, "64", 2);
	assert_int_equal(fm_ctl_record_value(MAP_LINE, "autodelete", &v, &len), 0);
	assert_int_equal(len, 1); /* the newline is not part of it */
	assert_int_equal(fm_ctl_record_value(MAP_LINE, "copying", &v, &len), -ENOENT);
	assert_int_equal(fm_ctl_record_value(MAP_LINE, "spl", &v, &len), -ENOENT);
	/* a named record (odd words): the name is no key, pairs follow it */
	assert_int_equal(fm_ctl_record_value("deleted map 3 state stopped", "map", &v, &len), 0);
	assert_memory_equal(v, "3", 1);
	assert_int_equal(fm_ctl_record_value("deleted map 3 state stopped", "deleted", &v, &len),
			 -ENOENT);
	assert_int_equal(fm_ctl_record_value("", "map", &v, &len), -ENOENT);
}

static void parse__the_owners_line__every_field(void **state)
{
	struct fm_ctl_progress p;

	(void)state;
	assert_int_equal(fm_ctl_progress_parse(MAP_LINE, &p), 0);
	assert_int_equal(p.map_id, 7);
	assert_string_equal(p.state, "copying");
	assert_int_equal(p.generation, 3);
	assert_int_equal(p.grains, 256);
	assert_int_equal(p.split, 64);
	assert_int_equal(p.split_pct, 25);
	assert_int_equal(p.grain_bytes, 4096);
	assert_int_equal(p.rate, 21);
	assert_int_equal(p.rate_bps, 524288);
	assert_int_equal(p.eta_s, 1);
	assert_int_equal(p.copiers, 2);
	assert_false(fm_ctl_progress_settled(&p));
}

/* MAP_LINE with one word replaced */
static int parse_with(const char *from, const char *to)
{
	char line[600];
	struct fm_ctl_progress p;
	const char *at = strstr(MAP_LINE, from);

	assert_non_null(at);
	snprintf(line, sizeof(line), "%.*s%s%s", (int)(at - MAP_LINE), MAP_LINE, to,
		 at + strlen(from));
	return fm_ctl_progress_parse(line, &p);
}

static void parse__malformed__einval(void **state)
{
	static const struct {
		const char *from, *to;
	} bad[] = {
		{ "map 7", "lock 7" },                 /* not a map record */
		{ " split 64", " split x64" },         /* not a number */
		{ " split 64", " split -1" },
		{ " split 64", " split 257" },         /* more than grains */
		{ " grains 256", " grains 0" },
		{ "split-pct 25", "split-pct 101" },
		{ "rate 21", "rate 151" },
		{ "eta-s 1", "eta-s -2" },
		{ "eta-s 1", "eta-s 0x1" },
		{ "state copying", "state Copying" },
		{ "state copying", "state copying_copying_copying_" }, /* 24 > 23 */
		{ " copiers 2", " copierz 2" },        /* a key missing */
		{ "generation 3", "generation 18446744073709551616" },
	};
	struct fm_ctl_progress p;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int rc = parse_with(bad[i].from, bad[i].to);

		if (rc != -EINVAL)
			fail_msg("'%s' -> '%s': %d", bad[i].from, bad[i].to, rc);
	}
	assert_int_equal(parse_with("eta-s 1", "eta-s -1"), 0); /* rate 0: never */
	assert_int_equal(fm_ctl_progress_parse("", &p), -EINVAL);
}

static void settled__idle_or_copied_and_stopped_only(void **state)
{
	struct fm_ctl_progress p = { .grains = 1 };
	static const char *const no[] = { "copying", "prepared", "preparing", "stopping" };

	(void)state;
	strcpy(p.state, "idle_or_copied");
	assert_true(fm_ctl_progress_settled(&p));
	strcpy(p.state, "stopped");
	assert_true(fm_ctl_progress_settled(&p));
	for (size_t i = 0; i < 4; i++) {
		strcpy(p.state, no[i]);
		assert_false(fm_ctl_progress_settled(&p));
	}
}

static void bar__full_only_when_every_grain_is_split(void **state)
{
	struct fm_ctl_progress p = { .grains = 1000 };
	char b[16];

	(void)state;
	p.split = 0;
	assert_int_equal(fm_ctl_progress_bar(&p, 10, b, sizeof(b)), 12);
	assert_string_equal(b, "[..........]");
	p.split = 999;
	fm_ctl_progress_bar(&p, 10, b, sizeof(b));
	assert_string_equal(b, "[#########.]");
	p.split = 1000;
	fm_ctl_progress_bar(&p, 10, b, sizeof(b));
	assert_string_equal(b, "[##########]");
	p.split = 150; /* 1.5 cells: one */
	fm_ctl_progress_bar(&p, 10, b, sizeof(b));
	assert_string_equal(b, "[#.........]");
	assert_int_equal(fm_ctl_progress_bar(&p, 14, b, sizeof(b)), -EINVAL); /* 17 > 16 */
	assert_int_equal(fm_ctl_progress_bar(&p, 13, b, sizeof(b)), 15);
	/* 2^45 grains (2^57 bytes of 4 KiB grains) times 200 cells: no overflow */
	p.grains = UINT64_C(1) << 45;
	p.split = p.grains - 1;
	{
		char big[203];

		assert_int_equal(fm_ctl_progress_bar(&p, 200, big, sizeof(big)), 202);
		assert_int_equal(big[199], '#');
		assert_int_equal(big[200], '.');
	}
}

static void human__units_and_durations(void **state)
{
	char b[32];

	(void)state;
	assert_string_equal(fm_ctl_bytes_human(0, b, sizeof(b)), "0 B");
	assert_string_equal(fm_ctl_bytes_human(1023, b, sizeof(b)), "1023 B");
	assert_string_equal(fm_ctl_bytes_human(131072, b, sizeof(b)), "128.0 KiB");
	assert_string_equal(fm_ctl_bytes_human(524288, b, sizeof(b)), "512.0 KiB");
	assert_string_equal(fm_ctl_bytes_human(UINT64_C(2) << 30, b, sizeof(b)), "2.0 GiB");
	assert_string_equal(fm_ctl_bytes_human(UINT64_MAX, b, sizeof(b)), "16.0 EiB");
	assert_string_equal(fm_ctl_duration_human(-1, b, sizeof(b)), "never");
	assert_string_equal(fm_ctl_duration_human(0, b, sizeof(b)), "0s");
	assert_string_equal(fm_ctl_duration_human(187, b, sizeof(b)), "3m07s");
	assert_string_equal(fm_ctl_duration_human(7500, b, sizeof(b)), "2h05m");
	assert_string_equal(fm_ctl_duration_human(792000, b, sizeof(b)), "9d04h");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(record_value__keys_only__not_values_nor_the_name),
		cmocka_unit_test(parse__the_owners_line__every_field),
		cmocka_unit_test(parse__malformed__einval),
		cmocka_unit_test(settled__idle_or_copied_and_stopped_only),
		cmocka_unit_test(bar__full_only_when_every_grain_is_split),
		cmocka_unit_test(human__units_and_durations),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
