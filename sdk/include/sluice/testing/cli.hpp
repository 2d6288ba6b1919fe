// Running a plugin's sluicectl commands in tests, against a Testbed's pins,
// the way sluicectl runs them: the arguments are parsed against the
// command's declared options (unknown options, missing or mistyped values
// give kCliUsage with sluicectl's message; `--help` prints the help).
#pragma once

#include <string>
#include <vector>

#include <sluice/plugin.hpp>
#include <sluice/testing/stage_test.hpp>

namespace sluice::testing {

// Runs the plugin command at `path` with `args`. Returns its exit code, or -1
// when the plugin has no such command; `output` gets what it printed (stdout
// then stderr).
int run_plugin_command(const PluginUnderTest& plugin, const Testbed& bed,
                       const std::vector<std::string>& path, std::vector<std::string> args,
                       std::string& output, OutputFormat format = OutputFormat::table);

}  // namespace sluice::testing
