/* copy.c -- the engine's background copier (engine.h "background copy").
 *
 * One thread per engine, started by fm_engine_copy_start.  It is an
 * engine thread like any other: its own engine context (en_thread) and
 * agent context (lane, eventfd), pieces submitted and polled on it (the
 * polled form), claims as agent ops on it.  Per attached mapping
 * (struct en_cmap, the thread's alone but for the stats atomics), a loop
 * step does at most one thing, and never while a claim or a piece of the
 * mapping is in flight:
 *
 *   not granted, or not COPYING  nothing (a batch of another state is
 *                                void: forgotten, the owner resets its
 *                                bookkeeping with the state)
 *   a new generation             forget the batch (void as well)
 *   before wake_ns               nothing (a backoff, the owner's WAIT)
 *   no batch, or it is done      claim: COPY_CLAIM{max = batch_grains,
 *                                the batch that ended and how far it got}
 *   before pace_ns               nothing (the rate)
 *   else                         a piece: the next piece_grains of the
 *                                batch as an eio background piece
 *
 * A piece that completes moves `next` past it and sets the pace: B bytes
 * copied cost B / rate, counted from the piece's start.  One that fails ends the batch at `next` (its
 * grains are given back by the next claim).  The thread sleeps on its
 * epoll set (its eventfd: the protocol thread's answers and the stop; its
 * lane), at most until the earliest wake or pace, 100 ms at the longest.
 *
 * Stop: the flag, then a write to the thread's eventfd.  The thread starts
 * nothing new, lets the pieces and claims in flight end (en_copy_stopping
 * keeps a failing piece from retrying), gives every unfinished batch back
 * (a claim of 0 grains, while the session is up), and exits.
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "engine_priv.h"
#include "flashmeta/copy.h"
#include "flashmeta/error.h"

#define CP_BACKOFF_NS (200 * UINT64_C(1000000))   /* after a failure */
#define CP_WAIT_MAX_NS (2000 * UINT64_C(1000000)) /* a WAIT: look again within */
#define CP_NOCOPY_NS (10000 * UINT64_C(1000000))  /* the owner has no copy (2.0) */
#define CP_SLEEP_MAX_MS 100

#define ST(cm, f, v) atomic_store_explicit(&(cm)->f, (v), memory_order_relaxed)
#define ADD(cm, f, v) atomic_fetch_add_explicit(&(cm)->f, (v), memory_order_relaxed)

bool en_copy_stopping(struct fm_engine *e)
{
	return atomic_load_explicit(&e->cp.stop, memory_order_relaxed);
}

static void publish(struct en_cmap *cm)
{
	ST(cm, a_gen, cm->gen);
	ST(cm, a_id, cm->have ? cm->id : 0);
	ST(cm, a_first, cm->have ? cm->first : 0);
	ST(cm, a_last, cm->have ? cm->last : 0);
	ST(cm, a_next, cm->have ? cm->next : 0);
	ST(cm, a_rate, cm->rate);
}

/* the batch ends at `next`: the next claim says so */
static void batch_end(struct en_cmap *cm)
{
	if (!cm->have)
		return;
	cm->ended_id = cm->id;
	cm->ended_next = cm->next;
	cm->have = false;
	publish(cm);
}

/* forget the batch: void (another generation or state) */
static void batch_drop(struct en_cmap *cm)
{
	cm->have = false;
	cm->ended_id = cm->ended_next = 0;
	publish(cm);
}

/* ------------------------------------------------------------- claims */

