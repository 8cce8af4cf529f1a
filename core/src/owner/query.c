/* query.c -- SPLIT_QUERY: split bits by message (wire 2.2).
 *
 * Design.  The baseline a lock manager offers (LDLM, a DLM): every
 * decision is a message to the owner.  A query names a map, a generation
 * and up to FM_WIRE_QUERY_MAX grains; the owner READs those words of its
 * published bitmap on its loopback (FM_CONN_LOCAL: what any client's
 * one-sided READ would see -- only bits whose PERSIST completed are
 * published, proto.h) and answers the bits with SPLIT_ANSWER.  It changes
 * nothing: no grant, no lock, no counter a client relies on; so a session
 * that never queries is served exactly as before.
 *
 * Checks, in this order, each refused with an ERROR of its own errno
 * (the wire already refused a bad size, reserved bytes, a count outside
 * 1..FM_WIRE_QUERY_MAX, a range that wraps):
 *   1. map not served                          -ENOENT
 *   2. map revoking or withheld (released,
 *      maybe being cleared for a new generation) -EAGAIN
 *   3. grains beyond the map                   -ERANGE
 *   4. another generation                      -ESTALE
 *   5. cfg.max_queries of the session in flight -EBUSY (memory per peer)
 * The restart grace (lease.h R6) is no reason to refuse: the published
 * bitmap is the one recovered from the pool, which one-sided readers READ
 * during the grace too; the grace withholds locks and commits, never
 * bits.  When the READ completes the map is checked again (2 and 4; a
 * map gone or withheld is -ESTALE then, its slot may serve another): a
 * revoke that completed meanwhile may have cleared the bitmap for a new
 * generation, and those bits are never sent as the old generation's
 * (-ESTALE instead).
 *
 * Safety of an answer (the same argument as for a one-sided READ, ops.c
 * of the agent): an answer is a statement about one moment.  A set bit is
 * durable and stays set for the whole generation, so "split" may be
 * trusted until the generation ends (the client's bracket pins it).  A
 * clear bit says nothing about the future -- another client may commit
 * the grain right after -- so the client may use it only as a one-sided
 * READ's clear bit is used: a read redirected to the source re-checks
 * after reading, a write takes the grain lock and re-reads the bit under
 * it.  A client never caches a clear bit (proto_client.h).
 *
 * Cost: one loopback READ of at most 9 bitmap words per query, one
 * message each way; no allocation but the op.
 */
#include <errno.h>
#include <string.h>

#include "flashmeta/le.h"
#include "owner_priv.h"

static void send_answer(struct fm_owner *o, struct osess *s, const struct oop *op,
			const uint8_t *data)
{
	struct fm_msg m;
	uint64_t w0 = op->base_index;

	fm_wire_msg_init(&m, FM_MSG_SPLIT_ANSWER);
	m.u.answer.map_id = o->maps[op->slot].d.map_id;
	m.u.answer.generation = op->generation;
	m.u.answer.query_id = op->query_id;
	m.u.answer.first = op->first;
	m.u.answer.count = (uint16_t)(op->last - op->first + 1);
	for (uint64_t g = op->first; g <= op->last; g++) {
		uint64_t i = g - w0, k = g - op->first;

		if (data[i / 8] >> (i % 8) & 1)
			m.u.answer.bits[k / 64] |= UINT64_C(1) << (k % 64);
	}
	ow_send_msg(o, s, &m);
}

void ow_query_on_split(struct fm_owner *o, struct osess *s, const struct fm_msg *m)
{
	const struct fm_msg_split_query *q = &m->u.query;
	int slot = ow_map_slot(o, q->map_id);
	uint64_t last = q->first + q->count - 1, w0;
	struct fm_action *a;
	struct omap *mp;
	struct oop *op;

	o->st.queries++;
	/* 1 .. 5: see the design above */
	if (slot < 0) {
		ow_send_error(o, s, m->seq, -ENOENT);
		return;
	}
	mp = &o->maps[slot];
	if (mp->revoking || mp->withheld) {
		ow_send_error(o, s, m->seq, -EAGAIN);
		return;
	}
	if (last >= mp->d.grain_count) {
		ow_send_error(o, s, m->seq, -ERANGE);
		return;
	}
	if (q->generation != mp->d.generation) {
		ow_send_error(o, s, m->seq, -ESTALE);
		return;
	}
	if (s->queries >= o->cfg.max_queries) {
		o->st.queries_refused++;
		ow_send_error(o, s, m->seq, -EBUSY);
		return;
	}
	op = ow_op_new(o, OP_QUERY_READ);
	if (!op)
		return; /* latched: the machine is dead */
	w0 = q->first & ~UINT64_C(63);
	op->session_id = s->session_id;
	op->slot = (unsigned)slot;
	op->generation = q->generation;
	op->query_id = q->query_id;
	op->ref_seq = m->seq;
	op->first = q->first;
	op->last = last;
	op->base_index = w0;
	s->queries++;
	mp->queries++;
	a = ow_local_op(o, op, FM_ACT_READ, &mp->d.bitmap, w0 / 8);
	a->u.io.len = (uint32_t)((last / 64 - w0 / 64 + 1) * 8);
}

void ow_query_read_done(struct fm_owner *o, struct oop *op, int status, const uint8_t *data,
			size_t len)
{
	struct osess *s = ow_sess_by_id(o, op->session_id);
	struct omap *mp = &o->maps[op->slot];

	if (mp->queries)
		mp->queries--;
	if (s && s->queries)
		s->queries--;
	/* nobody to answer: the client learns -ECONNRESET from its session */
	if (!s || s->state != FM_OSESS_ACTIVE)
		return;
	if (!mp->used || mp->withheld || mp->d.generation != op->generation) {
		ow_send_error(o, s, op->ref_seq, -ESTALE);
		return;
	}
	if (mp->revoking) {
		ow_send_error(o, s, op->ref_seq, -EAGAIN);
		return;
	}
	if (status < 0 || !data || len < (op->last / 64 - op->base_index / 64 + 1) * 8) {
		o->st.query_read_failures++;
		ow_send_error(o, s, op->ref_seq, -EIO);
		return;
	}
	send_answer(o, s, op, data);
}
