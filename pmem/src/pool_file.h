/* pool_file.h -- opening a pool file (internal): type checks that never
 * block, and the exclusive lock that allows one writer per pool.
 *
 * A pool is a regular file or a device-DAX character device.  Anything
 * else (a FIFO, a socket, a directory, a block device, another character
 * device) is refused before it is opened, by stat(), and checked again by
 * fstat() on the descriptor opened with O_NONBLOCK, so a FIFO or a tty can
 * never block an open or a read.  Nothing here creates, truncates or
 * deletes a path unless FM_PF_CREATE says so.
 *
 * Exclusive use: the store holds an open-file-description lock (fcntl
 * F_OFD_SETLK, F_WRLCK, the whole file) on its descriptor for the life of
 * the handle.  OFD locks conflict between any two open file descriptions,
 * in one process or two, and unlike POSIX record locks they are not lost
 * when some other descriptor of the same file (libpmem's own, during
 * pmem_map_file) is closed.  The lock belongs to the open file description:
 * a child that inherits the descriptor across fork() shares it (the store
 * opens with O_CLOEXEC, so exec drops it).  It is advisory: only flashmeta
 * code takes it.  A devdax device is locked the same way (fcntl locks work
 * on character device inodes); the lock is on the inode of the device node,
 * so a second node for the same device (another mknod) is not excluded.
 * Should fcntl refuse the lock on some device, the open fails (-ENOLCK):
 * exclusive use is never silently given up.
 */
#ifndef FM_PMEM_POOL_FILE_H
#define FM_PMEM_POOL_FILE_H

#include <sys/stat.h>

struct fm_pool_file {
	int fd;          /* -1 when closed */
	struct stat st;  /* fstat of fd */
	int is_devdax;
	char map_path[48]; /* /proc/self/fd/N: this very file, for libpmem */
};

enum {
	FM_PF_WRITE = 1,  /* O_RDWR, else O_RDONLY */
	FM_PF_CREATE = 2, /* create a new regular file (O_CREAT | O_EXCL), or
			     open an existing devdax device for writing */
};

/*
 * fm_pool_file_open -- open `path` as a pool file without blocking.
 * Returns 0, or a negative errno with a message:
 *   -ENOENT, -EACCES, ...  from stat/open
 *   -EEXIST      FM_PF_CREATE and path exists (and is not a devdax device)
 *   -EISDIR      a directory
 *   -ENODEV      neither a regular file nor a devdax character device
 *                (FIFO, socket, block device, other character device)
 *   -ESTALE      path was replaced between stat and open
 */
int fm_pool_file_open(struct fm_pool_file *pf, const char *path, int flags);

/*
 * fm_pool_file_lock -- take the exclusive OFD lock (never waits).
 * Returns 0, -EBUSY ("pool PATH in use by pid N", or "... by another
 * process" when /proc/locks does not name the holder), or -ENOLCK / another
 * errno when the lock cannot be taken at all.
 */
int fm_pool_file_lock(struct fm_pool_file *pf, const char *path);

/*
 * fm_pool_file_in_use -- 1 if another open file description holds a lock
 * on the file (an owner or a writing tool has it open), 0 if not, or a
 * negative errno.  Takes no lock.
 */
int fm_pool_file_in_use(const struct fm_pool_file *pf);

/* Close (drops the lock); NULL-safe, idempotent. */
void fm_pool_file_close(struct fm_pool_file *pf);

#endif /* FM_PMEM_POOL_FILE_H */
