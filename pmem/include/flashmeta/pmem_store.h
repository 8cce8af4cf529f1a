/* pmem_store.h -- the owner's authoritative FlashCopy metadata on libpmem.
 *
 * A store is one pool file (or devdax device) holding a table of FlashCopy
 * mappings and, per mapping, a split bitmap: bit g set means grain g of
 * the target has been split off (copied) in the mapping's current
 * generation.  Bits are only ever set within a generation; they are cleared
 * only by a restart (fm_store_map_restart, or the START event), which bumps
 * the generation in the same crash-atomic step.
 *
 * Durability:
 *   - fm_store_split_set() (and fm_store_split_set_many(),
 *     fm_store_split_set_range()) set bits with failure-atomic 8-byte
 *     stores; they are NOT durable yet.
 *   - a split commit writes back each cache line holding bits set so far
 *     (once per line, however many bits it holds), makes them durable with
 *     one drain (DAX) or one msync (ordinary file), and only after that
 *     publishes them to RDMA readers (the bitmap view).  It runs in three
 *     phases (fm_store_commit_begin/run/end) so that split_set calls go on
 *     during its drain; fm_store_split_commit() is the three in a row.
 *   - mapping create/delete/transition/restart are atomic across a crash
 *     (redo log) and durable when they return.
 *
 * Two-phase group commit (the dm-clone pattern: two dirty sets).  Bits set
 * since the last commit form the PENDING set.  fm_store_commit_begin()
 * swaps it, under the store's mutex, into the set IN FLIGHT (one at a time)
 * and records the value of every bitmap word it holds; split_set calls
 * from then on fill a fresh pending set.  fm_store_commit_run() flushes
 * and drains the set in flight WITHOUT the mutex.  fm_store_commit_end()
 * publishes the recorded word values to the DRAM mirror -- strictly after
 * they are durable -- and reports.  A commit that fails, or ends without
 * running, puts its set back into the pending set: those bits stay set,
 * not durable, unpublished, and the next commit retries them.
 *
 *      split_set ... | begin (swap) | run: flush+drain | end: publish
 *      set A ------->|              |  (no mutex)      |
 *      set B               -------------------------------------> next commit
 *
 * Persistence mode: DAX memory (pmem_is_pmem = 1) uses cache flushes; an
 * ordinary file uses msync.  fm_store_stats() says which.
 *
 * RDMA view: fsdax memory cannot be registered with ibv_reg_mr, so readers
 * see either the pool mapping itself (DIRECT: devdax) or a DRAM mirror
 * (MIRROR) that receives bits strictly after they are durable in the pool.
 * In DIRECT mode a bit is visible between split_set and split_commit (the
 * CPU cache is coherent with RDMA reads), so a reader could see, cache and
 * act on a bit that a power failure would lose -- a wrong snapshot.  DIRECT
 * is therefore only an explicit opt-in for platforms with persistent CPU
 * caches (eADR); AUTO always picks MIRROR.
 *
 * Thread safety: every function may be called from any thread; a store has
 * one internal mutex.  It is held for the whole of every call except
 * fm_store_commit_run() (which holds it only to check and to record its
 * result) and fm_store_split_commit() (which drops it for its drain), so
 * split_set, map_get, stats and bitmap_view never wait for a commit's
 * drain.  Other calls still hold it across a drain of their own: mapping
 * operations (their log record), owner record updates, close, and the
 * implicit commit of a full pending set.  While a commit is in flight
 * (begun, not ended):
 *   - a mapping operation (create, delete, transition, restart) and close
 *     first wait for it to end (releasing the mutex while they wait), and
 *     then commit the pending set themselves as before: a restart can
 *     never clear words whose recorded values a commit is about to
 *     publish.  So the thread that will call fm_store_commit_end() must
 *     not call them in between: it would wait for itself;
 *   - a split_set call that could fill FM_STORE_PENDING_MAX bits (counting
 *     the set in flight) waits for it to end first, before it validates
 *     anything; every other split_set call proceeds at once;
 *   - fm_store_split_commit() waits for it to end, then commits what is
 *     still pending (if that commit failed, its bits are pending again).
 * A commit in flight is ended only by fm_store_commit_end(): a begin
 * without an end blocks every mapping operation forever.
 *
 * Exclusive use: a store handle holds an exclusive open-file-description
 * lock (fcntl F_OFD_SETLK, F_WRLCK, whole file) on the pool file from
 * create/open until close, so a second owner, or a writing
 * `flashmeta-pmem` command, gets -EBUSY instead of silently writing the
 * same pool.  The lock never waits.  It is advisory (only flashmeta takes
 * it), is shared with a child that inherits the descriptor across fork()
 * (dropped on exec), and on a devdax device locks the device node's inode
 * (a second node for the same device is not excluded); if fcntl refuses
 * the lock on some device, create/open fail rather than go on without it.
 * Read-only tools (`flashmeta-pmem check`, `dump`) take no lock.
 *
 * Formats: create writes format 1.3 (self-checking applied word, log
 * records with the count of slots in use, owner record, slot extensions:
 * autodelete flag and consistency group; 1.3: restore).  Format 1.0, 1.1
 * and 1.2 pools are opened and written as they are (never upgraded): 1.0
 * has no owner record, neither 1.0 nor 1.1 has slot extensions, and only
 * 1.3 restores (their calls: -EOPNOTSUPP).
 *
 * Errors: 0 (or a count) on success, a negative errno on failure with
 * detail in fm_errormsg().  Every logged mapping operation (create, delete,
 * transition, restart) may also return -EOVERFLOW once a format 1.1 pool
 * has logged 2^48 - 1 operations (its applied word holds no more).
 */
