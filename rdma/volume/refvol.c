/* refvol.c -- the reference volumes (flashmeta/refvol.h): a memory buffer
 * or a file, read and written synchronously, writes and flushes admitted
 * by the fence table when there is one.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h> /* BLKSSZGET */
#include <sys/ioctl.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "flashmeta/error.h"
#include "flashmeta/refvol.h"

struct fm_refvol {
	uint64_t size;
	int fd;            /* file volume; -1 for memory */
	uint8_t *mem;      /* memory volume */
	struct fm_fence_table *fence;
	uint32_t client_id;
	uint32_t align;    /* O_DIRECT: offsets, lengths, buffers; 0: buffered */
	_Atomic uint64_t reads, writes, flushes, bytes_read, bytes_written, refused, bounced;
};

#define BOUNCE_MAX (1u << 20) /* bytes of one bounced transfer */

/* O_DIRECT on v->fd if cfg asks and the file allows it: 0 (v->align set,
 * or left 0 for buffered under DIRECT_TRY), or -EINVAL under DIRECT */
static int direct_on(struct fm_refvol *v, const struct fm_refvol_cfg *cfg, const struct stat *sb)
{
	uint32_t align = 4096;
	int fl, bs;

	if (cfg->direct == FM_REFVOL_BUFFERED)
		return 0;
	if (S_ISBLK(sb->st_mode) && ioctl(v->fd, BLKSSZGET, &bs) == 0 && bs >= 512 &&
	    bs <= 65536 && !(bs & (bs - 1)))
		align = (uint32_t)bs > align ? (uint32_t)bs : align;
	fl = fcntl(v->fd, F_GETFL);
	if (fl >= 0 && fcntl(v->fd, F_SETFL, fl | O_DIRECT) == 0) {
		/* some file systems take the flag and fail the first I/O:
		 * try one aligned read */
		void *probe = aligned_alloc(align, align);
		ssize_t n = probe ? pread(v->fd, probe, align, 0) : -1;

		free(probe);
		if (n >= 0) {
			v->align = align;
			return 0;
		}
		(void)fcntl(v->fd, F_SETFL, fl);
	}
	if (cfg->direct == FM_REFVOL_DIRECT)
		return fm_err(-EINVAL, "refvol %s: O_DIRECT refused here: %s", cfg->path,
			      strerror(errno));
	return 0;
}

int fm_refvol_open(const struct fm_refvol_cfg *cfg, struct fm_refvol **out)
{
	struct fm_refvol *v;
	struct stat sb;

	if (!cfg || !out || cfg->size == 0 || (cfg->fence && cfg->client_id == 0))
		return fm_err(-EINVAL, "refvol: size 0, or a fence table without a client id");
	*out = NULL;
	v = calloc(1, sizeof(*v));
	if (!v)
		return fm_err(-ENOMEM, "refvol: out of memory");
	v->size = cfg->size;
	v->fence = cfg->fence;
	v->client_id = cfg->client_id;
	v->fd = -1;
	if (!cfg->path) {
		v->mem = calloc(1, cfg->size);
		if (!v->mem) {
			free(v);
			return fm_err(-ENOMEM, "refvol: %llu bytes of memory",
				      (unsigned long long)cfg->size);
		}
		*out = v;
		return 0;
	}
	v->fd = open(cfg->path, O_RDWR | O_CLOEXEC | (cfg->create ? O_CREAT : 0), 0600);
	if (v->fd < 0) {
		int rc = fm_err(-errno, "refvol %s: %s", cfg->path, strerror(errno));

		free(v);
		return rc;
	}
	if (fstat(v->fd, &sb) < 0)
		goto fail_errno;
	if (S_ISREG(sb.st_mode) && (uint64_t)sb.st_size < cfg->size) {
		if (!cfg->create || sb.st_size != 0) {
			close(v->fd);
			free(v);
			return fm_err(-EINVAL, "refvol %s: %lld bytes, shorter than %llu (only a "
				      "new, empty file is sized)", cfg->path, (long long)sb.st_size,
				      (unsigned long long)cfg->size);
		}
		if (ftruncate(v->fd, (off_t)cfg->size) < 0)
			goto fail_errno;
	} else if (S_ISBLK(sb.st_mode)) {
		off_t end = lseek(v->fd, 0, SEEK_END);

		if (end < 0 || (uint64_t)end < cfg->size) {
			close(v->fd);
			free(v);
			return fm_err(-EINVAL, "refvol %s: device shorter than %llu bytes",
				      cfg->path, (unsigned long long)cfg->size);
		}
	} else if (!S_ISREG(sb.st_mode)) {
		close(v->fd);
		free(v);
		return fm_err(-EINVAL, "refvol %s: not a regular file or block device", cfg->path);
	}
	{
		int rc = direct_on(v, cfg, &sb);

		if (rc) {
			close(v->fd);
			free(v);
			return rc;
		}
	}
	*out = v;
	return 0;
fail_errno: {
	int rc = fm_err(-errno, "refvol %s: %s", cfg->path, strerror(errno));

	close(v->fd);
	free(v);
	return rc;
}
}

void fm_refvol_close(struct fm_refvol **vp)
{
	struct fm_refvol *v = vp ? *vp : NULL;

	if (!v)
		return;
	if (v->fd >= 0)
		close(v->fd);
	free(v->mem);
	free(v);
	*vp = NULL;
}

