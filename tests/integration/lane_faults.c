/* lane_faults.c -- see lane_faults.h.
 *
 * The held completions: one list, in arrival order, of every lane's
 * completions not yet handed to the agent.  A poll of lane L first takes
 * what the transport has (each entry gets its delay: late 1..3, else 0;
 * the lost READ is gated instead), then hands out L's due entries in
 * order, stopping at the first that is not due (a gated one does not
 * block the others); a poll that hands out nothing ages L's entries by
 * one.  A deleted lane's entries go with it: their ops are gone (ops.c
 * failed them), and the lane's memory may come back as another lane.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "flashmeta/lockword.h"
#include "flashmeta/region.h"
#include "flashmeta/transport.h"
#include "lane_faults.h"

enum { LF_LATE = 1, LF_LOST = 2 };

/* the lost CAS, in order */
enum { LS_IDLE = 0, LS_ARMED, LS_POSTED, LS_JUMPING, LS_DONE };

struct held {
	struct held *next;
	struct fm_lane *lane;
	struct fm_completion c;
	unsigned wait;          /* empty polls of its lane still to wait */
	bool gate;              /* the lost READ: until the jump was read */
};

static atomic_int mode;
static atomic_int lost_state;
static atomic_bool jump_seen;
static atomic_uint_fast64_t hold_since; /* lost: the other threads wait (0: no) */
static atomic_uint_fast64_t seed0, nposts, nticks, nlate, npoisoned;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
/* under lock: */
static struct held *head, **tail = &head;
static struct fm_lane *x_lane, *y_lane;
static void *x_ctx, *y_ctx;
static struct lf_stats lost; /* the lost fields of lf_stats */
static bool hold_read;

static __thread bool tl_armed;  /* the lost fault's thread */
static __thread uint64_t tl_x;  /* late: this thread's delays */

uint64_t __real_ag_now_ms(void);
uint64_t __wrap_ag_now_ms(void);
int __real_fm_lane_post_read(struct fm_lane *lane, struct fm_region *dst, size_t dst_off,
			     const struct fm_region_desc *src, uint64_t src_off, size_t len,
			     void *ctx);
int __wrap_fm_lane_post_read(struct fm_lane *lane, struct fm_region *dst, size_t dst_off,
			     const struct fm_region_desc *src, uint64_t src_off, size_t len,
			     void *ctx);
int __real_fm_lane_post_cas(struct fm_lane *lane, const struct fm_region_desc *rd,
			    uint64_t off, uint64_t expect, uint64_t desired, void *ctx);
int __wrap_fm_lane_post_cas(struct fm_lane *lane, const struct fm_region_desc *rd,
			    uint64_t off, uint64_t expect, uint64_t desired, void *ctx);
int __real_fm_lane_poll(struct fm_lane *lane, struct fm_completion *out, int n);
int __wrap_fm_lane_poll(struct fm_lane *lane, struct fm_completion *out, int n);
void __real_fm_lane_delete(struct fm_lane **lp);
void __wrap_fm_lane_delete(struct fm_lane **lp);
int __real_fm_region_new(struct fm_transport *t, size_t len, unsigned access,
			 struct fm_region **out);
int __wrap_fm_region_new(struct fm_transport *t, size_t len, unsigned access,
			 struct fm_region **out);

void lf_late_start(uint64_t seed)
{
	atomic_store(&seed0, seed | 1);
	atomic_fetch_or(&mode, LF_LATE);
}

void lf_lost_arm(bool hold)
{
	pthread_mutex_lock(&lock);
	hold_read = hold;
	tl_armed = true;
	atomic_store(&lost_state, LS_ARMED);
	atomic_fetch_or(&mode, LF_LOST);
	pthread_mutex_unlock(&lock);
}

void lf_stats(struct lf_stats *st)
{
	pthread_mutex_lock(&lock);
	*st = lost;
	pthread_mutex_unlock(&lock);
	st->posts = atomic_load(&nposts);
	st->ticks = atomic_load(&nticks);
	st->late = atomic_load(&nlate);
	st->poisoned = atomic_load(&npoisoned);
	st->jumped = atomic_load(&jump_seen);
}

/* ---------------------------------------------------------------- clock */

