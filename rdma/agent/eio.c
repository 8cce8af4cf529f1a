/* eio.c -- one I/O of the engine: the copy-on-write order, written once.
 *
 * An I/O is a state machine on its submitting thread (engine_priv.h).
 * One attempt:
 *
 *   BEGIN    pin the mapping (fm_agent io bracket, without waiting: not
 *            granted yet -> try again in a moment, up to cfg.retry_ms);
 *            a write records its grains in the changed set
 *            (fm_agent_record_write), before anything is written
 *   PLAN     plan with the cache; a grain nobody knows -> FETCH its bitmap
 *            window (an op), learn it, plan again
 *   reads:
 *     READ     DIRECT extents from the volume named, REDIRECT extents from
 *              the source -- all at once
 *     RECHECK  per redirected grain, AFTER its source read: split now?
 *              (cache, else a fresh window READ).  Unsplit: the source
 *              bytes are the point-in-time data, since a source grain is
 *              overwritten only after its split is durable and published.
 *              Split: the source may be newer -> READ the target instead
 *   writes:
 *     LOCK     every COPY_THEN_WRITE / WRITE_AND_SPLIT grain, ascending
 *              (one order for every I/O: no deadlock), one at a time;
 *              each lock answers whether the grain is split already
 *     STEP     the data step may start (lease margin, lease.h R2); token
 *     COPY     grains to copy (COPY_THEN_WRITE, not split under the lock):
 *              source -> target, by the mover's COPY or READ + WRITE in
 *              chunks
 *     TWRITE   a target write: the I/O's bytes, after the copies
 *     FLUSH    the target, when anything was copied or split: the copy
 *              is durable before its split is committed (R7)
 *     COMMIT   one SPLIT_COMMIT per contiguous run of locked unsplit
 *              grains; done = durable at the owner
 *     UNLOCK   every lock of the I/O
 *     SWRITE   a source write: only now, after the commits (R7)
 *   END      unpin, complete
 *
 * A failure waits for what is in flight, gives the locks back and ends the
 * bracket; a transient one (engine.h) starts the attempt again after a
 * short backoff until cfg.retry_ms ran out.  A retried write redoes its
 * copies: nothing was committed for a grain whose commit did not return
 * 0, and the source was not written before its commit.
 *
 * A background copy piece (copy.c, en_req_new_copy) is the same machine
 * on grains [first, last] of a batch, every one a COPY_THEN_WRITE grain
 * with nothing to write: BEGIN (and the batch's generation still current,
 * the mapping still COPYING, else -ESTALE and no retry), no PLAN, LOCK,
 * STEP, COPY, FLUSH, COMMIT, UNLOCK, END.  Its last error is its status
 * (not -ETIMEDOUT): the copier decides what it means for the batch.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "engine_priv.h"
#include "flashmeta/error.h"

enum {
	Q_BEGIN = 0, Q_PLAN, Q_READ, Q_RECHECK, Q_RETGT, Q_LOCK, Q_STEP1, Q_COPY, Q_TWRITE,
	Q_FLUSH, Q_COMMIT, Q_UNLOCK, Q_STEP2, Q_SWRITE, Q_END, Q_DONE,
};

#define CF_COPY 0x1   /* COPY_THEN_WRITE grain (else WRITE_AND_SPLIT) */
#define CF_LOCKED 0x2
#define CF_SPLIT 0x4  /* found split under its lock: nothing to copy or commit */

/* mover request kinds */
enum { MK_IO = 1, MK_CREAD, MK_CWRITE, MK_CCOPY, MK_FLUSH };

struct en_slot {              /* one copy chunk in flight */
	struct en_mreq m;
	uint8_t *buf;
	bool busy;
};

struct eio {
	struct en_req h;              /* first: the list link and the I/O */
	struct fm_engine *e;
	struct en_thread *et;
	struct en_map att;            /* the volumes as attached */
	struct en_map m;              /* ... as the mapping runs this attempt:
				       * swapped while it is reversed */
	enum fm_io_op xop;            /* the op in the mapping's terms, this
				       * attempt (io->op names attached volumes;
				       * a background piece's is the mapping's) */
	struct fm_volume *vol;        /* the volume the op names */
	struct fm_geom g;
	int state;
	int err;                      /* the attempt's first error */
	int last_err;                 /* the last attempt's */
	uint64_t deadline_ms, wake_ms, t0_ns;
	struct fm_agent_io b;
	bool bracket, stepping, wrote_tgt;
	bool traced;                  /* ATTEMPT told: ATTEMPT_END owed */
	uint64_t token;
	/* plan */
	struct ag_plan ps;
	bool ps_live;
	struct fm_plan plan;
	struct fm_extent *ext;
	struct fm_grain_range *lk;
	uint64_t cap;
	/* the serial op (FETCH of the plan or recheck, LOCK) */
	struct ag_op op;
	bool op_busy;
	/* parallel ops (COMMIT, UNLOCK) */
	struct ag_op *pops;
	size_t npops;
	unsigned pops_out;
	/* COW grains, ascending */
	uint64_t *cg;
	uint8_t *cf;
	size_t ncg, capcg, li;
	/* movers */
	struct en_mreq *mr;           /* one per extent (+1) */
	size_t capmr;
	unsigned m_out;
	struct en_slot slot[EN_COPY_PARALLEL];
	size_t ci;                    /* copy cursor: grain index, offset in it */
	uint64_t coff;
	/* recheck cursor and what it found */
	uint64_t rx, rg;
	struct ag_fill rfill;
	bool rfill_ok;
	struct fm_grain_range *rt;    /* grains to read from the target */
	size_t nrt, caprt;
	/* a background copy piece (copy.c) */
	bool bg;
	uint64_t bg_gen, bg_first, bg_last;
};

