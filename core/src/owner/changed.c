/* changed.c -- the owner's side of the changed sets (wire 2.4): what
 * clients report written goes to the store (FM_ACT_CHANGED), and a
 * session whose writes may be missing marks the set changed-unknown.
 *
 * The claim an incremental refresh rests on (flashmeta/pmem_store.h
 * fm_store_map_refresh): when a revoke of map M completes (NOTE REVOKED),
 * every grain written to either volume of M in its current generation is
 * durably in M's changed set, or M is durably changed-unknown.  Why:
 *
 *  1. A client writes M only inside a bracket of a grant of M
 *     (proto_client.h), and records the grains before it issues the write
 *     (fm_client_record_write): no write lands unrecorded.
 *  2. A grant counts at the owner (mstate != NONE) from the moment it is
 *     sent until the session's RELEASED of it, or until the session is
 *     released after its end (R4: quiesced, dead or expired -- no write of
 *     it can land any more).
 *  3. RELEASED comes after the client's brackets of M drained, so its
 *     recorded set is complete then, and the client sends it as
 *     CHANGE_REPORTs BEFORE the RELEASED on the same ordered connection.
 *     The owner queues the CHANGED action of each report as it arrives,
 *     so by the time it counts the RELEASED, every report before it is
 *     in flight or durable; and the revoke does not complete while a
 *     CHANGED of M is in flight (ow_maps_check_revoke: `changes`).  So a
 *     RELEASED counts only once every report before it is durable.
 *  4. A session whose grant ends any other way -- fenced, lease lost,
 *     crashed, a BYE without its reports, a client before 2.4 that never
 *     reports -- gets M marked changed-unknown (ow_changed_unknown) at
 *     that moment, again a CHANGED action the revoke waits for.  Only a
 *     2.4 client's in-band BYE{QUIESCED} vouches that its reports came
 *     first (it sends them right before it: client session.c) -- unless
 *     the session sent a report the owner refused for its own map (grains
 *     beyond it) or a message that did not decode: then its word is not
 *     taken and the set is marked all the same.
 *  5. No new grant of M is sent between the revoke's completion and the
 *     driver's store operation (the map is withheld until
 *     fm_owner_map_update), so nothing can be written in between.
 * A report the owner refuses (map not held by the session, another
 * generation, grains beyond the map) changes nothing by itself (the last
 * kind costs the session its vouch, 4.); a report the store
 * failed to record (-EIO) marks the set changed-unknown instead, and a
 * mark that failed is asked again at every tick -- the revoke waits.
 */
#include <errno.h>

#include "flashmeta/error.h"
#include "owner_priv.h"

static void queue_changed(struct fm_owner *o, unsigned slot, uint64_t generation,
			  const struct fm_msg_change_report *r)
{
	struct omap *mp = &o->maps[slot];
	struct oop *op = ow_op_new(o, OP_CHANGED);
	struct fm_action *a;

	if (!op)
		return; /* the machine stops (ow_owner_oom) */
	op->slot = slot;
	op->generation = generation;
	op->unknown = !r;
	a = fm_actq_push(&o->q);
	a->type = FM_ACT_CHANGED;
	a->conn = FM_CONN_LOCAL;
	a->op_id = op->id;
	a->u.persist.map_id = mp->d.map_id;
	a->u.persist.generation = generation;
	a->u.persist.range_count = r ? r->range_count : 0;
	for (unsigned i = 0; r && i < r->range_count; i++)
		a->u.persist.ranges[i] = r->ranges[i];
	mp->changes++;
}

void ow_changed_unknown(struct fm_owner *o, unsigned slot)
{
	o->st.changed_unknown++;
	queue_changed(o, slot, o->maps[slot].d.generation, NULL);
}

void ow_changed_on_report(struct fm_owner *o, struct osess *s, const struct fm_msg *m)
{
	const struct fm_msg_change_report *r = &m->u.report;
	int slot = ow_map_slot(o, r->map_id);
	int err = 0;

	/* in this order, one errno each (wire.h CHANGE_REPORT) */
	if (slot < 0 || s->mstate[slot] == MS_NONE)
		err = fm_err(-ENOENT, "owner: change report of map %llu, not held by client %u",
			     (unsigned long long)r->map_id, s->client_id);
	else if (r->generation != o->maps[slot].d.generation)
		err = fm_err(-ESTALE, "owner: change report of map %llu generation %llu; it is"
			     " at %llu", (unsigned long long)r->map_id,
			     (unsigned long long)r->generation,
			     (unsigned long long)o->maps[slot].d.generation);
	else if (r->ranges[r->range_count - 1].last >= o->maps[slot].d.grain_count)
		/* ascending (wire.c): the last range ends highest */
		err = fm_err(-ERANGE, "owner: change report of map %llu: grain %llu beyond its"
			     " %llu", (unsigned long long)r->map_id,
			     (unsigned long long)r->ranges[r->range_count - 1].last,
			     (unsigned long long)o->maps[slot].d.grain_count);
	if (err == -ERANGE)
		s->report_refused = true; /* its set is not what it wrote (4.) */
	if (err) {
		o->st.change_reports_refused++;
		ow_send_error(o, s, m->seq, err);
		return;
	}
	o->st.change_reports++;
	queue_changed(o, (unsigned)slot, r->generation, r);
}

void ow_changed_done(struct fm_owner *o, struct oop *op, int status)
{
	struct omap *mp = &o->maps[op->slot];

	mp->changes--;
	/* the set is gone or never kept: nothing was owed */
	if (status == -ESTALE || status == -ENOENT || status == -EOPNOTSUPP)
		status = 0;
	if (status && op->unknown) {
		mp->unknown_retry = true; /* the revoke waits for it */
		mp->unknown_gen = op->generation;
	} else if (status && mp->d.generation == op->generation) {
		/* a report not recorded: the set may miss its grains */
		ow_changed_unknown(o, op->slot);
	}
	ow_maps_check_revoke(o, op->slot);
}

void ow_changed_tick(struct fm_owner *o)
{
	for (unsigned i = 0; i < o->cfg.max_maps; i++) {
		struct omap *mp = &o->maps[i];

		if (!mp->used || !mp->unknown_retry)
			continue;
		mp->unknown_retry = false;
		if (mp->unknown_gen == mp->d.generation)
			ow_changed_unknown(o, i);
		else
			ow_maps_check_revoke(o, i);
	}
}
