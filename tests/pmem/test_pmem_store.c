/* test_pmem_store.c -- unit tests of the pmem store: format, validation,
 * transitions, group commit, log recovery. */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <sys/wait.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <libpmem.h>

#include "flashmeta/error.h"
#include "flashmeta/pmem_store.h"
#include "flashmeta/digest.h"
#include "format.h"
#include "persist.h"
#include "pmem_test_util.h"
#include "pool_edit.h"

#define GRAIN 4096u

static const struct fm_store_config small_cfg = {
	.max_mappings = 4, .max_grains = 1000, .view = FM_STORE_VIEW_MIRROR,
};

static void mk_map(struct fm_mapping *m, uint64_t id, uint64_t grains)
{
	assert_int_equal(fm_mapping_init(m, id, 100 + id, 200 + id,
					 grains * GRAIN, GRAIN), 0);
}

/* Pool with mapping 1 (100 grains, COPYING, bits 0, 5, 99) and 2 (130
 * grains, idle).  Returns the file bytes. */
static uint8_t *golden_pool(const char *path, size_t *len)
{
	struct fm_store *s;
	struct fm_mapping m;

	assert_int_equal(fm_store_create(&s, path, &small_cfg), 0);
	mk_map(&m, 1, 100);
	assert_int_equal(fm_store_map_create(s, &m), 0);
	mk_map(&m, 2, 130);
	assert_int_equal(fm_store_map_create(s, &m), 0);
	assert_int_equal(fm_store_map_transition(s, 1, FM_MAP_EV_PREPARE, NULL), 0);
	assert_int_equal(fm_store_map_transition(s, 1, FM_MAP_EV_PREPARE_DONE, NULL), 0);
	assert_int_equal(fm_store_map_transition(s, 1, FM_MAP_EV_START, NULL), 0);
	assert_int_equal(fm_store_split_set(s, 1, 1, 0), 1);
	assert_int_equal(fm_store_split_set(s, 1, 1, 5), 1);
	assert_int_equal(fm_store_split_set(s, 1, 1, 99), 1);
	assert_int_equal(fm_store_split_commit(s), 3);
	fm_store_close(&s);
	assert_null(s);
	return fmt_read_file(path, len);
}

/* ---- format -------------------------------------------------------- */

static void format__sb_roundtrip__le_on_media(void **state)
{
	(void)state;
	struct fm_sb sb, back;
	struct fm_sb_media m;

	assert_int_equal(fm_layout_compute(&sb, 4, 1000), 0);
	sb.uuid[0] = 0xAB;
	fm_sb_encode(&m, &sb);
	fm_sb_decode(&back, &m);
	assert_memory_equal(&sb, &back, sizeof(sb));
	/* little-endian at fixed offsets */
	const uint8_t *b = (const uint8_t *)&m;
	assert_memory_equal(b, FM_POOL_SIGNATURE, 8);
	assert_int_equal(b[8], FM_POOL_MAJOR);
	assert_int_equal(b[9], 0);
	assert_int_equal(b[48], 1); /* seq */
	assert_int_equal(b[88], 4); /* slot_count */
	assert_int_equal(fm_le32_get(&m.checksum), fm_sb_checksum(&m));
	/* the checksum covers every byte */
	m.reserved[7] ^= 1;
	assert_int_not_equal(fm_le32_get(&m.checksum), fm_sb_checksum(&m));
}

static void format__slot_roundtrip__free_slot_all_zero(void **state)
{
	(void)state;
	struct fm_slot s = { 0 }, back;
	struct fm_slot_media m;
	static const uint8_t zero[FM_SLOT_SIZE];

	fm_slot_encode(&m, &s);
	assert_memory_equal(&m, zero, sizeof(m));

	s.flags = FM_SLOT_IN_USE;
	mk_map(&s.m, 7, 100);
	s.m.generation = 0x0102030405060708ull;
	s.m.state = FM_MAP_COPYING;
	s.bitmap_off = 12288;
	s.bitmap_len = 16;
	fm_slot_encode(&m, &s);
	assert_int_equal(((uint8_t *)&m)[32], 0x08); /* generation, LE */
	assert_int_equal(((uint8_t *)&m)[39], 0x01);
	fm_slot_decode(&back, &m);
	assert_int_equal(back.m.id, 7);
	assert_int_equal(back.m.source_vol, 107);
	assert_int_equal(back.m.target_vol, 207);
	assert_int_equal(back.m.geom.volume_size, s.m.geom.volume_size);
	assert_int_equal(back.m.geom.grain_count, 100);
	assert_int_equal(back.m.geom.grain_shift, 12);
	assert_int_equal(back.m.generation, s.m.generation);
	assert_int_equal(back.m.state, FM_MAP_COPYING);
	assert_int_equal(back.bitmap_off, 12288);
}

static void format__crc32c__known_vector(void **state)
{
	(void)state;
	/* RFC 3720 B.4: 32 bytes of zeros -> 0x8A9136AA */
	static const uint8_t z[32];
	assert_int_equal(fm_crc32c(z, 32), 0x8A9136AAu);
	assert_int_equal(fm_crc32c("123456789", 9), 0xE3069283u);
}

static void layout__limits__einval(void **state)
{
	(void)state;
	struct fm_sb sb;
	assert_int_equal(fm_layout_compute(&sb, 0, 10), -EINVAL);
	assert_int_equal(fm_layout_compute(&sb, FM_SLOTS_MAX + 1, 10), -EINVAL);
	assert_int_equal(fm_layout_compute(&sb, 1, 0), -EINVAL);
	assert_int_equal(fm_layout_compute(&sb, 65536, UINT64_C(1) << 40), -EINVAL);
	assert_int_equal(fm_layout_compute(&sb, 1, UINT64_C(1) << 24), 0);
	assert_int_equal(sb.bitmap_stride, 2u << 20);
}

/* ---- validation: table-driven ------------------------------------- */

static void resum_sb(uint8_t *b)
{
	struct fm_sb_media *m = (struct fm_sb_media *)b;
	fm_le32_put(&m->checksum, fm_sb_checksum(m));
}

static struct fm_slot_media *slot_of(uint8_t *b, uint32_t i)
{
	return (struct fm_slot_media *)(b + FM_TABLE_OFF + i * FM_SLOT_SIZE);
}

static void resum_slot(uint8_t *b, uint32_t i)
{
	fm_le32_put(&slot_of(b, i)->checksum, fm_slot_checksum(slot_of(b, i)));
}

