#!/usr/bin/env bash
# initramfs.sh -- build (or reuse) the guest initramfs for one kernel + build tree.
#
#   deploy/cluster/initramfs.sh KERNEL_DIR [BUILD_DIR]   prints the .cpio path
#
# KERNEL_DIR comes from kernel.sh.  The image holds, in Debian's merged-/usr
# layout (/bin, /sbin, /lib, /lib64 are symlinks into /usr):
#   - busybox-static (applet links only where no real tool of that name exists);
#     coreutils' timeout and env, because busybox's run their own applets before
#     $PATH (busybox `timeout 5 ip ...` would run busybox ip, not iproute2)
#   - bash (the guest's /init and the test scripts run under it)
#   - the kernel modules below, dependencies resolved with modprobe --show-depends,
#     decompressed, signatures dropped, listed in load order in /etc/fm-modules
#     (and /etc/fm-modules.pmem, loaded on owner nodes only), depmod'ed
#   - rdma-core: libibverbs, librdmacm, the rxe provider and its .driver file
#   - iproute2 `ip` and `rdma`, perftest, ndctl/daxctl, mke2fs, ibverbs-utils and
#     rping when installed, libpmem, libgcc_s
#   - every shared library those, and the ELF files of BUILD_DIR, need (ldd)
#   - /usr/bin/fm-pmem-probe, built here from fm-pmem-probe.c when cc is present
#   - /init (guest-init.sh)
#
# The image is cached under $FM_CLUSTER_CACHE/initramfs/<sha256>.cpio where the
# hash covers the kernel, this script, guest-init.sh and the content of every
# host file copied in; a re-run with nothing changed costs about a second.
set -euo pipefail

die() { echo "initramfs.sh: $*" >&2; exit 1; }
say() { echo "initramfs.sh: $*" >&2; }

