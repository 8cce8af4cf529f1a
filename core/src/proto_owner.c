/* proto_owner.c -- the owner's protocol state machine (sans-I/O).
 *
 * Design.  Everything is driven by the calls in proto_owner.h on one
 * protocol thread; every effect is an action queued for the driver.
 *
 *  sessions  A list of `struct osess`, one per connection, keyed by conn.
 *            HELLO_WAIT -> AUTH_WAIT -> ACTIVE -> FENCING -> RECLAIMING ->
 *            freed.  Any failure (malformed datagram, wrong key, sequence
 *            gap, lease expiry, lost connection) goes to FENCING: a BYE is
 *            sent when the connection still works, then FENCE.  Only after
 *            fence_done can the peer no longer land an atomic, and only
 *            after its lease (+ grace) ran out can no I/O of it still trust
 *            a confirmation; only when both hold are its map grants
 *            dropped (a revoke may complete) and its lock words reclaimed
 *            (READ the table, CAS its words away) -- see sess_fenced_step.
 *
 *  leases    Owner-side expiry = receive time of AUTH/RENEW + term + grace.
 *            The client counts from its *send* time without grace, so it
 *            always stops trusting its cache before the owner acts.
 *
 *  maps      A fixed array of FM_WIRE_MAX_MAPS slots.  Each session keeps
 *            one byte per slot: NONE, GRANTED, RELEASING.  A revoke sends
 *            RELEASE_REQUEST to GRANTED holders and completes (NOTE REVOKED)
 *            when no session has the slot != NONE and no PERSIST of the map
 *            is in flight; until fm_owner_map_update the map is withheld
 *            from new sessions and split commits on it are STALE.
 *
 *  locks     Uncontended locking never reaches the owner (client CAS).  A
 *            LOCK_REQUEST creates a `struct olock` for that word: a FIFO of
 *            waiters plus what the owner last saw in the word (`cur`).
 *            olock_step() issues at most one CAS per word at a time:
 *              cur free            -> CAS 0 -> head (GRANT)
 *              cur held, no WAIT   -> CAS cur -> cur|WAITERS (ARM)
 *              cur held, WAIT      -> wait for UNLOCK (or reclaim)
 *              cur dead (UNLOCK or reclaimed) -> CAS cur -> head or 0
 *            A failed CAS teaches the real value and the step repeats.
 *            An olock with no waiters and nothing to release is freed.
 *
 *  commits   SPLIT_COMMIT -> holder check (loopback CAS per lock word,
 *            compare == swap) -> PERSIST action -> op_done(0) -> SPLIT_ACK.
 *            1. the client made the copied data durable before it sent
 *               SPLIT_COMMIT;
 *            2. the owner checks that the session holds the grain lock(s)
 *               (else ERROR -ENOLCK, nothing recorded);
 *            3. the driver makes the bits durable, then visible;
 *            4. only then is the ACK sent.
 *            A session's commits in flight (s->commits) hold back the
 *            reclaim of its words after a fence, and count in the map's
 *            `persists`, which holds back REVOKED.
 *
 * Cost: sessions, olocks and pending ops are linked lists searched
 * linearly -- fine for tens of clients and a few contended words; hash
 * them when that stops being true.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "flashmeta/error.h"
#include "flashmeta/lockword.h"
#include "flashmeta/mapping.h"
#include "flashmeta/proto_owner.h"

#define SCAN_CHUNK (64u * 1024u) /* lock-table bytes per reclaim READ */

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
	uint8_t client_nonce[FM_WIRE_NONCE_SIZE];
	uint8_t owner_nonce[FM_WIRE_NONCE_SIZE];
	uint64_t tx_seq;         /* last sequence number sent */
	uint64_t rx_seq;         /* last sequence number received */
	uint64_t deadline;       /* handshake deadline or owner-side lease expiry */
	uint8_t mstate[FM_WIRE_MAX_MAPS];
	unsigned scans_pending;
	bool reclaim;            /* was ACTIVE: its words must be reclaimed */
	unsigned commits;        /* SPLIT_COMMITs being checked or persisted */
	bool fence_done;         /* FENCING: fence completed, lease may still run */
	bool fence_queued;       /* FENCING: a FENCE action is out, not yet done */
	bool scan_wait;          /* fenced; reclaim waits for commits == 0 */
};

struct omap {
	bool used;
	bool revoking;   /* RELEASE_REQUESTs out, waiting */
	bool withheld;   /* revoked, not yet updated */
	unsigned persists; /* commits being checked or persisted */
	struct fm_wire_mapdesc d;
};

struct owaiter {
	struct owaiter *next;
	uint64_t session_id;
	uint64_t conn;
	uint64_t word;       /* HELD word for this waiter */
	uint64_t first, last, generation;
	uint64_t req_seq;    /* its LOCK_REQUEST, for an ERROR */
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

enum oop_kind { OP_LOCK_CAS = 1, OP_SCAN, OP_PERSIST, OP_FENCE, OP_HOLDER };

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
	struct oop *next;
	uint64_t id;
	enum oop_kind kind;
	struct olock *lock;     /* OP_LOCK_CAS */
	uint64_t session_id;    /* OP_SCAN, OP_PERSIST, OP_FENCE */
	uint64_t conn;
	unsigned slot;          /* OP_SCAN, OP_PERSIST */
	uint64_t base_index;    /* OP_SCAN: first word of the chunk */
	uint64_t generation, commit_id; /* OP_PERSIST */
	struct ocommit *commit;  /* OP_HOLDER */
};

struct fm_owner {
	struct fm_owner_cfg cfg;
	struct fm_actq q;
	struct oclient *clients;
	struct osess *sessions;
	struct omap maps[FM_WIRE_MAX_MAPS];
	struct olock *locks;
	struct oop *ops;
	uint64_t next_op;
	uint64_t next_session;
	uint32_t next_epoch;
	struct fm_owner_stats st;
};

static const char *const osess_names[] = {
	"hello-wait", "auth-wait", "active", "fencing", "reclaiming",
};

const char *fm_osess_state_name(int state)
{
	if (state < 0 || state > FM_OSESS_RECLAIMING)
		return "?";
	return osess_names[state];
}

const char *fm_action_type_name(enum fm_action_type t)
{
	switch (t) {
	case FM_ACT_SEND: return "send";
	case FM_ACT_READ: return "read";
	case FM_ACT_CAS: return "cas";
	case FM_ACT_PERSIST: return "persist";
	case FM_ACT_FENCE: return "fence";
	case FM_ACT_CLOSE: return "close";
	case FM_ACT_NOTIFY: return "notify";
	}
	return "?";
}

