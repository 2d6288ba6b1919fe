#include "nat_entries.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cstring>

namespace nat {

std::string port_label(const ServiceSpec& s, const PortSpec& p) { return s.key() + ":" + p.name; }

std::vector<std::pair<FeKey, std::uint32_t>> frontends_of(const ServiceSpec& s,
                                                          const PortSpec& p) {
  std::vector<std::pair<FeKey, std::uint32_t>> out;
  auto add = [&](std::uint8_t family, const __be32* words, std::uint16_t port,
                 std::uint32_t flags) {
    FeKey k;
    k.key.family = family;
    k.key.proto = p.proto;
    k.key.port = htons(port);
    if (words) std::memcpy(k.key.addr, words, sizeof(k.key.addr));
    out.emplace_back(k, flags);
  };
  std::uint8_t family = 4;
  if (s.cluster_ip) family = s.cluster_ip->family;
  else if (!s.external_ips.empty()) family = s.external_ips[0].family;
  else if (!s.load_balancer_ips.empty()) family = s.load_balancer_ips[0].family;
  else if (!s.backends.empty()) family = s.backends[0].ip.family;
  if (s.cluster_ip)
    add(family, s.cluster_ip->words.data(), p.port, s.internal_local ? NAT_FE_F_INTERNAL_LOCAL : 0);
  for (const auto& a : s.external_ips) add(family, a.words.data(), p.port, NAT_FE_F_EXTERNAL);
  for (const auto& a : s.load_balancer_ips)
    add(family, a.words.data(), p.port,
        NAT_FE_F_EXTERNAL | (s.source_ranges.empty() ? 0 : NAT_FE_F_SOURCE_RANGES));
  if (p.node_port) add(family, nullptr, p.node_port, NAT_FE_F_EXTERNAL | NAT_FE_F_NODE_PORT);
  return out;
}

// The backend's port for service port p: its own port, the number, or its

std::uint16_t backend_port(const BackendSpec& b, const PortSpec& p, const NamedPorts& named) {
  if (b.port) return *b.port;
  if (p.target_port_name.empty()) return p.target_port;
  const EndpointSpec* endpoint = named.endpoint_at(b.ip);
  if (!endpoint) return 0;
  auto port = endpoint->ports.find({p.target_port_name, p.proto});
  return port == endpoint->ports.end() ? 0 : port->second;
}

PortEntries entries_of(const ServiceSpec& s, const PortSpec& p, std::uint32_t id,
                       const std::string& node, const NamedPorts& named) {
  PortEntries e;
  e.id = id;
  e.label = port_label(s, p);
  // Ordinals: selectable local, selectable remote, then the rest (nat_layout.h).
  enum Group { kSelectableLocal, kSelectableRemote, kUnselectable };
  std::array<std::vector<nat_be_value>, 3> groups;
  for (const auto& b : s.backends) {
    const std::uint16_t port = backend_port(b, p, named);
    const bool local = !b.node.empty() && b.node == node;
    // A backend without the named port cannot take this port's flows.
    const bool selectable = b.ready && !b.terminating && port != 0;
    nat_be_value v{};
    v.family = b.ip.family;
    std::memcpy(v.addr, b.ip.words.data(), sizeof(v.addr));
    v.port = htons(port);
    if (local) v.flags |= NAT_BE_F_LOCAL;
    if (b.terminating) v.flags |= NAT_BE_F_TERMINATING;
    if (!b.ready || !port) v.flags |= NAT_BE_F_NOT_READY;
    groups[!selectable ? kUnselectable : local ? kSelectableLocal : kSelectableRemote].push_back(v);
    if (b.terminating) ++e.terminating;
    else if (!selectable) ++e.not_ready;
  }
  const auto local = static_cast<std::uint32_t>(groups[kSelectableLocal].size());
  const auto count = local + static_cast<std::uint32_t>(groups[kSelectableRemote].size());
  e.backends.reserve(s.backends.size());
  for (auto& group : groups) e.backends.insert(e.backends.end(), group.begin(), group.end());
  e.ready = count;
  for (const auto& r : s.source_ranges) {
    RangeKey k;
    k.key.prefixlen = 32u + r.length;
    k.key.id = id;
    std::memcpy(k.key.addr, r.addr.words.data(), sizeof(k.key.addr));
    e.source_ranges.insert(k);
  }
  for (const auto& [key, kind] : frontends_of(s, p)) {
    nat_fe_value v{};
    v.id = id;
    v.count = count;
    v.local = local;
    v.total = static_cast<std::uint32_t>(e.backends.size());
    v.flags = kind;
    if ((kind & NAT_FE_F_EXTERNAL) && s.external_local) v.flags |= NAT_FE_F_EXTERNAL_LOCAL;
    if (s.affinity) {
      v.flags |= NAT_FE_F_AFFINITY;
      v.affinity_timeout = s.affinity_timeout;
    }
    e.frontends[key] = v;
  }
  return e;
}

void collect_gone_udp_backends(const PortEntries& old, const PortEntries* now,
                               std::set<GoneBackend>& out) {
  std::set<std::pair<std::array<__be32, 4>, __be16>> kept;
  if (now)
    for (const auto& b : now->backends) {
      std::array<__be32, 4> a{};
      std::memcpy(a.data(), b.addr, sizeof(b.addr));
      kept.insert({a, b.port});
    }
  for (const auto& [fe, v] : old.frontends) {
    if (fe.key.proto != IPPROTO_UDP) continue;
    for (const auto& b : old.backends) {
      std::array<__be32, 4> a{};
      std::memcpy(a.data(), b.addr, sizeof(b.addr));
      if (!kept.count({a, b.port})) out.insert(GoneBackend{b.family, a, b.port, fe.key.port});
    }
  }
}

}  // namespace nat
