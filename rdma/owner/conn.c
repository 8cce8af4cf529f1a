/* conn.c -- the owner's client connections: accepted from the listener,
 * progressed every loop iteration (messages into the state machine), a
 * FIFO of SENDs per connection waiting for credits, and loss.
 *
 * A connection leaves the array only once its peer is FENCED (or it never
 * had a session, so no FENCE will come): see struct od_conn.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "flashmeta/error.h"
#include "flashmeta/wire.h"
#include "ownerd_priv.h"

struct od_conn *od_conn_find(struct fm_ownerd *d, uint64_t id)
{
	for (size_t i = 0; i < d->nconns; i++)
		if (d->conns[i].id == id)
			return &d->conns[i];
	return NULL;
}

void od_conn_drop(struct fm_ownerd *d, struct od_conn *c)
{
	size_t i = (size_t)(c - d->conns);

	fm_ep_delete(&c->ep);
	while (c->outq_count) {
		free(c->outq[c->outq_head]);
		c->outq_head = (c->outq_head + 1) % c->outq_cap;
		c->outq_count--;
	}
	free(c->outq);
	d->conns[i] = d->conns[--d->nconns];
}

int od_outq_push(struct od_conn *c, const void *buf, uint32_t len)
{
	struct od_msg *m;

	if (c->outq_count == c->outq_cap) {
		size_t ncap = c->outq_cap ? c->outq_cap * 2 : 16;
		struct od_msg **nq = calloc(ncap, sizeof(*nq));

		if (!nq)
			return -ENOMEM;
		for (size_t i = 0; i < c->outq_count; i++)
			nq[i] = c->outq[(c->outq_head + i) % c->outq_cap];
		free(c->outq);
		c->outq = nq;
		c->outq_cap = ncap;
		c->outq_head = 0;
	}
	m = malloc(sizeof(*m) + len);
	if (!m)
		return -ENOMEM;
	m->len = len;
	memcpy(m->buf, buf, len);
	c->outq[(c->outq_head + c->outq_count) % c->outq_cap] = m;
	c->outq_count++;
	return 0;
}

int od_outq_flush(struct od_conn *c)
{
	while (c->outq_count) {
		struct od_msg *m = c->outq[c->outq_head];
		int rc = fm_ep_send(c->ep, m->buf, m->len, FM_NONBLOCK);

		if (rc == -EAGAIN)
			return 0;
		if (rc)
			return rc;
		free(m);
		c->outq_head = (c->outq_head + 1) % c->outq_cap;
		c->outq_count--;
	}
	return 0;
}

/* The connection broke (or the peer is given up on).  The endpoint stays
 * until the state machine's FENCE for it ran (exec_fence): the peer may be
 * alive and still able to reach our memory.  No session, no FENCE: drop. */
void od_conn_lost(struct fm_ownerd *d, struct od_conn *c, const char *why)
{
	uint64_t id = c->id;

	if (c->lost)
		return;
	od_log(FM_LOGLVL_INFO, "conn %" PRIu64 ": down (%s)", id, why);
	c->lost = true;
	if (fm_owner_disconnected(d->o, id, od_now_ms()) < 0 && (c = od_conn_find(d, id)))
		od_conn_drop(d, c);
}

void od_accept_all(struct fm_ownerd *d)
{
	for (;;) {
		struct fm_ep *ep = NULL;
		struct od_conn *c;
		int rc = fm_listener_accept(d->l, 0, &ep);

		if (rc == -ETIMEDOUT || rc == -EAGAIN)
			return;
		if (rc) {
			od_log(FM_LOGLVL_WARN, "accept: %s", fm_errormsg());
			return;
		}
		if (d->nconns == d->cap_conns) {
			size_t nc = d->cap_conns ? d->cap_conns * 2 : 16;
			struct od_conn *n = realloc(d->conns, nc * sizeof(*n));

			if (!n) {
				fm_ep_delete(&ep);
				return;
			}
			d->conns = n;
			d->cap_conns = nc;
		}
		c = &d->conns[d->nconns++];
		memset(c, 0, sizeof(*c));
		c->id = ++d->next_conn;
		c->ep = ep;
		od_log(FM_LOGLVL_INFO, "conn %" PRIu64 ": up", c->id);
		if (fm_owner_connected(d->o, c->id, od_now_ms())) {
			od_log(FM_LOGLVL_ERR, "owner_connected: %s", fm_errormsg());
			od_conn_drop(d, c);
		}
	}
}

void od_progress_conns(struct fm_ownerd *d)
{
	uint8_t buf[FM_WIRE_MAX_MSG];
	size_t n = d->nconns;
	uint64_t ids[n ? n : 1];

	/* by id: receiving may fence (and so remove) any connection */
	for (size_t i = 0; i < n; i++)
		ids[i] = d->conns[i].id;
	for (size_t i = 0; i < n; i++) {
		struct od_conn *c = od_conn_find(d, ids[i]);
		const char *why = NULL;
		int k;

		if (!c || c->lost)
			continue;
		k = fm_ep_progress(c->ep);
		while (k > 0 && (c = od_conn_find(d, ids[i])) && !c->lost) {
			int len = fm_ep_recv(c->ep, buf, sizeof(buf), FM_NONBLOCK);

			if (len < 0)
				break;
			(void)fm_owner_recv(d->o, ids[i], buf, (size_t)len, od_now_ms());
			od_drain_actions(d);
		}
		if (!(c = od_conn_find(d, ids[i])) || c->lost)
			continue;
		/* CLOSED and nothing left to deliver: the peer is gone */
		if (od_outq_flush(c) < 0 || (fm_ep_state(c->ep, &why) == FM_EP_CLOSED &&
					  fm_ep_progress(c->ep) < 0)) {
			od_conn_lost(d, c, why && *why ? why : "closed");
			od_drain_actions(d);
		}
	}
}
