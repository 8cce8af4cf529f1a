/* proto.h -- what the sans-I/O protocol state machines ask a driver to do.
 *
 * The owner (proto_owner.h) and the client (proto_client.h) never touch a
 * network, a clock or a disk.  A driver feeds them events -- a received
 * datagram, a timer tick with a monotonic `now` in milliseconds, the result
 * of an operation they asked for -- and then drains their actions with
 * fm_owner_poll() / fm_client_poll() until it returns 0:
 *
 *   SEND     send msg[0..msg_len) to peer `conn` (one datagram, in order)
 *   READ     one-sided READ of `len` bytes (at most FM_ACT_READ_MAX; a
 *            driver must accept any length up to it) at region+offset of
 *            peer `conn`; report *_op_done(op_id, status, 0, data, len)
 *   CAS      one-sided 8-byte compare-and-swap at region+offset;
 *            report *_op_done(op_id, status, old value, NULL, 0).  The
 *            owner uses conn FM_CONN_LOCAL for its own lock table: it must
 *            still go through the transport's atomics (loopback), never a
 *            CPU store -- RDMA atomics are atomic only among themselves.
 *   PERSIST  owner: make grains of map/generation durably split in the
 *            store, and only then visible in the READ-able bitmap region;
 *            report *_op_done(op_id, 0 | -ESTALE | -EIO, ...).  The bitmap
 *            region must never show a bit whose persist did not complete.
 *   CHANGED  owner: the grains u.persist.ranges of map/generation were
 *            written (a client's CHANGE_REPORT, wire 2.4): record them
 *            durably in the mapping's changed set
 *            (fm_store_changed_set_range); with range_count 0 the set is
 *            not known to be complete: mark the mapping changed-unknown
 *            (fm_store_changed_unknown).  Off the driver's loop, like a
 *            PERSIST.  Report *_op_done(op_id, 0 | -ESTALE | -ENOENT |
 *            -EOPNOTSUPP | -EIO, ...) once durable; the first three mean
 *            the set is gone or never kept (another generation, no such
 *            mapping, a pool before format 1.4): nothing to record.  A
 *            revoke completes only after every CHANGED of the map had its
 *            op_done.
 *   FENCE    owner: stop the peer on `conn` (transport.h fm_ep_fence): at
 *            least its RDMA (disconnect, invalidate what it could reach),
 *            and with u.fence.kill its whole process where the transport
 *            can (shm: SIGKILL and wait for the exit; verbs cannot).  Never
 *            block the driver's loop: report later.  Report
 *            op_done(op_id, 0, level) with the enum fm_fence_level reached
 *            (FM_FENCE_RDMA or FM_FENCE_DEAD) once it is reached.  A
 *            negative status means the peer could not be fenced: its lock
 *            words and grants stay held and the owner asks again at its
 *            next tick.  A driver with fencing storage also
 *            stops the session's writes there (u.fence.client_id/token,
 *            flashmeta/fence_table.h) before it reports the fence done.
 *   CLOSE    client: disconnect from the owner.  owner: drop `conn`, a
 *            session that never authenticated (it was never granted
 *            anything, so there is nothing to fence).  Nothing to report.
 *   NOTIFY   an event for the local engine/driver (struct fm_notify).
 *
 * Every READ/CAS/PERSIST/CHANGED/FENCE gets exactly one op_done; a transport
 * failure is reported as a negative status (the state machine then treats
 * the peer as gone).  The state machines keep this promise by
 * construction: queuing an action never fails.  If memory for the queue
 * runs out, the failure is latched and fm_owner_poll / fm_client_poll
 * return -ENOMEM from then on: the machine is dead and its driver must
 * tear it down (see actq.h).  Timing: everything is driven by `now`
 * (CLOCK_MONOTONIC milliseconds); nothing runs between calls; the timing
 * model the machines enforce is written down in lease.h.  Threads: one
 * protocol thread per state machine calls everything except the calls
 * proto_client.h marks "any thread".
 */
#ifndef FLASHMETA_PROTO_H
#define FLASHMETA_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "flashmeta/fence.h"
#include "flashmeta/wire.h"

#define FM_CONN_LOCAL UINT64_MAX /* the owner's own memory */
#define FM_ACT_READ_MAX (64u * 1024u) /* largest READ a machine asks for */

enum fm_action_type {
	FM_ACT_SEND = 1,
	FM_ACT_READ = 2,
	FM_ACT_CAS = 3,
	FM_ACT_PERSIST = 4,
	FM_ACT_FENCE = 5,
	FM_ACT_CLOSE = 6,
	FM_ACT_NOTIFY = 7,
	FM_ACT_CHANGED = 8,
};

