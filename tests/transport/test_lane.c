/* test_lane.c -- the lane API (transport.h, "lanes") in one process, on the
 * shm provider's loopback endpoint: argument checks that fail the post and
 * leave the endpoint UP, the depth and lane limits, remote access errors as
 * completions, fm_lane_wait, lanes outliving fm_ep_delete, and threads
 * posting on their lanes while the owning thread deletes the endpoint.
 * The cross-process contract (exactly once, models, close, fence) is in
 * lane_scenarios.c, run by test_transport.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "flashmeta/error.h"
#include "flashmeta/transport.h"

struct fixture {
	struct fm_transport *t;
	struct fm_listener *l;
	struct fm_ep *self;
	struct fm_region *rd, *at, *dst;
	struct fm_region_desc drd, dat;
};

static int fx_setup_cfg(void **state, uint32_t depth, uint32_t max_lanes)
{
	static struct fixture fx;
	struct fm_transport_cfg c = {.provider = "shm", .lane_depth = depth,
				     .max_lanes = max_lanes};
	char name[64];

	memset(&fx, 0, sizeof(fx));
	snprintf(name, sizeof(name), "shm:/flashmeta-lane-%d", (int)getpid());
	assert_int_equal(fm_transport_new(&fx.t, &c), 0);
	assert_int_equal(fm_region_new(fx.t, 8192, FM_ACCESS_REMOTE_READ, &fx.rd), 0);
	assert_int_equal(fm_region_new(fx.t, 4096, FM_ACCESS_REMOTE_ATOMIC, &fx.at), 0);
	assert_int_equal(fm_region_new(fx.t, 8192, FM_ACCESS_LOCAL, &fx.dst), 0);
	for (int i = 0; i < 8192; i++)
		((uint8_t *)fm_region_ptr(fx.rd))[i] = (uint8_t)(i * 7 + 1);
	fm_region_desc(fx.rd, &fx.drd);
	fm_region_desc(fx.at, &fx.dat);
	assert_int_equal(fm_listen(fx.t, name, &fx.l), 0);
	assert_int_equal(fm_listener_loopback(fx.l, &fx.self), 0);
	*state = &fx;
	return 0;
}

static int fx_setup(void **state)
{
	return fx_setup_cfg(state, 8, 3);
}

static int fx_setup_many(void **state)
{
	return fx_setup_cfg(state, 16, 8);
}

static int fx_teardown(void **state)
{
	struct fixture *fx = *state;

	fm_ep_delete(&fx->self);
	fm_listener_delete(&fx->l);
	fm_region_delete(&fx->rd);
	fm_region_delete(&fx->at);
	fm_region_delete(&fx->dst);
	fm_transport_delete(&fx->t);
	return 0;
}

static void lane__post_poll__results_and_ctx(void **state)
{
	struct fixture *fx = *state;
	struct fm_lane *lane;
	struct fm_completion c[8];
	int tags[4];

	assert_int_equal(fm_lane_new(fx->self, &lane), 0);
	assert_int_equal(fm_lane_depth(lane), 8);
	assert_int_equal(fm_lane_post_faa(lane, &fx->dat, 8, 5, &tags[0]), 0);
	assert_int_equal(fm_lane_post_cas(lane, &fx->dat, 8, 5, 9, &tags[1]), 0);
	assert_int_equal(fm_lane_post_cas(lane, &fx->dat, 8, 5, 11, &tags[2]), 0);
	assert_int_equal(fm_lane_post_read(lane, fx->dst, 3, &fx->drd, 100, 77, &tags[3]), 0);
	assert_int_equal(fm_lane_outstanding(lane), 4);
	/* n bounds what comes out; the rest stays */
	assert_int_equal(fm_lane_poll(lane, c, 0), 0);
	assert_int_equal(fm_lane_poll(lane, c, 1), 1);
	assert_ptr_equal(c[0].ctx, &tags[0]);
	assert_int_equal(c[0].op, FM_LANE_FAA);
	assert_int_equal(c[0].status, 0);
	assert_int_equal(c[0].old, 0);
	assert_int_equal(fm_lane_wait(lane, c, 8, 100), 3);
	assert_ptr_equal(c[0].ctx, &tags[1]);
	assert_int_equal(c[0].old, 5); /* swapped */
	assert_ptr_equal(c[1].ctx, &tags[2]);
	assert_int_equal(c[1].old, 9); /* did not swap */
	assert_ptr_equal(c[2].ctx, &tags[3]);
	assert_int_equal(c[2].op, FM_LANE_READ);
	assert_memory_equal((uint8_t *)fm_region_ptr(fx->dst) + 3,
			    (uint8_t *)fm_region_ptr(fx->rd) + 100, 77);
	assert_int_equal(((uint64_t *)fm_region_ptr(fx->at))[1], 9);
	assert_int_equal(fm_lane_outstanding(lane), 0);
	/* nothing in flight: wait returns at once */
	assert_int_equal(fm_lane_wait(lane, c, 8, -1), 0);
	fm_lane_delete(&lane);
	assert_null(lane);
	fm_lane_delete(&lane); /* NULL-safe */
	fm_lane_delete(NULL);
}