static size_t c_zero(uint8_t *b, size_t n) { (void)n; (void)b; return 0; }
static size_t c_short(uint8_t *b, size_t n) { (void)n; (void)b; return 100; }
static size_t c_trunc(uint8_t *b, size_t n) { (void)b; return n - 4096; }
static size_t c_sig(uint8_t *b, size_t n) { b[1] ^= 0x20; return n; }
static size_t c_foreign(uint8_t *b, size_t n)
{
	for (size_t i = 0; i < n; i++)
		b[i] = "#!/bin/sh\necho hello\n"[i % 21];
	return n;
}
static size_t c_sbsum(uint8_t *b, size_t n) { b[40] ^= 1; return n; }
static size_t c_major(uint8_t *b, size_t n) { b[8] = 2; resum_sb(b); return n; }
static size_t c_incompat(uint8_t *b, size_t n) { b[24] = 0x40; resum_sb(b); return n; }
static size_t c_slots(uint8_t *b, size_t n) { b[88] = 5; resum_sb(b); return n; }
static size_t c_sbres(uint8_t *b, size_t n) { b[300] = 1; return n; }
static size_t c_huge(uint8_t *b, size_t n)
{
	/* a consistent layout that claims 64 TiB: refused without allocating */
	struct fm_sb sb;
	struct fm_sb_media m;
	assert_int_equal(fm_layout_compute(&sb, 16, UINT64_C(1) << 41), 0);
	fm_sb_encode(&m, &sb);
	memcpy(b, &m, sizeof(m));
	return n;
}
static size_t c_logbad(uint8_t *b, size_t n)
{
	struct fm_log_rec r = { .seq = pe_applied(b) + 1, .op = FM_LOG_TRANSITION,
				.slot = 77, .in_use = 2 };
	r.image = *slot_of(b, 0);
	pe_put_rec(b, &r);
	return n;
}
static size_t c_slotsum(uint8_t *b, size_t n) { slot_of(b, 1)->id.b[0] ^= 4; return n; }
static size_t c_state(uint8_t *b, size_t n)
{
	fm_le32_put(&slot_of(b, 0)->state, 9);
	resum_slot(b, 0);
	return n;
}
static size_t c_rate(uint8_t *b, size_t n)
{
	fm_le32_put(&slot_of(b, 1)->copy_rate, 151);
	resum_slot(b, 1);
	return n;
}
static size_t c_dup(uint8_t *b, size_t n)
{
	slot_of(b, 1)->id = slot_of(b, 0)->id;
	resum_slot(b, 1);
	return n;
}
static size_t c_bmoff(uint8_t *b, size_t n)
{
	fm_le64_put(&slot_of(b, 1)->bitmap_off, 8192);
	resum_slot(b, 1);
	return n;
}
static size_t c_stray(uint8_t *b, size_t n)
{
	/* grain 100 of a 100-grain mapping */
	uint64_t off = fm_le64_get(&slot_of(b, 0)->bitmap_off);
	b[off + 12] |= 0x10;
	return n;
}
static size_t c_past_len(uint8_t *b, size_t n)
{
	uint64_t off = fm_le64_get(&slot_of(b, 1)->bitmap_off);
	b[off + 1000] = 1;
	return n;
}

static size_t c_logpad(uint8_t *b, size_t n) { b[FM_LOG_OFF + 1000] = 1; return n; }
static size_t c_applied(uint8_t *b, size_t n)
{
	/* applied 5 -> 4: the applied START (seq 5) would look pending */
	b[FM_LOG_OFF] ^= 1;
	return n;
}
static size_t c_apprec(uint8_t *b, size_t n)
{
	pe_rec_addr(b, pe_applied(b))[20] ^= 0x40;
	return n;
}
static size_t c_owner(uint8_t *b, size_t n)
{
	pe_owner(b, 0)->hold_ms.b[1] ^= 1;
	pe_owner(b, 1)->seq.b[0] = 7;
	return n;
}
static size_t c_zeroslot(uint8_t *b, size_t n)
{
	memset(slot_of(b, 1), 0, FM_SLOT_SIZE); /* mapping 2: no bits set */
	return n;
}
static size_t c_zeroslot_bits(uint8_t *b, size_t n)
{
	memset(slot_of(b, 0), 0, FM_SLOT_SIZE); /* mapping 1: bits 0, 5, 99 */
	return n;
}
static size_t c_free_bits(uint8_t *b, size_t n)
{
	struct fm_sb sb = pe_sb(b);
	b[sb.bitmap_off + 3 * sb.bitmap_stride + 4000] = 0x80; /* slot 3 is free */
	return n;
}

struct corruption {
	const char *name;
	size_t (*apply)(uint8_t *b, size_t n);
	int err;
	const char *msg;
};

static const struct corruption corruptions[] = {
	{ "zero-length", c_zero, -ENODATA, "needs at least" },
	{ "tiny", c_short, -ENODATA, "needs at least" },
	{ "truncated", c_trunc, -ENODATA, "truncated" },
	{ "signature", c_sig, -EILSEQ, "not a flashmeta pool" },
	{ "foreign", c_foreign, -EILSEQ, "not a flashmeta pool" },
	{ "sb checksum", c_sbsum, -EBADMSG, "superblock checksum" },
	{ "major", c_major, -EPROTONOSUPPORT, "pool format 2.4" },
	{ "incompat", c_incompat, -EOPNOTSUPP, "incompat features 0x40" },
	{ "slot count", c_slots, -EINVAL, "layout" },
	{ "sb reserved", c_sbres, -EINVAL, "reserved" },
	{ "huge layout", c_huge, -ENODATA, "truncated" },
	{ "log padding", c_logpad, -ENOTRECOVERABLE, "log block padding" },
	{ "applied word", c_applied, -ENOTRECOVERABLE, "applied word 0x" },
	{ "applied record", c_apprec, -ENOTRECOVERABLE, "record of applied seq 5" },
	{ "log record", c_logbad, -ENOTRECOVERABLE, "log: slot 77" },
	{ "owner record", c_owner, -EBADE, "owner record: neither copy" },
	{ "slot checksum", c_slotsum, -EUCLEAN, "slot 1: checksum" },
	{ "slot state", c_state, -EDOM, "state 9" },
	{ "copy rate", c_rate, -EDOM, "slot 1: copy rate 151" },
	{ "duplicate id", c_dup, -EDOM, "two slots hold mapping 1" },
	{ "bitmap offset", c_bmoff, -ERANGE, "slot 1: bitmap at 8192" },
	{ "stray bit", c_stray, -ERANGE, "past grain 100" },
	{ "bits past len", c_past_len, -ERANGE, "past the bitmap end" },
	{ "free slot bits", c_free_bits, -ENOTEMPTY, "slot 3 is free but" },
	{ "zeroed slot, bits", c_zeroslot_bits, -ENOTEMPTY, "slot 0 is free but" },
	{ "zeroed slot", c_zeroslot, -EIDRM, "1 slots in use, the log recorded 2" },
};

static void open__each_corruption__own_errno_no_write(void **state)
{
	(void)state;
	char path[600];
	size_t len, len2;
	uint8_t *gold = golden_pool(fmt_path(path, sizeof(path), "gold"), &len);

	assert_non_null(gold);
	for (size_t k = 0; k < sizeof(corruptions) / sizeof(corruptions[0]); k++) {
		const struct corruption *c = &corruptions[k];
		uint8_t *b = malloc(len), *after;
		struct fm_store *s = (void *)1;
		size_t n;
		int ret;

		memcpy(b, gold, len);
		n = c->apply(b, len);
		assert_int_equal(fmt_write_file(path, b, n), 0);
		ret = fm_store_open(&s, path, NULL);
		if (ret != c->err || !strstr(fm_errormsg(), c->msg))
			fail_msg("%s: got %d \"%s\", want %d \"%s\"", c->name, ret,
				 fm_errormsg(), c->err, c->msg);
		assert_null(s);
		after = fmt_read_file(path, &len2);
		assert_int_equal(len2, n);
		if (n)
			assert_memory_equal(after, b, n); /* never repaired */
		free(after);
		free(b);
	}
	unlink(path);
	free(gold);
}

