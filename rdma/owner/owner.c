/* owner.c -- the owner service: fm_owner + transport + pmem store + control.
 *
 * Design (see ownerd.h for the action table):
 *
 *   one thread runs everything: the protocol state machine, the store and
 *   the transport are all touched only from fm_ownerd_run() (and from
 *   fm_ownerd_new/delete before/after it).  fm_ownerd_stop() is the only
 *   call from elsewhere: it writes the stop eventfd.
 *
 *   conns    a small array of {conn id, endpoint, out-queue}.  Conn ids
 *            count up from 1 and are never reused, so a late action for a
 *            dead connection cannot reach a new one.
 *   maps     per stored mapping: its bitmap region (published copy of
 *            durable bits), its lock table region (DRAM, zero at start), the
 *            descriptor served, and at most one pending control operation
 *            waiting for FM_NOTE_REVOKED.
 *
 * Durability order of a split (group commit, one loop iteration):
 *   1. drain every action; PERSIST actions are collected, not executed;
 *   2. fm_store_split_set_range() for every range of every collected
 *      PERSIST (a bitmap word at a time; nothing durable yet);
 *   3. ONE fm_store_split_commit(): all of them durable (drain/msync);
 *   4. copy the committed words from the store's MIRROR view into the
 *      REMOTE_READ bitmap region (release stores) -- publish after durable;
 *   5. fm_owner_op_done() for each: the state machine sends SPLIT_ACK.
 * A crash before 3 loses bits nobody was told about; after 3 they are in
 * the pool and are published again from the pool at the next start.
 *
 * Trigger (map-start), in this order:
 *   1. fm_owner_map_revoke(RESTART): RELEASE_REQUEST to holders;
 *   2. FM_NOTE_REVOKED: every holder answered RELEASED (caches discarded,
 *      I/O drained) or was fenced, and no PERSIST of the map is in flight;
 *   3. fm_store_map_transition(START): bitmap cleared and generation bumped,
 *      durably, in one step;
 *   4. clear the published bitmap region;
 *   5. fm_owner_map_update(): MAP_GRANT of the new generation.
 */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "flashmeta/error.h"
#include "flashmeta/lockword.h"
#include "flashmeta/mapping.h"
#include "flashmeta/ownerd.h"
#include "flashmeta/pmem_store.h"
#include "flashmeta/proto_owner.h"
#include "flashmeta/transport.h"

#define OD_OUTQ_MAX 1024   /* queued SENDs before a peer counts as stuck */
#define OD_CTL_MAX 16      /* control connections */
#define OD_CTL_LINE 512
#define OD_RANGE_PIECE (UINT64_C(1) << 30) /* grains per split_set_range call */
#define OD_MAX_MAPS FM_WIRE_MAX_MAPS
#define OD_FENCE_WAIT_MS 1000 /* a fence blocks the loop at most this long
			       * (shm: up to 300 ms for a live peer to close
			       * when asked, then SIGKILL and its exit),
			       * then the loop retries */

struct od_msg {
	uint32_t len;
	uint8_t buf[];
};

/*
 * A connection leaves the array only once its peer is FENCED (or it never
 * had a session, so no FENCE will come): a connection that broke or was
 * given up (`lost`) keeps its endpoint -- on shm the endpoint holds the
 * pidfd that the fence needs.  Lost: no traffic, not polled.
 */
struct od_conn {
	uint64_t id;
	struct fm_ep *ep;
	struct od_msg **outq; /* FIFO of SENDs waiting for credits */
	size_t outq_head, outq_count, outq_cap;
	bool lost;            /* broken or given up; waits for its FENCE */
	bool fencing;         /* FENCE taken, not complete: retry_fences */
	bool fence_failed;    /* cannot be fenced: FENCE never reported */
	uint64_t fence_op;    /* the FENCE action to complete (fencing) */

};

enum od_pend { OD_PEND_NONE = 0, OD_PEND_PREPARE, OD_PEND_START, OD_PEND_RESTART,
	       OD_PEND_STOP };

struct od_map {
	bool used;
	uint64_t id;
	struct fm_region *bitmap; /* REMOTE_READ: published durable bits */
	struct fm_region *locks;  /* REMOTE_ATOMIC: lock words, changed only by CAS */
	struct fm_region_desc bmd, lkd;
	struct fm_wire_mapdesc d; /* what we serve */
	enum od_pend pend;        /* control op waiting for REVOKED */
	int pend_fd;              /* control connection to answer, or -1 */
};

struct od_ctl {
	int fd;
	bool busy;         /* a deferred command runs: later lines wait */
	size_t used;
	char line[OD_CTL_LINE];
};

struct fm_ownerd {
	struct fm_ownerd_cfg cfg;
	struct fm_store *store;
	struct fm_transport *t;
	struct fm_listener *l;
	struct fm_ep *self;       /* loopback: our own CAS on the lock tables */
	struct fm_owner *o;
	int timer_fd, stop_fd, ctl_fd;
	uint64_t next_conn;
	struct od_conn *conns;
	size_t nconns, cap_conns;
	struct od_map maps[OD_MAX_MAPS];
	struct od_ctl ctl[OD_CTL_MAX];
	struct fm_action *persist; /* collected PERSIST actions of one iteration */
	size_t npersist, cap_persist;
	/* set by fm_ownerd_stop -- from another thread or, in flashmeta-owner,
	 * a SIGTERM handler -- read by the loop: a lock-free atomic, the only
	 * kind of shared object a signal handler may write.  Relaxed is
	 * enough: the stop eventfd wakes the loop, the flag carries no data. */
	atomic_bool stopping;
};

/* ------------------------------------------------------------- logging */

static enum fm_loglvl g_level = FM_LOGLVL_INFO;

