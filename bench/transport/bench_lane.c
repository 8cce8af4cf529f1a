/* bench_lane.c -- the raw cost of lane operations (transport.h, "lanes"),
 * with the blocking fm_ep_cas / fm_ep_read measured in the same run,
 * interleaved, as the baseline.
 *
 * Two processes, as in production: an owner (forked first, before any
 * transport exists; it listens, makes a READ region and an ATOMIC region,
 * grants, sends the descriptors, then sleeps in event mode until the
 * client closes) and the client -- this process -- which measures.
 *
 * Latency, one operation in flight.  Each round times one operation of
 * every case but the hand-off, in a rotating order (so no case always runs
 * first after the others warmed the caches), one clock read before and
 * after; the hand-off gets a phase of its own after the rounds (its thread
 * waking up on the other CPU would disturb the rows it interleaves with):
 *   timer         two back-to-back clock reads: what every sample includes
 *   cpu-cas       a C11 CAS on a word of this process: the floor
 *   ep-cas        fm_ep_cas, blocking                    (baseline)
 *   lane-cas      fm_lane_post_cas + fm_lane_poll until it is there
 *   ep-read64     fm_ep_read of 64 bytes, blocking       (baseline)
 *   lane-read64   fm_lane_post_read + fm_lane_poll
 *   handoff-cas   what lanes remove: this thread hands the CAS to another
 *                 thread that owns an endpoint (mutex + condvar, as an
 *                 engine thread hands it to a protocol thread today), which
 *                 runs fm_ep_cas and hands the result back.  That thread
 *                 has a connection of its own: sharing one would move the
 *                 endpoint's cache lines between CPUs and slow the
 *                 baseline rows down
 * Throughput, many in flight.  T threads (1, 2, 4), one lane each, keep
 * their lane full (--depth) of CAS on a word of their own (its own cache
 * line: the transport's cost, not line contention) or of 64-byte READs; a
 * sample is the time per operation over a batch of --batch completions.
 * The blocking fm_ep_cas loop (one thread: an endpoint has one owning
 * thread) is measured in the same rounds.  Aggregate Kops/s =
 * operations of all threads / wall time of the burst.
 *
 * The first --warmup percent of every case's samples are dropped; the rest
 * are kept raw (--raw FILE: CSV) and sorted only for the table.
 */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "flashmeta/error.h"
#include "flashmeta/transport.h"
#include "report.h"

#define REGION_LEN (64u << 10)
#define READ_LEN 64u
#define MAX_THREADS 4
#define WORD_STRIDE 64u /* bytes between the throughput threads' words */

static struct {
	const char *provider;
	char addr[128];
	size_t rounds;   /* latency samples per case */
	size_t bursts;   /* throughput samples per case and thread */
	unsigned depth;  /* lane depth */
	unsigned batch;  /* completions per throughput sample */
	unsigned warmup; /* percent dropped */
	const char *json, *raw;
} opt = {.provider = "shm", .rounds = 20000, .bursts = 400, .depth = 64, .batch = 1024,
	 .warmup = 10};

/* printed beside the figures (and in the JSON): what each row is */
static const char method_text[] =
	"timed: one clock read (CLOCK_MONOTONIC) before and one after each operation;\n"
	" a latency sample is that one operation, one in flight, in nsec, and includes\n"
	" one clock read (the timer row).  Lane rows post and then poll the lane's\n"
	" completion until it is there (busy wait); ep rows are the blocking calls.\n"
	"interleaving: every latency round times one operation of every case in a\n"
	" rotating order (no case always first); the hand-off case runs in a phase of\n"
	" its own after the rounds (its helper thread waking on the other CPU would\n"
	" disturb the rows it interleaved with).  Throughput: 10 rounds, each running\n"
	" the blocking baseline's bursts and then every lane configuration's bursts.\n"
	"baseline, measured in the same run: the blocking fm_ep_cas / fm_ep_read on the\n"
	" same connection (latency) and the one-thread fm_ep_cas loop (throughput,\n"
	" 'vs baseline' = aggregate / its aggregate); the floor: cpu-cas, a C11 CAS on\n"
	" a local word.\n"
	"statistics: the first --warmup percent of each case's samples dropped; the\n"
	" rest sorted once for the table (perftest's columns: t_typical = median);\n"
	" throughput sample = a thread's batch time / its completions; aggregate =\n"
	" operations of all threads / the burst's wall time.\n"
	"processes: the owner is a forked process serving a READ and an ATOMIC\n"
	" region (event wait mode), the client this process (busy wait mode).";

