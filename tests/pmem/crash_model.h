/* crash_model.h -- reference model of what a crashed pool must hold, and a
 * random workload that feeds it, shared by the process-kill and the
 * power-failure tests.
 *
 * The workload reports, in order: an intent before every operation and an
 * ack after it returned (durable).  A split commit reports its begin (the
 * swap: it covers the bits attempted before it, not those attempted
 * between its begin and its end) and, once it returned, its ack.  After a
 * crash at any point:
 *   - every mapping is in its last acked (state, generation), or, for the
 *     one operation in flight, in the state that operation leads to;
 *   - if the generation is the acked one, every split bit covered by an
 *     acked commit is set and every set bit was at least attempted in this
 *     generation;
 *   - if the in-flight restart/START was applied, the bitmap is empty;
 *   - if the in-flight reverse (restore, format 1.3) was applied, the
 *     bitmap is exactly the complement of the bits set before it (every
 *     bit attempted in the generation: the reverse commits them first);
 *   - changed sets (format 1.4): if the generation is the acked one, every
 *     grain of an acked report is in it and every grain in it was at least
 *     reported in this generation; the changed-unknown flag is the acked
 *     one (or, for a mark in flight, set);
 *   - if the in-flight refresh was applied, the bitmap is exactly the bits
 *     attempted before it minus the reported ones (none if marked
 *     changed-unknown), and after any applied start, restart, reverse or
 *     refresh the changed set is empty and the flag clear;
 *   - the owner record is the last acked one or, for an owner update in
 *     flight (fm_store_owner_begin/settle), the one it writes: never a
 *     mix, never lost.
 */
#ifndef FM_CRASH_MODEL_H
#define FM_CRASH_MODEL_H

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "flashmeta/error.h"
#include "flashmeta/pmem_store.h"
#include "pmem_test_util.h"

#define CM_MAPS 3
#define CM_GRAINS 300 /* per mapping */
#define CM_GRAIN 4096u
#define CM_EV_RESTART FM_MAP_EV_COUNT /* pseudo event: fm_store_map_restart */
#define CM_EV_REVERSE (FM_MAP_EV_COUNT + 1) /* pseudo event: fm_store_map_reverse */
#define CM_EV_REFRESH (FM_MAP_EV_COUNT + 2) /* pseudo event: fm_store_map_refresh */
#define CM_EV_UNKNOWN (FM_MAP_EV_COUNT + 3) /* pseudo event: fm_store_changed_unknown */

enum cm_rec_type {
	CM_INTENT_SPLIT = 1, CM_ACK_COMMIT, CM_INTENT_TR, CM_ACK_TR,
	CM_INTENT_OWNER, CM_ACK_OWNER, /* a: incarnation, b: hold_ms */
	CM_COMMIT_BEGIN,               /* a split commit swaps its set */
	CM_INTENT_CHANGED, CM_ACK_CHANGED, /* a: gen, b: first | count << 32 */
};

struct cm_rec {
	uint32_t type;
	uint32_t map;   /* index 0..CM_MAPS-1 */
	uint64_t a, b;  /* split: gen, grain; intent tr: event; ack tr: state, gen */
};

struct cm_map {
	int state;
	uint64_t gen;
	uint8_t must[CM_GRAINS];
	uint8_t maybe[CM_GRAINS];   /* attempted in this generation */
	uint8_t covered[CM_GRAINS]; /* attempted before the last commit's begin */
	uint8_t ch_must[CM_GRAINS]; /* changed: reported and acked */
	uint8_t ch_maybe[CM_GRAINS]; /* changed: reported in this generation */
	int unknown;                /* changed-unknown acked */
};

struct cm {
	struct cm_map m[CM_MAPS];
	int tr_inflight;      /* an INTENT_TR without its ACK */
	uint32_t tr_map;
	int tr_state;         /* where it leads */
	uint64_t tr_gen;
	int tr_rev;           /* the in-flight operation is a reverse */
	uint8_t rev_bits[CM_GRAINS]; /* ... and the bitmap it leads to */
	int tr_ref;           /* the in-flight operation is a refresh (bitmap
			       * it leads to: rev_bits) */
	int tr_unk;           /* the in-flight operation marks changed-unknown */
	uint64_t owner_inc;   /* the acked owner record */
	uint32_t owner_hold;
	int owner_inflight;   /* an INTENT_OWNER without its ACK */
	uint64_t owner_next_inc;
	uint32_t owner_next_hold;
};

