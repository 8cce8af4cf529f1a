/* ownerd.h -- the owner service: the owner protocol state machine bound to
 * a transport, the pmem store and a control socket.
 *
 * One fm_ownerd is one owner node.  fm_ownerd_run() is its event loop (one
 * thread, plus a commit thread for durable phases): poll over the listener,
 * every client endpoint, a timerfd, the control socket, the loopback lane,
 * the commit thread's eventfd and a stop eventfd, feeding fm_owner_*
 * events and executing the actions it drains.  The loop waits for no
 * network round trip and, past a cheap threshold, for no msync:
 *
 *   SEND     fm_ep_send(FM_NONBLOCK); out of credits -> per-connection queue
 *            (flushed every iteration; a peer that lets it grow past
 *            OD_OUTQ_MAX messages is disconnected)
 *   CAS      FM_CONN_LOCAL -> POSTED on the loopback endpoint's lane (never
 *            a CPU store); the loop feeds each completion to op_done
 *            between drains, so a commit's holder checks are in flight
 *            together (verbs: one HCA round trip for all of them)
 *   READ     FM_CONN_LOCAL -> plain acquire loads of our own region, any
 *            length up to FM_ACT_READ_MAX (transport.h allows the owner to
 *            READ its own regions), answered at once
 *   PERSIST  group commit: the PERSISTs of one loop pass are applied with
 *            fm_store_split_set_range, then handed to the commit thread,
 *            which makes everything handed since its last commit durable
 *            with ONE store commit (or the loop does it in place when the
 *            thread is idle and a drain costs less than waking it); then
 *            the loop publishes the bits; then op_done
 *   FENCE    fm_ep_fence(conn, kill ? FM_FENCE_F_KILL : 0): never blocks;
 *            progressed from the poll set (the shm pidfd) until it reports
 *            the level reached, which goes to op_done (lease.h R4)
 *   CLOSE    a connection that never joined: flush its BYE, drop it
 *   NOTIFY   logged; SESSION_UP opens the peer's one-sided access
 *            (fm_ep_grant) before the WELCOME goes out; REVOKED completes
 *            a pending control operation (or a copy complete); GRACE_OVER
 *            records in the pool that only this incarnation's leases
 *            remain (lease.h R6)
 *
 * A poll that returns an error means the state machine died (out of
 * memory): fm_ownerd_run returns it; the next incarnation's restart grace
 * covers whatever this one granted.
 *
 * Restart grace (lease.h R6): fm_ownerd_new records a new incarnation in
 * the pool before serving anyone, and serves no lock table, hand-off,
 * commit or transition until the previous incarnation's recorded hold has
 * passed; control transitions during it answer "error EAGAIN".
 *
 * Bitmap publication (the invariant "the READ-able bitmap never shows a
 * bit whose persist did not complete"): every mapping has a bitmap region
 * from fm_region_new (REMOTE_READ).  Bits are copied into it from the
 * store's MIRROR view (which itself only holds durable bits) strictly after
 * fm_store_split_commit returned.  The copy is used for both providers:
 * shm cannot register foreign memory (fm_region_reg -> -EOPNOTSUPP) and on
 * verbs it costs a few word stores per commit, while a registered mirror
 * would tie the RDMA key's lifetime to the store's internal memory.
 *
 * Lock tables are DRAM regions (REMOTE_ATOMIC), zeroed at start: after an
 * owner restart no lock survives -- which is why the restart grace keeps
 * them from clients until every lease of the previous owner ran out, and
 * with it every data step begun under its locks (lease.h R6).
 *
 * Control socket: a unix stream socket, one command per line (at most
 * FM_CTL_LINE_MAX = 511 bytes with its newline), words separated by blanks;
 * answers are text lines ending with a line "ok" or "error <errno-name>:
 * <message>".  Every answer line is a record: "NAME KEY VALUE KEY VALUE..."
 * (an odd number of words: the record's name, then pairs) or "KEY VALUE
 * ..." (even: pairs, the first key names it); values hold no blanks.
 * "json CMD ..." answers the same as one JSON line (flashmeta/ctl_json.h),
 * then the usual "ok" / "error" line; `flashmeta --json admin ...` asks
 * that way.  Commands:
 *
 *   status | maps                      the owner, its store, every mapping
 *   sessions                           every session: client, epoch, token,
 *                                      state, lease left (ms), quiesced,
 *                                      age (ms since its epoch began)
 *   lock-show MAP GRAIN                the grain's lock word decoded (free,
 *                                      held, handing-over; client, epoch,
 *                                      waiters) and the holder's session
 *                                      state, lease left and age, or
 *                                      "gone"; the LOCK_REQUESTs queued for
 *                                      the word, who asked first and how
 *                                      long ago (oldest-waiter-ms).  The
 *                                      owner never sees an uncontended
 *                                      acquisition: when the holder took
 *                                      the word is the holder's to say
 *                                      (fm_agent_locks, `flashmeta lock`)
 *   map-create ID SRC TGT SIZE [GRAIN] [autodelete]
 *                                      a new mapping: SIZE bytes
 *                                      (1..2^57, a multiple of 512), GRAIN
 *                                      bytes (a power of two, 4 KiB..1 GiB;
 *                                      0 or none: 64 KiB); SRC != TGT; the
 *                                      limits between mappings of
 *                                      fm_mapping_admit (mapping.h), the
 *                                      pool's slots (ENOSPC) and grains
 *                                      per mapping (EFBIG)
 *   map-show ID                        one mapping, with its background
 *                                      copy: split-pct, rate,
 *                                      rate-bytes-per-s, eta-s (at the
 *                                      rate; -1: never, rate 0), copiers
 *                                      (sessions copying a batch now),
 *                                      copy-grains-out, -returned, -batches,
 *                                      changed (grains reported written in
 *                                      this generation), changed-unknown
 *   map-prepare ID, map-start ID, map-restart ID, map-stop ID
 *                                      transitions (deferred, see below)
 *   map-refresh ID                     the incremental refresh (deferred,
 *                                      control.c): revoke, every client
 *                                      reports what it wrote, then split :=
 *                                      split AND NOT changed, generation +
 *                                      1, copying.  From copying or
 *                                      idle_or_copied after a trigger;
 *                                      EPERM otherwise and for a restored
 *                                      mapping, EBUSY for a group member,
 *                                      EOPNOTSUPP before pool format 1.4.
 *                                      Answer: the map line, then
 *                                      "refreshed map ID generation G kept
 *                                      K dropped D full 0|1" (full: the
 *                                      changed set was unknown, every grain
 *                                      is copied again)
 *   map-rate ID RATE                   background copy rate 0..150
 *                                      (flashmeta/copy.h; 0: none, the
 *                                      default), durable, at once: the
 *                                      copiers learn it from their next
 *                                      batch
 *   map-delete ID [force]              revoke (REMOVE), then free the pool
 *                                      slot (deferred, like a transition);
 *                                      only idle_or_copied or stopped, else
 *                                      EBUSY naming the state; force: any
 *                                      state, STOP recorded first (the
 *                                      target is no image any more).
 *                                      Answer: "deleted map ID state S
 *                                      forced 0|1 autodelete 0|1"
 *   map-autodelete ID on|off           delete the mapping when its copy
 *                                      completes: in the pool's slot
 *                                      (format 1.2); a 1.1/1.0 pool keeps
 *                                      it in DRAM only (a restart forgets
 *                                      it; the answer adds "autodelete map
 *                                      ID durable 0")
 *   group-create G MAP...,             consistency groups (groups.c has the
 *   group-add G MAP...,                design): membership in the pool
 *   group-remove G MAP...,             (1.2; else EOPNOTSUPP), at most 32
 *   group-delete G                     members, a mapping in one group at
 *                                      most.  Answer "group G members N
 *                                      maps a,b states s,t operation
 *                                      OP|-", group-delete "deleted group G
 *                                      members N"
 *   group-show [G]                     G's line and its members' map
 *                                      lines; or every group's line
 *   group-prepare G, group-start G,    every member's transition together
 *   group-stop G                       (deferred): all revoked first, none
 *                                      granted again before all are;
 *                                      group-start is one crash-atomic
 *                                      trigger.  A member-level
 *                                      map-prepare/start/restart/stop of a
 *                                      member: EBUSY naming the group
 *   quit                               closes the control connection
 *
 * Numbers are decimal digits only (no sign, no 0x), at most 2^64-1, or the
 * answer is "error EINVAL" / "error ERANGE" naming the argument; a wrong
 * number of words is "error EINVAL: usage: ...".  A line holding a NUL
 * byte is answered "error EINVAL" and the next line runs; a line over the
 * limit is answered "error EINVAL: line too long" and the connection
 * closed; so is one that sends over 511 bytes while a deferred command
 * runs.  map-prepare/start/restart/stop first revoke every confirmation
 * lease of the mapping (RELEASE_REQUEST), and change the store only after
 * FM_NOTE_REVOKED; their answer comes then, and later lines of the same
 * connection wait for it, at most cfg.transition_timeout_ms: then the
 * revoke is given up (fm_owner_map_revoke_cancel), the answer is "error
 * ETIMEDOUT" naming the clients that did not release, and nothing
 * changed.  A COPYING mapping whose every grain is split
 * (by the background copy or by foreground writes) goes to idle_or_copied
 * by itself, the same way (revoke with reason COPIED, then COPY_COMPLETE
 * in the store, then the new descriptor), checked at every timer tick;
 * a control transition of it meanwhile answers "error EALREADY".  The
 * client side of the socket is fm_ownerd_ctl (flashmeta/ctl.h).
 *
 * Idle control connections: one that sent nothing and was answered
 * nothing for control_idle_ms (60 s by default) is told "error
 * ETIMEDOUT: idle ..." and closed, unless it waits for a deferred answer.
 * At most 16 control connections are open at once; when a 17th comes, the
 * longest-idle one not waiting for a deferred answer is told "error
 * ETIMEDOUT: closed, idle ... and every control slot taken" and closed to
 * make room, so idle connections can never lock out `status`; only when
 * all 16 wait for deferred answers does the newcomer get "error EBUSY".
 *
 * The control socket path (cfg.control_path) is bound only where there is
 * nothing, or a stale socket (one nobody listens on: a previous owner that
 * died), which is replaced.  A socket that a live process serves gives
 * -EADDRINUSE ("in use by a running owner"); anything else there -- a
 * regular file (the pool itself, say), a directory, a FIFO, a symbolic
 * link -- gives -EEXIST, and nothing is touched.  The socket is bound
 * before the pool is opened, so such a refusal neither creates nor writes
 * a pool.  fm_ownerd_delete removes the socket file only if it is still
 * the one this owner bound (same device and inode): not one another owner
 * put there since, nor whatever an operator replaced it with.
 *
 * Errors: negative errno, detail in fm_errormsg().
 */
