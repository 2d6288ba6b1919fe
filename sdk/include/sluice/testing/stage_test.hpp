// The stage test harness: run packets through real Sluice chains on the
// running kernel with BPF_PROG_TEST_RUN, without any interface or daemon.
// Library Sluice::testing (libsluice_testing.so); no core header is public.
//
//   sluice::testing::Testbed bed;                  // needs root (CAP_BPF, CAP_NET_ADMIN,
//                                                  // CAP_SYS_ADMIN for bpffs)
//   auto skel = my_stage_bpf__open_opts(&bed.open_opts()->opts);   // reuse the bed's maps
//   my_stage_bpf__load(skel);
//   bed.set_chain(SL_ROLE_WORKLOAD, SL_HOOK_INGRESS, {bpf_program__fd(skel->progs.my_stage)});
//   bed.load_entry(SL_ROLE_WORKLOAD);              // rules: drop malformed, drop on holes
//   auto r = bed.run(PacketBuilder().ipv4("10.0.0.1", "10.0.0.2").udp(1, 53).build());
//   EXPECT_EQ(r.verdict, TC_ACT_SHOT);
//   EXPECT_EQ(r.reason, SL_R_PLUGIN_0);            // the reason this run was counted under
//   EXPECT_EQ(bed.counter(SL_R_PLUGIN_0).packets, 1u);
//
// Or load a whole plugin .so the way sluiced does (configure + load), and
// chain its stages:
//   auto plugin = bed.load_plugin("build/ratelimit.so", "[plugins.ratelimit]\nrate = 10\n");
//   bed.set_chain(SL_ROLE_WORKLOAD, SL_HOOK_INGRESS, {plugin.stage_fd("ratelimit")});
//
// Every Testbed owns a private pin instance (<bpf_root>/sltest-bpf-<pid>-<n>)
// holding the core's shared maps (sl_state, sl_jump, sl_counters, ...), the
// chain-end program and, after load_entry(), the entry program of one role.
// It is removed by the destructor; instances of dead test processes are
// removed by the next Testbed.
//
// Notes on BPF_PROG_TEST_RUN for tc programs (net/bpf/test_run.c):
//  * data_in must be at least ETH_HLEN (14) bytes, else EINVAL. Recent
//    kernels also refuse, with EINVAL, an IPv4/IPv6 ethertype without a full
//    IP header after those 14 bytes (use try_run() to see the errno).
//  * skb->protocol is set by eth_type_trans() from bytes 12..13 even for an
//    L3-device entry (has_ethernet = false), which trusts skb->protocol: a bare
//    IPv4 packet needs a source 8.0.x.x, IPv6 source bytes 4..5 = 86:dd
//    (e.g. 2001:db8:86dd::1). l3_protocol_of() tells what the kernel will set.
//  * The program runs on the calling CPU; the bed pins its thread to one CPU
//    so context() reads the right per-CPU slot. Use a Testbed from one thread.
#pragma once

#include <linux/pkt_cls.h>

#include <bpf/libbpf.h>

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <sluice/bpf/layout.h>
#include <sluice/plugin.hpp>
#include <sluice/testing/packet.hpp>

