/* engine_priv.h -- the I/O engine's state and the calls between its files.
 *
 *   engine.c  the object, volumes and attachments, per-thread contexts,
 *             mover completions, submit / poll / fd / rw, counters
 *   eio.c     one I/O as a state machine: the copy-on-write order (and a
 *             background copy piece: the same order without a write)
 *   copy.c    the background copier: its thread, claims, pieces, pace
 *
 * Threads.  An I/O belongs to the thread that submitted it: its agent ops
 * (ops.c) and its state run on that thread, in fm_engine_poll.  Movers may
 * complete on any thread: fm_mover_done queues the request on its I/O's
 * thread (a mutex-protected list) and wakes it through the agent thread's
 * eventfd unless it is that thread.  Volumes and attachments are added
 * under e->lock and never removed before fm_engine_delete; the I/O path
 * reads the attachment table without a lock (entries are published with a
 * release store of the count, and never change afterwards).
 */
#ifndef FM_ENGINE_PRIV_H
#define FM_ENGINE_PRIV_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "agent_priv.h"
#include "flashmeta/engine.h"

#define EN_MAX_MAPS 1024u
#define EN_COPY_CHUNK (1u << 20)   /* bytes of one copy READ/WRITE */
#define EN_COPY_PARALLEL 8u        /* copy chunks in flight per I/O */

struct fm_volume {
	struct fm_volume *next;
	struct fm_mover_ops ops;
	void *ctx;
	uint64_t size;
};

/* fm_engine_stats' counters: the engine's and each mapping's */
struct en_counters {
	_Atomic uint64_t ios, errors, restarts, hits, misses, locks, copies, commits;
	_Atomic uint64_t bytes_read, bytes_written, mover_reqs;
};

struct en_map {
	uint64_t map_id;
	struct fm_volume *src, *tgt;
	struct en_counters *c;      /* the mapping's (in fm_engine.mc) */
};

/* add n to counter f of the I/O's mapping (the engine's totals are the
 * sum over its mappings, taken when asked: one RMW per event, not two) */
#define EN_COUNT(mc, f, n) atomic_fetch_add_explicit(&(mc)->f, (n), memory_order_relaxed)

struct en_thread;

/* The head of an I/O's state (eio.c has the rest): the thread's list. */
struct en_req {
	struct en_req *next;
	struct fm_engine_io *io;
	struct en_counters *mc;     /* its mapping's counters */
};

/* A mover request of an I/O, and where its completion goes. */
struct en_mreq {
	struct fm_mover_req r;
	struct en_req *q;
	struct en_thread *et;
	int status;
	int kind;                   /* eio.c: what it was for */
	uint64_t grain_off;         /* copies: the chunk's offset */
	struct en_mreq *next_done;
};

struct en_thread {
	struct en_thread *next;
	struct fm_engine *e;
	struct ag_thread *th;
	pthread_t self;
	int epfd;                   /* th->efd and the lane's fd */
	int lane_fd;                /* the lane fd in epfd, or -1 */
	pthread_mutex_t mlock;      /* mdone */
	struct en_mreq *_Atomic mdone; /* mover completions from any thread
				     * (pushed and taken under mlock; the
				     * poll loop peeks without it) */
	atomic_bool woken;          /* a mover wrote th->efd: poll reads it */
	struct en_req *reqs;        /* this thread's I/Os in flight */
	bool in_poll;
};

/*
 * The background copier's view of one attached mapping (copy.c), index as
 * fm_engine.maps.  Everything but the atomics is the copier thread's; the
 * atomics (relaxed) are what fm_engine_copy_stats reads.
 */
