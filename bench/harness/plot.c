/* plot.c -- flashmeta-bench --plot DIR: per run point, the latency CDF of
 * every path (cdf-split<P>.png), and over the points, throughput vs split
 * fraction (throughput-vs-split.png); with --sweep-contention, goodput vs
 * contending actors (goodput-vs-k.png).  The data (.dat, plain columns) and
 * the gnuplot scripts (.gp) are written whether or not gnuplot is there;
 * the PNGs are made by running gnuplot (Debian: gnuplot-nox) in DIR. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

static void dir_make(const char *dir)
{
	if (mkdir(dir, 0755) && errno != EEXIST)
		hb_die(-errno, "--plot %s", dir);
}

static FILE *open_in(const char *dir, const char *name)
{
	char path[1024];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "w");
	if (!f)
		hb_die(-errno, "--plot: %s", path);
	return f;
}

/* gnuplot SCRIPT in DIR; false when there is no gnuplot (or it failed) */
static bool gnuplot(const char *dir, const char *script)
{
	static int have = -1;
	int st;
	pid_t pid;

	if (have < 0)
		have = system("command -v gnuplot >/dev/null 2>&1") == 0;
	if (!have)
		return false;
	fflush(NULL);
	pid = fork();
	if (pid < 0)
		return false;
	if (pid == 0) {
		if (chdir(dir))
			_exit(127);
		execlp("gnuplot", "gnuplot", script, (char *)NULL);
		_exit(127);
	}
	if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st)) {
		fprintf(stderr, "flashmeta-bench: gnuplot %s/%s failed\n", dir, script);
		return false;
	}
	return true;
}

/* at most HB_CDF_POINTS + 1 points of the sorted samples: (latency, P[X <= x]) */
static void cdf_write(FILE *f, const struct series *se)
{
	size_t n;
	double *v = se_sorted(se, &n);

	for (unsigned i = 0; v && i <= HB_CDF_POINTS; i++) {
		size_t k = (size_t)((double)i / HB_CDF_POINTS * (double)(n - 1));

		fprintf(f, "%.4f %.6f\n", v[k], (double)(k + 1) / (double)n);
	}
	free(v);
}

void hb_plot_point(const struct hb_point *pt, const char *dir)
{
	/* a dash type per variant: cache solid, no cache dash-dot, no merge
	 * dash-dot-dot, volumes dotted; the floors dashed */
	static const int dash[V_N] = { 1, 4, 5, 3 };
	char tag[32], name[128], png[64];
	FILE *gp;
	int nplots = 0;

	dir_make(dir);
	snprintf(tag, sizeof(tag), "split%g", pt->split_pct);
	snprintf(name, sizeof(name), "cdf-%s.gp", tag);
	snprintf(png, sizeof(png), "cdf-%s.png", tag);
	gp = open_in(dir, name);
	fprintf(gp, "# flashmeta-bench: latency CDF per path, split %g%%\n"
		    "set terminal pngcairo size 1600,800 noenhanced\n"
		    "set output '%s'\n"
		    "set title 'flashmeta-bench: latency per path, split %g%% (%u clients x %u "
		    "threads, %s)'\n"
		    "set logscale x\nset grid\nset key outside right top\n"
		    "set xlabel 'latency of one I/O or operation [usec]'\n"
		    "set ylabel 'fraction <= x'\nset yrange [0:1]\n",
		    pt->split_pct, png, pt->split_pct, opt.clients, opt.threads, opt.provider);
	fprintf(gp, "plot ");
	for (unsigned v = 0; v < V_N; v++)
		for (unsigned c = 0; c < C_N; c++) {
			char dat[160];
			FILE *f;

			if (!pt->S[v][c].n)
				continue;
			snprintf(dat, sizeof(dat), "cdf-%s-%s-%s%s.dat", tag, hb_variant_key[v],
				 c >= C_BASE_N ? "hot_" : "", hb_class_key[c % C_BASE_N]);
			f = open_in(dir, dat);
			cdf_write(f, &pt->S[v][c]);
			fclose(f);
			fprintf(gp, "%s'%s' using 1:2 with lines lw 2 dt %d title '%s: %s%s'",
				nplots++ ? ", \\\n     " : "", dat, dash[v], hb_variant_key[v],
				c >= C_BASE_N ? "hot: " : "", hb_class_name[c % C_BASE_N]);
		}
	for (unsigned f = 0; f < F_N; f++) {
		char dat[160];
		FILE *df;

		if (!pt->F[f].n)
			continue;
		snprintf(dat, sizeof(dat), "cdf-%s-floor-%s.dat", tag, hb_floor_key[f]);
		df = open_in(dir, dat);
		cdf_write(df, &pt->F[f]);
		fclose(df);
		fprintf(gp, "%s'%s' using 1:2 with lines dt 2 title 'floor: %s'",
			nplots++ ? ", \\\n     " : "", dat, hb_floor_name[f]);
	}
	fprintf(gp, "\n");
	fclose(gp);
	if (nplots && gnuplot(dir, name))
		printf("plot: %s/%s\n", dir, png);
	else
		printf("plot: %s/%s and its data written (no PNG: gnuplot missing or failed)\n",
		       dir, name);
}

