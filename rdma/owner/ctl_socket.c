/* ctl_socket.c -- the control socket itself: bind (replacing only a stale
 * socket, never another file), accept into a fixed set of connection
 * slots (evicting the longest idle one when full), read lines, close idle
 * connections.  What a line means is control.c's (od_ctl_process).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "flashmeta/ctl.h"
#include "flashmeta/error.h"
#include "ownerd_priv.h"

/* the client side (ctl.h) and we agree on the longest line */
_Static_assert(OD_CTL_LINE - 1 == FM_CTL_LINE_MAX, "control line length");

void od_ctl_close(struct fm_ownerd *d, struct od_ctl *c)
{
	for (unsigned i = 0; i < OD_MAX_MAPS; i++)
		if (d->maps[i].pend_fd == c->fd)
			d->maps[i].pend_fd = -1; /* the operation still completes */
	od_groups_fd_closed(d, c->fd);
	close(c->fd);
	c->fd = -1;
	c->used = 0;
	c->busy = false;
	c->json = false;
	free(c->jtext);
	c->jtext = NULL;
}

struct od_ctl *od_ctl_by_fd(struct fm_ownerd *d, int fd)
{
	for (unsigned i = 0; fd >= 0 && i < OD_CTL_MAX; i++)
		if (d->ctl[i].fd == fd)
			return &d->ctl[i];
	return NULL;
}

void od_ctl_readable(struct fm_ownerd *d, struct od_ctl *c)
{
	ssize_t n;

	if (c->used == sizeof(c->line) - 1) {
		/* only while busy (else the line was refused below): no room
		 * to read, and the loop polls us again at once -- refuse */
		od_ctl_printf(c->fd, "error EBUSY: over %zu bytes sent while a command is in "
			   "progress\n", sizeof(c->line) - 1);
		od_ctl_close(d, c);
		return;
	}
	n = recv(c->fd, c->line + c->used, sizeof(c->line) - 1 - c->used, MSG_DONTWAIT);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		od_ctl_close(d, c);
		return;
	}
	c->used += (size_t)n;
	c->line[c->used] = '\0';
	c->last_ms = od_now_ms();
	od_ctl_process(d, c);
	if (c->fd >= 0 && !c->busy && c->used == sizeof(c->line) - 1) {
		od_ctl_printf(c->fd, "error EINVAL: line too long (at most %d bytes)\n",
			   FM_CTL_LINE_MAX);
		od_ctl_close(d, c);
	}
}

/*
 * Is the socket at `path` served?  A connect answers: refused means nobody
 * listens (a stale socket left by an owner that is gone); accepted or a
 * full backlog means a live owner.  0 stale, or -EADDRINUSE / -errno.
 */
static int ctl_probe(const char *path, const struct sockaddr_un *sun)
{
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	int rc, e;

	if (fd < 0)
		return fm_err(-errno, "control socket: %s", strerror(errno));
	rc = connect(fd, (const struct sockaddr *)sun, sizeof(*sun));
	e = errno;
	close(fd);
	if (rc == 0 || e == EAGAIN || e == EINPROGRESS)
		return fm_err(-EADDRINUSE, "control socket %s: in use by a running owner "
			      "(stop it, or choose another --control path)", path);
	if (e == ECONNREFUSED)
		return 0;
	if (e == EPROTOTYPE)
		return fm_err(-EEXIST, "control socket %s: a socket of another kind is there; "
			      "not replaced", path);
	return fm_err(-e, "control socket %s: cannot tell whether it is in use: %s", path,
		      strerror(e));
}

/*
 * What may be at `path` before we bind (an operator may have pointed
 * --control at anything, even the pool):
 *   nothing                           bind
 *   a socket nobody listens on        stale: unlink it, bind
 *   a socket a live process serves    -EADDRINUSE, untouched
 *   anything else (file, pool, dir,   -EEXIST, untouched
 *     FIFO, device, symbolic link)
 * A race with another owner binding between our unlink and bind ends in
 * bind's EADDRINUSE, never in two owners on one path.
 */
