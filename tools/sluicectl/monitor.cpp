// `sluicectl monitor`: streams packet events from the pinned sl_events ring
// buffer, one line (or one JSON object) per event.
#include <arpa/inet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <signal.h>
#include <time.h>

#include <bpf/libbpf.h>

#include <chrono>
#include <cstring>
#include <ctime>
#include <iostream>
#include <map>
#include <memory>
#include <optional>

#include "cli.hpp"
#include "sluice/clock.hpp"
#include "pinned_maps.hpp"
#include "sluice/core/error.hpp"

namespace sluice::ctl {

namespace {

volatile sig_atomic_t g_stop_requested = 0;

void request_stop(int) { g_stop_requested = 1; }

// SIGINT/SIGTERM end the stream cleanly; without SA_RESTART the blocking
// epoll in ring_buffer__poll returns EINTR at once.
void install_stop_handlers() {
  struct sigaction action {};
  action.sa_handler = request_stop;
  sigemptyset(&action.sa_mask);
  sigaction(SIGINT, &action, nullptr);
  sigaction(SIGTERM, &action, nullptr);
}

// Events carry bpf_ktime_get_ns() (CLOCK_MONOTONIC); people read wall time.
class EventClock {
 public:
  EventClock() : offset_ns_(sluice::clock_ns(CLOCK_REALTIME) - sluice::monotonic_ns()) {}
  std::uint64_t realtime_ns(std::uint64_t monotonic_ns) const { return monotonic_ns + offset_ns_; }

 private:
  std::uint64_t offset_ns_;
};

// "12:00:01.123456" in local time for lines, ISO 8601 UTC for JSON.
std::string local_time_text(std::uint64_t realtime_ns) {
  std::time_t seconds = static_cast<std::time_t>(realtime_ns / 1000000000ull);
  std::tm tm{};
  localtime_r(&seconds, &tm);
  char buf[48];
  std::size_t n = std::strftime(buf, sizeof(buf), "%H:%M:%S", &tm);
  std::snprintf(buf + n, sizeof(buf) - n, ".%06llu",
                static_cast<unsigned long long>(realtime_ns % 1000000000ull / 1000));
  return buf;
}

std::string utc_time_text(std::uint64_t realtime_ns) {
  std::string whole = format_utc(realtime_ns);  // "...T12:00:01Z"
  char fraction[16];
  std::snprintf(fraction, sizeof(fraction), ".%06lluZ",
                static_cast<unsigned long long>(realtime_ns % 1000000000ull / 1000));
  return whole.substr(0, whole.size() - 1) + fraction;
}

// ifindex -> name from sl_ifstate, re-read when an unknown ifindex shows up
// (a workload started after the monitor did).
class InterfaceNames {
 public:
  explicit InterfaceNames(PinnedMaps& maps) : maps_(maps) { reload(); }

  std::string name_of(std::uint32_t ifindex) {
    if (ifindex == 0) return "-";
    auto it = names_.find(ifindex);
    if (it == names_.end()) {
      reload();
      it = names_.find(ifindex);
    }
    if (it != names_.end()) return it->second;
    char name[IF_NAMESIZE] = {};
    if (if_indextoname(ifindex, name)) return name;
    return "if" + std::to_string(ifindex);
  }

 private:
  void reload() {
    names_.clear();
    for (const auto& iface : read_interfaces(maps_)) names_[iface.ifindex] = iface.name;
  }

