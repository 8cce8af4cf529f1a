/* evict.c -- the memory budget: evict ranges, least recently used first
 * (CLOCK), until the bytes held fit the budget again.
 *
 * Writer only (called at the end of fm_cache_insert).
 *
 * Referenced bits (CLOCK / second chance, only with a budget): a hit sets
 * bit 2 of the word with a relaxed fetch_or only when it is clear (an RMW,
 * never a plain store, so it cannot resurrect a word the writer replaced).
 * The writer's clock hand walks buckets, clearing set bits, and evicts the
 * range of the first fragment of a bucket found clear.
 */
#include "cache_priv.h"

/* Evict one range chosen by the clock; false if nothing is left. */
static bool __evict_one(struct fm_cache *c)
{
	struct fm_cache_map *start = c->clock_map ? c->clock_map : c->maps;
	struct fm_cache_map *m = start;

	if (!m)
		return false;
	do {
		struct fm_cache_dir *d = ch_dir(m);

		if (d && m->nranges) {
			for (uint64_t k = 0; k < 2 * d->nb + 1; k++) {
				uint64_t b = m->hand++ % d->nb;
				uint64_t w = ch_word(d, b);
				struct fm_frag one;
				const struct fm_frag *f;

				if ((w & W_TAG_MASK) == W_EMPTY)
					continue;
				if (w & W_REF) {
					atomic_fetch_and_explicit(&d->e[b], ~W_REF,
								  memory_order_relaxed);
					continue;
				}
				ch_word_frags(w, b << d->shift, &one, &f);
				uint64_t s = ch_range_start(d, f[0].fs), l = f[0].last;

				ch_discard(c, m, s, l);
				ch_stat_add(&c->st_evictions, 1);
				c->clock_map = m;
				ch_dir_shrink(c, m);
				return true;
			}
		}
		m = m->next ? m->next : c->maps;
	} while (m != start);
	return false;
}

void ch_enforce_budget(struct fm_cache *c)
{
	if (!c->budget)
		return;
	while (c->live > c->budget)
		if (!__evict_one(c))
			break;
}
