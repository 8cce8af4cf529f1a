/* proto_client.h -- the client's protocol state machine (sans-I/O).
 *
 * The client joins the owner (HELLO / CHALLENGE / AUTH / WELCOME), keeps
 * its lease, fills its confirmation cache (fm_cache) from one-sided READs
 * of the owner's split bitmap, takes grain locks with one-sided CAS
 * (falling back to LOCK_REQUEST when contended), commits splits, and on a
 * RELEASE_REQUEST stops using confirmations, waits for the I/O that relied
 * on them to drain, discards them, reports the grains it wrote
 * (CHANGE_REPORT, fm_client_record_write) and answers RELEASED.
 *
 * Soundness rules it keeps:
 *  - the cache epoch is read BEFORE every READ of the bitmap and passed to
 *    fm_cache_insert with the answer, so a fill racing with a discard is
 *    refused (-ESTALE) instead of resurrecting old confirmations;
 *  - only set bits are inserted: a negative answer is never cached;
 *  - a split is inserted only after SPLIT_ACK OK (i.e. after the owner's
 *    persist completed);
 *  - the client's lease runs from the SEND time of AUTH/RENEW, so it lapses
 *    before the owner's (which runs from receipt, plus grace): lease.h R1;
 *  - every write of an engine starts with fm_client_step_check: only with
 *    at least the margin of lease left (R2);
 *  - when the session ends, for whatever reason, it discards every
 *    mapping, blocks new brackets and steps, and QUIESCES: it waits until
 *    every open bracket ended, and only then reports it to the owner
 *    (BYE{QUIESCED} if the link works, and the next HELLO vouches for it
 *    either way: a BYE behind spent credits may never arrive) and closes
 *    (R3).  No new session starts before that.
 *
 * Engine interface: fm_client_io_begin/io_end and fm_client_step_check
 * (any thread) bracket every I/O that trusts a cache hit and gate every
 * write; fetch/lock/commit/unlock (protocol thread) complete through
 * NOTIFY actions carrying the caller's cookie.
 */
#ifndef FLASHMETA_PROTO_CLIENT_H
#define FLASHMETA_PROTO_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "flashmeta/cache.h"
#include "flashmeta/proto.h"

enum fm_client_state {
	FM_CLIENT_IDLE = 0,       /* never connected */
	FM_CLIENT_HELLO_SENT = 1, /* waiting for CHALLENGE */
	FM_CLIENT_AUTH_SENT = 2,  /* waiting for WELCOME */
	FM_CLIENT_ACTIVE = 3,     /* lease running; caches may be valid */
	FM_CLIENT_QUIESCING = 4,  /* session over, caches discarded; waiting for
				   * the open I/O brackets to end (R3) */
	FM_CLIENT_CLOSED = 5,     /* quiesced and closed; connect again */
};

struct fm_client;

struct fm_client_cfg {
	uint32_t client_id;       /* 1..65535 */
	const void *key;          /* shared with the owner, 1..64 bytes */
	size_t key_len;
	struct fm_cache *cache;   /* the client's confirmation cache (not owned) */
	uint32_t readahead_grains; /* bitmap bits per fetch READ; power of two
				    * >= 64; 0 -> 512 */
	uint32_t handshake_ms;    /* 0 -> 5000 */
	uint32_t margin_ms;       /* M: a step needs this much lease left;
				   * 0 -> fm_lease_margin_ms(term) (lease.h) */
	void (*rand_bytes)(void *ctx, void *buf, size_t len); /* NULL: getrandom */
	void *rand_ctx;
};

/* 0, -EINVAL, -ENOMEM.  fm_client_delete is NULL-safe, sets *cp = NULL. */
int fm_client_new(struct fm_client **out, const struct fm_client_cfg *cfg);
void fm_client_delete(struct fm_client **cp);

