/* test_transport.c -- the transport contract, run over either provider.
 *
 * Every scenario is a pair (owner, client) run in SEPARATE PROCESSES:
 *   --role both    (default) fork the clients, run the owner here.  Natively
 *                  with the shm provider under cmocka; over verbs on one node.
 *   --role owner   only the owner side of every scenario (multi-node: node 0)
 *   --role client  only the client side (nodes 1..N-1), --index I --procs P
 *
 *   test_transport                                   shm, cmocka
 *   test_transport --provider verbs --addr 10.77.0.1:7471 --role both
 *   test_transport --provider verbs --addr 10.77.0.1:7471 --role owner --clients 3
 *   test_transport --provider verbs --addr 10.77.0.1:7471 --role client --index 1
 *
 * Scenario k listens on port+k (verbs) or NAME-k (shm), so a fast client
 * simply retries its connect until the owner reaches that scenario.
 * Children never call cmocka: they report through their exit status.
 */
#include <errno.h>
#include <getopt.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "flashmeta/error.h"
#include "flashmeta/transport.h"
#include "scenario.h"

/* ------------------------------------------------------------ config */

struct tt_cfg cfg = {.provider = "shm", .role = "both", .clients = 4, .procs = 1,
		     .iters = 10000};

_Thread_local const char *whoami = "owner";

int transport_open(struct fm_transport **t, enum fm_wait_mode mode, uint32_t msg_size)
{
	struct fm_transport_cfg c = {
		.provider = cfg.provider,
		.device = getenv("FM_RDMA_DEV"),
		.wait_mode = mode,
		.msg_size = msg_size,
		.credits = 16,
		.op_timeout_ms = 20000,
	};
	int ret = fm_transport_new(t, &c);

	if (ret)
		FAIL("fm_transport_new(%s): %d", cfg.provider, ret);
	return 0;
}

static void scenario_addr(struct ctx *c)
{
	if (strcmp(cfg.provider, "shm") == 0) {
		snprintf(c->addr, sizeof(c->addr), "%s-%d", cfg.addr, c->scn);
	} else {
		char host[128];
		const char *colon = strrchr(cfg.addr, ':');
		int port = colon ? atoi(colon + 1) : 7471;
		size_t n = colon ? (size_t)(colon - cfg.addr) : strlen(cfg.addr);

		snprintf(host, sizeof(host), "%.*s", (int)n, cfg.addr);
		snprintf(c->addr, sizeof(c->addr), "%s:%d", host, port + c->scn);
	}
}

/* client: connect, retrying while the owner is not there yet */
int connect_retry(struct fm_transport *t, struct ctx *c, const char *hello,
			 struct fm_ep **ep)
{
	time_t end = time(NULL) + 60;
	int ret;

	for (;;) {
		ret = fm_connect(t, c->addr, hello, hello ? strlen(hello) : 0, 5000, ep);
		if (ret == 0)
			return 0;
		if (time(NULL) > end || (ret != -ECONNREFUSED && ret != -ETIMEDOUT &&
					 ret != -EHOSTUNREACH && ret != -ECONNRESET &&
					 ret != -ENETUNREACH && ret != -ECONNABORTED))
			FAIL("connect %s: %d", c->addr, ret);
		usleep(20000);
	}
}

/* owner: accept the scenario's clients */
int accept_all(struct fm_listener *l, int n, struct fm_ep **eps)
{
	for (int i = 0; i < n; i++) {
		int ret = fm_listener_accept(l, 60000, &eps[i]);
		if (ret)
			FAIL("accept %d of %d: %d", i + 1, n, ret);
		CHECK(fm_ep_state(eps[i], NULL) == FM_EP_UP);
	}
	return 0;
}

/* both: wait until the peer closed (recv fails with the endpoint CLOSED) */
int wait_closed(struct fm_ep *ep)
{
	char buf[64];
	const char *reason;
	int ret;

	do {
		ret = fm_ep_recv(ep, buf, sizeof(buf), 0);
	} while (ret >= 0 || ret == -ETIMEDOUT);
	CHECK(fm_ep_state(ep, &reason) == FM_EP_CLOSED, "state %s",
	      fm_ep_state_name(fm_ep_state(ep, NULL)));
	CHECK(reason[0] != '\0');
	return 0;
}

/* owner -> client: descriptors in the first message, sent without
 * opening the peer's access (the no_grant scenario) */
static int send_descs_only(struct fm_ep *ep, const struct fm_region_desc *d, int n)
{
	uint8_t buf[4 * FM_REGION_DESC_WIRE_SIZE];

	for (int i = 0; i < n; i++)
		fm_region_desc_encode(&d[i], buf + i * FM_REGION_DESC_WIRE_SIZE);
	CHECK_RET(fm_ep_send(ep, buf, (size_t)n * FM_REGION_DESC_WIRE_SIZE, 0), 0);
	return 0;
}

/* owner -> client: open its one-sided access (what the protocol does once
 * the client authenticated), then the descriptors in the first message */
int send_descs(struct fm_ep *ep, const struct fm_region_desc *d, int n)
{
	uint8_t buf[4 * FM_REGION_DESC_WIRE_SIZE];

	CHECK_RET(fm_ep_grant(ep), 0);
	CHECK_RET(fm_ep_grant(ep), 0); /* idempotent */
	for (int i = 0; i < n; i++)
		fm_region_desc_encode(&d[i], buf + i * FM_REGION_DESC_WIRE_SIZE);
	CHECK_RET(fm_ep_send(ep, buf, (size_t)n * FM_REGION_DESC_WIRE_SIZE, 0), 0);
	return 0;
}

int recv_descs(struct fm_ep *ep, struct fm_region_desc *d, int n)
{
	uint8_t buf[4 * FM_REGION_DESC_WIRE_SIZE];

	CHECK_RET(fm_ep_recv(ep, buf, sizeof(buf), 0), n * FM_REGION_DESC_WIRE_SIZE);
	for (int i = 0; i < n; i++)
		fm_region_desc_decode(buf + i * FM_REGION_DESC_WIRE_SIZE, &d[i]);
	return 0;
}

uint8_t pattern(uint64_t i)
{
	return (uint8_t)(i * 131 + (i >> 8) * 7 + 1);
}

/* ------------------------------------------------- scenario: hello */

static int hello_owner(struct ctx *c)
{
	struct fm_transport *t;
	struct fm_listener *l;
	struct fm_ep *eps[64];
	char hello[FM_HELLO_MAX + 1];

	if (transport_open(&t, FM_WAIT_BUSY, 0))
		return -1;
	CHECK_RET(fm_listen(t, c->addr, &l), 0);
	if (accept_all(l, c->nclients, eps))
		return -1;
	for (int i = 0; i < c->nclients; i++) {
		size_t n = fm_ep_hello(eps[i], hello, FM_HELLO_MAX);
		hello[n] = '\0';
		CHECK(strncmp(hello, "hello from ", 11) == 0, "hello \"%s\"", hello);
		CHECK_RET(fm_ep_send(eps[i], "welcome", 7, 0), 0);
	}
	for (int i = 0; i < c->nclients; i++) {
		const char *reason;
		if (wait_closed(eps[i]))
			return -1;
		fm_ep_state(eps[i], &reason);
		CHECK(strstr(reason, "peer") || strstr(reason, "disconnect"), "reason %s", reason);
		fm_ep_delete(&eps[i]);
	}
	fm_listener_delete(&l);
	fm_transport_delete(&t);
	CHECK(t == NULL && l == NULL);
	return 0;
}

