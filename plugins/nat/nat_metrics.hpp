// The nat plugin's Prometheus samples, from what it applied.
#pragma once

#include <map>
#include <string>

#include <sluice/metrics.hpp>

#include "nat_entries.hpp"

namespace nat {

// applied: the entries in the maps, by service key.
void write_nat_metrics(sluice::MetricsWriter& out,
                       const std::map<std::string, ServiceEntries>& applied);

}  // namespace nat
