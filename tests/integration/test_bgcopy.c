/* test_bgcopy.c -- background copy end to end: the real owner, client
 * processes with the library's engine and its copier (engine.h
 * fm_engine_copy_start) on reference file volumes fenced through the
 * owner's table.
 *
 * Usage: test_bgcopy SCENARIO --owner PATH [--cli PATH] [--provider
 * shm|verbs --addr A]; scenarios `kill` (below) and `rate`: one copier, no
 * foreground I/O, at a rate of 512 KiB/s half the volume takes about a
 * second (the pace of the copier and of the owner); map-rate 150 midway
 * finishes the rest at once; the target equals the source.
 *
 * `watch` (--cli: the flashmeta program): one copier at 256 KiB/s (about
 * four seconds for the volume) while `flashmeta --watch admin map-show`
 * runs with stdout a pipe, once as text and once --json: one update a
 * second whose split-pct never falls, seen between 0 and 100 exclusive at
 * least once, the last update at 100 and idle_or_copied, then "end reason
 * idle_or_copied", exit 0.  A watched mapping deleted or stopped ends its
 * watch the same way (reasons deleted, stopped).  Then `--watch admin
 * status`: SIGINT ends it with exit 0 ("end reason interrupted"), and an
 * owner killed under another ends it with exit 1.
 *
 * `kill`:
 *   A  two clients write the source (PREPARED: no copy-on-write)
 *   T  the trigger: the source file is the image; map-start; the copy
 *      rate is set (map-rate) low enough that the copy takes seconds
 *   B  both clients copy in the background while they do foreground I/O
 *      on the upper half of the grains: source writes (copy-on-write),
 *      and client 1 target writes in its stripe (grains g % 4 == 1),
 *      checked by its target reads.  (The lower half, where the copy
 *      starts, is left to the copiers: their batches there are whole, so
 *      client 0's second piece is inside its first batch.)
 *   K  client 0's copier stops between two pieces of a batch (its trace
 *      hook parks the copier thread after the second piece): it reports
 *      its batch and the piece, and is SIGKILLed there; a new process of
 *      the same client takes its place.  Until the owner is killed,
 *      no grain may have been copied twice
 *   O  at half the grains split, the owner is SIGKILLed and restarted
 *      from its pool: the rate must still be what was set; then a fast
 *      rate, and the copy runs to the end: the mapping goes to
 *      idle_or_copied by itself
 *   check  every copy into the target, counted per grain through the
 *      target's mover (a log every client appends to): no grain copied
 *      again after a commit of it succeeded; duplicates at most from the
 *      owner kill (copies whose commit died with it); and the target FILE
 *      equals the image plus client 1's target writes, byte for byte
 * Exit 0 = pass.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "flashmeta/agent.h"
#include "flashmeta/engine.h"
#include "flashmeta/error.h"
#include "flashmeta/fence_table.h"
#include "flashmeta/refvol.h"
#include "svc_util.h"
#include "svc_vols.h"

#define MAP 1
#define GRAIN 4096u
#define GRAINS 256u
#define VOL ((uint64_t)GRAIN * GRAINS)
#define RATE_SLOW 15u  /* 256 KiB/s: 64 grains a second */
#define RATE_FAST 120u /* 256 MiB/s */

/* one record of the copy log (O_APPEND: one write each, whole) */
struct rec {
	uint32_t kind;   /* 1: a copy into the target landed; 2: a commit OK */
	uint32_t client;
	uint64_t first, last;
};

/* what client 0 reports when its copier parked */
struct parked {
	uint64_t batch_first, batch_last, piece_first, piece_last;
};

/* ------------------------------------------------------------ a client */

struct tvol {                  /* the target's mover: the refvol, counted */
	struct fm_refvol *rv;
};

static int logfd = -1;
static uint32_t me;
static __thread const struct fm_mover_req *copy_req; /* the copy write coming */
static int park_after;         /* client 0: park the copier after this piece */
static atomic_int pieces_done;
static atomic_bool parked;
static struct parked park_at;

static void log_rec(uint32_t kind, uint64_t first, uint64_t last)
{
	struct rec r = { .kind = kind, .client = me, .first = first, .last = last };

	if (write(logfd, &r, sizeof(r)) != (ssize_t)sizeof(r))
		DIE("copy log: %s", strerror(errno));
}