static void method_print(void)
{
	const char *l = method_text;

	printf("# method:\n");
	while (*l) {
		const char *e = strchr(l, '\n');
		int n = e ? (int)(e - l) : (int)strlen(l);

		printf("#  %.*s\n", n, l);
		l += n + (e ? 1 : 0);
	}
}

static __attribute__((noreturn)) void die(const char *what, int ret)
{
	fprintf(stderr, "fm-bench-lane: %s: %d (%s)\n", what, ret, fm_errormsg());
	exit(1);
}

/* ---------------------------------------------------------------- owner */

static int owner_main(int ready_fd)
{
	struct fm_transport_cfg c = {.provider = opt.provider, .wait_mode = FM_WAIT_EVENT,
				     .device = getenv("FM_RDMA_DEV")};
	struct fm_transport *t;
	struct fm_listener *l;
	struct fm_region *rd, *at;
	struct fm_region_desc d[2];
	uint8_t buf[2 * FM_REGION_DESC_WIRE_SIZE];
	struct fm_ep *ep[2];
	int ret;

	if ((ret = fm_transport_new(&t, &c)) ||
	    (ret = fm_region_new(t, REGION_LEN, FM_ACCESS_REMOTE_READ, &rd)) ||
	    (ret = fm_region_new(t, REGION_LEN, FM_ACCESS_REMOTE_ATOMIC, &at)) ||
	    (ret = fm_listen(t, opt.addr, &l)))
		die("owner setup", ret);
	memset(fm_region_ptr(rd), 0x5a, REGION_LEN);
	fm_region_desc(rd, &d[0]);
	fm_region_desc(at, &d[1]);
	(void)!write(ready_fd, "r", 1);
	fm_region_desc_encode(&d[0], buf);
	fm_region_desc_encode(&d[1], buf + FM_REGION_DESC_WIRE_SIZE);
	/* the client's two connections (the hand-off thread has its own) */
	for (int i = 0; i < 2; i++)
		if ((ret = fm_listener_accept(l, 60000, &ep[i])) || (ret = fm_ep_grant(ep[i])) ||
		    (ret = fm_ep_send(ep[i], buf, sizeof(buf), 0)))
			die("owner accept", ret);
	/* until the client closes: event mode sleeps, it does not spin */
	for (int i = 0; i < 2; i++) {
		do
			ret = fm_ep_recv(ep[i], buf, sizeof(buf), 0);
		while (ret >= 0 || ret == -ETIMEDOUT);
		fm_ep_delete(&ep[i]);
	}
	fm_listener_delete(&l);
	fm_region_delete(&rd);
	fm_region_delete(&at);
	fm_transport_delete(&t);
	return 0;
}

/* -------------------------------------------------------------- samples */

struct series {
	const char *name;
	double *s;
	size_t n, cap;
	unsigned threads;  /* throughput cases */
	double ops, wall_ns; /* throughput cases: summed over bursts */
};

static void series_add(struct series *se, double v)
{
	if (se->n == se->cap) {
		se->cap = se->cap ? se->cap * 2 : 4096;
		se->s = realloc(se->s, se->cap * sizeof(*se->s));
		if (se->s == NULL)
			die("out of memory", -ENOMEM);
	}
	se->s[se->n++] = v;
}

/* ------------------------------------------------------------ the cases */

struct client {
	struct fm_transport *t;
	struct fm_ep *ep;
	struct fm_ep *ep_handoff; /* owned by the hand-off thread */
	struct fm_region *dst;
	struct fm_region_desc rd, at;
	struct fm_lane *lanes[MAX_THREADS];
};

