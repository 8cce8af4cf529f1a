/* flashmeta-pmem.c -- create, check, dump and (safely) repair pmem pools. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "flashmeta/error.h"
#include "flashmeta/pmem_store.h"
#include "format.h"
#include "pool_file.h"

/* exit status: one per failure class (documented in usage()) */
enum {
	EX_OK = 0,          /* consistent */
	EX_PENDING = 1,     /* consistent; open (or repair) will complete a logged op
			     * or a group start */
	EX_USAGE = 2,       /* bad command line */
	EX_NOTPOOL = 3,     /* -ENODATA, -EILSEQ: empty, truncated or foreign */
	EX_SB = 4,          /* -EBADMSG, -EINVAL: superblock corrupt */
	EX_VERSION = 5,     /* -EPROTONOSUPPORT, -EOPNOTSUPP */
	EX_LOG = 6,         /* -ENOTRECOVERABLE: log block damaged */
	EX_MAPPING = 7,     /* -EUCLEAN, -EDOM, -EIDRM: mapping record corrupt or lost */
	EX_BITMAP = 8,      /* -ERANGE, -ENOTEMPTY: bitmap corrupt */
	EX_FAIL = 9,        /* an operation failed */
	EX_OWNER = 10,      /* -EBADE: owner record corrupt */
	EX_FILE = 11,       /* the file cannot be opened: missing, no permission,
			       not a regular file or device-DAX device */
	EX_BUSY = 12,       /* -EBUSY: pool in use by an owner or another writer */
};

static void usage(FILE *out)
{
	fprintf(out,
"usage: flashmeta-pmem COMMAND POOL [options]\n"
"\n"
"  create POOL [--mappings N] [--max-grains G]   new pool, format 1.4\n"
"                              (N in 1..65536, default 64; G in 1..2^46,\n"
"                              default 16777216)\n"
"  check POOL                  validate read-only (works on a pool in use)\n"
"  dump POOL [--json] [--runs N]   mappings, states, generations, split\n"
"                              counts, consistency group and flags\n"
"                              (autodelete, reversed, changed-unknown, group\n"
"                              start pending), grains changed since the\n"
"                              trigger (1.4), the first\n"
"                              N runs of split grains (default 16) and the\n"
"                              owner record; read-only\n"
"  repair POOL                 complete a pending logged operation or group\n"
"                              start (what open would do anyway); refuses\n"
"                              anything else\n"
"  map-create POOL --id ID --source V --target V --size BYTES [--grain BYTES]\n"
"  split POOL --id ID [--gen G] GRAIN...   set and commit split bits\n"
"  transition POOL --id ID EVENT   prepare|prepare_done|start|copy_complete|\n"
"                              stop|stop_done|restart\n"
"  --help\n"
"\n"
"POOL is a regular file or a device-DAX device; anything else is refused\n"
"without being opened for I/O.  Numbers are decimal, or hexadecimal with\n"
"0x; no sign, no suffix, nothing after the digits.  Writing commands\n"
"(create, repair, map-create, split, transition) take the pool's exclusive\n"
"lock and refuse while an owner or another writer has it; check and dump\n"
"read a pool in use and warn that its contents may be changing.\n"
"\n"
"exit status:\n"
"   0 ok                       7 mapping record corrupt, or one was zeroed\n"
"   1 ok, a logged operation     8 bitmap corrupt (stray bits, also in a\n"
"     or group start is            free slot)\n"
"     pending (open/repair     9 the operation failed\n"
"     completes it)\n"
"   2 bad command line        10 owner record corrupt\n"
"   3 not a pool (empty,      11 the file cannot be opened (missing, no\n"
"     truncated, foreign)        permission, not a regular file or DAX device)\n"
"   4 superblock corrupt      12 pool in use by an owner or another writer\n"
"   5 unsupported version or feature\n"
"   6 log corrupt (applied word, records, padding)\n");
}

