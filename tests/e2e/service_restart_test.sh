#!/usr/bin/env bash
# Restarting sluiced in the middle of open TCP connections through a service
# breaks none of them. 24 connections exchange data without pause — 12 from a
# workload to the cluster IP, 12 from an external client to the node port on
# the uplink — spread over three backends, while sluiced is restarted every
# way it can be (SIGTERM + start, SIGHUP re-exec, a new sluiced taking over
# from one killed with SIGKILL) and one backend is first marked terminating,
# then removed. Afterwards: no connection saw an error or a stall, each
# still echoes every byte, every backend saw the client's own address, every
# segment reaching a client came from the service address, the conntrack
# entries of the connections are the ones created at connect time, nothing
# was dropped and no TCP segment lost.
source "$(dirname "$0")/lib.sh"
e2e_init svc-restart
tcp_echo="python3 $(dirname "$0")/tcp_echo.py"

# The checks in Python below read these from the environment.
export CLUSTER_IP=10.96.0.10 SERVICE_PORT=80 NODE_IP=10.64.0.1 NODE_PORT=30080 TARGET_PORT=8080
export CONNECTIONS=12   # per client
export WORKLOAD_CLIENT_IP=10.65.1.2 EXTERNAL_CLIENT_IP=10.64.0.2  # lab addresses of w1, ext
e2e_add_workload 3
e2e_add_workload 4
backend_ns() { echo "$E2E_ID-$1"; }   # w2 w3 w4 -> namespace
backend_ip() { echo "10.65.${1#w}.2"; }
BACKENDS="w2 w3 w4"
LEAVING=w4   # first terminating, then removed from the service
# The namespaces that hold an end of a connection.
TCP_NAMESPACES="$NS_W1 $NS_EXT $(for b in $BACKENDS; do backend_ns "$b"; done)"

state=$WORK/state
mkdir -p "$state"
write_config '["conntrack", "nat", "log"]' "[state]
dir = \"$state\"
[plugins.log]
filter = \"match\"
[[plugins.log.match]]
protocol = \"tcp\"
destination_port = $TARGET_PORT"

# The backends run on this node (local): external node-port clients keep
# their address (a backend on another node would see the node's instead).
NODE_NAME=$E2E_ID-node
# service_file <toml of the leaving backend, or "" to leave it out>
service_file() {
  cat >"$state/services.toml" <<TOML
[[service]]
name = "echo"
cluster_ip = "$CLUSTER_IP"
ports = [{ port = $SERVICE_PORT, target_port = $TARGET_PORT, node_port = $NODE_PORT }]
backends = [{ ip = "$(backend_ip w2)", node = "$NODE_NAME" },
            { ip = "$(backend_ip w3)", node = "$NODE_NAME" }, $1]
TOML
}
# change_service <toml of the leaving backend>: write it, wait until nat applied it.
change_service() {
  local applied
  applied=$(daemon_log_count "plugin 'nat' applied")
  service_file "$1"
  wait_daemon_log "plugin 'nat' applied" "$applied" "nat to apply the service change"
}
service_file "{ ip = \"$(backend_ip $LEAVING)\", node = \"$NODE_NAME\" }"

for backend in $BACKENDS; do
  start_listener "$(backend_ns $backend)" "$WORK/$backend.out" $tcp_echo echo "$backend" $TARGET_PORT
done
start_daemon

cluster=$WORK/cluster nodeport=$WORK/nodeport
mkdir -p "$cluster" "$nodeport"
spawn_in_ns "$NS_W1" $tcp_echo stream $CLUSTER_IP $SERVICE_PORT $CONNECTIONS "$cluster" \
  2>"$cluster/stderr"
cluster_pid=$!
spawn_in_ns "$NS_EXT" $tcp_echo stream $NODE_IP $NODE_PORT $CONNECTIONS "$nodeport" \
  2>"$nodeport/stderr"
nodeport_pid=$!
wait_file "$cluster/status.json" "the cluster IP connections"
wait_file "$nodeport/status.json" "the node port connections"

# streams_echo <when>: every connection still echoes.
streams_echo() {
  $tcp_echo progress "$cluster" "$nodeport" \
    || fail "connections stopped echoing $1 $(cat "$cluster/stderr" "$nodeport/stderr")"
  echo "ok: all $((2 * CONNECTIONS)) connections echo $1"
}
streams_echo "before any restart"

# connections_on <backend>: open streamed connections the backend holds.
connections_on() {
  python3 -c 'import json, sys
print(sum(c["backend"] == sys.argv[1] for d in sys.argv[2:]
          for c in json.load(open(d + "/status.json"))["connections"]))' "$1" "$cluster" "$nodeport"
}
for backend in $BACKENDS; do
  (( $(connections_on $backend) > 0 )) || fail "no connection went to $backend"
