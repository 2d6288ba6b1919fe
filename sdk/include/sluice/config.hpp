// Reading TOML with positioned errors (header-only, toml++).
// Used by the daemon for the node config and by plugins for their tables;
// every error names file:line:column and the dotted key.
#pragma once

#include <chrono>
#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include <toml++/toml.h>

#include <sluice/parse.hpp>
#include <sluice/plugin.hpp>

namespace sluice::config {

// A parameter that takes its type from the others (get_duration(key, 10s, 1s, 1h)).
template <class T>
using NotDeduced = std::type_identity_t<T>;

// A table together with where it lives, so every read can blame the right
// place. `line_offset` is the number of lines of the file before the text
// the table was parsed from: non-zero for one block of a resource file
// parsed alone (sluice/resource_blocks.hpp), so positions are the file's.
class Table {
 public:
  Table(const toml::table& table, std::string file, std::string path,
        std::uint32_t line_offset = 0)
      : table_(&table), file_(std::move(file)), path_(std::move(path)),
        line_offset_(line_offset) {}

  const toml::table& raw() const { return *table_; }
  const std::string& file() const { return file_; }
  const std::string& path() const { return path_; }

  std::string key_path(std::string_view key) const {
    return path_.empty() ? std::string(key) : path_ + "." + std::string(key);
  }

  // Where `node` (nullptr: this table) begins in the file.
  toml::source_position where(const toml::node* node) const {
    return in_file(node ? node->source().begin : table_->source().begin);
  }

  [[noreturn]] void fail_at(const toml::node* node, std::string_view key,
                            const std::string& message) const {
    fail_at_region(node ? node->source() : table_->source(), key, message);
  }
  [[noreturn]] void fail_at_region(const toml::source_region& where, std::string_view key,
                                   const std::string& message) const {
    toml::source_position at = in_file(where.begin);
    throw ConfigError(file_, at.line, at.column, key_path(key), message);
  }
  [[noreturn]] void fail(std::string_view key, const std::string& message) const {
    fail_at(table_->get(key), key, message);
  }

  // Unknown keys are errors: a typo must not silently fall back to a default.
  void expect_only(std::initializer_list<std::string_view> allowed) const {
    for (const auto& [key, node] : *table_) {
      bool known = false;
      for (auto name : allowed) known = known || key.str() == name;
      if (!known) {
        std::string list;
        for (auto name : allowed) list += (list.empty() ? "" : ", ") + std::string(name);
        // Blame the key itself, not its value.
        fail_at_region(key.source().begin.line ? key.source() : node.source(), key.str(),
                       "unknown key '" + std::string(key.str()) + "' (allowed here: " + list +
                           ")");
      }
    }
  }

  bool has(std::string_view key) const { return table_->contains(key); }

  std::optional<Table> table(std::string_view key) const {
    const toml::node* node = table_->get(key);
    if (!node) return std::nullopt;
    if (!node->is_table()) fail_at(node, key, "expected a table");
    return Table(*node->as_table(), file_, key_path(key), line_offset_);
  }

  std::string get_string(std::string_view key, std::string fallback) const {
    const toml::node* node = table_->get(key);
    if (!node) return fallback;
    if (!node->is_string()) fail_at(node, key, "expected a string");
    return std::string(node->as_string()->get());
  }

  bool get_bool(std::string_view key, bool fallback) const {
    const toml::node* node = table_->get(key);
    if (!node) return fallback;
    if (!node->is_boolean()) fail_at(node, key, "expected true or false");
    return node->as_boolean()->get();
  }

  std::int64_t get_int(std::string_view key, std::int64_t fallback, std::int64_t min,
                       std::int64_t max) const {
    const toml::node* node = table_->get(key);
    if (!node) return fallback;
    if (!node->is_integer()) fail_at(node, key, "expected an integer");
    std::int64_t value = node->as_integer()->get();
    if (value < min || value > max)
      fail_at(node, key,
              "value " + std::to_string(value) + " is out of range [" + std::to_string(min) +
                  ", " + std::to_string(max) + "]");
    return value;
  }

  // A string that must be one of `choices`.
  std::string get_choice(std::string_view key, std::string fallback,
                         std::initializer_list<std::string_view> choices) const {
    std::string value = get_string(key, fallback);
    for (auto choice : choices)
      if (value == choice) return value;
    std::string list;
    for (auto choice : choices) list += (list.empty() ? "" : ", ") + std::string(choice);
    fail(key, "'" + value + "' is not one of: " + list);
  }

