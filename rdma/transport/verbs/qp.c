/* qp.c -- a verbs endpoint's resources and its progress: RC QP, one CQ and
 * one completion channel per endpoint; the CQ poller; teardown.
 *
 * Per endpoint:
 *   pool   one LOCAL_WRITE MR: nrx receive slots, ntx send slots (each
 *          16-byte header + msg_size) and an 8-byte scratch word that
 *          receives atomic results.  Receives are pre-posted before
 *          rdma_connect/rdma_accept and re-posted when a slot is handed
 *          back (control messages at once, data when fm_ep_recv took it).
 *   reqs   every work request's wr_id is a `struct vreq *`: rx_reqs[slot],
 *          tx_reqs[slot] or the single synchronous one-sided `op`.
 *   poller drains the CQ in batches of 16, recovers the vreq from wr_id,
 *          checks status BEFORE opcode: any error moves the endpoint to
 *          CLOSED with a reason; IBV_WC_WR_FLUSH_ERR means teardown (the QP
 *          is in error because of an earlier failure or a disconnect).
 *   linger fm_ep_delete waits (bounded) for the send completions of what
 *          was sent before it, then disconnects (v_linger).
 *   events a per-endpoint rdma_cm event channel (the accepted id is migrated
 *          to it) and a completion channel, both non-blocking, both in the
 *          endpoint's epoll fd (fm_ep_fd).  Event mode: ack the CQ events,
 *          ibv_req_notify_cq, THEN poll, so no completion is missed.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include <infiniband/verbs.h>
#include <rdma/rdma_cma.h>

#include "verbs_priv.h"

#define V_POLL_BATCH 16
#define V_CM_CHECK_EVERY 256 /* busy mode: look at the CM channel this often */

int fm__verbs_set_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);

	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
		return -errno;
	return 0;
}

/* ------------------------------------------------------------ endpoints */

void fm__verbs_ep_free(struct v_ep *ve)
{
	if (ve->loop_peer) {
		struct v_ep *p = ve->loop_peer;

		ve->loop_peer = NULL;
		if (p->ep.state == FM_EP_UP && p->id)
			rdma_disconnect(p->id);
		fm__verbs_ep_free(p);
	}
	if (ve->id && ve->qp_created)
		rdma_destroy_qp(ve->id);
	if (ve->cq) {
		if (ve->cq_unacked)
			ibv_ack_cq_events(ve->cq, ve->cq_unacked);
		ibv_destroy_cq(ve->cq);
	}
	if (ve->cc)
		ibv_destroy_comp_channel(ve->cc);
	if (ve->mr)
		ibv_dereg_mr(ve->mr);
	free(ve->pool);
	free(ve->rx_reqs);
	free(ve->tx_reqs);
	free(ve->tx_free);
	if (ve->id)
		rdma_destroy_id(ve->id);
	if (ve->ch)
		rdma_destroy_event_channel(ve->ch);
	if (ve->ep.event_fd >= 0)
		close(ve->ep.event_fd);
	fm__ep_fini(&ve->ep);
	free(ve);
}

struct v_ep *fm__verbs_ep_alloc(void)
{
	struct v_ep *ve = calloc(1, sizeof(*ve));

	if (ve)
		ve->ep.event_fd = -1;
	return ve;
}

int fm__verbs_post_recv(struct v_ep *ve, uint32_t slot)
{
	struct ibv_sge sge = {
		.addr = (uint64_t)(uintptr_t)(ve->pool + (size_t)slot * ve->slot_size),
		.length = ve->slot_size,
		.lkey = ve->mr->lkey,
	};
	struct ibv_recv_wr wr = {.wr_id = (uint64_t)(uintptr_t)&ve->rx_reqs[slot],
				 .sg_list = &sge, .num_sge = 1};
	struct ibv_recv_wr *bad;
	int ret = ibv_post_recv(ve->id->qp, &wr, &bad);

	return ret ? -ret : 0;
}

