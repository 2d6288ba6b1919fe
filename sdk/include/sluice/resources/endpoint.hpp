// The [[endpoint]] schema: a workload (pod, container, VM) behind an
// interface of the node. One schema for every consumer (nat for named
// ports, policy for selectors); parsed with positioned errors. Header-only.
//
//   [[endpoint]]
//   name = "web-0"              required
//   namespace = "shop"          default "default"
//   interface = "cali1234"      the workload's veth on this node
//   node = "node-1"
//   ips = ["10.65.0.2"]         at least one
//   labels = { app = "web" }
//   [[endpoint.ports]]          named ports, for services' target_port = "<name>"
//   name = "http"; port = 8080; protocol = "tcp"
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include <sluice/resources/fields.hpp>

namespace sluice::resources {

struct NamedPort {
  std::string name;
  std::uint8_t protocol = IPPROTO_TCP;
  std::uint16_t port = 0;
};

struct EndpointRecord {
  std::uint32_t size = sizeof(EndpointRecord);  // grows at the end only
  std::string namespace_, name;
  std::string interface, node;
  std::vector<IpAddress> ips;
  std::map<std::string, std::string> labels;
  std::vector<NamedPort> ports;  // no (name, protocol) twice
  ResourcePosition at;           // the [[endpoint]] table
  std::string key() const { return namespace_ + "/" + name; }
};

// Throws ConfigError (file, line, column, key) on bad input.
inline EndpointRecord parse_endpoint(const config::Table& t) {
  t.expect_only({"name", "namespace", "interface", "ips", "labels", "ports", "node"});
  EndpointRecord e;
  e.at = position_of(t);
  e.name = read_name(t, "an endpoint");
  e.namespace_ = read_namespace(t);
  e.interface = t.get_string("interface", "");
  e.node = t.get_string("node", "");
  e.labels = read_labels(t);
  e.ips = read_ip_list(t, "ips");
  if (e.ips.empty())
    t.fail_at(t.node("ips"), "ips", "an endpoint needs ips = [\"<address>\", ...]");
  for (const config::Table& p : t.get_table_list("ports")) {
    p.expect_only({"name", "port", "protocol"});
    if (!p.has("name")) p.fail_at(nullptr, "name", "a named port needs a name");
    if (!p.has("port")) p.fail_at(nullptr, "port", "a named port needs port = <1-65535>");
    NamedPort port;
    port.name = p.get_string("name", "");
    port.protocol = read_protocol(p);
    port.port = p.get_port("port", 0);
    for (const auto& other : e.ports)
      if (other.name == port.name && other.protocol == port.protocol)
        p.fail("name", "port name '" + port.name + "' (" + protocol_text(port.protocol) +
                           ") is listed twice");
    e.ports.push_back(std::move(port));
  }
  return e;
}

}  // namespace sluice::resources
