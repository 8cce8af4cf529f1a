/* test_service.c -- the owner daemon and the client agent as real processes.
 *
 * Usage: test_service SCENARIO --owner PATH [--provider shm|verbs --addr A]
 * (or FM_OWNER_BIN / FM_PROVIDER / FM_ADDR).  Each scenario spawns the real
 * flashmeta-owner on a pool in a temp dir and forks client processes that
 * use fm_agent.  Scenarios: roundtrip, client-kill, client-stall, owner-kill, wrong-key,
 * garbage, snapshot, engines (one agent, several engine threads), grace-kill,
 * owner-stall.
 * Exit 0 = pass.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "flashmeta/agent.h"
#include "flashmeta/engine.h"
#include "flashmeta/fence_table.h"
#include "flashmeta/error.h"
#include "flashmeta/transport.h"
#include "flashmeta/wire.h"
#include "svc_util.h"
#include "svc_vols.h"

#define MAP 1
#define GRAIN 4096u
#define GRAINS 256u
#define VOL ((uint64_t)GRAIN * GRAINS)
#define NCLIENT 3

static void setup_map(struct svc *s, bool start)
{
	char out[4096];

	if (svc_ctl(s, out, sizeof(out), "map-create %d 1 2 %" PRIu64 " %u", MAP, VOL, GRAIN))
		DIE("map-create: %s", out);
	if (svc_ctl(s, out, sizeof(out), "map-prepare %d", MAP))
		DIE("map-prepare: %s", out);
	if (start && svc_ctl(s, out, sizeof(out), "map-start %d", MAP))
		DIE("map-start: %s", out);
}

static struct fm_agent *join(struct svc *s, uint32_t id)
{
	struct fm_agent *a = svc_agent(s, id, NULL);

	if (fm_agent_wait_active(a, 8000))
		DIE("client %u: no session: %s", id, fm_errormsg());
	return a;
}

/* ================================================================ roundtrip
 * lock / fetch / split with the cache; lock contention hand-off between
 * processes; the agent's list of held locks (since, token), also read from
 * another thread; the restart flow (release request -> discard -> new
 * generation -> grains read as unsplit again). */

/* the agent holds exactly one word, grain g's, taken within [t0, t1] in
 * the current session, `count` times */
static int held_only(struct fm_agent *a, uint64_t g, uint64_t t0, uint64_t t1, unsigned count)
{
	struct fm_agent_held h[4];
	uint64_t token = fm_agent_token(a);

	CHECK(fm_agent_locks(a, h, 4) == 1);
	CHECK(h[0].map_id == MAP && h[0].first <= g && g <= h[0].last);
	CHECK(h[0].word_index == g && h[0].first == g && h[0].last == g); /* lock_shift 0 */
	CHECK(h[0].since_ms >= t0 && h[0].since_ms <= t1);
	CHECK(token != 0 && h[0].token == token && h[0].epoch == (uint32_t)token);
	CHECK(h[0].count == count);
	CHECK(fm_agent_locks(a, NULL, 0) == 1); /* the count without room */
	return 0;
}

static void *locks_from_thread(void *arg)
{
	struct fm_agent_held h[4];

	return (void *)(intptr_t)fm_agent_locks(arg, h, 4);
}

static int rt_child(struct svc *s, int idx, int rfd, int wfd, void *arg)
{
	(void)arg;
	struct fm_agent *a = join(s, (uint32_t)idx + 1);
	struct fm_agent_map m;
	struct fm_agent_stats st;
	struct fm_agent_held h;
	uint64_t g = 10 + (uint64_t)idx, run = 0, t0, t1, since;
	pthread_t th;
	void *other;
	int rc;

	CHECK(svc_wait_gen(a, MAP, 1) == 0);
	CHECK(fm_agent_map_get(a, MAP, &m) == 0 && m.state == FM_MAP_COPYING);
	CHECK(fm_agent_locks(a, &h, 1) == 0);
	/* own grain: unsplit -> lock -> commit -> split, cached */
	CHECK(fm_agent_is_split(a, MAP, g) == 0);
	t0 = mono_ms();
	CHECK(fm_agent_lock(a, MAP, g) == 0);
	t1 = mono_ms();
	CHECK(held_only(a, g, t0, t1, 1) == 0);
	/* another thread of the agent sees it too */
	CHECK(pthread_create(&th, NULL, locks_from_thread, a) == 0);
	CHECK(pthread_join(th, &other) == 0 && (intptr_t)other == 1);
	/* re-entry: one word, two counts, the first acquisition's time */
	fm_agent_locks(a, &h, 1);
	since = h.since_ms;
	usleep(20000);
	CHECK(fm_agent_lock(a, MAP, g) == 0);
	CHECK(held_only(a, g, since, since, 2) == 0);
	CHECK(fm_agent_unlock(a, MAP, g) == 0);
	CHECK(held_only(a, g, since, since, 1) == 0);
	CHECK(fm_agent_commit_split(a, MAP, g) == 0);
	CHECK(fm_agent_locks(a, &h, 1) == 0); /* the commit gave it back */
	CHECK(fm_cache_lookup(fm_agent_cache(a), MAP, g, &run) && run >= 1);
	CHECK(fm_agent_is_split(a, MAP, g) == 1);
	/* contended grain 100: client 0 holds it, the others queue */
	if (idx == 0) {
		CHECK(fm_agent_lock(a, MAP, 100) == 0);
		sig_send(wfd, 'L');
		CHECK(sig_wait(rfd, 10000) == 'G'); /* others are waiting */
		usleep(200000);
		CHECK(fm_agent_commit_split(a, MAP, 100) == 0);
	} else {
		CHECK(sig_wait(rfd, 10000) == 'G');
		t0 = mono_ms();
		rc = fm_agent_lock(a, MAP, 100); /* blocks until client 0 commits */
		t1 = mono_ms();
		CHECK(rc == 1);                  /* ... and it is split by then */
		/* handed over by the owner: since is the hand-over, not the call */
		CHECK(held_only(a, 100, t0, t1, 1) == 0);
		fm_agent_locks(a, &h, 1);
		fprintf(stderr, "client %d: grain 100 after %" PRIu64 " ms, held since %" PRIu64
			" ms before the call returned\n", idx + 1, t1 - t0, t1 - h.since_ms);
		CHECK(fm_agent_unlock(a, MAP, 100) == 0);
		CHECK(fm_agent_locks(a, &h, 1) == 0);
	}
	/* everybody sees the other clients' splits through a fetch */
	sig_send(wfd, 'S');
	CHECK(sig_wait(rfd, 10000) == 'F');
	for (int i = 0; i < NCLIENT; i++)
		CHECK(fm_agent_is_split(a, MAP, 10 + (uint64_t)i) == 1);
	sig_send(wfd, 'R');
	/* the parent restarts the mapping: new generation, nothing split */
	CHECK(sig_wait(rfd, 15000) == 'N');
	CHECK(svc_wait_gen(a, MAP, 2) == 0);
	CHECK(!fm_cache_lookup(fm_agent_cache(a), MAP, g, NULL));
	CHECK(fm_agent_is_split(a, MAP, g) == 0);
	CHECK(fm_agent_is_split(a, MAP, 100) == 0);
	fm_agent_stats(a, &st);
	CHECK(st.releases >= 1);
	fm_agent_delete(&a);
	return 0;
}

