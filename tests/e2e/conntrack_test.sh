#!/usr/bin/env bash
# The conntrack plugin with its fast path, on real traffic: a TCP connection
# between two workloads is tracked (ESTABLISHED, packets on both legs), its
# established packets are redirected by the conntrack stage (counted as
# "redirected" on both workload ingresses), a daemon restart in the middle of
# the open connection does not disturb it, its teardown leaves the entry
# CLOSED, and `sluicectl conntrack remove` deletes it. With clean_interval = 1
# the cleaner's timer removes an idle UDP flow by itself once it expired.
source "$(dirname "$0")/lib.sh"
e2e_init conntrack

write_config '["conntrack"]' '[plugins.conntrack]
fast_path = true'
start_daemon
grep -q "fast path on" "$WORK/daemon.log" || fail "the daemon log does not say the fast path is on"

# A request/response pair over one TCP connection (tcp_rr.py): the client
# sends N requests, waits for a go file, sends N more, then closes; every
# response must echo its request.
RR="python3 $E2E_REPO/tests/e2e/tcp_rr.py"

spawn_in_ns "$NS_W2" $RR server 10.65.2.2 8080 "$WORK/ready"
server_pid=$!
wait_file "$WORK/ready" "the server"
spawn_in_ns "$NS_W1" $RR client-in-two-phases 10.65.2.2 8080 50 "$WORK/phase1" "$WORK/go" \
  >"$WORK/client.out" 2>&1
client_pid=$!
wait_file "$WORK/phase1" "the first 50 request/responses"

# The open connection: tracked, established, both legs counted.
# flow_field <field path> -> value of the 10.65.1.2 -> 10.65.2.2:8080 entry
flow_json() {
  ctl -o json conntrack dump | python3 -c '
import json, sys
flows = [f for f in json.load(sys.stdin) if f["proto"] == "TCP" and f["src"] == "10.65.1.2"
         and f["dst"] == "10.65.2.2" and f["dport"] == 8080]
print(json.dumps(flows[0]) if len(flows) == 1 else "")'
}
flow=$(flow_json)
[[ -n $flow ]] || { ctl conntrack dump; fail "no conntrack entry for the connection"; }
field() { python3 -c 'import json, sys; v = json.loads(sys.argv[1])
for k in sys.argv[2].split("."): v = v[k]
print(v)' "$flow" "$1"; }
assert_eq ESTABLISHED "$(field state)" "state of the open connection"
(( $(field a_to_b.packets) >= 50 && $(field b_to_a.packets) >= 50 )) \
  || fail "legs counted too few packets: $flow"
echo "ok: legs a_to_b $(field a_to_b.packets) packets, b_to_a $(field b_to_a.packets) packets"

ctl -o json conntrack stats >"$WORK/stats.json"
python3 - "$WORK/stats.json" <<'PY' || fail "conntrack stats: $(cat "$WORK/stats.json")"
import json, sys
s = json.load(open(sys.argv[1]))
est = sum(r["entries"] for r in s["by_state"] if r["proto"] == "TCP" and r["state"] == "ESTABLISHED")
assert est >= 1 and s["entries"] >= 1 and s["created_total"] >= 1, s
print("ok: stats: %d entries, %d TCP ESTABLISHED, %d created" % (s["entries"], est, s["created_total"]))
PY
ctl conntrack stats >/dev/null || fail "conntrack stats (table output)"

# The fast path carried the established packets, in both directions.
fp1=$(counter cali1 ingress redirected)
fp2=$(counter cali2 ingress redirected)
(( fp1 > 0 && fp2 > 0 )) || fail "fast path not taken: redirected cali1 ingress $fp1, cali2 ingress $fp2"
echo "ok: fast path: redirected on cali1 ingress $fp1, cali2 ingress $fp2"

# Restart the daemon while the connection is open; it goes on afterwards.
stop_daemon
start_daemon
touch "$WORK/go"
wait "$client_pid" || { cat "$WORK/client.out"; fail "the TCP exchange failed across the restart"; }
kill "$server_pid"; wait "$server_pid" 2>/dev/null || true
cat "$WORK/client.out"
grep -q "client: 100 request/responses" "$WORK/client.out" || fail "the exchange did not complete"
(( $(counter cali1 ingress redirected) > fp1 )) || fail "no fast path after the restart"
echo "ok: the connection survived a daemon restart, fast path still taken"

# Closed by both sides: the entry is CLOSED, then removed on request.
flow=$(flow_json)
[[ -n $flow ]] || fail "the entry disappeared after the close"
assert_eq CLOSED "$(field state)" "state after both FINs"
ctl conntrack dump
assert_eq 1 "$(ctl -o json conntrack remove tcp 10.65.1.2 | python3 -c 'import json,sys; print(json.load(sys.stdin)["removed"])')" \
  "entries removed by conntrack remove tcp 10.65.1.2"
assert_eq "" "$(flow_json)" "entry after remove"

# The cleaner runs by itself every clean_interval (a timer on sluiced's event
# loop): a UDP flow idle past its timeout disappears without anyone asking.
write_config '["conntrack"]' '[plugins.conntrack]
fast_path = true
clean_interval = 1
[plugins.conntrack.timeouts]
udp = 2'
reload_daemon
udp_flow() {
  ctl -o json conntrack dump | python3 -c '
import json, sys
print(sum(1 for f in json.load(sys.stdin) if f["proto"] == "UDP" and f["src"] == "10.65.1.2"
          and f["dst"] == "10.65.2.2" and f["dport"] == 9999))'
}
ip netns exec "$NS_W1" python3 -c 'import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("10.65.1.2", 40999)); s.sendto(b"x", ("10.65.2.2", 9999))'
sent=$(date +%s.%N)
assert_eq 1 "$(udp_flow)" "UDP entries right after the datagram"
gone_after=
for _ in $(seq 40); do
  sleep 0.25
  if [[ $(udp_flow) == 0 ]]; then gone_after=$(python3 -c "import time; print(round(time.time() - $sent, 2))"); break; fi
done
[[ -n $gone_after ]] || { ctl conntrack dump; fail "the cleaner did not remove an expired UDP entry within 10 s (clean_interval = 1, udp = 2)"; }
python3 -c "import sys; sys.exit(0 if $gone_after >= 1.5 else 1)" \
  || fail "the UDP entry went after ${gone_after}s, before its 2 s timeout"
! grep -q "cleaner run failed" "$WORK/daemon.log" || fail "the daemon logged a failed cleaner run"
echo "ok: the cleaner's timer removed the idle UDP entry ${gone_after}s after its datagram"
stop_daemon
echo PASS
