/* proto.c -- the agent's protocol thread: the session, the state machine,
 * and what only a message can do for an engine.
 *
 * One loop: (re)connect once the last session is CLOSED (quiesced, lease.h
 * R3) with a backoff that restarts only on JOINED; issue the engines'
 * requests; insert their READ answers into the cache; kick drains and
 * quiescence when a bracket ended; receive and feed messages; tick; then
 * sleep on the eventfd and the endpoint's fd (at most a 10 ms tick).
 *
 * A req is owned by its submitter (on its stack) unless it is `nowait`
 * (heap, freed here); the protocol thread touches it only while it is on a
 * list (under a->lock), and removes it before marking it done.
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "agent_priv.h"
#include "flashmeta/error.h"
#include "flashmeta/lease.h"
#include "flashmeta/lockword.h"

/* ------------------------------------------------------------ requests */

/* __: a->lock held */
static void __req_unlink(struct req **list, struct req *r)
{
	for (struct req **pp = list; *pp; pp = &(*pp)->next)
		if (*pp == r) {
			*pp = r->next;
			return;
		}
}

static void __req_done(struct fm_agent *a, struct req *r, int status, uint64_t word)
{
	static const uint64_t one = 1;

	if (r->nowait) {
		free(r);
		return;
	}
	/* an op's (ag_req_submit sets th): the thread polls adone, its
	 * eventfd wakes it */
	struct ag_thread *th = r->th;

	(void)a;
	r->status = status;
	r->out_word = word;
	atomic_store_explicit(&r->adone, true, memory_order_release);
	/* r may be reused from here on: th was read before */
	(void)!write(th->efd, &one, sizeof(one));
}

void ag_req_submit(struct fm_agent *a, struct req *r)
{
	pthread_mutex_lock(&a->lock);
	r->cookie = ++a->next_cookie;
	r->next = a->submit;
	a->submit = r;
	pthread_mutex_unlock(&a->lock);
	ag_wake(a);
}

bool ag_req_cancel(struct fm_agent *a, struct req *r)
{
	bool taken;

	pthread_mutex_lock(&a->lock);
	/* under a->lock a request is on one of the lists until it is done */
	taken = !atomic_load_explicit(&r->adone, memory_order_acquire);
	if (taken) {
		__req_unlink(&a->submit, r);
		__req_unlink(&a->retry, r);
		__req_unlink(&a->inflight, r);
	}
	pthread_mutex_unlock(&a->lock);
	return taken;
}

void ag_req_post(struct fm_agent *a, struct req *r)
{
	r->nowait = true;
	ag_req_submit(a, r);
}

/* Issue one request; false = keep it for a retry.  a->lock held. */
static bool __issue(struct fm_agent *a, struct req *r, uint64_t now)
{
	int dead = atomic_load(&a->dead), rc;

	if (dead) {
		__req_done(a, r, dead, 0);
		return true;
	}
	switch (r->type) {
	case REQ_LOCKWAIT:
		rc = fm_client_lock_wait(a->c, r->map_id, r->first, r->word, r->cookie, now);
		if (rc == -EBUSY)
			return false; /* another thread of ours waits for the word */
		if (rc == -EAGAIN && fm_client_state(a->c) == FM_CLIENT_ACTIVE)
			return false; /* no lock table yet: the owner's restart grace
				       * (lease.h R6); a closing session fails at once
				       * so brackets can end */
		break;
	case REQ_COMMIT:
		rc = fm_client_commit_range(a->c, r->map_id, r->first, r->last, r->cookie, now);
		if (!rc)
			atomic_fetch_add_explicit(&a->commits_sent, 1, memory_order_relaxed);
		break;
	case REQ_UNLOCKMSG:
		rc = fm_client_unlock_notify(a->c, r->map_id, r->first, r->word, now);
		__req_done(a, r, rc, 0);
		return true;
	case REQ_CLAIM:
		rc = fm_client_copy_claim(a->c, r->map_id, r->generation, r->done_batch,
					  r->done_next, r->max_grains, r->cookie, now);
		break;
	case REQ_QUERY:
		rc = fm_client_split_query(a->c, r->map_id, r->generation, r->first,
					   (uint32_t)(r->last - r->first + 1), r->cookie, now);
		break;
	default:
		rc = -EINVAL;
	}
	if (rc) {
		__req_done(a, r, rc, 0);
	} else {
		r->next = a->inflight;
		a->inflight = r;
	}
	return true;
}

