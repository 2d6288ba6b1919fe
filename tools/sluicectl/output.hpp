// Output of sluicectl: aligned human tables and a small JSON value type.
//
// Every command builds its result once as rows (tables) or a Json value, so
// the two formats cannot drift apart in what they report.
#pragma once

#include <cstdint>
#include <iosfwd>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include <sluice/cli.hpp>

namespace sluice::ctl {

using sluice::OutputFormat;  // <sluice/cli.hpp>

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

// Text of a fixed-size, possibly unterminated char array from a map value.
template <std::size_t N>
std::string fixed_string(const char (&chars)[N]) {
  std::size_t len = 0;
  while (len < N && chars[len] != '\0') ++len;
  return std::string(chars, len);
}

std::string join(const std::vector<std::string>& parts, const std::string& separator);

// CLOCK_REALTIME nanoseconds as "2024-05-01T12:00:00Z" (UTC); "-" for 0.
std::string format_utc(std::uint64_t realtime_ns);

}  // namespace sluice::ctl
