/* key_file.c -- the shared key file, read by the owner (key_file in its
 * config) and by its clients (flashmeta -k). */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "flashmeta/ctl.h"
#include "flashmeta/error.h"

int fm_key_file_read(const char *path, uint8_t *key, size_t cap)
{
	uint8_t buf[256];
	ssize_t n;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return fm_err(-errno, "key file %s: %s", path, strerror(errno));
	n = read(fd, buf, sizeof(buf));
	close(fd);
	if (n < 0)
		return fm_err(-EIO, "key file %s: read failed", path);
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
		n--;
	if (n == 0 || (size_t)n > cap || n > FM_KEY_MAX)
		return fm_err(-EINVAL, "key file %s: key must be 1..%d bytes (has %zd)", path,
			      FM_KEY_MAX, n);
	memcpy(key, buf, (size_t)n);
	return (int)n;
}