static int hello_client(struct ctx *c)
{
	struct fm_transport *t;
	struct fm_ep *ep;
	char hello[40], buf[16];
	const char *reason;

	snprintf(hello, sizeof(hello), "hello from %d", c->index);
	if (transport_open(&t, FM_WAIT_BUSY, 0) || connect_retry(t, c, hello, &ep))
		return -1;
	CHECK(fm_ep_state(ep, &reason) == FM_EP_UP);
	CHECK(reason[0] == '\0');
	CHECK_RET(fm_ep_recv(ep, buf, sizeof(buf), 0), 7);
	CHECK(memcmp(buf, "welcome", 7) == 0);
	fm_ep_delete(&ep);
	CHECK(ep == NULL);
	fm_transport_delete(&t);
	return 0;
}

/* -------------------------------------------------- scenario: READ */

#define READ_LEN (1u << 20)

static int read_owner(struct ctx *c)
{
	struct fm_transport *t;
	struct fm_listener *l;
	struct fm_region *bm, *dst;
	struct fm_region_desc d;
	struct fm_ep *eps[64], *self;
	uint8_t *p;

	if (transport_open(&t, FM_WAIT_BUSY, 0))
		return -1;
	CHECK_RET(fm_region_new(t, READ_LEN, FM_ACCESS_REMOTE_READ, &bm), 0);
	CHECK_RET(fm_region_new(t, 4096, FM_ACCESS_LOCAL, &dst), 0);
	p = fm_region_ptr(bm);
	for (uint64_t i = 0; i < READ_LEN; i++)
		p[i] = pattern(i);
	fm_region_desc(bm, &d);
	CHECK(d.len == READ_LEN && d.key != 0 && d.flags == FM_ACCESS_REMOTE_READ);
	CHECK_RET(fm_listen(t, c->addr, &l), 0);
	CHECK_RET(fm_listener_loopback(l, &self), 0);
	/* the owner may READ itself through the loopback too */
	CHECK_RET(fm_ep_read(self, dst, 0, &d, 12345, 4096), 0);
	CHECK(memcmp(fm_region_ptr(dst), p + 12345, 4096) == 0);
	CHECK_RET(fm_ep_send(self, "x", 1, 0), -EOPNOTSUPP);
	if (accept_all(l, c->nclients, eps))
		return -1;
	for (int i = 0; i < c->nclients; i++)
		if (send_descs(eps[i], &d, 1))
			return -1;
	for (int i = 0; i < c->nclients; i++) {
		if (wait_closed(eps[i]))
			return -1;
		fm_ep_delete(&eps[i]);
	}
	fm_ep_delete(&self);
	fm_listener_delete(&l);
	fm_region_delete(&bm);
	fm_region_delete(&dst);
	fm_transport_delete(&t);
	return 0;
}

static int read_client(struct ctx *c)
{
	struct fm_transport *t;
	struct fm_region *dst;
	struct fm_region_desc d;
	struct fm_ep *ep;
	uint8_t *q;
	static const struct {
		size_t off, len;
	} cases[] = {{0, 8}, {3, 13}, {4093, 7}, {READ_LEN - 1, 1}, {8, 65536}, {0, READ_LEN}};

	if (transport_open(&t, FM_WAIT_BUSY, 0) || connect_retry(t, c, NULL, &ep))
		return -1;
	if (recv_descs(ep, &d, 1))
		return -1;
	CHECK_RET(fm_region_new(t, READ_LEN + 64, FM_ACCESS_LOCAL, &dst), 0);
	q = fm_region_ptr(dst);
	for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
		memset(q, 0xee, READ_LEN + 64);
		CHECK_RET(fm_ep_read(ep, dst, 5, &d, cases[k].off, cases[k].len), 0);
		for (size_t i = 0; i < cases[k].len; i++)
			CHECK(q[5 + i] == pattern(cases[k].off + i), "case %zu byte %zu", k, i);
		CHECK(q[4] == 0xee && q[5 + cases[k].len] == 0xee, "wrote outside");
	}
	CHECK(fm_ep_state(ep, NULL) == FM_EP_UP);
	fm_ep_delete(&ep);
	fm_region_delete(&dst);
	fm_transport_delete(&t);
	return 0;
}

/* ---------------------------------------- scenario: FAA contention */

static int faa_owner(struct ctx *c)
{
	struct fm_transport *t;
	struct fm_listener *l;
	struct fm_region *locks;
	struct fm_region_desc d;
	struct fm_ep *eps[64], *self;
	uint64_t old, sum = 0, *w;
	char buf[16];

	if (transport_open(&t, FM_WAIT_BUSY, 0))
		return -1;
	CHECK_RET(fm_region_new(t, 4096, FM_ACCESS_REMOTE_ATOMIC, &locks), 0);
	fm_region_desc(locks, &d);
	CHECK_RET(fm_listen(t, c->addr, &l), 0);
	CHECK_RET(fm_listener_loopback(l, &self), 0);
	if (accept_all(l, c->nclients, eps))
		return -1;
	for (int i = 0; i < c->nclients; i++)
		if (send_descs(eps[i], &d, 1))
			return -1;
	/* the owner takes part through its loopback endpoint */
	for (int i = 0; i < cfg.iters; i++) {
		CHECK_RET(fm_ep_faa(self, &d, 0, 1, &old), 0);
		CHECK_RET(fm_ep_faa(self, &d, 8, 3, NULL), 0);
	}
	for (int i = 0; i < c->nclients; i++) {
		CHECK_RET(fm_ep_recv(eps[i], buf, sizeof(buf), 0), 4);
		CHECK(memcmp(buf, "done", 4) == 0);
	}
	w = fm_region_ptr(locks);
	sum = (uint64_t)cfg.iters * (uint64_t)(c->nclients + 1);
	CHECK(__atomic_load_n(&w[0], __ATOMIC_ACQUIRE) == sum, "counter %llu, want %llu",
	      (unsigned long long)w[0], (unsigned long long)sum);
	CHECK(__atomic_load_n(&w[1], __ATOMIC_ACQUIRE) == 3 * sum, "second word");
	/* and the returned old values are right: one more FAA sees the sum */
	CHECK_RET(fm_ep_faa(self, &d, 0, (uint64_t)-1, &old), 0);
	CHECK(old == sum, "old %llu", (unsigned long long)old);
	CHECK_RET(fm_ep_cas(self, &d, 0, sum - 1, 42, &old), 0);
	CHECK(old == sum - 1 && w[0] == 42);
	CHECK_RET(fm_ep_cas(self, &d, 0, 7, 43, &old), 0);
	CHECK(old == 42 && w[0] == 42, "failed CAS must not write");
	for (int i = 0; i < c->nclients; i++) {
		if (wait_closed(eps[i]))
			return -1;
		fm_ep_delete(&eps[i]);
	}
	fm_ep_delete(&self);
	fm_listener_delete(&l);
	fm_region_delete(&locks);
	fm_transport_delete(&t);
	return 0;
}

