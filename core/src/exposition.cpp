#include "sluice/core/exposition.hpp"

#include <cmath>
#include <cstdio>
#include <stdexcept>

namespace sluice {

namespace {

bool name_char(char c, bool first, bool colon_ok) {
  bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
  if (colon_ok && c == ':') return true;
  return alpha || (!first && c >= '0' && c <= '9');
}

}  // namespace

bool valid_metric_name(std::string_view name) {
  if (name.empty()) return false;
  for (std::size_t i = 0; i < name.size(); ++i)
    if (!name_char(name[i], i == 0, true)) return false;
  return true;
}

bool valid_label_name(std::string_view name) {
  if (name.empty() || name.substr(0, 2) == "__") return false;  // __ is reserved
  for (std::size_t i = 0; i < name.size(); ++i)
    if (!name_char(name[i], i == 0, false)) return false;
  return true;
}

std::string escape_label_value(std::string_view value) {
  std::string out;
  out.reserve(value.size());
  for (char c : value) {
    switch (c) {
      case '\\': out += "\\\\"; break;
      case '"': out += "\\\""; break;
      case '\n': out += "\\n"; break;
      default: out += c;
    }
  }
  return out;
}

std::string escape_help(std::string_view help) {
  std::string out;
  out.reserve(help.size());
  for (char c : help) {
    switch (c) {
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      default: out += c;
    }
  }
  return out;
}

std::string format_sample_value(double value) {
  if (std::isnan(value)) return "NaN";
  if (std::isinf(value)) return value > 0 ? "+Inf" : "-Inf";
  // Counters of packets and bytes are integers: print them exactly.
  if (value == std::trunc(value) && std::fabs(value) < 9.007199254740992e15) {
    char buffer[32];
    std::snprintf(buffer, sizeof(buffer), "%.0f", value);
    return buffer;
  }
  char buffer[32];
  std::snprintf(buffer, sizeof(buffer), "%.17g", value);
  return buffer;
}

void ExpositionWriter::counter(std::string_view name, std::string_view help,
                               const MetricLabels& labels, double value) {
  sample("counter", name, help, labels, value);
}

void ExpositionWriter::gauge(std::string_view name, std::string_view help,
                             const MetricLabels& labels, double value) {
  sample("gauge", name, help, labels, value);
}

void ExpositionWriter::sample(std::string_view type, std::string_view name,
                              std::string_view help, const MetricLabels& labels, double value) {
  if (!valid_metric_name(name))
    throw std::invalid_argument("invalid metric name '" + std::string(name) + "'");
  std::string line(name);
  if (!labels.empty()) {
    line += '{';
    for (std::size_t i = 0; i < labels.size(); ++i) {
      const auto& [label, label_value] = labels[i];
      if (!valid_label_name(label))
        throw std::invalid_argument("metric " + std::string(name) + ": invalid label name '" +
                                    label + "'");
      for (std::size_t j = 0; j < i; ++j)
        if (labels[j].first == label)
          throw std::invalid_argument("metric " + std::string(name) + ": label '" + label +
                                      "' given twice");
      if (i) line += ',';
      line += label + "=\"" + escape_label_value(label_value) + '"';
    }
    line += '}';
  }
  line += ' ' + format_sample_value(value);

  for (auto& family : families_)
    if (family.name == name) {
      if (family.type != type)
        throw std::invalid_argument("metric " + std::string(name) + " was written as a " +
                                    family.type + ", now as a " + std::string(type));
      family.samples.push_back(std::move(line));
      return;
    }
  families_.push_back({std::string(name), std::string(help), std::string(type), {}});
  families_.back().samples.push_back(std::move(line));
}

std::string ExpositionWriter::text() const {
  std::string out;
  for (const auto& family : families_) {
    out += "# HELP " + family.name + " " + escape_help(family.help) + "\n";
    out += "# TYPE " + family.name + " " + family.type + "\n";
    for (const auto& sample : family.samples) out += sample + "\n";
  }
  return out;
}

}  // namespace sluice
