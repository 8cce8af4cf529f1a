/* test_owner_group.c -- the owner's group commit through the real daemon:
 * client processes commit splits concurrently over shm, and the owner's
 * `status` counters say how many store commits (drains) served how many
 * SPLIT_ACKs.
 *
 *   it_owner_group_commit --owner PATH [--clients N] [--rounds R] [--free K]
 *
 * 1. Rounds (asserted).  Each of N clients locks a grain of its own; the
 *    parent freezes the owner (SIGSTOP), lets every client send its
 *    SPLIT_COMMIT (a helper thread in the client sees fm_agent_stats
 *    count it in commits_sent), and thaws the owner.  The owner then finds N
 *    commits waiting at once.  An owner that collects PERSISTs over a
 *    whole loop pass makes them durable with fewer store commits than
 *    acks; one that commits per received message needs one commit per
 *    ack -- the old owner fails here.  Asserted: every commit acked OK,
 *    every acked grain shown in the bitmap any client READs, and fewer
 *    store commits than acks over all rounds (one round that grouped two
 *    is enough: a message that was still in its client's hands at the
 *    thaw only makes a round group less).  No clock is asserted.
 * 2. Free run (reported, not asserted beyond correctness): N clients
 *    commit K grains each as fast as they can; prints commits, acks and
 *    persists per commit.
 * 3. Stop while committing: N clients commit until their first error;
 *    once the owner acked a few dozen, it gets SIGTERM.  Asserted: it
 *    exits 0 (a commit in flight is finished, not torn down), and every
 *    grain a client saw acked OK is split in the pool, reopened after.
 *    (A stop cannot lose what a SIGKILL or an msync would keep, so this
 *    is about the stop path, not the durability order: that is
 *    test_pmem_powerfail's.)
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "flashmeta/agent.h"
#include "flashmeta/error.h"
#include "flashmeta/pmem_store.h"
#include "svc_util.h"

#define MAP 1
#define GRAIN 4096u
#define GRAINS 8192u
#define MAX_CLIENTS 16
#define STOP_BASE 5120u  /* phase 3's grains: STOP_BASE + idx * STOP_MAX + k */
#define STOP_MAX 600u

struct opts {
	int clients, rounds, free_k;
};

/* "store ... commits N" and "locks ... acks N" of the owner's status */
struct counts {
	uint64_t commits, acks;
};

static int status_counts(struct svc *s, struct counts *c)
{
	char out[8192], *store, *locks, *p;

	if (svc_ctl(s, out, sizeof(out), "status"))
		return -1;
	store = strstr(out, "\nstore ");
	locks = strstr(out, "\nlocks ");
	if (!store || !locks || !(p = strstr(store, " commits ")))
		return -1;
	c->commits = strtoull(p + 9, NULL, 10);
	if (!(p = strstr(locks, " acks ")))
		return -1;
	c->acks = strtoull(p + 6, NULL, 10);
	return 0;
}

static struct fm_agent *join(struct svc *s, uint32_t id)
{
	struct fm_agent *a = svc_agent(s, id, NULL);
	struct fm_agent_map m;
	uint64_t end = mono_ms() + 8000;

	if (fm_agent_wait_active(a, 8000))
		DIE("client %u: no session: %s", id, fm_errormsg());
	while (mono_ms() < end) {
		if (!fm_agent_map_get(a, MAP, &m) && m.granted && m.state == FM_MAP_COPYING)
			return a;
		usleep(5000);
	}
	DIE("client %u: map %d not granted", id, MAP);
}

/* the helper thread of a round: 'S' once the agent handed the commit to
 * its session (commits_sent; `commits` counts acks, which a stopped
 * owner never sends) */
struct issued {
	struct fm_agent *a;
	uint64_t before;
	int wfd;
};

static void *issued_thread(void *arg)
{
	struct issued *w = arg;
	struct fm_agent_stats st;

	for (;;) {
		fm_agent_stats(w->a, &st);
		if (st.commits_sent > w->before)
			break;
		usleep(500);
	}
	sig_send(w->wfd, 'S');
	return NULL;
}

