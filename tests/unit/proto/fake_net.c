/* fake_net.c -- see fake_net.h. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "flashmeta/lockword.h"
#include "flashmeta/mapping.h"
#include "fake_net.h"

enum ev_kind {
	EV_TO_OWNER = 1,  /* datagram client -> owner */
	EV_TO_CLIENT,     /* datagram owner -> client */
	EV_C_EXEC,        /* client one-sided op executes */
	EV_C_DONE,        /* ... and reports */
	EV_O_DONE,        /* owner local op reports (executes at issue + op_exec) */
	EV_O_EXEC,
	EV_PERSIST,       /* persist executes and reports */
	EV_CHANGED,       /* a changed-set record executes and reports */
	EV_FENCE_DONE,
	EV_BREAK,         /* a side closed: the link breaks after what it sent */
};

struct sim_event {
	uint64_t at, seq;
	enum ev_kind kind;
	int client;
	uint32_t link;
	struct fm_action act;  /* the action (message bytes, op) */
	int status;
	uint64_t old;
	uint32_t len;
	uint8_t data[SIM_GRAINS / 8 + 8 * SIM_GRAINS];
};

static uint64_t last_at[SIM_MAX_CLIENTS][2]; /* FIFO per direction */

uint64_t sim_rand(struct sim *s)
{
	s->rng ^= s->rng << 13;
	s->rng ^= s->rng >> 7;
	s->rng ^= s->rng << 17;
	return s->rng;
}

static void rand_cb(void *ctx, void *buf, size_t len)
{
	struct sim *s = ctx;

	for (size_t i = 0; i < len; i++)
		((uint8_t *)buf)[i] = (uint8_t)sim_rand(s);
}

static uint64_t conn_of(int i, uint32_t link)
{
	return (uint64_t)link << 16 | (uint64_t)i;
}

static struct sim_event *ev_add(struct sim *s, uint64_t at, enum ev_kind k, int client)
{
	struct sim_event *e;

	if (s->nev == SIM_MAX_EVENTS) {
		fprintf(stderr, "fake_net: event queue full\n");
		abort();
	}
	e = &s->ev[s->nev++];
	memset(e, 0, offsetof(struct sim_event, act));
	e->status = 0; /* after `act`: not covered by the memset */
	e->old = 0;
	e->len = 0;
	e->at = at;
	e->seq = ++s->evseq;
	e->kind = k;
	e->client = client;
	e->link = client >= 0 ? s->c[client].link : 0;
	return e;
}

static uint32_t msg_delay(struct sim *s, int i)
{
	uint32_t span = s->delay_max - s->delay_min + 1;

	return s->delay_min + (uint32_t)(sim_rand(s) % span) + s->c[i].extra_delay;
}

static void record(struct sim *s, int client, const struct fm_notify *n)
{
	if (s->nnotes < SIM_NOTES) {
		s->notes[s->nnotes].client = client;
		s->notes[s->nnotes].at = s->now;
		s->notes[s->nnotes].n = *n;
		s->nnotes++;
	}
	if (s->on_note)
		s->on_note(s, client, n);
}

static int region_map(const struct fm_region_desc *r)
{
	return (int)(r->key / 2);
}

static void mem_exec(struct sim *s, struct sim_event *e)
{
	const struct fm_action *a = &e->act;
	struct sim_store *st = &s->store[region_map(&a->u.io.region)];
	bool locks = a->u.io.region.key % 2 == 1;

	if (a->type == FM_ACT_CAS) {
		uint64_t *w = &st->locks[a->u.io.offset / 8];

		e->old = *w;
		if (*w == a->u.io.compare)
			*w = a->u.io.swap;
	} else if (locks) {
		/* READ of the lock table: little-endian words */
		for (uint32_t i = 0; i < a->u.io.len; i++)
			e->data[i] = (uint8_t)(st->locks[(a->u.io.offset + i) / 8] >>
					       (8 * ((a->u.io.offset + i) % 8)));
		e->len = a->u.io.len;
	} else {
		memcpy(e->data, st->bitmap + a->u.io.offset, a->u.io.len);
		e->len = a->u.io.len;
	}
}

