#include "output.hpp"

#include <algorithm>
#include <ctime>
#include <ostream>
#include <stdexcept>

namespace sluice::ctl {

Table::Table(std::vector<Column> columns) : columns_(std::move(columns)) {}

void Table::add_row(std::vector<std::string> cells) {
  cells.resize(columns_.size());
  rows_.push_back(std::move(cells));
}

void Table::print(std::ostream& out, bool with_header) const {
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

Json& Json::operator[](std::string_view key) {
  auto* object = std::get_if<Object>(&value_);
  if (!object) throw std::logic_error("Json::operator[] on a non-object");
  for (auto& [name, value] : *object)
    if (name == key) return value;
  object->emplace_back(std::string(key), Json());
  return object->back().second;
}

void Json::push_back(Json value) {
  auto* array = std::get_if<Array>(&value_);
  if (!array) throw std::logic_error("Json::push_back on a non-array");
  array->push_back(std::move(value));
}

std::string Json::dump(int indent) const {
  std::string out;
  write(out, indent, 0);
  return out;
}

namespace {

void write_string(std::string& out, const std::string& text) {
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

void newline(std::string& out, int indent, int depth) {
  if (indent < 0) return;
  out += '\n';
  out.append(static_cast<std::size_t>(indent * depth), ' ');
}

}  // namespace

void Json::write(std::string& out, int indent, int depth) const {
  if (std::holds_alternative<std::nullptr_t>(value_)) {
    out += "null";
  } else if (const auto* b = std::get_if<bool>(&value_)) {
    out += *b ? "true" : "false";
  } else if (const auto* i = std::get_if<std::int64_t>(&value_)) {
    out += std::to_string(*i);
  } else if (const auto* u = std::get_if<std::uint64_t>(&value_)) {
    out += std::to_string(*u);
  } else if (const auto* s = std::get_if<std::string>(&value_)) {
    write_string(out, *s);
  } else if (const auto* array = std::get_if<Array>(&value_)) {
    if (array->empty()) {
      out += "[]";
      return;
    }
    out += '[';
    for (std::size_t n = 0; n < array->size(); ++n) {
      if (n) out += indent < 0 ? ", " : ",";
      newline(out, indent, depth + 1);
      (*array)[n].write(out, indent, depth + 1);
    }
    newline(out, indent, depth);
    out += ']';
  } else if (const auto* object = std::get_if<Object>(&value_)) {
    if (object->empty()) {
      out += "{}";
      return;
    }
    out += '{';
    for (std::size_t n = 0; n < object->size(); ++n) {
      if (n) out += indent < 0 ? ", " : ",";
      newline(out, indent, depth + 1);
      write_string(out, (*object)[n].first);
      out += ": ";
      (*object)[n].second.write(out, indent, depth + 1);
    }
    newline(out, indent, depth);
    out += '}';
  }
}

std::string join(const std::vector<std::string>& parts, const std::string& separator) {
  std::string out;
  for (std::size_t i = 0; i < parts.size(); ++i) {
    if (i) out += separator;
    out += parts[i];
  }
  return out;
}

std::string format_utc(std::uint64_t realtime_ns) {
  if (realtime_ns == 0) return "-";
  std::time_t seconds = static_cast<std::time_t>(realtime_ns / 1000000000ull);
  std::tm tm{};
  gmtime_r(&seconds, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

}  // namespace sluice::ctl
