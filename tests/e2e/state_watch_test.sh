#!/usr/bin/env bash
# The state directory watch sees every way a directory of files is updated,
# each checked with a UDP stream through the service it changes:
#  - a file that is a symlink (created with ln -s: never written);
#  - the Kubernetes ConfigMap layout: files are symlinks through `..data`,
#    which is swapped atomically to a new `..<version>` directory;
#  - the directory deleted and made again (with its files), under traffic:
#    no datagram to a service in it is lost.
source "$(dirname "$0")/lib.sh"
e2e_init statewatch

state=$WORK/state
elsewhere=$WORK/elsewhere
mkdir -p "$state" "$elsewhere"
write_config '["conntrack", "nat"]' "[state]
dir = \"$state\""
# service_toml <name> <cluster ip> <target port>
service_toml() {
  cat <<TOML
[[service]]
name = "$1"
cluster_ip = "$2"
ports = [{ port = 80, protocol = "udp", target_port = $3 }]
backends = [{ ip = "10.65.2.2" }]
TOML
}
# stream <cluster ip> <target port> <count>: count datagrams from w1 to the
# service (2 ms apart), received by w2 on the target port; fails on any loss.
stream() {
  start_listener "$NS_W2" "$WORK/recv-$2.out" "$UDP_STREAM" recv "$2" "$3" 20
  ip netns exec "$NS_W1" "$UDP_STREAM" send "$1" 80 "$3" 2000 2>"$WORK/send-$2.err"
  wait "$LISTENER_PID" || true
  grep -q "missing 0" "$WORK/recv-$2.out" ||
    fail "datagrams to $1 (target port $2) lost: $(cat "$WORK/recv-$2.out" "$WORK/send-$2.err")"
  echo "ok: $1 -> 10.65.2.2:$2: $(cat "$WORK/recv-$2.out")"
}
# ConfigMap layout, version 1: the file points through ..data.
mkdir "$state/..v1"
service_toml cm 10.96.0.31 9201 >"$state/..v1/cm.toml"
ln -s ..v1 "$state/..data"
ln -s ..data/cm.toml "$state/cm.toml"
service_toml plain 10.96.0.32 9301 >"$state/plain.toml"
start_daemon
stream 10.96.0.31 9201 50
stream 10.96.0.32 9301 50

# A symlinked file appears (ln -s sends no close-after-write).
applied=$(daemon_log_count "plugin 'nat' applied")
service_toml linked 10.96.0.30 9101 >"$elsewhere/linked.toml"
ln -s "$elsewhere/linked.toml" "$state/linked.toml"
wait_daemon_log "plugin 'nat' applied" "$applied" "nat to apply the symlinked file"
stream 10.96.0.30 9101 50

# The ConfigMap's new version: ..data swapped atomically, the old one removed.
applied=$(daemon_log_count "plugin 'nat' applied")
mkdir "$state/..v2"
service_toml cm 10.96.0.31 9202 >"$state/..v2/cm.toml"
ln -s ..v2 "$state/..data_tmp"
mv -T "$state/..data_tmp" "$state/..data"
rm -rf "$state/..v1"
wait_daemon_log "plugin 'nat' applied" "$applied" "nat to apply the swapped ..data"
stream 10.96.0.31 9202 50

# The directory deleted and made again with the same files, while a stream
# to one of its services runs.
N=1500
start_listener "$NS_W2" "$WORK/recv-replace.out" "$UDP_STREAM" recv 9301 $N 20
ip netns exec "$NS_W1" "$UDP_STREAM" send 10.96.0.32 80 $N 2000 2>"$WORK/send-replace.err" &
sender=$!
sleep 0.5
cp -a "$state" "$WORK/state.copy"
rm -rf "$state"
mv "$WORK/state.copy" "$state"
wait "$sender" || fail "the sender failed"
wait "$LISTENER_PID" || true
grep -q "missing 0" "$WORK/recv-replace.out" ||
  fail "datagrams lost while the state directory was replaced: $(cat "$WORK/recv-replace.out")"
echo "ok: directory replaced under traffic: $(cat "$WORK/recv-replace.out")"
# ... and it is still watched: a change in the new directory is applied.
applied=$(daemon_log_count "plugin 'nat' applied")
service_toml plain 10.96.0.32 9302 >"$state/plain.toml"
wait_daemon_log "plugin 'nat' applied" "$applied" "nat to apply a change in the new directory"
stream 10.96.0.32 9302 50
stream 10.96.0.30 9101 50
stop_daemon
echo PASS
