#!/bin/sh
# cache_smoke.sh -- fm-bench-cache runs, prints its method and summary, and
# its JSON parses and holds the fields tools read (both baselines' ratios,
# both modes, the method).  Never a speed assertion: the figures of a smoke
# run on a shared machine mean nothing.
#   cache_smoke.sh FM_BENCH_CACHE FM_JSON_CHECK
set -eu
bench=$1
check=$2
dir=$(mktemp -d "${TMPDIR:-/tmp}/fm-bench-cache-smoke-XXXXXX")
trap 'rm -rf "$dir"' EXIT INT TERM

# one layout, 10^3 ranges, both modes, tiny rounds
"$bench" --quick --rounds 2 --samples 3 --batch 64 --avg 8 --max-ranges 1000 \
	--json "$dir/cache.json" >"$dir/cache.txt" 2>&1 || {
	cat "$dir/cache.txt"
	exit 1
}
for want in '^# method:' '^## summary' '^bitmap-probe R=1000 rand t=1 tput' \
	'^cache R=1000 rand t=1 lat' '^loop-only R=1000 seq t=2 lat' '/ bitmap-probe '; do
	grep -q -- "$want" "$dir/cache.txt" || {
		echo "cache smoke: no line matching '$want' in the text output"
		cat "$dir/cache.txt"
		exit 1
	}
done

r=results.0
"$check" "$dir/cache.json" \
	benchmark:string params.rounds:number params.warmup_rounds:number \
	params.samples_per_round:number params.warmup_batches:number params.batch:number \
	params.modes:string \
	params.typical:string params.baselines:string params.lat_fence:string \
	params.method:string params.cpus:number params.loadavg_start:string \
	$r.case:string $r.unit:string $r.n:number $r.t_min:number $r.t_typical:number \
	$r.p99:number $r.p99_9:number $r.t_max:number \
	$r.ranges:number $r.grains:number $r.threads:number $r.sequential:number \
	$r.latency_mode:number $r.rounds:number $r.pooled_median:number \
	$r.bytes_per_range:number \
	$r.ratio_to_bitmap:number $r.ratio_to_bitmap_round_min:number \
	$r.ratio_to_bitmap_round_max:number $r.ratio_to_bitmap_probe:number \
	$r.ratio_to_bitmap_probe_round_min:number $r.ratio_to_bitmap_probe_round_max:number
# the rows of both modes and both baselines are there
for want in '"case":"bitmap R=1000 rand t=1 tput"' '"case":"bitmap-probe R=1000 rand t=1 lat"' \
	'"case":"cache R=1000 rand t=1 lat"' '"latency_mode":1' '"latency_mode":0'; do
	grep -qF -- "$want" "$dir/cache.json" || {
		echo "cache smoke: the JSON has no $want"
		exit 1
	}
done
# a bad --mode is a usage error
if "$bench" --mode sideways >/dev/null 2>&1; then
	echo "cache smoke: --mode sideways was accepted"
	exit 1
fi
echo "cache smoke: ok"