static void open__golden__state_and_bits(void **state)
{
	(void)state;
	char path[600];
	size_t len;
	struct fm_store *s;
	struct fm_store_map_info info;
	struct fm_store_stats st;
	uint64_t ids[8];

	free(golden_pool(fmt_path(path, sizeof(path), "gold2"), &len));
	assert_int_equal(fm_store_open(&s, path, NULL), 0);
	assert_int_equal(fm_store_map_list(s, ids, 8), 2);
	assert_int_equal(fm_store_map_get(s, 1, &info), 0);
	assert_int_equal(info.map.state, FM_MAP_COPYING);
	assert_int_equal(info.map.generation, 1);
	assert_int_equal(info.split_count, 3);
	assert_int_equal(fm_store_split_test(s, 1, 5), 1);
	assert_int_equal(fm_store_split_test(s, 1, 6), 0);
	assert_int_equal(fm_store_split_test(s, 1, 100), -ERANGE);
	assert_int_equal(fm_store_split_test(s, 3, 1), -ENOENT);
	assert_int_equal(fm_store_stats(s, &st), 0);
	/* the store persists the way libpmem says this file must be: flushes
	 * on DAX (the cluster's NVDIMM), msync on a file or tmpfs */
	{
		size_t mlen;
		int is_pmem = -1;
		void *p = pmem_map_file(path, 0, 0, 0, &mlen, &is_pmem);

		assert_non_null(p);
		pmem_unmap(p, mlen);
		assert_int_equal(st.is_pmem, is_pmem);
		assert_string_equal(st.persist_mode, is_pmem ? "pmem (flush+drain)" : "msync");
	}
	assert_int_equal(st.view, FM_STORE_VIEW_MIRROR);
	assert_int_equal(st.recovered_ops, 0);
	fm_store_close(&s);
	unlink(path);
}

/* ---- transitions --------------------------------------------------- */

static void transition__illegal__eperm_nothing_written(void **state)
{
	(void)state;
	char path[600];
	struct fm_store *s;
	struct fm_mapping m, out;
	size_t l1, l2;
	uint8_t *before, *after;

	assert_int_equal(fm_store_create(&s, fmt_path(path, sizeof(path), "tr"),
					 &small_cfg), 0);
	mk_map(&m, 9, 64);
	assert_int_equal(fm_store_map_create(s, &m), 0);
	assert_int_equal(fm_store_map_create(s, &m), -EEXIST);

	/* every event core refuses from IDLE_OR_COPIED leaves the file as is */
	for (int ev = 0; ev < FM_MAP_EV_COUNT; ev++) {
		if (fm_map_next_state(FM_MAP_IDLE_OR_COPIED, ev) >= 0)
			continue;
		before = fmt_read_file(path, &l1);
		assert_int_equal(fm_store_map_transition(s, 9, ev, NULL), -EPERM);
		after = fmt_read_file(path, &l2);
		assert_int_equal(l1, l2);
		assert_memory_equal(before, after, l1);
		free(before);
		free(after);
	}
	assert_int_equal(fm_store_map_transition(s, 9, FM_MAP_EV_COUNT, NULL), -EINVAL);
	assert_int_equal(fm_store_map_transition(s, 9, FM_MAP_EV_PREPARE, &out), 0);
	assert_int_equal(out.state, FM_MAP_PREPARING);
	assert_int_equal(fm_store_split_set(s, 9, 0, 1), -EPERM); /* not copying */
	assert_int_equal(fm_store_map_transition(s, 9, FM_MAP_EV_PREPARE_DONE, &out), 0);
	assert_int_equal(fm_store_map_transition(s, 9, FM_MAP_EV_START, &out), 0);
	assert_int_equal(out.state, FM_MAP_COPYING);
	assert_int_equal(out.generation, 1);
	assert_int_equal(fm_store_map_delete(s, 9), -EBUSY);
	/* COPY_COMPLETE needs every grain */
	assert_int_equal(fm_store_map_transition(s, 9, FM_MAP_EV_COPY_COMPLETE, NULL), -EBUSY);
	for (uint64_t g = 0; g < 64; g++)
		assert_int_equal(fm_store_split_set(s, 9, 1, g), 1);
	assert_int_equal(fm_store_map_transition(s, 9, FM_MAP_EV_COPY_COMPLETE, &out), 0);
	assert_int_equal(out.state, FM_MAP_IDLE_OR_COPIED);
	fm_store_close(&s);

	/* all durable across reopen */
	assert_int_equal(fm_store_open(&s, path, NULL), 0);
	assert_int_equal(fm_store_split_test(s, 9, 63), 1);
	assert_int_equal(fm_store_map_delete(s, 9), 0);
	assert_int_equal(fm_store_map_delete(s, 9), -ENOENT);
	fm_store_close(&s);
	unlink(path);
}

static void set_rate__durable__nothing_else_changes(void **state)
{
	(void)state;
	char path[600];
	size_t len;
	struct fm_store *s;
	struct fm_store_map_info a, b;

	free(golden_pool(fmt_path(path, sizeof(path), "rate"), &len));
	assert_int_equal(fm_store_open(&s, path, NULL), 0);
	assert_int_equal(fm_store_map_get(s, 1, &a), 0);
	assert_int_equal(a.map.copy_rate, 0);
	assert_int_equal(fm_store_split_set(s, 1, 1, 7), 1); /* pending: committed first */
	assert_int_equal(fm_store_map_set_rate(s, 1, 151), -ERANGE);
	assert_int_equal(fm_store_map_set_rate(s, 3, 50), -ENOENT);
	assert_int_equal(fm_store_map_set_rate(s, 1, 150), 0);
	assert_int_equal(fm_store_map_set_rate(s, 2, 7), 0); /* idle: any state */
	fm_store_close(&s);
	assert_int_equal(fm_store_open(&s, path, NULL), 0);
	assert_int_equal(fm_store_map_get(s, 1, &b), 0);
	assert_int_equal(b.map.copy_rate, 150);
	assert_int_equal(b.map.state, a.map.state);
	assert_int_equal(b.map.generation, a.map.generation);
	assert_int_equal(b.split_count, a.split_count + 1);
	assert_int_equal(fm_store_split_test(s, 1, 7), 1);
	assert_int_equal(fm_store_map_get(s, 2, &b), 0);
	assert_int_equal(b.map.copy_rate, 7);
	fm_store_close(&s);
	unlink(path);
}

