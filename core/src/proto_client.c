/* proto_client.c -- the client's protocol state machine (sans-I/O).
 *
 * Design.  One protocol thread calls everything except io_begin/io_end.
 *
 *  session   IDLE -> HELLO_SENT -> AUTH_SENT -> ACTIVE -> CLOSED (and
 *            connect again).  Closing for any reason discards every
 *            mapping in the cache, fails every pending fetch/lock/commit
 *            with -ECONNRESET and emits CLOSE; the owner fences the old
 *            session and reclaims its lock words.
 *
 *  maps      A fixed array of FM_WIRE_MAX_MAPS slots.  Slot identity
 *            (`id`, `present`) is published once and never reused, so I/O
 *            threads can find a slot without a lock.  `usable` and
 *            `inflight` form a Dekker pair (both seq_cst):
 *              io_begin:  inflight++ ; if (!usable) { inflight--; EAGAIN }
 *              release:   usable = false ; ... wait for inflight == 0
 *            either the I/O sees usable == false, or the release sees its
 *            increment -- never neither.
 *
 *  fetch     epoch = fm_cache_map_epoch() BEFORE the READ; on completion
 *            every run of set bits goes to fm_cache_insert(epoch, ...),
 *            which refuses it if a discard happened in between.
 *
 *  locks     struct clock per word this client is taking or holds:
 *              CAS 0 -> mine          (CL_CAS)
 *                 saw other -> LOCK_REQUEST, wait for LOCK_GRANT (CL_WAIT)
 *              re-read the bitmap word under the lock (CL_CHECK)
 *              held (CL_HELD) -> commit: SPLIT_COMMIT (CL_COMMIT)
 *              release: CAS mine -> 0, or UNLOCK when WAITERS is set
 *                                     (CL_RELEASE)
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "flashmeta/error.h"
#include "flashmeta/lockword.h"
#include "flashmeta/proto_client.h"

enum cmap_state {
	CM_NONE = 0,     /* no confirmation lease */
	CM_GRANTED = 1,  /* lease held: fetch and trust hits */
	CM_DRAINING = 2, /* RELEASE_REQUEST: waiting for in-flight I/O */
	CM_RELEASED = 3, /* discarded and answered RELEASED */
};

struct cmap {
	_Atomic uint64_t id;      /* written once before `present` */
	atomic_bool present;
	atomic_bool usable;       /* hits may be trusted by new I/O */
	atomic_long inflight;     /* io_begin - io_end */
	enum cmap_state state;    /* protocol thread */
	struct fm_wire_mapdesc d; /* protocol thread */
	uint64_t release_gen;
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
};

enum cop_kind { CO_FETCH = 1, CO_LOCK_CAS, CO_CHECK, CO_UNLOCK_CAS };

struct cop {
	struct cop *next;
	uint64_t id;
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

struct fm_client {
	struct fm_client_cfg cfg;
	uint8_t key[64];
	struct fm_actq q;
	enum fm_client_state state;
	uint64_t session;
	uint64_t tx_seq, rx_seq;
	uint8_t nonce[FM_WIRE_NONCE_SIZE];
	uint32_t epoch;
	uint32_t term_ms;
	uint64_t handshake_deadline;
	uint64_t auth_sent_at;
	uint64_t lease_expiry;
	uint64_t next_renew;
	uint64_t renew_id;
	struct { uint64_t id, sent_at; } renews[RENEW_RING];
	struct cmap maps[FM_WIRE_MAX_MAPS];
	struct clock *locks;
	struct cop *ops;
	uint64_t next_op;
	uint64_t next_commit;
};

static const char *const cstate_names[] = {
	"idle", "hello-sent", "auth-sent", "active", "closed",
};

const char *fm_client_state_name(int state)
{
	if (state < 0 || state > FM_CLIENT_CLOSED)
		return "?";
	return cstate_names[state];
}

enum fm_client_state fm_client_state(const struct fm_client *c)
{
	return c->state;
}

uint32_t fm_client_epoch(const struct fm_client *c)
{
	return c->epoch;
}

/* ---- helpers ---- */
static int slot_of(struct fm_client *c, uint64_t map_id)
{
	for (unsigned i = 0; i < FM_WIRE_MAX_MAPS; i++)
		if (atomic_load(&c->maps[i].present) &&
		    atomic_load(&c->maps[i].id) == map_id)
			return (int)i;
	return -1;
}

static int note(struct fm_client *c, enum fm_notify_type type, int status,
		uint64_t cookie, uint64_t map_id, uint64_t grain, bool split)
{
	struct fm_action *a = fm_actq_push(&c->q);

	if (!a)
		return -ENOMEM;
	a->type = FM_ACT_NOTIFY;
	memset(&a->u.note, 0, sizeof(a->u.note));
	a->u.note.type = type;
	a->u.note.status = status;
	a->u.note.cookie = cookie;
	a->u.note.map_id = map_id;
	a->u.note.grain = grain;
	a->u.note.split = split;
	a->u.note.client_id = c->cfg.client_id;
	return 0;
}

static void msg_init(struct fm_msg *m, uint16_t type)
{
	memset(m, 0, offsetof(struct fm_msg, u));
	m->type = type;
}

static int send_msg(struct fm_client *c, struct fm_msg *m)
{
	struct fm_action *a = fm_actq_push(&c->q);
	int n;

	if (!a)
		return fm_err(-ENOMEM, "client: action queue full");
	m->session = c->state == FM_CLIENT_HELLO_SENT && m->type == FM_MSG_HELLO ?
			     0 : c->session;
	m->seq = ++c->tx_seq;
	n = fm_wire_encode(m, a->u.msg.buf, sizeof(a->u.msg.buf));
	if (n < 0) {
		c->q.count--;
		return n;
	}
	a->type = FM_ACT_SEND;
	a->u.msg.len = (uint32_t)n;
	return 0;
}

static struct cop *op_new(struct fm_client *c, enum cop_kind kind, unsigned slot)
{
	struct cop *op = calloc(1, sizeof(*op));

