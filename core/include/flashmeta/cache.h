/* cache.h -- the client's cache of positive confirmations (claims 3-6).
 *
 * Per mapping, the cache holds the grain ranges the owner has confirmed as
 * split, merged with overlapping and contiguous neighbours (claim 5; a
 * benchmark baseline, fm_cache_cfg.no_merge, keeps one range per fill).  It
 * answers "is grain g split" and "how many split grains follow", so an I/O
 * on a confirmed grain is planned with no network round trip (claims 1, 3).
 * It forgets on a release request (claim 4) and evicts least-recently-used
 * ranges to stay within a memory budget (claim 6).
 *
 * Soundness: the cache may forget, but never answers "split" for a grain it
 * was not told was split under the mapping's current validity.  Validity is
 * (generation, epoch): the generation comes from the owner's lease grant;
 * the epoch is local and moves on every discard, so a fill that raced with
 * a release request is refused (-ESTALE) rather than resurrecting old data.
 * Negative answers are never stored.
 *
 * Threads: any number of I/O threads may call fm_cache_lookup() and
 * fm_cache_stats() concurrently with each other and with ONE protocol
 * thread calling everything else (the "writer" calls).  Writer calls must
 * be serialized by the caller.  See the design comment of
 * core/src/cache/cache_priv.h (and reclaim.c beside it) for how lookups
 * avoid an exclusive lock.
 */
#ifndef FLASHMETA_CACHE_H
#define FLASHMETA_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

struct fm_cache;

struct fm_cache_cfg {
	size_t budget_bytes; /* memory for ranges and indexes; 0 = unlimited */
	bool keep_nothing;   /* a baseline for benchmarks: inserts are checked
			      * and counted as usual, then dropped; every
			      * lookup misses */
	bool no_merge;       /* a baseline for benchmarks: an insert is never
			      * joined to a range it only touches, so every
			      * fill stays a range of its own (one that
			      * overlaps ranges held still absorbs them:
			      * ranges stay disjoint); a lookup's run ends
			      * at its range's end.  Sound, like the default */
};

struct fm_cache_stats {
	uint64_t lookups;   /* fm_cache_lookup calls */
	uint64_t hits;      /* ... that answered "split" */
	uint64_t misses;    /* ... that did not */
	uint64_t inserts;   /* fm_cache_insert calls accepted */
	uint64_t merges;    /* neighbours absorbed by inserts */
	uint64_t evictions; /* ranges dropped to respect the budget */
	uint64_t discards;  /* discard_range / map_discard calls */
	uint64_t stale;     /* inserts refused with -ESTALE */
	uint64_t bytes;     /* memory held now */
	uint64_t ranges;    /* ranges held now, all mappings */
};

/* fm_cache_new -- 0, -EINVAL (cfg NULL), -ENOMEM. */
int fm_cache_new(struct fm_cache **out, const struct fm_cache_cfg *cfg);
/* fm_cache_delete -- free everything; NULL-safe; sets *cp = NULL.
 * No lookup may be running. */
void fm_cache_delete(struct fm_cache **cp);

/* ---- writer calls (one protocol thread) ---- */

/*
 * fm_cache_map_add -- start tracking mapping `map_id` of `grain_count`
 * grains.  It starts invalid (every lookup misses) until fm_cache_map_grant.
 * Returns 0, -EEXIST, -EINVAL (grain_count 0 or above 2^48), -ENOMEM.
 */
int fm_cache_map_add(struct fm_cache *c, uint64_t map_id, uint64_t grain_count);

/* fm_cache_map_remove -- forget the mapping and its ranges. 0 or -ENOENT. */
int fm_cache_map_remove(struct fm_cache *c, uint64_t map_id);

/*
 * fm_cache_map_grant -- the owner granted a confirmation lease for
 * `generation`.  If it differs from the one held, all ranges are dropped
 * first.  Lookups may hit from now on.  0, -ENOENT, or -ENOMEM (the
 * mapping then stays invalid: lookups keep missing, which is sound).
 */
int fm_cache_map_grant(struct fm_cache *c, uint64_t map_id, uint64_t generation);

/*
 * fm_cache_map_discard -- a release request (or lease lapse): drop every
 * range of the mapping, move its epoch on, and make it invalid until the
 * next grant.  When this returns, no lookup that starts later can hit.
 * 0 or -ENOENT.
 */
int fm_cache_map_discard(struct fm_cache *c, uint64_t map_id);

/*
 * fm_cache_map_epoch -- the fill token: read it BEFORE asking the owner for
 * confirmations, pass it to fm_cache_insert with the answer.
 * 0, -ENOENT, or -EAGAIN when the mapping is invalid (no lease).  Any
 * thread (a reader call, like fm_cache_lookup): an I/O thread may take the
 * token and READ the bitmap itself, and hand the answer to the writer.
 */
int fm_cache_map_epoch(struct fm_cache *c, uint64_t map_id, uint64_t *epoch);

/*
 * fm_cache_insert -- grains [first, last] are confirmed split.  Merges with
 * overlapping and contiguous ranges (with no_merge: overlapping ones only),
 * then evicts to the budget.
 * Returns 0; -ENOENT unknown mapping; -ESTALE when `epoch` is no longer
 * current (a discard happened since it was read) -- nothing is stored;
 * -ERANGE when last >= grain_count or first > last; -ENOMEM.
 */
int fm_cache_insert(struct fm_cache *c, uint64_t map_id, uint64_t epoch,
		    uint64_t first, uint64_t last);

/*
 * fm_cache_discard_range -- forget grains [first, last] (ranges that
 * straddle the edges are split).  0, -ENOENT, -ERANGE, -ENOMEM (a split
 * needed memory: every range of the mapping is dropped instead, which
 * stays sound, and -ENOMEM is still reported).
 */
int fm_cache_discard_range(struct fm_cache *c, uint64_t map_id,
			   uint64_t first, uint64_t last);

/* ---- reader calls (any thread) ---- */

/*
 * fm_cache_lookup -- is grain `grain` of `map_id` confirmed split?
 * Returns true and sets *run (if not NULL) to the number of consecutive
 * confirmed grains starting at `grain` (>= 1); false for unknown mapping,
 * invalid mapping, out-of-range grain or not cached.  Never blocks on the
 * writer, never allocates.
 */
bool fm_cache_lookup(struct fm_cache *c, uint64_t map_id, uint64_t grain,
		     uint64_t *run);

/* fm_cache_stats -- a snapshot of the counters (each read atomically). */
void fm_cache_stats(struct fm_cache *c, struct fm_cache_stats *st);

#ifdef __cplusplus
}
#endif

#endif /* FLASHMETA_CACHE_H */
