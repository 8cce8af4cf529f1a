/* maps.c -- the mappings the owner serves: per stored mapping a bitmap region
 * (REMOTE_READ, the published copy of the durable bits) and a lock table
 * region (REMOTE_ATOMIC, DRAM, zero at start), and the descriptor served.
 * Publication copies from the store's MIRROR view, which only holds durable
 * bits, so the READ-able bitmap never shows a bit whose persist did not
 * complete (ownerd.h). */
#include <errno.h>
#include <inttypes.h>
#include <string.h>

#include "flashmeta/error.h"
#include "flashmeta/mapping.h"
#include "flashmeta/pmem_store.h"
#include "ownerd_priv.h"

struct od_map *od_map_find(struct fm_ownerd *d, uint64_t id)
{
	for (unsigned i = 0; i < OD_MAX_MAPS; i++)
		if (d->maps[i].used && d->maps[i].id == id)
			return &d->maps[i];
	return NULL;
}

static uint64_t bitmap_bytes(uint64_t grains)
{
	return ((grains + 63) / 64) * 8;
}

void od_publish_words(struct fm_ownerd *d, struct od_map *m, uint64_t w0, uint64_t w1)
{
	const void *view;
	size_t len;
	uint64_t *dst = fm_region_ptr(m->bitmap);

	if (fm_store_bitmap_view(d->store, m->id, &view, &len, NULL))
		return;
	for (uint64_t w = w0; w <= w1 && (w + 1) * 8 <= len; w++) {
		uint64_t v;

		memcpy(&v, (const uint8_t *)view + w * 8, 8);
		__atomic_store_n(&dst[w], v, __ATOMIC_RELEASE);
	}
}

void od_publish_clear(struct od_map *m)
{
	uint64_t *dst = fm_region_ptr(m->bitmap);
	uint64_t words = bitmap_bytes(m->d.grain_count) / 8;

	for (uint64_t w = 0; w < words; w++)
		__atomic_store_n(&dst[w], 0, __ATOMIC_RELEASE);
}

void od_desc_from_store(struct od_map *m, const struct fm_store_map_info *info)
{
	const struct fm_mapping *mp = &info->map;

	m->d.map_id = mp->id;
	m->d.generation = mp->generation;
	m->d.grain_count = mp->geom.grain_count;
	m->d.grain_shift = (uint8_t)mp->geom.grain_shift;
	m->d.state = (uint8_t)mp->state;
	m->d.lock_shift = 0;
	m->d.flags = info->reversed ? FM_MAPDESC_REVERSED : 0; /* map-restore */
	m->d.bitmap = m->bmd;
	m->d.locks = m->lkd;
}

int od_map_attach(struct fm_ownerd *d, uint64_t id)
{
	struct fm_store_map_info info;
	struct od_map *m = NULL;
	int rc;

	rc = fm_store_map_get(d->store, id, &info);
	if (rc)
		return rc;
	for (unsigned i = 0; i < OD_MAX_MAPS && !m; i++)
		if (!d->maps[i].used)
			m = &d->maps[i];
	if (!m)
		return fm_err(-ENOSPC, "owner serves at most %u mappings", OD_MAX_MAPS);
	memset(m, 0, sizeof(*m));
	m->pend_fd = -1;
	m->id = id;
	rc = fm_region_new(d->t, bitmap_bytes(info.map.geom.grain_count),
			   FM_ACCESS_REMOTE_READ, &m->bitmap);
	if (rc)
		goto out;
	rc = fm_region_new(d->t, 8 * info.map.geom.grain_count, FM_ACCESS_REMOTE_ATOMIC,
			   &m->locks);
	if (rc)
		goto out_bm;
	fm_region_desc(m->bitmap, &m->bmd);
	fm_region_desc(m->locks, &m->lkd);
	od_desc_from_store(m, &info);
	m->autodelete = info.autodelete; /* the pool's flag (format 1.2) */
	/* the pool's durable bits, published before anyone is granted */
	od_publish_words(d, m, 0, bitmap_bytes(m->d.grain_count) / 8 - 1);
	rc = fm_owner_map_add(d->o, &m->d);
	if (rc)
		goto out_lk;
	/* the durable rate (fm_store_map_set_rate): a copy resumes at it */
	(void)fm_owner_map_rate(d->o, id, info.map.copy_rate);
	m->used = true;
	od_log(FM_LOGLVL_INFO, "map %" PRIu64 ": serving, %s, generation %" PRIu64
	       ", %" PRIu64 " grains, %" PRIu64 " split, copy rate %" PRIu32, id,
	       fm_map_state_name(info.map.state), info.map.generation,
	       info.map.geom.grain_count, info.split_count, info.map.copy_rate);
	return 0;
out_lk:
	fm_region_delete(&m->locks);
out_bm:
	fm_region_delete(&m->bitmap);
out:
	return rc;
}

void od_map_detach(struct od_map *m)
{
	/* peers' accesses with the old keys fail from now on (transport.h) */
	fm_region_delete(&m->locks);
	fm_region_delete(&m->bitmap);
	memset(m, 0, sizeof(*m));
	m->pend_fd = -1;
}

struct od_map *od_map_by_region(struct fm_ownerd *d, const struct fm_region_desc *r,
				    bool *is_locks)
{
	for (unsigned i = 0; i < OD_MAX_MAPS; i++) {
		struct od_map *m = &d->maps[i];

		if (!m->used)
			continue;
		if (r->key == m->lkd.key && r->addr == m->lkd.addr) {
			*is_locks = true;
			return m;
		}
		if (r->key == m->bmd.key && r->addr == m->bmd.addr) {
			*is_locks = false;
			return m;
		}
	}
	return NULL;
}
