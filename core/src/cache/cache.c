/* cache.c -- the confirmation-range cache: a bucket directory per mapping,
 * lookups that take no lock and write no shared line.
 *
 * DESIGN
 *
 * Data structure (per mapping, per validity).  The grains [0, grain_count)
 * are cut into nb buckets of 2^shift grains.  The directory is a flat array
 * of nb 64-bit words, one per bucket.  A word describes the "fragments" of
 * the bucket: every maximal confirmed range [s, l] that intersects bucket
 * [B, E] leaves one fragment (fs = max(s, B), last = l) in it.  Note `last`
 * is NOT clipped to the bucket: it is the true end of the range, so a lookup
 * answers the run length from one fragment, whatever the range's length.
 *
 *   word (bits 0-1 tag, bit 2 referenced, rest payload):
 *     EMPTY  ...............................00   no grain of the bucket split
 *     ONE    | off:13 | last:48 | ref | 01      one fragment, fs = B + off
 *     NODE   | struct fm_cache_node * | ref | 10  n sorted fragments
 *
 *   bucket b:        [B ............................. E]
 *   ranges:     [s1 ........ l1]     [s2 ... l2]  [s3 .................. l3]
 *   fragments:      (B, l1)          (s2, l2)     (s3, l3)   -> NODE of 3
 *   bucket b+1 sees only (B', l3): ONE with off 0.
 *
 * Invariants (writer's view): ranges are maximal (never overlapping nor
 * contiguous: merged on insert); fragments in a bucket are sorted and
 * disjoint; a fragment with fs == B continues a range iff grain B-1 is split.
 * shift adapts to the number of ranges n: the directory is rebuilt so that
 * nb ~ n..2n when n > nb (and the budget allows), and shrunk when n < nb/8,
 * so most buckets hold 0 or 1 fragment, stored inline (ONE): a lookup is one
 * directory load, plus one node load for a crowded bucket.  Cost of the
 * O(1)-run choice: an insert or discard rewrites every bucket the touched
 * range spans (writer cost O(span >> shift)).
 *
 * Memory: 8 bytes of directory per bucket (8..16 bytes per range at the
 * load the resize rule keeps) plus a node (8 + 16 per fragment, +8 malloc
 * header) for buckets of two or more fragments.  Everything the cache
 * reaches is counted in `bytes`: cache struct, mapping table, mapping
 * structs, directories, nodes, the writer's retire list and scratch buffer.
 * Memory retired but not yet reclaimed (see below) is not counted; it is
 * freed at the next writer call after the readers that could see it leave.
 *
 * Concurrency.  One writer (the protocol thread; the caller serializes
 * writer calls), any number of lookups.  The writer never changes what a
 * lookup may be reading in place: each directory word is replaced by one
 * atomic store, nodes and directories are copy-on-write and published with
 * a release/seq_cst store, the mapping table is copy-on-write too.  So a
 * lookup reads one word (plus an immutable node) and its answer is the
 * state before or after any concurrent writer call: it is linearizable, and
 * every word written only ever claims grains told split under the current
 * validity (an insert writes merged ranges; a discard only removes).
 * A mapping's validity is its `dir` pointer: NULL while invalid; grant with
 * a new generation and map_discard swap in a new (empty or NULL) directory.
 *
 * Reclamation is epoch based with two phase counters (like SRCU): a lookup
 * increments in[gp & 1] of its thread's slot (seq_cst RMW on a line the
 * thread owns), reads, then increments out[same] (release; a plain store
 * when the slot is its own).  The writer retires objects tagged with gp; it
 * may move gp from g to g+1 once every slot's in[(g+1) & 1] equals its
 * out[(g+1) & 1], and frees an object retired at G once gp >=
 * G + 2 (two flips cover a reader that read gp long ago).  The writer never
 * waits for readers, except on -ENOMEM of its retire list.  Ordering: the
 * writer's unlink (release store) is followed by a seq_cst fence before it
 * loads the counters; the reader's seq_cst RMW precedes its seq_cst loads of
 * table/dir/word; so either the writer sees the reader's count or the
 * reader sees the unlinked state.
 *
 * Referenced bits (CLOCK / second chance, only with a budget): a hit sets
 * bit 2 of the word with a relaxed fetch_or only when it is clear (an RMW,
 * never a plain store, so it cannot resurrect a word the writer replaced).
 * The writer's clock hand walks buckets, clearing set bits, and evicts the
 * range of the first fragment of a bucket found clear.
 *
 * MEASUREMENTS (fm-bench-cache, full run, 2-vCPU VM, gcc 12 -O2; typical =
 * median ns/lookup, uniform random grains incl. the xorshift; reproduce
 * with `build/bin/fm-bench-cache --json out.json`):
 *
 *   10^6 ranges                    dense (len,gap ~U[1,15])  sparse (~U[1,255])
 *                                   t=1    t=2   B/range      t=1    t=2   B/range
 *   bitmap (bit + ctz run)         10.4   10.1     2.0       38.9   34.6    32.0
 *   cache (this file)              72.0   52.6    39.7       76.6   59.1    45.5
 *   cache + shared rwlock          97.9  108.4      -        95.7  173.5      -
 *   CRoaring contains (no run)     52.1   51.9     2.0      147.8  147.3     4.1
 *   sorted array + binary search  237.1  231.5    16.0      244.8  253.3    16.0
 *
 * Reading: where the bitmap no longer fits the CPU caches (sparse, 32 MB)
 * the cache is within 2x of it (1.97x t=1, 1.71x t=2), beats CRoaring 2x
 * and binary search 3x, and answers the run in O(1).  Where the bitmap is
 * small (dense: 2 MB, L2/L3 resident) nothing of ~40 B/range competes: any
 * per-range structure is 20x its size and pays DRAM misses (~7x).  Smaller
 * sizes (10^3..10^5, all cache-resident) cost 19..26 ns vs 7.5..8 ns: the
 * floor is the reader slot RMW + table probe (~12 ns).
 * Concurrency: a shared pthread rwlock adds ~25 ns on one thread and ~2-3x
 * on two threads (counter line bouncing); the epoch slots add one RMW on a
 * thread-private line and scale (t=2 is not slower than t=1).  A seqlock
 * would need the same reclamation and retry logic; liburcu was not needed.
 * Directory load: nb >= n (FM_CACHE_LOAD_NUM/DEN = 1) keeps <= 48 B/range
 * at 10^5..10^6; nb >= 2n was ~15% faster sparse but 51 B/range.
 */
