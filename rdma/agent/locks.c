/* locks.c -- grain locks and split commits, taken by the engine thread.
 *
 * A lock is one CAS on the calling thread's lane (lockword.h): free ->
 * this session's word.  Only when another client holds the word does the
 * thread ask the protocol thread for a LOCK_REQUEST and sleep until the
 * owner hands the word over (NOTE LOCKED).  The release is a CAS back to
 * free; a word the owner marked WAITERS is handed on with an UNLOCK message
 * that the protocol thread sends while the engine goes on.
 *
 * Locks belong to the thread that took them (like a mutex) and are
 * re-entrant: a thread may lock several grains under one lock word (a
 * lock_shift > 0 stripes grains), each fm_agent_lock counting once.
 * Another thread of this agent that finds the word held by this session
 * waits until it is free: it retries its CAS with a backoff (the holder's
 * release is a CAS, no message reaches us) -- never the owner's queue,
 * which serves other clients.
 *
 * A word held by this session's previous epoch is another holder to the
 * owner, which reclaims it (lease.h R3..R5).  A session that ended under a
 * held lock makes its release find another word: -ENOLCK.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "agent_priv.h"
#include "flashmeta/error.h"
#include "flashmeta/le.h"
#include "flashmeta/lockword.h"

#define AG_BACKOFF_MAX_US 1000u

static void held_drop(struct ag_thread *th, struct ag_held *h)
{
	*h = th->held[--th->nheld];
}

/* this thread's hold of word `index` in the current session; a hold from
 * an earlier session is dropped (the owner reclaimed it; its word value
 * may be a new session's too, so it must never be released by CAS) */
static struct ag_held *held_find(struct fm_agent *a, struct ag_thread *th, uint64_t map_id,
				 uint64_t index)
{
	uint64_t token = fm_client_token(a->c);

	for (size_t i = 0; i < th->nheld; i++) {
		struct ag_held *h = &th->held[i];

		if (h->map_id != map_id || h->index != index)
			continue;
		if (h->token == token)
			return h;
		held_drop(th, h);
		break;
	}
	return NULL;
}

static int held_add(struct ag_thread *th, uint64_t map_id, uint64_t index, uint64_t word,
		    uint64_t token)
{
	if (th->nheld == th->capheld) {
		size_t nc = th->capheld ? th->capheld * 2 : 8;
		struct ag_held *n = realloc(th->held, nc * sizeof(*n));

		if (!n)
			return fm_err(-ENOMEM, "agent: lock table of a thread");
		th->held = n;
		th->capheld = nc;
	}
	th->held[th->nheld++] = (struct ag_held){ .map_id = map_id, .index = index,
						  .word = word, .token = token, .count = 1 };
	return 0;
}

/* the descriptor of a map with its lock table; waits through the owner's
 * restart grace (no lock table yet, lease.h R6) up to cfg.wait_ms */
static int map_with_locks(struct fm_agent *a, uint64_t map_id, uint64_t grain,
			  struct fm_wire_mapdesc *d)
{
	struct timespec ts;
	bool late = false;

	ag_deadline_ts(&ts, a->cfg.wait_ms);
	for (;;) {
		if (atomic_load(&a->dead))
			return atomic_load(&a->dead);
		if (fm_client_map(a->c, map_id, d, NULL))
			return fm_err(-ENOENT, "agent: map %" PRIu64 " unknown", map_id);
		if (grain >= d->grain_count)
			return fm_err(-ERANGE, "agent: grain %" PRIu64 " beyond map %" PRIu64,
				      grain, map_id);
		if (d->locks.len)
			return 0;
		if (late)
			return fm_err(-ETIMEDOUT, "agent: map %" PRIu64 " has no lock table "
				      "within %u ms (the owner's restart grace)", map_id,
				      a->cfg.wait_ms);
		pthread_mutex_lock(&a->lock);
		late = ag_wait_until(a, &ts);
		pthread_mutex_unlock(&a->lock);
	}
}

static void backoff(unsigned *us)
{
	struct timespec ts = { 0, (long)*us * 1000 };

	nanosleep(&ts, NULL);
	*us = *us * 2 > AG_BACKOFF_MAX_US ? AG_BACKOFF_MAX_US : *us * 2;
}

