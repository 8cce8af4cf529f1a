/* wire.h -- flashmeta's message format between owner and clients.
 *
 * Every message is one datagram (an RDMA SEND or one shared-memory ring
 * record): a 40-byte header followed by a payload whose size is fixed per
 * type (WELCOME, SPLIT_COMMIT and CHANGE_REPORT carry a counted array).
 *
 * Versions: a different major is refused (step 3).  A minor adds what an
 * older peer of the same major would refuse, so it is sent only to a peer
 * that announced that minor (HELLO.ver_minor to the owner; the WELCOME
 * header's minor to the client):
 *   2.0  the base
 *   2.1  COPY_CLAIM / COPY_BATCH (background copy, flashmeta/copy.h) and
 *        RELEASE_REQUEST reason COPIED
 *   2.2  SPLIT_QUERY / SPLIT_ANSWER (split bits by message: the
 *        lock-manager baseline of the benchmarks, see SPLIT_QUERY below)
 *   2.3  the map descriptor's flags byte (FM_MAPDESC_REVERSED: a restored
 *        mapping).  An older client refuses a descriptor with it set as
 *        malformed (reserved byte) -- it does no I/O in the wrong
 *        direction -- so the owner sends it whatever the minor.
 *   2.4  CHANGE_REPORT (incremental refresh: the grains a client wrote).
 *        A 2.4 client sends it only to a 2.4 owner.  A client below 2.4
 *        never reports: the owner counts every mapping such a session was
 *        granted as possibly written and marks it changed-unknown when
 *        the session releases it or ends (the next refresh recopies
 *        everything; flashmeta/pmem_store.h fm_store_changed_unknown).
 * All integers are little-endian; nothing is ever cast from a received buffer -- every field
 * is read by fm_wire_decode() and written by fm_wire_encode().
 *
 * Header layout (byte offsets):
 *
 *    0  le32 magic      FM_WIRE_MAGIC ("FMW1" in memory order)
 *    4  u8   major      FM_WIRE_MAJOR: a different major is refused
 *    5  u8   minor      FM_WIRE_MINOR: any value accepted (see "Versions")
 *    6  le16 type       enum fm_msg_type
 *    8  le32 length     header + payload bytes == the datagram size
 *   12  le16 flags      incompat bits; none defined: any set bit is refused
 *   14  le16 reserved0  must be zero
 *   16  le64 session    0 until the owner assigns one (CHALLENGE onwards)
 *   24  le64 seq        per session and direction: 1, 2, 3, ...
 *   32  le32 crc        CRC32C of header+payload with this field zeroed
 *   36  le32 reserved1  must be zero
 *
 * Why a checksum when RDMA RC already has an ICRC: the ICRC covers the
 * packet on the wire only.  The shared-memory transport has none, and the
 * ICRC says nothing about a driver that posts the wrong buffer or a length
 * that was miscomputed.  CRC32C (Castagnoli, as in iSCSI and ext4) is cheap
 * for messages of at most 4 KiB and has hardware support where we run.  It
 * is an integrity check, not authentication: the session is authenticated
 * once with HMAC-SHA-256 at join (see AUTH) and the connection is trusted
 * from then on.
 *
 * fm_wire_decode() validates in this fixed order, one errno per failure
 * (fm_wire_errname() names them):
 *
 *   1. buffer shorter than the header            -ENODATA   "short"
 *   2. magic                                     -EPROTO    "bad-magic"
 *   3. major version                             -EPROTONOSUPPORT "bad-version"
 *   4. length != buffer size, or > FM_WIRE_MAX_MSG  -EMSGSIZE "bad-length"
 *   5. checksum                                  -EILSEQ    "bad-checksum"
 *   6. header reserved fields not zero           -ENOTEMPTY "reserved-nonzero"
 *   7. unknown flag bits                         -EOPNOTSUPP "unknown-flags"
 *   8. unknown type                              -ENOMSG    "unknown-type"
 *   9. payload size wrong for the type           -EBADMSG   "bad-payload-size"
 *  10. payload reserved fields not zero          -ENOTEMPTY "reserved-nonzero"
 *  11. payload field out of range                -ERANGE    "out-of-range"
 *
 * fm_wire_encode() applies steps 8-11 to what it is given, so we never send
 * a message we would refuse.
 */
