// The conntrack plugin: owns Sluice's shared connection tracking table
// (sl_conntrack, layout in <sluice/bpf/conntrack.h>), adds the conntrack
// stage at order 100 to every chain and expires entries with a cleaner
// program run from a thread. See README.md.
//
// [plugins.conntrack]
//   table_size = 262144                 entries (fixed when the map is first created)
//   table_full = "drop-new"             or "pass-untracked"
//   tcp_midstream_pickup = true         track TCP flows seen without their SYN
//   clean_interval = 10                 seconds between cleaner passes
//   fast_path = true                    redirect answered flows past the host stack
//   [plugins.conntrack.timeouts]        seconds (integer) or "30s", "5m", "1h"
//   tcp_syn = 20, tcp_established = 3600, tcp_fin = 30, tcp_rst = 40,
//   udp = 60, icmp = 5, other = 600
#include <arpa/inet.h>
#include <netinet/in.h>
#include <time.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <array>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <ostream>
#include <string>
#include <thread>
#include <vector>

#include <sluice/bpf/conntrack.h>
#include <sluice/cli.hpp>
#include <sluice/config.hpp>
#include <sluice/metrics.hpp>
#include <sluice/maps.hpp>
#include <sluice/output.hpp>
#include <sluice/clock.hpp>
#include <sluice/plugin.hpp>
#include <sluice/unique_fd.hpp>

#include "conntrack_cleaner.skel.h"
#include "conntrack_layout.h"
#include "conntrack_stage.skel.h"

namespace {

using sluice::ConfigError;
using sluice::config::Table;
using sluice::output::Json;

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
  std::array<std::uint32_t, SL_CT_TO_COUNT> timeouts{};
};

// An integer number of seconds, or a string "<n>s", "<n>m", "<n>h".
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

// ---- reading the table -------------------------------------------------------

struct Entry {
  sl_ct_key key;
  sl_ct_value value;
};

std::vector<Entry> read_entries(int fd) {
  std::vector<Entry> out;
  sluice::for_each_entry<sl_ct_key, sl_ct_value>(
      fd, [&](const sl_ct_key& key, const sl_ct_value& value) { out.push_back({key, value}); });
  return out;
}

std::string proto_name(int proto) {
  switch (proto) {
    case IPPROTO_TCP: return "TCP";
    case IPPROTO_UDP: return "UDP";
    case IPPROTO_ICMP: return "ICMP";
    case IPPROTO_ICMPV6: return "ICMPv6";
    case IPPROTO_SCTP: return "SCTP";
  }
  return std::to_string(proto);
}

std::optional<int> parse_proto(const std::string& text) {
  if (text == "any") return -1;
  static const std::pair<const char*, int> names[] = {
      {"tcp", IPPROTO_TCP}, {"udp", IPPROTO_UDP}, {"icmp", IPPROTO_ICMP},
      {"icmpv6", IPPROTO_ICMPV6}, {"sctp", IPPROTO_SCTP}};
  std::string lower;
  for (char c : text) lower += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  for (const auto& [name, number] : names)
    if (lower == name) return number;
  int value = -1;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (!text.empty() && ec == std::errc() && end == text.data() + text.size() && value >= 0 &&
      value <= 255)
    return value;
  return std::nullopt;
}

std::string state_name(std::uint32_t state) {
  switch (state) {
    case SL_CT_ST_ACTIVE: return "ACTIVE";
    case SL_CT_ST_SYN_SENT: return "SYN-SENT";
    case SL_CT_ST_SYN_RECV: return "SYN-RECV";
    case SL_CT_ST_ESTABLISHED: return "ESTABLISHED";
    case SL_CT_ST_FIN_WAIT: return "FIN-WAIT";
    case SL_CT_ST_CLOSED: return "CLOSED";
    case SL_CT_ST_RESET: return "RESET";
  }
  return "?";
}

std::string type_name(std::uint32_t type) {
  switch (type) {
    case SL_CT_TYPE_NORMAL: return "NORMAL";
    case SL_CT_TYPE_NAT_FWD: return "NAT_FWD";
    case SL_CT_TYPE_NAT_REV: return "NAT_REV";
  }
  return std::to_string(type);
}

