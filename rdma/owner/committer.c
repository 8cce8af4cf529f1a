/* committer.c -- the owner's commit thread: runs the durable phase of a
 * split commit beside the loop, so the loop never waits for a drain or an
 * msync of split bits.
 *
 * Design.  One thread, one job at a time:
 *
 *   loop thread                          commit thread
 *   -----------                          -------------
 *   apply the batch (split_set_range)
 *   fm_store_commit_begin (the swap)
 *   od_committer_post ------- mu/cv --->  fm_store_commit_run  (flush, drain:
 *   ...serves messages, locks, fences,    no lock of ours or the store's)
 *      control; new PERSISTs collect      fm_store_commit_end  (store mirror)
 *      into the next batch...             result, ended = true
 *   poll: efd readable  <---- eventfd ---  write(efd)
 *   od_committer_reap: result
 *   publish, op_done (SPLIT_ACKs)
 *
 * Shared state is struct od_committer, every field but `thread`, `efd` and
 * `running` under its mutex `mu`; the store is thread-safe by itself
 * (pmem_store.h).  The loop posts only when no job is posted or ended and
 * not yet reaped (actions.c keeps d->committing), so one job is in flight
 * at most -- as the store allows one commit in flight.  The eventfd only
 * wakes the loop: the result travels under `mu`, which also orders the
 * store's mirror stores (made by fm_store_commit_end here) before the
 * loop's reads of the mirror when it publishes.
 *
 * The thread never logs (the loop does: one writer of stderr) and blocks
 * every signal (they go to the loop's thread, e.g. SIGTERM's
 * fm_ownerd_stop).  Stop: a posted job is always run and ended first -- a
 * drain cannot be interrupted anyway, and the store must not be closed
 * with a commit in flight -- then the thread exits.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "flashmeta/error.h"
#include "flashmeta/pmem_store.h"
#include "ownerd_priv.h"

static void *committer_main(void *arg)
{
	struct od_committer *c = arg;
	static const uint64_t one = 1;

	pthread_mutex_lock(&c->mu);
	for (;;) {
		int rc;

		while (!c->posted && !c->stop)
			pthread_cond_wait(&c->cv, &c->mu);
		if (!c->posted)
			break; /* stopped, nothing to finish */
		c->posted = false;
		pthread_mutex_unlock(&c->mu);

		/* 3b. (actions.c) the durable phase, beside the loop: one
		 *     flush per dirty line and ONE drain/msync for the whole
		 *     batch, then the store publishes to its mirror */
		rc = fm_store_commit_run(c->store);
		rc = fm_store_commit_end(c->store); /* the run's errno, if it failed */

		pthread_mutex_lock(&c->mu);
		c->result = rc;
		if (rc < 0)
			snprintf(c->errmsg, sizeof(c->errmsg), "%s", fm_errormsg());
		c->ended = true;
		c->busy = false;
		c->jobs++;
		pthread_cond_broadcast(&c->cv);
		(void)!write(c->efd, &one, sizeof(one));
	}
	pthread_mutex_unlock(&c->mu);
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
	pthread_cond_init(&c->cv, NULL);
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	rc = pthread_create(&c->thread, NULL, committer_main, c);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc) {
		pthread_cond_destroy(&c->cv);
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
	pthread_mutex_destroy(&c->mu);
	close(c->efd);
	c->efd = -1;
}

int od_committer_fd(const struct od_committer *c)
{
	return c->running ? c->efd : -1;
}

void od_committer_post(struct od_committer *c)
{
	pthread_mutex_lock(&c->mu);
	c->posted = true;
	c->busy = true;
	c->ended = false;
	pthread_cond_broadcast(&c->cv);
	pthread_mutex_unlock(&c->mu);
}

bool od_committer_reap(struct od_committer *c, bool wait, int *result,
		       char *errmsg, size_t errlen)
{
	uint64_t cnt;
	bool ended;

	(void)!read(c->efd, &cnt, sizeof(cnt)); /* non-blocking: just clear it */
	pthread_mutex_lock(&c->mu);
	while (wait && c->busy)
		pthread_cond_wait(&c->cv, &c->mu);
	ended = c->ended;
	if (ended) {
		c->ended = false;
		*result = c->result;
		snprintf(errmsg, errlen, "%s", c->result < 0 ? c->errmsg : "");
	}
	pthread_mutex_unlock(&c->mu);
	return ended;
}
