/* lane.c -- an engine thread's context: its lane, READ slots, eventfd.
 *
 * Each thread that calls into the agent gets a context (pthread key): a
 * transport lane on the session's endpoint, a registered buffer cut into
 * 64-byte READ slots (one per op in flight), an eventfd the protocol
 * thread writes when a request of the thread's ops is answered, its
 * reader cell and the lock words it holds (with the mutex that lets
 * fm_agent_locks read them from another thread).  The lane is opened
 * lazily, and again after the session's endpoint changed (ep_gen); the
 * ops still waiting on the old lane fail first (ops.c), since an old
 * lane's completions are never polled again.  A context ends with
 * fm_agent_thread_exit, with its thread (the key's destructor), or with
 * fm_agent_delete.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "agent_priv.h"
#include "flashmeta/error.h"

static void thread_free(struct ag_thread *th)
{
	pthread_mutex_destroy(&th->heldlock);
	free(th->held);
	fm_lane_delete(&th->lane);
	fm_region_delete(&th->buf);
	fm_region_delete(&th->big);
	if (th->efd >= 0)
		close(th->efd);
	free(th);
}

/* th leaves a: off the list, its reader to the spares, freed.  th's own
 * thread (its lane's), or its thread's key destructor (below). */
static void thread_exit(struct fm_agent *a, struct ag_thread *th)
{
	pthread_mutex_lock(&a->eplock);
	for (struct ag_thread **pp = &a->threads; *pp; pp = &(*pp)->next)
		if (*pp == th) {
			*pp = th->next;
			break;
		}
	/* its reader goes to the next new thread (a reader is never
	 * unregistered; brackets it still counts end through their pins) */
	if (th->reader && a->nspare == a->capspare) {
		size_t nc = a->capspare ? a->capspare * 2 : 8;
		struct fm_client_reader **n = realloc(a->spare, nc * sizeof(*n));

		if (n) {
			a->spare = n;
			a->capspare = nc;
		}
	}
	if (th->reader && a->nspare < a->capspare)
		a->spare[a->nspare++] = th->reader;
	pthread_mutex_unlock(&a->eplock);
	/* the protocol thread answers an op's request and writes our eventfd
	 * under a->lock: once we held it, no such write is still to come */
	pthread_mutex_lock(&a->lock);
	pthread_mutex_unlock(&a->lock);
	thread_free(th);
}

void fm_agent_thread_exit(struct fm_agent *a)
{
	struct ag_thread *th = pthread_getspecific(a->tkey);

	if (!th)
		return;
	pthread_setspecific(a->tkey, NULL);
	thread_exit(a, th);
}

/*
 * A thread that exits without fm_agent_thread_exit.  Its context (and
 * the lane in it: cfg.max_threads counts lanes) used to stay until
 * fm_agent_delete, so a pool of threads that come and go ran out of
 * lanes (-ENOSPC).  The key's destructor frees it now, as
 * fm_agent_thread_exit would, on the exiting thread itself (the lane's
 * thread) -- unless the context still has work: an operation started (its
 * lane completion or request is still to come) or a lock word held (the
 * word stays the session's; fm_agent_locks lists it).  Those stay for
 * fm_agent_delete, as before.
 *
 * The race with fm_agent_delete: the destructor runs outside any engine
 * call, so the delete's "no engine call may be running" does not cover
 * it.  So the destructor never touches `p` before it finds it on a live
 * agent's thread list, and does its work holding live_lock; the delete
 * takes its agent off the live list under live_lock (agent_free: after
 * the protocol thread is joined, before any context is freed).  A
 * destructor that starts after that finds nothing; one that started
 * before finishes first.  Lock order: live_lock, then eplock, then
 * a->lock.  A key deleted by fm_agent_delete has no destructor calls
 * any more, and a new key starts NULL in every thread (POSIX), so `p`
 * is always a context this key handed out.
 */
static pthread_mutex_t live_lock = PTHREAD_MUTEX_INITIALIZER;
static struct fm_agent *live; /* a->live_next; under live_lock */

void ag_live_add(struct fm_agent *a)
{
	pthread_mutex_lock(&live_lock);
	a->live_next = live;
	live = a;
	pthread_mutex_unlock(&live_lock);
}

