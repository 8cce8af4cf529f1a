#!/bin/sh
# tool_test.sh -- flashmeta-pmem end to end: create, map, split, check exit
# codes, dump, repair refusal.  $1 = tool binary.  Pools in $FM_PMEM_DIR.
set -u
T=$1
D=${FM_PMEM_DIR:-$(mktemp -d /dev/shm/fm-tool-XXXXXX 2>/dev/null || mktemp -d)}
P=$D/tool.$$.pool
fail() { echo "FAIL: $*"; rm -f "$P" "$P.x"; exit 1; }
expect() { want=$1; shift; "$@" >/dev/null 2>&1; rc=$?; [ $rc -eq "$want" ] || fail "$* -> $rc, want $want"; }
rm -f "$P"
expect 0 "$T" create "$P" --mappings 4 --max-grains 4096
expect 0 "$T" map-create "$P" --id 7 --source 1 --target 2 --size 65536000
for ev in prepare prepare_done start; do expect 0 "$T" transition "$P" --id 7 $ev; done
expect 0 "$T" split "$P" --id 7 1 2 3 10
expect 9 "$T" transition "$P" --id 7 prepare      # illegal: refused
expect 0 "$T" check "$P"
"$T" dump "$P" --json | grep -q '"split":4,"run_count":2' || fail "dump --json"
cp "$P" "$P.x"; printf 'X' | dd of="$P.x" bs=1 seek=8300 conv=notrunc 2>/dev/null
expect 7 "$T" check "$P.x"
expect 7 "$T" repair "$P.x"
cmp -s "$P.x" "$P" && fail "corruption not applied"
printf 'X' | dd of="$P.x" bs=1 seek=3 conv=notrunc 2>/dev/null
expect 3 "$T" check "$P.x"
: > "$P.x"; expect 3 "$T" check "$P.x"
expect 0 "$T" repair "$P"
expect 0 "$T" --help
rm -f "$P" "$P.x"
[ -z "${FM_PMEM_DIR:-}" ] && rmdir "$D"
echo ok
