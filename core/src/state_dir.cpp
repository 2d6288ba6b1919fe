#include "sluice/core/state_dir.hpp"

#include <sys/inotify.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <sluice/config.hpp>

#include "sluice/core/config.hpp"
#include "sluice/core/error.hpp"

namespace sluice {

namespace {

bool is_resource_file(const std::filesystem::path& path) {
  std::string name = path.filename().string();
  return !name.empty() && name[0] != '.' && path.extension() == ".toml";
}

}  // namespace

StateDirectory::StateDirectory(std::string dir) : dir_(std::move(dir)) {
  std::error_code ec;
  if (!std::filesystem::is_directory(dir_, ec)) {
    spdlog::warn("state: {} does not exist; no resources are loaded (create it and restart, "
                 "or set [state] dir)",
                 dir_);
    return;
  }
  inotify_.reset(inotify_init1(IN_NONBLOCK | IN_CLOEXEC));
  if (!inotify_) throw Error("inotify_init1: " + errno_text(errno));
  // Editors and tools replace files (write a temporary, rename it in):
  // closing after a write and renames cover both ways of updating.
  if (inotify_add_watch(inotify_.get(), dir_.c_str(),
                        IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE) < 0)
    throw Error("cannot watch " + dir_ + ": " + errno_text(errno));
}

std::vector<std::string> StateDirectory::list() const {
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(dir_, ec))
    if (entry.is_regular_file() && is_resource_file(entry.path()))
      out.push_back(entry.path().string());
  std::sort(out.begin(), out.end());
  return out;
}

std::set<std::string> StateDirectory::take_changed_paths() {
  std::set<std::string> out;
  alignas(inotify_event) char buffer[16384];
  for (;;) {
    ssize_t n = read(inotify_.get(), buffer, sizeof(buffer));
    if (n <= 0) break;
    for (char* at = buffer; at < buffer + n;) {
      auto* event = reinterpret_cast<inotify_event*>(at);
      if (event->len > 0) {
        std::filesystem::path path = std::filesystem::path(dir_) / event->name;
        if (is_resource_file(path)) out.insert(path.string());
      }
      if (event->mask & IN_Q_OVERFLOW)
        for (const auto& path : list()) out.insert(path);
      at += sizeof(inotify_event) + event->len;
    }
  }
  return out;
}

ResourceRouter::FileKinds ResourceRouter::read_file(const std::string& path) const {
  FileKinds file;
  std::ifstream in(path);
  if (!in) return file;  // gone: readable stays false, kinds empty
  std::stringstream text;
  text << in.rdbuf();
  file.text = text.str();
  try {
    toml::table root = config::parse(file.text, path);
    for (const auto& [key, node] : root) {
      file.kinds.insert(std::string(key.str()));
      (void)node;
    }
    file.readable = true;
  } catch (const ConfigError& error) {
    spdlog::error("state: {} — file ignored until fixed; what it held before stays applied",
                  format_config_error(error));
  }
  return file;
}

void ResourceRouter::load_all(const StateDirectory& state) {
  std::map<std::string, FileKinds> files;
  for (const auto& path : state.list()) files[path] = read_file(path);
  route(files, true);
}

void ResourceRouter::apply(const std::set<std::string>& paths) {
  std::map<std::string, FileKinds> files;
  for (const auto& path : paths) {
    FileKinds file = read_file(path);
    std::error_code ec;
    bool exists = std::filesystem::exists(path, ec);
    if (exists && !file.readable) continue;  // syntax error: keep the old view
    files[path] = std::move(file);
  }
  route(files, false);
}

void ResourceRouter::route(const std::map<std::string, FileKinds>& files, bool full) {
  std::set<std::string> consumed;
  for (auto& p : plugins_) {
    if (p.state != PluginState::loaded || !p.plugin) continue;
    std::vector<std::string> kinds;
    try {
      kinds = p.plugin->resource_kinds();
    } catch (...) {
      continue;
    }
    if (kinds.empty()) continue;
    for (const auto& kind : kinds) consumed.insert(kind);
    ResourceChange change;
    change.full = full;
    std::set<std::string>& held = held_[p.name];
    std::set<std::string> next = full ? std::set<std::string>{} : held;
    for (const auto& [path, file] : files) {
      bool has_kind = std::any_of(kinds.begin(), kinds.end(),
                                  [&](const std::string& k) { return file.kinds.count(k); });
      if (has_kind) {
        change.upserted.push_back({path, file.text});
        next.insert(path);
      } else if (held.count(path)) {
        change.removed.push_back(path);
        next.erase(path);
      }
    }
    if (full)
      for (const auto& path : held)
        if (!next.count(path)) change.removed.push_back(path);
    if (!full && change.upserted.empty() && change.removed.empty()) continue;
    try {
      p.plugin->reconcile(change);
      held = std::move(next);
      spdlog::info("state: plugin '{}' applied {} file(s), removed {}", p.name,
                   change.upserted.size(), change.removed.size());
    } catch (const ConfigError& error) {
      spdlog::error("state: {} — rejected by plugin '{}'; what is running is unchanged",
                    format_config_error(error), p.name);
    } catch (const std::exception& error) {
      spdlog::error("state: plugin '{}' failed to apply the change: {}", p.name, error.what());
    } catch (...) {
      spdlog::error("state: plugin '{}' failed to apply the change", p.name);
    }
  }
  for (const auto& [path, file] : files)
    for (const auto& kind : file.kinds)
      if (!consumed.count(kind))
        spdlog::warn("state: {} holds resources of kind '{}', which no loaded plugin consumes",
                     path, kind);
}

}  // namespace sluice
