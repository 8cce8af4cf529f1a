/* suite.c -- flashmeta-bench --suite: the standard set of runs into one
 * results folder.
 *
 * PHASES, one after the other in this process (each run point still has
 * fresh processes and a fresh pool: hb_run_point), every option the user
 * gave kept unless the phase says otherwise:
 *
 *   io          the I/O run at --split (default 50%): every variant, the
 *               floor, the latency CDF per path, the trigger unit
 *               (--triggers), operations per I/O
 *   split       the split sweep: 0, 50, 95, 100% (--quick: 0, 100);
 *               I/Os/s and decisions/s vs split for the engine and each
 *               baseline (no trigger unit: the io phase has it)
 *   contention  k = 1, 2, 4, 8, 16 processes on one hot grain (--quick:
 *               1, 2), beside a plain CAS spin; goodput vs k
 *   cache       cache bytes: split 50%, one round, at volume sizes V/16,
 *               V/4, V (V = --volume-size; --quick: V/4, V), then at V/4
 *               with the pre-split chosen in runs of 1, 16, 256 grains
 *               (fewer, longer ranges); bytes vs volume size, bytes vs
 *               ranges (no trigger unit)
 *
 * FOLDER (--results DIR, else results/<UTC timestamp>-<provider>; it must
 * not exist, so no run overwrites another):
 *
 *   <phase>.txt       the phase's tables and method, as a plain run prints
 *   <phase>.json      the phase's JSON, as --json writes it
 *   plots/<phase>/    the .dat, .gp and (with gnuplot) .png files
 *   summary.txt       each path as a ratio to its floor (the transport's
 *                     raw ops measured in the I/O run; with --ref-*-ns
 *                     also perftest's figures on the device); cache bytes
 *   suite.json        the command, the machine, load average before and
 *                     after, the elapsed time, the device floor, the
 *                     summary, and every phase's JSON inside it
 *
 * While a phase runs, stdout (this process's and every child's) goes to
 * its .txt file; the file is copied to the terminal when the phase ends.
 * Nothing is asserted about speed: the exit status is 0 whenever every
 * phase completed.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "jsonw.h"

enum { REF_ATOMIC, REF_READ, REF_SEND };

#define SUITE_CACHE_MAX 6u

/* one point of the cache phase: what its caches held at the end */
struct suite_cache {
	uint64_t volume_size, grains;
	unsigned split_run;
	uint64_t bytes[HB_SETS], ranges[HB_SETS];
};

static struct {
	char dir[512];
	struct hb_opts base;    /* the options as given */
	struct hb_point *io;    /* the I/O run's point (stats kept) */
	struct suite_cache cache[SUITE_CACHE_MAX];
	unsigned ncache;
	int saved_stdout;
	char phase_txt[600];
	bool gnuplot;
} S;

static double now_s(void)
{
	return (double)fm_now_ns() / 1e9;
}

static void path_in(char *out, size_t cap, const char *name)
{
	if ((size_t)snprintf(out, cap, "%s/%s", S.dir, name) >= cap)
		hb_die(-ENAMETOOLONG, "--results %s", S.dir);
}

static void mkdir_new(const char *d, bool must_be_new)
{
	if (mkdir(d, 0755) && (must_be_new || errno != EEXIST))
		hb_die(-errno, "--results: mkdir %s%s", d,
		       errno == EEXIST ? " (exists: the suite never writes over a run)" : "");
}

/* results/<UTC timestamp>-<provider>, or --results DIR; parents made */
static void folder_make(void)
{
	char ts[32];
	time_t t = time(NULL);
	struct tm tm;

	if (opt.results) {
		snprintf(S.dir, sizeof(S.dir), "%s", opt.results);
	} else {
		gmtime_r(&t, &tm);
		strftime(ts, sizeof(ts), "%Y%m%dT%H%M%SZ", &tm);
		mkdir_new("results", false);
		snprintf(S.dir, sizeof(S.dir), "results/%s-%s", ts, opt.provider);
	}
	mkdir_new(S.dir, true);
	{
		char p[600];

		path_in(p, sizeof(p), "plots");
		mkdir_new(p, false);
	}
}

/* stdout to <phase>.txt until phase_end (children forked meanwhile inherit it) */
static void phase_begin(const char *phase, const char *what)
{
	char name[64];
	int fd;

	snprintf(name, sizeof(name), "%s.txt", phase);
	path_in(S.phase_txt, sizeof(S.phase_txt), name);
	fprintf(stderr, "suite: %s -- %s (%s)\n", phase, what, S.phase_txt);
	fflush(stdout);
	fd = open(S.phase_txt, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0)
		hb_die(-errno, "%s", S.phase_txt);
	if (dup2(fd, STDOUT_FILENO) < 0)
		hb_die(-errno, "dup2");
	close(fd);
}

