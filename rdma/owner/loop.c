/* loop.c -- the owner service's life: fm_ownerd_new (store, protocol,
 * transport, served mappings, timers, control socket), the poll loop of
 * fm_ownerd_run, fm_ownerd_stop, fm_ownerd_delete; and the loop's clock. */
#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "flashmeta/error.h"
#include "flashmeta/lease.h"
#include "flashmeta/pmem_store.h"
#include "ownerd_priv.h"

uint64_t od_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

int fm_ownerd_run(struct fm_ownerd *d)
{
	size_t cap = 0;
	struct pollfd *pfd = NULL;

	od_log(FM_LOGLVL_INFO, "serving on %s", d->cfg.listen);
	while (!atomic_load_explicit(&d->stopping, memory_order_relaxed) && !d->fatal) {
		size_t n = 0, base, cm, lo;
		uint64_t cnt;
		int rc;

		if (cap < 6 + OD_CTL_MAX + d->nconns) {
			cap = 6 + OD_CTL_MAX + d->nconns + 16;
			free(pfd);
			pfd = calloc(cap, sizeof(*pfd));
			if (!pfd)
				return -ENOMEM;
		}
		pfd[n++] = (struct pollfd){ .fd = d->stop_fd, .events = POLLIN };
		pfd[n++] = (struct pollfd){ .fd = d->timer_fd, .events = POLLIN };
		pfd[n++] = (struct pollfd){ .fd = fm_listener_fd(d->l), .events = POLLIN };
		pfd[n++] = (struct pollfd){ .fd = d->ctl_fd, .events = POLLIN };
		for (unsigned i = 0; i < OD_CTL_MAX; i++)
			pfd[n++] = (struct pollfd){ .fd = d->ctl[i].fd, .events = POLLIN };
		base = n;
		/* a live connection: its endpoint fd; one being fenced: its
		 * fence fd (shm: the peer's pidfd turns readable when it
		 * exited; verbs: none, od_retry_fences runs every iteration) */
		for (size_t i = 0; i < d->nconns; i++) {
			const struct od_conn *c = &d->conns[i];

			/* (fenced, waiting for the fence table: the 100 ms
			 * poll retries it) */
			pfd[n++] = (struct pollfd){ .fd = c->fencing ? (c->fence_level ? -1 :
							  fm_ep_fence_fd(c->ep)) :
							  c->lost ? -1 : fm_ep_fd(c->ep),
						    .events = POLLIN };
		}
		/* the commit thread: a group commit ended */
		cm = n;
		pfd[n++] = (struct pollfd){ .fd = od_committer_fd(&d->cm), .events = POLLIN };
		/* our own CASes (verbs: completions through the HCA) */
		lo = n;
		pfd[n++] = (struct pollfd){ .fd = od_local_fd(d), .events = POLLIN };
		rc = poll(pfd, n, 100);
		if (rc < 0 && errno != EINTR) {
			free(pfd);
			return fm_err(-errno, "poll: %s", strerror(errno));
		}
		(void)base;
		if (pfd[0].revents) {
			(void)!read(d->stop_fd, &cnt, sizeof(cnt));
			break;
		}
		if (pfd[cm].revents)
			od_persist_reap(d); /* publish, SPLIT_ACKs */
		if (pfd[lo].revents)
			od_drain_actions(d); /* reaps completed CASes */
		if (pfd[2].revents) {
			od_accept_all(d);
			od_drain_actions(d);
		}
		if (d->ctl_fd >= 0 && pfd[3].revents)
			od_ctl_accept(d);
		for (unsigned i = 0; i < OD_CTL_MAX; i++)
			if (d->ctl[i].fd >= 0 && pfd[4 + i].revents) {
				od_ctl_readable(d, &d->ctl[i]);
				od_drain_actions(d);
			}
		/* cost: one progress per connection per wakeup (no fd->conn map
		 * needed; a handful of clients) */
		od_progress_conns(d);
		/* time is judged only after every message that arrived was read:
		 * after a stall of this loop (a busy host), the renewals waiting
		 * in the rings count before a lease is found run out -- else the
		 * owner would fence (on shm: kill) clients that did renew */
		if (pfd[1].revents) {
			(void)!read(d->timer_fd, &cnt, sizeof(cnt));
			(void)fm_owner_tick(d->o, od_now_ms());
			od_maps_pend_tick(d, od_now_ms());
			od_groups_tick(d, od_now_ms());
			od_maps_copy_check(d);
			od_drain_actions(d);
			od_ctl_tick(d, od_now_ms());
		}
		od_retry_fences(d, od_now_ms());
		od_drain_actions(d);
		/* the PERSISTs of this whole pass: applied, and handed to the
		 * commit thread (they join its next commit), or committed in
		 * place if drains are cheap (committer.c) */
		od_persist_kick(d);
	}
	free(pfd);
	od_persist_finish(d); /* the commit in flight: wait, ack what is durable */
	if (d->fatal)
		return fm_err(d->fatal, "ownerd: the protocol state machine failed");
	od_log(FM_LOGLVL_INFO, "stopping");
	return 0;
}

