/* ops.c -- an engine thread's one-sided operations as small state
 * machines, driven by ag_progress on the thread that started them.
 *
 *   FETCH    READ the bitmap window (AG_FILL_WORDS words) of a grain; the
 *            set bits go to the cache (the fill token is taken BEFORE the
 *            READ, so a discard in between refuses them).
 *   LOCK     CAS free -> this session's word, with the READ of the
 *            grain's bitmap word posted right behind it on the same lane:
 *            one round trip (the READ executes after the CAS -- one
 *            connection, in order at the owner: verbs one RC QP, shm at
 *            post time -- so when the CAS took a free word, the bit read
 *            is what the previous holder left published before its
 *            release).  Held by another thread of ours: retry with a
 *            backoff (its release is a CAS, no message reaches us).
 *            Held by another client (or an earlier session): LOCKWAIT
 *            through the protocol thread, the owner hands the word over,
 *            then the READ under it.
 *   UNLOCK   one count back; the last: CAS word -> free; WAITERS set: the
 *            UNLOCK message goes out through the protocol thread (nobody
 *            waits for it).
 *   COMMIT   SPLIT_COMMIT through the protocol thread, answered after the
 *            owner made it durable (SPLIT_ACK).
 *   RAWREAD  a READ of the bitmap into the caller's memory.
 *   CLAIM    COPY_CLAIM through the protocol thread (background copy),
 *            answered by the owner's COPY_BATCH.
 *
 * Decide by message (fm_agent_cfg.decide_by_message, the lock-manager
 * baseline of the benchmarks): no one-sided operation decides anything.
 * FETCH sends a SPLIT_QUERY of its window instead of the READ; LOCK sends
 * LOCK_REQUEST at once (the owner's own CAS grants a free word) and then
 * a SPLIT_QUERY of the grain instead of the READ under the lock; UNLOCK
 * sends UNLOCK instead of the release CAS (the owner frees the word or
 * hands it on).  An answer is used exactly as the READ it replaces
 * (owner/query.c): a set bit is durable, a clear bit holds only under the
 * lock or until the re-check after a redirected read, and nothing is
 * cached (the mode implies no_cache).
 *
 * Locks belong to the thread that took them -- to an owner on it: the
 * thread for the blocking calls, an I/O for the engine -- and are
 * re-entrant for that owner (several grains under one lock word: each
 * counts once).  Another owner finding the word held by our session waits
 * as another thread would.  A hold
 * carries the session token it was taken in: after an owner restart a new
 * session may have the very same word (same client id, same epoch from
 * the new incarnation's counter), so a hold from another session is
 * dropped, never released by CAS.
 *
 * Deadlines: a lane operation without a completion for AG_OP_WAIT_MS
 * means the transport broke its contract; the lane is abandoned, every
 * op on it fails -ECONNRESET, and the session ends (lane_abandon).  A
 * LOCK waiting for a thread of ours, and a request the protocol thread
 * did not answer, give up after cfg.wait_ms (+5 s for the request: the
 * owner's own timeouts come first).
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "agent_priv.h"
#include "flashmeta/error.h"
#include "flashmeta/le.h"
#include "flashmeta/lockword.h"

#define BACKOFF_MAX_US 1000u

enum {
	S_START = 0,   /* nothing posted yet (or to post again) */
	S_TABLE,       /* LOCK: waiting for a lock table (restart grace) */
	S_CAS,         /* LOCK: CAS + READ in flight */
	S_WAIT,        /* LOCK: LOCKWAIT at the owner; COMMIT: SPLIT_COMMIT */
	S_CHECK,       /* LOCK: READ under the handed-over lock */
	S_UNDO,        /* LOCK: taken, but its READ failed: CAS it back */
	S_READ,        /* FETCH / RAWREAD: READ in flight */
	S_RELEASE,     /* UNLOCK: CAS in flight */
	S_POSTCHECK,   /* LOCK: held; the READ under it still to post */
	S_QCHECK,      /* LOCK by message: SPLIT_QUERY of the grain under it */
};

/* ---------------------------------------------------------------- holds
 *
 * th->held is written only here, by th's own thread, under th->heldlock:
 * fm_agent_locks (locks.c) reads it from any thread.  th's own reads take
 * no lock (it is the one writer).  Cost: one uncontended mutex per lock,
 * unlock and re-entry, one clock read per word taken; a cache hit
 * touches none of it. */

/* th->heldlock held */
static void __held_drop(struct ag_thread *th, struct ag_held *h)
{
	*h = th->held[--th->nheld];
}

/* this thread's hold of word `index` in the current session; one from an
 * earlier session is dropped (see above) */
