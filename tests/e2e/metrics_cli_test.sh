#!/usr/bin/env bash
# sluiced serves Prometheus metrics (core counters, plugin state, the log
# plugin's own metrics) on [metrics] listen inside its namespace, and
# sluicectl runs the log plugin's `log stats` command.
source "$(dirname "$0")/lib.sh"
e2e_init metricscli

write_config '["log"]' '[plugins.log]
filter = "all"
[metrics]
listen = "127.0.0.1:9464"'
start_daemon
# The server starts just after "sluiced ready".
wait_daemon_log "metrics: serving Prometheus metrics on http://127.0.0.1:9464/metrics" 0 \
  "the daemon to say where it serves metrics"

# scrape [path] -> body on stdout, "HTTP <status>" on stderr for errors
scrape() {
  nsenter --net="/run/netns/$NS_NODE" python3 -c '
import sys, urllib.request, urllib.error
try:
    with urllib.request.urlopen("http://127.0.0.1:9464" + sys.argv[1], timeout=5) as r:
        assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4"), r.headers
        sys.stdout.write(r.read().decode())
except urllib.error.HTTPError as e:
    print("HTTP %d" % e.code)
' "${1:-/metrics}"
}

# metrics <scrape file> <query>... -> one line per query: the summed value of
# the samples matching "name [label=value ...]", or "absent"
metrics() {
  python3 - "$@" <<'PY'
import re, sys
path, *queries = sys.argv[1:]
samples = []
for line in open(path):
    m = re.match(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$', line.strip())
    if m:
        labels = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(2) or ""))
        samples.append((m.group(1), labels, float(m.group(3))))
for query in queries:
    name, *want = query.split()
    want = dict(w.split("=", 1) for w in want)
    hits = [v for n, l, v in samples if n == name and all(l.get(k) == x for k, x in want.items())]
    print(int(sum(hits)) if hits else "absent")
PY
}

N=50
start_listener "$NS_W2" "$WORK/recv.out" "$UDP_STREAM" recv 7000 $N 15
recv_pid=$LISTENER_PID
send_udp "$NS_W1" 10.65.2.2 7000 $N 500
wait $recv_pid || { cat "$WORK/recv.out"; fail "datagrams lost"; }

scrape /metrics >"$WORK/metrics.txt" || fail "scrape failed"
mapfile -t got < <(metrics "$WORK/metrics.txt" \
  "sluice_packets_total interface=cali1 hook=ingress reason=accepted verdict=accept" \
  "sluice_bytes_total interface=cali1 hook=ingress reason=accepted verdict=accept" \
  "sluice_plugin_up plugin=log" \
  "sluice_interfaces_managed" \
  "sluice_chain_generation" \
  "sluice_build_info" \
  "sluice_log_events_total" \
  "sluice_log_events_lost_total")
assert_eq $N "${got[0]}" "sluice_packets_total{cali1, ingress, accepted}"
assert_eq "$(counter cali1 ingress accepted)" "${got[0]}" "metrics agree with sluicectl counters dump"
[[ ${got[1]} =~ ^[0-9]+$ ]] && ((got[1] >= N * 28)) || fail "sluice_bytes_total for cali1 ingress is '${got[1]}'"
assert_eq 1 "${got[2]}" "sluice_plugin_up{plugin=\"log\"}"
assert_eq 3 "${got[3]}" "sluice_interfaces_managed"
[[ ${got[4]} =~ ^[1-9][0-9]*$ ]] || fail "sluice_chain_generation is '${got[4]}'"
assert_eq 1 "${got[5]}" "sluice_build_info"
events=${got[6]}
[[ $events =~ ^[0-9]+$ ]] && ((events >= 2 * N)) || fail "sluice_log_events_total is '$events', expected >= $((2 * N))"
echo "ok: sluice_log_events_total = $events"
assert_eq 0 "${got[7]}" "sluice_log_events_lost_total"
for name in sluice_packets_total sluice_plugin_up sluice_log_events_total; do
  assert_eq 1 "$(grep -c "^# TYPE $name " "$WORK/metrics.txt")" "TYPE lines for $name"
