/* scan.c -- reclaim: find a released session's lock words and free them.
 *
 * Design.  A released session (session.c, R4) may still have words in any
 * lock table: its uncontended acquires never reached us.  Its scan walks
 * every served map's table, one READ of at most FM_ACT_READ_MAX bytes in
 * flight, in slot order; each word HELD by (client, epoch) of the session
 * goes to locks.c (olock: CAS it free, or hand it to the first waiter).
 * A READ that fails is not skipped: it is counted (scan_failures, in the
 * status) and asked again at the next tick, so "reclaimed" is reported
 * only when every word of every table was looked at.  A map removed while
 * its table is being read is skipped (its table is gone with it).
 * Cost: one READ per 8192 words, one olock per word found.
 */
#include <stdlib.h>

#include "flashmeta/le.h"
#include "flashmeta/lockword.h"
#include "owner_priv.h"

static uint64_t table_bytes(const struct omap *mp)
{
	return (((mp->d.grain_count - 1) >> mp->d.lock_shift) + 1) * 8;
}

void ow_scan_start(struct fm_owner *o, struct osess *s)
{
	struct oscan *sc = calloc(1, sizeof(*sc));

	if (!sc) {
		ow_owner_oom(o);
		return;
	}
	sc->session_id = s->session_id;
	sc->dead = fm_lockword_make((uint16_t)s->client_id, s->epoch, 0);
	s->scan = sc;
	ow_scan_step(o, s);
}

/* Issue the next READ, or finish. */
void ow_scan_step(struct fm_owner *o, struct osess *s)
{
	struct oscan *sc = s->scan;

	if (sc->busy)
		return;
	for (; sc->slot < o->cfg.max_maps; sc->slot++, sc->off = 0) {
		struct omap *mp = &o->maps[sc->slot];
		uint64_t bytes, len;
		struct fm_action *a;
		struct oop *op;

		if (!mp->used || sc->off >= (bytes = table_bytes(mp)))
			continue;
		op = ow_op_new(o, OP_SCAN);
		if (!op)
			return;
		op->session_id = s->session_id;
		op->slot = sc->slot;
		op->base_index = sc->off / 8;
		len = bytes - sc->off < FM_ACT_READ_MAX ? bytes - sc->off : FM_ACT_READ_MAX;
		a = ow_local_op(o, op, FM_ACT_READ, &mp->d.locks, sc->off);
		a->u.io.len = (uint32_t)len;
		sc->busy = true;
		mp->scans++;
		return;
	}
	ow_sess_reclaimed(o, s);
}

void ow_scan_done(struct fm_owner *o, struct oop *op, int status, const uint8_t *data,
		  size_t len)
{
	struct osess *s = ow_sess_by_id(o, op->session_id);
	struct omap *mp = &o->maps[op->slot];
	struct oscan *sc;

	mp->scans--;
	if (!s || !s->scan)
		return;
	sc = s->scan;
	sc->busy = false;
	if (!mp->used) {
		/* removed meanwhile: nothing of it to reclaim */
		sc->slot++;
		sc->off = 0;
	} else if (status < 0 || len == 0 || len % 8) {
		/* not looked at: ask again at the next tick */
		o->st.scan_failures++;
		return;
	} else {
		for (size_t i = 0; i + 8 <= len; i += 8) {
			uint64_t w = fm_get_le64(data + i);

			if ((fm_lockword_flags(w) & FM_LOCKWORD_F_HELD) &&
			    fm_lockword_same_holder(w, sc->dead))
				ow_locks_reclaim(o, op->slot, op->base_index + i / 8, w);
		}
		sc->off += len;
	}
	ow_scan_step(o, s);
}
