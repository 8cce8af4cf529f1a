/* lockword.h -- the owner's grain lock words, taken with one-sided CAS.
 *
 * The owner exposes, per mapping, a lock table of 8-byte little-endian
 * words: word i covers grains [i << lock_shift, ((i + 1) << lock_shift) - 1]
 * (lock_shift 0 = one word per grain; a larger shift stripes grains over
 * fewer words, trading false sharing for table size).  A word is
 *
 *    63        48 47                    16 15          0
 *   +------------+------------------------+-------------+
 *   | client id  |  lease epoch           |   flags     |
 *   +------------+------------------------+-------------+
 *
 * 0 is free.  A held word has FM_LOCKWORD_F_HELD, a client id in
 * 1..65535 and the epoch the owner gave that client's session (WELCOME), so
 * a word left behind by an older session of the same client is told apart
 * and reclaimed.  FM_LOCKWORD_F_WAITERS means "the owner queued waiters:
 * do not free this word, tell the owner" (futex style).
 *
 * Protocol (all transitions are CAS, never a CPU store -- RDMA atomics are
 * atomic only against other RDMA atomics, so the owner, too, changes words
 * only through the transport's atomics):
 *
 *   acquire (client)   CAS 0 -> mine                   ok: held
 *                      fails, saw v -> LOCK_REQUEST(v) owner queues us
 *   arm (owner)        CAS v -> v|WAITERS              holder must notify
 *   release (client)   CAS mine -> 0                   ok: done, no message
 *                      saw mine|WAITERS -> UNLOCK msg  owner hands off
 *   hand-off (owner)   CAS v -> next|HELD[|WAITERS]    LOCK_GRANT to next
 *   reclaim (owner)    CAS dead -> 0 (or -> next)      after FENCE of dead
 *
 * CAS rather than FAA tickets: a ticket lock (next/serving halves, FAA on
 * one, poll the other) gives FIFO fairness without the owner, but a
 * waiter must poll the remote word (RDMA READ loops) or the releaser must
 * know whom to wake, the word cannot carry the holder's identity, and a
 * dead ticket holder stalls every later ticket until the owner repairs
 * both halves.  CAS keeps the uncontended path at two atomics and no
 * message, carries the holder's id + epoch for reclamation, and moves
 * fairness under contention to the owner's FIFO queue (hand-off through
 * the WAITERS bit, so a queued waiter is not overtaken once armed; a
 * newcomer can still barge between a release and the owner's arm).
 */
#ifndef FLASHMETA_LOCKWORD_H
#define FLASHMETA_LOCKWORD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define FM_LOCKWORD_FREE UINT64_C(0)
#define FM_LOCKWORD_F_HELD 0x1u
#define FM_LOCKWORD_F_WAITERS 0x2u
#define FM_LOCKWORD_F_KNOWN (FM_LOCKWORD_F_HELD | FM_LOCKWORD_F_WAITERS)

static inline uint64_t fm_lockword_make(uint16_t client_id, uint32_t epoch,
					uint16_t flags)
{
	return (uint64_t)client_id << 48 | (uint64_t)epoch << 16 | flags;
}

static inline uint16_t fm_lockword_client(uint64_t w) { return (uint16_t)(w >> 48); }
static inline uint32_t fm_lockword_epoch(uint64_t w) { return (uint32_t)(w >> 16); }
static inline uint16_t fm_lockword_flags(uint64_t w) { return (uint16_t)w; }

/* Same holder (client and epoch), whatever the WAITERS bit says. */
static inline bool fm_lockword_same_holder(uint64_t a, uint64_t b)
{
	return (a >> 16) == (b >> 16);
}

/* Index of the word covering `grain`, and its byte offset in the table. */
static inline uint64_t fm_lockword_index(uint64_t grain, unsigned lock_shift)
{
	return grain >> lock_shift;
}

static inline uint64_t fm_lockword_offset(uint64_t grain, unsigned lock_shift)
{
	return fm_lockword_index(grain, lock_shift) * 8;
}

/*
 * fm_lockword_check -- 0 for a free word or a well-formed held word;
 * -EINVAL (message says why) for a word nobody should have written:
 * unknown flags, held without client id, client id without HELD.
 */
int fm_lockword_check(uint64_t w);

/* What a holder's release CAS (mine -> 0) result means. */
enum fm_lockword_release {
	FM_LOCKWORD_RELEASED = 0, /* word was mine: now free, nothing to send */
	FM_LOCKWORD_NOTIFY = 1,   /* word was mine|WAITERS: unchanged, send UNLOCK */
	FM_LOCKWORD_LOST = 2,     /* word not mine: reclaimed (lease lapsed) */
};

/* fm_lockword_release_result -- classify `old`, the value the release CAS
 * (compare `mine`, swap 0) returned.  Pure. */
enum fm_lockword_release fm_lockword_release_result(uint64_t mine, uint64_t old);

/* "free" or "c=3 e=9 held,waiters" into buf; returns buf. */
const char *fm_lockword_format(uint64_t w, char *buf, size_t len);

#endif /* FLASHMETA_LOCKWORD_H */
