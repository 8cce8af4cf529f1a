/* device.c -- the verbs provider's device and regions: the transport object
 * opens one RDMA device (rdma_get_devices, the contexts rdma_cm uses) and a
 * PD, detects the capabilities, and registers regions as MRs with the least
 * access they need.  The provider's ops table is here.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <infiniband/verbs.h>
#include <rdma/rdma_cma.h>

#include "verbs_priv.h"

/* device_cap_flags_ex bits (kernel enum ib_uverbs_device_cap_flags); not
 * named by rdma-core 44's verbs.h */
#define FM_DEV_FLUSH_GLOBAL (1ull << 38)
#define FM_DEV_FLUSH_PERSISTENT (1ull << 39)
#define FM_DEV_ATOMIC_WRITE (1ull << 40)

/* ------------------------------------------------------------ transport */

static int v_transport_init(struct fm_transport **out, const struct fm_transport_cfg *cfg)
{
	struct v_transport *vt;
	int n = 0, i, ret;

	vt = calloc(1, sizeof(*vt));
	if (vt == NULL)
		return fm_err(-ENOMEM, "verbs transport");
	vt->devs = rdma_get_devices(&n);
	if (vt->devs == NULL || n == 0) {
		ret = fm_err(-ENODEV, "no RDMA device: rdma_get_devices found none (no "
				      "/dev/infiniband? load rdma_rxe and add a link)");
		goto out_free;
	}
	for (i = 0; i < n; i++) {
		const char *name = ibv_get_device_name(vt->devs[i]->device);

		if (cfg->device == NULL || strcmp(cfg->device, name) == 0) {
			vt->ctx = vt->devs[i];
			break;
		}
	}
	if (vt->ctx == NULL) {
		ret = fm_err(-ENODEV, "no RDMA device: \"%s\" not among the %d present",
			     cfg->device, n);
		goto out_devs;
	}
	snprintf(vt->t.device, sizeof(vt->t.device), "%s", ibv_get_device_name(vt->ctx->device));
	if (ibv_query_device_ex(vt->ctx, NULL, &vt->attr)) {
		ret = fm_err(-ENODEV, "ibv_query_device_ex(%s) failed", vt->t.device);
		goto out_devs;
	}
	vt->pd = ibv_alloc_pd(vt->ctx);
	if (vt->pd == NULL) {
		ret = fm_err(errno ? -errno : -ENOMEM, "ibv_alloc_pd(%s): %s", vt->t.device,
			     strerror(errno));
		goto out_devs;
	}

	vt->t.caps.flags = FM_CAP_EVENT_FD;
	if (vt->attr.orig_attr.atomic_cap == IBV_ATOMIC_HCA)
		vt->t.caps.flags |= FM_CAP_ATOMIC;
	else if (vt->attr.orig_attr.atomic_cap == IBV_ATOMIC_GLOB)
		vt->t.caps.flags |= FM_CAP_ATOMIC | FM_CAP_ATOMIC_GLOB;
	if (vt->attr.device_cap_flags_ex & FM_DEV_ATOMIC_WRITE)
		vt->t.caps.flags |= FM_CAP_ATOMIC_WRITE;
	if (vt->attr.device_cap_flags_ex & (FM_DEV_FLUSH_GLOBAL | FM_DEV_FLUSH_PERSISTENT))
		vt->t.caps.flags |= FM_CAP_FLUSH;
#ifdef FM_HAVE_IBV_WR_FLUSH
	if (vt->attr.device_cap_flags_ex & FM_DEV_FLUSH_PERSISTENT)
		vt->t.caps.flags |= FM_CAP_PERSIST;
#endif
	vt->t.caps.max_msg_size = cfg->msg_size;
	snprintf(vt->t.caps.provider, sizeof(vt->t.caps.provider), "verbs");
	snprintf(vt->t.caps.device, sizeof(vt->t.caps.device), "%s", vt->t.device);
	vt->t.caps.max_region_size = vt->attr.orig_attr.max_mr_size;
	*out = &vt->t;
	return 0;

out_devs:
	rdma_free_devices(vt->devs);
out_free:
	free(vt);
	return ret;
}

static void v_transport_fini(struct fm_transport *t)
{
	struct v_transport *vt = to_vt(t);

	ibv_dealloc_pd(vt->pd);
	rdma_free_devices(vt->devs);
	free(vt);
}

