/* actions.c -- executing what the owner's state machine asks for (the action
 * table is in ownerd.h): SEND, PERSIST by group commit, FENCE, NOTIFY, CLOSE;
 * local READ and CAS go to local.c.
 *
 * Durability order of a split (group commit, beside the loop):
 *   1. drain every action; PERSIST actions are collected, not executed --
 *      over a whole loop pass (every connection's pending messages, the
 *      timer, the control socket);
 *   2. at the end of the pass (od_persist_kick): fm_store_split_set_range()
 *      for every range of every collected PERSIST (a bitmap word at a
 *      time, in memory; nothing durable yet), also while a commit is in
 *      flight (the store's next pending set); THEN hand them to the commit
 *      thread, where they wait for the commit after the one in flight --
 *      that is the grouping;
 *   3. the commit thread (committer.c), for everything handed since its
 *      last commit, in one batch (or the loop itself, in place, when the
 *      thread is idle and drains cost less than a hand-off -- committer.c;
 *      fm_store_split_commit() is the same three phases):
 *      a. fm_store_commit_begin(): the swap -- it takes every bit applied
 *         before the batch was handed (2 applies, then hands);
 *      b. fm_store_commit_run(): ONE drain/msync for all of them, not
 *         blocking the loop; fm_store_commit_end(): the store's MIRROR
 *         view shows them; the batch goes back through its eventfd;
 *   4. the loop (od_persist_reap): copy the committed words from the
 *      MIRROR view into the REMOTE_READ bitmap regions (release stores) --
 *      publish after durable;
 *   5. fm_owner_op_done() for each: the state machine sends SPLIT_ACK.
 * A crash before 3b's drain completed loses bits nobody was told about;
 * after it they are in the pool and are published again from the pool at
 * the next start.  Nothing overtakes a batch: REVOKED (and so a
 * transition of the map) waits until every PERSIST and CHANGED of the map
 * had its op_done (5), and a store mapping operation of another map waits for the
 * commit in flight (pmem_store.h) -- the loop then blocks for that one
 * drain.  The publication stays on the loop (4) so the REMOTE_READ regions
 * keep one writer, the thread that also clears them at a restart.
 */
#include <errno.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "flashmeta/error.h"
#include "flashmeta/pmem_store.h"
#include "flashmeta/wire.h"
#include "ownerd_priv.h"

#define OD_OUTQ_MAX 1024   /* queued SENDs before a peer counts as stuck */
#define OD_RANGE_PIECE (UINT64_C(1) << 30) /* grains per split_set_range call */

static void exec_send(struct fm_ownerd *d, const struct fm_action *a)
{
	struct od_conn *c = od_conn_find(d, a->conn);
	int rc;

	if (!c || c->lost)
		return; /* gone: the state machine learns it from the FENCE/disconnect */
	if (c->outq_count == 0) {
		rc = fm_ep_send(c->ep, a->u.msg.buf, a->u.msg.len, FM_NONBLOCK);
		if (rc == 0)
			return;
		if (rc != -EAGAIN) {
			od_conn_lost(d, c, fm_errormsg());
			return;
		}
	}
	if (c->outq_count >= OD_OUTQ_MAX || od_outq_push(c, a->u.msg.buf, a->u.msg.len)) {
		od_log(FM_LOGLVL_WARN, "conn %" PRIu64 ": peer does not drain its messages",
		       c->id);
		od_conn_lost(d, c, "send queue overflow");
	}
}

/* the fence of c reached `level` (enum fm_fence_level): no operation of
 * its peer can land any more (RDMA), and with DEAD its process is gone too
 * -- which lets the state machine release its locks at once (lease.h R4b) */
static void fence_done(struct fm_ownerd *d, struct od_conn *c, uint64_t op_id, int level,
		       uint64_t now)
{
	od_log(FM_LOGLVL_INFO, "conn %" PRIu64 ": fenced (%s)", c->id,
	       level == FM_FENCE_DEAD ? "process dead" : "RDMA stopped");
	od_conn_drop(d, c);
	(void)fm_owner_op_done(d->o, op_id, 0, (uint64_t)level, NULL, 0, now);
}

/* the peer of c cannot be fenced (now): report it, so the state machine
 * keeps its lock words and grants HELD (safe: nobody else can take them)
 * and asks again at its next tick.  Loud the first time; the connection
 * stays, so a later FENCE retries. */
static void fence_failed(struct fm_ownerd *d, struct od_conn *c, int rc, uint64_t now)
{
	uint64_t op = c->fence_op;

	c->fencing = false;
	od_log(c->fence_failed ? FM_LOGLVL_DEBUG : FM_LOGLVL_ERR,
	       "conn %" PRIu64 ": FENCE FAILED: %s -- its lock words stay HELD and its grants "
	       "count; stop that process by hand", c->id, fm_errormsg());
	c->fence_failed = true;
	(void)fm_owner_op_done(d->o, op, rc < 0 ? rc : -EIO, 0, NULL, 0, now);
}

