/* shm_priv.h -- the shared-memory provider's structs, constants and
 * cross-file calls.
 *
 * The shm provider: owner and clients as processes on one host, with the
 * same semantics as the verbs provider, behind the trust boundary that
 * transport.h (SHM TRUST MODEL) describes.  One piece a file, each with its
 * design at the top:
 *   arena.c       the owner's two memfd arenas (READ: region table + bitmaps,
 *                 sealed against clients' writes; ATOMIC: lock tables), the
 *                 region allocator; the ops table.
 *   access.c      what a peer can reach: fm_ep_grant (owner sends the
 *                 arenas), mapping a grant (client), and the region-table
 *                 lookup every one-sided operation is checked against.
 *   lane.c        lanes: one-sided operations executed at post time on
 *                 the posting thread, completions queued on its lane.
 *   rendezvous.c  the unix-socket handshake: listen, the half-open set,
 *                 accept (uid, limits), connect, loopback; endpoint setup
 *                 and teardown.
 *   ring.c        two SPSC rings per connection with private geometry, the
 *                 connection socket's messages (doorbell, BYE, grant),
 *                 progress.
 *   fence.c       the peer's identity (a pidfd taken at accept), whether we
 *                 may kill it, and the non-blocking fm_ep_fence.
 *
 * Memory shared with a peer is written by it at any time: every value read
 * from there is either data we only copy (messages, lock words) or an index
 * checked against owner-private bounds before use.
 */
#ifndef FM_SHM_PRIV_H
#define FM_SHM_PRIV_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "transport_priv.h"

#define SHM_PAGE 4096ull
#define SHM_TABLE_MAGIC 0x454c4241544d46ull /* "FMTABLE" */

/* messages on the connection socket (SOCK_SEQPACKET: one record each) */
#define SHM_MSG_DOORBELL 'D' /* 1 byte: a ring you sleep on has news */
#define SHM_MSG_BYE 'B'      /* 1 byte: I unmapped your memory, I am gone */
#define SHM_SOCK_BATCH 64    /* socket records handled per progress call */

/* a half-open connection gets this long to send its request */
#define SHM_HANDSHAKE_MS 2000
#define SHM_PENDING_MAX 64

/*
 * Region table: at offset 0 of the READ arena, written only by the owner
 * (clients map it read-only).  An entry is published by storing its key
 * last (release) and retired by storing key 0 first; readers check the key
 * before and after reading the rest (a seqlock with the key as sequence).
 */
struct shm_region_ent {
	_Atomic uint32_t key;    /* 0 = free */
	_Atomic uint32_t access; /* FM_ACCESS_* */
	_Atomic uint64_t off;    /* in the arena space: READ [0, rs), ATOMIC [rs, rs+as) */
	_Atomic uint64_t len;
};

struct shm_table_hdr {
	uint64_t magic;
	uint64_t read_size;   /* bytes of the READ arena (table included) */
	uint64_t atomic_size; /* bytes of the ATOMIC arena */
	uint32_t nent;        /* entries that follow */
	uint32_t reserved;
	struct shm_region_ent ent[];
};

/* bytes of the table with n entries, page aligned */
static inline uint64_t shm_table_bytes(uint32_t n)
{
	uint64_t b = sizeof(struct shm_table_hdr) + (uint64_t)n * sizeof(struct shm_region_ent);

	return (b + SHM_PAGE - 1) & ~(SHM_PAGE - 1);
}

/*
 * Grant message, owner -> client on the connection socket, with two fds
 * (READ arena, ATOMIC arena), little-endian, 32 bytes:
 *   0  le32 magic SHM_GRANT_MAGIC   4 u8 version (1)   5..7 reserved (0)
 *   8  le64 read_size              16 le64 atomic_size
 *  24  le32 nent                   28 le32 reserved (0)
 */
#define SHM_GRANT_MAGIC 0x52474d46u /* "FMGR" */
#define SHM_GRANT_VERSION 1u
#define SHM_GRANT_SIZE 32u

struct shm_grant {
	uint64_t read_size;
	uint64_t atomic_size;
	uint32_t nent;
};

/* SPSC ring header in the ring memfd; slots follow at SHM_RING_HDR.  head
 * is written only by the producer, tail and armed only by the consumer --
 * by contract: the other side may scribble on them, so each side keeps its
 * own index privately and only checks the peer's.  No geometry here. */
