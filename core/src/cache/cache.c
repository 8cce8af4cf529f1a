/* cache.c -- the confirmation-range cache: the object, its mappings and
 * the public writer calls.
 *
 * The design (data structure, invariants, memory, concurrency) is the
 * comment at the top of cache_priv.h; reader.c, reclaim.c and evict.c
 * carry the argument for their own parts.
 *
 * Writer calls only (the protocol thread; the caller serializes them);
 * each starts by freeing what lookups have left (ch_reclaim).  What a
 * lookup may see of them: the mapping table is copy-on-write, published
 * with one seq_cst store; a mapping's validity is its `dir` pointer,
 * swapped by grant and discard; the fill token `epoch` moves on (seq_cst)
 * at every discard and generation change, so a fill that raced with one
 * is refused (-ESTALE).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "cache_priv.h"
#include "flashmeta/error.h"

/* ------------------------------------------------------------------ */
/* mapping table */

/* writer: the fill token moves on (fm_cache_map_epoch) */
static void epoch_move(struct fm_cache_map *m)
{
	atomic_store_explicit(&m->epoch, atomic_load_explicit(&m->epoch, memory_order_relaxed) + 1,
			      memory_order_seq_cst);
}

static struct fm_cache_map *__map_find(struct fm_cache *c, uint64_t id)
{
	return ch_table_find(atomic_load_explicit(&c->table, memory_order_relaxed), id);
}

/* Publish a copy of the table with `add` added and/or `del` removed. */
static int __table_replace(struct fm_cache *c, struct fm_cache_map *add,
			   struct fm_cache_map *del)
{
	struct fm_cache_table *ot = atomic_load_explicit(&c->table, memory_order_relaxed);
	uint64_t count = ot->count + (add ? 1 : 0) - (del ? 1 : 0);
	uint64_t cap = 8;

	while (cap < 2 * count)
		cap *= 2;
	struct fm_cache_table *nt = calloc(1, sizeof(*nt) + cap * sizeof(void *));

	if (!nt)
		return fm_err(-ENOMEM, "cache: mapping table of %" PRIu64 " slots", cap);
	nt->mask = cap - 1;
	nt->count = count;
	for (uint64_t i = 0; i <= ot->mask + (add ? 1 : 0); i++) {
		struct fm_cache_map *m = i <= ot->mask ? ot->slot[i] : add;

		if (!m || m == del)
			continue;
		uint64_t h = (m->id * UINT64_C(0x9E3779B97F4A7C15)) >> 32;

		while (nt->slot[h & nt->mask])
			h++;
		nt->slot[h & nt->mask] = m;
	}
	ch_live_add(c, ch_table_bytes(cap));
	atomic_store_explicit(&c->table, nt, memory_order_seq_cst);
	ch_live_sub(c, ch_table_bytes(ot->mask + 1));
	ch_retire(c, ot);
	return 0;
}

/* ------------------------------------------------------------------ */
/* public writer calls */

int fm_cache_new(struct fm_cache **out, const struct fm_cache_cfg *cfg)
{
	struct fm_cache *c;
	struct fm_cache_table *t;

	if (!out || !cfg)
		return fm_err(-EINVAL, "cache: %s is NULL", out ? "cfg" : "out");
	c = aligned_alloc(64, (sizeof(*c) + 63) & ~(size_t)63);
	if (!c)
		return fm_err(-ENOMEM, "cache: %zu bytes", sizeof(*c));
	memset(c, 0, sizeof(*c));
	t = calloc(1, sizeof(*t) + 8 * sizeof(void *));
	if (!t) {
		free(c);
		return fm_err(-ENOMEM, "cache: mapping table");
	}
	t->mask = 7;
	atomic_init(&c->table, t);
	atomic_init(&c->gp, 2);
	c->budget = cfg->budget_bytes;
	c->keep_nothing = cfg->keep_nothing;
	c->no_merge = cfg->no_merge;
	ch_live_add(c, ch_alloc_bytes(sizeof(*c)) + ch_table_bytes(8));
	*out = c;
	return 0;
}

void fm_cache_delete(struct fm_cache **cp)
{
	struct fm_cache *c;

	if (!cp || !*cp)
		return;
	c = *cp;
	while (c->maps) {
		struct fm_cache_map *m = c->maps;

		c->maps = m->next;
		ch_dir_free_now(c, ch_dir(m));
		free(m);
	}
	ch_reclaim_all(c);
	free(c->scratch);
	free(atomic_load_explicit(&c->table, memory_order_relaxed));
	free(c);
	*cp = NULL;
}

