/* workload.c -- flashmeta-bench: where each engine thread's I/Os go.
 *
 * An I/O is (op, mapping index, offset), offset a multiple of --io-size.
 * The volume of a mapping is cut into io-size slots; the patterns pick a
 * slot of the K * slots of all mappings:
 *   seq      engine thread w of W starts at slot w * (K*slots / W), plus
 *            an offset drawn from the seed, and walks up, wrapping
 *   uniform  every slot alike
 *   zipf     rank r with probability ~ 1 / r^theta (Gray et al., "Quickly
 *            generating billion-record synthetic databases", as YCSB),
 *            the rank scrambled by a hash so the hot slots are spread
 *            over the volumes rather than packed at offset 0
 * The op is drawn from --mix.  A stream is a function of (seed, thread):
 * every variant of a round replays the same I/Os.
 */
#include <math.h>
#include <string.h>

#include "harness.h"

/* ---------------------------------------------------------------- rng */

static uint64_t splitmix(uint64_t *x)
{
	uint64_t z = (*x += UINT64_C(0x9e3779b97f4a7c15));

	z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
	z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
	return z ^ (z >> 31);
}

void hb_rng_seed(struct hb_rng *r, uint64_t seed)
{
	uint64_t x = seed;

	r->s[0] = splitmix(&x);
	r->s[1] = splitmix(&x);
	if (!r->s[0] && !r->s[1])
		r->s[1] = 1;
}

/* xoroshiro128+ */
uint64_t hb_rng_next(struct hb_rng *r)
{
	uint64_t s0 = r->s[0], s1 = r->s[1], v = s0 + s1;

	s1 ^= s0;
	r->s[0] = ((s0 << 24) | (s0 >> 40)) ^ s1 ^ (s1 << 16);
	r->s[1] = (s1 << 37) | (s1 >> 27);
	return v;
}

double hb_rng_unit(struct hb_rng *r)
{
	return (double)(hb_rng_next(r) >> 11) * 0x1.0p-53;
}

/* --------------------------------------------------------------- zipf */

/* sum_{i=1..n} 1/i^theta: exact up to 2^24 terms, then the Euler-Maclaurin
 * tail (error far below what a benchmark's draw can see) */
static double zeta(uint64_t n, double theta)
{
	const uint64_t exact = 1u << 24;
	uint64_t m = n < exact ? n : exact;
	double s = 0;

	for (uint64_t i = 1; i <= m; i++)
		s += pow((double)i, -theta);
	if (n > m)
		s += (pow((double)n, 1 - theta) - pow((double)m, 1 - theta)) / (1 - theta) +
		     (pow((double)n, -theta) - pow((double)m, -theta)) / 2;
	return s;
}

void hb_zipf_init(struct hb_zipf *z, uint64_t n, double theta)
{
	double zeta2 = zeta(2, theta);

	z->n = n;
	z->theta = theta;
	z->alpha = 1.0 / (1.0 - theta);
	z->zetan = zeta(n, theta);
	z->eta = (1.0 - pow(2.0 / (double)n, 1.0 - theta)) / (1.0 - zeta2 / z->zetan);
	z->half_pow = 1.0 + pow(0.5, theta);
}

static uint64_t fnv64(uint64_t v)
{
	uint64_t h = UINT64_C(0xcbf29ce484222325);

	for (int i = 0; i < 8; i++) {
		h ^= v & 0xff;
		h *= UINT64_C(0x100000001b3);
		v >>= 8;
	}
	return h;
}

uint64_t hb_zipf_next(const struct hb_zipf *z, struct hb_rng *r)
{
	double u = hb_rng_unit(r), uz = u * z->zetan;
	uint64_t rank;

	if (uz < 1.0)
		rank = 0;
	else if (uz < z->half_pow)
		rank = 1;
	else
		rank = (uint64_t)((double)z->n * pow(z->eta * u - z->eta + 1.0, z->alpha));
	if (rank >= z->n)
		rank = z->n - 1;
	return fnv64(rank) % z->n;
}

/* ------------------------------------------------------------- stream */

void hb_gen_init(struct hb_gen *g, const struct hb_zipf *z, uint64_t seed, unsigned worker,
		 unsigned nworkers)
{
	uint64_t total;

	memset(g, 0, sizeof(*g));
	hb_rng_seed(&g->rng, seed * UINT64_C(0x100000001b3) + worker);
	g->zipf = z;
	g->slots = opt.volume_size / opt.io_size;
	total = g->slots * opt.mappings;
	/* its stripe, from a point that moves with the seed (every round walks
	 * slots the last one did not, as far as the volumes allow) */
	g->seq_next = total / (nworkers ? nworkers : 1) * worker + splitmix(&seed) % total;
}

static enum fm_io_op pick_op(struct hb_gen *g)
{
	unsigned u = (unsigned)(hb_rng_next(&g->rng) % 100), acc = 0;

	for (int k = 0; k < FM_IO_OP_COUNT; k++) {
		acc += opt.mix[k];
		if (u < acc)
			return (enum fm_io_op)k;
	}
	return FM_IO_READ_TARGET; /* not reached: the mix adds up to 100 */
}

void hb_gen_next(struct hb_gen *g, struct hb_io *io)
{
	uint64_t total = g->slots * opt.mappings, item;

	io->op = pick_op(g);
	switch (opt.pattern) {
	case PAT_SEQ:
		item = g->seq_next++ % total;
		break;
	case PAT_ZIPF:
		item = hb_zipf_next(g->zipf, &g->rng);
		break;
	default:
		item = hb_rng_next(&g->rng) % total;
		break;
	}
	io->map = (unsigned)(item / g->slots);
	io->offset = (item % g->slots) * opt.io_size;
}

/* ------------------------------------------------------------ pre-split */

bool hb_presplit(unsigned k, uint64_t g, uint64_t grains, double pct)
{
	uint64_t x;

	if (pct <= 0)
		return false;
	if (pct >= 100)
		return true;
	if (opt.split_prefix)
		return (double)g < (double)grains * pct / 100.0;
	x = ((uint64_t)k << 48) ^ (g / opt.split_run);
	return (double)(splitmix(&x) % 1000000) < pct * 10000.0;
}