static uint64_t round_grain(int idx, int r, int rounds)
{
	return (uint64_t)idx * (uint64_t)rounds + (uint64_t)r;
}

/* a client of the rounds: per round L(ocked), S(ent), D(one) */
static int rounds_child(struct svc *s, int idx, int rfd, int wfd, void *arg)
{
	const struct opts *o = arg;
	struct fm_agent *a = join(s, (uint32_t)idx + 1);

	for (int r = 0; r < o->rounds; r++) {
		uint64_t g = round_grain(idx, r, o->rounds);
		struct fm_agent_stats st;
		struct issued w = { .a = a, .wfd = wfd };
		pthread_t t;
		int rc;

		CHECK(fm_agent_lock(a, MAP, g) == 0);
		sig_send(wfd, 'L');
		CHECK(sig_wait(rfd, 30000) == 'C');
		fm_agent_stats(a, &st);
		w.before = st.commits_sent;
		CHECK(pthread_create(&t, NULL, issued_thread, &w) == 0);
		rc = fm_agent_commit_split(a, MAP, g);
		pthread_join(t, NULL);
		CHECK(rc == 0);
		sig_send(wfd, 'D');
	}
	fm_agent_delete(&a);
	return 0;
}

/* a client of the free run: K commits, then D */
static int free_child(struct svc *s, int idx, int rfd, int wfd, void *arg)
{
	const struct opts *o = arg;
	struct fm_agent *a = join(s, (uint32_t)idx + 1);
	uint64_t base = GRAINS / 2 + (uint64_t)idx * (uint64_t)o->free_k;

	sig_send(wfd, 'R');
	CHECK(sig_wait(rfd, 30000) == 'G');
	for (int k = 0; k < o->free_k; k++) {
		CHECK(fm_agent_lock(a, MAP, base + (uint64_t)k) == 0);
		CHECK(fm_agent_commit_split(a, MAP, base + (uint64_t)k) == 0);
	}
	sig_send(wfd, 'D');
	fm_agent_delete(&a);
	return 0;
}

/* a client of the stop: commits until the first error (the owner went
 * away), then reports how many were acked OK */
static int stop_child(struct svc *s, int idx, int rfd, int wfd, void *arg)
{
	struct fm_agent *a = join(s, (uint32_t)idx + 1);
	uint64_t base = STOP_BASE + (uint64_t)idx * STOP_MAX;
	char buf[32];
	unsigned k = 0;

	(void)arg;
	sig_send(wfd, 'R');
	CHECK(sig_wait(rfd, 30000) == 'G');
	while (k < STOP_MAX) {
		if (fm_agent_lock(a, MAP, base + k) != 0 ||
		    fm_agent_commit_split(a, MAP, base + k) != 0)
			break;
		k++;
	}
	snprintf(buf, sizeof(buf), "%u\n", k);
	(void)!write(wfd, buf, strlen(buf));
	fm_agent_delete(&a);
	return 0;
}

/* a reader: every grain of the rounds is shown in the bitmap any client
 * READs.  A child, like every agent here: the owner may fence a closed
 * session's process by killing it (shm), which must not be the test. */
static int reader_child(struct svc *s, int idx, int rfd, int wfd, void *arg)
{
	const struct opts *o = arg;
	struct fm_agent *a = join(s, (uint32_t)idx + 1);
	uint8_t bm[GRAINS / 8];

	(void)rfd;
	(void)wfd;
	CHECK(fm_agent_read_bitmap(a, MAP, 0, bm, sizeof(bm)) == 0);
	for (int i = 0; i < o->clients; i++)
		for (int r = 0; r < o->rounds; r++) {
			uint64_t g = round_grain(i, r, o->rounds);

			CHECK((bm[g / 8] >> (g % 8)) & 1);
		}
	fm_agent_delete(&a);
	return 0;
}

