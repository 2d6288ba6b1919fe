// sluice-bench: what the Sluice entry program and chains cost per packet,
// measured in the kernel with BPF_PROG_TEST_RUN (no interface needed).
//
//   sudo sluice-bench [--repeat N] [--rounds R] [--json]
//
// Cases: a no-op tc program (the floor: test_run's own loop), the entry with
// an empty chain (chain end only; also the cost with filter = "off", which
// declares no stage), the entry with the log stage matching nothing, and
// with the log stage on (filter = "all") both with room in the ring buffer
// and with the ring full. A breakdown measures the entry's fixed pieces
// (context lookup, zeroing, settings lookup, counter, tail call) one by one.
#include <sched.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "bench_micro.skel.h"
#include "bench_noop.skel.h"
#include "sluice/core/node_host.hpp"
#include "sluice/core/bpf_loader.hpp"
#include "sluice/core/plugin_host.hpp"
#include "sluice/core/dataplane.hpp"
#include "sluice/core/error.hpp"
#include <sluice/testing/stage_test.hpp>

using namespace sluice;
using namespace sluice::testing;

namespace {

constexpr double kTargetRatio = 2.0;

struct Options {
  std::uint32_t repeat = 2'000'000;
  int rounds = 9;
  bool json = false;
};

struct Case {
  std::string key;    // for JSON
  std::string label;  // for the table
  int fd = -1;
  std::uint32_t repeat = 0;
  std::function<void()> before;  // runs before every measurement (untimed)
  std::string skipped;           // why, when not measured
  std::vector<double> samples;       // kernel-measured ns/packet (integer)
  std::vector<double> wall_samples;  // wall clock around the call / repeat
  static double median_of(std::vector<double> s) {
    if (s.empty()) return NAN;
    std::sort(s.begin(), s.end());
    return s.size() % 2 ? s[s.size() / 2] : (s[s.size() / 2 - 1] + s[s.size() / 2]) / 2;
  }
  double median() const { return median_of(samples); }
  double wall_median() const { return median_of(wall_samples); }
  double spread() const {  // (max - min) / median, in percent
    if (samples.size() < 2) return 0;
    auto [lo, hi] = std::minmax_element(samples.begin(), samples.end());
    return 100.0 * (*hi - *lo) / median();
  }
};


// The log plugin loaded the way sluiced loads it, with one filter setting.
struct LogPlugin {
  std::unique_ptr<NodeConfig> config;
  std::unique_ptr<NodeHost> host;
  std::unique_ptr<PluginHost> plugins;
  int fd = -1;
  std::string error;
};

// `table` is the body of [plugins.log].
std::unique_ptr<LogPlugin> load_log_plugin(const NodeConfig& base, const std::string& table) {
  auto lp = std::make_unique<LogPlugin>();
  lp->config = std::make_unique<NodeConfig>(parse_config(
      "[node]\nname = \"bench\"\n[bpf]\nroot = \"" + base.bpf_root + "\"\ninstance = \"" +
          base.instance + "\"\n[plugins]\nenabled = [\"log\"]\n[plugins.log]\n" + table + "\n",
      "<bench>"));
  lp->host = std::make_unique<NodeHost>(*lp->config);
  lp->plugins = std::make_unique<PluginHost>(*lp->config, *lp->host);
  lp->plugins->open_and_configure(false);
  lp->plugins->load_bpf();
  for (auto& p : lp->plugins->plugins()) {
    if (p.name != "log") continue;
    if (p.state == PluginState::loaded)
      lp->fd = p.plugin.stage_fd("log");
    else
      lp->error = p.error.empty() ? "failed to load" : p.error;
  }
  return lp;
}

std::string read_first_line(const std::string& path) {
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  return line;
}

std::string num(double v, int prec = 1) {
  if (std::isnan(v)) return "-";
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.*f", prec, v);
  return buf;
}

std::string json_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    if (static_cast<unsigned char>(c) < 0x20) continue;
    out += c;
  }
  return out;
}

