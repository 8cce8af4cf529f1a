#!/usr/bin/env bash
# install-test.sh -- install the build into a temporary prefix and use it as
# a user would:
#   1. cmake --install BUILD --prefix TMP; the expected files are there
#   2. every installed header compiles alone in C, carries extern "C", and
#      (with a C++ compiler) a C++ program including all of them links
#      every exported function by its C name
#   3. engine_min.c built with `pkg-config --cflags --libs flashmeta` and
#      with a CMake project using find_package(flashmeta) -- each checked
#      to come from TMP -- and run
#   4. the installed flashmeta-owner started over shm, a mapping created and
#      started with the installed flashmeta CLI, both engine_min builds run
#      I/O against it, the owner stopped cleanly
#
#   install-test.sh --build DIR --src DIR --cc CC [--cxx CXX] [--flags "F"]
#                   --version V --soversion N
# --src is tests/install; --flags go to every compile and link (the build's
# sanitizer flags: an instrumented library needs an instrumented program).
# Exit 0 when all passed, 1 with the failing step named.  FM_KEEP=1 keeps
# the temporary directory (logs, the install, the programs) for a look.
set -euo pipefail

build='' src='' cc='' cxx='' flags='' version='' soversion=''
while (($#)); do
	case $1 in
	--build) build=$2 ;;
	--src) src=$2 ;;
	--cc) cc=$2 ;;
	--cxx) cxx=$2 ;;
	--flags) flags=$2 ;;
	--version) version=$2 ;;
	--soversion) soversion=$2 ;;
	*) echo "install-test: unknown argument $1" >&2; exit 2 ;;
	esac
	shift 2
done
[[ -n $build && -n $src && -n $cc && -n $version && -n $soversion ]] ||
	{ echo "install-test: --build, --src, --cc, --version and --soversion are required" >&2; exit 2; }

step=setup
fail() { echo "install-test: FAILED at $step: $*" >&2; exit 1; }
tmp=$(mktemp -d "${TMPDIR:-/tmp}/fm-install.XXXXXX")
owner_pid=
cleanup() {
	[[ -z $owner_pid ]] || kill -KILL "$owner_pid" 2>/dev/null || true
	if [[ -n ${FM_KEEP:-} ]]; then echo "install-test: kept $tmp" >&2; else rm -rf "$tmp"; fi
}
trap cleanup EXIT
prefix=$tmp/prefix
# shellcheck disable=SC2206
cflags=(-Wall -Wextra -Werror $flags)

# ------------------------------------------------------------- 1. install
step="cmake --install"
cmake --install "$build" --prefix "$prefix" >"$tmp/install.log" 2>&1 ||
	{ cat "$tmp/install.log"; fail "cmake --install $build"; }
libdir=$(dirname "$(find "$prefix" -name "libflashmeta.so.$version" -print -quit)")
[[ -f $libdir/libflashmeta.so.$version ]] || fail "no libflashmeta.so.$version under $prefix"
step="installed files"
for f in "$libdir/libflashmeta.so.$soversion" "$libdir/libflashmeta.so" \
	"$libdir/pkgconfig/flashmeta.pc" \
	"$libdir/cmake/flashmeta/flashmetaConfig.cmake" \
	"$libdir/cmake/flashmeta/flashmetaConfigVersion.cmake" \
	"$prefix/include/flashmeta/engine.h" "$prefix/include/flashmeta/refvol.h" \
	"$prefix/lib/systemd/system/flashmeta-owner.service" \
	"$prefix/share/doc/flashmeta/examples/owner.conf.example"; do
	[[ -e $f ]] || fail "missing $f"
done
for p in flashmeta flashmeta-owner flashmeta-pmem flashmeta-demo fm-transport-probe fm-cache-demo; do
	[[ -x $prefix/bin/$p ]] || fail "missing program bin/$p"
done
grep -qx "ExecStart=$prefix/bin/flashmeta-owner --config /etc/flashmeta/owner.conf" \
	"$prefix/lib/systemd/system/flashmeta-owner.service" ||
	fail "the unit's ExecStart does not name $prefix/bin/flashmeta-owner"
# the owner's libraries stay inside the project
for h in pmem_store.h ownerd.h ctl.h transport.h wire.h; do
	[[ ! -e $prefix/include/flashmeta/$h ]] || fail "internal header $h installed"
done
if compgen -G "$libdir/*.a" >/dev/null; then fail "static libraries installed: $(ls "$libdir"/*.a)"; fi

# ------------------------------------------------------------- 2. headers
headers=("$prefix"/include/flashmeta/*.h)
step="headers in C"
for h in "${headers[@]}"; do
	grep -q '^extern "C" {$' "$h" || fail "$(basename "$h") has no extern \"C\" guard"
	printf '#include <flashmeta/%s>\n' "$(basename "$h")" |
		"$cc" -std=c11 -pedantic "${cflags[@]}" -I"$prefix/include" -fsyntax-only -x c - ||
		fail "flashmeta/$(basename "$h") does not compile on its own in C"
done
# the exported functions, by name (check-symbols.sh checks they are the API)
mapfile -t syms < <(nm -D --defined-only "$libdir/libflashmeta.so" |
	awk '$2 != "A" { sub(/@.*/, "", $3); print $3 }' | sort -u)