static int exit_for(int err)
{
	switch (err) {
	case 0: return EX_OK;
	case -ENODATA: case -EILSEQ: return EX_NOTPOOL;
	case -EBADMSG: case -EINVAL: return EX_SB;
	case -EPROTONOSUPPORT: case -EOPNOTSUPP: return EX_VERSION;
	case -ENOTRECOVERABLE: return EX_LOG;
	case -EUCLEAN: case -EDOM: case -EIDRM: return EX_MAPPING;
	case -ERANGE: case -ENOTEMPTY: return EX_BITMAP;
	case -EBADE: return EX_OWNER;
	case -EBUSY: return EX_BUSY;
	case -ENOENT: case -EACCES: case -EPERM: case -EISDIR: case -ENODEV:
	case -ENOTDIR: case -ELOOP: case -ENAMETOOLONG: case -ESTALE:
	case -EROFS: case -ENXIO:
		return EX_FILE;
	}
	return EX_FAIL;
}

/* Read-only mapping of the whole file. */
struct ro {
	struct fm_pool_file pf;
	uint8_t *base;
	uint64_t len;
	struct fm_check c;
	uint64_t *ids;
	int in_use;     /* another handle holds the pool's lock */
};

/*
 * ro_open -- open read-only (never blocks, creates or changes anything),
 * map, and validate.  Returns the fm_pool_check result, or 1 when the file
 * could not be opened or mapped (message printed; exit with *ex).
 */
static int ro_open(struct ro *r, const char *path, int *ex)
{
	int ret;

	memset(r, 0, sizeof(*r));
	ret = fm_pool_file_open(&r->pf, path, 0);
	if (ret) {
		fprintf(stderr, "%s\n", fm_errormsg());
		*ex = exit_for(ret);
		return 1;
	}
	r->in_use = fm_pool_file_in_use(&r->pf) == 1;
	if (r->in_use)
		fprintf(stderr, "%s: pool is in use; contents may be changing\n", path);
	if (r->pf.is_devdax) {
		off_t end = lseek(r->pf.fd, 0, SEEK_END);
		r->len = end > 0 ? (uint64_t)end : 0;
	} else {
		r->len = (uint64_t)r->pf.st.st_size;
	}
	if (r->len) {
		r->base = mmap(NULL, r->len, PROT_READ, MAP_SHARED, r->pf.fd, 0);
		if (r->base == MAP_FAILED) {
			fprintf(stderr, "%s: mmap: %s\n", path, strerror(errno));
			r->base = NULL;
			*ex = EX_FILE;
			return 1;
		}
	}
	r->ids = malloc(FM_SLOTS_MAX * sizeof(*r->ids));
	if (!r->ids) {
		fprintf(stderr, "out of memory\n");
		*ex = EX_FAIL;
		return 1;
	}
	static const uint8_t empty[1];
	return fm_pool_check(r->base ? r->base : empty, r->len, &r->c, r->ids);
}

static void ro_close(struct ro *r)
{
	if (r->base && r->len)
		munmap(r->base, r->len);
	fm_pool_file_close(&r->pf);
	free(r->ids);
}

static const char *op_name(uint32_t op)
{
	static const char *n[] = { "none", "create", "delete", "transition", "restart",
				   "reverse" };
	return op < FM_LOG_OP_COUNT ? n[op] : "?";
}

static const char *copy_name(uint32_t k)
{
	return k ? "1" : "0";
}

/* What the format of this pool cannot tell (1.0 pools), for check. */
static void print_notes(const char *path, const struct fm_check *c)
{
	uint64_t inc = c->sb.incompat;

	if (!(inc & FM_POOL_INCOMPAT_SEQ_CHECK))
		printf("%s: note: legacy log, applied_seq not checksummed\n", path);
	if (!(inc & FM_POOL_INCOMPAT_LOG_AB))
		printf("%s: note: legacy log, slots in use not recorded (a zeroed"
		       " mapping record is found only by its leftover bits)\n", path);
	if (!(inc & FM_POOL_INCOMPAT_OWNER))
		printf("%s: note: no owner record (format %" PRIu32 ".%" PRIu32 "):"
		       " an owner must assume earlier leases may still be live\n",
		       path, c->sb.major, c->sb.minor);
}

