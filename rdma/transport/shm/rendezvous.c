/* rendezvous.c -- the shm provider's connection setup: listen, the
 * half-open set, accept, connect, the loopback endpoint; endpoint setup and
 * teardown.
 *
 * A SOCK_SEQPACKET abstract unix socket named by the listen address.
 *
 *   client                                  owner
 *   connect() -----------------------------> accept4(): SO_PEERCRED uid
 *                                            allowed? pid visible?  Else
 *                                            close at once (-EACCES/-EPERM)
 *                                            -- nothing was sent.
 *   request: conn private data, NO fd -----> (half-open until it arrives;
 *                                            2 s at most, never blocking)
 *                                            decode within peer limits,
 *                                            pidfd, may we SIGKILL it?
 *                                            Else close (-EPROTO/-EPERM).
 *                                            ring memfd, sealed SHRINK|GROW
 *          <-------------------------------- reply: conn private data +
 *                                            the ring memfd, nothing else
 *   (later, after AUTH)  <------------------ grant: the arena memfds
 *
 * The socket then stays open for the life of the connection: doorbells,
 * the grant, BYE ("peer closed"), EOF without BYE ("peer died": the kernel
 * closes a killed process's sockets).  See ring.c.
 *
 * Half-open connections wait in the listener (at most SHM_PENDING_MAX, the
 * oldest dropped first, each at most SHM_HANDSHAKE_MS); the listener's fd
 * is an epoll set of the listening socket and them, so fm_listener_accept
 * runs only when there is something to do and never waits on one peer.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "shm_priv.h"

/* ------------------------------------------------------------ addresses */

static int shm_sockaddr(const char *addr, struct sockaddr_un *sun, socklen_t *len)
{
	const char *name = addr;
	char full[sizeof(sun->sun_path)];
	int n;

	if (strncmp(name, "shm:", 4) == 0)
		name += 4;
	while (*name == '/')
		name++;
	if (*name == '\0')
		return fm_err(-EINVAL, "shm address \"%s\" has no name", addr);
	if (strncmp(name, "flashmeta-", 10) == 0)
		n = snprintf(full, sizeof(full), "%s", name);
	else
		n = snprintf(full, sizeof(full), "flashmeta-%s", name);
	if (n < 0 || (size_t)n >= sizeof(sun->sun_path) - 1)
		return fm_err(-EINVAL, "shm address \"%s\" too long", addr);
	memset(sun, 0, sizeof(*sun));
	sun->sun_family = AF_UNIX;
	memcpy(sun->sun_path + 1, full, (size_t)n); /* abstract: leading NUL */
	*len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + (size_t)n);
	return 0;
}

/* ------------------------------------------------------------ endpoints */

/* everything but the struct itself (lanes may still refer to it: lane.c) */
static void shm_ep_teardown(struct shm_ep *se)
{
	if (se->ep.event_fd >= 0)
		close(se->ep.event_fd);
	se->ep.event_fd = -1;
	if (se->sock >= 0)
		close(se->sock);
	se->sock = -1;
	if (se->pidfd >= 0)
		close(se->pidfd);
	se->pidfd = -1;
	if (se->ring_map)
		munmap(se->ring_map, se->ring_map_len);
	se->ring_map = NULL;
	fm__shm_unmap_peer(se);
	free(se->rx_bufs);
	free(se->free_slots);
	se->rx_bufs = NULL;
	se->free_slots = NULL;
}

void fm__shm_ep_free(struct fm_ep *ep)
{
	struct shm_ep *se = to_sep(ep);

	fm__ep_fini(&se->ep);
	free(se);
}

/* an endpoint that never got out of setup: no lane can know it */
static void shm_ep_free(struct shm_ep *se)
{
	shm_ep_teardown(se);
	fm__shm_ep_free(&se->ep);
}

static struct shm_ep *shm_ep_alloc(void)
{
	struct shm_ep *se = calloc(1, sizeof(*se));

	if (se == NULL)
		return NULL;
	se->sock = se->ep.event_fd = se->pidfd = -1;
	return se;
}

