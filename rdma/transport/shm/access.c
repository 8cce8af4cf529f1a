/* access.c -- what an shm peer can reach of the owner's memory: the grant
 * (the owner sends its arenas once the protocol authenticated the peer),
 * its mapping on the client, and the region-table lookup every one-sided
 * operation is checked against (the operations themselves: lane.c).
 *
 * Before the grant a client has no fd and no mapping of any region: every
 * READ/CAS/FAA it tries fails as a remote access error (-EACCES, endpoint
 * CLOSED), whatever descriptor it forges.
 *
 * Grant order (transport.h, fm_ep_grant): the owner sends the grant on the
 * connection socket BEFORE it publishes any later ring message; the client's
 * progress loads its receive ring's head, THEN reads the socket (mapping a
 * grant it finds), THEN hands out ring messages up to that head.  A message
 * published after the grant was sent has a head the client can only see
 * after the grant is in its socket queue -- so it maps the grant before it
 * hands out that message (the WELCOME naming the regions).
 *
 * Client mapping: one contiguous range, READ arena PROT_READ (sealed: it
 * could not map it writable anyway), ATOMIC arena PROT_READ|PROT_WRITE, the
 * whole range MADV_DONTFORK (a child forked later inherits nothing); the fds
 * are closed at once.  The owning thread's progress maps it while lanes of
 * the endpoint may be posting on other threads: the geometry is written
 * first and the mapping's address published last, with release (shm_priv.h,
 * struct shm_ep).  fm__shm_unmap_peer drops it before the BYE, after the
 * lanes were quiesced.  The loopback endpoint uses the owner's own mapping.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "flashmeta/le.h"
#include "shm_priv.h"

#ifndef F_SEAL_FUTURE_WRITE
#define F_SEAL_FUTURE_WRITE 0x0010
#endif

/* ----------------------------------------------------------------- grant */

static void grant_encode(const struct shm_grant *g, uint8_t out[SHM_GRANT_SIZE])
{
	memset(out, 0, SHM_GRANT_SIZE);
	fm_put_le32(out + 0, SHM_GRANT_MAGIC);
	out[4] = SHM_GRANT_VERSION;
	fm_put_le64(out + 8, g->read_size);
	fm_put_le64(out + 16, g->atomic_size);
	fm_put_le32(out + 24, g->nent);
}

int fm__shm_grant_decode(const uint8_t *in, size_t n, struct shm_grant *g)
{
	if (n != SHM_GRANT_SIZE)
		return fm_err(-EPROTO, "grant of %zu bytes", n);
	if (fm_get_le32(in) != SHM_GRANT_MAGIC)
		return fm_err(-EPROTO, "grant magic 0x%08x", fm_get_le32(in));
	if (in[4] != SHM_GRANT_VERSION)
		return fm_err(-EPROTONOSUPPORT, "grant version %u", in[4]);
	if (in[5] || in[6] || in[7] || fm_get_le32(in + 28))
		return fm_err(-EPROTO, "grant reserved bytes not zero");
	g->read_size = fm_get_le64(in + 8);
	g->atomic_size = fm_get_le64(in + 16);
	g->nent = fm_get_le32(in + 24);
	if (g->nent == 0 || g->read_size % SHM_PAGE || g->atomic_size % SHM_PAGE ||
	    g->atomic_size == 0 || g->read_size < shm_table_bytes(g->nent) ||
	    g->read_size > UINT64_MAX / 2 || g->atomic_size > UINT64_MAX / 2)
		return fm_err(-EPROTO, "grant of %llu + %llu bytes, %u entries",
			      (unsigned long long)g->read_size, (unsigned long long)g->atomic_size,
			      g->nent);
	return 0;
}

