#include "ct_config.hpp"

#include <charconv>
#include <string>

namespace ct {

using sluice::config::Table;

Settings default_settings() {
  Settings s;
  for (const auto& key : kTimeoutKeys) s.timeouts[key.index] = key.fallback;
  return s;
}

std::uint32_t read_duration(const Table& table, const char* key, std::uint32_t fallback,
                            std::uint32_t min, std::uint32_t max) {
  const toml::node* node = table.node(key);
  if (!node) return fallback;
  std::int64_t seconds = 0;
  if (node->is_integer()) {
    seconds = node->as_integer()->get();
  } else if (node->is_string()) {
    std::string text(node->as_string()->get());
    std::int64_t value = -1;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    std::string unit = text.substr(static_cast<std::size_t>(end - text.data()));
    std::int64_t scale = unit == "s" ? 1 : unit == "m" ? 60 : unit == "h" ? 3600 : 0;
    if (text.empty() || ec != std::errc() || value < 0 || scale == 0)
      table.fail(key, "'" + text + "' is not a duration (seconds as an integer, or \"30s\", "
                                   "\"5m\", \"1h\")");
    seconds = value * scale;
  } else {
    table.fail(key, "expected seconds (an integer) or a duration string such as \"30s\"");
  }
  if (seconds < min || seconds > max)
    table.fail(key, "duration " + std::to_string(seconds) + "s is out of range [" +
                        std::to_string(min) + "s, " + std::to_string(max) + "s]");
  return static_cast<std::uint32_t>(seconds);
}

Settings parse_settings(const Table& table) {
  table.expect_only({"table_size", "table_full", "tcp_midstream_pickup", "clean_interval",
                     "fast_path", "timeouts"});
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
