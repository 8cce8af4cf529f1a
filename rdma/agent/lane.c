/* lane.c -- an engine thread's one-sided operations, on a lane of its own.
 *
 * Each thread that calls into the agent gets a context (pthread key): a
 * transport lane on the session's endpoint and a READ buffer.  The lane is
 * opened lazily and again after the endpoint changed (ep_gen).  An
 * operation posts, then waits for its own completion on the same lane
 * (shm: already complete when the post returns -- no syscall, no lock;
 * verbs: busy or event wait per the transport's mode).
 * Cost of a miss: one bitmap READ and an append to the fill queue.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "agent_priv.h"
#include "flashmeta/error.h"
#include "flashmeta/le.h"

static void thread_free(struct ag_thread *th)
{
	free(th->held);
	fm_lane_delete(&th->lane);
	fm_region_delete(&th->buf);
	free(th);
}

void fm_agent_thread_exit(struct fm_agent *a)
{
	struct ag_thread *th = pthread_getspecific(a->tkey);

	if (!th)
		return;
	pthread_setspecific(a->tkey, NULL);
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
	thread_free(th);
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
	th->a = a;
	pthread_mutex_lock(&a->eplock);
	if (a->nspare)
		th->reader = a->spare[--a->nspare];
	pthread_mutex_unlock(&a->eplock);
	/* no reader (-ENOSPC: hundreds of threads): the thread's brackets
	 * count in the shared word, correct and only slower */
	if (!th->reader && fm_client_reader_new(a->c, &th->reader) == -ENOMEM) {
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

int ag_thread_get(struct fm_agent *a, struct ag_thread **out)
{
	struct ag_thread *th;
	int rc = ag_ctx(a, &th);

	if (rc)
		return rc;
	if (!th->buf) { /* first use, or abandoned with a lost lane */
		rc = fm_region_new(a->t, AG_READ_MAX, FM_ACCESS_LOCAL, &th->buf);
		if (rc)
			return rc;
	}
	if (!th->lane || th->lane_gen != atomic_load_explicit(&a->ep_gen, memory_order_acquire)) {
		/* a new session endpoint (or none): the old lane is useless */
		fm_lane_delete(&th->lane);
		pthread_mutex_lock(&a->eplock);
		th->lane_gen = atomic_load(&a->ep_gen);
		if (!a->ep_pub)
			rc = fm_err(-ECONNRESET, "agent: no session");
		else
			rc = fm_lane_new(a->ep_pub, &th->lane);
		pthread_mutex_unlock(&a->eplock);
		if (rc)
			return rc == -ENOTCONN ? -ECONNRESET : rc;
	}
	*out = th;
	return 0;
}

/*
 * No completion within AG_OP_WAIT_MS: the transport broke its contract
 * (every post completes once; verbs gives up after op_timeout_ms).  The
 * lane cannot be trusted to line completions up with posts any more:
 * abandon it and its buffer (an operation may still write into it) and
 * start over on the next call.
 */
static int lane_lost(struct ag_thread *th, int n)
{
	th->lane = NULL;  /* leaked on purpose: see above */
	th->buf = NULL;
	return fm_err(n < 0 && n != -ETIMEDOUT ? n : -ECONNRESET,
		      "agent: no completion of a one-sided operation in %u ms",
		      AG_OP_WAIT_MS);
}

/* wait for the completion of the one op this thread has in flight */
static int wait_one(struct fm_agent *a, struct ag_thread *th, struct fm_completion *c)
{
	int n = fm_lane_wait(th->lane, c, 1, AG_OP_WAIT_MS);

	(void)a;
	return n == 1 ? 0 : lane_lost(th, n);
}

/* a failed one-sided op: the session's endpoint went away (or refused
 * the access: a stale descriptor) -- start the I/O again after a rejoin */
static int op_failed(int status)
{
	return status == -EINVAL || status == -ERANGE ? status : -ECONNRESET;
}

int ag_read(struct fm_agent *a, struct ag_thread *th, const struct fm_region_desc *src,
	    uint64_t off, size_t len)
{
	struct fm_completion c;
	int rc = fm_lane_post_read(th->lane, th->buf, 0, src, off, len, th);

	if (rc)
		return op_failed(rc);
	rc = wait_one(a, th, &c);
	if (rc)
		return rc;
	return c.status ? op_failed(c.status) : 0;
}

/* the completion of the one CAS this thread has in flight */
static int ag_cas_wait(struct fm_agent *a, struct ag_thread *th, uint64_t *old)
{
	struct fm_completion c;
	int rc = wait_one(a, th, &c);

	if (rc)
		return rc;
	if (c.status)
		return op_failed(c.status); /* outcome unknown: the word may be ours,
					     * the owner reclaims it with the session */
	*old = c.old;
	return 0;
}

int ag_cas(struct fm_agent *a, struct ag_thread *th, const struct fm_region_desc *rd,
	   uint64_t off, uint64_t expect, uint64_t desired, uint64_t *old)
{
	int rc = fm_lane_post_cas(th->lane, rd, off, expect, desired, th);

	return rc ? op_failed(rc) : ag_cas_wait(a, th, old);
}

int ag_cas_read(struct fm_agent *a, struct ag_thread *th, const struct fm_region_desc *rd,
		uint64_t off, uint64_t expect, uint64_t desired, uint64_t *old,
		const struct fm_region_desc *src, uint64_t src_off, size_t len)
{
	struct fm_completion c[2];
	int rc = fm_lane_post_cas(th->lane, rd, off, expect, desired, &c[0]);
	int got = 0, st_cas = 1, st_read = 1;

	if (rc)
		return op_failed(rc);
	rc = fm_lane_post_read(th->lane, th->buf, 0, src, src_off, len, &c[1]);
	if (rc) {
		/* the CAS is on its way: take its completion, then report */
		int r2 = ag_cas_wait(a, th, old);

		return r2 ? r2 : op_failed(rc);
	}
	while (got < 2) {
		struct fm_completion k[2];
		int n = fm_lane_wait(th->lane, k, 2 - got, AG_OP_WAIT_MS);

		if (n <= 0)
			return lane_lost(th, n);
		for (int i = 0; i < n; i++) {
			if (k[i].ctx == &c[0]) {
				st_cas = k[i].status;
				*old = k[i].old;
			} else {
				st_read = k[i].status;
			}
		}
		got += n;
	}
	if (st_cas)
		return op_failed(st_cas); /* outcome unknown: the owner reclaims */
	return st_read ? op_failed(st_read) : 0;
}

int ag_fetch(struct fm_agent *a, const struct fm_wire_mapdesc *d, uint64_t grain,
	     struct ag_fill *f)
{
	const uint64_t ra = AG_FILL_WORDS * 64;
	struct ag_thread *th;
	uint64_t end;
	size_t bytes;
	int rc;

	if (grain >= d->grain_count)
		return fm_err(-ERANGE, "agent: grain %llu beyond map %llu",
			      (unsigned long long)grain, (unsigned long long)d->map_id);
	rc = ag_thread_get(a, &th);
	if (rc)
		return rc;
	/* the fill token BEFORE the READ: a discard in between refuses it */
	if (fm_cache_map_epoch(a->cache, d->map_id, &f->token))
		return fm_err(-EAGAIN, "agent: map %llu is not granted now",
			      (unsigned long long)d->map_id);
	f->map_id = d->map_id;
	f->w0 = grain & ~(ra - 1);
	end = f->w0 + ra < d->grain_count ? f->w0 + ra : d->grain_count;
	f->nbits = end - f->w0;
	bytes = (size_t)((f->nbits + 63) / 64 * 8);
	rc = ag_read(a, th, &d->bitmap, f->w0 / 8, bytes);
	if (rc)
		return rc;
	atomic_fetch_add_explicit(&a->fetches, 1, memory_order_relaxed);
	memset(f->bits, 0, sizeof(f->bits));
	for (size_t i = 0; i < bytes / 8; i++) /* bit g of the map: byte g/8, bit g%8 */
		f->bits[i] = fm_get_le64((const uint8_t *)fm_region_ptr(th->buf) + i * 8);
	if (f->nbits % 64)
		f->bits[f->nbits / 64] &= (UINT64_C(1) << (f->nbits % 64)) - 1;
	/* the set bits are positive confirmations: the cache takes them (its
	 * writer is the protocol thread); a clear bit is never cached */
	for (unsigned i = 0; i < AG_FILL_WORDS; i++)
		if (f->bits[i]) {
			ag_fill_post(a, f);
			break;
		}
	return 0;
}