static bool is_write(const struct eio *q);

static uint64_t now_ms(void)
{
	return en_now_ns() / 1000000;
}

static bool transient(int rc)
{
	return rc == -ECONNRESET || rc == -EAGAIN || rc == -EKEYEXPIRED || rc == -ESTALE ||
	       rc == -ENOLCK || rc == -ETIMEDOUT || rc == -ENOTCONN || rc == -EKEYREJECTED;
}

static void fail(struct eio *q, int rc)
{
	if (!q->err)
		q->err = rc;
}

/* tell the trace hook (engine.h), if there is one */
static void trace(struct eio *q, struct fm_engine_event ev)
{
	if (!q->e->cfg.trace)
		return;
	ev.attempt = q->h.io->st.attempts;
	q->e->cfg.trace(q->e->cfg.trace_ctx, q->h.io, &ev);
}

static void trace_grains(struct eio *q, enum fm_engine_event_kind kind, uint64_t first,
			 uint64_t last, int rc)
{
	trace(q, (struct fm_engine_event){ .kind = kind, .first = first, .last = last, .rc = rc });
}

/* the attempt's bracket ends */
static void bracket_end(struct eio *q, int rc)
{
	if (q->bracket) {
		fm_agent_io_end(q->e->a, &q->b);
		q->bracket = false;
	}
	if (q->traced) {
		q->traced = false;
		trace(q, (struct fm_engine_event){ .kind = FM_ENGINE_EV_ATTEMPT_END, .rc = rc });
	}
}

/* ---------------------------------------------------------- lifetime */

/*
 * The direction of this attempt, from the descriptor its bracket holds
 * (fixed for the generation: a restore revokes and bumps it).  A restored
 * mapping (reversed) copies the volume attached as target to the one
 * attached as source: the volumes swap roles, and so does an I/O's op
 * (a write of the attached source is now a write of the mapping's
 * target).  A background piece is in the mapping's terms already: only
 * the volumes swap.  The volume the I/O names stays the one it named.
 */
static void set_direction(struct eio *q)
{
	static const enum fm_io_op other[FM_IO_OP_COUNT] = {
		[FM_IO_READ_SOURCE] = FM_IO_READ_TARGET, [FM_IO_WRITE_SOURCE] = FM_IO_WRITE_TARGET,
		[FM_IO_READ_TARGET] = FM_IO_READ_SOURCE, [FM_IO_WRITE_TARGET] = FM_IO_WRITE_SOURCE,
	};
	bool rev = q->b.map.reversed;

	q->m = q->att;
	q->xop = q->h.io->op;
	if (rev) {
		q->m.src = q->att.tgt;
		q->m.tgt = q->att.src;
		if (!q->bg)
			q->xop = other[q->xop];
	}
	q->vol = q->xop == FM_IO_READ_SOURCE || q->xop == FM_IO_WRITE_SOURCE ? q->m.src : q->m.tgt;
}

/* a new I/O of mapping m on et, counted in mc, linked, BEGIN next */
static struct eio *req_init(struct en_thread *et, struct fm_engine_io *io, const struct en_map *m,
			    struct en_counters *mc)
{
	struct eio *q = calloc(1, sizeof(*q));

	if (!q)
		return NULL;
	q->e = et->e;
	q->et = et;
	q->h.io = io;
	q->att = *m;
	q->m = *m;
	q->xop = io->op;
	q->h.mc = mc;
	q->vol = io->op == FM_IO_READ_SOURCE || io->op == FM_IO_WRITE_SOURCE ? m->src : m->tgt;
	q->t0_ns = en_now_ns();
	q->deadline_ms = q->t0_ns / 1000000 + et->e->cfg.retry_ms;
	q->state = Q_BEGIN;
	io->status = 0;
	memset(&io->st, 0, sizeof(io->st));
	io->priv_ = q;
	q->h.next = et->reqs;
	et->reqs = &q->h;
	return q;
}