#ifndef FLASHMETA_WIRE_H
#define FLASHMETA_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "flashmeta/digest.h"
#include "flashmeta/geometry.h"
#include "flashmeta/region.h"

#define FM_WIRE_MAGIC 0x31574d46u /* 'F' 'M' 'W' '1' */
#define FM_WIRE_MAJOR 2u /* 2: HELLO vouches for the previous session,
			   * WELCOME carries the owner incarnation, BYE flags */
#define FM_WIRE_MINOR 4u /* 1: background copy, 2: split queries, 3: map
			   * descriptor flags, 4: change reports (see
			   * "Versions" above) */
#define FM_WIRE_HDR_SIZE 40u
#define FM_WIRE_MAX_MSG 4096u      /* one receive buffer */
#define FM_WIRE_NONCE_SIZE 16u
#define FM_WIRE_MAC_SIZE 32u       /* HMAC-SHA-256 */
#define FM_WIRE_MAX_MAPS 32u       /* descriptors per WELCOME */
#define FM_WIRE_MAX_RANGES 64u     /* grain ranges per SPLIT_COMMIT */
#define FM_WIRE_QUERY_MAX 512u     /* grains per SPLIT_QUERY (a fetch window) */
#define FM_WIRE_REPORT_MAX_RANGES 128u /* grain ranges per CHANGE_REPORT */
#define FM_WIRE_CLIENT_ID_MAX 0xffffu /* 16 bits: it lives in the lock word */
#define FM_WIRE_FLAGS_KNOWN 0u     /* no flag bits defined in 1.0 */

#define FM_WIRE_MAPDESC_SIZE 80u

enum fm_msg_type {
	FM_MSG_HELLO = 1,           /* client -> owner: who I am, my nonce */
	FM_MSG_CHALLENGE = 2,       /* owner -> client: the owner's nonce */
	FM_MSG_AUTH = 3,            /* client -> owner: MAC over both nonces */
	FM_MSG_WELCOME = 4,         /* owner -> client: session, lease, mappings */
	FM_MSG_LEASE_RENEW = 5,     /* client -> owner: extend my lease */
	FM_MSG_LEASE_GRANT = 6,     /* owner -> client: extended (echoes renew id) */
	FM_MSG_LOCK_REQUEST = 7,    /* client -> owner: grain lock contended, queue me */
	FM_MSG_LOCK_GRANT = 8,      /* owner -> client: the lock word is now yours */
	FM_MSG_UNLOCK = 9,          /* client -> owner: I released a lock with waiters */
	FM_MSG_RELEASE_REQUEST = 10,/* owner -> client: give up confirmations of a map */
	FM_MSG_RELEASED = 11,       /* client -> owner: done, nothing cached, I/O drained */
	FM_MSG_MAP_GRANT = 12,      /* owner -> client: confirmation lease on a map */
	FM_MSG_SPLIT_COMMIT = 13,   /* client -> owner: these grains are copied (durably) */
	FM_MSG_SPLIT_ACK = 14,      /* owner -> client: ... and recorded durably */
	FM_MSG_ERROR = 15,          /* either way: a request was refused, session lives */
	FM_MSG_BYE = 16,            /* either way: session closes, with a reason */
	FM_MSG_COPY_CLAIM = 17,     /* client -> owner: a batch of grains to copy,
				     * please (2.1) */
	FM_MSG_COPY_BATCH = 18,     /* owner -> client: ... here it is, or why not */
	FM_MSG_SPLIT_QUERY = 19,    /* client -> owner: which of these grains are
				     * split? (2.2) */
	FM_MSG_SPLIT_ANSWER = 20,   /* owner -> client: ... these, in the published
				     * bitmap (2.2) */
	FM_MSG_CHANGE_REPORT = 21,  /* client -> owner: grains I wrote in this
				     * generation (2.4) */
	FM_MSG_TYPE_END
};