/* stdout back to the terminal, the phase's text copied to it */
static void phase_end(double t0)
{
	char buf[4096];
	size_t n;
	FILE *f;

	fflush(stdout);
	if (dup2(S.saved_stdout, STDOUT_FILENO) < 0)
		hb_die(-errno, "dup2");
	f = fopen(S.phase_txt, "r");
	while (f && (n = fread(buf, 1, sizeof(buf), f)) > 0)
		fwrite(buf, 1, n, stdout);
	if (f)
		fclose(f);
	printf("suite: phase done in %.1f s\n\n", now_s() - t0);
	fflush(stdout);
}

/* opt for a phase: the options as given, the JSON and the plots in the folder */
static void phase_opts(const char *phase)
{
	static char json[600], plot[600];
	char name[64];

	opt = S.base;
	snprintf(name, sizeof(name), "%s.json", phase);
	path_in(json, sizeof(json), name);
	snprintf(name, sizeof(name), "plots/%s", phase);
	path_in(plot, sizeof(plot), name);
	opt.json = json;
	opt.plot = plot;
	opt.sweep = false;
	opt.ncontend = 0;
}

/* the points of opt.split_pct, as main() runs them; the points' stats
 * are kept (samples freed) in pts[], the caller frees them */
static void io_points(struct hb_point **pts)
{
	hb_print_header();
	for (unsigned p = 0; p < opt.npoints; p++) {
		pts[p] = calloc(1, sizeof(*pts[p]));
		if (!pts[p])
			hb_die(-ENOMEM, "run point");
		hb_run_point(pts[p], opt.split_pct[p]);
		hb_point_finish(pts[p]);
		hb_print_point(pts[p]);
		hb_plot_point(pts[p], opt.plot);
		hb_point_free(pts[p]);
	}
	if (opt.npoints > 1) {
		hb_print_sweep(pts, opt.npoints);
		hb_plot_sweep(pts, opt.npoints, opt.plot);
	}
	hb_json_write(pts, opt.npoints, opt.json);
}

/* ------------------------------------------------------------ phases */

static void phase_io(void)
{
	double t0 = now_s();
	struct hb_point *pts[1];

	phase_opts("io");
	opt.npoints = 1;
	phase_begin("io", "the I/O run, every variant");
	io_points(pts);
	S.io = pts[0];
	phase_end(t0);
}

/* decisions/s vs split: the engine and each baseline that decides */
static void plot_decisions(struct hb_point *const *pts, unsigned n)
{
	char path[700];
	FILE *d, *gp;

	snprintf(path, sizeof(path), "%s/decisions.dat", opt.plot);
	d = fopen(path, "w");
	if (!d)
		hb_die(-errno, "%s", path);
	fprintf(d, "# split_pct split_start_pct decisions_per_s_cache decisions_per_s_nocache "
		   "decisions_per_s_nomerge\n");
	for (unsigned i = 0; i < n; i++)
		fprintf(d, "%g %.2f %.0f %.0f %.0f\n", pts[i]->split_pct, pts[i]->split_start[0],
			pts[i]->dps_typ[V_CACHE], pts[i]->dps_typ[V_NOCACHE],
			pts[i]->dps_typ[V_NOMERGE]);
	fclose(d);
	snprintf(path, sizeof(path), "%s/decisions.gp", opt.plot);
	gp = fopen(path, "w");
	if (!gp)
		hb_die(-errno, "%s", path);
	fprintf(gp, "# flashmeta-bench --suite: decisions/s vs split fraction\n"
		    "set terminal pngcairo size 1000,640 noenhanced\n"
		    "set output 'decisions-vs-split.png'\n"
		    "set title 'decisions/s vs split fraction (%u clients x %u threads, %s; typical "
		    "of the rounds)'\n"
		    "set grid\nset key outside bottom center horizontal\n"
		    "set xlabel 'grains split before the measured phase [%%]'\n"
		    "set ylabel 'split decisions per second'\nset xrange [-5:105]\n"
		    "set yrange [0:*]\n"
		    "plot 'decisions.dat' using 1:3 with linespoints lw 2 title 'engine, cache', \\\n"
		    "     'decisions.dat' using 1:4 with linespoints lw 2 "
		    "title 'engine, no cache', \\\n"
		    "     'decisions.dat' using 1:5 with linespoints lw 2 "
		    "title 'engine, cache without merging'\n",
		    opt.clients, opt.threads, opt.provider);
	fclose(gp);
	if (hb_plot_gnuplot(opt.plot, "decisions.gp"))
		printf("plot: %s/decisions-vs-split.png\n", opt.plot);
	else
		printf("plot: %s/decisions.gp and its data written (no PNG)\n", opt.plot);
}