static int faa_client(struct ctx *c)
{
	struct fm_transport *t;
	struct fm_region_desc d;
	struct fm_ep *ep;
	uint64_t old, prev = 0;

	if (transport_open(&t, FM_WAIT_BUSY, 0) || connect_retry(t, c, NULL, &ep))
		return -1;
	if (recv_descs(ep, &d, 1))
		return -1;
	for (int i = 0; i < cfg.iters; i++) {
		CHECK_RET(fm_ep_faa(ep, &d, 0, 1, &old), 0);
		CHECK(i == 0 || old > prev, "old values must grow: %llu after %llu",
		      (unsigned long long)old, (unsigned long long)prev);
		prev = old;
		CHECK_RET(fm_ep_faa(ep, &d, 8, 3, NULL), 0);
	}
	CHECK_RET(fm_ep_send(ep, "done", 4, 0), 0);
	fm_ep_delete(&ep);
	fm_transport_delete(&t);
	return 0;
}

/* ------------------------------------------- scenario: CAS mutex */

enum { W_LOCK = 0, W_INSIDE = 8, W_TOTAL = 16 };

/* lock, check exclusivity, unlock `k` times as holder `id` (!= 0) */
static int mutex_rounds(struct fm_ep *ep, const struct fm_region_desc *d, uint64_t id, int k)
{
	uint64_t old;

	for (int i = 0; i < k; i++) {
		do {
			CHECK_RET(fm_ep_cas(ep, d, W_LOCK, 0, id, &old), 0);
		} while (old != 0);
		CHECK_RET(fm_ep_faa(ep, d, W_INSIDE, 1, &old), 0);
		CHECK(old == 0, "mutual exclusion violated: %llu inside", (unsigned long long)old);
		CHECK_RET(fm_ep_faa(ep, d, W_TOTAL, 1, NULL), 0);
		CHECK_RET(fm_ep_faa(ep, d, W_INSIDE, (uint64_t)-1, &old), 0);
		CHECK(old == 1, "inside %llu at exit", (unsigned long long)old);
		CHECK_RET(fm_ep_cas(ep, d, W_LOCK, id, 0, &old), 0);
		CHECK(old == id, "lock held by %llu, not us", (unsigned long long)old);
	}
	return 0;
}

static int mutex_owner(struct ctx *c)
{
	struct fm_transport *t;
	struct fm_listener *l;
	struct fm_region *locks;
	struct fm_region_desc d;
	struct fm_ep *eps[64], *self;
	uint64_t *w;
	int k = cfg.iters / 10 ? cfg.iters / 10 : 1;
	char buf[16];

	if (transport_open(&t, FM_WAIT_BUSY, 0))
		return -1;
	CHECK_RET(fm_region_new(t, 64, FM_ACCESS_REMOTE_ATOMIC, &locks), 0);
	fm_region_desc(locks, &d);
	CHECK_RET(fm_listen(t, c->addr, &l), 0);
	CHECK_RET(fm_listener_loopback(l, &self), 0);
	if (accept_all(l, c->nclients, eps))
		return -1;
	for (int i = 0; i < c->nclients; i++)
		if (send_descs(eps[i], &d, 1))
			return -1;
	if (mutex_rounds(self, &d, 1000, k))
		return -1;
	for (int i = 0; i < c->nclients; i++) {
		CHECK_RET(fm_ep_recv(eps[i], buf, sizeof(buf), 0), 4);
		CHECK(memcmp(buf, "done", 4) == 0);
	}
	w = fm_region_ptr(locks);
	CHECK(w[0] == 0 && w[1] == 0, "lock %llu inside %llu", (unsigned long long)w[0],
	      (unsigned long long)w[1]);
	CHECK(w[2] == (uint64_t)k * (uint64_t)(c->nclients + 1), "total %llu",
	      (unsigned long long)w[2]);
	for (int i = 0; i < c->nclients; i++) {
		if (wait_closed(eps[i]))
			return -1;
		fm_ep_delete(&eps[i]);
	}
	fm_ep_delete(&self);
	fm_listener_delete(&l);
	fm_region_delete(&locks);
	fm_transport_delete(&t);
	return 0;
}

static int mutex_client(struct ctx *c)
{
	struct fm_transport *t;
	struct fm_region_desc d;
	struct fm_ep *ep;
	int k = cfg.iters / 10 ? cfg.iters / 10 : 1;

	if (transport_open(&t, FM_WAIT_BUSY, 0) || connect_retry(t, c, NULL, &ep))
		return -1;
	if (recv_descs(ep, &d, 1) || mutex_rounds(ep, &d, 1 + (uint64_t)c->index, k))
		return -1;
	CHECK_RET(fm_ep_send(ep, "done", 4, 0), 0);
	fm_ep_delete(&ep);
	fm_transport_delete(&t);
	return 0;
}

/* ----------------------------------------- scenario: credits */

#define CREDITS 16

struct seqmsg {
	uint32_t seq;
	uint8_t fill[];
};

static size_t seq_len(uint32_t seq, size_t max)
{
	return 4 + (seq * 37u) % (max - 4 + 1);
}

static int recv_seq(struct fm_ep *ep, uint32_t seq, uint8_t *buf, size_t cap)
{
	size_t want = seq_len(seq, fm_ep_max_msg(ep));
	uint32_t got;

	CHECK_RET(fm_ep_recv(ep, buf, cap, 0), want);
	memcpy(&got, buf, 4);
	CHECK(got == seq, "message %u arrived as %u", seq, got);
	for (size_t i = 4; i < want; i++)
		CHECK(buf[i] == (uint8_t)(seq + i), "message %u byte %zu", seq, i);
	return 0;
}

static int send_seq(struct fm_ep *ep, uint32_t seq, uint8_t *buf, unsigned flags)
{
	size_t len = seq_len(seq, fm_ep_max_msg(ep));

	memcpy(buf, &seq, 4);
	for (size_t i = 4; i < len; i++)
		buf[i] = (uint8_t)(seq + i);
	return fm_ep_send(ep, buf, len, flags);
}

static int credits_owner(struct ctx *c)
{
	struct fm_transport *t;
	struct fm_listener *l;
	struct fm_ep *ep;
	static uint8_t buf[8192];

	if (transport_open(&t, FM_WAIT_BUSY, 0))
		return -1;
	CHECK_RET(fm_listen(t, c->addr, &l), 0);
	if (accept_all(l, 1, &ep))
		return -1;
	/* leave the client time to run out of credits */
	usleep(500000);
	CHECK_RET(fm_ep_recv_peek(ep), seq_len(0, fm_ep_max_msg(ep)));
	for (uint32_t s = 0; s < 3 * CREDITS; s++)
		if (recv_seq(ep, s, buf, sizeof(buf)))
			return -1;
	/* ping-pong: both directions, credits only piggy-backed or explicit */
	for (uint32_t s = 0; s < 500; s++) {
		CHECK_RET(send_seq(ep, 2 * s, buf, 0), 0);
		if (recv_seq(ep, 2 * s + 1, buf, sizeof(buf)))
			return -1;
	}
	/* one direction burst far beyond the credits */
	for (uint32_t s = 0; s < 10 * CREDITS; s++)
		CHECK_RET(send_seq(ep, s, buf, 0), 0);
	if (wait_closed(ep))
		return -1;
	fm_ep_delete(&ep);
	fm_listener_delete(&l);
	fm_transport_delete(&t);
	return 0;
}

