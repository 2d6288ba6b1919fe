// Fields the shared resource kinds have in common (sluice/resources/*.hpp):
// addresses, CIDR prefixes, protocols, labels, identities, and where a
// resource is in its file, read with positioned errors (ConfigError: file,
// line, column, key). Header-only.
//
// Records crossing the plugin boundary start with `size` (their sizeof as
// the SDK that built them saw it) and only grow at the end, so a reader
// built against an older SDK can tell which fields are there.
#pragma once

#include <arpa/inet.h>
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

// An IPv4 or IPv6 address, network byte order in `words` (IPv4: words[0]).
struct IpAddress {
  std::uint8_t family = 0;  // 4 or 6
  std::array<std::uint32_t, 4> words{};
  bool operator==(const IpAddress&) const = default;
  auto operator<=>(const IpAddress&) const = default;
};

struct IpPrefix {
  IpAddress addr;  // host bits cleared
  std::uint8_t length = 0;
  bool operator==(const IpPrefix&) const = default;
};

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
  IpAddress a;
  if (inet_pton(AF_INET, text.c_str(), a.words.data()) == 1) {
    a.family = 4;
    return a;
  }
  a.words = {};
  if (inet_pton(AF_INET6, text.c_str(), a.words.data()) == 1) {
    a.family = 6;
    return a;
  }
  return std::nullopt;
}

inline std::string ip_text(const IpAddress& a) {
  char text[INET6_ADDRSTRLEN] = "";
  inet_ntop(a.family == 6 ? AF_INET6 : AF_INET, a.words.data(), text, sizeof(text));
  return text;
}

// "10.0.0.0/8", "2001:db8::/32"; a bare address is a host prefix. Host
// bits are cleared ("10.1.2.3/8" means 10.0.0.0/8). nullopt: not a prefix.
inline std::optional<IpPrefix> parse_prefix(const std::string& text) {
  auto slash = text.find('/');
  auto a = parse_ip(text.substr(0, slash));
  if (!a) return std::nullopt;
  const int max = a->family == 4 ? 32 : 128;
  IpPrefix p{*a, static_cast<std::uint8_t>(max)};
  if (slash != std::string::npos) {
    const std::string len = text.substr(slash + 1);
    if (len.empty() || len.size() > 3 || len.find_first_not_of("0123456789") != std::string::npos)
      return std::nullopt;
    const int value = std::stoi(len);
    if (value > max) return std::nullopt;
    p.length = static_cast<std::uint8_t>(value);
  }
  auto* bytes = reinterpret_cast<std::uint8_t*>(p.addr.words.data());
  for (int bit = p.length; bit < max; ++bit)
    bytes[bit / 8] &= static_cast<std::uint8_t>(~(0x80u >> (bit % 8)));
  return p;
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
  if (!node.is_string()) table.fail_at(&node, key, "expected an IP address (a string)");
  std::string text(node.as_string()->get());
  auto a = parse_ip(text);
  if (!a) table.fail_at(&node, key, "'" + text + "' is not an IPv4 or IPv6 address");
  return *a;
}

inline std::vector<IpAddress> read_ip_list(const config::Table& table, std::string_view key) {
  std::vector<IpAddress> out;
  const toml::node* node = table.node(key);
  if (!node) return out;
  if (!node->is_array()) table.fail_at(node, key, "expected a list of IP addresses");
  for (const toml::node& item : *node->as_array()) out.push_back(read_ip(table, item, key));
  return out;
}

inline std::vector<IpPrefix> read_prefix_list(const config::Table& table, std::string_view key) {
  std::vector<IpPrefix> out;
  const toml::node* node = table.node(key);
  if (!node) return out;
  if (!node->is_array()) table.fail_at(node, key, "expected a list of CIDR prefixes");
  for (const toml::node& item : *node->as_array()) {
    if (!item.is_string()) table.fail_at(&item, key, "expected a CIDR prefix (a string)");
    std::string text(item.as_string()->get());
    auto p = parse_prefix(text);
    if (!p) table.fail_at(&item, key, "'" + text + "' is not a CIDR prefix like 10.0.0.0/8");
    out.push_back(*p);
  }
  return out;
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

// protocol = "tcp" (default) | "udp" | "sctp", either case: IPPROTO_*.
inline std::uint8_t read_protocol(const config::Table& table) {
  std::string proto =
      table.get_choice("protocol", "tcp", {"tcp", "udp", "sctp", "TCP", "UDP", "SCTP"});
  if (proto == "udp" || proto == "UDP") return IPPROTO_UDP;
  if (proto == "sctp" || proto == "SCTP") return IPPROTO_SCTP;
  return IPPROTO_TCP;
}

inline std::string protocol_text(int proto) {
  return proto == IPPROTO_TCP    ? "tcp"
         : proto == IPPROTO_UDP  ? "udp"
         : proto == IPPROTO_SCTP ? "sctp"
                                 : std::to_string(proto);
}

}  // namespace sluice::resources
