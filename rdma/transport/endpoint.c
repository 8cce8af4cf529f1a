/* endpoint.c -- the endpoint's common state (struct fm_ep, embedded by every
 * provider): setup after the handshake, failure with a reason (from any
 * thread: lanes fail their endpoint too), grant, fence, delete, state
 * queries; and the blocking one-sided calls (READ, CAS, FAA), thin wrappers
 * that post on the endpoint's own lane and wait while progressing it. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "transport_priv.h"

void fm__ep_set_peer(struct fm_ep *ep, const struct fm_conn_priv *peer)
{
	ep->peer_msg_size = peer->msg_size;
	ep->tx_credits = peer->credits;
	ep->tx_ctrl_credits = peer->ctrl_credits;
	ep->hello_len = peer->hello_len;
	memcpy(ep->hello, peer->hello, peer->hello_len);
}

int fm__ep_init(struct fm_ep *ep, struct fm_transport *t, const struct fm_conn_priv *peer,
		uint32_t rx_data, uint32_t rx_ctrl)
{
	ep->t = t;
	ep->state = FM_EP_CONNECTING;
	ep->reason[0] = '\0';
	if (!ep->locks_init) {
		pthread_mutex_init(&ep->fail_lock, NULL);
		pthread_mutex_init(&ep->lanes_lock, NULL);
		ep->locks_init = true;
	}
	ep->msg_size = t->cfg.msg_size;
	ep->rx_data = rx_data;
	ep->rx_ctrl = rx_ctrl;
	if (peer)
		fm__ep_set_peer(ep, peer);
	ep->credit_threshold = rx_data / 2 ? rx_data / 2 : 1;
	ep->rxq_cap = rx_data + rx_ctrl;
	ep->rxq = calloc(ep->rxq_cap ? ep->rxq_cap : 1, sizeof(*ep->rxq));
	ep->tx_tmp = malloc(FM_TMSG_HDR_SIZE + ep->msg_size);
	if (ep->rxq == NULL || ep->tx_tmp == NULL) {
		free(ep->rxq);
		free(ep->tx_tmp);
		ep->rxq = NULL;
		ep->tx_tmp = NULL;
		return fm_err(-ENOMEM, "endpoint queues");
	}
	return 0;
}

void fm__ep_fini(struct fm_ep *ep)
{
	free(ep->rxq);
	free(ep->tx_tmp);
	ep->rxq = NULL;
	ep->tx_tmp = NULL;
	if (ep->locks_init) {
		pthread_mutex_destroy(&ep->fail_lock);
		pthread_mutex_destroy(&ep->lanes_lock);
		ep->locks_init = false;
	}
}

/* err and reason are written before the seq_cst store of CLOSED: a thread
 * that loads CLOSED (acquire or stronger) reads them complete */
int fm__ep_fail(struct fm_ep *ep, int err, const char *fmt, ...)
{
	va_list ap;

	if (!ep->locks_init) { /* setup, before any other thread knows it */
		ep->state = FM_EP_CLOSED;
		ep->err = err;
		return err;
	}
	pthread_mutex_lock(&ep->fail_lock);
	if (ep->state != FM_EP_CLOSED) {
		va_start(ap, fmt);
		vsnprintf(ep->reason, sizeof(ep->reason), fmt, ap);
		va_end(ap);
		ep->err = err;
		atomic_store_explicit(&ep->state, FM_EP_CLOSED, memory_order_seq_cst);
	}
	pthread_mutex_unlock(&ep->fail_lock);
	return err;
}

/*
 * Delete: UP -> CLOSING (a CAS: a lane may be failing it at this moment),
 * the provider tears the endpoint down (quiescing the lanes first, so no
 * lane is inside the QP or the mapping it frees), then fm__ep_release frees
 * it -- or leaves it to the last lane.
 */
void fm_ep_delete(struct fm_ep **epp)
{
	enum fm_ep_state up = FM_EP_UP;
	struct fm_ep *ep;

	if (epp == NULL || *epp == NULL)
		return;
	ep = *epp;
	atomic_compare_exchange_strong(&ep->state, &up, FM_EP_CLOSING);
	ep->t->ops->ep_delete(ep);
	fm__ep_release(ep);
	*epp = NULL;
}