static int sc_roundtrip(struct svc *s)
{
	struct child c[NCLIENT];
	char out[8192];
	int fails = 0;

	svc_owner_start(s);
	setup_map(s, true);
	for (int i = 0; i < NCLIENT; i++)
		child_start(s, &c[i], i, rt_child, NULL);
	CHECK(sig_wait(c[0].from[0], 10000) == 'L');
	for (int i = 0; i < NCLIENT; i++)
		sig_send(c[i].to[1], 'G');
	for (int i = 0; i < NCLIENT; i++)
		CHECK(sig_wait(c[i].from[0], 15000) == 'S');
	for (int i = 0; i < NCLIENT; i++)
		sig_send(c[i].to[1], 'F');
	for (int i = 0; i < NCLIENT; i++)
		CHECK(sig_wait(c[i].from[0], 15000) == 'R');
	CHECK(svc_ctl(s, out, sizeof(out), "map-restart %d", MAP) == 0);
	fprintf(stderr, "%s", out);
	CHECK(strstr(out, "generation 2") != NULL);
	for (int i = 0; i < NCLIENT; i++)
		sig_send(c[i].to[1], 'N');
	for (int i = 0; i < NCLIENT; i++)
		fails += child_wait(&c[i], 20000) != 0;
	svc_ctl(s, out, sizeof(out), "status");
	fprintf(stderr, "%s", out);
	return fails;
}

/* ============================================================ client-kill
 * A client holding grain locks is SIGKILLed: after its lease the owner
 * fences it and reclaims its words; another client then gets them. */
static int ck_holder(struct svc *s, int idx, int rfd, int wfd, void *arg)
{
	(void)idx;
	(void)rfd;
	(void)arg;
	struct fm_agent *a = join(s, 1);

	CHECK(svc_wait_gen(a, MAP, 1) == 0);
	CHECK(fm_agent_lock(a, MAP, 5) == 0);
	CHECK(fm_agent_lock(a, MAP, 6) == 0);
	sig_send(wfd, 'L');
	pause(); /* killed here */
	return 0;
}

static int ck_taker(struct svc *s, int idx, int rfd, int wfd, void *arg)
{
	(void)idx;
	(void)arg;
	struct fm_agent *a = join(s, 2);
	uint64_t t0;

	CHECK(svc_wait_gen(a, MAP, 1) == 0);
	sig_send(wfd, 'J');
	int how = sig_wait(rfd, 10000);

	CHECK(how == 'K' || how == 'S');
	t0 = mono_ms();
	CHECK(fm_agent_lock(a, MAP, 5) == 0);
	CHECK(fm_agent_lock(a, MAP, 6) == 0);
	fprintf(stderr, "client-%s: locks reclaimed and granted after %" PRIu64 " ms\n",
		how == 'K' ? "kill" : "stall", mono_ms() - t0);
	if (how == 'S') /* only the lease (plus grace) can have freed them */
		CHECK(mono_ms() - t0 >= s->lease_ms / 2);
	CHECK(mono_ms() - t0 < 4u * s->lease_ms + 2000);
	CHECK(fm_agent_commit_split(a, MAP, 5) == 0);
	CHECK(fm_agent_unlock(a, MAP, 6) == 0);
	fm_agent_delete(&a);
	return 0;
}

static int ck_run(struct svc *s, int sig)
{
	struct child h, t;
	char out[8192];
	int rc;

	svc_owner_start(s);
	setup_map(s, true);
	child_start(s, &h, 0, ck_holder, NULL);
	CHECK(sig_wait(h.from[0], 10000) == 'L');
	child_start(s, &t, 1, ck_taker, NULL);
	CHECK(sig_wait(t.from[0], 10000) == 'J');
	/* SIGKILL: the transport sees the peer die at once.  SIGSTOP: nothing
	 * is seen; only the lease running out fences the holder. */
	kill(h.pid, sig);
	if (sig == SIGKILL)
		child_wait(&h, 5000);
	sig_send(t.to[1], sig == SIGSTOP ? 'S' : 'K');
	rc = child_wait(&t, 20000);
	if (sig == SIGSTOP) {
		kill(h.pid, SIGKILL);
		child_wait(&h, 5000);
	}
	svc_ctl(s, out, sizeof(out), "status");
	fprintf(stderr, "%s", out);
	CHECK(strstr(out, "reclaimed 0 ") == NULL);
	return rc != 0;
}

static int sc_client_kill(struct svc *s)
{
	return ck_run(s, SIGKILL);
}

/* ============================================================ reclaim-big
 * Finding 3 of the safety issue: on a map of more than 512 grains the
 * reclaim scan asked for more than the daemon's local READ buffer took,
 * the failure was ignored and "locks reclaimed" logged -- the dead
 * holder's word stayed held until the owner restarted.  A holder of a
 * word far into the lock table of an 8192-grain map is killed; a taker
 * must get the word. */
#define RB_MAP 2
#define RB_GRAINS 8192u
#define RB_GRAIN 8000u

static int rb_holder(struct svc *s, int idx, int rfd, int wfd, void *arg)
{
	(void)idx;
	(void)rfd;
	(void)arg;
	struct fm_agent *a = join(s, 1);
	struct fm_agent_map m;
	uint64_t end = mono_ms() + 8000;

	while (fm_agent_map_get(a, RB_MAP, &m) && mono_ms() < end)
		usleep(5000);
	CHECK(fm_agent_lock(a, RB_MAP, RB_GRAIN) == 0);
	sig_send(wfd, 'L');
	pause(); /* killed here */
	return 0;
}

static int rb_taker(struct svc *s, int idx, int rfd, int wfd, void *arg)
{
	(void)idx;
	(void)arg;
	struct fm_agent *a = join(s, 2);
	uint64_t t0;

	sig_send(wfd, 'J');
	CHECK(sig_wait(rfd, 10000) == 'K');
	t0 = mono_ms();
	CHECK(fm_agent_lock(a, RB_MAP, RB_GRAIN) == 0);
	fprintf(stderr, "reclaim-big: word %u of %u granted %" PRIu64 " ms after the kill\n",
		RB_GRAIN, RB_GRAINS, mono_ms() - t0);
	CHECK(fm_agent_unlock(a, RB_MAP, RB_GRAIN) == 0);
	fm_agent_delete(&a);
	return 0;
}

static int sc_reclaim_big(struct svc *s)
{
	struct child h, t;
	char out[8192];
	int rc;

	svc_owner_start(s);
	if (svc_ctl(s, out, sizeof(out), "map-create %d 3 4 %" PRIu64 " %u", RB_MAP,
		    (uint64_t)RB_GRAINS * GRAIN, GRAIN) ||
	    svc_ctl(s, out, sizeof(out), "map-prepare %d", RB_MAP) ||
	    svc_ctl(s, out, sizeof(out), "map-start %d", RB_MAP))
		DIE("map %d: %s", RB_MAP, out);
	child_start(s, &h, 0, rb_holder, NULL);
	CHECK(sig_wait(h.from[0], 10000) == 'L');
	child_start(s, &t, 1, rb_taker, NULL);
	CHECK(sig_wait(t.from[0], 10000) == 'J');
	kill(h.pid, SIGKILL);
	child_wait(&h, 5000);
	sig_send(t.to[1], 'K');
	rc = child_wait(&t, 20000);
	svc_ctl(s, out, sizeof(out), "status");
	fprintf(stderr, "%s", out);
	CHECK(strstr(out, "scan-failures 0 ") != NULL);
	return rc != 0;
}

