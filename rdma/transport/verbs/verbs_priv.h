/* verbs_priv.h -- the RDMA provider's structs and cross-file calls.
 *
 * The verbs provider: librdmacm for addressing and connection, RC queue
 * pairs, one CQ and one completion channel per endpoint.  One piece a file,
 * each with its design at the top:
 *   device.c  the device (transport object), regions (MRs), the ops table.
 *   cm.c      connection manager: addresses, listen, accept, connect, the
 *             loopback endpoint.
 *   qp.c      an endpoint's resources (QP, CQ, message pool), the shared
 *             CQ's drain (any thread) and message completions (owning
 *             thread), progress, teardown.
 *   lane.c    lanes: one-sided READ/CAS/FAA posted by any thread, many in
 *             flight, completions routed to their lane by whoever drains.
 *   ops.c     messages, the grant, the fence.
 *
 * Remote access is a property of the QP: every QP is brought up with no
 * remote access flags (an accepted one before its REP leaves, cm.c), and
 * fm_ep_grant modifies an accepted QP to REMOTE_READ | REMOTE_ATOMIC.  An
 * RC responder refuses any READ or atomic on a QP without the flag (NAK
 * "invalid request": the requester's completion is REM_INV_REQ_ERR, which
 * the poller reports as a remote access error).
 */
#ifndef FM_VERBS_PRIV_H
#define FM_VERBS_PRIV_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include <infiniband/verbs.h>
#include <rdma/rdma_cma.h>

#include "transport_priv.h"

/* every work request's wr_id points at one of these (a lane's requests
 * embed it first) */
enum vreq_kind { VREQ_RECV, VREQ_SEND, VREQ_LANE };

struct vreq {
	enum vreq_kind kind;
	uint32_t slot;
};

/* a message completion a drainer took off the CQ for the owning thread */
struct v_msgc {
	struct vreq *rq;
	enum ibv_wc_status status;
	uint32_t byte_len;
};

/*
 * A lane's request, one per slot of the lane.  State machine:
 *   FREE    on the lane's free stack (lane thread)
 *   POSTED  ctx/op written, then state stored (release), then posted; the
 *           QP owns it
 *   DONE    a drainer (holding ve->drain) won POSTED -> DONE with a CAS,
 *           wrote status/old and pushed the slot on the lane's ring
 *           (release); or, once the QP is gone, the lane itself did
 *           (v_lane_flush, also under ve->drain).  The CAS makes a late
 *           completion of a request already finished harmless.
 *   FREE    again when the lane's thread polled it.
 */
enum { V_LREQ_FREE = 0, V_LREQ_POSTED, V_LREQ_DONE };

struct v_lane;

struct v_lreq {
	struct vreq r; /* kind VREQ_LANE, slot: index in the lane */
	struct v_lane *lane;
	_Atomic int state;
	void *ctx;
	enum fm_lane_op op;
	int status;
	uint64_t old;
};

struct v_lane {
	struct fm_lane l;
	struct ibv_mr *mr;        /* over results[] */
	uint64_t *results;        /* depth 8-byte slots: atomic results land here */
	struct v_lreq *reqs;      /* depth */
	uint32_t *free, nfree;    /* free request slots (lane thread) */
	uint32_t *ring, mask;     /* done slots, mask + 1 >= depth */
	_Alignas(64) _Atomic uint32_t head; /* pushed under ve->drain */
	_Alignas(64) _Atomic uint32_t tail; /* popped by the lane's thread */
	_Atomic int waiting;      /* event mode: asleep in lane_sleep */
	_Atomic int watched;      /* event mode: fm_lane_fd was asked for */
	int efd;                  /* event mode: a drainer wakes it; else -1 */
	int epfd;                 /* fm_lane_fd: cc->fd + efd; else -1 */
};

struct v_transport {
	struct fm_transport t;
	struct ibv_context **devs; /* rdma_get_devices(): the contexts rdma_cm uses */
	struct ibv_context *ctx;
	struct ibv_pd *pd;
	struct ibv_device_attr_ex attr;
};

struct v_region {
	struct fm_region r;
	struct ibv_mr *mr;
};

/* a connection request taken off the listener's channel, not yet accepted */
struct v_request {
	struct rdma_cm_id *id;
	struct fm_conn_priv peer;
	uint8_t initiator, responder;
};
#define V_PENDING_MAX 64

struct v_listener {
	struct fm_listener l;
	/* requests set aside while the loopback looked for its own */
	struct v_request pending[V_PENDING_MAX];
	int npending;
	struct rdma_event_channel *ch;
	struct rdma_cm_id *id;
	struct sockaddr_storage addr;
	bool specific; /* bound to one address (loopback possible) */
};

/*
 * A verbs endpoint.  Owning thread only, except (qp.c has the design):
 *   qp              posted to by lanes between fm__lane_enter/leave
 *   cq, cc          drained by any thread holding `drain`; events taken by
 *                   any sleeper; both live until fm__verbs_ep_final
 *   msgq head       pushed under `drain`; tail: owning thread
 *   qp_dead/err/gone, lane_slots   atomics, see qp.c
 */
struct v_ep {
	struct fm_ep ep;
	struct rdma_event_channel *ch;
	struct rdma_cm_id *id;
	struct ibv_qp *qp;      /* id->qp while qp_created */
	struct ibv_comp_channel *cc;
	struct ibv_cq *cq;
	bool qp_created;
	struct ibv_mr *mr;
	uint8_t *pool;
	uint32_t slot_size, nrx, ntx;
	struct vreq *rx_reqs, *tx_reqs;
	uint32_t *tx_free, ntx_free;
	struct v_ep *loop_peer; /* loopback: the hidden passive side */
	unsigned cm_countdown;
	uint8_t initiator_depth, responder_resources;