static void close_after(struct sim *s, int i, uint64_t last)
{
	struct sim_event *e;

	if (!s->c[i].connected)
		return;
	e = ev_add(s, (last > s->now ? last : s->now) + 1, EV_BREAK, i);
	e->link = s->c[i].link;
}

static void owner_actions(struct sim *s)
{
	struct fm_action a;

	for (;;) {
		struct sim_event *e;
		int i, rc = fm_owner_poll(s->owner, &a);

		if (rc < 0) {
			fprintf(stderr, "fake_net: owner state machine died: %d\n", rc);
			abort();
		}
		if (rc == 0)
			break;

		switch (a.type) {
		case FM_ACT_SEND:
			s->sends[((uint16_t)a.u.msg.buf[6] | a.u.msg.buf[7] << 8) %
				 FM_MSG_TYPE_END]++;
			i = (int)(a.conn & 0xffff);
			if ((uint32_t)(a.conn >> 16) != s->c[i].link || !s->c[i].connected)
				break;
			{
				uint64_t at = s->now + msg_delay(s, i);

				if (at < last_at[i][1])
					at = last_at[i][1];
				last_at[i][1] = at;
				e = ev_add(s, at, EV_TO_CLIENT, i);
				e->act = a;
			}
			if (s->drop_permille && sim_rand(s) % 1000 < s->drop_permille)
				sim_break(s, i);
			break;
		case FM_ACT_READ:
		case FM_ACT_CAS:
			e = ev_add(s, s->now + s->op_exec, EV_O_EXEC, -1);
			e->act = a;
			break;
		case FM_ACT_PERSIST:
			e = ev_add(s, s->hold_persist ? UINT64_MAX : s->now + 1, EV_PERSIST, -1);
			e->act = a;
			break;
		case FM_ACT_CHANGED:
			e = ev_add(s, s->hold_changed ? UINT64_MAX : s->now + 1, EV_CHANGED, -1);
			e->act = a;
			break;
		case FM_ACT_FENCE: {
			uint64_t level = FM_FENCE_RDMA;
			uint32_t link = (uint32_t)(a.conn >> 16);
			struct sim_client *c;

			i = (int)(a.conn & 0xffff);
			c = &s->c[i];
			if (link < c->proc_link_min) {
				level = FM_FENCE_DEAD; /* that process is gone */
			} else if (a.u.fence.kill && s->kill_works) {
				/* SIGKILL through the pidfd: the process dies */
				if (!c->dead) {
					c->crashed = c->dead = true;
					s->kills++;
					if (s->on_kill)
						s->on_kill(s, i);
				}
				level = FM_FENCE_DEAD;
			}
			if (link == c->link) {
				c->fenced = true;
				if (c->connected) {
					c->connected = false;
					if (!c->crashed)
						fm_client_disconnected(c->cl, s->now);
				}
			}
			e = ev_add(s, s->now + 1, EV_FENCE_DONE, -1);
			e->act = a;
			e->old = level;
			break;
		}
		case FM_ACT_CLOSE:
			/* the owner dropped a connection that never joined; what
			 * it sent before (its BYE) still arrives first */
			i = (int)(a.conn & 0xffff);
			if ((uint32_t)(a.conn >> 16) == s->c[i].link)
				close_after(s, i, last_at[i][1]);
			break;
		case FM_ACT_NOTIFY:
			record(s, -1, &a.u.note);
			if (a.u.note.type == FM_NOTE_REVOKED && s->auto_update) {
				for (int m = 0; m < SIM_MAPS; m++) {
					struct sim_store *st = &s->store[m];

					if (st->d.map_id != a.u.note.map_id)
						continue;
					/* restart: new generation, nothing split */
					st->d.generation++;
					memset(st->bitmap, 0, sizeof(st->bitmap));
					memset(st->changed, 0, sizeof(st->changed));
					st->unknown = false;
					fm_owner_map_update(s->owner, &st->d);
				}
			} else if (a.u.note.type == FM_NOTE_REVOKED) {
				for (int m = 0; m < SIM_MAPS; m++)
					if (s->store[m].d.map_id == a.u.note.map_id)
						s->store[m].revoked = true;
			}
			break;
		default:
			break;
		}
	}
}

