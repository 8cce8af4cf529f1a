/* format.h -- the on-media format of a flashmeta pool (internal).
 *
 * A pool is one file (or devdax device) mapped with libpmem:
 *
 *   offset 0            superblock      4 KiB block, 256-byte record, rest zero
 *   FM_LOG_OFF          redo log        4 KiB block: applied_seq word + one record
 *   sb.table_off        mapping table   slot_count slots of 128 bytes
 *   sb.bitmap_off       split bitmaps   slot_count * bitmap_stride bytes
 *
 * All integers are little-endian on media.  Media structs are made of byte
 * arrays (fm_le64/fm_le32), so they cannot be used as host integers by
 * accident; fm_*_encode/decode convert to and from host structs.  Every
 * record carries a CRC-32C computed with its own checksum field zeroed.
 * Reserved bytes must be zero and are checked.
 *
 * The superblock is written once, last, at create time: a pool whose
 * superblock is valid has a zeroed log, table and bitmaps behind it.
 * Mapping slots are never written in place except by log replay (see
 * store.c): a slot is either all zero (free) or a checksummed record.
 *
 * Bitmap of the mapping in slot s lives at bitmap_off + s * bitmap_stride;
 * grain g is bit (g % 64) of the little-endian 64-bit word g / 64.  Bits past
 * grain_count are zero.  Each word is updated by failure-atomic 8-byte stores.
 */
#ifndef FM_PMEM_FORMAT_H
#define FM_PMEM_FORMAT_H

#include <assert.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "flashmeta/mapping.h"

typedef struct { uint8_t b[8]; } fm_le64;
typedef struct { uint8_t b[4]; } fm_le32;

static inline uint64_t fm_le64_get(const fm_le64 *v)
{
	uint64_t x = 0;
	for (int i = 7; i >= 0; i--)
		x = (x << 8) | v->b[i];
	return x;
}

static inline void fm_le64_put(fm_le64 *v, uint64_t x)
{
	for (int i = 0; i < 8; i++, x >>= 8)
		v->b[i] = (uint8_t)x;
}

static inline uint32_t fm_le32_get(const fm_le32 *v)
{
	return (uint32_t)v->b[0] | (uint32_t)v->b[1] << 8 |
	       (uint32_t)v->b[2] << 16 | (uint32_t)v->b[3] << 24;
}

static inline void fm_le32_put(fm_le32 *v, uint32_t x)
{
	for (int i = 0; i < 4; i++, x >>= 8)
		v->b[i] = (uint8_t)x;
}

#define FM_POOL_SIGNATURE "FMPOOL\0\1" /* 8 bytes, the last two binary */
#define FM_POOL_MAJOR 1u
#define FM_POOL_MINOR 0u
/* Feature bits.  An unknown incompat bit refuses the open; unknown compat
 * bits are ignored.  None are defined in 1.0. */
#define FM_POOL_COMPAT_KNOWN UINT64_C(0)
#define FM_POOL_INCOMPAT_KNOWN UINT64_C(0)

#define FM_BLOCK 4096u
#define FM_SB_OFF 0u
#define FM_LOG_OFF 4096u
#define FM_TABLE_OFF 8192u
#define FM_SLOT_SIZE 128u
#define FM_SLOTS_MAX 65536u
#define FM_POOL_SIZE_MAX (UINT64_C(1) << 46) /* 64 TiB */

/* ---- superblock ---------------------------------------------------- */

struct fm_sb_media {
	uint8_t signature[8];  /* FM_POOL_SIGNATURE */
	fm_le32 major;
	fm_le32 minor;
	fm_le64 compat;
	fm_le64 incompat;
	uint8_t uuid[16];
	fm_le64 seq;           /* 1 at creation; bumped by any rewrite */
	fm_le64 pool_size;     /* bytes the layout needs; file may be larger */
	fm_le64 log_off;
	fm_le64 log_size;
	fm_le64 table_off;
	fm_le32 slot_count;
	fm_le32 slot_size;
	fm_le64 bitmap_off;
	fm_le64 bitmap_stride; /* bytes of bitmap per slot, multiple of 4096 */
	uint8_t reserved[140];
	fm_le32 checksum;      /* CRC-32C of the 256 bytes, this field zeroed */
};
static_assert(sizeof(struct fm_sb_media) == 256, "superblock record size");
static_assert(offsetof(struct fm_sb_media, major) == 8, "sb major");
static_assert(offsetof(struct fm_sb_media, uuid) == 32, "sb uuid");
static_assert(offsetof(struct fm_sb_media, seq) == 48, "sb seq");
static_assert(offsetof(struct fm_sb_media, bitmap_stride) == 104, "sb stride");
static_assert(offsetof(struct fm_sb_media, checksum) == 252, "sb checksum");

struct fm_sb {
	uint32_t major, minor;
	uint64_t compat, incompat;
	uint8_t uuid[16];
	uint64_t seq;
	uint64_t pool_size;
	uint64_t log_off, log_size;
	uint64_t table_off;
	uint32_t slot_count, slot_size;
	uint64_t bitmap_off, bitmap_stride;
};

/* ---- mapping slot -------------------------------------------------- */

#define FM_SLOT_IN_USE 0x1u

