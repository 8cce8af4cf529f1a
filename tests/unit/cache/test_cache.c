/* test_cache.c -- unit and randomized differential tests of the
 * confirmation-range cache against a plain bitmap reference. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "flashmeta/cache.h"
#include "flashmeta/error.h"

/* ---- fixtures ---- */

static struct fm_cache *new_cache(size_t budget)
{
	struct fm_cache_cfg cfg = { .budget_bytes = budget };
	struct fm_cache *c = NULL;

	assert_int_equal(fm_cache_new(&c, &cfg), 0);
	assert_non_null(c);
	return c;
}

/* A cache with mapping 7 of `grains` grains, granted generation 1. */
static struct fm_cache *granted(uint64_t grains, uint64_t *epoch)
{
	struct fm_cache *c = new_cache(0);

	assert_int_equal(fm_cache_map_add(c, 7, grains), 0);
	assert_int_equal(fm_cache_map_grant(c, 7, 1), 0);
	assert_int_equal(fm_cache_map_epoch(c, 7, epoch), 0);
	return c;
}

static uint64_t nranges(struct fm_cache *c)
{
	struct fm_cache_stats st;

	fm_cache_stats(c, &st);
	return st.ranges;
}

/* lookup that must hit with exactly `run` */
static void expect_run(struct fm_cache *c, uint64_t g, uint64_t run)
{
	uint64_t r = 0;

	assert_true(fm_cache_lookup(c, 7, g, &r));
	assert_int_equal(r, run);
}

static void expect_miss(struct fm_cache *c, uint64_t g)
{
	uint64_t r = 12345;

	assert_false(fm_cache_lookup(c, 7, g, &r));
}

/* ---- the benchmarks' "no cache" baseline ---- */

static void keep_nothing__inserts_checked_then_dropped__lookups_miss(void **state)
{
	struct fm_cache_cfg cfg = { .keep_nothing = true };
	struct fm_cache_stats st;
	struct fm_cache *c = NULL;
	uint64_t epoch;

	(void)state;
	assert_int_equal(fm_cache_new(&c, &cfg), 0);
	assert_int_equal(fm_cache_map_add(c, 7, 100), 0);
	assert_int_equal(fm_cache_map_grant(c, 7, 1), 0);
	assert_int_equal(fm_cache_map_epoch(c, 7, &epoch), 0);
	assert_int_equal(fm_cache_insert(c, 7, epoch, 10, 20), 0);
	expect_miss(c, 10);
	expect_miss(c, 15);
	assert_int_equal(nranges(c), 0);
	/* still checked: a stale epoch and a range beyond the map fail */
	assert_int_equal(fm_cache_insert(c, 7, epoch + 1, 10, 20), -ESTALE);
	assert_int_equal(fm_cache_insert(c, 7, epoch, 90, 100), -ERANGE);
	fm_cache_stats(c, &st);
	assert_int_equal(st.inserts, 1);
	assert_int_equal(st.hits, 0);
	fm_cache_delete(&c);
}

/* ---- merging ---- */

static void insert__left_neighbour__one_range(void **state)
{
	(void)state;
	uint64_t e;
	struct fm_cache *c = granted(1000, &e);

	assert_int_equal(fm_cache_insert(c, 7, e, 10, 19), 0);
	assert_int_equal(fm_cache_insert(c, 7, e, 20, 29), 0);
	assert_int_equal(nranges(c), 1);
	expect_run(c, 10, 20);
	expect_run(c, 25, 5);
	expect_miss(c, 9);
	expect_miss(c, 30);
	fm_cache_delete(&c);
	assert_null(c);
}

static void insert__right_neighbour__one_range(void **state)
{
	(void)state;
	uint64_t e;
	struct fm_cache *c = granted(1000, &e);

	assert_int_equal(fm_cache_insert(c, 7, e, 20, 29), 0);
	assert_int_equal(fm_cache_insert(c, 7, e, 10, 19), 0);
	assert_int_equal(nranges(c), 1);
	expect_run(c, 10, 20);
	fm_cache_delete(&c);
}

static void insert__both_neighbours__one_range(void **state)
{
	(void)state;
	uint64_t e;
	struct fm_cache_stats st;
	struct fm_cache *c = granted(1000, &e);

	assert_int_equal(fm_cache_insert(c, 7, e, 0, 9), 0);
	assert_int_equal(fm_cache_insert(c, 7, e, 20, 29), 0);
	assert_int_equal(nranges(c), 2);
	assert_int_equal(fm_cache_insert(c, 7, e, 10, 19), 0);
	assert_int_equal(nranges(c), 1);
	expect_run(c, 0, 30);
	fm_cache_stats(c, &st);
	assert_int_equal(st.merges, 2);
	fm_cache_delete(&c);
}