static int ctl_bind(const char *path)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	struct stat st;
	int fd, rc;

	if (!*path)
		return fm_err(-EINVAL, "control socket: empty path");
	if (strlen(path) >= sizeof(sun.sun_path))
		return fm_err(-ENAMETOOLONG, "control socket %s: path of %zu bytes, at most %zu",
			      path, strlen(path), sizeof(sun.sun_path) - 1);
	strcpy(sun.sun_path, path);
	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode))
			return fm_err(-EEXIST, "control socket %s: %s is there; not replaced "
				      "(remove it, or choose another --control path)", path,
				      S_ISREG(st.st_mode) ? "a regular file" :
				      S_ISDIR(st.st_mode) ? "a directory" :
				      S_ISFIFO(st.st_mode) ? "a FIFO" :
				      S_ISLNK(st.st_mode) ? "a symbolic link" : "a device");
		rc = ctl_probe(path, &sun);
		if (rc)
			return rc;
		od_log(FM_LOGLVL_WARN, "control socket %s: stale (nobody listens), replaced",
		       path);
		if (unlink(path) && errno != ENOENT)
			return fm_err(-errno, "control socket %s: stale, cannot remove: %s", path,
				      strerror(errno));
	} else if (errno != ENOENT) {
		return fm_err(-errno, "control socket %s: %s", path, strerror(errno));
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return fm_err(-errno, "control socket: %s", strerror(errno));
	if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) || listen(fd, 8)) {
		int e = errno;

		close(fd);
		return fm_err(-e, "control socket %s: %s", path, strerror(e));
	}
	return fd;
}

int od_ctl_listen(struct fm_ownerd *d)
{
	const char *path = d->cfg.control_path;
	struct stat st;
	int fd;

	if (!path)
		return 0;
	fd = ctl_bind(path);
	if (fd < 0)
		return fd;
	/* what we will remove at exit, and only that */
	if (lstat(path, &st) || !S_ISSOCK(st.st_mode)) {
		close(fd);
		return fm_err(-ENOENT, "control socket %s: gone right after bind", path);
	}
	d->ctl_fd = fd;
	d->ctl_dev = st.st_dev;
	d->ctl_ino = st.st_ino;
	return 0;
}

/*
 * The socket file goes only if it is still ours: in the meantime an
 * operator may have removed it and put a file there, or another owner its
 * own socket.  (lstat then unlink is not atomic: a swap between the two
 * is the one case this cannot see.)
 */
void od_ctl_unlisten(struct fm_ownerd *d)
{
	const char *path = d->cfg.control_path;
	struct stat st;

	for (unsigned i = 0; i < OD_CTL_MAX; i++)
		if (d->ctl[i].fd >= 0)
			od_ctl_close(d, &d->ctl[i]);
	if (d->ctl_fd < 0)
		return;
	close(d->ctl_fd);
	d->ctl_fd = -1;
	if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode) && st.st_dev == d->ctl_dev &&
	    st.st_ino == d->ctl_ino)
		(void)unlink(path);
	else
		od_log(FM_LOGLVL_WARN, "control socket %s: no longer ours, left in place", path);
}

/* close `c` with a last line saying why (it was idle) */
static void ctl_evict(struct fm_ownerd *d, struct od_ctl *c, uint64_t now, const char *why)
{
	od_ctl_printf(c->fd, "error ETIMEDOUT: closed, idle for %" PRIu64 " ms%s\n",
		   now - c->last_ms, why);
	od_log(FM_LOGLVL_DEBUG, "control: closed a connection idle for %" PRIu64 " ms%s",
	       now - c->last_ms, why);
	od_ctl_close(d, c);
}

/*
 * A new connection takes a free slot; with none, the slot of the
 * longest-idle connection that waits for no deferred answer (idle ones
 * must not lock out `status`); with none of those either (16 deferred
 * commands), the newcomer is refused.
 */
void od_ctl_accept(struct fm_ownerd *d)
{
	int fd = accept4(d->ctl_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
	uint64_t now = od_now_ms();
	struct od_ctl *slot = NULL, *oldest = NULL;

	if (fd < 0)
		return;
	for (unsigned i = 0; i < OD_CTL_MAX && !slot; i++) {
		struct od_ctl *c = &d->ctl[i];

		if (c->fd < 0)
			slot = c;
		else if (!c->busy && (!oldest || c->last_ms < oldest->last_ms))
			oldest = c;
	}
	if (!slot && oldest) {
		ctl_evict(d, oldest, now, " and every control slot taken");
		slot = oldest;
	}
	if (!slot) {
		od_ctl_printf(fd, "error EBUSY: all %d control connections wait for deferred "
			   "answers\n", OD_CTL_MAX);
		close(fd);
		return;
	}
	slot->fd = fd;
	slot->used = 0;
	slot->busy = false;
	slot->last_ms = now;
}

void od_ctl_tick(struct fm_ownerd *d, uint64_t now)
{
	for (unsigned i = 0; i < OD_CTL_MAX; i++) {
		struct od_ctl *c = &d->ctl[i];

		if (c->fd >= 0 && !c->busy && now - c->last_ms >= d->cfg.control_idle_ms)
			ctl_evict(d, c, now, "");
	}
}
