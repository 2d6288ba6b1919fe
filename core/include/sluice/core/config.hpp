// The node configuration (sluice.toml): parsed and validated as a whole
// before anything is touched.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <sluice/bpf/layout.h>
#include <sluice/plugin.hpp>

namespace sluice {

struct RoleRules {
  sl_fault_rule malformed = SL_FAULT_DROP;
  sl_fault_rule missed_tail_call = SL_FAULT_DROP;
};

struct InterfacePatterns {
  std::array<std::vector<std::string>, SL_ROLE_COUNT> by_role;
  std::vector<std::string> ignore;
};

struct NodeConfig {
  std::string file;  // where it was read from
  std::string text;  // the raw TOML, handed to plugins
  std::string node_name;
  std::string bpf_root = "/sys/fs/bpf";
  std::string instance = "sluice";
  sl_log_level log_level = SL_LOG_OFF;
  InterfacePatterns interfaces;
  std::array<RoleRules, SL_ROLE_COUNT> rules;
  std::string plugin_dir;  // empty: <dir of the executable>/../lib/sluice/plugins
  std::vector<std::string> enabled_plugins;
  // Plugins whose failure must not block traffic (observers such as log):
  // when they fail, their stages are left out instead of left as holes.
  std::vector<std::string> optional_plugins;
  bool plugin_optional(const std::string& name) const {
    for (const auto& optional : optional_plugins)
      if (optional == name) return true;
    return false;
  }
  std::string state_source = "file";
  std::string state_dir = "/etc/sluice/state";
  // [metrics] listen: where sluiced serves Prometheus metrics ("" disables).
  std::string metrics_listen = "127.0.0.1:9464";

  std::string pin_dir() const { return bpf_root + "/" + instance; }
  std::string map_pin_dir() const { return pin_dir() + "/" SL_PIN_MAPS_SUBDIR; }
};

// An address:port to listen on: an IPv4 literal ("127.0.0.1:9464"), an
// IPv6 literal in brackets ("[::1]:9464") or "localhost:PORT" (127.0.0.1).
struct ListenAddress {
  std::string address;  // numeric, without brackets
  std::uint16_t port = 0;
  bool ipv6 = false;
  bool loopback = false;
};
// Parses `text`; on failure returns nullopt and sets `why`. Wildcard
// addresses (0.0.0.0, ::) are refused: metrics must not be exposed to every
// network by accident.
std::optional<ListenAddress> parse_listen_address(std::string_view text, std::string& why);

// Reads and validates a config file; throws ConfigError (file:line:column,
// key) on any problem, including unknown keys.
NodeConfig load_config(const std::string& path);
NodeConfig parse_config(const std::string& text, const std::string& path);

// The default plugin directory relative to the running executable.
std::string default_plugin_dir();

const char* role_name(sl_role role);
const char* hook_name(sl_hook hook);
std::optional<sl_role> role_from_name(std::string_view name);
const char* log_level_name(sl_log_level level);
std::optional<sl_log_level> log_level_from_name(std::string_view name);

// "file:line:column: key: message"
std::string format_config_error(const ConfigError& error);

}  // namespace sluice
