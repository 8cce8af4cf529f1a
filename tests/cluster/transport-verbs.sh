#!/usr/bin/env bash
# transport-verbs.sh -- the transport contract (tests/transport/test_transport)
# over soft-RoCE: the same scenarios the shm provider passes natively.
#   1 node:  owner and 3 client processes on node 0's rxe, via node 0's IP.
#   N nodes: owner on node 0, one client process on each of nodes 1..N-1
#            (transport-verbs-multi.sh runs this with 3 nodes).
# Env: FM_TRANSPORT_ITERS (default 2000 FAA per process; CAS rounds = /10).
# nodes: 1
# report: ^(ok|FAIL) 
# timeout: 600
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

bin=$FM_BUILD/bin
[[ -x $bin/test_transport ]] || fm_skip "no $bin/test_transport (build the tree first)"
iters=${FM_TRANSPORT_ITERS:-2000}
addr="$(fm_addr 0):7471"
export FM_RDMA_DEV

# What the device offers, kept with the results.
if [[ -x $bin/fm-transport-probe ]]; then
	fm_run 30 "$bin/fm-transport-probe" --json >"$FM_RESULTS/transport-probe.json" || true
	fm_run 30 "$bin/fm-transport-probe" || true
fi

rc=0
if ((FM_NODE_COUNT == 1)); then
	fm_log "owner + 3 clients on $addr ($FM_RDMA_DEV)"
	fm_run 560 "$bin/test_transport" --provider verbs --addr "$addr" --role both \
		--clients 3 --iters "$iters" || rc=$?
elif ((FM_NODE_INDEX == 0)); then
	fm_log "owner on $addr for $((FM_NODE_COUNT - 1)) client nodes"
	fm_run 560 "$bin/test_transport" --provider verbs --addr "$addr" --role owner \
		--clients $((FM_NODE_COUNT - 1)) --iters "$iters" || rc=$?
else
	fm_wait_peer 0 60
	fm_log "client $((FM_NODE_INDEX - 1)) against $addr"
	fm_run 560 "$bin/test_transport" --provider verbs --addr "$addr" --role client \
		--clients $((FM_NODE_COUNT - 1)) --index $((FM_NODE_INDEX - 1)) --procs 1 \
		--iters "$iters" || rc=$?
fi
((rc == 0 || rc == 77)) || fm_die "test_transport exited $rc"
exit "$rc"
