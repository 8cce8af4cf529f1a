/* query.c -- the client's split queries (wire 2.2): one SPLIT_QUERY out
 * per call, answered by its SPLIT_ANSWER (matched by query id and map) or
 * refused by an ERROR (matched by the query's seq).
 *
 * The machine keeps nothing of an answer -- no cache insert, positive or
 * negative: the caller (the agent's decide-by-message mode) uses it like
 * a one-sided READ of the bitmap made at one moment (owner/query.c has the
 * argument).  Queries are the benchmarks' lock-manager baseline; the
 * engines' own path READs the bitmap (fetch.c).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "client_priv.h"
#include "flashmeta/error.h"

static void note(struct fm_client *c, const struct cquery *k, int status,
		 const struct fm_msg_split_answer *an)
{
	struct fm_notify *n = cl_note(c, FM_NOTE_SPLIT_ANSWER, status, k->cookie, k->map_id,
				      k->first, an ? (an->bits[0] & 1) != 0 : false);

	n->generation = k->generation;
	n->query.first = k->first;
	n->query.count = k->count;
	if (an)
		memcpy(n->query.bits, an->bits, sizeof(n->query.bits));
}

int fm_client_split_query(struct fm_client *c, uint64_t map_id, uint64_t generation,
			  uint64_t first, uint32_t count, uint64_t cookie, uint64_t now)
{
	struct fm_wire_mapdesc d;
	struct cquery *k;
	struct fm_msg m;
	int rc;

	(void)now;
	if (!c)
		return -EINVAL;
	if (cl_state(c) != FM_CLIENT_ACTIVE)
		return fm_err(-EAGAIN, "client: not active");
	if (c->owner_minor < 2)
		return fm_err(-EOPNOTSUPP, "client: the owner speaks wire %u.%u: no split "
			      "queries", FM_WIRE_MAJOR, c->owner_minor);
	if (fm_client_map(c, map_id, &d, NULL))
		return fm_err(-ENOENT, "client: map %llu unknown", (unsigned long long)map_id);
	if (count == 0 || count > FM_WIRE_QUERY_MAX || first >= d.grain_count ||
	    count > d.grain_count - first)
		return fm_err(-ERANGE, "client: grains %llu+%u not in map %llu",
			      (unsigned long long)first, count, (unsigned long long)map_id);
	k = calloc(1, sizeof(*k));
	if (!k) {
		cl_oom(c);
		return -ENOMEM;
	}
	*k = (struct cquery){ .map_id = map_id, .generation = generation, .first = first,
			      .count = (uint16_t)count, .query_id = ++c->next_query,
			      .cookie = cookie };
	fm_wire_msg_init(&m, FM_MSG_SPLIT_QUERY);
	m.u.query.map_id = map_id;
	m.u.query.generation = generation;
	m.u.query.query_id = k->query_id;
	m.u.query.first = first;
	m.u.query.count = (uint16_t)count;
	rc = cl_send_msg(c, &m);
	if (rc) {
		free(k);
		return rc;
	}
	cl_pend_push(&c->queries, &k->pend, c->tx_seq);
	return 0;
}

/* the query a SPLIT_ANSWER answers: its query id and map */
static bool answer_for(const struct cpend *p, const void *arg)
{
	const struct cquery *k = cl_pend_entry(p, const struct cquery);
	const struct fm_msg_split_answer *an = arg;

	return k->query_id == an->query_id && k->map_id == an->map_id;
}

void cl_query_on_answer(struct fm_client *c, const struct fm_msg *m)
{
	const struct fm_msg_split_answer *an = &m->u.answer;
	struct cpend *p = cl_pend_take(&c->queries, answer_for, an);
	struct cquery *k;

	/* none: an answer nobody waits for (the query failed meanwhile):
	 * dropped */
	if (!p)
		return;
	k = cl_pend_entry(p, struct cquery);
	/* another question answered (not ours as asked): not to be used */
	if (an->first != k->first || an->count != k->count || an->generation != k->generation)
		note(c, k, -EPROTO, NULL);
	else
		note(c, k, 0, an);
	free(k);
}

bool cl_query_on_error(struct fm_client *c, const struct fm_msg *m)
{
	struct cpend *p = cl_pend_take_seq(&c->queries, m->u.error.ref_seq);
	struct cquery *k;

	if (!p)
		return false;
	k = cl_pend_entry(p, struct cquery);
	note(c, k, cl_error_status(m), NULL);
	free(k);
	return true;
}

void cl_query_fail_all(struct fm_client *c, bool notify)
{
	struct cpend *p;

	while ((p = cl_pend_pop(&c->queries))) {
		struct cquery *k = cl_pend_entry(p, struct cquery);

		if (notify)
			note(c, k, -ECONNRESET, NULL);
		free(k);
	}
}
