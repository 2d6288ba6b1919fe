#!/usr/bin/env bash
# Changing the configuration: SIGHUP applies a good one (interfaces that no
# longer match are released), refuses a bad plugin table or a pin-dir change
# without touching the running dataplane; an enabled plugin that cannot even
# be opened fails closed unless it is listed as optional.
source "$(dirname "$0")/lib.sh"
e2e_init reconf

write_config "[]"
start_daemon
[[ -n $(filter_prog_id "$NS_NODE" cali2 ingress) ]] || fail "cali2 not attached"

# 1. cali2 stops matching: the re-exec'd daemon detaches it and removes the
#    clsact qdisc it created; cali1 gets new programs.
old_cali1=$(filter_prog_id "$NS_NODE" cali1 ingress)
printf '[interfaces]\nworkload = ["cali1"]\n' >>"$CONFIG"
reload_daemon
[[ -z $(filter_prog_id "$NS_NODE" cali2 ingress) ]] || fail "cali2 still has our filter"
has_clsact "$NS_NODE" cali2 && fail "cali2 still has the clsact qdisc Sluice created"
ifstate=$(ctl -o json ifstate dump) || fail "sluicectl ifstate dump failed"
grep -q '"cali2"' <<<"$ifstate" && fail "cali2 still recorded"
new_cali1=$(filter_prog_id "$NS_NODE" cali1 ingress)
[[ -n $new_cali1 && $new_cali1 != "$old_cali1" ]] || fail "cali1 not re-attached ($old_cali1 -> $new_cali1)"
echo "ok: cali2 released, cali1 re-attached ($old_cali1 -> $new_cali1)"
ip netns exec "$NS_W1" ping -c 1 -W 1 10.65.2.2 >/dev/null || fail "traffic broken after reload"

# 2. A bad plugin table is refused by the child --check-config.
cp "$CONFIG" "$WORK/good.toml"
if [[ -f $E2E_BUILD/lib/sluice/plugins/log.so ]]; then
  sed -i 's/^enabled = .*/enabled = ["log"]/' "$CONFIG"
  printf '[plugins.log]\nbogus = 1\n' >>"$CONFIG"
  refused=$(daemon_log_count "check-config refused the new configuration")
  kill -HUP "$DAEMON_PID"
  wait_daemon_log "check-config refused the new configuration" "$refused" "the bad plugin table to be refused"
  kill -0 "$DAEMON_PID" || fail "daemon died on a bad plugin table"
  assert_eq "$new_cali1" "$(filter_prog_id "$NS_NODE" cali1 ingress)" "program after a refused plugin table"
fi

# 3. Moving the pins (another instance) is refused.
cp "$WORK/good.toml" "$CONFIG"
sed -i "s/^instance = .*/instance = \"$INSTANCE-other\"/" "$CONFIG"
refused=$(daemon_log_count "root/instance changed")
kill -HUP "$DAEMON_PID"
wait_daemon_log "root/instance changed" "$refused" "the pin dir change to be refused"
[[ -e /sys/fs/bpf/$INSTANCE-other ]] && fail "a second pin dir was created"
assert_eq "$new_cali1" "$(filter_prog_id "$NS_NODE" cali1 ingress)" "program after a refused instance change"
cp "$WORK/good.toml" "$CONFIG"
stop_daemon

# 4. An enabled plugin that cannot be opened and was never seen: a hole
#    heads every chain, workloads fail closed...
sed -i 's/^enabled = .*/enabled = ["nosuch"]/' "$CONFIG"
start_daemon
grep -q "plugin 'nosuch' failed before declaring its stages" "$WORK/daemon.log" || fail "no head-hole warning"
ip netns exec "$NS_W1" ping -c 2 -i 0.2 -W 1 10.65.2.2 >/dev/null && fail "traffic passed a missing non-optional plugin"
assert_eq 2 "$(counter cali1 ingress missed-tail-call)" "cali1 ingress missed-tail-call"
stop_daemon
#    ...unless it is optional.
sed -i 's/^enabled = .*/enabled = ["nosuch"]\noptional = ["nosuch"]/' "$CONFIG"
start_daemon
ip netns exec "$NS_W1" ping -c 2 -i 0.2 -W 1 10.65.2.2 >/dev/null || fail "an optional missing plugin blocked traffic"
echo "ok: optional plugin left out"
stop_daemon
echo PASS
