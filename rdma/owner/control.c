/* control.c -- the owner's control commands: one line each (the commands
 * and answers are in ownerd.h), and the deferred map operations that wait
 * for the state machine's FM_NOTE_REVOKED.  The socket is ctl_socket.c's,
 * the way answers go out ctl_reply.c's.
 *
 * Trigger (map-start), in this order:
 *   1. fm_owner_map_revoke(RESTART): RELEASE_REQUEST to holders;
 *   2. FM_NOTE_REVOKED: every holder answered RELEASED (caches discarded,
 *      I/O drained) or was fenced, and no PERSIST of the map is in flight;
 *   3. fm_store_map_transition(START): bitmap cleared and generation bumped,
 *      durably, in one step;
 *   4. clear the published bitmap region;
 *   5. fm_owner_map_update(): MAP_GRANT of the new generation.
 *
 * Copy complete (od_maps_copy_check, from the timer): a COPYING mapping
 * whose every grain is split -- by the background copy or by foreground
 * I/O -- is revoked with reason COPIED like a transition an operator
 * asked for (nobody is answered), then COPY_COMPLETE makes it
 * idle_or_copied in the store, then the new descriptor is granted: no
 * client plans copy-on-write for it after it released the old one.  A
 * mapping marked autodelete is deleted there instead of granted.  The
 * flag is the pool slot's (format 1.2: map-create ... autodelete writes it
 * in the create's own logged step, map-autodelete as a slot image); a
 * 1.1/1.0 pool has no room for it and the owner keeps it in DRAM only.
 *
 * Restore (map-restore ID), the trigger's order with another step 3:
 *   0. refused before anything is revoked when the pool cannot (format
 *      older than 1.3, no free slot), the state is wrong (only copying,
 *      or idle_or_copied after a trigger), the mapping is in a group, or
 *      its reverse would make a cascade with another mapping;
 *   1. fm_owner_map_revoke(RESTART): every client drains, as for a trigger;
 *   2. FM_NOTE_REVOKED;
 *   3. fm_store_map_reverse: durably, the mapping S->T becomes T->S,
 *      COPYING, generation + 1, its split bitmap NOT the old one (store.c,
 *      restore, has the crash order);
 *   4. publish the new bitmap (not cleared: most of it may be split);
 *   5. MAP_GRANT of the new generation, flagged REVERSED: engines swap the
 *      volumes they attached.
 * Why NOT the old bitmap is right.  At step 3 no client holds the mapping
 * and every split is durable (a split is durable only after its data).
 * For a grain split in S->T, T holds T's image of it (the source's data
 * at the trigger, or a later target write): the restore must copy it T->S,
 * so it is unsplit in T->S.  For a grain unsplit in S->T, T's image IS the
 * current data of S -- T reads it from S, and any write to S or to T
 * would have split it first (copy-on-write) -- so S already holds what
 * the restore wants: split in T->S, nothing to copy.  From step 5 on, the
 * engines do the rest generically for T->S: a read of S of an unsplit
 * grain reads T, a write to T copies the grain to S first, a write to S
 * of a whole grain just splits it, and the background copy (at the
 * mapping's rate) copies the others; at 100% it completes like any copy.
 * From then on T is the source and no point-in-time image of anything:
 * the grains the copy S->T had not split read what T's volume holds (they
 * were read from S until the restore: T is left like the target of a
 * stopped mapping), and its writes reach S only as copy-on-write keeps
 * S's image at the restore.  S carries the image.  A stopped mapping is refused (its target is no image: there
 * is nothing to restore), and so is a prepared one (a trigger is being
 * prepared).
 *
 * Refresh (map-refresh ID), the trigger's order with another step 3:
 *   0. refused before anything is revoked when the store would refuse it
 *      (fm_store_map_refresh's check: pool older than 1.4, a state other
 *      than copying or idle_or_copied, a restored mapping), the mapping was
 *      never started (no image to refresh), or it is in a group (-EBUSY,
 *      od_group_refuse);
 *   1. fm_owner_map_revoke(RESTART): every client drains and, before its
 *      RELEASED, reports the grains it wrote (CHANGE_REPORT, wire 2.4);
 *   2. FM_NOTE_REVOKED: every report is durable in the changed set, or the
 *      set is marked changed-unknown (a session that could have written
 *      ended without reporting: core/src/owner/changed.c has the
 *      argument), and no grant goes out until step 5 -- so the set holds
 *      every write of the generation when step 3 reads it;
 *   3. fm_store_map_refresh: durably, generation + 1, COPYING, split :=
 *      split AND NOT changed (everything unsplit if changed-unknown), the
 *      changed set emptied (store.c, refresh, has why and the crash
 *      order);
 *   4. publish the bitmap (fewer bits than before: the changed grains
 *      read through to the source again);
 *   5. MAP_GRANT of the new generation.  The background copy recopies the
 *      unsplit grains; a grain split and unchanged is not copied again.
 *
 * Consistency groups (group-*) have their own file, groups.c: every
 * member revoked together, one crash-atomic trigger for all.  A member's
 * own map-prepare/start/restart/stop is refused here (od_group_refuse).
 *
 * Delete (map-delete ID [force]), in this order:
 *   1. fm_owner_map_revoke(REMOVE): every client drops the mapping;
 *   2. FM_NOTE_REVOKED (as above: released or fenced, no PERSIST in
 *      flight);
 *   3. force only (the mapping was neither idle_or_copied nor stopped):
 *      STOP (and STOP_DONE) in the store, durably -- from here on the
 *      target is no point-in-time image, whatever happens next;
 *   4. fm_owner_map_remove: no longer served; -EBUSY while a lock-table or
 *      bitmap operation of it is in flight, then the timer tries again;
 *   5. fm_store_map_delete: the slot and its bitmap freed, durably;
 *   6. the regions deregistered (peers' accesses with the old keys fail).
 * If 5 fails, the mapping is served again from what the pool holds.
 *
 * Transition timeout: a revoke not complete after
 * cfg.transition_timeout_ms is given up (fm_owner_map_revoke_cancel): the
 * command fails ETIMEDOUT naming the clients that did not release, and
 * nothing in the pool changed.  A client that renews its lease but does
 * not answer is never taken for drained (lease.h R1: it may still trust
 * its cache); nor is it fenced -- it is alive and in its lease, and only
 * the operator knows whether its I/O should be waited for.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "flashmeta/copy.h"
#include "flashmeta/ctl.h"
#include "flashmeta/error.h"
#include "flashmeta/geometry.h"
#include "flashmeta/input.h"
#include "flashmeta/lease.h"
#include "flashmeta/lockword.h"
#include "flashmeta/mapping.h"
#include "flashmeta/pmem_store.h"
#include "ownerd_priv.h"

/*
 * One mapping, one line.  Background copy progress (copy.h):
 *   split-pct    grains split of all, in percent (rounded down: 100 only
 *                when every grain is split)
 *   rate, rate-bytes-per-s   the copy rate and its bytes/s
 *   eta-s        seconds left at the rate for the unsplit grains, while
 *                COPYING; -1: never (rate 0); 0 otherwise
 *   copiers      client sessions copying a batch of it now
 *   copy-grains-out, copy-grains-returned, copy-batches   grains in
 *                those batches, grains back in the pool, batches handed
 *                out in this generation (fm_owner_copy_info)
 *   autodelete   1: deleted when its copy completes (map-autodelete)
 *   group        its consistency group, 0: none (groups.c)
 *   reversed     1: restored (map-restore) an odd number of times: source
 *                and target are swapped against map-create; the volume
 *                restored from (now the source) is no point-in-time
 *                image of anything any more
 *   changed      grains written (either volume) since the generation began,
 *                as the clients reported them durably (wire 2.4): what
 *                map-refresh recopies of the split grains
 *   changed-unknown  1: a session that could have written ended without
 *                its report (or an owner restarted, or the pool is older
 *                than format 1.4): the next refresh recopies every grain
 */