done

# Other paths and methods; garbage does not hurt the daemon.
assert_eq "HTTP 404" "$(scrape /other)" "GET /other"
assert_eq "HTTP 405" "$(in_node python3 -c '
import urllib.request, urllib.error
try:
    urllib.request.urlopen(urllib.request.Request("http://127.0.0.1:9464/metrics", data=b"x"), timeout=5)
except urllib.error.HTTPError as e:
    print("HTTP %d" % e.code)
')" "POST /metrics"
in_node python3 -c '
import socket
for junk in (b"\x00\xff\x16garbage\r\n\r\n", b"GET", b""):
    s = socket.create_connection(("127.0.0.1", 9464), timeout=5)
    s.sendall(junk); s.close()
'
kill -0 "$DAEMON_PID" || fail "sluiced died on garbage"
scrape /metrics | grep -q '^sluice_build_info' || fail "no metrics after garbage"
echo "ok: 404, 405 and garbage handled; daemon alive"

# sluicectl log stats: the same count as the metric (no traffic in between).
ctl -o json log stats >"$WORK/stats.json" || fail "sluicectl log stats failed"
python3 - "$WORK/stats.json" "$events" <<'PY' || fail "log stats: $(cat "$WORK/stats.json")"
import json, sys
stats = json.load(open(sys.argv[1]))
assert stats["events"] == int(sys.argv[2]), (stats, sys.argv[2])
assert stats["lost"] == 0 and stats["filter"] == "all" and stats["rules"] == [], stats
print("ok: log stats -o json: %s" % stats)
PY
ctl log stats | grep -Eq "^events written +$events$" || { ctl log stats; fail "log stats table"; }
ctl --help >"$WORK/help.txt"
grep -q "^Plugin commands (from log):" "$WORK/help.txt" || fail "--help does not list plugin commands"
grep -Eq "^  log stats +packet events" "$WORK/help.txt" || fail "--help does not list 'log stats'"
ctl log stats --help | grep -q "log_stats" || fail "log stats --help shows no description"
echo "ok: sluicectl --help lists log stats; log stats --help describes it"

# Built-in commands do not load plugins: they work with the plugin gone.
sed -i "s|^dir = .*|dir = \"$WORK/no-plugins\"|" "$CONFIG"
ctl counters dump >/dev/null 2>"$WORK/ctl.err" || fail "counters dump failed without plugins"
[[ -s $WORK/ctl.err ]] && fail "counters dump printed: $(cat "$WORK/ctl.err")"
if ctl log stats 2>"$WORK/ctl.err"; then fail "log stats ran without its plugin"; fi
grep -q "plugin 'log' could not be loaded" "$WORK/ctl.err" || fail "log stats failure: $(cat "$WORK/ctl.err")"
echo "ok: $(cat "$WORK/ctl.err")"

# A port that cannot be bound: the daemon says so and manages traffic anyway.
stop_daemon
# The blocker holds the port until told to go (a file), then frees it.
in_node python3 -c '
import os, socket, time, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", 9464)); s.listen(1)
sys.stdout.write("bound\n"); sys.stdout.flush()
deadline = time.time() + 60
while not os.path.exists(sys.argv[1]) and time.time() < deadline: time.sleep(0.05)' \
  "$WORK/blocker.stop" >"$WORK/blocker.out" &
blocker=$!
for _ in $(seq 50); do grep -q bound "$WORK/blocker.out" && break; sleep 0.1; done
sed -i "s|^dir = .*|dir = \"$E2E_BUILD/lib/sluice/plugins\"|" "$CONFIG"
unbound=$(daemon_log_count "serves no metrics")
start_daemon
wait_daemon_log "serves no metrics" "$unbound" "the daemon to report the bind failure"
touch "$WORK/blocker.stop"; wait "$blocker" || true
ip netns exec "$NS_W1" ping -c 1 -W 1 10.65.2.2 >/dev/null || fail "traffic stopped without metrics"
echo "ok: $(grep -m1 'serves no metrics' "$WORK/daemon.log" | sed 's/^[^ ]* [^ ]* //')"
stop_daemon
echo PASS
