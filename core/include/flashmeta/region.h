/* region.h -- the one descriptor of memory a peer may access one-sided.
 *
 * The owner hands these out inside messages (WELCOME, MAP_GRANT) and the
 * transports check every one-sided operation against them: one type, one
 * wire form, no hand conversions between copies.
 *
 * Wire form, 24 bytes, little-endian:
 *    0  le64 addr    verbs: virtual address; shm: offset in the owner's arena
 *    8  le64 len     bytes
 *   16  le32 key     verbs: rkey; shm: the region's random key (never 0)
 *   20  le32 flags   FM_ACCESS_* granted to peers
 */
#ifndef FLASHMETA_REGION_H
#define FLASHMETA_REGION_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Access a region grants to peers.  Least access: ask only for what the
 * peer does (bitmap: REMOTE_READ; lock table: REMOTE_ATOMIC; message and
 * READ destination buffers: LOCAL). */
#define FM_ACCESS_LOCAL 0u                /* only our own operations use it */
#define FM_ACCESS_REMOTE_READ (1u << 0)   /* peers READ it */
#define FM_ACCESS_REMOTE_ATOMIC (1u << 1) /* peers CAS/FAA its 8-byte words
					   * (verbs also needs LOCAL_WRITE) */
#define FM_ACCESS_KNOWN (FM_ACCESS_REMOTE_READ | FM_ACCESS_REMOTE_ATOMIC)

struct fm_region_desc {
	uint64_t addr;
	uint64_t len;
	uint32_t key;
	uint32_t flags; /* FM_ACCESS_* granted */
};

#define FM_REGION_DESC_WIRE_SIZE 24u

/* fm_region_desc_encode -- the 24-byte wire form.  Pure. */
void fm_region_desc_encode(const struct fm_region_desc *d,
			   uint8_t out[FM_REGION_DESC_WIRE_SIZE]);

/* fm_region_desc_decode -- parse the wire form.  Pure; checks nothing
 * (flags are checked where the use is known: fm_wire_decode). */
void fm_region_desc_decode(const uint8_t in[FM_REGION_DESC_WIRE_SIZE],
			   struct fm_region_desc *d);

#ifdef __cplusplus
}
#endif
#endif /* FLASHMETA_REGION_H */
