#!/usr/bin/env bash
# perftest.sh -- perftest's latency on this guest's rxe, for the benchmarks'
# guest runs (bench/agent/run-verbs.sh, bench/harness/run-verbs.sh): source
# it after tests/cluster/lib.sh.  It uses node 0's RDMA device and address,
# GID 1 (the IPv4-mapped RoCEv2 GID of the netdev's address, as
# tests/cluster/perftest-ref.sh finds it), PERFTEST_ITERS iterations (1000),
# ports from `port` up (each run takes the next) and appends every client's
# output to the file `ptxt`, both set by the caller.
dev=$FM_RDMA_DEV
gid=1
ip=$(fm_addr 0)
iters=${PERFTEST_ITERS:-1000}

# perf_typ NAME CMD...: one perftest server + client on this node; sets
# typ_ns to the client's t_typical in ns (row: #bytes #iter t_min t_max
# t_typical ...)
perf_typ() {
	local name=$1 out rc srv start=$SECONDS
	shift
	fm_run 120 "$@" -d "$dev" -x "$gid" -n "$iters" -p "$port" -F >"/tmp/srv-$name.log" 2>&1 &
	srv=$!
	while :; do
		rc=0
		out=$(fm_run 90 "$@" -d "$dev" -x "$gid" -n "$iters" -p "$port" -F "$ip" 2>&1) || rc=$?
		((rc == 0)) && break
		if ! grep -q "Couldn't connect" <<<"$out" || ((SECONDS - start > 90)); then
			fm_die "$name client failed (rc $rc): $(tail -n5 <<<"$out")"
		fi
		sleep 0.5
	done
	wait "$srv" || fm_die "$name server failed: $(cat "/tmp/srv-$name.log")"
	port=$((port + 1))
	{ echo "== $name: $*"; echo "$out"; } >>"$ptxt"
	typ_ns=$(awk '$1 ~ /^[0-9]+$/ && NF >= 9 { printf "%.0f\n", $5 * 1000; exit }' <<<"$out")
	[[ -n $typ_ns ]] || fm_die "$name: no result row: $(tail -n5 <<<"$out")"
}
