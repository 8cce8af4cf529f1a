/* test_proto.c -- owner and client state machines over the fake transport:
 * join/auth, lock round trips, contention, commit ordering, release drain,
 * lease expiry -> fence -> reclaim, release racing a fetch, garbage, owner
 * refusals, the commit holder check, and a randomized soak (see there). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "flashmeta/lockword.h"
#include "fake_net.h"

static struct sim S;

static void up(struct sim *s, int n, uint32_t term)
{
	sim_init(s, 1, n, term);
	for (int i = 0; i < n; i++)
		sim_connect(s, i);
	sim_run(s, s->now + 20);
	for (int i = 0; i < n; i++)
		assert_int_equal(fm_client_state(s->c[i].cl), FM_CLIENT_ACTIVE);
}

static void join_auth__right_key_joins_wrong_key_refused(void **state)
{
	struct fm_owner_stats st;

	sim_init(&S, 1, 2, 300);
	sim_wrong_key(&S, 1);
	sim_connect(&S, 0);
	sim_connect(&S, 1);
	sim_run(&S, S.now + 50);
	assert_int_equal(fm_client_state(S.c[0].cl), FM_CLIENT_ACTIVE);
	assert_int_equal(fm_client_state(S.c[1].cl), FM_CLIENT_CLOSED);
	assert_int_equal(sim_count(&S, 0, FM_NOTE_JOINED, 0), 1);
	assert_int_equal(sim_count(&S, 1, FM_NOTE_JOINED, 0), 0);
	assert_int_equal(sim_count(&S, 1, FM_NOTE_CLOSED, 0), 1);
	fm_owner_stats(S.owner, &st);
	assert_int_equal(st.auth_failures, 1);
	assert_int_equal(st.sessions_active, 1);
	/* the joined client got confirmation leases on both maps */
	assert_int_equal(sim_count(&S, 0, FM_NOTE_GRANTED, 0), 2);
	/* and keeps its lease over many terms */
	sim_run(&S, S.now + 3000);
	assert_int_equal(fm_client_state(S.c[0].cl), FM_CLIENT_ACTIVE);
	sim_fini(&S);
}

static void lock_commit__uncontended__no_lock_messages(void **state)
{
	const struct sim_note *n;
	struct fm_owner_stats st;

	up(&S, 1, 300);
	assert_int_equal(fm_client_fetch(S.c[0].cl, 100, 7, 1, S.now), 0);
	sim_run(&S, S.now + 10);
	n = sim_find(&S, 0, FM_NOTE_FETCHED, 0);
	assert_non_null(n);
	assert_int_equal(n->n.status, 0);
	assert_false(n->n.split);
	assert_false(fm_cache_lookup(S.c[0].cache, 100, 7, NULL)); /* negative not cached */

	assert_int_equal(fm_client_lock(S.c[0].cl, 100, 7, 2, S.now), 0);
	sim_run(&S, S.now + 10);
	n = sim_find(&S, 0, FM_NOTE_LOCKED, 0);
	assert_non_null(n);
	assert_int_equal(n->n.status, 0);
	assert_int_equal(fm_lockword_client(S.store[0].locks[7]), 1);
	assert_int_equal(fm_client_commit(S.c[0].cl, 100, 7, 3, S.now), 0);
	sim_run(&S, S.now + 10);
	n = sim_find(&S, 0, FM_NOTE_COMMITTED, 0);
	assert_non_null(n);
	assert_int_equal(n->n.status, 0);
	assert_true(sim_bit(&S, 0, 7));
	assert_true(fm_cache_lookup(S.c[0].cache, 100, 7, NULL));
	assert_int_equal(S.store[0].locks[7], 0);
	fm_owner_stats(S.owner, &st);
	assert_int_equal(st.lock_requests, 0);
	assert_int_equal(S.sends[FM_MSG_UNLOCK], 0);
	sim_fini(&S);
}

