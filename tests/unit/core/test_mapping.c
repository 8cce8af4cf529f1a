/* test_mapping.c -- the mapping state machine, every (state, event) pair;
 * which mappings may live together (fm_mapping_admit). */
#include <errno.h>
#include <setjmp.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "flashmeta/error.h"
#include "flashmeta/mapping.h"

/* The header's table, written out again independently of mapping.c. */
static const struct {
	enum fm_map_state from;
	enum fm_map_event ev;
	enum fm_map_state to;
} legal[] = {
	{ FM_MAP_IDLE_OR_COPIED, FM_MAP_EV_PREPARE, FM_MAP_PREPARING },
	{ FM_MAP_STOPPED, FM_MAP_EV_PREPARE, FM_MAP_PREPARING },
	{ FM_MAP_PREPARING, FM_MAP_EV_PREPARE_DONE, FM_MAP_PREPARED },
	{ FM_MAP_PREPARING, FM_MAP_EV_STOP, FM_MAP_STOPPED },
	{ FM_MAP_PREPARED, FM_MAP_EV_START, FM_MAP_COPYING },
	{ FM_MAP_PREPARED, FM_MAP_EV_STOP, FM_MAP_STOPPED },
	{ FM_MAP_COPYING, FM_MAP_EV_COPY_COMPLETE, FM_MAP_IDLE_OR_COPIED },
	{ FM_MAP_COPYING, FM_MAP_EV_STOP, FM_MAP_STOPPING },
	{ FM_MAP_STOPPING, FM_MAP_EV_STOP_DONE, FM_MAP_STOPPED },
};
#define N_LEGAL (sizeof(legal) / sizeof(legal[0]))

static int expected_next(enum fm_map_state s, enum fm_map_event ev)
{
	for (size_t i = 0; i < N_LEGAL; i++)
		if (legal[i].from == s && legal[i].ev == ev)
			return (int)legal[i].to;
	return -EPERM;
}

/* Field by field: struct padding is not guaranteed to survive a copy. */
static void assert_mapping_equal(const struct fm_mapping *a, const struct fm_mapping *b)
{
	assert_true(a->id == b->id);
	assert_true(a->source_vol == b->source_vol);
	assert_true(a->target_vol == b->target_vol);
	assert_true(a->geom.volume_size == b->geom.volume_size);
	assert_true(a->geom.grain_count == b->geom.grain_count);
	assert_int_equal(a->geom.grain_shift, b->geom.grain_shift);
	assert_true(a->generation == b->generation);
	assert_int_equal(a->copy_rate, b->copy_rate);
	assert_int_equal(a->state, b->state);
}

static struct fm_mapping fresh(void)
{
	struct fm_mapping m;

	assert_int_equal(fm_mapping_init(&m, 7, 100, 200, 1 << 20, 0), 0);
	return m;
}

static void next_state__all_pairs__match_table(void **state)
{
	(void)state;
	int n_ok = 0;

	for (int s = 0; s < FM_MAP_STATE_COUNT; s++) {
		for (int ev = 0; ev < FM_MAP_EV_COUNT; ev++) {
			int want = expected_next(s, ev);
			int got;

			fm_err_clear();
			got = fm_map_next_state(s, ev);
			assert_int_equal(got, want);
			if (want == -EPERM) {
				/* The message names both the event and the state. */
				assert_non_null(strstr(fm_errormsg(), fm_map_event_name(ev)));
				assert_non_null(strstr(fm_errormsg(), fm_map_state_name(s)));
			} else {
				n_ok++;
			}
		}
	}
	assert_int_equal(n_ok, N_LEGAL);
}

static void apply__all_pairs__state_and_generation(void **state)
{
	(void)state;
	for (int s = 0; s < FM_MAP_STATE_COUNT; s++) {
		for (int ev = 0; ev < FM_MAP_EV_COUNT; ev++) {
			struct fm_mapping m = fresh(), before;
			int want = expected_next(s, ev);

			m.state = s;
			m.generation = 41;
			before = m;
			if (want < 0) {
				assert_int_equal(fm_mapping_apply(&m, ev), -EPERM);
				assert_mapping_equal(&m, &before);
				continue;
			}
			assert_int_equal(fm_mapping_apply(&m, ev), 0);
			assert_int_equal(m.state, want);
			assert_int_equal(m.generation, ev == FM_MAP_EV_START ? 42 : 41);
			/* Nothing else moves. */
			m.state = before.state;
			m.generation = before.generation;
			assert_mapping_equal(&m, &before);
		}
	}
}