static void client_actions(struct sim *s, int i)
{
	struct sim_client *c = &s->c[i];
	struct fm_action a;

	if (c->crashed)
		return; /* frozen: its actions wait until it is thawed */
	for (;;) {
		struct sim_event *e;
		int rc = fm_client_poll(c->cl, &a);

		if (rc < 0) {
			fprintf(stderr, "fake_net: client %d state machine died: %d\n", i, rc);
			abort();
		}
		if (rc == 0)
			break;
		switch (a.type) {
		case FM_ACT_SEND:
			s->sends[((uint16_t)a.u.msg.buf[6] | a.u.msg.buf[7] << 8) %
				 FM_MSG_TYPE_END]++;
			if (!c->connected)
				break;
			{
				uint64_t at = s->now + msg_delay(s, i);

				if (at < last_at[i][0])
					at = last_at[i][0];
				last_at[i][0] = at;
				e = ev_add(s, at, EV_TO_OWNER, i);
				e->act = a;
			}
			if (s->drop_permille && sim_rand(s) % 1000 < s->drop_permille)
				sim_break(s, i);
			break;
		case FM_ACT_READ:
		case FM_ACT_CAS:
			e = ev_add(s, s->now + s->op_exec + c->extra_delay, EV_C_EXEC, i);
			e->act = a;
			break;
		case FM_ACT_CLOSE:
			/* messages sent before the close (a BYE) arrive first */
			close_after(s, i, last_at[i][0]);
			break;
		case FM_ACT_NOTIFY:
			record(s, i, &a.u.note);
			break;
		default:
			break;
		}
	}
}

void sim_drain(struct sim *s)
{
	/* a note handler may call into a state machine: loop until quiet */
	for (int round = 0; round < 4; round++) {
		owner_actions(s);
		for (int i = 0; i < s->nclients; i++)
			client_actions(s, i);
	}
}

/* a frozen client's event waits for the thaw (SIGSTOP keeps the ring) */
static void requeue(struct sim *s, const struct sim_event *e)
{
	struct sim_event *d = ev_add(s, s->now + 5, e->kind, e->client);

	d->link = e->link;
	d->act = e->act;
	d->status = e->status;
	d->old = e->old;
	d->len = e->len;
	memcpy(d->data, e->data, e->len);
}

