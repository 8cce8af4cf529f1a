/* control.c -- the owner's control socket: a unix stream socket, one command
 * per line (the commands and answers are in ownerd.h), and the deferred
 * map operations that wait for the state machine's FM_NOTE_REVOKED.
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
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "flashmeta/ctl.h"
#include "flashmeta/ctl_json.h"
#include "flashmeta/error.h"
#include "flashmeta/geometry.h"
#include "flashmeta/input.h"
#include "flashmeta/lease.h"
#include "flashmeta/lockword.h"
#include "flashmeta/mapping.h"
#include "flashmeta/pmem_store.h"
#include "ownerd_priv.h"

/* the client side (ctl.h) and we agree on the longest line */
_Static_assert(OD_CTL_LINE - 1 == FM_CTL_LINE_MAX, "control line length");

static void ctl_printf(int fd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* "json CMD": the text answer is collected here (one command at a time:
 * the loop is single-threaded) and sent as one JSON line when complete */
static struct {
	int fd;            /* the connection being collected for, or -1 */
	char *buf;
	size_t len, cap;
	bool oom;
} jcap = { .fd = -1 };

static void jcap_add(const char *p, size_t n)
{
	if (jcap.len + n + 1 > jcap.cap) {
		size_t nc = (jcap.len + n + 1) * 2;
		char *nb = realloc(jcap.buf, nc);

		if (!nb) {
			jcap.oom = true;
			return;
		}
		jcap.buf = nb;
		jcap.cap = nc;
	}
	memcpy(jcap.buf + jcap.len, p, n);
	jcap.len += n;
	jcap.buf[jcap.len] = '\0';
}

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
	if (fd == jcap.fd)
		jcap_add(buf, (size_t)n);
	else
		(void)!send(fd, buf, (size_t)n, MSG_NOSIGNAL);
}

/* collect what is printed to fd from now on, after `so_far` (may be NULL) */
static void jcap_begin(int fd, const char *so_far)
{
	jcap.fd = fd;
	jcap.len = 0;
	jcap.oom = false;
	jcap_add("", 0);
	if (so_far)
		jcap_add(so_far, strlen(so_far));
}

/* stop collecting; the text so far (malloc'ed, may be NULL on OOM) */
static char *jcap_take(void)
{
	char *t = jcap.oom ? NULL : strdup(jcap.buf ? jcap.buf : "");

	jcap.fd = -1;
	jcap.len = 0;
	return t;
}

/* stop collecting: the whole answer, as a JSON line, then the text's own
 * last line ("ok" / "error ...") so the framing stays the same */
static void jcap_send(int fd)
{
	char *text = jcap_take(), *json = NULL, *last;
	size_t n;

	if (!text || fm_ctl_json(text, &json)) {
		ctl_printf(fd, "error ENOMEM: the JSON answer\n");
		free(text);
		return;
	}
	ctl_printf(fd, "%s\n", json);
	n = strlen(text);
	while (n && text[n - 1] == '\n')
		text[--n] = '\0';
	last = strrchr(text, '\n');
	last = last ? last + 1 : text;
	/* (a long error message is cut by ctl_printf's buffer: the JSON
	 * line above has it whole) */
	ctl_printf(fd, "%s\n", *last ? last : "ok");
	free(json);
	free(text);
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
		   " split %" PRIu64 " served-generation %" PRIu64 " revoking %d\n",
		   m->id, info.map.source_vol, info.map.target_vol, info.map.geom.volume_size,
		   1u << info.map.geom.grain_shift, info.map.geom.grain_count,
		   fm_map_state_name(info.map.state), info.map.generation, info.split_count,
		   m->d.generation, m->pend ? 1 : 0);
}

/*
 * After REVOKED: apply the pending operation to the store (durable),
 * clear the published bitmap when the store cleared it, then serve the new
 * descriptor (step 3..5 of the trigger, see the top of this file).
 */
void od_map_complete(struct fm_ownerd *d, struct od_map *m)
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
			od_publish_clear(m); /* 4. nothing of the new generation is split */
		od_desc_from_store(m, &info.map);
	}
	if (fm_owner_map_update(d->o, &m->d)) /* 5. MAP_GRANT */
		od_log(FM_LOGLVL_ERR, "map %" PRIu64 ": update: %s", m->id, fm_errormsg());
	od_log(FM_LOGLVL_INFO, "map %" PRIu64 ": now %s, generation %" PRIu64, m->id,
	       fm_map_state_name((enum fm_map_state)m->d.state), m->d.generation);
	c = ctl_by_fd(d, fd);
	if (c && c->json)
		jcap_begin(fd, c->jtext);
	if (rc == 0)
		ctl_show(d, fd, m);
	ctl_result(fd, rc);
	if (c && c->json) {
		jcap_send(fd);
		c->json = false;
		free(c->jtext);
		c->jtext = NULL;
	}
	if (c) {
		c->busy = false;
		c->last_ms = od_now_ms(); /* idle from its answer on */
		ctl_process(d, c);
	}
}

