/* test_planner.c -- fm_plan_io, exhaustively against a reference model.
 *
 * The reference is the obvious algorithm: classify every grain on its own
 * from a split bitmap, then merge neighbours of the same kind.  The
 * exhaustive test runs every op x COW on/off x split bitmap x sector-aligned
 * (offset, length) on three 4 KiB-grain volumes (last grain partial by 2 KiB,
 * by 1 sector, and not partial) with three is_split behaviours (exact runs,
 * runs of 1, runs of 0), and checks extents, lock ranges, -ENOSPC sizing
 * and the number of is_split calls.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "flashmeta/error.h"
#include "flashmeta/planner.h"

#define GRAIN 4096u
#define SECT FM_SECTOR_SIZE
#define MAX_GRAINS 8

/* ---- split-state source: a bitmap --------------------------------------- */

enum run_mode {
	RUN_EXACT, /* *run = consecutive split grains (what a cache answers) */
	RUN_ONE,   /* *run = 1 always: the planner must not depend on long runs */
	RUN_ZERO,  /* *run = 0: must count as 1 */
	RUN_MODES
};

struct bitmap_src {
	uint64_t grain_count;
	unsigned int bits; /* bit g set = grain g split */
	enum run_mode mode;
	unsigned int calls;
	uint64_t lo, hi; /* every call must ask within [lo, hi] */
};

static bool bitmap_is_split(void *ctx, uint64_t grain, uint64_t *run)
{
	struct bitmap_src *s = ctx;
	uint64_t n = 0;

	s->calls++;
	assert_true(grain >= s->lo && grain <= s->hi);
	if (!(s->bits & (1u << grain)))
		return false;
	while (grain + n < s->grain_count && (s->bits & (1u << (grain + n))))
		n++;
	*run = s->mode == RUN_EXACT ? n : s->mode == RUN_ONE ? 1 : 0;
	return true;
}

/* ---- the reference planner ---------------------------------------------- */

struct ref_plan {
	struct fm_extent ext[MAX_GRAINS];
	struct fm_grain_range lock[MAX_GRAINS];
	unsigned int n_ext, n_lock;
	unsigned int calls; /* is_split calls an optimal planner makes */
};

static bool ref_needs_lock(enum fm_extent_kind k)
{
	return k == FM_EXT_COPY_THEN_WRITE || k == FM_EXT_WRITE_AND_SPLIT;
}

static void ref_plan_io(struct ref_plan *r, uint64_t vol, unsigned int bits,
			bool active, enum fm_io_op op, uint64_t off, uint64_t len)
{
	uint64_t end = off + len;

	memset(r, 0, sizeof(*r));
	for (uint64_t g = off / GRAIN; g <= (end - 1) / GRAIN; g++) {
		uint64_t gs = g * GRAIN;
		uint64_t ge = gs + GRAIN < vol ? gs + GRAIN : vol;
		uint64_t bs = off > gs ? off : gs, be = end < ge ? end : ge;
		bool split = bits & (1u << g);
		bool consult = active && op != FM_IO_READ_SOURCE;
		enum fm_extent_kind k = FM_EXT_DIRECT;

		if (consult) {
			/* A call per unsplit grain and per start of a split run. */
			if (!split || g == off / GRAIN || !(bits & (1u << (g - 1))))
				r->calls++;
			if (!split) {
				if (op == FM_IO_WRITE_SOURCE)
					k = FM_EXT_COPY_THEN_WRITE;
				else if (op == FM_IO_READ_TARGET)
					k = FM_EXT_REDIRECT_TO_SOURCE;
				else if (off <= gs && end >= ge)
					k = FM_EXT_WRITE_AND_SPLIT;
				else
					k = FM_EXT_COPY_THEN_WRITE;
			}
		}
		if (r->n_ext && r->ext[r->n_ext - 1].kind == k) {
			r->ext[r->n_ext - 1].last_grain = g;
			r->ext[r->n_ext - 1].length += be - bs;
		} else {
			r->ext[r->n_ext++] = (struct fm_extent){
				.offset = bs, .length = be - bs,
				.first_grain = g, .last_grain = g, .kind = k };
		}
		if (ref_needs_lock(k)) {
			if (r->n_lock && r->lock[r->n_lock - 1].last == g - 1)
				r->lock[r->n_lock - 1].last = g;
			else
				r->lock[r->n_lock++] = (struct fm_grain_range){ g, g };
		}
	}
}