static void insert__overlaps__one_range(void **state)
{
	(void)state;
	uint64_t e;
	struct fm_cache *c = granted(100000, &e);

	/* many small ranges, then one covering them and overlapping edges */
	for (uint64_t g = 100; g < 5000; g += 7)
		assert_int_equal(fm_cache_insert(c, 7, e, g, g + 2), 0);
	assert_true(nranges(c) > 100);
	assert_int_equal(fm_cache_insert(c, 7, e, 101, 4999), 0);
	assert_int_equal(nranges(c), 1);
	expect_run(c, 100, 4900);
	expect_miss(c, 99);
	expect_miss(c, 5000);
	/* an insert inside changes nothing */
	assert_int_equal(fm_cache_insert(c, 7, e, 300, 400), 0);
	assert_int_equal(nranges(c), 1);
	expect_run(c, 4999, 1);
	fm_cache_delete(&c);
}

static void insert__contiguous_singles__one_range(void **state)
{
	(void)state;
	uint64_t e, n = 70000;
	struct fm_cache *c = granted(n, &e);

	/* odd grains first (n/2 ranges, the directory grows), then even */
	for (uint64_t g = 1; g < n; g += 2)
		assert_int_equal(fm_cache_insert(c, 7, e, g, g), 0);
	assert_int_equal(nranges(c), n / 2);
	expect_run(c, 1, 1);
	expect_miss(c, 0);
	for (uint64_t g = 0; g < n; g += 2)
		assert_int_equal(fm_cache_insert(c, 7, e, g, g), 0);
	assert_int_equal(nranges(c), 1);
	expect_run(c, 0, n);
	expect_run(c, n - 1, 1);
	expect_run(c, 12345, n - 12345);
	fm_cache_delete(&c);
}

/* ---- no_merge: the benchmarks' "one range per fill" baseline ---- */

static struct fm_cache *granted_no_merge(uint64_t grains, uint64_t *epoch)
{
	struct fm_cache_cfg cfg = { .no_merge = true };
	struct fm_cache *c = NULL;

	assert_int_equal(fm_cache_new(&c, &cfg), 0);
	assert_int_equal(fm_cache_map_add(c, 7, grains), 0);
	assert_int_equal(fm_cache_map_grant(c, 7, 1), 0);
	assert_int_equal(fm_cache_map_epoch(c, 7, epoch), 0);
	return c;
}

static void no_merge__touching_fills__one_range_each(void **state)
{
	(void)state;
	uint64_t e;
	struct fm_cache_stats st;
	struct fm_cache *c = granted_no_merge(1000, &e);

	assert_int_equal(fm_cache_insert(c, 7, e, 10, 19), 0);
	assert_int_equal(fm_cache_insert(c, 7, e, 20, 29), 0); /* right of it */
	assert_int_equal(fm_cache_insert(c, 7, e, 0, 9), 0);   /* left of it */
	assert_int_equal(nranges(c), 3);
	expect_run(c, 0, 10);
	expect_run(c, 10, 10);
	expect_run(c, 15, 5);
	expect_run(c, 20, 10);
	expect_miss(c, 30);
	fm_cache_stats(c, &st);
	assert_int_equal(st.merges, 0);
	/* discarding one leaves its neighbours as they were */
	assert_int_equal(fm_cache_discard_range(c, 7, 10, 19), 0);
	assert_int_equal(nranges(c), 2);
	expect_run(c, 0, 10);
	expect_miss(c, 10);
	expect_run(c, 20, 10);
	fm_cache_delete(&c);
}

static void no_merge__overlap__absorbed_not_the_touching(void **state)
{
	(void)state;
	uint64_t e;
	struct fm_cache *c = granted_no_merge(1000, &e);

	assert_int_equal(fm_cache_insert(c, 7, e, 10, 19), 0);
	assert_int_equal(fm_cache_insert(c, 7, e, 30, 39), 0);
	assert_int_equal(fm_cache_insert(c, 7, e, 40, 49), 0);
	/* overlaps [10, 19] and [30, 39], touches [40, 49] */
	assert_int_equal(fm_cache_insert(c, 7, e, 15, 35), 0);
	assert_int_equal(nranges(c), 2);
	expect_run(c, 10, 30);
	expect_run(c, 40, 10);
	/* inside one range: nothing changes */
	assert_int_equal(fm_cache_insert(c, 7, e, 12, 13), 0);
	assert_int_equal(nranges(c), 2);
	expect_run(c, 10, 30);
	fm_cache_delete(&c);
}

