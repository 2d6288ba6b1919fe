#!/usr/bin/env bash
# New-connection rate and first-packet latency through a service address
# (cluster IP) with 1, 1,000 and 10,000 services, in three modes:
#
#   sluice    sluiced with the conntrack and nat plugins, the services as
#             [[service]] tables in its state directory
#   iptables  kube-proxy's iptables-mode ruleset for the same services
#             (KUBE-SERVICES -> KUBE-SVC-* with statistic-mode random jumps ->
#             KUBE-SEP-* DNAT, KUBE-MARK-MASQ, KUBE-POSTROUTING, the filter
#             chains), loaded with one iptables-restore
#   nftables  kube-proxy's nftables-mode ruleset (table ip kube-proxy: the
#             service-ips verdict map -> service-* chains with numgen random
#             -> endpoint-* chains with dnat), loaded with one nft -f
#
# The rulesets come from kubeproxy_rules.py, which writes all three from one
# list of services. Every service has the same backends (the lab's backend
# workloads), so traffic only ever reaches namespaces made here. The client
# connects to the LAST service in KUBE-SERVICES order (KP_TARGET=last): the
# worst case for iptables, whose first packet is tested against every
# service's rule before it matches; nftables and Sluice look the address up
# in a hash either way.
#
# Each (mode, number of services) cell gets its own copy of the lab topology
# (tools/lab/topology.sh: a node namespace, the client workload on cali1,
# backend workloads on cali2.., all namespaces slkp-<pid>-*) with its ruleset
# or its sluiced loaded once, so the rounds can interleave all cells without
# reloading 150,000 rules, and no cell sees another's netfilter hooks or
# conntrack entries. The rules are loaded inside the node namespaces; the
# host's own firewall is never touched. Everything is removed on exit, also
# on failure or Ctrl-C.
#
# A measurement is sluice-crr (tools/bench/crr.cpp): one client doing
# connect -> one request/response -> close (RST, SO_LINGER 0, so no
# TIME_WAIT) in a loop for KP_SECONDS, after a 300 ms warm-up; it reports
# connections/s and the median and 99th percentile of the connect() time
# (the SYN through the service address and the SYN-ACK back) and of the time
# to the first response. Each round measures every cell once, in an order
# rotated from round to round; the summary (kubeproxy_report.py) prints
# medians over the rounds and per-round ratios: Sluice / iptables and
# Sluice / nftables at each number of services, and the largest number of
# services / the smallest in each mode (flatness).
#
#   sudo tools/bench/kubeproxy_bench.sh [build dir]      (default: build)
#
# Knobs (environment):
#   KP_ROUNDS=9           rounds
#   KP_SECONDS=1          seconds per measurement (many short rounds: the
#                         cells compared in a ratio run seconds apart)
#   KP_SERVICES="1 1000 10000"   numbers of services
#   KP_MODES="sluice iptables nftables"
#   KP_BACKENDS=3         backends per service (backend workloads, 1..20)
#   KP_TARGET=last        which service the client connects to: first|middle|last
#   KP_SIZE=64            request and response size in bytes
#   KP_IPTABLES=default   iptables-restore as installed (see its --version),
#                         or "legacy" / "nft" for iptables-legacy-restore /
#                         iptables-nft-restore
#   KP_FAST_PATH=true     conntrack's fast_path for the sluice mode (its
#                         default: every packet of a connection after the SYN
#                         is rewritten and redirected by the nat stage, past
#                         the host stack; false: all of them cross it)
#   KP_PIN=same           client and backend servers on CPU 0 (as rr_bench.sh);
#                         "none" leaves them unpinned
#   KP_KEEP_WORK=1        keep the work directory (rulesets, logs, results)
set -euo pipefail