static int tgt_submit(void *ctx, struct fm_mover_req *r)
{
	struct tvol *t = ctx;
	int st = fm_refvol_do(t->rv, r);

	/* the movers complete before submit returns: the trace hook named
	 * this request a copy on this thread just before */
	if (st == 0 && r == copy_req)
		log_rec(1, r->offset / GRAIN, (r->offset + r->length - 1) / GRAIN);
	if (r == copy_req)
		copy_req = NULL;
	fm_mover_done(r, st);
	return 0;
}

static const struct fm_mover_ops tgt_ops = { .submit = tgt_submit };

static void on_trace(void *ctx, struct fm_engine_io *io, const struct fm_engine_event *ev)
{
	(void)ctx;
	if (ev->kind == FM_ENGINE_EV_MOVER &&
	    (ev->step == FM_ENGINE_STEP_COPY_WRITE || ev->step == FM_ENGINE_STEP_COPY))
		copy_req = ev->req;
	if (ev->kind == FM_ENGINE_EV_COMMITTED && ev->rc == 0)
		log_rec(2, ev->first, ev->last);
	if (ev->kind == FM_ENGINE_EV_ATTEMPT_END && io->background && ev->rc == 0 &&
	    park_after && atomic_fetch_add(&pieces_done, 1) + 1 == park_after) {
		/* between two pieces: its locks are given back, its bracket
		 * ended; the copier thread stops here for good */
		park_at.piece_first = io->offset / GRAIN;
		park_at.piece_last = (io->offset + io->length - 1) / GRAIN;
		atomic_store(&parked, true);
		for (;;)
			pause();
	}
}

struct vols {
	struct fm_engine *e;
	struct fm_fence_table *ft;
	struct fm_refvol *src;
	struct tvol tgt;
};

static int vols_open(struct svc *s, struct fm_agent *a, uint32_t id, struct vols *v)
{
	struct fm_engine_cfg ec = { .agent = a, .retry_ms = 20000, .trace = on_trace };
	struct fm_refvol_cfg rc = { .size = VOL, .client_id = id };
	struct fm_volume *vs, *vt;
	char p[2][400];

	memset(v, 0, sizeof(*v));
	snprintf(p[0], sizeof(p[0]), "%s/src.img", s->dir);
	snprintf(p[1], sizeof(p[1]), "%s/tgt.img", s->dir);
	CHECK(fm_fence_table_open(s->fence, 0, &v->ft) == 0);
	rc.fence = v->ft;
	rc.path = p[0];
	CHECK(fm_refvol_open(&rc, &v->src) == 0);
	rc.path = p[1];
	CHECK(fm_refvol_open(&rc, &v->tgt.rv) == 0);
	CHECK(fm_engine_new(&ec, &v->e) == 0);
	CHECK(fm_engine_volume_add(v->e, fm_refvol_ops(), v->src, VOL, &vs) == 0);
	CHECK(fm_engine_volume_add(v->e, &tgt_ops, &v->tgt, VOL, &vt) == 0);
	CHECK(fm_engine_attach(v->e, MAP, vs, vt) == 0);
	return 0;
}

static void vols_close(struct vols *v)
{
	fm_engine_delete(&v->e);
	fm_refvol_close(&v->src);
	fm_refvol_close(&v->tgt.rv);
	fm_fence_table_close(&v->ft);
}

/* Client idx (0 or 1; 2 is client 0 again, a new process after the
 * kill).  Children read 'A'/'T'/'Q' from the parent; client 0 writes
 * 'K' + struct parked when its copier parked. */
