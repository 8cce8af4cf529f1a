/* copy.c -- background copy: who copies which unsplit grains (copy.h).
 *
 * Design.  Per served map (struct ocopy), a partition of the grains of the
 * current generation into four sets, kept by this invariant:
 *
 *   every grain g is  (a) below `cursor` and seen split in the published
 *                         bitmap when the cursor passed it, or
 *                     (b) in exactly one batch out (`out`: one per
 *                         session, the session copies it), or
 *                     (c) in exactly one returned range (`ret`), or
 *                     (d) at or above `cursor`
 *   and the sets (b), (c), (d) are disjoint.
 *
 *     0                      cursor                          grain_count
 *     |ssss[b1 ]ss[ret ]s[b2  ]|...... never looked at ......|
 *
 * A COPY_CLAIM first ends the claimant's batch of the map: the part it
 * says it did not copy (done_next .. last), or all of it when it names
 * another batch, joins `ret`.  Then the claim waits in a FIFO; the head
 * is served by one READ of the published bitmap at a time (a local READ,
 * FM_CONN_LOCAL: only what is durable is published) over a window of
 * ret[0] or else of [cursor, ...]: the first run of unsplit grains there,
 * at most the batch size, becomes the claimant's batch and leaves its
 * set; split grains before it go to (a) (a set bit never clears within a
 * generation).  Nothing unsplit left in (c) and (d): DONE when no batch
 * is out, else WAIT (a copier may yet give grains back).
 *
 * Why this is enough for "no grain copied twice": a grain is handed out
 * only while unsplit in the durable bitmap, to one copier at a time;
 * after an owner restart (bookkeeping lost) the bitmap still says what
 * was committed.  A grain is copied again only if its copy landed and its
 * SPLIT_COMMIT did not (the copier or the owner died between the two).
 * Correctness does not rest on it: copies run under the grain locks, and
 * a grain found split under its lock is skipped (eio.c), so a batch handed
 * out twice, or a session's batch returned while its copier still runs,
 * costs a look, never a wrong target.  That is why a closing session's
 * batches return to the pool at once (ow_copy_sess_closed) instead of
 * waiting for its release (R4): its locks, not its batch, protect them.
 *
 * Pace: batches are sized to about FM_COPY_BATCH_MS at the rate
 * (fm_copy_batch_grains) and handed out so that all copiers of the map
 * together stay within the rate (`pace`: when what was handed out is paid
 * for), ahead of it by COPY_AHEAD_MS at most -- enough to cover a claim's
 * round trip, so a lone copier never waits; each copier paces itself
 * within its batch (engine.h).
 *
 * A generation change, or a state other than COPYING, resets the map's
 * bookkeeping (ow_copy_map_updated); claims of a withheld or revoking map,
 * of another generation or in another state are answered STALE; during
 * the restart grace (R6) WAIT, since nobody can lock or commit.
 * Cost: O(batches out + returned ranges) per claim; one READ of at most
 * COPY_WINDOW_BYTES per window looked at, windows never looked at twice
 * in a generation except returned ranges.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "flashmeta/copy.h"
#include "flashmeta/error.h"
#include "flashmeta/mapping.h"
#include "owner_priv.h"

#define COPY_WINDOW_BYTES 4096u                  /* bitmap bytes per READ */
#define COPY_AHEAD_MS (FM_COPY_BATCH_MS / 4)     /* hand-out ahead of the pace */
#define COPY_WINDOW_GRAINS (COPY_WINDOW_BYTES * 8) /* grains per READ */

static void send_batch(struct fm_owner *o, struct osess *s, const struct omap *mp,
		       uint64_t claim_id, uint32_t status, uint32_t wait_ms,
		       const struct obatch *b)
{
	struct fm_msg m;

	fm_wire_msg_init(&m, FM_MSG_COPY_BATCH);
	m.u.batch.map_id = mp->d.map_id;
	m.u.batch.generation = mp->d.generation;
	m.u.batch.claim_id = claim_id;
	m.u.batch.status = status;
	m.u.batch.wait_ms = status == FM_COPY_WAIT ? wait_ms : 0;
	m.u.batch.rate = (uint16_t)mp->copy.rate;
	if (status == FM_COPY_OK) {
		m.u.batch.batch_id = b->id;
		m.u.batch.first = b->first;
		m.u.batch.last = b->last;
	}
	ow_send_msg(o, s, &m);
}

/* answer the head claim (not OK) and drop it */
static void claim_answer(struct fm_owner *o, struct omap *mp, uint32_t status, uint32_t wait_ms)
{
	struct ocopy *cp = &mp->copy;
	struct oclaim *cl = cp->head;
	struct osess *s = ow_sess_by_id(o, cl->session_id);

	if (s && s->state == FM_OSESS_ACTIVE)
		send_batch(o, s, mp, cl->claim_id, status, wait_ms, NULL);
	cp->head = cl->next;
	if (!cp->head)
		cp->tail = NULL;
	free(cl);
}

