/* qp.c -- a verbs endpoint's resources and its completion queue: RC QP,
 * one CQ and one completion channel per endpoint; the drain that any thread
 * may run; progress; teardown.
 *
 * Per endpoint:
 *   pool   one LOCAL_WRITE MR: nrx receive slots, ntx send slots (each
 *          16-byte header + msg_size).  Receives are pre-posted before
 *          rdma_connect/rdma_accept and re-posted when a slot is handed
 *          back (control messages at once, data when fm_ep_recv took it).
 *          Atomic results land in the lanes' own MRs (lane.c).
 *   reqs   every work request's wr_id is a `struct vreq *`: rx_reqs[slot],
 *          tx_reqs[slot], or a lane's request (struct v_lreq).
 *   sizes  send queue: ntx messages + 2 + the lanes' budget (cfg.max_lanes
 *          x cfg.lane_depth + 1 for fm_ep_read/cas/faa's own lane), within
 *          the device's max_qp_wr; the CQ holds every one of those plus the
 *          receives, within max_cqe.  Each lane reserves its depth out of
 *          the budget (lane_slots) and never has more posted and unpolled,
 *          so neither queue can overflow.
 *   linger fm_ep_delete waits (bounded) for the send completions of what
 *          was sent before it, then disconnects (v_linger).
 *   events a per-endpoint rdma_cm event channel (the accepted id is migrated
 *          to it) and a completion channel, both non-blocking, both in the
 *          endpoint's epoll fd (fm_ep_fd), with msg_efd in event mode.
 *
 * THE SHARED CQ.  Lanes of several threads and the owning thread's
 * messages complete on one CQ.  Whoever polls drains it: one thread at a
 * time, holding `drain` (a mutex).  The drain (SPDK's poller) takes up to
 * V_POLL_BATCH completions per ibv_poll_cq until the CQ is empty, recovers
 * the request from wr_id, checks status BEFORE opcode (on error only wr_id
 * is valid) and routes it:
 *   a lane's request  -> that lane's ring (fm__verbs_lane_done), whichever
 *                        thread drained it;
 *   RECV / SEND       -> msgq, a ring the owning thread empties
 *                        (fm__verbs_msgq_take): fm__ep_rx and the send
 *                        slots stay owning-thread state, as before.
 * Lanes TRY the lock: a thread that finds the CQ being drained does not
 * wait -- the drainer routes its completions to its ring -- and polls again
 * later.  The owning thread takes it for sure where it must see everything
 * before it acts (event mode progress, disconnect, linger, teardown).
 * Cost: one uncontended mutex CAS per poll, plus the provider's own CQ
 * spinlock inside ibv_poll_cq; under contention the loser returns at once.
 * Posting takes no lock of ours: ibv_post_send on one QP from several
 * threads is serialized by the provider's send-queue lock (rxe and mlx5
 * alike; we use no thread domain that would remove it), and our send-queue
 * accounting is per lane (lane_slots).
 *
 * Errors close the endpoint (fm__ep_fail, any thread); IBV_WC_WR_FLUSH_ERR
 * means teardown.  A closed endpoint's QP is moved to ERROR by whoever sees
 * it first (owning thread in progress/reap, a lane in its poll), so every
 * operation still in flight flushes and completes promptly.
 *
 * QP LIFETIME under lanes: the owning thread tears the QP down (fence,
 * delete) in fm__verbs_qp_teardown: qp_dead (seq_cst) -> fm__ep_quiesce (no
 * lane inside a post or a modify) -> ERROR -> drain -> destroy -> drain
 * again -> qp_gone.  Once qp_gone no completion can arrive (providers may
 * even drop a destroyed QP's CQEs), so a lane completes what is still
 * POSTED itself, with an error (lane.c).  The CQ, its channel and the drain
 * lock live until fm__verbs_ep_final, when no lane is left.
 *
 * EVENT MODE.  Sleepers: the owning thread (epoll on fm_ep_fd: its own
 * loop, or fm__verbs_progress), lanes in fm_lane_wait (poll on the channel
 * and their own eventfd), lanes in their thread's own loop (fm_lane_fd: an
 * epoll of both).  Whoever takes a CQ event acks it, re-arms the CQ, and
 * THEN drains -- taking the lock even if another thread holds it: a
 * completion that came before the re-arm raises no new event, so the taker
 * must see it drained.  Another thread may have taken the event that would
 * have woken a sleeper, so a drainer wakes the sleepers it routed to:
 *   - the owning thread: a drain that is not the owning thread's own
 *     progress and routed a message or a completion of the endpoint's own
 *     lane writes msg_efd (in fm_ep_fd), always -- the owning thread may
 *     sleep in a loop of its own; its progress clears msg_efd first;
 *   - a lane: if it is asleep in fm_lane_wait (waiting, seq_cst pair) or
 *     watched through fm_lane_fd, its eventfd.
 */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <infiniband/verbs.h>
