/* demo_client.c -- flashmeta-demo: one client process.
 *
 * A client is what a storage node runs: an agent (its session with the
 * owner), an engine over two file volumes (refvol.h, writes admitted by the
 * fence table) and T engine threads doing host I/O.  It answers the
 * parent's commands over its pipes (demo.h): phase 1 writes its share of
 * the source (the mapping is idle: DIRECT); phase 2, after the trigger,
 * runs random I/O on both volumes for --seconds (demo_io.c); then it sends
 * its counters (the engine's, its agent's and its confirmation cache's, at
 * both ends of phase 2), its CPU time over phase 2, latency samples and
 * target-write logs, and ends its session.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "demo_client.h"
#include "flashmeta/error.h"

void demo_th_error(struct dthread *th, const char *fmt, ...)
{
	va_list ap;

	th->errors++;
	if (!th->first_error[0]) {
		va_start(ap, fmt);
		vsnprintf(th->first_error, sizeof(th->first_error), fmt, ap);
		va_end(ap);
	}
	atomic_store(&th->cl->stop, true);
}

/* ------------------------------------------------------------ set up */

void demo_client_close(struct dclient *cl)
{
	if (cl->model)
		munmap(cl->model, cl->cfg->size);
	cl->model = NULL;
	fm_engine_delete(&cl->e);
	fm_refvol_close(&cl->vsrc);
	fm_refvol_close(&cl->vtgt);
	fm_agent_delete(&cl->a);
	fm_fence_table_close(&cl->fence);
}

int demo_client_open(struct dclient *cl, const struct demo_cfg *cfg, uint32_t id,
		     const char **what)
{
	uint8_t key[FM_KEY_MAX];
	struct fm_agent_cfg acfg = {
		.provider = cfg->transport, .device = cfg->device[0] ? cfg->device : NULL,
		.addr = cfg->addr, .client_id = id, .key = key,
		.wait_ms = 10000, .retry_min_ms = 20, .retry_max_ms = 200,
		/* lanes: phase 1's threads, phase 2's, this thread's and the
		 * verifier's, with room to spare; an exited thread's lane is
		 * freed (fm_engine_thread_exit), yet threads + 1 left a verbs
		 * run short of a lane once (ENOSPC: "3 lanes already") */
		.max_threads = 2 * cfg->threads + 2,
	};
	struct fm_refvol_cfg vcfg = { .size = cfg->size, .create = false, .client_id = id,
				      .direct = (enum fm_refvol_direct)cfg->direct };
	struct fm_engine_cfg ecfg = { .retry_ms = 10000 };
	int rc;

	memset(cl, 0, sizeof(*cl));
	cl->cfg = cfg;
	cl->id = id;
	*what = "key file";
	rc = fm_key_file_read(cfg->keyfile, key, sizeof(key));
	if (rc < 0)
		return rc;
	acfg.key_len = (size_t)rc;
	*what = "fm_agent_new";
	rc = fm_agent_new(&cl->a, &acfg);
	if (rc)
		return rc;
	*what = "fm_agent_wait_active (joining the owner)";
	rc = fm_agent_wait_active(cl->a, 10000);
	if (rc)
		return rc;
	*what = "fm_fence_table_open";
	rc = fm_fence_table_open(cfg->fence, 0, &cl->fence);
	if (rc)
		return rc;
	vcfg.fence = cl->fence;
	vcfg.path = cfg->src;
	*what = "fm_refvol_open (source)";
	rc = fm_refvol_open(&vcfg, &cl->vsrc);
	if (rc)
		return rc;
	vcfg.path = cfg->tgt;
	*what = "fm_refvol_open (target)";
	rc = fm_refvol_open(&vcfg, &cl->vtgt);
	if (rc)
		return rc;
	ecfg.agent = cl->a;
	*what = "fm_engine_new";
	rc = fm_engine_new(&ecfg, &cl->e);
	if (rc)
		return rc;
	*what = "fm_engine_volume_add";
	rc = fm_engine_volume_add(cl->e, fm_refvol_ops(), cl->vsrc, cfg->size, &cl->src);
	if (!rc)
		rc = fm_engine_volume_add(cl->e, fm_refvol_ops(), cl->vtgt, cfg->size, &cl->tgt);
	if (rc)
		return rc;
	*what = "fm_engine_attach";
	return fm_engine_attach(cl->e, DEMO_MAP_ID, cl->src, cl->tgt);
}

/* ------------------------------------------------------------ phase 1 */

