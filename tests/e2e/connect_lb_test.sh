#!/usr/bin/env bash
# Connect-time load balancing ([plugins.nat] connect_time_lb) for processes on
# the node itself. A process in the node's network namespace, inside a cgroup
# this test creates, reaches cluster IPs over TCP and UDP: its sockets are
# pointed at backends in workload namespaces when they connect or send,
# connections spread over the backends, getpeername() shows the service and
# UDP replies come from the service address; conntrack holds plain flows to
# the backends (nothing NATed twice). A restart and a SIGHUP keep the same
# pinned links with new programs and lose no datagram of a stream sent
# meanwhile; a node port answers on an address the node gains after sluiced
# started (and stops when it is removed); "tcp" leaves UDP alone; moving to the default cgroup (the root)
# balances every process of the node's namespace; "off" detaches everything
# (the node's own traffic is not load-balanced, workloads still are, through
# the tc nat stage); --cleanup detaches the links.
#
# The programs act only on sockets of this test's node namespace, and the
# services use 198.18.0.0/15 (benchmarking addresses nothing else uses).
source "$(dirname "$0")/lib.sh"
e2e_init connect_lb
echo_py="python3 $(dirname "$0")/tcp_echo.py"

# The test's cgroup, under the cgroup v2 hierarchy (mounted here if the
# machine has no cgroup2 mount).
CG2=$(findmnt -rn -t cgroup2 -o TARGET | head -1)
CG2_MOUNTED_HERE=
if [[ -z $CG2 ]]; then
  CG2=$WORK/cgroup2
  mkdir -p "$CG2" && mount -t cgroup2 none "$CG2" && CG2_MOUNTED_HERE=1
fi
CG=$CG2/$E2E_ID
mkdir "$CG"
e2e_test_teardown() {
  if [[ -d $CG ]]; then
    local pid
    for pid in $(cat "$CG/cgroup.procs" 2>/dev/null); do kill "$pid" 2>/dev/null; done
    for _ in $(seq 20); do rmdir "$CG" 2>/dev/null && break; sleep 0.1; done
  fi
  [[ -n $CG2_MOUNTED_HERE ]] && umount "$CG2"
}

# in_test_cgroup <command...>: in the node's namespace, inside the test cgroup.
in_test_cgroup() {
  (echo "$BASHPID" >"$CG/cgroup.procs" && exec nsenter --net="/run/netns/$NS_NODE" "$@")
}

