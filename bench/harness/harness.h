/* harness.h -- flashmeta-bench: the parts and what they share.
 *
 *   main.c      one run point: the processes, the mappings, the pre-split,
 *               the interleaved rounds; the sweep over split fractions
 *   opts.c      options and --help
 *   workload.c  the I/O stream of one engine thread: pattern (sequential,
 *               uniform, zipfian), op mix, mapping; the pre-split choice
 *   client.c    a client process: its agents, engines and volumes, its
 *               engine threads, the commands of the coordinator
 *   worker.c    an engine thread: a measured batch, a floor batch, its
 *               share of the pre-split, the hot-grain lock step
 *   results.c   the tables, the method text, the JSON
 *   plot.c      --plot: data files, gnuplot scripts, PNGs
 *   contend.c   --sweep-contention: k contender processes on one hot
 *               grain, beside a plain CAS spin on one word
 *   suite.c     --suite: the standard set of runs into one results folder,
 *               each path beside perftest's figures (--ref-*-ns)
 *
 * PROCESSES.  The coordinator (this program's first process) never opens
 * a transport: it forks the floor server and N client processes, fork +
 * execs flashmeta-owner, drives the owner through its control socket and
 * the clients through pipes, and reads CPU time from /proc.  So every
 * child may use verbs (a child forked after its parent's first RDMA call
 * cannot).
 *
 * MAPPINGS.  Four sets of --mappings K mappings with the same geometry
 * and the same pre-split grains, one per engine variant: set 0 for the
 * engine with a cache, set 1 for the engine of the "no cache" agent, set 2
 * for the engine whose cache never merges ranges, set 3 for the engine
 * whose agent decides by message -- the same workload then
 * meets the same split state in each, and no variant's writes change what
 * another sees.  With --hot, each set has one more mapping, the hot one,
 * whose grains are never pre-split.  A client process opens one pair of
 * volumes per mapping index and adds it to every engine.
 *
 * TRIGGER.  One more mapping (hb_trig_id), on the volumes of index 0 and
 * attached to the cache engine only, left STOPPED between rounds: the
 * trigger unit runs the cache engine's I/O streams on it while the
 * coordinator cycles it map-prepare, map-start, map-stop on the owner's
 * control socket --triggers times, each command timed.  Every agent of
 * every client holds it (the owner grants every mapping to every
 * session), so every command waits for 4N RELEASED answers.
 */
#ifndef FM_BENCH_HARNESS_H
#define FM_BENCH_HARNESS_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "flashmeta/agent.h"
#include "flashmeta/engine.h"
#include "flashmeta/planner.h"
#include "flashmeta/refvol.h"
#include "floor.h"
#include "owner_proc.h"
#include "procstat.h"
#include "report.h"
#include "series.h"

#define HB_KEY "flashmeta-bench-key"
#define HB_MAX_CLIENTS 32u
#define HB_MAX_THREADS 16u
#define HB_MAX_MAPS 64u         /* --mappings */
#define HB_MAX_SWEEP 16u
#define HB_PRESPLIT_IO (1u << 20) /* the largest pre-split write */
#define HB_CDF_POINTS 1000u

/* ------------------------------------------------------------ options */

enum hb_pattern { PAT_SEQ, PAT_UNIFORM, PAT_ZIPF };

