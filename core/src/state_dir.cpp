#include "sluice/core/state_dir.hpp"
#include "sluice/core/regular_file.hpp"

#include <fcntl.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <list>
#include <string_view>
#include <utility>

#include <sluice/config.hpp>

#include "sluice/core/config.hpp"
#include "sluice/core/error.hpp"

namespace sluice {

namespace {

bool is_resource_file(const std::filesystem::path& path) {
  std::string name = path.filename().string();
  return !name.empty() && name[0] != '.' && path.extension() == ".toml";
}

// The whole file through the shared bounded reader (regular_file.hpp): a
// FIFO, a device or a huge file is refused with a logged reason instead of
// blocking or exhausting the loop; false when it cannot be read.
bool read_text(const std::string& path, std::string& text) {
  try {
    read_regular_file(path, text);
    return true;
  } catch (const Error& error) {
    std::error_code ec;
    if (std::filesystem::exists(path, ec))
      spdlog::error("state: {} — file ignored until fixed; what it held before stays applied",
                    error.what());
    return false;
  }
}

}  // namespace

namespace {

constexpr std::uint32_t kDirectoryEvents =
    // Editors and tools replace files (write a temporary, rename it in), or
    // write in place: closing after a write and renames cover both; creation
    // covers symlinks, which are never written.
    IN_CLOSE_WRITE | IN_CREATE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE |
    // The directory itself deleted or moved away: watch it again once it is back.
    IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR;
constexpr std::uint32_t kParentEvents = IN_CREATE | IN_MOVED_TO | IN_DELETE | IN_MOVED_FROM |
                                        IN_ONLYDIR;

// Kubernetes' atomic writer keeps each version in a `..<timestamp>`
// directory and swaps the `..data` symlink the files point through.
bool is_configmap_entry(std::string_view name) { return name.starts_with(".."); }

}  // namespace

StateDirectory::StateDirectory(std::string dir) : dir_(std::move(dir)) {
  const std::filesystem::path absolute = std::filesystem::absolute(dir_).lexically_normal();
  parent_ = absolute.parent_path().string();
  name_ = absolute.filename().string();
  inotify_.reset(inotify_init1(IN_NONBLOCK | IN_CLOEXEC));
  if (!inotify_) throw Error("inotify_init1: " + errno_text(errno));
  parent_watch_ = inotify_add_watch(inotify_.get(), parent_.c_str(), kParentEvents);
  if (!watch_directory()) {
    if (parent_watch_ < 0) {
      spdlog::warn("state: {} does not exist, nor does {}; no resources are loaded (create it "
                   "and restart, or set [state] dir)",
                   dir_, parent_);
      inotify_.reset();
      return;
    }
    spdlog::warn("state: {} does not exist; no resources are loaded until it is created", dir_);
  }
}

bool StateDirectory::watch_directory() {
  int watch = inotify_add_watch(inotify_.get(), dir_.c_str(), kDirectoryEvents);
  if (watch < 0) {
    if (errno != ENOENT && errno != ENOTDIR)
      spdlog::error("state: cannot watch {}: {}; changes are seen at the next SIGHUP", dir_,
                    errno_text(errno));
    return false;
  }
  // A replaced directory is another inode, with a watch of its own.
  if (directory_watch_ >= 0 && directory_watch_ != watch)
    inotify_rm_watch(inotify_.get(), directory_watch_);
  directory_watch_ = watch;
  return true;
}

std::vector<std::string> StateDirectory::list() const {
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(dir_, ec))
    if (entry.is_regular_file(ec) && is_resource_file(entry.path()))
      out.push_back(entry.path().string());
  std::sort(out.begin(), out.end());
  return out;
}

std::set<std::string> StateDirectory::rescan() {
  watch_directory();
  std::vector<std::string> now = list();
  std::set<std::string> out = std::move(seen_);
  out.insert(now.begin(), now.end());
  seen_ = {now.begin(), now.end()};
  return out;
}

