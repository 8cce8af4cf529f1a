/* test_shm_trust.c -- the shm provider's trust boundary (transport.h, SHM
 * TRUST MODEL), against real separate processes.
 *
 * Each test is the owner (this process) and one or more peers (forked
 * children reporting by exit status, shm_peer.h).  What is checked:
 *   - nothing of the owner's memory reaches a peer before fm_ep_grant: not
 *     through the library, not through a raw handshake;
 *   - ring geometry and indices a peer rewrites never hurt the owner; bad
 *     indices close only that peer's endpoint, with -EPROTO;
 *   - a peer of another uid, or one the owner could not kill, is refused at
 *     accept, and gets nothing;
 *   - a granted client cannot make the READ arena (split bitmaps, region
 *     table) writable;
 *   - a grant is mapped before a message sent after it is handed out;
 *   - region space is reused, and a full or unmappable arena says so;
 *   - what a peer may make the owner allocate is bounded;
 *   - messages sent before fm_ep_delete are delivered before the close.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "flashmeta/error.h"
#include "flashmeta/le.h"
#include "flashmeta/transport.h"
#include "shm_peer.h"
#include "transport_priv.h" /* the connection private data, for raw peers */

#define MAGIC 0xf1a5b17f1a5b17f1ull
#define NOBODY 65534

static char addr[96];
static int seq;

static void new_addr(void)
{
	snprintf(addr, sizeof(addr), "shm:/flashmeta-trust-%d-%d", (int)getpid(), ++seq);
}

/* the owner: a transport with a bitmap (READ, MAGIC in its first word) and
 * a lock table (ATOMIC, zero), listening on addr */
struct owner {
	struct fm_transport *t;
	struct fm_listener *l;
	struct fm_region *bm, *lk;
	struct fm_region_desc d[2];
};

static void owner_open(struct owner *o, const struct fm_transport_cfg *cfg)
{
	struct fm_transport_cfg c = {.op_timeout_ms = 10000};

	if (cfg)
		c = *cfg;
	assert_int_equal(fm_transport_new(&o->t, &c), 0);
	assert_int_equal(fm_region_new(o->t, 8192, FM_ACCESS_REMOTE_READ, &o->bm), 0);
	assert_int_equal(fm_region_new(o->t, 4096, FM_ACCESS_REMOTE_ATOMIC, &o->lk), 0);
	*(uint64_t *)fm_region_ptr(o->bm) = MAGIC;
	fm_region_desc(o->bm, &o->d[0]);
	fm_region_desc(o->lk, &o->d[1]);
	assert_int_equal(fm_listen(o->t, addr, &o->l), 0);
}

/* the owner's memory is as it made it: nobody wrote a bit or a lock word */
static void owner_intact(struct owner *o)
{
	const uint64_t *b = fm_region_ptr(o->bm), *w = fm_region_ptr(o->lk);

	assert_true(b[0] == MAGIC);
	for (size_t i = 1; i < 8192 / 8; i++)
		assert_true(b[i] == 0);
	for (size_t i = 0; i < 4096 / 8; i++)
		assert_true(__atomic_load_n(&w[i], __ATOMIC_ACQUIRE) == 0);
}

static void owner_close(struct owner *o)
{
	fm_listener_delete(&o->l);
	fm_region_delete(&o->bm);
	fm_region_delete(&o->lk);
	fm_transport_delete(&o->t);
}