static void contention__queued_granted_in_order_then_free(void **state)
{
	const struct sim_note *b, *c;
	int mark;

	up(&S, 3, 300);
	assert_int_equal(fm_client_lock(S.c[0].cl, 100, 9, 1, S.now), 0);
	sim_run(&S, S.now + 10);
	assert_int_equal(fm_client_lock(S.c[1].cl, 100, 9, 2, S.now), 0);
	sim_run(&S, S.now + 3);
	assert_int_equal(fm_client_lock(S.c[2].cl, 100, 9, 3, S.now), 0);
	sim_run(&S, S.now + 20);
	assert_int_equal(sim_count(&S, 1, FM_NOTE_LOCKED, 0), 0);
	assert_int_equal(S.sends[FM_MSG_LOCK_REQUEST], 2);
	/* the owner armed the word */
	assert_true(fm_lockword_flags(S.store[0].locks[9]) & FM_LOCKWORD_F_WAITERS);
	mark = S.nnotes;
	assert_int_equal(fm_client_commit(S.c[0].cl, 100, 9, 4, S.now), 0);
	sim_run(&S, S.now + 30);
	/* A's release was a message (WAITERS set), B was handed the word */
	assert_int_equal(S.sends[FM_MSG_UNLOCK], 1);
	b = sim_find(&S, 1, FM_NOTE_LOCKED, mark);
	assert_non_null(b);
	assert_int_equal(b->n.status, 0);
	assert_true(b->n.split); /* re-read under the lock sees A's split */
	assert_null(sim_find(&S, 2, FM_NOTE_LOCKED, mark));
	assert_int_equal(fm_client_unlock(S.c[1].cl, 100, 9, S.now), 0);
	sim_run(&S, S.now + 30);
	c = sim_find(&S, 2, FM_NOTE_LOCKED, mark);
	assert_non_null(c);
	assert_int_equal(fm_client_unlock(S.c[2].cl, 100, 9, S.now), 0);
	sim_run(&S, S.now + 30);
	assert_int_equal(S.store[0].locks[9], 0);
	sim_fini(&S);
}

static void commit__ack_only_after_persist_done(void **state)
{
	up(&S, 1, 300);
	S.hold_persist = true;
	fm_client_lock(S.c[0].cl, 101, 3, 1, S.now);
	sim_run(&S, S.now + 10);
	assert_int_equal(fm_client_commit(S.c[0].cl, 101, 3, 2, S.now), 0);
	sim_run(&S, S.now + 200);
	assert_int_equal(S.sends[FM_MSG_SPLIT_COMMIT], 1);
	assert_int_equal(S.sends[FM_MSG_SPLIT_ACK], 0);
	assert_int_equal(sim_count(&S, 0, FM_NOTE_COMMITTED, 0), 0);
	assert_false(sim_bit(&S, 1, 3));
	assert_false(fm_cache_lookup(S.c[0].cache, 101, 3, NULL));
	sim_release_persists(&S);
	sim_run(&S, S.now + 20);
	assert_int_equal(S.sends[FM_MSG_SPLIT_ACK], 1);
	assert_int_equal(sim_count(&S, 0, FM_NOTE_COMMITTED, 0), 1);
	assert_true(sim_bit(&S, 1, 3));
	assert_true(fm_cache_lookup(S.c[0].cache, 101, 3, NULL));
	sim_fini(&S);
}

static void release__waits_for_inflight_io_then_released(void **state)
{
	up(&S, 1, 300);
	S.auto_update = false;
	S.store[0].bitmap[0] = 0xff; /* grains 0..7 split */
	fm_client_fetch(S.c[0].cl, 100, 2, 1, S.now);
	sim_run(&S, S.now + 10);
	assert_true(fm_cache_lookup(S.c[0].cache, 100, 2, NULL));
	assert_int_equal(fm_client_io_begin(S.c[0].cl, 100), 0);
	assert_int_equal(fm_owner_map_revoke(S.owner, 100, FM_RELEASE_RESTART, S.now), 0);
	sim_run(&S, S.now + 100);
	assert_int_equal(S.sends[FM_MSG_RELEASE_REQUEST], 1);
	assert_int_equal(S.sends[FM_MSG_RELEASED], 0); /* I/O still in flight */
	assert_int_equal(fm_client_io_begin(S.c[0].cl, 100), -EAGAIN);
	assert_false(S.store[0].revoked);
	assert_true(fm_client_io_end(S.c[0].cl, 100)); /* last one: kick */
	fm_client_kick(S.c[0].cl, S.now);
	sim_run(&S, S.now + 20);
	assert_int_equal(S.sends[FM_MSG_RELEASED], 1);
	assert_true(S.store[0].revoked);
	assert_false(fm_cache_lookup(S.c[0].cache, 100, 2, NULL));
	assert_int_equal(fm_client_fetch(S.c[0].cl, 100, 2, 2, S.now), -EAGAIN);
	/* the other map is untouched */
	assert_int_equal(fm_client_io_begin(S.c[0].cl, 101), 0);
	fm_client_io_end(S.c[0].cl, 101);
	sim_fini(&S);
}

