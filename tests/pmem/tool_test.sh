#!/bin/sh
# tool_test.sh -- flashmeta-pmem end to end: create, map, split, check exit
# codes per failure class, dump (text and JSON), repair refusal, exclusive
# use against a running owner, operator mistakes (FIFOs, bad numbers).
#   $1 = tool binary, $2 = pmem_hold (a stand-in owner).  Pools in
#   $FM_PMEM_DIR.  Every check runs; the last line counts them.
#
# Byte offsets of the pool made below (--mappings 4 --max-grains 4096):
#   4096 log block: applied word at +0, records at +64/+256, owner copies
#        at +448/+512;  8192 slot table (128 bytes a slot);  12288 bitmaps,
#   4096 bytes a slot (slot 2's area starts at 20480).
set -u
T=$1
H=${2:-}
D=${FM_PMEM_DIR:-$(mktemp -d /dev/shm/fm-tool-XXXXXX 2>/dev/null || mktemp -d)}
P=$D/tool.$$.pool
X=$P.x
pass=0 failed=0 HP=
fail() { echo "FAIL: $*"; failed=$((failed + 1)); }
ok() { pass=$((pass + 1)); }
expect() { want=$1; shift; timeout 20 "$@" >"$D/out.$$" 2>&1; rc=$?
	if [ $rc -eq "$want" ]; then ok; else fail "$* -> $rc, want $want"; sed 's/^/    /' "$D/out.$$"; fi; }
# expect_msg STATUS TEXT CMD...: status and a line of its output
expect_msg() { want=$1 text=$2; shift 2; expect "$want" "$@"
	grep -qF -- "$text" "$D/out.$$" && ok || fail "$*: no '$text' in output"; }
peek() { od -An -tu1 -j "$2" -N1 "$1" | tr -d ' '; }
poke() { printf "$(printf '\\%03o' "$3")" | dd of="$1" bs=1 seek="$2" conv=notrunc 2>/dev/null; }
flip() { poke "$1" "$2" $(( $(peek "$1" "$2") ^ $3 )); }
zero() { dd if=/dev/zero of="$1" bs=1 seek="$2" count="$3" conv=notrunc 2>/dev/null; }
fresh() { cp "$P" "$X"; }
cleanup() { [ -n "$HP" ] && kill "$HP" 2>/dev/null && wait "$HP" 2>/dev/null
	rm -f "$P" "$X" "$X.2" "$D/out.$$" "$D/hold.$$" "$D/fifo.$$" "$D/json.$$" "$D"/j*.$$.pool; }
rm -f "$P"

# ---- a pool: mapping 7 (slot 0, COPYING, grains 1-3 and 10) and 8 (slot 1)
expect 0 "$T" create "$P" --mappings 4 --max-grains 4096
expect 0 "$T" map-create "$P" --id 7 --source 1 --target 2 --size 65536000
expect 0 "$T" map-create "$P" --id 8 --source 3 --target 4 --size 65536000
for ev in prepare prepare_done start; do expect 0 "$T" transition "$P" --id 7 $ev; done
expect 0 "$T" split "$P" --id 7 1 2 3 10
expect 9 "$T" transition "$P" --id 7 prepare      # illegal: refused
expect 0 "$T" check "$P"
"$T" dump "$P" --json | grep -q '"split":4,"run_count":2' && ok || fail "dump --json"

# ---- one exit status per failure class
fresh; printf 'X' | dd of="$X" bs=1 seek=8300 conv=notrunc 2>/dev/null
expect 7 "$T" check "$X"                          # slot checksum
expect 7 "$T" repair "$X"
cmp -s "$X" "$P" && fail "corruption not applied" || ok
fresh; printf 'X' | dd of="$X" bs=1 seek=3 conv=notrunc 2>/dev/null
expect 3 "$T" check "$X"                          # signature
: > "$X"; expect 3 "$T" check "$X"                # empty
fresh; poke "$X" 5096 1
expect_msg 6 "log block padding" "$T" check "$X"  # log damage is not superblock damage
# the applied word (seq 5, the START of mapping 7) with one bit flipped
# reads as seq 4: the START would be replayed, clearing committed bits
fresh; flip "$X" 4096 1; cp "$X" "$X.2"
expect_msg 6 "applied word" "$T" check "$X"
expect 6 "$T" split "$X" --id 7 20
expect 6 "$T" repair "$X"
cmp -s "$X" "$X.2" && ok || fail "a damaged log was written to"
fresh; poke "$X" 4552 1; poke "$X" 4608 1         # both owner copies
expect_msg 10 "owner record" "$T" check "$X"
fresh; zero "$X" 8320 128                         # slot 1 (mapping 8) zeroed
expect_msg 7 "a mapping record was zeroed" "$T" check "$X"
fresh; zero "$X" 8192 128                         # slot 0 zeroed, its bits stay
expect_msg 8 "slot 0 is free but its bitmap" "$T" check "$X"
fresh; poke "$X" 20580 1                          # a bit in free slot 2's bitmap
expect_msg 8 "slot 2 is free but its bitmap" "$T" check "$X"
expect 0 "$T" repair "$P"

