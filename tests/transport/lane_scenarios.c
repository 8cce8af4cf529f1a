/* lane_scenarios.c -- the lane contract (transport.h, "lanes"), as
 * test_transport scenarios: owner and clients in separate processes, over
 * shm natively and over verbs in the cluster.
 *
 *   lane_inflight     one lane per participant (clients and the owner's
 *                     loopback) keeps it full of READ/CAS/FAA on words of its
 *                     own; every completion must come exactly once, with
 *                     its ctx, and with the result a reference model
 *                     predicts (operations of one lane execute in post
 *                     order: shm at the post, verbs in RC order); a post on
 *                     the full lane says -EAGAIN.
 *   lane_threads      4 threads x 1 lane per client, 2 on the owner's
 *                     loopback, hammer one FAA word and one CAS word while
 *                     each client's owning thread ping-pongs messages: the
 *                     FAA word must equal the FAAs done, the CAS word the
 *                     successful CASes (none lost); FAA results grow along
 *                     each lane.
 *   lane_event        the same in event mode: half the lanes wait in
 *                     fm_lane_wait, half sleep in their own poll() on
 *                     fm_lane_fd; the client's owning thread sleeps in its
 *                     own epoll on fm_ep_fd, as an agent's loop does, while
 *                     the lanes take completions and events off the shared
 *                     CQ (a lost wake-up would cost a 100 ms slice a ping).
 *   lane_peer_close   the owner closes under 4 hammering lanes; every
 *   lane_local_close  operation completes once, posts fail with -ENOTCONN
 *                     from then on; the client then reports over a second
 *                     connection and the owner's counter must lie between
 *                     the operations that completed with 0 and those plus
 *                     the ones with an error (shm: equal).  local_close: the
 *                     client's own thread deletes the endpoint first, the
 *                     lanes outlive it (the last one frees it).
 *   lane_fence        the owner fences a client under its lanes: its
 *                     counter stops; shm kills the client, verbs flushes its
 *                     lanes, which then report as above.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#include "scenario.h"

#define RD_LEN (64u << 10)   /* the owner's READ region */
#define AT_LEN (64u << 10)   /* the owner's ATOMIC region */
#define NWORDS 64u           /* lane_inflight: words per participant */
#define RD_MAX 512u          /* lane_inflight: longest READ */

static bool is_shm(void)
{
	return strcmp(cfg.provider, "shm") == 0;
}