enum fm_notify_type {
	/* client side */
	FM_NOTE_JOINED = 1,      /* WELCOME accepted: lease running */
	FM_NOTE_CLOSED = 2,      /* session over (status = -reason errno) */
	FM_NOTE_FETCHED = 3,     /* fetch(cookie) done: 0 / -ESTALE / -EIO (short
				  * answer) / the failed READ's status */
	FM_NOTE_LOCKED = 4,      /* lock(cookie): status 0 (split = already split) */
	FM_NOTE_COMMITTED = 5,   /* commit(cookie): 0 durable, -ESTALE, -EIO; unlocked */
	FM_NOTE_RELEASED = 6,    /* confirmations of map_id given back */
	FM_NOTE_GRANTED = 7,     /* confirmation lease on map_id/generation */
	FM_NOTE_LOCK_LOST = 8,   /* a held lock was found reclaimed */
	FM_NOTE_QUIESCED = 9,    /* a closed session's I/O all ended: no data
				  * step of it runs or can start (status: the
				  * session's close reason) */
	FM_NOTE_COPY_BATCH = 10, /* copy_claim(cookie) answered: status 0 and
				  * the answer in `copy`, or a refusal */
	FM_NOTE_SPLIT_ANSWER = 11, /* split_query(cookie) answered: status 0 and
				    * the bits in `query`, or a refusal */
	/* owner side */
	FM_NOTE_SESSION_UP = 20,   /* client_id authenticated on the action's conn:
				    * open its one-sided access to our regions
				    * now (the WELCOME naming them follows) */
	FM_NOTE_SESSION_DOWN = 21, /* client_id fenced and its locks reclaimed */
	FM_NOTE_REVOKED = 22,      /* map_id: every holder released or was fenced */
	FM_NOTE_GRACE_OVER = 23,   /* the restart grace ended: locks, commits and
				    * transitions are served from now on */
};

struct fm_notify {
	enum fm_notify_type type;
	int status;          /* 0 or negative errno */
	uint64_t cookie;     /* caller's token from fetch/lock/commit */
	uint64_t map_id;
	uint64_t grain;
	uint64_t generation;
	uint32_t client_id;
	bool split;          /* FETCHED/LOCKED: the grain is split */
	uint64_t word;       /* LOCKED of fm_client_lock_wait: the word the owner
			      * installed for us (HELD, maybe WAITERS) */
	struct {             /* COPY_BATCH, status 0: the owner's answer */
		uint32_t status; /* enum fm_copy_status */
		uint32_t wait_ms;
		uint32_t rate;
		uint64_t batch_id;
		uint64_t first, last;
	} copy;
	struct {             /* SPLIT_ANSWER: the query and, status 0, its bits */
		uint64_t first;
		uint32_t count;
		uint64_t bits[FM_WIRE_QUERY_MAX / 64]; /* bit i: grain first + i */
	} query;
};

struct fm_action {
	enum fm_action_type type;
	uint64_t conn;   /* owner: the peer (or FM_CONN_LOCAL); client: 0 */
	uint64_t op_id;  /* READ, CAS, PERSIST, CHANGED, FENCE: echo in op_done */
	union {
		struct {
			struct fm_region_desc region;
			uint64_t offset;
			uint32_t len;     /* READ */
			uint64_t compare; /* CAS */
			uint64_t swap;    /* CAS */
		} io;
		struct {          /* PERSIST (up to FM_WIRE_MAX_RANGES) and
				   * CHANGED (up to FM_WIRE_REPORT_MAX_RANGES) */
			uint64_t map_id;
			uint64_t generation;
			uint16_t range_count;
			struct fm_grain_range ranges[FM_WIRE_REPORT_MAX_RANGES];
		} persist;
		struct fm_notify note;
		struct {
			bool kill;        /* FENCE: stop the whole process if the
					   * transport can, not only its RDMA */
			uint32_t client_id; /* the session fenced, for storage */
			uint64_t token;     /* fencing (lease.h R5): 0 if it never
					     * got one (never ACTIVE) */
		} fence;
		struct {
			uint32_t len;
			uint8_t buf[FM_WIRE_MAX_MSG];
		} msg;
	} u;
};

_Static_assert(FM_WIRE_REPORT_MAX_RANGES >= FM_WIRE_MAX_RANGES,
	       "an action's ranges hold a SPLIT_COMMIT's and a CHANGE_REPORT's");

const char *fm_action_type_name(enum fm_action_type t);

#endif /* FLASHMETA_PROTO_H */