struct en_cmap {
	uint64_t gen;               /* the generation of `have`'s batch */
	bool have;                  /* a batch of ours at the owner */
	uint64_t id, first, last;   /* ... its grains */
	uint64_t next;              /* its first grain not done yet */
	uint64_t ended_id, ended_next; /* a batch ended, to tell the next claim */
	uint32_t rate;              /* as the owner last said */
	uint32_t shift;             /* grain shift of the mapping */
	uint64_t wake_ns;           /* no claim or piece before */
	uint64_t pace_ns;           /* no piece before (the rate) */
	bool claiming;              /* `claim` in flight */
	bool piece;                 /* `io` in flight: grains [io_first, io_last] */
	uint64_t io_first, io_last;
	uint64_t io_start_ns;       /* when `io` was started (its pace counts from then) */
	struct ag_op claim;
	struct fm_engine_io io;
	struct en_counters c;       /* the pieces' engine counters */
	_Atomic uint64_t claims, batches, pieces, copied, skipped, bytes, errors;
	_Atomic uint64_t a_gen, a_id, a_first, a_last, a_next;
	_Atomic uint32_t a_rate;
};

struct en_copier {
	pthread_t thread;
	atomic_bool running;        /* written by start/stop (one caller at a
				     * time), read by stats */
	atomic_bool stop;
	struct fm_engine_copy_cfg cfg;
	struct en_cmap *_Atomic maps; /* EN_MAX_MAPS, from the first start on
				     * (published with release: stats read it) */
	struct en_thread *_Atomic et; /* the copier thread's context, once made */
};

struct fm_engine {
	struct fm_engine_cfg cfg;
	struct fm_agent *a;
	pthread_mutex_t lock;       /* vols, maps (writers), threads */
	struct fm_volume *vols;
	struct en_map maps[EN_MAX_MAPS];
	_Atomic unsigned nmaps;
	pthread_key_t key;
	struct en_thread *threads;
	struct fm_engine *live_next; /* engine.c's live engines, under its lock */
	struct en_counters mc[EN_MAX_MAPS]; /* per attached mapping */
	struct en_copier cp;        /* the background copier (copy.c) */
};

/* ---- engine.c ---- */
uint64_t en_now_ns(void);
/* the calling thread's context (made on first use): 0 or -ENOMEM */
int en_thread_get(struct fm_engine *e, struct en_thread **out);
/* drive et's I/Os (fm_engine_poll on et): how many completed */
int en_thread_poll(struct fm_engine *e, struct en_thread *et);
/* how long et may sleep (ms, -1: until its fd), as fm_engine_fd */
int en_thread_timeout(struct fm_engine *e, struct en_thread *et);
/* the context of a thread that ends (nothing in flight): freed */
void en_thread_put(struct fm_engine *e, struct en_thread *et);
const struct en_map *en_map_find(struct fm_engine *e, uint64_t map_id);
/* start a mover request of q on volume v; a submit error completes it
 * with that status (the caller sees one path) */
void en_mover_start(struct en_req *q, struct fm_volume *v, struct en_mreq *m);

/* ---- eio.c ---- */
/* a new I/O on et: 0 or -EINVAL / -ENOMEM / -ENOENT (nothing started) */
int en_req_new(struct en_thread *et, struct fm_engine_io *io, struct en_req **out);
/* advance q as far as it goes now; true when it completed (the caller
 * unlinks it and runs its callback; q is freed) */
bool en_req_step(struct en_req *q);
/* a mover request of q completed */
void en_req_mover_done(struct en_req *q, struct en_mreq *m);
/* how long q may sleep (ms), -1: until an event */
int en_req_timeout(struct en_req *q);
void en_req_free(struct en_req *q);
/* a background copy piece of grains [first, last] of mapping m in
 * `generation`, on et, counted in mc: 0 or -ENOMEM (io->op, io->background
 * are set here; io->map_id, offset, length by the caller) */
int en_req_new_copy(struct en_thread *et, struct fm_engine_io *io, const struct en_map *m,
		    struct en_counters *mc, uint64_t generation, uint64_t first, uint64_t last,
		    struct en_req **out);

/* ---- copy.c ---- */
/* fm_engine_copy_stop was called: pieces retry no more */
bool en_copy_stopping(struct fm_engine *e);

#endif /* FM_ENGINE_PRIV_H */
