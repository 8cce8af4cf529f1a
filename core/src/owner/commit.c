/* commit.c -- SPLIT_COMMIT: "these grains are copied, durably".
 *
 * Durability order (lease.h R7):
 *  1. the client made the copied data durable before it sent SPLIT_COMMIT;
 *  2. the owner checks that the committing session holds every lock word
 *     the ranges touch (else ERROR -ENOLCK, nothing recorded);
 *  3. PERSIST: the driver makes the bits durable, then visible;
 *  4. only then SPLIT_ACK OK -- and only after it does the client write
 *     the source.
 *
 * The holder check is one loopback CAS per word with compare == swap ==
 * (client, epoch, HELD): an atomic read that changes nothing (a CAS, not a
 * READ, because only atomics are atomic against the clients' atomics).
 * Tracking holders from our own observations is not enough: the
 * uncontended acquire never reaches us.  It is sound against a later
 * reclaim because a released session's words are reclaimed only after
 * its commits finished (osess.commits, session.c), so the word cannot
 * change hands between the check and the persist -- except by the holder
 * itself releasing early, which a correct client never does before
 * SPLIT_ACK.  A session's commits in flight also count in the map's
 * `persists`, which holds back REVOKED.  Cost: one local atomic round
 * trip per word before the PERSIST (one word for a single-grain commit).
 * Limits: HOLDER_CHECK_MAX words per commit, cfg.max_commits in flight
 * per session.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "flashmeta/lockword.h"
#include "flashmeta/mapping.h"
#include "owner_priv.h"

#define HOLDER_CHECK_MAX 256u /* lock words one SPLIT_COMMIT may cover */

static void send_ack(struct fm_owner *o, struct osess *s, uint64_t map_id,
		     uint64_t generation, uint64_t commit_id, uint32_t status)
{
	struct fm_msg r;

	fm_wire_msg_init(&r, FM_MSG_SPLIT_ACK);
	r.u.ack.map_id = map_id;
	r.u.ack.generation = generation;
	r.u.ack.commit_id = commit_id;
	r.u.ack.status = status;
	ow_send_msg(o, s, &r);
}

/* the commit is over (refused, failed, or acked): undo its counts */
static void commit_end(struct fm_owner *o, struct osess *s, unsigned slot)
{
	o->maps[slot].persists--;
	ow_sess_commit_done(o, s);
	ow_maps_check_revoke(o, slot);
}

/* Every lock word of the commit was checked: persist, or refuse. */
static void commit_checked(struct fm_owner *o, struct ocommit *c)
{
	struct osess *s = ow_sess_by_id(o, c->session_id);
	struct omap *mp = &o->maps[c->slot];
	struct fm_action *a;
	struct oop *op;

	if (!s || s->state != FM_OSESS_ACTIVE) {
		/* nobody to answer; nothing recorded (the client learns
		 * -ECONNRESET from its own session closing) */
		commit_end(o, s, c->slot);
		free(c);
		return;
	}
	if (c->not_held || c->failed || mp->withheld ||
	    c->generation != mp->d.generation || mp->d.state != FM_MAP_COPYING) {
		if (c->not_held) {
			o->st.commits_refused++;
			ow_send_error(o, s, c->ref_seq, -ENOLCK);
		} else {
			send_ack(o, s, c->map_id, c->generation, c->commit_id,
				 c->failed ? FM_SPLIT_FAILED : FM_SPLIT_STALE);
		}
		commit_end(o, s, c->slot);
		free(c);
		return;
	}
	op = ow_op_new(o, OP_PERSIST);
	if (!op) {
		free(c);
		return;
	}
	/* mp->persists and s->commits carry over to the PERSIST */
	op->session_id = s->session_id;
	op->slot = c->slot;
	op->generation = c->generation;
	op->commit_id = c->commit_id;
	a = fm_actq_push(&o->q);
	a->type = FM_ACT_PERSIST;
	a->op_id = op->id;
	a->u.persist.map_id = c->map_id;
	a->u.persist.generation = c->generation;
	a->u.persist.range_count = c->range_count;
	memcpy(a->u.persist.ranges, c->ranges, c->range_count * sizeof(c->ranges[0]));
	free(c);
}