static int client(struct svc *s, int idx, int rfd, int wfd, void *arg)
{
	uint64_t x = *(uint64_t *)arg + (uint64_t)idx * 7919 + 1;
	struct fm_engine_copy_cfg cc = { .batch_grains = 32, .piece_grains = idx == 0 ? 4 : 8 };
	uint8_t *buf = malloc(GRAIN), *model = NULL;
	struct fm_agent *a;
	struct vols v;
	char p[400];
	int bad = 0, c;

	me = idx == 2 ? 1 : (uint32_t)idx + 1;
	park_after = idx == 0 ? 2 : 0;
	snprintf(p, sizeof(p), "%s/copies.log", s->dir);
	logfd = open(p, O_WRONLY | O_APPEND | O_CREAT, 0644);
	CHECK(logfd >= 0);
	a = svc_agent(s, me, NULL);
	CHECK(fm_agent_wait_active(a, 8000) == 0);
	CHECK(vols_open(s, a, me, &v) == 0);
	CHECK(svc_wait_gen(a, MAP, 0) == 0);
	CHECK(fm_engine_copy_start(v.e, &cc) == 0);
	if (idx < 2) {
		/* A: the source, before the trigger */
		for (int i = 0; i < 40; i++) {
			uint64_t g = rnd(&x) % GRAINS;

			svc_fill(buf, GRAIN, &x);
			CHECK(fm_engine_rw(v.e, MAP, FM_IO_WRITE_SOURCE, g * GRAIN, GRAIN, buf, NULL) ==
			      0);
		}
		sig_send(wfd, 'A');
		CHECK(sig_wait(rfd, 20000) == 'T');
	}
	CHECK(svc_wait_gen(a, MAP, 1) == 0);
	if (idx == 1) {
		model = svc_file_load(s, "image.img", VOL);
		/* the stripe's grains of the image, before any write of ours */
	}
	/* B: foreground I/O beside the copier, until 'Q' */
	for (;;) {
		uint64_t r = rnd(&x) % 100, g = GRAINS / 2 + rnd(&x) % (GRAINS / 2);
		uint64_t sec = rnd(&x) % (GRAIN / 512), off, len;
		int rc;

		if (idx == 0 && atomic_load(&parked)) {
			struct fm_engine_copy_stats st;
			char k = 'K';

			CHECK(fm_engine_copy_stats(v.e, MAP, &st) == 0);
			park_at.batch_first = st.batch_first;
			park_at.batch_last = st.batch_last;
			CHECK(write(wfd, &k, 1) == 1);
			CHECK(write(wfd, &park_at, sizeof(park_at)) == (ssize_t)sizeof(park_at));
			for (;;)
				pause(); /* the parent kills us here */
		}
		c = sig_wait(rfd, 15);
		if (c == 'Q')
			break;
		if (r < 60 || idx != 1) { /* a source write: copy-on-write */
			off = g * GRAIN + sec * 512;
			len = (1 + rnd(&x) % (GRAIN / 512 - sec)) * 512;
			svc_fill(buf, len, &x);
			rc = fm_engine_rw(v.e, MAP, FM_IO_WRITE_SOURCE, off, len, buf, NULL);
			if (rc)
				fprintf(stderr, "client %d: source write: %s\n", idx, fm_errormsg());
			CHECK(rc == 0);
			continue;
		}
		g = g - g % 4 + 1; /* client 1's stripe */
		off = g * GRAIN + sec * 512;
		len = (1 + rnd(&x) % (GRAIN / 512 - sec)) * 512;
		if (r < 85) {
			svc_fill(buf, len, &x);
			rc = fm_engine_rw(v.e, MAP, FM_IO_WRITE_TARGET, off, len, buf, NULL);
			CHECK(rc == 0);
			memcpy(model + off, buf, len);
		} else {
			rc = fm_engine_rw(v.e, MAP, FM_IO_READ_TARGET, off, len, buf, NULL);
			CHECK(rc == 0);
			if (memcmp(buf, model + off, len)) {
				fprintf(stderr, "client 1: target read of grain %" PRIu64 " is wrong\n",
					g);
				bad++;
			}
		}
	}
	CHECK(fm_engine_copy_stop(v.e) == 0);
	{
		struct fm_engine_copy_stats st;

		CHECK(fm_engine_copy_stats(v.e, MAP, &st) == 0);
		fprintf(stderr, "client %d: its copier copied %" PRIu64 " grains (%" PRIu64
			" found split under the lock) in %" PRIu64 " pieces of %" PRIu64
			" batches, %" PRIu64 " claims, %" PRIu64 " errors\n", idx, st.grains_copied,
			st.grains_skipped, st.pieces, st.batches, st.claims, st.errors);
		CHECK(!st.running);
	}
	if (model) {
		svc_file_store(s, "model.1", model, VOL);
		free(model);
	}
	vols_close(&v);
	fm_agent_delete(&a);
	close(logfd);
	free(buf);
	return bad ? 1 : 0;
}

/* ------------------------------------------------------------ the parent */

static int show(struct svc *s, const char *key, char *val, size_t cap)
{
	return svc_map_show(s, MAP, key, val, cap);
}

static long show_num(struct svc *s, const char *key)
{
	return svc_map_show_num(s, MAP, key);
}

