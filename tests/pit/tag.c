/* tag.c -- block tags (see tag.h for the layout). */
#include <stdbool.h>
#include <string.h>

#include "flashmeta/digest.h"
#include "pit.h"
#include "tag.h"

#define TAG_MAGIC 0x54504d46u /* "FMPT" read as a little-endian u32 */

static void put_le(uint8_t *p, uint64_t v, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_le(const uint8_t *p, unsigned n)
{
	uint64_t v = 0;

	for (unsigned i = n; i-- > 0;)
		v = v << 8 | p[i];
	return v;
}

static void filler(uint8_t *p, size_t len, uint64_t x)
{
	x |= 1;
	for (size_t i = 0; i < len; i += 8) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		put_le(p + i, x, len - i < 8 ? (unsigned)(len - i) : 8);
	}
}

void pit_tag_encode(void *block, const struct pit_tag *t)
{
	uint8_t *p = block;

	put_le(p + 0, TAG_MAGIC, 4);
	put_le(p + 4, 0, 4);
	put_le(p + 8, t->vol, 4);
	put_le(p + 12, t->writer, 2);
	put_le(p + 14, t->client, 2);
	put_le(p + 16, t->block, 8);
	put_le(p + 24, t->seq, 8);
	put_le(p + 32, t->gen, 8);
	put_le(p + 40, t->t_ns, 8);
	filler(p + 48, PIT_BLOCK - 48,
	       t->seq * 0x9e3779b97f4a7c15ull ^ t->block * 0xbf58476d1ce4e5b9ull ^ t->vol);
	put_le(p + 4, fm_crc32c(p, PIT_BLOCK), 4);
}

enum pit_val_kind pit_tag_decode(const void *block, struct pit_tag *t)
{
	uint8_t copy[PIT_BLOCK];
	const uint8_t *p = block;
	uint32_t crc;
	bool zero = true;

	memset(t, 0, sizeof(*t));
	for (size_t i = 0; i < PIT_BLOCK && zero; i++)
		zero = p[i] == 0;
	if (zero)
		return PIT_VAL_ZERO;
	memcpy(copy, p, PIT_BLOCK);
	put_le(copy + 4, 0, 4);
	crc = fm_crc32c(copy, PIT_BLOCK);
	if (get_le(p, 4) != TAG_MAGIC || get_le(p + 4, 4) != crc) {
		t->seq = fm_crc32c(p, PIT_BLOCK);
		return PIT_VAL_GARBAGE;
	}
	t->vol = (uint32_t)get_le(p + 8, 4);
	t->writer = (uint16_t)get_le(p + 12, 2);
	t->client = (uint16_t)get_le(p + 14, 2);
	t->block = get_le(p + 16, 8);
	t->seq = get_le(p + 24, 8);
	t->gen = get_le(p + 32, 8);
	t->t_ns = get_le(p + 40, 8);
	return PIT_VAL_TAG;
}
