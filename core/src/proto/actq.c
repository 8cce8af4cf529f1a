/* actq.c -- the protocol state machines' action FIFO (actq.h). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "actq.h"

struct fm_action *fm_actq_push(struct fm_actq *q)
{
	struct fm_action *slot;

	if (q->err)
		goto scratch;
	if (q->count == q->cap) {
		size_t ncap = q->cap ? q->cap * 2 : 16;
		struct fm_action *na = malloc(ncap * sizeof(*na));

		if (!na) {
			q->err = -ENOMEM;
			goto scratch;
		}
		for (size_t i = 0; i < q->count; i++)
			na[i] = q->a[(q->head + i) % q->cap];
		free(q->a);
		q->a = na;
		q->cap = ncap;
		q->head = 0;
	}
	slot = &q->a[(q->head + q->count) % q->cap];
	q->count++;
	memset(slot, 0, offsetof(struct fm_action, u) + sizeof(slot->u.io));
	return slot;
scratch:
	memset(&q->scratch, 0, offsetof(struct fm_action, u) + sizeof(q->scratch.u.io));
	return &q->scratch;
}

void fm_actq_unpush(struct fm_actq *q)
{
	if (!q->err && q->count)
		q->count--;
}

int fm_actq_pop(struct fm_actq *q, struct fm_action *out)
{
	struct fm_action *a;

	if (q->err)
		return q->err;
	if (!q->count)
		return 0;
	a = &q->a[q->head];
	if (a->type == FM_ACT_SEND) {
		/* copy only the bytes in use, not 4 KiB every time */
		memcpy(out, a, offsetof(struct fm_action, u.msg.buf));
		memcpy(out->u.msg.buf, a->u.msg.buf, a->u.msg.len);
	} else {
		*out = *a;
	}
	q->head = (q->head + 1) % q->cap;
	q->count--;
	return 1;
}

void fm_actq_fini(struct fm_actq *q)
{
	free(q->a);
	memset(q, 0, sizeof(*q));
}
