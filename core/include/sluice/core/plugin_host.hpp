// Loading plugins: ABI check from the file (before any plugin code runs),
// Boost.DLL load, configuration, dependency order, BPF load.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <boost/dll/shared_library.hpp>

#include "sluice/core/config.hpp"
#include "sluice/core/plugin_handle.hpp"

namespace sluice {

// Reads the exported sluice_plugin_abi descriptor straight from the ELF file
// without loading it. Throws Error naming the file when it is not a Sluice
// plugin (no descriptor, bad magic).
PluginAbiDescriptor read_plugin_descriptor(const std::string& path);

// Empty when the descriptor is compatible with a daemon providing ABI
// kPluginAbiMajor.`host_minor`, else why not (naming both versions and what
// to do).
std::string check_plugin_abi(const PluginAbiDescriptor& descriptor, const std::string& path,
                             std::uint16_t host_minor = kPluginAbiMinor);

enum class PluginState { failed, configured, loaded };

// The Host one plugin sees: the daemon's, with the plugin's name on what its
// callbacks throw and a record of its subscriptions, so they are cancelled
// when it fails to load or shuts down, before its library goes.
class PluginScopedHost;

struct LoadedPlugin {
  std::string name;
  std::string path;
  std::string version;
  std::uint16_t abi_major = 0, abi_minor = 0;
  PluginState state = PluginState::failed;
  std::string error;  // why it failed, naming the plugin
  // Set when it failed because of the configuration (its table, a needed
  // plugin not enabled): sluiced refuses to start on it (see
  // refuse_invalid_configuration()) unless told otherwise.
  std::optional<ConfigError> config_error;
  std::vector<std::string> requires_plugins;
  std::vector<StageSpec> stages;
  std::shared_ptr<PluginScopedHost> host;  // from load() on
  // Destroyed in reverse order: the plugin object before its library.
  std::optional<boost::dll::shared_library> library;
  PluginHandle plugin;
};

class PluginHost {
 public:
  // `abi_minor`: the ABI minor this host provides. Only tests pass another
  // one, to play a daemon newer than the SDK the fixture plugins see.
  PluginHost(const NodeConfig& config, Host& host, std::uint16_t abi_minor = kPluginAbiMinor);
  ~PluginHost();

  // Opens, checks and configures every enabled plugin, in dependency order.
  // A plugin that fails is kept with its error; the others go on. With
  // `strict` (sluiced --check-config) a configuration error is thrown.
  void open_and_configure(bool strict);

  // Throws the first plugin configuration error that open_and_configure()
  // kept (a bad [plugins.<name>] table, a dependency not enabled, a cycle).
  void refuse_invalid_configuration() const;
  // Loads BPF for every configured plugin; failures are recorded.
  void load_bpf();
  void shutdown(bool cleanup);

  std::vector<LoadedPlugin>& plugins() { return plugins_; }
  const std::vector<LoadedPlugin>& plugins() const { return plugins_; }

 private:
  void open_one(LoadedPlugin& entry, bool strict);
  void order_by_dependencies();
  ConfigError enabled_list_error(const std::string& message) const;

  const NodeConfig& config_;
  Host& host_;
  std::uint16_t abi_minor_;
  std::vector<LoadedPlugin> plugins_;
};

}  // namespace sluice