static void lease_expiry__fence__locks_reclaimed_and_handed_over(void **state)
{
	struct fm_owner_stats st;
	const struct sim_note *n;

	up(&S, 2, 300);
	fm_client_lock(S.c[0].cl, 100, 20, 1, S.now);
	sim_run(&S, S.now + 10);
	assert_int_equal(fm_lockword_client(S.store[0].locks[20]), 1);
	S.c[0].crashed = true; /* A dies holding the lock */
	fm_client_lock(S.c[1].cl, 100, 20, 2, S.now);
	sim_run(&S, S.now + 200);
	assert_null(sim_find(&S, 1, FM_NOTE_LOCKED, 0));
	sim_run(&S, S.now + 600);
	fm_owner_stats(S.owner, &st);
	assert_true(st.fences >= 1);
	assert_true(st.locks_reclaimed >= 1);
	assert_int_equal(sim_count(&S, -1, FM_NOTE_SESSION_DOWN, 0), 1);
	n = sim_find(&S, 1, FM_NOTE_LOCKED, 0);
	assert_non_null(n);
	assert_int_equal(n->n.status, 0);
	assert_int_equal(fm_lockword_client(S.store[0].locks[20]), 2);
	assert_int_equal(fm_client_state(S.c[1].cl), FM_CLIENT_ACTIVE);
	sim_fini(&S);
}

/* A FENCE that fails proves nothing: the dead holder's word must stay
 * held until a later FENCE succeeds (the owner retries at its tick). */
static void fence__failed_fence__locks_held_until_a_retry_succeeds(void **state)
{
	struct fm_owner_stats st;

	up(&S, 2, 300);
	fm_client_lock(S.c[0].cl, 100, 20, 1, S.now);
	sim_run(&S, S.now + 10);
	assert_int_equal(fm_lockword_client(S.store[0].locks[20]), 1);
	S.c[0].crashed = true;
	S.fence_failures = 1000000; /* every fence fails */
	fm_client_lock(S.c[1].cl, 100, 20, 2, S.now);
	sim_run(&S, S.now + 2000); /* far past lease + grace */
	fm_owner_stats(S.owner, &st);
	assert_int_equal(st.locks_reclaimed, 0);
	assert_int_equal(fm_lockword_client(S.store[0].locks[20]), 1);
	assert_null(sim_find(&S, 1, FM_NOTE_LOCKED, 0));
	assert_int_equal(sim_count(&S, -1, FM_NOTE_SESSION_DOWN, 0), 0);
	S.fence_failures = 0; /* the next retry works */
	sim_run(&S, S.now + 1000);
	fm_owner_stats(S.owner, &st);
	assert_true(st.locks_reclaimed >= 1);
	assert_non_null(sim_find(&S, 1, FM_NOTE_LOCKED, 0));
	assert_int_equal(fm_lockword_client(S.store[0].locks[20]), 2);
	sim_fini(&S);
}

static void lease_lapse__client_discards_before_owner_fences(void **state)
{
	uint64_t cut;

	up(&S, 1, 300);
	S.store[0].bitmap[0] = 0x0f;
	fm_client_fetch(S.c[0].cl, 100, 1, 1, S.now);
	sim_run(&S, S.now + 10);
	assert_true(fm_cache_lookup(S.c[0].cache, 100, 1, NULL));
	S.c[0].extra_delay = 10000; /* partition: renewals never arrive */
	cut = S.now;
	while (fm_client_state(S.c[0].cl) == FM_CLIENT_ACTIVE && S.now < cut + 2000)
		sim_run(&S, S.now + 5);
	/* the client gave up by itself ... */
	assert_int_equal(fm_client_state(S.c[0].cl), FM_CLIENT_CLOSED);
	assert_false(fm_cache_lookup(S.c[0].cache, 100, 1, NULL));
	sim_fini(&S);
}

static void release_racing_fetch__stale_fill_refused(void **state)
{
	const struct sim_note *n;

	up(&S, 1, 300);
	S.auto_update = true;
	S.store[0].bitmap[1] = 0xff; /* grains 8..15 split in generation 1 */
	S.op_exec = 1;
	S.op_done = 60; /* the READ answer comes back late */
	assert_int_equal(fm_client_fetch(S.c[0].cl, 100, 9, 1, S.now), 0);
	sim_run(&S, S.now + 3); /* the READ executed: it saw the old bits */
	assert_int_equal(fm_owner_map_revoke(S.owner, 100, FM_RELEASE_RESTART, S.now), 0);
	sim_run(&S, S.now + 30);
	/* restarted: generation 2 has nothing split */
	assert_int_equal(S.store[0].d.generation, 2);
	assert_false(sim_bit(&S, 0, 9));
	sim_run(&S, S.now + 100);
	n = sim_find(&S, 0, FM_NOTE_FETCHED, 0);
	assert_non_null(n);
	assert_int_equal(n->n.status, -ESTALE);
	for (uint64_t g = 0; g < SIM_GRAINS; g++)
		assert_false(fm_cache_lookup(S.c[0].cache, 100, g, NULL));
	sim_fini(&S);
}

