/* faults.c -- the fault schedule of a random run.
 *
 * Faults come in rounds: each round is every enabled kind, `weight` times,
 * in an order shuffled from the seed.  Every fault draws the same number
 * of values from the seeded generator whatever happens at run time, so
 * the same seed gives the same schedule (kinds, victims, variants,
 * lengths, pauses); only where in a client's I/O a fault lands depends on
 * timing.  Kinds and their variants:
 *
 *   client-kill   SIGKILL a client: at once / once it holds a grain lock
 *                 mid-copy (in_copy) / once it is inside a slow storage
 *                 step; then start it again with the same client id.
 *   owner-kill    SIGKILL the owner: at once / while a client is inside
 *                 commit_split / while a client is inside a slow storage
 *                 step (or mid-copy without slow steps); restart it after
 *                 0..300 ms from the same pool.
 *   client-stop   SIGSTOP a client for a length drawn from the stop bands
 *                 (x lease; default 0.5..3) (at
 *                 once or once it is mid-copy), then SIGCONT.  The owner
 *                 may fence (on shm: kill) it meanwhile: expected, counted,
 *                 and the client is started again.
 *   retrigger     map-restart of a mapping under load: a new generation.
 *                 A mapping the background copy finished (--copy-rate:
 *                 idle_or_copied, no copy-on-write any more) is prepared
 *                 and started again instead, so it is checked again.
 *
 * The parent runs one fault at a time and reaps/restarts clients while it
 * waits.
 */
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "run.h"

static const char *const fault_names[PIT_F_KINDS] = {
	[PIT_F_CLIENT_KILL] = "client-kill", [PIT_F_OWNER_KILL] = "owner-kill",
	[PIT_F_CLIENT_STOP] = "client-stop", [PIT_F_RETRIGGER] = "retrigger",
};

const char *pit_fault_name(enum pit_fault_kind k)
{
	return (unsigned)k < PIT_F_KINDS ? fault_names[k] : "?";
}

/* one fault, fully drawn before it runs */
struct fault {
	enum pit_fault_kind kind;
	uint32_t gap_ms;
	unsigned client, variant, map;
	double stop_x;           /* client-stop: x lease */
	uint32_t down_ms;        /* owner-kill: time without an owner */
};

static enum pit_fault_kind next_kind(struct pit_run *r)
{
	static enum pit_fault_kind round[64];
	static unsigned n, pos;

	if (pos == n) {
		n = pos = 0;
		for (int k = 0; k < PIT_F_KINDS; k++)
			for (unsigned w = 0; w < r->cfg->weight[k] && n < 64; w++)
				round[n++] = (enum pit_fault_kind)k;
		for (unsigned i = n; i > 1; i--) {
			unsigned j = (unsigned)pit_rnd_below(&r->rng, i);
			enum pit_fault_kind t = round[i - 1];

			round[i - 1] = round[j];
			round[j] = t;
		}
	}
	return round[pos++];
}

static struct fault draw(struct pit_run *r)
{
	const struct pit_cfg *cfg = r->cfg;
	struct fault f;

	f.kind = next_kind(r);
	f.gap_ms = cfg->fault_gap_ms / 2 + (uint32_t)pit_rnd_below(&r->rng, cfg->fault_gap_ms + 1);
	f.client = (unsigned)pit_rnd_below(&r->rng, cfg->clients);
	f.variant = (unsigned)pit_rnd_below(&r->rng, 3);
	f.map = (unsigned)pit_rnd_below(&r->rng, r->env.nmaps);
	{ /* uniform over the union of the bands */
		double width = 0, u;

		for (unsigned i = 0; i < cfg->stop_bands; i++)
			width += cfg->stop_hi[i] - cfg->stop_lo[i];
		u = width * (double)pit_rnd_below(&r->rng, 1001) / 1000.0;
		f.stop_x = cfg->stop_lo[0];
		for (unsigned i = 0; i < cfg->stop_bands; i++) {
			double w = cfg->stop_hi[i] - cfg->stop_lo[i];

			if (u <= w || i + 1 == cfg->stop_bands) {
				f.stop_x = cfg->stop_lo[i] + (u < w ? u : w);
				break;
			}
			u -= w;
		}
	}
	f.down_ms = (uint32_t)pit_rnd_below(&r->rng, 301);
	return f;
}

enum aim { AIM_COPY, AIM_SLOW, AIM_COMMIT };

static bool aimed(const struct pit_run *r, int client, enum aim what)
{
	for (unsigned i = 0; i < r->cfg->clients; i++) {
		const struct pit_cshared *cs = &r->env.sh->c[i];

		if (client >= 0 && (unsigned)client != i)
			continue;
		if (r->kids[i].pid <= 0 || r->kids[i].stopped)
			continue;
		if ((what == AIM_COPY && atomic_load(&cs->in_copy) > 0) ||
		    (what == AIM_SLOW && atomic_load(&cs->in_slow) > 0) ||
		    (what == AIM_COMMIT && atomic_load(&cs->in_commit) > 0))
			return true;
	}
	return false;
}

/* wait up to aim_ms for the moment; true if it came */
static bool aim(struct pit_run *r, int client, enum aim what)
{
	uint64_t end = pit_now_ns() + (uint64_t)r->cfg->aim_ms * 1000000;
	unsigned spins = 0;

	while (pit_now_ns() < end) {
		if (aimed(r, client, what))
			return true;
		if (++spins % 64 == 0)
			pit_reap(r);
		for (volatile int i = 0; i < 2000; i++)
			; /* a few microseconds: the moments are short */
	}
	return false;
}

