/* owner_priv.h -- the owner state machine's shared internals.
 *
 * The machine is split by job, one file each:
 *   owner.c    the object, the public event entry points, dispatch, stats
 *   session.c  handshake, leases, close -> quiesce -> fence -> release (R3/R4)
 *   maps.c     served mappings, confirmation grants, revoke, restart grace (R6)
 *   locks.c    contended grain locks: FIFO of waiters, arm, hand-off
 *   commit.c   SPLIT_COMMIT: holder check, PERSIST, ack (R7)
 *   scan.c     reclaim: READ the lock tables for a released session's words
 *   copy.c     background copy: COPY_CLAIMs, batches out, the pool, the pace
 *   query.c    SPLIT_QUERY: split bits by message (the lock-manager baseline)
 *   changed.c  CHANGE_REPORT and changed-unknown marks: the changed sets an
 *              incremental refresh recopies (wire 2.4)
 * Everything runs on one protocol thread (proto.h); nothing here locks.
 *
 * Ops: every READ/CAS/PERSIST/FENCE action carries an op id; `struct oop`
 * remembers what the completion is for.  An allocation failure latches
 * the action queue (ow_owner_oom, actq.h): the machine stops and its
 * driver tears it down; nothing is silently dropped while it runs.
 * Internal functions shared between the rooms are prefixed ow_.
 */
#ifndef FM_OWNER_PRIV_H
#define FM_OWNER_PRIV_H

#include <stdbool.h>
#include <stdint.h>

#include "../proto/actq.h"
#include "../proto/optab.h"
#include "flashmeta/proto_owner.h"

enum { MS_NONE = 0, MS_GRANTED = 1, MS_RELEASING = 2 };

struct oclient {
	struct oclient *next;
	uint32_t id;
	size_t key_len;
	uint8_t key[64];
};

struct osess {
	struct osess *next;
	uint64_t conn;
	enum fm_osess_state state;
	uint64_t session_id;
	uint32_t client_id;
	uint32_t epoch;          /* 0 until ACTIVE */
	uint64_t active_since;   /* when it became ACTIVE (its epoch began; the
				  * driver's clock); meaningful once epoch != 0 */
	uint8_t client_nonce[FM_WIRE_NONCE_SIZE];
	uint8_t owner_nonce[FM_WIRE_NONCE_SIZE];
	uint8_t minor;           /* HELLO.ver_minor: what it may be sent (wire.h) */
	uint64_t prev_session;   /* HELLO: the session this one vouches for */
	uint32_t prev_flags;
	uint64_t tx_seq;         /* last sequence number sent */
	uint64_t rx_seq;         /* last sequence number received */
	uint64_t deadline;       /* handshake deadline, then the owner's copy of
				  * the lease (R4c: kept after the close) */
	uint64_t quiesce_until;  /* CLOSING: fence with kill after this (R4) */
	uint8_t *mstate;         /* per map slot: MS_* */
	bool was_active;         /* its words must be reclaimed */
	bool quiesced;           /* the client reported its I/O over (R3) */
	bool reported;           /* ... by a BYE{QUIESCED} of a 2.4 client, in
				  * band: every CHANGE_REPORT it owed came
				  * before it (changed.c) */
	bool report_refused;     /* a report of a map it holds was refused
				  * (grains beyond it), or a message failed to
				  * decode: its BYE vouches for nothing */
	bool link_lost;          /* nothing can be sent on conn any more */
	bool fence_queued;       /* a FENCE is out, not yet done */
	bool fence_kill;         /* ... asked with kill */
	int fence_level;         /* enum fm_fence_level reached */
	unsigned commits;        /* SPLIT_COMMITs being checked or persisted */
	unsigned nwaits;         /* its waiters queued on olocks */
	unsigned queries;        /* its SPLIT_QUERY READs in flight (query.c) */
	bool scan_wait;          /* released; reclaim waits for commits == 0 */
	struct oscan *scan;      /* RECLAIMING: the scan of its words */
};

