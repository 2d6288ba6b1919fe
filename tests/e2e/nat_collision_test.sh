#!/usr/bin/env bash
# Two services that share a backend, one client port: Linux gives the same
# source port to connections towards different destinations, so
# 10.65.1.2:41000 -> VIP1:80 and 10.65.1.2:41000 -> VIP2:80 both DNAT to the
# one tuple 10.65.1.2:41000 -> 10.65.2.2:8080. The second flow must get
# another source port (as netfilter's NAT keeps tuples unique): before, its
# NAT_REV entry overwrote the first's, the backend's TCP took the second SYN
# for the first connection, and the first flow's replies came back from the
# second service (issue 10, defect 3). Real TCP and UDP sockets.
source "$(dirname "$0")/lib.sh"
e2e_init nat_collision

state=$WORK/state
mkdir -p "$state"
for n in 1 2; do
  cat >"$state/vip$n.toml" <<TOML
[[service]]
name = "vip$n"
cluster_ip = "10.96.0.3$n"
ports = [{ port = 80, protocol = "tcp", target_port = 8080 },
         { port = 53, protocol = "udp", target_port = 5353 }]
backends = [{ ip = "10.65.2.2" }]
TOML
done
write_config '["conntrack", "nat"]' "[state]
dir = \"$state\"
[plugins.conntrack]
fast_path = true"
echo_py=$E2E_REPO/tests/e2e/tcp_echo.py
start_listener "$NS_W2" "$WORK/echo.out" python3 "$echo_py" echo w2 8080
start_listener "$NS_W2" "$WORK/udp.out" python3 "$echo_py" serve-udp w2 5353
start_daemon
wait_daemon_log "plugin 'nat' applied" 0 "the service files applied"

in_ns "$NS_W1" python3 - <<'PY' || fail "two TCP connections from one port to two services sharing a backend"
import socket, sys
def open_from(port, vip):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.settimeout(3)
    s.bind(("10.65.1.2", port))
    s.connect((vip, 80))
    greeting = s.makefile("rb").readline()
    if not greeting.startswith(b"w2 "):
        sys.exit("%s: greeting %r" % (vip, greeting))
    return s
def exchange(s, what):
    s.sendall(what)
    got = b""
    while len(got) < len(what):
        chunk = s.recv(len(what) - len(got))
        if not chunk:
            sys.exit("connection closed during %r" % what)
        got += chunk
    if got != what:
        sys.exit("echo %r for %r" % (got, what))
try:
    first = open_from(41000, "10.96.0.31")
    exchange(first, b"first-1")
    second = open_from(41000, "10.96.0.32")
    for i in range(5):
        exchange(first, b"first-%d" % (i + 2))
        exchange(second, b"second-%d" % (i + 1))
except (OSError, socket.timeout) as e:
    sys.exit("TCP: %s" % e)
print("ok: both TCP connections from port 41000 echo through their service")
PY

in_ns "$NS_W1" python3 - <<'PY' || fail "one UDP socket to two services sharing a backend"
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(3)
s.bind(("10.65.1.2", 41001))
def ask(vip):
    s.sendto(b"q", (vip, 53))
    try:
        data, source = s.recvfrom(512)
    except socket.timeout:
        sys.exit("UDP: no answer through %s" % vip)
    if source != (vip, 53):
        sys.exit("UDP: the answer to a query to %s:53 came from %s:%d" % (vip, *source))
for vip in ["10.96.0.31", "10.96.0.32", "10.96.0.31", "10.96.0.32"]:
    ask(vip)
print("ok: every UDP answer comes from the service it was asked")
PY
# The second flow of each protocol moved to another port, shown in the dump.
ctl conntrack dump >"$WORK/ct.txt"
grep -q "port-nat" "$WORK/ct.txt" || { cat "$WORK/ct.txt"; fail "no flow is shown port-nat"; }
echo "ok: the moved flows are shown port-nat"
stop_daemon
echo PASS
