/* owner.c -- the owner state machine: the object, its public entry points
 * and the dispatch of events to the rooms (see owner_priv.h for the map).
 *
 * Cost: pending ops are found in O(1) (optab.h); sessions and olocks are
 * linked lists searched linearly -- fine for tens of clients and the few
 * contended words a per-session limit allows; hash them when that stops
 * being true.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "flashmeta/error.h"
#include "flashmeta/lease.h"
#include "owner_priv.h"

static const char *const osess_names[] = {
	"hello-wait", "auth-wait", "active", "closing", "fencing", "reclaiming",
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
	case FM_ACT_CHANGED: return "changed";
	}
	return "?";
}

/* ---- helpers every room uses ---- */

/* Out of memory: latch it (fm_owner_poll reports -ENOMEM from now on). */
void ow_owner_oom(struct fm_owner *o)
{
	if (!o->q.err)
		o->q.err = -ENOMEM;
	fm_err(-ENOMEM, "owner: out of memory: the state machine stops");
}

struct osess *ow_sess_by_conn(struct fm_owner *o, uint64_t conn)
{
	for (struct osess *s = o->sessions; s; s = s->next)
		if (s->conn == conn)
			return s;
	return NULL;
}

struct osess *ow_sess_by_id(struct fm_owner *o, uint64_t id)
{
	for (struct osess *s = o->sessions; s; s = s->next)
		if (s->session_id == id)
			return s;
	return NULL;
}

int ow_map_slot(const struct fm_owner *o, uint64_t map_id)
{
	for (unsigned i = 0; i < o->cfg.max_maps; i++)
		if (o->maps[i].used && o->maps[i].d.map_id == map_id)
			return (int)i;
	return -1;
}

/* A new pending op (its id goes into the action), or NULL after
 * latching OOM. */
struct oop *ow_op_new(struct fm_owner *o, enum oop_kind kind)
{
	uint64_t id;
	struct oop *op = fm_optab_new(&o->ops, &id);

	if (!op) {
		ow_owner_oom(o);
		return NULL;
	}
	op->id = id;
	op->kind = kind;
	return op;
}

struct oop *ow_op_take(struct fm_owner *o, uint64_t id)
{
	return fm_optab_take(&o->ops, id);
}

void ow_note_conn(struct fm_owner *o, enum fm_notify_type type, int status, uint64_t map_id,
		  uint32_t client_id, uint64_t conn)
{
	struct fm_action *a = fm_actq_push(&o->q);

	a->type = FM_ACT_NOTIFY;
	a->conn = conn;
	memset(&a->u.note, 0, sizeof(a->u.note));
	a->u.note.type = type;
	a->u.note.status = status;
	a->u.note.map_id = map_id;
	a->u.note.client_id = client_id;
}

void ow_note(struct fm_owner *o, enum fm_notify_type type, int status, uint64_t map_id,
	     uint32_t client_id)
{
	ow_note_conn(o, type, status, map_id, client_id, 0);
}

/* Encode `m` for session s (fills session and sequence) as a SEND.  A
 * session whose link is gone sends nothing. */
void ow_send_msg(struct fm_owner *o, struct osess *s, struct fm_msg *m)
{
	struct fm_action *a;
	int n;

	if (s->link_lost)
		return;
	a = fm_actq_push(&o->q);
	m->session = s->session_id;
	m->seq = ++s->tx_seq;
	n = fm_wire_encode(m, a->u.msg.buf, sizeof(a->u.msg.buf));
	if (n < 0) {
		/* encode refused our own message: a bug, never a peer's doing */
		fm_actq_unpush(&o->q);
		s->tx_seq--;
		return;
	}
	a->type = FM_ACT_SEND;
	a->conn = s->conn;
	a->u.msg.len = (uint32_t)n;
}

void ow_send_error(struct fm_owner *o, struct osess *s, uint64_t ref_seq, int err)
{
	struct fm_msg m;

	fm_wire_msg_init(&m, FM_MSG_ERROR);
	m.u.error.ref_seq = ref_seq;
	m.u.error.code = (uint32_t)-err;
	ow_send_msg(o, s, &m);
}