  PinnedMaps& maps_;
  std::map<std::uint32_t, std::string> names_;
};

std::string protocol_name(std::uint8_t ip_proto) {
  switch (ip_proto) {
    case IPPROTO_TCP: return "tcp";
    case IPPROTO_UDP: return "udp";
    case IPPROTO_ICMP: return "icmp";
    case IPPROTO_ICMPV6: return "icmpv6";
    case IPPROTO_SCTP: return "sctp";
    default: return "proto-" + std::to_string(ip_proto);
  }
}

std::vector<std::string> tcp_flag_names(std::uint8_t flags) {
  static constexpr const char* kNames[8] = {"fin", "syn", "rst", "psh",
                                            "ack", "urg", "ece", "cwr"};
  std::vector<std::string> out;
  for (unsigned bit = 0; bit < 8; ++bit)
    if (flags & (1u << bit)) out.push_back(kNames[bit]);
  return out;
}

// The decoded view of one event, shared by both output formats.
struct DecodedEvent {
  std::uint64_t realtime_ns = 0;
  std::string interface;
  std::string hook;
  std::string family;    // "ipv4", "ipv6", or "non-ip"
  std::string protocol;  // empty for non-IP
  std::string src, dst;
  std::optional<std::uint16_t> sport, dport;  // TCP/UDP/SCTP only
  std::optional<std::uint8_t> icmp_type, icmp_code;
  std::vector<std::string> tcp_flags;
  bool later_fragment = false;
  std::string verdict;
  std::string redirect_interface;  // for redirect-pending
};

std::string address_text(int family, const __be32 (&addr)[4]) {
  char buf[INET6_ADDRSTRLEN] = {};
  if (!inet_ntop(family, addr, buf, sizeof(buf))) return "?";
  return buf;
}

DecodedEvent decode(const sl_packet_event& ev, const EventClock& clock, InterfaceNames& names) {
  DecodedEvent out;
  out.realtime_ns = clock.realtime_ns(ev.ts_ns);
  out.interface = names.name_of(ev.ifindex);
  out.hook = hook_text(ev.hook);
  if (ev.l3_proto == 0x0800 || ev.l3_proto == 0x86dd) {
    int family = ev.l3_proto == 0x0800 ? AF_INET : AF_INET6;
    out.family = family == AF_INET ? "ipv4" : "ipv6";
    out.protocol = protocol_name(ev.ip_proto);
    out.src = address_text(family, ev.saddr);
    out.dst = address_text(family, ev.daddr);
    out.later_fragment = ev.flags & SL_PKT_F_LATER_FRAGMENT;
    if (!out.later_fragment) {
      if (ev.ip_proto == IPPROTO_TCP || ev.ip_proto == IPPROTO_UDP ||
          ev.ip_proto == IPPROTO_SCTP) {
        out.sport = ntohs(ev.sport);
        out.dport = ntohs(ev.dport);
      } else if (ev.ip_proto == IPPROTO_ICMP || ev.ip_proto == IPPROTO_ICMPV6) {
        // The context stores the ICMP type and code as dport = type << 8 | code.
        std::uint16_t type_code = ntohs(ev.dport);
        out.icmp_type = static_cast<std::uint8_t>(type_code >> 8);
        out.icmp_code = static_cast<std::uint8_t>(type_code & 0xff);
      }
    }
    if (ev.ip_proto == IPPROTO_TCP) out.tcp_flags = tcp_flag_names(ev.tcp_flags);
  } else {
    char proto[16];
    std::snprintf(proto, sizeof(proto), "0x%04x", ev.l3_proto);
    out.family = ev.l3_proto == 0 ? "non-ip" : proto;
  }
  if (ev.verdict == SL_EV_REDIRECT_PENDING) {
    out.verdict = "redirect-pending";
    out.redirect_interface = names.name_of(ev.redirect_ifindex);
  } else {
    out.verdict = ev.verdict == SL_EV_CONTINUE ? "continue" : "verdict-" + std::to_string(ev.verdict);
  }
  return out;
}

std::string endpoint_text(const DecodedEvent& e, const std::string& address,
                          std::optional<std::uint16_t> port) {
  if (!port) return address;
  return (e.family == "ipv6" ? "[" + address + "]" : address) + ":" + std::to_string(*port);
}

std::string line_text(const DecodedEvent& e, const sl_packet_event& ev) {
  std::string line = local_time_text(e.realtime_ns) + " " + e.interface + " " + e.hook + " ";
  if (e.protocol.empty()) {
    line += e.family;
  } else {
    line += e.protocol + " " + endpoint_text(e, e.src, e.sport) + " -> " +
            endpoint_text(e, e.dst, e.dport);
    if (e.icmp_type)
      line += " type " + std::to_string(*e.icmp_type) + " code " + std::to_string(*e.icmp_code);
    if (e.later_fragment) line += " (fragment)";
  }
  line += " len " + std::to_string(ev.len);
  if (!e.tcp_flags.empty()) line += " flags " + join(e.tcp_flags, ",");
  line += " verdict " + e.verdict;
  if (ev.verdict == SL_EV_REDIRECT_PENDING)
    line += " to " + e.redirect_interface + " (ifindex " + std::to_string(ev.redirect_ifindex) + ")";
  line += " by " + fixed_string(ev.emitter);
  return line;
}

Json event_json(const DecodedEvent& e, const sl_packet_event& ev) {
  Json out = Json::object();
  out["time"] = utc_time_text(e.realtime_ns);
  out["ts_ns"] = ev.ts_ns;
  out["interface"] = e.interface;
  out["ifindex"] = ev.ifindex;
  out["hook"] = e.hook;
  out["role"] = role_text(ev.role);
  out["family"] = e.family;
  out["protocol"] = e.protocol.empty() ? Json() : Json(e.protocol);
  out["ip_proto"] = ev.ip_proto;
  out["src"] = e.src.empty() ? Json() : Json(e.src);
  out["sport"] = e.sport ? Json(*e.sport) : Json();
  out["dst"] = e.dst.empty() ? Json() : Json(e.dst);
  out["dport"] = e.dport ? Json(*e.dport) : Json();
  if (e.icmp_type) {
    out["icmp_type"] = *e.icmp_type;
    out["icmp_code"] = *e.icmp_code;
  }
  out["len"] = ev.len;
  Json flags = Json::array();
  for (const auto& flag : e.tcp_flags) flags.push_back(flag);
  out["tcp_flags"] = std::move(flags);
  out["later_fragment"] = e.later_fragment;
  out["verdict"] = e.verdict;
  out["redirect_ifindex"] = ev.redirect_ifindex;
  out["redirect_interface"] = e.redirect_interface.empty() ? Json() : Json(e.redirect_interface);
  out["stage_pos"] = ev.stage_pos;
  out["emitter"] = fixed_string(ev.emitter);
  return out;
}

struct MonitorState {
  OutputFormat format;
  EventClock clock;
  InterfaceNames& names;
  std::uint64_t limit = 0;  // 0: unlimited
  std::uint64_t printed = 0;
  bool done() const { return limit != 0 && printed >= limit; }
};

int on_event(void* ctx, void* data, size_t size) {
  auto& state = *static_cast<MonitorState*>(ctx);
  // Events beyond --count are consumed but not shown; a shorter record is
  // not one this binary understands.
  if (state.done() || size < sizeof(sl_packet_event)) return 0;
  sl_packet_event ev{};
  std::memcpy(&ev, data, sizeof(ev));
  if (ev.kind != SL_EV_PACKET) return 0;
  DecodedEvent decoded = decode(ev, state.clock, state.names);
  if (state.format == OutputFormat::json)
    std::cout << sluice::output::json_text(event_json(decoded, ev), -1) << std::endl;
  else
    std::cout << line_text(decoded, ev) << std::endl;  // flushed: often piped or watched
  ++state.printed;
  return 0;
}

// Where events would come from, for the line monitor prints while it waits.
std::string emitter_hint(PinnedMaps& maps, const std::string& config_file) {
  for (const auto& entry : read_registry(maps))
    if (entry.kind == SL_REG_PLUGIN && entry.status == 0)
      return "enable them with [plugins.log] filter = \"all\" or match rules in " +
             config_file + ", then restart sluiced";
  return "no plugin is loaded, so nothing emits them: enable the log plugin in " + config_file +
         " ([plugins] enabled = [\"log\"], [plugins.log] filter = \"all\") and restart sluiced";
}

struct RingBufferDeleter {
  void operator()(ring_buffer* rb) const { ring_buffer__free(rb); }
};

int run_monitor(Context& context, const CliValues& values) {
  PinnedMaps maps(context.config());
  maps.require_compatible();
  if (!maps.has(SL_MAP_EVENTS))
    throw CtlError("the event ring buffer " + maps.path(SL_MAP_EVENTS) +
                   " is not pinned: sluiced creates it when it starts; start it with: sluiced "
                   "--config " +
                   context.config().file);
  int events_fd = maps.fd(SL_MAP_EVENTS, 0);

  InterfaceNames names(maps);
  MonitorState state{context.format, EventClock(), names};
  if (values.has("count")) state.limit = values.unsigned_integer("count");
  std::optional<std::chrono::steady_clock::time_point> deadline;
  if (values.has("timeout")) {
    double seconds = values.number("timeout");
    if (seconds < 0) throw CtlError("--timeout must not be negative", kExitUsage);
    deadline = std::chrono::steady_clock::now() +
               std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                   std::chrono::duration<double>(seconds));
  }

