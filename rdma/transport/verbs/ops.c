/* ops.c -- what a connected verbs endpoint does: one-sided READ and atomics
 * (one synchronous operation at a time), SEND/RECV of messages, the grant,
 * the fence.
 *
 * Atomic results: rxe writes them in host byte order (measured; see
 * SOFT-ROCE-FACTS.md), and so do mlx5 devices; we return the scratch word
 * as is.
 */
#include <errno.h>
#include <string.h>

#include <infiniband/verbs.h>
#include <rdma/rdma_cma.h>

#include "verbs_priv.h"

static int v_run_op(struct v_ep *ve, struct ibv_send_wr *wr)
{
	struct ibv_send_wr *bad;
	uint64_t deadline = fm__deadline(ve->ep.t->cfg.op_timeout_ms);
	bool event = ve->ep.t->cfg.wait_mode == FM_WAIT_EVENT;
	int ret;

	ve->op.done = false;
	wr->wr_id = (uint64_t)(uintptr_t)&ve->op;
	wr->send_flags = IBV_SEND_SIGNALED;
	ret = ibv_post_send(ve->id->qp, wr, &bad);
	if (ret)
		return fm_err(-ret, "ibv_post_send: %s", strerror(ret));
	while (!ve->op.done) {
		int left;

		fm__verbs_progress(&ve->ep, 0);
		if (ve->op.done)
			break;
		if (ve->ep.state != FM_EP_UP)
			return ve->ep.err;
		left = fm__remaining_ms(deadline);
		if (left == 0)
			/* the request stays owned by the QP; ve->op lives as
			 * long as the endpoint, so closing is safe */
			return fm__ep_fail(&ve->ep, -ETIMEDOUT, "operation timed out");
		if (event)
			fm__verbs_progress(&ve->ep, left < 0 || left > 100 ? 100 : left);
	}
	if (ve->op.status != IBV_WC_SUCCESS)
		return ve->ep.err ? ve->ep.err : -EIO;
	return 0;
}

int fm__verbs_read(struct fm_ep *ep, void *dst, struct fm_region *dst_r,
		   const struct fm_region_desc *src, uint64_t src_off, size_t len)
{
	struct v_ep *ve = to_vep(ep);
	struct v_region *vr = container_of(dst_r, struct v_region, r);
	struct ibv_sge sge = {.addr = (uint64_t)(uintptr_t)dst, .length = (uint32_t)len,
			      .lkey = vr->mr->lkey};
	struct ibv_send_wr wr = {.sg_list = &sge, .num_sge = 1, .opcode = IBV_WR_RDMA_READ};

	if (len > ve->ep.t->caps.max_region_size || len > UINT32_MAX)
		return fm_err(-ERANGE, "READ of %zu bytes", len);
	wr.wr.rdma.remote_addr = src->addr + src_off;
	wr.wr.rdma.rkey = src->key;
	return v_run_op(ve, &wr);
}

int fm__verbs_atomic(struct fm_ep *ep, bool cas, const struct fm_region_desc *rd, uint64_t off,
		     uint64_t a, uint64_t b, uint64_t *old)
{
	struct v_ep *ve = to_vep(ep);
	struct ibv_sge sge = {.addr = (uint64_t)(uintptr_t)ve->scratch, .length = 8,
			      .lkey = ve->mr->lkey};
	struct ibv_send_wr wr = {.sg_list = &sge, .num_sge = 1};
	int ret;

	wr.opcode = cas ? IBV_WR_ATOMIC_CMP_AND_SWP : IBV_WR_ATOMIC_FETCH_AND_ADD;
	wr.wr.atomic.remote_addr = rd->addr + off;
	wr.wr.atomic.rkey = rd->key;
	wr.wr.atomic.compare_add = a;
	wr.wr.atomic.swap = b;
	ret = v_run_op(ve, &wr);
	if (ret == 0)
		*old = *(volatile uint64_t *)ve->scratch; /* host order, see top */
	return ret;
}

