/* engines.c -- engine threads of one agent deciding cache hits, and the
 * floors of that decision, batch-timed.
 *
 * A pool of threads made once (each is an engine thread of the agent: its
 * first call registers its reader cell, so a warm-up round must come
 * first); the main thread hands out a job (kind, threads, ops) under a
 * mutex and waits until the participating threads finished it.  The
 * participants meet at a start line (spinning, yielding the CPU to those
 * not yet there) so a wake-up that comes late does not stagger the
 * batch; then each reads the clock once before and once after its `ops`
 * operations: its sample is batch time / ops.  The aggregate rate is all
 * threads' operations over first start to last end: with more threads
 * than CPUs, threads waiting for a CPU count against it, as they should.
 *
 * Each operation is on one of the BA_NHIT cached grains in turn, thread i
 * starting at a different one; an empty asm keeps every iteration one
 * decision (no vectorised or hoisted floor).
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench_agent.h"
#include "flashmeta/error.h"

struct worker {
	struct engines *e;
	unsigned idx;
	uint64_t t0, t1;
};

struct engines {
	const struct hitset *hs;
	atomic_uint ready;     /* participants at the start line of the job */
	unsigned n;
	pthread_t th[BA_MAX_THREADS];
	struct worker w[BA_MAX_THREADS];
	pthread_mutex_t mu;
	pthread_cond_t go, done_cv;
	uint64_t gen;          /* under mu: job number */
	unsigned done;         /* under mu: threads done with the job */
	bool stop;
	enum hit_kind kind;    /* the job, under mu */
	unsigned threads;
	uint64_t ops;
};

#define KEEP(x) __asm__ volatile("" : "+r"(x))

static void run_kind(const struct hitset *hs, enum hit_kind kind, uint64_t ops, unsigned start)
{
	struct fm_agent *a = hs->a;
	struct fm_cache *c = fm_agent_cache(a);
	const uint64_t sh = hs->grain_shift;
	struct fm_extent ext[2];
	struct fm_grain_range lk[2];
	struct fm_plan plan;
	struct fm_agent_io io;
	uint64_t sink = 0, run = 0;
	int rc;

	switch (kind) {
	case HIT_PATH:
		for (uint64_t i = 0; i < ops; i++) {
			uint64_t g = hs->grains[(i + start) % BA_NHIT];

			rc = fm_agent_io_begin(a, BA_MAP, &io);
			if (rc)
				ba_die(rc, "fm_agent_io_begin");
			fm_plan_setup(&plan, ext, 2, lk, 2);
			rc = fm_agent_plan(a, &io, FM_IO_READ_TARGET, g << sh, 1ull << sh, &plan);
			fm_agent_io_end(a, &io);
			if (rc)
				ba_die(rc, "fm_agent_plan");
			sink += ext[0].kind;
			KEEP(sink);
		}
		break;
	case HIT_LOOKUP:
		for (uint64_t i = 0; i < ops; i++) {
			uint64_t g = hs->grains[(i + start) % BA_NHIT];

			sink += fm_cache_lookup(c, BA_MAP, g, &run) + run;
			KEEP(sink);
		}
		break;
	case HIT_BITMAP:
		for (uint64_t i = 0; i < ops; i++) {
			uint64_t g = hs->grains[(i + start) % BA_NHIT];

			sink += hs->bits[g / 64] >> (g % 64) & 1;
			KEEP(sink);
		}
		break;
	case HIT_BRACKET:
		for (uint64_t i = 0; i < ops; i++) {
			rc = fm_agent_io_begin(a, BA_MAP, &io);
			if (rc)
				ba_die(rc, "fm_agent_io_begin");
			fm_agent_io_end(a, &io);
			sink += io.map.grain_count;
			KEEP(sink);
		}
		break;
	case HIT_PLAN:
		rc = fm_agent_io_begin(a, BA_MAP, &io);
		if (rc)
			ba_die(rc, "fm_agent_io_begin");
		for (uint64_t i = 0; i < ops; i++) {
			uint64_t g = hs->grains[(i + start) % BA_NHIT];

			fm_plan_setup(&plan, ext, 2, lk, 2);
			rc = fm_agent_plan(a, &io, FM_IO_READ_TARGET, g << sh, 1ull << sh, &plan);
			if (rc)
				ba_die(rc, "fm_agent_plan");
			sink += ext[0].kind;
			KEEP(sink);
		}
		fm_agent_io_end(a, &io);
		break;
	default:
		break;
	}
	KEEP(sink);
}

