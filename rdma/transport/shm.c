/* shm.c -- the shared-memory provider: owner and clients as processes on
 * one host, with the same semantics as the verbs provider.
 *
 * Pieces:
 *
 *   arena    one memfd per transport, ftruncate'd to cfg.shm_arena_size
 *            (sparse), mapped MAP_SHARED.  Page 0.. holds the region table;
 *            regions are bump-allocated after it, page aligned.  A region
 *            descriptor's addr is its offset in the arena.  The table entry
 *            {key, access, off, len} is what a peer checks on EVERY access:
 *            key published last with a release store, cleared to 0 on
 *            delete (and the pages punched out), so a stale or forged
 *            descriptor fails like a remote access error on verbs: -EACCES
 *            and the endpoint CLOSED.
 *
 *   rendezvous  a SOCK_SEQPACKET abstract unix socket named by the listen
 *            address.  Client -> owner: conn private data + client arena
 *            fd.  Owner -> client: conn private data + owner arena fd + ring
 *            memfd + two eventfds.  The socket then stays open for the life
 *            of the connection: a BYE byte = "peer closed", EOF without BYE =
 *            "peer died" (the kernel closes a killed process's sockets).
 *
 *   rings    one memfd per connection holding two SPSC rings, client->owner
 *            and owner->client, each sized by its RECEIVER (R + C slots of
 *            4 + 16 + msg_size bytes).  Producer: write slot, store head
 *            (release), fence, if the receiver is in event mode write its
 *            eventfd.  Consumer: load head (acquire), copy the slot out into
 *            a local receive buffer, store tail (release).  Credits (in
 *            msg.c) guarantee the ring never overflows; a full ring
 *            is a protocol error.
 *
 *   fence    the accepting side keeps a pidfd of the connecting process,
 *            taken at accept (shm_peer_identify).  fm_ep_fence = SIGKILL
 *            through it, then poll until it reports the whole process
 *            exited: only a dead peer can no longer touch the arena it
 *            mapped (see SHM TRUST MODEL in transport.h).  Both sides map
 *            the peer's arena and the rings MADV_DONTFORK, so a process
 *            forked later does not inherit them.
 *
 * One-sided operations are plain C11 atomics on the peer's arena mapping:
 * CAS = atomic_compare_exchange_strong, FAA = atomic_fetch_add, READ =
 * one memory_order_acquire load per aligned 8-byte word.  The loopback
 * endpoint maps nothing: its "peer arena" is our own.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

#include "transport_priv.h"

#define SHM_ARENA_MAGIC 0x414e455241464dull /* "FMARENA" */
#define SHM_MAX_REGIONS 256
#define SHM_PAGE 4096ull
#define SHM_BYE 'B'

/* Linux 6.5 uapi; older headers lack it, older kernels say ENOPROTOOPT */
/* fm_ep_fence: how long a live peer gets to close by itself when asked */
#define FM_SHM_FENCE_GRACE_MS 300

#ifndef SO_PEERPIDFD
#define SO_PEERPIDFD 77
#endif

struct shm_region_ent {
	_Atomic uint32_t key; /* 0 = free; published last (release) */
	uint32_t access;
	uint64_t off;
	uint64_t len;
};

struct shm_arena_hdr {
	uint64_t magic;
	uint64_t size;
	uint64_t bump; /* next free offset; owner-private, under t->lock */
	uint64_t reserved;
	struct shm_region_ent ent[SHM_MAX_REGIONS];
};
#define SHM_ARENA_DATA (((sizeof(struct shm_arena_hdr) + SHM_PAGE - 1) / SHM_PAGE) * SHM_PAGE)

/* SPSC ring header; slots follow at SHM_RING_HDR.  head is written only by
 * the producer, tail only by the consumer, armed only by the consumer. */
struct shm_ring {
	_Alignas(64) _Atomic uint32_t head;
	_Alignas(64) _Atomic uint32_t tail;
	_Alignas(64) _Atomic uint32_t armed; /* consumer wants eventfd wakeups */
	_Alignas(64) uint32_t nslots;
	uint32_t stride; /* bytes per slot: le32 len + message */
};
#define SHM_RING_HDR 256u
static_assert(sizeof(struct shm_ring) <= SHM_RING_HDR, "ring header");

struct shm_transport {
	struct fm_transport t;
	int arena_fd;
	uint8_t *arena;
	uint64_t arena_size;
};