/*
 * Take the word covering `grain`; *word = what we hold.  The first try
 * posts the CAS and the READ of the grain's bitmap word together
 * (ag_cas_read: one round trip); *have_bits says whether th->buf holds a
 * READ done under the lock (else the caller reads).
 */
static int word_take(struct fm_agent *a, struct ag_thread *th, const struct fm_wire_mapdesc *d,
		     uint64_t grain, uint64_t *word, uint64_t *token, bool *have_bits)
{
	uint64_t off = fm_lockword_offset(grain, d->lock_shift), deadline;
	uint64_t mine, old;
	unsigned us = 1;
	int rc;

	/* one read of the session: the word and the token we file it under
	 * must name the same session */
	*token = fm_client_token(a->c);
	mine = fm_lockword_make((uint16_t)a->cfg.client_id, (uint32_t)*token,
				FM_LOCKWORD_F_HELD);
	*have_bits = false;
	if (!*token)
		return fm_err(-ECONNRESET, "agent: no session");
	deadline = ag_now_ms() + a->cfg.wait_ms;
	for (bool first = true;; first = false) {
		if (first)
			rc = ag_cas_read(a, th, &d->locks, off, FM_LOCKWORD_FREE, mine, &old,
					 &d->bitmap, grain / 64 * 8, 8);
		else
			rc = ag_cas(a, th, &d->locks, off, FM_LOCKWORD_FREE, mine, &old);
		if (rc)
			return rc;
		if (old == FM_LOCKWORD_FREE) {
			*word = mine;
			*have_bits = first;
			return 0;
		}
		if (fm_lockword_same_holder(old, mine)) {
			/* another thread of ours: its release is a CAS */
			if (ag_now_ms() >= deadline)
				return fm_err(-ETIMEDOUT, "agent: lock word of grain %" PRIu64
					      " held by another thread for %u ms", grain,
					      a->cfg.wait_ms);
			backoff(&us);
			continue;
		}
		/* another client, or an earlier session of ours: the owner
		 * queues us and hands the word over */
		struct req r = { .type = REQ_LOCKWAIT, .map_id = d->map_id, .first = grain,
				 .word = old };

		rc = ag_req_run(a, &r);
		if (rc)
			return rc;
		/* the owner may have installed it with WAITERS: our release
		 * must compare the plain word and so find the flag */
		*word = r.out_word & ~(uint64_t)FM_LOCKWORD_F_WAITERS;
		return 0;
	}
}

/* give the word back (its count reached 0) */
static int word_give(struct fm_agent *a, struct ag_thread *th, const struct fm_wire_mapdesc *d,
		     uint64_t grain, uint64_t mine)
{
	uint64_t off = fm_lockword_offset(grain, d->lock_shift), old;
	int rc = ag_cas(a, th, &d->locks, off, mine, FM_LOCKWORD_FREE, &old);

	if (rc)
		return rc;
	switch (fm_lockword_release_result(mine, old)) {
	case FM_LOCKWORD_RELEASED:
		return 0;
	case FM_LOCKWORD_NOTIFY: {
		/* the owner queued waiters: it hands the word on */
		struct req *r = malloc(sizeof(*r));

		if (!r) {
			struct req s = { .type = REQ_UNLOCKMSG, .map_id = d->map_id,
					 .first = grain, .word = old };

			return ag_req_run(a, &s);
		}
		*r = (struct req){ .type = REQ_UNLOCKMSG, .map_id = d->map_id, .first = grain,
				   .word = old };
		ag_req_post(a, r);
		return 0;
	}
	default:
		atomic_fetch_add_explicit(&a->locks_lost, 1, memory_order_relaxed);
		return fm_err(-ENOLCK, "agent: lock of grain %" PRIu64 " was lost (the session "
			      "ended and the owner reclaimed it)", grain);
	}
}