#include <errno.h>
#include <inttypes.h>
#include <sched.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "flashmeta/cache.h"
#include "flashmeta/error.h"

#define FM_CACHE_SLOTS 64u		 /* reader slots, power of two */
#define FM_CACHE_LAST_BITS 48u		 /* grain numbers < 2^48 */
#define FM_CACHE_OFF_BITS 13u		 /* ONE: fs - B < 2^13 */
#define FM_CACHE_MIN_NB 16u		 /* smallest directory */
#ifndef FM_CACHE_LOAD_NUM		 /* nb >= n * NUM / DEN after a resize */
#define FM_CACHE_LOAD_NUM 1u
#define FM_CACHE_LOAD_DEN 1u
#endif
#define FM_CACHE_MALLOC_OVERHEAD 8u	 /* glibc chunk header */
#define FM_CACHE_GRAIN_MAX (UINT64_C(1) << FM_CACHE_LAST_BITS)

#define W_TAG_MASK UINT64_C(3)
#define W_EMPTY UINT64_C(0)
#define W_ONE UINT64_C(1)
#define W_NODE UINT64_C(2)
#define W_REF UINT64_C(4)
#define W_LAST_MASK ((UINT64_C(1) << FM_CACHE_LAST_BITS) - 1)
#define W_OFF_SHIFT (3u + FM_CACHE_LAST_BITS)

struct fm_frag {
	uint64_t fs;   /* first grain of the fragment, inside its bucket */
	uint64_t last; /* last grain of the whole range */
};

/* Immutable once published in a directory word. */
struct fm_cache_node {
	uint32_t n;   /* fragments, sorted by fs */
	uint32_t cap; /* allocated */
	struct fm_frag f[];
};

/* Immutable except e[]; e[] words: written by the writer (atomic store),
 * referenced bit set by lookups (fetch_or). */
struct fm_cache_dir {
	uint32_t shift;
	uint64_t nb;
	_Atomic uint64_t e[];
};

struct fm_cache_map {
	uint64_t id;	      /* immutable */
	uint64_t grain_count; /* immutable */
	/* NULL while invalid.  Writer stores (seq_cst), lookups load. */
	_Atomic(struct fm_cache_dir *) dir;
	/* the fill token: moved on by the writer (seq_cst) at every discard
	 * and generation change, read by anyone (fm_cache_map_epoch) */
	_Atomic uint64_t epoch;
	/* ---- writer only ---- */
	uint64_t generation;
	bool has_gen;
	uint64_t nranges;
	uint64_t hand; /* clock hand: next bucket to look at */
	struct fm_cache_map *next; /* writer's list of all mappings */
};

/* Copy-on-write open-addressing table; immutable once published. */
struct fm_cache_table {
	uint64_t mask;
	uint64_t count;
	struct fm_cache_map *slot[];
};

/* One per reader thread; threads numbered beyond FM_CACHE_SLOTS share
 * slots and then use RMWs for every update.  Written by its lookups, read
 * by the writer (in/out) and by stats.  in[p] - out[p] = lookups of phase p
 * in flight; in[0] + in[1] = lookups done by the slot's threads. */
struct fm_cache_slot {
	alignas(64) _Atomic uint64_t in[2];
	_Atomic uint64_t out[2];
	_Atomic uint64_t hits;
	_Atomic uint64_t tokens; /* reader sections of fm_cache_map_epoch:
				  * not lookups in the stats */
};

struct fm_retired {
	void *p;
	uint64_t gp;
};

struct fm_cache {
	struct fm_cache_slot slots[FM_CACHE_SLOTS];
	/* Read by lookups, written by the writer (seq_cst). */
	alignas(64) _Atomic(struct fm_cache_table *) table;
	_Atomic uint64_t gp; /* grace-period counter, starts at 2 */
	size_t budget;	     /* immutable */

	/* ---- writer only ---- */
	alignas(64) struct fm_cache_map *maps; /* list, for eviction and delete */
	struct fm_cache_map *clock_map;	       /* eviction resumes here */
	struct fm_retired *ret;		       /* retire FIFO, ordered by gp */
	size_t ret_head, ret_n, ret_cap;
	struct fm_frag *scratch;
	size_t scratch_cap;
	size_t live; /* bytes counted by `bytes` */
	uint64_t nranges;

	/* Written by the writer only (relaxed), read by fm_cache_stats. */
	_Atomic uint64_t st_inserts, st_merges, st_evictions, st_discards,
		st_stale, st_bytes, st_ranges;
};

/* ------------------------------------------------------------------ */
/* helpers */

static size_t alloc_bytes(size_t sz)
{
	return ((sz + 15) & ~(size_t)15) + FM_CACHE_MALLOC_OVERHEAD;
}

static size_t node_bytes(uint32_t cap)
{
	return alloc_bytes(sizeof(struct fm_cache_node) + cap * sizeof(struct fm_frag));
}

static size_t dir_bytes(uint64_t nb)
{
	return alloc_bytes(sizeof(struct fm_cache_dir) + nb * sizeof(uint64_t));
}

static size_t table_bytes(uint64_t cap)
{
	return alloc_bytes(sizeof(struct fm_cache_table) + cap * sizeof(void *));
}

static void stat_add(_Atomic uint64_t *s, uint64_t v)
{
	/* single writer: load + store is enough and cheaper than an RMW */
	atomic_store_explicit(s, atomic_load_explicit(s, memory_order_relaxed) + v,
			      memory_order_relaxed);
}

static void live_add(struct fm_cache *c, size_t b)
{
	c->live += b;
	atomic_store_explicit(&c->st_bytes, c->live, memory_order_relaxed);
}

static void live_sub(struct fm_cache *c, size_t b)
{
	c->live -= b;
	atomic_store_explicit(&c->st_bytes, c->live, memory_order_relaxed);
}

static void ranges_adjust(struct fm_cache *c, struct fm_cache_map *m, int64_t d)
{
	m->nranges = (uint64_t)((int64_t)m->nranges + d);
	c->nranges = (uint64_t)((int64_t)c->nranges + d);
	atomic_store_explicit(&c->st_ranges, c->nranges, memory_order_relaxed);
}

static inline uint64_t w_one(uint64_t off, uint64_t last)
{
	return W_ONE | (last << 3) | (off << W_OFF_SHIFT);
}

static inline struct fm_cache_node *w_node(uint64_t w)
{
	return (struct fm_cache_node *)(uintptr_t)(w & ~UINT64_C(7));
}

/*
 * word_find -- the fragment of bucket word `w` (bucket start B) containing
 * grain g.  Pure, no writes: used by lookups and by the writer.
 */
