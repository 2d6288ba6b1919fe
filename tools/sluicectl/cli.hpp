// The command framework of sluicectl: what every command gets (Context) and
// how a command describes itself (CommandSpec). Each command group lives in
// its own source file and returns its specs; main.cpp only dispatches.
#pragma once

#include <boost/program_options.hpp>

#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

#include "output.hpp"
#include "sluice/core/config.hpp"

namespace sluice::ctl {

namespace po = boost::program_options;

// Exit codes, as documented in `sluicectl --help`.
inline constexpr int kExitOk = 0;
inline constexpr int kExitFailure = 1;  // operational: nothing pinned, bad name, kernel error
inline constexpr int kExitUsage = 2;    // bad command line or configuration

// A failure the operator can act on: the message says what and what to do.
struct CtlError : std::runtime_error {
  explicit CtlError(const std::string& message, int exit_code = kExitFailure)
      : std::runtime_error(message), exit_code(exit_code) {}
  int exit_code;
};

struct Context {
  NodeConfig config;
  bool config_loaded = false;
  std::string config_error;  // why config_loaded is false (config_optional commands)
  OutputFormat format = OutputFormat::table;
  bool json() const { return format == OutputFormat::json; }
};

struct CommandSpec {
  std::vector<std::string> path;  // e.g. {"counters", "dump"}
  std::string arguments;          // synopsis after the path, e.g. "[--iface NAME]"
  std::string summary;            // one line for the command list
  std::string description;        // the body of `sluicectl <path> --help`
  // Adds the command's own options and positional arguments (may be empty).
  std::function<void(po::options_description&, po::positional_options_description&)>
      add_options;
  std::function<int(Context&, const po::variables_map&)> run;
  // Runs even when the default configuration file cannot be loaded.
  bool config_optional = false;
};

std::vector<CommandSpec> version_commands();
std::vector<CommandSpec> ifstate_commands();
std::vector<CommandSpec> counters_commands();
std::vector<CommandSpec> log_level_commands();
std::vector<CommandSpec> plugins_commands();
std::vector<CommandSpec> monitor_commands();
std::vector<CommandSpec> routes_commands();

}  // namespace sluice::ctl