std::vector<std::string> flag_names(std::uint32_t flags) {
  static const std::pair<std::uint32_t, const char*> names[] = {
      {SL_CT_F_NAT_OUT, "nat-out"}, {SL_CT_F_DSR, "fwd-dsr"},     {SL_CT_F_NP_FWD, "np-fwd"},
      {SL_CT_F_EXT_LOCAL, "ext-local"}, {SL_CT_F_BA, "B-A"}, {SL_CT_F_SVC_SELF, "svc-self"},
      {SL_CT_F_SRC_NAT, "src-nat"},     {SL_CT_F_NODE_ADDR, "node-addr"},
      {SL_CT_F_MIDSTREAM, "midstream"}};
  std::vector<std::string> out;
  for (const auto& [bit, name] : names)
    if (flags & bit) out.emplace_back(name);
  for (std::uint32_t bit = 1; bit; bit <<= 1) {
    bool known = false;
    for (const auto& [b, name] : names) known = known || b == bit;
    if ((flags & bit) && !known) {
      char text[16];
      std::snprintf(text, sizeof(text), "0x%x", bit);
      out.emplace_back(text);
    }
  }
  return out;
}

std::string leg_flag_text(std::uint32_t flags) {
  std::string out;
  auto add = [&](std::uint32_t bit, const char* name) {
    if (flags & bit) out += (out.empty() ? "" : ",") + std::string(name);
  };
  add(SL_CT_LEG_SYN, "syn");
  add(SL_CT_LEG_ACK, "ack");
  add(SL_CT_LEG_FIN, "fin");
  add(SL_CT_LEG_RST, "rst");
  add(SL_CT_LEG_APPROVED, "approved");
  return out.empty() ? "-" : out;
}

std::string address(std::uint8_t family, const __be32* words) {
  return sluice::output::address_text(family == 6, words);
}

std::string endpoint(std::uint8_t family, const __be32* words, __be16 port) {
  return sluice::output::endpoint_text(family == 6, words, port);
}

std::string seconds_text(std::uint64_t ns) {
  char text[32];
  std::snprintf(text, sizeof(text), "%.1fs", static_cast<double>(ns) / 1e9);
  return text;
}

bool has_ports(std::uint8_t proto) {
  return proto == IPPROTO_TCP || proto == IPPROTO_UDP || proto == IPPROTO_SCTP;
}

// The opener's side first: "TCP 10.0.0.9:42642 -> 10.96.0.50:8385"; a
// source-NATed flow (svc-self, src-nat) shows the client before its NAT.
std::string flow_text(const sl_ct_key& key, const sl_ct_value& value) {
  bool ba = value.flags & SL_CT_F_BA;
  const __be32* src = ba ? key.addr_b : key.addr_a;
  const __be32* dst = ba ? key.addr_a : key.addr_b;
  __be16 sport = ba ? key.port_b : key.port_a, dport = ba ? key.port_a : key.port_b;
  std::string out = proto_name(key.proto) + " ";
  if (has_ports(key.proto)) {
    if (value.type == SL_CT_TYPE_NAT_REV && (value.flags & (SL_CT_F_SVC_SELF | SL_CT_F_SRC_NAT)))
      out += endpoint(key.family, value.orig_src, value.orig_sport) + " (as " +
             endpoint(key.family, src, sport) + ") -> ";
    else
      out += endpoint(key.family, src, sport) + " -> ";
    if (value.type == SL_CT_TYPE_NAT_REV)
      out += endpoint(key.family, value.orig_dst, value.orig_dport) + " -> ";
    out += endpoint(key.family, dst, dport);
  } else {
    out += address(key.family, src) + " -> " + address(key.family, dst);
    if (key.proto == IPPROTO_ICMP || key.proto == IPPROTO_ICMPV6)
      out += " id " + std::to_string(ntohs(key.port_a));
  }
  return out;
}

Json leg_json(const sl_ct_leg& leg) {
  Json out = Json::object();
  out["packets"] = static_cast<unsigned long long>(leg.packets);
  out["bytes"] = static_cast<unsigned long long>(leg.bytes);
  out["ifindex"] = leg.ifindex;
  Json flags = Json::array();
  for (auto [bit, name] : {std::pair{SL_CT_LEG_SYN, "syn"}, {SL_CT_LEG_ACK, "ack"},
                           {SL_CT_LEG_FIN, "fin"}, {SL_CT_LEG_RST, "rst"},
                           {SL_CT_LEG_APPROVED, "approved"}})
    if (leg.flags & bit) flags.push_back(name);
  out["flags"] = std::move(flags);
  return out;
}

