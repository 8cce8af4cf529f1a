/* owner_proc.h -- the real flashmeta-owner as a child process of a
 * benchmark: a temp dir with its pool, key file and control socket,
 * fork + exec with flags, commands on its control socket (the way
 * tests/integration/svc_util.c drives it), its `status` counters.
 *
 * Fork it (and every other child) before the benchmark process makes a
 * transport: verbs cannot work in a child forked after its parent's first
 * RDMA call.  Errors: negative errno, detail in fm_errormsg().
 */
#ifndef FM_BENCH_OWNER_PROC_H
#define FM_BENCH_OWNER_PROC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct fm_bench_owner_cfg {
	const char *provider;   /* "shm" | "verbs" */
	const char *device;     /* verbs device or NULL */
	const char *addr;       /* --listen: "IP:PORT" or "shm:/NAME" */
	const char *clients;    /* --clients, e.g. "1-16" */
	unsigned lease_ms;      /* --lease-ms */
	unsigned max_maps;      /* --pool-max-maps */
	uint64_t max_grains;    /* --pool-max-grains */
	const char *log_level;  /* --log-level; NULL: "warn" */
};

struct fm_bench_owner {
	char bin[512];
	char dir[256];          /* the temp dir: pool, key, ctl, owner.log */
	char ctl[300], pool[300], keyfile[300];
	pid_t pid;              /* 0: not running */
};

/* The owner's `status` counters a benchmark reads. */
struct fm_bench_owner_counts {
	uint64_t store_commits;  /* store: split commits, one drain (persist) each */
	uint64_t owner_commits;  /* protocol: SPLIT_COMMITs served */
	uint64_t lock_requests;  /* LOCK_REQUESTs received (contended locks) */
	uint64_t lock_grants;    /* LOCK_GRANTs sent */
	uint64_t acks;           /* SPLIT_ACKs sent after a persist (not the
				  * early STALE ones, not error answers) */
	uint64_t queries;        /* SPLIT_QUERYs received: each answered by one
				  * message (SPLIT_ANSWER or an error) */
	bool have_group;         /* the owner prints a "group-commit" line: */
	uint64_t drains;         /*   drains or msyncs issued */
	uint64_t thread_commits; /*   store commits run by its commit thread */
	char persist[48];        /* "pmem (flush+drain)" or "msync" */
};

/* mkdtemp DIR/TAG-XXXXXX, the paths in it, the key file holding `key`.
 * o->bin must be set by the caller.  0, -errno, -EIO. */
int fm_bench_owner_dir(struct fm_bench_owner *o, const char *pool_dir, const char *tag,
		       const char *key);
/* fork + exec o->bin with cfg's flags (stdout and stderr to DIR/owner.log),
 * then wait up to 10 s for its control socket to answer `status`.
 * 0; -ECHILD (it exited: the log's tail is printed to stderr), -ETIMEDOUT,
 * -errno of fork. */
int fm_bench_owner_start(struct fm_bench_owner *o, const struct fm_bench_owner_cfg *cfg);
/* One control command (printf format, newline added); its answer in out.
 * 0 or the control call's errno (an error answer: -EREMOTEIO). */
int fm_bench_owner_ctl(struct fm_bench_owner *o, char *out, size_t cap, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
/* `status`, parsed.  0 or the control call's errno. */
int fm_bench_owner_counts(struct fm_bench_owner *o, struct fm_bench_owner_counts *c);
/* `map-show ID`: grains split now, and the mapping's grains.  0, or the
 * control call's errno, -EPROTO (no such fields). */
int fm_bench_owner_map_split(struct fm_bench_owner *o, uint64_t map_id, uint64_t *split,
			     uint64_t *grains);
/* DIR/owner.log to `out`, every line indented */
void fm_bench_owner_log_tail(const struct fm_bench_owner *o);
/* SIGTERM (SIGKILL after 5 s), reap, rm -rf the dir (unless env FM_KEEP
 * is set).  Safe to call twice and on a never-started owner. */
void fm_bench_owner_stop(struct fm_bench_owner *o);

#endif /* FM_BENCH_OWNER_PROC_H */