static void restart__clears_bits__old_generation_estale(void **state)
{
	(void)state;
	char path[600];
	size_t len;
	struct fm_store *s;
	struct fm_store_map_info info;
	uint64_t gen;

	free(golden_pool(fmt_path(path, sizeof(path), "rs"), &len));
	assert_int_equal(fm_store_open(&s, path, NULL), 0);
	assert_int_equal(fm_store_split_set(s, 1, 1, 7), 1);
	/* pending bit is committed by the restart, then cleared with the rest */
	assert_int_equal(fm_store_map_restart(s, 1, &gen), 0);
	assert_int_equal(gen, 2);
	assert_int_equal(fm_store_split_test(s, 1, 0), 0);
	assert_int_equal(fm_store_split_test(s, 1, 7), 0);
	assert_int_equal(fm_store_split_set(s, 1, 1, 3), -ESTALE);
	assert_int_equal(fm_store_split_set(s, 1, 2, 3), 1);
	assert_int_equal(fm_store_split_set(s, 1, 2, 3), 0);
	assert_int_equal(fm_store_split_commit(s), 1);
	fm_store_close(&s);
	assert_int_equal(fm_store_open(&s, path, NULL), 0);
	assert_int_equal(fm_store_map_get(s, 1, &info), 0);
	assert_int_equal(info.map.generation, 2);
	assert_int_equal(info.split_count, 1);
	fm_store_close(&s);
	unlink(path);
}

/* ---- group commit and the mirror ------------------------------------ */

static int view_bit(const void *addr, uint64_t g)
{
	uint64_t w;
	memcpy(&w, (const uint8_t *)addr + g / 64 * 8, 8);
	return (int)((le64toh(w) >> (g % 64)) & 1);
}

static void commit__many_bits__one_drain_then_published(void **state)
{
	(void)state;
	char path[600];
	size_t len;
	struct fm_store *s;
	struct fm_store_stats a, b;
	const void *view;
	size_t vlen;
	enum fm_store_view mode;

	free(golden_pool(fmt_path(path, sizeof(path), "gc"), &len));
	assert_int_equal(fm_store_open(&s, path, NULL), 0);
	assert_int_equal(fm_store_bitmap_view(s, 1, &view, &vlen, &mode), 0);
	assert_int_equal(mode, FM_STORE_VIEW_MIRROR);
	assert_int_equal(vlen, 16);
	assert_int_equal(view_bit(view, 5), 1); /* durable bits published at open */
	assert_int_equal(fm_store_stats(s, &a), 0);
	for (uint64_t g = 10; g < 90; g++)
		assert_int_equal(fm_store_split_set(s, 1, 1, g), 1);
	/* set but not durable: the RDMA view must not show them */
	for (uint64_t g = 10; g < 90; g++)
		assert_int_equal(view_bit(view, g), 0);
	assert_int_equal(fm_store_split_test(s, 1, 50), 1);
	assert_int_equal(fm_store_stats(s, &b), 0);
	assert_int_equal(b.splits_pending, 80);
	assert_int_equal(fm_store_split_commit(s), 80);
	assert_int_equal(fm_store_stats(s, &b), 0);
	assert_int_equal(b.drains - a.drains, 1);
	assert_int_equal(b.commits - a.commits, 1);
	assert_int_equal(b.splits_pending, 0);
	for (uint64_t g = 10; g < 90; g++)
		assert_int_equal(view_bit(view, g), 1);
	assert_int_equal(view_bit(view, 9), 0);
	assert_int_equal(fm_store_split_commit(s), 0); /* nothing pending: no drain */
	fm_store_close(&s);
	unlink(path);
}

/* The range API against a plain reference bitmap: ranges of one grain,
 * ranges starting or ending on a word boundary, ranges spanning words,
 * ranges ending on the last (partial-word) grain, ranges over bits already
 * set; bad input sets nothing; only the commit publishes.  A restart every
 * few rounds empties the bitmap so later rounds still set fresh bits. */
#define GR 1000 /* 15 full words and one of 40 grains */
static void range_pick(uint64_t *rng, uint64_t *first, uint64_t *last)
{
	uint64_t len;

	switch (fmt_rand(rng) % 6) {
	case 0: /* one grain */
		*first = fmt_rand(rng) % GR;
		*last = *first;
		return;
	case 1: /* starts on a word boundary */
		*first = fmt_rand(rng) % (GR / 64 + 1) * 64;
		break;
	case 2: /* ends on a word boundary (the last grain of a word) */
		*last = fmt_rand(rng) % (GR / 64) * 64 + 63;
		len = 1 + fmt_rand(rng) % 140;
		*first = len > *last ? 0 : *last - len + 1;
		return;
	case 3: /* up to the last grain */
		len = 1 + fmt_rand(rng) % 140;
		*last = GR - 1;
		*first = GR - len;
		return;
	default:
		*first = fmt_rand(rng) % GR;
		break;
	}
	len = 1 + fmt_rand(rng) % 140;
	*last = *first + len - 1 < GR ? *first + len - 1 : GR - 1;
}

static int drain_fails(void *arg, const struct fm_persist *p)
{
	(void)arg;
	(void)p;
	return -EIO;
}

/*
 * A full pending set whose implicit commit fails (media error) must not
 * grow the dirty list past its end: later new words are refused and
 * nothing is stored, and once drains work again the next call commits the
 * whole set first.  (Found by review; the ASan stage sees an overflow.)
 */
static void split_set__implicit_commit_fails__refused_not_overflowed(void **state)
{
	(void)state;
	const uint64_t max = FM_STORE_PENDING_MAX;
	struct fm_store_config cfg = { .max_mappings = 1, .max_grains = (max + 8) * 64 };
	struct fm_persist_hooks fail = { NULL, drain_fails, NULL };
	char path[600];
	struct fm_store *s;
	struct fm_mapping m;
	struct fm_store_map_info info;
	const void *view;
	size_t vlen;
	uint64_t gen;

	assert_int_equal(fm_store_create(&s, fmt_path(path, sizeof(path), "fullfail"), &cfg), 0);
	mk_map(&m, 1, (max + 8) * 64);
	assert_int_equal(fm_store_map_create(s, &m), 0);
	assert_int_equal(fm_store_map_transition(s, 1, FM_MAP_EV_PREPARE, NULL), 0);
	assert_int_equal(fm_store_map_transition(s, 1, FM_MAP_EV_PREPARE_DONE, NULL), 0);
	assert_int_equal(fm_store_map_transition(s, 1, FM_MAP_EV_START, NULL), 0);
	assert_int_equal(fm_store_map_get(s, 1, &info), 0);
	gen = info.map.generation;
	assert_int_equal(fm_store_bitmap_view(s, 1, &view, &vlen, NULL), 0);

	fm_persist_set_hooks(&fail);
	/* one bit per word: the dirty list fills as fast as the pending set */
	for (uint64_t w = 0; w + 1 < max; w++)
		assert_int_equal(fm_store_split_set(s, 1, gen, w * 64), 1);
	/* the bit that fills the set triggers the implicit commit: it fails,
	 * the bit stays set (pending), nothing is published */
	assert_int_equal(fm_store_split_set(s, 1, gen, (max - 1) * 64), -EIO);
	assert_int_equal(fm_store_split_test(s, 1, (max - 1) * 64), 1);
	assert_int_equal(view_bit(view, 0), 0);
	for (uint64_t w = max; w < max + 8; w++) {
		assert_int_equal(fm_store_split_set(s, 1, gen, w * 64), -EIO);
		assert_int_equal(fm_store_split_test(s, 1, w * 64), 0); /* nothing stored */
	}
	assert_int_equal(fm_store_split_commit(s), -EIO);
	fm_persist_set_hooks(NULL);

	/* drains work again: the full set is committed first, then the new bit */
	assert_int_equal(fm_store_split_set(s, 1, gen, max * 64), 1);
	assert_int_equal(fm_store_split_commit(s), 1);
	for (uint64_t w = 0; w <= max; w++)
		assert_int_equal(view_bit(view, w * 64), 1);
	assert_int_equal(view_bit(view, (max + 1) * 64), 0);
	fm_store_close(&s);
	unlink(path);
}

