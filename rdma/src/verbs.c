/* verbs.c -- placeholder */
#include <errno.h>
#include "transport_priv.h"
static int v_init(struct fm_transport **out, const struct fm_transport_cfg *cfg)
{
	return fm_err(-ENODEV, "no RDMA device: stub");
}
const struct fm_provider_ops fm__verbs_ops = {.name = "verbs", .transport_init = v_init};