/* A batch of grains a session copies (copy.c). */
struct obatch {
	uint64_t id, session_id;
	uint64_t first, last;
};

/* A COPY_CLAIM waiting for its answer (copy.c). */
struct oclaim {
	struct oclaim *next;
	uint64_t session_id, claim_id, generation;
	uint32_t max;
};

/* A map's background copy (copy.c has the design). */
struct ocopy {
	uint32_t rate;            /* 0..FM_COPY_RATE_MAX */
	uint64_t generation;      /* cursor, out, ret are of this one */
	uint64_t epoch;           /* bumped by every reset: a READ from before
				   * one is stale */
	uint64_t cursor;          /* grains below: handed out or seen split */
	struct fm_grain_range *ret; /* returned, not handed out again yet */
	size_t nret, capret;
	struct obatch *out;       /* handed out, not ended */
	size_t nout, capout;
	struct oclaim *head, *tail; /* waiting, in arrival order */
	bool reading;             /* a READ of the bitmap is out */
	uint64_t pace;            /* driver clock: when what was handed out is
				   * paid for at the rate */
	uint64_t handed;          /* batches handed out in this generation */
};

struct omap {
	bool used;
	bool revoking;   /* RELEASE_REQUESTs out, waiting */
	bool withheld;   /* revoked, not yet updated */
	unsigned persists; /* commits being checked or persisted */
	unsigned scans;    /* scan READs of its lock table in flight */
	unsigned lock_ops; /* olock CASes of its lock table in flight */
	unsigned queries;  /* SPLIT_QUERY READs of its bitmap in flight */
	unsigned changes;  /* CHANGED actions in flight (changed.c) */
	bool unknown_retry; /* a changed-unknown mark failed: asked again at
			     * the next tick; the revoke waits for it */
	uint64_t unknown_gen; /* ... for this generation */
	struct fm_wire_mapdesc d;
	struct ocopy copy;
};

struct owaiter {
	struct owaiter *next;
	uint64_t session_id;
	uint64_t word;       /* HELD word for this waiter */
	uint64_t first, last, generation;
	uint64_t req_seq;    /* its LOCK_REQUEST, for an ERROR */
	uint64_t since;      /* when its LOCK_REQUEST arrived (the driver's clock) */
};

enum olock_kind { OL_ARM = 1, OL_GRANT, OL_HANDOFF, OL_FREE };

struct olock {
	struct olock *next;
	unsigned slot;
	uint64_t index;
	uint64_t cur;        /* value last seen in the word */
	bool dead;           /* cur's holder gave up or died: release it */
	bool busy;           /* one CAS in flight */
	enum olock_kind kind;
	uint64_t expect, swap;
	struct owaiter *head, *tail;
	unsigned nwait;
};

/* A released session's walk over every lock table, one READ at a time. */
struct oscan {
	uint64_t session_id;
	uint64_t dead;       /* (client, epoch) of the words to reclaim */
	unsigned slot;       /* map slot being read */
	uint64_t off;        /* next byte of its lock table */
	bool busy;           /* a READ is out */
};

enum oop_kind { OP_LOCK_CAS = 1, OP_SCAN, OP_PERSIST, OP_FENCE, OP_HOLDER, OP_COPY_READ,
		OP_QUERY_READ, OP_CHANGED };

/* A SPLIT_COMMIT whose lock words are being checked (OP_HOLDER CASes). */
struct ocommit {
	uint64_t session_id;
	uint64_t ref_seq;       /* the SPLIT_COMMIT's seq, for an ERROR */
	unsigned slot;
	unsigned pending;       /* OP_HOLDER ops not yet done */
	bool not_held;          /* a word was not (client, epoch) HELD */
	bool failed;            /* a check failed in the transport */
	uint64_t generation, commit_id, map_id;
	uint16_t range_count;
	struct fm_grain_range ranges[FM_WIRE_MAX_RANGES];
};

