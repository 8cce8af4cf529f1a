/* ownerd_priv.h -- the owner service's state (struct fm_ownerd) and the
 * calls between its files.
 *
 * Design (see ownerd.h for the action table):
 *
 *   one thread runs everything: the protocol state machine, the store and
 *   the transport are all touched only from fm_ownerd_run() (and from
 *   fm_ownerd_new/delete before/after it).  fm_ownerd_stop() is the only
 *   call from elsewhere: it writes the stop eventfd.  The one exception is
 *   the commit thread (committer.c): it runs the durable phase of a split
 *   commit (fm_store_commit_run/end, the store being thread-safe) and
 *   touches nothing else but its struct od_committer.
 *
 *   conns    a small array of {conn id, endpoint, out-queue}.  Conn ids
 *            count up from 1 and are never reused, so a late action for a
 *            dead connection cannot reach a new one.
 *   maps     per stored mapping: its bitmap region (published copy of
 *            durable bits), its lock table region (DRAM, zero at start), the
 *            descriptor served, and at most one pending control operation
 *            waiting for FM_NOTE_REVOKED.
 *
 * One job a file:
 *   log.c      the log (stderr, level)
 *   config.c   config lines and files
 *   conn.c     connections: accept, progress, send out-queues, loss
 *   maps.c     served mappings: regions, descriptors, bitmap publication
 *   control.c  the control commands, the trigger and other deferred ops
 *   groups.c   consistency groups: group-* commands, the group trigger
 *   ctl_socket.c  the control socket: bind, accept, read lines, idle close
 *   ctl_reply.c   answers to a control connection: text, or one JSON line
 *   actions.c  executing the state machine's actions (PERSIST group commit)
 *   local.c    the owner's own CAS (posted on the loopback lane) and READs
 *   committer.c  the commit thread: the durable phase of a group commit
 *   loop.c     fm_ownerd_new / run / stop / delete, the poll loop, the clock
 * Internal calls between them carry the od_ prefix; all else is static.
 */
#ifndef FM_OWNERD_PRIV_H
#define FM_OWNERD_PRIV_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "flashmeta/fence_table.h"
#include "flashmeta/ownerd.h"
#include "flashmeta/proto_owner.h"
#include "flashmeta/transport.h"
#include "flashmeta/wire.h"

struct fm_mapping;
struct fm_store;

#define OD_CTL_MAX 16      /* control connections */
#define OD_CTL_LINE 512
#define OD_MAX_MAPS FM_OWNER_MAX_MAPS /* the most one owner serves */
#define OD_GROUP_MAX 32    /* members of one consistency group */
#define OD_GOPS_MAX 8      /* group operations in flight at once */

struct od_msg {
	uint32_t len;
	uint8_t buf[];
};

/*
 * A connection leaves the array only once its peer is FENCED (or it never
 * had a session, so no FENCE will come): a connection that broke or was
 * given up (`lost`) keeps its endpoint -- on shm the endpoint holds the
 * pidfd that the fence needs.  Lost: no traffic, not polled.
 */
struct od_conn {
	uint64_t id;
	struct fm_ep *ep;
	struct od_msg **outq; /* FIFO of SENDs waiting for credits */
	size_t outq_head, outq_count, outq_cap;
	bool lost;            /* broken or given up; waits for its FENCE */
	bool fencing;         /* FENCE taken, not complete: od_retry_fences
			       * progresses it (its fm_ep_fence_fd is polled) */
	bool fence_kill;      /* the FENCE asked for the whole process */
	bool fence_failed;    /* a fence of it failed: logged loudly once */
	uint64_t fence_op;    /* the FENCE action to complete (fencing) */
	int fence_level;      /* what fm_ep_fence reached, 0 = not yet */
	bool fence_waits;     /* waiting for the fence table: logged once */
	uint32_t fence_client; /* the session fenced (for the fence table) */
	uint64_t fence_token;
};

enum od_pend { OD_PEND_NONE = 0, OD_PEND_PREPARE, OD_PEND_START, OD_PEND_RESTART,
	       OD_PEND_STOP,
	       OD_PEND_COMPLETE, /* every grain split: COPY_COMPLETE (nobody asked) */
	       OD_PEND_DELETE,   /* map-delete: stop if forced, remove, free the slot */
	       OD_PEND_GROUP,    /* member of a group operation (od_map.gop) */
	       OD_PEND_RESTORE,  /* map-restore: the reverse (control.c) */
	       OD_PEND_REFRESH   /* map-refresh: the incremental refresh (control.c) */ };

