/* written.c -- the grains this client wrote, per mapping, until it reports
 * them to the owner (CHANGE_REPORT, wire 2.4): the client half of the
 * incremental refresh (flashmeta/pmem_store.h fm_store_map_refresh).
 *
 * Design.  Per map slot two bitmaps, both anonymous memory mapped with
 * MAP_NORESERVE (a volume of 2^45 grains would need 4 TiB of bits: only
 * the pages a write touches are ever backed):
 *
 *   wbits  bit g: grain g was written (le-agnostic: host words, never sent)
 *   wsum   bit j: some bit of wbits words [64 j, 64 j + 63] is set, so a
 *          report scans 1/4096 of the grains' bits plus what was written
 *
 * Writers: engine threads, inside an open bracket of the mapping, before
 * the data write is issued (fm_client_record_write).  Per word: one
 * relaxed load, and an atomic OR only when a bit is new -- the common
 * case, a grain written again, is two loads of lines nobody writes (no
 * lock, no allocation, no shared written line).
 *
 * Reader and eraser: the protocol thread, only when no bracket of the slot
 * is open and none can open (a release drained it -- usable == false -- or
 * the session quiesced).  Why it sees every bit: the writer's OR is
 * sequenced before its unpin, an atomic RMW (seq_cst); the drain saw that
 * unpin's count (a seq_cst load), so it happens after the OR.  Clearing is
 * safe for the same reason: no writer runs until the next grant makes the
 * slot usable again (the seq_cst store of usable orders the zeros before
 * any later bracket).
 *
 * Lifetime: (re)mapped at a grant when the slot has no bitmaps or the
 * mapping's grain count changed (a mapping deleted and made again); reset
 * when a grant brings another generation -- both happen only when no
 * bracket of the slot can be open (cl_written_on_grant says why).  `wgen` is the generation the bits belong to; a record
 * for another generation is refused (-ESTALE) and the engine retries.
 */
#include <errno.h>
#include <string.h>
#include <sys/mman.h>

#include "client_priv.h"
#include "flashmeta/error.h"

/* At most this many CHANGE_REPORTs per release: past it the set is sent
 * coarser (whole runs of 2^k grains), never smaller. */
#define CL_REPORT_MAX_MSGS 32u
#define CL_REPORT_MAX (CL_REPORT_MAX_MSGS * FM_WIRE_REPORT_MAX_RANGES)

static size_t words_of(uint64_t bits)
{
	return (size_t)((bits + 63) / 64);
}

static void *map_zero(size_t bytes)
{
	void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);

	return p == MAP_FAILED ? NULL : p;
}

static void unmap(struct cmap *mp)
{
	uint64_t *b = atomic_load(&mp->wbits), *s = atomic_load(&mp->wsum);
	uint64_t n = atomic_load(&mp->wgrains);

	if (b)
		munmap(b, words_of(n) * 8);
	if (s)
		munmap(s, words_of(words_of(n)) * 8);
	atomic_store(&mp->wbits, NULL);
	atomic_store(&mp->wsum, NULL);
	atomic_store(&mp->wgrains, 0);
}

/* zero both bitmaps where the summary says a bit may be: protocol thread,
 * no bracket open */
static void clear_set(struct cmap *mp)
{
	uint64_t *b = atomic_load(&mp->wbits), *s = atomic_load(&mp->wsum);
	size_t nw = words_of(atomic_load(&mp->wgrains)), ns = words_of(nw);

	if (!b)
		return;
	for (size_t j = 0; j < ns; j++) {
		if (!atomic_load_explicit((_Atomic uint64_t *)&s[j], memory_order_relaxed))
			continue;
		for (size_t k = j * 64; k < nw && k < j * 64 + 64; k++)
			atomic_store_explicit((_Atomic uint64_t *)&b[k], 0, memory_order_relaxed);
		atomic_store_explicit((_Atomic uint64_t *)&s[j], 0, memory_order_relaxed);
	}
}

