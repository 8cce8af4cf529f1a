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
 *   th->heldlock a thread's lock words, against fm_agent_locks (the thread
 *             itself reads them without it: it is their one writer).
 * Lock order: eplock, then lock; eplock, then a heldlock; filllock alone.
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
#include "flashmeta/geometry.h"
#include "flashmeta/proto_client.h"
#include "flashmeta/transport.h"

#define AG_READ_MAX (64u * 1024)   /* bytes of one engine READ */
#define AG_FILL_WORDS 8u           /* bitmap words of one fetch window (512 grains,
				    * FM_WIRE_QUERY_MAX: one SPLIT_QUERY) */
#define AG_OP_TIMEOUT_MS 3000u     /* the transport's op_timeout_ms */
#define AG_OP_WAIT_MS 10000        /* an engine waits this long for a completion */
#define AG_SLOTS 1024u             /* 64-byte READ slots of a thread's buffer */

enum req_type { REQ_LOCKWAIT = 1, REQ_COMMIT, REQ_UNLOCKMSG, REQ_CLAIM,
		REQ_QUERY /* SPLIT_QUERY of first..last (decide_by_message) */ };

/* The owner's answer to a COPY_CLAIM (background copy, flashmeta/copy.h). */
struct ag_batch {
	uint32_t status;     /* enum fm_copy_status */
	uint32_t wait_ms;    /* WAIT */
	uint32_t rate;       /* the mapping's copy rate */
	uint64_t generation; /* the mapping's, at the owner */
	uint64_t id, first, last; /* OK: the batch */
};

struct ag_thread;

/* A request an engine thread hands to the protocol thread.  Two ways to
 * wait: `th` set (the thread's op layer: adone + the thread's eventfd), or
 * `nowait` (nobody: freed there). */
struct req {
	enum req_type type;
	uint64_t map_id, first, last, word;
	uint64_t cookie;
	int status;
	uint64_t out_word;   /* LOCKWAIT: the word the owner installed */
	uint64_t generation, done_batch, done_next; /* CLAIM */
	uint32_t max_grains; /* CLAIM */
	struct ag_batch batch; /* CLAIM: the answer (status 0) */
	uint64_t bits[AG_FILL_WORDS]; /* QUERY: the answer (status 0); bit i is
				       * grain first + i */
	bool nowait;         /* UNLOCKMSG: nobody waits; the protocol thread frees it */
	struct ag_thread *th;  /* an op's request: wake this thread */
	_Atomic bool adone;    /* ... set (release) after status/out_word */
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

/* A lock word this thread holds for an owner (the thread itself for the
 * blocking calls, an I/O for the engine): re-entrant for that owner (one
 * count per lock), released when the count drops to 0. */
struct ag_held {
	const void *owner;
	uint64_t map_id, index;
	uint64_t first, last;       /* the grains the word covers */
	uint64_t word;              /* what we installed (the session's word) */
	uint64_t token;             /* the session it was taken in (fm_client_token:
				     * the word alone may repeat after an owner
				     * restart -- same client id, same epoch) */
	uint64_t since_ms;          /* ag_now_ms() when it was taken (count 0 -> 1) */
	unsigned count;
};

/*
 * A one-sided operation of an engine thread, driven by ag_progress on that
 * thread (ops.c): the I/O engine's polled form runs many at once, the
 * blocking calls one (ag_op_wait).  An op belongs to the thread that
 * started it; it is done (op->done, then op->cb) exactly once.
 */
enum ag_op_kind {
	AG_OP_FETCH = 1, /* READ the bitmap window of `first`, fill the cache */
	AG_OP_LOCK,      /* take the word of grain `first`; split = its bit */
	AG_OP_UNLOCK,    /* give one count of it back */
	AG_OP_COMMIT,    /* SPLIT_COMMIT of first..last (their words held) */
	AG_OP_RAWREAD,   /* READ `len` bytes at `first` of the bitmap into `out` */
	AG_OP_CLAIM,     /* COPY_CLAIM (generation, done_batch, done_next,
			  * max_grains); the answer in `batch` */
};

struct ag_op {
	/* in */
	enum ag_op_kind kind;
	uint64_t map_id, first, last;
	void *out;                  /* RAWREAD destination */
	size_t len;                 /* RAWREAD bytes (<= AG_READ_MAX) */
	uint64_t generation, done_batch, done_next; /* CLAIM */
	uint32_t max_grains;        /* CLAIM */
	void (*cb)(struct ag_op *op); /* when done, from ag_progress; may be NULL */
	void *ctx;
	const void *owner;          /* LOCK/UNLOCK/COMMIT: whose holds (NULL: the
				     * thread's) -- another owner on the same
				     * thread waits like another thread */
	/* out, once done */
	bool done;
	int status;                 /* 0 or a negative errno */
	int split;                  /* LOCK: 1 already split; FETCH: the bit */
	struct ag_fill fill;        /* FETCH: the window read */
	struct ag_batch batch;      /* CLAIM: the owner's answer (status 0) */
	/* private (ops.c) */
	int step;
	struct fm_wire_mapdesc d;
	uint64_t word, token, old;
	unsigned pending;           /* lane operations in flight */
	int lstatus;                /* the first failed READ's status */
	int cas_status;             /* the CAS's status (old: its word) */
	int slot;                   /* 64-byte slot of the thread's buffer, or -1 */
	uint64_t posted_ms;         /* when the last lane operation was posted */
	uint64_t wake_ms;           /* a backoff: not before */
	uint64_t deadline_ms;
	unsigned backoff_us;
	uint64_t lane_gen;          /* the lane its operations were posted on */
	struct req req;             /* LOCKWAIT / COMMIT */
	bool req_live;              /* req handed over, not done */
	struct ag_op *next;         /* the thread's ops */
};

/* One engine thread's context (pthread key); on a->threads. */
struct ag_thread {
	struct ag_thread *next;
	struct fm_agent *a;
	struct fm_lane *lane;
	uint64_t lane_gen;          /* ep_gen the lane was opened for */
	struct fm_region *buf;      /* READ destinations: AG_SLOTS slots of 64 bytes */
	struct fm_region *big;      /* RAWREAD destination, AG_READ_MAX bytes, lazily */
	bool big_busy;
	uint64_t slots[AG_SLOTS / 64]; /* set: slot in use */
	int efd;                    /* the protocol thread wakes us: an op's req is done */
	atomic_bool kicked;         /* ... or the endpoint was dropped (ep_drop):
				     * ag_progress reads the eventfd back */
	struct ag_op *ops;          /* started, not done */
	bool in_progress;           /* ag_progress runs (callbacks start ops) */
	struct fm_client_reader *reader; /* its bracket counts, or NULL */
	/* this thread's lock words: written by the thread only, under
	 * heldlock; read by the thread without it, by fm_agent_locks (any
	 * thread, under eplock for the list of threads) with it.  Taken once
	 * per lock and unlock, never on a cache hit. */
	pthread_mutex_t heldlock;
	struct ag_held *held;
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
	_Atomic uint64_t commits_sent;
	_Atomic uint64_t lanes_broken;  /* lanes abandoned without completions */
	_Atomic uint64_t lane_broken;   /* ep_gen of the last such lane (0: none
					 * since the protocol thread looked):
					 * that session ends */