done
echo "ok: connections per backend: $(for b in $BACKENDS; do echo -n "$b $(connections_on $b) "; done)"

echo "# restart 1: SIGTERM, then a new sluiced"
stop_daemon
start_daemon
streams_echo "after SIGTERM and a new start"

echo "# restart 2: SIGHUP re-exec"
reload_daemon
streams_echo "after a SIGHUP re-exec"

echo "# service change: $LEAVING terminating"
change_service "{ ip = \"$(backend_ip $LEAVING)\", node = \"$NODE_NAME\", terminating = true }"
# new_connections_avoid <backend> <when>: short new connections to the
# cluster IP all go to the other backends. Were the backend still picked,
# one of 12 would go to it but for a chance of (2/3)^12 < 1%.
new_connections_avoid() {
  in_ns "$NS_W1" $tcp_echo ask $CLUSTER_IP $SERVICE_PORT 12 >"$WORK/ask.out"
  grep -q error "$WORK/ask.out" && { cat "$WORK/ask.out"; fail "new connections failed $2"; }
  grep -q "^$1 " "$WORK/ask.out" && { cat "$WORK/ask.out"; fail "a new connection went to $1 $2"; }
  echo "ok: 12 new connections $2 avoid $1: $(cut -d' ' -f1 "$WORK/ask.out" | sort | uniq -c | xargs)"
}
new_connections_avoid $LEAVING "while it is terminating"
streams_echo "after $LEAVING became terminating ($(connections_on $LEAVING) open on it)"

echo "# restart 3: a new sluiced takes over from one killed with SIGKILL"
old_pid=$DAEMON_PID
lock_waits=$(daemon_log_count "another sluiced holds instance")
launch_daemon
wait_daemon_log "another sluiced holds instance" "$lock_waits" \
  "the new sluiced to wait for the old one's instance lock"
kill -KILL "$old_pid"
killed_status=0
wait "$old_pid" 2>/dev/null || killed_status=$?  # quiet: bash would report "Killed"
assert_eq 137 "$killed_status" "exit status of the old daemon (SIGKILL)"
wait_daemon_ready
streams_echo "after a takeover from a SIGKILLed daemon"

echo "# service change: $LEAVING removed"
change_service ""
new_connections_avoid $LEAVING "after its removal"
streams_echo "after $LEAVING was removed from the service"

echo "# restart 4: a service deleted while no sluiced runs is swept by the next start"
SWEPT_IP=10.96.0.77
applied=$(daemon_log_count "plugin 'nat' applied")
cat >"$state/swept.toml" <<TOML
[[service]]
name = "swept"
cluster_ip = "$SWEPT_IP"
ports = [{ port = 80, target_port = $TARGET_PORT }]
backends = [{ ip = "$(backend_ip w2)", node = "$NODE_NAME" }]
TOML
wait_daemon_log "plugin 'nat' applied" "$applied" "nat to apply the extra service"
dump=$(ctl -o json nat dump) || fail "sluicectl nat dump failed"
grep -q "$SWEPT_IP" <<<"$dump" || fail "nat dump does not list the extra service $SWEPT_IP"
stop_daemon
rm "$state/swept.toml"
start_daemon
dump=$(ctl -o json nat dump) || fail "sluicectl nat dump failed"
grep -q "$SWEPT_IP" <<<"$dump" && fail "the pinned maps still hold $SWEPT_IP, deleted while sluiced was down"
grep -q "$(backend_ip $LEAVING)" <<<"$dump" && fail "nat dump still lists $LEAVING"
echo "ok: the service deleted while sluiced was down is gone from the maps"
streams_echo "after a restart without $LEAVING and without the deleted service"

# Each connection's conntrack entry is the one created when it opened: it
# counted every packet of the connection (a request and an echo per
# exchange, each at least once: on the ingress hook it arrives by, where the
# fast path — on by default — redirects it). An entry lost in a restart and
# picked up mid-stream would miss the packets before it, and be flagged so.
cp "$cluster/status.json" "$WORK/cluster_status.json"
cp "$nodeport/status.json" "$WORK/nodeport_status.json"
ctl -o json conntrack dump >"$WORK/conntrack.json"
python3 - "$WORK/conntrack.json" "$WORK/cluster_status.json" "$WORK/nodeport_status.json" \
  <<'PY' || fail "the conntrack entries of the connections did not survive"
import json, os, sys
flows = {(f["src"], f["sport"]): f for f in json.load(open(sys.argv[1]))
         if f["proto"] == "TCP" and f["type"] == "NAT_REV"}
