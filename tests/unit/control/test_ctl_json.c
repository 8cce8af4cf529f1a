/* test_ctl_json.c -- the owner's text answers as JSON (ctl_json.h): record
 * lines with and without a name, which values are numbers, the framing. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "flashmeta/ctl_json.h"

static char *json(const char *answer)
{
	char *out = NULL;

	assert_int_equal(fm_ctl_json(answer, &out), 0);
	assert_non_null(out);
	return out;
}

static void records__named_and_pairs__one_object_each(void **state)
{
	char *j = json("lock map 1 grain 5 state held holder-session active\n"
		       "listen shm:/x transport shm\nok\n");

	(void)state;
	assert_string_equal(j, "{\"records\": [{\"record\": \"lock\", \"map\": 1, \"grain\": 5, "
			       "\"state\": \"held\", \"holder-session\": \"active\"}, "
			       "{\"record\": \"listen\", \"listen\": \"shm:/x\", "
			       "\"transport\": \"shm\"}], \"ok\": true}");
	free(j);
}

static void values__signed_64_bit_decimals_are_numbers__the_rest_strings(void **state)
{
	static const struct {
		const char *v, *as;
	} c[] = {
		{ "0", "0" },
		{ "18446744073709551615", "18446744073709551615" },
		{ "18446744073709551616", "\"18446744073709551616\"" }, /* 2^64 */
		{ "-12", "-12" },       /* a lease left that ran out */
		{ "-9223372036854775808", "-9223372036854775808" },
		{ "-9223372036854775809", "\"-9223372036854775809\"" },
		{ "-0", "\"-0\"" },
		{ "-", "\"-\"" },
		{ "-012", "\"-012\"" },
		{ "012", "\"012\"" },
		{ "0x10", "\"0x10\"" },
		{ "1-2", "\"1-2\"" },
		{ "--1", "\"--1\"" },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
		char line[128], want[256], *j;

		snprintf(line, sizeof(line), "r k %s\nok\n", c[i].v);
		snprintf(want, sizeof(want), "{\"records\": [{\"record\": \"r\", \"k\": %s}], "
			 "\"ok\": true}", c[i].as);
		j = json(line);
		if (strcmp(j, want))
			print_error("value '%s': %s, wanted %s\n", c[i].v, j, want);
		assert_string_equal(j, want);
		free(j);
	}
}

static void framing__error__name_and_message(void **state)
{
	char *j = json("error ENOENT: map 9 unknown\n");

	(void)state;
	assert_string_equal(j, "{\"records\": [], \"ok\": false, \"error\": \"ENOENT\", "
			       "\"message\": \"map 9 unknown\"}");
	free(j);
}

static char *json_line(const char *line)
{
	char *out = NULL;

	assert_int_equal(fm_ctl_json_line(line, &out), 0);
	assert_non_null(out);
	return out;
}

/* the line-by-line form: each line the same object as inside "records",
 * the framing lines as {"ok": ...} */
static void line__record_ok_error__one_object_each(void **state)
{
	static const struct {
		const char *line, *as;
	} c[] = {
		{ "held map 1 first 5 last 5 token 0x0000000100000002 epoch 2\n",
		  "{\"record\": \"held\", \"map\": 1, \"first\": 5, \"last\": 5, "
		  "\"token\": \"0x0000000100000002\", \"epoch\": 2}" },
		{ "map 3 state idle granted 0",
		  "{\"record\": \"map\", \"map\": 3, \"state\": \"idle\", \"granted\": 0}" },
		{ "held-not-shown 4", "{\"record\": \"held-not-shown\", \"held-not-shown\": 4}" },
		{ "ok\n", "{\"ok\": true}" },
		{ "error EBUSY: map 1 grain \"5\": busy",
		  "{\"ok\": false, \"error\": \"EBUSY\", "
		  "\"message\": \"map 1 grain \\\"5\\\": busy\"}" },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
		char *j = json_line(c[i].line);

		assert_string_equal(j, c[i].as);
		free(j);
	}
}

static void line__not_one_line_with_a_word__einval(void **state)
{
	char *out = (char *)1;

	(void)state;
	assert_int_equal(fm_ctl_json_line("a 1\nb 2\n", &out), -EINVAL);
	assert_null(out);
	assert_int_equal(fm_ctl_json_line(" \n", &out), -EINVAL);
	assert_int_equal(fm_ctl_json_line("", &out), -EINVAL);
	assert_null(out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(records__named_and_pairs__one_object_each),
		cmocka_unit_test(values__signed_64_bit_decimals_are_numbers__the_rest_strings),
		cmocka_unit_test(framing__error__name_and_message),
		cmocka_unit_test(line__record_ok_error__one_object_each),
		cmocka_unit_test(line__not_one_line_with_a_word__einval),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
