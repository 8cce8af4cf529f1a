/* store.c -- the owner's pool: mapping table, split bitmaps, redo log.
 *
 * Design.  The pool (format.h) is mapped with libpmem.  DRAM holds a decoded
 * copy of each slot (slots[]), a per-slot count of set bits, an id -> slot
 * hash, two lists of bitmap words holding bits set but not yet durable --
 * the pending set (dirty[]) and the set a commit in flight is making
 * durable (fl_off[], with the word values recorded when it was swapped
 * out, fl_val[]) -- one entry per word, not per bit, and, in MIRROR mode,
 * a DRAM copy of the bitmap area that RDMA readers see.  Everything is
 * under s->lock (one mutex per store), except what the run phase of the
 * commit in flight reads (below).
 *
 * Invariants (under s->lock, between calls):
 *   I1. slots[i] equals the durable slot record i (or it is free).
 *   I2. every pmem bitmap bit outside the words in dirty[] and fl_off[] is
 *       durable.
 *   I3. a mirror bit is set only if the same pmem bit is durable.
 *   I4. bits of mapping m are set only while m is at one generation; a
 *       restart waits until no commit is in flight, commits dirty[], then
 *       clears and bumps atomically.
 *   I5. every word holding bits not known durable is in dirty[] or
 *       fl_off[] (it may appear more than once: a word is appended when it
 *       differs from the last entry, so a run of bits in one word costs one
 *       entry, and a repeat costs only a second flush and mirror store at
 *       commit, both idempotent); ndirty <= npending, nfl <= fl_bits.
 *   I6. at most one commit is in flight (in_flight).  While it is, fl_off[],
 *       fl_val[], nfl and fl_bits do not change (only commit_end changes
 *       them), no mapping operation runs (they wait for commit_end), and
 *       no split_set commits implicitly (it waits for commit_end first).
 *       ndirty + nfl <= FM_STORE_PENDING_MAX: an entry is appended only
 *       while fewer bits than that are unsettled (npending + fl_bits), so
 *       a failed commit's list merged back into dirty[] fits one array.
 *
 * The split path is built for group commit: split_set stores the bit with
 * one aligned 8-byte store (the CPU is the only writer of pool bitmap
 * words, under s->lock) and appends the word the first time it becomes
 * dirty; split_set_many and split_set_range do the same a word of bits at
 * a time (__split_word).  A commit has three phases:
 *
 *   begin  (s->lock)  swap dirty[] into fl_off[], record each word's value
 *                     in fl_val[]; dirty[] starts empty
 *   run    (no lock)  flush each line of fl_off[] once, drain once, with
 *                     s->cpers -- which only the commit in flight uses
 *   end    (s->lock)  publish fl_val[] to the mirror (or, if the run
 *                     failed, merge fl_off[] back into dirty[]); wake
 *                     whoever waits in __wait_idle()
 *
 * Split bits set during the run land in the fresh dirty[] and wait for the
 * next commit.  fm_store_split_commit() is begin, run, end; the implicit
 * commit of a full set and the commit inside mapping operations run the
 * same three steps without dropping the lock (__commit), after waiting for
 * any commit in flight to end.
 *
 * Mapping operations are redo-logged (one record, see __log_commit()); split
 * bits need no log: setting a bit is one failure-atomic 8-byte store.  The
 * owner record (fm_store_owner_*) has two copies and is updated by writing
 * the one that does not hold it (__owner_write).
 *
 * The pool file is opened and locked by pool_file.c before anything is
 * read (one writer per pool); the descriptor, and so the lock, lives in
 * s->pf until store_free.
 */
#include <errno.h>
#include <endian.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <libpmem.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "flashmeta/copy.h"
#include "flashmeta/error.h"
#include "flashmeta/pmem_store.h"
#include "format.h"
#include "persist.h"
#include "pool_file.h"

/* phase of the commit in flight (fl_state), or its run's result (< 0) */
enum { FL_BEGUN = 1, FL_RUNNING = 2, FL_RAN = 3 };

struct fm_store {
	pthread_mutex_t lock;
	pthread_cond_t idle;    /* broadcast by commit_end: none in flight */
	uint8_t *base;          /* pool mapping */
	size_t mapped_len;
	int is_pmem;
	int is_devdax;
	struct fm_pool_file pf; /* open, exclusively locked, for the handle's life */
	struct fm_persist pers;  /* log, owner record, create: under s->lock */
	struct fm_persist cpers; /* split commits: used only by the commit in
				  * flight (its run holds no lock, I6) */
	struct fm_sb sb;
	struct fm_slot *slots;  /* [sb.slot_count], I1 */
	uint64_t *split_count;  /* [sb.slot_count] bits set per slot */
	uint32_t *hash;         /* id -> slot + 1 (0 empty), open addressing */
	uint32_t hash_mask;
	uint32_t in_use;
	enum fm_store_view view;
	uint8_t *mirror;        /* MIRROR: copy of the bitmap area, I3 */
	uint64_t *dirty;        /* [FM_STORE_PENDING_MAX] pool offsets of words, I2, I5 */
	uint32_t ndirty;
	uint32_t npending;      /* bits set since the last swap (>= ndirty) */
	bool in_flight;         /* a commit is begun and not ended, I6 */
	int fl_state;           /* FL_*, or the run's errno */
	uint64_t *fl_off;       /* [FM_STORE_PENDING_MAX] the set in flight */
	uint64_t *fl_val;       /* [FM_STORE_PENDING_MAX] MIRROR: values at the swap */
	uint32_t nfl;
	uint32_t fl_bits;       /* bits in the set in flight (>= nfl) */
	uint64_t commit_drains; /* cpers.drains as of the last run (s->lock) */
	uint64_t log_seq;       /* last applied log record */
	struct fm_owner owner;  /* OWNER pools: the durable owner record */
	uint32_t owner_copy;    /* the copy holding it; updates write the other */
	int owner_begun;        /* fm_store_owner_begin succeeded on this handle */
	struct fm_store_stats st;
};

const char *fm_store_view_name(enum fm_store_view v)
{
	switch (v) {
	case FM_STORE_VIEW_AUTO: return "auto";
	case FM_STORE_VIEW_DIRECT: return "direct";
	case FM_STORE_VIEW_MIRROR: return "mirror";
	}
	return "?";
}

/* ---- helpers ------------------------------------------------------- */

static uint64_t hash_id(uint64_t id)
{
	id ^= id >> 33;
	id *= UINT64_C(0xff51afd7ed558ccd);
	id ^= id >> 33;
	return id;
}

static void __hash_rebuild(struct fm_store *s)
{
	memset(s->hash, 0, (size_t)(s->hash_mask + 1) * sizeof(*s->hash));
	for (uint32_t i = 0; i < s->sb.slot_count; i++) {
		if (!s->slots[i].flags)
			continue;
		uint32_t h = (uint32_t)hash_id(s->slots[i].m.id) & s->hash_mask;
		while (s->hash[h])
			h = (h + 1) & s->hash_mask;
		s->hash[h] = i + 1;
	}
}

/* Slot index of mapping `id`, or -1.  Cost: a hash probe. */
static int64_t __lookup(const struct fm_store *s, uint64_t id)
{
	uint32_t h = (uint32_t)hash_id(id) & s->hash_mask;

	while (s->hash[h]) {
		uint32_t i = s->hash[h] - 1;
		if (s->slots[i].m.id == id)
			return i;
		h = (h + 1) & s->hash_mask;
	}
	return -1;
}

static uint8_t *slot_addr(const struct fm_store *s, uint32_t i)
{
	return s->base + s->sb.table_off + (uint64_t)i * FM_SLOT_SIZE;
}

static uint64_t bitmap_off(const struct fm_store *s, uint32_t i)
{
	return s->sb.bitmap_off + (uint64_t)i * s->sb.bitmap_stride;
}

/* CHANGED pools: pool offset of slot i's changed bitmap */
static uint64_t changed_off(const struct fm_store *s, uint32_t i)
{
	return s->sb.changed_off + (uint64_t)i * s->sb.bitmap_stride;
}

static int has_changed(const struct fm_store *s)
{
	return (s->sb.incompat & FM_POOL_INCOMPAT_CHANGED) != 0;
}

static uint8_t *log_addr(const struct fm_store *s)
{
	return s->base + s->sb.log_off;
}

/* Zero the non-zero words of [off, off + len) in the pool and flush them
 * (no drain).  Reads are cheaper than writes on pmem and msync writes back
 * only dirtied pages, so a clean bitmap costs one scan. */
static void clear_words(struct fm_store *s, uint64_t off, uint64_t len)
{
	uint64_t *w = (uint64_t *)(s->base + off); /* 8-byte aligned: off % 4096 == 0 */

	for (uint64_t k = 0; k < len / 8; k++) {
		if (w[k]) {
			__atomic_store_n(&w[k], 0, __ATOMIC_RELAXED);
			fm_flush(&s->pers, &w[k], 8);
		}
	}
}

static uint64_t popcount_range(const uint8_t *p, uint64_t len)
{
	uint64_t n = 0, w;

	for (uint64_t k = 0; k < len; k += 8) {
		memcpy(&w, p + k, 8);
		n += (uint64_t)__builtin_popcountll(w);
	}
	return n;
}

/* ---- redo log ------------------------------------------------------ */

static int op_clears_bitmap(uint32_t op)
{
	return op == FM_LOG_CREATE || op == FM_LOG_DELETE || op == FM_LOG_RESTART;
}

/* CHANGED pools: every op but a transition starts the slot's changed set
 * afresh (a new generation, a new mapping, or none); a refresh clears it
 * last (F3 below), the others with step 2. */
static int op_clears_changed(uint32_t op)
{
	return op == FM_LOG_CREATE || op == FM_LOG_DELETE || op == FM_LOG_RESTART ||
	       op == FM_LOG_REVERSE;
}

