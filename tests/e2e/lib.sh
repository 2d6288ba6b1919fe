# Shared helpers for Sluice's end-to-end tests (bash). Source it, then call
# e2e_init. Every test gets uniquely named namespaces and a unique pin
# instance, and tears everything down on exit, also when it fails.
set -euo pipefail

E2E_BUILD=${SLUICE_BUILD_DIR:?SLUICE_BUILD_DIR must point at the build tree}
E2E_REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
SLUICED=$E2E_BUILD/bin/sluiced
SLUICECTL=$E2E_BUILD/bin/sluicectl
UDP_STREAM=$E2E_BUILD/bin/udp_stream
# shellcheck source=../../tools/lab/topology.sh
source "$E2E_REPO/tools/lab/topology.sh"

e2e_init() { # <short test name>
  # E2E_ID_PREFIX: whose tests these are, when several people share a machine.
  E2E_ID=$(printf '%s%x%04x' "${E2E_ID_PREFIX:-sle}" $$ $RANDOM)
  NS_NODE=$E2E_ID-node NS_W1=$E2E_ID-w1 NS_W2=$E2E_ID-w2 NS_EXT=$E2E_ID-ext
  INSTANCE=$E2E_ID
  WORK=$(mktemp -d "/tmp/sluice-e2e-$1.XXXXXX")
  CONFIG=$WORK/sluice.toml
  DAEMON_PID=
  E2E_EXTRA_NS=()
  trap e2e_teardown EXIT
  lab_create "$NS_NODE" "$NS_W1" "$NS_W2" "$NS_EXT"
  echo "# test $1: namespaces $E2E_ID-*, instance $INSTANCE, work dir $WORK"
}

e2e_teardown() {
  local rc=$?
  set +e
  if [[ -n ${DAEMON_PID:-} ]] && kill -0 "$DAEMON_PID" 2>/dev/null; then
    kill -TERM "$DAEMON_PID"; wait "$DAEMON_PID" 2>/dev/null
  fi
  # Servers and clients a test left in the background would outlive their
  # namespaces (and hold ctest's output pipe open).
  local jobs_left
  jobs_left=$(jobs -p)
  [[ -n $jobs_left ]] && kill $jobs_left 2>/dev/null
  if [[ -f $CONFIG ]] && [[ -e /run/netns/$NS_NODE ]]; then
    in_node "$SLUICED" --config "$CONFIG" --cleanup >/dev/null 2>&1
  fi
  rm -rf "/sys/fs/bpf/$INSTANCE"
  # A test's own clean-up (cgroups, mounts it made), if it defines one.
  if declare -F e2e_test_teardown >/dev/null; then e2e_test_teardown; fi
  lab_destroy "$NS_NODE" "$NS_W1" "$NS_W2" "$NS_EXT" "${E2E_EXTRA_NS[@]}"
  if ((rc != 0)) && [[ -f $WORK/daemon.log ]]; then
    echo "---- sluiced log ----"; tail -n 40 "$WORK/daemon.log"
  fi
  [[ -n ${E2E_KEEP_WORK:-} ]] || rm -rf "$WORK"
  exit $rc
}

# e2e_add_workload <n>: one more workload beside w1 and w2, namespace
# $E2E_ID-w<n> with eth0 10.65.<n>.2 on the node's cali<n> (10.65.<n>.1).
# Add workloads before start_daemon, or wait for sluiced to attach cali<n>.
e2e_add_workload() {
  local ns=$E2E_ID-w$1
  E2E_EXTRA_NS+=("$ns")
  lab_ns_add "$ns"
  lab_wire "$NS_NODE" "cali$1" "10.65.$1.1/24" "$ns" eth0 "10.65.$1.2/24"
  ip -n "$ns" route add default via "10.65.$1.1"
}

