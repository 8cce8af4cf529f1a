/* verbs.c -- the RDMA provider: librdmacm for addressing and connection,
 * RC queue pairs, one CQ and one completion channel per endpoint.
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
 *   events a per-endpoint rdma_cm event channel (the accepted id is migrated
 *          to it) and a completion channel, both non-blocking, both in the
 *          endpoint's epoll fd (fm_ep_fd).  Event mode: ack the CQ events,
 *          ibv_req_notify_cq, THEN poll, so no completion is missed.
 *
 * Atomic results: rxe writes them in host byte order (measured; see
 * SOFT-ROCE-FACTS.md), and so do mlx5 devices; we return the scratch word
 * as is.
 *
 * The loopback endpoint is a real RC connection from the owner to its own
 * listener: the owner's atomics then run through the same HCA as the
 * clients', which is what makes them atomic with respect to each other.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include <infiniband/verbs.h>
#include <rdma/rdma_cma.h>

#include "transport_priv.h"

/* device_cap_flags_ex bits (kernel enum ib_uverbs_device_cap_flags); not
 * named by rdma-core 44's verbs.h */
#define FM_DEV_FLUSH_GLOBAL (1ull << 38)
#define FM_DEV_FLUSH_PERSISTENT (1ull << 39)
#define FM_DEV_ATOMIC_WRITE (1ull << 40)

#define V_POLL_BATCH 16
#define V_CM_CHECK_EVERY 256 /* busy mode: look at the CM channel this often */

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

static struct v_transport *to_vt(struct fm_transport *t)
{
	return container_of(t, struct v_transport, t);
}

static struct v_ep *to_vep(struct fm_ep *ep)
{
	return container_of(ep, struct v_ep, ep);
}

static int set_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);

	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
		return -errno;
	return 0;
}

/* ------------------------------------------------------------ transport */

static int v_transport_init(struct fm_transport **out, const struct fm_transport_cfg *cfg)
{
	struct v_transport *vt;
	int n = 0, i, ret;

	vt = calloc(1, sizeof(*vt));
	if (vt == NULL)
		return fm_err(-ENOMEM, "verbs transport");
	vt->devs = rdma_get_devices(&n);
	if (vt->devs == NULL || n == 0) {
		ret = fm_err(-ENODEV, "no RDMA device: rdma_get_devices found none (no "
				      "/dev/infiniband? load rdma_rxe and add a link)");
		goto out_free;
	}
	for (i = 0; i < n; i++) {
		const char *name = ibv_get_device_name(vt->devs[i]->device);

		if (cfg->device == NULL || strcmp(cfg->device, name) == 0) {
			vt->ctx = vt->devs[i];
			break;
		}
	}
	if (vt->ctx == NULL) {
		ret = fm_err(-ENODEV, "no RDMA device: \"%s\" not among the %d present",
			     cfg->device, n);
		goto out_devs;
	}
	snprintf(vt->t.device, sizeof(vt->t.device), "%s", ibv_get_device_name(vt->ctx->device));
	if (ibv_query_device_ex(vt->ctx, NULL, &vt->attr)) {
		ret = fm_err(-ENODEV, "ibv_query_device_ex(%s) failed", vt->t.device);
		goto out_devs;
	}
	vt->pd = ibv_alloc_pd(vt->ctx);
	if (vt->pd == NULL) {
		ret = fm_err(errno ? -errno : -ENOMEM, "ibv_alloc_pd(%s): %s", vt->t.device,
			     strerror(errno));
		goto out_devs;
	}

	vt->t.caps.flags = FM_CAP_EVENT_FD;
	if (vt->attr.orig_attr.atomic_cap == IBV_ATOMIC_HCA)
		vt->t.caps.flags |= FM_CAP_ATOMIC;
	else if (vt->attr.orig_attr.atomic_cap == IBV_ATOMIC_GLOB)
		vt->t.caps.flags |= FM_CAP_ATOMIC | FM_CAP_ATOMIC_GLOB;
	if (vt->attr.device_cap_flags_ex & FM_DEV_ATOMIC_WRITE)
		vt->t.caps.flags |= FM_CAP_ATOMIC_WRITE;
	if (vt->attr.device_cap_flags_ex & (FM_DEV_FLUSH_GLOBAL | FM_DEV_FLUSH_PERSISTENT))
		vt->t.caps.flags |= FM_CAP_FLUSH;
#ifdef FM_HAVE_IBV_WR_FLUSH
	if (vt->attr.device_cap_flags_ex & FM_DEV_FLUSH_PERSISTENT)
		vt->t.caps.flags |= FM_CAP_PERSIST;
#endif
	vt->t.caps.max_msg_size = cfg->msg_size;
	snprintf(vt->t.caps.provider, sizeof(vt->t.caps.provider), "verbs");
	snprintf(vt->t.caps.device, sizeof(vt->t.caps.device), "%s", vt->t.device);
	vt->t.caps.max_region_size = vt->attr.orig_attr.max_mr_size;
	*out = &vt->t;
	return 0;

out_devs:
	rdma_free_devices(vt->devs);
out_free:
	free(vt);
	return ret;
}

