/* shm_priv.h -- the shared-memory provider's structs, constants and
 * cross-file calls.
 *
 * The shm provider: owner and clients as processes on one host, with the
 * same semantics as the verbs provider.  One piece a file, each with its
 * design at the top:
 *   arena.c       one memfd per transport: region table and regions; the
 *                 one-sided operations on a peer's arena; the ops table.
 *   rendezvous.c  the unix-socket handshake: listen, accept, connect,
 *                 loopback; endpoint setup and teardown.
 *   ring.c        two SPSC rings per connection: post, drain, progress.
 *   fence.c       the peer's identity (a pidfd taken at accept) and
 *                 fm_ep_fence.
 */
#ifndef FM_SHM_PRIV_H
#define FM_SHM_PRIV_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "transport_priv.h"

#define SHM_ARENA_MAGIC 0x414e455241464dull /* "FMARENA" */
#define SHM_MAX_REGIONS 256
#define SHM_PAGE 4096ull
#define SHM_BYE 'B'

struct shm_region_ent {
	_Atomic uint32_t key; /* 0 = free; published last (release) */
	uint32_t access;
	uint64_t off;
	uint64_t len;
};

struct shm_arena_hdr {
	uint64_t magic;
	uint64_t size;
	uint64_t bump; /* next free offset; owner-private, under t->lock */
	uint64_t reserved;
	struct shm_region_ent ent[SHM_MAX_REGIONS];
};
#define SHM_ARENA_DATA (((sizeof(struct shm_arena_hdr) + SHM_PAGE - 1) / SHM_PAGE) * SHM_PAGE)

/* SPSC ring header; slots follow at SHM_RING_HDR.  head is written only by
 * the producer, tail only by the consumer, armed only by the consumer. */
struct shm_ring {
	_Alignas(64) _Atomic uint32_t head;
	_Alignas(64) _Atomic uint32_t tail;
	_Alignas(64) _Atomic uint32_t armed; /* consumer wants eventfd wakeups */
	_Alignas(64) uint32_t nslots;
	uint32_t stride; /* bytes per slot: le32 len + message */
};
#define SHM_RING_HDR 256u
static_assert(sizeof(struct shm_ring) <= SHM_RING_HDR, "ring header");

struct shm_transport {
	struct fm_transport t;
	int arena_fd;
	uint8_t *arena;
	uint64_t arena_size;
};

struct shm_listener {
	struct fm_listener l;
	int sock;
};

struct shm_ep {
	struct fm_ep ep;
	int sock; /* -1 for loopback */
	uint8_t *peer_arena;
	uint64_t peer_arena_size;
	bool peer_arena_mapped; /* ours to munmap */
	uint8_t *ring_map;
	size_t ring_map_len;
	struct shm_ring *rx, *tx;
	int efd_rx, efd_tx;
	uint32_t rx_stride;     /* local buffer: HDR + msg_size */
	uint8_t *rx_bufs;       /* rx_data + rx_ctrl local buffers */
	uint32_t *free_slots;   /* stack of free local buffers */
	uint32_t nfree;
	int cache_idx;          /* last region table index used */

	/* fencing, accepting side only (fm__shm_peer_identify) */
	bool accepted;
	bool peer_bye;          /* the peer's BYE came: it unmapped us first */
	bool fence_bye_sent;    /* fm__shm_fence asked the peer to close */
	int pidfd;              /* the connecting process, or -1 */
	pid_t peer_pid;         /* SO_PEERCRED, for messages (0: not visible) */
	uid_t peer_uid;
	int fence_err;          /* pidfd < 0: why fm_ep_fence cannot work */
	char fence_why[96];
};

static inline struct shm_transport *to_st(struct fm_transport *t)
{
	return container_of(t, struct shm_transport, t);
}

static inline struct shm_ep *to_sep(struct fm_ep *ep)
{
	return container_of(ep, struct shm_ep, ep);
}

/* rendezvous.c: the provider ops of connection setup and teardown */
int fm__shm_listen(struct fm_transport *t, const char *addr, struct fm_listener **out);
void fm__shm_listener_delete(struct fm_listener *l);
int fm__shm_listener_fd(const struct fm_listener *l);
int fm__shm_accept(struct fm_listener *l, int timeout_ms, struct fm_ep **out);
int fm__shm_connect(struct fm_transport *t, const char *addr, const struct fm_conn_priv *priv,
		    int timeout_ms, struct fm_ep **out);
int fm__shm_loopback(struct fm_listener *l, struct fm_ep **out);
void fm__shm_ep_delete(struct fm_ep *ep);

/* ring.c: ring geometry (for the rendezvous that creates the rings) */
/* fm__shm_ring_bytes -- bytes of one ring, rounded to 64 so the next ring's
 * header stays cache-line aligned (its atomics are _Alignas(64)) */
size_t fm__shm_ring_bytes(uint32_t nslots, uint32_t stride);
/* fm__shm_ring_stride -- bytes of one slot: le32 len + header + message */
uint32_t fm__shm_ring_stride(uint32_t msg_size);
void fm__shm_ring_init(struct shm_ring *r, uint32_t nslots, uint32_t stride);
/* ring.c: the provider ops of messages */
int fm__shm_msg_post(struct fm_ep *ep, const void *buf, size_t len);
void fm__shm_msg_repost(struct fm_ep *ep, uint32_t slot);
int fm__shm_progress(struct fm_ep *ep, int timeout_ms);
/* fm__shm_check_peer -- look at the socket: BYE or EOF ends the endpoint */
void fm__shm_check_peer(struct shm_ep *se);

/* fence.c */
/* fm__shm_peer_identify -- record who connected `se->sock` (accepting side) */
int fm__shm_peer_identify(struct shm_ep *se);
int fm__shm_fence(struct fm_ep *ep, int timeout_ms);

#endif /* FM_SHM_PRIV_H */