static void claim_done(struct ag_op *op)
{
	struct en_cmap *cm = op->ctx;
	uint64_t now = en_now_ns();
	const struct ag_batch *b = &op->batch;

	cm->claiming = false;
	if (op->status) {
		/* not answered: if the owner got it, the batch it ended is over
		 * there; if not, our next claim ends it (done_batch unknown
		 * to it: all of it back, looked at again, split grains skipped) */
		ADD(cm, errors, 1);
		cm->wake_ns = now + (op->status == -EOPNOTSUPP ? CP_NOCOPY_NS : CP_BACKOFF_NS);
		return;
	}
	ADD(cm, claims, 1);
	cm->ended_id = cm->ended_next = 0; /* the owner has our word on it */
	cm->rate = b->rate;
	switch (b->status) {
	case FM_COPY_OK:
		if (b->generation != cm->gen) {
			/* the mapping moved on since we asked: a batch of
			 * another generation than the one we copy; give it back */
			cm->ended_id = b->id;
			cm->ended_next = b->first;
			break;
		}
		cm->have = true;
		cm->id = b->id;
		cm->first = cm->next = b->first;
		cm->last = b->last;
		ADD(cm, batches, 1);
		break;
	case FM_COPY_WAIT: {
		uint64_t w = (uint64_t)b->wait_ms * 1000000;

		cm->wake_ns = now + (w < CP_WAIT_MAX_NS ? w : CP_WAIT_MAX_NS);
		break;
	}
	case FM_COPY_DONE:
		cm->wake_ns = now + FM_COPY_POLL_MS * UINT64_C(1000000);
		break;
	default: /* STALE: the agent hears of the new grant soon */
		cm->wake_ns = now + CP_BACKOFF_NS;
		break;
	}
	publish(cm);
}

static void claim_start(struct fm_engine *e, struct en_thread *et, struct en_cmap *cm,
			uint64_t map_id, uint32_t max)
{
	int rc;

	cm->claim = (struct ag_op){ .kind = AG_OP_CLAIM, .map_id = map_id,
				    .generation = cm->gen, .done_batch = cm->ended_id,
				    .done_next = cm->ended_id ? cm->ended_next : 0,
				    .max_grains = max, .cb = claim_done, .ctx = cm };
	cm->claiming = true;
	rc = ag_op_start(e->a, et->th, &cm->claim);
	if (rc) {
		cm->claiming = false;
		ADD(cm, errors, 1);
		cm->wake_ns = en_now_ns() + CP_BACKOFF_NS;
	}
}

/* ------------------------------------------------------------- pieces */

static void piece_done(struct fm_engine_io *io, int status)
{
	struct en_cmap *cm = io->ctx;
	uint64_t now = en_now_ns(), bytes, n = cm->io_last - cm->io_first + 1;

	cm->piece = false;
	if (status) {
		/* the batch ends here; what is left goes back with the claim */
		ADD(cm, errors, 1);
		batch_end(cm);
		cm->wake_ns = now + CP_BACKOFF_NS;
		return;
	}
	bytes = (uint64_t)io->st.copies << cm->shift;
	ADD(cm, pieces, 1);
	ADD(cm, copied, io->st.copies);
	/* a retried attempt copies again what its failed one copied */
	ADD(cm, skipped, io->st.copies < n ? n - io->st.copies : 0);
	ADD(cm, bytes, bytes);
	cm->next = cm->io_last + 1;
	/* the rate: what was copied is paid for from when the piece started
	 * (skipped grains cost a lock, not a copy).  Not from now: a piece
	 * that took W ns would then cost W + B / rate, and a copier whose
	 * pieces take time (an emulated RDMA device: ~70 ms a piece) would
	 * never reach its rate.  From its start, the copy time is part of what
	 * the rate allows, and the next piece waits only for the rest. */
	if (bytes) {
		uint64_t from = cm->pace_ns > cm->io_start_ns ? cm->pace_ns : cm->io_start_ns;

		cm->pace_ns = from + fm_copy_ns(cm->rate, bytes);
	}
	publish(cm);
}

static void piece_start(struct fm_engine *e, struct en_thread *et, struct en_cmap *cm,
			const struct en_map *m)
{
	uint64_t last = cm->next + e->cp.cfg.piece_grains - 1;
	struct en_req *q;

	if (last > cm->last)
		last = cm->last;
	cm->io = (struct fm_engine_io){ .map_id = m->map_id, .offset = cm->next << cm->shift,
					.length = (last - cm->next + 1) << cm->shift,
					.done = piece_done, .ctx = cm };
	if (cm->io.offset + cm->io.length > m->tgt->size)
		cm->io.length = m->tgt->size - cm->io.offset; /* a partial last grain */
	cm->io_first = cm->next;
	cm->io_last = last;
	cm->io_start_ns = en_now_ns();
	if (en_req_new_copy(et, &cm->io, m, &cm->c, cm->gen, cm->next, last, &q)) {
		ADD(cm, errors, 1);
		cm->wake_ns = en_now_ns() + CP_BACKOFF_NS;
		return;
	}
	cm->piece = true;
	EN_COUNT(&cm->c, ios, 1);
	/* it completes from en_thread_poll only, never from here */
	(void)en_req_step(q);
}