static void v_transport_fini(struct fm_transport *t)
{
	struct v_transport *vt = to_vt(t);

	ibv_dealloc_pd(vt->pd);
	rdma_free_devices(vt->devs);
	free(vt);
}

/* -------------------------------------------------------------- regions */

/* least access: the HCA writes LOCAL regions (READ destinations) and the
 * words of ATOMIC ones (verbs demands LOCAL_WRITE with REMOTE_ATOMIC);
 * a REMOTE_READ-only region is never written by the HCA */
static int v_access(unsigned access)
{
	int a = 0;

	if (access == FM_ACCESS_LOCAL)
		a |= IBV_ACCESS_LOCAL_WRITE;
	if (access & FM_ACCESS_REMOTE_READ)
		a |= IBV_ACCESS_REMOTE_READ;
	if (access & FM_ACCESS_REMOTE_ATOMIC)
		a |= IBV_ACCESS_REMOTE_ATOMIC | IBV_ACCESS_LOCAL_WRITE;
	return a;
}

static int v_region_reg_common(struct fm_transport *t, void *addr, size_t len, unsigned access,
			       bool owned, struct fm_region **out)
{
	struct v_transport *vt = to_vt(t);
	struct v_region *vr = calloc(1, sizeof(*vr));

	if (vr == NULL)
		return fm_err(-ENOMEM, "region");
	vr->mr = ibv_reg_mr(vt->pd, addr, len, v_access(access));
	if (vr->mr == NULL) {
		int e = errno ? errno : ENOMEM;
		free(vr);
		return fm_err(-e, "ibv_reg_mr(%zu bytes, access 0x%x): %s%s", len, v_access(access),
			      strerror(e),
			      e == EOPNOTSUPP ? " (fsdax memory cannot be registered)" : "");
	}
	vr->r.t = t;
	vr->r.ptr = addr;
	vr->r.len = len;
	vr->r.access = access;
	vr->r.key = vr->mr->rkey;
	vr->r.addr = (uint64_t)(uintptr_t)addr;
	vr->r.owned = owned;
	*out = &vr->r;
	return 0;
}

static int v_region_new(struct fm_transport *t, size_t len, unsigned access,
			struct fm_region **out)
{
	size_t alen = (len + 4095) & ~(size_t)4095;
	void *p;
	int ret;

	if (posix_memalign(&p, 4096, alen))
		return fm_err(-ENOMEM, "region of %zu bytes", len);
	memset(p, 0, alen);
	ret = v_region_reg_common(t, p, len, access, true, out);
	if (ret)
		free(p);
	return ret;
}

static int v_region_reg(struct fm_transport *t, void *addr, size_t len, unsigned access,
			struct fm_region **out)
{
	return v_region_reg_common(t, addr, len, access, false, out);
}

static void v_region_delete(struct fm_region *r)
{
	struct v_region *vr = container_of(r, struct v_region, r);

	ibv_dereg_mr(vr->mr);
	if (r->owned)
		free(r->ptr);
	free(vr);
}

/* ------------------------------------------------------------ addresses */