/* the copy log: per grain, copies and whether one came after a commit */
static int check_log(struct svc *s, int *dup_out, bool verbose)
{
	char p[400];
	int fd, copies[GRAINS] = { 0 }, dup = 0, late = 0;
	bool committed[GRAINS] = { false };
	struct rec r;

	snprintf(p, sizeof(p), "%s/copies.log", s->dir);
	fd = open(p, O_RDONLY);
	CHECK(fd >= 0);
	while (read(fd, &r, sizeof(r)) == (ssize_t)sizeof(r)) {
		CHECK(r.first <= r.last && r.last < GRAINS);
		for (uint64_t g = r.first; g <= r.last; g++) {
			if (r.kind == 2) {
				committed[g] = true;
				continue;
			}
			if (committed[g]) {
				fprintf(stderr, "grain %" PRIu64 ": copied by client %u AFTER a commit "
					"of it succeeded\n", g, r.client);
				late++;
			}
			if (++copies[g] > 1) {
				dup++;
				if (verbose)
					fprintf(stderr, "grain %" PRIu64 ": copy %d (client %u)\n", g,
						copies[g], r.client);
			}
		}
	}
	close(fd);
	*dup_out = dup;
	return late ? 1 : 0;
}

static long copiers_seen; /* the most copiers map-show said while waiting */

static int wait_for(struct svc *s, const char *key, long at_least, int timeout_ms)
{
	uint64_t end = mono_ms() + (uint64_t)timeout_ms;

	while (mono_ms() < end) {
		long n = show_num(s, "copiers");

		if (n > copiers_seen)
			copiers_seen = n;
		if (show_num(s, key) >= at_least)
			return 0;
		usleep(20000);
	}
	return -1;
}

/* until map-show says idle_or_copied, at most timeout_ms */
static int wait_copied(struct svc *s, int timeout_ms)
{
	uint64_t end = mono_ms() + (uint64_t)timeout_ms;
	char state[64];

	while (mono_ms() < end) {
		if (!show(s, "state", state, sizeof(state)) && !strcmp(state, "idle_or_copied"))
			return 0;
		usleep(20000);
	}
	return -1;
}

static void make_vols(struct svc *s)
{
	for (int i = 0; i < 2; i++) {
		char p[400];
		int fd;

		snprintf(p, sizeof(p), "%s/%s", s->dir, i ? "tgt.img" : "src.img");
		fd = open(p, O_RDWR | O_CREAT, 0644);
		if (fd < 0 || ftruncate(fd, VOL) != 0)
			DIE("volume %s: %s", p, strerror(errno));
		close(fd);
	}
}

static struct child c[3]; /* killed at the end, whatever happened */

