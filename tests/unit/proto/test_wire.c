/* test_wire.c -- wire format: round trips, every validation error in its
 * order, the crypto primitives against published vectors, and a
 * deterministic fuzz replay of the decoder. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "flashmeta/copy.h"
#include "flashmeta/mapping.h"
#include "flashmeta/wire.h"

/* ---- helpers ---- */
static void hex(const char *s, uint8_t *out, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned v;

		sscanf(s + 2 * i, "%2x", &v);
		out[i] = (uint8_t)v;
	}
}

static void fix_crc(uint8_t *b, size_t len)
{
	uint32_t c;

	memset(b + 32, 0, 4);
	c = fm_crc32c(b, len);
	b[32] = (uint8_t)c;
	b[33] = (uint8_t)(c >> 8);
	b[34] = (uint8_t)(c >> 16);
	b[35] = (uint8_t)(c >> 24);
}

static void set_le32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void sample_mapdesc(struct fm_wire_mapdesc *d, uint64_t id)
{
	memset(d, 0, sizeof(*d));
	d->map_id = id;
	d->generation = 7 + id;
	d->grain_count = 1000 + id;
	d->grain_shift = 16;
	d->state = FM_MAP_COPYING;
	d->lock_shift = 2;
	d->bitmap.addr = 0x10000;
	d->bitmap.len = 4096;
	d->bitmap.key = 0x1234;
	d->bitmap.flags = FM_ACCESS_REMOTE_READ;
	d->locks.addr = 0x20000;
	d->locks.len = 8 * 1024;
	d->locks.key = 0x5678;
	d->locks.flags = FM_ACCESS_REMOTE_ATOMIC;
}

/* A valid message of every type, deterministic. */
static void sample(struct fm_msg *m, uint16_t type)
{
	memset(m, 0, sizeof(*m));
	m->type = type;
	m->session = 0x1122334455667788ull;
	m->seq = 42;
	switch (type) {
	case FM_MSG_HELLO:
		m->u.hello.client_id = 3;
		m->u.hello.ver_major = FM_WIRE_MAJOR;
		for (int i = 0; i < 16; i++)
			m->u.hello.nonce[i] = (uint8_t)(i * 7);
		m->u.hello.prev_session = 0x0a0b0c0d;
		m->u.hello.prev_flags = FM_HELLO_PREV_QUIESCED;
		break;
	case FM_MSG_CHALLENGE:
		memset(m->u.challenge.nonce, 0xa5, 16);
		break;
	case FM_MSG_AUTH:
		memset(m->u.auth.mac, 0x3c, 32);
		break;
	case FM_MSG_WELCOME:
		m->u.welcome.session_id = m->session;
		m->u.welcome.client_epoch = 9;
		m->u.welcome.lease_term_ms = 3000;
		m->u.welcome.incarnation = 0x1234;
		m->u.welcome.map_count = 3;
		for (int i = 0; i < 3; i++)
			sample_mapdesc(&m->u.welcome.maps[i], (uint64_t)i + 1);
		break;
	case FM_MSG_LEASE_RENEW:
		m->u.renew.renew_id = 77;
		break;
	case FM_MSG_LEASE_GRANT:
		m->u.lease.renew_id = 77;
		m->u.lease.lease_term_ms = 3000;
		break;
	case FM_MSG_LOCK_REQUEST:
	case FM_MSG_LOCK_GRANT:
	case FM_MSG_UNLOCK:
		m->u.lock.map_id = 5;
		m->u.lock.generation = 6;
		m->u.lock.first = 100;
		m->u.lock.last = 103;
		m->u.lock.word = 0x0003000000090001ull;
		break;
	case FM_MSG_RELEASE_REQUEST:
		m->u.release.map_id = 5;
		m->u.release.generation = 6;
		m->u.release.reason = FM_RELEASE_STOP;
		break;
	case FM_MSG_RELEASED:
		m->u.released.map_id = 5;
		m->u.released.generation = 6;
		break;
	case FM_MSG_MAP_GRANT:
		sample_mapdesc(&m->u.map_grant.map, 9);
		break;
	case FM_MSG_SPLIT_COMMIT:
		m->u.commit.map_id = 5;
		m->u.commit.generation = 6;
		m->u.commit.commit_id = 1234;
		m->u.commit.range_count = 2;
		m->u.commit.ranges[0].first = 1;
		m->u.commit.ranges[0].last = 1;
		m->u.commit.ranges[1].first = 10;
		m->u.commit.ranges[1].last = 20;
		break;
	case FM_MSG_SPLIT_ACK:
		m->u.ack.map_id = 5;
		m->u.ack.generation = 6;
		m->u.ack.commit_id = 1234;
		m->u.ack.status = FM_SPLIT_STALE;
		break;
	case FM_MSG_ERROR:
		m->u.error.ref_seq = 41;
		m->u.error.code = EPERM;
		break;
	case FM_MSG_BYE:
		m->u.bye.reason = FM_BYE_AUTH_FAILED;
		m->u.bye.code = EACCES;
		m->u.bye.flags = FM_BYE_F_QUIESCED;
		break;
	case FM_MSG_COPY_CLAIM:
		m->u.claim.map_id = 5;
		m->u.claim.generation = 6;
		m->u.claim.claim_id = 0x0102030405060708ull;
		m->u.claim.done_batch = 11;
		m->u.claim.done_next = 300;
		m->u.claim.max_grains = 64;
		break;
	case FM_MSG_COPY_BATCH:
		m->u.batch.map_id = 5;
		m->u.batch.generation = 6;
		m->u.batch.claim_id = 0x0102030405060708ull;
		m->u.batch.batch_id = 12;
		m->u.batch.first = 400;
		m->u.batch.last = 463;
		m->u.batch.status = FM_COPY_OK;
		m->u.batch.rate = 50;
		break;
	case FM_MSG_SPLIT_QUERY:
		m->u.query.map_id = 5;
		m->u.query.generation = 6;
		m->u.query.query_id = 0x0102030405060708ull;
		m->u.query.first = 1024;
		m->u.query.count = 300;
		break;
	case FM_MSG_SPLIT_ANSWER:
		m->u.answer.map_id = 5;
		m->u.answer.generation = 6;
		m->u.answer.query_id = 0x0102030405060708ull;
		m->u.answer.first = 1024;
		m->u.answer.count = 300;
		m->u.answer.bits[0] = 0x8000000000000001ull;
		m->u.answer.bits[4] = 0x0000080000000000ull; /* bit 299, the last */
		break;
	case FM_MSG_CHANGE_REPORT:
		m->u.report.map_id = 5;
		m->u.report.generation = 6;
		m->u.report.range_count = 3;
		m->u.report.ranges[0].first = 0;
		m->u.report.ranges[0].last = 0;
		m->u.report.ranges[1].first = 2;
		m->u.report.ranges[1].last = 0x0102030405060708ull;
		m->u.report.ranges[2].first = UINT64_MAX;
		m->u.report.ranges[2].last = UINT64_MAX;
		break;
	}
}