static void no_merge__contiguous_singles__stay_singles(void **state)
{
	(void)state;
	uint64_t e, n = 70000;
	struct fm_cache *c = granted_no_merge(n, &e);

	/* the same fills as insert__contiguous_singles__one_range: every grain
	 * its own range, also where a range starts a bucket (the directory
	 * grows to 2^0..2^1-grain buckets on the way) */
	for (uint64_t g = 1; g < n; g += 2)
		assert_int_equal(fm_cache_insert(c, 7, e, g, g), 0);
	for (uint64_t g = 0; g < n; g += 2)
		assert_int_equal(fm_cache_insert(c, 7, e, g, g), 0);
	assert_int_equal(nranges(c), n);
	for (uint64_t g = 0; g < n; g += 997)
		expect_run(c, g, 1);
	/* one fill over all of them absorbs them: one range */
	assert_int_equal(fm_cache_insert(c, 7, e, 0, n - 1), 0);
	assert_int_equal(nranges(c), 1);
	expect_run(c, 0, n);
	fm_cache_delete(&c);
}

/* ---- discard ---- */

static void discard__middle__splits_in_two(void **state)
{
	(void)state;
	uint64_t e;
	struct fm_cache *c = granted(1 << 20, &e);

	assert_int_equal(fm_cache_insert(c, 7, e, 1000, 900000), 0);
	assert_int_equal(fm_cache_discard_range(c, 7, 5000, 6000), 0);
	assert_int_equal(nranges(c), 2);
	expect_run(c, 1000, 4000);
	expect_run(c, 4999, 1);
	expect_miss(c, 5000);
	expect_miss(c, 6000);
	expect_run(c, 6001, 900000 - 6000);
	/* edges: trim both ends, then discard something not cached */
	assert_int_equal(fm_cache_discard_range(c, 7, 0, 1000), 0);
	assert_int_equal(fm_cache_discard_range(c, 7, 899999, 1000000), 0);
	expect_run(c, 1001, 3999);
	expect_run(c, 6001, 899998 - 6000);
	assert_int_equal(fm_cache_discard_range(c, 7, 950000, 960000), 0);
	assert_int_equal(nranges(c), 2);
	/* a discard spanning both ranges */
	assert_int_equal(fm_cache_discard_range(c, 7, 2000, 800000), 0);
	assert_int_equal(nranges(c), 2);
	expect_run(c, 1001, 999);
	expect_run(c, 800001, 899998 - 800000);
	assert_int_equal(fm_cache_discard_range(c, 7, 0, (1 << 20) - 1), 0);
	assert_int_equal(nranges(c), 0);
	expect_miss(c, 1500);
	fm_cache_delete(&c);
}

static void discard__bad_range__erange(void **state)
{
	(void)state;
	uint64_t e;
	struct fm_cache *c = granted(100, &e);

	assert_int_equal(fm_cache_discard_range(c, 7, 5, 4), -ERANGE);
	assert_int_equal(fm_cache_discard_range(c, 7, 0, 100), -ERANGE);
	assert_int_equal(fm_cache_discard_range(c, 8, 0, 1), -ENOENT);
	assert_true(strlen(fm_errormsg()) > 0);
	fm_cache_delete(&c);
}

/* ---- validity ---- */

static void epoch__discard_between__estale(void **state)
{
	(void)state;
	uint64_t e, e2;
	struct fm_cache_stats st;
	struct fm_cache *c = granted(100, &e);

	/* a fill asked the owner, a release request came in, the answer lands */
	assert_int_equal(fm_cache_map_discard(c, 7), 0);
	assert_int_equal(fm_cache_map_epoch(c, 7, &e2), -EAGAIN);
	assert_int_equal(fm_cache_insert(c, 7, e, 1, 2), -ESTALE);
	assert_int_equal(fm_cache_map_grant(c, 7, 1), 0);
	assert_int_equal(fm_cache_insert(c, 7, e, 1, 2), -ESTALE);
	expect_miss(c, 1);
	assert_int_equal(fm_cache_map_epoch(c, 7, &e2), 0);
	assert_true(e2 != e);
	assert_int_equal(fm_cache_insert(c, 7, e2, 1, 2), 0);
	expect_run(c, 1, 2);
	/* discard_range moves the epoch too */
	assert_int_equal(fm_cache_discard_range(c, 7, 50, 60), 0);
	assert_int_equal(fm_cache_insert(c, 7, e2, 50, 60), -ESTALE);
	expect_miss(c, 55);
	fm_cache_stats(c, &st);
	assert_int_equal(st.stale, 3);
	fm_cache_delete(&c);
}

