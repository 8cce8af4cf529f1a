/* fence.c -- the shm provider's fence: who the peer is, and stopping it.
 *
 * The accepting side keeps a pidfd of the connecting process, taken at
 * accept (fm__shm_peer_identify).  fm_ep_fence = SIGKILL through it, then poll
 * until it reports the whole process exited: only a dead peer can no longer
 * touch the arena it mapped (see SHM TRUST MODEL in transport.h).  Both
 * sides map the peer's arena and the rings MADV_DONTFORK, so a process
 * forked later does not inherit them.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "shm_priv.h"

/* fm_ep_fence: how long a live peer gets to close by itself when asked */
#define FM_SHM_FENCE_GRACE_MS 300

/* Linux 6.5 uapi; older headers lack it, older kernels say ENOPROTOOPT */
#ifndef SO_PEERPIDFD
#define SO_PEERPIDFD 77
#endif

/* test hook: skip SO_PEERPIDFD, as on kernels before 6.5 (Debian 12) */
static bool shm_no_peerpidfd;

void fm__shm_test_no_peerpidfd(bool on)
{
	shm_no_peerpidfd = on;
}

static int sys_pidfd_open(pid_t pid)
{
	return (int)syscall(SYS_pidfd_open, pid, 0u);
}

static int sys_pidfd_send_signal(int pidfd, int sig)
{
	return (int)syscall(SYS_pidfd_send_signal, pidfd, sig, NULL, 0u);
}

/* 1: the pidfd's process has exited (all threads; zombie or reaped),
 * 0: not within timeout_ms, or a negative errno (-EINTR included) */
static int pidfd_exited(int pidfd, int timeout_ms)
{
	struct pollfd pfd = {.fd = pidfd, .events = POLLIN};
	int r = poll(&pfd, 1, timeout_ms);

	if (r < 0)
		return -errno;
	return r > 0 && (pfd.revents & (POLLIN | POLLHUP)) ? 1 : 0;
}

/* fencing is impossible for this peer: say why, once, for fm_ep_fence */
static void shm_no_fence(struct shm_ep *se, int err, const char *why)
{
	se->fence_err = err;
	snprintf(se->fence_why, sizeof(se->fence_why), "%s", why);
}

/*
 * fm__shm_peer_identify -- take a pidfd of the process that connected `sock`,
 * while it is provably the one: called after its connection request
 * arrived, while it waits for our reply.
 *
 *   1. SO_PEERCRED: pid and uid recorded at connect().  pid 0 = the peer
 *      lives in a PID namespace we cannot see: accepted, never fenceable.
 *   2. SO_PEERPIDFD (Linux >= 6.5): the socket's own reference to the
 *      connecting process -- no reuse window at all.
 *   3. Otherwise pidfd_open(pid).  Window: had the connecting process died
 *      and its pid been reused before this call, the pidfd would name a
 *      stranger.  Closed by checking AFTER the pidfd pins a process that
 *      (a) that process is alive -- a live process's pid is not reused, so
 *      if the connecting one is alive too they are the same; (b) the
 *      connection is not hung up -- its peer end is still held, which our
 *      client library does only inside fm_connect (CLOEXEC, no fork); (c)
 *      SO_PEERCRED still gives the same pid.  What is left needs a client
 *      that forks inside fm_connect and dies, plus a full pid wrap-around,
 *      within milliseconds.
 * Returns 0 (se->pidfd set, or fence_err says why not), -ECONNABORTED (the
 * connecting process is gone), or another negative errno.
 */
int fm__shm_peer_identify(struct shm_ep *se)
{
	struct ucred cr, cr2;
	socklen_t len = sizeof(cr);
	struct pollfd pfd = {.fd = se->sock, .events = POLLRDHUP};
	int fd = -1, r;

	se->accepted = true;
	if (getsockopt(se->sock, SOL_SOCKET, SO_PEERCRED, &cr, &len) || len != sizeof(cr))
		return fm_err(-errno ? -errno : -EPROTO, "SO_PEERCRED: %s", strerror(errno));
	se->peer_pid = cr.pid;
	se->peer_uid = cr.uid;
	if (cr.pid == 0) {
		shm_no_fence(se, -EPERM, "the peer is in a PID namespace this process cannot see "
					 "(SO_PEERCRED pid 0)");
		return 0;
	}
	if (cr.pid == getpid()) {
		shm_no_fence(se, -EPERM, "the peer is this very process");
		return 0;
	}
	if (!shm_no_peerpidfd) {
		len = sizeof(fd);
		if (getsockopt(se->sock, SOL_SOCKET, SO_PEERPIDFD, &fd, &len) == 0 &&
		    len == sizeof(fd) && fd >= 0)
			goto check;
		if (errno == ESRCH)
			return fm_err(-ECONNABORTED, "connecting process %d already exited",
				      (int)cr.pid);
		fd = -1; /* ENOPROTOOPT: kernel before 6.5 */
	}
	fd = sys_pidfd_open(cr.pid);
	if (fd < 0) {
		if (errno == ESRCH)
			return fm_err(-ECONNABORTED, "connecting process %d already exited",
				      (int)cr.pid);
		if (errno == ENOSYS) {
			shm_no_fence(se, -EOPNOTSUPP, "this kernel has no pidfd_open (Linux >= 5.3)");
			return 0;
		}
		return fm_err(-errno, "pidfd_open(%d): %s", (int)cr.pid, strerror(errno));
	}
check:
	r = pidfd_exited(fd, 0);
	if (r != 0) {
		close(fd);
		return fm_err(r < 0 ? r : -ECONNABORTED, "connecting process %d %s", (int)cr.pid,
			      r < 0 ? "cannot be watched" : "already exited");
	}
	if (poll(&pfd, 1, 0) < 0 || (pfd.revents & (POLLHUP | POLLRDHUP | POLLERR))) {
		close(fd);
		return fm_err(-ECONNABORTED, "connecting process %d hung up during setup",
			      (int)cr.pid);
	}
	len = sizeof(cr2);
	if (getsockopt(se->sock, SOL_SOCKET, SO_PEERCRED, &cr2, &len) || cr2.pid != cr.pid) {
		close(fd);
		return fm_err(-ECONNABORTED, "peer credentials changed during setup");
	}
	se->pidfd = fd;
	return 0;
}