/* ---- comparison ---------------------------------------------------------- */

static void assert_ext_equal(const struct fm_extent *a, const struct fm_extent *b)
{
	assert_int_equal(a->kind, b->kind);
	assert_true(a->offset == b->offset);
	assert_true(a->length == b->length);
	assert_true(a->first_grain == b->first_grain);
	assert_true(a->last_grain == b->last_grain);
}

static void assert_lock_equal(const struct fm_grain_range *a,
			      const struct fm_grain_range *b)
{
	assert_true(a->first == b->first);
	assert_true(a->last == b->last);
}

/* One case: the full plan, then (exact runs only) both -ENOSPC variants. */
static void check_case(const struct fm_geom *g, unsigned int bits, bool active,
		       enum fm_io_op op, uint64_t off, uint64_t len, enum run_mode mode,
		       unsigned long *n_cases)
{
	struct ref_plan r;
	struct fm_extent ext[MAX_GRAINS + 1];
	struct fm_grain_range lock[MAX_GRAINS + 1];
	struct bitmap_src src = { .grain_count = g->grain_count, .bits = bits,
				  .mode = mode, .lo = off / GRAIN,
				  .hi = (off + len - 1) / GRAIN };
	struct fm_plan p;

	ref_plan_io(&r, g->volume_size, bits, active, op, off, len);

	fm_plan_setup(&p, ext, MAX_GRAINS + 1, lock, MAX_GRAINS + 1);
	assert_int_equal(fm_plan_io(&p, g, active, op, off, len, bitmap_is_split, &src), 0);
	assert_true(p.ext_count == r.n_ext);
	assert_true(p.lock_count == r.n_lock);
	assert_true(p.first_grain == src.lo && p.last_grain == src.hi);
	for (unsigned int i = 0; i < r.n_ext; i++)
		assert_ext_equal(&ext[i], &r.ext[i]);
	for (unsigned int i = 0; i < r.n_lock; i++)
		assert_lock_equal(&lock[i], &r.lock[i]);
	if (mode == RUN_EXACT)
		assert_int_equal(src.calls, r.calls);
	(*n_cases)++;
	if (mode != RUN_EXACT)
		return;

	/* Extents array one short: -ENOSPC, the size needed, a valid prefix. */
	memset(ext, 0, sizeof(ext));
	fm_plan_setup(&p, ext, r.n_ext - 1, lock, MAX_GRAINS + 1);
	assert_int_equal(fm_plan_io(&p, g, active, op, off, len, bitmap_is_split, &src),
			 -ENOSPC);
	assert_true(p.ext_count == r.n_ext && p.lock_count == r.n_lock);
	for (unsigned int i = 0; i + 1 < r.n_ext; i++)
		assert_ext_equal(&ext[i], &r.ext[i]);
	assert_true(ext[r.n_ext - 1].length == 0); /* nothing past the cap */

	if (r.n_lock) {
		fm_plan_setup(&p, ext, MAX_GRAINS + 1, lock, r.n_lock - 1);
		assert_int_equal(fm_plan_io(&p, g, active, op, off, len,
					    bitmap_is_split, &src), -ENOSPC);
		assert_true(p.ext_count == r.n_ext && p.lock_count == r.n_lock);
	}
}

static void plan__exhaustive_small_volumes__match_reference(void **state)
{
	(void)state;
	/* 4.5 grains, 4 grains + 1 sector, exactly 5 grains. */
	const uint64_t vols[] = { 4 * GRAIN + 2048, 4 * GRAIN + SECT, 5 * GRAIN };
	unsigned long n_cases = 0;

	for (size_t v = 0; v < sizeof(vols) / sizeof(vols[0]); v++) {
		struct fm_geom g;
		uint64_t sectors = vols[v] / SECT;

		assert_int_equal(fm_geom_init(&g, vols[v], GRAIN), 0);
		assert_int_equal(g.grain_count, 5);
		for (unsigned int bits = 0; bits < (1u << g.grain_count); bits++)
		for (int active = 0; active <= 1; active++)
		for (int op = 0; op < FM_IO_OP_COUNT; op++)
		for (uint64_t s = 0; s < sectors; s++)
		for (uint64_t n = 1; s + n <= sectors; n++)
		for (int mode = 0; mode < RUN_MODES; mode++)
			check_case(&g, bits, active, op, s * SECT, n * SECT, mode,
				   &n_cases);
	}
	print_message("planner: %lu cases checked against the reference\n", n_cases);
	assert_true(n_cases > 1000000);
}

