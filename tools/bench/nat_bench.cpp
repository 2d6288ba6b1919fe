// sluice-nat-bench: what service load balancing (the nat plugin, on top of
// conntrack) costs at 10,000 services × 10 backends.
//
//   sudo sluice-nat-bench [--services N] [--backends B] [--reps R]
//                         [--change-reps C] [--rounds K] [--calls M]
//
// Control plane: conntrack and nat are loaded the way sluiced loads them (a
// Dataplane for the shared maps, then PluginHost + NodeHost with a NodeConfig
// from parse_config, in a private instance slnb-<pid>-*). Service files are
// generated as TOML, written to a private state directory
// (<tmp>/slnb-<pid>-state/<layout>/) and handed to nat by sluiced's
// ResourceRouter, so what is timed is sluiced's whole cost of a change:
// reading the file, checking its syntax (the router) and nat's reconcile()
// (timed on its own as well: "router" is the difference). Writing the files
// is not timed. Timed: a from-scratch load (load_all: full reconcile on
// empty maps), the apply of one rewritten file in which one service has one
// backend replaced, and the apply of a file in which one service is added
// before all others (every other block of the file moves down), then
// removed again; for three layouts of the same services: 100 files × 100
// services, one file of all services, and files of 100 with the changed
// service alone in its own file.
//
// Data plane: BPF_PROG_TEST_RUN of the real entry program + conntrack + nat
// chain (workload ingress), in two instances loaded side by side: one with a
// single service, one with all of them. Cases, interleaved call by call:
// a no-op tc program, a new TCP flow (SYN) to the service in each instance,
// and a packet of an established NAT flow in each instance. Every call runs
// one packet (repeat = 1): every SYN has its own source port, so each is a
// new flow; the conntrack tables are emptied between rounds (untimed).
#include <sched.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <sluice/bpf/conntrack.h>
#include <sluice/testing/stage_test.hpp>

#include "bench_noop.skel.h"
#include "sluice/core/config.hpp"
#include "sluice/core/dataplane.hpp"
#include "sluice/core/error.hpp"
#include "sluice/core/node_host.hpp"
#include "sluice/core/pipeline.hpp"
#include "sluice/core/plugin_host.hpp"
#include "sluice/core/state_dir.hpp"

using namespace sluice;
using sluice::testing::Bytes;
using sluice::testing::PacketBuilder;
using sluice::testing::RunResult;
using sluice::testing::Testbed;

namespace {

constexpr double kScratchTargetMs = 2000;
constexpr double kChangeTargetMs = 10;
constexpr double kNewFlowMaxRatio = 1.10;  // 10k services vs 1 service

struct Options {
  int services = 10'000;
  int backends = 10;
  int reps = 3;          // from-scratch loads per layout
  int change_reps = 9;   // one-service changes (and insertions) per layout
  int rounds = 9;        // data plane rounds
  int calls = 1000;      // calls per case per round
};

double median(std::vector<double> v) {
  if (v.empty()) return NAN;
  std::sort(v.begin(), v.end());
  return v.size() % 2 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
}

std::string num(double v, int prec = 1) {
  if (std::isnan(v)) return "-";
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.*f", prec, v);
  return buf;
}

std::string ip4(int a, int b, int c, int d) {
  return std::to_string(a) + "." + std::to_string(b) + "." + std::to_string(c) + "." +
         std::to_string(d);
}
// Service i: cluster IP 10.96.x.y (y = 1..250), port 80 -> 8080.
std::string cluster_ip(int i) { return ip4(10, 96 + i / 64000, (i / 250) % 256, i % 250 + 1); }
// Backend k (= service * backends + j): 10.64.x.y onwards, unique.
std::string backend_ip(int k) { return ip4(10, 64 + k / 65536, (k / 256) % 256, k % 256); }
// The replacement for backend 0 of a changed service (variant 1, 2, ...).
std::string replaced_ip(int i, int variant) {
  return ip4(10, 120 + variant % 2, (i / 256) % 256, i % 256);
}

// One [[service]] table. variant 0 = as generated; >0 = backend 0 replaced.
void append_service(std::string& out, int i, int backends, int variant) {
  out += "[[service]]\nname = \"svc-" + std::to_string(i) +
         "\"\nnamespace = \"bench\"\ncluster_ip = \"" + cluster_ip(i) +
         "\"\nports = [{ port = 80, protocol = \"tcp\", target_port = 8080 }]\nbackends = [\n";
  for (int j = 0; j < backends; ++j) {
    std::string ip = (j == 0 && variant > 0) ? replaced_ip(i, variant) : backend_ip(i * backends + j);
    out += "  { ip = \"" + ip + "\", node = \"node-" + std::to_string(j % 8) + "\" },\n";
  }
  out += "]\n\n";
}

// A layout: the services split into files; the changed service is 0 and
// lives in files[0].
struct Layout {
  std::string key, label;
  std::vector<std::pair<int, int>> ranges;  // [first, last) service per file
};

// `first` (>= 0): one more service, before the range's.
std::string file_text(const std::pair<int, int>& range, int backends, int variant0,
                      int first = -1) {
  std::string out;
  out.reserve(static_cast<std::size_t>(range.second - range.first + 1) * (150 + 50 * backends));
  if (first >= 0) append_service(out, first, backends, 0);
  for (int i = range.first; i < range.second; ++i)
    append_service(out, i, backends, i == 0 ? variant0 : 0);
  return out;
}

double ms_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

void write_file(const std::filesystem::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  if (!out.flush()) throw Error("cannot write " + path.string());
}

// A private state directory, removed with its files at the end.
struct StateRoot {
  std::filesystem::path dir;
  explicit StateRoot(std::filesystem::path d) : dir(std::move(d)) {
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir);
  }
  ~StateRoot() {
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
  }
  std::filesystem::path layout_dir(const Layout& l) const { return dir / l.key; }
  std::filesystem::path path_of(const Layout& l, std::size_t f) const {
    return layout_dir(l) / (l.key + "-" + std::to_string(f) + ".toml");
  }
};

