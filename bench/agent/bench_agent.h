/* bench_agent.h -- the parts of fm-bench-agent and what they share
 * (besides bench/common: report.h, series.h -- samples per round, median
 * of the per-round medians -- procstat.h, owner_proc.h and floor.h).
 *
 *   bench_agent.c  options, the processes, the rounds, the report
 *   owner.c        the real flashmeta-owner as a child (owner_proc.h), with
 *                  this benchmark's flags
 *   floor.c        the floor (floor.h: a forked server serving two regions
 *                  the way the owner serves its bitmap and lock table, and
 *                  the raw lane operations against it), on this thread
 *   peer.c         the second client process (commits from two processes)
 *   engines.c      engine threads of one agent: the hit decision and its
 *                  floors, batch-timed
 *   paths.c        the per-operation timed agent calls of the main thread:
 *                  miss, lock+unlock, lock+commit
 *   local.c        floors without a network: clock, CPU atomic, a thread
 *                  hand-off, an msync
 *   tables.c       the method text, the tables and the JSON
 */
#ifndef FM_BENCH_AGENT_H
#define FM_BENCH_AGENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "flashmeta/agent.h"
#include "flashmeta/transport.h"
#include "floor.h"
#include "owner_proc.h"
#include "procstat.h"
#include "report.h"
#include "series.h"

#define BA_MAP 1u
#define BA_GRAIN_SIZE 4096u
#define BA_WIN 512u            /* grains of one bitmap window the agent READs (64 B) */
#define BA_NHIT 64u            /* cached confirmations: grains 0, 2, .., 126 */
#define BA_MISS_BASE (1u * BA_WIN) /* window 1: never split, every is_split misses */
#define BA_LOCK_BASE (2u * BA_WIN) /* window 2: never split, locked and unlocked */
#define BA_COMMIT_BASE (4u * BA_WIN) /* fresh grains for commits from here */
#define BA_MAX_THREADS 8u
#define BA_KEY "fm-bench-agent-key"

/* ------------------------------------------------------------ options */

struct ba_opts {
	const char *provider;   /* "shm" | "verbs" */
	const char *device;     /* verbs device or NULL */
	char addr[128];         /* owner: "IP:PORT" or "shm:/NAME" */
	char floor_addr[128];   /* floor server: PORT + 1, or its own shm name */
	const char *owner_bin;
	const char *pool_dir;
	const char *json;
	unsigned rounds;        /* reported rounds (one more runs as warm-up) */
	unsigned batch;         /* ops per batch, per-op timed cases */
	unsigned hit_ms;        /* ms per hit batch (ops counted at calibration) */
	unsigned commit_batch;  /* commits per batch and process */
	unsigned threads[BA_MAX_THREADS];
	unsigned nthreads;
	unsigned cpu_ops;       /* operations per owner-CPU phase */
	bool pin;
	uint32_t spin_us;       /* fm_agent_cfg.spin_us (0: the library's default) */
	double ref_atomic_ns, ref_read_ns; /* perftest figures given by the caller */
};

__attribute__((noreturn, format(printf, 2, 3)))
void ba_die(int rc, const char *fmt, ...);

/* ------------------------------------------------------------- owner */

void owner_dir_make(struct fm_bench_owner *o, const char *pool_dir);
void owner_start(struct fm_bench_owner *o, const struct ba_opts *op, uint64_t grains);
void owner_counts(struct fm_bench_owner *o, struct fm_bench_owner_counts *c);

/* ------------------------------------------------------------- floor */

/* The floor (bench/common/floor.h): its server, forked before any
 * transport exists, and one connection with one lane per wait mode. */
pid_t floor_server_start(const struct ba_opts *op, unsigned nconn);

struct floor {
	const char *label;      /* "event" or "busy" */
	struct fm_floor f;
	struct fm_floor_lane l;
};

void floor_open(struct floor *f, const struct ba_opts *op, enum fm_wait_mode mode,
		const char *label);
void floor_close(struct floor *f);
/* one timed operation each, in ns (one clock read before, one after) */
double floor_read64(struct floor *f);
double floor_cas(struct floor *f);
double floor_cas2(struct floor *f);
double floor_casread(struct floor *f);
double floor_casread_cas(struct floor *f);
double floor_msg_rtt(struct floor *f);

/* ------------------------------------------------------------- peer */

struct peer {
	pid_t pid;
	int to, from;
};

struct peer_result {
	int rc;
	uint32_t done;
	uint64_t t_start, t_end; /* CLOCK_MONOTONIC ns, comparable across processes */
};

/* fork the second client process (before any transport); it joins on
 * peer_join, commits on peer_commit_go, quits on peer_stop */
void peer_start(struct peer *p, const struct ba_opts *op, uint64_t first_grain);
void peer_join(struct peer *p);
void peer_commit_go(struct peer *p, uint32_t n);
void peer_commit_wait(struct peer *p, struct peer_result *r);
void peer_stop(struct peer *p);