#ifndef FLASHMETA_OWNERD_H
#define FLASHMETA_OWNERD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "flashmeta/ctl.h" /* FM_KEY_MAX, fm_key_file_read */

struct fm_ownerd;

enum fm_loglvl {
	FM_LOGLVL_ERR = 0,
	FM_LOGLVL_WARN = 1,
	FM_LOGLVL_INFO = 2,
	FM_LOGLVL_DEBUG = 3,
};

struct fm_ownerd_cfg {
	const char *provider;     /* "shm" (default) or "verbs" */
	const char *device;       /* verbs device, NULL = first */
	const char *listen;       /* "IP:PORT" or "shm:/NAME"; required */
	const char *pmem_path;    /* pool file; created if absent; required */
	uint32_t pool_max_maps;   /* create only; 0 -> 64 */
	uint64_t pool_max_grains; /* create only; 0 -> 1 << 20 */
	const char *control_path; /* unix socket path; NULL = none */
	uint32_t control_idle_ms; /* close control connections idle this long;
				   * 0 -> 60000 */
	uint32_t lease_ms;        /* client lease term; 0 -> 3000 */
	uint32_t transition_timeout_ms; /* a map-* transition (or map-delete)
				   * waits this long for every holder's
				   * RELEASED, then fails ETIMEDOUT; 0 -> 30000 */
	uint32_t client_first;    /* allowed client ids [first, last]; 0,0 -> 1..64 */
	uint32_t client_last;
	uint32_t shm_uids[8];     /* uids that may connect over shm (transport.h
				   * FM_SHM_UIDS_MAX); shm_nuids 0 -> our own */
	uint32_t shm_nuids;
	const char *fence_table;  /* storage fence table (fence_table.h),
				   * created if absent; NULL = none */
	uint8_t key[FM_KEY_MAX];  /* shared key for every client */
	size_t key_len;           /* 1..64 */
	enum fm_loglvl log_level;
};