static int enc(uint16_t type, uint8_t *buf)
{
	struct fm_msg m;
	int n;

	sample(&m, type);
	n = fm_wire_encode(&m, buf, FM_WIRE_MAX_MSG);
	assert_true(n >= (int)FM_WIRE_HDR_SIZE);
	return n;
}

/* ---- crypto primitives ---- */
static void sha256__fips_vectors(void **state)
{
	(void)state;
	struct fm_sha256 s;
	uint8_t out[32], want[32];
	static uint8_t million[1000000];

	fm_sha256_init(&s);
	fm_sha256_update(&s, "abc", 3);
	fm_sha256_final(&s, out);
	hex("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", want, 32);
	assert_memory_equal(out, want, 32);

	fm_sha256_init(&s);
	fm_sha256_final(&s, out);
	hex("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", want, 32);
	assert_memory_equal(out, want, 32);

	fm_sha256_init(&s);
	fm_sha256_update(&s, "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", 56);
	fm_sha256_final(&s, out);
	hex("248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1", want, 32);
	assert_memory_equal(out, want, 32);

	/* one million 'a', fed in uneven pieces across block boundaries */
	memset(million, 'a', sizeof(million));
	fm_sha256_init(&s);
	for (size_t off = 0, step = 1; off < sizeof(million); off += step, step = step % 131 + 1)
		fm_sha256_update(&s, million + off,
				 off + step > sizeof(million) ? sizeof(million) - off : step);
	fm_sha256_final(&s, out);
	hex("cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0", want, 32);
	assert_memory_equal(out, want, 32);
}

static void hmac__rfc4231_vectors(void **state)
{
	(void)state;
	static const struct {
		const char *key_hex; /* NULL: use key_fill x key_len */
		uint8_t key_fill;
		size_t key_len;
		const char *data;
		uint8_t data_fill;
		size_t data_len;
		const char *mac;
	} v[] = {
		{ NULL, 0x0b, 20, "Hi There", 0, 8,
		  "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7" },
		{ "4a656665", 0, 4, "what do ya want for nothing?", 0, 28,
		  "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843" },
		{ NULL, 0xaa, 20, NULL, 0xdd, 50,
		  "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe" },
		{ "0102030405060708090a0b0c0d0e0f10111213141516171819", 0, 25, NULL,
		  0xcd, 50,
		  "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b" },
		{ NULL, 0xaa, 131, "Test Using Larger Than Block-Size Key - Hash Key First",
		  0, 54,
		  "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54" },
		{ NULL, 0xaa, 131,
		  "This is a test using a larger than block-size key and a larger "
		  "than block-size data. The key needs to be hashed before being "
		  "used by the HMAC algorithm.",
		  0, 152,
		  "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2" },
	};

	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		uint8_t key[200], data[200], out[32], want[32];

		if (v[i].key_hex)
			hex(v[i].key_hex, key, v[i].key_len);
		else
			memset(key, v[i].key_fill, v[i].key_len);
		if (v[i].data)
			memcpy(data, v[i].data, v[i].data_len);
		else
			memset(data, v[i].data_fill, v[i].data_len);
		fm_hmac_sha256(key, v[i].key_len, data, v[i].data_len, out);
		hex(v[i].mac, want, 32);
		assert_memory_equal(out, want, 32);
	}
}

static void auth_mac__binds_every_input(void **state)
{
	(void)state;
	uint8_t cn[16] = { 1 }, on[16] = { 2 }, a[32], b[32];

	fm_wire_auth_mac("key", 3, 7, cn, on, 99, a);
	fm_wire_auth_mac("key", 3, 7, cn, on, 99, b);
	assert_true(fm_wire_mac_equal(a, b, 32));
	fm_wire_auth_mac("kez", 3, 7, cn, on, 99, b);
	assert_false(fm_wire_mac_equal(a, b, 32));
	fm_wire_auth_mac("key", 3, 8, cn, on, 99, b);
	assert_false(fm_wire_mac_equal(a, b, 32));
	fm_wire_auth_mac("key", 3, 7, on, cn, 99, b);
	assert_false(fm_wire_mac_equal(a, b, 32));
	fm_wire_auth_mac("key", 3, 7, cn, on, 98, b);
	assert_false(fm_wire_mac_equal(a, b, 32));
}

static void crc32c__check_value(void **state)
{
	(void)state;
	assert_int_equal(fm_crc32c("123456789", 9), 0xe3069283u);
	assert_int_equal(fm_crc32c("", 0), 0);
}

/* ---- round trips ---- */
static void roundtrip__every_type__bytes_and_fields(void **state)
{
	(void)state;
	for (uint16_t t = 1; t < FM_MSG_TYPE_END; t++) {
		uint8_t a[FM_WIRE_MAX_MSG], b[FM_WIRE_MAX_MSG];
		struct fm_msg m, d;
		int n, n2;

		sample(&m, t);
		n = fm_wire_encode(&m, a, sizeof(a));
		assert_true(n >= (int)FM_WIRE_HDR_SIZE);
		assert_int_equal(fm_wire_decode(a, (size_t)n, &d), 0);
		assert_int_equal(d.type, t);
		assert_int_equal(d.session, m.session);
		assert_int_equal(d.seq, m.seq);
		assert_int_equal(d.ver_major, FM_WIRE_MAJOR);
		n2 = fm_wire_encode(&d, b, sizeof(b));
		assert_int_equal(n2, n);
		assert_memory_equal(a, b, (size_t)n);
	}
}

