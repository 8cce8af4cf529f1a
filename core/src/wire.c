/* wire.c -- encode, decode and validate flashmeta messages; CRC32C,
 * SHA-256 and HMAC-SHA-256 for their integrity and authentication.
 *
 * Design: every message has one static encoder and one static decoder that
 * walk the payload with explicit little-endian helpers; a received buffer
 * is never cast to a struct.  Field ranges are checked by one function
 * (check_fields) that both directions share, so encode refuses exactly what
 * decode would refuse.  The validation order is documented in wire.h and
 * the tests assert it step by step.
 *
 * No state, no allocation, no locks: safe from any thread.
 */
#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <string.h>

#include "flashmeta/copy.h"
#include "flashmeta/error.h"
#include "flashmeta/le.h"
#include "flashmeta/geometry.h"
#include "flashmeta/mapping.h"
#include "flashmeta/digest.h"
#include "flashmeta/wire.h"

/* ---- header offsets ---- */
#define OFF_MAGIC 0
#define OFF_MAJOR 4
#define OFF_MINOR 5
#define OFF_TYPE 6
#define OFF_LENGTH 8
#define OFF_FLAGS 12
#define OFF_RSV0 14
#define OFF_SESSION 16
#define OFF_SEQ 24
#define OFF_CRC 32
#define OFF_RSV1 36

static_assert(OFF_RSV1 + 4 == FM_WIRE_HDR_SIZE, "header is 40 bytes");
static_assert(OFF_SESSION % 8 == 0 && OFF_SEQ % 8 == 0, "64-bit fields aligned");

/* ---- payload sizes ---- */
#define SZ_HELLO 40u
#define SZ_CHALLENGE FM_WIRE_NONCE_SIZE
#define SZ_AUTH FM_WIRE_MAC_SIZE
#define SZ_WELCOME_FIXED 32u
#define SZ_RENEW 8u
#define SZ_LEASE 16u
#define SZ_LOCK 40u
#define SZ_RELEASE_REQ 24u
#define SZ_RELEASED 16u
#define SZ_MAP_GRANT FM_WIRE_MAPDESC_SIZE
#define SZ_COMMIT_FIXED 32u
#define SZ_RANGE 16u
#define SZ_ACK 32u
#define SZ_ERROR 16u
#define SZ_BYE 16u
#define SZ_CLAIM 48u
#define SZ_BATCH 64u
#define SZ_QUERY 40u
#define SZ_ANSWER (40u + FM_WIRE_QUERY_MAX / 8)
#define SZ_REPORT_FIXED 24u

/* mapdesc offsets */
#define MD_MAP_ID 0
#define MD_GEN 8
#define MD_GRAINS 16
#define MD_SHIFT 24
#define MD_STATE 25
#define MD_LOCK_SHIFT 26
#define MD_FLAGS 27
#define MD_RSV32 28
#define MD_BITMAP 32
#define MD_LOCKS 56
static_assert(MD_LOCKS + FM_REGION_DESC_WIRE_SIZE == FM_WIRE_MAPDESC_SIZE,
	      "map descriptor is 80 bytes");
static_assert(FM_WIRE_HDR_SIZE + SZ_WELCOME_FIXED +
		      FM_WIRE_MAX_MAPS * FM_WIRE_MAPDESC_SIZE <= FM_WIRE_MAX_MSG,
	      "largest WELCOME fits one receive buffer");
static_assert(FM_WIRE_HDR_SIZE + SZ_COMMIT_FIXED +
		      FM_WIRE_MAX_RANGES * SZ_RANGE <= FM_WIRE_MAX_MSG,
	      "largest SPLIT_COMMIT fits one receive buffer");
static_assert(FM_WIRE_HDR_SIZE + SZ_REPORT_FIXED +
		      FM_WIRE_REPORT_MAX_RANGES * SZ_RANGE <= FM_WIRE_MAX_MSG,
	      "largest CHANGE_REPORT fits one receive buffer");


/* ---- names ---- */
static const char *const type_names[FM_MSG_TYPE_END] = {
	[FM_MSG_HELLO] = "hello",
	[FM_MSG_CHALLENGE] = "challenge",
	[FM_MSG_AUTH] = "auth",
	[FM_MSG_WELCOME] = "welcome",
	[FM_MSG_LEASE_RENEW] = "lease-renew",
	[FM_MSG_LEASE_GRANT] = "lease-grant",
	[FM_MSG_LOCK_REQUEST] = "lock-request",
	[FM_MSG_LOCK_GRANT] = "lock-grant",
	[FM_MSG_UNLOCK] = "unlock",
	[FM_MSG_RELEASE_REQUEST] = "release-request",
	[FM_MSG_RELEASED] = "released",
	[FM_MSG_MAP_GRANT] = "map-grant",
	[FM_MSG_SPLIT_COMMIT] = "split-commit",
	[FM_MSG_SPLIT_ACK] = "split-ack",
	[FM_MSG_ERROR] = "error",
	[FM_MSG_BYE] = "bye",
	[FM_MSG_COPY_CLAIM] = "copy-claim",
	[FM_MSG_COPY_BATCH] = "copy-batch",
	[FM_MSG_SPLIT_QUERY] = "split-query",
	[FM_MSG_SPLIT_ANSWER] = "split-answer",
	[FM_MSG_CHANGE_REPORT] = "change-report",
};

const char *fm_msg_type_name(uint16_t type)
{
	if (type == 0 || type >= FM_MSG_TYPE_END)
		return "?";
	return type_names[type];
}

