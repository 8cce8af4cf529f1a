/* lane.c -- the verbs provider's lanes: RDMA READ, CAS and FAA posted by
 * any thread on its own lane, many in flight, on the endpoint's one RC QP;
 * completions routed back to their lane by whichever thread drained the
 * shared CQ (qp.c).
 *
 * A lane of depth D owns:
 *   reqs[D]     struct v_lreq, the wr_id of each work request (states in
 *               verbs_priv.h: FREE -> POSTED -> DONE -> FREE)
 *   results[D]  8-byte slots in an MR of the lane: the atomic of request i
 *               returns its old value into results[i] (the HCA writes it;
 *               host order on rxe and mlx5, see SOFT-ROCE-FACTS.md)
 *   free[D]     the FREE slots, a stack of the lane's thread
 *   ring        the DONE slots in completion order: single producer at a
 *               time (whoever holds ve->drain: the lock hands the role on
 *               with a happens-before edge), single consumer (the lane's
 *               thread); head stored with release after status/old are
 *               written, loaded with acquire before they are read.
 * D send-queue slots are reserved from the endpoint's budget at lane_new;
 * a lane never has more than D posted and unpolled (lane.c of the
 * transport), so the QP's send queue and the CQ cannot overflow and the
 * free stack is never empty at a post.
 *
 * Post: fill the request, state POSTED (release), then ibv_post_send
 * between fm__lane_enter and fm__lane_leave: no lock of ours (the provider
 * serializes its send queue).  Poll: pop the ring; if it did not fill `out`,
 * drain the CQ if nobody else is (trylock), pop again.
 *
 * Close under a lane: a closed endpoint's QP is moved to ERROR by the first
 * thread that notices (here: poll), so whatever is in flight flushes and
 * reaches its ring with an error.  Once the owning thread destroyed the QP
 * and drained the CQ after it (qp_gone), no completion can come any more;
 * the lane completes its remaining POSTED requests itself, under ve->drain
 * and with the same CAS a drainer would use, so each request completes
 * exactly once whoever gets there first.
 */
#include <errno.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <poll.h>
#include <unistd.h>

#include <infiniband/verbs.h>

#include "verbs_priv.h"

static struct v_lane *to_vl(struct fm_lane *l)
{
	return container_of(l, struct v_lane, l);
}

/* ------------------------------------------------------ new, free */

int fm__verbs_lane_new(struct fm_ep *ep, uint32_t depth, struct fm_lane **out)
{
	struct v_ep *ve = to_vep(ep);
	struct v_transport *vt = to_vt(ep->t);
	uint32_t left = atomic_load(&ve->lane_slots), cap = 1;
	struct v_lane *vl;

	/* the only subtraction happens here, under ep->lanes_lock */
	if (left < depth)
		return fm_err(-ENOSPC, "the endpoint's send queue has %u slots left for lanes, "
				       "a lane needs %u (cfg.max_lanes x lane_depth, device max_qp_wr)",
			      left, depth);
	while (cap < depth)
		cap <<= 1;
	vl = calloc(1, sizeof(*vl));
	if (vl == NULL)
		return fm_err(-ENOMEM, "lane");
	vl->efd = vl->epfd = -1;
	if (posix_memalign((void **)&vl->results, 64, (size_t)depth * 8) ||
	    (vl->reqs = calloc(depth, sizeof(*vl->reqs))) == NULL ||
	    (vl->free = calloc(depth, sizeof(*vl->free))) == NULL ||
	    (vl->ring = calloc(cap, sizeof(*vl->ring))) == NULL) {
		fm__verbs_lane_free(&vl->l);
		return fm_err(-ENOMEM, "lane of %u operations", depth);
	}
	memset(vl->results, 0, (size_t)depth * 8);
	vl->mr = ibv_reg_mr(vt->pd, vl->results, (size_t)depth * 8, IBV_ACCESS_LOCAL_WRITE);
	if (vl->mr == NULL) {
		int e = errno ? errno : ENOMEM;

		fm__verbs_lane_free(&vl->l);
		return fm_err(-e, "ibv_reg_mr(lane results): %s", strerror(e));
	}
	if (ep->t->cfg.wait_mode == FM_WAIT_EVENT) {
		vl->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
		if (vl->efd < 0) {
			int e = errno;

			fm__verbs_lane_free(&vl->l);
			return fm_err(-e, "eventfd: %s", strerror(e));
		}
	}
	for (uint32_t i = 0; i < depth; i++) {
		vl->reqs[i].r = (struct vreq){.kind = VREQ_LANE, .slot = i};
		vl->reqs[i].lane = vl;
		atomic_init(&vl->reqs[i].state, V_LREQ_FREE);
		vl->free[vl->nfree++] = depth - 1 - i;
	}
	vl->mask = cap - 1;
	vl->l.depth = depth; /* lane_free gives back what it reserved */
	atomic_fetch_sub(&ve->lane_slots, depth);
	*out = &vl->l;
	return 0;
}

