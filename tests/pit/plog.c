/* plog.c -- the clients' I/O logs (see plog.h). */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "flashmeta/digest.h"
#include "plog.h"
#include "pit.h"

int pit_log_open(const char *path)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);

	return fd < 0 ? -errno : fd;
}

int pit_log_put(int fd, struct pit_rec *r, const struct pit_obs *obs, unsigned nobs)
{
	uint8_t buf[sizeof(*r) + PIT_MAX_IO_BLOCKS * sizeof(*obs)];
	size_t len = sizeof(*r) + (size_t)nobs * sizeof(*obs);
	ssize_t n;

	if (nobs > PIT_MAX_IO_BLOCKS)
		return -EINVAL;
	r->magic = PIT_REC_MAGIC;
	r->nobs = (uint16_t)nobs;
	r->len = (uint32_t)len;
	r->crc = 0;
	memcpy(buf, r, sizeof(*r));
	if (nobs)
		memcpy(buf + sizeof(*r), obs, (size_t)nobs * sizeof(*obs));
	r->crc = fm_crc32c(buf, len);
	memcpy(buf + offsetof(struct pit_rec, crc), &r->crc, sizeof(r->crc));
	do
		n = write(fd, buf, len);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	return n == (ssize_t)len ? 0 : -EIO;
}

long pit_log_load(const char *path, pit_log_fn fn, void *ctx, int *torn)
{
	struct stat st;
	uint8_t *buf;
	size_t off = 0, got = 0;
	long count = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC), rc = 0;

	if (torn)
		*torn = 0;
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st)) {
		rc = -errno;
		close(fd);
		return rc;
	}
	buf = malloc((size_t)st.st_size + 1);
	if (!buf) {
		close(fd);
		return -ENOMEM;
	}
	while (got < (size_t)st.st_size) {
		ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);

		if (n <= 0)
			break;
		got += (size_t)n;
	}
	close(fd);
	while (off < got) {
		struct pit_rec r;
		uint32_t crc;

		if (got - off < sizeof(r))
			break;
		memcpy(&r, buf + off, sizeof(r));
		if (r.magic != PIT_REC_MAGIC || r.len < sizeof(r) || r.len > got - off ||
		    r.len != sizeof(r) + (size_t)r.nobs * sizeof(struct pit_obs))
			break;
		crc = r.crc;
		memset(buf + off + offsetof(struct pit_rec, crc), 0, sizeof(crc));
		if (fm_crc32c(buf + off, r.len) != crc)
			break;
		rc = fn(ctx, &r,
			r.nobs ? (const struct pit_obs *)(const void *)(buf + off + sizeof(r))
			       : NULL);
		if (rc) {
			free(buf);
			return rc;
		}
		count++;
		off += r.len;
	}
	if (off < got && torn)
		*torn = 1;
	free(buf);
	return count;
}
