/* engine.c -- fm_engine on the run's volumes, its trace turned into the
 * checker's hooks (engine.h).
 *
 * One engine per client process, shared by its worker threads.  The trace
 * and the movers run on the thread that drives the I/O (engine.h: the
 * submitting thread's submit and poll), and each worker thread has one
 * I/O in flight at a time: so the I/O a trace event or a mover request
 * belongs to is the calling thread's, kept in `cur` (thread-local).
 *
 * Trace -> hooks:
 *   ATTEMPT            begin(map)
 *   LOCKED, unsplit    step LOCKED at the I/O's first such lock
 *   MOVER              COPY_READ / COPY_WRITE (COPY too) / TGT_WRITE /
 *                      SYNC (the flush) / SRC_WRITE (the write as asked,
 *                      of the source; TGT_WRITE of the target) / REDIRECT
 *   COMMIT, COMMITTED  step COMMIT / COMMITTED of the run
 *   UNLOCKED           step UNLOCKED when the I/O holds no lock any more
 *   ATTEMPT_END        end(rc)
 *
 * Background copy pieces (pit_eng_copy_start) run on the engine's copier
 * thread, which has no `cur`: their ATTEMPT, COMMIT, COMMITTED and
 * ATTEMPT_END go to the hooks given there for their mapping, so their
 * commits are logged.  The copier runs a piece of each mapping at once
 * on that one thread, at most one per mapping: the hooks' state is per
 * mapping.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "flashmeta/engine.h"
#include "flashmeta/error.h"
#include "flashmeta/fence_table.h"
#include "flashmeta/refvol.h"
#include "engine.h"

struct pvol {
	struct fm_refvol *rv;
	struct fm_volume *v;
	int raw;                 /* the file, for the source-first mutant */
};

struct pit_eng {
	struct fm_engine *e;
	struct fm_fence_table *fence;
	struct pvol vols[2 * PIT_MAX_MAPS];
	unsigned nvols;
	uint64_t map_ids[PIT_MAX_MAPS];
	const struct pit_eng_hooks *bg; /* background copy pieces', per mapping
					 * index (copier thread) */
};

/* the calling thread's I/O */
struct cur {
	const struct pit_eng_hooks *h;
	struct pvol *src;
	enum fm_io_op op;
	uint64_t off, len;
	const uint8_t *buf;
	unsigned held;           /* locks the attempt holds */
	bool cow;                /* ... one of an unsplit grain (step LOCKED told) */
	const struct fm_mover_req *skip; /* a mutant: complete this one unmoved */
};
static __thread struct cur cur;

enum pit_mutation pit_eng_mutation;

static const char *const mutation_names[PIT_MUT_COUNT] = {
	[PIT_MUT_NONE] = "none", [PIT_MUT_SKIP_COPY] = "skip-copy",
	[PIT_MUT_SOURCE_FIRST] = "source-first", [PIT_MUT_NO_RECHECK] = "no-recheck",
};

static const char *const step_names[PIT_STEP_COUNT] = {
	[PIT_STEP_LOCKED] = "locked",       [PIT_STEP_COPY_READ] = "copy-read",
	[PIT_STEP_COPY_WRITE] = "copy-write", [PIT_STEP_TGT_WRITE] = "target-write",
	[PIT_STEP_SYNC] = "sync",           [PIT_STEP_COMMIT] = "commit",
	[PIT_STEP_COMMITTED] = "committed", [PIT_STEP_UNLOCKED] = "unlocked",
	[PIT_STEP_SRC_WRITE] = "source-write", [PIT_STEP_REDIRECT] = "redirect",
};

const char *pit_mutation_name(enum pit_mutation m)
{
	return (unsigned)m < PIT_MUT_COUNT ? mutation_names[m] : "?";
}

const char *pit_step_name(enum pit_step s)
{
	return (unsigned)s < PIT_STEP_COUNT ? step_names[s] : "?";
}

static void step(enum pit_step s, uint64_t first, uint64_t last, int rc)
{
	if (cur.h->step)
		cur.h->step(cur.h->ctx, s, first, last, rc);
}

/* the source-first mutant: the I/O's bytes of grain g on the source, now */
static void source_first(uint64_t g)
{
	uint64_t s0 = g * PIT_GRAIN, s1 = s0 + PIT_GRAIN, end = cur.off + cur.len;
	uint64_t a0 = s0 > cur.off ? s0 : cur.off, a1 = s1 < end ? s1 : end;

	if (a1 > a0 && pwrite(cur.src->raw, cur.buf + (a0 - cur.off), a1 - a0, (off_t)a0) < 0)
		fprintf(stderr, "fm-pit: source-first mutant: pwrite: %s\n", strerror(errno));
}

