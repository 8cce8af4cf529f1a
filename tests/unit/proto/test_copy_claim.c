/* test_copy_claim.c -- background copy claims (flashmeta/copy.h) between the
 * owner and client state machines over the fake transport: batches of
 * unsplit grains only, disjoint between copiers, the rest of an ended or
 * abandoned batch back to the pool, a closed session's batch back to the
 * pool, DONE / WAIT / STALE, the pace, the restart grace, one claim at a
 * time -- and a randomized run against a plain model (a bitmap and the
 * batches out) with copiers that stop half way, die and come back. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "flashmeta/copy.h"
#include "fake_net.h"

#define MAP 100 /* the sim's map 0: SIM_GRAINS grains of 64 KiB, COPYING */

static struct sim S;
static uint64_t cookie;

static void up(int n)
{
	sim_init(&S, 1, n, 300);
	for (int i = 0; i < n; i++)
		sim_connect(&S, i);
	sim_run(&S, S.now + 20);
	for (int i = 0; i < n; i++)
		assert_int_equal(fm_client_state(S.c[i].cl), FM_CLIENT_ACTIVE);
}

/* client i claims; run until its answer; the note */
static struct fm_notify claim(int i, uint64_t gen, uint64_t done_batch, uint64_t done_next,
			      uint32_t max)
{
	int from = S.nnotes;
	const struct sim_note *n;

	assert_int_equal(fm_client_copy_claim(S.c[i].cl, MAP, gen, done_batch, done_next, max,
					      ++cookie, S.now), 0);
	for (int k = 0; k < 100 && !(n = sim_find(&S, i, FM_NOTE_COPY_BATCH, from)); k++)
		sim_run(&S, S.now + 1);
	assert_non_null(n);
	assert_int_equal(n->n.cookie, cookie);
	return n->n;
}

static void split(uint64_t first, uint64_t last)
{
	for (uint64_t g = first; g <= last; g++)
		S.store[0].bitmap[g / 8] |= (uint8_t)(1u << (g % 8));
}

static void assert_batch(const struct fm_notify *n, uint64_t first, uint64_t last)
{
	assert_int_equal(n->status, 0);
	assert_int_equal(n->copy.status, FM_COPY_OK);
	assert_true(n->copy.batch_id != 0);
	assert_int_equal(n->copy.first, first);
	assert_int_equal(n->copy.last, last);
}

static void claim__rate_zero_waits__then_unsplit_runs_only(void **state)
{
	struct fm_owner_copy_info ci;
	struct fm_notify n;

	(void)state;
	up(1);
	n = claim(0, 1, 0, 0, 16);
	assert_int_equal(n.copy.status, FM_COPY_WAIT);
	assert_int_equal(n.copy.wait_ms, FM_COPY_POLL_MS);
	assert_int_equal(n.copy.rate, 0);
	assert_int_equal(fm_owner_map_rate(S.owner, MAP, FM_COPY_RATE_MAX + 1), -ERANGE);
	assert_int_equal(fm_owner_map_rate(S.owner, 999, 10), -ENOENT);
	assert_int_equal(fm_owner_map_rate(S.owner, MAP, 150), 0);
	/* grains 3..4 split by foreground I/O already: the first run stops
	 * before them */
	split(3, 4);
	n = claim(0, 1, 0, 0, 16);
	assert_batch(&n, 0, 2);
	assert_int_equal(n.copy.rate, 150);
	/* it copied them all: the next batch starts after the split ones */
	split(0, 2);
	n = claim(0, 1, n.copy.batch_id, 3, 16);
	assert_batch(&n, 5, 20);
	assert_int_equal(fm_owner_copy_info(S.owner, MAP, &ci), 0);
	assert_int_equal(ci.rate, 150);
	assert_int_equal(ci.copiers, 1);
	assert_int_equal(ci.grains_out, 16);
	assert_int_equal(ci.grains_returned, 0);
	assert_int_equal(ci.cursor, 21);
	assert_int_equal(ci.batches_handed, 2);
	sim_fini(&S);
}

