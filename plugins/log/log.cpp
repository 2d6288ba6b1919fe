// The log plugin: one stage that writes packet events to Sluice's shared ring
// buffer (sl_events) for `sluicectl monitor`, for every packet or for those
// matching up to LOG_MAX_RULES rules. It never changes a verdict.
//
// [plugins.log]
//   order  = 900                      position in the chains
//   filter = "off" | "all" | "match"  default: "match" when rules are given,
//                                     otherwise "off"
//   [[plugins.log.match]]             up to 8; a packet is logged when any
//   interface, protocol, source,      rule matches; a rule matches when all
//   destination, source_port,         of its fields do
//   destination_port
#include <arpa/inet.h>
#include <net/if.h>
#include <unistd.h>
#include <netinet/in.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <ostream>

#include <sluice/cli.hpp>
#include <sluice/config.hpp>
#include <sluice/metrics.hpp>
#include <sluice/output.hpp>
#include <sluice/parse.hpp>
#include <sluice/plugin.hpp>
#include <sluice/skeleton.hpp>
#include <sluice/unique_fd.hpp>

#include "log_layout.h"
#include "log_stage.skel.h"

namespace {

using sluice::ConfigError;
using sluice::config::Table;

constexpr std::uint16_t kEthPIp = 0x0800;
constexpr std::uint16_t kEthPIpv6 = 0x86DD;

const char* mode_name(log_mode mode) {
  switch (mode) {
    case LOG_MODE_OFF: return "off";
    case LOG_MODE_ALL: return "all";
    case LOG_MODE_MATCH: return "match";
  }
  return "?";
}

using LogSkeleton = sluice::Skeleton<log_stage, log_stage__destroy>;

// The network and mask of a prefix as the stage compares them, both in
// network byte order, IPv4 in word 0.
void write_prefix(const sluice::IpPrefix& prefix, __be32* net, __be32* mask) {
  sluice::IpAddress ones{prefix.addr.family, {0xffffffffu, 0, 0, 0}};
  if (prefix.addr.family == 6) ones.words = {0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu};
  const sluice::IpAddress mask_bits = sluice::parse::network_of(ones, prefix.length);
  std::memcpy(net, prefix.addr.words.data(), 16);
  std::memcpy(mask, mask_bits.words.data(), 16);
}

using sluice::parse::protocol_text;

struct MatchRule {
  std::string interface;  // resolved to an ifindex at load time
  log_rule rule{};
};

MatchRule parse_rule(const Table& table) {
  table.expect_only({"interface", "protocol", "source", "destination", "source_port",
                     "destination_port"});
  MatchRule out;
  log_rule& rule = out.rule;
  rule.fields = LOG_F_USED;
  if (table.raw().empty()) {
    const auto& where = table.raw().source();
    throw ConfigError(table.file(), where.begin.line, where.begin.column, table.path(),
                      "an empty match rule matches every packet: set filter = \"all\" instead, "
                      "or give it at least one of interface, protocol, source, destination, "
                      "source_port, destination_port");
  }

  if (table.has("interface")) {
    out.interface = table.get_string("interface", "");
    if (out.interface.empty() || out.interface.size() >= IF_NAMESIZE ||
        out.interface.find_first_of("/: \t") != std::string::npos || out.interface == "." ||
        out.interface == "..")
      table.fail("interface", "'" + out.interface + "' is not a valid interface name (1.." +
                                  std::to_string(IF_NAMESIZE - 1) +
                                  " characters, no '/', ':' or spaces)");
    rule.fields |= LOG_F_IFINDEX;
  }

  std::uint16_t l3_proto = 0;
  const char* family_key = nullptr;
  auto prefix = [&](const char* key, std::uint32_t field, __be32* net, __be32* mask) {
    std::optional<sluice::IpPrefix> parsed = table.get_prefix(key);
    if (!parsed) return;
    const std::uint16_t family = parsed->addr.family == 6 ? kEthPIpv6 : kEthPIp;
    if (l3_proto && l3_proto != family)
      table.fail(key, std::string("mixes IPv4 and IPv6 with ") + family_key +
                          ": no packet can match this rule");
    l3_proto = family;
    family_key = key;
    write_prefix(*parsed, net, mask);
    rule.fields |= field;
  };
  prefix("source", LOG_F_SRC, rule.src, rule.src_mask);
  prefix("destination", LOG_F_DST, rule.dst, rule.dst_mask);
  if (l3_proto) {
    rule.fields |= LOG_F_L3_PROTO;
    rule.l3_proto = l3_proto;
  }

  int protocol = -1;
  if (table.has("protocol")) {
    protocol = table.get_protocol("protocol", 0);
    if (protocol == 0)
      table.fail("protocol", "protocol 0 is not matched by the log stage: use tcp, udp, sctp, "
                             "icmp, icmpv6 or a number 1-255");
    if (protocol == IPPROTO_ICMP && l3_proto == kEthPIpv6)
      table.fail("protocol", "icmp never carries IPv6 addresses: use icmpv6");
    if (protocol == IPPROTO_ICMPV6 && l3_proto == kEthPIp)
      table.fail("protocol", "icmpv6 never carries IPv4 addresses: use icmp");
    rule.fields |= LOG_F_IP_PROTO;
    rule.ip_proto = static_cast<__u8>(protocol);
  }

  auto port = [&](const char* key, std::uint32_t field, __be16& out_port) {
    if (!table.has(key)) return;
    const std::uint16_t value = table.get_port(key, 0);
    if (protocol != -1 && !sluice::parse::has_ports(protocol))
      table.fail(key, "ports exist only for tcp, udp and sctp, not protocol " +
                          protocol_text(protocol));
    out_port = htons(value);
    rule.fields |= field;
  };
  port("source_port", LOG_F_SPORT, rule.sport);
  port("destination_port", LOG_F_DPORT, rule.dport);
  return out;
}


using MapFd = sluice::UniqueFd;

// Opens <map_pin_dir>/<name> and checks its value size; throws with the pin
// path and what to do.
MapFd open_pinned_map(const std::string& map_pin_dir, const char* name,
                      std::uint32_t value_size) {
  std::string path = map_pin_dir + "/" + name;
  MapFd fd(bpf_obj_get(path.c_str()));
  if (!fd) {
    int err = errno;
    if (err == ENOENT)
      throw sluice::Error("map " + std::string(name) + " is not pinned (" + path +
                              " is missing)",
                          "start sluiced with the log plugin enabled and this configuration");
    throw sluice::Error("cannot open map " + path + ": " + sluice::errno_text(err),
                        err == EPERM || err == EACCES
                            ? "run as root or with CAP_BPF: reading Sluice's maps needs it"
                            : "");
  }
  bpf_map_info info{};
  __u32 info_len = sizeof(info);
  if (bpf_obj_get_info_by_fd(fd.get(), &info, &info_len) != 0)
    throw sluice::Error("cannot inspect map " + path + ": " + sluice::errno_text(errno));
  if (info.value_size != value_size)
    throw sluice::Error("map " + path + " has " + std::to_string(info.value_size) +
                            "-byte values, this log plugin expects " +
                            std::to_string(value_size),
                        "use the plugin that came with the running sluiced");
  return fd;
}

// log_stats summed over all CPUs.
struct LogTotals {
  std::uint64_t events = 0;
  std::uint64_t lost = 0;
};

LogTotals read_log_totals(int stats_fd) {
  int cpus = libbpf_num_possible_cpus();
  if (cpus <= 0) throw sluice::Error("cannot count the possible CPUs: " + sluice::errno_text(cpus));
  std::vector<log_stats> per_cpu(static_cast<std::size_t>(cpus));
  std::uint32_t zero = 0;
  if (bpf_map_lookup_elem(stats_fd, &zero, per_cpu.data()) != 0)
    throw sluice::Error(std::string("cannot read " LOG_MAP_STATS ": ") +
                        sluice::errno_text(errno));
  LogTotals totals;
  for (const auto& cpu : per_cpu) {
    totals.events += cpu.events;
    totals.lost += cpu.lost;
  }
  return totals;
}

int prefix_length(const __be32* mask, int words) {
  int bits = 0;
  for (int i = 0; i < words; ++i) bits += __builtin_popcount(ntohl(mask[i]));
  return bits;
}

std::string prefix_text(const __be32* net, const __be32* mask, std::uint16_t l3_proto) {
  bool v6 = l3_proto == kEthPIpv6;
  char buffer[INET6_ADDRSTRLEN] = {};
  inet_ntop(v6 ? AF_INET6 : AF_INET, net, buffer, sizeof(buffer));
  int bits = prefix_length(mask, v6 ? 4 : 1);
  return std::string(buffer) + (bits == (v6 ? 128 : 32) ? "" : "/" + std::to_string(bits));
}

// A rule of the pinned log_rules map as the fields of a [[plugins.log.match]].
sluice::output::Json rule_json(const log_rule& rule) {
  auto out = sluice::output::Json::object();
  if (rule.fields & LOG_F_IFINDEX) {
    char name[IF_NAMESIZE] = {};
    out["interface"] = rule.ifindex && if_indextoname(rule.ifindex, name)
                           ? std::string(name)
                           : "ifindex " + std::to_string(rule.ifindex);
  }
  if (rule.fields & LOG_F_IP_PROTO) out["protocol"] = protocol_text(rule.ip_proto);
  if (rule.fields & LOG_F_SRC) out["source"] = prefix_text(rule.src, rule.src_mask, rule.l3_proto);
  if (rule.fields & LOG_F_DST)
    out["destination"] = prefix_text(rule.dst, rule.dst_mask, rule.l3_proto);
  if (rule.fields & LOG_F_SPORT) out["source_port"] = static_cast<unsigned>(ntohs(rule.sport));
  if (rule.fields & LOG_F_DPORT)
    out["destination_port"] = static_cast<unsigned>(ntohs(rule.dport));
  return out;
}

std::string rule_text(const log_rule& rule) {
  std::string text;
  auto add = [&](const std::string& part) { text += (text.empty() ? "" : " ") + part; };
  if (rule.fields & LOG_F_IFINDEX) {
    char name[IF_NAMESIZE] = {};
    add("interface=" + (rule.ifindex && if_indextoname(rule.ifindex, name)
                            ? std::string(name)
                            : "ifindex:" + std::to_string(rule.ifindex)));
  }
  if (rule.fields & LOG_F_IP_PROTO) add("protocol=" + protocol_text(rule.ip_proto));
  if (rule.fields & LOG_F_SRC) add("source=" + prefix_text(rule.src, rule.src_mask, rule.l3_proto));
  if (rule.fields & LOG_F_DST)
    add("destination=" + prefix_text(rule.dst, rule.dst_mask, rule.l3_proto));
  if (rule.fields & LOG_F_SPORT) add("source_port=" + std::to_string(ntohs(rule.sport)));
  if (rule.fields & LOG_F_DPORT) add("destination_port=" + std::to_string(ntohs(rule.dport)));
  return text;
}

// `sluicectl log stats`
int run_log_stats(const sluice::CliContext& context, log_mode configured_mode) {
  using sluice::output::Json;
  using sluice::output::Table;
  std::ostream& out = *context.out;
  MapFd stats_fd = open_pinned_map(context.map_pin_dir, LOG_MAP_STATS, sizeof(log_stats));
  LogTotals totals = read_log_totals(stats_fd.get());

  // The rules the running stage matches against, when they can be read.
  std::vector<log_rule> rules;
  std::string rules_note;
  try {
    MapFd rules_fd = open_pinned_map(context.map_pin_dir, LOG_MAP_RULES, sizeof(log_rule));
    for (std::uint32_t slot = 0; slot < LOG_MAX_RULES; ++slot) {
      log_rule rule{};
      if (bpf_map_lookup_elem(rules_fd.get(), &slot, &rule) != 0)
        throw sluice::Error(std::string("cannot read " LOG_MAP_RULES ": ") +
                            sluice::errno_text(errno));
      if (rule.fields & LOG_F_USED) rules.push_back(rule);
    }
  } catch (const std::exception& error) {
    rules_note = error.what();
  }

  if (context.json()) {
    Json doc = Json::object();
    doc["events"] = totals.events;
    doc["lost"] = totals.lost;
    doc["filter"] = mode_name(configured_mode);
    if (rules_note.empty()) {
      Json list = Json::array();
      for (const auto& rule : rules) list.push_back(rule_json(rule));
      doc["rules"] = std::move(list);
    } else {
      doc["rules"] = nullptr;
      doc["rules_note"] = rules_note;
    }
    sluice::output::print(out, doc);
    return sluice::kCliOk;
  }
  Table table({{"WHAT"}, {"VALUE"}});
  table.add_row({"events written", std::to_string(totals.events)});
  table.add_row({"events lost", std::to_string(totals.lost) +
                                    (totals.lost ? " (sl_events was full: read it faster)" : "")});
  table.add_row({"filter", std::string(mode_name(configured_mode)) + " (configured)"});
  if (!rules_note.empty())
    table.add_row({"rules", "unreadable: " + rules_note});
  else if (rules.empty())
    table.add_row({"rules", "none"});
  else
    for (std::size_t i = 0; i < rules.size(); ++i)
      table.add_row({"rule " + std::to_string(i), rule_text(rules[i])});
  table.print(out);
  return sluice::kCliOk;
}

class LogPlugin final : public sluice::Plugin {
 public:
  std::string description() const override {
    return "packet events for `sluicectl monitor` (all packets or matching ones)";
  }