/*
 * Incremental refresh (fm_store_map_refresh, format 1.4).  The mapping in
 * slot i, at generation g, becomes generation g + 1, COPYING, keeping as
 * split exactly the grains split at g and not in its changed set, by one
 * REFRESH record (slot i, the image).  Why that is the target's image of
 * the source at the new trigger: a split grain at g holds on the target
 * either the source's data at g's trigger (copied) or the target's own
 * writes; the changed set holds every grain written on either volume since
 * g's trigger (a target write included: it makes the target differ from
 * the source).  So a split grain outside the changed set was copied and
 * neither volume has been written there since: target == source, now.
 * Every other grain reads through to the source again and is recopied.
 * That holds only if the changed set is complete: the caller (the owner)
 * must have every writer's report in it, or have set CHANGED_UNKNOWN, in
 * which case the refresh is a plain restart (every grain recopied).
 *
 * In place, unlike a restore: AND NOT is idempotent as long as the changed
 * bitmap is untouched, which the order below keeps until F1 is durable:
 *   F1. if slot i is not (byte for byte) the image: split bitmap i &=
 *       NOT changed bitmap i (the mirror first: a reader may see fewer
 *       bits, never extra); flush, drain.  A crash here replays F1
 *       (clearing bits already clear changes nothing).
 *   F2. write slot i (the image: generation + 1, COPYING, CHANGED_UNKNOWN
 *       clear); flush, drain.  The switch: from here on F1 is skipped.
 *       F1 must be durable before F2 may land: flushed but undrained
 *       lines reach media in any order, and a slot that landed before
 *       F1's words would make the replay skip F1 and keep split bits of
 *       changed grains (test_pmem_powerfail --seed 1795935671 found it).
 *   F3. clear changed bitmap i; flush, drain.  From F2 on F1 is skipped,
 *       so a half-cleared changed set is never applied.
 *   F4. the applied word (as every op).
 * Until F4 the store is not handed out: recovery completes the record
 * first, so nobody sees generation g with bits missing.
 */
static int __refresh_bits(struct fm_store *s, const struct fm_log_rec *r)
{
	uint64_t *bm = (uint64_t *)(s->base + bitmap_off(s, r->slot));
	const uint64_t *ch = (const uint64_t *)(s->base + changed_off(s, r->slot));
	uint64_t *mir = s->mirror ? (uint64_t *)(s->mirror + (bitmap_off(s, r->slot) -
								  s->sb.bitmap_off)) : NULL;
	struct fm_slot img;

	if (!memcmp(slot_addr(s, r->slot), &r->image, FM_SLOT_SIZE))
		return 0; /* F2 done: the changed bitmap may be half cleared */
	fm_slot_decode(&img, &r->image);
	for (uint64_t k = 0; k < img.bitmap_len / 8; k++) {
		uint64_t c = __atomic_load_n(&ch[k], __ATOMIC_RELAXED);

		if (!c)
			continue;
		if (mir)
			__atomic_store_n(&mir[k], mir[k] & ~c, __ATOMIC_RELAXED);
		if (bm[k] & c) {
			__atomic_store_n(&bm[k], bm[k] & ~c, __ATOMIC_RELAXED);
			fm_flush(&s->pers, &bm[k], 8);
		}
	}
	return fm_drain(&s->pers); /* F1 durable before F2 is written */
}

/*
 * Restore (fm_store_map_reverse, format 1.3).  The mapping S->T in slot i
 * becomes T->S in a free slot j, its bitmap inverted, by one REVERSE
 * record (slot j, from_slot i, the image of j).  Why a second slot:
 * inverting in place is not idempotent -- a crash halfway, replayed,
 * would invert the first half twice -- while computing j's bitmap from
 * i's is, as long as i's bitmap is untouched, which the order below
 * keeps until the switch (R2) is durable:
 *   R1. if slot j is not (byte for byte) the image: bitmap j := NOT
 *       bitmap i, bits past grain_count zero; flush, drain.  A crash
 *       here leaves j free and i intact: replay starts again at R1.
 *   R2. write slot j (the image: source/target swapped, REVERSED
 *       toggled, COPYING, generation + 1); flush, drain.  The switch:
 *       from here on R1 is skipped (j equals the image), so i may go.
 *   R3. clear bitmap i (the mirror first), zero slot i; flush, drain.
 *   R4. the applied word (as every op).
 * fm_pool_check accepts the pool at any of these points (check_reverse).
 * The operation needs a free slot: -ENOSPC in a full table.
 */
static int __reverse_bitmap(struct fm_store *s, const struct fm_log_rec *r)
{
	const uint64_t *from = (const uint64_t *)(s->base + bitmap_off(s, r->from_slot));
	uint64_t *to = (uint64_t *)(s->base + bitmap_off(s, r->slot));
	struct fm_slot img;
	uint64_t words, tail;

	if (!memcmp(slot_addr(s, r->slot), &r->image, FM_SLOT_SIZE))
		return 0; /* R2 done: from_slot may be cleared already */
	fm_slot_decode(&img, &r->image);
	words = img.bitmap_len / 8;
	tail = img.m.geom.grain_count % 64;
	for (uint64_t k = 0; k < words; k++) { /* R1 */
		uint64_t v = ~le64toh(from[k]);

		if (k == words - 1 && tail)
			v &= (UINT64_C(1) << tail) - 1;
		__atomic_store_n(&to[k], htole64(v), __ATOMIC_RELAXED);
	}
	fm_flush(&s->pers, to, img.bitmap_len);
	return fm_drain(&s->pers);
}

/*
 * __log_replay -- steps 2..4 of a logged operation; run by log_commit()
 * and by recovery.  Idempotent: every step writes the record's final values
 * (a reverse: see above).
 */
static int __log_replay(struct fm_store *s, const struct fm_log_rec *r)
{
	uint64_t *applied = (uint64_t *)log_addr(s); /* le64 at log offset 0 */
	uint64_t word = fm_applied_encode(s->sb.incompat, r->seq);
	int ret;

	if (r->op == FM_LOG_REVERSE) {
		ret = __reverse_bitmap(s, r); /* R1 */
		if (ret)
			return ret;
	}
	if (r->op == FM_LOG_REFRESH) {
		ret = __refresh_bits(s, r); /* F1 */
		if (ret)
			return ret;
	}
	/* 2. clear the slot's bitmap (create, delete, restart).  The mirror is
	 *    cleared first: a reader may see fewer bits, never extra ones.
	 *    CHANGED pools: its changed bitmap too (restore as well: the new
	 *    slot's was clear, as a free slot's is). */
	if (op_clears_bitmap(r->op)) {
		if (s->mirror)
			memset(s->mirror + (bitmap_off(s, r->slot) - s->sb.bitmap_off),
			       0, s->sb.bitmap_stride);
		clear_words(s, bitmap_off(s, r->slot), s->sb.bitmap_stride);
	}
	if (has_changed(s) && op_clears_changed(r->op))
		clear_words(s, changed_off(s, r->slot), s->sb.bitmap_stride);
	/* 3. write the slot record (the image, or zeros for delete) and drain
	 *    together with step 2: both are redone if we crash before 4. */
	memcpy(slot_addr(s, r->slot), &r->image, FM_SLOT_SIZE);
	fm_flush(&s->pers, slot_addr(s, r->slot), FM_SLOT_SIZE);
	ret = fm_drain(&s->pers);
	if (ret)
		return ret;
	if (r->op == FM_LOG_REVERSE) { /* R3, once R2 is durable */
		if (s->mirror)
			memset(s->mirror + (bitmap_off(s, r->from_slot) - s->sb.bitmap_off),
			       0, s->sb.bitmap_stride);
		clear_words(s, bitmap_off(s, r->from_slot), s->sb.bitmap_stride);
		if (has_changed(s))
			clear_words(s, changed_off(s, r->from_slot), s->sb.bitmap_stride);
		memset(slot_addr(s, r->from_slot), 0, FM_SLOT_SIZE);
		fm_flush(&s->pers, slot_addr(s, r->from_slot), FM_SLOT_SIZE);
		ret = fm_drain(&s->pers);
		if (ret)
			return ret;
	}
	if (r->op == FM_LOG_REFRESH) { /* F3, once F1 and F2 are durable */
		clear_words(s, changed_off(s, r->slot), s->sb.bitmap_stride);
		ret = fm_drain(&s->pers);
		if (ret)
			return ret;
	}
	/* 4. retire the record: one failure-atomic 8-byte store (SEQ_CHECK:
	 *    seq and its check value together), persisted.  From here on
	 *    recovery ignores the record. */
	__atomic_store_n(applied, htole64(word), __ATOMIC_RELEASE);
	ret = fm_persist_range(&s->pers, applied, 8);
	if (ret)
		return ret;
	s->log_seq = r->seq;

	fm_slot_decode(&s->slots[r->slot], &r->image);
	if (op_clears_bitmap(r->op))
		s->split_count[r->slot] = 0;
	if (r->op == FM_LOG_REFRESH)
		s->split_count[r->slot] = popcount_range(s->base + bitmap_off(s, r->slot),
							 s->slots[r->slot].bitmap_len);
	if (r->op == FM_LOG_REVERSE) {
		const uint8_t *bm = s->base + bitmap_off(s, r->slot);
		uint64_t len = s->slots[r->slot].bitmap_len;

		memset(&s->slots[r->from_slot], 0, sizeof(s->slots[0]));
		s->split_count[r->from_slot] = 0;
		s->split_count[r->slot] = popcount_range(bm, len);
		if (s->mirror) /* I3: durable since R1 */
			memcpy(s->mirror + (bitmap_off(s, r->slot) - s->sb.bitmap_off), bm, len);
	}
	return 0;
}

/*
 * __log_commit -- make a slot change atomic across a crash.  Caller holds
 * s->lock, has committed pending splits, and passes the slot's new value
 * (flags 0 for delete) and the number of slots in use after the change.
 * LOG_AB pools write record seq into copy seq & 1: the copy of the applied
 * record (seq - 1) is never touched, so a torn write leaves the log exactly
 * as it was.  Returns 0, -EOVERFLOW (SEQ_CHECK: 2^48 - 1 operations done),
 * or an I/O errno.
 */
