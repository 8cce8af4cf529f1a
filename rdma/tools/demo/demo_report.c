/* demo_report.c -- flashmeta-demo: the report, for people (text) and for
 * tools (--json FILE), with the same figures.
 *
 * Latencies are the engine's own (fm_engine_io_stats.ns: submit to
 * completion), raw samples of every I/O of phase 2, sorted after the run:
 * min, median as "typical", 99 % and 99.9 %, max, in microseconds.
 * "Paths" split each op kind by how the engine served the I/O (demo.h).
 *
 * CPU: the owner's user + system time over phase 2 (CMD_GO to the last
 * client's result; /proc/PID/stat, clock ticks, and schedstat where the
 * kernel has it), beside each client's (getrusage over its I/O: every
 * thread, the data pattern and in-line checks included).  Per I/O
 * DECISION: engine hits (grains the confirmation cache answered) + misses
 * (bitmap READs) + locks (grain locks taken), counted over phase 2.  The
 * cache: ranges and bytes held at the end of phase 2; lookups and hits
 * counted over phase 2.
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "demo.h"

static const char *const PATH_NAMES[DEMO_PATH_COUNT] = {
	[DEMO_PATH_HIT] = "cache-hit", [DEMO_PATH_MISS] = "bitmap-read",
	[DEMO_PATH_LOCK] = "locked", [DEMO_PATH_COW] = "copy-on-write",
};

struct lat {
	uint64_t n;
	double min, typ, p99, p999, max; /* usec */
};

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static double pct(const uint64_t *v, uint64_t n, double p)
{
	uint64_t i = (uint64_t)ceil(p * (double)n);

	return (double)v[i ? (i > n ? n : i) - 1 : 0] / 1e3;
}

/* latency of the samples whose kind is in [k0, k1) */
static void lat_of(const struct demo_report *r, uint64_t *tmp, unsigned k0, unsigned k1,
		   struct lat *l)
{
	uint64_t n = 0;

	for (uint64_t i = 0; i < r->nsamples; i++) {
		unsigned k = DEMO_SAMPLE_KIND(r->samples[i]);

		if (k >= k0 && k < k1)
			tmp[n++] = DEMO_SAMPLE_NS(r->samples[i]);
	}
	memset(l, 0, sizeof(*l));
	l->n = n;
	if (!n)
		return;
	qsort(tmp, n, sizeof(*tmp), cmp_u64);
	l->min = (double)tmp[0] / 1e3;
	l->typ = pct(tmp, n, 0.5);
	l->p99 = pct(tmp, n, 0.99);
	l->p999 = pct(tmp, n, 0.999);
	l->max = (double)tmp[n - 1] / 1e3;
}

struct totals {
	uint64_t ios, ios_op[FM_IO_OP_COUNT], bytes, polled, errors, violations, checked;
	uint64_t joins, closes, locks_lost, overdue, refused_steps, fence_refused, lanes_broken;
	struct fm_engine_stats eng;
	double ios_s, mib_s;
	/* phase 2 */
	struct fm_engine_stats eng2;
	uint64_t decisions, cache_lookups, cache_hits, cache_misses, cache_bytes, cache_ranges;
	double cpu_user_s, cpu_sys_s, window_s; /* the clients': sums; longest window */
	bool cpu_ok;
};

/* the I/O decisions of phase 2 (the design comment above) */
static uint64_t res_decisions(const struct demo_result *x)
{
	return (x->eng.hits - x->eng_go.hits) + (x->eng.misses - x->eng_go.misses) +
	       (x->eng.locks - x->eng_go.locks);
}

static uint64_t res_ios(const struct demo_result *x)
{
	uint64_t n = 0;

	for (int op = 0; op < FM_IO_OP_COUNT; op++)
		n += x->ios[op];
	return n;
}

static uint64_t res_bytes(const struct demo_result *x)
{
	uint64_t n = 0;

	for (int op = 0; op < FM_IO_OP_COUNT; op++)
		n += x->bytes[op];
	return n;
}

static double per_s(uint64_t n, double s)
{
	return s > 0 ? (double)n / s : 0;
}