/* Why a mapping's confirmations are withdrawn (RELEASE_REQUEST.reason). */
enum fm_release_reason {
	FM_RELEASE_RESTART = 0, /* new generation: the copy was (re)started */
	FM_RELEASE_STOP = 1,    /* mapping stopping/stopped */
	FM_RELEASE_REMOVE = 2,  /* mapping deleted */
	FM_RELEASE_ADMIN = 3,   /* operator asked */
	FM_RELEASE_COPIED = 4,  /* every grain split: the copy is complete and
				 * the mapping goes to idle_or_copied (2.1) */
	FM_RELEASE_REASON_COUNT
};

/* Why a session ends (BYE.reason). */
enum fm_bye_reason {
	FM_BYE_NORMAL = 0,         /* orderly goodbye */
	FM_BYE_UNKNOWN_CLIENT = 1, /* client id not configured */
	FM_BYE_AUTH_FAILED = 2,    /* MAC did not verify */
	FM_BYE_MALFORMED = 3,      /* a message failed fm_wire_decode */
	FM_BYE_PROTOCOL = 4,       /* valid message, wrong state or sequence */
	FM_BYE_LEASE_EXPIRED = 5,  /* the lease ran out */
	FM_BYE_SUPERSEDED = 6,     /* the same client joined again */
	FM_BYE_SHUTDOWN = 7,       /* peer is going away */
	FM_BYE_REASON_COUNT
};

/* SPLIT_ACK.status */
enum fm_split_status {
	FM_SPLIT_OK = 0,        /* durable in the owner's bitmap */
	FM_SPLIT_STALE = 1,     /* generation no longer current: not recorded */
	FM_SPLIT_FAILED = 2,    /* the store failed; not recorded */
	FM_SPLIT_STATUS_COUNT
};

/*
 * One mapping as a client sees it.  Split bitmap: bit g is bit (g % 64) of
 * little-endian 64-bit word g / 64 (i.e. byte g / 8, bit g % 8).  Lock
 * table: one 8-byte lock word per 2^lock_shift grains (lock_shift 0 = one
 * per grain), word i at byte offset 8 * i.
 */
struct fm_wire_mapdesc {
	uint64_t map_id;
	uint64_t generation;
	uint64_t grain_count;  /* > 0 */
	uint8_t grain_shift;   /* FM_GRAIN_SHIFT_MIN..MAX (12..30) */
	uint8_t state;         /* enum fm_map_state */
	uint8_t lock_shift;    /* 0..32 */
	uint8_t flags;         /* FM_MAPDESC_* (2.2; zero before) */
	struct fm_region_desc bitmap; /* flags == FM_ACCESS_REMOTE_READ, len >= bitmap bytes */
	struct fm_region_desc locks;  /* flags == FM_ACCESS_REMOTE_ATOMIC, len >= 8 * words;
				       * or all zero: no lock table yet (the owner's
				       * restart grace, lease.h R6) -- a later
				       * MAP_GRANT of the same generation adds it */
};

/* fm_wire_mapdesc.flags.  REVERSED: the mapping was restored (an odd
 * number of times): it copies the volume a client attached as its target
 * (fm_engine_attach) to the one attached as its source, so the engine
 * swaps them, and the ops it is asked for, while it is set. */
#define FM_MAPDESC_REVERSED 0x1u
#define FM_MAPDESC_FLAGS_KNOWN FM_MAPDESC_REVERSED

/* HELLO.prev_flags */
#define FM_HELLO_PREV_QUIESCED 0x1u /* prev_session's I/O is over (see BYE) */
#define FM_HELLO_PREV_KNOWN FM_HELLO_PREV_QUIESCED

/*
 * HELLO, 40 bytes: le32 client_id, u8 ver_major, u8 ver_minor, le16 0,
 * nonce[16], le64 prev_session, le32 prev_flags, le32 0.
 * prev_session/prev_flags: the client's previous session with this owner
 * (0 if none) and, with FM_HELLO_PREV_QUIESCED, its promise that none of
 * that session's I/O is in flight or can start -- the quiescence a BYE
 * with FM_BYE_F_QUIESCED would have carried had the old connection still
 * worked.  The owner believes it only once AUTH proves the key.
 */