static int credits_client(struct ctx *c)
{
	struct fm_transport *t;
	struct fm_ep *ep;
	static uint8_t buf[8192];

	if (transport_open(&t, FM_WAIT_BUSY, 0) || connect_retry(t, c, NULL, &ep))
		return -1;
	CHECK(fm_ep_credits(ep) == CREDITS, "start with %u credits", fm_ep_credits(ep));
	for (uint32_t s = 0; s < CREDITS; s++)
		CHECK_RET(send_seq(ep, s, buf, FM_NONBLOCK), 0);
	CHECK_RET(send_seq(ep, CREDITS, buf, FM_NONBLOCK), -EAGAIN);
	CHECK(fm_ep_credits(ep) == 0);
	CHECK(fm_ep_state(ep, NULL) == FM_EP_UP);
	/* blocking sends wait until the owner consumes and credits return */
	for (uint32_t s = CREDITS; s < 3 * CREDITS; s++)
		CHECK_RET(send_seq(ep, s, buf, 0), 0);
	for (uint32_t s = 0; s < 500; s++) {
		if (recv_seq(ep, 2 * s, buf, sizeof(buf)))
			return -1;
		CHECK_RET(send_seq(ep, 2 * s + 1, buf, 0), 0);
	}
	usleep(100000); /* let the burst pile up against our credits */
	for (uint32_t s = 0; s < 10 * CREDITS; s++)
		if (recv_seq(ep, s, buf, sizeof(buf)))
			return -1;
	fm_ep_delete(&ep);
	fm_transport_delete(&t);
	return 0;
}

/* -------------------------------------- scenario: message sizes */

#define SMALL_MSG 256

static int msgsize_owner(struct ctx *c)
{
	struct fm_transport *t;
	struct fm_listener *l;
	struct fm_ep *ep;
	uint8_t buf[1024];

	if (transport_open(&t, FM_WAIT_BUSY, 1024))
		return -1;
	CHECK_RET(fm_listen(t, c->addr, &l), 0);
	if (accept_all(l, 1, &ep))
		return -1;
	/* the client's buffers are smaller: the limit is the min */
	CHECK(fm_ep_max_msg(ep) == SMALL_MSG, "max %zu", fm_ep_max_msg(ep));
	memset(buf, 0x5a, sizeof(buf));
	CHECK_RET(fm_ep_send(ep, buf, SMALL_MSG + 1, 0), -EMSGSIZE);
	CHECK_RET(fm_ep_send(ep, buf, SMALL_MSG, 0), 0);
	CHECK_RET(fm_ep_send(ep, NULL, 0, 0), 0);
	CHECK_RET(fm_ep_recv(ep, buf, sizeof(buf), 0), SMALL_MSG);
	if (wait_closed(ep))
		return -1;
	fm_ep_delete(&ep);
	fm_listener_delete(&l);
	fm_transport_delete(&t);
	return 0;
}

static int msgsize_client(struct ctx *c)
{
	struct fm_transport *t;
	struct fm_ep *ep;
	uint8_t buf[1024];

	if (transport_open(&t, FM_WAIT_BUSY, SMALL_MSG) || connect_retry(t, c, NULL, &ep))
		return -1;
	CHECK(fm_ep_max_msg(ep) == SMALL_MSG);
	CHECK_RET(fm_ep_send(ep, buf, SMALL_MSG + 1, 0), -EMSGSIZE);
	/* too small a buffer: the message stays queued */
	CHECK_RET(fm_ep_recv(ep, buf, 10, 0), -EMSGSIZE);
	CHECK_RET(fm_ep_recv_peek(ep), SMALL_MSG);
	CHECK_RET(fm_ep_recv(ep, buf, sizeof(buf), 0), SMALL_MSG);
	CHECK(buf[0] == 0x5a && buf[SMALL_MSG - 1] == 0x5a);
	CHECK_RET(fm_ep_recv(ep, buf, sizeof(buf), 0), 0);
	CHECK_RET(fm_ep_recv(ep, buf, sizeof(buf), FM_NONBLOCK), -EAGAIN);
	memset(buf, 1, SMALL_MSG);
	CHECK_RET(fm_ep_send(ep, buf, SMALL_MSG, 0), 0);
	fm_ep_delete(&ep);
	fm_transport_delete(&t);
	return 0;
}

/* ------------------------------------ scenario: bad access errors */

static int badaccess_owner(struct ctx *c)
{
	struct fm_transport *t;
	struct fm_listener *l;
	struct fm_region *bm, *locks;
	struct fm_region_desc d[2];
	struct fm_ep *ep[2];

	if (transport_open(&t, FM_WAIT_BUSY, 0))
		return -1;
	CHECK_RET(fm_region_new(t, 8192, FM_ACCESS_REMOTE_READ, &bm), 0);
	CHECK_RET(fm_region_new(t, 4096, FM_ACCESS_REMOTE_ATOMIC, &locks), 0);
	fm_region_desc(bm, &d[0]);
	fm_region_desc(locks, &d[1]);
	CHECK_RET(fm_listen(t, c->addr, &l), 0);
	for (int k = 0; k < 2; k++) { /* the client connects twice */
		if (accept_all(l, 1, &ep[k]) || send_descs(ep[k], d, 2))
			return -1;
	}
	for (int k = 0; k < 2; k++) {
		if (wait_closed(ep[k]))
			return -1;
		fm_ep_delete(&ep[k]);
	}
	fm_listener_delete(&l);
	fm_region_delete(&bm);
	fm_region_delete(&locks);
	fm_transport_delete(&t);
	return 0;
}

static int badaccess_client(struct ctx *c)
{
	struct fm_transport *t;
	struct fm_region *dst;
	struct fm_region_desc d[2], forged;
	struct fm_ep *ep;
	const char *reason;
	uint64_t old;

	if (transport_open(&t, FM_WAIT_BUSY, 0) || connect_retry(t, c, NULL, &ep))
		return -1;
	if (recv_descs(ep, d, 2))
		return -1;
	CHECK_RET(fm_region_new(t, 8192, FM_ACCESS_LOCAL, &dst), 0);
	/* local checks: the endpoint stays UP */
	CHECK_RET(fm_ep_cas(ep, &d[1], 4, 0, 1, &old), -EINVAL);
	CHECK_RET(fm_ep_faa(ep, &d[1], 4096, 1, &old), -ERANGE);
	CHECK_RET(fm_ep_faa(ep, &d[1], 4090, 1, &old), -EINVAL);
	CHECK_RET(fm_ep_faa(ep, &d[1], 4088, 1, &old), 0);
	CHECK_RET(fm_ep_read(ep, dst, 0, &d[0], 8000, 193), -ERANGE);
	CHECK_RET(fm_ep_read(ep, dst, 8000, &d[0], 0, 193), -ERANGE);
	CHECK_RET(fm_ep_read(ep, dst, 0, &d[0], 0, 0), -EINVAL);
	CHECK_RET(fm_ep_cas(ep, &d[0], 0, 0, 1, &old), -EACCES); /* no atomic grant */
	CHECK_RET(fm_ep_read(ep, dst, 0, &d[1], 0, 8), -EACCES); /* no read grant */
	CHECK(fm_ep_state(ep, NULL) == FM_EP_UP, "local checks must not close");
	CHECK_RET(fm_ep_read(ep, dst, 0, &d[0], 0, 8192), 0);
	/* a forged grant reaches the owner's side and is refused there */
	forged = d[1];
	forged.flags |= FM_ACCESS_REMOTE_READ;
	CHECK_RET(fm_ep_read(ep, dst, 0, &forged, 0, 8), -EACCES);
	CHECK(fm_ep_state(ep, &reason) == FM_EP_CLOSED, "remote access error closes");
	CHECK(strstr(reason, "access") != NULL, "reason: %s", reason);
	CHECK_RET(fm_ep_faa(ep, &d[1], 0, 1, &old), -ENOTCONN);
	fm_ep_delete(&ep);

	/* second connection: a wrong key */
	if (connect_retry(t, c, NULL, &ep) || recv_descs(ep, d, 2))
		return -1;
	forged = d[1];
	forged.key ^= 0x5a5a5a5a;
	CHECK_RET(fm_ep_cas(ep, &forged, 0, 0, 1, &old), -EACCES);
	CHECK(fm_ep_state(ep, &reason) == FM_EP_CLOSED);
	CHECK(strstr(reason, "access") != NULL, "reason: %s", reason);
	fm_ep_delete(&ep);
	fm_region_delete(&dst);
	fm_transport_delete(&t);
	return 0;
}