void od_ctl_show(struct fm_ownerd *d, int fd, struct od_map *m)
{
	struct fm_store_map_info info;
	struct fm_owner_copy_info ci = { 0 };
	uint64_t bps, left, pct, changed = 0;
	int64_t eta = 0;
	bool unknown;
	int rc;

	if (fm_store_map_get(d->store, m->id, &info))
		return;
	(void)fm_owner_copy_info(d->o, m->id, &ci);
	/* a pool before 1.4 keeps no changed set: shown as unknown */
	rc = fm_store_changed_count(d->store, m->id, &changed);
	unknown = rc != 0;
	if (rc < 0)
		changed = 0;
	bps = fm_copy_rate_bps(info.map.copy_rate);
	left = info.map.geom.grain_count - info.split_count;
	pct = info.split_count * 100 / info.map.geom.grain_count;
	if (info.map.state == FM_MAP_COPYING && left)
		eta = bps ? (int64_t)(((left << info.map.geom.grain_shift) + bps - 1) / bps) : -1;
	od_ctl_printf(fd, "map %" PRIu64 " source %" PRIu64 " target %" PRIu64
		   " size %" PRIu64 " grain %u grains %" PRIu64 " state %s generation %" PRIu64
		   " split %" PRIu64 " served-generation %" PRIu64 " revoking %d split-pct %"
		   PRIu64 " rate %" PRIu32 " rate-bytes-per-s %" PRIu64 " eta-s %" PRId64
		   " copiers %u copy-grains-out %" PRIu64 " copy-grains-returned %" PRIu64
		   " copy-batches %" PRIu64 " autodelete %d group %" PRIu64 " reversed %d"
		   " changed %" PRIu64 " changed-unknown %d\n",
		   m->id, info.map.source_vol, info.map.target_vol, info.map.geom.volume_size,
		   1u << info.map.geom.grain_shift, info.map.geom.grain_count,
		   fm_map_state_name(info.map.state), info.map.generation, info.split_count,
		   m->d.generation, m->pend ? 1 : 0, pct, info.map.copy_rate, bps, eta,
		   ci.copiers, ci.grains_out, ci.grains_returned, ci.batches_handed,
		   m->autodelete ? 1 : 0, info.group, info.reversed ? 1 : 0, changed,
		   unknown ? 1 : 0);
}

/* The end of a deferred command: what `show` (if any) and `line` (if
 * any) say on success, then "ok" or the error; the connection's later
 * lines run after it.  fd -1: nobody asked (copy complete, autodelete). */
void od_ctl_answer_begin(struct fm_ownerd *d, int fd)
{
	struct od_ctl *c = od_ctl_by_fd(d, fd);

	if (c && c->json)
		od_ctl_json_begin(fd, c->jtext);
}

void od_ctl_answer_end(struct fm_ownerd *d, int fd, int rc)
{
	struct od_ctl *c = od_ctl_by_fd(d, fd);

	od_ctl_result(fd, rc);
	if (c && c->json) {
		od_ctl_json_send(fd);
		c->json = false;
		free(c->jtext);
		c->jtext = NULL;
	}
	if (c) {
		c->busy = false;
		c->last_ms = od_now_ms(); /* idle from its answer on */
		od_ctl_process(d, c);
	}
}

static void ctl_answer(struct fm_ownerd *d, int fd, int rc, struct od_map *show,
		       const char *line)
{
	od_ctl_answer_begin(d, fd);
	if (rc == 0 && show)
		od_ctl_show(d, fd, show);
	if (rc == 0 && line)
		od_ctl_printf(fd, "%s\n", line);
	od_ctl_answer_end(d, fd, rc);
}

/* Steps 4..6 of a delete (top of this file); again from the timer while
 * the state machine answers -EBUSY.  `m` is gone (or re-attached) after
 * anything but that. */
static void map_remove_try(struct fm_ownerd *d, struct od_map *m)
{
	struct fm_store_map_info info;
	char line[160], msg[256];
	uint64_t id = m->id;
	int fd = m->pend_fd, forced = m->force, autodel = m->autodelete, rc;
	const char *was = "?";

	rc = fm_owner_map_remove(d->o, id);
	if (rc == -EBUSY)
		return; /* 4. an operation of it in flight: the next tick */
	if (fm_store_map_get(d->store, id, &info) == 0)
		was = fm_map_state_name(info.map.state);
	if (rc == 0)
		rc = fm_store_map_delete(d->store, id); /* 5. */
	if (rc) {
		snprintf(msg, sizeof(msg), "%s", fm_errormsg());
		od_log(FM_LOGLVL_ERR, "map %" PRIu64 ": delete: %s; serving it again", id, msg);
		od_map_detach(m);
		if (od_map_attach(d, id))
			od_log(FM_LOGLVL_ERR, "map %" PRIu64 ": serving it again: %s", id,
			       fm_errormsg());
		rc = fm_err(rc, "map %" PRIu64 ": delete: %s", id, msg);
		ctl_answer(d, fd, rc, NULL, NULL);
		return;
	}
	od_map_detach(m); /* 6. */
	od_log(FM_LOGLVL_INFO, "map %" PRIu64 ": deleted (%s%s%s)", id, was,
	       forced ? ", forced" : "", autodel ? ", autodelete" : "");
	snprintf(line, sizeof(line), "deleted map %" PRIu64 " state %s forced %d autodelete %d",
		 id, was, forced, autodel);
	ctl_answer(d, fd, 0, NULL, line);
}