/* ---- helpers ---- */
static void rand_fill(struct fm_owner *o, void *buf, size_t len)
{
	if (o->cfg.rand_bytes) {
		o->cfg.rand_bytes(o->cfg.rand_ctx, buf, len);
		return;
	}
	if (getrandom(buf, len, 0) != (ssize_t)len)
		memset(buf, 0, len); /* never reached on Linux for <= 256 bytes */
}

static struct osess *sess_by_conn(struct fm_owner *o, uint64_t conn)
{
	for (struct osess *s = o->sessions; s; s = s->next)
		if (s->conn == conn)
			return s;
	return NULL;
}

static struct osess *sess_by_id(struct fm_owner *o, uint64_t id)
{
	for (struct osess *s = o->sessions; s; s = s->next)
		if (s->session_id == id)
			return s;
	return NULL;
}

static int map_slot(struct fm_owner *o, uint64_t map_id)
{
	for (unsigned i = 0; i < FM_WIRE_MAX_MAPS; i++)
		if (o->maps[i].used && o->maps[i].d.map_id == map_id)
			return (int)i;
	return -1;
}

static struct oop *op_new(struct fm_owner *o, enum oop_kind kind)
{
	struct oop *op = calloc(1, sizeof(*op));

	if (!op)
		return NULL;
	op->id = ++o->next_op;
	op->kind = kind;
	op->next = o->ops;
	o->ops = op;
	return op;
}

static struct oop *op_take(struct fm_owner *o, uint64_t id)
{
	for (struct oop **pp = &o->ops; *pp; pp = &(*pp)->next) {
		if ((*pp)->id == id) {
			struct oop *op = *pp;

			*pp = op->next;
			return op;
		}
	}
	return NULL;
}

static int note(struct fm_owner *o, enum fm_notify_type type, int status,
		uint64_t map_id, uint32_t client_id)
{
	struct fm_action *a = fm_actq_push(&o->q);

	if (!a)
		return -ENOMEM;
	a->type = FM_ACT_NOTIFY;
	memset(&a->u.note, 0, sizeof(a->u.note));
	a->u.note.type = type;
	a->u.note.status = status;
	a->u.note.map_id = map_id;
	a->u.note.client_id = client_id;
	return 0;
}

/* Encode `m` for session s (fills session and sequence) as a SEND. */
static int send_msg(struct fm_owner *o, struct osess *s, struct fm_msg *m)
{
	struct fm_action *a = fm_actq_push(&o->q);
	int n;

	if (!a)
		return fm_err(-ENOMEM, "owner: action queue full");
	m->session = s->session_id;
	m->seq = ++s->tx_seq;
	n = fm_wire_encode(m, a->u.msg.buf, sizeof(a->u.msg.buf));
	if (n < 0) {
		o->q.count--; /* un-push: encode refused our own message (a bug) */
		return n;
	}
	a->type = FM_ACT_SEND;
	a->conn = s->conn;
	a->u.msg.len = (uint32_t)n;
	return 0;
}

static void msg_init(struct fm_msg *m, uint16_t type)
{
	memset(m, 0, offsetof(struct fm_msg, u));
	m->type = type;
}

static void fill_mapgrant(struct fm_owner *o, struct fm_msg *m, unsigned slot)
{
	msg_init(m, FM_MSG_MAP_GRANT);
	m->u.map_grant.map = o->maps[slot].d;
}

static void send_error(struct fm_owner *o, struct osess *s, uint64_t ref_seq, int err)
{
	struct fm_msg m;

	msg_init(&m, FM_MSG_ERROR);
	m.u.error.ref_seq = ref_seq;
	m.u.error.code = (uint32_t)-err;
	send_msg(o, s, &m);
}

/* ---- revoke bookkeeping ---- */
static void check_revoke(struct fm_owner *o, unsigned slot)
{
	struct omap *mp = &o->maps[slot];

	if (!mp->used || !mp->revoking || mp->persists)
		return;
	for (struct osess *s = o->sessions; s; s = s->next)
		if (s->mstate[slot] != MS_NONE)
			return;
	mp->revoking = false;
	mp->withheld = true;
	note(o, FM_NOTE_REVOKED, 0, mp->d.map_id, 0);
}

/* ---- grain locks ---- */
static void olock_step(struct fm_owner *o, struct olock *l);
static void sess_scan(struct fm_owner *o, struct osess *s);

static struct olock *olock_get(struct fm_owner *o, unsigned slot, uint64_t index,
			       uint64_t seen)
{
	struct olock *l;

	for (l = o->locks; l; l = l->next)
		if (l->slot == slot && l->index == index)
			return l;
	l = calloc(1, sizeof(*l));
	if (!l)
		return NULL;
	l->slot = slot;
	l->index = index;
	l->cur = seen;
	l->next = o->locks;
	o->locks = l;
	return l;
}

static void olock_free(struct fm_owner *o, struct olock *l)
{
	for (struct olock **pp = &o->locks; *pp; pp = &(*pp)->next) {
		if (*pp == l) {
			*pp = l->next;
			break;
		}
	}
	while (l->head) {
		struct owaiter *w = l->head;

		l->head = w->next;
		free(w);
	}
	free(l);
}

/* Drop waiters at the head whose session is no longer active. */
static void olock_prune(struct fm_owner *o, struct olock *l)
{
	struct owaiter **pp = &l->head;

	l->tail = NULL;
	while (*pp) {
		struct osess *s = sess_by_id(o, (*pp)->session_id);

		if (!s || s->state != FM_OSESS_ACTIVE) {
			struct owaiter *w = *pp;

			*pp = w->next;
			free(w);
			l->nwait--;
			continue;
		}
		l->tail = *pp;
		pp = &(*pp)->next;
	}
}

static int olock_cas(struct fm_owner *o, struct olock *l, enum olock_kind kind,
		     uint64_t expect, uint64_t swap)
{
	const struct omap *mp = &o->maps[l->slot];
	struct fm_action *a;
	struct oop *op = op_new(o, OP_LOCK_CAS);

	if (!op)
		return -ENOMEM;
	a = fm_actq_push(&o->q);
	if (!a) {
		op_take(o, op->id);
		free(op);
		return -ENOMEM;
	}
	op->lock = l;
	l->busy = true;
	l->kind = kind;
	l->expect = expect;
	l->swap = swap;
	a->type = FM_ACT_CAS;
	a->conn = FM_CONN_LOCAL;
	a->op_id = op->id;
	a->u.io.region = mp->d.locks;
	a->u.io.offset = l->index * 8;
	a->u.io.compare = expect;
	a->u.io.swap = swap;
	return 0;
}

