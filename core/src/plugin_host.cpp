#include "sluice/core/plugin_host.hpp"

#include <fcntl.h>
#include <gelf.h>
#include <libelf.h>

#include <spdlog/spdlog.h>

#include <sluice/config.hpp>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <map>

#include "sluice/core/error.hpp"
#include "sluice/core/unique_fd.hpp"

namespace sluice {

namespace {

struct ElfCloser {
  void operator()(Elf* elf) const { elf_end(elf); }
};

std::string fixed_string(const char* data, std::size_t size) {
  return std::string(data, strnlen(data, size));
}

}  // namespace

PluginAbiDescriptor read_plugin_descriptor(const std::string& path) {
  if (elf_version(EV_CURRENT) == EV_NONE) throw Error("libelf is unusable");
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) throw Error("plugin file " + path + ": " + errno_text(errno));
  std::unique_ptr<Elf, ElfCloser> elf(elf_begin(fd.get(), ELF_C_READ, nullptr));
  if (!elf || elf_kind(elf.get()) != ELF_K_ELF)
    throw Error("plugin file " + path + " is not an ELF shared library");

  Elf_Scn* section = nullptr;
  while ((section = elf_nextscn(elf.get(), section)) != nullptr) {
    GElf_Shdr header;
    if (!gelf_getshdr(section, &header) || header.sh_type != SHT_DYNSYM) continue;
    Elf_Data* symbols = elf_getdata(section, nullptr);
    if (!symbols || header.sh_entsize == 0) continue;
    std::size_t count = header.sh_size / header.sh_entsize;
    for (std::size_t i = 0; i < count; ++i) {
      GElf_Sym symbol;
      if (!gelf_getsym(symbols, static_cast<int>(i), &symbol)) continue;
      const char* name = elf_strptr(elf.get(), header.sh_link, symbol.st_name);
      if (!name || std::strcmp(name, "sluice_plugin_abi") != 0) continue;
      if (symbol.st_shndx == SHN_UNDEF || symbol.st_size < 16)
        throw Error("plugin " + path + ": sluice_plugin_abi is not a defined descriptor");
      Elf_Scn* home = elf_getscn(elf.get(), symbol.st_shndx);
      GElf_Shdr home_header;
      if (!home || !gelf_getshdr(home, &home_header) || home_header.sh_type == SHT_NOBITS)
        throw Error("plugin " + path + ": cannot locate sluice_plugin_abi's data");
      Elf_Data* data = elf_getdata(home, nullptr);
      std::size_t offset = symbol.st_value - home_header.sh_addr;
      if (!data || offset + symbol.st_size > data->d_size)
        throw Error("plugin " + path + ": sluice_plugin_abi lies outside its section");
      PluginAbiDescriptor descriptor{};
      std::memcpy(&descriptor, static_cast<const char*>(data->d_buf) + offset,
                  std::min<std::size_t>(symbol.st_size, sizeof(descriptor)));
      if (descriptor.magic != kPluginAbiMagic)
        throw Error("plugin " + path + ": sluice_plugin_abi has the wrong magic number");
      return descriptor;
    }
  }
  throw Error("plugin " + path +
              " exports no sluice_plugin_abi descriptor: not a Sluice plugin (build it with "
              "SLUICE_PLUGIN() from <sluice/plugin.hpp>)");
}

