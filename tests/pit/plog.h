/* plog.h -- the clients' I/O logs: what the checker knows about a run.
 *
 * One file per client incarnation (PIT_DIR/log.c<idx>.i<inc>), appended
 * with one write(2) per record by every engine thread of that process
 * (O_APPEND: records never interleave).  Per I/O attempt:
 *
 *   START  after fm_agent_io_begin, BEFORE any data step: the bracket's
 *          generation and map state, the op and blocks, and for a write
 *          the sequence number every block of it is tagged with.  A
 *          process killed mid-I/O leaves its START behind.
 *   END    after fm_agent_io_end: the result, and for a read one
 *          observation (the decoded tag) per block.
 *
 * and around every split commit COMMIT_BEGIN (before the call) and
 * COMMIT (its result).  Records are host-endian (the log never leaves the
 * machine that wrote it), fixed-width, with a length and a CRC-32C; a
 * torn last record (a kill inside write(2)) ends the file.
 */
#ifndef FM_TESTS_PIT_PLOG_H
#define FM_TESTS_PIT_PLOG_H

#include <assert.h>
#include <stddef.h>
#include <stdint.h>

#define PIT_REC_MAGIC 0x43455250u /* "PREC" */

enum pit_rec_type {
	PIT_REC_START = 1,
	PIT_REC_END = 2,
	PIT_REC_COMMIT_BEGIN = 3,
	PIT_REC_COMMIT = 4,
};

struct pit_rec {
	uint32_t magic;
	uint16_t type;     /* enum pit_rec_type */
	uint16_t nobs;     /* END of a read: struct pit_obs that follow */
	uint32_t len;      /* bytes, the whole record */
	uint32_t crc;      /* CRC-32C of the record with this field zero */
	uint64_t io;       /* attempt id, unique within the file */
	uint64_t t_ns;     /* CLOCK_MONOTONIC */
	uint64_t gen;      /* generation of the bracket */
	uint64_t seq;      /* START of a write: the tags' sequence number */
	uint64_t block;    /* first block; COMMIT*: the grain */
	uint32_t nblk;
	int32_t rc;        /* END, COMMIT: 0 or -errno */
	uint16_t writer;
	uint16_t client;   /* client index */
	uint16_t map;      /* index into the run's maps */
	uint8_t op;        /* enum fm_io_op */
	uint8_t state;     /* enum fm_map_state of the bracket */
	uint32_t vol;
	uint32_t inc;      /* incarnation of the client */
};
static_assert(sizeof(struct pit_rec) == 80, "pit_rec layout");

/* one block of a read, as decoded (tag.h) */
struct pit_obs {
	uint8_t kind;      /* enum pit_val_kind */
	uint8_t pad;
	uint16_t writer;
	uint32_t vol;
	uint64_t block;
	uint64_t seq;      /* garbage: CRC of the bytes */
	uint64_t gen;
};
static_assert(sizeof(struct pit_obs) == 32, "pit_obs layout");

/* open (create) a log for appending: fd or -errno */
int pit_log_open(const char *path);

/* append one record (+ nobs observations); fills magic/len/crc.
 * 0 or -errno.  Thread-safe (one write(2)). */
int pit_log_put(int fd, struct pit_rec *r, const struct pit_obs *obs, unsigned nobs);

/*
 * pit_log_load -- read a whole log.  Calls fn for every valid record in
 * order (obs points into a buffer valid during the call).  Returns the
 * number of records, or -errno; *torn (if not NULL) says whether the file
 * ended in a partial or corrupt record (then everything after is ignored).
 */
typedef int (*pit_log_fn)(void *ctx, const struct pit_rec *r, const struct pit_obs *obs);
long pit_log_load(const char *path, pit_log_fn fn, void *ctx, int *torn);

#endif /* FM_TESTS_PIT_PLOG_H */