static int __log_commit2(struct fm_store *s, uint32_t op, uint32_t slot, uint32_t from,
			 const struct fm_slot *next, uint32_t in_use_after)
{
	struct fm_log_rec r = { .seq = s->log_seq + 1, .op = op, .slot = slot,
				.from_slot = from };
	struct fm_log_rec_media lm;
	struct fm_slot img = *next;
	unsigned k = fm_log_rec_index(s->sb.incompat, r.seq);
	uint8_t *rec = log_addr(s) + FM_LOG_REC_OFF + k * FM_LOG_REC_LEN;
	int ret;

	if ((s->sb.incompat & FM_POOL_INCOMPAT_SEQ_CHECK) && s->log_seq >= FM_SEQ_MAX)
		return fm_err(-EOVERFLOW, "log: %" PRIu64 " operations, the applied"
			      " word holds no more", s->log_seq);
	if (s->sb.incompat & FM_POOL_INCOMPAT_LOG_AB)
		r.in_use = in_use_after;
	/* a new generation (start, restart, restore, refresh) begins with an
	 * empty changed set, which every report of it reaches: known again */
	if (op == FM_LOG_RESTART || op == FM_LOG_REVERSE || op == FM_LOG_REFRESH)
		img.flags &= ~FM_SLOT_CHANGED_UNKNOWN;
	fm_slot_encode(&r.image, &img);
	fm_log_encode(&lm, &r);
	/* 1. write the record (seq = applied + 1, checksummed) and persist it.
	 *    Commit point: once durable, recovery completes the operation; a
	 *    torn record fails its checksum and the operation never happened. */
	memcpy(rec, &lm, FM_LOG_REC_LEN);
	ret = fm_persist_range(&s->pers, rec, FM_LOG_REC_LEN);
	if (ret)
		return ret;
	s->st.log_ops++;
	/* 2..4 */
	ret = __log_replay(s, &r);
	if (ret == 0 && (op == FM_LOG_CREATE || op == FM_LOG_DELETE || op == FM_LOG_REVERSE))
		__hash_rebuild(s);
	return ret;
}

static int __log_commit(struct fm_store *s, uint32_t op, uint32_t slot,
			const struct fm_slot *next, uint32_t in_use_after)
{
	return __log_commit2(s, op, slot, 0, next, in_use_after);
}

/* ---- splits -------------------------------------------------------- */

/* Bits not yet durable: the pending set and the set in flight (I6). */
static uint64_t __unsettled(const struct fm_store *s)
{
	return (uint64_t)s->npending + s->fl_bits;
}

/* Wait (releasing s->lock) until no commit is in flight.  Caller holds
 * s->lock and has read nothing it relies on after the wait. */
static void __wait_idle(struct fm_store *s)
{
	if (!s->in_flight)
		return;
	s->st.commit_waits++;
	while (s->in_flight)
		pthread_cond_wait(&s->idle, &s->lock);
}

/*
 * __wait_room -- before a split_set call that sets at most `most` bits:
 * if it could fill the set (and so commit implicitly) while a commit is in
 * flight, wait for that commit to end first.  Caller holds s->lock and has
 * validated nothing yet.  Afterwards no commit can begin before the caller
 * drops s->lock, so any implicit commit of the call finds none in flight.
 */
static void __wait_room(struct fm_store *s, uint64_t most)
{
	if (s->in_flight && __unsettled(s) + most >= FM_STORE_PENDING_MAX)
		__wait_idle(s);
}

/*
 * __begin -- phase 1: swap the pending set into the set in flight.  Caller
 * holds s->lock; none in flight; npending > 0.
 * Cost: one load and one store per dirty word (MIRROR), no flush.
 */
static void __begin(struct fm_store *s)
{
	uint64_t *t = s->fl_off;

	s->fl_off = s->dirty;
	s->dirty = t;
	s->nfl = s->ndirty;
	s->fl_bits = s->npending;
	s->ndirty = 0;
	s->npending = 0;
	/* 1. record what end will publish: each word as it is now.  Every
	 *    bit it holds is either durable already (I2) or set by a store
	 *    that precedes the run's flush of this word's line. */
	if (s->mirror)
		for (uint32_t k = 0; k < s->nfl; k++)
			s->fl_val[k] = __atomic_load_n((uint64_t *)(s->base + s->fl_off[k]),
						       __ATOMIC_RELAXED);
	s->in_flight = true;
	s->fl_state = FL_BEGUN;
}

/*
 * commit_flush_drain -- phase 2 for the set in flight.  Needs no lock: it
 * reads only fl_off[]/nfl (unchanged while in flight, I6) and the pool,
 * and uses only s->cpers (the commit in flight's own).  Concurrent
 * split_set stores into the same lines are harmless: a flush writes back
 * whatever the line holds, and those words are in the new dirty[].
 * Cost: one flush per dirty cache line, one drain (DAX) or one msync of
 * the dirty range.
 */
static int commit_flush_drain(struct fm_store *s)
{
	uintptr_t line = UINTPTR_MAX;

	/* 2. each bit was stored by split_set (one failure-atomic 8-byte
	 *    store) before the swap; write back every dirty cache line once
	 *    (consecutive words of one line are flushed together) ... */
	for (uint32_t k = 0; k < s->nfl; k++) {
		uintptr_t l = ((uintptr_t)s->base + s->fl_off[k]) & ~(uintptr_t)63;
		if (l != line) {
			fm_flush(&s->cpers, (const void *)l, 64);
			line = l;
		}
	}
	/* 3. ... and one drain makes all of them durable. */
	return fm_drain(&s->cpers);
}

/*
 * __end -- phase 3: the commit in flight is over; `st` is 0 if its run made
 * it durable, else an errno.  Caller holds s->lock.  Returns the number of
 * bits made durable, or st.
 */
static int __end(struct fm_store *s, int st)
{
	int ret = (int)s->fl_bits;

	s->commit_drains = s->cpers.drains;
	if (st == 0) {
		/* 4. only now show them to RDMA readers: store each value
		 *    recorded at the swap into its mirror word.  Why the
		 *    recorded value, and why it is safe:
		 *    - every bit of fl_val[k] was in the pool word before the
		 *      swap, hence before the run flushed that word's line; bits
		 *      are only ever added within a generation, so the line as
		 *      flushed held all of them, and the drain made it durable
		 *      (I3 holds for the value);
		 *    - it is still this generation's value: a restart or delete
		 *      that would clear the word waits for this end (I4, I6);
		 *    - the mirror word only grows: the value it holds was
		 *      recorded by an earlier commit, which ended before this
		 *      one began (one in flight at a time), from the same word of
		 *      the same generation -- a subset of fl_val[k]; a reader
		 *      sees the old or the new value (8-byte release store),
		 *      never fewer bits;
		 *    - the pool word as it is NOW must not be shown: it may hold
		 *      bits set after the swap that the run's flush missed, which
		 *      a power failure could still take back. */
		if (s->mirror) {
			for (uint32_t k = 0; k < s->nfl; k++) {
				uint64_t *mw = (uint64_t *)(s->mirror +
							    (s->fl_off[k] - s->sb.bitmap_off));
				__atomic_store_n(mw, s->fl_val[k], __ATOMIC_RELEASE);
			}
		}
		s->st.commits++;
	} else {
		/* the set is not known durable: back into the pending set,
		 * ahead of what was set meanwhile (I5).  Fits: the lists hold
		 * at most npending + fl_bits entries, and that is bounded by
		 * I6 (nothing waits here: the caller holds s->lock) */
		memcpy(s->fl_off + s->nfl, s->dirty, (size_t)s->ndirty * sizeof(*s->dirty));
		uint64_t *t = s->dirty;
		s->dirty = s->fl_off;
		s->fl_off = t;
		s->ndirty += s->nfl;
		s->npending += s->fl_bits;
		ret = st;
	}
	s->nfl = 0;
	s->fl_bits = 0;
	s->in_flight = false;
	s->fl_state = 0;
	pthread_cond_broadcast(&s->idle);
	return ret;
}

/*
 * __commit -- a whole commit without dropping s->lock (implicit commits of
 * a full set, mapping operations, close): the same three phases.  Caller
 * holds s->lock and made sure none is in flight (__wait_idle or
 * __wait_room).  Returns the bits committed or an I/O errno (they stay
 * pending and unpublished).
 */
static int __commit(struct fm_store *s)
{
	if (s->npending == 0)
		return 0;
	if (s->in_flight) /* a caller broke I6: refuse rather than corrupt */
		return fm_err(-EDEADLK, "store: commit while one is in flight");
	__begin(s);
	s->fl_state = FL_RUNNING;
	return __end(s, commit_flush_drain(s));
}

/*
 * __split_word -- set the bits `bits` (host order, non-zero) of the bitmap
 * word of slot i that holds grain `grain` (validated by the caller).
 * Returns the number of bits newly set, or an errno from the implicit
 * commit once FM_STORE_PENDING_MAX bits are unsettled (the bits stay set).
 * Caller went through __wait_room: no implicit commit here finds one in
 * flight.  Cost: one load, one store and an append when a bit is new; no
 * flush.
 */
static int __split_word(struct fm_store *s, uint32_t i, uint64_t grain, uint64_t bits)
{
	uint64_t off = s->slots[i].bitmap_off + grain / 64 * 8;
	uint64_t *w = (uint64_t *)(s->base + off);
	uint64_t old = __atomic_load_n(w, __ATOMIC_RELAXED);
	uint64_t add = htole64(bits) & ~old;
	int n;

	if (!add)
		return 0;
	/* Room in the dirty list: entries never exceed unsettled bits (a new
	 * entry adds at least one bit), so fewer than FM_STORE_PENDING_MAX
	 * unsettled bits leave room, also for a merge after a failed commit
	 * (I6).  If an earlier implicit commit failed, the set is still
	 * full: commit it now, and if that fails again store nothing. */
	if (__unsettled(s) >= FM_STORE_PENDING_MAX) {
		int c = __commit(s);

		if (c < 0)
			return c;
	}
	/* a failure-atomic 8-byte store; bits are only ever added, and the CPU
	 * is the only writer of pool bitmap words (under s->lock) */
	__atomic_store_n(w, old | add, __ATOMIC_RELAXED);
	if (s->ndirty == 0 || s->dirty[s->ndirty - 1] != off) /* I5 */
		s->dirty[s->ndirty++] = off;
	n = __builtin_popcountll(add);
	s->npending += (uint32_t)n;
	s->split_count[i] += (uint64_t)n;
	s->st.splits_set += (uint64_t)n;
	if (__unsettled(s) >= FM_STORE_PENDING_MAX) {
		int c = __commit(s);
		if (c < 0)
			return c;
	}
	return n;
}

/* Slot of `id` if splits may be set in it at `generation`, or an errno. */
static int64_t __split_slot(struct fm_store *s, uint64_t id, uint64_t generation)
{
	int64_t i = __lookup(s, id);
	const struct fm_slot *sl;

	if (i < 0)
		return fm_err(-ENOENT, "mapping %" PRIu64 " not found", id);
	sl = &s->slots[i];
	if (sl->m.generation != generation)
		return fm_err(-ESTALE, "mapping %" PRIu64 " is at generation %" PRIu64
			      ", not %" PRIu64, id, sl->m.generation, generation);
	if (sl->m.state != FM_MAP_COPYING && sl->m.state != FM_MAP_STOPPING)
		return fm_err(-EPERM, "mapping %" PRIu64 " is %s: no splits",
			      id, fm_map_state_name(sl->m.state));
	return i;
}

