/* svc_vols.h -- volumes as files behind the library's I/O engine, for the
 * multi-process tests that check data against a model (test_service
 * snapshot, test_lanes, test_restore, test_refresh): src.img and tgt.img in the run directory,
 * reference volumes fenced through the owner's table, one engine with
 * both attached to one mapping.  The copy-on-write order is the
 * library's, not the test's.  Needs fm_volume and fm_fence besides what
 * svc_util.c needs. */
#ifndef FM_TESTS_SVC_VOLS_H
#define FM_TESTS_SVC_VOLS_H

#include <stddef.h>
#include <stdint.h>

#include "flashmeta/engine.h"
#include "svc_util.h"

struct svc_vols {
	struct fm_engine *e;
	struct fm_fence_table *ft;
	struct fm_refvol *src, *tgt;
	uint64_t map_id;
};

/* src.img and tgt.img of `size` bytes (zeros) in the run directory */
void svc_vols_make(struct svc *s, uint64_t size);
/* the trigger on random volumes: src.img and tgt.img of `size` random
 * bytes (svc_fill on *x: S's first, then T's), then map-create `map`
 * (volumes 1 -> 2, `grain`), map-prepare, map-start.  *smodel (S) and
 * *tmodel (T's image: S at the trigger) are new buffers the caller frees.
 * 0, or 1 after a CHECK said why. */
int svc_vols_trigger(struct svc *s, uint64_t map, uint64_t size, uint32_t grain, uint64_t *x,
		     uint8_t **smodel, uint8_t **tmodel);
/* both files as reference volumes of client `id` (its fence floor in the
 * owner's table), an engine on agent a (retry_ms 20 s) with them attached
 * to map_id as source and target; 0, or 1 after a CHECK said why */
int svc_vols_open(struct svc *s, struct fm_agent *a, uint32_t id, uint64_t map_id,
		  uint64_t size, struct svc_vols *v);
void svc_vols_close(struct svc_vols *v);
/* one I/O, synchronous; the engine retries what is transient (engine.h) */
int svc_vols_io(struct svc_vols *v, enum fm_io_op op, uint64_t off, uint64_t len, void *buf);

/* a file of the run directory, `size` bytes: read into a new buffer
 * (calloc: the caller frees), or written and synced; both die on error */
uint8_t *svc_file_load(struct svc *s, const char *name, size_t size);
void svc_file_store(struct svc *s, const char *name, const uint8_t *b, size_t size);
/* n pseudo-random bytes (rnd) */
void svc_fill(uint8_t *b, size_t n, uint64_t *x);

#endif
