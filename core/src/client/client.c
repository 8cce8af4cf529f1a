/* client.c -- the client state machine: the object, its public entry
 * points and the dispatch of events to the rooms (client_priv.h).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "client_priv.h"
#include "flashmeta/error.h"

static const char *const cstate_names[] = {
	"idle", "hello-sent", "auth-sent", "active", "quiescing", "closed",
};

const char *fm_client_state_name(int state)
{
	if (state < 0 || state > FM_CLIENT_CLOSED)
		return "?";
	return cstate_names[state];
}

enum fm_client_state fm_client_state(const struct fm_client *c)
{
	return (enum fm_client_state)cl_state(c);
}

uint32_t fm_client_epoch(const struct fm_client *c)
{
	return c->epoch;
}

uint64_t fm_client_token(const struct fm_client *c)
{
	return atomic_load_explicit(&c->token, memory_order_acquire);
}

uint32_t fm_client_lease_term(const struct fm_client *c)
{
	return atomic_load_explicit(&c->term_ms, memory_order_relaxed);
}

uint64_t fm_client_lease_left(const struct fm_client *c, uint64_t now)
{
	uint64_t exp = atomic_load_explicit(&c->lease_expiry, memory_order_acquire);

	return exp > now ? exp - now : 0;
}

int fm_client_maps(const struct fm_client *c, uint64_t *ids, size_t cap)
{
	unsigned n = atomic_load(&c->nmaps);
	int k = 0;

	for (unsigned i = 0; i < n; i++) {
		if (!atomic_load(&c->maps[i].present))
			continue;
		if ((size_t)k < cap)
			ids[k] = atomic_load(&c->maps[i].id);
		k++;
	}
	return k;
}

/* ---- helpers every room uses ---- */

void cl_oom(struct fm_client *c)
{
	if (!c->q.err)
		c->q.err = -ENOMEM;
	fm_err(-ENOMEM, "client: out of memory: the state machine stops");
}

int cl_slot_of(struct fm_client *c, uint64_t map_id)
{
	unsigned n = atomic_load(&c->nmaps);

	for (unsigned i = 0; i < n; i++)
		if (atomic_load(&c->maps[i].present) && atomic_load(&c->maps[i].id) == map_id)
			return (int)i;
	return -1;
}

struct fm_notify *cl_note(struct fm_client *c, enum fm_notify_type type, int status,
			  uint64_t cookie, uint64_t map_id, uint64_t grain, bool split)
{
	struct fm_action *a = fm_actq_push(&c->q);

	a->type = FM_ACT_NOTIFY;
	memset(&a->u.note, 0, sizeof(a->u.note));
	a->u.note.type = type;
	a->u.note.status = status;
	a->u.note.cookie = cookie;
	a->u.note.map_id = map_id;
	a->u.note.grain = grain;
	a->u.note.split = split;
	a->u.note.client_id = c->cfg.client_id;
	return &a->u.note;
}

int cl_error_status(const struct fm_msg *m)
{
	return m->u.error.code && m->u.error.code < 4096 ? -(int)m->u.error.code : -EPROTO;
}

/* Encode and queue; 0, or the encoder's refusal of our own message (a bug). */
int cl_send_msg(struct fm_client *c, struct fm_msg *m)
{
	struct fm_action *a = fm_actq_push(&c->q);
	int n;

	m->session = m->type == FM_MSG_HELLO ? 0 : c->session;
	m->seq = ++c->tx_seq;
	n = fm_wire_encode(m, a->u.msg.buf, sizeof(a->u.msg.buf));
	if (n < 0) {
		fm_actq_unpush(&c->q);
		c->tx_seq--;
		return n;
	}
	a->type = FM_ACT_SEND;
	a->u.msg.len = (uint32_t)n;
	return 0;
}

struct cop *cl_op_new(struct fm_client *c, enum cop_kind kind, unsigned slot)
{
	uint64_t id;
	struct cop *op = fm_optab_new(&c->ops, &id);

	if (!op) {
		cl_oom(c);
		return NULL;
	}
	op->id = id;
	op->kind = kind;
	op->slot = slot;
	return op;
}

struct cop *cl_op_take(struct fm_client *c, uint64_t id)
{
	return fm_optab_take(&c->ops, id);
}