static void totals_of(const struct demo_report *r, struct totals *t)
{
	memset(t, 0, sizeof(*t));
	for (unsigned c = 0; c < r->nclients; c++) {
		const struct demo_result *x = &r->res[c];

		for (int op = 0; op < FM_IO_OP_COUNT; op++)
			t->ios_op[op] += x->ios[op];
		t->ios += res_ios(x);
		t->bytes += res_bytes(x);
		t->polled += x->polled_ios;
		t->errors += x->errors;
		t->violations += x->violations;
		t->checked += x->checked_bytes;
		t->joins += x->joins;
		t->closes += x->closes;
		t->locks_lost += x->locks_lost;
		t->overdue += x->steps_overdue;
		t->refused_steps += x->steps_refused;
		t->lanes_broken += x->lanes_broken;
		t->fence_refused += x->vsrc.refused + x->vtgt.refused;
		t->eng.ios += x->eng.ios;
		t->eng.errors += x->eng.errors;
		t->eng.restarts += x->eng.restarts;
		t->eng.hits += x->eng.hits;
		t->eng.misses += x->eng.misses;
		t->eng.locks += x->eng.locks;
		t->eng.copies += x->eng.copies;
		t->eng.commits += x->eng.commits;
		t->eng.bytes_read += x->eng.bytes_read;
		t->eng.bytes_written += x->eng.bytes_written;
		t->eng.mover_reqs += x->eng.mover_reqs;
		/* clients run side by side: the rates add up */
		t->ios_s += per_s(res_ios(x), x->phase2_s);
		t->mib_s += per_s(res_bytes(x), x->phase2_s) / 1048576.0;
		t->eng2.hits += x->eng.hits - x->eng_go.hits;
		t->eng2.misses += x->eng.misses - x->eng_go.misses;
		t->eng2.locks += x->eng.locks - x->eng_go.locks;
		t->decisions += res_decisions(x);
		t->cache_lookups += x->cache.lookups - x->cache_go.lookups;
		t->cache_hits += x->cache.hits - x->cache_go.hits;
		t->cache_misses += x->cache.misses - x->cache_go.misses;
		t->cache_bytes += x->cache.bytes;
		t->cache_ranges += x->cache.ranges;
		t->cpu_ok = c == 0 ? x->cpu.ok : t->cpu_ok && x->cpu.ok;
		t->cpu_user_s += x->cpu.user_s;
		t->cpu_sys_s += x->cpu.sys_s;
		if (t->window_s < (double)x->cpu.wall_ns / 1e9)
			t->window_s = (double)x->cpu.wall_ns / 1e9;
	}
}

/* ------------------------------------------------ what it ran on, cost */

void demo_pool_str(const struct demo_report *r, char *b, size_t cap)
{
	if (!r->persist[0])
		snprintf(b, cap, "persistence unknown (the owner did not answer status)");
	else if (!strcmp(r->persist, "msync"))
		snprintf(b, cap, "file (msync), not on DAX");
	else if (!strncmp(r->persist, "pmem", 4))
		snprintf(b, cap, "pmem (DAX)");
	else
		snprintf(b, cap, "persist %s", r->persist);
}

void demo_transport_str(const struct demo_cfg *cfg, const struct demo_report *r, char *b,
			size_t cap)
{
	if (!strcmp(cfg->transport, "shm") && r->nrdma)
		snprintf(b, cap, "%s; RDMA device%s on this host: %s", cfg->why,
			 r->nrdma > 1 ? "s" : "", r->rdma);
	else
		snprintf(b, cap, "%s", cfg->why);
}

/* CPU figures of one process over a window of `window_s` */
struct cpu_fig {
	bool ok;
	double cpu_s, pct, usec_per_mdec, usec_per_io;
};

static void cpu_fig(bool ok, double user_s, double sys_s, double window_s, uint64_t decisions,
		    uint64_t ios, struct cpu_fig *f)
{
	memset(f, 0, sizeof(*f));
	f->ok = ok;
	f->cpu_s = user_s + sys_s;
	f->pct = window_s > 0 ? 100.0 * f->cpu_s / window_s : 0;
	f->usec_per_mdec = decisions ? f->cpu_s * 1e6 / ((double)decisions / 1e6) : 0;
	f->usec_per_io = ios ? f->cpu_s * 1e6 / (double)ios : 0;
}

static void cpu_row(const char *who, int pid, double window_s, double user_s, double sys_s,
		    const struct cpu_fig *f)
{
	char p[16] = "";

	if (pid > 0)
		snprintf(p, sizeof(p), "%d", pid);
	if (!f->ok) {
		printf("  %-9s %7s %9.2f %8s %8s %8s %13s %22s %13s\n", who, p, window_s, "-", "-",
		       "-", "-", "-", "-");
		return;
	}
	printf("  %-9s %7s %9.2f %8.2f %8.2f %8.2f %13.1f %22.0f %13.2f\n", who, p, window_s,
	       user_s, sys_s, f->cpu_s, f->pct, f->usec_per_mdec, f->usec_per_io);
}

