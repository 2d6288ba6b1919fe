#!/usr/bin/env bash
# A small lab of network namespaces running sluiced with the default config.
#   tools/lab/lab.sh up        create the lab and start sluiced in the node
#   tools/lab/lab.sh traffic   send pings across it
#   tools/lab/lab.sh ctl ARGS  run sluicectl in the node (e.g. ctl counters dump)
#   tools/lab/lab.sh status    show the daemon, qdiscs and sluicectl views
#   tools/lab/lab.sh down      stop sluiced, remove everything Sluice attached, delete the lab
# Env: SLUICE_BUILD (default: <repo>/build), SLUICE_CONFIG (default: configs/sluice.toml).
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
build=${SLUICE_BUILD:-$repo/build}
config=${SLUICE_CONFIG:-$repo/configs/sluice.toml}
state=/run/sluice-lab
node=sluice-lab-node w1=sluice-lab-w1 w2=sluice-lab-w2 ext=sluice-lab-ext
# shellcheck source=topology.sh
source "$repo/tools/lab/topology.sh"

in_node() { nsenter --net="/run/netns/$node" "$@"; }
ctl() { in_node "$build/bin/sluicectl" --config "$config" "$@"; }

daemon_running() { [[ -f $state/sluiced.pid ]] && kill -0 "$(cat "$state/sluiced.pid")" 2>/dev/null; }

up() {
  [[ -x $build/bin/sluiced ]] || { echo "lab: $build/bin/sluiced is missing: build first" >&2; exit 1; }
  if ip netns list | grep -qw "$node"; then
    echo "lab: already up (tools/lab/lab.sh down to remove it)" >&2
    exit 1
  fi
  mkdir -p "$state"
  lab_create "$node" "$w1" "$w2" "$ext"
  # nsenter --net keeps this mount namespace, so bpffs pins stay visible and
  # survive the daemon (ip netns exec would remount /sys).
  nsenter --net="/run/netns/$node" "$build/bin/sluiced" --config "$config" >"$state/sluiced.log" 2>&1 &
  echo $! >"$state/sluiced.pid"
  for _ in $(seq 50); do
    grep -q "sluiced ready" "$state/sluiced.log" && break
    daemon_running || { cat "$state/sluiced.log" >&2; echo "lab: sluiced exited" >&2; exit 1; }
    sleep 0.1
  done
  cat "$state/sluiced.log"
  echo "lab: up; sluiced pid $(cat "$state/sluiced.pid"), log $state/sluiced.log"
}

traffic() {
  echo "# w1 -> w2 (through the node), ext -> w1"
  ip netns exec "$w1" ping -c 3 -i 0.2 -W 1 10.65.2.2
  ip netns exec "$ext" ping -c 3 -i 0.2 -W 1 10.65.1.2
}

status() {
  if daemon_running; then echo "sluiced: running (pid $(cat "$state/sluiced.pid"))"; else echo "sluiced: not running"; fi
  echo "# tc -s qdisc show dev cali1 (in the node)"
  tc -n "$node" -s qdisc show dev cali1
  echo "# sluicectl ifstate dump"; ctl ifstate dump
  echo "# sluicectl counters dump"; ctl counters dump
  echo "# sluicectl plugins"; ctl plugins
}

down() {
  if daemon_running; then
    kill -TERM "$(cat "$state/sluiced.pid")"
    for _ in $(seq 50); do daemon_running || break; sleep 0.1; done
  fi
  if ip netns list | grep -qw "$node"; then
    in_node "$build/bin/sluiced" --config "$config" --cleanup || true
  fi
  lab_destroy "$node" "$w1" "$w2" "$ext"
  rm -rf "$state"
  echo "lab: down"
}

case ${1:-} in
  up) up ;;
  traffic) traffic ;;
  status) status ;;
  ctl) shift; ctl "$@" ;;
  down) down ;;
  *) sed -n '2,8p' "$0"; exit 2 ;;
esac