void fm_ownerd_stop(struct fm_ownerd *d)
{
	static const uint64_t one = 1;

	atomic_store_explicit(&d->stopping, true, memory_order_relaxed);
	(void)!write(d->stop_fd, &one, sizeof(one));
}

/*
 * Restart grace (lease.h R6), steps in this order:
 *   1. read what the previous incarnation recorded and record ourselves
 *      (incarnation + 1, hold = the longer of its hold and ours), durably,
 *      before anyone could get a lease from us;
 *   2. the state machine serves no lock table, hand-off, commit or
 *      transition until the previous hold has passed from now;
 *   3. at FM_NOTE_GRACE_OVER (actions.c) record our own hold only.
 * A pool never served needs no grace.  A format 1.0 pool records nothing:
 * the grace is our own hold, and the incarnation (for fencing tokens) is
 * the wall clock's second, which only rises while the clock does.
 */
static int begin_incarnation(struct fm_ownerd *d, uint64_t now, struct fm_owner_cfg *ocfg)
{
	struct fm_store_owner_info prev = { 0 };
	uint64_t grace;
	int rc;

	d->hold_ms = fm_lease_hold_ms(ocfg->lease_term_ms, ocfg->lease_grace_ms);
	rc = fm_store_owner_begin(d->store, d->hold_ms, &prev, &d->incarnation); /* 1 */
	if (rc == -EOPNOTSUPP) {
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		d->incarnation = (uint64_t)ts.tv_sec;
		grace = d->hold_ms;
		d->prev_served = true;
		od_log(FM_LOGLVL_WARN, "pool %s is format 1.0: no owner record, restart grace "
		       "%" PRIu64 " ms, fencing tokens from the clock (recreate the pool)",
		       d->cfg.pmem_path, grace);
	} else if (rc) {
		return rc;
	} else {
		d->record_owner = true;
		d->prev_served = !prev.known || prev.incarnation != 0;
		grace = prev.known && prev.incarnation == 0 ? 0 :
			prev.known ? prev.hold_ms : d->hold_ms;
		od_log(FM_LOGLVL_INFO, "incarnation %" PRIu64 "; restart grace %" PRIu64
		       " ms (previous incarnation %" PRIu64 ")", d->incarnation, grace,
		       prev.incarnation);
	}
	ocfg->incarnation = d->incarnation;
	d->grace_ms = grace;
	(void)now;
	return 0;
}

/*
 * A previous incarnation served this pool: a session of it may have
 * written a mapping since its last CHANGE_REPORT and died with it (the
 * owner keeps its sessions' grants in memory only: core/src/owner/
 * changed.c), so each mapping's changed set is marked changed-unknown
 * before anyone is served -- the next refresh of it recopies every grain.
 * Conservative: it costs that one full recopy after every owner restart,
 * also one that found no client connected.  Blocks for one logged slot
 * write per mapping (at start, before the loop runs).  A pool before
 * format 1.4 keeps no sets: nothing to mark.
 */
static void unknown_at_start(struct fm_ownerd *d, uint64_t id)
{
	struct fm_store_map_info info;
	int rc;

	if (fm_store_map_get(d->store, id, &info) || info.changed_unknown)
		return;
	rc = fm_store_changed_unknown(d->store, id, info.map.generation);
	if (rc && rc != -EOPNOTSUPP)
		od_log(FM_LOGLVL_ERR, "map %" PRIu64 ": changed-unknown mark at start: %s", id,
		       fm_errormsg());
	else if (!rc)
		od_log(FM_LOGLVL_INFO, "map %" PRIu64 ": changed set marked unknown (the "
		       "previous owner's sessions may not have reported): its next refresh "
		       "recopies every grain", id);
}