struct hb_opts {
	const char *provider;   /* "shm" | "verbs" */
	const char *device;
	char addr[128];         /* the owner's */
	char floor_addr[128];   /* the floor server's */
	const char *owner_bin;
	const char *pool_dir;
	const char *vol_kind;   /* "memory" | "file" */
	const char *vol_dir;    /* file volumes: where (default: the run's dir) */
	unsigned clients, threads;
	enum hb_pattern pattern;
	double theta;
	unsigned mix[FM_IO_OP_COUNT]; /* percent per enum fm_io_op, sum 100 */
	uint64_t io_size, grain_size, volume_size;
	unsigned mappings;
	double split_pct[HB_MAX_SWEEP]; /* the points; one without --sweep-split */
	unsigned npoints;
	bool sweep;
	bool split_prefix;      /* pre-split the first fraction, not scattered */
	unsigned split_run;     /* random layout: grains chosen together */
	unsigned hot;           /* clients in the hot-grain lock step (0: off) */
	unsigned rounds;        /* reported rounds (one more runs first) */
	unsigned batch_ms;      /* per variant and round (time mode) */
	uint64_t count;         /* I/Os per engine thread, variant and round
				 * (count mode; 0: time mode) */
	unsigned floor_ops;     /* per floor kind, thread and round */
	uint64_t seed;
	const char *json, *plot;
	bool quick;
	unsigned contend_k[HB_MAX_SWEEP]; /* --sweep-contention: actors per point */
	unsigned ncontend;      /* 0: an I/O run (the split points) */
	bool suite;             /* --suite: suite.c runs the standard set */
	const char *results;    /* --results DIR (suite) */
	double ref_ns[3];       /* --ref-atomic-ns, --ref-read-ns, --ref-send-ns
				 * (perftest's t_typical on the device; 0: none) */
	unsigned triggers;      /* prepare/start/stop cycles per round (0: no
				 * trigger unit) */
};

extern struct hb_opts opt;

void hb_opts_parse(int argc, char **argv);
__attribute__((noreturn, format(printf, 2, 3))) void hb_die(int rc, const char *fmt, ...);
/* the parent's pipes to its client processes (client.c): all of n bytes,
 * retried on EINTR; a write that fails dies, a read that ends early
 * returns false (the peer is gone) */
void hb_pipe_write(int fd, const void *p, size_t n);
bool hb_pipe_read(int fd, void *p, size_t n);

/* ----------------------------------------------------------- variants */

/* what one measured batch runs the workload on */
enum hb_variant {
	V_CACHE,      /* the engine, its agent with the confirmation cache */
	V_NOCACHE,    /* the engine, its agent with fm_agent_cfg.no_cache: it
		       * keeps no confirmation -- every decision READs */
	V_NOMERGE,    /* the engine, its agent with fm_agent_cfg.cache_no_merge:
		       * every fill its own range, never joined to the ranges
		       * it touches */
	V_MSG,        /* the engine, its agent with
		       * fm_agent_cfg.decide_by_message: every decision is a
		       * message to the owner and its answer (SPLIT_QUERY,
		       * LOCK_REQUEST, UNLOCK), the way a lock manager works;
		       * no cache */
	V_VOLUME,     /* the volumes' movers alone (fm_refvol_do): no FlashCopy */
	V_N
};

/* the engine variants: one agent, engine and mapping set each */
#define HB_SETS V_VOLUME

/* the units of a round: the five variants, the transport floor and the
 * trigger (the cache engine's I/O on the trigger mapping while the
 * coordinator re-triggers it) */
#define U_FLOOR V_N
#define U_TRIGGER (V_N + 1)
#define U_N (V_N + 2)

extern const char *const hb_variant_name[V_N];
extern const char *const hb_variant_key[V_N];

/* what an I/O did, from its fm_engine_io_stats */
enum hb_class {
	C_HIT,        /* every grain known split in the cache: no READ, no lock */
	C_MISS,       /* READ(s) of the owner's bitmap, then the I/O as asked */
	C_REDIRECT,   /* a target read of unsplit grains: READ, the source
		       * read, then the re-check READ (engine.h REDIRECT) */
	C_LOCKRACE,   /* locked, found split under the lock (another I/O split
		       * it meanwhile): unlock, then as a hit */
	C_SPLIT,      /* locked, copied (or a whole-grain target write) and
		       * committed: the copy-on-write */
	C_SRCREAD,    /* a source read: no decision at all */
	C_VOL,        /* the volume-only variant: the movers alone */
	C_BASE_N,
};
/* hot-grain I/Os are kept apart: class + C_BASE_N */
#define C_N (2 * C_BASE_N)

extern const char *const hb_class_name[C_BASE_N];
extern const char *const hb_class_key[C_BASE_N];

/* parts of an I/O, timed inside it through the engine's trace hook: series
 * of their own after the classes (never counted as I/Os), hot + PT_BASE_N */