/* The fence table (fence_table.h): the fenced session's writes to
 * storage are refused from now on.  0, -EAGAIN (one of its writes is in
 * flight: the raise waits for it to land, then refuses the rest), or an
 * error (the table cannot be written: the fence failed).  Blocks the loop
 * for one fdatasync of the table, once per fenced session. */
static int fence_storage(struct fm_ownerd *d, struct od_conn *c)
{
	int rc;

	if (!d->ftable || !c->fence_token)
		return 0; /* no table, or a session that never got a token */
	rc = fm_fence_table_try_session(d->ftable, c->fence_client, c->fence_token);
	if (rc == 0)
		od_log(FM_LOGLVL_INFO, "client %u: writes of session token %#" PRIx64
		       " refused by the fence table from now on", c->fence_client,
		       c->fence_token);
	return rc;
}

/* progress every fence in flight; never blocks (fm_ep_fence does not;
 * the table raise waits for nobody) */
void od_retry_fences(struct fm_ownerd *d, uint64_t now)
{
	for (size_t i = 0; i < d->nconns;) {
		struct od_conn *c = &d->conns[i];
		int rc;

		if (!c->fencing) {
			i++;
			continue;
		}
		if (!c->fence_level) {
			rc = fm_ep_fence(c->ep, c->fence_kill ? FM_FENCE_F_KILL : 0);
			if (rc != FM_FENCE_RDMA && rc != FM_FENCE_DEAD) {
				if (rc != -EINPROGRESS)
					fence_failed(d, c, rc, now);
				i++;
				continue;
			}
			c->fence_level = rc;
		}
		/* the peer's RDMA (or process) is stopped; now its storage
		 * writes, before its locks can go to anyone else */
		rc = fence_storage(d, c);
		if (rc == -EAGAIN) {
			if (!c->fence_waits)
				od_log(FM_LOGLVL_INFO, "conn %" PRIu64 ": a write of client %u is "
				       "in flight at the storage: its locks wait for it", c->id,
				       c->fence_client);
			c->fence_waits = true;
			i++;
			continue;
		}
		if (rc) {
			c->fence_level = 0;
			fence_failed(d, c, rc, now);
			i++;
			continue;
		}
		fence_done(d, c, c->fence_op, c->fence_level, now); /* moves the last conn to i */
	}
}

/*
 * FENCE: after op_done(0, level) no operation of that peer may land.  The
 * transport guarantees it (fm_ep_fence, transport.h): verbs destroys the
 * QP (RDMA); shm reports DEAD for a peer whose process exited, RDMA for one
 * that closed (it unmapped us before its BYE) unless kill is asked, and
 * otherwise kills it through its pidfd and reports DEAD once it exited.
 * fm_ep_fence never blocks: -EINPROGRESS leaves the connection `fencing`,
 * polled on its fm_ep_fence_fd (loop.c) and progressed by od_retry_fences
 * every loop iteration.
 */
static void exec_fence(struct fm_ownerd *d, const struct fm_action *a, uint64_t now)
{
	struct od_conn *c = od_conn_find(d, a->conn);

	if (!c) {
		/* left the array only after a fence (at least RDMA), or
		 * without a session */
		(void)fm_owner_op_done(d->o, a->op_id, 0, FM_FENCE_RDMA, NULL, 0, now);
		return;
	}
	if (c->fencing) {
		/* one in flight already; a later one may only ask for more */
		c->fence_kill = c->fence_kill || a->u.fence.kill;
		(void)fm_owner_op_done(d->o, c->fence_op, -EAGAIN, 0, NULL, 0, now);
	}
	c->fencing = true;
	c->fence_kill = c->fence_kill || a->u.fence.kill;
	c->fence_op = a->op_id;
	c->fence_client = a->u.fence.client_id;
	c->fence_token = a->u.fence.token;
	if (!c->lost)
		(void)od_outq_flush(c); /* let the BYE go out first */
	c->lost = true;
	od_retry_fences(d, now);
}

/* CLOSE: a connection that never joined -- nothing was granted to it, so
 * nothing to fence; what was sent to it (its BYE) goes out first. */
static void exec_close(struct fm_ownerd *d, const struct fm_action *a)
{
	struct od_conn *c = od_conn_find(d, a->conn);

	if (!c)
		return;
	if (!c->lost)
		(void)od_outq_flush(c);
	od_log(FM_LOGLVL_INFO, "conn %" PRIu64 ": closed (never joined)", c->id);
	od_conn_drop(d, c);
}

