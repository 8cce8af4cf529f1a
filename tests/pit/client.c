/* client.c -- a forked client process: one fm_agent and the library's
 * I/O engine on it (engine.h), engine threads that tag what they write and
 * log every I/O attempt.  Even threads use the synchronous form, odd ones
 * the polled form (--form picks one for all).
 *
 * Kinds (pit.h): RANDOM workers run until the shared stop flag; SCRIPTED
 * runs the parent's commands (struct pit_cmd on cmd_fd, one thread per
 * command, answer on reply_fd); SWEEP reads every block of every volume
 * through the engine and saves each mapping's published bitmap.
 *
 * Threads: each worker (struct worker) is used by one thread at a time;
 * the log fd is shared (one write(2) per record, O_APPEND); the
 * pit_cshared counters are atomics.  Nothing here prints on the hot path.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "flashmeta/agent.h"
#include "flashmeta/error.h"
#include "engine.h"
#include "pit.h"
#include "plog.h"
#include "tag.h"

struct client;

struct worker {
	struct client *cl;
	unsigned thread, writer;
	uint64_t rng;
	uint32_t seq_count;      /* writes issued by this writer (incarnation) */
	uint64_t io_count;
	pthread_t tid;
	/* the I/O in progress */
	enum fm_io_op op;
	unsigned map;
	uint64_t b0;
	uint32_t nblk;
	uint8_t *buf;
	struct pit_rec start;    /* START of the current attempt */
	bool locked, slowing;
	unsigned commits_out;    /* commit runs in flight */
	/* scripted: stall once at this step (enum pit_step + 1) */
	unsigned slow_step;
	uint32_t slow_ms;
	/* scripted: the command */
	struct pit_cmd cmd;
	int reply_fd;
};

struct client {
	const struct pit_env *e;
	const struct pit_cfg *cfg;
	unsigned idx;
	uint32_t inc;
	struct pit_cshared *cs;
	struct fm_agent *a;
	struct pit_eng *eng;
	int log_fd;
	struct worker w[PIT_MAX_THREADS];
	pthread_mutex_t reply_lock;
};

static const char *cl_name(const struct client *c)
{
	static __thread char buf[32];

	snprintf(buf, sizeof(buf), "client %u.%u", c->idx, c->inc);
	return buf;
}

/* ------------------------------------------------------------- hooks */

static uint32_t vol_of(const struct client *c, unsigned map, enum fm_io_op op)
{
	const struct pit_map *m = &c->e->maps[map];

	return (op == FM_IO_READ_SOURCE || op == FM_IO_WRITE_SOURCE) ? m->src_vol : m->tgt_vol;
}

static void put(struct client *c, struct pit_rec *r, const struct pit_obs *obs, unsigned n)
{
	int rc = pit_log_put(c->log_fd, r, obs, n);

	if (rc) {
		fprintf(stderr, "%s: log write: %s\n", cl_name(c), strerror(-rc));
		_exit(3); /* the parent counts an unexpected exit */
	}
}

static void w_begin(void *ctx, const struct fm_agent_map *map)
{
	struct worker *w = ctx;
	struct client *c = w->cl;
	bool wr = w->op == FM_IO_WRITE_SOURCE || w->op == FM_IO_WRITE_TARGET;

	w->start = (struct pit_rec){
		.type = PIT_REC_START, .io = (uint64_t)w->thread << 48 | ++w->io_count,
		.gen = map->generation, .block = w->b0, .nblk = w->nblk,
		.writer = (uint16_t)w->writer, .client = (uint16_t)c->idx,
		.map = (uint16_t)w->map, .op = (uint8_t)w->op, .state = (uint8_t)map->state,
		.vol = vol_of(c, w->map, w->op), .inc = c->inc,
	};
	w->start.t_ns = pit_now_ns();
	if (wr) {
		/* every attempt is its own write: a failed one may have landed */
		w->start.seq = (uint64_t)c->inc << 32 | ++w->seq_count;
		for (uint32_t i = 0; i < w->nblk; i++) {
			struct pit_tag t = {
				.vol = w->start.vol, .writer = (uint16_t)w->writer,
				.client = (uint16_t)c->idx, .block = w->b0 + i, .seq = w->start.seq,
				.gen = map->generation, .t_ns = w->start.t_ns,
			};

			pit_tag_encode(w->buf + (size_t)i * PIT_BLOCK, &t);
		}
	}
	put(c, &w->start, NULL, 0); /* before any data step */
	atomic_fetch_add(&c->cs->attempts, 1);
}

