// Output for people and for scripts: aligned tables and a small JSON value
// type (header-only). sluicectl and plugin CLI commands use the same code,
// so every command looks alike; build a result once and print it either way.
#pragma once

#include <arpa/inet.h>

#include <algorithm>
#include <cstdint>
#include <map>
#include <ostream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace sluice::output {

// Columns aligned on the widest cell; numeric columns are right-aligned so
// magnitudes line up.
class Table {
 public:
  enum class Align { left, right };
  struct Column {
    std::string header;
    Align align = Align::left;
  };

  explicit Table(std::vector<Column> columns);
  void add_row(std::vector<std::string> cells);
  bool empty() const { return rows_.empty(); }
  void print(std::ostream& out, bool with_header = true) const;

 private:
  std::vector<Column> columns_;
  std::vector<std::vector<std::string>> rows_;
};

// A JSON document. Objects keep their keys in insertion order so that output
// is stable from run to run and matches the order of the table columns.
class Json {
 public:
  using Array = std::vector<Json>;
  using Object = std::vector<std::pair<std::string, Json>>;

  Json() = default;  // null
  Json(std::nullptr_t) {}
  Json(bool value) : value_(value) {}
  Json(int value) : value_(static_cast<std::int64_t>(value)) {}
  Json(long value) : value_(static_cast<std::int64_t>(value)) {}
  Json(long long value) : value_(static_cast<std::int64_t>(value)) {}
  Json(unsigned value) : value_(static_cast<std::uint64_t>(value)) {}
  Json(unsigned long value) : value_(static_cast<std::uint64_t>(value)) {}
  Json(unsigned long long value) : value_(static_cast<std::uint64_t>(value)) {}
  Json(const char* value) : value_(std::string(value)) {}
  Json(std::string value) : value_(std::move(value)) {}
  Json(std::string_view value) : value_(std::string(value)) {}

  static Json array() { return Json(Array{}); }
  static Json object() { return Json(Object{}); }

  // Object member access; adds the key (at the end) if it is missing.
  Json& operator[](std::string_view key);
  // Appends to an array.
  void push_back(Json value);

  // indent < 0: one line (for streams such as `monitor`); otherwise pretty.
  std::string dump(int indent = 2) const;

 private:
  explicit Json(Array value) : value_(std::move(value)) {}
  explicit Json(Object value) : value_(std::move(value)) {}
  void write(std::string& out, int indent, int depth) const;

  std::variant<std::nullptr_t, bool, std::int64_t, std::uint64_t, std::string, Array, Object>
      value_ = nullptr;
};

// Addresses as Sluice's maps store them: four big-endian words, IPv4 in the
// first. "10.0.0.1" or "fd00::1".
inline std::string address_text(bool ipv6, const void* words) {
  char buffer[INET6_ADDRSTRLEN] = {};
  inet_ntop(ipv6 ? AF_INET6 : AF_INET, words, buffer, sizeof(buffer));
  return buffer;
}
// "10.0.0.1:80" or "[fd00::1]:80"; the port in network order, as stored.
inline std::string endpoint_text(bool ipv6, const void* words, std::uint16_t port_be) {
  std::string address = address_text(ipv6, words);
  return (ipv6 ? "[" + address + "]" : address) + ":" + std::to_string(ntohs(port_be));
}
// "02:00:0a:41:01:02"
inline std::string mac_text(const std::uint8_t (&mac)[6]) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (std::uint8_t byte : mac) {
    if (!out.empty()) out += ':';
    out += kHex[byte >> 4];
    out += kHex[byte & 15];
  }
  return out;
}

inline Table::Table(std::vector<Column> columns) : columns_(std::move(columns)) {}

inline void Table::add_row(std::vector<std::string> cells) {
  cells.resize(columns_.size());
  rows_.push_back(std::move(cells));
}