/* chunk j of the source is written by client j % N, thread (j / N) % T */
static void *phase1_thread(void *arg)
{
	struct dthread *th = arg;
	struct dclient *cl = th->cl;
	const struct demo_cfg *cfg = cl->cfg;
	uint64_t seed = demo_seed_source(cfg->seed), t0 = demo_now_ns();
	uint64_t nchunks = (cfg->size + DEMO_CHUNK - 1) / DEMO_CHUNK;
	uint8_t *buf = malloc(DEMO_CHUNK);

	if (!buf) {
		demo_th_error(th, "phase 1: out of memory");
		return NULL;
	}
	for (uint64_t j = cl->c; j < nchunks && !atomic_load(&cl->stop); j += cfg->clients) {
		uint64_t off = j * DEMO_CHUNK;
		uint64_t len = cfg->size - off < DEMO_CHUNK ? cfg->size - off : DEMO_CHUNK;
		int rc;

		if ((j / cfg->clients) % cfg->threads != th->t)
			continue;
		demo_fill(buf, off, len, seed);
		rc = fm_engine_rw(cl->e, DEMO_MAP_ID, FM_IO_WRITE_SOURCE, off, len, buf, NULL);
		if (rc) {
			demo_th_error(th, "phase 1: write_source %" PRIu64 " bytes at %" PRIu64 ": %s (%s)",
				 len, off, strerror(-rc), fm_errormsg());
			break;
		}
	}
	free(buf);
	th->phase1_s = (double)(demo_now_ns() - t0) / 1e9;
	(void)fm_engine_thread_exit(cl->e);
	return NULL;
}

/* ------------------------------------------------------------- process */

static int wait_cmd(int fd, int timeout_ms)
{
	uint8_t c;
	int rc = demo_read_all(fd, &c, 1, timeout_ms);

	return rc ? rc : c;
}

static int run_threads(struct dthread *th, unsigned n, void *(*fn)(void *))
{
	for (unsigned i = 0; i < n; i++) {
		int rc = pthread_create(&th[i].tid, NULL, fn, &th[i]);

		if (rc) {
			atomic_store(&th[0].cl->stop, true);
			while (i--)
				pthread_join(th[i].tid, NULL);
			return -rc;
		}
	}
	for (unsigned i = 0; i < n; i++)
		pthread_join(th[i].tid, NULL);
	return 0;
}

