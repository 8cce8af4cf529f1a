/* lease.h -- the timing model: leases, grace, margins, fences, restarts.
 *
 * Every rule that lets one node act on what another node may or may not
 * still be doing is a claim about time.  This is the one place those
 * claims are written down; the code that enforces each rule names it
 * (R1..R7).  The README's "Timing model" section is a summary of this one.
 *
 * Clocks.  Every node measures time with CLOCK_MONOTONIC, never with wall
 * time.  Nodes do not share a clock; we assume only that their RATES
 * differ by at most FM_LEASE_DRIFT_PPM (1000 ppm: NTP slews a clock by at
 * most 500 ppm, crystals drift by tens of ppm).  Message delays are
 * unbounded: nothing below assumes a message arrives in time.
 *
 * Parameters (owner config; defaults below):
 *   T  lease term, told to clients in WELCOME/LEASE_GRANT   (lease_ms)
 *   G  owner grace: the owner's copy of a lease lasts T + G  (T/4)
 *   M  client margin: a data step starts only with >= M of lease left (T/3)
 *   Q  quiesce wait: how long a closing session may take to report that
 *      its I/O is over before the owner fences it as hard as it can  (G)
 *   H  restart hold: how long leases of a stopped owner incarnation may
 *      outlive it = T + G + drift, recorded in the pool (R6)
 *
 * Destructive data steps.  Only writes can break a snapshot: a copy of a
 * source grain into the target, a target write, a source write (after its
 * grain's split is durable, or on a grain the cache says is split).  Reads
 * re-check (a redirected read asks "still unsplit?" after reading the
 * source) and cannot corrupt anything.  Every write an engine does runs
 * inside an I/O bracket (fm_client_io_begin..io_end) and starts with a
 * step check (fm_client_step_check).
 *
 * R1 Client trust.  A client trusts a cached confirmation only inside an
 *    I/O bracket begun while its session is ACTIVE and the mapping granted
 *    and usable.  Its lease runs from the SEND time of the AUTH/RENEW that
 *    the grant answers, on its own clock, for T: it expires no later than
 *    the owner's copy (which runs from RECEIPT, for T + G) -- even with
 *    the drift, since G > T * drift.
 * R2 Client margin.  A data step starts only while the lease has at least
 *    M left (client clock).  Within M of expiry it waits for a renewal;
 *    once the lease is lost it fails with -EKEYEXPIRED, and no step starts
 *    again in that session.  A step that already started may finish late:
 *    R3/R4 keep the locks and grants it relies on until it ended.
 * R3 Client quiescence.  When a session ends for any reason (lease lapse,
 *    the owner's BYE, a broken connection, a protocol error), the client
 *    discards every confirmation, blocks new brackets and steps, and waits
 *    until every open bracket ended.  Only then is it QUIESCED: it says so
 *    with BYE{QUIESCED} if the connection still works, else in the HELLO
 *    of its next session (prev_session, FM_HELLO_PREV_QUIESCED), which
 *    the owner believes once AUTH proves the key.  A client does not start
 *    a new session before the old one quiesced.
 * R4 Owner release.  The owner hands a closed session's grain locks to
 *    others, and counts its confirmation grants as released, only when the
 *    transport fence completed (FENCE) AND one of:
 *      (a) the client reported quiescence (R3), or
 *      (b) the fence reached FM_FENCE_DEAD (shm: the process exited), or
 *      (c) the owner's copy of its lease ran out (T + G after the last
 *          renewal was received, owner clock).
 *    The owner waits up to Q for (a) before it fences, then fences with
 *    kill (shm: SIGKILL, so on shm (b) always follows and (c) is never
 *    what releases anything).  The fence itself never blocks the owner's
 *    loop: it is a state of the connection, progressed from the poll set.
 * R5 Fencing tokens.  Every lock a session takes carries the token
 *    (owner incarnation << 32 | session epoch), strictly increasing across
 *    sessions and owner restarts.  Storage that supports fencing (SCSI/NVMe
 *    reservations, Ceph blocklists, the reference volumes of this project)
 *    refuses the writes of a session the owner fenced: the owner raises
 *    the client's floor past the session's token before it hands the
 *    session's locks to anyone, and at its start past every token of
 *    earlier incarnations (rdma/volume fence_table.h).  Not "the highest
 *    token seen per grain": tokens order sessions, not lock grants, and
 *    an older session may rightly take a grain after a newer one.
 * R6 Restart grace.  A restarted owner knows nothing a previous
 *    incarnation granted.  The pool records, per incarnation, H: how long
 *    the leases it granted can outlive it.  A new incarnation starts by
 *    recording itself (so its own successor waits too), then for H it
 *    serves joins and bitmap READs (durable split bits stay true) but no
 *    lock table (clients get descriptors without one, so no client can take
 *    a lock), no lock hand-off, no split commit and no mapping transition.
 * R7 Commit order.  The client makes the copied data durable before it
 *    sends SPLIT_COMMIT; the owner checks the committer still holds the
 *    grain locks, persists, publishes the bit, and only then acks; only
 *    after the ack does the client write the source.
 *
 * What this buys, and the one assumption left.
 *   shm (one host): a closed session's locks are released only on the
 *   client's own word (R3: all its steps ended) or its death (R4b) -- no
 *   assumption about how long a step takes.  Owner restarts (R6) rely on
 *   the timer: a step the previous incarnation's client started at the
 *   last moment (M before its lease ran out) must end within M + G.
 *   verbs (several hosts): a fence stops the peer's RDMA, never its disk
 *   writes, and the owner cannot kill a remote process.  A client that
 *   neither reports quiescence nor comes back is released by the timer
 *   (R4c), so there the same bound holds: every destructive step must end
 *   within D <= M + G of its start (1.75 s with the defaults) -- or the
 *   storage must honour the fencing tokens (R5), which removes the bound.
 *   The agent reports every step that ran longer than M + G
 *   (steps_overdue in its stats), so a violated assumption is visible.
 */
#ifndef FLASHMETA_LEASE_H
#define FLASHMETA_LEASE_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define FM_LEASE_TERM_DEFAULT_MS 3000u
#define FM_LEASE_TERM_MIN_MS 10u
#define FM_LEASE_TERM_MAX_MS 600000u
#define FM_LEASE_DRIFT_PPM 1000u

/* G: owner grace for term T (R1, R4c). */
static inline uint32_t fm_lease_grace_ms(uint32_t term_ms)
{
	return term_ms / 4 + 1;
}

/* M: client margin for term T (R2). */
static inline uint32_t fm_lease_margin_ms(uint32_t term_ms)
{
	return term_ms / 3;
}

/* H: how long leases of an incarnation with term T and grace G can
 * outlive it, with the clock drift allowed for (R6). */
static inline uint32_t fm_lease_hold_ms(uint32_t term_ms, uint32_t grace_ms)
{
	uint64_t h = (uint64_t)term_ms + grace_ms;

	h += h * FM_LEASE_DRIFT_PPM / 1000000u + 1;
	return h > UINT32_MAX ? UINT32_MAX : (uint32_t)h;
}

/* A fencing token (R5). */
static inline uint64_t fm_lease_token(uint64_t incarnation, uint32_t epoch)
{
	return incarnation << 32 | epoch;
}

#ifdef __cplusplus
}
#endif

#endif /* FLASHMETA_LEASE_H */
