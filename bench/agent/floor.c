/* floor.c -- the floor: the same one-sided operations the agent issues,
 * posted raw on a transport lane against a tiny server of our own.
 *
 * The server is a process forked before any transport exists (verbs
 * cannot work in a child forked after its parent's first RDMA call).  It
 * serves two regions the way the owner serves a mapping: a REMOTE_READ
 * region (the owner's split bitmap: the READ arena on shm) and a
 * REMOTE_ATOMIC one (its lock table: the ATOMIC arena), grants each
 * connection, sends both descriptors, and then sleeps in event mode until
 * the client closes, echoing every message of the first connection.
 *
 * The client side uses the agent's own transport settings (agent.c: event
 * waits, lane depth 4, op timeout 3000 ms) and waits the way the agent
 * does: post, then fm_lane_wait.  A "busy" floor (FM_WAIT_BUSY, spinning
 * on the completion queue as perftest does) is measured beside it where
 * the wait mode matters (verbs; shm completes at post time).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench_agent.h"
#include "flashmeta/error.h"

#define FLOOR_REGION (64u << 10)
#define FLOOR_READ_OFF 64u /* a 64-byte window, as the agent's bitmap READ */

static __attribute__((noreturn)) void serve(const struct ba_opts *op, unsigned nconn,
					    int ready_fd)
{
	struct fm_transport_cfg c = { .provider = op->provider, .device = op->device,
				      .wait_mode = FM_WAIT_EVENT };
	uint8_t buf[2 * FM_REGION_DESC_WIRE_SIZE];
	struct fm_ep *ep[4] = { 0 };
	struct fm_region_desc d[2];
	struct fm_transport *t;
	struct fm_listener *l;
	struct fm_region *rd, *at;
	int rc;

	if ((rc = fm_transport_new(&t, &c)) ||
	    (rc = fm_region_new(t, FLOOR_REGION, FM_ACCESS_REMOTE_READ, &rd)) ||
	    (rc = fm_region_new(t, FLOOR_REGION, FM_ACCESS_REMOTE_ATOMIC, &at)) ||
	    (rc = fm_listen(t, op->floor_addr, &l)))
		ba_die(rc, "floor server on %s", op->floor_addr);
	fm_region_desc(rd, &d[0]);
	fm_region_desc(at, &d[1]);
	fm_region_desc_encode(&d[0], buf);
	fm_region_desc_encode(&d[1], buf + FM_REGION_DESC_WIRE_SIZE);
	(void)!write(ready_fd, "r", 1);
	close(ready_fd);
	for (unsigned i = 0; i < nconn; i++)
		if ((rc = fm_listener_accept(l, 120000, &ep[i])) || (rc = fm_ep_grant(ep[i])) ||
		    (rc = fm_ep_send(ep[i], buf, sizeof(buf), 0)))
			ba_die(rc, "floor server: connection %u", i);
	/* until the client closes (event mode sleeps); the first connection
	 * gets every message back (floor_msg_rtt) */
	for (unsigned i = 0; i < nconn; i++) {
		uint8_t msg[256];

		do {
			rc = fm_ep_recv(ep[i], msg, sizeof(msg), 0);
			if (rc >= 0 && i == 0 && fm_ep_send(ep[i], msg, (size_t)rc, 0))
				break;
		} while (rc >= 0 || rc == -ETIMEDOUT);
		fm_ep_delete(&ep[i]);
	}
	fm_listener_delete(&l);
	fm_region_delete(&rd);
	fm_region_delete(&at);
	fm_transport_delete(&t);
	_exit(0);
}

pid_t floor_server_start(const struct ba_opts *op, unsigned nconn)
{
	int ready[2];
	char c;
	pid_t pid;

	if (nconn > 4)
		ba_die(-EINVAL, "floor server: at most 4 connections");
	if (pipe(ready))
		ba_die(-errno, "pipe");
	fflush(NULL);
	pid = fork();
	if (pid < 0)
		ba_die(-errno, "fork");
	if (pid == 0) {
		close(ready[0]);
		serve(op, nconn, ready[1]);
	}
	close(ready[1]);
	if (read(ready[0], &c, 1) != 1)
		ba_die(-EIO, "the floor server did not start");
	close(ready[0]);
	return pid;
}

