/* agent.c -- the client agent: fm_client state machine on a protocol thread.
 *
 * Threads and locks:
 *
 *   protocol thread  owns the transport endpoint, the fm_client and the
 *                    cache's writer side; it is the only thread calling
 *                    fm_client_* (except io_begin/io_end, which are any-
 *                    thread by contract) and fm_ep_*.
 *   engine threads   submit a struct req (under a->lock), write the eventfd,
 *                    and sleep on a->cond until req->done.  They read the
 *                    cache with fm_cache_lookup (lock-free by contract).
 *
 *   a->lock protects: the submit list, the in-flight list, every req's
 *   done/status/split, the map table (maps[], nmaps), state, close_status,
 *   and the counters.  a->cond is broadcast whenever a req completes or the
 *   session / a grant changes.
 *
 * A req is owned by its submitter; the protocol thread touches it only
 * while it is on a list (under a->lock), and removes it before marking it
 * done, so the submitter may free it (it lives on its stack) once done.
 *
 * Mapping knowledge: the state machine keeps mapping descriptors private,
 * so the protocol thread decodes each datagram (fm_wire_decode) before
 * feeding it and records WELCOME / MAP_GRANT descriptors and
 * RELEASE_REQUESTs for the planner (geometry, state, generation).
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "flashmeta/agent.h"
#include "flashmeta/error.h"
#include "flashmeta/lease.h"
#include "flashmeta/proto_client.h"
#include "flashmeta/transport.h"
#include "flashmeta/wire.h"

#define AG_LOCAL_BUF (64u * 1024) /* READ destination */
#define AG_MAX_MAPS FM_WIRE_MAX_MAPS

enum req_type { REQ_FETCH = 1, REQ_LOCK, REQ_UNLOCK, REQ_COMMIT, REQ_RAWREAD };

struct req {
	enum req_type type;
	uint64_t map_id, grain, cookie;
	void *buf;        /* RAWREAD */
	uint64_t off;
	size_t len;
	int status;
	bool split;
	bool done;
	struct req *next;
};

struct ag_map {
	struct fm_agent_map pub;
	struct fm_region_desc bitmap; /* wire descriptor */
};

struct fm_agent {
	struct fm_agent_cfg cfg;
	uint8_t key[64];
	char *addr, *provider, *device;
	struct fm_transport *t;
	struct fm_region *local;  /* READ destination (transport handle) */
	struct fm_cache *cache;
	struct fm_client *c;
	struct fm_ep *ep;         /* protocol thread only */
	pthread_t thread;
	int efd;                  /* wakes the protocol thread */
	atomic_bool stop;
	atomic_bool kick;
	atomic_bool joined;       /* a session joined: reset the backoff */
	int dead;                 /* protocol thread: the state machine died
				   * (latched -ENOMEM): every call fails */
	_Atomic uint64_t steps, steps_overdue, steps_refused;
	_Atomic uint32_t step_bound_ms; /* M + G of the default lease model */

	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct req *submit;       /* new requests (LIFO is fine: independent) */
	struct req *inflight;     /* issued, waiting for their NOTE */
	struct req *retry;        /* LOCK that got -EBUSY: re-issued each round */
	uint64_t next_cookie;
	struct ag_map maps[AG_MAX_MAPS];
	unsigned nmaps;
	int state;                /* enum fm_client_state, mirrored */
	int close_status;         /* status of the last CLOSED note */
	struct fm_agent_stats st;
};

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void deadline_ts(struct timespec *ts, uint32_t ms)
{
	clock_gettime(CLOCK_MONOTONIC, ts);
	ts->tv_sec += ms / 1000;
	ts->tv_nsec += (long)(ms % 1000) * 1000000;
	if (ts->tv_nsec >= 1000000000) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000;
	}
}

static void wake(struct fm_agent *a)
{
	static const uint64_t one = 1;

	(void)!write(a->efd, &one, sizeof(one));
}

/* ----------------------------------------------------------- map table */

/* __: a->lock held */
static struct ag_map *__map_find(struct fm_agent *a, uint64_t id)
{
	for (unsigned i = 0; i < a->nmaps; i++)
		if (a->maps[i].pub.map_id == id)
			return &a->maps[i];
	return NULL;
}

