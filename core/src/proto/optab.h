/* optab.h -- the table of operations a protocol state machine has asked
 * its driver for and not yet seen completed (private to core/src).
 *
 * Each READ/CAS/PERSIST/FENCE action carries an op id; op_done(id) finds
 * the record again.  An id is (generation << 32 | index): the index finds
 * the record in O(1), the generation refuses an id whose record was
 * already completed and its slot reused, so a late or duplicated op_done
 * is -ENOENT, never someone else's completion.  Records are allocated
 * one by one (their addresses stay valid while they live); the index
 * arrays grow by doubling.  One protocol thread owns a table: no lock.
 */
#ifndef FM_PROTO_OPTAB_H
#define FM_PROTO_OPTAB_H

#include <stddef.h>
#include <stdint.h>

struct fm_optab {
	size_t esize;      /* bytes of one record */
	void **rec;        /* by index: the live record, or NULL */
	uint32_t *gen;     /* by index: generation of the record there */
	uint32_t *free;    /* stack of free indexes */
	uint32_t cap, nfree, live;
};

void fm_optab_init(struct fm_optab *t, size_t esize);
/* A zeroed record and its id, or NULL (out of memory; nothing changed). */
void *fm_optab_new(struct fm_optab *t, uint64_t *id);
/* Remove and return the record of `id`, or NULL if it is not live. */
void *fm_optab_take(struct fm_optab *t, uint64_t id);
/* The live record at index i (0 <= i < cap), or NULL: for walks. */
static inline void *fm_optab_at(const struct fm_optab *t, uint32_t i)
{
	return t->rec[i];
}
/* Free every record and the table. */
void fm_optab_fini(struct fm_optab *t);

#endif /* FM_PROTO_OPTAB_H */