/* ========================================================== client-stall
 * A lock holder stalls (SIGSTOP) with one lock CAS decided but not landed
 * -- the process stops itself inside fm_lane_post_cas, the moment a real stall
 * is dangerous.  Its lease runs out; the owner fences it and reclaims its
 * words; a taker gets them.  Then the holder is SIGCONTed: a fenced holder
 * is dead (shm: killed by the owner's fence; verbs: its QP is gone), so
 * its pending CAS never lands and it never believes it holds grain
 * CS_GRAIN.  Without a real fence it wakes up, its CAS lands on the free
 * word and it reports a lock the owner knows nothing about ('H').  The
 * owner's fence table (fence_table.h): raised to its incarnation at start,
 * and past the holder's token before the taker gets the words. */
#define CS_GRAIN 200 /* far from 5 and 6: its own lock word */

/* test seam (-Wl,--wrap=fm_lane_post_cas): armed, the next acquiring CAS
 * (expect 0) of this process stops the whole process before it lands */
int __real_fm_lane_post_cas(struct fm_lane *lane, const struct fm_region_desc *rd,
			    uint64_t off, uint64_t expect, uint64_t desired, void *ctx);
int __wrap_fm_lane_post_cas(struct fm_lane *lane, const struct fm_region_desc *rd,
			    uint64_t off, uint64_t expect, uint64_t desired, void *ctx);
/* armed and consumed by the engine thread (every lock CAS of the agent
 * runs on the calling thread's lane and passes here) */
static atomic_int cs_stall_armed;

int __wrap_fm_lane_post_cas(struct fm_lane *lane, const struct fm_region_desc *rd,
			    uint64_t off, uint64_t expect, uint64_t desired, void *ctx)
{
	if (expect == 0 && atomic_exchange(&cs_stall_armed, 0)) {
		kill(getpid(), SIGSTOP); /* stalled with this CAS pending */
	}
	return __real_fm_lane_post_cas(lane, rd, off, expect, desired, ctx);
}

static int cs_holder(struct svc *s, int idx, int rfd, int wfd, void *arg)
{
	(void)idx;
	(void)rfd;
	(void)arg;
	struct fm_agent *a = join(s, 1);
	int rc;

	struct fm_agent_stats st;

	CHECK(svc_wait_gen(a, MAP, 1) == 0);
	CHECK(fm_agent_lock(a, MAP, 5) == 0);
	CHECK(fm_agent_lock(a, MAP, 6) == 0);
	atomic_store(&cs_stall_armed, 1);
	fm_agent_stats(a, &st);
	sig_send(wfd, 'L');
	CHECK(write(wfd, &st.token, sizeof(st.token)) == (ssize_t)sizeof(st.token));
	rc = fm_agent_lock(a, MAP, CS_GRAIN); /* the process stops inside */
	/* reached only if the fence let this process live */
	sig_send(wfd, rc == 0 ? 'H' : 'E');
	fprintf(stderr, "client-stall: holder woke up, lock %d: %d\n", CS_GRAIN, rc);
	pause();
	return 0;
}

static int cs_taker(struct svc *s, int idx, int rfd, int wfd, void *arg)
{
	(void)idx;
	(void)arg;
	struct fm_agent *a = join(s, 2);
	uint64_t t0;

	CHECK(svc_wait_gen(a, MAP, 1) == 0);
	sig_send(wfd, 'J');
	CHECK(sig_wait(rfd, 10000) == 'S');
	t0 = mono_ms();
	CHECK(fm_agent_lock(a, MAP, 5) == 0);
	CHECK(fm_agent_lock(a, MAP, 6) == 0);
	fprintf(stderr, "client-stall: locks reclaimed and granted after %" PRIu64 " ms\n",
		mono_ms() - t0);
	CHECK(mono_ms() - t0 >= s->lease_ms / 2); /* only the lease freed them */
	CHECK(mono_ms() - t0 < 4u * s->lease_ms + 2000);
	sig_send(wfd, 'T');
	CHECK(sig_wait(rfd, 15000) == 'C');
	/* the holder's pending CAS never landed: the word is free */
	t0 = mono_ms();
	CHECK(fm_agent_lock(a, MAP, CS_GRAIN) == 0);
	CHECK(mono_ms() - t0 < 1000);
	CHECK(fm_agent_commit_split(a, MAP, 5) == 0);
	CHECK(fm_agent_unlock(a, MAP, 6) == 0);
	CHECK(fm_agent_unlock(a, MAP, CS_GRAIN) == 0);
	fm_agent_delete(&a);
	return 0;
}

static int sc_client_stall(struct svc *s)
{
	bool shm = strcmp(s->provider, "shm") == 0;
	struct child h, t;
	struct fm_fence_table *ft;
	siginfo_t si;
	char out[8192];
	uint64_t htok;
	int rc, woke, hs;

	svc_owner_start(s);
	setup_map(s, true);
	child_start(s, &h, 0, cs_holder, NULL);
	CHECK(sig_wait(h.from[0], 10000) == 'L');
	CHECK(read(h.from[0], &htok, sizeof(htok)) == (ssize_t)sizeof(htok) && htok);
	CHECK(fm_fence_table_open(s->fence, 0, &ft) == 0);
	/* the owner's start raised every client's floor to its incarnation */
	CHECK(fm_fence_table_floor(ft, 1) == (htok & ~UINT64_C(0xffffffff)));
	memset(&si, 0, sizeof(si)); /* stopped inside its CAS of CS_GRAIN */
	CHECK(waitid(P_PID, (id_t)h.pid, &si, WSTOPPED | WNOWAIT) == 0 && si.si_pid == h.pid);
	child_start(s, &t, 1, cs_taker, NULL);
	CHECK(sig_wait(t.from[0], 10000) == 'J');
	sig_send(t.to[1], 'S');
	CHECK(sig_wait(t.from[0], 20000) == 'T'); /* taker holds the reclaimed 5, 6 */
	/* before it reclaimed them, the owner refused the holder's session at
	 * the storage: a late write of it would be -EKEYREJECTED */
	CHECK(fm_fence_table_floor(ft, 1) == htok + 1);
	CHECK(fm_fence_table_enter(ft, 1, htok) == -EKEYREJECTED);
	CHECK(fm_fence_table_floor(ft, 2) < htok); /* the taker's is not touched */
	fm_fence_table_close(&ft);
	kill(h.pid, SIGCONT);
	woke = sig_wait(h.from[0], 2000);         /* -1: EOF, it is dead */
	if (woke == 'H')
		fprintf(stderr, "client-stall: DOUBLE HOLDER -- the stalled holder's CAS "
				"landed after it was fenced\n");
	CHECK(woke != 'H');
	if (shm) { /* the fence killed it; verbs: alive, but its QP is gone */
		kill(h.pid, SIGKILL); /* no-op when fenced; bounds the mutation run */
		hs = child_wait(&h, 5000);
		CHECK(woke == -1);
		CHECK(hs == 128 + SIGKILL);
	}
	sig_send(t.to[1], 'C');
	rc = child_wait(&t, 20000);
	if (!shm) {
		kill(h.pid, SIGKILL);
		child_wait(&h, 5000);
	}
	svc_ctl(s, out, sizeof(out), "status");
	fprintf(stderr, "%s", out);
	CHECK(strstr(out, "reclaimed 0 ") == NULL);
	return rc != 0;
}

