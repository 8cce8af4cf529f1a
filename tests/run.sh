#!/usr/bin/env bash
# run.sh -- flashmeta's whole test suite; .ci/run calls exactly this.
#
# Stages (each its own build tree under build-test/):
#   native   gcc RelWithDebInfo, every ctest test but `long`, `verbs`, `deb`
#   asan     gcc + AddressSanitizer/UBSan, same selection minus `fuzz`
#   tsan     clang + ThreadSanitizer, the tests labelled `tsan`
#   clang    clang -Wall -Wextra -Werror build, libFuzzer targets (`fuzz`)
#   cluster  the verbs and DAX suites in soft-RoCE QEMU guests
#            (deploy/cluster/cluster.sh suite), perftest reference beside them
#   deb      the Debian packages (label `deb`, tests/deb: deploy/build-debs.sh,
#            lintian, install into a debootstrap chroot -- or, with no
#            archive to reach, unpacked -- and an engine built against
#            them); the tree is configured, not built (the test builds
#            the packages)
#
#   tests/run.sh                 every stage
#   tests/run.sh native asan     only the named stages
#   FM_TEST_JOBS=N               ctest parallelism (default: nproc)
# Ends with one line "N passed, N failed" over every test of every stage;
# exits non-zero if any stage failed.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2
root=$PWD
jobs=${FM_TEST_JOBS:-$(nproc)}
stages=("$@")
((${#stages[@]})) || stages=(native asan tsan clang deb cluster)

case " ${stages[*]} " in
*" -h "* | *" --help "*)
	sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'
	exit 0
	;;
esac

deploy/install-deps.sh || exit 2

total_pass=0 total_fail=0 failed_stages=()

# configure+build DIR [cmake args...]  (configure only when configure_only=1)
configure_only=0
build() {
	local dir=$1
	shift
	cmake -S "$root" -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@" >"$dir.configure.log" 2>&1 ||
		{ cat "$dir.configure.log"; return 1; }
	((configure_only == 0)) || return 0
	cmake --build "$dir" -j "$jobs" 2>&1 | grep -E 'warning|error|Error' || true
	cmake --build "$dir" -j "$jobs" >/dev/null 2>&1
}

# count "N% tests passed, F tests failed out of T" from a ctest log
tally() {
	local line t f
	line=$(grep -E 'tests passed, [0-9]+ tests? failed out of' "$1" | tail -n 1)
	[[ -n $line ]] || return 0
	f=$(sed -E 's/.* ([0-9]+) tests? failed out of ([0-9]+).*/\1/' <<<"$line")
	t=$(sed -E 's/.* failed out of ([0-9]+).*/\1/' <<<"$line")
	total_pass=$((total_pass + t - f))
	total_fail=$((total_fail + f))
}

# stage NAME DIR "ctest selection" [cmake args...]
stage() {
	local name=$1 dir=$2 sel=$3 rc=0
	shift 3
	echo "=== stage $name: build ($dir) ==="
	mkdir -p build-test
	local t0=$SECONDS
	if ! build "$dir" "$@"; then
		echo "=== stage $name: BUILD FAILED ==="
		failed_stages+=("$name")
		return
	fi
	echo "=== stage $name: ctest $sel ==="
	# shellcheck disable=SC2086
	(cd "$dir" && ctest --output-on-failure -j "$jobs" $sel) 2>&1 | tee "$dir.ctest.log"
	rc=${PIPESTATUS[0]}
	tally "$dir.ctest.log"
	grep -q 'No tests were found' "$dir.ctest.log" && rc=1
	echo "=== stage $name: $([[ $rc == 0 ]] && echo ok || echo FAILED) in $((SECONDS - t0)) s ==="
	[[ $rc == 0 ]] || failed_stages+=("$name")
}

for s in "${stages[@]}"; do
	case $s in
	native) stage native build-test/native "-LE long|verbs|deb" ;;
	asan) stage asan build-test/asan "-LE long|verbs|fuzz|bench|deb" \
		-DFM_SANITIZE=ON -DFM_BENCH=OFF ;;
	tsan) stage tsan build-test/tsan "-L tsan" -DFM_TSAN=ON -DFM_BENCH=OFF \
		-DCMAKE_C_COMPILER=clang ;;
	clang) stage clang build-test/clang "-L fuzz" -DCMAKE_C_COMPILER=clang \
		-DFM_WERROR=ON -DFM_FUZZ=ON ;;
	deb)
		configure_only=1
		stage deb build-test/deb "-L deb" -DFM_BENCH=OFF
		configure_only=0
		;;
	cluster)
		echo "=== stage cluster: soft-RoCE guests ==="
		t0=$SECONDS
		if [[ ! -x deploy/cluster/cluster.sh ]]; then
			echo "=== stage cluster: deploy/cluster/cluster.sh missing ==="
			failed_stages+=(cluster)
			continue
		fi
		[[ -d build-test/native ]] || build build-test/native
		deploy/cluster/cluster.sh suite --build build-test/native 2>&1 | tee build-test/cluster.log
		rc=${PIPESTATUS[0]}
		line=$(grep -E '^[0-9]+ passed, [0-9]+ failed' build-test/cluster.log | tail -n 1)
		if [[ -n $line ]]; then
			total_pass=$((total_pass + $(cut -d' ' -f1 <<<"$line")))
			total_fail=$((total_fail + $(cut -d' ' -f3 <<<"$line")))
		fi
		echo "=== stage cluster: $([[ $rc == 0 ]] && echo ok || echo FAILED) in $((SECONDS - t0)) s ==="
		[[ $rc == 0 ]] || failed_stages+=(cluster)
		;;
	*)
		echo "unknown stage '$s' (native asan tsan clang cluster deb)" >&2
		exit 2
		;;
	esac
done

if ((${#failed_stages[@]})); then
	echo "failed stages: ${failed_stages[*]}"
	((total_fail > 0)) || total_fail=1
fi
echo "$total_pass passed, $total_fail failed"
((${#failed_stages[@]} == 0))
