/* owner.c -- the real flashmeta-owner as a child process (bench/common/
 * owner_proc.h), with fm-bench-agent's flags; a failure ends the run. */
#include <inttypes.h>

#include "bench_agent.h"
#include "flashmeta/error.h"

void owner_dir_make(struct fm_bench_owner *o, const char *pool_dir)
{
	int rc = fm_bench_owner_dir(o, pool_dir, "fm-bench-agent", BA_KEY);

	if (rc)
		ba_die(rc, "owner dir");
}

void owner_start(struct fm_bench_owner *o, const struct ba_opts *op, uint64_t grains)
{
	struct fm_bench_owner_cfg cfg = {
		.provider = op->provider, .device = op->device, .addr = op->addr,
		.clients = "1-16", .lease_ms = 3000, .max_maps = 4, .max_grains = grains,
	};
	int rc = fm_bench_owner_start(o, &cfg);

	if (rc)
		ba_die(rc, "owner start");
}

void owner_counts(struct fm_bench_owner *o, struct fm_bench_owner_counts *c)
{
	int rc = fm_bench_owner_counts(o, c);

	if (rc)
		ba_die(rc, "owner status");
}