/*
 * fm_ownerd_new -- open (or create) the store, open the transport, listen,
 * register every stored mapping's regions and publish its durable bits.
 * Returns 0, -EINVAL (cfg), or the errno of the store (-EBUSY: the pool is
 * in use by another owner or tool), the transport or the control socket
 * (-EADDRINUSE, -EEXIST: see "Control socket" above).  Blocks (store open,
 * loopback handshake).
 */
int fm_ownerd_new(struct fm_ownerd **out, const struct fm_ownerd_cfg *cfg);

/*
 * fm_ownerd_run -- the event loop; returns 0 after fm_ownerd_stop(), or a
 * negative errno if the loop itself fails (poll, store I/O error on
 * commit).  Call from one thread.
 */
int fm_ownerd_run(struct fm_ownerd *d);

/* fm_ownerd_stop -- make fm_ownerd_run return at its next iteration.
 * Async-signal-safe (one write to an eventfd). */
void fm_ownerd_stop(struct fm_ownerd *d);

/* fm_ownerd_delete -- BYE to every client, close endpoints, the listener,
 * the transport and the store.  NULL-safe, sets *dp = NULL. */
void fm_ownerd_delete(struct fm_ownerd **dp);

/*
 * Log: one line per event on stderr, messages above cfg.log_level dropped:
 *   flashmeta-owner[PID] 2026-11-29T01:23:45.678Z LEVEL: message
 * (ISO 8601, UTC, milliseconds; LEVEL error | warn | info | debug), or,
 * when stderr is the systemd journal's stream (JOURNAL_STREAM names
 * stderr's device and inode), "<N>LEVEL: message" with the syslog
 * priority N (3, 4, 6, 7) for journald and no timestamp.
 *
 * fm_ownerd_log_is_journal -- whether stderr is the journal's stream
 * (decided once per process), so a program can give its own messages a
 * priority the same way.  Never blocks.
 */