	if (!op)
		return NULL;
	op->id = ++c->next_op;
	op->kind = kind;
	op->slot = slot;
	op->next = c->ops;
	c->ops = op;
	return op;
}

static struct cop *op_take(struct fm_client *c, uint64_t id)
{
	for (struct cop **pp = &c->ops; *pp; pp = &(*pp)->next) {
		if ((*pp)->id == id) {
			struct cop *op = *pp;

			*pp = op->next;
			return op;
		}
	}
	return NULL;
}

static void op_drop(struct fm_client *c, struct cop *op)
{
	op_take(c, op->id);
	free(op);
}

/* Queue a one-sided op on `region`. */
static int io_action(struct fm_client *c, struct cop *op, enum fm_action_type t,
		     const struct fm_region_desc *region, uint64_t offset, uint32_t len,
		     uint64_t compare, uint64_t swap)
{
	struct fm_action *a = fm_actq_push(&c->q);

	if (!a)
		return -ENOMEM;
	a->type = t;
	a->op_id = op->id;
	a->u.io.region = *region;
	a->u.io.offset = offset;
	a->u.io.len = len;
	a->u.io.compare = compare;
	a->u.io.swap = swap;
	return 0;
}

static struct clock *lock_find(struct fm_client *c, unsigned slot, uint64_t index)
{
	for (struct clock *l = c->locks; l; l = l->next)
		if (l->slot == slot && l->index == index)
			return l;
	return NULL;
}

static void lock_free(struct fm_client *c, struct clock *lk)
{
	for (struct clock **pp = &c->locks; *pp; pp = &(*pp)->next) {
		if (*pp == lk) {
			*pp = lk->next;
			break;
		}
	}
	for (struct cop *op = c->ops; op; op = op->next)
		if (op->lk == lk)
			op->lk = NULL;
	free(lk);
}

static bool bit_at(const uint8_t *data, uint64_t bit)
{
	return (data[bit / 8] >> (bit % 8)) & 1;
}

/* ---- session ---- */
static void fail_pending(struct fm_client *c)
{
	while (c->ops) {
		struct cop *op = c->ops;

		c->ops = op->next;
		if (op->kind == CO_FETCH)
			note(c, FM_NOTE_FETCHED, -ECONNRESET, op->cookie,
			     atomic_load(&c->maps[op->slot].id), op->grain, false);
		free(op);
	}
	while (c->locks) {
		struct clock *lk = c->locks;
		uint64_t map_id = atomic_load(&c->maps[lk->slot].id);

		c->locks = lk->next;
		if (lk->state == CL_CAS || lk->state == CL_WAIT || lk->state == CL_CHECK)
			note(c, FM_NOTE_LOCKED, -ECONNRESET, lk->cookie, map_id,
			     lk->grain, false);
		else if (lk->state == CL_COMMIT)
			note(c, FM_NOTE_COMMITTED, -ECONNRESET, lk->cookie, map_id,
			     lk->commit_grain, false);
		else if (lk->state == CL_HELD)
			note(c, FM_NOTE_LOCK_LOST, -ECONNRESET, 0, map_id, lk->grain, false);
		free(lk);
	}
}

static void discard_all(struct fm_client *c)
{
	for (unsigned i = 0; i < FM_WIRE_MAX_MAPS; i++) {
		struct cmap *mp = &c->maps[i];

		if (!atomic_load(&mp->present))
			continue;
		atomic_store(&mp->usable, false);
		mp->state = CM_NONE;
		fm_cache_map_discard(c->cfg.cache, atomic_load(&mp->id));
	}
}

static void sess_close(struct fm_client *c, uint32_t reason, int err, bool send_bye)
{
	struct fm_action *a;

	if (c->state == FM_CLIENT_CLOSED || c->state == FM_CLIENT_IDLE)
		return;
	/* confirmations go first: nothing may hit once we are closing */
	discard_all(c);
	if (send_bye) {
		struct fm_msg m;

		msg_init(&m, FM_MSG_BYE);
		m.u.bye.reason = reason;
		m.u.bye.code = (uint32_t)-err;
		send_msg(c, &m);
	}
	fail_pending(c);
	c->state = FM_CLIENT_CLOSED;
	a = fm_actq_push(&c->q);
	if (a)
		a->type = FM_ACT_CLOSE;
	note(c, FM_NOTE_CLOSED, err, 0, 0, 0, false);
}

static void apply_grant(struct fm_client *c, const struct fm_wire_mapdesc *d)
{
	int slot = slot_of(c, d->map_id);
	struct cmap *mp;
	int rc;

	if (slot < 0) {
		for (unsigned i = 0; i < FM_WIRE_MAX_MAPS && slot < 0; i++)
			if (!atomic_load(&c->maps[i].present))
				slot = (int)i;
		if (slot < 0)
			return; /* the owner never grants more than FM_WIRE_MAX_MAPS */
		atomic_store(&c->maps[slot].id, d->map_id);
		atomic_store(&c->maps[slot].present, true);
	}
	mp = &c->maps[slot];
	rc = fm_cache_map_add(c->cfg.cache, d->map_id, d->grain_count);
	if (rc && rc != -EEXIST)
		return;
	mp->d = *d;
	if (fm_cache_map_grant(c->cfg.cache, d->map_id, d->generation))
		return;
	mp->state = CM_GRANTED;
	atomic_store(&mp->usable, true);
	note(c, FM_NOTE_GRANTED, 0, 0, d->map_id, 0, false);
	c->maps[slot].release_gen = 0;
}

static void try_drain(struct fm_client *c, unsigned slot)
{
	struct cmap *mp = &c->maps[slot];
	struct fm_msg m;

	if (mp->state != CM_DRAINING || atomic_load(&mp->inflight) != 0)
		return;
	/* 1. no new I/O trusts hits (usable == false, set on the request);
	 * 2. every I/O that did has ended (inflight == 0);
	 * 3. forget them (epoch moves: racing fills are refused);
	 * 4. only now tell the owner. */
	fm_cache_map_discard(c->cfg.cache, atomic_load(&mp->id));
	mp->state = CM_RELEASED;
	msg_init(&m, FM_MSG_RELEASED);
	m.u.released.map_id = atomic_load(&mp->id);
	m.u.released.generation = mp->release_gen;
	send_msg(c, &m);
	note(c, FM_NOTE_RELEASED, 0, 0, m.u.released.map_id, 0, false);
}

static void on_release_request(struct fm_client *c, const struct fm_msg *m)
{
	int slot = slot_of(c, m->u.release.map_id);
	struct fm_msg r;

	if (slot < 0 || c->maps[slot].state == CM_NONE ||
	    c->maps[slot].state == CM_RELEASED) {
		/* nothing held: answer at once */
		msg_init(&r, FM_MSG_RELEASED);
		r.u.released.map_id = m->u.release.map_id;
		r.u.released.generation = m->u.release.generation;
		send_msg(c, &r);
		return;
	}
	atomic_store(&c->maps[slot].usable, false);
	c->maps[slot].state = CM_DRAINING;
	c->maps[slot].release_gen = m->u.release.generation;
	try_drain(c, (unsigned)slot);
}

/* ---- locks ---- */
static void lock_check(struct fm_client *c, struct clock *lk)
{
	struct cmap *mp = &c->maps[lk->slot];
	struct cop *op = op_new(c, CO_CHECK, lk->slot);

	if (!op) {
		note(c, FM_NOTE_LOCKED, -ENOMEM, lk->cookie, mp->d.map_id, lk->grain, false);
		return;
	}
	op->lk = lk;
	op->grain = lk->grain;
	op->epoch_ok = fm_cache_map_epoch(c->cfg.cache, mp->d.map_id, &op->epoch) == 0;
	lk->state = CL_CHECK;
	if (io_action(c, op, FM_ACT_READ, &mp->d.bitmap, (lk->grain / 64) * 8, 8, 0, 0))
		op_drop(c, op);
}

static void lock_release(struct fm_client *c, struct clock *lk)
{
	struct cmap *mp = &c->maps[lk->slot];
	struct cop *op;

	if (fm_lockword_flags(lk->cur) & FM_LOCKWORD_F_WAITERS) {
		/* the owner queued waiters: it hands the word over */
		struct fm_msg m;
		uint64_t first = lk->index << mp->d.lock_shift;
		uint64_t last = ((lk->index + 1) << mp->d.lock_shift) - 1;

		if (last >= mp->d.grain_count)
			last = mp->d.grain_count - 1;
		msg_init(&m, FM_MSG_UNLOCK);
		m.u.lock.map_id = mp->d.map_id;
		m.u.lock.generation = mp->d.generation;
		m.u.lock.first = first;
		m.u.lock.last = last;
		m.u.lock.word = lk->cur;
		send_msg(c, &m);
		lock_free(c, lk);
		return;
	}
	op = op_new(c, CO_UNLOCK_CAS, lk->slot);
	if (!op)
		return;
	op->lk = lk;
	lk->state = CL_RELEASE;
	if (io_action(c, op, FM_ACT_CAS, &mp->d.locks, lk->index * 8, 8, lk->cur,
		      FM_LOCKWORD_FREE))
		op_drop(c, op);
}

static void lock_request(struct fm_client *c, struct clock *lk, uint64_t seen)
{
	struct cmap *mp = &c->maps[lk->slot];
	uint64_t last = ((lk->index + 1) << mp->d.lock_shift) - 1;
	struct fm_msg m;

	if (last >= mp->d.grain_count)
		last = mp->d.grain_count - 1;
	msg_init(&m, FM_MSG_LOCK_REQUEST);
	m.u.lock.map_id = mp->d.map_id;
	m.u.lock.generation = mp->d.generation;
	m.u.lock.first = lk->index << mp->d.lock_shift;
	m.u.lock.last = last;
	m.u.lock.word = seen;
	lk->state = CL_WAIT;
	if (send_msg(c, &m) == 0)
		lk->req_seq = c->tx_seq;
}

static void on_lock_grant(struct fm_client *c, const struct fm_msg *m)
{
	int slot = slot_of(c, m->u.lock.map_id);
	struct clock *lk;

	if (slot < 0)
		return;
	lk = lock_find(c, (unsigned)slot,
		       fm_lockword_index(m->u.lock.first, c->maps[slot].d.lock_shift));
	if (!lk || lk->state != CL_WAIT || !fm_lockword_same_holder(lk->mine, m->u.lock.word))
		return; /* not waiting for it: the owner reclaims it with us */
	lk->cur = m->u.lock.word;
	lock_check(c, lk);
}

static void on_split_ack(struct fm_client *c, const struct fm_msg *m)
{
	struct clock *lk;
	int status;

	for (lk = c->locks; lk; lk = lk->next)
		if (lk->state == CL_COMMIT && lk->commit_id == m->u.ack.commit_id)
			break;
	if (!lk)
		return;
	status = m->u.ack.status == FM_SPLIT_OK ? 0 :
		 m->u.ack.status == FM_SPLIT_STALE ? -ESTALE : -EIO;
	/* durable at the owner: only now may the cache say "split" */
	if (status == 0 && lk->epoch_ok)
		fm_cache_insert(c->cfg.cache, m->u.ack.map_id, lk->epoch,
				lk->commit_grain, lk->commit_grain);
	note(c, FM_NOTE_COMMITTED, status, lk->cookie, m->u.ack.map_id,
	     lk->commit_grain, status == 0);
	lk->state = CL_HELD;
	lock_release(c, lk);
}

/*
 * The owner refused one of our requests (ERROR.ref_seq = its seq).  The
 * requests that wait for an answer are LOCK_REQUEST (CL_WAIT) and
 * SPLIT_COMMIT (CL_COMMIT); without this they would wait until the session
 * closes.  A refused LOCK_REQUEST leaves us without the word (our CAS had
 * failed and the owner queued nothing): LOCKED(-code), forget it.  A
 * refused SPLIT_COMMIT recorded nothing: COMMITTED(-code) and release the
 * lock as after any commit (if the refusal was -ENOLCK the word is not
 * ours and the release CAS reports LOCK_LOST).  An ERROR for anything else
 * (an UNLOCK, already forgotten) changes nothing.
 */
static void on_error(struct fm_client *c, const struct fm_msg *m)
{
	int status = m->u.error.code && m->u.error.code < 4096 ?
			     -(int)m->u.error.code : -EPROTO;
	struct clock *lk;

	for (lk = c->locks; lk; lk = lk->next)
		if ((lk->state == CL_WAIT || lk->state == CL_COMMIT) &&
		    lk->req_seq == m->u.error.ref_seq)
			break;
	if (!lk)
		return;
	if (lk->state == CL_WAIT) {
		note(c, FM_NOTE_LOCKED, status, lk->cookie, atomic_load(&c->maps[lk->slot].id),
		     lk->grain, false);
		lock_free(c, lk);
		return;
	}
	note(c, FM_NOTE_COMMITTED, status, lk->cookie, atomic_load(&c->maps[lk->slot].id),
	     lk->commit_grain, false);
	lk->state = CL_HELD;
	lock_release(c, lk);
}

/* ---- messages ---- */
static void on_active(struct fm_client *c, const struct fm_msg *m, uint64_t now)
{
	switch (m->type) {
	case FM_MSG_LEASE_GRANT:
		for (unsigned i = 0; i < RENEW_RING; i++) {
			if (c->renews[i].id == m->u.lease.renew_id && c->renews[i].id) {
				uint64_t exp = c->renews[i].sent_at + m->u.lease.lease_term_ms;

				if (exp > c->lease_expiry)
					c->lease_expiry = exp;
				c->term_ms = m->u.lease.lease_term_ms;
				c->renews[i].id = 0;
			}
		}
		break;
	case FM_MSG_LOCK_GRANT:
		on_lock_grant(c, m);
		break;
	case FM_MSG_RELEASE_REQUEST:
		on_release_request(c, m);
		break;
	case FM_MSG_MAP_GRANT:
		apply_grant(c, &m->u.map_grant.map);
		break;
	case FM_MSG_SPLIT_ACK:
		on_split_ack(c, m);
		break;
	case FM_MSG_ERROR:
		on_error(c, m);
		break;
	case FM_MSG_BYE:
		sess_close(c, FM_BYE_NORMAL, -ECONNRESET, false);
		break;
	default:
		sess_close(c, FM_BYE_PROTOCOL, -EPROTO, true);
		break;
	}
}

int fm_client_recv(struct fm_client *c, const void *buf, size_t len, uint64_t now)
{
	struct fm_msg *m;
	int rc;

	if (!c || c->state == FM_CLIENT_IDLE || c->state == FM_CLIENT_CLOSED)
		return fm_err(-ENOTCONN, "client: no session");
	m = malloc(sizeof(*m));
	if (!m)
		return fm_err(-ENOMEM, "client: out of memory");
	rc = fm_wire_decode(buf, len, m);
	if (rc) {
		sess_close(c, FM_BYE_MALFORMED, rc, true);
		goto out;
	}
	if (m->seq != c->rx_seq + 1 ||
	    (c->state != FM_CLIENT_HELLO_SENT && m->session != c->session)) {
		sess_close(c, FM_BYE_PROTOCOL, -EPROTO, true);
		goto out;
	}
	c->rx_seq = m->seq;
	if (m->type == FM_MSG_BYE) {
		sess_close(c, m->u.bye.reason, -ECONNRESET, false);
		goto out;
	}
	switch (c->state) {
	case FM_CLIENT_HELLO_SENT:
		if (m->type != FM_MSG_CHALLENGE) {
			sess_close(c, FM_BYE_PROTOCOL, -EPROTO, true);
			break;
		}
		{
			struct fm_msg r;

			c->session = m->session;
			c->state = FM_CLIENT_AUTH_SENT;
			msg_init(&r, FM_MSG_AUTH);
			fm_wire_auth_mac(c->key, c->cfg.key_len, c->cfg.client_id,
					 c->nonce, m->u.challenge.nonce, c->session,
					 r.u.auth.mac);
			c->auth_sent_at = now;
			send_msg(c, &r);
		}
		break;
	case FM_CLIENT_AUTH_SENT:
		if (m->type != FM_MSG_WELCOME || m->u.welcome.session_id != c->session) {
			sess_close(c, FM_BYE_PROTOCOL, -EPROTO, true);
			break;
		}
		c->epoch = m->u.welcome.client_epoch;
		c->term_ms = m->u.welcome.lease_term_ms;
		c->lease_expiry = c->auth_sent_at + c->term_ms;
		c->next_renew = now + c->term_ms / 3;
		c->state = FM_CLIENT_ACTIVE;
		for (unsigned i = 0; i < m->u.welcome.map_count; i++)
			apply_grant(c, &m->u.welcome.maps[i]);
		note(c, FM_NOTE_JOINED, 0, 0, 0, 0, false);
		break;
	case FM_CLIENT_ACTIVE:
		on_active(c, m, now);
		break;
	default:
		break;
	}
out:
	free(m);
	return 0;
}

/* ---- public ---- */
int fm_client_new(struct fm_client **out, const struct fm_client_cfg *cfg)
{
	struct fm_client *c;
	uint32_t ra;

	if (!out || !cfg || !cfg->cache || !cfg->key || cfg->key_len == 0 ||
	    cfg->key_len > 64 || cfg->client_id == 0 ||
	    cfg->client_id > FM_WIRE_CLIENT_ID_MAX)
		return fm_err(-EINVAL, "client: bad configuration");
	ra = cfg->readahead_grains ? cfg->readahead_grains : 512;
	if (ra < 64 || (ra & (ra - 1)))
		return fm_err(-EINVAL, "client: read-ahead %u not a power of two >= 64", ra);
	c = calloc(1, sizeof(*c));
	if (!c)
		return fm_err(-ENOMEM, "client: out of memory");
	c->cfg = *cfg;
	c->cfg.readahead_grains = ra;
	if (!c->cfg.handshake_ms)
		c->cfg.handshake_ms = 5000;
	memcpy(c->key, cfg->key, cfg->key_len);
	c->cfg.key = c->key;
	c->state = FM_CLIENT_IDLE;
	*out = c;
	return 0;
}

void fm_client_delete(struct fm_client **cp)
{
	struct fm_client *c;

	if (!cp || !*cp)
		return;
	c = *cp;
	while (c->ops) {
		struct cop *op = c->ops;

		c->ops = op->next;
		free(op);
	}
	while (c->locks) {
		struct clock *lk = c->locks;

		c->locks = lk->next;
		free(lk);
	}
	fm_actq_fini(&c->q);
	memset(c->key, 0, sizeof(c->key));
	free(c);
	*cp = NULL;
}

int fm_client_connect(struct fm_client *c, uint64_t now)
{
	struct fm_msg m;

	if (!c)
		return -EINVAL;
	if (c->state != FM_CLIENT_IDLE && c->state != FM_CLIENT_CLOSED)
		return fm_err(-EBUSY, "client: already %s", fm_client_state_name(c->state));
	c->session = 0;
	c->tx_seq = c->rx_seq = 0;
	c->epoch = 0;
	c->lease_expiry = 0;
	memset(c->renews, 0, sizeof(c->renews));
	if (c->cfg.rand_bytes)
		c->cfg.rand_bytes(c->cfg.rand_ctx, c->nonce, sizeof(c->nonce));
	else if (getrandom(c->nonce, sizeof(c->nonce), 0) != (ssize_t)sizeof(c->nonce))
		return fm_err(-EIO, "client: no entropy for the nonce");
	c->state = FM_CLIENT_HELLO_SENT;
	c->handshake_deadline = now + c->cfg.handshake_ms;
	msg_init(&m, FM_MSG_HELLO);
	m.u.hello.client_id = c->cfg.client_id;
	m.u.hello.ver_major = FM_WIRE_MAJOR;
	m.u.hello.ver_minor = FM_WIRE_MINOR;
	memcpy(m.u.hello.nonce, c->nonce, sizeof(c->nonce));
	return send_msg(c, &m);
}

int fm_client_disconnected(struct fm_client *c, uint64_t now)
{
	if (!c)
		return -EINVAL;
	sess_close(c, FM_BYE_SHUTDOWN, -ECONNRESET, false);
	return 0;
}

int fm_client_tick(struct fm_client *c, uint64_t now)
{
	if (!c)
		return -EINVAL;
	if ((c->state == FM_CLIENT_HELLO_SENT || c->state == FM_CLIENT_AUTH_SENT) &&
	    now >= c->handshake_deadline) {
		sess_close(c, FM_BYE_PROTOCOL, -ETIMEDOUT, true);
		return 0;
	}
	if (c->state != FM_CLIENT_ACTIVE)
		return 0;
	if (now >= c->lease_expiry) {
		/* the lease lapsed: stop trusting by ourselves, go away */
		sess_close(c, FM_BYE_LEASE_EXPIRED, -ETIMEDOUT, true);
		return 0;
	}
	if (now >= c->next_renew) {
		struct fm_msg m;
		unsigned i = (unsigned)(++c->renew_id % RENEW_RING);

		c->renews[i].id = c->renew_id;
		c->renews[i].sent_at = now;
		msg_init(&m, FM_MSG_LEASE_RENEW);
		m.u.renew.renew_id = c->renew_id;
		send_msg(c, &m);
		c->next_renew = now + (c->term_ms / 3 ? c->term_ms / 3 : 1);
	}
	for (unsigned i = 0; i < FM_WIRE_MAX_MAPS; i++)
		try_drain(c, i);
	return 0;
}

int fm_client_kick(struct fm_client *c, uint64_t now)
{
	if (!c)
		return -EINVAL;
	for (unsigned i = 0; i < FM_WIRE_MAX_MAPS; i++)
		try_drain(c, i);
	return 0;
}

static void fetch_done(struct fm_client *c, struct cop *op, int status,
		       const uint8_t *data, size_t len)
{
	uint64_t map_id = atomic_load(&c->maps[op->slot].id);
	bool split = false;
	int rc = 0;

	/* a transport failure keeps its errno (the driver's -ECONNRESET says
	 * "retry after rejoin"); a short answer is our -EIO */
	if (status < 0 || len * 8 < op->nbits) {
		note(c, FM_NOTE_FETCHED, status < 0 ? status : -EIO, op->cookie, map_id,
		     op->grain, false);
		return;
	}
	/* every run of set bits is a confirmation; clear bits are not cached */
	for (uint64_t b = 0; b < op->nbits && rc == 0;) {
		uint64_t e;

		if (!bit_at(data, b)) {
			b++;
			continue;
		}
		for (e = b; e + 1 < op->nbits && bit_at(data, e + 1); e++)
			;
		if (op->epoch_ok)
			rc = fm_cache_insert(c->cfg.cache, map_id, op->epoch,
					     op->w0 + b, op->w0 + e);
		else
			rc = -ESTALE;
		b = e + 1;
	}
	split = bit_at(data, op->grain - op->w0);
	if (rc == -ESTALE)
		note(c, FM_NOTE_FETCHED, -ESTALE, op->cookie, map_id, op->grain, false);
	else
		note(c, FM_NOTE_FETCHED, 0, op->cookie, map_id, op->grain, split);
}

static void check_done(struct fm_client *c, struct cop *op, int status,
		       const uint8_t *data, size_t len)
{
	struct clock *lk = op->lk;
	uint64_t map_id = atomic_load(&c->maps[op->slot].id);
	bool split;

	if (!lk)
		return;
	if (status < 0 || len < 8) {
		note(c, FM_NOTE_LOCKED, status < 0 ? status : -EIO, lk->cookie, map_id,
		     lk->grain, false);
		lock_release(c, lk);
		return;
	}
	split = bit_at(data, lk->grain % 64);
	if (split && op->epoch_ok)
		fm_cache_insert(c->cfg.cache, map_id, op->epoch, lk->grain, lk->grain);
	lk->state = CL_HELD;
	note(c, FM_NOTE_LOCKED, 0, lk->cookie, map_id, lk->grain, split);
}

int fm_client_op_done(struct fm_client *c, uint64_t op_id, int status,
		      uint64_t old_value, const void *data, size_t len, uint64_t now)
{
	struct cop *op = c ? op_take(c, op_id) : NULL;
	struct clock *lk;

	if (!op)
		return fm_err(-ENOENT, "client: op %llu unknown", (unsigned long long)op_id);
	lk = op->lk;
	switch (op->kind) {
	case CO_FETCH:
		fetch_done(c, op, status, data, len);
		break;
	case CO_CHECK:
		check_done(c, op, status, data, len);
		break;
	case CO_LOCK_CAS:
		if (!lk)
			break;
		if (status < 0) {
			note(c, FM_NOTE_LOCKED, status, lk->cookie,
			     atomic_load(&c->maps[op->slot].id), lk->grain, false);
			lock_free(c, lk);
		} else if (old_value == FM_LOCKWORD_FREE) {
			lk->cur = lk->mine;
			lock_check(c, lk);
		} else if (fm_lockword_same_holder(old_value, lk->mine)) {
			note(c, FM_NOTE_LOCKED, -EDEADLK, lk->cookie,
			     atomic_load(&c->maps[op->slot].id), lk->grain, false);
			lock_free(c, lk);
		} else {
			lock_request(c, lk, old_value);
		}
		break;
	case CO_UNLOCK_CAS:
		if (!lk)
			break;
		if (status == 0) {
			switch (fm_lockword_release_result(lk->cur, old_value)) {
			case FM_LOCKWORD_RELEASED:
				lock_free(c, lk);
				break;
			case FM_LOCKWORD_NOTIFY:
				lk->cur = old_value;
				lock_release(c, lk); /* sends UNLOCK, frees */
				break;
			case FM_LOCKWORD_LOST:
				note(c, FM_NOTE_LOCK_LOST, -ENOLCK, 0,
				     atomic_load(&c->maps[op->slot].id), lk->grain, false);
				lock_free(c, lk);
				break;
			}
		} else {
			lock_free(c, lk);
		}
		break;
	}
	free(op);
	return 0;
}

int fm_client_poll(struct fm_client *c, struct fm_action *act)
{
	return fm_actq_pop(&c->q, act);
}

/* ---- engine calls ---- */
int fm_client_io_begin(struct fm_client *c, uint64_t map_id)
{
	int slot = slot_of(c, map_id);
	struct cmap *mp;

	if (slot < 0)
		return -ENOENT;
	mp = &c->maps[slot];
	atomic_fetch_add(&mp->inflight, 1);
	if (!atomic_load(&mp->usable)) {
		atomic_fetch_sub(&mp->inflight, 1);
		return -EAGAIN;
	}
	return 0;
}

bool fm_client_io_end(struct fm_client *c, uint64_t map_id)
{
	int slot = slot_of(c, map_id);
	struct cmap *mp;

	if (slot < 0)
		return false;
	mp = &c->maps[slot];
	return atomic_fetch_sub(&mp->inflight, 1) == 1 && !atomic_load(&mp->usable);
}

static int usable_slot(struct fm_client *c, uint64_t map_id, uint64_t grain,
		       bool need_grant)
{
	int slot;

	if (!c)
		return -EINVAL;
	if (c->state != FM_CLIENT_ACTIVE)
		return fm_err(-EAGAIN, "client: not active");
	slot = slot_of(c, map_id);
	if (slot < 0)
		return fm_err(-ENOENT, "client: map %llu unknown", (unsigned long long)map_id);
	if (need_grant && c->maps[slot].state != CM_GRANTED)
		return fm_err(-EAGAIN, "client: no confirmation lease on map %llu",
			      (unsigned long long)map_id);
	if (grain >= c->maps[slot].d.grain_count)
		return fm_err(-ERANGE, "client: grain %llu beyond map %llu",
			      (unsigned long long)grain, (unsigned long long)map_id);
	return slot;
}

int fm_client_fetch(struct fm_client *c, uint64_t map_id, uint64_t grain,
		    uint64_t cookie, uint64_t now)
{
	int slot = usable_slot(c, map_id, grain, true);
	struct cmap *mp;
	struct cop *op;
	uint64_t ra, w0, end, epoch;

	if (slot < 0)
		return slot;
	mp = &c->maps[slot];
	/* the fill token, BEFORE the read */
	if (fm_cache_map_epoch(c->cfg.cache, map_id, &epoch))
		return fm_err(-EAGAIN, "client: map %llu not valid in the cache",
			      (unsigned long long)map_id);
	ra = c->cfg.readahead_grains;
	w0 = grain & ~(ra - 1);
	end = w0 + ra < mp->d.grain_count ? w0 + ra : mp->d.grain_count;
	op = op_new(c, CO_FETCH, (unsigned)slot);
	if (!op)
		return -ENOMEM;
	op->grain = grain;
	op->cookie = cookie;
	op->epoch = epoch;
	op->epoch_ok = true;
	op->w0 = w0;
	op->nbits = end - w0;
	if (io_action(c, op, FM_ACT_READ, &mp->d.bitmap, w0 / 8,
		      (uint32_t)(((end - w0) + 63) / 64 * 8), 0, 0)) {
		op_drop(c, op);
		return -ENOMEM;
	}
	return 0;
}

int fm_client_lock(struct fm_client *c, uint64_t map_id, uint64_t grain,
		   uint64_t cookie, uint64_t now)
{
	int slot = usable_slot(c, map_id, grain, false);
	struct cmap *mp;
	struct clock *lk;
	struct cop *op;
	uint64_t index;

	if (slot < 0)
		return slot;
	mp = &c->maps[slot];
	index = fm_lockword_index(grain, mp->d.lock_shift);
	if (lock_find(c, (unsigned)slot, index))
		return fm_err(-EBUSY, "client: lock word %llu already taken here",
			      (unsigned long long)index);
	lk = calloc(1, sizeof(*lk));
	op = lk ? op_new(c, CO_LOCK_CAS, (unsigned)slot) : NULL;
	if (!op) {
		free(lk);
		return -ENOMEM;
	}
	lk->slot = (unsigned)slot;
	lk->index = index;
	lk->grain = grain;
	lk->cookie = cookie;
	lk->mine = fm_lockword_make((uint16_t)c->cfg.client_id, c->epoch,
				    FM_LOCKWORD_F_HELD);
	lk->state = CL_CAS;
	lk->next = c->locks;
	c->locks = lk;
	op->lk = lk;
	if (io_action(c, op, FM_ACT_CAS, &mp->d.locks, index * 8, 8,
		      FM_LOCKWORD_FREE, lk->mine)) {
		op_drop(c, op);
		lock_free(c, lk);
		return -ENOMEM;
	}
	return 0;
}

int fm_client_commit(struct fm_client *c, uint64_t map_id, uint64_t grain,
		     uint64_t cookie, uint64_t now)
{
	int slot = usable_slot(c, map_id, grain, false);
	struct fm_msg m;
	struct cmap *mp;
	struct clock *lk;
	int rc;

	if (slot < 0)
		return slot;
	mp = &c->maps[slot];
	lk = lock_find(c, (unsigned)slot, fm_lockword_index(grain, mp->d.lock_shift));
	if (!lk || lk->state != CL_HELD)
		return fm_err(-ENOLCK, "client: grain %llu not locked",
			      (unsigned long long)grain);
	lk->epoch_ok = fm_cache_map_epoch(c->cfg.cache, map_id, &lk->epoch) == 0;
	lk->commit_id = ++c->next_commit;
	lk->commit_grain = grain;
	lk->cookie = cookie;
	lk->state = CL_COMMIT;
	msg_init(&m, FM_MSG_SPLIT_COMMIT);
	m.u.commit.map_id = map_id;
	m.u.commit.generation = mp->d.generation;
	m.u.commit.commit_id = lk->commit_id;
	m.u.commit.range_count = 1;
	m.u.commit.ranges[0].first = grain;
	m.u.commit.ranges[0].last = grain;
	rc = send_msg(c, &m);
	if (rc == 0)
		lk->req_seq = c->tx_seq;
	else
		lk->state = CL_HELD; /* not sent: still held, caller may retry */
	return rc;
}

int fm_client_unlock(struct fm_client *c, uint64_t map_id, uint64_t grain,
		     uint64_t now)
{
	int slot = c ? slot_of(c, map_id) : -1;
	struct clock *lk;

	if (slot < 0)
		return fm_err(-ENOLCK, "client: map %llu unknown", (unsigned long long)map_id);
	lk = lock_find(c, (unsigned)slot,
		       fm_lockword_index(grain, c->maps[slot].d.lock_shift));
	if (!lk || lk->state != CL_HELD)
		return fm_err(-ENOLCK, "client: grain %llu not locked",
			      (unsigned long long)grain);
	lock_release(c, lk);
	return 0;
}