/* ============================================================= owner-kill
 * SIGKILL the owner: clients stop trusting their caches; the owner comes
 * back from pmem; clients reconnect; every acked split is still split. */
static int ok_child(struct svc *s, int idx, int rfd, int wfd, void *arg)
{
	(void)arg;
	struct fm_agent *a = join(s, (uint32_t)idx + 1);
	struct fm_agent_stats st;
	uint64_t base = 20 + 40 * (uint64_t)idx;
	uint8_t bm[GRAINS / 8];

	CHECK(svc_wait_gen(a, MAP, 1) == 0);
	for (uint64_t g = base; g < base + 30; g++) {
		CHECK(fm_agent_lock(a, MAP, g) == 0);
		CHECK(fm_agent_commit_split(a, MAP, g) == 0);
	}
	CHECK(fm_cache_lookup(fm_agent_cache(a), MAP, base, NULL));
	sig_send(wfd, 'A');
	CHECK(sig_wait(rfd, 10000) == 'K'); /* owner killed */
	/* the session ends (peer died or lease lapse): confirmations gone */
	{
		uint64_t end = mono_ms() + 5000;

		do {
			fm_agent_stats(a, &st);
			if (st.closes >= 1)
				break;
			usleep(5000);
		} while (mono_ms() < end);
		CHECK(st.closes >= 1);
	}
	CHECK(!fm_cache_lookup(fm_agent_cache(a), MAP, base, NULL));
	sig_send(wfd, 'C');
	CHECK(sig_wait(rfd, 15000) == 'U'); /* owner back */
	CHECK(fm_agent_wait_active(a, 8000) == 0);
	CHECK(svc_wait_gen(a, MAP, 1) == 0);
	/* every acked split survived: fetched and via a raw bitmap READ */
	for (int i = 0; i < NCLIENT; i++)
		for (uint64_t g = 20 + 40 * (uint64_t)i; g < 20 + 40 * (uint64_t)i + 30; g++)
			CHECK(fm_agent_is_split(a, MAP, g) == 1);
	CHECK(fm_agent_read_bitmap(a, MAP, 0, bm, sizeof(bm)) == 0);
	for (uint64_t g = base; g < base + 30; g++)
		CHECK(bm[g / 8] >> (g % 8) & 1);
	CHECK(fm_agent_is_split(a, MAP, 0) == 0);
	fm_agent_stats(a, &st);
	CHECK(st.joins >= 2);
	fm_agent_delete(&a);
	return 0;
}

static int sc_owner_kill(struct svc *s)
{
	struct child c[NCLIENT];
	char out[8192];
	int fails = 0;

	svc_owner_start(s);
	setup_map(s, true);
	for (int i = 0; i < NCLIENT; i++)
		child_start(s, &c[i], i, ok_child, NULL);
	for (int i = 0; i < NCLIENT; i++)
		CHECK(sig_wait(c[i].from[0], 15000) == 'A');
	svc_owner_kill(s, SIGKILL);
	for (int i = 0; i < NCLIENT; i++)
		sig_send(c[i].to[1], 'K');
	for (int i = 0; i < NCLIENT; i++)
		CHECK(sig_wait(c[i].from[0], 10000) == 'C');
	svc_owner_start(s); /* from the same pool */
	CHECK(svc_ctl(s, out, sizeof(out), "map-show %d", MAP) == 0);
	fprintf(stderr, "after restart: %s", out);
	CHECK(strstr(out, "split 90") != NULL);
	for (int i = 0; i < NCLIENT; i++)
		sig_send(c[i].to[1], 'U');
	for (int i = 0; i < NCLIENT; i++)
		fails += child_wait(&c[i], 20000) != 0;
	return fails;
}

/* ============================================================= grace-kill
 * A lock asked for in the owner's restart grace waits for a lock table.
 * When that owner dies too, the wait must end at once (-ECONNRESET, or
 * -EAGAIN when the agent saw the map unusable first):
 * the I/O's bracket has to end so the agent can quiesce and join the next
 * owner (lease.h R3).  It used to wait out cfg.wait_ms (-ETIMEDOUT), and
 * the agent stayed away from the new owner all that time. */
struct grace_lock {
	struct fm_agent *a;
	int rc;
	char msg[256];
	atomic_bool done;
};

static void *grace_locker(void *arg)
{
	struct grace_lock *g = arg;

	g->rc = fm_agent_lock(g->a, MAP, 7);
	snprintf(g->msg, sizeof(g->msg), "%s", g->rc ? fm_errormsg() : "");
	atomic_store(&g->done, true);
	return NULL;
}

static int sc_grace_kill(struct svc *s)
{
	struct grace_lock g = { 0 };
	struct fm_agent_map m;
	pthread_t t;
	char out[4096];
	uint64_t t0;
	int rc;

	svc_owner_start(s);
	setup_map(s, true);
	g.a = join(s, 5);
	CHECK(svc_wait_gen(g.a, MAP, 1) == 0);
	/* the same pool: a restart grace.  The lock must be asked in it with
	 * time to spare: on a slow host (a TCG guest) the join and the grant
	 * can take most of it, so start over when less than 500 ms is left */
	for (int tries = 0;; tries++) {
		const char *gl;

		svc_owner_kill(s, SIGKILL);
		svc_owner_start(s);
		CHECK(fm_agent_wait_active(g.a, 8000) == 0);
		for (t0 = mono_ms(); fm_agent_map_get(g.a, MAP, &m) && mono_ms() < t0 + 8000;)
			usleep(2000);
		CHECK(svc_ctl(s, out, sizeof(out), "status") == 0);
		gl = strstr(out, "restart-grace-left-ms ");
		CHECK(gl != NULL);
		if (strtoull(gl + strlen("restart-grace-left-ms "), NULL, 10) >= 500)
			break;
		CHECK(tries < 5); /* never that much grace left: the host is too slow */
	}
	CHECK(pthread_create(&t, NULL, grace_locker, &g) == 0);
	usleep(100 * 1000); /* at least 500 ms of grace were left: still in it */
	CHECK(!atomic_load(&g.done));
	t0 = mono_ms();
	svc_owner_kill(s, SIGKILL);
	pthread_join(t, NULL);
	fprintf(stderr, "grace-kill: lock in the grace: %d (%s) %llu ms after the kill\n", g.rc,
		g.msg, (unsigned long long)(mono_ms() - t0));
	/* at once, with a transient error: the session broke (-ECONNRESET) or
	 * the map went unusable with it (-EAGAIN), whichever the agent saw
	 * first -- never the wait running out (-ETIMEDOUT after wait_ms) */
	CHECK(g.rc == -ECONNRESET || g.rc == -EAGAIN);
	/* and the agent joins the next owner, whose grace ends: the lock */
	svc_owner_start(s);
	CHECK(fm_agent_wait_active(g.a, 8000) == 0);
	t0 = mono_ms();
	do
		rc = fm_agent_lock(g.a, MAP, 7);
	while (rc == -ECONNRESET && mono_ms() < t0 + 8000);
	CHECK(rc == 0);
	CHECK(fm_agent_unlock(g.a, MAP, 7) == 0);
	fm_agent_delete(&g.a);
	return 0;
}

