/* proc_cpu.h -- a process's CPU time from /proc, for the benchmarks'
 * "CPU per operation" figures (the owner's, a client process's).
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
 * flashmeta-demo (rdma/tools/demo/demo_host.c) keeps its own copy: it is
 * built without the benchmarks.
 */
#ifndef FM_BENCH_PROC_CPU_H
#define FM_BENCH_PROC_CPU_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

struct fm_proc_cpu {
	bool ok;                /* /proc/PID/stat was read */
	uint64_t ticks;         /* utime + stime, clock ticks */
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

#endif /* FM_BENCH_PROC_CPU_H */