static void assert_exit0(struct peer *p)
{
	int st = peer_wait(p);

	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
		fail_msg("peer %d: %s %d", (int)p->pid, WIFEXITED(st) ? "exit" : "signal",
			 WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
}

/* ----------------------------------- nothing mapped before the grant */

static int ungranted_peer(struct peer *p)
{
	struct fm_transport *t;
	struct fm_region *dst;
	struct fm_region_desc d[2];
	struct fm_ep *ep;
	uint64_t old;

	PEER_CHECK(fm_transport_new(&t, NULL) == 0, "transport");
	PEER_CHECK(fm_region_new(t, 8192, FM_ACCESS_LOCAL, &dst) == 0, "dst");
	PEER_CHECK(peer_connect(t, p->addr, NULL, &ep) == 0, "connect");
	PEER_CHECK(peer_recv_descs(ep, d, 2) == 0, "descriptors");
	/* connected, descriptors in hand, not granted: no fd, no mapping of
	 * anything but the rings */
	PEER_CHECK(self_memfd_fds("flashmeta-", NULL) == 0, "an fd of the owner's memory");
	PEER_CHECK(self_memfd_maps("flashmeta-", "flashmeta-rings") == 0,
		   "a mapping of the owner's memory before the grant");
	PEER_CHECK(fm_ep_cas(ep, &d[1], 0, 0, 0xbad, &old) == -EACCES, "ungranted CAS");
	PEER_CHECK(fm_ep_error(ep) == -EACCES, "error %d", fm_ep_error(ep));
	fm_ep_delete(&ep);
	PEER_CHECK(peer_connect(t, p->addr, NULL, &ep) == 0, "connect");
	PEER_CHECK(peer_recv_descs(ep, d, 2) == 0, "descriptors");
	PEER_CHECK(fm_ep_faa(ep, &d[1], 8, 1, &old) == -EACCES, "ungranted FAA");
	fm_ep_delete(&ep);
	PEER_CHECK(peer_connect(t, p->addr, NULL, &ep) == 0, "connect");
	PEER_CHECK(peer_recv_descs(ep, d, 2) == 0, "descriptors");
	PEER_CHECK(fm_ep_read(ep, dst, 0, &d[0], 0, 8) == -EACCES, "ungranted READ");
	fm_ep_delete(&ep);
	return 0;
}

static void trust__ungranted_client__no_region_memory(void **state)
{
	struct owner o;
	struct peer p;
	struct fm_ep *ep;

	(void)state;
	new_addr();
	peer_start(&p, addr, 0, ungranted_peer, NULL);
	owner_open(&o, NULL);
	for (int k = 0; k < 3; k++) {
		assert_int_equal(fm_listener_accept(o.l, 20000, &ep), 0);
		assert_int_equal(owner_send_descs(ep, o.d, 2, false), 0);
		while (fm_ep_progress(ep) >= 0)
			usleep(1000);
		fm_ep_delete(&ep);
	}
	assert_exit0(&p);
	owner_intact(&o);
	owner_close(&o);
}

/* A raw peer: our handshake by hand, then whatever fds come back are
 * mapped writable and scribbled over -- a process with no key, not using
 * the library. */
static int raw_connect(const char *a)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	const char *name = a + strlen("shm:/");
	int s = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);

	memcpy(sun.sun_path + 1, name, strlen(name));
	for (int i = 0; i < 500; i++) {
		if (connect(s, (struct sockaddr *)&sun,
			    (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + strlen(name))) == 0)
			return s;
		usleep(10000);
	}
	return -1;
}

static void raw_request(uint8_t buf[FM_CONN_PRIV_SIZE], uint16_t credits, uint16_t ctrl,
			uint32_t msg_size)
{
	memset(buf, 0, FM_CONN_PRIV_SIZE);
	fm_put_le16(buf, FM_CONN_MAGIC);
	buf[2] = FM_TRANSPORT_WIRE_VERSION;
	fm_put_le16(buf + 4, credits);
	fm_put_le16(buf + 6, ctrl);
	fm_put_le32(buf + 8, msg_size);
}

/* receive the reply; every fd in it is mapped RW and overwritten; returns
 * the number of fds (-1: no reply) */
static int raw_reply_scribble(int s, int *nrings)
{
	uint8_t buf[256];
	char cbuf[CMSG_SPACE(16 * sizeof(int))];
	struct iovec iov = {.iov_base = buf, .iov_len = sizeof(buf)};
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
			    .msg_controllen = sizeof(cbuf)};
	int nfd = 0;

	*nrings = 0;
	if (recvmsg(s, &mh, 0) <= 0)
		return -1;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
		for (size_t k = 0; k < (c->cmsg_len - CMSG_LEN(0)) / sizeof(int); k++) {
			char path[64], target[128] = "";
			off_t size;
			int fd;
			void *m;

			memcpy(&fd, CMSG_DATA(c) + k * sizeof(int), sizeof(int));
			nfd++;
			snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
			(void)!readlink(path, target, sizeof(target) - 1);
			if (strstr(target, "flashmeta-rings"))
				++*nrings;
			size = lseek(fd, 0, SEEK_END);
			if (size > (1 << 20))
				size = 1 << 20;
			if (size <= 0)
				continue;
			m = mmap(NULL, (size_t)size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
			if (m != MAP_FAILED) {
				memset(m, 0xff, (size_t)size);
				munmap(m, (size_t)size);
			}
		}
	}
	return nfd;
}

