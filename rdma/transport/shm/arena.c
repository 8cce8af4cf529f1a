/* arena.c -- the shm provider's transport object, the accepting side's two
 * arenas and the regions in them; the provider's ops table.
 *
 * The arenas, made at the first fm_listen or shared fm_region_new (a client
 * transport never makes any), each one memfd, ftruncate'd (sparse), mapped
 * MAP_SHARED into one contiguous range -- the "arena space" that region
 * descriptors' addr fields are offsets into:
 *
 *   0            table_bytes            read_size             read_size + atomic_size
 *   | region table | REMOTE_READ regions  | REMOTE_ATOMIC regions (and READ|ATOMIC) |
 *   '------------ READ arena -------------'--------------- ATOMIC arena --------------'
 *
 *   READ    mapped writable by us, THEN sealed F_SEAL_FUTURE_WRITE (with
 *           SHRINK, GROW, SEAL): a client that gets the fd can map it only
 *           PROT_READ, never mprotect it writable, never write(2) it.  Our
 *           own mapping keeps writing.  Split bitmaps and the region table
 *           live here: no client can set a bit or forge an entry.
 *   ATOMIC  sealed SHRINK, GROW, SEAL only: clients CAS lock words in it, so
 *           it is writable by every granted client (transport.h, SHM TRUST
 *           MODEL); the seals keep a client from truncating it under us.
 *
 * The table entry {key, access, off, len} is what a peer checks on EVERY
 * access (access.c): published by storing the key last (release), retired
 * by storing 0 first.  A stale or forged descriptor fails like a remote
 * access error on verbs: -EACCES and the endpoint CLOSED.
 *
 * Allocation is owner-private (free extents, first fit, coalesced on free;
 * nothing of it is in shared memory).  A deleted region's space is reused:
 * ATOMIC space is punched out at delete (freed, reads back zero), READ space
 * (which the seal forbids punching) is zeroed when reused.  Reuse is safe
 * because a region is deleted only after the protocol revoked every grant
 * naming it (all holders released, or were fenced), and a new region at the
 * same offset gets a new random key, so a stale descriptor fails the key
 * check.  Caller holds t->lock for everything here (region.c takes it).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "shm_priv.h"

#ifndef F_SEAL_FUTURE_WRITE
#define F_SEAL_FUTURE_WRITE 0x0010 /* Linux 5.1 uapi */
#endif

static uint64_t page_up(uint64_t n)
{
	return (n + SHM_PAGE - 1) & ~(SHM_PAGE - 1);
}

/* ------------------------------------------------------- free extents */

static int ext_insert(struct shm_arena *a, uint32_t at, uint64_t off, uint64_t len)
{
	if (a->nfree == a->capfree) {
		uint32_t nc = a->capfree ? a->capfree * 2 : 16;
		struct shm_extent *n = realloc(a->free, nc * sizeof(*n));

		if (n == NULL)
			return -ENOMEM;
		a->free = n;
		a->capfree = nc;
	}
	memmove(&a->free[at + 1], &a->free[at], (a->nfree - at) * sizeof(*a->free));
	a->free[at] = (struct shm_extent){.off = off, .len = len};
	a->nfree++;
	return 0;
}

/* first fit; UINT64_MAX when no extent is large enough */
static uint64_t ext_alloc(struct shm_arena *a, uint64_t len)
{
	for (uint32_t i = 0; i < a->nfree; i++) {
		struct shm_extent *e = &a->free[i];
		uint64_t off = e->off;

		if (e->len < len)
			continue;
		e->off += len;
		e->len -= len;
		if (e->len == 0) {
			memmove(e, e + 1, (a->nfree - i - 1) * sizeof(*e));
			a->nfree--;
		}
		return off;
	}
	return UINT64_MAX;
}

static uint64_t ext_largest(const struct shm_arena *a)
{
	uint64_t m = 0;

	for (uint32_t i = 0; i < a->nfree; i++)
		if (a->free[i].len > m)
			m = a->free[i].len;
	return m;
}

/* give [off, off + len) back, merged with its neighbours.  Cannot fail for
 * lack of memory when it merges; else -ENOMEM (the space is then lost, which
 * is safe). */
