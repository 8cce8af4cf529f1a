/* proto_owner.h -- the owner's protocol state machine (sans-I/O).
 *
 * The owner authenticates clients, runs their leases, grants and withdraws
 * confirmation leases per mapping (claims 2/8/14: lock request, lock
 * grant, release request, released), queues contended grain-lock requests
 * and hands lock words over with its own CAS, records split commits (ack
 * strictly after PERSIST completed), fences dead or misbehaving clients and
 * then reclaims their lock words; and it hands out background copy batches
 * of unsplit grains to copiers (COPY_CLAIM -> COPY_BATCH, flashmeta/copy.h);
 * and it answers SPLIT_QUERYs from its published bitmap (the decide-by-
 * message baseline, wire.h; nothing changes at the owner); and it records
 * the grains clients report written (CHANGE_REPORT, wire 2.4) in the
 * mappings' changed sets, marking a set changed-unknown when a session
 * that could have written ends without reporting (changed.c).  See proto.h
 * for the driver contract and
 * lease.h for the timing rules (R1..R7) it enforces.
 *
 * Session states (one per connection):
 *
 *   HELLO_WAIT -> AUTH_WAIT -> ACTIVE -> CLOSING -> FENCING -> RECLAIMING
 *        |             |                  ^            ^
 *        +-------------+-> CLOSE (never   |  BYE{QUIESCED} from ACTIVE
 *          authenticated: nothing to      |  goes straight to FENCING
 *          fence, the connection is just dropped)
 */
#ifndef FLASHMETA_PROTO_OWNER_H
#define FLASHMETA_PROTO_OWNER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "flashmeta/proto.h"
#include "flashmeta/wire.h"

enum fm_osess_state {
	FM_OSESS_HELLO_WAIT = 0, /* connected; waiting for HELLO */
	FM_OSESS_AUTH_WAIT = 1,  /* CHALLENGE sent; waiting for AUTH */
	FM_OSESS_ACTIVE = 2,     /* authenticated; lease running; holds map grants */
	FM_OSESS_CLOSING = 3,    /* closed while ACTIVE (BYE sent, or the link
				  * broke); waiting up to quiesce_ms for the
				  * client to report its I/O over (R3) */
	FM_OSESS_FENCING = 4,    /* FENCE emitted; grants and lock words still
				  * count until the fence is done AND (the
				  * client quiesced, or died, or its lease ran
				  * out: R4) */
	FM_OSESS_RECLAIMING = 5, /* released; scanning lock tables for its words */
};

struct fm_owner;

struct fm_owner_cfg {
	uint32_t lease_term_ms;   /* T, granted to clients; 0 -> 3000 */
	uint32_t lease_grace_ms;  /* G, owner waits this much longer; 0 -> T/4 */
	uint32_t quiesce_ms;      /* Q, a closing session may take this long to
				   * report quiescence before it is fenced with
				   * kill; 0 -> G */
	uint32_t handshake_ms;    /* HELLO..AUTH must finish; 0 -> 5000 */
	uint64_t incarnation;     /* this owner's, from the pool (R5, R6); 0 -> 1 */
	uint32_t max_maps;        /* mappings served at most; 0 -> FM_OWNER_MAX_MAPS */
	uint32_t max_waits;       /* queued LOCK_REQUESTs per session; 0 -> 64 */
	uint32_t max_commits;     /* SPLIT_COMMITs in flight per session; 0 -> 256 */
	uint32_t max_queries;     /* SPLIT_QUERYs being answered per session
				   * (wire 2.2); 0 -> 64 */
	/* Entropy for nonces; NULL -> getrandom(). */
	void (*rand_bytes)(void *ctx, void *buf, size_t len);
	void *rand_ctx;
};

#define FM_OWNER_MAX_MAPS 1024u

/* fm_owner_new -- 0, -EINVAL, -ENOMEM.  fm_owner_delete is NULL-safe. */
int fm_owner_new(struct fm_owner **out, const struct fm_owner_cfg *cfg);
void fm_owner_delete(struct fm_owner **op);