static void roundtrip__welcome__descriptors_survive(void **state)
{
	(void)state;
	uint8_t buf[FM_WIRE_MAX_MSG];
	struct fm_msg m, d;
	int n;

	sample(&m, FM_MSG_WELCOME);
	m.u.welcome.map_count = FM_WIRE_MAX_MAPS;
	for (unsigned i = 0; i < FM_WIRE_MAX_MAPS; i++)
		sample_mapdesc(&m.u.welcome.maps[i], 100 + i);
	n = fm_wire_encode(&m, buf, sizeof(buf));
	assert_int_equal(n, FM_WIRE_HDR_SIZE + 32 + FM_WIRE_MAX_MAPS * FM_WIRE_MAPDESC_SIZE);
	assert_int_equal(fm_wire_decode(buf, (size_t)n, &d), 0);
	assert_int_equal(d.u.welcome.map_count, FM_WIRE_MAX_MAPS);
	assert_int_equal(d.u.welcome.incarnation, 0x1234);
	for (unsigned i = 0; i < FM_WIRE_MAX_MAPS; i++) {
		const struct fm_wire_mapdesc *x = &m.u.welcome.maps[i], *y = &d.u.welcome.maps[i];

		assert_int_equal(x->map_id, y->map_id);
		assert_int_equal(x->generation, y->generation);
		assert_int_equal(x->grain_count, y->grain_count);
		assert_int_equal(x->grain_shift, y->grain_shift);
		assert_int_equal(x->state, y->state);
		assert_int_equal(x->lock_shift, y->lock_shift);
		assert_int_equal(x->bitmap.addr, y->bitmap.addr);
		assert_int_equal(x->bitmap.key, y->bitmap.key);
		assert_int_equal(x->locks.len, y->locks.len);
		assert_int_equal(x->locks.flags, y->locks.flags);
	}
}

static void roundtrip__copy_claim_and_batch__every_field_at_its_offset(void **state)
{
	(void)state;
	uint8_t buf[FM_WIRE_MAX_MSG];
	struct fm_msg m, d;
	int n;

	sample(&m, FM_MSG_COPY_CLAIM);
	n = fm_wire_encode(&m, buf, sizeof(buf));
	assert_int_equal(n, FM_WIRE_HDR_SIZE + 48);
	assert_int_equal(buf[40 + 16], 0x08); /* claim_id, low byte first */
	assert_int_equal(buf[40 + 24], 11);   /* done_batch */
	assert_int_equal(buf[40 + 32] | buf[40 + 33] << 8, 300); /* done_next */
	assert_int_equal(buf[40 + 40], 64);   /* max_grains */
	assert_int_equal(fm_wire_decode(buf, (size_t)n, &d), 0);
	assert_int_equal(d.u.claim.map_id, 5);
	assert_int_equal(d.u.claim.generation, 6);
	assert_true(d.u.claim.claim_id == 0x0102030405060708ull);
	assert_int_equal(d.u.claim.done_batch, 11);
	assert_int_equal(d.u.claim.done_next, 300);
	assert_int_equal(d.u.claim.max_grains, 64);

	sample(&m, FM_MSG_COPY_BATCH);
	n = fm_wire_encode(&m, buf, sizeof(buf));
	assert_int_equal(n, FM_WIRE_HDR_SIZE + 64);
	assert_int_equal(buf[40 + 24], 12);   /* batch_id */
	assert_int_equal(buf[40 + 48], FM_COPY_OK);
	assert_int_equal(buf[40 + 56], 50);   /* rate */
	assert_int_equal(fm_wire_decode(buf, (size_t)n, &d), 0);
	assert_int_equal(d.u.batch.batch_id, 12);
	assert_int_equal(d.u.batch.first, 400);
	assert_int_equal(d.u.batch.last, 463);
	assert_int_equal(d.u.batch.status, FM_COPY_OK);
	assert_int_equal(d.u.batch.rate, 50);
	/* a WAIT carries its time and no grains */
	sample(&m, FM_MSG_COPY_BATCH);
	m.u.batch.status = FM_COPY_WAIT;
	m.u.batch.batch_id = m.u.batch.first = m.u.batch.last = 0;
	m.u.batch.wait_ms = 1000;
	n = fm_wire_encode(&m, buf, sizeof(buf));
	assert_int_equal(fm_wire_decode(buf, (size_t)n, &d), 0);
	assert_int_equal(d.u.batch.wait_ms, 1000);
	assert_string_equal(fm_msg_type_name(FM_MSG_COPY_CLAIM), "copy-claim");
	assert_string_equal(fm_msg_type_name(FM_MSG_COPY_BATCH), "copy-batch");
}

static int frame(uint8_t *buf, uint16_t t, const uint8_t *payload, size_t plen);
static void expect_range(struct fm_msg *m);

static void roundtrip__split_query_and_answer__every_field_at_its_offset(void **state)
{
	(void)state;
	uint8_t buf[FM_WIRE_MAX_MSG];
	struct fm_msg m, d;
	int n;

	sample(&m, FM_MSG_SPLIT_QUERY);
	n = fm_wire_encode(&m, buf, sizeof(buf));
	assert_int_equal(n, FM_WIRE_HDR_SIZE + 40);
	assert_int_equal(buf[40 + 16], 0x08); /* query_id, low byte first */
	assert_int_equal(buf[40 + 24] | buf[40 + 25] << 8, 1024); /* first */
	assert_int_equal(buf[40 + 32] | buf[40 + 33] << 8, 300);  /* count */
	assert_int_equal(fm_wire_decode(buf, (size_t)n, &d), 0);
	assert_int_equal(d.u.query.map_id, 5);
	assert_int_equal(d.u.query.generation, 6);
	assert_true(d.u.query.query_id == 0x0102030405060708ull);
	assert_int_equal(d.u.query.first, 1024);
	assert_int_equal(d.u.query.count, 300);

	sample(&m, FM_MSG_SPLIT_ANSWER);
	n = fm_wire_encode(&m, buf, sizeof(buf));
	assert_int_equal(n, FM_WIRE_HDR_SIZE + 40 + 64);
	assert_int_equal(buf[80], 0x01);          /* bit 0: grain first */
	assert_int_equal(buf[80 + 7], 0x80);      /* bit 63 */
	assert_int_equal(buf[80 + 32 + 5], 0x08); /* bit 299 = byte 37, bit 3 */
	assert_int_equal(fm_wire_decode(buf, (size_t)n, &d), 0);
	assert_int_equal(d.u.answer.first, 1024);
	assert_int_equal(d.u.answer.count, 300);
	assert_true(d.u.answer.bits[0] == 0x8000000000000001ull);
	assert_true(d.u.answer.bits[4] == 0x0000080000000000ull);
	assert_true(d.u.answer.bits[1] == 0 && d.u.answer.bits[7] == 0);
	assert_string_equal(fm_msg_type_name(FM_MSG_SPLIT_QUERY), "split-query");
	assert_string_equal(fm_msg_type_name(FM_MSG_SPLIT_ANSWER), "split-answer");
}

/* Every way a split query or answer is refused, in the order of wire.h:
 * size (9), reserved (10), then the fields (11). */
