#!/bin/sh
# pmem_smoke.sh -- fm-bench-pmem runs, prints its method and the page faults
# beside its rows, and its JSON parses and holds the fields tools read
# (the fault counts, the ratios to the baselines, the method).  Never a
# speed assertion: the figures of a smoke run on a shared machine mean
# nothing.
#   pmem_smoke.sh FM_BENCH_PMEM FM_JSON_CHECK
set -eu
bench=$1
check=$2
base=${TMPDIR:-/tmp}
[ -d /dev/shm ] && [ -w /dev/shm ] && base=/dev/shm
dir=$(mktemp -d "$base/fm-bench-pmem-smoke-XXXXXX")
trap 'rm -rf "$dir"' EXIT INT TERM

"$bench" --quick --rounds 1 --samples 3 --dir "$dir" --json "$dir/pmem.json" \
	>"$dir/pmem.txt" 2>&1 || {
	cat "$dir/pmem.txt"
	exit 1
}
for want in '^# method:' '^split_commit/1 ' '^raw_persist/4096 ' '^open_1TiB_64KiB ' \
	'^map_read_baseline ' 'page faults: minor [0-9]* (.*/sample), major [0-9]*; / raw_persist ' \
	'/ map_read_baseline '; do
	grep -q -- "$want" "$dir/pmem.txt" || {
		echo "pmem smoke: no line matching '$want' in the text output"
		cat "$dir/pmem.txt"
		exit 1
	}
done

# results: 7 batch sizes x (split_commit, split_many, raw_persist), then
# open_1TiB_64KiB and map_read_baseline
r=results.0
"$check" "$dir/pmem.json" \
	benchmark:string params.dir:string params.persist_mode:string params.is_pmem:number \
	params.raw_is_pmem:number params.rounds:number params.recovery_rounds:number \
	params.warmup_rounds:number params.samples_per_round:number params.warmup_batches:number \
	params.typical:string \
	params.baselines:string params.raw_prefault:string params.page_faults:string \
	params.method:string \
	$r.case:string $r.unit:string $r.n:number $r.t_typical:number $r.p99:number \
	$r.batch:number $r.bits_per_s:number $r.commits_per_s:number \
	$r.bits_per_s_typical:number $r.rounds:number $r.pooled_median:number \
	$r.minflt:number $r.majflt:number $r.minflt_per_sample:number \
	$r.majflt_per_sample:number $r.ratio_to_raw_persist:number \
	$r.ratio_to_raw_persist_round_min:number $r.ratio_to_raw_persist_round_max:number \
	results.2.case:string results.2.minflt:number results.2.minflt_per_sample:number \
	results.21.case:string results.21.minflt:number results.21.majflt:number \
	results.21.ratio_to_map_read_baseline:number results.22.case:string \
	results.22.minflt_per_sample:number
for want in '"case":"raw_persist/1"' '"case":"split_many/4096"' '"case":"open_1TiB_64KiB"' \
	'"case":"map_read_baseline"'; do
	grep -qF -- "$want" "$dir/pmem.json" || {
		echo "pmem smoke: the JSON has no $want"
		exit 1
	}
done
echo "pmem smoke: ok"