uint64_t hit_loop(const struct hitset *hs, enum hit_kind kind, uint64_t ops)
{
	uint64_t t0 = fm_now_ns();

	run_kind(hs, kind, ops, 0);
	return fm_now_ns() - t0;
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct engines *e = w->e;
	uint64_t seen = 0;

	pthread_mutex_lock(&e->mu);
	for (;;) {
		enum hit_kind kind;
		uint64_t ops, t0, t1;
		unsigned threads;

		while (e->gen == seen && !e->stop)
			pthread_cond_wait(&e->go, &e->mu);
		if (e->stop)
			break;
		seen = e->gen;
		if (w->idx >= e->threads)
			continue;
		kind = e->kind;
		ops = e->ops;
		threads = e->threads;
		pthread_mutex_unlock(&e->mu);
		atomic_fetch_add(&e->ready, 1);
		while (atomic_load(&e->ready) < threads)
			sched_yield();
		t0 = fm_now_ns();
		run_kind(e->hs, kind, ops, w->idx * 17);
		t1 = fm_now_ns();
		pthread_mutex_lock(&e->mu);
		w->t0 = t0;
		w->t1 = t1;
		if (++e->done == e->threads)
			pthread_cond_signal(&e->done_cv);
	}
	pthread_mutex_unlock(&e->mu);
	/* this thread's lane and buffers go now, not at fm_agent_delete */
	fm_agent_thread_exit(e->hs->a);
	return NULL;
}

void engines_start(struct engines **out, const struct hitset *hs, unsigned nthreads, bool pin)
{
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	struct engines *e = calloc(1, sizeof(*e));

	if (!e || nthreads > BA_MAX_THREADS)
		ba_die(-ENOMEM, "engines");
	e->hs = hs;
	pthread_mutex_init(&e->mu, NULL);
	pthread_cond_init(&e->go, NULL);
	pthread_cond_init(&e->done_cv, NULL);
	for (unsigned i = 0; i < nthreads; i++) {
		e->w[i] = (struct worker){ .e = e, .idx = i };
		if (pthread_create(&e->th[i], NULL, worker_main, &e->w[i]))
			ba_die(-EAGAIN, "engine thread");
		if (pin && ncpu > 0) {
			cpu_set_t set;
			int rc;

			CPU_ZERO(&set);
			CPU_SET((int)(i % (unsigned)ncpu), &set);
			rc = pthread_setaffinity_np(e->th[i], sizeof(set), &set);
			if (rc)
				ba_die(-rc, "pin engine thread %u", i);
		}
		e->n++;
	}
	*out = e;
}

double engines_run(struct engines *e, enum hit_kind kind, unsigned threads, uint64_t ops,
		   double *per)
{
	uint64_t t0 = UINT64_MAX, t1 = 0;

	if (threads > e->n)
		ba_die(-EINVAL, "engines: %u threads of %u", threads, e->n);
	pthread_mutex_lock(&e->mu);
	e->kind = kind;
	e->threads = threads;
	e->ops = ops;
	e->done = 0;
	atomic_store(&e->ready, 0);
	e->gen++;
	pthread_cond_broadcast(&e->go);
	while (e->done < threads)
		pthread_cond_wait(&e->done_cv, &e->mu);
	for (unsigned i = 0; i < threads; i++) {
		per[i] = (double)(e->w[i].t1 - e->w[i].t0) / (double)ops;
		if (e->w[i].t0 < t0)
			t0 = e->w[i].t0;
		if (e->w[i].t1 > t1)
			t1 = e->w[i].t1;
	}
	pthread_mutex_unlock(&e->mu);
	return (double)threads * (double)ops / ((double)(t1 - t0) / 1e9);
}

void engines_stop(struct engines **ep)
{
	struct engines *e = *ep;

	if (!e)
		return;
	pthread_mutex_lock(&e->mu);
	e->stop = true;
	pthread_cond_broadcast(&e->go);
	pthread_mutex_unlock(&e->mu);
	for (unsigned i = 0; i < e->n; i++)
		pthread_join(e->th[i], NULL);
	pthread_cond_destroy(&e->go);
	pthread_cond_destroy(&e->done_cv);
	pthread_mutex_destroy(&e->mu);
	free(e);
	*ep = NULL;
}