std::string check_plugin_abi(const PluginAbiDescriptor& d, const std::string& path,
                             std::uint16_t host_minor) {
  auto version = [](unsigned major, unsigned minor) {
    return std::to_string(major) + "." + std::to_string(minor);
  };
  std::string ours = version(kPluginAbiMajor, host_minor);
  if (d.major != kPluginAbiMajor)
    return "plugin " + path + " was built for plugin ABI " + version(d.major, d.minor) +
           ", this sluiced provides ABI " + ours +
           ": rebuild the plugin against the installed Sluice SDK (ABI " + ours + ")";
  if (d.minor > host_minor)
    return "plugin " + path + " needs plugin ABI " + version(d.major, d.minor) +
           ", newer than this sluiced's " + ours + ": upgrade Sluice to a release with ABI " +
           version(d.major, d.minor) +
           " or later, or rebuild the plugin against the installed Sluice SDK (ABI " + ours + ")";
  if (d.size < offsetof(PluginAbiDescriptor, version) + sizeof(d.version))
    return "plugin " + path + " has a truncated ABI descriptor";
  if (d.cxx_abi != kCxxAbiTag)
    return "plugin " + path +
           " was built with a different C++ standard library ABI: rebuild it with the "
           "toolchain Sluice was built with";
  if (d.layout != SL_LAYOUT_VERSION)
    return "plugin " + path + " was built for BPF map layout " + std::to_string(d.layout) +
           ", this sluiced uses layout " + std::to_string(SL_LAYOUT_VERSION);
  return {};
}

class PluginScopedHost final : public Host {
 public:
  PluginScopedHost(Host& base, std::string plugin) : base_(base), plugin_(std::move(plugin)) {}
  std::string node_name() const override { return base_.node_name(); }
  std::string pin_dir() const override { return base_.pin_dir(); }
  std::string map_pin_dir() const override { return base_.map_pin_dir(); }
  void load_bpf(std::string_view what, const std::function<int()>& load) override {
    base_.load_bpf(what, load);
  }
  void log(LogLevel level, std::string_view message) override { base_.log(level, message); }
  Subscription every(std::chrono::milliseconds interval, std::function<void()> callback) override {
    return track(base_.every(
        interval, guarded(std::move(callback),
                          "timer (every " + std::to_string(interval.count()) + " ms)")));
  }
  Subscription watch_fd(int fd, std::function<void()> on_readable) override {
    return track(base_.watch_fd(fd, guarded(std::move(on_readable), "fd watcher")));
  }
  Subscription watch_netlink(int protocol, std::uint32_t groups,
                             std::function<void()> on_change) override {
    return track(
        base_.watch_netlink(protocol, groups, guarded(std::move(on_change), "netlink watcher")));
  }

  // Cancels every subscription the plugin still holds (its handles stay
  // valid and empty).
  void cancel_all() {
    for (auto& weak : live_)
      if (auto subscription = weak.lock()) subscription->cancel();
    live_.clear();
  }

 private:
  // The plugin's handle owns the daemon's handle, which this host can
  // cancel behind the plugin's back.
  struct Forwarding final : Subscription::Token {
    std::shared_ptr<Subscription> inner;
  };
  Subscription track(Subscription inner) {
    std::erase_if(live_, [](const auto& weak) { return weak.expired(); });
    auto token = std::make_unique<Forwarding>();
    token->inner = std::make_shared<Subscription>(std::move(inner));
    live_.push_back(token->inner);
    return Subscription(std::move(token));
  }
  // The plugin's exception is read here, in the plugin's name, while its
  // library is loaded; the loop goes on.
  std::function<void()> guarded(std::function<void()> callback, std::string what) {
    Host* base = &base_;
    return [callback = std::move(callback), base, what = "plugin '" + plugin_ + "': its " + what] {
      try {
        callback();
      } catch (const std::exception& error) {
        base->log(LogLevel::error,
                  what + " failed: " + error.what() + " (it runs again next time)");
      } catch (...) {
        base->log(LogLevel::error,
                  what + " failed with an unknown exception (it runs again next time)");
      }
    };
  }

  Host& base_;
  std::string plugin_;
  std::vector<std::weak_ptr<Subscription>> live_;
};

PluginHost::PluginHost(const NodeConfig& config, Host& host, std::uint16_t abi_minor)
    : config_(config), host_(host), abi_minor_(abi_minor) {}

PluginHost::~PluginHost() {
  // No callback of a plugin may outlive its library.
  for (auto& p : plugins_)
    if (p.host) p.host->cancel_all();
  // Plugin objects go before their libraries (member order in LoadedPlugin).
  plugins_.clear();
}