std::set<std::string> StateDirectory::take_changed_paths() {
  std::set<std::string> out;
  bool whole_directory = false;
  alignas(inotify_event) char buffer[16384];
  for (;;) {
    ssize_t n = read(inotify_.get(), buffer, sizeof(buffer));
    if (n <= 0) break;
    for (char* at = buffer; at < buffer + n;) {
      auto* event = reinterpret_cast<inotify_event*>(at);
      at += sizeof(inotify_event) + event->len;
      const std::string_view name = event->len > 0 ? event->name : "";
      if (event->mask & IN_Q_OVERFLOW) {
        whole_directory = true;
      } else if (event->wd == parent_watch_ && event->wd != directory_watch_) {
        if (name == name_) whole_directory = true;
      } else if (event->wd == directory_watch_) {
        if (event->mask & (IN_DELETE_SELF | IN_MOVE_SELF | IN_IGNORED)) {
          if (event->mask & IN_MOVE_SELF) inotify_rm_watch(inotify_.get(), directory_watch_);
          directory_watch_ = -1;
          whole_directory = true;
        } else if (is_configmap_entry(name)) {
          whole_directory = true;
        } else if (!name.empty()) {
          std::filesystem::path path = std::filesystem::path(dir_) / std::string(name);
          if (is_resource_file(path)) {
            out.insert(path.string());
            seen_.insert(path.string());
          }
        }
      }
    }
  }
  if (whole_directory) {
    std::set<std::string> every = rescan();
    out.insert(every.begin(), every.end());
  }
  return out;
}

void SettlingChanges::add(const std::set<std::string>& paths, Clock::time_point now) {
  if (paths.empty()) return;
  if (waiting_.empty()) first_ = now;
  last_ = now;
  waiting_.insert(paths.begin(), paths.end());
}

SettlingChanges::Clock::time_point SettlingChanges::due() const {
  return std::min(last_ + quiet_, first_ + longest_);
}

int SettlingChanges::wait_ms(Clock::time_point now) const {
  if (waiting_.empty()) return -1;
  if (now >= due()) return 0;
  // Rounded up: a poll that wakes before the changes are due would spin.
  return static_cast<int>(std::chrono::ceil<std::chrono::milliseconds>(due() - now).count());
}

std::set<std::string> SettlingChanges::take_due(Clock::time_point now) {
  if (waiting_.empty() || now < due()) return {};
  return std::exchange(waiting_, {});
}

ResourceRouter::FileState ResourceRouter::read_file(const std::string& path,
                                                    std::unique_ptr<FileView>& view) {
  view = std::make_unique<FileView>();
  if (auto spare = spare_text_.find(path); spare != spare_text_.end()) {
    view->text = std::move(spare->second);
    spare_text_.erase(spare);
  }
  if (!read_text(path, view->text)) {
    recycle(path, view);
    std::error_code ec;
    return std::filesystem::exists(path, ec) ? FileState::unreadable : FileState::gone;
  }
  auto known = files_.find(path);
  const FileView* before = known == files_.end() ? nullptr : known->second.get();
  view->blocks = config::split_resource_blocks(view->text);
  if (view->blocks && blocks_parse(path, *view->blocks, before)) {
    std::string_view last_kind;  // blocks of a kind mostly follow each other
    for (const auto& block : *view->blocks)
      if (block.kind != last_kind) view->kinds.emplace(last_kind = block.kind);
    return FileState::readable;
  }
  // Not splittable, or a block that does not parse alone: the whole file
  // decides, and a syntax error is reported with its position in the file.
  view->blocks.reset();
  try {
    toml::table root = config::parse(view->text, path);
    for (const auto& [key, node] : root) {
      view->kinds.emplace(key.str());
      (void)node;
    }
    return FileState::readable;
  } catch (const ConfigError& error) {
    spdlog::error("state: {} — file ignored until fixed; what it held before stays applied",
                  format_config_error(error));
    recycle(path, view);
    return FileState::unreadable;
  }
}

bool ResourceRouter::blocks_parse(const std::string& path,
                                  const std::vector<config::ResourceBlock>& now,
                                  const FileView* before) const {
  config::UnchangedEnds same;
  if (before && before->blocks) same = config::unchanged_ends(*before->blocks, now);
  for (std::size_t i = same.before; i < now.size() - same.after; ++i)
    if (!config::parse_resource_block(now[i], path)) return false;
  return true;
}

