/* test_cache_mt.c -- lookups on several threads while one writer thread
 * inserts, discards, evicts and changes generations (run under TSan in the
 * FM_TSAN build: label tsan).
 *
 * The writer only ever inserts runs of S(gen), a fixed pseudo-random set of
 * grains for generation `gen`.  To change generation it grants the new one
 * (sometimes after a release request), then publishes it in `cur_gen`
 * (seq_cst), and only then inserts runs of the new set.  A reader reads cur_gen before (g1) and after (g2) a lookup;
 * every grain of a hit's run must be in S(g) for some g in [g1, g2]: a hit
 * outside means a torn read, a use of freed memory or an old generation
 * resurrected after its discard returned.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <cmocka.h>

#include "flashmeta/cache.h"
#include "cache_priv.h" /* the slots: every section counted out */

#define GRAINS 20000u
#define NREADERS 3

static uint64_t mix(uint64_t z)
{
	z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
	z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
	return z ^ (z >> 31);
}

/* S(gen): blocks of 8 grains, shifted by gen, two in three split. */
static bool in_set(uint64_t gen, uint64_t g)
{
	return mix(((g + gen * 3) >> 3) * 31 + gen) % 3 != 0;
}

struct shared {
	struct fm_cache *c;
	_Atomic uint64_t cur_gen;
	_Atomic bool stop;
	_Atomic uint64_t bad, hits, lookups;
};

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void *reader(void *arg)
{
	struct shared *sh = arg;
	uint64_t s = (uint64_t)(uintptr_t)&s, hits = 0, n = 0;

	while (!atomic_load(&sh->stop)) {
		uint64_t g = mix(s++) % (GRAINS + 10), run = 0;
		uint64_t g1 = atomic_load(&sh->cur_gen);
		bool hit = fm_cache_lookup(sh->c, 1, g, &run);
		uint64_t g2 = atomic_load(&sh->cur_gen);

		n++;
		if (!hit)
			continue;
		hits++;
		for (uint64_t x = g; x < g + run; x++) {
			bool ok = false;

			for (uint64_t gen = g1; gen <= g2 && !ok; gen++)
				ok = in_set(gen, x);
			if (!ok || x >= GRAINS) {
				atomic_fetch_add(&sh->bad, 1);
				break;
			}
		}
	}
	atomic_fetch_add(&sh->hits, hits);
	atomic_fetch_add(&sh->lookups, n);
	return NULL;
}

static void writer(struct shared *sh, uint64_t ms)
{
	struct fm_cache *c = sh->c;
	uint64_t s = 42, gen = 1, epoch, t0 = now_ms(), ops = 0;

	assert_int_equal(fm_cache_map_grant(c, 1, gen), 0);
	assert_int_equal(fm_cache_map_epoch(c, 1, &epoch), 0);
	while (now_ms() - t0 < ms || ops < 2000) {
		uint64_t k = mix(s++) % 1000, g = mix(s++) % GRAINS;

		ops++;
		if (k < 700) {
			/* insert a run of S(gen) starting at g, of random length */
			uint64_t max = 1 + mix(s++) % 64, last = g;

			if (!in_set(gen, g))
				continue;
			while (last + 1 < GRAINS && last - g + 1 < max && in_set(gen, last + 1))
				last++;
			int ret = fm_cache_insert(c, 1, epoch, g, last);

			assert_true(ret == 0);
		} else if (k < 990) {
			uint64_t last = g + mix(s++) % 100;

			if (last >= GRAINS)
				last = GRAINS - 1;
			assert_int_equal(fm_cache_discard_range(c, 1, g, last), 0);
			assert_int_equal(fm_cache_map_epoch(c, 1, &epoch), 0);
		} else if (k < 996) {
			/* release request, then a new generation */
			assert_int_equal(fm_cache_map_discard(c, 1), 0);
			assert_int_equal(fm_cache_map_grant(c, 1, ++gen), 0);
			atomic_store(&sh->cur_gen, gen);
			assert_int_equal(fm_cache_map_epoch(c, 1, &epoch), 0);
		} else {
			/* grant of a new generation without a release request */
			assert_int_equal(fm_cache_map_grant(c, 1, ++gen), 0);
			atomic_store(&sh->cur_gen, gen);
			assert_int_equal(fm_cache_map_epoch(c, 1, &epoch), 0);
		}
	}
}

