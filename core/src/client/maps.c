/* maps.c -- the client's confirmation leases per mapping, release
 * requests (claims 4/10/16: discard, answer RELEASED) and the I/O
 * brackets that pin them.
 *
 * Slots (client_priv.h): identity published once, `usable` and the open
 * brackets (readers.c) a Dekker pair between I/O threads and the protocol
 * thread.  A release (RELEASE_REQUEST) and a session's end (session.c)
 * both start with usable = false and then wait until no bracket of the
 * slot(s) is open.
 */
#include <errno.h>

#include "client_priv.h"
#include "flashmeta/error.h"

void cl_maps_apply_grant(struct fm_client *c, const struct fm_wire_mapdesc *d)
{
	int slot = cl_slot_of(c, d->map_id);
	struct cmap *mp;
	int rc;

	if (slot < 0) {
		unsigned n = atomic_load(&c->nmaps);

		for (unsigned i = 0; i < n && slot < 0; i++)
			if (!atomic_load(&c->maps[i].present))
				slot = (int)i;
		if (slot < 0) {
			if (n == CL_MAX_MAPS)
				return; /* the owner never serves more */
			slot = (int)n;
		}
		atomic_store(&c->maps[slot].id, d->map_id);
		atomic_store(&c->maps[slot].present, true);
		if ((unsigned)slot == n)
			atomic_store(&c->nmaps, n + 1);
	}
	mp = &c->maps[slot];
	/* a mapping deleted and created again under its id: nothing of the
	 * old one is trusted any more (it was released), but the cache still
	 * has its geometry -- start that afresh */
	if ((mp->state == CM_NONE || mp->state == CM_RELEASED) && mp->d.map_id == d->map_id &&
	    mp->d.grain_count && mp->d.grain_count != d->grain_count)
		(void)fm_cache_map_remove(c->cfg.cache, d->map_id);
	rc = fm_cache_map_add(c->cfg.cache, d->map_id, d->grain_count);
	if (rc && rc != -EEXIST) {
		if (rc == -ENOMEM)
			cl_oom(c);
		return;
	}
	/* same generation (e.g. the lock table arriving after the owner's
	 * restart grace): the cache keeps what it knows */
	mp->d = *d;
	cl_maps_publish(mp);
	cl_written_on_grant(c, (unsigned)slot, d);
	if (fm_cache_map_grant(c->cfg.cache, d->map_id, d->generation))
		return; /* out of memory there: stays invalid, which is sound */
	mp->state = CM_GRANTED;
	mp->release_gen = 0;
	atomic_store(&mp->usable, true);
	cl_note(c, FM_NOTE_GRANTED, 0, 0, d->map_id, 0, false);
}

static void try_drain(struct fm_client *c, unsigned slot)
{
	struct cmap *mp = &c->maps[slot];
	struct fm_msg m;

	if (mp->state != CM_DRAINING || cl_readers_open(c, slot) != 0)
		return;
	/* 1. no new I/O trusts hits (usable == false, set on the request);
	 * 2. every I/O that did has ended (no bracket counted anywhere);
	 * 3. forget them (epoch moves: racing fills are refused);
	 * 4. what those I/Os wrote: complete now (2.), so reported before
	 *    the RELEASED the owner counts it by (written.c);
	 * 5. only now tell the owner. */
	fm_cache_map_discard(c->cfg.cache, atomic_load(&mp->id));
	cl_written_report(c, slot);
	mp->state = CM_RELEASED;
	fm_wire_msg_init(&m, FM_MSG_RELEASED);
	m.u.released.map_id = atomic_load(&mp->id);
	m.u.released.generation = mp->release_gen;
	cl_send_msg(c, &m);
	cl_note(c, FM_NOTE_RELEASED, 0, 0, m.u.released.map_id, 0, false);
}

void cl_maps_try_drain_all(struct fm_client *c)
{
	unsigned n = atomic_load(&c->nmaps);

	if (cl_state(c) != FM_CLIENT_ACTIVE)
		return;
	for (unsigned i = 0; i < n; i++)
		try_drain(c, i);
}

void cl_maps_on_release_request(struct fm_client *c, const struct fm_msg *m)
{
	int slot = cl_slot_of(c, m->u.release.map_id);
	struct fm_msg r;

	if (slot < 0 || c->maps[slot].state == CM_NONE ||
	    c->maps[slot].state == CM_RELEASED) {
		/* nothing held: answer at once (with what an earlier session
		 * wrote and could not report, if anything: a superset) */
		if (slot >= 0)
			cl_written_report(c, (unsigned)slot);
		fm_wire_msg_init(&r, FM_MSG_RELEASED);
		r.u.released.map_id = m->u.release.map_id;
		r.u.released.generation = m->u.release.generation;
		cl_send_msg(c, &r);
		return;
	}
	atomic_store(&c->maps[slot].usable, false);
	c->maps[slot].state = CM_DRAINING;
	c->maps[slot].release_gen = m->u.release.generation;
	try_drain(c, (unsigned)slot);
}

/* The session ended: nothing may hit any more, new brackets fail. */
void cl_maps_discard_all(struct fm_client *c)
{
	unsigned n = atomic_load(&c->nmaps);

	for (unsigned i = 0; i < n; i++) {
		struct cmap *mp = &c->maps[i];

		if (!atomic_load(&mp->present))
			continue;
		atomic_store(&mp->usable, false);
		mp->state = CM_NONE;
		fm_cache_map_discard(c->cfg.cache, atomic_load(&mp->id));
	}
}