struct od_map {
	bool used;
	uint64_t id;
	struct fm_region *bitmap; /* REMOTE_READ: published durable bits */
	struct fm_region *locks;  /* REMOTE_ATOMIC: lock words, changed only by CAS */
	struct fm_region_desc bmd, lkd;
	struct fm_wire_mapdesc d; /* what we serve */
	enum od_pend pend;        /* control op waiting for REVOKED */
	int pend_fd;              /* control connection to answer, or -1 */
	uint64_t pend_since;      /* od_now_ms() when its revoke began: the
				   * transition timeout counts from here */
	bool force;               /* OD_PEND_DELETE of a mapping neither
				   * idle_or_copied nor stopped: STOP first */
	bool removing;            /* OD_PEND_DELETE revoked: waits until the
				   * state machine lets it go (no lock-table
				   * or bitmap operation of it in flight) */
	bool autodelete;          /* delete it when its copy completes: the
				   * pool's slot flag (format 1.2), read at
				   * attach; a 1.1/1.0 pool has no room for
				   * it, there it lives here only */
	unsigned gop;             /* OD_PEND_GROUP: its d->gops[] entry */
	bool grevoked;            /* OD_PEND_GROUP: its REVOKED came */
	bool gabandoned;          /* OD_PEND_GROUP: the group operation gave
				   * up while its REVOKED was queued: served
				   * again as it is when that comes */
};

/* A group operation (groups.c) waiting for REVOKED of every member. */
struct od_gop {
	bool used;
	uint64_t group;
	enum od_pend op;          /* PREPARE, START or STOP */
	int fd;                   /* control connection to answer, or -1 */
	uint64_t since;           /* od_now_ms() when the revokes began */
	unsigned n, waiting;      /* members; REVOKED still to come */
	uint64_t ids[OD_GROUP_MAX];
};

/* a PERSIST (or CHANGED) action of a group commit and its outcome so far */
struct od_persist {
	struct fm_action a;
	int status;             /* 0, or what step 2 or the commit met
				 * (-ESTALE, -EIO); CHANGED: its store call's */
	char errmsg[96];        /* CHANGED -EIO: fm_errormsg() of the thread
				 * that met it (the loop logs it) */
};

/* a list of them; lists change hands whole (swapped), never copied */
struct od_plist {
	struct od_persist *v;
	size_t n, cap;
};

/* The commit thread (committer.c).  `thread`, `efd`, `store`, `running`:
 * set by the loop thread before the thread starts or after it ended;
 * `flight` belongs to the thread; every other field is under `mu`. */
struct od_committer {
	pthread_mutex_t mu;
	pthread_cond_t cv;      /* next, stop, done emptied: both ways */
	pthread_mutex_t pub;    /* the store's MIRROR view: held by the thread
				 * around fm_store_commit_end (which writes
				 * it) and by the loop while it copies from it
				 * (od_publish_words reads it with plain loads) */
	pthread_t thread;
	bool running;
	int efd;                /* eventfd: written when `done` gained a batch */
	struct fm_store *store;
	struct od_plist next;   /* applied by the loop, not yet in a commit */
	struct od_plist done;   /* committed (or failed), not yet reaped */
	bool busy;              /* a batch is in `flight` */
	bool stop;
	char errmsg[256];       /* the last failed commit's fm_errormsg() */
	uint64_t commits;       /* commits run (store drains) */
	uint64_t persists;      /* PERSISTs they served */
	struct od_plist flight; /* the thread's: the batch being committed */
	_Atomic uint64_t drain_ns; /* what a drain costs (committer.c): written
				    * by whichever thread drained -- the loop
				    * only while the thread is idle */
};

/* one CAS of the owner on its own memory (local.c) */
struct od_local {
	uint64_t op_id;
	struct fm_region_desc rd;
	uint64_t off, compare, swap;
};

struct od_ctl {
	int fd;
	bool busy;         /* a deferred command runs: later lines wait */
	bool json;         /* ... and was asked as "json CMD": its answer so
			    * far is in jtext, JSON when it is complete */
	char *jtext;
	uint64_t last_ms;  /* od_now_ms() of its last bytes or answer: idle since */
	size_t used;
	char line[OD_CTL_LINE];
};

