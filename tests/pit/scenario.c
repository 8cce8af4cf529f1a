/* scenario.c -- two interleavings, arranged on purpose, that an
 * independent review found to break the snapshot invariant.  Both use two
 * scripted clients (A = client 0, B = client 1, two engine threads each)
 * on the small mapping, and end like a random run: final sweep, pool
 * dump, the full check.  A scenario passes when the checker finds nothing;
 * it prints whether the interleaving was actually reached.
 *
 * A's slow storage steps are gated: they last until the parent opens A's
 * gate (once B's writes were acked), at most --slow's MS (5000 by default),
 * so the order does not depend on how fast the transport is.
 *
 * restart-race (owner restart):
 *   1. A locks grain g for a source write and stalls in a slow storage
 *      step (on shm it lasts ~20-50 ms: less than the 300 ms of the
 *      finding, inside a 1000 ms lease);
 *   2. the owner is SIGKILLed and restarted at once;
 *   3. B writes g -- it gets the lock from the fresh owner within ms;
 *   4. A finishes its copy.
 *   Round 1 stalls A BEFORE it reads the source, and B writes the source:
 *   A then copies post-trigger source data into the target.  Round 2
 *   stalls A AFTER it read the source, and B writes the target: A's copy
 *   then overwrites B's acknowledged target write.
 *
 * stall-race (stalled client):
 *   1. A's two threads lock grains g1, g2 and stall in slow storage steps
 *      (before the source read / before the target write);
 *   2. A is SIGSTOPped; B starts a source write to g1 and a target write
 *      to g2 (they queue behind A's locks);
 *   3. A's lease runs out and the owner fences it; while the owner waits
 *      for A to answer (found by its control socket going quiet, or by its
 *      fence count going up) A is SIGCONTed -- it answers and lives;
 *   4. the owner reclaims A's locks; B's writes complete (acked);
 *   5. A's threads wake and finish their copies.
 * Over verbs the fence destroys A's QP and never kills it: A always lives.
 *
 * Both hold by construction, not by timing: A's volumes check the owner's
 * fence table (engine.c), and the owner raises A's floor -- at its start
 * for every client, at a fence for that session -- before anyone else can
 * take A's locks.  A's late copy is refused (-EKEYREJECTED) and the
 * library starts A's I/O again under A's next session.  With volumes that
 * ignore the table, restart-race with A held until B is acked fails
 * (tried: 2 violations).
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "engine.h"
#include "flashmeta/planner.h"
#include "run.h"

#define SC_MAP 1 /* the small mapping */
#define A 0u
#define B 1u

struct sc {
	struct pit_run *r;
	uint32_t next_id;
	/* answers that came while another was awaited */
	unsigned nearly[PIT_MAX_CLIENTS];
	struct pit_reply stash[PIT_MAX_CLIENTS][16];
};

/* the first block of writer w's stripe in grain g (W writers) */
static uint64_t stripe_of(const struct pit_run *r, unsigned w, uint64_t g)
{
	unsigned W = r->env.writers;
	unsigned s = (unsigned)((w + W - g % W) % W);

	if (g % 8 >= 6 || s >= PIT_BPG / PIT_STRIPE)
		return UINT64_MAX;
	return g * PIT_BPG + s * PIT_STRIPE;
}

static uint32_t send_cmd(struct sc *sc, unsigned idx, unsigned thread, enum fm_io_op op,
			 uint64_t block, uint32_t nblk, enum pit_step slow, uint32_t slow_ms)
{
	struct pit_cmd c = {
		.id = ++sc->next_id, .op = (uint8_t)op, .thread = (uint8_t)thread,
		.slow_step = slow_ms ? (uint8_t)(slow + 1) : 0, .map = SC_MAP, .nblk = nblk,
		.block = block, .slow_ms = slow_ms,
	};

	if (write(sc->r->kids[idx].cmd_fd, &c, sizeof(c)) != (ssize_t)sizeof(c))
		pit_say(sc->r, "command to client %u: %s", idx, strerror(errno));
	return c.id;
}

/* the answer to command id from client idx; rc -ETIMEDOUT if none */
static struct pit_reply wait_reply(struct sc *sc, unsigned idx, uint32_t id, int timeout_ms)
{
	struct pit_reply rep = { .id = id, .rc = -ETIMEDOUT };
	uint64_t end = pit_now_ns() + (uint64_t)timeout_ms * 1000000;

