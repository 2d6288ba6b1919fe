#include "sluice/core/pipeline.hpp"

#include <fnmatch.h>

#include <algorithm>

#include "sluice/core/error.hpp"

namespace sluice {

namespace {
bool matches_any(const std::vector<std::string>& patterns, const std::string& name) {
  for (const auto& pattern : patterns)
    if (fnmatch(pattern.c_str(), name.c_str(), 0) == 0) return true;
  return false;
}
}  // namespace

std::optional<sl_role> classify_interface(const InterfacePatterns& patterns,
                                          const std::string& ifname) {
  if (ifname == "lo" || matches_any(patterns.ignore, ifname)) return std::nullopt;
  for (sl_role role : {SL_ROLE_TUNNEL, SL_ROLE_L3, SL_ROLE_WORKLOAD, SL_ROLE_DATA})
    if (matches_any(patterns.by_role[role], ifname)) return role;
  return std::nullopt;
}

std::array<Chain, SL_CHAINS> compute_chains(const std::vector<DeclaredStage>& stages) {
  std::array<Chain, SL_CHAINS> chains;
  for (unsigned r = 0; r < SL_ROLE_COUNT; ++r)
    for (unsigned h = 0; h < SL_HOOK_COUNT; ++h) {
      auto& chain = chains[chain_index(static_cast<sl_role>(r), static_cast<sl_hook>(h))];
      chain.role = static_cast<sl_role>(r);
      chain.hook = static_cast<sl_hook>(h);
      for (const auto& stage : stages)
        if ((stage.spec.roles & role_bit(chain.role)) && (stage.spec.hooks & hook_bit(chain.hook)))
          chain.stages.push_back(stage);
      std::stable_sort(chain.stages.begin(), chain.stages.end(),
                       [](const DeclaredStage& a, const DeclaredStage& b) {
                         if (a.spec.order != b.spec.order) return a.spec.order < b.spec.order;
                         if (a.plugin != b.plugin) return a.plugin < b.plugin;
                         return a.spec.name < b.spec.name;
                       });
      if (chain.stages.size() > SL_MAX_STAGES - 1)
        throw Error("the " + std::string(role_name(chain.role)) + " " +
                    hook_name(chain.hook) + " chain would have " +
                    std::to_string(chain.stages.size()) + " stages; at most " +
                    std::to_string(SL_MAX_STAGES - 1) +
                    " fit. Disable a plugin or narrow a stage's roles.");
    }
  return chains;
}

}  // namespace sluice