/* fm_owner_client_add -- allow client `client_id` (1..65535) with a shared
 * key (1..64 bytes).  0, -EINVAL, -EEXIST, -ENOMEM. */
int fm_owner_client_add(struct fm_owner *o, uint32_t client_id,
			const void *key, size_t key_len);

/*
 * fm_owner_grace -- restart grace (lease.h R6) until monotonic time
 * `until`: from now until then, descriptors sent to clients carry no lock
 * table (so no client can take a lock), LOCK_REQUESTs and SPLIT_COMMITs
 * are refused (-EAGAIN / -ENOLCK), fm_owner_map_revoke returns -EAGAIN.
 * The first tick at or after `until` ends it: every active session gets a
 * MAP_GRANT with the lock table and a NOTIFY(FM_NOTE_GRACE_OVER) follows.
 * Call before serving anyone.  0 or -EINVAL.
 */
int fm_owner_grace(struct fm_owner *o, uint64_t until, uint64_t now);

/* Milliseconds of restart grace left at `now` (0: none). */
uint64_t fm_owner_grace_left(const struct fm_owner *o, uint64_t now);

/*
 * fm_owner_map_add -- serve a mapping (validated like a MAP_GRANT; its
 * lock table must be all zero).  Active sessions get a MAP_GRANT.
 * 0, -EINVAL, -ERANGE, -EEXIST, -ENOSPC (cfg.max_maps served).
 */
int fm_owner_map_add(struct fm_owner *o, const struct fm_wire_mapdesc *d);

/*
 * fm_owner_map_revoke -- withdraw every confirmation lease on map_id (the
 * mapping restarts or stops): RELEASE_REQUEST to every holder.  When every
 * holder answered RELEASED or was fenced, and no PERSIST or CHANGED of the
 * map is in flight, a NOTIFY(FM_NOTE_REVOKED) follows -- so the map's
 * changed set is complete then (every holder's writes reported durably,
 * or the set marked changed-unknown: changed.c); only then may the driver
 * clear the bitmap / bump the generation and call fm_owner_map_update.
 * Reason FM_RELEASE_COPIED reaches a client of wire 2.0 as ADMIN (it
 * would refuse the new reason).  0, -ENOENT, -EALREADY (revoke in
 * progress), -EINVAL (reason), -EAGAIN (restart grace: try again once it
 * is over).
 */
int fm_owner_map_revoke(struct fm_owner *o, uint64_t map_id, uint32_t reason,
			uint64_t now);

/*
 * fm_owner_map_revoke_cancel -- give up a revoke that has not completed
 * (the driver's transition timed out): the map is served again as it was
 * -- same descriptor, same generation, nothing in the store changed --
 * and the sessions that already released it get a MAP_GRANT.  A session
 * that has not answered stays counted as a holder until its RELEASED
 * comes (its cache stopped being trusted when the request came), and is
 * granted then; it is never taken for drained.  No NOTE REVOKED follows
 * for the cancelled revoke.  0, -ENOENT, -EINVAL (no revoke in progress).
 * Never blocks.
 */
int fm_owner_map_revoke_cancel(struct fm_owner *o, uint64_t map_id);

/* A session that holds a confirmation grant on a mapping. */
struct fm_owner_holder {
	uint32_t client_id;
	uint32_t epoch;
	int state;              /* enum fm_osess_state: a closed session's
				 * grants count until R4 releases it */
	bool releasing;         /* a RELEASE_REQUEST is out, unanswered */
};
/* fm_owner_map_holders -- the sessions whose grant on map_id counts (for
 * a revoke: those it still waits for), up to cap into v; returns how many
 * there are (0 also for an unknown map).  Never blocks. */
size_t fm_owner_map_holders(const struct fm_owner *o, uint64_t map_id,
			    struct fm_owner_holder *v, size_t cap);

