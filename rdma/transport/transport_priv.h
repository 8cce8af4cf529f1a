/* transport_priv.h -- the provider ops table and the state every provider
 * shares (endpoint state, message credits, region checks).
 *
 * Layering -- provider-independent, one job a file (public entry points,
 * argument checks, then the provider's op):
 *   transport.c  the provider registry and the transport object.
 *   region.c     regions, their descriptors, random keys.
 *   listener.c   listen, accept, loopback, connect.
 *   endpoint.c   endpoint state, failure, grant, fence, delete; the blocking
 *                one-sided wrappers over the endpoint's own lane.
 *   lane.c       lanes: argument checks, limits, poll/wait, quiescing lanes
 *                before a provider tears an endpoint down.
 *   msg.c        the credit protocol, messages, blocking waits.
 *   codec.c      the message header and connection private data below.
 *   time.c       monotonic milliseconds, deadlines.
 * and the providers:
 *   shm/         memfd arenas + grant + SPSC rings + unix-socket rendezvous +
 *                pidfd fence (shm_priv.h lists the files).
 *   verbs/       librdmacm + RC QPs (verbs_priv.h lists the files).
 * Providers embed `struct fm_ep` / `struct fm_region` / ... as the first
 * member of their own structs and recover them with container_of.
 *
 * Message slots: the provider owns `rx_slots` receive buffers per endpoint
 * (R data + C control).  When a message arrives it calls fm__ep_rx() with
 * the slot number and the bytes (header included).  Control messages are
 * handed back at once (ops->msg_repost); data messages are queued until the
 * application consumes them with fm_ep_recv, then handed back.
 */
#ifndef FM_TRANSPORT_PRIV_H
#define FM_TRANSPORT_PRIV_H

#include <assert.h>
#include <endian.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "flashmeta/error.h"
#include "flashmeta/transport.h"

#ifndef container_of
#define container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))
#endif

#define FM_DEFAULT_MSG_SIZE 4096u
#define FM_DEFAULT_CREDITS 16u
#define FM_CTRL_CREDITS 4u /* receive buffers reserved for CREDIT messages */
#define FM_DEFAULT_TIMEOUT_MS 10000
#define FM_DEFAULT_LINGER_MS 1000
#define FM_REASON_MAX 128

/* --------------------------------------------------------------- wire */

/*
 * Transport message header (FM_TMSG_*; not to be confused with the protocol's
 * FM_MSG_* message types of wire.h, which travel inside as payload),
 * little-endian, 16 bytes, in front of every message:
 *   0  le16 magic   FM_TMSG_MAGIC
 *   2  u8   version FM_TRANSPORT_WIRE_VERSION
 *   3  u8   type    FM_TMSG_DATA / FM_TMSG_CREDIT
 *   4  le32 len     payload bytes that follow
 *   8  le16 credits        data receive buffers freed since the last message
 *  10  le16 ctrl_credits   control receive buffers freed since the last message
 *  12  le32 reserved (0)
 */
#define FM_TMSG_MAGIC 0x4d46u /* "FM" */
/* version of both transport formats: this header, the connection private
 * data.  2: shm requests carry no fd and replies only the ring memfd (the
 * arenas come with fm_ep_grant); peer limits FM_*_MAX. */
#define FM_TRANSPORT_WIRE_VERSION 2u
#define FM_TMSG_DATA 1u
#define FM_TMSG_CREDIT 2u
#define FM_TMSG_HDR_SIZE 16u

struct fm_tmsg_hdr {
	uint8_t type;
	uint32_t len;
	uint16_t credits;
	uint16_t ctrl_credits;
};

void fm__tmsg_hdr_encode(const struct fm_tmsg_hdr *h, uint8_t out[FM_TMSG_HDR_SIZE]);
/* fm__tmsg_hdr_decode -- checks in order: size (-EPROTO "short"), magic
 * (-EPROTO), version (-EPROTONOSUPPORT), type (-EPROTO), reserved (-EPROTO),
 * len vs. bytes (-EMSGSIZE). */
int fm__tmsg_hdr_decode(const uint8_t *in, size_t n, struct fm_tmsg_hdr *h);

/*
 * Connection private data (verbs: rdma_connect/rdma_accept private data,
 * at most 56 bytes for RC; shm: the first bytes on the unix socket), LE:
 *   0  le16 magic FM_CONN_MAGIC   2 u8 version   3 u8 hello_len
 *   4  le16 credits (R)           6 le16 ctrl credits (C)
 *   8  le32 msg_size             12 le32 reserved (0)
 *  16  hello[FM_HELLO_MAX]
 */