static void garbage__closes_only_that_session(void **state)
{
	uint8_t junk[64];
	struct fm_owner_stats st;

	up(&S, 2, 300);
	memset(junk, 0xab, sizeof(junk));
	sim_inject(&S, 0, junk, sizeof(junk));
	sim_run(&S, S.now + 20);
	assert_int_equal(fm_client_state(S.c[0].cl), FM_CLIENT_CLOSED);
	assert_int_equal(fm_client_state(S.c[1].cl), FM_CLIENT_ACTIVE);
	fm_owner_stats(S.owner, &st);
	assert_int_equal(st.malformed, 1);
	/* a truncated but otherwise valid message, from the second client */
	sim_connect(&S, 0);
	sim_run(&S, S.now + 20);
	assert_int_equal(fm_client_state(S.c[0].cl), FM_CLIENT_ACTIVE);
	{
		struct fm_msg m = { .type = FM_MSG_LEASE_RENEW, .seq = 99 };
		uint8_t buf[FM_WIRE_MAX_MSG];
		int len = fm_wire_encode(&m, buf, sizeof(buf));

		sim_inject(&S, 1, buf, (size_t)len - 3);
	}
	sim_run(&S, S.now + 20);
	assert_int_equal(fm_client_state(S.c[1].cl), FM_CLIENT_CLOSED);
	assert_int_equal(fm_client_state(S.c[0].cl), FM_CLIENT_ACTIVE);
	/* the survivor still works */
	fm_client_lock(S.c[0].cl, 101, 1, 1, S.now);
	sim_run(&S, S.now + 20);
	assert_int_equal(sim_count(&S, 0, FM_NOTE_LOCKED, 0), 1);
	sim_fini(&S);
}

/* Owner refusals (ERROR) complete the operation they refer to. */
static void error__refused_lock_request__locked_fails_with_owner_code(void **state)
{
	const struct sim_note *n;
	int mark;

	up(&S, 2, 300);
	S.auto_update = false;
	/* A holds grain 5 and 6; B queues behind A on 6 */
	fm_client_lock(S.c[0].cl, 100, 5, 1, S.now);
	fm_client_lock(S.c[0].cl, 100, 6, 2, S.now);
	sim_run(&S, S.now + 10);
	assert_int_equal(sim_count(&S, 0, FM_NOTE_LOCKED, 0), 2);
	fm_client_lock(S.c[1].cl, 100, 6, 3, S.now);
	sim_run(&S, S.now + 10);
	assert_int_equal(S.sends[FM_MSG_LOCK_REQUEST], 1);
	assert_int_equal(fm_owner_map_remove(S.owner, 100), -EBUSY); /* not revoked */
	assert_int_equal(fm_owner_map_revoke(S.owner, 100, FM_RELEASE_REMOVE, S.now), 0);
	sim_run(&S, S.now + 20);
	assert_true(S.store[0].revoked);
	mark = S.nnotes;
	assert_int_equal(fm_owner_map_remove(S.owner, 100), 0);
	assert_int_equal(fm_owner_map_remove(S.owner, 100), -ENOENT);
	sim_run(&S, S.now + 10);
	/* the queued waiter is refused, not left hanging */
	n = sim_find(&S, 1, FM_NOTE_LOCKED, mark);
	assert_non_null(n);
	assert_int_equal(n->n.status, -ENOENT);
	assert_int_equal(n->n.cookie, 3);
	/* a new LOCK_REQUEST on the removed map: refused as well */
	mark = S.nnotes;
	assert_int_equal(fm_client_lock(S.c[1].cl, 100, 5, 4, S.now), 0);
	sim_run(&S, S.now + 20);
	assert_int_equal(S.sends[FM_MSG_LOCK_REQUEST], 2);
	n = sim_find(&S, 1, FM_NOTE_LOCKED, mark);
	assert_non_null(n);
	assert_int_equal(n->n.status, -ENOENT);
	assert_int_equal(n->n.cookie, 4);
	/* ... and A's commit on it */
	assert_int_equal(fm_client_commit(S.c[0].cl, 100, 5, 5, S.now), 0);
	sim_run(&S, S.now + 20);
	n = sim_find(&S, 0, FM_NOTE_COMMITTED, mark);
	assert_non_null(n);
	assert_int_equal(n->n.status, -ENOENT);
	assert_int_equal(n->n.cookie, 5);
	assert_false(sim_bit(&S, 0, 5));
	/* sessions live on; the other map is unaffected and the slot reusable */
	assert_int_equal(fm_client_state(S.c[0].cl), FM_CLIENT_ACTIVE);
	assert_int_equal(fm_client_state(S.c[1].cl), FM_CLIENT_ACTIVE);
	S.store[0].d.map_id = 102;
	assert_int_equal(fm_owner_map_add(S.owner, &S.store[0].d), 0);
	mark = S.nnotes;
	fm_client_lock(S.c[1].cl, 101, 5, 6, S.now);
	sim_run(&S, S.now + 20);
	assert_int_equal(sim_find(&S, 1, FM_NOTE_LOCKED, mark)->n.cookie, 6);
	assert_int_equal(sim_find(&S, 1, FM_NOTE_LOCKED, mark)->n.status, 0);
	sim_fini(&S);
}

