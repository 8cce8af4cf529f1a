/* client_priv.h -- the client state machine's shared internals.
 *
 * Split by job, one file each:
 *   client.c   the object, public entry points, dispatch, accessors
 *   session.c  handshake, lease, close -> quiesce -> closed (lease.h R1-R3),
 *              the step check (R2)
 *   maps.c     confirmation grants, release requests (drain), I/O brackets
 *   locks.c    grain locks: CAS, LOCK_REQUEST, commit, release
 *   fetch.c    cache misses: READ the bitmap window, insert its set bits
 *   copy.c     background copy claims (COPY_CLAIM -> COPY_BATCH)
 *   query.c    split queries (SPLIT_QUERY -> SPLIT_ANSWER, wire 2.2)
 *   written.c  grains written since the last CHANGE_REPORT (wire 2.4)
 * One protocol thread calls everything except the "any thread" calls of
 * proto_client.h (io_begin, io_end, step_check, token), which touch only
 * the atomics marked below.  Internal cross-file functions: cl_ prefix.
 */
#ifndef FM_CLIENT_PRIV_H
#define FM_CLIENT_PRIV_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../proto/actq.h"
#include "../proto/optab.h"
#include "flashmeta/proto_client.h"
#include "flashmeta/proto_owner.h" /* FM_OWNER_MAX_MAPS */

#define CL_MAX_MAPS FM_OWNER_MAX_MAPS

enum cmap_state {
	CM_NONE = 0,     /* no confirmation lease */
	CM_GRANTED = 1,  /* lease held: fetch and trust hits */
	CM_DRAINING = 2, /* RELEASE_REQUEST: waiting for in-flight I/O */
	CM_RELEASED = 3, /* discarded and answered RELEASED */
};

/*
 * Slot identity (`id`, `present`) is published once and never reused, so
 * I/O threads find a slot without a lock.  `usable` and the open brackets
 * form a Dekker pair (both sides seq_cst):
 *   io_begin:  count++ ; if (!usable) { count--; EAGAIN }
 *   release:   usable = false ; ... wait until no bracket is counted
 * either the I/O sees usable == false, or the release sees its increment.
 * A bracket is counted in its thread's reader cell (readers.c: a cache
 * line only that thread writes, so hits of several threads share no
 * written line) or, without a reader, in the slot's `inflight`.
 */
#define CMAP_DWORDS 11 /* the descriptor as words, for the seqlock */

struct cmap {
	_Atomic uint64_t id;      /* written once before `present` */
	atomic_bool present;
	atomic_bool usable;       /* hits may be trusted by new I/O */
	_Atomic uint64_t inflight; /* brackets opened without a reader cell */
	enum cmap_state state;    /* protocol thread */
	struct fm_wire_mapdesc d; /* protocol thread */
	uint64_t release_gen;
	/* d for any thread (fm_client_map): a seqlock of atomic words --
	 * odd dseq while the protocol thread rewrites dw[] */
	_Atomic uint32_t dseq;
	_Atomic uint64_t dw[CMAP_DWORDS];
	/* written.c: grains written since the last report (its design) */
	uint64_t *_Atomic wbits;
	uint64_t *_Atomic wsum;
	_Atomic uint64_t wgrains;  /* bits in wbits */
	_Atomic uint64_t wgen;     /* the generation they are of */
};

enum clock_state {
	CL_CAS = 0,     /* acquire CAS in flight */
	CL_WAIT = 1,    /* LOCK_REQUEST sent, waiting for LOCK_GRANT */
	CL_CHECK = 2,   /* held; re-reading the bitmap word */
	CL_HELD = 3,    /* held; engine copies */
	CL_COMMIT = 4,  /* SPLIT_COMMIT sent */
	CL_RELEASE = 5, /* release CAS in flight */
};

struct clock {
	struct clock *next;
	unsigned slot;
	uint64_t index, grain;
	uint64_t mine;       /* our HELD word */
	uint64_t cur;        /* what the word holds now for us (maybe |WAITERS) */
	enum clock_state state;
	uint64_t cookie;     /* lock, then commit cookie */
	uint64_t commit_id;
	uint64_t commit_grain;
	uint64_t epoch;
	bool epoch_ok;
	uint64_t req_seq;    /* seq of our LOCK_REQUEST / SPLIT_COMMIT: an
			      * ERROR with this ref_seq refuses it */
	bool handover;       /* fm_client_lock_wait: on LOCK_GRANT the word is
			      * the engine's -- note it and forget it */
};

/*
 * A request that waits for its answer or for an ERROR naming it: the first
 * member `pend` of struct ccommit, cclaim and cquery, each kind on its own
 * list (c->commits, c->claims, c->queries), newest first.  An answer names
 * its request by the request's own id (commit_id, claim_id, query_id):
 * cl_pend_take() with a match on it; an ERROR names it by the seq it went
 * out with: cl_pend_take_seq().  Protocol thread only, as the lists; a
 * find is one walk of one list, no allocation.
 */
struct cpend {
	struct cpend *next;
	uint64_t req_seq;    /* its seq: an ERROR with this ref_seq refuses it */
};

