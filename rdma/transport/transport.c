/* transport.c -- the provider registry and the transport object: the
 * configuration defaults and checks, then the chosen provider's init. */
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "transport_priv.h"

static const struct fm_provider_ops *find_provider(const char *name)
{
	if (name == NULL || strcmp(name, "shm") == 0)
		return &fm__shm_ops;
	if (strcmp(name, "verbs") == 0)
		return &fm__verbs_ops;
	return NULL;
}

const char *const *fm_transport_providers(void)
{
	static const char *const names[] = {"shm", "verbs", NULL};
	return names;
}

int fm_transport_new(struct fm_transport **out, const struct fm_transport_cfg *cfg_in)
{
	struct fm_transport_cfg cfg = {0};
	const struct fm_provider_ops *ops;
	struct fm_transport *t = NULL;
	int ret;

	if (out == NULL)
		return fm_err(-EINVAL, "fm_transport_new: out is NULL");
	*out = NULL;
	if (cfg_in)
		cfg = *cfg_in;
	ops = find_provider(cfg.provider);
	if (ops == NULL)
		return fm_err(-ENOENT, "unknown transport provider \"%s\" (shm, verbs)",
			      cfg.provider);
	if (cfg.msg_size == 0)
		cfg.msg_size = FM_DEFAULT_MSG_SIZE;
	if (cfg.msg_size > FM_MSG_SIZE_MAX)
		return fm_err(-EINVAL, "message size %u above %u", cfg.msg_size, FM_MSG_SIZE_MAX);
	if (cfg.credits == 0)
		cfg.credits = FM_DEFAULT_CREDITS;
	if (cfg.credits < 2 || cfg.credits > FM_CREDITS_MAX)
		return fm_err(-EINVAL, "credits %u outside [2, %u]", cfg.credits, FM_CREDITS_MAX);
	if (cfg.wait_mode != FM_WAIT_BUSY && cfg.wait_mode != FM_WAIT_EVENT)
		return fm_err(-EINVAL, "wait mode %d", (int)cfg.wait_mode);
	if (cfg.op_timeout_ms <= 0)
		cfg.op_timeout_ms = FM_DEFAULT_TIMEOUT_MS;
	if (cfg.linger_ms == 0)
		cfg.linger_ms = FM_DEFAULT_LINGER_MS;
	if (cfg.shm_read_size == 0)
		cfg.shm_read_size = 64ull << 20;
	if (cfg.shm_atomic_size == 0)
		cfg.shm_atomic_size = 1ull << 30;
	if (cfg.shm_max_regions == 0)
		cfg.shm_max_regions = 256;
	if (cfg.shm_max_regions > (1u << 20))
		return fm_err(-EINVAL, "shm_max_regions %u above %u", cfg.shm_max_regions,
			      1u << 20);
	if (cfg.lane_depth == 0)
		cfg.lane_depth = 64;
	if (cfg.lane_depth > FM_LANE_DEPTH_MAX)
		return fm_err(-EINVAL, "lane_depth %u above %u", cfg.lane_depth,
			      FM_LANE_DEPTH_MAX);
	if (cfg.max_lanes == 0)
		cfg.max_lanes = 16;
	if (cfg.max_lanes > FM_LANES_MAX)
		return fm_err(-EINVAL, "max_lanes %u above %u", cfg.max_lanes, FM_LANES_MAX);
	if (cfg.shm_nuids > FM_SHM_UIDS_MAX)
		return fm_err(-EINVAL, "%u shm uids (at most %u)", cfg.shm_nuids,
			      FM_SHM_UIDS_MAX);
	if (cfg.shm_nuids == 0) {
		cfg.shm_nuids = 1;
		cfg.shm_uids[0] = (uint32_t)geteuid();
	}
	cfg.provider = ops->name;

	ret = ops->transport_init(&t, &cfg);
	if (ret)
		return ret;
	t->ops = ops;
	t->cfg = cfg;
	t->cfg.device = t->device;
	pthread_mutex_init(&t->lock, NULL);
	*out = t;
	return 0;
}

void fm_transport_delete(struct fm_transport **tp)
{
	struct fm_transport *t;

	if (tp == NULL || *tp == NULL)
		return;
	t = *tp;
	pthread_mutex_destroy(&t->lock);
	t->ops->transport_fini(t);
	*tp = NULL;
}

void fm_transport_caps(const struct fm_transport *t, struct fm_caps *caps)
{
	*caps = t->caps;
}
