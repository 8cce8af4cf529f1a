/* format.c -- encode, decode and validate the on-media pool format. */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>

#include "flashmeta/digest.h"
#include "flashmeta/error.h"
#include "format.h"

static int all_zero(const void *buf, size_t len)
{
	const uint8_t *p = buf;
	for (size_t i = 0; i < len; i++)
		if (p[i])
			return 0;
	return 1;
}

/* ---- superblock ---------------------------------------------------- */

void fm_sb_encode(struct fm_sb_media *out, const struct fm_sb *sb)
{
	memset(out, 0, sizeof(*out));
	memcpy(out->signature, FM_POOL_SIGNATURE, 8);
	fm_le32_put(&out->major, sb->major);
	fm_le32_put(&out->minor, sb->minor);
	fm_le64_put(&out->compat, sb->compat);
	fm_le64_put(&out->incompat, sb->incompat);
	memcpy(out->uuid, sb->uuid, 16);
	fm_le64_put(&out->seq, sb->seq);
	fm_le64_put(&out->pool_size, sb->pool_size);
	fm_le64_put(&out->log_off, sb->log_off);
	fm_le64_put(&out->log_size, sb->log_size);
	fm_le64_put(&out->table_off, sb->table_off);
	fm_le32_put(&out->slot_count, sb->slot_count);
	fm_le32_put(&out->slot_size, sb->slot_size);
	fm_le64_put(&out->bitmap_off, sb->bitmap_off);
	fm_le64_put(&out->bitmap_stride, sb->bitmap_stride);
	fm_le32_put(&out->checksum, fm_sb_checksum(out));
}

void fm_sb_decode(struct fm_sb *out, const struct fm_sb_media *in)
{
	out->major = fm_le32_get(&in->major);
	out->minor = fm_le32_get(&in->minor);
	out->compat = fm_le64_get(&in->compat);
	out->incompat = fm_le64_get(&in->incompat);
	memcpy(out->uuid, in->uuid, 16);
	out->seq = fm_le64_get(&in->seq);
	out->pool_size = fm_le64_get(&in->pool_size);
	out->log_off = fm_le64_get(&in->log_off);
	out->log_size = fm_le64_get(&in->log_size);
	out->table_off = fm_le64_get(&in->table_off);
	out->slot_count = fm_le32_get(&in->slot_count);
	out->slot_size = fm_le32_get(&in->slot_size);
	out->bitmap_off = fm_le64_get(&in->bitmap_off);
	out->bitmap_stride = fm_le64_get(&in->bitmap_stride);
}

uint32_t fm_sb_checksum(const struct fm_sb_media *in)
{
	struct fm_sb_media tmp = *in;

	memset(&tmp.checksum, 0, sizeof(tmp.checksum));
	return fm_crc32c(&tmp, sizeof(tmp));
}

/* ---- slot ---------------------------------------------------------- */

void fm_slot_encode(struct fm_slot_media *out, const struct fm_slot *s)
{
	memset(out, 0, sizeof(*out));
	if (!(s->flags & FM_SLOT_IN_USE))
		return; /* a free slot is all zero, checksum included */
	fm_le64_put(&out->id, s->m.id);
	fm_le64_put(&out->source_vol, s->m.source_vol);
	fm_le64_put(&out->target_vol, s->m.target_vol);
	fm_le64_put(&out->volume_size, s->m.geom.volume_size);
	fm_le64_put(&out->generation, s->m.generation);
	fm_le64_put(&out->bitmap_off, s->bitmap_off);
	fm_le64_put(&out->bitmap_len, s->bitmap_len);
	fm_le32_put(&out->grain_shift, s->m.geom.grain_shift);
	fm_le32_put(&out->state, (uint32_t)s->m.state);
	fm_le32_put(&out->copy_rate, s->m.copy_rate);
	fm_le32_put(&out->flags, s->flags);
	fm_le32_put(&out->checksum, fm_slot_checksum(out));
}