/* lost: from the dropped completion until the armed thread's first poll
 * after the abandon (at most LF_HOLD_MS), every other thread of the
 * process stands still at its next clock read -- a busy host on which
 * the abandoning thread runs on.  So the protocol thread, woken by the
 * abandon, cannot withdraw the endpoint before that pass looked at the
 * ops the abandon left: what the pass does is what the agent does, not
 * who won a race. */
#define LF_HOLD_MS 2000u

static void hold(void)
{
	struct timespec ts = { 0, 100 * 1000 };
	uint64_t since;

	while ((since = atomic_load(&hold_since))) {
		if (__real_ag_now_ms() > since + LF_HOLD_MS) {
			atomic_store(&hold_since, 0); /* never abandoned: go on */
			break;
		}
		nanosleep(&ts, NULL);
	}
}

uint64_t __wrap_ag_now_ms(void)
{
	uint64_t t = __real_ag_now_ms();

	if (!tl_armed) {
		if (atomic_load(&hold_since)) {
			hold();
			t = __real_ag_now_ms();
		}
		return t;
	}
	if (atomic_load(&lost_state) == LS_JUMPING) {
		atomic_store(&jump_seen, true);
		return t + LF_JUMP_MS;
	}
	return t;
}

/* late: the post returns once the clock moved on from t0 (read before
 * it), so the op's posted_ms is past the `now` of the pass that posted */
static void tick(uint64_t t0)
{
	struct timespec ts = { 0, 50 * 1000 };

	while (__real_ag_now_ms() <= t0)
		nanosleep(&ts, NULL);
	atomic_fetch_add(&nticks, 1);
}

/* ---------------------------------------------------------------- posts */

int __wrap_fm_lane_post_read(struct fm_lane *lane, struct fm_region *dst, size_t dst_off,
			     const struct fm_region_desc *src, uint64_t src_off, size_t len,
			     void *ctx)
{
	int m = atomic_load(&mode), rc;
	uint64_t t0;

	if (!m)
		return __real_fm_lane_post_read(lane, dst, dst_off, src, src_off, len, ctx);
	t0 = __real_ag_now_ms();
	rc = __real_fm_lane_post_read(lane, dst, dst_off, src, src_off, len, ctx);
	if (rc)
		return rc;
	atomic_fetch_add(&nposts, 1);
	if (tl_armed) {
		pthread_mutex_lock(&lock);
		if (hold_read && !y_ctx && atomic_load(&lost_state) == LS_ARMED) {
			y_lane = lane;
			y_ctx = ctx;
		}
		pthread_mutex_unlock(&lock);
	}
	if (m & LF_LATE)
		tick(t0);
	return 0;
}

int __wrap_fm_lane_post_cas(struct fm_lane *lane, const struct fm_region_desc *rd,
			    uint64_t off, uint64_t expect, uint64_t desired, void *ctx)
{
	int m = atomic_load(&mode), rc;
	uint64_t t0;

	if (!m)
		return __real_fm_lane_post_cas(lane, rd, off, expect, desired, ctx);
	t0 = __real_ag_now_ms();
	rc = __real_fm_lane_post_cas(lane, rd, off, expect, desired, ctx);
	if (rc)
		return rc;
	atomic_fetch_add(&nposts, 1);
	if (tl_armed && expect == FM_LOCKWORD_FREE) {
		pthread_mutex_lock(&lock);
		if (atomic_load(&lost_state) == LS_ARMED) {
			x_lane = lane;
			x_ctx = ctx;
			lost.lost_posted = true;
			lost.lost_off = off;
			atomic_store(&lost_state, LS_POSTED);
		}
		pthread_mutex_unlock(&lock);
	}
	if (m & LF_LATE)
		tick(t0);
	return 0;
}

/* ----------------------------------------------------------------- poll */