int fm_store_split_set(struct fm_store *s, uint64_t id, uint64_t generation,
		       uint64_t grain)
{
	int64_t i;
	int ret;

	pthread_mutex_lock(&s->lock);
	__wait_room(s, 1);
	i = __split_slot(s, id, generation);
	if (i < 0)
		ret = (int)i;
	else if (grain >= s->slots[i].m.geom.grain_count)
		ret = fm_err(-ERANGE, "grain %" PRIu64 " >= %" PRIu64, grain,
			     s->slots[i].m.geom.grain_count);
	else
		ret = __split_word(s, (uint32_t)i, grain, UINT64_C(1) << (grain % 64));
	pthread_mutex_unlock(&s->lock);
	return ret;
}

int fm_store_split_set_many(struct fm_store *s, uint64_t id, uint64_t generation,
			    const uint64_t *grains, size_t n)
{
	uint64_t count;
	int64_t i;
	int ret = 0;

	if (n > INT_MAX)
		return fm_err(-EINVAL, "%zu grains in one call", n);
	pthread_mutex_lock(&s->lock);
	__wait_room(s, n);
	i = __split_slot(s, id, generation);
	if (i < 0) {
		ret = (int)i;
		goto out;
	}
	/* all or nothing for bad input: check every grain before setting any */
	count = s->slots[i].m.geom.grain_count;
	for (size_t k = 0; k < n; k++) {
		if (grains[k] >= count) {
			ret = fm_err(-ERANGE, "grains[%zu] = %" PRIu64 " >= %" PRIu64,
				     k, grains[k], count);
			goto out;
		}
	}
	/* one load and store per run of grains in the same word */
	for (size_t k = 0; k < n;) {
		uint64_t word = grains[k] / 64, bits = 0;
		size_t k0 = k;
		for (; k < n && grains[k] / 64 == word; k++)
			bits |= UINT64_C(1) << (grains[k] % 64);
		int r = __split_word(s, (uint32_t)i, grains[k0], bits);
		if (r < 0) {
			ret = r;
			goto out;
		}
		ret += r;
	}
out:
	pthread_mutex_unlock(&s->lock);
	return ret;
}

int fm_store_split_set_range(struct fm_store *s, uint64_t id, uint64_t generation,
			     uint64_t first, uint64_t last)
{
	int64_t i;
	int ret = 0;

	if (first > last)
		return fm_err(-EINVAL, "grain range [%" PRIu64 ", %" PRIu64 "] inverted",
			      first, last);
	if (last - first >= (uint64_t)INT_MAX) /* the count must fit the return */
		return fm_err(-EINVAL, "grain range [%" PRIu64 ", %" PRIu64 "] holds"
			      " more than %d grains", first, last, INT_MAX);
	pthread_mutex_lock(&s->lock);
	__wait_room(s, last - first + 1);
	i = __split_slot(s, id, generation);
	if (i < 0) {
		ret = (int)i;
		goto out;
	}
	if (last >= s->slots[i].m.geom.grain_count) {
		ret = fm_err(-ERANGE, "grain range [%" PRIu64 ", %" PRIu64 "]: %"
			     PRIu64 " >= %" PRIu64, first, last, last,
			     s->slots[i].m.geom.grain_count);
		goto out;
	}
	/* Invariant: every grain of [first, last] below word w is set and
	 * counted in ret.  w counts words, so it cannot wrap at the top. */
	for (uint64_t w = first / 64; w <= last / 64; w++) {
		uint64_t bits = ~UINT64_C(0);
		if (w == first / 64)
			bits &= ~UINT64_C(0) << (first % 64);
		if (w == last / 64)
			bits &= ~UINT64_C(0) >> (63 - last % 64);
		int r = __split_word(s, (uint32_t)i, w * 64, bits);
		if (r < 0) {
			ret = r;
			goto out;
		}
		ret += r;
	}
out:
	pthread_mutex_unlock(&s->lock);
	return ret;
}

int fm_store_split_commit(struct fm_store *s)
{
	int ret;

	pthread_mutex_lock(&s->lock);
	/* after a commit in flight ended, whatever is pending holds every
	 * bit set before this call that is not durable yet (I2, I5) */
	__wait_idle(s);
	if (s->npending == 0) {
		pthread_mutex_unlock(&s->lock);
		return 0;
	}
	__begin(s);
	s->fl_state = FL_RUNNING;
	pthread_mutex_unlock(&s->lock);
	ret = commit_flush_drain(s); /* no lock: split_set goes on */
	pthread_mutex_lock(&s->lock);
	ret = __end(s, ret);
	pthread_mutex_unlock(&s->lock);
	return ret;
}

int fm_store_commit_begin(struct fm_store *s)
{
	int ret = 0;

	pthread_mutex_lock(&s->lock);
	if (s->in_flight)
		ret = fm_err(-EBUSY, "store: a commit of %" PRIu32 " bits is in flight",
			     s->fl_bits);
	else if (s->npending) {
		__begin(s);
		ret = (int)s->fl_bits;
	}
	pthread_mutex_unlock(&s->lock);
	return ret;
}

int fm_store_commit_run(struct fm_store *s)
{
	int ret;

	pthread_mutex_lock(&s->lock);
	if (!s->in_flight || s->fl_state != FL_BEGUN) {
		ret = fm_err(-EINVAL, "store: no commit begun to run");
		pthread_mutex_unlock(&s->lock);
		return ret;
	}
	s->fl_state = FL_RUNNING;
	pthread_mutex_unlock(&s->lock);
	ret = commit_flush_drain(s); /* no lock: split_set goes on */
	pthread_mutex_lock(&s->lock);
	s->fl_state = ret ? ret : FL_RAN;
	pthread_mutex_unlock(&s->lock);
	return ret;
}

int fm_store_commit_end(struct fm_store *s)
{
	int ret;

	pthread_mutex_lock(&s->lock);
	if (!s->in_flight)
		ret = fm_err(-EINVAL, "store: no commit in flight");
	else if (s->fl_state == FL_RUNNING)
		ret = fm_err(-EBUSY, "store: the commit in flight is still running");
	else if (s->fl_state == FL_BEGUN)
		ret = __end(s, fm_err(-ECANCELED, "store: commit of %" PRIu32 " bits ended"
				      " without running: abandoned, bits pending", s->fl_bits));
	else if (s->fl_state != FL_RAN)
		ret = __end(s, fm_err(s->fl_state, "store: commit of %" PRIu32 " bits failed"
				      " (%s): bits pending", s->fl_bits,
				      strerrorname_np(-s->fl_state) ?
				      strerrorname_np(-s->fl_state) : "?"));
	else
		ret = __end(s, 0);
	pthread_mutex_unlock(&s->lock);
	return ret;
}

int fm_store_split_test(struct fm_store *s, uint64_t id, uint64_t grain)
{
	int64_t i;
	int ret;

	pthread_mutex_lock(&s->lock);
	i = __lookup(s, id);
	if (i < 0) {
		ret = fm_err(-ENOENT, "mapping %" PRIu64 " not found", id);
	} else if (grain >= s->slots[i].m.geom.grain_count) {
		ret = fm_err(-ERANGE, "grain %" PRIu64 " >= %" PRIu64, grain,
			     s->slots[i].m.geom.grain_count);
	} else {
		uint64_t w;
		memcpy(&w, s->base + s->slots[i].bitmap_off + grain / 64 * 8, 8);
		ret = (int)((le64toh(w) >> (grain % 64)) & 1);
	}
	pthread_mutex_unlock(&s->lock);
	return ret;
}

/* ---- mapping operations -------------------------------------------- */

/* 0 if the pool's slots have room for `what` (SLOT_EXT, format 1.2), else
 * -EOPNOTSUPP with a message naming the pool's format. */
static int __ext_supported(const struct fm_store *s, const char *what)
{
	if (s->sb.incompat & FM_POOL_INCOMPAT_SLOT_EXT)
		return 0;
	return fm_err(-EOPNOTSUPP, "pool format %" PRIu32 ".%" PRIu32 " has no room for %s"
		      " in its mapping slots (format 1.2 has: a new pool)", s->sb.major,
		      s->sb.minor, what);
}

int fm_store_map_create(struct fm_store *s, const struct fm_mapping *m)
{
	return fm_store_map_create_opt(s, m, 0);
}

int fm_store_map_create_opt(struct fm_store *s, const struct fm_mapping *m, uint32_t opt)
{
	struct fm_mapping chk;
	struct fm_slot next;
	uint32_t free_slot = UINT32_MAX;
	int ret;

	ret = fm_mapping_init(&chk, m->id, m->source_vol, m->target_vol,
			      m->geom.volume_size, fm_geom_grain_size(&m->geom));
	if (ret)
		return ret;
	if (m->geom.grain_shift < FM_GRAIN_SHIFT_MIN ||
	    m->geom.grain_shift > FM_GRAIN_SHIFT_MAX ||
	    chk.geom.grain_count != m->geom.grain_count)
		return fm_err(-EINVAL, "mapping %" PRIu64 ": geometry not from"
			      " fm_geom_init", m->id);
	if (m->state != FM_MAP_IDLE_OR_COPIED)
		return fm_err(-EINVAL, "mapping %" PRIu64 " must be created %s, not %s",
			      m->id, fm_map_state_name(FM_MAP_IDLE_OR_COPIED),
			      fm_map_state_name(m->state));
	if (opt & ~FM_STORE_CREATE_AUTODELETE)
		return fm_err(-EINVAL, "mapping %" PRIu64 ": create option 0x%" PRIx32
			      " unknown", m->id, opt);

	pthread_mutex_lock(&s->lock);
	__wait_idle(s); /* I6: before anything is read */
	if ((opt & FM_STORE_CREATE_AUTODELETE) && (ret = __ext_supported(s, "autodelete")))
		goto out;
	if (__lookup(s, m->id) >= 0) {
		ret = fm_err(-EEXIST, "mapping %" PRIu64 " exists", m->id);
		goto out;
	}
	if (fm_bitmap_len(m->geom.grain_count) > s->sb.bitmap_stride) {
		ret = fm_err(-EFBIG, "mapping %" PRIu64 ": %" PRIu64 " grains, pool"
			     " holds %" PRIu64 " per mapping", m->id,
			     m->geom.grain_count, s->sb.bitmap_stride * 8);
		goto out;
	}
	for (uint32_t i = 0; i < s->sb.slot_count; i++) {
		if (!s->slots[i].flags) {
			free_slot = i;
			break;
		}
	}
	if (free_slot == UINT32_MAX) {
		ret = fm_err(-ENOSPC, "mapping table full (%" PRIu32 " slots)",
			     s->sb.slot_count);
		goto out;
	}
	ret = __commit(s);
	if (ret < 0)
		goto out;
	memset(&next, 0, sizeof(next));
	next.flags = FM_SLOT_IN_USE |
		     ((opt & FM_STORE_CREATE_AUTODELETE) ? FM_SLOT_AUTODELETE : 0);
	next.m = *m;
	next.bitmap_off = bitmap_off(s, free_slot);
	next.bitmap_len = fm_bitmap_len(m->geom.grain_count);
	ret = __log_commit(s, FM_LOG_CREATE, free_slot, &next, s->in_use + 1);
	if (ret == 0)
		s->in_use++;
out:
	pthread_mutex_unlock(&s->lock);
	return ret;
}

