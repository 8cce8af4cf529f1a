/* test_shm_fence.c -- fm_ep_fence over shm: levels, never blocking, no
 * asking, against real separate processes.
 *
 * The owner is this process; peers are forked children (shm_peer.h).
 * Times are never asserted: what is checked is what each call returns
 * while the peer is in a known state -- -EINPROGRESS while a stopped peer
 * is still alive, DEAD once the pidfd says it exited, RDMA for a peer that
 * closed (and it lives on), DEAD and a SIGKILLed process with KILL -- and
 * that the transport never asks a peer to close (a BYE from a stalled
 * process's protocol thread proves nothing about its I/O).
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "flashmeta/error.h"
#include "flashmeta/transport.h"
#include "shm_peer.h"

/* rdma/transport/transport_priv.h: take the pidfd_open path (kernels < 6.5) */
extern void fm__shm_test_no_peerpidfd(bool on);

static char addr[96];
static int seq;

static void new_addr(void)
{
	snprintf(addr, sizeof(addr), "shm:/flashmeta-fence-%d-%d", (int)getpid(), ++seq);
}

struct owner {
	struct fm_transport *t;
	struct fm_listener *l;
	struct fm_region *lk;
	struct fm_region_desc d;
};

static void owner_open(struct owner *o)
{
	assert_int_equal(fm_transport_new(&o->t, NULL), 0);
	assert_int_equal(fm_region_new(o->t, 4096, FM_ACCESS_REMOTE_ATOMIC, &o->lk), 0);
	fm_region_desc(o->lk, &o->d);
	assert_int_equal(fm_listen(o->t, addr, &o->l), 0);
}

static struct fm_ep *owner_accept(struct owner *o)
{
	struct fm_ep *ep = NULL;

	assert_int_equal(fm_listener_accept(o->l, 20000, &ep), 0);
	assert_int_equal(owner_send_descs(ep, &o->d, 1, true), 0);
	return ep;
}

static void owner_close(struct owner *o)
{
	fm_listener_delete(&o->l);
	fm_region_delete(&o->lk);
	fm_transport_delete(&o->t);
}

static uint64_t lock_word(struct owner *o)
{
	return __atomic_load_n((uint64_t *)fm_region_ptr(o->lk), __ATOMIC_ACQUIRE);
}

/* the peer has not exited (it may be stopped) */
static bool alive(pid_t pid)
{
	siginfo_t si;

	memset(&si, 0, sizeof(si));
	return waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT) == 0 && si.si_pid == 0;
}

/* fence until a level: each -EINPROGRESS waits on the fence fd (or a
 * tick); returns the level, and how many calls said -EINPROGRESS */
static int fence_until(struct fm_ep *ep, unsigned flags, int *waits)
{
	int r;

	*waits = 0;
	while ((r = fm_ep_fence(ep, flags)) == -EINPROGRESS) {
		struct pollfd pfd = {.fd = fm_ep_fence_fd(ep), .events = POLLIN};

		assert_true(++*waits < 1000); /* 50 s of ticks: it must end */
		(void)poll(&pfd, 1, 50);
	}
	return r;
}