/* ------------------------------------------ scenario: peer killed */

static int kill_owner(struct ctx *c)
{
	struct fm_transport *t;
	struct fm_listener *l;
	struct fm_ep *ep;
	const char *reason;
	char buf[32];
	int ret;

	if (transport_open(&t, FM_WAIT_EVENT, 0))
		return -1;
	CHECK_RET(fm_listen(t, c->addr, &l), 0);
	if (accept_all(l, 1, &ep))
		return -1;
	CHECK_RET(fm_ep_recv(ep, buf, sizeof(buf), 0), 8);
	do {
		ret = fm_ep_recv(ep, buf, sizeof(buf), 0);
	} while (ret == -ETIMEDOUT);
	CHECK(ret == -ECONNRESET || ret == -ENOTCONN, "recv after kill: %d", ret);
	CHECK(fm_ep_state(ep, &reason) == FM_EP_CLOSED);
	if (strcmp(cfg.provider, "shm") == 0)
		CHECK(strstr(reason, "peer died") != NULL, "reason: %s", reason);
	fprintf(stderr, "[owner] killed peer seen as CLOSED: %s\n", reason);
	CHECK_RET(fm_ep_send(ep, "x", 1, 0), -ENOTCONN);
	fm_ep_delete(&ep);
	fm_listener_delete(&l);
	fm_transport_delete(&t);
	return 0;
}

static int kill_client(struct ctx *c)
{
	struct fm_transport *t;
	struct fm_ep *ep;

	if (transport_open(&t, FM_WAIT_BUSY, 0) || connect_retry(t, c, NULL, &ep))
		return -1;
	CHECK_RET(fm_ep_send(ep, "goodbye!", 8, 0), 0);
	usleep(100000);
	raise(SIGKILL);
	return -1;
}

/* ------------------------------------------ scenario: event mode */

#define PINGS 200

/* answer every ping that is there; 0 = drained and re-armed, 1 = the
 * client closed, -1 = error */
static int serve_pings(struct fm_ep *ep, int *pongs)
{
	uint32_t v;
	int r;

	for (;;) {
		while ((r = fm_ep_recv(ep, &v, sizeof(v), FM_NONBLOCK)) == 4) {
			v++;
			CHECK_RET(fm_ep_send(ep, &v, 4, 0), 0);
			(*pongs)++;
		}
		if (r != -EAGAIN)
			break;
		/* re-arm; what slipped in meanwhile is ready now and will NOT
		 * wake the fd again: serve it before sleeping */
		r = fm_ep_progress(ep);
		if (r <= 0)
			break;
	}
	if (r == 0)
		return 0;
	CHECK(r == -ENOTCONN || r == -ECONNRESET, "recv %d", r);
	CHECK(fm_ep_state(ep, NULL) == FM_EP_CLOSED);
	return 1;
}

static int event_owner(struct ctx *c)
{
	struct fm_transport *t;
	struct fm_listener *l;
	struct fm_region *locks;
	struct fm_region_desc d;
	struct fm_ep *eps[64], *self;
	struct epoll_event ev, evs[8];
	int efd, live, pongs = 0;
	uint64_t old;

	if (transport_open(&t, FM_WAIT_EVENT, 0))
		return -1;
	CHECK_RET(fm_region_new(t, 4096, FM_ACCESS_REMOTE_ATOMIC, &locks), 0);
	fm_region_desc(locks, &d);
	CHECK_RET(fm_listen(t, c->addr, &l), 0);
	CHECK_RET(fm_listener_loopback(l, &self), 0);
	if (accept_all(l, c->nclients, eps))
		return -1;
	efd = epoll_create1(0);
	CHECK(efd >= 0);
	for (int i = 0; i < c->nclients; i++) {
		if (send_descs(eps[i], &d, 1))
			return -1;
		ev.events = EPOLLIN;
		ev.data.u32 = (uint32_t)i;
		CHECK_RET(epoll_ctl(efd, EPOLL_CTL_ADD, fm_ep_fd(eps[i]), &ev), 0);
	}
	/* serve pings from all clients until every client closed; every
	 * endpoint is served once before the first sleep (fm_ep_progress
	 * above may already have taken pings off the wire) */
	live = c->nclients;
	for (int i = 0; i < c->nclients; i++) {
		int r = serve_pings(eps[i], &pongs);
		CHECK(r >= 0);
		if (r == 1) {
			CHECK_RET(epoll_ctl(efd, EPOLL_CTL_DEL, fm_ep_fd(eps[i]), NULL), 0);
			fm_ep_delete(&eps[i]);
			live--;
		}
	}
	while (live > 0) {
		int n = epoll_wait(efd, evs, 8, 30000);
		CHECK(n > 0, "epoll timed out with %d clients live", live);
		for (int k = 0; k < n; k++) {
			uint32_t i = evs[k].data.u32;
			int r;

			if (eps[i] == NULL)
				continue;
			r = serve_pings(eps[i], &pongs);
			CHECK(r >= 0);
			if (r == 1) {
				CHECK_RET(epoll_ctl(efd, EPOLL_CTL_DEL, fm_ep_fd(eps[i]), NULL), 0);
				fm_ep_delete(&eps[i]);
				live--;
			}
		}
	}
	CHECK(pongs == PINGS * c->nclients, "pongs %d", pongs);
	CHECK_RET(fm_ep_faa(self, &d, 0, 0, &old), 0);
	CHECK(old == (uint64_t)PINGS * c->nclients, "event-mode FAA sum %llu",
	      (unsigned long long)old);
	close(efd);
	fm_ep_delete(&self);
	fm_listener_delete(&l);
	fm_region_delete(&locks);
	fm_transport_delete(&t);
	return 0;
}

static int event_client(struct ctx *c)
{
	struct fm_transport *t;
	struct fm_region_desc d;
	struct fm_ep *ep;
	uint32_t v;

	if (transport_open(&t, FM_WAIT_EVENT, 0) || connect_retry(t, c, NULL, &ep))
		return -1;
	if (recv_descs(ep, &d, 1))
		return -1;
	for (uint32_t i = 0; i < PINGS; i++) {
		v = i * 2;
		CHECK_RET(fm_ep_send(ep, &v, 4, 0), 0);
		CHECK_RET(fm_ep_recv(ep, &v, sizeof(v), 0), 4);
		CHECK(v == i * 2 + 1, "pong %u", v);
		CHECK_RET(fm_ep_faa(ep, &d, 0, 1, NULL), 0);
	}
	fm_ep_delete(&ep);
	fm_transport_delete(&t);
	return 0;
}

/* -------------------------------------- scenario: no access before grant */

