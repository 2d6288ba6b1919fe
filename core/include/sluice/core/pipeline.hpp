// Interface roles and chain computation: pure logic, no kernel.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "sluice/core/config.hpp"

namespace sluice {

// Which role an interface plays, or nullopt when Sluice must not touch it.
// `ignore` wins, then the roles in the order tunnel, l3, workload, data (the
// more specific patterns first), and loopback is never managed.
std::optional<sl_role> classify_interface(const InterfacePatterns& patterns,
                                          const std::string& ifname);

// A stage as the pipeline sees it: which plugin declared it and its spec.
struct DeclaredStage {
  std::string plugin;
  StageSpec spec;
};

// A stage a failed plugin leaves as a hole: its place is known (from its
// declaration or the last run's record), its program is not.
inline bool is_hole(const DeclaredStage& stage) { return stage.spec.program.empty(); }

// One chain: the stages of a (role, hook), in execution order, in its two
// lanes (the chain protocol, sdk/ABI.md).
struct Chain {
  sl_role role;
  sl_hook hook;
  std::vector<DeclaredStage> stages;  // lane 0: every stage
  // Lane 1, what an established flow runs: indices into `stages` of those
  // that see every packet on this hook, in order.
  std::vector<std::size_t> established;
  std::uint32_t flags = 0;          // SL_CHAIN_F_*
  std::uint8_t last_judge = 0xff;   // lane-0 position of the last judge

  // The lane-1 position of the stage at each lane-0 position (0xff: not in
  // lane 1), as sl_pkt_ctx::est_pos holds it.
  std::array<std::uint8_t, SL_MAX_STAGES> established_positions() const;
};

// A judge: a stage skipped for established flows that may drop, so a flow
// may skip it only once it has approved the flow.
bool is_judge(const DeclaredStage& stage, sl_hook hook);

// Chains for every (role, hook), ordered by order number, ties broken by
// plugin name then stage name so the result never depends on load order,
// with their lanes and flags. Throws Error when a chain would exceed
// SL_MAX_STAGES - 1 stages (one slot is kept for the chain end) or when the
// declarations break the chain protocol (check_chain_protocol()).
std::array<Chain, SL_CHAINS> compute_chains(const std::vector<DeclaredStage>& stages);

// Fills in the lanes and flags of chains whose stages are set (what
// compute_chains() does after ordering), and checks the protocol.
void lay_out_lanes(std::array<Chain, SL_CHAINS>& chains);

// A stage's declarations as sl_registry records them (the program is not
// recorded: a stage read back is a hole placeholder until its plugin loads).
void record_stage(sl_registry_entry& entry, const StageSpec& spec);
StageSpec recorded_stage(const sl_registry_entry& entry);

// Refuses chains that break the protocol, naming the stage and what to do:
// a voter that is not in lane 1, two plugins writing one scratch word, a
// reader whose word no earlier stage of its lane writes.
void check_chain_protocol(const std::array<Chain, SL_CHAINS>& chains);

inline std::size_t chain_index(sl_role role, sl_hook hook) {
  return static_cast<std::size_t>(role) * SL_HOOK_COUNT + hook;
}

}  // namespace sluice
