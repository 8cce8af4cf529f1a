#!/usr/bin/env bash
# use-installed.sh -- use the installed Debian packages as a user would; run
# by deb-test.sh, inside the throwaway chroot (ROOT empty) or, where no
# chroot can be made, on this machine over the packages' extracted files
# (ROOT = that directory: programs and the engine run with LD_LIBRARY_PATH,
# pkg-config with PKG_CONFIG_SYSROOT_DIR).
#
#   use-installed.sh --root ROOT --work DIR --engine engine_min.c
#                    --version V --multiarch TRIPLET [--cc CC]
#   1. every program of flashmeta-owner and flashmeta-tools answers --help
#   2. engine_min.c built with `pkg-config --cflags --libs flashmeta`
#      (libflashmeta-dev), linked to ROOT's libflashmeta.so.0, run alone
#   3. the installed flashmeta-owner started over shm, a mapping created and
#      started with the installed flashmeta CLI, engine_min's I/O against
#      it, the owner stopped cleanly by SIGTERM
# Exit 0, or 1 with the failing step named.
set -euo pipefail

root='' work='' engine='' version='' ma='' cc=cc
while (($#)); do
	case $1 in
	--root) root=$2 ;;
	--work) work=$2 ;;
	--engine) engine=$2 ;;
	--version) version=$2 ;;
	--multiarch) ma=$2 ;;
	--cc) cc=$2 ;;
	*) echo "use-installed: unknown argument $1" >&2; exit 2 ;;
	esac
	shift 2
done
[[ -n $work && -n $engine && -n $version && -n $ma ]] ||
	{ echo "use-installed: --work, --engine, --version and --multiarch are required" >&2; exit 2; }

step=setup
fail() { echo "use-installed: FAILED at $step: $*" >&2; exit 1; }
owner_pid=
trap '[[ -z $owner_pid ]] || kill -KILL "$owner_pid" 2>/dev/null || true' EXIT
bin=$root/usr/bin
libdir=$root/usr/lib/$ma
if [[ -n $root ]]; then
	export LD_LIBRARY_PATH=$libdir
	export PKG_CONFIG_SYSROOT_DIR=$root PKG_CONFIG_LIBDIR=$libdir/pkgconfig
fi

# ------------------------------------------------------------ 1. programs
for p in flashmeta-owner flashmeta flashmeta-pmem flashmeta-demo fm-transport-probe fm-cache-demo; do
	step="$p --help"
	[[ -x $bin/$p ]] || fail "no $bin/$p"
	"$bin/$p" --help >"$work/help.$p" 2>&1 || { cat "$work/help.$p"; fail "exit $?"; }
	grep -qi "usage" "$work/help.$p" || fail "no usage text"
done
echo "use-installed: 6 programs answer --help"

# ----------------------------------------------------- 2. the -dev package
step="pkg-config"
[[ $(pkg-config --modversion flashmeta) == "$version" ]] ||
	fail "pkg-config --modversion flashmeta: $(pkg-config --modversion flashmeta)"
# (pkgconf puts PKG_CONFIG_SYSROOT_DIR before the variable, as before -I/-L)
[[ $(pkg-config --variable=libdir flashmeta) == "$libdir" ]] ||
	fail "flashmeta.pc libdir $(pkg-config --variable=libdir flashmeta), not $libdir"
step="build engine_min"
# shellcheck disable=SC2046
"$cc" -std=c11 -Wall -Wextra -Werror "$engine" -o "$work/engine_min" \
	$(pkg-config --cflags --libs flashmeta) || fail "$cc engine_min.c \$(pkg-config ...)"
step="run engine_min"
deps=$(ldd "$work/engine_min") || fail "ldd"
# the file it loads (by path: /lib may be /usr/lib on a merged-/usr system)
loaded=$(awk '$1 == "libflashmeta.so.0" { print $3 }' <<<"$deps")
[[ -n $loaded && $(readlink -f "$loaded") == $(readlink -f "$libdir/libflashmeta.so.0") ]] ||
	{ echo "$deps"; fail "engine_min does not load $libdir/libflashmeta.so.0"; }
"$work/engine_min" || fail "engine_min (offline)"

# ------------------------------------------------------- 3. against the owner
step="owner"
addr=shm:/fm-deb-$$
printf 'deb-test-key' >"$work/key"
timeout -s TERM 60 "$bin/flashmeta-owner" --listen "$addr" --transport shm \
	--pmem "$work/pool" --key-file "$work/key" --control "$work/ctl" \
	--pool-max-maps 4 --pool-max-grains 1024 >"$work/owner.log" 2>&1 &
owner_pid=$!
cli() { "$bin/flashmeta" -C "$work/ctl" admin "$@" >>"$work/cli.log" 2>&1; }
for ((i = 0; i < 500; i++)); do
	cli status && break
	kill -0 "$owner_pid" 2>/dev/null || { cat "$work/owner.log"; fail "the owner exited"; }
	sleep 0.02
done
cli status || { cat "$work/owner.log" "$work/cli.log"; fail "the owner did not come up"; }
step="mapping"
{ cli map-create 1 10 20 1048576 4096 && cli map-prepare 1 && cli map-start 1; } ||
	{ cat "$work/cli.log"; fail "map-create/prepare/start"; }
step="engine_min I/O"
"$work/engine_min" "$addr" "$work/key" 1 || { cat "$work/owner.log"; fail "engine_min against the owner"; }
step="owner stop"
kill -TERM "$owner_pid"
rc=0
wait "$owner_pid" || rc=$?
owner_pid=
((rc == 0)) || { cat "$work/owner.log"; fail "the owner exited $rc after SIGTERM"; }
echo "use-installed: OK (engine_min built with pkg-config, I/O against the installed owner)"
