/* rendezvous.c -- the shm provider's connection setup: listen, accept,
 * connect, the loopback endpoint; endpoint setup and teardown.
 *
 * A SOCK_SEQPACKET abstract unix socket named by the listen address.
 * Client -> owner: conn private data + client arena fd.  Owner -> client:
 * conn private data + owner arena fd + ring memfd + two eventfds.  The
 * socket then stays open for the life of the connection: a BYE byte = "peer
 * closed", EOF without BYE = "peer died" (the kernel closes a killed
 * process's sockets).
 */
#include <errno.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
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

/* send bytes + up to 4 fds as one SEQPACKET message */
static int sock_send_fds(int sock, const void *buf, size_t len, const int *fds, int nfds)
{
	char cbuf[CMSG_SPACE(sizeof(int) * 4)];
	struct iovec iov = {.iov_base = (void *)buf, .iov_len = len};
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
	struct cmsghdr *c;

	memset(cbuf, 0, sizeof(cbuf));
	if (nfds) {
		mh.msg_control = cbuf;
		mh.msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)nfds);
		c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)nfds);
		memcpy(CMSG_DATA(c), fds, sizeof(int) * (size_t)nfds);
	}
	if (sendmsg(sock, &mh, MSG_NOSIGNAL) != (ssize_t)len)
		return -errno ? -errno : -EIO;
	return 0;
}

/* receive one message with exactly `want_fds` fds, waiting up to timeout */
static int sock_recv_fds(int sock, void *buf, size_t cap, int *fds, int want_fds, int timeout_ms)
{
	char cbuf[CMSG_SPACE(sizeof(int) * 4)];
	struct iovec iov = {.iov_base = buf, .iov_len = cap};
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
			    .msg_controllen = sizeof(cbuf)};
	struct pollfd pfd = {.fd = sock, .events = POLLIN};
	struct cmsghdr *c;
	int got = 0, i, r;
	ssize_t n;

	r = poll(&pfd, 1, timeout_ms);
	if (r == 0)
		return -ETIMEDOUT;
	if (r < 0)
		return -errno;
	n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC);
	if (n < 0)
		return -errno;
	if (n == 0)
		return -ECONNABORTED;
	for (c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
		if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
			int k = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
			int tmp[4];

			memcpy(tmp, CMSG_DATA(c), sizeof(int) * (size_t)(k > 4 ? 4 : k));
			for (i = 0; i < k && i < 4; i++) {
				if (got < want_fds)
					fds[got++] = tmp[i];
				else
					close(tmp[i]);
			}
		}
	}
	if (got != want_fds || (mh.msg_flags & (MSG_CTRUNC | MSG_TRUNC))) {
		for (i = 0; i < got; i++)
			close(fds[i]);
		return -EPROTO;
	}
	return (int)n;
}

/* ------------------------------------------------------------ listener */

int fm__shm_listen(struct fm_transport *t, const char *addr, struct fm_listener **out)
{
	struct shm_listener *sl;
	struct sockaddr_un sun;
	socklen_t slen;
	int ret;

	ret = shm_sockaddr(addr, &sun, &slen);
	if (ret)
		return ret;
	sl = calloc(1, sizeof(*sl));
	if (sl == NULL)
		return fm_err(-ENOMEM, "listener");
	sl->l.t = t;
	sl->sock = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
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
	*out = &sl->l;
	return 0;

out_close:
	close(sl->sock);
out_free:
	free(sl);
	return ret;
}

void fm__shm_listener_delete(struct fm_listener *l)
{
	struct shm_listener *sl = container_of(l, struct shm_listener, l);

	close(sl->sock);
	free(sl);
}

int fm__shm_listener_fd(const struct fm_listener *l)
{
	return container_of(l, struct shm_listener, l)->sock;
}

/* ------------------------------------------------------------ endpoints */

static void shm_ep_free(struct shm_ep *se)
{
	if (se->ep.event_fd >= 0)
		close(se->ep.event_fd);
	if (se->efd_rx >= 0)
		close(se->efd_rx);
	if (se->efd_tx >= 0)
		close(se->efd_tx);
	if (se->sock >= 0)
		close(se->sock);
	if (se->pidfd >= 0)
		close(se->pidfd);
	if (se->ring_map)
		munmap(se->ring_map, se->ring_map_len);
	if (se->peer_arena_mapped && se->peer_arena)
		munmap(se->peer_arena, se->peer_arena_size);
	free(se->rx_bufs);
	free(se->free_slots);
	fm__ep_fini(&se->ep);
	free(se);
}