#include <rdma/rdma_cma.h>

#include "verbs_priv.h"

#define V_POLL_BATCH 32
#define V_CM_CHECK_EVERY 256 /* busy mode: look at the CM channel this often */

int fm__verbs_set_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);

	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
		return -errno;
	return 0;
}

/* ------------------------------------------------------------ endpoints */

/* everything but what lanes may still touch: the struct, the CQ and its
 * channel, the drain lock, the message queue (fm__verbs_ep_final) */
static void v_ep_teardown(struct v_ep *ve)
{
	if (ve->loop_peer) {
		struct v_ep *p = ve->loop_peer;

		ve->loop_peer = NULL;
		if (p->ep.state == FM_EP_UP && p->id)
			rdma_disconnect(p->id);
		fm__verbs_ep_free(p);
	}
	if (ve->qp_created)
		fm__verbs_qp_teardown(ve);
	if (ve->mr)
		ibv_dereg_mr(ve->mr);
	ve->mr = NULL;
	free(ve->pool);
	free(ve->rx_reqs);
	free(ve->tx_reqs);
	free(ve->tx_free);
	ve->pool = NULL;
	ve->rx_reqs = ve->tx_reqs = NULL;
	ve->tx_free = NULL;
	if (ve->id)
		rdma_destroy_id(ve->id);
	ve->id = NULL;
	if (ve->ch)
		rdma_destroy_event_channel(ve->ch);
	ve->ch = NULL;
	if (ve->ep.event_fd >= 0)
		close(ve->ep.event_fd);
	ve->ep.event_fd = -1;
}

void fm__verbs_ep_final(struct fm_ep *ep)
{
	struct v_ep *ve = to_vep(ep);

	if (ve->cq)
		ibv_destroy_cq(ve->cq); /* every event was acked when taken */
	if (ve->cc)
		ibv_destroy_comp_channel(ve->cc);
	if (ve->msg_efd >= 0)
		close(ve->msg_efd);
	if (ve->drain_init)
		pthread_mutex_destroy(&ve->drain);
	free(ve->msgq);
	fm__ep_fini(&ve->ep);
	free(ve);
}

/* setup failures and the loopback's hidden side: no lane knows them */
void fm__verbs_ep_free(struct v_ep *ve)
{
	v_ep_teardown(ve);
	fm__verbs_ep_final(&ve->ep);
}

struct v_ep *fm__verbs_ep_alloc(void)
{
	struct v_ep *ve = calloc(1, sizeof(*ve));

	if (ve == NULL)
		return NULL;
	ve->ep.event_fd = -1;
	ve->msg_efd = -1;
	if (pthread_mutex_init(&ve->drain, NULL)) {
		free(ve);
		return NULL;
	}
	ve->drain_init = true;
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
	int ret = ibv_post_recv(ve->qp, &wr, &bad);

	return ret ? -ret : 0;
}