const char *fm_wire_errname(int err)
{
	switch (err) {
	case -ENODATA: return "short";
	case -EPROTO: return "bad-magic";
	case -EPROTONOSUPPORT: return "bad-version";
	case -EMSGSIZE: return "bad-length";
	case -EILSEQ: return "bad-checksum";
	case -ENOTEMPTY: return "reserved-nonzero";
	case -EOPNOTSUPP: return "unknown-flags";
	case -ENOMSG: return "unknown-type";
	case -EBADMSG: return "bad-payload-size";
	case -ERANGE: return "out-of-range";
	case -ENOBUFS: return "buffer-too-small";
	case -EINVAL: return "invalid-argument";
	default: return "?";
	}
}

const char *fm_bye_reason_name(uint32_t reason)
{
	static const char *const names[FM_BYE_REASON_COUNT] = {
		[FM_BYE_NORMAL] = "normal",
		[FM_BYE_UNKNOWN_CLIENT] = "unknown-client",
		[FM_BYE_AUTH_FAILED] = "auth-failed",
		[FM_BYE_MALFORMED] = "malformed",
		[FM_BYE_PROTOCOL] = "protocol",
		[FM_BYE_LEASE_EXPIRED] = "lease-expired",
		[FM_BYE_SUPERSEDED] = "superseded",
		[FM_BYE_SHUTDOWN] = "shutdown",
	};

	return reason < FM_BYE_REASON_COUNT ? names[reason] : "?";
}

/* ---- sizes ---- */
int fm_wire_payload_size(uint16_t type)
{
	switch (type) {
	case FM_MSG_HELLO: return SZ_HELLO;
	case FM_MSG_CHALLENGE: return SZ_CHALLENGE;
	case FM_MSG_AUTH: return SZ_AUTH;
	case FM_MSG_WELCOME: return SZ_WELCOME_FIXED;
	case FM_MSG_LEASE_RENEW: return SZ_RENEW;
	case FM_MSG_LEASE_GRANT: return SZ_LEASE;
	case FM_MSG_LOCK_REQUEST:
	case FM_MSG_LOCK_GRANT:
	case FM_MSG_UNLOCK: return SZ_LOCK;
	case FM_MSG_RELEASE_REQUEST: return SZ_RELEASE_REQ;
	case FM_MSG_RELEASED: return SZ_RELEASED;
	case FM_MSG_MAP_GRANT: return SZ_MAP_GRANT;
	case FM_MSG_SPLIT_COMMIT: return SZ_COMMIT_FIXED;
	case FM_MSG_SPLIT_ACK: return SZ_ACK;
	case FM_MSG_ERROR: return SZ_ERROR;
	case FM_MSG_BYE: return SZ_BYE;
	case FM_MSG_COPY_CLAIM: return SZ_CLAIM;
	case FM_MSG_COPY_BATCH: return SZ_BATCH;
	case FM_MSG_SPLIT_QUERY: return SZ_QUERY;
	case FM_MSG_SPLIT_ANSWER: return SZ_ANSWER;
	case FM_MSG_CHANGE_REPORT: return SZ_REPORT_FIXED;
	default: return -ENOMSG;
	}
}

/* Full payload size of `m` as it will be encoded. */
static size_t payload_size(const struct fm_msg *m)
{
	size_t n = (size_t)fm_wire_payload_size(m->type);

	if (m->type == FM_MSG_WELCOME)
		n += (size_t)m->u.welcome.map_count * FM_WIRE_MAPDESC_SIZE;
	else if (m->type == FM_MSG_SPLIT_COMMIT)
		n += (size_t)m->u.commit.range_count * SZ_RANGE;
	else if (m->type == FM_MSG_CHANGE_REPORT)
		n += (size_t)m->u.report.range_count * SZ_RANGE;
	return n;
}

/* ---- field ranges (step 11), shared by encode and decode ---- */
static int check_region(const struct fm_region_desc *r, uint32_t want_flags,
			uint64_t min_len, const char *what)
{
	if (r->flags != want_flags)
		return fm_err(-ERANGE, "%s region flags 0x%x, want 0x%x", what,
			      r->flags, want_flags);
	if (r->len < min_len)
		return fm_err(-ERANGE, "%s region %llu bytes, needs %llu", what,
			      (unsigned long long)r->len,
			      (unsigned long long)min_len);
	if (r->addr + r->len < r->addr)
		return fm_err(-ERANGE, "%s region wraps the address space", what);
	if ((want_flags & FM_ACCESS_REMOTE_ATOMIC) && (r->addr & 7))
		return fm_err(-ERANGE, "%s region not 8-byte aligned", what);
	return 0;
}

static int check_mapdesc(const struct fm_wire_mapdesc *d)
{
	uint64_t max_grains = FM_VOLUME_SIZE_MAX >> FM_GRAIN_SHIFT_MIN;
	uint64_t words;
	int rc;

	if (d->grain_count == 0 || d->grain_count > max_grains)
		return fm_err(-ERANGE, "map %llu: grain count %llu out of range",
			      (unsigned long long)d->map_id,
			      (unsigned long long)d->grain_count);
	if (d->grain_shift < FM_GRAIN_SHIFT_MIN || d->grain_shift > FM_GRAIN_SHIFT_MAX)
		return fm_err(-ERANGE, "map %llu: grain shift %u out of range",
			      (unsigned long long)d->map_id, d->grain_shift);
	if (d->state >= FM_MAP_STATE_COUNT)
		return fm_err(-ERANGE, "map %llu: state %u unknown",
			      (unsigned long long)d->map_id, d->state);
	if (d->lock_shift > 32)
		return fm_err(-ERANGE, "map %llu: lock shift %u > 32",
			      (unsigned long long)d->map_id, d->lock_shift);
	if (d->flags & ~FM_MAPDESC_FLAGS_KNOWN)
		return fm_err(-ERANGE, "map %llu: descriptor flags 0x%x unknown",
			      (unsigned long long)d->map_id, d->flags);
	rc = check_region(&d->bitmap, FM_ACCESS_REMOTE_READ,
			  ((d->grain_count + 63) / 64) * 8, "bitmap");
	if (rc)
		return rc;
	/* all zero: no lock table yet (the owner's restart grace) */
	if (!d->locks.addr && !d->locks.len && !d->locks.key && !d->locks.flags)
		return 0;
	words = ((d->grain_count - 1) >> d->lock_shift) + 1;
	return check_region(&d->locks, FM_ACCESS_REMOTE_ATOMIC, words * 8, "lock");
}

