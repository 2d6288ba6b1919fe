#!/usr/bin/env bash
# A bad configuration exits non-zero naming file:line and key, and changes
# nothing: not on a fresh node, not under a running daemon, not on SIGHUP.
source "$(dirname "$0")/lib.sh"
e2e_init badconfig

write_config "[]"
cp "$CONFIG" "$WORK/good.toml"
bad=$WORK/bad.toml
cat "$WORK/good.toml" >"$bad"
printf '[interfaces]\nworkload = ["cali*"]\nwrokload_typo = ["x*"]\n' >>"$bad"
line=$(grep -n wrokload_typo "$bad" | cut -d: -f1)

# Fresh node: nothing may be created.
set +e
out=$(in_node "$SLUICED" --config "$bad" 2>&1); rc=$?
set -e
(( rc != 0 )) || fail "sluiced accepted a bad config"
echo "$out" | grep -q "$bad:$line:1: interfaces.wrokload_typo" || fail "error lacks file:line:col and key: $out"
echo "ok: $out"
[[ -e /sys/fs/bpf/$INSTANCE ]] && fail "pins created by a rejected config"
has_clsact "$NS_NODE" cali1 && fail "qdisc created by a rejected config"
set +e; out=$(in_node "$SLUICED" --config "$bad" --check-config 2>&1); rc=$?; set -e
(( rc != 0 )) || fail "--check-config accepted a bad config"
in_node "$SLUICED" --config "$WORK/good.toml" --check-config || fail "--check-config rejected a good config"

# Under a running daemon: a second start with the bad file changes nothing.
start_daemon
ids_before=$(for d in cali1 cali2 eth0; do filter_prog_id "$NS_NODE" $d ingress; done | tr '\n' ' ')
set +e; in_node "$SLUICED" --config "$bad" >/dev/null 2>&1; rc=$?; set -e
(( rc != 0 )) || fail "second start with a bad config succeeded"

# SIGHUP with a broken file keeps the running configuration.
cp "$bad" "$CONFIG"
refused=$(daemon_log_count "invalid, keeping the running one")
kill -HUP "$DAEMON_PID"
wait_daemon_log "invalid, keeping the running one" "$refused" "the bad reload to be refused"
kill -0 "$DAEMON_PID" || fail "the daemon died on SIGHUP with a bad config"
ids_after=$(for d in cali1 cali2 eth0; do filter_prog_id "$NS_NODE" $d ingress; done | tr '\n' ' ')
assert_eq "$ids_before" "$ids_after" "programs after rejected configs"
ip netns exec "$NS_W1" ping -c 1 -W 1 10.65.2.2 >/dev/null || fail "traffic broken"
cp "$WORK/good.toml" "$CONFIG"
stop_daemon
echo PASS
