/* region.c -- memory regions: the argument checks around the provider's
 * registration (under the transport's lock), the descriptor peers use, and
 * the random keys that name regions. */
#include <errno.h>
#include <sys/random.h>
#include <unistd.h>

#include "transport_priv.h"

#define FM_ACCESS_ALL (FM_ACCESS_REMOTE_READ | FM_ACCESS_REMOTE_ATOMIC)

int fm_region_new(struct fm_transport *t, size_t len, unsigned access, struct fm_region **out)
{
	int ret;

	if (t == NULL || out == NULL || len == 0)
		return fm_err(-EINVAL, "fm_region_new: %s", len ? "NULL argument" : "len 0");
	if (access & ~FM_ACCESS_ALL)
		return fm_err(-EINVAL, "fm_region_new: unknown access bits 0x%x", access);
	pthread_mutex_lock(&t->lock);
	ret = t->ops->region_new(t, len, access, out);
	pthread_mutex_unlock(&t->lock);
	return ret;
}

int fm_region_reg(struct fm_transport *t, void *addr, size_t len, unsigned access,
		  struct fm_region **out)
{
	int ret;

	if (t == NULL || out == NULL || addr == NULL || len == 0)
		return fm_err(-EINVAL, "fm_region_reg: NULL argument or len 0");
	if (access & ~FM_ACCESS_ALL)
		return fm_err(-EINVAL, "fm_region_reg: unknown access bits 0x%x", access);
	pthread_mutex_lock(&t->lock);
	ret = t->ops->region_reg(t, addr, len, access, out);
	pthread_mutex_unlock(&t->lock);
	return ret;
}

void fm_region_delete(struct fm_region **rp)
{
	struct fm_transport *t;

	if (rp == NULL || *rp == NULL)
		return;
	t = (*rp)->t;
	pthread_mutex_lock(&t->lock);
	t->ops->region_delete(*rp);
	pthread_mutex_unlock(&t->lock);
	*rp = NULL;
}

void *fm_region_ptr(const struct fm_region *r)
{
	return r->ptr;
}

size_t fm_region_len(const struct fm_region *r)
{
	return r->len;
}

void fm_region_desc(const struct fm_region *r, struct fm_region_desc *d)
{
	d->addr = r->addr;
	d->len = r->len;
	d->key = r->key;
	d->flags = r->access;
}

uint32_t fm__random_key(void)
{
	uint32_t k = 0;

	while (k == 0) {
		if (getrandom(&k, sizeof(k), 0) != (ssize_t)sizeof(k)) {
			/* getrandom cannot fail for 4 bytes after boot; be safe */
			k = (uint32_t)(fm__now_ms() * 2654435761u) ^ (uint32_t)getpid();
		}
	}
	return k;
}
