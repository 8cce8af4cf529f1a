/* mapping.h -- a FlashCopy mapping: identity, geometry and state machine.
 *
 * A mapping makes `target_vol` a point-in-time image of `source_vol`.  Its
 * state follows the table below; every other (state, event) pair is refused
 * with -EPERM and a message naming both.  Starting a copy (the trigger)
 * clears the split bitmap and bumps the generation, so confirmations cached
 * for an older generation can never be mistaken for current ones.
 *
 *   state           event            next            notes
 *   IDLE_OR_COPIED  PREPARE          PREPARING
 *   STOPPED         PREPARE          PREPARING
 *   PREPARING       PREPARE_DONE     PREPARED        caches flushed
 *   PREPARING       STOP             STOPPED
 *   PREPARED        START            COPYING         the trigger: generation++
 *   PREPARED        STOP             STOPPED
 *   COPYING         COPY_COMPLETE    IDLE_OR_COPIED  every grain split
 *   COPYING         STOP             STOPPING
 *   STOPPING        STOP_DONE        STOPPED
 *
 * Restore (fm_mapping_reverse, not an event of the table): a mapping S->T
 * that is COPYING or IDLE_OR_COPIED after a trigger becomes T->S, COPYING,
 * generation++ -- the owner's map-restore (control.c has the argument why
 * the new split bitmap is the old one inverted).
 */
#ifndef FLASHMETA_MAPPING_H
#define FLASHMETA_MAPPING_H

#include <stddef.h>
#include <stdint.h>

#include "flashmeta/geometry.h"

#ifdef __cplusplus
extern "C" {
#endif

enum fm_map_state {
	FM_MAP_IDLE_OR_COPIED = 0, /* no copy in progress; target independent or never used */
	FM_MAP_PREPARING = 1,      /* flushing caches before the trigger */
	FM_MAP_PREPARED = 2,       /* ready: the next START is the point in time */
	FM_MAP_COPYING = 3,        /* triggered: COW active, background copy running */
	FM_MAP_STOPPING = 4,       /* stop requested; dependent work draining */
	FM_MAP_STOPPED = 5,        /* target no longer a valid image */
	FM_MAP_STATE_COUNT
};

enum fm_map_event {
	FM_MAP_EV_PREPARE = 0,
	FM_MAP_EV_PREPARE_DONE = 1,
	FM_MAP_EV_START = 2,
	FM_MAP_EV_COPY_COMPLETE = 3,
	FM_MAP_EV_STOP = 4,
	FM_MAP_EV_STOP_DONE = 5,
	FM_MAP_EV_COUNT
};

struct fm_mapping {
	uint64_t id;
	uint64_t source_vol;
	uint64_t target_vol;
	struct fm_geom geom;
	uint64_t generation;  /* bumped by every START */
	uint32_t copy_rate;   /* background copy rate 0..FM_COPY_RATE_MAX (copy.h
			       * has its table of bytes/s); 0 = none */
	enum fm_map_state state;
};

/* Human names ("copying", "prepare"); "?" for out-of-range values. */
const char *fm_map_state_name(enum fm_map_state s);
const char *fm_map_event_name(enum fm_map_event e);

/*
 * fm_map_next_state -- the state `ev` leads to from `s`.
 * Returns the next state (>= 0), or -EPERM for an illegal transition and
 * -EINVAL for out-of-range arguments.  Pure.
 */
int fm_map_next_state(enum fm_map_state s, enum fm_map_event ev);

/*
 * fm_mapping_init -- fill a mapping in IDLE_OR_COPIED, generation 0.
 * copy_rate 0.  Returns 0, or -EINVAL for a bad geometry (fm_geom_init's
 * message), source == target or NULL `m`; `m` is untouched on error.
 */
int fm_mapping_init(struct fm_mapping *m, uint64_t id, uint64_t source_vol,
		    uint64_t target_vol, uint64_t volume_size, uint64_t grain_size);

/*
 * fm_mapping_apply -- apply `ev` to `m` (state, and generation on START).
 * Returns 0, -EPERM (illegal transition), -EINVAL (NULL or out-of-range
 * event) or -EOVERFLOW (START with the generation at UINT64_MAX: it never
 * wraps); on error `m` is unchanged.
 */
int fm_mapping_apply(struct fm_mapping *m, enum fm_map_event ev);

/*
 * fm_mapping_reverse -- the restore of `m`: `out` = m with source and
 * target swapped, state COPYING, generation + 1 (copy rate, geometry and
 * id kept).  Legal from COPYING and from IDLE_OR_COPIED with generation >
 * 0 (triggered at least once); refused, with a message saying why:
 *   -EPERM       any other state: PREPARING/PREPARED (a trigger is being
 *                prepared: start or stop it first), STOPPING/STOPPED (the
 *                target is no point-in-time image: nothing to restore),
 *                IDLE_OR_COPIED at generation 0 (never triggered: the
 *                target holds no image)
 *   -EOVERFLOW   generation at UINT64_MAX
 *   -EINVAL      NULL arguments
 * Pure; `out` is written only on success (it may be `m`).
 */
int fm_mapping_reverse(const struct fm_mapping *m, struct fm_mapping *out);

/*
 * Which mappings may live together.  A volume is a source of at most
 * FM_MAPS_PER_SOURCE_MAX mappings (IBM's limit: 256 targets per source),
 * the target of at most one, and never both a source and a target:
 * cascades (a target copied on, or a source that is itself an image) are
 * not supported -- the copy-on-write of one mapping would have to see the
 * other's splits, which no part of the protocol does.  Two mappings
 * writing one target would each break the other's point-in-time image.
 */
#define FM_MAPS_PER_SOURCE_MAX 256u

/*
 * fm_mapping_admit -- may `m` join the `n` mappings `v`?  Returns 0, or,
 * checked in this order, with a message naming the mapping in the way:
 *   -EEXIST      m's id is taken, or a mapping already copies m's source to
 *                m's target ("duplicate source/target pair")
 *   -EOPNOTSUPP  m's target is another mapping's source, or m's source
 *                another mapping's target ("cascades are not supported")
 *   -EADDRINUSE  m's target is already another mapping's target
 *   -EMLINK      m's source has FM_MAPS_PER_SOURCE_MAX mappings already
 *   -EINVAL      NULL arguments
 * Pure; O(n).
 */
int fm_mapping_admit(const struct fm_mapping *v, size_t n, const struct fm_mapping *m);

#ifdef __cplusplus
}
#endif

#endif /* FLASHMETA_MAPPING_H */