static void od_log(enum fm_loglvl lv, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void od_log(enum fm_loglvl lv, const char *fmt, ...)
{
	static const char *const names[] = { "error", "warn", "info", "debug" };
	struct timespec ts;
	va_list ap;

	if (lv > g_level)
		return;
	clock_gettime(CLOCK_REALTIME, &ts);
	fprintf(stderr, "flashmeta-owner[%d] %ld.%03ld %s: ", (int)getpid(),
		(long)ts.tv_sec, ts.tv_nsec / 1000000, names[lv]);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* ------------------------------------------------------------- config */

static char *trim(char *s)
{
	char *e;

	while (isspace((unsigned char)*s))
		s++;
	e = s + strlen(s);
	while (e > s && isspace((unsigned char)e[-1]))
		*--e = '\0';
	return s;
}

static int parse_u64(const char *v, uint64_t *out)
{
	char *end;

	errno = 0;
	*out = strtoull(v, &end, 0);
	return (errno || end == v || *trim(end)) ? -EINVAL : 0;
}

/* Replace a config string (a key given twice, or by file then flag). */
static int cfg_set_str(const char **dst, const char *v)
{
	char *copy = strdup(v);

	if (!copy)
		return fm_err(-ENOMEM, "config: out of memory");
	free((char *)*dst);
	*dst = copy;
	return 0;
}

void fm_ownerd_cfg_fini(struct fm_ownerd_cfg *cfg)
{
	const char **strs[] = { &cfg->provider, &cfg->device, &cfg->listen,
				&cfg->pmem_path, &cfg->control_path };

	for (size_t i = 0; i < sizeof(strs) / sizeof(strs[0]); i++) {
		free((char *)*strs[i]);
		*strs[i] = NULL;
	}
	memset(cfg->key, 0, sizeof(cfg->key));
	cfg->key_len = 0;
}

int fm_ownerd_cfg_parse_line(struct fm_ownerd_cfg *cfg, const char *line)
{
	char buf[1024], *k, *v, *eq;
	uint64_t n, m;
	int rc;

	if (strlen(line) >= sizeof(buf))
		return fm_err(-EINVAL, "config line too long");
	strcpy(buf, line);
	if ((eq = strchr(buf, '#')))
		*eq = '\0';
	k = trim(buf);
	if (!*k)
		return 0;
	eq = strchr(k, '=');
	if (!eq)
		return fm_err(-EINVAL, "config: '%s': expected key = value", k);
	*eq = '\0';
	k = trim(k);
	v = trim(eq + 1);
	if (!strcmp(k, "listen")) {
		return cfg_set_str(&cfg->listen, v);
	} else if (!strcmp(k, "transport") || !strcmp(k, "provider")) {
		if (strcmp(v, "shm") && strcmp(v, "verbs"))
			return fm_err(-EINVAL, "config: transport must be shm or verbs");
		return cfg_set_str(&cfg->provider, v);
	} else if (!strcmp(k, "device")) {
		return cfg_set_str(&cfg->device, v);
	} else if (!strcmp(k, "pmem") || !strcmp(k, "pmem_path")) {
		return cfg_set_str(&cfg->pmem_path, v);
	} else if (!strcmp(k, "control")) {
		return cfg_set_str(&cfg->control_path, v);
	} else if (!strcmp(k, "pool_max_maps")) {
		if (parse_u64(v, &n) || n == 0 || n > 65536)
			return fm_err(-EINVAL, "config: pool_max_maps '%s'", v);
		cfg->pool_max_maps = (uint32_t)n;
	} else if (!strcmp(k, "pool_max_grains")) {
		if (parse_u64(v, &n) || n == 0)
			return fm_err(-EINVAL, "config: pool_max_grains '%s'", v);
		cfg->pool_max_grains = n;
	} else if (!strcmp(k, "lease_ms")) {
		if (parse_u64(v, &n) || n < 10 || n > 600000)
			return fm_err(-EINVAL, "config: lease_ms '%s' (10..600000)", v);
		cfg->lease_ms = (uint32_t)n;
	} else if (!strcmp(k, "clients")) {
		char *dash = strchr(v, '-');

		if (dash) {
			*dash = '\0';
			if (parse_u64(v, &n) || parse_u64(dash + 1, &m))
				return fm_err(-EINVAL, "config: clients '%s'", v);
		} else if (parse_u64(v, &n)) {
			return fm_err(-EINVAL, "config: clients '%s'", v);
		} else {
			m = n;
		}
		if (n < 1 || m < n || m > FM_WIRE_CLIENT_ID_MAX)
			return fm_err(-EINVAL, "config: clients must be within 1..65535");
		cfg->client_first = (uint32_t)n;
		cfg->client_last = (uint32_t)m;
	} else if (!strcmp(k, "key_file")) {
		rc = fm_key_file_read(v, cfg->key, sizeof(cfg->key));
		if (rc < 0)
			return rc;
		cfg->key_len = (size_t)rc;
	} else if (!strcmp(k, "log_level")) {
		if (!strcmp(v, "err") || !strcmp(v, "error"))
			cfg->log_level = FM_LOGLVL_ERR;
		else if (!strcmp(v, "warn"))
			cfg->log_level = FM_LOGLVL_WARN;
		else if (!strcmp(v, "info"))
			cfg->log_level = FM_LOGLVL_INFO;
		else if (!strcmp(v, "debug"))
			cfg->log_level = FM_LOGLVL_DEBUG;
		else
			return fm_err(-EINVAL, "config: log_level '%s'", v);
	} else {
		return fm_err(-EINVAL, "config: unknown key '%s'", k);
	}
	return 0;
}

int fm_ownerd_cfg_load(struct fm_ownerd_cfg *cfg, const char *path)
{
	char line[1024];
	int lineno = 0, rc = 0;
	FILE *f = fopen(path, "re");

	if (!f)
		return fm_err(-errno, "config %s: %s", path, strerror(errno));
	while (fgets(line, sizeof(line), f)) {
		lineno++;
		rc = fm_ownerd_cfg_parse_line(cfg, line);
		if (rc) {
			rc = fm_err(rc, "%s:%d: %s", path, lineno, fm_errormsg());
			break;
		}
	}
	fclose(f);
	return rc;
}

/* ---------------------------------------------------------- connections */

static struct od_conn *conn_find(struct fm_ownerd *d, uint64_t id)
{
	for (size_t i = 0; i < d->nconns; i++)
		if (d->conns[i].id == id)
			return &d->conns[i];
	return NULL;
}

/* close and forget a connection; the caller tells the state machine */
static void conn_drop(struct fm_ownerd *d, struct od_conn *c)
{
	size_t i = (size_t)(c - d->conns);

	fm_ep_delete(&c->ep);
	while (c->outq_count) {
		free(c->outq[c->outq_head]);
		c->outq_head = (c->outq_head + 1) % c->outq_cap;
		c->outq_count--;
	}
	free(c->outq);
	d->conns[i] = d->conns[--d->nconns];
}

static int outq_push(struct od_conn *c, const void *buf, uint32_t len)
{
	struct od_msg *m;

	if (c->outq_count == c->outq_cap) {
		size_t ncap = c->outq_cap ? c->outq_cap * 2 : 16;
		struct od_msg **nq = calloc(ncap, sizeof(*nq));

		if (!nq)
			return -ENOMEM;
		for (size_t i = 0; i < c->outq_count; i++)
			nq[i] = c->outq[(c->outq_head + i) % c->outq_cap];
		free(c->outq);
		c->outq = nq;
		c->outq_cap = ncap;
		c->outq_head = 0;
	}
	m = malloc(sizeof(*m) + len);
	if (!m)
		return -ENOMEM;
	m->len = len;
	memcpy(m->buf, buf, len);
	c->outq[(c->outq_head + c->outq_count) % c->outq_cap] = m;
	c->outq_count++;
	return 0;
}

/* send what waits for credits; < 0: the endpoint broke */
static int outq_flush(struct od_conn *c)
{
	while (c->outq_count) {
		struct od_msg *m = c->outq[c->outq_head];
		int rc = fm_ep_send(c->ep, m->buf, m->len, FM_NONBLOCK);

		if (rc == -EAGAIN)
			return 0;
		if (rc)
			return rc;
		free(m);
		c->outq_head = (c->outq_head + 1) % c->outq_cap;
		c->outq_count--;
	}
	return 0;
}

/* The connection broke (or the peer is given up on).  The endpoint stays
 * until the state machine's FENCE for it ran (exec_fence): the peer may be
 * alive and still able to reach our memory.  No session, no FENCE: drop. */
static void conn_lost(struct fm_ownerd *d, struct od_conn *c, const char *why)
{
	uint64_t id = c->id;

	if (c->lost)
		return;
	od_log(FM_LOGLVL_INFO, "conn %" PRIu64 ": down (%s)", id, why);
	c->lost = true;
	if (fm_owner_disconnected(d->o, id, now_ms()) < 0 && (c = conn_find(d, id)))
		conn_drop(d, c);
}

/* ---------------------------------------------------------------- maps */

static struct od_map *map_find(struct fm_ownerd *d, uint64_t id)
{
	for (unsigned i = 0; i < OD_MAX_MAPS; i++)
		if (d->maps[i].used && d->maps[i].id == id)
			return &d->maps[i];
	return NULL;
}

static uint64_t bitmap_bytes(uint64_t grains)
{
	return ((grains + 63) / 64) * 8;
}

/* copy words [w0, w1] of the durable MIRROR view into the published region */
static void publish_words(struct fm_ownerd *d, struct od_map *m, uint64_t w0, uint64_t w1)
{
	const void *view;
	size_t len;
	uint64_t *dst = fm_region_ptr(m->bitmap);

	if (fm_store_bitmap_view(d->store, m->id, &view, &len, NULL))
		return;
	for (uint64_t w = w0; w <= w1 && (w + 1) * 8 <= len; w++) {
		uint64_t v;

		memcpy(&v, (const uint8_t *)view + w * 8, 8);
		__atomic_store_n(&dst[w], v, __ATOMIC_RELEASE);
	}
}

static void publish_clear(struct od_map *m)
{
	uint64_t *dst = fm_region_ptr(m->bitmap);
	uint64_t words = bitmap_bytes(m->d.grain_count) / 8;

	for (uint64_t w = 0; w < words; w++)
		__atomic_store_n(&dst[w], 0, __ATOMIC_RELEASE);
}

static void desc_from_store(struct od_map *m, const struct fm_mapping *mp)
{
	m->d.map_id = mp->id;
	m->d.generation = mp->generation;
	m->d.grain_count = mp->geom.grain_count;
	m->d.grain_shift = (uint8_t)mp->geom.grain_shift;
	m->d.state = (uint8_t)mp->state;
	m->d.lock_shift = 0;
	m->d.bitmap = m->bmd;
	m->d.locks = m->lkd;
}

/* regions + descriptor + publish + serve, for a mapping in the store */
static int map_attach(struct fm_ownerd *d, uint64_t id)
{
	struct fm_store_map_info info;
	struct od_map *m = NULL;
	int rc;

	rc = fm_store_map_get(d->store, id, &info);
	if (rc)
		return rc;
	for (unsigned i = 0; i < OD_MAX_MAPS && !m; i++)
		if (!d->maps[i].used)
			m = &d->maps[i];
	if (!m)
		return fm_err(-ENOSPC, "owner serves at most %u mappings", OD_MAX_MAPS);
	memset(m, 0, sizeof(*m));
	m->pend_fd = -1;
	m->id = id;
	rc = fm_region_new(d->t, bitmap_bytes(info.map.geom.grain_count),
			   FM_ACCESS_REMOTE_READ, &m->bitmap);
	if (rc)
		goto out;
	rc = fm_region_new(d->t, 8 * info.map.geom.grain_count, FM_ACCESS_REMOTE_ATOMIC,
			   &m->locks);
	if (rc)
		goto out_bm;
	fm_region_desc(m->bitmap, &m->bmd);
	fm_region_desc(m->locks, &m->lkd);
	desc_from_store(m, &info.map);
	/* the pool's durable bits, published before anyone is granted */
	publish_words(d, m, 0, bitmap_bytes(m->d.grain_count) / 8 - 1);
	rc = fm_owner_map_add(d->o, &m->d);
	if (rc)
		goto out_lk;
	m->used = true;
	od_log(FM_LOGLVL_INFO, "map %" PRIu64 ": serving, %s, generation %" PRIu64
	       ", %" PRIu64 " grains, %" PRIu64 " split", id,
	       fm_map_state_name(info.map.state), info.map.generation,
	       info.map.geom.grain_count, info.split_count);
	return 0;
out_lk:
	fm_region_delete(&m->locks);
out_bm:
	fm_region_delete(&m->bitmap);
out:
	return rc;
}

/* ------------------------------------------------------------- control */

static void ctl_printf(int fd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void ctl_printf(int fd, const char *fmt, ...)
{
	char buf[1024];
	va_list ap;
	int n;

	if (fd < 0)
		return;
	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (n > (int)sizeof(buf) - 1)
		n = (int)sizeof(buf) - 1;
	(void)!send(fd, buf, (size_t)n, MSG_NOSIGNAL);
}

static void ctl_result(int fd, int rc)
{
	if (rc < 0)
		ctl_printf(fd, "error %s: %s\n", strerrorname_np(-rc) ? strerrorname_np(-rc) : "?",
			   fm_errormsg());
	else
		ctl_printf(fd, "ok\n");
}

static struct od_ctl *ctl_by_fd(struct fm_ownerd *d, int fd);
static void ctl_process(struct fm_ownerd *d, struct od_ctl *c);

static void ctl_show(struct fm_ownerd *d, int fd, struct od_map *m)
{
	struct fm_store_map_info info;

	if (fm_store_map_get(d->store, m->id, &info))
		return;
	ctl_printf(fd, "map %" PRIu64 " source %" PRIu64 " target %" PRIu64
		   " size %" PRIu64 " grain %u grains %" PRIu64 " state %s generation %" PRIu64
		   " split %" PRIu64 " served-generation %" PRIu64 "%s\n",
		   m->id, info.map.source_vol, info.map.target_vol, info.map.geom.volume_size,
		   1u << info.map.geom.grain_shift, info.map.geom.grain_count,
		   fm_map_state_name(info.map.state), info.map.generation, info.split_count,
		   m->d.generation, m->pend ? " (revoking)" : "");
}

/*
 * After REVOKED: apply the pending operation to the store (durable),
 * clear the published bitmap when the store cleared it, then serve the new
 * descriptor (step 3..5 of the trigger, see the top of this file).
 */
static void map_complete(struct fm_ownerd *d, struct od_map *m)
{
	struct fm_mapping mp;
	struct fm_store_map_info info;
	int rc = 0, fd = m->pend_fd;
	enum od_pend op = m->pend;
	struct od_ctl *c;
	uint64_t gen;

	m->pend = OD_PEND_NONE;
	m->pend_fd = -1;
	switch (op) {
	case OD_PEND_PREPARE:
		rc = fm_store_map_transition(d->store, m->id, FM_MAP_EV_PREPARE, &mp);
		if (!rc)
			rc = fm_store_map_transition(d->store, m->id, FM_MAP_EV_PREPARE_DONE, &mp);
		break;
	case OD_PEND_START:
		/* 3. durable: state COPYING, bitmap cleared, generation++ */
		rc = fm_store_map_transition(d->store, m->id, FM_MAP_EV_START, &mp);
		break;
	case OD_PEND_RESTART:
		rc = fm_store_map_restart(d->store, m->id, &gen);
		break;
	case OD_PEND_STOP:
		rc = fm_store_map_transition(d->store, m->id, FM_MAP_EV_STOP, &mp);
		if (!rc && mp.state == FM_MAP_STOPPING)
			rc = fm_store_map_transition(d->store, m->id, FM_MAP_EV_STOP_DONE, &mp);
		break;
	default:
		return;
	}
	if (rc)
		od_log(FM_LOGLVL_ERR, "map %" PRIu64 ": %s", m->id, fm_errormsg());
	/* whatever happened, serve what the store now says */
	if (fm_store_map_get(d->store, m->id, &info) == 0) {
		if (info.map.generation != m->d.generation)
			publish_clear(m); /* 4. nothing of the new generation is split */
		desc_from_store(m, &info.map);
	}
	if (fm_owner_map_update(d->o, &m->d)) /* 5. MAP_GRANT */
		od_log(FM_LOGLVL_ERR, "map %" PRIu64 ": update: %s", m->id, fm_errormsg());
	od_log(FM_LOGLVL_INFO, "map %" PRIu64 ": now %s, generation %" PRIu64, m->id,
	       fm_map_state_name((enum fm_map_state)m->d.state), m->d.generation);
	if (rc == 0)
		ctl_show(d, fd, m);
	ctl_result(fd, rc);
	if ((c = ctl_by_fd(d, fd))) {
		c->busy = false;
		ctl_process(d, c);
	}
}

static int ctl_map_op(struct fm_ownerd *d, int fd, uint64_t id, enum od_pend op)
{
	static const uint32_t reason[] = {
		[OD_PEND_PREPARE] = FM_RELEASE_ADMIN, [OD_PEND_START] = FM_RELEASE_RESTART,
		[OD_PEND_RESTART] = FM_RELEASE_RESTART, [OD_PEND_STOP] = FM_RELEASE_STOP,
	};
	struct od_map *m = map_find(d, id);
	int rc;

	if (!m)
		return fm_err(-ENOENT, "map %" PRIu64 " unknown", id);
	if (m->pend)
		return fm_err(-EALREADY, "map %" PRIu64 ": an operation is in progress", id);
	/* 1. withdraw every confirmation lease; the rest runs on REVOKED */
	rc = fm_owner_map_revoke(d->o, id, reason[op], now_ms());
	if (rc)
		return rc;
	od_log(FM_LOGLVL_INFO, "map %" PRIu64 ": revoking confirmations", id);
	m->pend = op;
	m->pend_fd = fd;
	return 1; /* answer later */
}

static int ctl_status(struct fm_ownerd *d, int fd)
{
	struct fm_store_stats ss;
	struct fm_owner_stats os;
	struct fm_caps caps;

	fm_store_stats(d->store, &ss);
	fm_owner_stats(d->o, &os);
	fm_transport_caps(d->t, &caps);
	ctl_printf(fd, "listen %s transport %s device %s\n", d->cfg.listen, caps.provider,
		   caps.device);
	ctl_printf(fd, "store %s persist %s view %s mappings %u/%u commits %" PRIu64 "\n",
		   d->cfg.pmem_path, ss.persist_mode, fm_store_view_name(ss.view), ss.mappings,
		   ss.max_mappings, ss.commits);
	ctl_printf(fd, "connections %zu sessions-active %" PRIu64 " closed %" PRIu64
		   " auth-failures %" PRIu64 " malformed %" PRIu64 " fences %" PRIu64 "\n",
		   d->nconns, os.sessions_active, os.sessions_closed, os.auth_failures,
		   os.malformed, os.fences);
	ctl_printf(fd, "locks requests %" PRIu64 " grants %" PRIu64 " reclaimed %" PRIu64
		   " commits %" PRIu64 " acks %" PRIu64 "\n", os.lock_requests, os.lock_grants,
		   os.locks_reclaimed, os.commits, os.acks);
	for (unsigned i = 0; i < OD_MAX_MAPS; i++)
		if (d->maps[i].used)
			ctl_show(d, fd, &d->maps[i]);
	return 0;
}

static int ctl_create(struct fm_ownerd *d, char **av, int ac)
{
	uint64_t id, src, tgt, size, grain = 0;
	struct fm_mapping m;
	int rc;

	if (ac < 5 || ac > 6 || parse_u64(av[1], &id) || parse_u64(av[2], &src) ||
	    parse_u64(av[3], &tgt) || parse_u64(av[4], &size) ||
	    (ac == 6 && parse_u64(av[5], &grain)))
		return fm_err(-EINVAL, "usage: map-create ID SRC TGT SIZE [GRAIN]");
	rc = fm_mapping_init(&m, id, src, tgt, size, grain);
	if (rc)
		return rc;
	rc = fm_store_map_create(d->store, &m);
	if (rc)
		return rc;
	rc = map_attach(d, id);
	if (rc) {
		int keep = rc;

		(void)fm_store_map_delete(d->store, id);
		return keep;
	}
	return 0;
}

/* one command line; returns < 0 error, 0 done (answer "ok"), 1 deferred */
static int ctl_exec(struct fm_ownerd *d, int fd, char *line)
{
	char *av[8], *save = NULL, *tok;
	int ac = 0;
	uint64_t id = 0;
	struct od_map *m;

	for (tok = strtok_r(line, " \t\r\n", &save); tok && ac < 8;
	     tok = strtok_r(NULL, " \t\r\n", &save))
		av[ac++] = tok;
	if (ac == 0)
		return fm_err(-EINVAL, "empty command");
	od_log(FM_LOGLVL_DEBUG, "control: %s", av[0]);
	if (ac >= 2 && parse_u64(av[1], &id) && strcmp(av[0], "map-create"))
		return fm_err(-EINVAL, "bad mapping id '%s'", av[1]);
	if (!strcmp(av[0], "status") || !strcmp(av[0], "maps"))
		return ctl_status(d, fd);
	if (!strcmp(av[0], "map-create"))
		return ctl_create(d, av, ac);
	if (ac != 2)
		return fm_err(-EINVAL, "usage: %s ID (commands: status, map-create, map-prepare, "
			      "map-start, map-restart, map-stop, map-show)", av[0]);
	if (!strcmp(av[0], "map-show")) {
		if (!(m = map_find(d, id)))
			return fm_err(-ENOENT, "map %" PRIu64 " unknown", id);
		ctl_show(d, fd, m);
		return 0;
	}
	if (!strcmp(av[0], "map-prepare"))
		return ctl_map_op(d, fd, id, OD_PEND_PREPARE);
	if (!strcmp(av[0], "map-start"))
		return ctl_map_op(d, fd, id, OD_PEND_START);
	if (!strcmp(av[0], "map-restart"))
		return ctl_map_op(d, fd, id, OD_PEND_RESTART);
	if (!strcmp(av[0], "map-stop"))
		return ctl_map_op(d, fd, id, OD_PEND_STOP);
	return fm_err(-EINVAL, "unknown command '%s'", av[0]);
}

static void ctl_close(struct fm_ownerd *d, struct od_ctl *c)
{
	for (unsigned i = 0; i < OD_MAX_MAPS; i++)
		if (d->maps[i].pend_fd == c->fd)
			d->maps[i].pend_fd = -1; /* the operation still completes */
	close(c->fd);
	c->fd = -1;
	c->used = 0;
	c->busy = false;
}

static struct od_ctl *ctl_by_fd(struct fm_ownerd *d, int fd)
{
	for (unsigned i = 0; fd >= 0 && i < OD_CTL_MAX; i++)
		if (d->ctl[i].fd == fd)
			return &d->ctl[i];
	return NULL;
}

/* execute buffered lines, one at a time: a deferred command (map-start...)
 * holds the rest until it answered, so a script sees answers in order */
static void ctl_process(struct fm_ownerd *d, struct od_ctl *c)
{
	char *nl;

	while (c->fd >= 0 && !c->busy && (nl = strchr(c->line, '\n'))) {
		size_t len = (size_t)(nl - c->line) + 1;
		char cmd[OD_CTL_LINE];
		int rc;

		memcpy(cmd, c->line, len - 1);
		cmd[len - 1] = '\0';
		memmove(c->line, c->line + len, c->used - len + 1);
		c->used -= len;
		if (!strcmp(trim(cmd), "quit")) {
			ctl_close(d, c);
			return;
		}
		if (!*trim(cmd))
			continue;
		fm_err_clear();
		rc = ctl_exec(d, c->fd, cmd);
		if (rc <= 0)
			ctl_result(c->fd, rc);
		else
			c->busy = true;
	}
}

static void ctl_readable(struct fm_ownerd *d, struct od_ctl *c)
{
	ssize_t n = recv(c->fd, c->line + c->used, sizeof(c->line) - 1 - c->used, MSG_DONTWAIT);

	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		ctl_close(d, c);
		return;
	}
	c->used += (size_t)n;
	c->line[c->used] = '\0';
	ctl_process(d, c);
	if (c->fd >= 0 && !c->busy && c->used == sizeof(c->line) - 1) {
		ctl_printf(c->fd, "error EINVAL: line too long\n");
		ctl_close(d, c);
	}
}

static int ctl_listen(const char *path)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	int fd;

	if (strlen(path) >= sizeof(sun.sun_path))
		return fm_err(-ENAMETOOLONG, "control path too long");
	strcpy(sun.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return fm_err(-errno, "control socket: %s", strerror(errno));
	(void)unlink(path);
	if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) || listen(fd, 8)) {
		int e = errno;

		close(fd);
		return fm_err(-e, "control socket %s: %s", path, strerror(e));
	}
	return fd;
}