static int ctl_map_op(struct fm_ownerd *d, int fd, uint64_t id, enum od_pend op)
{
	static const uint32_t reason[] = {
		[OD_PEND_PREPARE] = FM_RELEASE_ADMIN, [OD_PEND_START] = FM_RELEASE_RESTART,
		[OD_PEND_RESTART] = FM_RELEASE_RESTART, [OD_PEND_STOP] = FM_RELEASE_STOP,
	};
	struct od_map *m = od_map_find(d, id);
	int rc;

	if (!m)
		return fm_err(-ENOENT, "map %" PRIu64 " unknown", id);
	if (m->pend)
		return fm_err(-EALREADY, "map %" PRIu64 ": an operation is in progress", id);
	/* 1. withdraw every confirmation lease; the rest runs on REVOKED */
	rc = fm_owner_map_revoke(d->o, id, reason[op], od_now_ms());
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
	{
		uint64_t tc, tp;

		pthread_mutex_lock(&d->cm.mu);
		tc = d->cm.commits;
		tp = d->cm.persists;
		pthread_mutex_unlock(&d->cm.mu);
		/* grouping: PERSISTs answered per store commit (one drain each) */
		ctl_printf(fd, "group-commit persists %" PRIu64 " store-commits %" PRIu64
			   " drains %" PRIu64 " commit-waits %" PRIu64 " splits-pending %" PRIu64
			   " splits-committing %" PRIu64 " thread-commits %" PRIu64
			   " thread-persists %" PRIu64 "\n", d->persists_done, ss.commits,
			   ss.drains, ss.commit_waits, ss.splits_pending, ss.splits_committing, tc,
			   tp);
	}
	ctl_printf(fd, "incarnation %" PRIu64 " restart-grace-left-ms %" PRIu64
		   " sessions-closing %" PRIu64 " released-quiesced %" PRIu64 " released-dead %"
		   PRIu64 " released-expired %" PRIu64 " fence-retries %" PRIu64
		   " scan-failures %" PRIu64
		   " lock-requests-refused %" PRIu64 "\n", d->incarnation,
		   fm_owner_grace_left(d->o, od_now_ms()), os.sessions_closing,
		   os.released_quiesced, os.released_dead, os.released_expired,
		   os.fence_retries, os.scan_failures, os.lock_requests_refused);
	for (unsigned i = 0; i < OD_MAX_MAPS; i++)
		if (d->maps[i].used)
			ctl_show(d, fd, &d->maps[i]);
	return 0;
}

/* map-create ID SRC TGT SIZE [GRAIN] (av[1..]) */
static int ctl_create(struct fm_ownerd *d, char **av, int ac)
{
	uint64_t id, src, tgt, size, grain = 0;
	struct fm_mapping m;
	int rc;

	if ((rc = fm_u64_parse("map id", av[1], 0, UINT64_MAX, &id)) ||
	    (rc = fm_u64_parse("source volume", av[2], 0, UINT64_MAX, &src)) ||
	    (rc = fm_u64_parse("target volume", av[3], 0, UINT64_MAX, &tgt)) ||
	    (rc = fm_u64_parse("size", av[4], 1, FM_VOLUME_SIZE_MAX, &size)) ||
	    (ac == 6 && (rc = fm_u64_parse("grain", av[5], 0, UINT64_C(1) << FM_GRAIN_SHIFT_MAX,
					   &grain))))
		return rc;
	if (od_map_find(d, id))
		return fm_err(-EEXIST, "map %" PRIu64 " exists", id);
	rc = fm_mapping_init(&m, id, src, tgt, size, grain);
	if (rc)
		return rc;
	rc = fm_store_map_create(d->store, &m);
	if (rc)
		return rc;
	rc = od_map_attach(d, id);
	if (rc) {
		int keep = rc;

		(void)fm_store_map_delete(d->store, id);
		return keep;
	}
	return 0;
}

