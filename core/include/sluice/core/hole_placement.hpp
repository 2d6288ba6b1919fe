// Where a failed plugin's stages stay in the chains as holes, so hooks that
// enforce policy fail closed instead of silently skipping it: pure logic,
// next to compute_chains() (pipeline.hpp), which takes the result as stages.
#pragma once

#include <functional>
#include <vector>

#include <sluice/plugin.hpp>

namespace sluice {

enum class HolePlacement {
  left_out,           // an optional plugin: no holes
  declared,           // it failed after declaring its stages: they are the holes
  recorded,           // it failed before; the places the last run recorded (sl_registry)
  heads_every_chain,  // no record either: one hole first in every chain
};

struct FailedPluginHoles {
  HolePlacement placement;
  std::vector<StageSpec> stages;  // what the chains get for the plugin
};

// `declared`: the stages the plugin declared before it failed (none when it
// failed earlier: missing file, ABI, configuration). `recorded` is asked
// only when they are needed: the stages the last run recorded for it.
FailedPluginHoles place_failed_plugin_holes(
    bool optional, const std::vector<StageSpec>& declared,
    const std::function<std::vector<StageSpec>()>& recorded);

}  // namespace sluice