static void issue_all(struct fm_agent *a, uint64_t now)
{
	struct req *list, *keep = NULL;

	pthread_mutex_lock(&a->lock);
	list = a->submit;
	a->submit = NULL;
	while (a->retry) { /* retried requests go first, in order */
		struct req *r = a->retry;

		a->retry = r->next;
		r->next = list;
		list = r;
	}
	while (list) {
		struct req *r = list;

		list = r->next;
		if (!__issue(a, r, now)) {
			r->next = keep;
			keep = r;
		}
	}
	a->retry = keep;
	pthread_mutex_unlock(&a->lock);
}

static void __fail_inflight(struct fm_agent *a, int status)
{
	while (a->inflight) {
		struct req *r = a->inflight;

		a->inflight = r->next;
		__req_done(a, r, status, 0);
	}
}

/* --------------------------------------------------------------- fills */

void ag_fill_post(struct fm_agent *a, const struct ag_fill *f)
{
	if (a->cfg.no_cache)
		return; /* nothing would be kept: spare the protocol thread */
	pthread_mutex_lock(&a->filllock);
	if (a->nfills == a->capfills) {
		size_t nc = a->capfills ? a->capfills * 2 : 64;
		struct ag_fill *n = nc <= 4096 ? realloc(a->fills, nc * sizeof(*n)) : NULL;

		if (!n) { /* the cache misses it: only a hit is lost */
			pthread_mutex_unlock(&a->filllock);
			return;
		}
		a->fills = n;
		a->capfills = nc;
	}
	a->fills[a->nfills++] = *f;
	pthread_mutex_unlock(&a->filllock);
}

/* Insert every run of set bits; a token that moved on refuses it. */
static void apply_fills(struct fm_agent *a)
{
	struct ag_fill *f;
	size_t n;

	pthread_mutex_lock(&a->filllock);
	f = a->fills;
	n = a->nfills;
	a->fills = NULL;
	a->nfills = a->capfills = 0;
	pthread_mutex_unlock(&a->filllock);
	for (size_t i = 0; i < n; i++) {
		int rc = 0;

		for (uint64_t s = 0; s < f[i].nbits && rc == 0;) {
			uint64_t e;

			if (!ag_fill_bit(&f[i], f[i].w0 + s)) {
				s++;
				continue;
			}
			for (e = s; e + 1 < f[i].nbits && ag_fill_bit(&f[i], f[i].w0 + e + 1); e++)
				;
			rc = fm_cache_insert(a->cache, f[i].map_id, f[i].token, f[i].w0 + s,
					     f[i].w0 + e);
			s = e + 1;
		}
	}
	free(f);
}

/* --------------------------------------------------- the state machine */

/* A lock the owner installed for a caller that stopped waiting: nobody
 * would release it, so we do (we own the endpoint). */
static void release_orphan(struct fm_agent *a, const struct fm_notify *n)
{
	struct fm_wire_mapdesc d;
	uint64_t old = 0, off;

	if (!a->ep || fm_client_map(a->c, n->map_id, &d, NULL) || !d.locks.len)
		return; /* the session is going: the owner reclaims it */
	off = fm_lockword_offset(n->grain, d.lock_shift);
	if (fm_ep_cas(a->ep, &d.locks, off, n->word, FM_LOCKWORD_FREE, &old))
		return;
	if (old != n->word && fm_lockword_same_holder(old, n->word) &&
	    (fm_lockword_flags(old) & FM_LOCKWORD_F_WAITERS))
		(void)fm_client_unlock_notify(a->c, n->map_id, n->grain, old, ag_now_ms());
}

static void on_note(struct fm_agent *a, const struct fm_notify *n)
{
	bool orphan = n->type == FM_NOTE_LOCKED && n->status == 0;

	pthread_mutex_lock(&a->lock);
	switch (n->type) {
	case FM_NOTE_JOINED:
		a->state = FM_CLIENT_ACTIVE;
		a->close_status = 0;
		a->st.joins++;
		atomic_store(&a->joined, true);
		atomic_store(&a->step_bound_ms,
			     fm_lease_margin_ms(fm_client_lease_term(a->c)) +
				     fm_lease_grace_ms(fm_client_lease_term(a->c)));
		pthread_cond_broadcast(&a->cond);
		break;
	case FM_NOTE_QUIESCED:
		a->st.quiesced++;
		break;
	case FM_NOTE_CLOSED:
		a->state = FM_CLIENT_CLOSED;
		a->close_status = n->status;
		a->st.closes++;
		pthread_cond_broadcast(&a->cond);
		break;
	case FM_NOTE_GRANTED:
		pthread_cond_broadcast(&a->cond);
		break;
	case FM_NOTE_RELEASED:
		a->st.releases++;
		break;
	case FM_NOTE_LOCK_LOST:
		atomic_fetch_add_explicit(&a->locks_lost, 1, memory_order_relaxed);
		break;
	case FM_NOTE_LOCKED:
	case FM_NOTE_COMMITTED:
	case FM_NOTE_COPY_BATCH:
	case FM_NOTE_SPLIT_ANSWER:
		for (struct req *r = a->inflight; r; r = r->next)
			if (r->cookie == n->cookie) {
				__req_unlink(&a->inflight, r);
				if (n->type == FM_NOTE_SPLIT_ANSWER)
					memcpy(r->bits, n->query.bits, sizeof(r->bits));
				if (n->type == FM_NOTE_COPY_BATCH)
					r->batch = (struct ag_batch){
						.status = n->copy.status, .wait_ms = n->copy.wait_ms,
						.rate = n->copy.rate, .generation = n->generation,
						.id = n->copy.batch_id, .first = n->copy.first,
						.last = n->copy.last };
				__req_done(a, r, n->status, n->word);
				orphan = false;
				break;
			}
		break;
	default:
		orphan = false;
		break;
	}
	pthread_mutex_unlock(&a->lock);
	if (orphan)
		release_orphan(a, n);
}

