/* demo.h -- flashmeta-demo's parts: what the parent (flashmeta-demo.c,
 * demo_run.c, demo_report.c) and the client processes (demo_client.c) share.
 *
 * THE RUN.  One host, every part real, over verbs on an RDMA device with
 * an IPv4 address or else over shm (--transport): the owner daemon
 * (flashmeta-owner, exec'd), N client processes (fork) each with an agent,
 * an engine and T threads, and file volumes (refvol.h) with the fence
 * table.  The parent drives the phases over one pipe pair per child:
 *
 *   parent                               client c (id c+1)
 *   ------                               -----------------
 *   run dir, key, fence table, owner,
 *   map-create, source/target files
 *   fork ------------------------------> agent, engine, volumes, attach
 *                        <-------------- MSG_READY
 *   CMD_PHASE1 -----------------------> write its chunks of the source
 *                        <-------------- MSG_PAUSED      (then idle)
 *   golden.img = source.img (checked
 *   against the pattern); map-prepare,
 *   map-start (the trigger)
 *   the owner's CPU time (/proc)
 *   CMD_GO ---------------------------> wait: map granted and COPYING;
 *                                       random I/O for --seconds
 *                        <-------------- MSG_RESULT (counters, CPU time,
 *                                       cache) + samples + target-write log
 *   the owner's CPU time again          delete engine, agent; exit 0
 *   expected.img = golden + every logged target write; fork the verifier:
 *   it reads the whole target through the engine and compares.
 *
 * WHO WRITES THE TARGET.  The volume is cut in stripes of DEMO_STRIPE
 * bytes; stripe k belongs to writer slot k % (W + 1), W = clients *
 * threads.  Thread t of client c is slot c * T + t and writes the target
 * only inside its own stripes; slot W is nobody's: those stripes must read
 * as the trigger image for ever.  So the final target is deterministic --
 * golden + each thread's writes in its own order -- while the SOURCE is
 * written by everyone everywhere (that is what forces the copy-on-write),
 * and grains larger than a stripe are shared by writers of several
 * processes (that is what forces lock hand-offs).  Ownership is per thread
 * rather than per client so that a thread's model of its stripes needs no
 * lock: nothing else writes them.
 *
 * DATA.  Every byte written is a function of (seed, offset): 8-byte words
 * demo_word(seed, offset).  The source before the trigger uses
 * demo_seed_source(run seed); a target write uses demo_seed_write(client,
 * thread, sequence) and is logged as (offset, length, seed); source writes
 * of phase 2 use another seed family (bit 63 set) and are not logged.
 *
 * The structs below cross a pipe between processes of THIS binary only
 * (same ABI by construction), so they are sent as they are.
 */
#ifndef FLASHMETA_DEMO_H
#define FLASHMETA_DEMO_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "flashmeta/agent.h"
#include "flashmeta/ctl.h"
#include "flashmeta/engine.h"
#include "flashmeta/refvol.h"
#include "procstat.h"

#define DEMO_NAME "flashmeta-demo"
#define DEMO_MAP_ID 1u
#define DEMO_SRC_VOL 10u
#define DEMO_TGT_VOL 20u
#define DEMO_LEASE_MS 3000u
#define DEMO_ALIGN 4096u              /* offsets and lengths of every I/O */
#define DEMO_IO_MIN 4096u
#define DEMO_IO_MAX (256u << 10)
#define DEMO_STRIPE (256u << 10)      /* unit of target-write ownership */
#define DEMO_CHUNK (1u << 20)         /* phase 1 and verifier I/O size */
#define DEMO_MAX_CLIENTS 15u          /* owner serves ids 1-16; 16 is the verifier */
#define DEMO_MAX_THREADS 16u
#define DEMO_MAX_DEPTH 16u
#define DEMO_MAX_GRAINS 65536u        /* the owner's --pool-max-grains */
#define DEMO_MAX_SIZE (UINT64_C(4) << 30)
#define DEMO_MIN_SIZE (UINT64_C(1) << 20)
#define DEMO_MSG_MAX 256
#define DEMO_MAX_SECONDS 600u         /* the target-write logs grow with it */
#define DEMO_SAMPLES (UINT64_C(8) << 20) /* latency samples kept, all threads */
#define DEMO_SAMPLES_MIN (UINT64_C(64) << 10) /* ... at least, per thread */