static int fences(struct pit_run *r)
{
	char out[4096];
	const char *p;

	if (pit_ctl(r, out, sizeof(out), "status"))
		return -1;
	p = strstr(out, " fences ");
	return p ? atoi(p + 8) : -1;
}

static void client_kill(struct pit_run *r, const struct fault *f)
{
	const char *how = "at once";

	if (f->variant == 1 && aim(r, (int)f->client, AIM_COPY)) {
		how = "holding a grain lock mid-copy";
		r->fs.client_kill_in_copy++;
	} else if (f->variant == 2 && r->cfg->slow_pct && aim(r, (int)f->client, AIM_SLOW)) {
		how = "inside a slow storage step";
		r->fs.client_kill_in_slow++;
	}
	pit_child_kill(r, f->client);
	pit_say(r, "fault client-kill: client %u %s", f->client, how);
	(void)pit_child_start(r, f->client, PIT_CLIENT_RANDOM);
}

static void owner_kill(struct pit_run *r, const struct fault *f)
{
	const char *how = "at once";

	if (f->variant == 1 && aim(r, -1, AIM_COMMIT)) {
		how = "while a client commits a split";
		r->fs.owner_kill_in_commit++;
	} else if (f->variant == 2 && r->cfg->slow_pct && aim(r, -1, AIM_SLOW)) {
		how = "while a client is inside a slow storage step";
		r->fs.owner_kill_in_slow++;
	} else if (f->variant == 2 && !r->cfg->slow_pct && aim(r, -1, AIM_COPY)) {
		how = "while a client holds a grain lock mid-copy";
		r->fs.owner_kill_in_copy++;
	}
	pit_owner_kill(r, SIGKILL);
	pit_say(r, "fault owner-kill: %s; down %u ms", how, f->down_ms);
	pit_idle(r, f->down_ms);
	if (pit_owner_start(r)) {
		pit_say(r, "owner restart failed: retrying");
		pit_idle(r, 200);
		if (pit_owner_start(r))
			r->owner_deaths++;
	}
}

static void client_stop(struct pit_run *r, const struct fault *f)
{
	struct pit_child *k = &r->kids[f->client];
	uint32_t ms = (uint32_t)(f->stop_x * r->cfg->lease_ms);
	int before, after, st;
	bool in_copy = false;

	if (k->pid <= 0)
		return;
	if (f->variant != 0 && aim(r, (int)f->client, AIM_COPY)) {
		in_copy = true;
		r->fs.stop_in_copy++;
	}
	before = fences(r);
	k->stopped = true;
	kill(k->pid, SIGSTOP);
	pit_idle(r, ms);
	kill(k->pid, SIGCONT);
	/* the owner may be inside its fence of k: give it the window (300 ms) */
	pit_idle(r, 400);
	after = fences(r);
	if (waitpid(k->pid, &st, WNOHANG) == k->pid) {
		k->stopped = WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL; /* the fence */
		if (k->stopped)
			r->fs.stop_fenced++;
		else {
			pit_say(r, "client %u.%u: %s %d after SIGSTOP/SIGCONT", k->idx, k->inc,
				WIFEXITED(st) ? "exit" : "signal",
				WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
			r->client_deaths++;
		}
		pit_say(r, "fault client-stop: client %u %s for %u ms (%.2f x lease): %s",
			f->client, in_copy ? "mid-copy" : "at once", ms, f->stop_x,
			k->stopped ? "fenced (killed) by the owner" : "died");
		{
			struct pit_inc *inc = &r->incs[k->inc_slot];

			inc->end_ns = pit_now_ns();
			inc->status = st;
		}
		k->pid = 0;
		k->stopped = false;
		(void)pit_child_start(r, f->client, PIT_CLIENT_RANDOM);
		return;
	}
	k->stopped = false;
	if (before >= 0 && after > before && f->stop_x > 1.0)
		r->fs.stop_survived++;
	pit_say(r, "fault client-stop: client %u %s for %u ms (%.2f x lease): alive%s", f->client,
		in_copy ? "mid-copy" : "at once", ms, f->stop_x,
		before >= 0 && after > before ? ", a session was fenced meanwhile" : "");
}

/* the background copy finished map m: idle_or_copied (map-show) */
static bool copied(struct pit_run *r, unsigned m)
{
	char out[4096];

	return r->cfg->copy_rate &&
	       pit_ctl(r, out, sizeof(out), "map-show %" PRIu64, r->env.maps[m].id) == 0 &&
	       strstr(out, " state idle_or_copied ");
}

void pit_fault_next(struct pit_run *r)
{
	struct fault f = draw(r);
	char out[4096];

	pit_idle(r, f.gap_ms);
	if (atomic_load(&r->env.sh->stop))
		return;
	switch (f.kind) {
	case PIT_F_CLIENT_KILL:
		client_kill(r, &f);
		break;
	case PIT_F_OWNER_KILL:
		owner_kill(r, &f);
		break;
	case PIT_F_CLIENT_STOP:
		client_stop(r, &f);
		break;
	case PIT_F_RETRIGGER: {
		bool again = copied(r, f.map) &&
			     pit_ctl(r, out, sizeof(out), "map-prepare %" PRIu64,
				     r->env.maps[f.map].id) == 0;

		if (pit_trigger(r, f.map, again ? "map-start" : "map-restart"))
			r->fs.retrigger_failed++;
		else
			pit_say(r, "fault retrigger: map %" PRIu64 " now generation %" PRIu64 "%s",
				r->env.maps[f.map].id, r->trig[r->ntrig - 1].gen,
				again ? " (it was copied: prepared and started again)" : "");
		break;
	}
	default:
		return;
	}
	r->fs.n[f.kind]++;
}
