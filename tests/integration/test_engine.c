/* test_engine.c -- the I/O engine (engine.h) against a real owner, with
 * fake movers that record every call.
 *
 * Each case gets a mapping of its own on one owner process and checks
 * what the engine asked the movers to do, in which order, with which
 * fencing token -- the copy-on-write order written once in eio.c:
 *   write source, unsplit   lock, copy (READ src, WRITE tgt), FLUSH tgt,
 *                           commit, unlock, then WRITE src
 *   write target, partial   copy, WRITE tgt, FLUSH, commit
 *   write target, whole     WRITE tgt, FLUSH, commit (no copy)
 *   read target, unsplit    READ src, then the re-check; split meanwhile
 *                           (another client commits during the READ):
 *                           READ tgt for that grain
 *   multi-grain write       locks ascending, copies, ONE commit per run,
 *                           a partial last grain copied exactly
 *   concurrency             4 threads write one unsplit grain: one copy
 *   polled form             64 I/Os in flight on one thread, movers that
 *                           complete on a worker thread: each callback
 *                           exactly once; two I/Os of one thread on one
 *                           grain copy it once (locks are the I/O's)
 *   trace                   the hook sees every step in that order, once:
 *                           ATTEMPT (the pinned generation; a write may be
 *                           retagged there), LOCKED, the movers, COMMIT,
 *                           COMMITTED, UNLOCKED, ATTEMPT_END; a refused
 *                           token ends an attempt and the next is traced
 *   thread-exit             fm_engine_thread_exit refused with I/O in
 *                           flight; after it the thread's next I/O works
 *   thread-churn            threads that exit without fm_engine_thread_exit
 *                           give their lanes back: 12 threads one after
 *                           another on an agent of max_threads 2 all do
 *                           I/O; then rounds of threads exiting while the
 *                           engine and agent are deleted (for the
 *                           sanitizers: the exit's destructors and the
 *                           deletes stay apart)
 *   errors                  a mover's -EIO comes back, nothing committed,
 *                           the lock is free again; -EKEYREJECTED once is
 *                           retried; -ENOENT, -EINVAL, -ERANGE
 *   by-message              a second client whose agent decides by message
 *                           (SPLIT_QUERY, LOCK_REQUEST, UNLOCK: the
 *                           benchmarks' lock-manager baseline) and this one
 *                           (one-sided) do random I/O on one mapping: every
 *                           target read is the source at the trigger plus
 *                           the target writes, and afterwards its answer
 *                           for every grain is the bitmap as READ one-sided
 * Usage: test_engine CASE --owner PATH [--provider P --addr A]; CASE all
 * runs every case.  Exit 0 = pass.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "flashmeta/engine.h"
#include "flashmeta/error.h"
#include "svc_util.h"

#define GRAIN 65536u
#define NGRAINS 64u
#define VOLSZ ((uint64_t)NGRAINS * GRAIN - 4096) /* a partial last grain */
#define LOGMAX 4096

/* ------------------------------------------------------------ fake movers */

struct call {
	enum fm_mover_op op;
	uint64_t off, len, token;
	char vol;
};

struct fake {
	char name;                   /* 's' or 't' */
	uint8_t *data;
	uint64_t size;
	struct fake_log *log;
	/* faults: the next `fail_n` calls of `fail_op` fail with fail_rc */
	enum fm_mover_op fail_op;
	atomic_int fail_n;
	int fail_rc;
	/* a hook run inside a READ of `hook_off` (before the bytes are copied) */
	void (*hook)(void *arg);
	void *hook_arg;
	uint64_t hook_off;
	/* async: complete on the worker thread */
	bool async;
};

struct fake_log {
	pthread_mutex_t mu;
	struct call c[LOGMAX];
	int n;
};

static struct fake_log LOG = { .mu = PTHREAD_MUTEX_INITIALIZER };

/* the worker that completes async requests */
static pthread_mutex_t wq_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wq_cv = PTHREAD_COND_INITIALIZER;
static struct fm_mover_req *wq[1024];
static int wq_st[1024], wq_n;
static bool wq_stop;

static void *worker(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&wq_mu);
	while (!wq_stop) {
		while (wq_n) {
			struct fm_mover_req *r = wq[--wq_n];
			int st = wq_st[wq_n];

			pthread_mutex_unlock(&wq_mu);
			usleep(50);
			fm_mover_done(r, st);
			pthread_mutex_lock(&wq_mu);
		}
		pthread_cond_wait(&wq_cv, &wq_mu);
	}
	pthread_mutex_unlock(&wq_mu);
	return NULL;
}

static void logcall(struct fake *f, const struct fm_mover_req *r)
{
	pthread_mutex_lock(&LOG.mu);
	if (LOG.n < LOGMAX)
		LOG.c[LOG.n++] = (struct call){ r->op, r->offset, r->length, r->token, f->name };
	pthread_mutex_unlock(&LOG.mu);
}

/* the fakes' bytes: concurrent host writes may overlap (a disk orders
 * them; here a lock does) */
static pthread_mutex_t DATA_MU = PTHREAD_MUTEX_INITIALIZER;