struct fm_ownerd {
	struct fm_ownerd_cfg cfg;
	struct fm_store *store;
	struct fm_fence_table *ftable; /* cfg.fence_table, or NULL */
	struct fm_transport *t;
	struct fm_listener *l;
	struct fm_ep *self;       /* loopback: our own CAS on the lock tables */
	struct fm_lane *selflane; /* ... posted here, reaped by the loop (local.c) */
	struct { struct od_local *v; size_t n, cap; } backlog; /* CASes the lane
				   * had no room for, in order */
	struct fm_owner *o;
	int timer_fd, stop_fd, ctl_fd;
	dev_t ctl_dev;            /* the socket file we bound at control_path: */
	ino_t ctl_ino;            /* removed at exit only if it is still there */
	uint64_t next_conn;
	struct od_conn *conns;
	size_t nconns, cap_conns;
	struct od_map maps[OD_MAX_MAPS];
	struct od_gop gops[OD_GOPS_MAX];
	struct od_ctl ctl[OD_CTL_MAX];
	/* group commit (actions.c): PERSISTs collected in this loop pass, and
	 * reaped batches being completed */
	struct od_plist persist, reaped;
	struct od_committer cm;
	uint64_t persists_done;    /* PERSISTs answered (status: per commit) */
	uint8_t *readbuf;          /* FM_ACT_READ_MAX: local READs land here */
	uint64_t incarnation;      /* ours, recorded in the pool (lease.h R6) */
	uint32_t hold_ms;          /* how long our leases can outlive us */
	uint64_t grace_ms;         /* restart grace at start (lease.h R6) */
	bool record_owner;         /* the pool keeps owner records (format 1.1) */
	bool prev_served;          /* an owner served the pool before us: its
				    * sessions' unreported writes are unknown
				    * (loop.c unknown_at_start) */
	int fatal;                 /* the state machine died: run() returns it */
	/* set by fm_ownerd_stop -- from another thread or, in flashmeta-owner,
	 * a SIGTERM handler -- read by the loop: a lock-free atomic, the only
	 * kind of shared object a signal handler may write.  Relaxed is
	 * enough: the stop eventfd wakes the loop, the flag carries no data. */
	atomic_bool stopping;
};