/*
 * common second half of accept/connect: credits, the two ring views over
 * the mapped ring memfd (geometry `g`, private), local receive buffers, the
 * epoll set.  The ring mapping belongs to se from here on.
 */
static int shm_ep_rings(struct shm_ep *se, struct fm_transport *t, const struct fm_conn_priv *peer,
			const struct shm_geometry *g, bool owner_side)
{
	struct shm_ring *c2o = (struct shm_ring *)(void *)se->ring_map;
	struct shm_ring *o2c = (struct shm_ring *)(void *)(se->ring_map + g->c2o_bytes);
	struct epoll_event ev;
	uint32_t i, n;
	int ret;

	ret = fm__ep_init(&se->ep, t, peer, t->cfg.credits, FM_CTRL_CREDITS);
	if (ret)
		return ret;
	if (owner_side) {
		se->rx = (struct shm_ring_view){.r = c2o, .nslots = g->c2o_nslots, .stride = g->stride};
		se->tx = (struct shm_ring_view){.r = o2c, .nslots = g->o2c_nslots, .stride = g->stride};
	} else {
		se->rx = (struct shm_ring_view){.r = o2c, .nslots = g->o2c_nslots, .stride = g->stride};
		se->tx = (struct shm_ring_view){.r = c2o, .nslots = g->c2o_nslots, .stride = g->stride};
	}
	n = se->ep.rx_data + se->ep.rx_ctrl;
	if (se->rx.nslots != n)
		return fm_err(-EPROTO, "receive ring of %u slots for %u buffers", se->rx.nslots, n);
	atomic_store_explicit(&se->rx.r->armed, t->cfg.wait_mode == FM_WAIT_EVENT,
			      memory_order_seq_cst);
	se->rx_stride = FM_TMSG_HDR_SIZE + se->ep.msg_size;
	se->rx_bufs = malloc((size_t)n * se->rx_stride);
	se->free_slots = malloc(n * sizeof(uint32_t));
	if (se->rx_bufs == NULL || se->free_slots == NULL)
		return fm_err(-ENOMEM, "receive buffers");
	for (i = 0; i < n; i++)
		se->free_slots[i] = n - 1 - i;
	se->nfree = n;

	se->ep.event_fd = epoll_create1(EPOLL_CLOEXEC);
	if (se->ep.event_fd < 0)
		return fm_err(-errno, "epoll_create1: %s", strerror(errno));
	ev.events = EPOLLIN | EPOLLRDHUP;
	ev.data.fd = se->sock;
	if (epoll_ctl(se->ep.event_fd, EPOLL_CTL_ADD, se->sock, &ev))
		return fm_err(-errno, "epoll_ctl: %s", strerror(errno));
	se->ep.state = FM_EP_UP;
	return 0;
}

/* ------------------------------------------------------------ listener */

int fm__shm_listen(struct fm_transport *t, const char *addr, struct fm_listener **out)
{
	struct shm_listener *sl;
	struct sockaddr_un sun;
	struct epoll_event ev = {.events = EPOLLIN};
	socklen_t slen;
	int ret;

	ret = shm_sockaddr(addr, &sun, &slen);
	if (ret)
		return ret;
	/* the arenas exist before anyone can connect: a grant never waits */
	pthread_mutex_lock(&t->lock);
	ret = fm__shm_arenas_open(to_st(t));
	pthread_mutex_unlock(&t->lock);
	if (ret)
		return ret;
	sl = calloc(1, sizeof(*sl));
	if (sl == NULL)
		return fm_err(-ENOMEM, "listener");
	sl->l.t = t;
	sl->epfd = -1;
	sl->sock = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (sl->sock < 0) {
		ret = fm_err(-errno, "socket: %s", strerror(errno));
		goto out_free;
	}
	if (bind(sl->sock, (struct sockaddr *)&sun, slen)) {
		ret = fm_err(-errno, "bind %s: %s", addr, strerror(errno));
		goto out_close;
	}
	if (listen(sl->sock, 64)) {
		ret = fm_err(-errno, "listen %s: %s", addr, strerror(errno));
		goto out_close;
	}
	sl->epfd = epoll_create1(EPOLL_CLOEXEC);
	ev.data.fd = sl->sock;
	if (sl->epfd < 0 || epoll_ctl(sl->epfd, EPOLL_CTL_ADD, sl->sock, &ev)) {
		ret = fm_err(-errno, "listener epoll: %s", strerror(errno));
		goto out_close;
	}
	*out = &sl->l;
	return 0;

out_close:
	if (sl->epfd >= 0)
		close(sl->epfd);
	close(sl->sock);
out_free:
	free(sl);
	return ret;
}