static uint64_t head_word(const struct olock *l)
{
	uint64_t w = l->head->word;

	if (l->nwait > 1)
		w |= FM_LOCKWORD_F_WAITERS;
	return w;
}

static void olock_step(struct fm_owner *o, struct olock *l)
{
	if (l->busy)
		return;
	olock_prune(o, l);
	if (l->dead) {
		if (l->head)
			olock_cas(o, l, OL_HANDOFF, l->cur, head_word(l));
		else
			olock_cas(o, l, OL_FREE, l->cur, FM_LOCKWORD_FREE);
		return;
	}
	if (!l->head) {
		olock_free(o, l);
		return;
	}
	if (l->cur == FM_LOCKWORD_FREE)
		olock_cas(o, l, OL_GRANT, FM_LOCKWORD_FREE, head_word(l));
	else if (!(fm_lockword_flags(l->cur) & FM_LOCKWORD_F_WAITERS))
		olock_cas(o, l, OL_ARM, l->cur, l->cur | FM_LOCKWORD_F_WAITERS);
	/* else armed: the holder will send UNLOCK (or be reclaimed) */
}

static void olock_cas_done(struct fm_owner *o, struct olock *l, int status,
			   uint64_t old)
{
	const struct omap *mp = &o->maps[l->slot];

	l->busy = false;
	if (status < 0)
		return; /* retried from fm_owner_tick */
	if (old != l->expect) {
		/* The word was not what we thought: learn and retry.  A dead
		 * word whose holder is unchanged (only WAITERS moved) stays
		 * dead; anything else means someone else owns it now. */
		if (l->dead && !fm_lockword_same_holder(old, l->expect))
			l->dead = false;
		l->cur = old;
		olock_step(o, l);
		return;
	}
	l->cur = l->swap;
	if (l->kind == OL_FREE) {
		l->dead = false;
	} else if (l->kind == OL_GRANT || l->kind == OL_HANDOFF) {
		struct owaiter *w = l->head;
		struct osess *s = sess_by_id(o, w->session_id);

		l->head = w->next;
		if (!l->head)
			l->tail = NULL;
		l->nwait--;
		l->dead = false;
		if (s && s->state == FM_OSESS_ACTIVE) {
			struct fm_msg m;

			msg_init(&m, FM_MSG_LOCK_GRANT);
			m.u.lock.map_id = mp->d.map_id;
			m.u.lock.generation = w->generation;
			m.u.lock.first = w->first;
			m.u.lock.last = w->last;
			m.u.lock.word = l->swap;
			send_msg(o, s, &m);
			o->st.lock_grants++;
		} else {
			/* the grantee died while the CAS flew: release it */
			l->dead = true;
		}
		free(w);
	}
	olock_step(o, l);
}

/* A dead holder's word, found by the reclaim scan. */
static void olock_reclaim(struct fm_owner *o, unsigned slot, uint64_t index,
			  uint64_t word)
{
	struct olock *l = olock_get(o, slot, index, word);

	if (!l)
		return;
	if (!l->busy) {
		l->cur = word;
		l->dead = true;
	} else if (fm_lockword_same_holder(l->cur, word)) {
		l->dead = true;
	}
	o->st.locks_reclaimed++;
	olock_step(o, l);
}

/* Range [first, last] of one lock word of map slot, inside the map? */
static int lock_range_ok(const struct omap *mp, uint64_t first, uint64_t last)
{
	unsigned sh = mp->d.lock_shift;

	if (last >= mp->d.grain_count)
		return fm_err(-ERANGE, "lock range ends at %llu, map has %llu grains",
			      (unsigned long long)last,
			      (unsigned long long)mp->d.grain_count);
	if ((first >> sh) != (last >> sh))
		return fm_err(-ERANGE, "lock range spans several lock words");
	return 0;
}

static void on_lock_request(struct fm_owner *o, struct osess *s, const struct fm_msg *m)
{
	int slot = map_slot(o, m->u.lock.map_id);
	struct owaiter *w;
	struct olock *l;

	o->st.lock_requests++;
	if (slot < 0) {
		send_error(o, s, m->seq, -ENOENT);
		return;
	}
	if (lock_range_ok(&o->maps[slot], m->u.lock.first, m->u.lock.last)) {
		send_error(o, s, m->seq, -ERANGE);
		return;
	}
	l = olock_get(o, (unsigned)slot,
		      fm_lockword_index(m->u.lock.first, o->maps[slot].d.lock_shift),
		      m->u.lock.word);
	w = calloc(1, sizeof(*w));
	if (!l || !w) {
		free(w);
		send_error(o, s, m->seq, -ENOMEM);
		return;
	}
	w->session_id = s->session_id;
	w->conn = s->conn;
	w->word = fm_lockword_make((uint16_t)s->client_id, s->epoch, FM_LOCKWORD_F_HELD);
	w->first = m->u.lock.first;
	w->last = m->u.lock.last;
	w->generation = m->u.lock.generation;
	w->req_seq = m->seq;
	if (l->tail)
		l->tail->next = w;
	else
		l->head = w;
	l->tail = w;
	l->nwait++;
	/* The requester saw a newer value than we knew only if we had no
	 * CAS in flight; a stale `cur` is corrected by the next CAS. */
	if (!l->busy && !l->dead && l->cur == FM_LOCKWORD_FREE)
		l->cur = m->u.lock.word;
	olock_step(o, l);
}

static void on_unlock(struct fm_owner *o, struct osess *s, const struct fm_msg *m)
{
	int slot = map_slot(o, m->u.lock.map_id);
	uint64_t mine = fm_lockword_make((uint16_t)s->client_id, s->epoch, 0);
	struct olock *l;

	if (slot < 0 || lock_range_ok(&o->maps[slot], m->u.lock.first, m->u.lock.last) ||
	    !fm_lockword_same_holder(m->u.lock.word, mine)) {
		send_error(o, s, m->seq, slot < 0 ? -ENOENT : -ERANGE);
		return;
	}
	l = olock_get(o, (unsigned)slot,
		      fm_lockword_index(m->u.lock.first, o->maps[slot].d.lock_shift),
		      m->u.lock.word);
	if (!l)
		return;
	if (!l->busy)
		l->cur = m->u.lock.word;
	l->dead = true;
	olock_step(o, l);
}

/* ---- sessions ---- */
static void sess_free(struct fm_owner *o, struct osess *s)
{
	for (struct osess **pp = &o->sessions; *pp; pp = &(*pp)->next) {
		if (*pp == s) {
			*pp = s->next;
			break;
		}
	}
	free(s);
}