static struct ag_held *held_find(struct fm_agent *a, struct ag_thread *th, const void *owner,
				 uint64_t map_id, uint64_t index)
{
	uint64_t token = fm_client_token(a->c);

	for (size_t i = 0; i < th->nheld; i++) {
		struct ag_held *h = &th->held[i];

		if (h->map_id != map_id || h->index != index || h->owner != owner)
			continue;
		if (h->token == token)
			return h;
		pthread_mutex_lock(&th->heldlock);
		__held_drop(th, h);
		pthread_mutex_unlock(&th->heldlock);
		break;
	}
	return NULL;
}

/* op took the word `index` (op->word, in the session of op->token): a
 * new hold, counted once, taken now */
static int held_add(struct ag_thread *th, const struct ag_op *op, uint64_t index)
{
	uint64_t first = index << op->d.lock_shift;
	uint64_t last = first + ((UINT64_C(1) << op->d.lock_shift) - 1);
	uint64_t now = ag_now_ms();
	int rc = 0;

	if (last >= op->d.grain_count)
		last = op->d.grain_count - 1;
	pthread_mutex_lock(&th->heldlock);
	if (th->nheld == th->capheld) {
		size_t nc = th->capheld ? th->capheld * 2 : 8;
		struct ag_held *n = realloc(th->held, nc * sizeof(*n));

		if (!n) {
			rc = fm_err(-ENOMEM, "agent: lock table of a thread");
			goto out;
		}
		th->held = n;
		th->capheld = nc;
	}
	th->held[th->nheld++] = (struct ag_held){ .owner = op->owner, .map_id = op->map_id,
						  .index = index, .first = first, .last = last,
						  .word = op->word, .token = op->token,
						  .since_ms = now, .count = 1 };
out:
	pthread_mutex_unlock(&th->heldlock);
	return rc;
}

/* one more count of a hold (re-entry) */
static void held_get(struct ag_thread *th, struct ag_held *h)
{
	pthread_mutex_lock(&th->heldlock);
	h->count++;
	pthread_mutex_unlock(&th->heldlock);
}

/* one count of h back; the hold goes with its last.  The counts left. */
static unsigned held_put(struct ag_thread *th, struct ag_held *h)
{
	unsigned left;

	pthread_mutex_lock(&th->heldlock);
	left = --h->count;
	if (!left)
		__held_drop(th, h);
	pthread_mutex_unlock(&th->heldlock);
	return left;
}

/* ------------------------------------------------------------- helpers */

static uint64_t now_ms(void)
{
	return ag_now_ms();
}

static void finish(struct ag_op *op, int status)
{
	op->status = status;
	op->step = -1; /* ag_progress runs the callback and unlinks it */
}

static void *slot_ptr(struct ag_thread *th, int slot)
{
	return (uint8_t *)fm_region_ptr(th->buf) + (size_t)slot * 64;
}

/* post a READ of `len` (<= 64) bytes into op's slot; 0, -EAGAIN (lane
 * full or no slot: try again later), or a post error (also in lstatus;
 * the caller decides) */
static int post_read(struct fm_agent *a, struct ag_thread *th, struct ag_op *op,
		     const struct fm_region_desc *src, uint64_t off, size_t len)
{
	int rc;

	if (op->slot < 0 && (op->slot = ag_slot_get(th)) < 0)
		return -EAGAIN;
	rc = fm_lane_post_read(th->lane, th->buf, (size_t)op->slot * 64, src, off, len, op);
	if (rc == -EAGAIN)
		return rc;
	if (rc) {
		op->lstatus = rc;
		return rc;
	}
	op->pending++;
	op->lane_gen = th->lane_gen;
	op->posted_ms = now_ms();
	(void)a;
	return 0;
}

static int post_cas(struct ag_thread *th, struct ag_op *op, const struct fm_region_desc *rd,
		    uint64_t off, uint64_t expect, uint64_t desired)
{
	int rc = fm_lane_post_cas(th->lane, rd, off, expect, desired, op);

	if (rc == -EAGAIN)
		return rc;
	if (rc) {
		finish(op, ag_op_failed(rc));
		return rc;
	}
	op->pending++;
	op->lane_gen = th->lane_gen;
	op->posted_ms = now_ms();
	return 0;
}

/* hand op->req to the protocol thread; its answer wakes th */
static void req_submit(struct fm_agent *a, struct ag_thread *th, struct ag_op *op,
		       enum req_type type, uint64_t word)
{
	op->req = (struct req){ .type = type, .map_id = op->map_id, .first = op->first,
				.last = op->last, .word = word, .th = th,
				.generation = op->generation, .done_batch = op->done_batch,
				.done_next = op->done_next, .max_grains = op->max_grains };
	atomic_init(&op->req.adone, false);
	op->req_live = true;
	op->deadline_ms = now_ms() + a->cfg.wait_ms + 5000;
	ag_req_submit(a, &op->req);
}