static int fake_submit(void *ctx, struct fm_mover_req *r)
{
	struct fake *f = ctx;
	int st = 0;

	logcall(f, r);
	if (r->op == f->fail_op && atomic_load(&f->fail_n) > 0) {
		atomic_fetch_sub(&f->fail_n, 1);
		st = f->fail_rc;
	} else if (r->op == FM_MOVER_READ || r->op == FM_MOVER_WRITE) {
		if (r->offset > f->size || r->length > f->size - r->offset)
			st = -ERANGE;
		else if (r->op == FM_MOVER_READ) {
			if (f->hook && r->offset <= f->hook_off &&
			    f->hook_off < r->offset + r->length) {
				void (*h)(void *) = f->hook;

				f->hook = NULL;
				h(f->hook_arg);
			}
			pthread_mutex_lock(&DATA_MU);
			memcpy(r->buf, f->data + r->offset, r->length);
			pthread_mutex_unlock(&DATA_MU);
		} else {
			pthread_mutex_lock(&DATA_MU);
			memcpy(f->data + r->offset, r->buf, r->length);
			pthread_mutex_unlock(&DATA_MU);
		}
	} else if (r->op == FM_MOVER_COPY) {
		struct fake *src = NULL;

		(void)src;
		st = -EOPNOTSUPP;
	}
	if (f->async) {
		pthread_mutex_lock(&wq_mu);
		wq[wq_n] = r;
		wq_st[wq_n++] = st;
		pthread_cond_signal(&wq_cv);
		pthread_mutex_unlock(&wq_mu);
		return 0;
	}
	fm_mover_done(r, st);
	return 0;
}

static const struct fm_mover_ops FAKE_OPS = { .submit = fake_submit };

/* ---------------------------------------------------------------- setup */

static struct svc S;
static struct fm_agent *A;
static struct fm_engine *E;
static int next_map = 10;

struct mapping {
	int id;
	struct fake src, tgt;
	struct fm_volume *vs, *vt;
};

static void log_reset(void)
{
	pthread_mutex_lock(&LOG.mu);
	LOG.n = 0;
	pthread_mutex_unlock(&LOG.mu);
}

/* every mapping of the run: their volumes stay registered with the
 * engine until it is deleted, so they live as long as it */
static struct mapping MAPS[16];
static int NMAPS;

/* a new COPYING mapping with volumes: the source holds byte i = g + 1 in
 * grain g, the target zeros */
static int mapping_init(struct mapping *m)
{
	char out[4096];
	struct fm_agent_map am;
	uint64_t end;

	memset(m, 0, sizeof(*m));
	m->id = next_map++;
	m->src = (struct fake){ .name = 's', .size = VOLSZ, .data = malloc(VOLSZ) };
	m->tgt = (struct fake){ .name = 't', .size = VOLSZ, .data = calloc(1, VOLSZ) };
	CHECK(m->src.data && m->tgt.data);
	for (uint64_t i = 0; i < VOLSZ; i++)
		m->src.data[i] = (uint8_t)(i / GRAIN + 1);
	CHECK(svc_ctl(&S, out, sizeof(out), "map-create %d %d %d %" PRIu64 " %u", m->id,
		      2 * m->id, 2 * m->id + 1, VOLSZ, GRAIN) == 0);
	CHECK(svc_ctl(&S, out, sizeof(out), "map-prepare %d", m->id) == 0);
	CHECK(svc_ctl(&S, out, sizeof(out), "map-start %d", m->id) == 0);
	CHECK(fm_engine_volume_add(E, &FAKE_OPS, &m->src, VOLSZ, &m->vs) == 0);
	CHECK(fm_engine_volume_add(E, &FAKE_OPS, &m->tgt, VOLSZ, &m->vt) == 0);
	CHECK(fm_engine_attach(E, (uint64_t)m->id, m->vs, m->vt) == 0);
	end = mono_ms() + 8000;
	while (mono_ms() < end) {
		if (!fm_agent_map_get(A, (uint64_t)m->id, &am) && am.granted &&
		    am.state == FM_MAP_COPYING)
			break;
		usleep(2000);
	}
	CHECK(am.granted && am.state == FM_MAP_COPYING);
	log_reset();
	return 0;
}

/* mapping_init in a slot of MAPS; NULL on failure */
static struct mapping *mapping_new(void)
{
	if (NMAPS == (int)(sizeof(MAPS) / sizeof(MAPS[0])))
		return NULL;
	return mapping_init(&MAPS[NMAPS++]) ? NULL : &MAPS[NMAPS - 1];
}

/* the owner's bitmap bit of grain g */
static int split_bit(int map, uint64_t g)
{
	uint8_t b;

	if (fm_agent_read_bitmap(A, (uint64_t)map, g / 8, &b, 1))
		return -1;
	return b >> (g % 8) & 1;
}

/* index of the first logged call matching, from `from`; -1 none */
static int find(int from, char vol, enum fm_mover_op op, uint64_t off)
{
	for (int i = from; i < LOG.n; i++)
		if (LOG.c[i].vol == vol && LOG.c[i].op == op &&
		    (off == UINT64_MAX || LOG.c[i].off == off))
			return i;
	return -1;
}

static int count(char vol, enum fm_mover_op op)
{
	int n = 0;

	for (int i = 0; i < LOG.n; i++)
		n += LOG.c[i].vol == vol && LOG.c[i].op == op;
	return n;
}

/* ---------------------------------------------------------------- trace */

#define TRMAX 256
static struct fm_engine_event TR[TRMAX];
static uint64_t TR_GEN[TRMAX];
static int TR_N;
static atomic_bool TR_ON;
static uint8_t TR_RETAG;  /* ATTEMPT of a write: fill the buffer with this */

