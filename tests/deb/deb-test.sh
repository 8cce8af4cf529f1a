#!/usr/bin/env bash
# deb-test.sh -- build the Debian packages and use them as a user would
# (label `deb`, not in the default run: several minutes, and the network of
# the Debian archive for the chroot).
#   1. deploy/build-debs.sh; lintian on the result: no error, and no
#      warning but the known ones (KNOWN_WARNINGS below, each with why)
#   2. the package set, their control fields (Multi-Arch, Depends from
#      shlibs: libpmem1 for the owner and the tools, not the library) and
#      the library's symbols file against what libflashmeta.so.0 exports
#   3. their contents (dpkg-deb -c): each package what it must hold and
#      nothing it must not; no file in two packages; the unit's ExecStart
#   4. installed into a throwaway chroot (debootstrap --variant=minbase of
#      this machine's release, cached as a tarball in --cache) with apt, so
#      dependencies and maintainer scripts run: the unit known to
#      deb-systemd-helper and not enabled; use-installed.sh there (the
#      programs' --help, engine_min.c built with pkg-config against -dev,
#      run alone and against the installed owner); then purged, leaving
#      none of their files.  Where no chroot can be made (not root, no
#      debootstrap, no archive), the packages are extracted with dpkg-deb -x
#      and use-installed.sh runs over that tree instead; the output says so.
#
#   deb-test.sh --src ROOT --cache DIR [--cc CC]
# --src is the project's top level.  FM_KEEP=1 keeps the temporary
# directory; FM_DEB_MIRROR names the archive (default deb.debian.org);
# FM_DEB_NO_CHROOT=1 takes the extracted-files way without trying a chroot.
# Exit 0 when all passed, 1 with the failing step named.
set -euo pipefail

src='' cache='' cc=cc
while (($#)); do
	case $1 in
	--src) src=$2 ;;
	--cache) cache=$2 ;;
	--cc) cc=$2 ;;
	*) echo "deb-test: unknown argument $1" >&2; exit 2 ;;
	esac
	shift 2
done
[[ -n $src && -n $cache ]] || { echo "deb-test: --src and --cache are required" >&2; exit 2; }
src=$(cd "$src" && pwd)
here=$src/tests/deb

# lintian warnings that are known and accepted:
#   initial-upload-closes-no-bugs  the changelog's first entry closes no
#                                  Debian bug: these packages are not (yet)
#                                  uploaded to Debian, there is no ITP
KNOWN_WARNINGS=initial-upload-closes-no-bugs

step=setup
fail() { echo "deb-test: FAILED at $step: $*" >&2; exit 1; }
tmp=$(mktemp -d "${TMPDIR:-/tmp}/fm-deb.XXXXXX")
chroot_dir=
cleanup() {
	if [[ -n ${FM_KEEP:-} ]]; then echo "deb-test: kept $tmp" >&2; else rm -rf "$tmp"; fi
}
trap cleanup EXIT

version=$(dpkg-parsechangelog -l "$src/deploy/debian/changelog" -S Version)
upstream=${version%-*}
arch=$(dpkg --print-architecture)
ma=$(dpkg-architecture -qDEB_HOST_MULTIARCH)
pkgs=(libflashmeta0 libflashmeta-dev flashmeta-owner flashmeta-tools)
deb() { echo "$tmp/debs/${1}_${version}_$arch.deb"; }