static int raw_peer(struct peer *p)
{
	uint8_t req[FM_CONN_PRIV_SIZE];
	int s = raw_connect(p->addr), nrings, n;

	PEER_CHECK(s >= 0, "connect");
	raw_request(req, 16, 4, 4096);
	PEER_CHECK(send(s, req, sizeof(req), 0) == (ssize_t)sizeof(req), "request");
	n = raw_reply_scribble(s, &nrings);
	PEER_CHECK(n == 1 && nrings == 1, "the reply carried %d fds (%d rings): only the ring "
		   "memfd may come before the grant", n, nrings);
	peer_send(p->from[1], 'd');
	(void)peer_recv(p->to[0], 10000);
	close(s);

	/* a request carrying an fd is refused: the owner takes nothing of ours */
	s = raw_connect(p->addr);
	PEER_CHECK(s >= 0, "connect");
	{
		char cbuf[CMSG_SPACE(sizeof(int))];
		struct iovec iov = {.iov_base = req, .iov_len = sizeof(req)};
		struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
				    .msg_controllen = sizeof(cbuf)};
		struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
		int fd = memfd_create("bait", MFD_CLOEXEC);

		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(c), &fd, sizeof(int));
		PEER_CHECK(sendmsg(s, &mh, 0) == (ssize_t)sizeof(req), "request with an fd");
	}
	n = raw_reply_scribble(s, &nrings);
	PEER_CHECK(n == -1, "a request with an fd got a reply (%d fds)", n);
	return 0;
}

static void trust__raw_peer__gets_only_the_rings(void **state)
{
	struct owner o;
	struct peer p;
	struct fm_ep *ep;

	(void)state;
	new_addr();
	peer_start(&p, addr, 0, raw_peer, NULL);
	owner_open(&o, NULL);
	assert_int_equal(fm_listener_accept(o.l, 20000, &ep), 0);
	assert_int_equal(peer_recv(p.from[0], 20000), 'd'); /* it scribbled */
	owner_intact(&o);
	fm_ep_delete(&ep);
	peer_send(p.to[1], 'n');
	assert_int_equal(fm_listener_accept(o.l, 20000, &ep), -EPROTO);
	assert_non_null(strstr(fm_errormsg(), "fds"));
	assert_exit0(&p);
	owner_intact(&o);
	owner_close(&o);
}

/* ------------------------------------------- peer limits at accept */

static int greedy_peer(struct peer *p)
{
	static const struct {
		uint16_t credits, ctrl;
		uint32_t msg;
	} asks[] = {{60000, 4, 4096}, {16, 200, 4096}, {16, 4, 1u << 30}};
	uint8_t req[FM_CONN_PRIV_SIZE];

	for (size_t i = 0; i < sizeof(asks) / sizeof(asks[0]); i++) {
		int s = raw_connect(p->addr), nrings;

		PEER_CHECK(s >= 0, "connect");
		raw_request(req, asks[i].credits, asks[i].ctrl, asks[i].msg);
		PEER_CHECK(send(s, req, sizeof(req), 0) == (ssize_t)sizeof(req), "request");
		PEER_CHECK(raw_reply_scribble(s, &nrings) == -1, "ask %zu was served", i);
		close(s);
	}
	return 0;
}

static void trust__greedy_request__refused_with_a_clear_error(void **state)
{
	static const char *const why[] = {"receive credits", "control credits", "messages"};
	struct owner o;
	struct peer p;
	struct fm_ep *ep;

	(void)state;
	new_addr();
	peer_start(&p, addr, 0, greedy_peer, NULL);
	owner_open(&o, NULL);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(fm_listener_accept(o.l, 20000, &ep), -EPROTO);
		printf("refused: %s\n", fm_errormsg());
		assert_non_null(strstr(fm_errormsg(), why[i]));
	}
	assert_exit0(&p);
	owner_close(&o);
}

/* ------------------------------------- ring geometry and indices */

/* what the test knows of the geometry: 16 + 4 slots each way, 4096-byte
 * messages (both sides' defaults here) */
#define RING_STRIDE ((4u + 16u + 4096u + 7u) & ~7u)
#define RING_C2O_BYTES ((256u + 20u * RING_STRIDE + 63u) & ~63u)

enum evil_kind { EVIL_NSLOTS0, EVIL_STRIDE, EVIL_HEAD, EVIL_TAIL };

