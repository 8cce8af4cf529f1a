/* agent.c -- the agent object: configuration, life cycle, what it knows.
 *
 * The threads and locks are described in agent_priv.h; the protocol
 * thread is proto.c, the engines' one-sided work lane.c, the I/O calls
 * io.c.  Mapping knowledge comes from the state machine itself
 * (fm_client_map: a seqlock any thread reads), not from a copy here.
 */
#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "agent_priv.h"

#include "flashmeta/error.h"
#include "flashmeta/wire.h"

/* ABI: decide_by_message took a padding byte; what follows did not move */
static_assert(offsetof(struct fm_agent_cfg, wait_ms) ==
		      offsetof(struct fm_agent_cfg, cache_budget) + sizeof(size_t) + 4,
	      "fm_agent_cfg: wait_ms stays where 0.x put it");

uint64_t ag_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

uint64_t ag_now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

void ag_wait(struct fm_agent *a, const bool *done, int (*progress)(void *ctx),
	     void (*sleep)(void *ctx, int cap_ms), void *ctx)
{
	while (!*done) {
		uint64_t until = a->cfg.spin_us ? ag_now_us() + a->cfg.spin_us : 0;

		if (progress(ctx) && *done)
			return;
		while (!*done && until && ag_now_us() < until)
			(void)progress(ctx);
		if (*done)
			return;
		sleep(ctx, 100);
	}
}

void ag_deadline_ts(struct timespec *ts, uint32_t ms)
{
	clock_gettime(CLOCK_MONOTONIC, ts);
	ts->tv_sec += ms / 1000;
	ts->tv_nsec += (long)(ms % 1000) * 1000000;
	if (ts->tv_nsec >= 1000000000) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000;
	}
}

void ag_wake(struct fm_agent *a)
{
	static const uint64_t one = 1;

	(void)!write(a->efd, &one, sizeof(one));
}

bool ag_wait_until(struct fm_agent *a, const struct timespec *deadline)
{
	struct timespec step, now;

	/* a->lock held.  Wake on a broadcast or every 20 ms: some changes
	 * (a lease renewal, a drain) are not broadcast */
	ag_deadline_ts(&step, 20);
	if (step.tv_sec > deadline->tv_sec ||
	    (step.tv_sec == deadline->tv_sec && step.tv_nsec > deadline->tv_nsec))
		step = *deadline;
	(void)pthread_cond_timedwait(&a->cond, &a->lock, &step);
	clock_gettime(CLOCK_MONOTONIC, &now);
	return now.tv_sec > deadline->tv_sec ||
	       (now.tv_sec == deadline->tv_sec && now.tv_nsec >= deadline->tv_nsec);
}

/* ------------------------------------------------------------ life cycle */

static void agent_fini_sync(struct fm_agent *a);

/* everything fm_agent_new made; no other thread runs */
/* the posted requests (nowait: an UNLOCKMSG after a NOTIFY release) the
 * protocol thread had not taken when it stopped: nobody else frees them.
 * Every other request belongs to an engine thread's operation, over by
 * the time of the delete. */
static void posted_reqs_free(struct req *list)
{
	while (list) {
		struct req *r = list;

		list = r->next;
		if (r->nowait)
			free(r);
	}
}

static void agent_free(struct fm_agent *a)
{
	ag_live_remove(a); /* first: no thread's exit frees a context now */
	posted_reqs_free(a->submit);
	posted_reqs_free(a->retry);
	posted_reqs_free(a->inflight);
	fm_client_delete(&a->c);
	fm_cache_delete(&a->cache);
	ag_threads_free(a);
	fm_transport_delete(&a->t);
	if (a->efd >= 0)
		close(a->efd);
	free(a->fills);
	free(a->addr);
	free(a->provider);
	free(a->device);
	agent_fini_sync(a);
	free(a);
}

static int agent_init_sync(struct fm_agent *a)
{
	pthread_condattr_t ca;
	int rc;

	pthread_mutex_init(&a->lock, NULL);
	pthread_mutex_init(&a->eplock, NULL);
	pthread_mutex_init(&a->filllock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&a->cond, &ca);
	pthread_condattr_destroy(&ca);
	/* a thread's exit frees its context (lane.c, ag_thread_dtor) */
	rc = pthread_key_create(&a->tkey, ag_thread_dtor);
	return rc ? fm_err(-rc, "agent: pthread_key_create") : 0;
}

static void agent_fini_sync(struct fm_agent *a)
{
	pthread_key_delete(a->tkey);
	pthread_cond_destroy(&a->cond);
	pthread_mutex_destroy(&a->filllock);
	pthread_mutex_destroy(&a->eplock);
	pthread_mutex_destroy(&a->lock);
}

