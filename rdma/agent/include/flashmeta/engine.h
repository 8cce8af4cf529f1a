/* engine.h -- the FlashCopy I/O engine: the library does the copy-on-write.
 *
 * A storage I/O engine registers its volumes with data movers (read,
 * write and flush of a byte range, optionally a whole-grain copy) and
 * hands every host I/O of a mapping to fm_engine; the library plans it
 * with the confirmation cache and executes it in the order that keeps the
 * snapshot invariant -- "a target reads as the source did at the trigger,
 * plus the target's own writes" (flashmeta/lease.h, agent.h):
 *
 *   DIRECT               the I/O as asked
 *   REDIRECT_TO_SOURCE   read the source, THEN check the grain is still
 *                        unsplit (a source grain is overwritten only after
 *                        its split is durable and published); split
 *                        meanwhile: read the target instead
 *   COPY_THEN_WRITE /    lock every such grain of the I/O in ascending
 *   WRITE_AND_SPLIT      order (no deadlock between I/Os: one order), copy
 *                        the unsplit ones source -> target, write the
 *                        target data, FLUSH the target, commit the splits
 *                        (one SPLIT_COMMIT per contiguous run; durable at
 *                        the owner when it returns), unlock; only then
 *                        write the source.  A grain found split under its
 *                        lock is not copied: concurrent I/Os to one grain,
 *                        from any thread or node, copy it once.
 *
 * Every destructive step (copy, target write, flush, source write) runs
 * inside the lease's margin (lease.h R2) and carries the fencing token of
 * the session whose locks it runs under (R5): a mover for storage that
 * can check one refuses a stale writer with -EKEYREJECTED.
 *
 * TWO FORMS.
 *   fm_engine_rw()      synchronous: returns when the I/O is done.  Any
 *                       number of threads at once.
 *   fm_engine_submit()  polled: 0 and the I/O's callback then runs exactly
 *                       once, from fm_engine_poll() on the SUBMITTING
 *                       thread; or a negative errno and it never runs.
 *                       fm_engine_poll() drives that thread's I/Os and never
 *                       blocks; fm_engine_fd() wakes an idle poller.
 *   Movers may complete synchronously (fm_mover_done before submit
 *   returns) or later from any thread; the library carries on from the
 *   submitting thread's next poll.
 *
 * CONTEXT AND BLOCKING, per call:
 *   fm_engine_new, _delete, _volume_add, _attach   setup: any thread, not
 *       concurrently with I/O on the same objects; never block on the
 *       owner (delete: no I/O may be in flight)
 *   fm_engine_thread_exit   the calling thread, never blocks
 *   fm_engine_submit, _poll, _fd   the polled form: any number of threads,
 *       each driving its own I/Os; never block (a lock another client
 *       holds, a commit, a mover in flight: the I/O waits, the thread
 *       does not)
 *   fm_engine_rw   the synchronous form: blocks the calling thread (it
 *       busy-polls for fm_agent_cfg.spin_us, then sleeps on fm_engine_fd,
 *       between polls) until the I/O is done
 *   fm_engine_stats, _map_stats, _copy_stats   any thread, any time, never
 *       block
 *   fm_engine_copy_start, _copy_stop   setup: any thread, not concurrently
 *       with each other or with delete; start never blocks, stop blocks
 *       until the copier thread ended (see "background copy")
 *   fm_mover_done   any thread, exactly once per request, never blocks
 *   cfg.trace   inline on the thread driving the I/O (see "trace")
 *   Movers are called from the submitting thread's submit/poll; a mover's
 *   submit must not call back into fm_engine_* except fm_mover_done.
 *
 * ERRORS (an I/O's status; one errno per meaning):
 *   transient -- the library retried for cfg.retry_ms and gave up; the
 *   engine may resubmit later:
 *     -ETIMEDOUT    no session, no grant of the mapping, or no answer of
 *                   the owner within the time (the owner is down or the
 *                   mapping is being transitioned)
 *   fatal for this I/O, the mapping is fine:
 *     -EIO, ...     a mover's own errno, passed through (the data state:
 *                   a failed write may have written part; no split was
 *                   recorded for a copy that did not complete)
 *     -EKEYREJECTED a mover refused the fencing token after every retry
 *   fatal for the mapping until the engine acts:
 *     -ENOENT       the owner does not serve the mapping, or no volumes
 *                   are attached to it here (fm_engine_attach)
 *   the engine's mistake (nothing was done):
 *     -EINVAL       bad arguments (NULL buffer, unknown op, length 0)
 *     -ERANGE       beyond the volume
 *     -ENOMEM       out of memory
 *   Inside, the library retries -ECONNRESET (session broke), -EAGAIN
 *   (mapping being released), -EKEYEXPIRED (lease lost before a step),
 *   -ESTALE (generation moved), -ENOLCK (lock lost) and a mover's
 *   -EKEYREJECTED: the I/O starts again from its plan.
 */
