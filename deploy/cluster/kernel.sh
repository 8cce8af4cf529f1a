#!/usr/bin/env bash
# kernel.sh -- fetch a Debian bookworm kernel package, unpack it, make a PVH vmlinux.
#
#   deploy/cluster/kernel.sh [6.1|6.12]     prints the kernel directory on stdout
#
# The package is fetched with `apt-get download` (never installed on the host) into
# $FM_CLUSTER_CACHE/debs and unpacked with `dpkg -x` into
# $FM_CLUSTER_CACHE/kernel/<package>/:
#
#   root/            the unpacked package (lib/modules/<kver>, with depmod run)
#   vmlinux          the uncompressed ELF kernel cut out of vmlinuz; QEMU boots it
#                    through its PVH entry (Xen ELF note 18), ~3 s faster under TCG
#   kernel           what to pass to -kernel: vmlinux, or vmlinuz if no PVH note
#   kver             the module directory name, e.g. 6.1.0-56-amd64
#
# Environment:
#   FM_CLUSTER_CACHE  cache root (default ~/.cache/flashmeta-cluster)
#   FM_KERNEL         series when no argument is given (6.1 default, or 6.12)
#   FM_KERNEL_PKG     exact package name, overrides the series lookup
#   FM_OFFLINE=1      never call apt; use the newest cached kernel of the series
set -euo pipefail

die() { echo "kernel.sh: $*" >&2; exit 1; }
say() { echo "kernel.sh: $*" >&2; }

if [[ "${1:-}" == "-h" || "${1:-}" == "--help" ]]; then
	sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
	exit 0
fi

series=${1:-${FM_KERNEL:-6.1}}
cache=${FM_CLUSTER_CACHE:-$HOME/.cache/flashmeta-cluster}
case "$series" in
6.1) pat='^linux-image-6\.1\.0-[0-9]+-amd64$' ;;
6.12) pat='^linux-image-6\.12\.[0-9]+\+deb12-amd64$' ;;
*) die "unknown kernel series '$series' (6.1 or 6.12)" ;;
esac

mkdir -p "$cache/debs" "$cache/kernel"
exec 9>"$cache/.kernel.lock"
flock 9

# Newest kernel of the series already unpacked in the cache, if any.
newest_cached() {
	local d best=""
	for d in "$cache"/kernel/*/; do
		[[ -f "$d/kernel" ]] || continue
		d=${d%/}
		[[ "${d##*/}" =~ $pat ]] && best+="${d##*/}"$'\n'
	done
	printf '%s' "$best" | sort -V | tail -n1
}

pkg=${FM_KERNEL_PKG:-}
if [[ -z "$pkg" && "${FM_OFFLINE:-0}" != 1 ]]; then
	find_pkg() {
		apt-cache search --names-only "$pat" 2>/dev/null | awk '{print $1}' |
			sort -V | tail -n1
	}
	pkg=$(find_pkg) || true
	# a fresh machine may have no package lists yet: refresh them once
	if [[ -z "$pkg" && -z "$(newest_cached)" && $(id -u) -eq 0 ]]; then
		apt-get update -qq >&2 || true
		pkg=$(find_pkg) || true
	fi
fi
[[ -n "$pkg" ]] || pkg=$(newest_cached)
[[ -n "$pkg" ]] || die "no package matches $pat (run apt-get update?) and none is cached"

kdir="$cache/kernel/$pkg"
if [[ -f "$kdir/kernel" ]]; then
	echo "$kdir"
	exit 0
fi

# 1. Download (apt-get download writes into the current directory).
deb=$(compgen -G "$cache/debs/${pkg}_*_amd64.deb" | sort -V | tail -n1 || true)
if [[ -z "$deb" ]]; then
	say "downloading $pkg"
	(cd "$cache/debs" && apt-get download -q "$pkg" 2>&1 | grep -v '^W: Download is performed unsandboxed' >&2) ||
		die "apt-get download $pkg failed"
	deb=$(compgen -G "$cache/debs/${pkg}_*_amd64.deb" | sort -V | tail -n1 || true)
	[[ -n "$deb" ]] || die "apt-get download $pkg produced no .deb"
fi

# 2. Unpack into a temporary directory; rename when complete so a killed run
#    never leaves a half-made kernel directory behind.
tmp="$kdir.tmp.$$"
rm -rf "$tmp"
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp"
say "unpacking ${deb##*/}"
dpkg -x "$deb" "$tmp/root"
kver=$(find "$tmp/root/lib/modules" -mindepth 1 -maxdepth 1 -printf '%f\n' | head -n1)
[[ -n "$kver" ]] || die "no lib/modules in $deb"
depmod -b "$tmp/root" "$kver"
echo "$kver" >"$tmp/kver"
vmlinuz="$tmp/root/boot/vmlinuz-$kver"

# 3. Cut the ELF kernel out of the bzImage: find each compressed-stream magic,
#    decompress from there (trailing data makes the decompressor complain; the
#    ELF header decides), keep the first result that is an ELF file.
extract_vmlinux() {
	local magic tool off
	for pair in 'fd377a585a00:xz' '28b52ffd:zstd' '1f8b0800:gzip' '1f8b0808:gzip'; do
		magic=${pair%%:*}
		tool=${pair##*:}
		local pat_bytes="" i
		for ((i = 0; i < ${#magic}; i += 2)); do pat_bytes+="\\x${magic:i:2}"; done
		for off in $(LC_ALL=C grep -obUaP "$pat_bytes" "$vmlinuz" | cut -d: -f1 | head -n4); do
			tail -c +$((off + 1)) "$vmlinuz" | "$tool" -dc >"$tmp/vmlinux" 2>/dev/null || true
			if [[ "$(head -c4 "$tmp/vmlinux" | od -An -tx1 | tr -d ' \n')" == 7f454c46 ]]; then
				return 0
			fi
		done
	done
	rm -f "$tmp/vmlinux"
	return 1
}

has_pvh_note() {
	# Xen ELF note XEN_ELFNOTE_PHYS32_ENTRY (18) marks the PVH entry point.
	command -v readelf >/dev/null || return 0
	readelf -n "$1" 2>/dev/null | grep -q 'Unknown note type: (0x00000012)'
}

if extract_vmlinux && has_pvh_note "$tmp/vmlinux"; then
	echo vmlinux >"$tmp/kernel"
else
	say "no PVH-bootable vmlinux in $vmlinuz; falling back to vmlinuz (boots ~3 s slower)"
	rm -f "$tmp/vmlinux"
	ln -s "root/boot/vmlinuz-$kver" "$tmp/vmlinuz"
	echo vmlinuz >"$tmp/kernel"
fi

rm -rf "$kdir"
mv "$tmp" "$kdir"
trap - EXIT
# Keep the two newest kernels of this series (unpacked, ~0.5 GB each) and their .debs.
for old in $(find "$cache/kernel" -mindepth 1 -maxdepth 1 -type d -printf '%f\n' |
	grep -E "$pat" | sort -V | head -n -2); do
	say "pruning old kernel $old"
	rm -rf "${cache:?}/kernel/$old" "$cache/debs/${old}_"*.deb
done
# Leftovers of killed runs.
find "$cache/kernel" -mindepth 1 -maxdepth 1 -name '*.tmp.*' -mmin +60 -exec rm -rf {} +
say "kernel $kver ready in $kdir ($(cat "$kdir/kernel"))"
echo "$kdir"
