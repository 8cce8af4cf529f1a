/* fm-cache-demo.c -- one FlashCopy mapping, end to end, on one node, in one
 * thread: the planner and the confirmation cache without the network.
 * (The cluster run over a real owner is rdma/tools/demo/flashmeta-demo.c.)
 *
 * Design: the demo plays both roles of the protocol in one thread.  The
 * "owner" is a byte per grain saying split (the authoritative metadata);
 * the "client" plans host I/O with fm_plan_io(), asking its confirmation
 * cache first and the owner only on a miss (claims 1, 3).  A positive
 * answer from the owner is cached as a confirmation; negative answers never
 * are.  Because one thread is both the I/O thread and the protocol thread,
 * the cache's single-writer rule holds trivially.
 *
 * Walk: mapping prepare -> start (generation bump, lease granted); four
 * representative I/Os and their execution (grains confirmed and merged,
 * claim 5); background copy of a share of the grains under a small cache
 * budget (evictions, claim 6); a release request discarding the mapping's
 * confirmations, with a racing stale fill refused (claim 4); a re-read.
 * After every cache change the demo checks soundness: the cache never says
 * "split" for a grain the owner has not split.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "flashmeta/cache.h"
#include "flashmeta/error.h"
#include "flashmeta/geometry.h"
#include "flashmeta/mapping.h"
#include "flashmeta/planner.h"

#define DEMO_MAP_ID 7
#define DEMO_SOURCE_VOL 100
#define DEMO_TARGET_VOL 200
#define DEMO_MIN_GRAINS 16
#define DEMO_MAX_GRAINS (UINT64_C(1) << 24) /* the owner keeps a byte per grain */
#define DEMO_MAX_EXT 64
#define DEMO_BUDGET_AUTO UINT64_MAX
#define DEMO_BUDGET_SLACK 512 /* "auto": room for a handful of ranges */

struct opts {
	uint64_t volume_size;
	uint64_t grain_size;
	uint64_t budget;
	uint64_t seed;
	unsigned int copy_percent;
};

/* Client + simulated owner.  Counters are per demo step (reset by step()). */
struct node {
	const struct fm_geom *g;
	struct fm_cache *cache;
	uint64_t map_id;
	uint8_t *owner_split; /* owner's metadata: 1 = grain split */
	unsigned int calls, hits, owner_queries;
	uint64_t sweep_hits, sweep_misses; /* check_sound()'s own lookups */
};

/* ---- small helpers ------------------------------------------------------ */

/* Exact binary units only: "64 KiB", "16416 KiB", "1536 B". */
static const char *fmt_bytes(char *buf, size_t n, uint64_t v)
{
	static const char *const unit[] = { "B", "KiB", "MiB", "GiB", "TiB" };
	unsigned int u = 0;

	while (u < 4 && v && !(v & 1023)) {
		v >>= 10;
		u++;
	}
	snprintf(buf, n, "%" PRIu64 " %s", v, unit[u]);
	return buf;
}

#define B(v) fmt_bytes((char[32]){ 0 }, 32, (v))

static int parse_size(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v;
	unsigned int shift = 0;

	errno = 0;
	v = strtoull(s, &end, 0);
	if (errno || end == s || *s == '-')
		return -EINVAL;
	switch (*end) {
	case 'k': case 'K': shift = 10; end++; break;
	case 'm': case 'M': shift = 20; end++; break;
	case 'g': case 'G': shift = 30; end++; break;
	case 't': case 'T': shift = 40; end++; break;
	case 'p': case 'P': shift = 50; end++; break;
	}
	if (*end == 'i' && shift)
		end++;
	if (*end == 'B' || *end == 'b')
		end++;
	if (*end || (shift && v > (UINT64_MAX >> shift)))
		return -EINVAL;
	*out = (uint64_t)v << shift;
	return 0;
}

static uint64_t rng_state;

static uint64_t rng_next(void) /* xorshift64* */
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * UINT64_C(2685821657736338717);
}

static void grains_str(char *buf, size_t n, uint64_t a, uint64_t b)
{
	if (a == b)
		snprintf(buf, n, "%" PRIu64, a);
	else
		snprintf(buf, n, "%" PRIu64 "-%" PRIu64, a, b);
}

/* Cache counters, without the lookups the demo's soundness sweeps made. */
static void print_stats(const struct node *n, const char *when)
{
	struct fm_cache_stats st;

	fm_cache_stats(n->cache, &st);
	st.hits -= n->sweep_hits;
	st.misses -= n->sweep_misses;
	printf("  cache %-14s %" PRIu64 " ranges, %s | lookups: hit %" PRIu64
	       " miss %" PRIu64 " | inserts %" PRIu64 " merges %" PRIu64
	       " evictions %" PRIu64 " discards %" PRIu64 " stale %" PRIu64 "\n",
	       when, st.ranges, B(st.bytes), st.hits, st.misses, st.inserts,
	       st.merges, st.evictions, st.discards, st.stale);
}