/* fm_ep_fence for shm: a peer that said BYE unmapped us already (our
 * library does so before sending it: trust model in transport.h);
 * otherwise SIGKILL through the pidfd and wait for the exit. */
int fm__shm_fence(struct fm_ep *ep, int timeout_ms)
{
	struct shm_ep *se = to_sep(ep);
	uint64_t deadline = fm__deadline(timeout_ms);
	bool was_dead;
	int r;

	if (!se->accepted)
		return fm_err(-EOPNOTSUPP, "shm: only the accepting side (the owner) can fence "
					   "its peer");
	/* a conforming peer unmaps us before its BYE (fm__shm_ep_delete) */
	if (ep->state == FM_EP_UP)
		fm__shm_check_peer(se);
	if (se->peer_bye) {
		fm__ep_fail(ep, -ENOTCONN, "fenced: peer %d closed (unmapped before its BYE)",
			    (int)se->peer_pid);
		return 0;
	}
	if (se->pidfd < 0)
		return fm_err(se->fence_err ? se->fence_err : -EOPNOTSUPP,
			      "shm: cannot fence peer pid %d: %s", (int)se->peer_pid,
			      se->fence_why[0] ? se->fence_why : "no pidfd");
	r = pidfd_exited(se->pidfd, 0);
	if (r < 0 && r != -EINTR)
		return fm_err(r, "poll pidfd of peer %d: %s", (int)se->peer_pid, strerror(-r));
	was_dead = r == 1;
	if (!was_dead && !se->fence_bye_sent && timeout_ms != 0) {
		/* ask first: our BYE makes a conforming peer delete its
		 * endpoint (unmap, then BYE back) within milliseconds; only a
		 * stalled or rogue one has to die */
		int grace = timeout_ms < 0 || timeout_ms > FM_SHM_FENCE_GRACE_MS
				    ? FM_SHM_FENCE_GRACE_MS : timeout_ms;
		uint64_t gend = fm__deadline(grace);
		char bye = SHM_BYE, c;

		se->fence_bye_sent = true;
		(void)send(se->sock, &bye, 1, MSG_NOSIGNAL | MSG_DONTWAIT);
		for (;;) {
			struct pollfd pfd[2] = {{.fd = se->sock, .events = POLLIN},
						{.fd = se->pidfd, .events = POLLIN}};
			int left = fm__remaining_ms(gend);

			if (poll(pfd, 2, left) < 0 && errno != EINTR)
				break;
			if (pfd[1].revents) {
				was_dead = true;
				break;
			}
			if (pfd[0].revents && recv(se->sock, &c, 1, MSG_DONTWAIT) == 1 &&
			    c == SHM_BYE) {
				se->peer_bye = true;
				fm__ep_fail(ep, -ENOTCONN, "fenced: peer %d closed when asked "
					    "(unmapped before its BYE)", (int)se->peer_pid);
				return 0;
			}
			if (left == 0)
				break;
			if (pfd[0].revents && !(pfd[0].revents & POLLIN))
				usleep(1000); /* hung up: the pidfd follows */
		}
	}
	if (!was_dead && sys_pidfd_send_signal(se->pidfd, SIGKILL) && errno != ESRCH) {
		int e = errno;

		if (e == EPERM || e == EINVAL) /* EINVAL: outside our PID namespace */
			return fm_err(-EPERM, "shm: not allowed to SIGKILL peer pid %d (uid %u; we "
					      "are uid %u%s): it cannot be fenced",
				      (int)se->peer_pid, (unsigned)se->peer_uid,
				      (unsigned)geteuid(),
				      e == EPERM ? " without CAP_KILL" : ", other PID namespace");
		return fm_err(-e, "shm: pidfd_send_signal(SIGKILL) to peer pid %d: %s",
			      (int)se->peer_pid, strerror(e));
	}
	while (!was_dead) {
		int left = fm__remaining_ms(deadline);

		r = pidfd_exited(se->pidfd, left);
		if (r == 1)
			break;
		if (r < 0 && r != -EINTR)
			return fm_err(r, "poll pidfd of peer %d: %s", (int)se->peer_pid,
				      strerror(-r));
		if (r == 0 && left == 0)
			return fm_err(-ETIMEDOUT, "shm: peer pid %d got SIGKILL but has not exited "
						  "within %d ms",
				      (int)se->peer_pid, timeout_ms);
	}
	fm__ep_fail(ep, -ENOTCONN, "fenced: peer process %d %s", (int)se->peer_pid,
		    was_dead ? "had exited" : "killed");
	return 0;
}
