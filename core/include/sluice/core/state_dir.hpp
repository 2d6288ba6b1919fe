// The file state source: TOML resource files in [state] dir, watched with
// inotify, routed to the plugins that consume their kinds.
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <sluice/resource_blocks.hpp>

#include "sluice/core/plugin_host.hpp"
#include "sluice/core/unique_fd.hpp"

namespace sluice {

// The state directory and its inotify watch. Files may be symlinks (they
// are followed), and the directory may be replaced as a whole: deleted and
// made again, or a symlink to it swapped (its parent is watched for that),
// or, in the Kubernetes ConfigMap layout, its `..data` symlink swapped to a
// new version of every file. Those, and events the kernel dropped, make the
// next take_changed_paths() report every file there is or was.
class StateDirectory {
 public:
  explicit StateDirectory(std::string dir);

  // Resource files (*.toml, not hidden, regular or a symlink to one)
  // currently in the directory.
  std::vector<std::string> list() const;
  // inotify descriptor, or -1 when neither the directory nor its parent exists.
  int fd() const { return inotify_.get(); }
  // After fd() is readable: the file paths that were written, created,
  // moved in, deleted or moved out since the last call; every file there is
  // or was since the last such rescan when the directory as a whole changed.
  std::set<std::string> take_changed_paths();
  const std::string& dir() const { return dir_; }

 private:
  // (Re)adds the watch of the directory itself; false when it is missing.
  bool watch_directory();
  std::set<std::string> rescan();

  std::string dir_;
  std::string parent_;  // where the directory is made, replaced or swapped
  std::string name_;    // its name in parent_
  UniqueFd inotify_;
  int directory_watch_ = -1;
  int parent_watch_ = -1;
  std::set<std::string> seen_;  // every file listed or reported since the last rescan
};

// Changes to the state directory, held back until it has been quiet for
// `quiet`: a file rewritten in place in several writes (truncate and write
// the first part, then append the rest) is applied once, whole, instead of
// piece by piece. Waiting for close-after-write cannot do this, as each
// piece may be a write of its own closed in between. A directory that never
// goes quiet is still applied `longest` after its first waiting change.
class SettlingChanges {
 public:
  using Clock = std::chrono::steady_clock;
  SettlingChanges(Clock::duration quiet, Clock::duration longest)
      : quiet_(quiet), longest_(longest) {}

  void add(const std::set<std::string>& paths, Clock::time_point now);
  // Milliseconds until the waiting changes are due (0: due now), or -1 when
  // nothing waits: a poll timeout.
  int wait_ms(Clock::time_point now) const;
  // The waiting paths when they are due (and then no longer waiting); empty
  // before.
  std::set<std::string> take_due(Clock::time_point now);

 private:
  Clock::time_point due() const;
  Clock::duration quiet_;
  Clock::duration longest_;
  std::set<std::string> waiting_;
  Clock::time_point first_{};
  Clock::time_point last_{};
};

// Hands each plugin the state files holding the kinds it consumes, as
// incremental changes, all or nothing: every consumer prepares its share
// (Plugin::prepare) before any applies it, and one refusal leaves every
// plugin as it was; the refused files are handed over again with the next
// change. Keeps what each plugin last accepted. A file is checked for syntax before any plugin
// sees it; of a rewritten file, only the blocks that differ from its last
// readable version are parsed (sluice/resource_blocks.hpp).
class ResourceRouter {
 public:
  explicit ResourceRouter(std::vector<LoadedPlugin>& plugins) : plugins_(plugins) {}

  // First load (or a resync): every file.
  void load_all(const StateDirectory& state);
  // A set of paths changed (written, created or deleted).
  void apply(const std::set<std::string>& changed_paths);

 private:
  // The last readable version of a file. Its blocks, when it could be
  // split into blocks that each parse alone, view `text`: a FileView never
  // moves (held by unique_ptr).
  struct FileView {
    FileView() = default;
    FileView(const FileView&) = delete;
    FileView& operator=(const FileView&) = delete;
    std::string text;
    std::optional<std::vector<config::ResourceBlock>> blocks;
    std::set<std::string, std::less<>> kinds;
  };
  enum class FileState { gone, unreadable, readable };
  // The file as it is now; `view` is set when it is readable.
  FileState read_file(const std::string& path, std::unique_ptr<FileView>& view);
  // Keeps the view's text buffer for the next version of the file; drops the view.
  void recycle(const std::string& path, std::unique_ptr<FileView>& view);
  // `view` is the file's last readable version now.
  void hold(const std::string& path, std::unique_ptr<FileView> view);
  // Whether every block of `now` parses alone, parsing only those that
  // differ from `before`'s blocks.
  bool blocks_parse(const std::string& path, const std::vector<config::ResourceBlock>& now,
                    const FileView* before) const;
  // files: path -> its view, nullptr when it is gone or unreadable. Their
  // texts are lent to the plugins' changes. False: a plugin refused the
  // change and none applied it.
  bool route(const std::map<std::string, FileView*>& files, bool full);

  std::vector<LoadedPlugin>& plugins_;
  // plugin name -> the files (paths) it currently holds
  std::map<std::string, std::set<std::string>> held_;
  // path -> its last readable version
  std::map<std::string, std::unique_ptr<FileView>> files_;
  // path -> the text buffer of an earlier version, reused to read the next
  // (config::spare_text_buffer() says why).
  std::map<std::string, std::string> spare_text_;
  // What the last refused change covered, handed over again with the next.
  struct Refused {
    bool full = false;  // the first load: the next change is a first load too
    std::set<std::string> paths;
  } refused_;
};

}  // namespace sluice