  void configure(const sluice::ConfigSource& source) override {
    sluice::config::PluginTable plugin_table(source);
    const Table& table = plugin_table.table();
    table.expect_only({"order", "filter", "match"});
    order_ = static_cast<int>(table.get_int("order", sluice::order::kLog, 0, 65535));

    std::vector<Table> rule_tables = table.get_table_list("match");
    if (rule_tables.size() > LOG_MAX_RULES)
      throw ConfigError(rule_tables[LOG_MAX_RULES].file(),
                        rule_tables[LOG_MAX_RULES].raw().source().begin.line,
                        rule_tables[LOG_MAX_RULES].raw().source().begin.column,
                        rule_tables[LOG_MAX_RULES].path(),
                        "too many match rules: at most " + std::to_string(LOG_MAX_RULES));
    rules_.clear();
    for (const Table& rule_table : rule_tables) rules_.push_back(parse_rule(rule_table));

    if (table.has("filter")) {
      std::string filter = table.get_choice("filter", "off", {"off", "all", "match"});
      mode_ = filter == "all" ? LOG_MODE_ALL : filter == "match" ? LOG_MODE_MATCH : LOG_MODE_OFF;
    } else {
      mode_ = rules_.empty() ? LOG_MODE_OFF : LOG_MODE_MATCH;
    }
    if (mode_ == LOG_MODE_MATCH && rules_.empty())
      table.fail("filter", "filter = \"match\" needs at least one [[" + table.path() +
                               ".match]] rule");
    if (mode_ != LOG_MODE_MATCH && !rules_.empty())
      table.fail("filter", std::string("filter = \"") + mode_name(mode_) +
                               "\" but match rules are given: set filter = \"match\" to use "
                               "them, or remove them");
  }

