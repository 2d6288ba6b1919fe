#!/usr/bin/env bash
# The chain protocol on real TCP between two workloads, with conntrack's fast
# path on: a third-party stage between conntrack and nat that declares "every
# packet" sees every packet of an established flow on both hooks, while the
# fast path still carries the flow; when it starts dropping, the flow stops
# at the next packet; declared "first packets", it sees only the handshake's
# first packets; and without it the fast path carries every established
# packet.
source "$(dirname "$0")/lib.sh"
e2e_init chain_protocol

plugin_dir=$WORK/plugins
mkdir -p "$plugin_dir"
ln -s "$E2E_BUILD/lib/sluice/plugins/conntrack.so" "$E2E_BUILD/lib/sluice/plugins/nat.so" \
  "$E2E_BUILD/tests/e2e/fixture_plugins/probe.so" "$plugin_dir/"
RR="python3 $E2E_REPO/tests/e2e/tcp_rr.py"
PORT=7001

configure() { # <enabled> <probe's sees>
  write_config "$1" "[plugins.conntrack]
fast_path = true
[plugins.probe]
port = $PORT
sees = \"$2\""
  sed -i "s|^dir = .*|dir = \"$plugin_dir\"|" "$CONFIG"
}

# probe_seen <ingress|egress>: packets the probe stage counted on that hook.
probe_seen() {
  bpftool -j map dump pinned "/sys/fs/bpf/$INSTANCE/maps/probe_seen" | python3 -c '
import json, sys
hook = {"ingress": 0, "egress": 1}[sys.argv[1]]
def num(v):
    return int.from_bytes(bytes(int(b, 16) for b in v), "little") if isinstance(v, list) else int(v)
total = 0
for e in json.load(sys.stdin):
    key = e.get("key")
    k = num(key) if key is not None else None
    if k != hook:
        continue
    total += sum(num(c["value"]) for c in e["values"])
print(total)' "$1"
}

# tcp_out_segs <ns>: TCP segments the namespace's stack sent (retransmissions too).
tcp_out_segs() {
  in_ns "$1" cat /proc/net/snmp | awk '$1 == "Tcp:" && $2 ~ /^[0-9]/ { print $12 }'
}
tcp_in_segs() {
  in_ns "$1" cat /proc/net/snmp | awk '$1 == "Tcp:" && $2 ~ /^[0-9]/ { print $11 }'
}
segments() { echo $(( $(tcp_out_segs "$NS_W1") + $(tcp_out_segs "$NS_W2") )); }
redirected() { echo $(( $(counter cali1 ingress redirected) + $(counter cali2 ingress redirected) )); }

start_listener_file() {
  spawn_in_ns "$NS_W2" $RR server 10.65.2.2 $PORT "$WORK/ready"
  SERVER_PID=$!
  wait_file "$WORK/ready" "the echo server"
}

# run_exchanges <n>: one connection of n exchanges, closed by both sides.
run_exchanges() {
  in_ns "$NS_W1" $RR client 10.65.2.2 $PORT "$1" >"$WORK/client.out" 2>&1 \
    || { cat "$WORK/client.out"; fail "the exchange failed"; }
  grep -q "exchanges $1" "$WORK/client.out" || fail "the exchange did not complete"
  sleep 0.3  # the last ACKs and FINs
}

start_listener_file

# ---- 1. "every packet": sees all of them, on both hooks, fast path on -----------
configure '["conntrack", "nat", "probe"]' every-packet
start_daemon
# Each chain position gets a program of its own (direct tail calls): the
# workloads' two chains hold an instance each of conntrack and the probe, and
# sluicectl still names every one of them.
wait_direct_tail_calls
ctl -o json plugins | python3 -c '
import json, sys
chains = {(c["role"], c["hook"]): c for c in json.load(sys.stdin)["chains"]}
ids = {}
for hook in ("ingress", "egress"):
    c = chains[("workload", hook)]
    assert c["matches_registry"] and c["established"]["matches_registry"], c
    want = ["conntrack", "probe"] + (["nat"] if hook == "ingress" else [])
    assert [s["stage"] for s in c["stages"]] == want, c["stages"]
    ids[hook] = [s["prog_id"] for s in c["stages"]]
    assert [s["prog_id"] for s in c["established"]["stages"]] == ids[hook], c["established"]