/* the whole range, retrying short transfers and EINTR; 0 or -errno */
static int file_io(int fd, bool write, void *buf, uint64_t len, uint64_t off)
{
	uint8_t *p = buf;

	while (len) {
		ssize_t n = write ? pwrite(fd, p, len, (off_t)off) : pread(fd, p, len, (off_t)off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EIO; /* a read past the end of a device */
		p += n;
		off += (uint64_t)n;
		len -= (uint64_t)n;
	}
	return 0;
}

/* O_DIRECT: [off, off + len) of an aligned volume; buf may be unaligned
 * (then in pieces through an aligned bounce buffer) */
static int direct_io(struct fm_refvol *v, bool write, void *buf, uint64_t len, uint64_t off)
{
	uint8_t *bounce, *p = buf;
	int rc = 0;

	if ((uintptr_t)buf % v->align == 0)
		return file_io(v->fd, write, buf, len, off);
	bounce = aligned_alloc(v->align, len < BOUNCE_MAX ? len : BOUNCE_MAX);
	if (!bounce)
		return fm_err(-ENOMEM, "refvol: bounce buffer");
	atomic_fetch_add_explicit(&v->bounced, 1, memory_order_relaxed);
	while (!rc && len) {
		uint64_t n = len < BOUNCE_MAX ? len : BOUNCE_MAX;

		if (write)
			memcpy(bounce, p, n);
		rc = file_io(v->fd, write, bounce, n, off);
		if (!rc && !write)
			memcpy(p, bounce, n);
		p += n;
		off += n;
		len -= n;
	}
	free(bounce);
	return rc;
}

int fm_refvol_do(struct fm_refvol *v, const struct fm_mover_req *r)
{
	bool destructive = r->op == FM_MOVER_WRITE || r->op == FM_MOVER_FLUSH;
	int rc = 0;

	if (r->op != FM_MOVER_FLUSH) {
		if (r->op != FM_MOVER_READ && r->op != FM_MOVER_WRITE)
			return fm_err(-EOPNOTSUPP, "refvol: mover op %d not supported", (int)r->op);
		if (!r->buf || r->offset > v->size || r->length > v->size - r->offset)
			return fm_err(-ERANGE, "refvol: %llu bytes at %llu beyond %llu",
				      (unsigned long long)r->length,
				      (unsigned long long)r->offset,
				      (unsigned long long)v->size);
		if (v->align && (r->offset | r->length) % v->align)
			return fm_err(-EINVAL, "refvol: O_DIRECT volume: %llu bytes at %llu are "
				      "not multiples of %u", (unsigned long long)r->length,
				      (unsigned long long)r->offset, v->align);
	}
	if (destructive && v->fence) {
		rc = fm_fence_table_enter(v->fence, v->client_id, r->token);
		if (rc) {
			if (rc == -EKEYREJECTED)
				atomic_fetch_add_explicit(&v->refused, 1, memory_order_relaxed);
			return rc;
		}
	}
	switch (r->op) {
	case FM_MOVER_READ:
		if (v->mem)
			memcpy(r->buf, v->mem + r->offset, r->length);
		else if (v->align)
			rc = direct_io(v, false, r->buf, r->length, r->offset);
		else
			rc = file_io(v->fd, false, r->buf, r->length, r->offset);
		atomic_fetch_add_explicit(&v->reads, 1, memory_order_relaxed);
		atomic_fetch_add_explicit(&v->bytes_read, r->length, memory_order_relaxed);
		break;
	case FM_MOVER_WRITE:
		if (v->mem)
			memcpy(v->mem + r->offset, r->buf, r->length);
		else if (v->align)
			rc = direct_io(v, true, r->buf, r->length, r->offset);
		else
			rc = file_io(v->fd, true, r->buf, r->length, r->offset);
		atomic_fetch_add_explicit(&v->writes, 1, memory_order_relaxed);
		atomic_fetch_add_explicit(&v->bytes_written, r->length, memory_order_relaxed);
		break;
	default: /* FLUSH */
		if (v->fd >= 0)
			while ((rc = fdatasync(v->fd) < 0 ? -errno : 0) == -EINTR)
				;
		atomic_fetch_add_explicit(&v->flushes, 1, memory_order_relaxed);
		break;
	}
	if (destructive && v->fence)
		fm_fence_table_exit(v->fence, v->client_id, r->token);
	if (rc)
		rc = fm_err(rc, "refvol: %s failed: %s", r->op == FM_MOVER_READ ? "read" :
			    r->op == FM_MOVER_WRITE ? "write" : "flush", strerror(-rc));
	return rc;
}

static int refvol_submit(void *ctx, struct fm_mover_req *r)
{
	fm_mover_done(r, fm_refvol_do(ctx, r));
	return 0;
}

static const struct fm_mover_ops REFVOL_OPS = { .submit = refvol_submit, .copy = false };

const struct fm_mover_ops *fm_refvol_ops(void)
{
	return &REFVOL_OPS;
}

void fm_refvol_stats(struct fm_refvol *v, struct fm_refvol_stats *st)
{
	st->reads = atomic_load_explicit(&v->reads, memory_order_relaxed);
	st->writes = atomic_load_explicit(&v->writes, memory_order_relaxed);
	st->flushes = atomic_load_explicit(&v->flushes, memory_order_relaxed);
	st->bytes_read = atomic_load_explicit(&v->bytes_read, memory_order_relaxed);
	st->bytes_written = atomic_load_explicit(&v->bytes_written, memory_order_relaxed);
	st->refused = atomic_load_explicit(&v->refused, memory_order_relaxed);
	st->bounced = atomic_load_explicit(&v->bounced, memory_order_relaxed);
	st->direct = v->align != 0;
	st->align = v->align;
}