/* The header's example, by hand: mid grain 0 to mid grain 4, 1-2 split. */
static void plan__design_example__by_hand(void **state)
{
	(void)state;
	struct fm_geom g;
	struct fm_extent ext[8];
	struct fm_grain_range lock[8];
	struct bitmap_src src = { .grain_count = 5, .bits = 0x6, .hi = 4 };
	struct fm_plan p;

	assert_int_equal(fm_geom_init(&g, 5 * GRAIN, GRAIN), 0);
	fm_plan_setup(&p, ext, 8, lock, 8);
	assert_int_equal(fm_plan_io(&p, &g, true, FM_IO_WRITE_TARGET, 1024,
				    4 * GRAIN, bitmap_is_split, &src), 0);
	assert_int_equal(p.ext_count, 4);
	assert_int_equal(ext[0].kind, FM_EXT_COPY_THEN_WRITE);
	assert_int_equal(ext[0].offset, 1024);
	assert_int_equal(ext[0].length, GRAIN - 1024);
	assert_int_equal(ext[1].kind, FM_EXT_DIRECT);
	assert_int_equal(ext[1].first_grain, 1);
	assert_int_equal(ext[1].last_grain, 2);
	assert_int_equal(ext[1].length, 2 * GRAIN);
	assert_int_equal(ext[2].kind, FM_EXT_WRITE_AND_SPLIT);
	assert_int_equal(ext[2].first_grain, 3);
	assert_int_equal(ext[3].kind, FM_EXT_COPY_THEN_WRITE);
	assert_int_equal(ext[3].offset, 4 * GRAIN);
	assert_int_equal(ext[3].length, 1024);
	assert_int_equal(p.lock_count, 2);
	assert_int_equal(lock[0].first, 0);
	assert_int_equal(lock[0].last, 0);
	assert_int_equal(lock[1].first, 3);
	assert_int_equal(lock[1].last, 4);
	assert_int_equal(src.calls, 4); /* 0, run [1..2], 3, 4 */
}

static void plan__whole_partial_last_grain__write_and_split(void **state)
{
	(void)state;
	struct fm_geom g;
	struct fm_extent ext[4];
	struct fm_grain_range lock[4];
	struct bitmap_src src = { .grain_count = 5, .lo = 4, .hi = 4 };
	struct fm_plan p;

	assert_int_equal(fm_geom_init(&g, 4 * GRAIN + 2048, GRAIN), 0);
	fm_plan_setup(&p, ext, 4, lock, 4);
	assert_int_equal(fm_plan_io(&p, &g, true, FM_IO_WRITE_TARGET, 4 * GRAIN, 2048,
				    bitmap_is_split, &src), 0);
	assert_int_equal(p.ext_count, 1);
	assert_int_equal(ext[0].kind, FM_EXT_WRITE_AND_SPLIT);
	assert_int_equal(p.lock_count, 1);
	/* One sector short of the volume end: partial, so copy first. */
	assert_int_equal(fm_plan_io(&p, &g, true, FM_IO_WRITE_TARGET, 4 * GRAIN, 1536,
				    bitmap_is_split, &src), 0);
	assert_int_equal(ext[0].kind, FM_EXT_COPY_THEN_WRITE);
}

static bool all_split(void *ctx, uint64_t grain, uint64_t *run)
{
	(void)grain;
	unsigned int *calls = ctx;

	(*calls)++;
	*run = UINT64_MAX; /* longer than anything: must be clamped */
	return true;
}

