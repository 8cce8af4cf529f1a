/* format.h -- the on-media format of a flashmeta pool (internal).
 *
 * A pool is one file (or devdax device) mapped with libpmem:
 *
 *   offset 0            superblock      4 KiB block, 256-byte record, rest zero
 *   FM_LOG_OFF          log block       4 KiB: applied word, redo log
 *                                       record(s), owner record (below)
 *   sb.table_off        mapping table   slot_count slots of 128 bytes
 *   sb.bitmap_off       split bitmaps   slot_count * bitmap_stride bytes
 *   sb.changed_off      changed bitmaps slot_count * bitmap_stride bytes
 *                                       (CHANGED pools, 1.4; else 0)
 *
 * The log block, by byte offset (format 1.1/1.2 with every feature; a 1.0 pool
 * -- incompat 0 -- uses only bytes [0, 256) and the rest is zero):
 *
 *   [0, 8)      applied word: the seq of the last applied log record, one
 *               failure-atomic 8-byte store.  SEQ_CHECK: bits 0..47 the
 *               seq, bits 48..63 CRC-16/CCITT of the seq's 6 LE bytes, so a
 *               flipped bit is detected; 1.0: the plain seq.
 *   [8, 64)     zero
 *   [64, 256)   log record A (struct fm_log_rec_media, 192 bytes).  1.0:
 *               the only record.  LOG_AB: the record of every even seq.
 *   [256, 448)  LOG_AB: log record B, the record of every odd seq; a record
 *               is written over the one before the applied one, so a torn
 *               write never destroys the applied record (nor its count of
 *               slots in use).  Else zero.
 *   [448, 512)  OWNER: owner record copy 0 (struct fm_owner_media)
 *   [512, 576)  OWNER: owner record copy 1; the valid copy with the higher
 *               seq is the record (see fm_owner_media).  Else zero.
 *   [576, 4096) zero
 *
 * All integers are little-endian on media.  Media structs are made of byte
 * arrays (fm_le64/fm_le32), so they cannot be used as host integers by
 * accident; fm_*_encode/decode convert to and from host structs.  Every
 * record carries a CRC-32C computed with its own checksum field zeroed.
 * Reserved bytes must be zero and are checked.
 *
 * The superblock is written once, last, at create time: a pool whose
 * superblock is valid has an initialised log block and a zeroed table and
 * bitmaps behind it.  Mapping slots are never written in place except by
 * log replay (see store.c): a slot is either all zero (free) or a
 * checksummed record.
 *
 * Bitmap of the mapping in slot s lives at bitmap_off + s * bitmap_stride;
 * grain g is bit (g % 64) of the little-endian 64-bit word g / 64.  Bits past
 * grain_count are zero, and so is the whole bitmap area of a free slot.
 * Each word is updated by failure-atomic 8-byte stores.  The changed
 * bitmap of slot s (CHANGED pools) lives at changed_off + s * bitmap_stride,
 * laid out and bounded the same way, zero in a free slot.
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
#define FM_POOL_MINOR 4u
/*
 * Feature bits.  An unknown incompat bit refuses the open; unknown compat
 * bits are ignored.  1.0 defines none; 1.1 adds three incompat bits, each
 * of which a 1.0 binary would misread (so it must refuse the pool), and
 * creates pools with all of them.  A pool without them (1.0) is still
 * read and written the 1.0 way.
 *
 * 1.2 adds SLOT_EXT (incompat): a slot may carry the flags AUTODELETE and
 * GROUP_PENDING and a consistency group id (struct fm_slot_media).  It is
 * incompat, not compat, because ignoring it is unsafe: a binary that does
 * not know GROUP_PENDING would serve a half-started group (one member at
 * the trigger, another still at its old image) where this one completes
 * the start first (store.c, group start).  A 1.1 binary refuses such a
 * pool at the superblock ("unknown incompat features 0x8") before it reads
 * a slot, instead of failing later on a slot's "unknown flags".  Pools
 * made by 1.1 (incompat 0x7) or 1.0 are opened as they are and never
 * upgraded in place (the superblock is written once, at create, and a
 * torn rewrite would lose the pool): in them a slot's flags stay IN_USE
 * and its group 0, and the operations that need more refuse
 * (-EOPNOTSUPP).
 *
 * 1.3 adds RESTORE (incompat): the log may hold a REVERSE record (two
 * slots: the mapping moves from `from_slot` to `slot` with its bitmap
 * inverted -- store.c, restore) and a slot may carry the flag REVERSED.
 * Incompat because a 1.2 binary would refuse the pending record as an
 * unknown op only after a crash, and would serve a reversed mapping in
 * the wrong direction.  A 1.2 pool (incompat 0xf) opens as it is;
 * map-restore on it is refused (-EOPNOTSUPP).
 *
 * 1.4 adds CHANGED (incompat): a second bitmap per slot, the CHANGED set
 * (grains written on either volume since the mapping's last trigger, as
 * reported to the owner), in its own area after the split bitmaps
 * (sb.changed_off, same stride), the slot flag CHANGED_UNKNOWN and the
 * log op REFRESH (store.c, refresh).  Incompat because a 1.3 binary would
 * start the mapping without clearing the changed set -- a later refresh
 * would then keep grains written before that start -- and would refuse
 * the flag and the op only after the fact.  Older pools open as they are
 * (the superblock is written once); map-refresh on them is refused
 * (-EOPNOTSUPP).
 */