/* a client that, after one honest message, rewrites its rings: the old
 * geometry fields (slot count 0, a stride far beyond the mapping) with a
 * copy of its message published behind them, or impossible indices */
static int evil_peer(struct peer *p)
{
	enum evil_kind kind = *(enum evil_kind *)p->arg;
	struct fm_transport *t;
	struct fm_region_desc d[2];
	struct fm_ep *ep;
	uint8_t *rings;
	_Atomic uint32_t *head, *tail;
	size_t len;

	PEER_CHECK(fm_transport_new(&t, NULL) == 0, "transport");
	PEER_CHECK(peer_connect(t, p->addr, "evil", &ep) == 0, "connect");
	PEER_CHECK(peer_recv_descs(ep, d, 2) == 0, "descriptors");
	PEER_CHECK(fm_ep_send(ep, "ping1", 5, 0) == 0, "send");
	PEER_CHECK(self_ring_map(&rings, &len) == 0, "no ring mapping");
	PEER_CHECK(len >= 2 * RING_C2O_BYTES - 4096, "ring mapping of %zu bytes", len);
	head = (_Atomic uint32_t *)(void *)rings;                  /* client->owner */
	tail = (_Atomic uint32_t *)(void *)(rings + RING_C2O_BYTES + 64); /* owner->client */
	switch (kind) {
	case EVIL_NSLOTS0:
	case EVIL_STRIDE:
		/* where the geometry used to be: slot count at 192, stride at 196 */
		if (kind == EVIL_NSLOTS0)
			memset(rings + 192, 0, 4);
		else
			memcpy(rings + 196, &(uint32_t){0x7ffff000u}, 4);
		/* slot 1 := slot 0 (a valid message), then publish it */
		memcpy(rings + 256 + RING_STRIDE, rings + 256, RING_STRIDE);
		atomic_store(head, 2);
		break;
	case EVIL_HEAD:
		atomic_store(head, 1 + 1000);
		break;
	case EVIL_TAIL:
		atomic_store(tail, 0x80000000u);
		break;
	}
	peer_send(p->from[1], 'x');
	(void)peer_recv(p->to[0], 20000);
	return 0;
}

static int good_peer(struct peer *p)
{
	struct fm_transport *t;
	struct fm_region_desc d[2];
	struct fm_ep *ep;
	char buf[16];

	PEER_CHECK(fm_transport_new(&t, NULL) == 0, "transport");
	PEER_CHECK(peer_connect(t, p->addr, "good", &ep) == 0, "connect");
	PEER_CHECK(peer_recv_descs(ep, d, 2) == 0, "descriptors");
	for (;;) { /* echo until the owner closes */
		int n = fm_ep_recv(ep, buf, sizeof(buf), 0);

		if (n == -ETIMEDOUT)
			continue;
		if (n < 0)
			break;
		PEER_CHECK(fm_ep_send(ep, buf, (size_t)n, 0) == 0, "echo");
	}
	fm_ep_delete(&ep);
	return 0;
}

static void echo_ok(struct fm_ep *good)
{
	char buf[16];

	assert_int_equal(fm_ep_send(good, "still?", 6, 0), 0);
	assert_int_equal(fm_ep_recv(good, buf, sizeof(buf), 0), 6);
	assert_memory_equal(buf, "still?", 6);
}