static void exec_notify(struct fm_ownerd *d, const struct fm_action *a)
{
	const struct fm_notify *n = &a->u.note;
	struct od_map *m;
	int rc;

	switch (n->type) {
	case FM_NOTE_SESSION_UP: {
		struct od_conn *c = od_conn_find(d, a->conn);

		/* authenticated: open its one-sided access now, before the
		 * WELCOME naming our regions is sent (transport.h
		 * fm_ep_grant: the grant is ordered before later messages) */
		if (c && !c->lost && (rc = fm_ep_grant(c->ep)) != 0)
			od_log(FM_LOGLVL_WARN, "conn %" PRIu64 ": grant failed: %s", c->id,
			       fm_errormsg()); /* the endpoint is CLOSED: lost below */
		od_log(FM_LOGLVL_INFO, "client %u: session up on conn %" PRIu64, n->client_id,
		       a->conn);
		break;
	}
	case FM_NOTE_SESSION_DOWN:
		od_log(FM_LOGLVL_INFO, "client %u: session down (status %d), locks reclaimed",
		       n->client_id, n->status);
		break;
	case FM_NOTE_REVOKED:
		od_log(FM_LOGLVL_INFO, "map %" PRIu64 ": revoked", n->map_id);
		m = od_map_find(d, n->map_id);
		if (m && m->pend)
			od_map_complete(d, m);
		break;
	case FM_NOTE_GRACE_OVER:
		/* every lease of the previous incarnations ran out: from now
		 * on only ours can outlive us (lease.h R6) */
		rc = d->record_owner ? fm_store_owner_settle(d->store, d->hold_ms) : 0;
		od_log(rc ? FM_LOGLVL_ERR : FM_LOGLVL_INFO, "restart grace over: lock tables "
		       "served%s%s", rc ? "; recording it failed: " : "", rc ? fm_errormsg() : "");
		break;
	default:
		od_log(FM_LOGLVL_DEBUG, "note %d", n->type);
		break;
	}
}

/* 2. set every bit of the PERSISTs in l (not durable yet), a range a call;
 *    a range of more grains than the call can count (INT_MAX) goes in
 *    pieces */
static void persist_apply(struct fm_ownerd *d, struct od_plist *l)
{
	for (size_t i = 0; i < l->n; i++) {
		struct od_persist *p = &l->v[i];
		const struct fm_action *a = &p->a;

		p->status = 0;
		if (a->type != FM_ACT_PERSIST)
			continue; /* CHANGED: the commit thread's (od_changed_run) */
		for (unsigned r = 0; r < a->u.persist.range_count && !p->status; r++) {
			uint64_t first = a->u.persist.ranges[r].first;
			uint64_t last = a->u.persist.ranges[r].last;

			for (;;) {
				/* an inverted range (wire.c refuses it) goes whole:
				 * the store answers -EINVAL, reported as -EIO */
				uint64_t end = first <= last && last - first >= OD_RANGE_PIECE ?
					first + OD_RANGE_PIECE - 1 : last;
				int rc = fm_store_split_set_range(d->store, a->u.persist.map_id,
								  a->u.persist.generation,
								  first, end);

				if (rc < 0) {
					p->status = (rc == -ESTALE || rc == -EPERM ||
						     rc == -ENOENT) ? -ESTALE : -EIO;
					od_log(FM_LOGLVL_WARN, "persist map %" PRIu64 " grains [%"
					       PRIu64 ", %" PRIu64 "]: %s", a->u.persist.map_id,
					       first, end, fm_errormsg());
					break;
				}
				if (end == last) /* also ends a range at UINT64_MAX */
					break;
				first = end + 1;
			}
		}
	}
}

/* Steps 4 and 5 for the PERSISTs of l, whose commits are over (statuses
 * final: 0 only if durable); empties l. */
static void persist_complete(struct fm_ownerd *d, struct od_plist *l, uint64_t now)
{
	d->persists_done += l->n;
	if (d->cm.running) /* the next commit may be ending: its mirror stores */
		pthread_mutex_lock(&d->cm.pub);
	for (size_t i = 0; i < l->n; i++) {
		struct od_persist *p = &l->v[i];
		struct od_map *m = od_map_find(d, p->a.u.persist.map_id);

		if (p->a.type == FM_ACT_CHANGED) {
			if (p->status == -EIO)
				od_log(FM_LOGLVL_ERR, "map %" PRIu64 ": %s not recorded: %s",
				       p->a.u.persist.map_id, p->a.u.persist.range_count ?
				       "change report" : "changed-unknown mark", p->errmsg);
			continue;
		}
		/* 4. publish strictly after durable */
		if (p->status == 0 && m)
			for (unsigned r = 0; r < p->a.u.persist.range_count; r++)
				od_publish_words(d, m, p->a.u.persist.ranges[r].first / 64,
					      p->a.u.persist.ranges[r].last / 64);
	}
	if (d->cm.running)
		pthread_mutex_unlock(&d->cm.pub);
	/* 5. acks */
	for (size_t i = 0; i < l->n; i++)
		(void)fm_owner_op_done(d->o, l->v[i].a.op_id, l->v[i].status, 0, NULL, 0, now);
	od_log(FM_LOGLVL_DEBUG, "group commit: %zu persists completed", l->n);
	l->n = 0;
}