state=$WORK/state
mkdir -p "$state"
config() { # <connect_time_lb> [connect_time_lb_cgroup line; default: the test cgroup]
  write_config '["conntrack", "nat"]' "[plugins.nat]
connect_time_lb = \"$1\"
${2-connect_time_lb_cgroup = \"$CG\"}
[state]
dir = \"$state\""
}
cat >"$state/services.toml" <<'TOML'
[[service]]
name = "echo"
cluster_ip = "198.18.0.10"
ports = [{ port = 80, protocol = "tcp", target_port = 8080 }]
backends = [{ ip = "10.65.2.2" }, { ip = "10.64.0.2" }]

[[service]]
name = "dns"
cluster_ip = "198.18.0.53"
ports = [{ port = 53, protocol = "udp", target_port = 5353 }]
backends = [{ ip = "10.65.2.2" }, { ip = "10.64.0.2" }]

[[service]]
name = "np"
cluster_ip = "198.18.0.20"
ports = [{ port = 80, protocol = "tcp", target_port = 8080, node_port = 30080 }]
backends = [{ ip = "10.65.2.2" }, { ip = "10.64.0.2" }]

[[service]]
name = "dns-alias"
cluster_ip = "198.18.0.55"
ports = [{ port = 53, protocol = "udp", target_port = 5353 }]
backends = [{ ip = "10.65.2.2" }, { ip = "10.64.0.2" }]

[[service]]
name = "one-a"
cluster_ip = "198.18.0.56"
ports = [{ port = 53, protocol = "udp", target_port = 5353 }]
backends = [{ ip = "10.65.2.2" }]

[[service]]
name = "one-b"
cluster_ip = "198.18.0.57"
ports = [{ port = 53, protocol = "udp", target_port = 5353 }]
backends = [{ ip = "10.65.2.2" }]

[[service]]
name = "stream"
cluster_ip = "198.18.0.54"
ports = [{ port = 7002, protocol = "udp" }]
backends = [{ ip = "10.65.2.2" }]
TOML

for ns in "$NS_W2" "$NS_EXT"; do
  name=${ns##*-}
  start_listener "$ns" "$WORK/serve-$name.out" $echo_py serve "$name" 8080
  start_listener "$ns" "$WORK/serve-udp-$name.out" $echo_py serve-udp "$name" 5353
done
config all
start_daemon
sleep 0.5

links=/sys/fs/bpf/$INSTANCE/nat/connect_time_lb
link_id() { bpftool -j link show pinned "$links/$1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])'; }
link_prog() { bpftool -j link show pinned "$links/$1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["prog_id"])'; }
programs_on() { bpftool cgroup show "$1" 2>/dev/null | grep -c ' nat_' || true; }
count() { grep -c -- "$1" "$2" || true; }
# True once the kernel has released link <id> (deferred after its last reference).
link_gone() {
  for _ in $(seq 20); do bpftool link show id "$1" >/dev/null 2>&1 || return 0; sleep 0.1; done
  return 1
}

# ---- TCP from the node: spread, the node's own address, the service as peer --
in_test_cgroup $echo_py ask-peer 198.18.0.10 80 20 >"$WORK/tcp"
grep -q error "$WORK/tcp" && { cat "$WORK/tcp"; fail "connections to the cluster IP failed"; }
assert_eq 20 "$(count ' peer 198.18.0.10:80$' "$WORK/tcp")" "connections whose getpeername() is the service"
assert_eq 20 "$(grep -cE '^(w2 10.65.2.1|ext 10.64.0.1) ' "$WORK/tcp")" \
  "answers that saw the node's own address on the way to the backend"
(( $(count '^w2 ' "$WORK/tcp") > 0 && $(count '^ext ' "$WORK/tcp") > 0 )) \
  || { sort "$WORK/tcp" | uniq -c; fail "connections were not spread over both backends"; }
echo "ok: spread $(count '^w2 ' "$WORK/tcp") / $(count '^ext ' "$WORK/tcp") over w2 / ext"

# ---- UDP: unconnected sockets (sendmsg/recvmsg) and a connected one ------------
in_test_cgroup $echo_py ask-udp 198.18.0.53 53 16 >"$WORK/udp"
grep -q error "$WORK/udp" && { cat "$WORK/udp"; fail "datagrams to the cluster IP got no answer"; }
assert_eq 16 "$(count ' from 198.18.0.53:53$' "$WORK/udp")" "UDP answers whose source is the service"
(( $(count '^w2 ' "$WORK/udp") > 0 && $(count '^ext ' "$WORK/udp") > 0 )) \
  || { sort "$WORK/udp" | uniq -c; fail "UDP sockets were not spread over both backends"; }
in_test_cgroup $echo_py ask-udp-connected 198.18.0.53 53 >"$WORK/udp-connected"
grep -qE '^(w2|ext) [0-9.]+ peer 198.18.0.53:53$' "$WORK/udp-connected" \
  || { cat "$WORK/udp-connected"; fail "a connected UDP socket did not see the service as its peer"; }
echo "ok: connected UDP: $(cat "$WORK/udp-connected")"

# ---- one unconnected socket, two services sharing backends (issue 10, defect 3):
# each service gets a backend the socket does not already hear from for the
# other, so every answer shows the address it was asked; with one shared
# backend the second service is refused (EADDRINUSE), never misattributed.
in_test_cgroup python3 - <<'PY' || fail "UDP to two services sharing a backend from one socket"
import errno, socket, sys
def ask(s, vip):
    s.sendto(b"q", (vip, 53))
    data, source = s.recvfrom(512)
    if source != (vip, 53):
        sys.exit("the answer to %s:53 came from %s:%d" % (vip, *source))
    return data.split()[0]
for n in range(8):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(3)
    first, second = ask(s, "198.18.0.53"), ask(s, "198.18.0.55")
    if first == second:
        sys.exit("socket %d: both services went to backend %s" % (n, first.decode()))
    if ask(s, "198.18.0.53") != first or ask(s, "198.18.0.55") != second:
        sys.exit("socket %d: a service moved to another backend" % n)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(3)
ask(s, "198.18.0.56")
try:
    s.sendto(b"q", ("198.18.0.57", 53))
    sys.exit("a second service with the same only backend was not refused")
except OSError as e:
    if e.errno != errno.EADDRINUSE:
        sys.exit("refused with %s, not EADDRINUSE" % e)
ask(s, "198.18.0.56")
print("ok: two services from one socket: distinct backends, or EADDRINUSE")
PY

# ---- not NATed twice: conntrack has plain flows from the node to the backends --
ctl -o json conntrack dump >"$WORK/ct.json"
python3 - "$WORK/ct.json" <<'PY' || fail "conntrack shows NAT for the node's own flows"
import json, sys
flows = json.load(open(sys.argv[1]))
node = {"10.65.2.1", "10.64.0.1"}
mine = [f for f in flows if f["src"] in node and f["dport"] in (8080, 5353)]
assert mine, "no flow from the node to a backend"
bad = [f for f in mine if f["type"] != "NORMAL"] + \
      [f for f in flows if "198.18." in json.dumps(f)]
assert not bad, bad
print(f"ok: {len(mine)} flows from the node to backends, all NORMAL, none mentions 198.18/15")
PY

# ---- the tc path goes on for workloads; other processes of the node are not in the cgroup
ip netns exec "$NS_W1" $echo_py ask 198.18.0.10 80 6 >"$WORK/w1"
assert_eq 6 "$(count ' 10.65.1.2$' "$WORK/w1")" "workload connections through the tc nat stage"
in_node $echo_py ask 198.18.0.10 80 1 >"$WORK/outside"
grep -q "unreachable" "$WORK/outside" \
  || { cat "$WORK/outside"; fail "a process outside the configured cgroup was balanced"; }
echo "ok: a process outside the cgroup is left alone: $(cat "$WORK/outside")"

# ---- a node port follows an address the node gains after sluiced started ------
# (nat_node_addrs is kept by a netlink subscription on sluiced's event loop)
in_test_cgroup $echo_py ask 198.18.1.1 30080 1 >"$WORK/np-before"
grep -q '^error' "$WORK/np-before" \
  || { cat "$WORK/np-before"; fail "198.18.1.1:30080 answered before the node had the address"; }
ip -n "$NS_NODE" addr add 198.18.1.1/32 dev lo
np_ok=
for _ in $(seq 20); do
  in_test_cgroup $echo_py ask-peer 198.18.1.1 30080 4 >"$WORK/np-added"
  [[ $(count ' peer 198.18.1.1:30080$' "$WORK/np-added") == 4 ]] && { np_ok=1; break; }
  sleep 0.1
done
[[ -n $np_ok ]] || { cat "$WORK/np-added"; fail "the node port did not answer on an address added after sluiced started"; }
grep -qE '^(w2|ext) ' "$WORK/np-added" || { cat "$WORK/np-added"; fail "no backend answered on the node port"; }
echo "ok: node port on an address added after the start: $(sort "$WORK/np-added" | uniq -c | tr -s ' \n' ' ')"
ip -n "$NS_NODE" addr del 198.18.1.1/32 dev lo
np_gone=
for _ in $(seq 20); do
  in_test_cgroup $echo_py ask 198.18.1.1 30080 1 >"$WORK/np-removed"
  grep -q '^error' "$WORK/np-removed" && { np_gone=1; break; }
  sleep 0.1
done
[[ -n $np_gone ]] || { cat "$WORK/np-removed"; fail "the node port still answered on a removed address"; }
echo "ok: and no longer once it is removed"

# ---- pinned links --------------------------------------------------------------
assert_eq 8 "$(ls "$links" | wc -l)" "pinned links"
assert_eq 8 "$(programs_on "$CG")" "programs attached to the test cgroup"

# ---- restarts keep the links and swap their programs, with no gap ------------
link_before=$(link_id sendmsg4) prog_before=$(link_prog sendmsg4)
N=10000 # 10 s at 1 ms, every datagram through sendmsg4, outlasting the restarts
start_listener "$NS_W2" "$WORK/stream" "$UDP_STREAM" recv 7002 $N 30
recv_pid=$LISTENER_PID
in_test_cgroup "$UDP_STREAM" send 198.18.0.54 7002 $N 1000 2>"$WORK/stream-errors" &
send_pid=$!
sleep 0.5
stop_daemon        # the pinned links keep balancing while no daemon runs
sleep 0.3
start_daemon
prog_restart=$(link_prog sendmsg4)
sleep 0.3
reload_daemon      # SIGHUP: re-exec in place
kill -0 $send_pid 2>/dev/null || fail "the stream ended before the restarts were done: they went untested"
wait $send_pid
wait $recv_pid || { cat "$WORK/stream" "$WORK/stream-errors"; fail "datagrams were lost across restarts"; }
cat "$WORK/stream"
assert_eq "$link_before" "$(link_id sendmsg4)" "the sendmsg4 link after a restart and a SIGHUP"
[[ $prog_restart != "$prog_before" && $(link_prog sendmsg4) != "$prog_restart" ]] \
  || fail "the link's program was not replaced ($prog_before, $prog_restart, $(link_prog sendmsg4))"
echo "ok: link $link_before kept, programs $prog_before -> $prog_restart -> $(link_prog sendmsg4)"
grep -q "8 pinned link(s) took the new programs, 0 attached" "$WORK/daemon.log" \
  || fail "the daemon did not report taking over the pinned links"

# ---- "tcp": UDP is left alone -------------------------------------------------
config tcp
reload_daemon
assert_eq 4 "$(programs_on "$CG")" "programs attached with connect_time_lb = \"tcp\""
[[ ! -e $links/sendmsg4 && ! -e $links/recvmsg4 ]] || fail "the UDP links are still pinned"
in_test_cgroup $echo_py ask-udp 198.18.0.53 53 1 >"$WORK/udp-tcp-mode"
grep -q "unreachable" "$WORK/udp-tcp-mode" || { cat "$WORK/udp-tcp-mode"; fail "UDP was balanced in tcp mode"; }
in_test_cgroup $echo_py ask-peer 198.18.0.10 80 3 >"$WORK/tcp-tcp-mode"
assert_eq 3 "$(count ' peer 198.18.0.10:80$' "$WORK/tcp-tcp-mode")" "TCP connections in tcp mode"

# ---- the default cgroup (the root): every process of the namespace ------------
config all ""
reload_daemon
assert_eq 0 "$(programs_on "$CG")" "programs left on the test cgroup after moving to the root"
in_node $echo_py ask-peer 198.18.0.10 80 3 >"$WORK/root"
assert_eq 3 "$(count ' peer 198.18.0.10:80$' "$WORK/root")" "connections of a process outside the test cgroup"
root_links=$(for hook in connect4 sendmsg4 recvmsg6; do link_id $hook; done)

# ---- "off": everything detached; the node is not balanced, workloads still are --
config off
reload_daemon
[[ -z $(ls -A "$links" 2>/dev/null) ]] || fail "links still pinned with connect_time_lb = \"off\": $(ls "$links")"
for id in $root_links; do
  link_gone "$id" || fail "link $id still exists with connect_time_lb = \"off\""
done
[[ ! -e /sys/fs/bpf/$INSTANCE/maps/nat_sock_reverse ]] || fail "nat_sock_reverse is still pinned"
[[ ! -e /sys/fs/bpf/$INSTANCE/maps/nat_node_addrs ]] || fail "nat_node_addrs is still pinned"
in_node $echo_py ask 198.18.0.10 80 1 >"$WORK/off"
grep -q "unreachable" "$WORK/off" || { cat "$WORK/off"; fail "the node was balanced with the switch off"; }
ip netns exec "$NS_W1" $echo_py ask 198.18.0.10 80 4 >"$WORK/w1-off"
assert_eq 4 "$(count ' 10.65.1.2$' "$WORK/w1-off")" "workload connections with the switch off"

# ---- --cleanup detaches the links ---------------------------------------------
config all
reload_daemon
cleanup_links=$(for hook in connect4 getpeername6 sendmsg4; do link_id $hook; done)
stop_daemon
in_node "$SLUICED" --config "$CONFIG" --cleanup >>"$WORK/daemon.log" 2>&1 || fail "sluiced --cleanup failed"
for id in $cleanup_links; do link_gone "$id" || fail "link $id survived sluiced --cleanup"; done
assert_eq 0 "$(programs_on "$CG")" "programs on the test cgroup after --cleanup"
echo PASS
