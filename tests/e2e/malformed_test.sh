#!/usr/bin/env bash
# Broken frames from a workload are dropped and counted by kind of damage
# (workload rule "drop"); the same frames from the uplink pass to the kernel
# and are counted as passed-malformed-* (data rule "pass"). Real frames on
# real veths, injected with AF_PACKET (BPF_PROG_TEST_RUN refuses some of them).
source "$(dirname "$0")/lib.sh"
e2e_init malformed
inject="python3 $(dirname "$0")/inject_frames.py"

write_config "[]"
start_daemon
cali1_mac=$(lab_mac "$NS_NODE" cali1)
eth0_mac=$(lab_mac "$NS_NODE" eth0)

declare -A reason=([l3-short]=l3-short [ihl]=ihl [ip-length]=ip-length [ip-version]=ip-version)
n=3
for kind in "${!reason[@]}"; do
  ip netns exec "$NS_W1" $inject eth0 "$cali1_mac" "$kind" $n
  ip netns exec "$NS_EXT" $inject eth0 "$eth0_mac" "$kind" $n
done
# A truncated TCP header is dropped on every role: the kernel would forward it.
ip netns exec "$NS_W1" $inject eth0 "$cali1_mac" l4-short $n
ip netns exec "$NS_EXT" $inject eth0 "$eth0_mac" l4-short $n
ip netns exec "$NS_W1" $inject eth0 "$cali1_mac" good-udp $n
# The good frames go last: once they are counted, so is everything before.
for _ in $(seq 50); do (( $(counter cali1 ingress accepted) >= n )) && break; sleep 0.1; done
for kind in "${!reason[@]}"; do
  assert_eq $n "$(counter cali1 ingress "malformed-${reason[$kind]}")" "cali1 ingress malformed-${reason[$kind]}"
  assert_eq $n "$(counter eth0 ingress "passed-malformed-${reason[$kind]}")" "eth0 ingress passed-malformed-${reason[$kind]}"
done
assert_eq $n "$(counter cali1 ingress malformed-l4-short)" "cali1 ingress malformed-l4-short"
assert_eq $n "$(counter eth0 ingress malformed-l4-short)" "eth0 ingress malformed-l4-short (dropped despite the pass rule)"
assert_eq $n "$(counter cali1 ingress accepted)" "cali1 ingress accepted (the good frames)"
drops=$(clsact_drops cali1)
assert_eq $((n * (${#reason[@]} + 1))) "$drops" "drops on cali1's clsact qdisc"
stop_daemon
echo PASS