static void lane_wait1(struct fm_lane *lane, struct fm_completion *c)
{
	int k;

	while ((k = fm_lane_poll(lane, c, 1)) == 0)
		;
	if (k < 0 || c->status)
		die("lane completion", k < 0 ? k : c->status);
}

enum lat_case { L_TIMER, L_CPU, L_EP_CAS, L_LANE_CAS, L_EP_READ, L_LANE_READ, L_HANDOFF, L_N };
static const char *lat_name[L_N] = {"timer", "cpu-cas (local word, floor)",
				    "ep-cas (blocking, baseline)", "lane-cas (post+poll)",
				    "ep-read64 (blocking, baseline)", "lane-read64 (post+poll)",
				    "handoff-cas (to another thread)"};

/* the hand-off: one request slot, a thread that owns the endpoint while
 * it runs the CAS (the mutex orders its use with this thread's) */
static struct {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	pthread_t th;
	bool req, done, stop;
	uint64_t expect;
	int ret;
	struct client *cl;
} ho = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};

static void *handoff_main(void *arg)
{
	uint64_t old;

	(void)arg;
	pthread_mutex_lock(&ho.mu);
	for (;;) {
		while (!ho.req && !ho.stop)
			pthread_cond_wait(&ho.cv, &ho.mu);
		if (ho.stop)
			break;
		ho.ret = fm_ep_cas(ho.cl->ep_handoff, &ho.cl->at, 8, ho.expect, ho.expect + 1,
				   &old);
		ho.req = false;
		ho.done = true;
		pthread_cond_broadcast(&ho.cv);
	}
	pthread_mutex_unlock(&ho.mu);
	return NULL;
}

static int handoff_cas(uint64_t expect)
{
	int ret;

	pthread_mutex_lock(&ho.mu);
	ho.expect = expect;
	ho.req = true;
	pthread_cond_broadcast(&ho.cv);
	while (!ho.done)
		pthread_cond_wait(&ho.cv, &ho.mu);
	ho.done = false;
	ret = ho.ret;
	pthread_mutex_unlock(&ho.mu);
	return ret;
}

static double lat_one(struct client *cl, enum lat_case k, uint64_t *word, uint64_t *v)
{
	struct fm_completion c;
	uint64_t t0, t1, old;
	int ret = 0;

	t0 = fm_now_ns();
	switch (k) {
	case L_TIMER:
		break;
	case L_CPU:
		old = *v;
		__atomic_compare_exchange_n(word, &old, *v + 1, false, __ATOMIC_ACQ_REL,
					    __ATOMIC_ACQUIRE);
		break;
	case L_EP_CAS:
		ret = fm_ep_cas(cl->ep, &cl->at, 0, *v, *v + 1, &old);
		break;
	case L_LANE_CAS:
		ret = fm_lane_post_cas(cl->lanes[0], &cl->at, 0, *v, *v + 1, NULL);
		if (ret == 0)
			lane_wait1(cl->lanes[0], &c);
		break;
	case L_EP_READ:
		ret = fm_ep_read(cl->ep, cl->dst, 0, &cl->rd, 128, READ_LEN);
		break;
	case L_LANE_READ:
		ret = fm_lane_post_read(cl->lanes[0], cl->dst, 0, &cl->rd, 128, READ_LEN, NULL);
		if (ret == 0)
			lane_wait1(cl->lanes[0], &c);
		break;
	case L_HANDOFF:
		ret = handoff_cas(*v);
		break;
	default:
		break;
	}
	t1 = fm_now_ns();
	if (ret)
		die(lat_name[k], ret);
	if (k == L_EP_CAS || k == L_LANE_CAS || k == L_CPU || k == L_HANDOFF)
		(*v)++; /* every CAS swaps: the same work each time */
	return (double)(t1 - t0);
}

/* ---- throughput */

enum tp_kind { TP_CAS, TP_READ };

struct tp_job {
	struct client *cl;
	struct fm_lane *lane;
	enum tp_kind kind;
	uint64_t off;       /* this thread's word */
	unsigned batches;
	double *out;        /* ns per operation, one per batch */
	uint64_t start, end; /* this thread's first and last clock reads */
	pthread_barrier_t *bar;
};