/* grains [first, last] join the pool; false: no memory (latched) */
static bool pool_add(struct fm_owner *o, struct ocopy *cp, uint64_t first, uint64_t last)
{
	if (cp->nret == cp->capret) {
		size_t nc = cp->capret ? cp->capret * 2 : 8;
		struct fm_grain_range *n = realloc(cp->ret, nc * sizeof(*n));

		if (!n) {
			ow_owner_oom(o);
			return false;
		}
		cp->ret = n;
		cp->capret = nc;
	}
	cp->ret[cp->nret++] = (struct fm_grain_range){ first, last };
	o->st.copy_returned += last - first + 1;
	return true;
}

static void pool_pop(struct ocopy *cp)
{
	memmove(cp->ret, cp->ret + 1, (cp->nret - 1) * sizeof(*cp->ret));
	cp->nret--;
}

/* batch i ends; grains from `next` on go back to the pool */
static void batch_end(struct fm_owner *o, struct ocopy *cp, size_t i, uint64_t next)
{
	struct obatch b = cp->out[i];

	cp->out[i] = cp->out[--cp->nout];
	if (next < b.first)
		next = b.first;
	if (next <= b.last)
		(void)pool_add(o, cp, next, b.last);
}

/* start afresh for the map's current descriptor: claims answered STALE */
static void copy_reset(struct fm_owner *o, unsigned slot)
{
	struct omap *mp = &o->maps[slot];
	struct ocopy *cp = &mp->copy;

	while (cp->head)
		claim_answer(o, mp, FM_COPY_STALE, 0);
	cp->generation = mp->d.generation;
	cp->epoch++;
	cp->cursor = 0;
	cp->nret = cp->nout = 0;
	cp->pace = 0;
	cp->handed = 0;
}

/* a claim's generation moved on under it: reset first (lazily, so a map
 * added with any generation needs no call) */
static void copy_sync(struct fm_owner *o, unsigned slot)
{
	if (o->maps[slot].copy.generation != o->maps[slot].d.generation)
		copy_reset(o, slot);
}

enum { GO = -1 };

/* may the head claim get a batch now?  GO, or the status to answer with
 * (*wait_ms set for WAIT) */
static int claim_check(struct fm_owner *o, const struct omap *mp, const struct oclaim *cl,
		       uint64_t now, uint32_t *wait_ms)
{
	const struct ocopy *cp = &mp->copy;
	uint64_t ahead = now + COPY_AHEAD_MS;

	*wait_ms = 0;
	if (mp->withheld || mp->revoking || cl->generation != mp->d.generation ||
	    mp->d.state != FM_MAP_COPYING)
		return FM_COPY_STALE;
	if (o->in_grace) {
		/* R6: nobody can lock or commit yet */
		*wait_ms = now < o->grace_until ? (uint32_t)(o->grace_until - now) : 1;
		return FM_COPY_WAIT;
	}
	if (cp->rate == 0) {
		*wait_ms = FM_COPY_POLL_MS;
		return FM_COPY_WAIT;
	}
	if (cp->pace > ahead) {
		uint64_t w = cp->pace - ahead;

		*wait_ms = w > UINT32_MAX ? UINT32_MAX : (uint32_t)w;
		return FM_COPY_WAIT;
	}
	return GO;
}

/* READ the next window to look at for the head claim: ret[0], else the
 * cursor's.  false: nothing left to look at */
static bool window_read(struct fm_owner *o, unsigned slot)
{
	struct omap *mp = &o->maps[slot];
	struct ocopy *cp = &mp->copy;
	uint64_t lo, hi, w0, wlast;
	struct fm_action *a;
	struct oop *op;
	bool pool = cp->nret > 0;

	if (pool) {
		lo = cp->ret[0].first;
		hi = cp->ret[0].last;
	} else if (cp->cursor < mp->d.grain_count) {
		lo = cp->cursor;
		hi = mp->d.grain_count - 1;
	} else {
		return false;
	}
	w0 = lo & ~UINT64_C(63);
	wlast = w0 + COPY_WINDOW_GRAINS - 1;
	if (wlast > hi)
		wlast = hi;
	op = ow_op_new(o, OP_COPY_READ);
	if (!op)
		return true; /* latched: the machine is dead */
	op->slot = slot;
	op->generation = cp->generation;
	op->copy_epoch = cp->epoch;
	op->first = lo;
	op->last = wlast;
	op->base_index = w0;
	op->from_pool = pool;
	a = ow_local_op(o, op, FM_ACT_READ, &mp->d.bitmap, w0 / 8);
	a->u.io.len = (uint32_t)((wlast / 64 - w0 / 64 + 1) * 8);
	cp->reading = true;
	return true;
}

