#include "resource_fields.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <algorithm>

#include <sluice/output.hpp>

namespace nat {

using sluice::ConfigError;
using sluice::config::Table;

std::optional<Address> parse_address(const std::string& text) {
  Address a;
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

std::string address_text(std::uint8_t family, const __be32* words) {
  return sluice::output::address_text(family == 6, words);
}

std::string endpoint_text(std::uint8_t family, const __be32* words, __be16 port) {
  return sluice::output::endpoint_text(family == 6, words, port);
}

std::string proto_text(int proto) {
  return proto == IPPROTO_TCP    ? "tcp"
         : proto == IPPROTO_UDP  ? "udp"
         : proto == IPPROTO_SCTP ? "sctp"
                                 : std::to_string(proto);
}

[[noreturn]] void fail(const Position& at, const std::string& message) {
  throw ConfigError(at.file, at.line, at.column, at.key, message);
}

Position position_of(const Table& table, const toml::node* node, std::string_view key) {
  toml::source_position where = table.where(node);
  return Position{table.file(), where.line, where.column, table.key_path(key)};
}

Address read_address(const Table& table, const toml::node& node, std::string_view key) {
  if (!node.is_string()) table.fail_at(&node, key, "expected an IP address (a string)");
  std::string text(node.as_string()->get());
  auto a = parse_address(text);
  if (!a) table.fail_at(&node, key, "'" + text + "' is not an IPv4 or IPv6 address");
  return *a;
}

std::vector<Address> read_address_list(const Table& table, std::string_view key) {
  std::vector<Address> out;
  const toml::node* node = table.node(key);
  if (!node) return out;
  if (!node->is_array()) table.fail_at(node, key, "expected a list of IP addresses");
  for (const toml::node& item : *node->as_array()) out.push_back(read_address(table, item, key));
  return out;
}

// "10.0.0.0/8", "2001:db8::/32"; a bare address is a host prefix.
std::vector<Prefix> read_prefix_list(const Table& table, std::string_view key) {
  std::vector<Prefix> out;
  const toml::node* node = table.node(key);
  if (!node) return out;
  if (!node->is_array()) table.fail_at(node, key, "expected a list of CIDR prefixes");
  for (const toml::node& item : *node->as_array()) {
    if (!item.is_string()) table.fail_at(&item, key, "expected a CIDR prefix (a string)");
    std::string text(item.as_string()->get());
    auto slash = text.find('/');
    auto a = parse_address(text.substr(0, slash));
    if (!a) table.fail_at(&item, key, "'" + text + "' is not a CIDR prefix like 10.0.0.0/8");
    Prefix p{*a, static_cast<std::uint8_t>(a->family == 4 ? 32 : 128)};
    if (slash != std::string::npos) {
      const std::string len = text.substr(slash + 1);
      int value = -1;
      if (!len.empty() && len.size() <= 3 &&
          std::all_of(len.begin(), len.end(), [](char c) { return c >= '0' && c <= '9'; }))
        value = std::stoi(len);
      if (value < 0 || value > p.length)
        table.fail_at(&item, key, "'" + text + "': the prefix length must be 0-" +
                                      std::to_string(p.length));
      p.length = static_cast<std::uint8_t>(value);
    }
    // Host bits are cleared, so "10.1.2.3/8" means 10.0.0.0/8.
    auto* bytes = reinterpret_cast<std::uint8_t*>(p.addr.words.data());
    for (int bit = p.length; bit < (a->family == 4 ? 32 : 128); ++bit)
      bytes[bit / 8] &= static_cast<std::uint8_t>(~(0x80u >> (bit % 8)));
    out.push_back(p);
  }
  return out;
}

// non-empty; namespace defaults to "default").
void read_identity(const Table& t, const char* what, Position& at, std::string& namespace_,
                   std::string& name) {
  at = position_of(t, nullptr, "");
  at.key = t.path();
  if (!t.has("name")) t.fail_at(nullptr, "name", std::string(what) + " needs a name");
  name = t.get_string("name", "");
  if (name.empty()) t.fail("name", "must not be empty");
  namespace_ = t.get_string("namespace", "default");
  if (namespace_.empty()) t.fail("namespace", "must not be empty");
}

std::uint8_t read_protocol(const Table& t) {
  std::string proto = t.get_choice("protocol", "tcp", {"tcp", "udp", "sctp", "TCP", "UDP", "SCTP"});
  if (proto == "udp" || proto == "UDP") return IPPROTO_UDP;
  if (proto == "sctp" || proto == "SCTP") return IPPROTO_SCTP;
  return IPPROTO_TCP;
}

}  // namespace nat