/*
 * fm_owner_map_remove -- stop serving a revoked map (after NOTE REVOKED,
 * instead of fm_owner_map_update); its slot may be reused by map_add.
 * Lock requests still queued on it are refused (ERROR -ENOENT, the client
 * sees LOCKED -ENOENT); later requests and commits on it get -ENOENT,
 * copy claims waiting on it STALE.  Words clients still hold in its lock
 * table are left to the driver, which deregisters the regions.  0,
 * -ENOENT, -EBUSY (not revoked, or a commit, lock-table operation or
 * bitmap READ of it still in flight: retry after the next op_done).
 * Never blocks.
 */
int fm_owner_map_remove(struct fm_owner *o, uint64_t map_id);

/* fm_owner_map_update -- new descriptor (generation, state) for a revoked
 * map; grants it to every active session.  A new generation, or a state
 * other than COPYING, starts its background copy bookkeeping afresh (the
 * rate stays).  0, -ENOENT, -EBUSY (not revoked), -ERANGE. */
int fm_owner_map_update(struct fm_owner *o, const struct fm_wire_mapdesc *d);

/*
 * fm_owner_map_rate -- the background copy rate of map_id (copy.h: 0..
 * FM_COPY_RATE_MAX, 0 = none), from the next COPY_CLAIM on.  Copiers
 * learn it in every COPY_BATCH; batches are sized and handed out at it
 * (about FM_COPY_BATCH_MS of copying each, all copiers together at most
 * the rate, a quarter of a batch time ahead).  The driver keeps it durable.  0, -ENOENT,
 * -ERANGE.  Never blocks.
 */
int fm_owner_map_rate(struct fm_owner *o, uint64_t map_id, uint32_t rate);

/* The background copy of one mapping, as the owner schedules it. */
struct fm_owner_copy_info {
	uint32_t rate;             /* copy.h */
	unsigned copiers;          /* sessions with a batch out (one each) */
	uint64_t grains_out;       /* grains in those batches */
	uint64_t grains_returned;  /* back in the pool (a copier stopped or
				    * left), not handed out again yet */
	uint64_t cursor;           /* every grain below was handed out or
				    * seen split */
	uint64_t batches_handed;   /* in this generation */
	unsigned claims_waiting;   /* COPY_CLAIMs not answered yet */
};
/* fm_owner_copy_info -- 0 or -ENOENT.  Never blocks. */
int fm_owner_copy_info(const struct fm_owner *o, uint64_t map_id,
		       struct fm_owner_copy_info *out);

/* ---- events ---- */
/* A transport connection `conn` (driver's id, not FM_CONN_LOCAL) came up.
 * 0, -EEXIST, -ENOMEM. */
int fm_owner_connected(struct fm_owner *o, uint64_t conn, uint64_t now);
/* One datagram from `conn`.  A bad message closes that session only and
 * still returns 0; -ENOTCONN for an unknown/closed conn. */
int fm_owner_recv(struct fm_owner *o, uint64_t conn, const void *buf,
		  size_t len, uint64_t now);
/* The transport lost `conn`: the session closes (nothing more can be sent
 * on it; R3/R4 decide when its locks go).  0 or -ENOTCONN. */
int fm_owner_disconnected(struct fm_owner *o, uint64_t conn, uint64_t now);
/* Timers: handshake timeouts, lease expiry, retries.  Call at least every
 * lease_term/10. */
int fm_owner_tick(struct fm_owner *o, uint64_t now);
/* Completion of a READ/CAS/PERSIST/FENCE action (FENCE: old_value is the
 * enum fm_fence_level reached).  0, -ENOENT (unknown op_id, ignored). */
int fm_owner_op_done(struct fm_owner *o, uint64_t op_id, int status,
		     uint64_t old_value, const void *data, size_t len,
		     uint64_t now);
/* Next action: 1 (filled), 0 (none), or -ENOMEM: the machine ran out of
 * memory and is dead (proto.h); the driver must stop serving. */
int fm_owner_poll(struct fm_owner *o, struct fm_action *act);