static void __map_set(struct fm_agent *a, const struct fm_wire_mapdesc *d)
{
	struct ag_map *m = __map_find(a, d->map_id);

	if (!m) {
		if (a->nmaps == AG_MAX_MAPS)
			return;
		m = &a->maps[a->nmaps++];
	}
	m->pub = (struct fm_agent_map){
		.map_id = d->map_id, .generation = d->generation,
		.grain_count = d->grain_count, .grain_shift = d->grain_shift,
		.state = (enum fm_map_state)d->state, .granted = true,
	};
	m->bitmap = d->bitmap;
}

/* look at what the owner says before the state machine does */
static void snoop(struct fm_agent *a, const void *buf, size_t len)
{
	struct fm_msg m;

	if (fm_wire_decode(buf, len, &m))
		return; /* the state machine will refuse it */
	pthread_mutex_lock(&a->lock);
	switch (m.type) {
	case FM_MSG_WELCOME:
		atomic_store(&a->step_bound_ms,
			     fm_lease_margin_ms(m.u.welcome.lease_term_ms) +
				     fm_lease_grace_ms(m.u.welcome.lease_term_ms));
		a->nmaps = 0;
		for (unsigned i = 0; i < m.u.welcome.map_count; i++)
			__map_set(a, &m.u.welcome.maps[i]);
		break;
	case FM_MSG_MAP_GRANT:
		__map_set(a, &m.u.map_grant.map);
		pthread_cond_broadcast(&a->cond);
		break;
	case FM_MSG_RELEASE_REQUEST: {
		struct ag_map *am = __map_find(a, m.u.release.map_id);

		if (am)
			am->pub.granted = false;
		a->st.releases++;
		break;
	}
	default:
		break;
	}
	pthread_mutex_unlock(&a->lock);
}

/* --------------------------------------------------------- requests */

static void __req_unlink(struct req **list, struct req *r)
{
	for (struct req **pp = list; *pp; pp = &(*pp)->next)
		if (*pp == r) {
			*pp = r->next;
			return;
		}
}

static void __req_done(struct fm_agent *a, struct req *r, int status, bool split)
{
	r->status = status;
	r->split = split;
	r->done = true;
	pthread_cond_broadcast(&a->cond);
}

/* submit and wait; returns req->status */
static int req_run(struct fm_agent *a, struct req *r)
{
	struct timespec ts;
	int rc = 0;

	deadline_ts(&ts, a->cfg.wait_ms + 5000);
	pthread_mutex_lock(&a->lock);
	r->cookie = ++a->next_cookie;
	r->done = false;
	r->next = a->submit;
	a->submit = r;
	pthread_mutex_unlock(&a->lock);
	wake(a);
	pthread_mutex_lock(&a->lock);
	while (!r->done && rc != ETIMEDOUT)
		rc = pthread_cond_timedwait(&a->cond, &a->lock, &ts);
	if (!r->done) {
		/* give up: take it off whatever list holds it */
		__req_unlink(&a->submit, r);
		__req_unlink(&a->retry, r);
		__req_unlink(&a->inflight, r);
		r->status = -ETIMEDOUT;
	}
	pthread_mutex_unlock(&a->lock);
	if (r->status < 0 && r->status != -ETIMEDOUT)
		return fm_err(r->status, "agent: %s of map %" PRIu64 " grain %" PRIu64 ": %s",
			      r->type == REQ_FETCH ? "fetch" : r->type == REQ_LOCK ? "lock" :
			      r->type == REQ_COMMIT ? "commit" : r->type == REQ_UNLOCK ?
			      "unlock" : "read", r->map_id, r->grain, strerror(-r->status));
	if (r->status == -ETIMEDOUT)
		return fm_err(-ETIMEDOUT, "agent: no answer from the owner within %u ms",
			      a->cfg.wait_ms + 5000);
	return r->status;
}