  std::vector<std::string> get_string_list(std::string_view key,
                                           std::vector<std::string> fallback) const {
    const toml::node* node = table_->get(key);
    if (!node) return fallback;
    if (!node->is_array()) fail_at(node, key, "expected a list of strings");
    std::vector<std::string> out;
    for (const toml::node& item : *node->as_array()) {
      if (!item.is_string()) fail_at(&item, key, "expected a list of strings");
      out.emplace_back(item.as_string()->get());
    }
    return out;
  }

  // [[key]] or key = [{...}, ...]. Items are numbered from `first_index`:
  // the list of one block of a resource file holds its file's item
  // first_index, so paths read key[4123].ports[0] as in the whole file.
  std::vector<Table> get_table_list(std::string_view key, std::size_t first_index = 0) const {
    std::vector<Table> out;
    const toml::node* node = table_->get(key);
    if (!node) return out;
    if (!node->is_array()) fail_at(node, key, "expected a list of tables");
    std::size_t index = first_index;
    for (const toml::node& item : *node->as_array()) {
      if (!item.is_table()) fail_at(&item, key, "expected a list of tables");
      out.emplace_back(*item.as_table(), file_,
                       key_path(key) + "[" + std::to_string(index++) + "]", line_offset_);
    }
    return out;
  }

  const toml::node* node(std::string_view key) const { return table_->get(key); }

  // --- values of sluice/parse.hpp, with the parser's message at the value ---

  // The value, or a positioned error carrying the parser's message.
  template <class T>
  T parsed_at(const toml::node& node, std::string_view key, const Parsed<T>& parsed) const {
    if (!parsed) fail_at(&node, key, parsed.error());
    return *parsed;
  }

  // A string node's text; anything else fails with `expected`.
  std::string string_at(const toml::node& node, std::string_view key,
                        const std::string& expected) const {
    if (!node.is_string()) fail_at(&node, key, expected);
    return std::string(node.as_string()->get());
  }

  IpAddress ip_address_at(const toml::node& node, std::string_view key) const {
    return parsed_at(node, key,
                     parse::ip_address(string_at(node, key, "expected an IP address (a string)")));
  }
  std::optional<IpAddress> get_ip_address(std::string_view key) const {
    const toml::node* n = node(key);
    if (!n) return std::nullopt;
    return ip_address_at(*n, key);
  }
  std::vector<IpAddress> get_ip_address_list(std::string_view key) const {
    std::vector<IpAddress> out;
    for_each_item(key, "expected a list of IP addresses",
                  [&](const toml::node& item) { out.push_back(ip_address_at(item, key)); });
    return out;
  }

  IpPrefix prefix_at(const toml::node& node, std::string_view key,
                     parse::HostBits host_bits = parse::HostBits::refuse) const {
    return parsed_at(node, key,
                     parse::ip_prefix(string_at(node, key, "expected a CIDR prefix (a string)"),
                                      host_bits));
  }
  std::optional<IpPrefix> get_prefix(std::string_view key,
                                     parse::HostBits host_bits = parse::HostBits::refuse) const {
    const toml::node* n = node(key);
    if (!n) return std::nullopt;
    return prefix_at(*n, key, host_bits);
  }
  std::vector<IpPrefix> get_prefix_list(std::string_view key,
                                        parse::HostBits host_bits = parse::HostBits::refuse) const {
    std::vector<IpPrefix> out;
    for_each_item(key, "expected a list of CIDR prefixes",
                  [&](const toml::node& item) { out.push_back(prefix_at(item, key, host_bits)); });
    return out;
  }

  // protocol = "tcp" (any case) | "udp" | "sctp" | "icmp" | "icmpv6" | 0-255,
  // as a string or an integer: IPPROTO_*.
  std::uint8_t get_protocol(std::string_view key, std::uint8_t fallback) const {
    const toml::node* n = node(key);
    if (!n) return fallback;
    if (n->is_integer()) {
      const std::int64_t value = n->as_integer()->get();
      if (value < 0 || value > 255)
        fail_at(n, key, std::to_string(value) + " is not a protocol number: use 0-255");
      return static_cast<std::uint8_t>(value);
    }
    return parsed_at(*n, key,
                     parse::protocol(string_at(
                         *n, key, "expected a protocol: a name (tcp, udp, sctp, icmp, icmpv6) "
                                  "or a number 0-255")));
  }