/* withdraw the endpoint from the engines, then delete it.  Every engine
 * thread is woken: one asleep in ag_idle (up to 100 ms) on an op of the
 * old lane would otherwise keep its I/O's bracket open that long, and the
 * session's quiescence (lease.h R3) waits for the brackets -- over shm the
 * owner kills a client that does not vouch for its quiesced session soon
 * after it rejoins.  `kicked` tells ag_progress to take the wake-up back
 * (else the eventfd stays readable and every sleep returns at once).  A
 * context is freed only after it left this list under eplock, so its
 * eventfd is open here. */
static void ep_drop(struct fm_agent *a)
{
	static const uint64_t one = 1;
	struct fm_ep *ep = a->ep;

	if (!ep)
		return;
	pthread_mutex_lock(&a->eplock);
	a->ep_pub = NULL;
	atomic_fetch_add(&a->ep_gen, 1);
	for (struct ag_thread *th = a->threads; th; th = th->next) {
		/* the write first: whoever clears kicked finds it to read */
		(void)!write(th->efd, &one, sizeof(one));
		atomic_store_explicit(&th->kicked, true, memory_order_release);
	}
	pthread_mutex_unlock(&a->eplock);
	a->ep = NULL;
	fm_ep_delete(&ep);
}

static void drain(struct fm_agent *a)
{
	struct fm_action act;

	for (;;) {
		uint64_t now = ag_now_ms();
		int rc = fm_client_poll(a->c, &act);

		if (rc < 0 && !atomic_load(&a->dead)) {
			/* the state machine ran out of memory and is dead
			 * (proto.h): close, fail everything, from now on */
			atomic_store(&a->dead, rc);
			ep_drop(a);
			pthread_mutex_lock(&a->lock);
			a->state = FM_CLIENT_CLOSED;
			a->close_status = rc;
			__fail_inflight(a, rc);
			pthread_cond_broadcast(&a->cond);
			pthread_mutex_unlock(&a->lock);
		}
		if (rc <= 0)
			break;
		switch (act.type) {
		case FM_ACT_SEND:
			if (a->ep && fm_ep_send(a->ep, act.u.msg.buf, act.u.msg.len, 0)) {
				ep_drop(a);
				(void)fm_client_disconnected(a->c, now);
			}
			break;
		case FM_ACT_READ:
		case FM_ACT_CAS: {
			/* the engines do their own one-sided work; the machine asks
			 * for some only for callers of its own lock path */
			uint64_t old = 0;
			uint8_t buf[64];

			if (!a->ep)
				rc = -ECONNRESET;
			else if (act.type == FM_ACT_CAS)
				rc = fm_ep_cas(a->ep, &act.u.io.region, act.u.io.offset,
					       act.u.io.compare, act.u.io.swap, &old);
			else
				rc = -EOPNOTSUPP; /* no caller of ours fetches this way */
			(void)fm_client_op_done(a->c, act.op_id, rc ? -ECONNRESET : 0, old, buf, 0,
						now);
			break;
		}
		case FM_ACT_CLOSE:
			ep_drop(a);
			break;
		case FM_ACT_NOTIFY:
			on_note(a, &act.u.note);
			break;
		default:
			break;
		}
	}
}

/* An engine lane of this session's endpoint got no completions for
 * AG_OP_WAIT_MS (ops.c, lane_abandon): a CAS of it may have taken a lock
 * word that nobody of ours will release, and what else the endpoint still
 * delivers cannot be trusted to come.  The session ends as when the
 * endpoint closes: the owner fences it and reclaims its words (lease.h),
 * the brackets end, and the loop joins again.  A lane of an endpoint
 * already dropped asks for nothing. */