/* protocol thread: issue one request; false = keep it for a retry */
static bool issue(struct fm_agent *a, struct req *r, uint64_t now)
{
	int rc;

	if (a->dead) {
		__req_done(a, r, a->dead, false);
		return true;
	}

	switch (r->type) {
	case REQ_FETCH:
		rc = fm_client_fetch(a->c, r->map_id, r->grain, r->cookie, now);
		a->st.fetches++;
		break;
	case REQ_LOCK:
		rc = fm_client_lock(a->c, r->map_id, r->grain, r->cookie, now);
		if (rc == -EBUSY)
			return false; /* another thread of ours has the word */
		if (rc == -EAGAIN && fm_client_state(a->c) == FM_CLIENT_ACTIVE)
			return false; /* no lock table yet: the owner's restart
				       * grace (lease.h R6); a closing session
				       * fails at once so brackets can end */
		a->st.locks++;
		break;
	case REQ_COMMIT:
		rc = fm_client_commit(a->c, r->map_id, r->grain, r->cookie, now);
		a->st.commits++;
		break;
	case REQ_UNLOCK:
		rc = fm_client_unlock(a->c, r->map_id, r->grain, now);
		a->st.unlocks++;
		__req_done(a, r, rc, false);
		return true;
	case REQ_RAWREAD: {
		struct ag_map *m = __map_find(a, r->map_id);

		if (!m)
			rc = -ENOENT;
		else if (!a->ep)
			rc = -ECONNRESET;
		else if (r->len > AG_LOCAL_BUF)
			rc = -ERANGE;
		else {
			rc = fm_ep_read(a->ep, a->local, 0, &m->bitmap, r->off, r->len);
			if (!rc)
				memcpy(r->buf, fm_region_ptr(a->local), r->len);
		}
		__req_done(a, r, rc, false);
		return true;
	}
	default:
		rc = -EINVAL;
	}
	if (rc) {
		__req_done(a, r, rc, false);
	} else {
		r->next = a->inflight;
		a->inflight = r;
	}
	return true;
}

static void __fail_inflight(struct fm_agent *a, int status)
{
	while (a->inflight) {
		struct req *r = a->inflight;

		a->inflight = r->next;
		__req_done(a, r, status, false);
	}
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
		pthread_cond_broadcast(&a->cond);
		break;
	case FM_NOTE_QUIESCED:
		a->st.quiesced++;
		break;
	case FM_NOTE_CLOSED:
		a->state = FM_CLIENT_CLOSED;
		a->close_status = n->status;
		a->st.closes++;
		for (unsigned i = 0; i < a->nmaps; i++)
			a->maps[i].pub.granted = false;
		pthread_cond_broadcast(&a->cond);
		break;
	case FM_NOTE_GRANTED:
		pthread_cond_broadcast(&a->cond);
		break;
	case FM_NOTE_LOCK_LOST:
		a->st.locks_lost++;
		break;
	case FM_NOTE_FETCHED:
	case FM_NOTE_LOCKED:
	case FM_NOTE_COMMITTED:
		for (struct req *r = a->inflight; r; r = r->next)
			if (r->cookie == n->cookie) {
				__req_unlink(&a->inflight, r);
				__req_done(a, r, n->status, n->split);
				orphan = false;
				break;
			}
		if (n->type == FM_NOTE_COMMITTED && a->retry)
			wake(a); /* a word may be free for a waiting local locker */
		break;
	default:
		orphan = false;
		break;
	}
	pthread_mutex_unlock(&a->lock);
	/* a lock granted after its caller gave up waiting: nobody would
	 * unlock it, so give it back now (we are the protocol thread) */
	if (orphan)
		(void)fm_client_unlock(a->c, n->map_id, n->grain, now_ms());
}

/* ---------------------------------------------------- protocol thread */

static void drop_ep(struct fm_agent *a, uint64_t now)
{
	if (!a->ep)
		return;
	fm_ep_delete(&a->ep);
	(void)fm_client_disconnected(a->c, now);
}

/*
 * What a failed one-sided operation means to the protocol: the endpoint
 * closed under it (peer gone, flushed, refused key) is a broken session,
 * -ECONNRESET, whatever errno the provider chose; a local check failing
 * on an endpoint still UP means the owner's descriptor was bad, -EPROTO.
 */