static void tracer(void *ctx, struct fm_engine_io *io, const struct fm_engine_event *ev)
{
	(void)ctx;
	if (!atomic_load(&TR_ON) || TR_N == TRMAX)
		return;
	TR[TR_N] = *ev;
	TR_GEN[TR_N] = ev->map ? ev->map->generation : 0;
	TR[TR_N].map = NULL;
	TR[TR_N].req = NULL;
	TR_N++;
	if (ev->kind == FM_ENGINE_EV_ATTEMPT && TR_RETAG &&
	    (io->op == FM_IO_WRITE_SOURCE || io->op == FM_IO_WRITE_TARGET))
		memset(io->buf, TR_RETAG + (int)ev->attempt, io->length);
}

static void dump(const char *why)
{
	static const char *names[] = { "?", "read", "write", "flush", "copy" };

	fprintf(stderr, "%s: %d mover calls\n", why, LOG.n);
	for (int i = 0; i < LOG.n; i++)
		fprintf(stderr, "  %c %-5s off %" PRIu64 " len %" PRIu64 " token %" PRIx64 "\n",
			LOG.c[i].vol, names[LOG.c[i].op], LOG.c[i].off, LOG.c[i].len,
			LOG.c[i].token);
}

/* ---------------------------------------------------------------- cases */

static int case_write_source(void)
{
	struct mapping *m;
	struct fm_engine_io_stats st;
	uint8_t buf[4096];
	uint64_t g = 3, off = g * GRAIN + 8192;
	int r, w, f, sw;

	CHECK((m = mapping_new()) != NULL);
	memset(buf, 0xab, sizeof(buf));
	CHECK(fm_engine_rw(E, (uint64_t)m->id, FM_IO_WRITE_SOURCE, off, sizeof(buf), buf, &st) == 0);
	r = find(0, 's', FM_MOVER_READ, g * GRAIN);
	w = find(0, 't', FM_MOVER_WRITE, g * GRAIN);
	f = find(0, 't', FM_MOVER_FLUSH, UINT64_MAX);
	sw = find(0, 's', FM_MOVER_WRITE, off);
	if (!(r >= 0 && w > r && f > w && sw > f)) {
		dump("write-source");
		CHECK(!"order: copy READ src, WRITE tgt, FLUSH tgt, then WRITE src");
	}
	CHECK(LOG.c[w].len == GRAIN && LOG.c[w].token && LOG.c[w].token == LOG.c[sw].token);
	CHECK(LOG.c[r].token == 0);
	CHECK(st.locks == 1 && st.copies == 1 && st.commits == 1);
	/* the target holds the old grain, the source the new bytes; split */
	CHECK(m->tgt.data[g * GRAIN] == g + 1 && m->tgt.data[off] == g + 1);
	CHECK(m->src.data[off] == 0xab && m->src.data[off - 1] == g + 1);
	CHECK(split_bit(m->id, g) == 1);
	/* again: split now -- no lock, no copy, no flush */
	log_reset();
	CHECK(fm_engine_rw(E, (uint64_t)m->id, FM_IO_WRITE_SOURCE, off, sizeof(buf), buf, &st) == 0);
	CHECK(LOG.n == 1 && st.locks == 0 && st.copies == 0);
	return 0;
}

static int case_write_target(void)
{
	struct mapping *m;
	struct fm_engine_io_stats st;
	uint8_t *buf = malloc(GRAIN);
	int r, w, f;

	CHECK(buf && (m = mapping_new()) != NULL);
	/* partial: copy the grain in, then write over it */
	memset(buf, 0x5a, 512);
	CHECK(fm_engine_rw(E, (uint64_t)m->id, FM_IO_WRITE_TARGET, 5 * GRAIN + 512, 512, buf,
			   &st) == 0);
	r = find(0, 's', FM_MOVER_READ, 5 * GRAIN);
	w = find(0, 't', FM_MOVER_WRITE, 5 * GRAIN);
	f = find(0, 't', FM_MOVER_FLUSH, UINT64_MAX);
	CHECK(r >= 0 && w > r && find(w, 't', FM_MOVER_WRITE, 5 * GRAIN + 512) > w && f > w);
	CHECK(m->tgt.data[5 * GRAIN] == 6 && m->tgt.data[5 * GRAIN + 512] == 0x5a &&
	      m->tgt.data[5 * GRAIN + 1024] == 6);
	CHECK(st.copies == 1 && split_bit(m->id, 5) == 1);
	/* whole grain: no copy */
	log_reset();
	memset(buf, 0x77, GRAIN);
	CHECK(fm_engine_rw(E, (uint64_t)m->id, FM_IO_WRITE_TARGET, 7 * GRAIN, GRAIN, buf, &st) ==
	      0);
	CHECK(count('s', FM_MOVER_READ) == 0 && count('t', FM_MOVER_WRITE) == 1 &&
	      count('t', FM_MOVER_FLUSH) == 1 && st.copies == 0 && st.commits == 1);
	CHECK(split_bit(m->id, 7) == 1 && m->tgt.data[7 * GRAIN + 100] == 0x77);
	free(buf);
	return 0;
}

/* another client commits grain RG while our READ of the source runs */
#define RG 9
struct racer {
	struct fm_agent *b;
	int map;
	int rc;
};

static void race_commit(void *arg)
{
	struct racer *x = arg;

	x->rc = fm_agent_lock(x->b, (uint64_t)x->map, RG);
	if (x->rc == 0)
		x->rc = fm_agent_commit_split(x->b, (uint64_t)x->map, RG);
}