#ifndef FLASHMETA_PMEM_STORE_H
#define FLASHMETA_PMEM_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "flashmeta/mapping.h"

#ifdef __cplusplus
extern "C" {
#endif

struct fm_store;

enum fm_store_view {
	FM_STORE_VIEW_AUTO = 0,   /* MIRROR (see above) */
	FM_STORE_VIEW_DIRECT = 1, /* readers see the pool mapping (eADR only) */
	FM_STORE_VIEW_MIRROR = 2, /* readers see a DRAM copy of durable bits */
};

struct fm_store_config {
	uint32_t max_mappings; /* create: slots in the table (1..65536) */
	uint64_t max_grains;   /* create: bitmap capacity per mapping */
	enum fm_store_view view; /* create and open */
};

/* Split bits not yet durable -- the pending set plus a set in flight --
 * kept between commits; split_set commits when they reach this. */
#define FM_STORE_PENDING_MAX 65536u

struct fm_store_stats {
	int is_pmem;               /* 1: DAX + flush instructions; 0: msync */
	enum fm_store_view view;   /* resolved: DIRECT or MIRROR */
	const char *persist_mode;  /* "pmem (flush+drain)" or "msync" */
	uint64_t pool_size;        /* bytes of layout */
	uint32_t max_mappings;
	uint32_t mappings;         /* in use */
	uint64_t max_grains;       /* per mapping */
	uint64_t splits_set;       /* fm_store_split_set calls that set a bit */
	uint64_t splits_pending;   /* set, not yet in a commit */
	uint64_t splits_committing; /* in the commit in flight (0: none) */
	uint64_t commits;          /* split commits that made bits durable and
				      published them (one drain each) */
	uint64_t commit_waits;     /* calls that waited for a commit in flight
				      to end (mapping operations, split_set
				      of a full set, split_commit, close) */
	uint64_t drains;           /* drains or msyncs issued */
	uint64_t log_ops;          /* logged mapping operations */
	uint64_t recovered_ops;    /* log records replayed by the open */
	uint64_t recovered_groups; /* group starts the open completed */
	uint64_t log_seq;          /* last applied log sequence number */
};

struct fm_store_map_info {
	struct fm_mapping map;
	uint32_t slot;
	uint64_t split_count;      /* bits set (committed or pending) */
	bool autodelete;           /* delete when the copy completes (1.2) */
	uint64_t group;            /* consistency group, 0: none (1.2) */
	bool reversed;             /* restored an odd number of times (1.3):
				    * map.source_vol is the volume created as
				    * its target */
	bool changed_unknown;      /* 1.4: the changed set may miss writes of
				    * this generation: a refresh recopies all */
};

/*
 * fm_store_create -- create a new pool at `path` (must not exist, or be a
 * devdax device which is then overwritten) sized for cfg->max_mappings
 * mappings of up to cfg->max_grains grains each, and open it, holding the
 * exclusive lock (above) until fm_store_close.
 * Returns 0 and *out, or -EINVAL (bad config), -EEXIST (path exists and is
 * not a devdax device), -ENODEV / -EISDIR (a FIFO, socket, directory, block
 * device or non-DAX character device: never opened for I/O), -EBUSY (a
 * devdax device in use: "pool PATH in use by pid N" or "... by another
 * process" in fm_errormsg()), -ENOMEM, or an errno from creating, mapping
 * or persisting the file.  A failed create removes only a file it made.
 * Blocks (writes and persists the pool); never waits for the lock.
 */
int fm_store_create(struct fm_store **out, const char *path,
		    const struct fm_store_config *cfg);

/*
 * fm_store_open -- open an existing pool, take its exclusive lock (held
 * until fm_store_close), validate it and complete any operation a crash
 * interrupted -- the logged one, then a group start whose commit point
 * was durable (fm_store_group_start; counted in stats.recovered_groups)
 * -- before the handle is returned (see fm_pool_check order in the docs
 * and `flashmeta-pmem check`).  cfg may be NULL (view AUTO); its sizes are ignored.  Returns 0
 * and *out, or, in this order:
 *   -ENOENT/-EACCES...  the file cannot be opened or mapped
 *   -EISDIR, -ENODEV    a directory, or neither a regular file nor a
 *                       device-DAX device (a FIFO is refused without
 *                       blocking)
 *   -EBUSY              another handle, in this or another process, has
 *                       the pool open: "pool PATH in use by pid N" (or
 *                       "by another process" when /proc/locks does not
 *                       name the holder -- Linux shows -1 for OFD locks)
 *   -ENODATA            file shorter than a superblock or than its layout
 *   -EILSEQ             not a flashmeta pool (signature)
 *   -EBADMSG            superblock checksum
 *   -EPROTONOSUPPORT    unsupported major version
 *   -EOPNOTSUPP         unknown incompatible feature
 *   -EINVAL             inconsistent layout
 *   -ENOTRECOVERABLE    log damage: padding, the applied word's check
 *                       value, a missing applied record, a record with
 *                       impossible content
 *   -EBADE              owner record: no valid copy
 *   -EUCLEAN            mapping record checksum
 *   -EDOM               mapping record content (copy rate included), or a
 *                       duplicate id
 *   -ERANGE             bitmap location, length or stray bits
 *   -ENOTEMPTY          set bits in the bitmap area of a free slot
 *   -EIDRM              slots in use differ from the log's count (a
 *                       mapping record was zeroed)
 *   -ENOMEM
 * Nothing is written unless validation passes; nothing is repaired.
 * Blocks (reads the table and all bitmaps; replays the log); never waits
 * for the lock.
 */
int fm_store_open(struct fm_store **out, const char *path,
		  const struct fm_store_config *cfg);

/*
 * fm_store_close -- wait for a commit in flight to end, commit pending
 * splits, unmap, release the pool's lock and free; sets *sp = NULL.
 * NULL-safe.  Blocks for the final commit; an error there is lost (call
 * fm_store_split_commit first to see it).  End (or abandon, with
 * fm_store_commit_end) a commit you began before closing.
 */
void fm_store_close(struct fm_store **sp);

/*
 * fm_store_map_create -- add mapping `m` (state IDLE_OR_COPIED, any
 * generation) with an empty bitmap.  Durable on return.
 * Waits for a commit in flight to end, then commits pending splits first.
 * Returns 0, -EINVAL (m invalid per fm_mapping_init rules, or state not
 * IDLE_OR_COPIED), -EEXIST (id in use), -ENOSPC (table full), -EFBIG (more
 * grains than the pool's max_grains), or an I/O errno.  Blocks.
 */
int fm_store_map_create(struct fm_store *s, const struct fm_mapping *m);

/* fm_store_map_create_opt options */
#define FM_STORE_CREATE_AUTODELETE 0x1u /* the autodelete flag set (1.2) */

/*
 * fm_store_map_create_opt -- fm_store_map_create with options, in the same
 * one logged step: FM_STORE_CREATE_AUTODELETE.  Also -EINVAL (an unknown
 * option) and -EOPNOTSUPP (an option in a pool older than 1.2).
 */
int fm_store_map_create_opt(struct fm_store *s, const struct fm_mapping *m, uint32_t opt);

/*
 * fm_store_map_delete -- remove mapping `id` and clear its bitmap.  Only in
 * IDLE_OR_COPIED or STOPPED.  Waits for a commit in flight to end, then
 * commits pending splits first.  Durable on return.
 * Returns 0, -ENOENT, -EBUSY (another state), or an I/O errno.  Blocks.
 */
int fm_store_map_delete(struct fm_store *s, uint64_t id);

/*
 * fm_store_map_transition -- apply event `ev` with core's state table
 * (fm_mapping_apply).  START also clears the bitmap and bumps the
 * generation, in the same atomic step.  COPY_COMPLETE requires every grain
 * split.  A commit in flight is waited for (it may still publish bits of
 * the old generation), then pending splits are committed.  On success the
 * new mapping is durable and copied to *out (if not NULL).
 * Returns 0, -ENOENT, -EPERM (illegal transition: nothing written),
 * -EINVAL (bad event), -EBUSY (COPY_COMPLETE with unsplit grains), or an
 * I/O errno.  Blocks.
 */
int fm_store_map_transition(struct fm_store *s, uint64_t id,
			    enum fm_map_event ev, struct fm_mapping *out);

/*
 * fm_store_map_restart -- clear mapping `id`'s bitmap and bump its
 * generation without changing its state (restart the copy from a new
 * point in time).  A commit in flight is waited for, then pending splits
 * are committed.  Durable on return;
 * *new_generation (if not NULL) receives the new generation.
 * Returns 0, -ENOENT, or an I/O errno.  Blocks.
 */
int fm_store_map_restart(struct fm_store *s, uint64_t id, uint64_t *new_generation);

/*
 * fm_store_map_set_rate -- set mapping `id`'s background copy rate
 * (flashmeta/copy.h, 0..FM_COPY_RATE_MAX), in any state, nothing else
 * changed: logged like a transition (a slot image), durable on return.
 * Waits for a commit in flight, then commits pending splits first.
 * Returns 0, -ENOENT, -ERANGE (rate), or an I/O errno.  Blocks.
 */
int fm_store_map_set_rate(struct fm_store *s, uint64_t id, uint32_t rate);

/*
 * fm_store_map_set_autodelete -- set or clear mapping `id`'s autodelete
 * flag (the owner deletes the mapping when its copy completes), in any
 * state: logged like a transition, durable on return (nothing logged when
 * it is already so).  Waits for a commit in flight, then commits pending
 * splits first.  Returns 0, -ENOENT, -EOPNOTSUPP (pool older than 1.2:
 * its slots have no room), or an I/O errno.  Blocks.
 */
int fm_store_map_set_autodelete(struct fm_store *s, uint64_t id, bool on);

/*
 * fm_store_map_reverse -- the restore of mapping `id` (format 1.3):
 * durably, in one logged step, it becomes fm_mapping_reverse of itself
 * (target -> source, COPYING, generation + 1, the REVERSED flag toggled)
 * with the split bitmap NOT the old one (a grain unsplit before holds the
 * same data on both volumes; store.c, restore, says why and the crash
 * order).  The mapping moves to a free slot (fm_store_map_info.slot
 * changes).  Waits for a commit in flight, commits pending splits first.
 * opt FM_STORE_REVERSE_CHECK: only the checks, nothing written.  *out
 * (may be NULL): the mapping after.  Returns 0, -ENOENT, -EPERM (state:
 * fm_mapping_reverse's message), -EBUSY (in a consistency group),
 * -ENOSPC (no free slot), -EOPNOTSUPP (pool older than 1.3), -EOVERFLOW,
 * -EINVAL (opt), or an I/O errno.  Blocks.
 */
#define FM_STORE_REVERSE_CHECK 0x1u
int fm_store_map_reverse(struct fm_store *s, uint64_t id, uint32_t opt,
			 struct fm_mapping *out);

/*
 * Incremental refresh (format 1.4).  Each mapping has a CHANGED set: the
 * grains written on its source or its target since its last trigger, as
 * the owner learns them from the clients' reports.  A refresh is a new
 * trigger that keeps as split the grains split and not changed, so only
 * those are recopied (store.c, refresh, says why that is the image and
 * the crash order).  The caller owns completeness: every write of the
 * generation must be in the set (fm_store_changed_set_range) before the
 * refresh, or the mapping marked CHANGED_UNKNOWN (fm_store_changed_unknown),
 * e.g. when a writer's session ended without its report; then the refresh
 * recopies every grain.  Any start, restart, restore or refresh empties
 * the set and clears the mark; so do create and delete.
 *
 * fm_store_changed_set_range -- add grains [first, first + count) to the
 * changed set of mapping `id`, if it is still at `generation`, in any
 * state; durable on return.  Returns 0, -ENOENT, -ESTALE (generation moved
 * on: the report belongs to a finished generation), -ERANGE (count 0 or
 * past grain_count), -EOPNOTSUPP (pool older than 1.4), or an I/O errno.
 * Blocks on one drain; does not wait for a split commit in flight.
 */
int fm_store_changed_set_range(struct fm_store *s, uint64_t id, uint64_t generation,
			       uint64_t first, uint64_t count);

/*
 * fm_store_changed_unknown -- mark mapping `id` (at `generation`)
 * CHANGED_UNKNOWN: logged like a transition, durable on return; 0 if it
 * already was.  Returns 0, -ENOENT, -ESTALE, -EOPNOTSUPP, -EOVERFLOW, or
 * an I/O errno.  Blocks.
 */
int fm_store_changed_unknown(struct fm_store *s, uint64_t id, uint64_t generation);

/*
 * fm_store_changed_count -- *count: grains in mapping `id`'s changed set.
 * Returns 1 if it is marked CHANGED_UNKNOWN, 0 if not, -ENOENT or
 * -EOPNOTSUPP (pool older than 1.4).  Does not block on I/O.
 */
int fm_store_changed_count(struct fm_store *s, uint64_t id, uint64_t *count);

/*
 * fm_store_changed_test -- 1 if `grain` is in mapping `id`'s changed set,
 * 0 if not, or -ENOENT, -ERANGE, -EOPNOTSUPP.  Does not block on I/O.
 */
int fm_store_changed_test(struct fm_store *s, uint64_t id, uint64_t grain);

struct fm_store_refresh {
	struct fm_mapping map;  /* the mapping after (COPYING, generation + 1) */
	bool full;              /* CHANGED_UNKNOWN: every grain recopied */
	uint64_t kept;          /* grains still split: not recopied */
	uint64_t dropped;       /* grains split before and recopied now */
};

/*
 * fm_store_map_refresh -- the incremental refresh of mapping `id`: durably,
 * in one logged step, generation + 1, COPYING, split bitmap := split AND
 * NOT changed (all clear if CHANGED_UNKNOWN), changed set emptied.  From
 * COPYING or IDLE_OR_COPIED.  Waits for a commit in flight, commits pending
 * splits first.  opt FM_STORE_REFRESH_CHECK: only the checks, nothing
 * written.  *out (may be NULL): what it did.  Returns 0, -ENOENT,
 * -EOPNOTSUPP (pool older than 1.4), -EPERM (state, or a restored
 * mapping), -EBUSY (in a consistency group), -EOVERFLOW, -EINVAL (opt), or
 * an I/O errno.  Blocks.
 */
#define FM_STORE_REFRESH_CHECK 0x1u
int fm_store_map_refresh(struct fm_store *s, uint64_t id, uint32_t opt,
			 struct fm_store_refresh *out);

/*
 * Consistency groups (format 1.2).  A group is the set of mappings whose
 * slots carry its id (non-zero); the store keeps no other record of it,
 * so a group with no member does not exist.  Members are started together
 * by fm_store_group_start, crash-atomically (store.c says how).
 *
 * fm_store_map_set_group -- put mapping `id` into `group`, or out of any
 * group (group 0), in any state: logged like a transition, durable on
 * return.  Returns 0, -ENOENT, -EBUSY (it is in another group: 0 first),
 * -EOPNOTSUPP (pool older than 1.2), or an I/O errno.  Blocks.
 */
int fm_store_map_set_group(struct fm_store *s, uint64_t id, uint64_t group);

/*
 * fm_store_group_members -- up to `cap` ids of `group`'s members, in slot
 * order.  Returns how many it has (may exceed cap), or -EINVAL (group 0).
 * Does not block on I/O.
 */
int fm_store_group_members(struct fm_store *s, uint64_t group, uint64_t *ids, size_t cap);

/*
 * fm_store_group_start -- START (fm_store_map_transition) for every member
 * of `group` as one crash-atomic step: after a crash at any point, a
 * reopened pool has either every member still PREPARED at its generation,
 * or every member COPYING at generation + 1 with an empty bitmap -- never
 * some of each (fm_store_open completes a start whose commit point was
 * durable).  Waits for a commit in flight, commits pending splits first.
 * Returns the number of members started (> 0), or -EINVAL (group 0),
 * -ENOENT (no member), -EPERM (a member is not PREPARED: nothing
 * written), -EOPNOTSUPP (pool older than 1.2), or an I/O errno (the start
 * may be committed: reopen to complete and learn).  Blocks: 2 + members
 * logged operations.
 */
int fm_store_group_start(struct fm_store *s, uint64_t group);

/*
 * fm_store_map_get -- copy mapping `id` into *info.  0 or -ENOENT.
 * Does not block on I/O.
 */
int fm_store_map_get(struct fm_store *s, uint64_t id, struct fm_store_map_info *info);

/*
 * fm_store_map_list -- write up to `cap` mapping ids (slot order) to ids.
 * Returns the number of mappings in the store (may exceed cap).
 */
int fm_store_map_list(struct fm_store *s, uint64_t *ids, size_t cap);

/*
 * fm_store_split_set -- set split bit `grain` of mapping `id` if the
 * mapping is still at `generation`.  Not durable until
 * fm_store_split_commit() returns.  Allowed in COPYING and STOPPING.
 * Returns 1 if the bit was newly set, 0 if it was already set, or
 * -ENOENT, -ESTALE (generation moved on), -EPERM (state), -ERANGE
 * (grain >= grain_count), or an I/O errno from an implicit commit (the bit
 * is then set but not durable).
 * Cost: a mutex, a hash probe, one 8-byte load and store; no flush (the
 * commit flushes per cache line); never waits for a commit's drain, and
 * blocks only when FM_STORE_PENDING_MAX bits are unsettled (pending or in
 * flight): it waits for a commit in flight to end, then commits them.  For
 * many bits of one mapping, prefer fm_store_split_set_many().
 */
int fm_store_split_set(struct fm_store *s, uint64_t id, uint64_t generation,
		       uint64_t grain);

/*
 * fm_store_split_set_many -- fm_store_split_set() for n grains of mapping
 * `id` under one lock and one lookup: the batch of a group commit.  Not
 * durable until fm_store_split_commit() returns.  Duplicates are allowed.
 * Returns the number of bits newly set (0..n), or:
 *   -ENOENT, -ESTALE, -EPERM  as fm_store_split_set (nothing set)
 *   -ERANGE                   some grains[k] >= grain_count (nothing set)
 *   -EINVAL                   n > INT_MAX (nothing set)
 *   an I/O errno              from an implicit commit when
 *                             FM_STORE_PENDING_MAX bits were pending: the
 *                             bits up to that point are set, not durable.
 * Cost: a mutex, a hash probe, then per grain one 8-byte load and store;
 * blocks only for implicit commits (first waiting for a commit in flight
 * if n more bits could fill the set).
 */
int fm_store_split_set_many(struct fm_store *s, uint64_t id, uint64_t generation,
			    const uint64_t *grains, size_t n);

/*
 * fm_store_split_set_range -- fm_store_split_set() for every grain of the
 * closed range [first, last] of mapping `id`, a 64-grain bitmap word at a
 * time (masked in the first and the last word): a client's split range.
 * Not durable until fm_store_split_commit() returns.
 * Returns the number of bits newly set (0..last - first + 1), or:
 *   -ENOENT, -ESTALE, -EPERM  as fm_store_split_set (nothing set)
 *   -ERANGE                   last >= grain_count (nothing set)
 *   -EINVAL                   first > last, or more than INT_MAX grains
 *                             (nothing set)
 *   an I/O errno              from an implicit commit, as
 *                             fm_store_split_set_many.
 * Cost: a mutex, a hash probe, then per bitmap word touched one 8-byte load
 * and, if it gains bits, one store and one dirty entry: O((last - first) /
 * 64 + 1), independent of how many bits each word gains; no flush; blocks
 * only for implicit commits (first waiting for a commit in flight if the
 * range could fill the set).
 */
int fm_store_split_set_range(struct fm_store *s, uint64_t id, uint64_t generation,
			     uint64_t first, uint64_t last);

/*
 * fm_store_split_commit -- make every bit set so far durable (one flush per
 * dirty cache line, then one drain or one msync for all of them), then
 * publish them to the RDMA view (one store per dirty 8-byte word):
 * fm_store_commit_begin + run + end, after waiting for a commit in flight
 * to end.  Returns the number of bits this call committed (>= 0; 0 also
 * when another thread's commit took them: they are durable all the same)
 * or an I/O errno (bits then stay pending and unpublished).  Blocks until
 * durable; does not hold the mutex during the drain.
 */
int fm_store_split_commit(struct fm_store *s);

/*
 * fm_store_commit_begin -- phase 1 of a split commit: under the mutex, swap
 * the pending set into the set in flight and record the value of each of
 * its bitmap words (what commit_end will publish).  Cost: one load and one
 * store per dirty word; no flush, no I/O.
 * Returns the number of bits in the commit (> 0: a commit is in flight,
 * call fm_store_commit_run and then fm_store_commit_end), 0 (nothing
 * pending: every bit set so far is durable; no commit begun), or -EBUSY (a
 * commit is already in flight; nothing done).  Never blocks on I/O.
 */
int fm_store_commit_begin(struct fm_store *s);

/*
 * fm_store_commit_run -- phase 2: flush every cache line of the set in
 * flight once and drain (or msync) once, without holding the mutex:
 * split_set and every other call that needs no drain go on meanwhile.
 * Call once per begun commit, from any thread (ordered after begin by the
 * caller).  Returns 0, -EINVAL (no commit begun, or already run), or the
 * I/O errno of the drain (recorded: commit_end then reports it).  Blocks
 * for the drain.
 */
int fm_store_commit_run(struct fm_store *s);

/*
 * fm_store_commit_end -- phase 3: if the run succeeded, publish the word
 * values recorded at begin to the RDMA view (strictly after they are
 * durable), count the commit, and return the number of its bits.
 * Otherwise put the set back into the pending set (bits stay set, not
 * durable, unpublished) and return the run's errno, or -ECANCELED if the
 * commit was never run (abandoned).  Either way the commit is over and
 * whoever waits for it (mapping operations, split_commit) goes on.
 * -EINVAL: no commit in flight; -EBUSY: its run has not returned yet.
 * Never blocks on I/O.
 */
int fm_store_commit_end(struct fm_store *s);

/*
 * fm_store_split_test -- 1 if bit `grain` of mapping `id` is set in the pool
 * (possibly not yet committed), 0 if not; -ENOENT or -ERANGE.
 */
int fm_store_split_test(struct fm_store *s, uint64_t id, uint64_t grain);

/*
 * fm_store_bitmap_view -- memory holding mapping `id`'s bitmap as RDMA
 * readers should see it (register it with ibv_reg_mr): the pool mapping
 * (DIRECT) or the DRAM mirror (MIRROR).  *addr is page aligned, *len is the
 * bitmap length in bytes (whole le64 words); both stay valid until the
 * store closes (a delete leaves the memory zeroed, a restart clears it).
 * *view (if not NULL) says which.  Returns 0 or -ENOENT.
 */
int fm_store_bitmap_view(struct fm_store *s, uint64_t id, const void **addr,
			 size_t *len, enum fm_store_view *view);

/*
 * fm_store_bitmap_region -- the whole bitmap area (all slots) of the view:
 * register it once instead of per mapping.  Returns 0.
 */
int fm_store_bitmap_region(struct fm_store *s, const void **addr, size_t *len);

/*
 * Owner incarnations (restart grace).  A restarted owner must not grant
 * locks until every lease a previous owner incarnation could have issued
 * has expired, so the pool remembers the last incarnation and how long
 * its leases may outlive it.  Typical use by the owner daemon:
 *
 *   fm_store_owner_begin(s, my_hold_ms, &prev, &inc);  at start
 *   ... serve, granting no lock until prev.hold_ms has passed since the
 *       start (prev.known false: assume the longest lease ever used) ...
 *   fm_store_owner_settle(s, my_hold_ms);               after that wait
 *
 * The record is crash-safe (two checksummed copies, see format.h): after
 * a crash it is the value before the interrupted call or the one it
 * writes, never a mix.  Pools of format 1.0 have no record.
 */
struct fm_store_owner_info {
	uint64_t incarnation; /* 0: no owner ever served this pool */
	uint32_t hold_ms;     /* leases granted by that incarnation (or any still
				 live before it) end at most hold_ms after it
				 stopped */
	bool known;           /* false: a pool from before this record existed
				 (format 1.0) -- nothing is known, the caller
				 must assume the worst */
};

/*
 * fm_store_owner_begin -- start a new owner incarnation: returns the
 * previous record in *prev and durably writes {prev.incarnation + 1,
 * max(prev.hold_ms, hold_ms)} before returning; *incarnation gets the new
 * number.  Called by the owner daemon at start, before it serves anyone;
 * once per store handle.
 * Returns 0, or:
 *   -EOPNOTSUPP  a format 1.0 pool: *prev = { 0, 0, known = false },
 *                *incarnation = 0, nothing written (assume the worst)
 *   -EALREADY    an incarnation was already begun on this handle
 *   -EOVERFLOW   incarnation UINT64_MAX reached
 *   an I/O errno from the persist (the record is then the old one or the
 *                new one; reopen to learn which).
 * Blocks for one flush and drain (or msync).
 */
int fm_store_owner_begin(struct fm_store *s, uint32_t hold_ms,
			 struct fm_store_owner_info *prev, uint64_t *incarnation);

/*
 * fm_store_owner_settle -- once the previous incarnations' leases have all
 * expired, record hold_ms = this incarnation's own value (durable).
 * hold_ms must cover every lease this incarnation granted or will grant.
 * Returns 0, -EOPNOTSUPP (format 1.0 pool), -EINVAL (no
 * fm_store_owner_begin on this handle), or an I/O errno.  Blocks for one
 * flush and drain (none when the record already says hold_ms).
 */
int fm_store_owner_settle(struct fm_store *s, uint32_t hold_ms);

/*
 * fm_store_owner_get -- the owner record as it is durable now into *out
 * (known = false for a format 1.0 pool).  Returns 0.  Does not block on
 * I/O.
 */
int fm_store_owner_get(struct fm_store *s, struct fm_store_owner_info *out);

/* fm_store_stats -- fill *st.  Returns 0.  Does not block on I/O. */
int fm_store_stats(struct fm_store *s, struct fm_store_stats *st);

/* Name of a view mode ("auto", "direct", "mirror"). */
const char *fm_store_view_name(enum fm_store_view v);

#ifdef __cplusplus
}
#endif
#endif /* FLASHMETA_PMEM_STORE_H */