void PluginHost::open_one(LoadedPlugin& entry, bool strict) {
  std::string dir = config_.plugin_dir.empty() ? default_plugin_dir() : config_.plugin_dir;
  entry.path = dir + "/" + entry.name + ".so";
  if (!std::filesystem::exists(entry.path))
    throw Error("plugin '" + entry.name + "' is enabled but " + entry.path +
                " does not exist: build it (-DSLUICE_PLUGINS), install it, or set [plugins] dir");

  PluginAbiDescriptor descriptor = read_plugin_descriptor(entry.path);
  entry.abi_major = descriptor.major;
  entry.abi_minor = descriptor.minor;
  entry.version = fixed_string(descriptor.version, sizeof(descriptor.version));
  if (std::string why = check_plugin_abi(descriptor, entry.path, abi_minor_);
      !why.empty()) throw Error(why);
  std::string declared = fixed_string(descriptor.name, sizeof(descriptor.name));
  if (declared != entry.name)
    throw Error("plugin file " + entry.path + " declares itself as '" + declared +
                "', not '" + entry.name + "'");

  // Only now does any of the plugin's code run (its static constructors).
  boost::dll::fs::error_code ec;
  entry.library.emplace(entry.path, boost::dll::load_mode::rtld_now, ec);
  if (ec) throw Error("cannot load plugin " + entry.path + ": " + ec.message());
  if (!entry.library->has("sluice_plugin_create"))
    throw Error("plugin " + entry.path + " has no sluice_plugin_create symbol");
  auto create = entry.library->get<Plugin*()>("sluice_plugin_create");
  entry.plugin = PluginHandle(std::unique_ptr<Plugin>(create()), entry.name, descriptor.minor);
  if (!entry.plugin) throw Error("plugin " + entry.path + ": sluice_plugin_create returned null");
  entry.requires_plugins = entry.plugin.requires_plugins();

  ConfigSource source{config_.file, config_.text, "plugins." + entry.name};
  try {
    entry.plugin.configure(source);
  } catch (const ConfigError& error) {
    // A copy made here: the plugin's exception object (its vtable) lives in
    // the plugin's library, which is unloaded before the caller reads it.
    entry.config_error.emplace(error.file, error.line, error.column, error.key, error.what());
    if (strict) throw *entry.config_error;
    throw Error("plugin '" + entry.name + "': " + format_config_error(*entry.config_error));
  }
  entry.stages = entry.plugin.stages();
  for (const auto& stage : entry.stages)
    if (stage.name.empty() || stage.name.size() >= SL_REG_NAME_LEN)
      throw Error("plugin '" + entry.name + "' declares a stage with an invalid name");
  entry.state = PluginState::configured;
}

void PluginHost::open_and_configure(bool strict) {
  plugins_.clear();
  for (const auto& name : config_.enabled_plugins) {
    LoadedPlugin& entry = plugins_.emplace_back();
    entry.name = name;
    try {
      open_one(entry, strict);
    } catch (const ConfigError&) {
      throw;
    } catch (const std::exception& error) {
      entry.error = error.what();
      entry.state = PluginState::failed;
      entry.plugin.reset();
      if (strict) throw Error(entry.error);
    } catch (...) {
      // Plugin code may throw anything; it must never take the daemon down.
      entry.error = "plugin '" + name + "' threw an unknown exception while starting";
      entry.state = PluginState::failed;
      entry.plugin.reset();
      if (strict) throw Error(entry.error);
    }
  }
  order_by_dependencies();
  if (strict) refuse_invalid_configuration();
}

void PluginHost::refuse_invalid_configuration() const {
  for (const auto& p : plugins_)
    if (p.config_error) throw *p.config_error;
}

// Where [plugins] enabled is written, so a dependency error points at it.
ConfigError PluginHost::enabled_list_error(const std::string& message) const {
  try {
    toml::table root = config::parse(config_.text, config_.file);
    if (const toml::node* enabled = root.at_path("plugins.enabled").node())
      return ConfigError(config_.file, enabled->source().begin.line,
                         enabled->source().begin.column, "plugins.enabled", message);
  } catch (const ConfigError&) {
  }
  return ConfigError(config_.file, 0, 0, "plugins.enabled", message);
}