static int v_getaddr(const char *addr, bool passive, struct sockaddr_storage *ss)
{
	char host[128], *colon;
	const char *port;
	struct rdma_addrinfo hints = {0}, *res = NULL;
	int ret;

	if (strlen(addr) >= sizeof(host))
		return fm_err(-EINVAL, "address \"%s\" too long", addr);
	strcpy(host, addr);
	colon = strrchr(host, ':');
	if (colon == NULL)
		return fm_err(-EINVAL, "address \"%s\": want IP:PORT", addr);
	*colon = '\0';
	port = colon + 1;
	if (host[0] == '[') { /* [v6]:port */
		memmove(host, host + 1, strlen(host));
		host[strcspn(host, "]")] = '\0';
	}
	hints.ai_port_space = RDMA_PS_TCP;
	if (passive)
		hints.ai_flags = RAI_PASSIVE;
	ret = rdma_getaddrinfo(host[0] ? host : NULL, port, &hints, &res);
	if (ret || res == NULL)
		return fm_err(-EINVAL, "address \"%s\": %s", addr,
			      ret ? gai_strerror(ret) : "no result");
	memset(ss, 0, sizeof(*ss));
	if (passive && res->ai_src_len <= sizeof(*ss))
		memcpy(ss, res->ai_src_addr, res->ai_src_len);
	else if (!passive && res->ai_dst_len <= sizeof(*ss))
		memcpy(ss, res->ai_dst_addr, res->ai_dst_len);
	rdma_freeaddrinfo(res);
	return 0;
}

/* wait for the next CM event on `ch` (non-blocking fd) */
static int cm_wait(struct rdma_event_channel *ch, int timeout_ms, struct rdma_cm_event **ev)
{
	struct pollfd pfd = {.fd = ch->fd, .events = POLLIN};
	uint64_t deadline = fm__deadline(timeout_ms);

	for (;;) {
		int r;

		if (rdma_get_cm_event(ch, ev) == 0)
			return 0;
		if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
			return -errno;
		r = poll(&pfd, 1, fm__remaining_ms(deadline));
		if (r == 0)
			return -ETIMEDOUT;
		if (r < 0 && errno != EINTR)
			return -errno;
	}
}

/* wait for event `want` on the id; anything else ends the wait with an
 * errno that tells what happened.  *priv (optional) gets the private data. */
static int cm_expect(struct rdma_event_channel *ch, enum rdma_cm_event_type want, int timeout_ms,
		     struct fm_conn_priv *priv, const char *what)
{
	struct rdma_cm_event *ev;
	int ret = cm_wait(ch, timeout_ms, &ev), st;
	enum rdma_cm_event_type type;

	if (ret)
		return fm_err(ret, "%s: %s", what, ret == -ETIMEDOUT ? "timed out" : strerror(-ret));
	type = ev->event;
	st = ev->status;
	if (type == want) {
		ret = 0;
		if (priv)
			ret = fm__conn_priv_decode(ev->param.conn.private_data,
						   ev->param.conn.private_data_len, priv);
		rdma_ack_cm_event(ev);
		return ret;
	}
	rdma_ack_cm_event(ev);
	switch (type) {
	case RDMA_CM_EVENT_REJECTED:
		return fm_err(-ECONNREFUSED, "%s: rejected (status %d: no listener or refused)",
			      what, st);
	case RDMA_CM_EVENT_ADDR_ERROR:
		return fm_err(-EHOSTUNREACH, "%s: address resolution failed (%d)", what, st);
	case RDMA_CM_EVENT_ROUTE_ERROR:
		return fm_err(-EHOSTUNREACH, "%s: route resolution failed (%d)", what, st);
	case RDMA_CM_EVENT_UNREACHABLE:
		return fm_err(-ETIMEDOUT, "%s: peer unreachable (%d)", what, st);
	case RDMA_CM_EVENT_CONNECT_ERROR:
		return fm_err(-ECONNABORTED, "%s: connect error (%d)", what, st);
	case RDMA_CM_EVENT_DISCONNECTED:
		return fm_err(-ECONNABORTED, "%s: disconnected during setup", what);
	default:
		return fm_err(-EPROTO, "%s: unexpected %s", what, rdma_event_str(type));
	}
}

/* ------------------------------------------------------------ endpoints */

