#!/usr/bin/env bash
# pmem-dax.sh -- the emulated NVDIMM comes up as fsdax (ext4 -o dax) on node 0.
# nodes: 1
# pmem: fsdax
# timeout: 400
# report: ^(is_pmem|persist_64B_ns|ok:|split_commit/|raw_persist/|open_1TiB|map_read)
#
# Checks: ndctl sees an fsdax namespace, /mnt/pmem is mounted with dax, a file
# there maps with MAP_SYNC and libpmem says is_pmem=1 (fm-pmem-probe, built into
# the guest image), and ibv_reg_mr on that mapping fails as documented for rxe
# (fsdax memory cannot be pinned; use devdax for RDMA -- see pmem-devdax.sh).
#
# Hook for the project's pmem tests: every binary named in FM_PMEM_TESTS
# (default: test_pmem_store test_pmem_crash test_pmem_powerfail) that exists in $FM_BUILD/bin runs
# with FM_PMEM_DIR=$FM_PMEM_PATH (a fresh directory on the DAX mount); missing
# ones are skipped with a message.  Args: FM_PMEM_TEST_ARGS_<name> (default for
# test_pmem_crash: --iterations 200).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

[[ "$FM_PMEM_MODE" == fsdax && -n "$FM_PMEM_PATH" ]] ||
	fm_die "run with --pmem fsdax (FM_PMEM_MODE='$FM_PMEM_MODE')"

ns=$(fm_run 30 ndctl list -N)
echo "$ns"
grep -q '"mode":"fsdax"' <<<"$ns" || fm_die "ndctl: no fsdax namespace"
mnt=$(grep " $FM_PMEM_PATH " /proc/mounts) || fm_die "$FM_PMEM_PATH not mounted"
echo "mount: $mnt"
grep -qw dax <<<"$mnt" || fm_die "$FM_PMEM_PATH not mounted with -o dax"

if command -v fm-pmem-probe >/dev/null; then
	fm_run 60 fm-pmem-probe "$FM_PMEM_PATH" --expect-pmem --expect-reg-mr fail ||
		fm_die "fm-pmem-probe on $FM_PMEM_PATH"
else
	fm_log "fm-pmem-probe not in the guest image (no C compiler on the host?): MAP_SYNC probe skipped"
fi

# The project's pmem tests, on the DAX mount.
ran=0
for t in ${FM_PMEM_TESTS:-test_pmem_store test_pmem_crash test_pmem_powerfail}; do
	bin="$FM_BUILD/bin/$t"
	if [[ ! -x "$bin" ]]; then
		echo "skip: $bin not built"
		continue
	fi
	dir="$FM_PMEM_PATH/$t"
	mkdir -p "$dir"
	argvar="FM_PMEM_TEST_ARGS_$t"
	default_args=""
	[[ "$t" == test_pmem_crash ]] && default_args="--iterations 200" # emulated: keep it short
	read -r -a args <<<"${!argvar:-$default_args}"
	echo "run: FM_PMEM_DIR=$dir $bin ${args[*]}"
	FM_PMEM_DIR=$dir fm_run 300 "$bin" "${args[@]}" || fm_die "$t failed on $FM_PMEM_PATH"
	ran=$((ran + 1))
done
((ran > 0)) || fm_skip "no project pmem test binary in $FM_BUILD/bin"

# Group-commit throughput and recovery time on real DAX (issue: >= 10^6
# durable split bits/s), with the raw libpmem baseline of the same run.
bench="$FM_BUILD/bin/fm-bench-pmem"
if [[ -x "$bench" ]]; then
	mkdir -p "$FM_PMEM_PATH/bench"
	fm_run 300 "$bench" --quick --dir "$FM_PMEM_PATH/bench" \
		--json "$FM_RESULTS/pmem-bench-fsdax.json" || fm_die "fm-bench-pmem on $FM_PMEM_PATH"
fi
echo "pmem-dax: ok ($ran project test binaries run on $FM_PMEM_PATH)"
