// Sluice's pinned maps as sluicectl sees them: opened by name under
// <bpf.root>/<bpf.instance>/maps/, checked against the layout this binary
// was built for, read into the structs of <sluice/bpf/layout.h>.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <sluice/bpf/layout.h>

#include "sluice/core/config.hpp"
#include "sluice/core/counters.hpp"
#include "sluice/core/unique_fd.hpp"

namespace sluice::ctl {

class PinnedMaps {
 public:
  explicit PinnedMaps(const NodeConfig& config);

  // True when the instance's map directory holds any pins at all.
  bool anything_pinned() const;
  // Throws CtlError ("nothing is pinned under ... start sluiced with ...")
  // unless anything_pinned(), and refuses pins of another map layout, which
  // this binary would misread.
  void require_compatible();

  // The fd of a pinned map (opened once, cached). Throws CtlError naming the
  // pin path when it is missing or its value size is not `value_size` (pass
  // 0 to skip the check, e.g. for ring buffers).
  int fd(const char* name, std::uint32_t value_size);
  bool has(const char* name) const;
  std::string path(const char* name) const;
  const std::string& pin_dir() const { return pin_dir_; }

  // sl_meta[0], or nullopt when it is not pinned or never initialised.
  std::optional<sl_meta> read_meta();

 private:
  std::string pin_dir_;
  std::string map_dir_;
  std::string config_file_;
  std::map<std::string, UniqueFd> fds_;
};

// Every managed interface (sluice::ManagedInterface), ordered by ifindex.
std::vector<ManagedInterface> read_interfaces(PinnedMaps& maps);
// The interfaces named `name`, or all of them when `name` is empty; throws
// CtlError listing the known names when no interface has that name.
std::vector<ManagedInterface> select_interfaces(PinnedMaps& maps, const std::string& name);

// All non-empty sl_registry entries, in slot order.
std::vector<sl_registry_entry> read_registry(PinnedMaps& maps);

// Human names for enums stored in maps, tolerant of out-of-range values.
std::string role_text(std::uint32_t role);
std::string hook_text(std::uint32_t hook);
// "workload,data" for a role bitmask; "ingress,egress" for a hook bitmask.
std::vector<std::string> role_names(std::uint32_t roles);
std::vector<std::string> hook_names(std::uint32_t hooks);

}  // namespace sluice::ctl