/* drop half-open connection i (closing it removes it from the epoll set) */
static void pending_drop(struct shm_listener *sl, int i)
{
	close(sl->pend[i].sock);
	sl->pend[i] = sl->pend[--sl->npend];
}

void fm__shm_listener_delete(struct fm_listener *l)
{
	struct shm_listener *sl = container_of(l, struct shm_listener, l);

	while (sl->npend)
		pending_drop(sl, 0);
	close(sl->epfd);
	close(sl->sock);
	free(sl);
}

int fm__shm_listener_fd(const struct fm_listener *l)
{
	return container_of(l, struct shm_listener, l)->epfd;
}

/* take every connection waiting in the kernel into the half-open set,
 * checking its uid first.  0, or the refusal of one peer (closed). */
static int pending_take(struct shm_listener *sl)
{
	struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP};

	for (;;) {
		int s = accept4(sl->sock, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
		pid_t pid;
		uid_t uid;
		int ret;

		if (s < 0)
			return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ||
					       errno == ECONNABORTED
				       ? 0 : fm_err(-errno, "accept: %s", strerror(errno));
		ret = fm__shm_peer_admit(sl->l.t, s, &pid, &uid);
		if (ret) {
			close(s); /* refused before anything was sent */
			return ret;
		}
		if (sl->npend == SHM_PENDING_MAX) {
			int oldest = 0;

			for (int i = 1; i < sl->npend; i++)
				if (sl->pend[i].since_ms < sl->pend[oldest].since_ms)
					oldest = i;
			pending_drop(sl, oldest);
		}
		ev.data.fd = s;
		if (epoll_ctl(sl->epfd, EPOLL_CTL_ADD, s, &ev)) {
			ret = fm_err(-errno, "epoll_ctl: %s", strerror(errno));
			close(s);
			return ret;
		}
		sl->pend[sl->npend++] = (struct shm_pending){.sock = s, .since_ms = fm__now_ms()};
	}
}

/*
 * The owner's half of the handshake for a connection whose request is
 * readable: 1 if it is not (yet), 0 with *out, or the refusal (the socket
 * is then closed by the caller).
 */
