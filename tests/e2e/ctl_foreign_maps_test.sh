#!/usr/bin/env bash
# sluicectl's plugin commands (conntrack, nat) refuse maps that are not
# Sluice's: no sl_meta layout marker beside them, a marker of another layout,
# or other key/value sizes. Each gets a clear error naming the pin and a
# non-zero exit, and `conntrack remove` deletes nothing in a foreign map.
# The same commands still work on the maps of a running sluiced.
source "$(dirname "$0")/lib.sh"
e2e_init ctlforeign

write_config '["conntrack", "nat"]'
maps=/sys/fs/bpf/$INSTANCE/maps
mkdir -p "$maps"

# expect_refusal <text the error must hold> <sluicectl args...>
expect_refusal() {
  local want=$1 out rc
  shift
  set +e; out=$(ctl "$@" 2>&1); rc=$?; set -e
  (( rc == 1 )) || fail "sluicectl $* exited $rc on foreign maps (want 1): $out"
  echo "$out" | grep -qF -- "$want" || fail "sluicectl $*: the error lacks \"$want\": $out"
  echo "ok: sluicectl $* -> $out"
}
foreign_entries() { bpftool -j map dump pinned "$maps/sl_conntrack" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))'; }
# write_meta <layout>: an sl_meta array as sluiced pins it (88-byte value),
# magic "SLCE" and the given layout.
write_meta() {
  rm -f "$maps/sl_meta"
  bpftool map create "$maps/sl_meta" type array key 4 value 88 entries 1 name sl_meta
  local value
  value=$(python3 -c 'import struct,sys; print(" ".join("%02x" % b for b in struct.pack("<II", 0x534c4345, int(sys.argv[1])) + bytes(80)))' "$1")
  # shellcheck disable=SC2086
  bpftool map update pinned "$maps/sl_meta" key hex 00 00 00 00 value hex $value
}

# Something else pinned an sl_conntrack (8-byte key and value) and nat maps
# there, and no sl_meta.
bpftool map create "$maps/sl_conntrack" type hash key 8 value 8 entries 16 name sl_conntrack
bpftool map update pinned "$maps/sl_conntrack" key hex 04 06 00 00 0a 41 01 02 value hex 01 00 00 00 00 00 00 00
bpftool map create "$maps/nat_frontends" type hash key 4 value 4 entries 16 name nat_frontends
expect_refusal "layout marker $maps/sl_meta is missing" conntrack dump
expect_refusal "layout marker $maps/sl_meta is missing" conntrack remove any 10.65.1.2
expect_refusal "layout marker $maps/sl_meta is missing" conntrack stats
expect_refusal "layout marker $maps/sl_meta is missing" conntrack clean --all
expect_refusal "layout marker $maps/sl_meta is missing" nat dump
assert_eq 1 "$(foreign_entries)" "entries of the foreign sl_conntrack after remove/clean"

# A marker of another layout: this sluicectl would misread the maps.
write_meta 1
expect_refusal "the pins use map layout 1, this plugin reads layout 2" conntrack dump
expect_refusal "the pins use map layout 1" nat aff

# Sluice's marker, but maps of other sizes under Sluice's names.
write_meta 2
expect_refusal "$maps/sl_conntrack (sl_conntrack) has key/value size 8/8" conntrack dump
expect_refusal "has key/value size 8/8" conntrack remove any 10.65.1.2
expect_refusal "$maps/nat_frontends (nat_frontends) has key/value size 4/4" nat dump
assert_eq 1 "$(foreign_entries)" "entries of the foreign sl_conntrack after remove"

# The real thing: sluiced's own maps pass the check.
rm -rf "/sys/fs/bpf/$INSTANCE"
start_daemon
send_udp "$NS_W1" 10.65.2.2 9000 3 >/dev/null
ctl conntrack dump | grep -q "UDP 10.65.1.2:[0-9]* -> 10.65.2.2:9000" ||
  fail "conntrack dump does not show the flow on sluiced's own maps: $(ctl conntrack dump 2>&1)"
ctl conntrack stats >/dev/null || fail "conntrack stats failed on sluiced's own maps"
ctl nat dump >/dev/null || fail "nat dump failed on sluiced's own maps"
out=$(ctl conntrack remove udp 10.65.2.2) || fail "conntrack remove failed on sluiced's own maps"
echo "$out" | grep -q "removed [1-9]" || fail "conntrack remove removed nothing: $out"
stop_daemon
echo PASS