static void v_ep_free(struct v_ep *ve)
{
	if (ve->loop_peer) {
		struct v_ep *p = ve->loop_peer;

		ve->loop_peer = NULL;
		if (p->ep.state == FM_EP_UP && p->id)
			rdma_disconnect(p->id);
		v_ep_free(p);
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

static struct v_ep *v_ep_alloc(void)
{
	struct v_ep *ve = calloc(1, sizeof(*ve));

	if (ve)
		ve->ep.event_fd = -1;
	return ve;
}

static int v_post_recv(struct v_ep *ve, uint32_t slot)
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

/*
 * v_ep_resources -- CQ, QP, message pool, receives posted, epoll set, on
 * the id (already on ve->ch).  After fm__ep_init.
 */
static int v_ep_resources(struct v_ep *ve, struct v_transport *vt)
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
	if ((ret = set_nonblock(ve->cc->fd)) || (ret = set_nonblock(ve->ch->fd)))
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
		ret = v_post_recv(ve, i);
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

static void conn_param(struct rdma_conn_param *cp, const uint8_t *priv, struct v_transport *vt,
		       uint8_t initiator, uint8_t responder)
{
	memset(cp, 0, sizeof(*cp));
	cp->private_data = priv;
	cp->private_data_len = FM_CONN_PRIV_SIZE;
	cp->initiator_depth = initiator;
	cp->responder_resources = responder;
	cp->retry_count = 7;
	cp->rnr_retry_count = 7;
	(void)vt;
}

static uint8_t min_u8(int a, int b)
{
	int m = a < b ? a : b;
	return (uint8_t)(m < 0 ? 0 : m > 255 ? 255 : m);
}

/* active side, part 1: resolve, create resources, send the request */
static int v_connect_start(struct v_transport *vt, const char *addr,
			   const struct fm_conn_priv *priv, int timeout_ms, struct v_ep **out)
{
	struct sockaddr_storage dst;
	struct rdma_conn_param cp;
	uint8_t pbuf[FM_CONN_PRIV_SIZE];
	uint64_t deadline = fm__deadline(timeout_ms);
	struct v_ep *ve;
	int ret, left;

	ret = v_getaddr(addr, false, &dst);
	if (ret)
		return ret;
	ve = v_ep_alloc();
	if (ve == NULL)
		return fm_err(-ENOMEM, "endpoint");
	ret = fm__ep_init(&ve->ep, &vt->t, NULL, vt->t.cfg.credits, FM_CTRL_CREDITS);
	if (ret)
		goto out_free;
	ve->ch = rdma_create_event_channel();
	if (ve->ch == NULL) {
		ret = fm_err(-errno, "rdma_create_event_channel: %s", strerror(errno));
		goto out_free;
	}
	if (set_nonblock(ve->ch->fd) ||
	    rdma_create_id(ve->ch, &ve->id, ve, RDMA_PS_TCP)) {
		ret = fm_err(-errno, "rdma_create_id: %s", strerror(errno));
		goto out_free;
	}
	left = fm__remaining_ms(deadline);
	if (rdma_resolve_addr(ve->id, NULL, (struct sockaddr *)&dst, left < 0 ? 2000 : left ? left : 1)) {
		ret = fm_err(errno == ENODEV ? -ENODEV : -EHOSTUNREACH,
			     "rdma_resolve_addr(%s): %s", addr, strerror(errno));
		goto out_free;
	}
	ret = cm_expect(ve->ch, RDMA_CM_EVENT_ADDR_RESOLVED, fm__remaining_ms(deadline), NULL,
			"resolve address");
	if (ret)
		goto out_free;
	left = fm__remaining_ms(deadline);
	if (rdma_resolve_route(ve->id, left < 0 ? 2000 : left ? left : 1)) {
		ret = fm_err(-EHOSTUNREACH, "rdma_resolve_route(%s): %s", addr, strerror(errno));
		goto out_free;
	}
	ret = cm_expect(ve->ch, RDMA_CM_EVENT_ROUTE_RESOLVED, fm__remaining_ms(deadline), NULL,
			"resolve route");
	if (ret)
		goto out_free;
	ret = v_ep_resources(ve, vt);
	if (ret)
		goto out_free;
	fm__conn_priv_encode(priv, pbuf);
	ve->initiator_depth = min_u8(vt->attr.orig_attr.max_qp_init_rd_atom, 8);
	ve->responder_resources = min_u8(vt->attr.orig_attr.max_qp_rd_atom, 8);
	conn_param(&cp, pbuf, vt, ve->initiator_depth, ve->responder_resources);
	if (rdma_connect(ve->id, &cp)) {
		ret = fm_err(-errno, "rdma_connect(%s): %s", addr, strerror(errno));
		goto out_free;
	}
	*out = ve;
	return 0;

out_free:
	v_ep_free(ve);
	return ret;
}

/* active side, part 2: wait for ESTABLISHED (librdmacm sends the RTU
 * while handling the reply, inside rdma_get_cm_event) */
static int v_connect_finish(struct v_ep *ve, int timeout_ms)
{
	struct fm_conn_priv peer;
	int ret = cm_expect(ve->ch, RDMA_CM_EVENT_ESTABLISHED, timeout_ms, &peer, "connect");

	if (ret)
		return ret;
	fm__ep_set_peer(&ve->ep, &peer);
	ve->ep.hello_len = 0; /* the owner sends none */
	ve->ep.state = FM_EP_UP;
	return 0;
}

static int v_connect(struct fm_transport *t, const char *addr, const struct fm_conn_priv *priv,
		     int timeout_ms, struct fm_ep **out)
{
	uint64_t deadline = fm__deadline(timeout_ms);
	struct v_ep *ve;
	int ret = v_connect_start(to_vt(t), addr, priv, timeout_ms, &ve);

	if (ret)
		return ret;
	ret = v_connect_finish(ve, fm__remaining_ms(deadline));
	if (ret) {
		v_ep_free(ve);
		return ret;
	}
	*out = &ve->ep;
	return 0;
}

/* ------------------------------------------------------------ listener */

static int v_listen(struct fm_transport *t, const char *addr, struct fm_listener **out)
{
	struct v_transport *vt = to_vt(t);
	struct v_listener *vl;
	int ret;

	vl = calloc(1, sizeof(*vl));
	if (vl == NULL)
		return fm_err(-ENOMEM, "listener");
	vl->l.t = t;
	ret = v_getaddr(addr, true, &vl->addr);
	if (ret)
		goto out_free;
	vl->ch = rdma_create_event_channel();
	if (vl->ch == NULL) {
		ret = fm_err(-errno, "rdma_create_event_channel: %s", strerror(errno));
		goto out_free;
	}
	if (set_nonblock(vl->ch->fd) || rdma_create_id(vl->ch, &vl->id, vl, RDMA_PS_TCP)) {
		ret = fm_err(-errno, "rdma_create_id: %s", strerror(errno));
		goto out_ch;
	}
	if (rdma_bind_addr(vl->id, (struct sockaddr *)&vl->addr)) {
		ret = fm_err(-errno, "rdma_bind_addr(%s): %s", addr, strerror(errno));
		goto out_id;
	}
	if (vl->id->verbs && vl->id->verbs != vt->ctx) {
		ret = fm_err(-ENODEV, "%s is on device %s, the transport opened %s", addr,
			     ibv_get_device_name(vl->id->verbs->device), t->device);
		goto out_id;
	}
	vl->specific = vl->id->verbs != NULL;
	if (rdma_listen(vl->id, 64)) {
		ret = fm_err(-errno, "rdma_listen(%s): %s", addr, strerror(errno));
		goto out_id;
	}
	*out = &vl->l;
	return 0;

out_id:
	rdma_destroy_id(vl->id);
out_ch:
	rdma_destroy_event_channel(vl->ch);
out_free:
	free(vl);
	return ret;
}

static void v_listener_delete(struct fm_listener *l)
{
	struct v_listener *vl = container_of(l, struct v_listener, l);

	while (vl->npending > 0) {
		struct rdma_cm_id *id = vl->pending[--vl->npending].id;
		rdma_reject(id, NULL, 0);
		rdma_destroy_id(id);
	}
	rdma_destroy_id(vl->id);
	rdma_destroy_event_channel(vl->ch);
	free(vl);
}

static int v_listener_fd(const struct fm_listener *l)
{
	return container_of(l, struct v_listener, l)->ch->fd;
}

/* next connection request: set-aside ones first, then the channel.
 * Requests without our handshake are rejected here. */
static int v_get_request(struct v_listener *vl, int timeout_ms, struct v_request *rq)
{
	uint64_t deadline = fm__deadline(timeout_ms);
	struct rdma_cm_event *ev;
	int ret;

	if (vl->npending) {
		*rq = vl->pending[0];
		memmove(&vl->pending[0], &vl->pending[1], sizeof(*rq) * (size_t)--vl->npending);
		return 0;
	}
	for (;;) {
		ret = cm_wait(vl->ch, fm__remaining_ms(deadline), &ev);
		if (ret)
			return fm_err(ret, "accept: %s",
				      ret == -ETIMEDOUT ? "no connection request" : strerror(-ret));
		if (ev->event != RDMA_CM_EVENT_CONNECT_REQUEST) {
			rdma_ack_cm_event(ev); /* stray event of a dead request */
			continue;
		}
		rq->id = ev->id;
		ret = fm__conn_priv_decode(ev->param.conn.private_data,
					   ev->param.conn.private_data_len, &rq->peer);
		rq->initiator = ev->param.conn.initiator_depth;
		rq->responder = ev->param.conn.responder_resources;
		rdma_ack_cm_event(ev);
		if (ret == 0)
			return 0;
		rdma_reject(rq->id, NULL, 0);
		rdma_destroy_id(rq->id);
		return ret;
	}
}

/* passive side, part 1: migrate the request's id to a new channel, create
 * resources, accept. */
static int v_accept_start(struct v_listener *vl, struct v_request *rq, struct v_ep **out)
{
	struct v_transport *vt = to_vt(vl->l.t);
	struct rdma_conn_param cp;
	struct fm_conn_priv mine;
	uint8_t pbuf[FM_CONN_PRIV_SIZE];
	struct rdma_cm_id *id = rq->id;
	struct v_ep *ve;
	int ret;

	ve = v_ep_alloc();
	if (ve == NULL) {
		rdma_reject(id, NULL, 0);
		rdma_destroy_id(id);
		return fm_err(-ENOMEM, "endpoint");
	}
	ret = fm__ep_init(&ve->ep, &vt->t, &rq->peer, vt->t.cfg.credits, FM_CTRL_CREDITS);
	if (ret)
		goto out_reject;
	ve->ch = rdma_create_event_channel();
	if (ve->ch == NULL || rdma_migrate_id(id, ve->ch)) {
		ret = fm_err(-errno, "migrate id: %s", strerror(errno));
		goto out_reject;
	}
	ve->id = id;
	id->context = ve;
	ret = v_ep_resources(ve, vt);
	if (ret)
		goto out_free;
	fm__conn_priv_local(&vt->t, NULL, 0, &mine);
	fm__conn_priv_encode(&mine, pbuf);
	/* we answer the peer's reads/atomics with up to its initiator depth */
	ve->responder_resources =
		min_u8(min_u8(vt->attr.orig_attr.max_qp_rd_atom, 8), rq->initiator);
	ve->initiator_depth =
		min_u8(min_u8(vt->attr.orig_attr.max_qp_init_rd_atom, 8), rq->responder);
	conn_param(&cp, pbuf, vt, ve->initiator_depth, ve->responder_resources);
	if (rdma_accept(id, &cp)) {
		ret = fm_err(-errno, "rdma_accept: %s", strerror(errno));
		goto out_free;
	}
	*out = ve;
	return 0;

out_reject:
	rdma_reject(id, NULL, 0);
	if (ve->id == NULL)
		rdma_destroy_id(id);
	v_ep_free(ve);
	return ret;
out_free:
	rdma_reject(id, NULL, 0); /* the client hears "refused", not silence */
	v_ep_free(ve);
	return ret;
}

static int v_accept_finish(struct v_ep *ve, int timeout_ms)
{
	int ret = cm_expect(ve->ch, RDMA_CM_EVENT_ESTABLISHED, timeout_ms, NULL, "accept");

	if (ret)
		return ret == -ECONNREFUSED ? -ECONNABORTED : ret;
	ve->ep.state = FM_EP_UP;
	return 0;
}

static int v_accept(struct fm_listener *l, int timeout_ms, struct fm_ep **out)
{
	struct v_listener *vl = container_of(l, struct v_listener, l);
	struct v_request rq;
	struct v_ep *ve;
	int ret = v_get_request(vl, timeout_ms, &rq);

	if (ret)
		return ret;
	ret = v_accept_start(vl, &rq, &ve);
	if (ret)
		return ret;
	ret = v_accept_finish(ve, l->t->cfg.op_timeout_ms);
	if (ret) {
		v_ep_free(ve);
		return ret;
	}
	*out = &ve->ep;
	return 0;
}

/* put requests set aside back, in arrival order, before those already
 * pending (they arrived later) */
static void set_back(struct v_listener *vl, const struct v_request *rq, int n)
{
	if (n == 0)
		return;
	memmove(&vl->pending[n], &vl->pending[0], sizeof(*rq) * (size_t)vl->npending);
	memcpy(&vl->pending[0], rq, sizeof(*rq) * (size_t)n);
	vl->npending += n;
}

/* the owner's connection to itself; both halves driven from this thread */
static int v_loopback(struct fm_listener *l, struct fm_ep **out)
{
	struct v_listener *vl = container_of(l, struct v_listener, l);
	struct v_transport *vt = to_vt(l->t);
	int tmo = l->t->cfg.op_timeout_ms;
	struct fm_conn_priv priv;
	struct v_ep *act = NULL, *pas = NULL;
	char addr[INET6_ADDRSTRLEN + 16], host[INET6_ADDRSTRLEN];
	struct sockaddr *sa = (struct sockaddr *)&vl->addr;
	uint16_t port = ntohs(rdma_get_src_port(vl->id));
	uint64_t deadline = fm__deadline(tmo);
	struct v_request rq, set_aside[V_PENDING_MAX];
	uint8_t hello[16];
	uint32_t nonce[2];
	int ret, nset = 0;

	if (!vl->specific)
		return fm_err(-EINVAL, "loopback needs a listener bound to one address");
	if (sa->sa_family == AF_INET)
		inet_ntop(AF_INET, &((struct sockaddr_in *)sa)->sin_addr, host, sizeof(host));
	else
		inet_ntop(AF_INET6, &((struct sockaddr_in6 *)sa)->sin6_addr, host, sizeof(host));
	snprintf(addr, sizeof(addr), sa->sa_family == AF_INET ? "%s:%u" : "[%s]:%u", host, port);
	/* a nonce in the hello tells our own request from the clients' ones
	 * that may be waiting on the same listener; those are set aside for
	 * fm_listener_accept */
	nonce[0] = fm__random_key();
	nonce[1] = fm__random_key();
	memcpy(hello, "loopback", 8);
	memcpy(hello + 8, nonce, sizeof(nonce));
	fm__conn_priv_local(&vt->t, hello, sizeof(hello), &priv);
	ret = v_connect_start(vt, addr, &priv, tmo, &act);
	if (ret)
		return ret;
	for (;;) {
		ret = v_get_request(vl, fm__remaining_ms(deadline), &rq);
		if (ret == -EPROTO)
			continue;
		if (ret)
			goto out_act;
		if (rq.peer.hello_len == sizeof(hello) &&
		    memcmp(rq.peer.hello, hello, sizeof(hello)) == 0)
			break;
		if (nset + vl->npending >= V_PENDING_MAX) {
			rdma_reject(rq.id, NULL, 0);
			rdma_destroy_id(rq.id);
			continue;
		}
		set_aside[nset++] = rq;
	}
	set_back(vl, set_aside, nset);
	nset = 0;
	ret = v_accept_start(vl, &rq, &pas);
	if (ret)
		goto out_act;
	ret = v_connect_finish(act, tmo);
	if (ret)
		goto out_pas;
	ret = v_accept_finish(pas, tmo);
	if (ret)
		goto out_pas;
	act->loop_peer = pas;
	*out = &act->ep;
	return 0;

out_pas:
	v_ep_free(pas);
out_act:
	set_back(vl, set_aside, nset);
	v_ep_free(act);
	return ret;
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

/* drain the CQ; returns completions seen */
static int v_poll_cq(struct v_ep *ve)
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
			v_poll_cq(ve); /* deliver what arrived before the DREQ */
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

static int v_progress(struct fm_ep *ep, int timeout_ms)
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
	n = v_poll_cq(ve);
	if (event || timeout_ms || ++ve->cm_countdown >= V_CM_CHECK_EVERY || ep->state != FM_EP_UP) {
		ve->cm_countdown = 0;
		if (ep->state == FM_EP_UP)
			v_check_cm(ve);
	}
	if (n || timeout_ms == 0 || !event || ep->state != FM_EP_UP)
		return 0;
	if (epoll_wait(ep->event_fd, evs, 2, timeout_ms) < 0 && errno != EINTR)
		return fm_err(-errno, "epoll_wait: %s", strerror(errno));
	return v_progress(ep, 0);
}

/* ----------------------------------------------------------- operations */

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

		v_progress(&ve->ep, 0);
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
			v_progress(&ve->ep, left < 0 || left > 100 ? 100 : left);
	}
	if (ve->op.status != IBV_WC_SUCCESS)
		return ve->ep.err ? ve->ep.err : -EIO;
	return 0;
}

