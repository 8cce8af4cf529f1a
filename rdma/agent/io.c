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

int fm_agent_io_begin(struct fm_agent *a, uint64_t map_id, struct fm_agent_io *io)
{
	struct fm_client_pin pin;
	struct fm_wire_mapdesc d;
	struct ag_thread *th;
	struct timespec ts = { 0, 0 };
	bool late = false;
	int rc;

	memset(io, 0, sizeof(*io));
	rc = ag_ctx(a, &th);
	if (rc)
		return rc;
	for (;;) {
		int dead = atomic_load(&a->dead);

		if (dead)
			return fm_err(dead, "agent: dead (its state machine ran out of memory)");
		/* pinned: a release now waits for io_end, and the session
		 * quiesces before it changes (lease.h R3) */
		if (fm_client_io_pin(a->c, th->reader, map_id, ag_now_ms(), &pin, &d) == 0) {
			io->map_id = map_id;
			io->trusted = true;
			io->pin_ = (void *)pin.cell;
			ag_map_pub(&d, true, &io->map);
			return 0;
		}
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

/* What one planning call learnt from READs: one window per AG_FILL_WORDS
 * bitmap words the I/O touches, indexed from the I/O's first window. */
struct plan_ctx {
	struct fm_agent *a;
	uint64_t map_id;
	uint64_t w0;           /* first window index */
	uint64_t nwin;
	struct ag_fill *win;   /* nbits == 0: not read */
	uint64_t miss;         /* first grain nobody knew, or UINT64_MAX */
};

#define WIN_GRAINS (AG_FILL_WORDS * 64)

static bool plan_split(void *arg, uint64_t grain, uint64_t *run)
{
	struct plan_ctx *x = arg;
	uint64_t w = grain / WIN_GRAINS - x->w0;

	if (fm_cache_lookup(x->a->cache, x->map_id, grain, run))
		return true;
	if (grain / WIN_GRAINS >= x->w0 && w < x->nwin && x->win[w].nbits) {
		const struct ag_fill *f = &x->win[w];

		if (!ag_fill_bit(f, grain))
			return false;
		for (*run = 1; ag_fill_bit(f, grain + *run); (*run)++)
			;
		return true;
	}
	if (x->miss == UINT64_MAX)
		x->miss = grain;
	return false;
}

int fm_agent_plan(struct fm_agent *a, const struct fm_agent_io *io, enum fm_io_op op,
		  uint64_t offset, uint64_t length, struct fm_plan *plan)
{
	struct plan_ctx x = { .a = a, .map_id = io->map_id };
	struct ag_fill small[2]; /* an I/O within two windows: no allocation */
	struct fm_wire_mapdesc d;
	struct fm_geom g;
	uint64_t first, last;
	bool cow, have_d = false;
	int rc;

	if (!io->trusted)
		return fm_err(-EINVAL, "agent: plan outside io_begin/io_end");
	g.grain_shift = io->map.grain_shift;
	g.grain_count = io->map.grain_count;
	g.volume_size = io->map.grain_count << io->map.grain_shift;
	cow = io->map.state == FM_MAP_COPYING;
	/* the windows this I/O can touch (fm_plan_io refuses the rest) */
	first = offset >> g.grain_shift;
	last = length && offset + length > offset ? (offset + length - 1) >> g.grain_shift : first;
	if (last >= g.grain_count)
		last = g.grain_count ? g.grain_count - 1 : 0;
	if (first > last)
		first = last;
	x.w0 = first / WIN_GRAINS;
	x.nwin = last / WIN_GRAINS - x.w0 + 1;
	x.win = x.nwin <= 2 ? memset(small, 0, sizeof(small)) : calloc(x.nwin, sizeof(*x.win));
	if (!x.win)
		return fm_err(-ENOMEM, "agent: plan of %" PRIu64 " grains", last - first + 1);
	for (;;) {
		x.miss = UINT64_MAX;
		rc = fm_plan_io(plan, &g, cow, op, offset, length, plan_split, &x);
		if (rc || x.miss == UINT64_MAX)
			break;
		/* the first grain nobody knew: READ its window (the cache gets
		 * the set bits too), then plan again.  Every round reads a
		 * window not read before: at most nwin + 1 rounds. */
		if (x.miss / WIN_GRAINS < x.w0 || x.miss / WIN_GRAINS - x.w0 >= x.nwin) {
			rc = fm_err(-EIO, "agent: the planner asked for grain %" PRIu64
				    " outside the I/O", x.miss);
			break;
		}
		if (!have_d && fm_client_map(a->c, io->map_id, &d, NULL)) {
			rc = fm_err(-ENOENT, "agent: map %" PRIu64 " unknown", io->map_id);
			break;
		}
		have_d = true;
		rc = ag_fetch(a, &d, x.miss, &x.win[x.miss / WIN_GRAINS - x.w0]);
		if (rc)
			break;
	}
	if (x.win != small)
		free(x.win);
	return rc;
}

int fm_agent_is_split(struct fm_agent *a, uint64_t map_id, uint64_t grain)
{
	struct fm_wire_mapdesc d;
	struct ag_fill f;
	int rc;

	if (fm_cache_lookup(a->cache, map_id, grain, NULL))
		return 1;
	if (fm_client_map(a->c, map_id, &d, NULL))
		return fm_err(-ENOENT, "agent: map %" PRIu64 " unknown", map_id);
	rc = ag_fetch(a, &d, grain, &f);
	return rc ? rc : ag_fill_bit(&f, grain);
}

int fm_agent_read_bitmap(struct fm_agent *a, uint64_t map_id, uint64_t off, void *buf,
			 size_t len)
{
	struct fm_wire_mapdesc d;
	struct ag_thread *th;
	int rc;

	if (fm_client_map(a->c, map_id, &d, NULL))
		return fm_err(-ENOENT, "agent: map %" PRIu64 " unknown", map_id);
	if (off > d.bitmap.len || len > d.bitmap.len - off)
		return fm_err(-ERANGE, "agent: bytes %" PRIu64 "+%zu beyond the bitmap of map %"
			      PRIu64 " (%" PRIu64 " bytes)", off, len, map_id,
			      (uint64_t)d.bitmap.len);
	rc = ag_thread_get(a, &th);
	for (size_t done = 0; rc == 0 && done < len;) {
		size_t n = len - done < AG_READ_MAX ? len - done : AG_READ_MAX;

		rc = ag_read(a, th, &d.bitmap, off + done, n);
		if (rc == 0)
			memcpy((uint8_t *)buf + done, fm_region_ptr(th->buf), n);
		done += n;
	}
	return rc;
}

/* ---------------------------------------------------- data steps (R2) */

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
