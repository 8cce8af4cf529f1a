#!/usr/bin/env bash
# run-verbs.sh -- flashmeta-bench --suite over verbs in a soft-RoCE guest,
# beside perftest on the same rxe device: ib_atomic_lat (CAS, 8 B),
# ib_read_lat (64 B, the size of the agent's bitmap READ) and ib_send_lat
# (2 B, perftest's default: a one-way figure, half a round trip), each
# measured just before and just after the suite.  The "before" t_typical
# goes to the suite as --ref-atomic-ns / --ref-read-ns / --ref-send-ns, so
# its summary shows each path as a ratio to its device floor; the "after"
# figures say how far the device drifted over the run.
#
#   deploy/cluster/cluster.sh run --smp 2 --nodes 1 --timeout 1500 \
#       [--build DIR] -- bench/harness/run-verbs.sh [flashmeta-bench options]
#
# One node: the owner, the floor server, the client processes and perftest
# all on node 0's rxe0 through its own address; --smp 2 so a ping-pong's two
# ends need not share one vCPU.  The defaults are cut for TCG, where every
# verb costs tens to hundreds of microseconds and the pre-split of a 64 MiB
# volume alone took minutes: --volume-size 16M --threads 1 --rounds 3
# --batch-ms 300 --floor-ops 200; arguments given here are appended (a later
# option wins).  --threads 2 works (a --quick run: 281 s); before eaff3c4 its
# pre-split failed with -ENOSPC, "endpoint has 4 lanes already": the agent
# abandoned lanes on a clock-arithmetic wrap and leaked them.
# The suite writes its folder in the guest's /tmp (not through 9p while it
# measures), adds perftest's output and the before/after table to it, and
# copies it to $FM_RESULTS/bench-suite-<UTC timestamp>-verbs.  A benchmark,
# not a test: it lives here, not in tests/cluster/, so `cluster.sh suite`
# does not run it.  The guest has no gnuplot: the plots' .dat and .gp files
# come back; render them on the host (bench/harness/README.md, "The suite").
set -euo pipefail
source "$FM_SRC/tests/cluster/lib.sh"

bin=$FM_BUILD/bin/flashmeta-bench
[[ -x $bin ]] || fm_skip "no $bin (build the flashmeta-bench target first)"
for t in ib_atomic_lat ib_read_lat ib_send_lat; do
	command -v "$t" >/dev/null || fm_skip "perftest's $t is not in the guest image"
done
((FM_NODE_INDEX == 0)) || exit 0

port=18800
stamp=$(date -u +%Y%m%dT%H%M%SZ)
dir=/tmp/bench-suite-$stamp-verbs
ptxt=/tmp/perftest-$stamp.txt
: >"$ptxt"
source "$FM_SRC/bench/common/perftest.sh"

perftest_all() {
	perf_typ "cas-$1" ib_atomic_lat -A CMP_AND_SWAP
	cas=$typ_ns
	perf_typ "read-$1" ib_read_lat -s 64
	read=$typ_ns
	perf_typ "send-$1" ib_send_lat
	send=$typ_ns
	fm_log "perftest $1: ib_atomic_lat CAS ${cas} ns, ib_read_lat 64 B ${read} ns," \
		"ib_send_lat ${send} ns (t_typical)"
}

perftest_all before
cas0=$cas read0=$read send0=$send
export FM_RDMA_DEV
rc=0
fm_run 1300 "$bin" --provider verbs --addr "$ip:7471" --device "$dev" \
	--volume-size 16M --threads 1 --rounds 3 --batch-ms 300 --floor-ops 200 \
	--ref-atomic-ns "$cas0" --ref-read-ns "$read0" --ref-send-ns "$send0" \
	--suite --results "$dir" "$@" || rc=$?
perftest_all after

if [[ -d $dir ]]; then
	cp "$ptxt" "$dir/perftest.txt"
	{
		echo "perftest on $dev, t_typical [nsec] ($iters iterations each), before and after the suite:"
		printf '%-28s %12s %12s\n' "" before after
		printf '%-28s %12d %12d\n' "ib_atomic_lat CAS" "$cas0" "$cas"
		printf '%-28s %12d %12d\n' "ib_read_lat 64 B" "$read0" "$read"
		printf '%-28s %12d %12d\n' "ib_send_lat (one-way)" "$send0" "$send"
		echo "(the suite's device floor: the 'before' figures)"
	} | tee "$dir/perftest-before-after.txt"
	cp -r "$dir" "$FM_RESULTS/" || fm_die "copy $dir to $FM_RESULTS"
	echo "results: $FM_RESULTS/$(basename "$dir")"
fi
((rc == 0)) || fm_die "flashmeta-bench --suite exited $rc"