/*
 * The storage fence table (fence_table.h), when configured: every allowed
 * client's floor goes to this incarnation's first token before anyone can
 * get a lease from us, so no write of a previous incarnation's session
 * lands at storage that checks the table once we hand out a lock -- with
 * it, a restart does not rest on R6's timing alone.  A write of such a
 * session still in flight (a stopped process) is waited for: it holds the
 * start up for exactly as long as it is in flight.
 */
static int fence_table_begin(struct fm_ownerd *d)
{
	const char *p = d->cfg.fence_table;
	uint64_t to = fm_lease_token(d->incarnation, 0);
	int rc;

	if (!p)
		return 0;
	rc = fm_fence_table_open(p, FM_FENCE_TABLE_CREATE | FM_FENCE_TABLE_RAISE, &d->ftable);
	if (rc) {
		od_log(FM_LOGLVL_ERR, "%s", fm_errormsg());
		return rc;
	}
	rc = fm_fence_table_clients(d->ftable, d->cfg.client_first, d->cfg.client_last, to,
				    false);
	if (rc == -EAGAIN) {
		od_log(FM_LOGLVL_WARN, "fence table %s: a write of an earlier session is in "
		       "flight (a stopped client process?): waiting for it before serving", p);
		rc = fm_fence_table_clients(d->ftable, d->cfg.client_first, d->cfg.client_last,
					    to, true);
	}
	if (rc) {
		od_log(FM_LOGLVL_ERR, "%s", fm_errormsg());
		fm_fence_table_close(&d->ftable);
		return rc;
	}
	od_log(FM_LOGLVL_INFO, "fence table %s: writes of clients %u-%u below incarnation %"
	       PRIu64 " refused", p, d->cfg.client_first, d->cfg.client_last, d->incarnation);
	return 0;
}

