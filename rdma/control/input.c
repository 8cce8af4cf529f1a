/* input.c -- strict numbers and whole small regular files (see input.h). */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "flashmeta/error.h"
#include "flashmeta/input.h"

/* at most this much of an operator's string is echoed in a message */
#define ECHO_MAX 40

int fm_u64_parse(const char *what, const char *s, uint64_t min, uint64_t max,
		 uint64_t *out)
{
	const char *more;
	uint64_t v = 0;

	if (!s || !*s)
		return fm_err(-EINVAL, "%s: empty, expected a decimal number", what);
	more = strlen(s) > ECHO_MAX ? "..." : "";
	for (const char *p = s; *p; p++) {
		unsigned d = (unsigned)(*p - '0');

		if (d > 9)
			return fm_err(-EINVAL, "%s '%.*s%s': not a decimal number (digits only, "
				      "no sign)", what, ECHO_MAX, s, more);
		if (v > (UINT64_MAX - d) / 10)
			return fm_err(-ERANGE, "%s '%.*s%s': above %" PRIu64, what, ECHO_MAX, s,
				      more, UINT64_MAX);
		v = v * 10 + d;
	}
	if (v < min || v > max)
		return fm_err(-ERANGE, "%s %" PRIu64 ": not in %" PRIu64 "..%" PRIu64, what, v,
			      min, max);
	*out = v;
	return 0;
}

static const char *kind(mode_t m)
{
	if (S_ISFIFO(m))
		return "a FIFO";
	if (S_ISCHR(m))
		return "a character device";
	if (S_ISBLK(m))
		return "a block device";
	if (S_ISSOCK(m))
		return "a socket";
	return "not a regular file";
}

static int check_regular(const char *what, const char *path, const struct stat *st)
{
	if (S_ISREG(st->st_mode))
		return 0;
	if (S_ISDIR(st->st_mode))
		return fm_err(-EISDIR, "%s %s: a directory, not a file", what, path);
	return fm_err(-ENODEV, "%s %s: %s, not a regular file", what, path,
		      kind(st->st_mode));
}

int fm_regular_file_read(const char *what, const char *path, void *buf, size_t cap,
			 size_t *len)
{
	struct stat st;
	size_t used = 0;
	int fd, rc;

	/* 1. what is it?  A device or a FIFO is never even opened */
	if (stat(path, &st))
		return fm_err(-errno, "%s %s: %s", what, path, strerror(errno));
	if ((rc = check_regular(what, path, &st)))
		return rc;
	/* 2. open without blocking (it may have become a FIFO since) and ask
	 *    the descriptor again: that answer is the one that counts */
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0)
		return fm_err(-errno, "%s %s: %s", what, path, strerror(errno));
	if (fstat(fd, &st)) {
		rc = fm_err(-errno, "%s %s: %s", what, path, strerror(errno));
		goto out;
	}
	if ((rc = check_regular(what, path, &st)))
		goto out;
	if ((uint64_t)st.st_size > cap) {
		rc = fm_err(-EFBIG, "%s %s: %jd bytes, at most %zu", what, path,
			    (intmax_t)st.st_size, cap);
		goto out;
	}
	/* 3. read to the end; a file that grew past cap meanwhile is refused */
	for (;;) {
		char extra;
		ssize_t n = used < cap ? read(fd, (char *)buf + used, cap - used)
				       : read(fd, &extra, 1);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = fm_err(-errno, "%s %s: read: %s", what, path, strerror(errno));
			goto out;
		}
		if (n == 0)
			break;
		if (used == cap) {
			rc = fm_err(-EFBIG, "%s %s: more than %zu bytes", what, path, cap);
			goto out;
		}
		used += (size_t)n;
	}
	*len = used;
	rc = 0;
out:
	close(fd);
	return rc;
}
