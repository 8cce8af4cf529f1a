#!/usr/bin/env bash
# scenarios-verbs.sh -- the integration scenarios labelled verbs that no
# other script runs, over soft-RoCE on node 0's own RoCE address: the
# ctests it_groups_verbs_commands, _timeout, _consistency, it_restore_verbs
# (tests/integration/test_groups.c, test_restore.c), it_lanes_verbs_late,
# _lost (test_lanes.c) and it_refresh_verbs_* (test_refresh.c).
# nodes: 1
# smp: 2
# timeout: 500
# report: (scenario .*: (PASS|FAIL))
#
# The real flashmeta-owner and forked client processes talk over real RC
# QPs on rxe0: `groups-commands` drives every group command from every
# member state; `groups-timeout` a member held by a client that never
# releases; `groups-consistency` dependent writes across two volumes while
# the group is triggered (one point in time, with its negative control);
# `restore` a restored mapping checked byte for byte; `lanes-late` engine
# lanes whose completions come late while the clock ticks inside a pass
# (no lane may be abandoned); `lanes-lost` a lock CAS whose completion
# never comes (the lane abandoned, the session ended and joined again, no
# word left held, the data right); `refresh-incremental`,
# `refresh-client-kill`, `refresh-owner-restart`, `refresh-malformed` the
# incremental refresh (map-refresh) checked block by block, after a
# writer's death, across an owner restart, and against malformed change
# reports.  Arguments: the scenarios to run
# (default: all), e.g.
#   cluster.sh run --smp 2 --timeout 500 -- tests/cluster/scenarios-verbs.sh restore
# Each scenario's output lands in $FM_RESULTS/scenarios-verbs/SCENARIO.log.
# Skips (77) when the programs or the verbs provider are missing.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

BIN=$FM_BUILD/bin
OUT=$FM_RESULTS/scenarios-verbs
mkdir -p "$OUT"
for b in test_groups test_restore test_lanes test_refresh flashmeta-owner; do
	[[ -x $BIN/$b ]] || fm_skip "$BIN/$b not built"
done

port=7600
fail=0
(($#)) || set -- groups-commands groups-timeout groups-consistency restore lanes-late lanes-lost \
	refresh-incremental refresh-client-kill refresh-owner-restart refresh-malformed
for sc in "$@"; do
	case $sc in
	groups-*) cmd=("$BIN/test_groups" "${sc#groups-}") ;;
	restore) cmd=("$BIN/test_restore") ;;
	lanes-*) cmd=("$BIN/test_lanes" "${sc#lanes-}") ;;
	refresh-*) cmd=("$BIN/test_refresh" "${sc#refresh-}") ;;
	*) fm_die "unknown scenario $sc (groups-* restore lanes-* refresh-*: see the header)" ;;
	esac
	rc=0
	start=$SECONDS
	fm_run 200 "${cmd[@]}" --owner "$BIN/flashmeta-owner" --provider verbs \
		--addr "$(fm_addr 0):$port" >"$OUT/$sc.log" 2>&1 || rc=$?
	if grep -q "no RDMA device" "$OUT/$sc.log"; then
		fm_skip "no usable verbs provider/device (see $OUT/$sc.log)"
	fi
	fm_verdict "scenario $sc over verbs" "$rc" "$start" "$OUT/$sc.log" || fail=1
	port=$((port + 1))
done
((fail == 0)) || fm_die "scenarios over verbs failed"
fm_log "PASS"