static int sc_kill(struct svc *s)
{
	uint64_t seed = svc_seed("bgcopy", 4242);
	struct parked pk;
	uint8_t *img, *expect, *got, *model;
	char out[4096];
	int dup = 0, bad = 0, k;
	uint64_t t0;

	svc_owner_start(s);
	make_vols(s);
	CHECK(svc_ctl(s, out, sizeof(out), "map-create %d 1 2 %" PRIu64 " %u", MAP, VOL,
		      GRAIN) == 0);
	CHECK(svc_ctl(s, out, sizeof(out), "map-prepare %d", MAP) == 0);
	for (int i = 0; i < 2; i++)
		child_start(s, &c[i], i, client, &seed);
	for (int i = 0; i < 2; i++)
		CHECK(sig_wait(c[i].from[0], 20000) == 'A');
	/* T: everybody is quiet; the image is the source now */
	img = svc_file_load(s, "src.img", VOL);
	svc_file_store(s, "image.img", img, VOL);
	CHECK(svc_ctl(s, out, sizeof(out), "map-start %d", MAP) == 0);
	CHECK(svc_ctl(s, out, sizeof(out), "map-rate %d %u", MAP, RATE_SLOW) == 0);
	t0 = mono_ms();
	for (int i = 0; i < 2; i++)
		sig_send(c[i].to[1], 'T');

	/* K: client 0's copier parked between two pieces of a batch */
	k = sig_wait(c[0].from[0], 20000);
	CHECK(k == 'K');
	CHECK(read(c[0].from[0], &pk, sizeof(pk)) == (ssize_t)sizeof(pk));
	fprintf(stderr, "client 0 parked after grains %" PRIu64 "-%" PRIu64 " of its batch %"
		PRIu64 "-%" PRIu64 "; SIGKILL\n", pk.piece_first, pk.piece_last, pk.batch_first,
		pk.batch_last);
	CHECK(pk.piece_first >= pk.batch_first && pk.piece_last < pk.batch_last); /* mid-batch */
	kill(c[0].pid, SIGKILL);
	CHECK(child_wait(&c[0], 10000) == 128 + SIGKILL);
	c[0].pid = 0;
	child_start(s, &c[2], 2, client, &seed); /* client 0 again */

	/* O: at half the grains split, the owner dies */
	CHECK(wait_for(s, "split-pct", 50, 30000) == 0);
	CHECK(check_log(s, &dup, true) == 0);
	fprintf(stderr, "%ld%% split after %" PRIu64 " ms; grains copied twice so far: %d\n",
		show_num(s, "split-pct"), mono_ms() - t0, dup);
	CHECK(dup == 0); /* the copier kill cost no second copy */
	CHECK(svc_ctl(s, out, sizeof(out), "map-show %d", MAP) == 0);
	fprintf(stderr, "%s", out);
	CHECK(copiers_seen >= 1);
	svc_owner_kill(s, SIGKILL);
	svc_owner_start(s);
	CHECK(show_num(s, "rate") == RATE_SLOW); /* durable */
	CHECK(svc_ctl(s, out, sizeof(out), "map-rate %d %u", MAP, RATE_FAST) == 0);

	/* the copy ends by itself: idle_or_copied */
	CHECK(wait_copied(s, 30000) == 0);
	CHECK(svc_ctl(s, out, sizeof(out), "map-show %d", MAP) == 0);
	fprintf(stderr, "%s", out);
	CHECK(show_num(s, "split-pct") == 100);
	CHECK(show_num(s, "eta-s") == 0);
	fprintf(stderr, "copy complete %" PRIu64 " ms after the trigger\n", mono_ms() - t0);

	/* the clients go on a moment without copy-on-write, then stop */
	usleep(100000);
	sig_send(c[1].to[1], 'Q');
	sig_send(c[2].to[1], 'Q');
	k = child_wait(&c[1], 20000);
	c[1].pid = 0;
	CHECK(k == 0);
	k = child_wait(&c[2], 20000);
	c[2].pid = 0;
	CHECK(k == 0);
	CHECK(check_log(s, &dup, true) == 0);
	fprintf(stderr, "grains copied twice in all: %d (only copies whose commit died with the "
		"owner)\n", dup);
	CHECK(dup <= 16); /* at most the pieces in flight when the owner died */

	/* the target file: the image plus client 1's stripe */
	model = svc_file_load(s, "model.1", VOL);
	expect = malloc(VOL);
	memcpy(expect, img, VOL);
	for (uint64_t g = 1; g < GRAINS; g += 4)
		memcpy(expect + g * GRAIN, model + g * GRAIN, GRAIN);
	got = svc_file_load(s, "tgt.img", VOL);
	for (uint64_t g = 0; g < GRAINS; g++)
		if (memcmp(got + g * GRAIN, expect + g * GRAIN, GRAIN)) {
			fprintf(stderr, "target grain %" PRIu64 " differs from the source at the "
				"trigger%s\n", g, g % 4 == 1 ? " plus the target writes" : "");
			bad++;
		}
	free(model);
	free(expect);
	free(got);
	free(img);
	CHECK(bad == 0);
	return 0;
}

/* ------------------------------------------------------------- rate */

/* one copier and nothing else, until 'Q'; arg: the rate it must have
 * learnt by then (NULL: 150) */