static void phase_split(void)
{
	static const double full[] = { 0, 50, 95, 100 }, quick[] = { 0, 100 };
	const double *l = S.base.quick ? quick : full;
	unsigned n = S.base.quick ? 2 : 4;
	struct hb_point *pts[4];
	double t0 = now_s();

	phase_opts("split");
	opt.sweep = true;
	opt.triggers = 0;
	opt.npoints = n;
	for (unsigned i = 0; i < n; i++)
		opt.split_pct[i] = l[i];
	phase_begin("split", "the split sweep");
	io_points(pts);
	plot_decisions(pts, n);
	for (unsigned i = 0; i < n; i++)
		free(pts[i]);
	phase_end(t0);
}

static void phase_contention(struct fm_bench_owner *o, pid_t *floor_pid)
{
	static const unsigned full[] = { 1, 2, 4, 8, 16 }, quick[] = { 1, 2 };
	const unsigned *l = S.base.quick ? quick : full;
	unsigned n = S.base.quick ? 2 : 5;
	double t0 = now_s();

	phase_opts("contention");
	opt.hot = 0;   /* the contention run takes neither (opts.c) */
	opt.count = 0;
	opt.ncontend = n;
	for (unsigned i = 0; i < n; i++)
		opt.contend_k[i] = l[i];
	phase_begin("contention", "k processes on one hot grain beside a CAS spin");
	hb_contend_run(o, floor_pid);
	phase_end(t0);
}

/* a volume size from V / div that the geometry allows; 0: none */
static uint64_t vol_div(unsigned div)
{
	uint64_t v = S.base.volume_size / div;
	uint64_t step = S.base.io_size > S.base.grain_size ? S.base.io_size : S.base.grain_size;

	if (step % S.base.io_size || step % S.base.grain_size)
		return div == 1 ? S.base.volume_size : 0;
	v -= v % step;
	return v >= step ? v : 0;
}

static void plot_cache(void)
{
	char path[700];
	FILE *d, *gp;

	mkdir_new(opt.plot, false);
	snprintf(path, sizeof(path), "%s/cache.dat", opt.plot);
	d = fopen(path, "w");
	if (!d)
		hb_die(-errno, "%s", path);
	fprintf(d, "# volume_MiB grains split_run bytes_cache ranges_cache bytes_nocache "
		   "ranges_nocache bytes_nomerge ranges_nomerge\n");
	for (unsigned i = 0; i < S.ncache; i++) {
		const struct suite_cache *c = &S.cache[i];

		fprintf(d, "%.3f %" PRIu64 " %u %" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64
			   " %" PRIu64 " %" PRIu64 "\n", (double)c->volume_size / 1048576.0,
			c->grains, c->split_run, c->bytes[V_CACHE], c->ranges[V_CACHE],
			c->bytes[V_NOCACHE], c->ranges[V_NOCACHE], c->bytes[V_NOMERGE],
			c->ranges[V_NOMERGE]);
	}
	fclose(d);
	snprintf(path, sizeof(path), "%s/cache.gp", opt.plot);
	gp = fopen(path, "w");
	if (!gp)
		hb_die(-errno, "%s", path);
	fprintf(gp, "# flashmeta-bench --suite: the caches' bytes vs volume size, vs ranges\n"
		    "set terminal pngcairo size 1000,640 noenhanced\n"
		    "set grid\nset key outside bottom center horizontal\n"
		    "set output 'cache-vs-volume.png'\n"
		    "set title 'cache bytes at the end vs volume size (split 50%%, runs of 1 grain; "
		    "every client summed)'\n"
		    "set logscale x 2\nset xlabel 'volume size [MiB]'\n"
		    "set ylabel 'cache bytes'\nset yrange [0:*]\n"
		    "plot 'cache.dat' using ($3 == 1 ? $1 : 1/0):4 with linespoints lw 2 "
		    "title 'cache', \\\n"
		    "     'cache.dat' using ($3 == 1 ? $1 : 1/0):8 with linespoints lw 2 "
		    "title 'cache without merging'\n"
		    "set output 'cache-vs-ranges.png'\n"
		    "set title 'cache bytes vs ranges held (every point of the cache phase)'\n"
		    "unset logscale x\nset logscale xy\nset yrange [*:*]\n"
		    "set xlabel 'ranges in the caches'\n"
		    "plot 'cache.dat' using 5:4 with points pt 7 ps 1.5 title 'cache', \\\n"
		    "     'cache.dat' using 9:8 with points pt 5 ps 1.5 "
		    "title 'cache without merging'\n");
	fclose(gp);
	if (hb_plot_gnuplot(opt.plot, "cache.gp"))
		printf("plot: %s/cache-vs-volume.png, %s/cache-vs-ranges.png\n", opt.plot,
		       opt.plot);
	else
		printf("plot: %s/cache.gp and its data written (no PNG)\n", opt.plot);
}

