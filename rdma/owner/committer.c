/* committer.c -- the owner's commit thread: runs the durable phase of the
 * group commit beside the loop, so the loop never waits for a slow drain
 * or msync of split bits (a cheap one it runs itself, see below), and
 * commits follow each other without waiting for the loop.
 *
 * Design.  Batches of PERSIST actions travel through three lists
 * (struct od_plist, swapped whole, never copied):
 *
 *   loop thread                            commit thread
 *   -----------                            -------------
 *   each pass: apply the pass's PERSISTs
 *   (split_set_range), hand them --> next    take next as `flight`
 *   ...serves messages, locks, fences,       fm_store_commit_begin (swap)
 *      control; keeps applying and           fm_store_commit_run (drain,
 *      handing: they wait in `next`            no lock of ours or the
 *      for the commit after this one           store's)
 *                                            fm_store_commit_end (mirror)
 *   eventfd readable     <------ done  <--   statuses; flight joins done
 *   reap done: publish, op_done              next batch at once, if any
 *
 * A PERSIST is in a commit only if its bits were applied before the swap:
 * the loop applies, THEN hands (under `mu`); the thread takes `next`
 * (under `mu`), THEN begins.  Bits the loop applies after the take go to
 * the store's next pending set; if they were applied before the swap all
 * the same, an earlier commit covers them -- only ever earlier, never
 * later, than the batch that answers for them.
 *
 * Shared state: struct od_committer, `flight` the thread's own, the rest
 * under `mu`; the store is thread-safe by itself (pmem_store.h) and the
 * thread calls nothing else.  The eventfd only wakes the loop: the lists
 * travel under `mu`, which also orders the store's mirror stores (made
 * by fm_store_commit_end here) before the loop's reads of the mirror
 * when it publishes.  The next commit may end while the loop publishes
 * the previous one, so `pub` keeps the mirror's writer (commit_end) and
 * its reader (the loop's copy) apart; either value of a word is safe to
 * show (both durable, the newer a superset), but the reader uses plain
 * loads.  If the loop has not reaped the previous batch and
 * `done` cannot grow (no memory), the thread waits for the reap.
 *
 * A hand-off costs two thread wake-ups per commit (loop -> thread, thread
 * -> loop), which is more than some drains cost: an msync of a tmpfs
 * file, a DAX flush + drain.  So the loop keeps a batch and commits it in
 * place when the thread is idle and the drains measured lately were
 * cheaper than OD_DRAIN_INLINE_NS (od_committer_cheap); one slow drain
 * sends the following batches to the thread again.  A drain misjudged as
 * cheap blocks the loop once.
 *
 * CHANGED actions (a client's CHANGE_REPORT, a changed-unknown mark:
 * core/src/owner/changed.c) ride in the same batches: the loop collects
 * them with the PERSISTs but applies nothing for them; the thread, after
 * the batch's commit, records each in the store (od_changed_run: the
 * store's changed-set calls are durable on return, one drain each), so
 * the loop never waits for those drains either (issue 9).  Their order
 * against the split bits does not matter: the two sets are independent
 * until a refresh, and a refresh waits for every CHANGED of its map.
 *
 * The thread never logs (the loop does: one writer of stderr) and blocks
 * every signal (they go to the loop's thread, e.g. SIGTERM's
 * fm_ownerd_stop).  Stop: a commit in flight is always run and ended --
 * a drain cannot be interrupted anyway, and the store must not be closed
 * with a commit in flight -- then the thread exits; `next` is not
 * started.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "flashmeta/error.h"
#include "flashmeta/pmem_store.h"
#include "ownerd_priv.h"

/* A drain cheaper than this is run by the loop itself (see above): about
 * what the two wake-ups of a hand-off cost on a busy small VM; an msync of
 * a file on a disk costs hundreds of microseconds, tmpfs and DAX drains a
 * few. */
#define OD_DRAIN_INLINE_NS 50000u

static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* a drain took `ns`: the estimate jumps up to a slow one at once and
 * comes down by an eighth of the gap per faster one */
