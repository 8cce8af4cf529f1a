/* transport.h -- one interface, two providers: RDMA verbs and shared memory.
 *
 * What the protocol needs from a network, and nothing more:
 *
 *   owner                                   client
 *   -----                                   ------
 *   fm_transport_new(&t, {provider})        fm_transport_new(&t, {provider})
 *   fm_region_new(t, bitmap,  REMOTE_READ)
 *   fm_region_new(t, locks,   REMOTE_ATOMIC)
 *   fm_listen(t, "10.77.0.1:7471", &l)
 *   fm_listener_loopback(l, &self)          fm_connect(t, addr, hello, n, ms, &ep)
 *   fm_listener_accept(l, ms, &ep) <------- (hello bytes ride in the request)
 *   fm_ep_hello(ep, ...)  peer's hello
 *   ... the protocol authenticates the peer (HELLO, CHALLENGE, AUTH) ...
 *   fm_ep_grant(ep)        ---------------> (one-sided access opens)
 *   fm_region_desc(bitmap), fm_ep_send()--> fm_ep_recv()   descriptors
 *                                           fm_ep_read(ep, dst, &bitmap_desc, ..)
 *   fm_ep_cas(self, &lock_desc, ...)        fm_ep_cas(ep, &lock_desc, ...)
 *   fm_ep_fence(ep, flags) ... FM_FENCE_RDMA / FM_FENCE_DEAD, never blocking
 *
 * Providers (chosen by name in fm_transport_cfg.provider):
 *   "verbs"  librdmacm + libibverbs, RC queue pairs.  Addresses "IP:PORT".
 *   "shm"    processes on one host.  Addresses "shm:/flashmeta-NAME" (or just
 *            "NAME"); the rendezvous is the abstract unix socket
 *            "\0flashmeta-NAME".  Regions live in two memfd arenas of the
 *            owner that are passed to the peer with SCM_RIGHTS only when it
 *            is granted access; one-sided operations are C11 atomics and
 *            acquire loads on the shared mapping; messages travel through
 *            one pair of SPSC rings per connection, with the connection
 *            socket as the doorbell.  Not a mock: it is how owner and
 *            clients share one machine (see SHM TRUST MODEL below).
 * Semantics are the same for both, including how failures are reported.
 *
 * Errors: 0 (or a count) on success, a negative errno on failure, detail in
 * fm_errormsg() (flashmeta/error.h).
 *
 * Endpoint states (fm_ep_state):
 *   CONNECTING  being set up (never seen through the public API on success).
 *   UP          all operations allowed.
 *   CLOSING     a local close has begun; operations fail with -ENOTCONN.
 *   CLOSED      final.  The reason says why: "closed locally", "peer closed",
 *               "peer died", "remote access error (bad key)", "work request
 *               flushed", "operation timed out", ...  Every failure of a
 *               network operation ends here: the endpoint is never left half
 *               usable, and a flushed completion is a teardown, not a crash.
 *   Operations on a non-UP endpoint return -ENOTCONN.  An operation that
 *   itself broke the endpoint returns its own errno (-EACCES for a key
 *   the owner refused, -ECONNRESET for a peer that went away, -ETIMEDOUT,
 *   -EPROTO for a peer that broke the transport's rules); fm_ep_error()
 *   tells it later.
 *
 * Threads: a transport may be shared by threads (region and endpoint
 * creation take its lock).  An endpoint has one owning thread at a time
 * (every fm_ep_* call); other threads post one-sided operations on it
 * through LANES (see "lanes" below for exactly what is thread-safe).
 * fork: a child must not use its parent's transports, and with verbs a
 * process forked after its parent's first RDMA call cannot open working
 * ones either (librdmacm keeps the parent's device contexts; the kernel
 * refuses the child's posts).  Fork workers before creating a transport.
 *
 * ATOMICITY (read this before touching the lock table):
 *   RDMA atomics are atomic only against other RDMA atomics on the same
 *   memory (IBV_ATOMIC_HCA).  A CPU store, or even a CPU lock-prefixed
 *   instruction, on a word that peers change with CAS/FAA can be lost.  So the
 *   owner never touches its lock table with the CPU: it opens a LOOPBACK
 *   endpoint (fm_listener_loopback) and performs its own CAS/FAA through the
 *   same transport.  verbs: a real RC connection from the owner to its own
 *   listener, so the owner's atomics go through the same HCA.  shm: the same
 *   C11 atomics on the same mapping, trivially consistent.  The owner may
 *   READ its own regions directly (plain loads).
 *
 * SHM TRUST MODEL -- ONE TRUST DOMAIN.
 *   Who may connect: a process of an allowed uid (fm_transport_cfg
 *   shm_uids; default: the owner's own euid) that this process can SIGKILL
 *   (same uid, or we have CAP_KILL) and whose pid we can see.  Anyone else
 *   is refused at accept, before a single byte or fd is sent to it: a peer
 *   that could not be fenced is never let in.
 *   What a peer gets, and when (nothing of a client is ever mapped by the
 *   owner; the connection request carries no fd):
 *     connect   the per-connection ring memfd (sealed against shrinking:
 *               the owner's mapping can never SIGBUS).  No region memory.
 *     grant     (fm_ep_grant, after the protocol authenticated the peer)
 *               the READ arena -- the region table and every REMOTE_READ
 *               region (split bitmaps) -- and the ATOMIC arena (lock
 *               tables).  The READ arena is sealed F_SEAL_FUTURE_WRITE
 *               after the owner mapped it writable: a client can map it
 *               only PROT_READ and never mprotect it writable, so no
 *               client can set a split bit or forge the region table.
 *   What the owner trusts: nothing it reads from peer-writable memory
 *   decides how it indexes its own memory.  Ring geometry (slot count,
 *   stride, sizes) and its own ring indices are owner-private; the
 *   peer's head/tail are checked against them; a peer breaking a rule
 *   closes its own endpoint with -EPROTO, never crashes or stalls the
 *   owner.  What a peer may make the owner allocate (receive credits,
 *   message size: the ring the owner creates for it) is bounded, refused
 *   with a clear error at accept.
 *   What stays trusted: the lock tables are REMOTE_ATOMIC, so they are
 *   writable by every AUTHENTICATED client -- exactly as on verbs, where
 *   a granted QP may CAS any word.  Authenticated clients of allowed uids
 *   are trusted to run this library unmodified: it maps the owner's
 *   arenas MADV_DONTFORK (a fork child inherits nothing), unmaps them
 *   before it says BYE, and changes lock words only by CAS.  A process of
 *   an allowed uid can also ptrace the client, or read the key file: the
 *   uid is the trust boundary, as for any same-user IPC.  A process
 *   sharing the client's address space without being in its thread group
 *   (clone(CLONE_VM) without CLONE_THREAD) is not killed by a fence.
 */
