/* copy.h -- background copy: the copy rate and the claim protocol's values.
 *
 * A mapping in COPYING copies every grain nobody split yet, in the
 * background, at a per-mapping copy RATE (0..FM_COPY_RATE_MAX, IBM
 * FlashCopy's scale).  Clients copy (they have the data movers: engine.h
 * fm_engine_copy_start); the owner assigns the work:
 *
 *   client                                  owner
 *   COPY_CLAIM {map, gen, max grains,  -->  ends the claimant's previous
 *              the batch it ends and         batch of the map (what it did
 *              how far it got}               not copy goes back to the pool),
 *                                            then a run of grains UNSPLIT in
 *                                            its bitmap, claimed by nobody
 *                                      <--  COPY_BATCH {OK, id, [first, last],
 *                                            rate} or {WAIT ms | DONE | STALE}
 *   per grain of the batch, exactly as the copy-on-write: lock, found split
 *   -> skip, else copy source -> target; FLUSH the target; SPLIT_COMMIT the
 *   run; unlock (rdma/agent/eio.c)
 *
 * The owner's bookkeeping (core/src/owner/copy.c) only schedules: the
 * grain locks and the split bits keep the snapshot right whoever copies
 * what, so a batch handed out twice would cost a second look, never a
 * wrong target.
 *
 * Rate table (bytes per second), the only place it is defined:
 *
 *   rate      bytes/s          rate      bytes/s
 *   0         none             81-90     32 MiB
 *   1-10      128 KiB          91-100    64 MiB
 *   11-20     256 KiB          101-110   128 MiB
 *   21-30     512 KiB          111-120   256 MiB
 *   31-40     1 MiB            121-130   512 MiB
 *   41-50     2 MiB            131-140   1 GiB
 *   51-60     4 MiB            141-150   2 GiB
 *   61-70     8 MiB
 *   71-80     16 MiB
 *
 * Pure functions: no allocation, no locks, safe from any thread.
 */
#ifndef FLASHMETA_COPY_H
#define FLASHMETA_COPY_H

#include <stdint.h>

#define FM_COPY_RATE_MAX 150u       /* the highest copy rate */
#define FM_COPY_BATCH_MAX 4096u     /* grains one COPY_CLAIM may ask for */
#define FM_COPY_BATCH_MS 1000u      /* a batch is about this long at the rate */
#define FM_COPY_POLL_MS 1000u       /* WAIT when there is nothing to pace
				     * against (rate 0, everything claimed) */

/* COPY_BATCH.status */
enum fm_copy_status {
	FM_COPY_OK = 0,     /* [first, last] is the claimant's batch */
	FM_COPY_WAIT = 1,   /* nothing for it now (rate 0, the pace, every
			     * unsplit grain claimed, the owner's restart
			     * grace): claim again after wait_ms */
	FM_COPY_DONE = 2,   /* no grain of this generation is unsplit or
			     * claimed: the copy is over */
	FM_COPY_STALE = 3,  /* the generation is not current, or the mapping
			     * is not COPYING (or being revoked): stop until a
			     * new grant */
	FM_COPY_STATUS_COUNT
};

/*
 * fm_copy_rate_bps -- bytes per second of copy rate `rate` (the table
 * above); 0 for rate 0 and for a rate above FM_COPY_RATE_MAX.
 */
uint64_t fm_copy_rate_bps(uint32_t rate);

/*
 * fm_copy_batch_grains -- how many grains of 2^grain_shift bytes a batch
 * at `rate` holds: about FM_COPY_BATCH_MS of copying, at least 1, at most
 * `max` (itself at most FM_COPY_BATCH_MAX).  0 for rate 0.
 */
uint64_t fm_copy_batch_grains(uint32_t rate, uint32_t grain_shift, uint32_t max);

/*
 * fm_copy_ns -- how long copying `bytes` takes at `rate` (ns; the pace of
 * a copier); UINT64_MAX for rate 0.
 */
uint64_t fm_copy_ns(uint32_t rate, uint64_t bytes);

/* "ok", "wait", "done", "stale"; "?" otherwise. */
const char *fm_copy_status_name(uint32_t status);

#endif /* FLASHMETA_COPY_H */
