/* lane_faults.h -- a fault seam under the agent's engine lanes and its
 * clock, by link-time wraps (-Wl,--wrap=..., tests/integration/
 * CMakeLists.txt): fm_lane_post_read, fm_lane_post_cas, fm_lane_poll,
 * fm_lane_delete and fm_region_new as the agent's objects call them, and
 * ag_now_ms, the agent's clock (agent.c; ops.c, io.c and proto.c call it).
 *
 * Off -- the default, and in every process that does not turn a fault on
 * (the test's parent: only its client children do) -- every wrapped call
 * passes straight through.  The faults, for test_lanes.c:
 *
 *   late   completions come back late and the clock ticks inside a pass.
 *          Each completion the transport delivers is handed to the agent
 *          only 1..3 empty polls of its lane later (in order per lane, as
 *          over an RC queue pair; a reap of ops.c ends with an empty poll,
 *          so: 1..3 reaps late), and every post returns only once the
 *          millisecond clock moved on -- so an op posted by a step of a
 *          pass of ag_progress is younger than that pass's `now`, as on a
 *          loaded host.  Real time throughout: leases, deadlines and the
 *          10-s lane deadline run as they would.  (Not a clock that moves
 *          a ms per call: an engine spinning for a completion reads it
 *          thousands of times a second, so it would run seconds ahead of
 *          the protocol thread's, and io.c checks brackets and data steps
 *          against the lease on it.)
 *   lost   armed on one thread (lf_lost_arm): the next acquiring lock CAS
 *          (expect FREE) the thread posts never completes -- the
 *          transport's completion is dropped, its `old` kept for the test.
 *          Once it is dropped, that thread's agent clock reads 20 s ahead
 *          (past AG_OP_WAIT_MS, ops.c), as if it had waited that long;
 *          every other thread keeps the real clock (the protocol thread's
 *          lease is not touched).  The jump ends when the agent deletes
 *          that lane (its abandon).  With hold_read, the first READ the
 *          thread posts after arming is held back until the first poll
 *          after the thread read the jumped clock: that poll starts the
 *          pass that abandons the lane, so the READ is complete but not
 *          yet looked at when the lane is abandoned (see test_lanes.c).
 *          From the dropped completion until that thread's first poll
 *          after the abandon (2 s at most), every other thread of the
 *          process stands still at its next clock read: the protocol
 *          thread cannot end the session before the abandoning pass is
 *          through.
 *
 * While a fault is on, every local region the agent makes (fm_region_new
 * with FM_ACCESS_LOCAL: its READ slots and raw-read buffer) starts filled
 * with 0xff: an op that looks at a slot no READ of its own filled sees
 * every grain split, which a data check cannot miss.
 *
 * Thread safety: the held completions and the lost CAS's bookkeeping are
 * under one mutex; the mode and the lost state are atomics; what belongs
 * to one thread (the armed flag, the delays' generator) is thread-local.
 */
#ifndef FM_TESTS_LANE_FAULTS_H
#define FM_TESTS_LANE_FAULTS_H

#include <stdbool.h>
#include <stdint.h>

/* how far the lost fault moves the clock: past AG_OP_WAIT_MS (10 s,
 * agent_priv.h), not a wait */
#define LF_JUMP_MS 20000u

/* late, in this process from now on; seed: the delays */
void lf_late_start(uint64_t seed);
/* lost, on the calling thread (once per process): see above */
void lf_lost_arm(bool hold_read);

struct lf_stats {
	uint64_t posts;         /* READs and CASes posted while a fault was on */
	uint64_t ticks;         /* late: posts that returned after the clock moved */
	uint64_t late;          /* late: completions handed back late */
	uint64_t poisoned;      /* local regions filled with 0xff */
	/* lost */
	bool lost_posted;       /* the CAS to lose was posted ... */
	bool lost_dropped;      /* ... its completion came and was dropped */
	uint64_t lost_off;      /* its word's offset in the lock table */
	uint64_t lost_old;      /* the word before it (FREE: it took the word) */
	bool jumped;            /* the thread read the jumped clock */
	bool abandoned;         /* the lane was deleted while jumped ... */
	uint64_t abandoned_ms;  /* ... then (CLOCK_MONOTONIC ms, unjumped) */
	bool read_held;         /* hold_read: the READ's completion was held */
	bool read_released;     /* ... and handed over after the jump */
};
void lf_stats(struct lf_stats *st);

#endif