int en_req_new(struct en_thread *et, struct fm_engine_io *io, struct en_req **out)
{
	struct fm_engine *e = et->e;
	const struct en_map *m;
	struct eio *q;

	if (!io->buf || !io->length || (unsigned)io->op >= FM_IO_OP_COUNT)
		return fm_err(-EINVAL, "engine: an I/O needs a buffer, a length and an op");
	if (io->length > e->cfg.max_io_bytes)
		return fm_err(-EINVAL, "engine: %" PRIu64 " bytes is more than max_io_bytes %u",
			      io->length, e->cfg.max_io_bytes);
	m = en_map_find(e, io->map_id);
	if (!m)
		return fm_err(-ENOENT, "engine: no volumes attached to map %" PRIu64, io->map_id);
	io->background = false;
	q = req_init(et, io, m, m->c);
	if (!q)
		return fm_err(-ENOMEM, "engine: I/O");
	*out = &q->h;
	return 0;
}

int en_req_new_copy(struct en_thread *et, struct fm_engine_io *io, const struct en_map *m,
		    struct en_counters *mc, uint64_t generation, uint64_t first, uint64_t last,
		    struct en_req **out)
{
	struct eio *q;

	io->op = FM_IO_WRITE_TARGET; /* the target is the volume written */
	io->background = true;
	q = req_init(et, io, m, mc);
	if (!q)
		return fm_err(-ENOMEM, "engine: background copy piece");
	q->bg = true;
	q->bg_gen = generation;
	q->bg_first = first;
	q->bg_last = last;
	*out = &q->h;
	return 0;
}

/* the grains of a background copy piece: every one to copy, ascending */
static int bg_grains(struct eio *q)
{
	size_t n = (size_t)(q->bg_last - q->bg_first + 1);

	if (n > q->capcg) {
		free(q->cg);
		free(q->cf);
		q->cg = malloc(n * sizeof(*q->cg));
		q->cf = malloc(n);
		q->capcg = q->cg && q->cf ? n : 0;
		if (!q->capcg)
			return fm_err(-ENOMEM, "engine: %zu grains to copy", n);
	}
	for (size_t i = 0; i < n; i++) {
		q->cg[i] = q->bg_first + i;
		q->cf[i] = CF_COPY;
	}
	q->ncg = n;
	q->li = 0;
	return 0;
}

void en_req_free(struct en_req *r)
{
	struct eio *q = (struct eio *)r;

	if (q->ps_live)
		ag_plan_fini(&q->ps);
	for (unsigned i = 0; i < EN_COPY_PARALLEL; i++)
		free(q->slot[i].buf);
	free(q->ext);
	free(q->lk);
	free(q->pops);
	free(q->cg);
	free(q->cf);
	free(q->mr);
	free(q->rt);
	free(q);
}

/* ------------------------------------------------------------ helpers */

static void op_cb(struct ag_op *op)
{
	struct eio *q = op->ctx;

	if (op == &q->op) {
		q->op_busy = false;
		return;
	}
	q->pops_out--;
	if (op->status && op->kind == AG_OP_COMMIT)
		fail(q, op->status);
	trace_grains(q, op->kind == AG_OP_COMMIT ? FM_ENGINE_EV_COMMITTED : FM_ENGINE_EV_UNLOCKED,
		     op->first, op->last, op->status);
}

/* start the serial op; false: it failed to start (q->err set) */
static bool op_start(struct eio *q, enum ag_op_kind kind, uint64_t first, uint64_t last)
{
	int rc;

	q->op = (struct ag_op){ .kind = kind, .map_id = q->h.io->map_id, .first = first,
				.last = last, .cb = op_cb, .ctx = q, .owner = q };
	q->op_busy = true;
	rc = ag_op_start(q->e->a, q->et->th, &q->op);
	if (rc) {
		q->op_busy = false;
		fail(q, rc);
		return false;
	}
	return true;
}

static struct en_mreq *mreq(struct eio *q, size_t i)
{
	struct en_mreq *m = &q->mr[i];

	memset(m, 0, sizeof(*m));
	m->q = &q->h;
	m->et = q->et;
	return m;
}

/* room for n mover requests (nothing in flight) */
static int mr_room(struct eio *q, size_t n)
{
	if (n <= q->capmr)
		return 0;
	free(q->mr);
	q->mr = calloc(n, sizeof(*q->mr));
	q->capmr = q->mr ? n : 0;
	return q->mr ? 0 : fm_err(-ENOMEM, "engine: mover requests");
}

static void mover(struct eio *q, struct fm_volume *v, struct en_mreq *m, int kind,
		  enum fm_engine_step step, enum fm_mover_op op, uint64_t off, uint64_t len,
		  void *buf, uint64_t token)
{
	m->kind = kind;
	m->r.op = op;
	m->r.offset = off;
	m->r.length = len;
	m->r.buf = buf;
	m->r.token = token;
	q->m_out++;
	trace(q, (struct fm_engine_event){ .kind = FM_ENGINE_EV_MOVER, .step = step, .req = &m->r });
	en_mover_start(&q->h, v, m);
}