static inline bool word_find(uint64_t w, uint64_t B, uint64_t g, uint64_t *last,
			     uint64_t *fs)
{
	switch (w & W_TAG_MASK) {
	case W_ONE: {
		uint64_t f = B + (w >> W_OFF_SHIFT);
		uint64_t l = (w >> 3) & W_LAST_MASK;

		if (g < f || g > l)
			return false;
		*last = l;
		if (fs)
			*fs = f;
		return true;
	}
	case W_NODE: {
		const struct fm_cache_node *nd = w_node(w);
		uint32_t lo = 0, hi = nd->n;

		/* first fragment with last >= g: fragments are disjoint and
		 * sorted, so their `last`s are increasing */
		while (hi - lo > 4) {
			uint32_t mid = lo + (hi - lo) / 2;

			if (nd->f[mid].last < g)
				lo = mid + 1;
			else
				hi = mid + 1;
		}
		for (; lo < hi; lo++) {
			if (nd->f[lo].last >= g) {
				if (nd->f[lo].fs > g)
					return false;
				*last = nd->f[lo].last;
				if (fs)
					*fs = nd->f[lo].fs;
				return true;
			}
		}
		return false;
	}
	default:
		return false;
	}
}

/* Fragments of a word, for the writer.  `one` is storage for ONE. */
static uint32_t word_frags(uint64_t w, uint64_t B, struct fm_frag *one,
			   const struct fm_frag **f)
{
	switch (w & W_TAG_MASK) {
	case W_ONE:
		one->fs = B + (w >> W_OFF_SHIFT);
		one->last = (w >> 3) & W_LAST_MASK;
		*f = one;
		return 1;
	case W_NODE:
		*f = w_node(w)->f;
		return w_node(w)->n;
	default:
		*f = NULL;
		return 0;
	}
}

/* ------------------------------------------------------------------ */
/* reader slots and reclamation */

static _Atomic uint32_t fm_cache_tid_next;
static __thread uint32_t fm_cache_tid; /* 0 = not assigned yet */

/* The calling thread's slot; *own = no other thread uses it. */
static inline struct fm_cache_slot *slot_get(struct fm_cache *c, bool *own)
{
	if (__builtin_expect(fm_cache_tid == 0, 0))
		fm_cache_tid = atomic_fetch_add_explicit(&fm_cache_tid_next, 1,
							 memory_order_relaxed) + 1;
	*own = fm_cache_tid <= FM_CACHE_SLOTS;
	return &c->slots[(fm_cache_tid - 1) & (FM_CACHE_SLOTS - 1)];
}

/* Add 1 to a slot counter: a plain load + store (no lock prefix) when the
 * slot is the thread's own, an RMW when shared. */
static inline void slot_inc(_Atomic uint64_t *v, bool own, memory_order mo)
{
	if (own)
		atomic_store_explicit(v, atomic_load_explicit(v, memory_order_relaxed) + 1, mo);
	else
		atomic_fetch_add_explicit(v, 1, mo);
}

/* Writer: move gp on if the phase it would reuse has no reader. */
static bool gp_try_advance(struct fm_cache *c)
{
	uint64_t g = atomic_load_explicit(&c->gp, memory_order_relaxed);
	unsigned reuse = (unsigned)((g + 1) & 1);

	/* Orders the writer's unlinking stores before the counter loads. */
	atomic_thread_fence(memory_order_seq_cst);
	for (unsigned i = 0; i < FM_CACHE_SLOTS; i++) {
		/* out first: a lookup entering in between makes in != out,
		 * which only errs on the side of waiting */
		uint64_t out = atomic_load_explicit(&c->slots[i].out[reuse],
						    memory_order_acquire);

		if (atomic_load_explicit(&c->slots[i].in[reuse], memory_order_acquire) != out)
			return false;
	}
	atomic_store_explicit(&c->gp, g + 1, memory_order_seq_cst);
	return true;
}

/* Writer: free what no reader can see any more.  Never blocks. */
static void reclaim(struct fm_cache *c)
{
	if (c->ret_n == 0)
		return;
	for (int i = 0; i < 2; i++) {
		uint64_t g = atomic_load_explicit(&c->gp, memory_order_relaxed);

		if (c->ret[c->ret_head].gp + 2 <= g)
			break;
		if (!gp_try_advance(c))
			break;
	}
	uint64_t g = atomic_load_explicit(&c->gp, memory_order_relaxed);

	while (c->ret_n && c->ret[c->ret_head].gp + 2 <= g) {
		free(c->ret[c->ret_head].p);
		c->ret_head++;
		c->ret_n--;
	}
	if (c->ret_n == 0)
		c->ret_head = 0;
}

/* Writer: wait for a grace period (only on -ENOMEM of the retire list). */
static void synchronize(struct fm_cache *c)
{
	uint64_t g0 = atomic_load_explicit(&c->gp, memory_order_relaxed);

	while (atomic_load_explicit(&c->gp, memory_order_relaxed) < g0 + 2)
		if (!gp_try_advance(c))
			sched_yield();
}

/* Writer: free `p` once no lookup can hold it.  Its bytes were already
 * taken off `live` by the caller. */
static void retire(struct fm_cache *c, void *p)
{
	if (!p)
		return;
	if (c->ret_head + c->ret_n == c->ret_cap) {
		if (c->ret_head > 0) {
			memmove(c->ret, c->ret + c->ret_head, c->ret_n * sizeof(*c->ret));
			c->ret_head = 0;
		} else {
			size_t ncap = c->ret_cap ? c->ret_cap * 2 : 64;
			struct fm_retired *nr = realloc(c->ret, ncap * sizeof(*nr));

			if (!nr) {
				synchronize(c);
				free(p);
				return;
			}
			live_add(c, alloc_bytes(ncap * sizeof(*nr)));
			if (c->ret_cap)
				live_sub(c, alloc_bytes(c->ret_cap * sizeof(*nr)));
			c->ret = nr;
			c->ret_cap = ncap;
		}
	}
	c->ret[c->ret_head + c->ret_n].p = p;
	c->ret[c->ret_head + c->ret_n].gp = atomic_load_explicit(&c->gp, memory_order_relaxed);
	c->ret_n++;
}

static void retire_word(struct fm_cache *c, uint64_t w)
{
	if ((w & W_TAG_MASK) == W_NODE) {
		live_sub(c, node_bytes(w_node(w)->cap));
		retire(c, w_node(w));
	}
}

/* ------------------------------------------------------------------ */
/* lookups */