Json key_json(const sl_ct_key& key) {
  Json out = Json::object();
  out["proto"] = static_cast<int>(key.proto);
  out["a"] = address(key.family, key.addr_a);
  out["port_a"] = static_cast<int>(ntohs(key.port_a));
  out["b"] = address(key.family, key.addr_b);
  out["port_b"] = static_cast<int>(ntohs(key.port_b));
  return out;
}

Json entry_json(const Entry& e, std::uint64_t now) {
  const sl_ct_key& key = e.key;
  const sl_ct_value& v = e.value;
  Json out = Json::object();
  out["proto"] = proto_name(key.proto);
  out["family"] = key.family == 6 ? "ipv6" : "ipv4";
  out["type"] = type_name(v.type);
  out["key"] = key_json(key);
  Json flags = Json::array();
  for (auto& name : flag_names(v.flags)) flags.push_back(name);
  out["flags"] = std::move(flags);
  if (v.type == SL_CT_TYPE_NAT_FWD) {
    out["rev_key"] = key_json(v.rev_key);
    return out;
  }
  bool ba = v.flags & SL_CT_F_BA;
  out["src"] = address(key.family, ba ? key.addr_b : key.addr_a);
  out["sport"] = static_cast<int>(ntohs(ba ? key.port_b : key.port_a));
  out["dst"] = address(key.family, ba ? key.addr_a : key.addr_b);
  out["dport"] = static_cast<int>(ntohs(ba ? key.port_a : key.port_b));
  out["state"] = state_name(sl_ct_state_of(key.proto, &v));
  out["last_seen_ago_ms"] = static_cast<unsigned long long>((now - v.last_seen_ns) / 1000000);
  out["age_ms"] = static_cast<unsigned long long>((now - v.created_ns) / 1000000);
  out["a_to_b"] = leg_json(v.legs[0]);
  out["b_to_a"] = leg_json(v.legs[1]);
  if (v.type == SL_CT_TYPE_NAT_REV) {
    out["orig_dst"] = address(key.family, v.orig_dst);
    out["orig_dport"] = static_cast<int>(ntohs(v.orig_dport));
    if (v.flags & (SL_CT_F_SVC_SELF | SL_CT_F_SRC_NAT)) {
      out["orig_src"] = address(key.family, v.orig_src);
      out["orig_sport"] = static_cast<int>(ntohs(v.orig_sport));
    }
  }
  if (v.flags & SL_CT_F_NP_FWD) out["tun_ip"] = address(key.family, v.tun_ip);
  return out;
}

std::string raw_text(const Entry& e, std::uint64_t now) {
  const sl_ct_key& key = e.key;
  const sl_ct_value& v = e.value;
  std::string flags;
  for (auto& name : flag_names(v.flags)) flags += " " + name;
  char head[64];
  std::snprintf(head, sizeof(head), "Flags:0x%x", v.flags);
  std::string out = "ConntrackKey{proto=" + std::to_string(key.proto) + " " +
                    endpoint(key.family, key.addr_a, key.port_a) + " <-> " +
                    endpoint(key.family, key.addr_b, key.port_b) + "} -> Entry{Type:" +
                    std::to_string(v.type) + " (" + type_name(v.type) + "), " + head + flags;
  if (v.type == SL_CT_TYPE_NAT_FWD) {
    return out + ", RevKey:{proto=" + std::to_string(v.rev_key.proto) + " " +
           endpoint(v.rev_key.family, v.rev_key.addr_a, v.rev_key.port_a) + " <-> " +
           endpoint(v.rev_key.family, v.rev_key.addr_b, v.rev_key.port_b) + "}}";
  }
  auto leg = [](const sl_ct_leg& l) {
    return "{packets:" + std::to_string(l.packets) + " bytes:" + std::to_string(l.bytes) +
           " ifindex:" + std::to_string(l.ifindex) + " " + leg_flag_text(l.flags) + "}";
  };
  out += ", Created:" + seconds_text(now - v.created_ns) + " ago, LastSeen:" +
         seconds_text(now - v.last_seen_ns) + " ago, State:" +
         state_name(sl_ct_state_of(key.proto, &v)) + ", A2B:" + leg(v.legs[0]) +
         ", B2A:" + leg(v.legs[1]);
  if (v.flags & SL_CT_F_NP_FWD) out += ", TunIP:" + address(key.family, v.tun_ip);
  if (v.type == SL_CT_TYPE_NAT_REV)
    out += ", OrigDst:" + endpoint(key.family, v.orig_dst, v.orig_dport);
  if (v.type == SL_CT_TYPE_NAT_REV && (v.flags & (SL_CT_F_SVC_SELF | SL_CT_F_SRC_NAT)))
    out += ", OrigSrc:" + endpoint(key.family, v.orig_src, v.orig_sport);
  return out + "}";
}

