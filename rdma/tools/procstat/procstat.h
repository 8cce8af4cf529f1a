/* procstat.h -- what /proc says about a process's CPU time and the
 * machine's load, for the "CPU per operation" figures of the benchmarks
 * and of flashmeta-demo (the owner's, a client process's).
 *
 * Two clocks, both taken at every sample:
 *   utime + stime of /proc/PID/stat, in clock ticks (sysconf(_SC_CLK_TCK),
 *     100 Hz on most kernels: 10 ms a tick, coarse for a short phase); it
 *     counts every thread the process ever had;
 *   the sum of the first field of /proc/PID/task/TID/schedstat over the
 *     threads alive at the sample (ns on a CPU, exact where the kernel
 *     keeps them) -- a thread that ends between two samples takes its time
 *     with it, so fm_proc_cpu_delta() keeps the ns only when the same
 *     threads were there at both ends.
 * A small library of its own (fm_procstat) because flashmeta-demo is built
 * without the benchmarks.
 */
#ifndef FM_PROCSTAT_H
#define FM_PROCSTAT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct fm_proc_cpu {
	bool ok;                /* /proc/PID/stat was read */
	uint64_t utime, stime;  /* clock ticks in user and kernel mode */
	uint64_t ticks;         /* utime + stime */
	bool have_sched;        /* sched_ns is the sum over every thread */
	uint64_t sched_ns;
	unsigned nthreads;      /* threads seen in /proc/PID/task */
	uint64_t tids;          /* a sum of mixed tids: the same threads? */
	uint64_t wall_ns;       /* CLOCK_MONOTONIC at the sample */
};

/* 0, or -errno of opening /proc/PID/stat (the process is gone: -ENOENT),
 * -EPROTO (unparsable).  Never blocks beyond reading /proc. */
int fm_proc_cpu_sample(pid_t pid, struct fm_proc_cpu *s);

/* d = b - a.  d->ok only when both are; d->have_sched only when the same
 * threads were alive at both samples. */
void fm_proc_cpu_delta(const struct fm_proc_cpu *a, const struct fm_proc_cpu *b,
		       struct fm_proc_cpu *d);

/* CPU milliseconds of a delta: schedstat ns where kept, else ticks */
double fm_proc_cpu_ms(const struct fm_proc_cpu *d);
/* ... by the ticks alone */
double fm_proc_cpu_ticks_ms(const struct fm_proc_cpu *d);

/* clock ticks as seconds (sysconf(_SC_CLK_TCK)) */
double fm_proc_ticks_s(uint64_t ticks);

/* /proc/loadavg's three figures as "1.00 0.50 0.25", or "unknown" */
void fm_loadavg(char *out, size_t cap);

#endif /* FM_BENCH_PROC_CPU_H */