static void print_owner(const char *path, const struct fm_check *c)
{
	if (!c->owner_known) {
		printf("%s: owner: unknown (no owner record)\n", path);
		return;
	}
	printf("%s: owner: incarnation %" PRIu64 ", hold %" PRIu32 " ms (record seq %"
	       PRIu64 " in copy %s%s)\n", path, c->owner.incarnation, c->owner.hold_ms,
	       c->owner.seq, copy_name(c->owner_copy),
	       c->owner_other_torn ? "; the other copy is torn, an update was"
	       " interrupted" : "");
}

/* The slot whose record (as recovery leaves the log's part) carries
 * GROUP_PENDING: a group start the next open completes (store.c); its
 * group in *group.  -1: none. */
static int64_t group_pending(const struct ro *r, uint64_t *group)
{
	for (uint32_t i = 0; i < r->c.sb.slot_count; i++) {
		struct fm_slot_media sm;
		struct fm_slot sl;

		if (r->c.log_pending && r->c.rec.slot == i)
			sm = r->c.rec.image;
		else
			memcpy(&sm, r->base + r->c.sb.table_off + (uint64_t)i * FM_SLOT_SIZE,
			       sizeof(sm));
		fm_slot_decode(&sl, &sm);
		if (sl.flags & FM_SLOT_GROUP_PENDING) {
			*group = sl.group;
			return i;
		}
	}
	return -1;
}

static int cmd_check(const char *path)
{
	struct ro r;
	int ex = EX_OK, ret = ro_open(&r, path, &ex);

	if (ret == 1) {
		ro_close(&r);
		return ex;
	}
	if (ret) {
		printf("%s: CORRUPT: %s (%s)\n", path, fm_errormsg(), strerror(-ret));
		ro_close(&r);
		return exit_for(ret);
	}
	printf("%s: ok: format %" PRIu32 ".%" PRIu32 " (incompat 0x%" PRIx64 "), %"
	       PRIu32 " of %" PRIu32 " slots in use, %" PRIu64 " bytes, log seq %"
	       PRIu64 "\n", path, r.c.sb.major, r.c.sb.minor, r.c.sb.incompat,
	       r.c.in_use, r.c.sb.slot_count, r.c.sb.pool_size, r.c.applied_seq);
	print_owner(path, &r.c);
	print_notes(path, &r.c);
	if (r.c.log_pending)
		printf("%s: pending: logged %s of slot %" PRIu32 " (seq %" PRIu64
		       ") will be completed by the next open or by `repair`\n",
		       path, op_name(r.c.rec.op), r.c.rec.slot, r.c.rec.seq);
	{
		uint64_t g = 0;
		int64_t lead = group_pending(&r, &g);

		if (lead >= 0)
			printf("%s: pending: group start of group %" PRIu64 " (lead slot %" PRId64
			       ") will be completed by the next open or by `repair`: every"
			       " member still prepared is started\n", path, g, lead);
		ro_close(&r);
		return r.c.log_pending || lead >= 0 ? EX_PENDING : EX_OK;
	}
}