static void drained(struct od_committer *c, uint64_t ns)
{
	uint64_t est = atomic_load_explicit(&c->drain_ns, memory_order_relaxed);

	est = ns >= est ? ns : est - (est - ns) / 8;
	atomic_store_explicit(&c->drain_ns, est, memory_order_relaxed);
}

int od_committer_here(struct od_committer *c, struct fm_store *store)
{
	uint64_t t0 = mono_ns();
	int rc = fm_store_split_commit(store);

	if (c->running)
		drained(c, mono_ns() - t0);
	return rc;
}

bool od_committer_cheap(struct od_committer *c)
{
	bool idle;

	if (!c->running)
		return true;
	pthread_mutex_lock(&c->mu);
	idle = !c->busy && !c->next.n;
	pthread_mutex_unlock(&c->mu);
	return idle && atomic_load_explicit(&c->drain_ns, memory_order_relaxed) <
		OD_DRAIN_INLINE_NS;
}

static void plist_swap(struct od_plist *a, struct od_plist *b)
{
	struct od_plist t = *a;

	*a = *b;
	*b = t;
}

/* move every element of src to the end of dst; 0 or -ENOMEM (nothing
 * moved) */
static int plist_move(struct od_plist *dst, struct od_plist *src)
{
	if (src->n == 0)
		return 0;
	if (dst->n == 0) {
		plist_swap(dst, src); /* src gets dst's empty array */
		return 0;
	}
	if (dst->n + src->n > dst->cap) {
		size_t nc = dst->cap * 2 > dst->n + src->n ? dst->cap * 2 : dst->n + src->n;
		struct od_persist *nv = realloc(dst->v, nc * sizeof(*nv));

		if (!nv)
			return -ENOMEM;
		dst->v = nv;
		dst->cap = nc;
	}
	memcpy(dst->v + dst->n, src->v, src->n * sizeof(*src->v));
	dst->n += src->n;
	src->n = 0;
	return 0;
}

void od_changed_run(struct fm_store *store, struct od_plist *l)
{
	for (size_t i = 0; i < l->n; i++) {
		struct od_persist *p = &l->v[i];
		const struct fm_action *a = &p->a;
		int rc = 0;

		if (a->type != FM_ACT_CHANGED)
			continue;
		if (!a->u.persist.range_count)
			rc = fm_store_changed_unknown(store, a->u.persist.map_id,
						      a->u.persist.generation);
		for (unsigned r = 0; r < a->u.persist.range_count && !rc; r++) {
			uint64_t first = a->u.persist.ranges[r].first;
			uint64_t last = a->u.persist.ranges[r].last;

			rc = fm_store_changed_set_range(store, a->u.persist.map_id,
							a->u.persist.generation, first,
							last - first + 1);
		}
		/* the set is gone or never kept: nothing owed (proto.h) */
		p->status = rc == 0 || rc == -ESTALE || rc == -ENOENT || rc == -EOPNOTSUPP ? rc :
			    -EIO;
		if (p->status == -EIO)
			snprintf(p->errmsg, sizeof(p->errmsg), "%s", fm_errormsg());
	}
}

