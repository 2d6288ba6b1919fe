// A [[service]] table of a state file, read and validated (positioned
// errors) into the desired state of one service.
#pragma once

#include <netinet/in.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "resource_fields.hpp"

namespace nat {

struct PortSpec {
  std::string name;
  std::uint16_t port = 0;
  std::uint8_t proto = IPPROTO_TCP;
  std::uint16_t target_port = 0;  // 0 with a named target port
  std::string target_port_name;   // resolved per backend from its endpoint's ports
  std::uint16_t node_port = 0;
};

// An [[endpoint]]: a workload with its addresses and named ports. The nat

struct BackendSpec {
  Address ip;
  std::optional<std::uint16_t> port;
  std::string node;
  bool ready = true;
  bool terminating = false;
};

struct ServiceSpec {
  std::string namespace_, name;
  Position at;  // the [[service]] table
  std::optional<Address> cluster_ip;
  std::vector<Address> external_ips, load_balancer_ips;
  std::vector<Prefix> source_ranges;  // load_balancer_source_ranges
  bool external_local = false;
  bool internal_local = false;
  bool affinity = false;
  std::uint32_t affinity_timeout = 10800;
  std::vector<PortSpec> ports;
  std::vector<BackendSpec> backends;
  std::string key() const { return namespace_ + "/" + name; }
  bool has_named_port() const {
    for (const auto& p : ports)
      if (!p.target_port_name.empty()) return true;
    return false;
  }
};

// Throws ConfigError (file, line, column, key) on bad input.
ServiceSpec parse_service(const sluice::config::Table& t);

}  // namespace nat
