/* proto_owner.h -- the owner's protocol state machine (sans-I/O).
 *
 * The owner authenticates clients, runs their leases, grants and withdraws
 * confirmation leases per mapping (claims 2/8/14: lock request, lock
 * grant, release request, released), queues contended grain-lock requests
 * and hands lock words over with its own CAS, records split commits (ack
 * strictly after PERSIST completed), fences dead or misbehaving clients and
 * then reclaims their lock words.  See proto.h for the driver contract.
 *
 * Session states (one per connection):
 */
#ifndef FLASHMETA_PROTO_OWNER_H
#define FLASHMETA_PROTO_OWNER_H

#include <stddef.h>
#include <stdint.h>

#include "flashmeta/proto.h"
#include "flashmeta/wire.h"

enum fm_osess_state {
	FM_OSESS_HELLO_WAIT = 0, /* connected; waiting for HELLO */
	FM_OSESS_AUTH_WAIT = 1,  /* CHALLENGE sent; waiting for AUTH */
	FM_OSESS_ACTIVE = 2,     /* authenticated; lease running; holds map grants */
	FM_OSESS_FENCING = 3,    /* closed; FENCE emitted; its grants and lock
				  * words still count until the fence is done
				  * AND its lease (+ grace) ran out */
	FM_OSESS_RECLAIMING = 4, /* fenced; scanning lock tables for its words */
};

struct fm_owner;

struct fm_owner_cfg {
	uint32_t lease_term_ms;   /* granted to clients; 0 -> 3000 */
	uint32_t lease_grace_ms;  /* owner waits this much longer; 0 -> term/4 */
	uint32_t handshake_ms;    /* HELLO..AUTH must finish; 0 -> 5000 */
	uint32_t first_epoch;     /* first client epoch; 0 -> 1.  A driver that
				   * restarts keeps the lock table must persist
				   * the high-water mark and pass it here. */
	/* Entropy for nonces; NULL -> getrandom(). */
	void (*rand_bytes)(void *ctx, void *buf, size_t len);
	void *rand_ctx;
};

/* fm_owner_new -- 0, -EINVAL, -ENOMEM.  fm_owner_delete is NULL-safe. */
int fm_owner_new(struct fm_owner **out, const struct fm_owner_cfg *cfg);
void fm_owner_delete(struct fm_owner **op);

/* fm_owner_client_add -- allow client `client_id` (1..65535) with a shared
 * key (1..64 bytes).  0, -EINVAL, -EEXIST, -ENOMEM. */
int fm_owner_client_add(struct fm_owner *o, uint32_t client_id,
			const void *key, size_t key_len);

/*
 * fm_owner_map_add -- serve a mapping (validated like a MAP_GRANT; its
 * lock table must be all zero).  Active sessions get a MAP_GRANT.
 * 0, -EINVAL, -ERANGE, -EEXIST, -ENOSPC (FM_WIRE_MAX_MAPS served).
 */
int fm_owner_map_add(struct fm_owner *o, const struct fm_wire_mapdesc *d);

/*
 * fm_owner_map_revoke -- withdraw every confirmation lease on map_id (the
 * mapping restarts or stops): RELEASE_REQUEST to every holder.  When every
 * holder answered RELEASED or was fenced, and no PERSIST of the map is in
 * flight, a NOTIFY(FM_NOTE_REVOKED) follows; only then may the driver
 * clear the bitmap / bump the generation and call fm_owner_map_update.
 * 0, -ENOENT, -EALREADY (revoke in progress), -EINVAL (reason).
 */
int fm_owner_map_revoke(struct fm_owner *o, uint64_t map_id, uint32_t reason,
			uint64_t now);

/*
 * fm_owner_map_remove -- stop serving a revoked map (after NOTE REVOKED,
 * instead of fm_owner_map_update); its slot may be reused by map_add.
 * Lock requests still queued on it are refused (ERROR -ENOENT, the client
 * sees LOCKED -ENOENT); later requests and commits on it get -ENOENT.
 * Words clients still hold in its lock table are left to the driver,
 * which deregisters the regions.  0, -ENOENT, -EBUSY (not revoked, or a
 * commit or lock-table operation of it still in flight: retry after the
 * next op_done).  Never blocks.
 */
int fm_owner_map_remove(struct fm_owner *o, uint64_t map_id);

/* fm_owner_map_update -- new descriptor (generation, state) for a revoked
 * map; grants it to every active session.  0, -ENOENT, -EBUSY (not
 * revoked), -ERANGE. */
int fm_owner_map_update(struct fm_owner *o, const struct fm_wire_mapdesc *d);

/* ---- events ---- */
/* A transport connection `conn` (driver's id, not FM_CONN_LOCAL) came up.
 * 0, -EEXIST, -ENOMEM. */
int fm_owner_connected(struct fm_owner *o, uint64_t conn, uint64_t now);
/* One datagram from `conn`.  A bad message closes that session only and
 * still returns 0; -ENOTCONN for an unknown/closed conn. */
int fm_owner_recv(struct fm_owner *o, uint64_t conn, const void *buf,
		  size_t len, uint64_t now);
/* The transport lost `conn`: treated as a failed session (fenced, locks
 * reclaimed).  0 or -ENOTCONN. */
int fm_owner_disconnected(struct fm_owner *o, uint64_t conn, uint64_t now);
/* Timers: handshake timeouts, lease expiry, retries.  Call at least every
 * lease_term/10. */
int fm_owner_tick(struct fm_owner *o, uint64_t now);
/* Completion of a READ/CAS/PERSIST/FENCE action.  0, -ENOENT (unknown
 * op_id, ignored). */
int fm_owner_op_done(struct fm_owner *o, uint64_t op_id, int status,
		     uint64_t old_value, const void *data, size_t len,
		     uint64_t now);
/* Next action: 1 (filled), 0 (none). */
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
};
void fm_owner_stats(const struct fm_owner *o, struct fm_owner_stats *st);
/* State of the session on `conn`: >= 0 or -ENOTCONN. */
int fm_owner_session_state(const struct fm_owner *o, uint64_t conn);
const char *fm_osess_state_name(int state);

#endif /* FLASHMETA_PROTO_OWNER_H */