void cl_written_on_grant(struct fm_client *c, unsigned slot, const struct fm_wire_mapdesc *d)
{
	struct cmap *mp = &c->maps[slot];
	size_t nw = words_of(d->grain_count);
	uint64_t *b, *s;

	/* Why no bracket that records can be open here when the generation
	 * or the geometry changes: the owner grants another generation (or a
	 * mapping made again under this id) only after this client released
	 * the old one, or in a new session, which begins only after the old
	 * one quiesced -- either way every bracket of the slot ended, and
	 * usable stayed false since.  (An io_pin racing with us only counts
	 * and backs out: it records nothing.)  A grant of the same generation
	 * -- the lock table after the owner's restart grace -- may come with
	 * brackets running: it changes nothing here. */
	if (atomic_load(&mp->wbits) && atomic_load(&mp->wgrains) == d->grain_count) {
		if (atomic_load(&mp->wgen) != d->generation) {
			clear_set(mp); /* an older generation's set is gone at the owner */
			atomic_store(&mp->wgen, d->generation);
		}
		return;
	}
	unmap(mp);
	b = map_zero(nw * 8);
	s = map_zero(words_of(nw) * 8);
	if (!b || !s) {
		if (b)
			munmap(b, nw * 8);
		if (s)
			munmap(s, words_of(nw) * 8);
		/* no set: every record fails (-ENOMEM), so nothing is
		 * written unrecorded; the I/O reports the error */
		return;
	}
	atomic_store(&mp->wgrains, d->grain_count);
	atomic_store(&mp->wgen, d->generation);
	atomic_store(&mp->wsum, s);
	atomic_store(&mp->wbits, b);
}

void cl_written_free(struct fm_client *c)
{
	for (unsigned i = 0; i < CL_MAX_MAPS; i++)
		unmap(&c->maps[i]);
}

int fm_client_record_write(struct fm_client *c, uint64_t map_id, uint64_t generation,
			   uint64_t first, uint64_t last)
{
	int slot = cl_slot_of(c, map_id);
	struct cmap *mp;
	_Atomic uint64_t *b, *s;

	if (slot < 0)
		return fm_err(-ENOENT, "client: map %llu never granted",
			      (unsigned long long)map_id);
	mp = &c->maps[slot];
	b = (_Atomic uint64_t *)atomic_load_explicit(&mp->wbits, memory_order_acquire);
	s = (_Atomic uint64_t *)atomic_load_explicit(&mp->wsum, memory_order_acquire);
	if (!b || !s)
		return fm_err(-ENOMEM, "client: map %llu: no written set (out of memory at"
			      " its grant)", (unsigned long long)map_id);
	if (atomic_load_explicit(&mp->wgen, memory_order_relaxed) != generation)
		return fm_err(-ESTALE, "client: map %llu records generation %llu, not %llu",
			      (unsigned long long)map_id,
			      (unsigned long long)atomic_load(&mp->wgen),
			      (unsigned long long)generation);
	if (first > last || last >= atomic_load_explicit(&mp->wgrains, memory_order_relaxed))
		return fm_err(-ERANGE, "client: map %llu: grains [%llu, %llu] outside it",
			      (unsigned long long)map_id, (unsigned long long)first,
			      (unsigned long long)last);
	/* loop invariant: grains [first, g) are recorded; no overflow at the
	 * top: the loop stops after the word holding `last` */
	for (uint64_t g = first;;) {
		uint64_t k = g / 64, lo = g % 64;
		uint64_t hi = last / 64 == k ? last % 64 : 63;
		uint64_t bits = (hi - lo == 63 ? ~UINT64_C(0) : ((UINT64_C(1) << (hi - lo + 1)) - 1))
				<< lo;
		uint64_t sb = UINT64_C(1) << (k % 64);

		if ((atomic_load_explicit(&b[k], memory_order_relaxed) & bits) != bits)
			atomic_fetch_or_explicit(&b[k], bits, memory_order_relaxed);
		if (!(atomic_load_explicit(&s[k / 64], memory_order_relaxed) & sb))
			atomic_fetch_or_explicit(&s[k / 64], sb, memory_order_relaxed);
		if (last / 64 == k)
			break;
		g = (k + 1) * 64;
	}
	return 0;
}

/*
 * Walk the set in runs of 2^shift grains: every run holding a written
 * grain, merged with a touching neighbour, goes to `emit` as a closed
 * range, ascending.  Returns how many ranges there were.
 */
typedef void (*range_fn)(void *arg, uint64_t first, uint64_t last);