/*
 * The prologue of every call that changes one mapping's slot (delete,
 * transition, restart, reverse, refresh, the setters of slot_update): take
 * s->lock, wait until no commit is in flight (I4, I6: before anything is
 * read), find mapping `id`.  Returns its slot index with s->lock held, or
 * -ENOENT (fm_err's message) with s->lock released.
 */
static int64_t slot_begin(struct fm_store *s, uint64_t id)
{
	int64_t i;

	pthread_mutex_lock(&s->lock);
	__wait_idle(s);
	i = __lookup(s, id);
	if (i < 0) {
		pthread_mutex_unlock(&s->lock);
		return fm_err(-ENOENT, "mapping %" PRIu64 " not found", id);
	}
	return i;
}

int fm_store_map_delete(struct fm_store *s, uint64_t id)
{
	struct fm_slot next;
	int64_t i;
	int ret;

	i = slot_begin(s, id);
	if (i < 0)
		return (int)i;
	if (s->slots[i].m.state != FM_MAP_IDLE_OR_COPIED &&
	    s->slots[i].m.state != FM_MAP_STOPPED) {
		ret = fm_err(-EBUSY, "mapping %" PRIu64 " is %s: stop it first", id,
			     fm_map_state_name(s->slots[i].m.state));
		goto out;
	}
	ret = __commit(s);
	if (ret < 0)
		goto out;
	memset(&next, 0, sizeof(next));
	ret = __log_commit(s, FM_LOG_DELETE, (uint32_t)i, &next, s->in_use - 1);
	if (ret == 0)
		s->in_use--;
out:
	pthread_mutex_unlock(&s->lock);
	return ret;
}

int fm_store_map_transition(struct fm_store *s, uint64_t id,
			    enum fm_map_event ev, struct fm_mapping *out)
{
	struct fm_slot next;
	int64_t i;
	int ret;

	i = slot_begin(s, id);
	if (i < 0)
		return (int)i;
	next = s->slots[i];
	ret = fm_mapping_apply(&next.m, ev); /* -EPERM/-EINVAL: nothing written */
	if (ret)
		goto out;
	if (ev == FM_MAP_EV_COPY_COMPLETE &&
	    s->split_count[i] != next.m.geom.grain_count) {
		ret = fm_err(-EBUSY, "mapping %" PRIu64 ": %" PRIu64 " of %" PRIu64
			     " grains split; copy not complete", id,
			     s->split_count[i], next.m.geom.grain_count);
		goto out;
	}
	ret = __commit(s);
	if (ret < 0)
		goto out;
	ret = __log_commit(s, ev == FM_MAP_EV_START ? FM_LOG_RESTART :
			   FM_LOG_TRANSITION, (uint32_t)i, &next, s->in_use);
	if (ret == 0 && out)
		*out = s->slots[i].m;
out:
	pthread_mutex_unlock(&s->lock);
	return ret;
}

int fm_store_map_restart(struct fm_store *s, uint64_t id, uint64_t *new_generation)
{
	struct fm_slot next;
	int64_t i;
	int ret;

	i = slot_begin(s, id);
	if (i < 0)
		return (int)i;
	ret = __commit(s);
	if (ret < 0)
		goto out;
	next = s->slots[i];
	next.m.generation++;
	ret = __log_commit(s, FM_LOG_RESTART, (uint32_t)i, &next, s->in_use);
	if (ret == 0 && new_generation)
		*new_generation = next.m.generation;
out:
	pthread_mutex_unlock(&s->lock);
	return ret;
}

int fm_store_map_reverse(struct fm_store *s, uint64_t id, uint32_t opt,
			 struct fm_mapping *out)
{
	struct fm_slot next;
	uint32_t j = UINT32_MAX;
	int64_t i;
	int ret;

	if (opt & ~FM_STORE_REVERSE_CHECK)
		return fm_err(-EINVAL, "mapping %" PRIu64 ": reverse option 0x%" PRIx32
			      " unknown", id, opt);
	i = slot_begin(s, id);
	if (i < 0)
		return (int)i;
	if (!(s->sb.incompat & FM_POOL_INCOMPAT_RESTORE)) {
		ret = fm_err(-EOPNOTSUPP, "pool format %" PRIu32 ".%" PRIu32 " cannot restore "
			     "a mapping crash-safely (format 1.3 can: a new pool)", s->sb.major,
			     s->sb.minor);
		goto out;
	}
	if (s->slots[i].group) {
		ret = fm_err(-EBUSY, "mapping %" PRIu64 " is in consistency group %" PRIu64
			     ": remove it from the group first (no group restore)", id,
			     s->slots[i].group);
		goto out;
	}
	next = s->slots[i];
	ret = fm_mapping_reverse(&s->slots[i].m, &next.m); /* -EPERM: nothing written */
	if (ret)
		goto out;
	for (uint32_t k = 0; k < s->sb.slot_count; k++) {
		if (!s->slots[k].flags) {
			j = k;
			break;
		}
	}
	if (j == UINT32_MAX) {
		ret = fm_err(-ENOSPC, "mapping %" PRIu64 ": a restore needs one free slot in the "
			     "mapping table (%" PRIu32 " slots, all in use): delete a mapping "
			     "first", id, s->sb.slot_count);
		goto out;
	}
	if (opt & FM_STORE_REVERSE_CHECK)
		goto out;
	ret = __commit(s); /* every split of the old generation durable first */
	if (ret < 0)
		goto out;
	next.flags ^= FM_SLOT_REVERSED;
	next.bitmap_off = bitmap_off(s, j);
	ret = __log_commit2(s, FM_LOG_REVERSE, j, (uint32_t)i, &next, s->in_use);
	if (ret == 0 && out)
		*out = s->slots[j].m;
out:
	pthread_mutex_unlock(&s->lock);
	return ret;
}

/*
 * A setter of one mapping's slot: one logged TRANSITION record (I4, I6:
 * with the store idle and the pending split bits committed first, as for
 * any slot write).  edit() sees the slot as it is and fills `next` (a copy
 * of it): 0 = log next, 1 = nothing to change, < 0 = refused (its errno,
 * with fm_err's message).
 */
typedef int (*slot_edit_fn)(struct fm_store *s, const struct fm_slot *cur, struct fm_slot *next,
			    const void *arg);

static int slot_update(struct fm_store *s, uint64_t id, slot_edit_fn edit, const void *arg)
{
	struct fm_slot next;
	int64_t i;
	int ret;

	i = slot_begin(s, id);
	if (i < 0)
		return (int)i;
	next = s->slots[i];
	ret = edit(s, &s->slots[i], &next, arg);
	if (ret) {
		ret = ret < 0 ? ret : 0; /* refused, or already so: nothing to log */
		goto out;
	}
	ret = __commit(s);
	if (ret < 0)
		goto out;
	ret = __log_commit(s, FM_LOG_TRANSITION, (uint32_t)i, &next, s->in_use);
out:
	pthread_mutex_unlock(&s->lock);
	return ret;
}

/* 0 if the pool keeps changed sets (format 1.4), else -EOPNOTSUPP. */
static int __changed_supported(const struct fm_store *s)
{
	if (has_changed(s))
		return 0;
	return fm_err(-EOPNOTSUPP, "pool format %" PRIu32 ".%" PRIu32 " keeps no changed"
		      " bitmaps: no incremental refresh (format 1.4 does: a new pool)",
		      s->sb.major, s->sb.minor);
}

#define ANY_GENERATION UINT64_MAX

/* Slot of mapping `id` at `generation` (ANY_GENERATION: whatever it is)
 * for a changed-set update or query, or a negative errno. */
static int64_t __changed_slot(struct fm_store *s, uint64_t id, uint64_t generation)
{
	int64_t i;
	int ret = __changed_supported(s);

	if (ret)
		return ret;
	i = __lookup(s, id);
	if (i < 0)
		return fm_err(-ENOENT, "mapping %" PRIu64 " not found", id);
	if (generation != ANY_GENERATION && s->slots[i].m.generation != generation)
		return fm_err(-ESTALE, "mapping %" PRIu64 " is at generation %" PRIu64
			      ", not %" PRIu64, id, s->slots[i].m.generation, generation);
	return i;
}

/*
 * The changed set is written outside the log: setting a bit is one
 * failure-atomic 8-byte store, as a split bit, and a bit set early is
 * harmless (one more grain recopied).  Each call is durable on return (one
 * drain), so whoever acknowledges a report after it may forget the report.
 * Under s->lock with s->pers; no commit in flight touches these words (its
 * set holds split bitmap words only).
 */
int fm_store_changed_set_range(struct fm_store *s, uint64_t id, uint64_t generation,
			       uint64_t first, uint64_t count)
{
	uint64_t *ch, gc;
	int64_t i;
	int ret;

	pthread_mutex_lock(&s->lock);
	i = __changed_slot(s, id, generation);
	if (i < 0) {
		ret = (int)i;
		goto out;
	}
	gc = s->slots[i].m.geom.grain_count;
	if (count == 0 || first >= gc || count > gc - first) {
		ret = fm_err(-ERANGE, "mapping %" PRIu64 ": grains [%" PRIu64 ", +%" PRIu64
			     ") not in [0, %" PRIu64 ")", id, first, count, gc);
		goto out;
	}
	ch = (uint64_t *)(s->base + changed_off(s, (uint32_t)i));
	for (uint64_t g = first, end = first + count; g < end;) {
		uint64_t k = g / 64, lo = g % 64;
		uint64_t n = end - g < 64 - lo ? end - g : 64 - lo;
		uint64_t bits = (n == 64 ? ~UINT64_C(0) : ((UINT64_C(1) << n) - 1)) << lo;
		uint64_t w = le64toh(ch[k]);

		if ((w | bits) != w) {
			__atomic_store_n(&ch[k], htole64(w | bits), __ATOMIC_RELAXED);
			fm_flush(&s->pers, &ch[k], 8);
		}
		g += n;
	}
	ret = fm_drain(&s->pers);
out:
	pthread_mutex_unlock(&s->lock);
	return ret;
}

