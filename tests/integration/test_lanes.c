/* test_lanes.c -- the agent's lane deadline and abandon path (ops.c
 * overdue / lane_abandon, proto.c lane_broken) against the real owner,
 * with faults injected under the agent's engine lanes (lane_faults.h).
 *
 * Usage: test_lanes SCENARIO --owner PATH [--provider shm|verbs --addr A]
 * (or FM_OWNER_BIN / FM_PROVIDER / FM_ADDR).  Exit 0 = pass.
 *
 * Over shm every completion is there at the next poll and no lane ever
 * waits 10 s, so the native suite never took these paths.  Both
 * scenarios run engine I/O on volumes as files (svc_vols.h) in one client
 * child, the only process with a fault on, and check data the way the
 * snapshot scenario of test_service does: a target reads as the source
 * at the trigger plus the target's own writes -- during the run, and at
 * the end, read by a fresh client with no fault.
 *
 *   late  completions 1..3 reaps late, the clock ticking inside every
 *         pass (an op posted by a step is younger than the pass's `now`);
 *         three engine threads on overlapping grains: no lane may be
 *         abandoned, no I/O may fail.  (ag_progress aged ops by
 *         now - posted_ms: a post after the pass's `now` came out 2^64 ms
 *         old, the lane was abandoned as if 10 s had passed, eaff3c4.)
 *   lost   one lock CAS never completes and that thread's clock jumps
 *         past the 10-s deadline: the lane is abandoned once, the session
 *         ends and joins again, the owner takes back the word the lost
 *         CAS took, and every I/O completes with the right data.  A
 *         second I/O of the same thread has its READ complete but not yet
 *         looked at when the lane goes (see lost_child): it must read
 *         again, not look at its slot in the lane's fresh buffer.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "flashmeta/agent.h"
#include "flashmeta/engine.h"
#include "flashmeta/error.h"
#include "flashmeta/lockword.h"
#include "lane_faults.h"
#include "svc_util.h"
#include "svc_vols.h"

#define MAP 1
#define GRAIN 4096u
#define GRAINS 512u
#define VOL ((uint64_t)GRAIN * GRAINS)
#define WIN 256u         /* the grains the workers share */
#define STRIPES 4u       /* grain g's target belongs to worker g % 4 (3: nobody's) */

/* ----------------------------------------------------------- the setup */

/* the owner, the volumes, a random source, the trigger: the image */
static uint8_t *setup(struct svc *s, uint64_t seed)
{
	uint64_t x = seed | 1;
	uint8_t *img = malloc(VOL);
	char out[4096];

	svc_owner_start(s);
	svc_vols_make(s, VOL);
	svc_fill(img, VOL, &x);
	svc_file_store(s, "src.img", img, VOL);
	svc_file_store(s, "image.img", img, VOL);
	if (svc_ctl(s, out, sizeof(out), "map-create %d 1 2 %" PRIu64 " %u", MAP, VOL, GRAIN) ||
	    svc_ctl(s, out, sizeof(out), "map-prepare %d", MAP) ||
	    svc_ctl(s, out, sizeof(out), "map-start %d", MAP))
		DIE("map %d: %s", MAP, out);
	return img;
}

/* the client, joined, the mapping granted.  It spins up to 20 ms for a
 * completion (cfg.spin_us, as an engine on a fabric would): a post that
 * waits for the clock to tick uses up the default 50 us, and a completion
 * the seam hands back a few reaps late would then wait for the agent's
 * 100-ms nap instead of the next poll */
static struct fm_agent *client(struct svc *s, uint32_t id)
{
	struct fm_agent_cfg cfg = { .client_id = id, .spin_us = 20000 };
	struct fm_agent *a = svc_agent_cfg(s, &cfg, NULL);
	struct fm_agent_map m;
	uint64_t end = mono_ms() + 8000;

	if (fm_agent_wait_active(a, 8000))
		DIE("client %u: no session: %s", id, fm_errormsg());
	while (fm_agent_map_get(a, MAP, &m) || !m.granted)
		if (mono_ms() > end)
			DIE("client %u: map %d not granted", id, MAP);
		else
			usleep(5000);
	return a;
}

/* The end: a fresh client with no fault reads the whole target; it must
 * be the image plus each worker's stripe of its model (model.N). */