static void w_flags_clear(struct worker *w)
{
	struct pit_cshared *cs = w->cl->cs;

	if (w->locked)
		atomic_fetch_sub(&cs->in_copy, 1);
	if (w->commits_out)
		atomic_fetch_sub(&cs->in_commit, 1);
	if (w->slowing)
		atomic_fetch_sub(&cs->in_slow, 1);
	w->locked = w->slowing = false;
	w->commits_out = 0;
}

static void w_end(void *ctx, int rc)
{
	struct worker *w = ctx;
	struct pit_obs obs[PIT_MAX_IO_BLOCKS];
	struct pit_rec r = w->start;
	unsigned n = 0;

	w_flags_clear(w);
	if (pit_now_ns() - w->start.t_ns > 2000000000ull) /* a liveness sign: say why */
		fprintf(stderr, "%s: a %.1f s attempt of %s ended %d (%s)\n", cl_name(w->cl),
			(double)(pit_now_ns() - w->start.t_ns) / 1e9, fm_io_op_name(w->op), rc,
			rc ? fm_errormsg() : "ok");
	r.type = PIT_REC_END;
	r.rc = rc;
	if ((w->op == FM_IO_READ_SOURCE || w->op == FM_IO_READ_TARGET) && rc == 0) {
		for (n = 0; n < w->nblk; n++) {
			struct pit_tag t;
			enum pit_val_kind k = pit_tag_decode(w->buf + (size_t)n * PIT_BLOCK, &t);

			obs[n] = (struct pit_obs){ .kind = (uint8_t)k, .writer = t.writer,
						   .vol = t.vol, .block = t.block, .seq = t.seq,
						   .gen = t.gen };
		}
	}
	r.t_ns = pit_now_ns();
	put(w->cl, &r, obs, n);
}

/* a slow storage step of ms; a scripted one ends early when the parent
 * opens this client's gate (so a scenario does not depend on timing) */
static void slow_sleep(struct worker *w, uint32_t ms, bool gated)
{
	struct pit_cshared *cs = w->cl->cs;
	const atomic_int *gate = &w->cl->e->sh->gate[w->cl->idx];
	uint64_t end = pit_now_ns() + (uint64_t)ms * 1000000;

	w->slowing = true;
	atomic_fetch_add(&cs->in_slow, 1);
	atomic_fetch_add(&cs->slow, 1);
	if (!gated)
		pit_sleep_ms(ms);
	while (gated && !atomic_load(gate) && pit_now_ns() < end)
		pit_sleep_ms(1);
	atomic_fetch_sub(&cs->in_slow, 1);
	w->slowing = false;
}

/* a COMMIT_BEGIN or COMMIT record per grain of [first, last] */
static void put_commit(struct worker *w, uint8_t type, uint64_t first, uint64_t last, int rc)
{
	struct pit_rec r = w->start;

	r.type = type;
	r.rc = rc;
	r.t_ns = pit_now_ns();
	for (uint64_t g = first; g <= last; g++) {
		r.block = g;
		put(w->cl, &r, NULL, 0);
	}
}

