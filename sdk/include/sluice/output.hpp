// Output for people and for scripts: aligned tables and JSON documents
// (nlohmann::ordered_json; header-only). sluicectl and plugin CLI commands use the same code,
// so every command looks alike; build a result once and print it either way.
#pragma once

#include <arpa/inet.h>

#include <algorithm>
#include <cstdint>
#include <ostream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

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

// A JSON document: nlohmann::ordered_json, whose objects keep their keys in
// insertion order, so output is stable from run to run and matches the order
// of the table columns.
using Json = nlohmann::ordered_json;

// The document, indented (indent >= 0) or on one line (indent < 0, for
// streams such as `monitor`: {"a": 1, "b": [2, 3]}, as sluicectl always
// wrote it). Text that is not valid UTF-8 (an interface name from the
// kernel) is written with U+FFFD instead of failing.
inline std::string json_text(const Json& doc, int indent = 2) {
  std::string text = doc.dump(indent < 0 ? 0 : indent, ' ', false, Json::error_handler_t::replace);
  if (indent >= 0) return text;
  // With indent 0 every raw newline is layout (strings escape theirs):
  // ",\n" becomes ", ", the others (after an opening, before a closing
  // bracket) go.
  std::string line;
  line.reserve(text.size());
  for (char c : text) {
    if (c != '\n')
      line += c;
    else if (!line.empty() && line.back() == ',')
      line += ' ';
  }
  return line;
}
// Prints the document and a newline: what `-o json` of a command prints.
inline void print(std::ostream& out, const Json& doc) { out << json_text(doc) << "\n"; }

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

}  // namespace sluice::output
