/* maps.c -- the mappings the owner serves: confirmation grants, revoke
 * (claims 2/8/14: release request, released), and the restart grace.
 *
 * Design.  A fixed array of cfg.max_maps slots.  Each session keeps one
 * byte per slot: NONE, GRANTED, RELEASING.  A revoke sends RELEASE_REQUEST
 * to GRANTED holders and completes (NOTE REVOKED) when no session has the
 * slot != NONE and no PERSIST or CHANGED of the map is in flight; until
 * fm_owner_map_update the map is withheld from new sessions and split
 * commits on it are STALE.  A closed session's grants count until it is
 * released (session.c, R4).
 *
 * Restart grace (lease.h R6): while it lasts, every descriptor sent
 * carries an empty lock table, so no client can take a grain lock; the
 * first tick after it re-grants each map, with the lock table, to every
 * active session (same generation: the clients keep their caches).
 */
#include <errno.h>
#include <string.h>

#include "flashmeta/error.h"
#include "owner_priv.h"

/* The descriptor clients get now: without a lock table during the grace. */
static void desc_now(const struct fm_owner *o, unsigned slot, struct fm_wire_mapdesc *d)
{
	*d = o->maps[slot].d;
	if (o->in_grace)
		memset(&d->locks, 0, sizeof(d->locks));
}

static void send_grant(struct fm_owner *o, struct osess *s, unsigned slot)
{
	struct fm_msg m;

	fm_wire_msg_init(&m, FM_MSG_MAP_GRANT);
	desc_now(o, slot, &m.u.map_grant.map);
	s->mstate[slot] = MS_GRANTED;
	ow_send_msg(o, s, &m);
}

static bool servable(const struct omap *mp)
{
	return mp->used && !mp->revoking && !mp->withheld;
}

/* WELCOME carries the first FM_WIRE_MAX_MAPS servable maps... */
void ow_maps_welcome(struct fm_owner *o, struct osess *s, struct fm_msg *m)
{
	for (unsigned i = 0; i < o->cfg.max_maps; i++) {
		if (!servable(&o->maps[i]) || m->u.welcome.map_count == FM_WIRE_MAX_MAPS)
			continue;
		desc_now(o, i, &m->u.welcome.maps[m->u.welcome.map_count++]);
		s->mstate[i] = MS_GRANTED;
	}
}

/* ... and MAP_GRANTs right after it carry the rest. */
void ow_maps_grant_rest(struct fm_owner *o, struct osess *s)
{
	for (unsigned i = 0; i < o->cfg.max_maps; i++)
		if (servable(&o->maps[i]) && s->mstate[i] == MS_NONE)
			send_grant(o, s, i);
}

static void grant_to_all(struct fm_owner *o, unsigned slot)
{
	for (struct osess *s = o->sessions; s; s = s->next)
		if (s->state == FM_OSESS_ACTIVE)
			send_grant(o, s, slot);
}

void ow_maps_check_revoke(struct fm_owner *o, unsigned slot)
{
	struct omap *mp = &o->maps[slot];

	/* every split and every change report of the map durable, and
	 * every changed-unknown mark (changed.c: the set is complete now) */
	if (!mp->used || !mp->revoking || mp->persists || mp->changes || mp->unknown_retry)
		return;
	for (struct osess *s = o->sessions; s; s = s->next)
		if (s->mstate[slot] != MS_NONE)
			return;
	mp->revoking = false;
	mp->withheld = true;
	ow_note(o, FM_NOTE_REVOKED, 0, mp->d.map_id, 0);
}

void ow_maps_drop_grants(struct fm_owner *o, struct osess *s)
{
	for (unsigned i = 0; i < o->cfg.max_maps; i++) {
		if (s->mstate[i] != MS_NONE) {
			/* it could have written since its last report, and
			 * did not vouch that it reported (changed.c, 4.) */
			if (!s->reported)
				ow_changed_unknown(o, i);
			s->mstate[i] = MS_NONE;
			ow_maps_check_revoke(o, i);
		}
	}
}

void ow_maps_on_released(struct fm_owner *o, struct osess *s, const struct fm_msg *m)
{
	int slot = ow_map_slot(o, m->u.released.map_id);

	if (slot < 0 || s->mstate[slot] == MS_NONE)
		return;
	/* only a RELEASING session answers: RELEASED comes only for a
	 * RELEASE_REQUEST, and a GRANTED slot never had one outstanding.
	 * Its reports came before it and are queued (changed.c, 3.); a
	 * client before 2.4 reports nothing (4.) */
	if (s->minor < 4)
		ow_changed_unknown(o, (unsigned)slot);
	s->mstate[slot] = MS_NONE;
	ow_maps_check_revoke(o, (unsigned)slot);
	/* the revoke this answered was cancelled meanwhile: it holds nothing
	 * now (its caches are gone), so it is granted like any other session
	 * that released before the cancel */
	if (servable(&o->maps[slot]) && s->state == FM_OSESS_ACTIVE)
		send_grant(o, s, (unsigned)slot);
}

