/* readers.c -- I/O brackets counted per engine thread.
 *
 * A reader is one thread's cache line of cells; a cell counts that
 * thread's open brackets on one mapping: (map slot + 1) << 32 | count.
 * Only the owning thread claims and increments cells; any thread may
 * decrement (an I/O ended elsewhere) -- every change is an atomic RMW, so
 * the two never lose an update.  A cell whose count is 0 may be claimed
 * for another mapping by its thread (CAS from the value it read).
 *
 * Why no bracket escapes a release (the Dekker pair of client_priv.h):
 * the pin's RMW and its later load of `usable` are seq_cst, as are the
 * release's store of usable = false and its later loads of the cells.  In
 * the single total order either the RMW comes first -- the release's scan
 * sees the count -- or the store does, and then the pin's load sees false
 * and backs out.  A reader registered after the scan began has no count
 * the scan could miss: its pins come after the store.
 */
#include <errno.h>
#include <stdlib.h>

#include "client_priv.h"
#include "flashmeta/error.h"

#define CELL_COUNT(w) ((w) & UINT64_C(0xffffffff))
#define CELL_SLOT(w) ((w) >> 32)

int fm_client_reader_new(struct fm_client *c, struct fm_client_reader **out)
{
	struct fm_client_reader *r;
	unsigned i;

	r = aligned_alloc(64, sizeof(*r));
	if (!r)
		return fm_err(-ENOMEM, "client: reader");
	for (unsigned k = 0; k < CL_READER_CELLS; k++)
		atomic_init(&r->cell[k], 0);
	i = atomic_fetch_add(&c->nreaders, 1);
	if (i >= CL_MAX_READERS) {
		atomic_fetch_sub(&c->nreaders, 1);
		free(r);
		return fm_err(-ENOSPC, "client: %u readers already", CL_MAX_READERS);
	}
	/* nreaders may count it before it is stored: scans skip NULL, and a
	 * reader not yet visible has no pins */
	atomic_store(&c->readers[i], r);
	*out = r;
	return 0;
}

/* the cell to count a bracket on `slot` in (claimed), or NULL */
static _Atomic uint64_t *cell_for(struct fm_client_reader *r, unsigned slot)
{
	uint64_t want = (uint64_t)(slot + 1) << 32;

	for (unsigned k = 0; k < CL_READER_CELLS; k++)
		if (CELL_SLOT(atomic_load_explicit(&r->cell[k], memory_order_relaxed)) ==
		    slot + 1) {
			atomic_fetch_add(&r->cell[k], 1);
			return &r->cell[k];
		}
	for (unsigned k = 0; k < CL_READER_CELLS; k++) {
		uint64_t w = atomic_load_explicit(&r->cell[k], memory_order_relaxed);

		if (CELL_COUNT(w) == 0 &&
		    atomic_compare_exchange_strong(&r->cell[k], &w, want | 1))
			return &r->cell[k];
	}
	return NULL;
}

int fm_client_io_pin(struct fm_client *c, struct fm_client_reader *r, uint64_t map_id,
		     uint64_t now, struct fm_client_pin *pin, struct fm_wire_mapdesc *desc)
{
	int slot = cl_slot_of(c, map_id);
	struct cmap *mp;

	pin->cell = NULL;
	if (slot < 0)
		return -ENOENT;
	mp = &c->maps[slot];
	pin->cell = r ? cell_for(r, (unsigned)slot) : NULL;
	if (!pin->cell) {
		atomic_fetch_add(&mp->inflight, 1);
		pin->cell = &mp->inflight;
	}
	/* R1: usable (no release, session active) and our own clock says the
	 * lease still runs -- a stopped process may wake up long after */
	if (!atomic_load(&mp->usable) ||
	    now >= atomic_load_explicit(&c->lease_expiry, memory_order_acquire)) {
		/* a drain or quiesce that saw the count re-checks at the
		 * protocol thread's next tick */
		atomic_fetch_sub(pin->cell, 1);
		pin->cell = NULL;
		return -EAGAIN;
	}
	if (desc && fm_client_map(c, map_id, desc, NULL)) {
		(void)fm_client_io_unpin(c, pin); /* never granted: cannot be usable */
		return -ENOENT;
	}
	return 0;
}

/* the slot whose shared word `cell` is (CL_MAX_MAPS: none) */
static unsigned container_of_inflight(struct fm_client *c, _Atomic uint64_t *cell)
{
	const char *p = (const char *)cell, *m0 = (const char *)&c->maps[0];

	if (p < m0 || p >= (const char *)&c->maps[CL_MAX_MAPS])
		return CL_MAX_MAPS;
	return (unsigned)((size_t)(p - m0) / sizeof(c->maps[0]));
}

bool fm_client_io_unpin(struct fm_client *c, struct fm_client_pin *pin)
{
	_Atomic uint64_t *cell = pin->cell;
	uint64_t old;
	unsigned slot = CL_MAX_MAPS;

	if (!cell)
		return false;
	pin->cell = NULL;
	old = atomic_fetch_sub(cell, 1);
	if (CELL_COUNT(old) != 1)
		return false;
	/* the last bracket of this cell: a release may wait for it */
	if (CELL_SLOT(old))
		slot = (unsigned)CELL_SLOT(old) - 1;
	else /* the slot's shared word */
		slot = (unsigned)(container_of_inflight(c, cell));
	return slot < CL_MAX_MAPS && !atomic_load(&c->maps[slot].usable);
}

uint64_t cl_readers_open(struct fm_client *c, unsigned slot)
{
	unsigned n = atomic_load(&c->nreaders);
	uint64_t sum = atomic_load(&c->maps[slot].inflight);

	if (n > CL_MAX_READERS)
		n = CL_MAX_READERS;
	for (unsigned i = 0; i < n; i++) {
		struct fm_client_reader *r = atomic_load(&c->readers[i]);

		if (!r)
			continue;
		for (unsigned k = 0; k < CL_READER_CELLS; k++) {
			uint64_t w = atomic_load(&r->cell[k]);

			if (CELL_SLOT(w) == slot + 1)
				sum += CELL_COUNT(w);
		}
	}
	return sum;
}

void cl_readers_free(struct fm_client *c)
{
	unsigned n = atomic_load(&c->nreaders);

	for (unsigned i = 0; i < n && i < CL_MAX_READERS; i++)
		free(atomic_load(&c->readers[i]));
}