static int ag_op_status(struct fm_agent *a, int rc)
{
	if (rc >= 0)
		return rc;
	if (!a->ep || fm_ep_state(a->ep, NULL) != FM_EP_UP)
		return -ECONNRESET;
	return -EPROTO;
}

static void drain(struct fm_agent *a)
{
	struct fm_action act;

	for (;;) {
		uint64_t now = now_ms();
		int rc = fm_client_poll(a->c, &act);

		if (rc < 0 && !a->dead) {
			/* the state machine ran out of memory and is dead
			 * (proto.h): close, fail everything, from now on */
			a->dead = rc;
			if (a->ep)
				fm_ep_delete(&a->ep);
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
			if (a->ep && fm_ep_send(a->ep, act.u.msg.buf, act.u.msg.len, 0))
				drop_ep(a, now);
			break;
		case FM_ACT_READ: {
			rc = !a->ep ? -ECONNRESET : act.u.io.len > AG_LOCAL_BUF ? -EIO :
			     ag_op_status(a, fm_ep_read(a->ep, a->local, 0, &act.u.io.region,
							act.u.io.offset, act.u.io.len));
			(void)fm_client_op_done(a->c, act.op_id, rc, 0, fm_region_ptr(a->local),
						rc ? 0 : act.u.io.len, now);
			break;
		}
		case FM_ACT_CAS: {
			uint64_t old = 0;

			rc = !a->ep ? -ECONNRESET :
			     ag_op_status(a, fm_ep_cas(a->ep, &act.u.io.region, act.u.io.offset,
						       act.u.io.compare, act.u.io.swap, &old));
			(void)fm_client_op_done(a->c, act.op_id, rc, old, NULL, 0, now);
			break;
		}
		case FM_ACT_CLOSE:
			if (a->ep)
				fm_ep_delete(&a->ep);
			break;
		case FM_ACT_NOTIFY:
			on_note(a, &act.u.note);
			break;
		default:
			break;
		}
	}
}

static void *proto_main(void *arg)
{
	struct fm_agent *a = arg;
	uint32_t backoff = a->cfg.retry_min_ms;
	uint64_t next_connect = 0;
	uint8_t buf[FM_WIRE_MAX_MSG];
	uint32_t tick = 10;

	while (!atomic_load(&a->stop)) {
		uint64_t now = now_ms();
		struct pollfd pfd[2];
		struct req *list, *keep = NULL;
		int n = 1;

		/* (re)connect with backoff -- only once the last session is
		 * CLOSED, i.e. quiesced (lease.h R3).  The backoff grows with
		 * every attempt that does not end in a joined session (a
		 * refused key included) and restarts only on JOINED. */
		if (atomic_load(&a->joined)) {
			atomic_store(&a->joined, false);
			backoff = a->cfg.retry_min_ms;
		}
		if (!a->ep && now >= next_connect && !a->dead &&
		    (fm_client_state(a->c) == FM_CLIENT_IDLE ||
		     fm_client_state(a->c) == FM_CLIENT_CLOSED)) {
			int rc = fm_connect(a->t, a->addr, NULL, 0, 1000, &a->ep);

			if (rc == 0) {
				pthread_mutex_lock(&a->lock);
				a->st.connects++;
				pthread_mutex_unlock(&a->lock);
				(void)fm_client_connect(a->c, now_ms());
			}
			next_connect = now_ms() + backoff;
			backoff = backoff * 2 > a->cfg.retry_max_ms ? a->cfg.retry_max_ms
								    : backoff * 2;
			drain(a);
		}

		/* engine requests */
		pthread_mutex_lock(&a->lock);
		list = a->submit;
		a->submit = NULL;
		while (a->retry) { /* retried locks go first, in order */
			struct req *r = a->retry;

			a->retry = r->next;
			r->next = list;
			list = r;
		}
		while (list) {
			struct req *r = list;

			list = r->next;
			if (!issue(a, r, now_ms())) {
				r->next = keep;
				keep = r;
			}
		}
		a->retry = keep;
		pthread_mutex_unlock(&a->lock);
		drain(a);
		if (atomic_exchange(&a->kick, false))
			(void)fm_client_kick(a->c, now_ms());
		drain(a);

		/* messages from the owner */
		if (a->ep) {
			int k = fm_ep_progress(a->ep);
			const char *why = NULL;

			while (k >= 0 && a->ep) {
				int len = fm_ep_recv(a->ep, buf, sizeof(buf), FM_NONBLOCK);

				if (len < 0)
					break;
				snoop(a, buf, (size_t)len);
				(void)fm_client_recv(a->c, buf, (size_t)len, now_ms());
				drain(a);
			}
			if (a->ep && fm_ep_state(a->ep, &why) == FM_EP_CLOSED &&
			    fm_ep_progress(a->ep) < 0) {
				drop_ep(a, now_ms());
				drain(a);
			}
		}
		(void)fm_client_tick(a->c, now_ms());
		drain(a);
		if (!a->ep) {
			/* no session: nothing in flight can complete */
			if (fm_client_state(a->c) == FM_CLIENT_ACTIVE)
				(void)fm_client_disconnected(a->c, now_ms());
			drain(a);
			pthread_mutex_lock(&a->lock);
			__fail_inflight(a, a->dead ? a->dead : -ECONNRESET);
			if (a->state == FM_CLIENT_ACTIVE)
				a->state = fm_client_state(a->c);
			pthread_mutex_unlock(&a->lock);
		}

		pfd[0] = (struct pollfd){ .fd = a->efd, .events = POLLIN };
		if (a->ep)
			pfd[n++] = (struct pollfd){ .fd = fm_ep_fd(a->ep), .events = POLLIN };
		if (poll(pfd, (nfds_t)n, (int)tick) > 0 && pfd[0].revents) {
			uint64_t cnt;

			(void)!read(a->efd, &cnt, sizeof(cnt));
		}
	}
	if (a->ep) {
		fm_ep_delete(&a->ep);
		(void)fm_client_disconnected(a->c, now_ms());
		drain(a);
	}
	pthread_mutex_lock(&a->lock);
	__fail_inflight(a, -ECONNRESET);
	pthread_mutex_unlock(&a->lock);
	return NULL;
}