/* UNLOCK of `word` (the word of grain `first`) through the protocol
 * thread, nobody waiting for it: 0, or -ENOMEM (the caller then waits for
 * it as an op's request) */
static int unlock_msg(struct fm_agent *a, uint64_t map_id, uint64_t first, uint64_t word)
{
	struct req *r = malloc(sizeof(*r));

	if (!r)
		return -ENOMEM;
	*r = (struct req){ .type = REQ_UNLOCKMSG, .map_id = map_id, .first = first,
			   .word = word };
	ag_req_post(a, r);
	return 0;
}

/* decide by message: SPLIT_QUERY of grains first..last (at most
 * AG_FILL_WORDS * 64) of the map's generation as op saw it at its start */
static void query_submit(struct fm_agent *a, struct ag_thread *th, struct ag_op *op,
			 uint64_t first, uint64_t last)
{
	op->req = (struct req){ .type = REQ_QUERY, .map_id = op->map_id, .first = first,
				.last = last, .th = th, .generation = op->d.generation };
	atomic_init(&op->req.adone, false);
	op->req_live = true;
	op->deadline_ms = now_ms() + a->cfg.wait_ms + 5000;
	ag_req_submit(a, &op->req);
}

/* --------------------------------------------------------------- steps */

static void fetch_step(struct fm_agent *a, struct ag_thread *th, struct ag_op *op)
{
	const uint64_t ra = AG_FILL_WORDS * 64;
	struct ag_fill *f = &op->fill;
	uint64_t end;

	if (op->step == S_START) {
		if (op->kind == AG_OP_RAWREAD) {
			/* one READ into the thread's big buffer */
			if (th->big_busy)
				return;
			if (!th->big && fm_region_new(a->t, AG_READ_MAX, FM_ACCESS_LOCAL, &th->big)) {
				finish(op, -ENOMEM);
				return;
			}
			int rc = fm_lane_post_read(th->lane, th->big, 0, &op->d.bitmap, op->first,
						   op->len, op);

			if (rc == -EAGAIN)
				return;
			if (rc) {
				finish(op, ag_op_failed(rc));
				return;
			}
			th->big_busy = true;
			op->pending++;
			op->lane_gen = th->lane_gen;
			op->posted_ms = now_ms();
			op->step = S_READ;
			return;
		}
		/* the fill token BEFORE the READ */
		if (fm_cache_map_epoch(a->cache, op->map_id, &f->token)) {
			finish(op, fm_err(-EAGAIN, "agent: map %" PRIu64 " is not granted now",
					  op->map_id));
			return;
		}
		f->map_id = op->map_id;
		f->w0 = op->first & ~(ra - 1);
		end = f->w0 + ra < op->d.grain_count ? f->w0 + ra : op->d.grain_count;
		f->nbits = end - f->w0;
		if (a->cfg.decide_by_message) {
			op->step = S_WAIT;
			query_submit(a, th, op, f->w0, end - 1);
			return;
		}
		int rc = post_read(a, th, op, &op->d.bitmap, f->w0 / 8,
				   (size_t)((f->nbits + 63) / 64 * 8));

		if (rc == 0)
			op->step = S_READ;
		else if (rc != -EAGAIN)
			finish(op, ag_op_failed(rc));
		return;
	}
	/* S_READ completed */
	if (op->kind == AG_OP_RAWREAD) {
		th->big_busy = false;
		if (!op->lstatus)
			memcpy(op->out, fm_region_ptr(th->big), op->len);
		finish(op, op->lstatus ? ag_op_failed(op->lstatus) : 0);
		return;
	}
	if (op->step == S_WAIT) { /* decide by message: the owner answered */
		if (op->req.status == -EBUSY) {
			/* the session's queries in flight are at the owner's
			 * bound (max_queries): ask again in a moment */
			op->step = S_START;
			op->wake_ms = now_ms() + 1;
			return;
		}
		if (op->req.status) {
			finish(op, op->req.status);
			return;
		}
		memcpy(f->bits, op->req.bits, sizeof(f->bits));
		atomic_fetch_add_explicit(&a->fetches, 1, memory_order_relaxed);
		op->split = ag_fill_bit(f, op->first);
		finish(op, 0); /* nothing cached: the mode keeps no cache */
		return;
	}
	if (op->lstatus) {
		finish(op, ag_op_failed(op->lstatus));
		return;
	}
	memset(f->bits, 0, sizeof(f->bits));
	for (uint64_t i = 0; i < (f->nbits + 63) / 64; i++) /* bit g: byte g/8, bit g%8 */
		f->bits[i] = fm_get_le64((const uint8_t *)slot_ptr(th, op->slot) + i * 8);
	if (f->nbits % 64)
		f->bits[f->nbits / 64] &= (UINT64_C(1) << (f->nbits % 64)) - 1;
	atomic_fetch_add_explicit(&a->fetches, 1, memory_order_relaxed);
	/* the set bits are positive confirmations: the cache takes them (its
	 * writer is the protocol thread); a clear bit is never cached */
	for (unsigned i = 0; i < AG_FILL_WORDS; i++)
		if (f->bits[i]) {
			ag_fill_post(a, f);
			break;
		}
	op->split = ag_fill_bit(f, op->first);
	finish(op, 0);
}

