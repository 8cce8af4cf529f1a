/* engine.h -- the checker's I/O engine: the library's own (flashmeta/
 * engine.h) on the run's volumes, with its steps made visible.
 *
 * pit_eng_io() hands one host I/O to fm_engine, in either of its two
 * forms: synchronous (fm_engine_rw) or polled (fm_engine_submit, then
 * fm_engine_poll on this thread until the callback ran -- exactly once,
 * or the process exits 3).  The copy-on-write order under test is the
 * library's, written once in rdma/agent/eio.c; nothing here re-implements
 * it.  The volumes are reference file volumes (flashmeta/refvol.h) that
 * check the owner's fence table: a write of a session the owner fenced
 * lands nowhere.
 *
 * The hooks see the I/O through the engine's trace (engine.h): `begin`
 * once per attempt, before any data step (tag the buffer with the pinned
 * generation, log START); `end` after the attempt's bracket ended;
 * `step` before each storage step and at the lock and commit points,
 * where the caller may stall (slow storage) or raise flags that aim a
 * fault.  All of them run on the thread that called pit_eng_io.
 */
#ifndef FM_TESTS_PIT_ENGINE_H
#define FM_TESTS_PIT_ENGINE_H

#include <stdbool.h>
#include <stdint.h>

#include "flashmeta/agent.h"
#include "pit.h"

struct pit_eng;

/* the steps of an I/O, in the order a copy-on-write takes them */
enum pit_step {
	PIT_STEP_LOCKED = 0,     /* the I/O holds its first lock of an unsplit grain */
	PIT_STEP_COPY_READ,      /* about to read a source grain to copy it */
	PIT_STEP_COPY_WRITE,     /* about to write that copy to the target */
	PIT_STEP_TGT_WRITE,      /* about to write target data */
	PIT_STEP_SYNC,           /* about to make the target durable */
	PIT_STEP_COMMIT,         /* a SPLIT_COMMIT of grains [first, last] goes out */
	PIT_STEP_COMMITTED,      /* its answer (rc) */
	PIT_STEP_UNLOCKED,       /* the I/O gave back its last lock */
	PIT_STEP_SRC_WRITE,      /* about to write the source */
	PIT_STEP_REDIRECT,       /* a target read is about to read the source
				  * (the library re-checks after it) */
	PIT_STEP_COUNT
};

struct pit_eng_hooks {
	void *ctx;
	/* an attempt began, the mapping pinned at `map`; a write's buffer
	 * may be rewritten here (nothing of this attempt moved yet) */
	void (*begin)(void *ctx, const struct fm_agent_map *map);
	/* that attempt ended with rc (its bracket closed) */
	void (*end)(void *ctx, int rc);
	/* step s of grains [first, last]; rc: COMMITTED's */
	void (*step)(void *ctx, enum pit_step s, uint64_t first, uint64_t last, int rc);
};

/* The engine of one client process over agent a: every mapping of e
 * attached, volumes opened (never created), fence table e->dir/fence.
 * 0 or a negative errno (detail in fm_errormsg()). */
int pit_eng_open(const struct pit_env *e, struct fm_agent *a, uint32_t client_id,
		 uint32_t retry_ms, struct pit_eng **out);
/* pit_eng_copy_start -- run the engine's background copier (engine.h);
 * its pieces' ATTEMPT / COMMIT / COMMITTED / ATTEMPT_END go to bg[i] for
 * mapping index i (on the copier thread, which runs one piece of each
 * mapping at a time; bg lives until pit_eng_close, which stops it).
 * 0 or fm_engine_copy_start's errno. */
int pit_eng_copy_start(struct pit_eng *pe, const struct pit_eng_hooks *bg);
void pit_eng_close(struct pit_eng **pp);

/*
 * pit_eng_io -- op on bytes [off, off + len) of mapping index `map`
 * (sector multiples); buf receives a read, holds a write.  The library
 * restarts the I/O after transient failures for up to retry_ms.  Returns
 * 0 or a negative errno (engine.h's list); *attempts (may be NULL) counts
 * the attempts whose `begin` ran.  Blocks (the owner, storage, hooks).
 */
int pit_eng_io(struct pit_eng *pe, unsigned map, enum fm_io_op op, uint64_t off, uint64_t len,
	       void *buf, const struct pit_eng_hooks *h, bool polled, unsigned *attempts);

/*
 * Mutants: storage that breaks the copy-on-write order behind the
 * library's back, to prove the checker catches a broken order
 * (fm-pit --mutate NAME --expect-fail).  Set once per process, before
 * any I/O; PIT_MUT_NONE in every real run.
 */
enum pit_mutation {
	PIT_MUT_NONE = 0,
	PIT_MUT_SKIP_COPY,       /* the copy's target write never lands */
	PIT_MUT_SOURCE_FIRST,    /* a source write lands as soon as its grain
				  * is locked: before the copy and the commit */
	PIT_MUT_NO_RECHECK,      /* a redirected read of a grain split meanwhile
				  * keeps the source bytes (the re-check's
				  * target read never lands) */
	PIT_MUT_COUNT
};
extern enum pit_mutation pit_eng_mutation;
const char *pit_mutation_name(enum pit_mutation m);

const char *pit_step_name(enum pit_step s);

#endif /* FM_TESTS_PIT_ENGINE_H */
