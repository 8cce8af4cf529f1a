/* plan.c -- planning an I/O with what the cache knows and what READs of
 * the owner's bitmap tell.
 *
 * The cache keeps positive confirmations only: a grain it does not know
 * may be split or not.  The planner asks per grain; an unknown grain
 * stops the round (ag_plan_try: -EAGAIN with the grain), its bitmap
 * window (AG_FILL_WORDS words) is READ -- by the caller, blocking or as an
 * op of the polled engine -- and learnt here (ag_plan_learn), and the next
 * round plans again.  Every round learns a window not known before, so an
 * I/O touching n windows takes at most n + 1 rounds.  The windows a plan
 * learnt are trusted for this plan only (its bracket pins the mapping:
 * no release can complete while it runs), the cache keeps their set bits.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "agent_priv.h"
#include "flashmeta/error.h"

#define WIN_GRAINS (AG_FILL_WORDS * 64)

int ag_plan_init(struct ag_plan *p, struct fm_agent *a, const struct fm_agent_io *io,
		 enum fm_io_op op, uint64_t offset, uint64_t length, uint64_t volume_size)
{
	uint64_t first, last;

	if (!io->trusted)
		return fm_err(-EINVAL, "agent: plan outside io_begin/io_end");
	memset(p, 0, offsetof(struct ag_plan, small));
	p->a = a;
	p->map_id = io->map_id;
	p->g.grain_shift = io->map.grain_shift;
	p->g.grain_count = io->map.grain_count;
	p->g.volume_size = volume_size ? volume_size : io->map.grain_count << io->map.grain_shift;
	p->cow = io->map.state == FM_MAP_COPYING;
	p->op = op;
	p->offset = offset;
	p->length = length;
	/* the windows this I/O can touch (fm_plan_io refuses the rest) */
	first = offset >> p->g.grain_shift;
	last = length && offset + length > offset ? (offset + length - 1) >> p->g.grain_shift
						  : first;
	if (last >= p->g.grain_count)
		last = p->g.grain_count ? p->g.grain_count - 1 : 0;
	if (first > last)
		first = last;
	p->w0 = first / WIN_GRAINS;
	p->nwin = last / WIN_GRAINS - p->w0 + 1;
	if (p->nwin <= 2) {
		p->small[0].nbits = p->small[1].nbits = 0; /* no allocation; nbits 0: not read */
		p->win = p->small;
	} else {
		p->win = calloc(p->nwin, sizeof(*p->win));
		if (!p->win)
			return fm_err(-ENOMEM, "agent: plan of %" PRIu64 " grains",
				      last - first + 1);
	}
	return 0;
}

static bool split_fn(void *arg, uint64_t grain, uint64_t *run)
{
	struct ag_plan *p = arg;
	uint64_t w = grain / WIN_GRAINS - p->w0;

	if (fm_cache_lookup(p->a->cache, p->map_id, grain, run))
		return true;
	if (grain / WIN_GRAINS >= p->w0 && w < p->nwin && p->win[w].nbits) {
		const struct ag_fill *f = &p->win[w];

		if (!ag_fill_bit(f, grain))
			return false;
		for (*run = 1; ag_fill_bit(f, grain + *run); (*run)++)
			;
		return true;
	}
	if (p->miss == UINT64_MAX)
		p->miss = grain;
	return false;
}

int ag_plan_try(struct ag_plan *p, struct fm_plan *plan, uint64_t *miss)
{
	int rc;

	p->miss = UINT64_MAX;
	rc = fm_plan_io(plan, &p->g, p->cow, p->op, p->offset, p->length, split_fn, p);
	if (rc || p->miss == UINT64_MAX)
		return rc;
	if (p->miss / WIN_GRAINS < p->w0 || p->miss / WIN_GRAINS - p->w0 >= p->nwin)
		return fm_err(-EIO, "agent: the planner asked for grain %" PRIu64
			      " outside the I/O", p->miss);
	*miss = p->miss;
	return -EAGAIN;
}

void ag_plan_learn(struct ag_plan *p, const struct ag_fill *f)
{
	uint64_t w = f->w0 / WIN_GRAINS;

	if (w >= p->w0 && w - p->w0 < p->nwin)
		p->win[w - p->w0] = *f;
}

void ag_plan_fini(struct ag_plan *p)
{
	if (p->win && p->win != p->small)
		free(p->win);
	p->win = NULL;
}