void en_req_mover_done(struct en_req *r, struct en_mreq *m)
{
	struct eio *q = (struct eio *)r;

	q->m_out--;
	if (m->status) {
		fail(q, m->status);
	} else if (m->kind == MK_IO) {
		if (m->r.op == FM_MOVER_READ)
			EN_COUNT(q->h.mc, bytes_read, m->r.length);
		else if (m->r.op == FM_MOVER_WRITE)
			EN_COUNT(q->h.mc, bytes_written, m->r.length);
	}
	if (m->kind == MK_CREAD && !m->status && !q->err) {
		/* the chunk is in memory: write it to the target */
		struct en_slot *s = (struct en_slot *)m;

		mover(q, q->m.tgt, m, MK_CWRITE, FM_ENGINE_STEP_COPY_WRITE, FM_MOVER_WRITE,
		      m->r.offset, m->r.length, s->buf, q->token);
		return;
	}
	if (m->kind == MK_CREAD || m->kind == MK_CWRITE || m->kind == MK_CCOPY) {
		((struct en_slot *)m)->busy = false;
		if (m->kind != MK_CREAD && !m->status)
			q->wrote_tgt = true;
	}
}

static void step_end(struct eio *q)
{
	if (q->stepping) {
		fm_agent_step_end(q->e->a, &q->b);
		q->stepping = false;
	}
}

/* a step may start: 0, -EAGAIN (try again soon: q->wake_ms set), error */
static int step_begin(struct eio *q)
{
	int rc = ag_step_try(q->e->a, &q->b, &q->token);

	if (rc == -EAGAIN)
		q->wake_ms = now_ms() + 1;
	else if (rc == 0)
		q->stepping = true;
	return rc;
}

/* -------------------------------------------------------------- phases */

static int plan_arrays(struct eio *q)
{
	uint64_t first = q->h.io->offset >> q->g.grain_shift;
	uint64_t last = (q->h.io->offset + q->h.io->length - 1) >> q->g.grain_shift;
	uint64_t need = last >= first ? last - first + 2 : 2;

	if (need <= q->cap)
		return 0;
	free(q->ext);
	free(q->lk);
	q->ext = calloc(need, sizeof(*q->ext));
	q->lk = calloc(need, sizeof(*q->lk));
	q->cap = q->ext && q->lk ? need : 0;
	return q->cap ? 0 : fm_err(-ENOMEM, "engine: plan of %" PRIu64 " grains", need);
}

/* the COW grains of the plan, ascending, and what each needs */
static int cow_grains(struct eio *q)
{
	size_t n = 0;

	for (uint64_t i = 0; i < q->plan.ext_count; i++)
		if (q->ext[i].kind == FM_EXT_COPY_THEN_WRITE || q->ext[i].kind == FM_EXT_WRITE_AND_SPLIT)
			n += q->ext[i].last_grain - q->ext[i].first_grain + 1;
	if (n > q->capcg) {
		free(q->cg);
		free(q->cf);
		q->cg = malloc(n * sizeof(*q->cg));
		q->cf = malloc(n);
		q->capcg = q->cg && q->cf ? n : 0;
		if (!q->capcg)
			return fm_err(-ENOMEM, "engine: %zu grains to lock", n);
	}
	q->ncg = 0;
	for (uint64_t i = 0; i < q->plan.ext_count; i++) {
		const struct fm_extent *x = &q->ext[i];

		if (x->kind != FM_EXT_COPY_THEN_WRITE && x->kind != FM_EXT_WRITE_AND_SPLIT)
			continue;
		for (uint64_t g = x->first_grain; g <= x->last_grain; g++) {
			q->cg[q->ncg] = g;
			q->cf[q->ncg++] = x->kind == FM_EXT_COPY_THEN_WRITE ? CF_COPY : 0;
		}
	}
	q->li = 0;
	return 0;
}

/* 0: planned; -EAGAIN: a window READ is in flight; else an error */
static int do_plan(struct eio *q)
{
	uint64_t miss;
	int rc;

	if (q->op_busy)
		return -EAGAIN;
	if (!q->ps_live) {
		rc = plan_arrays(q);
		if (!rc)
			rc = ag_plan_init(&q->ps, q->e->a, &q->b, q->xop, q->h.io->offset,
					  q->h.io->length, q->vol->size);
		if (rc)
			return rc;
		q->ps_live = true;
	} else if (q->op.done && q->op.kind == AG_OP_FETCH) {
		if (q->op.status)
			return q->op.status;
		ag_plan_learn(&q->ps, &q->op.fill);
		q->op.kind = 0;
	}
	fm_plan_setup(&q->plan, q->ext, q->cap, q->lk, q->cap);
	rc = ag_plan_try(&q->ps, &q->plan, &miss);
	if (rc == -EAGAIN) {
		q->h.io->st.misses++;
		EN_COUNT(q->h.mc, misses, 1);
		return op_start(q, AG_OP_FETCH, miss, miss) ? -EAGAIN : q->err;
	}
	if (rc == 0 && !q->h.io->st.misses) {
		uint32_t n = (uint32_t)(q->plan.last_grain - q->plan.first_grain + 1);

		q->h.io->st.hits += n;
		EN_COUNT(q->h.mc, hits, n);
	}
	return rc;
}