static int case_read_recheck(void)
{
	struct mapping *m;
	struct racer x = { 0 };
	uint8_t *buf = malloc(2 * GRAIN);

	CHECK(buf && (m = mapping_new()) != NULL);
	/* plain: an unsplit grain reads from the source */
	CHECK(fm_engine_rw(E, (uint64_t)m->id, FM_IO_READ_TARGET, 2 * GRAIN, 4096, buf, NULL) == 0);
	CHECK(buf[0] == 3 && count('t', FM_MOVER_READ) == 0);
	/* the race: the grain is split (its target copy written and
	 * committed by client B, target byte changed) during our source READ */
	x.b = svc_agent(&S, 2, NULL);
	x.map = m->id;
	CHECK(fm_agent_wait_active(x.b, 8000) == 0);
	m->tgt.data[RG * GRAIN] = 0xee; /* B's "copy" plus its own target write */
	m->src.hook = race_commit;
	m->src.hook_arg = &x;
	m->src.hook_off = RG * GRAIN;
	log_reset();
	CHECK(fm_engine_rw(E, (uint64_t)m->id, FM_IO_READ_TARGET, (RG - 1) * GRAIN, 2 * GRAIN, buf,
			   NULL) == 0);
	CHECK(x.rc == 0);
	/* grain RG-1 from the source; RG from the target (split meanwhile) */
	CHECK(buf[0] == RG && buf[GRAIN] == 0xee);
	CHECK(find(find(0, 's', FM_MOVER_READ, UINT64_MAX), 't', FM_MOVER_READ, RG * GRAIN) >= 0);
	fm_agent_delete(&x.b);
	free(buf);
	return 0;
}

static int case_multi_grain(void)
{
	struct mapping *m;
	struct fm_engine_io_stats st;
	struct fm_engine_stats es0, es1;
	uint64_t first = NGRAINS - 4, len = VOLSZ - first * GRAIN; /* to the volume end */
	uint8_t *buf = malloc(len);

	CHECK(buf && (m = mapping_new()) != NULL);
	memset(buf, 0x11, len);
	fm_engine_stats(E, &es0);
	CHECK(fm_engine_rw(E, (uint64_t)m->id, FM_IO_WRITE_SOURCE, first * GRAIN + 512, len - 512,
			   buf, &st) == 0);
	fm_engine_stats(E, &es1);
	CHECK(st.locks == 4 && st.copies == 4);
	CHECK(st.commits == 1); /* one run: one SPLIT_COMMIT */
	CHECK(es1.commits - es0.commits == 1);
	/* the partial last grain: copied exactly to the volume end */
	CHECK(find(0, 't', FM_MOVER_WRITE, (NGRAINS - 1) * GRAIN) >= 0);
	CHECK(LOG.c[find(0, 't', FM_MOVER_WRITE, (NGRAINS - 1) * GRAIN)].len == GRAIN - 4096);
	for (uint64_t g = first; g < NGRAINS; g++)
		CHECK(split_bit(m->id, g) == 1 && m->tgt.data[g * GRAIN + 600] == g + 1);
	CHECK(m->src.data[first * GRAIN + 600] == 0x11 && m->src.data[first * GRAIN] == first + 1);
	free(buf);
	return 0;
}

struct conc {
	int map;
	int rc;
};

static void *conc_writer(void *arg)
{
	struct conc *c = arg;
	uint8_t buf[512];

	memset(buf, 0x42, sizeof(buf));
	c->rc = fm_engine_rw(E, (uint64_t)c->map, FM_IO_WRITE_SOURCE, 20 * GRAIN + 1024,
			     sizeof(buf), buf, NULL);
	if (fm_engine_thread_exit(E))
		c->rc = -EBUSY;
	return NULL;
}

static int case_concurrent(void)
{
	struct mapping *m;
	struct conc c[4];
	pthread_t t[4];

	CHECK((m = mapping_new()) != NULL);
	for (int i = 0; i < 4; i++) {
		c[i] = (struct conc){ .map = m->id };
		CHECK(pthread_create(&t[i], NULL, conc_writer, &c[i]) == 0);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(t[i], NULL);
		CHECK(c[i].rc == 0);
	}
	/* one copy of grain 20: exactly one READ of it from the source */
	{
		int reads = 0;

		for (int i = 0; i < LOG.n; i++)
			reads += LOG.c[i].vol == 's' && LOG.c[i].op == FM_MOVER_READ &&
				 LOG.c[i].off == 20 * GRAIN;
		if (reads != 1)
			dump("concurrent");
		CHECK(reads == 1);
	}
	CHECK(m->tgt.data[20 * GRAIN + 1024] == 21 && split_bit(m->id, 20) == 1);
	return 0;
}

struct polled {
	atomic_int calls[64];
	int status[64];
};

static void polled_done(struct fm_engine_io *io, int status)
{
	struct polled *p = io->ctx;
	int i = (int)(io->offset / GRAIN) % 64;

	atomic_fetch_add(&p->calls[i], 1);
	p->status[i] = status;
}