/* ------------------------------------------------------------ public */

int fm_agent_new(struct fm_agent **out, const struct fm_agent_cfg *cfg)
{
	struct fm_transport_cfg tcfg = { .wait_mode = FM_WAIT_EVENT, .op_timeout_ms = 3000 };
	struct fm_cache_cfg ccfg = { 0 };
	struct fm_client_cfg kcfg = { 0 };
	struct fm_agent *a;
	int rc;

	if (!out || !cfg || !cfg->addr || !cfg->key || !cfg->key_len || cfg->key_len > 64 ||
	    !cfg->client_id || cfg->client_id > FM_WIRE_CLIENT_ID_MAX)
		return fm_err(-EINVAL, "agent: addr, client id 1..65535 and a 1..64 byte key "
				       "are required");
	a = calloc(1, sizeof(*a));
	if (!a)
		return fm_err(-ENOMEM, "agent");
	a->cfg = *cfg;
	memcpy(a->key, cfg->key, cfg->key_len);
	a->cfg.key = a->key;
	a->addr = strdup(cfg->addr);
	a->provider = strdup(cfg->provider ? cfg->provider : "shm");
	a->device = cfg->device ? strdup(cfg->device) : NULL;
	a->cfg.addr = a->addr;
	if (!a->cfg.wait_ms)
		a->cfg.wait_ms = 10000;
	if (!a->cfg.retry_min_ms)
		a->cfg.retry_min_ms = 50;
	if (!a->cfg.retry_max_ms)
		a->cfg.retry_max_ms = 1000;
	a->state = FM_CLIENT_IDLE;
	pthread_mutex_init(&a->lock, NULL);
	{
		pthread_condattr_t ca;

		pthread_condattr_init(&ca);
		pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
		pthread_cond_init(&a->cond, &ca);
		pthread_condattr_destroy(&ca);
	}
	a->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (a->efd < 0 || !a->addr || !a->provider) {
		rc = fm_err(-ENOMEM, "agent: eventfd/strdup");
		goto out_free;
	}
	tcfg.provider = a->provider;
	tcfg.device = a->device;
	rc = fm_transport_new(&a->t, &tcfg);
	if (rc)
		goto out_free;
	rc = fm_region_new(a->t, AG_LOCAL_BUF, FM_ACCESS_LOCAL, &a->local);
	if (rc)
		goto out_t;
	ccfg.budget_bytes = cfg->cache_budget;
	rc = fm_cache_new(&a->cache, &ccfg);
	if (rc)
		goto out_r;
	kcfg.client_id = cfg->client_id;
	kcfg.key = a->key;
	kcfg.key_len = cfg->key_len;
	kcfg.cache = a->cache;
	rc = fm_client_new(&a->c, &kcfg);
	if (rc)
		goto out_cache;
	rc = -pthread_create(&a->thread, NULL, proto_main, a);
	if (rc) {
		rc = fm_err(rc, "agent: pthread_create");
		goto out_client;
	}
	*out = a;
	return 0;
out_client:
	fm_client_delete(&a->c);
out_cache:
	fm_cache_delete(&a->cache);
out_r:
	fm_region_delete(&a->local);
out_t:
	fm_transport_delete(&a->t);
out_free:
	if (a->efd >= 0)
		close(a->efd);
	free(a->addr);
	free(a->provider);
	free(a->device);
	free(a);
	return rc;
}