/* lock held: one completion the transport delivered on lane */
static void __take(struct fm_lane *lane, const struct fm_completion *c, int m)
{
	struct held *h;

	if (atomic_load(&lost_state) == LS_POSTED && lane == x_lane && c->ctx == x_ctx &&
	    c->op == FM_LANE_CAS) {
		/* never comes: the op waits until its lane is abandoned */
		lost.lost_dropped = true;
		lost.lost_old = c->old;
		atomic_store(&hold_since, __real_ag_now_ms() | 1);
		atomic_store(&lost_state, LS_JUMPING);
		return;
	}
	h = calloc(1, sizeof(*h));
	if (!h)
		abort(); /* a test helper out of memory: nothing to test */
	h->lane = lane;
	h->c = *c;
	if (m & LF_LATE) {
		if (!tl_x)
			tl_x = atomic_fetch_add(&seed0, 0x9e3779b97f4a7c15ull) | 1;
		tl_x ^= tl_x << 13;
		tl_x ^= tl_x >> 7;
		tl_x ^= tl_x << 17;
		h->wait = 1 + (unsigned)(tl_x % 3);
	}
	if (lane == y_lane && c->ctx == y_ctx && c->op == FM_LANE_READ && !lost.read_held) {
		h->gate = true;
		lost.read_held = true;
	}
	*tail = h;
	tail = &h->next;
}

/* lock held: unlink *pp (the entry it points at) */
static struct held *__unlink(struct held **pp)
{
	struct held *h = *pp;

	*pp = h->next;
	if (tail == &h->next)
		tail = pp;
	return h;
}

int __wrap_fm_lane_poll(struct fm_lane *lane, struct fm_completion *out, int n)
{
	struct fm_completion c[32];
	int m = atomic_load(&mode), k = 0, got;
	bool open;

	if (!m || n < 0 || (n && !out)) /* (a fault, once on, stays on) */
		return __real_fm_lane_poll(lane, out, n); /* its -EINVAL */
	pthread_mutex_lock(&lock);
	while ((got = __real_fm_lane_poll(lane, c, 32)) > 0)
		for (int i = 0; i < got; i++)
			__take(lane, &c[i], m);
	/* the gate opens at the first poll after the thread read the jump */
	open = atomic_load(&jump_seen) || atomic_load(&lost_state) == LS_DONE;
	for (struct held **pp = &head; *pp && k < n;) {
		struct held *h = *pp;

		if (h->lane != lane || (h->gate && !open)) {
			pp = &h->next;
			continue;
		}
		if (h->wait)
			break; /* in order: the rest of the lane waits behind it */
		out[k++] = h->c;
		if (h->gate)
			lost.read_released = atomic_load(&jump_seen);
		else if (m & LF_LATE)
			atomic_fetch_add(&nlate, 1);
		free(__unlink(pp));
	}
	if (k == 0)
		for (struct held *h = head; h; h = h->next)
			if (h->lane == lane && h->wait)
				h->wait--;
	/* the pass that abandoned the lane is through its ops: the others
	 * may go on (hold) */
	if (tl_armed && atomic_load(&lost_state) == LS_DONE)
		atomic_store(&hold_since, 0);
	pthread_mutex_unlock(&lock);
	return k;
}

void __wrap_fm_lane_delete(struct fm_lane **lp)
{
	struct fm_lane *lane = lp ? *lp : NULL;

	if (lane && atomic_load(&mode)) {
		pthread_mutex_lock(&lock);
		for (struct held **pp = &head; *pp;) {
			if ((*pp)->lane == lane)
				free(__unlink(pp));
			else
				pp = &(*pp)->next;
		}
		if (lane == x_lane) {
			/* the abandon: the jump ends with the lane it was for */
			lost.abandoned = atomic_load(&lost_state) == LS_JUMPING;
			lost.abandoned_ms = __real_ag_now_ms();
			atomic_store(&lost_state, LS_DONE);
			x_lane = NULL;
		}
		if (lane == y_lane)
			y_lane = NULL;
		pthread_mutex_unlock(&lock);
	}
	__real_fm_lane_delete(lp);
}

/* -------------------------------------------------------------- regions */

int __wrap_fm_region_new(struct fm_transport *t, size_t len, unsigned access,
			 struct fm_region **out)
{
	int rc = __real_fm_region_new(t, len, access, out);

	if (rc == 0 && atomic_load(&mode) && access == FM_ACCESS_LOCAL) {
		memset(fm_region_ptr(*out), 0xff, len);
		atomic_fetch_add(&npoisoned, 1);
	}
	return rc;
}
