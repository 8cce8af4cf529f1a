/* peer.c -- the second client process: an agent of its own (client 2),
 * committing fresh grains of its own range when told to, so the owner
 * serves commits from two processes at once.  Forked before any transport
 * exists in the parent; told what to do over a pipe:
 *   'J'            join (agent, session, grant), answer 'j'
 *   'C' + uint32 n n times fm_agent_lock + fm_agent_commit_split on the
 *                  next fresh grains, answer a struct peer_result
 *   'Q' (or EOF)   BYE, exit
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench_agent.h"
#include "flashmeta/error.h"

static void xwrite(int fd, const void *p, size_t n)
{
	if (write(fd, p, n) != (ssize_t)n)
		ba_die(-EIO, "peer pipe write");
}

static bool xread(int fd, void *p, size_t n)
{
	size_t got = 0;

	while (got < n) {
		ssize_t k = read(fd, (char *)p + got, n - got);

		if (k <= 0) {
			if (k < 0 && errno == EINTR)
				continue;
			return false;
		}
		got += (size_t)k;
	}
	return true;
}

static __attribute__((noreturn)) void peer_main(const struct ba_opts *op, uint64_t grain,
						int rfd, int wfd)
{
	struct fm_agent *a = NULL;
	char cmd;

	while (xread(rfd, &cmd, 1)) {
		if (cmd == 'J') {
			a = agent_join(op, 2);
			xwrite(wfd, "j", 1);
		} else if (cmd == 'C') {
			struct peer_result r = { 0 };
			uint32_t n;

			if (!xread(rfd, &n, sizeof(n)) || !a)
				break;
			r.t_start = fm_now_ns();
			for (; r.done < n; r.done++, grain++) {
				int rc = fm_agent_lock(a, BA_MAP, grain);

				if (rc == 0)
					rc = fm_agent_commit_split(a, BA_MAP, grain);
				else if (rc == 1)
					rc = -EEXIST; /* split already: the layout is wrong */
				if (rc) {
					r.rc = rc;
					fprintf(stderr, "fm-bench-agent: peer: grain %llu: %d (%s)\n",
						(unsigned long long)grain, rc, fm_errormsg());
					break;
				}
			}
			r.t_end = fm_now_ns();
			xwrite(wfd, &r, sizeof(r));
		} else {
			break;
		}
	}
	fm_agent_delete(&a);
	_exit(0);
}

void peer_start(struct peer *p, const struct ba_opts *op, uint64_t first_grain)
{
	int to[2], from[2];

	if (pipe(to) || pipe(from))
		ba_die(-errno, "pipe");
	fflush(NULL);
	p->pid = fork();
	if (p->pid < 0)
		ba_die(-errno, "fork");
	if (p->pid == 0) {
		close(to[1]);
		close(from[0]);
		peer_main(op, first_grain, to[0], from[1]);
	}
	close(to[0]);
	close(from[1]);
	p->to = to[1];
	p->from = from[0];
}

void peer_join(struct peer *p)
{
	char c;

	xwrite(p->to, "J", 1);
	if (!xread(p->from, &c, 1) || c != 'j')
		ba_die(-EIO, "the peer process did not join");
}

void peer_commit_go(struct peer *p, uint32_t n)
{
	char msg[1 + sizeof(n)];

	msg[0] = 'C';
	memcpy(msg + 1, &n, sizeof(n));
	xwrite(p->to, msg, sizeof(msg));
}

void peer_commit_wait(struct peer *p, struct peer_result *r)
{
	if (!xread(p->from, r, sizeof(*r)))
		ba_die(-EIO, "the peer process went away");
	if (r->rc)
		ba_die(r->rc, "the peer's commits failed");
}

void peer_stop(struct peer *p)
{
	int st;

	if (p->pid <= 0)
		return;
	(void)!write(p->to, "Q", 1); /* it may be gone already */
	close(p->to);
	close(p->from);
	for (int i = 0; i < 1000 && waitpid(p->pid, &st, WNOHANG) == 0; i++)
		usleep(10000);
	if (waitpid(p->pid, &st, WNOHANG) == 0) {
		kill(p->pid, SIGKILL);
		waitpid(p->pid, &st, 0);
	}
	p->pid = 0;
}
