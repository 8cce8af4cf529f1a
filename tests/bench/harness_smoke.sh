#!/bin/sh
# harness_smoke.sh -- flashmeta-bench runs, and its JSON parses and holds the
# fields tools read.  Never a speed assertion: the figures of a smoke run on a
# shared machine mean nothing.
#   harness_smoke.sh FLASHMETA_BENCH FM_JSON_CHECK
set -eu
bench=$1
check=$2
dir=$(mktemp -d "${TMPDIR:-/tmp}/fm-bench-smoke-XXXXXX")
trap 'rm -rf "$dir"' EXIT INT TERM

# everything a run has, small: 2 clients (both in the hot lock step), file
# volumes, a 2-point sweep, count mode
"$bench" --quick --rounds 1 --count 200 --floor-ops 50 --volume-size 16M \
	--clients 2 --threads 2 --hot 2 --volumes file --workload zipf \
	--sweep-split 0,100 --json "$dir/run.json" >"$dir/run.txt" 2>&1 || {
	cat "$dir/run.txt"
	exit 1
}
grep -q '^== sweep' "$dir/run.txt" || { cat "$dir/run.txt"; exit 1; }
# the lock-manager baseline ran as a variant of its own (decide by message)
grep -q '"variant":"msg"' "$dir/run.json" || { echo "no by-message variant"; exit 1; }
grep -q '^engine, by message' "$dir/run.txt" || { cat "$dir/run.txt"; exit 1; }

p=points.0
v=$p.variants
"$check" "$dir/run.json" \
	benchmark:string format:number method:string \
	params.provider:string params.clients:number params.threads:number \
	params.workload:string params.theta:number params.mix_pct.rs:number \
	params.mix_pct.ws:number params.mix_pct.rt:number params.mix_pct.wt:number \
	params.io_size:number params.grain_size:number params.volume_size:number \
	params.mappings:number params.split_pct:array params.split_layout:string \
	params.split_run:number \
	params.hot_clients:number params.rounds:number params.warmup_rounds:number \
	params.batch_ms:number params.count:number params.floor_ops:number \
	params.seed:number params.volumes:string params.typical:string \
	machine.cpus:number machine.cpu_model:string machine.kernel:string \
	machine.provider:string \
	$p.split_pct:number $p.split_start_pct.cache:number $p.split_end_pct.nocache:number \
	$p.idle_owner_cpu_ms_per_s:number $p.cache_vs_nocache_ios:number \
	$v.0.variant:string $v.0.ios_per_s:number $v.0.decisions_per_s:number \
	$v.0.owner_cpu_ms_per_1e6_decisions:number $v.0.client_cpu_ms_per_1e6_ios:number \
	$v.0.owner_lock_requests:number $v.0.cache.hit_ratio:number \
	$v.0.cache.bytes_end:number $v.0.cache.ranges_end:number $v.0.agent.fetches:number \
	$v.0.paths.0.case:string $v.0.paths.0.unit:string $v.0.paths.0.n:number \
	$v.0.paths.0.t_min:number $v.0.paths.0.t_typical:number $v.0.paths.0.p99:number \
	$v.0.paths.0.p99_9:number $v.0.paths.0.t_max:number $v.0.paths.0.floor:string \
	$v.1.variant:string $v.1.ios_per_s:number $v.2.variant:string $v.2.ios_per_s:number \
	$v.2.cache.ranges_end:number $v.2.cache.bytes_end:number $v.3.variant:string \
	$v.3.ios_per_s:number $v.3.decisions_per_s:number $v.3.agent.fetches:number \
	$v.3.owner_lock_requests:number $v.4.variant:string \
	$p.split_start_pct.nomerge:number $p.nomerge_vs_cache_ranges:number \
	$p.split_start_pct.msg:number $p.cache_vs_msg_decisions:number \
	$p.floors.0.case:string $p.floors.0.t_typical:number $p.floors.3.t_typical:number \
	points.1.split_pct:number points.1.variants.0.ios_per_s:number \
	params.triggers:number $p.triggers.cycles:number $p.triggers.holders:number \
	$p.triggers.ios:number $p.triggers.msg_rtt_t_typical:number \
	$p.triggers.trigger_vs_msg_rtt:number \
	$p.triggers.commands.0.case:string $p.triggers.commands.0.t_min:number \
	$p.triggers.commands.0.t_typical:number $p.triggers.commands.0.p99:number \
	$p.triggers.commands.0.p99_9:number $p.triggers.commands.1.t_typical:number \
	$p.triggers.commands.2.t_typical:number $p.triggers.commands.2.p99_9:number \
	$p.triggers.commands.3.t_typical:number $p.triggers.commands.4.t_typical:number \
	$v.0.ops_per_io.ios:number $v.0.ops_per_io.reads:number $v.0.ops_per_io.cas:number \
	$v.0.ops_per_io.client_msgs:number $v.0.ops_per_io.owner_msgs:number \
	$v.0.ops_per_io.fetches:number $v.0.ops_per_io.split_commits_sent:number \
	$v.1.ops_per_io.reads:number $v.2.ops_per_io.cas:number \
	$v.3.ops_per_io.reads:number $v.3.ops_per_io.client_msgs:number \
	$v.3.ops_per_io.owner_msgs:number $v.3.ops_per_io.split_queries:number \
	$v.3.ops_per_io.unlock_msgs:number $v.0.agent.commits_sent:number \
	$v.0.owner_split_acks:number $v.3.owner_split_queries:number