struct shm_listener {
	struct fm_listener l;
	int sock;
};

struct shm_ep {
	struct fm_ep ep;
	int sock; /* -1 for loopback */
	uint8_t *peer_arena;
	uint64_t peer_arena_size;
	bool peer_arena_mapped; /* ours to munmap */
	uint8_t *ring_map;
	size_t ring_map_len;
	struct shm_ring *rx, *tx;
	int efd_rx, efd_tx;
	uint32_t rx_stride;     /* local buffer: HDR + msg_size */
	uint8_t *rx_bufs;       /* rx_data + rx_ctrl local buffers */
	uint32_t *free_slots;   /* stack of free local buffers */
	uint32_t nfree;
	int cache_idx;          /* last region table index used */

	/* fencing, accepting side only (shm_peer_identify) */
	bool accepted;
	bool peer_bye;          /* the peer's BYE came: it unmapped us first */
	bool fence_bye_sent;    /* shm_fence asked the peer to close */
	int pidfd;              /* the connecting process, or -1 */
	pid_t peer_pid;         /* SO_PEERCRED, for messages (0: not visible) */
	uid_t peer_uid;
	int fence_err;          /* pidfd < 0: why fm_ep_fence cannot work */
	char fence_why[96];
};

static struct shm_transport *to_st(struct fm_transport *t)
{
	return container_of(t, struct shm_transport, t);
}

static struct shm_ep *to_sep(struct fm_ep *ep)
{
	return container_of(ep, struct shm_ep, ep);
}

/* ------------------------------------------------------------ transport */

static int shm_transport_init(struct fm_transport **out, const struct fm_transport_cfg *cfg)
{
	struct shm_transport *st;
	struct shm_arena_hdr *h;
	int ret;

	if (cfg->shm_arena_size < SHM_ARENA_DATA + SHM_PAGE)
		return fm_err(-EINVAL, "shm arena of %llu bytes is too small",
			      (unsigned long long)cfg->shm_arena_size);
	st = calloc(1, sizeof(*st));
	if (st == NULL)
		return fm_err(-ENOMEM, "shm transport");
	st->arena_size = (cfg->shm_arena_size + SHM_PAGE - 1) & ~(SHM_PAGE - 1);
	st->arena_fd = memfd_create("flashmeta-arena", MFD_CLOEXEC);
	if (st->arena_fd < 0) {
		ret = fm_err(-errno, "memfd_create: %s", strerror(errno));
		goto out_free;
	}
	if (ftruncate(st->arena_fd, (off_t)st->arena_size)) {
		ret = fm_err(-errno, "ftruncate arena to %llu: %s",
			     (unsigned long long)st->arena_size, strerror(errno));
		goto out_close;
	}
	st->arena = mmap(NULL, st->arena_size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE,
			 st->arena_fd, 0);
	if (st->arena == MAP_FAILED) {
		ret = fm_err(-errno, "mmap arena: %s", strerror(errno));
		goto out_close;
	}
	h = (struct shm_arena_hdr *)st->arena;
	h->magic = SHM_ARENA_MAGIC;
	h->size = st->arena_size;
	h->bump = SHM_ARENA_DATA;

	snprintf(st->t.device, sizeof(st->t.device), "shm");
	st->t.caps.flags = FM_CAP_ATOMIC | FM_CAP_ATOMIC_GLOB | FM_CAP_EVENT_FD;
	st->t.caps.max_msg_size = cfg->msg_size;
	snprintf(st->t.caps.provider, sizeof(st->t.caps.provider), "shm");
	snprintf(st->t.caps.device, sizeof(st->t.caps.device), "shm");
	st->t.caps.max_region_size = st->arena_size - SHM_ARENA_DATA;
	*out = &st->t;
	return 0;

out_close:
	close(st->arena_fd);
out_free:
	free(st);
	return ret;
}

static void shm_transport_fini(struct fm_transport *t)
{
	struct shm_transport *st = to_st(t);

	munmap(st->arena, st->arena_size);
	close(st->arena_fd);
	free(st);
}

/* -------------------------------------------------------------- regions */

static int shm_region_new(struct fm_transport *t, size_t len, unsigned access,
			  struct fm_region **out)
{
	struct shm_transport *st = to_st(t);
	struct shm_arena_hdr *h = (struct shm_arena_hdr *)st->arena;
	struct fm_region *r;
	uint64_t alen = (len + SHM_PAGE - 1) & ~(SHM_PAGE - 1);
	int i, idx = -1;

