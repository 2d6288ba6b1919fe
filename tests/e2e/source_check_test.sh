#!/usr/bin/env bash
# A workload sends only from its own addresses (conntrack's strict source
# check on workload interfaces, as Calico's RPF check): a forged "reply" with
# another workload's address as source is dropped and counted rpf-failed, so
# it can never make a flow look answered and put it on the fast path past
# the node's firewall. The attack, with real sockets: w1 sends UDP to w2,
# which the node's FORWARD chain drops; w1 forges one datagram w2 -> w1 on
# that tuple; then w1 keeps sending. w2 must receive nothing. Then an
# unanswered flow is never fast-pathed, and honest traffic still is.
source "$(dirname "$0")/lib.sh"
e2e_init source_check

write_config '["conntrack"]' '[plugins.conntrack]
fast_path = true'
start_daemon
cali1_mac=$(lab_mac "$NS_NODE" cali1)

# The node's firewall refuses w1 -> w2 UDP to port 7777.
in_node nft -f - <<'NFT'
table inet sluice_e2e {
  chain forward {
    type filter hook forward priority 0;
    ip saddr 10.65.1.2 ip daddr 10.65.2.2 udp dport 7777 counter drop
  }
}
NFT

cat >"$WORK/udp.py" <<'PY'
import socket, sys, time
if sys.argv[1] == "server":  # server <ip> <port> <count file>
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((sys.argv[2], int(sys.argv[3])))
    n = 0
    open(sys.argv[4], "w").write("0")
    while True:
        data, peer = s.recvfrom(2048)
        n += 1
        open(sys.argv[4], "w").write(str(n))
# client <src port> <dst ip> <dst port> <count>
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", int(sys.argv[2])))
for i in range(int(sys.argv[5])):
    s.sendto(b"datagram %d" % i, (sys.argv[3], int(sys.argv[4])))
    time.sleep(0.01)
PY
spawn_in_ns "$NS_W2" python3 "$WORK/udp.py" server 10.65.2.2 7777 "$WORK/received"
for _ in $(seq 50); do [[ -f $WORK/received ]] && break; sleep 0.1; done
[[ -f $WORK/received ]] || fail "the UDP server in w2 did not start"

in_ns "$NS_W1" python3 "$WORK/udp.py" client 40000 10.65.2.2 7777 1
in_ns "$NS_W1" python3 "$(dirname "$0")/forge_packet.py" eth0 "$cali1_mac" udp 10.65.2.2 7777 10.65.1.2 40000 1
in_ns "$NS_W1" python3 "$WORK/udp.py" client 40000 10.65.2.2 7777 20
sleep 0.5
assert_eq 0 "$(cat "$WORK/received")" "datagrams w2 received past the node's firewall"
(( $(counter cali1 ingress rpf-failed) >= 1 )) || fail "cali1 ingress: the forged datagram is not counted rpf-failed"
echo "ok: the forged reply is dropped as rpf-failed"
assert_eq 0 "$(counter cali1 ingress redirected)" "w1's datagrams fast-pathed"

# Honest UDP the firewall allows (port 7778) is answered, then fast-pathed.
spawn_in_ns "$NS_W2" python3 -c '
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("10.65.2.2", 7778))
while True:
    data, peer = s.recvfrom(2048)
    s.sendto(data, peer)'
sleep 0.3
in_ns "$NS_W1" python3 -c '
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(2)
s.bind(("0.0.0.0", 40001))
for i in range(20):
    s.sendto(b"ping %d" % i, ("10.65.2.2", 7778))
    if s.recvfrom(2048)[0] != b"ping %d" % i:
        sys.exit("wrong echo")' || fail "an honest UDP exchange w1 <-> w2 failed"
(( $(counter cali1 ingress redirected) > 0 )) || fail "an answered honest flow was not fast-pathed"
echo "ok: an honest, answered flow is still fast-pathed"

# IPv6 passes the check: neighbour discovery from link-local addresses,
# then w1 -> w2 through the node by their global addresses.
e2e_enable_ipv6
in_ns "$NS_W1" ping -6 -c 3 -i 0.2 -W 2 fd00:65:2::2 >/dev/null ||
  fail "w1 cannot ping w2 over IPv6 (neighbour discovery or IPv6 refused by the source check)"
echo "ok: IPv6 (neighbour discovery, then ping w1 -> w2) passes the source check"
rpf_before=$(counter cali1 ingress rpf-failed)
in_ns "$NS_W1" ip -6 addr add fd00:65:2::77/128 dev eth0 nodad  # w2's network, not w1's
in_ns "$NS_W1" ping -6 -c 2 -i 0.2 -W 1 -I fd00:65:2::77 fd00:65:2::2 >/dev/null 2>&1 &&
  fail "w1 reached w2 from an address of w2's network"
(( $(counter cali1 ingress rpf-failed) > rpf_before )) ||
  fail "cali1 ingress: the spoofed IPv6 source is not counted rpf-failed"
echo "ok: a spoofed IPv6 source is dropped as rpf-failed"
stop_daemon
echo PASS