static void claim__two_copiers__disjoint_and_the_rest_of_an_ended_batch_comes_back(void **state)
{
	struct fm_notify a, b, c;

	(void)state;
	up(2);
	fm_owner_map_rate(S.owner, MAP, 150);
	a = claim(0, 1, 0, 0, 16);
	b = claim(1, 1, 0, 0, 16);
	assert_batch(&a, 0, 15);
	assert_batch(&b, 16, 31);
	/* copier 0 copied 0..7 and stops there: 8..15 go back */
	split(0, 7);
	a = claim(0, 1, a.copy.batch_id, 8, 0);
	assert_int_equal(a.copy.status, FM_COPY_WAIT);
	assert_int_equal(a.copy.wait_ms, 0);
	/* the pool goes first */
	c = claim(1, 1, b.copy.batch_id, 16, 16); /* copier 1 did nothing of its batch */
	assert_batch(&c, 8, 15);
	c = claim(0, 1, 0, 0, 16);
	assert_batch(&c, 16, 31);
	sim_fini(&S);
}

static void claim__copier_dies__its_batch_back_to_the_pool(void **state)
{
	struct fm_owner_copy_info ci;
	struct fm_notify a, b;

	(void)state;
	up(2);
	fm_owner_map_rate(S.owner, MAP, 150);
	a = claim(0, 1, 0, 0, 8);
	assert_batch(&a, 0, 7);
	split(0, 2); /* it copied three grains and died */
	sim_kill(&S, 0);
	sim_run(&S, S.now + 5);
	assert_int_equal(fm_owner_copy_info(S.owner, MAP, &ci), 0);
	assert_int_equal(ci.copiers, 0);
	assert_int_equal(ci.grains_returned, 8);
	/* the survivor gets what is still unsplit of it, nothing copied twice */
	b = claim(1, 1, 0, 0, 8);
	assert_batch(&b, 3, 7);
	b = claim(1, 1, b.copy.batch_id, 8, 8);
	assert_batch(&b, 8, 15);
	sim_fini(&S);
}

static void claim__all_split__wait_while_one_is_out__then_done(void **state)
{
	struct fm_notify a, b;

	(void)state;
	up(2);
	fm_owner_map_rate(S.owner, MAP, 150);
	split(0, SIM_GRAINS - 1);
	S.store[0].bitmap[(SIM_GRAINS - 1) / 8] &= 0x7f; /* the last grain is unsplit */
	a = claim(0, 1, 0, 0, 16);
	assert_batch(&a, SIM_GRAINS - 1, SIM_GRAINS - 1);
	/* nothing unclaimed: wait, copier 0 may give it back */
	b = claim(1, 1, 0, 0, 16);
	assert_int_equal(b.copy.status, FM_COPY_WAIT);
	assert_int_equal(b.copy.wait_ms, FM_COPY_POLL_MS);
	split(SIM_GRAINS - 1, SIM_GRAINS - 1);
	a = claim(0, 1, a.copy.batch_id, SIM_GRAINS, 16);
	assert_int_equal(a.copy.status, FM_COPY_DONE);
	b = claim(1, 1, 0, 0, 16);
	assert_int_equal(b.copy.status, FM_COPY_DONE);
	sim_fini(&S);
}

static void claim__other_generation_or_revoked__stale__new_generation_starts_over(void **state)
{
	struct fm_notify a;

	(void)state;
	up(1);
	fm_owner_map_rate(S.owner, MAP, 150);
	a = claim(0, 7, 0, 0, 16);
	assert_int_equal(a.copy.status, FM_COPY_STALE);
	assert_int_equal(a.generation, 1);
	a = claim(0, 1, 0, 0, 16);
	assert_batch(&a, 0, 15);
	/* a restart: revoke, then the sim bumps the generation and clears */
	S.auto_update = false;
	assert_int_equal(fm_owner_map_revoke(S.owner, MAP, FM_RELEASE_RESTART, S.now), 0);
	sim_run(&S, S.now + 10);
	a = claim(0, 1, a.copy.batch_id, 16, 16);
	assert_int_equal(a.copy.status, FM_COPY_STALE); /* withheld */
	S.store[0].d.generation = 2;
	memset(S.store[0].bitmap, 0, sizeof(S.store[0].bitmap));
	assert_int_equal(fm_owner_map_update(S.owner, &S.store[0].d), 0);
	sim_run(&S, S.now + 10);
	a = claim(0, 2, 0, 0, 16);
	assert_batch(&a, 0, 15); /* from the start again */
	assert_int_equal(a.generation, 2);
	sim_fini(&S);
}