void fm__verbs_lane_free(struct fm_lane *l)
{
	struct v_lane *vl = to_vl(l);

	if (vl->mr) {
		ibv_dereg_mr(vl->mr);
		/* reserved at lane_new (l->ep is set once it succeeded) */
		if (l->ep)
			atomic_fetch_add(&to_vep(l->ep)->lane_slots, l->depth);
	}
	if (vl->efd >= 0)
		close(vl->efd);
	if (vl->epfd >= 0)
		close(vl->epfd);
	free(vl->results);
	free(vl->reqs);
	free(vl->free);
	free(vl->ring);
	free(vl);
}

/* ------------------------------------------------------------ post */

static int v_post(struct v_lane *vl, struct ibv_send_wr *wr, struct ibv_sge *sge,
		  enum fm_lane_op op, void *ctx)
{
	struct v_ep *ve = to_vep(vl->l.ep);
	struct ibv_send_wr *bad;
	uint32_t i = vl->free[--vl->nfree];
	struct v_lreq *lr = &vl->reqs[i];
	int ret;

	lr->ctx = ctx;
	lr->op = op;
	lr->status = 0;
	lr->old = 0;
	if (op != FM_LANE_READ) {
		sge->addr = (uint64_t)(uintptr_t)&vl->results[i];
		sge->length = 8;
		sge->lkey = vl->mr->lkey;
	}
	wr->wr_id = (uint64_t)(uintptr_t)&lr->r;
	wr->sg_list = sge;
	wr->num_sge = 1;
	wr->send_flags = IBV_SEND_SIGNALED;
	/* whoever drains its completion sees ctx and op */
	atomic_store_explicit(&lr->state, V_LREQ_POSTED, memory_order_release);
	if (!fm__lane_enter(&vl->l)) {
		ret = fm__ep_not_up(vl->l.ep);
		goto undo;
	}
	ret = ibv_post_send(ve->qp, wr, &bad);
	if (ret) {
		/* not taken by the QP: no completion will come */
		ret = fm_err(ret == ENOMEM ? -EAGAIN : -ret, "ibv_post_send(%s): %s",
			     op == FM_LANE_READ ? "READ" : "atomic", strerror(ret));
		goto undo;
	}
	fm__lane_leave(&vl->l);
	return 0;
undo:
	fm__lane_leave(&vl->l);
	atomic_store_explicit(&lr->state, V_LREQ_FREE, memory_order_relaxed);
	vl->free[vl->nfree++] = i;
	return ret;
}

int fm__verbs_post_read(struct fm_lane *l, void *dst, struct fm_region *dst_r,
			const struct fm_region_desc *src, uint64_t src_off, size_t len, void *ctx)
{
	struct v_region *vr = container_of(dst_r, struct v_region, r);
	struct ibv_sge sge = {.addr = (uint64_t)(uintptr_t)dst, .length = (uint32_t)len,
			      .lkey = vr->mr->lkey};
	struct ibv_send_wr wr = {.opcode = IBV_WR_RDMA_READ};

	if (len > l->ep->t->caps.max_region_size || len > UINT32_MAX)
		return fm_err(-ERANGE, "READ of %zu bytes", len);
	wr.wr.rdma.remote_addr = src->addr + src_off;
	wr.wr.rdma.rkey = src->key;
	return v_post(to_vl(l), &wr, &sge, FM_LANE_READ, ctx);
}

int fm__verbs_post_atomic(struct fm_lane *l, enum fm_lane_op op,
			  const struct fm_region_desc *rd, uint64_t off, uint64_t a, uint64_t b,
			  void *ctx)
{
	struct ibv_sge sge;
	struct ibv_send_wr wr = {0};

	wr.opcode = op == FM_LANE_CAS ? IBV_WR_ATOMIC_CMP_AND_SWP : IBV_WR_ATOMIC_FETCH_AND_ADD;
	wr.wr.atomic.remote_addr = rd->addr + off;
	wr.wr.atomic.rkey = rd->key;
	wr.wr.atomic.compare_add = a;
	wr.wr.atomic.swap = b;
	return v_post(to_vl(l), &wr, &sge, op, ctx);
}

/* ---------------------------------------------------- completions */