/* serve the claims waiting on slot, head first, until one needs a READ */
static void copy_serve(struct fm_owner *o, unsigned slot, uint64_t now)
{
	struct omap *mp = &o->maps[slot];
	struct ocopy *cp = &mp->copy;

	while (cp->head && !cp->reading && !o->q.err) {
		uint32_t wait_ms;
		int st = claim_check(o, mp, cp->head, now, &wait_ms);

		if (st != GO) {
			claim_answer(o, mp, (uint32_t)st, wait_ms);
			continue;
		}
		if (window_read(o, slot))
			return;
		/* nothing unsplit left that nobody has: over, unless a copier
		 * may still give some back */
		if (cp->nout)
			claim_answer(o, mp, FM_COPY_WAIT, FM_COPY_POLL_MS);
		else
			claim_answer(o, mp, FM_COPY_DONE, 0);
	}
}

/* the looked-at grains [lo, hi] of the window's source are done with up
 * to `next` (exclusive): they leave (a) the cursor or (c) ret[0] */
static void source_advance(struct ocopy *cp, bool pool, uint64_t next)
{
	if (!pool) {
		cp->cursor = next;
		return;
	}
	cp->ret[0].first = next;
	if (cp->ret[0].first > cp->ret[0].last)
		pool_pop(cp);
}

static bool bit_at(const uint8_t *data, uint64_t w0, uint64_t g)
{
	return (data[(g - w0) / 8] >> ((g - w0) % 8)) & 1;
}

void ow_copy_read_done(struct fm_owner *o, struct oop *op, int status, const uint8_t *data,
		       size_t len, uint64_t now)
{
	struct omap *mp = &o->maps[op->slot];
	struct ocopy *cp = &mp->copy;
	uint64_t lo = op->first, hi = op->last, w0 = op->base_index, g, e, n;
	struct oclaim *cl;
	struct obatch *b;
	struct osess *s;

	if (!mp->used)
		return;
	cp->reading = false;
	if (op->copy_epoch != cp->epoch) {
		/* reset meanwhile: the claims it was for were answered */
		copy_serve(o, op->slot, now);
		return;
	}
	if (status < 0 || len < (hi / 64 - w0 / 64 + 1) * 8) {
		o->st.copy_read_failures++;
		return; /* asked again at the next tick */
	}
	cl = cp->head;
	if (!cl)
		return;
	/* the rate, the state... may have changed during the READ */
	{
		uint32_t wait_ms;
		int st = claim_check(o, mp, cl, now, &wait_ms);

		if (st != GO) {
			claim_answer(o, mp, (uint32_t)st, wait_ms);
			copy_serve(o, op->slot, now);
			return;
		}
	}
	for (g = lo; g <= hi && bit_at(data, w0, g); g++)
		;
	if (g > hi) {
		/* all split: look further */
		source_advance(cp, op->from_pool, hi + 1);
		copy_serve(o, op->slot, now);
		return;
	}
	n = fm_copy_batch_grains(cp->rate, mp->d.grain_shift, cl->max);
	for (e = g; e < hi && e - g + 1 < n && !bit_at(data, w0, e + 1); e++)
		;
	if (cp->nout == cp->capout) {
		size_t nc = cp->capout ? cp->capout * 2 : 4;
		struct obatch *nb = realloc(cp->out, nc * sizeof(*nb));

		if (!nb) {
			ow_owner_oom(o);
			return;
		}
		cp->out = nb;
		cp->capout = nc;
	}
	source_advance(cp, op->from_pool, e + 1);
	b = &cp->out[cp->nout++];
	if (++o->next_batch == 0)
		o->next_batch = 1;
	*b = (struct obatch){ .id = o->next_batch, .session_id = cl->session_id, .first = g,
			      .last = e };
	cp->handed++;
	o->st.copy_batches++;
	/* the pace: these bytes are paid for at the rate from now on */
	cp->pace = (cp->pace > now ? cp->pace : now) +
		   fm_copy_ns(cp->rate, (e - g + 1) << mp->d.grain_shift) / 1000000;
	s = ow_sess_by_id(o, cl->session_id);
	if (s && s->state == FM_OSESS_ACTIVE)
		send_batch(o, s, mp, cl->claim_id, FM_COPY_OK, 0, b);
	cp->head = cl->next;
	if (!cp->head)
		cp->tail = NULL;
	free(cl);
	copy_serve(o, op->slot, now);
}

