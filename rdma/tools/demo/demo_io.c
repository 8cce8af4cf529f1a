/* demo_io.c -- flashmeta-demo: phase 2 of a client thread, random I/O on
 * both volumes through the engine (the whole run: demo.h).
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
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "demo_client.h"
#include "flashmeta/error.h"

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
		uint64_t j = demo_rnd(&th->rng) % th->seen_samples;

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
	if (demo_rnd(&th->rng) & 1)
		return (uint64_t)DEMO_IO_MIN << (demo_rnd(&th->rng) % 7);
	return DEMO_ALIGN * (1 + demo_rnd(&th->rng) % (DEMO_IO_MAX / DEMO_ALIGN));
}

/* one random I/O: a quarter each of source reads and writes, target
 * reads, and target writes (in this thread's stripes; reads when it has
 * none).  Offsets 4 KiB aligned, anywhere: partial grains, grain
 * boundaries crossed. */
static void gen_io(struct dthread *th, struct dio *io)
{
	const struct demo_cfg *cfg = th->cl->cfg;
	uint64_t r = demo_rnd(&th->rng) % 4;

	io->op = r == 0 ? FM_IO_READ_SOURCE : r == 1 ? FM_IO_WRITE_SOURCE :
		 r == 2 ? FM_IO_READ_TARGET : FM_IO_WRITE_TARGET;
	if (io->op == FM_IO_WRITE_TARGET && !th->nown)
		io->op = FM_IO_READ_TARGET;
	io->len = gen_len(th);
	if (io->op == FM_IO_WRITE_TARGET) {
		uint64_t s0 = th->own[demo_rnd(&th->rng) % th->nown] * DEMO_STRIPE;
		uint64_t s1 = s0 + DEMO_STRIPE < cfg->size ? s0 + DEMO_STRIPE : cfg->size;

		if (io->len > s1 - s0)
			io->len = s1 - s0;
		io->off = s0 + DEMO_ALIGN * (demo_rnd(&th->rng) % ((s1 - s0 - io->len) / DEMO_ALIGN + 1));
		io->seed = demo_seed_write(th->cl->c, th->t, th->seq++);
	} else {
		if (io->len > cfg->size)
			io->len = cfg->size;
		io->off = DEMO_ALIGN * (demo_rnd(&th->rng) % ((cfg->size - io->len) / DEMO_ALIGN + 1));
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
		demo_th_error(th, "client %u thread %u: %s %" PRIu64 " bytes at %" PRIu64 ": %s (%s)",
			 th->cl->id, th->t, fm_io_op_name(io->op), io->len, io->off,
			 strerror(-rc), fm_errormsg());
		return;
	}
	th->ios[io->op]++;
	th->bytes[io->op] += io->len;
	if (push_sample(th, DEMO_SAMPLE(io->op, path_of(st), st->ns)))
		demo_th_error(th, "out of memory for latency samples");
	if (io->op == FM_IO_READ_TARGET) {
		check_read(th, io, buf);
	} else if (io->op == FM_IO_WRITE_TARGET) {
		memcpy(th->cl->model + io->off, buf, io->len);
		if (push_log(th, io))
			demo_th_error(th, "out of memory for the target-write log");
	}
}

static void *sync_thread(void *arg)
{
	struct dthread *th = arg;
	struct dclient *cl = th->cl;
	uint8_t *buf = aligned_alloc(DEMO_ALIGN, DEMO_IO_MAX);

	if (!buf) {
		demo_th_error(th, "out of memory");
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
	(void)fm_engine_thread_exit(cl->e);
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
			demo_th_error(th, "out of memory");
	if (!slots)
		demo_th_error(th, "out of memory");
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
				demo_th_error(th, "client %u thread %u: fm_engine_submit: %s (%s)", cl->id,
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
	(void)fm_engine_thread_exit(cl->e);
	return NULL;
}

void *demo_phase2_thread(void *arg)
{
	struct dthread *th = arg;

	return th->polled ? polled_thread(th) : sync_thread(th);
}