/* A SPLIT_COMMIT from a session that does not hold the grain's lock word
 * (here: the word was handed to B behind A's back, as a reclaim would) is
 * refused with ERROR -ENOLCK and nothing is persisted. */
static void commit__lock_word_not_held__refused_enolck_bitmap_unchanged(void **state)
{
	const struct sim_note *n;
	struct fm_owner_stats st;
	uint64_t theirs;

	up(&S, 2, 300);
	fm_client_lock(S.c[0].cl, 100, 5, 1, S.now);
	sim_run(&S, S.now + 10);
	assert_int_equal(sim_find(&S, 0, FM_NOTE_LOCKED, 0)->n.status, 0);
	theirs = fm_lockword_make(2, fm_client_epoch(S.c[1].cl), FM_LOCKWORD_F_HELD);
	S.store[0].locks[5] = theirs;
	assert_int_equal(fm_client_commit(S.c[0].cl, 100, 5, 2, S.now), 0);
	sim_run(&S, S.now + 20);
	n = sim_find(&S, 0, FM_NOTE_COMMITTED, 0);
	assert_non_null(n);
	assert_int_equal(n->n.status, -ENOLCK);
	assert_int_equal(n->n.cookie, 2);
	assert_false(sim_bit(&S, 0, 5));
	assert_int_equal(S.persists_done, 0);
	assert_false(fm_cache_lookup(S.c[0].cache, 100, 5, NULL));
	assert_int_equal(S.store[0].locks[5], theirs); /* untouched by the check */
	assert_int_equal(sim_count(&S, 0, FM_NOTE_LOCK_LOST, 0), 1);
	fm_owner_stats(S.owner, &st);
	assert_int_equal(st.commits_refused, 1);
	assert_int_equal(fm_client_state(S.c[0].cl), FM_CLIENT_ACTIVE);
	/* a lock held with WAITERS armed still commits (same holder) */
	fm_client_lock(S.c[0].cl, 100, 8, 3, S.now);
	sim_run(&S, S.now + 10);
	fm_client_lock(S.c[1].cl, 100, 8, 4, S.now);
	sim_run(&S, S.now + 20);
	assert_true(fm_lockword_flags(S.store[0].locks[8]) & FM_LOCKWORD_F_WAITERS);
	fm_client_commit(S.c[0].cl, 100, 8, 5, S.now);
	sim_run(&S, S.now + 20);
	assert_true(sim_bit(&S, 0, 8));
	fm_owner_stats(S.owner, &st);
	assert_int_equal(st.commits_refused, 1);
	sim_fini(&S);
}

/* A fenced session's words are not reclaimed while its commit is being
 * persisted: otherwise the next holder re-reads "not split", copies, and
 * the late PERSIST makes others trust (or overwrite the source of) a grain
 * that copy has not finished. */