static void evil_case(enum evil_kind kind)
{
	struct owner o;
	struct peer pe, pg;
	struct fm_ep *ep[2], *evil = NULL, *good = NULL;
	char buf[16], hello[8];
	int n, got = 0;

	new_addr();
	peer_start(&pe, addr, 0, evil_peer, &kind);
	peer_start(&pg, addr, 1, good_peer, NULL);
	owner_open(&o, NULL);
	for (int i = 0; i < 2; i++) {
		assert_int_equal(fm_listener_accept(o.l, 20000, &ep[i]), 0);
		n = (int)fm_ep_hello(ep[i], hello, sizeof(hello));
		if (n == 4 && memcmp(hello, "evil", 4) == 0)
			evil = ep[i];
		else
			good = ep[i];
		assert_int_equal(owner_send_descs(ep[i], o.d, 2, true), 0);
	}
	assert_non_null(evil);
	assert_non_null(good);
	assert_int_equal(peer_recv(pe.from[0], 20000), 'x'); /* it did its worst */
	switch (kind) {
	case EVIL_NSLOTS0:
	case EVIL_STRIDE:
		/* the owner never read the geometry: both copies arrive */
		while (got < 2) {
			n = fm_ep_recv(evil, buf, sizeof(buf), 0);
			assert_int_equal(n, 5);
			assert_memory_equal(buf, "ping1", 5);
			got++;
		}
		assert_int_equal(fm_ep_state(evil, NULL), FM_EP_UP);
		break;
	case EVIL_HEAD:
		/* 1001 unread slots of 20: the whole claim is refused */
		assert_true(fm_ep_recv(evil, buf, sizeof(buf), 0) < 0);
		assert_int_equal(fm_ep_state(evil, NULL), FM_EP_CLOSED);
		assert_int_equal(fm_ep_error(evil), -EPROTO);
		break;
	case EVIL_TAIL:
		assert_int_equal(fm_ep_send(evil, "boo", 3, 0), -EPROTO);
		assert_int_equal(fm_ep_state(evil, NULL), FM_EP_CLOSED);
		assert_int_equal(fm_ep_error(evil), -EPROTO);
		break;
	}
	{
		const char *reason;

		fm_ep_state(evil, &reason);
		printf("evil endpoint: %s (%s)\n", fm_ep_state_name(fm_ep_state(evil, NULL)),
		       reason);
	}
	echo_ok(good); /* the other client is served as before */
	peer_send(pe.to[1], 'q');
	fm_ep_delete(&ep[0]);
	fm_ep_delete(&ep[1]);
	assert_exit0(&pe);
	assert_exit0(&pg);
	owner_intact(&o);
	owner_close(&o);
}

static void trust__ring_slot_count_zero__owner_unharmed(void **state)
{
	(void)state;
	evil_case(EVIL_NSLOTS0);
}

static void trust__ring_huge_stride__owner_unharmed(void **state)
{
	(void)state;
	evil_case(EVIL_STRIDE);
}

static void trust__ring_bad_head__only_its_endpoint_eproto(void **state)
{
	(void)state;
	evil_case(EVIL_HEAD);
}

static void trust__ring_bad_tail__only_its_endpoint_eproto(void **state)
{
	(void)state;
	evil_case(EVIL_TAIL);
}

/* ------------------------------------------------------ peer uids */

static int nobody_peer(struct peer *p)
{
	struct fm_transport *t;
	struct fm_ep *ep = NULL;
	int ret;

	PEER_CHECK(setgroups(0, NULL) == 0 && setgid(NOBODY) == 0 && setuid(NOBODY) == 0,
		   "setuid(nobody): %s", strerror(errno));
	PEER_CHECK(fm_transport_new(&t, NULL) == 0, "transport");
	PEER_CHECK(peer_recv(p->to[0], 20000) == 'l', "owner not listening");
	ret = fm_connect(t, p->addr, NULL, 0, 10000, &ep);
	PEER_CHECK(ret == -ECONNREFUSED, "connect as uid %d: %d", NOBODY, ret);
	PEER_CHECK(self_memfd_fds("flashmeta-", NULL) == 0, "got an fd anyway");
	return 0;
}

static void trust__other_uid__refused_at_accept(void **state)
{
	struct owner o;
	struct peer p;
	struct fm_ep *ep = NULL;

	(void)state;
	if (geteuid() != 0)
		skip(); /* needs setuid */
	new_addr();
	peer_start(&p, addr, 0, nobody_peer, NULL);
	owner_open(&o, NULL); /* default: only our own uid (0) */
	peer_send(p.to[1], 'l');
	assert_int_equal(fm_listener_accept(o.l, 20000, &ep), -EACCES);
	printf("refused: %s\n", fm_errormsg());
	assert_non_null(strstr(fm_errormsg(), "uid 65534"));
	assert_null(ep);
	assert_exit0(&p);
	owner_close(&o);
}

/* an owner that dropped root (so no CAP_KILL) and allows nobody: it could
 * never SIGKILL nobody's processes, so it must not let them in */
