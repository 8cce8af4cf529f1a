/* demo_util.c -- flashmeta-demo: the data pattern, the clock and the pipes
 * between the demo's processes (demo.h). */
#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "demo.h"

void demo_fill(void *buf, uint64_t off, uint64_t len, uint64_t seed)
{
	uint64_t *w = buf;

	for (uint64_t i = 0; i < len / 8; i++)
		w[i] = demo_word(seed, off + 8 * i);
}

uint64_t demo_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

int demo_write_all(int fd, const void *buf, size_t len)
{
	const uint8_t *p = buf;

	while (len) {
		ssize_t n = write(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int demo_read_all(int fd, void *buf, size_t len, int timeout_ms)
{
	uint8_t *p = buf;

	while (len) {
		struct pollfd pf = { .fd = fd, .events = POLLIN };
		int rc = poll(&pf, 1, timeout_ms);
		ssize_t n;

		if (rc < 0 && errno == EINTR)
			return -EINTR; /* the caller looks at why (a signal to stop) */
		if (rc < 0)
			return -errno;
		if (rc == 0)
			return -ETIMEDOUT;
		n = read(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EPIPE;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int demo_send(int fd, enum demo_msg_type type, const void *buf, size_t len)
{
	struct demo_msg m = { .type = (uint32_t)type, .len = (uint32_t)len };
	int rc = demo_write_all(fd, &m, sizeof(m));

	return rc ? rc : demo_write_all(fd, buf, len);
}

int demo_send_error(int fd, const char *fmt, ...)
{
	char text[DEMO_MSG_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	return demo_send(fd, DEMO_MSG_ERROR, text, strlen(text) + 1);
}