	/* the endpoint for engine lanes */
	pthread_mutex_t eplock;
	struct fm_ep *ep;         /* protocol thread: the session's endpoint */
	struct fm_ep *ep_pub;     /* under eplock: what lanes may be opened on */
	_Atomic uint64_t ep_gen;
	pthread_key_t tkey;
	struct fm_agent *live_next; /* lane.c's live agents, under its lock */
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
uint64_t ag_now_us(void);
void ag_deadline_ts(struct timespec *ts, uint32_t ms);
/* The one wait policy of a caller that blocks on its own thread's work
 * (ag_op_run, fm_engine_rw): until *done, call progress(ctx) for up to
 * cfg.spin_us (on a fabric a completion comes sooner than a thread wakes
 * from a sleep), then sleep(ctx, 100) once -- a sleep that returns when
 * an fd or a timeout says progress has work, at most 100 ms -- and go
 * round again.  *done is set by progress's callbacks, on this thread. */
void ag_wait(struct fm_agent *a, const bool *done, int (*progress)(void *ctx),
	     void (*sleep)(void *ctx, int cap_ms), void *ctx);
void ag_wake(struct fm_agent *a);
/* a->lock held: sleep until a broadcast, 20 ms, or the deadline; true
 * once the deadline passed */
bool ag_wait_until(struct fm_agent *a, const struct timespec *deadline);
void ag_map_pub(const struct fm_wire_mapdesc *d, bool usable, struct fm_agent_map *out);

/* ---- proto.c ---- */
void *ag_proto_main(void *arg);
/* hand a request over without waiting (heap-allocated, freed there) */
void ag_req_post(struct fm_agent *a, struct req *r);
/* hand an op's request over (r->th set): its answer sets r->adone and
 * wakes r->th's eventfd */
void ag_req_submit(struct fm_agent *a, struct req *r);
/* take back a request not answered yet: true (it will never be), or
 * false (answered meanwhile: r->adone) */
bool ag_req_cancel(struct fm_agent *a, struct req *r);
/* queue an engine's READ answer for the cache; never blocks for long */
void ag_fill_post(struct fm_agent *a, const struct ag_fill *f);

/* ---- lane.c ---- */
/* The calling thread's context (made on first use); 0 or -ENOMEM. */
int ag_ctx(struct fm_agent *a, struct ag_thread **out);
/* Make sure th has a lane on the current session endpoint (after the
 * endpoint changed: ops posted on the old one fail -ECONNRESET first).
 * 0, -ECONNRESET (no session endpoint), -ENOMEM, or a lane error. */
int ag_lane_ready(struct fm_agent *a, struct ag_thread *th);
/* Free every thread context (fm_agent_delete; no engine call runs). */
void ag_threads_free(struct fm_agent *a);
/* The agents whose thread contexts a thread's exit may free
 * (ag_thread_dtor, the key's destructor): added when fm_agent_new
 * succeeded, removed before the contexts are freed. */
void ag_live_add(struct fm_agent *a);
void ag_live_remove(struct fm_agent *a);
void ag_thread_dtor(void *p);
/* READ slots of th->buf: a slot index or -1 (all in use) */
int ag_slot_get(struct ag_thread *th);
void ag_slot_put(struct ag_thread *th, int slot);
/* a failed one-sided operation: the session's endpoint went away (or
 * refused the access: a stale descriptor) -- start the I/O again later */
int ag_op_failed(int status);

/* ---- ops.c ---- */
/* Start op on th: 0 (it completes in ag_progress -- it may be done
 * already) or a negative errno (never started, nothing to wait for). */
int ag_op_start(struct fm_agent *a, struct ag_thread *th, struct ag_op *op);
/* Drive th's ops: lane completions, answers of the protocol thread,
 * backoffs, deadlines; run the callbacks of those done.  Never blocks.
 * Returns how many ops finished. */
int ag_progress(struct fm_agent *a, struct ag_thread *th);
/* How long th may sleep (ms; -1: nothing pending) before ag_progress has
 * something to do that no fd announces (a backoff, a deadline, a poll). */
int ag_progress_timeout(struct fm_agent *a, struct ag_thread *th);
/* Sleep until ag_progress may have work: th's eventfd, its lane's fd, or
 * ag_progress_timeout (capped at `cap_ms`). */
void ag_idle(struct fm_agent *a, struct ag_thread *th, int cap_ms);
/* Start op and progress until it is done; returns op->status. */
int ag_op_run(struct fm_agent *a, struct ag_thread *th, struct ag_op *op);

/* ---- io.c ---- */
/* fm_agent_io_begin without waiting: 0, -EAGAIN (not now: no session, no
 * grant, a release going on), or the agent is dead */
int ag_io_try_begin(struct fm_agent *a, struct ag_thread *th, uint64_t map_id,
		    struct fm_agent_io *io);
/* fm_agent_step_begin without waiting: 0 (*token set), -EAGAIN (within
 * the margin, a renewal is on its way: ask again soon), -EKEYEXPIRED */
int ag_step_try(struct fm_agent *a, struct fm_agent_io *io, uint64_t *token);

/* ---- plan.c ---- */
/* A plan that learns unknown grains from READ windows (the cache only
 * keeps what is split).  ag_plan_try: 0 (plan complete), a planner error,
 * or -EAGAIN with *miss = the first grain nobody knows: READ its window
 * (AG_OP_FETCH) and hand it to ag_plan_learn, then try again.  Every
 * window is read at most once per plan. */
struct ag_plan {
	struct fm_agent *a;
	uint64_t map_id;
	struct fm_geom g;
	bool cow;
	enum fm_io_op op;
	uint64_t offset, length;
	uint64_t w0, nwin;          /* windows the I/O can touch */
	struct ag_fill *win;        /* nbits == 0: not read */
	struct ag_fill small[2];
	uint64_t miss;
};
/* volume_size: the volume's bytes (a partial last grain), 0: whole grains */
int ag_plan_init(struct ag_plan *p, struct fm_agent *a, const struct fm_agent_io *io,
		 enum fm_io_op op, uint64_t offset, uint64_t length, uint64_t volume_size);
int ag_plan_try(struct ag_plan *p, struct fm_plan *plan, uint64_t *miss);
void ag_plan_learn(struct ag_plan *p, const struct ag_fill *f);
void ag_plan_fini(struct ag_plan *p);

#endif /* FM_AGENT_PRIV_H */