/* Close: BYE (if the connection still works), FENCE, then reclaim. */
/*
 * sess_fence -- ask the driver to fence s (FENCE action).  Only a FENCE
 * reported with status 0 counts; on failure, or when no memory was left
 * to queue it, fence_queued stays false and fm_owner_tick asks again.
 * Until then s stays FENCING: its lock words stay held, which is safe.
 */
static void sess_fence(struct fm_owner *o, struct osess *s)
{
	struct fm_action *a;
	struct oop *op;

	if (s->fence_done || s->fence_queued)
		return;
	op = op_new(o, OP_FENCE);
	if (!op)
		return;
	a = fm_actq_push(&o->q);
	if (!a) {
		op_take(o, op->id);
		free(op);
		return;
	}
	op->session_id = s->session_id;
	op->conn = s->conn;
	a->type = FM_ACT_FENCE;
	a->conn = s->conn;
	a->op_id = op->id;
	s->fence_queued = true;
}

static void sess_close(struct fm_owner *o, struct osess *s, uint32_t reason,
		       int err, bool can_send)
{
	if (s->state >= FM_OSESS_FENCING)
		return;
	if (can_send) {
		struct fm_msg m;

		msg_init(&m, FM_MSG_BYE);
		m.u.bye.reason = reason;
		m.u.bye.code = (uint32_t)-err;
		send_msg(o, s, &m);
	}
	if (s->state == FM_OSESS_ACTIVE) {
		s->reclaim = true;
		o->st.sessions_active--;
	}
	s->state = FM_OSESS_FENCING;
	o->st.sessions_closed++;
	o->st.fences++;
	sess_fence(o, s);
	/* queued lock requests of s go away now */
	for (struct olock *l = o->locks, *n; l; l = n) {
		n = l->next;
		olock_step(o, l);
	}
}

static void sess_reclaimed(struct fm_owner *o, struct osess *s)
{
	uint32_t id = s->client_id;
	bool was_active = s->reclaim;

	sess_free(o, s);
	if (was_active)
		note(o, FM_NOTE_SESSION_DOWN, 0, 0, id);
}

/* READ every lock table, looking for words of the dead session. */
static void sess_scan(struct fm_owner *o, struct osess *s)
{
	for (unsigned i = 0; i < FM_WIRE_MAX_MAPS; i++) {
		const struct omap *mp = &o->maps[i];
		uint64_t words, bytes;

		if (!mp->used)
			continue;
		words = ((mp->d.grain_count - 1) >> mp->d.lock_shift) + 1;
		bytes = words * 8;
		for (uint64_t off = 0; off < bytes; off += SCAN_CHUNK) {
			struct oop *op = op_new(o, OP_SCAN);
			struct fm_action *a = op ? fm_actq_push(&o->q) : NULL;

			if (!a)
				break;
			op->session_id = s->session_id;
			op->slot = i;
			op->base_index = off / 8;
			a->type = FM_ACT_READ;
			a->conn = FM_CONN_LOCAL;
			a->op_id = op->id;
			a->u.io.region = mp->d.locks;
			a->u.io.offset = off;
			a->u.io.len = (uint32_t)(bytes - off < SCAN_CHUNK ? bytes - off : SCAN_CHUNK);
			s->scans_pending++;
		}
	}
	if (!s->scans_pending)
		sess_reclaimed(o, s);
}

/*
 * A closed session's grants and lock words count until BOTH its fence
 * completed (no atomic of it can land) AND its owner-side lease ran out.
 * The fence stops the peer's RDMA, not its disk I/O: a client whose link
 * broke discards its cache at once, but an I/O that trusted a hit just
 * before may still run, up to the bound the protocol assumes (it started
 * before the client's lease lapsed, which is at least `grace` before our
 * deadline).  Dropping the grant earlier would let a revoke complete --
 * and the driver restart the map -- under that I/O; reclaiming its words
 * earlier would let a late copy of the dead holder land on a grain that
 * the next holder already copied and the target then wrote.  Called on
 * fence completion and from every tick.
 */
static void sess_fenced_step(struct fm_owner *o, struct osess *s, uint64_t now)
{
	if (s->state != FM_OSESS_FENCING || !s->fence_done)
		return;
	if (s->reclaim && now < s->deadline)
		return;
	s->state = FM_OSESS_RECLAIMING;
	for (unsigned i = 0; i < FM_WIRE_MAX_MAPS; i++) {
		if (s->mstate[i] != MS_NONE) {
			s->mstate[i] = MS_NONE;
			check_revoke(o, i);
		}
	}
	if (!s->reclaim) {
		sess_reclaimed(o, s);
		return;
	}
	/* A commit of s checked its words and may be persisting: handing
	 * them to someone else now would let that one copy the grain while
	 * our PERSIST lands (a third client could then trust the bit, or
	 * overwrite the source, in the middle of that copy).  Wait. */
	if (s->commits) {
		s->scan_wait = true;
		return;
	}
	sess_scan(o, s);
}

static void on_scan_done(struct fm_owner *o, struct oop *op, int status,
			 const uint8_t *data, size_t len)
{
	struct osess *s = sess_by_id(o, op->session_id);

	if (!s)
		return;
	if (status == 0 && o->maps[op->slot].used) {
		uint64_t dead = fm_lockword_make((uint16_t)s->client_id, s->epoch, 0);

		for (size_t i = 0; i + 8 <= len; i += 8) {
			uint64_t w = 0;

			for (int b = 7; b >= 0; b--)
				w = w << 8 | data[i + (size_t)b];
			if ((fm_lockword_flags(w) & FM_LOCKWORD_F_HELD) &&
			    fm_lockword_same_holder(w, dead))
				olock_reclaim(o, op->slot, op->base_index + i / 8, w);
		}
	}
	if (--s->scans_pending == 0)
		sess_reclaimed(o, s);
}

static void send_welcome(struct fm_owner *o, struct osess *s)
{
	struct fm_msg *m = calloc(1, sizeof(*m));

	if (!m) {
		sess_close(o, s, FM_BYE_SHUTDOWN, -ENOMEM, true);
		return;
	}
	m->type = FM_MSG_WELCOME;
	m->u.welcome.session_id = s->session_id;
	m->u.welcome.client_epoch = s->epoch;
	m->u.welcome.lease_term_ms = o->cfg.lease_term_ms;
	for (unsigned i = 0; i < FM_WIRE_MAX_MAPS; i++) {
		if (!o->maps[i].used || o->maps[i].revoking || o->maps[i].withheld)
			continue;
		m->u.welcome.maps[m->u.welcome.map_count++] = o->maps[i].d;
		s->mstate[i] = MS_GRANTED;
	}
	send_msg(o, s, m);
	free(m);
}

