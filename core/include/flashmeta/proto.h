/* proto.h -- what the sans-I/O protocol state machines ask a driver to do.
 *
 * The owner (proto_owner.h) and the client (proto_client.h) never touch a
 * network, a clock or a disk.  A driver feeds them events -- a received
 * datagram, a timer tick with a monotonic `now` in milliseconds, the result
 * of an operation they asked for -- and then drains their actions with
 * fm_owner_poll() / fm_client_poll() until it returns 0:
 *
 *   SEND     send msg[0..msg_len) to peer `conn` (one datagram, in order)
 *   READ     one-sided READ of `len` bytes at region+offset of peer `conn`;
 *            report with *_op_done(op_id, status, 0, data, len)
 *   CAS      one-sided 8-byte compare-and-swap at region+offset;
 *            report *_op_done(op_id, status, old value, NULL, 0).  The
 *            owner uses conn FM_CONN_LOCAL for its own lock table: it must
 *            still go through the transport's atomics (loopback), never a
 *            CPU store -- RDMA atomics are atomic only among themselves.
 *   PERSIST  owner: make grains of map/generation durably split in the
 *            store, and only then visible in the READ-able bitmap region;
 *            report *_op_done(op_id, 0 | -ESTALE | -EIO, ...).  The bitmap
 *            region must never show a bit whose persist did not complete.
 *   FENCE    owner: disconnect `conn` and invalidate every remote key it
 *            could use (so it can no longer CAS a lock word); report
 *            op_done(op_id, 0, ...) when no operation of that peer can
 *            land any more.  Lock reclamation waits for this.  A negative
 *            status means the peer could not be fenced: its lock words stay
 *            held and the owner asks again at its next tick.
 *   CLOSE    client: disconnect from the owner; nothing to report.
 *   NOTIFY   an event for the local engine/driver (struct fm_notify).
 *
 * Every READ/CAS/PERSIST/FENCE gets exactly one op_done; a transport
 * failure is reported as a negative status (the state machine then treats
 * the peer as gone).  Timing: everything is driven by `now`; nothing runs
 * between calls.  Threads: one protocol thread per state machine calls
 * everything except fm_client_io_begin/io_end.
 */
#ifndef FLASHMETA_PROTO_H
#define FLASHMETA_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "flashmeta/wire.h"

#define FM_CONN_LOCAL UINT64_MAX /* the owner's own memory */

enum fm_action_type {
	FM_ACT_SEND = 1,
	FM_ACT_READ = 2,
	FM_ACT_CAS = 3,
	FM_ACT_PERSIST = 4,
	FM_ACT_FENCE = 5,
	FM_ACT_CLOSE = 6,
	FM_ACT_NOTIFY = 7,
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
	/* owner side */
	FM_NOTE_SESSION_UP = 20,   /* client_id authenticated */
	FM_NOTE_SESSION_DOWN = 21, /* client_id fenced and its locks reclaimed */
	FM_NOTE_REVOKED = 22,      /* map_id: every holder released or was fenced */
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
};

struct fm_action {
	enum fm_action_type type;
	uint64_t conn;   /* owner: the peer (or FM_CONN_LOCAL); client: 0 */
	uint64_t op_id;  /* READ, CAS, PERSIST, FENCE: echo in op_done */
	union {
		struct {
			struct fm_region_desc region;
			uint64_t offset;
			uint32_t len;     /* READ */
			uint64_t compare; /* CAS */
			uint64_t swap;    /* CAS */
		} io;
		struct {
			uint64_t map_id;
			uint64_t generation;
			uint16_t range_count;
			struct fm_grain_range ranges[FM_WIRE_MAX_RANGES];
		} persist;
		struct fm_notify note;
		struct {
			uint32_t len;
			uint8_t buf[FM_WIRE_MAX_MSG];
		} msg;
	} u;
};

const char *fm_action_type_name(enum fm_action_type t);

/* ---- internal: the action queue both state machines keep ----
 * A growable FIFO of actions.  Owned by one protocol thread. */
struct fm_actq {
	struct fm_action *a;
	size_t head, count, cap;
};

static inline struct fm_action *fm_actq_push(struct fm_actq *q)
{
	struct fm_action *slot;

	if (q->count == q->cap) {
		size_t ncap = q->cap ? q->cap * 2 : 16;
		struct fm_action *na = malloc(ncap * sizeof(*na));

		if (!na)
			return NULL;
		for (size_t i = 0; i < q->count; i++)
			na[i] = q->a[(q->head + i) % q->cap];
		free(q->a);
		q->a = na;
		q->cap = ncap;
		q->head = 0;
	}
	slot = &q->a[(q->head + q->count) % q->cap];
	q->count++;
	memset(slot, 0, offsetof(struct fm_action, u) + sizeof(slot->u.io));
	return slot;
}

static inline int fm_actq_pop(struct fm_actq *q, struct fm_action *out)
{
	struct fm_action *a;

	if (!q->count)
		return 0;
	a = &q->a[q->head];
	if (a->type == FM_ACT_SEND) {
		/* copy only the bytes in use, not 4 KiB every time */
		memcpy(out, a, offsetof(struct fm_action, u.msg.buf));
		memcpy(out->u.msg.buf, a->u.msg.buf, a->u.msg.len);
	} else {
		*out = *a;
	}
	q->head = (q->head + 1) % q->cap;
	q->count--;
	return 1;
}

static inline void fm_actq_fini(struct fm_actq *q)
{
	free(q->a);
	memset(q, 0, sizeof(*q));
}

#endif /* FLASHMETA_PROTO_H */