bool fm_ownerd_log_is_journal(void);

/*
 * Config keys (a config file's "key = value" lines, and flashmeta-owner's
 * flags, which replace the file's values):
 *
 *   listen           IP:PORT (verbs) or shm:/NAME (shm); required
 *   transport        shm (default) | verbs; also "provider"
 *   device           RDMA device name (default: the first)
 *   pmem             pool file or device-DAX path; required; also "pmem_path"
 *   control          control socket path, at most 107 bytes (a sockaddr_un);
 *                    see "Control socket" above for what may already be there
 *   key_file         the shared client key, read at once: a regular file of
 *                    1..64 bytes (a trailing newline is dropped); required
 *   control_idle_ms  close an idle control connection after this long,
 *                    100..86400000 (default 60000; see "Idle control
 *                    connections" above)
 *   lease_ms         client lease term, 10..600000 (default 3000)
 *   transition_timeout_ms  how long map-prepare/start/restart/stop/delete
 *                    wait for the clients' RELEASED, 100..3600000 (default
 *                    30000); see "Control socket" above
 *   clients          allowed client ids, N or N-M within 1..65535
 *                    (default 1-64)
 *   shm_uids         U[,U...]: the uids whose processes may connect over
 *                    shm, at most 8 (default: the owner's own); one that
 *                    this process could not SIGKILL is refused at accept
 *                    (transport.h: shm is one trust domain)
 *   pool_max_maps    pool slots at creation, 1..1024 (default 64)
 *   pool_max_grains  grains per mapping at creation, 1..2^45
 *                    (default 2^20)
 *   fence_table      path of the storage fence table (flashmeta/fence_table.h)
 *                    the reference volumes check; created if absent.  At
 *                    start every allowed client's floor is raised to this
 *                    incarnation (waiting for writes in flight); each
 *                    fenced session's floor is raised past its token
 *                    before its locks go to anyone else.  Default: none
 *   log_level        err (or error) | warn | info (default) | debug
 *
 * Values: numbers are decimal digits only (no sign, no 0x, no blanks
 * inside), checked against the range above before use; no value is empty
 * or holds a control character.  In a line, '#' at its start or after a
 * blank starts a comment (so a path may contain '#'); blank lines are
 * ignored.
 */

/*
 * fm_ownerd_cfg_set -- set one key (a name above) to `value`, taken as it is
 * (no comment, no trimming): what flashmeta-owner does with its flags.
 * Strings are strdup'ed (free them with fm_ownerd_cfg_fini); a key set
 * again replaces the earlier value.  key_file reads the file now.
 * Returns 0, -EINVAL (unknown key or bad value), -ERANGE (a number out of
 * range), -ENAMETOOLONG (control), -ENOMEM, or fm_key_file_read's errors;
 * the message names the key.  *cfg is unchanged on error.
 */
int fm_ownerd_cfg_set(struct fm_ownerd_cfg *cfg, const char *key, const char *value);

/*
 * fm_ownerd_cfg_parse_line -- apply one "key = value" line (at most 1023
 * bytes; one trailing newline allowed) to *cfg, as fm_ownerd_cfg_set does.
 * A blank or comment-only line is accepted and changes nothing.  Returns
 * 0 or fm_ownerd_cfg_set's errors, the message starting "config: ".
 */
int fm_ownerd_cfg_parse_line(struct fm_ownerd_cfg *cfg, const char *line);

/* fm_ownerd_cfg_fini -- free the strings parse_line made and wipe the key;
 * the cfg can be parsed into again. */
void fm_ownerd_cfg_fini(struct fm_ownerd_cfg *cfg);

/*
 * fm_ownerd_cfg_load -- every line of the config file `path`, in order.
 * Only a regular file of at most 64 KiB is read (a FIFO, a device or a
 * directory is refused without blocking); a line over 1023 bytes, a NUL
 * byte, an unknown key, a bad value or a key given twice in the file stops
 * the load (keys applied before it stay applied: discard the cfg).
 * Returns 0, -EINVAL, -ERANGE, -ENAMETOOLONG, -EISDIR, -ENODEV, -EFBIG,
 * -ENOMEM or an errno of stat/open/read; the message names the file and
 * the line ("owner.conf:7: lease_ms 5: not in 10..600000").
 */
int fm_ownerd_cfg_load(struct fm_ownerd_cfg *cfg, const char *path);

#endif /* FLASHMETA_OWNERD_H */