static inline struct fm_cache_map *table_find(const struct fm_cache_table *t,
					      uint64_t id)
{
	uint64_t i = (id * UINT64_C(0x9E3779B97F4A7C15)) >> 32;

	for (uint64_t k = 0; k <= t->mask; k++, i++) {
		struct fm_cache_map *m = t->slot[i & t->mask];

		if (!m)
			return NULL;
		if (m->id == id)
			return m;
	}
	return NULL;
}

/* Hot path: no lock, no allocation; one RMW on the thread's own slot line
 * (plus plain stores to it), one table probe, one directory word, at most
 * one node. */
bool fm_cache_lookup(struct fm_cache *c, uint64_t map_id, uint64_t grain,
		     uint64_t *run)
{
	bool own;
	struct fm_cache_slot *s = slot_get(c, &own);
	unsigned p = (unsigned)(atomic_load_explicit(&c->gp, memory_order_relaxed) & 1);
	bool hit = false;
	uint64_t last = 0;

	/* The one RMW: orders "I am in" before the loads below (Dekker with
	 * the writer's fence in gp_try_advance). */
	atomic_fetch_add_explicit(&s->in[p], 1, memory_order_seq_cst);
	const struct fm_cache_table *t =
		atomic_load_explicit(&c->table, memory_order_seq_cst);
	struct fm_cache_map *m = table_find(t, map_id);

	if (m && grain < m->grain_count) {
		struct fm_cache_dir *d = atomic_load_explicit(&m->dir, memory_order_seq_cst);

		if (d) {
			uint64_t b = grain >> d->shift;
			_Atomic uint64_t *wp = &d->e[b];
			uint64_t w = atomic_load_explicit(wp, memory_order_seq_cst);

			hit = word_find(w, b << d->shift, grain, &last, NULL);
			if (hit && c->budget && !(w & W_REF))
				atomic_fetch_or_explicit(wp, W_REF, memory_order_relaxed);
		}
	}
	/* release: our reads happen before the writer frees what we read */
	slot_inc(&s->out[p], own, memory_order_release);
	if (hit) {
		slot_inc(&s->hits, own, memory_order_relaxed);
		if (run)
			*run = last - grain + 1;
	}
	return hit;
}

void fm_cache_stats(struct fm_cache *c, struct fm_cache_stats *st)
{
	memset(st, 0, sizeof(*st));
	for (unsigned i = 0; i < FM_CACHE_SLOTS; i++) {
		st->lookups += atomic_load_explicit(&c->slots[i].in[0], memory_order_relaxed) +
			       atomic_load_explicit(&c->slots[i].in[1], memory_order_relaxed) -
			       atomic_load_explicit(&c->slots[i].tokens, memory_order_relaxed);
		st->hits += atomic_load_explicit(&c->slots[i].hits, memory_order_relaxed);
	}
	st->misses = st->lookups >= st->hits ? st->lookups - st->hits : 0;
	st->inserts = atomic_load_explicit(&c->st_inserts, memory_order_relaxed);
	st->merges = atomic_load_explicit(&c->st_merges, memory_order_relaxed);
	st->evictions = atomic_load_explicit(&c->st_evictions, memory_order_relaxed);
	st->discards = atomic_load_explicit(&c->st_discards, memory_order_relaxed);
	st->stale = atomic_load_explicit(&c->st_stale, memory_order_relaxed);
	st->bytes = atomic_load_explicit(&c->st_bytes, memory_order_relaxed);
	st->ranges = atomic_load_explicit(&c->st_ranges, memory_order_relaxed);
}

/* ------------------------------------------------------------------ */
/* writer: directory primitives (all __ = writer context) */

static inline struct fm_cache_dir *__dir(struct fm_cache_map *m)
{
	return atomic_load_explicit(&m->dir, memory_order_relaxed);
}

static inline uint64_t __word(struct fm_cache_dir *d, uint64_t b)
{
	return atomic_load_explicit(&d->e[b], memory_order_relaxed);
}

/* Replace bucket b's word; the old node (if any) is retired. */
static void __word_set(struct fm_cache *c, struct fm_cache_dir *d, uint64_t b,
		       uint64_t w)
{
	uint64_t old = __word(d, b);

	atomic_store_explicit(&d->e[b], w, memory_order_release);
	retire_word(c, old);
}

static bool __find(struct fm_cache_dir *d, uint64_t g, struct fm_frag *f)
{
	uint64_t b = g >> d->shift;

	return word_find(__word(d, b), b << d->shift, g, &f->last, &f->fs);
}

/* First grain of the range whose fragment containing some grain starts at
 * fs: walk back over continuation fragments. */
static uint64_t __range_start(struct fm_cache_dir *d, uint64_t fs)
{
	for (;;) {
		uint64_t b = fs >> d->shift, B = b << d->shift;
		struct fm_frag one;
		const struct fm_frag *f;
		uint32_t n;

		if (fs != B || b == 0)
			return fs;
		n = word_frags(__word(d, b - 1), (b - 1) << d->shift, &one, &f);
		if (n == 0 || f[n - 1].last < B - 1)
			return fs;
		fs = f[n - 1].fs;
	}
}

/* Number of maximal ranges intersecting [lo, hi]. */
static uint64_t __count_runs(struct fm_cache_dir *d, uint64_t lo, uint64_t hi)
{
	uint64_t cnt = 0, prev_last = 0;
	bool any = false;

	for (uint64_t b = lo >> d->shift; b <= hi >> d->shift; b++) {
		struct fm_frag one;
		const struct fm_frag *f;
		uint32_t n = word_frags(__word(d, b), b << d->shift, &one, &f);

		for (uint32_t i = 0; i < n; i++) {
			if (f[i].last < lo || f[i].fs > hi)
				continue;
			if (!any || prev_last + 1 < f[i].fs)
				cnt++;
			any = true;
			prev_last = f[i].last;
		}
	}
	return cnt;
}

static int __scratch(struct fm_cache *c, size_t n)
{
	if (n <= c->scratch_cap)
		return 0;
	size_t ncap = c->scratch_cap ? c->scratch_cap : 8;

	while (ncap < n)
		ncap *= 2;
	struct fm_frag *s = realloc(c->scratch, ncap * sizeof(*s));

	if (!s)
		return fm_err(-ENOMEM, "cache: scratch of %zu fragments", ncap);
	if (c->scratch_cap)
		live_sub(c, alloc_bytes(c->scratch_cap * sizeof(*s)));
	live_add(c, alloc_bytes(ncap * sizeof(*s)));
	c->scratch = s;
	c->scratch_cap = ncap;
	return 0;
}