static int case_polled(void)
{
	struct mapping *m;
	static struct polled p;
	static struct fm_engine_io io[64];
	static uint8_t buf[64][512];
	pthread_t w;
	int done = 0;
	uint64_t end;

	CHECK((m = mapping_new()) != NULL);
	m->src.async = m->tgt.async = true;
	wq_stop = false;
	CHECK(pthread_create(&w, NULL, worker, NULL) == 0);
	memset(&p, 0, sizeof(p));
	for (int i = 0; i < 64; i++) {
		io[i] = (struct fm_engine_io){ .map_id = (uint64_t)m->id,
					       .op = i % 2 ? FM_IO_WRITE_SOURCE : FM_IO_READ_TARGET,
					       .offset = (uint64_t)i * GRAIN, .length = 512,
					       .buf = buf[i], .done = polled_done, .ctx = &p };
		if (i == NGRAINS - 1)
			io[i].length = 512; /* inside the partial last grain */
		CHECK(fm_engine_submit(E, &io[i]) == 0);
	}
	end = mono_ms() + 20000;
	while (done < 64 && mono_ms() < end) {
		int to, fd;

		done += fm_engine_poll(E);
		fd = fm_engine_fd(E, &to);
		if (fd >= 0 && to != 0)
			usleep(200);
	}
	pthread_mutex_lock(&wq_mu);
	wq_stop = true;
	pthread_cond_signal(&wq_cv);
	pthread_mutex_unlock(&wq_mu);
	pthread_join(w, NULL);
	CHECK(done == 64);
	for (int i = 0; i < 64; i++) {
		CHECK(atomic_load(&p.calls[i]) == 1);
		CHECK(p.status[i] == 0);
	}
	/* every odd grain split, copied once; reads saw the source bytes */
	for (int i = 0; i < 64; i++) {
		if (i % 2)
			CHECK(split_bit(m->id, (uint64_t)i) == 1);
		else
			CHECK(buf[i][0] == (uint8_t)(i + 1));
	}
	usleep(100000); /* stragglers would show as a second callback */
	(void)fm_engine_poll(E);
	for (int i = 0; i < 64; i++)
		CHECK(atomic_load(&p.calls[i]) == 1);
	return 0;
}

/* two I/Os of one thread on one unsplit grain, in flight together: the
 * second waits for the first's lock (locks belong to an I/O, not to the
 * thread) and finds the grain split -- one copy */
static int case_polled_same_grain(void)
{
	struct mapping *m;
	static struct polled p;
	static struct fm_engine_io io[2];
	static uint8_t buf[2][512];
	int done = 0, reads = 0;
	uint64_t end;

	CHECK((m = mapping_new()) != NULL);
	memset(&p, 0, sizeof(p));
	for (int i = 0; i < 2; i++) {
		io[i] = (struct fm_engine_io){ .map_id = (uint64_t)m->id, .op = FM_IO_WRITE_SOURCE,
					       .offset = 40 * GRAIN + (uint64_t)i * 512,
					       .length = 512, .buf = buf[i], .done = polled_done,
					       .ctx = &p };
		CHECK(fm_engine_submit(E, &io[i]) == 0);
	}
	end = mono_ms() + 10000;
	while (done < 2 && mono_ms() < end) {
		done += fm_engine_poll(E);
		usleep(100);
	}
	CHECK(done == 2 && p.status[40] == 0);
	for (int i = 0; i < LOG.n; i++)
		reads += LOG.c[i].vol == 's' && LOG.c[i].op == FM_MOVER_READ &&
			 LOG.c[i].off == 40 * GRAIN;
	if (reads != 1)
		dump("polled-same-grain");
	CHECK(reads == 1);
	return 0;
}

static int case_errors(void)
{
	struct mapping *m;
	struct fm_engine_io_stats st;
	uint8_t buf[512] = { 0 };

	CHECK((m = mapping_new()) != NULL);
	/* a copy WRITE fails: -EIO to the caller, nothing committed, the
	 * lock free again (the next write takes it and succeeds) */
	m->tgt.fail_op = FM_MOVER_WRITE;
	m->tgt.fail_rc = -EIO;
	atomic_store(&m->tgt.fail_n, 1);
	CHECK(fm_engine_rw(E, (uint64_t)m->id, FM_IO_WRITE_SOURCE, 30 * GRAIN, 512, buf, &st) ==
	      -EIO);
	CHECK(split_bit(m->id, 30) == 0 && count('s', FM_MOVER_WRITE) == 0);
	CHECK(fm_engine_rw(E, (uint64_t)m->id, FM_IO_WRITE_SOURCE, 30 * GRAIN, 512, buf, &st) == 0);
	CHECK(split_bit(m->id, 30) == 1);
	/* a refused fencing token, once: retried, done */
	m->tgt.fail_rc = -EKEYREJECTED;
	atomic_store(&m->tgt.fail_n, 1);
	CHECK(fm_engine_rw(E, (uint64_t)m->id, FM_IO_WRITE_SOURCE, 31 * GRAIN, 512, buf, &st) == 0);
	CHECK(st.attempts == 2 && split_bit(m->id, 31) == 1);
	/* the engine's mistakes */
	CHECK(fm_engine_rw(E, 999, FM_IO_READ_SOURCE, 0, 512, buf, NULL) == -ENOENT);
	CHECK(fm_engine_rw(E, (uint64_t)m->id, FM_IO_READ_SOURCE, 0, 0, buf, NULL) == -EINVAL);
	CHECK(fm_engine_rw(E, (uint64_t)m->id, FM_IO_READ_SOURCE, 0, 512, NULL, NULL) == -EINVAL);
	CHECK(fm_engine_rw(E, (uint64_t)m->id, FM_IO_READ_SOURCE, VOLSZ, 512, buf, NULL) ==
	      -ERANGE);
	return 0;
}

/* the events of one traced write: "A L r w f C c U W E" (kind letters,
 * movers by step) */