void ow_copy_on_claim(struct fm_owner *o, struct osess *s, const struct fm_msg *m, uint64_t now)
{
	const struct fm_msg_copy_claim *c = &m->u.claim;
	int slot = ow_map_slot(o, c->map_id);
	struct ocopy *cp;
	struct oclaim *cl;

	o->st.copy_claims++;
	if (slot < 0) {
		ow_send_error(o, s, m->seq, -ENOENT);
		return;
	}
	copy_sync(o, (unsigned)slot);
	cp = &o->maps[slot].copy;
	for (cl = cp->head; cl; cl = cl->next)
		if (cl->session_id == s->session_id) {
			/* one claim at a time per session and map */
			ow_send_error(o, s, m->seq, -EBUSY);
			return;
		}
	/* the claimant's batch ends: what it did not copy goes back (all of
	 * it, if the claim names another batch: the copier lost track) */
	for (size_t i = 0; i < cp->nout; i++)
		if (cp->out[i].session_id == s->session_id) {
			batch_end(o, cp, i, c->done_batch == cp->out[i].id ? c->done_next : 0);
			break;
		}
	if (c->max_grains == 0) {
		/* a copier that stops: nothing new */
		send_batch(o, s, &o->maps[slot], c->claim_id, FM_COPY_WAIT, 0, NULL);
		return;
	}
	cl = calloc(1, sizeof(*cl));
	if (!cl) {
		ow_owner_oom(o);
		return;
	}
	*cl = (struct oclaim){ .session_id = s->session_id, .claim_id = c->claim_id,
			       .generation = c->generation, .max = c->max_grains };
	if (cp->tail)
		cp->tail->next = cl;
	else
		cp->head = cl;
	cp->tail = cl;
	copy_serve(o, (unsigned)slot, now);
}

void ow_copy_sess_closed(struct fm_owner *o, struct osess *s)
{
	for (unsigned slot = 0; slot < o->cfg.max_maps; slot++) {
		struct ocopy *cp = &o->maps[slot].copy;

		if (!o->maps[slot].used)
			continue;
		cp->tail = NULL;
		for (struct oclaim **pp = &cp->head; *pp;) {
			struct oclaim *cl = *pp;

			if (cl->session_id == s->session_id) {
				*pp = cl->next;
				free(cl);
				continue;
			}
			cp->tail = cl;
			pp = &cl->next;
		}
		for (size_t i = 0; i < cp->nout;) {
			if (cp->out[i].session_id == s->session_id)
				batch_end(o, cp, i, 0); /* moves the last one to i */
			else
				i++;
		}
	}
}

void ow_copy_map_updated(struct fm_owner *o, unsigned slot)
{
	struct omap *mp = &o->maps[slot];

	if (mp->copy.generation != mp->d.generation || mp->d.state != FM_MAP_COPYING)
		copy_reset(o, slot);
}

void ow_copy_map_free(struct fm_owner *o, unsigned slot)
{
	struct ocopy *cp = &o->maps[slot].copy;

	copy_reset(o, slot);
	free(cp->ret);
	free(cp->out);
	memset(cp, 0, sizeof(*cp));
}

void ow_copy_tick(struct fm_owner *o, uint64_t now)
{
	for (unsigned slot = 0; slot < o->cfg.max_maps; slot++)
		if (o->maps[slot].used && o->maps[slot].copy.head && !o->maps[slot].copy.reading)
			copy_serve(o, slot, now);
}

/* ---- public ---- */

int fm_owner_map_rate(struct fm_owner *o, uint64_t map_id, uint32_t rate)
{
	int slot = o ? ow_map_slot(o, map_id) : -1;

	if (slot < 0)
		return fm_err(-ENOENT, "owner: map %llu unknown", (unsigned long long)map_id);
	if (rate > FM_COPY_RATE_MAX)
		return fm_err(-ERANGE, "owner: copy rate %u > %u", rate, FM_COPY_RATE_MAX);
	o->maps[slot].copy.rate = rate;
	o->maps[slot].copy.pace = 0; /* the new rate from now on */
	return 0;
}

int fm_owner_copy_info(const struct fm_owner *o, uint64_t map_id,
		       struct fm_owner_copy_info *out)
{
	int slot = o ? ow_map_slot(o, map_id) : -1;
	const struct ocopy *cp;

	if (slot < 0)
		return fm_err(-ENOENT, "owner: map %llu unknown", (unsigned long long)map_id);
	cp = &o->maps[slot].copy;
	memset(out, 0, sizeof(*out));
	out->rate = cp->rate;
	if (cp->generation == o->maps[slot].d.generation) {
		out->copiers = (unsigned)cp->nout;
		for (size_t i = 0; i < cp->nout; i++)
			out->grains_out += cp->out[i].last - cp->out[i].first + 1;
		for (size_t i = 0; i < cp->nret; i++)
			out->grains_returned += cp->ret[i].last - cp->ret[i].first + 1;
		out->cursor = cp->cursor;
		out->batches_handed = cp->handed;
	}
	for (const struct oclaim *cl = cp->head; cl; cl = cl->next)
		out->claims_waiting++;
	return 0;
}
