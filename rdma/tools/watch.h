/* watch.h -- flashmeta --watch: an admin status, maps or map-show asked
 * again every interval and drawn as copy progress (watch.c). */
#ifndef FM_TOOLS_WATCH_H
#define FM_TOOLS_WATCH_H

#include <stdbool.h>
#include <stdint.h>

#define WATCH_INTERVAL_MAX 3600u /* seconds; --watch=SECONDS is 1..this */

struct watch_cfg {
	const char *control;  /* the owner's control socket */
	unsigned interval_s;  /* 1..WATCH_INTERVAL_MAX */
	bool json;            /* one JSON object per update */
	bool one_map;         /* map-show map_id, else every mapping */
	uint64_t map_id;
};

/*
 * watch_run -- until Ctrl-C (SIGINT/SIGTERM), the watched mapping settled
 * (one_map: idle_or_copied, stopped, or deleted), or the owner gone.
 * Returns the exit status: 0 (Ctrl-C, settled), 1 (the owner gone or
 * refused, its answer malformed).  Output: see `flashmeta --help`.
 */
int watch_run(const struct watch_cfg *cfg);

#endif /* FM_TOOLS_WATCH_H */
