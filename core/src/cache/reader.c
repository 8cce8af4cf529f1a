/* reader.c -- the calls any thread may make while the writer runs:
 * fm_cache_lookup (the hot path), fm_cache_map_epoch (the fill token),
 * fm_cache_stats.
 *
 * Concurrency.  Any number of threads, beside the one writer.  A reader
 * section counts itself in (in[gp & 1] of the thread's slot, the one
 * seq_cst RMW), loads table, dir and word (seq_cst), and counts itself
 * out (out[same], release); the writer frees nothing a section may still
 * hold (the argument is in reclaim.c).  A lookup reads one directory word
 * (plus an immutable node): its answer is that word before or after the
 * writer's store of it (cache_priv.h, "Concurrency").
 *
 * MEASUREMENTS: run fm-bench-cache (throughput and dependent-chain latency
 * modes, the bitmap-with-run and plain bit probe baselines interleaved per
 * round, per-round ranges; its `# method:` block says how).  Figures depend
 * on method and machine.  On a loaded 2-vCPU VM at 10^6 sparse ranges
 * (len, gap ~U[1,255]) the cache cost about 3x the bitmap with run (7x a
 * bare bit probe) in throughput and about 1.2x in latency; dense (~U[1,15],
 * the bitmap L2/L3-resident) about 9x and 3-5x.  Where the bitmap no longer
 * fits the CPU caches it still beats CRoaring and binary search, and it
 * answers the run in O(1).  The floor at small sizes is the reader slot
 * RMW + table probe.
 * Concurrency: a shared pthread rwlock adds ~25 ns on one thread and ~2-3x
 * on two threads (counter line bouncing); the epoch slots add one RMW on a
 * thread-private line and scale (t=2 is not slower than t=1).  A seqlock
 * would need the same reclamation and retry logic; liburcu was not needed.
 * Directory load: nb >= n (FM_CACHE_LOAD_NUM/DEN = 1) keeps <= 48 B/range
 * at 10^5..10^6; nb >= 2n was ~15% faster sparse but 51 B/range.
 */
#include <errno.h>
#include <inttypes.h>
#include <string.h>

#include "cache_priv.h"
#include "flashmeta/error.h"

static _Atomic uint64_t fm_cache_tid_next; /* 64 bits: never wraps onto a private slot */
static __thread uint64_t fm_cache_tid; /* 0 = not assigned yet */

/* The calling thread's slot; *own = no other thread uses it. */
static inline struct fm_cache_slot *slot_get(struct fm_cache *c, bool *own)
{
	if (__builtin_expect(fm_cache_tid == 0, 0))
		fm_cache_tid = atomic_fetch_add_explicit(&fm_cache_tid_next, 1,
							 memory_order_relaxed) + 1;
	*own = fm_cache_tid <= FM_CACHE_SLOTS;
	if (__builtin_expect(*own, 1))
		return &c->slots[fm_cache_tid - 1];
	return &c->slots[FM_CACHE_SLOTS + fm_cache_tid % FM_CACHE_SHARED_SLOTS];
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

/* A reader section: while it is open the writer frees nothing the section
 * could have read (reclaim.c waits for in[p] == out[p] of every slot). */
struct section {
	struct fm_cache_slot *s;
	unsigned p; /* phase: gp & 1 at entry */
	bool own;   /* the slot is this thread's alone */
};

static inline struct section section_enter(struct fm_cache *c)
{
	struct section sec;

	sec.s = slot_get(c, &sec.own);
	sec.p = (unsigned)(atomic_load_explicit(&c->gp, memory_order_relaxed) & 1);
	/* The one RMW: orders "I am in" before the loads that follow (Dekker
	 * with the writer's fence in gp_try_advance, reclaim.c). */
	atomic_fetch_add_explicit(&sec.s->in[sec.p], 1, memory_order_seq_cst);
	return sec;
}

static inline void section_exit(const struct section *sec)
{
	/* release: our reads happen before the writer frees what we read */
	slot_inc(&sec->s->out[sec->p], sec->own, memory_order_release);
}

/* Hot path: no lock, no allocation; one RMW on the thread's own slot line
 * (plus plain stores to it), one table probe, one directory word, at most
 * one node. */
bool fm_cache_lookup(struct fm_cache *c, uint64_t map_id, uint64_t grain,
		     uint64_t *run)
{
	struct section sec = section_enter(c);
	bool hit = false;
	uint64_t last = 0;
	const struct fm_cache_table *t =
		atomic_load_explicit(&c->table, memory_order_seq_cst);
	struct fm_cache_map *m = ch_table_find(t, map_id);

	if (m && grain < m->grain_count) {
		struct fm_cache_dir *d = atomic_load_explicit(&m->dir, memory_order_seq_cst);

		if (d) {
			uint64_t b = grain >> d->shift;
			_Atomic uint64_t *wp = &d->e[b];
			uint64_t w = atomic_load_explicit(wp, memory_order_seq_cst);

			hit = ch_word_find(w, b << d->shift, grain, &last, NULL);
			/* the CLOCK's referenced bit (evict.c): an RMW, never a
			 * plain store, and only when it is clear */
			if (hit && c->budget && !(w & W_REF))
				atomic_fetch_or_explicit(wp, W_REF, memory_order_relaxed);
		}
	}
	section_exit(&sec);
	if (hit) {
		slot_inc(&sec.s->hits, sec.own, memory_order_relaxed);
		if (run)
			*run = last - grain + 1;
	}
	return hit;
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
	struct section sec = section_enter(c);
	struct fm_cache_map *m;
	int rc = 0;

	m = ch_table_find(atomic_load_explicit(&c->table, memory_order_seq_cst), map_id);
	if (!m)
		rc = -ENOENT;
	else if (!atomic_load_explicit(&m->dir, memory_order_seq_cst))
		rc = -EAGAIN;
	else
		*epoch = atomic_load_explicit(&m->epoch, memory_order_seq_cst);
	section_exit(&sec);
	slot_inc(&sec.s->tokens, sec.own, memory_order_relaxed);
	if (rc == -ENOENT)
		return fm_err(rc, "cache: no mapping %" PRIu64, map_id);
	if (rc)
		return fm_err(rc, "cache: mapping %" PRIu64 " has no lease", map_id);
	return 0;
}

void fm_cache_stats(struct fm_cache *c, struct fm_cache_stats *st)
{
	memset(st, 0, sizeof(*st));
	for (unsigned i = 0; i < FM_CACHE_ALL_SLOTS; i++) {
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
