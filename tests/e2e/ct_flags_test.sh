#!/usr/bin/env bash
# One packet must not cost the node an entry for an hour, and segments no TCP
# stack sends must not touch the table: real frames from a workload (AF_PACKET).
# SYN|FIN, SYN|RST, FIN alone and no flags are dropped, counted
# ct-invalid-flags, and leave no entry; a lone FIN|ACK (picked up mid-stream,
# FIN-WAIT) that no peer ever answers expires with the handshake timeout
# (here 2 s), not the established one (1 h), by the daemon's own cleaner.
source "$(dirname "$0")/lib.sh"
e2e_init ct_flags
forge="python3 $(dirname "$0")/forge_packet.py"

write_config '["conntrack"]' '[plugins.conntrack]
clean_interval = 1
[plugins.conntrack.timeouts]
tcp_syn = 2
tcp_established = "1h"'
start_daemon
cali1_mac=$(lab_mac "$NS_NODE" cali1)

port=41000
for flags in SF SR F SFA; do
  in_ns "$NS_W1" $forge eth0 "$cali1_mac" "tcp:$flags" 10.65.1.2 $((port++)) 10.65.2.2 80 1
done
in_ns "$NS_W1" $forge eth0 "$cali1_mac" "tcp:" 10.65.1.2 $((port++)) 10.65.2.2 80 1
for _ in $(seq 50); do (( $(counter cali1 ingress ct-invalid-flags) >= 5 )) && break; sleep 0.1; done
assert_eq 5 "$(counter cali1 ingress ct-invalid-flags)" "cali1 ingress ct-invalid-flags"
entries() { ctl -o json conntrack dump | python3 -c 'import json, sys
print(sum(1 for f in json.load(sys.stdin) if f["proto"] == "TCP" and f["src"] == "10.65.1.2"))'; }
assert_eq 0 "$(entries)" "entries the invalid segments created"

# To an address nobody holds: no answer, not even a RST (which would make the
# entry RESET, with its own short timeout).
in_ns "$NS_W1" $forge eth0 "$cali1_mac" tcp:FA 10.65.1.2 42000 10.65.2.99 80 1
for _ in $(seq 20); do (( $(entries) == 1 )) && break; sleep 0.1; done
assert_eq 1 "$(entries)" "entries after a lone FIN|ACK (picked up mid-stream)"
for _ in $(seq 80); do (( $(entries) == 0 )) && break; sleep 0.1; done
assert_eq 0 "$(entries)" "entries 8 s later (tcp_syn = 2 s, cleaner every 1 s)"
stop_daemon
echo PASS