  // Off means absent: no stage in any chain costs nothing at all, and the
  // mode can only change with a restart anyway (it is compiled in).
  std::vector<sluice::StageSpec> stages() const override {
    if (mode_ == LOG_MODE_OFF) return {};
    // It must see what it is asked to log: every packet, on both hooks.
    sluice::StageSpec stage{"log", "log_packet", sluice::kAllRoles, sluice::kBothHooks, order_};
    stage.every_packet_hooks = sluice::kBothHooks;
    stage.may = 0;
    return {stage};
  }

  void load(sluice::Host& host) override {
    std::string pin_root = host.map_pin_dir();
    LIBBPF_OPTS(bpf_object_open_opts, opts, .pin_root_path = pin_root.c_str());
    LogSkeleton skel(log_stage__open_opts(&opts));
    if (!skel)
      throw sluice::Error("log: cannot open the log stage BPF object: " +
                          sluice::errno_text(errno));
    skel->rodata->log_mode = mode_;
    skel->rodata->log_rule_count = static_cast<__u32>(rules_.size());
    host.load_bpf("log stage", [&] { return log_stage__load(skel.get()); });

    // Every slot is written, so rules of an earlier run never linger in the
    // pinned map.
    for (std::uint32_t slot = 0; slot < LOG_MAX_RULES; ++slot) {
      log_rule value{};
      if (slot < rules_.size()) {
        value = rules_[slot].rule;
        const std::string& name = rules_[slot].interface;
        if (!name.empty()) {
          value.ifindex = if_nametoindex(name.c_str());
          if (value.ifindex == 0)
            host.log(sluice::LogLevel::warn,
                     "log: match rule " + std::to_string(slot) + ": interface '" + name +
                         "' does not exist; the rule matches nothing until sluiced restarts "
                         "(or reloads) with the interface present");
        }
      }
      if (bpf_map__update_elem(skel->maps.log_rules, &slot, sizeof(slot), &value, sizeof(value),
                               BPF_ANY) != 0)
        throw sluice::Error("log: cannot write log_rules[" + std::to_string(slot) +
                            "]: " + sluice::errno_text(errno));
    }
    host.log(sluice::LogLevel::info,
             std::string("log: filter = \"") + mode_name(mode_) + "\"" +
                 (mode_ == LOG_MODE_MATCH ? ", " + std::to_string(rules_.size()) + " rule(s)"
                                          : std::string()));
    skel_ = std::move(skel);
  }