REPO=$(cd "$(dirname "$0")/../.." && pwd)
BENCH=$REPO/tools/bench
BUILD=$(cd "${1:-$REPO/build}" && pwd)
ROUNDS=${KP_ROUNDS:-9}
SECONDS_PER_RUN=${KP_SECONDS:-1}
read -r -a SERVICE_COUNTS <<<"${KP_SERVICES:-1 1000 10000}"
read -r -a MODES <<<"${KP_MODES:-sluice iptables nftables}"
BACKENDS=${KP_BACKENDS:-3}
TARGET=${KP_TARGET:-last}
SIZE=${KP_SIZE:-64}
PIN=${KP_PIN:-same}
SLUICE_FAST_PATH=${KP_FAST_PATH:-true}
SERVICE_PORT=80 BACKEND_PORT=8080

SLUICED=$BUILD/bin/sluiced
SLUICECTL=$BUILD/bin/sluicectl
CRR=$BUILD/bin/sluice-crr
RULES=$BENCH/kubeproxy_rules.py

fail() { echo "kubeproxy_bench: $*" >&2; exit 1; }
(( EUID == 0 )) || fail "needs root (network namespaces, BPF, netfilter)"
(( BACKENDS >= 1 && BACKENDS <= 20 )) || fail "KP_BACKENDS must be 1..20"
[[ -x $CRR ]] || fail "$CRR is missing (build tools/bench)"
case ${KP_IPTABLES:-default} in
  default) IPTABLES_RESTORE=iptables-restore ;;
  legacy) IPTABLES_RESTORE=iptables-legacy-restore ;;
  nft) IPTABLES_RESTORE=iptables-nft-restore ;;
  *) fail "KP_IPTABLES must be default, legacy or nft" ;;
esac
for mode in "${MODES[@]}"; do
  case $mode in
    sluice)
      for f in "$SLUICED" "$SLUICECTL" "$BUILD/lib/sluice/plugins/conntrack.so" \
               "$BUILD/lib/sluice/plugins/nat.so"; do
        [[ -e $f ]] || fail "$f is missing (build with -DSLUICE_PLUGINS including conntrack;nat)"
      done ;;
    iptables) command -v "$IPTABLES_RESTORE" >/dev/null ||
                fail "$IPTABLES_RESTORE is missing (tools/install-deps.sh installs iptables)" ;;
    nftables) command -v nft >/dev/null || fail "nft is missing (tools/install-deps.sh installs nftables)" ;;
    *) fail "unknown mode '$mode' in KP_MODES (sluice, iptables, nftables)" ;;
  esac
done
python3 "$RULES" selftest || fail "kubeproxy_rules.py does not name chains as kube-proxy does"

# shellcheck source=../lab/topology.sh
source "$REPO/tools/lab/topology.sh"
ID=slkp-$$
WORK=$(mktemp -d /tmp/sluice-kp.XXXXXX)
NAMESPACES=() SERVER_PIDS=() SLUICE_CELLS=()
declare -A DAEMON_PIDS   # sluice cell -> its sluiced
declare -A VIP_OF        # number of services -> the target's cluster IP

# Namespace of a cell's role: node, client, ext, b1..bN (backends).
ns_of() { echo "$ID-$1-$2"; }
in_ns() { local ns=$1; shift; ip netns exec "$ns" "$@"; }
# sluiced must be entered with nsenter: `ip netns exec` remounts /sys and
# hides the shared bpffs (README.md, "Running sluiced").
in_ns_keeping_bpffs() { local ns=$1; shift; nsenter --net="/run/netns/$ns" "$@"; }
backend_ip() { echo "10.65.$(( $1 + 1 )).2"; }   # backend 1 is workload 2 (cali2)
backend_list() {
  local i list=
  for (( i = 1; i <= BACKENDS; i++ )); do list+=${list:+,}$(backend_ip "$i"); done
  echo "$list"
}
pin_prefix() { [[ $PIN == same ]] && command -v taskset >/dev/null && echo "taskset -c 0"; return 0; }

