/* msg.c -- two-sided messages: the credit protocol, the receive queue of
 * data messages, fm_ep_send / fm_ep_recv and their blocking waits.
 *
 * Credit protocol (see also transport.h):
 *   A side posts R data + C control receive buffers.  The peer starts with
 *   tx_credits = R and tx_ctrl_credits = C.  Sending a DATA message costs one
 *   data credit, a CREDIT message one control credit.  On the receiving side
 *   a CREDIT message is consumed by the library at once (ret_ctrl_credits++),
 *   a DATA message when fm_ep_recv takes it (ret_credits++).  Every outgoing
 *   header carries and zeroes both ret_* counters.  A CREDIT message goes out
 *   when ret_credits >= credit_threshold (R/2) and a control credit is left.
 *
 *   Why no deadlock: returning data credits needs only a control credit.  A
 *   side spends control credits only after it consumed >= R/2 of the peer's
 *   data, so at most ceil(R / (R/2)) = 2 CREDIT messages follow the peer's
 *   last data message, and every message the peer sends afterwards carries
 *   the control credits back; C = 4 > 2 leaves room.
 *   Conservation (checked in tests): tx_credits + unconsumed data at the peer
 *   + peer's ret_credits + data in flight == R.
 */
#include <errno.h>
#include <string.h>

#include "transport_priv.h"

/* progress an UP endpoint; on one that is not, take over what another
 * thread already took off a shared CQ (verbs: lanes drain it too), so
 * queued messages are still delivered first */
static void ep_progress0(struct fm_ep *ep)
{
	if (ep->state == FM_EP_UP)
		(void)ep->t->ops->progress(ep, 0);
	else if (ep->t->ops->reap)
		ep->t->ops->reap(ep);
}

size_t fm_ep_max_msg(const struct fm_ep *ep)
{
	return ep->msg_size < ep->peer_msg_size ? ep->msg_size : ep->peer_msg_size;
}

unsigned fm_ep_credits(const struct fm_ep *ep)
{
	return ep->tx_credits;
}

/* post header+payload of `type`, taking the credits to return along.
 * The caller checked the credit.  -EAGAIN if the provider has no free
 * send buffer right now. */
static int ep_post(struct fm_ep *ep, uint8_t type, const void *buf, size_t len)
{
	struct fm_tmsg_hdr h = {
		.type = type,
		.len = (uint32_t)len,
		.credits = (uint16_t)ep->ret_credits,
		.ctrl_credits = (uint16_t)ep->ret_ctrl_credits,
	};
	int ret;

	fm__tmsg_hdr_encode(&h, ep->tx_tmp);
	if (len)
		memcpy(ep->tx_tmp + FM_TMSG_HDR_SIZE, buf, len);
	ret = ep->t->ops->msg_post(ep, ep->tx_tmp, FM_TMSG_HDR_SIZE + len);
	if (ret)
		return ret;
	ep->ret_credits = 0;
	ep->ret_ctrl_credits = 0;
	if (type == FM_TMSG_DATA)
		ep->tx_credits--;
	else
		ep->tx_ctrl_credits--;
	return 0;
}

/* send a CREDIT message if enough credits wait to go back.  Best effort:
 * no control credit or no send buffer = try again at the next call. */
static void ep_maybe_return_credits(struct fm_ep *ep)
{
	if (ep->state != FM_EP_UP || ep->loopback)
		return;
	if (ep->ret_credits < ep->credit_threshold || ep->tx_ctrl_credits == 0)
		return;
	(void)ep_post(ep, FM_TMSG_CREDIT, NULL, 0);
}

void fm__ep_rx(struct fm_ep *ep, uint32_t slot, const uint8_t *buf, size_t len)
{
	struct fm_tmsg_hdr h;
	int ret = fm__tmsg_hdr_decode(buf, len, &h);

	if (ret) {
		ep->t->ops->msg_repost(ep, slot);
		fm__ep_fail(ep, -EPROTO, "bad message from peer: %s", fm_errormsg());
		return;
	}
	ep->tx_credits += h.credits;
	ep->tx_ctrl_credits += h.ctrl_credits;
	if (h.type == FM_TMSG_CREDIT) {
		ep->t->ops->msg_repost(ep, slot);
		ep->ret_ctrl_credits++;
		return;
	}
	if (h.len > ep->msg_size || ep->rxq_count == ep->rxq_cap) {
		ep->t->ops->msg_repost(ep, slot);
		fm__ep_fail(ep, -EPROTO, "peer overran its credits (%u queued, %u-byte message)",
			    ep->rxq_count, h.len);
		return;
	}
	ep->rxq[(ep->rxq_head + ep->rxq_count) % ep->rxq_cap] = (struct fm_rx_entry){
		.slot = slot, .len = h.len, .payload = buf + FM_TMSG_HDR_SIZE};
	ep->rxq_count++;
}