static int ext_free(struct shm_arena *a, uint64_t off, uint64_t len)
{
	uint32_t i = 0;

	while (i < a->nfree && a->free[i].off < off)
		i++;
	if (i > 0 && a->free[i - 1].off + a->free[i - 1].len == off) {
		a->free[i - 1].len += len;
		if (i < a->nfree && off + len == a->free[i].off) {
			a->free[i - 1].len += a->free[i].len;
			memmove(&a->free[i], &a->free[i + 1], (a->nfree - i - 1) * sizeof(*a->free));
			a->nfree--;
		}
		return 0;
	}
	if (i < a->nfree && off + len == a->free[i].off) {
		a->free[i].off = off;
		a->free[i].len += len;
		return 0;
	}
	return ext_insert(a, i, off, len);
}

/* ------------------------------------------------------------- arenas */

static int arena_fd(const char *name, uint64_t size, int *out)
{
	int fd = memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING);

	if (fd < 0)
		return fm_err(-errno, "memfd_create(%s): %s", name, strerror(errno));
	if (ftruncate(fd, (off_t)size)) {
		int e = errno;

		close(fd);
		return fm_err(e == EFBIG || e == EINVAL ? -ENOMEM : -e,
			      "shm: cannot size the %s memfd to %llu bytes: %s", name,
			      (unsigned long long)size, strerror(e));
	}
	*out = fd;
	return 0;
}

