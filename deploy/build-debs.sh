#!/usr/bin/env bash
# build-debs.sh -- build flashmeta's Debian packages from this checkout.
#
# The packaging is deploy/debian (the project's top level has no debian/).
# This script copies the checkout's files -- as they are in the work tree,
# uncommitted edits included, build trees and ignored files left out -- into
# a temporary source tree flashmeta-VERSION/, copies deploy/debian there as
# ./debian and runs `dpkg-buildpackage -us -uc -b` in it: unsigned binary
# packages, built without tests or benchmarks (deploy/debian/rules).
#
#   deploy/build-debs.sh [--out DIR] [--lintian] [--keep] [-j N]
#   --out DIR   where the .deb, .ddeb, .buildinfo and .changes go
#               (default: build-deb/ in the checkout; emptied of them first)
#   --lintian   run lintian on the result; exit 1 on an error tag
#   --keep      keep the temporary tree (its build.log) and say where
#   -j N        build jobs (default: nproc)
#
# Needs the Build-Depends of deploy/debian/control and dpkg-dev
# (deploy/install-deps.sh --build installs them).  Prints the packages
# built, with their sizes; exits 0, or 1 with the build log's tail.
set -euo pipefail
caller=$PWD
cd "$(dirname "$0")/.."
root=$PWD

out=$root/build-deb lint=0 keep=0 jobs=$(nproc)
while (($#)); do
	case $1 in
	--out) out=$2; [[ $out == /* ]] || out=$caller/$out; shift ;;
	--lintian) lint=1 ;;
	--keep) keep=1 ;;
	-j) jobs=$2; shift ;;
	-h | --help) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) echo "build-debs: unknown argument $1" >&2; exit 2 ;;
	esac
	shift
done

# The changelog's upstream version is the project's: a release bumps both.
version=$(dpkg-parsechangelog -l deploy/debian/changelog -S Version)
upstream=${version%-*}
project=$(sed -nE 's/^project\(flashmeta VERSION ([0-9.]+).*/\1/p' CMakeLists.txt)
if [[ $upstream != "$project" ]]; then
	echo "build-debs: deploy/debian/changelog says $version, CMakeLists.txt $project:" \
		"add a changelog entry for $project-1" >&2
	exit 1
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/fm-debs.XXXXXX")
cleanup() {
	if ((keep)); then echo "build-debs: kept $tmp" >&2; else rm -rf "$tmp"; fi
}
trap cleanup EXIT
src=$tmp/flashmeta-$upstream

# The tree to build: what git tracks or would track (not build*/, not
# ignored files); a copy that is not a git checkout is taken whole.
mkdir -p "$src"
if git -C "$root" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
	git -C "$root" ls-files -z --cached --others --exclude-standard |
		while IFS= read -r -d '' f; do [[ -e $f ]] && printf '%s\0' "$f"; done |
		tar --null -T - -cf - | tar -xf - -C "$src"
else
	tar --exclude='./build*' --exclude=./.git -cf - . | tar -xf - -C "$src"
fi
rm -rf "$src/debian"
cp -a "$src/deploy/debian" "$src/debian"

echo "build-debs: dpkg-buildpackage -us -uc -b ($version, $jobs jobs; log: $tmp/build.log)"
if ! (cd "$src" && DEB_BUILD_OPTIONS="parallel=$jobs ${DEB_BUILD_OPTIONS:-}" \
	dpkg-buildpackage -us -uc -b) >"$tmp/build.log" 2>&1; then
	tail -n 40 "$tmp/build.log" >&2
	echo "build-debs: dpkg-buildpackage FAILED (whole log: --keep)" >&2
	exit 1
fi

mkdir -p "$out"
rm -f "$out"/*.deb "$out"/*.ddeb "$out"/*.buildinfo "$out"/*.changes
shopt -s nullglob
made=("$tmp"/*.deb "$tmp"/*.ddeb "$tmp"/*.buildinfo "$tmp"/*.changes)
mv "${made[@]}" "$out"/
for f in "$out"/*.deb "$out"/*.ddeb; do
	printf '  %-52s %8s\n' "$(basename "$f")" "$(du -h --apparent-size "$f" | cut -f1)"
done
echo "build-debs: packages in $out"

if ((lint)); then
	changes=("$out"/*.changes)
	echo "build-debs: lintian ${changes[0]##*/}"
	# --fail-on error: warnings are printed, errors fail
	lintian --info --display-info --fail-on error "${changes[0]}"
fi
