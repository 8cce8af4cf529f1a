/* client.c -- flashmeta-bench: a client process.
 *
 * What a storage node runs, four times over: an agent with the
 * confirmation cache (client id 1 + i), an agent whose cache keeps nothing
 * (client id 1 + N + i, fm_agent_cfg.no_cache), one whose cache keeps
 * every fill as its own range (client id 1 + 2N + i,
 * fm_agent_cfg.cache_no_merge) and one that decides by message (client id
 * 1 + 3N + i, fm_agent_cfg.decide_by_message), an engine on each, one pair of reference
 * volumes per mapping index added to every engine, a connection to the floor server, and
 * --threads engine threads (worker.c).  Forked by the coordinator before
 * any transport exists; the coordinator's commands come over a pipe
 * (struct hb_cmd), the answers go back over another (struct hb_reply,
 * then the raw samples of a RUN or FLOOR batch).
 *
 * The main thread only talks to the coordinator: it hands a job to the
 * engine threads (mutex + condition variable, outside any measured
 * interval), samples this process's CPU time at the batch's start line
 * and after the last thread finished, and sends what they gathered.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "flashmeta/error.h"
#include "harness.h"

/* -------------------------------------------------------------- pipes */

void hb_pipe_write(int fd, const void *p, size_t n)
{
	while (n) {
		ssize_t k = write(fd, p, n);

		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			hb_die(-EIO, "pipe write");
		p = (const char *)p + k;
		n -= (size_t)k;
	}
}

bool hb_pipe_read(int fd, void *p, size_t n)
{
	while (n) {
		ssize_t k = read(fd, p, n);

		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return false;
		p = (char *)p + k;
		n -= (size_t)k;
	}
	return true;
}

/* ------------------------------------------------------------- set up */

static struct hb_proc P;

