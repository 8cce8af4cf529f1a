/* check.h -- the point-in-time model, checked against the clients' logs.
 *
 * Inputs: every client incarnation's log (plog.h), the triggers the
 * parent saw answered, the published bitmaps the final sweep saved, and
 * the pool as flashmeta-pmem dumped it after the owner stopped.
 *
 * Definitions (per mapping; "acked" = END with rc 0; times CLOCK_MONOTONIC):
 *
 *   T(G)       when generation G had certainly begun: the earliest START
 *              of an I/O whose bracket had generation G, or the answer of
 *              the trigger that made G, whichever is earlier.
 *   SAT(b, G)  source-at-trigger of block b: the last acked source write
 *              to b of generation < G whose END came before T(G) (or
 *              "never written": zeroes), plus as alternatives every LATER
 *              source write of generation < G (unacked, or acked after
 *              T(G): either may have landed before the copy).
 *
 * Rules:
 *   stale write      a write of generation g whose START came after T(G)
 *                    for some G > g: its bracket outlived its generation.
 *   target read R of block b in generation G (bracket state COPYING):
 *                    with A = the latest target write to b of generation G
 *                    acked before R began, R must return A or a later
 *                    target write of generation G that started before R
 *                    ended; with no such A, SAT(b, G) or a target write of
 *                    generation G that started before R ended.  Returning
 *                    source data or an older write where A exists is a
 *                    LOST ACKNOWLEDGEMENT (counted apart from violations).
 *   source read R:   the latest source write acked before R began, or a
 *                    later one that started before R ended; an older one
 *                    is a lost acknowledgement.
 *   garbage          (no valid tag, not zero) only while a write that the
 *                    read may return was in flight (a torn read).
 *   monotonic        for reads of one block (and generation, on a target):
 *                    a read that began after another ended never returns
 *                    an older value; once a target read returned a SAT
 *                    alternative, later ones return that same one or a
 *                    target write.
 *   splits           every split acked in a mapping's final generation is
 *                    set in the published bitmap and in the pool; every
 *                    published bit had a commit attempt in that generation
 *                    and is in the pool.
 */
#ifndef FM_TESTS_PIT_CHECK_H
#define FM_TESTS_PIT_CHECK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pit.h"
#include "run.h"

enum pit_viol {
	PIT_V_POST_TRIGGER = 0, /* target read: source data written after the trigger */
	PIT_V_OLD_SOURCE,       /* target read: source data older than SAT */
	PIT_V_STALE_TARGET,     /* target read: target data of an earlier generation */
	PIT_V_FUTURE,           /* a read returned a write that started after it ended */
	PIT_V_GARBAGE,          /* no valid tag, no write in flight */
	PIT_V_MISPLACED,        /* the tag of another block or volume */
	PIT_V_UNKNOWN,          /* a tag of a write no log knows */
	PIT_V_STALE_WRITE,      /* a write began after its generation ended */
	PIT_V_REGRESSED,        /* a later read returned an older value */
	PIT_V_SAT_CHANGED,      /* two SAT alternatives seen for one block */
	PIT_V_PHANTOM_SPLIT,    /* a split bit without a commit attempt */
	PIT_V_NOT_DURABLE,      /* published, not in the pool */
	PIT_V_LOG,              /* logs or outputs that make no sense */
	PIT_V_COUNT
};

enum pit_lost {
	PIT_L_TARGET = 0,       /* acked target write replaced (by source data or older) */
	PIT_L_SOURCE,           /* acked source write replaced by an older value */
	PIT_L_SPLIT,            /* acked split missing from the bitmap or the pool */
	PIT_L_COUNT
};

struct pit_check_in {
	const struct pit_env *env;
	const struct pit_inc *incs;
	size_t nincs;
	const struct pit_trigger *trig;
	size_t ntrig;
	bool bitmaps;            /* the final sweep saved bitmap.<map> files */
	const char *pool_json;   /* flashmeta-pmem dump --json output; NULL: skip */
	unsigned max_reports;    /* detailed reports per kind */
};

struct pit_check_out {
	uint64_t ios[4];         /* acked I/Os by enum fm_io_op */
	uint64_t attempts;       /* START records */
	uint64_t retried;        /* attempts that ended with an error */
	uint64_t unfinished;     /* START without END (killed mid-I/O) */
	uint64_t target_blocks, source_blocks; /* block reads checked */
	uint64_t unchecked;      /* target blocks read outside COPYING */
	uint64_t commits_acked;
	uint64_t viol[PIT_V_COUNT], lost[PIT_L_COUNT];
	uint64_t violations, lost_acks;
	uint64_t max_io_ns;      /* the slowest attempt, START to END (liveness) */
	char max_io_what[128];   /* ... which one */
	uint64_t final_gen[PIT_MAX_MAPS];
	uint64_t max_gen[PIT_MAX_MAPS];
};

/* 0 when the check ran (read out for its verdict), -errno if it could not */
int pit_check(const struct pit_check_in *in, struct pit_check_out *out);

const char *pit_viol_name(enum pit_viol v);
const char *pit_lost_name(enum pit_lost l);

#endif /* FM_TESTS_PIT_CHECK_H */