static void assert_killed(struct peer *p)
{
	int st = peer_wait(p);

	if (!WIFSIGNALED(st) || WTERMSIG(st) != SIGKILL)
		fail_msg("peer %d was not SIGKILLed: %s %d", (int)p->pid,
			 WIFEXITED(st) ? "exit" : "signal",
			 WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
}

static void assert_exit0(struct peer *p)
{
	int st = peer_wait(p);

	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
		fail_msg("peer %d: %s %d", (int)p->pid, WIFEXITED(st) ? "exit" : "signal",
			 WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
}

/* ------------------------------------------------------- peers */

enum { P_STALL, P_EXIT, P_CLOSE, P_SILENT, P_CLOSE_BELLS };

static const char *const hellos[] = {"stall", "exit", "close", "silent", "bells"};

/* connect, take the lock region (granted), then by kind: stop with a CAS
 * pending; exit at once; close the endpoint and live on until told; just
 * sit there; or (event mode: the owner's messages ring doorbells on our
 * socket) wait until the owner sent some, leave them unread and close */
static int peer_main(struct peer *p)
{
	int kind = *(int *)p->arg;
	struct fm_transport_cfg cfg = { .wait_mode = FM_WAIT_EVENT };
	struct fm_transport *t;
	struct fm_region_desc d;
	struct fm_ep *ep;
	uint64_t old;

	PEER_CHECK(fm_transport_new(&t, kind == P_CLOSE_BELLS ? &cfg : NULL) == 0, "transport");
	PEER_CHECK(peer_connect(t, p->addr, hellos[kind], &ep) == 0, "connect");
	PEER_CHECK(peer_recv_descs(ep, &d, 1) == 0, "descriptors");
	PEER_CHECK(fm_ep_faa(ep, &d, 8, 1, &old) == 0, "granted FAA");
	switch (kind) {
	case P_STALL:
		raise(SIGSTOP); /* a stalled client: its CAS is decided, not landed */
		(void)fm_ep_cas(ep, &d, 0, 0, 0xdead, &old);
		return 0;       /* only reached if the fence let us live */
	case P_EXIT:
		return 0;
	case P_CLOSE:
		PEER_CHECK(fm_ep_fence(ep, 0) == -EOPNOTSUPP, "the connecting side fenced");
		fm_ep_delete(&ep); /* unmaps, then BYE */
		peer_send(p->from[1], 'c');
		(void)peer_recv(p->to[0], -1);
		return 0;
	case P_CLOSE_BELLS:
		peer_send(p->from[1], 'r');
		PEER_CHECK(peer_recv(p->to[0], 20000) == 's', "the owner's messages");
		fm_ep_delete(&ep); /* their doorbells still queued on the socket */
		peer_send(p->from[1], 'c');
		(void)peer_recv(p->to[0], -1);
		return 0;
	default:
		peer_send(p->from[1], 'r');
		(void)peer_recv(p->to[0], -1);
		return 0;
	}
}

/* ------------------------------------------------------- tests */

static void stalled_case(bool kill_flag, bool no_peerpidfd)
{
	int kind = P_STALL, waits, r;
	struct owner o;
	struct peer p;
	struct fm_ep *ep;
	const char *reason;
	siginfo_t si;

	new_addr();
	peer_start(&p, addr, 0, peer_main, &kind);
	fm__shm_test_no_peerpidfd(no_peerpidfd);
	owner_open(&o);
	ep = owner_accept(&o);
	fm__shm_test_no_peerpidfd(false);
	memset(&si, 0, sizeof(si));
	assert_int_equal(waitid(P_PID, (id_t)p.pid, &si, WSTOPPED | WNOWAIT), 0);
	assert_true(fm_ep_fence_fd(ep) >= 0);

	r = fm_ep_fence(ep, kill_flag ? FM_FENCE_F_KILL : 0);
	if (!kill_flag) {
		/* within the close grace: neither closed nor exited, so not
		 * fenced yet -- and the call did not wait for it */
		assert_int_equal(r, -EINPROGRESS);
		printf("first call: %s\n", fm_errormsg());
		assert_true(alive(p.pid));
	} else {
		/* SIGKILL sent now; it exits when the kernel gets to it */
		assert_true(r == -EINPROGRESS || r == FM_FENCE_DEAD);
	}
	assert_int_equal(fm_ep_state(ep, &reason), FM_EP_CLOSED);
	assert_non_null(strstr(reason, "fenced"));
	if (r == -EINPROGRESS)
		r = fence_until(ep, kill_flag ? FM_FENCE_F_KILL : 0, &waits);
	assert_int_equal(r, FM_FENCE_DEAD);
	assert_int_equal(fm_ep_fence(ep, 0), FM_FENCE_DEAD); /* final */
	assert_int_equal(fm_ep_fence(ep, FM_FENCE_F_KILL), FM_FENCE_DEAD);
	assert_killed(&p);
	assert_true(lock_word(&o) == 0); /* its pending CAS never landed */
	fm_ep_delete(&ep);
	owner_close(&o);
}

static void fence__stalled_peer__inprogress_then_killed_dead(void **state)
{
	(void)state;
	stalled_case(false, false);
}

static void fence__stalled_peer_pidfd_open__inprogress_then_killed_dead(void **state)
{
	(void)state;
	stalled_case(false, true);
}

static void fence__stalled_peer_kill__dead_cas_never_lands(void **state)
{
	(void)state;
	stalled_case(true, false);
}

static void fence__exited_peer__dead_at_once(void **state)
{
	int kind = P_EXIT;
	struct owner o;
	struct peer p;
	struct fm_ep *ep;
	siginfo_t si;

	(void)state;
	new_addr();
	peer_start(&p, addr, 0, peer_main, &kind);
	owner_open(&o);
	ep = owner_accept(&o);
	memset(&si, 0, sizeof(si));
	assert_int_equal(waitid(P_PID, (id_t)p.pid, &si, WEXITED | WNOWAIT), 0); /* a zombie */
	assert_int_equal(fm_ep_fence(ep, 0), FM_FENCE_DEAD);
	assert_exit0(&p);
	fm_ep_delete(&ep);
	owner_close(&o);
}

static void fence__closed_peer__rdma_and_it_lives_on(void **state)
{
	int kind = P_CLOSE;
	struct owner o;
	struct peer p;
	struct fm_ep *ep;

	(void)state;
	new_addr();
	peer_start(&p, addr, 0, peer_main, &kind);
	owner_open(&o);
	ep = owner_accept(&o);
	assert_int_equal(peer_recv(p.from[0], 20000), 'c'); /* it closed */
	assert_int_equal(fm_ep_fence(ep, 0x80), -EINVAL);
	assert_int_equal(fm_ep_state(ep, NULL), FM_EP_UP); /* a refused call changes nothing */
	/* its BYE is proof that it unmapped us: no kill, no grace */
	assert_int_equal(fm_ep_fence(ep, 0), FM_FENCE_RDMA);
	assert_int_equal(fm_ep_fence(ep, 0), FM_FENCE_RDMA); /* final */
	usleep(100000);
	assert_true(alive(p.pid));
	peer_send(p.to[1], 'q');
	assert_exit0(&p); /* it was never killed */
	fm_ep_delete(&ep);
	owner_close(&o);
}

/* A peer that closes while doorbells of ours sit unread on its socket:
 * the kernel resets such a connection, and a recvmsg that finds the reset
 * fails before it returns what is queued -- the BYE too.  The close must
 * still read as a close (RDMA, the peer lives on), not as a crash that
 * the fence answers with SIGKILL after the grace. */
static void fence__closed_peer_bells_unread__rdma_and_it_lives_on(void **state)
{
	int kind = P_CLOSE_BELLS;
	struct owner o;
	struct peer p;
	struct fm_ep *ep;

	(void)state;
	new_addr();
	peer_start(&p, addr, 0, peer_main, &kind);
	owner_open(&o);
	ep = owner_accept(&o);
	assert_int_equal(peer_recv(p.from[0], 20000), 'r');
	for (int i = 0; i < 3; i++)
		assert_int_equal(fm_ep_send(ep, "bell", 4, 0), 0);
	peer_send(p.to[1], 's');
	assert_int_equal(peer_recv(p.from[0], 20000), 'c');
	assert_int_equal(fm_ep_fence(ep, 0), FM_FENCE_RDMA);
	usleep(100000);
	assert_true(alive(p.pid));
	peer_send(p.to[1], 'q');
	assert_exit0(&p); /* it was never killed */
	fm_ep_delete(&ep);
	owner_close(&o);
}

static void fence__closed_peer_kill__dead_and_gone(void **state)
{
	int kind = P_CLOSE, waits, r;
	struct owner o;
	struct peer p;
	struct fm_ep *ep;

	(void)state;
	new_addr();
	peer_start(&p, addr, 0, peer_main, &kind);
	owner_open(&o);
	ep = owner_accept(&o);
	assert_int_equal(peer_recv(p.from[0], 20000), 'c');
	assert_int_equal(fm_ep_fence(ep, 0), FM_FENCE_RDMA);
	assert_true(alive(p.pid));
	/* a process that closed may still write its disks: KILL goes on to
	 * DEAD although the endpoint is fenced at RDMA already */
	r = fence_until(ep, FM_FENCE_F_KILL, &waits);
	assert_int_equal(r, FM_FENCE_DEAD);
	assert_killed(&p);
	fm_ep_delete(&ep);
	owner_close(&o);
}

/* ------------------------------------------------ never asks first */

/* A client whose protocol thread answers a close at once (deletes its
 * endpoint: BYE) while its I/O thread is stuck.  A transport that asked
 * it to close would take that BYE as proof and leave the I/O thread
 * alive.  Ours never asks: the peer never sees a close, and is killed. */
static void *proto_thread(void *arg)
{
	struct peer *p = ((void **)arg)[0];
	struct fm_ep *ep = ((void **)arg)[1];

	for (;;) {
		if (fm_ep_progress(ep) < 0 || fm_ep_state(ep, NULL) != FM_EP_UP) {
			fm_ep_delete(&ep);
			peer_send(p->from[1], 'b'); /* "I answered a close" */
			return NULL;
		}
		usleep(1000);
	}
}

static int two_thread_peer(struct peer *p)
{
	struct fm_transport *t;
	struct fm_region_desc d;
	struct fm_ep *ep;
	pthread_t th;
	void *arg[2];
	uint64_t old;

	PEER_CHECK(fm_transport_new(&t, NULL) == 0, "transport");
	PEER_CHECK(peer_connect(t, p->addr, NULL, &ep) == 0, "connect");
	PEER_CHECK(peer_recv_descs(ep, &d, 1) == 0, "descriptors");
	PEER_CHECK(fm_ep_faa(ep, &d, 8, 1, &old) == 0, "FAA");
	arg[0] = p;
	arg[1] = ep;
	PEER_CHECK(pthread_create(&th, NULL, proto_thread, arg) == 0, "thread");
	peer_send(p->from[1], 'r');
	(void)peer_recv(p->to[0], -1); /* the I/O thread: stuck */
	return 0;
}

static void fence__never_asks__a_stalled_io_thread_is_killed(void **state)
{
	struct owner o;
	struct peer p;
	struct fm_ep *ep;
	int waits, r;

	(void)state;
	new_addr();
	peer_start(&p, addr, 0, two_thread_peer, NULL);
	owner_open(&o);
	ep = owner_accept(&o);
	assert_int_equal(peer_recv(p.from[0], 20000), 'r');
	r = fence_until(ep, 0, &waits);
	assert_int_equal(r, FM_FENCE_DEAD); /* not RDMA: no BYE was asked for */
	assert_true(waits > 0);
	assert_int_equal(peer_recv(p.from[0], 0), -1); /* it never saw a close */
	assert_killed(&p);
	fm_ep_delete(&ep);
	owner_close(&o);
}

/* ------------------------------------------ many fences at once */

#define SILENT 20

static void fence__twenty_silent__do_not_delay_the_21st(void **state)
{
	int kinds[SILENT + 1];
	struct peer p[SILENT + 1];
	struct fm_ep *silent[SILENT], *closer = NULL;
	struct owner o;
	int ns = 0, waits, r;

	(void)state;
	new_addr();
	for (int i = 0; i <= SILENT; i++) {
		kinds[i] = i == SILENT ? P_CLOSE : P_SILENT;
		peer_start(&p[i], addr, i, peer_main, &kinds[i]);
	}
	owner_open(&o);
	for (int i = 0; i <= SILENT; i++) {
		struct fm_ep *ep = owner_accept(&o);
		char hello[8] = "";

		fm_ep_hello(ep, hello, sizeof(hello) - 1);
		if (strcmp(hello, "close") == 0)
			closer = ep;
		else
			silent[ns++] = ep;
	}
	assert_non_null(closer);
	assert_int_equal(ns, SILENT);
	for (int i = 0; i < SILENT; i++)
		assert_int_equal(peer_recv(p[i].from[0], 20000), 'r');
	assert_int_equal(peer_recv(p[SILENT].from[0], 20000), 'c');

	/* twenty fences in flight, none of them waits */
	for (int i = 0; i < SILENT; i++)
		assert_int_equal(fm_ep_fence(silent[i], 0), -EINPROGRESS);
	/* the 21st completes at its first call */
	assert_int_equal(fm_ep_fence(closer, 0), FM_FENCE_RDMA);
	for (int i = 0; i < SILENT; i++)
		assert_true(alive(p[i].pid));

	for (int i = 0; i < SILENT; i++) {
		r = fence_until(silent[i], FM_FENCE_F_KILL, &waits);
		assert_int_equal(r, FM_FENCE_DEAD);
	}
	for (int i = 0; i < SILENT; i++) {
		assert_killed(&p[i]);
		fm_ep_delete(&silent[i]);
	}
	peer_send(p[SILENT].to[1], 'q');
	assert_exit0(&p[SILENT]);
	fm_ep_delete(&closer);
	owner_close(&o);
}

static void fence__loopback_and_null__einval(void **state)
{
	struct owner o;
	struct fm_ep *ep;

	(void)state;
	new_addr();
	owner_open(&o);
	assert_int_equal(fm_listener_loopback(o.l, &ep), 0);
	assert_int_equal(fm_ep_fence(ep, 0), -EINVAL);
	assert_int_equal(fm_ep_fence(NULL, 0), -EINVAL);
	assert_int_equal(fm_ep_fence_fd(ep), -1);
	assert_int_equal(fm_ep_grant(ep), 0); /* our own memory: always */
	assert_int_equal(fm_ep_state(ep, NULL), FM_EP_UP);
	fm_ep_delete(&ep);
	owner_close(&o);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(fence__stalled_peer__inprogress_then_killed_dead),
		cmocka_unit_test(fence__stalled_peer_pidfd_open__inprogress_then_killed_dead),
		cmocka_unit_test(fence__stalled_peer_kill__dead_cas_never_lands),
		cmocka_unit_test(fence__exited_peer__dead_at_once),
		cmocka_unit_test(fence__closed_peer__rdma_and_it_lives_on),
		cmocka_unit_test(fence__closed_peer_bells_unread__rdma_and_it_lives_on),
		cmocka_unit_test(fence__closed_peer_kill__dead_and_gone),
		cmocka_unit_test(fence__never_asks__a_stalled_io_thread_is_killed),
		cmocka_unit_test(fence__twenty_silent__do_not_delay_the_21st),
		cmocka_unit_test(fence__loopback_and_null__einval),
	};

	setvbuf(stdout, NULL, _IOLBF, 0);
	return cmocka_run_group_tests_name("shm_fence", tests, NULL, NULL);
}
