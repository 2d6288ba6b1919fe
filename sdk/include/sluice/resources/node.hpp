// The [[node]] schema: a node of the cluster, its addresses, the workload
// CIDR blocks routed to it and how (tunnel). Header-only.
//
//   [[node]]
//   name = "node-2"                     required
//   addresses = ["192.168.1.12"]        at least one
//   workload_blocks = ["10.65.2.0/24"]  CIDR blocks of its workloads
//   tunnel = "vxlan"                    "vxlan" | "ipip" | "none" (default)
//   tunnel_address = "10.65.2.1"        required with a tunnel, refused without
#pragma once

#include <string>
#include <vector>

#include <sluice/resources/fields.hpp>

namespace sluice::resources {

enum class TunnelType { none, vxlan, ipip };

struct NodeRecord {
  std::uint32_t size = sizeof(NodeRecord);  // grows at the end only
  std::string name;
  std::vector<IpAddress> addresses;
  std::vector<IpPrefix> workload_blocks;
  TunnelType tunnel = TunnelType::none;
  std::optional<IpAddress> tunnel_address;
  ResourcePosition at;
  const std::string& key() const { return name; }
};

// Throws ConfigError (file, line, column, key) on bad input.
inline NodeRecord parse_node(const config::Table& t) {
  t.expect_only({"name", "addresses", "workload_blocks", "tunnel", "tunnel_address"});
  NodeRecord n;
  n.at = position_of(t);
  n.name = read_name(t, "a node");
  n.addresses = read_ip_list(t, "addresses");
  if (n.addresses.empty())
    t.fail_at(t.node("addresses"), "addresses", "a node needs addresses = [\"<address>\", ...]");
  n.workload_blocks = read_prefix_list(t, "workload_blocks");
  const std::string tunnel = t.get_choice("tunnel", "none", {"vxlan", "ipip", "none"});
  n.tunnel = tunnel == "vxlan" ? TunnelType::vxlan
             : tunnel == "ipip" ? TunnelType::ipip
                                : TunnelType::none;
  if (const toml::node* a = t.node("tunnel_address")) {
    if (n.tunnel == TunnelType::none)
      t.fail("tunnel_address", "needs tunnel = \"vxlan\" or \"ipip\"");
    n.tunnel_address = read_ip(t, *a, "tunnel_address");
  } else if (n.tunnel != TunnelType::none) {
    t.fail_at(nullptr, "tunnel_address", "a node with tunnel = \"" + tunnel +
                                             "\" needs tunnel_address = \"<address>\"");
  }
  if (n.tunnel == TunnelType::ipip && n.tunnel_address && n.tunnel_address->family != 4)
    t.fail("tunnel_address", "an IPIP tunnel address is IPv4");
  return n;
}

}  // namespace sluice::resources