/* sessions: one line per session the state machine knows */
static int ctl_sessions(struct fm_ownerd *d, int fd)
{
	struct fm_owner_session_info v[64];
	uint64_t now = od_now_ms();
	size_t n = fm_owner_sessions(d->o, v, 64, now);

	for (size_t i = 0; i < n && i < 64; i++)
		ctl_printf(fd, "session %" PRIu64 " client %u epoch %u token 0x%016" PRIx64
			   " state %s lease-left-ms %" PRId64 " quiesced %d commits %u"
			   " lock-waits %u\n", v[i].conn, v[i].client_id, v[i].epoch,
			   v[i].epoch ? fm_lease_token(d->incarnation, v[i].epoch) : 0,
			   fm_osess_state_name(v[i].state), v[i].lease_left_ms,
			   v[i].quiesced ? 1 : 0, v[i].commits, v[i].waits);
	if (n > 64)
		ctl_printf(fd, "sessions-not-shown %zu\n", n - 64);
	return 0;
}

/* lock-show MAP GRAIN: the lock word covering the grain, decoded, and
 * what the owner knows of its holder's session.  The owner does not see
 * one-sided acquisitions, so "since when" is the holder's business
 * (fm_agent_locks on the client); here: which session, and its lease. */
static int ctl_lock_show(struct fm_ownerd *d, int fd, char **av)
{
	struct fm_owner_session_info v[64];
	uint64_t id, grain, w, idx;
	const char *who = "none";
	struct od_map *m;
	size_t n;
	int64_t left = 0;
	int rc;

	if ((rc = fm_u64_parse("map id", av[1], 0, UINT64_MAX, &id)) ||
	    (rc = fm_u64_parse("grain", av[2], 0, UINT64_MAX, &grain)))
		return rc;
	if (!(m = od_map_find(d, id)))
		return fm_err(-ENOENT, "map %" PRIu64 " unknown", id);
	if (grain >= m->d.grain_count)
		return fm_err(-ERANGE, "map %" PRIu64 ": grain %" PRIu64 " beyond %" PRIu64, id,
			      grain, m->d.grain_count);
	if (!m->locks)
		return fm_err(-EAGAIN, "map %" PRIu64 ": no lock table (restart grace)", id);
	idx = fm_lockword_index(grain, m->d.lock_shift);
	w = __atomic_load_n((const uint64_t *)fm_region_ptr(m->locks) + idx, __ATOMIC_ACQUIRE);
	if (w != FM_LOCKWORD_FREE) {
		n = fm_owner_sessions(d->o, v, 64, od_now_ms());
		who = "gone"; /* a word of a session the owner no longer has */
		for (size_t i = 0; i < n && i < 64; i++)
			if (v[i].client_id == fm_lockword_client(w) &&
			    v[i].epoch == fm_lockword_epoch(w)) {
				who = fm_osess_state_name(v[i].state);
				left = v[i].lease_left_ms;
			}
	}
	ctl_printf(fd, "lock map %" PRIu64 " grain %" PRIu64 " word-index %" PRIu64
		   " word 0x%016" PRIx64 " state %s client %u epoch %u waiters %d"
		   " holder-session %s holder-lease-left-ms %" PRId64 "\n", id, grain, idx, w,
		   w == FM_LOCKWORD_FREE ? "free" :
		   (fm_lockword_flags(w) & FM_LOCKWORD_F_HELD) ? "held" : "handing-over",
		   fm_lockword_client(w), fm_lockword_epoch(w),
		   (fm_lockword_flags(w) & FM_LOCKWORD_F_WAITERS) ? 1 : 0, who, left);
	return 0;
}

#define CTL_COMMANDS "status, maps, sessions, map-create ID SRC TGT SIZE [GRAIN], " \
	"map-show ID, lock-show MAP GRAIN, map-prepare ID, map-start ID, map-restart ID, " \
	"map-stop ID, quit"

/* the commands: how many arguments, and what runs them */
enum ctl_kind { CTL_STATUS, CTL_SESSIONS, CTL_LOCK_SHOW, CTL_CREATE, CTL_SHOW, CTL_MAP_OP };