static void map_discard__ranges__all_miss(void **state)
{
	(void)state;
	uint64_t e;
	struct fm_cache *c = granted(1000, &e);

	assert_int_equal(fm_cache_insert(c, 7, e, 0, 999), 0);
	expect_run(c, 0, 1000);
	assert_int_equal(fm_cache_map_discard(c, 7), 0);
	expect_miss(c, 0);
	assert_int_equal(nranges(c), 0);
	assert_int_equal(fm_cache_map_grant(c, 7, 1), 0);
	expect_miss(c, 0);
	fm_cache_delete(&c);
}

static void grant__new_generation__drops_ranges(void **state)
{
	(void)state;
	uint64_t e, e2;
	struct fm_cache *c = granted(1000, &e);

	assert_int_equal(fm_cache_insert(c, 7, e, 10, 20), 0);
	assert_int_equal(fm_cache_map_grant(c, 7, 1), 0); /* same: kept */
	expect_run(c, 10, 11);
	assert_int_equal(fm_cache_map_grant(c, 7, 2), 0); /* new: dropped */
	expect_miss(c, 10);
	assert_int_equal(nranges(c), 0);
	assert_int_equal(fm_cache_insert(c, 7, e, 10, 20), -ESTALE);
	assert_int_equal(fm_cache_map_epoch(c, 7, &e2), 0);
	assert_int_equal(fm_cache_insert(c, 7, e2, 10, 20), 0);
	expect_run(c, 15, 6);
	fm_cache_delete(&c);
}

static void lookup__invalid_mapping__misses(void **state)
{
	(void)state;
	struct fm_cache *c = new_cache(0);
	uint64_t e;

	assert_int_equal(fm_cache_map_add(c, 7, 100), 0);
	expect_miss(c, 1); /* added, no grant yet */
	assert_int_equal(fm_cache_map_epoch(c, 7, &e), -EAGAIN);
	assert_int_equal(fm_cache_insert(c, 7, 1, 0, 1), -ESTALE);
	assert_false(fm_cache_lookup(c, 99, 1, NULL)); /* unknown */
	assert_int_equal(fm_cache_map_grant(c, 7, 3), 0);
	assert_int_equal(fm_cache_map_epoch(c, 7, &e), 0);
	assert_int_equal(fm_cache_insert(c, 7, e, 0, 99), 0);
	assert_true(fm_cache_lookup(c, 7, 99, NULL));
	expect_miss(c, 100); /* out of range */
	expect_miss(c, UINT64_MAX);
	assert_int_equal(fm_cache_map_remove(c, 7), 0);
	expect_miss(c, 1);
	assert_int_equal(fm_cache_map_remove(c, 7), -ENOENT);
	assert_int_equal(fm_cache_map_grant(c, 7, 1), -ENOENT);
	assert_int_equal(fm_cache_map_discard(c, 7), -ENOENT);
	assert_int_equal(fm_cache_map_epoch(c, 7, &e), -ENOENT);
	assert_int_equal(fm_cache_insert(c, 7, e, 0, 1), -ENOENT);
	fm_cache_delete(&c);
}

static void insert__bad_range__erange(void **state)
{
	(void)state;
	uint64_t e;
	struct fm_cache *c = granted(100, &e);

	assert_int_equal(fm_cache_insert(c, 7, e, 0, 100), -ERANGE);
	assert_int_equal(fm_cache_insert(c, 7, e, 9, 8), -ERANGE);
	assert_int_equal(fm_cache_insert(c, 7, e, 99, 99), 0);
	expect_run(c, 99, 1);
	fm_cache_delete(&c);
}

