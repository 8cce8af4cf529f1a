/* worker.c -- flashmeta-bench: an engine thread.
 *
 * A thread of a client process, alive for the whole run (the agent gives
 * each thread its own lane at its first call: made during the warm-up,
 * never inside a measured batch).  Its jobs:
 *
 *   RUN       from the start line t_start until t_end (or --count I/Os):
 *             the next I/O of its stream (workload.c), one at a time,
 *             synchronously: fm_engine_rw on the variant's engine, or
 *             fm_refvol_do on the volume for the volume-only variant.  A
 *             sample is one I/O: one clock read before the call, one
 *             after; its class comes from the I/O's fm_engine_io_stats.
 *             The trigger unit (U_TRIGGER): the same stream, every I/O on
 *             the trigger mapping through the cache engine, hot threads
 *             too, until the coordinator sets io_stop (it re-triggers the
 *             mapping meanwhile); the load, its samples not kept
 *   FLOOR     --floor-ops raw READs, CAS+READ-then-CAS and CASes on its
 *             own floor lane and CAS word; thread 0 also message round
 *             trips on the process's floor endpoint
 *   PRESPLIT  its share of the pre-split: 512-grain windows w with
 *             w mod (N * M) == its global index, each run of chosen
 *             grains one WRITE_TARGET of whole grains through the engine
 *             (WRITE_AND_SPLIT: lock, write, flush, commit)
 *
 * HOT.  Thread 0 of the first --hot clients does not run the stream: the
 * K of them write (WRITE_SOURCE, --io-size bytes) the same fresh grain of
 * the hot mapping at once, then the next one, in lock step through a
 * sense barrier in the run's shared memory.  Every step one of them locks
 * the grain's word, copies and commits; the others find the word taken
 * and queue at the owner (LOCK_REQUEST), or find the grain split.  The
 * barrier's wait is not in any sample.
 */
#include <errno.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "flashmeta/error.h"
#include "harness.h"

#define PRESPLIT_WIN 512u

bool hb_samples_add(struct hb_samples *s, double v)
{
	if (s->n == s->cap) {
		size_t nc = s->cap ? s->cap * 2 : 4096;
		double *n = realloc(s->v, nc * sizeof(*n));

		if (!n)
			return false;
		s->v = n;
		s->cap = nc;
	}
	s->v[s->n++] = v;
	return true;
}