checked = 0
for path in sys.argv[2:]:
    status = json.load(open(path))
    service_ip, service_port = status["target"].split(":")
    node_port = service_ip == os.environ["NODE_IP"]
    for c in status["connections"]:
        f = flows.get((c["seen_ip"], c["local_port"]))
        assert f, "no NAT_REV entry for %s:%d" % (c["seen_ip"], c["local_port"])
        assert (f["orig_dst"], f["orig_dport"]) == (service_ip, int(service_port)), f
        backend = ("10.65.%s.2" % c["backend"][1:], int(os.environ["TARGET_PORT"]))
        assert (f["dst"], f["dport"]) == backend, f
        assert f["state"] == "ESTABLISHED" and "midstream" not in f["flags"], f
        assert ("node-addr" in f["flags"]) == node_port, "node-addr flag wrong: %s" % f
        client, backend = (f["b_to_a"], f["a_to_b"]) if "B-A" in f["flags"] else (
            f["a_to_b"], f["b_to_a"])
        least = c["exchanges"]
        assert client["packets"] >= least and backend["packets"] >= least, (
            "entry of %s:%d counted %d/%d packets for %d exchanges: not the original entry"
            % (c["seen_ip"], c["local_port"], client["packets"], backend["packets"],
               c["exchanges"]))
        checked += 1
print("ok: the %d connections' conntrack entries (client -> service -> backend) are the "
      "ones created at connect time, ESTABLISHED, with every packet counted" % checked)
PY

# Nothing was dropped, and no hook ran with a hole in its chain. Redirects
# happen on ingress only: the fast path's, and the node port replies the nat
# stage routes from the backends' veths.
ctl -o json counters dump >"$WORK/counters.json"
python3 - "$WORK/counters.json" <<'PY' || fail "packets were dropped or missed a stage"
import json, os, sys
rows = json.load(open(sys.argv[1]))
expected = lambda r: r["reason"] == "accepted" or (
    r["reason"] == "redirected" and r["hook"] == "ingress")
bad = [r for r in rows if not expected(r)]
assert not bad, "\n".join("%(interface)s %(hook)s %(reason)s: %(packets)d packets" % r for r in bad)
print("ok: %d packets accepted, %d redirected on ingress, none dropped or passed "
      "past a missing stage" % (sum(r["packets"] for r in rows if r["reason"] == "accepted"),
                                sum(r["packets"] for r in rows if r["reason"] == "redirected")))
PY
# Quiet the streams: no new requests, every echo in, connections kept open
# (a probe sent as a connection closes reaches a closed socket: no D-SACK).
touch "$cluster/quiet" "$nodeport/quiet"
for _ in $(seq 100); do
  grep -q '"quiet": true' "$cluster/status.json" && grep -q '"quiet": true' "$nodeport/status.json" && break
  sleep 0.1
done
grep -q '"quiet": true' "$cluster/status.json" && grep -q '"quiet": true' "$nodeport/status.json" \
  || fail "the streams did not go quiet within 10 s"
# No segment was lost. Sluice counts its own drops (above), but the kernel
# drops some packets without a counter (a "martian" source, for one), so
# TCP itself is asked. A late echo on a busy machine makes TCP send a tail
# loss probe: a copy of a segment the receiver already has, which it answers
# with a D-SACK. A segment that was really lost is retransmitted and is new
# to the receiver: no D-SACK. So every segment the clients retransmitted
# must have been D-SACKed by the backends, and the other way round — counted
# where the D-SACKs are sent: the ACK that carries one may be overtaken by
# the next echo (veth queues per CPU) and then be dropped by the sender as
# old, which loses no data. All TCP in these namespaces is the test's; the
# counters are read while the streams are quiet, until they settle.
# tcp_loss_check try|final: exit 0 when the counts match; 3 (try) or a
# report and 1 (final) when not.
tcp_loss_check() {
  side_of() { case $1 in "$NS_W1"|"$NS_EXT") echo clients ;; *) echo backends ;; esac; }
  for ns in $TCP_NAMESPACES; do
    echo "$(side_of "$ns")" "${ns##*-}" $(in_ns "$ns" nstat -asz TcpRetransSegs \
      TcpExtTCPDSACKOldSent TcpExtTCPDSACKOfoSent | awk '!/^#/ { print $1, $2 }')
  done >"$WORK/retransmits"
  # Where a lost segment may have gone: every namespace's nonzero drop, error
  # and recovery counters (printed on failure).
  for ns in $NS_NODE $TCP_NAMESPACES; do
    echo "${ns##*-}:" $(in_ns "$ns" nstat -as | awk '!/^#/ && tolower($1) ~ /drop|err|discard|csum|noroute|prune|lossprobe|recovery|timeout|dsack|retrans|paws/ { printf "%s=%s ", $1, $2 }')
  done >"$WORK/tcp-counters"
  in_node ip -j -s link | python3 -c 'import json, sys