/* The peer's one-sided operations fail like a remote access error until
 * the owner grants (fm_ep_grant), whatever descriptor it holds; after the
 * grant the same descriptors work. */
static int nogrant_owner(struct ctx *c)
{
	struct fm_transport *t;
	struct fm_listener *l;
	struct fm_region *bm, *locks;
	struct fm_region_desc d[2];
	struct fm_ep *ep[2];
	uint64_t *w;

	if (transport_open(&t, FM_WAIT_BUSY, 0))
		return -1;
	CHECK_RET(fm_region_new(t, 8192, FM_ACCESS_REMOTE_READ, &bm), 0);
	CHECK_RET(fm_region_new(t, 4096, FM_ACCESS_REMOTE_ATOMIC, &locks), 0);
	fm_region_desc(bm, &d[0]);
	fm_region_desc(locks, &d[1]);
	memset(fm_region_ptr(bm), 0x5a, 8192);
	CHECK_RET(fm_listen(t, c->addr, &l), 0);
	/* first connection: descriptors, but no grant */
	if (accept_all(l, 1, &ep[0]) || send_descs_only(ep[0], d, 2) || wait_closed(ep[0]))
		return -1;
	w = fm_region_ptr(locks);
	CHECK(__atomic_load_n(&w[0], __ATOMIC_ACQUIRE) == 0, "an ungranted CAS landed: %llx",
	      (unsigned long long)w[0]);
	/* second connection: granted */
	if (accept_all(l, 1, &ep[1]) || send_descs(ep[1], d, 2) || wait_closed(ep[1]))
		return -1;
	CHECK(__atomic_load_n(&w[0], __ATOMIC_ACQUIRE) == 7, "the granted CAS did not land");
	for (int k = 0; k < 2; k++)
		fm_ep_delete(&ep[k]);
	fm_listener_delete(&l);
	fm_region_delete(&bm);
	fm_region_delete(&locks);
	fm_transport_delete(&t);
	return 0;
}

static int nogrant_client(struct ctx *c)
{
	struct fm_transport *t;
	struct fm_region *dst;
	struct fm_region_desc d[2];
	struct fm_ep *ep;
	const char *reason;
	uint64_t old;

	if (transport_open(&t, FM_WAIT_BUSY, 0) || connect_retry(t, c, NULL, &ep))
		return -1;
	CHECK_RET(fm_region_new(t, 8192, FM_ACCESS_LOCAL, &dst), 0);
	if (recv_descs(ep, d, 2))
		return -1;
	CHECK_RET(fm_ep_cas(ep, &d[1], 0, 0, 0xbad, &old), -EACCES);
	CHECK(fm_ep_state(ep, &reason) == FM_EP_CLOSED, "an ungranted CAS must close");
	CHECK(strstr(reason, "access") != NULL, "reason: %s", reason);
	CHECK(fm_ep_error(ep) == -EACCES, "error %d", fm_ep_error(ep));
	fm_ep_delete(&ep);

	if (connect_retry(t, c, NULL, &ep) || recv_descs(ep, d, 2))
		return -1;
	CHECK_RET(fm_ep_read(ep, dst, 0, &d[0], 0, 8192), 0);
	CHECK(((uint8_t *)fm_region_ptr(dst))[8191] == 0x5a);
	CHECK_RET(fm_ep_cas(ep, &d[1], 0, 0, 7, &old), 0);
	CHECK(old == 0);
	fm_ep_delete(&ep);
	fm_region_delete(&dst);
	fm_transport_delete(&t);
	return 0;
}

/* ------------------------------------------------ scenario: fence */

/* The owner fences a granted client that keeps CASing: verbs reaches RDMA
 * at once (and cannot do more); shm kills the process (DEAD).  From then
 * on no CAS of the client lands: the counter stops. */
static int fence_owner(struct ctx *c)
{
	struct fm_transport *t;
	struct fm_listener *l;
	struct fm_region *locks;
	struct fm_region_desc d;
	struct fm_ep *ep;
	uint64_t *w, at_fence;
	char buf[16];
	int level, tries = 0;
	bool shm = strcmp(cfg.provider, "shm") == 0;

	if (transport_open(&t, FM_WAIT_BUSY, 0))
		return -1;
	CHECK_RET(fm_region_new(t, 4096, FM_ACCESS_REMOTE_ATOMIC, &locks), 0);
	fm_region_desc(locks, &d);
	CHECK_RET(fm_listen(t, c->addr, &l), 0);
	if (accept_all(l, 1, &ep) || send_descs(ep, &d, 1))
		return -1;
	CHECK_RET(fm_ep_recv(ep, buf, sizeof(buf), 0), 5); /* "going": it FAAs now */
	w = fm_region_ptr(locks);
	while (__atomic_load_n(&w[0], __ATOMIC_ACQUIRE) < 100)
		usleep(1000);
	CHECK(shm ? fm_ep_fence_fd(ep) >= 0 : fm_ep_fence_fd(ep) == -1, "fence fd %d",
	      fm_ep_fence_fd(ep));
	while ((level = fm_ep_fence(ep, FM_FENCE_F_KILL)) == -EINPROGRESS) {
		CHECK(shm, "verbs fences at once");
		CHECK(++tries < 10000, "fence never completed: %s", fm_errormsg());
		usleep(1000);
	}
	CHECK(level == (shm ? FM_FENCE_DEAD : FM_FENCE_RDMA), "fence level %d", level);
	CHECK(fm_ep_state(ep, NULL) == FM_EP_CLOSED);
	CHECK_RET(fm_ep_fence(ep, 0), level); /* final */
	at_fence = __atomic_load_n(&w[0], __ATOMIC_ACQUIRE);
	usleep(300000); /* a live client would keep counting */
	CHECK(__atomic_load_n(&w[0], __ATOMIC_ACQUIRE) == at_fence,
	      "a fenced client's FAA landed: %llu -> %llu", (unsigned long long)at_fence,
	      (unsigned long long)w[0]);
	fprintf(stderr, "[owner] fenced at level %d after %llu FAAs\n", level,
		(unsigned long long)at_fence);
	fm_ep_delete(&ep);
	fm_listener_delete(&l);
	fm_region_delete(&locks);
	fm_transport_delete(&t);
	return 0;
}

static int fence_client(struct ctx *c)
{
	struct fm_transport *t;
	struct fm_region_desc d;
	struct fm_ep *ep;
	int ret;

	if (transport_open(&t, FM_WAIT_BUSY, 0) || connect_retry(t, c, NULL, &ep))
		return -1;
	if (recv_descs(ep, &d, 1))
		return -1;
	if (strcmp(cfg.provider, "shm") == 0) { /* only the owner fences */
		CHECK_RET(fm_ep_fence(ep, 0), -EOPNOTSUPP);
		CHECK(fm_ep_state(ep, NULL) == FM_EP_UP);
	}
	CHECK_RET(fm_ep_send(ep, "going", 5, 0), 0);
	do /* until the fence stops us (shm: SIGKILL ends this process) */
		ret = fm_ep_faa(ep, &d, 0, 1, NULL);
	while (ret == 0);
	fprintf(stderr, "[client] FAA after the fence: %d (%s)\n", ret, fm_errormsg());
	fm_ep_delete(&ep);
	fm_transport_delete(&t);
	return 0;
}

/* ------------------------------------------------------------ runner */

