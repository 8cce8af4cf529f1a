/* flashmeta-pmem.c -- create, check, dump and (safely) repair pmem pools. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "flashmeta/error.h"
#include "flashmeta/pmem_store.h"
#include "format.h"

/* exit status */
enum {
	EX_OK = 0,          /* consistent */
	EX_PENDING = 1,     /* consistent; open (or repair) will complete a logged op */
	EX_USAGE = 2,       /* bad usage, or the file cannot be read */
	EX_NOTPOOL = 3,     /* -ENODATA, -EILSEQ: empty, truncated or foreign */
	EX_SB = 4,          /* -EBADMSG, -EINVAL: superblock corrupt */
	EX_VERSION = 5,     /* -EPROTONOSUPPORT, -EOPNOTSUPP */
	EX_LOG = 6,         /* -ENOTRECOVERABLE */
	EX_MAPPING = 7,     /* -EUCLEAN, -EDOM */
	EX_BITMAP = 8,      /* -ERANGE */
	EX_FAIL = 9,        /* an operation failed */
};

static void usage(FILE *out)
{
	fprintf(out,
"usage: flashmeta-pmem COMMAND POOL [options]\n"
"\n"
"  create POOL [--mappings N] [--max-grains G]   new pool (defaults 64, 16M)\n"
"  check POOL                  validate read-only; exit status:\n"
"      0 ok, 1 ok but a logged operation is pending (open/repair completes it),\n"
"      2 usage/unreadable, 3 not a pool (empty/truncated/foreign),\n"
"      4 superblock corrupt, 5 unsupported version/feature, 6 log corrupt,\n"
"      7 mapping record corrupt, 8 bitmap corrupt\n"
"  dump POOL [--json] [--runs N]   mappings, states, generations, split\n"
"                              counts and the first N runs of split grains\n"
"  repair POOL                 complete a pending logged operation (what open\n"
"                              would do anyway); refuses anything else\n"
"  map-create POOL --id ID --source V --target V --size BYTES [--grain BYTES]\n"
"  split POOL --id ID [--gen G] GRAIN...   set and commit split bits\n"
"  transition POOL --id ID EVENT   prepare|prepare_done|start|copy_complete|\n"
"                              stop|stop_done|restart\n"
"  --help\n");
}

static int exit_for(int err)
{
	switch (err) {
	case 0: return EX_OK;
	case -ENODATA: case -EILSEQ: return EX_NOTPOOL;
	case -EBADMSG: case -EINVAL: return EX_SB;
	case -EPROTONOSUPPORT: case -EOPNOTSUPP: return EX_VERSION;
	case -ENOTRECOVERABLE: return EX_LOG;
	case -EUCLEAN: case -EDOM: return EX_MAPPING;
	case -ERANGE: return EX_BITMAP;
	}
	return EX_USAGE;
}

/* Read-only mapping of the whole file. */
struct ro {
	uint8_t *base;
	uint64_t len;
	struct fm_check c;
	uint64_t *ids;
};

