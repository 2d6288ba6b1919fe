// Fields the shared resource kinds have in common (sluice/resources/*.hpp):
// addresses, CIDR prefixes, protocols, labels, identities, and where a
// resource is in its file, read with positioned errors (ConfigError: file,
// line, column, key). Header-only.
//
// Records crossing the plugin boundary start with `size` (their sizeof as
// the SDK that built them saw it) and only grow at the end, so a reader
// built against an older SDK can tell which fields are there.
#pragma once

#include <netinet/in.h>

#include <array>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <sluice/config.hpp>

namespace sluice::resources {

// Addresses and prefixes are sluice/parse.hpp's.
using sluice::IpAddress;
using sluice::IpPrefix;
using sluice::parse::ip_text;
using sluice::parse::protocol_text;

// Where a resource (or one of its fields) is: for errors found after
// parsing, such as a duplicate address across files.
struct ResourcePosition {
  std::string file;
  std::uint32_t line = 0, column = 0;
  std::string key;  // e.g. endpoint[3]
};

[[noreturn]] inline void fail_at(const ResourcePosition& at, const std::string& message) {
  throw ConfigError(at.file, at.line, at.column, at.key, message);
}

inline std::optional<IpAddress> parse_ip(const std::string& text) {
  return parse::ip_address(text).optional();
}

// "10.0.0.0/8", "2001:db8::/32"; a bare address is a host prefix. Host
// bits are cleared ("10.1.2.3/8" means 10.0.0.0/8). nullopt: not a prefix.
inline std::optional<IpPrefix> parse_prefix(const std::string& text) {
  return parse::ip_prefix(text, parse::HostBits::clear).optional();
}

inline ResourcePosition position_of(const config::Table& table, const toml::node* node,
                                    std::string_view key) {
  toml::source_position where = table.where(node);
  return ResourcePosition{table.file(), where.line, where.column, table.key_path(key)};
}

// The table's own position, keyed by its path (endpoint[3]).
inline ResourcePosition position_of(const config::Table& table) {
  ResourcePosition at = position_of(table, nullptr, "");
  at.key = table.path();
  return at;
}

inline IpAddress read_ip(const config::Table& table, const toml::node& node,
                         std::string_view key) {
  return table.ip_address_at(node, key);
}

inline std::vector<IpAddress> read_ip_list(const config::Table& table, std::string_view key) {
  return table.get_ip_address_list(key);
}

// Host bits are cleared, as Kubernetes reads CIDRs in resources.
inline std::vector<IpPrefix> read_prefix_list(const config::Table& table, std::string_view key) {
  return table.get_prefix_list(key, parse::HostBits::clear);
}

// labels = { key = "value", ... }: values are strings.
inline std::map<std::string, std::string> read_labels(const config::Table& table) {
  std::map<std::string, std::string> out;
  if (auto labels = table.table("labels"))
    for (const auto& [key, value] : labels->raw()) {
      if (!value.is_string()) labels->fail(key.str(), "a label value is a string");
      out.emplace(std::string(key.str()), std::string(value.as_string()->get()));
    }
  return out;
}

// name = "..." (required, non-empty); `what` names the resource in the
// message ("an endpoint").
inline std::string read_name(const config::Table& table, const char* what) {
  if (!table.has("name")) table.fail_at(nullptr, "name", std::string(what) + " needs a name");
  std::string name = table.get_string("name", "");
  if (name.empty()) table.fail("name", "must not be empty");
  return name;
}

// namespace = "..." (default "default", non-empty).
inline std::string read_namespace(const config::Table& table) {
  std::string ns = table.get_string("namespace", "default");
  if (ns.empty()) table.fail("namespace", "must not be empty");
  return ns;
}

// protocol = "tcp" (default) | "udp" | "sctp" (any case, or the number):
// the protocol of a port, IPPROTO_*.
inline std::uint8_t read_protocol(const config::Table& table) {
  const std::uint8_t proto = table.get_protocol("protocol", IPPROTO_TCP);
  if (!parse::has_ports(proto))
    table.fail("protocol", "protocol " + protocol_text(proto) +
                               " has no ports: a port's protocol is tcp, udp or sctp");
  return proto;
}

}  // namespace sluice::resources