static int bit_of(struct ag_thread *th, struct ag_op *op)
{
	return (int)(fm_get_le64(slot_ptr(th, op->slot)) >> (op->first % 64) & 1);
}

/* op->word (the word of lock `index`) is ours now: filed as a hold of
 * the thread, counted.  false: no memory for the hold -- the word goes
 * back by CAS (S_UNDO) and the op fails -ENOMEM when it completes. */
static bool took(struct fm_agent *a, struct ag_thread *th, struct ag_op *op, uint64_t index)
{
	if (held_add(th, op, index)) {
		op->lstatus = -ENOMEM;
		op->step = S_UNDO;
		(void)post_cas(th, op, &op->d.locks, index * 8, op->word, FM_LOCKWORD_FREE);
		return false;
	}
	atomic_fetch_add_explicit(&a->locks, 1, memory_order_relaxed);
	return true;
}

static void lock_step(struct fm_agent *a, struct ag_thread *th, struct ag_op *op)
{
	uint64_t index = fm_lockword_index(op->first, op->d.lock_shift);
	uint64_t off = index * 8;
	struct ag_held *h;
	bool usable;

	switch (op->step) {
	case S_TABLE:
		/* the owner's restart grace gives no lock table (lease.h R6):
		 * a later grant of the same generation brings it */
		if (fm_client_map(a->c, op->map_id, &op->d, &usable)) {
			finish(op, fm_err(-ENOENT, "agent: map %" PRIu64 " unknown", op->map_id));
			return;
		}
		if (!op->d.locks.len) {
			/* the session broke meanwhile: end the wait now, so the
			 * I/O's bracket ends and the agent can quiesce and join
			 * again (lease.h R3); the next grace gives no table to
			 * this session anyway.  A release request came: end it
			 * too, so the map can be released; the I/O's next
			 * attempt waits for the next grant */
			if (!th->lane || !fm_client_token(a->c))
				finish(op, fm_err(-ECONNRESET, "agent: no session"));
			else if (!usable)
				finish(op, fm_err(-EAGAIN, "agent: map %" PRIu64 " is being "
						  "released", op->map_id));
			else if (now_ms() >= op->deadline_ms)
				finish(op, fm_err(-ETIMEDOUT, "agent: map %" PRIu64 " has no lock "
						  "table within %u ms (the owner's restart grace)",
						  op->map_id, a->cfg.wait_ms));
			else
				op->wake_ms = now_ms() + 10;
			return;
		}
		op->step = S_START;
		/* fall through */
	case S_START:
		h = held_find(a, th, op->owner, op->map_id, index);
		if (h) { /* ours already (re-entrant): just the fresh READ */
			held_get(th, h);
			op->word = h->word;
			op->step = S_POSTCHECK;
			lock_step(a, th, op);
			return;
		}
		if (!th->lane) {
			finish(op, fm_err(-ECONNRESET, "agent: no session"));
			return;
		}
		/* one read of the session: the word and the token we file it
		 * under name the same session */
		op->token = fm_client_token(a->c);
		if (!op->token) {
			finish(op, fm_err(-ECONNRESET, "agent: no session"));
			return;
		}
		op->word = fm_lockword_make((uint16_t)a->cfg.client_id, (uint32_t)op->token,
					    FM_LOCKWORD_F_HELD);
		if (a->cfg.decide_by_message) {
			/* no CAS of ours: the owner's CAS takes a free word */
			op->step = S_WAIT;
			req_submit(a, th, op, REQ_LOCKWAIT, FM_LOCKWORD_FREE);
			return;
		}
		if (op->slot < 0 && (op->slot = ag_slot_get(th)) < 0)
			return; /* no slot: later */
		if (post_cas(th, op, &op->d.locks, off, FM_LOCKWORD_FREE, op->word))
			return; /* -EAGAIN: later; else finished */
		op->step = S_CAS;
		if (post_read(a, th, op, &op->d.bitmap, op->first / 64 * 8, 8))
			op->lstatus = -EAGAIN; /* no READ behind it: read after the CAS */
		return;
	case S_POSTCHECK:
		if (a->cfg.decide_by_message) {
			op->step = S_QCHECK;
			query_submit(a, th, op, op->first, op->first);
			return;
		}
		if (!th->lane) {
			op->lstatus = -ECONNRESET;
			op->step = S_CHECK;
			lock_step(a, th, op);
			return;
		}
		switch (post_read(a, th, op, &op->d.bitmap, op->first / 64 * 8, 8)) {
		case 0:
			op->step = S_CHECK;
			return;
		case -EAGAIN:
			return; /* post it later */
		default:
			op->step = S_CHECK; /* lstatus says why: the count goes back */
			lock_step(a, th, op);
			return;
		}
	case S_CAS: { /* CAS (+ READ) completed */
		int read_st = op->lstatus;

		if (op->cas_status) {
			/* outcome unknown: the word may be ours; the owner
			 * reclaims it with the session */
			finish(op, ag_op_failed(op->cas_status));
			return;
		}
		if (op->old == FM_LOCKWORD_FREE) {
			if (!took(a, th, op, index))
				return;
			if (read_st) { /* no READ behind the CAS (or it failed): read now */
				op->lstatus = 0;
				op->step = S_POSTCHECK;
				lock_step(a, th, op);
				return;
			}
			op->split = bit_of(th, op);
			finish(op, 0);
			return;
		}
		if (fm_lockword_same_holder(op->old, op->word)) {
			/* another thread of ours: its release is a CAS */
			if (now_ms() >= op->deadline_ms) {
				finish(op, fm_err(-ETIMEDOUT, "agent: lock word of grain %" PRIu64
						  " held by another thread for %u ms", op->first,
						  a->cfg.wait_ms));
				return;
			}
			op->backoff_us = op->backoff_us ? op->backoff_us * 2 : 1;
			if (op->backoff_us > BACKOFF_MAX_US)
				op->backoff_us = BACKOFF_MAX_US;
			op->wake_ms = now_ms() + (op->backoff_us + 999) / 1000;
			op->lstatus = 0;
			op->step = S_START;
			return;
		}
		/* another client, or an earlier session of ours: the owner
		 * queues us and hands the word over */
		op->lstatus = 0;
		op->step = S_WAIT;
		req_submit(a, th, op, REQ_LOCKWAIT, op->old);
		return;
	}
	case S_WAIT: /* the owner answered */
		if (op->req.status) {
			finish(op, op->req.status);
			return;
		}
		/* it may have installed the word with WAITERS: our release
		 * compares the plain word and so finds the flag */
		op->word = op->req.out_word & ~(uint64_t)FM_LOCKWORD_F_WAITERS;
		if (!took(a, th, op, index))
			return;
		op->step = S_POSTCHECK;
		lock_step(a, th, op);
		return;
	case S_CHECK: /* the READ under the lock completed */
		if (op->lstatus) {
			/* the endpoint went away: give the count back (the
			 * owner reclaims the word with the session) */
			h = held_find(a, th, op->owner, op->map_id, index);
			if (h)
				(void)held_put(th, h);
			finish(op, ag_op_failed(op->lstatus));
			return;
		}
		op->split = bit_of(th, op);
		finish(op, 0);
		return;
	case S_QCHECK: /* decide by message: the answer under the lock */
		if (op->req.status == -EBUSY) { /* at the owner's bound: again */
			op->step = S_POSTCHECK;
			op->wake_ms = now_ms() + 1;
			return;
		}
		if (op->req.status) {
			/* give the count back: a lock nobody may use must not
			 * stay held (the owner frees it on our UNLOCK; without
			 * memory for it, with the session) */
			h = held_find(a, th, op->owner, op->map_id, index);
			if (h && !held_put(th, h))
				(void)unlock_msg(a, op->map_id, op->first, op->word);
			finish(op, op->req.status);
			return;
		}
		op->split = (int)(op->req.bits[0] & 1);
		finish(op, 0);
		return;
	case S_UNDO:
		finish(op, fm_err(-ENOMEM, "agent: lock table of a thread"));
		return;
	default:
		finish(op, -EINVAL);
	}
}