grep -q '^trigger and release round trip' "$dir/run.txt" || { cat "$dir/run.txt"; exit 1; }
grep -q '^operations per I/O' "$dir/run.txt" || { cat "$dir/run.txt"; exit 1; }

# the contention sweep: 1 and 2 contenders on the hot grain, beside the
# plain CAS spin; its JSON holds the fields tools read, and mutual
# exclusion held (a violation is a broken lock, not a slow one)
"$bench" --quick --rounds 1 --batch-ms 50 --sweep-contention 1,2 \
	--json "$dir/contend.json" >"$dir/contend.txt" 2>&1 || {
	cat "$dir/contend.txt"
	exit 1
}
grep -q '^== contention' "$dir/contend.txt" || { cat "$dir/contend.txt"; exit 1; }
c=contention.1.units
"$check" "$dir/contend.json" \
	benchmark:string mode:string method:string params.contention_k:array \
	machine.cpus:number contention.0.k:number contention.1.k:number \
	contention.1.lock_vs_spin_goodput:number contention.1.loadavg_start:string \
	$c.0.unit:string $c.0.goodput_acq_per_s:number $c.0.acquisitions:number \
	$c.0.atomics_per_acquisition:number $c.0.lock_requests_per_acquisition:number \
	$c.0.violations:number $c.0.acquire.t_typical:number $c.0.acquire.p99:number \
	$c.1.unit:string $c.1.goodput_acq_per_s:number $c.1.atomics_per_acquisition:number \
	$c.1.violations:number $c.1.acquire.p99:number
if grep -q '"violations":[1-9]' "$dir/contend.json"; then
	echo "contention: mutual exclusion violated"
	cat "$dir/contend.txt"
	exit 1
fi

# the suite in its quick form: every phase's tables and JSON in the folder,
# the summary with each path beside its transport and device floors, one
# suite.json holding the machine and every phase; the PNGs when gnuplot is
# there.  No figure is checked, only that it is there.
"$bench" --suite --quick --rounds 1 --batch-ms 50 --floor-ops 50 --volume-size 16M \
	--ref-atomic-ns 20000 --ref-read-ns 30000 --ref-send-ns 12000 \
	--results "$dir/suite" >"$dir/suite.txt" 2>&1 || {
	cat "$dir/suite.txt"
	exit 1
}
for f in io split contention cache; do
	[ -s "$dir/suite/$f.txt" ] && [ -s "$dir/suite/$f.json" ] || {
		echo "suite: no $f.txt or $f.json"
		ls -l "$dir/suite"
		exit 1
	}
done
grep -q '^suite: .*elapsed' "$dir/suite.txt" || { cat "$dir/suite.txt"; exit 1; }
grep -q 'device floor' "$dir/suite/summary.txt" || { cat "$dir/suite/summary.txt"; exit 1; }
"$check" "$dir/suite/suite.json" \
	benchmark:string mode:string command:string elapsed_s:number params.rounds:number \
	machine.cpus:number machine.cpu_model:string machine.kernel:string \
	machine.provider:string machine.loadavg_before:string machine.loadavg_after:string \
	device_floor.ib_atomic_lat_ns:number device_floor.ib_read_lat_ns:number \
	device_floor.ib_send_lat_ns:number \
	summary.0.case:string summary.0.t_typical:number summary.0.ratio_to_floor:number \
	summary.0.ratio_to_device_floor:number transport_ops.0.t_typical:number \
	transport_ops.0.ratio_to_device:number cache_points.0.volume_size:number \
	cache_points.0.bytes_cache:number cache_points.0.ranges_nomerge:number \
	phases.io.points.0.variants.0.ios_per_s:number phases.split.points.1.split_pct:number \
	phases.contention.contention.1.k:number phases.cache.points.0.split_pct:number \
	ops_per_io.0.reads:number ops_per_io.0.cas:number ops_per_io.0.client_msgs:number \
	ops_per_io.3.client_msgs:number ops_per_io.3.owner_msgs:number \
	triggers.cycles:number triggers.holders:number triggers.msg_rtt_t_typical:number \
	triggers.commands.0.t_typical:number triggers.commands.2.p99:number \
	phases.io.points.0.triggers.commands.1.t_typical:number
grep -q '^trigger and release round trip' "$dir/suite/summary.txt" &&
	grep -q '^operations per I/O' "$dir/suite/summary.txt" || {
	cat "$dir/suite/summary.txt"
	exit 1
}
if command -v gnuplot >/dev/null 2>&1; then
	for png in io/cdf-split50.png split/throughput-vs-split.png split/decisions-vs-split.png \
		contention/goodput-vs-k.png cache/cache-vs-volume.png cache/cache-vs-ranges.png; do
		[ -s "$dir/suite/plots/$png" ] || { echo "suite: no plots/$png"; exit 1; }
	done
fi
# a run never writes over another; the suite's options go with --suite only
if "$bench" --suite --quick --results "$dir/suite" >"$dir/again.txt" 2>&1; then
	echo "suite: a second run into an existing folder was accepted"
	exit 1
fi
if "$bench" --results "$dir/x" >/dev/null 2>&1; then
	echo "--results without --suite was accepted"
	exit 1
fi

# the checker itself fails on what it must fail on
printf '{"a": [1, 2,]}' >"$dir/bad.json"
if "$check" "$dir/bad.json" >/dev/null 2>&1; then
	echo "fm-json-check accepted invalid JSON"
	exit 1
fi
if "$check" "$dir/run.json" params.no_such_field >/dev/null 2>&1; then
	echo "fm-json-check accepted a missing field"
	exit 1
fi
echo "harness smoke: ok"
