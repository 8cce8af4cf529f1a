#!/usr/bin/env bash
# rxe-setup.sh -- deploy/rxe/rxe-setup.sh works: check, remove, add, add again, check.
# nodes: 1
# timeout: 120
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

tool="$FM_SRC/deploy/rxe/rxe-setup.sh"
nd=$FM_NETDEV
fm_run 20 "$tool" check "$nd" --name "$FM_RDMA_DEV" || fm_die "check of the boot-time $FM_RDMA_DEV"
fm_run 20 "$tool" remove "$nd" --name "$FM_RDMA_DEV" || fm_die "remove"
[[ ! -e /sys/class/infiniband/$FM_RDMA_DEV ]] || fm_die "$FM_RDMA_DEV still present after remove"
fm_run 20 "$tool" remove "$nd" --name "$FM_RDMA_DEV" || fm_die "second remove not idempotent"
if fm_run 20 "$tool" check "$nd" --name "$FM_RDMA_DEV" 2>/dev/null; then
	fm_die "check passed without a device"
fi
fm_run 20 "$tool" add "$nd" --name "$FM_RDMA_DEV" || fm_die "add"
fm_run 20 "$tool" add "$nd" --name "$FM_RDMA_DEV" || fm_die "second add not idempotent"
fm_run 20 "$tool" check "$nd" --name "$FM_RDMA_DEV" || fm_die "check after add"
echo "rxe-setup: ok"