// Kahn's algorithm, ties in enabled order. A plugin whose dependency is not
// enabled or failed, or that sits in a cycle, fails with a message naming
// the missing piece.
void PluginHost::order_by_dependencies() {
  std::map<std::string, std::size_t> index;
  for (std::size_t i = 0; i < plugins_.size(); ++i) index[plugins_[i].name] = i;
  bool changed = true;
  while (changed) {
    changed = false;
    for (auto& p : plugins_) {
      if (p.state == PluginState::failed) continue;
      for (const auto& dep : p.requires_plugins) {
        auto it = index.find(dep);
        std::string why;
        if (it == index.end()) {
          why = "plugin '" + p.name + "' needs plugin '" + dep +
                "', which is not enabled: add it to [plugins] enabled";
          p.config_error = enabled_list_error(why);
        } else if (plugins_[it->second].state == PluginState::failed)
          why = "plugin '" + p.name + "' needs plugin '" + dep + "', which failed to load";
        if (!why.empty()) {
          p.error = why;
          p.state = PluginState::failed;
          changed = true;
          break;
        }
      }
    }
  }
  std::vector<LoadedPlugin> ordered;
  std::vector<bool> placed(plugins_.size(), false);
  for (std::size_t round = 0; round < plugins_.size(); ++round) {
    for (std::size_t i = 0; i < plugins_.size(); ++i) {
      if (placed[i]) continue;
      bool ready = true;
      for (const auto& dep : plugins_[i].requires_plugins) {
        auto it = index.find(dep);
        if (it != index.end() && !placed[it->second]) ready = false;
      }
      if (ready || plugins_[i].state == PluginState::failed) {
        placed[i] = true;
        ordered.push_back(std::move(plugins_[i]));
        break;
      }
    }
  }
  for (std::size_t i = 0; i < plugins_.size(); ++i)
    if (!placed[i]) {
      plugins_[i].state = PluginState::failed;
      plugins_[i].error = "plugin '" + plugins_[i].name + "' is part of a dependency cycle";
      plugins_[i].config_error = enabled_list_error(plugins_[i].error);
      ordered.push_back(std::move(plugins_[i]));
    }
  plugins_ = std::move(ordered);
}

void PluginHost::load_bpf() {
  for (auto& p : plugins_) {
    if (p.state != PluginState::configured) continue;
    bool dependency_failed = false;
    for (const auto& dep : p.requires_plugins)
      for (const auto& other : plugins_)
        if (other.name == dep && other.state != PluginState::loaded) dependency_failed = true;
    if (dependency_failed) {
      p.state = PluginState::failed;
      p.error = "plugin '" + p.name + "': a plugin it needs failed to load";
      continue;
    }
    try {
      p.host = std::make_shared<PluginScopedHost>(host_, p.name);
      p.plugin.load(*p.host);
      for (const auto& stage : p.stages)
        if (p.plugin.stage_fd(stage.name) < 0)
          throw Error("stage '" + stage.name + "' has no loaded program '" + stage.program + "'");
      p.state = PluginState::loaded;
    } catch (const std::exception& error) {
      p.state = PluginState::failed;
      p.error = "plugin '" + p.name + "' failed to load its BPF programs: " + error.what();
    } catch (...) {
      p.state = PluginState::failed;
      p.error = "plugin '" + p.name + "' threw an unknown exception while loading";
    }
    // A failed plugin's timers and watchers never run.
    if (p.state == PluginState::failed && p.host) p.host->cancel_all();
  }
}

void PluginHost::shutdown(bool cleanup) {
  for (auto it = plugins_.rbegin(); it != plugins_.rend(); ++it) {
    if (!it->plugin) continue;
    try {
      it->plugin.shutdown(cleanup);
    } catch (const std::exception& error) {
      spdlog::warn("plugin '{}' shutdown: {}", it->name, error.what());
    }
    if (it->host) it->host->cancel_all();
  }
}

}  // namespace sluice
