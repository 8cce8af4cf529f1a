/* session.c -- the client's session: handshake, lease, and the way out.
 *
 * Design (lease.h R1-R3):
 *
 *   IDLE/CLOSED --connect--> HELLO_SENT --CHALLENGE--> AUTH_SENT
 *        ^                                                 | WELCOME
 *        |                                                 v
 *      CLOSED <--all brackets ended-- QUIESCING <--end-- ACTIVE
 *
 *   The lease: `lease_expiry` = send time of the AUTH/RENEW a grant answers
 *   + T, on our clock; renewals every T/3.  It lapses before the owner's
 *   copy (receipt + T + G).  Engine threads read it (step check, R2).
 *
 *   The end, for any reason (lease lapsed, the owner's BYE, a protocol
 *   error, the link broke): 1. every mapping's confirmations are discarded
 *   and no new bracket can begin (usable = false); 2. pending requests
 *   fail (-ECONNRESET), held locks are reported lost; 3. QUIESCING until
 *   every open bracket ended (fm_client_io_end + kick); 4. QUIESCED: with
 *   the link up, BYE{QUIESCED}; with it down, the next HELLO vouches for
 *   this session; 5. CLOSE, CLOSED.  A session that never became ACTIVE
 *   was granted nothing: it closes at once.
 */
#include <errno.h>
#include <string.h>

#include "client_priv.h"
#include "flashmeta/lease.h"

static void closed(struct fm_client *c, int err)
{
	struct fm_action *a = fm_actq_push(&c->q);

	a->type = FM_ACT_CLOSE;
	atomic_store(&c->state, FM_CLIENT_CLOSED);
	cl_note(c, FM_NOTE_CLOSED, err, 0, 0, 0, false);
}

void cl_sess_close(struct fm_client *c, uint32_t reason, int err, bool link_ok)
{
	int st = cl_state(c);

	if (st == FM_CLIENT_HELLO_SENT || st == FM_CLIENT_AUTH_SENT) {
		if (link_ok && c->link_ok) {
			struct fm_msg m;

			fm_wire_msg_init(&m, FM_MSG_BYE);
			m.u.bye.reason = reason;
			m.u.bye.code = (uint32_t)-err;
			cl_send_msg(c, &m);
		}
		closed(c, err);
		return;
	}
	if (st != FM_CLIENT_ACTIVE)
		return;
	/* 1. confirmations go first: nothing may hit once we are closing */
	atomic_store(&c->state, FM_CLIENT_QUIESCING);
	cl_maps_discard_all(c);
	/* 2. */
	cl_locks_fail_all(c);
	cl_copy_fail_all(c);
	cl_query_fail_all(c, true);
	c->link_ok = c->link_ok && link_ok;
	c->close_reason = reason;
	c->close_err = err;
	/* 3. */
	cl_sess_try_quiesce(c);
}

void cl_sess_try_quiesce(struct fm_client *c)
{
	if (cl_state(c) != FM_CLIENT_QUIESCING || cl_maps_inflight(c))
		return;
	/* 4. no bracket is open and none can begin: nothing of this
	 *    session runs or can start */
	c->prev_session = c->session;
	if (c->link_ok) {
		unsigned n = atomic_load(&c->nmaps);
		struct fm_msg m;

		/* what this session wrote and has not reported: complete
		 * now, and the owner takes a BYE{QUIESCED} behind reports
		 * as "nothing unreported" (owner/session.c) */
		for (unsigned i = 0; i < n; i++)
			if (atomic_load(&c->maps[i].present))
				cl_written_report(c, i);

		fm_wire_msg_init(&m, FM_MSG_BYE);
		m.u.bye.reason = c->close_reason;
		m.u.bye.code = (uint32_t)-c->close_err;
		m.u.bye.flags = FM_BYE_F_QUIESCED;
		(void)cl_send_msg(c, &m);
	}
	/* the next HELLO vouches for this session too, whether or not the
	 * BYE gets there: a BYE queued behind spent credits (an owner that
	 * stalled while we renewed) dies with the endpoint, and an owner
	 * that never hears of the quiescence fences -- on shm, kills -- us.
	 * The vouch is as true as the BYE: no bracket of this session is
	 * open or can open. */
	c->prev_vouch = true;
	cl_note(c, FM_NOTE_QUIESCED, c->close_err, 0, 0, 0, false);
	/* 5. */
	closed(c, c->close_err);
}