static double ratio_pct(uint64_t a, uint64_t b)
{
	return b ? 100.0 * (double)a / (double)b : 0;
}

static void size_str(char *b, size_t cap, uint64_t v)
{
	if (v >= (1u << 30) && v % (1u << 30) == 0)
		snprintf(b, cap, "%" PRIu64 " GiB", v >> 30);
	else if (v >= (1u << 20) && v % (1u << 20) == 0)
		snprintf(b, cap, "%" PRIu64 " MiB", v >> 20);
	else if (v >= 1024 && v % 1024 == 0)
		snprintf(b, cap, "%" PRIu64 " KiB", v >> 10);
	else
		snprintf(b, cap, "%" PRIu64 " B", v);
}

static void lat_row(const char *a, const char *b, const struct lat *l)
{
	printf("  %-12s %-14s %9" PRIu64 " %11.1f %15.1f %11.1f %13.1f %11.1f\n", a, b, l->n,
	       l->min, l->typ, l->p99, l->p999, l->max);
}

void demo_report_print(struct demo_report *r)
{
	const struct demo_cfg *cfg = r->cfg;
	uint64_t *tmp = malloc((r->nsamples ? r->nsamples : 1) * sizeof(uint64_t));
	char size[32], grain[32], what[256];
	struct cpu_fig cf;
	struct totals t;
	struct lat l;

	totals_of(r, &t);
	size_str(size, sizeof(size), cfg->size);
	size_str(grain, sizeof(grain), cfg->grain);
	printf("\nconfiguration\n");
	printf("  owner        %s, pid %d, listening on %s, lease %u ms, fence table %s\n",
	       cfg->owner, (int)r->owner_pid, cfg->addr, DEMO_LEASE_MS, cfg->fence);
	demo_transport_str(cfg, r, what, sizeof(what));
	printf("  transport    %s (the owner: transport %s, device %s)\n", what,
	       r->transport[0] ? r->transport : "?", r->device[0] ? r->device : "?");
	demo_pool_str(r, what, sizeof(what));
	printf("  pool         %s: %s; bitmap view %s\n", cfg->pool, what,
	       r->view[0] ? r->view : "?");
	printf("  clients      %u processes x %u engine threads (%s), client ids 1-%u; "
	       "verifier id %u\n", cfg->clients, cfg->threads,
	       cfg->depth && cfg->threads > 1 ? "the last thread polled" : "all synchronous",
	       cfg->clients, cfg->clients + 1);
	printf("  mapping      %u: %s -> %s, %s, grain %s, %" PRIu64 " grains\n", DEMO_MAP_ID,
	       cfg->src, cfg->tgt, size, grain, (cfg->size + cfg->grain - 1) / cfg->grain);
	if (r->nclients && r->res[0].vsrc.direct)
		printf("  volumes      files with O_DIRECT (%u-byte alignment), fdatasync before "
		       "each split commit\n", r->res[0].vsrc.align);
	else
		printf("  volumes      files through the page cache (%s), fdatasync before each "
		       "split commit\n", cfg->direct == FM_REFVOL_BUFFERED ? "--direct off" :
		       "O_DIRECT refused by this file system");
	printf("  I/O          %u KiB..%u KiB at 4 KiB offsets; target writes in own %u KiB "
	       "stripes (%u writers + nobody's); seed %" PRIu64 "%s%u\n", DEMO_IO_MIN >> 10,
	       DEMO_IO_MAX >> 10, DEMO_STRIPE >> 10, demo_slots(cfg), cfg->seed,
	       cfg->depth && cfg->threads > 1 ? "; polled depth " : "",
	       cfg->depth && cfg->threads > 1 ? cfg->depth : 0);
	printf("\nphases\n");
	printf("  setup        %.2f s: owner up, mapping created, clients joined\n", r->setup_s);
	printf("  phase 1      %s of source written through the engine (mapping idle: "
	       "direct) in %.2f s\n", size, r->phase1_s);
	printf("  trigger      golden.img = source at the trigger; map-prepare + map-start "
	       "in %.1f ms\n", r->trigger_ms);
	printf("  phase 2      %u s of random I/O on source and target\n", cfg->seconds);

	printf("\nper client (phase 2)\n");
	printf("  %-6s %7s %9s %9s %8s %8s %8s %8s %8s %8s %7s %12s %10s\n", "client", "pid",
	       "ios", "ios/s", "MiB/s", "rd_src", "wr_src", "rd_tgt", "wr_tgt", "polled",
	       "errors", "checked[MiB]", "violations");
	for (unsigned c = 0; c < r->nclients; c++) {
		const struct demo_result *x = &r->res[c];

		printf("  %-6u %7d %9" PRIu64 " %9.0f %8.1f %8" PRIu64 " %8" PRIu64 " %8" PRIu64
		       " %8" PRIu64 " %8" PRIu64 " %7" PRIu64 " %12.1f %10" PRIu64 "\n", c + 1,
		       (int)r->pids[c], res_ios(x), per_s(res_ios(x), x->phase2_s),
		       per_s(res_bytes(x), x->phase2_s) / 1048576.0, x->ios[FM_IO_READ_SOURCE],
		       x->ios[FM_IO_WRITE_SOURCE], x->ios[FM_IO_READ_TARGET],
		       x->ios[FM_IO_WRITE_TARGET], x->polled_ios, x->errors,
		       (double)x->checked_bytes / 1048576.0, x->violations);
	}
	printf("  %-6s %7s %9" PRIu64 " %9.0f %8.1f %8" PRIu64 " %8" PRIu64 " %8" PRIu64
	       " %8" PRIu64 " %8" PRIu64 " %7" PRIu64 " %12.1f %10" PRIu64 "\n", "total", "",
	       t.ios, t.ios_s, t.mib_s, t.ios_op[FM_IO_READ_SOURCE],
	       t.ios_op[FM_IO_WRITE_SOURCE], t.ios_op[FM_IO_READ_TARGET],
	       t.ios_op[FM_IO_WRITE_TARGET], t.polled, t.errors, (double)t.checked / 1048576.0,
	       t.violations);

	printf("\nengine counters (all clients, phases 1 and 2)\n");
	printf("  ios %" PRIu64 "  errors %" PRIu64 "  restarts %" PRIu64 "  |  hits %" PRIu64
	       "  misses %" PRIu64 "  |  locks %" PRIu64 "  copies %" PRIu64 "  commits %" PRIu64
	       "  |  mover requests %" PRIu64 "\n", t.eng.ios, t.eng.errors, t.eng.restarts,
	       t.eng.hits, t.eng.misses, t.eng.locks, t.eng.copies, t.eng.commits,
	       t.eng.mover_reqs);
	printf("  agents: joins %" PRIu64 "  sessions closed %" PRIu64 "  locks lost %" PRIu64
	       "  steps refused %" PRIu64 "  steps overdue %" PRIu64 "  lanes broken %" PRIu64
	       "  |  volumes: writes refused by the fence %" PRIu64 "\n", t.joins, t.closes,
	       t.locks_lost, t.refused_steps, t.overdue, t.lanes_broken, t.fence_refused);

	printf("\ncpu (phase 2; cpu/window = %% of one CPU; %ld CPUs online)\n",
	       sysconf(_SC_NPROCESSORS_ONLN));
	printf("  %-9s %7s %9s %8s %8s %8s %13s %22s %13s\n", "process", "pid", "window[s]",
	       "user[s]", "sys[s]", "cpu[s]", "cpu/window[%]", "cpu[usec]/1e6 decisions",
	       "cpu[usec]/io");
	cpu_fig(r->owner_cpu.ok, r->owner_cpu.user_s, r->owner_cpu.sys_s,
		(double)r->owner_cpu.wall_ns / 1e9, t.decisions, t.ios, &cf);
	cpu_row("owner", (int)r->owner_pid, (double)r->owner_cpu.wall_ns / 1e9,
		r->owner_cpu.user_s, r->owner_cpu.sys_s, &cf);
	for (unsigned c = 0; c < r->nclients; c++) {
		const struct demo_result *x = &r->res[c];
		char who[24];

		snprintf(who, sizeof(who), "client %u", c + 1);
		cpu_fig(x->cpu.ok, x->cpu.user_s, x->cpu.sys_s, (double)x->cpu.wall_ns / 1e9,
			res_decisions(x), res_ios(x), &cf);
		cpu_row(who, (int)r->pids[c], (double)x->cpu.wall_ns / 1e9, x->cpu.user_s,
			x->cpu.sys_s, &cf);
	}
	cpu_fig(t.cpu_ok, t.cpu_user_s, t.cpu_sys_s, t.window_s, t.decisions, t.ios, &cf);
	cpu_row("clients", 0, t.window_s, t.cpu_user_s, t.cpu_sys_s, &cf);
	printf("  owner: /proc/%d/stat utime + stime (%ld ticks/s), CMD_GO to the last result",
	       (int)r->owner_pid, sysconf(_SC_CLK_TCK));
	if (r->owner_cpu.have_sched) {
		cpu_fig(true, (double)r->owner_cpu.sched_ns / 1e9, 0,
			(double)r->owner_cpu.wall_ns / 1e9, t.decisions, t.ios, &cf);
		printf("; by schedstat %.4f s on a CPU (%u threads): %.0f usec/1e6 decisions\n",
		       cf.cpu_s, r->owner_cpu.nthreads, cf.usec_per_mdec);
	} else {
		printf("; schedstat: not known (none, or its threads changed)\n");
	}
	printf("  a client: getrusage over its I/O, every thread (engine, agent, data pattern, "
	       "in-line checks)\n");
	printf("  decisions %" PRIu64 " = engine hits %" PRIu64 " (grains the cache answered) + "
	       "misses %" PRIu64 " (bitmap READs) + locks %" PRIu64 " (grain locks), phase 2, all "
	       "clients\n", t.decisions, t.eng2.hits, t.eng2.misses, t.eng2.locks);

	printf("\nconfirmation cache (held at the end of phase 2; lookups over phase 2)\n");
	printf("  %-8s %8s %11s %10s %10s %10s %8s\n", "client", "ranges", "bytes[KiB]",
	       "lookups", "hits", "misses", "hit[%]");
	for (unsigned c = 0; c < r->nclients; c++) {
		const struct demo_result *x = &r->res[c];
		uint64_t lk = x->cache.lookups - x->cache_go.lookups;
		uint64_t h = x->cache.hits - x->cache_go.hits;

		printf("  %-8u %8" PRIu64 " %11.1f %10" PRIu64 " %10" PRIu64 " %10" PRIu64
		       " %8.2f\n", c + 1, x->cache.ranges, (double)x->cache.bytes / 1024.0, lk, h,
		       x->cache.misses - x->cache_go.misses, ratio_pct(h, lk));
	}
	printf("  %-8s %8" PRIu64 " %11.1f %10" PRIu64 " %10" PRIu64 " %10" PRIu64 " %8.2f\n",
	       "total", t.cache_ranges, (double)t.cache_bytes / 1024.0, t.cache_lookups,
	       t.cache_hits, t.cache_misses, ratio_pct(t.cache_hits, t.cache_lookups));

	printf("\nlatency (phase 2, submit to completion, all clients)\n");
	if (r->seen_samples > r->nsamples)
		printf("  (a uniform sample: %" PRIu64 " of %" PRIu64 " I/Os)\n", r->nsamples,
		       r->seen_samples);
	printf("  %-12s %-14s %9s %11s %15s %11s %13s %11s\n", "op", "path", "ios",
	       "t_min[usec]", "t_typical[usec]", "t_99%[usec]", "t_99.9%[usec]", "t_max[usec]");
	for (unsigned op = 0; tmp && op < FM_IO_OP_COUNT; op++) {
		lat_of(r, tmp, op * DEMO_PATH_COUNT, (op + 1) * DEMO_PATH_COUNT, &l);
		lat_row(fm_io_op_name((enum fm_io_op)op), "(all)", &l);
		for (unsigned p = 0; p < DEMO_PATH_COUNT; p++) {
			lat_of(r, tmp, op * DEMO_PATH_COUNT + p, op * DEMO_PATH_COUNT + p + 1, &l);
			if (l.n)
				lat_row("", PATH_NAMES[p], &l);
		}
	}

	printf("\nowner\n");
	if (r->grains)
		printf("  grains split %" PRIu64 " / %" PRIu64 " (%.1f %%)\n", r->split, r->grains,
		       100.0 * (double)r->split / (double)r->grains);
	if (r->group_commit[0])
		printf("  %s\n", r->group_commit);
	if (r->sessions[0])
		printf("  %s\n", r->sessions);
	printf("  stopped by SIGTERM: %s %d\n", r->owner_exit < 0 ? "not stopped," : "exit",
	       r->owner_exit);

	printf("\nverifier\n");
	if (r->verified)
		printf("  client %u read the whole target (%" PRIu64 " bytes) through the engine "
		       "in %.2f s and compared it with golden.img + %" PRIu64 " logged target "
		       "writes: %" PRIu64 " bytes differ%s%s\n", r->ver.client_id, r->ver.bytes,
		       r->ver.seconds, r->twrites, r->ver.mismatched_bytes,
		       r->ver.what[0] ? "; " : "", r->ver.what);
	else
		printf("  did not run\n");
	for (unsigned c = 0; c < r->nclients; c++)
		if (r->res[c].first_violation[0])
			printf("  in-line: %s\n", r->res[c].first_violation);
	if (r->problems[0])
		printf("\nrun: FAILED: %s\n", r->problems);
	printf("%s\n", r->verdict);
	free(tmp);
}

