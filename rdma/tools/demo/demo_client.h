/* demo_client.h -- flashmeta-demo: what the client-side files share (a
 * client process: demo_client.c; its phase 2 I/O: demo_io.c; the verifier:
 * demo_verify.c).  Not used by the parent. */
#ifndef FLASHMETA_DEMO_CLIENT_H
#define FLASHMETA_DEMO_CLIENT_H

#include <pthread.h>
#include <stdatomic.h>

#include "demo.h"
#include "flashmeta/fence_table.h"

/* One client process: its session, engine and volumes.  Set up by the
 * main thread before the engine threads start; then read-only but for
 * `stop` (any thread) and `model` (each thread writes its own stripes). */
struct dclient {
	const struct demo_cfg *cfg;
	unsigned c;                  /* index; client id c + 1 */
	uint32_t id;
	struct fm_agent *a;
	struct fm_engine *e;
	struct fm_fence_table *fence;
	struct fm_refvol *vsrc, *vtgt;
	struct fm_volume *src, *tgt;
	uint8_t *model;              /* golden + this process's target writes */
	uint64_t deadline_ns;
	atomic_bool stop;            /* an I/O failed: every thread stops */
};

/* one I/O of phase 2 */
struct dio {
	enum fm_io_op op;
	uint64_t off, len, seed;
};

/* One engine thread.  Everything below `cl` is the thread's own until it
 * is joined; the main thread reads the results after pthread_join. */
struct dthread {
	struct dclient *cl;
	unsigned t, slot;
	bool polled;
	pthread_t tid;
	uint64_t rng;
	uint64_t *own;               /* stripes this thread writes */
	uint64_t nown, seq;
	/* results, read by the main thread after join */
	uint64_t ios[FM_IO_OP_COUNT], bytes[FM_IO_OP_COUNT];
	uint64_t errors, violations, checked, polled_ios;
	uint64_t *samples;
	uint64_t nsamples, cap_samples, seen_samples;
	struct demo_twrite *log;
	uint64_t nlog, cap_log;
	double phase1_s;
	char first_error[DEMO_MSG_MAX];
	char first_violation[DEMO_MSG_MAX];
};

static inline uint64_t demo_rnd(uint64_t *x)
{
	*x ^= *x << 13;
	*x ^= *x >> 7;
	*x ^= *x << 17;
	return *x;
}

/* count an error, keep the first message, and stop every thread */
void demo_th_error(struct dthread *th, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* agent (joined), fence table, both volumes, engine with the mapping
 * attached.  0 or a negative errno; *what names the step that failed. */
int demo_client_open(struct dclient *cl, const struct demo_cfg *cfg, uint32_t id,
		     const char **what);
/* everything demo_client_open made; safe on a half-made one */
void demo_client_close(struct dclient *cl);

/* phase 2 of one thread (pthread entry; demo_io.c) */
void *demo_phase2_thread(void *arg);

#endif /* FLASHMETA_DEMO_CLIENT_H */