/* ---- the client's view of split state ----------------------------------- */

/*
 * The planner's fm_split_fn: the cache first (no round trip); on a miss,
 * ask the owner and cache a positive answer with the epoch read before
 * asking, so a release request in between would make the fill -ESTALE.
 */
static bool node_is_split(void *ctx, uint64_t grain, uint64_t *run)
{
	struct node *n = ctx;
	uint64_t epoch, r = 0;

	n->calls++;
	if (fm_cache_lookup(n->cache, n->map_id, grain, run)) {
		n->hits++;
		return true;
	}
	n->owner_queries++;
	if (fm_cache_map_epoch(n->cache, n->map_id, &epoch))
		epoch = UINT64_MAX; /* no lease: answer, but do not cache */
	while (grain + r < n->g->grain_count && n->owner_split[grain + r])
		r++;
	if (!r)
		return false;
	if (epoch != UINT64_MAX)
		(void)fm_cache_insert(n->cache, n->map_id, epoch, grain, grain + r - 1);
	*run = r;
	return true;
}

/* The owner marks grains split and the client caches the confirmation. */
static int confirm(struct node *n, uint64_t first, uint64_t last)
{
	uint64_t epoch;
	int ret;

	/* Durability order on a real owner: 1. copied/written data durable,
	 * 2. split bit durable, 3. confirmation sent.  Never 2 before 1. */
	for (uint64_t i = first; i <= last; i++)
		n->owner_split[i] = 1;
	ret = fm_cache_map_epoch(n->cache, n->map_id, &epoch);
	if (ret)
		return ret;
	return fm_cache_insert(n->cache, n->map_id, epoch, first, last);
}

/* Soundness: every cached "split" answer must be true at the owner. */
static int check_sound(struct node *n, uint64_t *known)
{
	uint64_t run, k = 0;

	for (uint64_t gr = 0; gr < n->g->grain_count; gr++) {
		if (!fm_cache_lookup(n->cache, n->map_id, gr, &run)) {
			n->sweep_misses++;
			continue;
		}
		n->sweep_hits++;
		if (!n->owner_split[gr])
			return fm_err(-EPROTO, "cache says grain %" PRIu64
				      " is split, the owner says not", gr);
		k++;
	}
	*known = k;
	return 0;
}

/* ---- one planned I/O ---------------------------------------------------- */

static int do_io(struct node *n, int idx, const char *what, bool cow_active,
		 enum fm_io_op op, uint64_t off, uint64_t len, bool execute)
{
	struct fm_extent ext[DEMO_MAX_EXT];
	struct fm_grain_range lock[DEMO_MAX_EXT];
	struct fm_plan p;
	char gr[48], locks[160] = "none";
	size_t pos = 0;
	int ret;

	n->calls = n->hits = n->owner_queries = 0;
	fm_plan_setup(&p, ext, DEMO_MAX_EXT, lock, DEMO_MAX_EXT);
	ret = fm_plan_io(&p, n->g, cow_active, op, off, len, node_is_split, n);
	if (ret)
		return ret;

	grains_str(gr, sizeof(gr), p.first_grain, p.last_grain);
	printf("[%d] %-12s %-10s +%-9s grains %-6s  (%s)\n", idx, fm_io_op_name(op),
	       B(off), B(len), gr, what);
	for (uint64_t i = 0; i < p.ext_count; i++) {
		grains_str(gr, sizeof(gr), ext[i].first_grain, ext[i].last_grain);
		printf("      %-18s %-10s +%-9s grains %s\n",
		       fm_extent_kind_name(ext[i].kind), B(ext[i].offset),
		       B(ext[i].length), gr);
	}
	for (uint64_t i = 0; i < p.lock_count && pos < sizeof(locks) - 48; i++) {
		grains_str(gr, sizeof(gr), lock[i].first, lock[i].last);
		pos += (size_t)snprintf(locks + pos, sizeof(locks) - pos, "%s%s",
					i ? "," : "", gr);
	}
	printf("      lock %s | is_split calls %u: cache hits %u, owner queries %u\n",
	       locks, n->calls, n->hits, n->owner_queries);
	if (!execute)
		return 0;

