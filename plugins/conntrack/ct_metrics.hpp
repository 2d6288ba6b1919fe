// The conntrack plugin's Prometheus samples: entries by protocol and state,
// table size, full-table outcomes, created and cleaned entries.
#pragma once

#include <cstdint>

#include <sluice/metrics.hpp>

namespace ct {

// table_fd: sl_conntrack; stats_fd: ct_stats.
void write_conntrack_metrics(sluice::MetricsWriter& out, int table_fd, int stats_fd,
                             std::uint32_t table_size, std::uint64_t cleaned_total);

}  // namespace ct