/* ------------------------------------------------------------- actions */

static void exec_send(struct fm_ownerd *d, const struct fm_action *a)
{
	struct od_conn *c = conn_find(d, a->conn);
	int rc;

	if (!c || c->lost)
		return; /* gone: the state machine learns it from the FENCE/disconnect */
	if (c->outq_count == 0) {
		rc = fm_ep_send(c->ep, a->u.msg.buf, a->u.msg.len, FM_NONBLOCK);
		if (rc == 0)
			return;
		if (rc != -EAGAIN) {
			conn_lost(d, c, fm_errormsg());
			return;
		}
	}
	if (c->outq_count >= OD_OUTQ_MAX || outq_push(c, a->u.msg.buf, a->u.msg.len)) {
		od_log(FM_LOGLVL_WARN, "conn %" PRIu64 ": peer does not drain its messages",
		       c->id);
		conn_lost(d, c, "send queue overflow");
	}
}

static struct od_map *map_by_region(struct fm_ownerd *d, const struct fm_region_desc *r,
				    bool *is_locks)
{
	for (unsigned i = 0; i < OD_MAX_MAPS; i++) {
		struct od_map *m = &d->maps[i];

		if (!m->used)
			continue;
		if (r->key == m->lkd.key && r->addr == m->lkd.addr) {
			*is_locks = true;
			return m;
		}
		if (r->key == m->bmd.key && r->addr == m->bmd.addr) {
			*is_locks = false;
			return m;
		}
	}
	return NULL;
}