static void lane_broken(struct fm_agent *a)
{
	uint64_t gen = atomic_exchange(&a->lane_broken, 0);

	if (!gen || !a->ep || gen != atomic_load(&a->ep_gen))
		return;
	ep_drop(a);
	(void)fm_client_disconnected(a->c, ag_now_ms());
	drain(a);
}

static void connect_now(struct fm_agent *a)
{
	struct fm_ep *ep = NULL;
	int rc = fm_connect(a->t, a->addr, NULL, 0, 1000, &ep);

	if (rc)
		return;
	a->ep = ep;
	pthread_mutex_lock(&a->eplock);
	a->ep_pub = ep;
	atomic_fetch_add(&a->ep_gen, 1);
	pthread_mutex_unlock(&a->eplock);
	pthread_mutex_lock(&a->lock);
	a->st.connects++;
	pthread_mutex_unlock(&a->lock);
	(void)fm_client_connect(a->c, ag_now_ms());
}

void *ag_proto_main(void *arg)
{
	struct fm_agent *a = arg;
	uint32_t backoff = a->cfg.retry_min_ms;
	uint64_t next_connect = 0;
	uint8_t buf[FM_WIRE_MAX_MSG];

	while (!atomic_load(&a->stop)) {
		uint64_t now = ag_now_ms();
		struct pollfd pfd[2];
		int n = 1;

		/* (re)connect with backoff -- only once the last session is
		 * CLOSED, i.e. quiesced (lease.h R3).  The backoff grows with
		 * every attempt that does not end in a joined session (a
		 * refused key included) and restarts only on JOINED. */
		if (atomic_exchange(&a->joined, false))
			backoff = a->cfg.retry_min_ms;
		if (!a->ep && now >= next_connect && !atomic_load(&a->dead) &&
		    (fm_client_state(a->c) == FM_CLIENT_IDLE ||
		     fm_client_state(a->c) == FM_CLIENT_CLOSED)) {
			connect_now(a);
			next_connect = ag_now_ms() + backoff;
			backoff = backoff * 2 > a->cfg.retry_max_ms ? a->cfg.retry_max_ms
								    : backoff * 2;
			drain(a);
		}

		lane_broken(a);
		issue_all(a, ag_now_ms());
		drain(a);
		apply_fills(a);
		if (atomic_exchange(&a->kick, false))
			(void)fm_client_kick(a->c, ag_now_ms());
		drain(a);

		/* messages from the owner */
		if (a->ep) {
			int k = fm_ep_progress(a->ep);

			while (k >= 0 && a->ep) {
				int len = fm_ep_recv(a->ep, buf, sizeof(buf), FM_NONBLOCK);

				if (len < 0)
					break;
				(void)fm_client_recv(a->c, buf, (size_t)len, ag_now_ms());
				drain(a);
			}
			if (a->ep && fm_ep_state(a->ep, NULL) == FM_EP_CLOSED &&
			    fm_ep_progress(a->ep) < 0) {
				ep_drop(a);
				(void)fm_client_disconnected(a->c, ag_now_ms());
				drain(a);
			}
		}
		(void)fm_client_tick(a->c, ag_now_ms());
		drain(a);
		if (!a->ep) {
			/* no session: nothing in flight can complete */
			if (fm_client_state(a->c) == FM_CLIENT_ACTIVE)
				(void)fm_client_disconnected(a->c, ag_now_ms());
			drain(a);
			pthread_mutex_lock(&a->lock);
			__fail_inflight(a, atomic_load(&a->dead) ? atomic_load(&a->dead)
								  : -ECONNRESET);
			if (a->state == FM_CLIENT_ACTIVE)
				a->state = fm_client_state(a->c);
			pthread_mutex_unlock(&a->lock);
		}

		pfd[0] = (struct pollfd){ .fd = a->efd, .events = POLLIN };
		if (a->ep)
			pfd[n++] = (struct pollfd){ .fd = fm_ep_fd(a->ep), .events = POLLIN };
		if (poll(pfd, (nfds_t)n, 10) > 0 && pfd[0].revents) {
			uint64_t cnt;

			(void)!read(a->efd, &cnt, sizeof(cnt));
		}
	}
	if (a->ep) {
		/* say goodbye: no bracket is open (fm_agent_delete's rule), so
		 * BYE{QUIESCED} goes out at once and the owner releases our
		 * locks without waiting for the lease or fencing us -- over
		 * shm a fence would kill this very process */
		(void)fm_client_leave(a->c, ag_now_ms());
		drain(a);
	}
	if (a->ep) {
		ep_drop(a);
		(void)fm_client_disconnected(a->c, ag_now_ms());
		drain(a);
	}
	pthread_mutex_lock(&a->lock);
	__fail_inflight(a, -ECONNRESET);
	pthread_mutex_unlock(&a->lock);
	return NULL;
}