static void on_mover(const struct fm_engine_event *ev)
{
	switch (ev->step) {
	case FM_ENGINE_STEP_COPY_READ:
		step(PIT_STEP_COPY_READ, 0, 0, 0);
		break;
	case FM_ENGINE_STEP_COPY_WRITE:
	case FM_ENGINE_STEP_COPY:
		step(PIT_STEP_COPY_WRITE, 0, 0, 0);
		if (pit_eng_mutation == PIT_MUT_SKIP_COPY)
			cur.skip = ev->req;
		break;
	case FM_ENGINE_STEP_TARGET_WRITE:
		step(PIT_STEP_TGT_WRITE, 0, 0, 0);
		break;
	case FM_ENGINE_STEP_FLUSH:
		step(PIT_STEP_SYNC, 0, 0, 0);
		break;
	case FM_ENGINE_STEP_WRITE:
		step(cur.op == FM_IO_WRITE_SOURCE ? PIT_STEP_SRC_WRITE : PIT_STEP_TGT_WRITE, 0, 0, 0);
		break;
	case FM_ENGINE_STEP_REDIRECT:
		step(PIT_STEP_REDIRECT, 0, 0, 0);
		break;
	case FM_ENGINE_STEP_RETARGET:
		if (pit_eng_mutation == PIT_MUT_NO_RECHECK)
			cur.skip = ev->req;
		break;
	default:
		break;
	}
}

/* a background copy piece's event, on the copier thread */
static void on_bg_event(const struct pit_eng_hooks *h, const struct fm_engine_event *ev)
{
	switch (ev->kind) {
	case FM_ENGINE_EV_ATTEMPT:
		if (h->begin)
			h->begin(h->ctx, ev->map);
		break;
	case FM_ENGINE_EV_COMMIT:
		if (h->step)
			h->step(h->ctx, PIT_STEP_COMMIT, ev->first, ev->last, 0);
		break;
	case FM_ENGINE_EV_COMMITTED:
		if (h->step)
			h->step(h->ctx, PIT_STEP_COMMITTED, ev->first, ev->last, ev->rc);
		break;
	case FM_ENGINE_EV_ATTEMPT_END:
		if (h->end)
			h->end(h->ctx, ev->rc);
		break;
	default:
		break;
	}
}

static void on_event(void *ctx, struct fm_engine_io *io, const struct fm_engine_event *ev)
{
	struct pit_eng *pe = ctx;

	if (io->background) {
		for (unsigned i = 0; pe->bg && i < PIT_MAX_MAPS; i++)
			if (pe->map_ids[i] == io->map_id) {
				on_bg_event(&pe->bg[i], ev);
				break;
			}
		return;
	}
	if (!cur.h)
		return;
	switch (ev->kind) {
	case FM_ENGINE_EV_ATTEMPT:
		cur.held = 0;
		cur.cow = false;
		cur.skip = NULL;
		if (cur.h->begin)
			cur.h->begin(cur.h->ctx, ev->map);
		break;
	case FM_ENGINE_EV_LOCKED:
		cur.held++;
		if (ev->split)
			break;
		if (!cur.cow) {
			cur.cow = true;
			step(PIT_STEP_LOCKED, ev->first, ev->last, 0);
		}
		if (pit_eng_mutation == PIT_MUT_SOURCE_FIRST && cur.op == FM_IO_WRITE_SOURCE)
			source_first(ev->first);
		break;
	case FM_ENGINE_EV_MOVER:
		on_mover(ev);
		break;
	case FM_ENGINE_EV_COMMIT:
		step(PIT_STEP_COMMIT, ev->first, ev->last, 0);
		break;
	case FM_ENGINE_EV_COMMITTED:
		step(PIT_STEP_COMMITTED, ev->first, ev->last, ev->rc);
		break;
	case FM_ENGINE_EV_UNLOCKED:
		if (cur.held && --cur.held == 0 && cur.cow) {
			cur.cow = false;
			step(PIT_STEP_UNLOCKED, ev->first, ev->last, ev->rc);
		}
		break;
	case FM_ENGINE_EV_ATTEMPT_END:
		if (cur.h->end)
			cur.h->end(cur.h->ctx, ev->rc);
		break;
	}
}

/* the movers: the reference volume's, unless a mutant drops the request */
static int pv_submit(void *ctx, struct fm_mover_req *r)
{
	struct pvol *v = ctx;

	if (cur.skip == r) {
		cur.skip = NULL;
		fm_mover_done(r, 0);
		return 0;
	}
	fm_mover_done(r, fm_refvol_do(v->rv, r));
	return 0;
}

static const struct fm_mover_ops PV_OPS = { .submit = pv_submit };