static void trace_string(char *out, size_t n)
{
	static const char kinds[] = "?AMLCcUE";
	static const char steps[] = "?dRTrwptfW"; /* by enum fm_engine_step */
	size_t k = 0;

	for (int i = 0; i < TR_N && k + 2 < n; i++) {
		out[k++] = TR[i].kind == FM_ENGINE_EV_MOVER ? steps[TR[i].step] : kinds[TR[i].kind];
		out[k++] = ' ';
	}
	out[k ? k - 1 : 0] = 0;
}

static int case_trace(void)
{
	struct mapping *m;
	struct fm_agent_map am;
	struct fm_engine_io_stats st;
	uint8_t buf[512];
	char seq[512];

	CHECK((m = mapping_new()) != NULL);
	CHECK(fm_agent_map_get(A, (uint64_t)m->id, &am) == 0);
	memset(buf, 0x11, sizeof(buf));
	TR_N = 0;
	TR_RETAG = 0x40;
	atomic_store(&TR_ON, true);
	CHECK(fm_engine_rw(E, (uint64_t)m->id, FM_IO_WRITE_SOURCE, 9 * GRAIN, 512, buf, &st) == 0);
	atomic_store(&TR_ON, false);
	trace_string(seq, sizeof(seq));
	/* attempt, locked, copy read + write, flush, commit, committed,
	 * unlocked, the source write, end */
	if (strcmp(seq, "A L r w f C c U W E")) {
		fprintf(stderr, "trace: %s\n", seq);
		CHECK(!"trace order of a source write");
	}
	CHECK(TR_GEN[0] == am.generation && TR[0].attempt == 1);
	CHECK(TR[1].first == 9 && !TR[1].split && TR[5].first == 9 && TR[5].last == 9);
	CHECK(TR[6].rc == 0 && TR[9].rc == 0);
	CHECK(m->src.data[9 * GRAIN] == 0x41 && m->tgt.data[9 * GRAIN] == 10); /* retagged */
	/* a refused token on the copy write: that attempt ends with it, the
	 * next one is traced from ATTEMPT again and completes */
	m->tgt.fail_op = FM_MOVER_WRITE;
	m->tgt.fail_rc = -EKEYREJECTED;
	atomic_store(&m->tgt.fail_n, 1);
	TR_N = 0;
	atomic_store(&TR_ON, true);
	CHECK(fm_engine_rw(E, (uint64_t)m->id, FM_IO_WRITE_SOURCE, 12 * GRAIN, 512, buf, &st) == 0);
	atomic_store(&TR_ON, false);
	TR_RETAG = 0;
	trace_string(seq, sizeof(seq));
	if (strcmp(seq, "A L r w U E A L r w f C c U W E")) {
		fprintf(stderr, "trace: %s\n", seq);
		CHECK(!"trace of a retried attempt");
	}
	CHECK(TR[5].rc == -EKEYREJECTED && TR[6].attempt == 2 && st.attempts == 2);
	CHECK(m->src.data[12 * GRAIN] == 0x42); /* the second attempt's data */
	return 0;
}

/* fm_engine_thread_exit: refused while this thread has I/O in flight;
 * after it, the same thread's next I/O makes new contexts and works */
static void te_done(struct fm_engine_io *io, int status)
{
	(void)status;
	*(int *)io->ctx += 1;
}

static int case_thread_exit(void)
{
	struct mapping *m;
	struct fm_engine_io io;
	uint8_t buf[512];
	int calls = 0;

	CHECK((m = mapping_new()) != NULL);
	memset(buf, 0x21, sizeof(buf));
	io = (struct fm_engine_io){ .map_id = (uint64_t)m->id, .op = FM_IO_WRITE_SOURCE,
				    .offset = 2 * GRAIN, .length = sizeof(buf), .buf = buf,
				    .done = te_done, .ctx = &calls };
	CHECK(fm_engine_submit(E, &io) == 0);
	CHECK(fm_engine_thread_exit(E) == -EBUSY); /* in flight: nothing freed */
	while (!calls)
		(void)fm_engine_poll(E);
	CHECK(io.status == 0 && calls == 1);
	CHECK(fm_engine_thread_exit(E) == 0);
	CHECK(fm_engine_thread_exit(E) == 0); /* nothing left: a no-op */
	/* the same thread again: new contexts, a copy-on-write that works */
	CHECK(fm_engine_rw(E, (uint64_t)m->id, FM_IO_WRITE_SOURCE, 3 * GRAIN, sizeof(buf), buf,
			   NULL) == 0);
	CHECK(split_bit(m->id, 3) == 1 && m->tgt.data[3 * GRAIN] == 4);
	return 0;
}

/* thread-churn: one I/O on a thread that then just returns */
struct churn {
	struct fm_engine *e;
	uint64_t map_id, grain;
	int rc;
	atomic_int *done; /* detached rounds: set after the I/O */
};

static void *churn_main(void *arg)
{
	struct churn *c = arg;
	uint8_t buf[512];

	memset(buf, 0x5a, sizeof(buf));
	c->rc = fm_engine_rw(c->e, c->map_id, FM_IO_WRITE_SOURCE, c->grain * GRAIN, sizeof(buf),
			     buf, NULL);
	if (c->done)
		atomic_fetch_add(c->done, 1);
	return NULL; /* no fm_engine_thread_exit: the exit cleans up */
}

