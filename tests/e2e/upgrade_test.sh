#!/usr/bin/env bash
# An upgrade across a map layout change without an outage: the last release
# of the previous layout (built from this repository's history by
# tools/build-previous-release.sh) runs the dataplane with TCP connections
# streaming through a cluster IP; it stops, and a sluiced of the new layout
# starts over its pins without --cleanup. Every connection goes on echoing
# (no error, no reset, every byte checked), keeps the conntrack entry made
# when it opened, counters carry over, and no moved-aside pin is left.
source "$(dirname "$0")/lib.sh"
PREVIOUS=$E2E_BUILD/previous-release/build
if [[ ! -x $PREVIOUS/bin/sluiced ]]; then
  echo "SKIP: no previous release in $PREVIOUS (tools/build-previous-release.sh needs the repository's history)"
  exit 77
fi
e2e_init upgrade
tcp_echo="python3 $E2E_REPO/tests/e2e/tcp_echo.py"
CONNECTIONS=6

state=$WORK/state
mkdir -p "$state"
cat >"$state/echo.toml" <<TOML
[[service]]
name = "echo"
cluster_ip = "10.96.0.10"
ports = [{ port = 80, protocol = "tcp", target_port = 8080 }]
backends = [{ ip = "10.65.2.2" }]
TOML
write_config '["conntrack", "nat"]' "[state]
dir = \"$state\"
[plugins.conntrack]
fast_path = true"
new_config=$CONFIG
old_config=$WORK/previous.toml
sed "s|^dir = \"$E2E_BUILD/lib/sluice/plugins\"|dir = \"$PREVIOUS/lib/sluice/plugins\"|" "$CONFIG" >"$old_config"
grep -q "$PREVIOUS/lib/sluice/plugins" "$old_config" || fail "could not point the old config at the old plugins"

start_listener "$NS_W2" "$WORK/echo.out" $tcp_echo echo w2 8080

# The previous release runs the dataplane.
SLUICED=$PREVIOUS/bin/sluiced CONFIG=$old_config start_daemon
grep -q "migrating pins" "$WORK/daemon.log" && fail "the previous release migrated something"

streams=$WORK/streams
mkdir -p "$streams"
spawn_in_ns "$NS_W1" $tcp_echo stream 10.96.0.10 80 $CONNECTIONS "$streams" 2>"$streams/stderr"
stream_pid=$!
wait_file "$streams/status.json" "the streamed connections"
$tcp_echo progress "$streams" || fail "the connections do not echo under the previous release"
redirected_before=$(in_node "$PREVIOUS/bin/sluicectl" --config "$old_config" -o json counters dump |
  python3 -c 'import json, sys
print(sum(r["packets"] for r in json.load(sys.stdin)
          if r["interface"] == "cali1" and r["hook"] == "ingress" and r["reason"] == "redirected"))')
(( redirected_before > 0 )) || fail "the previous release's fast path carried nothing"
echo "ok: previous release: $CONNECTIONS connections stream through 10.96.0.10, $redirected_before redirected on cali1"

# The upgrade: stop the old daemon, start the new one over its pins.
stop_daemon
SLUICED=$E2E_BUILD/bin/sluiced
CONFIG=$new_config
start_daemon
grep -q "migrating pins of layout 1 to layout 2" "$WORK/daemon.log" \
  || fail "the new daemon did not migrate the pins"
grep -q "layout migration from 1 done" "$WORK/daemon.log" || fail "the migration did not finish"
$tcp_echo progress "$streams" || fail "connections stopped echoing after the upgrade $(cat "$streams/stderr")"
echo "ok: all $CONNECTIONS connections echo after the upgrade"

leftover=$(ls "/sys/fs/bpf/$INSTANCE/maps" | grep -c '__layout' || true)
assert_eq 0 "$leftover" "moved-aside pins left after the takeover"
(( $(counter cali1 ingress redirected) >= redirected_before )) \
  || fail "counters did not carry over: $(counter cali1 ingress redirected) < $redirected_before"
echo "ok: counters carried over ($(counter cali1 ingress redirected) redirected on cali1)"

# The connections' entries are the ones made when they opened, and the new
# fast path carries them.
fp=$(counter cali1 ingress redirected)
$tcp_echo progress "$streams" || fail "connections stopped echoing"
(( $(counter cali1 ingress redirected) > fp )) || fail "the new fast path carries nothing"
cp "$streams/status.json" "$WORK/status.json"
ctl -o json conntrack dump >"$WORK/conntrack.json"
python3 - "$WORK/conntrack.json" "$WORK/status.json" <<'PY' || fail "the conntrack entries did not survive"
import json, sys
flows = {(f["src"], f["sport"]): f for f in json.load(open(sys.argv[1]))
         if f["proto"] == "TCP" and f["type"] == "NAT_REV"}
status = json.load(open(sys.argv[2]))
for c in status["connections"]:
    f = flows.get((c["seen_ip"], c["local_port"]))
    assert f, "no NAT_REV entry for %s:%d" % (c["seen_ip"], c["local_port"])
    assert f["state"] == "ESTABLISHED" and "midstream" not in f["flags"], f
    client, backend = (f["b_to_a"], f["a_to_b"]) if "B-A" in f["flags"] else (f["a_to_b"], f["b_to_a"])
    assert client["packets"] >= c["exchanges"] and backend["packets"] >= c["exchanges"], (
        "entry of port %d counted %d/%d packets for %d exchanges: not the original entry"
        % (c["local_port"], client["packets"], backend["packets"], c["exchanges"]))
print("ok: the %d connections keep the conntrack entries made when they opened" % len(status["connections"]))
PY

touch "$streams/stop"
wait $stream_pid || true
python3 - "$streams/status.json" <<'PY' || fail "the streams failed"
import json, sys
s = json.load(open(sys.argv[1]))
errors = s["errors"] + ["#%d: %s" % (c["index"], e) for c in s["connections"] for e in c["errors"]]
assert s["done"] and not errors, "\n".join(errors) or "not done"
print("ok: %d connections, %d exchanges, no error across the upgrade" % (
    len(s["connections"]), sum(c["exchanges"] for c in s["connections"])))
PY
stop_daemon
echo PASS
