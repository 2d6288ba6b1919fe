#!/usr/bin/env bash
# Request/response rate between two workloads on one node, over one
# established TCP connection per measurement (sluice-rr, netperf TCP_RR
# style), in three modes interleaved in every round:
#
#   none  no Sluice at all (no filters, no pins): the kernel's forwarding
#   ct    sluiced with conntrack, fast_path = false (entry, conntrack stage,
#         chain end on cali1/cali2 ingress and egress, then the kernel)
#   fp    sluiced with conntrack, fast_path = true (established packets are
#         redirected into the other workload by the conntrack stage)
#   svc   sluiced with conntrack + nat, fast_path = true, the client talking
#         to a cluster IP whose one backend is the server: every request is
#         DNATed and every response reverse-NATed by the nat stage, then
#         redirected (the NAT fast path)
#
# Prints transactions/s per round and mode, then per mode the median, the
# best run, and the median of the per-round ratios to "none" (each round's
# modes run back to back, so a round's ratio is the least disturbed by other
# load on the machine). Needs root; uses the lab topology
# (tools/lab/topology.sh) in namespaces slrr-<pid>-*, removed on exit.
#
#   sudo tools/bench/rr_bench.sh [build dir] [rounds] [seconds] [size]
#   (defaults: build 3 3 64)
#   RR_PIN=same (default: client and server on CPU 0, so a transaction never
#   waits for another CPU — on a shared machine the most stable), split
#   (client on CPU 0, server on CPU 1), none (unpinned)
set -euo pipefail

REPO=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=$(cd "${1:-$REPO/build}" && pwd)
ROUNDS=${2:-3}
SECONDS_PER_RUN=${3:-3}
SIZE=${4:-64}
PIN=${RR_PIN:-same}
WAIT=${RR_WAIT:-block}
case $WAIT in
  block) ;;
  spin)
    (( $(nproc) > 1 )) || { echo "rr_bench: RR_WAIT=spin needs two CPUs" >&2; exit 1; }
    PIN=split
    export SLUICE_RR_SPIN=1 ;;
  *) echo "rr_bench: RR_WAIT is block or spin, not '$WAIT'" >&2; exit 2 ;;
esac
SLUICED=$BUILD/bin/sluiced
SLUICECTL=$BUILD/bin/sluicectl
RR=$BUILD/bin/sluice-rr
for f in "$SLUICED" "$RR" "$BUILD/lib/sluice/plugins/conntrack.so" "$BUILD/lib/sluice/plugins/nat.so"; do
  [[ -e $f ]] || { echo "rr_bench: $f is missing (build with the conntrack and nat plugins)" >&2; exit 1; }
done
(( EUID == 0 )) || { echo "rr_bench: needs root" >&2; exit 1; }

# shellcheck source=../lab/topology.sh
source "$REPO/tools/lab/topology.sh"
ID=slrr-$$
NS_NODE=$ID-node NS_W1=$ID-w1 NS_W2=$ID-w2 NS_EXT=$ID-ext
WORK=$(mktemp -d /tmp/sluice-rr.XXXXXX)
DAEMON_PID= SERVER_PID=

cleanup() {
  set +e
  [[ -n $DAEMON_PID ]] && kill -TERM "$DAEMON_PID" 2>/dev/null && wait "$DAEMON_PID" 2>/dev/null
  [[ -n $SERVER_PID ]] && kill "$SERVER_PID" 2>/dev/null && wait "$SERVER_PID" 2>/dev/null
  if [[ -f $WORK/sluice.toml && -e /run/netns/$NS_NODE ]]; then
    nsenter --net="/run/netns/$NS_NODE" "$SLUICED" --config "$WORK/sluice.toml" --cleanup >/dev/null 2>&1
  fi
  rm -rf "/sys/fs/bpf/$ID"
  lab_destroy "$NS_NODE" "$NS_W1" "$NS_W2" "$NS_EXT"
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

lab_create "$NS_NODE" "$NS_W1" "$NS_W2" "$NS_EXT"

SERVICE_IP=10.96.0.99
mkdir -p "$WORK/state"
cat >"$WORK/state/rr.toml" <<TOML
[[service]]
name = "rr"
cluster_ip = "$SERVICE_IP"
ports = [{ port = 5001, protocol = "tcp" }]
backends = [{ ip = "10.65.2.2" }]
TOML

write_config() { # <fast_path true|false> [plugins]
  local plugins=${2:-'["conntrack"]'}
  cat >"$WORK/sluice.toml" <<TOML
[node]
name = "$ID-node"
[bpf]
instance = "$ID"
[metrics]
listen = ""
[plugins]
dir = "$BUILD/lib/sluice/plugins"
enabled = $plugins
[plugins.conntrack]
fast_path = $1
[state]
dir = "$WORK/state"
TOML
}

stop_daemon() {
  if [[ -n $DAEMON_PID ]]; then
    kill -TERM "$DAEMON_PID"; wait "$DAEMON_PID" || true
    DAEMON_PID=
  fi
}

start_daemon() { # <fast_path> [plugins]
  stop_daemon
  write_config "$@"
  local before
  before=$(grep -c "sluiced ready" "$WORK/daemon.log" 2>/dev/null || true)
  nsenter --net="/run/netns/$NS_NODE" "$SLUICED" --config "$WORK/sluice.toml" >>"$WORK/daemon.log" 2>&1 &
  DAEMON_PID=$!
  for _ in $(seq 100); do
    (( $(grep -c "sluiced ready" "$WORK/daemon.log" || true) > before )) && return 0
    kill -0 "$DAEMON_PID" 2>/dev/null || break
    sleep 0.1
  done
  cat "$WORK/daemon.log" >&2; echo "rr_bench: sluiced did not start" >&2; exit 1
}

no_sluice() {
  stop_daemon
  write_config false
  nsenter --net="/run/netns/$NS_NODE" "$SLUICED" --config "$WORK/sluice.toml" --cleanup >>"$WORK/daemon.log" 2>&1 \
    || { cat "$WORK/daemon.log" >&2; exit 1; }
  if tc -n "$NS_NODE" filter show dev cali1 ingress | grep -q bpf; then
    echo "rr_bench: a filter is still on cali1 after --cleanup" >&2; exit 1
  fi
}

pin() { # <client|server>: taskset prefix when pinning
  command -v taskset >/dev/null || return 0
  case $PIN in
    split) (( $(nproc) > 1 )) && { [[ $1 == client ]] && echo "taskset -c 0" || echo "taskset -c 1"; } ;;
    same) echo "taskset -c 0" ;;
  esac
  return 0
}