/* ============================================================ owner-stall
 * The owner's loop stalls (SIGSTOP: a busy host) past a lease term.  The
 * clients' leases lapse on their own clocks: each closes its session with
 * a quiesced BYE and joins again.  When the owner runs again it must read
 * what waits in its rings before it judges any lease, and each client's
 * new HELLO vouches for its lapsed session, so no session is fenced by a
 * kill.  (The BYE{QUIESCED} of a lapsed session sat behind spent credits
 * and died with its endpoint, the HELLO did not vouch because the BYE had
 * been "sent", and the owner SIGKILLed the client -- here, this test
 * process.) */
static int sc_owner_stall(struct svc *s)
{
	struct fm_agent *a[2];
	char out[8192], *p;

	svc_owner_start(s);
	setup_map(s, true);
	a[0] = join(s, 6);
	a[1] = join(s, 7);
	for (int round = 0; round < 4; round++) {
		CHECK(kill(s->owner, SIGSTOP) == 0);
		usleep(2 * s->lease_ms * 1000); /* both leases lapse meanwhile */
		CHECK(kill(s->owner, SIGCONT) == 0);
		for (int i = 0; i < 2; i++)
			CHECK(fm_agent_wait_active(a[i], 8000) == 0);
	}
	/* alive (a kill would have ended this process), and each lapsed
	 * session was fenced without one: its quiescence was vouched for */
	CHECK(svc_ctl(s, out, sizeof(out), "status") == 0);
	p = strstr(out, " fences ");
	fprintf(stderr, "owner-stall: %s", p ? p : out);
	for (int i = 0; i < 2; i++) {
		struct fm_agent_stats st;

		fm_agent_stats(a[i], &st);
		fprintf(stderr, "owner-stall: client %d joins %" PRIu64 " closes %" PRIu64 "\n",
			6 + i, st.joins, st.closes);
		CHECK(st.joins >= 2);
		fm_agent_delete(&a[i]);
	}
	return 0;
}

/* ============================================================== wrong-key */
static int sc_wrong_key(struct svc *s)
{
	struct fm_agent *bad, *good;
	unsigned long long fails;
	char out[8192], *p;
	uint64_t t0;
	int rc;

	svc_owner_start(s);
	setup_map(s, true);
	bad = svc_agent(s, 3, "not-the-key");
	t0 = mono_ms();
	rc = fm_agent_wait_active(bad, 1500);
	fprintf(stderr, "wrong key: %d (%s)\n", rc, fm_errormsg());
	/* the owner's reason, not a transport symptom */
	CHECK(rc == -EACCES);
	good = join(s, 4);
	CHECK(svc_wait_gen(good, MAP, 1) == 0);
	CHECK(fm_agent_lock(good, MAP, 1) == 0);
	CHECK(fm_agent_commit_split(good, MAP, 1) == 0);
	CHECK(fm_agent_wait_active(bad, 0) != 0);
	fm_agent_delete(&bad);
	fm_agent_delete(&good);
	CHECK(svc_ctl(s, out, sizeof(out), "status") == 0);
	fprintf(stderr, "%s", out);
	CHECK((p = strstr(out, "auth-failures ")) != NULL);
	fails = strtoull(p + strlen("auth-failures "), NULL, 10);
	/* a refused join is retried with a growing backoff (svc_agent: 20 ms
	 * doubling to 200 ms, so 5 attempts to reach it, then one per 200 ms):
	 * a handful, not the ~100 a second the agent made before */
	fprintf(stderr, "wrong key: %llu refused joins in %llu ms\n",
		(unsigned long long)fails, (unsigned long long)(mono_ms() - t0));
	CHECK(fails >= 1 && fails <= 6 + (mono_ms() - t0) / 200);
	return 0;
}

/* ================================================================ garbage
 * Raw transport endpoints send garbage and truncated messages: only that
 * connection is closed; a good client keeps working throughout. */
static int gb_good(struct svc *s, int idx, int rfd, int wfd, void *arg)
{
	(void)idx;
	(void)rfd;
	(void)arg;
	struct fm_agent *a = join(s, 1);

	CHECK(svc_wait_gen(a, MAP, 1) == 0);
	sig_send(wfd, 'J');
	for (uint64_t g = 0; g < 40; g++) {
		CHECK(fm_agent_lock(a, MAP, g) == 0);
		CHECK(fm_agent_commit_split(a, MAP, g) == 0);
		usleep(5000);
	}
	fm_agent_delete(&a);
	return 0;
}

static int raw_send(struct svc *s, const void *buf, size_t len)
{
	struct fm_transport_cfg tcfg = { .provider = s->provider, .op_timeout_ms = 2000 };
	struct fm_transport *t = NULL;
	struct fm_ep *ep = NULL;
	uint8_t in[FM_WIRE_MAX_MSG];
	uint64_t end;
	int closed = 0;

	if (fm_transport_new(&t, &tcfg) || fm_connect(t, s->addr, NULL, 0, 2000, &ep))
		DIE("raw connect: %s", fm_errormsg());
	if (fm_ep_send(ep, buf, len, 0))
		DIE("raw send: %s", fm_errormsg());
	end = mono_ms() + 3000;
	while (mono_ms() < end) {
		int n = fm_ep_progress(ep);

		while (n > 0 && fm_ep_recv(ep, in, sizeof(in), FM_NONBLOCK) >= 0)
			; /* a BYE, probably */
		if (fm_ep_state(ep, NULL) == FM_EP_CLOSED) {
			closed = 1;
			break;
		}
		usleep(2000);
	}
	fm_ep_delete(&ep);
	fm_transport_delete(&t);
	return closed;
}

static int sc_garbage(struct svc *s)
{
	struct child g;
	uint8_t junk[300], hello[FM_WIRE_MAX_MSG];
	struct fm_msg m = { .type = FM_MSG_HELLO };
	uint64_t x = 42;
	char out[8192];
	int n, rc;

	svc_owner_start(s);
	setup_map(s, true);
	child_start(s, &g, 0, gb_good, NULL);
	CHECK(sig_wait(g.from[0], 10000) == 'J');
	for (size_t i = 0; i < sizeof(junk); i++)
		junk[i] = (uint8_t)rnd(&x);
	CHECK(raw_send(s, junk, sizeof(junk)) == 1);     /* garbage */
	m.u.hello.client_id = 2;
	m.u.hello.ver_major = FM_WIRE_MAJOR;
	n = fm_wire_encode(&m, hello, sizeof(hello));
	CHECK(n > 0);
	CHECK(raw_send(s, hello, (size_t)n - 5) == 1);   /* truncated */
	hello[20] ^= 0x40;
	CHECK(raw_send(s, hello, (size_t)n) == 1);       /* bad checksum */
	CHECK(raw_send(s, hello, 3) == 1);               /* shorter than a header */
	rc = child_wait(&g, 20000);
	CHECK(svc_ctl(s, out, sizeof(out), "status") == 0);
	fprintf(stderr, "%s", out);
	CHECK(strstr(out, "malformed 0 ") == NULL);
	CHECK(strstr(out, "commits 40 ") != NULL);
	return rc != 0;
}

