/* local.c -- floors that need no network: the clock, a CPU atomic, a
 * thread hand-off round trip, an msync of a page in the pool's directory.
 * They price the parts a commit is made of (thread wake-ups, the
 * persist), so its figure can be read against them. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>

#include "bench_agent.h"

double local_timer(void)
{
	uint64_t t0 = fm_now_ns();

	return (double)(fm_now_ns() - t0);
}

/* a C11 CAS on a word of this process: what an atomic costs the CPU */
double local_cpu_cas(void)
{
	static uint64_t word;
	uint64_t t0 = fm_now_ns(), old = word;

	__atomic_compare_exchange_n(&word, &old, old ^ 1, false, __ATOMIC_ACQ_REL,
				    __ATOMIC_ACQUIRE);
	return (double)(fm_now_ns() - t0);
}

/* ---- hand-off: wake a thread sleeping on a condvar, sleep until it
 * wakes us back (two wake-ups; what a request to the agent's protocol
 * thread and its answer cost besides the work) */
static struct {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	pthread_t th;
	bool req, done, stop, running;
} ho = { .mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER };

static void *ho_main(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&ho.mu);
	for (;;) {
		while (!ho.req && !ho.stop)
			pthread_cond_wait(&ho.cv, &ho.mu);
		if (ho.stop)
			break;
		ho.req = false;
		ho.done = true;
		pthread_cond_broadcast(&ho.cv);
	}
	pthread_mutex_unlock(&ho.mu);
	return NULL;
}

double local_handoff(void)
{
	uint64_t t0;

	if (!ho.running) {
		if (pthread_create(&ho.th, NULL, ho_main, NULL))
			ba_die(-EAGAIN, "hand-off thread");
		ho.running = true;
	}
	t0 = fm_now_ns();
	pthread_mutex_lock(&ho.mu);
	ho.req = true;
	pthread_cond_broadcast(&ho.cv);
	while (!ho.done)
		pthread_cond_wait(&ho.cv, &ho.mu);
	ho.done = false;
	pthread_mutex_unlock(&ho.mu);
	return (double)(fm_now_ns() - t0);
}

/* ---- msync: an 8-byte store into a shared file mapping, then
 * msync(MS_SYNC) of its page: what libpmem's pmem_msync does for the
 * owner's store when the pool is not DAX ("persist msync") */
static uint64_t *ms_map;

double local_msync(const char *dir)
{
	static uint64_t i;
	uint64_t t0;
	void *page;

	if (!ms_map) {
		char path[320];
		int fd;

		snprintf(path, sizeof(path), "%s/msync-floor", dir);
		fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
		if (fd < 0 || ftruncate(fd, 4096))
			ba_die(-errno, "%s", path);
		ms_map = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
		close(fd);
		if (ms_map == MAP_FAILED)
			ba_die(-errno, "mmap %s", path);
	}
	page = ms_map;
	t0 = fm_now_ns();
	ms_map[i++ % 512]++;
	if (msync(page, 4096, MS_SYNC))
		ba_die(-errno, "msync");
	return (double)(fm_now_ns() - t0);
}

void local_stop(void)
{
	if (ho.running) {
		pthread_mutex_lock(&ho.mu);
		ho.stop = true;
		pthread_cond_broadcast(&ho.cv);
		pthread_mutex_unlock(&ho.mu);
		pthread_join(ho.th, NULL);
		ho.running = false;
	}
	if (ms_map) {
		munmap(ms_map, 4096);
		ms_map = NULL;
	}
}