inline void Table::print(std::ostream& out, bool with_header) const {
  std::vector<std::size_t> widths(columns_.size());
  for (std::size_t c = 0; c < columns_.size(); ++c) {
    widths[c] = with_header ? columns_[c].header.size() : 0;
    for (const auto& row : rows_) widths[c] = std::max(widths[c], row[c].size());
  }
  auto print_row = [&](const auto& cell_of) {
    std::string line;
    for (std::size_t c = 0; c < columns_.size(); ++c) {
      const std::string& cell = cell_of(c);
      std::string pad(widths[c] - cell.size(), ' ');
      bool last = c + 1 == columns_.size();
      if (columns_[c].align == Align::right)
        line += pad + cell;
      else
        line += last ? cell : cell + pad;  // no trailing blanks
      if (!last) line += "  ";
    }
    out << line << "\n";
  };
  if (with_header)
    print_row([&](std::size_t c) -> const std::string& { return columns_[c].header; });
  for (const auto& row : rows_)
    print_row([&](std::size_t c) -> const std::string& { return row[c]; });
}

inline Json& Json::operator[](std::string_view key) {
  auto* object = std::get_if<Object>(&value_);
  if (!object) throw std::logic_error("Json::operator[] on a non-object");
  for (auto& [name, value] : *object)
    if (name == key) return value;
  object->emplace_back(std::string(key), Json());
  return object->back().second;
}

inline void Json::push_back(Json value) {
  auto* array = std::get_if<Array>(&value_);
  if (!array) throw std::logic_error("Json::push_back on a non-array");
  array->push_back(std::move(value));
}

inline std::string Json::dump(int indent) const {
  std::string out;
  write(out, indent, 0);
  return out;
}

namespace detail {

inline void write_string(std::string& out, const std::string& text) {
  static constexpr char kHex[] = "0123456789abcdef";
  out += '"';
  for (unsigned char c : text) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20) {
          out += "\\u00";
          out += kHex[c >> 4];
          out += kHex[c & 15];
        } else {
          out += static_cast<char>(c);  // UTF-8 passes through unchanged
        }
    }
  }
  out += '"';
}

inline void newline(std::string& out, int indent, int depth) {
  if (indent < 0) return;
  out += '\n';
  out.append(static_cast<std::size_t>(indent * depth), ' ');
}

}  // namespace detail

inline void Json::write(std::string& out, int indent, int depth) const {
  if (std::holds_alternative<std::nullptr_t>(value_)) {
    out += "null";
  } else if (const auto* b = std::get_if<bool>(&value_)) {
    out += *b ? "true" : "false";
  } else if (const auto* i = std::get_if<std::int64_t>(&value_)) {
    out += std::to_string(*i);
  } else if (const auto* u = std::get_if<std::uint64_t>(&value_)) {
    out += std::to_string(*u);
  } else if (const auto* s = std::get_if<std::string>(&value_)) {
    detail::write_string(out, *s);
  } else if (const auto* array = std::get_if<Array>(&value_)) {
    if (array->empty()) {
      out += "[]";
      return;
    }
    out += '[';
    for (std::size_t n = 0; n < array->size(); ++n) {
      if (n) out += indent < 0 ? ", " : ",";
      detail::newline(out, indent, depth + 1);
      (*array)[n].write(out, indent, depth + 1);
    }
    detail::newline(out, indent, depth);
    out += ']';
  } else if (const auto* object = std::get_if<Object>(&value_)) {
    if (object->empty()) {
      out += "{}";
      return;
    }
    out += '{';
    for (std::size_t n = 0; n < object->size(); ++n) {
      if (n) out += indent < 0 ? ", " : ",";
      detail::newline(out, indent, depth + 1);
      detail::write_string(out, (*object)[n].first);
      out += ": ";
      (*object)[n].second.write(out, indent, depth + 1);
    }
    detail::newline(out, indent, depth);
    out += '}';
  }
}

}  // namespace sluice::output