static void exec_local(struct fm_ownerd *d, const struct fm_action *a, uint64_t now)
{
	bool is_locks = false;
	struct od_map *m = map_by_region(d, &a->u.io.region, &is_locks);
	uint8_t buf[FM_WIRE_MAX_MSG];
	uint64_t old = 0;
	int rc = 0;

	if (a->conn != FM_CONN_LOCAL || !m) {
		od_log(FM_LOGLVL_ERR, "%s on conn %" PRIu64 ": not our memory",
		       fm_action_type_name(a->type), a->conn);
		(void)fm_owner_op_done(d->o, a->op_id, -EINVAL, 0, NULL, 0, now);
		return;
	}
	if (a->type == FM_ACT_CAS) {
		/* through the loopback endpoint: atomic against clients' CAS */
		rc = fm_ep_cas(d->self, is_locks ? &m->lkd : &m->bmd, a->u.io.offset,
			       a->u.io.compare, a->u.io.swap, &old);
		if (rc)
			od_log(FM_LOGLVL_ERR, "loopback CAS: %s", fm_errormsg());
		(void)fm_owner_op_done(d->o, a->op_id, rc, old, NULL, 0, now);
		return;
	}
	/* READ of our own region: acquire loads per word (transport.h allows) */
	{
		const struct fm_region *r = is_locks ? m->locks : m->bitmap;
		const uint8_t *src = fm_region_ptr(r);
		size_t len = a->u.io.len, off = a->u.io.offset;

		if (len > sizeof(buf) || off > fm_region_len(r) || len > fm_region_len(r) - off ||
		    off % 8 || len % 8) {
			(void)fm_owner_op_done(d->o, a->op_id, -ERANGE, 0, NULL, 0, now);
			return;
		}
		for (size_t i = 0; i < len; i += 8) {
			uint64_t w = __atomic_load_n((const uint64_t *)(const void *)(src + off + i),
						     __ATOMIC_ACQUIRE);
			memcpy(buf + i, &w, 8);
		}
		(void)fm_owner_op_done(d->o, a->op_id, 0, 0, buf, len, now);
	}
}