// ---- pinned maps for CLI commands ---------------------------------------------

using Fd = sluice::UniqueFd;

std::string table_pin(const std::string& map_pin_dir) {
  return map_pin_dir + "/" SL_MAP_CONNTRACK;
}

int open_table(const sluice::CliContext& context, Fd& fd) {
  std::string path = table_pin(context.map_pin_dir);
  fd.reset(bpf_obj_get(path.c_str()));
  if (!fd) {
    *context.err << "conntrack: cannot open " << path << ": " << std::strerror(errno)
                 << " (is the conntrack plugin loaded by sluiced?)\n";
    return sluice::kCliFailure;
  }
  return sluice::kCliOk;
}

std::uint32_t max_entries_of(int fd) {
  bpf_map_info info{};
  std::uint32_t len = sizeof(info);
  if (bpf_obj_get_info_by_fd(fd, &info, &len) != 0) return 0;
  return info.max_entries;
}

// The max_entries of an already pinned table, if any.
std::optional<std::uint32_t> pinned_size(const std::string& map_pin_dir) {
  Fd fd(bpf_obj_get(table_pin(map_pin_dir).c_str()));
  if (!fd) return std::nullopt;
  return max_entries_of(fd.get());
}

ct_stats read_stats(int fd) {
  ct_stats total{};
  int ncpus = libbpf_num_possible_cpus();
  if (ncpus <= 0) return total;
  std::vector<ct_stats> per_cpu(static_cast<std::size_t>(ncpus));
  std::uint32_t zero = 0;
  if (bpf_map_lookup_elem(fd, &zero, per_cpu.data()) != 0) return total;
  for (const auto& s : per_cpu) {
    total.created += s.created;
    total.full_dropped += s.full_dropped;
    total.full_passed += s.full_passed;
  }
  return total;
}

struct CleanerDestroyer {
  void operator()(conntrack_cleaner* skel) const { conntrack_cleaner__destroy(skel); }
};
using CleanerSkeleton = std::unique_ptr<conntrack_cleaner, CleanerDestroyer>;
struct StageDestroyer {
  void operator()(conntrack_stage* skel) const { conntrack_stage__destroy(skel); }
};
using StageSkeleton = std::unique_ptr<conntrack_stage, StageDestroyer>;

// Opens and loads the cleaner against the pinned table (and only it).
CleanerSkeleton open_cleaner(const std::string& map_pin_dir, std::uint32_t table_size,
                             const Settings& settings, std::string& error) {
  LIBBPF_OPTS(bpf_object_open_opts, opts, .pin_root_path = map_pin_dir.c_str());
  CleanerSkeleton skel(conntrack_cleaner__open_opts(&opts));
  if (!skel) {
    error = std::string("cannot open the conntrack cleaner BPF object: ") + std::strerror(errno);
    return nullptr;
  }
  bpf_map__set_max_entries(skel->maps.sl_conntrack, table_size);
  for (std::size_t i = 0; i < SL_CT_TO_COUNT; ++i)
    skel->rodata->ct_timeouts[i] = settings.timeouts[i];
  return skel;
}

struct CleanResult {
  std::uint32_t scanned = 0;
  std::uint32_t deleted = 0;
};

int run_cleaner(int prog_fd, bool all, CleanResult& result) {
  ct_clean_ctx ctx{};
  ctx.all = all ? 1 : 0;
  LIBBPF_OPTS(bpf_test_run_opts, opts, .ctx_in = &ctx, .ctx_size_in = sizeof(ctx));
  if (bpf_prog_test_run_opts(prog_fd, &opts) != 0) return errno;
  result.scanned = ctx.scanned;
  result.deleted = ctx.deleted;
  return 0;
}

// ---- CLI commands -------------------------------------------------------------