static void unlock_step(struct fm_agent *a, struct ag_thread *th, struct ag_op *op)
{
	uint64_t index = fm_lockword_index(op->first, op->d.lock_shift);
	struct ag_held *h;

	if (op->step == S_START) {
		if (op->word == 0) {
			/* the bookkeeping needs no lane: a hold is forgotten
			 * even when the session's endpoint is gone */
			h = held_find(a, th, op->owner, op->map_id, index);
			if (!h) {
				finish(op, fm_err(-ENOLCK, "agent: map %" PRIu64 " grain %" PRIu64
						  " not locked by this thread in this session",
						  op->map_id, op->first));
				return;
			}
			op->word = h->word;
			if (held_put(th, h)) {
				finish(op, 0);
				return;
			}
			atomic_fetch_add_explicit(&a->unlocks, 1, memory_order_relaxed);
		}
		if (a->cfg.decide_by_message) {
			/* the owner frees the word (or hands it on) */
			if (unlock_msg(a, op->map_id, op->first, op->word)) {
				op->step = S_WAIT;
				req_submit(a, th, op, REQ_UNLOCKMSG, op->word);
				return;
			}
			finish(op, 0);
			return;
		}
		if (!th->lane) {
			finish(op, fm_err(-ECONNRESET, "agent: no session"));
			return;
		}
		if (post_cas(th, op, &op->d.locks, index * 8, op->word, FM_LOCKWORD_FREE) == 0)
			op->step = S_RELEASE;
		return;
	}
	/* S_RELEASE completed */
	if (op->cas_status) {
		finish(op, ag_op_failed(op->cas_status));
		return;
	}
	switch (fm_lockword_release_result(op->word, op->old)) {
	case FM_LOCKWORD_RELEASED:
		finish(op, 0);
		return;
	case FM_LOCKWORD_NOTIFY:
		/* the owner queued waiters: it hands the word on */
		if (unlock_msg(a, op->map_id, op->first, op->old)) {
			op->step = S_WAIT;
			req_submit(a, th, op, REQ_UNLOCKMSG, op->old);
			return;
		}
		finish(op, 0);
		return;
	default:
		atomic_fetch_add_explicit(&a->locks_lost, 1, memory_order_relaxed);
		finish(op, fm_err(-ENOLCK, "agent: lock of grain %" PRIu64 " was lost (the "
				  "session ended and the owner reclaimed it)", op->first));
	}
}

