/* geometry.c -- volume and grain geometry: byte ranges to grain ranges.
 *
 * Design: a geometry is three integers (volume size, grain shift, grain
 * count) validated once by fm_geom_init(); everything after that is shift
 * and compare.  The validation bounds make the arithmetic safe:
 *
 *   volume_size <= 2^57, grain size <= 2^30
 *     => volume_size + grain_size - 1 < 2^58        (grain_count rounding)
 *     => grain_count <= 2^45, grain << shift < 2^57  (grain offsets)
 *
 * fm_geom_range() is the one function that sees caller-chosen offsets and
 * lengths; it never forms offset + length before proving it cannot pass
 * the volume end, so no input wraps around.
 *
 * Pure functions: no allocation, no locks, any thread.
 */
#include <errno.h>
#include <stddef.h>

#include "flashmeta/error.h"
#include "flashmeta/geometry.h"

int fm_geom_init(struct fm_geom *g, uint64_t volume_size, uint64_t grain_size)
{
	uint32_t shift;

	if (!g)
		return fm_err(-EINVAL, "geometry: NULL geometry");
	if (volume_size == 0)
		return fm_err(-EINVAL, "geometry: volume size is 0");
	if (volume_size > FM_VOLUME_SIZE_MAX)
		return fm_err(-EINVAL,
			      "geometry: volume size %llu is above the maximum %llu (128 PiB)",
			      (unsigned long long)volume_size,
			      (unsigned long long)FM_VOLUME_SIZE_MAX);
	if (volume_size % FM_SECTOR_SIZE)
		return fm_err(-EINVAL,
			      "geometry: volume size %llu is not a multiple of the %u B sector",
			      (unsigned long long)volume_size, FM_SECTOR_SIZE);

	if (grain_size == 0)
		grain_size = UINT64_C(1) << FM_GRAIN_SHIFT_DEFAULT;
	if (grain_size & (grain_size - 1))
		return fm_err(-EINVAL, "geometry: grain size %llu is not a power of two",
			      (unsigned long long)grain_size);
	shift = (uint32_t)__builtin_ctzll(grain_size);
	if (shift < FM_GRAIN_SHIFT_MIN || shift > FM_GRAIN_SHIFT_MAX)
		return fm_err(-EINVAL,
			      "geometry: grain size %llu is outside [%llu, %llu]",
			      (unsigned long long)grain_size,
			      (unsigned long long)(UINT64_C(1) << FM_GRAIN_SHIFT_MIN),
			      (unsigned long long)(UINT64_C(1) << FM_GRAIN_SHIFT_MAX));

	/* Bounds above: volume_size + grain_size - 1 < 2^58, no overflow. */
	g->volume_size = volume_size;
	g->grain_shift = shift;
	g->grain_count = (volume_size + grain_size - 1) >> shift;
	return 0;
}

uint64_t fm_geom_grain_bytes(const struct fm_geom *g, uint64_t grain)
{
	uint64_t off;

	if (grain >= g->grain_count)
		return 0;
	off = fm_geom_grain_offset(g, grain);
	/* Only the last grain can be cut short by the volume end. */
	if (g->volume_size - off < fm_geom_grain_size(g))
		return g->volume_size - off;
	return fm_geom_grain_size(g);
}

int fm_geom_range(const struct fm_geom *g, uint64_t offset, uint64_t length,
		  uint64_t *first, uint64_t *last)
{
	if (!g || !first || !last)
		return fm_err(-EINVAL, "geometry: NULL argument");
	if (length == 0)
		return fm_err(-EINVAL, "geometry: zero-length range at offset %llu",
			      (unsigned long long)offset);
	/* Compare against what is left instead of forming offset + length. */
	if (offset >= g->volume_size || length > g->volume_size - offset)
		return fm_err(-ERANGE,
			      "geometry: bytes [%llu, +%llu) run past the volume end %llu",
			      (unsigned long long)offset, (unsigned long long)length,
			      (unsigned long long)g->volume_size);

	*first = offset >> g->grain_shift;
	*last = (offset + length - 1) >> g->grain_shift;
	return 0;
}
