#!/usr/bin/env bash
# A service without a ready backend refuses at once, as kube-proxy's REJECT
# does: a real TCP client's connect() gets "connection refused" (not a
# timeout), over IPv4 and IPv6, and a connected UDP socket gets ECONNREFUSED
# from the ICMP port unreachable. The SYN from a local stack crosses the veth with its checksum
# still to be filled in (CHECKSUM_PARTIAL), which crafted packets in
# BPF_PROG_TEST_RUN never have: only a real client shows the reject reaches it.
source "$(dirname "$0")/lib.sh"
e2e_init service_reject

state=$WORK/state
mkdir -p "$state"
cat >"$state/empty.toml" <<TOML
[[service]]
name = "empty"
cluster_ip = "10.96.0.20"
ports = [{ port = 80, protocol = "tcp" }, { port = 53, protocol = "udp" }]
backends = []
[[service]]
name = "empty6"
cluster_ip = "fd00:96::20"
ports = [{ port = 80, protocol = "tcp" }]
backends = []
TOML
write_config '["conntrack", "nat"]' "[state]
dir = \"$state\""
start_daemon
wait_daemon_log "plugin 'nat' applied" 0 "the service file applied"

in_ns "$NS_W1" python3 - <<'PY' || fail "the TCP client was not refused at once"
import socket, sys, time
start = time.time()
s = socket.socket()
s.settimeout(3)
try:
    s.connect(("10.96.0.20", 80))
    sys.exit("connected to a service without backends")
except ConnectionRefusedError:
    print("ok: TCP connect() refused after %.0f ms" % ((time.time() - start) * 1000))
except socket.timeout:
    sys.exit("TCP connect() timed out instead of being refused")
PY
in_ns "$NS_W1" python3 - <<'PY' || fail "the UDP client was not refused"
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(3)
s.connect(("10.96.0.20", 53))
s.send(b"query")
try:
    s.recv(512)
    sys.exit("an answer from a service without backends")
except ConnectionRefusedError:
    print("ok: UDP recv() refused (ICMP port unreachable)")
except socket.timeout:
    sys.exit("no ICMP port unreachable within 3 s")
PY
e2e_enable_ipv6
in_ns "$NS_W1" python3 - <<'PY' || fail "the IPv6 TCP client was not refused at once"
import socket, sys
s = socket.socket(socket.AF_INET6)
s.settimeout(3)
try:
    s.connect(("fd00:96::20", 80))
    sys.exit("connected to a service without backends")
except ConnectionRefusedError:
    print("ok: IPv6 TCP connect() refused (ICMPv6 port unreachable)")
except socket.timeout:
    sys.exit("IPv6 TCP connect() timed out instead of being refused")
PY
(( $(counter cali1 ingress no-backend) >= 3 )) || fail "cali1 ingress: the rejects are not counted no-backend"
echo "ok: counted no-backend"
stop_daemon
echo PASS