# e2e_enable_ipv6: IPv6 on the two workloads' links (off in the lab, see
# tools/lab/topology.sh): w<n> eth0 fd00:65:<n>::2/64, the node's cali<n>
# fd00:65:<n>::1/64, default routes via the node, forwarding on. Neighbours
# are left to neighbour discovery (link-local sources), as on a real node.
e2e_enable_ipv6() {
  in_node sysctl -qw net.ipv6.conf.all.forwarding=1
  local n ns
  for n in 1 2; do
    ns=$E2E_ID-w$n
    in_node sysctl -qw "net.ipv6.conf.cali$n.disable_ipv6=0"
    in_ns "$ns" sysctl -qw net.ipv6.conf.eth0.disable_ipv6=0
    ip -n "$NS_NODE" addr add "fd00:65:$n::1/64" dev "cali$n" nodad
    ip -n "$ns" addr add "fd00:65:$n::2/64" dev eth0 nodad
    ip -n "$ns" -6 route add default via "fd00:65:$n::1"
  done
}

fail() { echo "FAIL: $*" >&2; exit 1; }
assert_eq() { # <expected> <actual> <what>
  [[ "$1" == "$2" ]] || fail "$3: expected '$1', got '$2'"
  echo "ok: $3 = $2"
}

# in_ns <ns> <command...>: run in the namespace's network only (`ip netns
# exec` would also remount /sys and hide the shared bpffs).
in_ns() { local ns=$1; shift; nsenter --net="/run/netns/$ns" "$@"; }
# spawn_in_ns <ns> <command...>: the same in the background. nsenter execs
# the command, so $! is the command itself and teardown's kill reaches it
# (`in_ns ... &` would fork a subshell and leave the command orphaned).
spawn_in_ns() { local ns=$1; shift; nsenter --net="/run/netns/$ns" "$@" & }
in_node() { in_ns "$NS_NODE" "$@"; }
ctl() { in_node "$SLUICECTL" --config "$CONFIG" "$@"; }

# write_config [enabled plugins toml list] [extra toml]
write_config() {
  cat >"$CONFIG" <<TOML
[node]
name = "$E2E_ID-node"
[bpf]
instance = "$INSTANCE"
[plugins]
dir = "$E2E_BUILD/lib/sluice/plugins"
enabled = ${1:-[]}
${2:-}
TOML
}

# daemon_log_count <text>: lines of the daemon log (all runs) that hold it.
daemon_log_count() {
  [[ -f $WORK/daemon.log ]] || { echo 0; return; }
  grep -c -- "$1" "$WORK/daemon.log" || true
}

# wait_daemon_log <text> <count before> <what>: until the daemon logs the
# text once more than it had (count taken with daemon_log_count before).
wait_daemon_log() {
  for _ in $(seq 100); do
    (( $(daemon_log_count "$1") > $2 )) && return 0
    sleep 0.1
  done
  fail "timed out waiting for $3 (\"$1\" in the daemon log)"
}

# launch_daemon: start sluiced in the node namespace without waiting for it
# (it may have to wait for the instance lock of a running one first).
launch_daemon() {
  DAEMON_READY_BEFORE=$(daemon_log_count "sluiced ready")
  DAEMON_DIRECT_BEFORE=$(daemon_log_count "direct tail calls in place")
  # nsenter execs sluiced, so $! is the daemon itself (a function would add a subshell).
  nsenter --net="/run/netns/$NS_NODE" "$SLUICED" --config "$CONFIG" >>"$WORK/daemon.log" 2>&1 &
  DAEMON_PID=$!
}

# wait_daemon_ready: until $DAEMON_PID logs one more "sluiced ready" than
# before launch_daemon (or reload_daemon).
wait_daemon_ready() {
  for _ in $(seq 100); do
    (( $(daemon_log_count "sluiced ready") > DAEMON_READY_BEFORE )) && return 0
    kill -0 "$DAEMON_PID" 2>/dev/null || { cat "$WORK/daemon.log"; fail "sluiced exited during start"; }
    sleep 0.1
  done
  cat "$WORK/daemon.log"; fail "sluiced did not become ready within 10s"
}