/* the fence of c is complete: no operation of its peer can land any more */
static void fence_done(struct fm_ownerd *d, struct od_conn *c, uint64_t op_id, uint64_t now)
{
	od_log(FM_LOGLVL_INFO, "conn %" PRIu64 ": fenced", c->id);
	conn_drop(d, c);
	(void)fm_owner_op_done(d->o, op_id, 0, 0, NULL, 0, now);
}

/* the peer of c cannot be fenced: never report the FENCE, so the state
 * machine never reclaims its lock words -- they stay held (safe: nobody
 * else can take them) until an operator acts */
static void fence_failed(struct fm_ownerd *d, struct od_conn *c)
{
	(void)d;
	c->fencing = false;
	c->fence_failed = true;
	od_log(FM_LOGLVL_ERR, "conn %" PRIu64 ": FENCE FAILED: %s -- its lock words stay HELD "
	       "and its grants count; stop that process by hand, then restart the owner",
	       c->id, fm_errormsg());
}

/* complete the fences that can be: the peer closed, or its grace is over */
static void retry_fences(struct fm_ownerd *d, uint64_t now)
{
	for (size_t i = 0; i < d->nconns;) {
		struct od_conn *c = &d->conns[i];
		int rc;

		if (!c->fencing) {
			i++;
			continue;
		}
		rc = fm_ep_fence(c->ep, OD_FENCE_WAIT_MS);
		if (rc == 0) {
			fence_done(d, c, c->fence_op, now); /* moves the last conn to i */
			continue;
		}
		if (rc == -ETIMEDOUT) {
			od_log(FM_LOGLVL_WARN, "conn %" PRIu64 ": fence pending: %s", c->id,
			       fm_errormsg());
		} else {
			fence_failed(d, c);
		}
		i++;
	}
}

