/* demo_client.c -- flashmeta-demo: one client process (and the verifier).
 *
 * A client is what a storage node runs: an agent (its session with the
 * owner), an engine over two file volumes (refvol.h, writes admitted by the
 * fence table) and T engine threads doing host I/O.  Phase 1 writes its
 * share of the source (the mapping is idle: DIRECT); phase 2, after the
 * trigger, runs random reads and writes of both volumes for --seconds.
 *
 * Each thread checks, in line, every target read against its MODEL: a
 * private copy-on-write mapping of golden.img (the source at the trigger)
 * into which it applies its own target writes.  Only bytes in its own
 * stripes (nobody else writes them) and in nobody's stripes (nobody writes
 * them: they must read as the trigger image) are checked -- other threads'
 * stripes change under the read.  Threads write disjoint stripes of the one
 * model mapping, so it needs no lock.
 *
 * The polled thread (the last one when T > 1 and --depth > 0) keeps up to
 * `depth` I/Os in flight with fm_engine_submit/fm_engine_poll; so that its
 * model stays exact it never has a target write in flight together with
 * another target I/O it overlaps.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <stdarg.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "demo.h"
#include "flashmeta/error.h"
#include "flashmeta/fence_table.h"

struct dclient {
	const struct demo_cfg *cfg;
	unsigned c;                  /* index; client id c + 1 */
	uint32_t id;
	struct fm_agent *a;
	struct fm_engine *e;
	struct fm_fence_table *fence;
	struct fm_refvol *vsrc, *vtgt;
	struct fm_volume *src, *tgt;
	uint8_t *model;              /* golden + this process's target writes */
	uint64_t deadline_ns;
	atomic_bool stop;            /* an I/O failed: every thread stops */
};

/* one I/O of phase 2 */
struct dio {
	enum fm_io_op op;
	uint64_t off, len, seed;
};

struct dthread {
	struct dclient *cl;
	unsigned t, slot;
	bool polled;
	pthread_t tid;
	uint64_t rng;
	uint64_t *own;               /* stripes this thread writes */
	uint64_t nown, seq;
	/* results, read by the main thread after join */
	uint64_t ios[FM_IO_OP_COUNT], bytes[FM_IO_OP_COUNT];
	uint64_t errors, violations, checked, polled_ios;
	uint64_t *samples;
	uint64_t nsamples, cap_samples, seen_samples;
	struct demo_twrite *log;
	uint64_t nlog, cap_log;
	double phase1_s;
	char first_error[DEMO_MSG_MAX];
	char first_violation[DEMO_MSG_MAX];
};

static uint64_t rnd(uint64_t *x)
{
	*x ^= *x << 13;
	*x ^= *x >> 7;
	*x ^= *x << 17;
	return *x;
}

static void th_error(struct dthread *th, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void th_error(struct dthread *th, const char *fmt, ...)
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

static void client_close(struct dclient *cl)
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

/* agent, joined; fence table; both volumes; engine with the mapping
 * attached.  0 or a negative errno, *what says which step failed. */
static int client_open(struct dclient *cl, const struct demo_cfg *cfg, uint32_t id,
		       const char **what)
{
	uint8_t key[FM_KEY_MAX];
	struct fm_agent_cfg acfg = {
		.provider = "shm", .addr = cfg->addr, .client_id = id, .key = key,
		.wait_ms = 10000, .retry_min_ms = 20, .retry_max_ms = 200,
		.max_threads = cfg->threads + 1,
	};
	struct fm_refvol_cfg vcfg = { .size = cfg->size, .create = false, .client_id = id };
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
		th_error(th, "phase 1: out of memory");
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
			th_error(th, "phase 1: write_source %" PRIu64 " bytes at %" PRIu64 ": %s (%s)",
				 len, off, strerror(-rc), fm_errormsg());
			break;
		}
	}
	free(buf);
	th->phase1_s = (double)(demo_now_ns() - t0) / 1e9;
	fm_agent_thread_exit(cl->a);
	return NULL;
}

/* ------------------------------------------------------------ phase 2 */

/* Every I/O's latency is kept up to the thread's share of DEMO_SAMPLES;
 * beyond, a uniform sample of them (reservoir, algorithm R) */
