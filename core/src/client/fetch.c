/* fetch.c -- a cache miss: READ the owner's bitmap around the grain and
 * insert every run of set bits (claims 3/5: positive confirmations merged
 * with their neighbours; a clear bit is never cached).
 *
 * Soundness: the cache epoch is read BEFORE the READ and passed to
 * fm_cache_insert with the answer, so a fill racing a discard is refused
 * (-ESTALE) instead of resurrecting old confirmations.
 */
#include <errno.h>

#include "client_priv.h"
#include "flashmeta/error.h"

int fm_client_fetch(struct fm_client *c, uint64_t map_id, uint64_t grain,
		    uint64_t cookie, uint64_t now)
{
	int slot = cl_usable_slot(c, map_id, grain, true);
	struct cmap *mp;
	struct cop *op;
	uint64_t ra, w0, end, epoch;

	(void)now; /* the uniform time argument: nothing here is timed */
	if (slot < 0)
		return slot;
	mp = &c->maps[slot];
	/* the fill token, BEFORE the read */
	if (fm_cache_map_epoch(c->cfg.cache, map_id, &epoch))
		return fm_err(-EAGAIN, "client: map %llu not valid in the cache",
			      (unsigned long long)map_id);
	ra = c->cfg.readahead_grains;
	w0 = grain & ~(ra - 1);
	end = w0 + ra < mp->d.grain_count ? w0 + ra : mp->d.grain_count;
	op = cl_op_new(c, CO_FETCH, (unsigned)slot);
	if (!op)
		return -ENOMEM;
	op->grain = grain;
	op->cookie = cookie;
	op->epoch = epoch;
	op->epoch_ok = true;
	op->w0 = w0;
	op->nbits = end - w0;
	cl_io_action(c, op, FM_ACT_READ, &mp->d.bitmap, w0 / 8,
		     (uint32_t)(((end - w0) + 63) / 64 * 8), 0, 0);
	return 0;
}

void cl_fetch_done(struct fm_client *c, struct cop *op, int status, const uint8_t *data,
		   size_t len)
{
	uint64_t map_id = atomic_load(&c->maps[op->slot].id);
	bool split = false;
	int rc = 0;

	/* a transport failure keeps its errno (the driver's -ECONNRESET says
	 * "retry after rejoin"); a short answer is our -EIO */
	if (status < 0 || len * 8 < op->nbits) {
		cl_note(c, FM_NOTE_FETCHED, status < 0 ? status : -EIO, op->cookie, map_id,
			op->grain, false);
		return;
	}
	/* every run of set bits is a confirmation; clear bits are not cached */
	for (uint64_t b = 0; b < op->nbits && rc == 0;) {
		uint64_t e;

		if (!bit_at(data, b)) {
			b++;
			continue;
		}
		for (e = b; e + 1 < op->nbits && bit_at(data, e + 1); e++)
			;
		if (op->epoch_ok)
			rc = fm_cache_insert(c->cfg.cache, map_id, op->epoch, op->w0 + b,
					     op->w0 + e);
		else
			rc = -ESTALE;
		b = e + 1;
	}
	split = bit_at(data, op->grain - op->w0);
	if (rc == -ESTALE)
		cl_note(c, FM_NOTE_FETCHED, -ESTALE, op->cookie, map_id, op->grain, false);
	else
		cl_note(c, FM_NOTE_FETCHED, 0, op->cookie, map_id, op->grain, split);
}
