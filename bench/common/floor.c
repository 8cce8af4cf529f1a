/* floor.c -- the transport floor: raw lane operations against a floor
 * server of our own (floor.h). */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "flashmeta/error.h"
#include "floor.h"
#include "report.h"

#define FLOOR_REGION (64u << 10)
#define FLOOR_READ_OFF 64u /* a 64-byte window, as the agent's bitmap READ */
#define FLOOR_MAX_CONN 256u

_Static_assert(FM_FLOOR_WORDS * 8 == FLOOR_REGION, "a CAS word per 8 bytes");

/* ------------------------------------------------------------- server */

/* one connection's thread: echo every message until the client closes */
static void *echo_main(void *arg)
{
	struct fm_ep *ep = arg;
	uint8_t msg[256];
	int rc;

	do {
		rc = fm_ep_recv(ep, msg, sizeof(msg), 0);
		if (rc >= 0 && fm_ep_send(ep, msg, (size_t)rc, 0))
			break;
	} while (rc >= 0 || rc == -ETIMEDOUT);
	return NULL;
}

static __attribute__((noreturn)) void serve(const struct fm_floor_cfg *cfg, unsigned nconn,
					    int ready_fd)
{
	struct fm_transport_cfg c = { .provider = cfg->provider, .device = cfg->device,
				      .wait_mode = FM_WAIT_EVENT };
	uint8_t buf[2 * FM_REGION_DESC_WIRE_SIZE];
	struct fm_ep *ep[FLOOR_MAX_CONN] = { 0 };
	pthread_t th[FLOOR_MAX_CONN];
	struct fm_region_desc d[2];
	struct fm_transport *t;
	struct fm_listener *l;
	struct fm_region *rd, *at;
	unsigned started = 0;
	int rc;

	if ((rc = fm_transport_new(&t, &c)) ||
	    (rc = fm_region_new(t, FLOOR_REGION, FM_ACCESS_REMOTE_READ, &rd)) ||
	    (rc = fm_region_new(t, FLOOR_REGION, FM_ACCESS_REMOTE_ATOMIC, &at)) ||
	    (rc = fm_listen(t, cfg->addr, &l))) {
		fprintf(stderr, "floor server on %s: %d (%s)\n", cfg->addr, rc, fm_errormsg());
		_exit(1);
	}
	fm_region_desc(rd, &d[0]);
	fm_region_desc(at, &d[1]);
	fm_region_desc_encode(&d[0], buf);
	fm_region_desc_encode(&d[1], buf + FM_REGION_DESC_WIRE_SIZE);
	(void)!write(ready_fd, "r", 1);
	close(ready_fd);
	for (unsigned i = 0; i < nconn; i++) {
		if ((rc = fm_listener_accept(l, 120000, &ep[i])) || (rc = fm_ep_grant(ep[i])) ||
		    (rc = fm_ep_send(ep[i], buf, sizeof(buf), 0))) {
			fprintf(stderr, "floor server: connection %u: %d (%s)\n", i, rc,
				fm_errormsg());
			break;
		}
		/* the endpoint moves to its thread (one owner at a time) */
		if (pthread_create(&th[i], NULL, echo_main, ep[i]))
			break;
		started++;
	}
	for (unsigned i = 0; i < started; i++)
		pthread_join(th[i], NULL);
	for (unsigned i = 0; i < nconn; i++)
		fm_ep_delete(&ep[i]);
	fm_listener_delete(&l);
	fm_region_delete(&rd);
	fm_region_delete(&at);
	fm_transport_delete(&t);
	_exit(0);
}

int fm_floor_server_start(const struct fm_floor_cfg *cfg, unsigned nconn, pid_t *pid)
{
	int ready[2];
	char c;

	*pid = 0;
	if (nconn == 0 || nconn > FLOOR_MAX_CONN)
		return fm_err(-EINVAL, "floor server: 1..%u connections", FLOOR_MAX_CONN);
	if (pipe(ready))
		return fm_err(-errno, "pipe");
	fflush(NULL);
	*pid = fork();
	if (*pid < 0) {
		int rc = -errno;

		close(ready[0]);
		close(ready[1]);
		*pid = 0;
		return fm_err(rc, "fork");
	}
	if (*pid == 0) {
		close(ready[0]);
		serve(cfg, nconn, ready[1]);
	}
	close(ready[1]);
	if (read(ready[0], &c, 1) != 1) {
		close(ready[0]);
		fm_floor_server_stop(pid);
		return fm_err(-EIO, "the floor server did not start");
	}
	close(ready[0]);
	return 0;
}

void fm_floor_server_stop(pid_t *pid)
{
	if (!pid || *pid <= 0)
		return;
	kill(*pid, SIGKILL);
	waitpid(*pid, NULL, 0);
	*pid = 0;
}

/* ------------------------------------------------------------- client */

