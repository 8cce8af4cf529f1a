/* engine.c -- the copy-on-write recipe of agent.h over plain files.
 *
 * One attempt (io_once) is one I/O bracket:
 *
 *   fm_agent_io_begin -> hooks.begin -> fm_agent_plan -> per extent:
 *     DIRECT             the I/O on the volume asked for
 *     REDIRECT_TO_SOURCE read the source, THEN is_split per grain; a grain
 *                        split meanwhile is read from the target instead
 *     COPY_THEN_WRITE /  cow_grain() per grain, in the durability order
 *     WRITE_AND_SPLIT    written down there
 *   -> fm_agent_io_end -> hooks.end
 *
 * and pit_eng_io() starts the I/O again after the errors agent.h names.
 * Nothing here knows about tags, logs or faults: the hooks do.
 *
 * Every destructive data step below -- steps 2-4 of cow_grain (the copy,
 * the target write and their sync, one step), step 6, every DIRECT write
 * -- runs between fm_agent_step_begin and fm_agent_step_end: it starts
 * only while the lease has its margin left (lease.h R2).  The fencing
 * token step_begin hands out is not used: these volumes are plain files
 * that cannot check one.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "flashmeta/error.h"
#include "engine.h"
#include "pit.h"

#define ENG_EXTENTS 64

static const char *const step_names[PIT_STEP_COUNT] = {
	[PIT_STEP_LOCKED] = "locked",       [PIT_STEP_COPY_READ] = "copy-read",
	[PIT_STEP_COPY_WRITE] = "copy-write", [PIT_STEP_TGT_WRITE] = "target-write",
	[PIT_STEP_SYNC] = "sync",           [PIT_STEP_COMMIT] = "commit",
	[PIT_STEP_COMMITTED] = "committed", [PIT_STEP_UNLOCKED] = "unlocked",
	[PIT_STEP_SRC_WRITE] = "source-write", [PIT_STEP_REDIRECT] = "redirect",
};

enum pit_mutation pit_eng_mutation;

static const char *const mutation_names[PIT_MUT_COUNT] = {
	[PIT_MUT_NONE] = "none", [PIT_MUT_SKIP_COPY] = "skip-copy",
	[PIT_MUT_SOURCE_FIRST] = "source-first", [PIT_MUT_NO_RECHECK] = "no-recheck",
};

const char *pit_mutation_name(enum pit_mutation m)
{
	return (unsigned)m < PIT_MUT_COUNT ? mutation_names[m] : "?";
}

const char *pit_step_name(enum pit_step s)
{
	return (unsigned)s < PIT_STEP_COUNT ? step_names[s] : "?";
}

bool pit_eng_transient(int rc)
{
	return rc == -ECONNRESET || rc == -EAGAIN || rc == -ESTALE || rc == -ETIMEDOUT ||
	       rc == -ENOLCK || rc == -ENOTCONN || rc == -EKEYEXPIRED;
}

static void step(const struct pit_eng_hooks *h, enum pit_step s, uint64_t g, int rc)
{
	if (h && h->step)
		h->step(h->ctx, s, g, rc);
}

/* the whole range, or -EIO */
static int vol_io(int fd, bool wr, uint64_t off, uint64_t len, void *buf)
{
	uint8_t *p = buf;

	while (len) {
		ssize_t n = wr ? pwrite(fd, p, len, (off_t)off) : pread(fd, p, len, (off_t)off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return fm_err(-EIO, "%s fd %d at %llu: %s", wr ? "pwrite" : "pread", fd,
				      (unsigned long long)off, n < 0 ? strerror(errno) : "short");
		p += n;
		off += (uint64_t)n;
		len -= (uint64_t)n;
	}
	return 0;
}

/* a write as one data step (lease.h R2) */
static int step_write(struct fm_agent *a, struct fm_agent_io *io, int fd, uint64_t off,
		      uint64_t len, void *buf)
{
	int rc = fm_agent_step_begin(a, io, NULL);

	if (rc)
		return rc;
	rc = vol_io(fd, true, off, len, buf);
	fm_agent_step_end(a, io);
	return rc;
}

/* a data step failed under the lock: give it back, report the failure */
static int cow_abort(struct fm_agent *a, const struct pit_vols *v, uint64_t g,
		     const struct pit_eng_hooks *h, int rc)
{
	(void)fm_agent_unlock(a, v->map, g);
	step(h, PIT_STEP_UNLOCKED, g, rc);
	return rc;
}

/*
 * One grain of a COPY_THEN_WRITE or WRITE_AND_SPLIT extent; [off, off +
 * len) lies inside grain g.  Durability order:
 *   1. lock the grain (the answer says whether it is split already)
 *   2. copy the source grain to the target (COPY_THEN_WRITE)
 *   3. write the target data, if the I/O writes the target
 *   4. fdatasync(target): the copy is durable
 *   5. commit the split; returns after the owner made it durable, and
 *      releases the lock
 *   6. only now write the source, if the I/O writes the source
 */
static int cow_grain(struct fm_agent *a, struct fm_agent_io *io, const struct pit_vols *v,
		     enum fm_io_op op, uint64_t g, uint32_t shift, bool copy, uint64_t off,
		     uint64_t len, uint8_t *buf, const struct pit_eng_hooks *h)
{
	uint64_t gsz = 1ull << shift, goff = g << shift;
	bool tgt = op == FM_IO_WRITE_TARGET;
	int rc = fm_agent_lock(a, v->map, g); /* 1 */

	if (rc < 0)
		return rc;
	if (rc == 1) { /* split since the plan: give the lock back, write in place */
		rc = fm_agent_unlock(a, v->map, g);
		if (rc)
			return rc;
		return step_write(a, io, tgt ? v->tgt : v->src, off, len, buf);
	}
	step(h, PIT_STEP_LOCKED, g, 0);
	if (pit_eng_mutation == PIT_MUT_SOURCE_FIRST && !tgt) { /* mutant: 6 first */
		rc = step_write(a, io, v->src, off, len, buf);
		if (rc)
			return cow_abort(a, v, g, h, rc);
	}
	rc = fm_agent_step_begin(a, io, NULL); /* 2-4: one data step */
	if (rc)
		return cow_abort(a, v, g, h, rc);
	if (copy && pit_eng_mutation != PIT_MUT_SKIP_COPY) { /* 2 */
		uint8_t *tmp = malloc(gsz);

		if (!tmp) {
			fm_agent_step_end(a, io);
			return cow_abort(a, v, g, h, fm_err(-ENOMEM, "copy buffer"));
		}
		step(h, PIT_STEP_COPY_READ, g, 0);
		rc = vol_io(v->src, false, goff, gsz, tmp);
		if (!rc) {
			step(h, PIT_STEP_COPY_WRITE, g, 0);
			rc = vol_io(v->tgt, true, goff, gsz, tmp);
		}
		free(tmp);
	}
	if (!rc && tgt) { /* 3 */
		step(h, PIT_STEP_TGT_WRITE, g, 0);
		rc = vol_io(v->tgt, true, off, len, buf);
	}
	if (!rc) {
		step(h, PIT_STEP_SYNC, g, 0); /* 4 */
		if (fdatasync(v->tgt))
			rc = fm_err(-EIO, "fdatasync: %s", strerror(errno));
	}
	fm_agent_step_end(a, io);
	if (rc)
		return cow_abort(a, v, g, h, rc);
	step(h, PIT_STEP_COMMIT, g, 0); /* 5 */
	rc = fm_agent_commit_split(a, v->map, g);
	step(h, PIT_STEP_COMMITTED, g, rc);
	if (rc || tgt || pit_eng_mutation == PIT_MUT_SOURCE_FIRST)
		return rc;
	step(h, PIT_STEP_SRC_WRITE, g, 0); /* 6 */
	return step_write(a, io, v->src, off, len, buf);
}

/* read the source, then prove per grain that it was still unsplit */
static int redirect(struct fm_agent *a, const struct pit_vols *v, const struct fm_extent *e,
		    uint32_t shift, uint8_t *ebuf, const struct pit_eng_hooks *h)
{
	int rc;

	step(h, PIT_STEP_REDIRECT, e->first_grain, 0);
	rc = vol_io(v->src, false, e->offset, e->length, ebuf);
	if (pit_eng_mutation == PIT_MUT_NO_RECHECK)
		return rc;
	for (uint64_t g = e->first_grain; !rc && g <= e->last_grain; g++) {
		uint64_t s0 = g << shift, s1 = s0 + (1ull << shift);
		uint64_t a0 = s0 > e->offset ? s0 : e->offset;
		uint64_t a1 = s1 < e->offset + e->length ? s1 : e->offset + e->length;

		rc = fm_agent_is_split(a, v->map, g);
		if (rc == 1) /* split meanwhile: the source may be newer; the target has it */
			rc = vol_io(v->tgt, false, a0, a1 - a0, ebuf + (a0 - e->offset));
	}
	return rc;
}

static int run_plan(struct fm_agent *a, const struct pit_vols *v, struct fm_agent_io *io,
		    enum fm_io_op op, uint64_t off, uint64_t len, uint8_t *buf,
		    const struct pit_eng_hooks *h)
{
	struct fm_extent ext[ENG_EXTENTS];
	struct fm_grain_range lk[ENG_EXTENTS];
	struct fm_plan plan;
	uint32_t shift = io->map.grain_shift;
	bool wr = op == FM_IO_WRITE_SOURCE || op == FM_IO_WRITE_TARGET;
	int fd = (op == FM_IO_READ_SOURCE || op == FM_IO_WRITE_SOURCE) ? v->src : v->tgt;
	int rc;

	fm_plan_setup(&plan, ext, ENG_EXTENTS, lk, ENG_EXTENTS);
	rc = fm_agent_plan(a, io, op, off, len, &plan);
	for (uint64_t i = 0; !rc && i < plan.ext_count; i++) {
		const struct fm_extent *e = &ext[i];
		uint8_t *ebuf = buf + (e->offset - off); /* e->offset: volume offset */

		switch (e->kind) {
		case FM_EXT_DIRECT:
			rc = wr ? step_write(a, io, fd, e->offset, e->length, ebuf) :
				  vol_io(fd, false, e->offset, e->length, ebuf);
			break;
		case FM_EXT_REDIRECT_TO_SOURCE:
			rc = redirect(a, v, e, shift, ebuf, h);
			break;
		case FM_EXT_COPY_THEN_WRITE:
		case FM_EXT_WRITE_AND_SPLIT:
			for (uint64_t g = e->first_grain; !rc && g <= e->last_grain; g++) {
				/* the I/O's bytes inside grain g: [a0, a1) */
				uint64_t s0 = g << shift, s1 = s0 + (1ull << shift);
				uint64_t end = e->offset + e->length;
				uint64_t a0 = s0 > e->offset ? s0 : e->offset;
				uint64_t a1 = s1 < end ? s1 : end;
				bool copy = e->kind == FM_EXT_COPY_THEN_WRITE;

				rc = cow_grain(a, io, v, op, g, shift, copy, a0, a1 - a0,
					       buf + (a0 - off), h);
			}
			break;
		default:
			rc = fm_err(-EINVAL, "extent kind %d", (int)e->kind);
		}
	}
	return rc;
}

/* one attempt: one bracket; *begun says whether hooks.begin ran */
static int io_once(struct fm_agent *a, const struct pit_vols *v, enum fm_io_op op,
		   uint64_t off, uint64_t len, uint8_t *buf, const struct pit_eng_hooks *h,
		   bool *begun)
{
	struct fm_agent_io io;
	int rc;

	*begun = false;
	rc = fm_agent_io_begin(a, v->map, &io);
	if (rc)
		return rc;
	if (h && h->begin) {
		rc = h->begin(h->ctx, &io);
		if (rc) {
			fm_agent_io_end(a, &io);
			return rc;
		}
	}
	*begun = true;
	rc = run_plan(a, v, &io, op, off, len, buf, h);
	fm_agent_io_end(a, &io);
	if (h && h->end)
		h->end(h->ctx, rc);
	return rc;
}

int pit_eng_io(struct fm_agent *a, const struct pit_vols *v, enum fm_io_op op, uint64_t off,
	       uint64_t len, void *buf, const struct pit_eng_hooks *h, uint32_t retry_ms,
	       unsigned *attempts)
{
	uint64_t give_up = pit_now_ns() + (uint64_t)retry_ms * 1000000;
	unsigned n = 0;
	int rc;

	for (;;) {
		bool begun;

		rc = io_once(a, v, op, off, len, buf, h, &begun);
		n += begun;
		/* a broken session or a release mid-I/O: start the I/O again */
		if (!rc || !pit_eng_transient(rc) || pit_now_ns() > give_up)
			break;
		pit_sleep_ms(2 + n % 8);
	}
	if (attempts)
		*attempts = n;
	return rc;
}
