/* planner.c -- cut a host I/O into FlashCopy extents and grain locks.
 *
 * Design: one left-to-right walk over the grains [first, last] the I/O
 * touches.  Each step classifies a block of grains that share one kind:
 *
 *   - COW inactive or source read: the whole rest of the I/O, DIRECT;
 *   - is_split says split with run r: min(r, grains left), DIRECT;
 *   - otherwise: one grain, kind from the table in planner.h.
 *
 * Blocks go to emit(), which extends the open extent when the kind repeats
 * and otherwise closes it (stores it if the caller's array has room, and
 * counts it either way), and likewise for the open lock range.  Counting
 * past the capacity is what lets -ENOSPC report the size needed in one
 * pass.  Extent byte bounds are computed when the extent closes, clipped to
 * the I/O: only the first and last extent can be partial grains.
 *
 * Invariant at the top of the loop: grains [first, g) are emitted, and
 * g <= last.  Arithmetic stays below 2^57 (see geometry.c), so g + n never
 * wraps.
 *
 * Example, target write from inside grain 0 to inside grain 4:
 *
 *   write:        |<------------------------------------->|
 *   grains:   |   0    |   1    |   2    |   3    |   4    |
 *   split?        no       yes      yes      no       no
 *   blocks:      [0]     [1..2] (one call)  [3]      [4]
 *   kinds:       CTW     DIRECT             WAS      CTW (partial)
 *   plan:     extents CTW[0] DIRECT[1..2] WAS[3] CTW[4]; locks [0] [3..4]
 */
#include <errno.h>
#include <stddef.h>

#include "flashmeta/error.h"
#include "flashmeta/planner.h"

static const char *const fm_io_op_names[FM_IO_OP_COUNT] = {
	[FM_IO_READ_SOURCE] = "read_source",
	[FM_IO_WRITE_SOURCE] = "write_source",
	[FM_IO_READ_TARGET] = "read_target",
	[FM_IO_WRITE_TARGET] = "write_target",
};

static const char *const fm_extent_kind_names[FM_EXT_KIND_COUNT] = {
	[FM_EXT_DIRECT] = "direct",
	[FM_EXT_REDIRECT_TO_SOURCE] = "redirect_to_source",
	[FM_EXT_COPY_THEN_WRITE] = "copy_then_write",
	[FM_EXT_WRITE_AND_SPLIT] = "write_and_split",
};

const char *fm_io_op_name(enum fm_io_op op)
{
	return (unsigned int)op < FM_IO_OP_COUNT ? fm_io_op_names[op] : "?";
}

const char *fm_extent_kind_name(enum fm_extent_kind k)
{
	return (unsigned int)k < FM_EXT_KIND_COUNT ? fm_extent_kind_names[k] : "?";
}

/* The walk's state: the I/O, and the open (not yet stored) extent/lock. */
struct walk {
	struct fm_plan *plan;
	const struct fm_geom *g;
	uint64_t io_start, io_end; /* bytes [io_start, io_end) */
	struct fm_extent cur;      /* open extent, valid when has_cur */
	struct fm_grain_range lk;  /* open lock range, valid when has_lk */
	bool has_cur, has_lk;
};

static bool needs_lock(enum fm_extent_kind k)
{
	return k == FM_EXT_COPY_THEN_WRITE || k == FM_EXT_WRITE_AND_SPLIT;
}

static void close_extent(struct walk *w)
{
	struct fm_plan *p = w->plan;
	struct fm_extent *e = &w->cur;
	uint64_t start = fm_geom_grain_offset(w->g, e->first_grain);
	uint64_t end = fm_geom_grain_offset(w->g, e->last_grain) +
		       fm_geom_grain_bytes(w->g, e->last_grain);

	if (start < w->io_start)
		start = w->io_start;
	if (end > w->io_end)
		end = w->io_end;
	e->offset = start;
	e->length = end - start;
	if (p->ext_count < p->ext_cap)
		p->ext[p->ext_count] = *e;
	p->ext_count++;
	w->has_cur = false;
}

static void close_lock(struct walk *w)
{
	struct fm_plan *p = w->plan;

	if (p->lock_count < p->lock_cap)
		p->lock[p->lock_count] = w->lk;
	p->lock_count++;
	w->has_lk = false;
}

