/* fm-pmem-probe.c -- report what a pmem path offers inside a cluster guest.
 *
 *   fm-pmem-probe PATH [--expect-pmem] [--expect-reg-mr ok|fail]
 *
 * PATH is a directory on a DAX mount (a 2 MiB probe file is created in it)
 * or a device-DAX character device.  Maps it with pmem_map_file, then prints
 * key=value lines:
 *   kind=file|devdax  map_sync=ok|unsupported  is_pmem=0|1
 *   persist_64B_ns=<median of 1000 pmem_persist calls on 64-byte stores>
 *   reg_mr=ok|<errno name>   (ibv_reg_mr of the mapping on the first device)
 * Exit status: 0, 1 if mapping failed or an --expect-* check failed.
 * Built by initramfs.sh into the guest image; not part of the library.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <infiniband/verbs.h>
#include <libpmem.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#ifndef MAP_SHARED_VALIDATE
#define MAP_SHARED_VALIDATE 0x03
#endif
#ifndef MAP_SYNC
#define MAP_SYNC 0x80000
#endif

#define PROBE_LEN (2u << 20)
#define PERSIST_ROUNDS 1000

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* Median latency of a 64-byte store + pmem_persist, at rotating offsets. */
static uint64_t persist_median_ns(char *base)
{
	static uint64_t samples[PERSIST_ROUNDS];
	unsigned int i;

	for (i = 0; i < PERSIST_ROUNDS; i++) {
		char *p = base + (size_t)(i % 1024) * 64;
		uint64_t t0 = now_ns();

		memset(p, (int)i, 64);
		pmem_persist(p, 64);
		samples[i] = now_ns() - t0;
	}
	qsort(samples, PERSIST_ROUNDS, sizeof(samples[0]), cmp_u64);
	return samples[PERSIST_ROUNDS / 2];
}

/* 0 if ibv_reg_mr on [addr, addr+len) works on the first device, else -errno. */
static int try_reg_mr(void *addr, size_t len)
{
	struct ibv_device **list;
	struct ibv_context *ctx = NULL;
	struct ibv_pd *pd = NULL;
	struct ibv_mr *mr;
	int n, ret = -ENODEV;

	list = ibv_get_device_list(&n);
	if (!list || n == 0)
		goto out;
	ctx = ibv_open_device(list[0]);
	if (!ctx)
		goto out;
	pd = ibv_alloc_pd(ctx);
	if (!pd) {
		ret = -ENOMEM;
		goto out;
	}
	mr = ibv_reg_mr(pd, addr, len, IBV_ACCESS_LOCAL_WRITE |
			IBV_ACCESS_REMOTE_READ | IBV_ACCESS_REMOTE_WRITE |
			IBV_ACCESS_REMOTE_ATOMIC);
	if (!mr) {
		ret = errno ? -errno : -EINVAL;
		goto out;
	}
	ibv_dereg_mr(mr);
	ret = 0;
out:
	if (pd)
		ibv_dealloc_pd(pd);
	if (ctx)
		ibv_close_device(ctx);
	if (list)
		ibv_free_device_list(list);
	return ret;
}

int main(int argc, char **argv)
{
	const char *path, *expect_mr = NULL;
	char file[4096];
	struct stat st;
	int fd, expect_pmem = 0, i, rc = 0, mr, is_pmem;
	int devdax, map_sync = 1;
	size_t mapped;
	void *addr;

	if (argc < 2) {
		fprintf(stderr, "usage: %s PATH [--expect-pmem] [--expect-reg-mr ok|fail]\n", argv[0]);
		return 2;
	}
	path = argv[1];
	for (i = 2; i < argc; i++) {
		if (!strcmp(argv[i], "--expect-pmem"))
			expect_pmem = 1;
		else if (!strcmp(argv[i], "--expect-reg-mr") && i + 1 < argc)
			expect_mr = argv[++i];
	}
	if (stat(path, &st) < 0) {
		perror(path);
		return 1;
	}
	devdax = S_ISCHR(st.st_mode);
	if (devdax) {
		snprintf(file, sizeof(file), "%s", path);
	} else {
		/* An explicit MAP_SYNC mapping first: the kernel refuses it unless
		 * the file is on a DAX mount. */
		snprintf(file, sizeof(file), "%s/fm-pmem-probe.%d", path, (int)getpid());
		fd = open(file, O_RDWR | O_CREAT | O_TRUNC, 0600);
		if (fd < 0 || posix_fallocate(fd, 0, PROBE_LEN) != 0) {
			perror(file);
			return 1;
		}
		addr = mmap(NULL, PROBE_LEN, PROT_READ | PROT_WRITE,
			    MAP_SHARED_VALIDATE | MAP_SYNC, fd, 0);
		if (addr == MAP_FAILED)
			map_sync = 0;
		else
			munmap(addr, PROBE_LEN);
		close(fd);
	}
	/* libpmem's own mapping: MAP_SYNC on DAX files, the device on devdax. */
	addr = pmem_map_file(file, 0, 0, 0, &mapped, &is_pmem);
	if (!addr) {
		fprintf(stderr, "pmem_map_file %s: %s\n", file, pmem_errormsg());
		return 1;
	}
	if (mapped < PROBE_LEN) {
		fprintf(stderr, "%s: only %zu bytes\n", file, mapped);
		return 1;
	}
	printf("path=%s\nkind=%s\n", path, devdax ? "devdax" : "file");
	if (!devdax)
		printf("map_sync=%s\n", map_sync ? "ok" : "unsupported");
	printf("is_pmem=%d\n", is_pmem);
	printf("persist_64B_ns=%llu\n", (unsigned long long)persist_median_ns(addr));
	mr = try_reg_mr(addr, PROBE_LEN);
	printf("reg_mr=%s\n", mr == 0 ? "ok" : strerrorname_np(-mr) ? strerrorname_np(-mr) : "error");

	if (expect_pmem && (!is_pmem || (!devdax && !map_sync))) {
		fprintf(stderr, "fm-pmem-probe: %s is not DAX persistent memory\n", path);
		rc = 1;
	}
	if (expect_mr && (!strcmp(expect_mr, "ok") != !mr)) {
		fprintf(stderr, "fm-pmem-probe: ibv_reg_mr %s, expected %s\n",
			mr == 0 ? "worked" : "failed", expect_mr);
		rc = 1;
	}
	pmem_unmap(addr, mapped);
	if (!devdax)
		unlink(file);
	return rc;
}