struct fm_msg_hello {
	uint32_t client_id; /* 1..FM_WIRE_CLIENT_ID_MAX */
	uint8_t ver_major;
	uint8_t ver_minor;
	uint8_t nonce[FM_WIRE_NONCE_SIZE];
	uint64_t prev_session;
	uint32_t prev_flags; /* FM_HELLO_PREV_* */
};

struct fm_msg_challenge {
	uint8_t nonce[FM_WIRE_NONCE_SIZE];
};

struct fm_msg_auth {
	uint8_t mac[FM_WIRE_MAC_SIZE]; /* fm_wire_auth_mac() */
};

struct fm_msg_welcome {
	uint64_t session_id;     /* equals the header's session */
	uint32_t client_epoch;   /* > 0: goes into this session's lock words */
	uint32_t lease_term_ms;  /* > 0 */
	uint16_t map_count;      /* 0..FM_WIRE_MAX_MAPS */
	uint64_t incarnation;    /* > 0: the owner's; with client_epoch it makes
				  * this session's fencing token */
	struct fm_wire_mapdesc maps[FM_WIRE_MAX_MAPS];
};

struct fm_msg_lease_renew {
	uint64_t renew_id;
};

struct fm_msg_lease_grant {
	uint64_t renew_id;       /* echoes LEASE_RENEW.renew_id */
	uint32_t lease_term_ms;  /* > 0, counted from the client's send time */
};

/* LOCK_REQUEST, LOCK_GRANT, UNLOCK */
struct fm_msg_lock {
	uint64_t map_id;
	uint64_t generation;
	uint64_t first;  /* grain range covered by one lock word; first <= last */
	uint64_t last;
	uint64_t word;   /* REQUEST: value the failed CAS saw; GRANT: the value
			  * installed for the grantee; UNLOCK: value released */
};

struct fm_msg_release_request {
	uint64_t map_id;
	uint64_t generation;
	uint32_t reason; /* enum fm_release_reason */
};

struct fm_msg_released {
	uint64_t map_id;
	uint64_t generation;
};

struct fm_msg_map_grant {
	struct fm_wire_mapdesc map;
};

struct fm_msg_split_commit {
	uint64_t map_id;
	uint64_t generation;
	uint64_t commit_id;
	uint16_t range_count; /* 1..FM_WIRE_MAX_RANGES */
	struct fm_grain_range ranges[FM_WIRE_MAX_RANGES];
};

struct fm_msg_split_ack {
	uint64_t map_id;
	uint64_t generation;
	uint64_t commit_id;
	uint32_t status; /* enum fm_split_status */
};

struct fm_msg_error {
	uint64_t ref_seq; /* sequence number of the refused message */
	uint32_t code;    /* positive errno */
};

/* BYE.flags */
#define FM_BYE_F_QUIESCED 0x1u /* client: no I/O of this session is in
				* flight and none can start (its cache is
				* discarded, every data step ended) */
#define FM_BYE_F_KNOWN FM_BYE_F_QUIESCED

/* BYE, 16 bytes: le32 reason, le32 code, le32 flags, le32 0. */
struct fm_msg_bye {
	uint32_t reason; /* enum fm_bye_reason */
	uint32_t code;   /* positive errno, 0 if none */
	uint32_t flags;  /* FM_BYE_F_* */
};

/*
 * COPY_CLAIM, 48 bytes: le64 map_id, le64 generation, le64 claim_id,
 * le64 done_batch, le64 done_next, le32 max_grains, le32 0.
 * A copier's request for its next batch of map_id (flashmeta/copy.h).  It
 * also ends the claimant's previous batch of the map, done_batch (0: it
 * has none): grains from done_next to that batch's last were not copied
 * and go back to the pool.  max_grains 0: no new batch (a copier that
 * stops).
 */
struct fm_msg_copy_claim {
	uint64_t map_id;
	uint64_t generation; /* the generation the claimant copies */
	uint64_t claim_id;   /* echoed by COPY_BATCH */
	uint64_t done_batch; /* the batch this claim ends, 0: none */
	uint64_t done_next;  /* its first grain not copied; 0 without done_batch */
	uint32_t max_grains; /* 0..FM_COPY_BATCH_MAX */
};