int fm__verbs_ep_resources(struct v_ep *ve, struct v_transport *vt)
{
	const struct ibv_device_attr *da = &vt->attr.orig_attr;
	const struct fm_transport_cfg *cfg = &vt->t.cfg;
	struct ibv_qp_init_attr qa = {0};
	struct epoll_event ev;
	uint64_t lanes;
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
	/* the lanes' send-queue budget, within what the device allows */
	lanes = (uint64_t)cfg->max_lanes * cfg->lane_depth + 1;
	if (da->max_qp_wr > 0 && lanes > (uint64_t)da->max_qp_wr - ve->ntx - 2)
		lanes = (uint64_t)da->max_qp_wr > ve->ntx + 3 ? (uint64_t)da->max_qp_wr - ve->ntx - 2
							     : 1;
	if (da->max_cqe > 0 && lanes > (uint64_t)da->max_cqe - ve->nrx - ve->ntx - 8)
		lanes = (uint64_t)da->max_cqe > ve->nrx + ve->ntx + 9
				? (uint64_t)da->max_cqe - ve->nrx - ve->ntx - 8
				: 1;
	atomic_init(&ve->lane_slots, (uint32_t)lanes);
	ve->cc = ibv_create_comp_channel(vt->ctx);
	if (ve->cc == NULL)
		return fm_err(-errno, "ibv_create_comp_channel: %s", strerror(errno));
	if ((ret = fm__verbs_set_nonblock(ve->cc->fd)) ||
	    (ret = fm__verbs_set_nonblock(ve->ch->fd)))
		return fm_err(ret, "O_NONBLOCK: %s", strerror(-ret));
	ve->cq = ibv_create_cq(vt->ctx, (int)(ve->nrx + ve->ntx + 2 + lanes + 4), ve, ve->cc, 0);
	if (ve->cq == NULL)
		return fm_err(-errno, "ibv_create_cq(%llu entries): %s",
			      (unsigned long long)(ve->nrx + ve->ntx + 2 + lanes + 4),
			      strerror(errno));
	qa.send_cq = ve->cq;
	qa.recv_cq = ve->cq;
	qa.qp_type = IBV_QPT_RC;
	qa.cap.max_send_wr = (uint32_t)(ve->ntx + 2 + lanes);
	qa.cap.max_recv_wr = ve->nrx;
	qa.cap.max_send_sge = 1;
	qa.cap.max_recv_sge = 1;
	if (rdma_create_qp(ve->id, vt->pd, &qa))
		return fm_err(-errno, "rdma_create_qp(%u send WRs): %s", qa.cap.max_send_wr,
			      strerror(errno));
	ve->qp_created = true;
	ve->qp = ve->id->qp;

	bytes = (size_t)(ve->nrx + ve->ntx) * ve->slot_size;
	if (posix_memalign((void **)&ve->pool, 4096, bytes))
		return fm_err(-ENOMEM, "message pool");
	memset(ve->pool, 0, bytes);
	ve->mr = ibv_reg_mr(vt->pd, ve->pool, bytes, IBV_ACCESS_LOCAL_WRITE);
	if (ve->mr == NULL)
		return fm_err(-errno, "ibv_reg_mr(message pool): %s", strerror(errno));
	ve->rx_reqs = calloc(ve->nrx, sizeof(*ve->rx_reqs));
	ve->tx_reqs = calloc(ve->ntx, sizeof(*ve->tx_reqs));
	ve->tx_free = calloc(ve->ntx, sizeof(*ve->tx_free));
	ve->msgq_cap = ve->nrx + ve->ntx;
	ve->msgq = calloc(ve->msgq_cap, sizeof(*ve->msgq));
	if (!ve->rx_reqs || !ve->tx_reqs || !ve->tx_free || !ve->msgq)
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
	if (cfg->wait_mode == FM_WAIT_EVENT) {
		ve->msg_efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
		ev.data.u32 = 2;
		if (ve->msg_efd < 0 || epoll_ctl(ve->ep.event_fd, EPOLL_CTL_ADD, ve->msg_efd, &ev))
			return fm_err(-errno, "eventfd: %s", strerror(errno));
	}
	return 0;
}

/* ---------------------------------------------------------------- drain */

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

int fm__verbs_wc_status(struct v_ep *ve, enum ibv_wc_status st)
{
	if (st == IBV_WC_SUCCESS)
		return 0;
	if (st == IBV_WC_WR_FLUSH_ERR)
		/* flushed: closed or fenced here, else the connection broke */
		return fm_ep_error(&ve->ep) == -ENOTCONN ? -ENOTCONN : -ECONNRESET;
	if (st == IBV_WC_REM_INV_REQ_ERR) /* the responder's QP lacks the access flag */
		return -EACCES;
	return wc_errno(st);
}

/* a completion with an error: close the endpoint with the reason */
static void v_wc_fail(struct v_ep *ve, const struct vreq *rq, enum ibv_wc_status st)
{
	bool onesided = rq->kind == VREQ_LANE;

	if (st == IBV_WC_WR_FLUSH_ERR)
		fm__ep_fail(&ve->ep, -ECONNRESET, "work request flushed (endpoint torn down)");
	else if (onesided && wc_errno(st) == -EACCES)
		fm__ep_fail(&ve->ep, -EACCES, "remote access error: %s", ibv_wc_status_str(st));
	else if (onesided && st == IBV_WC_REM_INV_REQ_ERR)
		/* the responder's QP lacks the access flag: not granted
		 * (verbs_priv.h) */
		fm__ep_fail(&ve->ep, -EACCES, "remote access error: %s (no access granted?)",
			    ibv_wc_status_str(st));
	else
		fm__ep_fail(&ve->ep, wc_errno(st), "%s on %s", ibv_wc_status_str(st),
			    rq->kind == VREQ_RECV   ? "receive"
			    : rq->kind == VREQ_SEND ? "send"
						    : "one-sided op");
}

