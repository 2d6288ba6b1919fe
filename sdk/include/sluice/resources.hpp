// Resources (plugin ABI 2.0): the cluster state a plugin consumes, such as
// services or endpoints, read by sluiced from TOML files in [state] dir.
//
// A state file holds arrays of tables named by kind:
//
//   [[service]]
//   name = "web"
//   ...
//   [[endpoint]]
//   ...
//
// sluiced watches the directory (inotify). For every change it hands each
// plugin that consumes one of the kinds in a file the files that were added
// or rewritten and the paths that disappeared; the plugin keeps what each
// file contributed, so a change costs in proportion to the change (per
// [[kind]] block rather than per file: sluice/resource_blocks.hpp). A plugin
// validates everything first and throws ConfigError (file, line, column, key)
// on bad input; sluiced then logs it and the plugin must leave what is
// running exactly as it was: nothing is applied halfway. A
// change is all or nothing across plugins: see PreparedChange.
#pragma once

#include <memory>
#include <string>
#include <vector>

namespace sluice {

// Frozen for the whole major version: the host builds the vector `upserted`
// and an older plugin walks it with its own stride. Per-file data added in a
// minor goes into a new vector appended to ResourceChange.
struct ResourceFile {
  std::string path;  // absolute path, for error messages and as the file's identity
  std::string text;  // the whole file; parse with sluice::config::parse
};
static_assert(sizeof(ResourceFile) == 2 * sizeof(std::string),
              "ResourceFile crosses the plugin boundary in a vector: it cannot grow "
              "within a major version (sdk/ABI.md)");

struct ResourceChange {
  bool full = false;                  // true: `upserted` is every file (first load, resync)
  std::vector<ResourceFile> upserted; // files added or rewritten (holding one of your kinds)
  std::vector<std::string> removed;   // paths of files that are gone or no longer hold your kinds
};

// A change a plugin has read and validated but not applied
// (Plugin::prepare). The host prepares a change with every
// plugin that consumes one of its kinds; only when all of them accepted it
// does it commit() each. Destroying a prepared change without commit()
// discards it: the plugin is exactly as before prepare(). commit() must not
// refuse the change (its input was validated); it may still throw for a
// failure of the system (a map write the kernel refuses), which the host
// reports. The ResourceChange outlives its prepared change, and the host
// calls nothing else on the plugin between prepare() and commit() or the
// discard.
class PreparedChange {
 public:
  virtual ~PreparedChange() = default;
  virtual void commit() = 0;
};

}  // namespace sluice
