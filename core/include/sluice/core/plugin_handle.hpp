// The host's one way to call a loaded plugin. It knows the ABI minor the
// plugin was built with (from the descriptor read before dlopen) and calls a
// virtual appended to Plugin in minor N only for plugins built with N or
// later: an older plugin's vtable ends before that slot. Lists the plugin
// builds (stages, CLI commands) are read element by element at the size
// the plugin built them (Sink, struct_as_built.hpp).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <sluice/plugin.hpp>

namespace sluice {

// The minor of the current major that introduced each group of Plugin's
// virtuals. Every virtual of 2.0 is in every plugin the host accepts; a
// virtual appended in 2.N gets an entry here and its PluginHandle method
// calls it through call_since(kPluginMinorOf..., default, ...).
inline constexpr std::uint16_t kPluginMinorOfBaseInterface = 0;
inline constexpr std::uint16_t kPluginMinorOfStageObjects = 1;

class PluginHandle {
 public:
  PluginHandle() = default;
  PluginHandle(std::unique_ptr<Plugin> plugin, std::string name, std::uint16_t minor_as_built);

  explicit operator bool() const { return plugin_ != nullptr; }
  void reset() { plugin_.reset(); }
  std::uint16_t minor_as_built() const { return minor_as_built_; }
  // Whether the plugin was built with ABI minor `minor` (or later) of this
  // major, so it has that minor's virtuals.
  bool supports(std::uint16_t minor) const { return minor_as_built_ >= minor; }

  // Runs call(plugin) if the plugin has the virtuals of `minor`, else gives
  // `fallback` (what the plugin would have answered had it known nothing).
  template <class Result, class Call>
  Result call_since(std::uint16_t minor, Result fallback, Call&& call) const {
    if (!supports(minor)) return fallback;
    return call(*plugin_);
  }
  template <class Call>
  void call_since(std::uint16_t minor, Call&& call) const {
    if (supports(minor)) call(*plugin_);
  }

  // ---- ABI 2.0 (kPluginMinorOfBaseInterface) ----
  std::string description() const { return plugin_->description(); }
  std::vector<std::string> requires_plugins() const { return plugin_->requires_plugins(); }
  void configure(const ConfigSource& config) { plugin_->configure(config); }
  std::vector<StageSpec> stages() const;
  void load(Host& host) { plugin_->load(host); }
  int stage_fd(std::string_view stage) const { return plugin_->stage_fd(stage); }
  void shutdown(bool cleanup) { plugin_->shutdown(cleanup); }
  std::vector<CliCommand> cli_commands() const;
  void write_metrics(MetricsWriter& out) const { plugin_->write_metrics(out); }
  std::vector<std::string> resource_kinds() const { return plugin_->resource_kinds(); }
  void reconcile(const ResourceChange& change) { plugin_->reconcile(change); }
  std::unique_ptr<PreparedChange> prepare(const ResourceChange& change) {
    return plugin_->prepare(change);
  }

  // ---- ABI 2.1 (kPluginMinorOfStageObjects) ----
  bool stage_object(std::string_view stage, StageObject& out) const {
    return call_since(kPluginMinorOfStageObjects, false,
                      [&](const Plugin& plugin) { return plugin.stage_object(stage, out); });
  }

 private:
  std::unique_ptr<Plugin> plugin_;
  std::string name_;  // for errors about what the plugin handed over
  std::uint16_t minor_as_built_ = 0;
};

}  // namespace sluice