#define FM_POOL_COMPAT_KNOWN UINT64_C(0)
#define FM_POOL_INCOMPAT_SEQ_CHECK UINT64_C(0x1) /* applied word self-checking */
#define FM_POOL_INCOMPAT_LOG_AB UINT64_C(0x2)    /* log records A/B + in-use count */
#define FM_POOL_INCOMPAT_OWNER UINT64_C(0x4)     /* owner record in the log block */
#define FM_POOL_INCOMPAT_SLOT_EXT UINT64_C(0x8)  /* 1.2: slot flags, group id */
#define FM_POOL_INCOMPAT_RESTORE UINT64_C(0x10)  /* 1.3: REVERSE op, REVERSED flag */
#define FM_POOL_INCOMPAT_CHANGED UINT64_C(0x20)  /* 1.4: changed bitmaps, REFRESH op */
#define FM_POOL_INCOMPAT_1_1 (FM_POOL_INCOMPAT_SEQ_CHECK | \
			      FM_POOL_INCOMPAT_LOG_AB | FM_POOL_INCOMPAT_OWNER)
#define FM_POOL_INCOMPAT_1_2 (FM_POOL_INCOMPAT_1_1 | FM_POOL_INCOMPAT_SLOT_EXT)
#define FM_POOL_INCOMPAT_1_3 (FM_POOL_INCOMPAT_1_2 | FM_POOL_INCOMPAT_RESTORE)
#define FM_POOL_INCOMPAT_KNOWN (FM_POOL_INCOMPAT_1_3 | FM_POOL_INCOMPAT_CHANGED)
#define FM_POOL_INCOMPAT_1_4 FM_POOL_INCOMPAT_KNOWN /* what create writes */

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
	fm_le64 changed_off;   /* CHANGED: changed bitmaps; else 0 */
	uint8_t reserved[132];
	fm_le32 checksum;      /* CRC-32C of the 256 bytes, this field zeroed */
};
static_assert(sizeof(struct fm_sb_media) == 256, "superblock record size");
static_assert(offsetof(struct fm_sb_media, major) == 8, "sb major");
static_assert(offsetof(struct fm_sb_media, uuid) == 32, "sb uuid");
static_assert(offsetof(struct fm_sb_media, seq) == 48, "sb seq");
static_assert(offsetof(struct fm_sb_media, bitmap_stride) == 104, "sb stride");
static_assert(offsetof(struct fm_sb_media, changed_off) == 112, "sb changed_off");
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
	uint64_t changed_off;
};

