#!/usr/bin/env bash
# One command from a fresh machine to Sluice running on real interfaces:
# installs dependencies, builds, creates a lab of network namespaces (a node
# with two workloads and an uplink), starts sluiced with the default config,
# sends traffic and shows what sluicectl sees. Tear down: tools/lab/lab.sh down
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
[[ $(id -u) == 0 ]] || { echo "quickstart: run as root (BPF, netns, tc)" >&2; exit 1; }
"$repo/tools/install-deps.sh"
"$repo/tools/build.sh"
"$repo/tools/lab/lab.sh" down >/dev/null 2>&1 || true
"$repo/tools/lab/lab.sh" up
"$repo/tools/lab/lab.sh" traffic
"$repo/tools/lab/lab.sh" status
cat <<MSG

Sluice is running in network namespace sluice-lab-node.
  tools/lab/lab.sh ctl counters dump        counters by interface, hook and reason
  tools/lab/lab.sh ctl log-level debug      then: cat /sys/kernel/tracing/trace_pipe
  tools/lab/lab.sh down                     stop and remove everything
MSG