static int push_sample(struct dthread *th, uint64_t s)
{
	const struct demo_cfg *cfg = th->cl->cfg;
	uint64_t max = DEMO_SAMPLES / (cfg->clients * cfg->threads);

	if (max < DEMO_SAMPLES_MIN)
		max = DEMO_SAMPLES_MIN;
	th->seen_samples++;
	if (th->nsamples == max) {
		uint64_t j = rnd(&th->rng) % th->seen_samples;

		if (j < max)
			th->samples[j] = s;
		return 0;
	}
	if (th->nsamples == th->cap_samples) {
		uint64_t n = th->cap_samples ? 2 * th->cap_samples : 4096;
		uint64_t *p;

		if (n > max)
			n = max;
		p = realloc(th->samples, n * sizeof(*p));
		if (!p)
			return -ENOMEM;
		th->samples = p;
		th->cap_samples = n;
	}
	th->samples[th->nsamples++] = s;
	return 0;
}

static int push_log(struct dthread *th, const struct dio *io)
{
	if (th->nlog == th->cap_log) {
		uint64_t n = th->cap_log ? 2 * th->cap_log : 1024;
		struct demo_twrite *p = realloc(th->log, n * sizeof(*p));

		if (!p)
			return -ENOMEM;
		th->log = p;
		th->cap_log = n;
	}
	th->log[th->nlog++] = (struct demo_twrite){ io->off, io->len, io->seed };
	return 0;
}

/* 4 KiB..256 KiB in 4 KiB steps: half of them powers of two, half any */
static uint64_t gen_len(struct dthread *th)
{
	if (rnd(&th->rng) & 1)
		return (uint64_t)DEMO_IO_MIN << (rnd(&th->rng) % 7);
	return DEMO_ALIGN * (1 + rnd(&th->rng) % (DEMO_IO_MAX / DEMO_ALIGN));
}

/* one random I/O: a quarter each of source reads and writes, target
 * reads, and target writes (in this thread's stripes; reads when it has
 * none).  Offsets 4 KiB aligned, anywhere: partial grains, grain
 * boundaries crossed. */
static void gen_io(struct dthread *th, struct dio *io)
{
	const struct demo_cfg *cfg = th->cl->cfg;
	uint64_t r = rnd(&th->rng) % 4;

	io->op = r == 0 ? FM_IO_READ_SOURCE : r == 1 ? FM_IO_WRITE_SOURCE :
		 r == 2 ? FM_IO_READ_TARGET : FM_IO_WRITE_TARGET;
	if (io->op == FM_IO_WRITE_TARGET && !th->nown)
		io->op = FM_IO_READ_TARGET;
	io->len = gen_len(th);
	if (io->op == FM_IO_WRITE_TARGET) {
		uint64_t s0 = th->own[rnd(&th->rng) % th->nown] * DEMO_STRIPE;
		uint64_t s1 = s0 + DEMO_STRIPE < cfg->size ? s0 + DEMO_STRIPE : cfg->size;

		if (io->len > s1 - s0)
			io->len = s1 - s0;
		io->off = s0 + DEMO_ALIGN * (rnd(&th->rng) % ((s1 - s0 - io->len) / DEMO_ALIGN + 1));
		io->seed = demo_seed_write(th->cl->c, th->t, th->seq++);
	} else {
		if (io->len > cfg->size)
			io->len = cfg->size;
		io->off = DEMO_ALIGN * (rnd(&th->rng) % ((cfg->size - io->len) / DEMO_ALIGN + 1));
		io->seed = UINT64_C(1) << 63 | demo_seed_write(th->cl->c, th->t, th->seq++);
	}
}

/* A target read, in line: the bytes of own and nobody's stripes against
 * the model */