static void plan__huge_split_run__one_call(void **state)
{
	(void)state;
	struct fm_geom g;
	struct fm_extent ext[1];
	struct fm_plan p;
	unsigned int calls = 0;

	assert_int_equal(fm_geom_init(&g, FM_VOLUME_SIZE_MAX, GRAIN), 0);
	fm_plan_setup(&p, ext, 1, NULL, 0);
	assert_int_equal(fm_plan_io(&p, &g, true, FM_IO_WRITE_SOURCE, 0,
				    FM_VOLUME_SIZE_MAX, all_split, &calls), 0);
	assert_int_equal(calls, 1);
	assert_int_equal(p.ext_count, 1);
	assert_int_equal(ext[0].kind, FM_EXT_DIRECT);
	assert_true(ext[0].length == FM_VOLUME_SIZE_MAX);
	assert_true(ext[0].last_grain == g.grain_count - 1);
	/* Tail of the volume only: the run is clamped to the I/O. */
	calls = 0;
	assert_int_equal(fm_plan_io(&p, &g, true, FM_IO_READ_TARGET,
				    FM_VOLUME_SIZE_MAX - GRAIN - SECT, 2 * SECT,
				    all_split, &calls), 0);
	assert_int_equal(calls, 1);
	assert_true(ext[0].first_grain == g.grain_count - 2);
	assert_true(ext[0].last_grain == g.grain_count - 1);
}

static bool must_not_be_called(void *ctx, uint64_t grain, uint64_t *run)
{
	(void)ctx;
	(void)run;
	fail_msg("is_split called for grain %llu", (unsigned long long)grain);
	return false;
}

static void plan__inactive_or_source_read__direct_no_calls(void **state)
{
	(void)state;
	struct fm_geom g;
	struct fm_extent ext[1];
	struct fm_plan p;

	assert_int_equal(fm_geom_init(&g, 5 * GRAIN, GRAIN), 0);
	fm_plan_setup(&p, ext, 1, NULL, 0);
	for (int op = 0; op < FM_IO_OP_COUNT; op++) {
		assert_int_equal(fm_plan_io(&p, &g, false, op, SECT, 4 * GRAIN,
					    must_not_be_called, NULL), 0);
		assert_int_equal(p.ext_count, 1);
		assert_int_equal(p.lock_count, 0);
		assert_int_equal(ext[0].kind, FM_EXT_DIRECT);
		/* NULL is fine when nothing is consulted. */
		assert_int_equal(fm_plan_io(&p, &g, false, op, 0, GRAIN, NULL, NULL), 0);
	}
	assert_int_equal(fm_plan_io(&p, &g, true, FM_IO_READ_SOURCE, 0, 5 * GRAIN,
				    NULL, NULL), 0);
	assert_int_equal(ext[0].kind, FM_EXT_DIRECT);
}