int fm_floor_open(struct fm_floor *f, const struct fm_floor_cfg *cfg)
{
	/* the agent's transport settings (rdma/agent/agent.c) */
	struct fm_transport_cfg c = { .provider = cfg->provider, .device = cfg->device,
				      .wait_mode = cfg->wait, .op_timeout_ms = 3000,
				      .lane_depth = 4, .max_lanes = cfg->lanes ? cfg->lanes : 1 };
	uint8_t buf[2 * FM_REGION_DESC_WIRE_SIZE];
	int rc;

	memset(f, 0, sizeof(*f));
	if ((rc = fm_transport_new(&f->t, &c)) ||
	    (rc = fm_connect(f->t, cfg->addr, NULL, 0, 10000, &f->ep)))
		goto out;
	rc = fm_ep_recv(f->ep, buf, sizeof(buf), 0);
	if (rc != (int)sizeof(buf)) {
		rc = fm_err(rc < 0 ? rc : -EPROTO, "floor: descriptors from %s", cfg->addr);
		goto out;
	}
	fm_region_desc_decode(buf, &f->rd);
	fm_region_desc_decode(buf + FM_REGION_DESC_WIRE_SIZE, &f->at);
	return 0;
out:
	fm_floor_close(f);
	return rc;
}

void fm_floor_close(struct fm_floor *f)
{
	fm_ep_delete(&f->ep);
	fm_transport_delete(&f->t);
}

int fm_floor_lane_open(struct fm_floor *f, unsigned index, struct fm_floor_lane *l)
{
	int rc;

	memset(l, 0, sizeof(*l));
	if (index >= FM_FLOOR_WORDS)
		return fm_err(-ERANGE, "floor: CAS word %u of %u", index, FM_FLOOR_WORDS);
	l->rd = f->rd;
	l->at = f->at;
	l->word_off = (uint64_t)index * 8;
	if ((rc = fm_region_new(f->t, 4096, FM_ACCESS_LOCAL, &l->dst)) ||
	    (rc = fm_lane_new(f->ep, &l->lane))) {
		fm_floor_lane_close(l);
		return rc;
	}
	return 0;
}

void fm_floor_lane_close(struct fm_floor_lane *l)
{
	fm_lane_delete(&l->lane);
	fm_region_delete(&l->dst);
}

/* wait for `n` completions, as the agent does (lane.c wait_one) */
static int wait_n(struct fm_floor_lane *l, int n)
{
	struct fm_completion c[2];

	while (n > 0) {
		int k = fm_lane_wait(l->lane, c, n, 10000);

		if (k <= 0)
			return k ? k : fm_err(-EIO, "floor: lane wait: nothing in 10 s");
		for (int i = 0; i < k; i++)
			if (c[i].status)
				return c[i].status;
		n -= k;
	}
	return 0;
}

static int post_cas(struct fm_floor_lane *l)
{
	int rc = fm_lane_post_cas(l->lane, &l->at, l->word_off, l->word, l->word ^ 1, NULL);

	if (!rc)
		l->word ^= 1; /* every CAS swaps, as a lock and its release do */
	return rc;
}

static int post_read(struct fm_floor_lane *l)
{
	return fm_lane_post_read(l->lane, l->dst, 0, &l->rd, FLOOR_READ_OFF, 64, NULL);
}

static int timed(uint64_t t0, int rc, double *ns)
{
	*ns = (double)(fm_now_ns() - t0);
	return rc;
}

int fm_floor_read64(struct fm_floor_lane *l, double *ns)
{
	uint64_t t0 = fm_now_ns();
	int rc = post_read(l);

	if (!rc)
		rc = wait_n(l, 1);
	return timed(t0, rc, ns);
}

int fm_floor_cas(struct fm_floor_lane *l, double *ns)
{
	uint64_t t0 = fm_now_ns();
	int rc = post_cas(l);

	if (!rc)
		rc = wait_n(l, 1);
	return timed(t0, rc, ns);
}

int fm_floor_cas2(struct fm_floor_lane *l, double *ns)
{
	uint64_t t0 = fm_now_ns();
	int rc = post_cas(l);

	if (!rc)
		rc = wait_n(l, 1);
	if (!rc)
		rc = post_cas(l);
	if (!rc)
		rc = wait_n(l, 1);
	return timed(t0, rc, ns);
}

int fm_floor_casread(struct fm_floor_lane *l, double *ns)
{
	uint64_t t0 = fm_now_ns();
	int rc = post_cas(l);

	if (!rc && (rc = post_read(l)))
		(void)wait_n(l, 1); /* the CAS posted */
	else if (!rc)
		rc = wait_n(l, 2);
	return timed(t0, rc, ns);
}

int fm_floor_casread_cas(struct fm_floor_lane *l, double *ns)
{
	uint64_t t0 = fm_now_ns();
	int rc = post_cas(l);

	if (!rc && (rc = post_read(l)))
		(void)wait_n(l, 1);
	else if (!rc)
		rc = wait_n(l, 2);
	if (!rc)
		rc = post_cas(l);
	if (!rc)
		rc = wait_n(l, 1);
	return timed(t0, rc, ns);
}

int fm_floor_msg_rtt(struct fm_floor *f, double *ns)
{
	uint8_t msg[64] = { 1 }, back[256];
	uint64_t t0 = fm_now_ns();
	int rc = fm_ep_send(f->ep, msg, sizeof(msg), 0);

	if (!rc) {
		rc = fm_ep_recv(f->ep, back, sizeof(back), 0);
		rc = rc == (int)sizeof(msg) ? 0 : fm_err(rc < 0 ? rc : -EPROTO, "floor: echo");
	}
	return timed(t0, rc, ns);
}