static inline uint64_t cm_id(uint32_t i)
{
	return 1000 + i;
}

static inline void cm_feed(struct cm *c, const struct cm_rec *r)
{
	struct cm_map *m = &c->m[r->map];

	switch (r->type) {
	case CM_INTENT_SPLIT:
		if (r->a == m->gen)
			m->maybe[r->b] = 1;
		break;
	case CM_COMMIT_BEGIN:
		for (int i = 0; i < CM_MAPS; i++)
			memcpy(c->m[i].covered, c->m[i].maybe, CM_GRAINS);
		break;
	case CM_ACK_COMMIT:
		for (int i = 0; i < CM_MAPS; i++)
			for (int g = 0; g < CM_GRAINS; g++)
				if (c->m[i].covered[g])
					c->m[i].must[g] = 1;
		break;
	case CM_INTENT_CHANGED:
	case CM_ACK_CHANGED:
		if (r->a != m->gen)
			break;
		for (uint64_t g = r->b & UINT32_MAX; g < (r->b & UINT32_MAX) + (r->b >> 32); g++) {
			m->ch_maybe[g] = 1;
			if (r->type == CM_ACK_CHANGED)
				m->ch_must[g] = 1;
		}
		break;
	case CM_INTENT_TR: {
		struct fm_mapping fm = { .state = m->state, .generation = m->gen };
		c->tr_inflight = 1;
		c->tr_map = r->map;
		c->tr_rev = r->a == CM_EV_REVERSE;
		c->tr_ref = r->a == CM_EV_REFRESH;
		c->tr_unk = r->a == CM_EV_UNKNOWN;
		if (r->a == CM_EV_UNKNOWN) {
			/* same state and generation */
		} else if (r->a == CM_EV_REFRESH) {
			fm.generation++;
			fm.state = FM_MAP_COPYING;
			for (int g = 0; g < CM_GRAINS; g++)
				c->rev_bits[g] = !m->unknown && (m->must[g] | m->maybe[g]) &&
						 !m->ch_maybe[g];
		} else if (r->a == CM_EV_RESTART) {
			fm.generation++;
		} else if (r->a == CM_EV_REVERSE) {
			if (fm_mapping_reverse(&fm, &fm)) {
				c->tr_inflight = 0; /* will be refused */
				break;
			}
			for (int g = 0; g < CM_GRAINS; g++)
				c->rev_bits[g] = !(m->must[g] | m->maybe[g]);
		} else if (fm_mapping_apply(&fm, (enum fm_map_event)r->a)) {
			c->tr_inflight = 0; /* will be refused */
			break;
		}
		c->tr_state = fm.state;
		c->tr_gen = fm.generation;
		break;
	}
	case CM_INTENT_OWNER:
		c->owner_inflight = 1;
		c->owner_next_inc = r->a;
		c->owner_next_hold = (uint32_t)r->b;
		break;
	case CM_ACK_OWNER:
		c->owner_inflight = 0;
		c->owner_inc = r->a;
		c->owner_hold = (uint32_t)r->b;
		break;
	case CM_ACK_TR:
		c->tr_inflight = 0;
		if (c->tr_unk)
			m->unknown = 1;
		if (r->b != m->gen) { /* a new generation: changed set empty */
			memset(m->ch_must, 0, sizeof(m->ch_must));
			memset(m->ch_maybe, 0, sizeof(m->ch_maybe));
			m->unknown = 0;
		}
		if (r->b != m->gen && (c->tr_rev || c->tr_ref)) {
			memcpy(m->must, c->rev_bits, sizeof(m->must));
			memcpy(m->maybe, c->rev_bits, sizeof(m->maybe));
			memcpy(m->covered, c->rev_bits, sizeof(m->covered));
		} else if (r->b != m->gen) {
			memset(m->must, 0, sizeof(m->must));
			memset(m->maybe, 0, sizeof(m->maybe));
			memset(m->covered, 0, sizeof(m->covered));
		}
		c->tr_rev = 0;
		c->tr_ref = 0;
		c->tr_unk = 0;
		m->state = (int)r->a;
		m->gen = r->b;
		break;
	}
}