void floor_open(struct floor *f, const struct ba_opts *op, enum fm_wait_mode mode,
		const char *label)
{
	/* the agent's transport settings (rdma/agent/agent.c) */
	struct fm_transport_cfg c = { .provider = op->provider, .device = op->device,
				      .wait_mode = mode, .op_timeout_ms = 3000, .lane_depth = 4 };
	uint8_t buf[2 * FM_REGION_DESC_WIRE_SIZE];
	int rc;

	memset(f, 0, sizeof(*f));
	f->label = label;
	if ((rc = fm_transport_new(&f->t, &c)) ||
	    (rc = fm_connect(f->t, op->floor_addr, NULL, 0, 10000, &f->ep)) ||
	    (rc = fm_region_new(f->t, 4096, FM_ACCESS_LOCAL, &f->dst)))
		ba_die(rc, "floor client (%s) to %s", label, op->floor_addr);
	rc = fm_ep_recv(f->ep, buf, sizeof(buf), 0);
	if (rc != (int)sizeof(buf))
		ba_die(rc < 0 ? rc : -EPROTO, "floor descriptors");
	fm_region_desc_decode(buf, &f->rd);
	fm_region_desc_decode(buf + FM_REGION_DESC_WIRE_SIZE, &f->at);
	if ((rc = fm_lane_new(f->ep, &f->lane)))
		ba_die(rc, "floor lane");
}

void floor_close(struct floor *f)
{
	fm_lane_delete(&f->lane);
	fm_ep_delete(&f->ep);
	fm_region_delete(&f->dst);
	fm_transport_delete(&f->t);
}

/* wait for `n` completions, as the agent does (lane.c wait_one) */
static void wait_n(struct floor *f, int n)
{
	struct fm_completion c[2];

	while (n > 0) {
		int k = fm_lane_wait(f->lane, c, n, 10000);

		if (k <= 0)
			ba_die(k ? k : -EIO, "floor (%s): lane wait", f->label);
		for (int i = 0; i < k; i++)
			if (c[i].status)
				ba_die(c[i].status, "floor (%s): completion", f->label);
		n -= k;
	}
}

static void post_cas(struct floor *f)
{
	int rc = fm_lane_post_cas(f->lane, &f->at, 0, f->word, f->word ^ 1, NULL);

	if (rc)
		ba_die(rc, "floor (%s): post cas", f->label);
	f->word ^= 1; /* every CAS swaps, as a lock and its release do */
}

static void post_read(struct floor *f)
{
	int rc = fm_lane_post_read(f->lane, f->dst, 0, &f->rd, FLOOR_READ_OFF, 64, NULL);

	if (rc)
		ba_die(rc, "floor (%s): post read", f->label);
}

double floor_read64(struct floor *f)
{
	uint64_t t0 = fm_now_ns();

	post_read(f);
	wait_n(f, 1);
	return (double)(fm_now_ns() - t0);
}

double floor_cas(struct floor *f)
{
	uint64_t t0 = fm_now_ns();

	post_cas(f);
	wait_n(f, 1);
	return (double)(fm_now_ns() - t0);
}

double floor_cas2(struct floor *f)
{
	uint64_t t0 = fm_now_ns();

	post_cas(f);
	wait_n(f, 1);
	post_cas(f);
	wait_n(f, 1);
	return (double)(fm_now_ns() - t0);
}

/* a message and its answer (the server echoes on the first connection):
 * the two-sided round trip a commit makes (SPLIT_COMMIT, SPLIT_ACK), with
 * blocking fm_ep_send / fm_ep_recv on the endpoint's owning thread, as the
 * agent's protocol thread and the owner's loop use them */
double floor_msg_rtt(struct floor *f)
{
	uint8_t msg[64] = { 1 }, back[256];
	uint64_t t0 = fm_now_ns();
	int rc = fm_ep_send(f->ep, msg, sizeof(msg), 0);

	if (rc)
		ba_die(rc, "floor (%s): send", f->label);
	rc = fm_ep_recv(f->ep, back, sizeof(back), 0);
	if (rc != (int)sizeof(msg))
		ba_die(rc < 0 ? rc : -EPROTO, "floor (%s): echo", f->label);
	return (double)(fm_now_ns() - t0);
}

/* the agent's own one-sided work for a lock: CAS and READ posted
 * together, one round trip */
double floor_casread(struct floor *f)
{
	uint64_t t0 = fm_now_ns();

	post_cas(f);
	post_read(f);
	wait_n(f, 2);
	return (double)(fm_now_ns() - t0);
}

/* the agent's own one-sided work for a lock and its release: CAS and
 * READ posted together (one round trip), then the release CAS */
double floor_casread_cas(struct floor *f)
{
	uint64_t t0 = fm_now_ns();

	post_cas(f);
	post_read(f);
	wait_n(f, 2);
	post_cas(f);
	wait_n(f, 1);
	return (double)(fm_now_ns() - t0);
}
