#!/usr/bin/env bash
# Restarting sluiced (SIGTERM + start, and SIGHUP re-exec) while a paced
# stream flows through two managed hooks loses no datagram; the new daemon
# really replaced the programs; counters survive.
source "$(dirname "$0")/lib.sh"
e2e_init restart

plugins="[]"
[[ -f $E2E_BUILD/lib/sluice/plugins/log.so ]] && plugins='["log"]'
write_config "$plugins"
start_daemon
before=$(filter_prog_id "$NS_NODE" cali1 ingress)

# 10 s at 1 ms: the stream must outlast both restarts even on a slow machine
# (checked below), or they would not be tested.
N=10000
start_listener "$NS_W2" "$WORK/recv.out" "$UDP_STREAM" recv 7002 $N 30
recv_pid=$LISTENER_PID
send_udp "$NS_W1" 10.65.2.2 7002 $N 1000 &
send_pid=$!

sleep 0.6
stop_daemon            # programs stay attached while no daemon runs
sleep 0.3
start_daemon           # takes over by replacing programs in place
after_restart=$(filter_prog_id "$NS_NODE" cali1 ingress)

sleep 0.5
reload_daemon             # re-exec in place with the (unchanged) config
after_hup=$(filter_prog_id "$NS_NODE" cali1 ingress)
kill -0 $send_pid 2>/dev/null || fail "the stream ended before the restarts were done: they went untested"

wait $send_pid
wait $recv_pid || { cat "$WORK/recv.out"; fail "datagrams were lost across restarts"; }
cat "$WORK/recv.out"

[[ -n $before && -n $after_restart && -n $after_hup ]] || fail "a hook had no program"
[[ $before != "$after_restart" ]] || fail "the restarted daemon did not replace the program ($before)"
[[ $after_restart != "$after_hup" ]] || fail "SIGHUP did not replace the program ($after_restart)"
echo "ok: programs replaced in place: $before -> $after_restart -> $after_hup"
assert_eq $N "$(counter cali1 ingress accepted)" "cali1 ingress accepted (counters survive restarts)"
assert_eq $N "$(counter cali2 egress accepted)" "cali2 egress accepted"
stop_daemon
echo PASS