int fm__shm_grant(struct fm_ep *ep)
{
	struct shm_ep *se = to_sep(ep);
	struct shm_transport *st = to_st(ep->t);
	uint8_t buf[SHM_GRANT_SIZE];
	char cbuf[CMSG_SPACE(2 * sizeof(int))];
	struct iovec iov = {.iov_base = buf, .iov_len = sizeof(buf)};
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
			    .msg_controllen = sizeof(cbuf)};
	struct cmsghdr *c;
	struct shm_grant g;
	int fds[2], ret;

	pthread_mutex_lock(&ep->t->lock);
	ret = fm__shm_arenas_open(st);
	pthread_mutex_unlock(&ep->t->lock);
	if (ret)
		return fm__ep_fail(ep, ret, "grant: %s", fm_errormsg());
	g.read_size = st->rd.size;
	g.atomic_size = st->at.size;
	g.nent = st->nent;
	grant_encode(&g, buf);
	fds[0] = st->rd.fd;
	fds[1] = st->at.fd;
	memset(cbuf, 0, sizeof(cbuf));
	c = CMSG_FIRSTHDR(&mh);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(fds));
	memcpy(CMSG_DATA(c), fds, sizeof(fds));
	/* never blocks: a peer that lets its socket fill up loses the grant */
	if (sendmsg(se->sock, &mh, MSG_NOSIGNAL | MSG_DONTWAIT) != (ssize_t)sizeof(buf)) {
		int e = errno;

		if (e == EAGAIN || e == EWOULDBLOCK)
			return fm__ep_fail(ep, -EAGAIN, "grant: the peer's connection socket is "
						       "full (it does not read it)");
		return fm__ep_fail(ep, e == EPIPE ? -ECONNRESET : -e, "grant: %s", strerror(e));
	}
	return 0;
}