struct scenario {
	const char *name;
	int (*owner)(struct ctx *);
	int (*client)(struct ctx *);
	bool single;  /* one client (index 0) instead of all */
	bool killed;  /* the client ends by SIGKILL */
};

static const struct scenario scenarios[] = {
	{"hello", hello_owner, hello_client, false, false},
	{"read", read_owner, read_client, false, false},
	{"faa_contention", faa_owner, faa_client, false, false},
	{"cas_mutex", mutex_owner, mutex_client, false, false},
	{"credits", credits_owner, credits_client, true, false},
	{"msg_size", msgsize_owner, msgsize_client, true, false},
	{"bad_access", badaccess_owner, badaccess_client, true, false},
	{"peer_kill", kill_owner, kill_client, true, true},
	{"event_mode", event_owner, event_client, false, false},
	{"no_grant", nogrant_owner, nogrant_client, true, false},
	{"fence", fence_owner, fence_client, true, true},
	/* lanes: lane_scenarios.c */
	{"lane_inflight", lane_inflight_owner, lane_inflight_client, false, false},
	{"lane_threads", lane_threads_owner, lane_threads_client, false, false},
	{"lane_event", lane_event_owner, lane_event_client, false, false},
	{"lane_peer_close", lane_peer_close_owner, lane_peer_close_client, true, false},
	{"lane_local_close", lane_local_close_owner, lane_local_close_client, true, false},
	{"lane_fence", lane_fence_owner, lane_fence_client, true, true},
};
#define NSCN ((int)(sizeof(scenarios) / sizeof(scenarios[0])))

static int scn_clients(const struct scenario *s)
{
	return s->single ? 1 : cfg.clients;
}

static int run_client_proc(const struct scenario *s, int k, int index)
{
	struct ctx c = {.scn = k, .nclients = scn_clients(s), .index = index};
	char who[32];

	snprintf(who, sizeof(who), "client %d", index);
	whoami = who;
	scenario_addr(&c);
	return s->client(&c) ? 1 : 0;
}

/* fork `n` clients with indexes first..first+n-1; returns pids */
static int fork_clients(const struct scenario *s, int k, int first, int n, pid_t *pids)
{
	for (int i = 0; i < n; i++) {
		pids[i] = fork();
		if (pids[i] < 0)
			return -errno;
		if (pids[i] == 0) {
			alarm(240);
			_exit(run_client_proc(s, k, first + i));
		}
	}
	return 0;
}

static int reap_clients(const struct scenario *s, pid_t *pids, int n)
{
	int bad = 0;

	for (int i = 0; i < n; i++) {
		int st;

		if (waitpid(pids[i], &st, 0) < 0) {
			bad++;
			continue;
		}
		if (s->killed && WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL)
			continue;
		if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
			fprintf(stderr, "[%s] client pid %d: %s %d\n", s->name, (int)pids[i],
				WIFEXITED(st) ? "exit" : "signal",
				WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
			bad++;
		}
	}
	return bad ? -1 : 0;
}

/* both roles here: clients forked first (before any RDMA resource exists
 * in this process), owner in this process */
static int run_both(int k)
{
	const struct scenario *s = &scenarios[k];
	struct ctx c = {.scn = k, .nclients = scn_clients(s)};
	pid_t pids[64];
	int ret, ret2;

	scenario_addr(&c);
	if (fork_clients(s, k, 0, c.nclients, pids))
		return -1;
	whoami = "owner";
	ret = s->owner(&c);
	if (ret) {
		for (int i = 0; i < c.nclients; i++)
			kill(pids[i], SIGKILL);
	}
	ret2 = reap_clients(s, pids, c.nclients);
	return ret ? ret : ret2;
}

/*
 * in_child -- run fn(k) in a fresh child process: 0, 77 or -1.
 * A verbs context belongs to the process that opened it (librdmacm keeps
 * its devices open for the life of the process): processes forked after
 * the first RDMA call would inherit contexts the kernel refuses them
 * (EACCES on post).  So the runner itself never opens a transport; every
 * scenario runs in its own child, which forks its clients before it
 * creates anything.
 */
static int in_child(int (*fn)(int), int k)
{
	pid_t pid = fork();
	int st, r;

	if (pid < 0)
		return -1;
	if (pid == 0) {
		r = fn(k);
		_exit(r == 0 ? 0 : r == 77 ? 77 : 1);
	}
	if (waitpid(pid, &st, 0) < 0 || !WIFEXITED(st))
		return -1;
	return WEXITSTATUS(st) == 0 ? 0 : WEXITSTATUS(st) == 77 ? 77 : -1;
}

/* can this provider open here?  0, 77 (no device: skip) or 1 */
static int probe_provider(int k)
{
	struct fm_transport *t;
	struct fm_transport_cfg tc = {.provider = cfg.provider, .device = getenv("FM_RDMA_DEV")};
	int r = fm_transport_new(&t, &tc);

	(void)k;
	if (r == -ENODEV) {
		printf("%s\n", fm_errormsg());
		return 77;
	}
	if (r) {
		fprintf(stderr, "fm_transport_new(%s): %s\n", cfg.provider, fm_errormsg());
		return 1;
	}
	fm_transport_delete(&t);
	return 0;
}

static int run_role(int k)
{
	const struct scenario *s = &scenarios[k];
	struct ctx c = {.scn = k, .nclients = scn_clients(s)};
	pid_t pids[64];
	int n = 0;

	scenario_addr(&c);
	if (strcmp(cfg.role, "owner") == 0)
		return s->owner(&c);
	for (int i = 0; i < cfg.procs; i++)
		if (cfg.index + i < c.nclients)
			n++;
	if (n == 0)
		return 0;
	if (fork_clients(s, k, cfg.index, n, pids))
		return -1;
	return reap_clients(s, pids, n);
}

static void cmocka_scenario(void **state)
{
	int k = (int)(intptr_t)*state;

	assert_int_equal(in_child(run_both, k), 0);
}

static int setup_k(void **state)
{
	(void)state;
	return 0;
}

#define SCN_TEST(k) cmocka_unit_test_prestate_setup_teardown(cmocka_scenario, NULL, NULL, (void *)(intptr_t)(k))

/* transport-level unit tests that need no peer */
static void transport__unknown_provider__enoent(void **state)
{
	struct fm_transport *t = (void *)1;
	struct fm_transport_cfg c = {.provider = "carrier-pigeon"};

	(void)state;
	assert_int_equal(fm_transport_new(&t, &c), -ENOENT);
	assert_null(t);
	c.provider = "shm";
	c.credits = 1;
	assert_int_equal(fm_transport_new(&t, &c), -EINVAL);
}

static void transport__verbs_without_device__enodev_or_works(void **state)
{
	struct fm_transport *t = NULL;
	struct fm_transport_cfg c = {.provider = "verbs"};
	int ret = fm_transport_new(&t, &c);

	(void)state;
	if (ret == 0) { /* a machine with RDMA: fine too */
		struct fm_caps caps;
		fm_transport_caps(t, &caps);
		assert_string_equal(caps.provider, "verbs");
		fm_transport_delete(&t);
		return;
	}
	assert_int_equal(ret, -ENODEV);
	assert_non_null(strstr(fm_errormsg(), "no RDMA device"));
	c.device = "nosuchdev0";
	assert_int_equal(fm_transport_new(&t, &c), -ENODEV);
}