/* every child sends `c` (30 s each at most); 0 or -1 */
static int wait_all(struct child *ch, int n, char c)
{
	for (int i = 0; i < n; i++) {
		int got = sig_wait(ch[i].from[0], 30000);

		if (got != c) {
			fprintf(stderr, "client %d: got %d, not '%c'\n", i, got, c);
			return -1;
		}
	}
	return 0;
}

static int finish_children(struct child *ch, int n)
{
	int bad = 0;

	for (int i = 0; i < n; i++)
		if (child_wait(&ch[i], 30000) != 0)
			bad++;
	return bad ? -1 : 0;
}

static int run_rounds(struct svc *s, const struct opts *o)
{
	struct child ch[MAX_CLIENTS], reader;
	struct counts c0, c1;
	int fail = 0;

	for (int i = 0; i < o->clients; i++)
		child_start(s, &ch[i], i, rounds_child, (void *)o);
	CHECK(status_counts(s, &c0) == 0);
	for (int r = 0; r < o->rounds && !fail; r++) {
		if (wait_all(ch, o->clients, 'L')) {
			fail = 1;
			break;
		}
		kill(s->owner, SIGSTOP);
		for (int i = 0; i < o->clients; i++)
			sig_send(ch[i].to[1], 'C');
		fail = wait_all(ch, o->clients, 'S') != 0;
		/* issued means queued in the agent: give its protocol thread a
		 * moment to put the message on the ring (not asserted: a late
		 * one only groups less) */
		usleep(20000);
		kill(s->owner, SIGCONT);
		if (!fail)
			fail = wait_all(ch, o->clients, 'D') != 0;
	}
	kill(s->owner, SIGCONT);
	if (finish_children(ch, o->clients))
		fail = 1;
	CHECK(!fail);
	CHECK(status_counts(s, &c1) == 0);
	printf("rounds: %d clients x %d rounds: %" PRIu64 " SPLIT_ACKs from %" PRIu64
	       " store commits (%.2f persists per commit)\n", o->clients, o->rounds,
	       c1.acks - c0.acks, c1.commits - c0.commits,
	       c1.commits > c0.commits ? (double)(c1.acks - c0.acks) /
	       (double)(c1.commits - c0.commits) : 0.0);
	CHECK(c1.acks - c0.acks == (uint64_t)o->clients * (uint64_t)o->rounds);
	CHECK(c1.commits - c0.commits >= 1);
	/* the grouping */
	CHECK(c1.commits - c0.commits < c1.acks - c0.acks);
	/* what any client READs shows every acked grain */
	child_start(s, &reader, o->clients, reader_child, (void *)o);
	CHECK(child_wait(&reader, 30000) == 0);
	return 0;
}

static int run_free(struct svc *s, const struct opts *o)
{
	struct child ch[MAX_CLIENTS];
	struct counts c0, c1;
	uint64_t t0, t1;

	for (int i = 0; i < o->clients; i++)
		child_start(s, &ch[i], i, free_child, (void *)o);
	CHECK(wait_all(ch, o->clients, 'R') == 0);
	CHECK(status_counts(s, &c0) == 0);
	t0 = mono_ms();
	for (int i = 0; i < o->clients; i++)
		sig_send(ch[i].to[1], 'G');
	CHECK(wait_all(ch, o->clients, 'D') == 0);
	t1 = mono_ms();
	CHECK(finish_children(ch, o->clients) == 0);
	CHECK(status_counts(s, &c1) == 0);
	printf("free run: %d clients x %d commits in %" PRIu64 " ms: %" PRIu64
	       " SPLIT_ACKs from %" PRIu64 " store commits (%.2f persists per commit)\n",
	       o->clients, o->free_k, t1 - t0, c1.acks - c0.acks, c1.commits - c0.commits,
	       c1.commits > c0.commits ? (double)(c1.acks - c0.acks) /
	       (double)(c1.commits - c0.commits) : 0.0);
	CHECK(c1.acks - c0.acks == (uint64_t)o->clients * (uint64_t)o->free_k);
	CHECK(c1.commits - c0.commits <= c1.acks - c0.acks);
	return 0;
}