static void phase_cache(void)
{
	static const unsigned divs_full[] = { 16, 4, 1 }, divs_quick[] = { 4, 1 };
	static const unsigned runs_full[] = { 16, 256 }, runs_quick[] = { 16 };
	const unsigned *divs = S.base.quick ? divs_quick : divs_full;
	const unsigned *runs = S.base.quick ? runs_quick : runs_full;
	unsigned ndiv = S.base.quick ? 2 : 3, nrun = S.base.quick ? 1 : 2;
	struct hb_point *pts[SUITE_CACHE_MAX];
	const char *json, *plot;
	double t0 = now_s();

	phase_opts("cache");
	json = opt.json;
	plot = opt.plot;
	phase_begin("cache", "cache bytes vs volume size and vs ranges");
	printf("# cache phase: split 50%%, 1 round (+1 warm-up) per point; the caches' bytes "
	       "and ranges at the end,\n# every client's summed (fm_agent stats); volume "
	       "sizes V/16, V/4, V with runs of 1 grain, then V/4 with\n# the pre-split in "
	       "runs of G grains (fewer, longer ranges)\n");
	S.ncache = 0;
	for (unsigned i = 0; i < ndiv + nrun; i++) {
		uint64_t v = vol_div(i < ndiv ? divs[i] : 4);
		struct suite_cache *c = &S.cache[S.ncache];
		struct hb_point *pt;

		if (!v) {
			printf("# (volume size V/%u does not fit the I/O and grain size: skipped)\n",
			       i < ndiv ? divs[i] : 4);
			continue;
		}
		opt = S.base;
		opt.json = json;
		opt.plot = plot;
		opt.sweep = false;
		opt.ncontend = 0;
		opt.npoints = 1;
		opt.split_pct[0] = 50;
		opt.rounds = 1;
		opt.volume_size = v;
		opt.split_run = i < ndiv ? 1 : runs[i - ndiv];
		opt.triggers = 0;
		pt = pts[S.ncache] = calloc(1, sizeof(*pt));
		if (!pt)
			hb_die(-ENOMEM, "run point");
		hb_run_point(pt, 50);
		hb_point_finish(pt);
		hb_point_free(pt);
		c->volume_size = v;
		c->grains = v / opt.grain_size;
		c->split_run = opt.split_run;
		for (unsigned s = 0; s < HB_SETS; s++) {
			c->bytes[s] = pt->ag[s].bytes;
			c->ranges[s] = pt->ag[s].ranges;
		}
		S.ncache++;
	}
	printf("%12s %10s %9s %14s %12s %14s %12s %10s\n", "volume", "grains", "split_run",
	       "cache", "cache", "no merge", "no merge", "bytes per");
	printf("%12s %10s %9s %14s %12s %14s %12s %10s\n", "[MiB]", "", "[grains]", "[bytes]",
	       "[ranges]", "[bytes]", "[ranges]", "range [B]");
	for (unsigned i = 0; i < S.ncache; i++) {
		const struct suite_cache *c = &S.cache[i];

		printf("%12.1f %10" PRIu64 " %9u %14" PRIu64 " %12" PRIu64 " %14" PRIu64
		       " %12" PRIu64 " %10.1f\n", (double)c->volume_size / 1048576.0, c->grains,
		       c->split_run, c->bytes[V_CACHE], c->ranges[V_CACHE], c->bytes[V_NOMERGE],
		       c->ranges[V_NOMERGE],
		       c->ranges[V_CACHE] ? (double)c->bytes[V_CACHE] / (double)c->ranges[V_CACHE]
					  : NAN);
	}
	/* the JSON: the points as a plain run writes them, "params" the last
	 * point's (each point's volume size and split run: suite.json's
	 * cache_points) */
	hb_json_write(pts, S.ncache, opt.json);
	plot_cache();
	for (unsigned i = 0; i < S.ncache; i++)
		free(pts[i]);
	opt = S.base;
	phase_end(t0);
}

/* ----------------------------------------------------------- summary */

/* The device floor of series c from perftest's figures (ns -> usec),
 * composed the way hb_floor_of composes the transport's own floor: a READ
 * = ib_read_lat; CAS+READ posted together = the longer of the two; the
 * lock word's CAS+READ then release CAS = that plus ib_atomic_lat; a
 * message round trip = 2 x ib_send_lat (perftest's send figure is half a
 * round trip); plus the mover (the volumes-only I/O measured in the run).
 * NAN when a figure it needs was not given. */