static int handshake(struct shm_listener *sl, int sock, struct fm_ep **out)
{
	struct fm_transport *t = sl->l.t;
	uint8_t buf[FM_CONN_PRIV_SIZE + 8];
	char cbuf[CMSG_SPACE(sizeof(int))];
	struct iovec iov = {.iov_base = buf, .iov_len = sizeof(buf)};
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
	struct fm_conn_priv peer, mine;
	struct shm_geometry g;
	struct cmsghdr *c;
	struct shm_ep *se;
	int ring_fd = -1, ret;
	ssize_t n;

	/* no control buffer: fds a client attaches are dropped by the kernel */
	n = recvmsg(sock, &mh, MSG_DONTWAIT);
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
		return 1;
	if (n <= 0)
		return fm_err(-ECONNABORTED, "connection request: %s",
			      n == 0 ? "the client went away" : strerror(errno));
	if (mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC))
		return fm_err(-EPROTO, "connection request %s",
			      (mh.msg_flags & MSG_CTRUNC) ? "carries fds" : "too long");
	ret = fm__conn_priv_decode(buf, (size_t)n, &peer);
	if (ret)
		return ret;
	se = shm_ep_alloc();
	if (se == NULL)
		return fm_err(-ENOMEM, "endpoint");
	se->sock = sock;
	ret = fm__shm_peer_identify(se); /* the client waits for us: alive now */
	if (ret)
		goto out;

	fm__conn_priv_local(t, NULL, 0, &mine);
	fm__shm_geometry(&mine, &peer, &g);
	ring_fd = memfd_create("flashmeta-rings", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (ring_fd < 0) {
		ret = fm_err(-errno, "memfd_create(rings): %s", strerror(errno));
		goto out;
	}
	se->ring_map_len = g.c2o_bytes + g.o2c_bytes;
	/* sealed: a client that shrank it would make us SIGBUS */
	if (ftruncate(ring_fd, (off_t)se->ring_map_len) ||
	    fcntl(ring_fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL)) {
		ret = fm_err(-errno, "rings of %zu bytes: %s", se->ring_map_len, strerror(errno));
		goto out;
	}
	se->ring_map = mmap(NULL, se->ring_map_len, PROT_READ | PROT_WRITE, MAP_SHARED, ring_fd, 0);
	if (se->ring_map == MAP_FAILED) {
		se->ring_map = NULL;
		ret = fm_err(-errno, "mmap rings: %s", strerror(errno));
		goto out;
	}
	fm__shm_ring_init((struct shm_ring *)(void *)se->ring_map);
	fm__shm_ring_init((struct shm_ring *)(void *)(se->ring_map + g.c2o_bytes));
	ret = shm_ep_rings(se, t, &peer, &g, true);
	if (ret)
		goto out;

	fm__conn_priv_encode(&mine, buf);
	iov.iov_len = FM_CONN_PRIV_SIZE;
	memset(cbuf, 0, sizeof(cbuf));
	mh = (struct msghdr){.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
			     .msg_controllen = sizeof(cbuf)};
	c = CMSG_FIRSTHDR(&mh);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(c), &ring_fd, sizeof(int));
	if (sendmsg(sock, &mh, MSG_NOSIGNAL | MSG_DONTWAIT) != FM_CONN_PRIV_SIZE) {
		ret = fm_err(-ECONNABORTED, "connection reply: %s", strerror(errno));
		goto out;
	}
	close(ring_fd);
	se->ep.passive = true;
	*out = &se->ep;
	return 0;
out:
	if (ring_fd >= 0)
		close(ring_fd);
	se->sock = -1; /* the caller closes it */
	shm_ep_free(se);
	return ret;
}

int fm__shm_accept(struct fm_listener *l, int timeout_ms, struct fm_ep **out)
{
	struct shm_listener *sl = container_of(l, struct shm_listener, l);
	uint64_t deadline = fm__deadline(timeout_ms);

	for (;;) {
		struct epoll_event ev;
		uint64_t now;
		int ret, left;

		ret = pending_take(sl);
		if (ret)
			return ret;
		now = fm__now_ms();
		for (int i = 0; i < sl->npend; i++) {
			ret = handshake(sl, sl->pend[i].sock, out);
			if (ret == 1 && now - sl->pend[i].since_ms < SHM_HANDSHAKE_MS)
				continue;
			if (ret == 0) {
				/* the socket now belongs to the endpoint */
				(void)epoll_ctl(sl->epfd, EPOLL_CTL_DEL, sl->pend[i].sock, NULL);
				sl->pend[i] = sl->pend[--sl->npend];
				return 0;
			}
			if (ret == 1)
				ret = fm_err(-ECONNABORTED, "connection request: none within %d ms",
					     SHM_HANDSHAKE_MS);
			pending_drop(sl, i);
			return ret;
		}
		left = fm__remaining_ms(deadline);
		if (left == 0)
			return fm_err(-ETIMEDOUT, "no connection request within %d ms", timeout_ms);
		/* a half-open connection's own time runs out too */
		for (int i = 0; i < sl->npend; i++) {
			uint64_t end = sl->pend[i].since_ms + SHM_HANDSHAKE_MS;
			int until = end > now ? (int)(end - now) : 0;

			if (left < 0 || until < left)
				left = until;
		}
		if (epoll_wait(sl->epfd, &ev, 1, left) < 0 && errno != EINTR)
			return fm_err(-errno, "epoll_wait(listener): %s", strerror(errno));
	}
}