cleanup() {
  set +e
  local cell pid
  for cell in "${!DAEMON_PIDS[@]}"; do
    kill -TERM "${DAEMON_PIDS[$cell]}" 2>/dev/null && wait "${DAEMON_PIDS[$cell]}" 2>/dev/null
  done
  for cell in "${SLUICE_CELLS[@]}"; do
    [[ -e /run/netns/$(ns_of "$cell" node) ]] &&
      in_ns_keeping_bpffs "$(ns_of "$cell" node)" "$SLUICED" --config "$WORK/$cell/sluice.toml" --cleanup \
        >/dev/null 2>&1
    rm -rf "/sys/fs/bpf/$ID-$cell"
  done
  for pid in "${SERVER_PIDS[@]}"; do kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null; done
  # The iptables and nftables rules live in the node namespaces and go
  # with them.
  lab_destroy "${NAMESPACES[@]}"
  if [[ -n ${KP_KEEP_WORK:-} ]]; then echo "kubeproxy_bench: work directory kept: $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# make_lab <cell>: node, client (workload 1), backends (workloads 2..) with
# a sluice-crr server each, and the uplink namespace lab_create always makes.
make_lab() {
  local cell=$1 node client ext i backend
  node=$(ns_of "$cell" node) client=$(ns_of "$cell" client) ext=$(ns_of "$cell" ext)
  NAMESPACES+=("$node" "$client" "$ext")
  for (( i = 1; i <= BACKENDS; i++ )); do NAMESPACES+=("$(ns_of "$cell" "b$i")"); done
  lab_create "$node" "$client" "$(ns_of "$cell" b1)" "$ext"
  for (( i = 2; i <= BACKENDS; i++ )); do lab_add_workload "$node" "$(ns_of "$cell" "b$i")" $(( i + 1 )); done
  # Widest ephemeral range: a client port comes back less often, so fewer
  # new connections land on a conntrack entry of a previous one.
  in_ns "$client" sysctl -qw net.ipv4.ip_local_port_range="1024 65535"
  mkdir -p "$WORK/$cell"
  for (( i = 1; i <= BACKENDS; i++ )); do
    backend=$(ns_of "$cell" "b$i")
    # Not through in_ns: a function would run in a subshell and $! would
    # not be the server (ip netns exec and taskset exec it).
    # shellcheck disable=SC2046
    ip netns exec "$backend" $(pin_prefix) "$CRR" server "$(backend_ip "$i")" "$BACKEND_PORT" "$SIZE" \
      >"$WORK/$cell/server-$i.log" 2>&1 &
    SERVER_PIDS+=($!)
  done
  for (( i = 1; i <= BACKENDS; i++ )); do
    for _ in $(seq 50); do grep -q listening "$WORK/$cell/server-$i.log" 2>/dev/null && break; sleep 0.1; done
    grep -q listening "$WORK/$cell/server-$i.log" || fail "backend $i of $cell did not start: $(cat "$WORK/$cell/server-$i.log")"
  done
}

elapsed_since() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN {printf "%.1f", b - a}'; }
# Seconds from the first line of a sluiced log to the first line containing
# <text> (its lines start with 2026-11-27T16:12:56.803).
log_seconds_to() { # <log> <text>
  awk -v text="$2" '
    { split(substr($1, 12), t, ":"); now = t[1] * 3600 + t[2] * 60 + t[3] }
    NR == 1 { first = now }
    index($0, text) { printf "%.2f", now - first; exit }' "$1"
}

# load_sluice <cell> <services>: sluiced in the cell's node with the services
# in its state directory; returns when `sluicectl nat dump` lists them all.
load_sluice() {
  local cell=$1 services=$2 node started count
  node=$(ns_of "$cell" node)
  mkdir -p "$WORK/$cell/state"
  python3 "$RULES" sluice --services "$services" --backends "$(backend_list)" --node-name "$node" \
    >"$WORK/$cell/state/services.toml"
  cat >"$WORK/$cell/sluice.toml" <<TOML
[node]
name = "$node"
[bpf]
instance = "$ID-$cell"
[metrics]
listen = ""
[plugins]
dir = "$BUILD/lib/sluice/plugins"
enabled = ["conntrack", "nat"]
[plugins.conntrack]
fast_path = $SLUICE_FAST_PATH
[state]
dir = "$WORK/$cell/state"
TOML
  SLUICE_CELLS+=("$cell")
  started=$(date +%s.%N)
  # nsenter execs sluiced, so $! is the daemon (through a function it would
  # be a subshell, and SIGTERM would not reach sluiced).
  nsenter --net="/run/netns/$node" "$SLUICED" --config "$WORK/$cell/sluice.toml" >"$WORK/$cell/daemon.log" 2>&1 &
  DAEMON_PIDS[$cell]=$!
  for _ in $(seq 600); do
    kill -0 "${DAEMON_PIDS[$cell]}" 2>/dev/null || { tail -n 20 "$WORK/$cell/daemon.log" >&2; fail "sluiced of $cell exited"; }
    count=$(in_ns_keeping_bpffs "$node" "$SLUICECTL" --config "$WORK/$cell/sluice.toml" -o json nat dump 2>/dev/null |
            python3 -c 'import json, sys; print(len(json.load(sys.stdin)))' 2>/dev/null || echo 0)
    if (( count == services )); then
      echo "#   $cell: nat applied the services $(log_seconds_to "$WORK/$cell/daemon.log" "plugin 'nat' applied")" \
           "s after sluiced's first log line; sluicectl nat dump lists all $count $(elapsed_since "$started") s" \
           "after the start"
      return 0
    fi
    sleep 0.2
  done
  fail "sluiced of $cell shows $count of $services services after 2 minutes"
}

load_iptables() { # <cell> <services>
  local cell=$1 services=$2 node rules started position
  node=$(ns_of "$cell" node) rules=$WORK/$cell/iptables.rules
  python3 "$RULES" iptables --services "$services" --backends "$(backend_list)" >"$rules"
  started=$(date +%s.%N)
  in_ns "$node" "$IPTABLES_RESTORE" <"$rules" || fail "$IPTABLES_RESTORE refused $rules"
  # Where the target's rule sits in KUBE-SERVICES as loaded (line 1 is -N).
  local loaded=$WORK/$cell/kube-services.loaded
  in_ns "$node" "${IPTABLES_RESTORE%-restore}" -t nat -S KUBE-SERVICES >"$loaded"
  position=$(grep -n -- "-d ${VIP_OF[$services]}/32 " "$loaded" | cut -d: -f1)
  echo "#   $cell: $(wc -l <"$rules") lines in $(elapsed_since "$started") s; the target's rule is" \
       "number $(( position - 1 )) of $(( $(wc -l <"$loaded") - 1 )) in KUBE-SERVICES"
}

load_nftables() { # <cell> <services>
  local cell=$1 services=$2 node rules started
  node=$(ns_of "$cell" node) rules=$WORK/$cell/nftables.rules
  python3 "$RULES" nftables --services "$services" --backends "$(backend_list)" --node-ip 10.64.0.1 >"$rules"
  started=$(date +%s.%N)
  in_ns "$node" nft -f "$rules" || fail "nft refused $rules"
  echo "#   $cell: $(wc -l <"$rules") lines in $(elapsed_since "$started") s"
}

# measure <cell> <seconds> [warmup_ms] -> sluice-crr's result line
measure() {
  # shellcheck disable=SC2046
  in_ns "$(ns_of "$1" client)" $(pin_prefix) "$CRR" client "${VIP_OF[${1##*-}]}" "$SERVICE_PORT" \
    "$2" "$SIZE" "${3:-300}"
}

# TIME_WAIT sockets in a cell's client and backends.
time_wait_sockets() { # <cell>
  local ns total=0
  for ns in "$(ns_of "$1" client)" $(for (( i = 1; i <= BACKENDS; i++ )); do ns_of "$1" "b$i"; done); do
    total=$(( total + $(in_ns "$ns" ss -Htan state time-wait | wc -l) ))
  done
  echo "$total"
}

# A value from sluice-crr's "key value key value ..." line.
field() { awk -v key="$2" '{for (i = 1; i < NF; i += 2) if ($i == key) print $(i + 1)}' <<<"$1"; }

echo "# kubeproxy_bench: new connections through a service address; services: ${SERVICE_COUNTS[*]};" \
     "modes: ${MODES[*]}; $BACKENDS backends per service; $ROUNDS rounds x ${SECONDS_PER_RUN} s per cell"
echo "# $(nproc) CPUs, Linux $(uname -r), load average $(cut -d' ' -f1-3 /proc/loadavg), pin=$PIN," \
     "request/response $SIZE bytes"
for mode in "${MODES[@]}"; do
  case $mode in
    iptables) echo "# iptables: $("$IPTABLES_RESTORE" --version 2>&1 | head -1)" ;;
    nftables) echo "# nftables: $(nft --version)" ;;
  esac