static int case_thread_churn(void)
{
	struct fm_agent_cfg acfg = { .client_id = 3, .max_threads = 2 };
	struct fm_agent *b = svc_agent_cfg(&S, &acfg, NULL);
	struct fm_engine_cfg ecfg = { .agent = b, .retry_ms = 5000 };
	struct fm_engine *eb = NULL;
	struct fm_volume *vs, *vt;
	struct mapping *m;
	int rc = 1;

	CHECK(b && fm_agent_wait_active(b, 8000) == 0);
	CHECK(fm_engine_new(&ecfg, &eb) == 0);
	CHECK((m = mapping_new()) != NULL);
	CHECK(fm_engine_volume_add(eb, &FAKE_OPS, &m->src, VOLSZ, &vs) == 0);
	CHECK(fm_engine_volume_add(eb, &FAKE_OPS, &m->tgt, VOLSZ, &vt) == 0);
	CHECK(fm_engine_attach(eb, (uint64_t)m->id, vs, vt) == 0);
	{ /* the shared engine sees the mapping too (main's stats check) */
		struct churn c = { .e = E, .map_id = (uint64_t)m->id, .grain = 50 };

		(void)churn_main(&c);
		CHECK(c.rc == 0);
	}
	/* more threads than lanes, one after another: each exit gives its
	 * lane back (before, the third thread's I/O failed -ENOSPC) */
	for (uint64_t i = 0; i < 12; i++) {
		struct churn c = { .e = eb, .map_id = (uint64_t)m->id, .grain = i };
		pthread_t t;

		CHECK(pthread_create(&t, NULL, churn_main, &c) == 0);
		CHECK(pthread_join(t, NULL) == 0);
		if (c.rc) {
			fprintf(stderr, "thread-churn: thread %" PRIu64 ": %d (%s)\n", i, c.rc,
				fm_errormsg());
			goto out;
		}
		CHECK(split_bit(m->id, i) == 1);
	}
	rc = 0;
out:
	fm_engine_delete(&eb);
	fm_agent_delete(&b);
	if (rc)
		return rc;
	/* threads still exiting (their destructors running or to come) while
	 * the engine and the agent are deleted */
	for (int round = 0; round < 6; round++) {
		struct churn c[3];
		atomic_int done = 0;

		acfg = (struct fm_agent_cfg){ .client_id = 3, .max_threads = 4 };
		b = svc_agent_cfg(&S, &acfg, NULL);
		ecfg.agent = b;
		CHECK(fm_agent_wait_active(b, 8000) == 0);
		CHECK(fm_engine_new(&ecfg, &eb) == 0);
		CHECK(fm_engine_volume_add(eb, &FAKE_OPS, &m->src, VOLSZ, &vs) == 0);
		CHECK(fm_engine_volume_add(eb, &FAKE_OPS, &m->tgt, VOLSZ, &vt) == 0);
		CHECK(fm_engine_attach(eb, (uint64_t)m->id, vs, vt) == 0);
		for (int i = 0; i < 3; i++) {
			pthread_attr_t at;
			pthread_t t;

			c[i] = (struct churn){ .e = eb, .map_id = (uint64_t)m->id,
					       .grain = 20 + (uint64_t)(round * 3 + i), .done = &done };
			pthread_attr_init(&at);
			pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
			CHECK(pthread_create(&t, &at, churn_main, &c[i]) == 0);
			pthread_attr_destroy(&at);
		}
		while (atomic_load(&done) < 3)
			usleep(100);
		for (int i = 0; i < 3; i++)
			CHECK(c[i].rc == 0);
		fm_engine_delete(&eb);
		fm_agent_delete(&b);
	}
	usleep(20000); /* the last round's threads are gone */
	return 0;
}

/* grain g of the target as it must read: the source at the trigger
 * (byte g + 1) under the target writes of this case (wt: 0 = none) */
static uint8_t by_msg_want(const uint8_t *wt, uint64_t off)
{
	return wt[off] ? wt[off] : (uint8_t)(off / GRAIN + 1);
}