	r = calloc(1, sizeof(*r));
	if (r == NULL)
		return fm_err(-ENOMEM, "region");
	r->t = t;
	r->len = len;
	r->access = access;
	if (access == FM_ACCESS_LOCAL) {
		/* nobody else touches it: private memory */
		if (posix_memalign(&r->ptr, SHM_PAGE, alen)) {
			free(r);
			return fm_err(-ENOMEM, "local region of %zu bytes", len);
		}
		memset(r->ptr, 0, alen);
		r->addr = (uint64_t)(uintptr_t)r->ptr;
		r->key = fm__random_key();
		r->owned = true;
		*out = r;
		return 0;
	}
	for (i = 0; i < SHM_MAX_REGIONS; i++) {
		if (atomic_load_explicit(&h->ent[i].key, memory_order_relaxed) == 0 &&
		    h->ent[i].len == 0) {
			idx = i;
			break;
		}
	}
	if (idx < 0) {
		free(r);
		return fm_err(-ENOMEM, "shm: all %d region slots used", SHM_MAX_REGIONS);
	}
	if (alen > st->arena_size - h->bump) {
		free(r);
		return fm_err(-ENOMEM, "shm arena full: %zu bytes asked, %llu left (raise "
				       "shm_arena_size)",
			      len, (unsigned long long)(st->arena_size - h->bump));
	}
	r->addr = h->bump;
	r->ptr = st->arena + h->bump;
	h->bump += alen;
	r->key = fm__random_key();
	h->ent[idx].access = access;
	h->ent[idx].off = r->addr;
	h->ent[idx].len = len;
	/* publish: a peer that sees the key sees off/len/access */
	atomic_store_explicit(&h->ent[idx].key, r->key, memory_order_release);
	*out = r;
	return 0;
}

static int shm_region_reg(struct fm_transport *t, void *addr, size_t len, unsigned access,
			  struct fm_region **out)
{
	struct fm_region *r;

	if (access != FM_ACCESS_LOCAL)
		return fm_err(-EOPNOTSUPP,
			      "shm: memory outside the arena cannot be shared; use fm_region_new");
	r = calloc(1, sizeof(*r));
	if (r == NULL)
		return fm_err(-ENOMEM, "region");
	r->t = t;
	r->ptr = addr;
	r->len = len;
	r->access = access;
	r->addr = (uint64_t)(uintptr_t)addr;
	r->key = fm__random_key();
	*out = r;
	return 0;
}

static void shm_region_delete(struct fm_region *r)
{
	struct shm_transport *st = to_st(r->t);
	struct shm_arena_hdr *h = (struct shm_arena_hdr *)st->arena;
	int i;

	if (r->access == FM_ACCESS_LOCAL) {
		if (r->owned)
			free(r->ptr);
		free(r);
		return;
	}
	for (i = 0; i < SHM_MAX_REGIONS; i++) {
		if (atomic_load_explicit(&h->ent[i].key, memory_order_relaxed) == r->key &&
		    h->ent[i].off == r->addr) {
			atomic_store_explicit(&h->ent[i].key, 0, memory_order_release);
			/* the memory is not reused (bump allocator); give the
			 * pages back.  The table slot stays burnt (len != 0) so
			 * a stale descriptor can never match a new region. */
			(void)fallocate(st->arena_fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
					(off_t)r->addr,
					(off_t)((r->len + SHM_PAGE - 1) & ~(SHM_PAGE - 1)));
			break;
		}
	}
	free(r);
}

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

static int shm_listen(struct fm_transport *t, const char *addr, struct fm_listener **out)
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

static void shm_listener_delete(struct fm_listener *l)
{
	struct shm_listener *sl = container_of(l, struct shm_listener, l);

	close(sl->sock);
	free(sl);
}

static int shm_listener_fd(const struct fm_listener *l)
{
	return container_of(l, struct shm_listener, l)->sock;
}

/* ------------------------------------------------------------ endpoints */

/* bytes of one ring, rounded to 64 so the next ring's header stays
 * cache-line aligned (its atomics are _Alignas(64)) */
static size_t ring_bytes(uint32_t nslots, uint32_t stride)
{
	return (SHM_RING_HDR + (size_t)nslots * stride + 63) & ~(size_t)63;
}