done

CELLS=()
echo "# loading (each cell is its own lab, namespaces $ID-<mode>-<services>-*):"
for services in "${SERVICE_COUNTS[@]}"; do
  VIP_OF[$services]=$(python3 "$RULES" vip --services "$services" --target "$TARGET")
  echo "#   $services services: the client connects to ${VIP_OF[$services]}:$SERVICE_PORT ($TARGET service)"
  for mode in "${MODES[@]}"; do
    cell=$mode-$services
    make_lab "$cell"
    "load_$mode" "$cell" "$services"
    # Stop here, with the reason, if the service address does not lead to a
    # backend (nothing else in the lab answers on it).
    check=$(measure "$cell" 0.05 0 2>&1) || fail "no connection through the service address in $cell: $check"
    CELLS+=("$cell")
  done
done

RESULTS=$WORK/results.tsv
printf 'round\tmode\tservices\trate\tconnect_p50\tconnect_p99\tresponse_p50\tresponse_p99\tfailed\n' >"$RESULTS"
echo
printf '%-5s %-9s %8s %8s %12s %8s %13s %8s %6s\n' round mode services conn/s "connect p50" p99 \
  "response p50" p99 failed
for (( round = 1; round <= ROUNDS; round++ )); do
  # Rotate the order each round so no cell always runs first or after the
  # same neighbour.
  for (( i = 0; i < ${#CELLS[@]}; i++ )); do
    cell=${CELLS[$(( (i + round - 1) % ${#CELLS[@]} ))]}
    mode=${cell%-*} services=${cell##*-}
    line=$(measure "$cell" "$SECONDS_PER_RUN") || fail "measurement of $cell failed: $line"
    values=()
    for key in rate connect_p50_us connect_p99_us response_p50_us response_p99_us failed; do
      values+=("$(field "$line" "$key")")
    done
    printf '%s\t%s\t%s\t%s\n' "$round" "$mode" "$services" "$(IFS=$'\t'; echo "${values[*]}")" >>"$RESULTS"
    printf '%-5s %-9s %8s %8s %12s %8s %13s %8s %6s\n' "$round" "$mode" "$services" "${values[@]}"
  done
done

# What the short connections left behind: with the client's RST close there
# should be no TIME_WAIT socket anywhere, and conntrack entries bounded by the
# client's port range, far from the tables' sizes.
echo
echo "# load average after the rounds: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "# left after the rounds (TIME_WAIT: client and backends; conntrack: the node's table):"
for cell in "${CELLS[@]}"; do
  node=$(ns_of "$cell" node)
  if [[ $cell == sluice-* ]]; then
    read -r entries stubs size dropped < <(
      in_ns_keeping_bpffs "$node" "$SLUICECTL" --config "$WORK/$cell/sluice.toml" -o json conntrack stats |
      python3 -c 'import json, sys; s = json.load(sys.stdin)
print(s["entries"], s["nat_fwd_entries"], s["table_size"], s["table_full_dropped_total"])')
    tracked="Sluice conntrack $entries entries ($stubs of them NAT_FWD stubs) of $size, $dropped new flows dropped for a full table"
  else
    entries=$(in_ns "$node" cat /proc/sys/net/netfilter/nf_conntrack_count)
    tracked="nf_conntrack $entries entries of $(in_ns "$node" cat /proc/sys/net/netfilter/nf_conntrack_max)"
  fi
  echo "#   $cell: $(time_wait_sockets "$cell") TIME_WAIT sockets; $tracked"
done

python3 "$BENCH/kubeproxy_report.py" "$RESULTS"