int fm__verbs_msg_post(struct fm_ep *ep, const void *buf, size_t len)
{
	struct v_ep *ve = to_vep(ep);
	struct ibv_send_wr wr = {0}, *bad;
	struct ibv_sge sge;
	uint32_t i, slot;
	int ret;

	if (ve->ntx_free == 0)
		return -EAGAIN;
	if (len > ve->slot_size)
		return fm_err(-EMSGSIZE, "message of %zu bytes for %u-byte slots", len,
			      ve->slot_size);
	i = ve->tx_free[--ve->ntx_free];
	slot = ve->nrx + i;
	memcpy(ve->pool + (size_t)slot * ve->slot_size, buf, len);
	sge.addr = (uint64_t)(uintptr_t)(ve->pool + (size_t)slot * ve->slot_size);
	sge.length = (uint32_t)len;
	sge.lkey = ve->mr->lkey;
	wr.wr_id = (uint64_t)(uintptr_t)&ve->tx_reqs[i];
	wr.sg_list = &sge;
	wr.num_sge = 1;
	wr.opcode = IBV_WR_SEND;
	wr.send_flags = IBV_SEND_SIGNALED;
	ret = ibv_post_send(ve->id->qp, &wr, &bad);
	if (ret) {
		ve->tx_free[ve->ntx_free++] = i;
		return fm__ep_fail(ep, -ret, "ibv_post_send(SEND): %s", strerror(ret));
	}
	return 0;
}

void fm__verbs_msg_repost(struct fm_ep *ep, uint32_t slot)
{
	struct v_ep *ve = to_vep(ep);
	int ret;

	if (ep->state != FM_EP_UP)
		return; /* the QP is going away: nothing to post to */
	ret = fm__verbs_post_recv(ve, slot);
	if (ret)
		fm__ep_fail(ep, ret, "ibv_post_recv: %s", strerror(-ret));
}

int fm__verbs_qp_access(struct v_ep *ve, int access)
{
	struct ibv_qp_attr attr = {.qp_access_flags = (unsigned)access};
	int ret;

	if (ve->id == NULL || !ve->qp_created)
		return -ENOTCONN;
	ret = ibv_modify_qp(ve->id->qp, &attr, IBV_QP_ACCESS_FLAGS);
	return ret ? -ret : 0;
}

/* fm_ep_grant: the least the protocol needs -- clients READ bitmaps and
 * CAS lock words; nothing ever writes our memory remotely */
int fm__verbs_grant(struct fm_ep *ep)
{
	int ret = fm__verbs_qp_access(to_vep(ep), IBV_ACCESS_REMOTE_READ |
					      IBV_ACCESS_REMOTE_ATOMIC);

	if (ret)
		return fm__ep_fail(ep, ret, "grant: ibv_modify_qp(access flags): %s",
				   strerror(-ret));
	return 0;
}

/*
 * fm__verbs_fence -- no incoming RDMA of the peer can execute after this returns:
 *   1. rdma_disconnect (best effort: tells the peer, and moves the QP to
 *      ERROR itself on IB/RoCE);
 *   2. ibv_modify_qp(ERROR): an RC responder in ERROR executes no request;
 *   3. poll the CQ (flushed completions close the endpoint state; the CQ
 *      outlives the QP, so late ones are harmless);
 *   4. rdma_destroy_qp: the QP has no context left to execute in.  It is
 *      the destroy, not the poll, that the guarantee rests on.
 * FM_FENCE_RDMA at once, with or without KILL: a remote process cannot be
 * killed from here (lease.h R4c covers it).  Our regions' rkeys stay valid:
 * they belong to the PD, and the other clients' QPs keep using them.  A peer
 * that reconnects gets a new QP.  Nothing here waits on the network.
 */
int fm__verbs_fence(struct fm_ep *ep, unsigned flags)
{
	struct v_ep *ve = to_vep(ep);
	struct ibv_qp_attr attr = {.qp_state = IBV_QPS_ERR};
	int ret;

	(void)flags;
	if (ve->id == NULL || !ve->qp_created)
		return FM_FENCE_RDMA; /* no QP: nothing can land */
	if (ep->state == FM_EP_UP)
		(void)rdma_disconnect(ve->id);
	ret = ibv_modify_qp(ve->id->qp, &attr, IBV_QP_STATE);
	if (ret)
		return fm_err(-ret, "fence: ibv_modify_qp(ERROR): %s", strerror(ret));
	fm__ep_fail(ep, -ENOTCONN, "fenced: queue pair in ERROR");
	(void)fm__verbs_poll_cq(ve);
	rdma_destroy_qp(ve->id);
	ve->qp_created = false;
	(void)fm__verbs_poll_cq(ve); /* completions the destroy flushed, if any */
	return FM_FENCE_RDMA;
}