void fm_slot_decode(struct fm_slot *out, const struct fm_slot_media *in)
{
	uint64_t vs = fm_le64_get(&in->volume_size);
	uint32_t shift = fm_le32_get(&in->grain_shift);

	memset(out, 0, sizeof(*out));
	out->flags = fm_le32_get(&in->flags);
	out->m.id = fm_le64_get(&in->id);
	out->m.source_vol = fm_le64_get(&in->source_vol);
	out->m.target_vol = fm_le64_get(&in->target_vol);
	out->m.geom.volume_size = vs;
	out->m.geom.grain_shift = shift;
	/* grain_count is derived; guard the shift so a corrupt record cannot
	 * cause undefined behaviour before it is validated. */
	if (shift < 64)
		out->m.geom.grain_count = (vs >> shift) + !!(vs & ((UINT64_C(1) << shift) - 1));
	out->m.generation = fm_le64_get(&in->generation);
	out->m.copy_rate = fm_le32_get(&in->copy_rate);
	out->m.state = (enum fm_map_state)fm_le32_get(&in->state);
	out->bitmap_off = fm_le64_get(&in->bitmap_off);
	out->bitmap_len = fm_le64_get(&in->bitmap_len);
}

uint32_t fm_slot_checksum(const struct fm_slot_media *in)
{
	struct fm_slot_media tmp = *in;

	memset(&tmp.checksum, 0, sizeof(tmp.checksum));
	return fm_crc32c(&tmp, sizeof(tmp));
}

/* ---- log ----------------------------------------------------------- */

void fm_log_encode(struct fm_log_media *out, const struct fm_log_rec *r)
{
	memset(out, 0, sizeof(*out));
	fm_le64_put(&out->seq, r->seq);
	fm_le32_put(&out->op, r->op);
	fm_le32_put(&out->slot, r->slot);
	out->image = r->image;
	fm_le32_put(&out->checksum, fm_log_checksum(out));
}

uint32_t fm_log_checksum(const struct fm_log_media *in)
{
	struct fm_log_media tmp = *in;

	memset(&tmp.checksum, 0, sizeof(tmp.checksum));
	return fm_crc32c((const uint8_t *)&tmp + FM_LOG_REC_OFF, FM_LOG_REC_LEN);
}

/* ---- layout -------------------------------------------------------- */

static uint64_t round_up(uint64_t x, uint64_t a)
{
	return (x + a - 1) / a * a;
}

int fm_layout_compute(struct fm_sb *sb, uint32_t slot_count, uint64_t max_grains)
{
	uint64_t table_len, stride, size;

	if (slot_count == 0 || slot_count > FM_SLOTS_MAX)
		return fm_err(-EINVAL, "max_mappings %" PRIu32 " not in [1, %u]",
			      slot_count, FM_SLOTS_MAX);
	if (max_grains == 0 || max_grains > FM_POOL_SIZE_MAX)
		return fm_err(-EINVAL, "max_grains %" PRIu64 " not in [1, 2^46]",
			      max_grains);
	table_len = round_up((uint64_t)slot_count * FM_SLOT_SIZE, FM_BLOCK);
	stride = round_up(fm_bitmap_len(max_grains), FM_BLOCK);
	if (stride > (FM_POOL_SIZE_MAX - FM_TABLE_OFF - table_len) / slot_count)
		return fm_err(-EINVAL, "%" PRIu32 " mappings of %" PRIu64
			      " grains exceed the 64 TiB pool limit",
			      slot_count, max_grains);
	size = FM_TABLE_OFF + table_len + stride * slot_count;

	memset(sb, 0, sizeof(*sb));
	sb->major = FM_POOL_MAJOR;
	sb->minor = FM_POOL_MINOR;
	sb->seq = 1;
	sb->pool_size = size;
	sb->log_off = FM_LOG_OFF;
	sb->log_size = FM_BLOCK;
	sb->table_off = FM_TABLE_OFF;
	sb->slot_count = slot_count;
	sb->slot_size = FM_SLOT_SIZE;
	sb->bitmap_off = FM_TABLE_OFF + table_len;
	sb->bitmap_stride = stride;
	return 0;
}

/* ---- validation ---------------------------------------------------- */

