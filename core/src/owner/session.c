/* session.c -- owner sessions: handshake, leases, and the way out.
 *
 * Design (lease.h R3, R4).  A session that never authenticated was never
 * granted anything: closing it is a BYE and a CLOSE, nothing to fence.  A
 * session that was ACTIVE may have clients' I/O running on its locks and
 * grants, so closing it is a walk:
 *
 *   ACTIVE --owner closes (lease ran out, protocol error, superseded):
 *   |         BYE(reason); CLOSING until now + Q ----------------+
 *   +--link lost: CLOSING until now + Q (nothing can be sent) ---+
 *   +--BYE{QUIESCED} from the client: quiesced ---+              |
 *                                                 v              v
 *                          FENCE(kill = !quiesced) <-- Q ran out, or
 *                                 |                   BYE{QUIESCED} came,
 *                                 |                   or a new session of
 *                                 |                   the same client
 *                                 v                   vouched for this one
 *   FENCING: the FENCE completes at a level (RDMA or DEAD); then release
 *            when quiesced (R4a), or DEAD (R4b), or the owner's copy of
 *            the lease ran out (R4c, `deadline`) -- a new session that
 *            vouches for this one also releases it
 *   RECLAIMING: grants dropped (a revoke may complete), lock tables
 *            scanned for its words once its own commits finished
 *   freed:   NOTIFY SESSION_DOWN
 *
 * `deadline` is the owner's copy of the lease: receipt of AUTH/RENEW +
 * T + G.  The client counts T from its SEND time, so it stops trusting
 * first (R1).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "flashmeta/error.h"
#include "flashmeta/lease.h"
#include "owner_priv.h"

static void rand_fill(struct fm_owner *o, void *buf, size_t len)
{
	if (o->cfg.rand_bytes) {
		o->cfg.rand_bytes(o->cfg.rand_ctx, buf, len);
		return;
	}
	if (getrandom(buf, len, 0) != (ssize_t)len)
		memset(buf, 0, len); /* never reached on Linux for <= 256 bytes */
}

void ow_sess_free(struct fm_owner *o, struct osess *s)
{
	for (struct osess **pp = &o->sessions; *pp; pp = &(*pp)->next) {
		if (*pp == s) {
			*pp = s->next;
			break;
		}
	}
	free(s->scan);
	free(s->mstate);
	free(s);
}

/* A session that was never granted anything: say why (if we can), drop
 * the connection, forget it. */
static void sess_drop(struct fm_owner *o, struct osess *s, uint32_t reason, int err)
{
	struct fm_action *a;

	if (!s->link_lost) {
		struct fm_msg m;

		fm_wire_msg_init(&m, FM_MSG_BYE);
		m.u.bye.reason = reason;
		m.u.bye.code = (uint32_t)-err;
		ow_send_msg(o, s, &m);
	}
	a = fm_actq_push(&o->q);
	a->type = FM_ACT_CLOSE;
	a->conn = s->conn;
	o->st.sessions_closed++;
	ow_sess_free(o, s);
}

/* Ask the driver to fence s (again, after a failure: the same way). */
static void sess_fence(struct fm_owner *o, struct osess *s, bool kill)
{
	struct fm_action *a;
	struct oop *op;

	if (s->fence_queued || s->fence_level)
		return;
	if (s->state == FM_OSESS_FENCING)
		o->st.fence_retries++;
	else
		o->st.fences++;
	s->state = FM_OSESS_FENCING;
	op = ow_op_new(o, OP_FENCE);
	if (!op)
		return;
	op->session_id = s->session_id;
	op->conn = s->conn;
	a = fm_actq_push(&o->q);
	a->type = FM_ACT_FENCE;
	a->conn = s->conn;
	a->op_id = op->id;
	a->u.fence.kill = kill;
	a->u.fence.client_id = s->client_id;
	a->u.fence.token = s->epoch ? fm_lease_token(o->cfg.incarnation, s->epoch) : 0;
	s->fence_queued = true;
	s->fence_kill = kill;
}

/* ACTIVE -> CLOSING: it keeps its grants and lock words (R4). */
static void sess_deactivate(struct fm_owner *o, struct osess *s, uint64_t now)
{
	s->was_active = true;
	s->state = FM_OSESS_CLOSING;
	s->quiesce_until = now + o->cfg.quiesce_ms;
	o->st.sessions_active--;
	o->st.sessions_closed++;
	o->st.sessions_closing++;
	/* its queued lock requests go away now */
	ow_locks_step_all(o);
	/* its background copy batches go back to the pool now (copy.c) */
	ow_copy_sess_closed(o, s);
}

