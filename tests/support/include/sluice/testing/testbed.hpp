// A stage test bed on the real kernel, without any interface: a private pin
// instance with the core's shared maps, chains of given stage programs, an
// entry program for a chosen role and rules, packets pushed through
// BPF_PROG_TEST_RUN, counters and the per-CPU packet context read back.
//
//   sluice::testing::Testbed bed;                 // needs root (CAP_BPF+CAP_NET_ADMIN)
//   bed.set_chain(SL_ROLE_WORKLOAD, SL_HOOK_INGRESS, {my_stage_fd});
//   bed.load_entry(SL_ROLE_WORKLOAD, {SL_FAULT_DROP, SL_FAULT_DROP});
//   auto r = bed.run(PacketBuilder().ipv4("10.0.0.1", "10.0.0.2").udp(1, 2).build());
//   EXPECT_EQ(r.verdict, TC_ACT_SHOT);
//   EXPECT_EQ(bed.counter(SL_R_PLUGIN_0).packets, 1u);
//
// Stage objects must be opened with open_opts() (pin_root_path = the bed's
// map pin dir) so that their sl_state/sl_jump/sl_counters are the bed's.
//
// Notes on BPF_PROG_TEST_RUN for tc programs (net/bpf/test_run.c):
//  * data_in must be at least ETH_HLEN (14) bytes, else EINVAL: a frame
//    shorter than an Ethernet header cannot be fed (see run() / try_run()).
//    Recent kernels (seen on 6.18) also refuse, with EINVAL, a frame whose
//    ethertype is IPv4/IPv6 but which lacks a full IP header (20/40 bytes)
//    after those 14 bytes: truncated-IP-header paths are unreachable here.
//  * skb->protocol is always set by eth_type_trans() on the first 14 bytes,
//    and the program sees the packet from byte 0. For an L3-device entry
//    (has_ethernet = false), which trusts skb->protocol, bytes 12..13 of the
//    bare IP packet must therefore read as the wanted ethertype: IPv4 with a
//    source address 8.0.x.x (0x0800), IPv6 with source bytes 4..5 = 86:dd
//    (e.g. 2001:db8:86dd::1). l3_protocol_of() tells what the kernel will set.
//  * The program runs on the calling CPU; the bed pins its thread to one CPU
//    so context() reads the right per-CPU slot.
#pragma once

#include <linux/if_ether.h>
#include <linux/pkt_cls.h>
#include <sched.h>
#include <signal.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include <sluice/core/config.hpp>
#include <sluice/core/dataplane.hpp>
#include <sluice/core/error.hpp>
#include <sluice/core/pipeline.hpp>

#include "sluice/testing/packet_builder.hpp"

namespace sluice::testing {

struct RunResult {
  int verdict = -1;      // tc verdict: TC_ACT_OK 0, TC_ACT_SHOT 2, TC_ACT_REDIRECT 7
  Bytes out;             // the packet as the program left it
  std::uint32_t duration_ns = 0;  // average per run, as the kernel measured it
};

inline const char* verdict_name(int verdict) {
  switch (verdict) {
    case TC_ACT_OK: return "TC_ACT_OK";
    case TC_ACT_SHOT: return "TC_ACT_SHOT";
    case TC_ACT_REDIRECT: return "TC_ACT_REDIRECT";
    default: return "?";
  }
}

inline const char* reason_name(std::uint32_t reason) {
  switch (reason) {
#define SL_REASON(id, num, name, kind) \
  case num: return name;
#include <sluice/bpf/reasons.def>
#undef SL_REASON
    default: return "unused";
  }
}

// The ethertype eth_type_trans() derives from a packet's first 14 bytes.
inline std::uint16_t l3_protocol_of(const Bytes& pkt) {
  if (pkt.size() < 14) return 0;
  return static_cast<std::uint16_t>((pkt[12] << 8) | pkt[13]);
}

class Testbed {
 public:
  explicit Testbed(const std::string& bpf_root = "/sys/fs/bpf") {
    remove_stale_instances(bpf_root);
    static std::atomic<unsigned> counter{0};
    std::string instance =
        "sltest-bpf-" + std::to_string(::getpid()) + "-" + std::to_string(counter++);
    config_ = std::make_unique<NodeConfig>(parse_config(
        "[node]\nname = \"testbed\"\n[bpf]\nroot = \"" + bpf_root + "\"\ninstance = \"" +
            instance + "\"\n",
        "<testbed>"));
    pin_to_one_cpu();
    try {
      dataplane_ = std::make_unique<Dataplane>(*config_);
      for (auto& chain : chains_) chain.clear();
      install_chains();
    } catch (...) {
      dataplane_.reset();
      Dataplane::cleanup(*config_);
      throw;
    }
  }

