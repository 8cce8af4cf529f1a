#!/usr/bin/env bash
# run-verbs.sh -- fm-bench-agent over verbs in a soft-RoCE guest, beside
# perftest on the same rxe device: ib_atomic_lat (CAS, 8 B) and ib_read_lat
# (64 B, the size of the agent's bitmap READ), each measured just before and
# just after the benchmark.  The "before" t_typical goes to the benchmark as
# --ref-atomic-ns / --ref-read-ns (it adds ratio rows to its table); at the
# end the agent's lock and miss are set against both, from its JSON.
#
#   deploy/cluster/cluster.sh run --smp 2 --nodes 1 --timeout 1500 \
#       [--build DIR] -- bench/agent/run-verbs.sh [fm-bench-agent options]
#
# One node: the owner, the floor server, both client processes and perftest
# all on node 0's rxe0 through its own address (perftest-ref.sh's "local"
# path); --smp 2 so a client and its peer need not share one vCPU.  The
# defaults are cut for TCG, where every operation costs tens of
# microseconds: --rounds 10 --batch 300 --commit-batch 50 --cpu-ops 20000;
# arguments given here are appended (a later option wins).  Output: the
# benchmark's table on node 0's stdout, $FM_RESULTS/bench-agent.json and
# $FM_RESULTS/bench-agent-perftest.txt.  A benchmark, not a test: it lives
# here, not in tests/cluster/, so `cluster.sh suite` does not run it.
set -euo pipefail
source "$FM_SRC/tests/cluster/lib.sh"

bin=$FM_BUILD/bin/fm-bench-agent
[[ -x $bin ]] || fm_skip "no $bin (build the fm-bench-agent target first)"
command -v ib_atomic_lat >/dev/null || fm_skip "perftest is not in the guest image"
((FM_NODE_INDEX == 0)) || exit 0

port=18700
ptxt=$FM_RESULTS/bench-agent-perftest.txt
: >"$ptxt"
source "$FM_SRC/bench/common/perftest.sh"

perftest_pair() {
	perf_typ "cas-$1" ib_atomic_lat -A CMP_AND_SWAP
	cas=$typ_ns
	perf_typ "read-$1" ib_read_lat -s 64
	read=$typ_ns
	fm_log "perftest $1: ib_atomic_lat CAS ${cas} ns, ib_read_lat 64 B ${read} ns (t_typical)"
}

perftest_pair before
cas0=$cas read0=$read
export FM_RDMA_DEV
rc=0
fm_run 1300 "$bin" --provider verbs --addr "$ip:7471" --device "$dev" \
	--rounds 10 --batch 300 --commit-batch 50 --cpu-ops 20000 \
	--ref-atomic-ns "$cas0" --ref-read-ns "$read0" \
	--json "$FM_RESULTS/bench-agent.json" "$@" || rc=$?
perftest_pair after
((rc == 0)) || fm_die "fm-bench-agent exited $rc"

# typ CASE: t_typical of a result of the benchmark's JSON (one object per case)
typ() {
	sed 's/},{/}\n{/g' "$FM_RESULTS/bench-agent.json" |
		awk -v c="\"case\":\"$1\"" 'index($0, c) {
			sub(/.*"t_typical":/, ""); sub(/,.*/, ""); print; exit }'
}
lock=$(typ "  agent lock alone")
miss=$(typ "agent is_split (miss, READ)")
echo
echo "perftest beside it, t_typical [nsec] ($iters iterations each; $ptxt):"
printf '%-34s %12s %12s %12s %12s\n' "" "agent" "before" "after" "agent/mean"
awk -v l="$lock" -v m="$miss" -v c0="$cas0" -v c1="$cas" -v r0="$read0" -v r1="$read" 'BEGIN {
	printf "%-34s %12.0f %12d %12d %12.2f\n", "lock alone / ib_atomic_lat CAS", l, c0, c1, l / ((c0 + c1) / 2)
	printf "%-34s %12.0f %12d %12d %12.2f\n", "miss / ib_read_lat 64 B", m, r0, r1, m / ((r0 + r1) / 2)
	print "(design targets: lock within 1.15x of ib_atomic_lat, miss within 1.15x of ib_read_lat)" }'
