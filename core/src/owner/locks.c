/* locks.c -- contended grain locks: the owner's FIFO of waiters per lock
 * word, and every change it makes to a word (lockword.h for the protocol).
 *
 * Design.  Uncontended locking never reaches the owner (client CAS).  A
 * LOCK_REQUEST creates a `struct olock` for that word: a FIFO of waiters
 * plus what the owner last saw in the word (`cur`).  olock_step() issues
 * at most one CAS per word at a time:
 *   cur free            -> CAS 0 -> head (GRANT)
 *   cur held, no WAIT   -> CAS cur -> cur|WAITERS (ARM)
 *   cur held, WAIT      -> wait for UNLOCK (or reclaim)
 *   cur dead (UNLOCK or reclaimed) -> CAS cur -> head or 0
 * A failed CAS teaches the real value and the step repeats.  An olock
 * with no waiters and nothing to release is freed.  Only waiters of
 * ACTIVE sessions are served; each session may queue at most
 * cfg.max_waits requests (memory is bounded per peer).  The owner changes
 * words only through CAS actions on its loopback (RDMA atomics are atomic
 * only among themselves).  A waiter keeps when its LOCK_REQUEST arrived
 * (FIFO: the first active one has waited longest) for fm_owner_lock_info.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>

#include "flashmeta/error.h"
#include "flashmeta/lockword.h"
#include "owner_priv.h"

static void olock_step(struct fm_owner *o, struct olock *l);

static struct olock *olock_find(struct fm_owner *o, unsigned slot, uint64_t index)
{
	for (struct olock *l = o->locks; l; l = l->next)
		if (l->slot == slot && l->index == index)
			return l;
	return NULL;
}

static struct olock *olock_get(struct fm_owner *o, unsigned slot, uint64_t index,
			       uint64_t seen)
{
	struct olock *l = olock_find(o, slot, index);

	if (l)
		return l;
	l = calloc(1, sizeof(*l));
	if (!l) {
		ow_owner_oom(o);
		return NULL;
	}
	l->slot = slot;
	l->index = index;
	l->cur = seen;
	l->next = o->locks;
	o->locks = l;
	return l;
}

static void waiter_free(struct fm_owner *o, struct owaiter *w)
{
	struct osess *s = ow_sess_by_id(o, w->session_id);

	if (s && s->nwaits)
		s->nwaits--;
	free(w);
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
		waiter_free(o, w);
	}
	free(l);
}

/* Drop waiters whose session is no longer active. */
static void olock_prune(struct fm_owner *o, struct olock *l)
{
	struct owaiter **pp = &l->head;

	l->tail = NULL;
	while (*pp) {
		struct osess *s = ow_sess_by_id(o, (*pp)->session_id);

		if (!s || s->state != FM_OSESS_ACTIVE) {
			struct owaiter *w = *pp;

			*pp = w->next;
			waiter_free(o, w);
			l->nwait--;
			continue;
		}
		l->tail = *pp;
		pp = &(*pp)->next;
	}
}

static void olock_cas(struct fm_owner *o, struct olock *l, enum olock_kind kind,
		      uint64_t expect, uint64_t swap)
{
	struct omap *mp = &o->maps[l->slot];
	struct fm_action *a;
	struct oop *op = ow_op_new(o, OP_LOCK_CAS);

	if (!op)
		return;
	op->lock = l;
	l->busy = true;
	l->kind = kind;
	l->expect = expect;
	l->swap = swap;
	mp->lock_ops++;
	a = ow_local_op(o, op, FM_ACT_CAS, &mp->d.locks, l->index * 8);
	a->u.io.compare = expect;
	a->u.io.swap = swap;
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
	if (o->in_grace)
		return; /* R6: nobody gets a lock before the grace is over */
	if (l->cur == FM_LOCKWORD_FREE)
		olock_cas(o, l, OL_GRANT, FM_LOCKWORD_FREE, head_word(l));
	else if (!(fm_lockword_flags(l->cur) & FM_LOCKWORD_F_WAITERS))
		olock_cas(o, l, OL_ARM, l->cur, l->cur | FM_LOCKWORD_F_WAITERS);
	/* else armed: the holder will send UNLOCK (or be reclaimed) */
}

void ow_locks_step_all(struct fm_owner *o)
{
	for (struct olock *l = o->locks, *n; l; l = n) {
		n = l->next;
		olock_step(o, l);
	}
}

void ow_locks_cas_done(struct fm_owner *o, struct olock *l, int status, uint64_t old)
{
	struct omap *mp = &o->maps[l->slot];

	l->busy = false;
	mp->lock_ops--;
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
		struct osess *s = ow_sess_by_id(o, w->session_id);

		l->head = w->next;
		if (!l->head)
			l->tail = NULL;
		l->nwait--;
		l->dead = false;
		if (s && s->state == FM_OSESS_ACTIVE) {
			struct fm_msg m;

			fm_wire_msg_init(&m, FM_MSG_LOCK_GRANT);
			m.u.lock.map_id = mp->d.map_id;
			m.u.lock.generation = w->generation;
			m.u.lock.first = w->first;
			m.u.lock.last = w->last;
			m.u.lock.word = l->swap;
			ow_send_msg(o, s, &m);
			o->st.lock_grants++;
		} else {
			/* the grantee closed while the CAS flew: no
			 * LOCK_GRANT went out, so it cannot be using the
			 * word -- release it at once */
			l->dead = true;
		}
		waiter_free(o, w);
	}
	olock_step(o, l);
}

