/* shm_peer.c -- helpers for the shm trust and fence tests (shm_peer.h). */
#include <dirent.h>
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "flashmeta/error.h"
#include "flashmeta/transport.h"
#include "shm_peer.h"

void peer_start(struct peer *p, const char *addr, int idx, int (*fn)(struct peer *), void *arg)
{
	p->addr = addr;
	p->idx = idx;
	p->arg = arg;
	if (pipe(p->to) || pipe(p->from)) {
		perror("pipe");
		exit(2);
	}
	fflush(NULL);
	p->pid = fork();
	if (p->pid < 0) {
		perror("fork");
		exit(2);
	}
	if (p->pid == 0) {
		close(p->to[1]);
		close(p->from[0]);
		alarm(60);
		_exit(fn(p));
	}
	close(p->to[0]);
	close(p->from[1]);
}

int peer_wait(struct peer *p)
{
	int st = -1;

	while (waitpid(p->pid, &st, 0) < 0 && errno == EINTR)
		;
	close(p->to[1]);
	close(p->from[0]);
	return st;
}

void peer_send(int fd, char c)
{
	(void)!write(fd, &c, 1);
}

int peer_recv(int fd, int ms)
{
	struct pollfd pfd = {.fd = fd, .events = POLLIN};
	char c;

	if (poll(&pfd, 1, ms) <= 0 || read(fd, &c, 1) != 1)
		return -1;
	return (unsigned char)c;
}

int peer_connect(struct fm_transport *t, const char *addr, const char *hello, struct fm_ep **ep)
{
	for (int i = 0; i < 1000; i++) {
		int ret = fm_connect(t, addr, hello, hello ? strlen(hello) : 0, 5000, ep);

		if (ret != -ECONNREFUSED)
			return ret;
		usleep(10000);
	}
	return -ETIMEDOUT;
}

int peer_recv_descs(struct fm_ep *ep, struct fm_region_desc *d, int n)
{
	uint8_t buf[4 * FM_REGION_DESC_WIRE_SIZE];
	int ret = fm_ep_recv(ep, buf, sizeof(buf), 0);

	if (ret != n * (int)FM_REGION_DESC_WIRE_SIZE)
		return ret < 0 ? ret : -EPROTO;
	for (int i = 0; i < n; i++)
		fm_region_desc_decode(buf + i * FM_REGION_DESC_WIRE_SIZE, &d[i]);
	return 0;
}

int owner_send_descs(struct fm_ep *ep, const struct fm_region_desc *d, int n, bool grant)
{
	uint8_t buf[4 * FM_REGION_DESC_WIRE_SIZE];
	int ret;

	if (grant && (ret = fm_ep_grant(ep)))
		return ret;
	for (int i = 0; i < n; i++)
		fm_region_desc_encode(&d[i], buf + i * FM_REGION_DESC_WIRE_SIZE);
	return fm_ep_send(ep, buf, (size_t)n * FM_REGION_DESC_WIRE_SIZE, 0);
}

/* "/memfd:NAME (deleted)" -> does NAME start with prefix, and is not except? */
static bool memfd_name_match(const char *path, const char *prefix, const char *except)
{
	const char *n = strstr(path, "memfd:");

	if (n == NULL)
		return false;
	n += 6;
	if (strncmp(n, prefix, strlen(prefix)) != 0)
		return false;
	return except == NULL || strncmp(n, except, strlen(except)) != 0;
}

int self_memfd_fds(const char *prefix, const char *except)
{
	DIR *dir = opendir("/proc/self/fd");
	struct dirent *de;
	int n = 0;

	if (dir == NULL)
		return -1;
	while ((de = readdir(dir)) != NULL) {
		char path[300], target[256];
		ssize_t k;

		snprintf(path, sizeof(path), "/proc/self/fd/%s", de->d_name);
		k = readlink(path, target, sizeof(target) - 1);
		if (k <= 0)
			continue;
		target[k] = '\0';
		if (memfd_name_match(target, prefix, except)) {
			fprintf(stderr, "[peer %d] holds fd %s -> %s\n", (int)getpid(), de->d_name,
				target);
			n++;
		}
	}
	closedir(dir);
	return n;
}

/* calls fn for each mapping line of a matching memfd; stops when fn != 0 */
static int maps_each(const char *prefix, const char *except,
		     int (*fn)(uintptr_t s, uintptr_t e, const char *perms, void *arg), void *arg)
{
	FILE *f = fopen("/proc/self/maps", "r");
	char line[512];
	int r = 0;

	if (f == NULL)
		return -1;
	while (r == 0 && fgets(line, sizeof(line), f)) {
		unsigned long s, e;
		char perms[8];
		int off = 0;

		if (sscanf(line, "%lx-%lx %7s %*s %*s %*s %n", &s, &e, perms, &off) < 3 || !off)
			continue;
		if (!memfd_name_match(line + off, prefix, except))
			continue;
		r = fn(s, e, perms, arg);
	}
	fclose(f);
	return r;
}

static int count_map(uintptr_t s, uintptr_t e, const char *perms, void *arg)
{
	fprintf(stderr, "[peer %d] maps %lx-%lx %s\n", (int)getpid(), (unsigned long)s,
		(unsigned long)e, perms);
	++*(int *)arg;
	return 0;
}

int self_memfd_maps(const char *prefix, const char *except)
{
	int n = 0;

	if (maps_each(prefix, except, count_map, &n) < 0)
		return -1;
	return n;
}

struct find_arg {
	uint64_t magic;
	size_t scan;
	uintptr_t start, end;
	char perms[5];
	uint64_t *word;
};

static int find_map(uintptr_t s, uintptr_t e, const char *perms, void *arg)
{
	struct find_arg *fa = arg;
	size_t len = e - s < fa->scan ? e - s : fa->scan;

	if (perms[0] != 'r')
		return 0;
	for (size_t off = 0; off + 8 <= len; off += 8) {
		uint64_t *w = (uint64_t *)(s + off);

		if (*w == fa->magic) {
			fa->start = s;
			fa->end = e;
			memcpy(fa->perms, perms, 4);
			fa->perms[4] = '\0';
			fa->word = w;
			return 1;
		}
	}
	return 0;
}

int self_find_word(const char *prefix, const char *except, uint64_t magic, size_t scan,
		   uintptr_t *start, uintptr_t *end, char perms[5], uint64_t **word)
{
	struct find_arg fa = {.magic = magic, .scan = scan};

	if (maps_each(prefix, except, find_map, &fa) != 1)
		return -1;
	*start = fa.start;
	*end = fa.end;
	memcpy(perms, fa.perms, 5);
	*word = fa.word;
	return 0;
}

static int ring_map(uintptr_t s, uintptr_t e, const char *perms, void *arg)
{
	uintptr_t *se = arg;

	(void)perms;
	se[0] = s;
	se[1] = e;
	return 1;
}

int self_ring_map(uint8_t **start, size_t *len)
{
	uintptr_t se[2];

	if (maps_each("flashmeta-rings", NULL, ring_map, se) != 1)
		return -1;
	*start = (uint8_t *)se[0];
	*len = se[1] - se[0];
	return 0;
}
