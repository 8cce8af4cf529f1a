/* copy.c -- the client's background copy claims (flashmeta/copy.h): one
 * COPY_CLAIM out per call, answered by its COPY_BATCH (matched by
 * claim_id) or refused by an ERROR (matched by the claim's seq).  The
 * state machine keeps no batch: the copier (the engine) does, and says in
 * its next claim how far it got. */
#include <errno.h>
#include <stdlib.h>

#include "client_priv.h"
#include "flashmeta/copy.h"
#include "flashmeta/error.h"

static void note(struct fm_client *c, const struct cclaim *k, int status,
		 const struct fm_msg_copy_batch *b)
{
	struct fm_notify *n = cl_note(c, FM_NOTE_COPY_BATCH, status, k->cookie, k->map_id,
				      b ? b->first : 0, false);

	if (!b)
		return;
	n->generation = b->generation;
	n->copy.status = b->status;
	n->copy.wait_ms = b->wait_ms;
	n->copy.rate = b->rate;
	n->copy.batch_id = b->batch_id;
	n->copy.first = b->first;
	n->copy.last = b->last;
}

int fm_client_copy_claim(struct fm_client *c, uint64_t map_id, uint64_t generation,
			 uint64_t done_batch, uint64_t done_next, uint32_t max_grains,
			 uint64_t cookie, uint64_t now)
{
	struct cclaim *k;
	struct fm_msg m;
	int rc;

	(void)now;
	if (!c)
		return -EINVAL;
	if (cl_state(c) != FM_CLIENT_ACTIVE)
		return fm_err(-EAGAIN, "client: not active");
	if (c->owner_minor < 1)
		return fm_err(-EOPNOTSUPP, "client: the owner speaks wire %u.%u: no background "
			      "copy", FM_WIRE_MAJOR, c->owner_minor);
	if (cl_slot_of(c, map_id) < 0)
		return fm_err(-ENOENT, "client: map %llu unknown", (unsigned long long)map_id);
	if (max_grains > FM_COPY_BATCH_MAX)
		return fm_err(-ERANGE, "client: %u grains > %u a claim", max_grains,
			      FM_COPY_BATCH_MAX);
	if (!done_batch && done_next)
		return fm_err(-EINVAL, "client: done_next without done_batch");
	k = calloc(1, sizeof(*k));
	if (!k) {
		cl_oom(c);
		return -ENOMEM;
	}
	*k = (struct cclaim){ .map_id = map_id, .claim_id = ++c->next_claim, .cookie = cookie };
	fm_wire_msg_init(&m, FM_MSG_COPY_CLAIM);
	m.u.claim.map_id = map_id;
	m.u.claim.generation = generation;
	m.u.claim.claim_id = k->claim_id;
	m.u.claim.done_batch = done_batch;
	m.u.claim.done_next = done_next;
	m.u.claim.max_grains = max_grains;
	rc = cl_send_msg(c, &m);
	if (rc) {
		free(k);
		return rc;
	}
	cl_pend_push(&c->claims, &k->pend, c->tx_seq);
	return 0;
}

/* the claim a COPY_BATCH answers: its claim_id and map */
static bool batch_for(const struct cpend *p, const void *arg)
{
	const struct cclaim *k = cl_pend_entry(p, const struct cclaim);
	const struct fm_msg_copy_batch *b = arg;

	return k->claim_id == b->claim_id && k->map_id == b->map_id;
}

void cl_copy_on_batch(struct fm_client *c, const struct fm_msg *m)
{
	struct cpend *p = cl_pend_take(&c->claims, batch_for, &m->u.batch);
	struct cclaim *k;

	/* none: an answer nobody waits for (the claim failed meanwhile): its
	 * batch stays ours at the owner until our next claim or the session's
	 * end */
	if (!p)
		return;
	k = cl_pend_entry(p, struct cclaim);
	note(c, k, 0, &m->u.batch);
	free(k);
}

bool cl_copy_on_error(struct fm_client *c, const struct fm_msg *m)
{
	struct cpend *p = cl_pend_take_seq(&c->claims, m->u.error.ref_seq);
	struct cclaim *k;

	if (!p)
		return false;
	k = cl_pend_entry(p, struct cclaim);
	note(c, k, cl_error_status(m), NULL);
	free(k);
	return true;
}

void cl_copy_fail_all(struct fm_client *c)
{
	struct cpend *p;

	while ((p = cl_pend_pop(&c->claims))) {
		struct cclaim *k = cl_pend_entry(p, struct cclaim);

		note(c, k, -ECONNRESET, NULL);
		free(k);
	}
}