static int weak_owner(struct peer *p)
{
	struct fm_transport_cfg c = {.shm_nuids = 1, .shm_uids = {NOBODY}};
	struct fm_transport *t;
	struct fm_listener *l;
	struct fm_ep *ep = NULL;
	int ret;

	PEER_CHECK(setgroups(0, NULL) == 0 && setresgid(4242, 4242, 4242) == 0 &&
		   setresuid(4242, 4242, 4242) == 0, "drop root: %s", strerror(errno));
	PEER_CHECK(fm_transport_new(&t, &c) == 0, "transport");
	PEER_CHECK(fm_listen(t, p->addr, &l) == 0, "listen");
	peer_send(p->from[1], 'l');
	ret = fm_listener_accept(l, 20000, &ep);
	fprintf(stderr, "[weak owner] accept: %d (%s)\n", ret, fm_errormsg());
	PEER_CHECK(ret == -EPERM, "accept of an unkillable peer: %d", ret);
	PEER_CHECK(strstr(fm_errormsg(), "could not be fenced") != NULL, "message");
	fm_listener_delete(&l);
	fm_transport_delete(&t);
	return 0;
}

static void trust__allowed_uid_we_cannot_kill__refused(void **state)
{
	struct peer po, pc;

	(void)state;
	if (geteuid() != 0)
		skip();
	new_addr();
	peer_start(&po, addr, 0, weak_owner, NULL);
	peer_start(&pc, addr, 1, nobody_peer, NULL);
	assert_int_equal(peer_recv(po.from[0], 20000), 'l');
	peer_send(pc.to[1], 'l');
	assert_exit0(&pc);
	assert_exit0(&po);
}

/* ---------------------------------------- bitmaps are read-only */

static int granted_peer(struct peer *p)
{
	struct fm_transport *t;
	struct fm_region *dst;
	struct fm_region_desc d[2];
	struct fm_ep *ep;
	uintptr_t start, end;
	uint64_t *word, old;
	char perms[5], path[96];
	int fd;

	PEER_CHECK(fm_transport_new(&t, NULL) == 0, "transport");
	PEER_CHECK(fm_region_new(t, 8192, FM_ACCESS_LOCAL, &dst) == 0, "dst");
	PEER_CHECK(peer_connect(t, p->addr, NULL, &ep) == 0, "connect");
	PEER_CHECK(peer_recv_descs(ep, d, 2) == 0, "descriptors");
	PEER_CHECK(fm_ep_read(ep, dst, 0, &d[0], 0, 8) == 0, "granted READ");
	PEER_CHECK(*(uint64_t *)fm_region_ptr(dst) == MAGIC, "READ result");
	PEER_CHECK(fm_ep_cas(ep, &d[1], 8, 0, 0, &old) == 0, "granted CAS");
	/* the page the bitmap lives on, as this process maps it */
	PEER_CHECK(self_find_word("flashmeta-", "flashmeta-rings", MAGIC, 1u << 20, &start, &end,
				  perms, &word) == 0, "bitmap not found in our mappings");
	fprintf(stderr, "[peer] bitmap mapped %lx-%lx %s\n", (unsigned long)start,
		(unsigned long)end, perms);
	PEER_CHECK(perms[1] == '-', "the bitmap is mapped writable (%s)", perms);
	PEER_CHECK(mprotect((void *)((uintptr_t)word & ~(uintptr_t)4095), 4096,
			    PROT_READ | PROT_WRITE) == -1 && errno == EACCES,
		   "mprotect(PROT_WRITE) on the bitmap: %s", strerror(errno));
	/* the memfd itself: no writable mapping, no write, no truncation */
	snprintf(path, sizeof(path), "/proc/self/map_files/%lx-%lx", (unsigned long)start,
		 (unsigned long)end);
	fd = open(path, O_RDWR | O_CLOEXEC);
	if (fd >= 0) { /* CAP_SYS_ADMIN: root can; else the mprotect above says it */
		uint64_t bits = ~0ull;

		PEER_CHECK(mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0) ==
				   MAP_FAILED && errno == EPERM,
			   "a writable mapping of the READ arena: %s", strerror(errno));
		PEER_CHECK(pwrite(fd, &bits, 8, (off_t)((uintptr_t)word - start)) == -1 &&
				   errno == EPERM, "write(2) to the READ arena: %s", strerror(errno));
		PEER_CHECK(ftruncate(fd, 0) == -1 && errno == EPERM, "truncating the arena");
		close(fd);
	}
	PEER_CHECK(*word == MAGIC, "the bitmap changed");
	fm_ep_delete(&ep);
	PEER_CHECK(self_memfd_maps("flashmeta-", NULL) == 0, "mapped after delete");
	return 0;
}

