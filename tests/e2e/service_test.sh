#!/usr/bin/env bash
# Services through sluiced: a [[service]] file in the state directory makes a
# cluster IP that spreads connections over its backends, each backend sees
# the client's own address, replies come back from the service address;
# editing the file moves new connections, a broken file changes nothing.
# With conntrack's fast_path on, established packets of these NAT flows are
# rewritten by the nat stage and redirected (counted "redirected").
source "$(dirname "$0")/lib.sh"
e2e_init service
echo_py="python3 $(dirname "$0")/tcp_echo.py"

state=$WORK/state
mkdir -p "$state"
write_config '["conntrack", "nat"]' "[state]
dir = \"$state\"
[plugins.conntrack]
fast_path = true"
service() { # <backends toml>
  cat >"$state/services.toml" <<TOML
[[service]]
name = "echo"
cluster_ip = "10.96.0.10"
ports = [{ port = 80, protocol = "tcp", target_port = 8080 }]
backends = [$1]
TOML
}
# A node port whose one backend is on another node (10.64.0.3, an address of
# the external namespace standing in for it): external clients are
# source-NATed to the node.
cat >"$state/remote.toml" <<TOML
[[service]]
name = "remote"
cluster_ip = "10.96.0.12"
ports = [{ port = 80, protocol = "tcp", target_port = 8080, node_port = 30080 }]
backends = [{ ip = "10.64.0.3", node = "elsewhere" }]
TOML
ip -n "$NS_EXT" addr add 10.64.0.3/24 dev eth0
# A service whose one backend is w2 itself, for hairpin.
cat >"$state/self.toml" <<TOML
[[service]]
name = "self"
cluster_ip = "10.96.0.11"
ports = [{ port = 80, protocol = "tcp", target_port = 8080 }]
backends = [{ ip = "10.65.2.2" }]
TOML
service '{ ip = "10.65.2.2" }, { ip = "10.64.0.2" }'

start_listener "$NS_W2" "$WORK/serve-w2.out" $echo_py serve w2 8080
start_listener "$NS_EXT" "$WORK/serve-ext.out" $echo_py serve ext 8080
start_daemon

ip netns exec "$NS_W1" $echo_py ask 10.96.0.10 80 20 >"$WORK/answers"
grep -q error "$WORK/answers" && { cat "$WORK/answers"; fail "connections to the cluster IP failed"; }
assert_eq 20 "$(grep -c ' 10.65.1.2$' "$WORK/answers")" "answers that saw the client's own address"
(( $(grep -c '^w2 ' "$WORK/answers") > 0 && $(grep -c '^ext ' "$WORK/answers") > 0 )) \
  || { sort "$WORK/answers" | uniq -c; fail "connections were not spread over both backends"; }
echo "ok: spread $(grep -c '^w2 ' "$WORK/answers") / $(grep -c '^ext ' "$WORK/answers") over w2 / ext"
ctl -o json nat dump | grep -q '10.96.0.10' || fail "nat dump does not show the frontend"
# Client requests (DNAT, then into w2's veth or out of the uplink) and w2's
# replies (reverse NAT, then into w1's veth) both take the fast path.
fp_client=$(counter cali1 ingress redirected)
fp_backend=$(counter cali2 ingress redirected)
(( fp_client > 0 && fp_backend > 0 )) \
  || fail "NAT flows did not take the fast path: redirected cali1 ingress $fp_client, cali2 ingress $fp_backend"
echo "ok: fast path for NAT flows: redirected cali1 ingress $fp_client, cali2 ingress $fp_backend"

# Hairpin: w2 reaches itself through its service; it sees the connection
# come from the hairpin address (169.254.42.1, the default), not from itself.
ip netns exec "$NS_W2" $echo_py ask 10.96.0.11 80 5 >"$WORK/hairpin"
grep -q error "$WORK/hairpin" && { cat "$WORK/hairpin"; fail "hairpin connections failed"; }
assert_eq 5 "$(grep -c '^w2 169.254.42.1$' "$WORK/hairpin")" "hairpin answers seen from 169.254.42.1"
grep -q svc-self <<<"$(ctl conntrack dump --raw)" || fail "conntrack dump --raw shows no svc-self flow"
echo "ok: hairpin through 10.96.0.11"

# The node port from outside, to the remote backend: it sees the node's
# address as the client; the client sees the node port answer.
ip netns exec "$NS_EXT" $echo_py ask 10.64.0.1 30080 5 >"$WORK/remote"
grep -q error "$WORK/remote" && { cat "$WORK/remote"; fail "node port to a remote backend failed"; }
assert_eq 5 "$(grep -c '^ext 10.64.0.1$' "$WORK/remote")" "remote-backend answers seen from the node"
grep -q src-nat <<<"$(ctl conntrack dump --raw)" || fail "conntrack dump --raw shows no src-nat flow"
echo "ok: node port to a remote backend, source-NATed to the node"
# The same node port from a workload, on the node's uplink address: the
# backend sees the workload itself; the reply, from the node's address, is
# routed by the stage (node-addr).
ip netns exec "$NS_W1" $echo_py ask 10.64.0.1 30080 3 >"$WORK/remote_w1"
grep -q error "$WORK/remote_w1" && { cat "$WORK/remote_w1"; fail "node port from a workload failed"; }
assert_eq 3 "$(grep -c '^ext 10.65.1.2$' "$WORK/remote_w1")" "node-port answers to a workload"
echo "ok: node port reached from a workload"

# Remove a backend: new connections only go to the other one.
applied=$(daemon_log_count "plugin 'nat' applied")
service '{ ip = "10.65.2.2" }'
wait_daemon_log "plugin 'nat' applied" "$applied" "nat to apply the change"
ip netns exec "$NS_W1" $echo_py ask 10.96.0.10 80 10 >"$WORK/answers2"
assert_eq 10 "$(grep -c '^w2 ' "$WORK/answers2")" "connections to the remaining backend"

# A broken file is rejected whole; the service keeps working as it was.
rejected=$(daemon_log_count "services.toml:3:")
printf '[[service]]\nname = "echo"\ncluster_ip = "not-an-ip"\n' >"$state/services.toml"
wait_daemon_log "services.toml:3:" "$rejected" "the bad file's error naming file:line"
ip netns exec "$NS_W1" $echo_py ask 10.96.0.10 80 3 >"$WORK/answers3"
assert_eq 3 "$(grep -c '^w2 ' "$WORK/answers3")" "connections after a rejected file"
stop_daemon
echo PASS