static void w_step(void *ctx, enum pit_step s, uint64_t first, uint64_t last, int rc)
{
	struct worker *w = ctx;
	struct client *c = w->cl;
	struct pit_cshared *cs = c->cs;

	switch (s) {
	case PIT_STEP_LOCKED:
		w->locked = true;
		atomic_fetch_add(&cs->in_copy, 1);
		break;
	case PIT_STEP_COMMIT:
		put_commit(w, PIT_REC_COMMIT_BEGIN, first, last, 0);
		if (w->commits_out++ == 0)
			atomic_fetch_add(&cs->in_commit, 1);
		break;
	case PIT_STEP_COMMITTED:
		if (w->commits_out && --w->commits_out == 0)
			atomic_fetch_sub(&cs->in_commit, 1);
		put_commit(w, PIT_REC_COMMIT, first, last, rc);
		break;
	case PIT_STEP_UNLOCKED:
		if (w->locked)
			atomic_fetch_sub(&cs->in_copy, 1);
		w->locked = false;
		break;
	case PIT_STEP_COPY_READ:
	case PIT_STEP_COPY_WRITE:
	case PIT_STEP_TGT_WRITE:
	case PIT_STEP_SRC_WRITE:
	case PIT_STEP_REDIRECT:
		if (w->slow_step == (unsigned)s + 1) { /* scripted: exactly here, once */
			w->slow_step = 0;
			slow_sleep(w, w->slow_ms, true);
		} else if (c->cfg->slow_pct && c->cfg->slow_ms &&
			   pit_rnd_below(&w->rng, 100) < c->cfg->slow_pct) {
			slow_sleep(w, 1 + (uint32_t)pit_rnd_below(&w->rng, c->cfg->slow_ms), false);
		}
		break;
	default:
		break;
	}
}

static int do_io(struct worker *w, enum fm_io_op op, unsigned map, uint64_t b0, uint32_t nblk)
{
	struct client *c = w->cl;
	struct pit_eng_hooks h = { .ctx = w, .begin = w_begin, .end = w_end, .step = w_step };
	bool polled = c->cfg->form == PIT_FORM_MIXED ? w->thread % 2 == 1
						     : c->cfg->form == PIT_FORM_POLLED;
	int rc;

	w->op = op;
	w->map = map;
	w->b0 = b0;
	w->nblk = nblk;
	rc = pit_eng_io(c->eng, map, op, b0 * PIT_BLOCK, (uint64_t)nblk * PIT_BLOCK, w->buf, &h,
			polled, NULL);
	if (rc) {
		atomic_fetch_add(&c->cs->failed, 1);
		fprintf(stderr, "%s: %s map %u blocks %" PRIu64 "+%u failed: %d (%s)\n", cl_name(c),
			fm_io_op_name(op), map, b0, nblk, rc, fm_errormsg());
	} else {
		atomic_fetch_add(&c->cs->ios[op], 1);
	}
	return rc;
}

/* ----------------------------------------------------- random workload */

static uint64_t pick_grain(struct worker *w, const struct pit_map *m)
{
	if (m->hot_grains && pit_rnd_below(&w->rng, 2))
		return pit_rnd_below(&w->rng, m->hot_grains);
	return pit_rnd_below(&w->rng, m->grains);
}

