// The file state source: TOML resource files in [state] dir, watched with
// inotify, routed to the plugins that consume their kinds.
#pragma once

#include <map>
#include <set>
#include <string>
#include <vector>

#include "sluice/core/plugin_host.hpp"
#include "sluice/core/unique_fd.hpp"

namespace sluice {

class StateDirectory {
 public:
  explicit StateDirectory(std::string dir);

  // Resource files (*.toml, not hidden) currently in the directory.
  std::vector<std::string> list() const;
  // inotify descriptor, or -1 when the directory does not exist.
  int fd() const { return inotify_.get(); }
  // After fd() is readable: the file paths that were written, moved in,
  // deleted or moved out since the last call.
  std::set<std::string> take_changed_paths();
  const std::string& dir() const { return dir_; }

 private:
  std::string dir_;
  UniqueFd inotify_;
};

// Hands each plugin the state files holding the kinds it consumes, as
// incremental changes; keeps what each plugin last accepted so a rejected
// change leaves it as it was.
class ResourceRouter {
 public:
  explicit ResourceRouter(std::vector<LoadedPlugin>& plugins) : plugins_(plugins) {}

  // First load (or a resync): every file.
  void load_all(const StateDirectory& state);
  // A set of paths changed (written, created or deleted).
  void apply(const std::set<std::string>& paths);

 private:
  struct FileKinds {
    bool readable = false;  // parsed: its kinds are known
    std::set<std::string> kinds;
    std::string text;
  };
  FileKinds read_file(const std::string& path) const;
  void route(const std::map<std::string, FileKinds>& files, bool full);

  std::vector<LoadedPlugin>& plugins_;
  // plugin name -> the files (paths) it currently holds
  std::map<std::string, std::set<std::string>> held_;
};

}  // namespace sluice