int usage(const char* argv0, int code) {
  std::fprintf(code ? stderr : stdout,
               "usage: %s [--repeat N] [--rounds R] [--json]\n"
               "Measures per-packet cost of Sluice's entry program and chains with\n"
               "BPF_PROG_TEST_RUN (needs root). Defaults: --repeat 2000000 --rounds 9.\n",
               argv0);
  return code;
}

}  // namespace

int main(int argc, char** argv) {
  Options opt;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--json") {
      opt.json = true;
    } else if (a == "--repeat" && i + 1 < argc) {
      opt.repeat = static_cast<std::uint32_t>(std::stoul(argv[++i]));
    } else if (a == "--rounds" && i + 1 < argc) {
      opt.rounds = std::max(1, std::stoi(argv[++i]));
    } else if (a == "-h" || a == "--help") {
      return usage(argv[0], 0);
    } else {
      return usage(argv[0], 2);
    }
  }
  if (geteuid() != 0) {
    std::fprintf(stderr, "sluice-bench: needs root (BPF_PROG_TEST_RUN, bpffs pins)\n");
    return 1;
  }
  spdlog::set_level(spdlog::level::warn);

  try {
    Testbed bed;  // private pin instance, removed on exit; pins us to one CPU
    // The bed's pin instance as a core config, for the entry programs the
    // bench loads side by side (the SDK harness loads one at a time).
    const NodeConfig config = parse_config(bed.bpf_config(), "<bench>");

    // 64-byte IPv4/UDP frame (no FCS): 14 + 20 + 8 + 22.
    Packet pkt = PacketBuilder().ipv4("10.0.0.1", "10.0.0.2").udp(40000, 53).payload(22).build();

    struct NoopDel { void operator()(bench_noop* s) const { bench_noop__destroy(s); } };
    struct MicroDel { void operator()(bench_micro* s) const { bench_micro__destroy(s); } };
    std::unique_ptr<bench_noop, NoopDel> noop(bench_noop__open_and_load());
    if (!noop) throw Error("cannot load the no-op program: " + errno_text(errno));
    auto micro_opts = bed.open_opts();
    std::unique_ptr<bench_micro, MicroDel> micro(bench_micro__open_opts(&micro_opts->opts));
    if (!micro || bench_micro__load(micro.get()) != 0)
      throw Error("cannot load the micro programs: " + errno_text(errno));
    {
      __u32 zero = 0;
      int end = bpf_program__fd(micro->progs.m_end);
      bpf_map__update_elem(micro->maps.bench_jump, &zero, sizeof(zero), &end, sizeof(end),
                           BPF_ANY);
    }

    // The log plugin, if this build has it.
    std::string log_so = default_plugin_dir() + "/log.so";
    std::unique_ptr<LogPlugin> log_off, log_all;
    std::string log_skip;
    if (!std::filesystem::exists(log_so)) {
      log_skip = "log plugin not built (" + log_so + " missing)";
    } else {
      try {
        // filter = "off" declares no stage (its cost is case b); this is the
        // stage present and evaluating a rule that the UDP packet misses.
        log_off = load_log_plugin(config,
                                  "filter = \"match\"\n[[plugins.log.match]]\nprotocol = \"sctp\"");
        log_all = load_log_plugin(config, "filter = \"all\"");
        if (log_off->fd < 0 || log_all->fd < 0)
          log_skip = "log plugin failed: " + (log_off->error.empty() ? log_all->error : log_off->error);
      } catch (const std::exception& e) {
        log_skip = std::string("log plugin failed: ") + e.what();
      }
    }

    // One role per chain so every case has its own entry program:
    // workload = empty, data = [log off], tunnel = [log all].
    bed.set_chain(SL_ROLE_WORKLOAD, SL_HOOK_INGRESS, {});
    if (log_skip.empty()) {
      bed.set_chain(SL_ROLE_DATA, SL_HOOK_INGRESS, {log_off->fd});
      bed.set_chain(SL_ROLE_TUNNEL, SL_HOOK_INGRESS, {log_all->fd});
    }
    bed.install_chains();
    RoleRules rules{SL_FAULT_DROP, SL_FAULT_DROP};
    auto entry_for = [&](sl_role role) {
      return std::make_unique<EntryProgram>(
          config, EntrySettings{"bench0", role, 0, bed.bank(), true, rules});
    };
    auto entry_empty = entry_for(SL_ROLE_WORKLOAD);
    std::unique_ptr<EntryProgram> entry_log_off, entry_log_all;
    if (log_skip.empty()) {
      entry_log_off = entry_for(SL_ROLE_DATA);
      entry_log_all = entry_for(SL_ROLE_TUNNEL);
    }

    // Ring buffer consumer, used to empty sl_events between log-on runs.
    std::uint64_t consumed = 0;
    ring_buffer* ring = nullptr;
    if (log_skip.empty()) {
      ring = ring_buffer__new(
          bed.map_fd(SL_MAP_EVENTS),
          [](void* c, void*, size_t) {
            ++*static_cast<std::uint64_t*>(c);
            return 0;
          },
          &consumed, nullptr);
      if (!ring) throw Error("cannot open sl_events: " + errno_text(errno));
    }
    auto drain = [&] {
      if (ring) ring_buffer__consume(ring);
    };
    // Events that fit in the ring (1 MiB; ~128 bytes per event with header).
    const std::uint32_t room_repeat =
        std::min<std::uint32_t>(opt.repeat, SL_EVENTS_RING_BYTES / 256);

    std::vector<Case> cases;
    auto add = [&](std::string key, std::string label, int fd, std::uint32_t repeat,
                   std::function<void()> before = {}, std::string skipped = {}) {
      cases.push_back(Case{std::move(key), std::move(label), fd, repeat, std::move(before),
                           std::move(skipped), {}, {}});
    };
    add("noop", "(a) no-op tc program", bpf_program__fd(noop->progs.bench_noop), opt.repeat);
    add("entry_empty", "(b) entry + empty chain", entry_empty->fd(SL_HOOK_INGRESS), opt.repeat);
    add("entry_log_off", "(c) entry + log stage, no rule matches",
        entry_log_off ? entry_log_off->fd(SL_HOOK_INGRESS) : -1, opt.repeat, {}, log_skip);
    add("entry_log_on", "(d) entry + log on, ring has room",
        entry_log_all ? entry_log_all->fd(SL_HOOK_INGRESS) : -1, room_repeat, drain, log_skip);
    add("entry_log_on_full", "(d') entry + log on, ring full",
        entry_log_all ? entry_log_all->fd(SL_HOOK_INGRESS) : -1, opt.repeat, {}, log_skip);
    std::size_t main_cases = cases.size();
    add("m_ctx_lookup", "sl_state lookup", bpf_program__fd(micro->progs.m_ctx_lookup), opt.repeat);
    add("m_ctx_memset", "sl_state lookup + memset ctx",
        bpf_program__fd(micro->progs.m_ctx_memset), opt.repeat);
    add("m_settings", "sl_settings lookup", bpf_program__fd(micro->progs.m_settings), opt.repeat);
    add("m_count", "sl_state lookup + counter update", bpf_program__fd(micro->progs.m_count),
        opt.repeat);
    add("m_tail", "one tail call, constant key", bpf_program__fd(micro->progs.m_tail), opt.repeat);
    add("m_tail_dyn", "one tail call, key not constant",
      bpf_program__fd(micro->progs.m_tail_dyn), opt.repeat);
  add("m_ktime", "bpf_ktime_get_ns (log on only)", bpf_program__fd(micro->progs.m_ktime),
        opt.repeat);

    // Ring buffer submit by wakeup flag (private ring, drained before each run).
    std::uint64_t bench_consumed = 0;
    ring_buffer* bench_ring = ring_buffer__new(
        bpf_map__fd(micro->maps.bench_ring),
        [](void* c, void*, size_t) {
          ++*static_cast<std::uint64_t*>(c);
          return 0;
        },
        &bench_consumed, nullptr);
    if (!bench_ring) throw Error("cannot open bench_ring: " + errno_text(errno));
    auto drain_bench = [&] { ring_buffer__consume(bench_ring); };
    add("m_rb_default", "ringbuf submit, adaptive wakeup", bpf_program__fd(micro->progs.m_rb_default),
        room_repeat, drain_bench);
    add("m_rb_no_wakeup", "ringbuf submit, BPF_RB_NO_WAKEUP",
        bpf_program__fd(micro->progs.m_rb_no_wakeup), room_repeat, drain_bench);
    add("m_rb_force_wakeup", "ringbuf submit, BPF_RB_FORCE_WAKEUP",
        bpf_program__fd(micro->progs.m_rb_force_wakeup), room_repeat, drain_bench);

    // Sanity: every measured case accepts the packet.
    for (auto& c : cases) {
      if (!c.skipped.empty()) continue;
      if (c.before) c.before();
      RunResult r;
      if (int err = Testbed::try_run(c.fd, pkt.bytes, r)) throw Error(c.label + ": " + errno_text(err));
      if (r.verdict != TC_ACT_OK)
        throw Error(c.label + ": verdict " + std::to_string(r.verdict) + ", expected TC_ACT_OK");
    }
    drain();

    // Warm-up, then interleaved rounds.
    for (auto& c : cases) {
      if (!c.skipped.empty()) continue;
      RunResult r;
      Testbed::try_run(c.fd, pkt.bytes, r, std::min<std::uint32_t>(opt.repeat, 100'000));
    }
    drain();
    for (int round = 0; round < opt.rounds; ++round) {
      for (auto& c : cases) {
        if (!c.skipped.empty()) continue;
        if (c.before) c.before();
        RunResult r;
        timespec t0{}, t1{};
        clock_gettime(CLOCK_MONOTONIC, &t0);
        if (int err = Testbed::try_run(c.fd, pkt.bytes, r, c.repeat))
          throw Error(c.label + ": " + errno_text(err));
        clock_gettime(CLOCK_MONOTONIC, &t1);
        c.samples.push_back(r.duration_ns);
        double wall = (t1.tv_sec - t0.tv_sec) * 1e9 + (t1.tv_nsec - t0.tv_nsec);
        c.wall_samples.push_back(wall / c.repeat);
      }
    }
    drain();

    // Log stage statistics (events written / lost because the ring was full).
    std::uint64_t log_events = 0, log_lost = 0;
    if (log_skip.empty()) {
      UniqueFd stats(bpf_obj_get((config.map_pin_dir() + "/log_stats").c_str()));
      if (stats) {
        struct Stats { std::uint64_t events, lost, reserved[2]; };
        std::vector<Stats> per_cpu(Testbed::ncpus());
        __u32 zero = 0;
        if (bpf_map_lookup_elem(stats.get(), &zero, per_cpu.data()) == 0)
          for (const auto& s : per_cpu) {
            log_events += s.events;
            log_lost += s.lost;
          }
      }
    }
    if (ring) ring_buffer__free(ring);
    ring_buffer__free(bench_ring);

    // duration is an integer ns average per call: for sub-ns precision use
    // more rounds; the ratio uses medians.
    double noop_ns = cases[0].median();
    double entry_ns = cases[1].median();
    double ratio = entry_ns / noop_ns;
    bool pass = ratio <= kTargetRatio;
    std::string jit = read_first_line("/proc/sys/net/core/bpf_jit_enable");
    std::string method =
        "BPF_PROG_TEST_RUN on CPU " + std::to_string(bed.cpu()) + ", " +
        std::to_string(opt.repeat) + " packets per call (the ring-has-room case: " +
        std::to_string(room_repeat) + "), kernel-measured ns/packet; " +
        std::to_string(opt.rounds) +
        " rounds, cases interleaved round-robin in every round so drift hits all alike; "
        "median over rounds (ns/packet and the ratio: the kernel's own timing, integer ns, "
        "which pauses across reschedules; wall ns: clock around the call / packets, finer "
        "but includes preemption); 64-byte IPv4/UDP frame; ingress entry, drop rules; log off.";

    if (opt.json) {
      std::ostringstream o;
      o << "{\n  \"method\": \"" << json_escape(method) << "\",\n  \"kernel_jit\": \"" << jit
        << "\",\n  \"cases\": [\n";
      for (std::size_t i = 0; i < cases.size(); ++i) {
        const Case& c = cases[i];
        o << "    {\"name\": \"" << c.key << "\", \"group\": \""
          << (i < main_cases ? "main" : "breakdown") << "\", \"repeat\": " << c.repeat;
        if (c.skipped.empty())
          o << ", \"ns_per_packet\": " << num(c.median(), 2)
            << ", \"ratio_vs_noop\": " << num(c.median() / noop_ns, 3)
            << ", \"wall_ns_per_packet\": " << num(c.wall_median(), 2)
            << ", \"spread_pct\": " << num(c.spread(), 1) << ", \"samples\": [";
        else
          o << ", \"skipped\": \"" << json_escape(c.skipped) << "\"";
        if (c.skipped.empty()) {
          for (std::size_t s = 0; s < c.samples.size(); ++s)
            o << (s ? ", " : "") << c.samples[s];
          o << "]";
        }
        o << "}" << (i + 1 < cases.size() ? "," : "") << "\n";
      }
      o << "  ],\n  \"log_stage\": {\"events\": " << log_events << ", \"lost\": " << log_lost
        << ", \"consumed\": " << consumed << "},\n";
      o << "  \"target\": {\"case\": \"entry_empty\", \"max_ratio_vs_noop\": " << kTargetRatio
        << ", \"ratio\": " << num(ratio, 3) << ", \"result\": \"" << (pass ? "PASS" : "MISS")
        << "\"}\n}\n";
      std::cout << o.str();
    } else {
      std::printf("sluice-bench: per-packet cost with BPF_PROG_TEST_RUN\n");
      std::printf("method: %s\nJIT: bpf_jit_enable=%s\n\n", method.c_str(), jit.c_str());
      auto row = [&](const Case& c) {
        if (!c.skipped.empty())
          std::printf("  %-38s %10s   %s\n", c.label.c_str(), "skipped", c.skipped.c_str());
        else
          std::printf("  %-38s %10s %9s %10s   ±%s%%\n", c.label.c_str(),
                      num(c.median(), 0).c_str(), (num(c.median() / noop_ns, 2) + "x").c_str(),
                      num(c.wall_median(), 2).c_str(), num(c.spread(), 0).c_str());
      };
      std::printf("  %-38s %10s %9s %10s   %s\n", "case", "ns/packet", "vs no-op", "wall ns",
                  "spread");
      for (std::size_t i = 0; i < main_cases; ++i) row(cases[i]);
      std::printf("\n  breakdown (each alone, test_run floor included; ringbuf cases: %u records\n"
                  "  per call into an emptied 1 MiB ring):\n",
                  room_repeat);
      for (std::size_t i = main_cases; i < cases.size(); ++i) row(cases[i]);
      if (log_skip.empty())
        std::printf("\n  log stage: %llu events written, %llu lost (ring full), %llu consumed\n",
                    static_cast<unsigned long long>(log_events),
                    static_cast<unsigned long long>(log_lost),
                    static_cast<unsigned long long>(consumed));
      std::printf("\ntarget: entry + empty chain <= %.1fx no-op: %.2fx -> %s\n", kTargetRatio, ratio,
                  pass ? "PASS" : "MISS");
    }
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "sluice-bench: %s\n", e.what());
    return 1;
  }
}
