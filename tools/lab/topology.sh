# Lab topology shared by tools/lab/lab.sh (quickstart) and tests/e2e.
# Source it; functions only. One node namespace with two workloads on veths
# (cali1, cali2) and an uplink (eth0) to an "external" host namespace:
#
#   [w1] eth0 10.65.1.2 --- cali1 10.65.1.1 [node] eth0 10.64.0.1 --- eth0 10.64.0.2 [ext]
#   [w2] eth0 10.65.2.2 --- cali2 10.65.2.1 [node]
#   [wN] eth0 10.65.N.2 --- caliN 10.65.N.1 [node]    (lab_add_workload, N >= 3)
#
# IPv6 is off and neighbours are static, so the only packets on the wires are
# the ones a test sends: counters can be checked exactly.

lab_mac() { # <ns> <dev>
  ip -n "$1" link show dev "$2" | awk '/link\/ether/ {print $2}'
}

lab_ns_add() { # <ns>
  ip netns add "$1"
  ip netns exec "$1" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
  ip -n "$1" link set lo up
}

# lab_wire <ns_a> <dev_a> <addr_a/len> <ns_b> <dev_b> <addr_b/len>
lab_wire() {
  ip -n "$1" link add "$2" type veth peer name "$5" netns "$4"
  ip -n "$1" addr add "$3" dev "$2"
  ip -n "$4" addr add "$6" dev "$5"
  ip -n "$1" link set "$2" up
  ip -n "$4" link set "$5" up
  ip -n "$1" neigh replace "${6%/*}" lladdr "$(lab_mac "$4" "$5")" dev "$2" nud permanent
  ip -n "$4" neigh replace "${3%/*}" lladdr "$(lab_mac "$1" "$2")" dev "$5" nud permanent
}

# lab_add_workload <node_ns> <workload_ns> <index>: a workload namespace on
# veth cali<index> of the node, eth0 10.65.<index>.2/24, default route via the
# node (10.65.<index>.1). lab_create makes workloads 1 and 2; benchmarks that
# need more backends add 3, 4, ... the same way.
lab_add_workload() {
  local node=$1 workload=$2 index=$3
  lab_ns_add "$workload"
  lab_wire "$node" "cali$index" "10.65.$index.1/24" "$workload" eth0 "10.65.$index.2/24"
  ip -n "$workload" route add default via "10.65.$index.1"
}

# lab_create <node_ns> <w1_ns> <w2_ns> <ext_ns>
lab_create() {
  local node=$1 w1=$2 w2=$3 ext=$4
  lab_ns_add "$node"
  lab_ns_add "$ext"
  ip netns exec "$node" sysctl -qw net.ipv4.ip_forward=1
  lab_add_workload "$node" "$w1" 1
  lab_add_workload "$node" "$w2" 2
  lab_wire "$node" eth0 10.64.0.1/24 "$ext" eth0 10.64.0.2/24
  ip -n "$ext" route add 10.65.0.0/16 via 10.64.0.1
}

# lab_destroy <ns>...
lab_destroy() {
  local ns
  for ns in "$@"; do
    ip netns del "$ns" 2>/dev/null || true
  done
}