static int fail(struct hb_reply *r, int rc, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int fail(struct hb_reply *r, int rc, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(r->err, sizeof(r->err), fmt, ap);
	va_end(ap);
	if (n >= 0 && (size_t)n < sizeof(r->err))
		snprintf(r->err + n, sizeof(r->err) - (size_t)n, ": %d (%s)", rc, fm_errormsg());
	r->rc = rc;
	return rc;
}

/* the agent's session, and every mapping of its set granted COPYING */
static int agent_open(unsigned set, struct hb_reply *r)
{
	struct fm_agent_cfg cfg = {
		.provider = opt.provider, .device = opt.device, .addr = opt.addr,
		.client_id = 1 + P.index + set * opt.clients, .key = HB_KEY,
		.key_len = strlen(HB_KEY), .no_cache = set == V_NOCACHE,
		.cache_no_merge = set == V_NOMERGE, .decide_by_message = set == V_MSG,
		.wait_ms = 10000,
		.max_threads = opt.threads + 2,
	};
	unsigned nmaps = opt.mappings + (opt.hot ? 1 : 0);
	int rc;

	if ((rc = fm_agent_new(&P.a[set], &cfg)))
		return fail(r, rc, "client %u: fm_agent_new", P.index);
	if ((rc = fm_agent_wait_active(P.a[set], 20000)))
		return fail(r, rc, "client %u: no session", P.index);
	for (unsigned k = 0; k < nmaps; k++) {
		struct fm_agent_map m;
		int i;

		for (i = 0; i < 2000; i++) {
			if (!fm_agent_map_get(P.a[set], hb_map_id(set, k), &m) && m.granted &&
			    m.state == FM_MAP_COPYING)
				break;
			usleep(5000);
		}
		if (i == 2000)
			return fail(r, -ETIMEDOUT, "client %u: mapping %" PRIu64
				    " not granted COPYING within 10 s", P.index, hb_map_id(set, k));
	}
	return 0;
}

static int volumes_open(struct hb_reply *r, const char *vol_dir)
{
	unsigned nmaps = opt.mappings + (opt.hot ? 1 : 0);

	for (unsigned k = 0; k < nmaps; k++)
		for (int t = 0; t < 2; t++) {
			char path[512];
			struct fm_refvol_cfg vc = { .size = opt.volume_size };
			struct fm_refvol **v = t ? &P.tgt[k] : &P.src[k];
			int rc;

			if (!strcmp(opt.vol_kind, "file")) {
				snprintf(path, sizeof(path), "%s/%s-%u", vol_dir, t ? "tgt" : "src",
					 k);
				vc.path = path;
			}
			if ((rc = fm_refvol_open(&vc, v)))
				return fail(r, rc, "client %u: volume %s %u", P.index,
					    t ? "target" : "source", k);
		}
	return 0;
}

static int engines_open(struct hb_reply *r)
{
	unsigned nmaps = opt.mappings + (opt.hot ? 1 : 0);

	for (unsigned s = 0; s < HB_SETS; s++) {
		struct fm_engine_cfg ec = { .agent = P.a[s], .trace = hb_engine_trace };
		int rc;

		if ((rc = fm_engine_new(&ec, &P.e[s])))
			return fail(r, rc, "client %u: fm_engine_new", P.index);
		for (unsigned k = 0; k < nmaps; k++) {
			struct fm_volume *vs, *vt;

			if ((rc = fm_engine_volume_add(P.e[s], fm_refvol_ops(), P.src[k],
						       opt.volume_size, &vs)) ||
			    (rc = fm_engine_volume_add(P.e[s], fm_refvol_ops(), P.tgt[k],
						       opt.volume_size, &vt)) ||
			    (rc = fm_engine_attach(P.e[s], hb_map_id(s, k), vs, vt)))
				return fail(r, rc, "client %u: engine %u, mapping %" PRIu64,
					    P.index, s, hb_map_id(s, k));
		}
	}
	/* the trigger mapping: the cache engine's, on the volumes of index 0
	 * (handles of its own: one volume handle, one mapping) */
	if (opt.triggers) {
		struct fm_volume *vs, *vt;
		int rc;

		if ((rc = fm_engine_volume_add(P.e[V_CACHE], fm_refvol_ops(), P.src[0],
					       opt.volume_size, &vs)) ||
		    (rc = fm_engine_volume_add(P.e[V_CACHE], fm_refvol_ops(), P.tgt[0],
					       opt.volume_size, &vt)) ||
		    (rc = fm_engine_attach(P.e[V_CACHE], hb_trig_id(), vs, vt)))
			return fail(r, rc, "client %u: the trigger mapping %" PRIu64, P.index,
				    hb_trig_id());
	}
	return 0;
}

static int setup(struct hb_reply *r, const char *vol_dir)
{
	struct fm_floor_cfg fc = { .provider = opt.provider, .device = opt.device,
				   .addr = opt.floor_addr, .wait = FM_WAIT_EVENT,
				   .lanes = opt.threads };
	int rc;

	P.grains = opt.volume_size / opt.grain_size;
	if (opt.pattern == PAT_ZIPF)
		hb_zipf_init(&P.zipf, opt.volume_size / opt.io_size * opt.mappings, opt.theta);
	for (unsigned s = 0; s < HB_SETS; s++)
		if ((rc = agent_open(s, r)))
			return rc;
	if ((rc = volumes_open(r, vol_dir)) || (rc = engines_open(r)))
		return rc;
	if ((rc = fm_floor_open(&P.floor, &fc)))
		return fail(r, rc, "client %u: floor connection to %s", P.index, opt.floor_addr);
	P.floor_open = true;
	for (unsigned i = 0; i < opt.threads; i++) {
		struct hb_worker *w = &P.w[i];
		size_t pb = opt.grain_size > HB_PRESPLIT_IO ? opt.grain_size : HB_PRESPLIT_IO;

		w->p = &P;
		w->index = i;
		w->global = P.index * opt.threads + i;
		w->hot = i == 0 && P.index < opt.hot;
		w->buf = aligned_alloc(4096, (opt.io_size + 4095) & ~(uint64_t)4095);
		w->pbuf = aligned_alloc(4096, pb);
		if (!w->buf || !w->pbuf)
			return fail(r, -ENOMEM, "client %u: buffers", P.index);
		memset(w->buf, 0x5a, opt.io_size);
		memset(w->pbuf, 0xa5, pb);
		if ((rc = pthread_create(&w->th, NULL, hb_worker_main, w)))
			return fail(r, -rc, "client %u: thread", P.index);
	}
	return 0;
}

static void teardown(void)
{
	unsigned nmaps = opt.mappings + (opt.hot ? 1 : 0);

	pthread_mutex_lock(&P.mu);
	P.quit = true;
	pthread_cond_broadcast(&P.cv);
	pthread_mutex_unlock(&P.mu);
	for (unsigned i = 0; i < opt.threads; i++)
		if (P.w[i].p) {
			pthread_join(P.w[i].th, NULL);
			free(P.w[i].buf);
			free(P.w[i].pbuf);
		}
	for (unsigned s = 0; s < HB_SETS; s++)
		fm_engine_delete(&P.e[s]);
	for (unsigned k = 0; k < nmaps; k++) {
		fm_refvol_close(&P.src[k]);
		fm_refvol_close(&P.tgt[k]);
	}
	for (unsigned s = 0; s < HB_SETS; s++)
		fm_agent_delete(&P.a[s]);
	if (P.floor_open)
		fm_floor_close(&P.floor);
}

/* --------------------------------------------------------------- jobs */

/* hand the job to every engine thread and wait until all are done */
static void run_job(const struct hb_cmd *cmd, struct fm_proc_cpu *c0, struct fm_proc_cpu *c1)
{
	pthread_mutex_lock(&P.mu);
	P.job = *cmd;
	P.done_count = 0;
	P.go_gen++;
	pthread_cond_broadcast(&P.cv);
	pthread_mutex_unlock(&P.mu);
	if (c0) {
		struct timespec ts = { .tv_sec = (time_t)(cmd->t_start / 1000000000u),
				       .tv_nsec = (long)(cmd->t_start % 1000000000u) };

		clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
		(void)fm_proc_cpu_sample(getpid(), c0);
	}
	pthread_mutex_lock(&P.mu);
	while (P.done_count < opt.threads)
		pthread_cond_wait(&P.cv, &P.mu);
	pthread_mutex_unlock(&P.mu);
	if (c1)
		(void)fm_proc_cpu_sample(getpid(), c1);
}

static void agent_stats(unsigned unit, struct fm_agent_stats *st)
{
	memset(st, 0, sizeof(*st));
	if (unit < HB_SETS)
		fm_agent_stats(P.a[unit], st);
}

static void delta(const struct fm_agent_stats *a, const struct fm_agent_stats *b,
		  struct hb_agent_delta *d)
{
	d->fetches = b->fetches - a->fetches;
	d->locks = b->locks - a->locks;
	d->commits = b->commits - a->commits;
	d->unlocks = b->unlocks - a->unlocks;
	d->commits_sent = b->commits_sent - a->commits_sent;
	d->lookups = b->cache.lookups - a->cache.lookups;
	d->cache_hits = b->cache.hits - a->cache.hits;
	d->cache_misses = b->cache.misses - a->cache.misses;
	d->inserts = b->cache.inserts - a->cache.inserts;
	d->evictions = b->cache.evictions - a->cache.evictions;
	d->bytes = b->cache.bytes;
	d->ranges = b->cache.ranges;
}

/* what the threads gathered, then their samples */
static void reply_batch(int wfd, const struct hb_cmd *cmd)
{
	struct fm_agent_stats s0, s1;
	struct fm_proc_cpu c0, c1, cd;
	struct hb_reply r;

	memset(&r, 0, sizeof(r));
	agent_stats(cmd->unit, &s0);
	run_job(cmd, &c0, &c1);
	agent_stats(cmd->unit, &s1);
	if (cmd->op == CMD_RUN)
		delta(&s0, &s1, &r.ag);
	fm_proc_cpu_delta(&c0, &c1, &cd);
	r.cpu_ms = fm_proc_cpu_ms(&cd);
	r.cpu_sched = cd.have_sched;
	r.t_first = UINT64_MAX;
	for (unsigned i = 0; i < opt.threads; i++) {
		const struct hb_worker *w = &P.w[i];

		if (w->rc && !r.rc) {
			r.rc = w->rc;
			snprintf(r.err, sizeof(r.err), "client %u thread %u: %.200s", P.index, i,
				 w->err);
		}
		if (w->t_first && w->t_first < r.t_first)
			r.t_first = w->t_first;
		if (w->t_last > r.t_last)
			r.t_last = w->t_last;
		r.ios += w->ios;
		r.decisions += w->decisions;
		r.errors += w->errors;
		r.restarts += w->restarts;
		r.hot_ios += w->hot_ios;
		for (unsigned c = 0; c < SE_N; c++)
			r.n[c] += w->s[c].n;
		for (unsigned f = 0; f < F_N; f++)
			r.nf[f] += w->f[f].n;
	}
	if (r.t_first == UINT64_MAX)
		r.t_first = 0;
	hb_pipe_write(wfd, &r, sizeof(r));
	for (unsigned c = 0; c < SE_N; c++)
		for (unsigned i = 0; i < opt.threads; i++)
			if (P.w[i].s[c].n)
				hb_pipe_write(wfd, P.w[i].s[c].v, P.w[i].s[c].n * sizeof(double));
	for (unsigned f = 0; f < F_N; f++)
		for (unsigned i = 0; i < opt.threads; i++)
			if (P.w[i].f[f].n)
				hb_pipe_write(wfd, P.w[i].f[f].v, P.w[i].f[f].n * sizeof(double));
}

static void reply_rc(int wfd, const struct hb_cmd *cmd)
{
	struct hb_reply r;

	memset(&r, 0, sizeof(r));
	run_job(cmd, NULL, NULL);
	for (unsigned i = 0; i < opt.threads; i++)
		if (P.w[i].rc && !r.rc) {
			r.rc = P.w[i].rc;
			snprintf(r.err, sizeof(r.err), "client %u thread %u: %.200s", P.index, i,
				 P.w[i].err);
		}
	hb_pipe_write(wfd, &r, sizeof(r));
}

static __attribute__((noreturn)) void client_main(int rfd, int wfd, const char *vol_dir)
{
	struct hb_cmd cmd;

	pthread_mutex_init(&P.mu, NULL);
	pthread_cond_init(&P.cv, NULL);
	while (hb_pipe_read(rfd, &cmd, sizeof(cmd))) {
		if (cmd.op == CMD_SETUP) {
			struct hb_reply r;

			memset(&r, 0, sizeof(r));
			(void)setup(&r, vol_dir);
			hb_pipe_write(wfd, &r, sizeof(r));
			if (r.rc)
				break;
		} else if (cmd.op == CMD_PRESPLIT) {
			reply_rc(wfd, &cmd);
		} else if (cmd.op == CMD_RUN || cmd.op == CMD_FLOOR) {
			reply_batch(wfd, &cmd);
		} else {
			break;
		}
	}
	teardown();
	_exit(0);
}

/* -------------------------------------------------- the coordinator's side */

/* every child forked and not stopped yet (benchmark clients and
 * contenders alike): a new child closes the coordinator's pipes to them */
static struct hb_client *live[2 * HB_MAX_CLIENTS];

bool hb_proc_fork(struct hb_client *c, unsigned index, int *cmd_fd, int *reply_fd)
{
	int to[2], from[2];
	unsigned slot = 0;

	while (slot < 2 * HB_MAX_CLIENTS && live[slot])
		slot++;
	if (slot == 2 * HB_MAX_CLIENTS)
		hb_die(-EMFILE, "more than %u child processes", 2 * HB_MAX_CLIENTS);
	/* close-on-exec: the owner, exec'd later, keeps none of them */
	if (pipe2(to, O_CLOEXEC) || pipe2(from, O_CLOEXEC))
		hb_die(-errno, "pipe");
	fflush(NULL);
	c->index = index;
	c->pid = fork();
	if (c->pid < 0)
		hb_die(-errno, "fork");
	if (c->pid == 0) {
		for (unsigned i = 0; i < 2 * HB_MAX_CLIENTS; i++)
			if (live[i]) {
				close(live[i]->to);
				close(live[i]->from);
			}
		close(to[1]);
		close(from[0]);
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		signal(SIGINT, SIG_IGN); /* the coordinator ends the run */
		*cmd_fd = to[0];
		*reply_fd = from[1];
		return true;
	}
	close(to[0]);
	close(from[1]);
	c->to = to[1];
	c->from = from[0];
	live[slot] = c;
	return false;
}

void hb_proc_stop(struct hb_client *c, int quit_op)
{
	struct hb_cmd q = { .op = quit_op };
	int st;

	if (c->pid <= 0)
		return;
	(void)!write(c->to, &q, sizeof(q)); /* it may be gone already */
	close(c->to);
	close(c->from);
	for (int i = 0; i < 1000 && waitpid(c->pid, &st, WNOHANG) == 0; i++)
		usleep(10000);
	if (waitpid(c->pid, &st, WNOHANG) == 0) {
		kill(c->pid, SIGKILL);
		waitpid(c->pid, &st, 0);
	}
	c->pid = 0;
	c->to = c->from = -1;
	for (unsigned i = 0; i < 2 * HB_MAX_CLIENTS; i++)
		if (live[i] == c)
			live[i] = NULL;
}

void hb_client_start(struct hb_client *c, unsigned index, struct hb_shared *sh,
		     const char *vol_dir)
{
	int in, out;

	if (hb_proc_fork(c, index, &in, &out)) {
		P.index = index;
		P.sh = sh;
		client_main(in, out, vol_dir);
	}
}

void hb_client_send(struct hb_client *c, const struct hb_cmd *cmd)
{
	hb_pipe_write(c->to, cmd, sizeof(*cmd));
}

void hb_client_reply(struct hb_client *c, struct hb_reply *r)
{
	if (!hb_pipe_read(c->from, r, sizeof(*r)))
		hb_die(-EIO, "client %u went away (pid %d)", c->index, (int)c->pid);
}

void hb_client_read(struct hb_client *c, void *buf, size_t n)
{
	if (!hb_pipe_read(c->from, buf, n))
		hb_die(-EIO, "client %u went away mid-reply", c->index);
}

void hb_client_stop(struct hb_client *c)
{
	hb_proc_stop(c, CMD_QUIT);
}
