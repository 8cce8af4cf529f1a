/* scenario.h -- the kit test_transport's scenarios share (test_transport.c
 * defines it; lane_scenarios.c uses it): the run's configuration, the
 * checks children report with, and the connection helpers.
 *
 * A scenario is a pair (owner, client) of functions run in separate
 * processes; each returns 0 or -1 after printing why (never cmocka: the
 * clients are forked children).
 */
#ifndef FM_TEST_SCENARIO_H
#define FM_TEST_SCENARIO_H

#include <stdint.h>
#include <stdio.h>

#include "flashmeta/error.h"
#include "flashmeta/transport.h"

struct tt_cfg {
	const char *provider;
	char addr[128];
	const char *role;
	int clients; /* owner: how many clients "all" means */
	int index;   /* client: first index of this process group */
	int procs;   /* client: processes here */
	int iters;
	const char *only;
};
extern struct tt_cfg cfg;
/* "owner", "client 2", "client 2 lane 1": prefixes every complaint; per
 * thread (lane scenarios run threads) */
extern _Thread_local const char *whoami;

#define FAIL(...)                                                                        \
	do {                                                                             \
		fprintf(stderr, "[%s] %s:%d: ", whoami, __func__, __LINE__);             \
		fprintf(stderr, __VA_ARGS__);                                            \
		fprintf(stderr, " (errormsg: %s)\n", fm_errormsg());                     \
		return -1;                                                               \
	} while (0)
#define CHECK(cond, ...)                                                                 \
	do {                                                                             \
		if (!(cond)) {                                                           \
			fprintf(stderr, "[%s] %s:%d: check `%s` failed:", whoami, __func__, \
				__LINE__, #cond);                                        \
			fprintf(stderr, " " __VA_ARGS__);                                \
			fprintf(stderr, " (errormsg: %s)\n", fm_errormsg());             \
			return -1;                                                       \
		}                                                                        \
	} while (0)
#define CHECK_RET(expr, want)                                                            \
	do {                                                                             \
		long long r_ = (long long)(expr);                                        \
		if (r_ != (long long)(want))                                             \
			FAIL("`%s` returned %lld, want %lld", #expr, r_, (long long)(want)); \
	} while (0)

struct ctx {
	int scn;       /* scenario number: address suffix */
	int nclients;  /* clients taking part */
	int index;     /* client index */
	char addr[160];
};

int transport_open(struct fm_transport **t, enum fm_wait_mode mode, uint32_t msg_size);
/* client: connect, retrying while the owner is not there yet */
int connect_retry(struct fm_transport *t, struct ctx *c, const char *hello, struct fm_ep **ep);
/* owner: accept the scenario's clients */
int accept_all(struct fm_listener *l, int n, struct fm_ep **eps);
/* both: wait until the peer closed */
int wait_closed(struct fm_ep *ep);
/* owner -> client: fm_ep_grant, then n descriptors in one message */
int send_descs(struct fm_ep *ep, const struct fm_region_desc *d, int n);
int recv_descs(struct fm_ep *ep, struct fm_region_desc *d, int n);
/* the byte at offset i of the owner's READ regions */
uint8_t pattern(uint64_t i);

/* lane_scenarios.c */
int lane_inflight_owner(struct ctx *c);
int lane_inflight_client(struct ctx *c);
int lane_threads_owner(struct ctx *c);
int lane_threads_client(struct ctx *c);
int lane_peer_close_owner(struct ctx *c);
int lane_peer_close_client(struct ctx *c);
int lane_local_close_owner(struct ctx *c);
int lane_local_close_client(struct ctx *c);
int lane_fence_owner(struct ctx *c);
int lane_fence_client(struct ctx *c);
int lane_event_owner(struct ctx *c);
int lane_event_client(struct ctx *c);

#endif /* FM_TEST_SCENARIO_H */
