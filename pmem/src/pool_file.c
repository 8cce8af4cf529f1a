/* pool_file.c -- open a pool file without blocking; lock it for one writer. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* F_OFD_SETLK, F_OFD_GETLK */
#endif
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "flashmeta/error.h"
#include "pool_file.h"

/* A character device is device-DAX when its sysfs subsystem is "dax"
 * (/sys/class/dax or /sys/bus/dax), which is how libpmem tells too. */
static int chr_is_dax(dev_t rdev)
{
	char link[64], real[PATH_MAX];
	const char *base;

	snprintf(link, sizeof(link), "/sys/dev/char/%u:%u/subsystem",
		 major(rdev), minor(rdev));
	if (!realpath(link, real))
		return 0;
	base = strrchr(real, '/');
	return base && !strcmp(base + 1, "dax");
}

static const char *type_name(mode_t m)
{
	if (S_ISFIFO(m)) return "a FIFO";
	if (S_ISSOCK(m)) return "a socket";
	if (S_ISBLK(m)) return "a block device";
	if (S_ISCHR(m)) return "a character device that is not device-DAX";
	if (S_ISLNK(m)) return "a symbolic link";
	return "not a regular file";
}

/* 0 if `st` may be a pool, else the errno with a message. */
static int check_type(const char *path, const struct stat *st, int *is_devdax)
{
	*is_devdax = 0;
	if (S_ISREG(st->st_mode))
		return 0;
	if (S_ISDIR(st->st_mode))
		return fm_err(-EISDIR, "%s is a directory, not a pool", path);
	if (S_ISCHR(st->st_mode) && chr_is_dax(st->st_rdev)) {
		*is_devdax = 1;
		return 0;
	}
	return fm_err(-ENODEV, "%s is %s: a pool is a regular file or a"
		      " device-DAX device", path, type_name(st->st_mode));
}

int fm_pool_file_open(struct fm_pool_file *pf, const char *path, int flags)
{
	struct stat st;
	int oflags = O_NONBLOCK | O_CLOEXEC | O_NOCTTY, ret, dax;

	memset(pf, 0, sizeof(*pf));
	pf->fd = -1;
	oflags |= (flags & FM_PF_WRITE) ? O_RDWR : O_RDONLY;
	/* 1. what the path names, before opening it: a FIFO or a tty is
	 *    never opened at all */
	if (stat(path, &st)) {
		int e = errno;
		if (!(flags & FM_PF_CREATE) || e != ENOENT)
			return fm_err(-e, "%s: %s", path, strerror(e));
		/* 2a. a new regular file, never an existing one */
		pf->fd = open(path, oflags | O_CREAT | O_EXCL, 0644);
		if (pf->fd < 0) {
			e = errno;
			return fm_err(-e, "%s: %s", path, strerror(e));
		}
	} else {
		ret = check_type(path, &st, &dax);
		if (ret)
			return ret;
		if ((flags & FM_PF_CREATE) && !dax)
			return fm_err(-EEXIST, "%s exists", path);
		/* 2b. open without blocking, without creating */
		pf->fd = open(path, oflags);
		if (pf->fd < 0) {
			int e = errno;
			return fm_err(-e, "%s: %s", path, strerror(e));
		}
	}
	/* 3. what was opened: the same object, still a pool type */
	if (fstat(pf->fd, &pf->st)) {
		ret = fm_err(-errno, "%s: fstat: %s", path, strerror(errno));
		goto out_close;
	}
	ret = check_type(path, &pf->st, &pf->is_devdax);
	if (ret)
		goto out_close;
	if (!(flags & FM_PF_CREATE) &&
	    (pf->st.st_dev != st.st_dev || pf->st.st_ino != st.st_ino)) {
		ret = fm_err(-ESTALE, "%s was replaced while being opened", path);
		goto out_close;
	}
	/* back to blocking mode for ordinary I/O (a regular file or a DAX
	 * device never blocks on open anyway) */
	(void)fcntl(pf->fd, F_SETFL, fcntl(pf->fd, F_GETFL) & ~O_NONBLOCK);
	snprintf(pf->map_path, sizeof(pf->map_path), "/proc/self/fd/%d", pf->fd);
	return 0;

out_close:
	close(pf->fd);
	pf->fd = -1;
	return ret;
}

/* The pid /proc/locks shows for a lock on this inode, or -1.  Kernels
 * show -1 for OFD locks (they belong to no process); older ones and POSIX
 * locks show the pid. */
static long lock_holder(const struct stat *st)
{
	char line[256], dev[64];
	long pid = -1;
	FILE *f = fopen("/proc/locks", "re");

	if (!f)
		return -1;
	snprintf(dev, sizeof(dev), "%02x:%02x:%ju", major(st->st_dev),
		 minor(st->st_dev), (uintmax_t)st->st_ino);
	while (fgets(line, sizeof(line), f)) {
		char kind[16], mode[16], rw[16], id[64];
		long p;

		/* "1: OFDLCK ADVISORY  WRITE -1 00:1b:163 0 EOF"; waiters
		 * ("1: -> ...") have a different shape and fail the scan */
		if (sscanf(line, "%*d: %15s %15s %15s %ld %63s", kind, mode, rw,
			   &p, id) != 5 || strcmp(kind, "OFDLCK") || strcmp(id, dev))
			continue;
		if (p > 0) {
			pid = p;
			break;
		}
	}
	fclose(f);
	return pid;
}

int fm_pool_file_lock(struct fm_pool_file *pf, const char *path)
{
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET };
	long pid;

	if (fcntl(pf->fd, F_OFD_SETLK, &fl) == 0)
		return 0;
	if (errno != EAGAIN && errno != EACCES) {
		int e = errno;
		return fm_err(-e, "pool %s: cannot take the exclusive lock (%s):"
			      " refusing to use it without", path, strerror(e));
	}
	pid = lock_holder(&pf->st);
	if (pid > 0)
		return fm_err(-EBUSY, "pool %s in use by pid %ld", path, pid);
	return fm_err(-EBUSY, "pool %s in use by another process", path);
}

int fm_pool_file_in_use(const struct fm_pool_file *pf)
{
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET };

	if (fcntl(pf->fd, F_OFD_GETLK, &fl))
		return -errno;
	return fl.l_type != F_UNLCK;
}

void fm_pool_file_close(struct fm_pool_file *pf)
{
	if (pf && pf->fd >= 0) {
		close(pf->fd);
		pf->fd = -1;
	}
}