/* Check the pool at `path` against the model; 0 or -1 with `why`. */
static inline int cm_verify(struct cm *c, const char *path, char *why, size_t wlen)
{
	struct fm_store *s;
	int ret = fm_store_open(&s, path, NULL);

	if (ret) {
		snprintf(why, wlen, "open: %d %s", ret, fm_errormsg());
		return -1;
	}
	struct fm_store_owner_info oi;
	fm_store_owner_get(s, &oi);
	if (!oi.known || !((oi.incarnation == c->owner_inc && oi.hold_ms == c->owner_hold) ||
			   (c->owner_inflight && oi.incarnation == c->owner_next_inc &&
			    oi.hold_ms == c->owner_next_hold))) {
		snprintf(why, wlen, "owner record %" PRIu64 "/%" PRIu32 " (known %d), model %"
			 PRIu64 "/%" PRIu32 " inflight %d -> %" PRIu64 "/%" PRIu32,
			 oi.incarnation, oi.hold_ms, oi.known, c->owner_inc, c->owner_hold,
			 c->owner_inflight, c->owner_next_inc, c->owner_next_hold);
		goto fail;
	}
	for (uint32_t i = 0; i < CM_MAPS; i++) {
		struct cm_map *m = &c->m[i];
		struct fm_store_map_info info;
		int inflight = c->tr_inflight && c->tr_map == i;

		if (fm_store_map_get(s, cm_id(i), &info)) {
			snprintf(why, wlen, "mapping %u missing", i);
			goto fail;
		}
		int old_ok = (int)info.map.state == m->state && info.map.generation == m->gen;
		int unk_ok = info.map.generation != m->gen ? !info.changed_unknown :
			     info.changed_unknown == (m->unknown != 0) ||
			     (inflight && c->tr_unk && info.changed_unknown);
		if (!unk_ok) {
			snprintf(why, wlen, "map %u: changed-unknown %d, model %d inflight %d",
				 i, info.changed_unknown, m->unknown, inflight && c->tr_unk);
			goto fail;
		}
		int new_ok = inflight && (int)info.map.state == c->tr_state &&
			     info.map.generation == c->tr_gen;
		if (!old_ok && !new_ok) {
			snprintf(why, wlen, "map %u: state %d gen %" PRIu64 ", model %d/%"
				 PRIu64 " inflight %d -> %d/%" PRIu64, i, info.map.state,
				 info.map.generation, m->state, m->gen, inflight,
				 c->tr_state, c->tr_gen);
			goto fail;
		}
		for (uint64_t g = 0; g < CM_GRAINS; g++) {
			int bit = fm_store_split_test(s, cm_id(i), g);
			if (bit < 0) {
				snprintf(why, wlen, "split_test %d", bit);
				goto fail;
			}
			int ch = fm_store_changed_test(s, cm_id(i), g);
			if (ch < 0) {
				snprintf(why, wlen, "changed_test %d", ch);
				goto fail;
			}
			if (info.map.generation != m->gen && ch) {
				snprintf(why, wlen, "map %u: changed bit %" PRIu64 " survived"
					 " a new generation", i, g);
				goto fail;
			}
			if (info.map.generation == m->gen &&
			    ((m->ch_must[g] && !ch) || (ch && !m->ch_maybe[g]))) {
				snprintf(why, wlen, "map %u gen %" PRIu64 ": changed bit %" PRIu64
					 " is %d, acked %d, reported %d", i, m->gen, g, ch,
					 m->ch_must[g], m->ch_maybe[g]);
				goto fail;
			}
			if (info.map.generation != m->gen && (c->tr_rev || c->tr_ref)) {
				if (bit != c->rev_bits[g]) {
					snprintf(why, wlen, "map %u: bit %" PRIu64 " is %d after"
						 " the %s, the model says %d", i, g, bit,
						 c->tr_rev ? "reverse" : "refresh", c->rev_bits[g]);
					goto fail;
				}
				continue;
			}
			if (info.map.generation != m->gen) {
				if (bit) {
					snprintf(why, wlen, "map %u: bit %" PRIu64
						 " survived restart", i, g);
					goto fail;
				}
				continue;
			}
			if (m->must[g] && !bit) {
				snprintf(why, wlen, "map %u gen %" PRIu64 ": acked bit %"
					 PRIu64 " lost", i, m->gen, g);
				goto fail;
			}
			if (bit && !m->must[g] && !m->maybe[g]) {
				snprintf(why, wlen, "map %u: bit %" PRIu64 " never set"
					 " in gen %" PRIu64, i, g, m->gen);
				goto fail;
			}
		}
	}
	fm_store_close(&s);
	return 0;
fail:
	fm_store_close(&s);
	return -1;
}

