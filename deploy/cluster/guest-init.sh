#!/usr/bin/bash
# guest-init.sh -- /init of a flashmeta cluster guest (runs as PID 1 under bash).
#
# Kernel command line: fm.node=<index> [fm.mode=run|shell|idle].
# Everything else comes from /results/.fm/job.env, written by cluster.sh into the
# writable 9p share (tag fmres) before the guests start.
#
# Steps: mounts, modules, watchdog, network + rxe0, NVDIMM (owner nodes), the
# 9p shares of the source and build trees at their host paths, then the job:
#   run    the script, its stdout/stderr to /results/node<i>.out/.err, its exit
#          code to /results/node<i>.rc (written last: its presence means "done")
#   shell  an interactive bash on the serial console
#   idle   stay up until the watchdog or the host ends the run
# and finally poweroff -f.  Any setup failure writes rc 90-99 with a message.
set -uo pipefail
export PATH=/usr/sbin:/usr/bin HOME=/root TERM=${TERM:-linux}

node=0 mode=run
mount -t proc proc /proc
for w in $(</proc/cmdline); do
	case "$w" in
	fm.node=*) node=${w#*=} ;;
	fm.mode=*) mode=${w#*=} ;;
	esac
done
log() { echo "fm-init[$node] $(cut -d' ' -f1 /proc/uptime)s: $*" >/dev/console; }
halt_now() {
	sync
	poweroff -f
	sleep 5
}

log "init started"
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /dev/shm
mount -t tmpfs tmpfs /tmp
mount -t tmpfs tmpfs /run

load_modules() {
	local m
	while read -r m; do
		insmod "$m" 2>/dev/null || grep -q "^$(basename "$m" .ko | tr - _) " /proc/modules ||
			log "insmod $m failed"
	done <"$1"
}
load_modules /etc/fm-modules
log "modules loaded"

R=/results
if ! mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144,cache=none fmres "$R"; then
	log "cannot mount the results share"
	halt_now
fi
out="$R/node$node"
fail() { # fail RC MESSAGE: record a setup failure the host will report
	log "FAILED: $2"
	echo "fm-init: node $node: $2" >>"$out.err"
	echo "$1" >"$out.rc.tmp" && mv "$out.rc.tmp" "$out.rc"
	halt_now
}
[[ -r "$R/.fm/job.env" ]] || fail 90 "no job file $R/.fm/job.env"
# shellcheck disable=SC1091
source "$R/.fm/job.env"

# Watchdog: the whole guest lives at most FM_GUEST_TIMEOUT seconds.
(
	sleep "$FM_GUEST_TIMEOUT"
	log "watchdog: ${FM_GUEST_TIMEOUT}s elapsed, powering off"
	echo "fm-init: node $node: guest watchdog fired after ${FM_GUEST_TIMEOUT}s" >>"$out.err"
	halt_now
) &

# Shares of the host's source and build trees, read-only, at the host's paths.
mkdir -p "$FM_SRC"
mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144,cache=loose,ro fmsrc "$FM_SRC" ||
	fail 91 "cannot mount source share at $FM_SRC"
mkdir -p "$FM_BUILD" 2>/dev/null || true
mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144,cache=loose,ro fmbuild "$FM_BUILD" ||
	fail 91 "cannot mount build share at $FM_BUILD"

# Network: eth0 is the only NIC (-nic none plus one virtio-net-pci).
read -r -a addrs <<<"$FM_NODE_ADDRS"
hostname "fm-node$node"
/usr/sbin/ip link set lo up
/usr/sbin/ip addr add "${addrs[$node]}/24" dev eth0 || fail 92 "no eth0"
/usr/sbin/ip link set eth0 up
timeout 20 rdma link add rxe0 type rxe netdev eth0 || fail 93 "rdma link add rxe0 failed"
log "rxe0 on eth0 ${addrs[$node]}"

# NVDIMM on owner nodes: the label-less region shows up as a raw namespace.
FM_PMEM_PATH=""
pmem_mode=""
for n in ${FM_PMEM_NODES:-}; do [[ "$n" == "$node" ]] && pmem_mode=$FM_PMEM_MODE; done
if [[ -n "$pmem_mode" ]]; then
	load_modules /etc/fm-modules.pmem
	for _ in $(seq 1 50); do [[ -e /sys/bus/nd/devices/namespace0.0 ]] && break; sleep 0.1; done
	timeout 60 ndctl create-namespace -f -e namespace0.0 -m "$pmem_mode" >/tmp/ndctl.log 2>&1 ||
		fail 94 "ndctl create-namespace -m $pmem_mode: $(tail -n3 /tmp/ndctl.log)"
	case "$pmem_mode" in
	fsdax)
		mkdir -p /mnt/pmem
		timeout 60 /usr/sbin/mke2fs -q -t ext4 -F -b 4096 -E nodiscard,lazy_itable_init=1 /dev/pmem0 ||
			fail 95 "mkfs.ext4 /dev/pmem0 failed"
		mount -t ext4 -o dax /dev/pmem0 /mnt/pmem || fail 96 "mount -o dax /dev/pmem0 failed"
		FM_PMEM_PATH=/mnt/pmem
		;;
	devdax)
		[[ -c /dev/dax0.0 ]] || fail 97 "no /dev/dax0.0 after ndctl"
		FM_PMEM_PATH=/dev/dax0.0
		;;
	esac
	log "pmem $pmem_mode at $FM_PMEM_PATH"
fi

export FM_NODE_INDEX=$node FM_NODE_COUNT FM_NODE_ADDRS FM_RDMA_DEV=rxe0 FM_PMEM_PATH
export FM_PMEM_MODE=$pmem_mode FM_RESULTS=$R FM_SRC FM_BUILD FM_NETDEV=eth0
FM_KERNEL_VERSION=$(</etc/fm-kver)
export FM_KERNEL_VERSION
cut -d' ' -f1 /proc/uptime >"$out.boot"
log "ready"

case "$mode" in
shell)
	cd "$FM_SRC" || true
	echo "flashmeta cluster node $node ($FM_NODE_ADDRS); exit or Ctrl-D powers off"
	setsid -c bash -i </dev/ttyS0 >/dev/ttyS0 2>&1
	echo 0 >"$out.rc"
	;;
idle)
	sleep infinity
	;;
*)
	cd "$FM_SRC" || true
	# A fresh session so the timeout can kill the script's whole process group.
	timeout -s KILL "$FM_SCRIPT_TIMEOUT" bash "$FM_SCRIPT" "${FM_ARGS[@]}" >"$out.out" 2>"$out.err" </dev/null
	rc=$?
	[[ $rc -eq 137 ]] && echo "fm-init: node $node: script killed after ${FM_SCRIPT_TIMEOUT}s (timeout)" >>"$out.err"
	echo "$rc" >"$out.rc.tmp" && mv "$out.rc.tmp" "$out.rc"
	log "script exited $rc"
	;;
esac
halt_now