static void fence__reclaim_waits_for_the_sessions_persist(void **state)
{
	const struct sim_note *n;

	up(&S, 2, 300);
	S.hold_persist = true;
	fm_client_lock(S.c[0].cl, 100, 20, 1, S.now);
	sim_run(&S, S.now + 10);
	fm_client_commit(S.c[0].cl, 100, 20, 2, S.now);
	sim_run(&S, S.now + 10);
	S.c[0].crashed = true; /* A dies with its commit being persisted */
	fm_client_lock(S.c[1].cl, 100, 20, 3, S.now);
	sim_run(&S, S.now + 1000);
	assert_int_equal(sim_count(&S, -1, FM_NOTE_SESSION_DOWN, 0), 0);
	assert_null(sim_find(&S, 1, FM_NOTE_LOCKED, 0));
	assert_int_equal(fm_lockword_client(S.store[0].locks[20]), 1);
	sim_release_persists(&S);
	sim_run(&S, S.now + 50);
	n = sim_find(&S, 1, FM_NOTE_LOCKED, 0);
	assert_non_null(n);
	assert_int_equal(n->n.status, 0);
	assert_true(n->n.split); /* B sees A's split: it will not copy again */
	assert_int_equal(sim_count(&S, -1, FM_NOTE_SESSION_DOWN, 0), 1);
	sim_fini(&S);
}

/* A broken link fences the client at once, but an I/O that trusted a hit
 * just before may still run: its grant counts -- the revoke does not
 * complete -- until the session's lease (+ grace) ran out. */
static void fence__broken_link__grant_counts_until_the_lease_runs_out(void **state)
{
	uint64_t broke;

	up(&S, 1, 300);
	S.auto_update = false;
	S.store[0].bitmap[0] = 0xff;
	fm_client_fetch(S.c[0].cl, 100, 2, 1, S.now);
	sim_run(&S, S.now + 10);
	assert_int_equal(fm_client_io_begin(S.c[0].cl, 100), 0);
	assert_true(fm_cache_lookup(S.c[0].cache, 100, 2, NULL)); /* trusted */
	broke = S.now;
	sim_break(&S, 0);
	assert_int_equal(fm_owner_map_revoke(S.owner, 100, FM_RELEASE_RESTART, S.now), 0);
	sim_run(&S, S.now + 150);
	assert_false(S.store[0].revoked);
	assert_int_equal(fm_owner_session_state(S.owner, (uint64_t)1 << 16), FM_OSESS_FENCING);
	fm_client_io_end(S.c[0].cl, 100);
	sim_run(&S, broke + 300 + 75 + 20);
	assert_true(S.store[0].revoked);
	assert_int_equal(sim_count(&S, -1, FM_NOTE_SESSION_DOWN, 0), 1);
	sim_fini(&S);
}

/* ---- soak ----
 *
 * Four clients, two maps, a hot set of 64 grains, random message delays,
 * dropped links, lease-losing stalls and frequent restarts (revoke ->
 * REVOKED -> new generation, bitmap cleared).  Two invariants, checked
 * continuously:
 *
 *  (a) every cache hit of every client is a bit durable in the current
 *      generation of the owner's store (check_hits);
 *  (b) no I/O that trusted a hit of map m is still in flight when the
 *      owner reports REVOKED for m -- the point where the driver proceeds
 *      past the revoke (restart, clear the bitmap).  I/Os that trusted a
 *      hit stay in flight 1..IO_MAX ms (below the lease grace, the bound
 *      the protocol assumes).
 *
 * Adversarial scheduling that makes those invariants bite: some one-sided
 * READ/CAS answers come back up to 120 ms late (across a RELEASE_REQUEST,
 * a RELEASED, the restart and the new grant); restarts every ~60 ms.
 *
 * Mutations this soak is known to catch on its default seeds 1..8 (each
 * applied by hand, run, reverted -- never committed):
 *  - proto_client.c fetch_done re-reads the cache epoch AFTER the bitmap
 *    READ instead of using the one taken before: stale fills survive the
 *    restart -> (a), ~45000 violation reports;
 *  - proto_client.c try_drain answers RELEASED without waiting for
 *    inflight == 0 -> (b), ~100 reports;
 *  - proto_owner.c sess_fenced_step drops a fenced session's grants
 *    without waiting for its lease to run out -> (b), 3 reports (the
 *    targeted test fence__broken_link__... catches it directly).
 * The soak before this rework (instant I/O, 3+3 ms READs, rare restarts)
 * caught none of them.
 */
#define IO_MAX 30u
#define IO_SLOTS 64

enum { E_IDLE, E_FETCH, E_LOCK, E_COMMIT };

struct engine {
	int st;
	int map;
	uint64_t grain;
};

struct io {
	bool used;
	int client, map;
	uint64_t end;
};

static struct engine eng[SIM_MAX_CLIENTS];
static int holder[SIM_MAPS][SIM_GRAINS]; /* client+1 that believes it holds */
static struct io ios[IO_SLOTS];
static uint64_t violations, hits, commits_ok, long_ios, restarts;

