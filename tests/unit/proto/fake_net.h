/* fake_net.h -- an in-process, deterministic fake transport + store that
 * drives one fm_owner and N fm_clients (each with a real fm_cache).
 *
 * Time is simulated (ms).  Messages travel per connection in FIFO order
 * (an RC queue pair is ordered) with a random delay, so traffic between
 * different peers and one-sided operations interleave freely; a "drop"
 * breaks the connection (on RC a lost message is a broken QP).  One-sided
 * READ/CAS execute against the fake owner memory after `op_exec` ms and
 * report after a further `op_done` ms; after a FENCE nothing of the fenced
 * connection executes any more.  A FENCE with kill (and kill_works, the
 * shm model) kills the client "process": its state machine stops for good
 * (dead) and the fence reports FM_FENCE_DEAD; otherwise (the verbs model)
 * it only cuts the link and reports FM_FENCE_RDMA.  A frozen client
 * (`crashed`, e.g. SIGSTOP) receives and emits nothing until thawed.
 * PERSIST sets bits in the durable bitmap (which is also the READ-able
 * one: visible only once durable) and can be held back by a test; so can
 * CHANGED (a store's changed set and its changed-unknown mark).  The
 * owner can be restarted (new incarnation, fresh lock tables, restart
 * grace); clients can be restarted (a new process, same id).  Everything
 * derives from one seed.
 */
#ifndef FAKE_NET_H
#define FAKE_NET_H

#include <stdbool.h>
#include <stdint.h>

#include "flashmeta/cache.h"
#include "flashmeta/proto_client.h"
#include "flashmeta/proto_owner.h"

#define SIM_MAX_CLIENTS 8
#define SIM_MAPS 2
#define SIM_GRAINS 256
#define SIM_MAX_EVENTS 4096
#define SIM_NOTES 4096

struct sim_note {
	int client; /* -1 = owner */
	uint64_t at;
	struct fm_notify n;
};

struct sim_client {
	struct fm_client *cl;
	struct fm_cache *cache;
	uint32_t link;      /* connection generation */
	bool connected;     /* link up */
	bool fenced;        /* current link fenced by the owner */
	bool crashed;       /* SM frozen: receives nothing, emits nothing */
	bool dead;          /* killed by a fence: frozen for good */
	uint32_t proc_link_min; /* links below this belonged to an older process */
	uint32_t extra_delay; /* ms added to its messages (a slow peer) */
};

struct sim_store {
	struct fm_wire_mapdesc d;
	uint8_t bitmap[SIM_GRAINS / 8]; /* durable == READ-able */
	uint64_t locks[SIM_GRAINS];     /* changed only by CAS events */
	bool revoked;                   /* REVOKED seen, update pending */
	uint8_t changed[SIM_GRAINS / 8]; /* the changed set, durable */
	bool unknown;                   /* changed-unknown, durable */
};

struct sim_event;

struct sim {
	uint64_t now;
	uint64_t rng;
	struct fm_owner *owner;
	struct sim_client c[SIM_MAX_CLIENTS];
	int nclients;
	struct sim_store store[SIM_MAPS];
	struct sim_event *ev;
	int nev;
	uint64_t evseq;
	/* knobs */
	uint32_t delay_min, delay_max; /* message delay */
	uint32_t op_exec, op_done;     /* one-sided op timing */
	uint32_t drop_permille;        /* per message: break the link */
	/* per client READ/CAS: this many in 1000 report a random 0..slow_max
	 * ms late (the answer is in flight across whole protocol exchanges) */
	uint32_t op_slow_permille, op_slow_max;
	bool hold_persist;             /* PERSIST waits for sim_release_persists */
	bool hold_changed;             /* CHANGED waits for sim_release_changed */
	int fence_failures;  /* the next N FENCEs report -ETIMEDOUT (not fenced) */
	int read_failures;   /* the next N owner-local READs fail with -EIO */
	bool kill_works;     /* FENCE{kill} kills (shm); false: RDMA only (verbs) */
	uint64_t incarnation;
	uint32_t term_ms;
	uint64_t kills;      /* clients killed by fences */
	bool auto_update;              /* on REVOKED: bump generation, clear, update */
	/* record */
	struct sim_note notes[SIM_NOTES];
	int nnotes;
	uint64_t sends[FM_MSG_TYPE_END]; /* messages sent, by type */
	uint64_t persists_done;
	uint64_t changed_done;         /* CHANGED actions done (reports + marks) */
	void (*on_note)(struct sim *s, int client, const struct fm_notify *n);
	void (*on_kill)(struct sim *s, int client); /* a fence killed it */
	void *user;
};

/* Owner lease term / grace in ms, client keys "key-<id>". */
void sim_init(struct sim *s, uint64_t seed, int nclients, uint32_t term_ms);
void sim_fini(struct sim *s);
/* Connect client i (new link) and send HELLO. */
void sim_connect(struct sim *s, int i);
/* Use a wrong key for client i (before sim_connect). */
void sim_wrong_key(struct sim *s, int i);
/* Break client i's link (both sides learn it). */
void sim_break(struct sim *s, int i);
/* Client i's process dies (SIGKILL, crash): its link breaks; a fence of
 * any of its connections then reports FM_FENCE_DEAD. */
void sim_kill(struct sim *s, int i);
/* Client i's process is replaced by a new one (same id, fresh state
 * machine and cache, not connected). */
void sim_restart_client(struct sim *s, int i);
/* The owner dies and a new incarnation starts: every link breaks, owner
 * operations in flight are lost (unacked persists are not durable), lock
 * tables start from zero, maps are served again from the durable store,
 * with a restart grace of grace_ms (0: none). */
void sim_restart_owner(struct sim *s, uint32_t grace_ms);
/* Run until `until` (absolute ms), ticking every 5 ms. */
void sim_run(struct sim *s, uint64_t until);
/* Process actions of everyone until nothing is left. */
void sim_drain(struct sim *s);
/* Deliver held PERSISTs now. */
void sim_release_persists(struct sim *s);
void sim_release_changed(struct sim *s);
/* Inject raw bytes from client i's connection to the owner. */
void sim_inject(struct sim *s, int i, const void *buf, size_t len);

bool sim_bit(const struct sim *s, int map, uint64_t grain);
uint64_t sim_rand(struct sim *s);
/* Number of notes of `type` for client (or -1 owner) since index `from`. */
int sim_count(const struct sim *s, int client, enum fm_notify_type type, int from);
const struct sim_note *sim_find(const struct sim *s, int client,
				enum fm_notify_type type, int from);

#endif