#define FM_CONN_MAGIC 0x434du /* "MC" */
#define FM_CONN_PRIV_SIZE (16u + FM_HELLO_MAX)
static_assert(FM_CONN_PRIV_SIZE <= 56, "RC private data is at most 56 bytes");

struct fm_conn_priv {
	uint16_t credits;
	uint16_t ctrl_credits;
	uint32_t msg_size;
	uint8_t hello_len;
	uint8_t hello[FM_HELLO_MAX];
};

void fm__conn_priv_encode(const struct fm_conn_priv *p, uint8_t out[FM_CONN_PRIV_SIZE]);
/* fm__conn_priv_decode -- checks in order: size, magic (-EPROTO), version
 * (-EPROTONOSUPPORT), hello length, reserved, then the peer limits: credits
 * in [2, FM_CREDITS_MAX], control credits in [1, FM_CTRL_CREDITS_MAX],
 * msg_size in [1, FM_MSG_SIZE_MAX] (-EPROTO, the message names the value) */
int fm__conn_priv_decode(const uint8_t *in, size_t n, struct fm_conn_priv *p);

/* ------------------------------------------------------------ objects */

struct fm_provider_ops;

struct fm_transport {
	const struct fm_provider_ops *ops;
	struct fm_transport_cfg cfg; /* defaults filled in; strings not owned */
	char device[64];
	struct fm_caps caps;
	pthread_mutex_t lock; /* region/endpoint creation */
};

struct fm_region {
	struct fm_transport *t;
	void *ptr;
	size_t len;
	unsigned access;
	uint32_t key;
	uint64_t addr; /* as seen by peers */
	bool owned;    /* memory allocated by fm_region_new */
};

struct fm_listener {
	struct fm_transport *t;
};

/* a received data message waiting for fm_ep_recv */
struct fm_rx_entry {
	uint32_t slot;
	uint32_t len;
	const uint8_t *payload;
};

/*
 * An endpoint.  Most of it is owned by its one owning thread (no lock);
 * what lanes on other threads share is marked:
 *   state         atomic: any thread reads it; UP -> CLOSING by the owning
 *                 thread (CAS), -> CLOSED by fm__ep_fail from any thread.
 *   err, reason   written once, under fail_lock, BEFORE state turns CLOSED
 *                 (seq_cst store): read them only after seeing CLOSED.
 *   lanes, nlanes, zombie   under lanes_lock; sync: owning thread.
 */
struct fm_ep {
	struct fm_transport *t;
	_Atomic enum fm_ep_state state;
	int err;                  /* errno of the failure that closed it */
	char reason[FM_REASON_MAX];
	pthread_mutex_t fail_lock; /* the first failure wins */
	bool locks_init;          /* fail_lock, lanes_lock (fm__ep_init) */
	bool loopback;            /* one-sided only */
	bool passive;             /* the accepting side (grants, fences) */
	bool granted;             /* fm_ep_grant done */
	int fence_level;          /* enum fm_fence_level reached (0: none) */
	int event_fd;             /* epoll fd given out by fm_ep_fd */

	/* handshake */
	uint8_t hello[FM_HELLO_MAX];
	uint8_t hello_len;
	uint32_t msg_size;      /* our receive buffers' payload size */
	uint32_t peer_msg_size; /* the peer's */

	/* credits, see transport.h */
	uint32_t rx_data, rx_ctrl;      /* receive buffers we posted */
	uint32_t tx_credits;            /* data messages we may still send */
	uint32_t tx_ctrl_credits;       /* CREDIT messages we may still send */
	uint32_t ret_credits;           /* data buffers freed, not yet returned */
	uint32_t ret_ctrl_credits;      /* control buffers freed, not returned */
	uint32_t credit_threshold;      /* send CREDIT at ret_credits >= this */

	/* queue of data messages, capacity rx_data + rx_ctrl */
	struct fm_rx_entry *rxq;
	uint32_t rxq_cap, rxq_head, rxq_count;

	uint8_t *tx_tmp; /* header + payload staging, msg_size + HDR */

	/* lanes (lane.c) */
	pthread_mutex_t lanes_lock;
	struct fm_lane *lanes;    /* every lane: users', the sync one, retired */
	uint32_t nlanes;          /* users' lanes (cfg.max_lanes) */
	bool zombie;              /* fm_ep_delete done: freed with the last lane */
	struct fm_lane *sync;     /* fm_ep_read/cas/faa's lane; owning thread */
};

/*
 * A lane: the provider's struct embeds it first.  Owned by one thread at a
 * time (the lane's), except:
 *   busy   1 while the lane's thread uses the endpoint's shared resources
 *          (shm: the peer's mapping; verbs: the QP).  Stored seq_cst
 *          before the thread checks that it still may (state UP, verbs
 *          qp_dead), so fm__ep_quiesce, which makes that check fail first
 *          (also seq_cst) and then waits for busy == 0, never tears a
 *          resource down under a lane: a Dekker pair, no lock.
 *   next, retired   under ep->lanes_lock.
 */