static void run_event(struct sim *s, struct sim_event *e)
{
	struct sim_client *c = e->client >= 0 ? &s->c[e->client] : NULL;
	struct sim_event *d;

	switch (e->kind) {
	case EV_TO_OWNER:
		if (e->link == c->link && c->connected)
			fm_owner_recv(s->owner, conn_of(e->client, e->link),
				      e->act.u.msg.buf, e->act.u.msg.len, s->now);
		break;
	case EV_TO_CLIENT:
		if (c->crashed && !c->dead && e->link == c->link) {
			requeue(s, e); /* frozen: it reads the ring when thawed */
			break;
		}
		if (e->link == c->link && c->connected && !c->crashed)
			fm_client_recv(c->cl, e->act.u.msg.buf, e->act.u.msg.len, s->now);
		break;
	case EV_C_EXEC: {
		uint64_t late = 0;

		if (s->op_slow_permille && sim_rand(s) % 1000 < s->op_slow_permille)
			late = sim_rand(s) % (s->op_slow_max + 1);
		d = ev_add(s, s->now + s->op_done + c->extra_delay + late, EV_C_DONE,
			   e->client);
		d->act = e->act;
		d->link = e->link;
		if (e->link == c->link && !c->fenced && c->connected)
			mem_exec(s, d);
		else
			d->status = -ECONNRESET;
		break;
	}
	case EV_C_DONE:
		if (c->crashed && !c->dead && e->link == c->link) {
			requeue(s, e);
			break;
		}
		if (e->link == c->link && !c->crashed)
			fm_client_op_done(c->cl, e->act.op_id, e->status, e->old, e->data,
					  e->len, s->now);
		break;
	case EV_O_EXEC:
		d = ev_add(s, s->now + s->op_done, EV_O_DONE, -1);
		d->act = e->act;
		if (e->act.type == FM_ACT_READ && s->read_failures > 0) {
			s->read_failures--;
			d->status = -EIO;
			break;
		}
		mem_exec(s, d);
		break;
	case EV_O_DONE:
		fm_owner_op_done(s->owner, e->act.op_id, e->status, e->old, e->data,
				 e->len, s->now);
		break;
	case EV_PERSIST: {
		int status = -ESTALE;

		for (int m = 0; m < SIM_MAPS; m++) {
			struct sim_store *st = &s->store[m];

			if (st->d.map_id != e->act.u.persist.map_id)
				continue;
			if (st->d.generation == e->act.u.persist.generation) {
				/* durable first; our bitmap is durable == readable */
				for (unsigned r = 0; r < e->act.u.persist.range_count; r++)
					for (uint64_t g = e->act.u.persist.ranges[r].first;
					     g <= e->act.u.persist.ranges[r].last; g++)
						st->bitmap[g / 8] |= (uint8_t)(1u << (g % 8));
				status = 0;
			}
		}
		s->persists_done++;
		fm_owner_op_done(s->owner, e->act.op_id, status, 0, NULL, 0, s->now);
		break;
	}
	case EV_CHANGED: {
		int status = -ESTALE;

		for (int m = 0; m < SIM_MAPS; m++) {
			struct sim_store *st = &s->store[m];

			if (st->d.map_id != e->act.u.persist.map_id ||
			    st->d.generation != e->act.u.persist.generation)
				continue;
			if (!e->act.u.persist.range_count)
				st->unknown = true;
			for (unsigned r = 0; r < e->act.u.persist.range_count; r++)
				for (uint64_t g = e->act.u.persist.ranges[r].first;
				     g <= e->act.u.persist.ranges[r].last; g++)
					st->changed[g / 8] |= (uint8_t)(1u << (g % 8));
			status = 0;
		}
		s->changed_done++;
		fm_owner_op_done(s->owner, e->act.op_id, status, 0, NULL, 0, s->now);
		break;
	}
	case EV_BREAK:
		if (e->link == c->link)
			sim_break(s, e->client);
		break;
	case EV_FENCE_DONE: {
		int status = 0;

		if (s->fence_failures > 0) {
			s->fence_failures--;
			status = -ETIMEDOUT;
		}
		fm_owner_op_done(s->owner, e->act.op_id, status, e->old, NULL, 0, s->now);
		break;
	}
	}
}

/* Pop the earliest due event (by time, then issue order). */
static bool next_due(struct sim *s, uint64_t until, struct sim_event *out)
{
	int best = -1;

	for (int i = 0; i < s->nev; i++) {
		if (s->ev[i].at > until)
			continue;
		if (best < 0 || s->ev[i].at < s->ev[best].at ||
		    (s->ev[i].at == s->ev[best].at && s->ev[i].seq < s->ev[best].seq))
			best = i;
	}
	if (best < 0)
		return false;
	*out = s->ev[best];
	s->ev[best] = s->ev[--s->nev];
	return true;
}

void sim_run(struct sim *s, uint64_t until)
{
	static struct sim_event e;

	sim_drain(s);
	while (s->now < until) {
		uint64_t step = s->now + 5 < until ? s->now + 5 : until;

		while (next_due(s, step, &e)) {
			if (e.at > s->now)
				s->now = e.at;
			run_event(s, &e);
			sim_drain(s);
		}
		s->now = step;
		fm_owner_tick(s->owner, s->now);
		for (int i = 0; i < s->nclients; i++)
			if (!s->c[i].crashed)
				fm_client_tick(s->c[i].cl, s->now);
		sim_drain(s);
	}
}