void od_persist_kick(struct fm_ownerd *d)
{
	int rc;

	if (!d->persist.n)
		return;
	persist_apply(d, &d->persist); /* 2 */
	if (!od_committer_cheap(&d->cm) && od_committer_hand(&d->cm, &d->persist) == 0)
		return; /* 3 runs beside us */
	/* 3 here, waiting for the drain: the thread is idle and drains are
	 * cheaper than a hand-off (committer.c), or there is no memory to
	 * hand them over, or no thread (never after fm_ownerd_new) */
	rc = od_committer_here(&d->cm, d->store);
	if (rc < 0)
		od_log(FM_LOGLVL_ERR, "split commit failed: %s", fm_errormsg());
	for (size_t i = 0; i < d->persist.n; i++)
		if (rc < 0 && d->persist.v[i].status == 0 &&
		    d->persist.v[i].a.type == FM_ACT_PERSIST)
			d->persist.v[i].status = -EIO;
	od_changed_run(d->store, &d->persist);
	persist_complete(d, &d->persist, od_now_ms());
	od_drain_actions(d); /* the SPLIT_ACKs go out */
}

void od_persist_reap(struct fm_ownerd *d)
{
	char msg[sizeof(d->cm.errmsg)];

	if (!od_committer_reap(&d->cm, &d->reaped, false, NULL, msg, sizeof(msg)))
		return;
	if (*msg)
		od_log(FM_LOGLVL_ERR, "split commit failed: %s", msg);
	persist_complete(d, &d->reaped, od_now_ms()); /* 4, 5 */
	od_drain_actions(d);                          /* the SPLIT_ACKs go out */
}

void od_persist_finish(struct fm_ownerd *d)
{
	struct od_plist dropped = { 0 };
	char msg[sizeof(d->cm.errmsg)];

	if (d->cm.running) {
		(void)od_committer_reap(&d->cm, &d->reaped, true, &dropped, msg, sizeof(msg));
		if (*msg)
			od_log(FM_LOGLVL_ERR, "split commit failed: %s", msg);
		if (!d->fatal) {
			persist_complete(d, &d->reaped, od_now_ms());
			od_drain_actions(d);
		}
		d->reaped.n = 0;
	}
	if (dropped.n + d->persist.n)
		od_log(FM_LOGLVL_INFO, "stopping: %zu split commits not made durable, not "
		       "answered", dropped.n + d->persist.n);
	free(dropped.v);
	d->persist.n = 0;
}

void od_drain_actions(struct fm_ownerd *d)
{
	struct fm_action a;

	for (;;) {
		bool any = false;
		int rc;

		while ((rc = fm_owner_poll(d->o, &a)) > 0) {
			uint64_t now = od_now_ms();

			any = true;
			switch (a.type) {
			case FM_ACT_SEND:
				exec_send(d, &a);
				break;
			case FM_ACT_READ:
			case FM_ACT_CAS:
				od_local_exec(d, &a, now);
				break;
			case FM_ACT_PERSIST:
			case FM_ACT_CHANGED:
				/* 1. collected; applied at the end of the pass
				 *    (CHANGED: recorded after its batch's
				 *    commit, committer.c) */
				if (d->persist.n == d->persist.cap) {
					size_t nc = d->persist.cap ? d->persist.cap * 2 : 16;
					struct od_persist *np = realloc(d->persist.v,
									nc * sizeof(*np));

					if (!np) {
						(void)fm_owner_op_done(d->o, a.op_id, -EIO, 0, NULL,
								       0, now);
						break;
					}
					d->persist.v = np;
					d->persist.cap = nc;
				}
				d->persist.v[d->persist.n++] = (struct od_persist){ .a = a };
				break;
			case FM_ACT_FENCE:
				exec_fence(d, &a, now);
				break;
			case FM_ACT_CLOSE:
				exec_close(d, &a);
				break;
			case FM_ACT_NOTIFY:
				exec_notify(d, &a);
				break;
			default:
				break;
			}
		}
		if (rc < 0 && !d->fatal) {
			/* the state machine ran out of memory and is dead
			 * (proto.h): stop serving; the next incarnation's
			 * restart grace covers what this one granted */
			d->fatal = rc;
			od_log(FM_LOGLVL_ERR, "protocol state machine failed: %s", fm_errormsg());
		}
		/* our own CASes that completed (shm: all of them, at once):
		 * their answers, from outside the drain above */
		if (!d->fatal && od_local_reap(d) > 0)
			any = true;
		if (!any || d->fatal)
			return;
	}
}