/* ---- events (protocol thread) ----
 * Every event takes `now` (ms, the driver's monotonic clock): one time
 * source for the machine, so tests drive it in simulated time; a few
 * events have nothing to time and ignore it. */
/* The driver connected the transport: send HELLO (vouching for the
 * previous session once it quiesced, whether or not its BYE got out).
 * From IDLE or CLOSED; -EBUSY otherwise (QUIESCING included). */
int fm_client_connect(struct fm_client *c, uint64_t now);
/* One datagram from the owner.  A bad one closes the session (returns 0). */
int fm_client_recv(struct fm_client *c, const void *buf, size_t len, uint64_t now);
/* The transport broke: close the session, discard confirmations; the
 * session quiesces (R3) and is vouched for in the next HELLO. */
int fm_client_disconnected(struct fm_client *c, uint64_t now);
/* The client is going away (the driver is being deleted): end the session
 * with BYE{SHUTDOWN}; once every open bracket ended, BYE{QUIESCED} goes
 * out (at once when none is open) and the owner releases our locks and
 * grants without waiting, or fencing.  Then CLOSE.  0; a no-op unless
 * joining or ACTIVE. */
int fm_client_leave(struct fm_client *c, uint64_t now);
/* Timers: lease renewal (every term/3) and lapse, handshake timeout,
 * drains.  Call at least every term/10. */
int fm_client_tick(struct fm_client *c, uint64_t now);
/* Completion of a READ or CAS action; -ENOENT for an unknown op (ignored). */
int fm_client_op_done(struct fm_client *c, uint64_t op_id, int status,
		      uint64_t old_value, const void *data, size_t len, uint64_t now);
/* Next action: 1 (filled), 0, or -ENOMEM: the machine ran out of memory
 * and is dead (proto.h); the driver must close and delete it. */
int fm_client_poll(struct fm_client *c, struct fm_action *act);

/* ---- engine calls ---- */
/*
 * fm_client_io_begin -- an I/O on map_id is about to trust cache hits.
 * 0, or -EAGAIN when the mapping's confirmations are being released or are
 * not granted, or the lease ran out at `now` by our own clock even if the
 * protocol thread has not noticed yet (a process thawed after a stop):
 * do the I/O without trusting the cache.  -ENOENT.  Any thread; lock-free
 * (three atomics).
 */
int fm_client_io_begin(struct fm_client *c, uint64_t map_id, uint64_t now);
/* fm_client_io_end -- pairs with a successful io_begin.  Returns true when
 * this was the last I/O a release or a quiescing session waits for: the
 * driver should call fm_client_kick() on the protocol thread.  Any thread. */
bool fm_client_io_end(struct fm_client *c, uint64_t map_id);
/*
 * Brackets without a shared written line.  fm_client_io_begin counts in a
 * word every thread of the client writes (one cache line bounced between
 * CPUs per I/O).  An engine thread that registers a reader counts in a
 * cache line of its own instead:
 *
 *   fm_client_reader_new(c, &r)          once per thread (any thread)
 *   fm_client_io_pin(c, r, map, now, &pin, &desc)   0 / -EAGAIN / -ENOENT
 *   ... trust hits, plan with desc ...
 *   if (fm_client_io_unpin(c, &pin)) kick the protocol thread
 *
 * The release/quiesce side looks at every registered reader.  A pin may be
 * unpinned by any thread (it names the cell it counted in); a reader is
 * written by the thread that pins with it only.  A thread with brackets
 * open on more mappings than a reader has cells (8) counts the rest in the
 * shared word, as does a NULL reader.
 */
struct fm_client_reader;
struct fm_client_pin {
	_Atomic uint64_t *cell; /* where the bracket is counted */
};
/* 0, -ENOMEM, -ENOSPC (CL_MAX_READERS readers exist: pin with NULL).
 * The reader lives until fm_client_delete. */
