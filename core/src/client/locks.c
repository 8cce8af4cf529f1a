/* locks.c -- the client's grain locks (lockword.h for the protocol).
 *
 * struct clock per word this client is taking or holds:
 *   CAS 0 -> mine          (CL_CAS)
 *      saw other -> LOCK_REQUEST, wait for LOCK_GRANT (CL_WAIT)
 *   re-read the bitmap word under the lock (CL_CHECK)
 *   held (CL_HELD) -> commit: SPLIT_COMMIT (CL_COMMIT)
 *   release: CAS mine -> 0, or UNLOCK when WAITERS is set (CL_RELEASE)
 * A mapping served without a lock table (the owner's restart grace,
 * lease.h R6) cannot be locked yet: fm_client_lock says -EAGAIN.
 */
#include <errno.h>
#include <stdlib.h>

#include "client_priv.h"
#include "flashmeta/error.h"
#include "flashmeta/lockword.h"

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
	for (uint32_t i = 0; i < c->ops.cap; i++) {
		struct cop *op = fm_optab_at(&c->ops, i);

		if (op && op->lk == lk)
			op->lk = NULL;
	}
	free(lk);
}

void cl_locks_free_all(struct fm_client *c)
{
	while (c->locks)
		lock_free(c, c->locks);
	while (c->commits)
		free(cl_pend_entry(cl_pend_pop(&c->commits), struct ccommit));
}

static uint64_t map_id_of(struct fm_client *c, unsigned slot)
{
	return atomic_load(&c->maps[slot].id);
}

/* The session ended: every pending fetch, lock and commit fails with
 * -ECONNRESET; a held lock is reported lost (the owner reclaims it). */
void cl_locks_fail_all(struct fm_client *c)
{
	struct cpend *p;

	for (uint32_t i = 0; i < c->ops.cap; i++) {
		struct cop *op = fm_optab_at(&c->ops, i);

		if (!op)
			continue;
		if (op->kind == CO_FETCH)
			cl_note(c, FM_NOTE_FETCHED, -ECONNRESET, op->cookie,
				map_id_of(c, op->slot), op->grain, false);
		free(cl_op_take(c, op->id));
	}
	while (c->locks) {
		struct clock *lk = c->locks;
		uint64_t map_id = map_id_of(c, lk->slot);

		c->locks = lk->next;
		if (lk->state == CL_CAS || lk->state == CL_WAIT || lk->state == CL_CHECK)
			cl_note(c, FM_NOTE_LOCKED, -ECONNRESET, lk->cookie, map_id, lk->grain,
				false);
		else if (lk->state == CL_COMMIT)
			cl_note(c, FM_NOTE_COMMITTED, -ECONNRESET, lk->cookie, map_id,
				lk->commit_grain, false);
		else if (lk->state == CL_HELD)
			cl_note(c, FM_NOTE_LOCK_LOST, -ECONNRESET, 0, map_id, lk->grain, false);
		free(lk);
	}
	while ((p = cl_pend_pop(&c->commits))) {
		struct ccommit *k = cl_pend_entry(p, struct ccommit);

		cl_note(c, FM_NOTE_COMMITTED, -ECONNRESET, k->cookie, map_id_of(c, k->slot),
			k->first, false);
		free(k);
	}
}

static void lock_check(struct fm_client *c, struct clock *lk)
{
	struct cmap *mp = &c->maps[lk->slot];
	struct cop *op = cl_op_new(c, CO_CHECK, lk->slot);

	if (!op)
		return;
	op->lk = lk;
	op->grain = lk->grain;
	op->epoch_ok = fm_cache_map_epoch(c->cfg.cache, mp->d.map_id, &op->epoch) == 0;
	lk->state = CL_CHECK;
	cl_io_action(c, op, FM_ACT_READ, &mp->d.bitmap, (lk->grain / 64) * 8, 8, 0, 0);
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
		fm_wire_msg_init(&m, FM_MSG_UNLOCK);
		m.u.lock.map_id = mp->d.map_id;
		m.u.lock.generation = mp->d.generation;
		m.u.lock.first = first;
		m.u.lock.last = last;
		m.u.lock.word = lk->cur;
		cl_send_msg(c, &m);
		lock_free(c, lk);
		return;
	}
	op = cl_op_new(c, CO_UNLOCK_CAS, lk->slot);
	if (!op)
		return;
	op->lk = lk;
	lk->state = CL_RELEASE;
	cl_io_action(c, op, FM_ACT_CAS, &mp->d.locks, lk->index * 8, 8, lk->cur,
		     FM_LOCKWORD_FREE);
}