static int map_ix(uint64_t id)
{
	return (int)(id - 100);
}

static void soak_note(struct sim *s, int i, const struct fm_notify *n)
{
	struct engine *e;

	if (i < 0) {
		if (n->type != FM_NOTE_REVOKED)
			return;
		restarts++;
		/* (b): the owner proceeds past the revoke now */
		for (int k = 0; k < IO_SLOTS; k++) {
			if (ios[k].used && 100 + (uint64_t)ios[k].map == n->map_id) {
				fprintf(stderr, "VIOLATION t=%llu map %d revoked while "
					"client %d (%s, link %s) has I/O in flight "
					"until %llu\n",
					(unsigned long long)s->now, ios[k].map,
					ios[k].client,
					fm_client_state_name(fm_client_state(s->c[ios[k].client].cl)),
					s->c[ios[k].client].connected ? "up" : "down",
					(unsigned long long)ios[k].end);
				violations++;
			}
		}
		return;
	}
	e = &eng[i];
	switch (n->type) {
	case FM_NOTE_FETCHED:
		if (n->status == 0 && !n->split &&
		    fm_client_lock(s->c[i].cl, n->map_id, n->grain, 0, s->now) == 0) {
			e->st = E_LOCK;
			break;
		}
		e->st = E_IDLE;
		break;
	case FM_NOTE_LOCKED:
		if (n->status != 0) {
			e->st = E_IDLE;
			break;
		}
		if (holder[map_ix(n->map_id)][n->grain] &&
		    holder[map_ix(n->map_id)][n->grain] != i + 1)
			violations++; /* two clients believe they hold it */
		holder[map_ix(n->map_id)][n->grain] = i + 1;
		if (n->split || fm_client_commit(s->c[i].cl, n->map_id, n->grain, 0, s->now)) {
			holder[map_ix(n->map_id)][n->grain] = 0;
			fm_client_unlock(s->c[i].cl, n->map_id, n->grain, s->now);
			e->st = E_IDLE;
		} else {
			e->st = E_COMMIT;
		}
		break;
	case FM_NOTE_COMMITTED:
		if (holder[map_ix(n->map_id)][n->grain] == i + 1)
			holder[map_ix(n->map_id)][n->grain] = 0;
		if (n->status == 0)
			commits_ok++;
		e->st = E_IDLE;
		break;
	case FM_NOTE_CLOSED:
		for (int m = 0; m < SIM_MAPS; m++)
			for (int g = 0; g < SIM_GRAINS; g++)
				if (holder[m][g] == i + 1)
					holder[m][g] = 0;
		e->st = E_IDLE;
		break;
	default:
		break;
	}
}

/* The invariant: every hit of every client is durable in the current
 * generation of the owner's store. */
static void check_hits(struct sim *s)
{
	for (int i = 0; i < s->nclients; i++)
		for (int m = 0; m < SIM_MAPS; m++)
			for (uint64_t g = 0; g < SIM_GRAINS; g++)
				if (fm_cache_lookup(s->c[i].cache, 100 + (uint64_t)m, g, NULL) &&
				    !sim_bit(s, m, g)) {
					fprintf(stderr, "VIOLATION t=%llu client %d map %d grain %llu\n",
						(unsigned long long)s->now, i, m,
						(unsigned long long)g);
					violations++;
				}
}

/* End the trusted I/Os that are due (all of them when `all`). */
static void ios_end(struct sim *s, bool all)
{
	for (int k = 0; k < IO_SLOTS; k++) {
		struct io *io = &ios[k];

		if (!io->used || (!all && s->now < io->end))
			continue;
		io->used = false;
		if (fm_client_io_end(s->c[io->client].cl, 100 + (uint64_t)io->map))
			fm_client_kick(s->c[io->client].cl, s->now);
	}
}

/* An I/O on (m, g) by client i: trust a hit for 0..IO_MAX ms. */
static void io_start(struct sim *s, int i, int m, uint64_t g)
{
	struct sim_client *c = &s->c[i];
	int k;

	if (fm_client_io_begin(c->cl, 100 + (uint64_t)m) != 0)
		return;
	if (!fm_cache_lookup(c->cache, 100 + (uint64_t)m, g, NULL)) {
		if (fm_client_io_end(c->cl, 100 + (uint64_t)m))
			fm_client_kick(c->cl, s->now);
		return;
	}
	hits++;
	if (!sim_bit(s, m, g))
		violations++;
	for (k = 0; k < IO_SLOTS && ios[k].used; k++)
		;
	if (k == IO_SLOTS || sim_rand(s) % 2) {
		if (fm_client_io_end(c->cl, 100 + (uint64_t)m))
			fm_client_kick(c->cl, s->now);
		return;
	}
	ios[k] = (struct io){ .used = true, .client = i, .map = m,
			      .end = s->now + 1 + sim_rand(s) % IO_MAX };
	long_ios++;
}

