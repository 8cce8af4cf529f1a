/* persist.h -- the one path by which flashmeta makes pool bytes durable.
 *
 * Every flush, drain and persist of pool memory goes through these calls
 * (never libpmem directly), so that:
 *   - DAX (is_pmem = 1) uses cache-line flushes + one drain (pmem_flush,
 *     pmem_drain) and an ordinary file uses msync (pmem_msync) of the
 *     range flushed since the last drain;
 *   - a test build can install hooks that see every flush and drain and keep
 *     a shadow image holding only what a power failure would preserve.
 *
 * A struct fm_persist belongs to one store and is used by one thread at a
 * time: the store has one used under its lock (log, owner record) and one
 * used only by its split commit in flight, whose drain runs without the
 * lock (store.c).  The test hooks may therefore be called from two
 * threads at once.
 */
#ifndef FM_PMEM_PERSIST_H
#define FM_PMEM_PERSIST_H

#include <stddef.h>
#include <stdint.h>

struct fm_persist {
	uint8_t *base;   /* the pool mapping */
	size_t size;     /* bytes mapped */
	int is_pmem;     /* 1: flush instructions; 0: msync */
	uintptr_t lo, hi; /* msync mode: range flushed since the last drain */
	uint64_t drains; /* statistics: drains/msyncs issued */
};

/*
 * Test hooks (process-wide; NULL to remove).  flush() runs before the real
 * flush with the range being flushed; drain() runs before the real drain
 * and returns 0, or a negative errno to make this drain fail as a media
 * error would (the real drain is then skipped).  A shadow image copies the
 * flushed lines at flush() and makes them "durable" at drain().  Not for
 * production use.
 */
struct fm_persist_hooks {
	void (*flush)(void *arg, const struct fm_persist *p, size_t off, size_t len);
	int (*drain)(void *arg, const struct fm_persist *p);
	void *arg;
};
void fm_persist_set_hooks(const struct fm_persist_hooks *h);

void fm_persist_init(struct fm_persist *p, void *base, size_t size, int is_pmem);

/* Start write-back of [addr, addr + len): not durable until fm_drain(). */
void fm_flush(struct fm_persist *p, const void *addr, size_t len);

/* Wait until everything flushed so far is durable.  0 or -errno (msync). */
int fm_drain(struct fm_persist *p);

/* fm_flush + fm_drain. */
int fm_persist_range(struct fm_persist *p, const void *addr, size_t len);

#endif /* FM_PMEM_PERSIST_H */