static void *tp_run(void *arg)
{
	struct tp_job *j = arg;
	struct fm_completion cs[32];
	uint64_t v = 0;

	pthread_barrier_wait(j->bar);
	j->start = fm_now_ns();
	for (unsigned b = 0; b < j->batches; b++) {
		uint64_t t0 = fm_now_ns();
		unsigned done = 0, posted = 0;

		while (done < opt.batch) {
			int ret = 0, k;

			while (posted < opt.batch && ret == 0) {
				ret = j->kind == TP_CAS
					      ? fm_lane_post_cas(j->lane, &j->cl->at, j->off, v, v + 1,
								 NULL)
					      : fm_lane_post_read(j->lane, j->cl->dst, 0, &j->cl->rd,
								  256, READ_LEN, NULL);
				if (ret == 0) {
					posted++;
					v++;
				} else if (ret != -EAGAIN) {
					die("post", ret);
				}
			}
			k = fm_lane_poll(j->lane, cs, 32);
			if (k < 0)
				die("poll", k);
			for (int i = 0; i < k; i++)
				if (cs[i].status)
					die("completion", cs[i].status);
			done += (unsigned)k;
		}
		j->end = fm_now_ns();
		j->out[b] = (double)(j->end - t0) / opt.batch;
	}
	return NULL;
}

/* one burst of `threads` lanes: samples into se, ops and wall time too.
 * The wall time is the workers' own, first start to last end: the main
 * thread may be descheduled past the barrier until they are done. */
static void tp_burst(struct client *cl, enum tp_kind kind, unsigned threads, unsigned batches,
		     struct series *se)
{
	struct tp_job jobs[MAX_THREADS];
	pthread_t th[MAX_THREADS];
	pthread_barrier_t bar;
	uint64_t t0 = UINT64_MAX, t1 = 0;

	pthread_barrier_init(&bar, NULL, threads + 1);
	for (unsigned i = 0; i < threads; i++) {
		jobs[i] = (struct tp_job){.cl = cl, .lane = cl->lanes[i], .kind = kind,
					  .off = (uint64_t)(i + 1) * WORD_STRIDE, .batches = batches,
					  .bar = &bar};
		jobs[i].out = calloc(batches, sizeof(double));
		if (jobs[i].out == NULL || pthread_create(&th[i], NULL, tp_run, &jobs[i]))
			die("thread", -ENOMEM);
	}
	pthread_barrier_wait(&bar);
	for (unsigned i = 0; i < threads; i++)
		pthread_join(th[i], NULL);
	for (unsigned i = 0; i < threads; i++) {
		if (jobs[i].start < t0)
			t0 = jobs[i].start;
		if (jobs[i].end > t1)
			t1 = jobs[i].end;
	}
	for (unsigned i = 0; i < threads; i++) {
		for (unsigned b = 0; b < batches; b++)
			series_add(se, jobs[i].out[b]);
		free(jobs[i].out);
	}
	se->ops += (double)threads * batches * opt.batch;
	se->wall_ns += (double)(t1 - t0);
	pthread_barrier_destroy(&bar);
}

/* the blocking baseline, on this (the owning) thread */
static void tp_blocking(struct client *cl, unsigned batches, struct series *se)
{
	uint64_t t0 = fm_now_ns(), v = 0, old;

	for (unsigned b = 0; b < batches; b++) {
		uint64_t b0 = fm_now_ns();

		for (unsigned i = 0; i < opt.batch; i++) {
			int ret = fm_ep_cas(cl->ep, &cl->at, WORD_STRIDE * 8, v, v + 1, &old);

			if (ret)
				die("fm_ep_cas", ret);
			v++;
		}
		series_add(se, (double)(fm_now_ns() - b0) / opt.batch);
	}
	se->ops += (double)batches * opt.batch;
	se->wall_ns += (double)(fm_now_ns() - t0);
}

/* ---------------------------------------------------------------- report */

