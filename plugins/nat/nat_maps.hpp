// Writing the nat plugin's pinned maps: the difference between two versions
// of a service port's entries, the sweep of what a previous run left, and
// the conntrack flows of UDP backends that went away.
#pragma once

#include <bpf/bpf.h>

#include <cerrno>
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>

#include "nat_entries.hpp"

namespace nat {

[[noreturn]] void map_failure(const char* what, const char* map) ;

template <class K, class V>
void map_put(int fd, const char* name, const K& key, const V& value) {
  if (bpf_map_update_elem(fd, &key, &value, BPF_ANY) != 0) map_failure("write", name);
}

template <class K>
void map_del(int fd, const char* name, const K& key) {
  if (bpf_map_delete_elem(fd, &key) != 0 && errno != ENOENT) map_failure("delete", name);
}


struct MapFds {
  int frontends = -1, backends = -1, affinity = -1, services = -1, src_ranges = -1;
};

// Writes what differs between `old` (nullptr: nothing applied) and `now`
// (nullptr: remove). Order keeps every frontend pointing at written backends.
void apply_port(const MapFds& maps, const PortEntries* old, const PortEntries* now);

// Removes the entries of the maps that `applied` (by service key) does not
// hold: what a previous run left that the state no longer has. Returns the
// service ids `applied` uses.
std::set<std::uint32_t> sweep_stale_entries(const MapFds& maps,
                                            const std::map<std::string, ServiceEntries>& applied);

// The max_entries of the pinned conntrack table (the conntrack plugin sets
// it from its configuration before we load).
std::optional<std::uint32_t> pinned_ct_size(const std::string& map_pin_dir);

// Deletes the UDP NAT_REV entries to `gone` backends and their NAT_FWD stubs.
// One pass over the conntrack table; runs only when a UDP backend went away.
std::size_t flush_udp_flows(int ct_fd, const std::set<GoneBackend>& gone);

}  // namespace nat