/* log.c */
void od_log(enum fm_loglvl lv, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* od_log_level_set -- log messages up to `lv` from now on (default INFO) */
void od_log_level_set(enum fm_loglvl lv);

/* config.c */
/* od_trim -- `s` without leading and trailing white space (cut in place) */
char *od_trim(char *s);

/* conn.c */
struct od_conn *od_conn_find(struct fm_ownerd *d, uint64_t id);
/* od_conn_drop -- close and forget a connection; the caller tells the state
 * machine */
void od_conn_drop(struct fm_ownerd *d, struct od_conn *c);
/* od_outq_push -- queue a copy of a SEND that has no credit yet; 0 or -ENOMEM */
int od_outq_push(struct od_conn *c, const void *buf, uint32_t len);
/* od_outq_flush -- send what waits for credits; < 0: the endpoint broke */
int od_outq_flush(struct od_conn *c);
/* od_conn_lost -- the connection broke or its peer is given up on */
void od_conn_lost(struct fm_ownerd *d, struct od_conn *c, const char *why);
/* od_accept_all -- every pending connection request on the listener */
void od_accept_all(struct fm_ownerd *d);
/* od_progress_conns -- receive on every live connection, feed the state
 * machine, flush out-queues, notice closed endpoints */
void od_progress_conns(struct fm_ownerd *d);

/* maps.c */
struct od_map *od_map_find(struct fm_ownerd *d, uint64_t id);
/* od_map_by_region -- the map whose bitmap or lock table `r` names */
struct od_map *od_map_by_region(struct fm_ownerd *d, const struct fm_region_desc *r,
				bool *is_locks);
/* od_publish_words -- copy words [w0, w1] of the durable MIRROR view into the
 * published region */
void od_publish_words(struct fm_ownerd *d, struct od_map *m, uint64_t w0, uint64_t w1);
/* od_publish_clear -- zero the whole published bitmap */
void od_publish_clear(struct od_map *m);
/* od_desc_from_store -- the descriptor we serve, from the store's mapping */
struct fm_store_map_info;
void od_desc_from_store(struct od_map *m, const struct fm_store_map_info *info);
/* od_map_detach -- free a mapping's regions and its slot (no longer served
 * by the state machine: fm_owner_map_remove done) */
void od_map_detach(struct od_map *m);
/* od_map_attach -- regions + descriptor + publish + serve, for a mapping in
 * the store */
int od_map_attach(struct fm_ownerd *d, uint64_t id);

/* control.c */
/* od_map_complete -- after REVOKED: the pending control operation of `m` */
void od_map_complete(struct fm_ownerd *d, struct od_map *m);
/* od_maps_copy_check -- every COPYING mapping whose grains are all split
 * (background copy and foreground I/O together) goes to idle_or_copied:
 * revoked (reason COPIED), then COPY_COMPLETE in the store; a restart
 * grace or a pending operation makes it wait for a later call (timer) */
void od_maps_copy_check(struct fm_ownerd *d);
/* od_maps_pend_tick -- from the timer: a pending revoke older than
 * cfg.transition_timeout_ms is given up (the command fails ETIMEDOUT
 * naming the clients that did not release; nothing changed), and a
 * deletion waiting for the state machine to let its mapping go is tried
 * again */
void od_maps_pend_tick(struct fm_ownerd *d, uint64_t now);
/* od_ctl_show -- the "map ..." line of `m` (map-show) to fd */
void od_ctl_show(struct fm_ownerd *d, int fd, struct od_map *m);
/* od_ctl_answer_begin / _end -- a deferred command's answer: begin (its
 * JSON collection, if it was asked as "json CMD"), the lines, then end
 * ("ok" or the error of rc; the connection's later lines run) */
void od_ctl_answer_begin(struct fm_ownerd *d, int fd);
void od_ctl_answer_end(struct fm_ownerd *d, int fd, int rc);

/* groups.c */
/* od_group_exec -- a group-* command line (av[0] its name); < 0 error, 0
 * answered, 1 deferred (answered by the group operation) */
int od_group_exec(struct fm_ownerd *d, int fd, char **av, int ac);
/* od_group_revoked -- REVOKED of a member of a group operation */
void od_group_revoked(struct fm_ownerd *d, struct od_map *m);
/* od_groups_tick -- from the timer: a group operation whose revokes are
 * not complete after cfg.transition_timeout_ms is given up */
void od_groups_tick(struct fm_ownerd *d, uint64_t now);
/* od_group_refuse -- -EBUSY naming the group if mapping `id` is in one
 * (member-level transitions are the group's), else 0 */
int od_group_refuse(struct fm_ownerd *d, uint64_t id, const char *cmd);
/* od_groups_fd_closed -- the control connection fd is gone: its group
 * operations still complete, unanswered */
void od_groups_fd_closed(struct fm_ownerd *d, int fd);

/* od_ctl_listen -- listen on the control socket at cfg.control_path (if
 * any): d->ctl_fd and the file's identity; 0 or -errno (ownerd.h says what
 * may already be at the path) */
int od_ctl_listen(struct fm_ownerd *d);
/* od_ctl_unlisten -- close every control connection and the listener;
 * remove the socket file only if it is still the one we bound */
void od_ctl_unlisten(struct fm_ownerd *d);
/* od_ctl_accept -- a new control connection: a free slot, else the slot of
 * the longest-idle connection not waiting for a deferred answer, else
 * EBUSY */
void od_ctl_accept(struct fm_ownerd *d);
/* od_ctl_tick -- close control connections idle for cfg.control_idle_ms */
void od_ctl_tick(struct fm_ownerd *d, uint64_t now);
/* od_ctl_readable -- read and execute what a control connection sent */
void od_ctl_readable(struct fm_ownerd *d, struct od_ctl *c);
/* ctl_socket.c: close a control connection (a deferred operation still
 * completes, unanswered); the connection on fd, or NULL */
void od_ctl_close(struct fm_ownerd *d, struct od_ctl *c);
struct od_ctl *od_ctl_by_fd(struct fm_ownerd *d, int fd);
/* control.c: execute c's buffered lines, one at a time */
void od_ctl_process(struct fm_ownerd *d, struct od_ctl *c);
/* ctl_reply.c: print to control connection fd (-1: nowhere); the answer's
 * last line from rc ("ok" or "error ERRNO: message"); and a "json CMD"'s
 * collection: begin (after so_far), take (stop; the text, malloc'ed), send
 * (stop; the JSON line and the framing line go out) */
void od_ctl_printf(int fd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void od_ctl_result(int fd, int rc);
void od_ctl_json_begin(int fd, const char *so_far);
char *od_ctl_json_take(void);
void od_ctl_json_send(int fd);

/* actions.c */
/* od_drain_actions -- drain actions until quiet; PERSISTs are only
 * collected into the next batch (od_persist_kick commits them) */
void od_drain_actions(struct fm_ownerd *d);
/* od_persist_kick -- once per loop pass: apply the PERSISTs collected in
 * it and hand them to the commit thread */
void od_persist_kick(struct fm_ownerd *d);
/* od_persist_reap -- the committer's eventfd is readable: publish and
 * complete the batches whose commits ended */
void od_persist_reap(struct fm_ownerd *d);
/* od_persist_finish -- the loop is stopping: wait for the commit in
 * flight and complete its batch (SPLIT_ACKs) unless the state machine
 * died; what waits for a commit, or was never applied, is dropped
 * unanswered */
void od_persist_finish(struct fm_ownerd *d);
/* od_retry_fences -- complete the fences that can be */
void od_retry_fences(struct fm_ownerd *d, uint64_t now);

/* local.c */
/* od_local_exec -- an FM_ACT_READ (answered at once) or FM_ACT_CAS
 * (posted; answered by od_local_reap) on our own regions */
void od_local_exec(struct fm_ownerd *d, const struct fm_action *a, uint64_t now);
/* od_local_reap -- feed every completed CAS to the state machine (never
 * from inside fm_owner_poll's drain); returns how many */
int od_local_reap(struct fm_ownerd *d);
/* od_local_fd -- readable when a CAS may have completed; -1: none needed */
int od_local_fd(struct fm_ownerd *d);
/* od_local_inflight -- CASes posted or waiting, not yet answered */
unsigned od_local_inflight(struct fm_ownerd *d);

/* committer.c */
/* od_committer_start -- the commit thread for `store` (signals blocked);
 * 0 or -errno */
int od_committer_start(struct od_committer *c, struct fm_store *store);
/* od_committer_stop -- let a commit in flight end, then join; batches not
 * reaped are freed unanswered.  Idempotent; not started: nothing */
void od_committer_stop(struct od_committer *c);
/* od_committer_fd -- the eventfd to poll (POLLIN: a batch is done), or -1 */
int od_committer_fd(const struct od_committer *c);
/* od_committer_hand -- loop: PERSISTs whose bits are applied (step 2) join
 * the next commit; `l` is left empty.  0, or -ENOMEM (nothing handed: the
 * caller still has them) */
int od_committer_hand(struct od_committer *c, struct od_plist *l);
/* od_committer_cheap -- loop: true if the thread is idle (nothing in
 * flight, nothing handed) and a drain costs less than handing a batch to
 * it would (OD_DRAIN_INLINE_NS): the loop may commit in place */
bool od_committer_cheap(struct od_committer *c);
/* od_committer_here -- loop: fm_store_split_commit() in place, its
 * drain counted in the estimate; its return */
int od_committer_here(struct od_committer *c, struct fm_store *store);
/* od_changed_run -- the CHANGED actions of `l` into the store (changed
 * sets, changed-unknown marks), each durable on return: their statuses.
 * The commit thread's, after a batch's commit; the loop's when it commits
 * in place.  Blocks for a drain per range. */
void od_changed_run(struct fm_store *store, struct od_plist *l);
/* od_committer_reap -- loop: the done batches into `out` (which must be
 * empty); errmsg gets the last commit failure's message ("" if none).
 * With `wait` (stopping): first wait until no commit is in flight, and
 * take what waits for one into *dropped so that none starts.  Returns
 * out->n */
size_t od_committer_reap(struct od_committer *c, struct od_plist *out, bool wait,
			 struct od_plist *dropped, char *errmsg, size_t errlen);

/* loop.c */
/* od_now_ms -- CLOCK_MONOTONIC milliseconds, the state machine's `now` */
uint64_t od_now_ms(void);

#endif /* FM_OWNERD_PRIV_H */
