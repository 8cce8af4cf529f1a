/* locks.c -- the blocking lock calls: an op (ops.c) run to its end on the
 * calling thread.  The protocol of a lock is in ops.c, once; so is the
 * bookkeeping of holds, which fm_agent_locks reads here. */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>

#include "agent_priv.h"
#include "flashmeta/error.h"

static int run(struct fm_agent *a, enum ag_op_kind kind, uint64_t map_id, uint64_t first,
	       uint64_t last, struct ag_op *op)
{
	struct ag_thread *th;
	int rc = ag_ctx(a, &th);

	if (rc)
		return rc;
	*op = (struct ag_op){ .kind = kind, .map_id = map_id, .first = first, .last = last };
	return ag_op_run(a, th, op);
}

int fm_agent_lock(struct fm_agent *a, uint64_t map_id, uint64_t grain)
{
	struct ag_op op;
	int rc = run(a, AG_OP_LOCK, map_id, grain, grain, &op);

	return rc ? rc : op.split;
}

int fm_agent_unlock(struct fm_agent *a, uint64_t map_id, uint64_t grain)
{
	struct ag_op op;

	return run(a, AG_OP_UNLOCK, map_id, grain, grain, &op);
}

int fm_agent_commit_range(struct fm_agent *a, uint64_t map_id, uint64_t first, uint64_t last)
{
	struct ag_op op;
	int rc = run(a, AG_OP_COMMIT, map_id, first, last, &op);
	char why[256];

	if (rc == -ERANGE || rc == -ENOENT)
		return rc; /* nothing to give back: not a range of the map */
	/* the locks go back whatever the answer; one that fails to after a
	 * successful commit changes nothing: the split is durable.  The
	 * caller learns why the commit failed, not why a release did. */
	snprintf(why, sizeof(why), "%s", rc ? fm_errormsg() : "");
	for (uint64_t g = first; g <= last; g++)
		(void)fm_agent_unlock(a, map_id, g);
	return rc ? fm_err(rc, "%s", why) : 0;
}

int fm_agent_commit_split(struct fm_agent *a, uint64_t map_id, uint64_t grain)
{
	return fm_agent_commit_range(a, map_id, grain, grain);
}

int fm_agent_locks(struct fm_agent *a, struct fm_agent_held *out, size_t cap)
{
	uint64_t token = fm_client_token(a->c);
	size_t n = 0;

	if (!token)
		return 0; /* never joined: nothing can be held */
	pthread_mutex_lock(&a->eplock);
	for (struct ag_thread *th = a->threads; th; th = th->next) {
		pthread_mutex_lock(&th->heldlock);
		for (size_t i = 0; i < th->nheld; i++) {
			const struct ag_held *h = &th->held[i];

			if (h->token != token)
				continue; /* an earlier session's: lost */
			if (n < cap)
				out[n] = (struct fm_agent_held){
					.map_id = h->map_id, .word_index = h->index,
					.first = h->first, .last = h->last,
					.since_ms = h->since_ms, .token = h->token,
					.epoch = (uint32_t)h->token, .count = h->count };
			n++;
		}
		pthread_mutex_unlock(&th->heldlock);
	}
	pthread_mutex_unlock(&a->eplock);
	return n > INT_MAX ? INT_MAX : (int)n;
}