/* ---- mapping slot -------------------------------------------------- */

/*
 * Slot flags.  IN_USE is set in every record (a free slot is all zero).
 * SLOT_EXT pools (1.2) only:
 *   AUTODELETE     delete the mapping when its copy completes
 *                  (map-autodelete); set and cleared by a logged slot
 *                  image like any transition.
 *   GROUP_PENDING  on the lowest-id member of consistency group `group`
 *                  only: a group start is committed and not yet complete.
 *                  Recovery applies START to every member of the group
 *                  still PREPARED, then clears it (store.c, group start),
 *                  before the store is handed to anyone.
 * RESTORE pools (1.3) also:
 *   REVERSED       the mapping copies the volume it was created with as
 *                  target to the one it was created with as source
 *                  (source_vol/target_vol hold the current direction);
 *                  toggled by each restore.  Clients attach volumes in
 *                  the created direction and swap them while it is set.
 * CHANGED pools (1.4) also:
 *   CHANGED_UNKNOWN  the changed bitmap may miss writes of this generation
 *                  (a session ended without its report): the next
 *                  refresh recopies every grain.  Cleared by any start,
 *                  restart, restore or refresh.
 * `group`: the consistency group the mapping belongs to, 0 = none; zero
 * (reserved) in a pool without SLOT_EXT.
 */
#define FM_SLOT_IN_USE 0x1u
#define FM_SLOT_AUTODELETE 0x2u
#define FM_SLOT_GROUP_PENDING 0x4u
#define FM_SLOT_REVERSED 0x8u
#define FM_SLOT_CHANGED_UNKNOWN 0x10u
#define FM_SLOT_FLAGS_EXT (FM_SLOT_AUTODELETE | FM_SLOT_GROUP_PENDING)

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
	fm_le32 flags;       /* FM_SLOT_* */
	fm_le64 group;       /* SLOT_EXT: consistency group, 0 none; else 0 */
	uint8_t reserved[44];
	fm_le32 checksum;
};
static_assert(sizeof(struct fm_slot_media) == FM_SLOT_SIZE, "slot size");
static_assert(offsetof(struct fm_slot_media, flags) == 68, "slot flags");
static_assert(offsetof(struct fm_slot_media, group) == 72, "slot group");
static_assert(offsetof(struct fm_slot_media, generation) == 32, "slot gen");
static_assert(offsetof(struct fm_slot_media, grain_shift) == 56, "slot shift");
static_assert(offsetof(struct fm_slot_media, checksum) == 124, "slot checksum");

struct fm_slot {
	uint32_t flags;
	uint64_t group;
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
	FM_LOG_REVERSE = 5,    /* RESTORE: bitmap of slot := NOT bitmap of
				* from_slot, write slot, clear and zero
				* from_slot (store.c, restore) */
	FM_LOG_REFRESH = 6,    /* CHANGED: bitmap &= NOT changed bitmap,
				* write slot, clear changed bitmap
				* (store.c, refresh) */
	FM_LOG_OP_COUNT
};

/* One log record: 192 bytes, checksummed (CRC-32C of the 192 bytes with
 * the checksum field zeroed -- in a 1.0 pool the same bytes [64, 256) of the
 * log block as before, so the encoding is unchanged). */
struct fm_log_rec_media {
	fm_le64 seq;
	fm_le32 op;
	fm_le32 slot;
	struct fm_slot_media image; /* the slot after the op (zero for delete) */
	fm_le32 in_use;        /* LOG_AB: slots in use after the op; 1.0: 0 */
	fm_le32 from_slot;     /* REVERSE: the slot the mapping leaves; else 0 */
	uint8_t reserved[36];
	fm_le32 checksum;
};
static_assert(sizeof(struct fm_log_rec_media) == 192, "log record size");
static_assert(offsetof(struct fm_log_rec_media, image) == 16, "log rec image");
static_assert(offsetof(struct fm_log_rec_media, in_use) == 144, "log rec in_use");
static_assert(offsetof(struct fm_log_rec_media, from_slot) == 148, "log rec from_slot");
static_assert(offsetof(struct fm_log_rec_media, checksum) == 188, "log rec checksum");