/* Open brackets over every mapping (quiescence waits for 0). */
long cl_maps_inflight(struct fm_client *c)
{
	unsigned n = atomic_load(&c->nmaps);
	long sum = 0;

	for (unsigned i = 0; i < n; i++)
		sum += (long)cl_readers_open(c, i);
	return sum;
}

/* The descriptor as CMAP_DWORDS words; pure. */
static void desc_words(const struct fm_wire_mapdesc *d, uint64_t w[CMAP_DWORDS])
{
	w[0] = d->map_id;
	w[1] = d->generation;
	w[2] = d->grain_count;
	w[3] = (uint64_t)d->grain_shift | (uint64_t)d->state << 8 | (uint64_t)d->lock_shift << 16 |
	       (uint64_t)d->flags << 24;
	w[4] = d->bitmap.addr;
	w[5] = d->bitmap.len;
	w[6] = (uint64_t)d->bitmap.key | (uint64_t)d->bitmap.flags << 32;
	w[7] = d->locks.addr;
	w[8] = d->locks.len;
	w[9] = (uint64_t)d->locks.key | (uint64_t)d->locks.flags << 32;
	w[10] = 0;
}

static void words_desc(const uint64_t w[CMAP_DWORDS], struct fm_wire_mapdesc *d)
{
	d->map_id = w[0];
	d->generation = w[1];
	d->grain_count = w[2];
	d->grain_shift = (uint8_t)w[3];
	d->state = (uint8_t)(w[3] >> 8);
	d->lock_shift = (uint8_t)(w[3] >> 16);
	d->flags = (uint8_t)(w[3] >> 24);
	d->bitmap = (struct fm_region_desc){ .addr = w[4], .len = w[5], .key = (uint32_t)w[6],
					     .flags = (uint32_t)(w[6] >> 32) };
	d->locks = (struct fm_region_desc){ .addr = w[7], .len = w[8], .key = (uint32_t)w[9],
					    .flags = (uint32_t)(w[9] >> 32) };
}

/*
 * Seqlock writer (protocol thread): dseq odd, the words, dseq even.  The
 * release fence keeps the odd count before the words, the release store
 * the words before the even count (C11 seqlock, all accesses atomic).
 */
void cl_maps_publish(struct cmap *mp)
{
	uint64_t w[CMAP_DWORDS];
	uint32_t q = atomic_load_explicit(&mp->dseq, memory_order_relaxed);

	desc_words(&mp->d, w);
	atomic_store_explicit(&mp->dseq, q + 1, memory_order_relaxed);
	atomic_thread_fence(memory_order_release);
	for (unsigned i = 0; i < CMAP_DWORDS; i++)
		atomic_store_explicit(&mp->dw[i], w[i], memory_order_relaxed);
	atomic_store_explicit(&mp->dseq, q + 2, memory_order_release);
}

int fm_client_map(const struct fm_client *c, uint64_t map_id, struct fm_wire_mapdesc *out,
		  bool *usable)
{
	int slot = cl_slot_of((struct fm_client *)c, map_id);
	const struct cmap *mp;
	uint64_t w[CMAP_DWORDS];
	uint32_t q1, q2;

	if (slot < 0)
		return -ENOENT;
	mp = &c->maps[slot];
	do {
		q1 = atomic_load_explicit(&mp->dseq, memory_order_acquire);
		for (unsigned i = 0; i < CMAP_DWORDS; i++)
			w[i] = atomic_load_explicit(&mp->dw[i], memory_order_relaxed);
		atomic_thread_fence(memory_order_acquire);
		q2 = atomic_load_explicit(&mp->dseq, memory_order_relaxed);
	} while ((q1 & 1) || q1 != q2);
	if (!q1)
		return -ENOENT; /* never granted yet */
	words_desc(w, out);
	if (usable)
		*usable = atomic_load(&mp->usable);
	return 0;
}

/* ---- engine calls (any thread) ---- */

int fm_client_io_begin(struct fm_client *c, uint64_t map_id, uint64_t now)
{
	int slot = cl_slot_of(c, map_id);
	struct cmap *mp;

	if (slot < 0)
		return -ENOENT;
	mp = &c->maps[slot];
	atomic_fetch_add(&mp->inflight, 1);
	/* R1: usable (no release, session active) and our own clock says
	 * the lease still runs -- a stopped process may wake up long after */
	if (!atomic_load(&mp->usable) ||
	    now >= atomic_load_explicit(&c->lease_expiry, memory_order_acquire)) {
		/* a drain or quiesce that saw our increment re-checks at
		 * the protocol thread's next tick */
		atomic_fetch_sub(&mp->inflight, 1);
		return -EAGAIN;
	}
	return 0;
}

bool fm_client_io_end(struct fm_client *c, uint64_t map_id)
{
	int slot = cl_slot_of(c, map_id);
	struct cmap *mp;

	if (slot < 0)
		return false;
	mp = &c->maps[slot];
	return atomic_fetch_sub(&mp->inflight, 1) == 1 && !atomic_load(&mp->usable);
}