static void claim__the_pace__all_copiers_within_the_rate(void **state)
{
	struct fm_notify a, b, c;
	uint64_t t0;

	(void)state;
	up(3);
	/* rate 1: 128 KiB/s, 64 KiB grains: two grains a batch of a second */
	fm_owner_map_rate(S.owner, MAP, 1);
	t0 = S.now;
	a = claim(0, 1, 0, 0, 64);
	assert_batch(&a, 0, 1);
	/* a batch time ahead of the pace: wait until a quarter of it is left */
	b = claim(1, 1, 0, 0, 64);
	assert_int_equal(b.copy.status, FM_COPY_WAIT);
	assert_true(b.copy.wait_ms > FM_COPY_BATCH_MS * 3 / 4 - 50 &&
		    b.copy.wait_ms <= FM_COPY_BATCH_MS * 3 / 4);
	sim_run(&S, S.now + b.copy.wait_ms);
	b = claim(1, 1, 0, 0, 64);
	assert_batch(&b, 2, 3);
	c = claim(2, 1, 0, 0, 64);
	assert_int_equal(c.copy.status, FM_COPY_WAIT);
	sim_run(&S, S.now + c.copy.wait_ms);
	c = claim(2, 1, 0, 0, 64);
	assert_batch(&c, 4, 5);
	/* three batches of a second each: the third is handed out a
	 * quarter of a second before the second one is paid for */
	assert_true(S.now - t0 >= 2 * FM_COPY_BATCH_MS - FM_COPY_BATCH_MS / 4);
	assert_true(S.now - t0 < 2 * FM_COPY_BATCH_MS);
	/* a new rate applies at once */
	fm_owner_map_rate(S.owner, MAP, 150);
	a = claim(0, 1, a.copy.batch_id, 2, 16);
	assert_batch(&a, 6, 21);
	sim_fini(&S);
}

static void claim__restart_grace__wait_until_it_is_over(void **state)
{
	struct fm_notify a;

	(void)state;
	up(1);
	sim_restart_owner(&S, 400);
	fm_owner_map_rate(S.owner, MAP, 150);
	sim_connect(&S, 0);
	sim_run(&S, S.now + 50);
	assert_int_equal(fm_client_state(S.c[0].cl), FM_CLIENT_ACTIVE);
	a = claim(0, 1, 0, 0, 16);
	assert_int_equal(a.copy.status, FM_COPY_WAIT);
	assert_true(a.copy.wait_ms > 300 && a.copy.wait_ms <= 400);
	sim_run(&S, S.now + a.copy.wait_ms + 10);
	a = claim(0, 1, 0, 0, 16);
	assert_batch(&a, 0, 15);
	sim_fini(&S);
}

static void claim__two_at_once__the_second_refused_ebusy(void **state)
{
	const struct sim_note *n;
	int from;

	(void)state;
	up(1);
	fm_owner_map_rate(S.owner, MAP, 150);
	from = S.nnotes;
	assert_int_equal(fm_client_copy_claim(S.c[0].cl, MAP, 1, 0, 0, 8, 1, S.now), 0);
	assert_int_equal(fm_client_copy_claim(S.c[0].cl, MAP, 1, 0, 0, 8, 2, S.now), 0);
	sim_run(&S, S.now + 20);
	assert_int_equal(sim_count(&S, 0, FM_NOTE_COPY_BATCH, from), 2);
	n = sim_find(&S, 0, FM_NOTE_COPY_BATCH, from);
	assert_int_equal(n->n.cookie, 2); /* refused at once, the first waits for its READ */
	assert_int_equal(n->n.status, -EBUSY);
	n = sim_find(&S, 0, FM_NOTE_COPY_BATCH, (int)(n - S.notes) + 1);
	assert_int_equal(n->n.cookie, 1);
	assert_batch(&n->n, 0, 7);
	/* refusals on the client side, before anything is sent */
	assert_int_equal(fm_client_copy_claim(S.c[0].cl, 999, 1, 0, 0, 8, 3, S.now), -ENOENT);
	assert_int_equal(fm_client_copy_claim(S.c[0].cl, MAP, 1, 0, 0, FM_COPY_BATCH_MAX + 1, 3,
					      S.now), -ERANGE);
	assert_int_equal(fm_client_copy_claim(S.c[0].cl, MAP, 1, 0, 5, 8, 3, S.now), -EINVAL);
	sim_fini(&S);
}