static int edit_changed_unknown(struct fm_store *s, const struct fm_slot *cur,
				struct fm_slot *next, const void *arg)
{
	uint64_t generation = *(const uint64_t *)arg;
	int ret = __changed_supported(s);

	if (ret)
		return ret;
	if (cur->m.generation != generation)
		return fm_err(-ESTALE, "mapping %" PRIu64 " is at generation %" PRIu64
			      ", not %" PRIu64, cur->m.id, cur->m.generation, generation);
	next->flags |= FM_SLOT_CHANGED_UNKNOWN;
	return next->flags == cur->flags;
}

int fm_store_changed_unknown(struct fm_store *s, uint64_t id, uint64_t generation)
{
	return slot_update(s, id, edit_changed_unknown, &generation);
}

int fm_store_changed_count(struct fm_store *s, uint64_t id, uint64_t *count)
{
	int64_t i;
	int ret;

	pthread_mutex_lock(&s->lock);
	i = __changed_slot(s, id, ANY_GENERATION);
	if (i < 0) {
		ret = (int)i;
		goto out;
	}
	*count = popcount_range(s->base + changed_off(s, (uint32_t)i),
				s->slots[i].bitmap_len);
	ret = (s->slots[i].flags & FM_SLOT_CHANGED_UNKNOWN) ? 1 : 0;
out:
	pthread_mutex_unlock(&s->lock);
	return ret;
}

int fm_store_changed_test(struct fm_store *s, uint64_t id, uint64_t grain)
{
	const uint64_t *ch;
	int64_t i;
	int ret;

	pthread_mutex_lock(&s->lock);
	i = __changed_slot(s, id, ANY_GENERATION);
	if (i < 0) {
		ret = (int)i;
		goto out;
	}
	if (grain >= s->slots[i].m.geom.grain_count) {
		ret = fm_err(-ERANGE, "grain %" PRIu64 " >= %" PRIu64, grain,
			     s->slots[i].m.geom.grain_count);
		goto out;
	}
	ch = (const uint64_t *)(s->base + changed_off(s, (uint32_t)i));
	ret = (int)((le64toh(ch[grain / 64]) >> (grain % 64)) & 1);
out:
	pthread_mutex_unlock(&s->lock);
	return ret;
}

int fm_store_map_refresh(struct fm_store *s, uint64_t id, uint32_t opt,
			 struct fm_store_refresh *out)
{
	struct fm_slot next;
	uint64_t before;
	bool full;
	int64_t i;
	int ret;

	if (opt & ~FM_STORE_REFRESH_CHECK)
		return fm_err(-EINVAL, "mapping %" PRIu64 ": refresh option 0x%" PRIx32
			      " unknown", id, opt);
	i = slot_begin(s, id);
	if (i < 0)
		return (int)i;
	if ((ret = __changed_supported(s)))
		goto out;
	if (s->slots[i].m.state != FM_MAP_COPYING &&
	    s->slots[i].m.state != FM_MAP_IDLE_OR_COPIED) {
		ret = fm_err(-EPERM, "mapping %" PRIu64 " is %s: a refresh needs %s or %s",
			     id, fm_map_state_name(s->slots[i].m.state),
			     fm_map_state_name(FM_MAP_COPYING),
			     fm_map_state_name(FM_MAP_IDLE_OR_COPIED));
		goto out;
	}
	if (s->slots[i].group) {
		ret = fm_err(-EBUSY, "mapping %" PRIu64 " is in consistency group %" PRIu64
			     ": remove it from the group first (no group refresh)", id,
			     s->slots[i].group);
		goto out;
	}
	if (s->slots[i].flags & FM_SLOT_REVERSED) {
		ret = fm_err(-EPERM, "mapping %" PRIu64 " is restored (it copies the volume"
			     " created as its target back): no refresh; map-restore again"
			     " or delete it", id);
		goto out;
	}
	if (s->slots[i].m.generation == UINT64_MAX) {
		ret = fm_err(-EOVERFLOW, "mapping %" PRIu64 ": generation exhausted", id);
		goto out;
	}
	full = (s->slots[i].flags & FM_SLOT_CHANGED_UNKNOWN) != 0;
	if (opt & FM_STORE_REFRESH_CHECK)
		goto out;
	ret = __commit(s); /* every split of the old generation durable first */
	if (ret < 0)
		goto out;
	before = s->split_count[i];
	next = s->slots[i];
	next.m.generation++;
	next.m.state = FM_MAP_COPYING;
	/* CHANGED_UNKNOWN: the changed set may miss writes: recopy all */
	ret = __log_commit(s, full ? FM_LOG_RESTART : FM_LOG_REFRESH, (uint32_t)i, &next,
			   s->in_use);
	if (ret == 0 && out) {
		out->map = s->slots[i].m;
		out->full = full;
		out->kept = s->split_count[i];
		out->dropped = before - s->split_count[i];
	}
out:
	pthread_mutex_unlock(&s->lock);
	return ret;
}

static int edit_rate(struct fm_store *s, const struct fm_slot *cur, struct fm_slot *next,
		     const void *arg)
{
	(void)s;
	(void)cur;
	next->m.copy_rate = *(const uint32_t *)arg;
	return 0;
}

int fm_store_map_set_rate(struct fm_store *s, uint64_t id, uint32_t rate)
{
	if (rate > FM_COPY_RATE_MAX)
		return fm_err(-ERANGE, "mapping %" PRIu64 ": copy rate %" PRIu32 " > %u", id, rate,
			      FM_COPY_RATE_MAX);
	return slot_update(s, id, edit_rate, &rate);
}

static int edit_autodelete(struct fm_store *s, const struct fm_slot *cur, struct fm_slot *next,
			   const void *arg)
{
	int ret = __ext_supported(s, "autodelete");

	if (ret)
		return ret;
	next->flags = *(const bool *)arg ? cur->flags | FM_SLOT_AUTODELETE
					 : cur->flags & ~FM_SLOT_AUTODELETE;
	return next->flags == cur->flags;
}

int fm_store_map_set_autodelete(struct fm_store *s, uint64_t id, bool on)
{
	return slot_update(s, id, edit_autodelete, &on);
}

static int edit_group(struct fm_store *s, const struct fm_slot *cur, struct fm_slot *next,
		      const void *arg)
{
	uint64_t group = *(const uint64_t *)arg;
	int ret = __ext_supported(s, "consistency groups");

	if (ret)
		return ret;
	if (group && cur->group && cur->group != group)
		return fm_err(-EBUSY, "mapping %" PRIu64 " is in group %" PRIu64 ": remove it"
			      " from that group first", cur->m.id, cur->group);
	next->group = group;
	return cur->group == group;
}

int fm_store_map_set_group(struct fm_store *s, uint64_t id, uint64_t group)
{
	return slot_update(s, id, edit_group, &group);
}

int fm_store_group_members(struct fm_store *s, uint64_t group, uint64_t *ids, size_t cap)
{
	size_t n = 0;

	if (!group)
		return fm_err(-EINVAL, "group 0 is no group");
	pthread_mutex_lock(&s->lock);
	for (uint32_t i = 0; i < s->sb.slot_count; i++) {
		if (!s->slots[i].flags || s->slots[i].group != group)
			continue;
		if (n < cap)
			ids[n] = s->slots[i].m.id;
		n++;
	}
	pthread_mutex_unlock(&s->lock);
	return (int)n;
}

/*
 * Group start: START for every member of a consistency group as one
 * point in time, crash-atomic across the members although the redo log
 * holds one slot image per record.
 *
 * The commit point is one slot image: GROUP_PENDING on the group's lead
 * (its lowest-id member).  In this order, under s->lock throughout:
 *   1. every member is PREPARED, none carries GROUP_PENDING, the group
 *      has at least one member (else -EPERM / -ENOENT, nothing written);
 *   2. pending splits committed (as before any logged operation);
 *   3. the lead's image with GROUP_PENDING, logged (TRANSITION).  Durable:
 *      from here on the group start WILL complete, whatever happens;
 *   4. each member, in slot order: START applied (COPYING, generation + 1,
 *      bitmap cleared), logged (RESTART) -- the lead keeps its flag;
 *   5. the lead's image without GROUP_PENDING, logged (TRANSITION).
 * A crash before 3 is durable leaves every member PREPARED at its old
 * generation: nothing happened.  A crash after it: open (__group_recover,
 * after the log's own replay, before the handle is returned) finds the
 * flag and redoes 4 for every member still PREPARED -- members are only
 * PREPARED (not yet started) or COPYING (started) while the flag is set,
 * because nothing else runs on them (this call holds the lock; recovery
 * runs before anyone has the handle) -- then 5.  Recovery is itself
 * idempotent under a crash: the flag stays until 5.
 *
 * Why this is the one point in time for the owner: it calls this only
 * after every client released every member (nothing is granted on any of
 * them), and grants again only after it returned; after a crash the owner
 * grants nothing before the store is open (recovered).  So no I/O on any
 * member falls between two members' STARTs.
 */
static int __group_complete(struct fm_store *s, uint64_t group, uint32_t lead)
{
	struct fm_slot next;
	int ret;

	for (uint32_t i = 0; i < s->sb.slot_count; i++) {
		if (!s->slots[i].flags || s->slots[i].group != group ||
		    s->slots[i].m.state != FM_MAP_PREPARED)
			continue;
		next = s->slots[i];
		ret = fm_mapping_apply(&next.m, FM_MAP_EV_START); /* 4. */
		if (ret)
			return ret;
		ret = __log_commit(s, FM_LOG_RESTART, i, &next, s->in_use);
		if (ret)
			return ret;
	}
	next = s->slots[lead]; /* 5. */
	next.flags &= ~FM_SLOT_GROUP_PENDING;
	return __log_commit(s, FM_LOG_TRANSITION, lead, &next, s->in_use);
}

