#include "sluice/core/hole_placement.hpp"

#include <limits>

namespace sluice {

FailedPluginHoles place_failed_plugin_holes(
    bool optional, const std::vector<StageSpec>& declared,
    const std::function<std::vector<StageSpec>()>& recorded) {
  if (optional) return {HolePlacement::left_out, {}};
  if (!declared.empty()) return {HolePlacement::declared, declared};
  if (auto stages = recorded(); !stages.empty())
    return {HolePlacement::recorded, std::move(stages)};
  // Order before every stage, all roles and hooks: whatever it would have
  // done, nothing runs before its hole.
  return {HolePlacement::heads_every_chain,
          {StageSpec{"unknown", "", kAllRoles, kBothHooks, std::numeric_limits<int>::min()}}};
}

}  // namespace sluice
