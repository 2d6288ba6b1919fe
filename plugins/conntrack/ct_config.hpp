// [plugins.conntrack]: table size, full-table rule, mid-stream pickup,
// cleaner interval, fast path and timeouts, read with positioned errors.
#pragma once

#include <array>
#include <cstdint>

#include <sluice/bpf/conntrack.h>
#include <sluice/config.hpp>

#include "conntrack_layout.h"

namespace ct {

struct TimeoutKey {
  const char* name;
  sl_ct_timeout index;
  std::uint32_t fallback;  // seconds (Calico's defaults)
};
constexpr TimeoutKey kTimeoutKeys[] = {
    {"tcp_syn", SL_CT_TO_TCP_SYN, 20},   {"tcp_established", SL_CT_TO_TCP_ESTABLISHED, 3600},
    {"tcp_fin", SL_CT_TO_TCP_FIN, 30},   {"tcp_rst", SL_CT_TO_TCP_RST, 40},
    {"udp", SL_CT_TO_UDP, 60},           {"icmp", SL_CT_TO_ICMP, 5},
    {"other", SL_CT_TO_OTHER, 600},
};
constexpr std::uint32_t kMaxTimeout = 7 * 24 * 3600;

struct Settings {
  std::uint32_t table_size = SL_CT_DEFAULT_ENTRIES;
  ct_table_full_rule table_full = CT_FULL_DROP_NEW;
  bool tcp_midstream = true;
  std::uint32_t clean_interval = 10;
  bool fast_path = true;
  // Drop a workload's packets whose source is not routed back to it.
  bool workload_source_check = true;
  std::array<std::uint32_t, SL_CT_TO_COUNT> timeouts{};
};

// The settings of an empty table: every timeout at its default.
Settings default_settings();

// An integer number of seconds, or a string "<n>s", "<n>m", "<n>h".
std::uint32_t read_duration(const sluice::config::Table& table, const char* key,
                            std::uint32_t fallback, std::uint32_t min, std::uint32_t max);

// Throws ConfigError (file, line, column, key) on bad input.
Settings parse_settings(const sluice::config::Table& table);

}  // namespace ct