static int check_range(uint64_t first, uint64_t last, const char *what)
{
	if (first > last)
		return fm_err(-ERANGE, "%s: grain range [%llu, %llu] inverted", what,
			      (unsigned long long)first, (unsigned long long)last);
	return 0;
}

/* SPLIT_QUERY / SPLIT_ANSWER: count 1..FM_WIRE_QUERY_MAX, no wrap */
static int check_query(const char *tn, uint64_t first, uint16_t count)
{
	if (count == 0 || count > FM_WIRE_QUERY_MAX)
		return fm_err(-ERANGE, "%s: %u grains, want 1..%u", tn, count,
			      FM_WIRE_QUERY_MAX);
	if (first + count - 1 < first)
		return fm_err(-ERANGE, "%s: grains from %llu wrap", tn,
			      (unsigned long long)first);
	return 0;
}

static int check_fields(const struct fm_msg *m)
{
	const char *tn = fm_msg_type_name(m->type);
	int rc;

	switch (m->type) {
	case FM_MSG_HELLO:
		if (m->u.hello.client_id == 0 ||
		    m->u.hello.client_id > FM_WIRE_CLIENT_ID_MAX)
			return fm_err(-ERANGE, "hello: client id %u out of 1..%u",
				      m->u.hello.client_id, FM_WIRE_CLIENT_ID_MAX);
		if (m->u.hello.prev_flags & ~FM_HELLO_PREV_KNOWN)
			return fm_err(-ERANGE, "hello: unknown prev flags 0x%x",
				      m->u.hello.prev_flags);
		return 0;
	case FM_MSG_WELCOME:
		if (m->u.welcome.client_epoch == 0)
			return fm_err(-ERANGE, "welcome: client epoch 0");
		if (m->u.welcome.lease_term_ms == 0)
			return fm_err(-ERANGE, "welcome: lease term 0");
		if (m->u.welcome.incarnation == 0)
			return fm_err(-ERANGE, "welcome: owner incarnation 0");
		if (m->u.welcome.map_count > FM_WIRE_MAX_MAPS)
			return fm_err(-ERANGE, "welcome: %u maps > %u",
				      m->u.welcome.map_count, FM_WIRE_MAX_MAPS);
		for (unsigned i = 0; i < m->u.welcome.map_count; i++) {
			rc = check_mapdesc(&m->u.welcome.maps[i]);
			if (rc)
				return rc;
		}
		return 0;
	case FM_MSG_LEASE_GRANT:
		if (m->u.lease.lease_term_ms == 0)
			return fm_err(-ERANGE, "lease-grant: term 0");
		return 0;
	case FM_MSG_LOCK_REQUEST:
	case FM_MSG_UNLOCK:
		return check_range(m->u.lock.first, m->u.lock.last, tn);
	case FM_MSG_LOCK_GRANT:
		if (m->u.lock.word == 0)
			return fm_err(-ERANGE, "lock-grant: free lock word");
		return check_range(m->u.lock.first, m->u.lock.last, tn);
	case FM_MSG_RELEASE_REQUEST:
		if (m->u.release.reason >= FM_RELEASE_REASON_COUNT)
			return fm_err(-ERANGE, "release-request: reason %u unknown",
				      m->u.release.reason);
		return 0;
	case FM_MSG_MAP_GRANT:
		return check_mapdesc(&m->u.map_grant.map);
	case FM_MSG_SPLIT_COMMIT:
		if (m->u.commit.range_count == 0 ||
		    m->u.commit.range_count > FM_WIRE_MAX_RANGES)
			return fm_err(-ERANGE, "split-commit: %u ranges, want 1..%u",
				      m->u.commit.range_count, FM_WIRE_MAX_RANGES);
		for (unsigned i = 0; i < m->u.commit.range_count; i++) {
			rc = check_range(m->u.commit.ranges[i].first,
					 m->u.commit.ranges[i].last, tn);
			if (rc)
				return rc;
		}
		return 0;
	case FM_MSG_SPLIT_ACK:
		if (m->u.ack.status >= FM_SPLIT_STATUS_COUNT)
			return fm_err(-ERANGE, "split-ack: status %u unknown",
				      m->u.ack.status);
		return 0;
	case FM_MSG_BYE:
		if (m->u.bye.reason >= FM_BYE_REASON_COUNT)
			return fm_err(-ERANGE, "bye: reason %u unknown", m->u.bye.reason);
		if (m->u.bye.flags & ~FM_BYE_F_KNOWN)
			return fm_err(-ERANGE, "bye: unknown flags 0x%x", m->u.bye.flags);
		return 0;
	case FM_MSG_COPY_CLAIM:
		if (m->u.claim.max_grains > FM_COPY_BATCH_MAX)
			return fm_err(-ERANGE, "copy-claim: %u grains > %u",
				      m->u.claim.max_grains, FM_COPY_BATCH_MAX);
		if (!m->u.claim.done_batch && m->u.claim.done_next)
			return fm_err(-ERANGE, "copy-claim: done_next without done_batch");
		return 0;
	case FM_MSG_COPY_BATCH: {
		const struct fm_msg_copy_batch *b = &m->u.batch;

		if (b->status >= FM_COPY_STATUS_COUNT)
			return fm_err(-ERANGE, "copy-batch: status %u unknown", b->status);
		if (b->rate > FM_COPY_RATE_MAX)
			return fm_err(-ERANGE, "copy-batch: rate %u > %u", b->rate,
				      FM_COPY_RATE_MAX);
		if (b->status != FM_COPY_WAIT && b->wait_ms)
			return fm_err(-ERANGE, "copy-batch: wait_ms with status %s",
				      fm_copy_status_name(b->status));
		if (b->status != FM_COPY_OK)
			return b->batch_id || b->first || b->last ?
				fm_err(-ERANGE, "copy-batch: grains with status %s",
				       fm_copy_status_name(b->status)) : 0;
		if (!b->batch_id)
			return fm_err(-ERANGE, "copy-batch: batch id 0");
		return check_range(b->first, b->last, tn);
	}
	case FM_MSG_SPLIT_QUERY:
		return check_query(tn, m->u.query.first, m->u.query.count);
	case FM_MSG_SPLIT_ANSWER: {
		const struct fm_msg_split_answer *an = &m->u.answer;

		rc = check_query(tn, an->first, an->count);
		if (rc)
			return rc;
		for (unsigned i = an->count; i < FM_WIRE_QUERY_MAX; i++)
			if (an->bits[i / 64] >> (i % 64) & 1)
				return fm_err(-ERANGE, "split-answer: bit %u set, count %u", i,
					      an->count);
		return 0;
	}
	case FM_MSG_CHANGE_REPORT: {
		const struct fm_msg_change_report *r = &m->u.report;

		if (r->range_count == 0 || r->range_count > FM_WIRE_REPORT_MAX_RANGES)
			return fm_err(-ERANGE, "change-report: %u ranges, want 1..%u",
				      r->range_count, FM_WIRE_REPORT_MAX_RANGES);
		for (unsigned i = 0; i < r->range_count; i++) {
			rc = check_range(r->ranges[i].first, r->ranges[i].last, tn);
			if (rc)
				return rc;
			if (i && r->ranges[i].first <= r->ranges[i - 1].last)
				return fm_err(-ERANGE, "change-report: range %u [%llu, %llu] not"
					      " after range %u (ending at %llu)", i,
					      (unsigned long long)r->ranges[i].first,
					      (unsigned long long)r->ranges[i].last, i - 1,
					      (unsigned long long)r->ranges[i - 1].last);
		}
		return 0;
	}
	default:
		return 0;
	}
}