void fm_agent_delete(struct fm_agent **ap)
{
	struct fm_agent *a = ap ? *ap : NULL;

	if (!a)
		return;
	atomic_store(&a->stop, true);
	wake(a);
	pthread_join(a->thread, NULL);
	fm_client_delete(&a->c);
	fm_cache_delete(&a->cache);
	fm_region_delete(&a->local);
	fm_transport_delete(&a->t);
	close(a->efd);
	pthread_mutex_destroy(&a->lock);
	pthread_cond_destroy(&a->cond);
	free(a->addr);
	free(a->provider);
	free(a->device);
	free(a);
	*ap = NULL;
}

int fm_agent_wait_active(struct fm_agent *a, int timeout_ms)
{
	struct timespec ts;
	int rc = 0;

	deadline_ts(&ts, timeout_ms < 0 ? a->cfg.wait_ms : (uint32_t)timeout_ms);
	pthread_mutex_lock(&a->lock);
	while (a->state != FM_CLIENT_ACTIVE && rc != ETIMEDOUT)
		rc = pthread_cond_timedwait(&a->cond, &a->lock, &ts);
	rc = a->state == FM_CLIENT_ACTIVE ? 0 : a->close_status ? a->close_status : -ETIMEDOUT;
	pthread_mutex_unlock(&a->lock);
	if (rc == -EACCES)
		return fm_err(rc, "agent: the owner at %s refused client %u: wrong key, or a "
			      "client id it does not allow", a->addr, a->cfg.client_id);
	if (rc)
		return fm_err(rc, "agent: no session with %s: %s", a->addr, strerror(-rc));
	return 0;
}

int fm_agent_maps(struct fm_agent *a, struct fm_agent_map *out, size_t cap)
{
	int n;

	pthread_mutex_lock(&a->lock);
	for (unsigned i = 0; i < a->nmaps && i < cap; i++)
		out[i] = a->maps[i].pub;
	n = (int)a->nmaps;
	pthread_mutex_unlock(&a->lock);
	return n;
}

int fm_agent_map_get(struct fm_agent *a, uint64_t map_id, struct fm_agent_map *out)
{
	struct ag_map *m;

	pthread_mutex_lock(&a->lock);
	m = __map_find(a, map_id);
	if (m)
		*out = m->pub;
	pthread_mutex_unlock(&a->lock);
	return m ? 0 : fm_err(-ENOENT, "agent: map %" PRIu64 " unknown", map_id);
}