static void apply__full_cycle__generation_counts_starts(void **state)
{
	(void)state;
	struct fm_mapping m = fresh();
	const enum fm_map_event cycle[] = {
		FM_MAP_EV_PREPARE, FM_MAP_EV_PREPARE_DONE, FM_MAP_EV_START,
		FM_MAP_EV_STOP, FM_MAP_EV_STOP_DONE,
		FM_MAP_EV_PREPARE, FM_MAP_EV_PREPARE_DONE, FM_MAP_EV_START,
		FM_MAP_EV_COPY_COMPLETE,
	};

	for (size_t i = 0; i < sizeof(cycle) / sizeof(cycle[0]); i++)
		assert_int_equal(fm_mapping_apply(&m, cycle[i]), 0);
	assert_int_equal(m.state, FM_MAP_IDLE_OR_COPIED);
	assert_int_equal(m.generation, 2);
}

static void apply__generation_at_max__eoverflow_unchanged(void **state)
{
	(void)state;
	struct fm_mapping m = fresh(), before;

	m.state = FM_MAP_PREPARED;
	m.generation = UINT64_MAX;
	before = m;
	assert_int_equal(fm_mapping_apply(&m, FM_MAP_EV_START), -EOVERFLOW);
	assert_mapping_equal(&m, &before);
}

static void apply__out_of_range__einval_unchanged(void **state)
{
	(void)state;
	struct fm_mapping m = fresh(), before = m;

	assert_int_equal(fm_mapping_apply(&m, FM_MAP_EV_COUNT), -EINVAL);
	assert_int_equal(fm_mapping_apply(&m, (enum fm_map_event)-1), -EINVAL);
	assert_mapping_equal(&m, &before);
	assert_int_equal(fm_mapping_apply(NULL, FM_MAP_EV_PREPARE), -EINVAL);
	/* A corrupt state is refused, not indexed. */
	m.state = (enum fm_map_state)99;
	before = m;
	assert_int_equal(fm_mapping_apply(&m, FM_MAP_EV_PREPARE), -EINVAL);
	assert_mapping_equal(&m, &before);
}

static void next_state__out_of_range__einval(void **state)
{
	(void)state;
	assert_int_equal(fm_map_next_state(FM_MAP_STATE_COUNT, FM_MAP_EV_PREPARE), -EINVAL);
	assert_int_equal(fm_map_next_state((enum fm_map_state)-1, FM_MAP_EV_PREPARE), -EINVAL);
	assert_int_equal(fm_map_next_state(FM_MAP_IDLE_OR_COPIED, FM_MAP_EV_COUNT), -EINVAL);
	assert_int_equal(fm_map_next_state(FM_MAP_IDLE_OR_COPIED, (enum fm_map_event)-1), -EINVAL);
}

static void names__all__distinct_and_question_mark_outside(void **state)
{
	(void)state;
	for (int i = 0; i < FM_MAP_STATE_COUNT; i++) {
		assert_string_not_equal(fm_map_state_name(i), "?");
		for (int j = 0; j < i; j++)
			assert_string_not_equal(fm_map_state_name(i), fm_map_state_name(j));
	}
	for (int i = 0; i < FM_MAP_EV_COUNT; i++) {
		assert_string_not_equal(fm_map_event_name(i), "?");
		for (int j = 0; j < i; j++)
			assert_string_not_equal(fm_map_event_name(i), fm_map_event_name(j));
	}
	assert_string_equal(fm_map_state_name(FM_MAP_COPYING), "copying");
	assert_string_equal(fm_map_event_name(FM_MAP_EV_PREPARE), "prepare");
	assert_string_equal(fm_map_state_name(FM_MAP_STATE_COUNT), "?");
	assert_string_equal(fm_map_state_name((enum fm_map_state)-1), "?");
	assert_string_equal(fm_map_event_name(FM_MAP_EV_COUNT), "?");
	assert_string_equal(fm_map_event_name((enum fm_map_event)-1), "?");
}

static void init__valid__idle_generation_zero(void **state)
{
	(void)state;
	struct fm_mapping m;

	memset(&m, 0xa5, sizeof(m));
	assert_int_equal(fm_mapping_init(&m, 7, 100, 200, 1 << 20, 4096), 0);
	assert_int_equal(m.id, 7);
	assert_int_equal(m.source_vol, 100);
	assert_int_equal(m.target_vol, 200);
	assert_int_equal(m.state, FM_MAP_IDLE_OR_COPIED);
	assert_int_equal(m.generation, 0);
	assert_int_equal(m.copy_rate, 0);
	assert_int_equal(m.geom.grain_count, 256);
}

