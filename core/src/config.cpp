#include "sluice/core/config.hpp"

#include <arpa/inet.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <climits>
#include <filesystem>
#include <set>
#include <sstream>

#include <sluice/config.hpp>

#include "sluice/core/error.hpp"
#include "sluice/core/regular_file.hpp"

namespace sluice {

namespace {

constexpr std::array<const char*, SL_ROLE_COUNT> kRoleNames = {"workload", "data", "tunnel",
                                                               "l3"};

// Defaults follow Calico's naming: cali* veths, eth*/ens*/en* uplinks.
const std::array<std::vector<std::string>, SL_ROLE_COUNT> kDefaultPatterns = {
    std::vector<std::string>{"cali*"}, std::vector<std::string>{"eth*", "ens*", "en*"},
    std::vector<std::string>{"vxlan.sluice"}, std::vector<std::string>{"wg*"}};

// Fail closed where policy is enforced (workloads, tunnels, L3 devices);
// uplinks default to passing so a hole in the chain cannot cut the node off.
const std::array<RoleRules, SL_ROLE_COUNT> kDefaultRules = {
    RoleRules{SL_FAULT_DROP, SL_FAULT_DROP}, RoleRules{SL_FAULT_PASS, SL_FAULT_PASS},
    RoleRules{SL_FAULT_DROP, SL_FAULT_DROP}, RoleRules{SL_FAULT_DROP, SL_FAULT_DROP}};

std::string hostname() {
  char buf[HOST_NAME_MAX + 1] = {};
  if (gethostname(buf, sizeof(buf)) != 0) return "localhost";
  return buf;
}

bool valid_instance_name(const std::string& name) {
  if (name.empty() || name.size() > 64 || name == "." || name == "..") return false;
  for (char c : name)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.'))
      return false;
  return true;
}

// fnmatch() takes an unclosed '[' literally, so "w[!" would silently match
// nothing the operator meant: every bracket expression must be closed.
bool brackets_closed(const std::string& pattern) {
  for (std::size_t i = 0; i < pattern.size(); ++i) {
    if (pattern[i] == '\\') {
      ++i;
      continue;
    }
    if (pattern[i] != '[') continue;
    std::size_t j = i + 1;
    if (j < pattern.size() && (pattern[j] == '!' || pattern[j] == '^')) ++j;
    if (j < pattern.size() && pattern[j] == ']') ++j;  // a leading ']' is a member
    while (j < pattern.size() && pattern[j] != ']') ++j;
    if (j >= pattern.size()) return false;
    i = j;
  }
  return true;
}

void check_patterns(const config::Table& table, std::string_view key,
                    const std::vector<std::string>& patterns) {
  for (const auto& pattern : patterns) {
    if (pattern.empty() || pattern.size() > 64 || pattern.find('/') != std::string::npos)
      table.fail(key, "'" + pattern + "' is not a valid interface name pattern");
    if (!brackets_closed(pattern))
      table.fail(key, "'" + pattern +
                          "' has an unclosed '[': close the bracket expression (e.g. "
                          "\"eth[0-9]*\") or escape the bracket as \"\\\\[\"");
  }
}

// Node names end up in logs, metrics labels and peer resources: a DNS name.
std::string node_name_problem(const std::string& name) {
  if (name.empty()) return "must not be empty";
  if (name.size() > 253)
    return "is " + std::to_string(name.size()) + " characters long: at most 253 (a DNS name)";
  for (char c : name)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.' || c == '_'))
      return "contains a character that is not a letter, a digit, '-', '.' or '_' (a DNS "
             "name such as \"node-1\")";
  return {};
}

sl_fault_rule fault_rule(const config::Table& table, std::string_view key,
                         sl_fault_rule fallback) {
  std::string value = table.get_choice(key, fallback == SL_FAULT_DROP ? "drop" : "pass",
                                       {"drop", "pass"});
  return value == "drop" ? SL_FAULT_DROP : SL_FAULT_PASS;
}

// Tables of plugins that are not enabled are kept for later, but only for
// plugins that exist: a misspelt [plugins.conntrak] would otherwise be
// silently ignored and conntrack left at its defaults.
void check_plugin_tables(const config::Table& plugins, const NodeConfig& cfg) {
  std::set<std::string> known(cfg.enabled_plugins.begin(), cfg.enabled_plugins.end());
  std::string dir = cfg.plugin_dir.empty() ? default_plugin_dir() : cfg.plugin_dir;
  std::error_code ec;
  for (std::filesystem::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec))
    if (it->path().extension() == ".so") known.insert(it->path().stem().string());
  for (const auto& [key, node] : plugins.raw()) {
    std::string name(key.str());
    if (!node.is_table() || known.count(name)) continue;
    std::string list;
    for (const auto& k : known) list += (list.empty() ? "" : ", ") + k;
    plugins.fail_at_region(key.source().begin.line ? key.source() : node.source(), name,
                           "no plugin named '" + name + "' is enabled or installed in " + dir +
                               " (known plugins: " + (list.empty() ? "none" : list) +
                               "): fix the table's name");
  }
}

}  // namespace