  std::unique_ptr<ring_buffer, RingBufferDeleter> ring(
      ring_buffer__new(events_fd, on_event, &state, nullptr));
  if (!ring)
    throw CtlError("cannot read the ring buffer " + maps.path(SL_MAP_EVENTS) + ": " +
                   errno_text(errno));

  install_stop_handlers();
  std::cerr << "waiting for events (" << emitter_hint(maps, context.config().file)
            << "; Ctrl-C stops)\n";
  while (!g_stop_requested && !state.done()) {
    int wait_ms = 100;  // the longest an event waits to be shown
    if (deadline) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          *deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) break;
      wait_ms = static_cast<int>(std::min<long long>(wait_ms, left.count()));
    }
    // Writers wake readers only when a backlog builds (sdk/.../events.h), so
    // besides waiting for a wakeup, drain whatever arrived quietly.
    int err = ring_buffer__poll(ring.get(), wait_ms);
    if (err >= 0 || err == -EINTR) err = ring_buffer__consume(ring.get());
    if (err < 0 && err != -EINTR)
      throw CtlError("reading " + maps.path(SL_MAP_EVENTS) + " failed: " + errno_text(err));
  }
  return kExitOk;
}

}  // namespace

std::vector<CliCommand> monitor_commands(Context& context) {
  CliCommand monitor;
  monitor.path = {"monitor"};
  monitor.summary = "stream packet events as the pipeline sees them";
  monitor.description =
      "Prints the packet events that stages write to the sl_events ring buffer, one\n"
      "line per event:\n"
      "\n"
      "  12:00:01.123456 cali1 ingress tcp 10.65.0.2:40000 -> 10.65.1.3:80 len 60\n"
      "      flags syn verdict continue by log\n"
      "\n"
      "time (local), interface, hook, protocol, source -> destination (ports for\n"
      "TCP/UDP, type and code for ICMP), packet length, TCP flags, the verdict so far\n"
      "(continue, or redirect-pending to the interface a stage chose) and the plugin\n"
      "or stage that emitted it. With -o json, one JSON object per line.\n"
      "\n"
      "The log plugin emits events only when [plugins.log] filter is \"all\" or its\n"
      "match rules select packets; with the filter off this command just waits.\n"
      "Events are consumed by whoever reads them: run one monitor at a time.\n"
      "Stops after --count events, after --timeout seconds, or on Ctrl-C.\n"
      "\n"
      "Examples:\n"
      "  sluicectl monitor\n"
      "  sluicectl monitor --count 10 --timeout 5 -o json";
  monitor.options = {
      {"count,n", CliValueKind::unsigned_integer, "stop after N events"},
      {"timeout,t", CliValueKind::number,
       "stop after SECONDS (fractions allowed), even if no event came", "", "SECONDS"}};
  monitor.run = builtin(context, run_monitor);
  return {monitor};
}

}  // namespace sluice::ctl