int fm__shm_connect(struct fm_transport *t, const char *addr, const struct fm_conn_priv *priv,
		    int timeout_ms, struct fm_ep **out)
{
	uint8_t buf[FM_CONN_PRIV_SIZE + 8];
	char cbuf[CMSG_SPACE(4 * sizeof(int))];
	struct iovec iov = {.iov_base = buf, .iov_len = sizeof(buf)};
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
			    .msg_controllen = sizeof(cbuf)};
	struct pollfd pfd = {.events = POLLIN};
	struct fm_conn_priv peer;
	struct shm_geometry g;
	struct sockaddr_un sun;
	struct cmsghdr *c;
	struct shm_ep *se;
	struct stat sb;
	int ring_fd = -1, nfd = 0, ret, r;
	socklen_t slen;
	ssize_t n;

	ret = shm_sockaddr(addr, &sun, &slen);
	if (ret)
		return ret;
	se = shm_ep_alloc();
	if (se == NULL)
		return fm_err(-ENOMEM, "endpoint");
	se->sock = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (se->sock < 0) {
		ret = fm_err(-errno, "socket: %s", strerror(errno));
		goto out;
	}
	if (connect(se->sock, (struct sockaddr *)&sun, slen)) {
		ret = errno == ENOENT ? -ECONNREFUSED : -errno;
		ret = fm_err(ret, "connect %s: %s", addr, strerror(-ret));
		goto out;
	}
	/* the request carries no fd: the owner never maps anything of ours */
	fm__conn_priv_encode(priv, buf);
	if (send(se->sock, buf, FM_CONN_PRIV_SIZE, MSG_NOSIGNAL) != FM_CONN_PRIV_SIZE) {
		ret = fm_err(-ECONNREFUSED, "connection request to %s: %s", addr, strerror(errno));
		goto out;
	}
	pfd.fd = se->sock;
	r = poll(&pfd, 1, timeout_ms);
	if (r <= 0) {
		ret = fm_err(r == 0 ? -ETIMEDOUT : -errno, "connection reply from %s: %s", addr,
			     r == 0 ? "timed out" : strerror(errno));
		goto out;
	}
	n = recvmsg(se->sock, &mh, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
	for (c = n >= 0 ? CMSG_FIRSTHDR(&mh) : NULL; c; c = CMSG_NXTHDR(&mh, c)) {
		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		for (size_t k = 0; k < (c->cmsg_len - CMSG_LEN(0)) / sizeof(int); k++) {
			int fd;

			memcpy(&fd, CMSG_DATA(c) + k * sizeof(int), sizeof(int));
			if (nfd++ == 0)
				ring_fd = fd;
			else
				close(fd);
		}
	}
	if (n <= 0) {
		ret = fm_err(-ECONNREFUSED, "connection reply from %s: %s", addr,
			     n == 0 || errno == ECONNRESET ? "the owner refused the connection (its "
							     "log says why)" : strerror(errno));
		goto out;
	}
	if (nfd != 1 || (mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC))) {
		ret = fm_err(-EPROTO, "connection reply from %s with %d fds", addr, nfd);
		goto out;
	}
	ret = fm__conn_priv_decode(buf, (size_t)n, &peer);
	if (ret)
		goto out;
	fm__shm_geometry(&peer, priv, &g);
	se->ring_map_len = g.c2o_bytes + g.o2c_bytes;
	if (fstat(ring_fd, &sb) || (uint64_t)sb.st_size < se->ring_map_len) {
		ret = fm_err(-EPROTO, "ring memfd smaller than the %zu bytes agreed",
			     se->ring_map_len);
		goto out;
	}
	se->ring_map = mmap(NULL, se->ring_map_len, PROT_READ | PROT_WRITE, MAP_SHARED, ring_fd, 0);
	if (se->ring_map == MAP_FAILED) {
		se->ring_map = NULL;
		ret = fm_err(-errno, "mmap rings: %s", strerror(errno));
		goto out;
	}
	if (madvise(se->ring_map, se->ring_map_len, MADV_DONTFORK)) {
		ret = fm_err(-errno, "madvise(rings, DONTFORK): %s", strerror(errno));
		goto out;
	}
	ret = shm_ep_rings(se, t, &peer, &g, false);
	if (ret)
		goto out;
	close(ring_fd);
	se->ep.hello_len = 0; /* the owner sends no hello */
	*out = &se->ep;
	return 0;
