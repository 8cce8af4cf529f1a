/* planner.h -- the I/O planner: what FlashCopy work a host I/O needs.
 *
 * Given an I/O (read or write, on the source or the target volume of a
 * mapping), the mapping's geometry, whether copy-on-write is active and a
 * way to ask "is this grain split", the planner cuts the I/O into extents,
 * each needing one kind of work, and lists the grains that must be locked
 * while that work runs.  It does no I/O and takes no lock itself.
 *
 * Per grain, while COW is active (mapping in COPYING):
 *
 *   op            grain split   grain unsplit
 *   read source   DIRECT        DIRECT
 *   write source  DIRECT        COPY_THEN_WRITE   (preserve old data first)
 *   read target   DIRECT        REDIRECT_TO_SOURCE
 *   write target  DIRECT        WRITE_AND_SPLIT   if the write covers the
 *                                                 whole grain (a partial last
 *                                                 grain counts as whole when
 *                                                 covered to the volume end)
 *                               COPY_THEN_WRITE   otherwise
 *
 * When COW is not active every extent is DIRECT.  Adjacent grains of the
 * same kind merge into one extent; each extent's bytes are the I/O's bytes
 * within its grains.  Every COPY_THEN_WRITE and WRITE_AND_SPLIT grain is
 * listed in the lock ranges (contiguous lock grains merge, whatever their
 * kind).  Bounds: extents <= grains touched, lock ranges <= extents.
 */
#ifndef FLASHMETA_PLANNER_H
#define FLASHMETA_PLANNER_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "flashmeta/geometry.h"

#ifdef __cplusplus
extern "C" {
#endif

enum fm_io_op {
	FM_IO_READ_SOURCE = 0,
	FM_IO_WRITE_SOURCE = 1,
	FM_IO_READ_TARGET = 2,
	FM_IO_WRITE_TARGET = 3,
	FM_IO_OP_COUNT
};

enum fm_extent_kind {
	FM_EXT_DIRECT = 0,             /* no FlashCopy work: do the I/O as asked */
	FM_EXT_REDIRECT_TO_SOURCE = 1, /* target read of unsplit grains: read the source */
	FM_EXT_COPY_THEN_WRITE = 2,    /* copy source grain to target, mark split, then write */
	FM_EXT_WRITE_AND_SPLIT = 3,    /* target write covers whole grains: write, mark split */
	FM_EXT_KIND_COUNT
};

struct fm_extent {
	uint64_t offset;      /* bytes, volume offset (inside the I/O's range) */
	uint64_t length;      /* bytes, > 0 */
	uint64_t first_grain; /* grains [first_grain, last_grain] */
	uint64_t last_grain;
	enum fm_extent_kind kind;
};

/*
 * A plan: the caller owns both arrays (the planner never allocates) and
 * sets the *_cap fields; fm_plan_io() fills the rest.
 */
struct fm_plan {
	struct fm_extent *ext;       /* in: array of ext_cap entries */
	struct fm_grain_range *lock; /* in: array of lock_cap entries (NULL if 0) */
	uint64_t ext_cap;
	uint64_t lock_cap;
	/* out (also on -ENOSPC: the numbers NEEDED, see fm_plan_io) */
	uint64_t ext_count;
	uint64_t lock_count;
	uint64_t first_grain; /* grains touched by the I/O */
	uint64_t last_grain;
};

/*
 * The split-state source, shaped like fm_cache_lookup(): return true when
 * grain `grain` is known split and set *run to the number (>= 1) of
 * consecutive split grains starting at `grain`; return false when it is
 * not known split (the planner treats it as unsplit; *run is ignored).
 * Runs longer than the I/O are fine (clamped); a run of 0 counts as 1.
 */
typedef bool (*fm_split_fn)(void *ctx, uint64_t grain, uint64_t *run);

static inline void fm_plan_setup(struct fm_plan *p, struct fm_extent *ext,
				 uint64_t ext_cap, struct fm_grain_range *lock,
				 uint64_t lock_cap)
{
	/* memset and stores, not a compound literal: C++ includes this too */
	memset(p, 0, sizeof(*p));
	p->ext = ext;
	p->lock = lock;
	p->ext_cap = ext_cap;
	p->lock_cap = lock_cap;
}

/*
 * fm_plan_io -- plan the I/O `op` on bytes [offset, offset + length).
 *
 * cow_active: the mapping is COPYING (COW rules apply); false plans one
 * DIRECT extent.  is_split/ctx: the split-state source; it may be NULL
 * when it is never consulted (cow_active false, or op READ_SOURCE).
 *
 * Returns 0 with the plan filled, or:
 *   -EINVAL  NULL plan/geometry, unknown op, is_split NULL when needed,
 *            length 0, offset or length not a multiple of FM_SECTOR_SIZE;
 *   -ERANGE  the bytes run past the volume end;
 *   -ENOSPC  ext_cap or lock_cap too small: ext_count and lock_count hold
 *            the numbers needed (retry with at least those), the arrays
 *            hold the first entries that fit.
 * On -EINVAL/-ERANGE the counts are 0.  The message says what was wrong.
 *
 * Cost: no allocation, no lock, no blocking of its own; one is_split call
 * per confirmed-split run and one per unsplit grain in the I/O (none when
 * COW is inactive or for source reads).  Safe from any thread if is_split is.
 */
int fm_plan_io(struct fm_plan *plan, const struct fm_geom *g, bool cow_active,
	       enum fm_io_op op, uint64_t offset, uint64_t length,
	       fm_split_fn is_split, void *ctx);

/* Names for logs ("write_target", "copy_then_write"); "?" if out of range. */
const char *fm_io_op_name(enum fm_io_op op);
const char *fm_extent_kind_name(enum fm_extent_kind k);

#ifdef __cplusplus
}
#endif

#endif /* FLASHMETA_PLANNER_H */