/* ------------------------------------------------------------ config */

struct demo_cfg {
	/* options */
	uint64_t size, grain, seed;
	unsigned clients, threads, seconds, depth;
	bool keep, quiet;
	const char *dir_opt, *owner_opt, *json_path;
	const char *transport_opt;   /* --transport: auto (NULL), shm, verbs */
	const char *device_opt;      /* --device */
	unsigned port;               /* --port (verbs) */
	int direct;                  /* --direct: enum fm_refvol_direct */
	/* the run */
	char dir[PATH_MAX - 32];
	char owner[PATH_MAX];
	char addr[64];
	char transport[8];           /* what the run uses: "shm" or "verbs" */
	char device[64];             /* verbs: the device */
	char why[256];               /* how the transport was chosen */
	char keyfile[PATH_MAX], ctl[PATH_MAX], pool[PATH_MAX], fence[PATH_MAX];
	char src[PATH_MAX], tgt[PATH_MAX], golden[PATH_MAX], expected[PATH_MAX];
	char log[PATH_MAX];
};

/* the command line into cfg: 0, 1 (--help was printed) or -EINVAL (the
 * reason printed on stderr) */
int demo_opts_parse(int argc, char **argv, struct demo_cfg *cfg);
/* cfg->owner: --owner, or flashmeta-owner beside /proc/self/exe; 0 or
 * -ENOENT (not executable there), detail in fm_errormsg() */
int demo_owner_path(struct demo_cfg *cfg);

/* writer slots (W) and the slot that owns the stripe holding `off`;
 * demo_slot_of() == demo_slots() is nobody's */
static inline unsigned demo_slots(const struct demo_cfg *c)
{
	return c->clients * c->threads;
}

static inline unsigned demo_slot_of(const struct demo_cfg *c, uint64_t off)
{
	return (unsigned)((off / DEMO_STRIPE) % (demo_slots(c) + 1));
}

/* ------------------------------------------------------------- data */

