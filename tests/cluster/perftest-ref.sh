#!/usr/bin/env bash
# perftest-ref.sh -- perftest latency reference on rxe: same device, and across nodes.
# nodes: 2
# timeout: 400
# report: ^(path|local|remote) 
#
# Runs ib_atomic_lat (CAS, FAA), ib_read_lat, ib_write_lat and ib_send_lat with
# PERFTEST_ITERS (default 1000) iterations:
#   local  server and client on node 0's rxe device (both processes in one guest)
#   remote server on node 0, client on node 1 (only with 2+ nodes)
# One measurement at a time (the guests share the host's CPUs).
# Local WRITE/SEND are ping-pongs: both processes busy-poll, and in a 1-vCPU
# guest every step waits for a scheduler tick (~4 ms); run with --smp 2 for a
# meaningful local ping-pong figure (~20-30 us).  READ and atomics (one-sided,
# passive server: flashmeta's data path) are fine with 1 vCPU.  Node 0 prints a
# perftest-style table and writes $FM_RESULTS/perftest-ref.json (the raw rows,
# the run's parameters), which benchmarks use as their same-run baseline.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

iters=${PERFTEST_ITERS:-1000}
dev=$FM_RDMA_DEV
gid=1 # rxe GID 1: the IPv4-mapped RoCEv2 GID of the netdev's address
rows="$FM_RESULTS/perftest-ref.rows.node$FM_NODE_INDEX"
: >"$rows"

tests=(
	"atomic_cas ib_atomic_lat -A CMP_AND_SWAP"
	"atomic_faa ib_atomic_lat -A FETCH_AND_ADD"
	"read ib_read_lat"
	"write ib_write_lat ${PERFTEST_PINGPONG_OPTS:-}"
	"send ib_send_lat ${PERFTEST_PINGPONG_OPTS:-}"
)

# measure PATH NAME PORT SERVER_IP CMD...: run the client, parse its result row
# (#bytes #iterations t_min t_max t_typical t_avg t_stdev 99% 99.9%).  Retries
# only while the server is not listening yet.
measure() {
	local path=$1 name=$2 port=$3 server=$4 out rc start=$SECONDS
	shift 4
	while :; do
		rc=0
		out=$(fm_run 90 "$@" -d "$dev" -x "$gid" -n "$iters" -p "$port" -F "$server" 2>&1) || rc=$?
		((rc == 0)) && break
		if ! grep -q "Couldn't connect" <<<"$out" || ((SECONDS - start > 90)); then
			fm_die "$path $name client failed (rc $rc): $(tail -n5 <<<"$out")"
		fi
		sleep 0.5
	done
	awk -v path="$path" -v name="$name" '
		$1 ~ /^[0-9]+$/ && NF >= 9 {
			printf "{\"path\":\"%s\",\"test\":\"%s\",\"bytes\":%s,\"iters\":%s,\"t_min_us\":%s,\"t_max_us\":%s,\"t_typical_us\":%s,\"t_avg_us\":%s,\"t_stdev_us\":%s,\"p99_us\":%s,\"p999_us\":%s}\n",
				path, name, $1, $2, $3, $4, $5, $6, $7, $8, $9; found = 1 }
		END { exit !found }' <<<"$out" >>"$rows" || fm_die "$path $name: no result row in: $(tail -n5 <<<"$out")"
}

# serve NAME PORT CMD...: one server instance in the background (pid in srv_pid).
serve() {
	local name=$1 port=$2
	shift 2
	fm_run 120 "$@" -d "$dev" -x "$gid" -n "$iters" -p "$port" -F >"/tmp/srv-$name.log" 2>&1 &
	srv_pid=$!
}

port=18515
# Phase 1: both processes on node 0.
if ((FM_NODE_INDEX == 0)); then
	for t in "${tests[@]}"; do
		read -r name cmd opts <<<"$t"
		# shellcheck disable=SC2086  # opts is a word list
		serve "$name" "$port" "$cmd" $opts
		# shellcheck disable=SC2086
		measure local "$name" "$port" "$(fm_addr 0)" "$cmd" $opts
		wait "$srv_pid" || fm_die "local $name server failed: $(cat "/tmp/srv-$name.log")"
		port=$((port + 1))
	done
fi

# Phase 2: server on node 0, client on node 1; the other nodes only wait.
if ((FM_NODE_COUNT >= 2)); then
	port=18600
	for t in "${tests[@]}"; do
		read -r name cmd opts <<<"$t"
		fm_barrier "perftest-$name" 300
		if ((FM_NODE_INDEX == 0)); then
			# shellcheck disable=SC2086
			serve "$name" "$port" "$cmd" $opts
			wait "$srv_pid" || fm_die "remote $name server failed: $(cat "/tmp/srv-$name.log")"
		elif ((FM_NODE_INDEX == 1)); then
			# shellcheck disable=SC2086
			measure remote "$name" "$port" "$(fm_addr 0)" "$cmd" $opts
		fi
		port=$((port + 1))
	done
fi
fm_barrier perftest-done 300
((FM_NODE_INDEX == 0)) || exit 0

# Report: perftest-style table and JSON.
all=$(cat "$FM_RESULTS"/perftest-ref.rows.node*)
printf '%-7s %-11s %7s %12s %12s %16s %12s %10s %12s\n' path test '#bytes' '#iterations' \
	't_min[usec]' 't_typical[usec]' 't_avg[usec]' '99%[usec]' '99.9%[usec]'
sed -E 's/[{}"]//g; s/,/ /g' <<<"$all" | awk '{
	for (i = 1; i <= NF; i++) { split($i, kv, ":"); v[kv[1]] = kv[2] }
	printf "%-7s %-11s %7s %12s %12.2f %16.2f %12.2f %10.2f %12.2f\n", v["path"], v["test"],
		v["bytes"], v["iters"], v["t_min_us"], v["t_typical_us"], v["t_avg_us"], v["p99_us"], v["p999_us"] }'
{
	printf '{"tool":"perftest","device":"%s","gid_index":%d,"iters":%d,"nodes":%d,"vcpus_per_node":%d,' \
		"$dev" "$gid" "$iters" "$FM_NODE_COUNT" "$(nproc)"
	printf '"kernel":"%s","transport":"rxe over virtio-net (QEMU TCG)","results":[\n' "$FM_KERNEL_VERSION"
	sed '$!s/$/,/' <<<"$all"
	printf ']}\n'
} >"$FM_RESULTS/perftest-ref.json"
rm -f "$FM_RESULTS"/perftest-ref.rows.node*
echo "json: $FM_RESULTS/perftest-ref.json"