void sim_release_persists(struct sim *s)
{
	s->hold_persist = false;
	for (int i = 0; i < s->nev; i++)
		if (s->ev[i].kind == EV_PERSIST)
			s->ev[i].at = s->now;
}

void sim_release_changed(struct sim *s)
{
	s->hold_changed = false;
	for (int i = 0; i < s->nev; i++)
		if (s->ev[i].kind == EV_CHANGED)
			s->ev[i].at = s->now;
}

void sim_inject(struct sim *s, int i, const void *buf, size_t len)
{
	fm_owner_recv(s->owner, conn_of(i, s->c[i].link), buf, len, s->now);
	sim_drain(s);
}

void sim_break(struct sim *s, int i)
{
	struct sim_client *c = &s->c[i];

	if (!c->connected)
		return;
	c->connected = false;
	fm_owner_disconnected(s->owner, conn_of(i, c->link), s->now);
	if (!c->crashed)
		fm_client_disconnected(c->cl, s->now);
}

static char keys[SIM_MAX_CLIENTS][16];

static void client_new(struct sim *s, int i)
{
	struct fm_cache_cfg ccfg = { .budget_bytes = 0 };
	struct fm_client_cfg cfg = {
		.client_id = (uint32_t)i + 1,
		.cache = NULL,
		.rand_bytes = rand_cb,
		.rand_ctx = s,
		.handshake_ms = 1000,
	};

	fm_cache_new(&s->c[i].cache, &ccfg);
	cfg.cache = s->c[i].cache;
	cfg.key = keys[i];
	cfg.key_len = strlen(keys[i]);
	fm_client_new(&s->c[i].cl, &cfg);
}

static void owner_new(struct sim *s, uint32_t term_ms)
{
	struct fm_owner_cfg ocfg = {
		.lease_term_ms = term_ms,
		.lease_grace_ms = term_ms / 4,
		.handshake_ms = 1000,
		.incarnation = s->incarnation,
		.rand_bytes = rand_cb,
		.rand_ctx = s,
	};

	fm_owner_new(&s->owner, &ocfg);
	for (int i = 0; i < s->nclients; i++)
		fm_owner_client_add(s->owner, (uint32_t)i + 1, keys[i], strlen(keys[i]));
	for (int m = 0; m < SIM_MAPS; m++) {
		s->store[m].revoked = false;
		fm_owner_map_add(s->owner, &s->store[m].d);
	}
}

void sim_kill(struct sim *s, int i)
{
	struct sim_client *c = &s->c[i];

	c->crashed = c->dead = true;
	c->proc_link_min = c->link + 1; /* a fence of any of its links: DEAD */
	if (c->connected) {
		/* the kernel closes a dead process's socket */
		c->connected = false;
		fm_owner_disconnected(s->owner, conn_of(i, c->link), s->now);
	}
	sim_drain(s);
}

void sim_restart_client(struct sim *s, int i)
{
	struct sim_client *c = &s->c[i];

	if (c->connected) {
		c->connected = false;
		fm_owner_disconnected(s->owner, conn_of(i, c->link), s->now);
	}
	fm_client_delete(&c->cl);
	fm_cache_delete(&c->cache);
	client_new(s, i);
	c->crashed = c->dead = false;
	c->extra_delay = 0;
	c->proc_link_min = c->link + 1;
	sim_drain(s);
}

void sim_restart_owner(struct sim *s, uint32_t grace_ms)
{
	int keep = 0;

	/* the owner's operations and every message in flight die with it */
	for (int k = 0; k < s->nev; k++) {
		enum ev_kind kd = s->ev[k].kind;

		if (kd == EV_C_EXEC || kd == EV_C_DONE)
			s->ev[keep++] = s->ev[k];
	}
	s->nev = keep;
	s->hold_persist = false;
	for (int i = 0; i < s->nclients; i++) {
		struct sim_client *c = &s->c[i];

		if (!c->connected)
			continue;
		c->connected = false;
		if (!c->crashed)
			fm_client_disconnected(c->cl, s->now);
	}
	fm_owner_delete(&s->owner);
	s->incarnation++;
	for (int m = 0; m < SIM_MAPS; m++)
		memset(s->store[m].locks, 0, sizeof(s->store[m].locks));
	owner_new(s, s->term_ms);
	if (grace_ms)
		fm_owner_grace(s->owner, s->now + grace_ms, s->now);
	sim_drain(s);
}

