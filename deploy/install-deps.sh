#!/usr/bin/env bash
# install-deps.sh -- install every Debian 12 package flashmeta needs, by name.
#
# Idempotent: packages already present are skipped by apt; re-running costs
# one `dpkg-query` when nothing is missing.  Must run as root (or via sudo).
#
#   deploy/install-deps.sh            build + test + cluster + bench + Debian packaging
#   deploy/install-deps.sh --build    only what building and native tests need
set -euo pipefail

build_pkgs=(
	build-essential cmake pkg-config clang
	libibverbs-dev librdmacm-dev ibverbs-providers rdma-core
	libpmem-dev
	libcmocka-dev
	libroaring-dev
	liburcu-dev
	groff-base
	nbdkit nbdkit-plugin-dev
)
# NBD clients no one here wrote, driving a flashmeta volume through the
# nbdkit plugin (tests/nbd)
nbd_pkgs=(
	qemu-utils libnbd-bin
)
# The soft-RoCE cluster (deploy/cluster/): a QEMU guest per node running
# Debian's own kernel, a busybox initramfs, perftest as the reference.
cluster_pkgs=(
	qemu-system-x86 busybox-static cpio kmod xz-utils
	iproute2 perftest vde2 ndctl e2fsprogs
	ibverbs-utils rdmacm-utils
)
# flashmeta-bench --plot: latency CDFs and throughput vs split as PNG
# (without gnuplot it writes the data and the scripts only)
bench_pkgs=(
	gnuplot-nox
)

# The Debian packages (deploy/build-debs.sh, tests/deb): dpkg-buildpackage
# (dpkg-dev, in build-essential) with debhelper, lintian on the result,
# debootstrap for the chroot tests/deb installs them into.
deb_pkgs=(
	debhelper lintian debootstrap
)

want=("${build_pkgs[@]}")
[[ "${1:-}" == "--build" ]] || want+=("${cluster_pkgs[@]}" "${bench_pkgs[@]}" "${nbd_pkgs[@]}" "${deb_pkgs[@]}")

missing=()
for p in "${want[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
		missing+=("$p")
done

if ((${#missing[@]} == 0)); then
	echo "install-deps: all ${#want[@]} packages present"
	exit 0
fi

SUDO=""
[[ $(id -u) -eq 0 ]] || SUDO="sudo"
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
