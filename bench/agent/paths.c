/* paths.c -- the agent calls the main thread times one by one: one clock
 * read before the call, one after (a sample includes one clock read: the
 * "timer" row measures it).  Any result other than the expected one stops
 * the run: a figure of the wrong path is worse than none. */
#include <errno.h>
#include <stdio.h>

#include "bench_agent.h"
#include "flashmeta/error.h"

/* fm_agent_is_split on a grain of the never-split window: the cache has
 * no negative answers, so every call READs the 64-byte window */
double path_miss(struct fm_agent *a, uint64_t i)
{
	uint64_t g = BA_MISS_BASE + i % BA_WIN, t0 = fm_now_ns();
	int rc = fm_agent_is_split(a, BA_MAP, g);
	uint64_t t1 = fm_now_ns();

	if (rc != 0)
		ba_die(rc < 0 ? rc : -EEXIST, "fm_agent_is_split(%llu) = %d", (unsigned long long)g,
		       rc);
	return (double)(t1 - t0);
}

/* variant: the same 64 bytes through fm_agent_read_bitmap (the READ and
 * its plumbing, without the cache lookup, the fill token and the decode) */
double path_read_bitmap(struct fm_agent *a)
{
	uint8_t buf[64];
	uint64_t t0 = fm_now_ns();
	int rc = fm_agent_read_bitmap(a, BA_MAP, BA_MISS_BASE / 8, buf, sizeof(buf));
	uint64_t t1 = fm_now_ns();

	if (rc)
		ba_die(rc, "fm_agent_read_bitmap");
	return (double)(t1 - t0);
}

double path_lock_unlock(struct fm_agent *a, uint64_t i, double *lock_ns, double *unlock_ns)
{
	uint64_t g = BA_LOCK_BASE + i % BA_WIN, t0, t1, t2;
	int rc, ru;

	t0 = fm_now_ns();
	rc = fm_agent_lock(a, BA_MAP, g);
	t1 = fm_now_ns();
	ru = rc == 0 ? fm_agent_unlock(a, BA_MAP, g) : 0;
	t2 = fm_now_ns();
	if (rc || ru)
		ba_die(rc < 0 ? rc : ru < 0 ? ru : -EEXIST, "lock/unlock of grain %llu: %d/%d",
		       (unsigned long long)g, rc, ru);
	*lock_ns = (double)(t1 - t0);
	*unlock_ns = (double)(t2 - t1);
	return (double)(t2 - t0);
}

double path_lock_commit(struct fm_agent *a, uint64_t g, double *lock_ns, double *commit_ns)
{
	uint64_t t0, t1, t2;
	int rc, rs;

	t0 = fm_now_ns();
	rc = fm_agent_lock(a, BA_MAP, g);
	t1 = fm_now_ns();
	rs = rc == 0 ? fm_agent_commit_split(a, BA_MAP, g) : 0;
	t2 = fm_now_ns();
	if (rc || rs)
		ba_die(rc < 0 ? rc : rs < 0 ? rs : -EEXIST, "lock/commit of grain %llu: %d/%d",
		       (unsigned long long)g, rc, rs);
	*lock_ns = (double)(t1 - t0);
	*commit_ns = (double)(t2 - t1);
	return (double)(t2 - t0);
}