void fm__verbs_lane_wake(struct v_lane *vl)
{
	if (vl->efd < 0)
		return;
	atomic_thread_fence(memory_order_seq_cst); /* pairs with lane_sleep */
	if (atomic_load_explicit(&vl->waiting, memory_order_relaxed) ||
	    atomic_load_explicit(&vl->watched, memory_order_relaxed))
		(void)eventfd_write(vl->efd, 1);
}

/* take the CQ events waiting (ack each), re-arm; true if there were */
static bool lane_take_events(struct v_ep *ve)
{
	struct ibv_cq *cq;
	void *ctx;
	int n = 0;

	while (ibv_get_cq_event(ve->cc, &cq, &ctx) == 0) {
		ibv_ack_cq_events(cq, 1);
		n++;
	}
	if (n)
		ibv_req_notify_cq(ve->cq, 0);
	return n > 0;
}

/*
 * fm_lane_fd: an epoll set of the CQ's channel and the lane's eventfd, for
 * a lane thread's own event loop.  From now on every completion another
 * thread routes to the lane writes the eventfd, and the lane's polls take
 * the channel's events (ack, re-arm, drain for sure) and clear the
 * eventfd: two syscalls per poll, the price of sleeping in event mode.
 */
int fm__verbs_lane_fd(struct fm_lane *l)
{
	struct v_lane *vl = to_vl(l);
	struct v_ep *ve = to_vep(l->ep);
	struct epoll_event ev = {.events = EPOLLIN};

	if (vl->efd < 0)
		return -1; /* busy mode: poll */
	if (vl->epfd >= 0)
		return vl->epfd;
	vl->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (vl->epfd < 0)
		return fm_err(-errno, "epoll_create1: %s", strerror(errno));
	ev.data.u32 = 0;
	if (epoll_ctl(vl->epfd, EPOLL_CTL_ADD, ve->cc->fd, &ev) == 0) {
		ev.data.u32 = 1;
		if (epoll_ctl(vl->epfd, EPOLL_CTL_ADD, vl->efd, &ev) == 0) {
			atomic_store_explicit(&vl->watched, 1, memory_order_seq_cst);
			ibv_req_notify_cq(ve->cq, 0);
			return vl->epfd;
		}
	}
	{
		int e = errno;

		close(vl->epfd);
		vl->epfd = -1;
		return fm_err(-e, "epoll_ctl: %s", strerror(e));
	}
}

/* caller holds ve->drain */
static void __lane_push(struct v_lane *vl, uint32_t slot)
{
	uint32_t h = atomic_load_explicit(&vl->head, memory_order_relaxed);

	vl->ring[h & vl->mask] = slot;
	atomic_store_explicit(&vl->head, h + 1, memory_order_release);
}

void fm__verbs_lane_done(struct v_ep *ve, struct v_lreq *lr, enum ibv_wc_status st)
{
	struct v_lane *vl = lr->lane;
	int posted = V_LREQ_POSTED;

	if (!atomic_compare_exchange_strong_explicit(&lr->state, &posted, V_LREQ_DONE,
						     memory_order_acq_rel, memory_order_acquire))
		return; /* finished already: cannot complete twice */
	lr->status = fm__verbs_wc_status(ve, st);
	lr->old = lr->status == 0 && lr->op != FM_LANE_READ
			  ? *(volatile uint64_t *)&vl->results[lr->r.slot]
			  : 0;
	__lane_push(vl, lr->r.slot);
	fm__verbs_lane_wake(vl);
}

/* caller holds ve->drain, qp_gone: nothing can come any more; complete
 * what is still POSTED with the error of the flush it never got */
static void __lane_flush(struct v_ep *ve, struct v_lane *vl)
{
	for (uint32_t i = 0; i < vl->l.depth; i++)
		if (atomic_load_explicit(&vl->reqs[i].state, memory_order_relaxed) ==
		    V_LREQ_POSTED)
			fm__verbs_lane_done(ve, &vl->reqs[i], IBV_WC_WR_FLUSH_ERR);
}

static int lane_pop(struct v_lane *vl, struct fm_completion *out, int n)
{
	uint32_t t = atomic_load_explicit(&vl->tail, memory_order_relaxed);
	uint32_t h = atomic_load_explicit(&vl->head, memory_order_acquire);
	int k = 0;

	while (k < n && t != h) {
		uint32_t i = vl->ring[t & vl->mask];
		struct v_lreq *lr = &vl->reqs[i];

		out[k++] = (struct fm_completion){.ctx = lr->ctx, .status = lr->status,
						  .op = lr->op, .old = lr->old};
		atomic_store_explicit(&lr->state, V_LREQ_FREE, memory_order_relaxed);
		vl->free[vl->nfree++] = i;
		t++;
	}
	atomic_store_explicit(&vl->tail, t, memory_order_release);
	return k;
}