static const struct ctl_cmd {
	const char *name;
	int min_args, max_args; /* after the name */
	enum ctl_kind kind;
	enum od_pend op;        /* CTL_MAP_OP */
	const char *usage;
} ctl_cmds[] = {
	{ "status", 0, 0, CTL_STATUS, OD_PEND_NONE, "status" },
	{ "maps", 0, 0, CTL_STATUS, OD_PEND_NONE, "maps" },
	{ "sessions", 0, 0, CTL_SESSIONS, OD_PEND_NONE, "sessions" },
	{ "lock-show", 2, 2, CTL_LOCK_SHOW, OD_PEND_NONE, "lock-show MAP GRAIN" },
	{ "map-create", 4, 5, CTL_CREATE, OD_PEND_NONE, "map-create ID SRC TGT SIZE [GRAIN]" },
	{ "map-show", 1, 1, CTL_SHOW, OD_PEND_NONE, "map-show ID" },
	{ "map-prepare", 1, 1, CTL_MAP_OP, OD_PEND_PREPARE, "map-prepare ID" },
	{ "map-start", 1, 1, CTL_MAP_OP, OD_PEND_START, "map-start ID" },
	{ "map-restart", 1, 1, CTL_MAP_OP, OD_PEND_RESTART, "map-restart ID" },
	{ "map-stop", 1, 1, CTL_MAP_OP, OD_PEND_STOP, "map-stop ID" },
};

#define CTL_ARGS_MAX 8 /* tokens of a line, the command's name included */

/* one command line; returns < 0 error, 0 done (answer "ok"), 1 deferred */
static int ctl_exec(struct fm_ownerd *d, int fd, char *line)
{
	char *av[CTL_ARGS_MAX], *save = NULL, *tok;
	const struct ctl_cmd *cmd = NULL;
	int ac = 0, rc;
	uint64_t id;
	struct od_map *m;

	for (tok = strtok_r(line, " \t\r\n", &save); tok; tok = strtok_r(NULL, " \t\r\n", &save)) {
		if (ac == CTL_ARGS_MAX)
			return fm_err(-E2BIG, "more than %d words on the line", CTL_ARGS_MAX);
		av[ac++] = tok;
	}
	if (ac == 0)
		return fm_err(-EINVAL, "empty command");
	for (size_t i = 0; i < sizeof(ctl_cmds) / sizeof(ctl_cmds[0]); i++)
		if (!strcmp(av[0], ctl_cmds[i].name))
			cmd = &ctl_cmds[i];
	if (!cmd)
		return fm_err(-EINVAL, "unknown command '%.40s' (commands: %s)", av[0],
			      CTL_COMMANDS);
	od_log(FM_LOGLVL_DEBUG, "control: %s", cmd->name);
	if (ac - 1 < cmd->min_args || ac - 1 > cmd->max_args)
		return fm_err(-EINVAL, "usage: %s", cmd->usage);
	switch (cmd->kind) {
	case CTL_STATUS:
		return ctl_status(d, fd);
	case CTL_SESSIONS:
		return ctl_sessions(d, fd);
	case CTL_LOCK_SHOW:
		return ctl_lock_show(d, fd, av);
	case CTL_CREATE:
		return ctl_create(d, av, ac);
	case CTL_SHOW:
	case CTL_MAP_OP:
		break;
	}
	rc = fm_u64_parse("map id", av[1], 0, UINT64_MAX, &id);
	if (rc)
		return rc;
	if (cmd->kind == CTL_MAP_OP)
		return ctl_map_op(d, fd, id, cmd->op);
	if (!(m = od_map_find(d, id)))
		return fm_err(-ENOENT, "map %" PRIu64 " unknown", id);
	ctl_show(d, fd, m);
	return 0;
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
	c->json = false;
	free(c->jtext);
	c->jtext = NULL;
}

static struct od_ctl *ctl_by_fd(struct fm_ownerd *d, int fd)
{
	for (unsigned i = 0; fd >= 0 && i < OD_CTL_MAX; i++)
		if (d->ctl[i].fd == fd)
			return &d->ctl[i];
	return NULL;
}

/* execute buffered lines, one at a time: a deferred command (map-start...)
 * holds the rest until it answered, so a script sees answers in order.  A
 * line holding a NUL byte is answered with an error (it is no text), and
 * the lines after it run. */
