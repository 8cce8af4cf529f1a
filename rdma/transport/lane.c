/* lane.c -- lanes: one thread's posting, polling one-sided data path on an
 * endpoint (transport.h, "lanes"): the argument checks in front of the
 * provider's posts, the depth and lane limits, poll and wait, and the two
 * things an endpoint's teardown needs of its lanes -- quiescing them
 * (fm__ep_quiesce) and outliving them (fm__ep_release).
 *
 * Who touches what:
 *
 *   ep->lanes list, nlanes, zombie   ep->lanes_lock (fm_lane_new/delete,
 *                                    quiesce, release: never a hot path)
 *   lane->outstanding, the provider's post state     the lane's thread
 *   lane->busy                       the lane's thread (seq_cst store),
 *                                    read by the quiescing thread
 *
 * Teardown under running lanes (fm_ep_delete, verbs fm_ep_fence):
 *
 *   owning thread                      lane thread (post)
 *   state = CLOSED / qp_dead (seq_cst) busy = 1            (seq_cst)
 *   for each lane: wait busy == 0      if state != UP: busy = 0, -ENOTCONN
 *   destroy QP / unmap the arena       ibv_post_send / the C11 atomic
 *                                      busy = 0            (release)
 *
 * Both sides store, then load the other's variable, all seq_cst: at least
 * one sees the other's store.  Either the post sees the endpoint down and
 * touches nothing, or the teardown sees busy and waits until the post is
 * done (its release pairs with the teardown's load).  The post path pays
 * one locked store to a lane-private cache line, no shared write.
 *
 * Lifetime: a lane may outlive fm_ep_delete.  The provider's ep_delete
 * tears the endpoint down (nothing of a lane can reach the network any
 * more); fm__ep_release then frees the endpoint at once, or -- while user
 * lanes remain -- marks it a zombie that the last fm_lane_delete frees.  A
 * lane deleted with operations still in flight on a live endpoint is
 * RETIRED: kept in the list (its completions land and are dropped) and
 * freed with the endpoint.
 */
#include <errno.h>
#include <sched.h>
#include <stdlib.h>

#include "transport_priv.h"

/* ------------------------------------------------------------- checks */

int fm__read_check(struct fm_ep *ep, const struct fm_region *dst, size_t dst_off,
		   const struct fm_region_desc *src, uint64_t src_off, size_t len)
{
	if (ep == NULL || dst == NULL || src == NULL || len == 0)
		return fm_err(-EINVAL, "READ: %s", len ? "NULL argument" : "len 0");
	if (dst_off > dst->len || len > dst->len - dst_off)
		return fm_err(-ERANGE, "READ of %zu bytes at %zu overruns the %zu-byte local region",
			      len, dst_off, dst->len);
	if (src_off > src->len || len > src->len - src_off)
		return fm_err(-ERANGE,
			      "READ of %zu bytes at %llu overruns the %llu-byte remote region", len,
			      (unsigned long long)src_off, (unsigned long long)src->len);
	if (!(src->flags & FM_ACCESS_REMOTE_READ))
		return fm_err(-EACCES, "remote region (key 0x%x) not granted REMOTE_READ",
			      src->key);
	return 0;
}

int fm__atomic_check(struct fm_ep *ep, const struct fm_region_desc *rd, uint64_t off)
{
	if (ep == NULL || rd == NULL)
		return fm_err(-EINVAL, "atomic: NULL argument");
	if (off % 8 || rd->addr % 8)
		return fm_err(-EINVAL, "atomic at offset %llu: not 8-byte aligned",
			      (unsigned long long)off);
	if (rd->len < 8 || off > rd->len - 8)
		return fm_err(-ERANGE, "atomic at offset %llu outside the %llu-byte region",
			      (unsigned long long)off, (unsigned long long)rd->len);
	if (!(rd->flags & FM_ACCESS_REMOTE_ATOMIC))
		return fm_err(-EACCES, "remote region (key 0x%x) not granted REMOTE_ATOMIC",
			      rd->key);
	if (!(ep->t->caps.flags & FM_CAP_ATOMIC))
		return fm_err(-EOPNOTSUPP, "device %s has no atomics", ep->t->device);
	return 0;
}

/* ------------------------------------------------------ new, delete */