  ~Testbed() {
    entries_.clear();
    dataplane_.reset();
    try {
      Dataplane::cleanup(*config_);
    } catch (...) {
    }
  }

  Testbed(const Testbed&) = delete;
  Testbed& operator=(const Testbed&) = delete;

  const NodeConfig& config() const { return *config_; }
  Dataplane& dataplane() { return *dataplane_; }
  std::string map_pin_dir() const { return config_->map_pin_dir(); }
  int cpu() const { return cpu_; }

  // bpf_object_open_opts for a stage skeleton: reuse this bed's shared maps.
  // The returned object must outlive the open call.
  struct OpenOpts {
    std::string pin_root;
    bpf_object_open_opts opts{};
  };
  std::unique_ptr<OpenOpts> open_opts() const {
    auto o = std::make_unique<OpenOpts>();
    o->pin_root = config_->map_pin_dir();
    o->opts.sz = sizeof(o->opts);
    o->opts.pin_root_path = o->pin_root.c_str();
    return o;
  }

  // The stages of one (role, hook) chain as program fds, in order; -1 leaves
  // a hole. Takes effect with install_chains() (called for you by
  // load_entry()). The chain end always follows the last stage.
  void set_chain(sl_role role, sl_hook hook, std::vector<int> stage_fds) {
    chains_[chain_index(role, hook)] = std::move(stage_fds);
    dirty_ = true;
  }

  void install_chains() {
    std::array<Chain, SL_CHAINS> chains{};
    std::map<std::string, int> fds;
    for (unsigned r = 0; r < SL_ROLE_COUNT; ++r)
      for (unsigned h = 0; h < SL_HOOK_COUNT; ++h) {
        auto role = static_cast<sl_role>(r);
        auto hook = static_cast<sl_hook>(h);
        Chain& chain = chains[chain_index(role, hook)];
        chain.role = role;
        chain.hook = hook;
        const auto& list = chains_[chain_index(role, hook)];
        for (std::size_t i = 0; i < list.size(); ++i) {
          std::string name = std::string(role_name(role)) + "-" + hook_name(hook) + "-" +
                             std::to_string(i);
          StageSpec spec;
          spec.name = name;
          spec.order = static_cast<int>(i);
          chain.stages.push_back({"testbed", spec});
          fds[name] = list[i];
        }
      }
    dataplane_->stage_chains(chains, [&](const DeclaredStage& s) { return fds.at(s.spec.name); });
    dirty_ = false;
  }

  // Deletes one slot of a staged chain (position `pos`, 0 = first stage):
  // a hole appearing under a loaded entry.
  void delete_chain_slot(sl_role role, sl_hook hook, unsigned pos) {
    __u32 slot = sl_jump_base(dataplane_->bank(), role, hook) + pos;
    bpf_map_delete_elem(dataplane_->map_fd(SL_MAP_JUMP), &slot);
  }

  // Loads (or replaces) the entry program for `role`; it jumps into the
  // bank the chains were staged in and counts under `slot`.
  EntryProgram& load_entry(sl_role role, RoleRules rules, bool has_ethernet = true,
                           std::uint32_t slot = 0, const std::string& ifname = "sltest0") {
    if (dirty_) install_chains();
    entries_.clear();
    entries_.push_back(std::make_unique<EntryProgram>(
        *config_, EntrySettings{ifname, role, slot, dataplane_->bank(), has_ethernet, rules}));
    slot_ = slot;
    return *entries_.back();
  }
  EntryProgram& entry() {
    if (entries_.empty()) throw std::logic_error("Testbed: load_entry() first");
    return *entries_.back();
  }

  // Runs `pkt` through the entry program of `hook` once (or `repeat` times).
  RunResult run(const Bytes& pkt, sl_hook hook = SL_HOOK_INGRESS, std::uint32_t repeat = 1) {
    RunResult r;
    int err = try_run(entry().fd(hook), pkt, r, repeat);
    if (err) throw Error("BPF_PROG_TEST_RUN: " + errno_text(err));
    return r;
  }
  RunResult run(const Packet& pkt, sl_hook hook = SL_HOOK_INGRESS, std::uint32_t repeat = 1) {
    return run(pkt.bytes, hook, repeat);
  }

