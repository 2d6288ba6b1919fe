// The kernel side the core owns: pinned shared maps, chains in sl_jump,
// per-interface entry programs on clsact, sl_ifstate, the registry.
#pragma once

#include <array>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "sluice/core/config.hpp"
#include "sluice/core/links.hpp"
#include "sluice/core/pipeline.hpp"
#include "sluice/core/plugin_host.hpp"
#include "sluice/core/stage_instance.hpp"
#include "sluice/core/unique_fd.hpp"

struct core_bpf;
struct entry_bpf;

namespace sluice {

// Holds an exclusive lock for one instance so two daemons never fight over
// the same pins; waits up to `wait_seconds` for a predecessor to exit.
class InstanceLock {
 public:
  InstanceLock(const NodeConfig& config, int wait_seconds);
 private:
  UniqueFd fd_;
};


// The entry programs of one interface, loaded with its constants frozen in.
// Used by Dataplane::attach and by tests/benchmarks (BPF_PROG_TEST_RUN).
// What an entry program needs of its chain (the chain protocol): frozen into
// its read-only data, copied into each packet's context.
struct ChainLayout {
  std::array<std::uint8_t, SL_MAX_STAGES> established_positions = no_lane1();
  std::uint32_t flags = 0;         // SL_CHAIN_F_*
  std::uint8_t last_judge = 0xff;  // lane-0 position, 0xff: none

  static std::array<std::uint8_t, SL_MAX_STAGES> no_lane1() {
    std::array<std::uint8_t, SL_MAX_STAGES> positions;
    positions.fill(0xff);
    return positions;
  }
};
using ChainLayouts = std::array<ChainLayout, SL_HOOK_COUNT>;  // by hook

struct EntrySettings {
  std::string ifname;
  sl_role role = SL_ROLE_WORKLOAD;
  std::uint32_t slot = 0;
  std::uint32_t bank = 0;
  bool has_ethernet = true;
  RoleRules rules;
  ChainLayouts chains{};  // Dataplane::chain_layouts(role) of the staged bank
};
class EntryProgram {
 public:
  EntryProgram(const NodeConfig& config, const EntrySettings& settings);
  ~EntryProgram();
  EntryProgram(const EntryProgram&) = delete;
  EntryProgram& operator=(const EntryProgram&) = delete;
  int fd(sl_hook hook) const;

 private:
  entry_bpf* skel_ = nullptr;
};

class LayoutMigration;

class Dataplane {
 public:
  explicit Dataplane(const NodeConfig& config);
  ~Dataplane();
  Dataplane(const Dataplane&) = delete;
  Dataplane& operator=(const Dataplane&) = delete;

  void set_log_level(sl_log_level level);

  // Writes complete chains into the bank the attached programs do not use.
  // fd_of returns a stage's program fd, or -1 to leave a hole (a stage
  // whose plugin failed: the hook then applies its missed-tail-call rule).
  // instance_of, if given, makes the program for one chain position
  // (stage_instance.hpp: direct tail calls); an empty fd keeps fd_of's.
  using InstanceOf = std::function<UniqueFd(const DeclaredStage&, const NextSlots&)>;
  void stage_chains(const std::array<Chain, SL_CHAINS>& chains,
                    const std::function<int(const DeclaredStage&)>& fd_of,
                    const InstanceOf& instance_of = {});
  // Records plugins and stages for sluicectl.
  void write_registry(const std::vector<LoadedPlugin>& plugins);
  // Direct tail calls, one chain position at a time once the chains run
  // (stage_instance.hpp): gives the next position that still runs its
  // plugin's own program, in a chain of a role some interface has, an
  // instance of its own from instance_of. The two behave alike, so the
  // slot is swapped under traffic. Returns whether one was tried.
  bool instantiate_next(const InstanceOf& instance_of);
  // Whether instantiate_next has a position to work on.
  bool has_positions_to_instantiate() const;
  // How many of bank_'s positions run an instance of their own.
  std::size_t instantiated_positions() const { return instantiated_; }

  // Makes the staged bank the one new attachments use (after every managed
  // interface was switched to it).
  void commit_bank();

  // Attaches (or atomically replaces) the entry programs on an interface.
  void attach(const LinkInfo& link, sl_role role);
  // Takes our filters (and the clsact qdisc if we made it) off an interface
  // that Sluice no longer manages.
  void detach(int ifindex);
  // Forgets an interface that disappeared (the kernel already dropped its
  // filters with the device).
  void forget(int ifindex);

  // Makes every route the fast path cached stale (bumps sl_route_epoch):
  // after a change to routes, rules, neighbours, addresses, links or
  // sl_ifstate. Attaching and detaching call it themselves.
  void invalidate_routes();

  bool is_attached(int ifindex) const { return attached_.count(ifindex) != 0; }
  struct Attachment {
    sl_role role;
    std::string name;
    bool has_ethernet;
    std::uint32_t bank;
  };
  const std::map<int, Attachment>& attachments() const { return attached_; }
  // Interfaces recorded in sl_ifstate (by this or an earlier run).
  std::vector<int> recorded_interfaces() const;
  bool is_recorded(int ifindex) const;
  // The stages a plugin declared in the last run, from sl_registry: what a
  // plugin that now fails before declaring its stages occupied.
  std::vector<StageSpec> recorded_stages(const std::string& plugin) const;
  std::uint32_t bank() const { return bank_; }
  // The staged chains' layouts for a role's entry programs.
  const ChainLayouts& chain_layouts(sl_role role) const { return layouts_[role]; }
  int map_fd(const char* name) const;  // one of the shared/core maps by name
  int chain_end_fd() const;

  // Removes every filter, the clsact qdiscs Sluice created, and all pins.
  static void cleanup(const NodeConfig& config);

 private:
  std::uint32_t allocate_slot();
  void zero_counters(std::uint32_t slot);

  const NodeConfig& config_;
  struct CoreSkeleton {
    void operator()(core_bpf* skel) const;
  };
  std::unique_ptr<core_bpf, CoreSkeleton> core_;
  std::uint32_t bank_ = 0;  // bank staged for (and used by) new attachments
  std::array<ChainLayouts, SL_ROLE_COUNT> layouts_{};  // of bank_'s chains
  // bank_'s positions still on their plugin's own program.
  struct SharedPosition {
    DeclaredStage stage;
    sl_role role;
    std::array<std::uint32_t, SL_LANES> slots;  // SL_NEXT_SLOT_AT_RUN_TIME: not in the lane
    NextSlots next;
  };
  std::vector<SharedPosition> shared_positions_;
  std::size_t instantiated_ = 0;
  bool has_interface_of(sl_role role) const;
  // Over pins of the previous layout, until commit_bank().
  std::unique_ptr<LayoutMigration> migration_;
  std::map<int, Attachment> attached_;
};

}  // namespace sluice
