/* test_ctl_json.c -- the owner's text answers as JSON (ctl_json.h): record
 * lines with and without a name, which values are numbers, the framing. */
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

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(records__named_and_pairs__one_object_each),
		cmocka_unit_test(values__signed_64_bit_decimals_are_numbers__the_rest_strings),
		cmocka_unit_test(framing__error__name_and_message),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
