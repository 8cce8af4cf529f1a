#!/usr/bin/env bash
# protocol-verbs-2.sh -- protocol-verbs.sh across two guests (UDP socket
# link rather than the VDE switch): node 1's CLI splits and locks against
# the owner on node 0.  The single-node scenarios run once, in the 3-node
# script; here node 0 runs only the snapshot check before serving node 1.
# nodes: 2
# timeout: 400
# report: (scenario .*: PASS| split [0-9]+ served)
set -euo pipefail
export FM_PROTOCOL_SCENARIOS=snapshot
exec bash "$(dirname "${BASH_SOURCE[0]}")/protocol-verbs.sh"