static const struct oclient *client_find(struct fm_owner *o, uint32_t id)
{
	for (struct oclient *c = o->clients; c; c = c->next)
		if (c->id == id)
			return c;
	return NULL;
}

static void on_hello(struct fm_owner *o, struct osess *s, const struct fm_msg *m)
{
	struct fm_msg r;

	if (!client_find(o, m->u.hello.client_id)) {
		o->st.auth_failures++;
		sess_close(o, s, FM_BYE_UNKNOWN_CLIENT, -EACCES, true);
		return;
	}
	if (m->u.hello.ver_major != FM_WIRE_MAJOR) {
		sess_close(o, s, FM_BYE_PROTOCOL, -EPROTONOSUPPORT, true);
		return;
	}
	s->client_id = m->u.hello.client_id;
	memcpy(s->client_nonce, m->u.hello.nonce, FM_WIRE_NONCE_SIZE);
	rand_fill(o, s->owner_nonce, FM_WIRE_NONCE_SIZE);
	s->state = FM_OSESS_AUTH_WAIT;
	msg_init(&r, FM_MSG_CHALLENGE);
	memcpy(r.u.challenge.nonce, s->owner_nonce, FM_WIRE_NONCE_SIZE);
	send_msg(o, s, &r);
}

static void on_auth(struct fm_owner *o, struct osess *s, const struct fm_msg *m,
		    uint64_t now)
{
	const struct oclient *c = client_find(o, s->client_id);
	uint8_t want[FM_WIRE_MAC_SIZE];

	if (!c) { /* removed meanwhile */
		sess_close(o, s, FM_BYE_UNKNOWN_CLIENT, -EACCES, true);
		return;
	}
	fm_wire_auth_mac(c->key, c->key_len, s->client_id, s->client_nonce,
			 s->owner_nonce, s->session_id, want);
	if (!fm_wire_mac_equal(want, m->u.auth.mac, FM_WIRE_MAC_SIZE)) {
		o->st.auth_failures++;
		sess_close(o, s, FM_BYE_AUTH_FAILED, -EACCES, true);
		return;
	}
	/* one live session per client: an older one is superseded */
	for (struct osess *old = o->sessions; old; old = old->next)
		if (old != s && old->client_id == s->client_id &&
		    old->state == FM_OSESS_ACTIVE)
			sess_close(o, old, FM_BYE_SUPERSEDED, -EEXIST, true);
	s->epoch = o->next_epoch++;
	if (o->next_epoch == 0)
		o->next_epoch = 1;
	s->state = FM_OSESS_ACTIVE;
	s->deadline = now + o->cfg.lease_term_ms + o->cfg.lease_grace_ms;
	o->st.sessions_active++;
	send_welcome(o, s);
	note(o, FM_NOTE_SESSION_UP, 0, 0, s->client_id);
}

#define HOLDER_CHECK_MAX 256u /* lock words one SPLIT_COMMIT may cover */

static void send_ack(struct fm_owner *o, struct osess *s, uint64_t map_id,
		     uint64_t generation, uint64_t commit_id, uint32_t status)
{
	struct fm_msg r;

	msg_init(&r, FM_MSG_SPLIT_ACK);
	r.u.ack.map_id = map_id;
	r.u.ack.generation = generation;
	r.u.ack.commit_id = commit_id;
	r.u.ack.status = status;
	send_msg(o, s, &r);
}

/* A fenced session's words are reclaimed only when none of its commits is
 * still being checked or persisted (see "commits" above). */
static void sess_commit_done(struct fm_owner *o, struct osess *s)
{
	if (!s)
		return;
	s->commits--;
	if (s->state == FM_OSESS_RECLAIMING && s->scan_wait && s->commits == 0) {
		s->scan_wait = false;
		sess_scan(o, s);
	}
}

/* Every lock word of the commit was checked: persist, or refuse. */
static void commit_checked(struct fm_owner *o, struct ocommit *c)
{
	struct osess *s = sess_by_id(o, c->session_id);
	struct omap *mp = &o->maps[c->slot];
	struct fm_action *a;
	struct oop *op;

	if (!s || s->state != FM_OSESS_ACTIVE) {
		/* nobody to answer; nothing recorded (the client learns
		 * -ECONNRESET from its own session closing) */
		mp->persists--;
		sess_commit_done(o, s);
		check_revoke(o, c->slot);
		free(c);
		return;
	}
	if (c->not_held || c->failed || mp->withheld ||
	    c->generation != mp->d.generation || mp->d.state != FM_MAP_COPYING) {
		if (c->not_held) {
			o->st.commits_refused++;
			send_error(o, s, c->ref_seq, -ENOLCK);
		} else {
			send_ack(o, s, c->map_id, c->generation, c->commit_id,
				 c->failed ? FM_SPLIT_FAILED : FM_SPLIT_STALE);
		}
		mp->persists--;
		sess_commit_done(o, s);
		check_revoke(o, c->slot);
		free(c);
		return;
	}
	op = op_new(o, OP_PERSIST);
	a = op ? fm_actq_push(&o->q) : NULL;
	if (!a) {
		if (op)
			free(op_take(o, op->id));
		send_ack(o, s, c->map_id, c->generation, c->commit_id, FM_SPLIT_FAILED);
		mp->persists--;
		sess_commit_done(o, s);
		check_revoke(o, c->slot);
		free(c);
		return;
	}
	/* mp->persists and s->commits carry over to the PERSIST */
	op->session_id = s->session_id;
	op->slot = c->slot;
	op->generation = c->generation;
	op->commit_id = c->commit_id;
	a->type = FM_ACT_PERSIST;
	a->op_id = op->id;
	a->u.persist.map_id = c->map_id;
	a->u.persist.generation = c->generation;
	a->u.persist.range_count = c->range_count;
	memcpy(a->u.persist.ranges, c->ranges, c->range_count * sizeof(c->ranges[0]));
	free(c);
}

static void on_holder_done(struct fm_owner *o, struct oop *op, int status, uint64_t old)
{
	struct ocommit *c = op->commit;
	struct osess *s = sess_by_id(o, c->session_id);
	uint64_t want = s ? fm_lockword_make((uint16_t)s->client_id, s->epoch,
					     FM_LOCKWORD_F_HELD) : 0;

	if (status < 0)
		c->failed = true;
	else if (!s || !(fm_lockword_flags(old) & FM_LOCKWORD_F_HELD) ||
		 !fm_lockword_same_holder(old, want))
		c->not_held = true;
	if (--c->pending == 0)
		commit_checked(o, c);
}

