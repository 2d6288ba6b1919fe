#!/usr/bin/env bash
# A state file rewritten in place in two writes (truncate and write the first
# service, a pause, append the second) is applied once, whole, after the
# directory has been quiet (300 ms): the second service never vanishes in
# between, and a UDP stream to it loses no datagram.
source "$(dirname "$0")/lib.sh"
e2e_init statepieces

state=$WORK/state
mkdir -p "$state"
write_config '["conntrack", "nat"]' "[state]
dir = \"$state\""
first_service() {
  cat <<TOML
[[service]]
name = "first"
cluster_ip = "10.96.0.20"
ports = [{ port = 80, protocol = "udp", target_port = 9001 }]
backends = [{ ip = "10.65.2.2" }]
TOML
}
second_service() {
  cat <<TOML
[[service]]
name = "second"
cluster_ip = "10.96.0.21"
ports = [{ port = 80, protocol = "udp", target_port = 9002 }]
backends = [{ ip = "10.65.2.2" }]
TOML
}
{ first_service; second_service; } >"$state/services.toml"
start_daemon

N=2000   # 4 s at one datagram every 2 ms
start_listener "$NS_W2" "$WORK/recv.out" "$UDP_STREAM" recv 9002 $N 20
ip netns exec "$NS_W1" "$UDP_STREAM" send 10.96.0.21 80 $N 2000 2>"$WORK/send-errors" &
sender=$!
sleep 0.5
applied=$(daemon_log_count "plugin 'nat' applied")
for _ in 1 2 3; do
  first_service >"$state/services.toml"    # truncated and written, then closed
  sleep 0.1
  second_service >>"$state/services.toml"  # the rest, appended
  sleep 0.6
done
wait "$sender" || fail "the sender failed"
wait "$LISTENER_PID" || true
cat "$WORK/recv.out"
grep -q "missing 0" "$WORK/recv.out" || fail "datagrams to the second service were lost while its file was rewritten in two writes"
[[ -s $WORK/send-errors ]] && { head -3 "$WORK/send-errors"; fail "the sender saw errors (the service vanished)"; }
# Each rewrite was applied once, whole.
assert_eq 3 $(( $(daemon_log_count "plugin 'nat' applied") - applied )) "applies of three two-piece rewrites"
ctl -o json nat dump | grep -q 10.96.0.21 || fail "the second service is not in nat dump"
stop_daemon
echo PASS
