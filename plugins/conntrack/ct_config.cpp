#include "ct_config.hpp"

#include <chrono>

namespace ct {

using sluice::config::Table;

Settings default_settings() {
  Settings s;
  for (const auto& key : kTimeoutKeys) s.timeouts[key.index] = key.fallback;
  return s;
}

std::uint32_t read_duration(const Table& table, const char* key, std::uint32_t fallback,
                            std::uint32_t min, std::uint32_t max) {
  using std::chrono::seconds;
  return static_cast<std::uint32_t>(
      table.get_duration(key, seconds(fallback), seconds(min), seconds(max)).count());
}

Settings parse_settings(const Table& table) {
  table.expect_only({"table_size", "table_full", "tcp_midstream_pickup", "clean_interval",
                     "fast_path", "workload_source_check", "timeouts"});
  Settings s;
  s.table_size = static_cast<std::uint32_t>(
      table.get_int("table_size", SL_CT_DEFAULT_ENTRIES, 1, 1 << 26));
  s.table_full = table.get_choice("table_full", "drop-new", {"drop-new", "pass-untracked"}) ==
                         "drop-new"
                     ? CT_FULL_DROP_NEW
                     : CT_FULL_PASS_UNTRACKED;
  s.tcp_midstream = table.get_bool("tcp_midstream_pickup", true);
  s.clean_interval = read_duration(table, "clean_interval", 10, 1, 3600);
  s.fast_path = table.get_bool("fast_path", true);
  s.workload_source_check = table.get_bool("workload_source_check", true);
  for (const auto& key : kTimeoutKeys) s.timeouts[key.index] = key.fallback;
  if (auto timeouts = table.table("timeouts")) {
    timeouts->expect_only({"tcp_syn", "tcp_established", "tcp_fin", "tcp_rst", "udp", "icmp",
                           "other"});
    for (const auto& key : kTimeoutKeys)
      s.timeouts[key.index] = read_duration(*timeouts, key.name, key.fallback, 1, kMaxTimeout);
  }
  return s;
}

}  // namespace ct