static void lane__local_checks__no_completion_endpoint_up(void **state)
{
	struct fixture *fx = *state;
	struct fm_lane *lane;
	struct fm_completion c;
	int tag;

	assert_int_equal(fm_lane_new(fx->self, &lane), 0);
	assert_int_equal(fm_lane_post_cas(lane, &fx->dat, 4, 0, 1, &tag), -EINVAL);
	assert_int_equal(fm_lane_post_faa(lane, &fx->dat, 4096, 1, &tag), -ERANGE);
	assert_int_equal(fm_lane_post_faa(lane, NULL, 0, 1, &tag), -EINVAL);
	assert_int_equal(fm_lane_post_faa(NULL, &fx->dat, 0, 1, &tag), -EINVAL);
	assert_int_equal(fm_lane_post_cas(lane, &fx->drd, 0, 0, 1, &tag), -EACCES);
	assert_int_equal(fm_lane_post_read(lane, fx->dst, 0, &fx->dat, 0, 8, &tag), -EACCES);
	assert_int_equal(fm_lane_post_read(lane, fx->dst, 0, &fx->drd, 0, 0, &tag), -EINVAL);
	assert_int_equal(fm_lane_post_read(lane, fx->dst, 8000, &fx->drd, 0, 193, &tag), -ERANGE);
	assert_int_equal(fm_lane_post_read(lane, fx->dst, 0, &fx->drd, 8000, 193, &tag), -ERANGE);
	assert_int_equal(fm_lane_poll(lane, &c, -1), -EINVAL);
	assert_int_equal(fm_lane_poll(lane, NULL, 1), -EINVAL);
	assert_int_equal(fm_lane_wait(lane, &c, 0, 10), -EINVAL);
	assert_int_equal(fm_lane_outstanding(lane), 0);
	assert_int_equal(fm_lane_poll(lane, &c, 1), 0);
	assert_int_equal(fm_ep_state(fx->self, NULL), FM_EP_UP);
	assert_int_equal(fm_lane_new(NULL, &lane), -EINVAL);
	fm_lane_delete(&lane);
}

static void lane__full__eagain_until_polled(void **state)
{
	struct fixture *fx = *state;
	struct fm_lane *lane;
	struct fm_completion c[8];

	assert_int_equal(fm_lane_new(fx->self, &lane), 0);
	for (int i = 0; i < 8; i++)
		assert_int_equal(fm_lane_post_faa(lane, &fx->dat, 0, 1, (void *)(intptr_t)i), 0);
	assert_int_equal(fm_lane_post_faa(lane, &fx->dat, 0, 1, NULL), -EAGAIN);
	assert_int_equal(fm_lane_post_read(lane, fx->dst, 0, &fx->drd, 0, 8, NULL), -EAGAIN);
	assert_int_equal(fm_lane_outstanding(lane), 8);
	/* the refused post did nothing */
	assert_int_equal(((uint64_t *)fm_region_ptr(fx->at))[0], 8);
	assert_int_equal(fm_lane_poll(lane, c, 1), 1);
	assert_int_equal(fm_lane_post_faa(lane, &fx->dat, 0, 1, NULL), 0);
	assert_int_equal(fm_lane_poll(lane, c, 8), 8);
	for (int i = 0; i < 7; i++)
		assert_int_equal(c[i].old, (uint64_t)i + 1);
	fm_lane_delete(&lane);
}