static int ro_open(struct ro *r, const char *path)
{
	struct stat st;
	int fd = open(path, O_RDONLY), ret;

	memset(r, 0, sizeof(*r));
	if (fd < 0 || fstat(fd, &st)) {
		fprintf(stderr, "%s: %s\n", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	r->len = S_ISREG(st.st_mode) ? (uint64_t)st.st_size : 0;
	if (S_ISCHR(st.st_mode)) {
		off_t end = lseek(fd, 0, SEEK_END);
		r->len = end > 0 ? (uint64_t)end : 0;
	}
	if (r->len) {
		r->base = mmap(NULL, r->len, PROT_READ, MAP_SHARED, fd, 0);
		if (r->base == MAP_FAILED) {
			fprintf(stderr, "%s: mmap: %s\n", path, strerror(errno));
			close(fd);
			return -1;
		}
	}
	close(fd);
	r->ids = malloc(FM_SLOTS_MAX * sizeof(*r->ids));
	if (!r->ids)
		return -1;
	static const uint8_t empty[1];
	ret = fm_pool_check(r->base ? r->base : empty, r->len, &r->c, r->ids);
	return ret;
}

static void ro_close(struct ro *r)
{
	if (r->base && r->len)
		munmap(r->base, r->len);
	free(r->ids);
}

static const char *op_name(uint32_t op)
{
	static const char *n[] = { "none", "create", "delete", "transition", "restart" };
	return op < FM_LOG_OP_COUNT ? n[op] : "?";
}

static int cmd_check(const char *path)
{
	struct ro r;
	int ret = ro_open(&r, path);

	if (ret == -1 && !r.ids) {
		ro_close(&r);
		return EX_USAGE;
	}
	if (ret) {
		printf("%s: CORRUPT: %s (%s)\n", path, fm_errormsg(), strerror(-ret));
		ro_close(&r);
		return exit_for(ret);
	}
	printf("%s: ok: format %" PRIu32 ".%" PRIu32 ", %" PRIu32 " of %" PRIu32
	       " slots in use, %" PRIu64 " bytes, log seq %" PRIu64 "\n", path,
	       r.c.sb.major, r.c.sb.minor, r.c.in_use, r.c.sb.slot_count,
	       r.c.sb.pool_size, r.c.applied_seq);
	if (r.c.log_pending) {
		printf("%s: pending: logged %s of slot %" PRIu32 " (seq %" PRIu64
		       ") will be completed by the next open or by `repair`\n",
		       path, op_name(r.c.rec.op), r.c.rec.slot, r.c.rec.seq);
		ro_close(&r);
		return EX_PENDING;
	}
	ro_close(&r);
	return EX_OK;
}

static int cmd_repair(const char *path)
{
	struct ro r;
	struct fm_store *s;
	int ret = ro_open(&r, path), pending = r.c.log_pending;

	ro_close(&r);
	if (ret == -1 && !r.ids)
		return EX_USAGE;
	if (ret) {
		printf("%s: refusing to repair: %s.\nOnly a pending logged operation"
		       " can be completed safely; this damage is not one, and guessing"
		       " could invent or lose split bits.  Restore from a replica.\n",
		       path, fm_errormsg());
		return exit_for(ret);
	}
	if (!pending) {
		printf("%s: clean, nothing to repair\n", path);
		return EX_OK;
	}
	ret = fm_store_open(&s, path, NULL);
	if (ret) {
		printf("%s: open failed: %s\n", path, fm_errormsg());
		return exit_for(ret);
	}
	fm_store_close(&s);
	printf("%s: completed the logged operation (same replay as open)\n", path);
	return EX_OK;
}

static void json_str(const char *s)
{
	putchar('"');
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			putchar('\\');
		putchar(*s);
	}
	putchar('"');
}

static int bit(const uint8_t *bm, uint64_t g)
{
	return (bm[g / 8] >> (g % 8)) & 1; /* LE words: byte g/8, bit g%8 */
}

static int cmd_dump(const char *path, int json, uint64_t max_runs)
{
	struct ro r;
	int ret = ro_open(&r, path), first = 1;

	if (ret) {
		if (r.ids)
			fprintf(stderr, "%s: %s\n", path, fm_errormsg());
		ro_close(&r);
		return ret == -1 ? EX_USAGE : exit_for(ret);
	}
	if (json) {
		printf("{\"pool\":");
		json_str(path);
		printf(",\"format\":\"%" PRIu32 ".%" PRIu32 "\",\"pool_size\":%" PRIu64
		       ",\"slots\":%" PRIu32 ",\"max_grains\":%" PRIu64 ",\"log_seq\":%"
		       PRIu64 ",\"log_pending\":%s,\"mappings\":[", r.c.sb.major,
		       r.c.sb.minor, r.c.sb.pool_size, r.c.sb.slot_count,
		       r.c.sb.bitmap_stride * 8, r.c.applied_seq,
		       r.c.log_pending ? "true" : "false");
	} else {
		printf("pool %s: format %" PRIu32 ".%" PRIu32 ", %" PRIu64 " bytes, %"
		       PRIu32 " slots, %" PRIu64 " grains max, log seq %" PRIu64 "%s\n",
		       path, r.c.sb.major, r.c.sb.minor, r.c.sb.pool_size,
		       r.c.sb.slot_count, r.c.sb.bitmap_stride * 8, r.c.applied_seq,
		       r.c.log_pending ? " (pending op shown as recovery completes it)" : "");
		printf("%5s %20s %10s %10s %14s %8s %-14s %6s %12s %8s\n", "slot", "id",
		       "source", "target", "volume[B]", "grain[B]", "state", "gen",
		       "split", "runs");
	}
	for (uint32_t i = 0; i < r.c.sb.slot_count; i++) {
		struct fm_slot_media sm;
		struct fm_slot s;
		int pending = r.c.log_pending && r.c.rec.slot == i;
		int cleared = pending && r.c.rec.op != FM_LOG_TRANSITION;

		if (pending)
			sm = r.c.rec.image;
		else
			memcpy(&sm, r.base + r.c.sb.table_off + (uint64_t)i * FM_SLOT_SIZE,
			       sizeof(sm));
		fm_slot_decode(&s, &sm);
		if (!s.flags)
			continue;
		const uint8_t *bm = r.base + s.bitmap_off;
		uint64_t gc = s.m.geom.grain_count, split = 0, runs = 0;
		for (uint64_t g = 0; g < gc && !cleared; g++) {
			if (bit(bm, g)) {
				split++;
				if (g == 0 || !bit(bm, g - 1))
					runs++;
			}
		}
		if (json) {
			printf("%s{\"slot\":%" PRIu32 ",\"id\":%" PRIu64 ",\"source\":%"
			       PRIu64 ",\"target\":%" PRIu64 ",\"volume_size\":%" PRIu64
			       ",\"grain_size\":%" PRIu64 ",\"grains\":%" PRIu64
			       ",\"state\":\"%s\",\"generation\":%" PRIu64 ",\"copy_rate\":%"
			       PRIu32 ",\"split\":%" PRIu64 ",\"run_count\":%" PRIu64
			       ",\"runs\":[", first ? "" : ",", i, s.m.id, s.m.source_vol,
			       s.m.target_vol, s.m.geom.volume_size,
			       fm_geom_grain_size(&s.m.geom), gc,
			       fm_map_state_name(s.m.state), s.m.generation, s.m.copy_rate,
			       split, runs);
		} else {
			printf("%5" PRIu32 " %20" PRIu64 " %10" PRIu64 " %10" PRIu64 " %14"
			       PRIu64 " %8" PRIu64 " %-14s %6" PRIu64 " %12" PRIu64 " %8"
			       PRIu64 "\n", i, s.m.id, s.m.source_vol, s.m.target_vol,
			       s.m.geom.volume_size, fm_geom_grain_size(&s.m.geom),
			       fm_map_state_name(s.m.state), s.m.generation, split, runs);
		}
		first = 0;
		uint64_t shown = 0;
		for (uint64_t g = 0; g < gc && !cleared && shown < max_runs; g++) {
			if (!bit(bm, g))
				continue;
			uint64_t end = g;
			while (end + 1 < gc && bit(bm, end + 1))
				end++;
			if (json)
				printf("%s[%" PRIu64 ",%" PRIu64 "]", shown ? "," : "", g, end);
			else
				printf("      split grains [%" PRIu64 ", %" PRIu64 "]\n", g, end);
			shown++;
			g = end;
		}
		if (json)
			printf("]}");
		else if (shown < runs)
			printf("      ... %" PRIu64 " more runs\n", runs - shown);
	}
	if (json)
		printf("]}\n");
	ro_close(&r);
	return EX_OK;
}

static int parse_event(const char *name, int *ev)
{
	if (!strcmp(name, "restart")) {
		*ev = -1;
		return 0;
	}
	for (int e = 0; e < FM_MAP_EV_COUNT; e++) {
		if (!strcmp(name, fm_map_event_name(e))) {
			*ev = e;
			return 0;
		}
	}
	return -1;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ "json", no_argument, NULL, 'j' },
		{ "runs", required_argument, NULL, 'r' },
		{ "mappings", required_argument, NULL, 'm' },
		{ "max-grains", required_argument, NULL, 'G' },
		{ "id", required_argument, NULL, 'i' },
		{ "source", required_argument, NULL, 's' },
		{ "target", required_argument, NULL, 't' },
		{ "size", required_argument, NULL, 'z' },
		{ "grain", required_argument, NULL, 'g' },
		{ "gen", required_argument, NULL, 'e' },
		{ NULL, 0, NULL, 0 },
	};
	uint64_t runs = 16, max_grains = UINT64_C(1) << 24, id = 0, src = 0, tgt = 0;
	uint64_t size = 0, grain = 0, gen = UINT64_MAX;
	uint32_t mappings = 64;
	int json = 0, have_id = 0, o;

	while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (o) {
		case 'h': usage(stdout); return 0;
		case 'j': json = 1; break;
		case 'r': runs = strtoull(optarg, NULL, 0); break;
		case 'm': mappings = (uint32_t)strtoul(optarg, NULL, 0); break;
		case 'G': max_grains = strtoull(optarg, NULL, 0); break;
		case 'i': id = strtoull(optarg, NULL, 0); have_id = 1; break;
		case 's': src = strtoull(optarg, NULL, 0); break;
		case 't': tgt = strtoull(optarg, NULL, 0); break;
		case 'z': size = strtoull(optarg, NULL, 0); break;
		case 'g': grain = strtoull(optarg, NULL, 0); break;
		case 'e': gen = strtoull(optarg, NULL, 0); break;
		default: usage(stderr); return EX_USAGE;
		}
	}
	if (argc - optind < 2) {
		usage(stderr);
		return EX_USAGE;
	}
	const char *cmd = argv[optind], *path = argv[optind + 1];
	char **rest = argv + optind + 2;
	int nrest = argc - optind - 2;

	if (!strcmp(cmd, "check"))
		return cmd_check(path);
	if (!strcmp(cmd, "dump"))
		return cmd_dump(path, json, runs);
	if (!strcmp(cmd, "repair"))
		return cmd_repair(path);

	struct fm_store *s = NULL;
	int ret;
	if (!strcmp(cmd, "create")) {
		struct fm_store_config cfg = { .max_mappings = mappings,
					       .max_grains = max_grains };
		struct fm_store_stats st;
		ret = fm_store_create(&s, path, &cfg);
		if (ret == 0) {
			fm_store_stats(s, &st);
			printf("%s: created, %" PRIu64 " bytes, %" PRIu32 " mappings of up"
			       " to %" PRIu64 " grains, persistence: %s\n", path,
			       st.pool_size, st.max_mappings, st.max_grains,
			       st.persist_mode);
		}
	} else {
		if (!have_id) {
			fprintf(stderr, "%s needs --id\n", cmd);
			return EX_USAGE;
		}
		ret = fm_store_open(&s, path, NULL);
		if (ret) {
			fprintf(stderr, "%s: %s\n", path, fm_errormsg());
			return exit_for(ret);
		}
		if (!strcmp(cmd, "map-create")) {
			struct fm_mapping m;
			ret = fm_mapping_init(&m, id, src, tgt, size, grain);
			if (ret == 0)
				ret = fm_store_map_create(s, &m);
		} else if (!strcmp(cmd, "split")) {
			struct fm_store_map_info info;
			ret = fm_store_map_get(s, id, &info);
			if (ret == 0 && gen == UINT64_MAX)
				gen = info.map.generation;
			for (int k = 0; k < nrest && ret >= 0; k++)
				ret = fm_store_split_set(s, id, gen, strtoull(rest[k], NULL, 0));
			if (ret >= 0)
				ret = fm_store_split_commit(s);
			if (ret >= 0) {
				printf("committed %d bits\n", ret);
				ret = 0;
			}
		} else if (!strcmp(cmd, "transition")) {
			int ev;
			struct fm_mapping m;
			if (nrest != 1 || parse_event(rest[0], &ev)) {
				fprintf(stderr, "transition needs one EVENT\n");
				fm_store_close(&s);
				return EX_USAGE;
			}
			if (ev < 0) {
				uint64_t g;
				ret = fm_store_map_restart(s, id, &g);
				if (!ret)
					printf("mapping %" PRIu64 ": generation %" PRIu64 "\n", id, g);
			} else {
				ret = fm_store_map_transition(s, id, (enum fm_map_event)ev, &m);
				if (!ret)
					printf("mapping %" PRIu64 ": %s, generation %" PRIu64 "\n",
					       id, fm_map_state_name(m.state), m.generation);
			}
		} else {
			fprintf(stderr, "unknown command %s\n", cmd);
			fm_store_close(&s);
			usage(stderr);
			return EX_USAGE;
		}
	}
	fm_store_close(&s);
	if (ret) {
		fprintf(stderr, "%s: %s\n", cmd, fm_errormsg());
		return EX_FAIL;
	}
	return EX_OK;
}