static void *committer_main(void *arg)
{
	struct od_committer *c = arg;
	static const uint64_t one = 1;

	for (;;) {
		int n, rc;

		pthread_mutex_lock(&c->mu);
		while (!c->next.n && !c->stop)
			pthread_cond_wait(&c->cv, &c->mu);
		if (c->stop) {
			pthread_mutex_unlock(&c->mu);
			break; /* `next` is not started */
		}
		/* every PERSIST in it was applied before it was handed, so
		 * before the swap below */
		plist_swap(&c->next, &c->flight); /* flight was empty */
		c->busy = true;
		pthread_mutex_unlock(&c->mu);

		/* 3a. (actions.c) the swap */
		n = rc = fm_store_commit_begin(c->store);
		/* 3b. ONE flush per dirty line and ONE drain/msync for the
		 *     batch, then the store publishes to its mirror.  n == 0:
		 *     nothing pending, so every bit applied so far is durable
		 *     (an earlier commit, or a mapping operation's, took it) */
		if (n > 0) {
			uint64_t t0 = mono_ns();

			(void)fm_store_commit_run(c->store);
			drained(c, mono_ns() - t0);
			pthread_mutex_lock(&c->pub);
			rc = fm_store_commit_end(c->store); /* the run's errno if it failed */
			pthread_mutex_unlock(&c->pub);
		}
		for (size_t i = 0; i < c->flight.n; i++)
			if (rc < 0 && c->flight.v[i].status == 0 &&
			    c->flight.v[i].a.type == FM_ACT_PERSIST)
				c->flight.v[i].status = -EIO;
		od_changed_run(c->store, &c->flight); /* drains, beside the loop */

		pthread_mutex_lock(&c->mu);
		if (rc < 0)
			snprintf(c->errmsg, sizeof(c->errmsg), "%s", fm_errormsg());
		c->commits += n > 0;
		c->persists += c->flight.n;
		while (plist_move(&c->done, &c->flight) && !c->stop)
			pthread_cond_wait(&c->cv, &c->mu); /* reaped: done is empty */
		c->flight.n = 0; /* stopping with no memory: dropped unanswered */
		c->busy = false;
		pthread_mutex_unlock(&c->mu);
		/* wake whoever waits (stop, a reap that waits) and the loop;
		 * after the unlock, so that neither wakes into our mutex */
		pthread_cond_broadcast(&c->cv);
		(void)!write(c->efd, &one, sizeof(one));
	}
	return NULL;
}

int od_committer_start(struct od_committer *c, struct fm_store *store)
{
	sigset_t all, old;
	int rc;

	memset(c, 0, sizeof(*c));
	c->store = store;
	c->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (c->efd < 0)
		return fm_err(-errno, "committer eventfd: %s", strerror(errno));
	pthread_mutex_init(&c->mu, NULL);
	pthread_mutex_init(&c->pub, NULL);
	pthread_cond_init(&c->cv, NULL);
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	rc = pthread_create(&c->thread, NULL, committer_main, c);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc) {
		pthread_cond_destroy(&c->cv);
		pthread_mutex_destroy(&c->pub);
		pthread_mutex_destroy(&c->mu);
		close(c->efd);
		c->efd = -1;
		return fm_err(-rc, "committer thread: %s", strerror(rc));
	}
	c->running = true;
	return 0;
}

void od_committer_stop(struct od_committer *c)
{
	if (!c->running)
		return;
	pthread_mutex_lock(&c->mu);
	c->stop = true;
	pthread_cond_broadcast(&c->cv);
	pthread_mutex_unlock(&c->mu);
	pthread_join(c->thread, NULL);
	c->running = false;
	pthread_cond_destroy(&c->cv);
	pthread_mutex_destroy(&c->pub);
	pthread_mutex_destroy(&c->mu);
	close(c->efd);
	c->efd = -1;
	free(c->next.v);
	free(c->done.v);
	free(c->flight.v);
	memset(&c->next, 0, sizeof(c->next));
	memset(&c->done, 0, sizeof(c->done));
	memset(&c->flight, 0, sizeof(c->flight));
}

int od_committer_fd(const struct od_committer *c)
{
	return c->running ? c->efd : -1;
}

int od_committer_hand(struct od_committer *c, struct od_plist *l)
{
	int rc;

	pthread_mutex_lock(&c->mu);
	rc = plist_move(&c->next, l);
	pthread_mutex_unlock(&c->mu);
	if (rc == 0)
		pthread_cond_broadcast(&c->cv); /* after the unlock: see above */
	return rc;
}

size_t od_committer_reap(struct od_committer *c, struct od_plist *out, bool wait,
			 struct od_plist *dropped, char *errmsg, size_t errlen)
{
	uint64_t cnt;

	(void)!read(c->efd, &cnt, sizeof(cnt)); /* non-blocking: just clear it */
	pthread_mutex_lock(&c->mu);
	if (wait) {
		if (dropped)
			plist_swap(&c->next, dropped); /* dropped was empty */
		while (c->busy)
			pthread_cond_wait(&c->cv, &c->mu);
	}
	plist_swap(&c->done, out); /* out was empty */
	snprintf(errmsg, errlen, "%s", c->errmsg);
	c->errmsg[0] = 0;
	pthread_cond_broadcast(&c->cv); /* done is empty again */
	pthread_mutex_unlock(&c->mu);
	return out->n;
}