static int lone_copier(struct svc *s, int idx, int rfd, int wfd, void *arg)
{
	uint32_t want_rate = arg ? *(uint32_t *)arg : 150;

	struct fm_engine_copy_cfg cc = { .batch_grains = 64, .piece_grains = 16 };
	struct fm_engine_copy_stats st;
	struct fm_agent *a;
	struct vols v;
	char p[400];

	(void)idx;
	(void)wfd;
	me = 1;
	snprintf(p, sizeof(p), "%s/copies.log", s->dir);
	logfd = open(p, O_WRONLY | O_APPEND | O_CREAT, 0644);
	CHECK(logfd >= 0);
	a = svc_agent(s, me, NULL);
	CHECK(fm_agent_wait_active(a, 8000) == 0);
	CHECK(vols_open(s, a, me, &v) == 0);
	CHECK(fm_engine_copy_start(v.e, &cc) == 0);
	CHECK(fm_engine_copy_start(v.e, &cc) == -EALREADY);
	CHECK(sig_wait(rfd, 30000) == 'Q');
	CHECK(fm_engine_copy_stats(v.e, MAP, &st) == 0);
	fprintf(stderr, "copier: %" PRIu64 " grains copied, %" PRIu64 " skipped, %" PRIu64
		" pieces, %" PRIu64 " batches, rate %u\n", st.grains_copied, st.grains_skipped,
		st.pieces, st.batches, st.rate);
	CHECK(st.grains_copied == GRAINS && st.grains_skipped == 0 && st.rate == want_rate);
	CHECK(fm_engine_copy_stop(v.e) == 0);
	CHECK(fm_engine_copy_stop(v.e) == -EALREADY);
	vols_close(&v);
	fm_agent_delete(&a);
	return 0;
}

static int sc_rate(struct svc *s)
{
	uint64_t x = 99, t0, t50, t1;
	uint8_t *src, *tgt;
	char out[4096];
	int dup, rc;

	svc_owner_start(s);
	make_vols(s);
	src = malloc(VOL);
	svc_fill(src, VOL, &x);
	svc_file_store(s, "src.img", src, VOL); /* before the trigger: no copy-on-write yet */
	CHECK(svc_ctl(s, out, sizeof(out), "map-create %d 1 2 %" PRIu64 " %u", MAP, VOL,
		      GRAIN) == 0);
	CHECK(svc_ctl(s, out, sizeof(out), "map-prepare %d", MAP) == 0);
	CHECK(svc_ctl(s, out, sizeof(out), "map-start %d", MAP) == 0);
	child_start(s, &c[0], 0, lone_copier, NULL);
	usleep(300000); /* it joined; rate 0: nothing copied */
	CHECK(show_num(s, "split") == 0);
	CHECK(show_num(s, "eta-s") == -1);
	/* 21: 512 KiB/s, 128 grains of 4 KiB a second */
	CHECK(svc_ctl(s, out, sizeof(out), "map-rate %d 21", MAP) == 0);
	t0 = mono_ms();
	CHECK(wait_for(s, "split-pct", 50, 10000) == 0);
	t50 = mono_ms() - t0;
	fprintf(stderr, "half of 1 MiB copied at 512 KiB/s in %" PRIu64 " ms\n", t50);
	/* a second, less the owner's quarter-second ahead and a claim's wait
	 * for a rate it learns within a second at most */
	CHECK(t50 >= 600 && t50 <= 3000);
	CHECK(svc_ctl(s, out, sizeof(out), "map-rate %d 150", MAP) == 0);
	t0 = mono_ms();
	CHECK(wait_copied(s, 10000) == 0);
	t1 = mono_ms() - t0;
	fprintf(stderr, "the rest at 2 GiB/s in %" PRIu64 " ms\n", t1);
	CHECK(t1 < 2500); /* the new rate within a WAIT */
	sig_send(c[0].to[1], 'Q');
	rc = child_wait(&c[0], 20000);
	c[0].pid = 0;
	CHECK(rc == 0);
	CHECK(check_log(s, &dup, true) == 0 && dup == 0);
	tgt = svc_file_load(s, "tgt.img", VOL);
	CHECK(memcmp(src, tgt, VOL) == 0);
	free(src);
	free(tgt);
	return 0;
}

/* ------------------------------------------------------------ watch */

static const char *cli_bin; /* --cli */

/* flashmeta -C CTL --watch [--json] admin WORDS... with stdout a pipe
 * (*out: read it to EOF), stderr inherited */
static pid_t cli_watch(struct svc *s, bool json, const char *w1, const char *w2, int *out)
{
	int p[2];
	pid_t pid;

	if (pipe(p))
		DIE("pipe: %s", strerror(errno));
	pid = fork();
	if (pid < 0)
		DIE("fork: %s", strerror(errno));
	if (pid == 0) {
		dup2(p[1], STDOUT_FILENO);
		close(p[0]);
		close(p[1]);
		char *av[] = { (char *)cli_bin, "-C", s->ctl, "--watch=1", "--json", "admin",
			       (char *)w1, (char *)w2, NULL };

		if (!json) /* no --json: the words move up over it */
			memmove(&av[4], &av[5], sizeof(av) - 5 * sizeof(av[0]));
		execv(cli_bin, av);
		_exit(127);
	}
	close(p[1]);
	*out = p[0];
	return pid;
}

