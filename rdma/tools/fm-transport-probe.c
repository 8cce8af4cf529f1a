/* fm-transport-probe.c -- list transport providers, RDMA devices and what
 * each can do (atomics, FLUSH, ATOMIC_WRITE, one-sided persistence). */
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <infiniband/verbs.h>

#include "flashmeta/error.h"
#include "flashmeta/transport.h"

static void usage(FILE *f)
{
	fprintf(f,
		"usage: fm-transport-probe [--provider shm|verbs|all] [--device NAME] [--json]\n"
		"                          [--help]\n"
		"\n"
		"Lists the flashmeta transport providers compiled in and, for verbs, every\n"
		"RDMA device with the capabilities the transport detects at run time:\n"
		"  atomic       8-byte CAS/FAA on remote memory (IBV_ATOMIC_HCA or _GLOB)\n"
		"  atomic_glob  atomics also coherent with the CPU (IBV_ATOMIC_GLOB)\n"
		"  atomic_write device advertises RDMA ATOMIC_WRITE\n"
		"  flush        device advertises RDMA FLUSH\n"
		"  persist      one-sided persistence usable (FLUSH + ibv_wr_flush built in)\n"
		"Exit status: 0 listed; 1 the provider named by --provider (shm or verbs:\n"
		"none of its devices) or the device named by --device is unavailable;\n"
		"2 bad command line.\n");
}

/* a JSON string body: quotes and backslashes escaped, controls dropped */
static void json_str(const char *s)
{
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			putchar('\\');
		if ((unsigned char)*s >= 0x20)
			putchar(*s);
	}
}

/* one provider (and device): its capabilities, or why it is unavailable;
 * returns whether it is available */
static bool show(const char *provider, const char *device, bool json, bool *first)
{
	struct fm_transport_cfg cfg = {.provider = provider, .device = device};
	struct fm_transport *t;
	struct fm_caps c;
	int ret = fm_transport_new(&t, &cfg);

	if (ret) {
		if (json) {
			printf("%s{\"provider\":\"%s\",\"device\":\"", *first ? "" : ",",
			       provider);
			json_str(device ? device : "");
			printf("\",\"error\":%d,\"message\":\"", ret);
			json_str(fm_errormsg());
			printf("\"}");
		} else
			printf("%-6s %-10s unavailable: %s\n", provider, device ? device : "-",
			       fm_errormsg());
		*first = false;
		return false;
	}
	fm_transport_caps(t, &c);
	if (json) {
		printf("%s{\"provider\":\"%s\",\"device\":\"%s\",\"atomic\":%s,"
		       "\"atomic_glob\":%s,\"atomic_write\":%s,\"flush\":%s,\"persist\":%s,"
		       "\"event_fd\":%s,\"max_region_size\":%llu}",
		       *first ? "" : ",", c.provider, c.device,
		       c.flags & FM_CAP_ATOMIC ? "true" : "false",
		       c.flags & FM_CAP_ATOMIC_GLOB ? "true" : "false",
		       c.flags & FM_CAP_ATOMIC_WRITE ? "true" : "false",
		       c.flags & FM_CAP_FLUSH ? "true" : "false",
		       c.flags & FM_CAP_PERSIST ? "true" : "false",
		       c.flags & FM_CAP_EVENT_FD ? "true" : "false",
		       (unsigned long long)c.max_region_size);
	} else {
		printf("%-6s %-10s atomic=%s atomic_glob=%s atomic_write=%s flush=%s persist=%s "
		       "max_region=%llu\n",
		       c.provider, c.device, c.flags & FM_CAP_ATOMIC ? "yes" : "no",
		       c.flags & FM_CAP_ATOMIC_GLOB ? "yes" : "no",
		       c.flags & FM_CAP_ATOMIC_WRITE ? "yes" : "no",
		       c.flags & FM_CAP_FLUSH ? "yes" : "no",
		       c.flags & FM_CAP_PERSIST ? "yes" : "no",
		       (unsigned long long)c.max_region_size);
	}
	*first = false;
	fm_transport_delete(&t);
	return true;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {{"provider", required_argument, NULL, 'p'},
					     {"device", required_argument, NULL, 'd'},
					     {"json", no_argument, NULL, 'j'},
					     {"help", no_argument, NULL, 'h'},
					     {NULL, 0, NULL, 0}};
	const char *provider = "all", *device = NULL;
	bool json = false, first = true, want_shm, want_verbs;
	struct ibv_device **list;
	int o, n = 0, usable = 0;

	while ((o = getopt_long(argc, argv, "p:d:jh", opts, NULL)) != -1) {
		switch (o) {
		case 'p': provider = optarg; break;
		case 'd': device = optarg; break;
		case 'j': json = true; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	want_shm = !strcmp(provider, "all") || !strcmp(provider, "shm");
	want_verbs = !strcmp(provider, "all") || !strcmp(provider, "verbs");
	if (!want_shm && !want_verbs) {
		fprintf(stderr, "fm-transport-probe: unknown provider \"%s\"\n", provider);
		return 2;
	}
	if (optind < argc) {
		fprintf(stderr, "fm-transport-probe: unexpected argument '%s'\n", argv[optind]);
		return 2;
	}
	if (json)
		printf("[");
	/* "all" asks for nothing in particular: listing is success; a named
	 * provider or device must be there */
	if (want_shm && show("shm", NULL, json, &first) && strcmp(provider, "all"))
		usable++;
	if (want_verbs) {
		list = ibv_get_device_list(&n);
		if (device) {
			usable += show("verbs", device, json, &first);
		} else if (list == NULL || n == 0) {
			show("verbs", NULL, json, &first); /* prints "no RDMA device" */
		} else {
			for (int i = 0; i < n; i++)
				usable += show("verbs", ibv_get_device_name(list[i]), json,
					       &first) && strcmp(provider, "all");
		}
		if (list)
			ibv_free_device_list(list);
	}
	if (json)
		printf("]\n");
	return usable || (!strcmp(provider, "all") && !device) ? 0 : 1;
}
