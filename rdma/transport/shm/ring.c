/* ring.c -- the shm provider's messages: two SPSC rings per connection, and
 * the records on the connection socket (doorbell, BYE, grant).
 *
 * One memfd per connection, made by the owner, holds two SPSC rings,
 * client->owner then owner->client.  Geometry is PRIVATE to each side:
 * both compute it from the two connection private data (fm__shm_geometry:
 * each ring has its receiver's R + C slots of 4 + 16 + min(msg sizes)
 * bytes); the shared header holds only head, tail and armed.  Each side also
 * keeps its own index privately (producer: head, consumer: tail) and only
 * READS the other side's, checked: a head that claims more than nslots
 * unread slots, or a tail that claims more free slots than exist, is a
 * protocol error -- the endpoint CLOSES with -EPROTO.  Slot lengths are read
 * once and checked before the copy; message bytes are copied out before the
 * header is decoded.  Nothing read from the ring ever indexes our memory
 * unchecked, and the peer cannot make us divide by zero or run off a
 * mapping.
 *
 * Producer: write slot, store head (release), send a DOORBELL record on the
 * connection socket if the receiver is in event mode (armed).  The doorbell
 * uses the socket -- whose file description is ours alone, so it never
 * blocks (MSG_DONTWAIT) whatever the peer does -- not an eventfd, whose
 * shared file description a peer could switch to blocking mode.  Consumer:
 * load head (acquire), copy each slot into a local receive buffer, store
 * tail (release).  Credits (msg.c) guarantee the ring never overflows.
 *
 * Socket records (SOCK_SEQPACKET): DOORBELL 'D', BYE 'B' (the sender
 * unmapped our memory and is gone), EOF (its end closed: died, or closed
 * without BYE), and owner -> client only a GRANT with two fds (access.c).
 * Anything else is a protocol error.  Progress handles them in this order:
 * load the ring's head, read the socket, hand out messages up to that head
 * (the grant's ordering guarantee, access.c); on BYE or EOF every message
 * published before is still handed out, then the endpoint CLOSES.
 */
#include <errno.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "shm_priv.h"

static size_t ring_bytes(uint32_t nslots, uint32_t stride)
{
	/* rounded to 64 so the next ring's header stays cache-line aligned */
	return (SHM_RING_HDR + (size_t)nslots * stride + 63) & ~(size_t)63;
}

void fm__shm_geometry(const struct fm_conn_priv *owner, const struct fm_conn_priv *client,
		      struct shm_geometry *g)
{
	uint32_t msg = owner->msg_size < client->msg_size ? owner->msg_size : client->msg_size;

	g->stride = (4u + FM_TMSG_HDR_SIZE + msg + 7u) & ~7u;
	g->c2o_nslots = (uint32_t)owner->credits + owner->ctrl_credits;
	g->o2c_nslots = (uint32_t)client->credits + client->ctrl_credits;
	g->c2o_bytes = ring_bytes(g->c2o_nslots, g->stride);
	g->o2c_bytes = ring_bytes(g->o2c_nslots, g->stride);
}

void fm__shm_ring_init(struct shm_ring *r)
{
	atomic_init(&r->head, 0);
	atomic_init(&r->tail, 0);
	atomic_init(&r->armed, 0);
}

static uint8_t *ring_slot(const struct shm_ring_view *v, uint32_t idx)
{
	return (uint8_t *)v->r + SHM_RING_HDR + (size_t)(idx % v->nslots) * v->stride;
}