/* Make the model equal to the (verified) pool. */
static inline void cm_adopt(struct cm *c, const char *path)
{
	struct fm_store *s;

	if (fm_store_open(&s, path, NULL)) {
		fprintf(stderr, "adopt: %s\n", fm_errormsg());
		abort();
	}
	for (uint32_t i = 0; i < CM_MAPS; i++) {
		struct fm_store_map_info info;
		fm_store_map_get(s, cm_id(i), &info);
		c->m[i].state = info.map.state;
		c->m[i].gen = info.map.generation;
		memset(c->m[i].maybe, 0, CM_GRAINS);
		memset(c->m[i].covered, 0, CM_GRAINS);
		for (uint64_t g = 0; g < CM_GRAINS; g++) {
			c->m[i].must[g] = (uint8_t)fm_store_split_test(s, cm_id(i), g);
			c->m[i].ch_must[g] = (uint8_t)fm_store_changed_test(s, cm_id(i), g);
		}
		memcpy(c->m[i].ch_maybe, c->m[i].ch_must, CM_GRAINS);
		c->m[i].unknown = info.changed_unknown;
	}
	c->tr_inflight = 0;
	c->tr_rev = 0;
	c->tr_ref = 0;
	c->tr_unk = 0;
	struct fm_store_owner_info oi;
	fm_store_owner_get(s, &oi);
	c->owner_inc = oi.incarnation;
	c->owner_hold = oi.hold_ms;
	c->owner_inflight = 0;
	fm_store_close(&s);
}

/* A fresh pool with CM_MAPS idle mappings. */
static inline int cm_create(const char *path)
{
	struct fm_store_config cfg = { .max_mappings = 4, .max_grains = 512 };
	struct fm_store *s;
	struct fm_mapping m;

	if (fm_store_create(&s, path, &cfg))
		return -1;
	for (uint32_t i = 0; i < CM_MAPS; i++) {
		fm_mapping_init(&m, cm_id(i), 10 + i, 20 + i, CM_GRAINS * CM_GRAIN, CM_GRAIN);
		if (fm_store_map_create(s, &m))
			return -1;
	}
	fm_store_close(&s);
	return 0;
}

/* ---- the workload ---------------------------------------------------- */

typedef void (*cm_emit_fn)(void *arg, const struct cm_rec *r);

static inline void cm_die(const char *what, int ret)
{
	fprintf(stderr, "workload: %s: %d %s\n", what, ret, fm_errormsg());
	exit(3);
}

/* Report the intent for grain g, then let the caller set it. */
static inline void cm_intent(uint64_t gen, uint64_t g, struct cm_rec *r,
			     cm_emit_fn emit, void *arg)
{
	r->type = CM_INTENT_SPLIT;
	r->a = gen;
	r->b = g;
	emit(arg, r);
}