static void new__bad_args__einval(void **state)
{
	(void)state;
	struct fm_cache *c = NULL;

	assert_int_equal(fm_cache_new(&c, NULL), -EINVAL);
	assert_null(c);
	fm_cache_delete(&c); /* NULL-safe */
	fm_cache_delete(NULL);
	c = new_cache(0);
	assert_int_equal(fm_cache_map_add(c, 1, 0), -EINVAL);
	assert_int_equal(fm_cache_map_add(c, 1, UINT64_MAX), -EINVAL);
	assert_int_equal(fm_cache_map_add(c, 1, 10), 0);
	assert_int_equal(fm_cache_map_add(c, 1, 10), -EEXIST);
	/* many mappings: the table grows */
	for (uint64_t id = 100; id < 400; id++)
		assert_int_equal(fm_cache_map_add(c, id, id), 0);
	for (uint64_t id = 100; id < 400; id += 2)
		assert_int_equal(fm_cache_map_remove(c, id), 0);
	for (uint64_t id = 101; id < 400; id += 2) {
		uint64_t e;

		assert_int_equal(fm_cache_map_grant(c, id, 1), 0);
		assert_int_equal(fm_cache_map_epoch(c, id, &e), 0);
		assert_int_equal(fm_cache_insert(c, id, e, id - 1, id - 1), 0);
		assert_true(fm_cache_lookup(c, id, id - 1, NULL));
	}
	fm_cache_delete(&c);
}

/* ---- stats and budget ---- */

static void stats__counts(void **state)
{
	(void)state;
	uint64_t e, r;
	struct fm_cache_stats st;
	struct fm_cache *c = granted(1000, &e);

	fm_cache_stats(c, &st);
	assert_true(st.bytes > 0);
	uint64_t base = st.bytes;

	assert_int_equal(fm_cache_insert(c, 7, e, 0, 9), 0);
	assert_int_equal(fm_cache_insert(c, 7, e, 20, 29), 0);
	assert_int_equal(fm_cache_insert(c, 7, e, 5, 24), 0);
	assert_true(fm_cache_lookup(c, 7, 3, &r));
	assert_false(fm_cache_lookup(c, 7, 30, &r));
	assert_false(fm_cache_lookup(c, 7, 31, NULL));
	assert_int_equal(fm_cache_discard_range(c, 7, 0, 0), 0);
	assert_int_equal(fm_cache_map_discard(c, 7), 0);
	assert_int_equal(fm_cache_insert(c, 7, e, 0, 9), -ESTALE);
	fm_cache_stats(c, &st);
	assert_int_equal(st.lookups, 3);
	assert_int_equal(st.hits, 1);
	assert_int_equal(st.misses, 2);
	assert_int_equal(st.inserts, 3);
	assert_int_equal(st.merges, 2);
	assert_int_equal(st.discards, 2);
	assert_int_equal(st.stale, 1);
	assert_int_equal(st.evictions, 0);
	assert_int_equal(st.ranges, 0);
	assert_true(st.bytes <= base);
	fm_cache_delete(&c);
}

static void budget__many_ranges__evicts_to_fit(void **state)
{
	(void)state;
	size_t budget = 64 * 1024;
	struct fm_cache *c = new_cache(budget);
	struct fm_cache_stats st;
	uint64_t e;

	assert_int_equal(fm_cache_map_add(c, 7, 1 << 20), 0);
	assert_int_equal(fm_cache_map_grant(c, 7, 1), 0);
	assert_int_equal(fm_cache_map_epoch(c, 7, &e), 0);
	for (uint64_t g = 0; g < (1 << 20); g += 16) {
		assert_int_equal(fm_cache_insert(c, 7, e, g, g + 4), 0);
		fm_cache_stats(c, &st);
		assert_true(st.bytes <= budget);
	}
	fm_cache_stats(c, &st);
	assert_true(st.evictions > 0);
	assert_true(st.ranges > 100);
	assert_true(st.ranges < (1 << 20) / 16);
	/* the last insert survived: least recently used went first */
	expect_run(c, (1 << 20) - 16, 5);
	fm_cache_delete(&c);
}

static void budget__referenced__survives(void **state)
{
	(void)state;
	size_t budget = 32 * 1024;
	struct fm_cache *c = new_cache(budget);
	uint64_t e, hot = 0;

	assert_int_equal(fm_cache_map_add(c, 7, 1 << 20), 0);
	assert_int_equal(fm_cache_map_grant(c, 7, 1), 0);
	assert_int_equal(fm_cache_map_epoch(c, 7, &e), 0);
	assert_int_equal(fm_cache_insert(c, 7, e, hot, hot + 3), 0);
	for (uint64_t g = 64; g < (1 << 20); g += 32) {
		assert_int_equal(fm_cache_insert(c, 7, e, g, g + 1), 0);
		assert_true(fm_cache_lookup(c, 7, hot, NULL)); /* kept hot */
	}
	fm_cache_delete(&c);
}

/* ---- randomized differential test against a bitmap ---- */

struct rng {
	uint64_t s;
};