/* Encode fragments f[0..n) of bucket B as a word; may allocate a node. */
static int __make_word(struct fm_cache *c, uint64_t B, const struct fm_frag *f,
		       uint32_t n, uint64_t *w)
{
	if (n == 0) {
		*w = W_EMPTY;
		return 0;
	}
	if (n == 1 && f[0].fs - B < (UINT64_C(1) << FM_CACHE_OFF_BITS)) {
		*w = w_one(f[0].fs - B, f[0].last);
		return 0;
	}
	struct fm_cache_node *nd = malloc(sizeof(*nd) + n * sizeof(struct fm_frag));

	if (!nd)
		return fm_err(-ENOMEM, "cache: node of %u fragments", n);
	nd->n = n;
	nd->cap = n;
	memcpy(nd->f, f, n * sizeof(*f));
	live_add(c, node_bytes(n));
	*w = (uint64_t)(uintptr_t)nd | W_NODE;
	return 0;
}

/* Undo __make_word for a word never published. */
static void __unmake_word(struct fm_cache *c, uint64_t w)
{
	if ((w & W_TAG_MASK) == W_NODE) {
		live_sub(c, node_bytes(w_node(w)->cap));
		free(w_node(w));
	}
}

/* New content of bucket b after inserting the merged range [ms, ml]:
 * fragments before ms, the merged fragment, fragments after ml. */
static int __prep_insert(struct fm_cache *c, struct fm_cache_dir *d, uint64_t b,
			 uint64_t ms, uint64_t ml, uint64_t *w)
{
	uint64_t B = b << d->shift;
	struct fm_frag one;
	const struct fm_frag *f;
	uint32_t n = word_frags(__word(d, b), B, &one, &f), k = 0;
	int ret = __scratch(c, n + 1);

	if (ret)
		return ret;
	uint32_t i = 0;

	for (; i < n && f[i].last < ms; i++)
		c->scratch[k++] = f[i];
	c->scratch[k].fs = ms > B ? ms : B;
	c->scratch[k++].last = ml;
	for (; i < n; i++)
		if (f[i].fs > ml)
			c->scratch[k++] = f[i];
	return __make_word(c, B, c->scratch, k, w);
}

/* New content of bucket b after discarding [a, z] (see the rule in
 * __discard). */
static int __prep_discard(struct fm_cache *c, struct fm_cache_dir *d, uint64_t b,
			  uint64_t gc, uint64_t a, uint64_t z, uint64_t *w)
{
	uint64_t B = b << d->shift;
	uint64_t E = B + ((UINT64_C(1) << d->shift) - 1);
	struct fm_frag one;
	const struct fm_frag *f;
	uint32_t n = word_frags(__word(d, b), B, &one, &f), k = 0;
	int ret = __scratch(c, n + 1);

	if (ret)
		return ret;
	if (E >= gc)
		E = gc - 1;
	for (uint32_t i = 0; i < n; i++) {
		if (f[i].last < a || f[i].fs > z) {
			c->scratch[k++] = f[i];
			continue;
		}
		if (f[i].fs < a) {
			c->scratch[k].fs = f[i].fs;
			c->scratch[k++].last = a - 1;
		}
		if (f[i].last > z && z + 1 <= E) {
			c->scratch[k].fs = z + 1;
			c->scratch[k++].last = f[i].last;
		}
	}
	return __make_word(c, B, c->scratch, k, w);
}

static struct fm_cache_dir *__dir_alloc(struct fm_cache *c, uint64_t gc,
					uint32_t shift)
{
	uint64_t nb = ((gc - 1) >> shift) + 1;
	struct fm_cache_dir *d = calloc(1, sizeof(*d) + nb * sizeof(uint64_t));

	if (!d)
		return NULL;
	d->shift = shift;
	d->nb = nb;
	live_add(c, dir_bytes(nb));
	return d;
}

/* Free an unpublished (or fully unreachable, at delete) directory now. */
static void __dir_free_now(struct fm_cache *c, struct fm_cache_dir *d)
{
	if (!d)
		return;
	for (uint64_t b = 0; b < d->nb; b++)
		__unmake_word(c, __word(d, b));
	live_sub(c, dir_bytes(d->nb));
	free(d);
}

/* Retire a directory that was unpublished (pointer already swapped). */
static void __dir_retire(struct fm_cache *c, struct fm_cache_dir *d)
{
	if (!d)
		return;
	for (uint64_t b = 0; b < d->nb; b++)
		retire_word(c, __word(d, b));
	live_sub(c, dir_bytes(d->nb));
	retire(c, d);
}

/* Shift for n ranges: the largest giving nb >= max(2n, MIN_NB). */
static uint32_t ideal_shift(uint64_t gc, uint64_t n)
{
	uint64_t target = FM_CACHE_LOAD_NUM * n / FM_CACHE_LOAD_DEN;

	if (target < FM_CACHE_MIN_NB)
		target = FM_CACHE_MIN_NB;
	uint32_t s = 0;

	while (s < 62 && ((gc - 1) >> (s + 1)) + 1 >= target)
		s++;
	return s;
}

/* Append fragment (fs, last) to bucket b of an unpublished directory. */
static int __build_append(struct fm_cache *c, struct fm_cache_dir *d, uint64_t b,
			  uint64_t fs, uint64_t last)
{
	uint64_t B = b << d->shift, w = __word(d, b);
	struct fm_cache_node *nd;

	if ((w & W_TAG_MASK) == W_EMPTY && fs - B < (UINT64_C(1) << FM_CACHE_OFF_BITS)) {
		atomic_store_explicit(&d->e[b], w_one(fs - B, last), memory_order_relaxed);
		return 0;
	}
	if ((w & W_TAG_MASK) != W_NODE) {
		nd = malloc(sizeof(*nd) + 4 * sizeof(struct fm_frag));
		if (!nd)
			return -ENOMEM;
		nd->n = 0;
		nd->cap = 4;
		live_add(c, node_bytes(4));
		if ((w & W_TAG_MASK) == W_ONE) {
			nd->f[0].fs = B + (w >> W_OFF_SHIFT);
			nd->f[0].last = (w >> 3) & W_LAST_MASK;
			nd->n = 1;
		}
		atomic_store_explicit(&d->e[b], (uint64_t)(uintptr_t)nd | W_NODE,
				      memory_order_relaxed);
	}
	nd = w_node(__word(d, b));
	if (nd->n == nd->cap) {
		struct fm_cache_node *nn =
			realloc(nd, sizeof(*nd) + 2 * nd->cap * sizeof(struct fm_frag));

		if (!nn)
			return -ENOMEM;
		live_add(c, node_bytes(2 * nn->cap));
		live_sub(c, node_bytes(nn->cap));
		nn->cap *= 2;
		nd = nn;
		atomic_store_explicit(&d->e[b], (uint64_t)(uintptr_t)nd | W_NODE,
				      memory_order_relaxed);
	}
	nd->f[nd->n].fs = fs;
	nd->f[nd->n].last = last;
	nd->n++;
	return 0;
}