/* After REVOKED, a delete: step 3 (force), then 4..6 */
static int map_delete_revoked(struct fm_ownerd *d, struct od_map *m, int fd)
{
	struct fm_mapping mp;
	int rc = 0;

	if (m->force) {
		rc = fm_store_map_transition(d->store, m->id, FM_MAP_EV_STOP, &mp);
		if (!rc && mp.state == FM_MAP_STOPPING)
			rc = fm_store_map_transition(d->store, m->id, FM_MAP_EV_STOP_DONE, &mp);
		if (rc)
			return rc; /* served again as the store says, answered */
		od_log(FM_LOGLVL_WARN, "map %" PRIu64 ": stopped for a forced delete: target "
		       "volume is no point-in-time image any more", m->id);
	}
	m->pend = OD_PEND_DELETE;
	m->pend_fd = fd;
	m->removing = true;
	map_remove_try(d, m);
	return 0;
}

/*
 * After REVOKED: apply the pending operation to the store (durable),
 * clear the published bitmap when the store cleared it, then serve the new
 * descriptor (step 3..5 of the trigger, see the top of this file).
 */
void od_map_complete(struct fm_ownerd *d, struct od_map *m)
{
	struct fm_mapping mp;
	struct fm_store_map_info info;
	struct fm_store_refresh ref;
	char refline[200] = "";
	int rc = 0, fd = m->pend_fd;
	enum od_pend op = m->pend;
	uint64_t gen;

	if (op == OD_PEND_GROUP) {
		od_group_revoked(d, m); /* groups.c: when every member is in */
		return;
	}
	m->pend = OD_PEND_NONE;
	m->pend_fd = -1;
	switch (op) {
	case OD_PEND_PREPARE:
		rc = fm_store_map_transition(d->store, m->id, FM_MAP_EV_PREPARE, &mp);
		if (!rc)
			rc = fm_store_map_transition(d->store, m->id, FM_MAP_EV_PREPARE_DONE, &mp);
		break;
	case OD_PEND_START:
		/* 3. durable: state COPYING, bitmap cleared, generation++ */
		rc = fm_store_map_transition(d->store, m->id, FM_MAP_EV_START, &mp);
		break;
	case OD_PEND_RESTART:
		rc = fm_store_map_restart(d->store, m->id, &gen);
		break;
	case OD_PEND_REFRESH:
		/* 3. durable: COPYING, generation++, split AND NOT changed */
		rc = fm_store_map_refresh(d->store, m->id, 0, &ref);
		if (!rc) {
			snprintf(refline, sizeof(refline), "refreshed map %" PRIu64 " generation %"
				 PRIu64 " kept %" PRIu64 " dropped %" PRIu64 " full %d", m->id,
				 ref.map.generation, ref.kept, ref.dropped, ref.full ? 1 : 0);
			od_log(FM_LOGLVL_INFO, "map %" PRIu64 ": refreshed: %" PRIu64 " grains kept, %"
			       PRIu64 " split ones to copy again%s", m->id, ref.kept, ref.dropped,
			       ref.full ? " (changed set unknown: every grain)" : "");
		}
		break;
	case OD_PEND_RESTORE:
		/* 3. durable: reversed, COPYING, generation++, bitmap inverted */
		rc = fm_store_map_reverse(d->store, m->id, 0, &mp);
		if (!rc)
			od_log(FM_LOGLVL_WARN, "map %" PRIu64 ": restoring volume %" PRIu64
			       " from volume %" PRIu64 ": volume %" PRIu64 " is no point-in-time "
			       "image any more", m->id, mp.target_vol, mp.source_vol,
			       mp.source_vol);
		break;
	case OD_PEND_STOP:
		rc = fm_store_map_transition(d->store, m->id, FM_MAP_EV_STOP, &mp);
		if (!rc && mp.state == FM_MAP_STOPPING)
			rc = fm_store_map_transition(d->store, m->id, FM_MAP_EV_STOP_DONE, &mp);
		break;
	case OD_PEND_COMPLETE:
		/* every grain split (od_maps_copy_check), every holder released */
		rc = fm_store_map_transition(d->store, m->id, FM_MAP_EV_COPY_COMPLETE, &mp);
		if (!rc && m->autodelete) {
			od_log(FM_LOGLVL_INFO, "map %" PRIu64 ": copy complete, autodelete: "
			       "deleting", m->id);
			m->force = false; /* idle_or_copied now: nothing to stop */
			(void)map_delete_revoked(d, m, fd);
			return; /* answered by map_remove_try, now or later */
		}
		break;
	case OD_PEND_DELETE:
		rc = map_delete_revoked(d, m, fd);
		if (!rc)
			return; /* answered by map_remove_try, now or later */
		m->force = false;
		break;
	default:
		return;
	}
	if (rc)
		od_log(FM_LOGLVL_ERR, "map %" PRIu64 ": %s", m->id, fm_errormsg());
	/* whatever happened, serve what the store now says */
	if (fm_store_map_get(d->store, m->id, &info) == 0) {
		if (info.map.generation != m->d.generation &&
		    (op == OD_PEND_RESTORE || op == OD_PEND_REFRESH)) {
			/* 4. restore: the inverted bits; refresh: the kept ones */
			od_desc_from_store(m, &info);
			od_publish_words(d, m, 0, (m->d.grain_count + 63) / 64 - 1);
		} else if (info.map.generation != m->d.generation) {
			od_publish_clear(m); /* 4. nothing of the new generation is split */
		}
		od_desc_from_store(m, &info);
	}
	if (fm_owner_map_update(d->o, &m->d)) /* 5. MAP_GRANT */
		od_log(FM_LOGLVL_ERR, "map %" PRIu64 ": update: %s", m->id, fm_errormsg());
	od_log(FM_LOGLVL_INFO, "map %" PRIu64 ": now %s, generation %" PRIu64, m->id,
	       fm_map_state_name((enum fm_map_state)m->d.state), m->d.generation);
	ctl_answer(d, fd, rc, m, *refline ? refline : NULL);
}

/* every mapping in the store, for fm_mapping_admit; the loop thread's */
static struct fm_mapping ctl_all[FM_OWNER_MAX_MAPS];

/* Step 0 of a restore (top of this file): what the store would refuse,
 * and a reverse that would make a cascade with another mapping. */
