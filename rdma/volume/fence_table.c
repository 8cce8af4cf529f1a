/* fence_table.c -- the storage fence table (flashmeta/fence_table.h).
 *
 * File layout (little-endian):
 *   0     "FMFENCE1" magic, u32 version (1), u32 clients (65536), zeros
 *   4096  u64 floor[65536]
 * Writers read the floors through a shared read-only mapping (the page
 * cache is coherent with the owner's pwrite) and hold OFD locks on bytes
 * far past the end of the file, one per session:
 *   lock_off(client, token) = client << 40 | (incarnation & 0xff) << 32 | epoch
 * (token = incarnation << 32 | epoch, lease.h R5).  Two sessions whose
 * incarnations differ by a multiple of 256 share a byte: a raise then
 * waits for both, which only costs time.
 */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "flashmeta/error.h"
#include "flashmeta/fence_table.h"

#define FT_MAGIC "FMFENCE1"
#define FT_VERSION 1u
#define FT_HDR 4096u
#define FT_FLOORS ((size_t)FM_FENCE_TABLE_CLIENTS * 8u)
#define FT_SIZE ((off_t)FT_HDR + (off_t)FT_FLOORS)
#define FT_CLIENT_SHIFT 40

/* a session this process has writes in flight for */
struct ft_hold {
	uint32_t client;
	uint64_t token;
	unsigned count;
};

struct fm_fence_table {
	int fd;
	bool raise;
	const uint64_t *floors; /* mapped, read-only */
	pthread_mutex_t mu;     /* holds */
	struct ft_hold *holds;
	size_t nholds, cap;
};

static off_t lock_off(uint32_t client, uint64_t token)
{
	return (off_t)((uint64_t)client << FT_CLIENT_SHIFT | ((token >> 32) & 0xff) << 32 |
		       (token & 0xffffffffu));
}

/* F_OFD_SETLK(W) of one byte or a client's range; 0 or -errno (-EAGAIN
 * for "held by someone else" in the non-waiting form) */
static int ofd_lock(int fd, short type, off_t start, off_t len, bool wait)
{
	struct flock fl = { .l_type = type, .l_whence = SEEK_SET, .l_start = start,
			    .l_len = len };

	while (fcntl(fd, wait ? F_OFD_SETLKW : F_OFD_SETLK, &fl) < 0) {
		if (errno == EINTR)
			continue;
		return errno == EACCES ? -EAGAIN : -errno;
	}
	return 0;
}

static bool client_ok(uint32_t client)
{
	return client > 0 && client < FM_FENCE_TABLE_CLIENTS;
}

/* --------------------------------------------------------------- open */

static int check_header(int fd, const char *path)
{
	uint8_t hdr[16];
	struct stat sb;
	uint32_t v, n;

	if (fstat(fd, &sb) < 0)
		return fm_err(-errno, "fence table %s: %s", path, strerror(errno));
	if (!S_ISREG(sb.st_mode) || sb.st_size != FT_SIZE)
		return fm_err(-EINVAL, "fence table %s: not a fence table (%lld bytes, want %lld)",
			      path, (long long)sb.st_size, (long long)FT_SIZE);
	if (pread(fd, hdr, sizeof(hdr), 0) != (ssize_t)sizeof(hdr))
		return fm_err(-EIO, "fence table %s: short header", path);
	memcpy(&v, hdr + 8, 4);
	memcpy(&n, hdr + 12, 4);
	if (memcmp(hdr, FT_MAGIC, 8))
		return fm_err(-EINVAL, "fence table %s: bad magic", path);
	if (le32toh(v) != FT_VERSION || le32toh(n) != FM_FENCE_TABLE_CLIENTS)
		return fm_err(-EINVAL, "fence table %s: version %u with %u clients, want %u/%u",
			      path, le32toh(v), le32toh(n), FT_VERSION, FM_FENCE_TABLE_CLIENTS);
	return 0;
}

/* write a new table aside and link it in: an opener never sees half a
 * table; 0, or -EEXIST when someone else made it first */