/* -------------------------------------------------------------- regions */

/* least access: the HCA writes LOCAL regions (READ destinations) and the
 * words of ATOMIC ones (verbs demands LOCAL_WRITE with REMOTE_ATOMIC);
 * a REMOTE_READ-only region is never written by the HCA */
static int v_access(unsigned access)
{
	int a = 0;

	if (access == FM_ACCESS_LOCAL)
		a |= IBV_ACCESS_LOCAL_WRITE;
	if (access & FM_ACCESS_REMOTE_READ)
		a |= IBV_ACCESS_REMOTE_READ;
	if (access & FM_ACCESS_REMOTE_ATOMIC)
		a |= IBV_ACCESS_REMOTE_ATOMIC | IBV_ACCESS_LOCAL_WRITE;
	return a;
}

static int v_region_reg_common(struct fm_transport *t, void *addr, size_t len, unsigned access,
			       bool owned, struct fm_region **out)
{
	struct v_transport *vt = to_vt(t);
	struct v_region *vr = calloc(1, sizeof(*vr));

	if (vr == NULL)
		return fm_err(-ENOMEM, "region");
	vr->mr = ibv_reg_mr(vt->pd, addr, len, v_access(access));
	if (vr->mr == NULL) {
		int e = errno ? errno : ENOMEM;
		free(vr);
		return fm_err(-e, "ibv_reg_mr(%zu bytes, access 0x%x): %s%s", len, v_access(access),
			      strerror(e),
			      e == EOPNOTSUPP ? " (fsdax memory cannot be registered)" : "");
	}
	vr->r.t = t;
	vr->r.ptr = addr;
	vr->r.len = len;
	vr->r.access = access;
	vr->r.key = vr->mr->rkey;
	vr->r.addr = (uint64_t)(uintptr_t)addr;
	vr->r.owned = owned;
	*out = &vr->r;
	return 0;
}

static int v_region_new(struct fm_transport *t, size_t len, unsigned access,
			struct fm_region **out)
{
	size_t alen = (len + 4095) & ~(size_t)4095;
	void *p;
	int ret;

	if (posix_memalign(&p, 4096, alen))
		return fm_err(-ENOMEM, "region of %zu bytes", len);
	memset(p, 0, alen);
	ret = v_region_reg_common(t, p, len, access, true, out);
	if (ret)
		free(p);
	return ret;
}

static int v_region_reg(struct fm_transport *t, void *addr, size_t len, unsigned access,
			struct fm_region **out)
{
	return v_region_reg_common(t, addr, len, access, false, out);
}

static void v_region_delete(struct fm_region *r)
{
	struct v_region *vr = container_of(r, struct v_region, r);

	ibv_dereg_mr(vr->mr);
	if (r->owned)
		free(r->ptr);
	free(vr);
}

const struct fm_provider_ops fm__verbs_ops = {
	.name = "verbs",
	.transport_init = v_transport_init,
	.transport_fini = v_transport_fini,
	.region_new = v_region_new,
	.region_reg = v_region_reg,
	.region_delete = v_region_delete,
	.listen = fm__verbs_listen,
	.listener_delete = fm__verbs_listener_delete,
	.listener_fd = fm__verbs_listener_fd,
	.accept = fm__verbs_accept,
	.loopback = fm__verbs_loopback,
	.connect = fm__verbs_connect,
	.ep_delete = fm__verbs_ep_delete,
	.grant = fm__verbs_grant,
	.fence = fm__verbs_fence,
	.fence_fd = NULL, /* nothing to wait for: a verbs fence is immediate */
	.ep_free = fm__verbs_ep_final,
	.lane_new = fm__verbs_lane_new,
	.lane_retire = fm__verbs_lane_retire,
	.lane_free = fm__verbs_lane_free,
	.post_read = fm__verbs_post_read,
	.post_atomic = fm__verbs_post_atomic,
	.lane_poll = fm__verbs_lane_poll,
	.lane_sleep = fm__verbs_lane_sleep,
	.lane_fd = fm__verbs_lane_fd,
	.msg_post = fm__verbs_msg_post,
	.msg_repost = fm__verbs_msg_repost,
	.progress = fm__verbs_progress,
	.reap = fm__verbs_reap,
};
