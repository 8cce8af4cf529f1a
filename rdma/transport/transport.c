/* transport.c -- provider-independent half of the transport: argument and
 * descriptor checks, endpoint state, the credit protocol, blocking waits.
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
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "flashmeta/le.h"
#include "transport_priv.h"

/* ------------------------------------------------------------ helpers */

uint64_t fm__now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

uint64_t fm__deadline(int timeout_ms)
{
	if (timeout_ms < 0)
		return UINT64_MAX;
	return fm__now_ms() + (uint64_t)timeout_ms;
}

int fm__remaining_ms(uint64_t deadline)
{
	uint64_t now;

	if (deadline == UINT64_MAX)
		return -1;
	now = fm__now_ms();
	if (now >= deadline)
		return 0;
	return deadline - now > 1000000000u ? 1000000000 : (int)(deadline - now);
}

uint32_t fm__random_key(void)
{
	uint32_t k = 0;

	while (k == 0) {
		if (getrandom(&k, sizeof(k), 0) != (ssize_t)sizeof(k)) {
			/* getrandom cannot fail for 4 bytes after boot; be safe */
			k = (uint32_t)(fm__now_ms() * 2654435761u) ^ (uint32_t)getpid();
		}
	}
	return k;
}


void fm__tmsg_hdr_encode(const struct fm_tmsg_hdr *h, uint8_t out[FM_TMSG_HDR_SIZE])
{
	fm_put_le16(out + 0, FM_TMSG_MAGIC);
	out[2] = FM_TRANSPORT_WIRE_VERSION;
	out[3] = h->type;
	fm_put_le32(out + 4, h->len);
	fm_put_le16(out + 8, h->credits);
	fm_put_le16(out + 10, h->ctrl_credits);
	fm_put_le32(out + 12, 0);
}

int fm__tmsg_hdr_decode(const uint8_t *in, size_t n, struct fm_tmsg_hdr *h)
{
	if (n < FM_TMSG_HDR_SIZE)
		return fm_err(-EPROTO, "message of %zu bytes is shorter than its header", n);
	if (fm_get_le16(in) != FM_TMSG_MAGIC)
		return fm_err(-EPROTO, "message magic 0x%04x", fm_get_le16(in));
	if (in[2] != FM_TRANSPORT_WIRE_VERSION)
		return fm_err(-EPROTONOSUPPORT, "message version %u", in[2]);
	if (in[3] != FM_TMSG_DATA && in[3] != FM_TMSG_CREDIT)
		return fm_err(-EPROTO, "message type %u", in[3]);
	if (fm_get_le32(in + 12) != 0)
		return fm_err(-EPROTO, "message reserved bytes not zero");
	h->type = in[3];
	h->len = fm_get_le32(in + 4);
	h->credits = fm_get_le16(in + 8);
	h->ctrl_credits = fm_get_le16(in + 10);
	if (h->len != n - FM_TMSG_HDR_SIZE)
		return fm_err(-EMSGSIZE, "message says %u bytes, carries %zu", h->len,
			      n - FM_TMSG_HDR_SIZE);
	return 0;
}

void fm__conn_priv_encode(const struct fm_conn_priv *p, uint8_t out[FM_CONN_PRIV_SIZE])
{
	memset(out, 0, FM_CONN_PRIV_SIZE);
	fm_put_le16(out + 0, FM_CONN_MAGIC);
	out[2] = FM_TRANSPORT_WIRE_VERSION;
	out[3] = p->hello_len;
	fm_put_le16(out + 4, p->credits);
	fm_put_le16(out + 6, p->ctrl_credits);
	fm_put_le32(out + 8, p->msg_size);
	memcpy(out + 16, p->hello, p->hello_len);
}

int fm__conn_priv_decode(const uint8_t *in, size_t n, struct fm_conn_priv *p)
{
	if (in == NULL || n < FM_CONN_PRIV_SIZE)
		return fm_err(-EPROTO, "connection private data of %zu bytes", in ? n : 0);
	if (fm_get_le16(in) != FM_CONN_MAGIC)
		return fm_err(-EPROTO, "connection magic 0x%04x", fm_get_le16(in));
	if (in[2] != FM_TRANSPORT_WIRE_VERSION)
		return fm_err(-EPROTONOSUPPORT, "connection version %u", in[2]);
	if (in[3] > FM_HELLO_MAX)
		return fm_err(-EPROTO, "hello of %u bytes", in[3]);
	if (fm_get_le32(in + 12) != 0)
		return fm_err(-EPROTO, "connection reserved bytes not zero");
	memset(p, 0, sizeof(*p));
	p->hello_len = in[3];
	p->credits = fm_get_le16(in + 4);
	p->ctrl_credits = fm_get_le16(in + 6);
	p->msg_size = fm_get_le32(in + 8);
	if (p->credits < 2 || p->ctrl_credits < 1 || p->msg_size == 0)
		return fm_err(-EPROTO, "peer offers %u credits, %u control, %u-byte messages",
			      p->credits, p->ctrl_credits, p->msg_size);
	memcpy(p->hello, in + 16, p->hello_len);
	return 0;
}