/*
 * COPY_BATCH, 64 bytes: le64 map_id, le64 generation, le64 claim_id,
 * le64 batch_id, le64 first, le64 last, le32 status, le32 wait_ms,
 * le16 rate, le16 0, le32 0.
 * The answer to one COPY_CLAIM: with OK the grains [first, last], unsplit
 * in the owner's bitmap when handed out, are the claimant's batch
 * batch_id; otherwise batch_id, first and last are 0.  rate: the
 * mapping's copy rate (the copier's pace).
 */
struct fm_msg_copy_batch {
	uint64_t map_id;
	uint64_t generation; /* the mapping's current generation */
	uint64_t claim_id;
	uint64_t batch_id;   /* > 0 with OK */
	uint64_t first, last;
	uint32_t status;     /* enum fm_copy_status */
	uint32_t wait_ms;    /* WAIT: claim again after this; 0 otherwise */
	uint16_t rate;       /* 0..FM_COPY_RATE_MAX */
};

/*
 * SPLIT_QUERY, 40 bytes: le64 map_id, le64 generation, le64 query_id,
 * le64 first, le16 count, le16 0, le32 0.
 * "Which of grains [first, first + count - 1] are split?"  count is
 * 1..FM_WIRE_QUERY_MAX and the range must not wrap (step 11).  The
 * decision-by-message baseline (agent.h, fm_agent_cfg.decide_by_message):
 * what a lock manager such as LDLM or a DLM does for every decision, where
 * flashmeta's clients READ the bitmap one-sided and cache what is split.
 * The owner answers from its published bitmap, or refuses with an ERROR
 * (ref_seq = the query's seq): -ENOENT map not served, -EAGAIN map being
 * released, -ERANGE beyond the map, -ESTALE another generation, -EBUSY too
 * many of the session's queries in flight -- checked in that order
 * (owner/query.c; -ESTALE or -EIO also when its READ of the bitmap came
 * back too late or failed).  It changes nothing at the owner; the restart
 * grace does not refuse it.
 */
struct fm_msg_split_query {
	uint64_t map_id;
	uint64_t generation; /* the generation the client decides for */
	uint64_t query_id;   /* echoed by SPLIT_ANSWER */
	uint64_t first;
	uint16_t count;      /* 1..FM_WIRE_QUERY_MAX */
};

/*
 * SPLIT_ANSWER, 104 bytes: le64 map_id, le64 generation, le64 query_id,
 * le64 first, le16 count, le16 0, le32 0, le64 bits[8].
 * The answer to one SPLIT_QUERY (same map, generation, query id, first,
 * count): bit i (bit i % 64 of word i / 64) says grain first + i was split
 * in the owner's published bitmap -- durable -- when the owner looked.
 * Bits at count and beyond are zero (step 11).  It is a statement about
 * one moment, exactly like a one-sided READ of the bitmap: a set bit
 * stays set within the generation, a clear bit may be set a moment later.
 */
struct fm_msg_split_answer {
	uint64_t map_id;
	uint64_t generation;
	uint64_t query_id;
	uint64_t first;
	uint16_t count;      /* 1..FM_WIRE_QUERY_MAX */
	uint64_t bits[FM_WIRE_QUERY_MAX / 64];
};

/*
 * CHANGE_REPORT, 24 + 16 * range_count bytes: le64 map_id, le64
 * generation, le16 range_count, le16 0, le32 0, then range_count times
 * (le64 first, le64 last).
 * Grains of map_id this session wrote (either volume, any path but the
 * background copy) in `generation` since its last report of that map.
 * Sent right before RELEASED (and before a BYE with FM_BYE_F_QUIESCED),
 * when every I/O of the map has drained, so the reports before a RELEASED
 * are the complete set; as many messages as the set needs.  The ranges
 * are closed, ascending and disjoint: ranges[i].first > ranges[i-1].last
 * (step 11).  A report may cover more grains than were written (the
 * client may coarsen a set too large to send: one more grain recopied),
 * never fewer.  No answer: the owner persists it and counts the RELEASED
 * behind it only once it is durable; a report it refuses (map not served
 * to this session, grains beyond the map) gets an ERROR (ref_seq the
 * report's seq; -ENOENT, -ERANGE) and changes nothing.  One of an older
 * generation is ignored (the changed set it belongs to is gone).
 */