static struct shm_ep *shm_ep_alloc(void)
{
	struct shm_ep *se = calloc(1, sizeof(*se));

	if (se == NULL)
		return NULL;
	se->sock = se->efd_rx = se->efd_tx = se->ep.event_fd = se->pidfd = -1;
	se->cache_idx = -1;
	return se;
}

/*
 * common second half of accept/connect: map the peer arena and the rings,
 * local receive buffers, the epoll set.  Takes ownership of the fds.
 */
static int shm_ep_setup(struct shm_ep *se, struct fm_transport *t, const struct fm_conn_priv *peer,
			int peer_arena_fd, int ring_fd, int efd_rx, int efd_tx, bool owner_side)
{
	struct shm_ring *c2o, *o2c;
	struct epoll_event ev;
	struct stat sb;
	uint32_t i, n;
	int ret;

	se->efd_rx = efd_rx;
	se->efd_tx = efd_tx;
	ret = fm__ep_init(&se->ep, t, peer, t->cfg.credits, FM_CTRL_CREDITS);
	if (ret)
		goto out;
	if (fstat(peer_arena_fd, &sb)) {
		ret = fm_err(-errno, "fstat peer arena: %s", strerror(errno));
		goto out;
	}
	se->peer_arena_size = (uint64_t)sb.st_size;
	se->peer_arena = mmap(NULL, se->peer_arena_size, PROT_READ | PROT_WRITE,
			      MAP_SHARED | MAP_NORESERVE, peer_arena_fd, 0);
	if (se->peer_arena == MAP_FAILED) {
		se->peer_arena = NULL;
		ret = fm_err(-errno, "mmap peer arena: %s", strerror(errno));
		goto out;
	}
	se->peer_arena_mapped = true;
	/* a child forked later must not inherit the peer's lock words: a
	 * fence kills only the process that connected */
	if (madvise(se->peer_arena, se->peer_arena_size, MADV_DONTFORK)) {
		ret = fm_err(-errno, "madvise(peer arena, DONTFORK): %s", strerror(errno));
		goto out;
	}
	if (((struct shm_arena_hdr *)se->peer_arena)->magic != SHM_ARENA_MAGIC) {
		ret = fm_err(-EPROTO, "peer arena has no flashmeta magic");
		goto out;
	}
	if (fstat(ring_fd, &sb)) {
		ret = fm_err(-errno, "fstat rings: %s", strerror(errno));
		goto out;
	}
	se->ring_map_len = (size_t)sb.st_size;
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
	c2o = (struct shm_ring *)se->ring_map;
	if (se->ring_map_len < SHM_RING_HDR ||
	    fm__shm_ring_bytes(c2o->nslots, c2o->stride) + SHM_RING_HDR > se->ring_map_len) {
		ret = fm_err(-EPROTO, "ring memfd of %zu bytes too small", se->ring_map_len);
		goto out;
	}
	o2c = (struct shm_ring *)(se->ring_map + fm__shm_ring_bytes(c2o->nslots, c2o->stride));
	if (fm__shm_ring_bytes(c2o->nslots, c2o->stride) +
	    fm__shm_ring_bytes(o2c->nslots, o2c->stride) > se->ring_map_len) {
		ret = fm_err(-EPROTO, "ring memfd of %zu bytes too small", se->ring_map_len);
		goto out;
	}
	se->rx = owner_side ? c2o : o2c;
	se->tx = owner_side ? o2c : c2o;
	if (se->rx->nslots != se->ep.rx_data + se->ep.rx_ctrl ||
	    se->rx->stride < fm__shm_ring_stride(se->ep.msg_size)) {
		ret = fm_err(-EPROTO, "receive ring geometry %u x %u does not match ours",
			     se->rx->nslots, se->rx->stride);
		goto out;
	}
	atomic_store_explicit(&se->rx->armed, t->cfg.wait_mode == FM_WAIT_EVENT,
			      memory_order_seq_cst);

	n = se->ep.rx_data + se->ep.rx_ctrl;
	se->rx_stride = FM_TMSG_HDR_SIZE + se->ep.msg_size;
	se->rx_bufs = malloc((size_t)n * se->rx_stride);
	se->free_slots = malloc(n * sizeof(uint32_t));
	if (se->rx_bufs == NULL || se->free_slots == NULL) {
		ret = fm_err(-ENOMEM, "receive buffers");
		goto out;
	}
	for (i = 0; i < n; i++)
		se->free_slots[i] = n - 1 - i;
	se->nfree = n;

	se->ep.event_fd = epoll_create1(EPOLL_CLOEXEC);
	if (se->ep.event_fd < 0) {
		ret = fm_err(-errno, "epoll_create1: %s", strerror(errno));
		goto out;
	}
	ev.events = EPOLLIN;
	ev.data.fd = efd_rx;
	if (epoll_ctl(se->ep.event_fd, EPOLL_CTL_ADD, efd_rx, &ev)) {
		ret = fm_err(-errno, "epoll_ctl: %s", strerror(errno));
		goto out;
	}
	ev.events = EPOLLIN | EPOLLRDHUP;
	ev.data.fd = se->sock;
	if (epoll_ctl(se->ep.event_fd, EPOLL_CTL_ADD, se->sock, &ev)) {
		ret = fm_err(-errno, "epoll_ctl: %s", strerror(errno));
		goto out;
	}
	se->ep.state = FM_EP_UP;
out:
	close(peer_arena_fd);
	close(ring_fd);
	return ret;
}