static int final_check(struct svc *s, const uint8_t *img, unsigned workers)
{
	uint8_t *expect = malloc(VOL), *got = malloc(VOL);
	struct fm_agent *a;
	struct svc_vols v;
	int bad = 0;

	memcpy(expect, img, VOL);
	for (unsigned i = 0; i < workers; i++) {
		char name[32];
		uint8_t *m;

		snprintf(name, sizeof(name), "model.%u", i);
		m = svc_file_load(s, name, VOL);
		for (uint64_t g = i; g < GRAINS; g += STRIPES)
			memcpy(expect + g * GRAIN, m + g * GRAIN, GRAIN);
		free(m);
	}
	a = client(s, 9);
	CHECK(svc_vols_open(s, a, 9, MAP, VOL, &v) == 0);
	for (uint64_t g = 0; g < GRAINS; g += 8)
		CHECK(svc_vols_io(&v, FM_IO_READ_TARGET, g * GRAIN, 8 * GRAIN, got + g * GRAIN) ==
		      0);
	for (uint64_t g = 0; g < GRAINS; g++)
		if (memcmp(got + g * GRAIN, expect + g * GRAIN, GRAIN)) {
			fprintf(stderr, "final: target grain %" PRIu64 " is wrong\n", g);
			bad++;
		}
	svc_vols_close(&v);
	fm_agent_delete(&a);
	free(got);
	free(expect);
	CHECK(bad == 0);
	return 0;
}

/* ------------------------------------------------------------ a worker
 * Random engine I/O on grains [0, WIN), shared with the other workers:
 * source writes of 1-16 sectors (up to three grains: several locks, a
 * COMMIT run, parallel UNLOCKs), target writes in its own stripe (the
 * model follows), target reads of its stripe or the untouched one,
 * checked against the model.  Every I/O must succeed. */
struct worker {
	struct svc_vols *v;
	unsigned stripe;
	uint64_t x;
	int ops;                /* how many; 0: until *stop */
	atomic_bool *stop;
	uint8_t *model;         /* the image plus this worker's target writes */
	uint8_t buf[3 * GRAIN];
	atomic_long done;
	long bad, failed;
	int first_rc;
	pthread_t tid;
};

static void worker_io(struct worker *w)
{
	uint64_t r = rnd(&w->x) % 100, g = rnd(&w->x) % WIN, sec = rnd(&w->x) % (GRAIN / 512);
	uint64_t off = g * GRAIN + sec * 512, len;
	enum fm_io_op op;
	int rc;

	if (r < 45) { /* source write */
		op = FM_IO_WRITE_SOURCE;
		len = (1 + rnd(&w->x) % 16) * 512;
		if (off + len > (uint64_t)WIN * GRAIN)
			len = (uint64_t)WIN * GRAIN - off;
		svc_fill(w->buf, len, &w->x);
	} else {
		g = g - g % STRIPES + (r < 70 || rnd(&w->x) % 2 ? w->stripe : STRIPES - 1);
		if (g >= WIN)
			return;
		off = g * GRAIN + sec * 512;
		len = (1 + rnd(&w->x) % (GRAIN / 512 - sec)) * 512;
		if (r < 70 && rnd(&w->x) % 3 == 0) {
			off = g * GRAIN; /* the whole grain: WRITE_AND_SPLIT */
			len = GRAIN;
		}
		op = r < 70 ? FM_IO_WRITE_TARGET : FM_IO_READ_TARGET;
		if (op == FM_IO_WRITE_TARGET)
			svc_fill(w->buf, len, &w->x);
	}
	rc = svc_vols_io(w->v, op, off, len, w->buf);
	if (rc) {
		if (!w->failed++)
			w->first_rc = rc;
		fprintf(stderr, "worker %u: op %d at %" PRIu64 "+%" PRIu64 ": %d (%s)\n", w->stripe,
			(int)op, off, len, rc, fm_errormsg());
	} else if (op == FM_IO_WRITE_TARGET) {
		memcpy(w->model + off, w->buf, len);
	} else if (op == FM_IO_READ_TARGET && memcmp(w->buf, w->model + off, len)) {
		fprintf(stderr, "worker %u: target read grain %" PRIu64 " off %" PRIu64
			" len %" PRIu64 " is not the image plus our writes\n", w->stripe, g, off,
			len);
		w->bad++;
	}
	atomic_fetch_add(&w->done, 1);
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;

	for (int i = 0; w->ops ? i < w->ops : !atomic_load(w->stop); i++)
		worker_io(w);
	return NULL;
}

static void worker_init(struct worker *w, struct svc_vols *v, const uint8_t *img,
			unsigned stripe, uint64_t seed)
{
	memset(w, 0, sizeof(*w));
	w->v = v;
	w->stripe = stripe;
	w->x = (seed + 7919 * (stripe + 1)) | 1;
	w->model = malloc(VOL);
	memcpy(w->model, img, VOL);
}

