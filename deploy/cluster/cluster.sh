#!/usr/bin/env bash
# cluster.sh -- soft-RoCE test cluster: one QEMU guest per node, rxe on a virtio NIC.
#
# Usage:
#   cluster.sh run   [options] -- SCRIPT [ARGS...]   run SCRIPT on every node
#   cluster.sh shell [options]                       interactive shell on node 0
#   cluster.sh suite [options] [SCRIPT...]           every tests/cluster/*.sh
#   cluster.sh prepare [options]                     fetch kernel, build initramfs
#
# Options:
#   --nodes N          guests to boot (default 1; suite: from each script)
#   --pmem MODE        fsdax|devdax: emulated NVDIMM on the owner nodes
#   --pmem-nodes LIST  owner nodes, space or comma separated (default 0)
#   --pmem-size SIZE   NVDIMM size (default 256M)
#   --kernel SERIES    6.1 (default) or 6.12 (bookworm-security; rxe ATOMIC_WRITE)
#   --build DIR        host build tree shared with the guests (default: build)
#   --results DIR      where results go (default BUILD/cluster-results/<run>)
#   --timeout SEC      per-script timeout inside the guest (default 300)
#   --mem SIZE         guest memory (default 1G)
#   --smp N            vCPUs per guest (default 1)
#   -v, --verbose      copy each guest's serial console to stderr as it runs
#   -h, --help         this text
#
# Each guest runs SCRIPT (a path inside the repository or the build tree) with
# bash, with FM_NODE_INDEX, FM_NODE_COUNT, FM_NODE_ADDRS, FM_RDMA_DEV, FM_NETDEV,
# FM_PMEM_PATH, FM_PMEM_MODE, FM_RESULTS, FM_SRC, FM_BUILD, FM_KERNEL_VERSION set;
# see deploy/cluster/README.md.  Exit status: 0 if every node exited 0, 77 if
# every node exited 0 or 77 (skipped) and one did skip, 1 otherwise.
#
# Environment: ACCEL (default tcg,thread=multi; e.g. ACCEL=kvm on a real KVM
# host), QEMU (default qemu-system-x86_64), FM_CLUSTER_CACHE, FM_KERNEL,
# FM_OFFLINE=1 (no apt lookups; use the cached kernel), FM_KERNEL_APPEND (extra
# kernel command line, e.g. "loglevel=7" to see the boot), FM_HOST_GRACE (seconds
# past --timeout before the host kills QEMU; default 120; the guest's own
# watchdog powers it off at --timeout + 60).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)

die() { echo "cluster: $*" >&2; exit 2; }
say() { echo "cluster: $*" >&2; }
usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }

# --- options -------------------------------------------------------------------
cmd=${1:-}
[[ -n "$cmd" ]] || { usage >&2; exit 2; }
shift
case "$cmd" in
-h | --help | help) usage; exit 0 ;;
run | shell | suite | prepare) ;;
*) die "unknown command '$cmd' (run, shell, suite, prepare; --help)" ;;
esac

nodes="" pmem_mode="" pmem_nodes="0" pmem_size=256M kernel=${FM_KERNEL:-6.1}
build="" results="" timeout=300 mem=1G smp=1 verbose=0
script_args=()
while (($#)); do
	case "$1" in
	--nodes) nodes=$2; shift 2 ;;
	--pmem) pmem_mode=$2; shift 2 ;;
	--pmem-nodes) pmem_nodes=${2//,/ }; shift 2 ;;
	--pmem-size) pmem_size=$2; shift 2 ;;
	--kernel) kernel=$2; shift 2 ;;
	--build) build=$2; shift 2 ;;
	--results) results=$2; shift 2 ;;
	--timeout) timeout=$2; shift 2 ;;
	--mem) mem=$2; shift 2 ;;
	--smp) smp=$2; shift 2 ;;
	-v | --verbose) verbose=1; shift ;;
	-h | --help) usage; exit 0 ;;
	--) shift; script_args=("$@"); break ;;
	-*) die "unknown option $1 (--help)" ;;
	*) script_args=("$@"); break ;;
	esac