enum hb_part {
	PT_SPLIT_LOCK,   /* a split I/O: its start to its (first) grain locked --
			  * the plan's READ and an uncontended lock */
	PT_SPLIT_COMMIT, /* ... its first SPLIT_COMMIT sent to its last answer */
	PT_RACE_LOCK,    /* a lost race: its start to the lock handed over --
			  * the READ, the CAS, LOCK_REQUEST and the wait */
	PT_BASE_N,
};
#define PT_N (2 * PT_BASE_N)
#define SE_N (C_N + PT_N) /* series per variant: the classes, then the parts */

extern const char *const hb_part_name[PT_BASE_N];
extern const char *const hb_part_key[PT_BASE_N];

/* the floor's operations, per engine thread */
enum hb_floor {
	F_READ,       /* READ 64 B: a bitmap window */
	F_CASRD,      /* CAS + READ together: a lock and its check READ */
	F_CASRD_CAS,  /* CAS + READ together, then CAS: a lock and its release */
	F_CAS,        /* one CAS */
	F_MSG,        /* a message and its echo (thread 0 of each client) */
	F_N
};

extern const char *const hb_floor_name[F_N];
extern const char *const hb_floor_key[F_N];

/* what the coordinator times in the trigger unit: one control command
 * each, from its connect to the answer's last line (fm_ownerd_ctl) */
enum hb_trig {
	T_PREPARE,    /* map-prepare: revoke (RELEASE_REQUEST to every holder,
		       * their RELEASED), PREPARE + PREPARE_DONE in the store,
		       * MAP_GRANT */
	T_START,      /* map-start: revoke, START in the store (bitmap cleared,
		       * generation + 1, durable), the published bitmap
		       * cleared, MAP_GRANT -- the trigger proper */
	T_TRIGGER,    /* map-prepare + map-start of one cycle, summed */
	T_STOP,       /* map-stop: revoke, STOP + STOP_DONE, MAP_GRANT */
	T_CTL,        /* map-show of the same mapping: the control socket's
		       * round trip without a revoke (the baseline) */
	T_N
};

extern const char *const hb_trig_name[T_N];
extern const char *const hb_trig_key[T_N];

/* map ids: set 0 (cache), 1 (no cache), 2 (no merge); index K = the hot
 * mapping */
static inline uint64_t hb_map_id(unsigned set, unsigned k)
{
	return 1 + (uint64_t)set * (opt.mappings + 1) + k;
}

/* the trigger mapping: after every set */
static inline uint64_t hb_trig_id(void)
{
	return hb_map_id(HB_SETS, 0);
}

/* ------------------------------------------------------------ workload */

struct hb_rng {
	uint64_t s[2];
};

void hb_rng_seed(struct hb_rng *r, uint64_t seed);
uint64_t hb_rng_next(struct hb_rng *r);
double hb_rng_unit(struct hb_rng *r); /* [0, 1) */

/* zipfian over [0, n) (Gray et al., as YCSB), scrambled so that the hot
 * items are spread over the volume */
struct hb_zipf {
	uint64_t n;
	double theta, alpha, zetan, eta, half_pow;
};

void hb_zipf_init(struct hb_zipf *z, uint64_t n, double theta);
uint64_t hb_zipf_next(const struct hb_zipf *z, struct hb_rng *r);

struct hb_io {
	enum fm_io_op op;
	unsigned map;           /* mapping index 0..K-1 */
	uint64_t offset;        /* bytes */
};

struct hb_gen {
	struct hb_rng rng;
	const struct hb_zipf *zipf; /* shared, read-only */
	uint64_t slots;         /* I/O-size slots of a volume */
	uint64_t seq_next;      /* sequential: next slot (own stripe first) */
	unsigned seq_map;
};

/* the stream of engine thread `worker` (of all clients) for one batch:
 * the same (seed, worker) gives the same I/Os in every variant */
void hb_gen_init(struct hb_gen *g, const struct hb_zipf *z, uint64_t seed, unsigned worker,
		 unsigned nworkers);
void hb_gen_next(struct hb_gen *g, struct hb_io *io);