int fm__shm_accept(struct fm_listener *l, int timeout_ms, struct fm_ep **out)
{
	struct shm_listener *sl = container_of(l, struct shm_listener, l);
	struct shm_transport *st = to_st(l->t);
	uint8_t buf[FM_CONN_PRIV_SIZE + 8];
	struct fm_conn_priv peer, mine;
	struct pollfd pfd = {.fd = sl->sock, .events = POLLIN};
	uint64_t deadline = fm__deadline(timeout_ms);
	int fds[4], peer_arena_fd = -1, ring_fd = -1, efd_c2o = -1, efd_o2c = -1;
	size_t c2o_len, o2c_len;
	struct shm_ring *rings;
	struct shm_ep *se;
	int ret, r;

	r = poll(&pfd, 1, timeout_ms);
	if (r == 0)
		return fm_err(-ETIMEDOUT, "no connection request within %d ms", timeout_ms);
	if (r < 0)
		return fm_err(-errno, "poll listener: %s", strerror(errno));
	se = shm_ep_alloc();
	if (se == NULL)
		return fm_err(-ENOMEM, "endpoint");
	se->sock = accept4(sl->sock, NULL, NULL, SOCK_CLOEXEC);
	if (se->sock < 0) {
		ret = fm_err(-errno, "accept: %s", strerror(errno));
		goto out_free;
	}
	r = fm__remaining_ms(deadline);
	ret = sock_recv_fds(se->sock, buf, sizeof(buf), fds, 1,
			    r < 0 || r > 2000 ? 2000 : (r ? r : 1));
	if (ret < 0) {
		ret = fm_err(ret == -ETIMEDOUT ? -ECONNABORTED : ret,
			     "connection request: %s", strerror(-ret));
		goto out_free;
	}
	peer_arena_fd = fds[0];
	ret = fm__conn_priv_decode(buf, (size_t)ret, &peer);
	if (ret)
		goto out_fds;
	/* the client waits for our reply: it is alive now */
	ret = fm__shm_peer_identify(se);
	if (ret)
		goto out_fds;

	/* rings: client->owner sized by us, owner->client by the client */
	c2o_len = fm__shm_ring_bytes(l->t->cfg.credits + FM_CTRL_CREDITS,
				     fm__shm_ring_stride(l->t->cfg.msg_size));
	o2c_len = fm__shm_ring_bytes((uint32_t)peer.credits + peer.ctrl_credits,
				     fm__shm_ring_stride(peer.msg_size));
	ring_fd = memfd_create("flashmeta-rings", MFD_CLOEXEC);
	efd_c2o = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	efd_o2c = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (ring_fd < 0 || efd_c2o < 0 || efd_o2c < 0) {
		ret = fm_err(-errno, "memfd/eventfd: %s", strerror(errno));
		goto out_fds;
	}
	if (ftruncate(ring_fd, (off_t)(c2o_len + o2c_len))) {
		ret = fm_err(-errno, "ftruncate rings: %s", strerror(errno));
		goto out_fds;
	}
	rings = mmap(NULL, c2o_len + o2c_len, PROT_READ | PROT_WRITE, MAP_SHARED, ring_fd, 0);
	if (rings == MAP_FAILED) {
		ret = fm_err(-errno, "mmap rings: %s", strerror(errno));
		goto out_fds;
	}
	fm__shm_ring_init(rings, l->t->cfg.credits + FM_CTRL_CREDITS,
			  fm__shm_ring_stride(l->t->cfg.msg_size));
	fm__shm_ring_init((struct shm_ring *)((uint8_t *)rings + c2o_len),
			  (uint32_t)peer.credits + peer.ctrl_credits,
			  fm__shm_ring_stride(peer.msg_size));
	munmap(rings, c2o_len + o2c_len);

	fm__conn_priv_local(l->t, NULL, 0, &mine);
	fm__conn_priv_encode(&mine, buf);
	fds[0] = st->arena_fd;
	fds[1] = ring_fd;
	fds[2] = efd_c2o;
	fds[3] = efd_o2c;
	ret = sock_send_fds(se->sock, buf, FM_CONN_PRIV_SIZE, fds, 4);
	if (ret) {
		ret = fm_err(-ECONNABORTED, "connection reply: %s", strerror(-ret));
		goto out_fds;
	}
	ret = shm_ep_setup(se, l->t, &peer, peer_arena_fd, ring_fd, efd_c2o, efd_o2c, true);
	if (ret) {
		se->efd_rx = se->efd_tx = -1; /* closed below */
		peer_arena_fd = ring_fd = -1; /* closed by setup */
		goto out_fds;
	}
	*out = &se->ep;
	return 0;

out_fds:
	if (peer_arena_fd >= 0)
		close(peer_arena_fd);
	if (ring_fd >= 0)
		close(ring_fd);
	if (efd_c2o >= 0)
		close(efd_c2o);
	if (efd_o2c >= 0)
		close(efd_o2c);
out_free:
	shm_ep_free(se);
	return ret;
}