void ResourceRouter::recycle(const std::string& path, std::unique_ptr<FileView>& view) {
  if (!view) return;
  spare_text_[path] = std::move(view->text);
  view.reset();
}

void ResourceRouter::hold(const std::string& path, std::unique_ptr<FileView> view) {
  auto& held = files_[path];
  recycle(path, held);
  if (!spare_text_.count(path))
    spare_text_.emplace(path, config::spare_text_buffer(view->text.size()));
  held = std::move(view);
}

void ResourceRouter::load_all(const StateDirectory& state) {
  std::map<std::string, FileView*> files;  // every listed path, readable or not
  for (const auto& path : state.list()) {
    std::unique_ptr<FileView> view;
    read_file(path, view);
    files[path] = view.get();
    if (view) hold(path, std::move(view));
    else files_.erase(path);
  }
  std::erase_if(files_, [&](const auto& file) { return !files.count(file.first); });
  std::erase_if(spare_text_, [&](const auto& spare) { return !files_.count(spare.first); });
  refused_ = {};
  if (!route(files, true)) refused_ = {true, {}};
}

void ResourceRouter::apply(const std::set<std::string>& changed_paths) {
  // A refused change is handed over again with this one, as the files are now.
  std::set<std::string> paths = changed_paths;
  paths.insert(refused_.paths.begin(), refused_.paths.end());
  std::map<std::string, FileView*> files;
  for (const auto& path : paths) {
    std::unique_ptr<FileView> view;
    switch (read_file(path, view)) {
      case FileState::unreadable:
        continue;  // a syntax error (logged): plugins keep the old view
      case FileState::gone:
        files_.erase(path);
        spare_text_.erase(path);
        files[path] = nullptr;
        break;
      case FileState::readable:
        files[path] = view.get();
        hold(path, std::move(view));
        break;
    }
  }
  if (refused_.full) {  // the first load was refused: every file again, as a first load
    std::map<std::string, FileView*> every;
    for (auto& [path, view] : files_) every[path] = view.get();
    refused_ = {};
    if (!route(every, true)) refused_.full = true;
    return;
  }
  if (route(files, false)) {
    refused_ = {};
    return;
  }
  for (const auto& [path, file] : files) refused_.paths.insert(path);
}

namespace {

// A plugin's change borrows the files' texts instead of copying them (a
// state file may hold megabytes) and gives them back however the plugin
// returns. The blocks of a FileView, which view its text, stay valid: the
// text's buffer goes and comes back (a short text's characters are copied
// back into the same object).
class LentTexts {
 public:
  explicit LentTexts(ResourceChange& change) : change_(change) {}
  LentTexts(const LentTexts&) = delete;
  LentTexts& operator=(const LentTexts&) = delete;
  void lend(const std::string& path, std::string& text) {
    change_.upserted.push_back({path, std::move(text)});
    owners_.push_back(&text);
  }
  ~LentTexts() {
    for (std::size_t i = 0; i < owners_.size(); ++i) *owners_[i] = std::move(change_.upserted[i].text);
  }

 private:
  ResourceChange& change_;
  std::vector<std::string*> owners_;
};

}  // namespace

namespace {

// One consumer's share of a change: the files holding its kinds, and what
// it holds once the change is applied. Members are destroyed in reverse: the
// prepared change before the texts go back, and before the change it read.
struct Delivery {
  explicit Delivery(LoadedPlugin& p) : plugin(p), lent(change) {}
  LoadedPlugin& plugin;
  ResourceChange change;
  LentTexts lent;
  std::set<std::string> next;  // the files the plugin holds after the change
  std::unique_ptr<PreparedChange> prepared;
  bool prepares = false;  // false: the plugin does not prepare, it is reconciled
};

}  // namespace