int fm_agent_io_begin(struct fm_agent *a, uint64_t map_id, struct fm_agent_io *io)
{
	struct timespec ts;
	int rc = 0;

	deadline_ts(&ts, a->cfg.wait_ms);
	pthread_mutex_lock(&a->lock);
	for (;;) {
		struct ag_map *m = __map_find(a, map_id);

		if (a->state == FM_CLIENT_ACTIVE && m && m->pub.granted &&
		    fm_client_io_begin(a->c, map_id, now_ms()) == 0) {
			/* pinned: a release now waits for io_end.  The
			 * descriptor read under a->lock is the granted one. */
			io->map_id = map_id;
			io->trusted = true;
			io->map = m->pub;
			pthread_mutex_unlock(&a->lock);
			return 0;
		}
		if (rc == ETIMEDOUT)
			break;
		/* sleep until a grant/join, re-check at least every 20 ms */
		{
			struct timespec step;

			deadline_ts(&step, 20);
			if (step.tv_sec > ts.tv_sec ||
			    (step.tv_sec == ts.tv_sec && step.tv_nsec > ts.tv_nsec))
				step = ts;
			rc = pthread_cond_timedwait(&a->cond, &a->lock, &step);
			if (rc == ETIMEDOUT) {
				struct timespec now;

				clock_gettime(CLOCK_MONOTONIC, &now);
				rc = (now.tv_sec > ts.tv_sec ||
				      (now.tv_sec == ts.tv_sec && now.tv_nsec >= ts.tv_nsec))
					     ? ETIMEDOUT : 0;
			}
		}
	}
	pthread_mutex_unlock(&a->lock);
	io->trusted = false;
	return fm_err(-ETIMEDOUT, "agent: map %" PRIu64 " not granted within %u ms", map_id,
		      a->cfg.wait_ms);
}

void fm_agent_io_end(struct fm_agent *a, struct fm_agent_io *io)
{
	if (!io->trusted)
		return;
	io->trusted = false;
	if (fm_client_io_end(a->c, io->map_id)) {
		atomic_store(&a->kick, true);
		wake(a);
	}
}

/* --------------------------------------------------------------- plan */

struct fetched {
	uint64_t grain;
	bool split;
};

struct plan_ctx {
	struct fm_agent *a;
	uint64_t map_id;
	struct fetched *f;  /* fresh answers for this call */
	size_t nf, capf;
	uint64_t *miss;     /* grains the cache did not know, not fetched yet */
	size_t nmiss, capmiss;
};

static bool plan_split(void *arg, uint64_t grain, uint64_t *run)
{
	struct plan_ctx *x = arg;

	if (fm_cache_lookup(x->a->cache, x->map_id, grain, run))
		return true;
	for (size_t i = 0; i < x->nf; i++)
		if (x->f[i].grain == grain) {
			*run = 1;
			return x->f[i].split;
		}
	if (x->nmiss < x->capmiss)
		x->miss[x->nmiss++] = grain;
	return false;
}

static int fetch(struct fm_agent *a, uint64_t map_id, uint64_t grain, bool *split)
{
	struct req r = { .type = REQ_FETCH, .map_id = map_id, .grain = grain };
	int rc = req_run(a, &r);

	*split = r.split;
	return rc;
}

int fm_agent_plan(struct fm_agent *a, const struct fm_agent_io *io, enum fm_io_op op,
		  uint64_t offset, uint64_t length, struct fm_plan *plan)
{
	struct fetched fbuf[64];
	uint64_t mbuf[64];
	struct plan_ctx x = { .a = a, .map_id = io->map_id, .f = fbuf, .capf = 64,
			      .miss = mbuf, .capmiss = 64 };
	struct fm_geom g;
	bool cow;
	int rc;

	if (!io->trusted)
		return fm_err(-EINVAL, "agent: plan outside io_begin/io_end");
	g.grain_shift = io->map.grain_shift;
	g.grain_count = io->map.grain_count;
	g.volume_size = io->map.grain_count << io->map.grain_shift;
	cow = io->map.state == FM_MAP_COPYING;
	for (;;) {
		x.nmiss = 0;
		rc = fm_plan_io(plan, &g, cow, op, offset, length, plan_split, &x);
		if (rc || x.nmiss == 0)
			return rc;
		/* the cache did not know these: ask the owner, then plan again */
		for (size_t i = 0; i < x.nmiss; i++) {
			bool split;

			if (x.nf == x.capf) {
				/* more unknown grains than we remember: forget the
				 * oldest answers (they are re-fetched if needed) */
				x.nf = 0;
			}
			rc = fetch(a, io->map_id, x.miss[i], &split);
			if (rc)
				return rc;
			x.f[x.nf++] = (struct fetched){ .grain = x.miss[i], .split = split };
		}
	}
}