void fm__conn_priv_local(const struct fm_transport *t, const void *hello, size_t hello_len,
			 struct fm_conn_priv *p)
{
	memset(p, 0, sizeof(*p));
	p->credits = t->cfg.credits;
	p->ctrl_credits = FM_CTRL_CREDITS;
	p->msg_size = t->cfg.msg_size;
	p->hello_len = (uint8_t)hello_len;
	if (hello_len)
		memcpy(p->hello, hello, hello_len);
}

/* ---------------------------------------------------------- transport */

static const struct fm_provider_ops *find_provider(const char *name)
{
	if (name == NULL || strcmp(name, "shm") == 0)
		return &fm__shm_ops;
	if (strcmp(name, "verbs") == 0)
		return &fm__verbs_ops;
	return NULL;
}

const char *const *fm_transport_providers(void)
{
	static const char *const names[] = {"shm", "verbs", NULL};
	return names;
}

int fm_transport_new(struct fm_transport **out, const struct fm_transport_cfg *cfg_in)
{
	struct fm_transport_cfg cfg = {0};
	const struct fm_provider_ops *ops;
	struct fm_transport *t = NULL;
	int ret;

	if (out == NULL)
		return fm_err(-EINVAL, "fm_transport_new: out is NULL");
	*out = NULL;
	if (cfg_in)
		cfg = *cfg_in;
	ops = find_provider(cfg.provider);
	if (ops == NULL)
		return fm_err(-ENOENT, "unknown transport provider \"%s\" (shm, verbs)",
			      cfg.provider);
	if (cfg.msg_size == 0)
		cfg.msg_size = FM_DEFAULT_MSG_SIZE;
	if (cfg.msg_size > (1u << 24))
		return fm_err(-EINVAL, "message size %u above 16 MiB", cfg.msg_size);
	if (cfg.credits == 0)
		cfg.credits = FM_DEFAULT_CREDITS;
	if (cfg.credits < 2 || cfg.credits > 4096)
		return fm_err(-EINVAL, "credits %u outside [2, 4096]", cfg.credits);
	if (cfg.wait_mode != FM_WAIT_BUSY && cfg.wait_mode != FM_WAIT_EVENT)
		return fm_err(-EINVAL, "wait mode %d", (int)cfg.wait_mode);
	if (cfg.op_timeout_ms <= 0)
		cfg.op_timeout_ms = FM_DEFAULT_TIMEOUT_MS;
	if (cfg.shm_arena_size == 0)
		cfg.shm_arena_size = 1ull << 30;
	cfg.provider = ops->name;

	ret = ops->transport_init(&t, &cfg);
	if (ret)
		return ret;
	t->ops = ops;
	t->cfg = cfg;
	t->cfg.device = t->device;
	pthread_mutex_init(&t->lock, NULL);
	*out = t;
	return 0;
}

void fm_transport_delete(struct fm_transport **tp)
{
	struct fm_transport *t;

	if (tp == NULL || *tp == NULL)
		return;
	t = *tp;
	pthread_mutex_destroy(&t->lock);
	t->ops->transport_fini(t);
	*tp = NULL;
}

void fm_transport_caps(const struct fm_transport *t, struct fm_caps *caps)
{
	*caps = t->caps;
}

/* ------------------------------------------------------------ regions */

#define FM_ACCESS_ALL (FM_ACCESS_REMOTE_READ | FM_ACCESS_REMOTE_ATOMIC)

int fm_region_new(struct fm_transport *t, size_t len, unsigned access, struct fm_region **out)
{
	int ret;

	if (t == NULL || out == NULL || len == 0)
		return fm_err(-EINVAL, "fm_region_new: %s", len ? "NULL argument" : "len 0");
	if (access & ~FM_ACCESS_ALL)
		return fm_err(-EINVAL, "fm_region_new: unknown access bits 0x%x", access);
	pthread_mutex_lock(&t->lock);
	ret = t->ops->region_new(t, len, access, out);
	pthread_mutex_unlock(&t->lock);
	return ret;
}

