/* agent.h -- the client agent: what an I/O engine links to talk to the owner.
 *
 * An fm_agent runs the client protocol state machine (proto_client.h) on
 * its own protocol thread over a transport ("shm" or "verbs"): it connects
 * with retry and backoff, joins, keeps the lease, reconnects after the
 * owner restarts, and keeps the confirmation cache.  Engine threads call
 * the thread-safe functions below and do every one-sided operation of
 * their I/O themselves, on a transport lane of their own (opened on first
 * use; no hand-off to another thread): the bitmap READ of a cache miss,
 * the lock CAS, the check READ under a lock, the release CAS.  A cache hit
 * takes no lock and makes no syscall.  Only what needs a message goes
 * through the protocol thread (mutex + eventfd, the caller sleeps until
 * the owner's answer): a lock another client holds, a split commit.
 *
 * How an engine does one I/O on mapping M (the snapshot invariant: a
 * target reads as the source did at the trigger, plus its own writes; the
 * timing rules are in flashmeta/lease.h):
 *
 *   fm_agent_io_begin(a, M, &io)        waits until M's confirmations may be
 *                                       trusted (lease granted, no release)
 *   fm_agent_plan(a, &io, op, off, len, &plan)   (no I/O on cache hits)
 *   per extent:
 *     DIRECT             read: do it.  write: fm_agent_step_begin, write,
 *                        fm_agent_step_end
 *     REDIRECT_TO_SOURCE read the source, THEN fm_agent_is_split() per
 *                        grain: still unsplit -> the data is good (a source
 *                        grain is overwritten only after its split is
 *                        durable and published, so a fresh "unsplit" after
 *                        the read proves the read saw pre-trigger data);
 *                        split -> read the target instead
 *     COPY_THEN_WRITE /  fm_agent_lock(grain): 1 = already split -> unlock,
 *     WRITE_AND_SPLIT    do the write as DIRECT; 0 = fm_agent_step_begin,
 *                        copy the source grain to the target
 *                        (COPY_THEN_WRITE), write target data if any, make it
 *                        durable (fsync), fm_agent_step_end;
 *                        fm_agent_commit_split (returns after SPLIT_ACK =
 *                        durable on the owner, and unlocks); then, if the I/O
 *                        writes the source: step_begin, write, step_end.
 *                        Several grains: lock each, copy them all, one
 *                        fm_agent_commit_range (one SPLIT_COMMIT, one
 *                        persist at the owner)
 *   fm_agent_io_end(a, &io)
 *
 * A write I/O (either volume) first records its grains,
 * fm_agent_record_write, right after io_begin and before any write is
 * issued: the changed set an incremental refresh recopies
 * (flashmeta-owner map-refresh) is what clients recorded.
 *
 * Every write is a destructive data step and runs between step_begin and
 * step_end: step_begin lets it start only while the lease has its margin
 * left (lease.h R2) and hands out the fencing token of this session's
 * locks (R5) for storage that can refuse a stale writer.  The owner keeps
 * this session's locks and grants until every bracket of it ended (R3,
 * R4), so a step that started in time may finish late without harm --
 * except where the owner can neither hear from the client nor kill it
 * (verbs, a silent node): there a step must end within the bound of
 * lease.h, or the storage must check the token; steps_overdue counts the
 * steps that took longer.
 *
 * Errors: negative errno, detail in fm_errormsg() of the calling thread.
 * Start the I/O again (io_end first) after: -ECONNRESET (the session
 * broke), -EAGAIN (the mapping is being released), -EKEYEXPIRED (the lease
 * ran out: no step may start in this session), -ESTALE (the mapping moved
 * to a new generation), -ETIMEDOUT (no answer in time), -ENOLCK (the lock
 * was lost or the owner did not find it held).  -ENOMEM from any call: the
 * agent is dead (its state machine ran out of memory): delete it.
 */
#ifndef FLASHMETA_AGENT_H
#define FLASHMETA_AGENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "flashmeta/cache.h"
#include "flashmeta/mapping.h"
#include "flashmeta/planner.h"

