/* check.c -- the point-in-time model (rules in check.h) over the logs.
 *
 * Data: every attempt of every log is one struct cio (START, and its END
 * if the process lived to write it); the observations of successful
 * reads sit in one array.  Per volume block, the writes to it form a list
 * sorted by sequence number -- one writer per block (pit.h), so that is
 * the order in which they happened.  Checks, in this order:
 *
 *   1. T(G) per mapping and generation;
 *   2. stale writes;
 *   3. every block of every successful read against the rules; the reads
 *      that pass are kept as (block, generation, interval, value rank);
 *   4. the monotonic rule, per block and generation: sort the kept reads
 *      by start and by end, sweep with the highest rank of the reads that
 *      ended before each one began;
 *   5. the split bitmaps (published, pool) against acked commits.
 *
 * Cost: O(reads * writes per block) for 3, O(n log n) for 4; memory about
 * 80 bytes per attempt and 32 per block read.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "flashmeta/mapping.h"
#include "flashmeta/planner.h"
#include "plog.h"
#include "tag.h"

#define NO_TIME UINT64_MAX
#define LOG_THREADS 64

struct cio {
	uint64_t io;             /* attempt id (pairs START and END in a file) */
	uint64_t t0, t1;         /* START; END, or the process's end if none */
	uint64_t gen, seq, b0;
	uint32_t nblk;
	uint32_t obs;            /* first observation (reads with END rc 0) */
	int32_t rc;
	uint32_t vol;
	uint32_t inc_slot;
	uint16_t writer, client;
	uint8_t op, state, map, ended;
};

struct commit {
	uint64_t grain, gen, t;
	int32_t rc;
	uint8_t map, begin;
};

/* a read that passed, for the monotonic rule */
struct kept {
	uint32_t vol;
	uint64_t block, gen;     /* gen: target reads; 0 for source reads */
	uint64_t t0, t1;
	uint64_t rank;           /* 0: SAT / never written; else a write's seq */
	uint64_t ident;          /* rank 0: which SAT alternative (seq, 0 = zero) */
	uint32_t io;
};

struct ck {
	const struct pit_check_in *in;
	const struct pit_env *e;
	struct pit_check_out *out;
	struct cio *io;
	size_t nio, capio;
	struct pit_obs *obs;
	size_t nobs, capobs;
	struct commit *cm;
	size_t ncm, capcm;
	struct kept *kept;
	size_t nkept, capkept;
	/* per volume (index vol - 1): CSR of write attempts per block */
	uint64_t *wstart[2 * PIT_MAX_MAPS]; /* blocks + 1 offsets */
	uint32_t *wlist[2 * PIT_MAX_MAPS];
	/* per mapping: T(G) and min over G' > G of T(G') */
	uint64_t *tg[PIT_MAX_MAPS], *tafter[PIT_MAX_MAPS];
	uint64_t ngen[PIT_MAX_MAPS];
	unsigned reported[PIT_V_COUNT + PIT_L_COUNT];
};

static const char *const viol_names[PIT_V_COUNT] = {
	[PIT_V_POST_TRIGGER] = "post-trigger-source", [PIT_V_OLD_SOURCE] = "old-source",
	[PIT_V_STALE_TARGET] = "stale-target",        [PIT_V_FUTURE] = "future-write",
	[PIT_V_GARBAGE] = "garbage",                  [PIT_V_MISPLACED] = "misplaced",
	[PIT_V_UNKNOWN] = "unknown-write",            [PIT_V_STALE_WRITE] = "stale-write",
	[PIT_V_REGRESSED] = "regressed",              [PIT_V_SAT_CHANGED] = "sat-changed",
	[PIT_V_PHANTOM_SPLIT] = "phantom-split",      [PIT_V_NOT_DURABLE] = "not-durable",
	[PIT_V_LOG] = "log",
};

static const char *const lost_names[PIT_L_COUNT] = {
	[PIT_L_TARGET] = "target-write", [PIT_L_SOURCE] = "source-write",
	[PIT_L_SPLIT] = "split",
};

const char *pit_viol_name(enum pit_viol v)
{
	return (unsigned)v < PIT_V_COUNT ? viol_names[v] : "?";
}

const char *pit_lost_name(enum pit_lost l)
{
	return (unsigned)l < PIT_L_COUNT ? lost_names[l] : "?";
}

static void *grow(void *p, size_t *cap, size_t n, size_t size)
{
	if (n < *cap)
		return p;
	*cap = *cap ? *cap * 2 : 1024;
	p = realloc(p, *cap * size);
	if (!p) {
		fprintf(stderr, "fm-pit: check: out of memory\n");
		exit(2);
	}
	return p;
}

/* ------------------------------------------------------------ reports */

static double rel(const struct ck *c, uint64_t t)
{
	return t == NO_TIME ? -1.0 : pit_rel_s(c->e, t);
}

static bool acked(const struct cio *w)
{
	return w->ended && w->rc == 0;
}

static void fmt_seq(char *b, size_t cap, uint64_t seq)
{
	snprintf(b, cap, "%" PRIu64 ":%" PRIu64, seq >> 32, seq & 0xffffffffu);
}

