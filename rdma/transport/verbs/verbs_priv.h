/* verbs_priv.h -- the RDMA provider's structs and cross-file calls.
 *
 * The verbs provider: librdmacm for addressing and connection, RC queue
 * pairs, one CQ and one completion channel per endpoint.  One piece a file,
 * each with its design at the top:
 *   device.c  the device (transport object), regions (MRs), the ops table.
 *   cm.c      connection manager: addresses, listen, accept, connect, the
 *             loopback endpoint.
 *   qp.c      an endpoint's resources (QP, CQ, message pool), the CQ
 *             poller, progress, teardown.
 *   ops.c     one-sided operations, messages, the grant, the fence.
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

enum vreq_kind { VREQ_RECV, VREQ_SEND, VREQ_OP };

struct vreq {
	enum vreq_kind kind;
	uint32_t slot;
	bool done;
	enum ibv_wc_status status;
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

struct v_ep {
	struct fm_ep ep;
	struct rdma_event_channel *ch;
	struct rdma_cm_id *id;
	struct ibv_comp_channel *cc;
	struct ibv_cq *cq;
	unsigned cq_unacked;
	bool qp_created;
	struct ibv_mr *mr;
	uint8_t *pool;
	uint32_t slot_size, nrx, ntx;
	struct vreq *rx_reqs, *tx_reqs;
	uint32_t *tx_free, ntx_free;
	struct vreq op; /* the one synchronous one-sided operation */
	uint64_t *scratch;
	struct v_ep *loop_peer; /* loopback: the hidden passive side */
	unsigned cm_countdown;
	uint8_t initiator_depth, responder_resources;
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
/* fm__verbs_poll_cq -- drain the CQ; returns completions seen */
int fm__verbs_poll_cq(struct v_ep *ve);
/* qp.c: the provider ops of progress and teardown */
int fm__verbs_progress(struct fm_ep *ep, int timeout_ms);
void fm__verbs_ep_delete(struct fm_ep *ep);

/* ops.c: the provider ops of one-sided operations, messages, fence */
int fm__verbs_read(struct fm_ep *ep, void *dst, struct fm_region *dst_r,
		   const struct fm_region_desc *src, uint64_t src_off, size_t len);
int fm__verbs_atomic(struct fm_ep *ep, bool cas, const struct fm_region_desc *rd, uint64_t off,
		     uint64_t a, uint64_t b, uint64_t *old);
int fm__verbs_msg_post(struct fm_ep *ep, const void *buf, size_t len);
void fm__verbs_msg_repost(struct fm_ep *ep, uint32_t slot);
int fm__verbs_grant(struct fm_ep *ep);
int fm__verbs_fence(struct fm_ep *ep, unsigned flags);
/* fm__verbs_qp_access -- set the QP's remote access flags (RTS -> RTS);
 * 0 or a negative errno */
int fm__verbs_qp_access(struct v_ep *ve, int access);

#endif /* FM_VERBS_PRIV_H */
