/* fence_table.h -- a storage fence table: the reference volumes' side of the
 * fencing tokens (flashmeta/lease.h R5).
 *
 * A fence table is a file of 65536 floors, one per client id (8 bytes
 * each, little-endian, 512 KiB).  A write of client c carrying token t is
 * accepted only while t >= floor[c].  Tokens are (owner incarnation << 32
 * | session epoch): every later session of a client, and every session of
 * a later owner incarnation, has a larger token.  So when the owner raises
 * floor[c] above the token of a session it fenced, every write that
 * session still has in the air is refused, and every later session of c
 * is not affected.  (A floor per grain, "the highest token seen", would be
 * wrong: tokens order sessions, not lock grants -- an older session may
 * rightly take a grain after a newer one held it.)
 *
 * WHO RAISES.  The owner, configured with the table's path (`fence-table`
 * in its config, flashmeta-owner(8)):
 *   - when it fences a session, before it reclaims the session's locks:
 *     floor[c] = that session's token + 1;
 *   - when it starts: floor[c] = incarnation << 32 for every client id it
 *     serves, so no write of a previous incarnation's sessions lands once
 *     the new one hands out a lock -- the restart no longer rests on the
 *     timing assumption of lease.h R6 alone.
 *
 * ATOMICITY (the point of the table).  A check and the write it admits
 * must not be split by a raise: otherwise a writer checks, stalls, the
 * owner raises and reclaims, another client copies and commits, and the
 * stale write lands after all.  So a writer holds a shared lock on its
 * SESSION's byte -- offset (client << 40) + epoch of the token, far past
 * the end of the file -- from the check until its write returned
 * (fm_fence_table_enter / _exit), and a raise takes the exclusive lock
 * on that byte (a session's fence) or on the clients' whole 2^40 ranges
 * (the owner's start): it waits for the writes of that session in flight,
 * and none starts during it; other sessions never wait for it.  The locks
 * are open file description locks (fcntl F_OFD_SETLK*), dropped by the
 * kernel when the process dies -- a killed writer never blocks a raise;
 * a stopped one does, for exactly as long as its write is in flight,
 * which is the point.  Threads of one process share the lock through a
 * count (OFD locks belong to the file description, not the thread).
 * fm_fence_table_try_session never waits (-EAGAIN while a write is in
 * flight): the owner's loop retries, keeping the session's locks until it
 * succeeds.

 * SCOPE.  The table, the volumes and the owner must share the file: one
 * host (shm clusters, tests), or a shared filesystem whose OFD locks are
 * coherent.  A real array fences with its own mechanism (SCSI persistent
 * reservations, NVMe reservations); this is what the reference volumes do.
 *
 * Errors: negative errno, detail in fm_errormsg().
 */
#ifndef FLASHMETA_FENCE_TABLE_H
#define FLASHMETA_FENCE_TABLE_H

#include <stdbool.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define FM_FENCE_TABLE_CLIENTS 65536u

struct fm_fence_table;

/* fm_fence_table_open flags */
#define FM_FENCE_TABLE_CREATE 1u /* make it if missing (0600) */
#define FM_FENCE_TABLE_RAISE 2u  /* the owner: open for writing */

/* Open the table at path (writers read-only; RAISE read-write).  CREATE
 * makes a missing one atomically (written aside, then linked in).  0,
 * -ENOENT (missing and no CREATE), -EINVAL (not a fence table: wrong
 * size, magic or version -- never truncated or rewritten), or the errno
 * of open/read/mmap. */
int fm_fence_table_open(const char *path, unsigned flags, struct fm_fence_table **out);
/* NULL-safe; sets *fp = NULL.  No enter may be open. */
void fm_fence_table_close(struct fm_fence_table **fp);

/* The writer's side: 0 -- the write may go ahead, and the session's
 * byte stays share-locked until fm_fence_table_exit with the same arguments;
 * -EKEYREJECTED -- token is below the client's floor (nothing held);
 * -EINVAL (client 0 or beyond the table); -ENOMEM; or a lock errno.
 * Waits only for a raise of the same session in progress. */
int fm_fence_table_enter(struct fm_fence_table *f, uint32_t client_id, uint64_t token);
void fm_fence_table_exit(struct fm_fence_table *f, uint32_t client_id, uint64_t token);

/* The owner's side: the session of `token` is fenced: floor[client] =
 * max(floor, token + 1), durable (fdatasync) before it returns 0.
 * -EAGAIN: a write of that session is in flight (ask again). */
int fm_fence_table_try_session(struct fm_fence_table *f, uint32_t client_id, uint64_t token);
/* floor[c] = max(floor, to) for every client c in [first, last], once
 * no write of any of their sessions is in flight: wait -- until then;
 * !wait -- -EAGAIN if one is.  One fdatasync for the whole range. */
int fm_fence_table_clients(struct fm_fence_table *f, uint32_t first, uint32_t last,
			   uint64_t to, bool wait);

/* floor[client] (0 if never raised), or 0 on a read error */
uint64_t fm_fence_table_floor(struct fm_fence_table *f, uint32_t client_id);

#ifdef __cplusplus
}
#endif

#endif /* FLASHMETA_FENCE_TABLE_H */