/* every payload but the arrays of WELCOME, SPLIT_COMMIT and CHANGE_REPORT */
union msg_fixed {
	struct fm_msg_hello hello;
	struct fm_msg_challenge challenge;
	struct fm_msg_auth auth;
	uint8_t welcome[offsetof(struct fm_msg_welcome, maps)];
	struct fm_msg_lease_renew renew;
	struct fm_msg_lease_grant lease;
	struct fm_msg_lock lock;
	struct fm_msg_release_request release;
	struct fm_msg_released released;
	struct fm_msg_map_grant map_grant;
	uint8_t commit[offsetof(struct fm_msg_split_commit, ranges)];
	struct fm_msg_split_ack ack;
	struct fm_msg_error error;
	struct fm_msg_bye bye;
	struct fm_msg_copy_claim claim;
	struct fm_msg_copy_batch batch;
	struct fm_msg_split_query query;
	struct fm_msg_split_answer answer;
	uint8_t report[offsetof(struct fm_msg_change_report, ranges)];
};

void fm_wire_msg_init(struct fm_msg *m, uint16_t type)
{
	memset(m, 0, offsetof(struct fm_msg, u) + sizeof(union msg_fixed));
	m->type = type;
}

/* ---- per-message encoders: write the payload at p ---- */
static void put_mapdesc(uint8_t *p, const struct fm_wire_mapdesc *d)
{
	fm_put_le64(p + MD_MAP_ID, d->map_id);
	fm_put_le64(p + MD_GEN, d->generation);
	fm_put_le64(p + MD_GRAINS, d->grain_count);
	p[MD_SHIFT] = d->grain_shift;
	p[MD_STATE] = d->state;
	p[MD_LOCK_SHIFT] = d->lock_shift;
	p[MD_FLAGS] = d->flags;
	fm_put_le32(p + MD_RSV32, 0);
	fm_region_desc_encode(&d->bitmap, p + MD_BITMAP);
	fm_region_desc_encode(&d->locks, p + MD_LOCKS);
}

static void enc_hello(uint8_t *p, const struct fm_msg_hello *h)
{
	fm_put_le32(p, h->client_id);
	p[4] = h->ver_major;
	p[5] = h->ver_minor;
	fm_put_le16(p + 6, 0);
	memcpy(p + 8, h->nonce, FM_WIRE_NONCE_SIZE);
	fm_put_le64(p + 24, h->prev_session);
	fm_put_le32(p + 32, h->prev_flags);
	fm_put_le32(p + 36, 0);
}

static void enc_welcome(uint8_t *p, const struct fm_msg_welcome *w)
{
	fm_put_le64(p, w->session_id);
	fm_put_le32(p + 8, w->client_epoch);
	fm_put_le32(p + 12, w->lease_term_ms);
	fm_put_le16(p + 16, w->map_count);
	fm_put_le16(p + 18, 0);
	fm_put_le32(p + 20, 0);
	fm_put_le64(p + 24, w->incarnation);
	for (unsigned i = 0; i < w->map_count; i++)
		put_mapdesc(p + SZ_WELCOME_FIXED + i * FM_WIRE_MAPDESC_SIZE, &w->maps[i]);
}

