/* fuzz_wire.c -- libFuzzer target: fm_wire_decode on arbitrary bytes.
 *
 * Properties checked: the decoder never reads outside the buffer (ASan),
 * returns 0 or a named errno, and whatever it accepts re-encodes to the
 * same bytes (the format has exactly one encoding per message).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "flashmeta/wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t again[FM_WIRE_MAX_MSG];
	struct fm_msg m;
	int rc, n;

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