static double device_floor(const struct hb_point *pt, unsigned c)
{
	double cas = opt.ref_ns[REF_ATOMIC] / 1e3, rd = opt.ref_ns[REF_READ] / 1e3;
	double msg = 2 * opt.ref_ns[REF_SEND] / 1e3;
	double mover = hb_t_typical(&pt->st_all[V_VOLUME]);
	double casrd = cas > rd ? cas : rd, lock = casrd + cas;

	if (!opt.ref_ns[REF_ATOMIC])
		cas = casrd = lock = NAN;
	if (!opt.ref_ns[REF_READ])
		rd = casrd = lock = NAN;
	if (!opt.ref_ns[REF_SEND])
		msg = NAN;
	if (c >= C_N) {
		switch ((c - C_N) % PT_BASE_N) {
		case PT_SPLIT_LOCK: return rd + casrd;
		case PT_SPLIT_COMMIT: return msg;
		default: return rd + casrd + msg;
		}
	}
	switch (c % C_BASE_N) {
	case C_HIT:
	case C_SRCREAD: return mover;
	case C_MISS: return rd + mover;
	case C_REDIRECT: return 2 * rd + mover;
	case C_LOCKRACE:
	case C_SPLIT: return lock + msg + mover;
	default: return NAN;
	}
}

/* the transport's raw ops beside the device's (NAN: a figure not given) */
static double device_op(unsigned f)
{
	double cas = opt.ref_ns[REF_ATOMIC] ? opt.ref_ns[REF_ATOMIC] / 1e3 : NAN;
	double rd = opt.ref_ns[REF_READ] ? opt.ref_ns[REF_READ] / 1e3 : NAN;
	double msg = opt.ref_ns[REF_SEND] ? 2 * opt.ref_ns[REF_SEND] / 1e3 : NAN;
	double casrd = isnan(cas) || isnan(rd) ? NAN : cas > rd ? cas : rd;

	switch (f) {
	case F_READ: return rd;
	case F_CASRD: return casrd;
	case F_CASRD_CAS: return casrd + cas;
	case F_CAS: return cas;
	case F_MSG: return msg;
	default: return NAN;
	}
}

static const char *const device_op_name[F_N] = {
	"ib_read_lat 64 B", "max(atomic, read)", "max(atomic, read) + atomic",
	"ib_atomic_lat", "2 x ib_send_lat",
};

/* the rows of the summary: the engine with its cache, every path and part
 * the I/O run saw (not hot: the hot mapping's are in io.txt) */
static const unsigned summary_rows[] = {
	C_HIT, C_MISS, C_REDIRECT, C_LOCKRACE, C_N + PT_RACE_LOCK, C_SPLIT,
	C_N + PT_SPLIT_LOCK, C_N + PT_SPLIT_COMMIT, C_SRCREAD,
};

static void row_label(unsigned c, char *out, size_t cap)
{
	if (c < C_N)
		snprintf(out, cap, "%s", hb_class_name[c]);
	else
		snprintf(out, cap, "%s", hb_part_name[c - C_N]);
}

static void row_key(unsigned c, char *out, size_t cap)
{
	snprintf(out, cap, "%s", c < C_N ? hb_class_key[c] : hb_part_key[c - C_N]);
}

