/* agent_priv.h -- the client agent's state and the calls between its files.
 *
 * Design.  An agent is one client of one owner: the client state machine
 * (proto_client.h) on a protocol thread, and a data path that the engine's
 * own threads run.
 *
 *   protocol thread (proto.c)  owns the endpoint's message side and the
 *        state machine: connects with backoff (only once the last session
 *        quiesced), feeds it messages and ticks, executes its actions,
 *        inserts the engines' answers into the cache (the cache's one
 *        writer), and runs the requests only a message can serve: a lock
 *        that another client holds, a split commit, an UNLOCK the owner
 *        must hand on.
 *   engine threads (lane.c, io.c)  every one-sided operation of an I/O runs
 *        on the calling thread, on a transport lane of its own (a
 *        per-thread context found through a pthread key): the bitmap READ
 *        of a cache miss, the lock CAS, the check READ under a lock, the
 *        release CAS.  No hand-off, no syscall on shm.  Hits take no lock
 *        and write no shared line: fm_client_io_pin counts the bracket
 *        in the thread's own reader cell, fm_cache_lookup reads.
 *
 * Locks and what they cover:
 *   a->lock   requests (submit, inflight, retry lists, every req's
 *             done/status), state/close_status and the counters in a->st;
 *             a->cond is broadcast when a req completes or the session or a
 *             grant changes.
 *   a->eplock the endpoint engines may open lanes on (ep_pub), the list of
 *             thread contexts.  ep_gen is also read without it (atomic).
 *   a->filllock  the engines' answers waiting for the protocol thread.
 * Lock order: eplock, then lock; filllock alone.
 *
 * Endpoint lifetime: the protocol thread publishes a session's endpoint
 * (ep_pub, ep_gen + 1) after connecting, and withdraws it (ep_pub = NULL,
 * ep_gen + 1, under eplock) before deleting it.  Engines open lanes only
 * under eplock while it is published; a lane outlives its endpoint
 * (transport.h), its operations then fail and the engine opens a new one
 * on the next endpoint.  Inside an I/O bracket the session cannot change
 * under an engine: it quiesces first (lease.h R3).
 */
#ifndef FM_AGENT_PRIV_H
#define FM_AGENT_PRIV_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "flashmeta/agent.h"
#include "flashmeta/proto_client.h"
#include "flashmeta/transport.h"

#define AG_READ_MAX (64u * 1024)   /* bytes of one engine READ */
#define AG_FILL_WORDS 8u           /* bitmap words of one fetch window (512 grains) */
#define AG_OP_TIMEOUT_MS 3000u     /* the transport's op_timeout_ms */
#define AG_OP_WAIT_MS 10000        /* an engine waits this long for a completion */

enum req_type { REQ_LOCKWAIT = 1, REQ_COMMIT, REQ_UNLOCKMSG };

/* A request an engine thread hands to the protocol thread and waits for. */
struct req {
	enum req_type type;
	uint64_t map_id, first, last, word;
	uint64_t cookie;
	int status;
	uint64_t out_word;   /* LOCKWAIT: the word the owner installed */
	bool done;
	bool nowait;         /* UNLOCKMSG: nobody waits; the protocol thread frees it */
	struct req *next;
};

/* An engine's answer for the cache: set bits of one READ window. */
struct ag_fill {
	uint64_t map_id, token, w0, nbits;
	uint64_t bits[AG_FILL_WORDS];
};

static inline bool ag_fill_bit(const struct ag_fill *f, uint64_t grain)
{
	uint64_t i = grain - f->w0;

	return grain >= f->w0 && i < f->nbits && (f->bits[i / 64] >> (i % 64) & 1);
}

/* A lock word this thread holds: locks are the thread's, re-entrant
 * (one count per fm_agent_lock), released when the count drops to 0. */
struct ag_held {
	uint64_t map_id, index;
	uint64_t word;              /* what we installed (the session's word) */
	uint64_t token;             /* the session it was taken in (fm_client_token:
				     * the word alone may repeat after an owner
				     * restart -- same client id, same epoch) */
	unsigned count;
};

/* One engine thread's context (pthread key); on a->threads. */
struct ag_thread {
	struct ag_thread *next;
	struct fm_agent *a;
	struct fm_lane *lane;
	uint64_t lane_gen;          /* ep_gen the lane was opened for */
	struct fm_region *buf;      /* READ destination, AG_READ_MAX bytes */
	struct fm_client_reader *reader; /* its bracket counts, or NULL */
	struct ag_held *held;       /* this thread's lock words */
	size_t nheld, capheld;
};