static inline uint64_t demo_mix(uint64_t x)
{
	x += UINT64_C(0x9e3779b97f4a7c15);
	x = (x ^ (x >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
	x = (x ^ (x >> 27)) * UINT64_C(0x94d049bb133111eb);
	return x ^ (x >> 31);
}

/* the 8 bytes at `off` (8-aligned) written with `seed` */
static inline uint64_t demo_word(uint64_t seed, uint64_t off)
{
	return demo_mix(seed ^ demo_mix(off));
}

static inline uint64_t demo_seed_source(uint64_t run_seed)
{
	return demo_mix(run_seed ^ UINT64_C(0x534f55524345)); /* "SOURCE" */
}

static inline uint64_t demo_seed_write(unsigned client, unsigned thread, uint64_t seq)
{
	return (uint64_t)(client + 1) << 48 | (uint64_t)thread << 40 |
	       (seq & ((UINT64_C(1) << 40) - 1));
}

/* buf = the bytes [off, off + len) of pattern `seed`; off, len 8-aligned */
void demo_fill(void *buf, uint64_t off, uint64_t len, uint64_t seed);

uint64_t demo_now_ns(void);

/* -------------------------------------------------------------- host */

/* CPU time of a process (demo_host.c): a sample, or the delta of two */
struct demo_cpu {
	bool ok;                     /* user_s, sys_s known */
	bool have_sched;             /* sched_ns known */
	double user_s, sys_s;        /* /proc/PID/stat utime, stime; or getrusage */
	uint64_t sched_ns;           /* on a CPU: every live thread's schedstat */
	uint64_t wall_ns;            /* demo_now_ns() of the sample; of a delta: the window */
	uint32_t nthreads;           /* live threads (schedstat) */
	struct fm_proc_cpu proc;     /* a sample of /proc (procstat.h); none for self */
};

/* process `pid` from /proc: 0, -errno (no such process), -EPROTO */
int demo_cpu_sample(pid_t pid, struct demo_cpu *s);
/* this process, every thread (getrusage RUSAGE_SELF); !s->ok if it failed */
void demo_cpu_self(struct demo_cpu *s);
/* d = b - a; d->have_sched only when the same threads were alive at both */
void demo_cpu_delta(const struct demo_cpu *a, const struct demo_cpu *b, struct demo_cpu *d);
/* devices in /sys/class/infiniband: their number, names space-separated */
unsigned demo_rdma_devices(char *names, size_t cap);
/* an RDMA device (`want`, or the first that has one) with an IPv4 address
 * on its port 1 network device: 0 and its name and the address, or
 * -ENODEV (why in fm_errormsg()) */
int demo_rdma_ipv4(const char *want, char *dev, size_t devcap, char *ip, size_t ipcap);

/* ------------------------------------------------------- the pipes */

/* parent -> child: one byte */
enum { DEMO_CMD_PHASE1 = 'W', DEMO_CMD_GO = 'G', DEMO_CMD_QUIT = 'Q' };

/* child -> parent: a header, then `len` bytes */
enum demo_msg_type {
	DEMO_MSG_READY = 1,   /* set up, joined */
	DEMO_MSG_PAUSED,      /* phase 1 done; no I/O until CMD_GO */
	DEMO_MSG_RESULT,      /* struct demo_result, samples, log */
	DEMO_MSG_VERIFY,      /* struct demo_verify */
	DEMO_MSG_ERROR,       /* text */
};

struct demo_msg {
	uint32_t type;
	uint32_t len;
};

/* the latency "paths": how an I/O was served (its fm_engine_io_stats) */
enum demo_path {
	DEMO_PATH_HIT = 0,  /* planned from the cache alone */
	DEMO_PATH_MISS,     /* read the owner's bitmap (one-sided READ) */
	DEMO_PATH_LOCK,     /* took grain locks, copied nothing */
	DEMO_PATH_COW,      /* copied grains source -> target */
	DEMO_PATH_COUNT
};
#define DEMO_SAMPLE(op, path, ns) \
	((uint64_t)((op) * DEMO_PATH_COUNT + (path)) << 56 | ((uint64_t)(ns) & ((UINT64_C(1) << 56) - 1)))
#define DEMO_SAMPLE_KIND(s) ((unsigned)((s) >> 56))
#define DEMO_SAMPLE_NS(s) ((s) & ((UINT64_C(1) << 56) - 1))

/* one completed target write, in the writing thread's order */
struct demo_twrite {
	uint64_t offset, length, seed;
};

struct demo_result {
	uint32_t client_id, threads;
	double phase1_s, phase2_s, wait_copying_ms;
	uint64_t ios[FM_IO_OP_COUNT], bytes[FM_IO_OP_COUNT];
	uint64_t polled_ios;
	uint64_t errors, violations, checked_bytes;
	struct fm_engine_stats eng;
	uint64_t joins, closes, locks_lost, steps_overdue, steps_refused;
	uint64_t lanes_broken;  /* engine lanes abandoned (fm_agent_stats) */
	struct fm_refvol_stats vsrc, vtgt;
	uint64_t nsamples, seen_samples; /* kept (sent), and I/Os timed */
	/* phase 2's I/O (the threads' run, phase2_s): CPU of the whole
	 * process (engine threads, agent thread, pattern and checks), and
	 * the counters as they were when it began */
	struct demo_cpu cpu;
	struct fm_engine_stats eng_go;
	struct fm_cache_stats cache_go, cache; /* the agent's confirmation
						* cache when phase 2 began, ended */
	uint64_t nlog[DEMO_MAX_THREADS];
	char first_error[DEMO_MSG_MAX];
	char first_violation[DEMO_MSG_MAX];
};

struct demo_verify {
	uint32_t client_id;
	int32_t status;              /* 0 or the failed read's errno */
	uint64_t bytes, mismatched_bytes, first_bad;
	double seconds;
	struct fm_engine_stats eng;
	char what[DEMO_MSG_MAX];     /* the first mismatch or the error */
};

/* whole buffers over a pipe: 0 or -errno (-EPIPE when the peer is gone) */
int demo_write_all(int fd, const void *buf, size_t len);
/* 0, -EPIPE (EOF), -ETIMEDOUT (no byte for timeout_ms), -errno */
int demo_read_all(int fd, void *buf, size_t len, int timeout_ms);
int demo_send(int fd, enum demo_msg_type type, const void *buf, size_t len);
int demo_send_error(int fd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---------------------------------------------------- the processes */

/* client process c (0-based; client id c + 1): returns its exit status */
int demo_client_main(const struct demo_cfg *cfg, unsigned c, int cmd_fd, int out_fd);
/* the verifier (client id clients + 1): reads the whole target through
 * the engine and compares it with expected.img */
int demo_verifier_main(const struct demo_cfg *cfg, int out_fd);

/* ------------------------------------------------ run dir and owner */

struct demo_run {
	pid_t owner;
	bool made_dir;
	unsigned nmade;               /* files we made, removed at the end */
	char made[16][PATH_MAX];
	int owner_exit;               /* after demo_owner_stop: -1 not stopped */
};

int demo_run_dir(struct demo_cfg *cfg, struct demo_run *run);
void demo_run_cleanup(const struct demo_cfg *cfg, struct demo_run *run);
/* a new file of `size` bytes (sparse), recorded for cleanup */
int demo_file_new(struct demo_run *run, const char *path, uint64_t size);
/* record a path some other process creates for us, for cleanup */
void demo_run_adopt(struct demo_run *run, const char *path);
int demo_key_write(struct demo_run *run, const struct demo_cfg *cfg);
int demo_owner_start(const struct demo_cfg *cfg, struct demo_run *run);
/* SIGTERM and wait; 0 when it exited 0 */
int demo_owner_stop(struct demo_run *run);
void demo_owner_log_tail(const struct demo_cfg *cfg, int lines);
/* one control command (printf-style, no newline); answer into out */
int demo_ctl(const struct demo_cfg *cfg, char *out, size_t cap, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
/* golden = source, each byte checked against the phase 1 pattern */
int demo_golden(const struct demo_cfg *cfg, struct demo_run *run, char *why, size_t cap);
/* expected = golden + logs (each client's threads' logs, in order) */
int demo_expected(const struct demo_cfg *cfg, struct demo_run *run,
		  struct demo_twrite *const *logs, const uint64_t *nlogs, unsigned nthr,
		  char *why, size_t cap);

/* ------------------------------------------------------------ report */

struct demo_report {
	const struct demo_cfg *cfg;
	pid_t owner_pid;
	double setup_s, phase1_s, trigger_ms, total_s;
	unsigned nclients;
	pid_t pids[DEMO_MAX_CLIENTS];
	struct demo_result res[DEMO_MAX_CLIENTS];
	int exit_status[DEMO_MAX_CLIENTS];
	uint64_t *samples;            /* all clients' */
	uint64_t nsamples, seen_samples;
	uint64_t twrites;             /* logged target writes */
	bool verified;
	struct demo_verify ver;
	int verifier_exit;
	char map_show[512];
	uint64_t split, grains;
	char group_commit[512];
	char sessions[512];
	int owner_exit;
	/* the owner's CPU over phase 2: CMD_GO to the last client's result */
	struct demo_cpu owner_cpu;
	/* the owner's `status`: "listen A transport T device D", "store P
	 * persist MODE view V ..." (empty: not answered) */
	char transport[32], device[64], persist[48], view[16];
	/* this host's RDMA devices (the demo runs over shm regardless) */
	unsigned nrdma;
	char rdma[128];
	/* the verdict */
	bool ok;
	char verdict[512];
	char problems[1024];          /* other reasons the run failed */
};

/* "file (msync), not on DAX", "pmem (DAX)", ... from r->persist */
void demo_pool_str(const struct demo_report *r, char *b, size_t cap);
/* "no RDMA device: shm", or that one exists and the demo runs over shm */
/* which transport the run uses, and why */
void demo_transport_str(const struct demo_cfg *cfg, const struct demo_report *r, char *b,
			size_t cap);
void demo_report_print(struct demo_report *r);
int demo_report_json(struct demo_report *r, const char *path);

#endif /* FLASHMETA_DEMO_H */