/* Grains [a, b] all need `kind`; a is one past the last emitted grain. */
static void emit(struct walk *w, enum fm_extent_kind kind, uint64_t a, uint64_t b)
{
	if (w->has_cur && w->cur.kind != kind)
		close_extent(w);
	if (w->has_cur) {
		w->cur.last_grain = b;
	} else {
		w->cur = (struct fm_extent){ .first_grain = a, .last_grain = b,
					     .kind = kind };
		w->has_cur = true;
	}

	if (!needs_lock(kind)) {
		if (w->has_lk)
			close_lock(w);
		return;
	}
	if (w->has_lk) {
		w->lk.last = b; /* contiguous: a == lk.last + 1 */
	} else {
		w->lk = (struct fm_grain_range){ .first = a, .last = b };
		w->has_lk = true;
	}
}

/* The kind for an unsplit grain under active COW. */
static enum fm_extent_kind unsplit_kind(const struct walk *w, enum fm_io_op op,
					uint64_t grain)
{
	uint64_t gstart, gend;

	switch (op) {
	case FM_IO_WRITE_SOURCE:
		return FM_EXT_COPY_THEN_WRITE;
	case FM_IO_READ_TARGET:
		return FM_EXT_REDIRECT_TO_SOURCE;
	case FM_IO_WRITE_TARGET:
		/* Whole grain = every byte of it that exists, so a partial
		 * last grain written to the volume end is whole. */
		gstart = fm_geom_grain_offset(w->g, grain);
		gend = gstart + fm_geom_grain_bytes(w->g, grain);
		if (w->io_start <= gstart && w->io_end >= gend)
			return FM_EXT_WRITE_AND_SPLIT;
		return FM_EXT_COPY_THEN_WRITE;
	default:
		return FM_EXT_DIRECT;
	}
}

int fm_plan_io(struct fm_plan *plan, const struct fm_geom *g, bool cow_active,
	       enum fm_io_op op, uint64_t offset, uint64_t length,
	       fm_split_fn is_split, void *ctx)
{
	struct walk w;
	uint64_t first, last, gr;
	bool consult;
	int ret;

	if (!plan || !g)
		return fm_err(-EINVAL, "planner: NULL %s", plan ? "geometry" : "plan");
	plan->ext_count = 0;
	plan->lock_count = 0;
	if ((unsigned int)op >= FM_IO_OP_COUNT)
		return fm_err(-EINVAL, "planner: unknown op %d", (int)op);
	if (offset % FM_SECTOR_SIZE || length % FM_SECTOR_SIZE)
		return fm_err(-EINVAL,
			      "planner: %s [%llu, +%llu) is not %u B sector aligned",
			      fm_io_op_names[op], (unsigned long long)offset,
			      (unsigned long long)length, FM_SECTOR_SIZE);
	ret = fm_geom_range(g, offset, length, &first, &last);
	if (ret)
		return ret; /* -EINVAL (length 0) or -ERANGE, message set */
	consult = cow_active && op != FM_IO_READ_SOURCE;
	if (consult && !is_split)
		return fm_err(-EINVAL, "planner: %s under active COW needs is_split",
			      fm_io_op_names[op]);
	if ((plan->ext_cap && !plan->ext) || (plan->lock_cap && !plan->lock))
		return fm_err(-EINVAL, "planner: capacity given without an array");

	plan->first_grain = first;
	plan->last_grain = last;
	w = (struct walk){ .plan = plan, .g = g, .io_start = offset,
			   .io_end = offset + length };

	gr = first;
	for (;;) {
		/* Invariant: grains [first, gr) emitted, gr <= last. */
		uint64_t left = last - gr + 1, n = 1, run = 0;
		enum fm_extent_kind kind = FM_EXT_DIRECT;

		if (!consult) {
			n = left;
		} else if (is_split(ctx, gr, &run)) {
			n = run ? run : 1;
			if (n > left)
				n = left;
		} else {
			kind = unsplit_kind(&w, op, gr);
		}
		emit(&w, kind, gr, gr + n - 1);
		if (n == left)
			break;
		gr += n;
	}
	close_extent(&w);
	if (w.has_lk)
		close_lock(&w);

	if (plan->ext_count > plan->ext_cap || plan->lock_count > plan->lock_cap)
		return fm_err(-ENOSPC,
			      "planner: plan needs %llu extents and %llu lock ranges, room for %llu and %llu",
			      (unsigned long long)plan->ext_count,
			      (unsigned long long)plan->lock_count,
			      (unsigned long long)plan->ext_cap,
			      (unsigned long long)plan->lock_cap);
	return 0;
}