struct oop {
	uint64_t id;            /* in fm_owner.ops */
	enum oop_kind kind;
	struct olock *lock;     /* OP_LOCK_CAS */
	uint64_t session_id;    /* OP_SCAN, OP_PERSIST, OP_FENCE, OP_QUERY_READ */
	uint64_t conn;          /* OP_FENCE */
	unsigned slot;          /* OP_SCAN, OP_PERSIST, OP_QUERY_READ */
	uint64_t base_index;    /* OP_SCAN: first word of the chunk; OP_*_READ:
				 * first grain of the READ */
	uint64_t generation, commit_id; /* OP_PERSIST (generation: OP_QUERY_READ) */
	uint64_t query_id, ref_seq; /* OP_QUERY_READ: to answer, to refuse */
	struct ocommit *commit;  /* OP_HOLDER */
	uint64_t first, last;    /* OP_COPY_READ, OP_QUERY_READ: the grains looked at */
	uint64_t copy_epoch;     /* OP_COPY_READ: ocopy.epoch at issue */
	bool from_pool;          /* OP_COPY_READ: they are ret[0]'s (else the
				  * cursor's) */
	bool unknown;            /* OP_CHANGED: a changed-unknown mark (else a
				  * report's ranges; slot, generation above) */
};

struct fm_owner {
	struct fm_owner_cfg cfg;
	struct fm_actq q;
	struct oclient *clients;
	struct osess *sessions;
	struct omap *maps;       /* cfg.max_maps slots */
	struct olock *locks;
	struct fm_optab ops;     /* struct oop by op id */
	uint64_t next_session;
	uint32_t next_epoch;
	uint64_t next_batch;     /* copy.c: batch ids, never 0 */
	uint64_t grace_until;    /* R6: no locks before this (0: none) */
	bool in_grace;
	struct fm_owner_stats st;
};

/* ---- owner.c: helpers every room uses ---- */
void ow_owner_oom(struct fm_owner *o);
struct osess *ow_sess_by_id(struct fm_owner *o, uint64_t id);
struct osess *ow_sess_by_conn(struct fm_owner *o, uint64_t conn);
int ow_map_slot(const struct fm_owner *o, uint64_t map_id);
struct oop *ow_op_new(struct fm_owner *o, enum oop_kind kind);
struct oop *ow_op_take(struct fm_owner *o, uint64_t id);
void ow_note(struct fm_owner *o, enum fm_notify_type type, int status, uint64_t map_id,
	     uint32_t client_id);
/* ... with the session's connection in the action's conn (SESSION_UP) */
void ow_note_conn(struct fm_owner *o, enum fm_notify_type type, int status, uint64_t map_id,
		  uint32_t client_id, uint64_t conn);
void ow_send_msg(struct fm_owner *o, struct osess *s, struct fm_msg *m);
void ow_send_error(struct fm_owner *o, struct osess *s, uint64_t ref_seq, int err);
const void *ow_client_key(struct fm_owner *o, uint32_t id, size_t *len);
/* queue a one-sided op on our own memory (FM_CONN_LOCAL) */
struct fm_action *ow_local_op(struct fm_owner *o, struct oop *op, enum fm_action_type t,
			     const struct fm_region_desc *r, uint64_t off);

/* ---- session.c ---- */
void ow_sess_on_hello(struct fm_owner *o, struct osess *s, const struct fm_msg *m);
void ow_sess_on_auth(struct fm_owner *o, struct osess *s, const struct fm_msg *m,
		    uint64_t now);
void ow_sess_on_renew(struct fm_owner *o, struct osess *s, const struct fm_msg *m,
		     uint64_t now);
void ow_sess_on_bye(struct fm_owner *o, struct osess *s, const struct fm_msg *m, uint64_t now);
void ow_sess_close(struct fm_owner *o, struct osess *s, uint32_t reason, int err,
		  uint64_t now);
void ow_sess_link_lost(struct fm_owner *o, struct osess *s, uint64_t now);
void ow_sess_tick(struct fm_owner *o, struct osess *s, uint64_t now);
void ow_sess_fence_done(struct fm_owner *o, struct oop *op, int status, int level,
		       uint64_t now);