struct fm_msg_change_report {
	uint64_t map_id;
	uint64_t generation;
	uint16_t range_count; /* 1..FM_WIRE_REPORT_MAX_RANGES */
	struct fm_grain_range ranges[FM_WIRE_REPORT_MAX_RANGES];
};

struct fm_msg {
	uint16_t type;      /* enum fm_msg_type */
	uint16_t flags;     /* 0 */
	uint8_t ver_major;  /* filled by decode; encode always writes ours */
	uint8_t ver_minor;
	uint64_t session;
	uint64_t seq;
	union {
		struct fm_msg_hello hello;
		struct fm_msg_challenge challenge;
		struct fm_msg_auth auth;
		struct fm_msg_welcome welcome;
		struct fm_msg_lease_renew renew;
		struct fm_msg_lease_grant lease;
		struct fm_msg_lock lock; /* LOCK_REQUEST, LOCK_GRANT, UNLOCK */
		struct fm_msg_release_request release;
		struct fm_msg_released released;
		struct fm_msg_map_grant map_grant;
		struct fm_msg_split_commit commit;
		struct fm_msg_split_ack ack;
		struct fm_msg_error error;
		struct fm_msg_bye bye;
		struct fm_msg_copy_claim claim;
		struct fm_msg_copy_batch batch;
		struct fm_msg_split_query query;
		struct fm_msg_split_answer answer;
		struct fm_msg_change_report report;
	} u;
};

/*
 * fm_wire_msg_init -- a message of `type` with its header fields and every
 * fixed-size payload field zeroed (WELCOME's descriptors and SPLIT_COMMIT's
 * and CHANGE_REPORT's ranges are not touched: set the count and fill them).
 * Build every message with it, so a field added later is never sent as
 * stack garbage.  Pure.
 */
void fm_wire_msg_init(struct fm_msg *m, uint16_t type);

/*
 * fm_wire_encode -- write `m` to `buf` (the header's length and checksum
 * are computed here).  Returns the message size (> 0), or -EINVAL (NULL
 * argument), -ENOBUFS (cap too small), -ENOMSG, -EOPNOTSUPP, -ERANGE (a
 * field or count out of range).  Pure, never blocks.
 */
int fm_wire_encode(const struct fm_msg *m, void *buf, size_t cap);

/*
 * fm_wire_decode -- parse and validate one datagram into `m`.  Returns 0 or
 * one of the errnos listed at the top of this file (with a message naming
 * the field).  `m` is undefined after a failure.  Pure, never blocks.
 */
int fm_wire_decode(const void *buf, size_t len, struct fm_msg *m);

/* Size the payload of a fixed-size type has, or -ENOMSG.  WELCOME,
 * SPLIT_COMMIT and CHANGE_REPORT return their fixed part. */
int fm_wire_payload_size(uint16_t type);

/* "hello", "lock-request" ...; "?" for unknown values. */
const char *fm_msg_type_name(uint16_t type);
/* Short name of a decode/encode errno ("bad-magic"); "?" otherwise. */
const char *fm_wire_errname(int err);
const char *fm_bye_reason_name(uint32_t reason);

/* Checksums and the join MAC: flashmeta/digest.h. */

/*
 * fm_wire_auth_mac -- the AUTH response: HMAC-SHA-256(key,
 * "flashmeta-auth-v1" || le32 client_id || client nonce || owner nonce ||
 * le64 session).  The key never crosses the wire.
 */
void fm_wire_auth_mac(const void *key, size_t key_len, uint32_t client_id,
		      const uint8_t client_nonce[FM_WIRE_NONCE_SIZE],
		      const uint8_t owner_nonce[FM_WIRE_NONCE_SIZE],
		      uint64_t session, uint8_t mac[FM_WIRE_MAC_SIZE]);

/* Constant-time comparison: true when equal. */
bool fm_wire_mac_equal(const uint8_t *a, const uint8_t *b, size_t len);

#endif /* FLASHMETA_WIRE_H */