static int restore_check(struct fm_ownerd *d, uint64_t id)
{
	uint64_t ids[FM_OWNER_MAX_MAPS];
	struct fm_mapping rev;
	struct fm_store_map_info info;
	size_t n = 0;
	int rc, nids;

	rc = fm_store_map_reverse(d->store, id, FM_STORE_REVERSE_CHECK, NULL);
	if (rc)
		return rc;
	if ((rc = fm_store_map_get(d->store, id, &info)) ||
	    (rc = fm_mapping_reverse(&info.map, &rev)))
		return rc;
	nids = fm_store_map_list(d->store, ids, FM_OWNER_MAX_MAPS);
	for (int i = 0; i < nids && i < (int)FM_OWNER_MAX_MAPS; i++) {
		struct fm_store_map_info o;

		if (ids[i] != id && fm_store_map_get(d->store, ids[i], &o) == 0)
			ctl_all[n++] = o.map;
	}
	rc = fm_mapping_admit(ctl_all, n, &rev);
	if (rc) {
		char why[200];

		snprintf(why, sizeof(why), "%s", fm_errormsg()); /* fm_err writes it */
		return fm_err(rc, "map %" PRIu64 ": a restore copies volume %" PRIu64 " to volume %"
			      PRIu64 ", refused: %s", id, rev.source_vol, rev.target_vol, why);
	}
	return 0;
}

/* Step 0 of a refresh (top of this file): what the store would refuse,
 * and a mapping never triggered -- it has no image to renew: map-prepare
 * and map-start make its first one (the prepare flushes what clients
 * cache, which a refresh of an image nobody asked for would skip). */
static int refresh_check(struct fm_ownerd *d, uint64_t id)
{
	struct fm_store_map_info info;
	int rc;

	if ((rc = fm_store_map_get(d->store, id, &info)))
		return rc;
	if (info.map.state == FM_MAP_IDLE_OR_COPIED && info.map.generation == 0)
		return fm_err(-EPERM, "mapping %" PRIu64 " was never started: there is no image "
			      "to refresh; map-prepare and map-start it", id);
	return fm_store_map_refresh(d->store, id, FM_STORE_REFRESH_CHECK, NULL);
}

static int ctl_map_op(struct fm_ownerd *d, int fd, uint64_t id, enum od_pend op)
{
	static const uint32_t reason[] = {
		[OD_PEND_PREPARE] = FM_RELEASE_ADMIN, [OD_PEND_START] = FM_RELEASE_RESTART,
		[OD_PEND_RESTART] = FM_RELEASE_RESTART, [OD_PEND_STOP] = FM_RELEASE_STOP,
		[OD_PEND_RESTORE] = FM_RELEASE_RESTART, [OD_PEND_REFRESH] = FM_RELEASE_RESTART,
	};
	struct od_map *m = od_map_find(d, id);
	int rc;

	if (!m)
		return fm_err(-ENOENT, "map %" PRIu64 " unknown", id);
	if (m->pend)
		return fm_err(-EALREADY, "map %" PRIu64 ": an operation is in progress", id);
	/* a member's point in time is its group's (groups.c) */
	if ((rc = od_group_refuse(d, id, op == OD_PEND_PREPARE ? "map-prepare" :
				  op == OD_PEND_START ? "map-start" : op == OD_PEND_RESTART ?
				  "map-restart" : op == OD_PEND_RESTORE ? "map-restore" :
				  op == OD_PEND_REFRESH ? "map-refresh" : "map-stop")))
		return rc;
	if (op == OD_PEND_RESTORE && (rc = restore_check(d, id)))
		return rc; /* 0. nothing revoked */
	if (op == OD_PEND_REFRESH && (rc = refresh_check(d, id)))
		return rc; /* 0. nothing revoked */
	/* 1. withdraw every confirmation lease; the rest runs on REVOKED */
	rc = fm_owner_map_revoke(d->o, id, reason[op], od_now_ms());
	if (rc)
		return rc;
	od_log(FM_LOGLVL_INFO, "map %" PRIu64 ": revoking confirmations", id);
	m->pend = op;
	m->pend_fd = fd;
	m->pend_since = od_now_ms();
	return 1; /* answer later */
}

/* map-delete ID [force] (av[1..]): idle_or_copied or stopped, or forced;
 * the rest runs on REVOKED (top of this file) */
static int ctl_delete(struct fm_ownerd *d, int fd, char **av, int ac)
{
	struct fm_store_map_info info;
	bool force = false, idle;
	struct od_map *m;
	uint64_t id;
	int rc;

	if ((rc = fm_u64_parse("map id", av[1], 0, UINT64_MAX, &id)))
		return rc;
	if (ac == 3) {
		if (strcmp(av[2], "force"))
			return fm_err(-EINVAL, "usage: map-delete ID [force] ('%.20s' is not "
				      "force)", av[2]);
		force = true;
	}
	if (!(m = od_map_find(d, id)) || fm_store_map_get(d->store, id, &info))
		return fm_err(-ENOENT, "map %" PRIu64 " unknown", id);
	if (m->pend)
		return fm_err(-EALREADY, "map %" PRIu64 ": %s", id, m->pend == OD_PEND_DELETE ?
			      "being deleted" : "an operation is in progress");
	idle = info.map.state == FM_MAP_IDLE_OR_COPIED || info.map.state == FM_MAP_STOPPED;
	if (!idle && !force)
		return fm_err(-EBUSY, "map %" PRIu64 " is %s: map-delete takes a mapping that is "
			      "idle_or_copied or stopped; map-stop it first, or map-delete %"
			      PRIu64 " force (its target is then no point-in-time image)", id,
			      fm_map_state_name(info.map.state), id);
	/* 1. every client drops it; the rest runs on REVOKED */
	rc = fm_owner_map_revoke(d->o, id, FM_RELEASE_REMOVE, od_now_ms());
	if (rc)
		return rc;
	if (!idle)
		od_log(FM_LOGLVL_WARN, "map %" PRIu64 ": forced delete while %s: target volume %"
		       PRIu64 " will be no point-in-time image", id,
		       fm_map_state_name(info.map.state), info.map.target_vol);
	od_log(FM_LOGLVL_INFO, "map %" PRIu64 ": deleting, revoking confirmations", id);
	m->pend = OD_PEND_DELETE;
	m->pend_fd = fd;
	m->pend_since = od_now_ms();
	m->force = !idle;
	return 1; /* answer later */
}

/* map-autodelete ID on|off: durable in the pool's slot (format 1.2), at
 * once; a 1.1/1.0 pool has no room for it: then in DRAM only, said in
 * the log and the answer's line (an owner restart forgets it there) */
