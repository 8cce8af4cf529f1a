/* pit.h -- the point-in-time checker: what its files share.
 *
 * fm-pit runs the real flashmeta-owner, forks client processes that do
 * random I/O on FlashCopy sources and targets through the library's I/O
 * engine (flashmeta/engine.h, both forms; engine.c), injects faults from a seed, and
 * checks from the clients' logs that every target read returned what the
 * source held at the trigger plus the target's own writes (check.c).
 *
 * Geometry.  Blocks of PIT_BLOCK bytes, grains of PIT_GRAIN (PIT_BPG
 * blocks).  Every block of a volume has exactly one writer (an engine
 * thread of one client), pit_block_writer(): writes to one block are
 * totally ordered by that writer's sequence numbers, so a read can be
 * placed among them.  Writers still share grains, so grain locks are
 * contended:
 *
 *   grain g, g % 8 < 6:   stripes of PIT_STRIPE blocks,
 *                         stripe s owned by writer (g + s) % W
 *   grain g, g % 8 >= 6:  the two grains (a "run") belong to one writer,
 *                         (g / 8) % W: whole-grain target writes
 *                         (WRITE_AND_SPLIT) and writes across grains
 *
 * with W = clients * threads.  Volume ids: map m has source 2m-1 and
 * target 2m; each volume is a file PIT_DIR/vol<id>.
 *
 * Shared memory.  One MAP_SHARED page set, made by the parent before any
 * fork (struct pit_shared): the stop flag, and per client what the parent
 * needs to aim a fault (threads inside a copy / a commit) and to count
 * I/Os.  Every field is an atomic written by that client's threads and
 * read by the parent; nothing else is shared between processes.
 */
#ifndef FM_TESTS_PIT_H
#define FM_TESTS_PIT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#define PIT_BLOCK 512u
#define PIT_GRAIN 4096u
#define PIT_BPG (PIT_GRAIN / PIT_BLOCK) /* blocks per grain */
#define PIT_STRIPE 2u                   /* blocks per stripe */
#define PIT_MAX_CLIENTS 32u             /* worker clients */
#define PIT_MAX_THREADS 8u              /* engine threads per client */
#define PIT_MAX_MAPS 4u
#define PIT_MAX_IO_BLOCKS 128u          /* largest I/O (the final sweep) */

/* one mapping under test */
struct pit_map {
	uint64_t id;           /* 1.. */
	uint32_t src_vol, tgt_vol;
	uint64_t grains;
	uint64_t hot_grains;   /* half the I/O of this map lands in [0, hot) */
};

static inline uint64_t pit_map_blocks(const struct pit_map *m)
{
	return m->grains * PIT_BPG;
}

/* the writer (0 .. writers-1) that owns block b of either volume */
static inline unsigned pit_block_writer(uint64_t b, unsigned writers)
{
	uint64_t g = b / PIT_BPG;
	unsigned s = (unsigned)((b % PIT_BPG) / PIT_STRIPE);

	if (g % 8 >= 6)
		return (unsigned)((g / 8) % writers);
	return (unsigned)((g + s) % writers);
}

/* per client: written by its threads, read by the parent */
struct pit_cshared {
	atomic_int in_copy;      /* threads holding a grain lock for a COW */
	atomic_int in_commit;    /* threads inside fm_agent_commit_split */
	atomic_int in_slow;      /* threads inside a slow storage step */
	atomic_int ready;        /* agent active, workers running */
	atomic_uint_fast64_t ios[4];   /* completed I/Os by enum fm_io_op */
	atomic_uint_fast64_t attempts; /* attempts that began (START logged) */
	atomic_uint_fast64_t failed;   /* I/Os given up (not retried) */
	atomic_uint_fast64_t slow;     /* slow steps taken */
};

struct pit_shared {
	atomic_int stop;         /* workers: finish the current I/O and exit */
	/* scenarios: a scripted slow step of client i lasts until gate[i] is
	 * opened (1) by the parent, or its length ran out */
	atomic_int gate[PIT_MAX_CLIENTS + 1];
	struct pit_cshared c[PIT_MAX_CLIENTS + 1]; /* + the final reader */
};

/* what one client process is told at fork */
enum pit_client_kind {
	PIT_CLIENT_RANDOM = 0,   /* autonomous random workers */
	PIT_CLIENT_SCRIPTED = 1, /* executes the parent's commands (scenarios) */
	PIT_CLIENT_SWEEP = 2,    /* the final reader: every block, the bitmaps */
};