/* is grain g of mapping index k pre-split at fraction pct?  (a hash of
 * (k, g / --split-run) below the fraction, or the first pct% of grains
 * with --split-layout prefix) */
bool hb_presplit(unsigned k, uint64_t g, uint64_t grains, double pct);

/* ------------------------------------------------------------- shared */

/* Shared memory of the run (MAP_SHARED, made before the clients fork):
 * the hot-grain lock step of --hot clients (a sense barrier). */
struct hb_shared {
	_Atomic uint64_t arrive;
	_Atomic uint64_t gen;
	_Atomic bool stop;      /* set by the last arriver once t_end passed */
	_Atomic bool broken;    /* a hot worker failed: nobody waits for it */
	_Atomic bool io_stop;   /* the trigger unit: its I/O runs until the
				 * coordinator sets this */
};

/* ------------------------------------------------------ coordinator <-> client */

enum hb_cmd_op {
	CMD_SETUP = 1,  /* agents, volumes, engines, floor: reply rc */
	CMD_PRESPLIT,   /* every engine thread its share: reply rc */
	CMD_RUN,        /* one batch of a variant: reply + samples */
	CMD_FLOOR,      /* one floor batch: reply + samples */
	CMD_QUIT,
};

struct hb_cmd {
	uint32_t op;
	uint32_t unit;          /* RUN: enum hb_variant, or U_TRIGGER (the cache
				 * engine on the trigger mapping until
				 * hb_shared.io_stop) */
	uint64_t seed;
	uint64_t t_start, t_end; /* CLOCK_MONOTONIC ns: start together; time
				  * mode ends at t_end */
	uint64_t count;         /* count mode: I/Os per thread (0: time mode) */
	double pct;             /* PRESPLIT: the fraction */
};

/* agent counters of one batch (deltas), the cache's size at its end */
struct hb_agent_delta {
	uint64_t fetches, locks, commits, unlocks, commits_sent;
	uint64_t lookups, cache_hits, cache_misses, inserts, evictions;
	uint64_t bytes, ranges;
};

struct hb_reply {
	int32_t rc;
	char err[240];
	uint64_t t_first, t_last; /* first start, last end over its threads */
	uint64_t ios, decisions, errors, restarts, hot_ios;
	uint64_t n[SE_N];       /* samples per class and part, in this order
				 * after it */
	uint64_t nf[F_N];       /* FLOOR: samples per floor op */
	double cpu_ms;          /* the client process, every thread, over the batch */
	bool cpu_sched;         /* ... by schedstat (else ticks) */
	struct hb_agent_delta ag;
};

/* -------------------------------------------------------------- client */

struct hb_client {
	pid_t pid;
	int to, from;           /* pipes: commands, replies */
	unsigned index;
};

/* fork a child process `index` with a command pipe and a reply pipe: true
 * in the child (*cmd_fd, *reply_fd its ends; the coordinator's pipes to
 * every other live child closed; SIGKILL when the coordinator dies), false
 * in the coordinator (c->pid, c->to, c->from set).  hb_proc_stop: send
 * quit_op, close the pipes, reap (SIGKILL after 10 s). */
bool hb_proc_fork(struct hb_client *c, unsigned index, int *cmd_fd, int *reply_fd);
void hb_proc_stop(struct hb_client *c, int quit_op);

/* fork client `index` (before any transport); it waits for commands.
 * vol_dir: where the coordinator made the file volumes (--volumes file) */
void hb_client_start(struct hb_client *c, unsigned index, struct hb_shared *sh,
		     const char *vol_dir);
void hb_client_send(struct hb_client *c, const struct hb_cmd *cmd);
/* the reply's header; samples follow for RUN and FLOOR */
void hb_client_reply(struct hb_client *c, struct hb_reply *r);
void hb_client_read(struct hb_client *c, void *buf, size_t n);
void hb_client_stop(struct hb_client *c);

/* ------------------------------------------------------------ worker */

struct hb_proc;                 /* a client process's state (client.c) */

struct hb_samples {
	double *v;
	size_t n, cap;
};

/* false: out of memory (the sample is lost; the caller says so) */
bool hb_samples_add(struct hb_samples *s, double v);