/* drop the warm-up prefix; keep the raw rest (CSV) */
static size_t warm(const struct series *se)
{
	return se->n * opt.warmup / 100;
}

static void raw_dump(FILE *f, const struct series *se)
{
	for (size_t i = 0; i < se->n; i++)
		fprintf(f, "%s,%zu,%.1f,%d\n", se->name, i, se->s[i], i < warm(se));
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: fm-bench-lane [--provider shm|verbs] [--addr ADDR] [--rounds N]\n"
		"         [--bursts N] [--depth D] [--batch B] [--warmup PCT] [--quick]\n"
		"         [--json FILE] [--raw FILE]\n"
		"  latency: --rounds samples per case (one operation in flight);\n"
		"  throughput: --bursts batches of --batch operations per thread, lanes of\n"
		"  --depth, 1/2/4 threads; both interleaved with the blocking baseline.\n"
		"  verbs needs --addr IP:PORT on an RDMA device (FM_RDMA_DEV).\n");
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"provider", required_argument, NULL, 'p'}, {"addr", required_argument, NULL, 'a'},
		{"rounds", required_argument, NULL, 'r'},   {"bursts", required_argument, NULL, 'b'},
		{"depth", required_argument, NULL, 'd'},    {"batch", required_argument, NULL, 'B'},
		{"warmup", required_argument, NULL, 'w'},   {"json", required_argument, NULL, 'j'},
		{"raw", required_argument, NULL, 'R'},      {"quick", no_argument, NULL, 'q'},
		{"help", no_argument, NULL, 'h'},           {NULL, 0, NULL, 0}};
	static const unsigned nthreads[] = {1, 2, 4};
	struct series lat[L_N] = {0}, tp[2][3] = {{{0}}}, tpb = {0};
	struct fm_transport_cfg tc = {.device = getenv("FM_RDMA_DEV")};
	uint8_t buf[2 * FM_REGION_DESC_WIRE_SIZE];
	struct client cl = {0};
	uint64_t word = 0, v = 0, vcpu = 0, vh = 0;
	int o, ret, ready[2], st;
	size_t rounds_tp;
	pid_t owner;
	FILE *jf = NULL, *rf = NULL;
	struct fm_json j;

	while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (o) {
		case 'p': opt.provider = optarg; break;
		case 'a': snprintf(opt.addr, sizeof(opt.addr), "%s", optarg); break;
		case 'r': opt.rounds = strtoul(optarg, NULL, 0); break;
		case 'b': opt.bursts = strtoul(optarg, NULL, 0); break;
		case 'd': opt.depth = (unsigned)strtoul(optarg, NULL, 0); break;
		case 'B': opt.batch = (unsigned)strtoul(optarg, NULL, 0); break;
		case 'w': opt.warmup = (unsigned)strtoul(optarg, NULL, 0); break;
		case 'j': opt.json = optarg; break;
		case 'R': opt.raw = optarg; break;
		case 'q': opt.rounds = 2000; opt.bursts = 20; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (opt.rounds < 10 || opt.bursts < 10 || opt.depth < 1 || opt.batch < 1 ||
	    opt.warmup > 50) {
		usage(stderr);
		return 2;
	}
	if (opt.addr[0] == '\0') {
		if (strcmp(opt.provider, "shm") != 0) {
			usage(stderr);
			return 2;
		}
		snprintf(opt.addr, sizeof(opt.addr), "shm:/flashmeta-bench-lane-%d", (int)getpid());
	}

	/* the owner first: no transport exists in this process yet */
	if (pipe(ready))
		die("pipe", -errno);
	owner = fork();
	if (owner < 0)
		die("fork", -errno);
	if (owner == 0) {
		close(ready[0]);
		_exit(owner_main(ready[1]));
	}
	close(ready[1]);
	if (read(ready[0], buf, 1) != 1)
		die("owner did not start", -EIO);
	close(ready[0]);

	tc.provider = opt.provider;
	tc.wait_mode = FM_WAIT_BUSY;
	tc.lane_depth = opt.depth;
	if ((ret = fm_transport_new(&cl.t, &tc)) ||
	    (ret = fm_connect(cl.t, opt.addr, NULL, 0, 10000, &cl.ep)) ||
	    (ret = fm_region_new(cl.t, 4096, FM_ACCESS_LOCAL, &cl.dst)))
		die("client setup", ret);
	ret = fm_ep_recv(cl.ep, buf, sizeof(buf), 0);
	if (ret != (int)sizeof(buf))
		die("descriptors", ret);
	if ((ret = fm_connect(cl.t, opt.addr, NULL, 0, 10000, &cl.ep_handoff)))
		die("second connection", ret);
	ret = fm_ep_recv(cl.ep_handoff, buf, sizeof(buf), 0);
	if (ret != (int)sizeof(buf))
		die("descriptors", ret);
	fm_region_desc_decode(buf, &cl.rd);
	fm_region_desc_decode(buf + FM_REGION_DESC_WIRE_SIZE, &cl.at);
	for (int i = 0; i < MAX_THREADS; i++)
		if ((ret = fm_lane_new(cl.ep, &cl.lanes[i])))
			die("fm_lane_new", ret);

	/* latency: every case once per round, in a rotating order */
	for (int k = 0; k < L_N; k++)
		lat[k].name = lat_name[k];
	ho.cl = &cl;
	if (pthread_create(&ho.th, NULL, handoff_main, NULL))
		die("hand-off thread", -EAGAIN);
	for (size_t r = 0; r < opt.rounds; r++) {
		for (int i = 0; i < L_HANDOFF; i++) {
			enum lat_case k = (enum lat_case)((r + (size_t)i) % L_HANDOFF);

			series_add(&lat[k], lat_one(&cl, k, &word, k == L_CPU ? &vcpu : &v));
		}
	}
	for (size_t r = 0; r < opt.rounds; r++)
		series_add(&lat[L_HANDOFF], lat_one(&cl, L_HANDOFF, &word, &vh));

	pthread_mutex_lock(&ho.mu);
	ho.stop = true;
	pthread_cond_broadcast(&ho.cv);
	pthread_mutex_unlock(&ho.mu);
	pthread_join(ho.th, NULL);

	/* throughput: rounds of short bursts, every configuration and the
	 * blocking baseline in each round */
	rounds_tp = 10;
	tpb.name = "ep-cas x1 (blocking, baseline)";
	tpb.threads = 1;
	for (int kd = 0; kd < 2; kd++)
		for (int ti = 0; ti < 3; ti++) {
			static char names[2][3][48];

			snprintf(names[kd][ti], sizeof(names[kd][ti]), "lane-%s x%u (depth %u)",
				 kd == TP_CAS ? "cas" : "read64", nthreads[ti], opt.depth);
			tp[kd][ti].name = names[kd][ti];
			tp[kd][ti].threads = nthreads[ti];
		}
	for (size_t r = 0; r < rounds_tp; r++) {
		unsigned per = (unsigned)((opt.bursts + rounds_tp - 1) / rounds_tp);

		tp_blocking(&cl, per, &tpb);
		for (int kd = 0; kd < 2; kd++)
			for (int ti = 0; ti < 3; ti++)
				tp_burst(&cl, (enum tp_kind)kd, nthreads[ti], per, &tp[kd][ti]);
	}

	for (int i = 0; i < MAX_THREADS; i++)
		fm_lane_delete(&cl.lanes[i]);
	fm_ep_delete(&cl.ep);
	fm_ep_delete(&cl.ep_handoff);
	fm_region_delete(&cl.dst);
	fm_transport_delete(&cl.t);
	if (waitpid(owner, &st, 0) < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
		fprintf(stderr, "fm-bench-lane: the owner process did not exit cleanly\n");

	if (opt.raw) {
		rf = fopen(opt.raw, "w");
		if (rf == NULL)
			die("--raw", -errno);
		fprintf(rf, "case,index,value_ns,warmup\n");
		for (int k = 0; k < L_N; k++)
			raw_dump(rf, &lat[k]);
		raw_dump(rf, &tpb);
		for (int kd = 0; kd < 2; kd++)
			for (int ti = 0; ti < 3; ti++)
				raw_dump(rf, &tp[kd][ti]);
		fclose(rf);
	}
	if (opt.json) {
		jf = fopen(opt.json, "w");
		if (jf == NULL)
			die("--json", -errno);
		fm_report_json_open(&j, jf, "fm-bench-lane");
		fm_report_json_param_str(&j, "provider", opt.provider);
		fm_report_json_param_num(&j, "rounds", (double)opt.rounds);
		fm_report_json_param_num(&j, "bursts", (double)opt.bursts);
		fm_report_json_param_num(&j, "depth", opt.depth);
		fm_report_json_param_num(&j, "batch", opt.batch);
		fm_report_json_param_num(&j, "warmup_pct", opt.warmup);
		fm_report_json_param_num(&j, "read_bytes", READ_LEN);
		fm_report_json_param_num(&j, "cpus", (double)sysconf(_SC_NPROCESSORS_ONLN));
		fm_report_json_param_str(&j, "method", method_text);
		fm_report_json_results(&j);
	}

	printf("# fm-bench-lane: provider %s, lane depth %u, %zu latency rounds, %zu "
	       "throughput batches x %u ops per thread, warm-up %u%% dropped, %ld CPUs\n",
	       opt.provider, opt.depth, opt.rounds, opt.bursts, opt.batch, opt.warmup,
	       sysconf(_SC_NPROCESSORS_ONLN));
	method_print();
	printf("\nlatency, one operation in flight (every sample includes the timer row)\n");
	fm_report_header(stdout, "[nsec]");
	for (int k = 0; k < L_N; k++) {
		size_t w = warm(&lat[k]);
		double *copy = malloc((lat[k].n - w) * sizeof(double));
		struct fm_report_stats rs;

		memcpy(copy, lat[k].s + w, (lat[k].n - w) * sizeof(double));
		rs = fm_report_row(stdout, lat[k].name, copy, lat[k].n - w);
		if (jf)
			fm_report_json_result(&j, lat[k].name, "nsec", &rs, "threads", 1.0,
					      "in_flight", 1.0, NULL);
		free(copy);
	}
	printf("\nthroughput, time per operation over batches of %u completions\n", opt.batch);
	fm_report_header(stdout, "[nsec/op]");
	{
		struct series *all[7] = {&tpb};
		double base_kops = 0;

		for (int kd = 0, n = 1; kd < 2; kd++)
			for (int ti = 0; ti < 3; ti++)
				all[n++] = &tp[kd][ti];
		for (int i = 0; i < 7; i++) {
			struct series *se = all[i];
			size_t w = warm(se);
			double *copy = malloc((se->n - w) * sizeof(double));
			struct fm_report_stats rs;
			double kops = se->ops / se->wall_ns * 1e6;

			memcpy(copy, se->s + w, (se->n - w) * sizeof(double));
			rs = fm_report_row(stdout, se->name, copy, se->n - w);
			if (i == 0)
				base_kops = kops;
			if (jf)
				fm_report_json_result(&j, se->name, "nsec/op", &rs, "threads",
						      (double)se->threads, "in_flight",
						      i == 0 ? 1.0 : (double)opt.depth, "kops_per_s",
						      kops, "vs_baseline", kops / base_kops, NULL);
			free(copy);
		}
		printf("\n%-36s %9s %16s %16s\n", "case", "threads", "aggregate", "vs baseline");
		printf("%-36s %9s %16s %16s\n", "", "", "[Kops/s]", "[x]");
		for (int i = 0; i < 7; i++) {
			double kops = all[i]->ops / all[i]->wall_ns * 1e6;

			printf("%-36s %9u %16.1f %16.2f\n", all[i]->name, all[i]->threads, kops,
			       kops / base_kops);
		}
	}
	if (jf) {
		fm_report_json_close(&j);
		fclose(jf);
	}
	for (int k = 0; k < L_N; k++)
		free(lat[k].s);
	free(tpb.s);
	for (int kd = 0; kd < 2; kd++)
		for (int ti = 0; ti < 3; ti++)
			free(tp[kd][ti].s);
	return 0;
}
