#!/usr/bin/env bash
# Services through sluiced: a [[service]] file in the state directory makes a
# cluster IP that spreads connections over its backends, each backend sees
# the client's own address, replies come back from the service address;
# editing the file moves new connections, a broken file changes nothing.
source "$(dirname "$0")/lib.sh"
e2e_init service
echo_py="python3 $(dirname "$0")/tcp_echo.py"

state=$WORK/state
mkdir -p "$state"
write_config '["conntrack", "nat"]' "[state]
dir = \"$state\""
service() { # <backends toml>
  cat >"$state/services.toml" <<TOML
[[service]]
name = "echo"
cluster_ip = "10.96.0.10"
ports = [{ port = 80, protocol = "tcp", target_port = 8080 }]
backends = [$1]
TOML
}
service '{ ip = "10.65.2.2" }, { ip = "10.64.0.2" }'

ip netns exec "$NS_W2" $echo_py serve w2 8080 >/dev/null &
ip netns exec "$NS_EXT" $echo_py serve ext 8080 >/dev/null &
start_daemon
sleep 0.5

ip netns exec "$NS_W1" $echo_py ask 10.96.0.10 80 20 >"$WORK/answers"
grep -q error "$WORK/answers" && { cat "$WORK/answers"; fail "connections to the cluster IP failed"; }
assert_eq 20 "$(grep -c ' 10.65.1.2$' "$WORK/answers")" "answers that saw the client's own address"
(( $(grep -c '^w2 ' "$WORK/answers") > 0 && $(grep -c '^ext ' "$WORK/answers") > 0 )) \
  || { sort "$WORK/answers" | uniq -c; fail "connections were not spread over both backends"; }
echo "ok: spread $(grep -c '^w2 ' "$WORK/answers") / $(grep -c '^ext ' "$WORK/answers") over w2 / ext"
ctl -o json nat dump | grep -q '10.96.0.10' || fail "nat dump does not show the frontend"

# Remove a backend: new connections only go to the other one.
applied=$(daemon_log_count "plugin 'nat' applied")
service '{ ip = "10.65.2.2" }'
wait_daemon_log "plugin 'nat' applied" "$applied" "nat to apply the change"
ip netns exec "$NS_W1" $echo_py ask 10.96.0.10 80 10 >"$WORK/answers2"
assert_eq 10 "$(grep -c '^w2 ' "$WORK/answers2")" "connections to the remaining backend"

# A broken file is rejected whole; the service keeps working as it was.
printf '[[service]]\nname = "echo"\ncluster_ip = "not-an-ip"\n' >"$state/services.toml"
sleep 0.5
grep -q "services.toml:3:" "$WORK/daemon.log" || fail "the bad file's error does not name file:line"
ip netns exec "$NS_W1" $echo_py ask 10.96.0.10 80 3 >"$WORK/answers3"
assert_eq 3 "$(grep -c '^w2 ' "$WORK/answers3")" "connections after a rejected file"
stop_daemon
echo PASS