static void check_read(struct dthread *th, const struct dio *io, const uint8_t *buf)
{
	const struct demo_cfg *cfg = th->cl->cfg;
	unsigned nobody = demo_slots(cfg);
	uint64_t a = io->off, end = io->off + io->len;

	while (a < end) {
		uint64_t b = (a / DEMO_STRIPE + 1) * DEMO_STRIPE;
		unsigned slot = demo_slot_of(cfg, a);
		const uint8_t *got = buf + (a - io->off), *want = th->cl->model + a;

		if (b > end)
			b = end;
		if (slot == th->slot || slot == nobody) {
			th->checked += b - a;
			if (memcmp(got, want, b - a)) {
				uint64_t i = 0, n = 0;

				while (got[i] == want[i])
					i++;
				for (uint64_t k = i; k < b - a; k++)
					n += got[k] != want[k];
				th->violations++;
				if (!th->first_violation[0])
					snprintf(th->first_violation, sizeof(th->first_violation),
						 "client %u thread %u: read_target [%" PRIu64 ", +%" PRIu64
						 ") byte %" PRIu64 " (%s stripe %" PRIu64 ", grain %"
						 PRIu64 ") is 0x%02x, expected 0x%02x; %" PRIu64
						 " bytes differ in the stripe's part", th->cl->id, th->t,
						 io->off, io->len, a + i,
						 slot == nobody ? "nobody's" : "its own",
						 a / DEMO_STRIPE, (a + i) / cfg->grain, got[i], want[i], n);
			}
		}
		a = b;
	}
}

static enum demo_path path_of(const struct fm_engine_io_stats *st)
{
	if (st->copies)
		return DEMO_PATH_COW;
	if (st->locks)
		return DEMO_PATH_LOCK;
	if (st->misses)
		return DEMO_PATH_MISS;
	return DEMO_PATH_HIT;
}

/* an I/O completed with status rc: count, sample, check, log */
static void io_done(struct dthread *th, const struct dio *io, const uint8_t *buf, int rc,
		    const struct fm_engine_io_stats *st)
{
	if (rc) {
		th_error(th, "client %u thread %u: %s %" PRIu64 " bytes at %" PRIu64 ": %s (%s)",
			 th->cl->id, th->t, fm_io_op_name(io->op), io->len, io->off,
			 strerror(-rc), fm_errormsg());
		return;
	}
	th->ios[io->op]++;
	th->bytes[io->op] += io->len;
	if (push_sample(th, DEMO_SAMPLE(io->op, path_of(st), st->ns)))
		th_error(th, "out of memory for latency samples");
	if (io->op == FM_IO_READ_TARGET) {
		check_read(th, io, buf);
	} else if (io->op == FM_IO_WRITE_TARGET) {
		memcpy(th->cl->model + io->off, buf, io->len);
		if (push_log(th, io))
			th_error(th, "out of memory for the target-write log");
	}
}

static void *sync_thread(void *arg)
{
	struct dthread *th = arg;
	struct dclient *cl = th->cl;
	uint8_t *buf = aligned_alloc(DEMO_ALIGN, DEMO_IO_MAX);

	if (!buf) {
		th_error(th, "out of memory");
		return NULL;
	}
	while (!atomic_load_explicit(&cl->stop, memory_order_relaxed) &&
	       demo_now_ns() < cl->deadline_ns) {
		struct fm_engine_io_stats st;
		struct dio io;
		int rc;

		gen_io(th, &io);
		if (io.op == FM_IO_WRITE_SOURCE || io.op == FM_IO_WRITE_TARGET)
			demo_fill(buf, io.off, io.len, io.seed);
		rc = fm_engine_rw(cl->e, DEMO_MAP_ID, io.op, io.off, io.len, buf, &st);
		io_done(th, &io, buf, rc, &st);
	}
	free(buf);
	fm_agent_thread_exit(cl->a);
	return NULL;
}

struct pslot {
	struct fm_engine_io io;
	struct dio d;
	uint8_t *buf;
	int status;                  /* from the callback */
	bool busy, done;
};

static void pslot_done(struct fm_engine_io *io, int status)
{
	struct pslot *s = io->ctx;

	s->status = status;
	s->done = true;
}

static bool is_target(enum fm_io_op op)
{
	return op == FM_IO_READ_TARGET || op == FM_IO_WRITE_TARGET;
}

/* would d, in flight beside the busy slots, make the model inexact? */
static bool conflicts(const struct pslot *slots, unsigned n, const struct dio *d)
{
	if (!is_target(d->op))
		return false;
	for (unsigned i = 0; i < n; i++) {
		const struct dio *o = &slots[i].d;

		if (slots[i].busy && is_target(o->op) &&
		    (d->op == FM_IO_WRITE_TARGET || o->op == FM_IO_WRITE_TARGET) &&
		    d->off < o->off + o->len && o->off < d->off + d->len)
			return true;
	}
	return false;
}

