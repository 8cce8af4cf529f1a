/* io.c -- an engine's I/O bracket: begin/end, the plan, split checks,
 * data steps, raw bitmap reads.
 *
 * The hit path takes no lock: fm_client_io_begin (two atomics on the
 * map's slot and the lease clock), fm_client_map (a seqlock read), and
 * fm_cache_lookup.  A miss READs the owner's bitmap on the thread's own
 * lane (lane.c) and hands the set bits to the protocol thread for the
 * cache.  Only a bracket that cannot begin yet (no session, no grant, a
 * release in progress) sleeps on a->cond.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "agent_priv.h"
#include "flashmeta/error.h"

int ag_io_try_begin(struct fm_agent *a, struct ag_thread *th, uint64_t map_id,
		    struct fm_agent_io *io)
{
	struct fm_client_pin pin;
	struct fm_wire_mapdesc d;
	int dead = atomic_load(&a->dead);

	io->trusted = false; /* io_end of a bracket that did not begin: a no-op */
	io->pin_ = NULL;
	if (dead)
		return fm_err(dead, "agent: dead (its state machine ran out of memory)");
	/* pinned: a release now waits for io_end, and the session quiesces
	 * before it changes (lease.h R3) */
	if (fm_client_io_pin(a->c, th->reader, map_id, ag_now_ms(), &pin, &d))
		return -EAGAIN;
	memset(io, 0, sizeof(*io));
	io->map_id = map_id;
	io->trusted = true;
	io->pin_ = (void *)pin.cell;
	ag_map_pub(&d, true, &io->map);
	return 0;
}

int fm_agent_io_begin(struct fm_agent *a, uint64_t map_id, struct fm_agent_io *io)
{
	struct ag_thread *th;
	struct timespec ts = { 0, 0 };
	bool late = false;
	int rc;

	rc = ag_ctx(a, &th);
	if (rc) {
		memset(io, 0, sizeof(*io)); /* io_end on it is a no-op */
		return rc;
	}
	for (;;) {
		rc = ag_io_try_begin(a, th, map_id, io);
		if (rc != -EAGAIN)
			return rc;
		if (late)
			break;
		/* no session, no grant, or a release going on: wait for a
		 * join or a grant (broadcast), re-checking every 20 ms */
		if (!ts.tv_sec && !ts.tv_nsec)
			ag_deadline_ts(&ts, a->cfg.wait_ms);
		pthread_mutex_lock(&a->lock);
		late = ag_wait_until(a, &ts);
		pthread_mutex_unlock(&a->lock);
	}
	return fm_err(-ETIMEDOUT, "agent: map %" PRIu64 " not granted within %u ms", map_id,
		      a->cfg.wait_ms);
}

void fm_agent_io_end(struct fm_agent *a, struct fm_agent_io *io)
{
	struct fm_client_pin pin = { .cell = io->pin_ };

	if (!io->trusted)
		return;
	io->trusted = false;
	io->pin_ = NULL;
	if (fm_client_io_unpin(a->c, &pin)) {
		/* the last bracket a release or quiescence waits for */
		atomic_store(&a->kick, true);
		ag_wake(a);
	}
}

/* --------------------------------------------------------------- plan */

/* a FETCH op of grain on this thread, to its end */
static int fetch(struct fm_agent *a, uint64_t map_id, uint64_t grain, struct ag_fill *f)
{
	struct ag_thread *th;
	struct ag_op op = { .kind = AG_OP_FETCH, .map_id = map_id, .first = grain,
			    .last = grain };
	int rc = ag_ctx(a, &th);

	if (rc)
		return rc;
	rc = ag_op_run(a, th, &op);
	if (rc == 0)
		*f = op.fill;
	return rc;
}

int fm_agent_plan(struct fm_agent *a, const struct fm_agent_io *io, enum fm_io_op op,
		  uint64_t offset, uint64_t length, struct fm_plan *plan)
{
	struct ag_plan p;
	uint64_t miss;
	int rc = ag_plan_init(&p, a, io, op, offset, length, 0);

	while (rc == 0 && (rc = ag_plan_try(&p, plan, &miss)) == -EAGAIN) {
		struct ag_fill f;

		rc = fetch(a, io->map_id, miss, &f);
		if (rc == 0)
			ag_plan_learn(&p, &f);
	}
	ag_plan_fini(&p);
	return rc;
}