static void decode__split_query__each_refusal_its_errno(void **state)
{
	(void)state;
	uint8_t buf[FM_WIRE_MAX_MSG], payload[FM_WIRE_MAX_MSG];
	struct fm_msg m, d;
	int n;

	for (uint16_t t = FM_MSG_SPLIT_QUERY; t <= FM_MSG_SPLIT_ANSWER; t++) {
		size_t plen;

		/* 9: a byte short */
		n = enc(t, buf);
		plen = (size_t)n - FM_WIRE_HDR_SIZE;
		memcpy(payload, buf + FM_WIRE_HDR_SIZE, plen);
		n = frame(buf, t, payload, plen - 1);
		assert_int_equal(fm_wire_decode(buf, (size_t)n, &d), -EBADMSG);
		/* 10: each reserved byte of the head */
		for (int off = 34; off < 40; off++) {
			n = enc(t, buf);
			buf[40 + off] = 1;
			fix_crc(buf, (size_t)n);
			assert_int_equal(fm_wire_decode(buf, (size_t)n, &d), -ENOTEMPTY);
			/* ... found before a bad count (step 11) */
			buf[40 + 32] = buf[40 + 33] = 0;
			fix_crc(buf, (size_t)n);
			assert_int_equal(fm_wire_decode(buf, (size_t)n, &d), -ENOTEMPTY);
		}
		/* 11: count 0, count over the limit, a range that wraps */
		sample(&m, t);
		m.u.query.count = 0;
		expect_range(&m);
		sample(&m, t);
		m.u.query.count = FM_WIRE_QUERY_MAX + 1;
		expect_range(&m);
		sample(&m, t);
		m.u.query.first = UINT64_MAX - 10;
		expect_range(&m);
		sample(&m, t);
		m.u.query.first = UINT64_MAX - 299; /* the last grain is UINT64_MAX */
		assert_true(fm_wire_encode(&m, buf, sizeof(buf)) > 0);
		n = enc(t, buf);
		buf[40 + 32] = 0;
		buf[40 + 33] = 0;
		fix_crc(buf, (size_t)n);
		assert_int_equal(fm_wire_decode(buf, (size_t)n, &d), -ERANGE);
		n = enc(t, buf);
		buf[40 + 32] = 0x01;
		buf[40 + 33] = 0x02; /* 513 */
		fix_crc(buf, (size_t)n);
		assert_int_equal(fm_wire_decode(buf, (size_t)n, &d), -ERANGE);
	}
	/* an answer with a bit at or past its count */
	sample(&m, FM_MSG_SPLIT_ANSWER);
	m.u.answer.bits[4] |= 1ull << 44; /* bit 300 */
	expect_range(&m);
	n = enc(FM_MSG_SPLIT_ANSWER, buf);
	buf[80 + 63] = 0x80; /* bit 511, decode side */
	fix_crc(buf, (size_t)n);
	assert_int_equal(fm_wire_decode(buf, (size_t)n, &d), -ERANGE);
	/* the whole window is fine */
	sample(&m, FM_MSG_SPLIT_ANSWER);
	m.u.answer.count = FM_WIRE_QUERY_MAX;
	memset(m.u.answer.bits, 0xff, sizeof(m.u.answer.bits));
	n = fm_wire_encode(&m, buf, sizeof(buf));
	assert_true(n > 0);
	assert_int_equal(fm_wire_decode(buf, (size_t)n, &d), 0);
	assert_true(d.u.answer.bits[7] == UINT64_MAX);
}

/* CHANGE_REPORT (2.4): layout, then every refusal in the order of wire.h:
 * size (9), reserved (10), the fields (11). */
static void change_report__layout_and_each_refusal(void **state)
{
	(void)state;
	uint8_t buf[FM_WIRE_MAX_MSG], payload[FM_WIRE_MAX_MSG];
	struct fm_msg m, d;
	size_t plen;
	int n;

	sample(&m, FM_MSG_CHANGE_REPORT);
	n = fm_wire_encode(&m, buf, sizeof(buf));
	assert_int_equal(n, FM_WIRE_HDR_SIZE + 24 + 3 * 16);
	assert_int_equal(buf[6], 21); /* the type number is the wire's */
	assert_int_equal(buf[5], 4);  /* minor 4 */
	assert_int_equal(buf[40 + 16], 3);                 /* range_count */
	assert_int_equal(buf[40 + 24 + 16], 2);            /* ranges[1].first */
	assert_int_equal(buf[40 + 24 + 24], 0x08);         /* ranges[1].last, LE */
	assert_int_equal(buf[40 + 24 + 31], 0x01);
	assert_int_equal(fm_wire_decode(buf, (size_t)n, &d), 0);
	assert_int_equal(d.u.report.map_id, 5);
	assert_int_equal(d.u.report.generation, 6);
	assert_int_equal(d.u.report.range_count, 3);
	assert_true(d.u.report.ranges[1].last == 0x0102030405060708ull);
	assert_true(d.u.report.ranges[2].first == UINT64_MAX);
	assert_string_equal(fm_msg_type_name(FM_MSG_CHANGE_REPORT), "change-report");

	/* 9: a count that disagrees with the size, a range cut short */
	n = enc(FM_MSG_CHANGE_REPORT, buf);
	buf[40 + 16] = 4;
	fix_crc(buf, (size_t)n);
	assert_int_equal(fm_wire_decode(buf, (size_t)n, &d), -EBADMSG);
	n = enc(FM_MSG_CHANGE_REPORT, buf);
	plen = (size_t)n - FM_WIRE_HDR_SIZE;
	memcpy(payload, buf + FM_WIRE_HDR_SIZE, plen);
	n = frame(buf, FM_MSG_CHANGE_REPORT, payload, plen - 8);
	assert_int_equal(fm_wire_decode(buf, (size_t)n, &d), -EBADMSG);
	/* 10: each reserved byte, found before an inverted range (11) */
	for (int off = 18; off < 24; off++) {
		n = enc(FM_MSG_CHANGE_REPORT, buf);
		buf[40 + off] = 1;
		fix_crc(buf, (size_t)n);
		assert_int_equal(fm_wire_decode(buf, (size_t)n, &d), -ENOTEMPTY);
		buf[40 + 24 + 16] = 0xff; /* ranges[1].first > its last */
		buf[40 + 24 + 23] = 0xff;
		fix_crc(buf, (size_t)n);
		assert_int_equal(fm_wire_decode(buf, (size_t)n, &d), -ENOTEMPTY);
	}
	/* 11: no range, too many, inverted, overlapping, out of order, and
	 * the same on the decode side */
	sample(&m, FM_MSG_CHANGE_REPORT);
	m.u.report.range_count = 0;
	expect_range(&m);
	sample(&m, FM_MSG_CHANGE_REPORT);
	m.u.report.range_count = FM_WIRE_REPORT_MAX_RANGES + 1;
	expect_range(&m);
	sample(&m, FM_MSG_CHANGE_REPORT);
	m.u.report.ranges[1].first = m.u.report.ranges[1].last + 1;
	expect_range(&m);
	sample(&m, FM_MSG_CHANGE_REPORT);
	m.u.report.ranges[1].first = 0; /* overlaps ranges[0] */
	expect_range(&m);
	sample(&m, FM_MSG_CHANGE_REPORT);
	m.u.report.ranges[2] = m.u.report.ranges[0]; /* descending */
	expect_range(&m);
	n = enc(FM_MSG_CHANGE_REPORT, buf);
	buf[40 + 24 + 16] = 0; /* ranges[1].first = 0: touches ranges[0] */
	fix_crc(buf, (size_t)n);
	assert_int_equal(fm_wire_decode(buf, (size_t)n, &d), -ERANGE);
	/* an absurd count is a size error, never a read past the buffer */
	n = enc(FM_MSG_CHANGE_REPORT, buf);
	buf[40 + 16] = 0xff;
	buf[40 + 17] = 0xff;
	fix_crc(buf, (size_t)n);
	assert_int_equal(fm_wire_decode(buf, (size_t)n, &d), -EBADMSG);
	/* the largest report fits a receive buffer and decodes */
	sample(&m, FM_MSG_CHANGE_REPORT);
	m.u.report.range_count = FM_WIRE_REPORT_MAX_RANGES;
	for (unsigned i = 0; i < FM_WIRE_REPORT_MAX_RANGES; i++) {
		m.u.report.ranges[i].first = 10 * (uint64_t)i;
		m.u.report.ranges[i].last = 10 * (uint64_t)i + 8;
	}
	n = fm_wire_encode(&m, buf, sizeof(buf));
	assert_int_equal(n, FM_WIRE_HDR_SIZE + 24 + 16 * FM_WIRE_REPORT_MAX_RANGES);
	assert_int_equal(fm_wire_decode(buf, (size_t)n, &d), 0);
	assert_int_equal(d.u.report.ranges[127].last, 1278);
}

