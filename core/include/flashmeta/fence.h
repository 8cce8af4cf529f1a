/* fence.h -- how far a fence stopped a peer: one vocabulary for the
 * protocol (FENCE actions, proto.h) and the transports (fm_ep_fence,
 * transport.h).
 *
 * A fence is about what the peer can still do to shared state:
 *   RDMA  none of its one-sided operations can land in our memory any
 *         more (verbs: its QP is in ERROR and destroyed; shm: it unmapped
 *         our memory, which it proved by closing).  Its disk writes may
 *         still run: a fence never stops those by itself.
 *   DEAD  its process has exited (shm: the pidfd says so): none of its
 *         threads runs, so neither its RDMA nor its I/O to shared
 *         storage can happen any more.
 */
#ifndef FLASHMETA_FENCE_H
#define FLASHMETA_FENCE_H

enum fm_fence_level {
	FM_FENCE_NONE = 0,
	FM_FENCE_RDMA = 1,
	FM_FENCE_DEAD = 2,
};

#endif /* FLASHMETA_FENCE_H */