int fm_ep_progress(struct fm_ep *ep)
{
	ep_progress0(ep);
	ep_maybe_return_credits(ep);
	if (ep->rxq_count)
		return (int)ep->rxq_count;
	if (ep->state == FM_EP_CLOSED)
		return fm__ep_not_up(ep);
	return 0;
}

/*
 * ep_wait -- progress until cond(ep) holds or the endpoint leaves UP or the
 * deadline passes.  Busy mode spins; event mode sleeps in the provider.
 */
static int ep_wait(struct fm_ep *ep, bool (*cond)(const struct fm_ep *), uint64_t deadline)
{
	for (;;) {
		int left, ret;

		ep_progress0(ep);
		ep_maybe_return_credits(ep);
		if (cond(ep))
			return 0;
		if (ep->state != FM_EP_UP)
			return fm__ep_broke(ep);
		left = fm__remaining_ms(deadline);
		if (left == 0)
			return fm_err(-ETIMEDOUT, "waited %d ms", ep->t->cfg.op_timeout_ms);
		if (ep->t->cfg.wait_mode == FM_WAIT_EVENT) {
			ret = ep->t->ops->progress(ep, left < 0 || left > 100 ? 100 : left);
			if (ret && ret != -EAGAIN && ret != -EINTR && ep->state == FM_EP_UP)
				return ret;
		}
	}
}

static bool can_send(const struct fm_ep *ep)
{
	return ep->tx_credits > 0;
}

static bool can_recv(const struct fm_ep *ep)
{
	return ep->rxq_count > 0;
}

int fm_ep_send(struct fm_ep *ep, const void *buf, size_t len, unsigned flags)
{
	uint64_t deadline;
	int ret;

	if (ep == NULL || (buf == NULL && len))
		return fm_err(-EINVAL, "fm_ep_send: NULL argument");
	if (ep->loopback)
		return fm_err(-EOPNOTSUPP, "loopback endpoints are one-sided only");
	if (len > fm_ep_max_msg(ep))
		return fm_err(-EMSGSIZE, "message of %zu bytes, max %zu", len, fm_ep_max_msg(ep));
	if (ep->state != FM_EP_UP)
		return fm__ep_not_up(ep);
	deadline = fm__deadline(ep->t->cfg.op_timeout_ms);
	for (;;) {
		if (ep->tx_credits == 0) {
			(void)ep->t->ops->progress(ep, 0);
			if (ep->state != FM_EP_UP)
				return fm__ep_broke(ep);
			if (ep->tx_credits == 0 && (flags & FM_NONBLOCK))
				return fm_err(-EAGAIN, "no send credit (peer has not consumed)");
			ret = ep_wait(ep, can_send, deadline);
			if (ret)
				return ret;
		}
		ret = ep_post(ep, FM_TMSG_DATA, buf, len);
		if (ret != -EAGAIN)
			break;
		/* credit but no free send buffer: completions pending */
		(void)ep->t->ops->progress(ep, 0);
		if (ep->state != FM_EP_UP)
			return fm__ep_broke(ep);
		if (fm__remaining_ms(deadline) == 0)
			return fm_err(-ETIMEDOUT, "no free send buffer");
	}
	if (ret && ep->state == FM_EP_CLOSED)
		return fm__ep_broke(ep);
	return ret;
}

int fm_ep_recv_peek(struct fm_ep *ep)
{
	if (ep->loopback)
		return fm_err(-EOPNOTSUPP, "loopback endpoints are one-sided only");
	ep_progress0(ep);
	if (ep->rxq_count)
		return (int)ep->rxq[ep->rxq_head].len;
	if (ep->state != FM_EP_UP)
		return fm__ep_not_up(ep);
	return fm_err(-EAGAIN, "no message");
}

int fm_ep_recv(struct fm_ep *ep, void *buf, size_t cap, unsigned flags)
{
	struct fm_rx_entry *e;
	int ret;

	if (ep == NULL || (buf == NULL && cap))
		return fm_err(-EINVAL, "fm_ep_recv: NULL argument");
	if (ep->loopback)
		return fm_err(-EOPNOTSUPP, "loopback endpoints are one-sided only");
	ep_progress0(ep);
	if (ep->rxq_count == 0) {
		if (ep->state != FM_EP_UP)
			return fm__ep_not_up(ep);
		if (flags & FM_NONBLOCK)
			return fm_err(-EAGAIN, "no message");
		ret = ep_wait(ep, can_recv, fm__deadline(ep->t->cfg.op_timeout_ms));
		if (ret && ep->rxq_count == 0)
			return ret;
	}
	e = &ep->rxq[ep->rxq_head];
	if (e->len > cap)
		return fm_err(-EMSGSIZE, "message of %u bytes, buffer of %zu", e->len, cap);
	memcpy(buf, e->payload, e->len);
	ret = (int)e->len;
	ep->t->ops->msg_repost(ep, e->slot);
	ep->rxq_head = (ep->rxq_head + 1) % ep->rxq_cap;
	ep->rxq_count--;
	ep->ret_credits++;
	ep_maybe_return_credits(ep);
	return ret;
}
