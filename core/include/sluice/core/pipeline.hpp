// Interface roles and chain computation: pure logic, no kernel.
#pragma once

#include <array>
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

// One chain: the stages of a (role, hook), in execution order.
struct Chain {
  sl_role role;
  sl_hook hook;
  std::vector<DeclaredStage> stages;
};

// Chains for every (role, hook), ordered by order number, ties broken by
// plugin name then stage name so the result never depends on load order.
// Throws Error when a chain would exceed SL_MAX_STAGES - 1 stages (one slot
// is kept for the chain end).
std::array<Chain, SL_CHAINS> compute_chains(const std::vector<DeclaredStage>& stages);

inline std::size_t chain_index(sl_role role, sl_hook hook) {
  return static_cast<std::size_t>(role) * SL_HOOK_COUNT + hook;
}

}  // namespace sluice
