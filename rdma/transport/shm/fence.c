/* fence.c -- the shm provider's fence: who the peer is, whether we could
 * stop it, and stopping it without ever blocking.
 *
 * At accept (rendezvous.c) a peer is admitted only if it can be fenced:
 * its uid is allowed (fm__shm_peer_admit, the moment the connection is
 * accepted), and once its request arrived we hold a pidfd of it and may
 * signal it (fm__shm_peer_identify).  A fence then never fails for lack of
 * permission.
 *
 * fm_ep_fence is a state of the endpoint, advanced by each call, never a
 * wait (transport.h has the levels):
 *
 *   first call: fencing = true, fence_since = now
 *        |
 *        +-- pidfd readable (the whole process exited) -------------> DEAD
 *        +-- no KILL, BYE record came (it unmapped us first) -------> RDMA
 *        +-- no KILL, within FM_SHM_CLOSE_GRACE_MS of the first call -> -EINPROGRESS
 *        +-- otherwise: SIGKILL through the pidfd (once) -----------> -EINPROGRESS
 *                        ... until the pidfd says it exited --------> DEAD
 *
 * The transport never asks the peer to close: a BYE that a stalled
 * process's protocol thread sends proves nothing about its I/O threads.
 * Whether a client's I/O is over is the protocol's question (lease.h R3,
 * BYE{QUIESCED}); the transport answers only "can it reach our memory"
 * (RDMA) and "is it dead" (DEAD).  Both sides map the other's memory
 * MADV_DONTFORK, so a process forked later holds nothing of it.
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
 * 0: not yet, or a negative errno.  Never waits. */
static int pidfd_exited(int pidfd)
{
	struct pollfd pfd = {.fd = pidfd, .events = POLLIN};
	int r = poll(&pfd, 1, 0);

	if (r < 0)
		return errno == EINTR ? 0 : -errno;
	return r > 0 && (pfd.revents & (POLLIN | POLLHUP)) ? 1 : 0;
}

int fm__shm_peer_admit(struct fm_transport *t, int sock, pid_t *pid, uid_t *uid)
{
	struct ucred cr;
	socklen_t len = sizeof(cr);
	char list[FM_SHM_UIDS_MAX * 12];
	size_t used = 0;

	if (getsockopt(sock, SOL_SOCKET, SO_PEERCRED, &cr, &len) || len != sizeof(cr))
		return fm_err(-EPROTO, "shm: SO_PEERCRED: %s", strerror(errno));
	*pid = cr.pid;
	*uid = cr.uid;
	for (uint32_t i = 0; i < t->cfg.shm_nuids; i++) {
		if (t->cfg.shm_uids[i] == (uint32_t)cr.uid)
			goto allowed;
		used += (size_t)snprintf(list + used, sizeof(list) - used, "%s%u", i ? "," : "",
					 t->cfg.shm_uids[i]);
	}
	return fm_err(-EACCES, "shm: connection from uid %u (pid %d) refused: allowed uids are %s",
		      (unsigned)cr.uid, (int)cr.pid, list);
allowed:
	if (cr.pid == 0)
		return fm_err(-EPERM, "shm: connection from uid %u refused: its process is in a "
				      "PID namespace this one cannot see, so it could not be fenced",
			      (unsigned)cr.uid);
	if (cr.pid == getpid())
		return fm_err(-EPERM, "shm: connection from this very process refused: it could "
				      "not be fenced");
	return 0;
}

/*
 * fm__shm_peer_identify -- take a pidfd of the process that connected `sock`,
 * while it is provably the one: called after its connection request
 * arrived, while it waits for our reply.
 *
 *   1. SO_PEERCRED: pid and uid recorded at connect() (admitted already).
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
 *   4. Signal 0 through the pidfd: the kernel's permission check for
 *      SIGKILL (same uid, or CAP_KILL), without sending anything.
 * Returns 0 (se->pidfd set), -EPERM (we may not kill it: refused),
 * -EOPNOTSUPP (no pidfds: refused), -ECONNABORTED (it is gone).
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
	if (cr.pid <= 0 || cr.pid == getpid())
		return fm_err(-EPERM, "shm: peer pid %d could not be fenced", (int)cr.pid);
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
		if (errno == ENOSYS)
			return fm_err(-EOPNOTSUPP, "shm: connection from pid %d refused: this kernel "
						   "has no pidfd_open (Linux >= 5.3), so it could not "
						   "be fenced", (int)cr.pid);
		return fm_err(-errno, "pidfd_open(%d): %s", (int)cr.pid, strerror(errno));
	}
check:
	r = pidfd_exited(fd);
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
	if (sys_pidfd_send_signal(fd, 0)) {
		int e = errno;

		close(fd);
		if (e == ESRCH)
			return fm_err(-ECONNABORTED, "connecting process %d already exited",
				      (int)cr.pid);
		return fm_err(-EPERM, "shm: connection from pid %d (uid %u) refused: this process "
				      "(uid %u) may not SIGKILL it (%s), so it could not be fenced",
			      (int)cr.pid, (unsigned)cr.uid, (unsigned)geteuid(),
			      e == EPERM ? "not our uid, no CAP_KILL" : strerror(e));
	}
	se->pidfd = fd;
	return 0;
}

int fm__shm_fence_fd(const struct fm_ep *ep)
{
	return container_of(ep, struct shm_ep, ep)->pidfd;
}

int fm__shm_fence(struct fm_ep *ep, unsigned flags)
{
	struct shm_ep *se = to_sep(ep);
	uint64_t now = fm__now_ms();
	int r;

	if (!se->accepted)
		return fm_err(-EOPNOTSUPP, "shm: only the accepting side (the owner) can fence "
					   "its peer");
	if (se->pidfd < 0) /* admitted peers always have one; be safe */
		return fm_err(-EPERM, "shm: no pidfd of peer pid %d: it cannot be fenced",
			      (int)se->peer_pid);
	if (!se->fencing) {
		se->fencing = true;
		se->fence_since_ms = now;
		fm__ep_fail(ep, -ENOTCONN, "fenced: peer pid %d", (int)se->peer_pid);
	}
	r = pidfd_exited(se->pidfd);
	if (r < 0)
		return fm_err(r, "shm: poll pidfd of peer %d: %s", (int)se->peer_pid,
			      strerror(-r));
	if (r == 1)
		return FM_FENCE_DEAD;
	if (!(flags & FM_FENCE_F_KILL) && !se->killed) {
		/* a BYE record means our library unmapped us before sending it */
		fm__shm_sock_read(se);
		if (se->peer_bye)
			return FM_FENCE_RDMA;
		if (now - se->fence_since_ms < FM_SHM_CLOSE_GRACE_MS)
			return fm_err(-EINPROGRESS, "shm: peer pid %d has neither closed nor exited "
						    "(SIGKILL after %d ms)",
				      (int)se->peer_pid, FM_SHM_CLOSE_GRACE_MS);
	}
	if (!se->killed) {
		if (sys_pidfd_send_signal(se->pidfd, SIGKILL) && errno != ESRCH)
			return fm_err(errno == EPERM ? -EPERM : -errno,
				      "shm: pidfd_send_signal(SIGKILL) to peer pid %d (uid %u): %s: "
				      "it cannot be fenced", (int)se->peer_pid,
				      (unsigned)se->peer_uid, strerror(errno));
		se->killed = true;
		if (pidfd_exited(se->pidfd) == 1)
			return FM_FENCE_DEAD;
	}
	return fm_err(-EINPROGRESS, "shm: SIGKILL sent to peer pid %d, waiting for its exit "
				    "(pidfd turns readable)", (int)se->peer_pid);
}