static void summary_print(FILE *f, const char *la0, const char *la1, double elapsed)
{
	const struct hb_point *pt = S.io;
	bool dev = opt.ref_ns[0] || opt.ref_ns[1] || opt.ref_ns[2];
	struct hb_machine m;

	hb_machine(&m);
	fprintf(f, "== flashmeta-bench --suite: %s\n", S.dir);
	fprintf(f, "machine: %ld CPUs (%s), %s, host %s; transport %s%s%s\n", m.cpus, m.model,
		m.kernel, m.host, opt.provider, opt.device ? ", device " : "",
		opt.device ? opt.device : "");
	fprintf(f, "load average %s before, %s after; the suite took %.1f s\n", la0, la1,
		elapsed);
	if (dev)
		fprintf(f, "device floor (perftest on the same device, t_typical, given by "
			   "--ref-*-ns): ib_atomic_lat %.0f ns, ib_read_lat %.0f ns, "
			   "ib_send_lat %.0f ns (one-way)\n",
			opt.ref_ns[REF_ATOMIC], opt.ref_ns[REF_READ], opt.ref_ns[REF_SEND]);
	fprintf(f, "\nthe I/O run (split %g%%), engine with its cache: each path beside its "
		   "floor, t_typical [usec]\n", pt->split_pct);
	fprintf(f, "%-34s %10s %-26s %9s %7s", "path", "path", "transport floor", "", "ratio");
	if (dev)
		fprintf(f, " %9s %7s", "device", "ratio");
	fprintf(f, "\n%-34s %10s %-26s %9s %7s", "", "[usec]", "", "[usec]", "[x]");
	if (dev)
		fprintf(f, " %9s %7s", "[usec]", "[x]");
	fprintf(f, "\n");
	for (unsigned i = 0; i < sizeof(summary_rows) / sizeof(summary_rows[0]); i++) {
		unsigned c = summary_rows[i];
		const char *fname;
		char label[64];
		double p = hb_t_typical(&pt->st[V_CACHE][c]), fl;

		if (!pt->st[V_CACHE][c].st.n)
			continue;
		fl = hb_floor_of(pt, c, &fname);
		row_label(c, label, sizeof(label));
		fprintf(f, "%-34s %10.2f %-26s %9.2f %7.2f", label, p, fname, fl, p / fl);
		if (dev) {
			double d = device_floor(pt, c);

			fprintf(f, " %9.2f %7.2f", d, p / d);
		}
		fprintf(f, "\n");
	}
	fprintf(f, "\nthe transport's raw ops (the floor units of the I/O run), t_typical "
		   "[usec]\n");
	for (unsigned op = 0; op < F_N; op++) {
		double v = hb_t_typical(&pt->st_f[op]);

		fprintf(f, "%-34s %10.2f", hb_floor_name[op], v);
		if (dev) {
			double d = device_op(op);

			fprintf(f, " %-26s %9.2f %7.2f", device_op_name[op], d, v / d);
		}
		fprintf(f, "\n");
	}
	fprintf(f, "\nI/Os/s of the I/O run (typical of the rounds): cache %.0f, no cache %.0f, "
		   "no merge %.0f, volumes only %.0f\n", pt->iops_typ[V_CACHE],
		pt->iops_typ[V_NOCACHE], pt->iops_typ[V_NOMERGE], pt->iops_typ[V_VOLUME]);
	if (opt.triggers) {
		fprintf(f, "\ntrigger and release round trip (the I/O run: %" PRIu64 " cycles under "
			   "the cache engine's I/O, %u holders), one control command each [usec]\n",
			pt->trig_cycles, HB_SETS * opt.clients);
		fprintf(f, "%-34s %10s %10s %10s %10s\n", "command", "t_min", "t_typical", "99%",
			"99.9%");
		for (unsigned t = 0; t < T_N; t++) {
			const struct series_stats *st = &pt->st_t[t];

			if (st->st.n)
				fprintf(f, "%-34s %10.2f %10.2f %10.2f %10.2f\n", hb_trig_name[t],
					st->st.min, hb_t_typical(st), st->st.p99, st->st.p999);
		}
		fprintf(f, "%-34s %10.2f %10.2f %10.2f %10.2f\n", "floor: message round trip",
			pt->st_f[F_MSG].st.min, hb_t_typical(&pt->st_f[F_MSG]),
			pt->st_f[F_MSG].st.p99, pt->st_f[F_MSG].st.p999);
		fprintf(f, "(each of prepare, start, stop waits for one release round trip; the owner "
			   "reports no revoke time, so the command is timed)\n");
	}
	fprintf(f, "\noperations per I/O of the I/O run (READ, CAS one-sided; msgs two-sided; "
		   "io.txt has the parts)\n");
	fprintf(f, "%-34s %10s %8s %8s %12s %12s\n", "variant", "I/Os", "READ", "CAS",
		"msgs client", "msgs owner");
	for (unsigned v = 0; v < HB_SETS; v++) {
		struct hb_ops o;

		hb_ops_of(pt, v, &o);
		fprintf(f, "%-34s %10" PRIu64 " %8.3f %8.3f %12.3f %12.3f\n", hb_variant_name[v],
			o.ios, o.reads, o.cas, o.client_msgs, o.owner_msgs);
	}
	fprintf(f, "\ncache bytes at the end (the cache phase; every client's summed):\n");
	for (unsigned i = 0; i < S.ncache; i++)
		fprintf(f, "  volume %8.1f MiB, runs of %3u grains: %10" PRIu64 " B in %8" PRIu64
			   " ranges (no merge: %10" PRIu64 " B in %8" PRIu64 ")\n",
			(double)S.cache[i].volume_size / 1048576.0, S.cache[i].split_run,
			S.cache[i].bytes[V_CACHE], S.cache[i].ranges[V_CACHE],
			S.cache[i].bytes[V_NOMERGE], S.cache[i].ranges[V_NOMERGE]);
	fprintf(f, "\nfloors: 'transport floor' = the raw transport ops measured in the same run "
		   "(fm_lane on a floor server,\n interleaved with the variants) plus the mover; "
		   "'device' = perftest's figures on the same device,\n composed the same way (a "
		   "READ = ib_read_lat, CAS+READ together = the longer, release = one more\n "
		   "atomic, a message round trip = 2 x ib_send_lat) plus the mover.  The tables of "
		   "every phase are in\n its .txt file, every figure in suite.json.  Nothing here "
		   "is asserted.\n");
}

