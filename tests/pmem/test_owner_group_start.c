/* test_owner_group_start.c -- the owner daemon meets a pool left by an
 * owner killed between two members' STARTs of a group start.
 *
 *   it_owner_group_start --owner PATH --tool PATH-OF-flashmeta-pmem
 *
 * test_pmem_group shows that the store's group start, cut off before any
 * of its drains, leaves only states its open completes.  This is the
 * other half, through the real daemon: the pool is put in exactly the
 * state of a kill after the commit point and the lead member's START, and
 * before the second member's -- the lead (map 1, the lowest id) COPYING at
 * generation 1 with GROUP_PENDING, map 2 still PREPARED at generation 0 --
 * by writing that slot image (checksummed) over the pool's.  The owner is
 * started on it: before it answers anything, both members must be COPYING
 * at generation 1 (the store's open completed the start before the owner
 * served anyone), and the pool must hold no pending flag afterwards.
 * Before the owner, `flashmeta-pmem check` must call the pool pending
 * (exit 1, naming the group) and `dump` show the flag.
 * Without the completion the owner would serve map 2 at its old image.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "flashmeta/error.h"
#include "flashmeta/pmem_store.h"
#include "format.h"
#include "svc_util.h"

#define GRAIN 4096u
#define VOL ((uint64_t)GRAIN * 64)

static int make_pool(struct svc *s, uint32_t *lead_slot)
{
	struct fm_store_config cfg = { .max_mappings = 8, .max_grains = 65536 };
	struct fm_store *st;
	struct fm_store_map_info info;
	struct fm_mapping m;

	CHECK(fm_store_create(&st, s->pool, &cfg) == 0);
	for (uint64_t id = 1; id <= 2; id++) {
		CHECK(fm_mapping_init(&m, id, id, 10 + id, VOL, GRAIN) == 0);
		CHECK(fm_store_map_create(st, &m) == 0);
		CHECK(fm_store_map_transition(st, id, FM_MAP_EV_PREPARE, NULL) == 0);
		CHECK(fm_store_map_transition(st, id, FM_MAP_EV_PREPARE_DONE, NULL) == 0);
		CHECK(fm_store_map_set_group(st, id, 5) == 0);
	}
	CHECK(fm_store_map_get(st, 1, &info) == 0);
	*lead_slot = info.slot;
	fm_store_close(&st);
	return 0;
}

/* the lead's slot as the kill left it: START applied, GROUP_PENDING set */
static int cut_after_lead(struct svc *s, uint32_t slot)
{
	struct fm_slot_media sm;
	struct fm_slot sl;
	off_t off = FM_TABLE_OFF + (off_t)slot * FM_SLOT_SIZE;
	int fd = open(s->pool, O_RDWR);

	CHECK(fd >= 0);
	CHECK(pread(fd, &sm, sizeof(sm), off) == (ssize_t)sizeof(sm));
	fm_slot_decode(&sl, &sm);
	CHECK(sl.m.id == 1 && sl.m.state == FM_MAP_PREPARED && sl.group == 5);
	CHECK(fm_mapping_apply(&sl.m, FM_MAP_EV_START) == 0);
	CHECK(sl.m.state == FM_MAP_COPYING && sl.m.generation == 1);
	sl.flags |= FM_SLOT_GROUP_PENDING;
	fm_slot_encode(&sm, &sl);
	CHECK(pwrite(fd, &sm, sizeof(sm), off) == (ssize_t)sizeof(sm));
	CHECK(fsync(fd) == 0);
	close(fd);
	return 0;
}

static const char *g_tool;

/* `flashmeta-pmem ARGS POOL` into out; its exit status */
static int tool(struct svc *s, const char *cmd, char *out, size_t cap)
{
	char line[1200], path[400];
	FILE *f;
	size_t n;
	int st;

	snprintf(path, sizeof(path), "%s/tool.out", s->dir);
	snprintf(line, sizeof(line), "'%s' %s '%s' >'%s' 2>&1", g_tool, cmd, s->pool, path);
	st = system(line);
	f = fopen(path, "r");
	n = f ? fread(out, 1, cap - 1, f) : 0;
	out[n] = '\0';
	if (f)
		fclose(f);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static int run(struct svc *s)
{
	struct fm_store *st;
	struct fm_store_map_info info;
	struct fm_store_stats ss;
	char out[8192];
	uint32_t lead;

	CHECK(make_pool(s, &lead) == 0);
	CHECK(cut_after_lead(s, lead) == 0);
	CHECK(tool(s, "check", out, sizeof(out)) == 1);
	fprintf(stderr, "%s", out);
	CHECK(strstr(out, "pending: group start of group 5 (lead slot "));
	CHECK(tool(s, "dump", out, sizeof(out)) == 0);
	CHECK(strstr(out, " 5 group-start-pending\n"));
	svc_owner_start(s);
	CHECK(svc_ctl(s, out, sizeof(out), "group-show 5") == 0);
	fprintf(stderr, "%s", out);
	CHECK(strstr(out, "group 5 members 2 maps 1,2 states copying,copying operation -\n"));
	for (int m = 1; m <= 2; m++) {
		CHECK(svc_ctl(s, out, sizeof(out), "map-show %d", m) == 0);
		CHECK(strstr(out, " state copying generation 1 split 0 served-generation 1 "));
	}
	svc_owner_kill(s, SIGTERM);
	/* the pool is clean: no pending flag, nothing to complete again */
	CHECK(fm_store_open(&st, s->pool, NULL) == 0);
	fm_store_stats(st, &ss);
	CHECK(ss.recovered_groups == 0);
	CHECK(fm_store_map_get(st, 2, &info) == 0 && info.map.state == FM_MAP_COPYING);
	fm_store_close(&st);
	return 0;
}

int main(int argc, char **argv)
{
	struct svc s;
	int rc;

	for (int i = 1; i + 1 < argc; i++)
		if (!strcmp(argv[i], "--tool"))
			g_tool = argv[i + 1];
	if (!g_tool) {
		fprintf(stderr, "usage: it_owner_group_start --owner PATH --tool PATH\n");
		return 2;
	}
	svc_init(&s, argc, argv, "group-start");
	rc = run(&s);
	rc |= svc_fini(&s);
	fprintf(stderr, "owner group start recovery: %s\n", rc ? "FAIL" : "PASS");
	return rc ? 1 : 0;
}