/* ---- restart grace ---- */

int fm_owner_grace(struct fm_owner *o, uint64_t until, uint64_t now)
{
	if (!o)
		return fm_err(-EINVAL, "owner: NULL argument");
	o->grace_until = until;
	o->in_grace = until > now;
	return 0;
}

uint64_t fm_owner_grace_left(const struct fm_owner *o, uint64_t now)
{
	return o->in_grace && o->grace_until > now ? o->grace_until - now : 0;
}

void ow_maps_grace_tick(struct fm_owner *o, uint64_t now)
{
	if (!o->in_grace || now < o->grace_until)
		return;
	o->in_grace = false;
	/* every lease of the previous incarnation has run out: the lock
	 * tables may be used now */
	for (unsigned i = 0; i < o->cfg.max_maps; i++) {
		if (!servable(&o->maps[i]))
			continue;
		for (struct osess *s = o->sessions; s; s = s->next)
			if (s->state == FM_OSESS_ACTIVE && s->mstate[i] == MS_GRANTED)
				send_grant(o, s, i);
	}
	ow_locks_step_all(o);
	ow_note(o, FM_NOTE_GRACE_OVER, 0, 0, 0);
}

/* ---- public ---- */

static int check_desc(const struct fm_wire_mapdesc *d)
{
	struct fm_msg m;
	uint8_t buf[FM_WIRE_HDR_SIZE + FM_WIRE_MAPDESC_SIZE];
	int rc;

	/* the wire's own checks, so we never grant what a client refuses */
	memset(&m, 0, sizeof(m));
	m.type = FM_MSG_MAP_GRANT;
	m.u.map_grant.map = *d;
	rc = fm_wire_encode(&m, buf, sizeof(buf));
	if (rc < 0)
		return rc;
	if (!d->locks.len)
		return fm_err(-EINVAL, "owner: map %llu served without a lock table",
			      (unsigned long long)d->map_id);
	return 0;
}

int fm_owner_map_add(struct fm_owner *o, const struct fm_wire_mapdesc *d)
{
	int rc, free_slot = -1;

	if (!o || !d)
		return fm_err(-EINVAL, "owner: NULL argument");
	rc = check_desc(d);
	if (rc)
		return rc;
	if (ow_map_slot(o, d->map_id) >= 0)
		return fm_err(-EEXIST, "owner: map %llu already served",
			      (unsigned long long)d->map_id);
	for (unsigned i = 0; i < o->cfg.max_maps && free_slot < 0; i++)
		if (!o->maps[i].used)
			free_slot = (int)i;
	if (free_slot < 0)
		return fm_err(-ENOSPC, "owner: %u maps already served (the most it serves)",
			      o->cfg.max_maps);
	memset(&o->maps[free_slot], 0, sizeof(o->maps[0]));
	o->maps[free_slot].used = true;
	o->maps[free_slot].d = *d;
	grant_to_all(o, (unsigned)free_slot);
	return 0;
}

int fm_owner_map_revoke(struct fm_owner *o, uint64_t map_id, uint32_t reason,
			uint64_t now)
{
	int slot = o ? ow_map_slot(o, map_id) : -1;
	struct omap *mp;

	if (slot < 0)
		return fm_err(-ENOENT, "owner: map %llu unknown", (unsigned long long)map_id);
	if (reason >= FM_RELEASE_REASON_COUNT)
		return fm_err(-EINVAL, "owner: release reason %u unknown", reason);
	/* a grace that ran out ends here first: its re-grants (the lock
	 * tables) go out before any release request.  Otherwise a client I/O
	 * waiting for its lock table holds its bracket, the release waits
	 * for that bracket, and the table never comes (the map is revoking,
	 * not servable) until the I/O's own wait times out */
	ow_maps_grace_tick(o, now);
	if (o->in_grace)
		return fm_err(-EAGAIN, "owner: restart grace (%llu ms left): no transition "
			      "until every lease of the previous owner ran out",
			      (unsigned long long)(o->grace_until - now));
	mp = &o->maps[slot];
	if (mp->revoking)
		return fm_err(-EALREADY, "owner: map %llu revoke in progress",
			      (unsigned long long)map_id);
	mp->revoking = true;
	mp->withheld = true;
	for (struct osess *s = o->sessions; s; s = s->next) {
		struct fm_msg m;

		if (s->state != FM_OSESS_ACTIVE || s->mstate[slot] != MS_GRANTED)
			continue;
		fm_wire_msg_init(&m, FM_MSG_RELEASE_REQUEST);
		m.u.release.map_id = map_id;
		m.u.release.generation = mp->d.generation;
		/* a 2.0 client would refuse COPIED (wire.h "Versions") */
		m.u.release.reason = reason == FM_RELEASE_COPIED && s->minor < 1 ?
				     FM_RELEASE_ADMIN : reason;
		s->mstate[slot] = MS_RELEASING;
		ow_send_msg(o, s, &m);
	}
	ow_maps_check_revoke(o, (unsigned)slot);
	return 0;
}

