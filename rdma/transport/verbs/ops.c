/* ops.c -- what a connected verbs endpoint does besides one-sided
 * operations (lane.c): SEND/RECV of messages, the grant, the fence.  All of
 * it on the owning thread.
 */
#include <errno.h>
#include <string.h>

#include <infiniband/verbs.h>
#include <rdma/rdma_cma.h>

#include "verbs_priv.h"

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
	ret = ibv_post_send(ve->qp, &wr, &bad);
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
	ret = ibv_modify_qp(ve->qp, &attr, IBV_QP_ACCESS_FLAGS);
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
 * fm__verbs_fence -- no incoming RDMA of the peer can execute after this
 * returns, and no operation of this side's lanes either:
 *   1. rdma_disconnect (best effort: tells the peer, and moves the QP to
 *      ERROR itself on IB/RoCE);
 *   2. ibv_modify_qp(ERROR): an RC responder in ERROR executes no request;
 *   3. the endpoint CLOSED: lanes' posts fail from here on;
 *   4. fm__verbs_qp_teardown: quiesce the lanes (wait for posts in
 *      progress, never for the network), drain the CQ (flushed
 *      completions reach their lanes), rdma_destroy_qp (the QP has no
 *      context left to execute in: it is the destroy, not the poll, that
 *      the guarantee rests on), drain again; what is still in flight
 *      completes on its lane with an error.
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
	ret = ibv_modify_qp(ve->qp, &attr, IBV_QP_STATE);
	if (ret)
		return fm_err(-ret, "fence: ibv_modify_qp(ERROR): %s", strerror(ret));
	atomic_store(&ve->qp_err, true);
	fm__ep_fail(ep, -ENOTCONN, "fenced: queue pair in ERROR");
	fm__verbs_qp_teardown(ve);
	return FM_FENCE_RDMA;
}