int fm__shm_map_grant(struct shm_ep *se, const struct shm_grant *g, int read_fd,
		      int atomic_fd)
{
	const struct shm_table_hdr *tbl;
	struct stat sb;
	uint8_t *p = MAP_FAILED;
	uint64_t len = g->read_size + g->atomic_size;
	int seals, ret;

	if (se->accepted || atomic_load_explicit(&se->peer_map, memory_order_relaxed)) {
		ret = fm__ep_fail(&se->ep, -EPROTO, "unexpected grant from peer");
		goto out;
	}
	/* the owner sealed the READ arena: we could never write it */
	seals = fcntl(read_fd, F_GET_SEALS);
	if (seals < 0 || !(seals & F_SEAL_FUTURE_WRITE) || !(seals & F_SEAL_SHRINK)) {
		ret = fm__ep_fail(&se->ep, -EPROTO, "grant: the READ arena is not sealed");
		goto out;
	}
	if (fstat(read_fd, &sb) || (uint64_t)sb.st_size < g->read_size ||
	    fstat(atomic_fd, &sb) || (uint64_t)sb.st_size < g->atomic_size) {
		ret = fm__ep_fail(&se->ep, -EPROTO, "grant: arenas smaller than announced");
		goto out;
	}
	p = mmap(NULL, len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (p == MAP_FAILED ||
	    mmap(p, g->read_size, PROT_READ, MAP_SHARED | MAP_FIXED | MAP_NORESERVE, read_fd,
		 0) == MAP_FAILED ||
	    mmap(p + g->read_size, g->atomic_size, PROT_READ | PROT_WRITE,
		 MAP_SHARED | MAP_FIXED | MAP_NORESERVE, atomic_fd, 0) == MAP_FAILED) {
		ret = fm__ep_fail(&se->ep, -ENOMEM, "grant: cannot map %llu bytes of arenas: %s",
				  (unsigned long long)len, strerror(errno));
		goto out;
	}
	/* a fence kills only the process that connected: a child forked
	 * later must not inherit the owner's memory */
	if (madvise(p, len, MADV_DONTFORK)) {
		ret = fm__ep_fail(&se->ep, -errno, "madvise(arenas, DONTFORK): %s",
				  strerror(errno));
		goto out;
	}
	tbl = (const struct shm_table_hdr *)(const void *)p;
	if (tbl->magic != SHM_TABLE_MAGIC || tbl->nent != g->nent) {
		ret = fm__ep_fail(&se->ep, -EPROTO, "grant: no region table in the READ arena");
		goto out;
	}
	se->peer_map_len = len;
	se->peer_read_size = g->read_size;
	se->peer_nent = g->nent;
	se->peer_mapped = true;
	/* publish: a lane that loads the address sees the geometry above */
	atomic_store_explicit(&se->peer_map, p, memory_order_release);
	p = MAP_FAILED;
	ret = 0;
out:
	if (p != MAP_FAILED)
		munmap(p, len);
	close(read_fd);
	close(atomic_fd);
	return ret;
}

void fm__shm_unmap_peer(struct shm_ep *se)
{
	uint8_t *map = atomic_load_explicit(&se->peer_map, memory_order_relaxed);

	if (se->peer_mapped && map)
		munmap(map, se->peer_map_len);
	atomic_store_explicit(&se->peer_map, NULL, memory_order_relaxed);
	se->peer_mapped = false;
}

/* ------------------------------------------------------------- lookup */

/*
 * fm__shm_lookup -- the peer's table entry for `d`, checked: key, access,
 * bounds.  A failure closes the endpoint, as a remote access error does on
 * verbs.  The entry is read as a seqlock (key before and after).  Cost: no
 * syscall, no lock; a handful of loads when the caller's cached index hits,
 * a scan of the table otherwise.  Called by lanes on any thread: `map` is
 * the peer_map they loaded (acquire), `cache` their own.
 */
int fm__shm_lookup(struct shm_ep *se, uint8_t *map, int *cache, const struct fm_region_desc *d,
		   unsigned need, uint64_t off, uint64_t len, uint8_t **p)
{
	const struct shm_table_hdr *tbl = (const void *)map;
	const struct shm_region_ent *e = NULL;
	uint64_t eoff, elen;
	uint32_t k1, k2, acc;

	if (map == NULL)
		return fm__ep_fail(&se->ep, -EACCES,
				   "remote access error: no access granted (key 0x%x)", d->key);
	if (*cache >= 0 &&
	    atomic_load_explicit(&tbl->ent[*cache].off, memory_order_relaxed) == d->addr)
		e = &tbl->ent[*cache];
	for (uint32_t i = 0; e == NULL && i < se->peer_nent; i++) {
		if (atomic_load_explicit(&tbl->ent[i].off, memory_order_relaxed) == d->addr &&
		    atomic_load_explicit(&tbl->ent[i].key, memory_order_relaxed) == d->key) {
			e = &tbl->ent[i];
			*cache = (int)i;
		}
	}
	if (e == NULL)
		return fm__ep_fail(&se->ep, -EACCES,
				   "remote access error: no region at 0x%llx (key 0x%x)",
				   (unsigned long long)d->addr, d->key);
	k1 = atomic_load_explicit(&e->key, memory_order_acquire);
	acc = atomic_load_explicit(&e->access, memory_order_relaxed);
	eoff = atomic_load_explicit(&e->off, memory_order_relaxed);
	elen = atomic_load_explicit(&e->len, memory_order_relaxed);
	atomic_thread_fence(memory_order_acquire);
	k2 = atomic_load_explicit(&e->key, memory_order_relaxed);
	if (k1 == 0 || k1 != d->key || k2 != k1 || eoff != d->addr)
		return fm__ep_fail(&se->ep, -EACCES,
				   "remote access error: bad key 0x%x for region at 0x%llx",
				   d->key, (unsigned long long)d->addr);
	if ((acc & need) != need)
		return fm__ep_fail(&se->ep, -EACCES,
				   "remote access error: region 0x%x does not grant access 0x%x",
				   d->key, need);
	if (off > elen || len > elen - off || eoff > se->peer_map_len ||
	    elen > se->peer_map_len - eoff ||
	    ((need & FM_ACCESS_REMOTE_ATOMIC) && eoff < se->peer_read_size))
		return fm__ep_fail(&se->ep, -EACCES,
				   "remote access error: [%llu, +%llu) outside region 0x%x",
				   (unsigned long long)off, (unsigned long long)len, d->key);
	*p = map + eoff + off;
	return 0;
}