struct fm_lane {
	struct fm_ep *ep;
	uint32_t depth;        /* completions the lane holds at most */
	uint32_t outstanding;  /* posted, not yet polled (lane's thread) */
	bool sync;             /* the endpoint's own (fm_ep_read/cas/faa) */
	bool retired;          /* deleted with operations in flight */
	bool watched;          /* fm_lane_fd gave out an fd: every poll
				* runs the provider's (it clears the fd) */
	struct fm_lane *next;
	_Alignas(64) _Atomic int busy;
};

struct fm_provider_ops {
	const char *name;
	/* fills t->caps and provider state; t->cfg is already defaulted */
	int (*transport_init)(struct fm_transport **out, const struct fm_transport_cfg *cfg);
	void (*transport_fini)(struct fm_transport *t);

	int (*region_new)(struct fm_transport *t, size_t len, unsigned access,
			  struct fm_region **out);
	int (*region_reg)(struct fm_transport *t, void *addr, size_t len, unsigned access,
			  struct fm_region **out);
	void (*region_delete)(struct fm_region *r);

	int (*listen)(struct fm_transport *t, const char *addr, struct fm_listener **out);
	void (*listener_delete)(struct fm_listener *l);
	int (*listener_fd)(const struct fm_listener *l);
	int (*accept)(struct fm_listener *l, int timeout_ms, struct fm_ep **out);
	int (*loopback)(struct fm_listener *l, struct fm_ep **out);
	int (*connect)(struct fm_transport *t, const char *addr, const struct fm_conn_priv *priv,
		       int timeout_ms, struct fm_ep **out);
	void (*ep_delete)(struct fm_ep *ep); /* disconnects; then fm__ep_fini */
	/* fm_ep_grant (transport.h): open the peer's one-sided access; UP,
	 * accepting side, not yet granted.  0 or fails the endpoint. */
	int (*grant)(struct fm_ep *ep);
	/* fm_ep_fence (transport.h); not called for the loopback, nor when the
	 * level asked for is reached.  Never blocks.  A level only when no
	 * one-sided op of the peer can land; -EINPROGRESS; or why not. */
	int (*fence)(struct fm_ep *ep, unsigned flags);
	int (*fence_fd)(const struct fm_ep *ep); /* -1: none */

	/* the endpoint's last memory, once no lane refers to it (after
	 * ep_delete tore everything else down) */
	void (*ep_free)(struct fm_ep *ep);

	/* lanes (lane.c checked the arguments against the descriptor, the
	 * lane's depth and, for posts, that the endpoint was UP) */
	/* a lane of `depth`; called under ep->lanes_lock.  0, -ENOSPC, ... */
	int (*lane_new)(struct fm_ep *ep, uint32_t depth, struct fm_lane **out);
	/* the lane's thread is done: true = nothing can reference it any
	 * more, lane_free it now; false = operations in flight, keep it until
	 * the endpoint is freed.  May wait up to op_timeout_ms. */
	bool (*lane_retire)(struct fm_lane *l);
	void (*lane_free)(struct fm_lane *l);
	/* post: 0 (one completion follows) or an errno (none) */
	int (*post_read)(struct fm_lane *l, void *dst, struct fm_region *dst_r,
			 const struct fm_region_desc *src, uint64_t src_off, size_t len,
			 void *ctx);
	int (*post_atomic)(struct fm_lane *l, enum fm_lane_op op, const struct fm_region_desc *rd,
			   uint64_t off, uint64_t a, uint64_t b, void *ctx);
	/* up to n completions (lane.c counts them off `outstanding`) */
	int (*lane_poll)(struct fm_lane *l, struct fm_completion *out, int n);
	/* event mode: sleep until a completion may have come, at most
	 * timeout_ms; NULL: the provider's completions are never late */
	void (*lane_sleep)(struct fm_lane *l, int timeout_ms);
	/* event mode: an fd readable when the lane may have a completion;
	 * NULL or -1: none needed */
	int (*lane_fd)(struct fm_lane *l);

	/* post one message (header included, len <= peer's msg_size + HDR);
	 * -EAGAIN when no send buffer is free right now (call progress) */
	int (*msg_post)(struct fm_ep *ep, const void *buf, size_t len);
	void (*msg_repost)(struct fm_ep *ep, uint32_t slot);
	/* process completions/arrivals (calling fm__ep_rx / fm__ep_fail);
	 * sleep at most timeout_ms (0: never) in event mode when idle; 0 or
	 * a negative errno */
	int (*progress)(struct fm_ep *ep, int timeout_ms);
	/* optional: the endpoint is not UP; hand over what completed before
	 * (messages another thread took off a shared CQ).  Never blocks. */
	void (*reap)(struct fm_ep *ep);
};