	/* Run the plan: under the grain locks, copy (CTW) or write (WAS),
	 * then the owner records the split and the client caches it. */
	for (uint64_t i = 0; i < p.lock_count; i++) {
		ret = confirm(n, lock[i].first, lock[i].last);
		if (ret)
			return ret;
	}
	return 0;
}

/* ---- the walk ----------------------------------------------------------- */

static int walk_mapping(struct fm_mapping *m)
{
	static const enum fm_map_event evs[] = {
		FM_MAP_EV_PREPARE, FM_MAP_EV_PREPARE_DONE, FM_MAP_EV_START,
	};
	uint64_t gen0 = m->generation;
	int ret;

	printf("mapping %" PRIu64 ": vol %" PRIu64 " -> vol %" PRIu64 "\n  %s",
	       m->id, m->source_vol, m->target_vol, fm_map_state_name(m->state));
	for (size_t i = 0; i < sizeof(evs) / sizeof(evs[0]); i++) {
		ret = fm_mapping_apply(m, evs[i]);
		if (ret)
			return ret;
		printf(" -%s-> %s", fm_map_event_name(evs[i]), fm_map_state_name(m->state));
	}
	printf("   generation %" PRIu64 " -> %" PRIu64 "\n", gen0, m->generation);
	/* The model refuses what the table refuses. */
	ret = fm_mapping_apply(m, FM_MAP_EV_PREPARE);
	if (ret != -EPERM)
		return fm_err(-EPROTO, "PREPARE while copying was not refused (%d)", ret);
	printf("  refused as expected: %s\n", fm_errormsg());
	return 0;
}

static int background_copy(struct node *n, unsigned int percent)
{
	uint64_t want = n->g->grain_count * percent / 100, done = 0, tries = 0;
	int ret;

	/* Random grains, one confirmation each: neighbours merge in the cache. */
	while (done < want && tries++ < 64 * n->g->grain_count) {
		uint64_t gr = rng_next() % n->g->grain_count;

		if (n->owner_split[gr])
			continue;
		ret = confirm(n, gr, gr);
		if (ret)
			return ret;
		done++;
	}
	printf("background copy: %" PRIu64 " more grains (%u%% of %" PRIu64
	       "), one confirmation each\n", done, percent, n->g->grain_count);
	return 0;
}

/*
 * The cache counts its fixed structures against the budget too, so a
 * "small" budget only means something relative to them: measure them on a
 * probe cache holding one empty mapping, then allow DEMO_BUDGET_SLACK more.
 */
static int auto_budget(uint64_t grain_count, uint64_t generation, uint64_t *budget)
{
	struct fm_cache_cfg cfg = { .budget_bytes = 0 };
	struct fm_cache_stats st;
	struct fm_cache *probe;
	int ret;

	ret = fm_cache_new(&probe, &cfg);
	if (ret)
		return ret;
	ret = fm_cache_map_add(probe, DEMO_MAP_ID, grain_count);
	if (!ret)
		ret = fm_cache_map_grant(probe, DEMO_MAP_ID, generation);
	fm_cache_stats(probe, &st);
	fm_cache_delete(&probe);
	*budget = st.bytes + DEMO_BUDGET_SLACK;
	if (!ret)
		printf("  cache budget %s (auto: %s fixed + %u B for ranges)\n",
		       B(*budget), B(st.bytes), DEMO_BUDGET_SLACK);
	return ret;
}