#define cl_pend_entry(p, type) ((type *)(void *)((char *)(p) - offsetof(type, pend)))

typedef bool (*cl_pend_match_fn)(const struct cpend *p, const void *arg);

/* p, just sent with seq `seq` (c->tx_seq), waits on *list */
static inline void cl_pend_push(struct cpend **list, struct cpend *p, uint64_t seq)
{
	p->req_seq = seq;
	p->next = *list;
	*list = p;
}

/* unlink and return the newest request match() accepts, or NULL */
static inline struct cpend *cl_pend_take(struct cpend **list, cl_pend_match_fn match,
					 const void *arg)
{
	for (struct cpend **pp = list; *pp; pp = &(*pp)->next) {
		struct cpend *p = *pp;

		if (match(p, arg)) {
			*pp = p->next;
			return p;
		}
	}
	return NULL;
}

static inline bool cl_pend_seq_is(const struct cpend *p, const void *seq)
{
	return p->req_seq == *(const uint64_t *)seq;
}

/* unlink and return the request an ERROR with ref_seq `seq` refuses, or NULL */
static inline struct cpend *cl_pend_take_seq(struct cpend **list, uint64_t seq)
{
	return cl_pend_take(list, cl_pend_seq_is, &seq);
}

/* unlink and return the newest request (to fail or free them all), or NULL */
static inline struct cpend *cl_pend_pop(struct cpend **list)
{
	struct cpend *p = *list;

	if (p)
		*list = p->next;
	return p;
}

/* An engine's range commit (fm_client_commit_range): no lock kept here. */
struct ccommit {
	struct cpend pend;   /* on c->commits until its SPLIT_ACK or ERROR */
	unsigned slot;
	uint64_t first, last;
	uint64_t commit_id, cookie;
	uint64_t epoch;      /* fill token at commit time */
	bool epoch_ok;
};

/* A COPY_CLAIM waiting for its COPY_BATCH (copy.c). */
struct cclaim {
	struct cpend pend;   /* on c->claims until its COPY_BATCH or ERROR */
	uint64_t map_id, claim_id, cookie;
};

/* A SPLIT_QUERY waiting for its answer (query.c). */
struct cquery {
	struct cpend pend;   /* on c->queries until its SPLIT_ANSWER or ERROR */
	uint64_t map_id, generation, first, query_id, cookie;
	uint16_t count;
};

enum cop_kind { CO_FETCH = 1, CO_LOCK_CAS, CO_CHECK, CO_UNLOCK_CAS };

struct cop {
	uint64_t id;        /* in fm_client.ops */
	enum cop_kind kind;
	unsigned slot;
	uint64_t grain, cookie;
	uint64_t epoch;
	bool epoch_ok;
	uint64_t w0;        /* CO_FETCH: first grain of the window */
	uint64_t nbits;
	struct clock *lk;
};

#define RENEW_RING 8

/* readers.c: one engine thread's bracket counts, a cache line of its own.
 * Cell word: (map slot + 1) << 32 | open brackets; 0 = unused. */
#define CL_READER_CELLS 8
#define CL_MAX_READERS 512
struct fm_client_reader {
	_Alignas(64) _Atomic uint64_t cell[CL_READER_CELLS];
};

struct fm_client {
	struct fm_client_cfg cfg;
	uint8_t key[64];
	struct fm_actq q;
	_Atomic int state;             /* enum fm_client_state; any thread reads */
	uint64_t session;
	uint64_t tx_seq, rx_seq;
	uint8_t nonce[FM_WIRE_NONCE_SIZE];
	uint32_t epoch;
	_Atomic uint32_t term_ms;
	uint32_t margin_ms;
	_Atomic uint64_t lease_expiry; /* client clock; any thread reads */
	_Atomic uint64_t token;        /* incarnation << 32 | epoch */
	uint64_t handshake_deadline;
	uint64_t auth_sent_at;
	uint64_t next_renew;
	uint64_t renew_id;
	struct { uint64_t id, sent_at; } renews[RENEW_RING];
	/* closing (R3) */
	bool link_ok;        /* QUIESCING: BYE{QUIESCED} can still be sent */
	uint32_t close_reason;
	int close_err;
	uint64_t prev_session; /* vouch for it in the next HELLO ... */
	bool prev_vouch;       /* ... when it quiesced unreported */
	struct cmap maps[CL_MAX_MAPS];
	_Atomic unsigned nmaps; /* slots [0, nmaps) may be present */
	struct clock *locks;
	struct cpend *commits;   /* ccommit: engines' range commits awaiting SPLIT_ACK */
	struct cpend *claims;    /* cclaim: COPY_CLAIMs awaiting COPY_BATCH */
	uint64_t next_claim;
	struct cpend *queries;   /* cquery: SPLIT_QUERYs awaiting SPLIT_ANSWER */
	uint64_t next_query;
	uint8_t owner_minor;     /* the WELCOME header's: what the owner takes */
	uint64_t reports_sent;   /* CHANGE_REPORTs (written.c), protocol thread */
	struct fm_optab ops;  /* struct cop by op id */
	uint64_t next_commit;
	/* readers.c: registered reader cells, never removed before delete */
	struct fm_client_reader *_Atomic readers[CL_MAX_READERS];
	_Atomic unsigned nreaders;
};

