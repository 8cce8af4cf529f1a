/* engine.c -- the I/O engine object: volumes, attachments, per-thread
 * contexts, mover completions, the two forms (polled, synchronous) and
 * the counters.  What one I/O does is eio.c. */
#include <errno.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#include "engine_priv.h"
#include "flashmeta/error.h"

uint64_t en_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ------------------------------------------------------------- object */

/*
 * A thread that exits without fm_engine_thread_exit: its context is freed
 * with it, as fm_engine_thread_exit would free it, unless I/Os of it are
 * still in flight (then fm_engine_delete frees it, as before).  The
 * agent's key does the same for the agent's context of the thread (its
 * lane; agent lane.c, ag_thread_dtor, which also says how a destructor
 * and a delete stay apart: the same way here, with this file's live
 * list).  The two destructors may run in either order: this one never
 * looks at et->th.
 */
static pthread_mutex_t live_lock = PTHREAD_MUTEX_INITIALIZER;
static struct fm_engine *live; /* e->live_next; under live_lock */

static void en_thread_dtor(void *p)
{
	pthread_mutex_lock(&live_lock);
	for (struct fm_engine *e = live; e; e = e->live_next) {
		struct en_thread *et;

		pthread_mutex_lock(&e->lock);
		for (et = e->threads; et && et != p; et = et->next)
			;
		pthread_mutex_unlock(&e->lock);
		if (!et)
			continue;
		if (!et->reqs)
			en_thread_put(e, et);
		break;
	}
	pthread_mutex_unlock(&live_lock);
}

int fm_engine_new(const struct fm_engine_cfg *cfg, struct fm_engine **out)
{
	struct fm_engine *e;
	int rc;

	if (!cfg || !cfg->agent || !out)
		return fm_err(-EINVAL, "engine: an agent is required");
	e = calloc(1, sizeof(*e));
	if (!e)
		return fm_err(-ENOMEM, "engine");
	e->cfg = *cfg;
	e->a = cfg->agent;
	if (!e->cfg.retry_ms)
		e->cfg.retry_ms = 10000;
	if (!e->cfg.max_io_bytes)
		e->cfg.max_io_bytes = 16u << 20;
	rc = pthread_key_create(&e->key, en_thread_dtor);
	if (rc) {
		free(e);
		return fm_err(-rc, "engine: pthread_key_create");
	}
	pthread_mutex_init(&e->lock, NULL);
	pthread_mutex_lock(&live_lock);
	e->live_next = live;
	live = e;
	pthread_mutex_unlock(&live_lock);
	*out = e;
	return 0;
}

void fm_engine_delete(struct fm_engine **ep)
{
	struct fm_engine *e = ep ? *ep : NULL;

	if (!e)
		return;
	(void)fm_engine_copy_stop(e);
	/* first: no thread's exit frees a context of ours from now on */
	pthread_mutex_lock(&live_lock);
	for (struct fm_engine **pp = &live; *pp; pp = &(*pp)->live_next)
		if (*pp == e) {
			*pp = e->live_next;
			break;
		}
	pthread_mutex_unlock(&live_lock);
	free(e->cp.maps);
	pthread_key_delete(e->key);
	while (e->threads) {
		struct en_thread *et = e->threads;

		e->threads = et->next;
		while (et->reqs) { /* misuse: I/Os in flight; free what we can */
			struct en_req *q = et->reqs;

			et->reqs = NULL;
			(void)q;
		}
		close(et->epfd);
		pthread_mutex_destroy(&et->mlock);
		free(et);
	}
	while (e->vols) {
		struct fm_volume *v = e->vols;

		e->vols = v->next;
		free(v);
	}
	pthread_mutex_destroy(&e->lock);
	free(e);
	*ep = NULL;
}

int fm_engine_volume_add(struct fm_engine *e, const struct fm_mover_ops *ops, void *ctx,
			 uint64_t size, struct fm_volume **out)
{
	struct fm_volume *v;

	if (!e || !ops || !ops->submit || !out || !size)
		return fm_err(-EINVAL, "engine: a volume needs a submit mover and a size");
	v = calloc(1, sizeof(*v));
	if (!v)
		return fm_err(-ENOMEM, "engine: volume");
	v->ops = *ops;
	v->ctx = ctx;
	v->size = size;
	pthread_mutex_lock(&e->lock);
	v->next = e->vols;
	e->vols = v;
	pthread_mutex_unlock(&e->lock);
	*out = v;
	return 0;
}

