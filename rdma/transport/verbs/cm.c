/* cm.c -- the verbs provider's connection manager (librdmacm): addresses,
 * CM events, connect (active side), listen and accept (passive side), the
 * loopback endpoint.  Our connection private data travels in the CM's
 * private data (transport_priv.h).
 *
 * The loopback endpoint is a real RC connection from the owner to its own
 * listener: the owner's atomics then run through the same HCA as the
 * clients', which is what makes them atomic with respect to each other.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <infiniband/verbs.h>
#include <rdma/rdma_cma.h>

#include "verbs_priv.h"

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
	ve = fm__verbs_ep_alloc();
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
	if (fm__verbs_set_nonblock(ve->ch->fd) ||
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
	ret = fm__verbs_ep_resources(ve, vt);
	if (ret)
		goto out_free;
	fm__conn_priv_encode(priv, pbuf);
	/* READs and atomics in flight at once: as many as the device takes
	 * (the CM's fields are 8 bits); the listener answers with the least of
	 * this and its own max_qp_rd_atom */
	ve->initiator_depth = min_u8(vt->attr.orig_attr.max_qp_init_rd_atom, 255);
	ve->responder_resources = min_u8(vt->attr.orig_attr.max_qp_rd_atom, 255);
	conn_param(&cp, pbuf, vt, ve->initiator_depth, ve->responder_resources);
	if (rdma_connect(ve->id, &cp)) {
		ret = fm_err(-errno, "rdma_connect(%s): %s", addr, strerror(errno));
		goto out_free;
	}
	*out = ve;
	return 0;

out_free:
	fm__verbs_ep_free(ve);
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
	/* librdmacm brought our QP up with the CM's default access (READ,
	 * WRITE, ATOMIC); nobody has any business in a client's memory */
	ret = fm__verbs_qp_access(ve, 0);
	if (ret)
		return fm_err(ret, "connect: ibv_modify_qp(no remote access): %s", strerror(-ret));
	ve->ep.state = FM_EP_UP;
	return 0;
}

int fm__verbs_connect(struct fm_transport *t, const char *addr, const struct fm_conn_priv *priv,
		      int timeout_ms, struct fm_ep **out)
{
	uint64_t deadline = fm__deadline(timeout_ms);
	struct v_ep *ve;
	int ret = v_connect_start(to_vt(t), addr, priv, timeout_ms, &ve);

	if (ret)
		return ret;
	ret = v_connect_finish(ve, fm__remaining_ms(deadline));
	if (ret) {
		fm__verbs_ep_free(ve);
		return ret;
	}
	*out = &ve->ep;
	return 0;
}

/* ------------------------------------------------------------ listener */

