/* format.c -- encode, decode and validate the on-media pool format. */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>

#include "flashmeta/digest.h"
#include "flashmeta/copy.h"
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
	fm_le64_put(&out->changed_off, sb->changed_off);
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
	out->changed_off = fm_le64_get(&in->changed_off);
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
	fm_le64_put(&out->group, s->group);
	fm_le32_put(&out->checksum, fm_slot_checksum(out));
}

void fm_slot_decode(struct fm_slot *out, const struct fm_slot_media *in)
{
	uint64_t vs = fm_le64_get(&in->volume_size);
	uint32_t shift = fm_le32_get(&in->grain_shift);

	memset(out, 0, sizeof(*out));
	out->flags = fm_le32_get(&in->flags);
	out->group = fm_le64_get(&in->group);
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

void fm_log_encode(struct fm_log_rec_media *out, const struct fm_log_rec *r)
{
	memset(out, 0, sizeof(*out));
	fm_le64_put(&out->seq, r->seq);
	fm_le32_put(&out->op, r->op);
	fm_le32_put(&out->slot, r->slot);
	out->image = r->image;
	fm_le32_put(&out->in_use, r->in_use);
	fm_le32_put(&out->from_slot, r->from_slot);
	fm_le32_put(&out->checksum, fm_log_checksum(out));
}

void fm_log_decode(struct fm_log_rec *out, const struct fm_log_rec_media *in)
{
	out->seq = fm_le64_get(&in->seq);
	out->op = fm_le32_get(&in->op);
	out->slot = fm_le32_get(&in->slot);
	out->in_use = fm_le32_get(&in->in_use);
	out->from_slot = fm_le32_get(&in->from_slot);
	out->image = in->image;
}

uint32_t fm_log_checksum(const struct fm_log_rec_media *in)
{
	struct fm_log_rec_media tmp = *in;

	memset(&tmp.checksum, 0, sizeof(tmp.checksum));
	return fm_crc32c(&tmp, sizeof(tmp));
}

uint16_t fm_crc16_ccitt(const void *buf, size_t len)
{
	const uint8_t *p = buf;
	uint16_t crc = 0xffff;

	for (size_t i = 0; i < len; i++) {
		crc ^= (uint16_t)(p[i] << 8);
		for (int b = 0; b < 8; b++)
			crc = (uint16_t)(crc & 0x8000 ? (crc << 1) ^ 0x1021 : crc << 1);
	}
	return crc;
}

static uint16_t seq_check(uint64_t seq)
{
	uint8_t b[6];

	for (int i = 0; i < 6; i++, seq >>= 8)
		b[i] = (uint8_t)seq;
	return fm_crc16_ccitt(b, sizeof(b));
}

uint64_t fm_applied_encode(uint64_t incompat, uint64_t seq)
{
	if (!(incompat & FM_POOL_INCOMPAT_SEQ_CHECK))
		return seq;
	seq &= FM_SEQ_MAX;
	return seq | (uint64_t)seq_check(seq) << 48;
}

int fm_applied_decode(uint64_t incompat, uint64_t word, uint64_t *seq)
{
	uint16_t want;

	if (!(incompat & FM_POOL_INCOMPAT_SEQ_CHECK)) {
		*seq = word;
		return 0;
	}
	*seq = word & FM_SEQ_MAX;
	want = seq_check(*seq);
	if ((uint16_t)(word >> 48) != want)
		return fm_err(-ENOTRECOVERABLE, "log: applied word 0x%016" PRIx64
			      " damaged (check 0x%04x, seq %" PRIu64 " needs 0x%04x)",
			      word, (unsigned)(word >> 48), *seq, (unsigned)want);
	return 0;
}

/* ---- owner record ---------------------------------------------------- */

void fm_owner_encode(struct fm_owner_media *out, const struct fm_owner *o)
{
	memset(out, 0, sizeof(*out));
	fm_le64_put(&out->seq, o->seq);
	fm_le64_put(&out->incarnation, o->incarnation);
	fm_le32_put(&out->hold_ms, o->hold_ms);
	fm_le32_put(&out->checksum, fm_owner_checksum(out));
}

void fm_owner_decode(struct fm_owner *out, const struct fm_owner_media *in)
{
	out->seq = fm_le64_get(&in->seq);
	out->incarnation = fm_le64_get(&in->incarnation);
	out->hold_ms = fm_le32_get(&in->hold_ms);
}

uint32_t fm_owner_checksum(const struct fm_owner_media *in)
{
	struct fm_owner_media tmp = *in;

	memset(&tmp.checksum, 0, sizeof(tmp.checksum));
	return fm_crc32c(&tmp, sizeof(tmp));
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
	/* two bitmaps per slot: split and changed (1.4) */
	if (stride > (FM_POOL_SIZE_MAX - FM_TABLE_OFF - table_len) / slot_count / 2)
		return fm_err(-EINVAL, "%" PRIu32 " mappings of %" PRIu64
			      " grains exceed the 64 TiB pool limit",
			      slot_count, max_grains);
	size = FM_TABLE_OFF + table_len + 2 * stride * slot_count;

	memset(sb, 0, sizeof(*sb));
	sb->major = FM_POOL_MAJOR;
	sb->minor = FM_POOL_MINOR;
	sb->incompat = FM_POOL_INCOMPAT_1_4;
	sb->seq = 1;
	sb->pool_size = size;
	sb->log_off = FM_LOG_OFF;
	sb->log_size = FM_BLOCK;
	sb->table_off = FM_TABLE_OFF;
	sb->slot_count = slot_count;
	sb->slot_size = FM_SLOT_SIZE;
	sb->bitmap_off = FM_TABLE_OFF + table_len;
	sb->bitmap_stride = stride;
	sb->changed_off = sb->bitmap_off + stride * slot_count;
	return 0;
}

/* ---- validation ---------------------------------------------------- */

int fm_slot_validate(const struct fm_sb *sb, uint32_t idx, const struct fm_slot *s)
{
	const struct fm_mapping *m = &s->m;
	uint64_t want_off = sb->bitmap_off + (uint64_t)idx * sb->bitmap_stride;
	uint32_t known = FM_SLOT_IN_USE;

	if (sb->incompat & FM_POOL_INCOMPAT_SLOT_EXT)
		known |= FM_SLOT_FLAGS_EXT;
	if (sb->incompat & FM_POOL_INCOMPAT_RESTORE)
		known |= FM_SLOT_REVERSED;
	if (sb->incompat & FM_POOL_INCOMPAT_CHANGED)
		known |= FM_SLOT_CHANGED_UNKNOWN;
	if (!(s->flags & FM_SLOT_IN_USE) || (s->flags & ~known))
		return fm_err(-EDOM, "slot %" PRIu32 ": flags 0x%" PRIx32 " unknown%s",
			      idx, s->flags, (sb->incompat & FM_POOL_INCOMPAT_SLOT_EXT) ? "" :
			      " (a 1.0/1.1 pool knows only in-use)");
	if (s->group && !(sb->incompat & FM_POOL_INCOMPAT_SLOT_EXT))
		return fm_err(-EDOM, "slot %" PRIu32 ": reserved bytes not zero (a group id"
			      " in a pool without slot extensions)", idx);
	if ((s->flags & FM_SLOT_GROUP_PENDING) && !s->group)
		return fm_err(-EDOM, "slot %" PRIu32 ": group start pending without a group",
			      idx);
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
	if (m->copy_rate > FM_COPY_RATE_MAX)
		return fm_err(-EDOM, "slot %" PRIu32 ": copy rate %" PRIu32 " > %u", idx,
			      m->copy_rate, FM_COPY_RATE_MAX);
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
	/* CHANGED (1.4): the changed bitmaps follow the split bitmaps; before
	 * 1.4 the field is reserved (zero) */
	if (sb->incompat & FM_POOL_INCOMPAT_CHANGED) {
		if (sb->bitmap_stride > FM_POOL_SIZE_MAX / sb->slot_count / 2 ||
		    sb->changed_off != sb->bitmap_off + sb->bitmap_stride * sb->slot_count)
			return fm_err(-EINVAL, "layout: changed bitmaps at %" PRIu64
				      ", expected %" PRIu64, sb->changed_off,
				      sb->bitmap_off + sb->bitmap_stride * sb->slot_count);
	} else if (sb->changed_off) {
		return fm_err(-EINVAL, "superblock reserved bytes not zero (changed"
			      " bitmaps in a pool without the changed feature)");
	}
	if (sb->pool_size != sb->bitmap_off + sb->bitmap_stride * sb->slot_count *
			     ((sb->incompat & FM_POOL_INCOMPAT_CHANGED) ? 2 : 1) ||
	    sb->pool_size > FM_POOL_SIZE_MAX)
		return fm_err(-EINVAL, "layout: pool size %" PRIu64 " inconsistent",
			      sb->pool_size);
	/* 6. the file holds the whole layout */
	if (len < sb->pool_size)
		return fm_err(-ENODATA, "file is %" PRIu64 " bytes, pool needs %"
			      PRIu64 " (truncated?)", len, sb->pool_size);
	return 0;
}

static const char *op_word(uint32_t op)
{
	switch (op) {
	case FM_LOG_CREATE: return "create";
	case FM_LOG_DELETE: return "delete";
	case FM_LOG_TRANSITION: return "transition";
	case FM_LOG_RESTART: return "restart";
	case FM_LOG_REVERSE: return "reverse";
	case FM_LOG_REFRESH: return "refresh";
	}
	return "?";
}

static int rec_valid(const struct fm_log_rec_media *m)
{
	return fm_le32_get(&m->checksum) == fm_log_checksum(m);
}

/* A record that recovery will replay: everything it trusts. */
static int check_pending(const struct fm_sb *sb, const struct fm_log_rec_media *m,
			 const struct fm_log_rec *r)
{
	struct fm_slot s;

	if (r->op == FM_LOG_NONE || r->op >= FM_LOG_OP_COUNT)
		return fm_err(-ENOTRECOVERABLE, "log: op %" PRIu32 " unknown", r->op);
	if (r->slot >= sb->slot_count)
		return fm_err(-ENOTRECOVERABLE, "log: slot %" PRIu32 " >= %" PRIu32,
			      r->slot, sb->slot_count);
	if (!all_zero(m->reserved, sizeof(m->reserved)))
		return fm_err(-ENOTRECOVERABLE, "log: reserved bytes not zero");
	if (r->op == FM_LOG_REVERSE) {
		if (!(sb->incompat & FM_POOL_INCOMPAT_RESTORE))
			return fm_err(-ENOTRECOVERABLE, "log: a reverse record in a pool "
				      "without the restore feature");
		if (r->from_slot >= sb->slot_count || r->from_slot == r->slot)
			return fm_err(-ENOTRECOVERABLE, "log: reverse from slot %" PRIu32
				      " to slot %" PRIu32 " impossible", r->from_slot,
				      r->slot);
	} else if (r->from_slot) {
		return fm_err(-ENOTRECOVERABLE, "log: reserved bytes not zero");
	}
	if (r->op == FM_LOG_REFRESH && !(sb->incompat & FM_POOL_INCOMPAT_CHANGED))
		return fm_err(-ENOTRECOVERABLE, "log: a refresh record in a pool "
			      "without the changed feature");
	if (sb->incompat & FM_POOL_INCOMPAT_LOG_AB) {
		if (r->in_use > sb->slot_count)
			return fm_err(-ENOTRECOVERABLE, "log: %" PRIu32 " slots in use"
				      " > %" PRIu32, r->in_use, sb->slot_count);
	} else if (r->in_use) {
		return fm_err(-ENOTRECOVERABLE, "log: reserved bytes not zero");
	}
	fm_slot_decode(&s, &r->image);
	if (r->op == FM_LOG_DELETE) {
		if (!all_zero(&r->image, sizeof(r->image)))
			return fm_err(-ENOTRECOVERABLE, "log: delete with an image");
	} else {
		if (fm_le32_get(&r->image.checksum) != fm_slot_checksum(&r->image) ||
		    !all_zero(r->image.reserved, sizeof(r->image.reserved)) ||
		    fm_slot_validate(sb, r->slot, &s))
			return fm_err(-ENOTRECOVERABLE, "log: %s record's slot image"
				      " invalid", op_word(r->op));
	}
	return 0;
}

/*
 * check_log -- the log block, -ENOTRECOVERABLE for any damage, in the order
 * documented at fm_pool_check.  Why each check: recovery replays a record
 * whose seq is applied + 1, so the applied word, the record's seq and
 * everything the replay writes (op, slot, image) decide what is written;
 * an applied START replayed again would clear acknowledged split bits while
 * keeping the generation.  With LOG_AB the applied record must itself be
 * intact, which also cross-checks the applied word, and it supplies the
 * count of slots in use.
 */
static int check_log(const uint8_t *base, struct fm_check *c)
{
	const struct fm_sb *sb = &c->sb;
	const uint8_t *lb = base + sb->log_off;
	uint64_t inc = sb->incompat, word;
	struct fm_log_media lm;
	const struct fm_log_rec_media *app, *next;
	struct fm_log_rec ra, rn;
	int ret;

	memcpy(&lm, lb, sizeof(lm));
	c->log_pending = 0;
	/* 1. bytes no feature of this pool uses are zero */
	if (!all_zero(lm.pad, sizeof(lm.pad)) ||
	    (!(inc & FM_POOL_INCOMPAT_LOG_AB) &&
	     !all_zero(&lm.rec[1], sizeof(lm.rec[1]))) ||
	    (!(inc & FM_POOL_INCOMPAT_OWNER) &&
	     !all_zero(lm.owner, sizeof(lm.owner))) ||
	    !all_zero(lb + sizeof(lm), sb->log_size - sizeof(lm)))
		return fm_err(-ENOTRECOVERABLE, "log: bytes that must be zero are"
			      " not (log block padding)");
	/* 2. the applied word checks itself */
	word = fm_le64_get(&lm.applied_seq);
	ret = fm_applied_decode(inc, word, &c->applied_seq);
	if (ret)
		return ret;

	if (!(inc & FM_POOL_INCOMPAT_LOG_AB)) {
		/* 1.0: one record.  A record with a bad checksum, or one
		 * already applied, is not pending: it was torn before its
		 * commit point or is history. */
		app = &lm.rec[0];
		if (!rec_valid(app))
			return 0;
		fm_log_decode(&c->rec, app);
		if (c->rec.seq == c->applied_seq)
			return 0;
		if (c->rec.seq < c->applied_seq)
			return fm_err(-ENOTRECOVERABLE, "log: record seq %" PRIu64
				      " behind applied %" PRIu64, c->rec.seq,
				      c->applied_seq);
		if (c->rec.seq != c->applied_seq + 1)
			return fm_err(-ENOTRECOVERABLE, "log: record seq %" PRIu64
				      " skips ahead of applied %" PRIu64, c->rec.seq,
				      c->applied_seq);
		ret = check_pending(sb, app, &c->rec);
		if (ret)
			return ret;
		c->log_pending = 1;
		return 0;
	}

	/* 3. LOG_AB: the applied record is where its seq says, intact */
	app = &lm.rec[fm_log_rec_index(inc, c->applied_seq)];
	next = &lm.rec[fm_log_rec_index(inc, c->applied_seq + 1)];
	fm_log_decode(&ra, app);
	if (!rec_valid(app) || ra.seq != c->applied_seq)
		return fm_err(-ENOTRECOVERABLE, "log: the record of applied seq %"
			      PRIu64 " is %s", c->applied_seq, rec_valid(app) ?
			      "another seq's (applied word or record damaged)" :
			      "damaged (checksum)");
	if (ra.op >= FM_LOG_OP_COUNT || ra.slot >= sb->slot_count ||
	    ra.in_use > sb->slot_count)
		return fm_err(-ENOTRECOVERABLE, "log: applied record (seq %" PRIu64
			      ") impossible: op %" PRIu32 " slot %" PRIu32 " in use %"
			      PRIu32, ra.seq, ra.op, ra.slot, ra.in_use);
	c->rec = ra;
	c->log_counts = 1;
	c->log_in_use = ra.in_use;
	/* 4. the other record: torn (bad checksum), the one before, or the
	 *    committed next one */
	if (!rec_valid(next))
		return 0;
	fm_log_decode(&rn, next);
	if (rn.seq + 1 == c->applied_seq)
		return 0;
	if (rn.seq != c->applied_seq + 1 || c->applied_seq == FM_SEQ_MAX)
		return fm_err(-ENOTRECOVERABLE, "log: record seq %" PRIu64 " beside"
			      " applied %" PRIu64 " is neither its predecessor nor its"
			      " successor", rn.seq, c->applied_seq);
	/* 5. the pending record */
	ret = check_pending(sb, next, &rn);
	if (ret)
		return ret;
	c->rec = rn;
	c->log_in_use = rn.in_use;
	c->log_pending = 1;
	return 0;
}

/* check_owner -- OWNER pools: pick the valid copy with the higher seq. */
static int check_owner(const uint8_t *base, struct fm_check *c)
{
	struct fm_log_media lm;
	struct fm_owner o[2];
	int valid[2];

	if (!(c->sb.incompat & FM_POOL_INCOMPAT_OWNER))
		return 0;
	memcpy(&lm, base + c->sb.log_off, sizeof(lm));
	for (int k = 0; k < 2; k++) {
		const struct fm_owner_media *m = &lm.owner[k];
		fm_owner_decode(&o[k], m);
		valid[k] = fm_le32_get(&m->checksum) == fm_owner_checksum(m) &&
			   all_zero(m->reserved, sizeof(m->reserved)) && o[k].seq;
	}
	if (!valid[0] && !valid[1])
		return fm_err(-EBADE, "owner record: neither copy is valid");
	if (valid[0] && valid[1]) {
		int hi = o[1].seq > o[0].seq;
		const struct fm_owner *n = &o[hi], *p = &o[!hi];
		if (n->seq != p->seq + 1 || n->incarnation < p->incarnation ||
		    n->incarnation - p->incarnation > 1)
			return fm_err(-EBADE, "owner record: copies (seq %" PRIu64
				      ", incarnation %" PRIu64 ") and (seq %" PRIu64
				      ", incarnation %" PRIu64 ") cannot follow one"
				      " another", o[0].seq, o[0].incarnation, o[1].seq,
				      o[1].incarnation);
		c->owner_copy = (uint32_t)hi;
	} else {
		c->owner_copy = valid[1] ? 1u : 0u;
		c->owner_other_torn = !all_zero(&lm.owner[!valid[1]],
						sizeof(lm.owner[0]));
	}
	c->owner = o[c->owner_copy];
	c->owner_known = 1;
	return 0;
}

/* Bounds of one in-use slot's bitmap at pool offset `off` (the split
 * bitmap, or the changed bitmap of a CHANGED pool): no bit past grain_count
 * nor past bitmap_len.  -ERANGE naming `what`. */
static int check_bits(const uint8_t *base, const struct fm_sb *sb, uint32_t idx,
		      const struct fm_slot *s, uint64_t off, const char *what)
{
	const uint8_t *bm = base + off;
	uint64_t gc = s->m.geom.grain_count;

	if (gc % 64) {
		fm_le64 last;
		memcpy(&last, bm + s->bitmap_len - 8, 8);
		if (fm_le64_get(&last) >> (gc % 64))
			return fm_err(-ERANGE, "slot %" PRIu32 ": %sbits set past grain"
				      " %" PRIu64, idx, what, gc);
	}
	if (!all_zero(bm + s->bitmap_len, sb->bitmap_stride - s->bitmap_len))
		return fm_err(-ERANGE, "slot %" PRIu32 ": %sbits set past the bitmap"
			      " end (%" PRIu64 " bytes)", idx, what, s->bitmap_len);
	return 0;
}

static int check_bitmap(const uint8_t *base, const struct fm_sb *sb, uint32_t idx,
			const struct fm_slot *s)
{
	return check_bits(base, sb, idx, s, s->bitmap_off, "");
}

static uint64_t changed_area(const struct fm_sb *sb, uint32_t idx)
{
	return sb->changed_off + (uint64_t)idx * sb->bitmap_stride;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* A free slot's bitmap areas must be all zero: create, delete and restart
 * clear them (and refresh, restore the changed one), and bits are only set
 * in in-use slots. */
static int check_free_area(const uint8_t *base, const struct fm_sb *sb, uint32_t idx,
			   uint64_t off, const char *what)
{
	const uint8_t *bm = base + off;

	for (uint64_t k = 0; k < sb->bitmap_stride; k += 8) {
		uint64_t w;
		memcpy(&w, bm + k, 8);
		if (w)
			return fm_err(-ENOTEMPTY, "slot %" PRIu32 " is free but its %sbitmap"
				      " has bits set (word %" PRIu64 "): a zeroed mapping"
				      " record?", idx, what, k / 8);
	}
	return 0;
}

static int check_free_bitmap(const uint8_t *base, const struct fm_sb *sb, uint32_t idx)
{
	return check_free_area(base, sb, idx, sb->bitmap_off + (uint64_t)idx * sb->bitmap_stride,
			       "");
}

/* A pending create may have torn its slot, but only between zero and the
 * image, a failure-atomic word at a time: anything else there is a slot
 * the create would overwrite. */
static int check_create_target(const uint8_t *base, const struct fm_check *c)
{
	const uint8_t *cur = base + c->sb.table_off + (uint64_t)c->rec.slot * FM_SLOT_SIZE;
	const uint8_t *img = (const uint8_t *)&c->rec.image;

	for (uint32_t k = 0; k < FM_SLOT_SIZE; k += 8)
		if (!all_zero(cur + k, 8) && memcmp(cur + k, img + k, 8))
			return fm_err(-ENOTRECOVERABLE, "log: pending create of slot %"
				      PRIu32 ", which holds another record",
				      c->rec.slot);
	return 0;
}

/*
 * A pending reverse (store.c, restore: R1 invert into `slot`'s bitmap, R2
 * write `slot`, R3 clear and zero `from_slot`).  `slot` may hold zero, the
 * image or a tear between them (as a create's).  Until R2 is complete --
 * `slot` is not yet the image -- recovery computes the new bitmap from
 * `from_slot`'s, so that slot must still hold the mapping, valid, with
 * its bitmap in bounds; once it is, from_slot is being cleared and is not
 * checked.  Returns 0 or -ENOTRECOVERABLE.
 */
static int check_reverse(const uint8_t *base, const struct fm_check *c)
{
	const uint8_t *cur = base + c->sb.table_off + (uint64_t)c->rec.slot * FM_SLOT_SIZE;
	struct fm_slot_media sm;
	struct fm_slot s, img;
	int ret;

	ret = check_create_target(base, c);
	if (ret)
		return ret;
	if (!memcmp(cur, &c->rec.image, FM_SLOT_SIZE))
		return 0;
	memcpy(&sm, base + c->sb.table_off + (uint64_t)c->rec.from_slot * FM_SLOT_SIZE,
	       sizeof(sm));
	fm_slot_decode(&s, &sm);
	fm_slot_decode(&img, &c->rec.image);
	if (fm_le32_get(&sm.checksum) != fm_slot_checksum(&sm) || !s.flags ||
	    fm_slot_validate(&c->sb, c->rec.from_slot, &s) || s.m.id != img.m.id ||
	    s.m.geom.grain_count != img.m.geom.grain_count ||
	    check_bitmap(base, &c->sb, c->rec.from_slot, &s))
		return fm_err(-ENOTRECOVERABLE, "log: pending reverse of mapping %" PRIu64
			      " from slot %" PRIu32 ", which no longer holds it intact",
			      img.m.id, c->rec.from_slot);
	return 0;
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
	if (c->log_pending && c->rec.op == FM_LOG_CREATE) {
		ret = check_create_target(base, c);
		if (ret)
			return ret;
	}
	if (c->log_pending && c->rec.op == FM_LOG_REVERSE) {
		ret = check_reverse(base, c);
		if (ret)
			return ret;
	}
	ret = check_owner(base, c);
	if (ret)
		return ret;

	/* mapping slots: checksum, then content, then bitmap bounds; a free
	 * slot: its bitmap area empty */
	for (uint32_t i = 0; i < c->sb.slot_count; i++) {
		struct fm_slot_media sm;
		struct fm_slot s;
		int pending = c->log_pending && c->rec.slot == i;
		/* bitmap is cleared by a pending create/delete/restart/reverse:
		 * skip it (a refresh only clears bits in it: check it) */
		int cleared = pending && c->rec.op != FM_LOG_TRANSITION &&
			      c->rec.op != FM_LOG_REFRESH;
		/* the changed bitmap (CHANGED pools) is cleared by every op but
		 * a transition */
		int has_changed = (c->sb.incompat & FM_POOL_INCOMPAT_CHANGED) != 0;
		int ch_cleared = pending && c->rec.op != FM_LOG_TRANSITION;

		c->bad_slot = i;
		/* a reverse's old slot: checked by check_reverse, zeroed by
		 * recovery, its mapping counted once (as the image) */
		if (c->log_pending && c->rec.op == FM_LOG_REVERSE && c->rec.from_slot == i)
			continue;
		if (pending)
			sm = c->rec.image; /* recovery writes this */
		else
			memcpy(&sm, base + c->sb.table_off + (uint64_t)i * FM_SLOT_SIZE,
			       sizeof(sm));
		if (all_zero(&sm, sizeof(sm))) {
			if (!cleared) {
				ret = check_free_bitmap(base, &c->sb, i);
				if (ret)
					return ret;
			}
			if (has_changed && !ch_cleared) {
				ret = check_free_area(base, &c->sb, i, changed_area(&c->sb, i),
						      "changed ");
				if (ret)
					return ret;
			}
			continue;
		}
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
		if (!cleared) {
			ret = check_bitmap(base, &c->sb, i, &s);
			if (ret)
				return ret;
		}
		if (has_changed && !ch_cleared) {
			ret = check_bits(base, &c->sb, i, &s, changed_area(&c->sb, i),
					 "changed ");
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
	if (c->log_counts && c->in_use != c->log_in_use)
		return fm_err(-EIDRM, "%" PRIu32 " slots in use, the log recorded %"
			      PRIu32 " at seq %" PRIu64 ": a mapping record was %s",
			      c->in_use, c->log_in_use, c->rec.seq,
			      c->in_use < c->log_in_use ? "zeroed (it reads as a free"
			      " slot)" : "written outside the log");
	return 0;
}