int fm_agent_lock(struct fm_agent *a, uint64_t map_id, uint64_t grain)
{
	struct fm_wire_mapdesc d;
	struct ag_thread *th;
	struct ag_held *h;
	uint64_t word = 0, token = 0;
	bool have_bits = false;
	int rc = map_with_locks(a, map_id, grain, &d);

	if (rc)
		return rc;
	rc = ag_thread_get(a, &th);
	if (rc)
		return rc;
	h = held_find(a, th, map_id, fm_lockword_index(grain, d.lock_shift));
	if (h) {
		h->count++;
	} else {
		rc = word_take(a, th, &d, grain, &word, &token, &have_bits);
		if (rc)
			return rc;
		rc = held_add(th, map_id, fm_lockword_index(grain, d.lock_shift), word, token);
		if (rc) {
			(void)word_give(a, th, &d, grain, word);
			return rc;
		}
		atomic_fetch_add_explicit(&a->locks, 1, memory_order_relaxed);
	}
	/* under the lock: is the grain split already?  (a fresh READ: a
	 * commit of another client may have set it just before our CAS) */
	rc = have_bits ? 0 : ag_read(a, th, &d.bitmap, grain / 64 * 8, 8);
	if (rc) {
		(void)fm_agent_unlock(a, map_id, grain);
		return rc;
	}
	return (int)(fm_get_le64(fm_region_ptr(th->buf)) >> (grain % 64) & 1);
}

int fm_agent_unlock(struct fm_agent *a, uint64_t map_id, uint64_t grain)
{
	struct fm_wire_mapdesc d;
	struct ag_thread *th;
	struct ag_held *h;
	uint64_t word;
	int rc;

	if (fm_client_map(a->c, map_id, &d, NULL) || grain >= d.grain_count)
		return fm_err(-ENOLCK, "agent: map %" PRIu64 " grain %" PRIu64 " not locked",
			      map_id, grain);
	/* the bookkeeping needs no lane: a hold is forgotten even when the
	 * session's endpoint is gone (the owner reclaims the word) */
	rc = ag_ctx(a, &th);
	h = rc ? NULL : held_find(a, th, map_id, fm_lockword_index(grain, d.lock_shift));
	if (!h)
		return fm_err(-ENOLCK, "agent: map %" PRIu64 " grain %" PRIu64 " not locked by "
			      "this thread in this session", map_id, grain);
	if (--h->count)
		return 0;
	word = h->word;
	held_drop(th, h);
	atomic_fetch_add_explicit(&a->unlocks, 1, memory_order_relaxed);
	rc = ag_thread_get(a, &th);
	return rc ? rc : word_give(a, th, &d, grain, word);
}

int fm_agent_commit_range(struct fm_agent *a, uint64_t map_id, uint64_t first, uint64_t last)
{
	struct req r = { .type = REQ_COMMIT, .map_id = map_id, .first = first, .last = last };
	struct fm_wire_mapdesc d;
	struct ag_thread *th;
	int rc;

	if (fm_client_map(a->c, map_id, &d, NULL))
		return fm_err(-ENOENT, "agent: map %" PRIu64 " unknown", map_id);
	if (first > last || last >= d.grain_count)
		return fm_err(-ERANGE, "agent: grains %" PRIu64 "..%" PRIu64 " not in map %"
			      PRIu64, first, last, map_id);
	rc = ag_ctx(a, &th);
	if (rc)
		return rc;
	for (uint64_t i = fm_lockword_index(first, d.lock_shift);
	     rc == 0 && i <= fm_lockword_index(last, d.lock_shift); i++)
		if (!held_find(a, th, map_id, i))
			rc = fm_err(-ENOLCK, "agent: grains %" PRIu64 "..%" PRIu64 " are not all "
				    "locked by this thread in this session: nothing committed",
				    first, last);
	if (rc == 0) {
		rc = ag_req_run(a, &r);
		if (rc == 0)
			atomic_fetch_add_explicit(&a->commits, 1, memory_order_relaxed);
	}
	/* the locks go back whatever the answer; one that fails to after a
	 * successful commit changes nothing: the split is durable.  The
	 * caller learns why the commit failed, not why a release did. */
	if (rc) {
		char why[256];

		snprintf(why, sizeof(why), "%s", fm_errormsg());
		for (uint64_t g = first; g <= last; g++)
			(void)fm_agent_unlock(a, map_id, g);
		return fm_err(rc, "%s", why);
	}
	for (uint64_t g = first; g <= last; g++)
		(void)fm_agent_unlock(a, map_id, g);
	return 0;
}

int fm_agent_commit_split(struct fm_agent *a, uint64_t map_id, uint64_t grain)
{
	return fm_agent_commit_range(a, map_id, grain, grain);
}