const char* role_name(sl_role role) { return role < SL_ROLE_COUNT ? kRoleNames[role] : "?"; }
const char* hook_name(sl_hook hook) { return hook == SL_HOOK_INGRESS ? "ingress" : "egress"; }

std::optional<sl_role> role_from_name(std::string_view name) {
  for (unsigned i = 0; i < SL_ROLE_COUNT; ++i)
    if (name == kRoleNames[i]) return static_cast<sl_role>(i);
  return std::nullopt;
}

const char* log_level_name(sl_log_level level) {
  switch (level) {
    case SL_LOG_OFF: return "off";
    case SL_LOG_INFO: return "info";
    case SL_LOG_DEBUG: return "debug";
  }
  return "?";
}

std::optional<sl_log_level> log_level_from_name(std::string_view name) {
  if (name == "off") return SL_LOG_OFF;
  if (name == "info") return SL_LOG_INFO;
  if (name == "debug") return SL_LOG_DEBUG;
  return std::nullopt;
}

std::string format_config_error(const ConfigError& error) {
  std::ostringstream out;
  // No position for a file that could not be read: "file: reason".
  out << error.file;
  if (error.line > 0) out << ":" << error.line << ":" << error.column;
  out << ": ";
  if (!error.key.empty()) out << error.key << ": ";
  out << error.what();
  return out.str();
}

std::string default_plugin_dir() {
  std::error_code ec;
  auto exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (ec) return "/usr/local/lib/sluice/plugins";
  return (exe.parent_path().parent_path() / "lib" / "sluice" / "plugins").string();
}

