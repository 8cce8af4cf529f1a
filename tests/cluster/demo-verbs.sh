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
# $FM_RESULTS/demo-verbs/ (and the run directory in run/ there when it
# failed).  Skips (77) when the programs are missing.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

BIN=$FM_BUILD/bin
OUT=$FM_RESULTS/demo-verbs
mkdir -p "$OUT"
for b in flashmeta-demo flashmeta-owner; do
	[[ -x $BIN/$b ]] || fm_skip "$BIN/$b not built"
done

# the run directory is kept, and on a failure copied to the results (the
# owner's log, the pool, the fence table, the volumes and images: what a
# violation is read from); on success it is removed
run=/tmp/demo-verbs-run
rm -rf "$run"
keep() {
	cp -r "$run" "$OUT/run" 2>/dev/null || true
	fm_log "the run directory is in $OUT/run"
}
rc=0
fm_run 240 "$BIN/flashmeta-demo" --seconds 3 --size 16M --json "$OUT/report.json" \
	--dir "$run" --keep "$@" >"$OUT/report.txt" 2>"$OUT/demo.log" || rc=$?
cat "$OUT/report.txt"
if ((rc != 0)) || ! grep -q "^invariant: OK" "$OUT/report.txt"; then
	keep
	tail -n 40 "$OUT/demo.log" >&2
	fm_die "flashmeta-demo failed (rc $rc, $OUT/demo.log)"
fi
rm -rf "$run"
grep -q "over verbs" "$OUT/report.txt" ||
	fm_die "the demo did not choose verbs on a host with rxe0 (see $OUT/report.txt)"
grep -q '"transport": "verbs"' "$OUT/report.json" ||
	fm_die "the JSON report does not say verbs"
grep -q "^invariant: OK" "$OUT/report.txt" || fm_die "no 'invariant: OK' line"
# a lane abandoned for want of completions is a broken transport (or a
# broken clock: eaff3c4); over a healthy rxe link it never happens
grep -q '"lanes_broken": 0,' "$OUT/report.json" ||
	fm_die "an engine lane was abandoned (lanes broken in $OUT/report.txt)"
fm_log "PASS"