namespace sluice::testing {

// The role's fault rules, as [pipeline.<role>] sets them in sluice.toml.
struct EntryRules {
  sl_fault_rule malformed = SL_FAULT_DROP;         // packets the entry cannot parse
  sl_fault_rule missed_tail_call = SL_FAULT_DROP;  // holes in the chain
};
inline constexpr EntryRules kDropRules{SL_FAULT_DROP, SL_FAULT_DROP};
inline constexpr EntryRules kPassRules{SL_FAULT_PASS, SL_FAULT_PASS};

inline constexpr std::uint32_t kNoReason = ~0u;

struct RunResult {
  int verdict = -1;  // tc verdict: TC_ACT_OK 0, TC_ACT_SHOT 2, TC_ACT_REDIRECT 7
  // The counter reason this run moved on the entry's (slot, hook), if exactly
  // one did (kNoReason otherwise, e.g. with repeat > 1 runs split or raw runs).
  std::uint32_t reason = kNoReason;
  Bytes out;                      // the packet as the programs left it
  std::uint32_t duration_ns = 0;  // average per run, as the kernel measured it
};

const char* verdict_name(int verdict);
// "accepted", "plugin-0", ... (reasons.def); "unused" for unassigned numbers.
const char* reason_name(std::uint32_t reason);
// The ethertype eth_type_trans() derives from a packet's first 14 bytes.
std::uint16_t l3_protocol_of(const Bytes& pkt);

using CounterSnapshot = std::array<sl_counter, SL_REASON_COUNT>;

class Testbed;

// A stage for Testbed::set_chain with its chain-protocol declarations (which
// lane it joins, what it may do): the chain is laid out as sluiced would.
struct ChainStage {
  int fd = -1;  // -1: a hole
  StageSpec spec;
};

// A plugin .so opened, configured and loaded into a Testbed as sluiced would
// (without the daemon's ABI pre-check). Calls shutdown(true) and unloads the
// library when destroyed; keep it alive while its stages are chained.
class PluginUnderTest {
 public:
  PluginUnderTest(PluginUnderTest&&) noexcept;
  PluginUnderTest& operator=(PluginUnderTest&&) noexcept;
  ~PluginUnderTest();
  sluice::Plugin& plugin();
  const std::vector<StageSpec>& stages() const;
  // Its sluicectl commands, read as sluicectl reads them.
  std::vector<CliCommand> cli_commands() const;
  int stage_fd(std::string_view stage) const;  // throws if the plugin has no such stage
  // The stage with its declarations, for Testbed::set_chain's lanes.
  struct ChainStage chain_stage(std::string_view stage) const;
  // What the plugin logged through Host::log and the libbpf output of its
  // load (joined lines).
  const std::string& log() const;

  // Its timers and watched fds (Host::every, watch_fd, watch_netlink): the
  // harness runs no thread, the test drives them.
  // Runs every live timer's callback once, now, whatever its interval.
  // Returns how many ran.
  std::size_t run_timers();
  // Waits up to `timeout` for a timer to expire or a watched fd to become
  // readable and runs what is ready, once each, as sluiced's loop does.
  // Returns how many callbacks ran (0: nothing was ready in time).
  std::size_t run_events(std::chrono::milliseconds timeout);
  // Runs events as they come until `done()` holds or `timeout` passed;
  // returns done().
  bool run_events_until(const std::function<bool()>& done, std::chrono::milliseconds timeout);
  // Live subscriptions of the plugin.
  std::size_t subscriptions() const;
  struct State;

 private:
  friend class Testbed;
  explicit PluginUnderTest(std::unique_ptr<State> state);
  std::unique_ptr<State> state_;
};

class Testbed {
 public:
  explicit Testbed(const std::string& bpf_root = "/sys/fs/bpf");
  ~Testbed();
  Testbed(const Testbed&) = delete;
  Testbed& operator=(const Testbed&) = delete;

  // ---- where things are ------------------------------------------------------
  const std::string& bpf_root() const;
  const std::string& instance() const;  // unique per bed
  std::string pin_dir() const;          // <bpf_root>/<instance>
  std::string map_pin_dir() const;      // where shared and plugin maps are pinned
  int cpu() const;                      // the CPU this thread was pinned to
  // A ready [bpf] section for configs handed to plugins or the core:
  // root and instance of this bed.
  std::string bpf_config() const;

  // bpf_object_open_opts for a stage's skeleton: pin_root_path = the bed's
  // map pin dir, so the object's sl_state/sl_jump/sl_counters (and its own
  // pinned maps) are the bed's. Keep the returned object alive across open.
  struct OpenOpts {
    std::string pin_root;
    bpf_object_open_opts opts{};
  };
  std::unique_ptr<OpenOpts> open_opts() const;

