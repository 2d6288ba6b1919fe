#!/usr/bin/env bash
# The bad-input corpus (tests/corpus/bad_inputs.txt, issue 11) against a
# running dataplane, under a paced UDP stream through two managed hooks:
#   - every config case: --check-config and a real start next to the running
#     daemon, then again with the daemon stopped (the pinned dataplane alone)
#     refuse with the case's message, exit non-zero and change nothing;
#   - every state case, moved into the running daemon's state directory, is
#     logged with its message and the loop goes on (a FIFO or /dev/zero never
#     blocks it);
#   - the programs on the interfaces and the pinned maps are the same after as
#     before, and not one datagram of the stream is lost.
source "$(dirname "$0")/lib.sh"
e2e_init corpus

state=$WORK/state
mkdir -p "$state"
write_config '["conntrack", "nat", "log"]' "[state]
dir = \"$state\""
start_daemon

before=$(dataplane_snapshot)
(( $(echo "$before" | wc -l) > 10 )) || fail "nothing to compare: $before"

python3 "$E2E_REPO/tests/corpus/make_cases.py" "$E2E_REPO/tests/corpus/bad_inputs.txt" \
  "$WORK/cases" "$INSTANCE" "$E2E_BUILD/lib/sluice/plugins" "$state" >"$WORK/manifest"
total=$(wc -l <"$WORK/manifest")
(( total >= 100 )) || fail "the corpus has $total cases, fewer than 100"

# 90 s at 2 ms: it must outlast the whole corpus (checked below).
N=45000
start_listener "$NS_W2" "$WORK/recv.out" "$UDP_STREAM" recv 7003 $N 150
recv_pid=$LISTENER_PID
send_udp "$NS_W1" 10.65.2.2 7003 $N 2000 &
send_pid=$!

# refused <name> <path> <expect> <what> <command...>: exits non-zero within
# 10 s (a start that takes over would run on) and prints the expected text.
refused() {
  local name=$1 path=$2 expect=$3 what=$4 out rc
  shift 4
  set +e
  out=$(timeout 10 nsenter --net="/run/netns/$NS_NODE" "$@" 2>&1 </dev/null); rc=$?
  set -e
  (( rc != 0 && rc != 124 )) || fail "case $name: $what exited with $rc (accepted, or hung): $out"
  [[ $out == *"$expect"* ]] || fail "case $name: $what did not say \"$expect\": $out"
  [[ $out == *":0:0"* ]] && fail "case $name: $what printed a bogus :0:0 position: $out"
  [[ $out == *"sluiced ready"* ]] && fail "case $name: $what started: $out"
  return 0
}

run_config_cases() { # <what>
  local name where staged final expect
  while IFS=$'\t' read -r name where staged final expect; do
    [[ $where == config ]] || continue
    refused "$name" "$final" "$expect" "--check-config" "$SLUICED" --check-config --config "$final"
    refused "$name" "$final" "$expect" "a start $1" "$SLUICED" --config "$final"
  done <"$WORK/manifest"
}

run_config_cases "next to the running daemon"
kill -0 "$DAEMON_PID" || fail "the running daemon died"
echo "ok: config cases refused by --check-config and by a start next to the running daemon"

# Item 1: the daemon stopped, a new one with a bad config must not take over
# (its programs would fail closed).
stop_daemon
run_config_cases "after the daemon stopped"
[[ -z $(pgrep -f -- "--config $WORK/cases" || true) ]] || fail "a refused daemon is still running"
assert_eq "$before" "$(dataplane_snapshot)" "programs and pins after refused starts"
echo "ok: config cases refused by a start over the pinned dataplane; programs and pins unchanged"
start_daemon

# State cases, one at a time into the running daemon's directory: each is
# logged, and the next one being logged shows the loop did not block.
logged() { grep -cF -- "$1" "$WORK/daemon.log" || true; }
while IFS=$'\t' read -r name where staged final expect; do
  [[ $where == state ]] || continue
  seen=$(logged "$expect")
  mv "$staged" "$final"
  for _ in $(seq 100); do (( $(logged "$expect") > seen )) && break; sleep 0.1; done
  (( $(logged "$expect") > seen )) || fail "case $name: the daemon did not log \"$expect\""
  rm -rf "$final"
done <"$WORK/manifest"
kill -0 "$DAEMON_PID" || fail "the daemon died on a bad state file"
grep -q "sluiced ready" "$WORK/daemon.log" || fail "no ready line"
echo "ok: state cases refused while the daemon runs"

kill -0 $send_pid 2>/dev/null || fail "the stream ended before the corpus was done: it went untested (raise N)"
wait $send_pid
wait $recv_pid || { cat "$WORK/recv.out"; fail "datagrams were lost during the corpus"; }
cat "$WORK/recv.out"
stop_daemon
echo "PASS ($total cases)"
