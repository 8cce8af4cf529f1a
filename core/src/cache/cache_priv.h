/* cache_priv.h -- the confirmation-range cache's shared internals: a bucket
 * directory per mapping, lookups that take no lock and write no shared line.
 *
 * Split by job, one file each:
 *   cache.c    the object, its mappings and the public writer calls
 *   reader.c   the calls of any thread: lookup, the fill token, stats
 *   reclaim.c  epoch-based reclamation of what the writer unlinked
 *   dir.c      a mapping's bucket directory: words, fragments, resizing
 *   range.c    the buckets a range edit rewrites: insert (merge), discard
 *   evict.c    the memory budget: CLOCK eviction
 * Cross-file names: ch_ prefix.  Every ch_ function is a writer call (the
 * protocol thread; the caller serializes writer calls) unless its comment
 * says "any thread"; a file-local writer helper keeps the `__` prefix.
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
 * Invariants (writer's view): ranges are disjoint and, by default, maximal
 * (never contiguous either: merged on insert); with no_merge (a benchmark
 * baseline, cache.h) two ranges may touch.  Fragments in a bucket are sorted
 * and disjoint.  A fragment with fs == B continues the range of the bucket
 * before iff that bucket's last fragment reaches B (its `last` >= B): the
 * true end it carries tells a continuation from a neighbour that merely
 * ends at B-1, so touching ranges need no mark of their own.  Every writer
 * test of "same range" compares `last >= fs`, never `last + 1 >= fs`.
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
 * Memory retired but not yet reclaimed (reclaim.c) is not counted; it is
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
 * Reclamation: reclaim.c.  Referenced bits and eviction: evict.c.
 * Measurements of the lookup: reader.c.
 */
#ifndef FM_CACHE_PRIV_H
#define FM_CACHE_PRIV_H

#include <stdalign.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "flashmeta/cache.h"

#define FM_CACHE_SLOTS 64u		 /* private reader slots, power of two */
#define FM_CACHE_SHARED_SLOTS 8u	 /* slots of the threads beyond them */
#define FM_CACHE_ALL_SLOTS (FM_CACHE_SLOTS + FM_CACHE_SHARED_SLOTS)
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

/* One per reader thread: the first FM_CACHE_SLOTS threads (numbered in
 * the order of their first lookup, process-wide) own slots[tid - 1] and
 * update it with plain stores.  Every later thread shares one of the
 * FM_CACHE_SHARED_SLOTS slots after them, where every update is an RMW --
 * never a private slot: a plain store there would lose a sharer's
 * increment, and in != out for good stops reclamation.  Written by its lookups, read
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
	struct fm_cache_slot slots[FM_CACHE_ALL_SLOTS];
	/* Read by lookups, written by the writer (seq_cst). */
	alignas(64) _Atomic(struct fm_cache_table *) table;
	_Atomic uint64_t gp; /* grace-period counter, starts at 2 */
	size_t budget;	     /* immutable */
	bool keep_nothing;   /* immutable: fm_cache_cfg.keep_nothing */
	bool no_merge;       /* immutable: fm_cache_cfg.no_merge */

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
/* memory accounting and counters (writer only) */

static inline size_t ch_alloc_bytes(size_t sz)
{
	return ((sz + 15) & ~(size_t)15) + FM_CACHE_MALLOC_OVERHEAD;
}

static inline size_t ch_node_bytes(uint32_t cap)
{
	return ch_alloc_bytes(sizeof(struct fm_cache_node) + cap * sizeof(struct fm_frag));
}

static inline size_t ch_dir_bytes(uint64_t nb)
{
	return ch_alloc_bytes(sizeof(struct fm_cache_dir) + nb * sizeof(uint64_t));
}

static inline size_t ch_table_bytes(uint64_t cap)
{
	return ch_alloc_bytes(sizeof(struct fm_cache_table) + cap * sizeof(void *));
}

static inline void ch_stat_add(_Atomic uint64_t *s, uint64_t v)
{
	/* single writer: load + store is enough and cheaper than an RMW */
	atomic_store_explicit(s, atomic_load_explicit(s, memory_order_relaxed) + v,
			      memory_order_relaxed);
}

static inline void ch_live_add(struct fm_cache *c, size_t b)
{
	c->live += b;
	atomic_store_explicit(&c->st_bytes, c->live, memory_order_relaxed);
}

