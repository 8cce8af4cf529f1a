/* tag.h -- what every written block says about its write.
 *
 * A block (PIT_BLOCK bytes) written by fm-pit carries, little-endian:
 *
 *   off  size  field
 *     0     4  magic "FMPT"
 *     4     4  CRC-32C of the whole block, computed with this field zero
 *     8     4  volume id the write was issued to
 *    12     2  writer (client * threads + thread)
 *    14     2  client index
 *    16     8  block index in that volume
 *    24     8  writer's sequence number (incarnation << 32 | count)
 *    32     8  mapping generation of the I/O bracket (io.map.generation)
 *    40     8  CLOCK_MONOTONIC ns when the buffer was tagged (debugging)
 *    48   464  filler, a function of (volume, block, seq)
 *
 * so a read tells exactly which write it returned, that it returned
 * zeroes (never written), or garbage (torn or foreign bytes).  The tag of
 * a copy keeps the source's volume id: a target block holding a source
 * write says so.
 */
#ifndef FM_TESTS_PIT_TAG_H
#define FM_TESTS_PIT_TAG_H

#include <stdint.h>

enum pit_val_kind {
	PIT_VAL_ZERO = 0,    /* all zero: never written */
	PIT_VAL_TAG = 1,     /* a valid tag */
	PIT_VAL_GARBAGE = 2, /* neither: torn, overwritten by foreign bytes */
};

struct pit_tag {
	uint32_t vol;
	uint16_t writer;
	uint16_t client;
	uint64_t block;
	uint64_t seq;
	uint64_t gen;
	uint64_t t_ns;
};

/* fill one PIT_BLOCK-byte block with the tag (and its CRC) */
void pit_tag_encode(void *block, const struct pit_tag *t);

/* decode one block: the kind; *t filled for PIT_VAL_TAG.  For garbage,
 * t->seq holds the CRC-32C of the bytes (to tell garbage apart). */
enum pit_val_kind pit_tag_decode(const void *block, struct pit_tag *t);

#endif /* FM_TESTS_PIT_TAG_H */
