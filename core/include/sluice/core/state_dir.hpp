// The file state source: TOML resource files in [state] dir, watched with
// inotify, routed to the plugins that consume their kinds.
#pragma once

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
