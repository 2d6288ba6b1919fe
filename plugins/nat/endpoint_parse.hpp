// An [[endpoint]] table of a state file as nat reads it: its addresses and
// named ports (what services with a named target_port resolve against).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "resource_fields.hpp"

namespace nat {

// An [[endpoint]]: a workload with its addresses and named ports. The nat
// plugin reads it for one thing: services whose target_port is a name.
struct EndpointSpec {
  std::string namespace_, name;
  Position at;
  std::vector<Address> ips;
  std::map<std::pair<std::string, std::uint8_t>, std::uint16_t> ports;  // {name, proto} -> port
  std::string key() const { return namespace_ + "/" + name; }
};

// Throws ConfigError (file, line, column, key) on bad input.
EndpointSpec parse_endpoint(const sluice::config::Table& t);

}  // namespace nat