  int stage_fd(std::string_view stage) const override {
    if (stage != "log" || !skel_) return -1;
    return bpf_program__fd(skel_->progs.log_packet);
  }

  bool stage_object(std::string_view stage, sluice::StageObject& out) const override {
    return stage == "log" && sluice::describe_skeleton(skel_.get(), out);
  }

  std::vector<sluice::CliCommand> cli_commands() const override {
    sluice::CliCommand stats;
    stats.path = {"log", "stats"};
    stats.summary = "packet events written and lost by the log plugin";
    stats.description =
        "Prints how many packet events the log stage wrote to the sl_events ring buffer\n"
        "(what `sluicectl monitor` streams) and how many it lost because the buffer was\n"
        "full, summed over all CPUs from the pinned log_stats map, together with the\n"
        "configured filter and the match rules the running stage uses (log_rules).\n"
        "\n"
        "JSON: {events, lost, filter, rules: [{interface, protocol, source,\n"
        "destination, source_port, destination_port}]} (a rule lists only its fields).\n"
        "\n"
        "Examples:\n"
        "  sluicectl log stats\n"
        "  sluicectl log stats -o json";
    log_mode mode = mode_;
    stats.run = [mode](const sluice::CliContext& context, const sluice::CliValues&) {
      return run_log_stats(context, mode);
    };
    return {stats};
  }

  void write_metrics(sluice::MetricsWriter& out) const override {
    if (!skel_) return;
    LogTotals totals = read_log_totals(bpf_map__fd(skel_->maps.log_stats));
    out.counter("sluice_log_events_total", "Packet events the log stage wrote to sl_events", {},
                static_cast<double>(totals.events));
    out.counter("sluice_log_events_lost_total",
                "Packet events the log stage lost because sl_events was full", {},
                static_cast<double>(totals.lost));
  }

 private:
  int order_ = sluice::order::kLog;
  log_mode mode_ = LOG_MODE_OFF;
  std::vector<MatchRule> rules_;
  LogSkeleton skel_;
};

}  // namespace

SLUICE_PLUGIN(LogPlugin, "log", "0.1.0")