	for (unsigned i = 0; i < sc->nearly[idx]; i++)
		if (sc->stash[idx][i].id == id) {
			rep = sc->stash[idx][i];
			sc->stash[idx][i] = sc->stash[idx][--sc->nearly[idx]];
			return rep;
		}
	while (pit_now_ns() < end) {
		struct pollfd p = { .fd = sc->r->kids[idx].reply_fd, .events = POLLIN };
		struct pit_reply got;

		if (p.fd < 0 || poll(&p, 1, 10) < 0)
			break;
		if (!(p.revents & (POLLIN | POLLHUP)))
			continue;
		if (read(p.fd, &got, sizeof(got)) != (ssize_t)sizeof(got))
			break;
		if (got.id == id)
			return got;
		if (sc->nearly[idx] < 16)
			sc->stash[idx][sc->nearly[idx]++] = got;
	}
	return rep;
}

static int io_sync(struct sc *sc, unsigned idx, unsigned thread, enum fm_io_op op,
		   uint64_t block, uint32_t nblk)
{
	struct pit_reply rep = wait_reply(sc, idx, send_cmd(sc, idx, thread, op, block, nblk, 0, 0),
					  20000);

	if (rep.rc)
		pit_say(sc->r, "client %u: %s of blocks %" PRIu64 "+%u: %d", idx,
			fm_io_op_name(op), block, nblk, rep.rc);
	return rep.rc;
}

/* wait until `n` threads of client idx are inside a slow step */
static bool wait_slow(struct pit_run *r, unsigned idx, int n, int timeout_ms)
{
	uint64_t end = pit_now_ns() + (uint64_t)timeout_ms * 1000000;

	while (atomic_load(&r->env.sh->c[idx].in_slow) < n)
		if (pit_now_ns() > end)
			return false;
		else
			pit_sleep_ms(1);
	return true;
}

static double ms_since(uint64_t t)
{
	return (double)(pit_now_ns() - t) / 1e6;
}

/* both clients write their stripes of grain g's source before the trigger */
static int pre_trigger(struct sc *sc, uint64_t g)
{
	int rc = 0;

	for (unsigned w = 0; w < sc->r->env.writers; w++) {
		uint64_t b = stripe_of(sc->r, w, g);

		if (b != UINT64_MAX)
			rc |= io_sync(sc, w / sc->r->cfg->threads, w % sc->r->cfg->threads,
				      FM_IO_WRITE_SOURCE, b, PIT_STRIPE);
	}
	return rc;
}

static int setup(struct sc *sc, const uint64_t *grains, unsigned ngrains)
{
	struct pit_run *r = sc->r;

	if (pit_owner_start(r) || pit_maps_setup(r))
		return -1;
	for (unsigned i = 0; i < 2; i++)
		if (pit_child_start(r, i, PIT_CLIENT_SCRIPTED) || !pit_wait_ready(r, i, 30000)) {
			pit_say(r, "client %u did not come up", i);
			return -1;
		}
	for (unsigned i = 0; i < ngrains; i++)
		if (pre_trigger(sc, grains[i]))
			return -1;
	for (unsigned m = 0; m < r->env.nmaps; m++)
		if (pit_trigger(r, m, "map-start"))
			return -1;
	return 0;
}

static void stop_scripted(struct pit_run *r)
{
	for (unsigned i = 0; i < 2; i++) {
		if (r->kids[i].cmd_fd >= 0) {
			close(r->kids[i].cmd_fd); /* EOF: the client finishes and exits */
			r->kids[i].cmd_fd = -1;
		}
		(void)pit_child_wait(r, i, 30000);
	}
}

/* ------------------------------------------------------- restart-race */

