#!/usr/bin/env bash
# A plugin whose BPF the verifier refuses is reported with the verifier's
# log, the daemon keeps running with the rest, and the refused stage stays in
# the chains as a hole: workload hooks fail closed with reason
# missed-tail-call, uplinks follow their "pass" rule, both counted.
source "$(dirname "$0")/lib.sh"
e2e_init failclosed

plugin_dir=$WORK/plugins
mkdir -p "$plugin_dir"
ln -s "$E2E_BUILD/tests/unit/fixture_plugins/verifier_reject.so" "$plugin_dir/"
enabled='["verifier_reject"]' log_table=
if [[ -f $E2E_BUILD/lib/sluice/plugins/log.so ]]; then
  ln -s "$E2E_BUILD/lib/sluice/plugins/log.so" "$plugin_dir/"
  enabled='["verifier_reject", "log"]'
  # Only with the plugin there: a table of a plugin that does not exist is refused.
  log_table='[plugins.log]
filter = "all"'
fi
write_config "$enabled" "$log_table"
sed -i "s|^dir = .*|dir = \"$plugin_dir\"|" "$CONFIG"
start_daemon
grep -q "plugin 'verifier_reject' failed to load its BPF programs" "$WORK/daemon.log" \
  || fail "the daemon did not report the refused plugin"
grep -q "invalid access to packet" "$WORK/daemon.log" || fail "the verifier's log is not in the report"
echo "ok: verifier rejection reported with the kernel's log"
if [[ $enabled == *log* ]]; then
  grep -q "plugin log .* loaded" "$WORK/daemon.log" || fail "the log plugin did not load beside the broken one"
fi

N=20
start_listener "$NS_W2" "$WORK/recv.out" "$UDP_STREAM" recv 7001 $N 3
recv_pid=$LISTENER_PID
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
grep -q "MISSING(verifier_reject" "$WORK/plugins.out" || fail "sluicectl plugins does not show the hole"
stop_daemon
echo PASS
