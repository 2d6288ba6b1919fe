// Reading TOML with positioned errors (header-only, toml++).
// Used by the daemon for the node config and by plugins for their tables;
// every error names file:line:column and the dotted key.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <toml++/toml.h>

#include <sluice/plugin.hpp>

namespace sluice::config {

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

 private:
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