// nat as the router sees it, with its reconcile() timed on its own.
class TimedNat final : public Plugin {
 public:
  explicit TimedNat(PluginHandle& nat) : nat_(nat) {}
  std::string description() const override { return nat_.description(); }
  void configure(const ConfigSource&) override {}
  std::vector<StageSpec> stages() const override { return {}; }
  void load(Host&) override {}
  int stage_fd(std::string_view) const override { return -1; }
  std::vector<std::string> resource_kinds() const override { return nat_.resource_kinds(); }
  void reconcile(const ResourceChange& change) override {
    ++calls;
    auto t0 = std::chrono::steady_clock::now();
    try {
      nat_.reconcile(change);
    } catch (const std::exception& e) {
      error = e.what();
      throw;
    }
    last_ms = ms_since(t0);
  }
  int calls = 0;
  double last_ms = 0;
  std::string error;

 private:
  PluginHandle& nat_;
};

// sluiced's router in front of nat, for one layout's state directory.
struct RoutedNat {
  std::vector<LoadedPlugin> plugins;
  TimedNat* nat = nullptr;
  StateDirectory state;
  ResourceRouter router;

  RoutedNat(PluginHandle& real_nat, const std::filesystem::path& dir)
      : plugins(1), state(dir.string()), router(plugins) {
    plugins[0].name = "nat";
    plugins[0].state = PluginState::loaded;
    auto timed_nat = std::make_unique<TimedNat>(real_nat);
    nat = timed_nat.get();
    plugins[0].plugin = PluginHandle(std::move(timed_nat), "nat", kPluginAbiMinor);
  }

  // Runs a router step; returns {total ms, nat's part}, throws if nat did not apply it.
  template <class Step>
  std::pair<double, double> timed(const char* what, Step&& step) {
    int before = nat->calls;
    nat->error.clear();
    auto t0 = std::chrono::steady_clock::now();
    step(router);
    double total = ms_since(t0);
    if (nat->calls != before + 1 || !nat->error.empty())
      throw Error(std::string(what) + ": nat did not apply it" +
                  (nat->error.empty() ? " (see the log)" : ": " + nat->error));
    return {total, nat->last_ms};
  }
};


// conntrack + nat loaded into a private instance the way sluiced loads them.
struct Instance {
  NodeConfig config;
  std::unique_ptr<Dataplane> dataplane;
  std::unique_ptr<NodeHost> host;
  std::unique_ptr<PluginHost> plugins;
  std::unique_ptr<EntryProgram> entry;
  PluginHandle* nat = nullptr;
  int ct_fd = -1;