print("node links, rx/tx dropped:", " ".join("%s=%d/%d" % (l["ifname"], l["stats64"]["rx"]["dropped"],
      l["stats64"]["tx"]["dropped"]) for l in json.load(sys.stdin) if "stats64" in l))' >>"$WORK/tcp-counters"
  python3 - "$1" "$WORK/retransmits" "$WORK/tcp-counters" "$cluster/status.json" "$nodeport/status.json" \
    <<'PY'
import json, sys
retransmitted = {"clients": 0, "backends": 0}
dsacked = {"clients": 0, "backends": 0}
final = sys.argv.pop(1) == "final"
for line in open(sys.argv[1]):
    side, ns, *counters = line.split()
    counters = dict(zip(counters[::2], map(int, counters[1::2])))
    retransmitted[side] += counters["TcpRetransSegs"]
    dsacked[side] += counters["TcpExtTCPDSACKOldSent"] + counters["TcpExtTCPDSACKOfoSent"]
wrong = ["the %s retransmitted %d segments, the %s D-SACKed %d" % (a, retransmitted[a], b, dsacked[b])
         for a, b in (("clients", "backends"), ("backends", "clients"))
         if retransmitted[a] != dsacked[b]]
if wrong and not final:
    sys.exit(3)  # a probe's D-SACK may still be on its way: look again
if wrong:
    for path in sys.argv[3:]:  # when the clients saw retransmissions, and slow echoes
        status = json.load(open(path))
        for c in status["connections"]:
            print("%s #%d (%s): retransmits %s, slow %s" % (
                status["target"], c["index"], c["backend"], c["retransmits"], c["slow"]))
    print(open(sys.argv[2]).read())
    sys.exit("segments lost or duplicated: " + "; ".join(wrong))
print("ok: no TCP segment lost: all %d retransmitted (loss probes after late echoes) were "
      "D-SACKed by the receivers" % sum(retransmitted.values()))
PY
}
for _ in $(seq 20); do
  status=0
  tcp_loss_check try || status=$?
  (( status == 3 )) || break
  sleep 0.25
done
(( status == 0 )) || tcp_loss_check final || fail "TCP segments were lost"

# Stop the streams: each closes its connections in order and reports.
touch "$cluster/stop" "$nodeport/stop"
wait $cluster_pid || true
wait $nodeport_pid || true

python3 - "$cluster/status.json" "$nodeport/status.json" <<'PY' || fail "the streams failed"
import json, os, sys
env = os.environ
clients = {"%s:%s" % (env["CLUSTER_IP"], env["SERVICE_PORT"]): env["WORKLOAD_CLIENT_IP"],
           "%s:%s" % (env["NODE_IP"], env["NODE_PORT"]): env["EXTERNAL_CLIENT_IP"]}
connections = int(env["CONNECTIONS"])
seen_by = {}
for path in sys.argv[1:]:
    s = json.load(open(path))
    errors = s["errors"] + ["#%d %s: %s" % (c["index"], c["backend"], e)
                            for c in s["connections"] for e in c["errors"]]
    assert s["done"] and not errors, "%s: %s" % (s["target"], "\n".join(errors) or "not done")
    assert len(s["connections"]) == connections, s["target"]
    for c in s["connections"]:
        assert c["peer"] == s["target"], "socket not connected to the service: %s" % c
        assert c["seen_ip"] == clients[s["target"]], "backend saw %s" % c
        seen_by.setdefault(c["backend"], set()).add(c["seen_ip"])
    assert s["segments_watched"] > 1000, "too few segments watched: %d" % s["segments_watched"]
    assert not s["foreign_sources"], "segments not from %s: %s" % (s["target"], s["foreign_sources"])
    print("ok: %s: %d connections, %d exchanges, %.1f MB echoed, slowest round trip %.0f ms; "
          "all %d segments to the client came from %s" % (
              s["target"], connections, sum(c["exchanges"] for c in s["connections"]),
              sum(c["bytes"] for c in s["connections"]) / 1e6,
              max(c["max_rtt_ms"] for c in s["connections"]), s["segments_watched"], s["target"]))
assert sorted(seen_by) == ["w2", "w3", "w4"], seen_by
print("ok: client addresses seen by each backend: " +
      ", ".join("%s %s" % (b, " ".join(sorted(ips))) for b, ips in sorted(seen_by.items())))
PY
stop_daemon
echo PASS