static void commit_step(struct fm_agent *a, struct ag_thread *th, struct ag_op *op)
{
	if (op->step == S_START) {
		for (uint64_t i = fm_lockword_index(op->first, op->d.lock_shift);
		     i <= fm_lockword_index(op->last, op->d.lock_shift); i++)
			if (!held_find(a, th, op->owner, op->map_id, i)) {
				finish(op, fm_err(-ENOLCK, "agent: grains %" PRIu64 "..%" PRIu64
						  " are not all locked by this thread in this "
						  "session: nothing committed", op->first,
						  op->last));
				return;
			}
		op->step = S_WAIT;
		req_submit(a, th, op, REQ_COMMIT, 0);
		return;
	}
	if (op->req.status == 0)
		atomic_fetch_add_explicit(&a->commits, 1, memory_order_relaxed);
	finish(op, op->req.status);
}

static void claim_step(struct fm_agent *a, struct ag_thread *th, struct ag_op *op)
{
	if (op->step == S_START) {
		op->step = S_WAIT;
		req_submit(a, th, op, REQ_CLAIM, 0);
		return;
	}
	if (op->req.status == 0)
		op->batch = op->req.batch;
	finish(op, op->req.status);
}

static void step(struct fm_agent *a, struct ag_thread *th, struct ag_op *op)
{
	switch (op->kind) {
	case AG_OP_FETCH:
	case AG_OP_RAWREAD:
		fetch_step(a, th, op);
		break;
	case AG_OP_LOCK:
		lock_step(a, th, op);
		break;
	case AG_OP_UNLOCK:
		if (op->step == S_WAIT) /* the UNLOCK message went out */
			finish(op, op->req.status);
		else
			unlock_step(a, th, op);
		break;
	case AG_OP_COMMIT:
		commit_step(a, th, op);
		break;
	case AG_OP_CLAIM:
		claim_step(a, th, op);
		break;
	}
}

/* ----------------------------------------------------------- the driver */

