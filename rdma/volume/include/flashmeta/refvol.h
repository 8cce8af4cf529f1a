/* refvol.h -- reference volumes behind the engine's mover interface
 * (flashmeta/engine.h): what tests, demos and benchmarks store data on.
 *
 *   memory  a private buffer of the process: metadata-only runs and unit
 *           tests.  FLUSH is a no-op (nothing outlives the process).
 *   file    a regular file or block device shared by every process that
 *           opens it: pread/pwrite, FLUSH = fdatasync.  Creating sizes a
 *           new file (sparse); an existing one must be at least `size`
 *           bytes.  Never truncated, never deleted.  Through the page
 *           cache, or with O_DIRECT (cfg.direct) where the file system or
 *           device allows it: then every request's offset and length must
 *           be multiples of the volume's alignment (the device's logical
 *           block size, 4096 for a file; fm_refvol_stats) or it fails
 *           with -EINVAL, and a buffer that is not aligned goes through
 *           an aligned bounce buffer.  FLUSH stays fdatasync (the device's
 *           cache and the file's metadata).
 *
 * Both complete every request before submit returns (fm_mover_done runs
 * on the caller's thread).  With a fence table (flashmeta/fence_table.h),
 * every WRITE and FLUSH is admitted by fm_fence_table_enter for the
 * volume's client id and the request's token and runs under it: a write
 * of a session the owner fenced is refused with -EKEYREJECTED and lands
 * nowhere.  READs are never refused (a stale reader only hurts itself).
 * Without a table, tokens are ignored.
 *
 * Errors: negative errno, detail in fm_errormsg().
 */
#ifndef FLASHMETA_REFVOL_H
#define FLASHMETA_REFVOL_H

#include <stdbool.h>
#include <stdint.h>

#include "flashmeta/engine.h"
#include "flashmeta/fence_table.h"

#ifdef __cplusplus
extern "C" {
#endif

struct fm_refvol;

/* fm_refvol_cfg.direct */
enum fm_refvol_direct {
	FM_REFVOL_BUFFERED = 0,   /* the page cache */
	FM_REFVOL_DIRECT_TRY,     /* O_DIRECT where allowed, else the page cache */
	FM_REFVOL_DIRECT,         /* O_DIRECT, or fm_refvol_open fails -EINVAL */
};

struct fm_refvol_cfg {
	uint64_t size;                /* bytes; > 0 */
	const char *path;             /* file volume: the file or device;
				       * NULL: a memory volume */
	bool create;                  /* file: create it if missing */
	struct fm_fence_table *fence; /* may be NULL; not owned */
	uint32_t client_id;           /* the writer's, with a fence table */
	enum fm_refvol_direct direct; /* file volumes */
};

/* 0, -EINVAL (size 0, a file shorter than size, client 0 with a fence
 * table, FM_REFVOL_DIRECT where O_DIRECT is refused), -ENOMEM, or the
 * errno of open/fstat/ftruncate. */
int fm_refvol_open(const struct fm_refvol_cfg *cfg, struct fm_refvol **out);
/* NULL-safe; sets *vp = NULL.  No request may be in flight. */
void fm_refvol_close(struct fm_refvol **vp);

/* The movers: fm_engine_volume_add(e, fm_refvol_ops(), vol, size, ...). */
const struct fm_mover_ops *fm_refvol_ops(void);
/* One request run directly, outside an engine (tools, checks, tests):
 * returns the status the mover would complete it with.  r->op, offset,
 * length, buf and token are read; nothing else. */
int fm_refvol_do(struct fm_refvol *v, const struct fm_mover_req *r);

struct fm_refvol_stats {
	uint64_t reads, writes, flushes;
	uint64_t bytes_read, bytes_written;
	uint64_t refused;             /* writes/flushes the fence refused */
	bool direct;                  /* O_DIRECT in use */
	uint32_t align;               /* ... its offset/length/buffer alignment */
	uint64_t bounced;             /* requests that went through the bounce buffer */
};
void fm_refvol_stats(struct fm_refvol *v, struct fm_refvol_stats *st);

#ifdef __cplusplus
}
#endif

#endif /* FLASHMETA_REFVOL_H */