/* configuration (command line) */
struct pit_cfg {
	const char *scenario;    /* NULL: random run; "restart-race", "stall-race" */
	uint64_t seed;
	unsigned clients;        /* worker client processes */
	unsigned threads;        /* engine threads per client */
	uint32_t lease_ms;
	uint32_t duration_ms;    /* load phase */
	uint64_t min_ios;        /* ...extended until this many I/Os completed */
	unsigned min_faults;     /* ...and this many faults of every enabled kind */
	uint32_t max_ms;         /* hard cap of the load phase */
	uint32_t fault_gap_ms;   /* mean pause between faults; 0 = no faults */
	unsigned weight[4];      /* per enum pit_fault_kind; 0 disables */
	double stop_lo[4], stop_hi[4]; /* SIGSTOP length bands, x lease */
	unsigned stop_bands;
	unsigned slow_pct;       /* % of copy/write steps that stall ... */
	uint32_t slow_ms;        /* ... for 1..slow_ms ms */
	uint32_t aim_ms;         /* how long a fault waits for its moment */
	uint64_t big_grains, small_grains;
	uint32_t retry_ms;       /* an I/O is restarted for at most this long */
	uint32_t rate;           /* I/Os per second, all clients; 0 = as fast as they go */
	uint32_t copy_rate;      /* background copy (copy.h 0..150): every random
				  * client runs the engine's copier; 0 = none */
	const char *provider;
	const char *addr;        /* NULL: shm:/fm-pit-PID */
	const char *device;
	const char *owner_bin;
	const char *pmem_tool;   /* flashmeta-pmem, for the pool check; NULL: skip */
	const char *dir_base;    /* where the run dir is made (tmpfs) */
	unsigned mutation;       /* enum pit_mutation: broken storage (self-test) */
	unsigned form;           /* enum pit_form: which engine calls the threads use */
	bool expect_fail;        /* exit 0 only if the check finds something */
	bool keep;               /* keep the run dir */
	bool owner_debug;
	int verbose;
};

/* the engine API's two forms (flashmeta/engine.h) */
enum pit_form {
	PIT_FORM_MIXED = 0,      /* even threads synchronous, odd ones polled */
	PIT_FORM_SYNC,           /* fm_engine_rw */
	PIT_FORM_POLLED,         /* fm_engine_submit + fm_engine_poll */
};

enum pit_fault_kind {
	PIT_F_CLIENT_KILL = 0,
	PIT_F_OWNER_KILL = 1,
	PIT_F_CLIENT_STOP = 2,
	PIT_F_RETRIGGER = 3,
	PIT_F_KINDS
};

/* the environment every process of a run sees (set up before forks) */
struct pit_env {
	const struct pit_cfg *cfg;
	char dir[256];
	char addr[160];
	char key[64];
	size_t key_len;
	struct pit_map maps[PIT_MAX_MAPS];
	unsigned nmaps;
	unsigned writers;        /* clients * threads */
	struct pit_shared *sh;
	uint64_t t0_ns;          /* run start, CLOCK_MONOTONIC */
};

uint64_t pit_now_ns(void);
uint64_t pit_rnd(uint64_t *state);        /* xorshift64, state != 0 */
uint64_t pit_rnd_seed(uint64_t a, uint64_t b); /* a non-zero state from two values */
uint64_t pit_rnd_below(uint64_t *state, uint64_t n); /* 0 .. n-1; n > 0 */
void pit_sleep_ms(uint32_t ms);
void pit_sleep_us(uint32_t us);
double pit_rel_s(const struct pit_env *e, uint64_t t_ns); /* seconds since t0 */
void pit_vol_path(const struct pit_env *e, uint32_t vol, char *buf, size_t cap);
void pit_log_path(const struct pit_env *e, unsigned idx, uint32_t inc, char *buf, size_t cap);

/* client.c: the body of a forked client process; returns its exit status */
int pit_client_main(const struct pit_env *e, unsigned idx, uint32_t inc,
		    enum pit_client_kind kind, int cmd_fd, int reply_fd);

/* a scripted client's command and its answer (scenarios) */
struct pit_cmd {
	uint32_t id;
	uint8_t op;              /* enum fm_io_op */
	uint8_t thread;          /* engine thread (writer = idx * threads + thread) */
	uint8_t slow_step;       /* enum pit_step + 1, 0 = none */
	uint8_t pad;
	uint32_t map;            /* index into env maps */
	uint32_t nblk;
	uint64_t block;
	uint32_t slow_ms;
	uint32_t pad2;
};

struct pit_reply {
	uint32_t id;
	int32_t rc;
	uint64_t t_begin_ns, t_end_ns;
};

#endif /* FM_TESTS_PIT_H */
