/* groups.c -- consistency groups: several mappings prepared, started
 * (triggered at one point in time: a database's data and log volumes) and
 * stopped as one.
 *
 * A group is the set of mappings whose pool slots carry its id (format
 * 1.2, pmem_store.h); the owner keeps no other record, so a group with no
 * member does not exist and an owner restart finds its groups in the pool.
 * A pool older than 1.2 has no room: every group command fails EOPNOTSUPP.
 *
 * Membership (group-create, group-add, group-remove, group-delete) is one
 * logged slot image per member, each durable on its own: a crash in the
 * middle of group-create leaves the members set so far in the group
 * (group-show says which; group-add or group-delete finishes the job).
 * It changes no state, so it needs no revoke.
 *
 * Member-level transitions (map-prepare, map-start, map-restart, map-stop)
 * of a member are refused, naming the group (od_group_refuse): a member
 * started alone would take its own point in time while the operator
 * believes the group's holds -- the error a group exists to prevent.  To
 * act on one member alone, group-remove it first.  map-delete of a member
 * is allowed (the mapping and its membership go together), and so is a
 * member's copy completing (and autodelete) on its own: neither moves a
 * point in time.
 *
 * Group start (group-start G), in this order:
 *   1. checks, nothing done if one fails: the group has members, at most
 *      OD_GROUP_MAX; each is served, has no operation pending and is
 *      PREPARED;
 *   2. fm_owner_map_revoke(RESTART) of EVERY member (a revoke that cannot
 *      begin gives up those begun, as in 5);
 *   3. FM_NOTE_REVOKED of each member: it waits, NOT granted again, until
 *      every member is in -- clients' I/O on the first members drained
 *      stalls meanwhile: that stall is the price of one point in time;
 *   4. when the last member is in -- no client holds any member, none can
 *      have I/O in flight on any of them: the point in time --
 *      fm_store_group_start: START of every member in one crash-atomic
 *      step (store.c: the lead's GROUP_PENDING slot image is the commit
 *      point; after a crash the store's open completes it before the owner
 *      grants anything, and nothing was granted since 2), then each member
 *      is granted its new generation (bitmap cleared first, as map-start);
 *   5. a member not released within cfg.transition_timeout_ms: the whole
 *      command fails ETIMEDOUT naming the clients, nothing in the pool
 *      changed; members already in are served again as they were, the
 *      others' revokes cancelled (fm_owner_map_revoke_cancel; one whose
 *      REVOKED is already queued is served again when it comes).
 * group-prepare and group-stop run the same revoke of every member first
 * and then PREPARE (+ PREPARE_DONE) / STOP (+ STOP_DONE) member by member
 * (each durable; no atomicity is needed: neither moves a point in time),
 * then grant all.
 *
 * At most OD_GOPS_MAX group operations are in flight at once, one per
 * group.  Everything here runs on the owner's loop thread.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "flashmeta/ctl.h"
#include "flashmeta/error.h"
#include "flashmeta/input.h"
#include "flashmeta/mapping.h"
#include "flashmeta/pmem_store.h"
#include "ownerd_priv.h"

static const char *gop_name(enum od_pend op)
{
	return op == OD_PEND_PREPARE ? "group-prepare" : op == OD_PEND_START ? "group-start" :
	       "group-stop";
}

/* Members of group g (1..), at most OD_GROUP_MAX; their count or -errno */
static int members(struct fm_ownerd *d, uint64_t g, uint64_t *ids)
{
	int n = fm_store_group_members(d->store, g, ids, OD_GROUP_MAX);

	if (n > (int)OD_GROUP_MAX)
		return fm_err(-E2BIG, "group %" PRIu64 ": %d members, an owner handles %u",
			      g, n, OD_GROUP_MAX);
	return n;
}

static struct od_gop *gop_of(struct fm_ownerd *d, uint64_t g)
{
	for (unsigned i = 0; i < OD_GOPS_MAX; i++)
		if (d->gops[i].used && d->gops[i].group == g)
			return &d->gops[i];
	return NULL;
}

