#!/usr/bin/env bash
# rxe-smoke.sh -- rxe0 is up on every node, verbs see it, RDMA works between peers.
# nodes: 3
# timeout: 180
#
# Three nodes, so the suite covers the vde_switch network too.  Ends with a ring
# of RDMA atomics: node i runs an ib_atomic_lat server, node i+1 its client.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

dev=$FM_RDMA_DEV
link=$(fm_run 10 rdma link show "$dev/1") || fm_die "rdma link show $dev/1 failed"
echo "node$FM_NODE_INDEX: $link"
grep -q 'state ACTIVE' <<<"$link" || fm_die "$dev port 1 not ACTIVE"
grep -q "netdev $FM_NETDEV" <<<"$link" || fm_die "$dev not bound to $FM_NETDEV"

# The verbs library (provider lookup under /usr/lib/x86_64-linux-gnu/libibverbs).
if command -v ibv_devices >/dev/null; then
	fm_run 10 ibv_devices | grep -qw "$dev" || fm_die "ibv_devices does not list $dev"
	fm_run 10 ibv_devinfo -d "$dev" | grep -q 'PORT_ACTIVE' || fm_die "ibv_devinfo: port not active"
	echo "node$FM_NODE_INDEX: ibv_devices lists $dev"
else
	[[ -e /sys/class/infiniband/$dev ]] || fm_die "no /sys/class/infiniband/$dev"
fi

# GID 0/1: IPv6 link-local and the IPv4-mapped address (RoCEv2).
gid1=$(cat "/sys/class/infiniband/$dev/ports/1/gids/1")
echo "node$FM_NODE_INDEX: gid[1] $gid1"

# Every peer reachable on the RoCE network.
for ((i = 0; i < FM_NODE_COUNT; i++)); do
	((i == FM_NODE_INDEX)) && continue
	fm_wait_peer "$i" 60
	echo "node$FM_NODE_INDEX: node$i $(fm_addr "$i") reachable"
done

# RDMA ring (needs 2+ nodes): serve for the previous node, drive the next one.
if ((FM_NODE_COUNT >= 2)); then
	fm_barrier ring-start 60
	next=$(((FM_NODE_INDEX + 1) % FM_NODE_COUNT))
	fm_run 90 ib_atomic_lat -d "$dev" -x 1 -n 100 -p 19000 -F >/tmp/ring-srv.log 2>&1 &
	srv=$!
	start=$SECONDS
	until out=$(fm_run 60 ib_atomic_lat -d "$dev" -x 1 -n 100 -p 19000 -F "$(fm_addr "$next")" 2>&1); do
		if ! grep -q "Couldn't connect" <<<"$out" || ((SECONDS - start > 60)); then
			fm_die "atomics to node$next failed: $(tail -n3 <<<"$out")"
		fi
		sleep 0.5
	done
	wait "$srv" || fm_die "atomic server for the previous node failed: $(tail -n3 /tmp/ring-srv.log)"
	typ=$(awk '$1 ~ /^[0-9]+$/ && NF >= 9 { print $5 }' <<<"$out")
	echo "node$FM_NODE_INDEX: 100 RDMA fetch-and-add to node$next ok, t_typical ${typ} usec"
fi
fm_barrier smoke-done 60
echo "node$FM_NODE_INDEX: ok"
