// Prometheus metrics contributed by plugins (plugin ABI 2.0).
//
// sluiced serves the text exposition format on [metrics] listen (localhost)
// and, for every scrape, asks each loaded plugin to write its samples. Names
// should start with sluice_<plugin>_ and follow Prometheus conventions
// (counters end in _total, units in the name).
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace sluice {

using MetricLabels = std::vector<std::pair<std::string, std::string>>;

class MetricsWriter {
 public:
  virtual ~MetricsWriter() = default;
  // One sample. HELP and TYPE are written once per metric name; samples of
  // one name should be written together.
  virtual void counter(std::string_view name, std::string_view help,
                       const MetricLabels& labels, double value) = 0;
  virtual void gauge(std::string_view name, std::string_view help, const MetricLabels& labels,
                     double value) = 0;
};

}  // namespace sluice
