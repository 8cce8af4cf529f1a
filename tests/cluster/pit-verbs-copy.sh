#!/usr/bin/env bash
# pit-verbs-copy.sh -- pit-verbs.sh with background copy on: fm-pit --short
# --copy-rate 20 (256 KiB/s; pit_short_copy's mix, tests/pit/README.md) over
# soft-RoCE, so that every random client's copier claims, copies and
# commits over real RC QPs under the faults (kills mid-copy, owner
# restarts, retriggers) and the point-in-time check judges the target.
# 27-32 s of fm-pit, 42-54 s end to end.  Arguments go to fm-pit after these.
# nodes: 1
# smp: 2
# timeout: 600
# report: fm-pit: (PASS|FAIL) .*
set -euo pipefail
exec bash "$(dirname "${BASH_SOURCE[0]}")/pit-verbs.sh" --copy-rate 20 "$@"
