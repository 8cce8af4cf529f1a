/* demo_host.c -- flashmeta-demo: what the host says about the run -- a
 * process's CPU time from /proc, this process's own (getrusage), and the
 * RDMA devices it has.
 *
 * CPU time of another process (the owner): utime + stime of
 * /proc/PID/stat, in clock ticks (sysconf(_SC_CLK_TCK), 100 Hz on most
 * kernels: 10 ms a tick, coarse for a 3 s phase), which counts every
 * thread the process ever had; and, where the kernel keeps it, the sum of
 * the first field of /proc/PID/task/TID/schedstat (ns on a CPU, exact, but
 * only of the threads alive at the sample: a thread that ends between two
 * samples takes its time with it -- demo_cpu_delta then drops the figure).
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <ifaddrs.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "demo.h"
#include "flashmeta/error.h"

int demo_cpu_sample(pid_t pid, struct demo_cpu *s)
{
	char path[64], buf[1024], *p;
	unsigned long long ut, st;
	struct dirent *de;
	size_t n;
	FILE *f;
	DIR *d;

	memset(s, 0, sizeof(*s));
	s->wall_ns = demo_now_ns();
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
	s->user_s = (double)ut / (double)sysconf(_SC_CLK_TCK);
	s->sys_s = (double)st / (double)sysconf(_SC_CLK_TCK);
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
		s->tids += demo_mix(strtoull(de->d_name, NULL, 10));
	}
	closedir(d);
	return 0;
}

void demo_cpu_self(struct demo_cpu *s)
{
	struct rusage ru;

	memset(s, 0, sizeof(*s));
	s->wall_ns = demo_now_ns();
	if (getrusage(RUSAGE_SELF, &ru))
		return;
	s->user_s = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6;
	s->sys_s = (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
	s->ok = true;
}

void demo_cpu_delta(const struct demo_cpu *a, const struct demo_cpu *b, struct demo_cpu *d)
{
	memset(d, 0, sizeof(*d));
	if (!a->ok || !b->ok)
		return;
	d->ok = true;
	d->user_s = b->user_s - a->user_s;
	d->sys_s = b->sys_s - a->sys_s;
	d->wall_ns = b->wall_ns - a->wall_ns;
	d->nthreads = b->nthreads;
	/* the same threads at both ends, else the sum lost an ended one */
	if (a->have_sched && b->have_sched && a->nthreads == b->nthreads &&
	    a->tids == b->tids && b->sched_ns >= a->sched_ns) {
		d->have_sched = true;
		d->sched_ns = b->sched_ns - a->sched_ns;
	}
}

unsigned demo_rdma_devices(char *names, size_t cap)
{
	DIR *d = opendir("/sys/class/infiniband");
	struct dirent *de;
	unsigned n = 0;
	size_t len = 0;

	if (cap)
		names[0] = 0;
	if (!d)
		return 0;
	while ((de = readdir(d))) {
		int w;

		if (de->d_name[0] == '.')
			continue;
		n++;
		if (len >= cap)
			continue;
		w = snprintf(names + len, cap - len, "%s%s", len ? " " : "", de->d_name);
		len += w > 0 ? (size_t)w : 0;
	}
	closedir(d);
	return n;
}

/* the IPv4 address of network interface `ifname`: 0 or -ENOENT */
static int if_ipv4(const char *ifname, char *ip, size_t cap)
{
	struct ifaddrs *ifa, *i;
	int rc = -ENOENT;

	if (getifaddrs(&ifa))
		return -errno;
	for (i = ifa; i; i = i->ifa_next)
		if (i->ifa_addr && i->ifa_addr->sa_family == AF_INET &&
		    !strcmp(i->ifa_name, ifname) &&
		    inet_ntop(AF_INET, &((struct sockaddr_in *)(void *)i->ifa_addr)->sin_addr, ip,
			      (socklen_t)cap)) {
			rc = 0;
			break;
		}
	freeifaddrs(ifa);
	return rc;
}

/* device dev's port 1 netdev with an IPv4 address: 0 or -ENOENT */
static int dev_ipv4(const char *dev, char *ip, size_t cap)
{
	char path[PATH_MAX], name[64];
	FILE *f;
	int rc = -ENOENT;

	/* RoCE: the GID table names the network device of each entry */
	for (int g = 0; g < 16 && rc; g++) {
		snprintf(path, sizeof(path), "/sys/class/infiniband/%s/ports/1/gid_attrs/ndevs/%d",
			 dev, g);
		f = fopen(path, "r");
		if (!f)
			continue;
		if (fgets(name, sizeof(name), f)) {
			name[strcspn(name, "\n")] = 0;
			if (name[0])
				rc = if_ipv4(name, ip, cap);
		}
		fclose(f);
	}
	return rc;
}

int demo_rdma_ipv4(const char *want, char *dev, size_t devcap, char *ip, size_t ipcap)
{
	DIR *d = opendir("/sys/class/infiniband");
	struct dirent *de;
	int rc = -ENODEV;

	if (!d)
		return fm_err(-ENODEV, "no RDMA device on this host");
	while (rc && (de = readdir(d))) {
		if (de->d_name[0] == '.' || (want && strcmp(want, de->d_name)))
			continue;
		if (dev_ipv4(de->d_name, ip, ipcap) == 0) {
			snprintf(dev, devcap, "%s", de->d_name);
			rc = 0;
		}
	}
	closedir(d);
	if (rc)
		return fm_err(-ENODEV, "no RDMA device%s%s with an IPv4 address on its network "
			      "device", want ? " " : "", want ? want : "");
	return 0;
}