int fm_region_reg(struct fm_transport *t, void *addr, size_t len, unsigned access,
		  struct fm_region **out)
{
	int ret;

	if (t == NULL || out == NULL || addr == NULL || len == 0)
		return fm_err(-EINVAL, "fm_region_reg: NULL argument or len 0");
	if (access & ~FM_ACCESS_ALL)
		return fm_err(-EINVAL, "fm_region_reg: unknown access bits 0x%x", access);
	pthread_mutex_lock(&t->lock);
	ret = t->ops->region_reg(t, addr, len, access, out);
	pthread_mutex_unlock(&t->lock);
	return ret;
}

void fm_region_delete(struct fm_region **rp)
{
	struct fm_transport *t;

	if (rp == NULL || *rp == NULL)
		return;
	t = (*rp)->t;
	pthread_mutex_lock(&t->lock);
	t->ops->region_delete(*rp);
	pthread_mutex_unlock(&t->lock);
	*rp = NULL;
}

void *fm_region_ptr(const struct fm_region *r)
{
	return r->ptr;
}

size_t fm_region_len(const struct fm_region *r)
{
	return r->len;
}

void fm_region_desc(const struct fm_region *r, struct fm_region_desc *d)
{
	d->addr = r->addr;
	d->len = r->len;
	d->key = r->key;
	d->flags = r->access;
}


/* --------------------------------------------------- listener, connect */

int fm_listen(struct fm_transport *t, const char *addr, struct fm_listener **out)
{
	if (t == NULL || addr == NULL || out == NULL)
		return fm_err(-EINVAL, "fm_listen: NULL argument");
	*out = NULL;
	return t->ops->listen(t, addr, out);
}

void fm_listener_delete(struct fm_listener **lp)
{
	if (lp == NULL || *lp == NULL)
		return;
	(*lp)->t->ops->listener_delete(*lp);
	*lp = NULL;
}

int fm_listener_fd(const struct fm_listener *l)
{
	return l->t->ops->listener_fd(l);
}

int fm_listener_accept(struct fm_listener *l, int timeout_ms, struct fm_ep **out)
{
	if (l == NULL || out == NULL)
		return fm_err(-EINVAL, "fm_listener_accept: NULL argument");
	*out = NULL;
	return l->t->ops->accept(l, timeout_ms, out);
}

int fm_listener_loopback(struct fm_listener *l, struct fm_ep **out)
{
	int ret;

	if (l == NULL || out == NULL)
		return fm_err(-EINVAL, "fm_listener_loopback: NULL argument");
	*out = NULL;
	ret = l->t->ops->loopback(l, out);
	if (ret == 0)
		(*out)->loopback = true;
	return ret;
}

int fm_connect(struct fm_transport *t, const char *addr, const void *hello, size_t hello_len,
	       int timeout_ms, struct fm_ep **out)
{
	struct fm_conn_priv priv;

	if (t == NULL || addr == NULL || out == NULL || (hello == NULL && hello_len))
		return fm_err(-EINVAL, "fm_connect: NULL argument");
	*out = NULL;
	if (hello_len > FM_HELLO_MAX)
		return fm_err(-EMSGSIZE, "hello of %zu bytes (max %d)", hello_len, FM_HELLO_MAX);
	if (timeout_ms < 0)
		timeout_ms = t->cfg.op_timeout_ms;
	fm__conn_priv_local(t, hello, hello_len, &priv);
	return t->ops->connect(t, addr, &priv, timeout_ms, out);
}

/* ------------------------------------------------------------ endpoint */

void fm__ep_set_peer(struct fm_ep *ep, const struct fm_conn_priv *peer)
{
	ep->peer_msg_size = peer->msg_size;
	ep->tx_credits = peer->credits;
	ep->tx_ctrl_credits = peer->ctrl_credits;
	ep->hello_len = peer->hello_len;
	memcpy(ep->hello, peer->hello, peer->hello_len);
}