struct fm_action *ow_local_op(struct fm_owner *o, struct oop *op, enum fm_action_type t,
			      const struct fm_region_desc *r, uint64_t off)
{
	struct fm_action *a = fm_actq_push(&o->q);

	a->type = t;
	a->conn = FM_CONN_LOCAL;
	a->op_id = op->id;
	a->u.io.region = *r;
	a->u.io.offset = off;
	return a;
}

/* ---- the object ---- */

int fm_owner_new(struct fm_owner **out, const struct fm_owner_cfg *cfg)
{
	struct fm_owner *o;

	if (!out || !cfg)
		return fm_err(-EINVAL, "owner: NULL argument");
	if (cfg->max_maps > FM_OWNER_MAX_MAPS)
		return fm_err(-EINVAL, "owner: max_maps %u > %u", cfg->max_maps,
			      FM_OWNER_MAX_MAPS);
	if (cfg->lease_term_ms &&
	    (cfg->lease_term_ms < FM_LEASE_TERM_MIN_MS || cfg->lease_term_ms > FM_LEASE_TERM_MAX_MS))
		return fm_err(-EINVAL, "owner: lease term %u ms outside %u..%u",
			      cfg->lease_term_ms, FM_LEASE_TERM_MIN_MS, FM_LEASE_TERM_MAX_MS);
	o = calloc(1, sizeof(*o));
	if (!o)
		return fm_err(-ENOMEM, "owner: out of memory");
	o->cfg = *cfg;
	if (!o->cfg.lease_term_ms)
		o->cfg.lease_term_ms = FM_LEASE_TERM_DEFAULT_MS;
	if (!o->cfg.lease_grace_ms)
		o->cfg.lease_grace_ms = fm_lease_grace_ms(o->cfg.lease_term_ms);
	if (!o->cfg.quiesce_ms)
		o->cfg.quiesce_ms = o->cfg.lease_grace_ms;
	if (!o->cfg.handshake_ms)
		o->cfg.handshake_ms = 5000;
	if (!o->cfg.incarnation)
		o->cfg.incarnation = 1;
	if (!o->cfg.max_maps)
		o->cfg.max_maps = FM_OWNER_MAX_MAPS;
	if (!o->cfg.max_waits)
		o->cfg.max_waits = 64;
	if (!o->cfg.max_commits)
		o->cfg.max_commits = 256;
	if (!o->cfg.max_queries)
		o->cfg.max_queries = 64;
	o->maps = calloc(o->cfg.max_maps, sizeof(*o->maps));
	if (!o->maps) {
		free(o);
		return fm_err(-ENOMEM, "owner: out of memory");
	}
	o->next_epoch = 1;
	fm_optab_init(&o->ops, sizeof(struct oop));
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
		ow_sess_free(o, o->sessions);
	for (unsigned i = 0; i < o->cfg.max_maps; i++)
		ow_copy_map_free(o, i);
	ow_locks_free_all(o);
	for (uint32_t i = 0; i < o->ops.cap; i++) {
		struct oop *x = fm_optab_at(&o->ops, i);

		/* the ops of one commit share it: the last one frees it */
		if (x && x->kind == OP_HOLDER && --x->commit->pending == 0)
			free(x->commit);
	}
	fm_optab_fini(&o->ops);
	fm_actq_fini(&o->q);
	free(o->maps);
	free(o);
	*op = NULL;
}