static void start_reads(struct eio *q)
{
	if (mr_room(q, q->plan.ext_count)) {
		fail(q, -ENOMEM);
		return;
	}
	for (uint64_t i = 0; i < q->plan.ext_count; i++) {
		const struct fm_extent *x = &q->ext[i];
		bool redir = x->kind == FM_EXT_REDIRECT_TO_SOURCE;

		mover(q, redir ? q->m.src : q->vol, mreq(q, i), MK_IO,
		      redir ? FM_ENGINE_STEP_REDIRECT : FM_ENGINE_STEP_READ, FM_MOVER_READ,
		      x->offset, x->length,
		      (uint8_t *)q->h.io->buf + (x->offset - q->h.io->offset), 0);
	}
	q->rx = 0;
	q->rg = UINT64_MAX;
	q->rfill_ok = false;
	q->nrt = 0;
}

static int rt_add(struct eio *q, uint64_t g)
{
	if (q->nrt && q->rt[q->nrt - 1].last + 1 == g) {
		q->rt[q->nrt - 1].last = g;
		return 0;
	}
	if (q->nrt == q->caprt) {
		size_t nc = q->caprt ? q->caprt * 2 : 8;
		struct fm_grain_range *n = realloc(q->rt, nc * sizeof(*n));

		if (!n)
			return fm_err(-ENOMEM, "engine: recheck");
		q->rt = n;
		q->caprt = nc;
	}
	q->rt[q->nrt++] = (struct fm_grain_range){ g, g };
	return 0;
}

/* per redirected grain: split now?  0 done, -EAGAIN a READ in flight */
static int recheck(struct eio *q)
{
	if (q->op_busy)
		return -EAGAIN;
	if (q->op.done && q->op.kind == AG_OP_FETCH) {
		if (q->op.status)
			return q->op.status;
		q->rfill = q->op.fill;
		q->rfill_ok = true;
		q->op.kind = 0;
	}
	for (; q->rx < q->plan.ext_count; q->rx++, q->rg = UINT64_MAX) {
		const struct fm_extent *x = &q->ext[q->rx];

		if (x->kind != FM_EXT_REDIRECT_TO_SOURCE)
			continue;
		if (q->rg == UINT64_MAX)
			q->rg = x->first_grain;
		for (; q->rg <= x->last_grain; q->rg++) {
			uint64_t g = q->rg;
			bool split;

			if (fm_cache_lookup(q->e->a->cache, q->h.io->map_id, g, NULL)) {
				split = true;
			} else if (q->rfill_ok && g >= q->rfill.w0 && g - q->rfill.w0 < q->rfill.nbits) {
				split = ag_fill_bit(&q->rfill, g);
			} else {
				/* a fresh READ of its window, AFTER the source read */
				return op_start(q, AG_OP_FETCH, g, g) ? -EAGAIN : q->err;
			}
			if (split && rt_add(q, g))
				return -ENOMEM;
		}
	}
	return 0;
}

/* the redirected grains split meanwhile: their bytes from the target */
static void start_retarget(struct eio *q)
{
	uint64_t end = q->h.io->offset + q->h.io->length;

	if (mr_room(q, q->nrt)) {
		fail(q, -ENOMEM);
		return;
	}
	for (size_t i = 0; i < q->nrt; i++) {
		uint64_t a0 = q->rt[i].first << q->g.grain_shift;
		uint64_t a1 = (q->rt[i].last + 1) << q->g.grain_shift;

		if (a0 < q->h.io->offset)
			a0 = q->h.io->offset;
		if (a1 > end)
			a1 = end;
		mover(q, q->m.tgt, mreq(q, i), MK_IO, FM_ENGINE_STEP_RETARGET, FM_MOVER_READ, a0,
		      a1 - a0,
		      (uint8_t *)q->h.io->buf + (a0 - q->h.io->offset), 0);
	}
}