void ag_live_remove(struct fm_agent *a)
{
	pthread_mutex_lock(&live_lock);
	for (struct fm_agent **pp = &live; *pp; pp = &(*pp)->live_next)
		if (*pp == a) {
			*pp = a->live_next;
			break;
		}
	pthread_mutex_unlock(&live_lock);
}

void ag_thread_dtor(void *p)
{
	pthread_mutex_lock(&live_lock);
	for (struct fm_agent *a = live; a; a = a->live_next) {
		struct ag_thread *th;

		pthread_mutex_lock(&a->eplock);
		for (th = a->threads; th && th != p; th = th->next)
			;
		pthread_mutex_unlock(&a->eplock);
		if (!th)
			continue;
		/* ours, found alive: ops and holds are this thread's own */
		if (!th->ops && !th->nheld)
			thread_exit(a, th);
		break;
	}
	pthread_mutex_unlock(&live_lock);
}

void ag_threads_free(struct fm_agent *a)
{
	pthread_mutex_lock(&a->eplock);
	while (a->threads) {
		struct ag_thread *th = a->threads;

		a->threads = th->next;
		thread_free(th);
	}
	free(a->spare);
	a->spare = NULL;
	a->nspare = a->capspare = 0;
	pthread_mutex_unlock(&a->eplock);
}

int ag_ctx(struct fm_agent *a, struct ag_thread **out)
{
	struct ag_thread *th = pthread_getspecific(a->tkey);

	if (th) {
		*out = th;
		return 0;
	}
	th = calloc(1, sizeof(*th));
	if (!th)
		return fm_err(-ENOMEM, "agent: thread context");
	th->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (th->efd < 0) {
		free(th);
		return fm_err(-ENOMEM, "agent: thread eventfd");
	}
	th->a = a;
	pthread_mutex_init(&th->heldlock, NULL);
	pthread_mutex_lock(&a->eplock);
	if (a->nspare)
		th->reader = a->spare[--a->nspare];
	pthread_mutex_unlock(&a->eplock);
	/* no reader (-ENOSPC: hundreds of threads): the thread's brackets
	 * count in the shared word, correct and only slower */
	if (!th->reader && fm_client_reader_new(a->c, &th->reader) == -ENOMEM) {
		pthread_mutex_destroy(&th->heldlock);
		close(th->efd);
		free(th);
		return -ENOMEM;
	}
	pthread_mutex_lock(&a->eplock);
	th->next = a->threads;
	a->threads = th;
	pthread_mutex_unlock(&a->eplock);
	pthread_setspecific(a->tkey, th);
	*out = th;
	return 0;
}

int ag_lane_ready(struct fm_agent *a, struct ag_thread *th)
{
	uint64_t gen = atomic_load_explicit(&a->ep_gen, memory_order_acquire);
	int rc = 0;

	if (!th->buf) { /* first use, or abandoned with a lost lane */
		rc = fm_region_new(a->t, (size_t)AG_SLOTS * 64, FM_ACCESS_LOCAL, &th->buf);
		if (rc)
			return rc;
		memset(th->slots, 0, sizeof(th->slots));
	}
	if (th->lane && th->lane_gen == gen)
		return 0;
	/* a new session endpoint (or none): the old lane is useless; what
	 * was posted on it failed with it (ag_progress saw the change) */
	fm_lane_delete(&th->lane);
	pthread_mutex_lock(&a->eplock);
	th->lane_gen = atomic_load(&a->ep_gen);
	if (!a->ep_pub)
		rc = fm_err(-ECONNRESET, "agent: no session");
	else
		rc = fm_lane_new(a->ep_pub, &th->lane);
	pthread_mutex_unlock(&a->eplock);
	return rc == -ENOTCONN ? -ECONNRESET : rc;
}

int ag_slot_get(struct ag_thread *th)
{
	for (unsigned i = 0; i < AG_SLOTS / 64; i++)
		if (~th->slots[i]) {
			int b = __builtin_ctzll(~th->slots[i]);

			th->slots[i] |= UINT64_C(1) << b;
			return (int)(i * 64 + (unsigned)b);
		}
	return -1;
}

void ag_slot_put(struct ag_thread *th, int slot)
{
	if (slot >= 0)
		th->slots[slot / 64] &= ~(UINT64_C(1) << (slot % 64));
}

int ag_op_failed(int status)
{
	return status == -EINVAL || status == -ERANGE ? status : -ECONNRESET;
}