static void trust__bitmap_arena__read_only_to_a_granted_client(void **state)
{
	struct owner o;
	struct peer p;
	struct fm_ep *ep;

	(void)state;
	new_addr();
	peer_start(&p, addr, 0, granted_peer, NULL);
	owner_open(&o, NULL);
	assert_int_equal(fm_listener_accept(o.l, 20000, &ep), 0);
	assert_int_equal(owner_send_descs(ep, o.d, 2, true), 0);
	assert_exit0(&p);
	fm_ep_delete(&ep);
	owner_intact(&o);
	owner_close(&o);
}

/* ------------------------------------------- the grant's ordering */

#define GRANT_ROUNDS 60

static int eager_peer(struct peer *p)
{
	struct fm_transport_cfg c = {.wait_mode = p->idx ? FM_WAIT_EVENT : FM_WAIT_BUSY};
	struct fm_transport *t;
	struct fm_region *dst;
	struct fm_region_desc d[2];
	struct fm_ep *ep;
	uint64_t old;

	PEER_CHECK(fm_transport_new(&t, &c) == 0, "transport");
	PEER_CHECK(fm_region_new(t, 8192, FM_ACCESS_LOCAL, &dst) == 0, "dst");
	for (int i = 0; i < GRANT_ROUNDS; i++) {
		PEER_CHECK(peer_connect(t, p->addr, NULL, &ep) == 0, "connect");
		/* the descriptors were sent right after the grant: by the time
		 * they are handed out, the arenas are mapped */
		PEER_CHECK(peer_recv_descs(ep, d, 2) == 0, "descriptors");
		PEER_CHECK(fm_ep_read(ep, dst, 0, &d[0], 0, 8) == 0, "round %d: READ", i);
		PEER_CHECK(fm_ep_faa(ep, &d[1], 0, 1, &old) == 0, "round %d: FAA", i);
		fm_ep_delete(&ep);
	}
	return 0;
}

static void trust__grant_is_mapped_before_a_later_message(void **state)
{
	struct owner o;
	struct peer p[2];

	(void)state;
	new_addr();
	peer_start(&p[0], addr, 0, eager_peer, NULL);
	peer_start(&p[1], addr, 1, eager_peer, NULL);
	owner_open(&o, NULL);
	for (int i = 0; i < 2 * GRANT_ROUNDS; i++) {
		struct fm_ep *ep;

		assert_int_equal(fm_listener_accept(o.l, 20000, &ep), 0);
		assert_int_equal(owner_send_descs(ep, o.d, 2, true), 0);
		while (fm_ep_progress(ep) >= 0)
			;
		fm_ep_delete(&ep);
	}
	assert_exit0(&p[0]);
	assert_exit0(&p[1]);
	assert_true(*(uint64_t *)fm_region_ptr(o.lk) == 2 * GRANT_ROUNDS);
	owner_close(&o);
}

/* ------------------------------------------------- arena sizing */

static void trust__region_space__reused_and_full_says_so(void **state)
{
	struct fm_transport_cfg c = {.shm_read_size = 2u << 20, .shm_atomic_size = 1u << 20,
				     .shm_max_regions = 4};
	struct fm_transport *t;
	struct fm_region *r[5];

	(void)state;
	assert_int_equal(fm_transport_new(&t, &c), 0);
	/* a deleted region's space and table entry are used again */
	for (int i = 0; i < 200; i++) {
		assert_int_equal(fm_region_new(t, 700 << 10, FM_ACCESS_REMOTE_ATOMIC, &r[0]), 0);
		assert_int_equal(fm_region_new(t, 1200 << 10, FM_ACCESS_REMOTE_READ, &r[1]), 0);
		assert_true(((uint64_t *)fm_region_ptr(r[0]))[7] == 0); /* zeroed again */
		assert_true(((uint64_t *)fm_region_ptr(r[1]))[7] == 0);
		((uint64_t *)fm_region_ptr(r[0]))[7] = 1;
		((uint64_t *)fm_region_ptr(r[1]))[7] = 1;
		fm_region_delete(&r[0]);
		fm_region_delete(&r[1]);
	}
	/* too big for what is configured: a clear error */
	assert_int_equal(fm_region_new(t, 2u << 20, FM_ACCESS_REMOTE_ATOMIC, &r[0]), -ENOMEM);
	printf("%s\n", fm_errormsg());
	assert_non_null(strstr(fm_errormsg(), "ATOMIC arena full"));
	assert_non_null(strstr(fm_errormsg(), "shm_atomic_size"));
	for (int i = 0; i < 4; i++)
		assert_int_equal(fm_region_new(t, 4096, FM_ACCESS_REMOTE_READ, &r[i]), 0);
	assert_int_equal(fm_region_new(t, 4096, FM_ACCESS_REMOTE_READ, &r[4]), -ENOSPC);
	assert_non_null(strstr(fm_errormsg(), "shm_max_regions"));
	for (int i = 0; i < 4; i++)
		fm_region_delete(&r[i]);
	fm_transport_delete(&t);
}

