/* ctl_progress.h -- a mapping's background copy progress as the owner
 * reports it (its "map ..." record, ownerd.h map-show / status), read into
 * a value and written back out for people: the CLI's --watch
 * (rdma/tools/watch.c) draws with it.
 *
 * Pure functions of their arguments: no I/O, no allocation, no clock.
 * Errors: negative errno, detail in fm_errormsg().
 */
#ifndef FLASHMETA_CTL_PROGRESS_H
#define FLASHMETA_CTL_PROGRESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* one mapping's line of map-show, the fields a progress view needs */
struct fm_ctl_progress {
	uint64_t map_id;
	char state[24];       /* fm_map_state_name: idle_or_copied, copying, ... */
	uint64_t generation;
	uint64_t grains;      /* of the mapping */
	uint64_t split;       /* grains split (durable at the owner) */
	uint64_t split_pct;   /* the owner's: rounded down, 100 only when all */
	uint64_t grain_bytes;
	uint64_t rate;        /* copy rate 0..150 (flashmeta/copy.h) */
	uint64_t rate_bps;    /* its bytes per second */
	int64_t eta_s;        /* at the rate; -1 never (rate 0); 0 not copying */
	uint64_t copiers;     /* client sessions copying a batch now */
};

/*
 * fm_ctl_record_value -- the value of `key` in one record line ("NAME K V
 * K V ..." or "K V K V ...", ownerd.h; the line may end in "\n"): *val
 * points into `line`, *len is its length.  Only keys are matched, never
 * values or the record's name.  Returns 0 or -ENOENT (no such key).
 */
int fm_ctl_record_value(const char *line, const char *key, const char **val, size_t *len);

/*
 * fm_ctl_progress_parse -- one "map ..." record line into *p.  Every field
 * above must be there, a number where it is one (eta-s may be -1), state
 * at most 23 letters or '_', split <= grains, grains > 0.  Returns 0,
 * -EINVAL naming the first thing wrong (not a map record, a key missing,
 * a value malformed).
 */
int fm_ctl_progress_parse(const char *line, struct fm_ctl_progress *p);

/*
 * fm_ctl_progress_settled -- the state a watch of one mapping ends in:
 * idle_or_copied (the copy is complete, or there was none) or stopped.
 */
bool fm_ctl_progress_settled(const struct fm_ctl_progress *p);

/*
 * fm_ctl_progress_bar -- "[#####.....]" of `width` cells between the
 * brackets for split of grains: a cell is '#' only when its whole share
 * is split (all '#' only when every grain is).  out gets at most cap - 1
 * characters and a NUL; width 0..200.  Returns the characters written
 * (without the NUL), or -EINVAL (width, or cap too small for it).
 */
int fm_ctl_progress_bar(const struct fm_ctl_progress *p, unsigned width, char *out, size_t cap);

/*
 * fm_ctl_bytes_human -- n bytes as "512 B", "64.0 KiB", "2.0 GiB" (1024s,
 * one decimal from KiB on) into out; returns out.  cap >= 16.
 */
const char *fm_ctl_bytes_human(uint64_t n, char *out, size_t cap);

/*
 * fm_ctl_duration_human -- seconds as "42s", "3m07s", "2h05m", "9d04h";
 * a negative one as "never"; returns out.  cap >= 16.
 */
const char *fm_ctl_duration_human(int64_t s, char *out, size_t cap);

#endif /* FLASHMETA_CTL_PROGRESS_H */
