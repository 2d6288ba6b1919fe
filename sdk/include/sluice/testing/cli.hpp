// Running a plugin's sluicectl commands in tests, against a Testbed's pins,
// the way sluicectl runs them.
#pragma once

#include <sstream>
#include <string>
#include <vector>

#include <sluice/plugin.hpp>
#include <sluice/testing/stage_test.hpp>

namespace sluice::testing {

// Runs the plugin command at `path` with `args`. Returns its exit code, or -1
// when the plugin has no such command; `output` gets what it printed (stdout
// then stderr).
inline int run_plugin_command(const PluginUnderTest& plugin, const Testbed& bed,
                              const std::vector<std::string>& path,
                              std::vector<std::string> args, std::string& output,
                              OutputFormat format = OutputFormat::table) {
  for (const auto& command : plugin.cli_commands()) {
    if (command.path != path) continue;
    std::ostringstream out, err;
    CliContext context;
    context.pin_dir = bed.pin_dir();
    context.map_pin_dir = bed.map_pin_dir();
    context.format = format;
    context.args = std::move(args);
    context.out = &out;
    context.err = &err;
    int rc = command.run(context);
    output = out.str() + err.str();
    return rc;
  }
  output = "the plugin has no command '";
  for (const auto& word : path) output += word + " ";
  output += "'";
  return -1;
}

}  // namespace sluice::testing