#ifndef FLASHMETA_TRANSPORT_H
#define FLASHMETA_TRANSPORT_H

#include <stddef.h>
#include <stdint.h>

#include "flashmeta/fence.h"
#include "flashmeta/region.h"

#ifdef __cplusplus
extern "C" {
#endif

struct fm_transport; /* a provider instance: device, protection domain */
struct fm_listener;  /* the owner's passive side */
struct fm_ep;        /* one connection */
struct fm_region;    /* memory registered with a transport */

/* Largest hello (connection private data) a client can send. */
#define FM_HELLO_MAX 32

/* How an endpoint waits for completions. */
enum fm_wait_mode {
	FM_WAIT_BUSY = 0, /* spin on the completion queue / ring (lowest latency) */
	FM_WAIT_EVENT = 1 /* sleep on fm_ep_fd() (one CPU per waiter saved) */
};

/* Most uids fm_transport_cfg.shm_uids lists. */
#define FM_SHM_UIDS_MAX 8

/* Limits on what a peer may ask for in its connection request (both
 * providers refuse more with -EPROTO; the shm owner creates a ring of
 * that size for each peer). */
#define FM_CREDITS_MAX 4096u        /* receive buffers (data credits) */
#define FM_CTRL_CREDITS_MAX 16u     /* receive buffers for CREDIT messages */
#define FM_MSG_SIZE_MAX (1u << 24)  /* message payload bytes */

struct fm_transport_cfg {
	const char *provider; /* "verbs" or "shm"; NULL = "shm" */
	const char *device;   /* verbs: device name ("rxe0"); NULL = first */
	uint32_t msg_size;    /* largest message payload; 0 = 4096 */
	uint16_t credits;     /* receive buffers per endpoint = the peer's send
			       * credits; 0 = 16; at least 2 */
	enum fm_wait_mode wait_mode;
	int op_timeout_ms; /* bound on any blocking operation; 0 = 10000 */
	int linger_ms;     /* fm_ep_delete waits up to this long for messages
			    * sent before it to be delivered (verbs: their send
			    * completions; shm: room for the BYE); 0 = 1000,
			    * negative = do not wait */
	/* shm, accepting side: the arenas, created at the first fm_listen or
	 * shared fm_region_new, sparse (only touched pages cost memory) */
	uint64_t shm_read_size;   /* READ arena: region table + REMOTE_READ
				   * regions; 0 = 64 MiB */
	uint64_t shm_atomic_size; /* ATOMIC arena: REMOTE_ATOMIC regions;
				   * 0 = 1 GiB */
	uint32_t shm_max_regions; /* region table entries; 0 = 256 */
	/* shm, accepting side: uids allowed to connect; 0 entries = only our
	 * own effective uid.  A listed uid we cannot SIGKILL is refused too. */
	uint32_t shm_nuids;
	uint32_t shm_uids[FM_SHM_UIDS_MAX];
	/* lanes (fm_lane_new): operations in flight per lane, 0 = 64, at most
	 * FM_LANE_DEPTH_MAX; lanes per endpoint (besides the one fm_ep_read/
	 * cas/faa use), 0 = 16, at most FM_LANES_MAX.  verbs sizes each
	 * endpoint's send and completion queues from their product. */
	uint32_t lane_depth;
	uint32_t max_lanes;
};

#define FM_LANE_DEPTH_MAX 4096u
#define FM_LANES_MAX 256u

/* Capability bits (fm_caps.flags), detected at run time. */
#define FM_CAP_ATOMIC (1u << 0)       /* 8-byte CAS/FAA on remote memory */
#define FM_CAP_ATOMIC_GLOB (1u << 1)  /* ...also atomic against the CPU */
#define FM_CAP_ATOMIC_WRITE (1u << 2) /* device: RDMA ATOMIC_WRITE */
#define FM_CAP_FLUSH (1u << 3)        /* device: RDMA FLUSH */
#define FM_CAP_PERSIST (1u << 4)      /* one-sided persistence usable: device
				       * FLUSH and ibv_wr_flush compiled in
				       * (rdma-core >= 45).  Not used yet. */
#define FM_CAP_EVENT_FD (1u << 5)     /* FM_WAIT_EVENT supported */

struct fm_caps {
	uint32_t flags;
	uint32_t max_msg_size;
	char provider[16];
	char device[64];   /* "rxe0", or "shm" */
	uint64_t max_region_size;
};

/*
 * fm_transport_new -- open a provider.  Does not block on the network.
 * Returns 0, -EINVAL (bad cfg), -ENOENT (unknown provider), -ENODEV (no RDMA
 * device, or the named one is absent: "no RDMA device: ..."), -ENOMEM.
 */
int fm_transport_new(struct fm_transport **out, const struct fm_transport_cfg *cfg);

/* fm_transport_delete -- close; all endpoints, listeners and regions must be
 * deleted first.  NULL-safe, sets *tp = NULL. */
void fm_transport_delete(struct fm_transport **tp);

/* fm_transport_caps -- what this provider and device can do.  Never fails. */
void fm_transport_caps(const struct fm_transport *t, struct fm_caps *caps);

/* fm_transport_providers -- names of the providers compiled in, NULL-ended. */
const char *const *fm_transport_providers(void);

/* ---------------------------------------------------------------- regions */

/* struct fm_region_desc and the FM_ACCESS_* bits: flashmeta/region.h (one
 * descriptor for the wire and the transports). */

/*
 * fm_region_new -- allocate `len` bytes of zeroed memory registered for
 * `access`, page aligned.  The memory is fm_region_ptr(r).  Regions peers
 * access must be allocated this way (shm: they must live in an arena: a
 * REMOTE_READ-only region in the READ arena, anything with REMOTE_ATOMIC in
 * the ATOMIC arena; the arenas are created at the first call or fm_listen,
 * sized by cfg.shm_read_size / shm_atomic_size).  The space of a deleted
 * region is reused.  Returns 0, -EINVAL, -ENOMEM (arena full: the message
 * says which and how much is left; or the arena could not be created and
 * mapped), -ENOSPC (shm: region table full), or the registration errno.
 */
int fm_region_new(struct fm_transport *t, size_t len, unsigned access, struct fm_region **out);

/*
 * fm_region_reg -- register caller memory (verbs only; the memory must stay
 * valid until fm_region_delete).  shm: -EOPNOTSUPP (memory outside the arena
 * cannot be shared).  Note fsdax memory cannot be registered on rxe.
 */
int fm_region_reg(struct fm_transport *t, void *addr, size_t len, unsigned access,
		  struct fm_region **out);

/* fm_region_delete -- deregister (and free if fm_region_new).  Peers'
 * accesses with the old key fail from now on.  NULL-safe, sets *rp = NULL. */
void fm_region_delete(struct fm_region **rp);

void *fm_region_ptr(const struct fm_region *r);
size_t fm_region_len(const struct fm_region *r);

/* fm_region_desc -- the descriptor a peer needs.  Never fails. */
void fm_region_desc(const struct fm_region *r, struct fm_region_desc *d);

/* ------------------------------------------------------ connection setup */

/*
 * fm_listen -- start listening on `addr` ("IP:PORT" for verbs, "shm:/NAME"
 * for shm).  Returns 0, -EINVAL (bad address), -EADDRINUSE, -ENODEV (the
 * address is not on this transport's device).
 */
int fm_listen(struct fm_transport *t, const char *addr, struct fm_listener **out);

/* fm_listener_delete -- stop listening; accepted endpoints stay up.
 * NULL-safe, sets *lp = NULL. */
void fm_listener_delete(struct fm_listener **lp);

/* fm_listener_fd -- readable when a connection request is waiting, or a
 * half-open shm connection has something to say (use with poll/epoll, then
 * fm_listener_accept). */
int fm_listener_fd(const struct fm_listener *l);

/*
 * fm_listener_accept -- wait up to timeout_ms (-1: forever, 0: just check)
 * for a connection request, accept it, and return the endpoint UP.  The
 * client's hello is then available through fm_ep_hello().  The peer has no
 * access to our regions until fm_ep_grant.  Blocks up to timeout_ms.
 *   shm: a connection waits in a small half-open set (never blocking the
 *   caller) until its request arrives; one silent for 2 s, or pushed out by
 *   newer ones, is dropped.  A peer's uid is checked the moment it is
 *   accepted, its request and killability when the request arrives.
 * Returns 0, -ETIMEDOUT, -EPROTO (a request without our handshake, or one
 * asking for more than FM_CREDITS_MAX / FM_CTRL_CREDITS_MAX; rejected),
 * -ECONNABORTED (the client went away during setup), -ENOMEM, and for shm
 * -EACCES (the peer's uid is not allowed: fm_errormsg() names it) and
 * -EPERM (the peer could not be fenced: we may not SIGKILL it, or cannot
 * see its pid).  A refused peer got nothing: no byte, no fd.  Every error
 * is about one connection request: call again for the next.
 */
int fm_listener_accept(struct fm_listener *l, int timeout_ms, struct fm_ep **out);

/*
 * fm_listener_loopback -- an endpoint from the owner to itself, for the
 * owner's own atomics on its lock table (see ATOMICITY above).  One-sided
 * operations only: fm_ep_send/recv on it return -EOPNOTSUPP; lanes work
 * (the owner posts its lock-table CASes on one and polls it from its
 * loop).  Delete it with fm_ep_delete before the listener.  Blocks for the handshake (verbs).
 * Client requests that arrive meanwhile are kept for fm_listener_accept
 * (which takes them first, even if fm_listener_fd is not readable).
 */
int fm_listener_loopback(struct fm_listener *l, struct fm_ep **out);

/*
 * fm_connect -- connect to a listener, sending `hello` (up to FM_HELLO_MAX
 * bytes, may be NULL/0) in the connection request.  Blocks up to
 * timeout_ms (-1: the transport's op timeout).  Returns 0 with the endpoint
 * UP, -ECONNREFUSED (nobody listens: retry later), -ETIMEDOUT,
 * -EHOSTUNREACH, -EPROTO (the other side does not speak our handshake),
 * -ENODEV (address on another device), -EMSGSIZE (hello too long).
 */
int fm_connect(struct fm_transport *t, const char *addr, const void *hello, size_t hello_len,
	       int timeout_ms, struct fm_ep **out);

/*
 * fm_ep_delete -- disconnect (the peer sees "peer closed") and free.
 * Messages fm_ep_send handed over before are delivered first (LINGER):
 * verbs waits up to cfg.linger_ms for their send completions, then
 * disconnects; shm messages are in the shared ring already and the peer
 * drains the ring before it acts on our BYE (shm waits up to linger_ms
 * only for room for the BYE byte).  A client may thus send its last
 * word (BYE{QUIESCED}) and delete at once.  Other work in flight is
 * flushed.  Lanes still open complete what they had in flight with an
 * error and fail new posts with -ENOTCONN; the memory they refer to is
 * freed with the last of them (see "lanes").  NULL-safe, sets *ep = NULL.
 * Blocks up to linger_ms.
 */
void fm_ep_delete(struct fm_ep **ep);

enum fm_ep_state {
	FM_EP_CONNECTING = 0, /* handshake in progress */
	FM_EP_UP,             /* usable */
	FM_EP_CLOSING,        /* local close begun */
	FM_EP_CLOSED          /* final; see the reason */
};

/*
 * fm_ep_grant -- open the peer's one-sided access to our shared regions
 * (every region with REMOTE_* access, now and later).  Call it once the
 * protocol has authenticated the peer, BEFORE sending it the descriptors:
 * until then every READ, CAS or FAA of the peer fails like a remote access
 * error (its endpoint CLOSED, -EACCES), whatever descriptor it forges.
 * Idempotent.  Never blocks.  Accepting side only.
 *
 *   verbs  accepted QPs are brought up with no remote access at all;
 *          this modifies the QP to REMOTE_READ | REMOTE_ATOMIC -- the
 *          least the protocol needs (no REMOTE_WRITE, ever).
 *   shm    sends the READ and ATOMIC arena memfds over the connection
 *          socket (SCM_RIGHTS); the peer maps them (READ arena PROT_READ)
 *          when it receives them.  ORDER: the peer's progress loads its
 *          ring's head, THEN reads the socket, THEN hands out the ring's
 *          messages up to that head.  We send the grant before we publish
 *          any later message, so a message sent after fm_ep_grant (the
 *          WELCOME naming the regions) is never processed before the
 *          grant is mapped.
 * Returns 0, -EINVAL (NULL, connecting side), -ENOTCONN (not UP), or the
 * errno that failed it (the endpoint is then CLOSED: shm -EAGAIN when the
 * peer lets its socket fill up).
 */
int fm_ep_grant(struct fm_ep *ep);

/* fm_ep_fence flags */
#define FM_FENCE_F_KILL (1u << 0) /* stop the peer's whole process where the
				   * transport can (shm), not only its RDMA */

/*
 * fm_ep_fence -- stop the peer: no one-sided operation it issued through
 * THIS connection (or still in flight) lands in our memory once a level is
 * returned.  NEVER BLOCKS: call it again when fm_ep_fence_fd() turns
 * readable or at the next tick until it returns a level.  The endpoint is
 * CLOSED from the first call on (reason "fenced ..."); delete it with
 * fm_ep_delete once a level is reached.  Returns
 *   FM_FENCE_RDMA  the peer can no longer reach our memory (fence.h),
 *   FM_FENCE_DEAD  and its process has exited (shm only),
 *   -EINPROGRESS   not yet; fm_errormsg() says what it waits for,
 * or, when the peer cannot be fenced, -EPERM (shm: not allowed to SIGKILL
 * it, fm_errormsg() says why), -EOPNOTSUPP (shm: connecting side), -EINVAL
 * (NULL, unknown flags, the loopback endpoint).  Operations in flight on
 * the endpoint's lanes complete with an error unless they executed first;
 * the lanes' posts fail with -ENOTCONN.  A caller that gets
 * anything but a level must NOT treat the peer as fenced: its lock words
 * stay held (safe) until a later call succeeds or an operator acts.
 * Calling it again after a level returns that level at once (with KILL on
 * an shm endpoint fenced at RDMA: goes on to DEAD).
 *
 *   verbs  the QP goes to ERROR (outstanding work is flushed) and is
 *          destroyed: an RC responder executes nothing for a QP in ERROR,
 *          and a destroyed QP has no context left to execute in ->
 *          FM_FENCE_RDMA at the first call, with or without KILL.  Verbs
 *          CANNOT DO MORE: a remote process cannot be killed, and its
 *          writes to shared storage go on; that is why lease.h R4c
 *          releases such a client only when its lease ran out.  The
 *          rkeys of our regions stay valid for OTHER QPs; a fenced client
 *          that reconnects gets a new QP and a new session.
 *   shm    the accepting side took a pidfd of the connecting process at
 *          accept (SO_PEERPIDFD, else SO_PEERCRED + pidfd_open while the
 *          connection proves it alive, then checked again), and refused
 *          peers it could not kill.  The transport never ASKS the peer
 *          (no BYE from here): whether it quiesced is the protocol's
 *          question (lease.h R3/R4).
 *     without KILL: the process exited -> DEAD; the peer closed (its BYE
 *          byte: this library unmaps our arenas and rings before sending
 *          it) -> RDMA; neither -> -EINPROGRESS until a close grace of
 *          FM_SHM_CLOSE_GRACE_MS from the first call has passed, then
 *          SIGKILL through the pidfd, -> DEAD once the pidfd says the
 *          whole process exited (every thread left user space, its
 *          mappings are gone).
 *     with KILL: exited -> DEAD; otherwise SIGKILL now, even if it
 *          closed (a process that closed may still write its disks),
 *          -> DEAD once it exited.
 */
int fm_ep_fence(struct fm_ep *ep, unsigned flags);

/* shm: how long fm_ep_fence without KILL waits for a peer that neither
 * closed nor exited before it kills it */
#define FM_SHM_CLOSE_GRACE_MS 250

/*
 * fm_ep_fence_fd -- a file descriptor that turns readable when a fence in
 * progress may have moved on (shm: the peer's pidfd, readable once the
 * process exited), or -1 (verbs, loopback: nothing to wait for; poll at
 * the next tick).  Owned by the endpoint.
 */
int fm_ep_fence_fd(const struct fm_ep *ep);

/* fm_ep_error -- the errno that closed the endpoint (0 while UP).  Any
 * thread (lanes ask why their endpoint closed). */
int fm_ep_error(const struct fm_ep *ep);

/* fm_ep_state -- current state; *reason (if non-NULL) gets a static-lifetime
 * (per endpoint) string, "" unless CLOSED.  Does not progress the endpoint.
 * Any thread. */
enum fm_ep_state fm_ep_state(const struct fm_ep *ep, const char **reason);

/* fm_ep_state_name -- "CONNECTING", "UP", "CLOSING", "CLOSED". */
const char *fm_ep_state_name(enum fm_ep_state s);

/* fm_ep_hello -- the hello the peer sent at connect time (accepting side);
 * returns its length (0..FM_HELLO_MAX), copying at most `cap` bytes. */
size_t fm_ep_hello(const struct fm_ep *ep, void *buf, size_t cap);

/* ----------------------------------------------------- one-sided, client */

/*
 * fm_ep_read, fm_ep_cas, fm_ep_faa -- ONE operation, blocking: a thin
 * wrapper for tools and the owner's loopback that posts on a lane the
 * endpoint keeps for itself (depth 1, made at the first call) and waits
 * for its completion while progressing the endpoint.  Owning thread only.
 * A data path with many operations in flight, or on several threads, uses
 * lanes (below) instead.  An operation that does not complete within
 * op_timeout_ms closes the endpoint (-ETIMEDOUT).
 *
 * fm_ep_read -- copy `len` bytes at `src_off` of the remote region `src`
 * into the local region `dst` at `dst_off`.  Blocks until complete (busy
 * poll or event wait, per the wait mode).  shm: each aligned 8-byte word is
 * loaded with memory_order_acquire (a word is never torn; the whole range
 * is not a snapshot).  verbs: RDMA READ (no atomicity beyond the HCA's).
 * Checked locally first: -EINVAL (len 0, NULL), -ERANGE (outside src or
 * dst), -EACCES (src not granted REMOTE_READ; endpoint stays UP).
 * Remote failure: -EACCES (bad key), -ECONNRESET, -ETIMEDOUT; endpoint
 * CLOSED with the reason.
 */
int fm_ep_read(struct fm_ep *ep, struct fm_region *dst, size_t dst_off,
	       const struct fm_region_desc *src, uint64_t src_off, size_t len);

/*
 * fm_ep_cas -- compare-and-swap the 8-byte word at `off` of `rd`: if it
 * equals `expect`, set it to `desired`.  *old (may be NULL) gets the value
 * before, in host byte order (the swap happened iff *old == expect).
 * Local checks: -EINVAL (off not 8-aligned), -ERANGE (word outside rd),
 * -EACCES (rd lacks REMOTE_ATOMIC), -EOPNOTSUPP (device without atomics).
 * Remote failures as fm_ep_read.  Blocks until complete.
 */
int fm_ep_cas(struct fm_ep *ep, const struct fm_region_desc *rd, uint64_t off, uint64_t expect,
	      uint64_t desired, uint64_t *old);

/* fm_ep_faa -- fetch-and-add `add` (wraps mod 2^64) to the word at `off`;
 * *old gets the value before.  Errors as fm_ep_cas. */
int fm_ep_faa(struct fm_ep *ep, const struct fm_region_desc *rd, uint64_t off, uint64_t add,
	      uint64_t *old);

/* ------------------------------------------------------------- lanes */

/*
 * A LANE is how a thread posts one-sided operations on an endpoint and
 * polls their completions: many in flight, no hand-off to another thread
 * (post, then poll -- rpma_read/rpma_cq_get, SPDK's poller).
 *
 *   engine thread                               endpoint's owning thread
 *   fm_lane_new(ep, &lane)                      fm_ep_send / fm_ep_recv /
 *   fm_lane_post_cas(lane, &locks, off,         fm_ep_progress, as before,
 *                    0, me, ctx)  -> 0          concurrently
 *   fm_lane_post_read(lane, dst, 0, &bitmap, ...)
 *   n = fm_lane_poll(lane, c, 16)   c[i].ctx, c[i].status, c[i].old
 *   fm_lane_delete(&lane)
 *
 * THREADS.  Exactly these calls may run concurrently:
 *   - the owning thread's fm_ep_* calls (including fm_ep_fence and
 *     fm_ep_delete), and
 *   - any number of lanes of that endpoint, each on its own thread:
 *     fm_lane_post_*, fm_lane_poll, fm_lane_wait, fm_lane_fd,
 *     fm_lane_delete;
 *   - fm_lane_new, from any thread while the endpoint exists (not after
 *     fm_ep_delete was called);
 *   - fm_ep_state and fm_ep_error, from any thread.
 * NOT thread-safe: one lane used by two threads at once; the endpoint's
 * other fm_ep_* calls from two threads at once.  A lane may move between
 * threads if they hand it over with a lock or another happens-before edge.
 * Memory a posted operation names (the READ destination region) must stay
 * registered until its completion was polled.
 *
 * COMPLETION CONTRACT.  A post returns 0 and exactly ONE completion with
 * its ctx follows on the same lane, or a negative errno and none ever.
 * Completions may come in any order.  fm_completion.status:
 *   0          the operation executed: a READ's bytes are in the
 *              destination, an atomic's `old` is the word before it.
 *   < 0        it did not execute -- or, for an atomic, its outcome is
 *              unknown (verbs: a request whose response was lost may have
 *              changed the remote word; treat the word as "maybe ours"):
 *     -EACCES      remote access error (bad key, not granted, outside the
 *                  region on the owner's side): the endpoint CLOSES, as
 *                  with fm_ep_cas
 *     -ECONNRESET  the connection broke, the work was flushed
 *     -ENOTCONN    this side closed or fenced the endpoint under it
 *     -ETIMEDOUT   the transport's retries ran out
 *     or another errno the endpoint closed with (fm_ep_error).
 * An operation that executed before its endpoint closed completes with 0
 * -- the remote word did change -- even if it is polled after the close.
 * Local checks fail the POST, with no completion and the endpoint UP:
 * -EINVAL (NULL, len 0, off not 8-aligned), -ERANGE (outside the
 * descriptor or the destination), -EACCES (the descriptor does not grant
 * REMOTE_READ / REMOTE_ATOMIC), -EOPNOTSUPP (no atomics on this device).
 *
 * LIMITS.  A lane holds at most cfg.lane_depth operations posted and not
 * yet polled (fm_lane_depth); a post beyond returns -EAGAIN: poll first.
 * An endpoint has at most cfg.max_lanes lanes (fm_lane_new -ENOSPC).
 *   verbs: every lane reserves `depth` send-queue slots of its endpoint's
 *   QP, sized at connect for max_lanes lanes, within the device's max_qp_wr
 *   and max_cqe (fm_lane_new -ENOSPC when they ran out first).  At most
 *   the negotiated initiator depth (the device's max_qp_init_rd_atom, the
 *   peer's max_qp_rd_atom) of an endpoint's READs and atomics execute at
 *   once; the rest wait in the send queue, in order -- no error.
 *
 * CLOSE AND FENCE UNDER A LANE.  Once the endpoint leaves UP (the peer
 * closed or died, a remote access error, a timeout, fm_ep_fence,
 * fm_ep_delete):
 *   - every post fails with -ENOTCONN (no completion);
 *   - every operation posted before still completes exactly once (with
 *     its own result if it executed first, else with an error);
 *   - fm_ep_fence and fm_ep_delete do not wait for the lanes' operations,
 *     only for lane calls in progress to leave the endpoint's resources (a
 *     post, one batch of the CQ: microseconds, never the network).  Once
 *     fm_ep_fence returned a level, no operation posted on any lane of the
 *     endpoint can land (verbs: the QP is destroyed).
 *   - Delete lanes before their endpoint -- or delete the endpoint first:
 *     fm_ep_delete then tears it down at once and what its lanes still
 *     refer to is freed with the last fm_lane_delete.  (So a protocol
 *     thread may drop a broken endpoint while engine threads still hold
 *     lanes: they get -ENOTCONN, poll what is left, delete their lanes.)
 *
 * WAITING.  fm_lane_poll never blocks.  fm_lane_wait blocks for at least
 * one completion: busy mode spins on the lane, event mode (verbs) sleeps on
 * the endpoint's completion channel and the lane's own eventfd; shm
 * operations are complete when the post returns, so it never sleeps.  A
 * thread with an event loop of its own puts fm_lane_fd(lane) in it (and the
 * owning thread fm_ep_fd(ep), as before): readable when a completion may be
 * there, then fm_lane_poll.  Another thread taking the completion (or the
 * CQ event) off the shared CQ wakes the right fd: no hand-off is needed and
 * none is lost.
 *
 * COST (the hot path, per operation).
 *   shm    post: two stores to lane-private cache lines (one of them
 *          sequentially consistent: it pairs with close/fence), one
 *          acquire load of the endpoint's state, the region-table lookup
 *          (the lane caches the last index), the C11 atomic or acquire
 *          loads, one completion copied into the lane.  poll: a copy.  No
 *          syscall, no lock, no allocation.
 *   verbs  post: the same two lane stores, ibv_post_send (the provider's
 *          own send-queue spinlock; none of ours).  poll: a trylock of the
 *          endpoint's CQ mutex, ibv_poll_cq in batches of 32 routing each
 *          completion to its lane's ring (release store), then the lane's
 *          ring (acquire load).  A thread that finds the CQ being drained
 *          does not wait: the drainer routes its completions to its lane.
 *          Event mode adds syscalls only where a thread sleeps: a lane
 *          watched through fm_lane_fd reads its eventfd and the channel
 *          at each poll, a drainer writes the eventfd of a sleeper it
 *          routed to.
 */
struct fm_lane;

enum fm_lane_op {
	FM_LANE_READ = 1,
	FM_LANE_CAS = 2,
	FM_LANE_FAA = 3,
};

struct fm_completion {
	void *ctx;          /* as posted */
	int status;         /* 0 or a negative errno (contract above) */
	enum fm_lane_op op;
	uint64_t old;       /* CAS/FAA with status 0: the word before, host
			     * order (a CAS swapped iff old == expect); else 0 */
};

/*
 * fm_lane_new -- a lane on `ep` for the calling thread.  Any thread, while
 * the endpoint exists.  Does not block on the network (verbs registers the
 * lane's atomic-result buffer: a syscall).  Returns 0, -EINVAL (NULL),
 * -ENOTCONN (endpoint not UP), -ENOSPC (cfg.max_lanes lanes exist, or verbs
 * send-queue slots ran out), -ENOMEM, or the registration errno.
 */
int fm_lane_new(struct fm_ep *ep, struct fm_lane **out);

/*
 * fm_lane_delete -- the lane's thread is done with it; completions not yet
 * polled are discarded.  Waits (progressing the CQ) up to op_timeout_ms
 * for operations still in flight; past that the lane's memory is handed to
 * its endpoint and freed with it.  If fm_ep_delete came first and this is
 * the last lane, the endpoint's memory is freed here.  NULL-safe, sets
 * *lp = NULL.
 */
void fm_lane_delete(struct fm_lane **lp);

/*
 * fm_lane_post_read -- READ `len` bytes at `src_off` of the remote region
 * `src` into the local region `dst` at `dst_off`.  shm: done before the
 * post returns (aligned 8-byte words with acquire loads, as fm_ep_read);
 * verbs: RDMA READ.  Returns 0 (one completion follows) or an errno
 * (none): the local checks above, -EAGAIN (lane full), -ENOTCONN.
 * Never blocks.
 */
int fm_lane_post_read(struct fm_lane *lane, struct fm_region *dst, size_t dst_off,
		      const struct fm_region_desc *src, uint64_t src_off, size_t len, void *ctx);

/*
 * fm_lane_post_cas -- compare-and-swap the 8-byte word at `off` of `rd`:
 * if it equals `expect`, set it to `desired`; the completion's old says
 * what it was.  fm_lane_post_faa -- fetch-and-add `add` (mod 2^64).
 * Returns as fm_lane_post_read.  Never blocks.
 */
int fm_lane_post_cas(struct fm_lane *lane, const struct fm_region_desc *rd, uint64_t off,
		     uint64_t expect, uint64_t desired, void *ctx);
int fm_lane_post_faa(struct fm_lane *lane, const struct fm_region_desc *rd, uint64_t off,
		     uint64_t add, void *ctx);

/*
 * fm_lane_poll -- up to `n` completions of this lane into out[]; returns
 * how many (0..n), or -EINVAL.  Never blocks.  Also takes completions of
 * the other lanes and messages off a shared CQ when it can (verbs).  With
 * nothing in flight it returns 0 at once, except on a lane whose
 * fm_lane_fd was taken: there it also clears the fd's readiness (so a
 * loop sleeping on the fd sleeps again), at the fd's price (COST above).
 */
int fm_lane_poll(struct fm_lane *lane, struct fm_completion *out, int n);

/*
 * fm_lane_wait -- fm_lane_poll that waits up to timeout_ms (-1: forever)
 * for at least one completion.  Returns 1..n, 0 when nothing is in flight
 * (it never waits for nothing), -ETIMEDOUT, -EINVAL.
 */
int fm_lane_wait(struct fm_lane *lane, struct fm_completion *out, int n, int timeout_ms);

/*
 * fm_lane_fd -- event mode: a file descriptor (owned by the lane) that
 * turns readable when the lane may have a completion to poll, for the lane
 * thread's own poll/epoll loop; poll the lane whenever it is readable (the
 * poll re-arms it).  -1 when nothing is needed: busy mode (poll), shm (an
 * operation is complete when its post returns).  Lane's thread.
 */
int fm_lane_fd(struct fm_lane *lane);

/* fm_lane_depth -- operations the lane holds at most;
 * fm_lane_outstanding -- posted and not yet polled. */
unsigned fm_lane_depth(const struct fm_lane *lane);
unsigned fm_lane_outstanding(const struct fm_lane *lane);

/* ------------------------------------------------------------ messages */

/* flags for fm_ep_send / fm_ep_recv */
#define FM_NONBLOCK (1u << 0)

/*
 * Two-sided messages, credit flow control.
 *
 * Each side pre-posts `credits` (R) receive buffers for data plus a few
 * for credit messages.  A sender may have at most R data messages the
 * receiver has not yet consumed with fm_ep_recv: out of credits, fm_ep_send
 * blocks (or returns -EAGAIN with FM_NONBLOCK).  Every message header
 * carries the credits the receiver has freed since its last message
 * (piggy-backing).  When a receiver has freed >= R/2 buffers and has nothing
 * to send, it sends an explicit CREDIT message.  CREDIT messages have their
 * own small credit pool (returned piggy-backed), so returning credits never
 * waits for data credits: no credit deadlock, whoever sends.  Messages
 * arrive in order, exactly once, or the endpoint goes CLOSED.
 *
 * fm_ep_send -- send `len` (0..max message size) bytes, copied; returns 0 once
 * the message is handed to the provider.  -EMSGSIZE (len too big for us or
 * the peer), -EAGAIN (FM_NONBLOCK, no credit), -ETIMEDOUT (blocked longer
 * than op_timeout_ms; the endpoint stays UP), -ENOTCONN, -ECONNRESET.
 */
int fm_ep_send(struct fm_ep *ep, const void *buf, size_t len, unsigned flags);

/*
 * fm_ep_recv -- take the next message, copying it into buf.  Returns its
 * length (>= 0), -EAGAIN (FM_NONBLOCK, nothing there), -EMSGSIZE (cap too
 * small; the message stays queued and fm_ep_recv_peek tells its size),
 * -ETIMEDOUT (blocked longer than op_timeout_ms), -ENOTCONN/-ECONNRESET
 * (no more messages will come: queued messages are still delivered first).
 */
int fm_ep_recv(struct fm_ep *ep, void *buf, size_t cap, unsigned flags);

/* fm_ep_recv_peek -- size of the next queued message, or -EAGAIN; never
 * blocks, does progress the endpoint. */
int fm_ep_recv_peek(struct fm_ep *ep);

/* fm_ep_max_msg -- the largest payload fm_ep_send accepts (min of ours and
 * the peer's). */
size_t fm_ep_max_msg(const struct fm_ep *ep);

/* fm_ep_credits -- data credits the sender has right now (for tests and
 * statistics). */
unsigned fm_ep_credits(const struct fm_ep *ep);

/* ------------------------------------------------------ event mode */

/*
 * fm_ep_fd -- a file descriptor for poll/epoll.  It turns readable when the
 * endpoint has something for fm_ep_progress: a completion, an arriving
 * message, a peer that closed or died.  In FM_WAIT_EVENT mode completions
 * and messages wake it; in FM_WAIT_BUSY mode only connection events do
 * (busy pollers call fm_ep_progress in a loop).  Owned by the endpoint.
 */
int fm_ep_fd(const struct fm_ep *ep);

/*
 * fm_ep_progress -- process whatever completed or arrived, never blocks,
 * and re-arm the event fd.  Returns the number of messages ready for
 * fm_ep_recv (>= 0) or -ENOTCONN when the endpoint is CLOSED (and no
 * message is left).  Event loop rule: sleep on fm_ep_fd only after
 * fm_ep_progress returned 0 -- messages it reports as ready were already
 * taken off the wire and will not wake the fd again.
 */
int fm_ep_progress(struct fm_ep *ep);

#ifdef __cplusplus
}
#endif
#endif /* FLASHMETA_TRANSPORT_H */