int fm_client_reader_new(struct fm_client *c, struct fm_client_reader **out);
/* fm_client_io_begin with a reader; *desc (may be NULL) gets the
 * mapping's descriptor as granted (stable while pinned: a release waits
 * for the unpin).  Lock-free: one atomic RMW on the reader's own line,
 * atomic loads of the slot. */
int fm_client_io_pin(struct fm_client *c, struct fm_client_reader *r, uint64_t map_id,
		     uint64_t now, struct fm_client_pin *pin, struct fm_wire_mapdesc *desc);
/* pairs with a successful io_pin; true as fm_client_io_end.  Any thread. */
bool fm_client_io_unpin(struct fm_client *c, struct fm_client_pin *pin);

/*
 * fm_client_record_write -- an engine is about to write grains [first,
 * last] of map_id (either volume, any path but a background copy piece)
 * under a bracket of `generation` (the descriptor its bracket holds).
 * Call inside the open bracket and BEFORE the data write is issued: a
 * write that may land is then never missing from the changed set the
 * client reports (CHANGE_REPORT, wire 2.4) before its RELEASED of the
 * mapping, or before its BYE{QUIESCED}.  0; -ESTALE (the set is of
 * another generation: end the bracket and retry), -ERANGE, -ENOENT,
 * -ENOMEM (no set could be made at the grant): do not write then.
 * Any thread; lock-free: per 64 grains one relaxed load, and an atomic OR
 * only where a bit is new (core/src/client/written.c).
 */
int fm_client_record_write(struct fm_client *c, uint64_t map_id, uint64_t generation,
			   uint64_t first, uint64_t last);

/* fm_client_written -- grains of map_id recorded and not reported yet, and
 * the generation they are of.  0 or -ENOENT.  For tests and tools: reads
 * the whole set (any thread; a snapshot while engines write). */
int fm_client_written(struct fm_client *c, uint64_t map_id, uint64_t *grains,
		      uint64_t *generation);

/* Re-check drains and quiescence now (otherwise the next tick does). */
int fm_client_kick(struct fm_client *c, uint64_t now);

/*
 * fm_client_step_check -- may a destructive data step (a copy into the
 * target, a target write, a source write) start now, inside an open
 * bracket?  0: yes -- the lease has at least the margin left, and the
 * owner keeps this session's locks and grants until the bracket ended
 * (lease.h R2, R4).  -EAGAIN: the lease is within the margin of expiry
 * and not renewed yet: wait a little (a renewal is on its way) and ask
 * again.  -EKEYEXPIRED: the lease is lost (or the session is over): do
 * not start; end the I/O, resubmit it after the next join.  Any thread;
 * no lock, two atomic loads.
 */
int fm_client_step_check(struct fm_client *c, uint64_t now);

/* The fencing token of this session's locks (lease.h R5): owner
 * incarnation << 32 | session epoch; 0 before WELCOME.  Any thread. */
uint64_t fm_client_token(const struct fm_client *c);

/*
 * fm_client_fetch -- cache miss on `grain`: READ the bitmap window around
 * it and insert its set bits.  NOTE FETCHED(cookie): status 0 and `split`,
 * -ESTALE (raced with a discard: nothing cached), -EIO (short answer), or
 * the status the driver gave the failed READ (e.g. -ECONNRESET).
 * Returns 0 (the NOTE follows exactly once) or -EAGAIN (no lease on the
 * map), -ENOENT, -ERANGE, -ENOMEM (no NOTE).
 */
int fm_client_fetch(struct fm_client *c, uint64_t map_id, uint64_t grain,
		    uint64_t cookie, uint64_t now);
/*
 * fm_client_lock -- lock the word covering `grain`.  NOTE LOCKED(cookie):
 * status 0 with `split` from a bitmap re-read done under the lock (if set,
 * just unlock), -EDEADLK, -ECONNRESET, or the owner's refusal of the
 * LOCK_REQUEST (its ERROR code: -ENOENT map not served, -ERANGE, -ENOMEM);
 * after a non-zero status the word is not held.  Returns 0, -EBUSY (this client
 * already has that word), -EAGAIN (not active), -ENOENT, -ERANGE, -ENOMEM.
 */