int fm__shm_msg_post(struct fm_ep *ep, const void *buf, size_t len)
{
	struct shm_ep *se = to_sep(ep);
	struct shm_ring_view *v = &se->tx;
	uint32_t tail = atomic_load_explicit(&v->r->tail, memory_order_acquire);
	uint32_t used = v->idx - tail;
	uint32_t l32 = (uint32_t)len;
	uint8_t *slot;

	if (used > v->nslots)
		return fm__ep_fail(ep, -EPROTO, "peer's ring tail %u is impossible (our head %u, "
					       "%u slots)", tail, v->idx, v->nslots);
	if (used == v->nslots)
		return fm__ep_fail(ep, -EPROTO, "send ring full: peer overran credits");
	if (4 + len > v->stride)
		return fm_err(-EMSGSIZE, "message of %zu bytes for a %u-byte ring slot", len,
			      v->stride);
	slot = ring_slot(v, v->idx);
	memcpy(slot, &l32, 4);
	memcpy(slot + 4, buf, len);
	v->idx++;
	atomic_store_explicit(&v->r->head, v->idx, memory_order_release);
	/* the receiver arms once, before its first message; a doorbell that
	 * finds its socket full is not needed: one is pending already */
	if (atomic_load_explicit(&v->r->armed, memory_order_relaxed)) {
		char d = SHM_MSG_DOORBELL;

		(void)send(se->sock, &d, 1, MSG_DONTWAIT | MSG_NOSIGNAL);
	}
	return 0;
}

void fm__shm_msg_repost(struct fm_ep *ep, uint32_t slot)
{
	struct shm_ep *se = to_sep(ep);

	se->free_slots[se->nfree++] = slot;
}

/* move the published messages before `head` out of the receive ring;
 * returns how many */
static int shm_drain(struct shm_ep *se, uint32_t head)
{
	struct shm_ring_view *v = &se->rx;
	int n = 0;

	if (head - v->idx > v->nslots) {
		fm__ep_fail(&se->ep, -EPROTO, "peer's ring head %u is impossible (our tail %u, "
					      "%u slots)", head, v->idx, v->nslots);
		return 0;
	}
	while (v->idx != head && se->ep.state == FM_EP_UP) {
		const uint8_t *slot = ring_slot(v, v->idx);
		uint32_t len, k;

		memcpy(&len, slot, 4); /* read once: the peer may rewrite it */
		if (len > se->rx_stride || len > v->stride - 4) {
			fm__ep_fail(&se->ep, -EPROTO, "ring slot claims %u bytes", len);
			break;
		}
		if (se->nfree == 0) {
			fm__ep_fail(&se->ep, -EPROTO, "peer overran its credits");
			break;
		}
		k = se->free_slots[--se->nfree];
		memcpy(se->rx_bufs + (size_t)k * se->rx_stride, slot + 4, len);
		v->idx++;
		atomic_store_explicit(&v->r->tail, v->idx, memory_order_release);
		fm__ep_rx(&se->ep, k, se->rx_bufs + (size_t)k * se->rx_stride, len);
		n++;
	}
	return n;
}