int fm_slot_validate(const struct fm_sb *sb, uint32_t idx, const struct fm_slot *s)
{
	const struct fm_mapping *m = &s->m;
	uint64_t want_off = sb->bitmap_off + (uint64_t)idx * sb->bitmap_stride;

	if (s->flags != FM_SLOT_IN_USE)
		return fm_err(-EDOM, "slot %" PRIu32 ": flags 0x%" PRIx32 " unknown",
			      idx, s->flags);
	if ((unsigned)m->state >= FM_MAP_STATE_COUNT)
		return fm_err(-EDOM, "slot %" PRIu32 ": state %u out of range",
			      idx, (unsigned)m->state);
	if (m->geom.grain_shift < FM_GRAIN_SHIFT_MIN ||
	    m->geom.grain_shift > FM_GRAIN_SHIFT_MAX)
		return fm_err(-EDOM, "slot %" PRIu32 ": grain shift %" PRIu32
			      " out of range", idx, m->geom.grain_shift);
	if (m->geom.volume_size == 0 || m->geom.volume_size > FM_VOLUME_SIZE_MAX ||
	    m->geom.volume_size % FM_SECTOR_SIZE)
		return fm_err(-EDOM, "slot %" PRIu32 ": volume size %" PRIu64
			      " invalid", idx, m->geom.volume_size);
	if (m->source_vol == m->target_vol)
		return fm_err(-EDOM, "slot %" PRIu32 ": source == target volume %" PRIu64,
			      idx, m->source_vol);
	if (s->bitmap_off != want_off)
		return fm_err(-ERANGE, "slot %" PRIu32 ": bitmap at %" PRIu64
			      ", expected %" PRIu64, idx, s->bitmap_off, want_off);
	if (s->bitmap_len != fm_bitmap_len(m->geom.grain_count))
		return fm_err(-ERANGE, "slot %" PRIu32 ": bitmap length %" PRIu64
			      " for %" PRIu64 " grains", idx, s->bitmap_len,
			      m->geom.grain_count);
	if (s->bitmap_len > sb->bitmap_stride)
		return fm_err(-ERANGE, "slot %" PRIu32 ": %" PRIu64 " grains need %"
			      PRIu64 " bitmap bytes, pool has %" PRIu64 " per mapping",
			      idx, m->geom.grain_count, s->bitmap_len, sb->bitmap_stride);
	return 0;
}