int fm_owner_map_revoke_cancel(struct fm_owner *o, uint64_t map_id)
{
	int slot = o ? ow_map_slot(o, map_id) : -1;
	struct omap *mp;

	if (slot < 0)
		return fm_err(-ENOENT, "owner: map %llu unknown", (unsigned long long)map_id);
	mp = &o->maps[slot];
	if (!mp->revoking)
		return fm_err(-EINVAL, "owner: map %llu: no revoke in progress",
			      (unsigned long long)map_id);
	/* Nothing changed: same descriptor, same generation, so what the
	 * sessions that released had cached was true and what they fetch
	 * again is.  A session still RELEASING stays so (it stopped trusting
	 * its cache when the request came) and is granted on its RELEASED
	 * (ow_maps_on_released): granting it now could cross its RELEASED on
	 * the wire, and a RELEASED taken for the answer to a later request
	 * would count a session as drained that is not. */
	mp->revoking = false;
	mp->withheld = false;
	for (struct osess *s = o->sessions; s; s = s->next)
		if (s->state == FM_OSESS_ACTIVE && s->mstate[slot] == MS_NONE)
			send_grant(o, s, (unsigned)slot);
	return 0;
}

size_t fm_owner_map_holders(const struct fm_owner *o, uint64_t map_id,
			    struct fm_owner_holder *v, size_t cap)
{
	int slot = o ? ow_map_slot(o, map_id) : -1;
	size_t n = 0;

	if (slot < 0)
		return 0;
	for (const struct osess *s = o->sessions; s; s = s->next) {
		if (s->mstate[slot] == MS_NONE)
			continue;
		if (n < cap)
			v[n] = (struct fm_owner_holder){
				.client_id = s->client_id,
				.epoch = s->epoch,
				.state = s->state,
				.releasing = s->mstate[slot] == MS_RELEASING,
			};
		n++;
	}
	return n;
}

int fm_owner_map_remove(struct fm_owner *o, uint64_t map_id)
{
	int slot = o ? ow_map_slot(o, map_id) : -1;
	struct omap *mp;

	if (slot < 0)
		return fm_err(-ENOENT, "owner: map %llu unknown", (unsigned long long)map_id);
	mp = &o->maps[slot];
	if (mp->revoking || !mp->withheld)
		return fm_err(-EBUSY, "owner: map %llu not revoked",
			      (unsigned long long)map_id);
	if (mp->persists || mp->changes)
		return fm_err(-EBUSY, "owner: map %llu has commits or change reports in flight",
			      (unsigned long long)map_id);
	if (mp->scans || mp->lock_ops || mp->copy.reading || mp->queries)
		return fm_err(-EBUSY, "owner: map %llu has lock-table or bitmap operations in "
			      "flight", (unsigned long long)map_id);
	/* queued lock requests on it will never be granted: refuse them */
	ow_locks_drop_slot(o, (unsigned)slot);
	for (struct osess *s = o->sessions; s; s = s->next)
		s->mstate[slot] = MS_NONE;
	ow_copy_map_free(o, (unsigned)slot);
	memset(mp, 0, sizeof(*mp));
	return 0;
}

int fm_owner_map_update(struct fm_owner *o, const struct fm_wire_mapdesc *d)
{
	int slot, rc;

	if (!o || !d)
		return fm_err(-EINVAL, "owner: NULL argument");
	slot = ow_map_slot(o, d->map_id);
	if (slot < 0)
		return fm_err(-ENOENT, "owner: map %llu unknown", (unsigned long long)d->map_id);
	if (o->maps[slot].revoking || !o->maps[slot].withheld)
		return fm_err(-EBUSY, "owner: map %llu not revoked",
			      (unsigned long long)d->map_id);
	rc = check_desc(d);
	if (rc)
		return rc;
	o->maps[slot].d = *d;
	o->maps[slot].withheld = false;
	ow_copy_map_updated(o, (unsigned)slot);
	grant_to_all(o, (unsigned)slot);
	return 0;
}