/* issue copy chunks while slots are free; true when every copy is done */
static bool copy_more(struct eio *q)
{
	uint64_t chunk = q->m.tgt->ops.copy ? UINT64_MAX : EN_COPY_CHUNK;

	for (unsigned s = 0; s < EN_COPY_PARALLEL && !q->err; s++) {
		struct en_slot *sl = &q->slot[s];
		uint64_t gb, goff, len;

		if (sl->busy)
			continue;
		while (q->ci < q->ncg && ((q->cf[q->ci] & (CF_COPY | CF_SPLIT)) != CF_COPY ||
					  q->coff >= fm_geom_grain_bytes(&q->g, q->cg[q->ci]))) {
			q->ci++;
			q->coff = 0;
		}
		if (q->ci >= q->ncg)
			break;
		gb = fm_geom_grain_bytes(&q->g, q->cg[q->ci]);
		goff = (q->cg[q->ci] << q->g.grain_shift) + q->coff;
		len = gb - q->coff < chunk ? gb - q->coff : chunk;
		if (q->coff == 0) {
			q->h.io->st.copies++;
			EN_COUNT(q->h.mc, copies, 1);
		}
		q->coff += len;
		memset(&sl->m, 0, sizeof(sl->m));
		sl->m.q = &q->h;
		sl->m.et = q->et;
		sl->busy = true;
		if (q->m.tgt->ops.copy) {
			sl->m.r.src = q->m.src;
			mover(q, q->m.tgt, &sl->m, MK_CCOPY, FM_ENGINE_STEP_COPY, FM_MOVER_COPY, goff,
			      len, NULL, q->token);
			continue;
		}
		if (!sl->buf && !(sl->buf = malloc(EN_COPY_CHUNK))) {
			sl->busy = false;
			fail(q, fm_err(-ENOMEM, "engine: copy buffer"));
			break;
		}
		mover(q, q->m.src, &sl->m, MK_CREAD, FM_ENGINE_STEP_COPY_READ, FM_MOVER_READ, goff,
		      len, sl->buf, 0);
	}
	return q->ci >= q->ncg && q->m_out == 0;
}

/* parallel ops over the COW grains: COMMIT runs, or UNLOCK each locked */
static int start_pops(struct eio *q, enum ag_op_kind kind)
{
	size_t n = 0;
	int rc;

	free(q->pops);
	q->pops = calloc(q->ncg ? q->ncg : 1, sizeof(*q->pops));
	if (!q->pops)
		return fm_err(-ENOMEM, "engine: ops");
	for (size_t i = 0; i < q->ncg; i++) {
		uint64_t first = q->cg[i];

		if (kind == AG_OP_COMMIT) {
			if ((q->cf[i] & (CF_LOCKED | CF_SPLIT)) != CF_LOCKED)
				continue;
			while (i + 1 < q->ncg && q->cg[i + 1] == q->cg[i] + 1 &&
			       (q->cf[i + 1] & (CF_LOCKED | CF_SPLIT)) == CF_LOCKED)
				i++;
		} else if (!(q->cf[i] & CF_LOCKED)) {
			continue;
		} else {
			q->cf[i] &= (uint8_t)~CF_LOCKED;
		}
		q->pops[n] = (struct ag_op){ .kind = kind, .map_id = q->h.io->map_id, .first = first,
					     .last = q->cg[i], .cb = op_cb, .ctx = q, .owner = q };
		q->pops_out++;
		if (kind == AG_OP_COMMIT)
			trace_grains(q, FM_ENGINE_EV_COMMIT, first, q->cg[i], 0);
		if ((rc = ag_op_start(q->e->a, q->et->th, &q->pops[n]))) {
			q->pops_out--;
			rc = q->pops[n].status ? q->pops[n].status : rc;
			if (kind == AG_OP_COMMIT)
				fail(q, rc);
			trace_grains(q, kind == AG_OP_COMMIT ? FM_ENGINE_EV_COMMITTED :
							       FM_ENGINE_EV_UNLOCKED,
				     first, q->cg[i], rc);
		} else if (kind == AG_OP_COMMIT) {
			q->h.io->st.commits++;
			EN_COUNT(q->h.mc, commits, 1);
		}
		n++;
	}
	q->npops = n;
	return 0;
}

static bool any_locked(const struct eio *q)
{
	for (size_t i = 0; i < q->ncg; i++)
		if (q->cf[i] & CF_LOCKED)
			return true;
	return false;
}

/* the attempt failed and nothing is in flight: locks back, bracket
 * ended; again after a backoff, or complete */
static bool attempt_failed(struct eio *q)
{
	int rc = q->err;

	step_end(q);
	if (any_locked(q)) {
		if (start_pops(q, AG_OP_UNLOCK))
			return false; /* no memory: try again at the next step */
		q->state = Q_UNLOCK;
		return false;
	}
	bracket_end(q, rc);
	if (q->ps_live) {
		ag_plan_fini(&q->ps);
		q->ps_live = false;
	}
	q->last_err = rc;
	q->err = 0;
	q->ncg = 0;
	q->op.kind = 0;
	if (transient(rc) && now_ms() < q->deadline_ms && !(q->bg && en_copy_stopping(q->e))) {
		q->state = Q_BEGIN;
		q->wake_ms = now_ms() + 2 + q->h.io->st.attempts % 8;
		EN_COUNT(q->h.mc, restarts, 1);
		return false;
	}
	if (transient(rc) && rc != -EKEYREJECTED && !q->bg)
		rc = fm_err(-ETIMEDOUT, "engine: map %" PRIu64 ": retried for %u ms, last: %s",
			    q->h.io->map_id, q->e->cfg.retry_ms, strerror(-rc));
	q->h.io->status = rc;
	q->h.io->st.ns = en_now_ns() - q->t0_ns;
	q->state = Q_DONE;
	return true;
}