int fm_ep_grant(struct fm_ep *ep)
{
	if (ep == NULL)
		return fm_err(-EINVAL, "fm_ep_grant: NULL endpoint");
	if (ep->loopback)
		return 0; /* our own memory: always reachable */
	if (!ep->passive)
		return fm_err(-EINVAL, "fm_ep_grant: only the accepting side grants access");
	if (ep->granted)
		return 0;
	if (ep->state != FM_EP_UP)
		return fm__ep_not_up(ep);
	if (ep->t->ops->grant(ep))
		return fm__ep_broke(ep);
	ep->granted = true;
	return 0;
}

/*
 * The level a fence reached is kept in the endpoint: asking again for what
 * is reached answers at once; only KILL on a peer fenced at RDMA goes back
 * to the provider (shm may still kill it).  The endpoint is CLOSED from the
 * first call: a peer being fenced gets no service, whatever it sends.
 */
int fm_ep_fence(struct fm_ep *ep, unsigned flags)
{
	int ret;

	if (ep == NULL)
		return fm_err(-EINVAL, "fm_ep_fence: NULL endpoint");
	if (flags & ~FM_FENCE_F_KILL)
		return fm_err(-EINVAL, "fm_ep_fence: unknown flags 0x%x", flags);
	if (ep->loopback)
		return fm_err(-EINVAL, "fm_ep_fence: the loopback endpoint has no peer");
	if (ep->fence_level == FM_FENCE_DEAD ||
	    (ep->fence_level == FM_FENCE_RDMA && !(flags & FM_FENCE_F_KILL)))
		return ep->fence_level;
	ret = ep->t->ops->fence(ep, flags);
	if (ret == FM_FENCE_RDMA || ret == FM_FENCE_DEAD) {
		if (ret > ep->fence_level)
			ep->fence_level = ret;
		ret = ep->fence_level;
	}
	/* a fence is final: whatever it returned, no operation may use the
	 * endpoint any more (the provider may already have said why) */
	if (ep->state != FM_EP_CLOSED && ret != -EINVAL && ret != -EOPNOTSUPP)
		fm__ep_fail(ep, -ENOTCONN, "fence begun by this side");
	return ret;
}

int fm_ep_fence_fd(const struct fm_ep *ep)
{
	if (ep == NULL || ep->loopback || ep->t->ops->fence_fd == NULL)
		return -1;
	return ep->t->ops->fence_fd(ep);
}

int fm_ep_error(const struct fm_ep *ep)
{
	return atomic_load_explicit(&ep->state, memory_order_acquire) == FM_EP_CLOSED ? ep->err
										      : 0;
}

enum fm_ep_state fm_ep_state(const struct fm_ep *ep, const char **reason)
{
	enum fm_ep_state s = atomic_load_explicit(&ep->state, memory_order_acquire);

	/* the reason is final only once CLOSED (fm__ep_fail) */
	if (reason)
		*reason = s == FM_EP_CLOSED ? ep->reason : "";
	return s;
}

const char *fm_ep_state_name(enum fm_ep_state s)
{
	switch (s) {
	case FM_EP_CONNECTING:
		return "CONNECTING";
	case FM_EP_UP:
		return "UP";
	case FM_EP_CLOSING:
		return "CLOSING";
	case FM_EP_CLOSED:
		return "CLOSED";
	}
	return "?";
}

size_t fm_ep_hello(const struct fm_ep *ep, void *buf, size_t cap)
{
	if (buf && cap)
		memcpy(buf, ep->hello, cap < ep->hello_len ? cap : ep->hello_len);
	return ep->hello_len;
}

int fm_ep_fd(const struct fm_ep *ep)
{
	return ep->event_fd;
}

int fm__ep_not_up(const struct fm_ep *ep)
{
	const char *reason;
	enum fm_ep_state s = fm_ep_state(ep, &reason);

	return fm_err(-ENOTCONN, "endpoint %s: %s", fm_ep_state_name(s),
		      reason[0] ? reason : "not connected");
}

int fm__ep_broke(const struct fm_ep *ep)
{
	const char *reason;
	enum fm_ep_state s = fm_ep_state(ep, &reason);
	int err = s == FM_EP_CLOSED ? ep->err : 0;

	return fm_err(err ? err : -ECONNRESET, "endpoint closed: %s", reason);
}

