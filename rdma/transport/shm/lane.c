/* lane.c -- the shm provider's lanes: one-sided operations executed by the
 * posting thread at post time, completions queued on its lane.
 *
 * Nothing waits on shm: an operation is a C11 atomic (CAS =
 * atomic_compare_exchange_strong, FAA = atomic_fetch_add, both acq_rel) or
 * a READ (one memory_order_acquire load per aligned 8-byte word, bytes at
 * the unaligned ends) on the owner's arena as this process maps it.  So a
 * post does the operation and queues its completion on the lane's own ring;
 * poll copies completions out.  The ring belongs to the lane's thread: no
 * atomics, no lock.  A post cannot find the ring full: lane.c refuses a post
 * when `outstanding` (posted, not yet polled) reached the depth, and the
 * ring holds exactly `depth`.
 *
 * Shared with other threads, and how:
 *   se->peer_map   the mapping; loaded with acquire (a grant may publish it
 *                  at any time, access.c); unmapped only by the endpoint's
 *                  teardown, which first quiesces the lanes: every post runs
 *                  between fm__lane_enter and fm__lane_leave (lane.c has the
 *                  Dekker pair), so the mapping cannot go away under it.
 *   the region table   read as a seqlock (access.c); the lane caches the
 *                  last index it used (the endpoint no longer does).
 *   the endpoint's state   fm__ep_fail from here on a remote access error
 *                  (the completion then carries -EACCES).
 * Cost of a post: two lane-private stores, one seq_cst load of the state,
 * the lookup, the operation, one completion copy.  No syscall.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "shm_priv.h"

static struct shm_lane *to_sl(struct fm_lane *l)
{
	return container_of(l, struct shm_lane, l);
}

int fm__shm_lane_new(struct fm_ep *ep, uint32_t depth, struct fm_lane **out)
{
	struct shm_lane *sl = calloc(1, sizeof(*sl));

	(void)ep;
	if (sl == NULL || (sl->cq = calloc(depth, sizeof(*sl->cq))) == NULL) {
		free(sl);
		return fm_err(-ENOMEM, "lane of %u completions", depth);
	}
	sl->cache_idx = -1;
	*out = &sl->l;
	return 0;
}

/* nothing of a lane is ever referenced by anyone but its thread */
bool fm__shm_lane_retire(struct fm_lane *l)
{
	(void)l;
	return true;
}

void fm__shm_lane_free(struct fm_lane *l)
{
	struct shm_lane *sl = to_sl(l);

	free(sl->cq);
	free(sl);
}

static void lane_complete(struct shm_lane *sl, void *ctx, enum fm_lane_op op, int status,
			  uint64_t old)
{
	struct fm_completion *c = &sl->cq[(sl->head + sl->count) % sl->l.depth];

	*c = (struct fm_completion){.ctx = ctx, .status = status, .op = op, .old = old};
	sl->count++;
}

int fm__shm_post_read(struct fm_lane *l, void *dst, struct fm_region *dst_r,
		      const struct fm_region_desc *src, uint64_t src_off, size_t len, void *ctx)
{
	struct shm_lane *sl = to_sl(l);
	struct shm_ep *se = to_sep(l->ep);
	uint8_t *s, *d = dst;
	size_t head;
	int status;

	(void)dst_r;
	if (!fm__lane_enter(l)) {
		fm__lane_leave(l);
		return fm__ep_not_up(l->ep);
	}
	status = fm__shm_lookup(se, atomic_load_explicit(&se->peer_map, memory_order_acquire),
				&sl->cache_idx, src, FM_ACCESS_REMOTE_READ, src_off, len, &s);
	if (status == 0) {
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
	}
	fm__lane_leave(l);
	lane_complete(sl, ctx, FM_LANE_READ, status, 0);
	return 0;
}

int fm__shm_post_atomic(struct fm_lane *l, enum fm_lane_op op, const struct fm_region_desc *rd,
			uint64_t off, uint64_t a, uint64_t b, void *ctx)
{
	struct shm_lane *sl = to_sl(l);
	struct shm_ep *se = to_sep(l->ep);
	uint64_t old = 0;
	uint8_t *p;
	int status;

	if (!fm__lane_enter(l)) {
		fm__lane_leave(l);
		return fm__ep_not_up(l->ep);
	}
	status = fm__shm_lookup(se, atomic_load_explicit(&se->peer_map, memory_order_acquire),
				&sl->cache_idx, rd, FM_ACCESS_REMOTE_ATOMIC, off, 8, &p);
	if (status == 0) {
		_Atomic uint64_t *w = (_Atomic uint64_t *)(void *)p;

		if (op == FM_LANE_CAS) {
			old = a;
			atomic_compare_exchange_strong_explicit(w, &old, b, memory_order_acq_rel,
								memory_order_acquire);
		} else {
			old = atomic_fetch_add_explicit(w, a, memory_order_acq_rel);
		}
	}
	fm__lane_leave(l);
	lane_complete(sl, ctx, op, status, old);
	return 0;
}

int fm__shm_lane_poll(struct fm_lane *l, struct fm_completion *out, int n)
{
	struct shm_lane *sl = to_sl(l);
	int k = 0;

	while (k < n && sl->count) {
		out[k++] = sl->cq[sl->head];
		sl->head = (sl->head + 1) % l->depth;
		sl->count--;
	}
	return k;
}