static void lock_request(struct fm_client *c, struct clock *lk, uint64_t seen)
{
	struct cmap *mp = &c->maps[lk->slot];
	uint64_t last = ((lk->index + 1) << mp->d.lock_shift) - 1;
	struct fm_msg m;

	if (last >= mp->d.grain_count)
		last = mp->d.grain_count - 1;
	fm_wire_msg_init(&m, FM_MSG_LOCK_REQUEST);
	m.u.lock.map_id = mp->d.map_id;
	m.u.lock.generation = mp->d.generation;
	m.u.lock.first = lk->index << mp->d.lock_shift;
	m.u.lock.last = last;
	m.u.lock.word = seen;
	lk->state = CL_WAIT;
	if (cl_send_msg(c, &m) == 0)
		lk->req_seq = c->tx_seq;
}

void cl_locks_on_grant(struct fm_client *c, const struct fm_msg *m)
{
	int slot = cl_slot_of(c, m->u.lock.map_id);
	struct clock *lk;

	if (slot < 0)
		return;
	lk = lock_find(c, (unsigned)slot,
		       fm_lockword_index(m->u.lock.first, c->maps[slot].d.lock_shift));
	if (!lk || lk->state != CL_WAIT || !fm_lockword_same_holder(lk->mine, m->u.lock.word))
		return; /* not waiting for it: the owner reclaims it with us */
	if (lk->handover) {
		/* the engine's now: it re-reads the bitmap under it */
		cl_note(c, FM_NOTE_LOCKED, 0, lk->cookie, m->u.lock.map_id, lk->grain,
			false)->word = m->u.lock.word;
		lock_free(c, lk);
		return;
	}
	lk->cur = m->u.lock.word;
	lock_check(c, lk);
}

static int ack_status(const struct fm_msg *m)
{
	return m->u.ack.status == FM_SPLIT_OK ? 0 :
	       m->u.ack.status == FM_SPLIT_STALE ? -ESTALE : -EIO;
}

/* the range commit a SPLIT_ACK answers: its commit_id */
static bool ack_for(const struct cpend *p, const void *arg)
{
	return cl_pend_entry(p, const struct ccommit)->commit_id == *(const uint64_t *)arg;
}

/* An engine's range commit answered: cache it if durable, tell the engine. */
static bool range_ack(struct fm_client *c, const struct fm_msg *m)
{
	struct cpend *p = cl_pend_take(&c->commits, ack_for, &m->u.ack.commit_id);
	struct ccommit *k;
	int status;

	if (!p)
		return false;
	k = cl_pend_entry(p, struct ccommit);
	status = ack_status(m);
	/* durable at the owner: only now may the cache say "split" */
	if (status == 0 && k->epoch_ok)
		fm_cache_insert(c->cfg.cache, m->u.ack.map_id, k->epoch, k->first, k->last);
	cl_note(c, FM_NOTE_COMMITTED, status, k->cookie, m->u.ack.map_id, k->first,
		status == 0);
	free(k);
	return true;
}

