#!/usr/bin/env bash
# With the daemon stopped the dataplane keeps forwarding; --cleanup then
# removes every filter, the qdiscs Sluice created and every pin, and leaves
# a clsact qdisc that was there before Sluice untouched.
source "$(dirname "$0")/lib.sh"
e2e_init cleanup

tc -n "$NS_NODE" qdisc add dev cali2 clsact   # pre-existing, not ours
write_config "[]"
start_daemon
stop_daemon

[[ -n $(filter_prog_id "$NS_NODE" cali1 ingress) ]] || fail "programs detached when the daemon stopped"
ip netns exec "$NS_W1" ping -c 2 -i 0.2 -W 1 10.65.2.2 >/dev/null || fail "no forwarding while the daemon is down"
assert_eq 2 "$(counter cali1 ingress accepted)" "counted with the daemon down"
echo "ok: dataplane runs without the daemon"

in_node "$SLUICED" --config "$CONFIG" --cleanup
[[ -e /sys/fs/bpf/$INSTANCE ]] && fail "pins left under /sys/fs/bpf/$INSTANCE"
for dev in cali1 eth0; do
  has_clsact "$NS_NODE" $dev && fail "clsact qdisc left on $dev"
done
has_clsact "$NS_NODE" cali2 || fail "the pre-existing clsact on cali2 was removed"
for hook in ingress egress; do
  [[ -z $(filter_prog_id "$NS_NODE" cali2 $hook) ]] || fail "our $hook filter is left on cali2"
done
echo "ok: no pins, no filters, no qdisc of ours; foreign qdisc kept"
ip netns exec "$NS_W1" ping -c 1 -W 1 10.65.2.2 >/dev/null || fail "no forwarding after cleanup"
out=$(ctl ifstate dump 2>&1) && fail "sluicectl should fail when nothing is pinned"
echo "$out" | grep -qi "nothing is pinned" || fail "sluicectl says: $out"
echo "ok: sluicectl says nothing is pinned"
echo PASS