void cl_op_drop(struct fm_client *c, struct cop *op)
{
	free(cl_op_take(c, op->id));
}

void cl_io_action(struct fm_client *c, struct cop *op, enum fm_action_type t,
		  const struct fm_region_desc *region, uint64_t offset, uint32_t len,
		  uint64_t compare, uint64_t swap)
{
	struct fm_action *a = fm_actq_push(&c->q);

	a->type = t;
	a->op_id = op->id;
	a->u.io.region = *region;
	a->u.io.offset = offset;
	a->u.io.len = len;
	a->u.io.compare = compare;
	a->u.io.swap = swap;
}

int cl_usable_slot(struct fm_client *c, uint64_t map_id, uint64_t grain, bool need_grant)
{
	int slot;

	if (!c)
		return -EINVAL;
	if (cl_state(c) != FM_CLIENT_ACTIVE)
		return fm_err(-EAGAIN, "client: not active");
	slot = cl_slot_of(c, map_id);
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

/* ---- the object ---- */

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
	atomic_init(&c->state, FM_CLIENT_IDLE);
	fm_optab_init(&c->ops, sizeof(struct cop));
	*out = c;
	return 0;
}

void fm_client_delete(struct fm_client **cp)
{
	struct fm_client *c;

	if (!cp || !*cp)
		return;
	c = *cp;
	cl_locks_free_all(c);
	cl_query_fail_all(c, false);
	while (c->claims)
		free(cl_pend_entry(cl_pend_pop(&c->claims), struct cclaim));
	cl_readers_free(c);
	cl_written_free(c);
	fm_optab_fini(&c->ops);
	fm_actq_fini(&c->q);
	memset(c->key, 0, sizeof(c->key));
	free(c);
	*cp = NULL;
}

int fm_client_connect(struct fm_client *c, uint64_t now)
{
	struct fm_msg m;
	int st;

	if (!c)
		return -EINVAL;
	st = cl_state(c);
	if (st != FM_CLIENT_IDLE && st != FM_CLIENT_CLOSED)
		return fm_err(-EBUSY, "client: already %s", fm_client_state_name(st));
	c->session = 0;
	c->tx_seq = c->rx_seq = 0;
	c->epoch = 0;
	atomic_store(&c->lease_expiry, 0);
	atomic_store(&c->token, 0);
	memset(c->renews, 0, sizeof(c->renews));
	if (c->cfg.rand_bytes)
		c->cfg.rand_bytes(c->cfg.rand_ctx, c->nonce, sizeof(c->nonce));
	else if (getrandom(c->nonce, sizeof(c->nonce), 0) != (ssize_t)sizeof(c->nonce))
		return fm_err(-EIO, "client: no entropy for the nonce");
	c->link_ok = true;
	atomic_store(&c->state, FM_CLIENT_HELLO_SENT);
	c->handshake_deadline = now + c->cfg.handshake_ms;
	fm_wire_msg_init(&m, FM_MSG_HELLO);
	m.u.hello.client_id = c->cfg.client_id;
	m.u.hello.ver_major = FM_WIRE_MAJOR;
	m.u.hello.ver_minor = FM_WIRE_MINOR;
	memcpy(m.u.hello.nonce, c->nonce, sizeof(c->nonce));
	/* R3: the previous session quiesced but could not say so */
	m.u.hello.prev_session = c->prev_session;
	m.u.hello.prev_flags = c->prev_vouch ? FM_HELLO_PREV_QUIESCED : 0;
	return cl_send_msg(c, &m);
}

int fm_client_disconnected(struct fm_client *c, uint64_t now)
{
	(void)now; /* the uniform time argument: nothing here is timed */
	if (!c)
		return -EINVAL;
	c->link_ok = false;
	cl_sess_close(c, FM_BYE_SHUTDOWN, -ECONNRESET, false);
	return 0;
}

