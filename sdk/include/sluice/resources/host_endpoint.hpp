// The [[host_endpoint]] schema: an interface of a node itself (policy for
// the host), with the addresses it is expected to have. Header-only.
//
//   [[host_endpoint]]
//   name = "node-1-eth0"                required
//   interface = "eth0"                  required
//   node = "node-1"
//   expected_ips = ["192.168.1.11"]
//   labels = { role = "uplink" }
#pragma once

#include <map>
#include <string>
#include <vector>

#include <sluice/resources/fields.hpp>

namespace sluice::resources {

struct HostEndpointRecord {
  std::uint32_t size = sizeof(HostEndpointRecord);  // grows at the end only
  std::string name;
  std::string interface, node;
  std::vector<IpAddress> expected_ips;
  std::map<std::string, std::string> labels;
  ResourcePosition at;
  const std::string& key() const { return name; }
};

// Throws ConfigError (file, line, column, key) on bad input.
inline HostEndpointRecord parse_host_endpoint(const config::Table& t) {
  t.expect_only({"name", "interface", "node", "expected_ips", "labels"});
  HostEndpointRecord h;
  h.at = position_of(t);
  h.name = read_name(t, "a host endpoint");
  if (!t.has("interface"))
    t.fail_at(nullptr, "interface", "a host endpoint needs interface = \"<name>\"");
  h.interface = t.get_string("interface", "");
  if (h.interface.empty()) t.fail("interface", "must not be empty");
  h.node = t.get_string("node", "");
  h.expected_ips = read_ip_list(t, "expected_ips");
  h.labels = read_labels(t);
  return h;
}

}  // namespace sluice::resources