int fm__ep_init(struct fm_ep *ep, struct fm_transport *t, const struct fm_conn_priv *peer,
		uint32_t rx_data, uint32_t rx_ctrl)
{
	ep->t = t;
	ep->state = FM_EP_CONNECTING;
	ep->reason[0] = '\0';
	ep->msg_size = t->cfg.msg_size;
	ep->rx_data = rx_data;
	ep->rx_ctrl = rx_ctrl;
	if (peer)
		fm__ep_set_peer(ep, peer);
	ep->credit_threshold = rx_data / 2 ? rx_data / 2 : 1;
	ep->rxq_cap = rx_data + rx_ctrl;
	ep->rxq = calloc(ep->rxq_cap ? ep->rxq_cap : 1, sizeof(*ep->rxq));
	ep->tx_tmp = malloc(FM_TMSG_HDR_SIZE + ep->msg_size);
	if (ep->rxq == NULL || ep->tx_tmp == NULL) {
		free(ep->rxq);
		free(ep->tx_tmp);
		ep->rxq = NULL;
		ep->tx_tmp = NULL;
		return fm_err(-ENOMEM, "endpoint queues");
	}
	return 0;
}

void fm__ep_fini(struct fm_ep *ep)
{
	free(ep->rxq);
	free(ep->tx_tmp);
	ep->rxq = NULL;
	ep->tx_tmp = NULL;
}

int fm__ep_fail(struct fm_ep *ep, int err, const char *fmt, ...)
{
	va_list ap;

	if (ep->state == FM_EP_CLOSED)
		return err;
	va_start(ap, fmt);
	vsnprintf(ep->reason, sizeof(ep->reason), fmt, ap);
	va_end(ap);
	ep->state = FM_EP_CLOSED;
	ep->err = err;
	return err;
}

void fm_ep_delete(struct fm_ep **epp)
{
	struct fm_ep *ep;

	if (epp == NULL || *epp == NULL)
		return;
	ep = *epp;
	if (ep->state == FM_EP_UP)
		ep->state = FM_EP_CLOSING;
	ep->t->ops->ep_delete(ep);
	*epp = NULL;
}

int fm_ep_fence(struct fm_ep *ep, int timeout_ms)
{
	int ret;

	if (ep == NULL)
		return fm_err(-EINVAL, "fm_ep_fence: NULL endpoint");
	if (ep->loopback)
		return fm_err(-EINVAL, "fm_ep_fence: the loopback endpoint has no peer");
	if (ep->fenced)
		return 0;
	ret = ep->t->ops->fence(ep, timeout_ms);
	if (ret == 0) {
		ep->fenced = true;
		/* a fence is final: whatever state the endpoint had, no
		 * operation may use it any more */
		if (ep->state != FM_EP_CLOSED)
			fm__ep_fail(ep, -ENOTCONN, "fenced (peer can no longer access us)");
	}
	return ret;
}

enum fm_ep_state fm_ep_state(const struct fm_ep *ep, const char **reason)
{
	if (reason)
		*reason = ep->reason;
	return ep->state;
}

const char *fm_ep_state_name(enum fm_ep_state s)
{
	switch (s) {
	case FM_EP_CONNECTING:
		return "CONNECTING";
	case FM_EP_UP:
		return "UP";
	case FM_EP_CLOSING:
		return "CLOSING";
	case FM_EP_CLOSED:
		return "CLOSED";
	}
	return "?";
}

size_t fm_ep_hello(const struct fm_ep *ep, void *buf, size_t cap)
{
	if (buf && cap)
		memcpy(buf, ep->hello, cap < ep->hello_len ? cap : ep->hello_len);
	return ep->hello_len;
}

int fm_ep_fd(const struct fm_ep *ep)
{
	return ep->event_fd;
}

/* the error an operation on a non-UP endpoint returns */
static int ep_not_up(const struct fm_ep *ep)
{
	return fm_err(-ENOTCONN, "endpoint %s: %s", fm_ep_state_name(ep->state),
		      ep->reason[0] ? ep->reason : "not connected");
}

/* a failure that closed the endpoint during this call */
static int ep_broke(const struct fm_ep *ep)
{
	return fm_err(ep->err ? ep->err : -ECONNRESET, "endpoint closed: %s", ep->reason);
}

/* ----------------------------------------------------------- one-sided */

int fm_ep_read(struct fm_ep *ep, struct fm_region *dst, size_t dst_off,
	       const struct fm_region_desc *src, uint64_t src_off, size_t len)
{
	int ret;

	if (ep == NULL || dst == NULL || src == NULL || len == 0)
		return fm_err(-EINVAL, "fm_ep_read: %s", len ? "NULL argument" : "len 0");
	if (dst_off > dst->len || len > dst->len - dst_off)
		return fm_err(-ERANGE, "READ of %zu bytes at %zu overruns the %zu-byte local region",
			      len, dst_off, dst->len);
	if (src_off > src->len || len > src->len - src_off)
		return fm_err(-ERANGE,
			      "READ of %zu bytes at %llu overruns the %llu-byte remote region", len,
			      (unsigned long long)src_off, (unsigned long long)src->len);
	if (!(src->flags & FM_ACCESS_REMOTE_READ))
		return fm_err(-EACCES, "remote region (key 0x%x) not granted REMOTE_READ",
			      src->key);
	if (ep->state != FM_EP_UP)
		return ep_not_up(ep);
	ret = ep->t->ops->read(ep, (char *)dst->ptr + dst_off, dst, src, src_off, len);
	if (ret && ep->state == FM_EP_CLOSED)
		return ep_broke(ep);
	return ret;
}