static void on_active(struct fm_client *c, const struct fm_msg *m)
{
	switch (m->type) {
	case FM_MSG_LEASE_GRANT:
		cl_sess_on_lease(c, m);
		break;
	case FM_MSG_LOCK_GRANT:
		cl_locks_on_grant(c, m);
		break;
	case FM_MSG_RELEASE_REQUEST:
		cl_maps_on_release_request(c, m);
		break;
	case FM_MSG_MAP_GRANT:
		cl_maps_apply_grant(c, &m->u.map_grant.map);
		break;
	case FM_MSG_SPLIT_ACK:
		cl_locks_on_split_ack(c, m);
		break;
	case FM_MSG_COPY_BATCH:
		cl_copy_on_batch(c, m);
		break;
	case FM_MSG_SPLIT_ANSWER:
		cl_query_on_answer(c, m);
		break;
	case FM_MSG_ERROR:
		if (!cl_copy_on_error(c, m) && !cl_query_on_error(c, m))
			cl_locks_on_error(c, m);
		break;
	default:
		cl_sess_close(c, FM_BYE_PROTOCOL, -EPROTO, true);
		break;
	}
}

int fm_client_recv(struct fm_client *c, const void *buf, size_t len, uint64_t now)
{
	struct fm_msg *m;
	int rc, st = c ? cl_state(c) : FM_CLIENT_IDLE;

	if (st == FM_CLIENT_IDLE || st == FM_CLIENT_CLOSED)
		return fm_err(-ENOTCONN, "client: no session");
	if (st == FM_CLIENT_QUIESCING)
		return 0; /* the session is over: nothing it says matters now */
	m = malloc(sizeof(*m));
	if (!m) {
		cl_oom(c);
		return -ENOMEM;
	}
	rc = fm_wire_decode(buf, len, m);
	if (rc) {
		cl_sess_close(c, FM_BYE_MALFORMED, rc, true);
		goto out;
	}
	if (m->seq != c->rx_seq + 1 ||
	    (st != FM_CLIENT_HELLO_SENT && m->session != c->session)) {
		cl_sess_close(c, FM_BYE_PROTOCOL, -EPROTO, true);
		goto out;
	}
	c->rx_seq = m->seq;
	if (m->type == FM_MSG_BYE) {
		/* the owner ended it: quiesce, then answer BYE{QUIESCED} */
		cl_sess_close(c, m->u.bye.reason,
			      m->u.bye.code && m->u.bye.code < 4096 ? -(int)m->u.bye.code
								    : -ECONNRESET,
			      true);
		goto out;
	}
	switch (st) {
	case FM_CLIENT_HELLO_SENT:
		if (m->type == FM_MSG_CHALLENGE)
			cl_sess_on_challenge(c, m, now);
		else
			cl_sess_close(c, FM_BYE_PROTOCOL, -EPROTO, true);
		break;
	case FM_CLIENT_AUTH_SENT:
		if (m->type == FM_MSG_WELCOME && m->u.welcome.session_id == c->session) {
			c->owner_minor = m->ver_minor;
			cl_sess_on_welcome(c, m, now);
		}
		else
			cl_sess_close(c, FM_BYE_PROTOCOL, -EPROTO, true);
		break;
	case FM_CLIENT_ACTIVE:
		on_active(c, m);
		break;
	default:
		break;
	}
out:
	free(m);
	return 0;
}

int fm_client_tick(struct fm_client *c, uint64_t now)
{
	if (!c)
		return -EINVAL;
	cl_sess_tick(c, now);
	return 0;
}

int fm_client_kick(struct fm_client *c, uint64_t now)
{
	(void)now; /* the uniform time argument: nothing here is timed */
	if (!c)
		return -EINVAL;
	cl_maps_try_drain_all(c);
	cl_sess_try_quiesce(c);
	return 0;
}

int fm_client_op_done(struct fm_client *c, uint64_t op_id, int status,
		      uint64_t old_value, const void *data, size_t len, uint64_t now)
{
	struct cop *op = c ? cl_op_take(c, op_id) : NULL;

	(void)now; /* the uniform time argument: nothing here is timed */
	if (!op)
		return fm_err(-ENOENT, "client: op %llu unknown", (unsigned long long)op_id);
	switch (op->kind) {
	case CO_FETCH:
		cl_fetch_done(c, op, status, data, len);
		break;
	case CO_CHECK:
		cl_locks_check_done(c, op, status, data, len);
		break;
	case CO_LOCK_CAS:
		cl_locks_cas_done(c, op, status, old_value);
		break;
	case CO_UNLOCK_CAS:
		cl_locks_unlock_done(c, op, status, old_value);
		break;
	}
	free(op);
	return 0;
}

int fm_client_poll(struct fm_client *c, struct fm_action *act)
{
	return fm_actq_pop(&c->q, act);
}