static int create_table(const char *path)
{
	char tmp[PATH_MAX];
	uint8_t hdr[FT_HDR] = { 0 };
	uint32_t v = htole32(FT_VERSION), n = htole32(FM_FENCE_TABLE_CLIENTS);
	int fd, rc = 0;

	if (snprintf(tmp, sizeof(tmp), "%s.XXXXXX", path) >= (int)sizeof(tmp))
		return fm_err(-ENAMETOOLONG, "fence table %s: path too long", path);
	fd = mkstemp(tmp);
	if (fd < 0)
		return fm_err(-errno, "fence table %s: %s", tmp, strerror(errno));
	memcpy(hdr, FT_MAGIC, 8);
	memcpy(hdr + 8, &v, 4);
	memcpy(hdr + 12, &n, 4);
	if (pwrite(fd, hdr, sizeof(hdr), 0) != (ssize_t)sizeof(hdr) ||
	    ftruncate(fd, FT_SIZE) < 0 || fsync(fd) < 0)
		rc = fm_err(-errno ? -errno : -EIO, "fence table %s: %s", tmp, strerror(errno));
	close(fd);
	if (!rc && link(tmp, path) < 0)
		rc = errno == EEXIST ? -EEXIST
				     : fm_err(-errno, "fence table %s: %s", path, strerror(errno));
	(void)unlink(tmp); /* ours: made by mkstemp above */
	return rc;
}

int fm_fence_table_open(const char *path, unsigned flags, struct fm_fence_table **out)
{
	struct fm_fence_table *f;
	int fd, rc;
	void *map;

	if (!path || !out || (flags & ~(FM_FENCE_TABLE_CREATE | FM_FENCE_TABLE_RAISE)))
		return fm_err(-EINVAL, "fence table: bad arguments");
	*out = NULL;
	fd = open(path, (flags & FM_FENCE_TABLE_RAISE ? O_RDWR : O_RDONLY) | O_CLOEXEC);
	if (fd < 0 && errno == ENOENT && (flags & FM_FENCE_TABLE_CREATE)) {
		rc = create_table(path);
		if (rc && rc != -EEXIST)
			return rc;
		fd = open(path, (flags & FM_FENCE_TABLE_RAISE ? O_RDWR : O_RDONLY) | O_CLOEXEC);
	}
	if (fd < 0)
		return fm_err(-errno, "fence table %s: %s", path, strerror(errno));
	rc = check_header(fd, path);
	if (rc) {
		close(fd);
		return rc;
	}
	map = mmap(NULL, FT_FLOORS, PROT_READ, MAP_SHARED, fd, FT_HDR);
	if (map == MAP_FAILED) {
		rc = fm_err(-errno, "fence table %s: mmap: %s", path, strerror(errno));
		close(fd);
		return rc;
	}
	f = calloc(1, sizeof(*f));
	if (!f) {
		munmap(map, FT_FLOORS);
		close(fd);
		return fm_err(-ENOMEM, "fence table: out of memory");
	}
	f->fd = fd;
	f->raise = flags & FM_FENCE_TABLE_RAISE;
	f->floors = map;
	pthread_mutex_init(&f->mu, NULL);
	*out = f;
	return 0;
}

void fm_fence_table_close(struct fm_fence_table **fp)
{
	struct fm_fence_table *f = fp ? *fp : NULL;

	if (!f)
		return;
	munmap((void *)f->floors, FT_FLOORS);
	close(f->fd); /* drops every OFD lock of ours */
	pthread_mutex_destroy(&f->mu);
	free(f->holds);
	free(f);
	*fp = NULL;
}

uint64_t fm_fence_table_floor(struct fm_fence_table *f, uint32_t client)
{
	if (!f || !client_ok(client))
		return 0;
	return le64toh(__atomic_load_n(&f->floors[client], __ATOMIC_ACQUIRE));
}

/* ------------------------------------------------------------- writers */

static struct ft_hold *hold_find(struct fm_fence_table *f, uint32_t client, uint64_t token)
{
	for (size_t i = 0; i < f->nholds; i++)
		if (f->holds[i].client == client && f->holds[i].token == token)
			return &f->holds[i];
	return NULL;
}

static void hold_drop(struct fm_fence_table *f, struct ft_hold *h)
{
	*h = f->holds[--f->nholds];
}

