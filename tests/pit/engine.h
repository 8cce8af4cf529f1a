/* engine.h -- an I/O engine over fm_agent, as the checker drives it.
 *
 * pit_eng_io() does one host I/O on a mapping's source or target volume
 * (plain files) the way agent.h tells an engine to: io_begin, plan, per
 * extent DIRECT / REDIRECT_TO_SOURCE (read, then re-check the split) /
 * COPY_THEN_WRITE and WRITE_AND_SPLIT under the grain lock in the
 * durability order, io_end; and it restarts the whole I/O on the errors
 * agent.h names.  This file is where the recipe changes when the agent
 * API does (a lease guard around each destructive data step, a fencing
 * token per lock): the rest of fm-pit sees only this interface.
 *
 * The hooks let the caller observe the I/O without knowing the recipe:
 * `begin` runs once per attempt inside the bracket, before any data step
 * (tag the buffer with the bracket's generation, log START); `end` after
 * io_end; `step` before each storage step of a copy-on-write, where the
 * caller may stall (slow storage) or raise flags for fault injection.
 */
#ifndef FM_TESTS_PIT_ENGINE_H
#define FM_TESTS_PIT_ENGINE_H

#include <stdbool.h>
#include <stdint.h>

#include "flashmeta/agent.h"
#include "flashmeta/planner.h"

struct pit_vols {
	int src, tgt;            /* the volumes, opened read-write */
	uint64_t map;            /* mapping id */
};

/* steps of one grain's copy-on-write, in order (PIT_STEP_UNLOCKED ends
 * a COW that did not commit), and the one step of a redirected read */
enum pit_step {
	PIT_STEP_LOCKED = 0,     /* the grain lock is ours and the grain unsplit */
	PIT_STEP_COPY_READ,      /* about to read the source grain */
	PIT_STEP_COPY_WRITE,     /* about to write that copy to the target */
	PIT_STEP_TGT_WRITE,      /* about to write target data */
	PIT_STEP_SYNC,           /* about to make the target durable */
	PIT_STEP_COMMIT,         /* about to call fm_agent_commit_split */
	PIT_STEP_COMMITTED,      /* it returned (rc passed); the lock is released */
	PIT_STEP_UNLOCKED,       /* the lock was given back without a split */
	PIT_STEP_SRC_WRITE,      /* about to write the source */
	PIT_STEP_REDIRECT,       /* a redirect is about to read the source (then
				  * re-check); grain: the extent's first */
	PIT_STEP_COUNT
};

struct pit_eng_hooks {
	void *ctx;
	/* a new attempt, bracket open (io->map.generation / .state); a
	 * non-zero return ends the I/O with that value */
	int (*begin)(void *ctx, const struct fm_agent_io *io);
	/* the attempt that `begin` opened ended with rc (after io_end) */
	void (*end)(void *ctx, int rc);
	/* before a step of grain `grain`'s COW; rc: COMMITTED's result */
	void (*step)(void *ctx, enum pit_step s, uint64_t grain, int rc);
};

/*
 * pit_eng_io -- op on bytes [off, off + len) of map v->map (sector
 * multiples); buf receives a read, holds a write.  Attempts the I/O until
 * it succeeds, fails with an error that is not transient, or retry_ms
 * passed.  Returns 0 or a negative errno (detail in fm_errormsg());
 * *attempts (if not NULL) counts the attempts whose `begin` ran.
 * Blocks (the agent, storage, hooks).
 */
int pit_eng_io(struct fm_agent *a, const struct pit_vols *v, enum fm_io_op op, uint64_t off,
	       uint64_t len, void *buf, const struct pit_eng_hooks *h, uint32_t retry_ms,
	       unsigned *attempts);

/*
 * Mutants: deliberately broken recipes, to prove the checker catches them
 * (fm-pit --mutate NAME --expect-fail).  Set once per process, before any
 * I/O; PIT_MUT_NONE in every real run.
 */
enum pit_mutation {
	PIT_MUT_NONE = 0,
	PIT_MUT_SKIP_COPY,       /* COPY_THEN_WRITE without the copy */
	PIT_MUT_SOURCE_FIRST,    /* the source write before the copy and commit */
	PIT_MUT_NO_RECHECK,      /* REDIRECT_TO_SOURCE trusts its read without is_split */
	PIT_MUT_COUNT
};
extern enum pit_mutation pit_eng_mutation;
const char *pit_mutation_name(enum pit_mutation m);

/* the errors after which agent.h says: end the I/O and start it again */
bool pit_eng_transient(int rc);

const char *pit_step_name(enum pit_step s);

#endif /* FM_TESTS_PIT_ENGINE_H */