int fm__shm_arenas_open(struct shm_transport *st)
{
	const struct fm_transport_cfg *cfg = &st->t.cfg;
	uint32_t nent = cfg->shm_max_regions;
	uint64_t tbytes = shm_table_bytes(nent);
	uint64_t rs = page_up(cfg->shm_read_size), as = page_up(cfg->shm_atomic_size);
	void *p;
	int ret;

	if (st->arenas)
		return 0;
	if (rs < tbytes + SHM_PAGE || as < SHM_PAGE || rs > UINT64_MAX / 2 || as > UINT64_MAX / 2)
		return fm_err(-EINVAL, "shm arenas of %llu + %llu bytes: the READ arena needs "
				       "at least %llu (a %u-entry region table and a page)",
			      (unsigned long long)rs, (unsigned long long)as,
			      (unsigned long long)(tbytes + SHM_PAGE), nent);
	st->rd.fd = st->at.fd = -1;
	ret = arena_fd("flashmeta-read", rs, &st->rd.fd);
	if (ret)
		goto out;
	ret = arena_fd("flashmeta-atomic", as, &st->at.fd);
	if (ret)
		goto out;
	/* one contiguous range: reserve, then map both over it */
	st->map_len = rs + as;
	p = mmap(NULL, st->map_len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (p == MAP_FAILED) {
		ret = fm_err(-ENOMEM, "shm: cannot map arenas of %llu + %llu bytes (%s): lower "
				      "shm_read_size/shm_atomic_size or raise the address-space limit",
			     (unsigned long long)rs, (unsigned long long)as, strerror(errno));
		goto out;
	}
	st->map = p;
	if (mmap(st->map, rs, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED | MAP_NORESERVE,
		 st->rd.fd, 0) == MAP_FAILED ||
	    mmap(st->map + rs, as, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED | MAP_NORESERVE,
		 st->at.fd, 0) == MAP_FAILED) {
		ret = fm_err(-ENOMEM, "shm: cannot map arenas of %llu + %llu bytes: %s",
			     (unsigned long long)rs, (unsigned long long)as, strerror(errno));
		goto out;
	}
	/* 1. our writable mapping exists; 2. now nobody can make another */
	if (fcntl(st->rd.fd, F_ADD_SEALS,
		  F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_FUTURE_WRITE | F_SEAL_SEAL) ||
	    fcntl(st->at.fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL)) {
		ret = fm_err(-errno, "shm: sealing the arenas: %s (Linux >= 5.1 needed)",
			     strerror(errno));
		goto out;
	}
	st->table = (struct shm_table_hdr *)(void *)st->map;
	st->table->magic = SHM_TABLE_MAGIC;
	st->table->read_size = rs;
	st->table->atomic_size = as;
	st->table->nent = nent;
	st->nent = nent;
	st->rd.base = 0;
	st->rd.size = rs;
	st->at.base = rs;
	st->at.size = as;
	if (ext_insert(&st->rd, 0, tbytes, rs - tbytes) || ext_insert(&st->at, 0, rs, as)) {
		ret = fm_err(-ENOMEM, "shm arena extents");
		goto out;
	}
	st->t.caps.max_region_size = as;
	st->arenas = true;
	return 0;

out:
	if (st->map)
		munmap(st->map, st->map_len);
	st->map = NULL;
	if (st->rd.fd >= 0)
		close(st->rd.fd);
	if (st->at.fd >= 0)
		close(st->at.fd);
	free(st->rd.free);
	free(st->at.free);
	memset(&st->rd, 0, sizeof(st->rd));
	memset(&st->at, 0, sizeof(st->at));
	st->table = NULL;
	return ret;
}

/* ------------------------------------------------------------ transport */

static int shm_transport_init(struct fm_transport **out, const struct fm_transport_cfg *cfg)
{
	struct shm_transport *st = calloc(1, sizeof(*st));

	if (st == NULL)
		return fm_err(-ENOMEM, "shm transport");
	st->rd.fd = st->at.fd = -1;
	snprintf(st->t.device, sizeof(st->t.device), "shm");
	st->t.caps.flags = FM_CAP_ATOMIC | FM_CAP_ATOMIC_GLOB | FM_CAP_EVENT_FD;
	st->t.caps.max_msg_size = cfg->msg_size;
	snprintf(st->t.caps.provider, sizeof(st->t.caps.provider), "shm");
	snprintf(st->t.caps.device, sizeof(st->t.caps.device), "shm");
	st->t.caps.max_region_size = cfg->shm_atomic_size;
	*out = &st->t;
	return 0;
}

static void shm_transport_fini(struct fm_transport *t)
{
	struct shm_transport *st = to_st(t);

	if (st->arenas) {
		munmap(st->map, st->map_len);
		close(st->rd.fd);
		close(st->at.fd);
	}
	free(st->rd.free);
	free(st->at.free);
	free(st);
}

/* -------------------------------------------------------------- regions */

static int shm_region_new(struct fm_transport *t, size_t len, unsigned access,
			  struct fm_region **out)
{
	struct shm_transport *st = to_st(t);
	struct shm_arena *a;
	struct shm_region_ent *e = NULL;
	struct fm_region *r;
	uint64_t alen = page_up(len), off;
	uint32_t key;
	int ret;

	r = calloc(1, sizeof(*r));
	if (r == NULL)
		return fm_err(-ENOMEM, "region");
	r->t = t;
	r->len = len;
	r->access = access;
	r->owned = true;
	if (access == FM_ACCESS_LOCAL) {
		/* nobody else touches it: private memory */
		if (posix_memalign(&r->ptr, SHM_PAGE, alen)) {
			free(r);
			return fm_err(-ENOMEM, "local region of %zu bytes", len);
		}
		memset(r->ptr, 0, alen);
		r->addr = (uint64_t)(uintptr_t)r->ptr;
		r->key = fm__random_key();
		*out = r;
		return 0;
	}
	ret = fm__shm_arenas_open(st);
	if (ret) {
		free(r);
		return ret;
	}
	for (uint32_t i = 0; i < st->nent && !e; i++)
		if (atomic_load_explicit(&st->table->ent[i].key, memory_order_relaxed) == 0)
			e = &st->table->ent[i];
	if (e == NULL) {
		free(r);
		return fm_err(-ENOSPC, "shm: all %u region table entries used (raise "
				       "shm_max_regions)", st->nent);
	}
	a = (access & FM_ACCESS_REMOTE_ATOMIC) ? &st->at : &st->rd;
	off = ext_alloc(a, alen);
	if (off == UINT64_MAX) {
		free(r);
		return fm_err(-ENOMEM, "shm %s arena full: %zu bytes asked, largest free extent "
				       "%llu of %llu (raise shm_%s_size)",
			      a == &st->at ? "ATOMIC" : "READ", len,
			      (unsigned long long)ext_largest(a), (unsigned long long)a->size,
			      a == &st->at ? "atomic" : "read");
	}
	/* READ space cannot be punched (sealed): zero what a former region left
	 * (below the high-water mark; above it the memfd was never written) */
	if (a == &st->rd && off < a->hwm)
		memset(st->map + off, 0, (a->hwm < off + alen ? a->hwm : off + alen) - off);
	if (off + alen > a->hwm)
		a->hwm = off + alen;
	do
		key = fm__random_key();
	while (key == 0);
	r->addr = off;
	r->ptr = st->map + off;
	r->key = key;
	atomic_store_explicit(&e->access, access, memory_order_relaxed);
	atomic_store_explicit(&e->off, off, memory_order_relaxed);
	atomic_store_explicit(&e->len, len, memory_order_relaxed);
	/* publish: a peer that sees the key sees off/len/access */
	atomic_store_explicit(&e->key, key, memory_order_release);
	*out = r;
	return 0;
}

static int shm_region_reg(struct fm_transport *t, void *addr, size_t len, unsigned access,
			  struct fm_region **out)
{
	struct fm_region *r;

	if (access != FM_ACCESS_LOCAL)
		return fm_err(-EOPNOTSUPP,
			      "shm: memory outside the arena cannot be shared; use fm_region_new");
	r = calloc(1, sizeof(*r));
	if (r == NULL)
		return fm_err(-ENOMEM, "region");
	r->t = t;
	r->ptr = addr;
	r->len = len;
	r->access = access;
	r->addr = (uint64_t)(uintptr_t)addr;
	r->key = fm__random_key();
	*out = r;
	return 0;
}

static void shm_region_delete(struct fm_region *r)
{
	struct shm_transport *st = to_st(r->t);
	uint64_t alen = page_up(r->len);

	if (r->access == FM_ACCESS_LOCAL) {
		if (r->owned)
			free(r->ptr);
		free(r);
		return;
	}
	for (uint32_t i = 0; i < st->nent; i++) {
		struct shm_region_ent *e = &st->table->ent[i];

		if (atomic_load_explicit(&e->key, memory_order_relaxed) != r->key ||
		    atomic_load_explicit(&e->off, memory_order_relaxed) != r->addr)
			continue;
		/* retire first: from now on lookups with the old key fail */
		atomic_store_explicit(&e->key, 0, memory_order_release);
		if (r->access & FM_ACCESS_REMOTE_ATOMIC) {
			(void)fallocate(st->at.fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
					(off_t)(r->addr - st->at.base), (off_t)alen);
			(void)ext_free(&st->at, r->addr, alen);
		} else {
			(void)ext_free(&st->rd, r->addr, alen);
		}
		break;
	}
	free(r);
}

const struct fm_provider_ops fm__shm_ops = {
	.name = "shm",
	.transport_init = shm_transport_init,
	.transport_fini = shm_transport_fini,
	.region_new = shm_region_new,
	.region_reg = shm_region_reg,
	.region_delete = shm_region_delete,
	.listen = fm__shm_listen,
	.listener_delete = fm__shm_listener_delete,
	.listener_fd = fm__shm_listener_fd,
	.accept = fm__shm_accept,
	.loopback = fm__shm_loopback,
	.connect = fm__shm_connect,
	.ep_delete = fm__shm_ep_delete,
	.grant = fm__shm_grant,
	.fence = fm__shm_fence,
	.fence_fd = fm__shm_fence_fd,
	.ep_free = fm__shm_ep_free,
	.lane_new = fm__shm_lane_new,
	.lane_retire = fm__shm_lane_retire,
	.lane_free = fm__shm_lane_free,
	.post_read = fm__shm_post_read,
	.post_atomic = fm__shm_post_atomic,
	.lane_poll = fm__shm_lane_poll,
	.lane_sleep = NULL, /* an operation is complete when its post returns */
	.msg_post = fm__shm_msg_post,
	.msg_repost = fm__shm_msg_repost,
	.progress = fm__shm_progress,
};
