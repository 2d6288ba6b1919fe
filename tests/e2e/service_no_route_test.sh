#!/usr/bin/env bash
# A node port whose only backend is on another node the node has no route
# to: an external client's connection fails, and the counters say why —
# no-route on the uplink's ingress (nat found the backend but no way to it),
# not no-backend (which would send the operator looking at the service's
# endpoints instead of the node's routes). Once the route exists the same
# client gets through: the refused attempts left nothing behind.
source "$(dirname "$0")/lib.sh"
e2e_init service_no_route
echo_py="python3 $(dirname "$0")/tcp_echo.py"

state=$WORK/state
mkdir -p "$state"
write_config '["conntrack", "nat"]' "[state]
dir = \"$state\""
# 10.99.0.5 stands in for a pod on another node; the node has no default
# route (tools/lab/topology.sh), so nothing leads there.
cat >"$state/remote.toml" <<TOML
[[service]]
name = "unreachable"
cluster_ip = "10.96.0.13"
ports = [{ port = 80, protocol = "tcp", target_port = 8080, node_port = 30090 }]
backends = [{ ip = "10.99.0.5", node = "elsewhere" }]
TOML
ip -n "$NS_EXT" addr add 10.99.0.5/32 dev lo
start_listener "$NS_EXT" "$WORK/serve-ext.out" $echo_py serve remote 8080
start_daemon

ip netns exec "$NS_EXT" $echo_py ask 10.64.0.1 30090 1 >"$WORK/answers" || true
grep -q '^error' "$WORK/answers" || { cat "$WORK/answers"; fail "a connection to a backend without a route succeeded"; }
echo "ok: the connection failed ($(head -1 "$WORK/answers"))"
no_route=$(counter eth0 ingress no-route)
no_backend=$(counter eth0 ingress no-backend)
(( no_route > 0 )) || { ctl counters dump; fail "no-route was not counted on eth0 ingress"; }
assert_eq 0 "$no_backend" "no-backend drops on eth0 ingress"
ctl counters dump | grep -q "no-route" || { ctl counters dump; fail "sluicectl counters dump does not show no-route"; }
echo "ok: sluicectl counters dump shows no-route ($no_route packets), no no-backend"

# The node learns a route to the backend (via the external host, which
# holds it): the next connection is source-NATed to the node and answered.
ip -n "$NS_NODE" route add 10.99.0.5/32 via 10.64.0.2
ip netns exec "$NS_EXT" $echo_py ask 10.64.0.1 30090 1 >"$WORK/answers2"
assert_eq "remote 10.64.0.1" "$(cat "$WORK/answers2")" "the answer once the route exists"
stop_daemon
echo PASS