/*
 * One call of the split API on mapping r->map at `gen`, picked at random:
 *   - fm_store_split_set() for 1..8 random grains (one call each);
 *   - fm_store_split_set_many() for a batch of 1..24 grains mixing runs
 *     (next grain), duplicates (an earlier grain of the batch) and jumps,
 *     so one word is set by several runs of one call;
 *   - fm_store_split_set_range() for 1..70 grains (crossing words; one in
 *     four ranges ends on the last grain, a partial word).
 * Every grain's intent is emitted before the call that sets it.
 *
 * Checked to fail (mutants in store.c, not committed): split_set_many not
 * appending the word of a multi-grain run to the dirty list -- the commit
 * then neither flushes nor publishes it -- fails test_pmem_powerfail on
 * every seed tried (1..10 and three time seeds: "acked bit N lost", within
 * 72..394 drains).  test_pmem_crash passes that mutant, as it must: a
 * SIGKILL keeps the page cache and the CPU caches, so only the power-fail
 * images test what was flushed.  split_set_many setting the neighbour of
 * each later grain of a run fails test_pmem_crash at once ("bit 0 never
 * set").
 */
static inline void cm_split_call(struct fm_store *s, uint64_t gen, uint64_t *rng,
				 struct cm_rec *r, cm_emit_fn emit, void *arg)
{
	uint64_t id = cm_id(r->map), g[24];
	int ret;

	switch (fmt_rand(rng) % 3) {
	case 0: {
		int n = 1 + (int)(fmt_rand(rng) % 8);
		for (int k = 0; k < n; k++) {
			uint64_t grain = fmt_rand(rng) % CM_GRAINS;
			cm_intent(gen, grain, r, emit, arg);
			ret = fm_store_split_set(s, id, gen, grain);
			if (ret < 0)
				cm_die("split_set", ret);
		}
		break;
	}
	case 1: {
		size_t n = 1 + (size_t)(fmt_rand(rng) % 24);
		for (size_t k = 0; k < n; k++) {
			uint64_t how = k ? fmt_rand(rng) % 4 : 3;
			if (how <= 1) /* continue a run */
				g[k] = (g[k - 1] + 1) % CM_GRAINS;
			else if (how == 2) /* repeat an earlier grain */
				g[k] = g[fmt_rand(rng) % k];
			else
				g[k] = fmt_rand(rng) % CM_GRAINS;
			cm_intent(gen, g[k], r, emit, arg);
		}
		ret = fm_store_split_set_many(s, id, gen, g, n);
		if (ret < 0)
			cm_die("split_set_many", ret);
		break;
	}
	default: {
		uint64_t len = 1 + fmt_rand(rng) % 70, first, last;
		if (fmt_rand(rng) % 4 == 0) {
			last = CM_GRAINS - 1;
			first = CM_GRAINS - len;
		} else {
			first = fmt_rand(rng) % CM_GRAINS;
			last = first + len - 1 < CM_GRAINS ? first + len - 1 : CM_GRAINS - 1;
		}
		for (uint64_t k = first; k <= last; k++)
			cm_intent(gen, k, r, emit, arg);
		ret = fm_store_split_set_range(s, id, gen, first, last);
		if (ret < 0)
			cm_die("split_set_range", ret);
		break;
	}
	}
}

/*
 * An owner record update: fm_store_owner_begin the first time on this
 * process's store (the crash test's child: once per start, as the daemon),
 * fm_store_owner_settle after.  Emits intent (the record it will write)
 * before and ack (the record as the store reports it) after.
 *
 * Checked to fail (mutant in store.c, not committed): __owner_write
 * writing the current copy instead of the other one fails
 * test_pmem_powerfail with seed 7 within 733 drains (a torn image leaves no
 * valid copy, or the record before the old one), and
 * owner__every_torn_write__old_or_new in test_pmem_store.  test_pmem_crash
 * passes it: a SIGKILL rarely lands inside the 64-byte copy.
 */
static int cm_owner_begun;

static inline void cm_owner_step(struct fm_store *s, uint64_t *rng, cm_emit_fn emit,
				 void *arg)
{
	struct fm_store_owner_info cur, prev;
	struct cm_rec r = { .type = CM_INTENT_OWNER };
	uint32_t hold = (uint32_t)(fmt_rand(rng) % 10000);
	uint64_t inc;
	int ret;

	fm_store_owner_get(s, &cur);
	r.a = cur.incarnation + !cm_owner_begun;
	r.b = cm_owner_begun || hold > cur.hold_ms ? hold : cur.hold_ms;
	emit(arg, &r);
	if (!cm_owner_begun) {
		ret = fm_store_owner_begin(s, hold, &prev, &inc);
		if (ret == 0 && (inc != r.a || prev.incarnation != cur.incarnation ||
				 prev.hold_ms != cur.hold_ms || !prev.known))
			ret = -EPROTO;
		cm_owner_begun = 1;
	} else {
		ret = fm_store_owner_settle(s, hold);
	}
	if (ret)
		cm_die("owner", ret);
	fm_store_owner_get(s, &cur);
	r.type = CM_ACK_OWNER;
	r.a = cur.incarnation;
	r.b = cur.hold_ms;
	emit(arg, &r);
}