static void json_write(int argc, char **argv, const char *la0, const char *la1,
		       double elapsed)
{
	static const char *const phases[] = { "io", "split", "contention", "cache" };
	const struct hb_point *pt = S.io;
	char path[700], cmd[2048] = "";
	struct fm_jw w;
	FILE *f;

	for (int i = 0; i < argc; i++) {
		size_t l = strlen(cmd);

		snprintf(cmd + l, sizeof(cmd) - l, "%s%s", i ? " " : "", argv[i]);
	}
	path_in(path, sizeof(path), "suite.json");
	f = fopen(path, "w");
	if (!f)
		hb_die(-errno, "%s", path);
	fm_jw_init(&w, f);
	fm_jw_obj(&w, NULL);
	fm_jw_str(&w, "benchmark", "flashmeta-bench");
	fm_jw_str(&w, "mode", "suite");
	fm_jw_u64(&w, "format", 1);
	fm_jw_str(&w, "command", cmd);
	fm_jw_str(&w, "results_dir", S.dir);
	fm_jw_num(&w, "elapsed_s", elapsed);
	hb_json_params(&w);
	hb_json_machine(&w, la0, la1);
	fm_jw_obj(&w, "device_floor");
	fm_jw_str(&w, "source", "perftest t_typical on the same device, given by --ref-*-ns");
	fm_jw_num(&w, "ib_atomic_lat_ns", opt.ref_ns[REF_ATOMIC] ? opt.ref_ns[REF_ATOMIC] : NAN);
	fm_jw_num(&w, "ib_read_lat_ns", opt.ref_ns[REF_READ] ? opt.ref_ns[REF_READ] : NAN);
	fm_jw_num(&w, "ib_send_lat_ns", opt.ref_ns[REF_SEND] ? opt.ref_ns[REF_SEND] : NAN);
	fm_jw_str(&w, "composition", "READ = read; CAS+READ = max(atomic, read); lock = that + "
				     "atomic; message round trip = 2 x send; plus the mover");
	fm_jw_end(&w);
	fm_jw_arr(&w, "summary");
	for (unsigned i = 0; i < sizeof(summary_rows) / sizeof(summary_rows[0]); i++) {
		unsigned c = summary_rows[i];
		const char *fname;
		char key[48];
		double p = hb_t_typical(&pt->st[V_CACHE][c]), fl, d;

		if (!pt->st[V_CACHE][c].st.n)
			continue;
		fl = hb_floor_of(pt, c, &fname);
		d = device_floor(pt, c);
		row_key(c, key, sizeof(key));
		fm_jw_obj(&w, NULL);
		fm_jw_str(&w, "case", key);
		fm_jw_str(&w, "variant", hb_variant_key[V_CACHE]);
		fm_jw_str(&w, "unit", "usec");
		fm_jw_num(&w, "t_typical", p);
		fm_jw_str(&w, "floor", fname);
		fm_jw_num(&w, "floor_t_typical", fl);
		fm_jw_num(&w, "ratio_to_floor", p / fl);
		fm_jw_num(&w, "device_floor_t_typical", d);
		fm_jw_num(&w, "ratio_to_device_floor", p / d);
		fm_jw_end(&w);
	}
	fm_jw_end(&w);
	fm_jw_arr(&w, "transport_ops");
	for (unsigned op = 0; op < F_N; op++) {
		double v = hb_t_typical(&pt->st_f[op]), d = device_op(op);

		fm_jw_obj(&w, NULL);
		fm_jw_str(&w, "case", hb_floor_key[op]);
		fm_jw_num(&w, "t_typical", v);
		fm_jw_str(&w, "device_op", device_op_name[op]);
		fm_jw_num(&w, "device_t_typical", d);
		fm_jw_num(&w, "ratio_to_device", v / d);
		fm_jw_end(&w);
	}
	fm_jw_end(&w);
	fm_jw_arr(&w, "ops_per_io");
	for (unsigned v = 0; v < HB_SETS; v++) {
		struct hb_ops o;

		hb_ops_of(pt, v, &o);
		fm_jw_obj(&w, NULL);
		fm_jw_str(&w, "variant", hb_variant_key[v]);
		fm_jw_u64(&w, "ios", o.ios);
		fm_jw_num(&w, "reads", o.reads);
		fm_jw_num(&w, "cas", o.cas);
		fm_jw_num(&w, "client_msgs", o.client_msgs);
		fm_jw_num(&w, "owner_msgs", o.owner_msgs);
		fm_jw_end(&w);
	}
	fm_jw_end(&w);
	fm_jw_obj(&w, "triggers");
	fm_jw_u64(&w, "cycles", pt->trig_cycles);
	fm_jw_u64(&w, "holders", opt.triggers ? HB_SETS * opt.clients : 0);
	fm_jw_num(&w, "msg_rtt_t_typical", hb_t_typical(&pt->st_f[F_MSG]));
	fm_jw_arr(&w, "commands");
	for (unsigned t = 0; opt.triggers && t < T_N; t++) {
		const struct series_stats *st = &pt->st_t[t];

		fm_jw_obj(&w, NULL);
		fm_jw_str(&w, "case", hb_trig_key[t]);
		fm_jw_str(&w, "unit", "usec");
		fm_jw_u64(&w, "n", st->st.n);
		fm_jw_num(&w, "t_min", st->st.n ? st->st.min : NAN);
		fm_jw_num(&w, "t_typical", hb_t_typical(st));
		fm_jw_num(&w, "p99", st->st.n ? st->st.p99 : NAN);
		fm_jw_num(&w, "p99_9", st->st.n ? st->st.p999 : NAN);
		fm_jw_end(&w);
	}
	fm_jw_end(&w);
	fm_jw_end(&w);
	fm_jw_arr(&w, "cache_points");
	for (unsigned i = 0; i < S.ncache; i++) {
		const struct suite_cache *c = &S.cache[i];

		fm_jw_obj(&w, NULL);
		fm_jw_u64(&w, "volume_size", c->volume_size);
		fm_jw_u64(&w, "grains", c->grains);
		fm_jw_u64(&w, "split_run", c->split_run);
		for (unsigned s = 0; s < HB_SETS; s++) {
			char k[48];

			snprintf(k, sizeof(k), "bytes_%s", hb_variant_key[s]);
			fm_jw_u64(&w, k, c->bytes[s]);
			snprintf(k, sizeof(k), "ranges_%s", hb_variant_key[s]);
			fm_jw_u64(&w, k, c->ranges[s]);
		}
		fm_jw_end(&w);
	}
	fm_jw_end(&w);
	fm_jw_bool(&w, "gnuplot", S.gnuplot);
	fm_jw_obj(&w, "phases");
	for (unsigned i = 0; i < sizeof(phases) / sizeof(phases[0]); i++) {
		char name[64], p[700];

		snprintf(name, sizeof(name), "%s.json", phases[i]);
		path_in(p, sizeof(p), name);
		if (fm_jw_file(&w, phases[i], p))
			fprintf(stderr, "flashmeta-bench: suite: %s missing\n", p);
	}
	fm_jw_end(&w);
	fm_jw_end(&w);
	if (fclose(f))
		hb_die(-EIO, "%s", path);
}