int fm__lane_open(struct fm_ep *ep, uint32_t depth, bool sync, struct fm_lane **out)
{
	struct fm_lane *l = NULL;
	int ret;

	pthread_mutex_lock(&ep->lanes_lock);
	if (!fm__ep_is_up(ep)) {
		ret = fm__ep_not_up(ep);
		goto out;
	}
	if (!sync && ep->nlanes >= ep->t->cfg.max_lanes) {
		ret = fm_err(-ENOSPC, "endpoint has %u lanes already (cfg.max_lanes)", ep->nlanes);
		goto out;
	}
	ret = ep->t->ops->lane_new(ep, depth, &l);
	if (ret)
		goto out;
	l->ep = ep;
	l->depth = depth;
	l->sync = sync;
	atomic_init(&l->busy, 0);
	l->next = ep->lanes;
	ep->lanes = l;
	if (!sync)
		ep->nlanes++;
	*out = l;
out:
	pthread_mutex_unlock(&ep->lanes_lock);
	return ret;
}

int fm_lane_new(struct fm_ep *ep, struct fm_lane **out)
{
	if (ep == NULL || out == NULL)
		return fm_err(-EINVAL, "fm_lane_new: NULL argument");
	*out = NULL;
	return fm__lane_open(ep, ep->t->cfg.lane_depth, false, out);
}

/* unlink l; caller holds ep->lanes_lock */
static void __lane_unlink(struct fm_ep *ep, struct fm_lane *l)
{
	for (struct fm_lane **pp = &ep->lanes; *pp; pp = &(*pp)->next) {
		if (*pp == l) {
			*pp = l->next;
			return;
		}
	}
}

/*
 * Lifetime, in order: the lane still counts in ep->nlanes until we drop it
 * under the lock, so the endpoint cannot be freed under lane_retire; the
 * lane is freed under the lock too (verbs gives its send-queue slots back
 * to the endpoint); after the unlock only the thread that dropped the last
 * lane of a zombie touches the endpoint -- to free it.
 */
void fm_lane_delete(struct fm_lane **lp)
{
	const struct fm_provider_ops *ops;
	struct fm_lane *l, *dead = NULL;
	struct fm_ep *ep;
	bool last;

	if (lp == NULL || *lp == NULL)
		return;
	l = *lp;
	*lp = NULL;
	ep = l->ep;
	ops = ep->t->ops; /* the transport outlives every endpoint */

	if (ops->lane_retire(l)) {
		pthread_mutex_lock(&ep->lanes_lock);
		__lane_unlink(ep, l);
		ops->lane_free(l);
	} else {
		pthread_mutex_lock(&ep->lanes_lock);
		l->retired = true;
	}
	ep->nlanes--;
	last = ep->zombie && ep->nlanes == 0;
	if (last) { /* nobody else can reach the list any more */
		dead = ep->lanes;
		ep->lanes = NULL;
	}
	pthread_mutex_unlock(&ep->lanes_lock);

	if (last) {
		while (dead) {
			struct fm_lane *n = dead->next;

			ops->lane_free(dead);
			dead = n;
		}
		ops->ep_free(ep);
	}
}

/*
 * After the provider tore the endpoint down.  The endpoint's own lane and
 * retired ones are freed first, while the endpoint surely lives (it is not
 * a zombie yet: no lane thread frees it); then it is freed, or made a
 * zombie for the last user lane.
 */
void fm__ep_release(struct fm_ep *ep)
{
	const struct fm_provider_ops *ops = ep->t->ops;
	struct fm_lane *dead = NULL, **pp;
	bool free_now;

	pthread_mutex_lock(&ep->lanes_lock);
	pp = &ep->lanes;
	while (*pp) {
		struct fm_lane *l = *pp;

		if (l->sync || l->retired) {
			*pp = l->next;
			l->next = dead;
			dead = l;
		} else {
			pp = &l->next;
		}
	}
	ep->sync = NULL;
	pthread_mutex_unlock(&ep->lanes_lock);
	while (dead) {
		struct fm_lane *n = dead->next;

		ops->lane_free(dead);
		dead = n;
	}

	pthread_mutex_lock(&ep->lanes_lock);
	free_now = ep->nlanes == 0;
	if (!free_now)
		ep->zombie = true;
	pthread_mutex_unlock(&ep->lanes_lock);
	if (free_now)
		ops->ep_free(ep);
}

void fm__ep_quiesce(struct fm_ep *ep)
{
	pthread_mutex_lock(&ep->lanes_lock);
	for (struct fm_lane *l = ep->lanes; l; l = l->next)
		while (atomic_load_explicit(&l->busy, memory_order_seq_cst))
			sched_yield();
	pthread_mutex_unlock(&ep->lanes_lock);
}

/* ----------------------------------------------------------- post */

/* the state check every post makes before the lane's depth: a closed
 * endpoint says -ENOTCONN, even to a full lane */
static int lane_post_check(struct fm_lane *l)
{
	if (!fm__ep_is_up(l->ep))
		return fm__ep_not_up(l->ep);
	if (l->outstanding >= l->depth)
		return fm_err(-EAGAIN, "lane full: %u operations in flight (poll first)",
			      l->outstanding);
	return 0;
}