static uint64_t rnd(struct rng *r)
{
	/* splitmix64 */
	uint64_t z = (r->s += UINT64_C(0x9E3779B97F4A7C15));

	z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
	z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
	return z ^ (z >> 31);
}

static uint64_t rnd_below(struct rng *r, uint64_t n)
{
	return rnd(r) % n;
}

#define NMAPS 3

struct ref_map {
	uint64_t grains;
	uint64_t *bits; /* told split under the current validity */
	bool no_merge;  /* the cache under test: fm_cache_cfg.no_merge */
	uint32_t *rid;  /* no_merge: the range holding each grain (0: none) */
	uint32_t next_id;
	bool valid;
	uint64_t gen;
	uint64_t epoch, old_epoch; /* current token, and one made stale */
};

static bool ref_test(const struct ref_map *rm, uint64_t g)
{
	return g < rm->grains && (rm->bits[g / 64] >> (g % 64)) & 1;
}

static void ref_fill(struct ref_map *rm, uint64_t first, uint64_t last, bool v)
{
	if (!v)
		memset(rm->rid + first, 0, (last - first + 1) * sizeof(*rm->rid));
	for (uint64_t g = first; g <= last; g++) {
		if (g % 64 == 0 && g + 63 <= last) {
			rm->bits[g / 64] = v ? ~UINT64_C(0) : 0;
			g += 63;
			continue;
		}
		if (v)
			rm->bits[g / 64] |= UINT64_C(1) << (g % 64);
		else
			rm->bits[g / 64] &= ~(UINT64_C(1) << (g % 64));
	}
}

/* A fill as no_merge keeps it: [first, last] and every range it overlaps
 * become one new range; a range it only touches stays apart. */
static void ref_insert(struct ref_map *rm, uint64_t first, uint64_t last)
{
	uint64_t ms = first, ml = last;
	uint32_t id = ++rm->next_id;

	while (ms > 0 && rm->rid[ms] && rm->rid[ms - 1] == rm->rid[ms])
		ms--;
	while (ml + 1 < rm->grains && rm->rid[ml] && rm->rid[ml + 1] == rm->rid[ml])
		ml++;
	for (uint64_t g = ms; g <= ml; g++)
		rm->rid[g] = id;
	ref_fill(rm, first, last, true);
}

/* no_merge: the grains from g on in g's range */
static uint64_t ref_rid_run(const struct ref_map *rm, uint64_t g)
{
	uint64_t n = 0;

	if (g >= rm->grains || !rm->rid[g])
		return 0;
	while (g + n < rm->grains && rm->rid[g + n] == rm->rid[g])
		n++;
	return n;
}

static uint64_t ref_count_ranges(const struct ref_map *rm)
{
	uint64_t n = 0;

	for (uint64_t g = 0; g < rm->grains; g++)
		if (rm->rid[g] && (g == 0 || rm->rid[g - 1] != rm->rid[g]))
			n++;
	return n;
}

/* Split grains from g on (word at a time). */
static uint64_t ref_run(const struct ref_map *rm, uint64_t g)
{
	uint64_t n = 0;

	while (g + n < rm->grains) {
		uint64_t x = g + n, w = ~rm->bits[x / 64] >> (x % 64);

		if (w) {
			n += (uint64_t)__builtin_ctzll(w);
			break;
		}
		n += 64 - x % 64;
	}
	return g + n > rm->grains ? rm->grains - g : n;
}

static uint64_t ref_count_runs(const struct ref_map *rm)
{
	uint64_t n = 0;

	for (uint64_t g = 0; g < rm->grains; g++)
		if (ref_test(rm, g) && (g == 0 || !ref_test(rm, g - 1)))
			n++;
	return n;
}

/* Random range length: mostly short, sometimes long. */
static uint64_t rnd_len(struct rng *r, uint64_t grains)
{
	uint64_t k = rnd_below(r, 100), len;

	if (k < 70)
		len = 1 + rnd_below(r, 8);
	else if (k < 95)
		len = 1 + rnd_below(r, 200);
	else
		len = 1 + rnd_below(r, grains);
	return len > grains ? grains : len;
}

/* `rrun`: the reference run from g, or UINT64_MAX to compute it. */
static void check_lookup(struct fm_cache *c, uint64_t id, const struct ref_map *rm,
			 uint64_t g, bool exact, uint64_t rrun)
{
	uint64_t run = 0;
	bool hit = fm_cache_lookup(c, id, g, &run);
	bool ref = rm->valid && ref_test(rm, g);

	if (hit) {
		if (rrun == UINT64_MAX)
			rrun = rm->no_merge ? ref_rid_run(rm, g) : ref_run(rm, g);
		/* soundness: split, and the run stays within split grains */
		assert_true(ref);
		assert_true(run >= 1);
		assert_true(run <= rrun);
	}
	if (exact) {
		assert_int_equal(hit, ref);
		if (hit)
			assert_int_equal(run, rrun);
	}
}