static void claim__session_ends_with_a_claim_out__econnreset(void **state)
{
	const struct sim_note *n;
	int from;

	(void)state;
	up(1);
	fm_owner_map_rate(S.owner, MAP, 150);
	S.delay_min = S.delay_max = 5;
	from = S.nnotes;
	assert_int_equal(fm_client_copy_claim(S.c[0].cl, MAP, 1, 0, 0, 8, 7, S.now), 0);
	sim_break(&S, 0);
	sim_run(&S, S.now + 20);
	n = sim_find(&S, 0, FM_NOTE_COPY_BATCH, from);
	assert_non_null(n);
	assert_int_equal(n->n.status, -ECONNRESET);
	sim_fini(&S);
}

/* ---- randomized, against a model ----
 * Copiers claim, "copy" a random prefix of their batch (set the bits, as
 * a durable SPLIT_COMMIT would), then claim again naming how far they got,
 * or stop, or die (and come back as a new process); foreground I/O splits
 * random grains.  Checked at every answer: a batch holds only grains
 * unsplit when it was handed out, overlaps no other batch out, and is at
 * most what was asked; at the end every grain is split, DONE is said, and
 * no grain was "copied" twice (a copy = a grain of a batch set by its
 * copier; it never sets a bit already set). */
struct rc_copier {
	bool has;               /* a batch out, as the copier knows it */
	uint64_t id, first, last;
	bool waiting;           /* a claim out */
	uint64_t wake;
	bool done;
};

static struct rc_copier cop[SIM_MAX_CLIENTS];
static int copies[SIM_GRAINS];

static void rc_note(struct sim *s, int i, const struct fm_notify *n)
{
	struct rc_copier *k;

	if (i < 0 || n->type != FM_NOTE_COPY_BATCH)
		return;
	k = &cop[i];
	k->waiting = false;
	if (n->status) {
		k->wake = s->now + 10;
		return;
	}
	switch (n->copy.status) {
	case FM_COPY_OK:
		assert_true(n->copy.last - n->copy.first + 1 <= 16);
		/* unsplit when handed out: no copier set it before the claim
		 * went out (foreground splits may race with the answer) */
		for (uint64_t g = n->copy.first; g <= n->copy.last; g++)
			assert_int_equal(copies[g], 0);
		for (int j = 0; j < s->nclients; j++) {
			if (j == i || !cop[j].has || s->c[j].dead)
				continue;
			/* disjoint from every other batch out (a dead copier's
			 * went back to the pool with its session) */
			assert_true(n->copy.last < cop[j].first || n->copy.first > cop[j].last);
		}
		k->has = true;
		k->id = n->copy.batch_id;
		k->first = n->copy.first;
		k->last = n->copy.last;
		break;
	case FM_COPY_WAIT:
		k->wake = s->now + (n->copy.wait_ms < 20 ? n->copy.wait_ms : 20);
		break;
	case FM_COPY_DONE:
		k->done = true;
		break;
	default:
		fail_msg("copier %d: status %u", i, n->copy.status);
	}
}