/* ---- introspection (tests, stats) ---- */
struct fm_owner_stats {
	uint64_t sessions_active;
	uint64_t sessions_closed;   /* for any reason */
	uint64_t auth_failures;
	uint64_t malformed;
	uint64_t lock_requests;
	uint64_t lock_grants;
	uint64_t locks_reclaimed;
	uint64_t commits;
	uint64_t acks;
	uint64_t fences;
	uint64_t commits_refused; /* SPLIT_COMMIT without the grain lock(s) */
	uint64_t released_quiesced; /* sessions released on the client's word (R4a) */
	uint64_t released_dead;     /* ... because the peer process died (R4b) */
	uint64_t released_expired;  /* ... because the lease ran out (R4c) */
	uint64_t fence_retries;     /* FENCEs that failed and were asked again */
	uint64_t scan_failures;     /* lock-table READs that failed (retried) */
	uint64_t lock_requests_refused; /* over the per-session limit, or in grace */
	uint64_t sessions_closing;  /* closed, not yet released, right now */
	uint64_t copy_claims;       /* COPY_CLAIMs received */
	uint64_t copy_batches;      /* batches handed out */
	uint64_t copy_returned;     /* grains that went back to the pool */
	uint64_t copy_read_failures; /* bitmap READs of a claim that failed (retried) */
	uint64_t queries;           /* SPLIT_QUERYs received */
	uint64_t queries_refused;   /* ... over the per-session limit */
	uint64_t query_read_failures; /* bitmap READs of a query that failed (-EIO) */
	uint64_t change_reports;    /* CHANGE_REPORTs taken (wire 2.4) */
	uint64_t change_reports_refused; /* ... refused with an ERROR */
	uint64_t changed_unknown;   /* changed-unknown marks asked for */
};
void fm_owner_stats(const struct fm_owner *o, struct fm_owner_stats *st);
/* State of the session on `conn`: >= 0 or -ENOTCONN. */
int fm_owner_session_state(const struct fm_owner *o, uint64_t conn);
/* Client id of the session on `conn` (0 before HELLO), or -ENOTCONN. */
int fm_owner_session_client(const struct fm_owner *o, uint64_t conn);
const char *fm_osess_state_name(int state);

/* What the owner knows of one session (introspection: control socket). */
struct fm_owner_session_info {
	uint64_t conn;
	uint32_t client_id;     /* 0 before HELLO */
	uint32_t epoch;         /* 0 until ACTIVE */
	int state;              /* enum fm_osess_state (fm_osess_state_name) */
	int64_t lease_left_ms;  /* the owner's copy of the lease (< 0: expired
				 * that long ago); the handshake deadline before
				 * ACTIVE */
	bool quiesced;          /* the client said its I/O is over (R3) */
	unsigned commits;       /* SPLIT_COMMITs being checked or persisted */
	unsigned waits;         /* its lock requests queued */
	uint64_t age_ms;        /* since it became ACTIVE (its epoch began),
				 * whatever its state now; 0 before ACTIVE */
};
/* Every session, in no order: up to cap of them into v; returns how many
 * there are (more than cap: call again with room). */
size_t fm_owner_sessions(const struct fm_owner *o, struct fm_owner_session_info *v, size_t cap,
			 uint64_t now);

/* The owner's queue of one lock word (introspection: control socket).
 * Uncontended locks never reach the owner (client CAS), so a word held
 * without anybody waiting has no queue: all zero. */
struct fm_owner_lock_info {
	unsigned waiters;        /* LOCK_REQUESTs queued for the word, of
				  * sessions still ACTIVE (the ones it serves) */
	uint32_t oldest_client;  /* client id of the first of them; 0: none */
	uint64_t oldest_wait_ms; /* how long that one has waited: `now` minus
				  * the arrival of its LOCK_REQUEST; 0: none */
};
/* fm_owner_lock_info -- the queue of word `index` of map_id's lock table
 * at `now` (the clock of the events).  0, -ENOENT (map not served),
 * -ERANGE (no such word).  Never blocks; the protocol thread's call. */
int fm_owner_lock_info(const struct fm_owner *o, uint64_t map_id, uint64_t index, uint64_t now,
		       struct fm_owner_lock_info *out);

#endif /* FLASHMETA_PROTO_OWNER_H */