static int ctl_autodelete(struct fm_ownerd *d, int fd, char **av)
{
	struct od_map *m;
	uint64_t id;
	bool on;
	int rc;

	if ((rc = fm_u64_parse("map id", av[1], 0, UINT64_MAX, &id)))
		return rc;
	if (strcmp(av[2], "on") && strcmp(av[2], "off"))
		return fm_err(-EINVAL, "usage: map-autodelete ID on|off ('%.20s')", av[2]);
	if (!(m = od_map_find(d, id)))
		return fm_err(-ENOENT, "map %" PRIu64 " unknown", id);
	if (m->pend == OD_PEND_DELETE)
		return fm_err(-EALREADY, "map %" PRIu64 ": being deleted", id);
	on = !strcmp(av[2], "on");
	rc = fm_store_map_set_autodelete(d->store, id, on);
	if (rc && rc != -EOPNOTSUPP)
		return rc;
	m->autodelete = on;
	od_log(rc ? FM_LOGLVL_WARN : FM_LOGLVL_INFO, "map %" PRIu64 ": autodelete %s%s", id,
	       av[2], rc ? " (in memory only: the pool is older than format 1.2)" : "");
	od_ctl_show(d, fd, m);
	if (rc)
		od_ctl_printf(fd, "autodelete map %" PRIu64 " durable 0\n", id);
	return 0;
}

static const char *const pend_name[] = {
	[OD_PEND_NONE] = "-", [OD_PEND_PREPARE] = "map-prepare", [OD_PEND_START] = "map-start",
	[OD_PEND_RESTART] = "map-restart", [OD_PEND_STOP] = "map-stop",
	[OD_PEND_COMPLETE] = "copy complete", [OD_PEND_DELETE] = "map-delete",
	[OD_PEND_GROUP] = "group operation", [OD_PEND_RESTORE] = "map-restore",
	[OD_PEND_REFRESH] = "map-refresh",
};

/* A pending revoke that ran out of time: given up, the command answered
 * ETIMEDOUT naming whom it waited for; nothing in the pool changed. */
static void pend_timeout(struct fm_ownerd *d, struct od_map *m, uint64_t now)
{
	struct fm_owner_holder h[4];
	struct fm_store_map_info info;
	char who[128];
	size_t n, len = 0;
	enum od_pend op = m->pend;
	int fd = m->pend_fd, rc;

	/* the message has room for four (fm_errormsg: 256 bytes) */
	n = fm_owner_map_holders(d->o, m->id, h, 4);
	who[0] = '\0';
	for (size_t i = 0; i < n && i < 4; i++)
		len += (size_t)snprintf(who + len, len < sizeof(who) ? sizeof(who) - len : 0,
					"%sclient %u (%s)", i ? ", " : "", h[i].client_id,
					fm_osess_state_name(h[i].state));
	if (n > 4 && len < sizeof(who))
		snprintf(who + len, sizeof(who) - len, " and %zu more", n - 4);
	if (!n)
		snprintf(who, sizeof(who), "no client (split commits of it in flight)");
	/* -EINVAL: the revoke completed and its REVOKED waits in the action
	 * queue: it completes the command, not this */
	if (fm_owner_map_revoke_cancel(d->o, m->id))
		return;
	m->pend = OD_PEND_NONE;
	m->pend_fd = -1;
	m->force = false;
	(void)fm_store_map_get(d->store, m->id, &info);
	od_log(FM_LOGLVL_WARN, "map %" PRIu64 ": %s given up after %" PRIu64 " ms, not released "
	       "by %s; the mapping stays %s", m->id, pend_name[op], now - m->pend_since, who,
	       fm_map_state_name(info.map.state));
	rc = fm_err(-ETIMEDOUT, "map %" PRIu64 ": %s: not released after %u ms by %s; nothing "
		    "changed, the mapping stays %s", m->id, pend_name[op],
		    d->cfg.transition_timeout_ms, who, fm_map_state_name(info.map.state));
	ctl_answer(d, fd, rc, NULL, NULL);
}

void od_maps_pend_tick(struct fm_ownerd *d, uint64_t now)
{
	for (unsigned i = 0; i < OD_MAX_MAPS; i++) {
		struct od_map *m = &d->maps[i];

		if (!m->used || !m->pend || m->pend == OD_PEND_GROUP)
			continue; /* a group's members: od_groups_tick */
		if (m->removing)
			map_remove_try(d, m);
		else if (now - m->pend_since >= d->cfg.transition_timeout_ms)
			pend_timeout(d, m, now);
	}
}

/* map-rate ID RATE: durable first, then the state machine hands out
 * batches at it; copiers learn it from their next COPY_BATCH */
static int ctl_rate(struct fm_ownerd *d, int fd, char **av)
{
	uint64_t id, rate;
	struct od_map *m;
	int rc;

	if ((rc = fm_u64_parse("map id", av[1], 0, UINT64_MAX, &id)) ||
	    (rc = fm_u64_parse("copy rate", av[2], 0, FM_COPY_RATE_MAX, &rate)))
		return rc;
	if (!(m = od_map_find(d, id)))
		return fm_err(-ENOENT, "map %" PRIu64 " unknown", id);
	rc = fm_store_map_set_rate(d->store, id, (uint32_t)rate);
	if (rc)
		return rc;
	rc = fm_owner_map_rate(d->o, id, (uint32_t)rate);
	if (rc)
		return rc;
	od_log(FM_LOGLVL_INFO, "map %" PRIu64 ": copy rate %" PRIu64 " (%" PRIu64 " bytes/s)",
	       id, rate, fm_copy_rate_bps((uint32_t)rate));
	od_ctl_show(d, fd, m);
	return 0;
}

void od_maps_copy_check(struct fm_ownerd *d)
{
	for (unsigned i = 0; i < OD_MAX_MAPS; i++) {
		struct od_map *m = &d->maps[i];
		struct fm_store_map_info info;
		int rc;

		if (!m->used || m->pend || m->d.state != FM_MAP_COPYING ||
		    fm_store_map_get(d->store, m->id, &info) ||
		    info.map.state != FM_MAP_COPYING ||
		    info.split_count != info.map.geom.grain_count)
			continue;
		/* during the restart grace: -EAGAIN, the next tick tries again */
		rc = fm_owner_map_revoke(d->o, m->id, FM_RELEASE_COPIED, od_now_ms());
		if (rc)
			continue;
		od_log(FM_LOGLVL_INFO, "map %" PRIu64 ": every grain split: copy complete, "
		       "revoking confirmations", m->id);
		m->pend = OD_PEND_COMPLETE;
		m->pend_fd = -1;
		m->pend_since = od_now_ms();
	}
}

