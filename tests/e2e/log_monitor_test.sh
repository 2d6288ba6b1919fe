#!/usr/bin/env bash
# The log plugin streams packet events to `sluicectl monitor`; the runtime
# log level switches the trace pipe on and off without reloading anything.
source "$(dirname "$0")/lib.sh"
e2e_init logmon

write_config '["log"]' '[plugins.log]
filter = "all"'
start_daemon
ids_before=$(filter_prog_id "$NS_NODE" cali1 ingress)

ctl -o json monitor --count 4 --timeout 10 >"$WORK/events.json" 2>"$WORK/monitor.err" &
mon_pid=$!
sleep 0.5
ip netns exec "$NS_W1" ping -c 2 -i 0.2 -W 1 10.65.2.2 >/dev/null || fail "ping failed"
wait $mon_pid || { cat "$WORK/monitor.err"; fail "monitor failed"; }
python3 - "$WORK/events.json" <<'PY' || fail "unexpected events: $(cat "$WORK/events.json")"
import json, sys
events = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
assert len(events) == 4, events
assert any(e["interface"] == "cali1" and e["hook"] == "ingress" for e in events), events
text = json.dumps(events)
assert "10.65.1.2" in text and "10.65.2.2" in text, events
print("ok: %d events, e.g. %s" % (len(events), events[0]))
PY

# Debug trace: Calico-style prefix, final verdict and execution time.
tracing=/sys/kernel/tracing
ctl log-level debug
assert_eq debug "$(ctl log-level | grep -o 'debug' | head -1)" "log level"
[[ -r $tracing/trace_pipe ]] || fail "tracefs is not mounted at $tracing"
timeout 3 cat $tracing/trace_pipe >"$WORK/trace.txt" &
trace_pid=$!
sleep 0.3
ip netns exec "$NS_W1" ping -c 2 -i 0.2 -W 1 10.65.2.2 >/dev/null || fail "ping failed with debug on"
wait $trace_pid || true
grep -q "cali1-----------I: " "$WORK/trace.txt" || { head "$WORK/trace.txt"; fail "no cali1 ingress debug lines"; }
grep -q "cali2-----------E: Final result=ALLOW (accepted). Program execution time: [0-9]*ns" "$WORK/trace.txt" \
  || { grep cali2 "$WORK/trace.txt" | head; fail "no final verdict line on cali2 egress"; }
echo "ok: $(grep -m1 'Final result' "$WORK/trace.txt" | sed 's/.*: cali/cali/')"

ctl log-level off
timeout 1.5 cat $tracing/trace_pipe >"$WORK/trace-off.txt" &
trace_pid=$!
sleep 0.3
ip netns exec "$NS_W1" ping -c 2 -i 0.2 -W 1 10.65.2.2 >/dev/null
# trace_pipe keeps what no reader took yet, so a marker after the pings shows
# the reader saw everything written while they ran.
marker="sluice-e2e-$E2E_ID-log-off"
echo "$marker" >$tracing/trace_marker
wait $trace_pid || true
grep -q -- "$marker" "$WORK/trace-off.txt" || fail "the trace_pipe reader saw nothing (not even its marker)"
grep -q "cali1----" "$WORK/trace-off.txt" && fail "trace lines with log level off"
assert_eq "$ids_before" "$(filter_prog_id "$NS_NODE" cali1 ingress)" "program unchanged by log-level switches"
stop_daemon
echo PASS
