#include "sluice/testing/cli.hpp"

#include <sstream>

#include "sluice/core/command_line.hpp"

namespace sluice::testing {

int run_plugin_command(const PluginUnderTest& plugin, const Testbed& bed,
                       const std::vector<std::string>& path, std::vector<std::string> args,
                       std::string& output, OutputFormat format) {
  for (const auto& command : plugin.cli_commands()) {
    if (command.path != path) continue;
    std::ostringstream out, err;
    CliContext context;
    context.pin_dir = bed.pin_dir();
    context.map_pin_dir = bed.map_pin_dir();
    context.format = format;
    context.out = &out;
    context.err = &err;
    int rc = run_cli_command(command, args, context);
    output = out.str() + err.str();
    return rc;
  }
  output = "the plugin has no command '";
  for (const auto& word : path) output += word + " ";
  output += "'";
  return -1;
}

}  // namespace sluice::testing
