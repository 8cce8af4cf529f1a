/* demo_host.c -- flashmeta-demo: what the host says about the run -- a
 * process's CPU time from /proc (procstat.h: clock ticks of utime and
 * stime, schedstat ns where the kernel keeps them, 10 ms ticks being
 * coarse for a 3 s phase), this process's own (getrusage), and the RDMA
 * devices it has.
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
	int rc;

	memset(s, 0, sizeof(*s));
	rc = fm_proc_cpu_sample(pid, &s->proc);
	s->wall_ns = demo_now_ns();
	if (rc)
		return rc;
	s->ok = true;
	s->user_s = fm_proc_ticks_s(s->proc.utime);
	s->sys_s = fm_proc_ticks_s(s->proc.stime);
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
	/* schedstat: only between two samples of /proc (procstat.c says when) */
	fm_proc_cpu_delta(&a->proc, &b->proc, &d->proc);
	d->have_sched = d->proc.have_sched;
	d->sched_ns = d->proc.sched_ns;
	d->nthreads = d->proc.nthreads;
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