/*
 * FENCE: after op_done(0) no operation of that peer may land.  The
 * transport guarantees it (fm_ep_fence: verbs destroys the QP; shm returns
 * at once for a peer that closed -- it unmapped us before its BYE -- and
 * otherwise kills the peer process through its pidfd and waits for its
 * exit -- after asking it to close: a peer with a wrong key or a protocol
 * error closes by itself, a stalled client is killed).  Only a 0 from
 * fm_ep_fence is reported; -ETIMEDOUT is retried; anything else is fatal
 * for that client's locks (fence_failed).  Progress: retry_fences, from
 * every loop iteration.
 */
static void exec_fence(struct fm_ownerd *d, const struct fm_action *a, uint64_t now)
{
	struct od_conn *c = conn_find(d, a->conn);

	if (!c) {
		/* left the array only after a fence, or without a session */
		(void)fm_owner_op_done(d->o, a->op_id, 0, 0, NULL, 0, now);
		return;
	}
	if (c->fence_failed || c->fencing)
		return; /* already failed loudly, or retry_fences completes it */
	c->fencing = true;
	c->fence_op = a->op_id;
	if (!c->lost)
		(void)outq_flush(c); /* let the BYE go out first */
	c->lost = true;
	retry_fences(d, now);
}

static void exec_notify(struct fm_ownerd *d, const struct fm_notify *n)
{
	struct od_map *m;

	switch (n->type) {
	case FM_NOTE_SESSION_UP:
		od_log(FM_LOGLVL_INFO, "client %u: session up", n->client_id);
		break;
	case FM_NOTE_SESSION_DOWN:
		od_log(FM_LOGLVL_INFO, "client %u: session down (status %d), locks reclaimed",
		       n->client_id, n->status);
		break;
	case FM_NOTE_REVOKED:
		od_log(FM_LOGLVL_INFO, "map %" PRIu64 ": revoked", n->map_id);
		m = map_find(d, n->map_id);
		if (m && m->pend)
			map_complete(d, m);
		break;
	default:
		od_log(FM_LOGLVL_DEBUG, "note %d", n->type);
		break;
	}
}