static void trust__arena_too_big_to_map__says_so(void **state)
{
	struct fm_transport_cfg c = {.shm_atomic_size = 1ull << 60};
	struct fm_transport *t;
	struct fm_listener *l;
	int ret;

	(void)state;
	new_addr();
	assert_int_equal(fm_transport_new(&t, &c), 0);
	ret = fm_listen(t, addr, &l);
	printf("%d: %s\n", ret, fm_errormsg());
	assert_int_equal(ret, -ENOMEM);
	assert_non_null(strstr(fm_errormsg(), "arena"));
	fm_transport_delete(&t);
}

/* --------------------------------------------- linger on delete */

static int lastword_peer(struct peer *p)
{
	struct fm_transport *t;
	struct fm_region_desc d[2];
	struct fm_ep *ep;
	char m[8];

	PEER_CHECK(fm_transport_new(&t, NULL) == 0, "transport");
	PEER_CHECK(peer_connect(t, p->addr, NULL, &ep) == 0, "connect");
	PEER_CHECK(peer_recv_descs(ep, d, 2) == 0, "descriptors");
	for (int i = 0; i < 12; i++) {
		snprintf(m, sizeof(m), "last%02d", i);
		PEER_CHECK(fm_ep_send(ep, m, 6, 0) == 0, "send %d", i);
	}
	fm_ep_delete(&ep); /* at once: no wait for the owner */
	return 0;
}

static void trust__sent_then_deleted__delivered_before_the_close(void **state)
{
	struct owner o;
	struct peer p;
	struct fm_ep *ep;
	const char *reason;
	char buf[16], want[8];

	(void)state;
	new_addr();
	peer_start(&p, addr, 0, lastword_peer, NULL);
	owner_open(&o, NULL);
	assert_int_equal(fm_listener_accept(o.l, 20000, &ep), 0);
	assert_int_equal(owner_send_descs(ep, o.d, 2, true), 0);
	assert_exit0(&p); /* gone before we look: BYE and EOF wait with the ring */
	for (int i = 0; i < 12; i++) {
		snprintf(want, sizeof(want), "last%02d", i);
		assert_int_equal(fm_ep_recv(ep, buf, sizeof(buf), 0), 6);
		assert_memory_equal(buf, want, 6);
	}
	assert_true(fm_ep_recv(ep, buf, sizeof(buf), 0) < 0);
	assert_int_equal(fm_ep_state(ep, &reason), FM_EP_CLOSED);
	assert_string_equal(reason, "peer closed");
	fm_ep_delete(&ep);
	owner_close(&o);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(trust__ungranted_client__no_region_memory),
		cmocka_unit_test(trust__raw_peer__gets_only_the_rings),
		cmocka_unit_test(trust__greedy_request__refused_with_a_clear_error),
		cmocka_unit_test(trust__ring_slot_count_zero__owner_unharmed),
		cmocka_unit_test(trust__ring_huge_stride__owner_unharmed),
		cmocka_unit_test(trust__ring_bad_head__only_its_endpoint_eproto),
		cmocka_unit_test(trust__ring_bad_tail__only_its_endpoint_eproto),
		cmocka_unit_test(trust__other_uid__refused_at_accept),
		cmocka_unit_test(trust__allowed_uid_we_cannot_kill__refused),
		cmocka_unit_test(trust__bitmap_arena__read_only_to_a_granted_client),
		cmocka_unit_test(trust__grant_is_mapped_before_a_later_message),
		cmocka_unit_test(trust__region_space__reused_and_full_says_so),
		cmocka_unit_test(trust__arena_too_big_to_map__says_so),
		cmocka_unit_test(trust__sent_then_deleted__delivered_before_the_close),
	};

	setvbuf(stdout, NULL, _IOLBF, 0);
	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests_name("shm_trust", tests, NULL, NULL);
}