void hb_suite_run(struct fm_bench_owner *o, pid_t *floor_pid, int argc, char **argv)
{
	char la0[64], la1[64], path[700];
	double t0 = now_s(), elapsed;
	FILE *f;

	S.base = opt;
	S.gnuplot = system("command -v gnuplot >/dev/null 2>&1") == 0;
	folder_make();
	S.saved_stdout = dup(STDOUT_FILENO);
	if (S.saved_stdout < 0)
		hb_die(-errno, "dup");
	fm_loadavg(la0, sizeof(la0));
	printf("suite: results in %s; load average %s\n", S.dir, la0);
	if (!S.gnuplot)
		printf("suite: gnuplot is missing: tables, JSON and the plots' data and scripts "
		       "only, no PNG (Debian: gnuplot-nox)\n");

	phase_io();
	phase_split();
	phase_contention(o, floor_pid);
	phase_cache();

	fm_loadavg(la1, sizeof(la1));
	elapsed = now_s() - t0;
	path_in(path, sizeof(path), "summary.txt");
	f = fopen(path, "w");
	if (!f)
		hb_die(-errno, "%s", path);
	summary_print(f, la0, la1, elapsed);
	if (fclose(f))
		hb_die(-EIO, "%s", path);
	summary_print(stdout, la0, la1, elapsed);
	json_write(argc, argv, la0, la1, elapsed);
	printf("\nsuite: %s/summary.txt, %s/suite.json; elapsed %.1f s\n", S.dir, S.dir,
	       elapsed);
	free(S.io);
	S.io = NULL;
	close(S.saved_stdout);
}