/* ---------------------------------------------------------------- JSON */

static void json_str(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			fprintf(f, "\\%c", *s);
		else if ((unsigned char)*s < 0x20)
			fprintf(f, "\\u%04x", *s);
		else
			fputc(*s, f);
	}
	fputc('"', f);
}

static void json_lat(FILE *f, const struct lat *l)
{
	fprintf(f, "{\"ios\": %" PRIu64 ", \"t_min_usec\": %.1f, \"t_typical_usec\": %.1f, "
		"\"t_99_usec\": %.1f, \"t_99_9_usec\": %.1f, \"t_max_usec\": %.1f}", l->n, l->min,
		l->typ, l->p99, l->p999, l->max);
}

static void json_eng(FILE *f, const struct fm_engine_stats *e)
{
	fprintf(f, "{\"ios\": %" PRIu64 ", \"errors\": %" PRIu64 ", \"restarts\": %" PRIu64
		", \"hits\": %" PRIu64 ", \"misses\": %" PRIu64 ", \"locks\": %" PRIu64
		", \"copies\": %" PRIu64 ", \"commits\": %" PRIu64 ", \"bytes_read\": %" PRIu64
		", \"bytes_written\": %" PRIu64 ", \"mover_reqs\": %" PRIu64 "}", e->ios,
		e->errors, e->restarts, e->hits, e->misses, e->locks, e->copies, e->commits,
		e->bytes_read, e->bytes_written, e->mover_reqs);
}