/* ------------------------------------------------------------ the loop */

/* one step for mapping i (see the top of the file) */
static void map_step(struct fm_engine *e, struct en_thread *et, unsigned i, uint64_t now)
{
	const struct en_map *m = &e->maps[i];
	struct en_cmap *cm = &e->cp.maps[i];
	struct fm_agent_map am;

	if (cm->claiming || cm->piece)
		return;
	if (fm_agent_map_get(e->a, m->map_id, &am))
		return;
	if (am.state != FM_MAP_COPYING) {
		if (cm->have || cm->ended_id)
			batch_drop(cm);
		return;
	}
	if (am.generation != cm->gen) {
		batch_drop(cm);
		cm->gen = am.generation;
		cm->wake_ns = cm->pace_ns = 0;
		publish(cm);
	}
	cm->shift = am.grain_shift;
	if (!am.granted || now < cm->wake_ns)
		return;
	if (!cm->have || cm->next > cm->last) {
		batch_end(cm);
		claim_start(e, et, cm, m->map_id, e->cp.cfg.batch_grains);
		return;
	}
	if (now < cm->pace_ns)
		return;
	piece_start(e, et, cm, m);
}

/* after a stop: the batches' rest back to the owner, one claim at a time */
static void give_back(struct fm_engine *e, struct en_thread *et, unsigned n)
{
	for (unsigned i = 0; i < n; i++) {
		struct en_cmap *cm = &e->cp.maps[i];

		batch_end(cm);
		if (!cm->ended_id || cm->ended_next > cm->last)
			continue;
		cm->claim = (struct ag_op){ .kind = AG_OP_CLAIM, .map_id = e->maps[i].map_id,
					    .generation = cm->gen, .done_batch = cm->ended_id,
					    .done_next = cm->ended_next, .max_grains = 0 };
		/* best effort: without a session the owner has taken it back */
		(void)ag_op_run(e->a, et->th, &cm->claim);
		cm->ended_id = cm->ended_next = 0;
	}
}

static void *copier_main(void *arg)
{
	struct fm_engine *e = arg;
	struct en_thread *et = NULL;
	sigset_t all;

	/* signals go to the engine's own threads */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, NULL);
	if (en_thread_get(e, &et))
		return NULL;
	atomic_store(&e->cp.et, et);
	for (;;) {
		unsigned n = atomic_load_explicit(&e->nmaps, memory_order_acquire);
		bool stopping = en_copy_stopping(e), busy = false;
		uint64_t now = en_now_ns(), next = now + CP_SLEEP_MAX_MS * UINT64_C(1000000);
		struct epoll_event ev[4];
		uint64_t cnt;
		int to;

		int moved;

		(void)!read(et->th->efd, &cnt, sizeof(cnt));
		moved = en_thread_poll(e, et) + ag_progress(e->a, et->th);
		for (unsigned i = 0; i < n; i++) {
			struct en_cmap *cm = &e->cp.maps[i];

			if (!stopping)
				map_step(e, et, i, now);
			busy = busy || cm->claiming || cm->piece;
			if (cm->wake_ns > now && cm->wake_ns < next)
				next = cm->wake_ns;
			if (cm->have && cm->pace_ns > now && cm->pace_ns < next)
				next = cm->pace_ns;
		}
		if (stopping && !busy)
			break;
		if (moved || atomic_load_explicit(&et->mdone, memory_order_relaxed))
			continue; /* callbacks ran: step again before sleeping */
		to = en_thread_timeout(e, et);
		{
			int k = (int)((next - now + 999999) / 1000000);

			if (to < 0 || k < to)
				to = k;
		}
		if (to > 0)
			(void)epoll_wait(et->epfd, ev, 4, to);
	}
	give_back(e, et, atomic_load_explicit(&e->nmaps, memory_order_acquire));
	atomic_store(&e->cp.et, NULL);
	fm_agent_thread_exit(e->a);
	en_thread_put(e, et);
	return NULL;
}

