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
#   RR_BEFORE=<build dir of an earlier release> adds the modes ct@before,
#   fp@before and svc@before: the same runs with that build's sluiced and
#   plugins (sluice-rr stays this build's), for a before/after comparison;
#   tools/build-previous-release.sh builds the previous layout's release
#   into build/previous-release/build.
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
BEFORE=${RR_BEFORE:+$(cd "$RR_BEFORE" && pwd)}
RR=$BUILD/bin/sluice-rr
for b in "$BUILD" ${BEFORE:+"$BEFORE"}; do
  for f in "$b/bin/sluiced" "$b/bin/sluicectl" "$b/lib/sluice/plugins/conntrack.so" \
           "$b/lib/sluice/plugins/nat.so"; do
    [[ -e $f ]] || { echo "rr_bench: $f is missing (build with the conntrack and nat plugins)" >&2; exit 1; }
  done
done
[[ -e $RR ]] || { echo "rr_bench: $RR is missing (build with -DSLUICE_BUILD_BENCH=ON)" >&2; exit 1; }
# The build a mode runs: "<mode>@before" runs RR_BEFORE's daemon and plugins.
# Pins of one map layout are refused by a daemon of another, so switching
# builds removes the dataplane with the daemon that made it.
PINS_BY=
use_build() { # <mode>
  local b=$BUILD
  [[ $1 == *@before ]] && b=$BEFORE
  if [[ -n $PINS_BY && $PINS_BY != "$b" ]]; then
    stop_daemon
    nsenter --net="/run/netns/$NS_NODE" "$PINS_BY/bin/sluiced" --config "$WORK/sluice.toml" --cleanup \
      >>"$WORK/daemon.log" 2>&1 || { cat "$WORK/daemon.log" >&2; exit 1; }
    PINS_BY=
  fi
  SLUICED=$b/bin/sluiced SLUICECTL=$b/bin/sluicectl PLUGIN_DIR=$b/lib/sluice/plugins BUILD_NOW=$b
}
use_build now
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
    nsenter --net="/run/netns/$NS_NODE" "${PINS_BY:-$BUILD}/bin/sluiced" --config "$WORK/sluice.toml" --cleanup >/dev/null 2>&1
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
dir = "$PLUGIN_DIR"
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
  local before wanted="sluiced ready"
  before=$(grep -c "sluiced ready" "$WORK/daemon.log" 2>/dev/null || true)
  # A daemon with direct tail calls gives each chain position its own
  # program shortly after "ready": measure once it has.
  if grep -q "direct tail calls in place" "$SLUICED"; then
    wanted="direct tail calls in place"
    before=$(grep -c "$wanted" "$WORK/daemon.log" 2>/dev/null || true)
  fi
  nsenter --net="/run/netns/$NS_NODE" "$SLUICED" --config "$WORK/sluice.toml" >>"$WORK/daemon.log" 2>&1 &
  DAEMON_PID=$!
  PINS_BY=$BUILD_NOW
  for _ in $(seq 100); do
    (( $(grep -c "$wanted" "$WORK/daemon.log" || true) > before )) && return 0
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
  PINS_BY=
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

# The dataplane's own cost per packet, in place: with kernel.bpf_stats_enabled
# the kernel accounts each entry program's run time (its tail-called stages
# included, as they run inside them) and run count. Every forwarded packet
# enters the node through exactly one workload veth's ingress, so the cost
# per packet is the run time of all entry programs on the two veths (both
# hooks) over the ingress programs' run count.
entry_prog_ids() { # <ingress|egress>
  for dev in cali1 cali2; do
    tc -n "$NS_NODE" filter show dev "$dev" "$1" | sed -n 's/.* id \([0-9]*\) .*/\1/p'
  done
}
entry_stats() { # -> "<run_time_ns of all> <run_cnt of the ingress programs>"
  bpftool -j prog show | python3 -c 'import json, sys
ingress = set(int(i) for i in sys.argv[1].split())
egress = set(int(i) for i in sys.argv[2].split())
progs = {p["id"]: p for p in json.load(sys.stdin)}
time = sum(progs[i].get("run_time_ns", 0) for i in ingress | egress if i in progs)
count = sum(progs[i].get("run_cnt", 0) for i in ingress if i in progs)
print(time, count)' "$(entry_prog_ids ingress | tr '\n' ' ')" "$(entry_prog_ids egress | tr '\n' ' ')"
}