int ag_op_start(struct fm_agent *a, struct ag_thread *th, struct ag_op *op)
{
	int dead = atomic_load(&a->dead);

	op->done = false;
	op->status = op->split = 0;
	op->step = S_START;
	op->pending = 0;
	op->lstatus = op->cas_status = 0;
	op->slot = -1;
	op->wake_ms = 0;
	op->backoff_us = 0;
	op->req_live = false;
	op->deadline_ms = now_ms() + a->cfg.wait_ms;
	if (!op->owner)
		op->owner = th;
	if (op->kind != AG_OP_UNLOCK)
		op->word = 0;
	if (dead)
		return fm_err(dead, "agent: dead (its state machine ran out of memory)");
	if (fm_client_map(a->c, op->map_id, &op->d, NULL))
		return fm_err(op->kind == AG_OP_UNLOCK ? -ENOLCK : -ENOENT,
			      "agent: map %" PRIu64 " unknown", op->map_id);
	if (op->kind == AG_OP_RAWREAD) {
		if (op->first > op->d.bitmap.len || op->len > op->d.bitmap.len - op->first ||
		    op->len > AG_READ_MAX || !op->len)
			return fm_err(-ERANGE, "agent: bytes %" PRIu64 "+%zu beyond the bitmap "
				      "of map %" PRIu64 " (%" PRIu64 " bytes)", op->first, op->len,
				      op->map_id, (uint64_t)op->d.bitmap.len);
	} else if (op->kind == AG_OP_CLAIM) {
		memset(&op->batch, 0, sizeof(op->batch));
	} else if (op->first > op->last || op->last >= op->d.grain_count) {
		return fm_err(op->kind == AG_OP_UNLOCK ? -ENOLCK : -ERANGE,
			      "agent: grains %" PRIu64 "..%" PRIu64 " not in map %" PRIu64,
			      op->first, op->last, op->map_id);
	}
	if (op->kind == AG_OP_LOCK && !op->d.locks.len)
		op->step = S_TABLE;
	op->next = th->ops;
	th->ops = op;
	(void)ag_progress(a, th);
	return 0;
}

/* Completions of th's lane, each to its op.  An old lane (the endpoint
 * changed) never completes again: its ops fail. */
static void reap_lane(struct fm_agent *a, struct ag_thread *th)
{
	struct fm_completion c[32];
	int n;

	while (th->lane && (n = fm_lane_poll(th->lane, c, 32)) > 0) {
		for (int i = 0; i < n; i++) {
			struct ag_op *op = c[i].ctx;

			if (!op->pending)
				continue; /* cannot happen: one completion a post */
			op->pending--;
			if (c[i].op == FM_LANE_CAS) {
				op->cas_status = c[i].status;
				op->old = c[i].old;
			} else if (c[i].status && !op->lstatus) {
				op->lstatus = c[i].status;
			}
		}
	}
	(void)a;
}

/* op was posted more than AG_OP_WAIT_MS before `now`.  `now` was read at
 * the start of the caller's pass, and a step of the same pass may have
 * posted op after it (posted_ms > now): that op is young, not 2^64 ms
 * old.  No subtraction that can wrap. */
static bool overdue(const struct ag_op *op, uint64_t now)
{
	return now > op->posted_ms + AG_OP_WAIT_MS;
}

/* The lane is gone (the session endpoint changed), or its completions
 * never came (leak): every op waiting on it fails, as it would have.
 *
 * Leak: an operation may still write into the READ buffers, so they stay
 * with the transport (never freed) and the thread takes new ones, whose
 * slots start all free.  So no op may keep a slot number of the old
 * buffer -- it would be handed out twice, and two ops would read each
 * other's bitmap words.  An op whose READ completed but was not looked at
 * yet reads again under what it holds: a LOCK whose CAS came back reads
 * its bit after the CAS (as when no READ went behind it), a LOCK holding
 * the word re-posts the READ under it, a FETCH starts over (a fresh fill
 * token, then the READ).  The lane is deleted (retired while operations
 * are in flight: transport lane.c).  A CAS that never completed may have
 * taken a lock word nobody of ours will release, so the session cannot go
 * on: the protocol thread ends it (the owner reclaims what the session
 * held) and joins again. */
static void lane_abandon(struct fm_agent *a, struct ag_thread *th, bool leak)
{
	for (struct ag_op *op = th->ops; op; op = op->next) {
		if (op->pending) {
			op->pending = 0;
			op->cas_status = op->cas_status ? op->cas_status : -ECONNRESET;
			op->lstatus = -ECONNRESET;
			if (op->kind == AG_OP_RAWREAD)
				th->big_busy = false;
			finish(op, -ECONNRESET);
		} else if (leak && op->step == S_CAS) {
			op->lstatus = -EAGAIN;
		} else if (leak && op->step == S_CHECK) {
			op->lstatus = 0;
			op->step = S_POSTCHECK;
		} else if (leak && op->step == S_READ) {
			if (op->kind == AG_OP_RAWREAD)
				th->big_busy = false;
			op->lstatus = 0;
			op->step = S_START;
		}
		if (leak)
			op->slot = -1;
	}
	if (leak) {
		atomic_store_explicit(&a->lane_broken, th->lane_gen, memory_order_release);
		atomic_fetch_add_explicit(&a->lanes_broken, 1, memory_order_relaxed);
		fm_lane_delete(&th->lane);
		th->buf = NULL;
		th->big = NULL;
		th->big_busy = false;
		memset(th->slots, 0, sizeof(th->slots));
		ag_wake(a);
	}
}