int fm_store_group_start(struct fm_store *s, uint64_t group)
{
	struct fm_slot next;
	uint32_t lead = UINT32_MAX, n = 0;
	int ret = 0;

	if (!group)
		return fm_err(-EINVAL, "group 0 is no group");
	pthread_mutex_lock(&s->lock);
	__wait_idle(s); /* I4, I6: before anything is read */
	if ((ret = __ext_supported(s, "consistency groups")))
		goto out;
	/* 1. */
	for (uint32_t i = 0; i < s->sb.slot_count; i++) {
		const struct fm_slot *sl = &s->slots[i];

		if (!sl->flags || sl->group != group)
			continue;
		n++;
		if (sl->m.state != FM_MAP_PREPARED) {
			ret = fm_err(-EPERM, "group %" PRIu64 ": mapping %" PRIu64 " is %s,"
				     " not prepared: nothing started", group, sl->m.id,
				     fm_map_state_name(sl->m.state));
			goto out;
		}
		if (sl->flags & FM_SLOT_GROUP_PENDING) {
			ret = fm_err(-EALREADY, "group %" PRIu64 ": a start is pending", group);
			goto out;
		}
		if (lead == UINT32_MAX || sl->m.id < s->slots[lead].m.id)
			lead = i;
	}
	if (!n) {
		ret = fm_err(-ENOENT, "group %" PRIu64 " has no member", group);
		goto out;
	}
	ret = __commit(s); /* 2. */
	if (ret < 0)
		goto out;
	next = s->slots[lead]; /* 3. the commit point */
	next.flags |= FM_SLOT_GROUP_PENDING;
	ret = __log_commit(s, FM_LOG_TRANSITION, lead, &next, s->in_use);
	if (ret)
		goto out;
	ret = __group_complete(s, group, lead); /* 4., 5. */
	if (ret == 0)
		ret = (int)n;
out:
	pthread_mutex_unlock(&s->lock);
	return ret;
}

/* Open: complete every group start whose commit point is durable (see
 * above).  Caller holds nothing: the handle is not out yet. */
static int store_group_recover(struct fm_store *s)
{
	int ret = 0;

	pthread_mutex_lock(&s->lock);
	for (uint32_t i = 0; i < s->sb.slot_count && !ret; i++) {
		if (!(s->slots[i].flags & FM_SLOT_GROUP_PENDING))
			continue;
		ret = __group_complete(s, s->slots[i].group, i);
		if (!ret)
			s->st.recovered_groups++;
	}
	pthread_mutex_unlock(&s->lock);
	return ret;
}

int fm_store_map_get(struct fm_store *s, uint64_t id, struct fm_store_map_info *info)
{
	int64_t i;
	int ret = 0;

	pthread_mutex_lock(&s->lock);
	i = __lookup(s, id);
	if (i < 0) {
		ret = fm_err(-ENOENT, "mapping %" PRIu64 " not found", id);
	} else {
		info->map = s->slots[i].m;
		info->slot = (uint32_t)i;
		info->split_count = s->split_count[i];
		info->autodelete = (s->slots[i].flags & FM_SLOT_AUTODELETE) != 0;
		info->group = s->slots[i].group;
		info->reversed = (s->slots[i].flags & FM_SLOT_REVERSED) != 0;
		info->changed_unknown = (s->slots[i].flags & FM_SLOT_CHANGED_UNKNOWN) != 0;
	}
	pthread_mutex_unlock(&s->lock);
	return ret;
}

int fm_store_map_list(struct fm_store *s, uint64_t *ids, size_t cap)
{
	size_t n = 0;

	pthread_mutex_lock(&s->lock);
	for (uint32_t i = 0; i < s->sb.slot_count; i++) {
		if (!s->slots[i].flags)
			continue;
		if (n < cap)
			ids[n] = s->slots[i].m.id;
		n++;
	}
	pthread_mutex_unlock(&s->lock);
	return (int)n;
}

int fm_store_bitmap_view(struct fm_store *s, uint64_t id, const void **addr,
			 size_t *len, enum fm_store_view *view)
{
	int64_t i;
	int ret = 0;

	pthread_mutex_lock(&s->lock);
	i = __lookup(s, id);
	if (i < 0) {
		ret = fm_err(-ENOENT, "mapping %" PRIu64 " not found", id);
	} else {
		uint64_t rel = s->slots[i].bitmap_off - s->sb.bitmap_off;
		*addr = s->mirror ? s->mirror + rel : s->base + s->slots[i].bitmap_off;
		*len = s->slots[i].bitmap_len;
		if (view)
			*view = s->view;
	}
	pthread_mutex_unlock(&s->lock);
	return ret;
}

int fm_store_bitmap_region(struct fm_store *s, const void **addr, size_t *len)
{
	*addr = s->mirror ? s->mirror : s->base + s->sb.bitmap_off;
	*len = s->sb.bitmap_stride * s->sb.slot_count;
	return 0;
}

int fm_store_stats(struct fm_store *s, struct fm_store_stats *st)
{
	pthread_mutex_lock(&s->lock);
	*st = s->st;
	st->is_pmem = s->is_pmem;
	st->view = s->view;
	st->persist_mode = s->is_pmem ? "pmem (flush+drain)" : "msync";
	st->pool_size = s->sb.pool_size;
	st->max_mappings = s->sb.slot_count;
	st->mappings = s->in_use;
	st->max_grains = s->sb.bitmap_stride * 8;
	st->splits_pending = s->npending;
	st->splits_committing = s->fl_bits;
	st->drains = s->pers.drains + s->commit_drains;
	st->log_seq = s->log_seq;
	pthread_mutex_unlock(&s->lock);
	return 0;
}

/* ---- owner incarnations ---------------------------------------------- */

/*
 * __owner_write -- replace the owner record with {incarnation, hold_ms}.
 * Caller holds s->lock; the pool has OWNER.  Crash-safe by two copies:
 * the record lives in copy s->owner_copy, the other copy holds nothing
 * (zero), a torn write, or the record before it.
 */
static int __owner_write(struct fm_store *s, uint64_t incarnation, uint32_t hold_ms)
{
	struct fm_owner o = { .seq = s->owner.seq + 1, .incarnation = incarnation,
			      .hold_ms = hold_ms };
	uint32_t k = !s->owner_copy;
	uint8_t *dst = log_addr(s) + FM_LOG_OWNER_OFF + k * sizeof(struct fm_owner_media);
	struct fm_owner_media m;
	int ret;

	fm_owner_encode(&m, &o);
	/* 1. write the other copy, seq + 1, checksummed.  The current copy is
	 *    not touched: a crash from here to 2 leaves the other copy old,
	 *    zero or torn (bad checksum), and the current one wins. */
	memcpy(dst, &m, sizeof(m));
	/* 2. persist it (one cache line).  Commit point: once durable, this
	 *    copy is valid with the higher seq and wins. */
	ret = fm_persist_range(&s->pers, dst, sizeof(m));
	if (ret)
		return ret;
	/* 3. only now act on it */
	s->owner = o;
	s->owner_copy = k;
	return 0;
}

static int __owner_supported(const struct fm_store *s)
{
	if (s->sb.incompat & FM_POOL_INCOMPAT_OWNER)
		return 0;
	return fm_err(-EOPNOTSUPP, "pool format %" PRIu32 ".%" PRIu32 " has no owner"
		      " record: nothing is known of earlier owners, assume their"
		      " leases may still be live", s->sb.major, s->sb.minor);
}

int fm_store_owner_begin(struct fm_store *s, uint32_t hold_ms,
			 struct fm_store_owner_info *prev, uint64_t *incarnation)
{
	uint64_t next;
	int ret;

	pthread_mutex_lock(&s->lock);
	memset(prev, 0, sizeof(*prev));
	*incarnation = 0;
	ret = __owner_supported(s);
	if (ret)
		goto out;
	if (s->owner_begun) {
		ret = fm_err(-EALREADY, "owner incarnation %" PRIu64 " already begun"
			     " on this store", s->owner.incarnation);
		goto out;
	}
	prev->incarnation = s->owner.incarnation;
	prev->hold_ms = s->owner.hold_ms;
	prev->known = true;
	if (s->owner.incarnation == UINT64_MAX) {
		ret = fm_err(-EOVERFLOW, "owner incarnations exhausted");
		goto out;
	}
	next = s->owner.incarnation + 1;
	ret = __owner_write(s, next, hold_ms > prev->hold_ms ? hold_ms : prev->hold_ms);
	if (ret)
		goto out;
	s->owner_begun = 1;
	*incarnation = next;
out:
	pthread_mutex_unlock(&s->lock);
	return ret;
}

int fm_store_owner_settle(struct fm_store *s, uint32_t hold_ms)
{
	int ret;

	pthread_mutex_lock(&s->lock);
	ret = __owner_supported(s);
	if (ret == 0 && !s->owner_begun)
		ret = fm_err(-EINVAL, "no owner incarnation begun on this store");
	if (ret == 0 && hold_ms != s->owner.hold_ms)
		ret = __owner_write(s, s->owner.incarnation, hold_ms);
	pthread_mutex_unlock(&s->lock);
	return ret;
}

int fm_store_owner_get(struct fm_store *s, struct fm_store_owner_info *out)
{
	pthread_mutex_lock(&s->lock);
	memset(out, 0, sizeof(*out));
	if (s->sb.incompat & FM_POOL_INCOMPAT_OWNER) {
		out->incarnation = s->owner.incarnation;
		out->hold_ms = s->owner.hold_ms;
		out->known = true;
	}
	pthread_mutex_unlock(&s->lock);
	return 0;
}

/* ---- open / create / close ----------------------------------------- */

static void store_free(struct fm_store *s)
{
	if (!s)
		return;
	if (s->mirror)
		munmap(s->mirror, s->sb.bitmap_stride * s->sb.slot_count);
	if (s->base)
		pmem_unmap(s->base, s->mapped_len);
	fm_pool_file_close(&s->pf); /* drops the lock: after the last write */
	free(s->dirty);
	free(s->fl_off);
	free(s->fl_val);
	free(s->hash);
	free(s->split_count);
	free(s->slots);
	pthread_cond_destroy(&s->idle);
	pthread_mutex_destroy(&s->lock);
	free(s);
}

/*
 * map_pool -- open and lock the pool file, then map it.  The lock comes
 * first: nothing is read or written before this handle is the only
 * writer.  libpmem maps the file through /proc/self/fd/N, i.e. exactly the
 * file we opened and locked, even if the path is renamed meanwhile.
 */
