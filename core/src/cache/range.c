/* range.c -- the range edits: insert (merge with every range it overlaps
 * or touches; with no_merge, only with those it overlaps) and discard
 * (split the ranges at its edges), each as the bucket words it rewrites.
 *
 * Writer only.  Every word that may need a node is prepared before any is
 * published, so -ENOMEM leaves the directory whole.  The words of one edit
 * are then stored one at a time: a lookup during the call may see some
 * buckets rewritten and others not, which stays sound because every word
 * written only ever claims grains told split under the current validity
 * (an insert writes merged ranges; a discard only removes).
 */
#include <errno.h>
#include <stdlib.h>

#include "cache_priv.h"
#include "flashmeta/error.h"

static int __scratch(struct fm_cache *c, size_t n)
{
	if (n <= c->scratch_cap)
		return 0;
	size_t ncap = c->scratch_cap ? c->scratch_cap : 8;

	while (ncap < n)
		ncap *= 2;
	struct fm_frag *s = realloc(c->scratch, ncap * sizeof(*s));

	if (!s)
		return fm_err(-ENOMEM, "cache: scratch of %zu fragments", ncap);
	if (c->scratch_cap)
		ch_live_sub(c, ch_alloc_bytes(c->scratch_cap * sizeof(*s)));
	ch_live_add(c, ch_alloc_bytes(ncap * sizeof(*s)));
	c->scratch = s;
	c->scratch_cap = ncap;
	return 0;
}

/* New content of bucket b after inserting the merged range [ms, ml]:
 * fragments before ms, the merged fragment, fragments after ml. */
static int __prep_insert(struct fm_cache *c, struct fm_cache_dir *d, uint64_t b,
			 uint64_t ms, uint64_t ml, uint64_t *w)
{
	uint64_t B = b << d->shift;
	struct fm_frag one;
	const struct fm_frag *f;
	uint32_t n = ch_word_frags(ch_word(d, b), B, &one, &f), k = 0;
	int ret = __scratch(c, n + 1);

	if (ret)
		return ret;
	uint32_t i = 0;

	for (; i < n && f[i].last < ms; i++)
		c->scratch[k++] = f[i];
	c->scratch[k].fs = ms > B ? ms : B;
	c->scratch[k++].last = ml;
	for (; i < n; i++)
		if (f[i].fs > ml)
			c->scratch[k++] = f[i];
	return ch_make_word(c, B, c->scratch, k, w);
}

/* New content of bucket b after discarding [a, z] (see the rule in
 * ch_discard). */
static int __prep_discard(struct fm_cache *c, struct fm_cache_dir *d, uint64_t b,
			  uint64_t gc, uint64_t a, uint64_t z, uint64_t *w)
{
	uint64_t B = b << d->shift;
	uint64_t E = B + ((UINT64_C(1) << d->shift) - 1);
	struct fm_frag one;
	const struct fm_frag *f;
	uint32_t n = ch_word_frags(ch_word(d, b), B, &one, &f), k = 0;
	int ret = __scratch(c, n + 1);

	if (ret)
		return ret;
	if (E >= gc)
		E = gc - 1;
	for (uint32_t i = 0; i < n; i++) {
		if (f[i].last < a || f[i].fs > z) {
			c->scratch[k++] = f[i];
			continue;
		}
		if (f[i].fs < a) {
			c->scratch[k].fs = f[i].fs;
			c->scratch[k++].last = a - 1;
		}
		if (f[i].last > z && z + 1 <= E) {
			c->scratch[k].fs = z + 1;
			c->scratch[k++].last = f[i].last;
		}
	}
	return ch_make_word(c, B, c->scratch, k, w);
}

/*
 * ch_discard -- forget [a, z] of a valid mapping.  Per fragment (fs, last)
 * of the buckets from the start of the range holding a to z's bucket:
 *
 *   last < a or fs > z           kept
 *   fs < a <= last               -> (fs, a - 1)            left piece
 *   last > z, z+1 in this bucket -> (z + 1, last)          right piece
 *
 *        [Ls ........ a-1][a ...... z][z+1 ....... Rl]
 *   buckets before a's bucket rewrite L's `last`; buckets strictly between
 *   a's and z's become EMPTY; the right piece starts in z's bucket.
 *
 * Only the first bucket, a's and z's may need a node; they are prepared
 * before anything is published so -ENOMEM leaves the directory whole; then
 * the mapping's ranges are dropped in place instead (sound) and -ENOMEM is
 * returned.  Returns 0 or -ENOMEM.
 */
