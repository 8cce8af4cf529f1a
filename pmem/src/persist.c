/* persist.c -- thin wrapper over libpmem's flush/drain/msync with test hooks. */
#include <errno.h>
#include <libpmem.h>

#include "flashmeta/error.h"
#include "persist.h"

static const struct fm_persist_hooks *hooks;

void fm_persist_set_hooks(const struct fm_persist_hooks *h)
{
	hooks = h;
}

void fm_persist_init(struct fm_persist *p, void *base, size_t size, int is_pmem)
{
	p->base = base;
	p->size = size;
	p->is_pmem = is_pmem;
	p->lo = UINTPTR_MAX;
	p->hi = 0;
	p->drains = 0;
}

void fm_flush(struct fm_persist *p, const void *addr, size_t len)
{
	uintptr_t a = (uintptr_t)addr;

	if (!len)
		return;
	if (hooks && hooks->flush)
		hooks->flush(hooks->arg, p, a - (uintptr_t)p->base, len);
	if (p->is_pmem) {
		pmem_flush(addr, len);
		return;
	}
	if (a < p->lo)
		p->lo = a;
	if (a + len > p->hi)
		p->hi = a + len;
}

int fm_drain(struct fm_persist *p)
{
	if (hooks && hooks->drain) {
		int rc = hooks->drain(hooks->arg, p);

		if (rc)
			return fm_err(rc, "drain: injected failure %d", rc);
	}
	p->drains++;
	if (p->is_pmem) {
		pmem_drain();
		return 0;
	}
	if (p->lo >= p->hi)
		return 0;
	if (pmem_msync((void *)p->lo, p->hi - p->lo)) {
		int e = errno ? errno : EIO;
		return fm_err(-e, "msync: %s", pmem_errormsg());
	}
	p->lo = UINTPTR_MAX;
	p->hi = 0;
	return 0;
}

int fm_persist_range(struct fm_persist *p, const void *addr, size_t len)
{
	fm_flush(p, addr, len);
	return fm_drain(p);
}
