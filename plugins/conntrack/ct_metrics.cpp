#include "ct_metrics.hpp"

#include <cctype>
#include <map>
#include <string>
#include <utility>

#include "ct_format.hpp"
#include "ct_table.hpp"

namespace ct {

void write_conntrack_metrics(sluice::MetricsWriter& out, int table_fd, int stats_fd,
                             std::uint32_t table_size, std::uint64_t cleaned_total) {
  std::map<std::pair<std::string, std::string>, std::uint64_t> by;
  for (const auto& e : read_entries(table_fd)) {
    if (e.value.type == SL_CT_TYPE_NAT_FWD) continue;
    std::string state = state_name(sl_ct_state_of(e.key.proto, &e.value));
    for (auto& c : state) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    std::string proto = proto_name(e.key.proto);
    for (auto& c : proto) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    by[{proto, state}]++;
  }
  for (const auto& [k, n] : by)
    out.gauge("sluice_conntrack_entries", "Conntrack entries by protocol and state",
              {{"proto", k.first}, {"state", k.second}}, static_cast<double>(n));
  out.gauge("sluice_conntrack_table_size", "Capacity of the conntrack table", {},
            static_cast<double>(table_size));
  ct_stats stats = read_stats(stats_fd);
  out.counter("sluice_conntrack_table_full_total",
              "New flows that found the conntrack table full, by what happened to them",
              {{"action", "dropped"}}, static_cast<double>(stats.full_dropped));
  out.counter("sluice_conntrack_table_full_total",
              "New flows that found the conntrack table full, by what happened to them",
              {{"action", "passed"}}, static_cast<double>(stats.full_passed));
  out.counter("sluice_conntrack_created_total", "Conntrack entries created", {},
              static_cast<double>(stats.created));
  out.counter("sluice_conntrack_cleaned_total", "Expired conntrack entries removed", {},
              static_cast<double>(cleaned_total));
}

}  // namespace ct