static void enc_lock(uint8_t *p, const struct fm_msg_lock *l)
{
	fm_put_le64(p, l->map_id);
	fm_put_le64(p + 8, l->generation);
	fm_put_le64(p + 16, l->first);
	fm_put_le64(p + 24, l->last);
	fm_put_le64(p + 32, l->word);
}

/* a message's list of n grain ranges, each first then last (SZ_RANGE) */
static void enc_ranges(uint8_t *p, const struct fm_grain_range *r, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		fm_put_le64(p + i * SZ_RANGE, r[i].first);
		fm_put_le64(p + i * SZ_RANGE + 8, r[i].last);
	}
}

static void dec_ranges(const uint8_t *p, struct fm_grain_range *r, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		r[i].first = fm_get_le64(p + i * SZ_RANGE);
		r[i].last = fm_get_le64(p + i * SZ_RANGE + 8);
	}
}

static void enc_commit(uint8_t *p, const struct fm_msg_split_commit *c)
{
	fm_put_le64(p, c->map_id);
	fm_put_le64(p + 8, c->generation);
	fm_put_le64(p + 16, c->commit_id);
	fm_put_le16(p + 24, c->range_count);
	fm_put_le16(p + 26, 0);
	fm_put_le32(p + 28, 0);
	enc_ranges(p + SZ_COMMIT_FIXED, c->ranges, c->range_count);
}

static void enc_report(uint8_t *p, const struct fm_msg_change_report *r)
{
	fm_put_le64(p, r->map_id);
	fm_put_le64(p + 8, r->generation);
	fm_put_le16(p + 16, r->range_count);
	fm_put_le16(p + 18, 0);
	fm_put_le32(p + 20, 0);
	enc_ranges(p + SZ_REPORT_FIXED, r->ranges, r->range_count);
}

/* SPLIT_QUERY and the same 40 bytes at the head of SPLIT_ANSWER */
static void enc_query_head(uint8_t *p, uint64_t map_id, uint64_t gen, uint64_t qid,
			   uint64_t first, uint16_t count)
{
	fm_put_le64(p, map_id);
	fm_put_le64(p + 8, gen);
	fm_put_le64(p + 16, qid);
	fm_put_le64(p + 24, first);
	fm_put_le16(p + 32, count);
	fm_put_le16(p + 34, 0);
	fm_put_le32(p + 36, 0);
}

static void enc_payload(uint8_t *p, const struct fm_msg *m)
{
	switch (m->type) {
	case FM_MSG_HELLO:
		enc_hello(p, &m->u.hello);
		break;
	case FM_MSG_CHALLENGE:
		memcpy(p, m->u.challenge.nonce, FM_WIRE_NONCE_SIZE);
		break;
	case FM_MSG_AUTH:
		memcpy(p, m->u.auth.mac, FM_WIRE_MAC_SIZE);
		break;
	case FM_MSG_WELCOME:
		enc_welcome(p, &m->u.welcome);
		break;
	case FM_MSG_LEASE_RENEW:
		fm_put_le64(p, m->u.renew.renew_id);
		break;
	case FM_MSG_LEASE_GRANT:
		fm_put_le64(p, m->u.lease.renew_id);
		fm_put_le32(p + 8, m->u.lease.lease_term_ms);
		fm_put_le32(p + 12, 0);
		break;
	case FM_MSG_LOCK_REQUEST:
	case FM_MSG_LOCK_GRANT:
	case FM_MSG_UNLOCK:
		enc_lock(p, &m->u.lock);
		break;
	case FM_MSG_RELEASE_REQUEST:
		fm_put_le64(p, m->u.release.map_id);
		fm_put_le64(p + 8, m->u.release.generation);
		fm_put_le32(p + 16, m->u.release.reason);
		fm_put_le32(p + 20, 0);
		break;
	case FM_MSG_RELEASED:
		fm_put_le64(p, m->u.released.map_id);
		fm_put_le64(p + 8, m->u.released.generation);
		break;
	case FM_MSG_MAP_GRANT:
		put_mapdesc(p, &m->u.map_grant.map);
		break;
	case FM_MSG_SPLIT_COMMIT:
		enc_commit(p, &m->u.commit);
		break;
	case FM_MSG_SPLIT_ACK:
		fm_put_le64(p, m->u.ack.map_id);
		fm_put_le64(p + 8, m->u.ack.generation);
		fm_put_le64(p + 16, m->u.ack.commit_id);
		fm_put_le32(p + 24, m->u.ack.status);
		fm_put_le32(p + 28, 0);
		break;
	case FM_MSG_ERROR:
		fm_put_le64(p, m->u.error.ref_seq);
		fm_put_le32(p + 8, m->u.error.code);
		fm_put_le32(p + 12, 0);
		break;
	case FM_MSG_BYE:
		fm_put_le32(p, m->u.bye.reason);
		fm_put_le32(p + 4, m->u.bye.code);
		fm_put_le32(p + 8, m->u.bye.flags);
		fm_put_le32(p + 12, 0);
		break;
	case FM_MSG_COPY_CLAIM:
		fm_put_le64(p, m->u.claim.map_id);
		fm_put_le64(p + 8, m->u.claim.generation);
		fm_put_le64(p + 16, m->u.claim.claim_id);
		fm_put_le64(p + 24, m->u.claim.done_batch);
		fm_put_le64(p + 32, m->u.claim.done_next);
		fm_put_le32(p + 40, m->u.claim.max_grains);
		fm_put_le32(p + 44, 0);
		break;
	case FM_MSG_COPY_BATCH:
		fm_put_le64(p, m->u.batch.map_id);
		fm_put_le64(p + 8, m->u.batch.generation);
		fm_put_le64(p + 16, m->u.batch.claim_id);
		fm_put_le64(p + 24, m->u.batch.batch_id);
		fm_put_le64(p + 32, m->u.batch.first);
		fm_put_le64(p + 40, m->u.batch.last);
		fm_put_le32(p + 48, m->u.batch.status);
		fm_put_le32(p + 52, m->u.batch.wait_ms);
		fm_put_le16(p + 56, m->u.batch.rate);
		fm_put_le16(p + 58, 0);
		fm_put_le32(p + 60, 0);
		break;
	case FM_MSG_SPLIT_QUERY:
		enc_query_head(p, m->u.query.map_id, m->u.query.generation,
			       m->u.query.query_id, m->u.query.first, m->u.query.count);
		break;
	case FM_MSG_SPLIT_ANSWER:
		enc_query_head(p, m->u.answer.map_id, m->u.answer.generation,
			       m->u.answer.query_id, m->u.answer.first, m->u.answer.count);
		for (unsigned i = 0; i < FM_WIRE_QUERY_MAX / 64; i++)
			fm_put_le64(p + SZ_QUERY + 8 * i, m->u.answer.bits[i]);
		break;
	case FM_MSG_CHANGE_REPORT:
		enc_report(p, &m->u.report);
		break;
	}
}

