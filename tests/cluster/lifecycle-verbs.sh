#!/usr/bin/env bash
# lifecycle-verbs.sh -- consistency groups and restore over soft-RoCE: the
# ctest scenarios it_groups_verbs_commands, _timeout, _consistency and
# it_restore_verbs (tests/integration/test_groups.c, test_restore.c, label
# verbs) on node 0's own RoCE address.
# nodes: 1
# smp: 2
# timeout: 500
# report: (lifecycle .*: (PASS|FAIL))
#
# The real flashmeta-owner and forked client processes talk over real RC
# QPs on rxe0: `groups-commands` drives every group command from every
# member state; `groups-timeout` a member held by a client that never
# releases; `groups-consistency` dependent writes across two volumes while
# the group is triggered (one point in time, with its negative control);
# `restore` a restored mapping checked byte for byte.  Arguments: the
# scenarios to run (default: all four), e.g.
#   cluster.sh run --smp 2 --timeout 500 -- tests/cluster/lifecycle-verbs.sh restore
# Each scenario's output lands in $FM_RESULTS/lifecycle-verbs/SCENARIO.log.
# Skips (77) when the programs or the verbs provider are missing.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

BIN=$FM_BUILD/bin
OUT=$FM_RESULTS/lifecycle-verbs
mkdir -p "$OUT"
for b in test_groups test_restore flashmeta-owner; do
	[[ -x $BIN/$b ]] || fm_skip "$BIN/$b not built"
done

port=7600
fail=0
(($#)) || set -- groups-commands groups-timeout groups-consistency restore
for sc in "$@"; do
	case $sc in
	groups-*) cmd=("$BIN/test_groups" "${sc#groups-}") ;;
	restore) cmd=("$BIN/test_restore") ;;
	*) fm_die "unknown scenario $sc (groups-commands groups-timeout groups-consistency restore)" ;;
	esac
	rc=0
	start=$SECONDS
	fm_run 200 "${cmd[@]}" --owner "$BIN/flashmeta-owner" --provider verbs \
		--addr "$(fm_addr 0):$port" >"$OUT/$sc.log" 2>&1 || rc=$?
	if grep -q "no RDMA device" "$OUT/$sc.log"; then
		fm_skip "no usable verbs provider/device (see $OUT/$sc.log)"
	fi
	fm_verdict "lifecycle $sc over verbs" "$rc" "$start" "$OUT/$sc.log" || fail=1
	port=$((port + 1))
done
((fail == 0)) || fm_die "lifecycle scenarios over verbs failed"
fm_log "PASS"
