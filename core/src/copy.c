/* copy.c -- the copy rate table and the values of the claim protocol
 * (flashmeta/copy.h). */
#include <stddef.h>

#include "flashmeta/copy.h"

#define KIB (UINT64_C(1) << 10)
#define MIB (UINT64_C(1) << 20)
#define GIB (UINT64_C(1) << 30)

/* bytes/s of rates 1-10, 11-20, ... 141-150: the header's table */
static const uint64_t rate_bps[15] = {
	128 * KIB, 256 * KIB, 512 * KIB, 1 * MIB, 2 * MIB, 4 * MIB, 8 * MIB, 16 * MIB,
	32 * MIB, 64 * MIB, 128 * MIB, 256 * MIB, 512 * MIB, 1 * GIB, 2 * GIB,
};

uint64_t fm_copy_rate_bps(uint32_t rate)
{
	if (rate == 0 || rate > FM_COPY_RATE_MAX)
		return 0;
	return rate_bps[(rate - 1) / 10];
}

uint64_t fm_copy_batch_grains(uint32_t rate, uint32_t grain_shift, uint32_t max)
{
	uint64_t bps = fm_copy_rate_bps(rate), n;

	if (!bps || !max)
		return 0;
	if (max > FM_COPY_BATCH_MAX)
		max = FM_COPY_BATCH_MAX;
	/* bps <= 2^31 and FM_COPY_BATCH_MS < 2^10: no overflow */
	n = (bps * FM_COPY_BATCH_MS / 1000) >> (grain_shift < 63 ? grain_shift : 63);
	if (n < 1)
		n = 1;
	return n < max ? n : max;
}

uint64_t fm_copy_ns(uint32_t rate, uint64_t bytes)
{
	uint64_t bps = fm_copy_rate_bps(rate);

	if (!bps || bytes / bps > UINT64_MAX / 1000000000u - 1)
		return UINT64_MAX;
	/* seconds and the rest apart: bytes * 10^9 may not fit 64 bits */
	return bytes / bps * 1000000000u + bytes % bps * 1000000000u / bps;
}

const char *fm_copy_status_name(uint32_t status)
{
	static const char *const names[FM_COPY_STATUS_COUNT] = {
		[FM_COPY_OK] = "ok",
		[FM_COPY_WAIT] = "wait",
		[FM_COPY_DONE] = "done",
		[FM_COPY_STALE] = "stale",
	};

	return status < FM_COPY_STATUS_COUNT ? names[status] : "?";
}