/* Rebuild the mapping's directory with `shift`.  On -ENOMEM the old one
 * stays (sound, just not resized). */
static int __dir_rebuild(struct fm_cache *c, struct fm_cache_map *m, uint32_t shift)
{
	struct fm_cache_dir *od = __dir(m), *nd;
	uint64_t prev_last = 0;
	bool any = false;

	if (!od || od->shift == shift)
		return 0;
	nd = __dir_alloc(c, m->grain_count, shift);
	if (!nd)
		return fm_err(-ENOMEM, "cache: directory of 2^%u-grain buckets", shift);
	for (uint64_t b = 0; b < od->nb; b++) {
		struct fm_frag one;
		const struct fm_frag *f;
		uint32_t n = word_frags(__word(od, b), b << od->shift, &one, &f);

		for (uint32_t i = 0; i < n; i++) {
			if (any && prev_last + 1 >= f[i].fs)
				continue; /* continuation of the previous range */
			any = true;
			prev_last = f[i].last;
			for (uint64_t nbk = f[i].fs >> shift; nbk <= f[i].last >> shift; nbk++) {
				uint64_t B = nbk << shift;

				if (__build_append(c, nd, nbk, f[i].fs > B ? f[i].fs : B,
						   f[i].last)) {
					__dir_free_now(c, nd);
					return fm_err(-ENOMEM, "cache: directory rebuild");
				}
			}
		}
	}
	/* Publish: the release/seq_cst store orders the build before it. */
	atomic_store_explicit(&m->dir, nd, memory_order_seq_cst);
	__dir_retire(c, od);
	m->hand = 0;
	return 0;
}

/* Drop every range of the mapping in place (no allocation): the fallback
 * when a discard cannot allocate. */
static void __drop_inplace(struct fm_cache *c, struct fm_cache_map *m)
{
	struct fm_cache_dir *d = __dir(m);

	if (d)
		for (uint64_t b = 0; b < d->nb; b++)
			__word_set(c, d, b, W_EMPTY);
	ranges_adjust(c, m, -(int64_t)m->nranges);
}

/* Replace the mapping's directory by a fresh empty one (valid) or NULL. */
static int __drop_all(struct fm_cache *c, struct fm_cache_map *m, bool valid)
{
	struct fm_cache_dir *od = __dir(m), *nd = NULL;

	if (valid) {
		nd = __dir_alloc(c, m->grain_count, ideal_shift(m->grain_count, 0));
		if (!nd) {
			__drop_inplace(c, m);
			return fm_err(-ENOMEM, "cache: empty directory");
		}
	}
	atomic_store_explicit(&m->dir, nd, memory_order_seq_cst);
	__dir_retire(c, od);
	ranges_adjust(c, m, -(int64_t)m->nranges);
	m->hand = 0;
	return 0;
}

/*
 * __discard -- forget [a, z] of a valid mapping.  Per fragment (fs, last)
 * of the buckets from the start of the range holding a to z's bucket:
 *
 *   last < a or fs > z           kept
 *   fs < a <= last               -> (fs, a - 1)            left piece
 *   last > z, z+1 in this bucket -> (z + 1, last)          right piece
 *
 *        [Ls ........ a-1][a ...... z][z+1 ....... Rl]
 *   buckets before a's bucket rewrite L's `last`; buckets strictly between
 *   a's and z's become EMPTY; the right piece starts in z's bucket.
 *
 * Only the first bucket, a's and z's may need a node; they are prepared
 * before anything is published so -ENOMEM leaves the directory whole; then
 * the mapping's ranges are dropped in place instead (sound) and -ENOMEM is
 * returned.  Returns 0 or -ENOMEM.
 */
static int __discard(struct fm_cache *c, struct fm_cache_map *m, uint64_t a,
			 uint64_t z)
{
	struct fm_cache_dir *d = __dir(m);
	struct fm_frag fa, fz;
	uint64_t Ls = a, spec[3], sw[3];
	int nspec = 0, ret = 0;

	if (!d || m->nranges == 0)
		return 0;
	uint64_t r = __count_runs(d, a, z);

	if (r == 0)
		return 0;
	bool hasL = __find(d, a, &fa), hasR = __find(d, z, &fz);

	if (hasL)
		Ls = __range_start(d, fa.fs);
	int64_t pieces = (hasL && Ls < a) + (hasR && fz.last > z);
	uint64_t b0 = Ls >> d->shift, ba = a >> d->shift, bz = z >> d->shift;

	spec[nspec++] = b0;
	if (ba != b0)
		spec[nspec++] = ba;
	if (bz != ba)
		spec[nspec++] = bz;
	for (int i = 0; i < nspec; i++) {
		ret = __prep_discard(c, d, spec[i], m->grain_count, a, z, &sw[i]);
		if (ret) {
			while (i-- > 0)
				__unmake_word(c, sw[i]);
			int64_t had = (int64_t)m->nranges;

			__drop_inplace(c, m);
			return had ? fm_err(-ENOMEM, "cache: discard needed memory; "
					   "dropped the mapping's ranges") : 0;
		}
	}
	for (uint64_t b = b0, i = 0; b <= bz; b++) {
		uint64_t w;

		if (i < (uint64_t)nspec && spec[i] == b)
			w = sw[i++];
		else if (b < ba)
			w = w_one(0, a - 1); /* fully covered by the left piece */
		else
			w = W_EMPTY;	     /* inside [a, z] */
		__word_set(c, d, b, w);
	}
	ranges_adjust(c, m, pieces - (int64_t)r);
	return 0;
}

/* ------------------------------------------------------------------ */
/* eviction */