static int run(const struct opts *o)
{
	struct fm_cache_cfg cfg = { .budget_bytes = (size_t)o->budget };
	struct fm_mapping m;
	static const enum fm_map_event restart[] = {
		FM_MAP_EV_STOP, FM_MAP_EV_STOP_DONE, FM_MAP_EV_PREPARE,
		FM_MAP_EV_PREPARE_DONE, FM_MAP_EV_START,
	};
	struct node n = { .map_id = DEMO_MAP_ID };
	const struct fm_geom *g = &m.geom;
	uint64_t G, N, run_len = 0, epoch, known, owner = 0;
	bool cow;
	int ret;

	ret = fm_mapping_init(&m, DEMO_MAP_ID, DEMO_SOURCE_VOL, DEMO_TARGET_VOL,
			      o->volume_size, o->grain_size);
	if (ret)
		return ret;
	G = fm_geom_grain_size(g);
	N = g->grain_count;
	if (N < DEMO_MIN_GRAINS || N > DEMO_MAX_GRAINS)
		return fm_err(-EINVAL, "the demo wants %u to %" PRIu64 " grains, got %" PRIu64,
			      DEMO_MIN_GRAINS, DEMO_MAX_GRAINS, N);
	printf("volume %s (%" PRIu64 " B), grain %s, %" PRIu64 " grains (last %s), seed %"
	       PRIu64 "\n", B(g->volume_size), g->volume_size, B(G), N,
	       B(fm_geom_grain_bytes(g, N - 1)), o->seed);

	ret = walk_mapping(&m);
	if (ret)
		return ret;

	if (o->budget == DEMO_BUDGET_AUTO) {
		uint64_t b;

		if ((ret = auto_budget(N, m.generation, &b)))
			return ret;
		cfg.budget_bytes = (size_t)b;
	} else {
		printf("  cache budget %s\n", o->budget ? B(o->budget) : "unlimited");
	}
	n.g = g;
	n.owner_split = calloc(N, 1);
	if (!n.owner_split)
		return fm_err(-ENOMEM, "owner bitmap of %" PRIu64 " grains", N);
	ret = fm_cache_new(&n.cache, &cfg);
	if (ret)
		goto out_owner;
	ret = fm_cache_map_add(n.cache, DEMO_MAP_ID, N);
	if (ret)
		goto out_cache;
	ret = fm_cache_map_grant(n.cache, DEMO_MAP_ID, m.generation);
	if (ret)
		goto out_cache;
	printf("  lease granted for generation %" PRIu64 "; owner: 0 of %" PRIu64
	       " grains split\n", m.generation, N);

	cow = m.state == FM_MAP_COPYING; /* COW rules apply */
	if ((ret = do_io(&n, 1, "unsplit: redirect", cow, FM_IO_READ_TARGET,
			 2 * G, G, false)) ||
	    (ret = do_io(&n, 2, "copy on write", cow, FM_IO_WRITE_SOURCE,
			 2 * G, 2 * G, true)) ||
	    (ret = do_io(&n, 3, "whole grains", cow, FM_IO_WRITE_TARGET,
			 8 * G, 4 * G, true)) ||
	    (ret = do_io(&n, 4, "partial grain", cow, FM_IO_WRITE_TARGET,
			 4 * G + G / 4, G / 2, true)) ||
	    (ret = do_io(&n, 5, fm_geom_grain_bytes(g, N - 1) < G ?
			 "whole PARTIAL last grain" : "whole last grain", cow, FM_IO_WRITE_TARGET,
			 fm_geom_grain_offset(g, N - 1), fm_geom_grain_bytes(g, N - 1),
			 true)))
		goto out_cache;
	print_stats(&n, "after I/O:");

	/* Grains 5-7 split by the copier: [2-4] and [8-11] become one range. */
	if ((ret = confirm(&n, 5, 7)))
		goto out_cache;
	if (fm_cache_lookup(n.cache, DEMO_MAP_ID, 2, &run_len))
		printf("copier confirms 5-7: lookup(2) -> split, run %" PRIu64 "%s\n",
		       run_len, run_len == 10 ? " (2-11 merged into one range)" : "");
	else
		printf("copier confirms 5-7: lookup(2) -> miss (evicted already)\n");
	if ((ret = do_io(&n, 6, "mixed, one call per run", cow, FM_IO_READ_TARGET,
			 1 * G, 12 * G, false)))
		goto out_cache;

	if ((ret = background_copy(&n, o->copy_percent)) ||
	    (ret = check_sound(&n, &known)))
		goto out_cache;
	for (uint64_t i = 0; i < N; i++)
		owner += n.owner_split[i];
	print_stats(&n, "after copy:");
	printf("  owner: %" PRIu64 " grains split; cache confirms %" PRIu64 " %s\n", owner,
	       known, known < owner ? "(rest evicted: forgetting is safe, costs a query)"
				     : "(budget not reached: nothing evicted)");

	/* Release request: read a fill token, then the owner asks us to drop. */
	if ((ret = fm_cache_map_epoch(n.cache, DEMO_MAP_ID, &epoch)) ||
	    (ret = fm_cache_map_discard(n.cache, DEMO_MAP_ID)))
		goto out_cache;
	ret = fm_cache_insert(n.cache, DEMO_MAP_ID, epoch, 2, 3);
	if (ret != -ESTALE) {
		ret = fm_err(-EPROTO, "a fill racing a release was not refused (%d)", ret);
		goto out_cache;
	}
	if ((ret = check_sound(&n, &known)))
		goto out_cache;
	printf("release request: confirmations discarded, racing fill -> -ESTALE, "
	       "cache confirms %" PRIu64 " grains\n", known);
	print_stats(&n, "after release:");

	if ((ret = fm_cache_map_grant(n.cache, DEMO_MAP_ID, m.generation)) ||
	    (ret = do_io(&n, 7, "after re-grant: refill", cow, FM_IO_READ_TARGET,
			 2 * G, G, false)) ||
	    (ret = do_io(&n, 8, "again: cache hit", cow, FM_IO_READ_TARGET,
			 2 * G, G, false)) ||
	    (ret = check_sound(&n, &known)))
		goto out_cache;
	print_stats(&n, "after refill:");

	/* A new trigger: the generation moves, the owner's bitmap restarts, and
	 * the new grant drops every confirmation of the old point in time. */
	printf("restart: %s", fm_map_state_name(m.state));
	for (size_t i = 0; i < sizeof(restart) / sizeof(restart[0]); i++) {
		if ((ret = fm_mapping_apply(&m, restart[i])))
			goto out_cache;
		printf(" -%s-> %s", fm_map_event_name(restart[i]),
		       fm_map_state_name(m.state));
	}
	printf("   generation %" PRIu64 "\n", m.generation);
	memset(n.owner_split, 0, N);
	if ((ret = fm_cache_map_grant(n.cache, DEMO_MAP_ID, m.generation)) ||
	    (ret = do_io(&n, 9, "new generation: unsplit", m.state == FM_MAP_COPYING,
			 FM_IO_READ_TARGET, 2 * G, G, false)) ||
	    (ret = check_sound(&n, &known)))
		goto out_cache;
	print_stats(&n, "final:");
	ret = 0;

out_cache:
	fm_cache_delete(&n.cache);
out_owner:
	free(n.owner_split);
	return ret;
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: fm-cache-demo [options]\n"
		"Walk one FlashCopy mapping through prepare/start, plan host I/O\n"
		"against the confirmation cache and show the cache at work -- in one\n"
		"thread, with a simulated owner (flashmeta-demo runs the real cluster).\n\n"
		"  --volume-size SIZE   volume bytes, K/M/G suffixes (default 16M+32K:\n"
		"                       a partial last grain)\n"
		"  --grain-size SIZE    grain, power of two in [4K, 1G] (default 64K)\n"
		"  --budget SIZE|auto   cache memory budget, fixed structures included;\n"
		"                       0 = unlimited, auto = fixed + 512 B (default)\n"
		"  --copy-percent N     background copy share of the grains (default 25)\n"
		"  --seed N             background copy order (default 1)\n"
		"  --help               this text\n"
		"Exit status: 0 on success, 1 on a flashmeta error, 2 on bad usage.\n");
}