struct shm_ring {
	_Alignas(64) _Atomic uint32_t head;
	_Alignas(64) _Atomic uint32_t tail;
	_Alignas(64) _Atomic uint32_t armed; /* consumer wants doorbells */
};
#define SHM_RING_HDR 256u
static_assert(sizeof(struct shm_ring) <= SHM_RING_HDR, "ring header");

/* one direction of a connection as THIS side sees it; all but r private */
struct shm_ring_view {
	struct shm_ring *r; /* shared header; slots at (uint8_t *)r + SHM_RING_HDR */
	uint32_t nslots;
	uint32_t stride;    /* bytes per slot: le32 len + message */
	uint32_t idx;       /* tx: our head; rx: our tail (never read back) */
};

/* free space of an arena: sorted, coalesced extents [off, off + len) */
struct shm_extent {
	uint64_t off, len;
};

struct shm_arena {
	int fd;
	uint64_t base; /* offset of its first byte in the arena space */
	uint64_t size;
	struct shm_extent *free;
	uint32_t nfree, capfree;
	uint64_t hwm; /* arena space below this may have been used */
};

struct shm_transport {
	struct fm_transport t;
	/* the accepting side's arenas, made by fm__shm_arenas_open (under
	 * t->lock) at the first fm_listen or shared region; owner-private
	 * except the memory itself */
	bool arenas;
	uint8_t *map;        /* READ arena then ATOMIC arena, contiguous */
	uint64_t map_len;
	struct shm_arena rd, at;
	struct shm_table_hdr *table;
	uint32_t nent;
};

struct shm_pending {
	int sock;
	uint64_t since_ms;
};

struct shm_listener {
	struct fm_listener l;
	int sock;  /* listening */
	int epfd;  /* listening socket + half-open ones: fm_listener_fd */
	struct shm_pending pend[SHM_PENDING_MAX];
	int npend;
};

struct shm_ep {
	struct fm_ep ep;
	int sock; /* -1 for loopback */

	/* the owner's arenas as this side maps them: the loopback's is the
	 * owner's own mapping; a client's arrives with the grant, mapped by
	 * the owning thread's progress while lanes may be posting.  So:
	 * peer_read_size, peer_map_len and peer_nent are written BEFORE
	 * peer_map is stored (release), never after; lanes load peer_map
	 * (acquire) and only then read them.  Unmapped only by the teardown,
	 * after the lanes were quiesced (lane.c). */
	uint8_t *_Atomic peer_map;
	uint64_t peer_read_size; /* the READ arena's bytes: [0, this) read-only */
	uint64_t peer_map_len;   /* READ + ATOMIC */
	uint32_t peer_nent;
	bool peer_mapped;        /* ours to munmap */

	uint8_t *ring_map;
	size_t ring_map_len;
	struct shm_ring_view rx, tx;
	uint32_t rx_stride;      /* local buffer: HDR + msg_size */
	uint8_t *rx_bufs;        /* rx_data + rx_ctrl local buffers */
	uint32_t *free_slots;    /* stack of free local buffers */
	uint32_t nfree;

	bool peer_bye;           /* its BYE came: it unmapped us first */
	bool peer_eof;           /* its socket end is closed */

	/* fencing, accepting side only (fm__shm_peer_identify) */
	bool accepted;
	int pidfd;               /* the connecting process */
	pid_t peer_pid;          /* SO_PEERCRED, for messages */
	uid_t peer_uid;
	bool fencing;            /* fm_ep_fence was called */
	uint64_t fence_since_ms; /* its first call */
	bool killed;             /* SIGKILL sent */
};

/* a lane: everything here is its own thread's */
struct shm_lane {
	struct fm_lane l;
	int cache_idx;             /* last region table index it used, -1 */
	struct fm_completion *cq;  /* ring of l.depth completions */
	uint32_t head, count;
};

static inline struct shm_transport *to_st(struct fm_transport *t)
{
	return container_of(t, struct shm_transport, t);
}

static inline struct shm_ep *to_sep(struct fm_ep *ep)
{
	return container_of(ep, struct shm_ep, ep);
}

/* arena.c */
/* fm__shm_arenas_open -- create, map and seal the arenas if not yet done;
 * caller holds t->lock.  0, -ENOMEM (with the sizes in the message) or the
 * errno of memfd_create/ftruncate/mmap/fcntl. */
int fm__shm_arenas_open(struct shm_transport *st);

/* access.c */
int fm__shm_grant(struct fm_ep *ep);
/* fm__shm_grant_decode -- checks in order: size, magic (-EPROTO), version
 * (-EPROTONOSUPPORT), reserved, sizes (page aligned, non-zero, table fits:
 * -EPROTO) */
