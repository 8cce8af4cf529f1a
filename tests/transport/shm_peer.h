/* shm_peer.h -- helpers for the shm trust and fence tests: peer processes,
 * a byte pipe to steer them, and looking at a process's own fds and
 * mappings through /proc.
 *
 * A peer is a forked child that runs one function and reports through its
 * exit status (0 = every check held; cmocka is never called in a child).
 * Children are forked before the test creates any transport.
 */
#ifndef FM_TEST_SHM_PEER_H
#define FM_TEST_SHM_PEER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

struct fm_transport;
struct fm_ep;
struct fm_region_desc;

/* a child's check: print where and why, exit with the line number */
#define PEER_CHECK(cond, ...)                                                            \
	do {                                                                             \
		if (!(cond)) {                                                           \
			fprintf(stderr, "[peer %d] %s:%d: check `%s` failed: ",          \
				(int)getpid(), __func__, __LINE__, #cond);               \
			fprintf(stderr, __VA_ARGS__);                                    \
			fprintf(stderr, " (errormsg: %s)\n", fm_errormsg());             \
			fflush(stderr);                                                  \
			_exit(__LINE__ % 200 + 1);                                       \
		}                                                                        \
	} while (0)

struct peer {
	pid_t pid;
	int to[2];   /* test -> peer: to[1] written by the test */
	int from[2]; /* peer -> test: from[1] written by the peer */
	int idx;
	const char *addr;
	void *arg;
};

/* peer_start -- fork a child running fn(p); its exit status is fn's return.
 * The pipes are set up first; the child gets an alarm of 60 s. */
void peer_start(struct peer *p, const char *addr, int idx, int (*fn)(struct peer *),
		void *arg);
/* peer_wait -- waitpid; returns the wait status */
int peer_wait(struct peer *p);
/* peer_send / peer_recv -- one byte over the pipes; recv waits up to ms
 * (-1: forever) and returns the byte, or -1 on timeout/EOF */
void peer_send(int fd, char c);
int peer_recv(int fd, int ms);

/* peer_connect -- fm_connect to addr, retrying while nobody listens yet */
int peer_connect(struct fm_transport *t, const char *addr, const char *hello,
		 struct fm_ep **ep);
/* peer_recv_descs -- the test's first message: n descriptors */
int peer_recv_descs(struct fm_ep *ep, struct fm_region_desc *d, int n);
/* owner side: n descriptors, after fm_ep_grant when `grant` */
int owner_send_descs(struct fm_ep *ep, const struct fm_region_desc *d, int n, bool grant);

/* self_memfds -- how many of this process's fds are memfds whose name
 * starts with `prefix` ("flashmeta-"), and how many mappings; names of the
 * first ones found go to stderr */
int self_memfd_fds(const char *prefix, const char *except);
int self_memfd_maps(const char *prefix, const char *except);

/* self_find_word -- the first mapping of a memfd named prefix* (except
 * `except`) whose first `scan` bytes hold the 8-byte `magic`: its start,
 * end and permission string ("r--s"); the address of the word.  0 or -1. */
int self_find_word(const char *prefix, const char *except, uint64_t magic, size_t scan,
		   uintptr_t *start, uintptr_t *end, char perms[5], uint64_t **word);

/* self_ring_map -- this process's mapping of its connection's ring memfd */
int self_ring_map(uint8_t **start, size_t *len);

#endif /* FM_TEST_SHM_PEER_H */