static void split_set_range__random_ranges__match_reference(void **state)
{
	(void)state;
	char path[600];
	struct fm_store *s;
	struct fm_mapping m;
	struct fm_store_map_info info;
	const void *view;
	size_t vlen;
	uint8_t ref[GR] = { 0 };
	uint64_t rng = 4242, gen;

	assert_int_equal(fm_store_create(&s, fmt_path(path, sizeof(path), "range"),
					 &small_cfg), 0);
	mk_map(&m, 1, GR);
	assert_int_equal(fm_store_map_create(s, &m), 0);
	mk_map(&m, 2, 64);
	assert_int_equal(fm_store_map_create(s, &m), 0);
	assert_int_equal(fm_store_map_transition(s, 1, FM_MAP_EV_PREPARE, NULL), 0);
	assert_int_equal(fm_store_map_transition(s, 1, FM_MAP_EV_PREPARE_DONE, NULL), 0);
	assert_int_equal(fm_store_map_transition(s, 1, FM_MAP_EV_START, NULL), 0);
	assert_int_equal(fm_store_map_get(s, 1, &info), 0);
	gen = info.map.generation;
	assert_int_equal(fm_store_bitmap_view(s, 1, &view, &vlen, NULL), 0);

	/* refused calls set nothing */
	assert_int_equal(fm_store_split_set_range(s, 1, gen, 5, 4), -EINVAL);
	assert_int_equal(fm_store_split_set_range(s, 1, gen, 0, GR), -ERANGE);
	assert_int_equal(fm_store_split_set_range(s, 1, gen, 0, UINT64_MAX), -EINVAL);
	assert_int_equal(fm_store_split_set_range(s, 1, gen, UINT64_MAX, UINT64_MAX),
			 -ERANGE);
	assert_int_equal(fm_store_split_set_range(s, 1, gen + 1, 0, 9), -ESTALE);
	assert_int_equal(fm_store_split_set_range(s, 9, gen, 0, 9), -ENOENT);
	assert_int_equal(fm_store_split_set_range(s, 2, 0, 0, 9), -EPERM);
	for (uint64_t k = 0; k < GR; k++)
		assert_int_equal(fm_store_split_test(s, 1, k), 0);
	assert_int_equal(fm_store_split_commit(s), 0);

	for (int round = 0; round < 300; round++) {
		uint64_t first, last;
		int fresh = 0;

		if (round % 25 == 24) {
			assert_int_equal(fm_store_map_restart(s, 1, &gen), 0);
			memset(ref, 0, sizeof(ref));
		}
		range_pick(&rng, &first, &last);
		for (uint64_t g = first; g <= last; g++) {
			if (ref[g] == 0) {
				fresh++;
				ref[g] = 2; /* set, not committed */
			}
		}
		assert_int_equal(fm_store_split_set_range(s, 1, gen, first, last), fresh);
		for (uint64_t k = 0; k < GR; k++) {
			assert_int_equal(fm_store_split_test(s, 1, k), ref[k] != 0);
			assert_int_equal(view_bit(view, k), ref[k] == 1);
		}
		assert_int_equal(fm_store_split_commit(s), fresh);
		for (uint64_t k = 0; k < GR; k++) {
			if (ref[k])
				ref[k] = 1;
			assert_int_equal(view_bit(view, k), ref[k]);
		}
		/* no bit beyond the last grain, ever */
		assert_int_equal(view_bit(view, GR + 23), 0);
	}
	/* the whole mapping in one call: the count is the unset grains */
	int unset = 0;
	for (uint64_t k = 0; k < GR; k++)
		unset += ref[k] == 0;
	assert_int_equal(fm_store_split_set_range(s, 1, gen, 0, GR - 1), unset);
	memset(ref, 1, sizeof(ref));
	fm_store_close(&s);
	/* and it is all durable */
	assert_int_equal(fm_store_open(&s, path, NULL), 0);
	assert_int_equal(fm_store_map_get(s, 1, &info), 0);
	assert_int_equal(info.split_count, GR);
	for (uint64_t k = 0; k < GR; k++)
		assert_int_equal(fm_store_split_test(s, 1, k), ref[k]);
	fm_store_close(&s);
	unlink(path);
}
#undef GR

/* ---- log recovery --------------------------------------------------- */

/* The batch API against a plain reference bitmap: runs in one word,
 * duplicates, bits already set; bad input sets nothing; only the commit
 * publishes, and then exactly the reference bits. */
#define GM 100 /* grains of golden mapping 1 */
static void split_set_many__random_batches__match_reference(void **state)
{
	(void)state;
	char path[600];
	size_t len;
	struct fm_store *s;
	const void *view;
	size_t vlen;
	uint8_t ref[GM] = { 0 };
	uint64_t g[40], rng = 12345;

	free(golden_pool(fmt_path(path, sizeof(path), "many"), &len));
	assert_int_equal(fm_store_open(&s, path, NULL), 0);
	assert_int_equal(fm_store_bitmap_view(s, 1, &view, &vlen, NULL), 0);
	for (uint64_t k = 0; k < GM; k++)
		ref[k] = (uint8_t)view_bit(view, k);
	g[0] = 3;
	g[1] = GM; /* out of range: the whole call is refused */
	assert_int_equal(fm_store_split_set_many(s, 1, 1, g, 2), -ERANGE);
	assert_int_equal(fm_store_split_test(s, 1, 3), ref[3]);
	assert_int_equal(fm_store_split_set_many(s, 1, 2, g, 1), -ESTALE);
	assert_int_equal(fm_store_split_set_many(s, 9, 1, g, 1), -ENOENT);
	for (int round = 0; round < 20; round++) {
		size_t n = 1 + (size_t)(fmt_rand(&rng) % 40);
		int fresh = 0;
		for (size_t k = 0; k < n; k++) {
			/* half the time continue a run, else jump */
			g[k] = k && (fmt_rand(&rng) & 1) ? (g[k - 1] + 1) % GM :
				fmt_rand(&rng) % GM;
		}
		for (size_t k = 0; k < n; k++) {
			if (ref[g[k]] == 0) {
				fresh++;
				ref[g[k]] = 2; /* set, not committed */
			}
		}
		assert_int_equal(fm_store_split_set_many(s, 1, 1, g, n), fresh);
		for (uint64_t k = 0; k < GM; k++) {
			assert_int_equal(fm_store_split_test(s, 1, k), ref[k] != 0);
			assert_int_equal(view_bit(view, k), ref[k] == 1);
		}
		assert_int_equal(fm_store_split_commit(s), fresh);
		for (uint64_t k = 0; k < GM; k++) {
			if (ref[k])
				ref[k] = 1;
			assert_int_equal(view_bit(view, k), ref[k]);
		}
	}
	fm_store_close(&s);
	/* and it is all durable */
	assert_int_equal(fm_store_open(&s, path, NULL), 0);
	for (uint64_t k = 0; k < GM; k++)
		assert_int_equal(fm_store_split_test(s, 1, k), ref[k]);
	fm_store_close(&s);
	unlink(path);
}
#undef GM

