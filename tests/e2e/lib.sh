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
  E2E_ID=$(printf 'sle%x%04x' $$ $RANDOM)
  NS_NODE=$E2E_ID-node NS_W1=$E2E_ID-w1 NS_W2=$E2E_ID-w2 NS_EXT=$E2E_ID-ext
  INSTANCE=$E2E_ID
  WORK=$(mktemp -d "/tmp/sluice-e2e-$1.XXXXXX")
  CONFIG=$WORK/sluice.toml
  DAEMON_PID=
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
  lab_destroy "$NS_NODE" "$NS_W1" "$NS_W2" "$NS_EXT"
  if ((rc != 0)) && [[ -f $WORK/daemon.log ]]; then
    echo "---- sluiced log ----"; tail -n 40 "$WORK/daemon.log"
  fi
  [[ -n ${E2E_KEEP_WORK:-} ]] || rm -rf "$WORK"
  exit $rc
}

fail() { echo "FAIL: $*" >&2; exit 1; }
assert_eq() { # <expected> <actual> <what>
  [[ "$1" == "$2" ]] || fail "$3: expected '$1', got '$2'"
  echo "ok: $3 = $2"
}

in_node() { nsenter --net="/run/netns/$NS_NODE" "$@"; }
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

# wait_ready <"sluiced ready" lines logged before>: until one more appears.
wait_ready() {
  for _ in $(seq 100); do
    (( $(grep -c "sluiced ready" "$WORK/daemon.log" || true) > $1 )) && return 0
    kill -0 "$DAEMON_PID" 2>/dev/null || { cat "$WORK/daemon.log"; fail "sluiced exited during start"; }
    sleep 0.1
  done
  cat "$WORK/daemon.log"; fail "sluiced did not become ready within 10s"
}

start_daemon() {
  local ready_count
  ready_count=$(grep -c "sluiced ready" "$WORK/daemon.log" 2>/dev/null || true)
  # nsenter execs sluiced, so $! is the daemon itself (a function would add a subshell).
  nsenter --net="/run/netns/$NS_NODE" "$SLUICED" --config "$CONFIG" >>"$WORK/daemon.log" 2>&1 &
  DAEMON_PID=$!
  wait_ready "${ready_count:-0}"
}

# SIGHUP: sluiced checks the config file and re-executes itself with it.
reload_daemon() {
  local ready_count
  ready_count=$(grep -c "sluiced ready" "$WORK/daemon.log" || true)
  kill -HUP "$DAEMON_PID"
  wait_ready "$ready_count"
}

stop_daemon() {
  kill -TERM "$DAEMON_PID"
  wait "$DAEMON_PID" || fail "sluiced exited with an error on SIGTERM"
  DAEMON_PID=
}

# counter <interface> <hook> <reason> -> packets
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

has_clsact() { tc -n "$1" qdisc show dev "$2" | grep -q clsact; }

# send_udp <from ns> <ip> <port> <count> [interval_us]
send_udp() { ip netns exec "$1" "$UDP_STREAM" send "$2" "$3" "$4" "${5:-1000}"; }
