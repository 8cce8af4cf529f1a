#!/usr/bin/env bash
# transport-verbs-multi.sh -- transport-verbs.sh across guests: owner on node 0,
# clients on nodes 1 and 2, over the emulated network.
# nodes: 3
# timeout: 900
# report: ^(ok|FAIL) 
set -euo pipefail
export FM_TRANSPORT_ITERS=${FM_TRANSPORT_ITERS:-500}
exec bash "$(dirname "${BASH_SOURCE[0]}")/transport-verbs.sh" "$@"