/* after CMD_GO: the model, the trigger seen, --seconds of I/O */
static int phase2(struct dclient *cl, struct dthread *th, struct demo_result *res, int out)
{
	const struct demo_cfg *cfg = cl->cfg;
	struct fm_agent_map am = { 0 };
	struct fm_agent_stats as;
	struct demo_cpu cpu0, cpu1;
	uint64_t t0 = demo_now_ns(), end = t0 + UINT64_C(15000000000);
	int fd, rc;

	fd = open(cfg->golden, O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		cl->model = mmap(NULL, cfg->size, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
		if (cl->model == MAP_FAILED)
			cl->model = NULL;
		close(fd);
	}
	if (!cl->model) {
		rc = -errno;
		demo_send_error(out, "client %u: the model, %s: %s", cl->id, cfg->golden,
				strerror(-rc));
		return rc;
	}
	while (demo_now_ns() < end) {
		if (!fm_agent_map_get(cl->a, DEMO_MAP_ID, &am) && am.granted &&
		    am.state == FM_MAP_COPYING)
			break;
		usleep(2000);
	}
	if (!am.granted || am.state != FM_MAP_COPYING) {
		demo_send_error(out, "client %u: the mapping was not granted in state copying "
				"within 15 s of the trigger (state %s, %s)", cl->id,
				fm_map_state_name(am.state), am.granted ? "granted" : "not granted");
		return -ETIMEDOUT;
	}
	res->wait_copying_ms = (double)(demo_now_ns() - t0) / 1e6;
	/* the counters and CPU time of the I/O alone (send_result takes the
	 * other end of the counters) */
	fm_engine_stats(cl->e, &res->eng_go);
	fm_agent_stats(cl->a, &as);
	res->cache_go = as.cache;
	demo_cpu_self(&cpu0);
	t0 = demo_now_ns();
	cl->deadline_ns = t0 + (uint64_t)cfg->seconds * UINT64_C(1000000000);
	rc = run_threads(th, cfg->threads, demo_phase2_thread);
	res->phase2_s = (double)(demo_now_ns() - t0) / 1e9;
	demo_cpu_self(&cpu1);
	demo_cpu_delta(&cpu0, &cpu1, &res->cpu);
	if (rc)
		demo_send_error(out, "client %u: pthread_create: %s", cl->id, strerror(-rc));
	return rc;
}

static int send_result(struct dclient *cl, struct dthread *th, struct demo_result *res,
		       int out)
{
	const struct demo_cfg *cfg = cl->cfg;
	struct fm_agent_stats as;
	int rc;

	res->client_id = cl->id;
	res->threads = cfg->threads;
	for (unsigned t = 0; t < cfg->threads; t++) {
		for (int op = 0; op < FM_IO_OP_COUNT; op++) {
			res->ios[op] += th[t].ios[op];
			res->bytes[op] += th[t].bytes[op];
		}
		res->polled_ios += th[t].polled_ios;
		res->errors += th[t].errors;
		res->violations += th[t].violations;
		res->checked_bytes += th[t].checked;
		res->nsamples += th[t].nsamples;
		res->seen_samples += th[t].seen_samples;
		res->nlog[t] = th[t].nlog;
		if (res->phase1_s < th[t].phase1_s)
			res->phase1_s = th[t].phase1_s;
		if (!res->first_error[0] && th[t].first_error[0])
			memcpy(res->first_error, th[t].first_error, sizeof(res->first_error));
		if (!res->first_violation[0] && th[t].first_violation[0])
			memcpy(res->first_violation, th[t].first_violation,
			       sizeof(res->first_violation));
	}
	fm_engine_stats(cl->e, &res->eng);
	fm_agent_stats(cl->a, &as);
	res->joins = as.joins;
	res->closes = as.closes;
	res->locks_lost = as.locks_lost;
	res->steps_overdue = as.steps_overdue;
	res->steps_refused = as.steps_refused;
	res->lanes_broken = as.lanes_broken;
	res->cache = as.cache;
	fm_refvol_stats(cl->vsrc, &res->vsrc);
	fm_refvol_stats(cl->vtgt, &res->vtgt);
	rc = demo_send(out, DEMO_MSG_RESULT, res, sizeof(*res));
	for (unsigned t = 0; !rc && t < cfg->threads; t++)
		rc = demo_write_all(out, th[t].samples, th[t].nsamples * sizeof(uint64_t));
	for (unsigned t = 0; !rc && t < cfg->threads; t++)
		rc = demo_write_all(out, th[t].log, th[t].nlog * sizeof(struct demo_twrite));
	return rc;
}

int demo_client_main(const struct demo_cfg *cfg, unsigned c, int cmd, int out)
{
	unsigned slots = demo_slots(cfg), nstripes = (unsigned)((cfg->size + DEMO_STRIPE - 1) /
								  DEMO_STRIPE);
	struct dthread *th = calloc(cfg->threads, sizeof(*th));
	struct demo_result *res = calloc(1, sizeof(*res));
	struct dclient cl;
	const char *what;
	int rc, cmdc, status = 1;

	if (!th || !res) {
		demo_send_error(out, "client %u: out of memory", c + 1);
		return 1;
	}
	rc = demo_client_open(&cl, cfg, c + 1, &what);
	cl.c = c;
	if (rc) {
		demo_send_error(out, "client %u: %s: %s (%s)", c + 1, what, strerror(-rc),
				fm_errormsg());
		goto out;
	}
	for (unsigned t = 0; t < cfg->threads; t++) {
		struct dthread *x = &th[t];

		x->cl = &cl;
		x->t = t;
		x->slot = c * cfg->threads + t;
		x->polled = cfg->depth > 0 && cfg->threads > 1 && t == cfg->threads - 1;
		x->rng = demo_mix(cfg->seed ^ ((uint64_t)x->slot << 32)) | 1;
		x->own = calloc(nstripes / (slots + 1) + 1, sizeof(uint64_t));
		if (!x->own) {
			demo_send_error(out, "client %u: out of memory", c + 1);
			goto out;
		}
		for (uint64_t k = x->slot; k < nstripes; k += slots + 1)
			x->own[x->nown++] = k;
	}
	if (demo_send(out, DEMO_MSG_READY, NULL, 0))
		goto out;
	/* phase 1: the source through the engine, then pause */
	if ((cmdc = wait_cmd(cmd, 120000)) != DEMO_CMD_PHASE1)
		goto out;
	rc = run_threads(th, cfg->threads, phase1_thread);
	if (rc || atomic_load(&cl.stop)) {
		for (unsigned t = 0; !rc && t < cfg->threads; t++)
			if (th[t].first_error[0]) {
				demo_send_error(out, "%s", th[t].first_error);
				goto out;
			}
		demo_send_error(out, "client %u: phase 1: %s", c + 1, strerror(-rc));
		goto out;
	}
	if (demo_send(out, DEMO_MSG_PAUSED, NULL, 0))
		goto out;
	/* phase 2, after the trigger */
	if ((cmdc = wait_cmd(cmd, 300000)) != DEMO_CMD_GO)
		goto out;
	if (phase2(&cl, th, res, out))
		goto out;
	if (send_result(&cl, th, res, out) == 0)
		status = 0;
out:
	demo_client_close(&cl);
	for (unsigned t = 0; t < cfg->threads; t++) {
		free(th[t].own);
		free(th[t].samples);
		free(th[t].log);
	}
	free(th);
	free(res);
	return status;
}