((${#syms[@]} > 0)) || fail "libflashmeta.so exports nothing"
step="headers in C++"
if [[ -n $cxx ]]; then
	{
		for h in "${headers[@]}"; do printf '#include <flashmeta/%s>\n' "$(basename "$h")"; done
		echo 'typedef void (*fn)(void);'
		echo 'static volatile fn all[] = {'
		printf '\t(fn)&%s,\n' "${syms[@]}"
		echo '};'
		echo 'int main() { int n = 0; for (unsigned i = 0; i < sizeof(all) / sizeof(all[0]); i++) n += all[i] != 0; return n == (int)(sizeof(all) / sizeof(all[0])) ? 0 : 1; }'
	} >"$tmp/all.cpp"
	"$cxx" -std=c++11 -pedantic -O0 "${cflags[@]}" "$tmp/all.cpp" -o "$tmp/all_cpp" \
		-I"$prefix/include" -L"$libdir" -lflashmeta ||
		fail "a C++ program including every installed header does not build and link"
	LD_LIBRARY_PATH=$libdir "$tmp/all_cpp" || fail "the C++ program failed"
	echo "install-test: C++: ${#headers[@]} headers, ${#syms[@]} functions linked by C name"
else
	echo "install-test: no C++ compiler: extern \"C\" checked by grep only"
fi

# --------------------------------------------------- 3. pkg-config, CMake
step="pkg-config"
export PKG_CONFIG_PATH=$libdir/pkgconfig
[[ $(pkg-config --modversion flashmeta) == "$version" ]] || fail "pkg-config --modversion"
[[ $(pkg-config --variable=prefix flashmeta) == "$prefix" ]] ||
	fail "flashmeta.pc names prefix $(pkg-config --variable=prefix flashmeta), not $prefix"
# shellcheck disable=SC2046
"$cc" -std=c11 "${cflags[@]}" "$src/engine_min.c" -o "$tmp/engine_pc" \
	$(pkg-config --cflags --libs flashmeta) || fail "build with pkg-config flags"

step="find_package"
cmake -S "$src/consumer" -B "$tmp/consumer" -DCMAKE_PREFIX_PATH="$prefix" \
	-DCMAKE_C_COMPILER="$cc" -DCMAKE_C_FLAGS="${cflags[*]}" \
	-DCMAKE_EXE_LINKER_FLAGS="$flags" >"$tmp/consumer.log" 2>&1 ||
	{ cat "$tmp/consumer.log"; fail "configure a project with find_package(flashmeta)"; }
grep -q "flashmeta $version from $libdir/cmake/flashmeta" "$tmp/consumer.log" ||
	{ cat "$tmp/consumer.log"; fail "find_package found another flashmeta"; }
cmake --build "$tmp/consumer" >"$tmp/consumer-build.log" 2>&1 ||
	{ cat "$tmp/consumer-build.log"; fail "build with find_package(flashmeta)"; }

step="run"
for b in "$tmp/engine_pc" "$tmp/consumer/engine_min"; do
	# (not `ldd | grep -q`: grep's early exit would fail ldd with EPIPE)
	deps=$(LD_LIBRARY_PATH=$libdir ldd "$b") || fail "ldd $b"
	grep -q "libflashmeta.so.$soversion => $libdir/" <<<"$deps" ||
		fail "$b does not load libflashmeta.so.$soversion from $libdir"
	LD_LIBRARY_PATH=$libdir "$b" || fail "$b (offline)"
done

# ------------------------------------------------- 4. against the owner
step="owner"
addr=shm:/fm-install-$$
printf 'install-test-key' >"$tmp/key"
# timeout: an owner this script failed to stop ends by itself
timeout -s TERM 60 "$prefix/bin/flashmeta-owner" --listen "$addr" --transport shm \
	--pmem "$tmp/pool" --key-file "$tmp/key" --control "$tmp/ctl" \
	--pool-max-maps 4 --pool-max-grains 1024 >"$tmp/owner.log" 2>&1 &
owner_pid=$!
cli() { "$prefix/bin/flashmeta" -C "$tmp/ctl" admin "$@" >>"$tmp/cli.log" 2>&1; }
for ((i = 0; i < 500; i++)); do
	cli status && break
	kill -0 "$owner_pid" 2>/dev/null || { cat "$tmp/owner.log"; fail "the owner exited"; }
	sleep 0.02
done
cli status || { cat "$tmp/owner.log" "$tmp/cli.log"; fail "the owner did not come up"; }
step="mapping"
map=1
for b in "$tmp/engine_pc" "$tmp/consumer/engine_min"; do
	# volumes of their own: a pair is mapped once (map-create's limits)
	{ cli map-create $map $((20 * map - 10)) $((20 * map)) 1048576 4096 &&
		cli map-prepare $map && cli map-start $map; } ||
		{ cat "$tmp/cli.log"; fail "map-create/prepare/start $map"; }
	step="I/O ($b)"
	LD_LIBRARY_PATH=$libdir "$b" "$addr" "$tmp/key" $map ||
		{ cat "$tmp/owner.log"; fail "$b against the owner"; }
	map=$((map + 1))
done
step="owner stop"
kill -TERM "$owner_pid"
rc=0
wait "$owner_pid" || rc=$?
owner_pid=
((rc == 0)) || { cat "$tmp/owner.log"; fail "the owner exited $rc after SIGTERM"; }
echo "install-test: OK ($prefix: ${#syms[@]} exported functions)"
