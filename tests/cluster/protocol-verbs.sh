#!/usr/bin/env bash
# protocol-verbs.sh -- the owner daemon and client agents over soft-RoCE.
# nodes: 3
# timeout: 600
# report: (scenario .*: PASS| split [0-9]+ served)
#
# Node 0: every tests/integration scenario with --provider verbs on its own
# RoCE address (owner + forked clients on one node, real RC QPs), then a
# long-running flashmeta-owner for the other nodes (FM_PROTOCOL_SCENARIOS
# overrides the list; empty runs only the multi-node part).  Nodes 1..N-1: the
# flashmeta CLI over verbs against node 0 (join, split, show, a lock held
# while the other node's lock waits).  Node 0 then checks the split count
# the owner made durable.  Skips (77) when the verbs provider is not built.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

BIN=$FM_BUILD/bin
OWNER_ADDR="$(fm_addr 0):7471"
SHARED=$FM_RESULTS/protocol-verbs
KEY=$SHARED/key
CTL=/tmp/fm-protocol-verbs.ctl
FM=("$BIN/flashmeta" -t verbs -a "$OWNER_ADDR" -k "$KEY")
mkdir -p "$SHARED"
for b in test_service flashmeta-owner flashmeta; do
	[[ -x $BIN/$b ]] || fm_skip "$BIN/$b not built"
done

if ((FM_NODE_INDEX == 0)); then
	echo -n "protocol-verbs-$RANDOM$RANDOM" >"$KEY"
	port=7480
	for sc in ${FM_PROTOCOL_SCENARIOS-roundtrip client-kill client-stall owner-kill wrong-key garbage snapshot engines grace-kill}; do
		rc=0
		FM_KEEP= fm_run 120 "$BIN/test_service" "$sc" --owner "$BIN/flashmeta-owner" \
			--provider verbs --addr "$(fm_addr 0):$port" \
			>"$SHARED/$sc.log" 2>&1 || rc=$?
		if grep -q "no RDMA device" "$SHARED/$sc.log"; then
			: >"$SHARED/skip"
			fm_barrier owner-up 300
			fm_barrier end 120
			fm_skip "no usable verbs provider/device (see $SHARED/$sc.log)"
		fi
		((rc == 0)) || fm_die "scenario $sc over verbs failed (rc $rc, $SHARED/$sc.log)"
		fm_log "scenario $sc: PASS"
		port=$((port + 1))
	done
	rm -f /tmp/fm-protocol-verbs.pool
	"$BIN/flashmeta-owner" --transport verbs --listen "$OWNER_ADDR" \
		--pmem /tmp/fm-protocol-verbs.pool --key-file "$KEY" --control "$CTL" \
		--lease-ms 1000 2>"$SHARED/owner.log" &
	owner=$!
	trap 'kill $owner 2>/dev/null || true' EXIT
	fm_retry 30 "$BIN/flashmeta" -C "$CTL" admin status >/dev/null
	"$BIN/flashmeta" -C "$CTL" admin map-create 1 1 2 $((64 << 20)) 65536
	"$BIN/flashmeta" -C "$CTL" admin map-prepare 1
	"$BIN/flashmeta" -C "$CTL" admin map-start 1
	fm_barrier owner-up 300
	fm_barrier lock-held 120
	fm_barrier clients-done 300
	out=$("$BIN/flashmeta" -C "$CTL" admin map-show 1)
	echo "$out"
	want=$((10 * (FM_NODE_COUNT - 1) + 1))
	grep -q " split $want " <<<"$out" || fm_die "expected $want split grains: $out"
	"$BIN/flashmeta" -C "$CTL" admin status
	kill -TERM "$owner"
	wait "$owner" || fm_die "owner exit status $?"
	trap - EXIT
	fm_barrier end 120
	fm_log "PASS"
else
	fm_barrier owner-up 300
	if [[ -e $SHARED/skip ]]; then
		fm_barrier end 120
		fm_skip "verbs provider not built"
	fi
	id=$((FM_NODE_INDEX + 1))
	fm_retry 30 "${FM[@]}" -i "$id" join
	for g in $(seq $((FM_NODE_INDEX * 100)) $((FM_NODE_INDEX * 100 + 9))); do
		fm_run 30 "${FM[@]}" -i "$id" split 1 "$g" || fm_die "split $g"
	done
	# grain 1000: node 1 holds it 2 s, node 2 waits for the hand-off, both split it once
	if ((FM_NODE_INDEX == 1)); then
		fm_run 30 "${FM[@]}" -i "$id" --hold 2 lock 1 1000 &
		holder=$!
	fi
	fm_barrier lock-held 60
	if ((FM_NODE_INDEX == 2)); then
		sleep 0.5
		fm_run 30 "${FM[@]}" -i "$id" split 1 1000 || fm_die "split 1000 after hand-off"
	fi
	[[ -n ${holder:-} ]] && wait "$holder"
	if ((FM_NODE_COUNT < 3)) || ((FM_NODE_INDEX == 1)); then
		((FM_NODE_COUNT < 3)) && fm_run 30 "${FM[@]}" -i "$id" split 1 1000
	fi
	fm_run 30 "${FM[@]}" -i "$id" show 1
	fm_barrier clients-done 300
	fm_barrier end 120
	fm_log "PASS"
fi