int fm_wire_encode(const struct fm_msg *m, void *buf, size_t cap)
{
	uint8_t *b = buf;
	size_t len;
	int rc;

	if (!m || !buf)
		return fm_err(-EINVAL, "wire encode: NULL argument");
	if (fm_wire_payload_size(m->type) < 0)
		return fm_err(-ENOMSG, "wire encode: unknown type %u", m->type);
	if (m->flags & ~FM_WIRE_FLAGS_KNOWN)
		return fm_err(-EOPNOTSUPP, "wire encode: unknown flags 0x%x", m->flags);
	rc = check_fields(m);
	if (rc)
		return rc;
	len = FM_WIRE_HDR_SIZE + payload_size(m);
	if (len > cap)
		return fm_err(-ENOBUFS, "wire encode: %s needs %zu bytes, have %zu",
			      fm_msg_type_name(m->type), len, cap);

	fm_put_le32(b + OFF_MAGIC, FM_WIRE_MAGIC);
	b[OFF_MAJOR] = FM_WIRE_MAJOR;
	b[OFF_MINOR] = FM_WIRE_MINOR;
	fm_put_le16(b + OFF_TYPE, m->type);
	fm_put_le32(b + OFF_LENGTH, (uint32_t)len);
	fm_put_le16(b + OFF_FLAGS, m->flags);
	fm_put_le16(b + OFF_RSV0, 0);
	fm_put_le64(b + OFF_SESSION, m->session);
	fm_put_le64(b + OFF_SEQ, m->seq);
	fm_put_le32(b + OFF_CRC, 0);
	fm_put_le32(b + OFF_RSV1, 0);
	enc_payload(b + FM_WIRE_HDR_SIZE, m);
	fm_put_le32(b + OFF_CRC, fm_crc32c(b, len));
	return (int)len;
}

/* ---- per-message decoders ---- */
static bool mapdesc_reserved_zero(const uint8_t *p)
{
	return fm_get_le32(p + MD_RSV32) == 0;
}

static void get_mapdesc(const uint8_t *p, struct fm_wire_mapdesc *d)
{
	d->map_id = fm_get_le64(p + MD_MAP_ID);
	d->generation = fm_get_le64(p + MD_GEN);
	d->grain_count = fm_get_le64(p + MD_GRAINS);
	d->grain_shift = p[MD_SHIFT];
	d->state = p[MD_STATE];
	d->lock_shift = p[MD_LOCK_SHIFT];
	d->flags = p[MD_FLAGS];
	fm_region_desc_decode(p + MD_BITMAP, &d->bitmap);
	fm_region_desc_decode(p + MD_LOCKS, &d->locks);
}

static int reserved_err(const char *what)
{
	return fm_err(-ENOTEMPTY, "%s: reserved field not zero", what);
}

