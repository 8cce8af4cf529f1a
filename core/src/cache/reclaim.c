/* reclaim.c -- freeing what the writer unlinked (nodes, directories,
 * mapping tables, mapping structs) once no lookup can still be reading it.
 *
 * Writer only: the protocol thread retires and reclaims; a reader only
 * counts itself in and out of its slot (reader.c).
 *
 * Reclamation is epoch based with two phase counters (like SRCU): a lookup
 * increments in[gp & 1] of its thread's slot (seq_cst RMW on a line the
 * thread owns), reads, then increments out[same] (release; a plain store
 * when the slot is its own).  The writer retires objects tagged with gp; it
 * may move gp from g to g+1 once every slot's in[(g+1) & 1] equals its
 * out[(g+1) & 1], and frees an object retired at G once gp >=
 * G + 2 (two flips cover a reader that read gp long ago).  The writer never
 * waits for readers, except on -ENOMEM of its retire list.  Ordering: the
 * writer's unlink (release store) is followed by a seq_cst fence before it
 * loads the counters; the reader's seq_cst RMW precedes its seq_cst loads of
 * table/dir/word; so either the writer sees the reader's count or the
 * reader sees the unlinked state.
 */
#include <sched.h>
#include <stdlib.h>
#include <string.h>

#include "cache_priv.h"

/* Writer: move gp on if the phase it would reuse has no reader. */
static bool gp_try_advance(struct fm_cache *c)
{
	uint64_t g = atomic_load_explicit(&c->gp, memory_order_relaxed);
	unsigned reuse = (unsigned)((g + 1) & 1);

	/* Orders the writer's unlinking stores before the counter loads. */
	atomic_thread_fence(memory_order_seq_cst);
	for (unsigned i = 0; i < FM_CACHE_ALL_SLOTS; i++) {
		/* out first: a lookup entering in between makes in != out,
		 * which only errs on the side of waiting */
		uint64_t out = atomic_load_explicit(&c->slots[i].out[reuse],
						    memory_order_acquire);

		if (atomic_load_explicit(&c->slots[i].in[reuse], memory_order_acquire) != out)
			return false;
	}
	atomic_store_explicit(&c->gp, g + 1, memory_order_seq_cst);
	return true;
}

/* Writer: free what no reader can see any more.  Never blocks. */
void ch_reclaim(struct fm_cache *c)
{
	if (c->ret_n == 0)
		return;
	for (int i = 0; i < 2; i++) {
		uint64_t g = atomic_load_explicit(&c->gp, memory_order_relaxed);

		if (c->ret[c->ret_head].gp + 2 <= g)
			break;
		if (!gp_try_advance(c))
			break;
	}
	uint64_t g = atomic_load_explicit(&c->gp, memory_order_relaxed);

	while (c->ret_n && c->ret[c->ret_head].gp + 2 <= g) {
		free(c->ret[c->ret_head].p);
		c->ret_head++;
		c->ret_n--;
	}
	if (c->ret_n == 0)
		c->ret_head = 0;
}

/* Writer: wait for a grace period (only on -ENOMEM of the retire list). */
static void synchronize(struct fm_cache *c)
{
	uint64_t g0 = atomic_load_explicit(&c->gp, memory_order_relaxed);

	while (atomic_load_explicit(&c->gp, memory_order_relaxed) < g0 + 2)
		if (!gp_try_advance(c))
			sched_yield();
}

/* Writer: free `p` once no lookup can hold it.  Its bytes were already
 * taken off `live` by the caller. */
void ch_retire(struct fm_cache *c, void *p)
{
	if (!p)
		return;
	if (c->ret_head + c->ret_n == c->ret_cap) {
		if (c->ret_head > 0) {
			memmove(c->ret, c->ret + c->ret_head, c->ret_n * sizeof(*c->ret));
			c->ret_head = 0;
		} else {
			size_t ncap = c->ret_cap ? c->ret_cap * 2 : 64;
			struct fm_retired *nr = realloc(c->ret, ncap * sizeof(*nr));

			if (!nr) {
				synchronize(c);
				free(p);
				return;
			}
			ch_live_add(c, ch_alloc_bytes(ncap * sizeof(*nr)));
			if (c->ret_cap)
				ch_live_sub(c, ch_alloc_bytes(c->ret_cap * sizeof(*nr)));
			c->ret = nr;
			c->ret_cap = ncap;
		}
	}
	c->ret[c->ret_head + c->ret_n].p = p;
	c->ret[c->ret_head + c->ret_n].gp = atomic_load_explicit(&c->gp, memory_order_relaxed);
	c->ret_n++;
}

/* fm_cache_delete: free everything retired, and the retire list, now --
 * no lookup may be running any more. */
void ch_reclaim_all(struct fm_cache *c)
{
	for (size_t i = 0; i < c->ret_n; i++)
		free(c->ret[c->ret_head + i].p);
	free(c->ret);
}