/* A released session's word, found by the reclaim scan. */
void ow_locks_reclaim(struct fm_owner *o, unsigned slot, uint64_t index, uint64_t word)
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
static bool lock_range_ok(const struct omap *mp, uint64_t first, uint64_t last)
{
	unsigned sh = mp->d.lock_shift;

	return last < mp->d.grain_count && first <= last && (first >> sh) == (last >> sh);
}

void ow_locks_on_request(struct fm_owner *o, struct osess *s, const struct fm_msg *m,
			 uint64_t now)
{
	int slot = ow_map_slot(o, m->u.lock.map_id);
	struct owaiter *w;
	struct olock *l;
	uint64_t seen;

	o->st.lock_requests++;
	if (slot < 0) {
		ow_send_error(o, s, m->seq, -ENOENT);
		return;
	}
	if (!lock_range_ok(&o->maps[slot], m->u.lock.first, m->u.lock.last)) {
		ow_send_error(o, s, m->seq, -ERANGE);
		return;
	}
	if (o->in_grace || s->nwaits >= o->cfg.max_waits) {
		/* grace: no client has the table, so this is not ours to
		 * serve yet; over the limit: a peer may not make us queue
		 * without bound */
		o->st.lock_requests_refused++;
		ow_send_error(o, s, m->seq, o->in_grace ? -EAGAIN : -ENOBUFS);
		return;
	}
	/* The requester's word only seeds our view; its WAITERS bit is
	 * believed only from our own CAS results.  A client may send a word
	 * it saw while an earlier holder was armed: trusting that bit, we
	 * would wait for an UNLOCK that the real holder -- holding a plain
	 * word, released by CAS without a message -- never sends.  Without
	 * it, the ARM CAS finds the real word (and corrects `cur`). */
	seen = m->u.lock.word & ~(uint64_t)FM_LOCKWORD_F_WAITERS;
	l = olock_get(o, (unsigned)slot,
		      fm_lockword_index(m->u.lock.first, o->maps[slot].d.lock_shift), seen);
	w = l ? calloc(1, sizeof(*w)) : NULL;
	if (!w) {
		ow_owner_oom(o);
		return;
	}
	w->session_id = s->session_id;
	w->word = fm_lockword_make((uint16_t)s->client_id, s->epoch, FM_LOCKWORD_F_HELD);
	w->first = m->u.lock.first;
	w->last = m->u.lock.last;
	w->generation = m->u.lock.generation;
	w->req_seq = m->seq;
	w->since = now;
	if (l->tail)
		l->tail->next = w;
	else
		l->head = w;
	l->tail = w;
	l->nwait++;
	s->nwaits++;
	/* The requester saw a newer value than we knew only if we had no
	 * CAS in flight; a stale `cur` is corrected by the next CAS. */
	if (!l->busy && !l->dead && l->cur == FM_LOCKWORD_FREE)
		l->cur = seen;
	olock_step(o, l);
}

void ow_locks_on_unlock(struct fm_owner *o, struct osess *s, const struct fm_msg *m)
{
	int slot = ow_map_slot(o, m->u.lock.map_id);
	uint64_t mine = fm_lockword_make((uint16_t)s->client_id, s->epoch, 0);
	struct olock *l;

	if (slot < 0 || !lock_range_ok(&o->maps[slot], m->u.lock.first, m->u.lock.last) ||
	    !fm_lockword_same_holder(m->u.lock.word, mine)) {
		ow_send_error(o, s, m->seq, slot < 0 ? -ENOENT : -ERANGE);
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

/* map_remove: queued requests on the slot are refused, olocks dropped. */
void ow_locks_drop_slot(struct fm_owner *o, unsigned slot)
{
	for (struct olock *l = o->locks, *n; l; l = n) {
		n = l->next;
		if (l->slot != slot)
			continue;
		for (struct owaiter *w = l->head; w; w = w->next) {
			struct osess *s = ow_sess_by_id(o, w->session_id);

			if (s && s->state == FM_OSESS_ACTIVE)
				ow_send_error(o, s, w->req_seq, -ENOENT);
		}
		olock_free(o, l);
	}
}

int fm_owner_lock_info(const struct fm_owner *o, uint64_t map_id, uint64_t index, uint64_t now,
		       struct fm_owner_lock_info *out)
{
	int slot = ow_map_slot(o, map_id);
	const struct omap *mp;

	*out = (struct fm_owner_lock_info){ 0 };
	if (slot < 0)
		return fm_err(-ENOENT, "owner: map %" PRIu64 " not served", map_id);
	mp = &o->maps[slot];
	if (!mp->d.grain_count || index > (mp->d.grain_count - 1) >> mp->d.lock_shift)
		return fm_err(-ERANGE, "owner: map %" PRIu64 " has no lock word %" PRIu64,
			      map_id, index);
	for (const struct olock *l = o->locks; l; l = l->next) {
		if (l->slot != (unsigned)slot || l->index != index)
			continue;
		/* as olock_prune counts them: only active sessions are served */
		for (const struct owaiter *w = l->head; w; w = w->next) {
			const struct osess *s = o->sessions;

			while (s && s->session_id != w->session_id)
				s = s->next;
			if (!s || s->state != FM_OSESS_ACTIVE)
				continue;
			if (!out->waiters++) {
				out->oldest_client = s->client_id;
				out->oldest_wait_ms = now > w->since ? now - w->since : 0;
			}
		}
		break;
	}
	return 0;
}

void ow_locks_free_all(struct fm_owner *o)
{
	while (o->locks)
		olock_free(o, o->locks);
}