const struct en_map *en_map_find(struct fm_engine *e, uint64_t map_id)
{
	unsigned n = atomic_load_explicit(&e->nmaps, memory_order_acquire);

	for (unsigned i = 0; i < n; i++)
		if (e->maps[i].map_id == map_id)
			return &e->maps[i];
	return NULL;
}

int fm_engine_attach(struct fm_engine *e, uint64_t map_id, struct fm_volume *src,
		     struct fm_volume *tgt)
{
	unsigned n;
	int rc = 0;

	if (!e || !src || !tgt || src == tgt)
		return fm_err(-EINVAL, "engine: a mapping needs two different volumes");
	if (src->size != tgt->size)
		return fm_err(-EINVAL, "engine: source (%" PRIu64 " bytes) and target (%" PRIu64
			      " bytes) differ in size", src->size, tgt->size);
	pthread_mutex_lock(&e->lock);
	n = atomic_load(&e->nmaps);
	if (en_map_find(e, map_id))
		rc = fm_err(-EEXIST, "engine: map %" PRIu64 " is attached already", map_id);
	else if (n == EN_MAX_MAPS)
		rc = fm_err(-ENOMEM, "engine: %u mappings attached already", EN_MAX_MAPS);
	else {
		e->maps[n] = (struct en_map){ .map_id = map_id, .src = src, .tgt = tgt,
					      .c = &e->mc[n] };
		atomic_store_explicit(&e->nmaps, n + 1, memory_order_release);
	}
	pthread_mutex_unlock(&e->lock);
	return rc;
}

/* ------------------------------------------------------ thread contexts */

int fm_engine_thread_exit(struct fm_engine *e)
{
	struct en_thread *et = e ? pthread_getspecific(e->key) : NULL;

	if (!et)
		return 0;
	if (et->reqs)
		return fm_err(-EBUSY, "engine: this thread has I/Os in flight");
	en_thread_put(e, et);
	/* only now: et pointed at the agent's context of this thread */
	fm_agent_thread_exit(e->a);
	return 0;
}

int en_thread_get(struct fm_engine *e, struct en_thread **out)
{
	struct en_thread *et = pthread_getspecific(e->key);
	struct epoll_event ev = { .events = EPOLLIN };
	int rc;

	if (et) {
		*out = et;
		return 0;
	}
	et = calloc(1, sizeof(*et));
	if (!et)
		return fm_err(-ENOMEM, "engine: thread context");
	rc = ag_ctx(e->a, &et->th);
	if (rc) {
		free(et);
		return rc;
	}
	et->e = e;
	et->self = pthread_self();
	et->lane_fd = -1;
	et->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (et->epfd < 0 || epoll_ctl(et->epfd, EPOLL_CTL_ADD, et->th->efd, &ev)) {
		if (et->epfd >= 0)
			close(et->epfd);
		free(et);
		return fm_err(-ENOMEM, "engine: epoll");
	}
	pthread_mutex_init(&et->mlock, NULL);
	pthread_mutex_lock(&e->lock);
	et->next = e->threads;
	e->threads = et;
	pthread_mutex_unlock(&e->lock);
	pthread_setspecific(e->key, et);
	*out = et;
	return 0;
}

/* keep the lane's fd (verbs event mode; a new lane after a new session)
 * in the thread's epoll set */
static void lane_fd_sync(struct en_thread *et)
{
	int fd = et->th->lane ? fm_lane_fd(et->th->lane) : -1;
	struct epoll_event ev = { .events = EPOLLIN };

	if (fd == et->lane_fd)
		return;
	if (et->lane_fd >= 0)
		(void)epoll_ctl(et->epfd, EPOLL_CTL_DEL, et->lane_fd, NULL);
	et->lane_fd = fd >= 0 && epoll_ctl(et->epfd, EPOLL_CTL_ADD, fd, &ev) == 0 ? fd : -1;
}

/* --------------------------------------------------------------- movers */