void cl_locks_on_split_ack(struct fm_client *c, const struct fm_msg *m)
{
	struct clock *lk;
	int status;

	if (range_ack(c, m))
		return;
	for (lk = c->locks; lk; lk = lk->next)
		if (lk->state == CL_COMMIT && lk->commit_id == m->u.ack.commit_id)
			break;
	if (!lk)
		return;
	status = ack_status(m);
	/* durable at the owner: only now may the cache say "split" */
	if (status == 0 && lk->epoch_ok)
		fm_cache_insert(c->cfg.cache, m->u.ack.map_id, lk->epoch,
				lk->commit_grain, lk->commit_grain);
	cl_note(c, FM_NOTE_COMMITTED, status, lk->cookie, m->u.ack.map_id,
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
void cl_locks_on_error(struct fm_client *c, const struct fm_msg *m)
{
	int status = cl_error_status(m);
	struct cpend *p = cl_pend_take_seq(&c->commits, m->u.error.ref_seq);
	struct clock *lk;

	if (p) {
		struct ccommit *k = cl_pend_entry(p, struct ccommit);

		cl_note(c, FM_NOTE_COMMITTED, status, k->cookie, map_id_of(c, k->slot),
			k->first, false);
		free(k);
		return;
	}
	for (lk = c->locks; lk; lk = lk->next)
		if ((lk->state == CL_WAIT || lk->state == CL_COMMIT) &&
		    lk->req_seq == m->u.error.ref_seq)
			break;
	if (!lk)
		return;
	if (lk->state == CL_WAIT) {
		cl_note(c, FM_NOTE_LOCKED, status, lk->cookie, map_id_of(c, lk->slot),
			lk->grain, false);
		lock_free(c, lk);
		return;
	}
	cl_note(c, FM_NOTE_COMMITTED, status, lk->cookie, map_id_of(c, lk->slot),
		lk->commit_grain, false);
	lk->state = CL_HELD;
	lock_release(c, lk);
}

void cl_locks_check_done(struct fm_client *c, struct cop *op, int status,
			 const uint8_t *data, size_t len)
{
	struct clock *lk = op->lk;
	uint64_t map_id = map_id_of(c, op->slot);
	bool split;

	if (!lk)
		return;
	if (status < 0 || len < 8) {
		cl_note(c, FM_NOTE_LOCKED, status < 0 ? status : -EIO, lk->cookie, map_id,
			lk->grain, false);
		lock_release(c, lk);
		return;
	}
	split = bit_at(data, lk->grain % 64);
	if (split && op->epoch_ok)
		fm_cache_insert(c->cfg.cache, map_id, op->epoch, lk->grain, lk->grain);
	lk->state = CL_HELD;
	cl_note(c, FM_NOTE_LOCKED, 0, lk->cookie, map_id, lk->grain, split);
}

void cl_locks_cas_done(struct fm_client *c, struct cop *op, int status, uint64_t old)
{
	struct clock *lk = op->lk;

	if (!lk)
		return;
	if (status < 0) {
		cl_note(c, FM_NOTE_LOCKED, status, lk->cookie, map_id_of(c, op->slot),
			lk->grain, false);
		lock_free(c, lk);
	} else if (old == FM_LOCKWORD_FREE) {
		lk->cur = lk->mine;
		lock_check(c, lk);
	} else if (fm_lockword_same_holder(old, lk->mine)) {
		cl_note(c, FM_NOTE_LOCKED, -EDEADLK, lk->cookie, map_id_of(c, op->slot),
			lk->grain, false);
		lock_free(c, lk);
	} else {
		lock_request(c, lk, old);
	}
}

void cl_locks_unlock_done(struct fm_client *c, struct cop *op, int status, uint64_t old)
{
	struct clock *lk = op->lk;

	if (!lk)
		return;
	if (status < 0) {
		lock_free(c, lk);
		return;
	}
	switch (fm_lockword_release_result(lk->cur, old)) {
	case FM_LOCKWORD_RELEASED:
		lock_free(c, lk);
		break;
	case FM_LOCKWORD_NOTIFY:
		lk->cur = old;
		lock_release(c, lk); /* sends UNLOCK, frees */
		break;
	case FM_LOCKWORD_LOST:
		cl_note(c, FM_NOTE_LOCK_LOST, -ENOLCK, 0, map_id_of(c, op->slot), lk->grain,
			false);
		lock_free(c, lk);
		break;
	}
}

/* ---- engine calls (protocol thread) ---- */

int fm_client_lock(struct fm_client *c, uint64_t map_id, uint64_t grain,
		   uint64_t cookie, uint64_t now)
{
	int slot = cl_usable_slot(c, map_id, grain, false);
	struct cmap *mp;
	struct clock *lk;
	struct cop *op;
	uint64_t index;

	(void)now; /* the uniform time argument: nothing here is timed */
	if (slot < 0)
		return slot;
	mp = &c->maps[slot];
	if (!mp->d.locks.len)
		return fm_err(-EAGAIN, "client: map %llu has no lock table yet (the owner's "
			      "restart grace)", (unsigned long long)map_id);
	index = fm_lockword_index(grain, mp->d.lock_shift);
	if (lock_find(c, (unsigned)slot, index))
		return fm_err(-EBUSY, "client: lock word %llu already taken here",
			      (unsigned long long)index);
	lk = calloc(1, sizeof(*lk));
	if (!lk) {
		cl_oom(c);
		return -ENOMEM;
	}
	op = cl_op_new(c, CO_LOCK_CAS, (unsigned)slot);
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
	cl_io_action(c, op, FM_ACT_CAS, &mp->d.locks, index * 8, 8, FM_LOCKWORD_FREE, lk->mine);
	return 0;
}

int fm_client_commit(struct fm_client *c, uint64_t map_id, uint64_t grain,
		     uint64_t cookie, uint64_t now)
{
	int slot = cl_usable_slot(c, map_id, grain, false);
	struct fm_msg m;
	struct cmap *mp;
	struct clock *lk;
	int rc;

	(void)now; /* the uniform time argument: nothing here is timed */
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
	fm_wire_msg_init(&m, FM_MSG_SPLIT_COMMIT);
	m.u.commit.map_id = map_id;
	m.u.commit.generation = mp->d.generation;
	m.u.commit.commit_id = lk->commit_id;
	m.u.commit.range_count = 1;
	m.u.commit.ranges[0].first = grain;
	m.u.commit.ranges[0].last = grain;
	rc = cl_send_msg(c, &m);
	if (rc == 0)
		lk->req_seq = c->tx_seq;
	else
		lk->state = CL_HELD; /* not sent: still held, caller may retry */
	return rc;
}

int fm_client_unlock(struct fm_client *c, uint64_t map_id, uint64_t grain,
		     uint64_t now)
{
	int slot = c ? cl_slot_of(c, map_id) : -1;
	struct clock *lk;

	(void)now; /* the uniform time argument: nothing here is timed */
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

/* ---- the engine's own data path: what still needs the protocol thread ---- */

uint64_t fm_client_lockword(const struct fm_client *c)
{
	uint64_t tok = fm_client_token(c);

	return tok ? fm_lockword_make((uint16_t)c->cfg.client_id, (uint32_t)tok,
				      FM_LOCKWORD_F_HELD) : 0;
}

/* the slot of a map whose lock table we have, with grain inside */
static int locked_slot(struct fm_client *c, uint64_t map_id, uint64_t grain)
{
	int slot = cl_usable_slot(c, map_id, grain, false);

	if (slot >= 0 && !c->maps[slot].d.locks.len)
		return fm_err(-EAGAIN, "client: map %llu has no lock table yet (the owner's "
			      "restart grace)", (unsigned long long)map_id);
	return slot;
}

int fm_client_lock_wait(struct fm_client *c, uint64_t map_id, uint64_t grain, uint64_t seen,
			uint64_t cookie, uint64_t now)
{
	int slot = locked_slot(c, map_id, grain);
	struct clock *lk;
	uint64_t index;

	(void)now; /* the uniform time argument: nothing here is timed */
	if (slot < 0)
		return slot;
	index = fm_lockword_index(grain, c->maps[slot].d.lock_shift);
	if (lock_find(c, (unsigned)slot, index))
		return fm_err(-EBUSY, "client: lock word %llu already awaited here",
			      (unsigned long long)index);
	lk = calloc(1, sizeof(*lk));
	if (!lk) {
		cl_oom(c);
		return -ENOMEM;
	}
	lk->slot = (unsigned)slot;
	lk->index = index;
	lk->grain = grain;
	lk->cookie = cookie;
	lk->mine = fm_lockword_make((uint16_t)c->cfg.client_id, c->epoch, FM_LOCKWORD_F_HELD);
	lk->handover = true;
	lk->next = c->locks;
	c->locks = lk;
	lock_request(c, lk, seen);
	return 0;
}

int fm_client_commit_range(struct fm_client *c, uint64_t map_id, uint64_t first,
			   uint64_t last, uint64_t cookie, uint64_t now)
{
	int slot = locked_slot(c, map_id, last);
	struct ccommit *k;
	struct fm_msg m;
	int rc;

	(void)now; /* the uniform time argument: nothing here is timed */
	if (slot < 0)
		return slot;
	if (first > last)
		return fm_err(-ERANGE, "client: commit range [%llu, %llu] inverted",
			      (unsigned long long)first, (unsigned long long)last);
	k = calloc(1, sizeof(*k));
	if (!k) {
		cl_oom(c);
		return -ENOMEM;
	}
	k->slot = (unsigned)slot;
	k->first = first;
	k->last = last;
	k->cookie = cookie;
	k->commit_id = ++c->next_commit;
	k->epoch_ok = fm_cache_map_epoch(c->cfg.cache, map_id, &k->epoch) == 0;
	fm_wire_msg_init(&m, FM_MSG_SPLIT_COMMIT);
	m.u.commit.map_id = map_id;
	m.u.commit.generation = c->maps[slot].d.generation;
	m.u.commit.commit_id = k->commit_id;
	m.u.commit.range_count = 1;
	m.u.commit.ranges[0].first = first;
	m.u.commit.ranges[0].last = last;
	rc = cl_send_msg(c, &m);
	if (rc) {
		free(k);
		return rc;
	}
	cl_pend_push(&c->commits, &k->pend, c->tx_seq);
	return 0;
}

int fm_client_unlock_notify(struct fm_client *c, uint64_t map_id, uint64_t grain,
			    uint64_t word, uint64_t now)
{
	int slot = locked_slot(c, map_id, grain);
	struct cmap *mp;
	struct fm_msg m;
	uint64_t index, last;

	(void)now; /* the uniform time argument: nothing here is timed */
	if (slot < 0)
		return slot;
	mp = &c->maps[slot];
	index = fm_lockword_index(grain, mp->d.lock_shift);
	last = ((index + 1) << mp->d.lock_shift) - 1;
	if (last >= mp->d.grain_count)
		last = mp->d.grain_count - 1;
	fm_wire_msg_init(&m, FM_MSG_UNLOCK);
	m.u.lock.map_id = map_id;
	m.u.lock.generation = mp->d.generation;
	m.u.lock.first = index << mp->d.lock_shift;
	m.u.lock.last = last;
	m.u.lock.word = word;
	return cl_send_msg(c, &m);
}