/*
 * A group commit of everything attempted so far, in one of two ways:
 *   - fm_store_split_commit() (begin, run, end in one call);
 *   - the three phases by hand, with 0..2 more split calls between begin
 *     and run and between run and end (beside the commit: not covered by
 *     it, some in words it holds), and 1 in 8 of them abandoned (end
 *     without run: -ECANCELED, no ack, the bits wait for a later commit).
 * Emits COMMIT_BEGIN just before the swap and ACK_COMMIT once it ended.
 *
 * Checked to fail (mutant in store.c, not committed): commit_end
 * publishing the pool word instead of the value recorded at the swap
 * fails test_pmem_powerfail's view check at once ("shown, not durable"),
 * on every seed tried (1..10); test_pmem_crash passes it, as it must (a
 * SIGKILL loses the mirror with the process).  commit_end also emptying
 * the pending set (the bits set beside the commit then never get
 * flushed, yet the next commit acks them) fails test_pmem_powerfail on
 * seeds 1..5 ("acked bit N lost", within 52..119 drains).
 */
static inline void cm_commit(struct fm_store *s, uint64_t gen, uint64_t *rng,
			     struct cm_rec *r, cm_emit_fn emit, void *arg)
{
	int ret, more;

	r->type = CM_COMMIT_BEGIN;
	emit(arg, r);
	if (fmt_rand(rng) % 2) {
		ret = fm_store_split_commit(s);
		if (ret < 0)
			cm_die("commit", ret);
	} else {
		ret = fm_store_commit_begin(s);
		if (ret < 0)
			cm_die("commit_begin", ret);
		if (ret > 0) { /* 0: nothing pending, all durable */
			for (more = (int)(fmt_rand(rng) % 3); more > 0; more--)
				cm_split_call(s, gen, rng, r, emit, arg);
			if (fmt_rand(rng) % 8 == 0) {
				ret = fm_store_commit_end(s);
				if (ret != -ECANCELED)
					cm_die("commit_end without run", ret);
				return; /* abandoned: no ack */
			}
			ret = fm_store_commit_run(s);
			if (ret < 0)
				cm_die("commit_run", ret);
			for (more = (int)(fmt_rand(rng) % 3); more > 0; more--)
				cm_split_call(s, gen, rng, r, emit, arg);
			ret = fm_store_commit_end(s);
			if (ret < 0)
				cm_die("commit_end", ret);
		}
	}
	r->type = CM_ACK_COMMIT;
	emit(arg, r);
}

/* A report of 1..70 written grains (fm_store_changed_set_range) of
 * mapping r->map at `gen`: intent before, ack after (durable on return).
 *
 * Checked to fail (mutants in store.c, not committed): the refresh's F1
 * without its flush fails test_pmem_powerfail on seeds 1..3 ("bit 58 is 1
 * after the refresh, the model says 0"); the refresh not clearing the
 * changed bitmap (no F3) fails test_pmem_powerfail on seeds 1, 2 ("changed
 * bit 58 survived a new generation") and test_pmem_crash on seed 1. */
static inline void cm_changed_call(struct fm_store *s, uint64_t gen, uint64_t *rng,
				   struct cm_rec *r, cm_emit_fn emit, void *arg)
{
	uint64_t first = fmt_rand(rng) % CM_GRAINS, n = 1 + fmt_rand(rng) % 70;
	int ret;