static void ctl_process(struct fm_ownerd *d, struct od_ctl *c)
{
	char *nl;

	while (c->fd >= 0 && !c->busy && (nl = memchr(c->line, '\n', c->used))) {
		size_t len = (size_t)(nl - c->line) + 1;
		char cmd[OD_CTL_LINE], *line;
		bool has_nul;
		int rc;

		memcpy(cmd, c->line, len - 1);
		cmd[len - 1] = '\0';
		has_nul = memchr(cmd, '\0', len - 1) != NULL;
		memmove(c->line, c->line + len, c->used - len + 1);
		c->used -= len;
		if (has_nul) {
			ctl_printf(c->fd, "error EINVAL: a NUL byte in the command line\n");
			continue;
		}
		if (!strcmp(od_trim(cmd), "quit")) {
			ctl_close(d, c);
			return;
		}
		if (!*od_trim(cmd))
			continue;
		fm_err_clear();
		line = od_trim(cmd);
		c->json = !strncmp(line, "json", 4) && (line[4] == ' ' || line[4] == '\t');
		if (c->json) {
			line = od_trim(line + 4);
			jcap_begin(c->fd, NULL);
		}
		rc = ctl_exec(d, c->fd, line);
		if (rc <= 0) {
			ctl_result(c->fd, rc);
			if (c->json)
				jcap_send(c->fd);
			c->json = false;
		} else {
			if (c->json) { /* the rest comes in od_map_complete */
				free(c->jtext);
				c->jtext = jcap_take();
			}
			c->busy = true;
		}
	}
}

void od_ctl_readable(struct fm_ownerd *d, struct od_ctl *c)
{
	ssize_t n;

	if (c->used == sizeof(c->line) - 1) {
		/* only while busy (else the line was refused below): no room
		 * to read, and the loop polls us again at once -- refuse */
		ctl_printf(c->fd, "error EBUSY: over %zu bytes sent while a command is in "
			   "progress\n", sizeof(c->line) - 1);
		ctl_close(d, c);
		return;
	}
	n = recv(c->fd, c->line + c->used, sizeof(c->line) - 1 - c->used, MSG_DONTWAIT);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		ctl_close(d, c);
		return;
	}
	c->used += (size_t)n;
	c->line[c->used] = '\0';
	c->last_ms = od_now_ms();
	ctl_process(d, c);
	if (c->fd >= 0 && !c->busy && c->used == sizeof(c->line) - 1) {
		ctl_printf(c->fd, "error EINVAL: line too long (at most %d bytes)\n",
			   FM_CTL_LINE_MAX);
		ctl_close(d, c);
	}
}

/*
 * Is the socket at `path` served?  A connect answers: refused means nobody
 * listens (a stale socket left by an owner that is gone); accepted or a
 * full backlog means a live owner.  0 stale, or -EADDRINUSE / -errno.
 */
static int ctl_probe(const char *path, const struct sockaddr_un *sun)
{
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	int rc, e;

	if (fd < 0)
		return fm_err(-errno, "control socket: %s", strerror(errno));
	rc = connect(fd, (const struct sockaddr *)sun, sizeof(*sun));
	e = errno;
	close(fd);
	if (rc == 0 || e == EAGAIN || e == EINPROGRESS)
		return fm_err(-EADDRINUSE, "control socket %s: in use by a running owner "
			      "(stop it, or choose another --control path)", path);
	if (e == ECONNREFUSED)
		return 0;
	if (e == EPROTOTYPE)
		return fm_err(-EEXIST, "control socket %s: a socket of another kind is there; "
			      "not replaced", path);
	return fm_err(-e, "control socket %s: cannot tell whether it is in use: %s", path,
		      strerror(e));
}

/*
 * What may be at `path` before we bind (an operator may have pointed
 * --control at anything, even the pool):
 *   nothing                           bind
 *   a socket nobody listens on        stale: unlink it, bind
 *   a socket a live process serves    -EADDRINUSE, untouched
 *   anything else (file, pool, dir,   -EEXIST, untouched
 *     FIFO, device, symbolic link)
 * A race with another owner binding between our unlink and bind ends in
 * bind's EADDRINUSE, never in two owners on one path.
 */