int run_dump(const sluice::CliContext& context) {
  bool raw = false;
  for (const auto& arg : context.args) {
    if (arg == "--raw") {
      raw = true;
    } else {
      *context.err << "conntrack dump: unknown argument '" << arg << "' (usage: conntrack dump [--raw])\n";
      return sluice::kCliUsage;
    }
  }
  Fd fd;
  if (int rc = open_table(context, fd)) return rc;
  std::vector<Entry> entries = read_entries(fd.get());
  std::uint64_t now = sluice::monotonic_ns();
  if (context.json()) {
    Json out = Json::array();
    for (const auto& e : entries)
      if (raw || e.value.type != SL_CT_TYPE_NAT_FWD) out.push_back(entry_json(e, now));
    *context.out << out.dump() << "\n";
    return sluice::kCliOk;
  }
  std::size_t shown = 0;
  for (const auto& e : entries) {
    if (raw) {
      *context.out << raw_text(e, now) << "\n";
      ++shown;
      continue;
    }
    if (e.value.type == SL_CT_TYPE_NAT_FWD) continue;  // shown through its NAT_REV
    std::string line = flow_text(e.key, e.value);
    if (e.key.proto == IPPROTO_TCP)
      line += " " + state_name(sl_ct_state_of(e.key.proto, &e.value));
    line += " Active ago " + seconds_text(now - e.value.last_seen_ns);
    std::vector<std::string> flags = flag_names(e.value.flags & ~SL_CT_F_BA);
    for (const auto& name : flags) line += " " + name;
    if (e.value.flags & SL_CT_F_NP_FWD)
      line += " via " + address(e.key.family, e.value.tun_ip);
    *context.out << line << "\n";
    ++shown;
  }
  if (shown == 0) *context.out << "no conntrack entries\n";
  return sluice::kCliOk;
}

int run_stats(const sluice::CliContext& context) {
  if (!context.args.empty()) {
    *context.err << "conntrack stats: takes no arguments\n";
    return sluice::kCliUsage;
  }
  Fd fd;
  if (int rc = open_table(context, fd)) return rc;
  std::vector<Entry> entries = read_entries(fd.get());
  std::uint32_t size = max_entries_of(fd.get());
  std::map<std::pair<std::string, std::string>, std::uint64_t> by;
  std::uint64_t nat_fwd = 0;
  for (const auto& e : entries) {
    if (e.value.type == SL_CT_TYPE_NAT_FWD) {
      ++nat_fwd;
      continue;
    }
    by[{proto_name(e.key.proto), state_name(sl_ct_state_of(e.key.proto, &e.value))}]++;
  }
  ct_stats stats{};
  Fd stats_fd(bpf_obj_get((context.map_pin_dir + "/" CT_MAP_STATS).c_str()));
  if (stats_fd) stats = read_stats(stats_fd.get());

  if (context.json()) {
    Json out = Json::object();
    out["table_size"] = size;
    out["entries"] = static_cast<unsigned long>(entries.size());
    out["nat_fwd_entries"] = static_cast<unsigned long long>(nat_fwd);
    Json list = Json::array();
    for (const auto& [k, n] : by) {
      Json row = Json::object();
      row["proto"] = k.first;
      row["state"] = k.second;
      row["entries"] = static_cast<unsigned long long>(n);
      list.push_back(std::move(row));
    }
    out["by_state"] = std::move(list);
    out["created_total"] = static_cast<unsigned long long>(stats.created);
    out["table_full_dropped_total"] = static_cast<unsigned long long>(stats.full_dropped);
    out["table_full_passed_total"] = static_cast<unsigned long long>(stats.full_passed);
    *context.out << out.dump() << "\n";
    return sluice::kCliOk;
  }
  char fill[32];
  std::snprintf(fill, sizeof(fill), "%.1f%%",
                size ? 100.0 * static_cast<double>(entries.size()) / size : 0.0);
  *context.out << "Conntrack table size: " << size << "\n"
               << "Total entries:        " << entries.size() << " (" << fill << " full)\n"
               << "NAT_FWD entries:      " << nat_fwd << "\n"
               << "Created (total):      " << stats.created << "\n"
               << "Table full, dropped:  " << stats.full_dropped << "\n"
               << "Table full, passed:   " << stats.full_passed << "\n\n";
  sluice::output::Table table({{"PROTO"}, {"STATE"}, {"ENTRIES", sluice::output::Table::Align::right}});
  for (const auto& [k, n] : by) table.add_row({k.first, k.second, std::to_string(n)});
  if (!table.empty()) table.print(*context.out);
  return sluice::kCliOk;
}

bool parse_ip(const std::string& text, std::uint8_t& family, std::array<__be32, 4>& out) {
  out = {};
  if (inet_pton(AF_INET, text.c_str(), out.data()) == 1) {
    family = 4;
    return true;
  }
  if (inet_pton(AF_INET6, text.c_str(), out.data()) == 1) {
    family = 6;
    return true;
  }
  return false;
}