/* caller holds ve->drain: every completion in the CQ to its taker;
 * `owner`: the owning thread's progress, which takes msgq right after.
 * Returns how many, or -1 if ibv_poll_cq failed (endpoint failed). */
static int __v_drain(struct v_ep *ve, bool owner)
{
	struct ibv_wc wc[V_POLL_BATCH];
	int n, i, total = 0, to_owner = 0;
	bool event = ve->ep.t->cfg.wait_mode == FM_WAIT_EVENT;

	do {
		n = ibv_poll_cq(ve->cq, V_POLL_BATCH, wc);
		if (n < 0) {
			fm__ep_fail(&ve->ep, -EIO, "ibv_poll_cq failed");
			break;
		}
		for (i = 0; i < n; i++) {
			struct vreq *rq = (struct vreq *)(uintptr_t)wc[i].wr_id;

			/* status before opcode: on error only wr_id is valid */
			if (wc[i].status != IBV_WC_SUCCESS)
				v_wc_fail(ve, rq, wc[i].status);
			if (rq->kind == VREQ_LANE) {
				struct v_lreq *lr = container_of(rq, struct v_lreq, r);

				to_owner += lr->lane->l.sync;
				fm__verbs_lane_done(ve, lr, wc[i].status);
				continue;
			}
			{
				uint32_t h = atomic_load_explicit(&ve->msgq_head,
								  memory_order_relaxed);

				/* cannot overflow: one entry per message work
				 * request in flight (fm__verbs_msgq_take) */
				ve->msgq[h % ve->msgq_cap] = (struct v_msgc){
					.rq = rq, .status = wc[i].status,
					.byte_len = wc[i].byte_len};
				atomic_store_explicit(&ve->msgq_head, h + 1, memory_order_release);
				to_owner++;
			}
		}
		total += n;
	} while (n == V_POLL_BATCH);
	if (event && to_owner && !owner)
		(void)eventfd_write(ve->msg_efd, 1);
	return n < 0 ? -1 : total;
}

int fm__verbs_drain(struct v_ep *ve, bool wait, bool owner)
{
	int n;

	if (wait)
		pthread_mutex_lock(&ve->drain);
	else if (pthread_mutex_trylock(&ve->drain))
		return -1;
	n = __v_drain(ve, owner);
	pthread_mutex_unlock(&ve->drain);
	return n;
}

int fm__verbs_msgq_take(struct v_ep *ve)
{
	uint32_t t = atomic_load_explicit(&ve->msgq_tail, memory_order_relaxed);
	uint32_t h = atomic_load_explicit(&ve->msgq_head, memory_order_acquire);
	int n = 0;

	while (t != h) {
		struct v_msgc e = ve->msgq[t % ve->msgq_cap];

		/* free the entry first: handling it may re-post the slot, whose
		 * next completion then has room */
		atomic_store_explicit(&ve->msgq_tail, ++t, memory_order_release);
		n++;
		if (e.rq->kind == VREQ_SEND)
			ve->tx_free[ve->ntx_free++] = e.rq->slot - ve->nrx;
		else if (e.status == IBV_WC_SUCCESS)
			fm__ep_rx(&ve->ep, e.rq->slot,
				  ve->pool + (size_t)e.rq->slot * ve->slot_size, e.byte_len);
	}
	return n;
}

/* owning thread: a closed endpoint's QP goes to ERROR (once), so whatever
 * is still in flight flushes now rather than at its retry timeout */
static void v_qp_error(struct v_ep *ve)
{
	struct ibv_qp_attr attr = {.qp_state = IBV_QPS_ERR};

	if (ve->qp_created && !atomic_exchange(&ve->qp_err, true))
		(void)ibv_modify_qp(ve->qp, &attr, IBV_QP_STATE);
}