static int ctl_status(struct fm_ownerd *d, int fd)
{
	struct fm_store_stats ss;
	struct fm_owner_stats os;
	struct fm_caps caps;

	fm_store_stats(d->store, &ss);
	fm_owner_stats(d->o, &os);
	fm_transport_caps(d->t, &caps);
	od_ctl_printf(fd, "listen %s transport %s device %s\n", d->cfg.listen, caps.provider,
		   caps.device);
	od_ctl_printf(fd, "store %s persist %s view %s mappings %u/%u commits %" PRIu64 "\n",
		   d->cfg.pmem_path, ss.persist_mode, fm_store_view_name(ss.view), ss.mappings,
		   ss.max_mappings, ss.commits);
	od_ctl_printf(fd, "connections %zu sessions-active %" PRIu64 " closed %" PRIu64
		   " auth-failures %" PRIu64 " malformed %" PRIu64 " fences %" PRIu64 "\n",
		   d->nconns, os.sessions_active, os.sessions_closed, os.auth_failures,
		   os.malformed, os.fences);
	od_ctl_printf(fd, "locks requests %" PRIu64 " grants %" PRIu64 " reclaimed %" PRIu64
		   " commits %" PRIu64 " acks %" PRIu64 "\n", os.lock_requests, os.lock_grants,
		   os.locks_reclaimed, os.commits, os.acks);
	/* background copy, all mappings: claims answered, batches handed out,
	 * grains given back to the pool (a copier stopped or left) */
	od_ctl_printf(fd, "copy claims %" PRIu64 " batches %" PRIu64 " grains-returned %" PRIu64
		   " read-failures %" PRIu64 "\n", os.copy_claims, os.copy_batches,
		   os.copy_returned, os.copy_read_failures);
	/* split bits by message (wire 2.2, the decide-by-message baseline):
	 * queries received, refused over the per-session bound, READs failed */
	od_ctl_printf(fd, "split-queries received %" PRIu64 " refused-busy %" PRIu64
		   " read-failures %" PRIu64 "\n", os.queries, os.queries_refused,
		   os.query_read_failures);
	{
		uint64_t tc, tp;

		pthread_mutex_lock(&d->cm.mu);
		tc = d->cm.commits;
		tp = d->cm.persists;
		pthread_mutex_unlock(&d->cm.mu);
		/* grouping: PERSISTs answered per store commit (one drain each) */
		od_ctl_printf(fd, "group-commit persists %" PRIu64 " store-commits %" PRIu64
			   " drains %" PRIu64 " commit-waits %" PRIu64 " splits-pending %" PRIu64
			   " splits-committing %" PRIu64 " thread-commits %" PRIu64
			   " thread-persists %" PRIu64 "\n", d->persists_done, ss.commits,
			   ss.drains, ss.commit_waits, ss.splits_pending, ss.splits_committing, tc,
			   tp);
	}
	od_ctl_printf(fd, "incarnation %" PRIu64 " restart-grace-left-ms %" PRIu64
		   " sessions-closing %" PRIu64 " released-quiesced %" PRIu64 " released-dead %"
		   PRIu64 " released-expired %" PRIu64 " fence-retries %" PRIu64
		   " scan-failures %" PRIu64
		   " lock-requests-refused %" PRIu64 "\n", d->incarnation,
		   fm_owner_grace_left(d->o, od_now_ms()), os.sessions_closing,
		   os.released_quiesced, os.released_dead, os.released_expired,
		   os.fence_retries, os.scan_failures, os.lock_requests_refused);
	for (unsigned i = 0; i < OD_MAX_MAPS; i++)
		if (d->maps[i].used)
			od_ctl_show(d, fd, &d->maps[i]);
	return 0;
}

/* map-create ID SRC TGT SIZE [GRAIN] [autodelete] (av[1..]) */
static int ctl_create(struct fm_ownerd *d, char **av, int ac)
{
	uint64_t id, src, tgt, size, grain = 0, ids[FM_OWNER_MAX_MAPS];
	struct fm_store_stats ss;
	struct fm_mapping m;
	bool autodel = false;
	size_t n = 0;
	int rc, nids;

	if (ac > 5 && !strcmp(av[ac - 1], "autodelete")) {
		autodel = true;
		ac--;
	}
	if ((rc = fm_u64_parse("map id", av[1], 0, UINT64_MAX, &id)) ||
	    (rc = fm_u64_parse("source volume", av[2], 0, UINT64_MAX, &src)) ||
	    (rc = fm_u64_parse("target volume", av[3], 0, UINT64_MAX, &tgt)) ||
	    (rc = fm_u64_parse("size", av[4], 1, FM_VOLUME_SIZE_MAX, &size)) ||
	    (ac == 6 && (rc = fm_u64_parse("grain", av[5], 0, UINT64_C(1) << FM_GRAIN_SHIFT_MAX,
					   &grain))))
		return rc;
	if (ac > 6)
		return fm_err(-EINVAL, "usage: map-create ID SRC TGT SIZE [GRAIN] [autodelete]");
	if (od_map_find(d, id))
		return fm_err(-EEXIST, "map %" PRIu64 " exists", id);
	rc = fm_mapping_init(&m, id, src, tgt, size, grain);
	if (rc)
		return rc;
	/* the limits between mappings (mapping.h): every one in the pool */
	nids = fm_store_map_list(d->store, ids, FM_OWNER_MAX_MAPS);
	for (int i = 0; i < nids && i < (int)FM_OWNER_MAX_MAPS; i++) {
		struct fm_store_map_info info;

		if (fm_store_map_get(d->store, ids[i], &info) == 0)
			ctl_all[n++] = info.map;
	}
	rc = fm_mapping_admit(ctl_all, n, &m);
	if (rc)
		return rc;
	/* autodelete in the same logged step (format 1.2); an older pool has
	 * no room for it: created without, kept in DRAM (below) */
	rc = fm_store_map_create_opt(d->store, &m, autodel ? FM_STORE_CREATE_AUTODELETE : 0);
	if (rc == -EOPNOTSUPP && autodel)
		rc = fm_store_map_create(d->store, &m);
	if (rc == -ENOSPC) {
		fm_store_stats(d->store, &ss);
		return fm_err(-ENOSPC, "the pool holds at most %u mappings (pool_max_maps when it "
			      "was created) and has %u: map-delete one first", ss.max_mappings,
			      ss.mappings);
	}
	if (rc == -EFBIG)
		return fm_err(-EFBIG, "map %" PRIu64 ": %" PRIu64 " grains of %" PRIu64 " bytes, more "
			      "than the pool holds per mapping (pool_max_grains when it was "
			      "created): a larger GRAIN, or a new pool", id, m.geom.grain_count,
			      UINT64_C(1) << m.geom.grain_shift);
	if (rc)
		return rc;
	rc = od_map_attach(d, id);
	if (rc) {
		int keep = rc;

		(void)fm_store_map_delete(d->store, id);
		return keep;
	}
	if (autodel) {
		struct od_map *om = od_map_find(d, id);
		bool durable = om->autodelete; /* od_map_attach read the slot */

		om->autodelete = true;
		od_log(durable ? FM_LOGLVL_INFO : FM_LOGLVL_WARN, "map %" PRIu64 ": autodelete on%s",
		       id, durable ? "" : " (in memory only: the pool is older than format 1.2)");
	}
	return 0;
}