int fm_client_lock(struct fm_client *c, uint64_t map_id, uint64_t grain,
		   uint64_t cookie, uint64_t now);
/*
 * fm_client_commit -- the grain (locked by fm_client_lock) was copied and
 * the copy is durable: SPLIT_COMMIT, then on SPLIT_ACK insert it in the
 * cache and release the lock.  NOTE COMMITTED(cookie): 0, -ESTALE, -EIO,
 * -ECONNRESET, or the owner's refusal (ERROR code: -ENOLCK the owner found
 * the lock word not held by this session, -ENOENT, -ERANGE); nothing was
 * recorded then.  The lock is released in every case.
 * Returns 0, -ENOLCK (not locked), -EAGAIN, -ENOENT.
 */
int fm_client_commit(struct fm_client *c, uint64_t map_id, uint64_t grain,
		     uint64_t cookie, uint64_t now);
/* fm_client_unlock -- give a lock back without committing.  0, -ENOLCK. */
int fm_client_unlock(struct fm_client *c, uint64_t map_id, uint64_t grain,
		     uint64_t now);

/* ---- the engine's own data path (lease.h; issue: data path) ----
 *
 * An engine thread may do the one-sided work itself, on a transport lane
 * of its own, instead of handing it to the protocol thread: inside an open
 * bracket it takes the fill token (fm_cache_map_epoch), READs the owner's
 * bitmap, CASes lock words with fm_client_lockword(), and hands the rest
 * to the protocol thread: the answers to insert into the cache (the
 * writer's job), a LOCK_REQUEST when the CAS found another holder, the
 * SPLIT_COMMIT, an UNLOCK when its release found WAITERS.  Locks taken
 * this way are the engine's: the state machine does not track them (the
 * owner does, and reclaims them with the session).  Inside a bracket the
 * session cannot change under the engine: it quiesces first (R3).
 */

/*
 * fm_client_map -- the descriptor of map_id as last granted, and whether
 * its confirmations may be trusted now.  Any thread, no lock (a seqlock
 * of atomic words: a reader retries around a concurrent grant).  0 or
 * -ENOENT.
 */
int fm_client_map(const struct fm_client *c, uint64_t map_id, struct fm_wire_mapdesc *out,
		  bool *usable);

/* fm_client_maps -- the ids of up to `cap` mappings ever granted (slot
 * order); returns how many there are.  Any thread. */
int fm_client_maps(const struct fm_client *c, uint64_t *ids, size_t cap);

/* fm_client_lease_term -- the lease term of the session, ms (0 before
 * WELCOME).  Any thread. */
uint32_t fm_client_lease_term(const struct fm_client *c);
/* fm_client_lease_left -- ms of lease left at `now` (0: none, lapsed or no
 * session).  Any thread. */
uint64_t fm_client_lease_left(const struct fm_client *c, uint64_t now);

/* fm_client_lockword -- the HELD word of this session's locks (0 before
 * WELCOME).  Any thread. */
uint64_t fm_client_lockword(const struct fm_client *c);

/*
 * fm_client_lock_wait -- the engine's CAS of the word covering `grain`
 * found `seen` (another holder): queue a LOCK_REQUEST at the owner.  NOTE
 * LOCKED(cookie) follows: status 0 with `word` = what the owner installed
 * for us -- the lock is then the engine's (re-read the bitmap word under
 * it; release with a CAS, and fm_client_unlock_notify if WAITERS is set)
 * -- or the owner's refusal, -ECONNRESET.  Returns 0, -EAGAIN (not active,
 * or no lock table yet), -ENOENT, -ERANGE.  Protocol thread.
 */
