/* optab.c -- the pending-operation table (optab.h). */
#include <stdlib.h>
#include <string.h>

#include "optab.h"

void fm_optab_init(struct fm_optab *t, size_t esize)
{
	memset(t, 0, sizeof(*t));
	t->esize = esize;
}

static int grow(struct fm_optab *t)
{
	uint32_t ncap = t->cap ? t->cap * 2 : 16;
	void **rec = realloc(t->rec, ncap * sizeof(*rec));
	uint32_t *gen, *fr;

	if (!rec)
		return -1;
	t->rec = rec;
	gen = realloc(t->gen, ncap * sizeof(*gen));
	if (!gen)
		return -1;
	t->gen = gen;
	fr = realloc(t->free, ncap * sizeof(*fr));
	if (!fr)
		return -1;
	t->free = fr;
	for (uint32_t i = t->cap; i < ncap; i++) {
		rec[i] = NULL;
		gen[i] = 1;
	}
	/* hand out low indexes first */
	for (uint32_t i = ncap; i > t->cap; i--)
		fr[t->nfree++] = i - 1;
	t->cap = ncap;
	return 0;
}

void *fm_optab_new(struct fm_optab *t, uint64_t *id)
{
	void *r;
	uint32_t i;

	if (!t->nfree && grow(t))
		return NULL;
	r = calloc(1, t->esize);
	if (!r)
		return NULL;
	i = t->free[--t->nfree];
	t->rec[i] = r;
	t->live++;
	*id = (uint64_t)t->gen[i] << 32 | i;
	return r;
}

void *fm_optab_take(struct fm_optab *t, uint64_t id)
{
	uint32_t i = (uint32_t)id;
	void *r;

	if (i >= t->cap || !t->rec[i] || t->gen[i] != (uint32_t)(id >> 32))
		return NULL;
	r = t->rec[i];
	t->rec[i] = NULL;
	if (++t->gen[i] == 0)
		t->gen[i] = 1; /* id 0 is never valid */
	t->free[t->nfree++] = i;
	t->live--;
	return r;
}

void fm_optab_fini(struct fm_optab *t)
{
	for (uint32_t i = 0; i < t->cap; i++)
		free(t->rec[i]);
	free(t->rec);
	free(t->gen);
	free(t->free);
	memset(t, 0, sizeof(*t));
}