static int restart_round(struct sc *sc, uint64_t g, enum pit_step a_step, enum fm_io_op b_op,
			 const char *what)
{
	struct pit_run *r = sc->r;
	uint32_t slow = r->cfg->slow_ms;
	uint64_t ba = stripe_of(r, 0, g), bb = stripe_of(r, 2, g), t_kill, t_up;
	uint32_t ida, idb;
	struct pit_reply ra, rb;
	bool a_inside;

	atomic_store(&r->env.sh->gate[A], 0);
	ida = send_cmd(sc, A, 0, FM_IO_WRITE_SOURCE, ba, PIT_STRIPE, a_step, slow);
	if (!wait_slow(r, A, 1, 10000)) {
		pit_say(r, "restart-race: A never reached its slow step");
		return 0;
	}
	t_kill = pit_now_ns();
	pit_owner_kill(r, SIGKILL);
	if (pit_owner_start(r))
		return -1;
	t_up = pit_now_ns();
	r->fs.n[PIT_F_OWNER_KILL]++;
	r->fs.owner_kill_in_slow++;
	idb = send_cmd(sc, B, 0, b_op, bb, PIT_STRIPE, 0, 0);
	rb = wait_reply(sc, B, idb, 20000);
	a_inside = atomic_load(&r->env.sh->c[A].in_slow) > 0;
	pit_say(r, "restart-race %s: owner down %.1f ms; B's %s of grain %" PRIu64
		" %s %.1f ms after the restart, A %s inside its %s step", what,
		(double)(t_up - t_kill) / 1e6, fm_io_op_name(b_op), g,
		rb.rc ? "FAILED" : "acked", (double)(rb.t_end_ns - t_up) / 1e6,
		a_inside ? "still" : "no longer", pit_step_name(a_step));
	atomic_store(&r->env.sh->gate[A], 1); /* A: finish the copy now */
	ra = wait_reply(sc, A, ida, 20000);
	pit_say(r, "restart-race %s: A's source write of grain %" PRIu64 ": rc %d, %.1f ms after "
		"the kill", what, g, ra.rc, ms_since(t_kill));
	return a_inside && rb.rc == 0 ? 1 : 0;
}

static int restart_race(struct sc *sc)
{
	struct pit_run *r = sc->r;
	const uint64_t g[2] = { 8, 16 };
	int reached = 0, rc;

	if (setup(sc, g, 2))
		return -1;
	rc = restart_round(sc, g[0], PIT_STEP_COPY_READ, FM_IO_WRITE_SOURCE,
			   "round 1 (A stalls before reading the source)");
	if (rc < 0)
		return -1;
	reached += rc;
	rc = restart_round(sc, g[1], PIT_STEP_COPY_WRITE, FM_IO_WRITE_TARGET,
			   "round 2 (A stalls between reading the source and writing the copy)");
	if (rc < 0)
		return -1;
	reached += rc;
	stop_scripted(r);
	return reached;
}

/* --------------------------------------------------------- stall-race */

/* a connection to the owner's control socket that can tell "the owner's
 * loop is blocked" (no answer to status within wait_ms) */
static int probe_open(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	size_t len = strlen(path);
	int fd;

	if (len >= sizeof(sa.sun_path))
		return -1;
	memcpy(sa.sun_path, path, len + 1);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa))) {
		close(fd);
		fd = -1;
	}
	return fd;
}

/* 1: blocked (no answer within wait_ms), 0: answered (*fences: the
 * owner's fence count, -1 if not shown), -1: error */
static int probe_status(int fd, int wait_ms, long *fences)
{
	char buf[8192];
	size_t used = 0;
	uint64_t end;

	if (write(fd, "status\n", 7) != 7)
		return -1;
	end = pit_now_ns() + (uint64_t)wait_ms * 1000000;
	for (;;) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		int64_t left = (int64_t)(end - pit_now_ns()) / 1000000;
		ssize_t n;

		if (left <= 0 || poll(&p, 1, (int)left) == 0)
			return 1;
		n = read(fd, buf + used, sizeof(buf) - 1 - used);
		if (n <= 0)
			return -1;
		used += (size_t)n;
		buf[used] = '\0';
		if (strstr(buf, "\nok\n") || !strncmp(buf, "ok\n", 3)) {
			const char *f = strstr(buf, " fences ");

			*fences = f ? atol(f + 8) : -1;
			return 0;
		}
		if (used > sizeof(buf) - 2)
			used = 0;
	}
}

