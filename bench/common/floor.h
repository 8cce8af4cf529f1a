/* floor.h -- the transport floor: the one-sided operations the agent
 * issues (a 64-byte bitmap READ, lock-word CAS), posted raw on transport
 * lanes against a tiny server of our own, and a message round trip.
 *
 * The server is a process forked before any transport exists (verbs
 * cannot work in a child forked after its parent's first RDMA call).  It
 * serves two regions the way the owner serves a mapping: a REMOTE_READ
 * region (the owner's split bitmap: the READ arena on shm) and a
 * REMOTE_ATOMIC one (its lock table: the ATOMIC arena), accepts `nconn`
 * connections, grants each, sends both descriptors, and echoes every
 * message of every connection (one thread each, asleep in event mode)
 * until the client closes.
 *
 * The client side uses the agent's own transport settings (rdma/agent/
 * agent.c: event waits unless told otherwise, lane depth 4, op timeout
 * 3000 ms) and waits the way the agent does: post, then fm_lane_wait.  On
 * shm an operation completes at post: the wait mode changes nothing.
 *
 *   fm_floor            one connection (transport, endpoint, descriptors);
 *                       fm_floor_msg_rtt on the endpoint's owning thread
 *   fm_floor_lane       one thread's lane, its READ destination and its
 *                       own CAS word (word `index` of the ATOMIC region:
 *                       lanes never contend unless given the same index)
 *
 * Every call returns 0 or a negative errno (detail in fm_errormsg()); the
 * timed ones give one operation's wall time in ns (one clock read before,
 * one after).
 */
#ifndef FM_BENCH_FLOOR_H
#define FM_BENCH_FLOOR_H

#include <stdint.h>
#include <sys/types.h>

#include "flashmeta/transport.h"

#define FM_FLOOR_WORDS 8192u /* CAS words of the ATOMIC region */

struct fm_floor_cfg {
	const char *provider;   /* "shm" | "verbs" */
	const char *device;     /* verbs device or NULL */
	const char *addr;       /* the floor server's: "IP:PORT" or "shm:/NAME" */
	enum fm_wait_mode wait; /* client side: FM_WAIT_EVENT as the agent */
	unsigned lanes;         /* client side: lanes to open (<= 256) */
};

/* fork the server; it listens on cfg->addr and serves `nconn`
 * connections.  *pid gets its pid.  0, -errno of fork/pipe, -EIO (it did
 * not start: its error is on stderr). */
int fm_floor_server_start(const struct fm_floor_cfg *cfg, unsigned nconn, pid_t *pid);
/* SIGKILL and reap; NULL-safe on *pid <= 0, sets *pid = 0 */
void fm_floor_server_stop(pid_t *pid);

struct fm_floor {
	struct fm_transport *t;
	struct fm_ep *ep;
	struct fm_region_desc rd, at; /* READ region, ATOMIC region */
};

struct fm_floor_lane {
	struct fm_lane *lane;
	struct fm_region *dst;
	struct fm_region_desc rd, at;
	uint64_t word_off;      /* byte offset of this lane's CAS word */
	uint64_t word;          /* its current value */
};

int fm_floor_open(struct fm_floor *f, const struct fm_floor_cfg *cfg);
void fm_floor_close(struct fm_floor *f);
/* a lane for the calling thread (any thread while f is open) */
int fm_floor_lane_open(struct fm_floor *f, unsigned index, struct fm_floor_lane *l);
void fm_floor_lane_close(struct fm_floor_lane *l);

/* one READ of 64 bytes (the agent's bitmap window) */
int fm_floor_read64(struct fm_floor_lane *l, double *ns);
/* one CAS (every CAS swaps, as a lock and its release do) */
int fm_floor_cas(struct fm_floor_lane *l, double *ns);
/* two CAS, one after the other (a lock and its release) */
int fm_floor_cas2(struct fm_floor_lane *l, double *ns);
/* CAS and READ posted together, one round trip (the agent's lock: the CAS
 * and the check READ of the grain's bitmap word) */
int fm_floor_casread(struct fm_floor_lane *l, double *ns);
/* ... then the release CAS (a lock + unlock, raw) */
int fm_floor_casread_cas(struct fm_floor_lane *l, double *ns);
/* a 64-byte message and its echo (SPLIT_COMMIT and its ack, without the
 * owner's work), blocking fm_ep_send / fm_ep_recv; the endpoint's owning
 * thread only */
int fm_floor_msg_rtt(struct fm_floor *f, double *ns);

#endif /* FM_BENCH_FLOOR_H */