void sim_connect(struct sim *s, int i)
{
	struct sim_client *c = &s->c[i];

	c->link++;
	c->connected = true;
	c->fenced = false;
	last_at[i][0] = last_at[i][1] = 0;
	fm_owner_connected(s->owner, conn_of(i, c->link), s->now);
	fm_client_connect(c->cl, s->now);
	sim_drain(s);
}

void sim_wrong_key(struct sim *s, int i)
{
	struct fm_client_cfg cfg = {
		.client_id = (uint32_t)i + 1,
		.key = "not-the-key",
		.key_len = 11,
		.cache = s->c[i].cache,
		.rand_bytes = rand_cb,
		.rand_ctx = s,
	};

	fm_client_delete(&s->c[i].cl);
	fm_client_new(&s->c[i].cl, &cfg);
}

void sim_init(struct sim *s, uint64_t seed, int nclients, uint32_t term_ms)
{
	memset(s, 0, sizeof(*s));
	s->rng = seed * 0x9e3779b97f4a7c15ull + 1;
	s->ev = calloc(SIM_MAX_EVENTS, sizeof(*s->ev));
	s->delay_min = 1;
	s->delay_max = 1;
	s->op_exec = 1;
	s->op_done = 1;
	s->auto_update = true;
	s->kill_works = true;
	s->incarnation = 1;
	s->term_ms = term_ms;
	s->now = 1000;
	for (int m = 0; m < SIM_MAPS; m++) {
		struct fm_wire_mapdesc *d = &s->store[m].d;

		d->map_id = 100 + (uint64_t)m;
		d->generation = 1;
		d->grain_count = SIM_GRAINS;
		d->grain_shift = 16;
		d->state = FM_MAP_COPYING;
		d->lock_shift = 0;
		d->bitmap = (struct fm_region_desc){ .addr = 0, .len = SIM_GRAINS / 8,
						     .key = (uint32_t)m * 2,
						     .flags = FM_ACCESS_REMOTE_READ };
		d->locks = (struct fm_region_desc){ .addr = 0, .len = 8 * SIM_GRAINS,
						    .key = (uint32_t)m * 2 + 1,
						    .flags = FM_ACCESS_REMOTE_ATOMIC };
	}
	s->nclients = nclients;
	for (int i = 0; i < nclients; i++) {
		snprintf(keys[i], sizeof(keys[i]), "key-%d", i + 1);
		client_new(s, i);
	}
	owner_new(s, term_ms);
	memset(last_at, 0, sizeof(last_at));
}

void sim_fini(struct sim *s)
{
	for (int i = 0; i < s->nclients; i++) {
		fm_client_delete(&s->c[i].cl);
		fm_cache_delete(&s->c[i].cache);
	}
	fm_owner_delete(&s->owner);
	free(s->ev);
}

bool sim_bit(const struct sim *s, int map, uint64_t grain)
{
	return (s->store[map].bitmap[grain / 8] >> (grain % 8)) & 1;
}

int sim_count(const struct sim *s, int client, enum fm_notify_type type, int from)
{
	int n = 0;

	for (int i = from; i < s->nnotes; i++)
		if (s->notes[i].client == client && s->notes[i].n.type == type)
			n++;
	return n;
}

const struct sim_note *sim_find(const struct sim *s, int client,
				enum fm_notify_type type, int from)
{
	for (int i = from; i < s->nnotes; i++)
		if (s->notes[i].client == client && s->notes[i].n.type == type)
			return &s->notes[i];
	return NULL;
}