/* CPU figures; null where the time is not known */
static void json_cpu(FILE *f, bool ok, double user_s, double sys_s, double window_s,
		     uint64_t decisions, uint64_t ios)
{
	struct cpu_fig cf;

	cpu_fig(ok, user_s, sys_s, window_s, decisions, ios, &cf);
	fprintf(f, "{\"window_s\": %.3f, \"decisions\": %" PRIu64 ", \"ios\": %" PRIu64,
		window_s, decisions, ios);
	if (!ok) {
		fprintf(f, ", \"user_s\": null, \"sys_s\": null, \"cpu_s\": null, "
			"\"cpu_pct_of_one_cpu\": null, \"cpu_usec_per_1e6_decisions\": null, "
			"\"cpu_usec_per_io\": null}");
		return;
	}
	fprintf(f, ", \"user_s\": %.3f, \"sys_s\": %.3f, \"cpu_s\": %.3f, "
		"\"cpu_pct_of_one_cpu\": %.2f, \"cpu_usec_per_1e6_decisions\": %.1f, "
		"\"cpu_usec_per_io\": %.3f}", user_s, sys_s, cf.cpu_s, cf.pct, cf.usec_per_mdec,
		cf.usec_per_io);
}

static void json_cache(FILE *f, uint64_t ranges, uint64_t bytes, uint64_t lookups,
		       uint64_t hits, uint64_t misses)
{
	fprintf(f, "{\"ranges\": %" PRIu64 ", \"bytes\": %" PRIu64 ", \"lookups\": %" PRIu64
		", \"hits\": %" PRIu64 ", \"misses\": %" PRIu64 ", \"hit_ratio\": ", ranges,
		bytes, lookups, hits, misses);
	if (lookups)
		fprintf(f, "%.4f}", (double)hits / (double)lookups);
	else
		fprintf(f, "null}");
}