int fm__verbs_ep_resources(struct v_ep *ve, struct v_transport *vt)
{
	struct ibv_qp_init_attr qa = {0};
	struct epoll_event ev;
	uint32_t i;
	size_t bytes;
	int ret;

	if (ve->id->verbs != vt->ctx)
		return fm_err(-ENODEV, "address is on device %s, the transport opened %s",
			      ve->id->verbs ? ibv_get_device_name(ve->id->verbs->device) : "?",
			      vt->t.device);
	ve->nrx = ve->ep.rx_data + ve->ep.rx_ctrl;
	ve->ntx = ve->nrx;
	ve->slot_size = FM_TMSG_HDR_SIZE + ve->ep.msg_size;
	ve->cc = ibv_create_comp_channel(vt->ctx);
	if (ve->cc == NULL)
		return fm_err(-errno, "ibv_create_comp_channel: %s", strerror(errno));
	if ((ret = fm__verbs_set_nonblock(ve->cc->fd)) ||
	    (ret = fm__verbs_set_nonblock(ve->ch->fd)))
		return fm_err(ret, "O_NONBLOCK: %s", strerror(-ret));
	ve->cq = ibv_create_cq(vt->ctx, (int)(ve->nrx + ve->ntx + 4), ve, ve->cc, 0);
	if (ve->cq == NULL)
		return fm_err(-errno, "ibv_create_cq: %s", strerror(errno));
	qa.send_cq = ve->cq;
	qa.recv_cq = ve->cq;
	qa.qp_type = IBV_QPT_RC;
	qa.cap.max_send_wr = ve->ntx + 2;
	qa.cap.max_recv_wr = ve->nrx;
	qa.cap.max_send_sge = 1;
	qa.cap.max_recv_sge = 1;
	if (rdma_create_qp(ve->id, vt->pd, &qa))
		return fm_err(-errno, "rdma_create_qp: %s", strerror(errno));
	ve->qp_created = true;

	bytes = (size_t)(ve->nrx + ve->ntx) * ve->slot_size + 64;
	if (posix_memalign((void **)&ve->pool, 4096, bytes))
		return fm_err(-ENOMEM, "message pool");
	memset(ve->pool, 0, bytes);
	ve->scratch = (uint64_t *)(void *)(ve->pool + bytes - 64);
	ve->mr = ibv_reg_mr(vt->pd, ve->pool, bytes, IBV_ACCESS_LOCAL_WRITE);
	if (ve->mr == NULL)
		return fm_err(-errno, "ibv_reg_mr(message pool): %s", strerror(errno));
	ve->rx_reqs = calloc(ve->nrx, sizeof(*ve->rx_reqs));
	ve->tx_reqs = calloc(ve->ntx, sizeof(*ve->tx_reqs));
	ve->tx_free = calloc(ve->ntx, sizeof(*ve->tx_free));
	if (!ve->rx_reqs || !ve->tx_reqs || !ve->tx_free)
		return fm_err(-ENOMEM, "request arrays");
	for (i = 0; i < ve->nrx; i++) {
		ve->rx_reqs[i] = (struct vreq){.kind = VREQ_RECV, .slot = i};
		ret = fm__verbs_post_recv(ve, i);
		if (ret)
			return fm_err(ret, "ibv_post_recv: %s", strerror(-ret));
	}
	for (i = 0; i < ve->ntx; i++) {
		ve->tx_reqs[i] = (struct vreq){.kind = VREQ_SEND, .slot = ve->nrx + i};
		ve->tx_free[ve->ntx_free++] = i;
	}
	ve->op.kind = VREQ_OP;
	if (ibv_req_notify_cq(ve->cq, 0))
		return fm_err(-EIO, "ibv_req_notify_cq failed");

	ve->ep.event_fd = epoll_create1(EPOLL_CLOEXEC);
	if (ve->ep.event_fd < 0)
		return fm_err(-errno, "epoll_create1: %s", strerror(errno));
	ev.events = EPOLLIN;
	ev.data.u32 = 0;
	if (epoll_ctl(ve->ep.event_fd, EPOLL_CTL_ADD, ve->cc->fd, &ev))
		return fm_err(-errno, "epoll_ctl: %s", strerror(errno));
	ev.data.u32 = 1;
	if (epoll_ctl(ve->ep.event_fd, EPOLL_CTL_ADD, ve->ch->fd, &ev))
		return fm_err(-errno, "epoll_ctl: %s", strerror(errno));
	return 0;
}

/* ------------------------------------------------------------- progress */

static int wc_errno(enum ibv_wc_status st)
{
	switch (st) {
	case IBV_WC_REM_ACCESS_ERR:
	case IBV_WC_LOC_PROT_ERR:
	case IBV_WC_LOC_ACCESS_ERR:
		return -EACCES;
	case IBV_WC_RETRY_EXC_ERR:
	case IBV_WC_RNR_RETRY_EXC_ERR:
		return -ETIMEDOUT;
	case IBV_WC_REM_INV_REQ_ERR:
	case IBV_WC_LOC_LEN_ERR:
		return -EINVAL;
	default:
		return -ECONNRESET;
	}
}