start_daemon() {
  launch_daemon
  wait_daemon_ready
}

# wait_direct_tail_calls: until the daemon started last has given every chain
# position of the roles with interfaces its own instance of the stage
# program (direct tail calls, sdk/ABI.md), which it does after "ready".
wait_direct_tail_calls() {
  wait_daemon_log "direct tail calls in place" "$DAEMON_DIRECT_BEFORE" "direct tail calls"
}

# reload_daemon: SIGHUP, then wait for the re-executed daemon (same pid).
reload_daemon() {
  DAEMON_READY_BEFORE=$(daemon_log_count "sluiced ready")
  DAEMON_DIRECT_BEFORE=$(daemon_log_count "direct tail calls in place")
  kill -HUP "$DAEMON_PID"
  wait_daemon_ready
}

stop_daemon() {
  kill -TERM "$DAEMON_PID"
  wait "$DAEMON_PID" || fail "sluiced exited with an error on SIGTERM"
  DAEMON_PID=
}

wait_file() { # <file> <what>
  for _ in $(seq 200); do [[ -e $1 ]] && return 0; sleep 0.05; done
  fail "timed out waiting for $2"
}

# counter <interface> <hook> <reason> -> packets
# clsact_drops <dev>: packets the clsact qdisc of the node's <dev> dropped
# (what the BPF programs returned TC_ACT_SHOT for).
clsact_drops() {
  tc -n "$NS_NODE" -s qdisc show dev "$1" | grep -A1 clsact | sed -n 's/.*dropped \([0-9]*\).*/\1/p'
}

counter() {
  ctl -o json counters dump | python3 -c '
import json, sys
rows = json.load(sys.stdin)
iface, hook, reason = sys.argv[1:4]
print(sum(r["packets"] for r in rows
          if r["interface"] == iface and r["hook"] == hook and r["reason"] == reason))
' "$1" "$2" "$3"
}

# prog id of our filter on <ns> <dev> <ingress|egress>, empty if none
filter_prog_id() {
  tc -n "$1" filter show dev "$2" "$3" 2>/dev/null | sed -n 's/.*handle 0x51ce .* id \([0-9]*\).*/\1/p' | head -1
}

# dataplane_snapshot: the program on every hook of the node's interfaces and
# the id of every pinned object of the instance, to assert "unchanged".
dataplane_snapshot() {
  local d h pin
  for d in cali1 cali2 eth0; do
    for h in ingress egress; do echo "$d $h $(filter_prog_id "$NS_NODE" $d $h)"; done
  done
  find "/sys/fs/bpf/$INSTANCE" -type f | sort | while read -r pin; do
    echo "$pin $( (bpftool -j map show pinned "$pin" 2>/dev/null || bpftool -j prog show pinned "$pin" 2>/dev/null || bpftool -j link show pinned "$pin") |
      python3 -c 'import json, sys; print(json.load(sys.stdin)["id"])')"
  done
}

has_clsact() { tc -n "$1" qdisc show dev "$2" | grep -q clsact; }

# send_udp <from ns> <ip> <port> <count> [interval_us]
# start_listener <ns> <output file> <command...>: runs a server (udp_stream
# recv, tcp_echo.py serve...) in the background (LISTENER_PID) and returns
# once it prints "listening", i.e. has bound its port: nothing sent
# afterwards can miss it.
start_listener() {
  local ns=$1 out=$2
  shift 2
  spawn_in_ns "$ns" "$@" >"$out"
  LISTENER_PID=$!
  for _ in $(seq 100); do
    grep -q listening "$out" 2>/dev/null && return 0
    kill -0 "$LISTENER_PID" 2>/dev/null || { cat "$out"; fail "$* in $ns exited"; }
    sleep 0.05
  done
  fail "$* in $ns did not listen within 5 s"
}
send_udp() { ip netns exec "$1" "$UDP_STREAM" send "$2" "$3" "$4" "${5:-1000}"; }
