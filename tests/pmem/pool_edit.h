/* pool_edit.h -- white-box edits of pool images for the pmem tests: put a
 * log record where the format says, read and write the applied word, and
 * turn a fresh 1.1 pool into the 1.0 layout (to test legacy pools). */
#ifndef FM_POOL_EDIT_H
#define FM_POOL_EDIT_H

#include <stdint.h>
#include <string.h>

#include "format.h"

static inline struct fm_sb pe_sb(const uint8_t *b)
{
	struct fm_sb_media m;
	struct fm_sb sb;

	memcpy(&m, b + FM_SB_OFF, sizeof(m));
	fm_sb_decode(&sb, &m);
	return sb;
}

static inline void pe_put_sb(uint8_t *b, const struct fm_sb *sb)
{
	struct fm_sb_media m;

	fm_sb_encode(&m, sb);
	memcpy(b + FM_SB_OFF, &m, sizeof(m));
}

static inline uint64_t pe_applied_word(const uint8_t *b)
{
	fm_le64 w;

	memcpy(&w, b + FM_LOG_OFF, 8);
	return fm_le64_get(&w);
}

/* The applied seq (the word decoded; a damaged word gives its low bits). */
static inline uint64_t pe_applied(const uint8_t *b)
{
	uint64_t seq;

	(void)fm_applied_decode(pe_sb(b).incompat, pe_applied_word(b), &seq);
	return seq;
}

static inline void pe_set_applied(uint8_t *b, uint64_t seq)
{
	fm_le64 w;

	fm_le64_put(&w, fm_applied_encode(pe_sb(b).incompat, seq));
	memcpy(b + FM_LOG_OFF, &w, 8);
}

static inline uint8_t *pe_rec_addr(uint8_t *b, uint64_t seq)
{
	return b + FM_LOG_OFF + FM_LOG_REC_OFF +
	       fm_log_rec_index(pe_sb(b).incompat, seq) * FM_LOG_REC_LEN;
}

/* Write record r (checksummed) where the format keeps record r->seq. */
static inline void pe_put_rec(uint8_t *b, const struct fm_log_rec *r)
{
	struct fm_log_rec_media m;

	fm_log_encode(&m, r);
	memcpy(pe_rec_addr(b, r->seq), &m, sizeof(m));
}

static inline struct fm_log_rec pe_get_rec(uint8_t *b, uint64_t seq)
{
	struct fm_log_rec_media m;
	struct fm_log_rec r;

	memcpy(&m, pe_rec_addr(b, seq), sizeof(m));
	fm_log_decode(&r, &m);
	return r;
}

static inline struct fm_owner_media *pe_owner(uint8_t *b, unsigned k)
{
	return (struct fm_owner_media *)(b + FM_LOG_OFF + FM_LOG_OWNER_OFF +
					 k * sizeof(struct fm_owner_media));
}

/*
 * Rewrite a closed 1.1 pool (no pending op) as format 1.0 would have
 * written it: incompat 0, minor 0, plain applied word, the applied record
 * in the one record place with no in-use count, no record B, no owner
 * record.
 */
/* Give a fresh pool's superblock an older format's features and layout:
 * without CHANGED (before 1.4) it has no changed bitmaps, so the pool ends
 * where they began (the file may be longer) and changed_off is zero.  The
 * changed bitmaps must be empty (they are not looked at again). */
static inline void pe_downgrade(uint8_t *b, uint32_t minor, uint64_t incompat)
{
	struct fm_sb sb = pe_sb(b);

	if ((sb.incompat & FM_POOL_INCOMPAT_CHANGED) &&
	    !(incompat & FM_POOL_INCOMPAT_CHANGED)) {
		sb.pool_size = sb.changed_off;
		sb.changed_off = 0;
	}
	sb.minor = minor;
	sb.incompat = incompat;
	pe_put_sb(b, &sb);
}

static inline void pe_downgrade_1_0(uint8_t *b)
{
	uint64_t seq = pe_applied(b);
	struct fm_log_rec r = pe_get_rec(b, seq);

	memset(b + FM_LOG_OFF + FM_LOG_REC_OFF, 0, FM_BLOCK - FM_LOG_REC_OFF);
	pe_downgrade(b, 0, 0);
	pe_set_applied(b, seq);
	r.in_use = 0;
	if (seq)
		pe_put_rec(b, &r);
}

#endif
