/* arena.c -- the shm provider's transport object and regions, and the
 * one-sided operations on a peer's arena.
 *
 * The arena: one memfd per transport, ftruncate'd to cfg.shm_arena_size
 * (sparse), mapped MAP_SHARED.  Page 0.. holds the region table; regions
 * are bump-allocated after it, page aligned.  A region descriptor's addr is
 * its offset in the arena.  The table entry {key, access, off, len} is what
 * a peer checks on EVERY access: key published last with a release store,
 * cleared to 0 on delete (and the pages punched out), so a stale or forged
 * descriptor fails like a remote access error on verbs: -EACCES and the
 * endpoint CLOSED.
 *
 * One-sided operations are plain C11 atomics on the peer's arena mapping:
 * CAS = atomic_compare_exchange_strong, FAA = atomic_fetch_add, READ =
 * one memory_order_acquire load per aligned 8-byte word.  The loopback
 * endpoint maps nothing: its "peer arena" is our own.
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

/* ------------------------------------------------------------ transport */

static int shm_transport_init(struct fm_transport **out, const struct fm_transport_cfg *cfg)
{
	struct shm_transport *st;
	struct shm_arena_hdr *h;
	int ret;

	if (cfg->shm_arena_size < SHM_ARENA_DATA + SHM_PAGE)
		return fm_err(-EINVAL, "shm arena of %llu bytes is too small",
			      (unsigned long long)cfg->shm_arena_size);
	st = calloc(1, sizeof(*st));
	if (st == NULL)
		return fm_err(-ENOMEM, "shm transport");
	st->arena_size = (cfg->shm_arena_size + SHM_PAGE - 1) & ~(SHM_PAGE - 1);
	st->arena_fd = memfd_create("flashmeta-arena", MFD_CLOEXEC);
	if (st->arena_fd < 0) {
		ret = fm_err(-errno, "memfd_create: %s", strerror(errno));
		goto out_free;
	}
	if (ftruncate(st->arena_fd, (off_t)st->arena_size)) {
		ret = fm_err(-errno, "ftruncate arena to %llu: %s",
			     (unsigned long long)st->arena_size, strerror(errno));
		goto out_close;
	}
	st->arena = mmap(NULL, st->arena_size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE,
			 st->arena_fd, 0);
	if (st->arena == MAP_FAILED) {
		ret = fm_err(-errno, "mmap arena: %s", strerror(errno));
		goto out_close;
	}
	h = (struct shm_arena_hdr *)st->arena;
	h->magic = SHM_ARENA_MAGIC;
	h->size = st->arena_size;
	h->bump = SHM_ARENA_DATA;

	snprintf(st->t.device, sizeof(st->t.device), "shm");
	st->t.caps.flags = FM_CAP_ATOMIC | FM_CAP_ATOMIC_GLOB | FM_CAP_EVENT_FD;
	st->t.caps.max_msg_size = cfg->msg_size;
	snprintf(st->t.caps.provider, sizeof(st->t.caps.provider), "shm");
	snprintf(st->t.caps.device, sizeof(st->t.caps.device), "shm");
	st->t.caps.max_region_size = st->arena_size - SHM_ARENA_DATA;
	*out = &st->t;
	return 0;

out_close:
	close(st->arena_fd);
out_free:
	free(st);
	return ret;
}

static void shm_transport_fini(struct fm_transport *t)
{
	struct shm_transport *st = to_st(t);

	munmap(st->arena, st->arena_size);
	close(st->arena_fd);
	free(st);
}

/* -------------------------------------------------------------- regions */

static int shm_region_new(struct fm_transport *t, size_t len, unsigned access,
			  struct fm_region **out)
{
	struct shm_transport *st = to_st(t);
	struct shm_arena_hdr *h = (struct shm_arena_hdr *)st->arena;
	struct fm_region *r;
	uint64_t alen = (len + SHM_PAGE - 1) & ~(SHM_PAGE - 1);
	int i, idx = -1;

	r = calloc(1, sizeof(*r));
	if (r == NULL)
		return fm_err(-ENOMEM, "region");
	r->t = t;
	r->len = len;
	r->access = access;
	if (access == FM_ACCESS_LOCAL) {
		/* nobody else touches it: private memory */
		if (posix_memalign(&r->ptr, SHM_PAGE, alen)) {
			free(r);
			return fm_err(-ENOMEM, "local region of %zu bytes", len);
		}
		memset(r->ptr, 0, alen);
		r->addr = (uint64_t)(uintptr_t)r->ptr;
		r->key = fm__random_key();
		r->owned = true;
		*out = r;
		return 0;
	}
	for (i = 0; i < SHM_MAX_REGIONS; i++) {
		if (atomic_load_explicit(&h->ent[i].key, memory_order_relaxed) == 0 &&
		    h->ent[i].len == 0) {
			idx = i;
			break;
		}
	}
	if (idx < 0) {
		free(r);
		return fm_err(-ENOMEM, "shm: all %d region slots used", SHM_MAX_REGIONS);
	}
	if (alen > st->arena_size - h->bump) {
		free(r);
		return fm_err(-ENOMEM, "shm arena full: %zu bytes asked, %llu left (raise "
				       "shm_arena_size)",
			      len, (unsigned long long)(st->arena_size - h->bump));
	}
	r->addr = h->bump;
	r->ptr = st->arena + h->bump;
	h->bump += alen;
	r->key = fm__random_key();
	h->ent[idx].access = access;
	h->ent[idx].off = r->addr;
	h->ent[idx].len = len;
	/* publish: a peer that sees the key sees off/len/access */
	atomic_store_explicit(&h->ent[idx].key, r->key, memory_order_release);
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
	struct shm_arena_hdr *h = (struct shm_arena_hdr *)st->arena;
	int i;