int od_group_refuse(struct fm_ownerd *d, uint64_t id, const char *cmd)
{
	struct fm_store_map_info info;

	if (fm_store_map_get(d->store, id, &info) || !info.group)
		return 0;
	return fm_err(-EBUSY, "map %" PRIu64 " is in consistency group %" PRIu64 ": %s of one "
		      "member would give it its own point in time; group-prepare/start/stop %"
		      PRIu64 ", or group-remove %" PRIu64 " %" PRIu64 " first", id, info.group,
		      cmd, info.group, info.group, id);
}

/* "group G members N maps a,b states s,t operation OP" */
static void group_line(struct fm_ownerd *d, int fd, uint64_t g)
{
	uint64_t ids[OD_GROUP_MAX];
	char maps[OD_GROUP_MAX * 21 + 1] = "", states[OD_GROUP_MAX * 16 + 1] = "";
	size_t lm = 0, ls = 0;
	struct od_gop *gp = gop_of(d, g);
	int n = members(d, g, ids);

	for (int i = 0; i < n; i++) {
		struct fm_store_map_info info;
		const char *st = "?";

		if (fm_store_map_get(d->store, ids[i], &info) == 0)
			st = fm_map_state_name(info.map.state);
		lm += (size_t)snprintf(maps + lm, sizeof(maps) - lm, "%s%" PRIu64, i ? "," : "",
				       ids[i]);
		ls += (size_t)snprintf(states + ls, sizeof(states) - ls, "%s%s", i ? "," : "", st);
	}
	od_ctl_printf(fd, "group %" PRIu64 " members %d maps %s states %s operation %s\n", g,
		      n < 0 ? 0 : n, n > 0 ? maps : "-", n > 0 ? states : "-",
		      gp ? gop_name(gp->op) : "-");
}

/* MAP... of a membership command (av[from..ac)): each served, no repeat */
static int parse_maps(struct fm_ownerd *d, char **av, int from, int ac, uint64_t *ids, int *n)
{
	int rc;

	*n = 0;
	for (int i = from; i < ac; i++) {
		if ((rc = fm_u64_parse("map id", av[i], 0, UINT64_MAX, &ids[*n])))
			return rc;
		if (!od_map_find(d, ids[*n]))
			return fm_err(-ENOENT, "map %" PRIu64 " unknown", ids[*n]);
		for (int k = 0; k < *n; k++)
			if (ids[k] == ids[*n])
				return fm_err(-EINVAL, "map %" PRIu64 " named twice", ids[k]);
		(*n)++;
	}
	return 0;
}

/* group-create G MAP... (exists: EEXIST) / group-add G MAP... (must exist) */
static int group_join(struct fm_ownerd *d, int fd, char **av, int ac, uint64_t g, bool create)
{
	uint64_t ids[OD_GROUP_MAX + 1], have[OD_GROUP_MAX];
	int n, nh, rc = 0, done = 0;

	if (ac - 2 > (int)OD_GROUP_MAX)
		return fm_err(-E2BIG, "a group has at most %u members", OD_GROUP_MAX);
	if ((rc = parse_maps(d, av, 2, ac, ids, &n)))
		return rc;
	if ((nh = members(d, g, have)) < 0)
		return nh;
	if (create && nh)
		return fm_err(-EEXIST, "group %" PRIu64 " exists (%d members): group-add %" PRIu64
			      " MAP..., or group-delete %" PRIu64 " first", g, nh, g, g);
	if (!create && !nh)
		return fm_err(-ENOENT, "group %" PRIu64 " unknown: group-create %" PRIu64
			      " MAP...", g, g);
	if (gop_of(d, g))
		return fm_err(-EALREADY, "group %" PRIu64 ": an operation is in progress", g);
	if (nh + n > (int)OD_GROUP_MAX)
		return fm_err(-E2BIG, "group %" PRIu64 ": %d members and %d more, at most %u", g,
			      nh, n, OD_GROUP_MAX);
	for (int i = 0; i < n; i++) {
		struct fm_store_map_info info;
		struct od_map *m = od_map_find(d, ids[i]);

		if (fm_store_map_get(d->store, ids[i], &info))
			return fm_err(-ENOENT, "map %" PRIu64 " unknown", ids[i]);
		if (info.group)
			return fm_err(info.group == g ? -EEXIST : -EBUSY, "map %" PRIu64 " is %s "
				      "group %" PRIu64 "%s", ids[i], info.group == g ? "already in" :
				      "in", info.group, info.group == g ? "" :
				      ": a mapping is in one group at most");
		if (m->pend)
			return fm_err(-EALREADY, "map %" PRIu64 ": an operation is in progress",
				      ids[i]);
	}
	for (; done < n; done++) {
		rc = fm_store_map_set_group(d->store, ids[done], g);
		if (rc)
			break;
	}
	if (rc) {
		char msg[256];

		snprintf(msg, sizeof(msg), "%s", fm_errormsg());
		while (done-- > 0) /* best effort: what was joined leaves again */
			(void)fm_store_map_set_group(d->store, ids[done], 0);
		return fm_err(rc, "group %" PRIu64 ": %s", g, msg);
	}
	od_log(FM_LOGLVL_INFO, "group %" PRIu64 ": %s, %d member(s) joined", g,
	       create ? "created" : "grown", n);
	group_line(d, fd, g);
	return 0;
}