/* -------------------------------------------------------------- agent */

struct fm_agent *agent_join(const struct ba_opts *op, uint32_t client_id);

/* ------------------------------------------------------------ engines */

enum hit_kind {
	HIT_PATH,     /* io_begin + plan(READ_TARGET, 1 grain) + io_end */
	HIT_LOOKUP,   /* bare fm_cache_lookup on the agent's cache */
	HIT_BITMAP,   /* a bit test in a flat uint64_t array */
	HIT_BRACKET,  /* variant: io_begin + io_end only */
	HIT_PLAN,     /* variant: plan only, inside one bracket per batch */
	HIT_KINDS
};

struct hitset {
	struct fm_agent *a;
	uint64_t grains[BA_NHIT];
	uint32_t grain_shift;
	uint64_t *bits;         /* the flat bitmap floor, same bits set */
};

struct engines;

void engines_start(struct engines **out, const struct hitset *hs, unsigned nthreads,
		   bool pin);
/* run `kind` on the first `threads` engine threads, `ops` each.  per[i]
 * gets thread i's ns per operation (its batch time / ops); returns the
 * aggregate ops per second (all threads' ops / first start to last end) */
double engines_run(struct engines *e, enum hit_kind kind, unsigned threads, uint64_t ops,
		   double *per);
void engines_stop(struct engines **ep);
/* the same loop on the calling thread (owner-CPU phase), total ns */
uint64_t hit_loop(const struct hitset *hs, enum hit_kind kind, uint64_t ops);

/* -------------------------------------------------------------- paths */

/* Per-operation timed agent calls on the calling thread; each returns
 * the ns of the whole operation and gives its parts where it has some. */
double path_miss(struct fm_agent *a, uint64_t i);
double path_read_bitmap(struct fm_agent *a);
double path_lock_unlock(struct fm_agent *a, uint64_t i, double *lock_ns, double *unlock_ns);
double path_lock_commit(struct fm_agent *a, uint64_t grain, double *lock_ns,
			double *commit_ns);

/* ------------------------------------------------------------- local */

double local_timer(void);
double local_cpu_cas(void);
double local_handoff(void);
double local_msync(const char *dir);
void local_stop(void);

/* ------------------------------------------------------------ the run */

#define HIT_BATCHES 3u /* batches of each hit case per round */

/* every series of the run: a case's samples, one row of the table */
enum {
	S_TIMER, S_CPUCAS,
	S_BRACKET, S_PLAN,
	S_MISS, S_MISS_RB, S_READ_EV, S_READ_BUSY,
	S_LOCKPAIR, S_LOCK, S_UNLOCK,
	S_CAS2_EV, S_CASRD_EV, S_CASRD1_EV, S_CAS1_EV,
	S_CAS2_BUSY, S_CASRD_BUSY, S_CASRD1_BUSY, S_CAS1_BUSY,
	S_C1, S_C1_LOCK, S_C1_COMMIT, S_C2, S_MSGRTT, S_HANDOFF, S_MSYNC, S_RATE1, S_RATE2,
	S_HIT0,                                    /* ns/op: kind * MAX + thread index */
	S_HITR0 = S_HIT0 + 3 * BA_MAX_THREADS,     /* Mops/s aggregate, same layout */
	S_N = S_HITR0 + 3 * BA_MAX_THREADS
};

struct commit_acc {
	uint64_t store, owner, drains, thread, ops; /* deltas of the owner's counters */
};

enum { PH_IDLE, PH_HIT, PH_LOCK, PH_MISS, PH_COMMIT, PH_N };

struct cpu_phase {
	const char *name;
	uint64_t ops;
	struct fm_proc_cpu a, b;   /* the owner, before and after */
	struct fm_proc_cpu sa, sb; /* this process (client 1), every thread */
};

/* what a run measured, for the tables */
struct run {
	const struct ba_opts *opt;
	struct series S[S_N];
	uint64_t hit_ops[HIT_KINDS];      /* decisions per hit batch */
	struct commit_acc acc[2];         /* commits from 1 process, from 2 */
	struct fm_bench_owner_counts oc_end;
	struct cpu_phase ph[PH_N];
	uint64_t hit_fetches;             /* bitmap READs during hit batches */
	uint64_t miss_fetches, miss_calls;
	uint64_t grains;
	pid_t owner_pid;
	const char *owner_bin;
	char la0[64], la1[64];            /* load average at start, at end */
	double seconds;
	bool have_busy;                   /* busy-poll floors too (verbs) */
};

/* tables.c: names of the series; the tables and the JSON */
void run_series_init(struct run *R);
void tables_print(struct run *R);

#endif /* FM_BENCH_AGENT_H */
