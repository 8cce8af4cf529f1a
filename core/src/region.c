/* region.c -- wire form of the region descriptor (flashmeta/region.h). */
#include "flashmeta/le.h"
#include "flashmeta/region.h"

void fm_region_desc_encode(const struct fm_region_desc *d,
			   uint8_t out[FM_REGION_DESC_WIRE_SIZE])
{
	fm_put_le64(out, d->addr);
	fm_put_le64(out + 8, d->len);
	fm_put_le32(out + 16, d->key);
	fm_put_le32(out + 20, d->flags);
}

void fm_region_desc_decode(const uint8_t in[FM_REGION_DESC_WIRE_SIZE],
			   struct fm_region_desc *d)
{
	d->addr = fm_get_le64(in);
	d->len = fm_get_le64(in + 8);
	d->key = fm_get_le32(in + 16);
	d->flags = fm_get_le32(in + 20);
}