struct fm_agent {
	struct fm_agent_cfg cfg;
	uint8_t key[64];
	char *addr, *provider, *device;
	struct fm_transport *t;
	struct fm_cache *cache;
	struct fm_client *c;
	pthread_t thread;
	int efd;                  /* wakes the protocol thread */
	atomic_bool stop;
	atomic_bool kick;
	atomic_bool joined;       /* a session joined: reset the backoff */
	_Atomic int dead;         /* the state machine died (-ENOMEM): all fail */
	_Atomic uint32_t step_bound_ms; /* M + G of this session's lease */
	/* counters engines bump (relaxed; read for stats) */
	_Atomic uint64_t steps, steps_overdue, steps_refused;
	_Atomic uint64_t fetches, locks, commits, unlocks, locks_lost;

	/* the endpoint for engine lanes */
	pthread_mutex_t eplock;
	struct fm_ep *ep;         /* protocol thread: the session's endpoint */
	struct fm_ep *ep_pub;     /* under eplock: what lanes may be opened on */
	_Atomic uint64_t ep_gen;
	pthread_key_t tkey;
	struct ag_thread *threads;
	struct fm_client_reader **spare; /* readers of exited threads, reused */
	size_t nspare, capspare;

	/* requests */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct req *submit;       /* new requests */
	struct req *inflight;     /* issued, waiting for their NOTE */
	struct req *retry;        /* LOCKWAIT that got -EBUSY: re-issued each round */
	uint64_t next_cookie;
	int state;                /* enum fm_client_state, mirrored */
	int close_status;         /* status of the last CLOSED note */
	struct fm_agent_stats st;

	/* answers for the cache */
	pthread_mutex_t filllock;
	struct ag_fill *fills;
	size_t nfills, capfills;
};

/* ---- agent.c ---- */
uint64_t ag_now_ms(void);
void ag_deadline_ts(struct timespec *ts, uint32_t ms);
void ag_wake(struct fm_agent *a);
/* a->lock held: sleep until a broadcast, 20 ms, or the deadline; true
 * once the deadline passed */
bool ag_wait_until(struct fm_agent *a, const struct timespec *deadline);
void ag_map_pub(const struct fm_wire_mapdesc *d, bool usable, struct fm_agent_map *out);

/* ---- proto.c ---- */
void *ag_proto_main(void *arg);
/* hand a request to the protocol thread and wait for it (cfg.wait_ms);
 * returns req->status */
int ag_req_run(struct fm_agent *a, struct req *r);
/* hand a request over without waiting (heap-allocated, freed there) */
void ag_req_post(struct fm_agent *a, struct req *r);
/* queue an engine's READ answer for the cache; never blocks for long */
void ag_fill_post(struct fm_agent *a, const struct ag_fill *f);

/* ---- lane.c ---- */
/* The calling thread's context (made on first use); 0 or -ENOMEM. */
int ag_ctx(struct fm_agent *a, struct ag_thread **out);
/* ... with a READ buffer and a lane on the current endpoint;
 * -ECONNRESET (no session endpoint), -ENOMEM, or a lane error. */
int ag_thread_get(struct fm_agent *a, struct ag_thread **out);
/* Free every thread context (fm_agent_delete; no engine call runs). */
void ag_threads_free(struct fm_agent *a);
/* One-sided, on the calling thread, waiting for its completion:
 * 0 or a negative errno (-ECONNRESET when the endpoint went away). */
int ag_read(struct fm_agent *a, struct ag_thread *th, const struct fm_region_desc *src,
	    uint64_t off, size_t len);
int ag_cas(struct fm_agent *a, struct ag_thread *th, const struct fm_region_desc *rd,
	   uint64_t off, uint64_t expect, uint64_t desired, uint64_t *old);
/* A CAS and a READ posted together on the thread's lane: one round trip.
 * The READ executes after the CAS (a lane's operations run in order at
 * the owner: one connection -- verbs: one RC QP, whose responder executes
 * requests in order; shm: at post time), so when the CAS took a free word
 * the bytes read are what the previous holder left published before its
 * release.  0 with *old and th->buf filled, or a negative errno. */
int ag_cas_read(struct fm_agent *a, struct ag_thread *th, const struct fm_region_desc *rd,
		uint64_t off, uint64_t expect, uint64_t desired, uint64_t *old,
		const struct fm_region_desc *src, uint64_t src_off, size_t len);
/* The bitmap window of `grain` (AG_FILL_WORDS words): READ it into *f
 * and hand its set bits to the cache (ag_fill_bit(f, grain) is grain's
 * answer).  0, -EAGAIN (the map's confirmations are not trusted now),
 * -ERANGE, or a READ error. */
int ag_fetch(struct fm_agent *a, const struct fm_wire_mapdesc *d, uint64_t grain,
	     struct ag_fill *f);

#endif /* FM_AGENT_PRIV_H */