redirected() { # packets counted "redirected" on cali1 ingress
  nsenter --net="/run/netns/$NS_NODE" "$SLUICECTL" --config "$WORK/sluice.toml" -o json counters dump |
    python3 -c 'import json, sys
print(sum(r["packets"] for r in json.load(sys.stdin)
          if r["interface"] == "cali1" and r["hook"] == "ingress" and r["reason"] == "redirected"))'
}

declare -A results cost
modes=(none ct fp svc)
[[ -n $BEFORE ]] && modes+=(ct@before fp@before svc@before)
stats_was=$(sysctl -n kernel.bpf_stats_enabled)
sysctl -qw kernel.bpf_stats_enabled=1
trap 'sysctl -qw kernel.bpf_stats_enabled=$stats_was; cleanup' EXIT
echo "# sluice-rr: $ROUNDS rounds x ${SECONDS_PER_RUN}s per mode, ${SIZE}-byte request and response," \
     "one TCP connection per run, $(nproc) CPUs, $(uname -r), pin=$PIN, wait=$WAIT"
[[ -n $BEFORE ]] && echo "# @before: $BEFORE"
printf '%-6s' round; printf ' %12s' "${modes[@]}"; echo
for round in $(seq "$ROUNDS"); do
  # Rotate the order each round so no mode always runs first.
  for i in "${!modes[@]}"; do
    mode=${modes[$(( (i + round - 1) % ${#modes[@]} ))]}
    use_build "$mode"
    server=10.65.2.2
    case ${mode%@before} in
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
    read -r time0 count0 < <(entry_stats)
    results[$mode,$round]=$(measure "$server")
    read -r time1 count1 < <(entry_stats)
    cost[$mode,$round]=$(awk -v t=$((time1 - time0)) -v c=$((count1 - count0)) \
                           'BEGIN {if (c > 0) printf "%.1f", t / c; else print "-"}')
    # The fast path must have carried the run (a broken one would pass
    # everything to the kernel and measure "ct").
    if [[ ${mode%@before} == fp || ${mode%@before} == svc ]] &&
       (( $(redirected) < results[$mode,$round] )); then
      echo "rr_bench: the fast path did not carry the $mode run ($(redirected) redirects)" >&2; exit 1
    fi
  done
  printf '%-6s' "$round"
  for mode in "${modes[@]}"; do printf ' %12s' "${results[$mode,$round]}"; done
  echo
done
stop_daemon

median() { sort -n | awk '{v[NR]=$1} END {print (NR % 2) ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.3f", a / b}'; }
echo
printf '%-46s %12s %10s %14s %14s\n' mode "median tx/s" "best tx/s" "ratio vs none" "ns/packet"
for mode in "${modes[@]}"; do
  case ${mode%@before} in
    none) label="none: no Sluice (kernel forwarding)" ;;
    ct) label="ct: conntrack, fast_path = false" ;;
    fp) label="fp: conntrack, fast_path = true" ;;
    svc) label="svc: + nat, via a cluster IP, fast" ;;
  esac
  [[ $mode == *@before ]] && label="$label @before"
  all=$(for r in $(seq "$ROUNDS"); do echo "${results[$mode,$r]}"; done)
  med=$(median <<<"$all")
  best=$(sort -n <<<"$all" | tail -1)
  rmed=$(for r in $(seq "$ROUNDS"); do ratio "${results[$mode,$r]}" "${results[none,$r]}"; echo; done | median)
  ns=-
  [[ $mode != none ]] && ns=$(for r in $(seq "$ROUNDS"); do echo "${cost[$mode,$r]}"; done | median)
  printf '%-46s %12.0f %10.0f %13.2fx %14s\n' "$label" "$med" "$best" "$rmed" "$ns"
done
echo "(ratio: median over rounds of the mode's rate / the same round's \"none\" rate;"
echo " ns/packet: median over rounds of the run time of the entry programs on both veths, stages"
echo " included, per packet entering the node from a workload; kernel.bpf_stats_enabled)"
if [[ -n $BEFORE ]]; then
  echo
  printf '%-6s %24s %24s\n' mode "tx/s now / @before" "ns/packet now / @before"
  for m in ct fp svc; do
    rr=$(for r in $(seq "$ROUNDS"); do ratio "${results[$m,$r]}" "${results[$m@before,$r]}"; echo; done | median)
    rc=$(for r in $(seq "$ROUNDS"); do ratio "${cost[$m,$r]}" "${cost[$m@before,$r]}"; echo; done | median)
    printf '%-6s %23.3fx %23.3fx\n' "$m" "$rr" "$rc"
  done
  echo "(median over rounds of the same round's ratio)"
fi
