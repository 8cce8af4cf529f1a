/* run.h -- the parent's view of one fm-pit run: the owner process, the
 * client processes and their incarnations, the triggers it issued, the
 * faults it injected.  Only the parent touches a struct pit_run (one
 * thread); it never creates a transport (clients are forked throughout
 * the run, and the fork note of transport.h forbids that after one).
 */
#ifndef FM_TESTS_PIT_RUN_H
#define FM_TESTS_PIT_RUN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "pit.h"

/* one client process lifetime: its log is log.c<idx>.i<inc> */
struct pit_inc {
	unsigned idx;
	uint32_t inc;
	uint64_t start_ns;
	uint64_t end_ns;       /* reaped; UINT64_MAX while running */
	int status;            /* wait status once reaped */
};

/* a trigger the parent saw answered: generation `gen` of map `map`
 * began before t_done_ns */
struct pit_trigger {
	unsigned map;
	uint64_t gen;
	uint64_t t_sent_ns, t_done_ns;
};

struct pit_child {
	pid_t pid;             /* 0: not running */
	unsigned idx;
	uint32_t inc;          /* current incarnation (1..) */
	enum pit_client_kind kind;
	int cmd_fd, reply_fd;  /* scripted: parent's ends, else -1 */
	size_t inc_slot;       /* its struct pit_inc */
	bool expect_kill;      /* we sent SIGKILL */
	bool stopped;          /* we sent SIGSTOP: the owner may fence (kill) it */
};

/* fault counters beyond the per-kind totals */
struct pit_fault_stats {
	unsigned n[PIT_F_KINDS];
	unsigned client_kill_in_copy, client_kill_in_slow;
	unsigned owner_kill_in_commit, owner_kill_in_copy, owner_kill_in_slow;
	unsigned stop_in_copy, stop_fenced, stop_survived;
	unsigned retrigger_failed;
};

struct pit_run {
	struct pit_env env;
	const struct pit_cfg *cfg;
	char ctl[300], pool[300], keyfile[300], owner_log[300], fence[300];
	pid_t owner;
	unsigned owner_starts;
	unsigned owner_deaths;       /* not sent by us */
	unsigned client_deaths;      /* not sent by us (nor a fence after our stop) */
	unsigned client_hangs;       /* did not stop when told */
	struct pit_child kids[PIT_MAX_CLIENTS + 1];
	unsigned nkids;
	struct pit_inc *incs;
	size_t nincs, capincs;
	struct pit_trigger *trig;
	size_t ntrig, captrig;
	struct pit_fault_stats fs;
	uint64_t rng;                /* the fault schedule */
};

/* proc.c */
int pit_run_init(struct pit_run *r, const struct pit_cfg *cfg);
void pit_run_fini(struct pit_run *r);   /* kill what is left, remove the dir */
void pit_say(const struct pit_run *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int pit_owner_start(struct pit_run *r);
void pit_owner_kill(struct pit_run *r, int sig);
int pit_ctl(struct pit_run *r, char *out, size_t cap, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
int pit_maps_setup(struct pit_run *r);  /* create volumes + map-create/prepare */
int pit_trigger(struct pit_run *r, unsigned map, const char *cmd); /* map-start/restart */
int pit_child_start(struct pit_run *r, unsigned idx, enum pit_client_kind kind);
/* reap what exited (non-blocking); counts deaths that were not ours */
void pit_reap(struct pit_run *r);
/* wait for child idx to exit, up to timeout_ms (then SIGKILL); its status */
int pit_child_wait(struct pit_run *r, unsigned idx, int timeout_ms);
void pit_child_kill(struct pit_run *r, unsigned idx);
uint64_t pit_ios_done(const struct pit_run *r);
bool pit_wait_ready(struct pit_run *r, unsigned idx, int timeout_ms);
/* sleep ms, reaping (and restarting) clients that die meanwhile */
void pit_idle(struct pit_run *r, uint32_t ms);

/* faults.c */
const char *pit_fault_name(enum pit_fault_kind k);
/* run one fault of the schedule (drawn from r->rng) */
void pit_fault_next(struct pit_run *r);

/* scenario.c */
int pit_scenario_run(struct pit_run *r);

#endif /* FM_TESTS_PIT_RUN_H */