/* group-remove G MAP... (each must be in G) / group-delete G (every one) */
static int group_leave(struct fm_ownerd *d, int fd, char **av, int ac, uint64_t g, bool all)
{
	uint64_t ids[OD_GROUP_MAX + 1];
	int n = 0, rc;

	if (all) {
		if ((n = members(d, g, ids)) < 0)
			return n;
		if (!n)
			return fm_err(-ENOENT, "group %" PRIu64 " unknown", g);
	} else {
		if (ac - 2 > (int)OD_GROUP_MAX)
			return fm_err(-E2BIG, "a group has at most %u members", OD_GROUP_MAX);
		if ((rc = parse_maps(d, av, 2, ac, ids, &n)))
			return rc;
	}
	if (gop_of(d, g))
		return fm_err(-EALREADY, "group %" PRIu64 ": an operation is in progress", g);
	for (int i = 0; i < n && !all; i++) {
		struct fm_store_map_info info;

		if (fm_store_map_get(d->store, ids[i], &info) || info.group != g)
			return fm_err(-EINVAL, "map %" PRIu64 " is not in group %" PRIu64, ids[i],
				      g);
	}
	for (int i = 0; i < n; i++)
		if ((rc = fm_store_map_set_group(d->store, ids[i], 0)))
			return fm_err(rc, "group %" PRIu64 ": map %" PRIu64 " (%d of %d left "
				      "already): %s", g, ids[i], i, n, fm_errormsg());
	od_log(FM_LOGLVL_INFO, "group %" PRIu64 ": %d member(s) left%s", g, n,
	       all ? ", group deleted" : "");
	if (all)
		od_ctl_printf(fd, "deleted group %" PRIu64 " members %d\n", g, n);
	else
		group_line(d, fd, g);
	return 0;
}

/* group-show [G]: G's line and its members' map lines; or every group's
 * line, in ascending group order */
static int group_show(struct fm_ownerd *d, int fd, char **av, int ac)
{
	uint64_t g, ids[OD_GROUP_MAX], last = 0;
	int n, rc;

	if (ac == 2) {
		if ((rc = fm_u64_parse("group id", av[1], 1, UINT64_MAX, &g)))
			return rc;
		if ((n = members(d, g, ids)) < 0)
			return n;
		if (!n)
			return fm_err(-ENOENT, "group %" PRIu64 " unknown", g);
		group_line(d, fd, g);
		for (int i = 0; i < n; i++) {
			struct od_map *m = od_map_find(d, ids[i]);

			if (m)
				od_ctl_show(d, fd, m);
		}
		return 0;
	}
	for (;;) { /* the smallest group id above `last`: O(maps) per group */
		struct fm_store_map_info info;
		uint64_t next = 0;

		for (unsigned i = 0; i < OD_MAX_MAPS; i++)
			if (d->maps[i].used && !fm_store_map_get(d->store, d->maps[i].id, &info) &&
			    info.group > last && (!next || info.group < next))
				next = info.group;
		if (!next)
			return 0;
		group_line(d, fd, next);
		last = next;
	}
}

