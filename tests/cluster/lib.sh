#!/usr/bin/env bash
# lib.sh -- helpers for tests/cluster/*.sh scripts (source it; it has no "nodes:"
# header, so `cluster.sh suite` does not run it).
#
#   source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
#
# Environment set by the guest (deploy/cluster/README.md): FM_NODE_INDEX,
# FM_NODE_COUNT, FM_NODE_ADDRS, FM_RDMA_DEV, FM_NETDEV, FM_PMEM_PATH,
# FM_PMEM_MODE, FM_RESULTS, FM_SRC, FM_BUILD, FM_KERNEL_VERSION.

: "${FM_NODE_INDEX:?run this script through deploy/cluster/cluster.sh}"
read -r -a FM_ADDRS <<<"$FM_NODE_ADDRS"
FM_SYNC="$FM_RESULTS/.fm/sync"

fm_log() { echo "[node$FM_NODE_INDEX] $*" >&2; }
fm_die() { fm_log "FAIL: $*"; exit 1; }
fm_skip() { fm_log "SKIP: $*"; exit 77; }

# fm_addr I: IP address of node I.
fm_addr() { echo "${FM_ADDRS[$1]}"; }

# fm_run SECONDS CMD...: run CMD with a timeout (KILL); a hung verb never hangs
# the node.  Returns CMD's status, 137 on timeout (with a message).
fm_run() {
	local t=$1 rc=0 cmd
	shift
	cmd=$(type -P "$1") || cmd=$1 # a path: never a busybox applet of that name
	shift
	timeout -s KILL "$t" "$cmd" "$@" || rc=$?
	if ((rc == 137)); then
		fm_log "timeout after ${t}s: $*"
	fi
	return "$rc"
}

# fm_verdict WHAT RC START LOG: one scenario's line, "WHAT: PASS (N s)" or
# "WHAT: FAIL (rc RC, LOG)" after LOG's tail on stderr; returns 0 on a pass,
# 1 on a failure (the caller counts them and dies at the end).
fm_verdict() {
	local what=$1 rc=$2 start=$3 log=$4
	if ((rc == 0)); then
		echo "$what: PASS ($((SECONDS - start)) s)"
		return 0
	fi
	tail -n 30 "$log" >&2
	echo "$what: FAIL (rc $rc, $log)"
	return 1
}

# fm_barrier NAME [SECONDS]: wait until every node reached barrier NAME (files
# in the shared results directory; 9p without caching, so all guests see them).
fm_barrier() {
	local name=$1 t=${2:-120} n start=$SECONDS
	mkdir -p "$FM_SYNC"
	: >"$FM_SYNC/$name.$FM_NODE_INDEX"
	while :; do
		n=$(find "$FM_SYNC" -maxdepth 1 -name "$name.*" | wc -l)
		((n >= FM_NODE_COUNT)) && return 0
		if ((SECONDS - start >= t)); then
			fm_die "barrier $name: $n of $FM_NODE_COUNT nodes after ${t}s"
		fi
		sleep 0.2
	done
}

# fm_wait_peer I [SECONDS]: wait until node I answers ping.
fm_wait_peer() {
	local a t=${2:-60} start=$SECONDS
	a=$(fm_addr "$1")
	until ping -c1 -W1 "$a" >/dev/null 2>&1; do
		if ((SECONDS - start >= t)); then
			fm_die "node $1 ($a) unreachable after ${t}s"
		fi
	done
	return 0
}

# fm_retry SECONDS CMD...: run CMD until it succeeds (a client whose server is
# not listening yet), each attempt bounded by the remaining time.
fm_retry() {
	local t=$1 start=$SECONDS left
	shift
	while :; do
		left=$((t - (SECONDS - start)))
		((left > 0)) || return 1
		timeout -s KILL "$left" "$@" && return 0
		sleep 0.5
	done
}