struct hb_worker {
	struct hb_proc *p;
	unsigned index;         /* in the process */
	unsigned global;        /* over every client: client * threads + index */
	bool hot;               /* the hot lock step (thread 0 of the first --hot) */
	pthread_t th;
	uint8_t *buf;           /* one I/O's bytes (aligned) */
	uint8_t *pbuf;          /* pre-split writes */
	struct fm_floor_lane fl;
	bool fl_open;
	uint64_t hot_next[HB_SETS + 1]; /* the next hot grain: per mapping set,
					 * and the volume-only variant's */
	/* what a batch gathered */
	struct hb_samples s[SE_N];
	struct hb_samples f[F_N];
	uint64_t t_first, t_last;
	uint64_t ios, decisions, errors, restarts, hot_ios;
	int rc;
	char err[240];
};

/* the process's state the threads share */
struct hb_proc {
	unsigned index;         /* client 0..N-1 */
	struct hb_shared *sh;
	struct fm_agent *a[HB_SETS]; /* cache, no cache, no merge, by message */
	struct fm_engine *e[HB_SETS]; /* e[V_CACHE] also has the trigger mapping */
	struct fm_refvol *src[HB_MAX_MAPS + 1], *tgt[HB_MAX_MAPS + 1];
	struct fm_floor floor;
	bool floor_open;
	struct hb_zipf zipf;
	uint64_t grains;        /* per mapping */
	struct hb_worker w[HB_MAX_THREADS];
	/* the job the threads run now (set by the main thread before go) */
	struct hb_cmd job;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	uint64_t go_gen, done_count;
	bool quit;
};

void *hb_worker_main(void *arg);
/* the engines' trace hook (engine.h): per thread, the mover requests that
 * redirect a target read to the source, and when a lock, a commit and its
 * answer came (the parts) */
void hb_engine_trace(void *ctx, struct fm_engine_io *io, const struct fm_engine_event *ev);
/* the job's work on one thread (called by hb_worker_main) */
void hb_worker_run(struct hb_worker *w);
void hb_worker_floor(struct hb_worker *w);
void hb_worker_presplit(struct hb_worker *w);
void hb_worker_reset(struct hb_worker *w);

/* ------------------------------------------------------------- results */

/* one run point (a split fraction): every series of it, and its counters */
struct hb_point {
	double split_pct;
	struct series S[V_N][SE_N];     /* latency, usec: classes, then parts */
	struct series all[V_N];         /* every I/O of the variant, usec */
	struct series F[F_N];           /* the floor, usec */
	struct series iops[V_N], dps[V_N]; /* one value per round */
	/* sums over the kept rounds */
	uint64_t ios[V_N], decisions[V_N], errors[V_N], restarts[V_N], hot_ios[V_N];
	double seconds[V_N];            /* measured wall time */
	double owner_cpu_ms[V_N], client_cpu_ms[V_N];
	double owner_wall_s[V_N];       /* the windows its CPU was sampled over */
	bool owner_sched, client_sched; /* every batch by schedstat ns (else ticks
					 * in some: mind the 10 ms resolution) */
	uint64_t lock_requests[V_N], owner_commits[V_N];
	uint64_t lock_grants[V_N], acks[V_N], queries[V_N]; /* the owner's status */
	/* the trigger unit: control command times (usec), its I/O load */
	struct series T[T_N];
	uint64_t trig_ios, trig_restarts, trig_cycles, trig_skipped_stops;
	double trig_seconds;
	struct hb_agent_delta ag[V_N];  /* sums; bytes and ranges: the last round's */
	double idle_owner_ms_per_s;     /* the owner with every client joined, idle */
	double split_start[HB_SETS], split_end[HB_SETS]; /* per mapping set, percent */
	double presplit_s;              /* how long the pre-split took */
	uint64_t grains;
	char persist[48];
	char la0[64], la1[64];
	double run_s;
	/* the stats, computed once at the end of the point */
	struct series_stats st[V_N][SE_N], st_all[V_N], st_f[F_N], st_t[T_N];
	double iops_typ[V_N], dps_typ[V_N];
	double iops_min[V_N], iops_max[V_N]; /* over the kept rounds */
};