static void full_check(struct fm_cache *c, struct ref_map *rm, bool exact,
		       size_t budget)
{
	struct fm_cache_stats st;
	uint64_t runs = 0;

	for (uint64_t id = 0; id < NMAPS; id++) {
		uint64_t rrun = 0;

		for (uint64_t g = rm[id].grains; g-- > 0;) {
			if (!rm[id].no_merge)
				rrun = ref_test(&rm[id], g) ? rrun + 1 : 0;
			else if (!rm[id].rid[g])
				rrun = 0;
			else
				rrun = g + 1 < rm[id].grains && rm[id].rid[g + 1] == rm[id].rid[g]
					       ? rrun + 1
					       : 1;
			check_lookup(c, id, &rm[id], g, exact, rrun);
		}
		if (rm[id].valid)
			runs += rm[id].no_merge ? ref_count_ranges(&rm[id])
						: ref_count_runs(&rm[id]);
	}
	fm_cache_stats(c, &st);
	if (exact)
		assert_int_equal(st.ranges, runs);
	else
		assert_true(st.ranges <= runs);
	if (budget)
		assert_true(st.bytes <= budget || st.ranges == 0);
}

/* One seeded run of `ops` operations; returns the operations done.
 * no_merge: the cache keeps one range per fill, the reference its ranges
 * (rid) -- any merge of touching fills changes a run or the range count. */
static uint64_t differential_run(uint64_t seed, uint64_t ops, size_t budget, bool no_merge)
{
	struct rng r = { seed };
	struct ref_map rm[NMAPS];
	struct fm_cache_cfg cfg = { .budget_bytes = budget, .no_merge = no_merge };
	struct fm_cache *c = NULL;
	bool exact = budget == 0;
	uint64_t done = 0;

	assert_int_equal(fm_cache_new(&c, &cfg), 0);

	for (uint64_t id = 0; id < NMAPS; id++) {
		/* one small, one medium, one spread over many buckets */
		rm[id].grains = id == 0 ? 1 + rnd_below(&r, 64)
			      : id == 1 ? 1000 + rnd_below(&r, 3000)
					: 20000 + rnd_below(&r, 20000);
		rm[id].bits = calloc(rm[id].grains / 64 + 1, sizeof(uint64_t));
		assert_non_null(rm[id].bits);
		rm[id].rid = calloc(rm[id].grains, sizeof(uint32_t));
		assert_non_null(rm[id].rid);
		rm[id].no_merge = no_merge;
		rm[id].next_id = 0;
		rm[id].valid = false;
		rm[id].gen = 0;
		assert_int_equal(fm_cache_map_add(c, id, rm[id].grains), 0);
	}
	for (; done < ops; done++) {
		uint64_t id = rnd_below(&r, NMAPS);
		struct ref_map *m = &rm[id];
		uint64_t k = rnd_below(&r, 1000);
		uint64_t len = rnd_len(&r, m->grains);
		uint64_t first = rnd_below(&r, m->grains - len + 1), last = first + len - 1;

		if (k < 450) { /* lookup */
			check_lookup(c, id, m, rnd_below(&r, m->grains + 2), exact, UINT64_MAX);
		} else if (k < 800) { /* insert (fill) */
			if (!m->valid) {
				assert_int_equal(fm_cache_insert(c, id, m->epoch, first, last),
						 -ESTALE);
				continue;
			}
			assert_int_equal(fm_cache_insert(c, id, m->epoch, first, last), 0);
			ref_insert(m, first, last);
		} else if (k < 950) { /* discard a range */
			assert_int_equal(fm_cache_discard_range(c, id, first, last), 0);
			ref_fill(m, first, last, false);
			if (m->valid) {
				m->old_epoch = m->epoch;
				assert_int_equal(fm_cache_map_epoch(c, id, &m->epoch), 0);
			}
		} else if (k < 965) { /* a fill that raced with a discard */
			if (m->valid && m->old_epoch != m->epoch)
				assert_int_equal(fm_cache_insert(c, id, m->old_epoch, first,
								 last), -ESTALE);
		} else if (k < 975) { /* release request */
			assert_int_equal(fm_cache_map_discard(c, id), 0);
			ref_fill(m, 0, m->grains - 1, false);
			m->valid = false;
		} else if (k < 995) { /* grant: same or new generation */
			uint64_t gen = rnd_below(&r, 3) ? m->gen : m->gen + 1;

			assert_int_equal(fm_cache_map_grant(c, id, gen), 0);
			if (gen != m->gen)
				ref_fill(m, 0, m->grains - 1, false);
			m->gen = gen;
			m->valid = true;
			m->old_epoch = m->epoch;
			assert_int_equal(fm_cache_map_epoch(c, id, &m->epoch), 0);
		} else if (k < 998) { /* fully split, then it must be one range */
			if (!m->valid)
				continue;
			assert_int_equal(fm_cache_insert(c, id, m->epoch, 0, m->grains - 1), 0);
			ref_insert(m, 0, m->grains - 1);
			if (exact)
				check_lookup(c, id, m, 0, true, UINT64_MAX);
		} else if (k == 999 && done % 4 == 0) {
			full_check(c, rm, exact, budget);
		}
	}
	full_check(c, rm, exact, budget);
	for (uint64_t id = 0; id < NMAPS; id++) {
		free(rm[id].bits);
		free(rm[id].rid);
	}
	fm_cache_delete(&c);
	return done;
}

