// The fields nat's resources share: addresses, prefixes, protocols, and the
// position of a resource in its file (so an error found after parsing, such
// as a duplicate, still names file, line, column and key).
#pragma once

#include <linux/types.h>

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <sluice/config.hpp>
#include <sluice/plugin.hpp>

namespace nat {

struct Address {
  std::uint8_t family = 0;  // 4 or 6
  std::array<__be32, 4> words{};
  bool operator==(const Address&) const = default;
};

std::optional<Address> parse_address(const std::string& text);
std::string address_text(std::uint8_t family, const __be32* words);
std::string endpoint_text(std::uint8_t family, const __be32* words, __be16 port);

struct Prefix {
  Address addr;
  std::uint8_t length = 0;
};

// "tcp", "udp", "sctp", or the number.
std::string proto_text(int proto);

struct Position {
  std::string file;
  std::uint32_t line = 0, column = 0;
  std::string key;
};

[[noreturn]] void fail(const Position& at, const std::string& message);

Position position_of(const sluice::config::Table& table, const toml::node* node,
                     std::string_view key);
Address read_address(const sluice::config::Table& table, const toml::node& node,
                     std::string_view key);
std::vector<Address> read_address_list(const sluice::config::Table& table, std::string_view key);
// "10.0.0.0/8", "2001:db8::/32"; a bare address is a host prefix.
std::vector<Prefix> read_prefix_list(const sluice::config::Table& table, std::string_view key);
// Where a resource table is, and its namespace and name (both required
// non-empty; namespace defaults to "default").
void read_identity(const sluice::config::Table& t, const char* what, Position& at,
                   std::string& namespace_, std::string& name);
// protocol = "tcp" (default) | "udp" | "sctp", either case.
std::uint8_t read_protocol(const sluice::config::Table& t);

}  // namespace nat
