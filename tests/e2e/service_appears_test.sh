#!/usr/bin/env bash
# A flow that exists before its service is NATed as soon as the service
# appears: a workload streams UDP to an address that is no service yet (so
# conntrack tracks it untranslated, refreshed by every packet), then the
# [[service]] for that address is written. nat deletes the untranslated
# entries towards the new frontend, and the backend receives the stream from
# right after the service is applied.
source "$(dirname "$0")/lib.sh"
e2e_init svcappears

state=$WORK/state
mkdir -p "$state"
write_config '["conntrack", "nat"]' "[state]
dir = \"$state\""
start_daemon

N=3000   # 6 s at one datagram every 2 ms, from one socket (one flow)
start_listener "$NS_W2" "$WORK/recv.out" "$UDP_STREAM" recv 9401 $N 10
ip netns exec "$NS_W1" "$UDP_STREAM" send 10.96.0.40 80 $N 2000 2>/dev/null &
sender=$!
sleep 1
ctl conntrack dump | grep -q "UDP 10.65.1.2:[0-9]* -> 10.96.0.40:80" ||
  fail "no untranslated conntrack entry for the stream before its service: $(ctl conntrack dump)"
applied=$(daemon_log_count "plugin 'nat' applied")
cat >"$state/late.toml" <<TOML
[[service]]
name = "late"
cluster_ip = "10.96.0.40"
ports = [{ port = 80, protocol = "udp", target_port = 9401 }]
backends = [{ ip = "10.65.2.2" }]
TOML
wait_daemon_log "plugin 'nat' applied" "$applied" "nat to apply the new service"
wait "$sender" || fail "the sender failed"
wait "$LISTENER_PID" || true
cat "$WORK/recv.out"
received=$(sed -n 's/^received \([0-9]*\) of.*/\1/p' "$WORK/recv.out")
# The service is applied about 1.5 s (750 datagrams) into the stream; allow 2.5 s.
(( received >= N - 1250 )) ||
  fail "the backend received $received of $N datagrams: the flow that existed before its service was not NATed"
stop_daemon
echo PASS