static uint64_t xorshift(uint64_t *s)
{
	uint64_t x = *s;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return *s = x;
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* the owner's two regions: READ (pattern) and ATOMIC|READ (zeroed) */
struct owner_regions {
	struct fm_region *rd, *at;
	struct fm_region_desc d[2];
};

static int owner_regions(struct fm_transport *t, struct owner_regions *r)
{
	uint8_t *p;

	CHECK_RET(fm_region_new(t, RD_LEN, FM_ACCESS_REMOTE_READ, &r->rd), 0);
	CHECK_RET(fm_region_new(t, AT_LEN, FM_ACCESS_REMOTE_ATOMIC | FM_ACCESS_REMOTE_READ,
				&r->at), 0);
	p = fm_region_ptr(r->rd);
	for (uint64_t i = 0; i < RD_LEN; i++)
		p[i] = pattern(i);
	fm_region_desc(r->rd, &r->d[0]);
	fm_region_desc(r->at, &r->d[1]);
	return 0;
}

static void owner_regions_free(struct owner_regions *r)
{
	fm_region_delete(&r->rd);
	fm_region_delete(&r->at);
}

/* --------------------------------------------- scenario: lane_inflight */

struct op_rec {
	enum fm_lane_op op;
	int done;            /* completions seen: must end at exactly 1 */
	uint32_t word;
	uint64_t expect_old; /* the model's word before the operation */
	uint64_t rd_off;
	uint32_t rd_len, slot;
};

struct inflight {
	struct fm_lane *lane;
	struct fm_region *dst;
	const struct fm_region_desc *rd, *at;
	uint64_t model[NWORDS];
	uint32_t base;       /* first word of ours in the ATOMIC region */
	struct op_rec *recs;
	uint32_t nrecs, posted, completed;
	uint32_t *slots, nslots; /* free READ destination slots */
	uint64_t rng;
};

static int inflight_post(struct inflight *f)
{
	struct op_rec *r = &f->recs[f->posted];
	uint64_t x = xorshift(&f->rng);
	uint32_t w = (uint32_t)(x >> 8) % NWORDS;
	uint64_t off = (uint64_t)(f->base + w) * 8;

	memset(r, 0, sizeof(*r));
	r->word = w;
	r->expect_old = f->model[w];
	switch (x % 3) {
	case 0: {
		uint64_t add = xorshift(&f->rng);

		r->op = FM_LANE_FAA;
		CHECK_RET(fm_lane_post_faa(f->lane, f->at, off, add, r), 0);
		f->model[w] += add;
		break;
	}
	case 1: {
		bool hit = (x >> 40) & 1;
		uint64_t expect = hit ? f->model[w] : f->model[w] + 1;
		uint64_t desired = xorshift(&f->rng);

		r->op = FM_LANE_CAS;
		CHECK_RET(fm_lane_post_cas(f->lane, f->at, off, expect, desired, r), 0);
		if (hit)
			f->model[w] = desired;
		break;
	}
	default:
		r->op = FM_LANE_READ;
		r->rd_len = 1 + (uint32_t)(xorshift(&f->rng) % RD_MAX);
		r->rd_off = xorshift(&f->rng) % (RD_LEN - r->rd_len);
		CHECK(f->nslots > 0, "no READ slot free with the lane not full");
		r->slot = f->slots[--f->nslots];
		CHECK_RET(fm_lane_post_read(f->lane, f->dst, (size_t)r->slot * RD_MAX, f->rd,
					    r->rd_off, r->rd_len, r),
			  0);
		break;
	}
	f->posted++;
	return 0;
}

static int inflight_check(struct inflight *f, const struct fm_completion *c)
{
	struct op_rec *r = c->ctx;

	CHECK(r >= f->recs && r < f->recs + f->posted, "completion with an unknown ctx %p",
	      c->ctx);
	CHECK(r->done == 0, "operation %td completed twice", r - f->recs);
	r->done = 1;
	f->completed++;
	CHECK(c->status == 0, "operation %td: status %d", r - f->recs, c->status);
	CHECK(c->op == r->op, "operation %td: op %d, posted %d", r - f->recs, c->op, r->op);
	if (r->op == FM_LANE_READ) {
		const uint8_t *q = (const uint8_t *)fm_region_ptr(f->dst) + (size_t)r->slot * RD_MAX;

		for (uint32_t i = 0; i < r->rd_len; i++)
			CHECK(q[i] == pattern(r->rd_off + i), "READ %td byte %u", r - f->recs, i);
		f->slots[f->nslots++] = r->slot;
	} else {
		CHECK(c->old == r->expect_old,
		      "operation %td (%s on word %u): old %llx, the model says %llx",
		      r - f->recs, r->op == FM_LANE_CAS ? "CAS" : "FAA", r->word,
		      (unsigned long long)c->old, (unsigned long long)r->expect_old);
	}
	return 0;
}

static int inflight_poll(struct inflight *f, int n)
{
	struct fm_completion cs[16];
	int k = fm_lane_poll(f->lane, cs, n);

	CHECK(k >= 0 && k <= n, "fm_lane_poll(%d): %d", n, k);
	for (int i = 0; i < k; i++)
		if (inflight_check(f, &cs[i]))
			return -1;
	return k;
}

/* keep one lane full for `total` operations on words base..base+NWORDS-1 */
static int inflight_run(struct fm_transport *t, struct fm_ep *ep, const struct fm_region_desc *d,
			uint32_t base, uint32_t total, uint64_t seed)
{
	struct inflight f = {.rd = &d[0], .at = &d[1], .base = base, .rng = seed | 1};
	uint32_t depth, fulls = 0;
	struct fm_completion c;
	int ret = -1;

	CHECK_RET(fm_lane_new(ep, &f.lane), 0);
	depth = fm_lane_depth(f.lane);
	CHECK(depth >= 2 && fm_lane_outstanding(f.lane) == 0, "depth %u", depth);
	CHECK_RET(fm_region_new(t, (size_t)depth * RD_MAX, FM_ACCESS_LOCAL, &f.dst), 0);
	f.nrecs = total;
	f.recs = calloc(total, sizeof(*f.recs));
	f.slots = calloc(depth, sizeof(*f.slots));
	CHECK(f.recs && f.slots);
	for (uint32_t i = 0; i < depth; i++)
		f.slots[f.nslots++] = i;
	CHECK_RET(fm_lane_poll(f.lane, &c, 1), 0); /* nothing in flight */
	CHECK_RET(fm_lane_wait(f.lane, &c, 1, 10), 0);

	while (f.posted < total) {
		while (fm_lane_outstanding(f.lane) < depth && f.posted < total)
			if (inflight_post(&f))
				goto out;
		if (f.posted < total) {
			/* full: a valid post is refused, without a completion */
			CHECK(fm_lane_outstanding(f.lane) == depth, "outstanding %u",
			      fm_lane_outstanding(f.lane));
			CHECK_RET(fm_lane_post_faa(f.lane, f.at, (uint64_t)base * 8, 1, &f), -EAGAIN);
			fulls++;
		}
		CHECK_RET(fm_lane_poll(f.lane, &c, 0), 0);
		/* take a random few: the lane refills what they freed */
		do {
			int k = inflight_poll(&f, 1 + (int)(xorshift(&f.rng) % 16));

			if (k < 0)
				goto out;
			if (k == 0)
				sched_yield();
		} while (fm_lane_outstanding(f.lane) == depth);
	}
	while (fm_lane_outstanding(f.lane)) {
		int k = fm_lane_wait(f.lane, &c, 1, 20000);

		CHECK(k == 1, "fm_lane_wait: %d with %u in flight", k, fm_lane_outstanding(f.lane));
		if (inflight_check(&f, &c))
			goto out;
	}
	CHECK(f.completed == total, "%u of %u completed", f.completed, total);
	for (uint32_t i = 0; i < total; i++)
		CHECK(f.recs[i].done == 1, "operation %u: %d completions", i, f.recs[i].done);
	CHECK(fulls > 0, "the lane never filled up");
	/* the words hold what the model says (FAA 0 reads atomically) */
	for (uint32_t w = 0; w < NWORDS; w++) {
		uint64_t v;

		CHECK_RET(fm_ep_faa(ep, f.at, (uint64_t)(base + w) * 8, 0, &v), 0);
		CHECK(v == f.model[w], "word %u: %llx, the model says %llx", w,
		      (unsigned long long)v, (unsigned long long)f.model[w]);
	}
	ret = 0;
out:
	fm_lane_delete(&f.lane);
	CHECK(f.lane == NULL);
	fm_region_delete(&f.dst);
	free(f.recs);
	free(f.slots);
	return ret;
}

static uint32_t inflight_total(void)
{
	return (uint32_t)(cfg.iters > 200 ? cfg.iters : 200);
}

int lane_inflight_owner(struct ctx *c)
{
	struct fm_transport *t;
	struct fm_listener *l;
	struct owner_regions r;
	struct fm_ep *eps[64], *self;
	char buf[16];

	if (transport_open(&t, FM_WAIT_BUSY, 0) || owner_regions(t, &r))
		return -1;
	CHECK_RET(fm_listen(t, c->addr, &l), 0);
	CHECK_RET(fm_listener_loopback(l, &self), 0);
	if (accept_all(l, c->nclients, eps))
		return -1;
	for (int i = 0; i < c->nclients; i++)
		if (send_descs(eps[i], r.d, 2))
			return -1;
	/* the owner's own lane, on its loopback, words 0..NWORDS-1 */
	if (inflight_run(t, self, r.d, 0, inflight_total(), 12345))
		return -1;
	for (int i = 0; i < c->nclients; i++) {
		CHECK_RET(fm_ep_recv(eps[i], buf, sizeof(buf), 0), 4);
		CHECK(memcmp(buf, "done", 4) == 0);
	}
	for (int i = 0; i < c->nclients; i++) {
		if (wait_closed(eps[i]))
			return -1;
		fm_ep_delete(&eps[i]);
	}
	fm_ep_delete(&self);
	fm_listener_delete(&l);
	owner_regions_free(&r);
	fm_transport_delete(&t);
	return 0;
}

int lane_inflight_client(struct ctx *c)
{
	struct fm_transport *t;
	struct fm_region_desc d[2];
	struct fm_ep *ep;

	if (transport_open(&t, FM_WAIT_BUSY, 0) || connect_retry(t, c, NULL, &ep) ||
	    recv_descs(ep, d, 2))
		return -1;
	if (inflight_run(t, ep, d, (uint32_t)(1 + c->index) * NWORDS, inflight_total(),
			 0x9e3779b97f4a7c15ull * (uint64_t)(c->index + 1)))
		return -1;
	CHECK(fm_ep_state(ep, NULL) == FM_EP_UP);
	CHECK_RET(fm_ep_send(ep, "done", 4, 0), 0);
	fm_ep_delete(&ep);
	fm_transport_delete(&t);
	return 0;
}

/* ------------------------------------- scenarios: lane_threads, lane_event */

enum { W_FAA = 0, W_CAS = 8 }; /* byte offsets in the ATOMIC region */

struct hammer {
	pthread_t th;
	struct fm_ep *ep;
	const struct fm_region_desc *at;
	uint64_t faa_iters, cas_iters;
	bool wait;              /* event mode: fm_lane_wait when idle ... */
	bool own_loop;          /* ... or poll() on fm_lane_fd */
	bool posting_done;      /* counted out of hammers_posting */
	/* results */
	uint64_t faa_done, cas_won, cas_tries;
	int ret;
	char who[48];
};

/* hammers of this process still posting: the client's pings go on while
 * any does; once none does, the endpoint's CQ is quiet but for stray pings */
static _Atomic int hammers_posting;

/* FAA +1 pipelined up to the lane's depth - 1, one CAS chain (+1 on the
 * value last seen) beside it; counts what it did */
static int hammer_run(struct hammer *h)
{
	struct fm_lane *lane;
	struct fm_completion cs[16];
	uint64_t faa_posted = 0, cas_posted = 0, expect = 0, last_old = 0;
	bool cas_in = false, have_old = false;
	static char faa_tag, cas_tag;
	uint32_t depth;

	int fd = -1;

	whoami = h->who;
	CHECK_RET(fm_lane_new(h->ep, &lane), 0);
	depth = fm_lane_depth(lane);
	if (h->own_loop) {
		fd = fm_lane_fd(lane);
		CHECK(fd >= 0 || is_shm(), "fm_lane_fd: %d", fd); /* shm needs none */
	}
	while (h->faa_done < h->faa_iters || h->cas_tries < h->cas_iters) {
		int k;

		while (faa_posted < h->faa_iters &&
		       fm_lane_outstanding(lane) + 1 < depth) {
			CHECK_RET(fm_lane_post_faa(lane, h->at, W_FAA, 1, &faa_tag), 0);
			faa_posted++;
		}
		if (!cas_in && cas_posted < h->cas_iters) {
			CHECK_RET(fm_lane_post_cas(lane, h->at, W_CAS, expect, expect + 1, &cas_tag),
				  0);
			cas_posted++;
			cas_in = true;
		}
		if (fd >= 0) {
			struct pollfd p = {.fd = fd, .events = POLLIN};

			k = fm_lane_poll(lane, cs, 16);
			if (k == 0) {
				CHECK(poll(&p, 1, 30000) == 1, "fm_lane_fd never turned readable");
				k = fm_lane_poll(lane, cs, 16);
			}
		} else if (h->wait) {
			k = fm_lane_wait(lane, cs, 16, 30000);
		} else {
			k = fm_lane_poll(lane, cs, 16);
		}
		CHECK(k >= 0, "poll/wait: %d", k);
		for (int i = 0; i < k; i++) {
			CHECK(cs[i].status == 0, "status %d", cs[i].status);
			if (cs[i].ctx == &faa_tag) {
				CHECK(cs[i].op == FM_LANE_FAA);
				/* one lane's FAAs execute in post order on a
				 * word that only grows */
				CHECK(!have_old || cs[i].old > last_old,
				      "FAA results must grow along a lane: %llu after %llu",
				      (unsigned long long)cs[i].old, (unsigned long long)last_old);
				last_old = cs[i].old;
				have_old = true;
				h->faa_done++;
			} else {
				CHECK(cs[i].ctx == &cas_tag && cs[i].op == FM_LANE_CAS,
				      "unknown completion %p", cs[i].ctx);
				CHECK(cas_in, "a CAS completed twice");
				if (cs[i].old == expect) {
					h->cas_won++;
					expect++;
				} else {
					/* the word only grows: a value we saw is behind */
					CHECK(cs[i].old > expect,
					      "the CAS word went back: %llu after %llu",
					      (unsigned long long)cs[i].old,
					      (unsigned long long)expect);
					expect = cs[i].old;
				}
				cas_in = false;
				h->cas_tries++;
			}
		}
		if (k == 0 && !h->wait)
			sched_yield();
	}
	CHECK(fm_lane_outstanding(lane) == 0 && faa_posted == h->faa_done);
	atomic_fetch_sub(&hammers_posting, 1);
	h->posting_done = true;
	if (fd >= 0) {
		/* nothing in flight: a poll takes the fd's readiness back, so
		 * a loop sleeping on it sleeps.  The lanes share the endpoint's
		 * CQ channel: wait until none of this process posts any more,
		 * then look for a quiet moment (a stray message's CQ event may
		 * make it readable again for a moment) */
		struct pollfd p = {.fd = fd, .events = POLLIN};
		uint64_t until = now_ms() + 60000;
		int tries = 0;

		while (atomic_load(&hammers_posting) > 0 && now_ms() < until)
			usleep(1000);
		do {
			CHECK_RET(fm_lane_poll(lane, cs, 16), 0);
		} while (poll(&p, 1, 10) == 1 && ++tries < 500);
		CHECK(tries < 500, "fm_lane_fd stays readable with nothing in flight after polls");
	}
	fm_lane_delete(&lane);
	return 0;
}

static void *hammer_main(void *arg)
{
	struct hammer *h = arg;

	h->ret = hammer_run(h);
	if (!h->posting_done)
		atomic_fetch_sub(&hammers_posting, 1); /* it failed early */
	return NULL;
}

static int hammers_start(struct hammer *hs, int n, struct fm_ep *ep,
			 const struct fm_region_desc *at, bool wait, const char *who)
{
	uint64_t iters = (uint64_t)cfg.iters;

	for (int i = 0; i < n; i++) {
		hs[i] = (struct hammer){.ep = ep, .at = at, .faa_iters = iters,
					.cas_iters = iters / 4 ? iters / 4 : 1, .wait = wait,
					.own_loop = wait && i % 2 == 1};
		snprintf(hs[i].who, sizeof(hs[i].who), "%s lane %d", who, i);
		atomic_fetch_add(&hammers_posting, 1);
		CHECK_RET(pthread_create(&hs[i].th, NULL, hammer_main, &hs[i]), 0);
	}
	return 0;
}

static int hammers_join(struct hammer *hs, int n, uint64_t *faa, uint64_t *cas)
{
	int bad = 0;

	for (int i = 0; i < n; i++) {
		pthread_join(hs[i].th, NULL);
		bad |= hs[i].ret;
		*faa += hs[i].faa_done;
		*cas += hs[i].cas_won;
	}
	CHECK(bad == 0, "a lane thread failed");
	return 0;
}

struct totals {
	uint64_t faa, cas;
};

#define OWNER_LANES 2
#define CLIENT_LANES 4

static int threads_owner(struct ctx *c, enum fm_wait_mode mode)
{
	/* static: a failing check returns while the lane threads still use
	 * the descriptors; they must not point into a dead frame */
	static struct owner_regions r;
	struct fm_transport *t;
	struct fm_listener *l;
	struct fm_ep *eps[64], *self;
	struct hammer hs[OWNER_LANES];
	struct totals sum = {0, 0};
	uint64_t *w, deadline = now_ms() + 300000;
	bool done[64] = {false};
	int ndone = 0, pongs = 0;

	if (transport_open(&t, mode, 0) || owner_regions(t, &r))
		return -1;
	CHECK_RET(fm_listen(t, c->addr, &l), 0);
	CHECK_RET(fm_listener_loopback(l, &self), 0);
	if (accept_all(l, c->nclients, eps))
		return -1;
	for (int i = 0; i < c->nclients; i++)
		if (send_descs(eps[i], r.d, 2))
			return -1;
	/* the owner's loopback lanes take part, on their own threads */
	if (hammers_start(hs, OWNER_LANES, self, &r.d[1], mode == FM_WAIT_EVENT, "owner"))
		return -1;
	/* serve pings and collect totals from every client */
	while (ndone < c->nclients) {
		CHECK(now_ms() < deadline, "clients still busy after 300 s");
		for (int i = 0; i < c->nclients; i++) {
			uint8_t buf[32];
			int n;

			if (done[i])
				continue;
			n = fm_ep_recv(eps[i], buf, sizeof(buf), FM_NONBLOCK);
			if (n == -EAGAIN)
				continue;
			CHECK(n > 0, "client %d: recv %d", i, n);
			if (buf[0] == 'P') {
				buf[0] = 'Q';
				CHECK_RET(fm_ep_send(eps[i], buf, (size_t)n, 0), 0);
				pongs++;
			} else {
				struct totals tt;

				CHECK(buf[0] == 'D' && n == 1 + (int)sizeof(tt), "message %c/%d",
				      buf[0], n);
				memcpy(&tt, buf + 1, sizeof(tt));
				sum.faa += tt.faa;
				sum.cas += tt.cas;
				done[i] = true;
				ndone++;
			}
		}
	}
	if (hammers_join(hs, OWNER_LANES, &sum.faa, &sum.cas))
		return -1;
	w = fm_region_ptr(r.at);
	CHECK(__atomic_load_n(&w[W_FAA / 8], __ATOMIC_ACQUIRE) == sum.faa,
	      "FAA word %llu, the lanes did %llu", (unsigned long long)w[W_FAA / 8],
	      (unsigned long long)sum.faa);
	CHECK(__atomic_load_n(&w[W_CAS / 8], __ATOMIC_ACQUIRE) == sum.cas,
	      "CAS word %llu, the lanes won %llu CASes: an update was lost",
	      (unsigned long long)w[W_CAS / 8], (unsigned long long)sum.cas);
	fprintf(stderr, "[owner] %llu FAA, %llu CAS won, %d pongs, %d client(s) x %d lanes + %d\n",
		(unsigned long long)sum.faa, (unsigned long long)sum.cas, pongs, c->nclients,
		CLIENT_LANES, OWNER_LANES);
	for (int i = 0; i < c->nclients; i++) {
		if (wait_closed(eps[i]))
			return -1;
		fm_ep_delete(&eps[i]);
	}
	fm_ep_delete(&self);
	fm_listener_delete(&l);
	owner_regions_free(&r);
	fm_transport_delete(&t);
	return 0;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return (x > y) - (x < y);
}

/* event mode, the way an agent's protocol thread waits: its own epoll on
 * fm_ep_fd, sleeping only after fm_ep_progress said 0 (transport.h) */
static int recv_own_loop(struct fm_ep *ep, void *buf, size_t cap)
{
	uint64_t deadline = now_ms() + 30000;
	struct epoll_event ev = {.events = EPOLLIN};
	int efd = epoll_create1(0), n;

	CHECK(efd >= 0);
	CHECK_RET(epoll_ctl(efd, EPOLL_CTL_ADD, fm_ep_fd(ep), &ev), 0);
	for (;;) {
		n = fm_ep_recv(ep, buf, cap, FM_NONBLOCK);
		if (n != -EAGAIN)
			break;
		n = fm_ep_progress(ep);
		CHECK(n >= 0, "progress %d", n);
		if (n > 0)
			continue;
		CHECK(now_ms() < deadline, "no pong in 30 s");
		(void)epoll_wait(efd, &ev, 1, 1000);
	}
	close(efd);
	return n;
}

static int threads_client(struct ctx *c, enum fm_wait_mode mode)
{
	static struct fm_region_desc d[2]; /* outlives a failing return */
	struct fm_transport *t;
	struct fm_ep *ep;
	struct hammer hs[CLIENT_LANES];
	struct totals tt = {0, 0};
	uint8_t buf[1 + sizeof(tt)];
	uint64_t rtt[4096];
	uint32_t seq = 0;

	if (transport_open(&t, mode, 0) || connect_retry(t, c, NULL, &ep) || recv_descs(ep, d, 2))
		return -1;
	if (hammers_start(hs, CLIENT_LANES, ep, &d[1], mode == FM_WAIT_EVENT, whoami))
		return -1;
	/* the owning thread keeps the message path busy meanwhile */
	while (atomic_load(&hammers_posting) > 0 || seq < 4) {
		uint64_t t0 = now_ms();
		uint8_t msg[5] = {'P'};

		memcpy(msg + 1, &seq, 4);
		CHECK_RET(fm_ep_send(ep, msg, 5, 0), 0);
		if (mode == FM_WAIT_EVENT) {
			if (recv_own_loop(ep, buf, sizeof(buf)) != 5)
				return -1;
		} else {
			CHECK_RET(fm_ep_recv(ep, buf, sizeof(buf), 0), 5);
		}
		CHECK(buf[0] == 'Q' && memcmp(buf + 1, &seq, 4) == 0, "pong %c", buf[0]);
		rtt[seq % 4096] = now_ms() - t0;
		seq++;
	}
	if (hammers_join(hs, CLIENT_LANES, &tt.faa, &tt.cas))
		return -1;
	{
		uint32_t n = seq < 4096 ? seq : 4096;

		qsort(rtt, n, sizeof(rtt[0]), cmp_u64);
		fprintf(stderr, "[%s] %u pings while the lanes ran, median %llu ms, max %llu ms\n",
			whoami, seq, (unsigned long long)rtt[n / 2],
			(unsigned long long)rtt[n - 1]);
		/* a lost wake-up costs the sleeping thread its epoll timeout */
		CHECK(mode != FM_WAIT_EVENT || rtt[n / 2] < 80, "median ping %llu ms in event mode",
		      (unsigned long long)rtt[n / 2]);
	}
	buf[0] = 'D';
	memcpy(buf + 1, &tt, sizeof(tt));
	CHECK_RET(fm_ep_send(ep, buf, sizeof(buf), 0), 0);
	fm_ep_delete(&ep);
	fm_transport_delete(&t);
	return 0;
}

int lane_threads_owner(struct ctx *c)
{
	return threads_owner(c, FM_WAIT_BUSY);
}

int lane_threads_client(struct ctx *c)
{
	return threads_client(c, FM_WAIT_BUSY);
}

int lane_event_owner(struct ctx *c)
{
	return threads_owner(c, FM_WAIT_EVENT);
}

int lane_event_client(struct ctx *c)
{
	return threads_client(c, FM_WAIT_EVENT);
}

/* --------------------------- scenarios: lane_*_close, lane_fence */

#define STORM_MAX (1u << 21) /* operations one storm lane posts at most */

/*
 * A storm lane: FAA +1 on W_FAA as fast as it can, each with its own ctx
 * (the operation's number), until a post says -ENOTCONN; then it polls
 * until nothing is in flight.  Each completion must come exactly once.
 */
struct storm {
	pthread_t th;
	struct fm_lane *lane;
	const struct fm_region_desc *at;
	uint8_t *seen;                  /* per operation: completions */
	uint64_t posted, ok, failed;    /* completions with 0 / an error */
	int first_err;                  /* first non-zero status */
	int ret;
	char who[48];
};

static _Atomic uint64_t storm_completed; /* all storm lanes: to pace the close */
static _Atomic bool storm_closed;        /* the owning thread saw the close */

static int storm_take(struct storm *s, const struct fm_completion *cs, int k)
{
	for (int i = 0; i < k; i++) {
		uint64_t n = (uint64_t)(uintptr_t)cs[i].ctx;

		CHECK(n >= 1 && n <= s->posted, "completion with ctx %llu of %llu posted",
		      (unsigned long long)n, (unsigned long long)s->posted);
		CHECK(s->seen[n - 1] == 0, "operation %llu completed twice", (unsigned long long)n);
		s->seen[n - 1] = 1;
		CHECK(cs[i].op == FM_LANE_FAA);
		if (cs[i].status == 0) {
			s->ok++;
		} else {
			CHECK(cs[i].status < 0, "status %d", cs[i].status);
			if (s->first_err == 0)
				s->first_err = cs[i].status;
			s->failed++;
		}
	}
	atomic_fetch_add(&storm_completed, (uint64_t)k);
	return 0;
}

static int storm_run(struct storm *s)
{
	struct fm_completion cs[32];
	uint64_t deadline;
	int ret, k;

	whoami = s->who;
	for (;;) {
		if (s->posted < STORM_MAX) {
			ret = fm_lane_post_faa(s->lane, s->at, W_FAA, 1,
					       (void *)(uintptr_t)(s->posted + 1));
			if (ret == 0)
				s->posted++;
			else if (ret == -ENOTCONN)
				break;
			else
				CHECK(ret == -EAGAIN, "post: %d", ret);
		} else if (atomic_load(&storm_closed)) {
			break; /* all posted before the close came */
		} else {
			usleep(1000);
		}
		k = fm_lane_poll(s->lane, cs, 32);
		CHECK(k >= 0);
		if (storm_take(s, cs, k))
			return -1;
	}
	/* closed: every later post fails the same way, no completion */
	for (int i = 0; i < 3; i++)
		CHECK_RET(fm_lane_post_faa(s->lane, s->at, W_FAA, 1, (void *)(uintptr_t)-1),
			  -ENOTCONN);
	/* what was in flight completes, each exactly once */
	deadline = now_ms() + 60000;
	while (fm_lane_outstanding(s->lane)) {
		CHECK(now_ms() < deadline, "%u operations never completed",
		      fm_lane_outstanding(s->lane));
		k = fm_lane_poll(s->lane, cs, 32);
		CHECK(k >= 0);
		if (storm_take(s, cs, k))
			return -1;
		if (k == 0)
			usleep(100);
	}
	for (uint64_t i = 0; i < s->posted; i++)
		CHECK(s->seen[i] == 1, "operation %llu: %u completions", (unsigned long long)i + 1,
		      s->seen[i]);
	CHECK(s->ok + s->failed == s->posted);
	return 0;
}

static void *storm_main(void *arg)
{
	struct storm *s = arg;

	s->ret = storm_run(s);
	return NULL;
}

/* lanes made by the owning thread, handed to their threads at create */
static int storms_start(struct storm *ss, int n, struct fm_ep *ep,
			const struct fm_region_desc *at)
{
	for (int i = 0; i < n; i++) {
		ss[i] = (struct storm){.at = at};
		snprintf(ss[i].who, sizeof(ss[i].who), "%s storm %d", whoami, i);
		ss[i].seen = calloc(STORM_MAX, 1);
		CHECK(ss[i].seen != NULL);
		CHECK_RET(fm_lane_new(ep, &ss[i].lane), 0);
	}
	for (int i = 0; i < n; i++)
		CHECK_RET(pthread_create(&ss[i].th, NULL, storm_main, &ss[i]), 0);
	return 0;
}

/* join, delete the lanes, sum up */
static int storms_join(struct storm *ss, int n, uint64_t *ok, uint64_t *failed)
{
	int bad = 0;

	for (int i = 0; i < n; i++) {
		pthread_join(ss[i].th, NULL);
		bad |= ss[i].ret;
		*ok += ss[i].ok;
		*failed += ss[i].failed;
		if (ss[i].failed)
			fprintf(stderr, "[%s] %llu of %llu completed with an error (first %d)\n",
				ss[i].who, (unsigned long long)ss[i].failed,
				(unsigned long long)ss[i].posted, ss[i].first_err);
		fm_lane_delete(&ss[i].lane);
		free(ss[i].seen);
	}
	CHECK(bad == 0, "a storm lane failed");
	return 0;
}

static int wait_storm(uint64_t n)
{
	uint64_t deadline = now_ms() + 60000;

	while (atomic_load(&storm_completed) < n)
		CHECK(now_ms() < deadline, "only %llu completions in 60 s",
		      (unsigned long long)atomic_load(&storm_completed));
	return 0;
}

/* owner: the client's second connection reports what its storm saw; the
 * counter must lie in [ok, ok + failed] (an error may hide an executed
 * FAA on verbs; on shm an operation executes at its post: equal) */
static int owner_check_report(struct fm_listener *l, const struct owner_regions *r)
{
	struct fm_ep *ep;
	uint64_t rep[2], v;

	if (accept_all(l, 1, &ep) || send_descs(ep, r->d, 2))
		return -1;
	CHECK_RET(fm_ep_recv(ep, rep, sizeof(rep), 0), sizeof(rep));
	v = __atomic_load_n((uint64_t *)fm_region_ptr(r->at) + W_FAA / 8, __ATOMIC_ACQUIRE);
	fprintf(stderr, "[owner] counter %llu; the client's lanes: %llu ok, %llu failed\n",
		(unsigned long long)v, (unsigned long long)rep[0], (unsigned long long)rep[1]);
	CHECK(v >= rep[0] && v <= rep[0] + rep[1], "counter %llu outside [%llu, %llu]",
	      (unsigned long long)v, (unsigned long long)rep[0],
	      (unsigned long long)(rep[0] + rep[1]));
	CHECK(!is_shm() || (v == rep[0] && rep[1] == 0), "shm: every FAA executes at its post");
	CHECK_RET(fm_ep_send(ep, "ok", 2, 0), 0);
	if (wait_closed(ep))
		return -1;
	fm_ep_delete(&ep);
	return 0;
}

static int client_report(struct fm_transport *t, struct ctx *c, uint64_t ok, uint64_t failed)
{
	struct fm_region_desc d[2];
	struct fm_ep *ep;
	uint64_t rep[2] = {ok, failed};
	char buf[4];

	if (connect_retry(t, c, NULL, &ep) || recv_descs(ep, d, 2))
		return -1;
	CHECK_RET(fm_ep_send(ep, rep, sizeof(rep), 0), 0);
	CHECK_RET(fm_ep_recv(ep, buf, sizeof(buf), 0), 2);
	fm_ep_delete(&ep);
	return 0;
}

/* the owner's half of the three: accept, grant, wait for "going" and a
 * few thousand FAAs, then `act` */
enum close_act { ACT_DELETE, ACT_WAIT_PEER, ACT_FENCE };

static int close_owner(struct ctx *c, enum close_act act)
{
	struct fm_transport *t;
	struct fm_listener *l;
	struct owner_regions r;
	struct fm_ep *ep;
	uint64_t *w, at_fence;
	char buf[8];
	int level, tries = 0;

	if (transport_open(&t, FM_WAIT_BUSY, 0) || owner_regions(t, &r))
		return -1;
	CHECK_RET(fm_listen(t, c->addr, &l), 0);
	if (accept_all(l, 1, &ep) || send_descs(ep, r.d, 2))
		return -1;
	CHECK_RET(fm_ep_recv(ep, buf, sizeof(buf), 0), 5); /* "going" */
	w = (uint64_t *)fm_region_ptr(r.at) + W_FAA / 8;
	while (__atomic_load_n(w, __ATOMIC_ACQUIRE) < 2000)
		usleep(1000);
	switch (act) {
	case ACT_DELETE:
		fm_ep_delete(&ep);
		break;
	case ACT_WAIT_PEER:
		if (wait_closed(ep))
			return -1;
		fm_ep_delete(&ep);
		break;
	case ACT_FENCE:
		while ((level = fm_ep_fence(ep, FM_FENCE_F_KILL)) == -EINPROGRESS) {
			CHECK(++tries < 10000, "fence never completed: %s", fm_errormsg());
			usleep(1000);
		}
		CHECK(level == (is_shm() ? FM_FENCE_DEAD : FM_FENCE_RDMA), "level %d", level);
		at_fence = __atomic_load_n(w, __ATOMIC_ACQUIRE);
		usleep(300000);
		CHECK(__atomic_load_n(w, __ATOMIC_ACQUIRE) == at_fence,
		      "a fenced client's lanes still land FAAs: %llu -> %llu",
		      (unsigned long long)at_fence, (unsigned long long)*w);
		fm_ep_delete(&ep);
		if (is_shm()) /* killed: nobody to report */
			goto out;
		break;
	}
	if (owner_check_report(l, &r))
		return -1;
out:
	fm_listener_delete(&l);
	owner_regions_free(&r);
	fm_transport_delete(&t);
	return 0;
}

/* the client's half: 4 storm lanes; `local`: this thread deletes the
 * endpoint under them, else it progresses until the owner's act closes it */
static int close_client(struct ctx *c, bool local)
{
	static struct fm_region_desc d[2]; /* outlives a failing return */
	struct fm_transport *t;
	struct fm_ep *ep;
	struct storm ss[CLIENT_LANES];
	uint64_t ok = 0, failed = 0, deadline;
	const char *reason;

	if (transport_open(&t, FM_WAIT_BUSY, 0) || connect_retry(t, c, NULL, &ep) ||
	    recv_descs(ep, d, 2))
		return -1;
	if (storms_start(ss, CLIENT_LANES, ep, &d[1]))
		return -1;
	CHECK_RET(fm_ep_send(ep, "going", 5, 0), 0);
	if (local) {
		if (wait_storm(4000))
			return -1;
		/* under the running lanes: they outlive the endpoint */
		fm_ep_delete(&ep);
		CHECK(ep == NULL);
		atomic_store(&storm_closed, true);
	} else {
		deadline = now_ms() + 60000;
		while (fm_ep_progress(ep) >= 0)
			CHECK(now_ms() < deadline, "the owner never closed");
		CHECK(fm_ep_state(ep, &reason) == FM_EP_CLOSED);
		atomic_store(&storm_closed, true);
		fprintf(stderr, "[%s] closed under the lanes: %s\n", whoami, reason);
	}
	if (storms_join(ss, CLIENT_LANES, &ok, &failed))
		return -1;
	if (!local) {
		CHECK(fm_ep_error(ep) != 0);
		fm_ep_delete(&ep);
	}
	if (client_report(t, c, ok, failed))
		return -1;
	fm_transport_delete(&t);
	return 0;
}

int lane_peer_close_owner(struct ctx *c)
{
	return close_owner(c, ACT_DELETE);
}

int lane_peer_close_client(struct ctx *c)
{
	return close_client(c, false);
}

int lane_local_close_owner(struct ctx *c)
{
	return close_owner(c, ACT_WAIT_PEER);
}

int lane_local_close_client(struct ctx *c)
{
	return close_client(c, true);
}

int lane_fence_owner(struct ctx *c)
{
	return close_owner(c, ACT_FENCE);
}

int lane_fence_client(struct ctx *c)
{
	return close_client(c, false);
}
