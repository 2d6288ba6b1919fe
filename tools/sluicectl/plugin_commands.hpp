// Commands that plugins contribute to sluicectl (Plugin::cli_commands()).
//
// Plugins are loaded only when a command is not a built-in one, or for the
// command list of `sluicectl --help`: built-in commands never depend on
// plugin files. Loading goes through the core's PluginHost, so every plugin
// is ABI-checked from its file before any of its code runs.
#pragma once

#include <iosfwd>
#include <string>
#include <vector>

#include <sluice/cli.hpp>

#include "cli.hpp"
#include "sluice/core/node_host.hpp"
#include "sluice/core/plugin_host.hpp"

namespace sluice::ctl {

struct PluginCommand {
  std::string plugin;
  CliCommand command;
};

class PluginCommands {
 public:
  // Opens and configures every enabled plugin and collects its commands.
  // Commands that would shadow a built-in one (or another plugin's) are
  // refused with a message on `warnings` naming the plugin.
  PluginCommands(const NodeConfig& config, const std::vector<CliCommand>& builtins,
                 std::ostream& warnings);
  ~PluginCommands();
  PluginCommands(const PluginCommands&) = delete;
  PluginCommands& operator=(const PluginCommands&) = delete;

  const std::vector<PluginCommand>& commands() const { return commands_; }
  // Plugins that could not be loaded or configured (their error names them).
  std::vector<const LoadedPlugin*> failed() const;
  // The plugin enabled under that name, if it failed.
  const LoadedPlugin* failed_plugin(const std::string& name) const;

 private:
  NodeHost host_;
  PluginHost plugins_;
  // Declared last: the commands (code of the plugins) go before the plugins.
  std::vector<PluginCommand> commands_;
};

}  // namespace sluice::ctl
