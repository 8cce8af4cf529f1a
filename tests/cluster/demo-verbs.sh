#!/usr/bin/env bash
# demo-verbs.sh -- the main job (flashmeta-demo) over soft-RoCE.
# nodes: 1
# smp: 2
# timeout: 300
# report: invariant: (OK|VIOLATED|UNKNOWN).*
#
# Node 0 runs flashmeta-demo with its default --transport auto: the guest's
# rxe0 has an IPv4 address on its network device, so the owner and both
# client processes must talk verbs (RC QPs on rxe0), and the report must
# say so.  A short run (3 s of load, 16 MiB volumes on the guest's tmpfs)
# ending in the byte-for-byte invariant check.  Arguments go to
# flashmeta-demo after these defaults.  The report lands in
# $FM_RESULTS/demo-verbs/.  Skips (77) when the programs are missing.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

BIN=$FM_BUILD/bin
OUT=$FM_RESULTS/demo-verbs
mkdir -p "$OUT"
for b in flashmeta-demo flashmeta-owner; do
	[[ -x $BIN/$b ]] || fm_skip "$BIN/$b not built"
done

rc=0
fm_run 240 "$BIN/flashmeta-demo" --seconds 3 --size 16M --json "$OUT/report.json" "$@" \
	>"$OUT/report.txt" 2>"$OUT/demo.log" || rc=$?
cat "$OUT/report.txt"
if ((rc != 0)); then
	tail -n 40 "$OUT/demo.log" >&2
	fm_die "flashmeta-demo failed (rc $rc, $OUT/demo.log)"
fi
grep -q "over verbs" "$OUT/report.txt" ||
	fm_die "the demo did not choose verbs on a host with rxe0 (see $OUT/report.txt)"
grep -q '"transport": "verbs"' "$OUT/report.json" ||
	fm_die "the JSON report does not say verbs"
grep -q "^invariant: OK" "$OUT/report.txt" || fm_die "no 'invariant: OK' line"
fm_log "PASS"