/* Evict one range chosen by the clock; false if nothing is left. */
static bool __evict_one(struct fm_cache *c)
{
	struct fm_cache_map *start = c->clock_map ? c->clock_map : c->maps;
	struct fm_cache_map *m = start;

	if (!m)
		return false;
	do {
		struct fm_cache_dir *d = __dir(m);

		if (d && m->nranges) {
			for (uint64_t k = 0; k < 2 * d->nb + 1; k++) {
				uint64_t b = m->hand++ % d->nb;
				uint64_t w = __word(d, b);
				struct fm_frag one;
				const struct fm_frag *f;

				if ((w & W_TAG_MASK) == W_EMPTY)
					continue;
				if (w & W_REF) {
					atomic_fetch_and_explicit(&d->e[b], ~W_REF,
								  memory_order_relaxed);
					continue;
				}
				word_frags(w, b << d->shift, &one, &f);
				uint64_t s = __range_start(d, f[0].fs), l = f[0].last;

				__discard(c, m, s, l);
				stat_add(&c->st_evictions, 1);
				c->clock_map = m;
				d = __dir(m);
				if (m->nranges * 8 < d->nb)
					__dir_rebuild(c, m, ideal_shift(m->grain_count, m->nranges));
				return true;
			}
		}
		m = m->next ? m->next : c->maps;
	} while (m != start);
	return false;
}

static void __enforce_budget(struct fm_cache *c)
{
	if (!c->budget)
		return;
	while (c->live > c->budget)
		if (!__evict_one(c))
			break;
}

/* ------------------------------------------------------------------ */
/* mapping table */

/* writer: the fill token moves on (fm_cache_map_epoch) */
static void epoch_move(struct fm_cache_map *m)
{
	atomic_store_explicit(&m->epoch, atomic_load_explicit(&m->epoch, memory_order_relaxed) + 1,
			      memory_order_seq_cst);
}

static struct fm_cache_map *__map_find(struct fm_cache *c, uint64_t id)
{
	return table_find(atomic_load_explicit(&c->table, memory_order_relaxed), id);
}

/* Publish a copy of the table with `add` added and/or `del` removed. */
static int __table_replace(struct fm_cache *c, struct fm_cache_map *add,
			   struct fm_cache_map *del)
{
	struct fm_cache_table *ot = atomic_load_explicit(&c->table, memory_order_relaxed);
	uint64_t count = ot->count + (add ? 1 : 0) - (del ? 1 : 0);
	uint64_t cap = 8;

	while (cap < 2 * count)
		cap *= 2;
	struct fm_cache_table *nt = calloc(1, sizeof(*nt) + cap * sizeof(void *));

	if (!nt)
		return fm_err(-ENOMEM, "cache: mapping table of %" PRIu64 " slots", cap);
	nt->mask = cap - 1;
	nt->count = count;
	for (uint64_t i = 0; i <= ot->mask + (add ? 1 : 0); i++) {
		struct fm_cache_map *m = i <= ot->mask ? ot->slot[i] : add;

		if (!m || m == del)
			continue;
		uint64_t h = (m->id * UINT64_C(0x9E3779B97F4A7C15)) >> 32;

		while (nt->slot[h & nt->mask])
			h++;
		nt->slot[h & nt->mask] = m;
	}
	live_add(c, table_bytes(cap));
	atomic_store_explicit(&c->table, nt, memory_order_seq_cst);
	live_sub(c, table_bytes(ot->mask + 1));
	retire(c, ot);
	return 0;
}

/* ------------------------------------------------------------------ */
/* public writer calls */

int fm_cache_new(struct fm_cache **out, const struct fm_cache_cfg *cfg)
{
	struct fm_cache *c;
	struct fm_cache_table *t;

	if (!out || !cfg)
		return fm_err(-EINVAL, "cache: %s is NULL", out ? "cfg" : "out");
	c = aligned_alloc(64, (sizeof(*c) + 63) & ~(size_t)63);
	if (!c)
		return fm_err(-ENOMEM, "cache: %zu bytes", sizeof(*c));
	memset(c, 0, sizeof(*c));
	t = calloc(1, sizeof(*t) + 8 * sizeof(void *));
	if (!t) {
		free(c);
		return fm_err(-ENOMEM, "cache: mapping table");
	}
	t->mask = 7;
	atomic_init(&c->table, t);
	atomic_init(&c->gp, 2);
	c->budget = cfg->budget_bytes;
	live_add(c, alloc_bytes(sizeof(*c)) + table_bytes(8));
	*out = c;
	return 0;
}

void fm_cache_delete(struct fm_cache **cp)
{
	struct fm_cache *c;

	if (!cp || !*cp)
		return;
	c = *cp;
	while (c->maps) {
		struct fm_cache_map *m = c->maps;

		c->maps = m->next;
		__dir_free_now(c, __dir(m));
		free(m);
	}
	for (size_t i = 0; i < c->ret_n; i++)
		free(c->ret[c->ret_head + i].p);
	free(c->ret);
	free(c->scratch);
	free(atomic_load_explicit(&c->table, memory_order_relaxed));
	free(c);
	*cp = NULL;
}

int fm_cache_map_add(struct fm_cache *c, uint64_t map_id, uint64_t grain_count)
{
	struct fm_cache_map *m;
	int ret;

	if (grain_count == 0 || grain_count > FM_CACHE_GRAIN_MAX)
		return fm_err(-EINVAL, "cache: grain_count %" PRIu64 " not in [1, 2^%u]",
			      grain_count, FM_CACHE_LAST_BITS);
	reclaim(c);
	if (__map_find(c, map_id))
		return fm_err(-EEXIST, "cache: mapping %" PRIu64 " exists", map_id);
	m = calloc(1, sizeof(*m));
	if (!m)
		return fm_err(-ENOMEM, "cache: mapping struct");
	m->id = map_id;
	m->grain_count = grain_count;
	atomic_init(&m->epoch, 1);
	live_add(c, alloc_bytes(sizeof(*m)));
	ret = __table_replace(c, m, NULL);
	if (ret) {
		live_sub(c, alloc_bytes(sizeof(*m)));
		free(m);
		return ret;
	}
	m->next = c->maps;
	c->maps = m;
	return 0;
}

int fm_cache_map_remove(struct fm_cache *c, uint64_t map_id)
{
	struct fm_cache_map *m, **pp;
	int ret;

	reclaim(c);
	m = __map_find(c, map_id);
	if (!m)
		return fm_err(-ENOENT, "cache: no mapping %" PRIu64, map_id);
	ret = __table_replace(c, NULL, m);
	if (ret)
		return ret;
	for (pp = &c->maps; *pp != m; pp = &(*pp)->next)
		;
	*pp = m->next;
	if (c->clock_map == m)
		c->clock_map = NULL;
	struct fm_cache_dir *d = __dir(m);

	atomic_store_explicit(&m->dir, NULL, memory_order_seq_cst);
	__dir_retire(c, d);
	ranges_adjust(c, m, -(int64_t)m->nranges);
	live_sub(c, alloc_bytes(sizeof(*m)));
	retire(c, m);
	return 0;
}