  // Raw BPF_PROG_TEST_RUN of any tc program; returns 0 or a positive errno.
  static int try_run(int prog_fd, const Bytes& pkt, RunResult& r, std::uint32_t repeat = 1) {
    r.out.assign(pkt.size() + 256, 0);
    LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = pkt.data(),
                .data_out = r.out.data(), .data_size_in = static_cast<__u32>(pkt.size()),
                .data_size_out = static_cast<__u32>(r.out.size()), .repeat = static_cast<int>(repeat));
    if (bpf_prog_test_run_opts(prog_fd, &opts) != 0) return errno;
    r.out.resize(opts.data_size_out);
    r.verdict = static_cast<int>(opts.retval);
    r.duration_ns = opts.duration;
    return 0;
  }

  // A counter summed over all CPUs.
  sl_counter counter(std::uint32_t slot, sl_hook hook, std::uint32_t reason) const {
    std::vector<sl_counter> per_cpu(ncpus());
    __u32 index = sl_counter_base(slot, hook) + reason;
    sl_counter sum{};
    if (bpf_map_lookup_elem(dataplane_->map_fd(SL_MAP_COUNTERS), &index, per_cpu.data()) != 0)
      throw Error("cannot read sl_counters: " + errno_text(errno));
    for (const auto& c : per_cpu) {
      sum.packets += c.packets;
      sum.bytes += c.bytes;
    }
    return sum;
  }
  // Shorthand for the slot of the loaded entry, ingress.
  sl_counter counter(std::uint32_t reason, sl_hook hook = SL_HOOK_INGRESS) const {
    return counter(slot_, hook, reason);
  }
  // Every reason of a (slot, hook), for "nothing else moved" checks.
  std::array<sl_counter, SL_REASON_COUNT> counters(std::uint32_t slot, sl_hook hook) const {
    std::array<sl_counter, SL_REASON_COUNT> all{};
    for (std::uint32_t reason = 0; reason < SL_REASON_COUNT; ++reason)
      all[reason] = counter(slot, hook, reason);
    return all;
  }

  // The packet context the last run left on this thread's CPU.
  sl_pkt_ctx context() const {
    constexpr std::size_t stride = (sizeof(sl_pkt_ctx) + 7) & ~std::size_t{7};
    std::vector<std::uint8_t> raw(stride * ncpus());
    __u32 zero = 0;
    if (bpf_map_lookup_elem(dataplane_->map_fd(SL_MAP_STATE), &zero, raw.data()) != 0)
      throw Error("cannot read sl_state: " + errno_text(errno));
    sl_pkt_ctx ctx{};
    std::memcpy(&ctx, raw.data() + stride * static_cast<std::size_t>(cpu_), sizeof(ctx));
    return ctx;
  }

  static std::size_t ncpus() {
    int n = libbpf_num_possible_cpus();
    return n > 0 ? static_cast<std::size_t>(n) : 1;
  }

 private:
  void pin_to_one_cpu() {
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof(set), &set) != 0) throw Error("sched_getaffinity failed");
    int cpu = sched_getcpu();
    if (cpu < 0 || !CPU_ISSET(cpu, &set)) {
      cpu = 0;
      while (cpu < CPU_SETSIZE && !CPU_ISSET(cpu, &set)) ++cpu;
    }
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(cpu, &one);
    if (sched_setaffinity(0, sizeof(one), &one) != 0) throw Error("sched_setaffinity failed");
    cpu_ = cpu;
  }

  // Instances left by test processes that died without cleaning up.
  static void remove_stale_instances(const std::string& bpf_root) {
    namespace fs = std::filesystem;
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator(bpf_root, ec)) {
      std::string name = entry.path().filename().string();
      if (name.rfind("sltest-bpf-", 0) != 0) continue;
      int pid = std::atoi(name.c_str() + 11);
      if (pid <= 0 || pid == ::getpid() || ::kill(pid, 0) == 0 || errno != ESRCH) continue;
      fs::remove_all(entry.path(), ec);
    }
  }

  std::unique_ptr<NodeConfig> config_;
  std::unique_ptr<Dataplane> dataplane_;
  std::vector<std::unique_ptr<EntryProgram>> entries_;
  std::array<std::vector<int>, SL_CHAINS> chains_{};
  bool dirty_ = true;
  std::uint32_t slot_ = 0;
  int cpu_ = 0;
};

}  // namespace sluice::testing