/* ---- client.c ---- */
void cl_oom(struct fm_client *c);
int cl_slot_of(struct fm_client *c, uint64_t map_id);
/* queue a NOTIFY; returns it, to add fields (never NULL: actq.h) */
struct fm_notify *cl_note(struct fm_client *c, enum fm_notify_type type, int status,
			  uint64_t cookie, uint64_t map_id, uint64_t grain, bool split);
int cl_send_msg(struct fm_client *c, struct fm_msg *m);
/* an ERROR's code as the status of the request it refuses: -code for an
 * errno (1..4095), -EPROTO for anything else the owner could send */
int cl_error_status(const struct fm_msg *m);
struct cop *cl_op_new(struct fm_client *c, enum cop_kind kind, unsigned slot);
struct cop *cl_op_take(struct fm_client *c, uint64_t id);
void cl_op_drop(struct fm_client *c, struct cop *op);
void cl_io_action(struct fm_client *c, struct cop *op, enum fm_action_type t,
		  const struct fm_region_desc *region, uint64_t offset, uint32_t len,
		  uint64_t compare, uint64_t swap);
/* ACTIVE, map known, grain inside; with need_grant also CM_GRANTED */
int cl_usable_slot(struct fm_client *c, uint64_t map_id, uint64_t grain, bool need_grant);
static inline int cl_state(const struct fm_client *c)
{
	return atomic_load_explicit(&c->state, memory_order_acquire);
}
static inline bool bit_at(const uint8_t *data, uint64_t bit)
{
	return (data[bit / 8] >> (bit % 8)) & 1;
}

/* ---- session.c ---- */
void cl_sess_close(struct fm_client *c, uint32_t reason, int err, bool link_ok);
void cl_sess_try_quiesce(struct fm_client *c);
void cl_sess_on_challenge(struct fm_client *c, const struct fm_msg *m, uint64_t now);
void cl_sess_on_welcome(struct fm_client *c, const struct fm_msg *m, uint64_t now);
void cl_sess_on_lease(struct fm_client *c, const struct fm_msg *m);
void cl_sess_tick(struct fm_client *c, uint64_t now);

/* ---- maps.c ---- */
void cl_maps_apply_grant(struct fm_client *c, const struct fm_wire_mapdesc *d);
/* protocol thread: publish cmap.d to any thread (fm_client_map) */
void cl_maps_publish(struct cmap *mp);
void cl_maps_on_release_request(struct fm_client *c, const struct fm_msg *m);
void cl_maps_try_drain_all(struct fm_client *c);
void cl_maps_discard_all(struct fm_client *c);
long cl_maps_inflight(struct fm_client *c);

/* ---- written.c ---- */
/* a grant of slot's mapping arrived (before it becomes usable) */
void cl_written_on_grant(struct fm_client *c, unsigned slot, const struct fm_wire_mapdesc *d);
/* no bracket of the slot open or able to open: send its set as
 * CHANGE_REPORTs (an owner >= 2.4) and clear it; returns messages sent */
unsigned cl_written_report(struct fm_client *c, unsigned slot);
void cl_written_free(struct fm_client *c);

/* ---- readers.c ---- */
/* open brackets on map slot `slot` (any counting place); seq_cst loads */
uint64_t cl_readers_open(struct fm_client *c, unsigned slot);
void cl_readers_free(struct fm_client *c);

/* ---- locks.c ---- */
void cl_locks_fail_all(struct fm_client *c);
void cl_locks_on_grant(struct fm_client *c, const struct fm_msg *m);
void cl_locks_on_split_ack(struct fm_client *c, const struct fm_msg *m);
void cl_locks_on_error(struct fm_client *c, const struct fm_msg *m);
void cl_locks_cas_done(struct fm_client *c, struct cop *op, int status, uint64_t old);
void cl_locks_unlock_done(struct fm_client *c, struct cop *op, int status, uint64_t old);
void cl_locks_check_done(struct fm_client *c, struct cop *op, int status,
			 const uint8_t *data, size_t len);
void cl_locks_free_all(struct fm_client *c);

/* ---- copy.c ---- */
void cl_copy_on_batch(struct fm_client *c, const struct fm_msg *m);
/* an ERROR refusing one of our claims: true (answered) */
bool cl_copy_on_error(struct fm_client *c, const struct fm_msg *m);
/* the session ended: every claim fails -ECONNRESET */
void cl_copy_fail_all(struct fm_client *c);

/* ---- query.c ---- */
void cl_query_on_answer(struct fm_client *c, const struct fm_msg *m);
/* an ERROR refusing one of our queries: true (answered) */
bool cl_query_on_error(struct fm_client *c, const struct fm_msg *m);
/* the session ended (notify: each fails -ECONNRESET) or the client goes */
void cl_query_fail_all(struct fm_client *c, bool notify);

/* ---- fetch.c ---- */
void cl_fetch_done(struct fm_client *c, struct cop *op, int status, const uint8_t *data,
		   size_t len);

#endif /* FM_CLIENT_PRIV_H */
