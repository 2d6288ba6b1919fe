// The map entries the services ask for: from a service's desired state to
// the nat_frontends / nat_backends / nat_src_ranges entries of each of its
// ports. Pure: computed, compared, never written here (nat_maps.hpp writes).
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "endpoint_parse.hpp"
#include "map_key.hpp"
#include "nat_layout.h"
#include "service_parse.hpp"

namespace nat {

// The endpoint holding each address: where backends find their named ports.
using AddressKey = std::pair<std::uint8_t, std::array<__be32, 4>>;
using EndpointIndex = std::map<AddressKey, const EndpointSpec*>;

// The endpoints' addresses as a change leaves them: `changes` (nullptr: no
// endpoint holds the address any more) over the held index.
struct NamedPorts {
  const EndpointIndex& held;
  EndpointIndex changes;
  const EndpointSpec* endpoint_at(const Address& ip) const {
    AddressKey key{ip.family, ip.words};
    if (auto it = changes.find(key); it != changes.end()) return it->second;
    auto it = held.find(key);
    return it == held.end() ? nullptr : it->second;
  }
};

using FeKey = nat::MapKey<nat_fe_key>;
using RangeKey = nat::MapKey<nat_src_range_key>;

// The entries of one service port (one service id).
struct PortEntries {
  std::uint32_t id = 0;
  std::string label;  // "namespace/name:port-name"
  std::map<FeKey, nat_fe_value> frontends;
  std::vector<nat_be_value> backends;  // by ordinal
  std::set<RangeKey> source_ranges;    // nat_src_ranges keys of this id
  std::uint32_t ready = 0, terminating = 0, not_ready = 0;
  bool operator==(const PortEntries& o) const {
    if (id != o.id || frontends.size() != o.frontends.size() ||
        backends.size() != o.backends.size() || source_ranges != o.source_ranges)
      return false;
    for (auto a = frontends.begin(), b = o.frontends.begin(); a != frontends.end(); ++a, ++b)
      if (!(a->first == b->first) || !nat::same_bytes(a->second, b->second)) return false;
    for (std::size_t i = 0; i < backends.size(); ++i)
      if (!nat::same_bytes(backends[i], o.backends[i])) return false;
    return true;
  }
};

using ServiceEntries = std::map<std::string, PortEntries>;  // by label

std::string port_label(const ServiceSpec& s, const PortSpec& p);

// The frontend keys of a service (one per address and port), with whether
// they face outside the cluster.
std::vector<std::pair<FeKey, std::uint32_t>> frontends_of(const ServiceSpec& s, const PortSpec& p);

// The backend's port for service port p: its own port, the number, or its
// endpoint's port of that name (0: it has none, so it cannot serve p).
std::uint16_t backend_port(const BackendSpec& b, const PortSpec& p, const NamedPorts& named);

// The entries of service port p under service id `id`, on node `node`.
PortEntries entries_of(const ServiceSpec& s, const PortSpec& p, std::uint32_t id,
                       const std::string& node, const NamedPorts& named);

// A backend that left a UDP service port: its conntrack flows are removed, so
// a client that keeps its source port (a UDP flow never goes idle while it
// sends) is not held on a backend that is gone. TCP flows are left: the
// client sees the failure and reconnects on a new port.
struct GoneBackend {
  std::uint8_t family;
  std::array<__be32, 4> addr;
  __be16 port;
  __be16 service_port;  // frontend port the flows were addressed to
  bool operator<(const GoneBackend& o) const {
    return std::tie(family, addr, port, service_port) <
           std::tie(o.family, o.addr, o.port, o.service_port);
  }
};

// The UDP backends of `old` that `now` (nullptr: the port is gone) no longer has.
void collect_gone_udp_backends(const PortEntries& old, const PortEntries* now,
                               std::set<GoneBackend>& out);

}  // namespace nat