static void encode__little_endian_layout(void **state)
{
	(void)state;
	uint8_t buf[FM_WIRE_MAX_MSG];
	struct fm_msg m;

	sample(&m, FM_MSG_LEASE_RENEW);
	m.u.renew.renew_id = 0x0102030405060708ull;
	assert_int_equal(fm_wire_encode(&m, buf, sizeof(buf)), 48);
	assert_memory_equal(buf, "FMW1", 4);
	assert_int_equal(buf[4], FM_WIRE_MAJOR);
	assert_int_equal(buf[6], FM_MSG_LEASE_RENEW);
	assert_int_equal(buf[7], 0);
	assert_int_equal(buf[8], 48);
	assert_int_equal(buf[16], 0x88); /* session low byte first */
	assert_int_equal(buf[40], 0x08);
	assert_int_equal(buf[47], 0x01);
}

/* ---- validation, in order ---- */
static void decode__short__enodata(void **state)
{
	(void)state;
	uint8_t buf[FM_WIRE_MAX_MSG];
	struct fm_msg d;

	enc(FM_MSG_HELLO, buf);
	assert_int_equal(fm_wire_decode(buf, 0, &d), -ENODATA);
	assert_int_equal(fm_wire_decode(buf, FM_WIRE_HDR_SIZE - 1, &d), -ENODATA);
	assert_int_equal(fm_wire_decode(NULL, 10, &d), -EINVAL);
}

static void decode__bad_magic__eproto(void **state)
{
	(void)state;
	uint8_t buf[FM_WIRE_MAX_MSG];
	struct fm_msg d;
	int n = enc(FM_MSG_HELLO, buf);

	buf[0] ^= 1;
	assert_int_equal(fm_wire_decode(buf, (size_t)n, &d), -EPROTO);
	/* magic is checked before the version */
	buf[4] = 9;
	assert_int_equal(fm_wire_decode(buf, (size_t)n, &d), -EPROTO);
}

static void decode__other_major__eprotonosupport_minor_ok(void **state)
{
	(void)state;
	uint8_t buf[FM_WIRE_MAX_MSG];
	struct fm_msg d;
	int n = enc(FM_MSG_HELLO, buf);

	buf[5] = 7; /* minor: informational */
	fix_crc(buf, (size_t)n);
	assert_int_equal(fm_wire_decode(buf, (size_t)n, &d), 0);
	assert_int_equal(d.ver_minor, 7);
	buf[4] = FM_WIRE_MAJOR + 1;
	assert_int_equal(fm_wire_decode(buf, (size_t)n, &d), -EPROTONOSUPPORT);
	/* version is checked before length */
	assert_int_equal(fm_wire_decode(buf, (size_t)n - 1, &d), -EPROTONOSUPPORT);
}

static void decode__length_mismatch__emsgsize(void **state)
{
	(void)state;
	uint8_t buf[FM_WIRE_MAX_MSG + 8];
	struct fm_msg d;
	int n = enc(FM_MSG_HELLO, buf);

	assert_int_equal(fm_wire_decode(buf, (size_t)n - 1, &d), -EMSGSIZE);
	assert_int_equal(fm_wire_decode(buf, (size_t)n + 1, &d), -EMSGSIZE);
	set_le32(buf + 8, FM_WIRE_MAX_MSG + 8);
	assert_int_equal(fm_wire_decode(buf, FM_WIRE_MAX_MSG + 8, &d), -EMSGSIZE);
}