#ifdef __cplusplus
extern "C" {
#endif

struct fm_agent;

struct fm_agent_cfg {
	const char *provider;   /* "shm" (default) or "verbs" */
	const char *device;     /* verbs device; NULL = first */
	const char *addr;       /* the owner: "IP:PORT" or "shm:/NAME" */
	uint32_t client_id;     /* 1..65535 */
	const void *key;        /* shared with the owner, 1..64 bytes (copied) */
	size_t key_len;
	size_t cache_budget;    /* confirmation cache bytes; 0 = unlimited */
	bool no_cache;          /* a baseline for benchmarks: keep no
				 * confirmation, so every decision READs the
				 * owner's bitmap (safe, just slower) */
	bool cache_no_merge;    /* a baseline for benchmarks: the cache keeps
				 * every fill as a range of its own, never
				 * joined to the ranges it touches
				 * (fm_cache_cfg.no_merge) */
	bool decide_by_message; /* a baseline for benchmarks, the way a lock
				 * manager (LDLM, a DLM) works: every decision
				 * is a message to the owner and its answer.
				 * Split bits come in SPLIT_QUERY answers
				 * instead of one-sided READs, a grain lock is
				 * a LOCK_REQUEST granted by the owner (no
				 * client CAS) and given back with UNLOCK;
				 * implies no_cache.  Needs an owner of wire
				 * 2.2 (else the I/O fails -EOPNOTSUPP).  Safe,
				 * just slower: an answer is used exactly as a
				 * READ of the bitmap would be */
	uint32_t wait_ms;       /* how long engine calls wait for a session or
				 * a grant; 0 -> 10000 */
	uint32_t retry_min_ms;  /* reconnect backoff; 0 -> 50 */
	uint32_t retry_max_ms;  /* 0 -> 1000 */
	uint32_t max_threads;   /* engine threads doing one-sided work at once
				 * (each gets a lane of the session's
				 * endpoint); 0 -> 64, at most 256 */
	uint32_t spin_us;       /* a call that waits for a completion (and
				 * fm_engine_rw) busy-polls this long before
				 * each sleep on its fds: a wakeup costs more
				 * than an RDMA round trip on many hosts;
				 * 0 -> 50, FM_AGENT_NO_SPIN: sleep at once */
};
#define FM_AGENT_NO_SPIN UINT32_MAX

/* A mapping as the agent last heard of it (WELCOME / MAP_GRANT). */
struct fm_agent_map {
	uint64_t map_id;
	uint64_t generation;
	uint64_t grain_count;
	uint32_t grain_shift;
	enum fm_map_state state;
	bool granted;           /* confirmation lease held (not released) */
	bool reversed;          /* restored (FM_MAPDESC_REVERSED): it copies
				 * the volume attached as target to the one
				 * attached as source (the engine swaps them) */
};

/* An I/O bracket (fm_agent_io_begin .. fm_agent_io_end).  Owned by the
 * thread doing the I/O. */
struct fm_agent_io {
	uint64_t map_id;
	bool trusted;           /* cache hits may be used */
	struct fm_agent_map map; /* snapshot taken at io_begin */
	uint64_t step_start;    /* a data step runs since (ms), or 0 */
	void *pin_;             /* the agent's: where the bracket is counted */
};

/* A grain lock word this agent holds (fm_agent_locks). */
struct fm_agent_held {
	uint64_t map_id;
	uint64_t word_index;    /* its word in the map's lock table */
	uint64_t first, last;   /* the grains that word covers (one unless the
				 * map stripes grains: lock_shift > 0) */
	uint64_t since_ms;      /* taken at: CLOCK_MONOTONIC ms, the clock of
				 * step_start (when the CAS, or the owner's
				 * hand-over, completed; a re-entry keeps it) */
	uint64_t token;         /* fencing token of the session it was taken
				 * in (fm_agent_token then; lease.h R5) */
	uint32_t epoch;         /* that session's epoch, as in the lock word */
	unsigned count;         /* fm_agent_lock calls not given back yet */
};

struct fm_agent_stats {
	int state;              /* enum fm_client_state */
	uint32_t epoch;
	uint64_t connects;      /* transport connections made */
	uint64_t joins;         /* sessions that reached ACTIVE */
	uint64_t closes;        /* sessions that ended */
	uint64_t fetches, locks, commits, unlocks; /* completed OK */
	uint64_t commits_sent;  /* SPLIT_COMMITs handed to the session, acked or not */
	uint64_t releases;      /* release requests served */
	uint64_t locks_lost;
	uint64_t quiesced;      /* sessions that ended and quiesced (lease.h R3) */
	uint64_t token;         /* fencing token of the current session (R5) */
	uint32_t lease_term_ms; /* of the current session (0: none) */
	uint64_t lease_left_ms; /* the client's side of it (lease.h R1: it
				 * lapses before the owner's); 0: none */
	uint64_t steps;         /* data steps started */
	uint64_t steps_refused; /* ... refused: the lease was lost (-EKEYEXPIRED) */
	uint64_t steps_overdue; /* ... that took longer than M + G (lease.h) */
	uint64_t lanes_broken;  /* engine lanes whose operations got no
				 * completion within 10 s: each ended its
				 * session (a broken transport) */
	struct fm_cache_stats cache;
};

/*
 * fm_agent_new -- start the protocol thread; it connects in the background
 * (use fm_agent_wait_active to wait for the session).  Returns 0, -EINVAL,
 * -ENOMEM, or the transport's errno (unknown provider, no device).
 */
int fm_agent_new(struct fm_agent **out, const struct fm_agent_cfg *cfg);

/* fm_agent_delete -- BYE (endpoint closed), stop the thread, free (the
 * engine threads' lanes too).  No engine call may be running.  NULL-safe,
 * sets *ap = NULL. */
void fm_agent_delete(struct fm_agent **ap);

/*
 * fm_agent_thread_exit -- the calling engine thread is done with the agent
 * (for now, or for good): its lane and buffers are freed now.  No lock of
 * the thread may be held.  The next call of the thread makes a new
 * context.  A thread that used fm_engine calls fm_engine_thread_exit
 * instead (engine.h): the engine's context of the thread refers to this
 * one.  A thread that exits without it gives its context (and its lane,
 * counted by cfg.max_threads) back at its exit, unless it still has an
 * operation in flight or holds a lock word: that context stays until
 * fm_agent_delete.
 */
void fm_agent_thread_exit(struct fm_agent *a);

/*
 * fm_agent_wait_active -- block until the session is ACTIVE, up to
 * timeout_ms (-1: cfg.wait_ms).  0, -ETIMEDOUT, or the errno with which the
 * last session was closed (e.g. -EACCES when the owner refused our key).
 */
int fm_agent_wait_active(struct fm_agent *a, int timeout_ms);

/* fm_agent_maps -- copy up to cap mappings; returns how many are known. */
int fm_agent_maps(struct fm_agent *a, struct fm_agent_map *out, size_t cap);

/* fm_agent_map_get -- one mapping.  0 or -ENOENT.  Never blocks. */
int fm_agent_map_get(struct fm_agent *a, uint64_t map_id, struct fm_agent_map *out);

/*
 * fm_agent_io_begin -- start an I/O on map_id: waits (up to cfg.wait_ms)
 * until the session is ACTIVE and the mapping's confirmations are granted
 * and not being released, then pins them (fm_client_io_begin) so a release
 * waits for fm_agent_io_end.  0 (io->trusted), -ETIMEDOUT, -ENOENT.
 * Any thread.
 */
int fm_agent_io_begin(struct fm_agent *a, uint64_t map_id, struct fm_agent_io *io);

/* fm_agent_io_end -- end the bracket (wakes a waiting release).  Any thread. */
void fm_agent_io_end(struct fm_agent *a, struct fm_agent_io *io);

/*
 * fm_agent_plan -- fm_plan_io() for the I/O with the cache as the split
 * source; grains the cache does not know are read from the owner's bitmap
 * (one-sided READ of a 512-grain window on the calling thread's lane; the
 * set bits go to the cache) before they are planned as unsplit.  COW is
 * active when the mapping (as of io_begin) is COPYING.  Returns 0 or
 * fm_plan_io's errors, -ECONNRESET, -EAGAIN, -EINVAL (io not begun),
 * -ENOMEM.  Blocks for READs only.
 */
int fm_agent_plan(struct fm_agent *a, const struct fm_agent_io *io, enum fm_io_op op,
		  uint64_t offset, uint64_t length, struct fm_plan *plan);

/*
 * fm_agent_is_split -- is `grain` split now?  A cache hit answers at once;
 * otherwise a fresh READ of the owner's bitmap on the calling thread's
 * lane.  1 split, 0 not split, -ECONNRESET, -EAGAIN (the map's
 * confirmations are not granted now), -ENOENT, -ERANGE.  Blocks.
 */
int fm_agent_is_split(struct fm_agent *a, uint64_t map_id, uint64_t grain);

/*
 * fm_agent_lock -- take the grain lock word covering `grain`: one-sided
 * CAS on the calling thread's lane; when another client holds the word,
 * the owner queues us and hands it over.  Then a fresh READ of the grain's
 * bitmap word under the lock.  0 locked and not split, 1 locked but the
 * grain is already split (just unlock), -ECONNRESET, -EAGAIN (no
 * session), -EDEADLK, -ENOENT, -ERANGE, -ETIMEDOUT (cfg.wait_ms; also
 * while the owner's restart grace gives no lock table).
 *
 * A lock belongs to the thread that took it: unlock and commit it on the
 * same thread.  It is re-entrant -- grains that share a lock word
 * (lock_shift > 0) may be locked one after the other by one thread, each
 * call counting once.  Another thread of this agent that needs a word this
 * thread holds waits (polling the word with a backoff) until it is free.
 * Blocks.
 */
int fm_agent_lock(struct fm_agent *a, uint64_t map_id, uint64_t grain);

/* fm_agent_unlock -- give one fm_agent_lock back without a split (the
 * word is freed with its last count).  0, -ENOLCK (not held by this
 * thread, or lost with the session), -ECONNRESET. */
int fm_agent_unlock(struct fm_agent *a, uint64_t map_id, uint64_t grain);

/*
 * fm_agent_commit_range -- grains first..last, each locked by this thread
 * with fm_agent_lock, hold their own data on the target and it is durable:
 * one SPLIT_COMMIT, and return only after SPLIT_ACK OK (durable on the
 * owner; the range is in the cache then).  Every one of those locks is
 * given back either way.  0, -ESTALE (generation moved on: not recorded),
 * -EIO, -ECONNRESET (unknown: assume not recorded), -ENOLCK (a grain's
 * word not held by this thread, or the owner found it not ours: nothing
 * sent or recorded), -ERANGE, -ETIMEDOUT.  Blocks.
 */
int fm_agent_commit_range(struct fm_agent *a, uint64_t map_id, uint64_t first,
			  uint64_t last);

/* fm_agent_commit_split -- fm_agent_commit_range of one grain. */
int fm_agent_commit_split(struct fm_agent *a, uint64_t map_id, uint64_t grain);

/*
 * fm_agent_locks -- the lock words this agent holds now, on any of its
 * threads (fm_agent_lock, and the engine's I/Os), in the current session:
 * copies up to cap of them into out (in no order) and returns how many
 * there are (more than cap: call again with room).  A word is listed once
 * however many grains of it were locked (count).  Locks of an earlier
 * session are not listed (the owner reclaims them; the next call on them
 * says -ENOLCK); those of a session that broke stay listed until the
 * agent connects again.  Any thread; never blocks (takes each thread's
 * hold lock for a copy; lock and unlock take it too, a cache hit never).
 */
int fm_agent_locks(struct fm_agent *a, struct fm_agent_held *out, size_t cap);

/*
 * fm_agent_read_bitmap -- one-sided READ of `len` bytes at byte `off` of
 * the owner's published bitmap of map_id (what any client would see), on
 * the calling thread's lane.  0, -ENOENT, -ERANGE, -ECONNRESET.  Blocks.
 */
int fm_agent_read_bitmap(struct fm_agent *a, uint64_t map_id, uint64_t off, void *buf,
			 size_t len);

/*
 * fm_agent_record_write -- the I/O `io` (a bracket) is about to write the
 * bytes [offset, offset + length) of either volume of its mapping: record
 * their grains in the mapping's changed set of the generation the bracket
 * holds (fm_client_record_write).  Before the data write is issued; a
 * background copy piece is not a write and records nothing.  0, -EINVAL
 * (io not begun), -ESTALE (end the I/O and start it again), -ERANGE,
 * -ENOMEM: do not write.  Any thread; lock-free, no syscall.
 */
int fm_agent_record_write(struct fm_agent *a, const struct fm_agent_io *io, uint64_t offset,
			  uint64_t length);

/*
 * fm_agent_step_begin -- a destructive data step (a copy into the target,
 * a target write, a source write) of the I/O `io` is about to start.
 * 0: start it; *token (may be NULL) gets the fencing token to hand to
 * storage that checks one.  -EKEYEXPIRED: the lease is lost, or ran within
 * its margin and no renewal came (it waits up to cfg.wait_ms for one):
 * do not start; io_end, and submit the I/O again.  -EINVAL: io not begun.
 * Any thread; blocks only inside the margin.
 */
int fm_agent_step_begin(struct fm_agent *a, struct fm_agent_io *io, uint64_t *token);

/* fm_agent_step_end -- the step started by step_begin ended (whatever its
 * result).  Counts it overdue when it took longer than lease.h's bound.
 * Any thread, never blocks. */
void fm_agent_step_end(struct fm_agent *a, struct fm_agent_io *io);

/* fm_agent_token -- the fencing token of the current session (0 before the
 * first join).  Any thread. */
uint64_t fm_agent_token(struct fm_agent *a);

/* fm_agent_cache -- the confirmation cache (for fm_cache_lookup/stats). */
struct fm_cache *fm_agent_cache(struct fm_agent *a);

/* fm_agent_stats -- counters and state.  Never blocks. */
void fm_agent_stats(struct fm_agent *a, struct fm_agent_stats *st);

#ifdef __cplusplus
}
#endif

#endif /* FLASHMETA_AGENT_H */