int fm__verbs_poll_cq(struct v_ep *ve)
{
	struct ibv_wc wc[V_POLL_BATCH];
	int n, i, total = 0;

	do {
		n = ibv_poll_cq(ve->cq, V_POLL_BATCH, wc);
		if (n < 0) {
			fm__ep_fail(&ve->ep, -EIO, "ibv_poll_cq failed");
			return total;
		}
		for (i = 0; i < n; i++) {
			struct vreq *rq = (struct vreq *)(uintptr_t)wc[i].wr_id;

			/* status before opcode: on error only wr_id is valid */
			if (wc[i].status != IBV_WC_SUCCESS) {
				if (rq->kind == VREQ_OP) {
					rq->done = true;
					rq->status = wc[i].status;
				} else if (rq->kind == VREQ_SEND) {
					ve->tx_free[ve->ntx_free++] = rq->slot - ve->nrx;
				}
				if (wc[i].status == IBV_WC_WR_FLUSH_ERR)
					fm__ep_fail(&ve->ep, -ECONNRESET,
						    "work request flushed (endpoint torn down)");
				else if (wc_errno(wc[i].status) == -EACCES && rq->kind == VREQ_OP)
					fm__ep_fail(&ve->ep, -EACCES, "remote access error: %s",
						    ibv_wc_status_str(wc[i].status));
				else if (wc[i].status == IBV_WC_REM_INV_REQ_ERR &&
					 rq->kind == VREQ_OP)
					/* the responder's QP lacks the access
					 * flag: not granted (verbs_priv.h) */
					fm__ep_fail(&ve->ep, -EACCES, "remote access error: %s (no "
						    "access granted?)",
						    ibv_wc_status_str(wc[i].status));
				else
					fm__ep_fail(&ve->ep, wc_errno(wc[i].status), "%s on %s",
						    ibv_wc_status_str(wc[i].status),
						    rq->kind == VREQ_RECV   ? "receive"
						    : rq->kind == VREQ_SEND ? "send"
									    : "one-sided op");
				continue;
			}
			switch (rq->kind) {
			case VREQ_RECV:
				fm__ep_rx(&ve->ep, rq->slot,
					  ve->pool + (size_t)rq->slot * ve->slot_size,
					  wc[i].byte_len);
				break;
			case VREQ_SEND:
				ve->tx_free[ve->ntx_free++] = rq->slot - ve->nrx;
				break;
			case VREQ_OP:
				rq->done = true;
				rq->status = IBV_WC_SUCCESS;
				break;
			}
		}
		total += n;
	} while (n == V_POLL_BATCH);
	return total;
}

static void v_check_cm(struct v_ep *ve)
{
	struct rdma_cm_event *ev;

	while (rdma_get_cm_event(ve->ch, &ev) == 0) {
		enum rdma_cm_event_type type = ev->event;

		rdma_ack_cm_event(ev);
		switch (type) {
		case RDMA_CM_EVENT_DISCONNECTED:
			fm__verbs_poll_cq(ve); /* deliver what arrived before the DREQ */
			fm__ep_fail(&ve->ep, -ECONNRESET, "peer closed or died (disconnected)");
			break;
		case RDMA_CM_EVENT_DEVICE_REMOVAL:
			fm__ep_fail(&ve->ep, -ENODEV, "RDMA device removed");
			break;
		case RDMA_CM_EVENT_TIMEWAIT_EXIT:
		case RDMA_CM_EVENT_ESTABLISHED:
			break;
		default:
			fm__ep_fail(&ve->ep, -ECONNRESET, "connection event %s",
				    rdma_event_str(type));
			break;
		}
	}
}

int fm__verbs_progress(struct fm_ep *ep, int timeout_ms)
{
	struct v_ep *ve = to_vep(ep);
	bool event = ep->t->cfg.wait_mode == FM_WAIT_EVENT;
	struct epoll_event evs[2];
	int n;

	if (event) {
		struct ibv_cq *cq;
		void *ctx;

		while (ibv_get_cq_event(ve->cc, &cq, &ctx) == 0)
			ve->cq_unacked++;
		if (ve->cq_unacked >= 64) {
			ibv_ack_cq_events(ve->cq, ve->cq_unacked);
			ve->cq_unacked = 0;
		}
		ibv_req_notify_cq(ve->cq, 0); /* arm, THEN poll */
	}
	n = fm__verbs_poll_cq(ve);
	if (event || timeout_ms || ++ve->cm_countdown >= V_CM_CHECK_EVERY || ep->state != FM_EP_UP) {
		ve->cm_countdown = 0;
		if (ep->state == FM_EP_UP)
			v_check_cm(ve);
	}
	if (n || timeout_ms == 0 || !event || ep->state != FM_EP_UP)
		return 0;
	if (epoll_wait(ep->event_fd, evs, 2, timeout_ms) < 0 && errno != EINTR)
		return fm_err(-errno, "epoll_wait: %s", strerror(errno));
	return fm__verbs_progress(ep, 0);
}

/*
 * LINGER: messages fm_ep_send handed over are on the send queue; a
 * disconnect now would flush them.  Wait up to linger_ms for their send
 * completions -- an RC send completes once the peer's HCA acknowledged it
 * -- then disconnect.  A broken connection ends the wait at once (its
 * flushed completions close the endpoint).
 */
static void v_linger(struct v_ep *ve)
{
	int linger = ve->ep.t->cfg.linger_ms;
	uint64_t deadline = fm__deadline(linger < 0 ? 0 : linger);

	while (ve->qp_created && ve->ntx_free < ve->ntx && ve->ep.state != FM_EP_CLOSED) {
		if (fm__verbs_poll_cq(ve))
			continue;
		if (fm__remaining_ms(deadline) == 0)
			break;
		usleep(100);
	}
}

void fm__verbs_ep_delete(struct fm_ep *ep)
{
	struct v_ep *ve = to_vep(ep);

	if (ve->id && ep->state != FM_EP_CLOSED) {
		v_linger(ve);
		rdma_disconnect(ve->id);
	}
	fm__ep_fail(ep, -ENOTCONN, "closed locally");
	fm__verbs_ep_free(ve);
}
