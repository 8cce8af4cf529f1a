/* ring.c -- the shm provider's messages: two SPSC rings per connection.
 *
 * One memfd per connection holds two SPSC rings, client->owner and
 * owner->client, each sized by its RECEIVER (R + C slots of 4 + 16 +
 * msg_size bytes).  Producer: write slot, store head (release), fence, if
 * the receiver is in event mode write its eventfd.  Consumer: load head
 * (acquire), copy the slot out into a local receive buffer, store tail
 * (release).  Credits (in msg.c) guarantee the ring never overflows; a full
 * ring is a protocol error.
 */
#include <errno.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "shm_priv.h"

size_t fm__shm_ring_bytes(uint32_t nslots, uint32_t stride)
{
	return (SHM_RING_HDR + (size_t)nslots * stride + 63) & ~(size_t)63;
}

uint32_t fm__shm_ring_stride(uint32_t msg_size)
{
	return (4u + FM_TMSG_HDR_SIZE + msg_size + 7u) & ~7u;
}

void fm__shm_ring_init(struct shm_ring *r, uint32_t nslots, uint32_t stride)
{
	atomic_init(&r->head, 0);
	atomic_init(&r->tail, 0);
	atomic_init(&r->armed, 0);
	r->nslots = nslots;
	r->stride = stride;
}

int fm__shm_msg_post(struct fm_ep *ep, const void *buf, size_t len)
{
	struct shm_ep *se = to_sep(ep);
	struct shm_ring *r = se->tx;
	uint32_t head = atomic_load_explicit(&r->head, memory_order_relaxed);
	uint32_t tail = atomic_load_explicit(&r->tail, memory_order_acquire);
	uint8_t *slot;
	uint32_t l32 = (uint32_t)len;
	static const uint64_t one = 1;

	if (head - tail >= r->nslots)
		return fm__ep_fail(ep, -EPROTO, "send ring full: peer overran credits");
	if (4 + len > r->stride)
		return fm_err(-EMSGSIZE, "message of %zu bytes for a %u-byte ring slot", len,
			      r->stride);
	slot = (uint8_t *)r + SHM_RING_HDR + (size_t)(head % r->nslots) * r->stride;
	memcpy(slot, &l32, 4);
	memcpy(slot + 4, buf, len);
	atomic_store_explicit(&r->head, head + 1, memory_order_release);
	/* pairs with the consumer's fence in fm__shm_progress: either it sees
	 * the new head, or we see armed and ring the doorbell */
	atomic_thread_fence(memory_order_seq_cst);
	if (atomic_load_explicit(&r->armed, memory_order_relaxed))
		(void)!write(se->efd_tx, &one, sizeof(one));
	return 0;
}

void fm__shm_msg_repost(struct fm_ep *ep, uint32_t slot)
{
	struct shm_ep *se = to_sep(ep);

	se->free_slots[se->nfree++] = slot;
}

/* move every published message out of the receive ring; returns count */
static int shm_drain(struct shm_ep *se)
{
	struct shm_ring *r = se->rx;
	uint32_t tail = atomic_load_explicit(&r->tail, memory_order_relaxed);
	uint32_t head = atomic_load_explicit(&r->head, memory_order_acquire);
	int n = 0;

	while (tail != head && se->ep.state == FM_EP_UP) {
		uint8_t *slot = (uint8_t *)r + SHM_RING_HDR + (size_t)(tail % r->nslots) * r->stride;
		uint32_t len, k;

		memcpy(&len, slot, 4);
		if (len > se->rx_stride || 4 + len > r->stride) {
			fm__ep_fail(&se->ep, -EPROTO, "ring slot claims %u bytes", len);
			break;
		}
		if (se->nfree == 0) {
			fm__ep_fail(&se->ep, -EPROTO, "peer overran its credits");
			break;
		}
		k = se->free_slots[--se->nfree];
		memcpy(se->rx_bufs + (size_t)k * se->rx_stride, slot + 4, len);
		tail++;
		atomic_store_explicit(&r->tail, tail, memory_order_release);
		fm__ep_rx(&se->ep, k, se->rx_bufs + (size_t)k * se->rx_stride, len);
		n++;
	}
	return n;
}

void fm__shm_check_peer(struct shm_ep *se)
{
	char c;
	ssize_t n = recv(se->sock, &c, 1, MSG_DONTWAIT);

	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
		return;
	/* whatever the peer published before it left is still delivered */
	shm_drain(se);
	if (n == 1 && c == SHM_BYE) {
		se->peer_bye = true;
		fm__ep_fail(&se->ep, -ECONNRESET, "peer closed");
	}
	else if (n == 0)
		fm__ep_fail(&se->ep, -ECONNRESET, "peer died (connection socket EOF)");
	else
		fm__ep_fail(&se->ep, -ECONNRESET, "peer connection socket error: %s",
			    n < 0 ? strerror(errno) : "unexpected byte");
}

int fm__shm_progress(struct fm_ep *ep, int timeout_ms)
{
	struct shm_ep *se = to_sep(ep);
	struct epoll_event evs[2];
	uint64_t cnt;
	int n;

	if (se->sock < 0) /* loopback: nothing arrives */
		return 0;
	if (atomic_load_explicit(&se->rx->armed, memory_order_relaxed))
		(void)!read(se->efd_rx, &cnt, sizeof(cnt)); /* reset the doorbell */
	n = shm_drain(se);
	if (ep->state == FM_EP_UP)
		fm__shm_check_peer(se);
	if (n || timeout_ms == 0 || ep->state != FM_EP_UP)
		return 0;
	if (!atomic_load_explicit(&se->rx->armed, memory_order_relaxed))
		return 0; /* busy mode never sleeps */
	atomic_thread_fence(memory_order_seq_cst);
	if (atomic_load_explicit(&se->rx->head, memory_order_acquire) !=
	    atomic_load_explicit(&se->rx->tail, memory_order_relaxed))
		return fm__shm_progress(ep, 0);
	if (epoll_wait(ep->event_fd, evs, 2, timeout_ms) < 0 && errno != EINTR)
		return fm_err(-errno, "epoll_wait: %s", strerror(errno));
	return fm__shm_progress(ep, 0);
}