/*
 * Owner record copy: 64 bytes, one cache line.  Two copies; an update
 * writes the copy that does not hold the record with seq + 1 and persists
 * it (store.c, __owner_write).  A torn copy fails its checksum and the
 * other one stands.  An all-zero copy was never written.  Valid copies
 * have seq >= 1; when both are valid their seqs differ by one and their
 * incarnations by at most one.
 */
struct fm_owner_media {
	fm_le64 seq;           /* 1 at creation, +1 per update */
	fm_le64 incarnation;   /* 0: no owner has served this pool */
	fm_le32 hold_ms;
	uint8_t reserved[40];
	fm_le32 checksum;      /* CRC-32C of the 64 bytes, this field zeroed */
};
static_assert(sizeof(struct fm_owner_media) == 64, "owner record size");
static_assert(offsetof(struct fm_owner_media, hold_ms) == 16, "owner hold_ms");
static_assert(offsetof(struct fm_owner_media, checksum) == 60, "owner checksum");

struct fm_log_media {
	fm_le64 applied_seq;   /* 8-byte failure-atomic word (see above) */
	uint8_t pad[56];       /* records start on their own cache line */
	struct fm_log_rec_media rec[2];     /* A, B (B: LOG_AB only) */
	struct fm_owner_media owner[2];     /* OWNER only */
};
static_assert(sizeof(struct fm_log_media) == 576, "log block used bytes");
static_assert(offsetof(struct fm_log_media, rec) == 64, "log record A");
static_assert(offsetof(struct fm_log_media, rec[1]) == 256, "log record B");
static_assert(offsetof(struct fm_log_media, owner) == 448, "owner copy 0");
static_assert(offsetof(struct fm_log_media, owner[1]) == 512, "owner copy 1");
#define FM_LOG_REC_OFF 64u     /* record A in the log block */
#define FM_LOG_REC_LEN 192u
#define FM_LOG_OWNER_OFF 448u  /* owner copy 0 in the log block */
#define FM_LOG_USED_LEN 576u   /* bytes of the log block a 1.1 pool uses */
#define FM_LOG_USED_1_0 256u   /* bytes of the log block a 1.0 pool uses */

/* SEQ_CHECK applied word: 48-bit seq, 16-bit check value above it. */
#define FM_SEQ_MAX ((UINT64_C(1) << 48) - 1)

struct fm_log_rec {
	uint64_t seq;
	uint32_t op;
	uint32_t slot;
	uint32_t in_use;
	uint32_t from_slot;         /* REVERSE only */
	struct fm_slot_media image; /* kept encoded: written verbatim */
};

struct fm_owner {
	uint64_t seq;
	uint64_t incarnation;
	uint32_t hold_ms;
};

/* ---- functions ----------------------------------------------------- */

void fm_sb_encode(struct fm_sb_media *out, const struct fm_sb *sb);
void fm_sb_decode(struct fm_sb *out, const struct fm_sb_media *in);
uint32_t fm_sb_checksum(const struct fm_sb_media *in);

void fm_slot_encode(struct fm_slot_media *out, const struct fm_slot *s);
void fm_slot_decode(struct fm_slot *out, const struct fm_slot_media *in);
uint32_t fm_slot_checksum(const struct fm_slot_media *in);

void fm_log_encode(struct fm_log_rec_media *out, const struct fm_log_rec *r);
void fm_log_decode(struct fm_log_rec *out, const struct fm_log_rec_media *in);
uint32_t fm_log_checksum(const struct fm_log_rec_media *in);

/* Record slot (0 = A, 1 = B) of log seq `seq` in a pool with `incompat`. */
static inline unsigned fm_log_rec_index(uint64_t incompat, uint64_t seq)
{
	return (incompat & FM_POOL_INCOMPAT_LOG_AB) ? (unsigned)(seq & 1) : 0;
}