int demo_report_json(struct demo_report *r, const char *path)
{
	const struct demo_cfg *cfg = r->cfg;
	uint64_t *tmp = malloc((r->nsamples ? r->nsamples : 1) * sizeof(uint64_t));
	FILE *f = fopen(path, "w");
	char what[256];
	struct totals t;
	struct lat l;
	int rc;

	if (!f || !tmp) {
		if (f)
			fclose(f);
		free(tmp);
		return -1;
	}
	totals_of(r, &t);
	fprintf(f, "{\n  \"config\": {\"clients\": %u, \"threads\": %u, \"seconds\": %u, "
		"\"size\": %" PRIu64 ", \"grain\": %" PRIu64 ", \"grains\": %" PRIu64
		", \"stripe\": %u, \"io_min\": %u, \"io_max\": %u, \"depth\": %u, \"seed\": %"
		PRIu64 ", \"lease_ms\": %u, \"transport\": \"%s\", \"addr\": ", cfg->clients,
		cfg->threads, cfg->seconds, cfg->size, cfg->grain,
		(cfg->size + cfg->grain - 1) / cfg->grain, DEMO_STRIPE, DEMO_IO_MIN, DEMO_IO_MAX,
		cfg->depth, cfg->seed, DEMO_LEASE_MS, cfg->transport);
	json_str(f, cfg->addr);
	fprintf(f, ", \"dir\": ");
	json_str(f, cfg->dir);
	fprintf(f, ", \"owner\": ");
	json_str(f, cfg->owner);
	fprintf(f, "},\n  \"host\": {\"cpus_online\": %ld, \"clk_tck\": %ld, \"rdma_devices\": [",
		sysconf(_SC_NPROCESSORS_ONLN), sysconf(_SC_CLK_TCK));
	for (const char *p = r->rdma, *sp; *p; p = *sp ? sp + 1 : sp) {
		sp = p + strcspn(p, " ");
		fprintf(f, "%s\"%.*s\"", p == r->rdma ? "" : ", ", (int)(sp - p), p);
	}
	demo_transport_str(cfg, r, what, sizeof(what));
	fprintf(f, "], \"rdma_devices_count\": %u, \"transport\": ", r->nrdma);
	json_str(f, what);
	fprintf(f, "},\n  \"phases\": {\"setup_s\": %.3f, \"phase1_s\": %.3f, \"trigger_ms\": "
		"%.2f, \"phase2_s\": %u, \"total_s\": %.3f},\n", r->setup_s, r->phase1_s,
		r->trigger_ms, cfg->seconds, r->total_s);
	fprintf(f, "  \"clients\": [");
	for (unsigned c = 0; c < r->nclients; c++) {
		const struct demo_result *x = &r->res[c];

		fprintf(f, "%s\n    {\"id\": %u, \"pid\": %d, \"exit\": %d, \"phase2_s\": %.3f, "
			"\"ios\": %" PRIu64 ", \"ios_per_s\": %.1f, \"mib_per_s\": %.2f, "
			"\"read_source\": %" PRIu64 ", \"write_source\": %" PRIu64
			", \"read_target\": %" PRIu64 ", \"write_target\": %" PRIu64
			", \"polled\": %" PRIu64 ", \"errors\": %" PRIu64 ", \"violations\": %" PRIu64
			", \"checked_bytes\": %" PRIu64 ", \"target_writes_logged\": %" PRIu64
			", \"fence_refused\": %" PRIu64 ", \"engine\": ", c ? "," : "", c + 1,
			(int)r->pids[c], r->exit_status[c], x->phase2_s, res_ios(x),
			per_s(res_ios(x), x->phase2_s), per_s(res_bytes(x), x->phase2_s) / 1048576.0,
			x->ios[0], x->ios[1], x->ios[2], x->ios[3], x->polled_ios, x->errors,
			x->violations, x->checked_bytes, x->ios[FM_IO_WRITE_TARGET],
			x->vsrc.refused + x->vtgt.refused);
		json_eng(f, &x->eng);
		fprintf(f, ", \"phase2\": {\"hits\": %" PRIu64 ", \"misses\": %" PRIu64
			", \"locks\": %" PRIu64 "}, \"cpu\": ", x->eng.hits - x->eng_go.hits,
			x->eng.misses - x->eng_go.misses, x->eng.locks - x->eng_go.locks);
		json_cpu(f, x->cpu.ok, x->cpu.user_s, x->cpu.sys_s, (double)x->cpu.wall_ns / 1e9,
			 res_decisions(x), res_ios(x));
		fprintf(f, ", \"cache\": ");
		json_cache(f, x->cache.ranges, x->cache.bytes, x->cache.lookups - x->cache_go.lookups,
			   x->cache.hits - x->cache_go.hits, x->cache.misses - x->cache_go.misses);
		fprintf(f, ", \"first_error\": ");
		json_str(f, x->first_error);
		fprintf(f, ", \"first_violation\": ");
		json_str(f, x->first_violation);
		fprintf(f, "}");
	}
	fprintf(f, "\n  ],\n  \"total\": {\"ios\": %" PRIu64 ", \"ios_per_s\": %.1f, "
		"\"mib_per_s\": %.2f, \"errors\": %" PRIu64 ", \"violations\": %" PRIu64
		", \"checked_bytes\": %" PRIu64 ", \"joins\": %" PRIu64 ", \"closes\": %" PRIu64
		", \"locks_lost\": %" PRIu64 ", \"steps_overdue\": %" PRIu64
		", \"lanes_broken\": %" PRIu64 ", \"engine\": ",
		t.ios, t.ios_s, t.mib_s, t.errors, t.violations, t.checked, t.joins, t.closes,
		t.locks_lost, t.overdue, t.lanes_broken);
	json_eng(f, &t.eng);
	fprintf(f, ", \"phase2\": {\"hits\": %" PRIu64 ", \"misses\": %" PRIu64 ", \"locks\": %"
		PRIu64 "}, \"cpu\": ", t.eng2.hits, t.eng2.misses, t.eng2.locks);
	json_cpu(f, t.cpu_ok, t.cpu_user_s, t.cpu_sys_s, t.window_s, t.decisions, t.ios);
	fprintf(f, ", \"cache\": ");
	json_cache(f, t.cache_ranges, t.cache_bytes, t.cache_lookups, t.cache_hits,
		   t.cache_misses);
	fprintf(f, "},\n  \"latency\": {\"samples_kept\": %" PRIu64 ", \"ios_timed\": %" PRIu64
		", \"unit\": \"usec\",", r->nsamples, r->seen_samples);
	for (unsigned op = 0; op < FM_IO_OP_COUNT; op++) {
		lat_of(r, tmp, op * DEMO_PATH_COUNT, (op + 1) * DEMO_PATH_COUNT, &l);
		fprintf(f, "\n    \"%s\": {\"all\": ",
			fm_io_op_name((enum fm_io_op)op));
		json_lat(f, &l);
		for (unsigned p = 0; p < DEMO_PATH_COUNT; p++) {
			lat_of(r, tmp, op * DEMO_PATH_COUNT + p, op * DEMO_PATH_COUNT + p + 1, &l);
			fprintf(f, ", \"%s\": ", PATH_NAMES[p]);
			json_lat(f, &l);
		}
		fprintf(f, "}%s", op + 1 < FM_IO_OP_COUNT ? "," : "");
	}
	fprintf(f, "\n  },\n  \"owner\": {\"pid\": %d, \"grains_split\": %" PRIu64
		", \"grains\": %" PRIu64 ", \"exit\": %d, \"group_commit\": ", (int)r->owner_pid,
		r->split, r->grains, r->owner_exit);
	json_str(f, r->group_commit);
	fprintf(f, ", \"sessions\": ");
	json_str(f, r->sessions);
	fprintf(f, ", \"transport\": ");
	json_str(f, r->transport);
	fprintf(f, ", \"device\": ");
	json_str(f, r->device);
	fprintf(f, ", \"persist_mode\": ");
	json_str(f, r->persist);
	demo_pool_str(r, what, sizeof(what));
	fprintf(f, ", \"pool\": ");
	json_str(f, what);
	fprintf(f, ", \"bitmap_view\": ");
	json_str(f, r->view);
	fprintf(f, ", \"cpu\": ");
	json_cpu(f, r->owner_cpu.ok, r->owner_cpu.user_s, r->owner_cpu.sys_s,
		 (double)r->owner_cpu.wall_ns / 1e9, t.decisions, t.ios);
	if (r->owner_cpu.have_sched)
		fprintf(f, ", \"sched_cpu_s\": %.4f, \"sched_cpu_usec_per_1e6_decisions\": %.1f, "
			"\"threads\": %u", (double)r->owner_cpu.sched_ns / 1e9,
			t.decisions ? (double)r->owner_cpu.sched_ns / 1e3 /
				      ((double)t.decisions / 1e6) : 0.0,
			r->owner_cpu.nthreads);
	else
		fprintf(f, ", \"sched_cpu_s\": null");
	fprintf(f, "},\n  \"verifier\": {\"ran\": %s, \"client_id\": %u, \"bytes\": %" PRIu64
		", \"mismatched_bytes\": %" PRIu64 ", \"seconds\": %.3f, \"target_writes\": %"
		PRIu64 ", \"what\": ", r->verified ? "true" : "false", r->ver.client_id,
		r->ver.bytes, r->ver.mismatched_bytes, r->ver.seconds, r->twrites);
	json_str(f, r->ver.what);
	fprintf(f, "},\n  \"problems\": ");
	json_str(f, r->problems);
	fprintf(f, ",\n  \"invariant_ok\": %s,\n  \"verdict\": ", r->ok ? "true" : "false");
	json_str(f, r->verdict);
	fprintf(f, "\n}\n");
	rc = ferror(f) ? -1 : 0;
	if (fclose(f))
		rc = -1;
	free(tmp);
	return rc;
}
