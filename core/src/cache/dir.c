/* dir.c -- a mapping's bucket directory: what its words say (the fragment
 * holding a grain, where a range starts, how many ranges cross an
 * interval), writing one word, and the directory as a whole: allocate,
 * free, retire, rebuild for the number of ranges it holds, empty.
 *
 * Writer only.  What a lookup may see: a word is replaced by one release
 * store (ch_word_set) and the node it pointed to is retired, never
 * changed; a new directory is built where no lookup can reach it and
 * published with one seq_cst store of m->dir, then the old one is retired
 * whole.  The word layout and the sizing rule are in the design comment
 * of cache_priv.h; the rule itself is ideal_shift, ch_dir_grow and
 * ch_dir_shrink here.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cache_priv.h"
#include "flashmeta/error.h"

/* ------------------------------------------------------------------ */
/* words */

static void retire_word(struct fm_cache *c, uint64_t w)
{
	if ((w & W_TAG_MASK) == W_NODE) {
		ch_live_sub(c, ch_node_bytes(ch_w_node(w)->cap));
		ch_retire(c, ch_w_node(w));
	}
}

/* Replace bucket b's word; the old node (if any) is retired. */
void ch_word_set(struct fm_cache *c, struct fm_cache_dir *d, uint64_t b,
		 uint64_t w)
{
	uint64_t old = ch_word(d, b);

	atomic_store_explicit(&d->e[b], w, memory_order_release);
	retire_word(c, old);
}

/* The fragment holding grain g, if any. */
bool ch_find(struct fm_cache_dir *d, uint64_t g, struct fm_frag *f)
{
	uint64_t b = g >> d->shift;

	return ch_word_find(ch_word(d, b), b << d->shift, g, &f->last, &f->fs);
}

/* First grain of the range whose fragment containing some grain starts at
 * fs: walk back over continuation fragments (the bucket before reaches B:
 * a range that ends at B-1 is another one, cache_priv.h). */
uint64_t ch_range_start(struct fm_cache_dir *d, uint64_t fs)
{
	for (;;) {
		uint64_t b = fs >> d->shift, B = b << d->shift;
		struct fm_frag one;
		const struct fm_frag *f;
		uint32_t n;

		if (fs != B || b == 0)
			return fs;
		n = ch_word_frags(ch_word(d, b - 1), (b - 1) << d->shift, &one, &f);
		if (n == 0 || f[n - 1].last < B)
			return fs;
		fs = f[n - 1].fs;
	}
}

/* Number of ranges intersecting [lo, hi]. */
uint64_t ch_count_runs(struct fm_cache_dir *d, uint64_t lo, uint64_t hi)
{
	uint64_t cnt = 0, prev_last = 0;
	bool any = false;

	for (uint64_t b = lo >> d->shift; b <= hi >> d->shift; b++) {
		struct fm_frag one;
		const struct fm_frag *f;
		uint32_t n = ch_word_frags(ch_word(d, b), b << d->shift, &one, &f);

		for (uint32_t i = 0; i < n; i++) {
			if (f[i].last < lo || f[i].fs > hi)
				continue;
			if (!any || prev_last < f[i].fs) /* not a continuation */
				cnt++;
			any = true;
			prev_last = f[i].last;
		}
	}
	return cnt;
}

/* Encode fragments f[0..n) of bucket B as a word; may allocate a node. */
int ch_make_word(struct fm_cache *c, uint64_t B, const struct fm_frag *f,
		 uint32_t n, uint64_t *w)
{
	if (n == 0) {
		*w = W_EMPTY;
		return 0;
	}
	if (n == 1 && f[0].fs - B < (UINT64_C(1) << FM_CACHE_OFF_BITS)) {
		*w = ch_w_one(f[0].fs - B, f[0].last);
		return 0;
	}
	struct fm_cache_node *nd = malloc(sizeof(*nd) + n * sizeof(struct fm_frag));

	if (!nd)
		return fm_err(-ENOMEM, "cache: node of %u fragments", n);
	nd->n = n;
	nd->cap = n;
	memcpy(nd->f, f, n * sizeof(*f));
	ch_live_add(c, ch_node_bytes(n));
	*w = (uint64_t)(uintptr_t)nd | W_NODE;
	return 0;
}

