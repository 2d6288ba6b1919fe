// The Prometheus text exposition format (version 0.0.4), as sluiced serves
// it: the MetricsWriter handed to plugins, and the one the core writes its
// own metrics with.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include <sluice/metrics.hpp>

namespace sluice {

class ExpositionWriter final : public MetricsWriter {
 public:
  // Throw std::invalid_argument for an invalid metric or label name, or a
  // name already written with another type; nothing is written then.
  void counter(std::string_view name, std::string_view help, const MetricLabels& labels,
               double value) override;
  void gauge(std::string_view name, std::string_view help, const MetricLabels& labels,
             double value) override;

  // The document: for every metric name, in the order names first appeared,
  // its HELP and TYPE lines once, then all its samples (even when they were
  // written interleaved with other names).
  std::string text() const;

 private:
  struct Family {
    std::string name, help, type;
    std::vector<std::string> samples;  // "name{labels} value"
  };
  void sample(std::string_view type, std::string_view name, std::string_view help,
              const MetricLabels& labels, double value);
  std::vector<Family> families_;
};

// Escaping of the exposition format: label values escape backslash, double
// quote and newline; HELP text escapes backslash and newline.
std::string escape_label_value(std::string_view value);
std::string escape_help(std::string_view help);
// A sample value: integers without exponent, NaN, +Inf, -Inf.
std::string format_sample_value(double value);
bool valid_metric_name(std::string_view name);
bool valid_label_name(std::string_view name);

inline constexpr const char* kExpositionContentType = "text/plain; version=0.0.4; charset=utf-8";

}  // namespace sluice
