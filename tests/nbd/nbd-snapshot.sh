#!/usr/bin/env bash
# nbd-snapshot.sh -- unmodified NBD clients on flashmeta volumes: the
# owner, a mapping, and two nbdkit servers with the flashmeta plugin (the
# source through client 1, the target through client 2).  qemu-io fills
# the source; the mapping is triggered; qemu-io overwrites parts of the
# source and writes the target; then nbdcopy and qemu-img convert read the
# target back, and it must equal the source at the trigger plus the
# target's own write, byte for byte (and the source its new bytes).
#
#   nbd-snapshot.sh BUILD_BIN_DIR PLUGIN.so
# Exit 0 pass, 1 fail, 77 skip (a tool is missing).
set -euo pipefail
bin=$1
plugin=$2
for t in nbdkit qemu-io qemu-img nbdcopy cmp; do
	command -v "$t" >/dev/null || { echo "SKIP: $t not installed"; exit 77; }
done
[[ -x $bin/flashmeta-owner && -x $bin/flashmeta && -f $plugin ]] ||
	{ echo "FAIL: $bin/flashmeta-owner, flashmeta or $plugin missing"; exit 1; }

dir=$(mktemp -d /tmp/fm-nbd-XXXXXX)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	[[ -n ${FM_KEEP:-} ]] || rm -rf "$dir"
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; for f in "$dir"/*.log; do echo "--- $f"; tail -n 20 "$f"; done; exit 1; }

M=$((1 << 20))
size=$((16 * M))
addr=shm:/fm-nbd-$$
printf 'nbd-test-key' >"$dir/key"
truncate -s $size "$dir/src.img" "$dir/tgt.img"
"$bin/flashmeta-owner" --listen "$addr" --transport shm --pmem "$dir/pool" \
	--key-file "$dir/key" --control "$dir/ctl" --lease-ms 1000 --clients 1-8 \
	--fence-table "$dir/fence" 2>"$dir/owner.log" &
pids+=($!)
ctl() { "$bin/flashmeta" -C "$dir/ctl" admin "$@" >>"$dir/ctl.log"; }
for i in $(seq 100); do ctl status 2>/dev/null && break; sleep 0.1; done
ctl map-create 1 1 2 $size 65536 || fail "map-create"

serve() { # serve NAME CLIENT VOLUME
	nbdkit -f -U "$dir/$1.sock" -P "$dir/$1.pid" "$plugin" addr="$addr" \
		key-file="$dir/key" client="$2" map=1 volume="$3" source="$dir/src.img" \
		target="$dir/tgt.img" fence="$dir/fence" 2>"$dir/nbdkit-$1.log" &
	pids+=($!)
	for i in $(seq 100); do [[ -S $dir/$1.sock ]] && return 0; sleep 0.1; done
	fail "nbdkit $1 did not start"
}
serve src 1 source
serve tgt 2 target
src="nbd+unix:///?socket=$dir/src.sock"
tgt="nbd+unix:///?socket=$dir/tgt.sock"
io() { qemu-io -f raw "$@" >>"$dir/qemu-io.log" 2>&1 || fail "qemu-io $*"; }

# 1. the source before the trigger: a pattern per MiB
for m in $(seq 0 15); do io -c "write -P $((0x10 + m)) $((m * M)) $M" "$src"; done
# what it reads as now: the point-in-time image the target must keep
nbdcopy "$src" "$dir/golden.img" || fail "nbdcopy source"
# 2. the trigger
ctl map-prepare 1 || fail "map-prepare"
ctl map-start 1 || fail "map-start"
# 3. the source moves on: whole grains, a partial grain, across a grain edge
io -c "write -P 0xbb $((1 * M)) $((4 * M))" "$src"
io -c "write -P 0xcc $((10 * M + 4096)) 8192" "$src"
io -c "write -P 0xcd $((12 * M - 512)) 1024" "$src"
# 4. the target's own write (a partial grain: its grain is copied in first)
io -c "write -P 0xdd $((7 * M + 512)) 3072" "$tgt"
io -c "flush" "$tgt"
# 5. expected images, built with plain tools from the golden one
cp "$dir/golden.img" "$dir/expect-tgt.img"
qemu-io -f raw -c "write -P 0xdd $((7 * M + 512)) 3072" "$dir/expect-tgt.img" >/dev/null
cp "$dir/golden.img" "$dir/expect-src.img"
qemu-io -f raw -c "write -P 0xbb $((1 * M)) $((4 * M))" \
	-c "write -P 0xcc $((10 * M + 4096)) 8192" \
	-c "write -P 0xcd $((12 * M - 512)) 1024" "$dir/expect-src.img" >/dev/null
# 6. read back through NBD with tools no one here wrote
nbdcopy "$tgt" "$dir/tgt-nbdcopy.img" || fail "nbdcopy target"
qemu-img convert -f raw -O raw "$tgt" "$dir/tgt-qemu-img.img" || fail "qemu-img convert"
nbdcopy "$src" "$dir/src-now.img" || fail "nbdcopy source after"
cmp "$dir/expect-tgt.img" "$dir/tgt-nbdcopy.img" ||
	fail "the target (nbdcopy) is not the source at the trigger plus its own write"
cmp "$dir/expect-tgt.img" "$dir/tgt-qemu-img.img" ||
	fail "the target (qemu-img convert) is not the source at the trigger plus its own write"
cmp "$dir/expect-src.img" "$dir/src-now.img" || fail "the source lost a write"
split=$("$bin/flashmeta" -C "$dir/ctl" admin map-show 1 | grep -o ' split [0-9]*' || true)
echo "PASS: target == source at the trigger + its own write (nbdcopy and qemu-img convert," \
	"16 MiB); grains split:${split# split}"