static void shm__region_desc__roundtrip_and_keys(void **state)
{
	struct fm_transport *t;
	struct fm_region *a, *b;
	struct fm_region_desc da, db, dd;
	struct fm_listener *l, *l2;
	struct fm_ep *ep;
	uint8_t wire[FM_REGION_DESC_WIRE_SIZE];
	char name[64];

	(void)state;
	assert_int_equal(fm_transport_new(&t, NULL), 0);
	assert_int_equal(fm_region_new(t, 100, FM_ACCESS_REMOTE_READ, &a), 0);
	assert_int_equal(fm_region_new(t, 100, 0x80, &b), -EINVAL);
	assert_int_equal(fm_region_reg(t, name, sizeof(name), FM_ACCESS_REMOTE_READ, &b),
			 -EOPNOTSUPP);
	assert_int_equal(fm_region_new(t, 100, FM_ACCESS_REMOTE_ATOMIC, &b), 0);
	fm_region_desc(a, &da);
	fm_region_desc(b, &db);
	assert_int_not_equal(da.key, 0);
	assert_int_not_equal(da.addr, db.addr);
	assert_int_equal((uintptr_t)fm_region_ptr(a) % 4096, 0);
	fm_region_desc_encode(&da, wire);
	fm_region_desc_decode(wire, &dd);
	assert_memory_equal(&da, &dd, sizeof(da));
	assert_int_equal(wire[16], da.key & 0xff); /* little-endian */

	/* a deleted region's key is refused, and the endpoint closes */
	snprintf(name, sizeof(name), "shm:/flashmeta-unit-%d", (int)getpid());
	assert_int_equal(fm_listen(t, name, &l), 0);
	assert_int_equal(fm_listen(t, name, &l2), -EADDRINUSE);
	assert_int_equal(fm_listener_loopback(l, &ep), 0);
	assert_int_equal(fm_ep_faa(ep, &db, 0, 5, NULL), 0);
	assert_int_equal(*(uint64_t *)fm_region_ptr(b), 5);
	fm_region_delete(&b);
	assert_null(b);
	assert_int_equal(fm_ep_faa(ep, &db, 0, 5, NULL), -EACCES);
	assert_int_equal(fm_ep_state(ep, NULL), FM_EP_CLOSED);
	fm_ep_delete(&ep);
	fm_ep_delete(&ep); /* NULL-safe */
	fm_listener_delete(&l);
	fm_region_delete(&a);
	fm_transport_delete(&t);
	fm_transport_delete(&t);
}

static void shm__connect_nobody__econnrefused(void **state)
{
	struct fm_transport *t;
	struct fm_ep *ep;
	char big[FM_HELLO_MAX + 1] = {0};

	(void)state;
	assert_int_equal(fm_transport_new(&t, NULL), 0);
	assert_int_equal(fm_connect(t, "shm:/flashmeta-nobody-here", NULL, 0, 100, &ep),
			 -ECONNREFUSED);
	assert_int_equal(fm_connect(t, "shm:/x", big, sizeof(big), 100, &ep), -EMSGSIZE);
	fm_transport_delete(&t);
}

static void usage(FILE *f)
{
	fprintf(f, "usage: test_transport [--provider shm|verbs] [--addr ADDR]\n"
		   "         [--role both|owner|client] [--clients N] [--index I] [--procs P]\n"
		   "         [--iters N] [--only SCENARIO] [--list]\n"
		   "  no --role and provider shm: the cmocka suite (native).\n"
		   "  env FM_RDMA_DEV selects the verbs device.\n");
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"provider", required_argument, NULL, 'p'}, {"addr", required_argument, NULL, 'a'},
		{"role", required_argument, NULL, 'r'},     {"clients", required_argument, NULL, 'c'},
		{"index", required_argument, NULL, 'i'},    {"procs", required_argument, NULL, 'P'},
		{"iters", required_argument, NULL, 'n'},    {"only", required_argument, NULL, 'o'},
		{"list", no_argument, NULL, 'l'},           {"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0}};
	bool role_given = false;
	int o, fails = 0, ret;

	while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (o) {
		case 'p': cfg.provider = optarg; break;
		case 'a': snprintf(cfg.addr, sizeof(cfg.addr), "%s", optarg); break;
		case 'r': cfg.role = optarg; role_given = true; break;
		case 'c': cfg.clients = atoi(optarg); break;
		case 'i': cfg.index = atoi(optarg); break;
		case 'P': cfg.procs = atoi(optarg); break;
		case 'n': cfg.iters = atoi(optarg); break;
		case 'o': cfg.only = optarg; break;
		case 'l':
			for (int k = 0; k < NSCN; k++)
				printf("%s\n", scenarios[k].name);
			return 0;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (cfg.clients < 1 || cfg.clients > 64 || cfg.procs < 1 || cfg.procs > 64) {
		usage(stderr);
		return 2;
	}
	if (cfg.addr[0] == '\0') {
		if (strcmp(cfg.provider, "shm") == 0)
			snprintf(cfg.addr, sizeof(cfg.addr), "shm:/flashmeta-tt-%d", (int)getpid());
		else if (getenv("FM_TEST_ADDR"))
			snprintf(cfg.addr, sizeof(cfg.addr), "%s", getenv("FM_TEST_ADDR"));
		else if (getenv("FM_NODE_ADDRS")) /* the cluster contract: node 0 */
			snprintf(cfg.addr, sizeof(cfg.addr), "%.*s:7471",
				 (int)strcspn(getenv("FM_NODE_ADDRS"), " "),
				 getenv("FM_NODE_ADDRS"));
		else {
			fprintf(stderr, "--addr IP:PORT (or FM_TEST_ADDR) is required for verbs\n");
			return 2;
		}
	}
	setvbuf(stdout, NULL, _IOLBF, 0);

	if (!role_given && strcmp(cfg.provider, "shm") == 0 && cfg.only == NULL) {
		const struct CMUnitTest tests[] = {
			cmocka_unit_test(transport__unknown_provider__enoent),
			cmocka_unit_test(transport__verbs_without_device__enodev_or_works),
			cmocka_unit_test(shm__region_desc__roundtrip_and_keys),
			cmocka_unit_test(shm__connect_nobody__econnrefused),
		};
		struct CMUnitTest stests[NSCN];
		int r;

		(void)setup_k;
		for (int k = 0; k < NSCN; k++) {
			stests[k] = (struct CMUnitTest)SCN_TEST(k);
			stests[k].name = scenarios[k].name;
		}
		r = cmocka_run_group_tests_name("transport", tests, NULL, NULL);
		r += _cmocka_run_group_tests("shm_scenarios", stests, NSCN, NULL, NULL);
		return r ? 1 : 0;
	}

	/* plain runner: the same scenarios, any provider, any role */
	ret = in_child(probe_provider, 0);
	if (ret == 77) {
		printf("SKIP: no RDMA device for provider %s\n", cfg.provider);
		return 77;
	}
	if (ret)
		return 1;
	for (int k = 0; k < NSCN; k++) {
		time_t t0 = time(NULL);

		if (cfg.only && strcmp(cfg.only, scenarios[k].name) != 0)
			continue;
		ret = in_child(strcmp(cfg.role, "both") == 0 ? run_both : run_role, k);
		printf("%s %s %s (%lds)\n", ret ? "FAIL" : "ok  ", cfg.role, scenarios[k].name,
		       (long)(time(NULL) - t0));
		fails += ret != 0;
	}
	printf("%d of %d scenarios failed\n", fails, cfg.only ? 1 : NSCN);
	return fails ? 1 : 0;
}