int run_remove(const sluice::CliContext& context) {
  const auto& args = context.args;
  if (args.size() < 2 || args.size() > 3) {
    *context.err << "usage: conntrack remove <proto|any> <ip> [ip]\n";
    return sluice::kCliUsage;
  }
  std::optional<int> proto = parse_proto(args[0]);
  if (!proto) {
    *context.err << "conntrack remove: '" << args[0]
                 << "' is not a protocol (tcp, udp, icmp, icmpv6, sctp, a number or any)\n";
    return sluice::kCliUsage;
  }
  std::uint8_t family1 = 0, family2 = 0;
  std::array<__be32, 4> ip1{}, ip2{};
  if (!parse_ip(args[1], family1, ip1) || (args.size() == 3 && !parse_ip(args[2], family2, ip2))) {
    *context.err << "conntrack remove: '" << (parse_ip(args[1], family1, ip1) ? args[2] : args[1])
                 << "' is not an IPv4 or IPv6 address\n";
    return sluice::kCliUsage;
  }
  Fd fd;
  if (int rc = open_table(context, fd)) return rc;
  auto same = [](const __be32* a, const std::array<__be32, 4>& b) {
    return std::memcmp(a, b.data(), 16) == 0;
  };
  std::uint64_t removed = 0;
  for (const auto& e : read_entries(fd.get())) {
    const sl_ct_key& k = e.key;
    if (*proto >= 0 && k.proto != *proto) continue;
    if (k.family != family1) continue;
    bool match;
    if (args.size() == 3)
      match = k.family == family2 && ((same(k.addr_a, ip1) && same(k.addr_b, ip2)) ||
                                      (same(k.addr_a, ip2) && same(k.addr_b, ip1)));
    else
      match = same(k.addr_a, ip1) || same(k.addr_b, ip1);
    if (match && bpf_map_delete_elem(fd.get(), &k) == 0) ++removed;
  }
  if (context.json()) {
    Json out = Json::object();
    out["removed"] = static_cast<unsigned long long>(removed);
    *context.out << out.dump() << "\n";
  } else {
    *context.out << "removed " << removed << " entr" << (removed == 1 ? "y" : "ies") << "\n";
  }
  return sluice::kCliOk;
}

int run_clean(const sluice::CliContext& context, const Settings& settings) {
  bool all = false;
  for (const auto& arg : context.args) {
    if (arg == "--all") {
      all = true;
    } else {
      *context.err << "conntrack clean: unknown argument '" << arg << "' (usage: conntrack clean [--all])\n";
      return sluice::kCliUsage;
    }
  }
  std::optional<std::uint32_t> size = pinned_size(context.map_pin_dir);
  if (!size) {
    *context.err << "conntrack: cannot open " << table_pin(context.map_pin_dir) << ": "
                 << std::strerror(errno) << " (is the conntrack plugin loaded by sluiced?)\n";
    return sluice::kCliFailure;
  }
  std::string error;
  CleanerSkeleton skel = open_cleaner(context.map_pin_dir, *size, settings, error);
  if (skel && conntrack_cleaner__load(skel.get()) != 0)
    error = std::string("cannot load the conntrack cleaner: ") + std::strerror(errno);
  CleanResult result;
  if (error.empty()) {
    if (int e = run_cleaner(bpf_program__fd(skel->progs.conntrack_clean), all, result))
      error = std::string("cleaner run failed: ") + std::strerror(e);
  }
  if (!error.empty()) {
    *context.err << "conntrack clean: " << error << "\n";
    return sluice::kCliFailure;
  }
  if (context.json()) {
    Json out = Json::object();
    out["scanned"] = result.scanned;
    out["removed"] = result.deleted;
    *context.out << out.dump() << "\n";
  } else {
    *context.out << "removed " << result.deleted << " of " << result.scanned
                 << (all ? " entries\n" : " entries (expired)\n");
  }
  return sluice::kCliOk;
}

// ---- the plugin ------------------------------------------------------------------

class ConntrackPlugin final : public sluice::Plugin {
 public:
  ~ConntrackPlugin() override { stop_cleaner(); }

  std::string description() const override {
    return "connection tracking: the shared sl_conntrack table, TCP/UDP/ICMP state, cleaner";
  }

  void configure(const sluice::ConfigSource& source) override {
    sluice::config::PluginTable plugin_table(source);
    settings_ = parse_settings(plugin_table.table());
  }