done
[[ -z "$nodes" || "$nodes" =~ ^[1-9][0-9]?$ ]] || die "--nodes wants 1..99"
[[ -z "$pmem_mode" || "$pmem_mode" == fsdax || "$pmem_mode" == devdax ]] ||
	die "--pmem wants fsdax or devdax"
[[ "$timeout" =~ ^[0-9]+$ ]] || die "--timeout wants seconds"

if [[ -z "$build" ]]; then
	build="$repo/build"
fi
mkdir -p "$build"
build=$(realpath "$build")

accel=${ACCEL:-tcg,thread=multi}
qemu=${QEMU:-qemu-system-x86_64}
command -v "$qemu" >/dev/null || die "$qemu not found (run deploy/install-deps.sh)"

# --- kernel + initramfs --------------------------------------------------------
prepare() {
	kdir=$("$here/kernel.sh" "$kernel") || die "kernel fetch failed"
	kimg="$kdir/$(cat "$kdir/kernel")"
	initrd=$("$here/initramfs.sh" "$kdir" "$build") || die "initramfs build failed"
}

# --- helpers -------------------------------------------------------------------
free_udp_port() {
	local p
	for _ in $(seq 1 100); do
		p=$((20000 + RANDOM % 40000))
		[[ -z "$(ss -Hlun "sport = :$p" 2>/dev/null)" ]] && { echo "$p"; return 0; }
	done
	die "no free UDP port found"
}