int fm_client_lock_wait(struct fm_client *c, uint64_t map_id, uint64_t grain, uint64_t seen,
			uint64_t cookie, uint64_t now);

/*
 * fm_client_commit_range -- grains [first, last] of map_id were copied and
 * the copies are durable; the engine holds every lock word they touch:
 * SPLIT_COMMIT.  NOTE COMMITTED(cookie): 0 (durable at the owner; the
 * range is in the cache now), -ESTALE, -EIO, -ECONNRESET, or the owner's
 * refusal (-ENOLCK: a word was not ours).  The locks stay the engine's in
 * every case.  Returns 0, -EAGAIN, -ENOENT, -ERANGE.  Protocol thread.
 */
int fm_client_commit_range(struct fm_client *c, uint64_t map_id, uint64_t first,
			   uint64_t last, uint64_t cookie, uint64_t now);

/* fm_client_unlock_notify -- the engine released `word` (the word covering
 * `grain`) and found WAITERS in it: tell the owner, who hands it on.
 * 0, -EAGAIN, -ENOENT, -ERANGE.  Protocol thread. */
int fm_client_unlock_notify(struct fm_client *c, uint64_t map_id, uint64_t grain,
			    uint64_t word, uint64_t now);

/*
 * fm_client_copy_claim -- background copy (flashmeta/copy.h): ask the
 * owner for the next batch of map_id in `generation`, ending the previous
 * one (done_batch, 0: none; done_next: its first grain not copied, which
 * goes back to the pool with the rest of it).  max_grains 0 asks for
 * nothing (a copier that stops).  One claim per map at a time (the owner
 * refuses a second with -EBUSY).  NOTE COPY_BATCH(cookie) follows: status
 * 0 with the answer in n.copy (OK: the batch; WAIT: how long; DONE;
 * STALE), the owner's refusal (its ERROR code: -ENOENT, -EBUSY), or
 * -ECONNRESET (the session ended; the owner returned our batches to the
 * pool).  Returns 0, -EAGAIN (not active), -EOPNOTSUPP (the owner speaks
 * wire 2.0: no background copy), -ENOENT, -ERANGE (max_grains), -EINVAL
 * (done_next without done_batch), -ENOMEM.  Protocol thread.
 */
int fm_client_copy_claim(struct fm_client *c, uint64_t map_id, uint64_t generation,
			 uint64_t done_batch, uint64_t done_next, uint32_t max_grains,
			 uint64_t cookie, uint64_t now);

/*
 * fm_client_split_query -- the decide-by-message baseline (wire 2.2): ask
 * the owner which of grains [first, first + count - 1] of map_id are
 * split in `generation` (count 1..FM_WIRE_QUERY_MAX).  NOTE
 * SPLIT_ANSWER(cookie) follows: status 0 with the bits in n.query (bit i:
 * grain first + i, as the owner's published bitmap had them at one
 * moment), the owner's refusal (its ERROR code: -ENOENT, -EAGAIN map being
 * released, -ERANGE, -ESTALE other generation, -EBUSY too many queries,
 * -EIO), -EPROTO (an answer to another question), or -ECONNRESET (the
 * session ended).  Nothing goes to the cache: a clear bit must be used
 * like a one-sided READ's (owner/query.c), never kept.  Returns 0,
 * -EAGAIN (not active), -EOPNOTSUPP (the owner speaks wire < 2.2),
 * -ENOENT, -ERANGE, -ENOMEM.  Protocol thread.
 */
int fm_client_split_query(struct fm_client *c, uint64_t map_id, uint64_t generation,
			  uint64_t first, uint32_t count, uint64_t cookie, uint64_t now);

enum fm_client_state fm_client_state(const struct fm_client *c);
const char *fm_client_state_name(int state);
/* The lease epoch the owner gave this session (0 before WELCOME). */
uint32_t fm_client_epoch(const struct fm_client *c);

#endif /* FLASHMETA_PROTO_CLIENT_H */