int fm__shm_grant_decode(const uint8_t *in, size_t n, struct shm_grant *g);
/* fm__shm_map_grant -- client: map the arenas a grant brought (takes the
 * fds).  0, or a negative errno with the endpoint failed. */
int fm__shm_map_grant(struct shm_ep *se, const struct shm_grant *g, int read_fd,
		      int atomic_fd);
void fm__shm_unmap_peer(struct shm_ep *se);
/* fm__shm_lookup -- where [off, off + len) of the peer's region `d` is in
 * `map` (the peer_map the caller loaded), checked against the region table
 * for access `need`; *cache is the caller's last index.  0, or -EACCES with
 * the endpoint CLOSED (a remote access error).  Any thread. */
int fm__shm_lookup(struct shm_ep *se, uint8_t *map, int *cache, const struct fm_region_desc *d,
		   unsigned need, uint64_t off, uint64_t len, uint8_t **p);

/* lane.c: the provider ops of lanes */
int fm__shm_lane_new(struct fm_ep *ep, uint32_t depth, struct fm_lane **out);
bool fm__shm_lane_retire(struct fm_lane *l);
void fm__shm_lane_free(struct fm_lane *l);
int fm__shm_post_read(struct fm_lane *l, void *dst, struct fm_region *dst_r,
		      const struct fm_region_desc *src, uint64_t src_off, size_t len, void *ctx);
int fm__shm_post_atomic(struct fm_lane *l, enum fm_lane_op op, const struct fm_region_desc *rd,
			uint64_t off, uint64_t a, uint64_t b, void *ctx);
int fm__shm_lane_poll(struct fm_lane *l, struct fm_completion *out, int n);

/* rendezvous.c: the provider ops of connection setup and teardown */
int fm__shm_listen(struct fm_transport *t, const char *addr, struct fm_listener **out);
void fm__shm_listener_delete(struct fm_listener *l);
int fm__shm_listener_fd(const struct fm_listener *l);
int fm__shm_accept(struct fm_listener *l, int timeout_ms, struct fm_ep **out);
int fm__shm_connect(struct fm_transport *t, const char *addr, const struct fm_conn_priv *priv,
		    int timeout_ms, struct fm_ep **out);
int fm__shm_loopback(struct fm_listener *l, struct fm_ep **out);
void fm__shm_ep_delete(struct fm_ep *ep);
void fm__shm_ep_free(struct fm_ep *ep);

/* ring.c: ring geometry, the same on both sides from both private data */
struct shm_geometry {
	uint32_t c2o_nslots, o2c_nslots, stride;
	size_t c2o_bytes, o2c_bytes;
};
/* fm__shm_geometry -- rings for a connection between an owner offering
 * `owner` and a client offering `client` (both decoded, within limits):
 * each ring has its receiver's R + C slots, of the smaller message size */
void fm__shm_geometry(const struct fm_conn_priv *owner, const struct fm_conn_priv *client,
		      struct shm_geometry *g);
void fm__shm_ring_init(struct shm_ring *r);
/* ring.c: the provider ops of messages */
int fm__shm_msg_post(struct fm_ep *ep, const void *buf, size_t len);
void fm__shm_msg_repost(struct fm_ep *ep, uint32_t slot);
int fm__shm_progress(struct fm_ep *ep, int timeout_ms);
/* fm__shm_sock_read -- handle what waits on the connection socket:
 * doorbells, BYE, EOF (peer_bye/peer_eof), a grant (connecting side);
 * anything else fails the endpoint with -EPROTO.  Never blocks.  True
 * when it took a doorbell (its message may be past the head loaded
 * before: fm__shm_progress). */
bool fm__shm_sock_read(struct shm_ep *se);

/* fence.c */
/* fm__shm_peer_admit -- accepting side, at the moment of accept(): is the
 * peer's uid allowed and its pid visible?  0, -EACCES or -EPERM. */
int fm__shm_peer_admit(struct fm_transport *t, int sock, pid_t *pid, uid_t *uid);
/* fm__shm_peer_identify -- record who connected `se->sock` (a pidfd) and
 * check we may SIGKILL it.  0, -EPERM, -EOPNOTSUPP, -ECONNABORTED. */
int fm__shm_peer_identify(struct shm_ep *se);
int fm__shm_fence(struct fm_ep *ep, unsigned flags);
int fm__shm_fence_fd(const struct fm_ep *ep);

#endif /* FM_SHM_PRIV_H */