int main(int argc, char **argv)
{
	static const struct option lopts[] = {
		{ "volume-size", required_argument, NULL, 'v' },
		{ "grain-size", required_argument, NULL, 'g' },
		{ "budget", required_argument, NULL, 'b' },
		{ "copy-percent", required_argument, NULL, 'c' },
		{ "seed", required_argument, NULL, 's' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct opts o = {
		.volume_size = (UINT64_C(16) << 20) + (UINT64_C(32) << 10),
		.grain_size = UINT64_C(64) << 10,
		.budget = DEMO_BUDGET_AUTO,
		.seed = 1,
		.copy_percent = 25,
	};
	uint64_t v;
	int c, ret;

	while ((c = getopt_long(argc, argv, "h", lopts, NULL)) != -1) {
		if (c == 'h') {
			usage(stdout);
			return 0;
		}
		if (c == 'b' && !strcmp(optarg, "auto")) {
			o.budget = DEMO_BUDGET_AUTO;
			continue;
		}
		if (c == '?' || parse_size(optarg, &v)) {
			if (c != '?')
				fprintf(stderr, "fm-cache-demo: bad value '%s'\n", optarg);
			usage(stderr);
			return 2;
		}
		switch (c) {
		case 'v': o.volume_size = v; break;
		case 'g': o.grain_size = v; break;
		case 'b': o.budget = v; break;
		case 's': o.seed = v; break;
		case 'c':
			if (v > 100) {
				fprintf(stderr, "fm-cache-demo: --copy-percent is 0..100\n");
				return 2;
			}
			o.copy_percent = (unsigned int)v;
			break;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "fm-cache-demo: unexpected argument '%s'\n", argv[optind]);
		usage(stderr);
		return 2;
	}
	if (o.budget != DEMO_BUDGET_AUTO && o.budget > SIZE_MAX) {
		fprintf(stderr, "fm-cache-demo: --budget too large\n");
		return 2;
	}
	rng_state = o.seed ? o.seed : UINT64_C(0x9e3779b97f4a7c15);

	ret = run(&o);
	if (ret) {
		fprintf(stderr, "fm-cache-demo: %s (%s)\n", fm_errormsg(), strerror(-ret));
		return 1;
	}
	return 0;
}