// All or nothing: every consumer prepares its share of the change first;
// one refusal discards every prepared share, and the files are handed over
// again with the next change. Then each share is committed (plugins that do
// not prepare are reconciled after the others).
bool ResourceRouter::route(const std::map<std::string, FileView*>& files, bool full) {
  std::set<std::string> consumed;
  std::list<Delivery> deliveries;  // stable: each lends into its own change
  std::map<std::string, Delivery*> last_taker;  // path -> the last share that holds its text
  for (auto& p : plugins_) {
    if (p.state != PluginState::loaded || !p.plugin) continue;
    std::vector<std::string> kinds;
    try {
      kinds = p.plugin.resource_kinds();
    } catch (...) {
      continue;
    }
    if (kinds.empty()) continue;
    for (const auto& kind : kinds) consumed.insert(kind);
    Delivery& d = deliveries.emplace_back(p);
    d.change.full = full;
    const std::set<std::string>& held = held_[p.name];
    d.next = full ? std::set<std::string>{} : held;
    for (const auto& [path, file] : files) {
      bool has_kind = file && std::any_of(kinds.begin(), kinds.end(), [&](const std::string& k) {
                        return file->kinds.contains(k);
                      });
      if (has_kind) {
        last_taker[path] = &d;
        d.next.insert(path);
      } else if (held.count(path)) {
        d.change.removed.push_back(path);
        d.next.erase(path);
      }
    }
    if (full)
      for (const auto& path : held)
        if (!d.next.count(path)) d.change.removed.push_back(path);
  }
  // A text shared by several consumers is copied for all but the last,
  // which borrows it.
  for (auto& d : deliveries)
    for (const auto& [path, file] : files) {
      auto taker = last_taker.find(path);
      if (taker == last_taker.end() || !d.next.count(path)) continue;  // not one of its files
      if (taker->second == &d) d.lent.lend(path, file->text);
      else d.change.upserted.push_back({path, file->text});
    }
  std::erase_if(deliveries, [&](const Delivery& d) {
    return !full && d.change.upserted.empty() && d.change.removed.empty();
  });

  for (auto& d : deliveries) {
    try {
      d.prepared = d.plugin.plugin.prepare(d.change);
      d.prepares = d.prepared != nullptr;
      continue;
    } catch (const ConfigError& error) {
      spdlog::error("state: {} — rejected by plugin '{}'; no plugin applies the change, what is "
                    "running is unchanged",
                    format_config_error(error), d.plugin.name);
    } catch (const std::exception& error) {
      spdlog::error("state: plugin '{}' failed to prepare the change: {}; no plugin applies it",
                    d.plugin.name, error.what());
    } catch (...) {
      spdlog::error("state: plugin '{}' failed to prepare the change; no plugin applies it",
                    d.plugin.name);
    }
    return false;  // the prepared shares are discarded as `deliveries` goes
  }

  auto applied = [](Delivery& d, std::set<std::string>& held) {
    held = std::move(d.next);
    spdlog::info("state: plugin '{}' applied {} file(s), removed {}", d.plugin.name,
                 d.change.upserted.size(), d.change.removed.size());
  };
  for (auto& d : deliveries) {
    if (!d.prepares) continue;
    try {
      d.prepared->commit();
      applied(d, held_[d.plugin.name]);
    } catch (const std::exception& error) {
      spdlog::error("state: plugin '{}' failed to apply the change: {}", d.plugin.name,
                    error.what());
    } catch (...) {
      spdlog::error("state: plugin '{}' failed to apply the change", d.plugin.name);
    }
    d.prepared.reset();
  }
  for (auto& d : deliveries) {
    if (d.prepares) continue;
    try {
      d.plugin.plugin.reconcile(d.change);
      applied(d, held_[d.plugin.name]);
    } catch (const ConfigError& error) {
      spdlog::error("state: {} — rejected by plugin '{}' (it does not prepare changes, so the "
                    "others applied it); what it runs is unchanged",
                    format_config_error(error), d.plugin.name);
    } catch (const std::exception& error) {
      spdlog::error("state: plugin '{}' failed to apply the change: {}", d.plugin.name,
                    error.what());
    } catch (...) {
      spdlog::error("state: plugin '{}' failed to apply the change", d.plugin.name);
    }
  }
  for (const auto& [path, file] : files) {
    if (!file) continue;
    for (const auto& kind : file->kinds)
      if (!consumed.count(kind))
        spdlog::warn("state: {} holds resources of kind '{}', which no loaded plugin consumes",
                     path, kind);
  }
  return true;
}

}  // namespace sluice