int fm_agent_is_split(struct fm_agent *a, uint64_t map_id, uint64_t grain)
{
	bool split;
	int rc;

	if (fm_cache_lookup(a->cache, map_id, grain, NULL))
		return 1;
	rc = fetch(a, map_id, grain, &split);
	return rc ? rc : split;
}

int fm_agent_lock(struct fm_agent *a, uint64_t map_id, uint64_t grain)
{
	struct req r = { .type = REQ_LOCK, .map_id = map_id, .grain = grain };
	int rc = req_run(a, &r);

	return rc ? rc : r.split ? 1 : 0;
}

int fm_agent_unlock(struct fm_agent *a, uint64_t map_id, uint64_t grain)
{
	struct req r = { .type = REQ_UNLOCK, .map_id = map_id, .grain = grain };

	return req_run(a, &r);
}

int fm_agent_commit_split(struct fm_agent *a, uint64_t map_id, uint64_t grain)
{
	struct req r = { .type = REQ_COMMIT, .map_id = map_id, .grain = grain };

	return req_run(a, &r);
}

int fm_agent_read_bitmap(struct fm_agent *a, uint64_t map_id, uint64_t off, void *buf,
			 size_t len)
{
	struct req r = { .type = REQ_RAWREAD, .map_id = map_id, .buf = buf, .off = off,
			 .len = len };

	return req_run(a, &r);
}

/* ---------------------------------------------------- data steps (R2) */

int fm_agent_step_begin(struct fm_agent *a, struct fm_agent_io *io, uint64_t *token)
{
	uint64_t now = now_ms(), end = now + a->cfg.wait_ms;
	int rc;

	if (!io->trusted)
		return fm_err(-EINVAL, "agent: a data step outside io_begin/io_end");
	/* within the margin: a renewal is on its way; wait for it, but never
	 * past the lease (then the answer is -EKEYEXPIRED) */
	while ((rc = fm_client_step_check(a->c, now)) == -EAGAIN && now < end) {
		struct timespec ts = { 0, 1000000 };

		nanosleep(&ts, NULL);
		now = now_ms();
	}
	if (rc) {
		atomic_fetch_add_explicit(&a->steps_refused, 1, memory_order_relaxed);
		return fm_err(rc == -EAGAIN ? -EKEYEXPIRED : rc,
			      "agent: lease lost: no data step may start in this session "
			      "(end the I/O and submit it again)");
	}
	io->step_start = now;
	if (token)
		*token = fm_client_token(a->c);
	atomic_fetch_add_explicit(&a->steps, 1, memory_order_relaxed);
	return 0;
}

void fm_agent_step_end(struct fm_agent *a, struct fm_agent_io *io)
{
	uint64_t took = now_ms() - io->step_start;

	/* lease.h: on storage without fencing tokens, and where the owner
	 * cannot kill (verbs), a step must end within M + G of its start */
	if (io->step_start && took > atomic_load(&a->step_bound_ms))
		atomic_fetch_add_explicit(&a->steps_overdue, 1, memory_order_relaxed);
	io->step_start = 0;
}

uint64_t fm_agent_token(struct fm_agent *a)
{
	return fm_client_token(a->c);
}

struct fm_cache *fm_agent_cache(struct fm_agent *a)
{
	return a->cache;
}

void fm_agent_stats(struct fm_agent *a, struct fm_agent_stats *st)
{
	pthread_mutex_lock(&a->lock);
	*st = a->st;
	st->state = a->state;
	pthread_mutex_unlock(&a->lock);
	st->epoch = (uint32_t)fm_client_token(a->c);
	st->token = fm_client_token(a->c);
	st->steps = atomic_load(&a->steps);
	st->steps_overdue = atomic_load(&a->steps_overdue);
	st->steps_refused = atomic_load(&a->steps_refused);
	fm_cache_stats(a->cache, &st->cache);
}