static void init__source_equals_target__einval(void **state)
{
	(void)state;
	struct fm_mapping m, before;

	memset(&m, 0xa5, sizeof(m));
	before = m;
	assert_int_equal(fm_mapping_init(&m, 7, 100, 100, 1 << 20, 0), -EINVAL);
	assert_non_null(strstr(fm_errormsg(), "same volume"));
	assert_mapping_equal(&m, &before);
}

static void init__bad_geometry__einval(void **state)
{
	(void)state;
	struct fm_mapping m, before;

	memset(&m, 0xa5, sizeof(m));
	before = m;
	assert_int_equal(fm_mapping_init(&m, 7, 100, 200, 0, 0), -EINVAL);
	assert_int_equal(fm_mapping_init(&m, 7, 100, 200, 1 << 20, 3000), -EINVAL);
	assert_non_null(strstr(fm_errormsg(), "power of two"));
	assert_int_equal(fm_mapping_init(&m, 7, 100, 200, 1000, 0), -EINVAL);
	assert_mapping_equal(&m, &before);
	assert_int_equal(fm_mapping_init(NULL, 7, 100, 200, 1 << 20, 0), -EINVAL);
}

static struct fm_mapping mk(uint64_t id, uint64_t src, uint64_t tgt)
{
	struct fm_mapping m;

	assert_int_equal(fm_mapping_init(&m, id, src, tgt, 1 << 20, 0), 0);
	return m;
}

static void admit__empty_and_unrelated__ok(void **state)
{
	struct fm_mapping v[2] = { mk(1, 10, 20), mk(2, 10, 21) }, m = mk(3, 10, 22);

	(void)state;
	assert_int_equal(fm_mapping_admit(NULL, 0, &m), 0);
	assert_int_equal(fm_mapping_admit(v, 2, &m), 0); /* many targets per source */
	m = mk(3, 30, 40);
	assert_int_equal(fm_mapping_admit(v, 2, &m), 0);
	assert_int_equal(fm_mapping_admit(v, 2, NULL), -EINVAL);
	assert_int_equal(fm_mapping_admit(NULL, 2, &m), -EINVAL);
}

static void admit__id_or_pair_taken__eexist(void **state)
{
	struct fm_mapping v[2] = { mk(1, 10, 20), mk(2, 30, 40) }, m = mk(2, 50, 60);

	(void)state;
	assert_int_equal(fm_mapping_admit(v, 2, &m), -EEXIST);
	assert_non_null(strstr(fm_errormsg(), "map 2 exists"));
	m = mk(9, 30, 40);
	assert_int_equal(fm_mapping_admit(v, 2, &m), -EEXIST);
	assert_non_null(strstr(fm_errormsg(), "duplicate source/target pair"));
	assert_non_null(strstr(fm_errormsg(), "map 2 "));
}

static void admit__cascade_either_way__eopnotsupp(void **state)
{
	struct fm_mapping v[2] = { mk(1, 10, 20), mk(2, 30, 40) }, m = mk(3, 50, 30);

	(void)state;
	/* target is map 2's source */
	assert_int_equal(fm_mapping_admit(v, 2, &m), -EOPNOTSUPP);
	assert_non_null(strstr(fm_errormsg(), "target volume 30 is the source of map 2"));
	assert_non_null(strstr(fm_errormsg(), "cascades are not supported"));
	/* source is map 1's target */
	m = mk(3, 20, 50);
	assert_int_equal(fm_mapping_admit(v, 2, &m), -EOPNOTSUPP);
	assert_non_null(strstr(fm_errormsg(), "source volume 20 is the target of map 1"));
	/* the reverse of a mapping is a cascade too, not a duplicate */
	m = mk(3, 20, 10);
	assert_int_equal(fm_mapping_admit(v, 2, &m), -EOPNOTSUPP);
}