/*
 * The group commit: steps 2..5 of the split durability order (top of
 * file) for every PERSIST collected in this iteration.
 */
static int persist_batch(struct fm_ownerd *d, uint64_t now)
{
	int status[d->npersist ? d->npersist : 1];
	int crc = 0;

	if (!d->npersist)
		return 0;
	/* 2. set every bit (not durable yet), a range a call; a range of more
	 *    grains than the call can count (INT_MAX) goes in pieces */
	for (size_t i = 0; i < d->npersist; i++) {
		const struct fm_action *a = &d->persist[i];

		status[i] = 0;
		for (unsigned r = 0; r < a->u.persist.range_count && !status[i]; r++) {
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
					status[i] = (rc == -ESTALE || rc == -EPERM ||
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
	/* 3. one drain/msync for all of them */
	crc = fm_store_split_commit(d->store);
	if (crc < 0)
		od_log(FM_LOGLVL_ERR, "split commit failed: %s", fm_errormsg());
	for (size_t i = 0; i < d->npersist; i++) {
		const struct fm_action *a = &d->persist[i];
		struct od_map *m = map_find(d, a->u.persist.map_id);

		if (crc < 0 && status[i] == 0)
			status[i] = -EIO;
		/* 4. publish strictly after durable */
		if (status[i] == 0 && m)
			for (unsigned r = 0; r < a->u.persist.range_count; r++)
				publish_words(d, m, a->u.persist.ranges[r].first / 64,
					      a->u.persist.ranges[r].last / 64);
	}
	/* 5. acks */
	for (size_t i = 0; i < d->npersist; i++)
		(void)fm_owner_op_done(d->o, d->persist[i].op_id, status[i], 0, NULL, 0, now);
	od_log(FM_LOGLVL_DEBUG, "group commit: %zu persists, %d bits", d->npersist, crc);
	d->npersist = 0;
	return crc < 0 ? crc : 0;
}

/* drain actions until quiet, group-committing PERSISTs per round */
static void drain_actions(struct fm_ownerd *d)
{
	struct fm_action a;

	for (;;) {
		bool any = false;

		while (fm_owner_poll(d->o, &a)) {
			uint64_t now = now_ms();

			any = true;
			switch (a.type) {
			case FM_ACT_SEND:
				exec_send(d, &a);
				break;
			case FM_ACT_READ:
			case FM_ACT_CAS:
				exec_local(d, &a, now);
				break;
			case FM_ACT_PERSIST:
				if (d->npersist == d->cap_persist) {
					size_t nc = d->cap_persist ? d->cap_persist * 2 : 16;
					struct fm_action *np = realloc(d->persist, nc * sizeof(*np));

					if (!np) {
						(void)fm_owner_op_done(d->o, a.op_id, -EIO, 0, NULL,
								       0, now);
						break;
					}
					d->persist = np;
					d->cap_persist = nc;
				}
				d->persist[d->npersist++] = a;
				break;
			case FM_ACT_FENCE:
				exec_fence(d, &a, now);
				break;
			case FM_ACT_NOTIFY:
				exec_notify(d, &a.u.note);
				break;
			default:
				break;
			}
		}
		if (d->npersist) {
			(void)persist_batch(d, now_ms());
			any = true;
		}
		if (!any)
			return;
	}
}

/* --------------------------------------------------------------- loop */

static void accept_all(struct fm_ownerd *d)
{
	for (;;) {
		struct fm_ep *ep = NULL;
		struct od_conn *c;
		int rc = fm_listener_accept(d->l, 0, &ep);

		if (rc == -ETIMEDOUT || rc == -EAGAIN)
			return;
		if (rc) {
			od_log(FM_LOGLVL_WARN, "accept: %s", fm_errormsg());
			return;
		}
		if (d->nconns == d->cap_conns) {
			size_t nc = d->cap_conns ? d->cap_conns * 2 : 16;
			struct od_conn *n = realloc(d->conns, nc * sizeof(*n));

			if (!n) {
				fm_ep_delete(&ep);
				return;
			}
			d->conns = n;
			d->cap_conns = nc;
		}
		c = &d->conns[d->nconns++];
		memset(c, 0, sizeof(*c));
		c->id = ++d->next_conn;
		c->ep = ep;
		od_log(FM_LOGLVL_INFO, "conn %" PRIu64 ": up", c->id);
		if (fm_owner_connected(d->o, c->id, now_ms())) {
			od_log(FM_LOGLVL_ERR, "owner_connected: %s", fm_errormsg());
			conn_drop(d, c);
		}
	}
}

static void progress_conns(struct fm_ownerd *d)
{
	uint8_t buf[FM_WIRE_MAX_MSG];
	size_t n = d->nconns;
	uint64_t ids[n ? n : 1];

	/* by id: receiving may fence (and so remove) any connection */
	for (size_t i = 0; i < n; i++)
		ids[i] = d->conns[i].id;
	for (size_t i = 0; i < n; i++) {
		struct od_conn *c = conn_find(d, ids[i]);
		const char *why = NULL;
		int k;

		if (!c || c->lost)
			continue;
		k = fm_ep_progress(c->ep);
		while (k > 0 && (c = conn_find(d, ids[i])) && !c->lost) {
			int len = fm_ep_recv(c->ep, buf, sizeof(buf), FM_NONBLOCK);

			if (len < 0)
				break;
			(void)fm_owner_recv(d->o, ids[i], buf, (size_t)len, now_ms());
			drain_actions(d);
		}
		if (!(c = conn_find(d, ids[i])) || c->lost)
			continue;
		/* CLOSED and nothing left to deliver: the peer is gone */
		if (outq_flush(c) < 0 || (fm_ep_state(c->ep, &why) == FM_EP_CLOSED &&
					  fm_ep_progress(c->ep) < 0)) {
			conn_lost(d, c, why && *why ? why : "closed");
			drain_actions(d);
		}
	}
}

int fm_ownerd_run(struct fm_ownerd *d)
{
	size_t cap = 0;
	struct pollfd *pfd = NULL;

	od_log(FM_LOGLVL_INFO, "serving on %s", d->cfg.listen);
	while (!atomic_load_explicit(&d->stopping, memory_order_relaxed)) {
		size_t n = 0, base;
		uint64_t cnt;
		int rc;

		if (cap < 4 + OD_CTL_MAX + d->nconns) {
			cap = 4 + OD_CTL_MAX + d->nconns + 16;
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
		for (size_t i = 0; i < d->nconns; i++)
			pfd[n++] = (struct pollfd){ .fd = d->conns[i].lost ? -1 :
							  fm_ep_fd(d->conns[i].ep),
						    .events = POLLIN };
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
		if (pfd[1].revents) {
			(void)!read(d->timer_fd, &cnt, sizeof(cnt));
			(void)fm_owner_tick(d->o, now_ms());
			drain_actions(d);
		}
		if (pfd[2].revents) {
			accept_all(d);
			drain_actions(d);
		}
		if (d->ctl_fd >= 0 && pfd[3].revents) {
			int fd = accept4(d->ctl_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
			unsigned i;

			for (i = 0; fd >= 0 && i < OD_CTL_MAX && d->ctl[i].fd >= 0; i++)
				;
			if (fd >= 0 && i == OD_CTL_MAX) {
				ctl_printf(fd, "error EBUSY: too many control connections\n");
				close(fd);
			} else if (fd >= 0) {
				d->ctl[i].fd = fd;
				d->ctl[i].used = 0;
			}
		}
		for (unsigned i = 0; i < OD_CTL_MAX; i++)
			if (d->ctl[i].fd >= 0 && pfd[4 + i].revents) {
				ctl_readable(d, &d->ctl[i]);
				drain_actions(d);
			}
		/* cost: one progress per connection per wakeup (no fd->conn map
		 * needed; a handful of clients) */
		progress_conns(d);
		retry_fences(d, now_ms());
		drain_actions(d);
	}
	free(pfd);
	od_log(FM_LOGLVL_INFO, "stopping");
	return 0;
}

void fm_ownerd_stop(struct fm_ownerd *d)
{
	static const uint64_t one = 1;

	atomic_store_explicit(&d->stopping, true, memory_order_relaxed);
	(void)!write(d->stop_fd, &one, sizeof(one));
}

int fm_ownerd_new(struct fm_ownerd **out, const struct fm_ownerd_cfg *cfg)
{
	struct fm_transport_cfg tcfg = { .wait_mode = FM_WAIT_EVENT, .op_timeout_ms = 3000 };
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
	if (!d)
		return fm_err(-ENOMEM, "ownerd");
	d->cfg = *cfg;
	g_level = cfg->log_level;
	d->timer_fd = d->stop_fd = d->ctl_fd = -1;
	for (unsigned i = 0; i < OD_CTL_MAX; i++)
		d->ctl[i].fd = -1;
	if (!d->cfg.lease_ms)
		d->cfg.lease_ms = 3000;
	if (!d->cfg.client_first) {
		d->cfg.client_first = 1;
		d->cfg.client_last = 64;
	}

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
		goto out_free;
	}
	fm_store_stats(d->store, &ss);
	od_log(FM_LOGLVL_INFO, "store %s: persistence %s (is_pmem %d), view %s, %u mappings",
	       cfg->pmem_path, ss.persist_mode, ss.is_pmem, fm_store_view_name(ss.view),
	       ss.mappings);

	/* the protocol */
	ocfg.lease_term_ms = d->cfg.lease_ms;
	ocfg.lease_grace_ms = d->cfg.lease_ms / 4;
	rc = fm_owner_new(&d->o, &ocfg);
	if (rc)
		goto out_store;
	for (uint32_t id = d->cfg.client_first; id <= d->cfg.client_last; id++) {
		rc = fm_owner_client_add(d->o, id, cfg->key, cfg->key_len);
		if (rc)
			goto out_owner;
	}

	/* the transport */
	tcfg.provider = cfg->provider ? cfg->provider : "shm";
	tcfg.device = cfg->device;
	rc = fm_transport_new(&d->t, &tcfg);
	if (rc)
		goto out_owner;
	rc = fm_listen(d->t, cfg->listen, &d->l);
	if (rc)
		goto out_t;
	rc = fm_listener_loopback(d->l, &d->self);
	if (rc)
		goto out_l;

	/* every stored mapping: regions, publish durable bits, serve */
	nmaps = fm_store_map_list(d->store, ids, OD_MAX_MAPS);
	for (int i = 0; i < nmaps && i < (int)OD_MAX_MAPS; i++) {
		rc = map_attach(d, ids[i]);
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
	if (cfg->control_path) {
		rc = ctl_listen(cfg->control_path);
		if (rc < 0)
			goto out_fds;
		d->ctl_fd = rc;
	}
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
	fm_ep_delete(&d->self);
out_l:
	fm_listener_delete(&d->l);
out_t:
	fm_transport_delete(&d->t);
out_owner:
	fm_owner_delete(&d->o);
out_store:
	fm_store_close(&d->store);
out_free:
	free(d);
	return rc;
}

void fm_ownerd_delete(struct fm_ownerd **dp)
{
	struct fm_ownerd *d = dp ? *dp : NULL;

	if (!d)
		return;
	(void)fm_store_split_commit(d->store);
	while (d->nconns)
		conn_drop(d, &d->conns[0]); /* peers see "peer closed" */
	free(d->conns);
	free(d->persist);
	for (unsigned i = 0; i < OD_CTL_MAX; i++)
		if (d->ctl[i].fd >= 0)
			close(d->ctl[i].fd);
	if (d->ctl_fd >= 0) {
		close(d->ctl_fd);
		if (d->cfg.control_path)
			(void)unlink(d->cfg.control_path);
	}
	for (unsigned i = 0; i < OD_MAX_MAPS; i++) {
		fm_region_delete(&d->maps[i].bitmap);
		fm_region_delete(&d->maps[i].locks);
	}
	fm_ep_delete(&d->self);
	fm_listener_delete(&d->l);
	fm_transport_delete(&d->t);
	fm_owner_delete(&d->o);
	fm_store_close(&d->store);
	close(d->stop_fd);
	close(d->timer_fd);
	free(d);
	*dp = NULL;
}