int fm_client_leave(struct fm_client *c, uint64_t now)
{
	(void)now;
	cl_sess_close(c, FM_BYE_SHUTDOWN, 0, true);
	return 0;
}

int fm_client_step_check(struct fm_client *c, uint64_t now)
{
	uint64_t exp;

	if (cl_state(c) != FM_CLIENT_ACTIVE)
		return -EKEYEXPIRED;
	exp = atomic_load_explicit(&c->lease_expiry, memory_order_acquire);
	if (now >= exp)
		return -EKEYEXPIRED;
	if (exp - now < c->margin_ms)
		return -EAGAIN;
	return 0;
}

void cl_sess_on_challenge(struct fm_client *c, const struct fm_msg *m, uint64_t now)
{
	struct fm_msg r;

	c->session = m->session;
	atomic_store(&c->state, FM_CLIENT_AUTH_SENT);
	fm_wire_msg_init(&r, FM_MSG_AUTH);
	fm_wire_auth_mac(c->key, c->cfg.key_len, c->cfg.client_id, c->nonce,
			 m->u.challenge.nonce, c->session, r.u.auth.mac);
	c->auth_sent_at = now;
	cl_send_msg(c, &r);
}

void cl_sess_on_welcome(struct fm_client *c, const struct fm_msg *m, uint64_t now)
{
	c->epoch = m->u.welcome.client_epoch;
	c->term_ms = m->u.welcome.lease_term_ms;
	c->margin_ms = c->cfg.margin_ms ? c->cfg.margin_ms : fm_lease_margin_ms(c->term_ms);
	if (c->margin_ms >= c->term_ms)
		c->margin_ms = c->term_ms - 1;
	atomic_store(&c->token, fm_lease_token(m->u.welcome.incarnation, c->epoch));
	atomic_store(&c->lease_expiry, c->auth_sent_at + c->term_ms);
	c->next_renew = now + c->term_ms / 3;
	c->link_ok = true;
	/* the owner has our word for the previous session now */
	c->prev_vouch = false;
	atomic_store(&c->state, FM_CLIENT_ACTIVE);
	for (unsigned i = 0; i < m->u.welcome.map_count; i++)
		cl_maps_apply_grant(c, &m->u.welcome.maps[i]);
	cl_note(c, FM_NOTE_JOINED, 0, 0, 0, 0, false);
}

void cl_sess_on_lease(struct fm_client *c, const struct fm_msg *m)
{
	for (unsigned i = 0; i < RENEW_RING; i++) {
		if (c->renews[i].id == m->u.lease.renew_id && c->renews[i].id) {
			uint64_t exp = c->renews[i].sent_at + m->u.lease.lease_term_ms;

			if (exp > atomic_load(&c->lease_expiry))
				atomic_store_explicit(&c->lease_expiry, exp, memory_order_release);
			c->term_ms = m->u.lease.lease_term_ms;
			c->renews[i].id = 0;
		}
	}
}

void cl_sess_tick(struct fm_client *c, uint64_t now)
{
	int st = cl_state(c);

	if ((st == FM_CLIENT_HELLO_SENT || st == FM_CLIENT_AUTH_SENT) &&
	    now >= c->handshake_deadline) {
		cl_sess_close(c, FM_BYE_PROTOCOL, -ETIMEDOUT, true);
		return;
	}
	if (st == FM_CLIENT_QUIESCING) {
		cl_sess_try_quiesce(c);
		return;
	}
	if (st != FM_CLIENT_ACTIVE)
		return;
	if (now >= atomic_load(&c->lease_expiry)) {
		/* the lease lapsed: stop trusting by ourselves, go away */
		cl_sess_close(c, FM_BYE_LEASE_EXPIRED, -ETIMEDOUT, true);
		return;
	}
	if (now >= c->next_renew) {
		struct fm_msg m;
		unsigned i = (unsigned)(++c->renew_id % RENEW_RING);

		c->renews[i].id = c->renew_id;
		c->renews[i].sent_at = now;
		fm_wire_msg_init(&m, FM_MSG_LEASE_RENEW);
		m.u.renew.renew_id = c->renew_id;
		cl_send_msg(c, &m);
		c->next_renew = now + (c->term_ms / 3 ? c->term_ms / 3 : 1);
	}
	cl_maps_try_drain_all(c);
}
