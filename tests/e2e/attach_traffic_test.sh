#!/usr/bin/env bash
# sluiced attaches to existing and new interfaces of its roles, leaves the
# rest alone, traffic passes and the counters equal what was sent.
source "$(dirname "$0")/lib.sh"
e2e_init attach

# An interface that matches no role must never be touched.
ip -n "$NS_NODE" link add other0 type veth peer name other1
ip -n "$NS_NODE" link set other0 up

write_config "[]"
start_daemon

for dev in cali1 cali2 eth0; do
  has_clsact "$NS_NODE" $dev || fail "no clsact qdisc on $dev"
  [[ -n $(filter_prog_id "$NS_NODE" $dev ingress) ]] || fail "no ingress program on $dev"
  [[ -n $(filter_prog_id "$NS_NODE" $dev egress) ]] || fail "no egress program on $dev"
done
echo "ok: clsact + ingress/egress programs on cali1, cali2, eth0"
has_clsact "$NS_NODE" other0 && fail "other0 matches no role but got a clsact qdisc"
echo "ok: other0 untouched"

# Exactly N datagrams w1 -> w2, routed by the node: N on cali1 ingress and on
# cali2 egress (static neighbours, no IPv6: nothing else is on the wire).
N=200
start_listener "$NS_W2" "$WORK/recv.out" "$UDP_STREAM" recv 7000 $N 15
recv_pid=$LISTENER_PID
send_udp "$NS_W1" 10.65.2.2 7000 $N 500
wait $recv_pid || { cat "$WORK/recv.out"; fail "datagrams lost"; }
assert_eq $N "$(counter cali1 ingress accepted)" "cali1 ingress accepted packets"
assert_eq $N "$(counter cali2 egress accepted)" "cali2 egress accepted packets"
assert_eq 0 "$(counter cali1 egress accepted)" "cali1 egress accepted packets"

ip netns exec "$NS_EXT" ping -c 3 -i 0.2 -W 1 10.65.1.2 >/dev/null || fail "ext cannot reach w1"
assert_eq 3 "$(counter eth0 ingress accepted)" "eth0 ingress (echo requests)"
assert_eq 3 "$(counter eth0 egress accepted)" "eth0 egress (echo replies)"
assert_eq $((N + 3)) "$(counter cali1 ingress accepted)" "cali1 ingress after ping"

# tc -s shows the clsact qdisc with its statistics, as Calico users expect.
tc -n "$NS_NODE" -s qdisc show dev cali1 | grep -A1 clsact | grep -q "Sent" || fail "tc -s qdisc shows no clsact statistics"
echo "ok: tc -s qdisc shows clsact"

# A new workload interface is attached within one second, as the daemon's
# own log time says (the test's polling would add its own delay under load).
before=$(daemon_log_count "attached to cali3 ")
start_ms=$(date +%s%3N)
ip -n "$NS_NODE" link add cali3 type veth peer name peer3
wait_daemon_log "attached to cali3 " "$before" "cali3 to be attached"
logged=$(grep -- "attached to cali3 " "$WORK/daemon.log" | tail -1)
attached_ms=$(date -d "${logged%% *}" +%s%3N) || fail "no time on the daemon's log line: $logged"
(( attached_ms - start_ms <= 1000 )) || fail "cali3 attached $((attached_ms - start_ms)) ms after it appeared"
[[ -n $(filter_prog_id "$NS_NODE" cali3 ingress) && -n $(filter_prog_id "$NS_NODE" cali3 egress) ]] \
  || fail "sluiced logged cali3 as attached but it has no filters"
echo "ok: cali3 attached $((attached_ms - start_ms)) ms after it appeared"
has_clsact "$NS_NODE" peer3 && fail "peer3 matches no role but was touched"
ifstate=$(ctl -o json ifstate dump) || fail "sluicectl ifstate dump failed"
grep -q '"cali3"' <<<"$ifstate" || fail "cali3 missing from ifstate"

# A deleted interface is forgotten.
ip -n "$NS_NODE" link del cali3
for _ in $(seq 100); do
  ifstate=$(ctl -o json ifstate dump) || fail "sluicectl ifstate dump failed"
  grep -q '"cali3"' <<<"$ifstate" || break
  sleep 0.05
done
grep -q '"cali3"' <<<"$ifstate" && fail "cali3 still in ifstate after deletion"
echo "ok: deleted cali3 forgotten"

stop_daemon
echo PASS