static inline void ch_live_sub(struct fm_cache *c, size_t b)
{
	c->live -= b;
	atomic_store_explicit(&c->st_bytes, c->live, memory_order_relaxed);
}

static inline void ch_ranges_adjust(struct fm_cache *c, struct fm_cache_map *m, int64_t d)
{
	m->nranges = (uint64_t)((int64_t)m->nranges + d);
	c->nranges = (uint64_t)((int64_t)c->nranges + d);
	atomic_store_explicit(&c->st_ranges, c->nranges, memory_order_relaxed);
}

/* ------------------------------------------------------------------ */
/* directory words (pure: used by lookups and by the writer) */

static inline uint64_t ch_w_one(uint64_t off, uint64_t last)
{
	return W_ONE | (last << 3) | (off << W_OFF_SHIFT);
}

static inline struct fm_cache_node *ch_w_node(uint64_t w)
{
	return (struct fm_cache_node *)(uintptr_t)(w & ~UINT64_C(7));
}

/*
 * ch_word_find -- the fragment of bucket word `w` (bucket start B) containing
 * grain g.  Pure, no writes: used by lookups and by the writer.
 */
static inline bool ch_word_find(uint64_t w, uint64_t B, uint64_t g, uint64_t *last,
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
		const struct fm_cache_node *nd = ch_w_node(w);
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
static inline uint32_t ch_word_frags(uint64_t w, uint64_t B, struct fm_frag *one,
				     const struct fm_frag **f)
{
	switch (w & W_TAG_MASK) {
	case W_ONE:
		one->fs = B + (w >> W_OFF_SHIFT);
		one->last = (w >> 3) & W_LAST_MASK;
		*f = one;
		return 1;
	case W_NODE:
		*f = ch_w_node(w)->f;
		return ch_w_node(w)->n;
	default:
		*f = NULL;
		return 0;
	}
}

/* Any thread: the mapping `id` of a published table, or NULL. */
static inline struct fm_cache_map *ch_table_find(const struct fm_cache_table *t,
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

/* Writer: its own view of a mapping's directory and of a word (relaxed: only
 * the writer stores them). */
static inline struct fm_cache_dir *ch_dir(struct fm_cache_map *m)
{
	return atomic_load_explicit(&m->dir, memory_order_relaxed);
}

static inline uint64_t ch_word(struct fm_cache_dir *d, uint64_t b)
{
	return atomic_load_explicit(&d->e[b], memory_order_relaxed);
}

/* ------------------------------------------------------------------ */
/* calls between the files (writer only) */

/* reclaim.c */
void ch_reclaim(struct fm_cache *c);
void ch_retire(struct fm_cache *c, void *p);
void ch_reclaim_all(struct fm_cache *c);

/* dir.c: words */
void ch_word_set(struct fm_cache *c, struct fm_cache_dir *d, uint64_t b, uint64_t w);
bool ch_find(struct fm_cache_dir *d, uint64_t g, struct fm_frag *f);
uint64_t ch_range_start(struct fm_cache_dir *d, uint64_t fs);
uint64_t ch_count_runs(struct fm_cache_dir *d, uint64_t lo, uint64_t hi);
int ch_make_word(struct fm_cache *c, uint64_t B, const struct fm_frag *f, uint32_t n,
		 uint64_t *w);
void ch_unmake_word(struct fm_cache *c, uint64_t w);

/* dir.c: the directory as a whole */
void ch_dir_free_now(struct fm_cache *c, struct fm_cache_dir *d);
void ch_dir_retire(struct fm_cache *c, struct fm_cache_dir *d);
void ch_dir_grow(struct fm_cache *c, struct fm_cache_map *m);
void ch_dir_shrink(struct fm_cache *c, struct fm_cache_map *m);
void ch_drop_inplace(struct fm_cache *c, struct fm_cache_map *m);
int ch_drop_all(struct fm_cache *c, struct fm_cache_map *m, bool valid);

/* range.c */
int ch_insert(struct fm_cache *c, struct fm_cache_map *m, uint64_t first, uint64_t last);
int ch_discard(struct fm_cache *c, struct fm_cache_map *m, uint64_t a, uint64_t z);

/* evict.c */
void ch_enforce_budget(struct fm_cache *c);

#endif /* FM_CACHE_PRIV_H */