/* Serve member `m` again as the store has it (a new generation: the
 * published bitmap cleared first) -- step 4's grant, or 5's "as it was". */
static void member_serve(struct fm_ownerd *d, struct od_map *m)
{
	struct fm_store_map_info info;

	m->pend = OD_PEND_NONE;
	m->pend_fd = -1;
	m->grevoked = m->gabandoned = false;
	if (fm_store_map_get(d->store, m->id, &info) == 0) {
		if (info.map.generation != m->d.generation)
			od_publish_clear(m); /* nothing of the new generation is split */
		od_desc_from_store(m, &info);
	}
	if (fm_owner_map_update(d->o, &m->d)) /* MAP_GRANT */
		od_log(FM_LOGLVL_ERR, "map %" PRIu64 ": update: %s", m->id, fm_errormsg());
}

/* Give a group operation up (step 5, or a revoke that could not begin):
 * members in are served again as they were, the others' revokes
 * cancelled; nothing in the pool changed. */
static void gop_abandon(struct fm_ownerd *d, struct od_gop *gp, unsigned issued)
{
	for (unsigned i = 0; i < issued; i++) {
		struct od_map *m = od_map_find(d, gp->ids[i]);

		if (!m || m->pend != OD_PEND_GROUP)
			continue;
		if (m->grevoked) {
			member_serve(d, m);
		} else if (fm_owner_map_revoke_cancel(d->o, m->id) == 0) {
			/* the state machine serves it again as it was */
			m->pend = OD_PEND_NONE;
			m->grevoked = m->gabandoned = false;
		} else {
			m->gabandoned = true; /* REVOKED queued: served when it comes */
		}
	}
	gp->used = false;
}

/* group-prepare/start/stop G: steps 1..2 (top of this file) */
static int group_op(struct fm_ownerd *d, int fd, uint64_t g, enum od_pend op)
{
	static const uint32_t reason[] = {
		[OD_PEND_PREPARE] = FM_RELEASE_ADMIN, [OD_PEND_START] = FM_RELEASE_RESTART,
		[OD_PEND_STOP] = FM_RELEASE_STOP,
	};
	uint64_t ids[OD_GROUP_MAX];
	struct od_gop *gp = NULL;
	uint64_t now = od_now_ms();
	int n, rc;

	/* 1. */
	if ((n = members(d, g, ids)) < 0)
		return n;
	if (!n)
		return fm_err(-ENOENT, "group %" PRIu64 " unknown", g);
	if (gop_of(d, g))
		return fm_err(-EALREADY, "group %" PRIu64 ": an operation is in progress", g);
	for (int i = 0; i < n; i++) {
		struct fm_store_map_info info;
		struct od_map *m = od_map_find(d, ids[i]);
		bool ok;

		if (!m || fm_store_map_get(d->store, ids[i], &info))
			return fm_err(-ENOENT, "group %" PRIu64 ": map %" PRIu64 " not served", g,
				      ids[i]);
		if (m->pend)
			return fm_err(-EALREADY, "group %" PRIu64 ": map %" PRIu64 ": an operation "
				      "is in progress: nothing done", g, ids[i]);
		ok = op == OD_PEND_START ? info.map.state == FM_MAP_PREPARED :
		     fm_map_next_state(info.map.state, op == OD_PEND_PREPARE ? FM_MAP_EV_PREPARE :
				       FM_MAP_EV_STOP) >= 0;
		if (!ok)
			return fm_err(-EPERM, "group %" PRIu64 ": map %" PRIu64 " is %s; %s needs "
				      "every member %s: nothing done", g, ids[i],
				      fm_map_state_name(info.map.state), gop_name(op),
				      op == OD_PEND_START ? "prepared" : op == OD_PEND_PREPARE ?
				      "idle_or_copied or stopped" :
				      "preparing, prepared or copying");
	}
	for (unsigned i = 0; i < OD_GOPS_MAX && !gp; i++)
		if (!d->gops[i].used)
			gp = &d->gops[i];
	if (!gp)
		return fm_err(-EBUSY, "%u group operations in progress: try again when one "
			      "answered", OD_GOPS_MAX);
	memset(gp, 0, sizeof(*gp));
	gp->used = true;
	gp->group = g;
	gp->op = op;
	gp->fd = fd;
	gp->since = now;
	gp->n = gp->waiting = (unsigned)n;
	memcpy(gp->ids, ids, (size_t)n * sizeof(ids[0]));
	/* 2. every member's revoke; the rest runs on their REVOKED */
	for (int i = 0; i < n; i++) {
		struct od_map *m = od_map_find(d, ids[i]);

		rc = fm_owner_map_revoke(d->o, ids[i], reason[op], now);
		if (rc) {
			char msg[256];

			snprintf(msg, sizeof(msg), "%s", fm_errormsg());
			gop_abandon(d, gp, (unsigned)i);
			return fm_err(rc, "group %" PRIu64 ": map %" PRIu64 ": %s: nothing done", g,
				      ids[i], msg);
		}
		m->pend = OD_PEND_GROUP;
		m->pend_fd = -1; /* the group answers */
		m->pend_since = now;
		m->gop = (unsigned)(gp - d->gops);
		m->grevoked = m->gabandoned = false;
	}
	od_log(FM_LOGLVL_INFO, "group %" PRIu64 ": %s, revoking confirmations of %d member(s)",
	       g, gop_name(op), n);
	return 1; /* answer later */
}