int fm_agent_is_split(struct fm_agent *a, uint64_t map_id, uint64_t grain)
{
	struct ag_fill f;
	int rc;

	if (fm_cache_lookup(a->cache, map_id, grain, NULL))
		return 1;
	rc = fetch(a, map_id, grain, &f);
	return rc ? rc : ag_fill_bit(&f, grain);
}

int fm_agent_read_bitmap(struct fm_agent *a, uint64_t map_id, uint64_t off, void *buf,
			 size_t len)
{
	struct ag_thread *th;
	int rc = ag_ctx(a, &th);

	/* AG_READ_MAX at a time: the caller's length is not limited */
	for (size_t done = 0; rc == 0 && done < len;) {
		size_t n = len - done < AG_READ_MAX ? len - done : AG_READ_MAX;
		struct ag_op op = { .kind = AG_OP_RAWREAD, .map_id = map_id, .first = off + done,
				    .out = (uint8_t *)buf + done, .len = n };

		rc = ag_op_run(a, th, &op);
		done += n;
	}
	return rc;
}

/* ---------------------------------------------------- data steps (R2) */

int fm_agent_record_write(struct fm_agent *a, const struct fm_agent_io *io, uint64_t offset,
			  uint64_t length)
{
	uint64_t shift = io->map.grain_shift;

	if (!io->trusted)
		return fm_err(-EINVAL, "agent: a write recorded outside io_begin/io_end");
	if (!length)
		return 0;
	if (offset + length < offset)
		return fm_err(-ERANGE, "agent: write at %" PRIu64 " of %" PRIu64 " bytes wraps",
			      offset, length);
	return fm_client_record_write(a->c, io->map_id, io->map.generation, offset >> shift,
				      (offset + length - 1) >> shift);
}

int ag_step_try(struct fm_agent *a, struct fm_agent_io *io, uint64_t *token)
{
	uint64_t now = ag_now_ms();
	int rc;

	if (!io->trusted)
		return fm_err(-EINVAL, "agent: a data step outside io_begin/io_end");
	rc = fm_client_step_check(a->c, now);
	if (rc == -EAGAIN)
		return rc; /* within the margin: a renewal is on its way */
	if (rc) {
		atomic_fetch_add_explicit(&a->steps_refused, 1, memory_order_relaxed);
		return fm_err(-EKEYEXPIRED, "agent: lease lost: no data step may start in this "
			      "session (end the I/O and submit it again)");
	}
	io->step_start = now;
	*token = fm_client_token(a->c);
	atomic_fetch_add_explicit(&a->steps, 1, memory_order_relaxed);
	return 0;
}

int fm_agent_step_begin(struct fm_agent *a, struct fm_agent_io *io, uint64_t *token)
{
	uint64_t now = ag_now_ms(), end = now + a->cfg.wait_ms;
	int rc;

	if (!io->trusted)
		return fm_err(-EINVAL, "agent: a data step outside io_begin/io_end");
	/* within the margin: a renewal is on its way; wait for it, but never
	 * past the lease (then the answer is -EKEYEXPIRED) */
	while ((rc = fm_client_step_check(a->c, now)) == -EAGAIN && now < end) {
		struct timespec ts = { 0, 1000000 };

		nanosleep(&ts, NULL);
		now = ag_now_ms();
	}
	if (rc) {
		atomic_fetch_add_explicit(&a->steps_refused, 1, memory_order_relaxed);
		return fm_err(rc == -EAGAIN ? -EKEYEXPIRED : rc,
			      "agent: lease lost: no data step may start in this session "
			      "(end the I/O and submit it again)");
	}
	io->step_start = now;
	if (token)
		*token = fm_client_token(a->c);
	atomic_fetch_add_explicit(&a->steps, 1, memory_order_relaxed);
	return 0;
}

void fm_agent_step_end(struct fm_agent *a, struct fm_agent_io *io)
{
	uint64_t took = ag_now_ms() - io->step_start;

	/* lease.h: on storage without fencing tokens, and where the owner
	 * cannot kill (verbs), a step must end within M + G of its start */
	if (io->step_start && took > atomic_load(&a->step_bound_ms))
		atomic_fetch_add_explicit(&a->steps_overdue, 1, memory_order_relaxed);
	io->step_start = 0;
}