static int atomic_check(struct fm_ep *ep, const struct fm_region_desc *rd, uint64_t off)
{
	if (ep == NULL || rd == NULL)
		return fm_err(-EINVAL, "atomic: NULL argument");
	if (off % 8 || rd->addr % 8)
		return fm_err(-EINVAL, "atomic at offset %llu: not 8-byte aligned",
			      (unsigned long long)off);
	if (rd->len < 8 || off > rd->len - 8)
		return fm_err(-ERANGE, "atomic at offset %llu outside the %llu-byte region",
			      (unsigned long long)off, (unsigned long long)rd->len);
	if (!(rd->flags & FM_ACCESS_REMOTE_ATOMIC))
		return fm_err(-EACCES, "remote region (key 0x%x) not granted REMOTE_ATOMIC",
			      rd->key);
	if (!(ep->t->caps.flags & FM_CAP_ATOMIC))
		return fm_err(-EOPNOTSUPP, "device %s has no atomics", ep->t->device);
	if (ep->state != FM_EP_UP)
		return ep_not_up(ep);
	return 0;
}

int fm_ep_cas(struct fm_ep *ep, const struct fm_region_desc *rd, uint64_t off, uint64_t expect,
	      uint64_t desired, uint64_t *old)
{
	uint64_t o;
	int ret = atomic_check(ep, rd, off);

	if (ret)
		return ret;
	ret = ep->t->ops->atomic(ep, true, rd, off, expect, desired, &o);
	if (ret)
		return ep->state == FM_EP_CLOSED ? ep_broke(ep) : ret;
	if (old)
		*old = o;
	return 0;
}

int fm_ep_faa(struct fm_ep *ep, const struct fm_region_desc *rd, uint64_t off, uint64_t add,
	      uint64_t *old)
{
	uint64_t o;
	int ret = atomic_check(ep, rd, off);

	if (ret)
		return ret;
	ret = ep->t->ops->atomic(ep, false, rd, off, add, 0, &o);
	if (ret)
		return ep->state == FM_EP_CLOSED ? ep_broke(ep) : ret;
	if (old)
		*old = o;
	return 0;
}

/* ------------------------------------------------------------ messages */

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
	if (ep->state == FM_EP_UP)
		(void)ep->t->ops->progress(ep, 0);
	ep_maybe_return_credits(ep);
	if (ep->rxq_count)
		return (int)ep->rxq_count;
	if (ep->state == FM_EP_CLOSED)
		return ep_not_up(ep);
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

		if (ep->state == FM_EP_UP)
			(void)ep->t->ops->progress(ep, 0);
		ep_maybe_return_credits(ep);
		if (cond(ep))
			return 0;
		if (ep->state != FM_EP_UP)
			return ep_broke(ep);
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
		return ep_not_up(ep);
	deadline = fm__deadline(ep->t->cfg.op_timeout_ms);
	for (;;) {
		if (ep->tx_credits == 0) {
			(void)ep->t->ops->progress(ep, 0);
			if (ep->state != FM_EP_UP)
				return ep_broke(ep);
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
			return ep_broke(ep);
		if (fm__remaining_ms(deadline) == 0)
			return fm_err(-ETIMEDOUT, "no free send buffer");
	}
	if (ret && ep->state == FM_EP_CLOSED)
		return ep_broke(ep);
	return ret;
}

int fm_ep_recv_peek(struct fm_ep *ep)
{
	if (ep->loopback)
		return fm_err(-EOPNOTSUPP, "loopback endpoints are one-sided only");
	if (ep->state == FM_EP_UP)
		(void)ep->t->ops->progress(ep, 0);
	if (ep->rxq_count)
		return (int)ep->rxq[ep->rxq_head].len;
	if (ep->state != FM_EP_UP)
		return ep_not_up(ep);
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
	if (ep->state == FM_EP_UP)
		(void)ep->t->ops->progress(ep, 0);
	if (ep->rxq_count == 0) {
		if (ep->state != FM_EP_UP)
			return ep_not_up(ep);
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