/*
 * SPLIT_COMMIT.  Before anything is persisted the owner checks that the
 * committing session holds every lock word the ranges touch: one loopback
 * CAS per word with compare == swap == (client, epoch, HELD) -- an atomic
 * read that changes nothing (a CAS, not a READ, because only atomics are
 * atomic against the clients' atomics).  Tracking holders from our own
 * observations is not enough: the uncontended acquire never reaches us.
 * The check is sound against a later reclaim because a fenced session's
 * words are reclaimed only after its commits finished (s->commits), so
 * the word cannot change hands between the check and the persist -- except
 * by the holder itself releasing early, which a correct client never does
 * before SPLIT_ACK.  Cost: one local atomic round trip per word before the
 * PERSIST (one word for a single-grain commit).
 *
 * Durability order (see the design comment):
 *  1. the client made the copied data durable before it sent this;
 *  2. the owner checks the client still holds the grain lock(s);
 *  3. PERSIST: the driver makes the bits durable, then visible;
 *  4. only then SPLIT_ACK OK.
 */
static void on_commit(struct fm_owner *o, struct osess *s, const struct fm_msg *m)
{
	const struct fm_msg_split_commit *cm = &m->u.commit;
	int slot = map_slot(o, cm->map_id);
	uint64_t want, words = 0;
	struct ocommit *c;
	struct omap *mp;
	unsigned sh;

	o->st.commits++;
	if (slot < 0) {
		send_error(o, s, m->seq, -ENOENT);
		return;
	}
	mp = &o->maps[slot];
	sh = mp->d.lock_shift;
	for (unsigned i = 0; i < cm->range_count; i++) {
		if (cm->ranges[i].last >= mp->d.grain_count) {
			send_error(o, s, m->seq, -ERANGE);
			return;
		}
		words += (cm->ranges[i].last >> sh) - (cm->ranges[i].first >> sh) + 1;
	}
	if (mp->withheld || cm->generation != mp->d.generation ||
	    mp->d.state != FM_MAP_COPYING) {
		send_ack(o, s, cm->map_id, cm->generation, cm->commit_id, FM_SPLIT_STALE);
		return;
	}
	if (words > HOLDER_CHECK_MAX) {
		send_error(o, s, m->seq, -E2BIG);
		return;
	}
	c = calloc(1, sizeof(*c));
	if (!c) {
		send_ack(o, s, cm->map_id, cm->generation, cm->commit_id, FM_SPLIT_FAILED);
		return;
	}
	c->session_id = s->session_id;
	c->ref_seq = m->seq;
	c->slot = (unsigned)slot;
	c->map_id = cm->map_id;
	c->generation = cm->generation;
	c->commit_id = cm->commit_id;
	c->range_count = cm->range_count;
	memcpy(c->ranges, cm->ranges, cm->range_count * sizeof(cm->ranges[0]));
	mp->persists++;
	s->commits++;
	c->pending = 1; /* held by us while issuing */
	want = fm_lockword_make((uint16_t)s->client_id, s->epoch, FM_LOCKWORD_F_HELD);
	for (unsigned i = 0; i < cm->range_count && !c->failed; i++) {
		for (uint64_t w = cm->ranges[i].first >> sh;
		     w <= cm->ranges[i].last >> sh && !c->failed; w++) {
			struct oop *op = op_new(o, OP_HOLDER);
			struct fm_action *a = op ? fm_actq_push(&o->q) : NULL;

			if (!a) {
				if (op)
					free(op_take(o, op->id));
				c->failed = true;
				break;
			}
			op->commit = c;
			op->session_id = s->session_id;
			op->slot = (unsigned)slot;
			c->pending++;
			a->type = FM_ACT_CAS;
			a->conn = FM_CONN_LOCAL;
			a->op_id = op->id;
			a->u.io.region = mp->d.locks;
			a->u.io.offset = w * 8;
			a->u.io.compare = want;
			a->u.io.swap = want;
		}
	}
	if (--c->pending == 0)
		commit_checked(o, c);
}

static void on_persist_done(struct fm_owner *o, struct oop *op, int status)
{
	struct osess *s = sess_by_id(o, op->session_id);
	struct omap *mp = &o->maps[op->slot];

	mp->persists--;
	if (s && s->state == FM_OSESS_ACTIVE) {
		send_ack(o, s, mp->d.map_id, op->generation, op->commit_id,
			 status == 0 ? FM_SPLIT_OK :
			 status == -ESTALE ? FM_SPLIT_STALE : FM_SPLIT_FAILED);
		o->st.acks++;
	}
	sess_commit_done(o, s);
	check_revoke(o, op->slot);
}

static void on_active(struct fm_owner *o, struct osess *s, const struct fm_msg *m,
		      uint64_t now)
{
	struct fm_msg r;
	int slot;

	switch (m->type) {
	case FM_MSG_LEASE_RENEW:
		s->deadline = now + o->cfg.lease_term_ms + o->cfg.lease_grace_ms;
		msg_init(&r, FM_MSG_LEASE_GRANT);
		r.u.lease.renew_id = m->u.renew.renew_id;
		r.u.lease.lease_term_ms = o->cfg.lease_term_ms;
		send_msg(o, s, &r);
		break;
	case FM_MSG_LOCK_REQUEST:
		on_lock_request(o, s, m);
		break;
	case FM_MSG_UNLOCK:
		on_unlock(o, s, m);
		break;
	case FM_MSG_RELEASED:
		slot = map_slot(o, m->u.released.map_id);
		if (slot >= 0 && s->mstate[slot] != MS_NONE) {
			s->mstate[slot] = MS_NONE;
			check_revoke(o, (unsigned)slot);
		}
		break;
	case FM_MSG_SPLIT_COMMIT:
		on_commit(o, s, m);
		break;
	case FM_MSG_BYE:
		sess_close(o, s, FM_BYE_NORMAL, 0, false);
		break;
	case FM_MSG_ERROR:
		break;
	default:
		sess_close(o, s, FM_BYE_PROTOCOL, -EPROTO, true);
		break;
	}
}

/* ---- public ---- */
int fm_owner_new(struct fm_owner **out, const struct fm_owner_cfg *cfg)
{
	struct fm_owner *o;

	if (!out || !cfg)
		return fm_err(-EINVAL, "owner: NULL argument");
	o = calloc(1, sizeof(*o));
	if (!o)
		return fm_err(-ENOMEM, "owner: out of memory");
	o->cfg = *cfg;
	if (!o->cfg.lease_term_ms)
		o->cfg.lease_term_ms = 3000;
	if (!o->cfg.lease_grace_ms)
		o->cfg.lease_grace_ms = o->cfg.lease_term_ms / 4 + 1;
	if (!o->cfg.handshake_ms)
		o->cfg.handshake_ms = 5000;
	o->next_epoch = o->cfg.first_epoch ? o->cfg.first_epoch : 1;
	*out = o;
	return 0;
}

