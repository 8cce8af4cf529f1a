#!/usr/bin/env bash
# rxe-setup.sh -- soft-RoCE (rdma_rxe) on a host whose kernel has it.
#
#   rxe-setup.sh add NETDEV [--name rxe0]     load rdma_rxe, bind NAME to NETDEV
#   rxe-setup.sh check NETDEV [--name rxe0]   NAME exists, on NETDEV, port ACTIVE,
#                                             visible to libibverbs
#   rxe-setup.sh remove NETDEV [--name rxe0]  delete the rxe link
#
# Needs root for add/remove, iproute2's `rdma`, and ibverbs-utils' ibv_devices
# for the libibverbs check (skipped with a note when absent).  Idempotent: add on
# an existing binding and remove of a missing one succeed.  Exit status 0 on
# success, 1 on failure (with a message), 2 on usage errors.
# Do not add two rxe devices in one network namespace, or rxe inside a
# namespace: queue pairs then fail to connect (deploy/cluster/README.md).
set -euo pipefail

die() { echo "rxe-setup: $*" >&2; exit 1; }
usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }

cmd=${1:-}
case "$cmd" in
-h | --help) usage; exit 0 ;;
add | check | remove) ;;
*) usage >&2; exit 2 ;;
esac
netdev=${2:-}
[[ -n "$netdev" ]] || { usage >&2; exit 2; }
name=rxe0
shift 2
while (($#)); do
	case "$1" in
	--name) name=$2; shift 2 ;;
	*) usage >&2; exit 2 ;;
	esac
done

command -v rdma >/dev/null || die "no 'rdma' tool (Debian: iproute2)"
[[ -e "/sys/class/net/$netdev" ]] || die "no network device $netdev"

# Current binding of NAME: the netdev it sits on, or empty.
bound_netdev() {
	{ rdma link show "$name/1" 2>/dev/null || true; } | sed -n 's/.* netdev \([^ ]*\).*/\1/p'
}

check() {
	local link
	link=$(rdma link show "$name/1" 2>/dev/null) || die "no RDMA link $name"
	echo "$link"
	[[ "$(bound_netdev)" == "$netdev" ]] || die "$name is bound to $(bound_netdev), not $netdev"
	grep -q 'state ACTIVE' <<<"$link" || die "$name port 1 is not ACTIVE (is $netdev up?)"
	if command -v ibv_devices >/dev/null; then
		ibv_devices | grep -qw "$name" || die "libibverbs does not see $name (rxe provider installed? Debian: ibverbs-providers)"
		echo "ibv_devices: $name present"
	else
		echo "ibv_devices not installed (Debian: ibverbs-utils): libibverbs check skipped"
	fi
	[[ -r "/sys/class/infiniband/$name/ports/1/gids/1" ]] &&
		echo "gid[1]: $(cat "/sys/class/infiniband/$name/ports/1/gids/1")"
	echo "rxe-setup: $name on $netdev ok"
}

case "$cmd" in
add)
	cur=$(bound_netdev)
	if [[ -n "$cur" ]]; then
		[[ "$cur" == "$netdev" ]] || die "$name already exists on $cur"
		echo "rxe-setup: $name already on $netdev"
	else
		# rdma_rxe needs a crc32 crypto driver that module dependencies do not
		# pull in ("failed to init crc32 algorithm err:-2").
		modprobe -q crc32_generic 2>/dev/null || modprobe -q crc32_pclmul 2>/dev/null || true
		[[ -d /sys/module/rdma_rxe ]] || modprobe rdma_rxe ||
			die "cannot load rdma_rxe (kernel without CONFIG_RDMA_RXE? use deploy/cluster/)"
		rdma link add "$name" type rxe netdev "$netdev" || die "rdma link add $name failed"
	fi
	check
	;;
check)
	check
	;;
remove)
	if [[ -z "$(bound_netdev)" ]]; then
		echo "rxe-setup: no $name, nothing to remove"
	else
		[[ "$(bound_netdev)" == "$netdev" ]] || die "$name is on $(bound_netdev), not $netdev"
		rdma link delete "$name" || die "rdma link delete $name failed"
		echo "rxe-setup: $name removed"
	fi
	;;
esac
