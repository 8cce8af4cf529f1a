/* pmem_test_util.h -- shared helpers of the pmem tests: where pools live,
 * file copies, a small deterministic PRNG. */
#ifndef FM_PMEM_TEST_UTIL_H
#define FM_PMEM_TEST_UTIL_H

#include <dirent.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/*
 * Directory for test pools: $FM_PMEM_DIR if set (e.g. /mnt/pmem on an
 * emulated NVDIMM), else a fresh temp dir under /dev/shm (tmpfs: msync is
 * cheap) or $TMPDIR.  The temp dir is removed at exit; FM_PMEM_DIR is not.
 */
static char fmt_dir_buf[512];
static int fmt_dir_is_temp;

static void fmt_dir_cleanup(void)
{
	DIR *d;
	struct dirent *e;
	char p[1024];

	if (!fmt_dir_is_temp || !(d = opendir(fmt_dir_buf)))
		return;
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		snprintf(p, sizeof(p), "%s/%s", fmt_dir_buf, e->d_name);
		unlink(p);
	}
	closedir(d);
	rmdir(fmt_dir_buf);
}

static inline const char *fmt_dir(void)
{
	const char *env = getenv("FM_PMEM_DIR");

	if (fmt_dir_buf[0])
		return fmt_dir_buf;
	if (env && *env) {
		snprintf(fmt_dir_buf, sizeof(fmt_dir_buf), "%s", env);
		return fmt_dir_buf;
	}
	snprintf(fmt_dir_buf, sizeof(fmt_dir_buf), "%s/fm-pmem-XXXXXX",
		 access("/dev/shm", W_OK) == 0 ? "/dev/shm" :
		 getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	if (!mkdtemp(fmt_dir_buf)) {
		perror("mkdtemp");
		exit(2);
	}
	fmt_dir_is_temp = 1;
	atexit(fmt_dir_cleanup);
	return fmt_dir_buf;
}

/* "<dir>/<name>.<pid>", removed first. */
static inline char *fmt_path(char *buf, size_t len, const char *name)
{
	snprintf(buf, len, "%s/%s.%d", fmt_dir(), name, (int)getpid());
	unlink(buf);
	return buf;
}

static inline uint8_t *fmt_read_file(const char *path, size_t *len)
{
	struct stat st;
	uint8_t *buf;
	int fd = open(path, O_RDONLY);

	*len = 0;
	if (fd < 0 || fstat(fd, &st)) {
		if (fd >= 0)
			close(fd);
		return NULL;
	}
	buf = malloc(st.st_size ? st.st_size : 1);
	if (buf && pread(fd, buf, st.st_size, 0) != st.st_size) {
		free(buf);
		buf = NULL;
	}
	close(fd);
	*len = st.st_size;
	return buf;
}

static inline int fmt_write_file(const char *path, const void *buf, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	int ok;

	if (fd < 0)
		return -1;
	ok = len == 0 || write(fd, buf, len) == (ssize_t)len;
	close(fd);
	return ok ? 0 : -1;
}

/* xorshift64*: deterministic, seedable. */
static inline uint64_t fmt_rand(uint64_t *st)
{
	uint64_t x = *st ? *st : 0x9E3779B97F4A7C15ull;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*st = x;
	return x * 0x2545F4914F6CDD1Dull;
}

#endif