static void soak_one(uint64_t seed)
{
	const int n = 4;

	memset(eng, 0, sizeof(eng));
	memset(holder, 0, sizeof(holder));
	memset(ios, 0, sizeof(ios));
	sim_init(&S, seed, n, 200); /* grace 50 ms > IO_MAX + a tick */
	S.delay_min = 0;
	S.delay_max = 8;
	S.op_exec = 2;
	S.op_done = 3;
	S.op_slow_permille = 150;
	S.op_slow_max = 120;
	S.drop_permille = 2;
	S.on_note = soak_note;
	for (int i = 0; i < n; i++)
		sim_connect(&S, i);
	for (int step = 0; step < 8000; step++) {
		for (int i = 0; i < n; i++) {
			struct sim_client *c = &S.c[i];

			if (fm_client_state(c->cl) == FM_CLIENT_CLOSED && sim_rand(&S) % 20 == 0) {
				c->extra_delay = 0;
				sim_connect(&S, i);
			}
			if (fm_client_state(c->cl) == FM_CLIENT_ACTIVE && sim_rand(&S) % 3000 == 0)
				c->extra_delay = 400; /* a stall long enough to lose the lease */
			if (fm_client_state(c->cl) == FM_CLIENT_ACTIVE) {
				int m = (int)(sim_rand(&S) % SIM_MAPS);
				uint64_t g = sim_rand(&S) % 64; /* hot set: contention */

				io_start(&S, i, m, g);
				if (eng[i].st == E_IDLE &&
				    !fm_cache_lookup(c->cache, 100 + (uint64_t)m, g, NULL) &&
				    fm_client_fetch(c->cl, 100 + (uint64_t)m, g, 0, S.now) == 0)
					eng[i].st = E_FETCH;
			}
		}
		if (sim_rand(&S) % 30 == 0)
			fm_owner_map_revoke(S.owner, 100 + sim_rand(&S) % SIM_MAPS,
					    FM_RELEASE_RESTART, S.now);
		sim_run(&S, S.now + 2);
		ios_end(&S, false);
		check_hits(&S);
	}
	ios_end(&S, true);
	check_hits(&S);
	sim_fini(&S);
}

static void soak__seeds__hits_durable_and_no_io_across_revoke(void **state)
{
	violations = hits = commits_ok = long_ios = restarts = 0;
	for (uint64_t seed = 1; seed <= 8; seed++)
		soak_one(seed);
	fprintf(stderr, "soak: %llu hits, %llu trusted I/Os in flight, %llu commits, "
		"%llu restarts, %llu violations\n",
		(unsigned long long)hits, (unsigned long long)long_ios,
		(unsigned long long)commits_ok, (unsigned long long)restarts,
		(unsigned long long)violations);
	assert_int_equal(violations, 0);
	/* a soak that never hits, commits or restarts proves nothing */
	assert_true(hits > 1000);
	assert_true(long_ios > 500);
	assert_true(commits_ok > 200);
	assert_true(restarts > 100);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(join_auth__right_key_joins_wrong_key_refused),
		cmocka_unit_test(lock_commit__uncontended__no_lock_messages),
		cmocka_unit_test(contention__queued_granted_in_order_then_free),
		cmocka_unit_test(commit__ack_only_after_persist_done),
		cmocka_unit_test(release__waits_for_inflight_io_then_released),
		cmocka_unit_test(lease_expiry__fence__locks_reclaimed_and_handed_over),
		cmocka_unit_test(fence__failed_fence__locks_held_until_a_retry_succeeds),
		cmocka_unit_test(lease_lapse__client_discards_before_owner_fences),
		cmocka_unit_test(release_racing_fetch__stale_fill_refused),
		cmocka_unit_test(garbage__closes_only_that_session),
		cmocka_unit_test(error__refused_lock_request__locked_fails_with_owner_code),
		cmocka_unit_test(commit__lock_word_not_held__refused_enolck_bitmap_unchanged),
		cmocka_unit_test(fence__reclaim_waits_for_the_sessions_persist),
		cmocka_unit_test(fence__broken_link__grant_counts_until_the_lease_runs_out),
		cmocka_unit_test(soak__seeds__hits_durable_and_no_io_across_revoke),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