extern const struct fm_provider_ops fm__shm_ops;
extern const struct fm_provider_ops fm__verbs_ops;

/* ------------------------------------------------------ shared helpers */

/* fm__ep_init -- common setup after the handshake: credits from the peer's
 * private data; allocates the receive queue.  0 or -ENOMEM. */
int fm__ep_init(struct fm_ep *ep, struct fm_transport *t, const struct fm_conn_priv *peer,
		uint32_t rx_data, uint32_t rx_ctrl);
void fm__ep_fini(struct fm_ep *ep);
/* fm__ep_set_peer -- credits, message size and hello from the peer's
 * private data (when they arrive after fm__ep_init, as on verbs) */
void fm__ep_set_peer(struct fm_ep *ep, const struct fm_conn_priv *peer);
/* fm__ep_fail -- move to CLOSED with errno `err` and a reason, unless
 * already CLOSED (the first reason wins).  Returns err.  Any thread (a lane
 * that met a remote access error fails its endpoint). */
int fm__ep_fail(struct fm_ep *ep, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* fm__ep_not_up -- the error an operation on a non-UP endpoint returns */
int fm__ep_not_up(const struct fm_ep *ep);
/* fm__ep_broke -- a failure that closed the endpoint during this call */
int fm__ep_broke(const struct fm_ep *ep);
/* fm__ep_release -- after the provider's ep_delete: free the endpoint now,
 * or, while lanes refer to it, mark it a zombie for the last fm_lane_delete
 * (lane.c) */
void fm__ep_release(struct fm_ep *ep);
/* fm__ep_quiesce -- wait until no lane is inside a post or another use of
 * the endpoint's shared resources.  The caller first made every later such
 * use fail (state not UP; verbs: qp_dead), with a seq_cst store.  Waits for
 * lane calls in progress only (yields), never for the network.  Owning
 * thread. */
void fm__ep_quiesce(struct fm_ep *ep);
/* fm__lane_enter / fm__lane_leave -- bracket a lane thread's use of the
 * endpoint's shared resources (busy above); enter returns whether the
 * endpoint is still UP (the caller leaves either way) */
static inline bool fm__lane_enter(struct fm_lane *l)
{
	atomic_store_explicit(&l->busy, 1, memory_order_seq_cst);
	return atomic_load_explicit(&l->ep->state, memory_order_seq_cst) == FM_EP_UP;
}
static inline void fm__lane_leave(struct fm_lane *l)
{
	atomic_store_explicit(&l->busy, 0, memory_order_release);
}
/* fm__ep_is_up -- any thread */
static inline bool fm__ep_is_up(const struct fm_ep *ep)
{
	return atomic_load_explicit(&ep->state, memory_order_acquire) == FM_EP_UP;
}

/* lane.c: the local checks of one-sided operations (transport.h: -EINVAL,
 * -ERANGE, -EACCES, -EOPNOTSUPP; the endpoint stays UP) */
int fm__read_check(struct fm_ep *ep, const struct fm_region *dst, size_t dst_off,
		   const struct fm_region_desc *src, uint64_t src_off, size_t len);
int fm__atomic_check(struct fm_ep *ep, const struct fm_region_desc *rd, uint64_t off);
/* fm__lane_open -- a lane of `depth`; `sync`: the endpoint's own (not
 * counted against max_lanes).  0, -ENOTCONN, -ENOSPC, ... */
int fm__lane_open(struct fm_ep *ep, uint32_t depth, bool sync, struct fm_lane **out);

/* fm__ep_rx -- a message arrived in receive slot `slot` */
void fm__ep_rx(struct fm_ep *ep, uint32_t slot, const uint8_t *buf, size_t len);
/* fm__conn_priv_local -- our own private data */
void fm__conn_priv_local(const struct fm_transport *t, const void *hello, size_t hello_len,
			 struct fm_conn_priv *p);

/* time helpers */
uint64_t fm__now_ms(void);
/* remaining ms until deadline (>= 0); deadline UINT64_MAX = forever (-1) */
int fm__remaining_ms(uint64_t deadline);
uint64_t fm__deadline(int timeout_ms);

/* fm__shm_test_no_peerpidfd -- tests only: make the shm provider ignore
 * SO_PEERPIDFD and take the pidfd_open path of kernels before 6.5 */
void fm__shm_test_no_peerpidfd(bool on);

/* fm__random_key -- a random non-zero 32-bit key */
uint32_t fm__random_key(void);

#endif /* FM_TRANSPORT_PRIV_H */