int fm_cache_map_grant(struct fm_cache *c, uint64_t map_id, uint64_t generation)
{
	struct fm_cache_map *m;

	reclaim(c);
	m = __map_find(c, map_id);
	if (!m)
		return fm_err(-ENOENT, "cache: no mapping %" PRIu64, map_id);
	if (m->has_gen && m->generation == generation && __dir(m))
		return 0;
	if (!m->has_gen || m->generation != generation)
		epoch_move(m); /* answers asked under the old generation are stale */
	m->generation = generation;
	m->has_gen = true;
	return __drop_all(c, m, true);
}

int fm_cache_map_discard(struct fm_cache *c, uint64_t map_id)
{
	struct fm_cache_map *m;

	reclaim(c);
	m = __map_find(c, map_id);
	if (!m)
		return fm_err(-ENOENT, "cache: no mapping %" PRIu64, map_id);
	epoch_move(m);
	stat_add(&c->st_discards, 1);
	return __drop_all(c, m, false);
}

/*
 * Any thread: inside a reader section like a lookup (the mapping struct
 * cannot be freed under us).  seq_cst loads: the token is read before
 * whatever READ of the owner's bitmap follows, and a discard's epoch_move
 * (seq_cst) is either seen -- the new token -- or comes after it, and then
 * fm_cache_insert refuses the answer.
 */
int fm_cache_map_epoch(struct fm_cache *c, uint64_t map_id, uint64_t *epoch)
{
	bool own;
	struct fm_cache_slot *s = slot_get(c, &own);
	unsigned p = (unsigned)(atomic_load_explicit(&c->gp, memory_order_relaxed) & 1);
	struct fm_cache_map *m;
	int rc = 0;

	atomic_fetch_add_explicit(&s->in[p], 1, memory_order_seq_cst);
	m = table_find(atomic_load_explicit(&c->table, memory_order_seq_cst), map_id);
	if (!m)
		rc = -ENOENT;
	else if (!atomic_load_explicit(&m->dir, memory_order_seq_cst))
		rc = -EAGAIN;
	else
		*epoch = atomic_load_explicit(&m->epoch, memory_order_seq_cst);
	slot_inc(&s->out[p], own, memory_order_release);
	slot_inc(&s->tokens, own, memory_order_relaxed);
	if (rc == -ENOENT)
		return fm_err(rc, "cache: no mapping %" PRIu64, map_id);
	if (rc)
		return fm_err(rc, "cache: mapping %" PRIu64 " has no lease", map_id);
	return 0;
}

/* Writer preamble of the range calls: free what readers left, find the
 * mapping, check [first, last] lies in it.  0, -ENOENT, -ERANGE. */
static int __map_range(struct fm_cache *c, uint64_t map_id, uint64_t first,
		       uint64_t last, struct fm_cache_map **out)
{
	struct fm_cache_map *m;

	reclaim(c);
	m = __map_find(c, map_id);
	if (!m)
		return fm_err(-ENOENT, "cache: no mapping %" PRIu64, map_id);
	if (first > last || last >= m->grain_count)
		return fm_err(-ERANGE, "cache: [%" PRIu64 ", %" PRIu64 "] outside "
			      "mapping %" PRIu64 " of %" PRIu64 " grains",
			      first, last, map_id, m->grain_count);
	*out = m;
	return 0;
}

int fm_cache_insert(struct fm_cache *c, uint64_t map_id, uint64_t epoch,
		    uint64_t first, uint64_t last)
{
	struct fm_cache_map *m;
	struct fm_cache_dir *d;
	struct fm_frag f;
	uint64_t ms = first, ml = last, wf, wl = 0;
	int ret;

	ret = __map_range(c, map_id, first, last, &m);
	if (ret)
		return ret;
	d = __dir(m);
	if (epoch != atomic_load_explicit(&m->epoch, memory_order_relaxed) || !d) {
		stat_add(&c->st_stale, 1);
		return fm_err(-ESTALE, "cache: epoch %" PRIu64 " is not current (%" PRIu64
			      "%s)", epoch, atomic_load_explicit(&m->epoch, memory_order_relaxed),
			      d ? "" : ", no lease");
	}
	if (first > 0 && __find(d, first - 1, &f))
		ms = __range_start(d, f.fs);
	if (last + 1 < m->grain_count && __find(d, last + 1, &f))
		ml = f.last;
	uint64_t absorbed = __count_runs(d, ms, ml);

	if (absorbed == 1 && __find(d, ms, &f) && f.last == ml && __range_start(d, f.fs) == ms) {
		/* already one range covering [ms, ml]: nothing changes */
		stat_add(&c->st_inserts, 1);
		return 0;
	}
	uint64_t bf = ms >> d->shift, bl = ml >> d->shift;

	ret = __prep_insert(c, d, bf, ms, ml, &wf);
	if (ret)
		return ret;
	if (bl != bf) {
		ret = __prep_insert(c, d, bl, ms, ml, &wl);
		if (ret) {
			__unmake_word(c, wf);
			return ret;
		}
	}
	for (uint64_t b = bf; b <= bl; b++)
		__word_set(c, d, b, b == bf ? wf : b == bl ? wl : w_one(0, ml));
	ranges_adjust(c, m, 1 - (int64_t)absorbed);
	stat_add(&c->st_inserts, 1);
	stat_add(&c->st_merges, absorbed);

	if (m->nranges > d->nb) {
		uint32_t s = ideal_shift(m->grain_count, m->nranges);
		uint64_t nnb = ((m->grain_count - 1) >> s) + 1;

		if (s < d->shift &&
		    (!c->budget || c->live + dir_bytes(nnb) <= c->budget))
			__dir_rebuild(c, m, s);
	}
	__enforce_budget(c);
	return 0;
}

int fm_cache_discard_range(struct fm_cache *c, uint64_t map_id, uint64_t first,
			   uint64_t last)
{
	struct fm_cache_map *m;
	int r, ret;

	ret = __map_range(c, map_id, first, last, &m);
	if (ret)
		return ret;
	epoch_move(m); /* a fill racing with this discard must not land */
	stat_add(&c->st_discards, 1);
	r = __discard(c, m, first, last);
	if (r < 0)
		return r;
	struct fm_cache_dir *d = __dir(m);

	if (d && m->nranges * 8 < d->nb)
		__dir_rebuild(c, m, ideal_shift(m->grain_count, m->nranges));
	return 0;
}