	if (n > CM_GRAINS - first)
		n = CM_GRAINS - first;
	r->type = CM_INTENT_CHANGED;
	r->a = gen;
	r->b = first | n << 32;
	emit(arg, r);
	ret = fm_store_changed_set_range(s, cm_id(r->map), gen, first, n);
	if (ret)
		cm_die("changed_set_range", ret);
	r->type = CM_ACK_CHANGED;
	emit(arg, r);
}

/*
 * One random operation on an open store: the owner's begin first, then an
 * owner update (1 in 20), or else a report of changed grains (1 in 5), or
 * else 1..3 split calls (per bit, batch or range, see cm_split_call) + one
 * group commit (cm_commit) (70%), or a legal transition/restart/reverse/
 * refresh/changed-unknown mark (30%).  Emits intent before and ack after.
 * Exits(3) on any unexpected error.
 */
static inline void cm_step(struct fm_store *s, uint64_t *rng, cm_emit_fn emit, void *arg)
{
	uint32_t mi = (uint32_t)(fmt_rand(rng) % CM_MAPS);
	struct fm_store_map_info info;
	struct cm_rec r = { .map = mi };
	int ret;

	if (!cm_owner_begun || fmt_rand(rng) % 20 == 0) {
		cm_owner_step(s, rng, emit, arg);
		return;
	}
	if (fm_store_map_get(s, cm_id(mi), &info))
		cm_die("map_get", -1);
	if (fmt_rand(rng) % 5 == 0) {
		cm_changed_call(s, info.map.generation, rng, &r, emit, arg);
		return;
	}
	if (fmt_rand(rng) % 10 < 7 && (info.map.state == FM_MAP_COPYING ||
				      info.map.state == FM_MAP_STOPPING)) {
		int calls = 1 + (int)(fmt_rand(rng) % 3);
		for (int k = 0; k < calls; k++)
			cm_split_call(s, info.map.generation, rng, &r, emit, arg);
		cm_commit(s, info.map.generation, rng, &r, emit, arg);
		return;
	}
	/* choose a legal event; COPY_COMPLETE only when complete */
	int evs[FM_MAP_EV_COUNT + 4], nev = 0;
	for (int ev = 0; ev < FM_MAP_EV_COUNT; ev++) {
		if (fm_map_next_state(info.map.state, ev) < 0)
			continue;
		if (ev == FM_MAP_EV_COPY_COMPLETE && info.split_count != CM_GRAINS)
			continue;
		evs[nev++] = ev;
	}
	if (fmt_rand(rng) % 8 == 0)
		evs[nev++] = CM_EV_RESTART;
	if (fmt_rand(rng) % 4 == 0 && fm_mapping_reverse(&info.map, &(struct fm_mapping){ 0 }) == 0)
		evs[nev++] = CM_EV_REVERSE;
	if (fmt_rand(rng) % 3 == 0 && !info.reversed &&
	    (info.map.state == FM_MAP_COPYING || info.map.state == FM_MAP_IDLE_OR_COPIED))
		evs[nev++] = CM_EV_REFRESH;
	if (fmt_rand(rng) % 10 == 0)
		evs[nev++] = CM_EV_UNKNOWN;
	if (nev == 0)
		return;
	r.type = CM_INTENT_TR;
	r.a = (uint64_t)evs[fmt_rand(rng) % nev];
	emit(arg, &r);
	if (r.a == CM_EV_RESTART)
		ret = fm_store_map_restart(s, cm_id(mi), NULL);
	else if (r.a == CM_EV_REVERSE)
		ret = fm_store_map_reverse(s, cm_id(mi), 0, NULL);
	else if (r.a == CM_EV_REFRESH)
		ret = fm_store_map_refresh(s, cm_id(mi), 0, NULL);
	else if (r.a == CM_EV_UNKNOWN)
		ret = fm_store_changed_unknown(s, cm_id(mi), info.map.generation);
	else
		ret = fm_store_map_transition(s, cm_id(mi), (enum fm_map_event)r.a, NULL);
	if (ret)
		cm_die("transition", ret);
	if (fm_store_map_get(s, cm_id(mi), &info))
		cm_die("map_get", -1);
	r.type = CM_ACK_TR;
	r.a = (uint64_t)info.map.state;
	r.b = info.map.generation;
	emit(arg, &r);
}

#endif