static const struct oclient *client_find(struct fm_owner *o, uint32_t id)
{
	for (struct oclient *c = o->clients; c; c = c->next)
		if (c->id == id)
			return c;
	return NULL;
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

/* the key of client `id`, or NULL (session.c) */
const void *ow_client_key(struct fm_owner *o, uint32_t id, size_t *len)
{
	const struct oclient *c = client_find(o, id);

	if (!c)
		return NULL;
	*len = c->key_len;
	return c->key;
}

/* ---- events ---- */

int fm_owner_connected(struct fm_owner *o, uint64_t conn, uint64_t now)
{
	struct osess *s;

	if (!o || conn == FM_CONN_LOCAL)
		return fm_err(-EINVAL, "owner: bad connection id");
	if (ow_sess_by_conn(o, conn))
		return fm_err(-EEXIST, "owner: connection %llu already known",
			      (unsigned long long)conn);
	s = calloc(1, sizeof(*s));
	if (s)
		s->mstate = calloc(o->cfg.max_maps, 1);
	if (!s || !s->mstate) {
		free(s);
		return fm_err(-ENOMEM, "owner: out of memory");
	}
	s->conn = conn;
	/* on the wire from CHALLENGE on; unique across incarnations too, so
	 * a HELLO vouching for a session of a previous owner can never name
	 * one of ours */
	s->session_id = o->cfg.incarnation << 32 | (++o->next_session & 0xffffffffu);
	s->state = FM_OSESS_HELLO_WAIT;
	s->deadline = now + o->cfg.handshake_ms;
	s->next = o->sessions;
	o->sessions = s;
	return 0;
}

static void on_active(struct fm_owner *o, struct osess *s, const struct fm_msg *m,
		      uint64_t now)
{
	switch (m->type) {
	case FM_MSG_LEASE_RENEW:
		ow_sess_on_renew(o, s, m, now);
		break;
	case FM_MSG_LOCK_REQUEST:
		ow_locks_on_request(o, s, m, now);
		break;
	case FM_MSG_UNLOCK:
		ow_locks_on_unlock(o, s, m);
		break;
	case FM_MSG_RELEASED:
		ow_maps_on_released(o, s, m);
		break;
	case FM_MSG_SPLIT_COMMIT:
		ow_commit_on_split(o, s, m);
		break;
	case FM_MSG_BYE:
		ow_sess_on_bye(o, s, m, now);
		break;
	case FM_MSG_COPY_CLAIM:
		ow_copy_on_claim(o, s, m, now);
		break;
	case FM_MSG_SPLIT_QUERY:
		ow_query_on_split(o, s, m);
		break;
	case FM_MSG_CHANGE_REPORT:
		ow_changed_on_report(o, s, m);
		break;
	case FM_MSG_ERROR:
		break;
	default:
		ow_sess_close(o, s, FM_BYE_PROTOCOL, -EPROTO, now);
		break;
	}
}

int fm_owner_recv(struct fm_owner *o, uint64_t conn, const void *buf, size_t len,
		  uint64_t now)
{
	struct osess *s = o ? ow_sess_by_conn(o, conn) : NULL;
	struct fm_msg *m;
	int rc;

	/* a CLOSING session still listens: its BYE{QUIESCED} is awaited */
	if (!s || s->state >= FM_OSESS_FENCING || s->link_lost)
		return fm_err(-ENOTCONN, "owner: no open session on connection %llu",
			      (unsigned long long)conn);
	m = malloc(sizeof(*m));
	if (!m) {
		ow_owner_oom(o);
		return -ENOMEM;
	}
	rc = fm_wire_decode(buf, len, m);
	if (rc) {
		o->st.malformed++;
		s->report_refused = true; /* it may have been a report (changed.c) */
		ow_sess_close(o, s, FM_BYE_MALFORMED, rc, now);
		goto out;
	}
	if (m->seq != s->rx_seq + 1 ||
	    m->session != (s->state == FM_OSESS_HELLO_WAIT ? 0 : s->session_id)) {
		ow_sess_close(o, s, FM_BYE_PROTOCOL, -EPROTO, now);
		goto out;
	}
	s->rx_seq = m->seq;
	switch (s->state) {
	case FM_OSESS_HELLO_WAIT:
		if (m->type == FM_MSG_HELLO)
			ow_sess_on_hello(o, s, m);
		else
			ow_sess_close(o, s, FM_BYE_PROTOCOL, -EPROTO, now);
		break;
	case FM_OSESS_AUTH_WAIT:
		if (m->type == FM_MSG_AUTH)
			ow_sess_on_auth(o, s, m, now);
		else
			ow_sess_close(o, s, FM_BYE_PROTOCOL, -EPROTO, now);
		break;
	case FM_OSESS_ACTIVE:
		on_active(o, s, m, now);
		break;
	case FM_OSESS_CLOSING:
		/* only the quiescence report matters now, and what the
		 * client wrote (it reports before its BYE{QUIESCED}); the
		 * rest is late */
		if (m->type == FM_MSG_BYE)
			ow_sess_on_bye(o, s, m, now);
		else if (m->type == FM_MSG_CHANGE_REPORT)
			ow_changed_on_report(o, s, m);
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
	struct osess *s = o ? ow_sess_by_conn(o, conn) : NULL;

	if (!s)
		return fm_err(-ENOTCONN, "owner: connection %llu unknown",
			      (unsigned long long)conn);
	ow_sess_link_lost(o, s, now);
	return 0;
}

int fm_owner_tick(struct fm_owner *o, uint64_t now)
{
	if (!o)
		return -EINVAL;
	ow_maps_grace_tick(o, now);
	for (struct osess *s = o->sessions, *n; s; s = n) {
		n = s->next;
		ow_sess_tick(o, s, now);
	}
	/* retry lock words whose last CAS failed in the transport */
	ow_locks_step_all(o);
	ow_copy_tick(o, now);
	ow_changed_tick(o);
	return 0;
}

int fm_owner_op_done(struct fm_owner *o, uint64_t op_id, int status,
		     uint64_t old_value, const void *data, size_t len, uint64_t now)
{
	struct oop *op = o ? ow_op_take(o, op_id) : NULL;

	if (!op)
		return fm_err(-ENOENT, "owner: op %llu unknown", (unsigned long long)op_id);
	switch (op->kind) {
	case OP_LOCK_CAS:
		ow_locks_cas_done(o, op->lock, status, old_value);
		break;
	case OP_SCAN:
		ow_scan_done(o, op, status, data, len);
		break;
	case OP_PERSIST:
		ow_commit_persist_done(o, op, status);
		break;
	case OP_HOLDER:
		ow_commit_holder_done(o, op, status, old_value);
		break;
	case OP_FENCE:
		ow_sess_fence_done(o, op, status, (int)old_value, now);
		break;
	case OP_COPY_READ:
		ow_copy_read_done(o, op, status, data, len, now);
		break;
	case OP_QUERY_READ:
		ow_query_read_done(o, op, status, data, len);
		break;
	case OP_CHANGED:
		ow_changed_done(o, op, status);
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

size_t fm_owner_sessions(const struct fm_owner *o, struct fm_owner_session_info *v, size_t cap,
			 uint64_t now)
{
	size_t n = 0;

	for (const struct osess *s = o->sessions; s; s = s->next, n++)
		if (n < cap)
			v[n] = (struct fm_owner_session_info){
				.conn = s->conn, .client_id = s->client_id, .epoch = s->epoch,
				.state = (int)s->state,
				.lease_left_ms = (int64_t)s->deadline - (int64_t)now,
				.quiesced = s->quiesced, .commits = s->commits,
				.waits = s->nwaits,
				.age_ms = s->epoch && now > s->active_since ?
					  now - s->active_since : 0 };
	return n;
}

int fm_owner_session_state(const struct fm_owner *o, uint64_t conn)
{
	for (const struct osess *s = o->sessions; s; s = s->next)
		if (s->conn == conn)
			return (int)s->state;
	return -ENOTCONN;
}

int fm_owner_session_client(const struct fm_owner *o, uint64_t conn)
{
	for (const struct osess *s = o->sessions; s; s = s->next)
		if (s->conn == conn)
			return (int)s->client_id;
	return -ENOTCONN;
}