static int map_pool(struct fm_store *s, const char *path, int create, uint64_t size)
{
	int ret;

	ret = fm_pool_file_open(&s->pf, path, FM_PF_WRITE | (create ? FM_PF_CREATE : 0));
	if (ret)
		return ret;
	s->is_devdax = s->pf.is_devdax;
	ret = fm_pool_file_lock(&s->pf, path);
	if (ret)
		return ret;
	/* pmem_map_file cannot map an empty file: say what it is */
	if (!create && S_ISREG(s->pf.st.st_mode) && (uint64_t)s->pf.st.st_size < FM_BLOCK)
		return fm_err(-ENODATA, "file is %jd bytes; a pool needs at"
			      " least %u", (intmax_t)s->pf.st.st_size, FM_BLOCK);
	if (create && !s->is_devdax)
		s->base = pmem_map_file(s->pf.map_path, size, PMEM_FILE_CREATE, 0644,
					&s->mapped_len, &s->is_pmem);
	else
		s->base = pmem_map_file(s->pf.map_path, 0, 0, 0, &s->mapped_len,
					&s->is_pmem);
	if (!s->base) {
		int e = errno ? errno : EIO;
		return fm_err(-e, "%s: %s", path, pmem_errormsg());
	}
	if (create && s->mapped_len < size)
		return fm_err(-ENOSPC, "%s holds %zu bytes, pool needs %" PRIu64,
			      path, s->mapped_len, size);
	fm_persist_init(&s->pers, s->base, s->mapped_len, s->is_pmem);
	fm_persist_init(&s->cpers, s->base, s->mapped_len, s->is_pmem);
	return 0;
}

/* Remove a file this create made, and only that: not a devdax device, not
 * whatever the path names now if someone replaced it. */
static void unlink_created(struct fm_store *s, const char *path)
{
	struct stat st;

	if (s->pf.fd < 0 || s->is_devdax)
		return;
	if (stat(path, &st) == 0 && st.st_dev == s->pf.st.st_dev &&
	    st.st_ino == s->pf.st.st_ino)
		unlink(path);
}

static int store_alloc(struct fm_store **out)
{
	struct fm_store *s = calloc(1, sizeof(*s));

	if (!s)
		return fm_err(-ENOMEM, "out of memory");
	pthread_mutex_init(&s->lock, NULL);
	pthread_cond_init(&s->idle, NULL);
	s->pf.fd = -1;
	*out = s;
	return 0;
}

/* DRAM arrays sized by the (validated) superblock. */
static int store_arrays(struct fm_store *s)
{
	uint32_t n = s->sb.slot_count, hsize = 1;

	while (hsize < 2 * n)
		hsize <<= 1;
	s->slots = calloc(n, sizeof(*s->slots));
	s->split_count = calloc(n, sizeof(*s->split_count));
	s->hash = calloc(hsize, sizeof(*s->hash));
	s->dirty = malloc(FM_STORE_PENDING_MAX * sizeof(*s->dirty));
	s->fl_off = malloc(FM_STORE_PENDING_MAX * sizeof(*s->fl_off));
	s->fl_val = malloc(FM_STORE_PENDING_MAX * sizeof(*s->fl_val));
	if (!s->slots || !s->split_count || !s->hash || !s->dirty || !s->fl_off ||
	    !s->fl_val)
		return fm_err(-ENOMEM, "out of memory for %" PRIu32 " slots", n);
	s->hash_mask = hsize - 1;
	return 0;
}

/* DRAM state from the (validated, recovered, durable) pool. */
static int store_load(struct fm_store *s, enum fm_store_view view)
{
	uint32_t n = s->sb.slot_count;
	uint64_t area = s->sb.bitmap_stride * n;

	/* AUTO is always MIRROR: in DIRECT view a client could READ a bit
	 * between split_set and its drain, cache "split", and overwrite the
	 * source grain; a power failure then loses the bit and the target
	 * reads new data as old.  DIRECT is an explicit opt-in for platforms
	 * whose CPU caches are persistent (eADR). */
	if (view == FM_STORE_VIEW_AUTO)
		view = FM_STORE_VIEW_MIRROR;
	s->view = view;
	if (view == FM_STORE_VIEW_MIRROR) {
		/* anonymous: pages are only allocated where bits are copied */
		s->mirror = mmap(NULL, area, PROT_READ | PROT_WRITE,
				 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
		if (s->mirror == MAP_FAILED) {
			s->mirror = NULL;
			return fm_err(-ENOMEM, "mirror of %" PRIu64 " bytes", area);
		}
	}

	s->in_use = 0;
	for (uint32_t i = 0; i < n; i++) {
		struct fm_slot_media sm;
		memcpy(&sm, slot_addr(s, i), sizeof(sm));
		fm_slot_decode(&s->slots[i], &sm);
		if (!s->slots[i].flags)
			continue;
		s->in_use++;
		s->split_count[i] = popcount_range(s->base + s->slots[i].bitmap_off,
						   s->slots[i].bitmap_len);
		if (s->mirror && s->split_count[i])
			memcpy(s->mirror + (s->slots[i].bitmap_off - s->sb.bitmap_off),
			       s->base + s->slots[i].bitmap_off, s->slots[i].bitmap_len);
	}
	__hash_rebuild(s);
	return 0;
}

static int read_view(const struct fm_store_config *cfg, enum fm_store_view *v)
{
	*v = cfg ? cfg->view : FM_STORE_VIEW_AUTO;
	if ((unsigned)*v > FM_STORE_VIEW_MIRROR)
		return fm_err(-EINVAL, "view mode %u unknown", (unsigned)*v);
	return 0;
}

int fm_store_create(struct fm_store **out, const char *path,
		    const struct fm_store_config *cfg)
{
	struct fm_store *s = NULL;
	struct fm_sb_media sbm;
	enum fm_store_view view;
	int ret;

	*out = NULL;
	if (!cfg)
		return fm_err(-EINVAL, "create needs a config");
	ret = read_view(cfg, &view);
	if (ret)
		return ret;
	ret = store_alloc(&s);
	if (ret)
		return ret;
	ret = fm_layout_compute(&s->sb, cfg->max_mappings, cfg->max_grains);
	if (ret)
		goto out_free;
	if (getrandom(s->sb.uuid, sizeof(s->sb.uuid), 0) != sizeof(s->sb.uuid)) {
		ret = fm_err(-EIO, "getrandom failed");
		goto out_free;
	}
	ret = map_pool(s, path, 1, s->sb.pool_size);
	if (ret)
		goto out_unlink;

	/* 1. zero everything behind the superblock (a devdax device or a
	 *    reused file may hold old data), write the initial log block --
	 *    applied word for seq 0, record A of seq 0 (no op, 0 slots in
	 *    use), owner record copy 0 (seq 1, incarnation 0: no owner yet) --
	 *    and make it all durable. */
	{
		uint64_t *applied = (uint64_t *)log_addr(s);
		struct fm_log_rec r0 = { .seq = 0, .op = FM_LOG_NONE };
		struct fm_owner o0 = { .seq = 1 };
		struct fm_log_media lm;

		memset(&lm, 0, sizeof(lm));
		fm_log_encode(&lm.rec[0], &r0);
		fm_owner_encode(&lm.owner[0], &o0);
		s->owner = o0;
		s->owner_copy = 0;
		memset(log_addr(s) + 8, 0, FM_BLOCK - 8);
		memcpy(log_addr(s) + 8, (const uint8_t *)&lm + 8, sizeof(lm) - 8);
		__atomic_store_n(applied, htole64(fm_applied_encode(s->sb.incompat, 0)),
				 __ATOMIC_RELAXED);
		fm_flush(&s->pers, log_addr(s), FM_BLOCK);
		clear_words(s, s->sb.table_off, s->sb.pool_size - s->sb.table_off);
		ret = fm_drain(&s->pers);
		if (ret)
			goto out_unlink;
	}
	/* 2. write the superblock last and persist it: only now is this a
	 *    pool; a crash before leaves a file that open refuses. */
	fm_sb_encode(&sbm, &s->sb);
	memset(s->base, 0, FM_BLOCK);
	memcpy(s->base, &sbm, sizeof(sbm));
	ret = fm_persist_range(&s->pers, s->base, FM_BLOCK);
	if (ret)
		goto out_unlink;

	ret = store_arrays(s);
	if (ret == 0)
		ret = store_load(s, view);
	if (ret)
		goto out_unlink;
	*out = s;
	return 0;

out_unlink:
	unlink_created(s, path);
out_free:
	store_free(s);
	return ret;
}

int fm_store_open(struct fm_store **out, const char *path,
		  const struct fm_store_config *cfg)
{
	struct fm_store *s = NULL;
	struct fm_check c;
	enum fm_store_view view;
	uint64_t *ids;
	int ret;

	*out = NULL;
	ret = read_view(cfg, &view);
	if (ret)
		return ret;
	ret = store_alloc(&s);
	if (ret)
		return ret;
	ret = map_pool(s, path, 0, 0);
	if (ret)
		goto out_free;

	ids = malloc(FM_SLOTS_MAX * sizeof(*ids));
	if (!ids) {
		ret = fm_err(-ENOMEM, "out of memory");
		goto out_free;
	}
	ret = fm_pool_check(s->base, s->mapped_len, &c, ids);
	free(ids);
	if (ret)
		goto out_free; /* validation failed: nothing was written */
	s->sb = c.sb;
	s->log_seq = c.applied_seq;
	s->owner = c.owner;
	s->owner_copy = c.owner_copy;

	/* Everything we read may still sit in the page cache (msync mode) or
	 * the CPU cache (after a process crash on DAX): make it durable before
	 * acting on it or publishing it. */
	ret = fm_persist_range(&s->pers, s->base, s->sb.pool_size);
	if (ret)
		goto out_free;

	ret = store_arrays(s);
	if (ret)
		goto out_free;
	if (c.log_pending) {
		/* complete the interrupted operation: steps 2..4 */
		ret = __log_replay(s, &c.rec);
		if (ret)
			goto out_free;
		s->st.recovered_ops = 1;
	}
	ret = store_load(s, view);
	if (ret)
		goto out_free;
	/* a group start whose commit point is durable: completed before the
	 * handle is anyone's (fm_store_group_start) */
	ret = store_group_recover(s);
	if (ret)
		goto out_free;
	*out = s;
	return 0;

out_free:
	store_free(s);
	return ret;
}

void fm_store_close(struct fm_store **sp)
{
	struct fm_store *s = sp ? *sp : NULL;

	if (!s)
		return;
	pthread_mutex_lock(&s->lock);
	__wait_idle(s);
	(void)__commit(s);
	pthread_mutex_unlock(&s->lock);
	store_free(s);
	*sp = NULL;
}