/* CRC-16/CCITT (poly 0x1021, init 0xffff, no reflection): the check value
 * of the applied word ("123456789" -> 0x29b1). */
uint16_t fm_crc16_ccitt(const void *buf, size_t len);

/* The applied word for `seq`: SEQ_CHECK (seq <= FM_SEQ_MAX) or plain. */
uint64_t fm_applied_encode(uint64_t incompat, uint64_t seq);
/* Decode an applied word: 0 and *seq, or -ENOTRECOVERABLE with a message
 * when its check value does not match (SEQ_CHECK pools only). */
int fm_applied_decode(uint64_t incompat, uint64_t word, uint64_t *seq);

void fm_owner_encode(struct fm_owner_media *out, const struct fm_owner *o);
void fm_owner_decode(struct fm_owner *out, const struct fm_owner_media *in);
uint32_t fm_owner_checksum(const struct fm_owner_media *in);

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
	int log_counts;         /* LOG_AB: log_in_use is known */
	uint32_t log_in_use;    /* slots in use the log recorded (after replay) */
	int owner_known;        /* OWNER: owner (below) is the valid record */
	struct fm_owner owner;
	uint32_t owner_copy;    /* which copy holds it (0 or 1) */
	int owner_other_torn;   /* the other copy is neither zero nor valid */
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
 *   -EINVAL           layout (offsets, sizes, superblock reserved bytes)
 *   -ENOTRECOVERABLE  log damage, in this order: log block bytes that must
 *                     be zero; the applied word's check value (SEQ_CHECK);
 *                     the record of the applied seq missing or damaged
 *                     (LOG_AB); a valid record whose seq is neither the
 *                     applied one, its successor nor (LOG_AB) its
 *                     predecessor; a pending record's op, slot, reserved
 *                     bytes, in-use count or slot image; a pending
 *                     create or reverse whose slot holds a record that
 *                     is neither zero nor (word by word) its image; a
 *                     pending reverse whose slot is not yet its image
 *                     and whose from_slot no longer holds the mapping
 *                     intact (recovery inverts that slot's bitmap)
 *   -EBADE            owner record (OWNER): neither copy valid, or two
 *                     valid copies that cannot follow one another
 *   then each slot in index order:
 *   -EUCLEAN            an in-use slot's checksum (slot in c->bad_slot)
 *   -EDOM               an in-use slot's content (flags, state, geometry,
 *                       copy rate)
 *   -ERANGE             its bitmap's location/length, or bits past
 *                       grain_count (in its changed bitmap too, CHANGED)
 *   -ENOTEMPTY          a free slot whose bitmap area (or changed bitmap
 *                       area, CHANGED) holds set bits (the trace of a
 *                       zeroed mapping record)
 *   then, over the whole table:
 *   -EDOM             two slots hold one mapping id
 *   -EIDRM            slots in use differ from the count the log recorded
 *                     (LOG_AB): a mapping record was zeroed (it reads as a
 *                     free slot) or appeared from nowhere
 * A pending reverse's from_slot is skipped in the slot pass (checked as
 * above, zeroed by recovery).
 * The slot named by a pending log record is checked as the record's image
 * (what recovery will write), not as it stands, and its bitmap not at all
 * if recovery clears it.  Duplicate mapping ids are found only when `ids`
 * (scratch for sb.slot_count ids) is given.  No allocation; cost: one pass
 * over the table, each in-use bitmap's tail and each free slot's whole
 * bitmap area.
 */
int fm_pool_check(const void *base, uint64_t len, struct fm_check *c,
		  uint64_t *ids);

/* Validate one decoded in-use slot against the layout and the pool's
 * features (used by check and by replay): flags other than IN_USE or a
 * group id need SLOT_EXT; GROUP_PENDING needs a group.  Returns 0, -EDOM
 * or -ERANGE. */
int fm_slot_validate(const struct fm_sb *sb, uint32_t idx, const struct fm_slot *s);

#endif /* FM_PMEM_FORMAT_H */