static void recovery__committed_record__replayed_on_open(void **state)
{
	(void)state;
	char path[600];
	size_t len;
	uint8_t *b;
	struct fm_slot sl;
	struct fm_log_rec r = { 0 };
	struct fm_store *s;
	struct fm_store_map_info info;
	struct fm_store_stats st;
	uint64_t applied;

	b = golden_pool(fmt_path(path, sizeof(path), "rec"), &len);
	/* log says: mapping 1 restarted to generation 2; the slot is torn */
	fm_slot_decode(&sl, slot_of(b, 0));
	sl.m.generation = 2;
	applied = pe_applied(b);
	r.seq = applied + 1;
	r.op = FM_LOG_RESTART;
	r.slot = 0;
	r.in_use = 2;
	fm_slot_encode(&r.image, &sl);
	pe_put_rec(b, &r);
	memset((uint8_t *)slot_of(b, 0) + 24, 0xEE, 40); /* torn slot */
	assert_int_equal(fmt_write_file(path, b, len), 0);

	assert_int_equal(fm_store_open(&s, path, NULL), 0);
	assert_int_equal(fm_store_stats(s, &st), 0);
	assert_int_equal(st.recovered_ops, 1);
	assert_int_equal(st.log_seq, applied + 1);
	assert_int_equal(fm_store_map_get(s, 1, &info), 0);
	assert_int_equal(info.map.generation, 2);
	assert_int_equal(info.split_count, 0);
	fm_store_close(&s);
	/* second open: nothing to replay */
	assert_int_equal(fm_store_open(&s, path, NULL), 0);
	assert_int_equal(fm_store_stats(s, &st), 0);
	assert_int_equal(st.recovered_ops, 0);
	fm_store_close(&s);
	free(b);
	unlink(path);
}

/* ---- applied word, legacy pools, in-use count ----------------------- */

static void applied_word__every_1_2_3_bit_flip__detected(void **state)
{
	(void)state;
	static const uint64_t seqs[] = { 0, 1, 5, 0xffff, UINT64_C(0x123456789a),
					 FM_SEQ_MAX };
	uint64_t got;

	assert_int_equal(fm_crc16_ccitt("123456789", 9), 0x29b1);
	/* an all-zero word is not seq 0: a zeroed log block is damage */
	assert_int_equal(fm_applied_decode(FM_POOL_INCOMPAT_SEQ_CHECK, 0, &got),
			 -ENOTRECOVERABLE);
	for (size_t k = 0; k < sizeof(seqs) / sizeof(seqs[0]); k++) {
		uint64_t w = fm_applied_encode(FM_POOL_INCOMPAT_SEQ_CHECK, seqs[k]);
		assert_int_equal(fm_applied_decode(FM_POOL_INCOMPAT_SEQ_CHECK, w, &got), 0);
		assert_int_equal(got, seqs[k]);
		/* legacy encoding: the plain seq */
		assert_int_equal(fm_applied_encode(0, seqs[k]), seqs[k]);
		for (int a = 0; a < 64; a++)
			for (int b = a; b < 64; b++)
				for (int c = b; c < 64; c++) {
					uint64_t e = UINT64_C(1) << a | UINT64_C(1) << b |
						     UINT64_C(1) << c;
					if (fm_applied_decode(FM_POOL_INCOMPAT_SEQ_CHECK,
							      w ^ e, &got) != -ENOTRECOVERABLE)
						fail_msg("seq %" PRIu64 ": flip of bits %d %d %d"
							 " undetected", seqs[k], a, b, c);
				}
	}
}

/* The finding: with an unchecked applied word, 5 -> 4 makes the applied
 * START look pending and open clears acknowledged split bits while keeping
 * the generation.  Every single-bit flip must be refused, and the pool left
 * as it was. */
static void open__applied_word_flipped__refused_bits_kept(void **state)
{
	(void)state;
	char path[600];
	size_t len, len2;
	uint8_t *gold = golden_pool(fmt_path(path, sizeof(path), "flip"), &len);
	struct fm_store *s;

	assert_int_equal(pe_applied(gold), 5);
	assert_int_equal(pe_get_rec(gold, 5).op, FM_LOG_RESTART);
	for (int bit = 0; bit < 64; bit++) {
		uint8_t *b = malloc(len), *after;

		memcpy(b, gold, len);
		b[FM_LOG_OFF + bit / 8] ^= (uint8_t)(1u << (bit % 8));
		assert_int_equal(fmt_write_file(path, b, len), 0);
		if (fm_store_open(&s, path, NULL) != -ENOTRECOVERABLE)
			fail_msg("applied word bit %d flipped: open says \"%s\"", bit,
				 fm_errormsg());
		after = fmt_read_file(path, &len2);
		assert_memory_equal(after, b, len);
		free(after);
		free(b);
	}
	assert_int_equal(fmt_write_file(path, gold, len), 0);
	assert_int_equal(fm_store_open(&s, path, NULL), 0);
	assert_int_equal(fm_store_split_test(s, 1, 99), 1);
	fm_store_close(&s);
	free(gold);
	unlink(path);
}

/* A 1.0 pool: opened, used and still 1.0 after; nothing known of owners. */
static void legacy_1_0__opens_works_stays_1_0__owner_unknown(void **state)
{
	(void)state;
	char path[600];
	size_t len;
	uint8_t *b = golden_pool(fmt_path(path, sizeof(path), "legacy"), &len);
	struct fm_store *s;
	struct fm_store_owner_info prev = { .known = true };
	struct fm_store_map_info info;
	struct fm_check c;
	uint64_t inc = 99, gen;

	pe_downgrade_1_0(b);
	assert_int_equal(fm_pool_check(b, len, &c, NULL), 0);
	assert_int_equal(c.sb.minor, 0);
	assert_int_equal(c.log_counts, 0);
	assert_int_equal(c.owner_known, 0);
	assert_int_equal(fmt_write_file(path, b, len), 0);
	assert_int_equal(fm_store_open(&s, path, NULL), 0);
	assert_int_equal(fm_store_owner_get(s, &prev), 0);
	assert_false(prev.known);
	prev.known = true;
	assert_int_equal(fm_store_owner_begin(s, 500, &prev, &inc), -EOPNOTSUPP);
	assert_false(prev.known);
	assert_int_equal(inc, 0);
	assert_int_equal(fm_store_owner_settle(s, 500), -EOPNOTSUPP);
	assert_int_equal(fm_store_split_set(s, 1, 1, 7), 1);
	assert_int_equal(fm_store_map_restart(s, 1, &gen), 0);
	assert_int_equal(fm_store_split_set(s, 1, gen, 8), 1);
	assert_int_equal(fm_store_split_commit(s), 1);
	fm_store_close(&s);
	free(b);

	/* still the 1.0 layout: one record place, plain word, nothing past */
	b = fmt_read_file(path, &len);
	assert_int_equal(fm_pool_check(b, len, &c, NULL), 0);
	assert_int_equal(c.sb.incompat, 0);
	assert_int_equal(pe_applied_word(b), 6);
	assert_int_equal(pe_get_rec(b, 6).seq, 6);
	for (uint32_t k = FM_LOG_USED_1_0; k < FM_BLOCK; k++)
		assert_int_equal(b[FM_LOG_OFF + k], 0);
	assert_int_equal(fm_store_open(&s, path, NULL), 0);
	assert_int_equal(fm_store_map_get(s, 1, &info), 0);
	assert_int_equal(info.map.generation, gen);
	assert_int_equal(info.split_count, 1);
	fm_store_close(&s);
	free(b);
	unlink(path);
}