/* "source write w3 seq 2:17 gen 4 [1.234, 1.240 s] acked" */
static void fmt_write(const struct ck *c, const struct cio *w, char *b, size_t cap)
{
	char s[32];

	fmt_seq(s, sizeof(s), w->seq);
	snprintf(b, cap, "%s write w%u seq %s gen %" PRIu64 " by c%u.%u [%.3f, %.3f s] %s",
		 w->op == FM_IO_WRITE_SOURCE ? "source" : "target", w->writer, s, w->gen,
		 w->client, c->in->incs[w->inc_slot].inc, rel(c, w->t0),
		 w->ended ? rel(c, w->t1) : -1.0,
		 !w->ended ? "never ended" : w->rc ? "failed" : "acked");
}

static void fmt_obs(const struct ck *c, const struct pit_obs *o, char *b, size_t cap)
{
	char s[32];

	switch (o->kind) {
	case PIT_VAL_ZERO:
		snprintf(b, cap, "zeroes (never written)");
		break;
	case PIT_VAL_GARBAGE:
		snprintf(b, cap, "garbage (crc %08" PRIx64 ")", o->seq);
		break;
	default:
		fmt_seq(s, sizeof(s), o->seq);
		snprintf(b, cap, "tag vol %u block %" PRIu64 " w%u seq %s gen %" PRIu64, o->vol,
			 o->block, o->writer, s, o->gen);
	}
	(void)c;
}