NodeConfig parse_config(const std::string& text, const std::string& path) {
  NodeConfig cfg;
  cfg.file = path;
  cfg.text = text;
  cfg.node_name = hostname();
  cfg.interfaces.by_role = kDefaultPatterns;
  cfg.rules = kDefaultRules;

  toml::table root = config::parse(text, path);
  config::Table top(root, path, "");
  top.expect_only({"node", "bpf", "interfaces", "pipeline", "plugins", "state", "metrics"});

  if (auto node = top.table("node")) {
    node->expect_only({"name"});
    cfg.node_name = node->get_string("name", cfg.node_name);
    if (auto problem = node_name_problem(cfg.node_name); !problem.empty())
      node->fail("name", problem);
  }

  if (auto bpf = top.table("bpf")) {
    bpf->expect_only({"root", "instance", "log_level"});
    cfg.bpf_root = bpf->get_string("root", cfg.bpf_root);
    if (cfg.bpf_root.empty() || cfg.bpf_root[0] != '/')
      bpf->fail("root", "must be an absolute path (the bpffs mount point, e.g. /sys/fs/bpf)");
    while (cfg.bpf_root.size() > 1 && cfg.bpf_root.back() == '/') cfg.bpf_root.pop_back();
    cfg.instance = bpf->get_string("instance", cfg.instance);
    if (!valid_instance_name(cfg.instance))
      bpf->fail("instance", "'" + cfg.instance +
                                "' is not a valid instance name (letters, digits, '-', '_', "
                                "'.'; at most 64)");
    cfg.log_level = *log_level_from_name(
        bpf->get_choice("log_level", "off", {"off", "info", "debug"}));
  }

  if (auto ifaces = top.table("interfaces")) {
    ifaces->expect_only({"workload", "data", "tunnel", "l3", "ignore"});
    for (unsigned i = 0; i < SL_ROLE_COUNT; ++i) {
      auto& patterns = cfg.interfaces.by_role[i];
      patterns = ifaces->get_string_list(kRoleNames[i], patterns);
      check_patterns(*ifaces, kRoleNames[i], patterns);
    }
    cfg.interfaces.ignore = ifaces->get_string_list("ignore", {});
    check_patterns(*ifaces, "ignore", cfg.interfaces.ignore);
  }

  if (auto pipeline = top.table("pipeline")) {
    pipeline->expect_only({"workload", "data", "tunnel", "l3"});
    for (unsigned i = 0; i < SL_ROLE_COUNT; ++i) {
      if (auto role = pipeline->table(kRoleNames[i])) {
        role->expect_only({"malformed", "missed_tail_call"});
        cfg.rules[i].malformed = fault_rule(*role, "malformed", cfg.rules[i].malformed);
        cfg.rules[i].missed_tail_call =
            fault_rule(*role, "missed_tail_call", cfg.rules[i].missed_tail_call);
      }
    }
  }

  if (auto plugins = top.table("plugins")) {
    // Besides dir and enabled, [plugins.<name>] tables belong to the plugins:
    // each enabled plugin validates its own; others are kept for later.
    for (const auto& [key, node] : plugins->raw()) {
      std::string name(key.str());
      if (name == "dir" || name == "enabled" || name == "optional") continue;
      if (!node.is_table())
        plugins->fail_at(&node, name,
                         "unknown key '" + name +
                             "' (allowed here: dir, enabled, optional, and [plugins.<name>] "
                             "tables)");
    }
    cfg.plugin_dir = plugins->get_string("dir", "");
    cfg.enabled_plugins = plugins->get_string_list("enabled", {});
    for (std::size_t i = 0; i < cfg.enabled_plugins.size(); ++i) {
      const auto& name = cfg.enabled_plugins[i];
      bool ok = !name.empty() && name.size() < SL_REG_NAME_LEN;
      for (char c : name)
        ok = ok && (std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-');
      if (!ok) plugins->fail("enabled", "'" + name + "' is not a valid plugin name");
      for (std::size_t j = 0; j < i; ++j)
        if (cfg.enabled_plugins[j] == name)
          plugins->fail("enabled", "plugin '" + name + "' is listed twice");
    }
    cfg.optional_plugins = plugins->get_string_list("optional", {});
    for (const auto& name : cfg.optional_plugins)
      if (std::find(cfg.enabled_plugins.begin(), cfg.enabled_plugins.end(), name) ==
          cfg.enabled_plugins.end())
        plugins->fail("optional", "plugin '" + name + "' is not in [plugins] enabled");
    check_plugin_tables(*plugins, cfg);
  }

  if (auto state = top.table("state")) {
    state->expect_only({"source", "dir"});
    cfg.state_source = state->get_choice("source", cfg.state_source, {"file"});
    cfg.state_dir = state->get_string("dir", cfg.state_dir);
    if (cfg.state_dir.empty() || cfg.state_dir[0] != '/')
      state->fail("dir", "must be an absolute path");
  }

  if (auto metrics = top.table("metrics")) {
    metrics->expect_only({"listen"});
    cfg.metrics_listen = metrics->get_string("listen", cfg.metrics_listen);
    std::string why;
    if (!cfg.metrics_listen.empty() && !parse_listen_address(cfg.metrics_listen, why))
      metrics->fail("listen", why);
  }
  return cfg;
}

std::optional<ListenAddress> parse_listen_address(std::string_view text, std::string& why) {
  const std::string hint =
      " (expected ADDRESS:PORT such as \"127.0.0.1:9464\", \"[::1]:9464\" or "
      "\"localhost:9464\"; \"\" disables)";
  auto colon = text.rfind(':');
  if (colon == std::string_view::npos || colon == 0 || colon + 1 == text.size()) {
    why = "'" + std::string(text) + "' is not ADDRESS:PORT" + hint;
    return std::nullopt;
  }
  std::string host(text.substr(0, colon));
  std::string_view port_text = text.substr(colon + 1);
  auto port = sluice::parse::port(port_text);
  if (!port) {
    why = port.error() + hint;
    return std::nullopt;
  }
  ListenAddress out;
  out.port = *port;
  if (host == "localhost") host = "127.0.0.1";
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    out.address = host.substr(1, host.size() - 2);
    auto address = parse::ip_address(out.address);
    if (!address || address->family != 6) {
      why = "'" + host + "' is not an IPv6 address" + hint;
      return std::nullopt;
    }
    if (address->words == std::array<std::uint32_t, 4>{}) {
      why = "'" + host + "' listens on every address: name one (e.g. [::1])" + hint;
      return std::nullopt;
    }
    out.ipv6 = true;
    out.loopback = address->words == std::array<std::uint32_t, 4>{0, 0, 0, htonl(1)};
    return out;
  }
  auto address = parse::ip_address(host);
  if (!address || address->family != 4) {
    why = "'" + host + "' is not an IPv4 address, a bracketed IPv6 address or localhost" + hint;
    return std::nullopt;
  }
  if (address->words[0] == htonl(INADDR_ANY)) {
    why = "'" + host + "' listens on every address: name one (e.g. 127.0.0.1)" + hint;
    return std::nullopt;
  }
  out.address = host;
  out.loopback = (ntohl(address->words[0]) >> 24) == 127;
  return out;
}

NodeConfig load_config(const std::string& path) {
  std::string text;
  try {
    read_regular_file(path, text);
  } catch (const Error& error) {
    throw ConfigError(path, 0, 0, "", "cannot read the config file: " + std::string(error.what()));
  }
  if (text.find_first_not_of(" \t\r\n") == std::string::npos)
    throw ConfigError(path, 0, 0, "",
                      "the config file is empty: write at least [node] name = \"...\" "
                      "(see configs/sluice.toml)");
  return parse_config(text, path);
}

}  // namespace sluice