/* sessions: one line per session the state machine knows */
static int ctl_sessions(struct fm_ownerd *d, int fd)
{
	struct fm_owner_session_info v[64];
	uint64_t now = od_now_ms();
	size_t n = fm_owner_sessions(d->o, v, 64, now);

	for (size_t i = 0; i < n && i < 64; i++)
		od_ctl_printf(fd, "session %" PRIu64 " client %u epoch %u token 0x%016" PRIx64
			   " state %s lease-left-ms %" PRId64 " quiesced %d commits %u"
			   " lock-waits %u age-ms %" PRIu64 "\n", v[i].conn, v[i].client_id,
			   v[i].epoch, v[i].epoch ? fm_lease_token(d->incarnation, v[i].epoch) : 0,
			   fm_osess_state_name(v[i].state), v[i].lease_left_ms,
			   v[i].quiesced ? 1 : 0, v[i].commits, v[i].waits, v[i].age_ms);
	if (n > 64)
		od_ctl_printf(fd, "sessions-not-shown %zu\n", n - 64);
	return 0;
}

/*
 * lock-show MAP GRAIN: the lock word covering the grain, decoded, and
 * what the owner knows of its holder and its waiters, with the times it
 * really has.  An uncontended acquisition is a client's one-sided CAS the
 * owner never sees, so when the holder took the word is the holder's
 * business (fm_agent_locks on the client); here, in the owner's monotonic
 * clock:
 *   holder-session, holder-lease-left-ms  the session of the word's
 *       (client, epoch): its state and lease left, or "gone"
 *   holder-session-age-ms  how long ago that session's epoch began (the
 *       word cannot be older: an upper bound of how long it is held)
 *   waiters-queued, oldest-waiter-client, oldest-waiter-ms  the
 *       LOCK_REQUESTs queued for the word (of active sessions), who asked
 *       first and how long ago that request arrived; 0 when nobody waits
 * A value the owner does not have is 0 (the state and holder-session
 * fields say why), so the line always has the same keys.
 */
static int ctl_lock_show(struct fm_ownerd *d, int fd, char **av)
{
	struct fm_owner_session_info v[64];
	struct fm_owner_lock_info li;
	uint64_t id, grain, w, idx, age = 0, now = od_now_ms();
	const char *who = "none";
	struct od_map *m;
	size_t n;
	int64_t left = 0;
	int rc;

	if ((rc = fm_u64_parse("map id", av[1], 0, UINT64_MAX, &id)) ||
	    (rc = fm_u64_parse("grain", av[2], 0, UINT64_MAX, &grain)))
		return rc;
	if (!(m = od_map_find(d, id)))
		return fm_err(-ENOENT, "map %" PRIu64 " unknown", id);
	if (grain >= m->d.grain_count)
		return fm_err(-ERANGE, "map %" PRIu64 ": grain %" PRIu64 " beyond %" PRIu64, id,
			      grain, m->d.grain_count);
	if (!m->locks)
		return fm_err(-EAGAIN, "map %" PRIu64 ": no lock table (restart grace)", id);
	idx = fm_lockword_index(grain, m->d.lock_shift);
	w = __atomic_load_n((const uint64_t *)fm_region_ptr(m->locks) + idx, __ATOMIC_ACQUIRE);
	if (w != FM_LOCKWORD_FREE) {
		n = fm_owner_sessions(d->o, v, 64, now);
		who = "gone"; /* a word of a session the owner no longer has */
		for (size_t i = 0; i < n && i < 64; i++)
			if (v[i].client_id == fm_lockword_client(w) &&
			    v[i].epoch == fm_lockword_epoch(w)) {
				who = fm_osess_state_name(v[i].state);
				left = v[i].lease_left_ms;
				age = v[i].age_ms;
			}
	}
	rc = fm_owner_lock_info(d->o, id, idx, now, &li);
	if (rc)
		return rc;
	od_ctl_printf(fd, "lock map %" PRIu64 " grain %" PRIu64 " word-index %" PRIu64
		   " word 0x%016" PRIx64 " state %s client %u epoch %u waiters %d"
		   " holder-session %s holder-lease-left-ms %" PRId64
		   " holder-session-age-ms %" PRIu64 " waiters-queued %u oldest-waiter-client %u"
		   " oldest-waiter-ms %" PRIu64 "\n", id, grain, idx, w,
		   w == FM_LOCKWORD_FREE ? "free" :
		   (fm_lockword_flags(w) & FM_LOCKWORD_F_HELD) ? "held" : "handing-over",
		   fm_lockword_client(w), fm_lockword_epoch(w),
		   (fm_lockword_flags(w) & FM_LOCKWORD_F_WAITERS) ? 1 : 0, who, left, age,
		   li.waiters, li.oldest_client, li.oldest_wait_ms);
	return 0;
}

#define CTL_COMMANDS "status, maps, sessions, map-create ID SRC TGT SIZE [GRAIN] [autodelete], " \
	"map-show ID, lock-show MAP GRAIN, map-prepare ID, map-start ID, map-restart ID, " \
	"map-stop ID, map-restore ID, map-refresh ID, map-rate ID RATE, map-delete ID [force], map-autodelete ID on|off, " \
	"group-create G MAP..., group-add G MAP..., group-remove G MAP..., group-show [G], " \
	"group-prepare G, group-start G, group-stop G, group-delete G, quit"

/* tokens of a line, the command's name included: a group-create of
 * OD_GROUP_MAX members (ids of up to 12 digits fit OD_CTL_LINE) */
#define CTL_ARGS_MAX (OD_GROUP_MAX + 2)

/* the commands: how many arguments, and what runs them */
enum ctl_kind { CTL_STATUS, CTL_SESSIONS, CTL_LOCK_SHOW, CTL_CREATE, CTL_SHOW, CTL_MAP_OP,
		CTL_RATE, CTL_DELETE, CTL_AUTODELETE, CTL_GROUP };