# shellcheck disable=SC2046
ip netns exec "$NS_W2" $(pin server) "$RR" server 10.65.2.2 5001 "$SIZE" >"$WORK/server.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 50); do grep -q listening "$WORK/server.log" 2>/dev/null && break; sleep 0.1; done

measure() { # <server address> -> transactions/s
  # shellcheck disable=SC2046
  ip netns exec "$NS_W1" $(pin client) "$RR" client "$1" 5001 "$SECONDS_PER_RUN" "$SIZE" |
    awk '{print $6}'
}

redirected() { # packets counted "redirected" on cali1 ingress
  nsenter --net="/run/netns/$NS_NODE" "$SLUICECTL" --config "$WORK/sluice.toml" -o json counters dump |
    python3 -c 'import json, sys
print(sum(r["packets"] for r in json.load(sys.stdin)
          if r["interface"] == "cali1" and r["hook"] == "ingress" and r["reason"] == "redirected"))'
}

declare -A results
modes=(none ct fp svc)
echo "# sluice-rr: $ROUNDS rounds x ${SECONDS_PER_RUN}s per mode, ${SIZE}-byte request and response," \
     "one TCP connection per run, $(nproc) CPUs, $(uname -r), pin=$PIN, wait=$WAIT"
printf '%-6s %12s %12s %12s %12s\n' round none ct fp svc
for round in $(seq "$ROUNDS"); do
  row=()
  # Rotate the order each round so no mode always runs first.
  for i in "${!modes[@]}"; do
    mode=${modes[$(( (i + round - 1) % ${#modes[@]} ))]}
    server=10.65.2.2
    case $mode in
      none) no_sluice ;;
      ct) start_daemon false ;;
      fp) start_daemon true ;;
      svc)
        start_daemon true '["conntrack", "nat"]'
        server=$SERVICE_IP
        for _ in $(seq 50); do
          grep -q "plugin 'nat' applied" "$WORK/daemon.log" && break
          sleep 0.1
        done
        ;;
    esac
    results[$mode,$round]=$(measure "$server")
    # The fast path must have carried the run (a broken one would pass
    # everything to the kernel and measure "ct").
    if [[ $mode == fp || $mode == svc ]] && (( $(redirected) < results[$mode,$round] )); then
      echo "rr_bench: the fast path did not carry the $mode run ($(redirected) redirects)" >&2; exit 1
    fi
  done
  printf '%-6s %12s %12s %12s %12s\n' "$round" "${results[none,$round]}" "${results[ct,$round]}" \
    "${results[fp,$round]}" "${results[svc,$round]}"
done
stop_daemon

median() { sort -n | awk '{v[NR]=$1} END {print (NR % 2) ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.3f", a / b}'; }
echo
printf '%-38s %12s %10s %14s\n' mode "median tx/s" "best tx/s" "ratio vs none"
for mode in "${modes[@]}"; do
  case $mode in
    none) label="none: no Sluice (kernel forwarding)" ;;
    ct) label="ct: conntrack, fast_path = false" ;;
    fp) label="fp: conntrack, fast_path = true" ;;
    svc) label="svc: + nat, via a cluster IP, fast" ;;
  esac
  all=$(for r in $(seq "$ROUNDS"); do echo "${results[$mode,$r]}"; done)
  med=$(median <<<"$all")
  best=$(sort -n <<<"$all" | tail -1)
  rmed=$(for r in $(seq "$ROUNDS"); do ratio "${results[$mode,$r]}" "${results[none,$r]}"; echo; done | median)
  printf '%-38s %12.0f %10.0f %13.2fx\n' "$label" "$med" "$best" "$rmed"
done
echo "(ratio: median over rounds of the mode's rate / the same round's \"none\" rate)"