int fm_ownerd_new(struct fm_ownerd **out, const struct fm_ownerd_cfg *cfg)
{
	/* one lane (the loopback's, local.c) deep enough for the holder
	 * checks of a few commits at once; more wait in the backlog */
	struct fm_transport_cfg tcfg = { .wait_mode = FM_WAIT_EVENT, .op_timeout_ms = 3000,
					 .max_lanes = 1, .lane_depth = 512 };
	struct fm_store_config scfg = { 0 };
	struct fm_owner_cfg ocfg = { 0 };
	struct fm_store_stats ss;
	struct itimerspec its = { 0 };
	struct fm_ownerd *d;
	uint64_t ids[OD_MAX_MAPS];
	uint32_t tick;
	int rc, nmaps;

	if (!out || !cfg || !cfg->listen || !cfg->pmem_path || !cfg->key_len ||
	    cfg->key_len > FM_KEY_MAX)
		return fm_err(-EINVAL, "ownerd: listen, pmem path and a key are required");
	d = calloc(1, sizeof(*d));
	if (d)
		d->readbuf = malloc(FM_ACT_READ_MAX);
	if (!d || !d->readbuf) {
		free(d);
		return fm_err(-ENOMEM, "ownerd");
	}
	d->cfg = *cfg;
	od_log_level_set(cfg->log_level);
	d->timer_fd = d->stop_fd = d->ctl_fd = -1;
	for (unsigned i = 0; i < OD_CTL_MAX; i++)
		d->ctl[i].fd = -1;
	if (!d->cfg.lease_ms)
		d->cfg.lease_ms = 3000;
	if (!d->cfg.control_idle_ms)
		d->cfg.control_idle_ms = 60000;
	if (!d->cfg.transition_timeout_ms)
		d->cfg.transition_timeout_ms = 30000;
	if (!d->cfg.client_first) {
		d->cfg.client_first = 1;
		d->cfg.client_last = 64;
	}

	/* the control socket first: a --control path that must not be
	 * replaced (a file, the pool itself, a live owner's socket) stops us
	 * before any pool is opened, created or recorded in */
	rc = od_ctl_listen(d);
	if (rc)
		goto out_free;

	/* the store */
	rc = fm_store_open(&d->store, cfg->pmem_path, NULL);
	if (rc == -ENOENT) {
		scfg.max_mappings = cfg->pool_max_maps ? cfg->pool_max_maps : 64;
		scfg.max_grains = cfg->pool_max_grains ? cfg->pool_max_grains : 1u << 20;
		rc = fm_store_create(&d->store, cfg->pmem_path, &scfg);
		if (!rc)
			od_log(FM_LOGLVL_INFO, "created pool %s (%u mappings x %" PRIu64 " grains)",
			       cfg->pmem_path, scfg.max_mappings, scfg.max_grains);
	}
	if (rc) {
		od_log(FM_LOGLVL_ERR, "store %s: %s", cfg->pmem_path, fm_errormsg());
		goto out_ctl;
	}
	fm_store_stats(d->store, &ss);
	od_log(FM_LOGLVL_INFO, "store %s: persistence %s (is_pmem %d), view %s, %u mappings",
	       cfg->pmem_path, ss.persist_mode, ss.is_pmem, fm_store_view_name(ss.view),
	       ss.mappings);
	/* fm_store_open completed these before we saw the pool: nothing of
	 * them was ever served half-started (groups.c) */
	if (ss.recovered_groups)
		od_log(FM_LOGLVL_WARN, "store %s: %" PRIu64 " group start(s) interrupted by a "
		       "crash completed: every member started", cfg->pmem_path,
		       ss.recovered_groups);

	/* the protocol */
	ocfg.lease_term_ms = d->cfg.lease_ms;
	ocfg.lease_grace_ms = fm_lease_grace_ms(d->cfg.lease_ms);
	ocfg.max_maps = OD_MAX_MAPS;
	rc = begin_incarnation(d, od_now_ms(), &ocfg);
	if (rc) {
		od_log(FM_LOGLVL_ERR, "store %s: owner record: %s", cfg->pmem_path, fm_errormsg());
		goto out_store;
	}
	rc = fence_table_begin(d);
	if (rc)
		goto out_store;
	rc = fm_owner_new(&d->o, &ocfg);
	if (rc)
		goto out_store;
	/* 2. counted from now: no lease of ours exists before this point */
	fm_owner_grace(d->o, od_now_ms() + d->grace_ms, od_now_ms());
	for (uint32_t id = d->cfg.client_first; id <= d->cfg.client_last; id++) {
		rc = fm_owner_client_add(d->o, id, cfg->key, cfg->key_len);
		if (rc)
			goto out_owner;
	}

	/* the transport.  shm arenas sized from what we will register: a
	 * bitmap (grains/8, in words) and a lock table (8 bytes a grain) for
	 * every mapping the pool can hold (at most what one owner serves),
	 * page aligned, plus an eighth and a few MiB of headroom (the region
	 * table, fragmentation).  Sparse: only touched pages cost memory.
	 * Verbs registers each region by itself and ignores these. */
	{
		uint64_t n = ss.max_mappings == 0 ? 1 :
			ss.max_mappings < OD_MAX_MAPS ? ss.max_mappings : OD_MAX_MAPS;
		uint64_t g = ss.max_grains ? ss.max_grains : 1;
		uint64_t bm = ((((g + 63) / 64) * 8) + 4095) & ~UINT64_C(4095);
		uint64_t lk = g > (UINT64_MAX >> 4) ? UINT64_MAX >> 4 :
			(8 * g + 4095) & ~UINT64_C(4095);

		tcfg.shm_read_size = n * bm + n * bm / 8 + (UINT64_C(4) << 20);
		tcfg.shm_atomic_size = lk > (UINT64_MAX >> 16) / n ? UINT64_MAX >> 16 :
			n * lk + n * lk / 8 + (UINT64_C(4) << 20);
		tcfg.shm_max_regions = (uint32_t)(2 * n + 16);
	}
	/* the uids that may connect over shm (config shm_uids; none given:
	 * only our own); fm_ep_delete of a client we drop lingers at most
	 * 50 ms for its BYE (verbs), never longer */
	tcfg.shm_nuids = cfg->shm_nuids;
	static_assert(sizeof(cfg->shm_uids) == sizeof(tcfg.shm_uids), "shm_uids");
	memcpy(tcfg.shm_uids, cfg->shm_uids, sizeof(cfg->shm_uids));
	tcfg.linger_ms = 50;
	tcfg.provider = cfg->provider ? cfg->provider : "shm";
	tcfg.device = cfg->device;
	rc = fm_transport_new(&d->t, &tcfg);
	if (rc)
		goto out_owner;
	if (strcmp(tcfg.provider, "shm") == 0)
		od_log(FM_LOGLVL_INFO, "shm arenas: %" PRIu64 " MiB READ, %" PRIu64 " MiB ATOMIC, "
		       "%u regions (for %u mappings x %" PRIu64 " grains)",
		       tcfg.shm_read_size >> 20, tcfg.shm_atomic_size >> 20, tcfg.shm_max_regions,
		       ss.max_mappings, ss.max_grains);
	rc = fm_listen(d->t, cfg->listen, &d->l);
	if (rc)
		goto out_t;
	rc = fm_listener_loopback(d->l, &d->self);
	if (rc)
		goto out_l;
	rc = fm_lane_new(d->self, &d->selflane);
	if (rc) {
		od_log(FM_LOGLVL_ERR, "loopback lane: %s", fm_errormsg());
		goto out_maps;
	}

	/* every stored mapping: regions, publish durable bits, serve */
	nmaps = fm_store_map_list(d->store, ids, OD_MAX_MAPS);
	if (nmaps > (int)OD_MAX_MAPS) {
		rc = fm_err(-E2BIG, "pool %s holds %d mappings; one owner serves at most %u",
			    cfg->pmem_path, nmaps, OD_MAX_MAPS);
		goto out_maps;
	}
	for (int i = 0; i < nmaps; i++) {
		if (d->prev_served)
			unknown_at_start(d, ids[i]);
		rc = od_map_attach(d, ids[i]);
		if (rc)
			goto out_maps;
	}

	/* timers, stop, control */
	rc = -errno;
	d->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	d->timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	if (d->stop_fd < 0 || d->timer_fd < 0) {
		rc = fm_err(-errno, "eventfd/timerfd: %s", strerror(errno));
		goto out_fds;
	}
	tick = d->cfg.lease_ms / 20;
	if (tick < 5)
		tick = 5;
	its.it_interval.tv_sec = tick / 1000;
	its.it_interval.tv_nsec = (long)(tick % 1000) * 1000000;
	its.it_value = its.it_interval;
	timerfd_settime(d->timer_fd, 0, &its, NULL);
	rc = od_committer_start(&d->cm, d->store);
	if (rc)
		goto out_fds;
	od_log(FM_LOGLVL_INFO, "listening on %s (%s), clients %u-%u, lease %u ms%s%s",
	       cfg->listen, tcfg.provider, d->cfg.client_first, d->cfg.client_last,
	       d->cfg.lease_ms, cfg->control_path ? ", control " : "",
	       cfg->control_path ? cfg->control_path : "");
	*out = d;
	return 0;
out_fds:
	if (d->stop_fd >= 0)
		close(d->stop_fd);
	if (d->timer_fd >= 0)
		close(d->timer_fd);
out_maps:
	for (unsigned i = 0; i < OD_MAX_MAPS; i++) {
		fm_region_delete(&d->maps[i].bitmap);
		fm_region_delete(&d->maps[i].locks);
	}
	fm_lane_delete(&d->selflane);
	fm_ep_delete(&d->self);
out_l:
	fm_listener_delete(&d->l);
out_t:
	fm_transport_delete(&d->t);
out_owner:
	fm_owner_delete(&d->o);
out_store:
	fm_fence_table_close(&d->ftable);
	fm_store_close(&d->store);
out_ctl:
	od_ctl_unlisten(d);
out_free:
	free(d->readbuf);
	free(d);
	return rc;
}