/* the worker's end: no I/O failed, every read was right; its model to
 * model.N for final_check */
static int worker_fini(struct svc *s, struct worker *w)
{
	char name[32];

	fprintf(stderr, "worker %u: %ld I/Os, %ld failed, %ld wrong reads\n", w->stripe,
		atomic_load(&w->done), w->failed, w->bad);
	snprintf(name, sizeof(name), "model.%u", w->stripe);
	svc_file_store(s, name, w->model, VOL);
	free(w->model);
	CHECK(w->failed == 0);
	CHECK(w->bad == 0);
	return 0;
}

static void print_stats(const char *who, struct fm_agent *a, const struct lf_stats *lf)
{
	struct fm_agent_stats st;

	fm_agent_stats(a, &st);
	fprintf(stderr, "%s: lanes broken %" PRIu64 ", joins %" PRIu64 ", closes %" PRIu64
		", locks %" PRIu64 ", fetches %" PRIu64 ", unlocks %" PRIu64 "; seam: posts %"
		PRIu64 ", ticks %" PRIu64 ", late completions %" PRIu64 ", poisoned regions %"
		PRIu64 "\n", who, st.lanes_broken, st.joins, st.closes, st.locks, st.fetches,
		st.unlocks, lf->posts, lf->ticks, lf->late, lf->poisoned);
}

/* ================================================================= late */
#define LATE_WORKERS 3u
#define LATE_OPS 200

static int late_child(struct svc *s, int idx, int rfd, int wfd, void *arg)
{
	(void)idx;
	(void)rfd;
	(void)wfd;
	uint64_t seed = *(uint64_t *)arg;
	uint8_t *img = svc_file_load(s, "image.img", VOL);
	struct fm_agent *a = client(s, 1);
	struct worker w[LATE_WORKERS];
	struct fm_engine_stats es;
	struct fm_agent_stats st;
	struct lf_stats lf;
	struct svc_vols v;
	int fails = 0;

	CHECK(svc_vols_open(s, a, 1, MAP, VOL, &v) == 0);
	lf_late_start(seed);
	for (unsigned i = 0; i < LATE_WORKERS; i++) {
		worker_init(&w[i], &v, img, i, seed);
		w[i].ops = LATE_OPS;
		CHECK(pthread_create(&w[i].tid, NULL, worker_main, &w[i]) == 0);
	}
	for (unsigned i = 0; i < LATE_WORKERS; i++)
		pthread_join(w[i].tid, NULL);
	lf_stats(&lf);
	print_stats("late", a, &lf);
	fm_agent_stats(a, &st);
	fm_engine_stats(v.e, &es);
	fprintf(stderr, "late: engine I/Os %" PRIu64 ", errors %" PRIu64 ", restarts %" PRIu64
		", locks %" PRIu64 ", commits %" PRIu64 "\n", es.ios, es.errors, es.restarts,
		es.locks, es.commits);
	for (unsigned i = 0; i < LATE_WORKERS; i++)
		fails += worker_fini(s, &w[i]);
	/* the fault was there: posts after the pass's clock read, and
	 * completions handed back late, on every thread's fresh buffer */
	CHECK(lf.ticks > 0 && lf.late > 0 && lf.poisoned >= LATE_WORKERS);
	CHECK(st.locks > 0 && st.fetches > 0 && st.unlocks > 0);
	/* a late completion is not a broken lane */
	CHECK(st.lanes_broken == 0);
	CHECK(st.joins == 1 && st.closes == 0);
	CHECK(es.errors == 0);
	CHECK(fails == 0);
	svc_vols_close(&v);
	fm_agent_delete(&a);
	free(img);
	return 0;
}

static int sc_late(struct svc *s)
{
	uint64_t seed = svc_seed("late", 4242);
	uint8_t *img = setup(s, seed);
	struct child c;
	char out[8192];
	int rc;

	child_start(s, &c, 0, late_child, &seed);
	rc = child_wait(&c, 40000);
	svc_ctl(s, out, sizeof(out), "status");
	fprintf(stderr, "%slate: the client's exit status %d\n", out, rc);
	CHECK(rc == 0);
	CHECK(final_check(s, img, LATE_WORKERS) == 0);
	free(img);
	return 0;
}