void fm_owner_delete(struct fm_owner **op)
{
	struct fm_owner *o;

	if (!op || !*op)
		return;
	o = *op;
	while (o->clients) {
		struct oclient *c = o->clients;

		o->clients = c->next;
		memset(c->key, 0, sizeof(c->key));
		free(c);
	}
	while (o->sessions)
		sess_free(o, o->sessions);
	while (o->locks)
		olock_free(o, o->locks);
	while (o->ops) {
		struct oop *x = o->ops;

		o->ops = x->next;
		/* the ops of one commit share it: the last one frees it */
		if (x->kind == OP_HOLDER && --x->commit->pending == 0)
			free(x->commit);
		free(x);
	}
	fm_actq_fini(&o->q);
	free(o);
	*op = NULL;
}

int fm_owner_client_add(struct fm_owner *o, uint32_t client_id, const void *key,
			size_t key_len)
{
	struct oclient *c;

	if (!o || !key || client_id == 0 || client_id > FM_WIRE_CLIENT_ID_MAX ||
	    key_len == 0 || key_len > sizeof(c->key))
		return fm_err(-EINVAL, "owner: client %u or key length %zu invalid",
			      client_id, key_len);
	if (client_find(o, client_id))
		return fm_err(-EEXIST, "owner: client %u already known", client_id);
	c = calloc(1, sizeof(*c));
	if (!c)
		return fm_err(-ENOMEM, "owner: out of memory");
	c->id = client_id;
	c->key_len = key_len;
	memcpy(c->key, key, key_len);
	c->next = o->clients;
	o->clients = c;
	return 0;
}

static int check_desc(const struct fm_wire_mapdesc *d)
{
	struct fm_msg m;
	uint8_t buf[FM_WIRE_HDR_SIZE + FM_WIRE_MAPDESC_SIZE];
	int rc;

	/* the wire's own checks, so we never grant what a client refuses */
	memset(&m, 0, sizeof(m));
	m.type = FM_MSG_MAP_GRANT;
	m.u.map_grant.map = *d;
	rc = fm_wire_encode(&m, buf, sizeof(buf));
	return rc < 0 ? rc : 0;
}

static void grant_to_all(struct fm_owner *o, unsigned slot)
{
	struct fm_msg m;

	for (struct osess *s = o->sessions; s; s = s->next) {
		if (s->state != FM_OSESS_ACTIVE)
			continue;
		fill_mapgrant(o, &m, slot);
		s->mstate[slot] = MS_GRANTED;
		send_msg(o, s, &m);
	}
}

int fm_owner_map_add(struct fm_owner *o, const struct fm_wire_mapdesc *d)
{
	int rc, free_slot = -1;

	if (!o || !d)
		return fm_err(-EINVAL, "owner: NULL argument");
	rc = check_desc(d);
	if (rc)
		return rc;
	if (map_slot(o, d->map_id) >= 0)
		return fm_err(-EEXIST, "owner: map %llu already served",
			      (unsigned long long)d->map_id);
	for (unsigned i = 0; i < FM_WIRE_MAX_MAPS && free_slot < 0; i++)
		if (!o->maps[i].used)
			free_slot = (int)i;
	if (free_slot < 0)
		return fm_err(-ENOSPC, "owner: %u maps already served", FM_WIRE_MAX_MAPS);
	memset(&o->maps[free_slot], 0, sizeof(o->maps[0]));
	o->maps[free_slot].used = true;
	o->maps[free_slot].d = *d;
	grant_to_all(o, (unsigned)free_slot);
	return 0;
}

int fm_owner_map_revoke(struct fm_owner *o, uint64_t map_id, uint32_t reason,
			uint64_t now)
{
	int slot = o ? map_slot(o, map_id) : -1;
	struct omap *mp;

	if (slot < 0)
		return fm_err(-ENOENT, "owner: map %llu unknown", (unsigned long long)map_id);
	if (reason >= FM_RELEASE_REASON_COUNT)
		return fm_err(-EINVAL, "owner: release reason %u unknown", reason);
	mp = &o->maps[slot];
	if (mp->revoking)
		return fm_err(-EALREADY, "owner: map %llu revoke in progress",
			      (unsigned long long)map_id);
	mp->revoking = true;
	mp->withheld = true;
	for (struct osess *s = o->sessions; s; s = s->next) {
		struct fm_msg m;

		if (s->state != FM_OSESS_ACTIVE || s->mstate[slot] != MS_GRANTED)
			continue;
		msg_init(&m, FM_MSG_RELEASE_REQUEST);
		m.u.release.map_id = map_id;
		m.u.release.generation = mp->d.generation;
		m.u.release.reason = reason;
		s->mstate[slot] = MS_RELEASING;
		send_msg(o, s, &m);
	}
	check_revoke(o, (unsigned)slot);
	return 0;
}

int fm_owner_map_remove(struct fm_owner *o, uint64_t map_id)
{
	int slot = o ? map_slot(o, map_id) : -1;
	struct omap *mp;

	if (slot < 0)
		return fm_err(-ENOENT, "owner: map %llu unknown", (unsigned long long)map_id);
	mp = &o->maps[slot];
	if (mp->revoking || !mp->withheld)
		return fm_err(-EBUSY, "owner: map %llu not revoked",
			      (unsigned long long)map_id);
	if (mp->persists)
		return fm_err(-EBUSY, "owner: map %llu has commits in flight",
			      (unsigned long long)map_id);
	for (struct oop *op = o->ops; op; op = op->next)
		if ((op->kind == OP_SCAN && op->slot == (unsigned)slot) ||
		    (op->kind == OP_LOCK_CAS && op->lock->slot == (unsigned)slot))
			return fm_err(-EBUSY, "owner: map %llu has lock-table "
				      "operations in flight", (unsigned long long)map_id);
	/* queued lock requests on it will never be granted: refuse them */
	for (struct olock *l = o->locks, *n; l; l = n) {
		n = l->next;
		if (l->slot != (unsigned)slot)
			continue;
		for (struct owaiter *w = l->head; w; w = w->next) {
			struct osess *s = sess_by_id(o, w->session_id);

			if (s && s->state == FM_OSESS_ACTIVE)
				send_error(o, s, w->req_seq, -ENOENT);
		}
		olock_free(o, l);
	}
	for (struct osess *s = o->sessions; s; s = s->next)
		s->mstate[slot] = MS_NONE;
	memset(mp, 0, sizeof(*mp));
	return 0;
}