# Path of SCRIPT as the guests see it (same absolute path as on the host).
resolve_script() {
	local s=$1 p
	if [[ -e "$s" ]]; then
		p=$(realpath "$s")
	elif [[ -e "$repo/$s" ]]; then
		p=$(realpath "$repo/$s")
	else
		die "script $s not found"
	fi
	[[ "$p" == "$repo"/* || "$p" == "$build"/* ]] ||
		die "script $p is outside the shared trees ($repo, $build)"
	echo "$p"
}

# Header comment value of a test script: `# nodes: 2`, `# pmem: devdax`...
header() { sed -n "1,30s/^# *$2: *\\([^ ]*\\).*/\\1/p" "$1" | head -n1; }
# header_line SCRIPT KEY: the whole value of a "# key: ..." header line.
header_line() { sed -n "1,30s/^# *$2: *//p" "$1" | head -n1; }

# stop_qemus: end the QEMUs in pids[] (the caller's array): TERM, then KILL
# after 5 s (a stopped or wedged QEMU ignores TERM), then reap them.
stop_qemus() {
	local p i
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	for ((i = 0; i < 50; i++)); do
		local alive=0
		for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
		((alive)) || break
		sleep 0.1
	done
	for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
}

# --- one cluster run -----------------------------------------------------------
# run_cluster MODE NODES SCRIPT ARGS...; MODE is run or shell.  Sets run_status.
run_cluster() {
	local mode=$1 n=$2 script=$3
	shift 3
	local -a args=("$@")
	local i rdir addrs="" ports=() pids=() vde_pid=""
	local guest_timeout=$((timeout + 60)) host_timeout=$((timeout + ${FM_HOST_GRACE:-120}))
	[[ "$mode" == shell ]] && { guest_timeout=$((24 * 3600)); host_timeout=$((guest_timeout + 60)); }

	rdir=${results:-"$build/cluster-results/$cmd-$(date +%Y%m%d-%H%M%S)-$$"}
	mkdir -p "$rdir/.fm"
	rdir=$(realpath "$rdir")
	[[ "$rdir$repo$build" != *,* ]] || die "paths with commas cannot be passed to QEMU: $rdir $repo $build"
	# A reused results directory: no stale exit codes or barrier files.
	rm -rf "$rdir/.fm/sync" "$rdir"/node*.{rc,out,err,boot,console}
	mkdir -p "$rdir/.fm/sync"
	for ((i = 0; i < n; i++)); do addrs+="${addrs:+ }10.77.0.$((i + 1))"; done

	{
		printf 'FM_NODE_COUNT=%q\n' "$n"
		printf 'FM_NODE_ADDRS=%q\n' "$addrs"
		printf 'FM_SRC=%q\nFM_BUILD=%q\n' "$repo" "$build"
		printf 'FM_SCRIPT=%q\n' "$script"
		printf 'FM_ARGS=('
		((${#args[@]})) && printf '%q ' "${args[@]}"
		printf ')\n'
		printf 'FM_SCRIPT_TIMEOUT=%q\nFM_GUEST_TIMEOUT=%q\n' "$timeout" "$guest_timeout"
		printf 'FM_PMEM_MODE=%q\nFM_PMEM_NODES=%q\n' "$pmem_mode" "${pmem_mode:+$pmem_nodes}"
	} >"$rdir/.fm/job.env"

	# global, not local: the EXIT trap runs after run's locals are gone
	tmp=$(mktemp -d "${TMPDIR:-/tmp}/fm-cluster.XXXXXX")
	# shellcheck disable=SC2317  # called from the trap
	cleanup() {
		stop_qemus
		# ${:-}: the trap runs at exit, after run's locals are gone
		if [[ -n "${vde_pid:-}" ]]; then kill "$vde_pid" 2>/dev/null || true; fi
		if [[ -n "${tail_pid:-}" ]]; then kill "$tail_pid" 2>/dev/null || true; fi
		if [[ -n "${tmp:-}" ]]; then rm -rf "$tmp"; fi
	}
	trap cleanup EXIT
	trap 'say "interrupted"; exit 130' INT TERM

	# Network: 1 node = a QEMU hub with one port (rxe loops back inside the guest);
	# 2 nodes = a UDP socket pair; 3+ = a vde_switch on a unix socket.
	local -a netdev=()
	if ((n == 2)); then
		ports=("$(free_udp_port)")
		ports[1]=$(free_udp_port)
		while [[ "${ports[1]}" == "${ports[0]}" ]]; do ports[1]=$(free_udp_port); done
		netdev[0]="socket,id=n0,udp=127.0.0.1:${ports[1]},localaddr=127.0.0.1:${ports[0]}"
		netdev[1]="socket,id=n0,udp=127.0.0.1:${ports[0]},localaddr=127.0.0.1:${ports[1]}"
	elif ((n >= 3)); then
		command -v vde_switch >/dev/null || die "vde_switch not found (Debian vde2)"
		vde_switch --sock "$tmp/vde" --daemon --pidfile "$tmp/vde.pid" --mgmt "$tmp/vde.mgmt" ||
			die "vde_switch failed to start"
		for _ in $(seq 1 50); do [[ -s "$tmp/vde.pid" ]] && break; sleep 0.1; done
		vde_pid=$(cat "$tmp/vde.pid")
		for ((i = 0; i < n; i++)); do netdev[i]="vde,id=n0,sock=$tmp/vde"; done
	else
		netdev[0]="hubport,id=n0,hubid=0"
	fi

	local t0=$SECONDS
	for ((i = 0; i < n; i++)); do
		local -a q=("$qemu" -name "fm-node$i" -nodefaults -no-user-config -no-reboot
			-display none -monitor none -smp "$smp" -kernel "$kimg" -initrd "$initrd")
		if [[ "$accel" == kvm* ]]; then q+=(-accel "$accel" -cpu host); else q+=(-accel "$accel" -cpu max); fi
		local machine=pc memopt=$mem node_mode=$mode
		[[ "$mode" == shell && $i -gt 0 ]] && node_mode=idle
		local is_owner=0
		if [[ -n "$pmem_mode" ]]; then
			for p in $pmem_nodes; do [[ "$p" == "$i" ]] && is_owner=1; done
		fi
		if ((is_owner)); then
			machine=pc,nvdimm=on
			memopt="$mem,slots=2,maxmem=4G"
			truncate -s "$pmem_size" "$tmp/pmem$i"
			q+=(-object "memory-backend-file,id=pm0,share=on,mem-path=$tmp/pmem$i,size=$pmem_size"
				-device "nvdimm,id=nv0,memdev=pm0")
		fi
		q+=(-machine "$machine" -m "$memopt")
		q+=(-append "console=ttyS0 quiet loglevel=3 panic=-1 tsc=reliable no_timer_check i8042.noaux i8042.nokbd fm.node=$i fm.mode=$node_mode ${FM_KERNEL_APPEND:-}")
		q+=(-nic none -netdev "${netdev[i]}"
			-device "virtio-net-pci,netdev=n0,mac=52:54:00:77:00:$(printf %02x $((i + 1)))")
		# shellcheck disable=SC2054  # the commas are QEMU's
		q+=(-fsdev "local,id=fsres,path=$rdir,security_model=none"
			-device virtio-9p-pci,fsdev=fsres,mount_tag=fmres
			-fsdev "local,id=fssrc,path=$repo,security_model=none,readonly=on"
			-device virtio-9p-pci,fsdev=fssrc,mount_tag=fmsrc
			-fsdev "local,id=fsbuild,path=$build,security_model=none,readonly=on"
			-device virtio-9p-pci,fsdev=fsbuild,mount_tag=fmbuild)
		if [[ "$node_mode" == shell ]]; then
			q+=(-serial mon:stdio)
			# explicit stdin: a background job of a script gets /dev/null otherwise
			"${q[@]}" 0<&0 &
		else
			q+=(-serial "file:$rdir/node$i.console")
			"${q[@]}" </dev/null >"$tmp/qemu$i.log" 2>&1 &
		fi
		pids+=($!)
	done
	if ((verbose)) && [[ "$mode" != shell ]]; then
		sleep 0.5
		tail -n +1 -F "$rdir"/node*.console >&2 2>/dev/null &
		tail_pid=$!
	fi
	[[ "$mode" == shell ]] || say "$n node(s) booting, results in $rdir"

	# Wait: all QEMUs gone, or the host deadline, or a node failed and the others
	# did not finish within a grace period (a peer waiting for it would hang).
	local deadline=$((SECONDS + host_timeout)) timed_out=0 fail_seen="" alive
	while :; do
		alive=0
		for ((i = 0; i < n; i++)); do kill -0 "${pids[i]}" 2>/dev/null && alive=$((alive + 1)); done
		((alive == 0)) && break
		if ((SECONDS >= deadline)); then
			if [[ -n "$fail_seen" ]]; then
				say "a node failed; $alive guest(s) still running 30s later; killing QEMU"
			else
				timed_out=1
				say "host timeout: ${host_timeout}s elapsed with $alive guest(s) still running; killing QEMU"
			fi
			break
		fi
		if [[ -z "$fail_seen" ]]; then
			for ((i = 0; i < n; i++)); do
				if [[ -s "$rdir/node$i.rc" && "$(cat "$rdir/node$i.rc")" != 0 && "$(cat "$rdir/node$i.rc")" != 77 ]]; then
					fail_seen=$SECONDS
					deadline=$((SECONDS + 30 < deadline ? SECONDS + 30 : deadline))
				fi
			done
		fi
		[[ "$mode" == shell ]] && ! kill -0 "${pids[0]}" 2>/dev/null && break
		sleep 0.2
	done
	local wall=$((SECONDS - t0))
	stop_qemus
	[[ -n "${tail_pid:-}" ]] && { kill "$tail_pid" 2>/dev/null || true; tail_pid=""; }

	[[ "$mode" == shell ]] && { run_status=0; cleanup; trap - EXIT INT TERM; return 0; }

	# Report every node.
	local rc failed=0 skipped=0 boot
	for ((i = 0; i < n; i++)); do
		rc=$(cat "$rdir/node$i.rc" 2>/dev/null || true)
		boot=$(cat "$rdir/node$i.boot" 2>/dev/null || echo "?")
		local status
		if [[ -z "$rc" ]]; then
			if ((timed_out)); then
				status="TIMEOUT (no exit code after ${host_timeout}s; QEMU killed)"
			elif [[ -n "$fail_seen" ]]; then
				status="KILLED (another node failed; this one did not finish within 30s)"
			else
				status="NO EXIT CODE (guest crashed or powered off early)"
			fi
			failed=1
			rc=timeout
		elif [[ "$rc" == 0 ]]; then
			status="ok"
		elif [[ "$rc" == 137 ]]; then
			status="TIMEOUT (script ran past --timeout ${timeout}s; killed in the guest)"
			failed=1
		elif [[ "$rc" == 77 ]]; then
			status="skipped"
			skipped=1
		else
			status="FAILED rc=$rc"
			failed=1
		fi
		echo "=== node$i 10.77.0.$((i + 1)) boot=${boot}s: $status ==="
		[[ -s "$rdir/node$i.out" ]] && cat "$rdir/node$i.out"
		if [[ -s "$rdir/node$i.err" ]]; then
			echo "--- node$i stderr ---"
			cat "$rdir/node$i.err"
		fi
		if [[ "$rc" != 0 && "$rc" != 77 ]]; then
			if [[ -s "$tmp/qemu$i.log" ]]; then
				echo "--- node$i qemu ---"
				grep -v "is not connected to host network" "$tmp/qemu$i.log" | tail -n 20
			fi
			echo "--- node$i console (last 25 lines of $rdir/node$i.console) ---"
			tail -n 25 "$rdir/node$i.console" 2>/dev/null || true
		fi
	done
	cleanup
	trap - EXIT INT TERM
	if ((failed)); then
		run_status=1
		say "FAILED: $(basename "$script") on $n node(s) in ${wall}s (results: $rdir)"
	elif ((skipped)); then
		run_status=77
		say "skipped: $(basename "$script") on $n node(s) in ${wall}s"
	else
		run_status=0
		say "ok: $(basename "$script") on $n node(s) in ${wall}s"
	fi
}

# --- commands --------------------------------------------------------------------
run_status=1
case "$cmd" in
prepare)
	prepare
	echo "kernel:    $kimg"
	echo "initramfs: $initrd"
	;;
run)
	((${#script_args[@]})) || die "run wants -- SCRIPT [ARGS...]"
	script=$(resolve_script "${script_args[0]}")
	prepare
	run_cluster run "${nodes:-1}" "$script" "${script_args[@]:1}"
	exit "$run_status"
	;;
shell)
	prepare
	say "node 0 console follows; 'exit' powers the guest off (Ctrl-a x kills QEMU)"
	run_cluster shell "${nodes:-1}" /dev/null
	;;
suite)
	prepare
	mapfile -t scripts < <(if ((${#script_args[@]})); then printf '%s\n' "${script_args[@]}"; else
		find "$repo/tests/cluster" -maxdepth 1 -name '*.sh' | LC_ALL=C sort; fi)
	base=${results:-"$build/cluster-results/suite-$(date +%Y%m%d-%H%M%S)-$$"}
	passed=0 failed=0 skipped=0 t_suite=$SECONDS
	failed_names=()
	mkdir -p "$base"
	for s in "${scripts[@]}"; do
		s=$(resolve_script "$s")
		sn=$(header "$s" nodes)
		[[ -n "$sn" ]] || continue # helpers (lib.sh) have no "# nodes:" header
		name=$(basename "$s" .sh)
		sp=$(header "$s" pmem)
		st=$(header "$s" timeout)
		ss=$(header "$s" smp)
		t_one=$SECONDS
		rc=0
		(
			results="$base/$name"
			nodes=$sn
			[[ -n "$sp" ]] && pmem_mode=$sp
			[[ -n "$st" ]] && timeout=$st
			[[ -n "$ss" ]] && smp=$ss
			run_cluster run "${nodes:-$sn}" "$s"
			exit "$run_status"
		) >"$base/$name.log" 2>&1 || rc=$?
		case "$rc" in
		0)
			passed=$((passed + 1))
			echo "PASS $name ($sn node(s), $((SECONDS - t_one))s)"
			# the script's key figures ("# report: REGEX" header)
			sr=$(header_line "$s" report)
			[[ -z "$sr" ]] || grep -E -- "$sr" "$base/$name.log" | sed 's/^/    /' || true
			;;
		77) skipped=$((skipped + 1)); echo "SKIP $name ($sn node(s), $((SECONDS - t_one))s): $(grep -m1 -o 'SKIP: .*' "$base/$name.log" || echo 'skipped')" ;;
		*)
			failed=$((failed + 1))
			failed_names+=("$name")
			echo "FAIL $name ($sn node(s), $((SECONDS - t_one))s), log: $base/$name.log"
			sed 's/^/    /' "$base/$name.log"
			;;
		esac
	done
	echo "suite: $((SECONDS - t_suite))s, results in $base"
	echo "$passed passed, $failed failed, $skipped skipped"
	((failed == 0))
	;;
esac