/* blocks this writer may write: a stripe it owns, or part of a run */
static bool pick_write(struct worker *w, const struct pit_map *m, uint64_t *b0, uint32_t *n)
{
	unsigned W = w->cl->e->writers;
	uint64_t groups = m->grains / 8;

	if (pit_rnd_below(&w->rng, 100) < 30 && groups > w->writer) {
		uint64_t count = (groups - 1 - w->writer) / W + 1;
		uint64_t k = w->writer + W * pit_rnd_below(&w->rng, count);
		uint64_t base = (k * 8 + 6) * PIT_BPG, c = pit_rnd_below(&w->rng, 10);

		if (c < 4) { /* one whole grain: WRITE_AND_SPLIT on a target */
			*b0 = base + (c % 2) * PIT_BPG;
			*n = PIT_BPG;
		} else if (c < 6) { /* both grains */
			*b0 = base;
			*n = 2 * PIT_BPG;
		} else {
			uint64_t s = pit_rnd_below(&w->rng, 2 * PIT_BPG);

			*b0 = base + s;
			*n = 1 + (uint32_t)pit_rnd_below(&w->rng, 2 * PIT_BPG - s);
		}
		return true;
	}
	for (int tries = 0; tries < 64; tries++) {
		uint64_t g = pick_grain(w, m), s;

		if (g % 8 >= 6)
			continue;
		s = (w->writer + W - g % W) % W;
		if (s >= PIT_BPG / PIT_STRIPE)
			continue;
		*b0 = g * PIT_BPG + s * PIT_STRIPE;
		*n = 1 + (uint32_t)pit_rnd_below(&w->rng, PIT_STRIPE);
		if (*n < PIT_STRIPE)
			*b0 += pit_rnd_below(&w->rng, PIT_STRIPE - *n + 1);
		return true;
	}
	return false;
}

static void pick_read(struct worker *w, const struct pit_map *m, uint64_t *b0, uint32_t *n)
{
	uint64_t blocks = pit_map_blocks(m);

	*b0 = pick_grain(w, m) * PIT_BPG + pit_rnd_below(&w->rng, PIT_BPG);
	*n = 1 + (uint32_t)pit_rnd_below(&w->rng, 2 * PIT_BPG);
	if (*b0 + *n > blocks)
		*n = (uint32_t)(blocks - *b0);
}

static void *random_main(void *arg)
{
	struct worker *w = arg;
	struct client *c = w->cl;
	const struct pit_env *e = c->e;
	/* pacing: every worker of every client gets an equal share of rate */
	uint64_t gap = c->cfg->rate ? 1000000000ull * e->writers / c->cfg->rate : 0;
	uint64_t next = pit_now_ns();

	while (!atomic_load(&e->sh->stop)) {
		if (gap) {
			uint64_t now = pit_now_ns();

			if (now < next)
				pit_sleep_us((uint32_t)((next - now) / 1000));
			next = (now > next + 1000000000ull ? now : next) + gap;
		}
		unsigned mi = (unsigned)pit_rnd_below(&w->rng, e->nmaps);
		const struct pit_map *m = &e->maps[mi];
		struct fm_agent_map am;
		bool copying =
		    fm_agent_map_get(c->a, m->id, &am) == 0 && am.state == FM_MAP_COPYING;
		uint64_t r = pit_rnd_below(&w->rng, 100), b0;
		uint32_t n;
		enum fm_io_op op;

		if (r < 30)
			op = FM_IO_WRITE_SOURCE;
		else if (r < 50)
			op = copying ? FM_IO_WRITE_TARGET : FM_IO_WRITE_SOURCE;
		else if (r < 80)
			op = copying ? FM_IO_READ_TARGET : FM_IO_READ_SOURCE;
		else
			op = FM_IO_READ_SOURCE;
		if (op == FM_IO_WRITE_SOURCE || op == FM_IO_WRITE_TARGET) {
			if (!pick_write(w, m, &b0, &n))
				continue;
		} else {
			pick_read(w, m, &b0, &n);
		}
		(void)do_io(w, op, mi, b0, n);
	}
	return NULL;
}

/* ------------------------------------------------------------ scripted */

static void *cmd_main(void *arg)
{
	struct worker *w = arg;
	struct pit_reply rep = { .id = w->cmd.id };

	w->slow_step = w->cmd.slow_step;
	w->slow_ms = w->cmd.slow_ms;
	rep.t_begin_ns = pit_now_ns();
	rep.rc = do_io(w, (enum fm_io_op)w->cmd.op, w->cmd.map, w->cmd.block, w->cmd.nblk);
	rep.t_end_ns = pit_now_ns();
	w->slow_step = 0;
	pthread_mutex_lock(&w->cl->reply_lock);
	(void)!write(w->reply_fd, &rep, sizeof(rep));
	pthread_mutex_unlock(&w->cl->reply_lock);
	return NULL;
}