static void decode__bit_flip__eilseq(void **state)
{
	(void)state;
	uint8_t buf[FM_WIRE_MAX_MSG];
	struct fm_msg d;
	int n = enc(FM_MSG_SPLIT_COMMIT, buf);

	/* every single-bit flip after the length field is caught (CRC32C
	 * detects all 1-bit errors); flips in magic/version/length are caught
	 * earlier by their own checks */
	for (int bit = 12 * 8; bit < n * 8; bit++) {
		buf[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		assert_int_equal(fm_wire_decode(buf, (size_t)n, &d), -EILSEQ);
		buf[bit / 8] ^= (uint8_t)(1u << (bit % 8));
	}
	assert_int_equal(fm_wire_decode(buf, (size_t)n, &d), 0);
}

static void decode__reserved_nonzero__enotempty(void **state)
{
	(void)state;
	uint8_t buf[FM_WIRE_MAX_MSG];
	struct fm_msg d;
	int n;

	/* header reserved0, reserved1 */
	n = enc(FM_MSG_HELLO, buf);
	buf[14] = 1;
	fix_crc(buf, (size_t)n);
	assert_int_equal(fm_wire_decode(buf, (size_t)n, &d), -ENOTEMPTY);
	n = enc(FM_MSG_HELLO, buf);
	buf[39] = 0x80;
	fix_crc(buf, (size_t)n);
	assert_int_equal(fm_wire_decode(buf, (size_t)n, &d), -ENOTEMPTY);
	/* header reserved is checked before flags and type */
	buf[12] = 1;
	buf[6] = 99;
	fix_crc(buf, (size_t)n);
	assert_int_equal(fm_wire_decode(buf, (size_t)n, &d), -ENOTEMPTY);

	/* payload reserved fields of several types */
	n = enc(FM_MSG_HELLO, buf);
	buf[40 + 6] = 1;
	fix_crc(buf, (size_t)n);
	assert_int_equal(fm_wire_decode(buf, (size_t)n, &d), -ENOTEMPTY);
	n = enc(FM_MSG_HELLO, buf);
	buf[40 + 36] = 1; /* after prev_flags */
	fix_crc(buf, (size_t)n);
	assert_int_equal(fm_wire_decode(buf, (size_t)n, &d), -ENOTEMPTY);
	n = enc(FM_MSG_BYE, buf);
	buf[40 + 12] = 1; /* after flags */
	fix_crc(buf, (size_t)n);
	assert_int_equal(fm_wire_decode(buf, (size_t)n, &d), -ENOTEMPTY);
	n = enc(FM_MSG_WELCOME, buf);
	buf[40 + 32 + 80 + 28] = 1; /* second descriptor's reserved le32 */
	fix_crc(buf, (size_t)n);
	assert_int_equal(fm_wire_decode(buf, (size_t)n, &d), -ENOTEMPTY);
	/* its flags byte (2.2): REVERSED decodes, an unknown bit is refused */
	n = enc(FM_MSG_WELCOME, buf);
	buf[40 + 32 + 80 + 27] = FM_MAPDESC_REVERSED;
	fix_crc(buf, (size_t)n);
	assert_int_equal(fm_wire_decode(buf, (size_t)n, &d), 0);
	assert_int_equal(d.u.welcome.maps[1].flags, FM_MAPDESC_REVERSED);
	assert_int_equal(d.u.welcome.maps[0].flags, 0);
	buf[40 + 32 + 80 + 27] = 0x2;
	fix_crc(buf, (size_t)n);
	assert_int_equal(fm_wire_decode(buf, (size_t)n, &d), -ERANGE);
	n = enc(FM_MSG_SPLIT_COMMIT, buf);
	buf[40 + 30] = 1;
	fix_crc(buf, (size_t)n);
	assert_int_equal(fm_wire_decode(buf, (size_t)n, &d), -ENOTEMPTY);
	n = enc(FM_MSG_RELEASE_REQUEST, buf);
	buf[40 + 23] = 1;
	fix_crc(buf, (size_t)n);
	assert_int_equal(fm_wire_decode(buf, (size_t)n, &d), -ENOTEMPTY);
	n = enc(FM_MSG_LEASE_GRANT, buf);
	buf[40 + 12] = 1;
	fix_crc(buf, (size_t)n);
	assert_int_equal(fm_wire_decode(buf, (size_t)n, &d), -ENOTEMPTY);
	n = enc(FM_MSG_COPY_CLAIM, buf);
	buf[40 + 47] = 1;
	fix_crc(buf, (size_t)n);
	assert_int_equal(fm_wire_decode(buf, (size_t)n, &d), -ENOTEMPTY);
	n = enc(FM_MSG_COPY_BATCH, buf);
	buf[40 + 58] = 1; /* after rate */
	fix_crc(buf, (size_t)n);
	assert_int_equal(fm_wire_decode(buf, (size_t)n, &d), -ENOTEMPTY);
	n = enc(FM_MSG_COPY_BATCH, buf);
	buf[40 + 63] = 1;
	fix_crc(buf, (size_t)n);
	assert_int_equal(fm_wire_decode(buf, (size_t)n, &d), -ENOTEMPTY);
	/* reserved (step 10) before the fields (step 11): a bad status too */
	buf[40 + 48] = 99;
	fix_crc(buf, (size_t)n);
	assert_int_equal(fm_wire_decode(buf, (size_t)n, &d), -ENOTEMPTY);
}

static void decode__unknown_flags__eopnotsupp(void **state)
{
	(void)state;
	uint8_t buf[FM_WIRE_MAX_MSG];
	struct fm_msg d;
	int n = enc(FM_MSG_HELLO, buf);

	buf[13] = 0x80;
	buf[6] = 99; /* flags before type */
	fix_crc(buf, (size_t)n);
	assert_int_equal(fm_wire_decode(buf, (size_t)n, &d), -EOPNOTSUPP);
}

static void decode__unknown_type__enomsg(void **state)
{
	(void)state;
	uint8_t buf[FM_WIRE_MAX_MSG];
	struct fm_msg d;
	uint16_t bad[] = { 0, FM_MSG_TYPE_END, 0xffff };

	for (size_t i = 0; i < 3; i++) {
		int n = enc(FM_MSG_HELLO, buf);

		buf[6] = (uint8_t)bad[i];
		buf[7] = (uint8_t)(bad[i] >> 8);
		fix_crc(buf, (size_t)n);
		assert_int_equal(fm_wire_decode(buf, (size_t)n, &d), -ENOMSG);
	}
}

/* Re-frame a payload under a header of type t, with a correct length and CRC. */
static int frame(uint8_t *buf, uint16_t t, const uint8_t *payload, size_t plen)
{
	struct fm_msg m;
	int n;

	sample(&m, FM_MSG_BYE);
	n = fm_wire_encode(&m, buf, FM_WIRE_MAX_MSG);
	assert_true(n > 0);
	buf[6] = (uint8_t)t;
	buf[7] = (uint8_t)(t >> 8);
	memcpy(buf + FM_WIRE_HDR_SIZE, payload, plen);
	set_le32(buf + 8, (uint32_t)(FM_WIRE_HDR_SIZE + plen));
	fix_crc(buf, FM_WIRE_HDR_SIZE + plen);
	return (int)(FM_WIRE_HDR_SIZE + plen);
}

static void decode__payload_size__ebadmsg(void **state)
{
	(void)state;
	uint8_t buf[FM_WIRE_MAX_MSG], src[FM_WIRE_MAX_MSG], payload[FM_WIRE_MAX_MSG];
	struct fm_msg d;
	int n;

	/* every type, one byte short and one byte long */
	for (uint16_t t = 1; t < FM_MSG_TYPE_END; t++) {
		size_t plen = (size_t)enc(t, src) - FM_WIRE_HDR_SIZE;

		memcpy(payload, src + FM_WIRE_HDR_SIZE, plen);
		payload[plen] = 0;
		n = frame(buf, t, payload, plen - 1);
		assert_int_equal(fm_wire_decode(buf, (size_t)n, &d), -EBADMSG);
		n = frame(buf, t, payload, plen + 1);
		assert_int_equal(fm_wire_decode(buf, (size_t)n, &d), -EBADMSG);
		n = frame(buf, t, payload, plen);
		assert_int_equal(fm_wire_decode(buf, (size_t)n, &d), 0);
	}
	/* a WELCOME whose count disagrees with its size */
	n = enc(FM_MSG_WELCOME, buf);
	buf[40 + 16] = 2;
	fix_crc(buf, (size_t)n);
	assert_int_equal(fm_wire_decode(buf, (size_t)n, &d), -EBADMSG);
	/* size is checked before payload reserved fields */
	buf[40 + 18] = 1;
	fix_crc(buf, (size_t)n);
	assert_int_equal(fm_wire_decode(buf, (size_t)n, &d), -EBADMSG);
}

/* encode refuses what decode would refuse (check_fields is shared) */
static void expect_range(struct fm_msg *m)
{
	uint8_t buf[FM_WIRE_MAX_MSG];

	assert_int_equal(fm_wire_encode(m, buf, sizeof(buf)), -ERANGE);
}

static void decode__out_of_range__erange(void **state)
{
	(void)state;
	uint8_t buf[FM_WIRE_MAX_MSG];
	struct fm_msg m, d;
	int n;

	/* decode side, byte-patched */
	n = enc(FM_MSG_HELLO, buf);
	set_le32(buf + 40, 0); /* client id 0 */
	fix_crc(buf, (size_t)n);
	assert_int_equal(fm_wire_decode(buf, (size_t)n, &d), -ERANGE);
	set_le32(buf + 40, 0x10000); /* client id > 16 bits */
	fix_crc(buf, (size_t)n);
	assert_int_equal(fm_wire_decode(buf, (size_t)n, &d), -ERANGE);

	n = enc(FM_MSG_LOCK_REQUEST, buf);
	buf[40 + 16 + 7] = 0xff; /* first > last */
	fix_crc(buf, (size_t)n);
	assert_int_equal(fm_wire_decode(buf, (size_t)n, &d), -ERANGE);

	n = enc(FM_MSG_WELCOME, buf);
	buf[40 + 32 + 24] = 40; /* grain shift 40 */
	fix_crc(buf, (size_t)n);
	assert_int_equal(fm_wire_decode(buf, (size_t)n, &d), -ERANGE);

	n = enc(FM_MSG_MAP_GRANT, buf);
	buf[40 + 32 + 20] = FM_ACCESS_REMOTE_READ | FM_ACCESS_REMOTE_ATOMIC; /* bitmap writable-ish */
	fix_crc(buf, (size_t)n);
	assert_int_equal(fm_wire_decode(buf, (size_t)n, &d), -ERANGE);

	/* a SPLIT_COMMIT with more ranges than allowed, consistently sized:
	 * size is right, so it is the count that is out of range */
	{
		uint8_t payload[FM_WIRE_MAX_MSG] = { 0 };
		size_t cnt = FM_WIRE_MAX_RANGES + 1, plen = 32 + cnt * 16;

		payload[24] = (uint8_t)cnt;
		n = frame(buf, FM_MSG_SPLIT_COMMIT, payload, plen);
		assert_int_equal(fm_wire_decode(buf, (size_t)n, &d), -ERANGE);
		payload[24] = 0; /* count 0 */
		n = frame(buf, FM_MSG_SPLIT_COMMIT, payload, 32);
		assert_int_equal(fm_wire_decode(buf, (size_t)n, &d), -ERANGE);
	}

	/* encode side refuses the same */
	sample(&m, FM_MSG_HELLO);
	m.u.hello.client_id = 0;
	expect_range(&m);
	sample(&m, FM_MSG_LOCK_GRANT);
	m.u.lock.word = 0;
	expect_range(&m);
	sample(&m, FM_MSG_RELEASE_REQUEST);
	m.u.release.reason = FM_RELEASE_REASON_COUNT;
	expect_range(&m);
	sample(&m, FM_MSG_SPLIT_ACK);
	m.u.ack.status = 99;
	expect_range(&m);
	sample(&m, FM_MSG_BYE);
	m.u.bye.reason = FM_BYE_REASON_COUNT;
	expect_range(&m);
	sample(&m, FM_MSG_WELCOME);
	m.u.welcome.maps[1].locks.len = 8; /* too small for its grains */
	expect_range(&m);
	sample(&m, FM_MSG_WELCOME);
	m.u.welcome.maps[0].locks.addr = 0x20004; /* atomics need alignment */
	expect_range(&m);
	sample(&m, FM_MSG_WELCOME);
	m.u.welcome.map_count = FM_WIRE_MAX_MAPS + 1;
	expect_range(&m);
	sample(&m, FM_MSG_WELCOME);
	m.u.welcome.lease_term_ms = 0;
	expect_range(&m);
	sample(&m, FM_MSG_WELCOME);
	m.u.welcome.incarnation = 0;
	expect_range(&m);
	sample(&m, FM_MSG_HELLO);
	m.u.hello.prev_flags = 0x2;
	expect_range(&m);
	sample(&m, FM_MSG_BYE);
	m.u.bye.flags = 0x2;
	expect_range(&m);
	/* background copy: one errno (ERANGE) per field out of range */
	sample(&m, FM_MSG_COPY_CLAIM);
	m.u.claim.max_grains = FM_COPY_BATCH_MAX + 1;
	expect_range(&m);
	sample(&m, FM_MSG_COPY_CLAIM);
	m.u.claim.done_batch = 0; /* done_next without a batch */
	expect_range(&m);
	sample(&m, FM_MSG_COPY_BATCH);
	m.u.batch.status = FM_COPY_STATUS_COUNT;
	expect_range(&m);
	sample(&m, FM_MSG_COPY_BATCH);
	m.u.batch.rate = FM_COPY_RATE_MAX + 1;
	expect_range(&m);
	sample(&m, FM_MSG_COPY_BATCH);
	m.u.batch.batch_id = 0; /* an OK batch has an id */
	expect_range(&m);
	sample(&m, FM_MSG_COPY_BATCH);
	m.u.batch.first = 500; /* inverted */
	expect_range(&m);
	sample(&m, FM_MSG_COPY_BATCH);
	m.u.batch.wait_ms = 5; /* a wait only with WAIT */
	expect_range(&m);
	sample(&m, FM_MSG_COPY_BATCH);
	m.u.batch.status = FM_COPY_DONE; /* grains only with OK */
	expect_range(&m);
	n = enc(FM_MSG_COPY_BATCH, buf);
	buf[40 + 56] = 151; /* decode side: rate */
	fix_crc(buf, (size_t)n);
	assert_int_equal(fm_wire_decode(buf, (size_t)n, &d), -ERANGE);
	sample(&m, FM_MSG_RELEASE_REQUEST);
	m.u.release.reason = FM_RELEASE_COPIED; /* 2.1 */
	assert_true(fm_wire_encode(&m, buf, sizeof(buf)) > 0);

	/* a descriptor without a lock table (restart grace) is valid; a
	 * half-empty one is not */
	sample(&m, FM_MSG_MAP_GRANT);
	memset(&m.u.map_grant.map.locks, 0, sizeof(m.u.map_grant.map.locks));
	assert_true(fm_wire_encode(&m, buf, sizeof(buf)) > 0);
	m.u.map_grant.map.locks.flags = FM_ACCESS_REMOTE_ATOMIC;
	expect_range(&m);
}

static void encode__refusals(void **state)
{
	(void)state;
	uint8_t buf[FM_WIRE_MAX_MSG];
	struct fm_msg m;

	sample(&m, FM_MSG_HELLO);
	assert_int_equal(fm_wire_encode(&m, buf, 79), -ENOBUFS);
	assert_int_equal(fm_wire_encode(&m, buf, 80), 80);
	m.flags = 1;
	assert_int_equal(fm_wire_encode(&m, buf, sizeof(buf)), -EOPNOTSUPP);
	m.flags = 0;
	m.type = 0;
	assert_int_equal(fm_wire_encode(&m, buf, sizeof(buf)), -ENOMSG);
	assert_int_equal(fm_wire_encode(NULL, buf, sizeof(buf)), -EINVAL);
}

static void errname__distinct_per_failure(void **state)
{
	(void)state;
	int errs[] = { -ENODATA, -EPROTO, -EPROTONOSUPPORT, -EMSGSIZE, -EILSEQ,
		       -ENOTEMPTY, -EOPNOTSUPP, -ENOMSG, -EBADMSG, -ERANGE };
	size_t n = sizeof(errs) / sizeof(errs[0]);

	for (size_t i = 0; i < n; i++) {
		assert_string_not_equal(fm_wire_errname(errs[i]), "?");
		for (size_t j = i + 1; j < n; j++) {
			assert_int_not_equal(errs[i], errs[j]);
			assert_string_not_equal(fm_wire_errname(errs[i]),
						fm_wire_errname(errs[j]));
		}
	}
	assert_string_equal(fm_msg_type_name(FM_MSG_LOCK_GRANT), "lock-grant");
	assert_string_equal(fm_msg_type_name(0), "?");
	assert_string_equal(fm_bye_reason_name(FM_BYE_AUTH_FAILED), "auth-failed");
}

/* ---- deterministic fuzz replay ---- */
static uint64_t rng(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static void fuzz_replay__mutations__never_crash_canonical(void **state)
{
	(void)state;
	uint64_t s = 0x9e3779b97f4a7c15ull;
	unsigned accepted = 0, rejected = 0;

	for (int iter = 0; iter < 200000; iter++) {
		uint8_t buf[FM_WIRE_MAX_MSG + 16], again[FM_WIRE_MAX_MSG];
		struct fm_msg d;
		uint16_t t = (uint16_t)(1 + rng(&s) % (FM_MSG_TYPE_END - 1));
		size_t n = (size_t)enc(t, buf);
		unsigned muts = 1 + rng(&s) % 4;
		int rc;

		for (unsigned k = 0; k < muts && n > 0; k++) {
			switch (rng(&s) % 4) {
			case 0: /* flip a bit */
				buf[rng(&s) % n] ^= (uint8_t)(1u << (rng(&s) % 8));
				break;
			case 1: /* set a byte */
				buf[rng(&s) % n] = (uint8_t)rng(&s);
				break;
			case 2: /* truncate */
				n = rng(&s) % (n + 1);
				break;
			case 3: /* extend with noise */
				if (n < FM_WIRE_MAX_MSG)
					buf[n++] = (uint8_t)rng(&s);
				break;
			}
		}
		/* most of the time, repair length and CRC to get past step 5 */
		if (n >= FM_WIRE_HDR_SIZE && rng(&s) % 4) {
			set_le32(buf + 8, (uint32_t)n);
			fix_crc(buf, n);
		}
		rc = fm_wire_decode(buf, n, &d);
		if (rc == 0) {
			int n2;

			accepted++;
			/* anything accepted re-encodes to the same bytes */
			if (buf[5] == FM_WIRE_MINOR) {
				n2 = fm_wire_encode(&d, again, sizeof(again));
				assert_int_equal(n2, (int)n);
				assert_memory_equal(again, buf, n);
			}
		} else {
			assert_string_not_equal(fm_wire_errname(rc), "?");
			rejected++;
		}
	}
	/* the replay reaches both sides */
	assert_true(accepted > 100);
	assert_true(rejected > 100);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(sha256__fips_vectors),
		cmocka_unit_test(hmac__rfc4231_vectors),
		cmocka_unit_test(auth_mac__binds_every_input),
		cmocka_unit_test(crc32c__check_value),
		cmocka_unit_test(roundtrip__every_type__bytes_and_fields),
		cmocka_unit_test(roundtrip__welcome__descriptors_survive),
		cmocka_unit_test(roundtrip__copy_claim_and_batch__every_field_at_its_offset),
		cmocka_unit_test(encode__little_endian_layout),
		cmocka_unit_test(decode__short__enodata),
		cmocka_unit_test(decode__bad_magic__eproto),
		cmocka_unit_test(decode__other_major__eprotonosupport_minor_ok),
		cmocka_unit_test(decode__length_mismatch__emsgsize),
		cmocka_unit_test(decode__bit_flip__eilseq),
		cmocka_unit_test(decode__reserved_nonzero__enotempty),
		cmocka_unit_test(decode__unknown_flags__eopnotsupp),
		cmocka_unit_test(decode__unknown_type__enomsg),
		cmocka_unit_test(decode__payload_size__ebadmsg),
		cmocka_unit_test(roundtrip__split_query_and_answer__every_field_at_its_offset),
		cmocka_unit_test(decode__split_query__each_refusal_its_errno),
		cmocka_unit_test(change_report__layout_and_each_refusal),
		cmocka_unit_test(decode__out_of_range__erange),
		cmocka_unit_test(encode__refusals),
		cmocka_unit_test(errname__distinct_per_failure),
		cmocka_unit_test(fuzz_replay__mutations__never_crash_canonical),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