#ifndef FLASHMETA_ENGINE_H
#define FLASHMETA_ENGINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "flashmeta/agent.h"
#include "flashmeta/planner.h"

#ifdef __cplusplus
extern "C" {
#endif

struct fm_engine;
struct fm_engine_io;
struct fm_volume;

/* ------------------------------------------------------------- movers */

enum fm_mover_op {
	FM_MOVER_READ = 1,  /* length bytes at offset into buf */
	FM_MOVER_WRITE,     /* length bytes from buf at offset */
	FM_MOVER_FLUSH,     /* make every completed WRITE/COPY durable */
	FM_MOVER_COPY,      /* length bytes at offset of `src` to the same
			     * offset here (only with ops.copy set) */
};

/* One mover request.  The library owns it; a mover reads the fields
 * and calls fm_mover_done(r, status) exactly once. */
struct fm_mover_req {
	enum fm_mover_op op;
	uint64_t offset, length;   /* bytes of the volume */
	void *buf;                 /* READ, WRITE */
	uint64_t token;            /* fencing token (lease.h R5) of WRITE,
				    * FLUSH, COPY; 0 for READ */
	struct fm_volume *src;     /* COPY: the volume to copy from */
	void *priv_[3];            /* the library's */
};

struct fm_mover_ops {
	/* start r on the volume whose ctx this is: 0 -- fm_mover_done(r, st)
	 * follows exactly once (before this returns, or later from any
	 * thread); a negative errno -- it never will.  Required. */
	int (*submit)(void *ctx, struct fm_mover_req *r);
	/* FM_MOVER_COPY supported (a backend with server-side copy);
	 * otherwise the library READs the source and WRITEs the target */
	bool copy;
};

void fm_mover_done(struct fm_mover_req *r, int status);

/* -------------------------------------------------------------- trace */

/*
 * What the library does with an I/O, step by step, for checkers, tracers
 * and fault injectors (the point-in-time checker tests/pit drives every
 * I/O through this).  The hook runs inline on the thread that drives the
 * I/O (its submit or poll, fm_engine_rw's thread), before the step it
 * names; it must not call fm_engine_*.  A hook that sleeps stalls that
 * thread's I/Os and nothing else -- which is how a checker plays slow
 * storage.  Events of one I/O, in order:
 *
 *   ATTEMPT      an attempt began: the mapping is pinned at `map`
 *                (generation, state).  For a write, the hook may rewrite
 *                io->buf here: nothing of this attempt was moved yet
 *                (an earlier attempt's writes may have landed)
 *   MOVER        a mover request is about to be submitted (`step`, `req`)
 *   LOCKED       grain `first` is locked; `split`: found split under the
 *                lock (nothing to copy or commit for it)
 *   COMMIT       a SPLIT_COMMIT of grains [first, last] is about to be sent
 *   COMMITTED    its answer: rc 0 = durable at the owner
 *   UNLOCKED     grain `first`'s lock was given back (rc: the unlock's)
 *   ATTEMPT_END  the attempt ended with rc (0: the I/O completes; a
 *                transient rc: another ATTEMPT may follow)
 */
enum fm_engine_event_kind {
	FM_ENGINE_EV_ATTEMPT = 1,
	FM_ENGINE_EV_MOVER,
	FM_ENGINE_EV_LOCKED,
	FM_ENGINE_EV_COMMIT,
	FM_ENGINE_EV_COMMITTED,
	FM_ENGINE_EV_UNLOCKED,
	FM_ENGINE_EV_ATTEMPT_END,
};

/* what a mover request is for */
enum fm_engine_step {
	FM_ENGINE_STEP_READ = 1,      /* a DIRECT read of the volume asked */
	FM_ENGINE_STEP_REDIRECT,      /* a target read served from the source */
	FM_ENGINE_STEP_RETARGET,      /* ... of a grain split meanwhile: the target */
	FM_ENGINE_STEP_COPY_READ,     /* a grain copy: read the source chunk */
	FM_ENGINE_STEP_COPY_WRITE,    /* ... write it to the target */
	FM_ENGINE_STEP_COPY,          /* ... by the mover's own COPY */
	FM_ENGINE_STEP_TARGET_WRITE,  /* a target write under its grain locks */
	FM_ENGINE_STEP_FLUSH,         /* the target durable before the commits */
	FM_ENGINE_STEP_WRITE,         /* the write as asked: a source write after
				       * its commits, or a DIRECT write */
};

struct fm_engine_event {
	enum fm_engine_event_kind kind;
	uint32_t attempt;                /* 1, 2, ... */
	const struct fm_agent_map *map;  /* ATTEMPT: the pinned snapshot */
	enum fm_engine_step step;        /* MOVER */
	const struct fm_mover_req *req;  /* MOVER */
	uint64_t first, last;            /* LOCKED, UNLOCKED: the grain (first
					  * == last); COMMIT(TED): the run */
	bool split;                      /* LOCKED */
	int rc;                          /* COMMITTED, UNLOCKED, ATTEMPT_END */
};

typedef void (*fm_engine_trace_fn)(void *ctx, struct fm_engine_io *io,
				   const struct fm_engine_event *ev);

const char *fm_engine_step_name(enum fm_engine_step s);

/* ---------------------------------------------------------- the engine */

struct fm_engine_cfg {
	struct fm_agent *agent;   /* required; the engine does not own it */
	uint32_t retry_ms;        /* transient failures are retried this long;
				   * 0 -> 10000 */
	uint32_t max_io_bytes;    /* the largest I/O; 0 -> 16 MiB */
	fm_engine_trace_fn trace; /* optional (see above); NULL: none */
	void *trace_ctx;
};

/* 0, -EINVAL, -ENOMEM */
int fm_engine_new(const struct fm_engine_cfg *cfg, struct fm_engine **out);
/* No I/O may be in flight; a background copier is stopped first
 * (fm_engine_copy_stop).  NULL-safe, sets *ep = NULL. */
void fm_engine_delete(struct fm_engine **ep);

/* A volume of `size` bytes: the movers that read and write it.  ctx is
 * handed to every call.  The volume lives until fm_engine_delete.
 * 0, -EINVAL, -ENOMEM. */
int fm_engine_volume_add(struct fm_engine *e, const struct fm_mover_ops *ops, void *ctx,
			 uint64_t size, struct fm_volume **out);
/* Mapping map_id copies src to tgt (the same size; the mapping's grain
 * count must fit it: checked at each I/O, -ENOENT otherwise).  0, -EINVAL
 * (same volume, NULL, sizes differ), -EEXIST (attached already), -ENOMEM. */
int fm_engine_attach(struct fm_engine *e, uint64_t map_id, struct fm_volume *src,
		     struct fm_volume *tgt);

/* ---------------------------------------------------------------- I/O */

/* What one I/O cost (filled when it completes). */
struct fm_engine_io_stats {
	uint32_t attempts;        /* plans run (1 + restarts) */
	uint32_t hits, misses;    /* grains the cache knew / READ windows */
	uint32_t locks, copies, commits;
	uint64_t ns;              /* submit to completion */
};

struct fm_engine_io {
	/* in */
	uint64_t map_id;
	enum fm_io_op op;
	bool background;          /* the library's: a piece of the background
				   * copy (fm_engine_copy_start), as the trace
				   * hook sees it; ignored in what is submitted */
	uint64_t offset, length;  /* bytes of the volume the op names */
	void *buf;
	void (*done)(struct fm_engine_io *io, int status); /* polled form */
	void *ctx;                /* the caller's */
	/* out */
	int status;
	struct fm_engine_io_stats st;
	/* the library's */
	void *priv_;
};

/* The polled form (see above).  0 or -EINVAL / -ENOMEM / -ENOENT. */
int fm_engine_submit(struct fm_engine *e, struct fm_engine_io *io);
/* Drive this thread's I/Os; returns how many completed (their callbacks
 * ran), never blocks. */
int fm_engine_poll(struct fm_engine *e);
/* This thread's: readable when fm_engine_poll may have work; *timeout_ms
 * (may be NULL) gets how long an idle thread may sleep at most (-1:
 * until the fd).  -1 when the thread has nothing in flight. */
int fm_engine_fd(struct fm_engine *e, int *timeout_ms);

/* The calling thread is done with the engine (for now, or for good): its
 * context here and its agent context (lane, buffers) are freed now.
 * Engine threads call this, not fm_agent_thread_exit (the engine's
 * context refers to the agent's).  The thread's next call makes new
 * contexts.  0, or -EBUSY (I/Os of this thread in flight: nothing was
 * freed).  A thread that exits without it is cleaned up by its exit the
 * same way (thread-specific data destructors), unless I/Os of it are in
 * flight or it holds lock words: then its contexts (and the lane) stay
 * until fm_engine_delete / fm_agent_delete. */
int fm_engine_thread_exit(struct fm_engine *e);

/* The synchronous form: submit and poll on this thread until done.
 * Returns the I/O's status; *st (may be NULL) gets its stats. */
int fm_engine_rw(struct fm_engine *e, uint64_t map_id, enum fm_io_op op, uint64_t offset,
		 uint64_t length, void *buf, struct fm_engine_io_stats *st);

/* ---------------------------------------------------------- counters */

struct fm_engine_stats {
	uint64_t ios, errors, restarts;
	uint64_t hits, misses, locks, copies, commits;
	uint64_t bytes_read, bytes_written;
	uint64_t mover_reqs;
};
/* The engine's, since fm_engine_new; any thread, never blocks. */
void fm_engine_stats(struct fm_engine *e, struct fm_engine_stats *st);
/* One attached mapping's: 0, or -ENOENT (not attached). */
int fm_engine_map_stats(struct fm_engine *e, uint64_t map_id, struct fm_engine_stats *st);

/* ---------------------------------------------------- background copy */

/*
 * Background copy (flashmeta/copy.h): the unsplit grains of a mapping in
 * COPYING copied by the library, so the copy finishes -- the owner then
 * takes the mapping to idle_or_copied.  fm_engine_copy_start starts a
 * copier thread in the engine.  For every attached mapping the agent
 * knows as COPYING and granted, it claims a batch of grains from the
 * owner (COPY_CLAIM: only grains unsplit in the owner's durable bitmap,
 * claimed by no other copier; at most one batch per mapping at a time)
 * and copies it in pieces of cfg.piece_grains, each piece exactly as a
 * copy-on-write (eio.c): lock its grains in ascending order -- a grain
 * found split under its lock (foreground I/O split it meanwhile) is
 * skipped --, step check (lease.h R2) and fencing token (R5), copy the
 * others source -> target through the movers, FLUSH the target, one
 * SPLIT_COMMIT per run (durable at the owner when it returns: R7),
 * unlock.  Then its next claim says how far it got.
 *
 * Pace: the mapping's copy rate comes with every answer of the owner (an
 * operator changes it with the owner's `map-rate`; it applies from the
 * next batch, within a second); after a piece that copied B bytes the
 * next starts no sooner than B / rate later, and the owner keeps all
 * copiers of a mapping together within the rate.  Rate 0: no copy.
 * Foreground I/O on a grain waits for at most one piece's locks.
 *
 * Failures: a piece's transient errors are retried like an I/O's
 * (cfg.retry_ms); after that, or when the mapping moved to another
 * generation or out of COPYING, or a mover failed, the batch ends and the
 * next claim gives its rest back.  A claim that fails is asked again
 * after a backoff.  If this process dies, the owner gives its batches to
 * other copiers when its session ends; a grain is copied again only if
 * its copy landed and its commit did not.  Counters: fm_engine_copy_stats
 * (pieces are not in fm_engine_stats).  The trace hook sees every piece
 * as an I/O with io->background set, on the copier thread.
 */
struct fm_engine_copy_cfg {
	uint32_t batch_grains;  /* grains asked for per claim (the owner hands
				 * out fewer at a low rate), 1..FM_COPY_BATCH_MAX;
				 * 0 -> 256 */
	uint32_t piece_grains;  /* grains locked and copied together, one
				 * commit: 1..256; 0 -> 8 */
};

/* Start the copier thread.  0, -EINVAL (cfg out of range), -EALREADY
 * (running), -ENOMEM, or pthread_create's errno. */
int fm_engine_copy_start(struct fm_engine *e, const struct fm_engine_copy_cfg *cfg);

/* Stop it: no new claim or piece; the pieces in flight end (their
 * retries cut short), each unfinished batch's rest is given back to the
 * owner (a claim of nothing, while the session works; the owner takes it
 * back with the session anyway), and the thread is joined.  0, or
 * -EALREADY (not running).  Blocks for about a piece and a round trip to
 * the owner.  fm_engine_delete stops it too. */
int fm_engine_copy_stop(struct fm_engine *e);

struct fm_engine_copy_stats {
	bool running;             /* the copier thread runs */
	uint64_t claims;          /* COPY_CLAIMs answered */
	uint64_t batches;         /* batches received */
	uint64_t pieces;          /* pieces done (status 0) */
	uint64_t grains_copied;   /* grain copies of the pieces that completed
				   * (a retried attempt's count again) */
	uint64_t grains_skipped;  /* grains of pieces found split under the lock */
	uint64_t bytes;           /* bytes copied */
	uint64_t errors;          /* pieces and claims that failed */
	uint32_t rate;            /* the mapping's, as the owner last said */
	uint64_t generation;      /* of the batch (0: none yet) */
	uint64_t batch_id;        /* the batch now (0: none) */
	uint64_t batch_first, batch_last, next; /* its grains; next: the first
						 * not done yet */
};
/* One attached mapping's: 0, or -ENOENT (not attached).  Any thread,
 * never blocks. */
int fm_engine_copy_stats(struct fm_engine *e, uint64_t map_id, struct fm_engine_copy_stats *st);
#ifdef __cplusplus
}
#endif

#endif /* FLASHMETA_ENGINE_H */
