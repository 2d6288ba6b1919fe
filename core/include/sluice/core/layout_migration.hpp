// Starting over the pins of the previous map layout without an outage
// (sdk/ABI.md, "Upgrades"): the core maps whose layout changed are moved
// aside (pinned as <name>__layout<N> in the pin directory) before the core
// object loads, so libbpf creates them anew while the running programs keep
// theirs; what they hold that outlives a restart (counters, the stage
// registry) is carried over into the new maps; the moved-aside pins are
// removed once every interface runs the new programs. Maps whose layout did
// not change (sl_ifstate, the route cache, conntrack's and nat's tables) are
// reused as they are, so established flows keep their state.
#pragma once

#include <string>
#include <vector>

#include "sluice/core/config.hpp"

struct bpf_object;

namespace sluice {

class LayoutMigration {
 public:
  // Before the core object (opened, not yet loaded) is loaded over pins of
  // layout `from`: moves aside every pinned core map whose type, key, value
  // or size differs from the object's definition. A moved-aside pin left by
  // an earlier attempt that died is used as it is.
  LayoutMigration(const NodeConfig& config, bpf_object* core, unsigned from);

  // After the load: fills the new maps from the moved-aside ones.
  void carry_over(bpf_object* core, const std::vector<int>& recorded_ifindexes);

  // Once every interface runs the new programs: removes the moved-aside pins.
  void finish();

  unsigned from() const { return from_; }
  const std::vector<std::string>& moved() const { return moved_; }

 private:
  std::string aside_path(const std::string& name) const;

  std::string map_dir_;
  unsigned from_;
  std::vector<std::string> moved_;  // map names
};

// Removes moved-aside pins an earlier migration left (it died after its
// takeover, before clean-up).
void remove_stale_migration_pins(const NodeConfig& config);

// The layout of the pins under the config's pin directory: 0 when there are
// none (or nothing initialised), else the layout recorded in sl_meta. Throws
// when they are not Sluice's or of a layout this daemon can neither reuse
// nor migrate from.
unsigned pinned_layout(const NodeConfig& config);

}  // namespace sluice