static uint32_t ring_stride(uint32_t msg_size)
{
	return (4u + FM_TMSG_HDR_SIZE + msg_size + 7u) & ~7u;
}

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
	    ring_bytes(c2o->nslots, c2o->stride) + SHM_RING_HDR > se->ring_map_len) {
		ret = fm_err(-EPROTO, "ring memfd of %zu bytes too small", se->ring_map_len);
		goto out;
	}
	o2c = (struct shm_ring *)(se->ring_map + ring_bytes(c2o->nslots, c2o->stride));
	if (ring_bytes(c2o->nslots, c2o->stride) + ring_bytes(o2c->nslots, o2c->stride) >
	    se->ring_map_len) {
		ret = fm_err(-EPROTO, "ring memfd of %zu bytes too small", se->ring_map_len);
		goto out;
	}
	se->rx = owner_side ? c2o : o2c;
	se->tx = owner_side ? o2c : c2o;
	if (se->rx->nslots != se->ep.rx_data + se->ep.rx_ctrl ||
	    se->rx->stride < ring_stride(se->ep.msg_size)) {
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

static void init_ring(struct shm_ring *r, uint32_t nslots, uint32_t stride)
{
	atomic_init(&r->head, 0);
	atomic_init(&r->tail, 0);
	atomic_init(&r->armed, 0);
	r->nslots = nslots;
	r->stride = stride;
}

/* ------------------------------------------------------------ fencing */

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
 * shm_peer_identify -- take a pidfd of the process that connected `sock`,
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
static int shm_peer_identify(struct shm_ep *se)
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

static void shm_check_peer(struct shm_ep *se);

/* fm_ep_fence for shm: a peer that said BYE unmapped us already (our
 * library does so before sending it: trust model in transport.h);
 * otherwise SIGKILL through the pidfd and wait for the exit. */
static int shm_fence(struct fm_ep *ep, int timeout_ms)
{
	struct shm_ep *se = to_sep(ep);
	uint64_t deadline = fm__deadline(timeout_ms);
	bool was_dead;
	int r;

	if (!se->accepted)
		return fm_err(-EOPNOTSUPP, "shm: only the accepting side (the owner) can fence "
					   "its peer");
	/* a conforming peer unmaps us before its BYE (shm_ep_delete) */
	if (ep->state == FM_EP_UP)
		shm_check_peer(se);
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

static int shm_accept(struct fm_listener *l, int timeout_ms, struct fm_ep **out)
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
	ret = shm_peer_identify(se);
	if (ret)
		goto out_fds;

	/* rings: client->owner sized by us, owner->client by the client */
	c2o_len = ring_bytes(l->t->cfg.credits + FM_CTRL_CREDITS, ring_stride(l->t->cfg.msg_size));
	o2c_len = ring_bytes((uint32_t)peer.credits + peer.ctrl_credits, ring_stride(peer.msg_size));
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
	init_ring(rings, l->t->cfg.credits + FM_CTRL_CREDITS, ring_stride(l->t->cfg.msg_size));
	init_ring((struct shm_ring *)((uint8_t *)rings + c2o_len),
		  (uint32_t)peer.credits + peer.ctrl_credits, ring_stride(peer.msg_size));
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

static int shm_connect(struct fm_transport *t, const char *addr, const struct fm_conn_priv *priv,
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

static int shm_loopback(struct fm_listener *l, struct fm_ep **out)
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

static void shm_ep_delete(struct fm_ep *ep)
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

/* ------------------------------------------------------------ one-sided */

/*
 * shm_lookup -- the peer's table entry for `d`, checked: key, access, bounds.
 * A failure closes the endpoint, as a remote access error does on verbs.
 * Cost: no syscall, no lock; one acquire load when the cached index hits.
 */
static int shm_lookup(struct shm_ep *se, const struct fm_region_desc *d, unsigned need,
		      uint64_t off, uint64_t len, uint8_t **p)
{
	struct shm_arena_hdr *h = (struct shm_arena_hdr *)se->peer_arena;
	struct shm_region_ent *e = NULL;
	uint32_t key;
	int i;

	if (se->cache_idx >= 0 && h->ent[se->cache_idx].off == d->addr)
		e = &h->ent[se->cache_idx];
	for (i = 0; e == NULL && i < SHM_MAX_REGIONS; i++) {
		if (h->ent[i].off == d->addr && h->ent[i].len != 0) {
			e = &h->ent[i];
			se->cache_idx = i;
		}
	}
	if (e == NULL)
		return fm__ep_fail(&se->ep, -EACCES,
				   "remote access error: no region at 0x%llx (key 0x%x)",
				   (unsigned long long)d->addr, d->key);
	key = atomic_load_explicit(&e->key, memory_order_acquire);
	if (key == 0 || key != d->key)
		return fm__ep_fail(&se->ep, -EACCES,
				   "remote access error: bad key 0x%x for region at 0x%llx",
				   d->key, (unsigned long long)d->addr);
	if ((e->access & need) != need)
		return fm__ep_fail(&se->ep, -EACCES,
				   "remote access error: region 0x%x does not grant access 0x%x",
				   d->key, need);
	if (off > e->len || len > e->len - off || e->off + e->len > se->peer_arena_size)
		return fm__ep_fail(&se->ep, -EACCES,
				   "remote access error: [%llu, +%llu) outside region 0x%x",
				   (unsigned long long)off, (unsigned long long)len, d->key);
	*p = se->peer_arena + e->off + off;
	return 0;
}

static int shm_read(struct fm_ep *ep, void *dst, struct fm_region *dst_r,
		    const struct fm_region_desc *src, uint64_t src_off, size_t len)
{
	struct shm_ep *se = to_sep(ep);
	uint8_t *s, *d = dst;
	size_t head;
	int ret;

	ret = shm_lookup(se, src, FM_ACCESS_REMOTE_READ, src_off, len, &s);
	if (ret)
		return ret;
	/* unaligned head and tail byte-wise, aligned words with acquire */
	head = (size_t)((8 - ((uintptr_t)s & 7)) & 7);
	if (head > len)
		head = len;
	memcpy(d, s, head);
	d += head;
	s += head;
	len -= head;
	while (len >= 8) {
		uint64_t w = atomic_load_explicit((_Atomic uint64_t *)(void *)s,
						  memory_order_acquire);
		memcpy(d, &w, 8);
		d += 8;
		s += 8;
		len -= 8;
	}
	memcpy(d, s, len);
	return 0;
}

static int shm_atomic(struct fm_ep *ep, bool cas, const struct fm_region_desc *rd, uint64_t off,
		      uint64_t a, uint64_t b, uint64_t *old)
{
	struct shm_ep *se = to_sep(ep);
	_Atomic uint64_t *w;
	uint8_t *p;
	int ret;

	ret = shm_lookup(se, rd, FM_ACCESS_REMOTE_ATOMIC, off, 8, &p);
	if (ret)
		return ret;
	w = (_Atomic uint64_t *)(void *)p;
	if (cas) {
		uint64_t expect = a;

		atomic_compare_exchange_strong_explicit(w, &expect, b, memory_order_acq_rel,
							memory_order_acquire);
		*old = expect;
	} else {
		*old = atomic_fetch_add_explicit(w, a, memory_order_acq_rel);
	}
	return 0;
}

/* ------------------------------------------------------------- messages */

static int shm_msg_post(struct fm_ep *ep, const void *buf, size_t len)
{
	struct shm_ep *se = to_sep(ep);
	struct shm_ring *r = se->tx;
	uint32_t head = atomic_load_explicit(&r->head, memory_order_relaxed);
	uint32_t tail = atomic_load_explicit(&r->tail, memory_order_acquire);
	uint8_t *slot;
	uint32_t l32 = (uint32_t)len;
	static const uint64_t one = 1;

	if (head - tail >= r->nslots)
		return fm__ep_fail(ep, -EPROTO, "send ring full: peer overran credits");
	if (4 + len > r->stride)
		return fm_err(-EMSGSIZE, "message of %zu bytes for a %u-byte ring slot", len,
			      r->stride);
	slot = (uint8_t *)r + SHM_RING_HDR + (size_t)(head % r->nslots) * r->stride;
	memcpy(slot, &l32, 4);
	memcpy(slot + 4, buf, len);
	atomic_store_explicit(&r->head, head + 1, memory_order_release);
	/* pairs with the consumer's fence in shm_progress: either it sees
	 * the new head, or we see armed and ring the doorbell */
	atomic_thread_fence(memory_order_seq_cst);
	if (atomic_load_explicit(&r->armed, memory_order_relaxed))
		(void)!write(se->efd_tx, &one, sizeof(one));
	return 0;
}

static void shm_msg_repost(struct fm_ep *ep, uint32_t slot)
{
	struct shm_ep *se = to_sep(ep);

	se->free_slots[se->nfree++] = slot;
}

/* move every published message out of the receive ring; returns count */
static int shm_drain(struct shm_ep *se)
{
	struct shm_ring *r = se->rx;
	uint32_t tail = atomic_load_explicit(&r->tail, memory_order_relaxed);
	uint32_t head = atomic_load_explicit(&r->head, memory_order_acquire);
	int n = 0;

	while (tail != head && se->ep.state == FM_EP_UP) {
		uint8_t *slot = (uint8_t *)r + SHM_RING_HDR + (size_t)(tail % r->nslots) * r->stride;
		uint32_t len, k;

		memcpy(&len, slot, 4);
		if (len > se->rx_stride || 4 + len > r->stride) {
			fm__ep_fail(&se->ep, -EPROTO, "ring slot claims %u bytes", len);
			break;
		}
		if (se->nfree == 0) {
			fm__ep_fail(&se->ep, -EPROTO, "peer overran its credits");
			break;
		}
		k = se->free_slots[--se->nfree];
		memcpy(se->rx_bufs + (size_t)k * se->rx_stride, slot + 4, len);
		tail++;
		atomic_store_explicit(&r->tail, tail, memory_order_release);
		fm__ep_rx(&se->ep, k, se->rx_bufs + (size_t)k * se->rx_stride, len);
		n++;
	}
	return n;
}

/* look at the socket: BYE or EOF ends the endpoint */
static void shm_check_peer(struct shm_ep *se)
{
	char c;
	ssize_t n = recv(se->sock, &c, 1, MSG_DONTWAIT);

	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
		return;
	/* whatever the peer published before it left is still delivered */
	shm_drain(se);
	if (n == 1 && c == SHM_BYE) {
		se->peer_bye = true;
		fm__ep_fail(&se->ep, -ECONNRESET, "peer closed");
	}
	else if (n == 0)
		fm__ep_fail(&se->ep, -ECONNRESET, "peer died (connection socket EOF)");
	else
		fm__ep_fail(&se->ep, -ECONNRESET, "peer connection socket error: %s",
			    n < 0 ? strerror(errno) : "unexpected byte");
}

static int shm_progress(struct fm_ep *ep, int timeout_ms)
{
	struct shm_ep *se = to_sep(ep);
	struct epoll_event evs[2];
	uint64_t cnt;
	int n;

	if (se->sock < 0) /* loopback: nothing arrives */
		return 0;
	if (atomic_load_explicit(&se->rx->armed, memory_order_relaxed))
		(void)!read(se->efd_rx, &cnt, sizeof(cnt)); /* reset the doorbell */
	n = shm_drain(se);
	if (ep->state == FM_EP_UP)
		shm_check_peer(se);
	if (n || timeout_ms == 0 || ep->state != FM_EP_UP)
		return 0;
	if (!atomic_load_explicit(&se->rx->armed, memory_order_relaxed))
		return 0; /* busy mode never sleeps */
	atomic_thread_fence(memory_order_seq_cst);
	if (atomic_load_explicit(&se->rx->head, memory_order_acquire) !=
	    atomic_load_explicit(&se->rx->tail, memory_order_relaxed))
		return shm_progress(ep, 0);
	if (epoll_wait(ep->event_fd, evs, 2, timeout_ms) < 0 && errno != EINTR)
		return fm_err(-errno, "epoll_wait: %s", strerror(errno));
	return shm_progress(ep, 0);
}

const struct fm_provider_ops fm__shm_ops = {
	.name = "shm",
	.transport_init = shm_transport_init,
	.transport_fini = shm_transport_fini,
	.region_new = shm_region_new,
	.region_reg = shm_region_reg,
	.region_delete = shm_region_delete,
	.listen = shm_listen,
	.listener_delete = shm_listener_delete,
	.listener_fd = shm_listener_fd,
	.accept = shm_accept,
	.loopback = shm_loopback,
	.connect = shm_connect,
	.ep_delete = shm_ep_delete,
	.fence = shm_fence,
	.read = shm_read,
	.atomic = shm_atomic,
	.msg_post = shm_msg_post,
	.msg_repost = shm_msg_repost,
	.progress = shm_progress,
};
