/* endpoint.c -- the endpoint's common state (struct fm_ep, embedded by every
 * provider): setup after the handshake, failure with a reason, grant,
 * fence, delete, state queries; and the argument and descriptor checks in
 * front of the provider's one-sided operations (READ, CAS, FAA). */
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
}

int fm__ep_fail(struct fm_ep *ep, int err, const char *fmt, ...)
{
	va_list ap;

	if (ep->state == FM_EP_CLOSED)
		return err;
	va_start(ap, fmt);
	vsnprintf(ep->reason, sizeof(ep->reason), fmt, ap);
	va_end(ap);
	ep->state = FM_EP_CLOSED;
	ep->err = err;
	return err;
}

void fm_ep_delete(struct fm_ep **epp)
{
	struct fm_ep *ep;

	if (epp == NULL || *epp == NULL)
		return;
	ep = *epp;
	if (ep->state == FM_EP_UP)
		ep->state = FM_EP_CLOSING;
	ep->t->ops->ep_delete(ep);
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
	return ep->state == FM_EP_UP ? 0 : ep->err;
}

enum fm_ep_state fm_ep_state(const struct fm_ep *ep, const char **reason)
{
	if (reason)
		*reason = ep->reason;
	return ep->state;
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
	return fm_err(-ENOTCONN, "endpoint %s: %s", fm_ep_state_name(ep->state),
		      ep->reason[0] ? ep->reason : "not connected");
}

int fm__ep_broke(const struct fm_ep *ep)
{
	return fm_err(ep->err ? ep->err : -ECONNRESET, "endpoint closed: %s", ep->reason);
}

/* ----------------------------------------------------------- one-sided */

int fm_ep_read(struct fm_ep *ep, struct fm_region *dst, size_t dst_off,
	       const struct fm_region_desc *src, uint64_t src_off, size_t len)
{
	int ret;

	if (ep == NULL || dst == NULL || src == NULL || len == 0)
		return fm_err(-EINVAL, "fm_ep_read: %s", len ? "NULL argument" : "len 0");
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
	if (ep->state != FM_EP_UP)
		return fm__ep_not_up(ep);
	ret = ep->t->ops->read(ep, (char *)dst->ptr + dst_off, dst, src, src_off, len);
	if (ret && ep->state == FM_EP_CLOSED)
		return fm__ep_broke(ep);
	return ret;
}

static int atomic_check(struct fm_ep *ep, const struct fm_region_desc *rd, uint64_t off)
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
	if (ep->state != FM_EP_UP)
		return fm__ep_not_up(ep);
	return 0;
}

int fm_ep_cas(struct fm_ep *ep, const struct fm_region_desc *rd, uint64_t off, uint64_t expect,
	      uint64_t desired, uint64_t *old)
{
	uint64_t o;
	int ret = atomic_check(ep, rd, off);

	if (ret)
		return ret;
	ret = ep->t->ops->atomic(ep, true, rd, off, expect, desired, &o);
	if (ret)
		return ep->state == FM_EP_CLOSED ? fm__ep_broke(ep) : ret;
	if (old)
		*old = o;
	return 0;
}

int fm_ep_faa(struct fm_ep *ep, const struct fm_region_desc *rd, uint64_t off, uint64_t add,
	      uint64_t *old)
{
	uint64_t o;
	int ret = atomic_check(ep, rd, off);

	if (ret)
		return ret;
	ret = ep->t->ops->atomic(ep, false, rd, off, add, 0, &o);
	if (ret)
		return ep->state == FM_EP_CLOSED ? fm__ep_broke(ep) : ret;
	if (old)
		*old = o;
	return 0;
}