/* ================================================================= lost
 * One client, two threads.  U runs the worker (stripe 1) all along.  T
 * arms the fault, then drives two I/Os of its own by the polled form, on
 * grains far from the workers' window and never touched before:
 *
 *   Y  READ_TARGET of LOST_GY: its plan's FETCH posts the first READ --
 *      held back by the seam;
 *   X  WRITE_SOURCE of LOST_GX: its FETCH completes, its LOCK posts the
 *      CAS + READ; the CAS takes the free word at the owner (shm: at the
 *      post; verbs: on the wire) but its completion is dropped.  T's clock
 *      jumps 20 s.
 *
 * The next pass on T reads the jumped clock, then its first reap hands
 * Y's READ over (the seam's gate) -- Y is now complete and not looked at
 * -- and its loop meets X first (ops are listed newest first; X's LOCK
 * started after Y's FETCH), overdue: the lane is abandoned with Y's READ
 * in its slot of the old buffer.  Meanwhile the seam holds the process's
 * other threads, so the protocol thread cannot end the session (and
 * withdraw the endpoint) before that pass is through: what the pass does
 * with Y is the agent's doing, not the luck of a race.  The agent must
 * read Y again: looking at its slot number in the fresh buffer (filled
 * with 0xff by the seam) would find every grain split, and Y would read
 * the target (zeros) for what is the image.  X fails -ECONNRESET, the
 * session ends (the word its lost CAS took belongs to that session: the
 * owner takes it back) and the engine starts X again in the next
 * session.  Both complete, with the right data, within tens of ms; an
 * agent that did not end the session spins on its own word for wait_ms
 * (8 s) per attempt.
 *
 * A LOCK between its CAS attempts (backing off from a word another of
 * our threads holds) keeps a slot number too, and the fix takes it back
 * as well; there is no deterministic case of it here.  That LOCK looks at
 * its slot only after its own next READ, so a slot handed out twice shows
 * only if another op's READ lands in it between that READ and the look:
 * the order of two live ops' posts and looks within one pass, which the
 * seam -- it sees posts and completions, not who holds which slot, nor
 * when an op looks -- cannot arrange.
 */
#define LOST_GX 300u
#define LOST_GY 400u

struct pio {
	struct fm_engine_io io;
	bool done;
	uint64_t done_ms;
};

static void pio_done(struct fm_engine_io *io, int status)
{
	struct pio *p = io->ctx;

	(void)status;
	p->done = true;
	p->done_ms = mono_ms();
}