out:
	if (ring_fd >= 0)
		close(ring_fd);
	shm_ep_free(se);
	return ret;
}

int fm__shm_loopback(struct fm_listener *l, struct fm_ep **out)
{
	struct shm_transport *st = to_st(l->t);
	struct fm_conn_priv self;
	struct shm_ep *se;
	int ret;

	se = shm_ep_alloc();
	if (se == NULL)
		return fm_err(-ENOMEM, "endpoint");
	fm__conn_priv_local(l->t, NULL, 0, &self);
	ret = fm__ep_init(&se->ep, l->t, &self, 0, 0);
	if (ret)
		goto out_free;
	/* our own arenas (fm_listen made them), through our own mapping */
	se->peer_map_len = st->map_len;
	se->peer_read_size = st->rd.size;
	se->peer_nent = st->nent;
	atomic_store_explicit(&se->peer_map, st->map, memory_order_release);
	se->ep.event_fd = epoll_create1(EPOLL_CLOEXEC);
	if (se->ep.event_fd < 0) {
		ret = fm_err(-errno, "epoll_create1: %s", strerror(errno));
		goto out_free;
	}
	se->ep.state = FM_EP_UP;
	*out = &se->ep;
	return 0;
out_free:
	shm_ep_free(se);
	return ret;
}

/* the BYE byte; a connecting side waits up to linger_ms for room (the
 * owner's fence takes only a BYE as proof that we unmapped it).
 *
 * First our receive side is shut and emptied.  A unix socket closed with
 * records still unread in it (the peer's doorbells, rung for messages we
 * will never drain) resets the connection: the peer's next recvmsg fails
 * ECONNRESET before it returns what is queued -- our BYE included.  An
 * owner then cannot tell our close from a crash, and its fence SIGKILLs
 * this process after FM_SHM_CLOSE_GRACE_MS, though we unmapped it and the
 * session may have quiesced.  After SHUT_RD the peer's doorbells fail
 * EPIPE (it ignores that) instead of queuing, so once drained the queue
 * stays empty and the close is an orderly EOF behind the BYE. */
static void shm_send_bye(struct shm_ep *se)
{
	char bye = SHM_MSG_BYE, junk[SHM_GRANT_SIZE + 1];
	int linger = se->ep.t->cfg.linger_ms;
	uint64_t deadline = fm__deadline(linger < 0 ? 0 : linger);

	(void)shutdown(se->sock, SHUT_RD);
	/* (a grant's fds, unread: no control buffer, the kernel closes them) */
	while (recv(se->sock, junk, sizeof(junk), MSG_DONTWAIT) > 0)
		;
	while (send(se->sock, &bye, 1, MSG_NOSIGNAL | MSG_DONTWAIT) < 0) {
		struct pollfd pfd = {.fd = se->sock, .events = POLLOUT};
		int left = fm__remaining_ms(deadline);

		if ((errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) || left == 0 ||
		    se->accepted)
			return;
		(void)poll(&pfd, 1, left);
	}
}

void fm__shm_ep_delete(struct fm_ep *ep)
{
	struct shm_ep *se = to_sep(ep);

	/* 1. no lane is inside an operation on the mapping, and none will
	 *    start one (the endpoint is not UP: fm_ep_delete saw to that) */
	fm__ep_quiesce(ep);
	/* 2. unmap the owner's arenas and the rings BEFORE the BYE: a BYE then
	 *    proves to a fencing owner that nothing of ours can land any more.
	 *    What we sent is in the ring already: the peer drains it before it
	 *    acts on the BYE (ring.c), so nothing needs to linger here. */
	if (se->sock >= 0)
		fm__shm_unmap_peer(se);
	else /* loopback: the transport's own mapping */
		atomic_store_explicit(&se->peer_map, NULL, memory_order_relaxed);
	if (se->ring_map)
		munmap(se->ring_map, se->ring_map_len);
	se->ring_map = NULL;
	/* 3. also when CLOSED: the peer may be fencing us */
	if (se->sock >= 0)
		shm_send_bye(se);
	fm__ep_fail(ep, -ENOTCONN, "closed locally");
	shm_ep_teardown(se);
}