	if (r->access == FM_ACCESS_LOCAL) {
		if (r->owned)
			free(r->ptr);
		free(r);
		return;
	}
	for (i = 0; i < SHM_MAX_REGIONS; i++) {
		if (atomic_load_explicit(&h->ent[i].key, memory_order_relaxed) == r->key &&
		    h->ent[i].off == r->addr) {
			atomic_store_explicit(&h->ent[i].key, 0, memory_order_release);
			/* the memory is not reused (bump allocator); give the
			 * pages back.  The table slot stays burnt (len != 0) so
			 * a stale descriptor can never match a new region. */
			(void)fallocate(st->arena_fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
					(off_t)r->addr,
					(off_t)((r->len + SHM_PAGE - 1) & ~(SHM_PAGE - 1)));
			break;
		}
	}
	free(r);
}

/* ------------------------------------------------------------ one-sided */

/*
 * shm_lookup -- the peer's table entry for `d`, checked: key, access, bounds.
 * A failure closes the endpoint, as a remote access error does on verbs.
 * Cost: no syscall, no lock; one acquire load when the cached index hits.
 */
static int shm_lookup(struct shm_ep *se, const struct fm_region_desc *d, unsigned need,
		      uint64_t off, uint64_t len, uint8_t **p)
{
	struct shm_arena_hdr *h = (struct shm_arena_hdr *)se->peer_arena;
	struct shm_region_ent *e = NULL;
	uint32_t key;
	int i;

	if (se->cache_idx >= 0 && h->ent[se->cache_idx].off == d->addr)
		e = &h->ent[se->cache_idx];
	for (i = 0; e == NULL && i < SHM_MAX_REGIONS; i++) {
		if (h->ent[i].off == d->addr && h->ent[i].len != 0) {
			e = &h->ent[i];
			se->cache_idx = i;
		}
	}
	if (e == NULL)
		return fm__ep_fail(&se->ep, -EACCES,
				   "remote access error: no region at 0x%llx (key 0x%x)",
				   (unsigned long long)d->addr, d->key);
	key = atomic_load_explicit(&e->key, memory_order_acquire);
	if (key == 0 || key != d->key)
		return fm__ep_fail(&se->ep, -EACCES,
				   "remote access error: bad key 0x%x for region at 0x%llx",
				   d->key, (unsigned long long)d->addr);
	if ((e->access & need) != need)
		return fm__ep_fail(&se->ep, -EACCES,
				   "remote access error: region 0x%x does not grant access 0x%x",
				   d->key, need);
	if (off > e->len || len > e->len - off || e->off + e->len > se->peer_arena_size)
		return fm__ep_fail(&se->ep, -EACCES,
				   "remote access error: [%llu, +%llu) outside region 0x%x",
				   (unsigned long long)off, (unsigned long long)len, d->key);
	*p = se->peer_arena + e->off + off;
	return 0;
}

static int shm_read(struct fm_ep *ep, void *dst, struct fm_region *dst_r,
		    const struct fm_region_desc *src, uint64_t src_off, size_t len)
{
	struct shm_ep *se = to_sep(ep);
	uint8_t *s, *d = dst;
	size_t head;
	int ret;

	ret = shm_lookup(se, src, FM_ACCESS_REMOTE_READ, src_off, len, &s);
	if (ret)
		return ret;
	/* unaligned head and tail byte-wise, aligned words with acquire */
	head = (size_t)((8 - ((uintptr_t)s & 7)) & 7);
	if (head > len)
		head = len;
	memcpy(d, s, head);
	d += head;
	s += head;
	len -= head;
	while (len >= 8) {
		uint64_t w = atomic_load_explicit((_Atomic uint64_t *)(void *)s,
						  memory_order_acquire);
		memcpy(d, &w, 8);
		d += 8;
		s += 8;
		len -= 8;
	}
	memcpy(d, s, len);
	return 0;
}

static int shm_atomic(struct fm_ep *ep, bool cas, const struct fm_region_desc *rd, uint64_t off,
		      uint64_t a, uint64_t b, uint64_t *old)
{
	struct shm_ep *se = to_sep(ep);
	_Atomic uint64_t *w;
	uint8_t *p;
	int ret;

	ret = shm_lookup(se, rd, FM_ACCESS_REMOTE_ATOMIC, off, 8, &p);
	if (ret)
		return ret;
	w = (_Atomic uint64_t *)(void *)p;
	if (cas) {
		uint64_t expect = a;

		atomic_compare_exchange_strong_explicit(w, &expect, b, memory_order_acq_rel,
							memory_order_acquire);
		*old = expect;
	} else {
		*old = atomic_fetch_add_explicit(w, a, memory_order_acq_rel);
	}
	return 0;
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
	.fence = fm__shm_fence,
	.read = shm_read,
	.atomic = shm_atomic,
	.msg_post = fm__shm_msg_post,
	.msg_repost = fm__shm_msg_repost,
	.progress = fm__shm_progress,
};