assert not set(ids["ingress"]) & set(ids["egress"]), ("one program in both chains", ids)
' || { ctl plugins; fail "the chain positions do not have programs of their own"; }
echo "ok: every workload chain position runs its own instance, named by sluicectl"
segs0=$(segments) in0=$(probe_seen ingress) out0=$(probe_seen egress) fp0=$(redirected)
run_exchanges 200
segs=$(( $(segments) - segs0 ))
seen_in=$(( $(probe_seen ingress) - in0 )) seen_out=$(( $(probe_seen egress) - out0 ))
fp=$(( $(redirected) - fp0 ))
echo "every-packet: $segs segments sent, probe saw $seen_in at ingress, $seen_out at egress, $fp redirected"
(( segs >= 400 )) || fail "only $segs segments for 200 exchanges"
assert_eq "$segs" "$seen_in" "packets the every-packet stage saw at the workloads' ingress"
assert_eq "$segs" "$seen_out" "packets the every-packet stage saw at the workloads' egress"
(( fp >= segs - 6 )) || fail "the fast path carried only $fp of $segs packets"
echo "ok: the fast path carried $fp of $segs packets through the every-packet stage"

# ---- 2. the stage starts dropping: the flow stops at the next packet -------------
rm -f "$WORK/paused" "$WORK/go"
spawn_in_ns "$NS_W1" $RR client-then-denied 10.65.2.2 $PORT 20 "$WORK/paused" "$WORK/go" \
  >"$WORK/denied.out" 2>&1
client_pid=$!
wait_file "$WORK/paused" "20 exchanges before the deny"
sleep 0.3  # the last ACK of the 20
bpftool map update pinned "/sys/fs/bpf/$INSTANCE/maps/probe_deny" key 0 0 0 0 value 1 0 0 0
server_in0=$(tcp_in_segs "$NS_W2") drops0=$(counter cali1 ingress plugin-0)
touch "$WORK/go"
wait "$client_pid" || { cat "$WORK/denied.out"; fail "the denied client failed"; }
assert_eq "no answer" "$(cat "$WORK/denied.out")" "the request after the deny"
assert_eq 0 $(( $(tcp_in_segs "$NS_W2") - server_in0 )) \
  "segments that reached the server after the deny"
(( $(counter cali1 ingress plugin-0) > drops0 )) || fail "no plugin-0 drop counted on cali1"
echo "ok: dropped from the first packet after the deny ($(( $(counter cali1 ingress plugin-0) - drops0 )) drops, retransmissions included)"
bpftool map update pinned "/sys/fs/bpf/$INSTANCE/maps/probe_deny" key 0 0 0 0 value 0 0 0 0
stop_daemon

# ---- 3. "first packets": skipped once the flow is established ---------------------
configure '["conntrack", "nat", "probe"]' first-packets
start_daemon
wait_direct_tail_calls  # the lanes' own next slots: lane 1 skips the probe
# sluicectl shows the lane an established flow runs: without the probe.
ctl -o json plugins | python3 -c '
import json, sys
chains = {(c["role"], c["hook"]): c for c in json.load(sys.stdin)["chains"]}
c = chains[("workload", "ingress")]
full = [s["stage"] for s in c["stages"]]
est = [s["stage"] for s in c["established"]["stages"]]
assert full == ["conntrack", "probe", "nat"], full
assert est == ["conntrack", "nat"] and c["established"]["matches_registry"], c["established"]
' || { ctl plugins; fail "sluicectl plugins does not show the established lane"; }
ctl plugins | grep -q "established: *conntrack(100) -> nat(300) -> \[end\]" \
  || { ctl plugins; fail "the table does not show the established lane"; }
echo "ok: sluicectl plugins shows the established lane without the first-packets stage"
segs0=$(segments) in0=$(probe_seen ingress) out0=$(probe_seen egress) fp0=$(redirected)
run_exchanges 200
segs=$(( $(segments) - segs0 ))
seen_in=$(( $(probe_seen ingress) - in0 )) seen_out=$(( $(probe_seen egress) - out0 ))
fp=$(( $(redirected) - fp0 ))
echo "first-packets: $segs segments, probe saw $seen_in at ingress, $seen_out at egress, $fp redirected"
(( seen_in >= 1 && seen_in <= 2 )) || fail "a first-packets stage saw $seen_in packets at ingress (the SYN, and no more than the SYN-ACK)"
(( seen_out <= 2 )) || fail "a first-packets stage saw $seen_out packets at egress"
(( fp >= segs - 6 )) || fail "the fast path carried only $fp of $segs packets"
echo "ok: a first-packets stage saw only the flow's first packets"
stop_daemon

# ---- 4. no such stage: the fast path carries the established flow ------------------
configure '["conntrack", "nat"]' every-packet
sed -i '/^\[plugins.probe\]/,$d' "$CONFIG"
start_daemon
segs0=$(segments) fp0=$(redirected)
run_exchanges 200
segs=$(( $(segments) - segs0 )) fp=$(( $(redirected) - fp0 ))
(( fp >= segs - 6 )) || fail "the fast path carried only $fp of $segs packets"
echo "ok: without the stage, the fast path carried $fp of $segs packets"
stop_daemon
echo PASS