/* ------------------------------------------------------------- public */

int fm_engine_copy_start(struct fm_engine *e, const struct fm_engine_copy_cfg *cfg)
{
	struct fm_engine_copy_cfg c = cfg ? *cfg : (struct fm_engine_copy_cfg){ 0 };
	int rc;

	if (!e)
		return fm_err(-EINVAL, "engine: NULL");
	if (!c.batch_grains)
		c.batch_grains = 256;
	if (!c.piece_grains)
		c.piece_grains = 8;
	if (c.batch_grains > FM_COPY_BATCH_MAX || c.piece_grains > 256)
		return fm_err(-EINVAL, "engine: copy batches of %u grains (1..%u), pieces of %u "
			      "(1..256)", c.batch_grains, FM_COPY_BATCH_MAX, c.piece_grains);
	if (atomic_load(&e->cp.running))
		return fm_err(-EALREADY, "engine: the background copy runs already");
	if (!atomic_load(&e->cp.maps)) {
		struct en_cmap *v = calloc(EN_MAX_MAPS, sizeof(*v));

		if (!v)
			return fm_err(-ENOMEM, "engine: background copy");
		atomic_store_explicit(&e->cp.maps, v, memory_order_release);
	}
	for (unsigned i = 0; i < EN_MAX_MAPS; i++) { /* what a stopped copier knew is void */
		struct en_cmap *cm = &e->cp.maps[i];

		cm->have = false;
		cm->ended_id = cm->ended_next = 0;
		cm->gen = 0;
		cm->wake_ns = cm->pace_ns = 0;
		publish(cm);
	}
	e->cp.cfg = c;
	atomic_store(&e->cp.stop, false);
	rc = pthread_create(&e->cp.thread, NULL, copier_main, e);
	if (rc)
		return fm_err(-rc, "engine: the copier thread");
	atomic_store(&e->cp.running, true);
	return 0;
}

int fm_engine_copy_stop(struct fm_engine *e)
{
	struct en_thread *et;
	static const uint64_t one = 1;

	if (!e || !atomic_load(&e->cp.running))
		return -EALREADY;
	atomic_store(&e->cp.stop, true);
	et = atomic_load(&e->cp.et);
	if (et)
		(void)!write(et->th->efd, &one, sizeof(one));
	pthread_join(e->cp.thread, NULL);
	atomic_store(&e->cp.running, false);
	return 0;
}

int fm_engine_copy_stats(struct fm_engine *e, uint64_t map_id, struct fm_engine_copy_stats *st)
{
	const struct en_map *m = e ? en_map_find(e, map_id) : NULL;
	const struct en_cmap *cm, *v;

	if (!m)
		return fm_err(-ENOENT, "engine: map %" PRIu64 " is not attached", map_id);
	memset(st, 0, sizeof(*st));
	st->running = atomic_load(&e->cp.running) && !en_copy_stopping(e);
	v = atomic_load_explicit(&e->cp.maps, memory_order_acquire);
	if (!v)
		return 0;
	cm = &v[m - e->maps];
#define LD(f) atomic_load_explicit(&cm->f, memory_order_relaxed)
	st->claims = LD(claims);
	st->batches = LD(batches);
	st->pieces = LD(pieces);
	st->grains_copied = LD(copied);
	st->grains_skipped = LD(skipped);
	st->bytes = LD(bytes);
	st->errors = LD(errors);
	st->rate = LD(a_rate);
	st->generation = LD(a_gen);
	st->batch_id = LD(a_id);
	st->batch_first = LD(a_first);
	st->batch_last = LD(a_last);
	st->next = LD(a_next);
#undef LD
	return 0;
}