/* everything the program writes until it closes its stdout */
static char *slurp(int fd)
{
	size_t used = 0, cap = 4096;
	char *b = malloc(cap);
	ssize_t n;

	while (b && (n = read(fd, b + used, cap - 1 - used)) > 0) {
		used += (size_t)n;
		if (cap - 1 - used < 1024)
			b = realloc(b, cap *= 2);
	}
	if (!b)
		DIE("slurp: out of memory");
	b[used] = 0;
	close(fd);
	return b;
}

static int exit_of(pid_t pid)
{
	int st;

	if (waitpid(pid, &st, 0) != pid)
		return -1;
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* a number in a record line (text) or object (--json: "key": N) */
static long rec_num(const char *line, const char *key, bool json)
{
	char want[64];
	const char *p;

	snprintf(want, sizeof(want), json ? "\"%s\": " : " %s ", key);
	p = strstr(line, want);
	return p ? strtol(p + strlen(want), NULL, 10) : -100;
}

static bool starts(const char *s, const char *prefix)
{
	return !strncmp(s, prefix, strlen(prefix));
}

/* one watch's output: the updates of map 1, percent never falling, seen
 * mid-way, ending at 100 idle_or_copied and "end reason idle_or_copied" */
static int check_watch(const char *out, bool json)
{
	const char *l = out, *last = NULL, *end_line = NULL;
	long prev = -1, updates = 0, mid = 0;
	char state[64];

	for (; *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : l + strlen(l)) {
		bool is_end = starts(l, json ? "{\"records\": [{\"record\": \"end\"" : "end ");
		bool is_upd = starts(l, json ? "{\"records\": [{\"record\": \"watch\"" : "progress ");
		long pct;

		if (is_end) {
			end_line = l;
			continue;
		}
		CHECK(is_upd && !end_line); /* nothing else, nothing after the end */
		pct = rec_num(l, "split-pct", json);
		CHECK(pct >= 0 && pct <= 100);
		if (pct < prev)
			fprintf(stderr, "watch: split-pct %ld after %ld\n", pct, prev);
		CHECK(pct >= prev);
		CHECK(rec_num(l, "update", json) == updates + 1);
		CHECK(rec_num(l, "map", json) == MAP);
		CHECK(rec_num(l, "grains", json) == GRAINS);
		mid += pct > 0 && pct < 100;
		prev = pct;
		last = l;
		updates++;
	}
	fprintf(stderr, "watch%s: %ld updates, %ld mid-way, last split-pct %ld\n",
		json ? " --json" : "", updates, mid, prev);
	CHECK(last && end_line);
	CHECK(mid >= 1 && prev == 100);
	snprintf(state, sizeof(state), json ? "\"state\": \"idle_or_copied\"" :
		 " state idle_or_copied ");
	CHECK(strstr(last, state) && strstr(last, state) < strchr(last, '\n'));
	CHECK(starts(end_line, json ? "{\"records\": [{\"record\": \"end\", \"reason\": "
				      "\"idle_or_copied\", \"map\": 1, \"updates\": "
				    : "end reason idle_or_copied map 1 updates "));
	CHECK(rec_num(end_line, "updates", json) == updates);
	return 0;
}

/* the lines of out that start with prefix */
static long lines_of(const char *out, const char *prefix)
{
	long n = 0;

	for (const char *l = out; *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : l + strlen(l))
		n += starts(l, prefix);
	return n;
}

static int sc_watch(struct svc *s)
{
	uint32_t rate = 15; /* 256 KiB/s: the 1 MiB volume in about 4 s */
	char out[4096], *text, *json, *o;
	int fd_text, fd_json, fd, rc;
	pid_t w_text, w_json, w;

	if (!cli_bin)
		DIE("watch: --cli PATH (the flashmeta program) is required");
	svc_owner_start(s);
	make_vols(s);
	CHECK(svc_ctl(s, out, sizeof(out), "map-create %d 1 2 %" PRIu64 " %u", MAP, VOL,
		      GRAIN) == 0);
	CHECK(svc_ctl(s, out, sizeof(out), "map-prepare %d", MAP) == 0);
	CHECK(svc_ctl(s, out, sizeof(out), "map-start %d", MAP) == 0);
	child_start(s, &c[0], 0, lone_copier, &rate);
	/* both watchers see the mapping COPYING at rate 0 first */
	w_text = cli_watch(s, false, "map-show", "1", &fd_text);
	w_json = cli_watch(s, true, "map-show", "1", &fd_json);
	usleep(300000);
	CHECK(svc_ctl(s, out, sizeof(out), "map-rate %d %u", MAP, rate) == 0);
	text = slurp(fd_text);
	json = slurp(fd_json);
	rc = exit_of(w_text);
	CHECK(rc == 0);
	rc = exit_of(w_json);
	CHECK(rc == 0);
	fprintf(stderr, "--- flashmeta --watch admin map-show 1\n%s---\n", text);
	CHECK(check_watch(text, false) == 0);
	CHECK(check_watch(json, true) == 0);
	free(text);
	free(json);
	CHECK(svc_ctl(s, out, sizeof(out), "map-show %d", MAP) == 0);
	CHECK(strstr(out, " state idle_or_copied ") != NULL);
	sig_send(c[0].to[1], 'Q');
	rc = child_wait(&c[0], 20000);
	c[0].pid = 0;
	CHECK(rc == 0);

	/* map-show of a mapping deleted (force: it is prepared) or stopped
	 * under the watch: exit 0, said so */
	CHECK(svc_ctl(s, out, sizeof(out), "map-create 2 3 4 %" PRIu64 " %u", VOL, GRAIN) == 0);
	CHECK(svc_ctl(s, out, sizeof(out), "map-prepare 2") == 0);
	CHECK(svc_ctl(s, out, sizeof(out), "map-create 3 5 6 %" PRIu64 " %u", VOL, GRAIN) == 0);
	CHECK(svc_ctl(s, out, sizeof(out), "map-prepare 3") == 0);
	CHECK(svc_ctl(s, out, sizeof(out), "map-start 3") == 0);
	w_text = cli_watch(s, false, "map-show", "2", &fd_text);
	w_json = cli_watch(s, false, "map-show", "3", &fd_json);
	usleep(1500000);
	CHECK(svc_ctl(s, out, sizeof(out), "map-delete 2 force") == 0);
	CHECK(svc_ctl(s, out, sizeof(out), "map-stop 3") == 0);
	text = slurp(fd_text);
	json = slurp(fd_json);
	CHECK(exit_of(w_text) == 0);
	CHECK(exit_of(w_json) == 0);
	CHECK(strstr(text, "progress update 2 elapsed-ms ") && strstr(text, " state prepared "));
	CHECK(strstr(text, "\nend reason deleted map 2 updates ") != NULL);
	CHECK(strstr(json, " state copying ") && strstr(json, " state stopped "));
	CHECK(strstr(json, "\nend reason stopped map 3 updates ") != NULL);
	CHECK(rec_num(strstr(text, "\nend "), "updates", false) == lines_of(text, "progress "));
	free(text);
	free(json);

	/* status until Ctrl-C: exit 0, said so */
	w = cli_watch(s, false, "status", NULL, &fd);
	usleep(1500000);
	kill(w, SIGINT);
	o = slurp(fd);
	CHECK(exit_of(w) == 0);
	CHECK(strstr(o, "progress update 2 ") != NULL);
	CHECK(strstr(o, "\nend reason interrupted updates ") != NULL);
	free(o);
	/* the owner gone under a watch: exit 1 */
	w = cli_watch(s, false, "status", NULL, &fd);
	usleep(1500000);
	svc_owner_kill(s, SIGKILL);
	o = slurp(fd);
	CHECK(exit_of(w) == 1);
	CHECK(strstr(o, "progress update 1 ") != NULL && !strstr(o, "end reason"));
	free(o);
	return 0;
}

int main(int argc, char **argv)
{
	static const struct svc_scenario sc[] = {
		{ "kill", sc_kill }, { "rate", sc_rate }, { "watch", sc_watch },
	};
	static const struct svc_test t = {
		.name = "bgcopy", .sc = sc, .n = sizeof(sc) / sizeof(sc[0]),
		.usage_more = "[--cli PATH]", .reap = c, .nreap = sizeof(c) / sizeof(c[0]),
	};
	struct svc s;

	for (int i = 2; i + 1 < argc; i++)
		if (!strcmp(argv[i], "--cli"))
			cli_bin = argv[i + 1];
	return svc_main(&t, &s, argc, argv);
}