# --------------------------------------------------------------- 1. build
step="build-debs.sh"
t0=$SECONDS
"$src/deploy/build-debs.sh" --out "$tmp/debs" || fail "deploy/build-debs.sh"
echo "deb-test: packages built in $((SECONDS - t0)) s"
step="lintian"
known=$KNOWN_WARNINGS
rc=0
lintian --fail-on error,warning --suppress-tags "$known" "$tmp/debs"/*.changes \
	>"$tmp/lintian.log" 2>&1 || rc=$?
grep -v 'running with root privileges' "$tmp/lintian.log" || true
((rc == 0)) || fail "lintian: an error or an unknown warning (accepted: $known)"
echo "deb-test: lintian clean but $known"

# -------------------------------------------------------- 2. control data
step="package set"
mapfile -t built < <(cd "$tmp/debs" && ls -- *.deb)
want=()
for p in "${pkgs[@]}"; do want+=("${p}_${version}_$arch.deb"); done
# and the debug symbols of what holds ELF files (dh_strip)
for p in libflashmeta0 flashmeta-owner flashmeta-tools; do want+=("${p}-dbgsym_${version}_$arch.deb"); done
[[ $(printf '%s\n' "${built[@]}" | sort) == $(printf '%s\n' "${want[@]}" | sort) ]] ||
	fail "built ${built[*]}; wanted ${want[*]}"

step="control fields"
field() { dpkg-deb -f "$(deb "$1")" "$2"; }
for p in libflashmeta0 libflashmeta-dev; do
	[[ $(field $p Multi-Arch) == same ]] || fail "$p is not Multi-Arch: same"
done
has_dep() { grep -qE "(^|, )$2( |,|$)" <<<"$(field "$1" Depends)"; }
for d in libibverbs1 librdmacm1; do
	for p in libflashmeta0 flashmeta-owner flashmeta-tools; do
		has_dep $p $d || fail "$p does not depend on $d: $(field $p Depends)"
	done
done
for p in flashmeta-owner flashmeta-tools; do
	has_dep $p libpmem1 || fail "$p does not depend on libpmem1: $(field $p Depends)"
done
! has_dep libflashmeta0 libpmem1 || fail "libflashmeta0 depends on libpmem1"
grep -qF "libflashmeta0 (= $version)" <<<"$(field libflashmeta-dev Depends)" ||
	fail "libflashmeta-dev does not depend on libflashmeta0 (= $version)"

step="symbols file"
dpkg-deb -x "$(deb libflashmeta0)" "$tmp/lib0"
dpkg-deb --ctrl-tarfile "$(deb libflashmeta0)" | tar -xO ./symbols >"$tmp/symbols" ||
	fail "libflashmeta0 has no symbols file"
dpkg-deb --ctrl-tarfile "$(deb libflashmeta0)" | tar -xO ./shlibs | grep -qE "^libflashmeta 0 libflashmeta0( |$)" ||
	fail "libflashmeta0's shlibs file"
# nm: "A NODE" for a version node, "T name@@NODE" for a function;
# the symbols file: "NODE@NODE", "name@NODE"
nm -D --defined-only "$tmp/lib0/usr/lib/$ma/libflashmeta.so.0" |
	awk '$2 == "A" { print $3 "@" $3; next } { sub(/@@/, "@", $3); print $3 }' |
	sort -u >"$tmp/exported"
grep -qx 'libflashmeta.so.0 libflashmeta0 #MINVER#' "$tmp/symbols" || fail "symbols file header"
awk '/^ / { print $1 }' "$tmp/symbols" | sort -u >"$tmp/listed"
diff "$tmp/listed" "$tmp/exported" >"$tmp/symbols.diff" ||
	{ cat "$tmp/symbols.diff"; fail "deploy/debian/libflashmeta0.symbols (<) is not what the library exports (>)"; }
echo "deb-test: $(wc -l <"$tmp/listed") symbols listed, as exported"

# -------------------------------------------------------------- 3. contents
step="contents"
# files (and symlinks) of a package, without the leading ./
files() { dpkg-deb -c "$(deb "$1")" | awk '$1 !~ /^d/ { sub(/^\.\//, "", $6); print $6 }'; }
# holds PKG PATH...: each PATH is in PKG
holds() {
	local p=$1 f
	shift
	for f in "$@"; do grep -qxF "$f" "$tmp/files.$p" || fail "$p lacks $f"; done
}
# only PKG REGEX: every file of PKG matches REGEX (its docs and man pages too)
only() {
	local bad
	bad=$(grep -vE "^($2|usr/share/doc/$1/.*|usr/share/man/man[1-9]/[^/]+)$" "$tmp/files.$1") || true
	[[ -z $bad ]] || fail "$1 holds what it should not: $bad"
}
for p in "${pkgs[@]}"; do files "$p" >"$tmp/files.$p"; done
L=usr/lib/$ma
holds libflashmeta0 "$L/libflashmeta.so.$upstream" "$L/libflashmeta.so.0" \
	usr/share/doc/libflashmeta0/copyright
only libflashmeta0 "$L/libflashmeta\.so\.[0-9.]+"
holds libflashmeta-dev "$L/libflashmeta.so" "$L/pkgconfig/flashmeta.pc" \
	"$L/cmake/flashmeta/flashmetaConfig.cmake" "$L/cmake/flashmeta/flashmetaConfigVersion.cmake" \
	"$L/cmake/flashmeta/flashmetaTargets.cmake" \
	usr/include/flashmeta/engine.h usr/include/flashmeta/refvol.h usr/include/flashmeta/error.h
only libflashmeta-dev "usr/include/flashmeta/[a-z_]+\.h|$L/libflashmeta\.so|$L/pkgconfig/flashmeta\.pc|$L/cmake/flashmeta/[A-Za-z-]+\.cmake"
for h in pmem_store.h ownerd.h ctl.h transport.h wire.h; do
	! grep -qxF "usr/include/flashmeta/$h" "$tmp/files.libflashmeta-dev" || fail "internal header $h packaged"
done
holds flashmeta-owner usr/bin/flashmeta-owner lib/systemd/system/flashmeta-owner.service \
	usr/share/doc/flashmeta-owner/examples/owner.conf.example usr/share/doc/flashmeta-owner/README.Debian
only flashmeta-owner "usr/bin/flashmeta-owner|lib/systemd/system/flashmeta-owner\.service"
tools=(flashmeta flashmeta-pmem flashmeta-demo fm-transport-probe fm-cache-demo)
holds flashmeta-tools "${tools[@]/#/usr/bin/}" "$L/nbdkit/plugins/nbdkit-flashmeta-plugin.so"
only flashmeta-tools "usr/bin/(flashmeta|flashmeta-pmem|flashmeta-demo|fm-transport-probe|fm-cache-demo)|$L/nbdkit/plugins/nbdkit-flashmeta-plugin\.so"
dup=$(cat "${pkgs[@]/#/$tmp/files.}" | grep -v '^usr/share/doc/' | sort | uniq -d)
[[ -z $dup ]] || fail "in two packages: $dup"
# the .so link points at the SONAME
dpkg-deb -c "$(deb libflashmeta-dev)" | grep -qE " \./$L/libflashmeta\.so -> libflashmeta\.so\.0$" ||
	fail "libflashmeta.so does not link to libflashmeta.so.0"
step="the unit"
dpkg-deb --fsys-tarfile "$(deb flashmeta-owner)" | tar -xO ./lib/systemd/system/flashmeta-owner.service |
	grep -qx 'ExecStart=/usr/bin/flashmeta-owner --config /etc/flashmeta/owner.conf' ||
	fail "the unit's ExecStart does not name /usr/bin/flashmeta-owner"
echo "deb-test: contents as expected ($(cat "${pkgs[@]/#/$tmp/files.}" | wc -l) files)"

# ------------------------------------------------------------- 4. install
# chroot_make DIR: a minbase root of this release in DIR, from the cache
# or by debootstrap (then cached); 1 with the reason on stdout if neither.
chroot_make() {
	local dir=$1 suite mirror=${FM_DEB_MIRROR:-http://deb.debian.org/debian}
	# shellcheck disable=SC1091
	suite=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
	[[ -z ${FM_DEB_NO_CHROOT:-} ]] || { echo "FM_DEB_NO_CHROOT is set"; return 1; }
	[[ $(id -u) == 0 ]] || { echo "not root"; return 1; }
	[[ -n $suite ]] || { echo "no VERSION_CODENAME in /etc/os-release"; return 1; }
	command -v debootstrap >/dev/null || { echo "no debootstrap"; return 1; }
	command -v unshare >/dev/null || { echo "no unshare"; return 1; }
	local tar=$cache/$suite-$arch-minbase.tar
	mkdir -p "$dir"
	if [[ -f $tar ]]; then
		tar -xf "$tar" -C "$dir" && return 0
		rm -rf "$dir" "$tar"
		mkdir -p "$dir"
	fi
	if ! debootstrap --variant=minbase "$suite" "$dir" "$mirror" >"$tmp/debootstrap.log" 2>&1; then
		echo "debootstrap $suite $mirror failed: $(grep -E '^(E|W):' "$tmp/debootstrap.log" | tail -n 1)"
		return 1
	fi
	mkdir -p "$cache"
	tar -cf "$tar.part" -C "$dir" . && mv "$tar.part" "$tar"
}

# in_chroot CMD...: CMD in the chroot, with /proc, /dev and a tmpfs
# /dev/shm mounted in a mount namespace of its own (gone when CMD ends)
in_chroot() {
	unshare --mount --propagation private --fork -- sh -c '
		r=$1; shift
		mount -t proc proc "$r/proc" && mount --rbind /dev "$r/dev" &&
			mount -t tmpfs -o mode=1777 shm "$r/dev/shm" || exit 97
		exec chroot "$r" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root \
			DEBIAN_FRONTEND=noninteractive "$@"' sh "$chroot_dir" "$@"
}

step="chroot"
t0=$SECONDS
if why=$(chroot_make "$tmp/root"); then
	chroot_dir=$tmp/root
	cp /etc/resolv.conf "$chroot_dir/etc/resolv.conf"
	if in_chroot apt-get update -qq >"$tmp/apt.log" 2>&1; then
		echo "deb-test: chroot ready in $((SECONDS - t0)) s"
	else
		why="apt-get update there failed: $(grep -E '^(E|W):' "$tmp/apt.log" | tail -n 1 || true)"
		chroot_dir=
	fi
fi
[[ -n $chroot_dir ]] || echo "deb-test: no chroot ($why): the packages are extracted, not installed"

if [[ -n $chroot_dir ]]; then
	w=/tmp/deb-test
	mkdir -p "$chroot_dir$w"
	for p in "${pkgs[@]}"; do cp "$(deb "$p")" "$chroot_dir$w"/; done
	cp "$src/tests/install/engine_min.c" "$here/use-installed.sh" "$chroot_dir$w"/
	printf '#!/bin/sh\nexit 101\n' >"$chroot_dir/usr/sbin/policy-rc.d"
	chmod +x "$chroot_dir/usr/sbin/policy-rc.d"
	local_debs=()
	for p in "${pkgs[@]}"; do local_debs+=("$w/$(basename "$(deb "$p")")"); done

	step="apt-get install (the packages)"
	in_chroot apt-get install -y -q --no-install-recommends "${local_debs[@]}" >>"$tmp/apt.log" 2>&1 ||
		{ cat "$tmp/apt.log"; fail "apt-get install of the packages"; }
	for p in "${pkgs[@]}"; do
		[[ $(in_chroot dpkg-query -W -f='${Status} ${Version}' "$p") == "install ok installed $version" ]] ||
			fail "$p not installed"
	done
	step="maintainer scripts"
	# (deb-systemd-helper answers dpkg only: its state files, read here)
	[[ -f $chroot_dir/var/lib/systemd/deb-systemd-helper-enabled/flashmeta-owner.service.dsh-also ]] ||
		fail "postinst did not register flashmeta-owner.service with deb-systemd-helper"
	wants=$(cd "$chroot_dir" && ls etc/systemd/system/*/flashmeta-owner.service 2>/dev/null) || true
	[[ -z $wants ]] || fail "flashmeta-owner.service is enabled ($wants): it must wait for owner.conf"
	cache_list=$(in_chroot ldconfig -p)
	# (/lib is /usr/lib on a merged-/usr system: ldconfig may name either)
	grep -qE "libflashmeta\.so\.0 \(.*\) => (/usr)?/lib/$ma/libflashmeta\.so\.0$" <<<"$cache_list" ||
		fail "ldconfig does not know libflashmeta.so.0"

	step="apt-get install (a compiler)"
	in_chroot apt-get install -y -q --no-install-recommends gcc libc6-dev pkgconf >>"$tmp/apt.log" 2>&1 ||
		{ cat "$tmp/apt.log"; fail "apt-get install gcc libc6-dev pkgconf"; }
	step="use-installed.sh (chroot)"
	in_chroot bash $w/use-installed.sh --work $w --engine $w/engine_min.c \
		--version "$upstream" --multiarch "$ma" --cc gcc || fail "in the chroot"

	step="purge"
	in_chroot apt-get purge -y -q "${pkgs[@]}" >>"$tmp/apt.log" 2>&1 ||
		{ cat "$tmp/apt.log"; fail "apt-get purge"; }
	left=$(cd "$chroot_dir" && ls -d usr/lib/"$ma"/libflashmeta* usr/lib/"$ma"/cmake/flashmeta \
		usr/include/flashmeta lib/systemd/system/flashmeta-owner.service \
		usr/bin/flashmeta* usr/bin/fm-* usr/share/doc/flashmeta-* usr/share/doc/libflashmeta* \
		var/lib/systemd/deb-systemd-helper-enabled/*flashmeta* 2>/dev/null) || true
	[[ -z $left ]] || fail "left after purge: $left"
	echo "deb-test: installed, used and purged in the chroot"
else
	step="extract"
	mkdir -p "$tmp/root" "$tmp/work"
	for p in "${pkgs[@]}"; do dpkg-deb -x "$(deb "$p")" "$tmp/root"; done
	step="use-installed.sh (extracted)"
	"$here/use-installed.sh" --root "$tmp/root" --work "$tmp/work" \
		--engine "$src/tests/install/engine_min.c" --version "$upstream" --multiarch "$ma" \
		--cc "$cc" || fail "over the extracted packages"
fi
echo "deb-test: OK"