void fm_mover_done(struct fm_mover_req *r, int status)
{
	struct en_mreq *m = (struct en_mreq *)((char *)r - offsetof(struct en_mreq, r));
	struct en_thread *et = m->et;
	static const uint64_t one = 1;
	bool wake = !pthread_equal(pthread_self(), et->self);

	m->status = status;
	pthread_mutex_lock(&et->mlock);
	m->next_done = atomic_load_explicit(&et->mdone, memory_order_relaxed);
	atomic_store_explicit(&et->mdone, m, memory_order_relaxed);
	pthread_mutex_unlock(&et->mlock);
	if (wake) { /* another thread: the I/O's thread may sleep.  The
		     * flag after the write: a poll that takes the flag reads
		     * the count this write left */
		(void)!write(et->th->efd, &one, sizeof(one));
		atomic_store(&et->woken, true);
	}
}

void en_mover_start(struct en_req *q, struct fm_volume *v, struct en_mreq *m)
{
	int rc;

	EN_COUNT(q->mc, mover_reqs, 1);
	rc = v->ops.submit(v->ctx, &m->r);
	if (rc)
		fm_mover_done(&m->r, rc < 0 ? rc : -EIO);
	(void)q;
}

/* mover completions queued for et, to their I/Os */
static void movers_reap(struct en_thread *et)
{
	struct en_mreq *list;

	pthread_mutex_lock(&et->mlock);
	list = atomic_exchange_explicit(&et->mdone, NULL, memory_order_relaxed);
	pthread_mutex_unlock(&et->mlock);
	while (list) {
		struct en_mreq *m = list;

		list = m->next_done;
		en_req_mover_done(m->q, m);
	}
}

/* ------------------------------------------------------------ the forms */

int fm_engine_submit(struct fm_engine *e, struct fm_engine_io *io)
{
	struct en_thread *et = NULL;
	struct en_req *q = NULL;
	int rc;

	if (!e || !io)
		return fm_err(-EINVAL, "engine: NULL");
	rc = en_thread_get(e, &et);
	if (rc)
		return rc;
	rc = en_req_new(et, io, &q);
	if (rc)
		return rc;
	EN_COUNT(q->mc, ios, 1);
	/* the callback runs from fm_engine_poll only, never from here */
	(void)en_req_step(q);
	return 0;
}

int fm_engine_poll(struct fm_engine *e)
{
	struct en_thread *et = e ? pthread_getspecific(e->key) : NULL;

	return et ? en_thread_poll(e, et) : 0;
}

void en_thread_put(struct fm_engine *e, struct en_thread *et)
{
	pthread_mutex_lock(&e->lock);
	for (struct en_thread **pp = &e->threads; *pp; pp = &(*pp)->next)
		if (*pp == et) {
			*pp = et->next;
			break;
		}
	pthread_mutex_unlock(&e->lock);
	pthread_setspecific(e->key, NULL);
	close(et->epfd);
	pthread_mutex_destroy(&et->mlock);
	free(et);
}

int en_thread_poll(struct fm_engine *e, struct en_thread *et)
{
	int done = 0;

	if (!et->reqs || et->in_poll)
		return 0;
	et->in_poll = true;
	if (atomic_exchange(&et->woken, false)) {
		uint64_t cnt;

		(void)!read(et->th->efd, &cnt, sizeof(cnt));
	}
	for (int round = 0; round < 8; round++) {
		int before = done;

		movers_reap(et);
		(void)ag_progress(e->a, et->th); /* runs op callbacks: eio.c */
		for (struct en_req **pp = &et->reqs; *pp;) {
			struct en_req *q = *pp;

			if (en_req_step(q)) {
				struct fm_engine_io *io = q->io;
				struct en_counters *mc = q->mc;

				*pp = q->next;
				en_req_free(q);
				done++;
				if (io->status)
					EN_COUNT(mc, errors, 1);
				if (io->done)
					io->done(io, io->status);
				continue;
			}
			pp = &q->next;
		}
		if (done == before && !atomic_load_explicit(&et->mdone, memory_order_relaxed))
			break;
	}
	lane_fd_sync(et);
	et->in_poll = false;
	return done;
}