static void lane__max_lanes__enospc_then_room_again(void **state)
{
	struct fixture *fx = *state;
	struct fm_lane *l[4];
	uint64_t old;

	for (int i = 0; i < 3; i++)
		assert_int_equal(fm_lane_new(fx->self, &l[i]), 0);
	assert_int_equal(fm_lane_new(fx->self, &l[3]), -ENOSPC);
	assert_null(l[3]);
	/* the blocking calls' own lane does not count */
	assert_int_equal(fm_ep_faa(fx->self, &fx->dat, 0, 1, &old), 0);
	fm_lane_delete(&l[1]);
	assert_int_equal(fm_lane_new(fx->self, &l[1]), 0);
	for (int i = 0; i < 3; i++)
		fm_lane_delete(&l[i]);
}

static void lane__remote_access_error__completion_closes_endpoint(void **state)
{
	struct fixture *fx = *state;
	struct fm_lane *lane;
	struct fm_completion c;
	struct fm_region_desc forged = fx->dat;
	const char *reason;
	int tag;

	assert_int_equal(fm_lane_new(fx->self, &lane), 0);
	forged.key ^= 0x5a5a;
	/* the post is accepted: the key is checked where verbs checks it */
	assert_int_equal(fm_lane_post_cas(lane, &forged, 0, 0, 1, &tag), 0);
	assert_int_equal(fm_lane_poll(lane, &c, 1), 1);
	assert_ptr_equal(c.ctx, &tag);
	assert_int_equal(c.status, -EACCES);
	assert_int_equal(c.old, 0);
	assert_int_equal(fm_ep_state(fx->self, &reason), FM_EP_CLOSED);
	assert_non_null(strstr(reason, "access"));
	assert_int_equal(fm_ep_error(fx->self), -EACCES);
	assert_int_equal(fm_lane_post_faa(lane, &fx->dat, 0, 1, &tag), -ENOTCONN);
	assert_int_equal(fm_lane_outstanding(lane), 0);
	fm_lane_delete(&lane);
	assert_int_equal(fm_lane_new(fx->self, &lane), -ENOTCONN);
}

/* fm_ep_delete first: the lanes get -ENOTCONN, keep what completed, and
 * the last fm_lane_delete frees the endpoint (ASan sees either mistake) */
static void lane__endpoint_deleted_first__lanes_outlive_it(void **state)
{
	struct fixture *fx = *state;
	struct fm_lane *a, *b;
	struct fm_completion c[4];

	assert_int_equal(fm_lane_new(fx->self, &a), 0);
	assert_int_equal(fm_lane_new(fx->self, &b), 0);
	assert_int_equal(fm_lane_post_faa(a, &fx->dat, 0, 3, a), 0);
	assert_int_equal(fm_lane_post_faa(b, &fx->dat, 0, 4, b), 0);
	fm_ep_delete(&fx->self);
	assert_null(fx->self);
	assert_int_equal(fm_lane_post_faa(a, &fx->dat, 0, 1, NULL), -ENOTCONN);
	assert_int_equal(fm_lane_post_read(b, fx->dst, 0, &fx->drd, 0, 8, NULL), -ENOTCONN);
	assert_int_equal(fm_lane_poll(a, c, 4), 1);
	assert_ptr_equal(c[0].ctx, a);
	assert_int_equal(c[0].status, 0); /* it executed before the close */
	fm_lane_delete(&a);
	assert_int_equal(fm_lane_outstanding(b), 1);
	fm_lane_delete(&b); /* the last one: frees the endpoint */
	assert_int_equal(((uint64_t *)fm_region_ptr(fx->at))[0], 7);
}

/* threads post on their lanes while the owning thread deletes the
 * endpoint under them: nothing crashes (ASan, TSan), every post either
 * fails with -ENOTCONN or completes exactly once, and the word counts
 * exactly the posts that succeeded (shm executes at the post) */