void fm__verbs_qp_teardown(struct v_ep *ve)
{
	struct ibv_qp_attr attr = {.qp_state = IBV_QPS_ERR};

	if (!ve->qp_created)
		return;
	/* 1. lanes keep off the QP from now on, and none is still on it */
	atomic_store_explicit(&ve->qp_dead, true, memory_order_seq_cst);
	fm__ep_quiesce(&ve->ep);
	/* 2. ERROR: nothing executes any more, everything in flight flushes */
	if (!atomic_exchange(&ve->qp_err, true))
		(void)ibv_modify_qp(ve->qp, &attr, IBV_QP_STATE);
	(void)fm__verbs_drain(ve, true, true);
	/* 3. destroy: the fence's guarantee rests on this */
	rdma_destroy_qp(ve->id);
	ve->qp_created = false;
	ve->qp = NULL;
	/* 4. what the destroy left in the CQ; after this no completion of a
	 *    lane's request can come: the lanes finish the rest themselves */
	pthread_mutex_lock(&ve->drain);
	(void)__v_drain(ve, true);
	atomic_store_explicit(&ve->qp_gone, true, memory_order_release);
	pthread_mutex_unlock(&ve->drain);
	/* 5. wake lanes asleep in fm_lane_wait or watched */
	if (ve->ep.t->cfg.wait_mode == FM_WAIT_EVENT) {
		pthread_mutex_lock(&ve->ep.lanes_lock);
		for (struct fm_lane *l = ve->ep.lanes; l; l = l->next)
			fm__verbs_lane_wake(container_of(l, struct v_lane, l));
		pthread_mutex_unlock(&ve->ep.lanes_lock);
	}
}

/* ------------------------------------------------------------- progress */

static void v_check_cm(struct v_ep *ve)
{
	struct rdma_cm_event *ev;

	while (rdma_get_cm_event(ve->ch, &ev) == 0) {
		enum rdma_cm_event_type type = ev->event;

		rdma_ack_cm_event(ev);
		switch (type) {
		case RDMA_CM_EVENT_DISCONNECTED:
			/* deliver what arrived before the DREQ */
			(void)fm__verbs_drain(ve, true, true);
			(void)fm__verbs_msgq_take(ve);
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

/* take the CQ events waiting (ack each), THEN arm, before any drain */
static void v_take_events(struct v_ep *ve)
{
	struct ibv_cq *cq;
	void *ctx;

	while (ibv_get_cq_event(ve->cc, &cq, &ctx) == 0)
		ibv_ack_cq_events(cq, 1);
	ibv_req_notify_cq(ve->cq, 0);
}

int fm__verbs_progress(struct fm_ep *ep, int timeout_ms)
{
	struct v_ep *ve = to_vep(ep);
	bool event = ep->t->cfg.wait_mode == FM_WAIT_EVENT;
	struct epoll_event evs[3];
	int n, m;

	if (event) {
		eventfd_t v;

		/* clear the wake-ups first: whatever another thread routes
		 * after this writes it again */
		(void)eventfd_read(ve->msg_efd, &v);
		v_take_events(ve);
	}
	/* event mode must see what another thread drained before it sleeps */
	n = fm__verbs_drain(ve, event, true);
	m = fm__verbs_msgq_take(ve);
	if (ep->state != FM_EP_UP) {
		v_qp_error(ve);
		return 0;
	}
	if (event || timeout_ms || ++ve->cm_countdown >= V_CM_CHECK_EVERY) {
		ve->cm_countdown = 0;
		v_check_cm(ve);
	}
	if (n > 0 || m || timeout_ms == 0 || !event || ep->state != FM_EP_UP)
		return 0;
	/* the CQ is armed (v_take_events) and drained; a later completion
	 * raises the channel, one another thread takes writes msg_efd */
	if (epoll_wait(ep->event_fd, evs, 3, timeout_ms) < 0 && errno != EINTR)
		return fm_err(-errno, "epoll_wait: %s", strerror(errno));
	return fm__verbs_progress(ep, 0);
}

void fm__verbs_reap(struct fm_ep *ep)
{
	struct v_ep *ve = to_vep(ep);

	(void)fm__verbs_drain(ve, false, true);
	(void)fm__verbs_msgq_take(ve);
	v_qp_error(ve);
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
		int n = fm__verbs_drain(ve, true, true);

		if (fm__verbs_msgq_take(ve) || n > 0)
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
	v_ep_teardown(ve);
}