/* ------------------------------------------------------------ the step */

static bool is_write(const struct eio *q)
{
	return q->xop == FM_IO_WRITE_SOURCE || q->xop == FM_IO_WRITE_TARGET;
}

bool en_req_step(struct en_req *r)
{
	struct eio *q = (struct eio *)r;
	int rc;

	for (;;) {
		if (q->state == Q_DONE)
			return true;
		if (q->m_out || q->pops_out || q->op_busy)
			return false; /* wait for what is in flight */
		if (q->err && q->state != Q_UNLOCK)
			return attempt_failed(q);
		if (q->wake_ms && now_ms() < q->wake_ms)
			return false;
		q->wake_ms = 0;

		switch (q->state) {
		case Q_BEGIN:
			rc = ag_io_try_begin(q->e->a, q->et->th, q->h.io->map_id, &q->b);
			if (rc == -EAGAIN) {
				if (now_ms() >= q->deadline_ms) {
					fail(q, fm_err(-ETIMEDOUT, "engine: map %" PRIu64 " not granted "
						       "within %u ms", q->h.io->map_id,
						       q->e->cfg.retry_ms));
					q->deadline_ms = 0; /* no more attempts */
					break;
				}
				q->wake_ms = now_ms() + 2;
				return false;
			}
			if (rc) {
				q->h.io->status = rc;
				q->state = Q_DONE;
				return true;
			}
			q->bracket = true;
			q->h.io->st.attempts++;
			set_direction(q);
			if (q->b.map.grain_count !=
			    (q->vol->size + (UINT64_C(1) << q->b.map.grain_shift) - 1) >>
				    q->b.map.grain_shift) {
				fail(q, fm_err(-ENOENT, "engine: map %" PRIu64 " has %" PRIu64
					       " grains of 2^%u bytes; its volumes hold %" PRIu64
					       " bytes", q->h.io->map_id, q->b.map.grain_count,
					       q->b.map.grain_shift, q->vol->size));
				q->deadline_ms = 0;
				break;
			}
			q->g.grain_shift = q->b.map.grain_shift;
			q->g.grain_count = q->b.map.grain_count;
			q->g.volume_size = q->vol->size;
			if (q->bg && (q->b.map.generation != q->bg_gen ||
				      q->b.map.state != FM_MAP_COPYING ||
				      q->bg_last >= q->b.map.grain_count)) {
				/* the batch is of another generation now: void */
				fail(q, fm_err(-ESTALE, "engine: map %" PRIu64 " is %s in generation %"
					       PRIu64 ", the batch was of %" PRIu64, q->h.io->map_id,
					       fm_map_state_name(q->b.map.state),
					       q->b.map.generation, q->bg_gen));
				q->deadline_ms = 0;
				break;
			}
			if (!q->bg && is_write(q)) {
				/* the changed set first: before any write of
				 * this attempt is issued (a retry records again) */
				rc = fm_agent_record_write(q->e->a, &q->b, q->h.io->offset,
							   q->h.io->length);
				if (rc) {
					fail(q, rc);
					break;
				}
			}
			q->state = Q_PLAN;
			q->traced = true;
			trace(q, (struct fm_engine_event){ .kind = FM_ENGINE_EV_ATTEMPT,
							   .map = &q->b.map });
			break;
		case Q_PLAN:
			if (q->bg) { /* nothing to plan: every grain is locked and looked at */
				rc = bg_grains(q);
				if (rc) {
					fail(q, rc);
					break;
				}
				q->state = Q_LOCK;
				break;
			}
			rc = do_plan(q);
			if (rc == -EAGAIN)
				return false;
			if (rc) {
				if (!transient(rc))
					q->deadline_ms = 0;
				fail(q, rc);
				break;
			}
			if (!is_write(q)) {
				start_reads(q);
				q->state = Q_READ;
				break;
			}
			rc = cow_grains(q);
			if (rc) {
				fail(q, rc);
				break;
			}
			q->state = q->ncg ? Q_LOCK : Q_STEP2;
			break;
		case Q_READ:
			q->state = Q_RECHECK;
			break;
		case Q_RECHECK:
			rc = recheck(q);
			if (rc == -EAGAIN)
				return false;
			if (rc) {
				fail(q, rc);
				break;
			}
			start_retarget(q);
			q->state = Q_RETGT;
			break;
		case Q_RETGT:
			q->state = Q_END;
			break;
		case Q_LOCK:
			if (q->li > 0 && q->op.kind == AG_OP_LOCK && q->op.done) {
				/* the previous lock's answer */
				if (q->op.status) {
					fail(q, q->op.status);
					q->op.kind = 0;
					break;
				}
				q->cf[q->li - 1] |= CF_LOCKED | (q->op.split ? CF_SPLIT : 0);
				q->h.io->st.locks++;
				EN_COUNT(q->h.mc, locks, 1);
				q->op.kind = 0;
				trace(q, (struct fm_engine_event){ .kind = FM_ENGINE_EV_LOCKED,
								   .first = q->cg[q->li - 1],
								   .last = q->cg[q->li - 1],
								   .split = q->op.split });
			}
			if (q->li < q->ncg) {
				q->li++;
				if (!op_start(q, AG_OP_LOCK, q->cg[q->li - 1], q->cg[q->li - 1]))
					break;
				return false;
			}
			q->state = Q_STEP1;
			break;
		case Q_STEP1:
			rc = step_begin(q);
			if (rc == -EAGAIN)
				return false;
			if (rc) {
				fail(q, rc);
				break;
			}
			q->ci = 0;
			q->coff = 0;
			q->wrote_tgt = false;
			q->state = Q_COPY;
			break;
		case Q_COPY:
			if (!copy_more(q))
				return false;
			if (q->xop == FM_IO_WRITE_TARGET && !q->bg) {
				if (mr_room(q, 1)) {
					fail(q, -ENOMEM);
					break;
				}
				mover(q, q->m.tgt, mreq(q, 0), MK_IO, FM_ENGINE_STEP_TARGET_WRITE,
				      FM_MOVER_WRITE, q->h.io->offset, q->h.io->length, q->h.io->buf,
				      q->token);
				q->wrote_tgt = true;
			}
			q->state = Q_TWRITE;
			break;
		case Q_TWRITE: {
			bool any = false;

			for (size_t i = 0; i < q->ncg; i++)
				any |= (q->cf[i] & (CF_LOCKED | CF_SPLIT)) == CF_LOCKED;
			q->state = Q_FLUSH;
			if (any && q->wrote_tgt) { /* copies and data durable first */
				if (mr_room(q, 1)) {
					fail(q, -ENOMEM);
					break;
				}
				mover(q, q->m.tgt, mreq(q, 0), MK_FLUSH, FM_ENGINE_STEP_FLUSH,
				      FM_MOVER_FLUSH, 0, 0, NULL, q->token);
			}
			break;
		}
		case Q_FLUSH:
			step_end(q);
			rc = start_pops(q, AG_OP_COMMIT);
			if (rc)
				fail(q, rc);
			q->state = Q_COMMIT;
			break;
		case Q_COMMIT:
			/* commits done (their errors in q->err): the locks back */
			rc = start_pops(q, AG_OP_UNLOCK);
			if (rc)
				fail(q, rc);
			q->state = Q_UNLOCK;
			break;
		case Q_UNLOCK:
			if (q->err)
				return attempt_failed(q);
			q->state = q->xop == FM_IO_WRITE_SOURCE ? Q_STEP2 : Q_END;
			break;
		case Q_STEP2:
			if (q->xop == FM_IO_WRITE_TARGET && q->ncg) {
				q->state = Q_END;
				break;
			}
			rc = step_begin(q);
			if (rc == -EAGAIN)
				return false;
			if (rc) {
				fail(q, rc);
				break;
			}
			if (mr_room(q, 1)) {
				fail(q, -ENOMEM);
				break;
			}
			/* a source write after its grains' commits; a target
			 * write of split grains only: as asked */
			mover(q, q->vol, mreq(q, 0), MK_IO, FM_ENGINE_STEP_WRITE, FM_MOVER_WRITE,
			      q->h.io->offset, q->h.io->length, q->h.io->buf, q->token);
			q->state = Q_SWRITE;
			break;
		case Q_SWRITE:
			step_end(q);
			q->state = Q_END;
			break;
		case Q_END:
			bracket_end(q, 0);
			if (q->ps_live) {
				ag_plan_fini(&q->ps);
				q->ps_live = false;
			}
			q->h.io->status = 0;
			q->h.io->st.ns = en_now_ns() - q->t0_ns;
			q->state = Q_DONE;
			return true;
		default:
			fail(q, -EINVAL);
		}
	}
}

int en_req_timeout(struct en_req *r)
{
	struct eio *q = (struct eio *)r;
	uint64_t now = now_ms();

	if (q->state == Q_DONE)
		return 0;
	if (!q->wake_ms)
		return -1;
	return q->wake_ms <= now ? 0 : (int)(q->wake_ms - now);
}