bool fm__shm_sock_read(struct shm_ep *se)
{
	bool bell = false;

	for (int i = 0; i < SHM_SOCK_BATCH && !se->peer_eof && se->sock >= 0; i++) {
		uint8_t buf[SHM_GRANT_SIZE + 1];
		char cbuf[CMSG_SPACE(2 * sizeof(int))];
		struct iovec iov = {.iov_base = buf, .iov_len = sizeof(buf)};
		struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
		struct cmsghdr *c;
		int fds[2], nfd = 0;
		ssize_t n;

		/* only a connecting side takes fds; the kernel drops any sent
		 * to the owner (no control buffer: MSG_CTRUNC) */
		if (!se->accepted) {
			mh.msg_control = cbuf;
			mh.msg_controllen = sizeof(cbuf);
		}
		n = recvmsg(se->sock, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
		if (n < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
				return bell;
			fm__ep_fail(&se->ep, -ECONNRESET, "peer connection socket error: %s",
				    strerror(errno));
			se->peer_eof = true;
			return bell;
		}
		for (c = mh.msg_control ? CMSG_FIRSTHDR(&mh) : NULL; c; c = CMSG_NXTHDR(&mh, c)) {
			if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
				continue;
			for (size_t k = 0; k < (c->cmsg_len - CMSG_LEN(0)) / sizeof(int); k++) {
				int fd;

				memcpy(&fd, CMSG_DATA(c) + k * sizeof(int), sizeof(int));
				if (nfd < 2)
					fds[nfd++] = fd;
				else
					close(fd);
			}
		}
		if (n == 0) {
			se->peer_eof = true;
		} else if (n == 1 && nfd == 0 && !(mh.msg_flags & MSG_CTRUNC) &&
			   buf[0] == SHM_MSG_DOORBELL) {
			bell = true;
			continue;
		} else if (n == 1 && nfd == 0 && !(mh.msg_flags & MSG_CTRUNC) &&
			   buf[0] == SHM_MSG_BYE) {
			se->peer_bye = true;
			continue;
		} else if (!se->accepted && nfd == 2 &&
			   !(mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC))) {
			struct shm_grant g;

			if (fm__shm_grant_decode(buf, (size_t)n, &g) == 0) {
				if (fm__shm_map_grant(se, &g, fds[0], fds[1]))
					return bell;
				continue;
			}
			fm__ep_fail(&se->ep, -EPROTO, "bad grant from peer: %s", fm_errormsg());
		} else {
			fm__ep_fail(&se->ep, -EPROTO, "unexpected %zd-byte record (%d fds%s) on the "
				    "connection socket", n, nfd,
				    (mh.msg_flags & MSG_CTRUNC) ? ", fds refused" : "");
		}
		for (int k = 0; k < nfd; k++)
			close(fds[k]);
		if (n != 0)
			return bell;
	}
	return bell;
}

int fm__shm_progress(struct fm_ep *ep, int timeout_ms)
{
	struct shm_ep *se = to_sep(ep);
	struct epoll_event ev;
	uint32_t head;
	int n = 0;

	if (se->sock < 0) /* loopback: nothing arrives */
		return 0;
	/* 1. head, 2. socket (a grant is mapped here), 3. messages up to head.
	 * A doorbell taken in 2 may belong to a message published after 1:
	 * its ring slot is past the head we drain to, and its doorbell is
	 * gone, so a loop sleeping on the socket would not wake for it (a
	 * lost wake-up: the ping-pong of test_transport's event_mode waited
	 * 20 s for it).  So after a doorbell, another pass while the head
	 * moved: each drains at least one message and the peer cannot
	 * publish more than its credits, so the passes end. */
	for (;;) {
		bool bell;

		head = atomic_load_explicit(&se->rx.r->head, memory_order_acquire);
		bell = fm__shm_sock_read(se);
		if (ep->state != FM_EP_UP)
			break;
		n += shm_drain(se, head);
		if (!bell || ep->state != FM_EP_UP ||
		    atomic_load_explicit(&se->rx.r->head, memory_order_acquire) == se->rx.idx)
			break;
	}
	if ((se->peer_bye || se->peer_eof) && ep->state == FM_EP_UP) {
		/* whatever the peer published before it left is still delivered */
		n += shm_drain(se, atomic_load_explicit(&se->rx.r->head, memory_order_acquire));
		if (se->peer_bye)
			fm__ep_fail(ep, -ECONNRESET, "peer closed");
		else
			fm__ep_fail(ep, -ECONNRESET, "peer died (connection socket EOF)");
	}
	if (n || timeout_ms == 0 || ep->state != FM_EP_UP)
		return 0;
	if (ep->t->cfg.wait_mode != FM_WAIT_EVENT)
		return 0; /* busy mode never sleeps */
	/* every message published after our drain rings the doorbell */
	if (atomic_load_explicit(&se->rx.r->head, memory_order_acquire) != se->rx.idx)
		return fm__shm_progress(ep, 0);
	if (epoll_wait(ep->event_fd, &ev, 1, timeout_ms) < 0 && errno != EINTR)
		return fm_err(-errno, "epoll_wait: %s", strerror(errno));
	return fm__shm_progress(ep, 0);
}