int fm_lane_post_read(struct fm_lane *lane, struct fm_region *dst, size_t dst_off,
		      const struct fm_region_desc *src, uint64_t src_off, size_t len, void *ctx)
{
	int ret;

	if (lane == NULL)
		return fm_err(-EINVAL, "fm_lane_post_read: NULL lane");
	ret = fm__read_check(lane->ep, dst, dst_off, src, src_off, len);
	if (ret == 0)
		ret = lane_post_check(lane);
	if (ret == 0)
		ret = lane->ep->t->ops->post_read(lane, (char *)dst->ptr + dst_off, dst, src,
						  src_off, len, ctx);
	if (ret == 0)
		lane->outstanding++;
	return ret;
}

static int lane_post_atomic(struct fm_lane *lane, enum fm_lane_op op,
			    const struct fm_region_desc *rd, uint64_t off, uint64_t a, uint64_t b,
			    void *ctx)
{
	int ret;

	if (lane == NULL)
		return fm_err(-EINVAL, "atomic: NULL lane");
	ret = fm__atomic_check(lane->ep, rd, off);
	if (ret == 0)
		ret = lane_post_check(lane);
	if (ret == 0)
		ret = lane->ep->t->ops->post_atomic(lane, op, rd, off, a, b, ctx);
	if (ret == 0)
		lane->outstanding++;
	return ret;
}

int fm_lane_post_cas(struct fm_lane *lane, const struct fm_region_desc *rd, uint64_t off,
		     uint64_t expect, uint64_t desired, void *ctx)
{
	return lane_post_atomic(lane, FM_LANE_CAS, rd, off, expect, desired, ctx);
}

int fm_lane_post_faa(struct fm_lane *lane, const struct fm_region_desc *rd, uint64_t off,
		     uint64_t add, void *ctx)
{
	return lane_post_atomic(lane, FM_LANE_FAA, rd, off, add, 0, ctx);
}

/* ------------------------------------------------------ poll, wait */

int fm_lane_poll(struct fm_lane *lane, struct fm_completion *out, int n)
{
	int k;

	if (lane == NULL || n < 0 || (out == NULL && n))
		return fm_err(-EINVAL, "fm_lane_poll: NULL argument or n < 0");
	/* nothing in flight: nothing to find -- unless the lane's fd is
	 * watched, whose readiness only a poll takes back (fm_lane_fd): a
	 * drain that routed the last completion leaves the eventfd written and
	 * a CQ event may come for a completion already drained, so skipping
	 * the poll here would leave the fd readable for good and every loop
	 * sleeping on it spinning (the owner's loop did, at 100% of a CPU) */
	if (n == 0 || (lane->outstanding == 0 && !lane->watched))
		return 0;
	k = lane->ep->t->ops->lane_poll(lane, out, n);
	lane->outstanding -= (uint32_t)k;
	return k;
}

int fm_lane_wait(struct fm_lane *lane, struct fm_completion *out, int n, int timeout_ms)
{
	uint64_t deadline;
	bool event;

	if (lane == NULL || n <= 0 || out == NULL)
		return fm_err(-EINVAL, "fm_lane_wait: NULL argument or n <= 0");
	deadline = fm__deadline(timeout_ms);
	event = lane->ep->t->cfg.wait_mode == FM_WAIT_EVENT && lane->ep->t->ops->lane_sleep;
	for (;;) {
		int k = fm_lane_poll(lane, out, n), left;

		if (k)
			return k;
		if (lane->outstanding == 0)
			return 0;
		left = fm__remaining_ms(deadline);
		if (left == 0)
			return fm_err(-ETIMEDOUT, "no completion within %d ms (%u in flight)",
				      timeout_ms, lane->outstanding);
		if (event)
			lane->ep->t->ops->lane_sleep(lane, left < 0 || left > 100 ? 100 : left);
	}
}

int fm_lane_fd(struct fm_lane *lane)
{
	if (lane == NULL)
		return fm_err(-EINVAL, "fm_lane_fd: NULL lane");
	int fd;

	if (lane->ep->t->cfg.wait_mode != FM_WAIT_EVENT || lane->ep->t->ops->lane_fd == NULL)
		return -1;
	fd = lane->ep->t->ops->lane_fd(lane);
	if (fd >= 0)
		lane->watched = true;
	return fd;
}

unsigned fm_lane_depth(const struct fm_lane *lane)
{
	return lane->depth;
}

unsigned fm_lane_outstanding(const struct fm_lane *lane)
{
	return lane->outstanding;
}
