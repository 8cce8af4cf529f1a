/* actq.h -- the FIFO of actions a protocol state machine owes its driver
 * (private to core/src: drivers see only fm_owner_poll / fm_client_poll).
 *
 * Infallible by construction: fm_actq_push never returns NULL, so no call
 * site can drop an action (and with it the one op_done or NOTE the
 * contract promises).  When the queue cannot grow, the failure is LATCHED:
 * the push lands in a scratch slot that is thrown away, every later push
 * too, and fm_actq_pop returns the latched -ENOMEM from then on.  The
 * state machine is then dead: its driver must tear it down (the owner
 * exits and its successor's restart grace covers the gap; a client closes
 * its session).  Memory use is bounded elsewhere (per-session limits), so
 * this is a last resort, not a flow-control path.
 *
 * Owned by one protocol thread: no lock.
 */
#ifndef FM_PROTO_ACTQ_H
#define FM_PROTO_ACTQ_H

#include <stddef.h>

#include "flashmeta/proto.h"

struct fm_actq {
	struct fm_action *a;
	size_t head, count, cap;
	int err;                 /* latched failure (-ENOMEM) or 0 */
	struct fm_action scratch; /* where pushes go once err is set */
};

/* A zeroed action at the tail (header and io part cleared).  Never NULL. */
struct fm_action *fm_actq_push(struct fm_actq *q);
/* Undo the last push (its encoding failed).  Only right after a push. */
void fm_actq_unpush(struct fm_actq *q);
/* 1 (out filled), 0 (empty) or the latched negative errno. */
int fm_actq_pop(struct fm_actq *q, struct fm_action *out);
void fm_actq_fini(struct fm_actq *q);

#endif /* FM_PROTO_ACTQ_H */