  // ---- chains and entry ----------------------------------------------------------
  // The stages of one (role, hook) chain as program fds, in order; -1 leaves
  // a hole. Takes effect with install_chains() (called for you by
  // load_entry()). The chain end always follows the last stage.
  // Plain fds declare nothing: each stage sees every packet (it is in both
  // lanes) and may drop.
  void set_chain(sl_role role, sl_hook hook, std::vector<int> stage_fds);
  void set_declared_chain(sl_role role, sl_hook hook, std::vector<ChainStage> stages);
  void install_chains();
  // Deletes one slot of the installed chain (0 = first stage): a hole
  // appearing under a loaded entry.
  void delete_chain_slot(sl_role role, sl_hook hook, unsigned pos);
  // The chain bank the entry programs jump into (sl_jump_base(bank(), ...)).
  std::uint32_t bank() const;

  // Loads (or replaces) the entry programs for `role`: they parse into the
  // packet context, jump into the chains and count under counter `slot`.
  void load_entry(sl_role role, EntryRules rules = kDropRules, bool has_ethernet = true,
                  std::uint32_t slot = 0, const std::string& ifname = "sltest0");
  int entry_fd(sl_hook hook) const;  // throws std::logic_error before load_entry()
  std::uint32_t slot() const;

  // Convenience: chain `stage_fds` on (role, hook), load the role's entry and
  // run `pkt` through it.
  RunResult run_chain(sl_role role, sl_hook hook, std::vector<int> stage_fds, const Bytes& pkt,
                      EntryRules rules = kDropRules);

  // ---- running ---------------------------------------------------------------
  // Runs `pkt` through the loaded entry of `hook` (entry, chain, chain end)
  // `repeat` times; throws on a kernel error.
  RunResult run(const Bytes& pkt, sl_hook hook = SL_HOOK_INGRESS, std::uint32_t repeat = 1);
  RunResult run(const Packet& pkt, sl_hook hook = SL_HOOK_INGRESS, std::uint32_t repeat = 1) {
    return run(pkt.bytes, hook, repeat);
  }
  // Raw BPF_PROG_TEST_RUN of any tc program; returns 0 or a positive errno
  // (r.reason is left unset).
  static int try_run(int prog_fd, const Bytes& pkt, RunResult& r, std::uint32_t repeat = 1);

  // ---- reading back ------------------------------------------------------------
  // A counter summed over all CPUs.
  sl_counter counter(std::uint32_t slot, sl_hook hook, std::uint32_t reason) const;
  // Shorthand: the loaded entry's slot.
  sl_counter counter(std::uint32_t reason, sl_hook hook = SL_HOOK_INGRESS) const;
  // Every reason of a (slot, hook), for "nothing else moved" checks.
  CounterSnapshot counters(std::uint32_t slot, sl_hook hook) const;
  // The packet context the last run left on this thread's CPU.
  sl_pkt_ctx context() const;
  // A shared map's fd by name (SL_MAP_STATE, SL_MAP_EVENTS, ...).
  int map_fd(const char* name) const;
  // What sluiced does on a routing change: the fast path's cached routes
  // (sl_route_cache) become stale. Needed after a test changes sl_ifstate,
  // a route or a neighbour and expects the fast path to see it at once.
  void invalidate_routes();

  // ---- plugins ---------------------------------------------------------------
  // dlopens `so_path` (named <name>.so), configures the plugin with
  // `config_text` (a whole sluice.toml: give [plugins.<name>]) and loads it
  // with pin_root_path = map_pin_dir(). Configuration and load errors throw
  // (ConfigError / std::runtime_error with the verifier log).
  PluginUnderTest load_plugin(const std::string& so_path, const std::string& config_text = "");

  // The ConfigError that loading `so_path` with `config_text` raises; no
  // value when it loads (or fails otherwise, which throws).
  std::optional<ConfigError> config_error(const std::string& so_path,
                                          const std::string& config_text);

  static std::size_t ncpus();

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

// The same harness under the name the SDK documentation uses.
using StageTest = Testbed;

}  // namespace sluice::testing