void fm_ownerd_delete(struct fm_ownerd **dp)
{
	struct fm_ownerd *d = dp ? *dp : NULL;

	if (!d)
		return;
	/* a commit still in flight ends first (run() normally reaped it);
	 * its PERSISTs get no op_done any more: no SPLIT_ACK goes out for
	 * them, durable or not */
	od_committer_stop(&d->cm);
	(void)fm_store_split_commit(d->store);
	while (d->nconns)
		od_conn_drop(d, &d->conns[0]); /* peers see "peer closed" */
	free(d->conns);
	free(d->persist.v);
	free(d->reaped.v);
	od_ctl_unlisten(d);
	for (unsigned i = 0; i < OD_MAX_MAPS; i++) {
		fm_region_delete(&d->maps[i].bitmap);
		fm_region_delete(&d->maps[i].locks);
	}
	fm_lane_delete(&d->selflane);
	free(d->backlog.v);
	fm_ep_delete(&d->self);
	fm_listener_delete(&d->l);
	fm_transport_delete(&d->t);
	fm_owner_delete(&d->o);
	fm_store_close(&d->store);
	fm_fence_table_close(&d->ftable);
	close(d->stop_fd);
	close(d->timer_fd);
	free(d->readbuf);
	free(d);
	*dp = NULL;
}