int fm_fence_table_enter(struct fm_fence_table *f, uint32_t client, uint64_t token)
{
	struct ft_hold *h;
	uint64_t floor;
	int rc;

	if (!f || !client_ok(client))
		return fm_err(-EINVAL, "fence table: client %u out of range", client);
	pthread_mutex_lock(&f->mu);
	h = hold_find(f, client, token);
	if (!h) {
		if (f->nholds == f->cap) {
			size_t nc = f->cap ? f->cap * 2 : 4;
			struct ft_hold *nv = realloc(f->holds, nc * sizeof(*nv));

			if (!nv) {
				pthread_mutex_unlock(&f->mu);
				return fm_err(-ENOMEM, "fence table: out of memory");
			}
			f->holds = nv;
			f->cap = nc;
		}
		/* the session's byte, shared: waits out a raise of it */
		rc = ofd_lock(f->fd, F_RDLCK, lock_off(client, token), 1, true);
		if (rc) {
			pthread_mutex_unlock(&f->mu);
			return fm_err(rc, "fence table: lock: %s", strerror(-rc));
		}
		h = &f->holds[f->nholds++];
		*h = (struct ft_hold){ .client = client, .token = token };
	}
	/* under the lock: no raise of this session can run until exit */
	floor = fm_fence_table_floor(f, client);
	if (token < floor) {
		if (h->count == 0) {
			(void)ofd_lock(f->fd, F_UNLCK, lock_off(client, token), 1, false);
			hold_drop(f, h);
		}
		pthread_mutex_unlock(&f->mu);
		return fm_err(-EKEYREJECTED, "fence table: client %u token %#llx is fenced "
			      "(floor %#llx)", client, (unsigned long long)token,
			      (unsigned long long)floor);
	}
	h->count++;
	pthread_mutex_unlock(&f->mu);
	return 0;
}

void fm_fence_table_exit(struct fm_fence_table *f, uint32_t client, uint64_t token)
{
	struct ft_hold *h;

	if (!f)
		return;
	pthread_mutex_lock(&f->mu);
	h = hold_find(f, client, token);
	if (h && --h->count == 0) {
		(void)ofd_lock(f->fd, F_UNLCK, lock_off(client, token), 1, false);
		hold_drop(f, h);
	}
	pthread_mutex_unlock(&f->mu);
}

/* ------------------------------------------------------------- raisers */

/* floor[c] = max(floor, to) for c in [first, last], then one fdatasync;
 * the caller holds the locks */
static int floors_raise(struct fm_fence_table *f, uint32_t first, uint32_t last, uint64_t to)
{
	bool wrote = false;

	for (uint32_t c = first; c <= last; c++) {
		off_t off = (off_t)FT_HDR + (off_t)c * 8;
		uint64_t cur, le;

		if (pread(f->fd, &cur, 8, off) != 8)
			return fm_err(-EIO, "fence table: read of client %u's floor failed", c);
		if (le64toh(cur) >= to)
			continue;
		le = htole64(to);
		if (pwrite(f->fd, &le, 8, off) != 8)
			return fm_err(-EIO, "fence table: write of client %u's floor failed: %s",
				      c, strerror(errno));
		wrote = true;
	}
	if (wrote && fdatasync(f->fd) < 0)
		return fm_err(-EIO, "fence table: fdatasync: %s", strerror(errno));
	return 0;
}

static int raise_locked(struct fm_fence_table *f, uint32_t first, uint32_t last, uint64_t to,
			off_t start, off_t len, bool wait)
{
	int rc;

	if (!f || !client_ok(first) || !client_ok(last) || last < first)
		return fm_err(-EINVAL, "fence table: clients %u-%u out of range", first, last);
	if (!f->raise)
		return fm_err(-EBADF, "fence table: opened without FM_FENCE_TABLE_RAISE");
	rc = ofd_lock(f->fd, F_WRLCK, start, len, wait);
	if (rc == -EAGAIN)
		return -EAGAIN; /* a write in flight: not an error to report */
	if (rc)
		return fm_err(rc, "fence table: lock: %s", strerror(-rc));
	rc = floors_raise(f, first, last, to);
	(void)ofd_lock(f->fd, F_UNLCK, start, len, false);
	return rc;
}

int fm_fence_table_try_session(struct fm_fence_table *f, uint32_t client, uint64_t token)
{
	if (token == UINT64_MAX)
		return fm_err(-EINVAL, "fence table: token out of range");
	return raise_locked(f, client, client, token + 1, lock_off(client, token), 1, false);
}

int fm_fence_table_clients(struct fm_fence_table *f, uint32_t first, uint32_t last,
			   uint64_t to, bool wait)
{
	return raise_locked(f, first, last, to, (off_t)((uint64_t)first << FT_CLIENT_SHIFT),
			    (off_t)((uint64_t)(last - first + 1) << FT_CLIENT_SHIFT), wait);
}
