#!/usr/bin/env bash
# pit-verbs.sh -- fm-pit (tests/pit), the point-in-time checker, over soft-RoCE.
# nodes: 1
# smp: 2
# timeout: 600
# report: fm-pit: (PASS|FAIL) .*
#
# Node 0 runs the short mode with --provider verbs on its own RoCE address:
# the real flashmeta-owner and the forked fm_agent clients talk over real RC
# QPs on rxe0 (owner kills and restarts rebind the same port), faults from a
# seed, the model checked at the end.  Pool, volumes and logs live on the
# guest's tmpfs.  Arguments to this script go to fm-pit after the defaults
# (the guest sees no host environment), e.g.
#   cluster.sh run --smp 2 --timeout 600 -- tests/cluster/pit-verbs.sh --scenario stall-race
#   cluster.sh run --smp 2 --timeout 600 -- tests/cluster/pit-verbs.sh --full --seed 7
#   cluster.sh run --smp 2 --timeout 4000 -- tests/cluster/pit-verbs.sh --long
# The seed is random unless given (it is printed).  The summary line and the
# run's stderr land in $FM_RESULTS/pit-verbs/.  Skips (77) when the programs
# or the verbs provider are missing.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

BIN=$FM_BUILD/bin
OUT=$FM_RESULTS/pit-verbs
mkdir -p "$OUT"
for b in fm-pit flashmeta-owner flashmeta-pmem; do
	[[ -x $BIN/$b ]] || fm_skip "$BIN/$b not built"
done

seed=$((RANDOM * 32768 + RANDOM)) # a --seed among the arguments wins
# the short mode's hard limit; --long runs until its I/O and fault counts
# (in TCG ~20-40 min): give cluster.sh a --timeout to match
limit=500
for a in "$@"; do [[ $a == --long ]] && limit=10800; done
rc=0
fm_run "$limit" "$BIN/fm-pit" --short --provider verbs --addr "$(fm_addr 0):7490" \
	--owner "$BIN/flashmeta-owner" --pmem-tool "$BIN/flashmeta-pmem" \
	--seed "$seed" "$@" >"$OUT/summary.txt" 2>"$OUT/pit.log" || rc=$?
cat "$OUT/summary.txt"
if grep -q "no RDMA device" "$OUT/pit.log"; then
	fm_skip "no usable verbs provider/device (see $OUT/pit.log)"
fi
if ((rc != 0)); then
	tail -n 40 "$OUT/pit.log" >&2
	fm_die "fm-pit over verbs failed (rc $rc, $OUT/pit.log)"
fi
fm_log "PASS"