/* ----------------------------------------------------------- one-sided */

/*
 * The blocking calls: post on the endpoint's own lane (depth 1, made at the
 * first call, not counted against max_lanes), then poll it -- first, since
 * an shm operation is complete when its post returns -- and progress the
 * endpoint while waiting, as the owning thread must (messages, connection
 * events, and on verbs the shared CQ).  Past op_timeout_ms the endpoint
 * closes (-ETIMEDOUT): the operation stays in the lane and completes (or is
 * discarded) with the endpoint's teardown.
 */
static int sync_lane(struct fm_ep *ep, struct fm_lane **out)
{
	int ret;

	if (ep->sync == NULL) {
		ret = fm__lane_open(ep, 1, true, &ep->sync);
		if (ret)
			return ret;
	}
	*out = ep->sync;
	return 0;
}

static int sync_wait(struct fm_ep *ep, struct fm_lane *l, struct fm_completion *c)
{
	const struct fm_provider_ops *ops = ep->t->ops;
	bool event = ep->t->cfg.wait_mode == FM_WAIT_EVENT;
	uint64_t deadline;

	/* shm: complete already; no clock read on that path */
	if (fm_lane_poll(l, c, 1) == 1)
		goto done;
	deadline = fm__deadline(ep->t->cfg.op_timeout_ms);
	for (;;) {
		int left;

		if (fm__ep_is_up(ep))
			(void)ops->progress(ep, 0);
		else if (ops->reap)
			ops->reap(ep);
		if (fm_lane_poll(l, c, 1) == 1)
			break;
		left = fm__remaining_ms(deadline);
		if (left == 0)
			return fm__ep_fail(ep, -ETIMEDOUT, "operation timed out");
		if (!event)
			continue;
		if (fm__ep_is_up(ep))
			(void)ops->progress(ep, left < 0 || left > 100 ? 100 : left);
		else if (ops->lane_sleep)
			ops->lane_sleep(l, left < 0 || left > 100 ? 100 : left);
	}
done:
	if (c->status == 0)
		return 0;
	if (!fm__ep_is_up(ep))
		return fm__ep_broke(ep);
	return fm_err(c->status, "one-sided operation failed (%d)", c->status);
}

int fm_ep_read(struct fm_ep *ep, struct fm_region *dst, size_t dst_off,
	       const struct fm_region_desc *src, uint64_t src_off, size_t len)
{
	struct fm_completion c;
	struct fm_lane *l;
	int ret;

	ret = fm__read_check(ep, dst, dst_off, src, src_off, len);
	if (ret == 0 && !fm__ep_is_up(ep))
		ret = fm__ep_not_up(ep);
	if (ret == 0)
		ret = sync_lane(ep, &l);
	if (ret == 0)
		ret = fm_lane_post_read(l, dst, dst_off, src, src_off, len, NULL);
	return ret ? ret : sync_wait(ep, l, &c);
}

static int sync_atomic(struct fm_ep *ep, enum fm_lane_op op, const struct fm_region_desc *rd,
		       uint64_t off, uint64_t a, uint64_t b, uint64_t *old)
{
	struct fm_completion c;
	struct fm_lane *l;
	int ret;

	ret = fm__atomic_check(ep, rd, off);
	if (ret == 0 && !fm__ep_is_up(ep))
		ret = fm__ep_not_up(ep);
	if (ret == 0)
		ret = sync_lane(ep, &l);
	if (ret == 0)
		ret = op == FM_LANE_CAS ? fm_lane_post_cas(l, rd, off, a, b, NULL)
					: fm_lane_post_faa(l, rd, off, a, NULL);
	if (ret == 0)
		ret = sync_wait(ep, l, &c);
	if (ret == 0 && old)
		*old = c.old;
	return ret;
}

int fm_ep_cas(struct fm_ep *ep, const struct fm_region_desc *rd, uint64_t off, uint64_t expect,
	      uint64_t desired, uint64_t *old)
{
	return sync_atomic(ep, FM_LANE_CAS, rd, off, expect, desired, old);
}

int fm_ep_faa(struct fm_ep *ep, const struct fm_region_desc *rd, uint64_t off, uint64_t add,
	      uint64_t *old)
{
	return sync_atomic(ep, FM_LANE_FAA, rd, off, add, 0, old);
}