	/* the shared CQ (qp.c) */
	pthread_mutex_t drain;
	bool drain_init;
	struct v_msgc *msgq;    /* nrx + ntx entries */
	uint32_t msgq_cap;
	_Alignas(64) _Atomic uint32_t msgq_head;
	_Alignas(64) _Atomic uint32_t msgq_tail;
	_Atomic bool qp_dead;   /* set before the QP is destroyed: lanes keep off */
	_Atomic bool qp_err;    /* moved to ERROR (flushes everything) */
	_Atomic bool qp_gone;   /* destroyed AND the CQ drained after: no
				 * completion of a lane can come any more */
	int msg_efd;            /* event mode: wakes the owning thread (in
				 * ep.event_fd) when another thread routed
				 * something to it */
	_Atomic uint32_t lane_slots; /* send-queue slots left for lanes */
};

static inline struct v_transport *to_vt(struct fm_transport *t)
{
	return container_of(t, struct v_transport, t);
}

static inline struct v_ep *to_vep(struct fm_ep *ep)
{
	return container_of(ep, struct v_ep, ep);
}

/* cm.c: the provider ops of connection setup */
int fm__verbs_connect(struct fm_transport *t, const char *addr, const struct fm_conn_priv *priv,
		      int timeout_ms, struct fm_ep **out);
int fm__verbs_listen(struct fm_transport *t, const char *addr, struct fm_listener **out);
void fm__verbs_listener_delete(struct fm_listener *l);
int fm__verbs_listener_fd(const struct fm_listener *l);
int fm__verbs_accept(struct fm_listener *l, int timeout_ms, struct fm_ep **out);
int fm__verbs_loopback(struct fm_listener *l, struct fm_ep **out);

/* qp.c: endpoint resources and lifetime */
/* fm__verbs_set_nonblock -- O_NONBLOCK on fd; 0 or -errno */
int fm__verbs_set_nonblock(int fd);
void fm__verbs_ep_free(struct v_ep *ve);
struct v_ep *fm__verbs_ep_alloc(void);
/* fm__verbs_post_recv -- (re)post receive slot `slot`; 0 or -errno */
int fm__verbs_post_recv(struct v_ep *ve, uint32_t slot);
/*
 * fm__verbs_ep_resources -- CQ, QP, message pool, receives posted, epoll set, on
 * the id (already on ve->ch).  After fm__ep_init.
 */
int fm__verbs_ep_resources(struct v_ep *ve, struct v_transport *vt);
/* fm__verbs_drain -- take everything off the CQ, routing each completion
 * (lanes' rings, the message queue); wait: take the drain lock even if
 * another thread holds it, else skip when it does (-1); owner: called by
 * the owning thread's progress (it needs no wake-up).  Any thread. */
int fm__verbs_drain(struct v_ep *ve, bool wait, bool owner);
/* fm__verbs_msgq_take -- owning thread: act on the message completions
 * drained so far (fm__ep_rx, send slots back); returns how many */
int fm__verbs_msgq_take(struct v_ep *ve);
/* fm__verbs_qp_teardown -- owning thread, endpoint not UP: quiesce the
 * lanes, QP to ERROR, drain, destroy the QP, drain again, qp_gone */
void fm__verbs_qp_teardown(struct v_ep *ve);
/* fm__verbs_wc_status -- the errno a lane's completion carries for `st` */
int fm__verbs_wc_status(struct v_ep *ve, enum ibv_wc_status st);
/* qp.c: the provider ops of progress and teardown */
int fm__verbs_progress(struct fm_ep *ep, int timeout_ms);
void fm__verbs_reap(struct fm_ep *ep);
void fm__verbs_ep_delete(struct fm_ep *ep);
void fm__verbs_ep_final(struct fm_ep *ep);

/* lane.c: the provider ops of lanes; and for the drainer */
int fm__verbs_lane_new(struct fm_ep *ep, uint32_t depth, struct fm_lane **out);
bool fm__verbs_lane_retire(struct fm_lane *l);
void fm__verbs_lane_free(struct fm_lane *l);
int fm__verbs_post_read(struct fm_lane *l, void *dst, struct fm_region *dst_r,
			const struct fm_region_desc *src, uint64_t src_off, size_t len, void *ctx);
int fm__verbs_post_atomic(struct fm_lane *l, enum fm_lane_op op,
			  const struct fm_region_desc *rd, uint64_t off, uint64_t a, uint64_t b,
			  void *ctx);
int fm__verbs_lane_poll(struct fm_lane *l, struct fm_completion *out, int n);
void fm__verbs_lane_sleep(struct fm_lane *l, int timeout_ms);
int fm__verbs_lane_fd(struct fm_lane *l);
/* fm__verbs_lane_done -- caller holds ve->drain: the completion of `lr` */
void fm__verbs_lane_done(struct v_ep *ve, struct v_lreq *lr, enum ibv_wc_status st);
/* fm__verbs_lane_wake -- a drainer routed to this lane: wake it if asleep */
void fm__verbs_lane_wake(struct v_lane *vl);

/* ops.c: the provider ops of messages, fence */
int fm__verbs_msg_post(struct fm_ep *ep, const void *buf, size_t len);
void fm__verbs_msg_repost(struct fm_ep *ep, uint32_t slot);
int fm__verbs_grant(struct fm_ep *ep);
int fm__verbs_fence(struct fm_ep *ep, unsigned flags);
/* fm__verbs_qp_access -- set the QP's remote access flags (RTS -> RTS);
 * 0 or a negative errno */
int fm__verbs_qp_access(struct v_ep *ve, int access);

#endif /* FM_VERBS_PRIV_H */
