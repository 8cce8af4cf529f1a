#!/usr/bin/env bash
# bgcopy-verbs.sh -- background copy over soft-RoCE: the ctest scenarios
# it_bgcopy_verbs_kill, _rate and _watch (tests/integration/test_bgcopy.c,
# label verbs) on node 0's own RoCE address.
# nodes: 1
# smp: 2
# timeout: 400
# report: (bgcopy .*: (PASS|FAIL)|half of|the rest at|copy complete [0-9]|^watch( --json)?: [0-9])
#
# The real flashmeta-owner and forked client processes whose engines copy
# in the background talk over real RC QPs on rxe0: `kill` kills a copier
# between two pieces of its batch and the owner half way, then checks the
# target byte for byte and that no committed grain was copied again; `rate`
# checks the pace of one copier and a new rate applied at once; `watch`
# follows a copy with `flashmeta --watch` to idle_or_copied.  Arguments:
# the scenarios to run (default: kill rate watch; the guest sees no host
# environment), e.g.
#   cluster.sh run --smp 2 --timeout 400 -- tests/cluster/bgcopy-verbs.sh rate
# Each scenario's stderr lands in $FM_RESULTS/bgcopy-verbs/SCENARIO.log.
# Skips (77) when the programs or the verbs provider are missing.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

BIN=$FM_BUILD/bin
OUT=$FM_RESULTS/bgcopy-verbs
mkdir -p "$OUT"
for b in test_bgcopy flashmeta-owner flashmeta; do
	[[ -x $BIN/$b ]] || fm_skip "$BIN/$b not built"
done

port=7500
fail=0
(($#)) || set -- kill rate watch
for sc in "$@"; do
	rc=0
	start=$SECONDS
	fm_run 180 "$BIN/test_bgcopy" "$sc" --owner "$BIN/flashmeta-owner" \
		--cli "$BIN/flashmeta" --provider verbs --addr "$(fm_addr 0):$port" \
		>"$OUT/$sc.log" 2>&1 || rc=$?
	if grep -q "no RDMA device" "$OUT/$sc.log"; then
		fm_skip "no usable verbs provider/device (see $OUT/$sc.log)"
	fi
	grep -E "half of|the rest at|copy complete [0-9]|split after|copier: |^watch( --json)?: [0-9]" "$OUT/$sc.log" || true
	fm_verdict "bgcopy $sc over verbs" "$rc" "$start" "$OUT/$sc.log" || fail=1
	port=$((port + 1))
done
((fail == 0)) || fm_die "background copy over verbs failed"
fm_log "PASS"
