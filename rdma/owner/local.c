/* local.c -- the owner's own one-sided operations on its regions.
 *
 * The state machine asks for CASes on lock tables (a commit's holder
 * check, a hand-over, an arm, a reclaim) and READs of them (a reclaim
 * scan).  A CAS must go through the transport -- RDMA atomics are atomic
 * only against other RDMA atomics (transport.h, ATOMICITY) -- so it is
 * POSTED on the loopback endpoint's lane and its completion is fed back to
 * the state machine later, from the loop: the loop never waits for a
 * round trip (verbs: through the HCA), and the holder checks of a commit
 * (a CAS per lock word) are all in flight at once.  shm completes a post
 * at once; verbs wakes the loop through fm_lane_fd.  A READ of our own
 * memory needs no round trip: acquire loads, answered at once.
 *
 * Order: fm_owner_op_done is never called from inside the drain of
 * fm_owner_poll (no re-entry): od_local_reap runs between drains.
 * More CASes than the lane holds wait in `backlog`, in order.
 */
#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "flashmeta/error.h"
#include "ownerd_priv.h"

static_assert(sizeof(void *) >= sizeof(uint64_t), "op ids ride in completion contexts");

static void local_read(struct fm_ownerd *d, const struct fm_action *a, struct od_map *m,
		       bool is_locks, uint64_t now)
{
	const struct fm_region *r = is_locks ? m->locks : m->bitmap;
	const uint8_t *src = fm_region_ptr(r);
	size_t len = a->u.io.len, off = a->u.io.offset;

	/* any length up to FM_ACT_READ_MAX (proto.h): a reclaim scan reads
	 * lock tables 64 KiB at a time */
	if (len > FM_ACT_READ_MAX || off > fm_region_len(r) || len > fm_region_len(r) - off ||
	    off % 8 || len % 8) {
		(void)fm_owner_op_done(d->o, a->op_id, -ERANGE, 0, NULL, 0, now);
		return;
	}
	for (size_t i = 0; i < len; i += 8) {
		uint64_t w = __atomic_load_n((const uint64_t *)(const void *)(src + off + i),
					     __ATOMIC_ACQUIRE);

		memcpy(d->readbuf + i, &w, 8);
	}
	(void)fm_owner_op_done(d->o, a->op_id, 0, 0, d->readbuf, len, now);
}

/* post one CAS; -EAGAIN: the lane is full (keep it for later) */
static int cas_post(struct fm_ownerd *d, const struct od_local *l)
{
	int rc = fm_lane_post_cas(d->selflane, &l->rd, l->off, l->compare, l->swap,
				  (void *)(uintptr_t)l->op_id);

	if (rc && rc != -EAGAIN) {
		od_log(FM_LOGLVL_ERR, "loopback CAS: %s", fm_errormsg());
		(void)fm_owner_op_done(d->o, l->op_id, rc, 0, NULL, 0, od_now_ms());
		return 0;
	}
	return rc;
}

void od_local_exec(struct fm_ownerd *d, const struct fm_action *a, uint64_t now)
{
	bool is_locks = false;
	struct od_map *m = od_map_by_region(d, &a->u.io.region, &is_locks);
	struct od_local l;

	if (a->conn != FM_CONN_LOCAL || !m) {
		od_log(FM_LOGLVL_ERR, "%s on conn %" PRIu64 ": not our memory",
		       fm_action_type_name(a->type), a->conn);
		(void)fm_owner_op_done(d->o, a->op_id, -EINVAL, 0, NULL, 0, now);
		return;
	}
	if (a->type != FM_ACT_CAS) {
		local_read(d, a, m, is_locks, now);
		return;
	}
	l = (struct od_local){ .op_id = a->op_id, .rd = is_locks ? m->lkd : m->bmd,
			       .off = a->u.io.offset, .compare = a->u.io.compare,
			       .swap = a->u.io.swap };
	if (d->backlog.n == 0 && cas_post(d, &l) != -EAGAIN)
		return;
	if (d->backlog.n == d->backlog.cap) {
		size_t nc = d->backlog.cap ? d->backlog.cap * 2 : 64;
		struct od_local *nv = realloc(d->backlog.v, nc * sizeof(*nv));

		if (!nv) {
			(void)fm_owner_op_done(d->o, a->op_id, -ENOMEM, 0, NULL, 0, now);
			return;
		}
		d->backlog.v = nv;
		d->backlog.cap = nc;
	}
	d->backlog.v[d->backlog.n++] = l;
}

int od_local_reap(struct fm_ownerd *d)
{
	struct fm_completion c[32];
	int n, total = 0;

	while ((n = fm_lane_poll(d->selflane, c, 32)) > 0) {
		uint64_t now = od_now_ms();

		for (int i = 0; i < n; i++) {
			if (c[i].status)
				od_log(FM_LOGLVL_ERR, "loopback CAS failed: %s",
				       strerror(-c[i].status));
			(void)fm_owner_op_done(d->o, (uint64_t)(uintptr_t)c[i].ctx, c[i].status,
					       c[i].old, NULL, 0, now);
		}
		total += n;
		/* room again: the backlog, oldest first */
		size_t k = 0;

		while (k < d->backlog.n && cas_post(d, &d->backlog.v[k]) != -EAGAIN)
			k++;
		if (k) { /* (an empty backlog may have no array at all) */
			memmove(d->backlog.v, d->backlog.v + k,
				(d->backlog.n - k) * sizeof(*d->backlog.v));
			d->backlog.n -= k;
		}
	}
	return total;
}

int od_local_fd(struct fm_ownerd *d)
{
	return d->selflane ? fm_lane_fd(d->selflane) : -1;
}

unsigned od_local_inflight(struct fm_ownerd *d)
{
	return (d->selflane ? fm_lane_outstanding(d->selflane) : 0) + (unsigned)d->backlog.n;
}
