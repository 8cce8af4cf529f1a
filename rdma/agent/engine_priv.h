/* engine_priv.h -- the I/O engine's state and the calls between its files.
 *
 *   engine.c  the object, volumes and attachments, per-thread contexts,
 *             mover completions, submit / poll / fd / rw, counters
 *   eio.c     one I/O as a state machine: the copy-on-write order
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

struct fm_engine {
	struct fm_engine_cfg cfg;
	struct fm_agent *a;
	pthread_mutex_t lock;       /* vols, maps (writers), threads */
	struct fm_volume *vols;
	struct en_map maps[EN_MAX_MAPS];
	_Atomic unsigned nmaps;
	pthread_key_t key;
	struct en_thread *threads;
	struct en_counters mc[EN_MAX_MAPS]; /* per attached mapping */
};

/* ---- engine.c ---- */
uint64_t en_now_ns(void);
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

#endif /* FM_ENGINE_PRIV_H */