int fm_cache_map_add(struct fm_cache *c, uint64_t map_id, uint64_t grain_count)
{
	struct fm_cache_map *m;
	int ret;

	if (grain_count == 0 || grain_count > FM_CACHE_GRAIN_MAX)
		return fm_err(-EINVAL, "cache: grain_count %" PRIu64 " not in [1, 2^%u]",
			      grain_count, FM_CACHE_LAST_BITS);
	ch_reclaim(c);
	if (__map_find(c, map_id))
		return fm_err(-EEXIST, "cache: mapping %" PRIu64 " exists", map_id);
	m = calloc(1, sizeof(*m));
	if (!m)
		return fm_err(-ENOMEM, "cache: mapping struct");
	m->id = map_id;
	m->grain_count = grain_count;
	atomic_init(&m->epoch, 1);
	ch_live_add(c, ch_alloc_bytes(sizeof(*m)));
	ret = __table_replace(c, m, NULL);
	if (ret) {
		ch_live_sub(c, ch_alloc_bytes(sizeof(*m)));
		free(m);
		return ret;
	}
	m->next = c->maps;
	c->maps = m;
	return 0;
}

int fm_cache_map_remove(struct fm_cache *c, uint64_t map_id)
{
	struct fm_cache_map *m, **pp;
	int ret;

	ch_reclaim(c);
	m = __map_find(c, map_id);
	if (!m)
		return fm_err(-ENOENT, "cache: no mapping %" PRIu64, map_id);
	ret = __table_replace(c, NULL, m);
	if (ret)
		return ret;
	for (pp = &c->maps; *pp != m; pp = &(*pp)->next)
		;
	*pp = m->next;
	if (c->clock_map == m)
		c->clock_map = NULL;
	struct fm_cache_dir *d = ch_dir(m);

	atomic_store_explicit(&m->dir, NULL, memory_order_seq_cst);
	ch_dir_retire(c, d);
	ch_ranges_adjust(c, m, -(int64_t)m->nranges);
	ch_live_sub(c, ch_alloc_bytes(sizeof(*m)));
	ch_retire(c, m);
	return 0;
}

int fm_cache_map_grant(struct fm_cache *c, uint64_t map_id, uint64_t generation)
{
	struct fm_cache_map *m;

	ch_reclaim(c);
	m = __map_find(c, map_id);
	if (!m)
		return fm_err(-ENOENT, "cache: no mapping %" PRIu64, map_id);
	if (m->has_gen && m->generation == generation && ch_dir(m))
		return 0;
	if (!m->has_gen || m->generation != generation)
		epoch_move(m); /* answers asked under the old generation are stale */
	m->generation = generation;
	m->has_gen = true;
	return ch_drop_all(c, m, true);
}

int fm_cache_map_discard(struct fm_cache *c, uint64_t map_id)
{
	struct fm_cache_map *m;

	ch_reclaim(c);
	m = __map_find(c, map_id);
	if (!m)
		return fm_err(-ENOENT, "cache: no mapping %" PRIu64, map_id);
	epoch_move(m);
	ch_stat_add(&c->st_discards, 1);
	return ch_drop_all(c, m, false);
}

/* Writer preamble of the range calls: free what readers left, find the
 * mapping, check [first, last] lies in it.  0, -ENOENT, -ERANGE. */
static int __map_range(struct fm_cache *c, uint64_t map_id, uint64_t first,
		       uint64_t last, struct fm_cache_map **out)
{
	struct fm_cache_map *m;

	ch_reclaim(c);
	m = __map_find(c, map_id);
	if (!m)
		return fm_err(-ENOENT, "cache: no mapping %" PRIu64, map_id);
	if (first > last || last >= m->grain_count)
		return fm_err(-ERANGE, "cache: [%" PRIu64 ", %" PRIu64 "] outside "
			      "mapping %" PRIu64 " of %" PRIu64 " grains",
			      first, last, map_id, m->grain_count);
	*out = m;
	return 0;
}

int fm_cache_insert(struct fm_cache *c, uint64_t map_id, uint64_t epoch,
		    uint64_t first, uint64_t last)
{
	struct fm_cache_map *m = NULL;
	struct fm_cache_dir *d;
	int ret;

	ret = __map_range(c, map_id, first, last, &m);
	if (ret)
		return ret;
	d = ch_dir(m);
	if (epoch != atomic_load_explicit(&m->epoch, memory_order_relaxed) || !d) {
		ch_stat_add(&c->st_stale, 1);
		return fm_err(-ESTALE, "cache: epoch %" PRIu64 " is not current (%" PRIu64
			      "%s)", epoch, atomic_load_explicit(&m->epoch, memory_order_relaxed),
			      d ? "" : ", no lease");
	}
	if (c->keep_nothing) {
		ch_stat_add(&c->st_inserts, 1);
		return 0;
	}
	ret = ch_insert(c, m, first, last);
	if (ret < 0)
		return ret;
	ch_stat_add(&c->st_inserts, 1);
	if (ret > 0)
		return 0; /* already held as one range: nothing changed */
	ch_dir_grow(c, m);
	ch_enforce_budget(c);
	return 0;
}

int fm_cache_discard_range(struct fm_cache *c, uint64_t map_id, uint64_t first,
			   uint64_t last)
{
	struct fm_cache_map *m = NULL;
	int r, ret;

	ret = __map_range(c, map_id, first, last, &m);
	if (ret)
		return ret;
	epoch_move(m); /* a fill racing with this discard must not land */
	ch_stat_add(&c->st_discards, 1);
	r = ch_discard(c, m, first, last);
	if (r < 0)
		return r;
	ch_dir_shrink(c, m);
	return 0;
}