/* steps 3..4: every member is in */
static void gop_run(struct fm_ownerd *d, struct od_gop *gp)
{
	int rc = 0, fd = gp->fd;
	uint64_t g = gp->group;
	enum od_pend op = gp->op;

	if (op == OD_PEND_START) {
		/* 4. the point in time: one crash-atomic step for all */
		rc = fm_store_group_start(d->store, g);
		if (rc > 0)
			rc = 0;
	} else {
		for (unsigned i = 0; i < gp->n; i++) {
			struct fm_mapping mp;
			int r;

			if (op == OD_PEND_PREPARE) {
				r = fm_store_map_transition(d->store, gp->ids[i], FM_MAP_EV_PREPARE, &mp);
				if (!r)
					r = fm_store_map_transition(d->store, gp->ids[i],
								    FM_MAP_EV_PREPARE_DONE, &mp);
			} else {
				r = fm_store_map_transition(d->store, gp->ids[i], FM_MAP_EV_STOP, &mp);
				if (!r && mp.state == FM_MAP_STOPPING)
					r = fm_store_map_transition(d->store, gp->ids[i],
								    FM_MAP_EV_STOP_DONE, &mp);
			}
			if (r && !rc)
				rc = fm_err(r, "group %" PRIu64 ": map %" PRIu64 ": %s", g,
					    gp->ids[i], fm_errormsg());
		}
	}
	if (rc)
		od_log(FM_LOGLVL_ERR, "group %" PRIu64 ": %s: %s", g, gop_name(op), fm_errormsg());
	/* whatever happened, serve what the store now says */
	for (unsigned i = 0; i < gp->n; i++) {
		struct od_map *m = od_map_find(d, gp->ids[i]);

		if (m && m->pend == OD_PEND_GROUP)
			member_serve(d, m);
	}
	gp->used = false;
	od_log(FM_LOGLVL_INFO, "group %" PRIu64 ": %s %s, %u member(s)", g, gop_name(op),
	       rc ? "failed" : "done", gp->n);
	od_ctl_answer_begin(d, fd);
	if (rc == 0) {
		group_line(d, fd, g);
		for (unsigned i = 0; i < gp->n; i++) {
			struct od_map *m = od_map_find(d, gp->ids[i]);

			if (m)
				od_ctl_show(d, fd, m);
		}
	}
	od_ctl_answer_end(d, fd, rc);
}

void od_group_revoked(struct fm_ownerd *d, struct od_map *m)
{
	struct od_gop *gp = &d->gops[m->gop];

	if (m->gabandoned || !gp->used) {
		member_serve(d, m); /* its group operation gave up (step 5) */
		return;
	}
	if (m->grevoked)
		return;
	m->grevoked = true;
	if (--gp->waiting == 0)
		gop_run(d, gp);
}

