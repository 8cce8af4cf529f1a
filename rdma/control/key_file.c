/* key_file.c -- the shared key file, read by the owner (key_file in its
 * config) and by its clients (flashmeta -k). */
#include <errno.h>
#include <string.h>

#include "flashmeta/ctl.h"
#include "flashmeta/error.h"
#include "flashmeta/input.h"

int fm_key_file_read(const char *path, uint8_t *key, size_t cap)
{
	uint8_t buf[256];
	size_t n;
	int rc;

	/* a regular file only: a FIFO would hang us, /dev/zero is no key */
	rc = fm_regular_file_read("key file", path, buf, sizeof(buf), &n);
	if (rc)
		return rc;
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
		n--;
	if (n == 0 || n > cap || n > FM_KEY_MAX) {
		explicit_bzero(buf, sizeof(buf));
		return fm_err(-EINVAL, "key file %s: key must be 1..%d bytes (has %zu)", path,
			      FM_KEY_MAX, n);
	}
	memcpy(key, buf, n);
	explicit_bzero(buf, sizeof(buf));
	return (int)n;
}
