/* transport_priv.h -- the provider ops table and the state every provider
 * shares (endpoint state, message credits, region checks).
 *
 * Layering -- provider-independent, one job a file (public entry points,
 * argument checks, then the provider's op):
 *   transport.c  the provider registry and the transport object.
 *   region.c     regions, their descriptors, random keys.
 *   listener.c   listen, accept, loopback, connect.
 *   endpoint.c   endpoint state, failure, grant, fence; one-sided op checks.
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

/* Owned by the one thread using the endpoint: no lock. */
struct fm_ep {
	struct fm_transport *t;
	enum fm_ep_state state;
	int err;                  /* errno of the failure that closed it */
	char reason[FM_REASON_MAX];
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

	/* one-sided; arguments already checked against the descriptor */
	int (*read)(struct fm_ep *ep, void *dst, struct fm_region *dst_r,
		    const struct fm_region_desc *src, uint64_t src_off, size_t len);
	int (*atomic)(struct fm_ep *ep, bool cas, const struct fm_region_desc *rd, uint64_t off,
		      uint64_t a, uint64_t b, uint64_t *old);

	/* post one message (header included, len <= peer's msg_size + HDR);
	 * -EAGAIN when no send buffer is free right now (call progress) */
	int (*msg_post)(struct fm_ep *ep, const void *buf, size_t len);
	void (*msg_repost)(struct fm_ep *ep, uint32_t slot);
	/* process completions/arrivals (calling fm__ep_rx / fm__ep_fail);
	 * sleep at most timeout_ms (0: never) in event mode when idle; 0 or
	 * a negative errno */
	int (*progress)(struct fm_ep *ep, int timeout_ms);
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
 * already CLOSED (the first reason wins).  Returns err. */
int fm__ep_fail(struct fm_ep *ep, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* fm__ep_not_up -- the error an operation on a non-UP endpoint returns */
int fm__ep_not_up(const struct fm_ep *ep);
/* fm__ep_broke -- a failure that closed the endpoint during this call */
int fm__ep_broke(const struct fm_ep *ep);
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