if [[ "${1:-}" == "-h" || "${1:-}" == "--help" || $# -lt 1 ]]; then
	sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
	[[ $# -ge 1 ]] && exit 0 || exit 2
fi

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
kdir=$(realpath "$1")
build=${2:-}
cache=${FM_CLUSTER_CACHE:-$HOME/.cache/flashmeta-cluster}
kver=$(cat "$kdir/kver")
kroot="$kdir/root"
mroot="$kroot/lib/modules/$kver"
mkdir -p "$cache/initramfs"

# Modules to load, in this order; each brings its dependencies.  The pmem set
# is loaded only on owner nodes (nothing else pays for it at boot).
modules=(
	virtio_pci virtio_net veth
	9pnet_virtio 9p
	crc32_generic
	rdma_rxe rdma_ucm
)
pmem_modules=(nfit nd_pmem dax_pmem device_dax ext4)

# Host programs (optional ones are skipped when absent).
required_bins=(
	/usr/bin/busybox /usr/bin/bash
	/usr/sbin/ip /usr/bin/rdma
	/usr/bin/ib_atomic_lat /usr/bin/ib_read_lat /usr/bin/ib_send_lat /usr/bin/ib_write_lat
	/usr/bin/ndctl /usr/sbin/mke2fs
	/usr/bin/timeout /usr/bin/env
)
optional_bins=(
	/usr/bin/ib_atomic_bw /usr/bin/ib_read_bw /usr/bin/ib_send_bw /usr/bin/ib_write_bw
	/usr/bin/daxctl
	/usr/bin/ibv_devices /usr/bin/ibv_devinfo /usr/bin/ibv_rc_pingpong
	/usr/bin/rping /usr/bin/udaddy
)
multiarch=/usr/lib/x86_64-linux-gnu
required_libs=("$multiarch/libgcc_s.so.1" "$multiarch/libibverbs.so.1" "$multiarch/libpmem.so.1")
optional_libs=("$multiarch/librdmacm.so.1" "$multiarch/libpmem2.so.1" "$multiarch/libpmemobj.so.1")

# --- resolve the module lists --------------------------------------------------
mod_files=()     # every module file, in load order
declare -A seen_mod=() mod_set=()
resolve_modules() { # resolve_modules SET NAME...
	local set=$1 m out verb path rel
	shift
	for m in "$@"; do
		out=$(modprobe -C /dev/null --show-depends -d "$kroot" -S "$kver" "$m" 2>/dev/null) || {
			say "module $m not in $kver, skipped"
			continue
		}
		while read -r verb path _; do
			[[ "$verb" == insmod ]] || continue
			rel=${path#"$mroot"/}
			[[ -n "${seen_mod[$rel]:-}" ]] && continue
			seen_mod[$rel]=1
			mod_set[$rel]=$set
			mod_files+=("$rel")
		done <<<"$out"
	done
}
resolve_modules core "${modules[@]}"
resolve_modules pmem "${pmem_modules[@]}"
printf '%s\n' "${mod_files[@]}" | grep -q 'rdma_rxe' || die "rdma_rxe not found in $kver"

# --- collect host files --------------------------------------------------------
bins=("${required_bins[@]}")
for b in "${required_bins[@]}"; do [[ -x "$b" ]] || die "missing $b (run deploy/install-deps.sh)"; done
for b in "${optional_bins[@]}"; do [[ -x "$b" ]] && bins+=("$b"); done
libs=("${required_libs[@]}")
for l in "${required_libs[@]}"; do [[ -e "$l" ]] || die "missing $l (run deploy/install-deps.sh)"; done
for l in "${optional_libs[@]}"; do [[ -e "$l" ]] && libs+=("$l"); done
providers=("$multiarch"/libibverbs/librxe-*.so)
[[ -e "${providers[0]}" ]] || die "rxe provider not found (ibverbs-providers)"
libs+=("${providers[@]}")

# ELF files of the build tree: only their libraries go into the image (the tree
# itself is shared over 9p), so the image changes only when a new library is needed.
build_elves=()
if [[ -n "$build" && -d "$build" ]]; then
	while IFS= read -r -d '' f; do
		[[ "$(head -c4 "$f" 2>/dev/null | od -An -tx1 | tr -d ' \n')" == 7f454c46 ]] &&
			build_elves+=("$f")
	done < <(find "$build" -type f \( -perm -u+x -o -name '*.so*' \) -not -path '*/CMakeFiles/*' -print0)
fi

# Shared-library closure with ldd, canonicalised to the merged-/usr path.
canon() { echo "$(realpath "$(dirname "$1")")/${1##*/}"; }
declare -A seen_lib=()
all_libs=()
add_lib() {
	local c
	c=$(canon "$1")
	[[ -n "${seen_lib[$c]:-}" ]] && return 0
	seen_lib[$c]=1
	all_libs+=("$c")
}
for f in "${bins[@]}" "${libs[@]}" "${build_elves[@]}"; do
	while read -r a b c _; do
		if [[ "$b" == "=>" && "$c" == /* ]]; then
			add_lib "$c"
		elif [[ "$a" == /* ]]; then
			add_lib "$a"
		fi
	done < <(ldd "$f" 2>/dev/null || true)
done
for l in "${libs[@]}"; do add_lib "$l"; done

# --- cache key -----------------------------------------------------------------
key=$( {
	echo "kernel $kdir $kver"
	for m in "${mod_files[@]}"; do echo "module $m ${mod_set[$m]}"; done
	sha256sum "$0" "$here/guest-init.sh" "$here/fm-pmem-probe.c"
	for f in "${bins[@]}" "${all_libs[@]}" /etc/libibverbs.d/rxe.driver; do
		stat -L -c '%n %s %Y' "$f"
	done
} | sha256sum | cut -c1-16)
img="$cache/initramfs/$key.cpio"
if [[ -f "$img" ]]; then
	touch "$img" # in use: newest, so pruning below never takes it
	echo "$img"
	exit 0
fi

# --- assemble --------------------------------------------------------------------
say "building $img"
tmp=$(mktemp -d "$cache/initramfs/build.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
r="$tmp/root"
mkdir -p "$r"/usr/{bin,sbin,lib/x86_64-linux-gnu/libibverbs,lib64} "$r"/{etc/libibverbs.d,proc,sys,dev,tmp,run,mnt,results,root}
for d in bin sbin lib lib64; do
	ln -s "usr/$d" "$r/$d"
done

put() { # put SRC DEST-in-image (dereferenced copy)
	mkdir -p "$r$(dirname "$2")"
	cp -L "$1" "$r$2"
}
for b in "${bins[@]}"; do
	c=$(canon "$b")
	put "$b" "$c"
done
ln -sf mke2fs "$r/usr/sbin/mkfs.ext4"
for l in "${all_libs[@]}"; do put "$l" "$l"; done
cp /etc/libibverbs.d/rxe.driver "$r/etc/libibverbs.d/"

# busybox applets, but never over a real tool of the same name (`ip`, `mke2fs`).
for a in $(busybox --list); do
	[[ -e "$r/usr/bin/$a" || -e "$r/usr/sbin/$a" ]] && continue
	ln -s busybox "$r/usr/bin/$a"
done

# Drop the appended module signature (module data, signature, 12-byte
# struct module_signature ending in the big-endian signature length, then the
# 28-byte magic).  Debian does not force signatures; an unsigned module only
# taints the kernel, and skipping the RSA check under TCG saves ~1-2 s of boot.
strip_module_sig() {
	local f=$1 size siglen
	[[ "$(tail -c 28 "$f")" == "~Module signature appended~" ]] || return 0
	size=$(stat -c %s "$f")
	siglen=$(tail -c 32 "$f" | head -c 4 | od -An -tu1 |
		awk '{ print (($1 * 256 + $2) * 256 + $3) * 256 + $4 }')
	truncate -s $((size - 28 - 12 - siglen)) "$f"
}

# Modules, decompressed so busybox insmod needs no codec, signatures dropped.
for m in "${mod_files[@]}"; do
	dst="$r/lib/modules/$kver/${m%.xz}"
	dst=${dst%.zst}
	mkdir -p "$(dirname "$dst")"
	case "$m" in
	*.xz) xz -dc "$mroot/$m" >"$dst" ;;
	*.zst) zstd -qdc "$mroot/$m" >"$dst" ;;
	*) cp "$mroot/$m" "$dst" ;;
	esac
	strip_module_sig "$dst"
	list="$r/etc/fm-modules"
	[[ "${mod_set[$m]}" == pmem ]] && list+=.pmem
	echo "/lib/modules/$kver/${dst#"$r/lib/modules/$kver/"}" >>"$list"
done
cp "$mroot"/modules.{order,builtin,builtin.modinfo} "$r/lib/modules/$kver/" 2>/dev/null || true
depmod -b "$r" "$kver"

printf 'root:x:0:0:root:/root:/usr/bin/bash\n' >"$r/etc/passwd"
printf 'root:x:0:\n' >"$r/etc/group"
printf '127.0.0.1 localhost\n' >"$r/etc/hosts"
echo "$kver" >"$r/etc/fm-kver"
install -m 0755 "$here/guest-init.sh" "$r/init"
if command -v cc >/dev/null; then
	cc -O2 -Wall -Wextra -o "$r/usr/bin/fm-pmem-probe" "$here/fm-pmem-probe.c" -lpmem -libverbs ||
		die "cannot build fm-pmem-probe"
else
	say "no C compiler: fm-pmem-probe left out (pmem-dax.sh will skip its probe)"
fi

(cd "$r" && find . -mindepth 1 | LC_ALL=C sort | cpio --quiet -o -H newc -R 0:0 --reproducible) >"$tmp/img"
mv "$tmp/img" "$img"
# Keep the eight most recently used images (other build trees, other kernels).
find "$cache/initramfs" -maxdepth 1 -name '*.cpio' -printf '%T@ %p\n' | sort -rn |
	tail -n +9 | cut -d' ' -f2- | xargs -r rm -f
find "$cache/initramfs" -mindepth 1 -maxdepth 1 -name 'build.*' -mmin +60 -exec rm -rf {} +
say "initramfs $(du -h "$img" | cut -f1) with ${#mod_files[@]} modules, ${#all_libs[@]} libraries"
echo "$img"