int fm__shm_connect(struct fm_transport *t, const char *addr, const struct fm_conn_priv *priv,
		    int timeout_ms, struct fm_ep **out)
{
	struct shm_transport *st = to_st(t);
	uint8_t buf[FM_CONN_PRIV_SIZE + 8];
	struct fm_conn_priv peer;
	struct sockaddr_un sun;
	socklen_t slen;
	struct shm_ep *se;
	int fds[4], ret, i;

	ret = shm_sockaddr(addr, &sun, &slen);
	if (ret)
		return ret;
	se = shm_ep_alloc();
	if (se == NULL)
		return fm_err(-ENOMEM, "endpoint");
	se->sock = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (se->sock < 0) {
		ret = fm_err(-errno, "socket: %s", strerror(errno));
		goto out_free;
	}
	if (connect(se->sock, (struct sockaddr *)&sun, slen)) {
		ret = errno == ENOENT ? -ECONNREFUSED : -errno;
		ret = fm_err(ret, "connect %s: %s", addr, strerror(-ret));
		goto out_free;
	}
	fm__conn_priv_encode(priv, buf);
	ret = sock_send_fds(se->sock, buf, FM_CONN_PRIV_SIZE, &st->arena_fd, 1);
	if (ret) {
		ret = fm_err(-ECONNREFUSED, "connection request to %s: %s", addr, strerror(-ret));
		goto out_free;
	}
	ret = sock_recv_fds(se->sock, buf, sizeof(buf), fds, 4, timeout_ms);
	if (ret < 0) {
		ret = fm_err(ret == -ECONNABORTED ? -ECONNREFUSED : ret,
			     "connection reply from %s: %s", addr,
			     ret == -ECONNABORTED ? "owner closed" : strerror(-ret));
		goto out_free;
	}
	ret = fm__conn_priv_decode(buf, (size_t)ret, &peer);
	if (ret) {
		for (i = 0; i < 4; i++)
			close(fds[i]);
		goto out_free;
	}
	ret = shm_ep_setup(se, t, &peer, fds[0], fds[1], fds[3], fds[2], false);
	if (ret)
		goto out_free;
	se->ep.hello_len = 0; /* the owner sends no hello */
	*out = &se->ep;
	return 0;

out_free:
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
	se->peer_arena = st->arena;
	se->peer_arena_size = st->arena_size;
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

void fm__shm_ep_delete(struct fm_ep *ep)
{
	struct shm_ep *se = to_sep(ep);
	char bye = SHM_BYE;

	/* unmap the peer's arena and the rings BEFORE the BYE: a BYE then
	 * proves to a fencing owner that nothing of ours can land any more */
	if (se->peer_arena_mapped && se->peer_arena)
		munmap(se->peer_arena, se->peer_arena_size);
	se->peer_arena = NULL;
	se->peer_arena_mapped = false;
	if (se->ring_map)
		munmap(se->ring_map, se->ring_map_len);
	se->ring_map = NULL;
	/* also when CLOSED: a fencing owner that asked us to close waits
	 * for exactly this byte (a dead socket just fails the send) */
	if (se->sock >= 0)
		(void)send(se->sock, &bye, 1, MSG_NOSIGNAL | MSG_DONTWAIT);
	fm__ep_fail(ep, -ENOTCONN, "closed locally");
	shm_ep_free(se);
}