/* a lane that sees its endpoint closed moves the QP to ERROR, unless the
 * owning thread did or is tearing it down (qp_dead: keep off) */
static void lane_qp_error(struct v_lane *vl)
{
	struct v_ep *ve = to_vep(vl->l.ep);
	struct ibv_qp_attr attr = {.qp_state = IBV_QPS_ERR};

	if (atomic_load_explicit(&ve->qp_err, memory_order_relaxed))
		return;
	atomic_store_explicit(&vl->l.busy, 1, memory_order_seq_cst);
	if (!atomic_load_explicit(&ve->qp_dead, memory_order_seq_cst) &&
	    !atomic_exchange(&ve->qp_err, true))
		(void)ibv_modify_qp(ve->qp, &attr, IBV_QP_STATE);
	fm__lane_leave(&vl->l);
}

int fm__verbs_lane_poll(struct fm_lane *l, struct fm_completion *out, int n)
{
	struct v_lane *vl = to_vl(l);
	struct v_ep *ve = to_vep(l->ep);
	int k = lane_pop(vl, out, n);

	if (k == n)
		return k;
	if (atomic_load_explicit(&ve->qp_gone, memory_order_acquire)) {
		pthread_mutex_lock(&ve->drain);
		__lane_flush(ve, vl);
		pthread_mutex_unlock(&ve->drain);
	} else {
		bool took = false;

		if (!fm__ep_is_up(l->ep))
			lane_qp_error(vl);
		if (vl->epfd >= 0) { /* watched: the loop sleeps on epfd */
			eventfd_t v;

			(void)eventfd_read(vl->efd, &v);
			took = lane_take_events(ve);
		}
		(void)fm__verbs_drain(ve, took, false);
	}
	return k + lane_pop(vl, out + k, n - k);
}

void fm__verbs_lane_sleep(struct fm_lane *l, int timeout_ms)
{
	struct v_lane *vl = to_vl(l);
	struct v_ep *ve = to_vep(l->ep);
	struct pollfd pfd[2] = {{.fd = ve->cc->fd, .events = POLLIN},
				{.fd = vl->efd, .events = POLLIN}};

	if (vl->efd < 0 || atomic_load_explicit(&ve->qp_gone, memory_order_acquire))
		return;
	/* say so, arm, look once more, then sleep (the drainers' side:
	 * fm__verbs_lane_wake) */
	atomic_store_explicit(&vl->waiting, 1, memory_order_seq_cst);
	ibv_req_notify_cq(ve->cq, 0);
	(void)fm__verbs_drain(ve, false, false);
	if (atomic_load_explicit(&vl->head, memory_order_seq_cst) ==
	    atomic_load_explicit(&vl->tail, memory_order_relaxed))
		(void)poll(pfd, 2, timeout_ms);
	atomic_store_explicit(&vl->waiting, 0, memory_order_relaxed);
	/* took an event: ack, re-arm, then drain for sure -- a completion
	 * that came before the re-arm raises no new event, and a drainer
	 * holding the lock may have looked before it came: skipping would
	 * strand it (and any sleeper it is for) */
	if ((pfd[0].revents & POLLIN) && lane_take_events(ve))
		(void)fm__verbs_drain(ve, true, false);
	if (pfd[1].revents & POLLIN) {
		eventfd_t v;

		(void)eventfd_read(vl->efd, &v);
	}
}

/*
 * Delete: completions not polled yet are dropped; operations still in
 * flight are waited for (they reference the lane's memory) up to
 * op_timeout_ms, then the endpoint is failed so they flush, and waited for
 * once more; if even that runs out, the lane is retired: freed with its
 * endpoint.  Once qp_gone nothing can reference the lane.
 */
bool fm__verbs_lane_retire(struct fm_lane *l)
{
	struct v_ep *ve = to_vep(l->ep);
	int timeout = l->ep->t->cfg.op_timeout_ms;
	uint64_t deadline = fm__deadline(timeout);
	bool failed = false;

	while (l->outstanding) {
		struct fm_completion c[16];

		if (fm_lane_poll(l, c, 16) > 0)
			continue;
		if (atomic_load_explicit(&ve->qp_gone, memory_order_acquire))
			continue; /* the next poll completes the rest */
		if (fm__remaining_ms(deadline) == 0) {
			if (failed)
				return false;
			fm__ep_fail(l->ep, -ETIMEDOUT, "a lane was deleted with %u operations "
				    "that did not complete in %d ms", l->outstanding, timeout);
			lane_qp_error(to_vl(l));
			failed = true;
			deadline = fm__deadline(timeout);
		}
		sched_yield();
	}
	return true;
}