void ow_sess_commit_done(struct fm_owner *o, struct osess *s);
void ow_sess_reclaimed(struct fm_owner *o, struct osess *s);
void ow_sess_free(struct fm_owner *o, struct osess *s);
/* does s still hold what it was granted (grants, lock words)? */
static inline bool ow_sess_holds(const struct osess *s)
{
	return s->state >= FM_OSESS_ACTIVE && s->state <= FM_OSESS_FENCING;
}

/* ---- maps.c ---- */
void ow_maps_welcome(struct fm_owner *o, struct osess *s, struct fm_msg *m);
void ow_maps_grant_rest(struct fm_owner *o, struct osess *s);
void ow_maps_check_revoke(struct fm_owner *o, unsigned slot);
void ow_maps_drop_grants(struct fm_owner *o, struct osess *s);
void ow_maps_grace_tick(struct fm_owner *o, uint64_t now);
void ow_maps_on_released(struct fm_owner *o, struct osess *s, const struct fm_msg *m);

/* ---- locks.c ---- */
void ow_locks_on_request(struct fm_owner *o, struct osess *s, const struct fm_msg *m,
			 uint64_t now);
void ow_locks_on_unlock(struct fm_owner *o, struct osess *s, const struct fm_msg *m);
void ow_locks_cas_done(struct fm_owner *o, struct olock *l, int status, uint64_t old);
void ow_locks_reclaim(struct fm_owner *o, unsigned slot, uint64_t index, uint64_t word);
void ow_locks_step_all(struct fm_owner *o);
void ow_locks_drop_slot(struct fm_owner *o, unsigned slot);
void ow_locks_free_all(struct fm_owner *o);

/* ---- commit.c ---- */
void ow_commit_on_split(struct fm_owner *o, struct osess *s, const struct fm_msg *m);
void ow_commit_holder_done(struct fm_owner *o, struct oop *op, int status, uint64_t old);
void ow_commit_persist_done(struct fm_owner *o, struct oop *op, int status);

/* ---- copy.c ---- */
void ow_copy_on_claim(struct fm_owner *o, struct osess *s, const struct fm_msg *m, uint64_t now);
void ow_copy_read_done(struct fm_owner *o, struct oop *op, int status, const uint8_t *data,
		       size_t len, uint64_t now);
/* s left ACTIVE: its claims go, its batches return to the pool */
void ow_copy_sess_closed(struct fm_owner *o, struct osess *s);
/* a new descriptor of slot (fm_owner_map_update): a new generation, or a
 * state other than COPYING, starts the copy's bookkeeping afresh */
void ow_copy_map_updated(struct fm_owner *o, unsigned slot);
/* the slot is freed: claims answered STALE, memory freed */
void ow_copy_map_free(struct fm_owner *o, unsigned slot);
void ow_copy_tick(struct fm_owner *o, uint64_t now);

/* ---- query.c ---- */
void ow_query_on_split(struct fm_owner *o, struct osess *s, const struct fm_msg *m);
void ow_query_read_done(struct fm_owner *o, struct oop *op, int status, const uint8_t *data,
			size_t len);

/* ---- changed.c ---- */
void ow_changed_on_report(struct fm_owner *o, struct osess *s, const struct fm_msg *m);
/* the writes of a session to slot's mapping since its last report may be
 * missing: mark the mapping changed-unknown (durably, before its revoke
 * completes) */
void ow_changed_unknown(struct fm_owner *o, unsigned slot);
void ow_changed_done(struct fm_owner *o, struct oop *op, int status);
void ow_changed_tick(struct fm_owner *o);

/* ---- scan.c ---- */
void ow_scan_start(struct fm_owner *o, struct osess *s);
void ow_scan_step(struct fm_owner *o, struct osess *s);
void ow_scan_done(struct fm_owner *o, struct oop *op, int status, const uint8_t *data,
		 size_t len);

#endif /* FM_OWNER_PRIV_H */