/* An older binary must refuse a new pool: a 1.0 binary knows no incompat
 * bits, a 1.1 binary not SLOT_EXT, a 1.2 binary not RESTORE, a 1.3 binary
 * not CHANGED (test_pmem_group.c has the 1.2 parts, test_pmem_reverse.c
 * the 1.3, test_pmem_refresh.c the 1.4). */
static void format_1_2__new_pools__incompat_bits_set(void **state)
{
	(void)state;
	char path[600];
	size_t len;
	uint8_t *b = golden_pool(fmt_path(path, sizeof(path), "v11"), &len);
	struct fm_sb sb = pe_sb(b);

	assert_int_equal(sb.major, 1);
	assert_int_equal(sb.minor, 4);
	assert_int_equal(sb.incompat, FM_POOL_INCOMPAT_SEQ_CHECK |
			 FM_POOL_INCOMPAT_LOG_AB | FM_POOL_INCOMPAT_OWNER |
			 FM_POOL_INCOMPAT_SLOT_EXT | FM_POOL_INCOMPAT_RESTORE |
			 FM_POOL_INCOMPAT_CHANGED);
	/* the applied record (seq 5, odd) is in B, its predecessor in A */
	assert_int_equal(pe_get_rec(b, 5).seq, 5);
	assert_int_equal(pe_get_rec(b, 4).seq, 4);
	assert_int_equal(pe_get_rec(b, 5).in_use, 2);
	free(b);
	unlink(path);
}

/* ---- owner incarnations ---------------------------------------------- */

static void owner_expect(struct fm_store *s, uint64_t inc, uint32_t hold)
{
	struct fm_store_owner_info oi;

	assert_int_equal(fm_store_owner_get(s, &oi), 0);
	assert_true(oi.known);
	assert_int_equal(oi.incarnation, inc);
	assert_int_equal(oi.hold_ms, hold);
}

static void owner__begin_settle__incarnations_and_hold(void **state)
{
	(void)state;
	char path[600];
	size_t len;
	struct fm_store *s;
	struct fm_store_owner_info prev;
	uint64_t inc;

	free(golden_pool(fmt_path(path, sizeof(path), "owner"), &len));
	assert_int_equal(fm_store_open(&s, path, NULL), 0);
	owner_expect(s, 0, 0); /* no owner ever served */
	assert_int_equal(fm_store_owner_settle(s, 10), -EINVAL); /* not begun */
	assert_int_equal(fm_store_owner_begin(s, 3000, &prev, &inc), 0);
	assert_true(prev.known);
	assert_int_equal(prev.incarnation, 0);
	assert_int_equal(prev.hold_ms, 0);
	assert_int_equal(inc, 1);
	owner_expect(s, 1, 3000);
	assert_int_equal(fm_store_owner_begin(s, 3000, &prev, &inc), -EALREADY);
	assert_int_equal(fm_store_owner_settle(s, 1000), 0);
	owner_expect(s, 1, 1000);
	fm_store_close(&s);

	/* the next incarnation: hold is the larger of the old and the new
	 * until it settles */
	assert_int_equal(fm_store_open(&s, path, NULL), 0);
	owner_expect(s, 1, 1000);
	assert_int_equal(fm_store_owner_begin(s, 500, &prev, &inc), 0);
	assert_int_equal(prev.incarnation, 1);
	assert_int_equal(prev.hold_ms, 1000);
	assert_int_equal(inc, 2);
	owner_expect(s, 2, 1000);
	assert_int_equal(fm_store_owner_settle(s, 500), 0);
	owner_expect(s, 2, 500);
	fm_store_close(&s);
	assert_int_equal(fm_store_open(&s, path, NULL), 0);
	owner_expect(s, 2, 500);
	assert_int_equal(fm_store_owner_begin(s, 9000, &prev, &inc), 0);
	owner_expect(s, 3, 9000);
	fm_store_close(&s);
	unlink(path);
}

/* Images between `old` and `neu` (which differ only in owner words): each
 * subset of the changed 8-byte words.  All must open with old's record,
 * or neu's when every changed word landed. */
static void torn_owner_images(const uint8_t *old, const uint8_t *neu, size_t len,
			      const char *img_path)
{
	struct fm_check co, cn;
	size_t words[8], nw = 0;

	assert_int_equal(fm_pool_check(old, len, &co, NULL), 0);
	assert_int_equal(fm_pool_check(neu, len, &cn, NULL), 0);
	assert_int_equal(cn.owner.seq, co.owner.seq + 1);
	assert_int_not_equal(cn.owner_copy, co.owner_copy);
	for (size_t w = 0; w < len; w += 8) {
		if (memcmp(old + w, neu + w, 8)) {
			assert_true(w >= FM_LOG_OFF + FM_LOG_OWNER_OFF &&
				    w < FM_LOG_OFF + FM_LOG_USED_LEN);
			assert_true(nw < 8);
			words[nw++] = w;
		}
	}
	assert_true(nw > 0);
	for (unsigned mask = 0; mask < (1u << nw); mask++) {
		const struct fm_owner *want = mask == (1u << nw) - 1 ? &cn.owner : &co.owner;
		struct fm_store_owner_info oi;
		struct fm_store *s;
		uint8_t *img = malloc(len);

		memcpy(img, old, len);
		for (size_t k = 0; k < nw; k++)
			if (mask & (1u << k))
				memcpy(img + words[k], neu + words[k], 8);
		assert_int_equal(fmt_write_file(img_path, img, len), 0);
		if (fm_store_open(&s, img_path, NULL))
			fail_msg("torn mask 0x%x: %s", mask, fm_errormsg());
		fm_store_owner_get(s, &oi);
		if (oi.incarnation != want->incarnation || oi.hold_ms != want->hold_ms)
			fail_msg("torn mask 0x%x: record %" PRIu64 "/%u, want %" PRIu64
				 "/%u", mask, oi.incarnation, oi.hold_ms,
				 want->incarnation, want->hold_ms);
		fm_store_close(&s);
		free(img);
	}
}

/*
 * Every torn write of an owner update: the copy being written holds any
 * subset of its new 8-byte words (failure-atomic stores), the rest old.
 * The first begin writes over a zero copy; every later update over the
 * record before the current one.
 */