/* =============================================================== snapshot
 * Volumes as files (svc_vols.h).  Phase A (PREPARED, no COW): clients
 * write the source.  Trigger: quiesce, copy the source file (the expected
 * image), map-start.  Phase B (COPYING): random source writes, target
 * writes to each client's own stripe, target reads checked against the
 * image + own writes.  Then the whole target is read through the plan and
 * checked. */
#define OPS 250

/* stripe of grain g: client g % 4 may write the target there (3: nobody) */
static int sn_child(struct svc *s, int idx, int rfd, int wfd, void *arg)
{
	uint64_t seed = *(uint64_t *)arg + (uint64_t)idx * 7919, x = seed | 1;
	struct fm_agent *a = join(s, (uint32_t)idx + 1);
	uint8_t *buf = malloc(4 * GRAIN), *img, *model;
	struct svc_vols v;
	char name[64];
	int bad = 0;

	CHECK(svc_vols_open(s, a, (uint32_t)idx + 1, MAP, VOL, &v) == 0);
	CHECK(svc_wait_gen(a, MAP, 0) == 0);
	/* phase A: no COW yet (PREPARED) */
	for (int i = 0; i < 60; i++) {
		uint64_t g = rnd(&x) % GRAINS, off = g * GRAIN;

		svc_fill(buf, GRAIN, &x);
		int rc = svc_vols_io(&v, FM_IO_WRITE_SOURCE, off, GRAIN, buf);

		if (rc)
			fprintf(stderr, "phase A write: %d %s\n", rc, fm_errormsg());
		CHECK(rc == 0);
	}
	sig_send(wfd, 'A');
	CHECK(sig_wait(rfd, 20000) == 'T'); /* triggered */
	CHECK(svc_wait_gen(a, MAP, 1) == 0);
	img = svc_file_load(s, "image.img", VOL);
	model = malloc(VOL);
	memcpy(model, img, VOL);
	for (int i = 0; i < OPS; i++) {
		uint64_t r = rnd(&x) % 100, g = rnd(&x) % GRAINS;
		uint64_t sec = (rnd(&x) % (GRAIN / 512)), nsec;
		uint64_t off, len;

		if (r < 40) { /* source write, may span grains */
			nsec = 1 + rnd(&x) % 16;
			off = g * GRAIN + sec * 512;
			len = nsec * 512;
			if (off + len > VOL)
				len = VOL - off;
			svc_fill(buf, len, &x);
			CHECK(svc_vols_io(&v, FM_IO_WRITE_SOURCE, off, len, buf) == 0);
		} else if (r < 65) { /* target write in my stripe, within a grain */
			g = g - g % 4 + (uint64_t)idx;
			if (g >= GRAINS)
				continue;
			if (rnd(&x) % 3 == 0) {
				off = g * GRAIN; /* whole grain: WRITE_AND_SPLIT */
				len = GRAIN;
			} else {
				off = g * GRAIN + sec * 512;
				len = (1 + rnd(&x) % (GRAIN / 512 - sec)) * 512;
			}
			svc_fill(buf, len, &x);
			CHECK(svc_vols_io(&v, FM_IO_WRITE_TARGET, off, len, buf) == 0);
			memcpy(model + off, buf, len);
		} else { /* target read: my stripe or the untouched one */
			g = g - g % 4 + (rnd(&x) % 2 ? (uint64_t)idx : 3);
			if (g >= GRAINS)
				continue;
			off = g * GRAIN + sec * 512;
			len = (1 + rnd(&x) % (GRAIN / 512 - sec)) * 512;
			CHECK(svc_vols_io(&v, FM_IO_READ_TARGET, off, len, buf) == 0);
			if (memcmp(buf, model + off, len)) {
				fprintf(stderr, "client %d: target read grain %" PRIu64 " off %" PRIu64
					" len %" PRIu64 " differs from the image\n", idx, g, off, len);
				bad++;
			}
		}
	}
	snprintf(name, sizeof(name), "model.%d", idx);
	svc_file_store(s, name, model, VOL);
	svc_vols_close(&v);
	fm_agent_delete(&a);
	return bad ? 1 : 0;
}

static int sc_snapshot(struct svc *s)
{
	struct child c[NCLIENT];
	uint64_t seed = svc_seed("snapshot", 12345);
	uint8_t *img, *expect, *got;
	struct fm_agent *a;
	struct svc_vols v;
	char out[8192];
	int fails = 0, bad = 0;

	svc_owner_start(s);
	svc_vols_make(s, VOL);
	setup_map(s, false);
	for (int i = 0; i < NCLIENT; i++)
		child_start(s, &c[i], i, sn_child, &seed);
	for (int i = 0; i < NCLIENT; i++)
		CHECK(sig_wait(c[i].from[0], 20000) == 'A');
	/* the trigger: everybody is quiet; the image is the source now */
	img = svc_file_load(s, "src.img", VOL);
	svc_file_store(s, "image.img", img, VOL);
	CHECK(svc_ctl(s, out, sizeof(out), "map-start %d", MAP) == 0);
	fprintf(stderr, "trigger: %s", out);
	for (int i = 0; i < NCLIENT; i++)
		sig_send(c[i].to[1], 'T');
	for (int i = 0; i < NCLIENT; i++)
		fails += child_wait(&c[i], 45000) != 0;
	CHECK(fails == 0);
	/* expected target: the image plus every client's stripe of writes */
	expect = malloc(VOL);
	memcpy(expect, img, VOL);
	for (int i = 0; i < NCLIENT; i++) {
		char name[32];
		uint8_t *m;

		snprintf(name, sizeof(name), "model.%d", i);
		m = svc_file_load(s, name, VOL);
		for (uint64_t g = (uint64_t)i; g < GRAINS; g += 4)
			memcpy(expect + g * GRAIN, m + g * GRAIN, GRAIN);
		free(m);
	}
	a = join(s, 9);
	CHECK(svc_vols_open(s, a, 9, MAP, VOL, &v) == 0);
	got = malloc(VOL);
	for (uint64_t g = 0; g < GRAINS; g += 8)
		CHECK(svc_vols_io(&v, FM_IO_READ_TARGET, g * GRAIN, 8 * GRAIN, got + g * GRAIN) == 0);
	for (uint64_t g = 0; g < GRAINS; g++)
		if (memcmp(got + g * GRAIN, expect + g * GRAIN, GRAIN)) {
			fprintf(stderr, "final: target grain %" PRIu64 " is wrong\n", g);
			bad++;
		}
	svc_vols_close(&v);
	fm_agent_delete(&a);
	free(got);
	free(expect);
	free(img);
	svc_ctl(s, out, sizeof(out), "status");
	fprintf(stderr, "%s", out);
	CHECK(bad == 0);
	return 0;
}