/* step 5 */
static void gop_timeout(struct fm_ownerd *d, struct od_gop *gp, uint64_t now)
{
	char who[200];
	size_t len = 0, shown = 0, more = 0;
	uint64_t g = gp->group;
	int fd = gp->fd, rc;
	enum od_pend op = gp->op;

	/* whom it waited for: the first four (the message has 256 bytes) */
	who[0] = '\0';
	for (unsigned i = 0; i < gp->n; i++) {
		struct fm_owner_holder h[4];
		struct od_map *m = od_map_find(d, gp->ids[i]);
		size_t nh;

		if (!m || m->grevoked)
			continue;
		nh = fm_owner_map_holders(d->o, m->id, h, 4);
		for (size_t k = 0; k < nh || (!nh && k == 0); k++) {
			if (shown >= 4 || k >= 4) {
				more++;
				continue;
			}
			if (nh)
				len += (size_t)snprintf(who + len, len < sizeof(who) ? sizeof(who) - len :
							0, "%smap %" PRIu64 " client %u (%s)",
							shown ? ", " : "", m->id, h[k].client_id,
							fm_osess_state_name(h[k].state));
			else
				len += (size_t)snprintf(who + len, len < sizeof(who) ? sizeof(who) - len :
							0, "%smap %" PRIu64 " (split commits in flight)",
							shown ? ", " : "", m->id);
			shown++;
		}
	}
	if (more && len < sizeof(who))
		snprintf(who + len, sizeof(who) - len, " and %zu more", more);
	gop_abandon(d, gp, gp->n);
	od_log(FM_LOGLVL_WARN, "group %" PRIu64 ": %s given up after %" PRIu64 " ms, not "
	       "released by %s; nothing changed", g, gop_name(op), now - gp->since, who);
	rc = fm_err(-ETIMEDOUT, "group %" PRIu64 ": %s: not released after %u ms by %s; "
		    "nothing changed", g, gop_name(op), d->cfg.transition_timeout_ms, who);
	od_ctl_answer_begin(d, fd);
	od_ctl_answer_end(d, fd, rc);
}

void od_groups_tick(struct fm_ownerd *d, uint64_t now)
{
	for (unsigned i = 0; i < OD_GOPS_MAX; i++)
		if (d->gops[i].used && now - d->gops[i].since >= d->cfg.transition_timeout_ms)
			gop_timeout(d, &d->gops[i], now);
}

void od_groups_fd_closed(struct fm_ownerd *d, int fd)
{
	for (unsigned i = 0; i < OD_GOPS_MAX; i++)
		if (d->gops[i].used && d->gops[i].fd == fd)
			d->gops[i].fd = -1; /* the operation still completes */
}

int od_group_exec(struct fm_ownerd *d, int fd, char **av, int ac)
{
	const char *cmd = av[0];
	uint64_t g;
	int rc;

	if (!strcmp(cmd, "group-show"))
		return group_show(d, fd, av, ac);
	if ((rc = fm_u64_parse("group id", av[1], 1, UINT64_MAX, &g)))
		return rc;
	if (!strcmp(cmd, "group-create"))
		return group_join(d, fd, av, ac, g, true);
	if (!strcmp(cmd, "group-add"))
		return group_join(d, fd, av, ac, g, false);
	if (!strcmp(cmd, "group-remove"))
		return group_leave(d, fd, av, ac, g, false);
	if (!strcmp(cmd, "group-delete"))
		return group_leave(d, fd, av, ac, g, true);
	if (!strcmp(cmd, "group-prepare"))
		return group_op(d, fd, g, OD_PEND_PREPARE);
	if (!strcmp(cmd, "group-start"))
		return group_op(d, fd, g, OD_PEND_START);
	if (!strcmp(cmd, "group-stop"))
		return group_op(d, fd, g, OD_PEND_STOP);
	return fm_err(-EINVAL, "unknown command '%.40s'", cmd);
}