int fm_owner_map_update(struct fm_owner *o, const struct fm_wire_mapdesc *d)
{
	int slot, rc;

	if (!o || !d)
		return fm_err(-EINVAL, "owner: NULL argument");
	slot = map_slot(o, d->map_id);
	if (slot < 0)
		return fm_err(-ENOENT, "owner: map %llu unknown", (unsigned long long)d->map_id);
	if (o->maps[slot].revoking || !o->maps[slot].withheld)
		return fm_err(-EBUSY, "owner: map %llu not revoked",
			      (unsigned long long)d->map_id);
	rc = check_desc(d);
	if (rc)
		return rc;
	o->maps[slot].d = *d;
	o->maps[slot].withheld = false;
	grant_to_all(o, (unsigned)slot);
	return 0;
}

int fm_owner_connected(struct fm_owner *o, uint64_t conn, uint64_t now)
{
	struct osess *s;

	if (!o || conn == FM_CONN_LOCAL)
		return fm_err(-EINVAL, "owner: bad connection id");
	if (sess_by_conn(o, conn))
		return fm_err(-EEXIST, "owner: connection %llu already known",
			      (unsigned long long)conn);
	s = calloc(1, sizeof(*s));
	if (!s)
		return fm_err(-ENOMEM, "owner: out of memory");
	s->conn = conn;
	s->session_id = ++o->next_session; /* on the wire from CHALLENGE on */
	s->state = FM_OSESS_HELLO_WAIT;
	s->deadline = now + o->cfg.handshake_ms;
	s->next = o->sessions;
	o->sessions = s;
	return 0;
}

int fm_owner_recv(struct fm_owner *o, uint64_t conn, const void *buf, size_t len,
		  uint64_t now)
{
	struct osess *s = o ? sess_by_conn(o, conn) : NULL;
	struct fm_msg *m;
	int rc;

	if (!s || s->state >= FM_OSESS_FENCING)
		return fm_err(-ENOTCONN, "owner: no open session on connection %llu",
			      (unsigned long long)conn);
	m = malloc(sizeof(*m));
	if (!m)
		return fm_err(-ENOMEM, "owner: out of memory");
	rc = fm_wire_decode(buf, len, m);
	if (rc) {
		o->st.malformed++;
		sess_close(o, s, FM_BYE_MALFORMED, rc, true);
		goto out;
	}
	if (m->seq != s->rx_seq + 1 ||
	    m->session != (s->state == FM_OSESS_HELLO_WAIT ? 0 : s->session_id)) {
		sess_close(o, s, FM_BYE_PROTOCOL, -EPROTO, true);
		goto out;
	}
	s->rx_seq = m->seq;
	switch (s->state) {
	case FM_OSESS_HELLO_WAIT:
		if (m->type == FM_MSG_HELLO)
			on_hello(o, s, m);
		else
			sess_close(o, s, FM_BYE_PROTOCOL, -EPROTO, true);
		break;
	case FM_OSESS_AUTH_WAIT:
		if (m->type == FM_MSG_AUTH)
			on_auth(o, s, m, now);
		else
			sess_close(o, s, FM_BYE_PROTOCOL, -EPROTO, true);
		break;
	case FM_OSESS_ACTIVE:
		on_active(o, s, m, now);
		break;
	default:
		break;
	}
out:
	free(m);
	return 0;
}

int fm_owner_disconnected(struct fm_owner *o, uint64_t conn, uint64_t now)
{
	struct osess *s = o ? sess_by_conn(o, conn) : NULL;

	if (!s)
		return fm_err(-ENOTCONN, "owner: connection %llu unknown",
			      (unsigned long long)conn);
	sess_close(o, s, FM_BYE_SHUTDOWN, -ECONNRESET, false);
	return 0;
}

int fm_owner_tick(struct fm_owner *o, uint64_t now)
{
	if (!o)
		return -EINVAL;
	for (struct osess *s = o->sessions, *n; s; s = n) {
		n = s->next;
		if (s->state < FM_OSESS_ACTIVE && now >= s->deadline)
			sess_close(o, s, FM_BYE_PROTOCOL, -ETIMEDOUT, true);
		else if (s->state == FM_OSESS_ACTIVE && now >= s->deadline)
			sess_close(o, s, FM_BYE_LEASE_EXPIRED, -ETIMEDOUT, true);
		else if (s->state == FM_OSESS_FENCING) {
			sess_fence(o, s); /* again, if the last one failed */
			sess_fenced_step(o, s, now);
		}
	}
	/* retry lock words whose last CAS failed in the transport */
	for (struct olock *l = o->locks, *n; l; l = n) {
		n = l->next;
		olock_step(o, l);
	}
	return 0;
}

int fm_owner_op_done(struct fm_owner *o, uint64_t op_id, int status,
		     uint64_t old_value, const void *data, size_t len, uint64_t now)
{
	struct oop *op = o ? op_take(o, op_id) : NULL;
	struct osess *s;

	if (!op)
		return fm_err(-ENOENT, "owner: op %llu unknown", (unsigned long long)op_id);
	switch (op->kind) {
	case OP_LOCK_CAS:
		olock_cas_done(o, op->lock, status, old_value);
		break;
	case OP_SCAN:
		on_scan_done(o, op, status, data, len);
		break;
	case OP_PERSIST:
		on_persist_done(o, op, status);
		break;
	case OP_HOLDER:
		on_holder_done(o, op, status, old_value);
		break;
	case OP_FENCE:
		s = sess_by_id(o, op->session_id);
		if (!s)
			s = sess_by_conn(o, op->conn);
		if (s && s->state == FM_OSESS_FENCING) {
			s->fence_queued = false;
			/* a failed fence proves nothing: the peer may still
			 * land atomics, so its words stay held until a retry
			 * (next tick) succeeds */
			if (status == 0) {
				s->fence_done = true;
				sess_fenced_step(o, s, now);
			}
		}
		break;
	}
	free(op);
	return 0;
}

int fm_owner_poll(struct fm_owner *o, struct fm_action *act)
{
	return fm_actq_pop(&o->q, act);
}

void fm_owner_stats(const struct fm_owner *o, struct fm_owner_stats *st)
{
	*st = o->st;
}

int fm_owner_session_state(const struct fm_owner *o, uint64_t conn)
{
	for (const struct osess *s = o->sessions; s; s = s->next)
		if (s->conn == conn)
			return (int)s->state;
	return -ENOTCONN;
}