/* ================================================================ engines
 * One agent, several engine threads on overlapping grains, while the
 * parent restarts the mapping underneath them, then kills and restarts
 * the owner (the multi-threaded use
 * agent.h promises; run under ThreadSanitizer in the tsan stage).  Each
 * thread loops io_begin -> plan(WRITE_SOURCE, 1-2 grains) -> per COW
 * grain lock / commit_split or unlock -> io_end, plus READ_TARGET plans
 * and is_split probes, and now and then the readers that never block
 * (stats, maps, the other threads' held locks).  Checked:
 *   - a grain is held by at most one of our threads at a time;
 *   - a grain is committed at most once per generation (lock() == 0 only
 *     while unsplit);
 *   - a commit that returned 0 is published at once (the owner's bitmap,
 *     read one-sided inside the same I/O bracket, has the bit) and
 *     is_split() says 1; lock() == 1 also finds the bit set;
 *   - the owner is SIGKILLed and restarted from its pool under load;
 *     afterwards the bitmap, as a fresh client reads it, holds every
 *     grain acked in the final generation and nothing that was never
 *     committed in it;
 *   - every thread finishes within a bound (no deadlock) and made
 *     progress in every generation. */
#define EN_THREADS 4
#define EN_GRAINS 48u    /* the overlapping window the threads share */
#define EN_RESTARTS 3
#define EN_GENS (EN_RESTARTS + 2)

struct en_shared {
	struct fm_agent *a;
	atomic_bool stop;
	/* holder[g]: 0 or the thread (1-based) holding g's lock word */
	atomic_int holder[EN_GRAINS];
	/* commits[gen][g]: successful commit_split calls */
	atomic_int commits[EN_GENS][EN_GRAINS];
	/* maybe[gen][g]: commit_split failed without a verdict (-ECONNRESET:
	 * the owner died with it in flight, it may be durable) */
	atomic_int maybe[EN_GENS][EN_GRAINS];
	atomic_int bad;
	atomic_long gen_commits[EN_GENS];
};

struct en_thread {
	struct en_shared *sh;
	int idx;
	pthread_t tid;
	long ops, locks, splits, retries;
	int rc;
	char msg[256];
	atomic_bool done;
};

#define EN_BAD(sh, ...) do { fprintf(stderr, "engines: " __VA_ARGS__); fputc('\n', stderr); \
	atomic_fetch_add(&(sh)->bad, 1); } while (0)

/* bit g of map MAP as the owner publishes it (one-sided READ); 0/1 or errno */
static int en_bit(struct fm_agent *a, uint64_t g)
{
	uint8_t w[8];
	int rc = fm_agent_read_bitmap(a, MAP, (g / 64) * 8, w, sizeof(w));

	return rc ? rc : (w[(g % 64) / 8] >> (g % 8)) & 1;
}

static bool en_transient(int rc)
{
	return rc == -ECONNRESET || rc == -EAGAIN || rc == -ESTALE || rc == -ETIMEDOUT ||
	       rc == -ENOLCK;
}

/* one grain of a COW write inside the bracket `io` */
static int en_grain(struct en_thread *t, const struct fm_agent_io *io, uint64_t g)
{
	struct en_shared *sh = t->sh;
	uint64_t gen = io->map.generation;
	int me = t->idx + 1, prev = 0, rc, bit;

	rc = fm_agent_lock(sh->a, MAP, g);
	if (rc < 0)
		return rc;
	t->locks++;
	if (!atomic_compare_exchange_strong(&sh->holder[g], &prev, me))
		EN_BAD(sh, "grain %" PRIu64 ": thread %d got the lock held by thread %d", g,
		       me, prev);
	if (rc == 1) { /* already split: it must be visible */
		if ((bit = en_bit(sh->a, g)) == 0)
			EN_BAD(sh, "grain %" PRIu64 ": lock says split, bitmap says not", g);
		atomic_store(&sh->holder[g], 0);
		return fm_agent_unlock(sh->a, MAP, g);
	}
	if (gen < EN_GENS && atomic_load(&sh->commits[gen][g]))
		EN_BAD(sh, "grain %" PRIu64 " gen %" PRIu64 ": lock() == 0 after a commit", g,
		       gen);
	usleep(100 + (unsigned)(g % 7) * 50); /* "copy": widen the window */
	/* the word is released inside commit_split: drop our mark first */
	atomic_store(&sh->holder[g], 0);
	rc = fm_agent_commit_split(sh->a, MAP, g);
	if (rc && rc != -ESTALE && gen < EN_GENS)
		atomic_store(&sh->maybe[gen][g], 1);
	if (rc)
		return rc;
	t->splits++;
	if (gen < EN_GENS) {
		if (atomic_fetch_add(&sh->commits[gen][g], 1))
			EN_BAD(sh, "grain %" PRIu64 " gen %" PRIu64 ": committed twice", g, gen);
		atomic_fetch_add(&sh->gen_commits[gen], 1);
	}
	/* still inside the bracket: no restart can have cleared it.  "Not
	 * split" (0) breaks the invariant; a transient error (the owner is
	 * being killed: no session, -EAGAIN / -ECONNRESET) only means no
	 * answer, and the final check reads the bitmap after the rejoin. */
	bit = en_bit(sh->a, g);
	if (bit == 0 || (bit < 0 && !en_transient(bit)))
		EN_BAD(sh, "grain %" PRIu64 ": committed but the bitmap says %d", g, bit);
	rc = fm_agent_is_split(sh->a, MAP, g);
	if (rc == 0 || (rc < 0 && !en_transient(rc)))
		EN_BAD(sh, "grain %" PRIu64 ": committed but is_split says %d", g, rc);
	return 0;
}

static int en_once(struct en_thread *t, uint64_t *x)
{
	struct en_shared *sh = t->sh;
	struct fm_extent ext[8];
	struct fm_grain_range lk[8];
	struct fm_plan plan;
	struct fm_agent_io io;
	uint64_t g = rnd(x) % EN_GRAINS, n = 1 + rnd(x) % 2;
	bool rd = rnd(x) % 4 == 0;
	int rc;

	if (g + n > EN_GRAINS)
		g = EN_GRAINS - n;
	rc = fm_agent_io_begin(sh->a, MAP, &io);
	if (rc)
		return rc;
	fm_plan_setup(&plan, ext, 8, lk, 8);
	rc = fm_agent_plan(sh->a, &io, rd ? FM_IO_READ_TARGET : FM_IO_WRITE_SOURCE,
			   g * GRAIN, n * GRAIN, &plan);
	for (uint64_t e = 0; !rc && e < plan.ext_count; e++) {
		for (uint64_t k = ext[e].first_grain; !rc && k <= ext[e].last_grain; k++) {
			switch (ext[e].kind) {
			case FM_EXT_COPY_THEN_WRITE:
			case FM_EXT_WRITE_AND_SPLIT:
				rc = en_grain(t, &io, k);
				break;
			case FM_EXT_REDIRECT_TO_SOURCE:
				rc = fm_agent_is_split(sh->a, MAP, k);
				rc = rc < 0 ? rc : 0;
				break;
			default:
				break;
			}
		}
	}
	fm_agent_io_end(sh->a, &io);
	if (t->ops++ % 64 == 0) { /* the never-blocking readers, too */
		struct fm_agent_stats st;
		struct fm_agent_map m[4];
		struct fm_agent_held h[EN_THREADS];
		int nh;

		fm_agent_stats(sh->a, &st);
		(void)fm_agent_maps(sh->a, m, 4);
		/* the other threads' holds, while they lock and unlock: each
		 * holds at most one grain at a time, this one none now */
		nh = fm_agent_locks(sh->a, h, EN_THREADS);
		if (nh < 0 || nh > EN_THREADS - 1)
			EN_BAD(sh, "fm_agent_locks: %d words held by %d other threads", nh,
			       EN_THREADS - 1);
		for (int i = 0; i < nh && i < EN_THREADS; i++)
			if (h[i].map_id != MAP || h[i].first != h[i].last ||
			    h[i].last >= EN_GRAINS || h[i].count != 1 || !h[i].since_ms ||
			    !h[i].token)
				EN_BAD(sh, "fm_agent_locks: map %" PRIu64 " grains %" PRIu64
				       "..%" PRIu64 " count %u since %" PRIu64, h[i].map_id,
				       h[i].first, h[i].last, h[i].count, h[i].since_ms);
	}
	return rc;
}