/* Operations per I/O of an engine variant over a point's kept batches
 * (results.c's method text says what each counter counts).  One-sided:
 * reads, cas; two-sided: client_msgs, owner_msgs; the rest their parts.
 * unlock_msgs is NAN where no counter exists (the one-sided variants'
 * UNLOCK after a release CAS that found waiters). */
struct hb_ops {
	uint64_t ios;
	double reads, cas, client_msgs, owner_msgs;
	double fetches, locks, unlocks, commits_sent, lock_requests, queries, unlock_msgs;
	double acks, lock_grants;
};

void hb_ops_of(const struct hb_point *pt, unsigned v, struct hb_ops *o);
void hb_point_init(struct hb_point *pt);
void hb_point_finish(struct hb_point *pt); /* the stats */
void hb_point_free(struct hb_point *pt);   /* the samples */
void hb_print_header(void);
void hb_print_point(const struct hb_point *pt);
void hb_print_sweep(struct hb_point *const *pts, unsigned n);
void hb_json_write(struct hb_point *const *pts, unsigned n, const char *path);
void hb_plot_point(const struct hb_point *pt, const char *dir);
void hb_plot_sweep(struct hb_point *const *pts, unsigned n, const char *dir);
/* one run point at split fraction pct: main.c's steps 1..8 (not printed) */
void hb_run_point(struct hb_point *pt, double pct);
/* a path's t_typical (median of round medians, or pooled: results.c);
 * series c's floor as the ratio table has it (NAN: none) and its name */
double hb_t_typical(const struct series_stats *s);
double hb_floor_of(const struct hb_point *pt, unsigned c, const char **name);
/* gnuplot SCRIPT in DIR; false when gnuplot is missing or failed */
bool hb_plot_gnuplot(const char *dir, const char *script);

/* ---------------------------------------------------------- contention */

/* the units of a contention round */
enum hb_cunit {
	CU_LOCK,      /* fm_agent_lock / fm_agent_unlock of the hot grain */
	CU_SPIN,      /* a plain CAS spin without backoff on one floor word */
	CU_N
};

extern const char *const hb_cunit_name[CU_N];
extern const char *const hb_cunit_key[CU_N];

/* one contention point: k actors */
struct hb_cpoint {
	unsigned k;
	struct series acq[CU_N];        /* acquire latency, usec */
	struct series goodput[CU_N];    /* acquisitions/s, one per round */
	/* sums over the kept rounds */
	uint64_t acquisitions[CU_N], atomics[CU_N], violations[CU_N], lock_requests[CU_N];
	uint64_t agent_locks, agent_unlocks; /* the lock unit's agent counters */
	double seconds[CU_N];
	char la0[64], la1[64];
	double run_s;
	/* computed at the end of the point */
	struct series_stats st[CU_N];
	double good_typ[CU_N], good_min[CU_N], good_max[CU_N];
};

/* the whole --sweep-contention run: every point, the table, --json, --plot.
 * o and floor_pid: the coordinator's (its exit path stops them) */
void hb_contend_run(struct fm_bench_owner *o, pid_t *floor_pid);
void hb_contend_header(void);

/* --suite: every phase, the results folder; o and floor_pid as above;
 * argc/argv: the command line, for the record */
void hb_suite_run(struct fm_bench_owner *o, pid_t *floor_pid, int argc, char **argv);
void hb_plot_contention(struct hb_cpoint *const *cps, unsigned n, const char *dir);

struct fm_jw;
/* the "params" object of the JSON: every option */
void hb_json_params(struct fm_jw *w);
/* the "machine" object of every JSON of flashmeta-bench (cpus, model,
 * kernel, host, provider; with la0: the device and the load average
 * before and after) */
void hb_json_machine(struct fm_jw *w, const char *la0, const char *la1);


/* the machine, for the header and the JSON */
struct hb_machine {
	long cpus;
	char model[128];
	char kernel[128];
	char host[64];
};

void hb_machine(struct hb_machine *m);
extern const char *const hb_method_text;

#endif /* FM_BENCH_HARNESS_H */