/* Undo ch_make_word for a word never published. */
void ch_unmake_word(struct fm_cache *c, uint64_t w)
{
	if ((w & W_TAG_MASK) == W_NODE) {
		ch_live_sub(c, ch_node_bytes(ch_w_node(w)->cap));
		free(ch_w_node(w));
	}
}

/* ------------------------------------------------------------------ */
/* the directory as a whole */

static struct fm_cache_dir *__dir_alloc(struct fm_cache *c, uint64_t gc,
					uint32_t shift)
{
	uint64_t nb = ((gc - 1) >> shift) + 1;
	struct fm_cache_dir *d = calloc(1, sizeof(*d) + nb * sizeof(uint64_t));

	if (!d)
		return NULL;
	d->shift = shift;
	d->nb = nb;
	ch_live_add(c, ch_dir_bytes(nb));
	return d;
}

/* Free an unpublished (or fully unreachable, at delete) directory now. */
void ch_dir_free_now(struct fm_cache *c, struct fm_cache_dir *d)
{
	if (!d)
		return;
	for (uint64_t b = 0; b < d->nb; b++)
		ch_unmake_word(c, ch_word(d, b));
	ch_live_sub(c, ch_dir_bytes(d->nb));
	free(d);
}

/* Retire a directory that was unpublished (pointer already swapped). */
void ch_dir_retire(struct fm_cache *c, struct fm_cache_dir *d)
{
	if (!d)
		return;
	for (uint64_t b = 0; b < d->nb; b++)
		retire_word(c, ch_word(d, b));
	ch_live_sub(c, ch_dir_bytes(d->nb));
	ch_retire(c, d);
}

/* Shift for n ranges: the largest giving nb >= max(n * LOAD_NUM / LOAD_DEN,
 * MIN_NB). */
static uint32_t ideal_shift(uint64_t gc, uint64_t n)
{
	uint64_t target = FM_CACHE_LOAD_NUM * n / FM_CACHE_LOAD_DEN;

	if (target < FM_CACHE_MIN_NB)
		target = FM_CACHE_MIN_NB;
	uint32_t s = 0;

	while (s < 62 && ((gc - 1) >> (s + 1)) + 1 >= target)
		s++;
	return s;
}

/* Append fragment (fs, last) to bucket b of an unpublished directory. */
static int __build_append(struct fm_cache *c, struct fm_cache_dir *d, uint64_t b,
			  uint64_t fs, uint64_t last)
{
	uint64_t B = b << d->shift, w = ch_word(d, b);
	struct fm_cache_node *nd;

	if ((w & W_TAG_MASK) == W_EMPTY && fs - B < (UINT64_C(1) << FM_CACHE_OFF_BITS)) {
		atomic_store_explicit(&d->e[b], ch_w_one(fs - B, last), memory_order_relaxed);
		return 0;
	}
	if ((w & W_TAG_MASK) != W_NODE) {
		nd = malloc(sizeof(*nd) + 4 * sizeof(struct fm_frag));
		if (!nd)
			return -ENOMEM;
		nd->n = 0;
		nd->cap = 4;
		ch_live_add(c, ch_node_bytes(4));
		if ((w & W_TAG_MASK) == W_ONE) {
			nd->f[0].fs = B + (w >> W_OFF_SHIFT);
			nd->f[0].last = (w >> 3) & W_LAST_MASK;
			nd->n = 1;
		}
		atomic_store_explicit(&d->e[b], (uint64_t)(uintptr_t)nd | W_NODE,
				      memory_order_relaxed);
	}
	nd = ch_w_node(ch_word(d, b));
	if (nd->n == nd->cap) {
		struct fm_cache_node *nn =
			realloc(nd, sizeof(*nd) + 2 * nd->cap * sizeof(struct fm_frag));

		if (!nn)
			return -ENOMEM;
		ch_live_add(c, ch_node_bytes(2 * nn->cap));
		ch_live_sub(c, ch_node_bytes(nn->cap));
		nn->cap *= 2;
		nd = nn;
		atomic_store_explicit(&d->e[b], (uint64_t)(uintptr_t)nd | W_NODE,
				      memory_order_relaxed);
	}
	nd->f[nd->n].fs = fs;
	nd->f[nd->n].last = last;
	nd->n++;
	return 0;
}

