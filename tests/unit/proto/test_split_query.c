/* test_split_query.c -- the owner's SPLIT_QUERY (wire 2.2, owner/query.c),
 * driven by hand: a test peer joins with real HELLO/AUTH messages, sends
 * queries, and completes the owner's loopback READs from a plain bitmap.
 *
 * What is checked: an answer carries exactly the published bits (random
 * queries against the bitmap), the refusals in their order with one errno
 * each (unknown map, map being released, range, generation, per-session
 * bound), a map released and withheld while a READ was out (never answered
 * with the cleared bitmap; not removable until the READ is back), a failed
 * READ, the restart grace (answered: the published bitmap is the durable
 * one), a closed session (nothing sent), and that a query changes nothing
 * at the owner (no CAS, no PERSIST, no grant). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "flashmeta/mapping.h"
#include "flashmeta/proto_owner.h"
#include "flashmeta/wire.h"

#define CONN 1
#define MAP 5
#define GEN 3
#define GRAINS 2000u
#define KEY "key-1"

static struct fm_owner *O;
static uint8_t bitmap[256]; /* published == durable, as the store keeps it */
static uint64_t sid, seq, now = 1000, rng = 88172645463325252ull;

/* the READs the owner asked for and has not been told about */
static struct fm_action reads[16];
static int nreads;
/* what it sent, decoded */
static struct fm_msg sent[64];
static int nsent;
static int other_actions; /* CAS, PERSIST, FENCE ... */
static int by_type[FM_MSG_TYPE_END]; /* every message sent, by type */