  explicit Instance(const std::string& instance)
      : config(parse_config("[node]\nname = \"bench\"\n[bpf]\nroot = \"/sys/fs/bpf\"\ninstance = \"" +
                                instance +
                                "\"\n[plugins]\nenabled = [\"conntrack\", \"nat\"]\n"
                                // Made-up packets from addresses routed elsewhere:
                                // no workload source check.
                                "[plugins.conntrack]\nclean_interval = 3600\n"
                                "workload_source_check = false\n"
                                // Only tc programs are measured; connect-time load
                                // balancing would attach to the machine's root cgroup.
                                "[plugins.nat]\nconnect_time_lb = \"off\"\n",
                            "<sluice-nat-bench>")) {
    Dataplane::cleanup(config);  // a leftover of a killed run
    dataplane = std::make_unique<Dataplane>(config);
    host = std::make_unique<NodeHost>(config);
    plugins = std::make_unique<PluginHost>(config, *host);
    plugins->open_and_configure(true);
    plugins->load_bpf();
    std::vector<DeclaredStage> stages;
    for (auto& p : plugins->plugins()) {
      if (p.state != PluginState::loaded)
        throw Error("plugin " + p.name + ": " + (p.error.empty() ? "failed" : p.error));
      for (const auto& s : p.stages) stages.push_back({p.name, s});
      if (p.name == "nat") nat = &p.plugin;
    }
    if (!nat) throw Error("nat plugin not loaded");
    auto chains = compute_chains(stages);
    dataplane->stage_chains(chains, [&](const DeclaredStage& stage) {
      for (const auto& p : plugins->plugins())
        if (p.name == stage.plugin) return p.plugin.stage_fd(stage.spec.name);
      return -1;
    });
    dataplane->commit_bank();
    entry = std::make_unique<EntryProgram>(
        config, EntrySettings{"bench0", SL_ROLE_WORKLOAD, 0, dataplane->bank(), true,
                              RoleRules{SL_FAULT_DROP, SL_FAULT_DROP}});
    ct_fd = bpf_obj_get((config.map_pin_dir() + "/" SL_MAP_CONNTRACK).c_str());
    if (ct_fd < 0) throw Error("sl_conntrack is not pinned: " + errno_text(errno));
  }
  ~Instance() {
    if (ct_fd >= 0) close(ct_fd);
    entry.reset();
    if (plugins) plugins->shutdown(true);
    plugins.reset();
    dataplane.reset();
    try {
      Dataplane::cleanup(config);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "sluice-nat-bench: cleanup of %s: %s\n", config.pin_dir().c_str(),
                   e.what());
    }
  }
  int entry_fd() const { return entry->fd(SL_HOOK_INGRESS); }

  std::vector<sl_ct_key> ct_keys() const {
    std::vector<sl_ct_key> keys;
    sl_ct_key key{}, next{};
    const sl_ct_key* prev = nullptr;
    while (bpf_map_get_next_key(ct_fd, prev, &next) == 0) {
      keys.push_back(next);
      key = next;
      prev = &key;
    }
    return keys;
  }
  std::size_t ct_clear() const {
    auto keys = ct_keys();
    for (const auto& k : keys) bpf_map_delete_elem(ct_fd, &k);
    return keys.size();
  }
};

RunResult run_or_throw(int fd, const Bytes& pkt, const char* what) {
  RunResult r;
  if (int err = Testbed::try_run(fd, pkt, r, 1)) throw Error(std::string(what) + ": " + errno_text(err));
  return r;
}

Bytes tcp(const std::string& src, const std::string& dst, std::uint16_t sport,
          std::uint16_t dport, std::uint8_t flags) {
  return PacketBuilder().ipv4(src, dst).tcp(sport, dport, flags).payload(10).build().bytes;
}

std::string daddr_of(const Bytes& b) { return ip4(b[30], b[31], b[32], b[33]); }

int usage(const char* argv0, int code) {
  std::fprintf(code ? stderr : stdout,
               "usage: %s [--services N] [--backends B] [--reps R] [--change-reps C]\n"
               "          [--rounds K] [--calls M]\n"
               "Service load balancing (conntrack + nat) at scale: reconcile times and\n"
               "BPF_PROG_TEST_RUN per-packet cost (needs root). Defaults: 10000 services x 10\n"
               "backends, 3 from-scratch and 9 change repetitions, 9 rounds x 1000 calls.\n",
               argv0);
  return code;
}

}  // namespace