int ag_progress(struct fm_agent *a, struct ag_thread *th)
{
	uint64_t now = now_ms(), cnt;
	int finished = 0;
	bool again = true;

	if (atomic_load_explicit(&th->kicked, memory_order_relaxed) &&
	    atomic_exchange(&th->kicked, false))
		(void)!read(th->efd, &cnt, sizeof(cnt));
	/* callbacks may start ops: those join the list, the loop below (or
	 * the caller's next call) takes them, never a nested pass */
	if (!th->ops || th->in_progress)
		return 0;
	th->in_progress = true;
	for (struct ag_op *op = th->ops; op; op = op->next)
		if (op->req_live) { /* the protocol thread may have written it */
			(void)!read(th->efd, &cnt, sizeof(cnt));
			break;
		}
	if (th->lane && th->lane_gen != atomic_load_explicit(&a->ep_gen, memory_order_acquire)) {
		reap_lane(a, th);
		lane_abandon(a, th, false);
	}
	reap_lane(a, th);
	for (int round = 0; again && round < 4; round++) {
		again = false;
		for (struct ag_op **pp = &th->ops; *pp;) {
			struct ag_op *op = *pp;

			if (op->step >= 0 && op->pending == 0) {
				if (op->req_live) {
					if (atomic_load_explicit(&op->req.adone, memory_order_acquire)) {
						op->req_live = false;
						step(a, th, op);
					} else if (now >= op->deadline_ms && ag_req_cancel(a, &op->req)) {
						op->req_live = false;
						op->req.status = fm_err(-ETIMEDOUT, "agent: no answer "
									"from the owner within %u ms",
									a->cfg.wait_ms + 5000);
						step(a, th, op);
					}
				} else if (now >= op->wake_ms) {
					/* FETCH, RAWREAD need the lane now; LOCK and
					 * UNLOCK see th->lane themselves (a lock may
					 * wait for its table, a hold is forgotten
					 * without one); COMMIT and CLAIM need none */
					int rc = op->kind == AG_OP_COMMIT || op->kind == AG_OP_CLAIM ?
						 0 : ag_lane_ready(a, th);

					if (rc && (op->kind == AG_OP_FETCH || op->kind == AG_OP_RAWREAD))
						finish(op, rc);
					else
						step(a, th, op);
				}
			} else if (op->pending && overdue(op, now)) {
				lane_abandon(a, th, true);
			}
			if (op->step < 0 && op->pending == 0) {
				*pp = op->next;
				ag_slot_put(th, op->slot);
				op->slot = -1;
				op->done = true;
				finished++;
				again = true;
				if (op->cb)
					op->cb(op);
				continue;
			}
			pp = &op->next;
		}
		reap_lane(a, th);
	}
	th->in_progress = false;
	return finished;
}

int ag_progress_timeout(struct fm_agent *a, struct ag_thread *th)
{
	uint64_t now = now_ms(), t = UINT64_MAX;

	for (struct ag_op *op = th->ops; op; op = op->next) {
		uint64_t w = op->req_live ? op->deadline_ms :
			     op->pending ? op->posted_ms + AG_OP_WAIT_MS : op->wake_ms;

		if (w < t)
			t = w;
	}
	(void)a;
	if (t == UINT64_MAX)
		return -1;
	return t <= now ? 0 : t - now > 1000 ? 1000 : (int)(t - now);
}

void ag_idle(struct fm_agent *a, struct ag_thread *th, int cap_ms)
{
	struct pollfd pfd[2];
	int n = 0, to = ag_progress_timeout(a, th);

	if (to < 0 || to > cap_ms)
		to = cap_ms;
	if (to == 0)
		return;
	pfd[n++] = (struct pollfd){ .fd = th->efd, .events = POLLIN };
	if (th->lane && fm_lane_fd(th->lane) >= 0)
		pfd[n++] = (struct pollfd){ .fd = fm_lane_fd(th->lane), .events = POLLIN };
	(void)poll(pfd, (nfds_t)n, to);
}

struct op_wait {
	struct fm_agent *a;
	struct ag_thread *th;
};

static int op_wait_progress(void *ctx)
{
	struct op_wait *w = ctx;

	return ag_progress(w->a, w->th);
}

static void op_wait_sleep(void *ctx, int cap_ms)
{
	struct op_wait *w = ctx;

	ag_idle(w->a, w->th, cap_ms);
}

int ag_op_run(struct fm_agent *a, struct ag_thread *th, struct ag_op *op)
{
	struct op_wait w = { a, th };
	int rc = ag_op_start(a, th, op);

	if (rc)
		return rc;
	ag_wait(a, &op->done, op_wait_progress, op_wait_sleep, &w);
	return op->status;
}