static uint64_t xrand(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

static void fixed_rand(void *ctx, void *buf, size_t len)
{
	(void)ctx;
	memset(buf, 0x5a, len);
}

static void drain(void)
{
	struct fm_action a;

	while (fm_owner_poll(O, &a) == 1) {
		if (a.type == FM_ACT_READ) {
			assert_true(a.conn == FM_CONN_LOCAL);
			assert_true(nreads < 16);
			reads[nreads++] = a;
		} else if (a.type == FM_ACT_SEND) {
			assert_true(nsent < 64);
			assert_int_equal(fm_wire_decode(a.u.msg.buf, a.u.msg.len, &sent[nsent]), 0);
			by_type[sent[nsent].type]++;
			nsent++;
		} else if (a.type != FM_ACT_NOTIFY) {
			other_actions++;
		}
	}
}

static void to_owner(struct fm_msg *m)
{
	uint8_t buf[FM_WIRE_MAX_MSG];
	int n;

	m->session = sid;
	m->seq = ++seq;
	n = fm_wire_encode(m, buf, sizeof(buf));
	assert_true(n > 0);
	assert_int_equal(fm_owner_recv(O, CONN, buf, (size_t)n, now), 0);
	drain();
}

/* the last message of `type` sent since index `from`, or NULL */
static const struct fm_msg *last_sent(uint16_t type, int from)
{
	for (int i = nsent - 1; i >= from; i--)
		if (sent[i].type == type)
			return &sent[i];
	return NULL;
}

static void map_desc(struct fm_wire_mapdesc *d, uint64_t gen)
{
	memset(d, 0, sizeof(*d));
	d->map_id = MAP;
	d->generation = gen;
	d->grain_count = GRAINS;
	d->grain_shift = 16;
	d->state = FM_MAP_COPYING;
	d->bitmap.addr = 0x10000;
	d->bitmap.len = sizeof(bitmap);
	d->bitmap.key = 1;
	d->bitmap.flags = FM_ACCESS_REMOTE_READ;
	d->locks.addr = 0x20000; /* never touched by a query */
	d->locks.len = 8 * GRAINS;
	d->locks.key = 2;
	d->locks.flags = FM_ACCESS_REMOTE_ATOMIC;
}

/* an owner serving MAP (grace until now + grace_ms if not 0), a session
 * of client 1 joined on CONN */
static void up(uint32_t max_queries, uint32_t grace_ms)
{
	struct fm_owner_cfg cfg = { .lease_term_ms = 3000, .max_queries = max_queries,
				    .rand_bytes = fixed_rand };
	struct fm_wire_mapdesc d;
	struct fm_msg m;
	const struct fm_msg *ch;
	uint8_t cnonce[FM_WIRE_NONCE_SIZE];

	nreads = nsent = other_actions = 0;
	memset(by_type, 0, sizeof(by_type));
	sid = seq = 0;
	assert_int_equal(fm_owner_new(&O, &cfg), 0);
	assert_int_equal(fm_owner_client_add(O, 1, KEY, strlen(KEY)), 0);
	if (grace_ms)
		assert_int_equal(fm_owner_grace(O, now + grace_ms, now), 0);
	map_desc(&d, GEN);
	assert_int_equal(fm_owner_map_add(O, &d), 0);
	assert_int_equal(fm_owner_connected(O, CONN, now), 0);
	fm_wire_msg_init(&m, FM_MSG_HELLO);
	m.u.hello.client_id = 1;
	m.u.hello.ver_major = FM_WIRE_MAJOR;
	m.u.hello.ver_minor = FM_WIRE_MINOR;
	memset(cnonce, 0x11, sizeof(cnonce));
	memcpy(m.u.hello.nonce, cnonce, sizeof(cnonce));
	to_owner(&m);
	ch = last_sent(FM_MSG_CHALLENGE, 0);
	assert_non_null(ch);
	sid = ch->session;
	fm_wire_msg_init(&m, FM_MSG_AUTH);
	fm_wire_auth_mac(KEY, strlen(KEY), 1, cnonce, ch->u.challenge.nonce, sid, m.u.auth.mac);
	to_owner(&m);
	assert_non_null(last_sent(FM_MSG_WELCOME, 0));
	assert_int_equal(fm_owner_session_state(O, CONN), FM_OSESS_ACTIVE);
}

static void down(void)
{
	fm_owner_delete(&O);
}

static void query(uint64_t map_id, uint64_t gen, uint64_t first, uint16_t count, uint64_t qid)
{
	struct fm_msg m;

	fm_wire_msg_init(&m, FM_MSG_SPLIT_QUERY);
	m.u.query.map_id = map_id;
	m.u.query.generation = gen;
	m.u.query.query_id = qid;
	m.u.query.first = first;
	m.u.query.count = count;
	to_owner(&m);
}

/* complete the oldest READ (from the bitmap, or failed) */
static void read_done(int status)
{
	struct fm_action a = reads[0];

	assert_true(nreads > 0);
	memmove(reads, reads + 1, (size_t)--nreads * sizeof(reads[0]));
	assert_true(a.u.io.region.addr == 0x10000);
	assert_true(a.u.io.offset + a.u.io.len <= sizeof(bitmap));
	assert_int_equal(fm_owner_op_done(O, a.op_id, status, 0,
					  status ? NULL : bitmap + a.u.io.offset,
					  status ? 0 : a.u.io.len, now), 0);
	drain();
}

/* the ERROR the owner sent last, for the message of seq `ref`: its code */
static int refusal_of(uint64_t ref)
{
	const struct fm_msg *e = last_sent(FM_MSG_ERROR, 0);

	assert_non_null(e);
	assert_int_equal(e->u.error.ref_seq, ref);
	return -(int)e->u.error.code;
}

/* ... for the message just sent */
static int refusal(void)
{
	return refusal_of(seq);
}

static bool ref_bit(uint64_t g)
{
	return bitmap[g / 8] >> (g % 8) & 1;
}

static void answer__exactly_the_published_bits__and_nothing_changes(void **state)
{
	struct fm_owner_stats st;

	(void)state;
	for (size_t i = 0; i < sizeof(bitmap); i++)
		bitmap[i] = (uint8_t)xrand();
	up(0, 0);
	for (int k = 0; k < 3000; k++) {
		uint64_t first = xrand() % GRAINS;
		uint64_t room = GRAINS - first;
		uint16_t count = (uint16_t)(1 + xrand() % (room < FM_WIRE_QUERY_MAX ? room
									 : FM_WIRE_QUERY_MAX));
		int from;
		const struct fm_msg *an;

		nsent = from = 0; /* keep only this round's */
		if (k % 7 == 0) /* the edges: a whole window, the map's last grain */
			first = GRAINS - (count = (uint16_t)(k % 2 ? 1 : FM_WIRE_QUERY_MAX));
		query(MAP, GEN, first, count, 1000 + (uint64_t)k);
		assert_int_equal(nreads, 1);
		assert_null(last_sent(FM_MSG_SPLIT_ANSWER, from)); /* not before the READ */
		read_done(0);
		an = last_sent(FM_MSG_SPLIT_ANSWER, from);
		assert_non_null(an);
		assert_int_equal(an->u.answer.map_id, MAP);
		assert_int_equal(an->u.answer.generation, GEN);
		assert_int_equal(an->u.answer.query_id, 1000 + (uint64_t)k);
		assert_int_equal(an->u.answer.first, first);
		assert_int_equal(an->u.answer.count, count);
		for (unsigned i = 0; i < count; i++)
			assert_int_equal(an->u.answer.bits[i / 64] >> (i % 64) & 1,
					 ref_bit(first + i));
		/* the bitmap moves on between queries, as commits would move it */
		bitmap[xrand() % (GRAINS / 8)] |= (uint8_t)(1u << (xrand() % 8));
	}
	fm_owner_stats(O, &st);
	assert_int_equal(st.queries, 3000);
	assert_int_equal(other_actions, 0); /* no CAS, PERSIST, FENCE */
	assert_int_equal(st.lock_requests + st.commits + st.acks + st.fences, 0);
	assert_int_equal(by_type[FM_MSG_SPLIT_ANSWER], 3000);
	assert_int_equal(by_type[FM_MSG_ERROR] + by_type[FM_MSG_MAP_GRANT] +
			 by_type[FM_MSG_RELEASE_REQUEST] + by_type[FM_MSG_LOCK_GRANT], 0);
	down();
}

static void refusals__each_its_errno__in_order(void **state)
{
	struct fm_msg m;
	int from;

	(void)state;
	up(2, 0);
	/* 1. unknown map (its range and generation are wrong too) */
	query(MAP + 1, GEN + 1, GRAINS - 1, 10, 1);
	assert_int_equal(refusal(), -ENOENT);
	/* 3. range (before the generation) */
	query(MAP, GEN + 1, GRAINS - 9, 10, 2);
	assert_int_equal(refusal(), -ERANGE);
	query(MAP, GEN, GRAINS, 1, 3);
	assert_int_equal(refusal(), -ERANGE);
	/* 4. generation */
	query(MAP, GEN - 1, 0, 10, 4);
	assert_int_equal(refusal(), -ESTALE);
	assert_int_equal(nreads, 0); /* none of them READ anything */
	/* 5. the session's bound: two out, the third refused */
	query(MAP, GEN, 0, 64, 5);
	query(MAP, GEN, 64, 64, 6);
	assert_int_equal(nreads, 2);
	query(MAP, GEN, 128, 64, 7);
	assert_int_equal(refusal(), -EBUSY);
	assert_int_equal(nreads, 2);
	read_done(0);
	read_done(0);
	from = nsent;
	query(MAP, GEN, 128, 64, 8);
	read_done(0);
	assert_non_null(last_sent(FM_MSG_SPLIT_ANSWER, from));
	/* a READ that fails: -EIO, nothing answered */
	from = nsent;
	query(MAP, GEN, 0, 1, 9);
	read_done(-EIO);
	assert_int_equal(refusal(), -EIO);
	assert_null(last_sent(FM_MSG_SPLIT_ANSWER, from));
	/* 2. a map being released (before the range) */
	assert_int_equal(fm_owner_map_revoke(O, MAP, FM_RELEASE_RESTART, now), 0);
	drain();
	assert_non_null(last_sent(FM_MSG_RELEASE_REQUEST, 0));
	query(MAP, GEN, GRAINS - 1, 10, 10);
	assert_int_equal(refusal(), -EAGAIN);
	/* released: withheld until its new descriptor */
	fm_wire_msg_init(&m, FM_MSG_RELEASED);
	m.u.released.map_id = MAP;
	m.u.released.generation = GEN;
	to_owner(&m);
	query(MAP, GEN, 0, 10, 11);
	assert_int_equal(refusal(), -EAGAIN);
	down();
}

static void revoke_during_read__never_the_cleared_bitmap__map_kept_until_back(void **state)
{
	struct fm_wire_mapdesc d;
	struct fm_msg m;
	uint64_t qseq;
	int from;

	(void)state;
	memset(bitmap, 0xff, sizeof(bitmap));
	up(0, 0);
	from = nsent;
	query(MAP, GEN, 100, 200, 1);
	qseq = seq;
	assert_int_equal(nreads, 1);
	/* a restart completes while the READ is out ... */
	assert_int_equal(fm_owner_map_revoke(O, MAP, FM_RELEASE_RESTART, now), 0);
	drain();
	fm_wire_msg_init(&m, FM_MSG_RELEASED);
	m.u.released.map_id = MAP;
	m.u.released.generation = GEN;
	to_owner(&m);
	/* ... and the driver clears the bitmap for the next generation */
	memset(bitmap, 0, sizeof(bitmap));
	/* the slot cannot go while the READ is out */
	assert_int_equal(fm_owner_map_remove(O, MAP), -EBUSY);
	read_done(0);
	assert_int_equal(refusal_of(qseq), -ESTALE);
	assert_null(last_sent(FM_MSG_SPLIT_ANSWER, from));
	/* the new generation is answered */
	map_desc(&d, GEN + 1);
	assert_int_equal(fm_owner_map_update(O, &d), 0);
	drain();
	from = nsent;
	query(MAP, GEN, 0, 1, 2);
	assert_int_equal(refusal(), -ESTALE);
	bitmap[0] = 0x05;
	query(MAP, GEN + 1, 0, 4, 3);
	read_done(0);
	assert_non_null(last_sent(FM_MSG_SPLIT_ANSWER, from));
	assert_int_equal(last_sent(FM_MSG_SPLIT_ANSWER, from)->u.answer.bits[0], 0x05);
	down();
}

static void grace__answered_from_the_durable_bitmap__locks_still_refused(void **state)
{
	struct fm_msg m;
	int from;

	(void)state;
	memset(bitmap, 0, sizeof(bitmap));
	bitmap[1] = 0x81; /* grains 8 and 15 split before the restart */
	up(0, 1000);
	assert_true(fm_owner_grace_left(O, now) > 0);
	from = nsent;
	query(MAP, GEN, 0, 16, 1);
	read_done(0);
	assert_non_null(last_sent(FM_MSG_SPLIT_ANSWER, from));
	assert_int_equal(last_sent(FM_MSG_SPLIT_ANSWER, from)->u.answer.bits[0], 0x8100);
	/* what the grace does withhold */
	fm_wire_msg_init(&m, FM_MSG_LOCK_REQUEST);
	m.u.lock.map_id = MAP;
	m.u.lock.generation = GEN;
	m.u.lock.first = m.u.lock.last = 3;
	m.u.lock.word = 1;
	to_owner(&m);
	assert_int_equal(refusal(), -EAGAIN);
	down();
}

static void closed_session__read_back__nothing_sent(void **state)
{
	int from;

	(void)state;
	up(0, 0);
	query(MAP, GEN, 0, 8, 1);
	assert_int_equal(nreads, 1);
	assert_int_equal(fm_owner_disconnected(O, CONN, now), 0);
	drain();
	from = nsent;
	read_done(0);
	assert_int_equal(nsent, from);
	down();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(answer__exactly_the_published_bits__and_nothing_changes),
		cmocka_unit_test(refusals__each_its_errno__in_order),
		cmocka_unit_test(revoke_during_read__never_the_cleared_bitmap__map_kept_until_back),
		cmocka_unit_test(grace__answered_from_the_durable_bitmap__locks_still_refused),
		cmocka_unit_test(closed_session__read_back__nothing_sent),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