static int cmd_repair(const char *path)
{
	struct ro r;
	struct fm_store *s;
	int ex = EX_OK, ret = ro_open(&r, path, &ex), pending = r.c.log_pending;
	int in_use = r.in_use;
	uint64_t g;

	if (ret == 0 && group_pending(&r, &g) >= 0)
		pending = 1; /* a group start the open completes */

	ro_close(&r);
	if (ret == 1)
		return ex;
	if (in_use) {
		printf("%s: refusing to repair a pool in use: stop its owner first\n",
		       path);
		return EX_BUSY;
	}
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

/* Length of the valid UTF-8 sequence at p (1..4), or 0 if invalid. */
static int utf8_len(const unsigned char *p)
{
	if (p[0] < 0x80)
		return 1;
	if (p[0] >= 0xc2 && p[0] <= 0xdf)
		return (p[1] & 0xc0) == 0x80 ? 2 : 0;
	if (p[0] >= 0xe0 && p[0] <= 0xef) {
		if ((p[1] & 0xc0) != 0x80 || (p[2] & 0xc0) != 0x80)
			return 0;
		if ((p[0] == 0xe0 && p[1] < 0xa0) || (p[0] == 0xed && p[1] > 0x9f))
			return 0; /* overlong, or a surrogate */
		return 3;
	}
	if (p[0] >= 0xf0 && p[0] <= 0xf4) {
		if ((p[1] & 0xc0) != 0x80 || (p[2] & 0xc0) != 0x80 ||
		    (p[3] & 0xc0) != 0x80)
			return 0;
		if ((p[0] == 0xf0 && p[1] < 0x90) || (p[0] == 0xf4 && p[1] > 0x8f))
			return 0;
		return 4;
	}
	return 0;
}

/* A JSON string (RFC 8259 section 7): quote, backslash and every control
 * character escaped; a byte that is not valid UTF-8 (a path may hold any)
 * becomes U+FFFD, so the output is always valid JSON text. */
static void json_str(const char *str)
{
	const unsigned char *s = (const unsigned char *)str;

	putchar('"');
	while (*s) {
		int n;

		switch (*s) {
		case '"': fputs("\\\"", stdout); s++; continue;
		case '\\': fputs("\\\\", stdout); s++; continue;
		case '\b': fputs("\\b", stdout); s++; continue;
		case '\f': fputs("\\f", stdout); s++; continue;
		case '\n': fputs("\\n", stdout); s++; continue;
		case '\r': fputs("\\r", stdout); s++; continue;
		case '\t': fputs("\\t", stdout); s++; continue;
		}
		if (*s < 0x20) {
			printf("\\u%04x", *s);
			s++;
			continue;
		}
		n = utf8_len(s);
		if (n == 0) {
			fputs("\\ufffd", stdout);
			s++;
			continue;
		}
		fwrite(s, 1, (size_t)n, stdout);
		s += n;
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
	int ex = EX_OK, ret = ro_open(&r, path, &ex), first = 1;

	if (ret) {
		if (ret != 1)
			fprintf(stderr, "%s: %s\n", path, fm_errormsg());
		ro_close(&r);
		return ret == 1 ? ex : exit_for(ret);
	}
	if (json) {
		printf("{\"pool\":");
		json_str(path);
		printf(",\"format\":\"%" PRIu32 ".%" PRIu32 "\",\"incompat\":%" PRIu64
		       ",\"pool_size\":%" PRIu64 ",\"slots\":%" PRIu32 ",\"max_grains\":%"
		       PRIu64 ",\"log_seq\":%" PRIu64 ",\"log_pending\":%s,\"in_use\":%s",
		       r.c.sb.major, r.c.sb.minor, r.c.sb.incompat, r.c.sb.pool_size,
		       r.c.sb.slot_count, r.c.sb.bitmap_stride * 8, r.c.applied_seq,
		       r.c.log_pending ? "true" : "false", r.in_use ? "true" : "false");
		if (r.c.owner_known)
			printf(",\"owner\":{\"known\":true,\"incarnation\":%" PRIu64
			       ",\"hold_ms\":%" PRIu32 ",\"seq\":%" PRIu64 ",\"copy\":%"
			       PRIu32 ",\"other_copy_torn\":%s}", r.c.owner.incarnation,
			       r.c.owner.hold_ms, r.c.owner.seq, r.c.owner_copy,
			       r.c.owner_other_torn ? "true" : "false");
		else
			printf(",\"owner\":{\"known\":false}");
		printf(",\"mappings\":[");
	} else {
		printf("pool %s: format %" PRIu32 ".%" PRIu32 ", %" PRIu64 " bytes, %"
		       PRIu32 " slots, %" PRIu64 " grains max, log seq %" PRIu64 "%s\n",
		       path, r.c.sb.major, r.c.sb.minor, r.c.sb.pool_size,
		       r.c.sb.slot_count, r.c.sb.bitmap_stride * 8, r.c.applied_seq,
		       r.c.log_pending ? " (pending op shown as recovery completes it)" : "");
		if (r.c.owner_known)
			printf("owner: incarnation %" PRIu64 ", hold %" PRIu32 " ms (record"
			       " seq %" PRIu64 ", copy %s)\n", r.c.owner.incarnation,
			       r.c.owner.hold_ms, r.c.owner.seq, copy_name(r.c.owner_copy));
		else
			printf("owner: unknown (format 1.0 pool: no owner record)\n");
		printf("%5s %20s %10s %10s %14s %8s %-14s %6s %12s %8s %10s %s\n", "slot", "id",
		       "source", "target", "volume[B]", "grain[B]", "state", "gen",
		       "split", "runs", "group", "flags");
	}
	for (uint32_t i = 0; i < r.c.sb.slot_count; i++) {
		struct fm_slot_media sm;
		struct fm_slot s;
		int pending = r.c.log_pending && r.c.rec.slot == i;
		/* a pending refresh keeps the bits not changed (shown so); the
		 * other pending ops but a transition clear the bitmaps */
		int refresh = pending && r.c.rec.op == FM_LOG_REFRESH;
		int cleared = pending && r.c.rec.op != FM_LOG_TRANSITION && !refresh;
		int ch_cleared = pending && r.c.rec.op != FM_LOG_TRANSITION;
		uint8_t *eff = NULL;

		/* a pending reverse's old slot: recovery zeroes it */
		if (r.c.log_pending && r.c.rec.op == FM_LOG_REVERSE && r.c.rec.from_slot == i)
			continue;
		if (pending)
			sm = r.c.rec.image;
		else
			memcpy(&sm, r.base + r.c.sb.table_off + (uint64_t)i * FM_SLOT_SIZE,
			       sizeof(sm));
		fm_slot_decode(&s, &sm);
		if (!s.flags)
			continue;
		const uint8_t *bm = r.base + s.bitmap_off;
		const uint8_t *ch = (r.c.sb.incompat & FM_POOL_INCOMPAT_CHANGED) ?
				    r.base + r.c.sb.changed_off + (uint64_t)i * r.c.sb.bitmap_stride :
				    NULL;
		uint64_t gc = s.m.geom.grain_count, split = 0, runs = 0, changed = 0;

		if (refresh && ch) { /* F1 as recovery will do it */
			eff = malloc(s.bitmap_len);
			if (!eff) {
				fprintf(stderr, "flashmeta-pmem: dump: out of memory\n");
				ro_close(&r);
				return EX_FAIL;
			}
			for (uint64_t k = 0; k < s.bitmap_len; k++)
				eff[k] = bm[k] & (uint8_t)~ch[k];
			bm = eff;
		}
		for (uint64_t g = 0; ch && !ch_cleared && g < gc; g++)
			changed += (uint64_t)bit(ch, g);
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
			       ",\"state\":", first ? "" : ",", i, s.m.id, s.m.source_vol,
			       s.m.target_vol, s.m.geom.volume_size,
			       fm_geom_grain_size(&s.m.geom), gc);
			json_str(fm_map_state_name(s.m.state));
			printf(",\"generation\":%" PRIu64 ",\"copy_rate\":%" PRIu32
			       ",\"autodelete\":%s,\"group\":%" PRIu64 ",\"group_start_pending\":%s"
			       ",\"reversed\":%s,\"changed_unknown\":%s,\"changed\":%" PRIu64
			       ",\"split\":%" PRIu64 ",\"run_count\":%" PRIu64 ",\"runs\":[",
			       s.m.generation, s.m.copy_rate,
			       (s.flags & FM_SLOT_AUTODELETE) ? "true" : "false", s.group,
			       (s.flags & FM_SLOT_GROUP_PENDING) ? "true" : "false",
			       (s.flags & FM_SLOT_REVERSED) ? "true" : "false",
			       (s.flags & FM_SLOT_CHANGED_UNKNOWN) ? "true" : "false", changed,
			       split, runs);
		} else {
			/* flags: autodelete, reversed (restored: source and target
			 * swapped), changed-unknown (the next refresh recopies
			 * all), group start pending (open completes it) */
			printf("%5" PRIu32 " %20" PRIu64 " %10" PRIu64 " %10" PRIu64 " %14"
			       PRIu64 " %8" PRIu64 " %-14s %6" PRIu64 " %12" PRIu64 " %8"
			       PRIu64 " %10" PRIu64 " %s%s%s%s%s\n", i, s.m.id, s.m.source_vol,
			       s.m.target_vol, s.m.geom.volume_size, fm_geom_grain_size(&s.m.geom),
			       fm_map_state_name(s.m.state), s.m.generation, split, runs, s.group,
			       (s.flags & (FM_SLOT_FLAGS_EXT | FM_SLOT_REVERSED |
					   FM_SLOT_CHANGED_UNKNOWN)) ? "" : "-",
			       (s.flags & FM_SLOT_AUTODELETE) ? "autodelete " : "",
			       (s.flags & FM_SLOT_REVERSED) ? "reversed " : "",
			       (s.flags & FM_SLOT_CHANGED_UNKNOWN) ? "changed-unknown " : "",
			       (s.flags & FM_SLOT_GROUP_PENDING) ? "group-start-pending" : "");
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
		if (!json && changed)
			printf("      %" PRIu64 " grains changed since the trigger\n", changed);
		free(eff);
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

/*
 * parse_u64 -- the whole of `str` as a number in [min, max]: decimal
 * digits, or 0x and hex digits; no sign, no blanks, no suffix.  Checked
 * for overflow while reading and for range before anyone narrows it.
 * Returns 0, or -1 after printing what was wrong.
 */
static int parse_u64(const char *what, const char *str, uint64_t min, uint64_t max,
		     uint64_t *out)
{
	const char *p = str;
	unsigned base = 10;
	uint64_t v = 0;

	if ((p[0] == '0') && (p[1] == 'x' || p[1] == 'X')) {
		base = 16;
		p += 2;
	}
	if (!*p)
		goto not_number;
	for (; *p; p++) {
		unsigned d;

		if (*p >= '0' && *p <= '9')
			d = (unsigned)(*p - '0');
		else if (base == 16 && *p >= 'a' && *p <= 'f')
			d = (unsigned)(*p - 'a' + 10);
		else if (base == 16 && *p >= 'A' && *p <= 'F')
			d = (unsigned)(*p - 'A' + 10);
		else
			goto not_number;
		if (v > (UINT64_MAX - d) / base) {
			fprintf(stderr, "%s: '%s' does not fit in 64 bits\n", what, str);
			return -1;
		}
		v = v * base + d;
	}
	if (v < min || v > max) {
		fprintf(stderr, "%s: %s is out of range [%" PRIu64 ", %" PRIu64 "]\n",
			what, str, min, max);
		return -1;
	}
	*out = v;
	return 0;
not_number:
	fprintf(stderr, "%s: '%s' is not a number (decimal, or hex with 0x)\n",
		what, str);
	return -1;
}

/* Options, as bits: which a command accepts. */
enum {
	O_JSON = 1 << 0, O_RUNS = 1 << 1, O_MAPPINGS = 1 << 2, O_MAXGRAINS = 1 << 3,
	O_ID = 1 << 4, O_SOURCE = 1 << 5, O_TARGET = 1 << 6, O_SIZE = 1 << 7,
	O_GRAIN = 1 << 8, O_GEN = 1 << 9,
};

struct command {
	const char *name;
	unsigned opts;      /* accepted */
	unsigned required;  /* must be given */
	int min_args, max_args; /* after POOL */
};

static const struct command commands[] = {
	{ "create", O_MAPPINGS | O_MAXGRAINS, 0, 0, 0 },
	{ "check", 0, 0, 0, 0 },
	{ "dump", O_JSON | O_RUNS, 0, 0, 0 },
	{ "repair", 0, 0, 0, 0 },
	{ "map-create", O_ID | O_SOURCE | O_TARGET | O_SIZE | O_GRAIN,
	  O_ID | O_SOURCE | O_TARGET | O_SIZE, 0, 0 },
	{ "split", O_ID | O_GEN, O_ID, 1, INT_MAX },
	{ "transition", O_ID, O_ID, 1, 1 },
};

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
	uint64_t size = 0, grain = 0, gen = 0, mappings = 64;
	unsigned seen = 0;
	int json = 0, o, bad = 0;
	const struct command *cmd = NULL;

	while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (o) {
		case 'h': usage(stdout); return 0;
		case 'j': json = 1; seen |= O_JSON; break;
		case 'r': bad |= parse_u64("--runs", optarg, 0, UINT64_MAX, &runs);
			  seen |= O_RUNS; break;
		case 'm': bad |= parse_u64("--mappings", optarg, 1, FM_SLOTS_MAX,
					   &mappings);
			  seen |= O_MAPPINGS; break;
		case 'G': bad |= parse_u64("--max-grains", optarg, 1, FM_POOL_SIZE_MAX,
					   &max_grains);
			  seen |= O_MAXGRAINS; break;
		case 'i': bad |= parse_u64("--id", optarg, 0, UINT64_MAX, &id);
			  seen |= O_ID; break;
		case 's': bad |= parse_u64("--source", optarg, 0, UINT64_MAX, &src);
			  seen |= O_SOURCE; break;
		case 't': bad |= parse_u64("--target", optarg, 0, UINT64_MAX, &tgt);
			  seen |= O_TARGET; break;
		case 'z': bad |= parse_u64("--size", optarg, 1, UINT64_MAX, &size);
			  seen |= O_SIZE; break;
		case 'g': bad |= parse_u64("--grain", optarg, 0, UINT64_MAX, &grain);
			  seen |= O_GRAIN; break;
		case 'e': bad |= parse_u64("--gen", optarg, 0, UINT64_MAX, &gen);
			  seen |= O_GEN; break;
		default: usage(stderr); return EX_USAGE;
		}
	}
	if (bad)
		return EX_USAGE;
	if (argc - optind < 2) {
		usage(stderr);
		return EX_USAGE;
	}
	const char *name = argv[optind], *path = argv[optind + 1];
	char **rest = argv + optind + 2;
	int nrest = argc - optind - 2;

	for (size_t k = 0; k < sizeof(commands) / sizeof(commands[0]); k++)
		if (!strcmp(name, commands[k].name))
			cmd = &commands[k];
	if (!cmd) {
		fprintf(stderr, "unknown command %s\n", name);
		usage(stderr);
		return EX_USAGE;
	}
	/* the whole command line is checked before the pool is touched */
	for (size_t k = 0; k < sizeof(opts) / sizeof(opts[0]) - 1; k++) {
		unsigned bitv = 0;
		switch (opts[k].val) {
		case 'j': bitv = O_JSON; break;
		case 'r': bitv = O_RUNS; break;
		case 'm': bitv = O_MAPPINGS; break;
		case 'G': bitv = O_MAXGRAINS; break;
		case 'i': bitv = O_ID; break;
		case 's': bitv = O_SOURCE; break;
		case 't': bitv = O_TARGET; break;
		case 'z': bitv = O_SIZE; break;
		case 'g': bitv = O_GRAIN; break;
		case 'e': bitv = O_GEN; break;
		}
		if ((seen & bitv) && !(cmd->opts & bitv)) {
			fprintf(stderr, "%s does not take --%s\n", name, opts[k].name);
			bad = 1;
		}
		if ((cmd->required & bitv) && !(seen & bitv)) {
			fprintf(stderr, "%s needs --%s\n", name, opts[k].name);
			bad = 1;
		}
	}
	if (nrest < cmd->min_args || nrest > cmd->max_args) {
		fprintf(stderr, "%s: %s\n", name, nrest > cmd->max_args ?
			"too many arguments" : "missing arguments");
		bad = 1;
	}
	uint64_t *grains = NULL;
	int ev = 0;
	if (!bad && !strcmp(name, "split")) {
		grains = malloc((size_t)nrest * sizeof(*grains));
		if (!grains)
			return EX_FAIL;
		for (int k = 0; k < nrest; k++)
			bad |= parse_u64("GRAIN", rest[k], 0, UINT64_MAX, &grains[k]);
	}
	if (!bad && !strcmp(name, "transition") && parse_event(rest[0], &ev)) {
		fprintf(stderr, "transition: unknown EVENT '%s'\n", rest[0]);
		bad = 1;
	}
	if (bad) {
		free(grains);
		return EX_USAGE;
	}

	if (!strcmp(name, "check"))
		return cmd_check(path);
	if (!strcmp(name, "dump"))
		return cmd_dump(path, json, runs);
	if (!strcmp(name, "repair"))
		return cmd_repair(path);

	struct fm_store *s = NULL;
	int ret;
	if (!strcmp(name, "create")) {
		struct fm_store_config cfg = { .max_mappings = (uint32_t)mappings,
					       .max_grains = max_grains };
		struct fm_store_stats st;
		ret = fm_store_create(&s, path, &cfg);
		if (ret) {
			fprintf(stderr, "%s: %s\n", name, fm_errormsg());
			return ret == -EINVAL || ret == -ENOSPC ? EX_FAIL : exit_for(ret);
		}
		fm_store_stats(s, &st);
		printf("%s: created, %" PRIu64 " bytes, %" PRIu32 " mappings of up"
		       " to %" PRIu64 " grains, persistence: %s\n", path,
		       st.pool_size, st.max_mappings, st.max_grains, st.persist_mode);
		fm_store_close(&s);
		return EX_OK;
	}
	ret = fm_store_open(&s, path, NULL);
	if (ret) {
		fprintf(stderr, "%s\n", fm_errormsg());
		free(grains);
		return exit_for(ret);
	}
	if (!strcmp(name, "map-create")) {
		struct fm_mapping m;
		ret = fm_mapping_init(&m, id, src, tgt, size, grain);
		if (ret == 0)
			ret = fm_store_map_create(s, &m);
	} else if (!strcmp(name, "split")) {
		struct fm_store_map_info info;
		ret = fm_store_map_get(s, id, &info);
		if (ret == 0 && !(seen & O_GEN))
			gen = info.map.generation;
		if (ret == 0)
			ret = fm_store_split_set_many(s, id, gen, grains, (size_t)nrest);
		if (ret >= 0)
			ret = fm_store_split_commit(s);
		if (ret >= 0) {
			printf("committed %d bits\n", ret);
			ret = 0;
		}
	} else { /* transition */
		struct fm_mapping m;
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
	}
	free(grains);
	fm_store_close(&s);
	if (ret) {
		fprintf(stderr, "%s: %s\n", name, fm_errormsg());
		return EX_FAIL;
	}
	return EX_OK;
}