static void plan__invalid_inputs__einval_erange(void **state)
{
	(void)state;
	struct fm_geom g;
	struct fm_extent ext[8];
	struct fm_grain_range lock[8];
	struct bitmap_src src = { .grain_count = 5, .hi = 4 };
	struct fm_plan p;

	assert_int_equal(fm_geom_init(&g, 5 * GRAIN, GRAIN), 0);
	fm_plan_setup(&p, ext, 8, lock, 8);
	p.ext_count = p.lock_count = 99;

	assert_int_equal(fm_plan_io(&p, &g, true, FM_IO_WRITE_TARGET, 1, SECT,
				    bitmap_is_split, &src), -EINVAL);
	assert_non_null(strstr(fm_errormsg(), "sector aligned"));
	assert_int_equal(p.ext_count, 0);
	assert_int_equal(p.lock_count, 0);
	assert_int_equal(fm_plan_io(&p, &g, true, FM_IO_WRITE_TARGET, 0, SECT + 1,
				    bitmap_is_split, &src), -EINVAL);
	assert_int_equal(fm_plan_io(&p, &g, true, FM_IO_WRITE_TARGET, 0, 0,
				    bitmap_is_split, &src), -EINVAL);
	assert_int_equal(fm_plan_io(&p, &g, true, FM_IO_OP_COUNT, 0, SECT,
				    bitmap_is_split, &src), -EINVAL);
	assert_int_equal(fm_plan_io(&p, &g, true, (enum fm_io_op)-1, 0, SECT,
				    bitmap_is_split, &src), -EINVAL);
	assert_int_equal(fm_plan_io(&p, &g, true, FM_IO_READ_TARGET, 0, SECT,
				    NULL, NULL), -EINVAL);
	assert_non_null(strstr(fm_errormsg(), "is_split"));
	assert_int_equal(fm_plan_io(NULL, &g, true, FM_IO_READ_TARGET, 0, SECT,
				    bitmap_is_split, &src), -EINVAL);
	assert_int_equal(fm_plan_io(&p, NULL, true, FM_IO_READ_TARGET, 0, SECT,
				    bitmap_is_split, &src), -EINVAL);
	p.ext = NULL;
	assert_int_equal(fm_plan_io(&p, &g, true, FM_IO_READ_TARGET, 0, SECT,
				    bitmap_is_split, &src), -EINVAL);
	p.ext = ext;

	assert_int_equal(fm_plan_io(&p, &g, true, FM_IO_READ_TARGET, 5 * GRAIN, SECT,
				    bitmap_is_split, &src), -ERANGE);
	assert_int_equal(fm_plan_io(&p, &g, true, FM_IO_READ_TARGET, 0, 5 * GRAIN + SECT,
				    bitmap_is_split, &src), -ERANGE);
	assert_int_equal(fm_plan_io(&p, &g, true, FM_IO_READ_TARGET, SECT,
				    UINT64_MAX - SECT + 1, bitmap_is_split, &src), -ERANGE);
	assert_int_equal(fm_plan_io(&p, &g, true, FM_IO_READ_TARGET,
				    UINT64_MAX - SECT + 1, SECT, bitmap_is_split, &src),
			 -ERANGE);
	assert_int_equal(p.ext_count, 0);
	assert_int_equal(src.calls, 0);
}

static void plan__zero_capacity__enospc_with_sizes(void **state)
{
	(void)state;
	struct fm_geom g;
	struct bitmap_src src = { .grain_count = 5, .bits = 0x4, .hi = 4 };
	struct fm_plan p;

	/* A dry run with no arrays at all tells the caller what to allocate. */
	assert_int_equal(fm_geom_init(&g, 5 * GRAIN, GRAIN), 0);
	fm_plan_setup(&p, NULL, 0, NULL, 0);
	assert_int_equal(fm_plan_io(&p, &g, true, FM_IO_WRITE_SOURCE, 0, 5 * GRAIN,
				    bitmap_is_split, &src), -ENOSPC);
	assert_non_null(strstr(fm_errormsg(), "needs 3 extents and 2 lock ranges"));
	assert_int_equal(p.ext_count, 3);
	assert_int_equal(p.lock_count, 2);
}

static void names__all__distinct(void **state)
{
	(void)state;
	for (int i = 0; i < FM_IO_OP_COUNT; i++)
		for (int j = 0; j < i; j++)
			assert_string_not_equal(fm_io_op_name(i), fm_io_op_name(j));
	for (int i = 0; i < FM_EXT_KIND_COUNT; i++)
		for (int j = 0; j < i; j++)
			assert_string_not_equal(fm_extent_kind_name(i),
						fm_extent_kind_name(j));
	assert_string_equal(fm_io_op_name(FM_IO_OP_COUNT), "?");
	assert_string_equal(fm_extent_kind_name(FM_EXT_KIND_COUNT), "?");
	assert_string_equal(fm_extent_kind_name(FM_EXT_WRITE_AND_SPLIT), "write_and_split");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(plan__exhaustive_small_volumes__match_reference),
		cmocka_unit_test(plan__design_example__by_hand),
		cmocka_unit_test(plan__whole_partial_last_grain__write_and_split),
		cmocka_unit_test(plan__huge_split_run__one_call),
		cmocka_unit_test(plan__inactive_or_source_read__direct_no_calls),
		cmocka_unit_test(plan__invalid_inputs__einval_erange),
		cmocka_unit_test(plan__zero_capacity__enospc_with_sizes),
		cmocka_unit_test(names__all__distinct),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