int fm__verbs_listen(struct fm_transport *t, const char *addr, struct fm_listener **out)
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
	if (fm__verbs_set_nonblock(vl->ch->fd) ||
	    rdma_create_id(vl->ch, &vl->id, vl, RDMA_PS_TCP)) {
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

void fm__verbs_listener_delete(struct fm_listener *l)
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

int fm__verbs_listener_fd(const struct fm_listener *l)
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

/*
 * v_qp_up_closed -- the passive side brings its QP to RTS itself, with NO
 * remote access, before the REP tells the peer our QP number.  (rdma_accept
 * would do the same transitions but with the kernel CM's default access --
 * REMOTE_READ | WRITE | ATOMIC for a QP with responder resources -- so the
 * peer could READ and CAS our regions before it authenticated.)  The
 * attributes are rdma_init_qp_attr's, as librdmacm uses them, with
 * qp_access_flags 0; fm_ep_grant opens access later.
 */
static int v_qp_up_closed(struct v_ep *ve, uint8_t responder, uint8_t initiator)
{
	struct ibv_qp *qp = ve->id->qp;
	struct ibv_port_attr pa;
	struct ibv_qp_attr a;
	int mask, ret;

	memset(&a, 0, sizeof(a));
	a.qp_state = IBV_QPS_INIT;
	if (rdma_init_qp_attr(ve->id, &a, &mask))
		return fm_err(-errno, "rdma_init_qp_attr(INIT): %s", strerror(errno));
	a.qp_access_flags = 0;
	mask |= IBV_QP_ACCESS_FLAGS;
	if ((ret = ibv_modify_qp(qp, &a, mask)))
		return fm_err(-ret, "ibv_modify_qp(INIT, no access): %s", strerror(ret));
	memset(&a, 0, sizeof(a));
	a.qp_state = IBV_QPS_RTR;
	if (rdma_init_qp_attr(ve->id, &a, &mask))
		return fm_err(-errno, "rdma_init_qp_attr(RTR): %s", strerror(errno));
	/* as librdmacm: the kernel's RoCE-only mask bits 21-24 confuse IB */
	if (ibv_query_port(ve->id->verbs, ve->id->port_num, &pa) == 0 &&
	    pa.link_layer == IBV_LINK_LAYER_INFINIBAND)
		mask &= ~0xe00000;
	a.max_dest_rd_atomic = responder;
	a.qp_access_flags = 0;
	if ((ret = ibv_modify_qp(qp, &a, mask)))
		return fm_err(-ret, "ibv_modify_qp(RTR): %s", strerror(ret));
	memset(&a, 0, sizeof(a));
	a.qp_state = IBV_QPS_RTS;
	if (rdma_init_qp_attr(ve->id, &a, &mask))
		return fm_err(-errno, "rdma_init_qp_attr(RTS): %s", strerror(errno));
	a.max_rd_atomic = initiator;
	a.qp_access_flags = 0;
	if ((ret = ibv_modify_qp(qp, &a, mask)))
		return fm_err(-ret, "ibv_modify_qp(RTS): %s", strerror(ret));
	return 0;
}

/* passive side, part 1: migrate the request's id to a new channel, create
 * resources, bring the QP up closed, accept. */
static int v_accept_start(struct v_listener *vl, struct v_request *rq, struct v_ep **out)
{
	struct v_transport *vt = to_vt(vl->l.t);
	struct rdma_conn_param cp;
	struct fm_conn_priv mine;
	uint8_t pbuf[FM_CONN_PRIV_SIZE];
	struct rdma_cm_id *id = rq->id;
	struct v_ep *ve;
	int ret;

	ve = fm__verbs_ep_alloc();
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
	ret = fm__verbs_ep_resources(ve, vt);
	if (ret)
		goto out_free;
	fm__conn_priv_local(&vt->t, NULL, 0, &mine);
	fm__conn_priv_encode(&mine, pbuf);
	/* we answer the peer's reads/atomics with up to its initiator depth */
	ve->responder_resources = min_u8(vt->attr.orig_attr.max_qp_rd_atom, rq->initiator);
	ve->initiator_depth = min_u8(vt->attr.orig_attr.max_qp_init_rd_atom, rq->responder);
	conn_param(&cp, pbuf, vt, ve->initiator_depth, ve->responder_resources);
	ret = v_qp_up_closed(ve, ve->responder_resources, ve->initiator_depth);
	if (ret)
		goto out_free;
	/* librdmacm's "application manages the QP" mode: with id->qp NULL,
	 * rdma_accept only sends the REP (qp_num from the conn param) and
	 * leaves our QP as it is */
	{
		struct ibv_qp *qp = id->qp;
		int r;

		cp.qp_num = qp->qp_num;
		cp.srq = 0;
		id->qp = NULL;
		r = rdma_accept(id, &cp);
		id->qp = qp;
		if (r) {
			ret = fm_err(-errno, "rdma_accept: %s", strerror(errno));
			goto out_free;
		}
	}
	ve->ep.passive = true;
	*out = ve;
	return 0;

out_reject:
	rdma_reject(id, NULL, 0);
	if (ve->id == NULL)
		rdma_destroy_id(id);
	fm__verbs_ep_free(ve);
	return ret;
out_free:
	rdma_reject(id, NULL, 0); /* the client hears "refused", not silence */
	fm__verbs_ep_free(ve);
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

int fm__verbs_accept(struct fm_listener *l, int timeout_ms, struct fm_ep **out)
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
		fm__verbs_ep_free(ve);
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
int fm__verbs_loopback(struct fm_listener *l, struct fm_ep **out)
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
	/* our own atomics land on the hidden passive side: always granted */
	ret = fm__verbs_grant(&pas->ep);
	if (ret)
		goto out_pas;
	act->loop_peer = pas;
	*out = &act->ep;
	return 0;

out_pas:
	fm__verbs_ep_free(pas);
out_act:
	set_back(vl, set_aside, nset);
	fm__verbs_ep_free(act);
	return ret;
}