static void werr(struct hb_worker *w, int rc, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void werr(struct hb_worker *w, int rc, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (w->rc)
		return;
	w->rc = rc;
	va_start(ap, fmt);
	n = vsnprintf(w->err, sizeof(w->err), fmt, ap);
	va_end(ap);
	if (n >= 0 && (size_t)n < sizeof(w->err))
		snprintf(w->err + n, sizeof(w->err) - (size_t)n, ": %d (%s)", rc, fm_errormsg());
}

static void wait_until(uint64_t t)
{
	struct timespec ts = { .tv_sec = (time_t)(t / 1000000000u),
			       .tv_nsec = (long)(t % 1000000000u) };

	clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
}

void hb_worker_reset(struct hb_worker *w)
{
	for (unsigned c = 0; c < SE_N; c++)
		w->s[c].n = 0;
	for (unsigned f = 0; f < F_N; f++)
		w->f[f].n = 0;
	w->t_first = w->t_last = 0;
	w->ios = w->decisions = w->errors = w->restarts = w->hot_ios = 0;
	w->rc = 0;
	w->err[0] = '\0';
}

/* -------------------------------------------------------------- one I/O */

/* What the I/O this thread drives did, from the trace hook (it runs
 * inline on the thread driving the I/O: fm_engine_rw's).  Every I/O pays
 * for the hook (an indirect call per step: ATTEMPT, each mover request,
 * ATTEMPT_END), a few ns against the microseconds of the cheapest path;
 * the clock is read only at a lock, a commit and its answer. */
static __thread unsigned tl_redirects;
static __thread uint64_t tl_locked, tl_commit, tl_committed; /* ns; 0: none */

void hb_engine_trace(void *ctx, struct fm_engine_io *io, const struct fm_engine_event *ev)
{
	(void)ctx;
	(void)io;
	switch (ev->kind) {
	case FM_ENGINE_EV_MOVER:
		if (ev->step == FM_ENGINE_STEP_REDIRECT || ev->step == FM_ENGINE_STEP_RETARGET)
			tl_redirects++;
		break;
	case FM_ENGINE_EV_LOCKED: /* the first lock of the I/O */
		if (!tl_locked)
			tl_locked = fm_now_ns();
		break;
	case FM_ENGINE_EV_COMMIT: /* the first SPLIT_COMMIT sent */
		if (!tl_commit)
			tl_commit = fm_now_ns();
		break;
	case FM_ENGINE_EV_COMMITTED: /* the last answer */
		tl_committed = fm_now_ns();
		break;
	default:
		break;
	}
}

/* the parts of a split or lost-race I/O that started at t0 */
static bool parts_add(struct hb_worker *w, unsigned c, uint64_t t0)
{
	unsigned hot = c >= C_BASE_N ? PT_BASE_N : 0;
	bool ok = true;

	if (c % C_BASE_N == C_SPLIT) {
		if (tl_locked > t0)
			ok = hb_samples_add(&w->s[C_N + hot + PT_SPLIT_LOCK],
					    (double)(tl_locked - t0) / 1000.0);
		if (ok && tl_commit && tl_committed > tl_commit)
			ok = hb_samples_add(&w->s[C_N + hot + PT_SPLIT_COMMIT],
					    (double)(tl_committed - tl_commit) / 1000.0);
	} else if (c % C_BASE_N == C_LOCKRACE && tl_locked > t0) {
		ok = hb_samples_add(&w->s[C_N + hot + PT_RACE_LOCK],
				    (double)(tl_locked - t0) / 1000.0);
	}
	return ok;
}

static uint64_t grains_of(enum fm_io_op op, uint64_t off, uint64_t len)
{
	unsigned shift = (unsigned)__builtin_ctzll(opt.grain_size);

	if (op == FM_IO_READ_SOURCE)
		return 0; /* no decision: a source read is DIRECT whatever is split */
	return ((off + len - 1) >> shift) - (off >> shift) + 1;
}

static unsigned classify(unsigned v, enum fm_io_op op, const struct fm_engine_io_stats *st,
			 unsigned redirects)
{
	if (v == V_VOLUME)
		return C_VOL;
	if (op == FM_IO_READ_SOURCE)
		return C_SRCREAD;
	if (st->commits || st->copies)
		return C_SPLIT;
	if (st->locks)
		return C_LOCKRACE;
	if (redirects)
		return C_REDIRECT;
	if (st->misses)
		return C_MISS;
	return C_HIT;
}

static int do_io(struct hb_worker *w, unsigned v, enum fm_io_op op, unsigned map, uint64_t off,
		 struct fm_engine_io_stats *st)
{
	struct hb_proc *p = w->p;

	if (v == U_TRIGGER)
		return fm_engine_rw(p->e[V_CACHE], hb_trig_id(), op, off, opt.io_size, w->buf, st);
	if (v == V_VOLUME) {
		bool src = op == FM_IO_READ_SOURCE || op == FM_IO_WRITE_SOURCE;
		bool rd = op == FM_IO_READ_SOURCE || op == FM_IO_READ_TARGET;
		struct fm_mover_req r = { .op = rd ? FM_MOVER_READ : FM_MOVER_WRITE,
					  .offset = off, .length = opt.io_size, .buf = w->buf };

		memset(st, 0, sizeof(*st));
		st->attempts = 1;
		return fm_refvol_do(src ? p->src[map] : p->tgt[map], &r);
	}
	return fm_engine_rw(p->e[v], hb_map_id(v, map), op, off, opt.io_size, w->buf, st);
}

/* one timed I/O, its sample and counters; false: it failed (w->rc set) */
static bool timed_io(struct hb_worker *w, unsigned v, enum fm_io_op op, unsigned map,
		     uint64_t off, bool hot)
{
	struct fm_engine_io_stats st;
	uint64_t t0, t1;
	unsigned c;
	int rc;

	tl_redirects = 0;
	tl_locked = tl_commit = tl_committed = 0;
	t0 = fm_now_ns();
	rc = do_io(w, v, op, map, off, &st);
	t1 = fm_now_ns();
	if (rc) {
		w->errors++;
		werr(w, rc, "%s %s of mapping index %u at %llu",
		     v == U_TRIGGER ? "trigger" : hb_variant_key[v], fm_io_op_name(op), map,
		     (unsigned long long)off);
		return false;
	}
	if (!w->t_first)
		w->t_first = t0;
	c = classify(v, op, &st, tl_redirects) + (hot ? C_BASE_N : 0);
	if (!hb_samples_add(&w->s[c], (double)(t1 - t0) / 1000.0) || !parts_add(w, c, t0)) {
		werr(w, -ENOMEM, "samples");
		return false;
	}
	w->ios++;
	w->decisions += v == V_VOLUME ? 0 : grains_of(op, off, opt.io_size);
	w->restarts += st.attempts > 1 ? st.attempts - 1 : 0;
	w->hot_ios += hot;
	return true;
}

/* ------------------------------------------------------------------ hot */

/* the K hot threads meet; the last to arrive decides whether the batch is
 * over.  true: run one more step */
static bool hot_barrier(struct hb_worker *w, const struct hb_cmd *j, uint64_t steps)
{
	struct hb_shared *sh = w->p->sh;
	uint64_t g = atomic_load_explicit(&sh->gen, memory_order_acquire);

	if (atomic_fetch_add_explicit(&sh->arrive, 1, memory_order_acq_rel) + 1 == opt.hot) {
		bool stop = j->count ? steps >= j->count : fm_now_ns() >= j->t_end;

		atomic_store_explicit(&sh->arrive, 0, memory_order_relaxed);
		atomic_store_explicit(&sh->stop, stop, memory_order_relaxed);
		atomic_store_explicit(&sh->gen, g + 1, memory_order_release);
	} else {
		uint64_t deadline = fm_now_ns() + 10000000000ull;
		unsigned spins = 0;

		while (atomic_load_explicit(&sh->gen, memory_order_acquire) == g) {
			if (atomic_load_explicit(&sh->broken, memory_order_relaxed)) {
				werr(w, -ECANCELED, "another hot thread failed");
				return false;
			}
			if (++spins > 64) /* two cores shared by many threads: yield */
				sched_yield();
			if ((spins & 1023) == 0 && fm_now_ns() > deadline) {
				atomic_store(&sh->broken, true);
				werr(w, -ETIMEDOUT, "hot lock step: nobody came for 10 s");
				return false;
			}
		}
	}
	return !atomic_load_explicit(&sh->stop, memory_order_relaxed);
}

static void hot_run(struct hb_worker *w, const struct hb_cmd *j)
{
	unsigned v = j->unit, set = v == V_VOLUME ? HB_SETS : v;
	uint64_t grains = w->p->grains, last = (opt.volume_size - opt.io_size) / opt.grain_size;
	uint64_t steps = 0, *next = &w->hot_next[set];

	wait_until(j->t_start);
	while (hot_barrier(w, j, steps)) {
		uint64_t g = (*next)++ % grains;

		if (g > last)
			g = last;
		if (!timed_io(w, v, FM_IO_WRITE_SOURCE, opt.mappings, g * opt.grain_size, true)) {
			atomic_store(&w->p->sh->broken, true);
			break;
		}
		steps++;
	}
	w->t_last = fm_now_ns();
}

/* ------------------------------------------------------------------ jobs */

void hb_worker_run(struct hb_worker *w)
{
	const struct hb_cmd *j = &w->p->job;
	unsigned v = j->unit;
	struct hb_gen g;
	struct hb_io io;

	if (w->hot && v != U_TRIGGER) {
		hot_run(w, j);
		return;
	}
	hb_gen_init(&g, &w->p->zipf, j->seed, w->global, opt.clients * opt.threads);
	wait_until(j->t_start);
	if (v == U_TRIGGER) { /* until the coordinator's triggers are done */
		while (!atomic_load_explicit(&w->p->sh->io_stop, memory_order_relaxed)) {
			hb_gen_next(&g, &io);
			if (!timed_io(w, v, io.op, io.map, io.offset, false))
				break;
		}
		w->t_last = fm_now_ns();
		return;
	}
	for (uint64_t i = 0; !j->count || i < j->count; i++) {
		hb_gen_next(&g, &io);
		if (!timed_io(w, v, io.op, io.map, io.offset, false))
			break;
		if (!j->count && fm_now_ns() >= j->t_end)
			break;
	}
	w->t_last = fm_now_ns();
}

void hb_worker_floor(struct hb_worker *w)
{
	const struct hb_cmd *j = &w->p->job;
	unsigned n = opt.floor_ops;
	double ns;
	int rc = 0;

	if (!w->fl_open) {
		if ((rc = fm_floor_lane_open(&w->p->floor, w->global, &w->fl))) {
			werr(w, rc, "floor lane");
			return;
		}
		w->fl_open = true;
	}
	wait_until(j->t_start);
	w->t_first = fm_now_ns();
	for (unsigned i = 0; i < n && !rc; i++)
		if (!(rc = fm_floor_read64(&w->fl, &ns)) &&
		    !hb_samples_add(&w->f[F_READ], ns / 1e3))
			rc = -ENOMEM;
	for (unsigned i = 0; i < n && !rc; i++)
		if (!(rc = fm_floor_casread(&w->fl, &ns)) &&
		    !hb_samples_add(&w->f[F_CASRD], ns / 1e3))
			rc = -ENOMEM;
	for (unsigned i = 0; i < n && !rc; i++)
		if (!(rc = fm_floor_casread_cas(&w->fl, &ns)) &&
		    !hb_samples_add(&w->f[F_CASRD_CAS], ns / 1e3))
			rc = -ENOMEM;
	for (unsigned i = 0; i < n && !rc; i++)
		if (!(rc = fm_floor_cas(&w->fl, &ns)) && !hb_samples_add(&w->f[F_CAS], ns / 1e3))
			rc = -ENOMEM;
	/* the endpoint has one owning thread: thread 0's */
	for (unsigned i = 0; w->index == 0 && i < (n + 9) / 10 && !rc; i++)
		if (!(rc = fm_floor_msg_rtt(&w->p->floor, &ns)) &&
		    !hb_samples_add(&w->f[F_MSG], ns / 1e3))
			rc = -ENOMEM;
	if (rc)
		werr(w, rc, "floor operation");
	w->t_last = fm_now_ns();
}

/* the chosen grains of [first, end) of mapping k of set s: every run one
 * whole-grain target write (at most HB_PRESPLIT_IO bytes).  0 or an error */
static int presplit_window(struct hb_worker *w, unsigned s, unsigned k, uint64_t first,
			   uint64_t end)
{
	uint64_t gs = opt.grain_size, grains = w->p->grains;
	uint64_t chunk = HB_PRESPLIT_IO / gs ? HB_PRESPLIT_IO / gs : 1;
	double pct = w->p->job.pct;

	for (uint64_t g = first; g < end;) {
		uint64_t e = g;
		int rc;

		if (!hb_presplit(k, g, grains, pct)) {
			g++;
			continue;
		}
		while (e + 1 < end && e + 1 - g < chunk && hb_presplit(k, e + 1, grains, pct))
			e++;
		rc = fm_engine_rw(w->p->e[s], hb_map_id(s, k), FM_IO_WRITE_TARGET, g * gs,
				  (e - g + 1) * gs, w->pbuf, NULL);
		if (rc) {
			werr(w, rc, "pre-split of grains %llu..%llu, set %u", (unsigned long long)g,
			     (unsigned long long)e, s);
			return rc;
		}
		g = e + 1;
	}
	return 0;
}

void hb_worker_presplit(struct hb_worker *w)
{
	uint64_t grains = w->p->grains;
	uint64_t stride = (uint64_t)opt.clients * opt.threads * PRESPLIT_WIN;

	for (unsigned s = 0; s < HB_SETS; s++)
		for (unsigned k = 0; k < opt.mappings; k++)
			for (uint64_t w0 = (uint64_t)w->global * PRESPLIT_WIN; w0 < grains;
			     w0 += stride) {
				uint64_t end = w0 + PRESPLIT_WIN;

				if (presplit_window(w, s, k, w0, end < grains ? end : grains))
					return;
			}
}

void *hb_worker_main(void *arg)
{
	struct hb_worker *w = arg;
	struct hb_proc *p = w->p;
	uint64_t seen = 0;

	pthread_mutex_lock(&p->mu);
	for (;;) {
		uint32_t op;

		while (p->go_gen == seen && !p->quit)
			pthread_cond_wait(&p->cv, &p->mu);
		if (p->quit)
			break;
		seen = p->go_gen;
		op = p->job.op;
		pthread_mutex_unlock(&p->mu);
		hb_worker_reset(w);
		if (op == CMD_RUN)
			hb_worker_run(w);
		else if (op == CMD_FLOOR)
			hb_worker_floor(w);
		else if (op == CMD_PRESPLIT)
			hb_worker_presplit(w);
		pthread_mutex_lock(&p->mu);
		p->done_count++;
		pthread_cond_broadcast(&p->cv);
	}
	pthread_mutex_unlock(&p->mu);
	if (w->fl_open)
		fm_floor_lane_close(&w->fl);
	for (unsigned s = 0; s < HB_SETS; s++)
		if (p->e[s])
			(void)fm_engine_thread_exit(p->e[s]);
	for (unsigned c = 0; c < SE_N; c++)
		free(w->s[c].v);
	for (unsigned f = 0; f < F_N; f++)
		free(w->f[f].v);
	return NULL;
}