static int vol_open(struct pit_eng *pe, const struct pit_env *e, uint32_t vol, uint64_t size,
		    uint32_t client_id, struct pvol **out)
{
	struct pvol *v = &pe->vols[pe->nvols];
	struct fm_refvol_cfg vc = { .size = size, .fence = pe->fence, .client_id = client_id };
	char path[400];
	int rc;

	pit_vol_path(e, vol, path, sizeof(path));
	vc.path = path;
	v->raw = -1;
	rc = fm_refvol_open(&vc, &v->rv);
	if (rc)
		return rc;
	pe->nvols++;
	v->raw = open(path, O_RDWR | O_CLOEXEC);
	if (v->raw < 0)
		return fm_err(-errno, "open %s: %s", path, strerror(errno));
	rc = fm_engine_volume_add(pe->e, &PV_OPS, v, size, &v->v);
	*out = v;
	return rc;
}

int pit_eng_open(const struct pit_env *e, struct fm_agent *a, uint32_t client_id,
		 uint32_t retry_ms, struct pit_eng **out)
{
	struct fm_engine_cfg ec = { .agent = a, .retry_ms = retry_ms, .trace = on_event };
	struct pit_eng *pe = calloc(1, sizeof(*pe));
	char path[400];
	int rc;

	*out = NULL;
	if (!pe)
		return fm_err(-ENOMEM, "pit engine");
	ec.trace_ctx = pe;
	snprintf(path, sizeof(path), "%s/fence", e->dir);
	rc = fm_fence_table_open(path, 0, &pe->fence);
	if (!rc)
		rc = fm_engine_new(&ec, &pe->e);
	for (unsigned i = 0; !rc && i < e->nmaps; i++) {
		uint64_t size = pit_map_blocks(&e->maps[i]) * PIT_BLOCK;
		struct pvol *s, *t;

		pe->map_ids[i] = e->maps[i].id;
		rc = vol_open(pe, e, e->maps[i].src_vol, size, client_id, &s);
		if (!rc)
			rc = vol_open(pe, e, e->maps[i].tgt_vol, size, client_id, &t);
		if (!rc)
			rc = fm_engine_attach(pe->e, e->maps[i].id, s->v, t->v);
	}
	if (rc) {
		pit_eng_close(&pe);
		return rc;
	}
	*out = pe;
	return 0;
}

int pit_eng_copy_start(struct pit_eng *pe, const struct pit_eng_hooks *bg)
{
	struct fm_engine_copy_cfg cc = { .batch_grains = 64, .piece_grains = 4 };

	pe->bg = bg; /* before the thread that calls them starts */
	return fm_engine_copy_start(pe->e, &cc);
}

void pit_eng_close(struct pit_eng **pp)
{
	struct pit_eng *pe = *pp;

	if (!pe)
		return;
	fm_engine_delete(&pe->e);
	for (unsigned i = 0; i < pe->nvols; i++) {
		fm_refvol_close(&pe->vols[i].rv);
		if (pe->vols[i].raw >= 0)
			close(pe->vols[i].raw);
	}
	fm_fence_table_close(&pe->fence);
	free(pe);
	*pp = NULL;
}

static void polled_done(struct fm_engine_io *io, int status)
{
	int *calls = io->ctx;

	(void)status;
	(*calls)++;
}

/* the polled form: submit, then poll this thread until the callback ran */
static int io_polled(struct pit_eng *pe, struct fm_engine_io *io)
{
	int calls = 0, rc;

	io->done = polled_done;
	io->ctx = &calls;
	rc = fm_engine_submit(pe->e, io);
	if (rc)
		return rc;
	while (!calls) {
		int to, fd;

		if (fm_engine_poll(pe->e) || calls)
			continue;
		fd = fm_engine_fd(pe->e, &to);
		if (fd >= 0 && to != 0) {
			struct pollfd p = { .fd = fd, .events = POLLIN };

			(void)poll(&p, 1, to < 0 || to > 50 ? 50 : to);
		}
	}
	/* exactly once: a second callback would come from a later poll */
	for (int i = 0; i < 4; i++)
		(void)fm_engine_poll(pe->e);
	if (calls != 1) {
		fprintf(stderr, "fm-pit: an I/O's callback ran %d times\n", calls);
		_exit(3); /* the parent counts an unexpected exit */
	}
	return io->status;
}

int pit_eng_io(struct pit_eng *pe, unsigned map, enum fm_io_op op, uint64_t off, uint64_t len,
	       void *buf, const struct pit_eng_hooks *h, bool polled, unsigned *attempts)
{
	struct fm_engine_io io = { .map_id = pe->map_ids[map], .op = op, .offset = off,
				   .length = len, .buf = buf };
	struct fm_engine_io_stats st = { 0 };
	int rc;

	cur = (struct cur){ .h = h, .src = &pe->vols[2 * map], .op = op, .off = off, .len = len,
			    .buf = buf };
	if (polled) {
		rc = io_polled(pe, &io);
		st = io.st;
	} else {
		rc = fm_engine_rw(pe->e, io.map_id, op, off, len, buf, &st);
	}
	cur.h = NULL;
	if (attempts)
		*attempts = st.attempts;
	return rc;
}