static int run_scripted(struct client *c, int cmd_fd, int reply_fd)
{
	bool busy[PIT_MAX_THREADS] = { false };
	struct pit_cmd cmd;

	/* one command per engine thread at a time: the parent waits for the
	 * answer before it gives that thread the next one */
	while (read(cmd_fd, &cmd, sizeof(cmd)) == (ssize_t)sizeof(cmd)) {
		struct worker *w;

		if (cmd.thread >= c->cfg->threads || cmd.map >= c->e->nmaps ||
		    cmd.nblk == 0 || cmd.nblk > PIT_MAX_IO_BLOCKS) {
			struct pit_reply rep = { .id = cmd.id, .rc = -EINVAL };

			(void)!write(reply_fd, &rep, sizeof(rep));
			continue;
		}
		w = &c->w[cmd.thread];
		if (busy[cmd.thread])
			pthread_join(w->tid, NULL);
		w->cmd = cmd;
		w->reply_fd = reply_fd;
		busy[cmd.thread] = pthread_create(&w->tid, NULL, cmd_main, w) == 0;
	}
	for (unsigned t = 0; t < c->cfg->threads; t++)
		if (busy[t])
			pthread_join(c->w[t].tid, NULL);
	return 0;
}

/* --------------------------------------------------------------- sweep */

static int save_bitmap(struct client *c, unsigned mi)
{
	const struct pit_map *m = &c->e->maps[mi];
	uint64_t bytes = (m->grains + 63) / 64 * 8;
	uint8_t *bm = calloc(1, bytes);
	struct fm_agent_io io;
	char path[400];
	FILE *f;
	int rc = -1;

	for (int tries = 0; bm && rc && tries < 100; tries++) {
		/* inside a bracket: the generation cannot move under the read */
		rc = fm_agent_io_begin(c->a, m->id, &io);
		if (rc)
			continue;
		for (uint64_t off = 0; !rc && off < bytes; off += 32768)
			rc = fm_agent_read_bitmap(c->a, m->id, off, bm + off,
						  bytes - off < 32768 ? bytes - off : 32768);
		fm_agent_io_end(c->a, &io);
		if (rc)
			pit_sleep_ms(20);
	}
	if (rc) {
		fprintf(stderr, "%s: bitmap of map %" PRIu64 ": %s\n", cl_name(c), m->id,
			fm_errormsg());
		free(bm);
		return -1;
	}
	snprintf(path, sizeof(path), "%s/bitmap.%u", c->e->dir, mi);
	f = fopen(path, "w");
	if (!f) {
		free(bm);
		return -1;
	}
	fprintf(f, "%" PRIu64 " %" PRIu64 " %d\n", io.map.generation, m->grains,
		(int)io.map.state);
	fwrite(bm, 1, bytes, f);
	fclose(f);
	free(bm);
	return 0;
}

static int run_sweep(struct client *c)
{
	struct worker *w = &c->w[0];
	int bad = 0;

	for (unsigned mi = 0; mi < c->e->nmaps; mi++) {
		uint64_t blocks = pit_map_blocks(&c->e->maps[mi]);

		for (int side = 0; side < 2; side++)
			for (uint64_t b = 0; b < blocks; b += PIT_MAX_IO_BLOCKS) {
				uint32_t n = blocks - b < PIT_MAX_IO_BLOCKS ? (uint32_t)(blocks - b)
									 : PIT_MAX_IO_BLOCKS;

				bad += do_io(w, side ? FM_IO_READ_TARGET : FM_IO_READ_SOURCE, mi, b,
					     n) != 0;
			}
		bad += save_bitmap(c, mi) != 0;
	}
	return bad ? 1 : 0;
}