#define NTHREADS 4

struct racer {
	pthread_t th;
	struct fm_lane *lane;
	const struct fm_region_desc *d;
	uint64_t ok, completions;
	int err;
};

static _Atomic int racers_started;

static void *racer_main(void *arg)
{
	struct racer *r = arg;
	struct fm_completion c[16];

	atomic_fetch_add(&racers_started, 1);
	for (;;) {
		int ret = fm_lane_post_faa(r->lane, r->d, 0, 1, r);
		int k;

		if (ret == -ENOTCONN)
			break;
		if (ret == 0)
			r->ok++;
		else if (ret != -EAGAIN)
			r->err = ret;
		k = fm_lane_poll(r->lane, c, 16);
		for (int i = 0; i < k; i++)
			if (c[i].ctx != r || c[i].status != 0)
				r->err = -EBADMSG;
		r->completions += (uint64_t)k;
	}
	while (fm_lane_outstanding(r->lane)) {
		int k = fm_lane_poll(r->lane, c, 16);

		r->completions += (uint64_t)(k > 0 ? k : 0);
	}
	fm_lane_delete(&r->lane);
	return NULL;
}

static void lane__threads_race_endpoint_delete__each_once(void **state)
{
	struct fixture *fx = *state;
	struct racer r[NTHREADS];
	uint64_t ok = 0;

	atomic_store(&racers_started, 0);
	for (int i = 0; i < NTHREADS; i++) {
		r[i] = (struct racer){.d = &fx->dat};
		assert_int_equal(fm_lane_new(fx->self, &r[i].lane), 0);
		assert_int_equal(pthread_create(&r[i].th, NULL, racer_main, &r[i]), 0);
	}
	while (atomic_load(&racers_started) < NTHREADS)
		sched_yield();
	usleep(20000);
	fm_ep_delete(&fx->self);
	for (int i = 0; i < NTHREADS; i++) {
		pthread_join(r[i].th, NULL);
		assert_int_equal(r[i].err, 0);
		assert_int_equal(r[i].completions, r[i].ok);
		ok += r[i].ok;
	}
	assert_true(ok > 0);
	assert_int_equal(((uint64_t *)fm_region_ptr(fx->at))[0], ok);
}

static void lane__blocking_calls__use_their_own_lane(void **state)
{
	struct fixture *fx = *state;
	uint64_t old;

	assert_int_equal(fm_ep_cas(fx->self, &fx->dat, 16, 0, 42, &old), 0);
	assert_int_equal(old, 0);
	assert_int_equal(fm_ep_cas(fx->self, &fx->dat, 16, 0, 43, &old), 0);
	assert_int_equal(old, 42);
	assert_int_equal(fm_ep_faa(fx->self, &fx->dat, 16, 1, NULL), 0);
	assert_int_equal(fm_ep_read(fx->self, fx->dst, 0, &fx->drd, 1, 4000), 0);
	assert_memory_equal(fm_region_ptr(fx->dst), (uint8_t *)fm_region_ptr(fx->rd) + 1, 4000);
	assert_int_equal(fm_ep_cas(fx->self, &fx->dat, 4, 0, 1, &old), -EINVAL);
	assert_int_equal(fm_ep_state(fx->self, NULL), FM_EP_UP);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(lane__post_poll__results_and_ctx, fx_setup,
						fx_teardown),
		cmocka_unit_test_setup_teardown(lane__local_checks__no_completion_endpoint_up,
						fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(lane__full__eagain_until_polled, fx_setup,
						fx_teardown),
		cmocka_unit_test_setup_teardown(lane__max_lanes__enospc_then_room_again, fx_setup,
						fx_teardown),
		cmocka_unit_test_setup_teardown(lane__remote_access_error__completion_closes_endpoint,
						fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(lane__endpoint_deleted_first__lanes_outlive_it,
						fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(lane__threads_race_endpoint_delete__each_once,
						fx_setup_many, fx_teardown),
		cmocka_unit_test_setup_teardown(lane__blocking_calls__use_their_own_lane, fx_setup,
						fx_teardown),
	};

	return cmocka_run_group_tests_name("lane", tests, NULL, NULL);
}