#ifndef FM_DIFF_OPS
#define FM_DIFF_OPS 200000
#endif

static void differential__random_ops__matches_bitmap(void **state)
{
	(void)state;
	uint64_t total = 0;

	for (uint64_t seed = 1; seed <= 4; seed++)
		total += differential_run(seed, FM_DIFF_OPS, 0, false);
	assert_true(total >= 4 * (uint64_t)FM_DIFF_OPS * 9 / 10);
}

static void differential__small_budget__sound(void **state)
{
	(void)state;
	uint64_t total = 0;

	/* budgets from "barely the fixed overhead" to "some hundred ranges" */
	total += differential_run(11, FM_DIFF_OPS / 2, 8 * 1024, false);
	total += differential_run(12, FM_DIFF_OPS / 2, 12 * 1024, false);
	total += differential_run(13, FM_DIFF_OPS / 2, 24 * 1024, false);
	assert_true(total > 0);
}

static void differential__no_merge__matches_ranges_of_fills(void **state)
{
	(void)state;
	uint64_t total = 0;

	for (uint64_t seed = 21; seed <= 24; seed++)
		total += differential_run(seed, FM_DIFF_OPS / 2, 0, true);
	assert_true(total >= 4 * (uint64_t)FM_DIFF_OPS / 2 * 9 / 10);
}

static void differential__no_merge_small_budget__sound(void **state)
{
	(void)state;
	uint64_t total = 0;

	/* an evicted range is gone from the cache, not from the reference:
	 * every cached range lies inside one reference range */
	total += differential_run(31, FM_DIFF_OPS / 2, 12 * 1024, true);
	total += differential_run(32, FM_DIFF_OPS / 2, 24 * 1024, true);
	assert_true(total > 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(keep_nothing__inserts_checked_then_dropped__lookups_miss),
		cmocka_unit_test(insert__left_neighbour__one_range),
		cmocka_unit_test(insert__right_neighbour__one_range),
		cmocka_unit_test(insert__both_neighbours__one_range),
		cmocka_unit_test(insert__overlaps__one_range),
		cmocka_unit_test(insert__contiguous_singles__one_range),
		cmocka_unit_test(discard__middle__splits_in_two),
		cmocka_unit_test(discard__bad_range__erange),
		cmocka_unit_test(epoch__discard_between__estale),
		cmocka_unit_test(map_discard__ranges__all_miss),
		cmocka_unit_test(grant__new_generation__drops_ranges),
		cmocka_unit_test(lookup__invalid_mapping__misses),
		cmocka_unit_test(insert__bad_range__erange),
		cmocka_unit_test(new__bad_args__einval),
		cmocka_unit_test(stats__counts),
		cmocka_unit_test(budget__many_ranges__evicts_to_fit),
		cmocka_unit_test(budget__referenced__survives),
		cmocka_unit_test(differential__random_ops__matches_bitmap),
		cmocka_unit_test(differential__small_budget__sound),
		cmocka_unit_test(no_merge__touching_fills__one_range_each),
		cmocka_unit_test(no_merge__overlap__absorbed_not_the_touching),
		cmocka_unit_test(no_merge__contiguous_singles__stay_singles),
		cmocka_unit_test(differential__no_merge__matches_ranges_of_fills),
		cmocka_unit_test(differential__no_merge_small_budget__sound),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