static int v_read(struct fm_ep *ep, void *dst, struct fm_region *dst_r,
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

static int v_atomic(struct fm_ep *ep, bool cas, const struct fm_region_desc *rd, uint64_t off,
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

static int v_msg_post(struct fm_ep *ep, const void *buf, size_t len)
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

static void v_msg_repost(struct fm_ep *ep, uint32_t slot)
{
	struct v_ep *ve = to_vep(ep);
	int ret;

	if (ep->state != FM_EP_UP)
		return; /* the QP is going away: nothing to post to */
	ret = v_post_recv(ve, slot);
	if (ret)
		fm__ep_fail(ep, ret, "ibv_post_recv: %s", strerror(-ret));
}

static void v_ep_delete(struct fm_ep *ep)
{
	struct v_ep *ve = to_vep(ep);

	if (ve->id && ep->state != FM_EP_CLOSED)
		rdma_disconnect(ve->id);
	fm__ep_fail(ep, -ENOTCONN, "closed locally");
	v_ep_free(ve);
}

/*
 * v_fence -- no incoming RDMA of the peer can execute after this returns:
 *   1. rdma_disconnect (best effort: tells the peer, and moves the QP to
 *      ERROR itself on IB/RoCE);
 *   2. ibv_modify_qp(ERROR): an RC responder in ERROR executes no request;
 *   3. poll the CQ (flushed completions close the endpoint state; the CQ
 *      outlives the QP, so late ones are harmless);
 *   4. rdma_destroy_qp: the QP has no context left to execute in.  It is
 *      the destroy, not the poll, that the guarantee rests on.
 * Our regions' rkeys stay valid: they belong to the PD, and the other
 * clients' QPs keep using them.  A peer that reconnects gets a new QP.
 */
static int v_fence(struct fm_ep *ep, int timeout_ms)
{
	struct v_ep *ve = to_vep(ep);
	struct ibv_qp_attr attr = {.qp_state = IBV_QPS_ERR};
	int ret;

	(void)timeout_ms; /* nothing here waits on the network */
	if (ve->id == NULL || !ve->qp_created)
		return 0; /* no QP: nothing can land */
	if (ep->state == FM_EP_UP)
		(void)rdma_disconnect(ve->id);
	ret = ibv_modify_qp(ve->id->qp, &attr, IBV_QP_STATE);
	if (ret)
		return fm_err(-ret, "fence: ibv_modify_qp(ERROR): %s", strerror(ret));
	fm__ep_fail(ep, -ENOTCONN, "fenced: queue pair in ERROR");
	(void)v_poll_cq(ve);
	rdma_destroy_qp(ve->id);
	ve->qp_created = false;
	(void)v_poll_cq(ve); /* completions the destroy flushed, if any */
	return 0;
}

const struct fm_provider_ops fm__verbs_ops = {
	.name = "verbs",
	.transport_init = v_transport_init,
	.transport_fini = v_transport_fini,
	.region_new = v_region_new,
	.region_reg = v_region_reg,
	.region_delete = v_region_delete,
	.listen = v_listen,
	.listener_delete = v_listener_delete,
	.listener_fd = v_listener_fd,
	.accept = v_accept,
	.loopback = v_loopback,
	.connect = v_connect,
	.ep_delete = v_ep_delete,
	.fence = v_fence,
	.read = v_read,
	.atomic = v_atomic,
	.msg_post = v_msg_post,
	.msg_repost = v_msg_repost,
	.progress = v_progress,
};