void hb_plot_contention(struct hb_cpoint *const *cps, unsigned n, const char *dir)
{
	FILE *d, *gp;

	dir_make(dir);
	d = open_in(dir, "contention.dat");
	fprintf(d, "# k goodput_lock goodput_spin p99_lock_usec p99_spin_usec "
		   "(goodput in acquisitions/s, typical of the rounds)\n");
	for (unsigned i = 0; i < n; i++)
		fprintf(d, "%u %.0f %.0f %.2f %.2f\n", cps[i]->k, cps[i]->good_typ[CU_LOCK],
			cps[i]->good_typ[CU_SPIN], cps[i]->st[CU_LOCK].st.p99,
			cps[i]->st[CU_SPIN].st.p99);
	fclose(d);
	gp = open_in(dir, "contention.gp");
	fprintf(gp, "# flashmeta-bench: goodput vs contending actors on one lock word\n"
		    "set terminal pngcairo size 1280,800 noenhanced\n"
		    "set output 'goodput-vs-k.png'\n"
		    "set title 'flashmeta-bench: goodput vs actors on one hot grain (%s, %ld "
		    "CPUs; typical of %u rounds)'\n"
		    "set grid\nset key outside bottom center horizontal\n"
		    "set logscale x 2\nset logscale y\n"
		    "set xlabel 'contending actors k (processes)'\n"
		    "set ylabel 'acquisitions per second'\n"
		    "plot 'contention.dat' using 1:2 with linespoints lw 2 "
		    "title 'flashmeta lock (agent)', \\\n"
		    "     'contention.dat' using 1:3 with linespoints lw 2 dt 2 "
		    "title 'plain CAS spin, no backoff'\n",
		    opt.provider, sysconf(_SC_NPROCESSORS_ONLN), opt.rounds);
	fclose(gp);
	if (gnuplot(dir, "contention.gp"))
		printf("plot: %s/goodput-vs-k.png\n", dir);
	else
		printf("plot: %s/contention.gp and its data written (no PNG: gnuplot missing or "
		       "failed)\n", dir);
}

void hb_plot_sweep(struct hb_point *const *pts, unsigned n, const char *dir)
{
	FILE *d, *gp;

	dir_make(dir);
	d = open_in(dir, "throughput.dat");
	fprintf(d, "# split_pct split_start_pct iops_cache iops_nocache iops_volume "
		   "decisions_per_s_cache decisions_per_s_nocache iops_nomerge "
		   "decisions_per_s_nomerge iops_msg decisions_per_s_msg\n");
	for (unsigned i = 0; i < n; i++)
		fprintf(d, "%g %.2f %.0f %.0f %.0f %.0f %.0f %.0f %.0f %.0f %.0f\n",
			pts[i]->split_pct, pts[i]->split_start[0], pts[i]->iops_typ[V_CACHE],
			pts[i]->iops_typ[V_NOCACHE], pts[i]->iops_typ[V_VOLUME],
			pts[i]->dps_typ[V_CACHE], pts[i]->dps_typ[V_NOCACHE],
			pts[i]->iops_typ[V_NOMERGE], pts[i]->dps_typ[V_NOMERGE],
			pts[i]->iops_typ[V_MSG], pts[i]->dps_typ[V_MSG]);
	fclose(d);
	gp = open_in(dir, "throughput.gp");
	fprintf(gp, "# flashmeta-bench: throughput vs split fraction\n"
		    "set terminal pngcairo size 1280,800 noenhanced\n"
		    "set output 'throughput-vs-split.png'\n"
		    "set title 'flashmeta-bench: throughput vs split fraction (%u clients x %u "
		    "threads, %s; typical of the rounds)'\n"
		    "set grid\nset key outside bottom center horizontal\n"
		    "set xlabel 'grains split before the measured phase [%%]'\n"
		    "set ylabel 'I/Os per second'\nset xrange [-5:105]\nset yrange [0:*]\n"
		    "plot 'throughput.dat' using 1:3 with linespoints lw 2 "
		    "title 'engine, cache', \\\n"
		    "     'throughput.dat' using 1:4 with linespoints lw 2 "
		    "title 'engine, no cache', \\\n"
		    "     'throughput.dat' using 1:8 with linespoints lw 2 "
		    "title 'engine, cache without merging', \\\n"
		    "     'throughput.dat' using 1:10 with linespoints lw 2 "
		    "title 'engine, by message (RPC per I/O)', \\\n"
		    "     'throughput.dat' using 1:5 with linespoints lw 2 dt 2 "
		    "title 'volumes only (no FlashCopy)'\n",
		    opt.clients, opt.threads, opt.provider);
	fclose(gp);
	if (gnuplot(dir, "throughput.gp"))
		printf("plot: %s/throughput-vs-split.png\n", dir);
	else
		printf("plot: %s/throughput.gp and its data written (no PNG: gnuplot missing or "
		       "failed)\n", dir);
}

bool hb_plot_gnuplot(const char *dir, const char *script)
{
	return gnuplot(dir, script);
}