  std::vector<sluice::StageSpec> stages() const override {
    sluice::StageSpec stage{"conntrack", "conntrack_stage", sluice::kAllRoles,
                            sluice::kBothHooks, sluice::order::kConntrack};
    stage.every_packet_hooks = sluice::kBothHooks;
    stage.may = SL_MAY_DROP | SL_MAY_VOTE_ESTABLISHED;
    stage.scratch_writes = sluice::scratch_bit(SL_SCRATCH_CT_RESULT);
    // A packet the fast path carries into a workload was tracked where it
    // entered the node.
    stage.fast_path_may_bypass_egress = true;
    return {stage};
  }

  void load(sluice::Host& host) override {
    std::string pin_root = host.map_pin_dir();
    // A pinned table keeps its size (and its flows) across restarts: a new
    // table_size applies once the pin is gone (sluiced --cleanup).
    std::uint32_t size = settings_.table_size;
    if (auto pinned = pinned_size(pin_root); pinned && *pinned != size) {
      host.log(sluice::LogLevel::warn,
               "conntrack: the pinned table has " + std::to_string(*pinned) +
                   " entries, table_size asks for " + std::to_string(size) +
                   "; keeping the pinned table and its flows (the new size applies after "
                   "sluiced --cleanup)");
      size = *pinned;
    }
    table_size_ = size;

    LIBBPF_OPTS(bpf_object_open_opts, opts, .pin_root_path = pin_root.c_str());
    StageSkeleton stage(conntrack_stage__open_opts(&opts));
    if (!stage)
      throw std::runtime_error("cannot open the conntrack stage BPF object: " +
                               std::string(std::strerror(errno)));
    bpf_map__set_max_entries(stage->maps.sl_conntrack, size);
    stage->rodata->ct_table_full_rule = settings_.table_full;
    stage->rodata->ct_tcp_midstream = settings_.tcp_midstream ? 1 : 0;
    stage->rodata->ct_fast_path = settings_.fast_path ? 1 : 0;
    host.load_bpf("conntrack stage", [&] { return conntrack_stage__load(stage.get()); });

    std::string error;
    CleanerSkeleton cleaner = open_cleaner(pin_root, size, settings_, error);
    if (!cleaner) throw std::runtime_error(error);
    host.load_bpf("conntrack cleaner", [&] { return conntrack_cleaner__load(cleaner.get()); });

    stage_ = std::move(stage);
    cleaner_ = std::move(cleaner);
    host.log(sluice::LogLevel::info,
             "conntrack: table of " + std::to_string(size) + " entries, table_full = " +
                 (settings_.table_full == CT_FULL_DROP_NEW ? "drop-new" : "pass-untracked") +
                 ", cleaner every " + std::to_string(settings_.clean_interval) + "s" +
                 (settings_.fast_path ? ", fast path on" : ""));
    start_cleaner(host);
  }

  int stage_fd(std::string_view stage) const override {
    if (stage != "conntrack" || !stage_) return -1;
    return bpf_program__fd(stage_->progs.conntrack_stage);
  }

  void shutdown(bool cleanup) override {
    stop_cleaner();
    if (cleanup && stage_) {
      bpf_map__unpin(stage_->maps.sl_conntrack, nullptr);
      bpf_map__unpin(stage_->maps.ct_stats, nullptr);
    }
  }