static int lost_child(struct svc *s, int idx, int rfd, int wfd, void *arg)
{
	(void)idx;
	uint64_t seed = *(uint64_t *)arg, x = seed ^ 0x5bd1e995u, t0, tab;
	uint8_t *img = svc_file_load(s, "image.img", VOL);
	uint8_t *ybuf = malloc(GRAIN), *xbuf = malloc(GRAIN);
	struct fm_agent *a = client(s, 1);
	struct pio y = { 0 }, xw = { 0 };
	struct fm_agent_stats st;
	struct worker u, t;
	struct lf_stats lf;
	struct svc_vols v;
	atomic_bool stop = false;
	int fails = 0;

	CHECK(svc_vols_open(s, a, 1, MAP, VOL, &v) == 0);
	worker_init(&u, &v, img, 1, seed);
	u.stop = &stop;
	CHECK(pthread_create(&u.tid, NULL, worker_main, &u) == 0);
	for (t0 = mono_ms(); atomic_load(&u.done) < 20 && mono_ms() < t0 + 10000;)
		usleep(1000);

	lf_lost_arm(true);
	svc_fill(xbuf, GRAIN, &x);
	y.io = (struct fm_engine_io){ .map_id = MAP, .op = FM_IO_READ_TARGET,
				      .offset = (uint64_t)LOST_GY * GRAIN, .length = GRAIN,
				      .buf = ybuf, .done = pio_done, .ctx = &y };
	xw.io = (struct fm_engine_io){ .map_id = MAP, .op = FM_IO_WRITE_SOURCE,
				       .offset = (uint64_t)LOST_GX * GRAIN, .length = GRAIN,
				       .buf = xbuf, .done = pio_done, .ctx = &xw };
	t0 = mono_ms();
	CHECK(fm_engine_submit(v.e, &y.io) == 0);
	CHECK(fm_engine_submit(v.e, &xw.io) == 0);
	while (!(y.done && xw.done) && mono_ms() < t0 + 10000) {
		struct epoll_event ev[4];
		int to, fd;

		(void)fm_engine_poll(v.e);
		fd = fm_engine_fd(v.e, &to);
		if (fd >= 0 && to != 0)
			(void)epoll_wait(fd, ev, 4, to < 0 || to > 5 ? 5 : to);
	}
	lf_stats(&lf);
	tab = lf.abandoned ? lf.abandoned_ms : 0;
	fprintf(stderr, "lost: CAS of word %" PRIu64 " posted %d, dropped %d (the word "
		"before it 0x%" PRIx64 "), clock jumped %d, lane abandoned %d; the READ held "
		"%d, handed over after the jump %d\n", lf.lost_off / 8, lf.lost_posted,
		lf.lost_dropped, lf.lost_old, lf.jumped, lf.abandoned, lf.read_held,
		lf.read_released);
	fprintf(stderr, "lost: Y %s %d after %" PRIu64 " ms, X %s %d after %" PRIu64
		" ms (%" PRIu64 " ms after the abandon)\n", y.done ? "done" : "NOT done",
		y.io.status, y.done_ms ? y.done_ms - t0 : 0, xw.done ? "done" : "NOT done",
		xw.io.status, xw.done_ms ? xw.done_ms - t0 : 0,
		xw.done_ms > tab && tab ? xw.done_ms - tab : 0);
	if (!(y.done && xw.done))
		_exit(1); /* an I/O still in flight: the engine cannot be freed */
	/* the construction happened as described above */
	CHECK(lf.lost_posted && lf.lost_dropped && lf.lost_off / 8 == LOST_GX);
	CHECK(lf.lost_old == FM_LOCKWORD_FREE); /* the lost CAS took the word */
	CHECK(lf.jumped && lf.abandoned && lf.read_held && lf.read_released);
	/* both I/Os done, right */
	CHECK(y.io.status == 0 && xw.io.status == 0);
	if (memcmp(ybuf, img + (uint64_t)LOST_GY * GRAIN, GRAIN)) {
		fprintf(stderr, "lost: Y read grain %u as %s, not the image\n", LOST_GY,
			ybuf[0] == 0 && !memcmp(ybuf, ybuf + 1, GRAIN - 1) ? "zeros" : "other data");
		fails++;
	}
	/* in the next session, at once: the owner took the lost word back */
	CHECK(tab && xw.done_ms >= tab && xw.done_ms - tab < 4000);

	/* T works on in the new session, on a new lane, the real clock */
	worker_init(&t, &v, img, 0, seed);
	t.ops = 60;
	worker_main(&t);
	atomic_store(&stop, true);
	pthread_join(u.tid, NULL);
	lf_stats(&lf);
	print_stats("lost", a, &lf);
	fm_agent_stats(a, &st);
	fails += worker_fini(s, &t);
	fails += worker_fini(s, &u);
	/* one abandon, and it ended the session: a new one joined */
	CHECK(st.lanes_broken == 1);
	CHECK(st.joins >= 2 && st.closes >= 1);
	/* nothing held here; the parent asks the owner about every word */
	CHECK(fm_agent_locks(a, NULL, 0) == 0);
	CHECK(fails == 0);
	sig_send(wfd, 'D');
	CHECK(sig_wait(rfd, 20000) == 'Q');
	svc_vols_close(&v);
	fm_agent_delete(&a);
	free(xbuf);
	free(ybuf);
	free(img);
	return 0;
}

static int sc_lost(struct svc *s)
{
	uint64_t seed = svc_seed("lost", 4242);
	uint8_t *img = setup(s, seed);
	struct child c;
	char out[8192];
	int rc, held = 0;

	child_start(s, &c, 0, lost_child, &seed);
	if (sig_wait(c.from[0], 40000) == 'D') {
		/* the client is alive and joined: no word of the map is held
		 * (the lost CAS's word above all: its session is gone) */
		for (uint64_t g = 0; g < GRAINS; g++) {
			CHECK(svc_ctl(s, out, sizeof(out), "lock-show %d %" PRIu64, MAP, g) == 0);
			if (!strstr(out, " state free ")) {
				fprintf(stderr, "lost: %s", out);
				held++;
			}
		}
		CHECK(svc_ctl(s, out, sizeof(out), "sessions") == 0);
		fprintf(stderr, "%s", out);
		sig_send(c.to[1], 'Q');
	}
	rc = child_wait(&c, 20000);
	svc_ctl(s, out, sizeof(out), "status");
	fprintf(stderr, "%slost: the client's exit status %d\n", out, rc);
	CHECK(rc == 0);
	CHECK(held == 0);
	CHECK(final_check(s, img, 2) == 0);
	free(img);
	return 0;
}

int main(int argc, char **argv)
{
	static const struct svc_scenario sc[] = { { "late", sc_late }, { "lost", sc_lost } };
	static const struct svc_test t = { .name = "lanes", .sc = sc,
					   .n = sizeof(sc) / sizeof(sc[0]) };
	struct svc s;

	return svc_main(&t, &s, argc, argv);
}
