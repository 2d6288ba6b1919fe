#!/usr/bin/env bash
# A plugin whose stage is missing from the chain (here: it declares a stage
# but loads no program) leaves a hole: workload hooks fail closed with reason
# missed-tail-call, uplinks follow their "pass" rule, both counted.
source "$(dirname "$0")/lib.sh"
e2e_init failclosed

write_config '["good_plugin"]'
sed -i "s|^dir = .*|dir = \"$E2E_BUILD/tests/unit/fixture_plugins\"|" "$CONFIG"
start_daemon
grep -q "good_plugin" "$WORK/daemon.log" || fail "the daemon did not report the broken plugin"

N=20
ip netns exec "$NS_W2" "$UDP_STREAM" recv 7001 $N 3 >"$WORK/recv.out" &
recv_pid=$!
sleep 0.3
send_udp "$NS_W1" 10.65.2.2 7001 $N 1000
wait $recv_pid && fail "datagrams crossed a hook whose chain has a hole"
grep -q "received 0 of $N" "$WORK/recv.out" || { cat "$WORK/recv.out"; fail "some datagrams passed"; }
assert_eq $N "$(counter cali1 ingress missed-tail-call)" "cali1 ingress missed-tail-call drops"
assert_eq 0 "$(counter cali1 ingress accepted)" "cali1 ingress accepted"

# The uplink's rule is "pass": the node itself stays reachable.
ip netns exec "$NS_EXT" ping -c 3 -i 0.2 -W 1 10.64.0.1 >/dev/null || fail "uplink failed closed"
assert_eq 3 "$(counter eth0 ingress passed-missed-tail-call)" "eth0 ingress passed-missed-tail-call"

# tc -s shows the drops on the qdisc.
drops=$(tc -n "$NS_NODE" -s qdisc show dev cali1 | grep -A1 clsact | sed -n 's/.*dropped \([0-9]*\).*/\1/p')
(( drops >= N )) || fail "tc -s qdisc shows $drops drops on cali1, expected >= $N"
echo "ok: tc shows $drops drops"

ctl plugins | tee "$WORK/plugins.out"
grep -qi "fail" "$WORK/plugins.out" || fail "sluicectl plugins does not show the failure"
grep -q "MISSING" "$WORK/plugins.out" || fail "sluicectl plugins does not show the hole"
stop_daemon
echo PASS