int ch_discard(struct fm_cache *c, struct fm_cache_map *m, uint64_t a,
	       uint64_t z)
{
	struct fm_cache_dir *d = ch_dir(m);
	struct fm_frag fa, fz;
	uint64_t Ls = a, spec[3], sw[3];
	int nspec = 0, ret = 0;

	if (!d || m->nranges == 0)
		return 0;
	uint64_t r = ch_count_runs(d, a, z);

	if (r == 0)
		return 0;
	bool hasL = ch_find(d, a, &fa), hasR = ch_find(d, z, &fz);

	if (hasL)
		Ls = ch_range_start(d, fa.fs);
	int64_t pieces = (hasL && Ls < a) + (hasR && fz.last > z);
	uint64_t b0 = Ls >> d->shift, ba = a >> d->shift, bz = z >> d->shift;

	spec[nspec++] = b0;
	if (ba != b0)
		spec[nspec++] = ba;
	if (bz != ba)
		spec[nspec++] = bz;
	for (int i = 0; i < nspec; i++) {
		ret = __prep_discard(c, d, spec[i], m->grain_count, a, z, &sw[i]);
		if (ret) {
			while (i-- > 0)
				ch_unmake_word(c, sw[i]);
			int64_t had = (int64_t)m->nranges;

			ch_drop_inplace(c, m);
			return had ? fm_err(-ENOMEM, "cache: discard needed memory; "
					   "dropped the mapping's ranges") : 0;
		}
	}
	for (uint64_t b = b0, i = 0; b <= bz; b++) {
		uint64_t w;

		if (i < (uint64_t)nspec && spec[i] == b)
			w = sw[i++];
		else if (b < ba)
			w = ch_w_one(0, a - 1); /* fully covered by the left piece */
		else
			w = W_EMPTY;	     /* inside [a, z] */
		ch_word_set(c, d, b, w);
	}
	ch_ranges_adjust(c, m, pieces - (int64_t)r);
	return 0;
}

/*
 * ch_insert -- grains [first, last] of a valid mapping are split: merge
 * them with every range they overlap or touch into one range [ms, ml]
 * (c->no_merge: every range they overlap; a neighbour that only touches
 * stays a range of its own -- the bucket words tell it apart, see the
 * continuation rule in cache_priv.h).
 * Only the first and the last bucket of [ms, ml] may need a node; both are
 * prepared before anything is published; the buckets between are covered
 * whole (ONE with off 0).  Returns 0, 1 when [first, last] already lay in
 * one range (nothing written), or -ENOMEM (nothing written).
 */
int ch_insert(struct fm_cache *c, struct fm_cache_map *m, uint64_t first, uint64_t last)
{
	struct fm_cache_dir *d = ch_dir(m);
	struct fm_frag f;
	uint64_t ms = first, ml = last, wf, wl = 0;
	int ret;

	if (c->no_merge) {
		if (ch_find(d, first, &f))
			ms = ch_range_start(d, f.fs);
		if (ch_find(d, last, &f))
			ml = f.last;
	} else {
		if (first > 0 && ch_find(d, first - 1, &f))
			ms = ch_range_start(d, f.fs);
		if (last + 1 < m->grain_count && ch_find(d, last + 1, &f))
			ml = f.last;
	}
	uint64_t absorbed = ch_count_runs(d, ms, ml);

	if (absorbed == 1 && ch_find(d, ms, &f) && f.last == ml && ch_range_start(d, f.fs) == ms)
		return 1; /* already one range covering [ms, ml]: nothing changes */
	uint64_t bf = ms >> d->shift, bl = ml >> d->shift;

	ret = __prep_insert(c, d, bf, ms, ml, &wf);
	if (ret)
		return ret;
	if (bl != bf) {
		ret = __prep_insert(c, d, bl, ms, ml, &wl);
		if (ret) {
			ch_unmake_word(c, wf);
			return ret;
		}
	}
	for (uint64_t b = bf; b <= bl; b++)
		ch_word_set(c, d, b, b == bf ? wf : b == bl ? wl : ch_w_one(0, ml));
	ch_ranges_adjust(c, m, 1 - (int64_t)absorbed);
	ch_stat_add(&c->st_merges, absorbed);
	return 0;
}