/* ---------------------------------------------------------------- main */

static int join(struct client *c)
{
	const struct pit_env *e = c->e;
	struct fm_agent_cfg acfg = {
		.provider = c->cfg->provider, .device = c->cfg->device, .addr = e->addr,
		.client_id = c->idx + 1, .key = e->key, .key_len = e->key_len,
		.wait_ms = 8000, .retry_min_ms = 20, .retry_max_ms = 200,
	};
	uint64_t give_up = pit_now_ns() + 60000000000ull;
	int rc = fm_agent_new(&c->a, &acfg);

	if (rc) {
		fprintf(stderr, "%s: fm_agent_new: %s\n", cl_name(c), fm_errormsg());
		return rc;
	}
	/* the owner may be down right now (a fault): keep waiting */
	for (;;) {
		unsigned known = 0;

		if (fm_agent_wait_active(c->a, 1000) == 0)
			for (unsigned i = 0; i < e->nmaps; i++) {
				struct fm_agent_map m;

				known += fm_agent_map_get(c->a, e->maps[i].id, &m) == 0;
			}
		if (known == e->nmaps)
			return 0;
		if (pit_now_ns() > give_up) {
			fprintf(stderr, "%s: no session with the owner: %s\n", cl_name(c),
				fm_errormsg());
			return -ETIMEDOUT;
		}
		pit_sleep_ms(10);
	}
}

int pit_client_main(const struct pit_env *e, unsigned idx, uint32_t inc,
		    enum pit_client_kind kind, int cmd_fd, int reply_fd)
{
	static struct client cl; /* one per process */
	struct client *c = &cl;
	char path[400];
	unsigned nthreads = kind == PIT_CLIENT_SWEEP ? 1 : e->cfg->threads;
	int rc = 0;

	c->e = e;
	c->cfg = e->cfg;
	c->idx = idx;
	c->inc = inc;
	c->cs = &e->sh->c[idx];
	pit_eng_mutation = (enum pit_mutation)e->cfg->mutation;
	pthread_mutex_init(&c->reply_lock, NULL);
	pit_log_path(e, idx, inc, path, sizeof(path));
	c->log_fd = pit_log_open(path);
	if (c->log_fd < 0)
		return 2;
	for (unsigned t = 0; t < nthreads; t++) {
		struct worker *w = &c->w[t];

		w->cl = c;
		w->thread = t;
		w->writer = kind == PIT_CLIENT_SWEEP ? 0xffff : idx * e->cfg->threads + t;
		w->rng =
		    pit_rnd_seed(e->cfg->seed, (uint64_t)(idx + 1) << 40 | (uint64_t)inc << 8 | t);
		w->buf = aligned_alloc(4096, (size_t)PIT_MAX_IO_BLOCKS * PIT_BLOCK);
		if (!w->buf)
			return 2;
	}
	if (join(c))
		return 2;
	if (pit_eng_open(e, c->a, c->idx + 1, c->cfg->retry_ms, &c->eng)) {
		fprintf(stderr, "%s: engine: %s\n", cl_name(c), fm_errormsg());
		return 2;
	}
	atomic_store(&c->cs->ready, 1);
	switch (kind) {
	case PIT_CLIENT_RANDOM:
		for (unsigned t = 0; t < nthreads; t++)
			if (pthread_create(&c->w[t].tid, NULL, random_main, &c->w[t]))
				return 2;
		for (unsigned t = 0; t < nthreads; t++)
			pthread_join(c->w[t].tid, NULL);
		break;
	case PIT_CLIENT_SCRIPTED:
		rc = run_scripted(c, cmd_fd, reply_fd);
		break;
	case PIT_CLIENT_SWEEP:
		rc = run_sweep(c);
		break;
	}
	pit_eng_close(&c->eng);
	fm_agent_delete(&c->a);
	close(c->log_fd);
	return rc;
}