static void count(struct ck *c, int kind, bool lost, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static void count(struct ck *c, int kind, bool lost, const char *fmt, ...)
{
	unsigned slot = lost ? PIT_V_COUNT + (unsigned)kind : (unsigned)kind;
	va_list ap;

	if (lost) {
		c->out->lost[kind]++;
		c->out->lost_acks++;
	} else {
		c->out->viol[kind]++;
		c->out->violations++;
	}
	if (c->reported[slot]++ >= c->in->max_reports)
		return;
	fprintf(stderr, "%s[%s] ", lost ? "LOST-ACK" : "VIOLATION",
		lost ? lost_names[kind] : viol_names[kind]);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

/* ---------------------------------------------------------------- load */

struct load {
	struct ck *c;
	size_t slot;
	int64_t open[LOG_THREADS];
};

static int on_rec(void *ctx, const struct pit_rec *r, const struct pit_obs *obs)
{
	struct load *l = ctx;
	struct ck *c = l->c;
	unsigned th = (unsigned)(r->io >> 48);

	if (r->map >= c->e->nmaps || th >= LOG_THREADS) {
		count(c, PIT_V_LOG, false, "log of c%u: record for map %u thread %u", r->client,
		      r->map, th);
		return 0;
	}
	switch (r->type) {
	case PIT_REC_START: {
		struct cio *w;

		if (r->nblk == 0 || r->block + r->nblk > pit_map_blocks(&c->e->maps[r->map]) ||
		    r->op >= FM_IO_OP_COUNT) {
			count(c, PIT_V_LOG, false, "log of c%u: bad START", r->client);
			return 0;
		}
		c->io = grow(c->io, &c->capio, c->nio, sizeof(*c->io));
		w = &c->io[c->nio];
		*w = (struct cio){
			.io = r->io, .t0 = r->t_ns, .t1 = NO_TIME, .gen = r->gen, .seq = r->seq,
			.b0 = r->block, .nblk = r->nblk, .obs = UINT32_MAX, .vol = r->vol,
			.inc_slot = (uint32_t)l->slot, .writer = r->writer, .client = r->client,
			.op = r->op, .state = r->state, .map = (uint8_t)r->map,
		};
		l->open[th] = (int64_t)c->nio++;
		c->out->attempts++;
		break;
	}
	case PIT_REC_END: {
		struct cio *w = l->open[th] >= 0 ? &c->io[l->open[th]] : NULL;

		if (!w || w->io != r->io) {
			count(c, PIT_V_LOG, false, "log of c%u: END without START", r->client);
			return 0;
		}
		l->open[th] = -1;
		w->ended = 1;
		w->t1 = r->t_ns;
		if (w->t1 - w->t0 > c->out->max_io_ns) {
			c->out->max_io_ns = w->t1 - w->t0;
			snprintf(c->out->max_io_what, sizeof(c->out->max_io_what),
				 "%s map %u blocks %" PRIu64 "+%u by c%u [%.3f, %.3f s] rc %d",
				 fm_io_op_name((enum fm_io_op)w->op), w->map, w->b0, w->nblk,
				 w->client, rel(c, w->t0), rel(c, w->t1), r->rc);
		}
		w->rc = r->rc;
		if (r->rc)
			c->out->retried++;
		else
			c->out->ios[w->op]++;
		if (r->nobs) {
			if (r->nobs != w->nblk) {
				count(c, PIT_V_LOG, false, "log of c%u: END with %u of %u blocks",
				      r->client, r->nobs, w->nblk);
				return 0;
			}
			while (c->nobs + r->nobs > c->capobs)
				c->obs = grow(c->obs, &c->capobs, c->capobs, sizeof(*c->obs));
			memcpy(c->obs + c->nobs, obs, r->nobs * sizeof(*obs));
			w->obs = (uint32_t)c->nobs;
			c->nobs += r->nobs;
		}
		break;
	}
	case PIT_REC_COMMIT_BEGIN:
	case PIT_REC_COMMIT:
		c->cm = grow(c->cm, &c->capcm, c->ncm, sizeof(*c->cm));
		c->cm[c->ncm++] = (struct commit){
			.grain = r->block, .gen = r->gen, .t = r->t_ns, .rc = r->rc,
			.map = (uint8_t)r->map, .begin = r->type == PIT_REC_COMMIT_BEGIN,
		};
		if (r->type == PIT_REC_COMMIT && r->rc == 0)
			c->out->commits_acked++;
		break;
	default:
		count(c, PIT_V_LOG, false, "log of c%u: record type %u", r->client, r->type);
	}
	return 0;
}

static int load_logs(struct ck *c)
{
	for (size_t s = 0; s < c->in->nincs; s++) {
		const struct pit_inc *inc = &c->in->incs[s];
		struct load l = { .c = c, .slot = s };
		size_t first = c->nio;
		char path[400];
		int torn;
		long n;

		memset(l.open, 0xff, sizeof(l.open));
		pit_log_path(c->e, inc->idx, inc->inc, path, sizeof(path));
		n = pit_log_load(path, on_rec, &l, &torn);
		if (n == -ENOENT)
			continue; /* it died before it opened its log */
		if (n < 0) {
			fprintf(stderr, "fm-pit: %s: %s\n", path, strerror((int)-n));
			return (int)n;
		}
		/* attempts without END: killed mid-I/O; in flight until it died */
		for (size_t i = first; i < c->nio; i++)
			if (!c->io[i].ended) {
				c->io[i].t1 = inc->end_ns;
				c->out->unfinished++;
			}
	}
	return 0;
}

/* -------------------------------------------------------------- index */

static bool is_write(const struct cio *w)
{
	return w->op == FM_IO_WRITE_SOURCE || w->op == FM_IO_WRITE_TARGET;
}

static int vol_index(const struct ck *c, uint32_t vol)
{
	for (unsigned m = 0; m < c->e->nmaps; m++) {
		if (c->e->maps[m].src_vol == vol)
			return (int)(2 * m);
		if (c->e->maps[m].tgt_vol == vol)
			return (int)(2 * m + 1);
	}
	return -1;
}

static const struct ck *sort_ck;

static int by_seq(const void *a, const void *b)
{
	uint64_t x = sort_ck->io[*(const uint32_t *)a].seq,
		 y = sort_ck->io[*(const uint32_t *)b].seq;

	return x < y ? -1 : x > y;
}

static void build_index(struct ck *c)
{
	for (unsigned v = 0; v < 2 * c->e->nmaps; v++) {
		uint64_t blocks = pit_map_blocks(&c->e->maps[v / 2]);

		c->wstart[v] = calloc(blocks + 1, sizeof(uint64_t));
	}
	for (size_t i = 0; i < c->nio; i++) {
		const struct cio *w = &c->io[i];
		int v = vol_index(c, w->vol);

		if (!is_write(w) || v < 0)
			continue;
		for (uint64_t b = w->b0; b < w->b0 + w->nblk; b++)
			c->wstart[v][b + 1]++;
	}
	for (unsigned v = 0; v < 2 * c->e->nmaps; v++) {
		uint64_t blocks = pit_map_blocks(&c->e->maps[v / 2]);

		for (uint64_t b = 0; b < blocks; b++)
			c->wstart[v][b + 1] += c->wstart[v][b];
		c->wlist[v] = malloc((c->wstart[v][blocks] + 1) * sizeof(uint32_t));
	}
	{
		uint64_t *fill[2 * PIT_MAX_MAPS];

		for (unsigned v = 0; v < 2 * c->e->nmaps; v++) {
			uint64_t blocks = pit_map_blocks(&c->e->maps[v / 2]);

			fill[v] = malloc(blocks * sizeof(uint64_t));
			memcpy(fill[v], c->wstart[v], blocks * sizeof(uint64_t));
		}
		for (size_t i = 0; i < c->nio; i++) {
			const struct cio *w = &c->io[i];
			int v = vol_index(c, w->vol);

			if (!is_write(w) || v < 0)
				continue;
			for (uint64_t b = w->b0; b < w->b0 + w->nblk; b++)
				c->wlist[v][fill[v][b]++] = (uint32_t)i;
		}
		for (unsigned v = 0; v < 2 * c->e->nmaps; v++)
			free(fill[v]);
	}
	sort_ck = c;
	for (unsigned v = 0; v < 2 * c->e->nmaps; v++) {
		uint64_t blocks = pit_map_blocks(&c->e->maps[v / 2]);

		for (uint64_t b = 0; b < blocks; b++) {
			uint64_t s = c->wstart[v][b], n = c->wstart[v][b + 1] - s;

			qsort(c->wlist[v] + s, n, sizeof(uint32_t), by_seq);
			for (uint64_t k = 0; k < n; k++) {
				const struct cio *w = &c->io[c->wlist[v][s + k]];

				/* the order ended_before() relies on */
				if (k && w->t0 < c->io[c->wlist[v][s + k - 1]].t1)
					count(c, PIT_V_LOG, false,
					      "vol %u block %" PRIu64 ": write seq %" PRIx64
					      " began before seq %" PRIx64 " ended",
					      w->vol, b, w->seq, c->io[c->wlist[v][s + k - 1]].seq);

				if (w->writer != pit_block_writer(b, c->e->writers))
					count(c, PIT_V_LOG, false,
					      "vol %u block %" PRIu64
					      " written by w%u, owner is w%u",
					      w->vol, b, w->writer,
					      pit_block_writer(b, c->e->writers));
			}
		}
	}
}

/* writes to block b of volume index v: list, count */
static const uint32_t *writes(const struct ck *c, int v, uint64_t b, uint64_t *n)
{
	*n = c->wstart[v][b + 1] - c->wstart[v][b];
	return c->wlist[v] + c->wstart[v][b];
}

/* the index in list of the write with sequence seq, or -1 */
static int64_t find_seq(const struct ck *c, const uint32_t *list, uint64_t n, uint64_t seq)
{
	uint64_t lo = 0, hi = n;

	while (lo < hi) {
		uint64_t mid = (lo + hi) / 2, s = c->io[list[mid]].seq;

		if (s == seq)
			return (int64_t)mid;
		if (s < seq)
			lo = mid + 1;
		else
			hi = mid;
	}
	return -1;
}

/* how many writes of the list ended before t.  One writer per block, one
 * attempt at a time: along a block's list START and END times never go
 * back (an unfinished attempt's end is its process's death, before the
 * next incarnation starts), so this is a binary search. */
static uint64_t ended_before(const struct ck *c, const uint32_t *list, uint64_t n, uint64_t t)
{
	uint64_t lo = 0, hi = n;

	while (lo < hi) {
		uint64_t mid = (lo + hi) / 2;

		if (c->io[list[mid]].t1 < t)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* ---------------------------------------------------------- generations */

static void build_gens(struct ck *c)
{
	for (size_t i = 0; i < c->nio; i++)
		if (c->io[i].gen + 1 > c->ngen[c->io[i].map])
			c->ngen[c->io[i].map] = c->io[i].gen + 1;
	for (size_t i = 0; i < c->in->ntrig; i++)
		if (c->in->trig[i].map < c->e->nmaps &&
		    c->in->trig[i].gen + 1 > c->ngen[c->in->trig[i].map])
			c->ngen[c->in->trig[i].map] = c->in->trig[i].gen + 1;
	for (unsigned m = 0; m < c->e->nmaps; m++) {
		uint64_t n = c->ngen[m] + 1;

		c->tg[m] = malloc(n * sizeof(uint64_t));
		c->tafter[m] = malloc(n * sizeof(uint64_t));
		for (uint64_t g = 0; g < n; g++)
			c->tg[m][g] = NO_TIME;
		c->out->max_gen[m] = c->ngen[m] ? c->ngen[m] - 1 : 0;
	}
	for (size_t i = 0; i < c->nio; i++) {
		const struct cio *w = &c->io[i];

		if (w->t0 < c->tg[w->map][w->gen])
			c->tg[w->map][w->gen] = w->t0;
	}
	for (size_t i = 0; i < c->in->ntrig; i++) {
		const struct pit_trigger *t = &c->in->trig[i];

		if (t->map < c->e->nmaps && t->t_done_ns < c->tg[t->map][t->gen])
			c->tg[t->map][t->gen] = t->t_done_ns;
	}
	for (unsigned m = 0; m < c->e->nmaps; m++) {
		uint64_t n = c->ngen[m] + 1, best = NO_TIME;

		for (uint64_t g = n; g-- > 0;) {
			c->tafter[m][g] = best;
			if (c->tg[m][g] < best)
				best = c->tg[m][g];
		}
	}
}

static void check_stale_writes(struct ck *c)
{
	for (size_t i = 0; i < c->nio; i++) {
		const struct cio *w = &c->io[i];
		char d[256];

		if (!is_write(w) || c->tafter[w->map][w->gen] >= w->t0)
			continue;
		fmt_write(c, w, d, sizeof(d));
		count(c, PIT_V_STALE_WRITE, false,
		      "map %" PRIu64 ": %s blocks %" PRIu64 "+%u began after a later generation "
		      "did (at %.3f s)",
		      c->e->maps[w->map].id, d, w->b0, w->nblk, rel(c, c->tafter[w->map][w->gen]));
	}
}

/* ---------------------------------------------------------------- reads */

static bool overlaps(const struct cio *w, const struct cio *r)
{
	return w->t0 < r->t1 && (w->t1 == NO_TIME || w->t1 > r->t0);
}

static void keep(struct ck *c, const struct cio *r, uint32_t vol, uint64_t b, uint64_t gen,
		 uint64_t rank, uint64_t ident)
{
	c->kept = grow(c->kept, &c->capkept, c->nkept, sizeof(*c->kept));
	c->kept[c->nkept++] = (struct kept){ .vol = vol, .block = b, .gen = gen, .t0 = r->t0,
					     .t1 = r->t1, .rank = rank, .ident = ident,
					     .io = (uint32_t)(r - c->io) };
}

/* the read, for a report */
static void fmt_read(const struct ck *c, const struct cio *r, uint64_t b, char *buf, size_t cap)
{
	char who[16];

	if (r->writer == 0xffff)
		snprintf(who, sizeof(who), "sweep");
	else
		snprintf(who, sizeof(who), "w%u", r->writer);
	snprintf(buf, cap, "map %" PRIu64 " gen %" PRIu64 " %s block %" PRIu64 " (grain %" PRIu64
		 "): %s by c%u.%u %s [%.3f, %.3f s]", c->e->maps[r->map].id, r->gen,
		 r->op == FM_IO_READ_TARGET ? "target" : "source", b, b / PIT_BPG,
		 fm_io_op_name((enum fm_io_op)r->op), r->client, c->in->incs[r->inc_slot].inc,
		 who, rel(c, r->t0), rel(c, r->t1));
}

/* SAT(b, G): index of the base in the source list (-1: never written) */
static int64_t sat_base(const struct ck *c, const uint32_t *sl, uint64_t sn, unsigned map,
			uint64_t gen)
{
	uint64_t tg = c->tg[map][gen];

	for (uint64_t i = ended_before(c, sl, sn, tg); i-- > 0;) {
		const struct cio *w = &c->io[sl[i]];

		if (w->gen < gen && acked(w))
			return (int64_t)i;
	}
	return -1;
}

/* what the read was allowed to return, for a report */
static void fmt_allowed(const struct ck *c, const struct cio *r, const uint32_t *sl, uint64_t sn,
			const uint32_t *tl, uint64_t tn, const struct cio *a, char *buf, size_t cap)
{
	size_t used = 0;
	char d[256];
	unsigned shown = 0;

#define ADD(...) do { \
		if (used < cap) \
			used += (size_t)snprintf(buf + used, cap - used, __VA_ARGS__); \
	} while (0)
	if (a) {
		fmt_write(c, a, d, sizeof(d));
		ADD("the acked %s", d);
	} else if (r->op == FM_IO_READ_TARGET) {
		int64_t base = sat_base(c, sl, sn, r->map, r->gen);

		ADD("SAT (T(%" PRIu64 ") = %.3f s): ", r->gen, rel(c, c->tg[r->map][r->gen]));
		if (base < 0)
			ADD("zeroes");
		for (uint64_t i = base < 0 ? 0 : (uint64_t)base; i < sn && shown < 4; i++) {
			const struct cio *w = &c->io[sl[i]];

			if (w->gen >= r->gen)
				continue;
			fmt_write(c, w, d, sizeof(d));
			ADD("%s%s", shown++ || base < 0 ? " | " : "", d);
		}
	} else {
		ADD("zeroes");
	}
	shown = 0;
	for (uint64_t i = 0; i < tn && shown < 4; i++) {
		const struct cio *w = &c->io[tl[i]];

		if ((r->op == FM_IO_READ_TARGET && w->gen != r->gen) || w->t0 >= r->t1 ||
		    (a && w->seq <= a->seq))
			continue;
		fmt_write(c, w, d, sizeof(d));
		ADD("%s%s", shown++ ? " | " : "; or in flight: ", d);
	}
#undef ADD
}

static void check_target_block(struct ck *c, const struct cio *r, uint64_t b,
			       const struct pit_obs *o)
{
	const struct pit_map *m = &c->e->maps[r->map];
	int sv = (int)(2 * r->map), tv = sv + 1;
	uint64_t sn, tn;
	const uint32_t *sl = writes(c, sv, b, &sn), *tl = writes(c, tv, b, &tn);
	const struct cio *a = NULL, *w = NULL;
	char rd[256], val[160], al[1200];
	int64_t i;

	c->out->target_blocks++;
	/* A: the latest target write of this generation acked before r
	 * began; none of this generation ended before T(G) */
	for (uint64_t k = ended_before(c, tl, tn, r->t0); k-- > 0;) {
		const struct cio *x = &c->io[tl[k]];

		if (x->t1 < c->tg[r->map][r->gen])
			break;
		if (x->gen == r->gen && acked(x)) {
			a = x;
			break;
		}
	}
#define REPORT(kind, lost, why) do { \
		fmt_read(c, r, b, rd, sizeof(rd)); fmt_obs(c, o, val, sizeof(val)); \
		fmt_allowed(c, r, sl, sn, tl, tn, a, al, sizeof(al)); \
		count(c, kind, lost, "%s returned %s -- %s; allowed: %s", rd, val, why, al); \
	} while (0)
	if (o->kind == PIT_VAL_GARBAGE) {
		for (uint64_t k = 0; k < tn; k++) {
			const struct cio *x = &c->io[tl[k]];

			if (x->gen == r->gen && overlaps(x, r) && (!a || x->seq >= a->seq))
				return; /* torn by a write in flight */
		}
		REPORT(PIT_V_GARBAGE, false, "no target write in flight");
		return;
	}
	if (o->kind == PIT_VAL_TAG && (o->block != b || (o->vol != m->src_vol &&
							  o->vol != m->tgt_vol))) {
		REPORT(PIT_V_MISPLACED, false, "the data of another block");
		return;
	}
	if (o->kind == PIT_VAL_TAG && o->vol == m->tgt_vol) {
		i = find_seq(c, tl, tn, o->seq);
		if (i < 0) {
			REPORT(PIT_V_UNKNOWN, false, "no log has this target write");
			return;
		}
		w = &c->io[tl[i]];
		if (w->gen != r->gen) {
			REPORT(PIT_V_STALE_TARGET, false, "target data of an earlier generation");
			return;
		}
		if (w->t0 >= r->t1) {
			REPORT(PIT_V_FUTURE, false, "that write started after the read ended");
			return;
		}
		if (a && w->seq < a->seq) {
			REPORT(PIT_L_TARGET, true, "an older target write replaced an acked one");
			return;
		}
		keep(c, r, m->tgt_vol, b, r->gen, w->seq, w->seq);
		return;
	}
	/* source data or zeroes: only a SAT alternative, and only if no target
	 * write of this generation was acked before the read */
	if (a) {
		REPORT(PIT_L_TARGET, true, "source data replaced an acked target write");
		return;
	}
	{
		int64_t base = sat_base(c, sl, sn, r->map, r->gen);

		if (o->kind == PIT_VAL_ZERO) {
			if (base >= 0) {
				REPORT(PIT_V_OLD_SOURCE, false,
				       "zeroes, but the source held data at the trigger");
				return;
			}
			keep(c, r, m->tgt_vol, b, r->gen, 0, 0);
			return;
		}
		i = find_seq(c, sl, sn, o->seq);
		if (i < 0) {
			REPORT(PIT_V_UNKNOWN, false, "no log has this source write");
			return;
		}
		w = &c->io[sl[i]];
		if (w->gen >= r->gen) {
			REPORT(PIT_V_POST_TRIGGER, false, "source data written after the trigger");
			return;
		}
		if (i < base) {
			REPORT(PIT_V_OLD_SOURCE, false,
			       "source data older than the source at the trigger");
			return;
		}
		keep(c, r, m->tgt_vol, b, r->gen, 0, w->seq);
	}
#undef REPORT
}

static void check_source_block(struct ck *c, const struct cio *r, uint64_t b,
			       const struct pit_obs *o)
{
	const struct pit_map *m = &c->e->maps[r->map];
	int sv = (int)(2 * r->map);
	uint64_t sn;
	const uint32_t *sl = writes(c, sv, b, &sn);
	const struct cio *a = NULL, *w;
	char rd[256], val[160], al[1200];
	int64_t i;

	c->out->source_blocks++;
	for (uint64_t k = ended_before(c, sl, sn, r->t0); k-- > 0;)
		if (acked(&c->io[sl[k]])) {
			a = &c->io[sl[k]];
			break;
		}
#define REPORT(kind, lost, why) do { \
		fmt_read(c, r, b, rd, sizeof(rd)); fmt_obs(c, o, val, sizeof(val)); \
		fmt_allowed(c, r, NULL, 0, sl, sn, a, al, sizeof(al)); \
		count(c, kind, lost, "%s returned %s -- %s; allowed: %s", rd, val, why, al); \
	} while (0)
	if (o->kind == PIT_VAL_GARBAGE) {
		for (uint64_t k = 0; k < sn; k++)
			if (overlaps(&c->io[sl[k]], r) && (!a || c->io[sl[k]].seq >= a->seq))
				return;
		REPORT(PIT_V_GARBAGE, false, "no source write in flight");
		return;
	}
	if (o->kind == PIT_VAL_ZERO) {
		if (a) {
			REPORT(PIT_L_SOURCE, true, "zeroes replaced an acked source write");
			return;
		}
		keep(c, r, m->src_vol, b, 0, 0, 0);
		return;
	}
	if (o->block != b || o->vol != m->src_vol) {
		REPORT(PIT_V_MISPLACED, false, "the data of another block");
		return;
	}
	i = find_seq(c, sl, sn, o->seq);
	if (i < 0) {
		REPORT(PIT_V_UNKNOWN, false, "no log has this source write");
		return;
	}
	w = &c->io[sl[i]];
	if (w->t0 >= r->t1) {
		REPORT(PIT_V_FUTURE, false, "that write started after the read ended");
		return;
	}
	if (a && w->seq < a->seq) {
		REPORT(PIT_L_SOURCE, true, "an older source write replaced an acked one");
		return;
	}
	keep(c, r, m->src_vol, b, 0, w->seq, w->seq);
#undef REPORT
}

static void check_reads(struct ck *c)
{
	for (size_t i = 0; i < c->nio; i++) {
		const struct cio *r = &c->io[i];

		if (r->obs == UINT32_MAX || !acked(r))
			continue;
		for (uint32_t k = 0; k < r->nblk; k++) {
			const struct pit_obs *o = &c->obs[r->obs + k];

			if (r->op == FM_IO_READ_SOURCE)
				check_source_block(c, r, r->b0 + k, o);
			else if (r->state == FM_MAP_COPYING && r->gen > 0)
				check_target_block(c, r, r->b0 + k, o);
			else
				c->out->unchecked++;
		}
	}
}

/* ------------------------------------------------------------ monotonic */

static int kept_by_key_t0(const void *a, const void *b)
{
	const struct kept *x = a, *y = b;

	if (x->vol != y->vol)
		return x->vol < y->vol ? -1 : 1;
	if (x->block != y->block)
		return x->block < y->block ? -1 : 1;
	if (x->gen != y->gen)
		return x->gen < y->gen ? -1 : 1;
	return x->t0 < y->t0 ? -1 : x->t0 > y->t0;
}

static int kept_by_t1(const void *a, const void *b)
{
	const struct kept *x = *(const struct kept *const *)a, *y = *(const struct kept *const *)b;

	return x->t1 < y->t1 ? -1 : x->t1 > y->t1;
}

static void check_monotonic(struct ck *c)
{
	const struct kept **by_end = NULL;
	size_t cap = 0;

	qsort(c->kept, c->nkept, sizeof(*c->kept), kept_by_key_t0);
	for (size_t s = 0, e; s < c->nkept; s = e) {
		const struct kept *floor_k = NULL, *sat_k = NULL;
		uint64_t floor = 0;
		size_t j = 0;

		for (e = s + 1;
		     e < c->nkept && c->kept[e].vol == c->kept[s].vol &&
		     c->kept[e].block == c->kept[s].block && c->kept[e].gen == c->kept[s].gen;
		     e++)
			;
		if (e - s < 2)
			continue;
		if (e - s > cap) {
			cap = e - s;
			by_end = realloc(by_end, cap * sizeof(*by_end));
		}
		for (size_t k = s; k < e; k++)
			by_end[k - s] = &c->kept[k];
		qsort(by_end, e - s, sizeof(*by_end), kept_by_t1);
		for (size_t k = s; k < e; k++) {
			const struct kept *r2 = &c->kept[k];
			const struct cio *io2 = &c->io[r2->io];
			char rd[256], s1[32], s2[32];

			/* every read that ended before r2 began sets the floor */
			for (; j < e - s && by_end[j]->t1 < r2->t0; j++) {
				if (!floor_k || by_end[j]->rank > floor) {
					floor = by_end[j]->rank;
					floor_k = by_end[j];
				}
				if (by_end[j]->rank == 0 && !sat_k)
					sat_k = by_end[j];
			}
			if (!floor_k)
				continue;
			fmt_read(c, io2, r2->block, rd, sizeof(rd));
			if (r2->rank < floor) {
				fmt_seq(s1, sizeof(s1), r2->rank ? r2->rank : r2->ident);
				fmt_seq(s2, sizeof(s2), floor);
				count(c, PIT_V_REGRESSED, false,
				      "%s returned seq %s%s, but a read that ended at %.3f s "
				      "(c%u) had returned the newer write seq %s",
				      rd, s1, r2->rank ? "" : " (source data)", rel(c, floor_k->t1),
				      c->io[floor_k->io].client, s2);
			} else if (r2->rank == 0 && sat_k && sat_k->ident != r2->ident) {
				fmt_seq(s1, sizeof(s1), r2->ident);
				fmt_seq(s2, sizeof(s2), sat_k->ident);
				count(c, PIT_V_SAT_CHANGED, false,
				      "%s returned source seq %s, but a read that ended at %.3f s "
				      "(c%u) had returned source seq %s for the same trigger",
				      rd, s1, rel(c, sat_k->t1), c->io[sat_k->io].client, s2);
			}
		}
	}
	free(by_end);
}

/* -------------------------------------------------------------- bitmaps */

static bool bit(const uint8_t *bm, uint64_t g)
{
	return (bm[g / 8] >> (g % 8)) & 1;
}

/* the "runs" of map `id` in a flashmeta-pmem dump --json: bits set in
 * *out (grains bits); returns the generation, or -1 if not found */
static int64_t pool_map(const char *json, uint64_t id, uint64_t grains, uint8_t *out)
{
	char key[64];
	const char *p = json, *q;
	int64_t gen = -1;

	snprintf(key, sizeof(key), "\"id\":%" PRIu64 ",", id);
	while ((p = strstr(p, "{\"slot\":")) != NULL) {
		const char *end = strstr(p, "]}");

		q = strstr(p, key);
		if (!q || !end || q > end) {
			p += 8;
			continue;
		}
		q = strstr(p, "\"generation\":");
		if (!q || q > end)
			return -1;
		gen = strtoll(q + 13, NULL, 10);
		q = strstr(p, "\"runs\":[");
		if (!q || q > end)
			return -1;
		q += 8;
		while (*q == '[' || *q == ',') {
			uint64_t a, b;
			char *x;

			if (*q == ',')
				q++;
			if (*q != '[')
				break;
			a = strtoull(q + 1, &x, 10);
			b = strtoull(x + 1, &x, 10);
			for (uint64_t g = a; g <= b && g < grains; g++)
				out[g / 8] |= (uint8_t)(1u << (g % 8));
			q = x + 1;
		}
		return gen;
	}
	return -1;
}

static char *slurp(const char *path)
{
	FILE *f = fopen(path, "r");
	char *buf = NULL;
	size_t n = 0, cap = 0;

	if (!f)
		return NULL;
	for (;;) {
		if (n + 4096 + 1 > cap) {
			cap = cap ? cap * 2 : 65536;
			buf = realloc(buf, cap);
		}
		size_t k = fread(buf + n, 1, cap - n - 1, f);

		if (!k)
			break;
		n += k;
	}
	fclose(f);
	if (buf)
		buf[n] = '\0';
	return buf;
}

static void check_bitmaps(struct ck *c)
{
	char *json = c->in->pool_json ? slurp(c->in->pool_json) : NULL;

	if (c->in->pool_json && !json)
		count(c, PIT_V_LOG, false, "no pool dump %s", c->in->pool_json);
	for (unsigned m = 0; m < c->e->nmaps; m++) {
		const struct pit_map *mp = &c->e->maps[m];
		uint64_t bytes = (mp->grains + 63) / 64 * 8, gen = 0, grains = 0;
		uint8_t *pub = calloc(1, bytes), *pool = calloc(1, bytes),
			*tried = calloc(1, bytes);
		char path[400];
		int state = 0;
		bool have_pool;
		FILE *f;

		snprintf(path, sizeof(path), "%s/bitmap.%u", c->e->dir, m);
		f = fopen(path, "r");
		if (!f || fscanf(f, "%" SCNu64 " %" SCNu64 " %d", &gen, &grains, &state) != 3 ||
		    fgetc(f) != '\n' || grains != mp->grains || fread(pub, 1, bytes, f) != bytes) {
			count(c, PIT_V_LOG, false,
			      "map %" PRIu64 ": no published bitmap from the sweep", mp->id);
			if (f)
				fclose(f);
			goto next;
		}
		fclose(f);
		c->out->final_gen[m] = gen;
		have_pool = json != NULL;
		if (json) {
			int64_t pg = pool_map(json, mp->id, mp->grains, pool);

			if (pg != (int64_t)gen) {
				count(c, PIT_V_LOG, false,
				      "map %" PRIu64 ": pool generation %" PRId64
				      ", published generation %" PRIu64,
				      mp->id, pg, gen);
				have_pool = false;
			}
		}
		for (size_t i = 0; i < c->ncm; i++) {
			const struct commit *k = &c->cm[i];

			if (k->map != m || k->gen != gen || k->grain >= mp->grains)
				continue;
			if (k->begin)
				tried[k->grain / 8] |= (uint8_t)(1u << (k->grain % 8));
			else if (k->rc == 0 && !bit(pub, k->grain))
				count(c, PIT_L_SPLIT, true,
				      "map %" PRIu64 " gen %" PRIu64 " grain %" PRIu64
				      ": split acked at %.3f s, not in the published bitmap",
				      mp->id, gen, k->grain, rel(c, k->t));
			else if (k->rc == 0 && have_pool && !bit(pool, k->grain))
				count(c, PIT_L_SPLIT, true,
				      "map %" PRIu64 " gen %" PRIu64 " grain %" PRIu64
				      ": split acked at %.3f s, not in the pool",
				      mp->id, gen, k->grain, rel(c, k->t));
		}
		for (uint64_t g = 0; g < mp->grains; g++) {
			if (bit(pub, g) && !bit(tried, g))
				count(c, PIT_V_PHANTOM_SPLIT, false,
				      "map %" PRIu64 " gen %" PRIu64 " grain %" PRIu64
				      ": published split, no commit was attempted",
				      mp->id, gen, g);
			if (bit(pub, g) && have_pool && !bit(pool, g))
				count(c, PIT_V_NOT_DURABLE, false,
				      "map %" PRIu64 " gen %" PRIu64 " grain %" PRIu64
				      ": published split, not in the pool",
				      mp->id, gen, g);
		}
next:
		free(pub);
		free(pool);
		free(tried);
	}
	free(json);
}

/* ----------------------------------------------------------------- main */

int pit_check(const struct pit_check_in *in, struct pit_check_out *out)
{
	struct ck c = { .in = in, .e = in->env, .out = out };
	int rc;

	memset(out, 0, sizeof(*out));
	rc = load_logs(&c);
	if (rc)
		return rc;
	build_index(&c);
	build_gens(&c);
	check_stale_writes(&c);
	check_reads(&c);
	check_monotonic(&c);
	if (in->bitmaps)
		check_bitmaps(&c);
	for (unsigned v = 0; v < 2 * c.e->nmaps; v++) {
		free(c.wstart[v]);
		free(c.wlist[v]);
	}
	for (unsigned m = 0; m < c.e->nmaps; m++) {
		free(c.tg[m]);
		free(c.tafter[m]);
	}
	free(c.io);
	free(c.obs);
	free(c.cm);
	free(c.kept);
	return 0;
}