/* Rebuild the mapping's directory with `shift`.  On -ENOMEM the old one
 * stays (sound, just not resized). */
static int __dir_rebuild(struct fm_cache *c, struct fm_cache_map *m, uint32_t shift)
{
	struct fm_cache_dir *od = ch_dir(m), *nd;
	uint64_t prev_last = 0;
	bool any = false;

	if (!od || od->shift == shift)
		return 0;
	nd = __dir_alloc(c, m->grain_count, shift);
	if (!nd)
		return fm_err(-ENOMEM, "cache: directory of 2^%u-grain buckets", shift);
	for (uint64_t b = 0; b < od->nb; b++) {
		struct fm_frag one;
		const struct fm_frag *f;
		uint32_t n = ch_word_frags(ch_word(od, b), b << od->shift, &one, &f);

		for (uint32_t i = 0; i < n; i++) {
			if (any && prev_last >= f[i].fs)
				continue; /* continuation of the previous range */
			any = true;
			prev_last = f[i].last;
			for (uint64_t nbk = f[i].fs >> shift; nbk <= f[i].last >> shift; nbk++) {
				uint64_t B = nbk << shift;

				if (__build_append(c, nd, nbk, f[i].fs > B ? f[i].fs : B,
						   f[i].last)) {
					ch_dir_free_now(c, nd);
					return fm_err(-ENOMEM, "cache: directory rebuild");
				}
			}
		}
	}
	/* Publish: the release/seq_cst store orders the build before it. */
	atomic_store_explicit(&m->dir, nd, memory_order_seq_cst);
	ch_dir_retire(c, od);
	m->hand = 0;
	return 0;
}

/* After an insert: more ranges than buckets -> a finer directory, if the
 * budget has room for it (a coarse one stays correct, just more crowded). */
void ch_dir_grow(struct fm_cache *c, struct fm_cache_map *m)
{
	struct fm_cache_dir *d = ch_dir(m);

	if (d && m->nranges > d->nb) {
		uint32_t s = ideal_shift(m->grain_count, m->nranges);
		uint64_t nnb = ((m->grain_count - 1) >> s) + 1;

		if (s < d->shift &&
		    (!c->budget || c->live + ch_dir_bytes(nnb) <= c->budget))
			__dir_rebuild(c, m, s);
	}
}

/* After ranges went away: fewer than nb / 8 -> a coarser directory. */
void ch_dir_shrink(struct fm_cache *c, struct fm_cache_map *m)
{
	struct fm_cache_dir *d = ch_dir(m);

	if (d && m->nranges * 8 < d->nb)
		__dir_rebuild(c, m, ideal_shift(m->grain_count, m->nranges));
}

/* Drop every range of the mapping in place (no allocation): the fallback
 * when a discard cannot allocate. */
void ch_drop_inplace(struct fm_cache *c, struct fm_cache_map *m)
{
	struct fm_cache_dir *d = ch_dir(m);

	if (d)
		for (uint64_t b = 0; b < d->nb; b++)
			ch_word_set(c, d, b, W_EMPTY);
	ch_ranges_adjust(c, m, -(int64_t)m->nranges);
}

/* Replace the mapping's directory by a fresh empty one (valid) or NULL. */
int ch_drop_all(struct fm_cache *c, struct fm_cache_map *m, bool valid)
{
	struct fm_cache_dir *od = ch_dir(m), *nd = NULL;

	if (valid) {
		nd = __dir_alloc(c, m->grain_count, ideal_shift(m->grain_count, 0));
		if (!nd) {
			ch_drop_inplace(c, m);
			return fm_err(-ENOMEM, "cache: empty directory");
		}
	}
	atomic_store_explicit(&m->dir, nd, memory_order_seq_cst);
	ch_dir_retire(c, od);
	ch_ranges_adjust(c, m, -(int64_t)m->nranges);
	m->hand = 0;
	return 0;
}