int fm_agent_new(struct fm_agent **out, const struct fm_agent_cfg *cfg)
{
	/* event waits: an engine's lane wait sleeps instead of spinning on
	 * verbs; shm completes at post time either way */
	struct fm_transport_cfg tcfg = { .wait_mode = FM_WAIT_EVENT,
					 .op_timeout_ms = AG_OP_TIMEOUT_MS };
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
	a->efd = -1;
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
	rc = agent_init_sync(a);
	if (rc) {
		free(a->addr);
		free(a->provider);
		free(a->device);
		free(a);
		return rc;
	}
	a->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (a->efd < 0 || !a->addr || !a->provider) {
		rc = fm_err(-ENOMEM, "agent: eventfd/strdup");
		goto fail;
	}
	if (a->cfg.decide_by_message)
		a->cfg.no_cache = true; /* every decision asks the owner */
	if (!a->cfg.max_threads)
		a->cfg.max_threads = 64;
	if (!a->cfg.spin_us)
		a->cfg.spin_us = 50;
	else if (a->cfg.spin_us == FM_AGENT_NO_SPIN)
		a->cfg.spin_us = 0;
	else if (a->cfg.spin_us > 1000000)
		a->cfg.spin_us = 1000000; /* a second of spinning is a mistake */
	if (a->cfg.max_threads > FM_LANES_MAX) {
		rc = fm_err(-EINVAL, "agent: max_threads %u is more than %u", a->cfg.max_threads,
			    FM_LANES_MAX);
		goto fail;
	}
	tcfg.provider = a->provider;
	tcfg.device = a->device;
	tcfg.max_lanes = a->cfg.max_threads;
	tcfg.lane_depth = 4; /* a thread has at most 2 operations in flight */
	rc = fm_transport_new(&a->t, &tcfg);
	if (rc)
		goto fail;
	ccfg.budget_bytes = cfg->cache_budget;
	ccfg.keep_nothing = a->cfg.no_cache;
	ccfg.no_merge = cfg->cache_no_merge;
	rc = fm_cache_new(&a->cache, &ccfg);
	if (rc)
		goto fail;
	kcfg.client_id = cfg->client_id;
	kcfg.key = a->key;
	kcfg.key_len = cfg->key_len;
	kcfg.cache = a->cache;
	rc = fm_client_new(&a->c, &kcfg);
	if (rc)
		goto fail;
	rc = -pthread_create(&a->thread, NULL, ag_proto_main, a);
	if (rc) {
		rc = fm_err(rc, "agent: pthread_create");
		goto fail;
	}
	ag_live_add(a);
	*out = a;
	return 0;
fail:
	agent_free(a);
	return rc;
}

void fm_agent_delete(struct fm_agent **ap)
{
	struct fm_agent *a = ap ? *ap : NULL;

	if (!a)
		return;
	atomic_store(&a->stop, true);
	ag_wake(a);
	pthread_join(a->thread, NULL); /* it says BYE and drops the endpoint */
	agent_free(a);
	*ap = NULL;
}

/* --------------------------------------------------------- what it knows */

int fm_agent_wait_active(struct fm_agent *a, int timeout_ms)
{
	struct timespec ts;
	int rc = 0;

	ag_deadline_ts(&ts, timeout_ms < 0 ? a->cfg.wait_ms : (uint32_t)timeout_ms);
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

void ag_map_pub(const struct fm_wire_mapdesc *d, bool usable, struct fm_agent_map *out)
{
	*out = (struct fm_agent_map){
		.map_id = d->map_id, .generation = d->generation,
		.grain_count = d->grain_count, .grain_shift = d->grain_shift,
		.state = (enum fm_map_state)d->state, .granted = usable,
		.reversed = (d->flags & FM_MAPDESC_REVERSED) != 0,
	};
}

int fm_agent_maps(struct fm_agent *a, struct fm_agent_map *out, size_t cap)
{
	int n = fm_client_maps(a->c, NULL, 0), k = 0;
	uint64_t *ids = calloc(n > 0 ? (size_t)n : 1, sizeof(*ids));

	if (!ids)
		return fm_err(-ENOMEM, "agent: map list");
	k = fm_client_maps(a->c, ids, (size_t)n); /* may have grown since */
	if (k < n)
		n = k;
	k = 0;
	for (int i = 0; i < n; i++) {
		struct fm_wire_mapdesc d;
		bool usable;

		if (fm_client_map(a->c, ids[i], &d, &usable))
			continue; /* not granted yet */
		if ((size_t)k < cap)
			ag_map_pub(&d, usable, &out[k]);
		k++;
	}
	free(ids);
	return k;
}

int fm_agent_map_get(struct fm_agent *a, uint64_t map_id, struct fm_agent_map *out)
{
	struct fm_wire_mapdesc d;
	bool usable;

	if (fm_client_map(a->c, map_id, &d, &usable))
		return fm_err(-ENOENT, "agent: map %" PRIu64 " unknown", map_id);
	ag_map_pub(&d, usable, out);
	return 0;
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
	st->token = fm_client_token(a->c);
	st->lease_term_ms = fm_client_lease_term(a->c);
	st->lease_left_ms = fm_client_lease_left(a->c, ag_now_ms());
	st->epoch = (uint32_t)st->token;
	st->fetches = atomic_load_explicit(&a->fetches, memory_order_relaxed);
	st->locks = atomic_load_explicit(&a->locks, memory_order_relaxed);
	st->commits = atomic_load_explicit(&a->commits, memory_order_relaxed);
	st->commits_sent = atomic_load_explicit(&a->commits_sent, memory_order_relaxed);
	st->unlocks = atomic_load_explicit(&a->unlocks, memory_order_relaxed);
	st->locks_lost = atomic_load_explicit(&a->locks_lost, memory_order_relaxed);
	st->steps = atomic_load_explicit(&a->steps, memory_order_relaxed);
	st->steps_overdue = atomic_load_explicit(&a->steps_overdue, memory_order_relaxed);
	st->lanes_broken = atomic_load_explicit(&a->lanes_broken, memory_order_relaxed);
	st->steps_refused = atomic_load_explicit(&a->steps_refused, memory_order_relaxed);
	fm_cache_stats(a->cache, &st->cache);
}