  // port = 1-65535 (an integer).
  std::uint16_t get_port(std::string_view key, std::uint16_t fallback) const {
    const toml::node* n = node(key);
    if (!n) return fallback;
    if (!n->is_integer()) fail_at(n, key, "expected a port number (an integer 1-65535)");
    return parsed_at(*n, key, parse::port_number(n->as_integer()->get()));
  }

  // ports = 80 | "80" | "8000-8100".
  PortRange get_port_range(std::string_view key, PortRange fallback) const {
    const toml::node* n = node(key);
    if (!n) return fallback;
    if (n->is_integer()) {
      const std::uint16_t port = parsed_at(*n, key, parse::port_number(n->as_integer()->get()));
      return PortRange{port, port};
    }
    return parsed_at(*n, key,
                     parse::port_range(string_at(
                         *n, key, "expected a port (1-65535) or a port range such as \"8000-8100\"")));
  }

  // A duration as a string with a unit ("30s", "500ms", "5m", "1h") or an
  // integer counted in D's unit (seconds for std::chrono::seconds), between
  // `min` and `max`; a string must be a whole number of D's unit.
  template <class Rep, class Period>
  std::chrono::duration<Rep, Period> get_duration(std::string_view key,
                                                  std::chrono::duration<Rep, Period> fallback,
                                                  NotDeduced<std::chrono::duration<Rep, Period>> min,
                                                  NotDeduced<std::chrono::duration<Rep, Period>> max) const {
    using D = std::chrono::duration<Rep, Period>;
    using std::chrono::nanoseconds;
    const toml::node* n = node(key);
    if (!n) return fallback;
    const nanoseconds unit = std::chrono::duration_cast<nanoseconds>(D(1));
    const char* unit_name = parse::duration_unit_plural(unit);
    const std::string suffix = parse::duration_text(unit).substr(1);  // "s" of "1s"
    D value{};
    if (n->is_integer()) {
      value = D(static_cast<Rep>(n->as_integer()->get()));
      if (value < min || value > max)
        fail_at(n, key, "duration " + std::to_string(n->as_integer()->get()) + suffix +
                            " is out of range [" + parse::duration_text(min) + ", " +
                            parse::duration_text(max) + "]");
      return value;
    }
    const std::string text = string_at(*n, key,
                                       "expected a duration: a string such as \"30s\", or a whole "
                                       "number of " + std::string(unit_name));
    const nanoseconds parsed = parsed_at(*n, key, parse::duration(text));
    if (parsed % unit != nanoseconds(0))
      fail_at(n, key, "'" + text + "' is not a whole number of " + unit_name);
    value = std::chrono::duration_cast<D>(parsed);
    if (parsed < min || parsed > max)
      fail_at(n, key, "duration " + text + " is out of range [" + parse::duration_text(min) +
                          ", " + parse::duration_text(max) + "]");
    return value;
  }

 private:
  // Calls `each` for every item of the list at `key` (absent: none).
  template <class Each>
  void for_each_item(std::string_view key, const std::string& expected, Each each) const {
    const toml::node* n = node(key);
    if (!n) return;
    if (!n->is_array()) fail_at(n, key, expected);
    for (const toml::node& item : *n->as_array()) each(item);
  }

  // Line 0 is toml++'s "no position": it stays unknown.
  toml::source_position in_file(toml::source_position at) const {
    if (at.line) at.line += line_offset_;
    return at;
  }

  const toml::table* table_;
  std::string file_;
  std::string path_;
  std::uint32_t line_offset_ = 0;
};

// Parses TOML text; a syntax error becomes a ConfigError with its position.
inline toml::table parse(std::string_view text, const std::string& file) {
  try {
    return toml::parse(text, file);
  } catch (const toml::parse_error& error) {
    throw ConfigError(file, error.source().begin.line, error.source().begin.column, "",
                      std::string(error.description()));
  }
}

// The [plugins.<name>] table of a plugin's ConfigSource, or an empty table.
class PluginTable {
 public:
  explicit PluginTable(const ConfigSource& source)
      : root_(parse(source.text, source.path)), empty_() {
    const toml::node* node = root_.at_path(source.table).node();
    if (node && !node->is_table())
      throw ConfigError(source.path, node->source().begin.line, node->source().begin.column,
                        source.table, "expected a table");
    table_.emplace(node ? *node->as_table() : empty_, source.path, source.table);
  }
  const Table& table() const { return *table_; }

 private:
  toml::table root_;
  toml::table empty_;
  std::optional<Table> table_;
};

}  // namespace sluice::config