static void *en_main(void *arg)
{
	struct en_thread *t = arg;
	uint64_t x = 0x9e3779b97f4a7c15ull * (uint64_t)(t->idx + 1);

	while (!atomic_load(&t->sh->stop)) {
		int rc = en_once(t, &x);

		if (rc && !en_transient(rc)) {
			fprintf(stderr, "engines: thread %d: %d (%s)\n", t->idx, rc,
				fm_errormsg());
			t->rc = rc;
			break;
		}
		if (rc) {
			t->retries++;
			usleep(2000);
		}
	}
	atomic_store(&t->done, true);
	return NULL;
}

/* progress: commits of generation g show up within a generous bound (the
 * owner's restart grace, a slow guest) -- liveness, not a timing claim */
static bool en_progress(struct en_shared *sh, int g)
{
	uint64_t end = mono_ms() + 15000;

	while (atomic_load(&sh->gen_commits[g]) == 0 && mono_ms() < end)
		usleep(10000);
	return atomic_load(&sh->gen_commits[g]) > 0;
}

static int sc_engines(struct svc *s)
{
	static struct en_shared sh; /* big: keep it off the stack */
	struct en_thread th[EN_THREADS];
	struct fm_agent_map m;
	struct fm_agent *a, *b;
	char out[4096], want[32];
	uint64_t gen, end;
	int bad = 0;

	svc_owner_start(s);
	setup_map(s, true);
	a = join(s, 1);
	CHECK(svc_wait_gen(a, MAP, 1) == 0);
	sh.a = a;
	for (int i = 0; i < EN_THREADS; i++) {
		th[i] = (struct en_thread){ .sh = &sh, .idx = i };
		CHECK(pthread_create(&th[i].tid, NULL, en_main, &th[i]) == 0);
	}
	for (int r = 0; r < EN_RESTARTS; r++) {
		usleep(300000);
		CHECK(en_progress(&sh, r + 1));
		CHECK(svc_ctl(s, out, sizeof(out), "map-restart %d", MAP) == 0);
		snprintf(want, sizeof(want), "generation %d", r + 2);
		CHECK(strstr(out, want) != NULL);
		CHECK(svc_wait_gen(a, MAP, (uint64_t)r + 2) == 0);
		if (r == EN_RESTARTS - 1)
			usleep(20000); /* the kill below lands mid-splitting */
	}
	/* the owner dies under load and comes back from its pool: engines
	 * see -ECONNRESET, the agent reconnects, acked splits survive */
	svc_owner_kill(s, SIGKILL);
	usleep(100000);
	svc_owner_start(s);
	CHECK(fm_agent_wait_active(a, 8000) == 0);
	CHECK(svc_wait_gen(a, MAP, EN_RESTARTS + 1) == 0);
	CHECK(en_progress(&sh, EN_RESTARTS + 1)); /* after the restart grace */
	atomic_store(&sh.stop, true);
	/* no deadlock: every thread is out within a bound */
	end = mono_ms() + 30000;
	for (int i = 0; i < EN_THREADS; i++) {
		while (!atomic_load(&th[i].done) && mono_ms() < end)
			usleep(10000);
		if (!atomic_load(&th[i].done)) {
			fprintf(stderr, "engines: thread %d stuck (deadlock?)\n", i);
			_exit(1); /* cannot join it, cannot free the agent */
		}
		pthread_join(th[i].tid, NULL);
		fprintf(stderr, "engines: thread %d ops %ld locks %ld splits %ld retries %ld\n",
			i, th[i].ops, th[i].locks, th[i].splits, th[i].retries);
		CHECK(th[i].rc == 0);
		CHECK(th[i].splits > 0);
	}
	CHECK(fm_agent_map_get(a, MAP, &m) == 0);
	gen = m.generation;
	CHECK(gen == EN_RESTARTS + 1);
	/* the final generation's bitmap, as a fresh client sees it, is
	 * exactly what was committed in it */
	b = join(s, 2);
	CHECK(svc_wait_gen(b, MAP, gen) == 0);
	for (uint64_t g = 0; g < GRAINS; g++) {
		int acked = g < EN_GRAINS && atomic_load(&sh.commits[gen][g]);
		int maybe = g < EN_GRAINS && atomic_load(&sh.maybe[gen][g]);
		int bit = en_bit(b, g), sp = fm_agent_is_split(b, MAP, g);

		if (bit != sp || bit < 0 || (acked && !bit) || (bit && !acked && !maybe)) {
			fprintf(stderr, "engines: grain %" PRIu64 ": acked %d, unknown %d, "
				"bitmap %d, is_split %d\n", g, acked, maybe, bit, sp);
			bad++;
		}
	}
	fm_agent_delete(&b);
	fm_agent_delete(&a);
	for (int gi = 1; gi <= (int)gen; gi++)
		fprintf(stderr, "engines: generation %d: %ld commits\n", gi,
			atomic_load(&sh.gen_commits[gi]));
	CHECK(bad == 0);
	CHECK(atomic_load(&sh.bad) == 0);
	return 0;
}

int main(int argc, char **argv)
{
	static const struct svc_scenario sc[] = {
		{ "roundtrip", sc_roundtrip }, { "client-kill", sc_client_kill },
		{ "reclaim-big", sc_reclaim_big },
		{ "client-stall", sc_client_stall },
		{ "owner-kill", sc_owner_kill }, { "wrong-key", sc_wrong_key },
		{ "garbage", sc_garbage },     { "snapshot", sc_snapshot },
		{ "engines", sc_engines },     { "grace-kill", sc_grace_kill },
		{ "owner-stall", sc_owner_stall },
	};
	static const struct svc_test t = { .name = "service", .sc = sc,
					   .n = sizeof(sc) / sizeof(sc[0]) };
	struct svc s;

	return svc_main(&t, &s, argc, argv);
}