static int ctl_bind(const char *path)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	struct stat st;
	int fd, rc;

	if (!*path)
		return fm_err(-EINVAL, "control socket: empty path");
	if (strlen(path) >= sizeof(sun.sun_path))
		return fm_err(-ENAMETOOLONG, "control socket %s: path of %zu bytes, at most %zu",
			      path, strlen(path), sizeof(sun.sun_path) - 1);
	strcpy(sun.sun_path, path);
	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode))
			return fm_err(-EEXIST, "control socket %s: %s is there; not replaced "
				      "(remove it, or choose another --control path)", path,
				      S_ISREG(st.st_mode) ? "a regular file" :
				      S_ISDIR(st.st_mode) ? "a directory" :
				      S_ISFIFO(st.st_mode) ? "a FIFO" :
				      S_ISLNK(st.st_mode) ? "a symbolic link" : "a device");
		rc = ctl_probe(path, &sun);
		if (rc)
			return rc;
		od_log(FM_LOGLVL_WARN, "control socket %s: stale (nobody listens), replaced",
		       path);
		if (unlink(path) && errno != ENOENT)
			return fm_err(-errno, "control socket %s: stale, cannot remove: %s", path,
				      strerror(errno));
	} else if (errno != ENOENT) {
		return fm_err(-errno, "control socket %s: %s", path, strerror(errno));
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return fm_err(-errno, "control socket: %s", strerror(errno));
	if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) || listen(fd, 8)) {
		int e = errno;

		close(fd);
		return fm_err(-e, "control socket %s: %s", path, strerror(e));
	}
	return fd;
}

int od_ctl_listen(struct fm_ownerd *d)
{
	const char *path = d->cfg.control_path;
	struct stat st;
	int fd;

	if (!path)
		return 0;
	fd = ctl_bind(path);
	if (fd < 0)
		return fd;
	/* what we will remove at exit, and only that */
	if (lstat(path, &st) || !S_ISSOCK(st.st_mode)) {
		close(fd);
		return fm_err(-ENOENT, "control socket %s: gone right after bind", path);
	}
	d->ctl_fd = fd;
	d->ctl_dev = st.st_dev;
	d->ctl_ino = st.st_ino;
	return 0;
}

/*
 * The socket file goes only if it is still ours: in the meantime an
 * operator may have removed it and put a file there, or another owner its
 * own socket.  (lstat then unlink is not atomic: a swap between the two
 * is the one case this cannot see.)
 */
void od_ctl_unlisten(struct fm_ownerd *d)
{
	const char *path = d->cfg.control_path;
	struct stat st;

	for (unsigned i = 0; i < OD_CTL_MAX; i++)
		if (d->ctl[i].fd >= 0)
			ctl_close(d, &d->ctl[i]);
	if (d->ctl_fd < 0)
		return;
	close(d->ctl_fd);
	d->ctl_fd = -1;
	if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode) && st.st_dev == d->ctl_dev &&
	    st.st_ino == d->ctl_ino)
		(void)unlink(path);
	else
		od_log(FM_LOGLVL_WARN, "control socket %s: no longer ours, left in place", path);
}

/* close `c` with a last line saying why (it was idle) */
static void ctl_evict(struct fm_ownerd *d, struct od_ctl *c, uint64_t now, const char *why)
{
	ctl_printf(c->fd, "error ETIMEDOUT: closed, idle for %" PRIu64 " ms%s\n",
		   now - c->last_ms, why);
	od_log(FM_LOGLVL_DEBUG, "control: closed a connection idle for %" PRIu64 " ms%s",
	       now - c->last_ms, why);
	ctl_close(d, c);
}

/*
 * A new connection takes a free slot; with none, the slot of the
 * longest-idle connection that waits for no deferred answer (idle ones
 * must not lock out `status`); with none of those either (16 deferred
 * commands), the newcomer is refused.
 */
void od_ctl_accept(struct fm_ownerd *d)
{
	int fd = accept4(d->ctl_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
	uint64_t now = od_now_ms();
	struct od_ctl *slot = NULL, *oldest = NULL;

	if (fd < 0)
		return;
	for (unsigned i = 0; i < OD_CTL_MAX && !slot; i++) {
		struct od_ctl *c = &d->ctl[i];

		if (c->fd < 0)
			slot = c;
		else if (!c->busy && (!oldest || c->last_ms < oldest->last_ms))
			oldest = c;
	}
	if (!slot && oldest) {
		ctl_evict(d, oldest, now, " and every control slot taken");
		slot = oldest;
	}
	if (!slot) {
		ctl_printf(fd, "error EBUSY: all %d control connections wait for deferred "
			   "answers\n", OD_CTL_MAX);
		close(fd);
		return;
	}
	slot->fd = fd;
	slot->used = 0;
	slot->busy = false;
	slot->last_ms = now;
}

void od_ctl_tick(struct fm_ownerd *d, uint64_t now)
{
	for (unsigned i = 0; i < OD_CTL_MAX; i++) {
		struct od_ctl *c = &d->ctl[i];

		if (c->fd >= 0 && !c->busy && now - c->last_ms >= d->cfg.control_idle_ms)
			ctl_evict(d, c, now, "");
	}
}
