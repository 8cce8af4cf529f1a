/* ctl.c -- client side of the owner's control socket (flashmeta admin). */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "flashmeta/error.h"
#include "flashmeta/ctl.h"

/* The last line of buf[0..used), which ends in '\n', starts with `word`. */
static int last_line_is(const char *buf, size_t used, const char *word)
{
	size_t start = used - 1;

	while (start > 0 && buf[start - 1] != '\n')
		start--;
	return !strncmp(buf + start, word, strlen(word));
}

int fm_ownerd_ctl(const char *path, const char *cmd, char *out, size_t cap, int timeout_ms)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	size_t used = 0, size = 0, len = strlen(cmd);
	char *buf = NULL;
	int fd, rc;

	if (!len || cmd[len - 1] != '\n' || memchr(cmd, '\n', len - 1))
		return fm_err(-EINVAL, "control: one command line ending in a newline");
	if (len > FM_CTL_LINE_MAX)
		return fm_err(-EINVAL, "control: command of %zu bytes, at most %d", len,
			      FM_CTL_LINE_MAX);
	if (strlen(path) >= sizeof(sun.sun_path))
		return fm_err(-ENAMETOOLONG, "control: socket path '%s' too long", path);
	memcpy(sun.sun_path, path, strlen(path) + 1);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return fm_err(-errno, "control: socket: %s", strerror(errno));
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) ||
	    write(fd, cmd, len) != (ssize_t)len) {
		rc = fm_err(-errno, "control: %s: %s", path, strerror(errno));
		goto out;
	}
	/* the answer: lines, the last one "ok ..." or "error ..." */
	for (;;) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		ssize_t n;

		rc = poll(&p, 1, timeout_ms);
		if (rc <= 0) {
			rc = rc ? fm_err(-errno, "control: poll: %s", strerror(errno))
				: fm_err(-ETIMEDOUT, "control: no answer in %d ms", timeout_ms);
			break;
		}
		if (size - used < 4096) {
			/* status lists every mapping: grow, within a bound */
			size_t grown = size ? 2 * size : 8192;
			char *nb;

			if (size >= FM_CTL_ANSWER_MAX) {
				rc = fm_err(-EMSGSIZE, "control: answer over %d bytes",
					    FM_CTL_ANSWER_MAX);
				break;
			}
			if (grown > FM_CTL_ANSWER_MAX)
				grown = FM_CTL_ANSWER_MAX;
			nb = realloc(buf, grown);
			if (!nb) {
				rc = fm_err(-ENOMEM, "control: answer of %zu bytes", grown);
				break;
			}
			buf = nb;
			size = grown;
		}
		n = read(fd, buf + used, size - 1 - used);
		if (n <= 0) {
			rc = fm_err(-ECONNRESET, "control: owner closed without ok/error");
			break;
		}
		used += (size_t)n;
		if (buf[used - 1] != '\n')
			continue;
		if (last_line_is(buf, used, "ok")) {
			rc = 0;
			break;
		}
		if (last_line_is(buf, used, "error")) {
			rc = fm_err(-EREMOTEIO, "control: owner refused '%.*s'", (int)len - 1, cmd);
			break;
		}
	}
out:
	close(fd);
	if (out && cap)
		snprintf(out, cap, "%.*s", (int)used, buf ? buf : "");
	free(buf);
	return rc;
}