int main(int argc, char** argv) {
  Options opt;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next_int = [&] { return std::max(1, std::stoi(argv[++i])); };
    if (a == "--services" && i + 1 < argc) opt.services = next_int();
    else if (a == "--backends" && i + 1 < argc) opt.backends = next_int();
    else if (a == "--reps" && i + 1 < argc) opt.reps = next_int();
    else if (a == "--change-reps" && i + 1 < argc) opt.change_reps = next_int();
    else if (a == "--rounds" && i + 1 < argc) opt.rounds = next_int();
    else if (a == "--calls" && i + 1 < argc) opt.calls = std::min(next_int(), 60000);
    else if (a == "-h" || a == "--help") return usage(argv[0], 0);
    else return usage(argv[0], 2);
  }
  if (geteuid() != 0) {
    std::fprintf(stderr, "sluice-nat-bench: needs root (BPF_PROG_TEST_RUN, bpffs pins)\n");
    return 1;
  }
  spdlog::set_level(spdlog::level::warn);
  // One CPU for everything: BPF_PROG_TEST_RUN runs on the caller's CPU.
  int cpu = sched_getcpu();
  {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    sched_setaffinity(0, sizeof(set), &set);
  }

  try {
    const std::string base = "slnb-" + std::to_string(getpid());
    std::printf("sluice-nat-bench: %d services x %d backends (TCP port 80 -> 8080), instances %s-*\n\n",
                opt.services, opt.backends, base.c_str());

    // ---- control plane --------------------------------------------------------------
    auto big = std::make_unique<Instance>(base + "-all");
    const int n = opt.services;
    StateRoot state_root(std::filesystem::temp_directory_path() / (base + "-state"));
    std::vector<Layout> layouts;
    {
      Layout l{"f100", "100 files x 100 services", {}};
      for (int f = 0; f * 100 < n; ++f) l.ranges.push_back({f * 100, std::min(n, f * 100 + 100)});
      layouts.push_back(l);
      layouts.push_back(Layout{"big", "1 file x " + std::to_string(n) + " services", {{0, n}}});
      Layout s{"alone", "changed service alone in its file (+ files of 100)", {{0, 1}}};
      for (int f = 1; f < n; f += 100) s.ranges.push_back({f, std::min(n, f + 100)});
      layouts.push_back(s);
    }
    struct CpRow {
      std::string label, what;
      std::vector<double> total_ms, nat_ms;
      double target;
    };
    std::vector<CpRow> rows;
    std::vector<std::string> held;  // the files nat holds now
    std::unique_ptr<RoutedNat> routed;
    for (std::size_t li = 0; li < layouts.size(); ++li) {
      const Layout& l = layouts[li];
      std::filesystem::create_directories(state_root.layout_dir(l));
      std::size_t bytes = 0;
      for (std::size_t f = 0; f < l.ranges.size(); ++f) {
        std::string text = file_text(l.ranges[f], opt.backends, 0);
        bytes += text.size();
        write_file(state_root.path_of(l, f), text);
      }
      CpRow scratch{l.label, "from scratch (full, " + std::to_string(l.ranges.size()) + " files, " +
                                 num(bytes / 1048576.0, 1) + " MiB)",
                    {}, {}, kScratchTargetMs};
      for (int r = 0; r < opt.reps; ++r) {
        ResourceChange clear;  // empty maps again (untimed)
        clear.full = true;
        clear.removed = held;
        big->nat->reconcile(clear);
        held.clear();
        routed.reset();
        routed = std::make_unique<RoutedNat>(*big->nat, state_root.layout_dir(l));
        auto [total, nat_ms] = routed->timed("load_all", [&](ResourceRouter& router) {
          router.load_all(routed->state);
        });
        scratch.total_ms.push_back(total);
        scratch.nat_ms.push_back(nat_ms);
        for (std::size_t f = 0; f < l.ranges.size(); ++f) held.push_back(state_root.path_of(l, f).string());
      }
      const std::string changed_path = state_root.path_of(l, 0).string();
      auto rewrite = [&](const std::string& text, const char* what) {
        write_file(changed_path, text);
        return routed->timed(what, [&](ResourceRouter& router) { router.apply({changed_path}); });
      };
      // change_reps rewrites of the changed file, version r being text_of(r).
      auto time_rewrites = [&](CpRow& row, const std::function<std::string(int)>& text_of) {
        for (int r = 0; r < opt.change_reps; ++r) {
          auto [total, nat_ms] = rewrite(text_of(r), row.what.c_str());
          row.total_ms.push_back(total);
          row.nat_ms.push_back(nat_ms);
        }
      };
      const std::string services_in_file =
          std::to_string(l.ranges[0].second - l.ranges[0].first) + " service(s)";
      CpRow change{l.label, "1 service changed, its file of " + services_in_file + " rewritten",
                   {}, {}, kChangeTargetMs};
      time_rewrites(change, [&](int r) { return file_text(l.ranges[0], opt.backends, r + 1); });
      // Service 0 as generated again, then one service in and out before all
      // others: every other block of the file moves down, then back up.
      const std::string as_generated = file_text(l.ranges[0], opt.backends, 0);
      rewrite(as_generated, "restore");
      CpRow insert{l.label, "1 service added first in its file of " + services_in_file + ", removed",
                   {}, {}, kChangeTargetMs};
      time_rewrites(insert, [&](int r) {
        return r % 2 ? as_generated : file_text(l.ranges[0], opt.backends, 0, n);
      });
      if (opt.change_reps % 2) rewrite(as_generated, "restore");  // the added service is there
      rows.push_back(std::move(scratch));
      rows.push_back(std::move(change));
      rows.push_back(std::move(insert));
      // The last layout stays loaded: the data plane runs against it.
    }
    std::printf("control plane: sluiced's router (read + syntax check) and nat reconcile(), wall\n"
                "clock, median of %d (from scratch) / %d (change); router = total - nat\n",
                opt.reps, opt.change_reps);
    std::printf("  %-50s %-60s %9s %8s %8s %12s %8s\n", "layout", "step", "total ms", "router",
                "nat", "total min-max", "target");
    for (const auto& r : rows) {
      double m = median(r.total_ms), nat_m = median(r.nat_ms);
      auto [lo, hi] = std::minmax_element(r.total_ms.begin(), r.total_ms.end());
      std::printf("  %-50s %-60s %9s %8s %8s %12s %8s\n", r.label.c_str(), r.what.c_str(),
                  num(m, 2).c_str(), num(m - nat_m, 2).c_str(), num(nat_m, 2).c_str(),
                  (num(*lo, 1) + "-" + num(*hi, 1)).c_str(),
                  ((m < r.target ? "PASS <" : "MISS <") + num(r.target, 0)).c_str());
    }
    std::fflush(stdout);

    // ---- data plane -----------------------------------------------------------------
    auto one = std::make_unique<Instance>(base + "-one");
    {
      ResourceChange c;
      c.full = true;
      c.upserted.push_back({"/bench/state/one.toml", file_text({0, 1}, opt.backends, 0)});
      one->nat->reconcile(c);
    }
    struct NoopDel {
      void operator()(bench_noop* s) const { bench_noop__destroy(s); }
    };
    std::unique_ptr<bench_noop, NoopDel> noop(bench_noop__open_and_load());
    if (!noop) throw Error("cannot load the no-op program: " + errno_text(errno));
    const int noop_fd = bpf_program__fd(noop->progs.bench_noop);

    const std::string vip = cluster_ip(0);
    const std::string est_client = "10.63.255.1";
    const std::uint16_t est_port = 33333;
    Bytes est_pkt = tcp(est_client, vip, est_port, 80, sluice::testing::kTcpAck);
    // Opens the established flow: SYN, the backend's SYN-ACK, the client's ACK.
    auto establish = [&](Instance& in) {
      RunResult r = run_or_throw(in.entry_fd(), tcp(est_client, vip, est_port, 80, sluice::testing::kTcpSyn), "SYN");
      std::string backend = daddr_of(r.out);
      if (r.verdict != TC_ACT_OK || backend == vip) throw Error("the SYN was not DNATed");
      run_or_throw(in.entry_fd(),
                   tcp(backend, est_client, 8080, est_port,
                       sluice::testing::kTcpSyn | sluice::testing::kTcpAck),
                   "SYN-ACK");
      r = run_or_throw(in.entry_fd(), est_pkt, "ACK");
      if (r.verdict != TC_ACT_OK || daddr_of(r.out) != backend)
        throw Error("the established flow's ACK was not DNATed to its backend");
    };

    struct Case {
      std::string label;
      std::function<Bytes(int round, int call)> packet;
      int fd;
      Instance* inst;  // whose NAT must have rewritten the packet (nullptr: no-op)
      std::vector<double> round_medians, ratios;
      std::vector<double> cur;
    };
    // New flows: client 10.62.<round>.<1 + call/60000>, source port 1024 + call.
    auto syn = [&](int round, int call) {
      return tcp(ip4(10, 62, round % 256, 1), vip, static_cast<std::uint16_t>(1024 + call), 80,
                 sluice::testing::kTcpSyn);
    };
    std::vector<Case> cases;
    cases.push_back({"no-op tc program", [&](int, int) { return est_pkt; }, noop_fd, nullptr, {}, {}, {}});
    cases.push_back({"new flow (SYN), 1 service", syn, one->entry_fd(), one.get(), {}, {}, {}});
    cases.push_back({"new flow (SYN), " + std::to_string(n) + " services", syn, big->entry_fd(),
                     big.get(), {}, {}, {}});
    cases.push_back({"established NAT flow, 1 service", [&](int, int) { return est_pkt; },
                     one->entry_fd(), one.get(), {}, {}, {}});
    cases.push_back({"established NAT flow, " + std::to_string(n) + " services",
                     [&](int, int) { return est_pkt; }, big->entry_fd(), big.get(), {}, {}, {}});

    std::size_t ct_expected = 2 + 2 * static_cast<std::size_t>(opt.calls);
    std::size_t ct_bad = 0;
    for (int round = -1; round < opt.rounds; ++round) {  // round -1: warm-up
      for (Instance* in : {one.get(), big.get()}) {
        in->ct_clear();
        establish(*in);
      }
      for (auto& c : cases) c.cur.clear();
      for (int call = 0; call < opt.calls; ++call) {
        for (auto& c : cases) {
          Bytes pkt = c.packet(round + 1, call);
          RunResult r = run_or_throw(c.fd, pkt, c.label.c_str());
          if (r.verdict != TC_ACT_OK)
            throw Error(c.label + ": verdict " + std::to_string(r.verdict));
          if (c.inst && daddr_of(r.out) == vip) throw Error(c.label + ": not DNATed");
          c.cur.push_back(r.duration_ns);
        }
      }
      // Every SYN made a NAT_FWD + NAT_REV pair (so each was a new flow).
      for (Instance* in : {one.get(), big.get()})
        if (in->ct_keys().size() != ct_expected) ++ct_bad;
      if (round < 0) continue;
      double noop_m = median(cases[0].cur);
      for (auto& c : cases) {
        double m = median(c.cur);
        c.round_medians.push_back(m);
        c.ratios.push_back(m / noop_m);
      }
    }
    for (Instance* in : {one.get(), big.get()}) in->ct_clear();

    std::printf("\ndata plane: BPF_PROG_TEST_RUN on CPU %d, entry + conntrack + nat (workload ingress),\n"
                "1 packet per call (repeat = 1), %d calls per case per round, cases interleaved call\n"
                "by call; every SYN from its own source port (a new flow), conntrack tables emptied\n"
                "between rounds; median per round, then median of %d rounds (kernel ns, integer)\n",
                cpu, opt.calls, opt.rounds);
    if (ct_bad)
      std::printf("  WARNING: %zu table check(s) did not find 2 entries per SYN\n", ct_bad);
    std::printf("  %-42s %10s %10s %14s\n", "case", "ns/packet", "vs no-op", "ratio min-max");
    for (const auto& c : cases) {
      auto [lo, hi] = std::minmax_element(c.ratios.begin(), c.ratios.end());
      std::printf("  %-42s %10s %9sx %14s\n", c.label.c_str(), num(median(c.round_medians), 0).c_str(),
                  num(median(c.ratios), 2).c_str(), (num(*lo, 2) + "-" + num(*hi, 2)).c_str());
    }
    std::vector<double> scale;  // per round: new flow 10k / new flow 1
    for (int r = 0; r < opt.rounds; ++r)
      scale.push_back(cases[2].round_medians[r] / cases[1].round_medians[r]);
    double s = median(scale);
    std::printf("\ntarget: new flow with %d services within 10%% of 1 service: %.3fx -> %s\n", n, s,
                s <= kNewFlowMaxRatio ? "PASS" : "MISS");
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "sluice-nat-bench: %s\n", e.what());
    return 1;
  }
}