# ---- exclusive use: a running owner keeps every writer out
if [ -n "$H" ]; then
	"$H" "$P" 3000 >"$D/hold.$$" 2>&1 &
	HP=$!
	i=0; until grep -q ready "$D/hold.$$" 2>/dev/null || [ $i -ge 200 ]; do i=$((i + 1)); sleep 0.05; done
	grep -q ready "$D/hold.$$" && ok || fail "pmem_hold did not start: $(cat "$D/hold.$$")"
	expect_msg 12 "pool $P in use by" "$T" map-create "$P" --id 9 --source 5 --target 6 --size 65536000
	expect 12 "$T" split "$P" --id 7 20
	expect 12 "$T" transition "$P" --id 7 stop
	expect 12 "$T" repair "$P"
	expect 9 "$T" create "$P"                         # exists: never overwritten
	expect_msg 0 "pool is in use; contents may be changing" "$T" check "$P"
	expect_msg 0 "owner: incarnation 1, hold 3000 ms" "$T" check "$P"
	expect_msg 0 '"owner":{"known":true,"incarnation":1,"hold_ms":3000' "$T" dump "$P" --json
	kill "$HP"; wait "$HP" 2>/dev/null; HP=
	expect 0 "$T" map-create "$P" --id 9 --source 5 --target 6 --size 65536000
	"$T" dump "$P" --json | grep -q '"id":9,' && ok || fail "mapping 9 lost"
fi

# ---- operator mistakes: files that are not pools are never opened for I/O
F=$D/fifo.$$
mkfifo "$F"
for c in check dump repair split; do
	if [ $c = split ]; then expect 11 "$T" $c "$F" --id 7 1; else expect 11 "$T" $c "$F"; fi
done
[ -p "$F" ] && ok || fail "the FIFO was replaced"
expect 11 "$T" check "$D/missing.$$"
expect 11 "$T" dump "$D/missing.$$"
[ -e "$D/missing.$$" ] && fail "check created a file" || ok
expect 11 "$T" check "$D"
expect 11 "$T" check /dev/null

# ---- numbers: the whole string, no sign, no overflow, range before narrowing
rm -f "$X.2"
expect_msg 2 "'abc' is not a number" "$T" split "$P" --id 7 abc 12abc
expect 2 "$T" split "$P" --id 7 12abc
expect 2 "$T" split "$P" --id 7 -- -1
expect 2 "$T" split "$P" --id 7 18446744073709551616
expect 2 "$T" split "$P" --id 7 --gen 1x 5
"$T" dump "$P" --json | grep -q '"id":7,.*"split":4,"run_count":2' && ok || fail "bad GRAIN committed bits"
expect_msg 2 "out of range" "$T" create "$X.2" --mappings 4294967297
[ -e "$X.2" ] && fail "created with a narrowed --mappings" || ok
expect 2 "$T" create "$X.2" --mappings 0
expect 2 "$T" create "$X.2" --max-grains 70368744177665
expect 2 "$T" create "$X.2" --max-grains ' 5'
expect 2 "$T" map-create "$P" --id -9 --source 5 --target 6 --size 65536000
expect 2 "$T" map-create "$P" --id 10 --source 5 --target 6 --size 64k
expect 2 "$T" map-create "$P" --id 10 --source 0x --target 6 --size 65536000
expect 2 "$T" dump "$P" --runs 1e3
expect 2 "$T" check "$P" extra                    # nothing silently ignored
expect 2 "$T" check "$P" --id 3
expect 2 "$T" transition "$P" --id 7 stop start
[ -e "$X.2" ] && fail "a refused command created a file" || ok
expect 0 "$T" split "$P" --id 0x7 0x14            # hex is fine: grain 20
"$T" dump "$P" --json | grep -q '"id":7,.*"split":5' && ok || fail "hex GRAIN"

# ---- dump --json escapes control characters (RFC 8259)
Q="$D/$(printf 'j"s\tx\001y').$$.pool"
cp "$P" "$Q"
"$T" dump "$Q" --json >"$D/json.$$"; rc=$?
[ $rc -eq 0 ] && ok || fail "dump of $Q -> $rc"
grep -qF 'j\"s\tx\u0001y.' "$D/json.$$" && ok || fail "path not escaped: $(head -c 200 "$D/json.$$")"
tr -d '\n' <"$D/json.$$" | LC_ALL=C grep -q '[[:cntrl:]]' && fail "raw control characters in JSON" || ok

expect 0 "$T" --help
cleanup
[ -z "${FM_PMEM_DIR:-}" ] && rmdir "$D"
echo "tool_test: $pass passed, $failed failed"
[ $failed -eq 0 ]
