/* geometry.h -- volume and grain geometry: byte ranges to grain ranges.
 *
 * A volume of `volume_size` bytes is cut into grains of 2^grain_shift bytes
 * (4 KiB .. 1 GiB, 64 KiB by default).  The last grain may be partial when
 * the volume size is not a multiple of the grain size.  Grain ranges are
 * closed intervals [first, last], which cannot overflow at the top.
 *
 * All functions are pure: no allocation, no locks, safe from any thread.
 */
#ifndef FLASHMETA_GEOMETRY_H
#define FLASHMETA_GEOMETRY_H

#include <stdbool.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define FM_GRAIN_SHIFT_MIN 12u /* 4 KiB */
#define FM_GRAIN_SHIFT_MAX 30u /* 1 GiB */
#define FM_GRAIN_SHIFT_DEFAULT 16u /* 64 KiB */
#define FM_SECTOR_SIZE 512u
/* Largest volume: 2^57 bytes (128 PiB); keeps grain counts and byte offsets
 * comfortably inside 64 bits everywhere. */
#define FM_VOLUME_SIZE_MAX (UINT64_C(1) << 57)

/* A range of grains, the closed interval [first, last], first <= last. */
struct fm_grain_range {
	uint64_t first;
	uint64_t last;
};

struct fm_geom {
	uint64_t volume_size; /* bytes, a multiple of FM_SECTOR_SIZE, > 0 */
	uint64_t grain_count; /* ceil(volume_size / grain_size) */
	uint32_t grain_shift; /* log2(grain size) */
};

/*
 * fm_geom_init -- validate and fill a geometry.
 * grain_size 0 selects the default (64 KiB).
 * Returns 0, or -EINVAL (message says which rule) when volume_size is 0,
 * above FM_VOLUME_SIZE_MAX or not sector aligned, or grain_size is not a
 * power of two in [4 KiB, 1 GiB].  `g` is untouched on error.
 */
int fm_geom_init(struct fm_geom *g, uint64_t volume_size, uint64_t grain_size);

static inline uint64_t fm_geom_grain_size(const struct fm_geom *g)
{
	return UINT64_C(1) << g->grain_shift;
}

/* Byte offset of grain `grain` (caller guarantees grain < grain_count). */
static inline uint64_t fm_geom_grain_offset(const struct fm_geom *g, uint64_t grain)
{
	return grain << g->grain_shift;
}

/* Bytes in grain `grain`: the grain size, or less for a partial last grain;
 * 0 when grain >= grain_count. */
uint64_t fm_geom_grain_bytes(const struct fm_geom *g, uint64_t grain);

/*
 * fm_geom_range -- the grains [*first, *last] touched by bytes
 * [offset, offset + length).  Returns 0, or -EINVAL for length 0 (or a
 * NULL argument) and -ERANGE when the range runs past the volume end or
 * offset + length overflows; *first and *last are untouched on error.
 * Offset and length need only be byte granular here; the planner asks for
 * sector alignment.
 */
int fm_geom_range(const struct fm_geom *g, uint64_t offset, uint64_t length,
		  uint64_t *first, uint64_t *last);

#ifdef __cplusplus
}
#endif

#endif /* FLASHMETA_GEOMETRY_H */