struct fm_slot_media {
	fm_le64 id;
	fm_le64 source_vol;
	fm_le64 target_vol;
	fm_le64 volume_size;
	fm_le64 generation;
	fm_le64 bitmap_off;  /* absolute pool offset of this mapping's bitmap */
	fm_le64 bitmap_len;  /* bytes in use: ceil(grain_count / 64) * 8 */
	fm_le32 grain_shift;
	fm_le32 state;       /* enum fm_map_state */
	fm_le32 copy_rate;
	fm_le32 flags;       /* FM_SLOT_IN_USE */
	uint8_t reserved[52];
	fm_le32 checksum;
};
static_assert(sizeof(struct fm_slot_media) == FM_SLOT_SIZE, "slot size");
static_assert(offsetof(struct fm_slot_media, generation) == 32, "slot gen");
static_assert(offsetof(struct fm_slot_media, grain_shift) == 56, "slot shift");
static_assert(offsetof(struct fm_slot_media, checksum) == 124, "slot checksum");

struct fm_slot {
	uint32_t flags;
	struct fm_mapping m;
	uint64_t bitmap_off, bitmap_len;
};

/* ---- redo log ------------------------------------------------------ */

enum fm_log_op {
	FM_LOG_NONE = 0,
	FM_LOG_CREATE = 1,     /* clear bitmap, write slot */
	FM_LOG_DELETE = 2,     /* clear bitmap, zero slot */
	FM_LOG_TRANSITION = 3, /* write slot */
	FM_LOG_RESTART = 4,    /* clear bitmap, write slot (generation++) */
	FM_LOG_OP_COUNT
};

struct fm_log_media {
	fm_le64 applied_seq;   /* 8-byte failure-atomic word, not checksummed */
	uint8_t pad[56];       /* the record starts on its own cache line */
	/* record: bytes [64, 256), checksummed */
	fm_le64 seq;
	fm_le32 op;
	fm_le32 slot;
	struct fm_slot_media image; /* the slot after the op (zero for delete) */
	uint8_t reserved[44];
	fm_le32 checksum;      /* CRC-32C of the record, this field zeroed */
};
static_assert(sizeof(struct fm_log_media) == 256, "log size");
static_assert(offsetof(struct fm_log_media, seq) == 64, "log record start");
static_assert(offsetof(struct fm_log_media, image) == 80, "log image");
static_assert(offsetof(struct fm_log_media, checksum) == 252, "log checksum");
#define FM_LOG_REC_OFF 64u
#define FM_LOG_REC_LEN (256u - FM_LOG_REC_OFF)

struct fm_log_rec {
	uint64_t seq;
	uint32_t op;
	uint32_t slot;
	struct fm_slot_media image; /* kept encoded: written verbatim */
};

/* ---- functions ----------------------------------------------------- */

void fm_sb_encode(struct fm_sb_media *out, const struct fm_sb *sb);
void fm_sb_decode(struct fm_sb *out, const struct fm_sb_media *in);
uint32_t fm_sb_checksum(const struct fm_sb_media *in);

void fm_slot_encode(struct fm_slot_media *out, const struct fm_slot *s);
void fm_slot_decode(struct fm_slot *out, const struct fm_slot_media *in);
uint32_t fm_slot_checksum(const struct fm_slot_media *in);

void fm_log_encode(struct fm_log_media *out, const struct fm_log_rec *r);
uint32_t fm_log_checksum(const struct fm_log_media *in);

/* Layout for a new pool; -EINVAL (with message) when out of limits. */
int fm_layout_compute(struct fm_sb *sb, uint32_t slot_count, uint64_t max_grains);

/* Bitmap bytes for grain_count grains (whole 64-bit words). */
static inline uint64_t fm_bitmap_len(uint64_t grain_count)
{
	return (grain_count + 63) / 64 * 8;
}

/*
 * Result of fm_pool_check: the decoded superblock and what recovery
 * would do.  log_pending: the log holds a committed, not yet applied
 * record (rec) that open will replay.
 */
struct fm_check {
	struct fm_sb sb;
	int log_pending;
	struct fm_log_rec rec;
	uint64_t applied_seq;
	uint32_t in_use;        /* slots in use after replay */
	uint32_t bad_slot;      /* slot index of a failure, if any */
};

/*
 * fm_pool_check -- validate a pool image of `len` bytes at `base`, read-only,
 * in this fixed order, each failure its own errno and message:
 *   -ENODATA          shorter than a superblock, or than the layout says
 *   -EILSEQ           bad signature (not a flashmeta pool)
 *   -EBADMSG          superblock checksum
 *   -EPROTONOSUPPORT  major version
 *   -EOPNOTSUPP       unknown incompat feature bit
 *   -EINVAL           layout (offsets, sizes, reserved bytes)
 *   -ENOTRECOVERABLE  log record with a valid checksum but impossible content
 *   -EUCLEAN          a mapping slot's checksum (slot in c->bad_slot)
 *   -EDOM             a mapping slot's content (state, geometry, dup id)
 *   -ERANGE           a bitmap's location/length, or bits past grain_count
 * The slot named by a pending log record is checked as the record's image
 * (what recovery will write), not as it stands.  Duplicate mapping ids are
 * found only when `ids` (scratch for sb.slot_count ids) is given.  No
 * allocation; cost: one pass over the table and each in-use bitmap's tail.
 */
int fm_pool_check(const void *base, uint64_t len, struct fm_check *c,
		  uint64_t *ids);

/* Validate one decoded in-use slot against the layout (used by check and by
 * replay).  Returns 0, -EDOM or -ERANGE. */
int fm_slot_validate(const struct fm_sb *sb, uint32_t idx, const struct fm_slot *s);

#endif /* FM_PMEM_FORMAT_H */