static int check_sb(const uint8_t *base, uint64_t len, struct fm_sb *sb)
{
	struct fm_sb_media sbm;
	uint64_t table_len;

	/* 1. long enough to hold a superblock */
	if (len < FM_BLOCK)
		return fm_err(-ENODATA, "file is %" PRIu64 " bytes; a pool needs at"
			      " least %u", len, FM_BLOCK);
	memcpy(&sbm, base + FM_SB_OFF, sizeof(sbm));
	/* 2. signature */
	if (memcmp(sbm.signature, FM_POOL_SIGNATURE, 8))
		return fm_err(-EILSEQ, "bad signature: not a flashmeta pool");
	/* 3. checksum */
	if (fm_le32_get(&sbm.checksum) != fm_sb_checksum(&sbm))
		return fm_err(-EBADMSG, "superblock checksum 0x%08" PRIx32
			      " != computed 0x%08" PRIx32,
			      fm_le32_get(&sbm.checksum), fm_sb_checksum(&sbm));
	fm_sb_decode(sb, &sbm);
	/* 4. version and features */
	if (sb->major != FM_POOL_MAJOR)
		return fm_err(-EPROTONOSUPPORT, "pool format %" PRIu32 ".%" PRIu32
			      ", this build reads %u.x", sb->major, sb->minor,
			      FM_POOL_MAJOR);
	if (sb->incompat & ~FM_POOL_INCOMPAT_KNOWN)
		return fm_err(-EOPNOTSUPP, "unknown incompat features 0x%" PRIx64,
			      sb->incompat & ~FM_POOL_INCOMPAT_KNOWN);
	/* 5. layout: exactly what fm_layout_compute would produce */
	if (!all_zero(sbm.reserved, sizeof(sbm.reserved)) ||
	    !all_zero(base + sizeof(sbm), FM_BLOCK - sizeof(sbm)))
		return fm_err(-EINVAL, "superblock reserved bytes not zero");
	if (sb->log_off != FM_LOG_OFF || sb->log_size != FM_BLOCK ||
	    sb->table_off != FM_TABLE_OFF || sb->slot_size != FM_SLOT_SIZE)
		return fm_err(-EINVAL, "layout: log %" PRIu64 "+%" PRIu64 ", table %"
			      PRIu64 ", slot size %" PRIu32 " not the 1.x layout",
			      sb->log_off, sb->log_size, sb->table_off, sb->slot_size);
	if (sb->slot_count == 0 || sb->slot_count > FM_SLOTS_MAX)
		return fm_err(-EINVAL, "layout: slot count %" PRIu32, sb->slot_count);
	table_len = ((uint64_t)sb->slot_count * FM_SLOT_SIZE + FM_BLOCK - 1) /
		    FM_BLOCK * FM_BLOCK;
	if (sb->bitmap_off != FM_TABLE_OFF + table_len)
		return fm_err(-EINVAL, "layout: bitmaps at %" PRIu64 ", expected %"
			      PRIu64, sb->bitmap_off, FM_TABLE_OFF + table_len);
	if (sb->bitmap_stride == 0 || sb->bitmap_stride % FM_BLOCK ||
	    sb->bitmap_stride > FM_POOL_SIZE_MAX / sb->slot_count)
		return fm_err(-EINVAL, "layout: bitmap stride %" PRIu64,
			      sb->bitmap_stride);
	if (sb->pool_size != sb->bitmap_off + sb->bitmap_stride * sb->slot_count ||
	    sb->pool_size > FM_POOL_SIZE_MAX)
		return fm_err(-EINVAL, "layout: pool size %" PRIu64 " inconsistent",
			      sb->pool_size);
	/* 6. the file holds the whole layout */
	if (len < sb->pool_size)
		return fm_err(-ENODATA, "file is %" PRIu64 " bytes, pool needs %"
			      PRIu64 " (truncated?)", len, sb->pool_size);
	return 0;
}

static int check_log(const uint8_t *base, struct fm_check *c)
{
	struct fm_log_media lm;
	const struct fm_sb *sb = &c->sb;
	struct fm_slot s;

	memcpy(&lm, base + sb->log_off, sizeof(lm));
	c->applied_seq = fm_le64_get(&lm.applied_seq);
	c->log_pending = 0;
	if (!all_zero(lm.pad, sizeof(lm.pad)) ||
	    !all_zero(base + sb->log_off + sizeof(lm), sb->log_size - sizeof(lm)))
		return fm_err(-EINVAL, "log padding not zero");
	/* A record with a bad checksum, or one already applied, is not
	 * pending: it was torn before its commit point or is history. */
	if (fm_le32_get(&lm.checksum) != fm_log_checksum(&lm))
		return 0;
	c->rec.seq = fm_le64_get(&lm.seq);
	c->rec.op = fm_le32_get(&lm.op);
	c->rec.slot = fm_le32_get(&lm.slot);
	c->rec.image = lm.image;
	if (c->rec.seq <= c->applied_seq) {
		if (c->rec.seq != c->applied_seq)
			return fm_err(-ENOTRECOVERABLE, "log: record seq %" PRIu64
				      " behind applied %" PRIu64, c->rec.seq,
				      c->applied_seq);
		return 0;
	}
	if (c->rec.seq != c->applied_seq + 1)
		return fm_err(-ENOTRECOVERABLE, "log: record seq %" PRIu64
			      " skips ahead of applied %" PRIu64, c->rec.seq,
			      c->applied_seq);
	if (c->rec.op == FM_LOG_NONE || c->rec.op >= FM_LOG_OP_COUNT)
		return fm_err(-ENOTRECOVERABLE, "log: op %" PRIu32 " unknown", c->rec.op);
	if (c->rec.slot >= sb->slot_count)
		return fm_err(-ENOTRECOVERABLE, "log: slot %" PRIu32 " >= %" PRIu32,
			      c->rec.slot, sb->slot_count);
	if (!all_zero(lm.reserved, sizeof(lm.reserved)))
		return fm_err(-ENOTRECOVERABLE, "log: reserved bytes not zero");
	fm_slot_decode(&s, &lm.image);
	if (c->rec.op == FM_LOG_DELETE) {
		if (!all_zero(&lm.image, sizeof(lm.image)))
			return fm_err(-ENOTRECOVERABLE, "log: delete with an image");
	} else {
		if (fm_le32_get(&lm.image.checksum) != fm_slot_checksum(&lm.image) ||
		    fm_slot_validate(sb, c->rec.slot, &s))
			return fm_err(-ENOTRECOVERABLE, "log: %s record's slot image"
				      " invalid", c->rec.op == FM_LOG_CREATE ? "create" :
				      "update");
	}
	c->log_pending = 1;
	return 0;
}

