#!/usr/bin/env bash
# Frames the chain does not parse: from (and to) a workload only IPv4, IPv6
# and ARP pass; anything else — a VLAN-tagged frame (single 802.1Q, or
# 802.1ad + 802.1Q double tags), another ethertype — is dropped and counted
# non-ip-on-workload, so a workload cannot wrap its packets past conntrack
# and NAT into the node's stack or, through a VLAN device there, to others.
# A data interface passes non-IP frames to the kernel (counted passed-non-ip):
# the node's own VLANs, LLDP and the like arrive there. Real frames on the
# real veths, injected with AF_PACKET (the kernel takes the outer tag off
# into the packet's metadata before tc sees it, which BPF_PROG_TEST_RUN
# cannot reproduce).
source "$(dirname "$0")/lib.sh"
e2e_init non_ip
inject="python3 $(dirname "$0")/inject_frames.py"

write_config "[]"
start_daemon
cali1_mac=$(lab_mac "$NS_NODE" cali1)
eth0_mac=$(lab_mac "$NS_NODE" eth0)
n=3
refused=(vlan-udp qinq-udp other-ethertype)
for kind in "${refused[@]}"; do
  ip netns exec "$NS_W1" $inject eth0 "$cali1_mac" "$kind" $n
  ip netns exec "$NS_EXT" $inject eth0 "$eth0_mac" "$kind" $n
done
ip netns exec "$NS_W1" $inject eth0 "$cali1_mac" arp $n
ip netns exec "$NS_W1" $inject eth0 "$cali1_mac" good-udp $n
# The good frames go last: once they are counted, so is everything before.
for _ in $(seq 50); do (( $(counter cali1 ingress accepted) >= n )) && break; sleep 0.1; done
assert_eq $((n * ${#refused[@]})) "$(counter cali1 ingress non-ip-on-workload)" \
  "cali1 ingress non-ip-on-workload (tagged and unknown frames from w1)"
(( $(counter cali1 ingress passed-non-ip) >= n )) || fail "cali1 ingress: the ARP requests were not passed"
echo "ok: ARP from w1 passes"
assert_eq $n "$(counter cali1 ingress accepted)" "cali1 ingress accepted (the untagged UDP frames)"
drops=$(clsact_drops cali1)
assert_eq $((n * ${#refused[@]})) "$drops" "drops on cali1's clsact qdisc"
assert_eq 0 "$(counter eth0 ingress non-ip-on-workload)" "eth0 ingress non-ip-on-workload (a data interface)"
(( $(counter eth0 ingress passed-non-ip) >= n * ${#refused[@]} )) ||
  fail "eth0 ingress: the tagged and unknown frames were not passed to the kernel"
echo "ok: the data interface passes them to the kernel, counted passed-non-ip"
# Real traffic of the workload is unaffected (ARP resolution, then IPv4).
in_ns "$NS_W1" ping -c 2 -i 0.2 -W 1 10.65.1.1 >/dev/null || fail "w1 cannot ping its gateway"
echo "ok: w1 still pings its gateway"
stop_daemon
echo PASS