/* Steps 9 (size) and 10 (reserved) for the payload p[0..n), then parse. */
static int dec_payload(const uint8_t *p, size_t n, struct fm_msg *m)
{
	const char *tn = fm_msg_type_name(m->type);
	size_t want = (size_t)fm_wire_payload_size(m->type);
	size_t count = 0;

	/* step 9: size */
	if (n < want)
		goto bad_size;
	if (m->type == FM_MSG_WELCOME) {
		count = fm_get_le16(p + 16);
		want += count * FM_WIRE_MAPDESC_SIZE;
	} else if (m->type == FM_MSG_SPLIT_COMMIT) {
		count = fm_get_le16(p + 24);
		want += count * SZ_RANGE;
	} else if (m->type == FM_MSG_CHANGE_REPORT) {
		count = fm_get_le16(p + 16);
		want += count * SZ_RANGE;
	}
	if (n != want)
		goto bad_size;

	/* step 10: reserved, then parse; step 11 is the caller's check_fields.
	 * Counts beyond the array are range errors found there, so parse at
	 * most the array's capacity. */
	switch (m->type) {
	case FM_MSG_HELLO:
		if (fm_get_le16(p + 6) || fm_get_le32(p + 36))
			return reserved_err(tn);
		m->u.hello.client_id = fm_get_le32(p);
		m->u.hello.ver_major = p[4];
		m->u.hello.ver_minor = p[5];
		memcpy(m->u.hello.nonce, p + 8, FM_WIRE_NONCE_SIZE);
		m->u.hello.prev_session = fm_get_le64(p + 24);
		m->u.hello.prev_flags = fm_get_le32(p + 32);
		break;
	case FM_MSG_CHALLENGE:
		memcpy(m->u.challenge.nonce, p, FM_WIRE_NONCE_SIZE);
		break;
	case FM_MSG_AUTH:
		memcpy(m->u.auth.mac, p, FM_WIRE_MAC_SIZE);
		break;
	case FM_MSG_WELCOME:
		if (fm_get_le16(p + 18) || fm_get_le32(p + 20))
			return reserved_err(tn);
		for (size_t i = 0; i < count; i++)
			if (!mapdesc_reserved_zero(p + SZ_WELCOME_FIXED +
						   i * FM_WIRE_MAPDESC_SIZE))
				return reserved_err(tn);
		m->u.welcome.session_id = fm_get_le64(p);
		m->u.welcome.client_epoch = fm_get_le32(p + 8);
		m->u.welcome.lease_term_ms = fm_get_le32(p + 12);
		m->u.welcome.map_count = (uint16_t)count;
		m->u.welcome.incarnation = fm_get_le64(p + 24);
		for (size_t i = 0; i < count && i < FM_WIRE_MAX_MAPS; i++)
			get_mapdesc(p + SZ_WELCOME_FIXED + i * FM_WIRE_MAPDESC_SIZE,
				    &m->u.welcome.maps[i]);
		break;
	case FM_MSG_LEASE_RENEW:
		m->u.renew.renew_id = fm_get_le64(p);
		break;
	case FM_MSG_LEASE_GRANT:
		if (fm_get_le32(p + 12))
			return reserved_err(tn);
		m->u.lease.renew_id = fm_get_le64(p);
		m->u.lease.lease_term_ms = fm_get_le32(p + 8);
		break;
	case FM_MSG_LOCK_REQUEST:
	case FM_MSG_LOCK_GRANT:
	case FM_MSG_UNLOCK:
		m->u.lock.map_id = fm_get_le64(p);
		m->u.lock.generation = fm_get_le64(p + 8);
		m->u.lock.first = fm_get_le64(p + 16);
		m->u.lock.last = fm_get_le64(p + 24);
		m->u.lock.word = fm_get_le64(p + 32);
		break;
	case FM_MSG_RELEASE_REQUEST:
		if (fm_get_le32(p + 20))
			return reserved_err(tn);
		m->u.release.map_id = fm_get_le64(p);
		m->u.release.generation = fm_get_le64(p + 8);
		m->u.release.reason = fm_get_le32(p + 16);
		break;
	case FM_MSG_RELEASED:
		m->u.released.map_id = fm_get_le64(p);
		m->u.released.generation = fm_get_le64(p + 8);
		break;
	case FM_MSG_MAP_GRANT:
		if (!mapdesc_reserved_zero(p))
			return reserved_err(tn);
		get_mapdesc(p, &m->u.map_grant.map);
		break;
	case FM_MSG_SPLIT_COMMIT:
		if (fm_get_le16(p + 26) || fm_get_le32(p + 28))
			return reserved_err(tn);
		m->u.commit.map_id = fm_get_le64(p);
		m->u.commit.generation = fm_get_le64(p + 8);
		m->u.commit.commit_id = fm_get_le64(p + 16);
		m->u.commit.range_count = (uint16_t)count;
		dec_ranges(p + SZ_COMMIT_FIXED, m->u.commit.ranges,
			   count < FM_WIRE_MAX_RANGES ? count : FM_WIRE_MAX_RANGES);
		break;
	case FM_MSG_SPLIT_ACK:
		if (fm_get_le32(p + 28))
			return reserved_err(tn);
		m->u.ack.map_id = fm_get_le64(p);
		m->u.ack.generation = fm_get_le64(p + 8);
		m->u.ack.commit_id = fm_get_le64(p + 16);
		m->u.ack.status = fm_get_le32(p + 24);
		break;
	case FM_MSG_ERROR:
		if (fm_get_le32(p + 12))
			return reserved_err(tn);
		m->u.error.ref_seq = fm_get_le64(p);
		m->u.error.code = fm_get_le32(p + 8);
		break;
	case FM_MSG_BYE:
		if (fm_get_le32(p + 12))
			return reserved_err(tn);
		m->u.bye.reason = fm_get_le32(p);
		m->u.bye.code = fm_get_le32(p + 4);
		m->u.bye.flags = fm_get_le32(p + 8);
		break;
	case FM_MSG_COPY_CLAIM:
		if (fm_get_le32(p + 44))
			return reserved_err(tn);
		m->u.claim.map_id = fm_get_le64(p);
		m->u.claim.generation = fm_get_le64(p + 8);
		m->u.claim.claim_id = fm_get_le64(p + 16);
		m->u.claim.done_batch = fm_get_le64(p + 24);
		m->u.claim.done_next = fm_get_le64(p + 32);
		m->u.claim.max_grains = fm_get_le32(p + 40);
		break;
	case FM_MSG_COPY_BATCH:
		if (fm_get_le16(p + 58) || fm_get_le32(p + 60))
			return reserved_err(tn);
		m->u.batch.map_id = fm_get_le64(p);
		m->u.batch.generation = fm_get_le64(p + 8);
		m->u.batch.claim_id = fm_get_le64(p + 16);
		m->u.batch.batch_id = fm_get_le64(p + 24);
		m->u.batch.first = fm_get_le64(p + 32);
		m->u.batch.last = fm_get_le64(p + 40);
		m->u.batch.status = fm_get_le32(p + 48);
		m->u.batch.wait_ms = fm_get_le32(p + 52);
		m->u.batch.rate = fm_get_le16(p + 56);
		break;
	case FM_MSG_SPLIT_QUERY:
	case FM_MSG_SPLIT_ANSWER:
		/* the same head; SPLIT_ANSWER's bits follow it */
		if (fm_get_le16(p + 34) || fm_get_le32(p + 36))
			return reserved_err(tn);
		m->u.query.map_id = fm_get_le64(p);
		m->u.query.generation = fm_get_le64(p + 8);
		m->u.query.query_id = fm_get_le64(p + 16);
		m->u.query.first = fm_get_le64(p + 24);
		m->u.query.count = fm_get_le16(p + 32);
		if (m->type == FM_MSG_SPLIT_ANSWER)
			for (unsigned i = 0; i < FM_WIRE_QUERY_MAX / 64; i++)
				m->u.answer.bits[i] = fm_get_le64(p + SZ_QUERY + 8 * i);
		break;
	case FM_MSG_CHANGE_REPORT:
		if (fm_get_le16(p + 18) || fm_get_le32(p + 20))
			return reserved_err(tn);
		m->u.report.map_id = fm_get_le64(p);
		m->u.report.generation = fm_get_le64(p + 8);
		m->u.report.range_count = (uint16_t)count;
		dec_ranges(p + SZ_REPORT_FIXED, m->u.report.ranges,
			   count < FM_WIRE_REPORT_MAX_RANGES ? count : FM_WIRE_REPORT_MAX_RANGES);
		break;
	}
	return 0;

bad_size:
	return fm_err(-EBADMSG, "%s: payload %zu bytes, want %zu", tn, n, want);
}

