#include "service_parse.hpp"

#include <netinet/in.h>

#include <chrono>
#include <set>
#include <utility>

namespace nat {

using sluice::ConfigError;
using sluice::config::Table;

ServiceSpec parse_service(const Table& t) {
  t.expect_only({"name", "namespace", "cluster_ip", "ports", "external_ips", "load_balancer_ips",
                 "load_balancer_source_ranges", "external_traffic_policy",
                 "internal_traffic_policy", "session_affinity", "session_affinity_timeout",
                 "backends"});
  ServiceSpec s;
  read_identity(t, "a service", s.at, s.namespace_, s.name);
  if (const toml::node* n = t.node("cluster_ip")) s.cluster_ip = read_ip(t, *n, "cluster_ip");
  s.external_ips = read_ip_list(t, "external_ips");
  s.load_balancer_ips = read_ip_list(t, "load_balancer_ips");
  s.source_ranges = read_prefix_list(t, "load_balancer_source_ranges");
  if (!s.source_ranges.empty() && s.load_balancer_ips.empty())
    t.fail("load_balancer_source_ranges",
           "limits who may reach the load_balancer_ips, and the service has none");
  s.external_local =
      t.get_choice("external_traffic_policy", "cluster", {"cluster", "local"}) == "local";
  s.internal_local =
      t.get_choice("internal_traffic_policy", "cluster", {"cluster", "local"}) == "local";
  s.affinity = t.get_choice("session_affinity", "none", {"none", "client_ip"}) == "client_ip";
  s.affinity_timeout = static_cast<std::uint32_t>(
      t.get_duration("session_affinity_timeout", std::chrono::seconds(10800),
                     std::chrono::seconds(1), std::chrono::hours(24))
          .count());
  if (t.has("session_affinity_timeout") && !s.affinity)
    t.fail("session_affinity_timeout", "needs session_affinity = \"client_ip\"");

  auto ports = t.get_table_list("ports");
  if (ports.empty()) t.fail_at(t.node("ports"), "ports", "a service needs at least one port");
  std::set<std::pair<std::uint16_t, std::uint8_t>> seen_ports;
  std::set<std::string> seen_names;
  for (const Table& p : ports) {
    p.expect_only({"name", "port", "protocol", "target_port", "node_port"});
    PortSpec port;
    if (!p.has("port")) p.fail_at(nullptr, "port", "a port needs port = <1-65535>");
    port.port = p.get_port("port", 0);
    port.proto = read_protocol(p);
    if (const toml::node* tp = p.node("target_port"); tp && tp->is_string()) {
      port.target_port_name = std::string(tp->as_string()->get());
      if (port.target_port_name.empty() || port.target_port_name.size() > 63)
        p.fail("target_port", "a named target port is 1-63 characters (a port name of the "
                              "backends' [[endpoint]] tables)");
      if (port.proto == IPPROTO_SCTP)
        p.fail("target_port", "an SCTP port cannot be translated (its CRC32c covers the ports): "
                              "give target_port = port, not a name");
    } else {
      port.target_port = p.get_port("target_port", port.port);
    }
    port.node_port = p.get_port("node_port", 0);
    // See nat_rewrite(): an SCTP port change would need the whole CRC32c.
    if (port.proto == IPPROTO_SCTP && port.target_port_name.empty() &&
        port.target_port != port.port)
      p.fail("target_port", "an SCTP port cannot be translated (its CRC32c covers the ports): "
                            "give target_port = port");
    if (port.proto == IPPROTO_SCTP && port.node_port)
      p.fail("node_port", "an SCTP port cannot be translated (its CRC32c covers the ports), so "
                          "SCTP services have no node ports");
    port.name = p.get_string("name", std::to_string(port.port) + "/" + protocol_text(port.proto));
    if (!seen_ports.insert({port.port, port.proto}).second)
      p.fail("port", "port " + std::to_string(port.port) + "/" + protocol_text(port.proto) +
                         " is listed twice");
    if (!seen_names.insert(port.name).second)
      p.fail("name", "port name '" + port.name + "' is used twice");
    s.ports.push_back(port);
  }

  std::set<std::pair<std::array<__be32, 4>, int>> seen_backends;
  std::vector<Position> backend_positions;  // for the family check below
  for (const Table& b : t.get_table_list("backends")) {
    b.expect_only({"ip", "port", "node", "ready", "terminating"});
    BackendSpec be;
    Position& at = backend_positions.emplace_back(position_of(b, nullptr, ""));
    at.key = b.path();
    const toml::node* ip = b.node("ip");
    if (!ip) b.fail_at(nullptr, "ip", "a backend needs ip = \"<address>\"");
    be.ip = read_ip(b, *ip, "ip");
    if (b.has("port")) {
      for (const auto& p : s.ports)
        if (p.proto == IPPROTO_SCTP)
          b.fail("port", "an SCTP service keeps its port: backends take no port of their own");
      if (s.ports.size() > 1)
        b.fail("port", "a service with several ports sets target_port per port, not a port "
                       "per backend");
      be.port = b.get_port("port", 0);
    }
    be.node = b.get_string("node", "");
    be.ready = b.get_bool("ready", true);
    be.terminating = b.get_bool("terminating", false);
    if (!seen_backends.insert({be.ip.words, be.port.value_or(0)}).second)
      b.fail("ip", "backend " + address_text(be.ip.family, be.ip.words.data()) +
                       " is listed twice");
    s.backends.push_back(be);
  }

  // One family per service: a frontend only ever gets backends of its family.
  std::uint8_t family = 0;
  auto check_family = [&](const Address& a, const Position& at) {
    if (!family) family = a.family;
    if (a.family != family)
      fail_at(at, "mixes IPv4 and IPv6 addresses: a service is of one family (declare a "
               "second service for the other)");
  };
  if (s.cluster_ip) check_family(*s.cluster_ip, position_of(t, t.node("cluster_ip"), "cluster_ip"));
  for (const auto& a : s.external_ips)
    check_family(a, position_of(t, t.node("external_ips"), "external_ips"));
  for (const auto& a : s.load_balancer_ips)
    check_family(a, position_of(t, t.node("load_balancer_ips"), "load_balancer_ips"));
  for (std::size_t i = 0; i < s.backends.size(); ++i)
    check_family(s.backends[i].ip, backend_positions[i]);
  for (const auto& r : s.source_ranges)
    check_family(r.addr, position_of(t, t.node("load_balancer_source_ranges"),
                                     "load_balancer_source_ranges"));
  bool any_node_port = false;
  for (const auto& p : s.ports) any_node_port = any_node_port || p.node_port;
  if (!s.cluster_ip && s.external_ips.empty() && s.load_balancer_ips.empty() && !any_node_port)
    t.fail_at(nullptr, "cluster_ip",
              "the service has no frontend: give cluster_ip, external_ips, load_balancer_ips "
              "or a node_port");
  return s;
}

}  // namespace nat