static void random_run(uint64_t seed)
{
	int nc = 4, deaths = 0;

	memset(cop, 0, sizeof(cop));
	memset(copies, 0, sizeof(copies));
	sim_init(&S, seed, nc, 300);
	for (int i = 0; i < nc; i++)
		sim_connect(&S, i);
	sim_run(&S, S.now + 20);
	S.on_note = rc_note;
	S.delay_max = 3;
	fm_owner_map_rate(S.owner, MAP, 150);
	for (int round = 0; round < 4000; round++) {
		int i = (int)(sim_rand(&S) % (uint64_t)nc);
		struct rc_copier *k = &cop[i];
		uint64_t r = sim_rand(&S) % 100;

		if (r < 3) { /* foreground I/O splits a grain */
			uint64_t g = sim_rand(&S) % SIM_GRAINS;

			split(g, g);
		} else if (r < 5 && deaths < 6 && !S.c[i].dead &&
			   fm_client_state(S.c[i].cl) == FM_CLIENT_ACTIVE) {
			sim_kill(&S, i); /* it dies mid-batch */
			deaths++;
		} else if (S.c[i].dead) {
			/* a new process of the same copier, later */
			if (r < 30) {
				sim_restart_client(&S, i);
				sim_connect(&S, i);
				memset(k, 0, sizeof(*k));
			}
		} else if (fm_client_state(S.c[i].cl) == FM_CLIENT_ACTIVE && !k->waiting &&
			   !k->done && S.now >= k->wake) {
			uint64_t next = 0;

			if (k->has) { /* copy a prefix of it: each grain still unsplit */
				uint64_t n = sim_rand(&S) % (k->last - k->first + 2);

				for (next = k->first; next < k->first + n; next++)
					if (!sim_bit(&S, 0, next)) {
						copies[next]++;
						split(next, next);
					}
			}
			assert_int_equal(fm_client_copy_claim(S.c[i].cl, MAP, 1, k->has ? k->id : 0,
							      next, r < 8 ? 0 : 16, ++cookie,
							      S.now), 0);
			k->waiting = true;
			k->has = false; /* the claim ends it */
		}
		sim_run(&S, S.now + 1);
	}
	/* let the survivors finish */
	for (int t = 0; t < 4000; t++) {
		bool all = true;

		for (int i = 0; i < nc; i++) {
			struct rc_copier *k = &cop[i];

			if (S.c[i].dead) {
				sim_restart_client(&S, i);
				sim_connect(&S, i);
				memset(k, 0, sizeof(*k));
			}
			all = all && k->done;
			if (fm_client_state(S.c[i].cl) != FM_CLIENT_ACTIVE || k->waiting || k->done ||
			    S.now < k->wake)
				continue;
			if (k->has)
				for (uint64_t g = k->first; g <= k->last; g++)
					if (!sim_bit(&S, 0, g)) {
						copies[g]++;
						split(g, g);
					}
			assert_int_equal(fm_client_copy_claim(S.c[i].cl, MAP, 1, k->has ? k->id : 0,
							      k->has ? k->last + 1 : 0, 16,
							      ++cookie, S.now), 0);
			k->waiting = true;
			k->has = false;
		}
		if (all)
			break;
		sim_run(&S, S.now + 1);
	}
	for (int i = 0; i < nc; i++)
		assert_true(cop[i].done);
	for (uint64_t g = 0; g < SIM_GRAINS; g++) {
		assert_true(sim_bit(&S, 0, g));
		assert_true(copies[g] <= 1);
	}
	S.on_note = NULL;
	sim_fini(&S);
}

static void random__copiers_stop_die_and_return__every_grain_once(void **state)
{
	(void)state;
	for (uint64_t seed = 1; seed <= 20; seed++)
		random_run(seed);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(claim__rate_zero_waits__then_unsplit_runs_only),
		cmocka_unit_test(claim__two_copiers__disjoint_and_the_rest_of_an_ended_batch_comes_back),
		cmocka_unit_test(claim__copier_dies__its_batch_back_to_the_pool),
		cmocka_unit_test(claim__all_split__wait_while_one_is_out__then_done),
		cmocka_unit_test(claim__other_generation_or_revoked__stale__new_generation_starts_over),
		cmocka_unit_test(claim__the_pace__all_copiers_within_the_rate),
		cmocka_unit_test(claim__restart_grace__wait_until_it_is_over),
		cmocka_unit_test(claim__two_at_once__the_second_refused_ebusy),
		cmocka_unit_test(claim__session_ends_with_a_claim_out__econnreset),
		cmocka_unit_test(random__copiers_stop_die_and_return__every_grain_once),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
