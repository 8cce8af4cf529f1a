#!/usr/bin/env bash
# pmem-devdax.sh -- the emulated NVDIMM as device-DAX: maps, is pmem, registers for RDMA.
# nodes: 1
# pmem: devdax
# timeout: 200
#
# The owner daemon's layout: /dev/dax0.0 mapped and registered with ibv_reg_mr
# on rxe0 (which fsdax files cannot do).  Project binaries that take a devdax
# path can be hooked in the same way as in pmem-dax.sh (FM_PMEM_DEVDAX_TESTS).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

[[ "$FM_PMEM_MODE" == devdax && -c "$FM_PMEM_PATH" ]] ||
	fm_die "run with --pmem devdax (FM_PMEM_MODE='$FM_PMEM_MODE' FM_PMEM_PATH='$FM_PMEM_PATH')"
ns=$(fm_run 30 ndctl list -N)
echo "$ns"
grep -q '"mode":"devdax"' <<<"$ns" || fm_die "ndctl: no devdax namespace"

if command -v fm-pmem-probe >/dev/null; then
	fm_run 60 fm-pmem-probe "$FM_PMEM_PATH" --expect-pmem --expect-reg-mr ok ||
		fm_die "fm-pmem-probe on $FM_PMEM_PATH"
else
	fm_skip "fm-pmem-probe not in the guest image (no C compiler on the host?)"
fi

for t in ${FM_PMEM_DEVDAX_TESTS:-}; do
	bin="$FM_BUILD/bin/$t"
	[[ -x "$bin" ]] || { echo "skip: $bin not built"; continue; }
	echo "run: $bin $FM_PMEM_PATH"
	fm_run 300 "$bin" "$FM_PMEM_PATH" || fm_die "$t failed on $FM_PMEM_PATH"
done
echo "pmem-devdax: ok"