static int run_stop(struct svc *s, const struct opts *o)
{
	struct child ch[MAX_CLIENTS];
	unsigned acked[MAX_CLIENTS];
	struct counts c0, c;
	struct fm_store *st;
	uint64_t end;
	int fail = 0;

	for (int i = 0; i < o->clients; i++)
		child_start(s, &ch[i], i, stop_child, NULL);
	CHECK(wait_all(ch, o->clients, 'R') == 0);
	CHECK(status_counts(s, &c0) == 0);
	for (int i = 0; i < o->clients; i++)
		sig_send(ch[i].to[1], 'G');
	/* a few dozen acks each, then stop it mid-stream */
	end = mono_ms() + 20000;
	do {
		usleep(2000);
		CHECK(status_counts(s, &c) == 0);
	} while (c.acks - c0.acks < 40u * (unsigned)o->clients && mono_ms() < end);
	svc_owner_kill(s, SIGTERM); /* waits; counts an exit other than 0 */
	CHECK(s->owner_bad == 0);
	for (int i = 0; i < o->clients; i++) {
		char buf[32] = { 0 };
		size_t k = 0;

		while (k < sizeof(buf) - 1 && read(ch[i].from[0], buf + k, 1) == 1 &&
		       buf[k] != '\n')
			k++;
		acked[i] = (unsigned)strtoul(buf, NULL, 10);
		if (!k)
			fail = 1;
	}
	if (finish_children(ch, o->clients))
		fail = 1;
	CHECK(!fail);
	/* every grain acked OK is split in the pool */
	CHECK(fm_store_open(&st, s->pool, NULL) == 0);
	for (int i = 0; i < o->clients; i++) {
		for (unsigned k = 0; k < acked[i]; k++) {
			uint64_t g = STOP_BASE + (uint64_t)i * STOP_MAX + k;

			if (fm_store_split_test(st, MAP, g) != 1) {
				fprintf(stderr, "client %d: grain %" PRIu64 " acked, not split\n",
					i, g);
				fail = 1;
			}
		}
	}
	fm_store_close(&st);
	printf("stop: %d clients, SIGTERM after %" PRIu64 " acks; acked per client:", o->clients,
	       c.acks - c0.acks);
	for (int i = 0; i < o->clients; i++)
		printf(" %u", acked[i]);
	printf("; all split in the pool: %s\n", fail ? "NO" : "yes");
	CHECK(!fail);
	return 0;
}

int main(int argc, char **argv)
{
	struct opts o = { .clients = 4, .rounds = 8, .free_k = 200 };
	char out[4096];
	struct svc s;
	int rc;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--clients") && i + 1 < argc)
			o.clients = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--rounds") && i + 1 < argc)
			o.rounds = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--free") && i + 1 < argc)
			o.free_k = atoi(argv[++i]);
	}
	if (o.clients < 2 || o.clients > MAX_CLIENTS - 1 || o.rounds < 1 ||
	    o.free_k < 0 || (uint64_t)o.clients * (uint64_t)o.rounds > GRAINS / 2 ||
	    (uint64_t)o.clients * (uint64_t)o.free_k > GRAINS / 2)
		DIE("bad --clients/--rounds/--free");
	svc_init(&s, argc, argv, "group");
	s.lease_ms = 3000; /* the owner is frozen for a moment each round */
	svc_owner_start(&s);
	if (svc_ctl(&s, out, sizeof(out), "map-create %d 1 2 %" PRIu64 " %u", MAP,
		    (uint64_t)GRAIN * GRAINS, GRAIN) ||
	    svc_ctl(&s, out, sizeof(out), "map-prepare %d", MAP) ||
	    svc_ctl(&s, out, sizeof(out), "map-start %d", MAP))
		DIE("map setup: %s", out);
	rc = run_rounds(&s, &o);
	if (!rc && o.free_k)
		rc = run_free(&s, &o);
	if (!rc)
		rc = run_stop(&s, &o);
	if (svc_fini(&s))
		rc = 1;
	printf("%s\n", rc ? "FAILED" : "ok");
	return rc ? 1 : 0;
}