static const struct ctl_cmd {
	const char *name;
	int min_args, max_args; /* after the name */
	enum ctl_kind kind;
	enum od_pend op;        /* CTL_MAP_OP */
	const char *usage;
} ctl_cmds[] = {
	{ "status", 0, 0, CTL_STATUS, OD_PEND_NONE, "status" },
	{ "maps", 0, 0, CTL_STATUS, OD_PEND_NONE, "maps" },
	{ "sessions", 0, 0, CTL_SESSIONS, OD_PEND_NONE, "sessions" },
	{ "lock-show", 2, 2, CTL_LOCK_SHOW, OD_PEND_NONE, "lock-show MAP GRAIN" },
	{ "map-create", 4, 6, CTL_CREATE, OD_PEND_NONE,
	  "map-create ID SRC TGT SIZE [GRAIN] [autodelete]" },
	{ "map-show", 1, 1, CTL_SHOW, OD_PEND_NONE, "map-show ID" },
	{ "map-prepare", 1, 1, CTL_MAP_OP, OD_PEND_PREPARE, "map-prepare ID" },
	{ "map-start", 1, 1, CTL_MAP_OP, OD_PEND_START, "map-start ID" },
	{ "map-restart", 1, 1, CTL_MAP_OP, OD_PEND_RESTART, "map-restart ID" },
	{ "map-stop", 1, 1, CTL_MAP_OP, OD_PEND_STOP, "map-stop ID" },
	{ "map-restore", 1, 1, CTL_MAP_OP, OD_PEND_RESTORE, "map-restore ID" },
	{ "map-refresh", 1, 1, CTL_MAP_OP, OD_PEND_REFRESH, "map-refresh ID" },
	{ "map-rate", 2, 2, CTL_RATE, OD_PEND_NONE, "map-rate ID RATE (0..150)" },
	{ "map-delete", 1, 2, CTL_DELETE, OD_PEND_NONE, "map-delete ID [force]" },
	{ "map-autodelete", 2, 2, CTL_AUTODELETE, OD_PEND_NONE, "map-autodelete ID on|off" },
	/* groups.c checks the member count against OD_GROUP_MAX */
	{ "group-create", 2, CTL_ARGS_MAX - 1, CTL_GROUP, OD_PEND_NONE, "group-create G MAP..." },
	{ "group-add", 2, CTL_ARGS_MAX - 1, CTL_GROUP, OD_PEND_NONE, "group-add G MAP..." },
	{ "group-remove", 2, CTL_ARGS_MAX - 1, CTL_GROUP, OD_PEND_NONE, "group-remove G MAP..." },
	{ "group-show", 0, 1, CTL_GROUP, OD_PEND_NONE, "group-show [G]" },
	{ "group-prepare", 1, 1, CTL_GROUP, OD_PEND_PREPARE, "group-prepare G" },
	{ "group-start", 1, 1, CTL_GROUP, OD_PEND_START, "group-start G" },
	{ "group-stop", 1, 1, CTL_GROUP, OD_PEND_STOP, "group-stop G" },
	{ "group-delete", 1, 1, CTL_GROUP, OD_PEND_NONE, "group-delete G" },
};

/* one command line; returns < 0 error, 0 done (answer "ok"), 1 deferred */
static int ctl_exec(struct fm_ownerd *d, int fd, char *line)
{
	char *av[CTL_ARGS_MAX], *save = NULL, *tok;
	const struct ctl_cmd *cmd = NULL;
	int ac = 0, rc;
	uint64_t id;
	struct od_map *m;

	for (tok = strtok_r(line, " \t\r\n", &save); tok; tok = strtok_r(NULL, " \t\r\n", &save)) {
		if (ac == CTL_ARGS_MAX)
			return fm_err(-E2BIG, "more than %d words on the line", CTL_ARGS_MAX);
		av[ac++] = tok;
	}
	if (ac == 0)
		return fm_err(-EINVAL, "empty command");
	for (size_t i = 0; i < sizeof(ctl_cmds) / sizeof(ctl_cmds[0]); i++)
		if (!strcmp(av[0], ctl_cmds[i].name))
			cmd = &ctl_cmds[i];
	if (!cmd)
		return fm_err(-EINVAL, "unknown command '%.40s' (commands: %s)", av[0],
			      CTL_COMMANDS);
	od_log(FM_LOGLVL_DEBUG, "control: %s", cmd->name);
	if (ac - 1 < cmd->min_args || ac - 1 > cmd->max_args)
		return fm_err(-EINVAL, "usage: %s", cmd->usage);
	switch (cmd->kind) {
	case CTL_STATUS:
		return ctl_status(d, fd);
	case CTL_SESSIONS:
		return ctl_sessions(d, fd);
	case CTL_LOCK_SHOW:
		return ctl_lock_show(d, fd, av);
	case CTL_CREATE:
		return ctl_create(d, av, ac);
	case CTL_RATE:
		return ctl_rate(d, fd, av);
	case CTL_DELETE:
		return ctl_delete(d, fd, av, ac);
	case CTL_AUTODELETE:
		return ctl_autodelete(d, fd, av);
	case CTL_GROUP:
		return od_group_exec(d, fd, av, ac);
	case CTL_SHOW:
	case CTL_MAP_OP:
		break;
	}
	rc = fm_u64_parse("map id", av[1], 0, UINT64_MAX, &id);
	if (rc)
		return rc;
	if (cmd->kind == CTL_MAP_OP)
		return ctl_map_op(d, fd, id, cmd->op);
	if (!(m = od_map_find(d, id)))
		return fm_err(-ENOENT, "map %" PRIu64 " unknown", id);
	od_ctl_show(d, fd, m);
	return 0;
}

/* execute buffered lines, one at a time: a deferred command (map-start...)
 * holds the rest until it answered, so a script sees answers in order.  A
 * line holding a NUL byte is answered with an error (it is no text), and
 * the lines after it run. */
void od_ctl_process(struct fm_ownerd *d, struct od_ctl *c)
{
	char *nl;

	while (c->fd >= 0 && !c->busy && (nl = memchr(c->line, '\n', c->used))) {
		size_t len = (size_t)(nl - c->line) + 1;
		char cmd[OD_CTL_LINE], *line;
		bool has_nul;
		int rc;

		memcpy(cmd, c->line, len - 1);
		cmd[len - 1] = '\0';
		has_nul = memchr(cmd, '\0', len - 1) != NULL;
		memmove(c->line, c->line + len, c->used - len + 1);
		c->used -= len;
		if (has_nul) {
			od_ctl_printf(c->fd, "error EINVAL: a NUL byte in the command line\n");
			continue;
		}
		if (!strcmp(od_trim(cmd), "quit")) {
			od_ctl_close(d, c);
			return;
		}
		if (!*od_trim(cmd))
			continue;
		fm_err_clear();
		line = od_trim(cmd);
		c->json = !strncmp(line, "json", 4) && (line[4] == ' ' || line[4] == '\t');
		if (c->json) {
			line = od_trim(line + 4);
			od_ctl_json_begin(c->fd, NULL);
		}
		rc = ctl_exec(d, c->fd, line);
		if (rc <= 0) {
			od_ctl_result(c->fd, rc);
			if (c->json)
				od_ctl_json_send(c->fd);
			c->json = false;
		} else {
			if (c->json) { /* the rest comes in od_map_complete */
				free(c->jtext);
				c->jtext = od_ctl_json_take();
			}
			c->busy = true;
		}
	}
}
