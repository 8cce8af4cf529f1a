/* procstat.c -- a process's CPU time and the load average from /proc
 * (see procstat.h). */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "procstat.h"

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* a tid, mixed so that a sum of them changes when the set does */
static uint64_t mix(uint64_t x)
{
	x ^= x >> 33;
	x *= UINT64_C(0xff51afd7ed558ccd);
	x ^= x >> 33;
	return x;
}

int fm_proc_cpu_sample(pid_t pid, struct fm_proc_cpu *s)
{
	char path[64], buf[1024], *p;
	unsigned long long ut, st;
	struct dirent *de;
	size_t n;
	FILE *f;
	DIR *d;

	memset(s, 0, sizeof(*s));
	s->wall_ns = now_ns();
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	f = fopen(path, "re");
	if (!f)
		return -errno;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = 0;
	/* comm, field 2, may hold spaces and ')': fields 3.. follow the last
	 * ')'; utime and stime are fields 14 and 15 */
	p = strrchr(buf, ')');
	if (!p || sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu",
			 &ut, &st) != 2)
		return -EPROTO;
	s->utime = ut;
	s->stime = st;
	s->ticks = ut + st;
	s->ok = true;

	snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
	d = opendir(path);
	if (!d)
		return 0;
	s->have_sched = true;
	while ((de = readdir(d))) {
		char sp[128];
		unsigned long long ns;

		if (de->d_name[0] == '.')
			continue;
		snprintf(sp, sizeof(sp), "%s/%.32s/schedstat", path, de->d_name);
		f = fopen(sp, "re");
		if (!f || fscanf(f, "%llu", &ns) != 1)
			s->have_sched = false;
		else
			s->sched_ns += ns;
		if (f)
			fclose(f);
		s->nthreads++;
		s->tids += mix(strtoull(de->d_name, NULL, 10));
	}
	closedir(d);
	return 0;
}

void fm_proc_cpu_delta(const struct fm_proc_cpu *a, const struct fm_proc_cpu *b,
		       struct fm_proc_cpu *d)
{
	memset(d, 0, sizeof(*d));
	if (!a->ok || !b->ok)
		return;
	d->ok = true;
	d->utime = b->utime - a->utime;
	d->stime = b->stime - a->stime;
	d->ticks = b->ticks - a->ticks;
	d->wall_ns = b->wall_ns - a->wall_ns;
	d->nthreads = b->nthreads;
	/* the same threads at both ends, else the sum lost an ended one */
	if (a->have_sched && b->have_sched && a->nthreads == b->nthreads &&
	    a->tids == b->tids && b->sched_ns >= a->sched_ns) {
		d->have_sched = true;
		d->sched_ns = b->sched_ns - a->sched_ns;
	}
}

double fm_proc_cpu_ticks_ms(const struct fm_proc_cpu *d)
{
	return (double)d->ticks * 1000.0 / (double)sysconf(_SC_CLK_TCK);
}

double fm_proc_cpu_ms(const struct fm_proc_cpu *d)
{
	return d->have_sched ? (double)d->sched_ns / 1e6 : fm_proc_cpu_ticks_ms(d);
}

double fm_proc_ticks_s(uint64_t ticks)
{
	return (double)ticks / (double)sysconf(_SC_CLK_TCK);
}

void fm_loadavg(char *out, size_t cap)
{
	FILE *f = fopen("/proc/loadavg", "re");
	double a = 0, b = 0, c = 0;

	if (!f || fscanf(f, "%lf %lf %lf", &a, &b, &c) != 3)
		snprintf(out, cap, "unknown");
	else
		snprintf(out, cap, "%.2f %.2f %.2f", a, b, c);
	if (f)
		fclose(f);
}
