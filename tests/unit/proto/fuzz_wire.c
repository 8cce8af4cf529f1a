/* fuzz_wire.c -- libFuzzer target: fm_wire_decode on arbitrary bytes.
 *
 * Properties checked: the decoder never reads outside the buffer (ASan),
 * returns 0 or a named errno, and whatever it accepts re-encodes to the
 * same bytes (the format has exactly one encoding per message).
 *
 * Random bytes almost never carry a valid CRC, which would stop the fuzzer
 * at step 5; so the length and CRC fields of a copy are repaired before
 * decoding (steps 4 and 5 are covered by test_wire).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "flashmeta/wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t again[FM_WIRE_MAX_MSG], buf[FM_WIRE_MAX_MSG];
	struct fm_msg m;
	uint32_t c;
	int rc, n;

	if (size > sizeof(buf))
		return 0;
	memcpy(buf, data, size);
	if (size >= FM_WIRE_HDR_SIZE) {
		for (int i = 0; i < 4; i++)
			buf[8 + i] = (uint8_t)(size >> (8 * i));
		memset(buf + 32, 0, 4);
		c = fm_crc32c(buf, size);
		for (int i = 0; i < 4; i++)
			buf[32 + i] = (uint8_t)(c >> (8 * i));
	}
	data = buf;
	rc = fm_wire_decode(data, size, &m);
	if (rc != 0) {
		if (strcmp(fm_wire_errname(rc), "?") == 0)
			abort();
		return 0;
	}
	if (m.ver_minor != FM_WIRE_MINOR)
		return 0;
	n = fm_wire_encode(&m, again, sizeof(again));
	if (n != (int)size || memcmp(again, data, size) != 0)
		abort();
	return 0;
}