  std::vector<sluice::CliCommand> cli_commands() const override {
    sluice::CliCommand dump;
    dump.path = {"conntrack", "dump"};
    dump.arguments = "[--raw]";
    dump.summary = "list tracked connections";
    dump.description =
        "Prints one line per connection from the pinned sl_conntrack table, opener first:\n"
        "  TCP 10.0.0.9:42642 -> 10.96.0.50:8385 ESTABLISHED Active ago 1.2s\n"
        "NAT_REV entries show the service address between client and backend; NAT_FWD\n"
        "stubs are hidden. --raw prints every entry with its key as stored (A <-> B),\n"
        "type, flags and both legs (packets, bytes, interface, syn/ack/fin/rst/approved).\n"
        "\n"
        "JSON: [{proto, family, type, key, flags, src, sport, dst, dport, state,\n"
        "last_seen_ago_ms, age_ms, a_to_b, b_to_a, ...}]\n"
        "\n"
        "Examples:\n"
        "  sluicectl conntrack dump\n"
        "  sluicectl conntrack dump --raw -o json";
    dump.run = run_dump;

    sluice::CliCommand stats;
    stats.path = {"conntrack", "stats"};
    stats.summary = "conntrack entries by protocol and state, table size, full-table counts";
    stats.description =
        "Counts the entries of sl_conntrack by protocol and state, and prints the table\n"
        "size and how many new flows were dropped (table_full = \"drop-new\") or passed\n"
        "untracked because the table was full.\n"
        "\n"
        "JSON: {table_size, entries, nat_fwd_entries, by_state: [{proto, state, entries}],\n"
        "created_total, table_full_dropped_total, table_full_passed_total}";
    stats.run = run_stats;

    sluice::CliCommand remove;
    remove.path = {"conntrack", "remove"};
    remove.arguments = "<proto|any> <ip> [ip]";
    remove.summary = "delete the entries of one address, or of a pair of addresses";
    remove.description =
        "Deletes every entry of protocol <proto> (tcp, udp, icmp, icmpv6, sctp, a number, or\n"
        "any) with <ip> as either endpoint, or with exactly the two addresses given. The\n"
        "next packet of a removed TCP flow is picked up mid-stream (tcp_midstream_pickup)\n"
        "or seen as invalid.\n"
        "\n"
        "Examples:\n"
        "  sluicectl conntrack remove tcp 10.65.0.3\n"
        "  sluicectl conntrack remove any 10.65.0.3 10.96.0.10";
    remove.run = run_remove;

    sluice::CliCommand clean;
    clean.path = {"conntrack", "clean"};
    clean.arguments = "[--all]";
    clean.summary = "run the cleaner now (expired entries), or empty the table";
    clean.description =
        "Runs one pass of the conntrack cleaner, with the timeouts of the configuration,\n"
        "and prints how many entries it removed. --all removes every entry.\n"
        "\n"
        "JSON: {scanned, removed}";
    Settings settings = settings_;
    clean.run = [settings](const sluice::CliContext& context) {
      return run_clean(context, settings);
    };
    return {dump, stats, remove, clean};
  }

  void write_metrics(sluice::MetricsWriter& out) const override {
    if (!stage_) return;
    std::map<std::pair<std::string, std::string>, std::uint64_t> by;
    for (const auto& e : read_entries(bpf_map__fd(stage_->maps.sl_conntrack))) {
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
              static_cast<double>(table_size_));
    ct_stats stats = read_stats(bpf_map__fd(stage_->maps.ct_stats));
    out.counter("sluice_conntrack_table_full_total",
                "New flows that found the conntrack table full, by what happened to them",
                {{"action", "dropped"}}, static_cast<double>(stats.full_dropped));
    out.counter("sluice_conntrack_table_full_total",
                "New flows that found the conntrack table full, by what happened to them",
                {{"action", "passed"}}, static_cast<double>(stats.full_passed));
    out.counter("sluice_conntrack_created_total", "Conntrack entries created", {},
                static_cast<double>(stats.created));
    out.counter("sluice_conntrack_cleaned_total", "Expired conntrack entries removed", {},
                static_cast<double>(cleaned_total_.load()));
  }

 private:
  void start_cleaner(sluice::Host& host) {
    stop_ = false;
    int prog_fd = bpf_program__fd(cleaner_->progs.conntrack_clean);
    auto interval = std::chrono::seconds(settings_.clean_interval);
    sluice::Host* host_ptr = &host;
    cleaner_thread_ = std::thread([this, prog_fd, interval, host_ptr] {
      std::unique_lock lock(mutex_);
      bool warned = false;
      while (!cv_.wait_for(lock, interval, [this] { return stop_; })) {
        CleanResult result;
        if (int e = run_cleaner(prog_fd, false, result)) {
          if (!warned)
            host_ptr->log(sluice::LogLevel::warn,
                          std::string("conntrack: cleaner run failed: ") + std::strerror(e));
          warned = true;
          continue;
        }
        cleaned_total_ += result.deleted;
      }
    });
  }

  void stop_cleaner() {
    {
      std::lock_guard lock(mutex_);
      stop_ = true;
    }
    cv_.notify_all();
    if (cleaner_thread_.joinable()) cleaner_thread_.join();
  }

  Settings settings_ = [] {
    Settings s;
    for (const auto& key : kTimeoutKeys) s.timeouts[key.index] = key.fallback;
    return s;
  }();
  std::uint32_t table_size_ = 0;
  StageSkeleton stage_;
  CleanerSkeleton cleaner_;
  std::thread cleaner_thread_;
  std::mutex mutex_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::atomic<std::uint64_t> cleaned_total_{0};
};

}  // namespace

SLUICE_PLUGIN(ConntrackPlugin, "conntrack", "0.1.0")