static void run(size_t budget)
{
	struct fm_cache_cfg cfg = { .budget_bytes = budget };
	struct shared sh = { 0 };
	pthread_t th[NREADERS];
	struct fm_cache_stats st;

	assert_int_equal(fm_cache_new(&sh.c, &cfg), 0);
	assert_int_equal(fm_cache_map_add(sh.c, 1, GRAINS), 0);
	atomic_store(&sh.cur_gen, 1);
	for (int i = 0; i < NREADERS; i++)
		assert_int_equal(pthread_create(&th[i], NULL, reader, &sh), 0);
	writer(&sh, 1500);
	atomic_store(&sh.stop, true);
	for (int i = 0; i < NREADERS; i++)
		pthread_join(th[i], NULL);
	fm_cache_stats(sh.c, &st);
	printf("# budget %zu: lookups %llu hits %llu inserts %llu evictions %llu\n",
	       budget, (unsigned long long)sh.lookups, (unsigned long long)sh.hits,
	       (unsigned long long)st.inserts, (unsigned long long)st.evictions);
	assert_int_equal(atomic_load(&sh.bad), 0);
	assert_true(sh.lookups > 0);
	assert_true(sh.hits > 0); /* the test exercised hits */
	assert_int_equal(st.lookups, sh.lookups);
	if (budget)
		assert_true(st.evictions > 0);
	fm_cache_delete(&sh.c);
}

static void mt__readers_and_writer__hits_sound(void **state)
{
	(void)state;
	run(0);
}

static void mt__readers_and_evicting_writer__hits_sound(void **state)
{
	(void)state;
	run(16 * 1024);
}

/* More reader threads than the cache has private slots.  Threads are
 * numbered in the order of their first lookup, and the numbers wrap onto
 * the slots: A (an early thread, whose slot is its own) and B (the
 * FM_CACHE_SLOTS-th thread to look up after A) land on the same slot
 * number.  They look up at once, many times; every lookup must still be
 * counted in and out exactly -- a lost increment leaves in != out for
 * good, and the writer could never reclaim again (whitebox: the slots'
 * counters are checked after the threads are gone).  (Run first: A needs
 * a number within the private slots.) */
#define CACHE_SLOTS FM_CACHE_SLOTS /* the private slots */
#define PAIR_LOOKUPS 3000000

struct pair {
	struct fm_cache *c;
	pthread_barrier_t numbered, go;
	unsigned n;
};

static void *one_lookup(void *arg)
{
	struct pair *p = arg;
	uint64_t last;

	(void)fm_cache_lookup(p->c, 1, 0, &last);
	return NULL;
}

static void *pair_reader(void *arg)
{
	struct pair *p = arg;
	uint64_t last;

	(void)fm_cache_lookup(p->c, 1, 0, &last); /* takes its number */
	pthread_barrier_wait(&p->numbered);
	pthread_barrier_wait(&p->go); /* both numbered */
	for (unsigned i = 0; i < p->n; i++)
		(void)fm_cache_lookup(p->c, 1, i % GRAINS, &last);
	return NULL;
}

static void mt__threads_beyond_the_slots__every_lookup_counted(void **state)
{
	struct fm_cache_cfg cfg = { 0 };
	struct pair p = { .n = PAIR_LOOKUPS };
	pthread_t a, b, t;
	struct fm_cache_stats st;

	(void)state;
	assert_int_equal(fm_cache_new(&p.c, &cfg), 0);
	assert_int_equal(fm_cache_map_add(p.c, 1, GRAINS), 0);
	assert_int_equal(fm_cache_map_grant(p.c, 1, 1), 0);
	assert_int_equal(pthread_barrier_init(&p.numbered, NULL, 2), 0);
	assert_int_equal(pthread_barrier_init(&p.go, NULL, 3), 0);
	assert_int_equal(pthread_create(&a, NULL, pair_reader, &p), 0);
	pthread_barrier_wait(&p.numbered);
	for (unsigned i = 0; i < CACHE_SLOTS - 1; i++) { /* numbers A+1 .. A+63 */
		assert_int_equal(pthread_create(&t, NULL, one_lookup, &p), 0);
		pthread_join(t, NULL);
	}
	assert_int_equal(pthread_create(&b, NULL, pair_reader, &p), 0);
	pthread_barrier_wait(&p.numbered); /* B is number A+64 */
	pthread_barrier_wait(&p.go);
	pthread_join(a, NULL);
	pthread_join(b, NULL);
	pthread_barrier_destroy(&p.numbered);
	pthread_barrier_destroy(&p.go);
	fm_cache_stats(p.c, &st);
	assert_int_equal(st.lookups, 2 * (uint64_t)(PAIR_LOOKUPS + 1) + CACHE_SLOTS - 1);
	for (size_t i = 0; i < sizeof(p.c->slots) / sizeof(p.c->slots[0]); i++)
		for (int ph = 0; ph < 2; ph++)
			assert_int_equal(atomic_load(&p.c->slots[i].in[ph]),
					 atomic_load(&p.c->slots[i].out[ph]));
	fm_cache_delete(&p.c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(mt__threads_beyond_the_slots__every_lookup_counted),
		cmocka_unit_test(mt__readers_and_writer__hits_sound),
		cmocka_unit_test(mt__readers_and_evicting_writer__hits_sound),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