static uint64_t walk(struct cmap *mp, unsigned shift, range_fn emit, void *arg)
{
	const _Atomic uint64_t *b = (const _Atomic uint64_t *)atomic_load(&mp->wbits);
	const _Atomic uint64_t *s = (const _Atomic uint64_t *)atomic_load(&mp->wsum);
	uint64_t gc = atomic_load(&mp->wgrains);
	size_t nw = words_of(gc), ns = words_of(nw);
	uint64_t n = 0, cf = 0, cl = 0;
	bool open = false;

	for (size_t j = 0; j < ns; j++) {
		uint64_t sw = atomic_load_explicit(&s[j], memory_order_relaxed);

		while (sw) {
			size_t k = j * 64 + (size_t)__builtin_ctzll(sw);
			uint64_t w = k < nw ? atomic_load_explicit(&b[k], memory_order_relaxed) : 0;

			sw &= sw - 1;
			while (w) {
				uint64_t g = (uint64_t)k * 64 + (uint64_t)__builtin_ctzll(w);
				uint64_t f = g >> shift << shift;
				uint64_t l = f + ((UINT64_C(1) << shift) - 1);

				w &= w - 1;
				if (l >= gc || l < f)
					l = gc - 1;
				if (open && f <= cl + 1) {
					if (l > cl)
						cl = l;
					continue;
				}
				if (open) {
					emit(arg, cf, cl);
					n++;
				}
				cf = f;
				cl = l;
				open = true;
			}
		}
	}
	if (open) {
		emit(arg, cf, cl);
		n++;
	}
	return n;
}

static void count_only(void *arg, uint64_t first, uint64_t last)
{
	(void)arg;
	(void)first;
	(void)last;
}

struct report_ctx {
	struct fm_client *c;
	struct fm_msg m;
	uint64_t sent;
};

static void flush_report(struct report_ctx *r)
{
	if (!r->m.u.report.range_count)
		return;
	(void)cl_send_msg(r->c, &r->m);
	r->sent++;
	r->m.u.report.range_count = 0;
}

static void add_range(void *arg, uint64_t first, uint64_t last)
{
	struct report_ctx *r = arg;
	uint16_t i = r->m.u.report.range_count;

	r->m.u.report.ranges[i].first = first;
	r->m.u.report.ranges[i].last = last;
	r->m.u.report.range_count = (uint16_t)(i + 1);
	if (r->m.u.report.range_count == FM_WIRE_REPORT_MAX_RANGES)
		flush_report(r);
}

unsigned cl_written_report(struct fm_client *c, unsigned slot)
{
	struct cmap *mp = &c->maps[slot];
	struct report_ctx r = { .c = c };
	unsigned shift = 0;

	if (!atomic_load(&mp->wbits))
		return 0;
	if (c->owner_minor < 4) {
		/* an owner before 2.4 keeps no changed sets: nothing to tell */
		clear_set(mp);
		return 0;
	}
	while (walk(mp, shift, count_only, NULL) > CL_REPORT_MAX && shift < 63)
		shift++;
	fm_wire_msg_init(&r.m, FM_MSG_CHANGE_REPORT);
	r.m.u.report.map_id = atomic_load(&mp->id);
	r.m.u.report.generation = atomic_load(&mp->wgen);
	walk(mp, shift, add_range, &r);
	flush_report(&r);
	clear_set(mp);
	c->reports_sent += r.sent;
	return (unsigned)r.sent;
}

int fm_client_written(struct fm_client *c, uint64_t map_id, uint64_t *grains,
		      uint64_t *generation)
{
	int slot = cl_slot_of(c, map_id);
	struct cmap *mp;
	uint64_t n = 0;

	if (slot < 0)
		return -ENOENT;
	mp = &c->maps[slot];
	if (atomic_load(&mp->wbits)) {
		const _Atomic uint64_t *b = (const _Atomic uint64_t *)atomic_load(&mp->wbits);
		const _Atomic uint64_t *s = (const _Atomic uint64_t *)atomic_load(&mp->wsum);
		size_t nw = words_of(atomic_load(&mp->wgrains)), ns = words_of(nw);

		for (size_t j = 0; j < ns; j++) {
			if (!atomic_load_explicit(&s[j], memory_order_relaxed))
				continue;
			for (size_t k = j * 64; k < nw && k < j * 64 + 64; k++)
				n += (uint64_t)__builtin_popcountll(
					atomic_load_explicit(&b[k], memory_order_relaxed));
		}
	}
	*grains = n;
	if (generation)
		*generation = atomic_load(&mp->wgen);
	return 0;
}