/* R4: may the grants and lock words of s go to others now? */
static void sess_try_release(struct fm_owner *o, struct osess *s, uint64_t now)
{
	if (s->state != FM_OSESS_FENCING || !s->fence_level)
		return;
	if (s->quiesced)
		o->st.released_quiesced++;
	else if (s->fence_level == FM_FENCE_DEAD)
		o->st.released_dead++;
	else if (now >= s->deadline)
		o->st.released_expired++;
	else
		return;
	s->state = FM_OSESS_RECLAIMING;
	o->st.sessions_closing--;
	ow_maps_drop_grants(o, s);
	/* A commit of s checked its words and may be persisting: handing
	 * them to someone else now would let that one copy the grain while
	 * our PERSIST lands (a third client could then trust the bit, or
	 * overwrite the source, in the middle of that copy).  Wait. */
	if (s->commits) {
		s->scan_wait = true;
		return;
	}
	ow_scan_start(o, s);
}

void ow_sess_close(struct fm_owner *o, struct osess *s, uint32_t reason, int err,
		   uint64_t now)
{
	struct fm_msg m;

	if (s->state < FM_OSESS_ACTIVE) {
		sess_drop(o, s, reason, err);
		return;
	}
	if (s->state != FM_OSESS_ACTIVE)
		return; /* already on its way out */
	fm_wire_msg_init(&m, FM_MSG_BYE);
	m.u.bye.reason = reason;
	m.u.bye.code = (uint32_t)-err;
	ow_send_msg(o, s, &m);
	sess_deactivate(o, s, now);
}

void ow_sess_link_lost(struct fm_owner *o, struct osess *s, uint64_t now)
{
	if (s->link_lost)
		return;
	s->link_lost = true;
	if (s->state < FM_OSESS_ACTIVE) {
		sess_drop(o, s, FM_BYE_SHUTDOWN, -ECONNRESET);
		return;
	}
	if (s->state == FM_OSESS_ACTIVE)
		sess_deactivate(o, s, now);
	/* CLOSING keeps waiting for a vouching HELLO until quiesce_until */
}

/* BYE from the client, ACTIVE or CLOSING. */
void ow_sess_on_bye(struct fm_owner *o, struct osess *s, const struct fm_msg *m, uint64_t now)
{
	if (s->state == FM_OSESS_ACTIVE)
		sess_deactivate(o, s, now);
	if (m->u.bye.flags & FM_BYE_F_QUIESCED) {
		s->quiesced = true;
		/* a 2.4 client sends what it wrote right before this BYE,
		 * in band: nothing of it is unreported (changed.c, 4.) */
		s->reported = s->minor >= 4 && !s->report_refused;
		sess_fence(o, s, false);
	}
	/* without the flag: CLOSING runs out and the fence kills */
}

void ow_sess_tick(struct fm_owner *o, struct osess *s, uint64_t now)
{
	switch (s->state) {
	case FM_OSESS_HELLO_WAIT:
	case FM_OSESS_AUTH_WAIT:
		if (now >= s->deadline)
			sess_drop(o, s, FM_BYE_PROTOCOL, -ETIMEDOUT);
		break;
	case FM_OSESS_ACTIVE:
		if (now >= s->deadline)
			ow_sess_close(o, s, FM_BYE_LEASE_EXPIRED, -ETIMEDOUT, now);
		break;
	case FM_OSESS_CLOSING:
		if (now >= s->quiesce_until)
			sess_fence(o, s, !s->quiesced);
		break;
	case FM_OSESS_FENCING:
		/* the last FENCE failed: its words stay held; ask again */
		sess_fence(o, s, s->fence_kill);
		sess_try_release(o, s, now);
		break;
	case FM_OSESS_RECLAIMING:
		if (s->scan && !s->scan->busy)
			ow_scan_step(o, s); /* a failed READ is retried here */
		break;
	}
}

void ow_sess_fence_done(struct fm_owner *o, struct oop *op, int status, int level,
			uint64_t now)
{
	struct osess *s = ow_sess_by_id(o, op->session_id);

	if (!s || s->state != FM_OSESS_FENCING)
		return;
	s->fence_queued = false;
	/* a failed fence proves nothing: the peer may still land atomics,
	 * so its words stay held until a retry (next tick) succeeds */
	if (status < 0)
		return;
	s->fence_level = level == FM_FENCE_DEAD ? FM_FENCE_DEAD : FM_FENCE_RDMA;
	sess_try_release(o, s, now);
}

void ow_sess_commit_done(struct fm_owner *o, struct osess *s)
{
	if (!s)
		return;
	s->commits--;
	if (s->state == FM_OSESS_RECLAIMING && s->scan_wait && s->commits == 0) {
		s->scan_wait = false;
		ow_scan_start(o, s);
	}
}

void ow_sess_reclaimed(struct fm_owner *o, struct osess *s)
{
	uint32_t id = s->client_id;

	ow_sess_free(o, s);
	ow_note(o, FM_NOTE_SESSION_DOWN, 0, 0, id);
}

/* ---- handshake ---- */