static void *polled_thread(void *arg)
{
	struct dthread *th = arg;
	struct dclient *cl = th->cl;
	unsigned depth = cl->cfg->depth, busy = 0;
	struct pslot *slots = calloc(depth, sizeof(*slots));

	for (unsigned i = 0; slots && i < depth; i++)
		if (!(slots[i].buf = aligned_alloc(DEMO_ALIGN, DEMO_IO_MAX)))
			th_error(th, "out of memory");
	if (!slots)
		th_error(th, "out of memory");
	while (slots) {
		bool open = !atomic_load_explicit(&cl->stop, memory_order_relaxed) &&
			    demo_now_ns() < cl->deadline_ns;

		for (unsigned i = 0; open && i < depth; i++) {
			struct pslot *s = &slots[i];
			struct dio d;
			int tries = 0, rc;

			if (s->busy)
				continue;
			do
				gen_io(th, &d);
			while (conflicts(slots, depth, &d) && ++tries < 8);
			if (tries == 8)
				break;
			if (d.op == FM_IO_WRITE_SOURCE || d.op == FM_IO_WRITE_TARGET)
				demo_fill(s->buf, d.off, d.len, d.seed);
			s->d = d;
			s->io = (struct fm_engine_io){
				.map_id = DEMO_MAP_ID, .op = d.op, .offset = d.off, .length = d.len,
				.buf = s->buf, .done = pslot_done, .ctx = s,
			};
			s->done = false;
			rc = fm_engine_submit(cl->e, &s->io);
			if (rc) {
				th_error(th, "client %u thread %u: fm_engine_submit: %s (%s)", cl->id,
					 th->t, strerror(-rc), fm_errormsg());
				break;
			}
			s->busy = true;
			busy++;
		}
		if (!busy)
			break;
		if (fm_engine_poll(cl->e) == 0) {
			int to = -1, fd = fm_engine_fd(cl->e, &to);

			if (fd >= 0) {
				struct pollfd pf = { .fd = fd, .events = POLLIN };

				(void)poll(&pf, 1, to < 0 || to > 10 ? 10 : to);
			}
		}
		for (unsigned i = 0; i < depth; i++) {
			struct pslot *s = &slots[i];

			if (!s->busy || !s->done)
				continue;
			io_done(th, &s->d, s->buf, s->status, &s->io.st);
			th->polled_ios += s->status == 0;
			s->busy = false;
			busy--;
		}
	}
	for (unsigned i = 0; slots && i < depth; i++)
		free(slots[i].buf);
	free(slots);
	fm_agent_thread_exit(cl->a);
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

static void *phase2_thread(void *arg)
{
	struct dthread *th = arg;

	return th->polled ? polled_thread(th) : sync_thread(th);
}

/* after CMD_GO: the model, the trigger seen, --seconds of I/O */
static int phase2(struct dclient *cl, struct dthread *th, struct demo_result *res, int out)
{
	const struct demo_cfg *cfg = cl->cfg;
	struct fm_agent_map am = { 0 };
	uint64_t t0 = demo_now_ns(), end = t0 + UINT64_C(15000000000);
	int fd, rc;

	fd = open(cfg->golden, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return demo_send_error(out, "client %u: %s: %s", cl->id, cfg->golden,
				       strerror(errno)), -errno;
	cl->model = mmap(NULL, cfg->size, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
	close(fd);
	if (cl->model == MAP_FAILED) {
		cl->model = NULL;
		return demo_send_error(out, "client %u: mmap %s: %s", cl->id, cfg->golden,
				       strerror(errno)), -ENOMEM;
	}
	while (demo_now_ns() < end) {
		if (!fm_agent_map_get(cl->a, DEMO_MAP_ID, &am) && am.granted &&
		    am.state == FM_MAP_COPYING)
			break;
		usleep(2000);
	}
	if (!am.granted || am.state != FM_MAP_COPYING)
		return demo_send_error(out, "client %u: the mapping was not granted in state "
				       "copying within 15 s of the trigger (state %s, %s)",
				       cl->id, fm_map_state_name(am.state),
				       am.granted ? "granted" : "not granted"), -ETIMEDOUT;
	res->wait_copying_ms = (double)(demo_now_ns() - t0) / 1e6;
	t0 = demo_now_ns();
	cl->deadline_ns = t0 + (uint64_t)cfg->seconds * UINT64_C(1000000000);
	rc = run_threads(th, cfg->threads, phase2_thread);
	res->phase2_s = (double)(demo_now_ns() - t0) / 1e9;
	if (rc)
		return demo_send_error(out, "client %u: pthread_create: %s", cl->id,
				       strerror(-rc)), rc;
	return 0;
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
	rc = client_open(&cl, cfg, c + 1, &what);
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
	client_close(&cl);
	for (unsigned t = 0; t < cfg->threads; t++) {
		free(th[t].own);
		free(th[t].samples);
		free(th[t].log);
	}
	free(th);
	free(res);
	return status;
}

/* ------------------------------------------------------------ verifier */

int demo_verifier_main(const struct demo_cfg *cfg, int out)
{
	struct demo_verify v = { .client_id = cfg->clients + 1 };
	uint8_t *buf = aligned_alloc(DEMO_ALIGN, DEMO_CHUNK), *want = MAP_FAILED,
		*golden = MAP_FAILED;
	uint64_t t0 = demo_now_ns(), end = t0 + UINT64_C(15000000000);
	struct fm_agent_map am = { 0 };
	struct dclient cl;
	const char *what;
	int fd, rc, status = 1;

	rc = client_open(&cl, cfg, v.client_id, &what);
	if (rc) {
		demo_send_error(out, "verifier (client %u): %s: %s (%s)", v.client_id, what,
				strerror(-rc), fm_errormsg());
		goto out;
	}
	if ((fd = open(cfg->expected, O_RDONLY | O_CLOEXEC)) >= 0) {
		want = mmap(NULL, cfg->size, PROT_READ, MAP_SHARED, fd, 0);
		close(fd);
	}
	if ((fd = open(cfg->golden, O_RDONLY | O_CLOEXEC)) >= 0) {
		golden = mmap(NULL, cfg->size, PROT_READ, MAP_SHARED, fd, 0);
		close(fd);
	}
	if (!buf || want == MAP_FAILED || golden == MAP_FAILED) {
		demo_send_error(out, "verifier: expected.img/golden.img: %s", strerror(errno));
		goto out;
	}
	while (demo_now_ns() < end &&
	       (fm_agent_map_get(cl.a, DEMO_MAP_ID, &am) || !am.granted))
		usleep(2000);
	for (uint64_t off = 0; off < cfg->size; off += DEMO_CHUNK) {
		uint64_t len = cfg->size - off < DEMO_CHUNK ? cfg->size - off : DEMO_CHUNK;

		rc = fm_engine_rw(cl.e, DEMO_MAP_ID, FM_IO_READ_TARGET, off, len, buf, NULL);
		if (rc) {
			v.status = rc;
			snprintf(v.what, sizeof(v.what), "read_target %" PRIu64 " bytes at %" PRIu64
				 ": %s (%s)", len, off, strerror(-rc), fm_errormsg());
			break;
		}
		v.bytes += len;
		if (!memcmp(buf, want + off, len))
			continue;
		for (uint64_t i = 0; i < len; i++) {
			uint64_t b = off + i;
			unsigned slot;

			if (buf[i] == want[b])
				continue;
			if (!v.mismatched_bytes++) {
				char whose[48];

				slot = demo_slot_of(cfg, b);
				if (slot == demo_slots(cfg))
					snprintf(whose, sizeof(whose), "nobody's");
				else
					snprintf(whose, sizeof(whose), "client %u thread %u's",
						 slot / cfg->threads + 1, slot % cfg->threads);
				v.first_bad = b;
				snprintf(v.what, sizeof(v.what), "target byte %" PRIu64 " (grain %"
					 PRIu64 ", %s stripe %" PRIu64 ") reads 0x%02x, expected "
					 "0x%02x (the trigger image has 0x%02x there)", b,
					 b / cfg->grain, whose, b / DEMO_STRIPE, buf[i], want[b],
					 golden[b]);
			}
		}
	}
	v.seconds = (double)(demo_now_ns() - t0) / 1e9;
	fm_engine_stats(cl.e, &v.eng);
	if (demo_send(out, DEMO_MSG_VERIFY, &v, sizeof(v)) == 0 && !v.status &&
	    !v.mismatched_bytes)
		status = 0;
out:
	if (want != MAP_FAILED)
		munmap(want, cfg->size);
	if (golden != MAP_FAILED)
		munmap(golden, cfg->size);
	free(buf);
	client_close(&cl);
	return status;
}