static int check_bitmap(const uint8_t *base, const struct fm_sb *sb, uint32_t idx,
			const struct fm_slot *s)
{
	const uint8_t *bm = base + s->bitmap_off;
	uint64_t gc = s->m.geom.grain_count;

	if (gc % 64) {
		fm_le64 last;
		memcpy(&last, bm + s->bitmap_len - 8, 8);
		if (fm_le64_get(&last) >> (gc % 64))
			return fm_err(-ERANGE, "slot %" PRIu32 ": bits set past grain"
				      " %" PRIu64, idx, gc);
	}
	if (!all_zero(bm + s->bitmap_len, sb->bitmap_stride - s->bitmap_len))
		return fm_err(-ERANGE, "slot %" PRIu32 ": bits set past the bitmap"
			      " end (%" PRIu64 " bytes)", idx, s->bitmap_len);
	return 0;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

int fm_pool_check(const void *vbase, uint64_t len, struct fm_check *c,
		  uint64_t *ids)
{
	const uint8_t *base = vbase;
	int ret;

	memset(c, 0, sizeof(*c));
	ret = check_sb(base, len, &c->sb);
	if (ret)
		return ret;
	ret = check_log(base, c);
	if (ret)
		return ret;

	/* mapping slots: checksum, then content, then bitmap bounds */
	for (uint32_t i = 0; i < c->sb.slot_count; i++) {
		struct fm_slot_media sm;
		struct fm_slot s;
		int pending = c->log_pending && c->rec.slot == i;

		c->bad_slot = i;
		if (pending)
			sm = c->rec.image; /* recovery writes this */
		else
			memcpy(&sm, base + c->sb.table_off + (uint64_t)i * FM_SLOT_SIZE,
			       sizeof(sm));
		if (all_zero(&sm, sizeof(sm)))
			continue;
		if (fm_le32_get(&sm.checksum) != fm_slot_checksum(&sm))
			return fm_err(-EUCLEAN, "slot %" PRIu32 ": checksum 0x%08" PRIx32
				      " != computed 0x%08" PRIx32, i,
				      fm_le32_get(&sm.checksum), fm_slot_checksum(&sm));
		fm_slot_decode(&s, &sm);
		if (!all_zero(sm.reserved, sizeof(sm.reserved)))
			return fm_err(-EDOM, "slot %" PRIu32 ": reserved bytes not zero", i);
		ret = fm_slot_validate(&c->sb, i, &s);
		if (ret)
			return ret;
		if (ids)
			ids[c->in_use] = s.m.id;
		/* bitmap is cleared by a pending create/restart: skip it */
		if (!(pending && c->rec.op != FM_LOG_TRANSITION)) {
			ret = check_bitmap(base, &c->sb, i, &s);
			if (ret)
				return ret;
		}
		c->in_use++;
	}
	c->bad_slot = 0;
	if (ids && c->in_use > 1) {
		qsort(ids, c->in_use, sizeof(*ids), cmp_u64);
		for (uint32_t i = 1; i < c->in_use; i++)
			if (ids[i] == ids[i - 1])
				return fm_err(-EDOM, "two slots hold mapping %" PRIu64,
					      ids[i]);
	}
	return 0;
}