static int case_by_message(void)
{
	struct fm_agent *b = svc_agent_mode(&S, 2, NULL, true);
	struct fm_engine_cfg ecfg = { .agent = b, .retry_ms = 5000 };
	struct fm_engine *eb = NULL;
	struct fm_volume *vs, *vt;
	struct fm_agent_stats ast;
	struct fm_engine_io_stats st;
	struct mapping *m;
	uint64_t seed = 12345, locks_b = 0, split_n = 0;
	uint8_t *wt = calloc(1, VOLSZ), buf[8192];
	int rc = 1;

	CHECK(wt && b && fm_agent_wait_active(b, 8000) == 0);
	CHECK(fm_engine_new(&ecfg, &eb) == 0);
	CHECK((m = mapping_new()) != NULL);
	CHECK(fm_engine_volume_add(eb, &FAKE_OPS, &m->src, VOLSZ, &vs) == 0);
	CHECK(fm_engine_volume_add(eb, &FAKE_OPS, &m->tgt, VOLSZ, &vt) == 0);
	CHECK(fm_engine_attach(eb, (uint64_t)m->id, vs, vt) == 0);
	for (int i = 0; i < 400; i++) {
		struct fm_engine *e = rnd(&seed) % 2 ? eb : E;
		uint64_t len = 512 * (1 + rnd(&seed) % 16);
		uint64_t off = (rnd(&seed) % (VOLSZ / 512)) * 512;
		unsigned k = (unsigned)(rnd(&seed) % 4);

		if (off + len > VOLSZ)
			len = VOLSZ - off;
		if (k == 0) { /* write the source */
			memset(buf, 0x80 + i % 64, len);
			CHECK(fm_engine_rw(e, (uint64_t)m->id, FM_IO_WRITE_SOURCE, off, len, buf,
					   &st) == 0);
		} else if (k == 1) { /* write the target */
			memset(buf, 0x40 + i % 32, len);
			CHECK(fm_engine_rw(e, (uint64_t)m->id, FM_IO_WRITE_TARGET, off, len, buf,
					   &st) == 0);
			memset(wt + off, 0x40 + i % 32, len);
		} else { /* read the target: the image */
			CHECK(fm_engine_rw(e, (uint64_t)m->id, FM_IO_READ_TARGET, off, len, buf,
					   &st) == 0);
			for (uint64_t j = 0; j < len; j++)
				if (buf[j] != by_msg_want(wt, off + j)) {
					fprintf(stderr, "by-message: I/O %d (%s engine) target byte "
						"%" PRIu64 " is %u, want %u\n", i,
						e == eb ? "message" : "one-sided", off + j, buf[j],
						by_msg_want(wt, off + j));
					goto out;
				}
		}
		if (e == eb)
			locks_b += st.locks;
	}
	/* the owner's answers are the bitmap as anyone READs it */
	for (uint64_t g = 0; g < NGRAINS; g++) {
		int one_sided = split_bit(m->id, g);

		if (one_sided < 0 || fm_agent_is_split(b, (uint64_t)m->id, g) != one_sided) {
			fprintf(stderr, "by-message: grain %" PRIu64 ": READ %d, answer %d\n", g,
				one_sided, fm_agent_is_split(b, (uint64_t)m->id, g));
			goto out;
		}
		split_n += (uint64_t)one_sided;
	}
	fm_agent_stats(b, &ast);
	/* it decided by message: answers counted, nothing cached, its writes
	 * locked (through LOCK_REQUEST); some grains split, some not */
	if (ast.fetches < NGRAINS || ast.cache.hits || !locks_b || !split_n ||
	    split_n == NGRAINS) {
		fprintf(stderr, "by-message: fetches %" PRIu64 " hits %" PRIu64 " locks %" PRIu64
			" split %" PRIu64 "\n", ast.fetches, ast.cache.hits, locks_b, split_n);
		goto out;
	}
	rc = 0;
out:
	fm_engine_delete(&eb);
	fm_agent_delete(&b);
	free(wt);
	return rc;
}

static const struct {
	const char *name;
	int (*fn)(void);
} CASES[] = {
	{ "write-source", case_write_source }, { "write-target", case_write_target },
	{ "read-recheck", case_read_recheck }, { "multi-grain", case_multi_grain },
	{ "concurrent", case_concurrent },     { "polled", case_polled },
	{ "polled-same-grain", case_polled_same_grain }, { "errors", case_errors },
	{ "trace", case_trace },       { "thread-exit", case_thread_exit },
	{ "thread-churn", case_thread_churn },
	{ "by-message", case_by_message },
};

int main(int argc, char **argv)
{
	const char *which = argc > 1 ? argv[1] : "all";
	struct fm_engine_cfg ecfg = { 0 };
	int fails = 0, ran = 0;

	svc_init(&S, argc, argv, "engine");
	svc_owner_start(&S);
	A = svc_agent(&S, 1, NULL);
	if (fm_agent_wait_active(A, 8000))
		DIE("no session: %s", fm_errormsg());
	{ /* the lease as the agent reports it */
		struct fm_agent_stats st;

		fm_agent_stats(A, &st);
		if (st.lease_term_ms != S.lease_ms || st.lease_left_ms == 0 ||
		    st.lease_left_ms > st.lease_term_ms)
			DIE("lease: term %u left %" PRIu64 " (owner's term %u)", st.lease_term_ms,
			    st.lease_left_ms, S.lease_ms);
	}
	ecfg.agent = A;
	ecfg.retry_ms = 5000;
	ecfg.trace = tracer;
	if (fm_engine_new(&ecfg, &E))
		DIE("fm_engine_new: %s", fm_errormsg());
	for (size_t i = 0; i < sizeof(CASES) / sizeof(CASES[0]); i++) {
		if (strcmp(which, "all") && strcmp(which, CASES[i].name))
			continue;
		ran++;
		if (CASES[i].fn()) {
			fprintf(stderr, "engine %s: FAIL\n", CASES[i].name);
			fails++;
		} else {
			fprintf(stderr, "engine %s: ok\n", CASES[i].name);
		}
	}
	{ /* per-mapping counters add up to the engine's */
		struct fm_engine_stats all, one;
		uint64_t ios = 0, bytes = 0;

		fm_engine_stats(E, &all);
		for (int i = 0; i < NMAPS; i++) {
			if (fm_engine_map_stats(E, (uint64_t)MAPS[i].id, &one))
				DIE("map_stats %d: %s", MAPS[i].id, fm_errormsg());
			ios += one.ios;
			bytes += one.bytes_written;
		}
		if (ran && (ios != all.ios || bytes != all.bytes_written || all.ios == 0)) {
			fprintf(stderr, "engine stats: maps %" PRIu64 " I/Os %" PRIu64 " bytes, "
				"engine %" PRIu64 " / %" PRIu64 "\n", ios, bytes, all.ios,
				all.bytes_written);
			fails++;
		}
		if (fm_engine_map_stats(E, 999999, &one) != -ENOENT)
			fails++;
	}
	fm_engine_delete(&E);
	fm_agent_delete(&A);
	for (int i = 0; i < NMAPS; i++) {
		free(MAPS[i].src.data);
		free(MAPS[i].tgt.data);
	}
	if (svc_fini(&S))
		fails++;
	if (!ran)
		DIE("unknown case '%s'", which);
	return fails ? 1 : 0;
}