void ow_commit_holder_done(struct fm_owner *o, struct oop *op, int status, uint64_t old)
{
	struct ocommit *c = op->commit;
	struct osess *s = ow_sess_by_id(o, c->session_id);
	uint64_t want = s ? fm_lockword_make((uint16_t)s->client_id, s->epoch,
					     FM_LOCKWORD_F_HELD) : 0;

	if (status < 0)
		c->failed = true;
	else if (!s || !(fm_lockword_flags(old) & FM_LOCKWORD_F_HELD) ||
		 !fm_lockword_same_holder(old, want))
		c->not_held = true;
	if (--c->pending == 0)
		commit_checked(o, c);
}

void ow_commit_on_split(struct fm_owner *o, struct osess *s, const struct fm_msg *m)
{
	const struct fm_msg_split_commit *cm = &m->u.commit;
	int slot = ow_map_slot(o, cm->map_id);
	uint64_t want, words = 0;
	struct ocommit *c;
	struct omap *mp;
	unsigned sh;

	o->st.commits++;
	if (slot < 0) {
		ow_send_error(o, s, m->seq, -ENOENT);
		return;
	}
	mp = &o->maps[slot];
	sh = mp->d.lock_shift;
	for (unsigned i = 0; i < cm->range_count; i++) {
		if (cm->ranges[i].last >= mp->d.grain_count) {
			ow_send_error(o, s, m->seq, -ERANGE);
			return;
		}
		words += (cm->ranges[i].last >> sh) - (cm->ranges[i].first >> sh) + 1;
	}
	if (mp->withheld || cm->generation != mp->d.generation ||
	    mp->d.state != FM_MAP_COPYING) {
		send_ack(o, s, cm->map_id, cm->generation, cm->commit_id, FM_SPLIT_STALE);
		return;
	}
	if (o->in_grace) {
		/* R6: nobody holds a lock of this incarnation yet */
		o->st.commits_refused++;
		ow_send_error(o, s, m->seq, -ENOLCK);
		return;
	}
	if (words > HOLDER_CHECK_MAX) {
		ow_send_error(o, s, m->seq, -E2BIG);
		return;
	}
	if (s->commits >= o->cfg.max_commits) {
		ow_send_error(o, s, m->seq, -ENOBUFS);
		return;
	}
	c = calloc(1, sizeof(*c));
	if (!c) {
		ow_owner_oom(o);
		return;
	}
	c->session_id = s->session_id;
	c->ref_seq = m->seq;
	c->slot = (unsigned)slot;
	c->map_id = cm->map_id;
	c->generation = cm->generation;
	c->commit_id = cm->commit_id;
	c->range_count = cm->range_count;
	memcpy(c->ranges, cm->ranges, cm->range_count * sizeof(cm->ranges[0]));
	mp->persists++;
	s->commits++;
	c->pending = 1; /* held by us while issuing */
	want = fm_lockword_make((uint16_t)s->client_id, s->epoch, FM_LOCKWORD_F_HELD);
	for (unsigned i = 0; i < cm->range_count; i++) {
		for (uint64_t w = cm->ranges[i].first >> sh; w <= cm->ranges[i].last >> sh; w++) {
			struct oop *op = ow_op_new(o, OP_HOLDER);
			struct fm_action *a;

			if (!op)
				return; /* latched: the machine is dead */
			op->commit = c;
			op->session_id = s->session_id;
			op->slot = (unsigned)slot;
			c->pending++;
			a = ow_local_op(o, op, FM_ACT_CAS, &mp->d.locks, w * 8);
			a->u.io.compare = want;
			a->u.io.swap = want;
		}
	}
	if (--c->pending == 0)
		commit_checked(o, c);
}

void ow_commit_persist_done(struct fm_owner *o, struct oop *op, int status)
{
	struct osess *s = ow_sess_by_id(o, op->session_id);
	struct omap *mp = &o->maps[op->slot];

	if (s && s->state == FM_OSESS_ACTIVE) {
		send_ack(o, s, mp->d.map_id, op->generation, op->commit_id,
			 status == 0 ? FM_SPLIT_OK :
			 status == -ESTALE ? FM_SPLIT_STALE : FM_SPLIT_FAILED);
		o->st.acks++;
	}
	commit_end(o, s, op->slot);
}