int en_thread_timeout(struct fm_engine *e, struct en_thread *et)
{
	int t = -1;

	for (struct en_req *q = et->reqs; q; q = q->next) {
		int k = en_req_timeout(q);

		if (k >= 0 && (t < 0 || k < t))
			t = k;
	}
	{
		int k = ag_progress_timeout(e->a, et->th);

		if (k >= 0 && (t < 0 || k < t))
			t = k;
	}
	lane_fd_sync(et);
	return t;
}

int fm_engine_fd(struct fm_engine *e, int *timeout_ms)
{
	struct en_thread *et = e ? pthread_getspecific(e->key) : NULL;
	int t;

	if (!et || !et->reqs) {
		if (timeout_ms)
			*timeout_ms = -1;
		return -1;
	}
	t = en_thread_timeout(e, et);
	if (timeout_ms)
		*timeout_ms = t;
	return et->epfd;
}

struct rw_wait {
	struct fm_engine *e;
	bool done;
};

static void rw_done(struct fm_engine_io *io, int status)
{
	(void)status;
	((struct rw_wait *)io->ctx)->done = true;
}

static int rw_progress(void *ctx)
{
	return fm_engine_poll(((struct rw_wait *)ctx)->e);
}

static void rw_sleep(void *ctx, int cap_ms)
{
	struct epoll_event ev[4];
	int to, fd = fm_engine_fd(((struct rw_wait *)ctx)->e, &to);

	if (fd >= 0 && to != 0)
		(void)epoll_wait(fd, ev, 4, to < 0 || to > cap_ms ? cap_ms : to);
}

int fm_engine_rw(struct fm_engine *e, uint64_t map_id, enum fm_io_op op, uint64_t offset,
		 uint64_t length, void *buf, struct fm_engine_io_stats *st)
{
	struct rw_wait w = { e, false };
	struct fm_engine_io io = { .map_id = map_id, .op = op, .offset = offset,
				   .length = length, .buf = buf, .done = rw_done, .ctx = &w };
	int rc = fm_engine_submit(e, &io);

	if (rc)
		return rc;
	ag_wait(e->a, &w.done, rw_progress, rw_sleep, &w);
	if (st)
		*st = io.st;
	return io.status;
}

/* st += c */
static void counters_add(const struct en_counters *c, struct fm_engine_stats *st)
{
#define LD(f) st->f += atomic_load_explicit(&c->f, memory_order_relaxed)
	LD(ios);
	LD(errors);
	LD(restarts);
	LD(hits);
	LD(misses);
	LD(locks);
	LD(copies);
	LD(commits);
	LD(bytes_read);
	LD(bytes_written);
	LD(mover_reqs);
#undef LD
}

void fm_engine_stats(struct fm_engine *e, struct fm_engine_stats *st)
{
	unsigned n = atomic_load_explicit(&e->nmaps, memory_order_acquire);

	memset(st, 0, sizeof(*st));
	for (unsigned i = 0; i < n; i++)
		counters_add(&e->mc[i], st);
}

int fm_engine_map_stats(struct fm_engine *e, uint64_t map_id, struct fm_engine_stats *st)
{
	const struct en_map *m = e ? en_map_find(e, map_id) : NULL;

	if (!m)
		return fm_err(-ENOENT, "engine: map %" PRIu64 " is not attached", map_id);
	memset(st, 0, sizeof(*st));
	counters_add(m->c, st);
	return 0;
}

const char *fm_engine_step_name(enum fm_engine_step s)
{
	static const char *const names[] = {
		[FM_ENGINE_STEP_READ] = "read",
		[FM_ENGINE_STEP_REDIRECT] = "redirect",
		[FM_ENGINE_STEP_RETARGET] = "retarget",
		[FM_ENGINE_STEP_COPY_READ] = "copy-read",
		[FM_ENGINE_STEP_COPY_WRITE] = "copy-write",
		[FM_ENGINE_STEP_COPY] = "copy",
		[FM_ENGINE_STEP_TARGET_WRITE] = "target-write",
		[FM_ENGINE_STEP_FLUSH] = "flush",
		[FM_ENGINE_STEP_WRITE] = "write",
	};

	return (unsigned)s < sizeof(names) / sizeof(names[0]) && names[s] ? names[s] : "?";
}