static int stall_race(struct sc *sc)
{
	struct pit_run *r = sc->r;
	const uint64_t g[2] = { 8, 16 };
	uint32_t lease = r->cfg->lease_ms, slow = r->cfg->slow_ms > 10 * lease ? r->cfg->slow_ms
									       : 10 * lease;
	uint64_t t_stop, t_cont;
	uint32_t ida0, ida1, idb0, idb1;
	struct pit_reply ra0, ra1, rb0, rb1;
	struct pit_child *ka = &r->kids[A];
	bool blocked = false, counted = false, alive;
	long base = -1;
	int st, pfd;

	if (setup(sc, g, 2))
		return -1;
	atomic_store(&r->env.sh->gate[A], 0);
	ida0 = send_cmd(sc, A, 0, FM_IO_WRITE_SOURCE, stripe_of(r, 0, g[0]), PIT_STRIPE,
			PIT_STEP_COPY_READ, slow);
	ida1 = send_cmd(sc, A, 1, FM_IO_WRITE_SOURCE, stripe_of(r, 1, g[1]), PIT_STRIPE,
			PIT_STEP_COPY_WRITE, slow);
	if (!wait_slow(r, A, 2, 10000)) {
		pit_say(r, "stall-race: A's threads never reached their slow steps");
		return 0;
	}
	ka->stopped = true;
	kill(ka->pid, SIGSTOP);
	t_stop = pit_now_ns();
	r->fs.n[PIT_F_CLIENT_STOP]++;
	r->fs.stop_in_copy++;
	idb0 = send_cmd(sc, B, 0, FM_IO_WRITE_SOURCE, stripe_of(r, 2, g[0]), PIT_STRIPE, 0, 0);
	idb1 = send_cmd(sc, B, 1, FM_IO_WRITE_TARGET, stripe_of(r, 3, g[1]), PIT_STRIPE, 0, 0);
	/* find the owner's fence of A, which asks A to close before it kills:
	 * either the owner's loop stops answering while it waits for A (an
	 * owner whose fence blocks), or its fence count goes up (one whose
	 * fence does not) -- then A must answer now */
	pit_sleep_ms(lease * 7 / 10);
	pfd = probe_open(r->ctl);
	while (pfd >= 0 && ms_since(t_stop) < 2.0 * lease) {
		long f = -1;
		int p = probe_status(pfd, 40, &f);

		if (p == 0 && f >= 0 && base < 0)
			base = f;
		if (p != 0 || (f >= 0 && base >= 0 && f > base)) {
			blocked = p == 1;
			counted = p == 0;
			break;
		}
		pit_sleep_ms(2);
	}
	if (pfd >= 0)
		close(pfd);
	kill(ka->pid, SIGCONT);
	t_cont = pit_now_ns();
	pit_say(r, "stall-race: A stopped %.0f ms (%.2f x lease), SIGCONT %s",
		(double)(t_cont - t_stop) / 1e6, (double)(t_cont - t_stop) / 1e6 / lease,
		blocked ? "while the owner waited in its fence" :
		counted ? "as soon as the owner counted its fence" : "without seeing the fence");
	pit_sleep_ms(400);
	alive = waitpid(ka->pid, &st, WNOHANG) == 0;
	ka->stopped = false;
	if (!alive) {
		pit_say(r, "stall-race: A did not survive (%s %d): fenced dead -- safe, the race "
			"was not reached", WIFSIGNALED(st) ? "signal" : "exit",
			WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st));
		r->fs.stop_fenced++;
		r->incs[ka->inc_slot].end_ns = pit_now_ns();
		r->incs[ka->inc_slot].status = st;
		ka->pid = 0;
		close(ka->cmd_fd);
		close(ka->reply_fd);
		ka->cmd_fd = ka->reply_fd = -1;
	} else {
		r->fs.stop_survived++;
	}
	rb0 = wait_reply(sc, B, idb0, 20000);
	rb1 = wait_reply(sc, B, idb1, 20000);
	pit_say(r,
		"stall-race: B's source write of grain %" PRIu64 ": rc %d at +%.0f ms; "
		"target write of grain %" PRIu64 ": rc %d at +%.0f ms (from the stop)",
		g[0], rb0.rc, (double)(rb0.t_end_ns - t_stop) / 1e6, g[1], rb1.rc,
		(double)(rb1.t_end_ns - t_stop) / 1e6);
	if (alive) {
		bool a_inside = atomic_load(&r->env.sh->c[A].in_slow) > 0;

		atomic_store(&r->env.sh->gate[A], 1); /* A: finish the copies now */
		ra0 = wait_reply(sc, A, ida0, 20000);
		ra1 = wait_reply(sc, A, ida1, 20000);
		pit_say(r,
			"stall-race: A survived its fence; its copies ended at +%.0f / +%.0f ms "
			"(rc %d / %d), %s B's writes were acked",
			(double)(ra0.t_end_ns - t_stop) / 1e6,
			(double)(ra1.t_end_ns - t_stop) / 1e6, ra0.rc, ra1.rc,
			a_inside ? "after" : "before");
		stop_scripted(r);
		return a_inside && rb0.rc == 0 && rb1.rc == 0 ? 1 : 0;
	}
	stop_scripted(r);
	return 0;
}

int pit_scenario_run(struct pit_run *r)
{
	struct sc sc = { .r = r };

	if (!strcmp(r->cfg->scenario, "restart-race"))
		return restart_race(&sc);
	if (!strcmp(r->cfg->scenario, "stall-race"))
		return stall_race(&sc);
	fprintf(stderr, "fm-pit: unknown scenario '%s' (restart-race, stall-race)\n",
		r->cfg->scenario);
	return -1;
}
