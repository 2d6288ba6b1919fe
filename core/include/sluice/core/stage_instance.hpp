// One instance of a stage program per chain it is in, each with the next
// stage's slots as constants (sdk/ABI.md, "Direct tail calls"): the verifier
// then sees a constant key at every sl_next and the JIT emits a direct jump.
#pragma once

#include <array>
#include <cstdint>
#include <string>

#include <sluice/bpf/layout.h>
#include <sluice/plugin.hpp>

#include "sluice/core/unique_fd.hpp"

namespace sluice {

// The jump slot sl_next takes from a position, per lane (SL_LANE_ALL,
// SL_LANE_ESTABLISHED); SL_NEXT_SLOT_AT_RUN_TIME where the stage is not in
// the lane.
using NextSlots = std::array<std::uint32_t, SL_LANES>;

// Loads `program` once more from the plugin's object: every map is the
// plugin's (by fd), but for its own ".rodata.sl_next" holding `next`. Throws
// Error naming `what` (the stage) and the reason: the caller keeps the
// plugin's own program then.
UniqueFd load_stage_instance(const StageObject& object, const std::string& program,
                             const NextSlots& next, const std::string& what);

}  // namespace sluice