int fm_wire_decode(const void *buf, size_t len, struct fm_msg *m)
{
	const uint8_t *b = buf;
	uint32_t magic, length, crc;
	uint8_t hdr[FM_WIRE_HDR_SIZE];
	int rc;

	if (!buf || !m)
		return fm_err(-EINVAL, "wire decode: NULL argument");
	/* 1. */
	if (len < FM_WIRE_HDR_SIZE)
		return fm_err(-ENODATA, "wire decode: %zu bytes, header needs %u",
			      len, FM_WIRE_HDR_SIZE);
	/* 2. */
	magic = fm_get_le32(b + OFF_MAGIC);
	if (magic != FM_WIRE_MAGIC)
		return fm_err(-EPROTO, "wire decode: magic 0x%08x", magic);
	/* 3. */
	if (b[OFF_MAJOR] != FM_WIRE_MAJOR)
		return fm_err(-EPROTONOSUPPORT, "wire decode: version %u.%u, speak %u.x",
			      b[OFF_MAJOR], b[OFF_MINOR], FM_WIRE_MAJOR);
	/* 4. */
	length = fm_get_le32(b + OFF_LENGTH);
	if (length != len || length > FM_WIRE_MAX_MSG)
		return fm_err(-EMSGSIZE, "wire decode: length field %u, datagram %zu",
			      length, len);
	/* 5. the CRC covers the header with the crc field zeroed */
	memcpy(hdr, b, FM_WIRE_HDR_SIZE);
	fm_put_le32(hdr + OFF_CRC, 0);
	crc = fm_crc32c_update(0, hdr, FM_WIRE_HDR_SIZE);
	crc = fm_crc32c_update(crc, b + FM_WIRE_HDR_SIZE, len - FM_WIRE_HDR_SIZE);
	if (crc != fm_get_le32(b + OFF_CRC))
		return fm_err(-EILSEQ, "wire decode: checksum 0x%08x, computed 0x%08x",
			      fm_get_le32(b + OFF_CRC), crc);
	/* 6. */
	if (fm_get_le16(b + OFF_RSV0) || fm_get_le32(b + OFF_RSV1))
		return reserved_err("header");
	/* 7. */
	m->flags = fm_get_le16(b + OFF_FLAGS);
	if (m->flags & ~FM_WIRE_FLAGS_KNOWN)
		return fm_err(-EOPNOTSUPP, "wire decode: unknown flags 0x%x", m->flags);
	/* 8. */
	m->type = fm_get_le16(b + OFF_TYPE);
	if (fm_wire_payload_size(m->type) < 0)
		return fm_err(-ENOMSG, "wire decode: unknown type %u", m->type);
	m->ver_major = b[OFF_MAJOR];
	m->ver_minor = b[OFF_MINOR];
	m->session = fm_get_le64(b + OFF_SESSION);
	m->seq = fm_get_le64(b + OFF_SEQ);
	/* 9., 10. */
	rc = dec_payload(b + FM_WIRE_HDR_SIZE, len - FM_WIRE_HDR_SIZE, m);
	if (rc)
		return rc;
	/* 11. */
	return check_fields(m);
}

/* ---- join authentication ---- */

void fm_wire_auth_mac(const void *key, size_t key_len, uint32_t client_id,
		      const uint8_t client_nonce[FM_WIRE_NONCE_SIZE],
		      const uint8_t owner_nonce[FM_WIRE_NONCE_SIZE],
		      uint64_t session, uint8_t mac[FM_WIRE_MAC_SIZE])
{
	static const char label[] = "flashmeta-auth-v1";
	uint8_t msg[sizeof(label) - 1 + 4 + 2 * FM_WIRE_NONCE_SIZE + 8];
	uint8_t *p = msg;

	memcpy(p, label, sizeof(label) - 1);
	p += sizeof(label) - 1;
	fm_put_le32(p, client_id);
	p += 4;
	memcpy(p, client_nonce, FM_WIRE_NONCE_SIZE);
	p += FM_WIRE_NONCE_SIZE;
	memcpy(p, owner_nonce, FM_WIRE_NONCE_SIZE);
	p += FM_WIRE_NONCE_SIZE;
	fm_put_le64(p, session);
	fm_hmac_sha256(key, key_len, msg, sizeof(msg), mac);
}

bool fm_wire_mac_equal(const uint8_t *a, const uint8_t *b, size_t len)
{
	uint8_t acc = 0;

	for (size_t i = 0; i < len; i++)
		acc |= a[i] ^ b[i];
	return acc == 0;
}