static void owner__every_torn_write__old_or_new(void **state)
{
	(void)state;
	char path[600], img_path[600];
	size_t len, l2;
	struct fm_store *s;
	struct fm_store_owner_info prev;
	uint64_t inc;
	uint8_t *old, *neu;

	free(golden_pool(fmt_path(path, sizeof(path), "otorn"), &len));
	fmt_path(img_path, sizeof(img_path), "otorn-img");
	for (uint32_t round = 0; round < 3; round++) {
		assert_int_equal(fm_store_open(&s, path, NULL), 0);
		old = fmt_read_file(path, &l2);
		assert_int_equal(fm_store_owner_begin(s, 100 + round, &prev, &inc), 0);
		neu = fmt_read_file(path, &l2);
		torn_owner_images(old, neu, len, img_path);
		free(old);
		old = neu;
		assert_int_equal(fm_store_owner_settle(s, 7 + round), 0);
		neu = fmt_read_file(path, &l2);
		torn_owner_images(old, neu, len, img_path);
		free(old);
		free(neu);
		fm_store_close(&s);
	}
	unlink(img_path);
	unlink(path);
}

/* ---- exclusive use and file types ------------------------------------ */

static int open_in_child(const char *path)
{
	pid_t pid = fork();
	int status;

	assert_true(pid >= 0);
	if (pid == 0) {
		struct fm_store *s;
		int ret = fm_store_open(&s, path, NULL);
		char want[700];

		snprintf(want, sizeof(want), "pool %s in use by ", path);
		fm_store_close(&s);
		_exit(ret == -EBUSY && !strncmp(fm_errormsg(), want, strlen(want)) ? 0 :
		      ret == 0 ? 1 : 2);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	return WEXITSTATUS(status);
}

/* Two owners on one pool: the second open fails, in this process and in
 * another, for as long as the first handle lives; the message names the
 * holder ("pid N" where /proc/locks shows it, else "another process"). */
static void open__pool_in_use__ebusy_until_closed(void **state)
{
	(void)state;
	char path[600], want_pid[700], want_any[700];
	size_t len;
	struct fm_store *s, *s2 = (void *)1;
	struct fm_mapping m;

	free(golden_pool(fmt_path(path, sizeof(path), "busy"), &len));
	assert_int_equal(fm_store_open(&s, path, NULL), 0);
	assert_int_equal(fm_store_open(&s2, path, NULL), -EBUSY);
	assert_null(s2);
	snprintf(want_pid, sizeof(want_pid), "pool %s in use by pid %d", path,
		 (int)getpid());
	snprintf(want_any, sizeof(want_any), "pool %s in use by another process", path);
	if (strcmp(fm_errormsg(), want_pid) && strcmp(fm_errormsg(), want_any))
		fail_msg("message \"%s\"", fm_errormsg());
	assert_int_equal(open_in_child(path), 0);
	/* the first handle still works, and nothing was lost */
	mk_map(&m, 3, 10);
	assert_int_equal(fm_store_map_create(s, &m), 0);
	fm_store_close(&s);
	assert_int_equal(open_in_child(path), 1); /* free again */
	assert_int_equal(fm_store_open(&s, path, NULL), 0);
	assert_int_equal(fm_store_map_list(s, NULL, 0), 3);
	fm_store_close(&s);
	/* create on an existing pool in use: still -EEXIST, nothing touched */
	assert_int_equal(fm_store_open(&s, path, NULL), 0);
	assert_int_equal(fm_store_create(&s2, path, &small_cfg), -EEXIST);
	fm_store_close(&s);
	unlink(path);
}

static void on_alarm(int sig)
{
	(void)sig;
	static const char msg[] = "open blocked on a FIFO\n";
	(void)!write(2, msg, sizeof(msg) - 1);
	_exit(1);
}

/* A FIFO, a directory, a non-DAX character device: refused at once, never
 * opened for blocking I/O, never created, truncated or removed. */
static void open__not_a_pool_file__refused_without_blocking(void **state)
{
	(void)state;
	char fifo[600], dir[600];
	struct fm_store *s = (void *)1;
	struct stat st;

	fmt_path(fifo, sizeof(fifo), "fifo");
	assert_int_equal(mkfifo(fifo, 0600), 0);
	signal(SIGALRM, on_alarm);
	alarm(10);
	assert_int_equal(fm_store_open(&s, fifo, NULL), -ENODEV);
	assert_non_null(strstr(fm_errormsg(), "is a FIFO"));
	assert_null(s);
	assert_int_equal(fm_store_create(&s, fifo, &small_cfg), -ENODEV);
	assert_int_equal(stat(fifo, &st), 0);
	assert_true(S_ISFIFO(st.st_mode));
	assert_int_equal(fm_store_open(&s, "/dev/null", NULL), -ENODEV);
	assert_non_null(strstr(fm_errormsg(), "not device-DAX"));
	assert_int_equal(fm_store_create(&s, "/dev/null", &small_cfg), -ENODEV);
	fmt_path(dir, sizeof(dir), "dir");
	assert_int_equal(mkdir(dir, 0700), 0);
	assert_int_equal(fm_store_open(&s, dir, NULL), -EISDIR);
	alarm(0);
	signal(SIGALRM, SIG_DFL);
	unlink(fifo);
	rmdir(dir);
}

static void create__exists_and_bad_config(void **state)
{
	(void)state;
	char path[600];
	struct fm_store *s;
	struct fm_store_config bad = small_cfg;

	assert_int_equal(fm_store_create(&s, fmt_path(path, sizeof(path), "cr"),
					 &small_cfg), 0);
	fm_store_close(&s);
	assert_int_equal(fm_store_create(&s, path, &small_cfg), -EEXIST);
	unlink(path);
	bad.max_mappings = 0;
	assert_int_equal(fm_store_create(&s, path, &bad), -EINVAL);
	assert_int_equal(access(path, F_OK), -1); /* nothing left behind */
	assert_int_equal(fm_store_open(&s, path, NULL), -ENOENT);
	fm_store_close(&s); /* NULL-safe */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(format__sb_roundtrip__le_on_media),
		cmocka_unit_test(format__slot_roundtrip__free_slot_all_zero),
		cmocka_unit_test(format__crc32c__known_vector),
		cmocka_unit_test(layout__limits__einval),
		cmocka_unit_test(open__each_corruption__own_errno_no_write),
		cmocka_unit_test(open__golden__state_and_bits),
		cmocka_unit_test(transition__illegal__eperm_nothing_written),
		cmocka_unit_test(set_rate__durable__nothing_else_changes),
		cmocka_unit_test(restart__clears_bits__old_generation_estale),
		cmocka_unit_test(commit__many_bits__one_drain_then_published),
		cmocka_unit_test(split_set_many__random_batches__match_reference),
		cmocka_unit_test(split_set_range__random_ranges__match_reference),
		cmocka_unit_test(split_set__implicit_commit_fails__refused_not_overflowed),
		cmocka_unit_test(recovery__committed_record__replayed_on_open),
		cmocka_unit_test(applied_word__every_1_2_3_bit_flip__detected),
		cmocka_unit_test(open__applied_word_flipped__refused_bits_kept),
		cmocka_unit_test(legacy_1_0__opens_works_stays_1_0__owner_unknown),
		cmocka_unit_test(format_1_2__new_pools__incompat_bits_set),
		cmocka_unit_test(owner__begin_settle__incarnations_and_hold),
		cmocka_unit_test(owner__every_torn_write__old_or_new),
		cmocka_unit_test(open__pool_in_use__ebusy_until_closed),
		cmocka_unit_test(open__not_a_pool_file__refused_without_blocking),
		cmocka_unit_test(create__exists_and_bad_config),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