/* every state, legal and illegal: the table of fm_mapping_reverse */
static void reverse__every_state__only_triggered_copying_or_copied(void **state)
{
	struct fm_mapping m = mk(4, 10, 20), r;

	(void)state;
	m.copy_rate = 33;
	for (int st = 0; st < FM_MAP_STATE_COUNT; st++) {
		for (uint64_t gen = 0; gen < 2; gen++) {
			bool ok = st == FM_MAP_COPYING || (st == FM_MAP_IDLE_OR_COPIED && gen);
			int rc;

			m.state = (enum fm_map_state)st;
			m.generation = gen;
			memset(&r, 0x5a, sizeof(r));
			rc = fm_mapping_reverse(&m, &r);
			if (!ok) {
				assert_int_equal(rc, -EPERM);
				assert_int_equal(((unsigned char *)&r)[0], 0x5a); /* untouched */
				continue;
			}
			assert_int_equal(rc, 0);
			assert_int_equal(r.id, 4);
			assert_int_equal(r.source_vol, 20);
			assert_int_equal(r.target_vol, 10);
			assert_int_equal(r.generation, gen + 1);
			assert_int_equal(r.state, FM_MAP_COPYING);
			assert_int_equal(r.copy_rate, 33);
			assert_int_equal(r.geom.grain_count, m.geom.grain_count);
		}
	}
	m.state = FM_MAP_STOPPED;
	m.generation = 3;
	assert_int_equal(fm_mapping_reverse(&m, &r), -EPERM);
	assert_non_null(strstr(fm_errormsg(), "nothing to restore"));
	m.state = FM_MAP_PREPARED;
	assert_int_equal(fm_mapping_reverse(&m, &r), -EPERM);
	assert_non_null(strstr(fm_errormsg(), "being prepared"));
	m.state = FM_MAP_IDLE_OR_COPIED;
	m.generation = 0;
	assert_int_equal(fm_mapping_reverse(&m, &r), -EPERM);
	assert_non_null(strstr(fm_errormsg(), "never started"));
	m.generation = UINT64_MAX;
	assert_int_equal(fm_mapping_reverse(&m, &r), -EOVERFLOW);
	assert_int_equal(fm_mapping_reverse(NULL, &r), -EINVAL);
	assert_int_equal(fm_mapping_reverse(&m, NULL), -EINVAL);
	/* in place, and twice is the original direction again */
	m.generation = 5;
	m.state = FM_MAP_COPYING;
	assert_int_equal(fm_mapping_reverse(&m, &m), 0);
	assert_int_equal(fm_mapping_reverse(&m, &m), 0);
	assert_int_equal(m.source_vol, 10);
	assert_int_equal(m.generation, 7);
}

static void admit__target_of_another__eaddrinuse(void **state)
{
	struct fm_mapping v[1] = { mk(1, 10, 20) }, m = mk(2, 11, 20);

	(void)state;
	assert_int_equal(fm_mapping_admit(v, 1, &m), -EADDRINUSE);
	assert_non_null(strstr(fm_errormsg(), "already the target of map 1"));
}

static void admit__source_limit__emlink_at_256(void **state)
{
	static struct fm_mapping v[FM_MAPS_PER_SOURCE_MAX + 1];
	struct fm_mapping m;

	(void)state;
	v[0] = mk(1000, 7, 8); /* another source does not count */
	for (unsigned i = 1; i < FM_MAPS_PER_SOURCE_MAX; i++)
		v[i] = mk(i, 10, 100 + i);
	m = mk(FM_MAPS_PER_SOURCE_MAX, 10, 100 + FM_MAPS_PER_SOURCE_MAX);
	/* 255 of source 10: the 256th is admitted */
	assert_int_equal(fm_mapping_admit(v, FM_MAPS_PER_SOURCE_MAX, &m), 0);
	v[FM_MAPS_PER_SOURCE_MAX] = m;
	m = mk(5000, 10, 5000);
	assert_int_equal(fm_mapping_admit(v, FM_MAPS_PER_SOURCE_MAX + 1, &m), -EMLINK);
	assert_non_null(strstr(fm_errormsg(), "source volume 10 has 256 mappings"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(next_state__all_pairs__match_table),
		cmocka_unit_test(apply__all_pairs__state_and_generation),
		cmocka_unit_test(apply__full_cycle__generation_counts_starts),
		cmocka_unit_test(apply__generation_at_max__eoverflow_unchanged),
		cmocka_unit_test(apply__out_of_range__einval_unchanged),
		cmocka_unit_test(next_state__out_of_range__einval),
		cmocka_unit_test(names__all__distinct_and_question_mark_outside),
		cmocka_unit_test(init__valid__idle_generation_zero),
		cmocka_unit_test(init__source_equals_target__einval),
		cmocka_unit_test(init__bad_geometry__einval),
		cmocka_unit_test(admit__empty_and_unrelated__ok),
		cmocka_unit_test(admit__id_or_pair_taken__eexist),
		cmocka_unit_test(admit__cascade_either_way__eopnotsupp),
		cmocka_unit_test(admit__target_of_another__eaddrinuse),
		cmocka_unit_test(reverse__every_state__only_triggered_copying_or_copied),
		cmocka_unit_test(admit__source_limit__emlink_at_256),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