void ow_sess_on_hello(struct fm_owner *o, struct osess *s, const struct fm_msg *m)
{
	struct fm_msg r;
	size_t klen;

	if (!ow_client_key(o, m->u.hello.client_id, &klen)) {
		o->st.auth_failures++;
		sess_drop(o, s, FM_BYE_UNKNOWN_CLIENT, -EACCES);
		return;
	}
	if (m->u.hello.ver_major != FM_WIRE_MAJOR) {
		sess_drop(o, s, FM_BYE_PROTOCOL, -EPROTONOSUPPORT);
		return;
	}
	s->client_id = m->u.hello.client_id;
	s->minor = m->u.hello.ver_minor;
	s->prev_session = m->u.hello.prev_session;
	s->prev_flags = m->u.hello.prev_flags;
	memcpy(s->client_nonce, m->u.hello.nonce, FM_WIRE_NONCE_SIZE);
	rand_fill(o, s->owner_nonce, FM_WIRE_NONCE_SIZE);
	s->state = FM_OSESS_AUTH_WAIT;
	fm_wire_msg_init(&r, FM_MSG_CHALLENGE);
	memcpy(r.u.challenge.nonce, s->owner_nonce, FM_WIRE_NONCE_SIZE);
	ow_send_msg(o, s, &r);
}

/*
 * One live session per client: an older ACTIVE one is superseded.  If
 * the new HELLO vouched for an older session (R3: its I/O is over), that
 * one is quiesced and released without waiting or killing -- the client
 * proved its key, and a client only vouches once its old brackets ended.
 */
static void supersede(struct fm_owner *o, struct osess *s, uint64_t now)
{
	for (struct osess *old = o->sessions, *n; old; old = n) {
		bool vouched;

		n = old->next;
		if (old == s || old->client_id != s->client_id || !ow_sess_holds(old))
			continue;
		vouched = s->prev_session == old->session_id &&
			  (s->prev_flags & FM_HELLO_PREV_QUIESCED);
		if (old->state == FM_OSESS_ACTIVE)
			ow_sess_close(o, old, FM_BYE_SUPERSEDED, -EEXIST, now);
		if (!vouched)
			continue;
		old->quiesced = true;
		if (old->state == FM_OSESS_CLOSING)
			sess_fence(o, old, false);
		else
			sess_try_release(o, old, now);
	}
}

void ow_sess_on_auth(struct fm_owner *o, struct osess *s, const struct fm_msg *m,
		     uint64_t now)
{
	uint8_t want[FM_WIRE_MAC_SIZE];
	struct fm_msg *w;
	size_t klen;
	const void *key = ow_client_key(o, s->client_id, &klen);

	if (!key) { /* removed meanwhile */
		sess_drop(o, s, FM_BYE_UNKNOWN_CLIENT, -EACCES);
		return;
	}
	fm_wire_auth_mac(key, klen, s->client_id, s->client_nonce, s->owner_nonce,
			 s->session_id, want);
	if (!fm_wire_mac_equal(want, m->u.auth.mac, FM_WIRE_MAC_SIZE)) {
		o->st.auth_failures++;
		sess_drop(o, s, FM_BYE_AUTH_FAILED, -EACCES);
		return;
	}
	supersede(o, s, now);
	s->epoch = o->next_epoch++;
	if (o->next_epoch == 0)
		o->next_epoch = 1;
	s->state = FM_OSESS_ACTIVE;
	s->active_since = now;
	s->deadline = now + o->cfg.lease_term_ms + o->cfg.lease_grace_ms;
	o->st.sessions_active++;
	/* SESSION_UP first: the driver opens the peer's one-sided access to
	 * our regions before the WELCOME that names them goes out */
	ow_note_conn(o, FM_NOTE_SESSION_UP, 0, 0, s->client_id, s->conn);
	w = calloc(1, sizeof(*w));
	if (!w) {
		ow_owner_oom(o);
		return;
	}
	w->type = FM_MSG_WELCOME;
	w->u.welcome.session_id = s->session_id;
	w->u.welcome.client_epoch = s->epoch;
	w->u.welcome.lease_term_ms = o->cfg.lease_term_ms;
	w->u.welcome.incarnation = o->cfg.incarnation;
	ow_maps_welcome(o, s, w);
	ow_send_msg(o, s, w);
	free(w);
	ow_maps_grant_rest(o, s);
}

void ow_sess_on_renew(struct fm_owner *o, struct osess *s, const struct fm_msg *m,
		      uint64_t now)
{
	struct fm_msg r;

	s->deadline = now + o->cfg.lease_term_ms + o->cfg.lease_grace_ms;
	fm_wire_msg_init(&r, FM_MSG_LEASE_GRANT);
	r.u.lease.renew_id = m->u.renew.renew_id;
	r.u.lease.lease_term_ms = o->cfg.lease_term_ms;
	ow_send_msg(o, s, &r);
}
