// The command framework of sluicectl: what every built-in command gets
// (Context) and how commands are declared (sluice::CliCommand, as plugins
// declare theirs). Each command group lives in
// its own source file and returns its specs; main.cpp only dispatches.
#pragma once

#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "output.hpp"
#include "sluice/core/config.hpp"

namespace sluice::ctl {

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

// What the built-in commands share beyond CliContext: the node
// configuration, loaded by main before the command runs.
class Context {
 public:
  OutputFormat format = OutputFormat::table;
  bool json() const { return format == OutputFormat::json; }

  // The node configuration; throws CtlError (exit 2) naming what is wrong
  // with it when it could not be loaded.
  const NodeConfig& config() const {
    if (!config_) throw CtlError("invalid configuration: " + config_error_, kExitUsage);
    return *config_;
  }
  bool config_loaded() const { return config_.has_value(); }
  const std::string& config_error() const { return config_error_; }  // when not loaded

  void set_config(NodeConfig config) { config_ = std::move(config); }
  void set_config_error(std::string error) { config_error_ = std::move(error); }

 private:
  std::optional<NodeConfig> config_;
  std::string config_error_;
};

// Built-in commands are sluice::CliCommand, as plugin commands are: options
// declared as CliOption, parsed by sluice/core/command_line.hpp. Their run
// functions also get sluicectl's Context.
using BuiltinRun = int (*)(Context&, const CliValues&);
inline CliRun builtin(Context& context, BuiltinRun run) {
  return [&context, run](const CliContext&, const CliValues& values) {
    return run(context, values);
  };
}

// Each group of commands; the run functions refer to `context`.
std::vector<CliCommand> version_commands(Context& context);
std::vector<CliCommand> ifstate_commands(Context& context);
std::vector<CliCommand> counters_commands(Context& context);
std::vector<CliCommand> log_level_commands(Context& context);
std::vector<CliCommand> plugins_commands(Context& context);
std::vector<CliCommand> monitor_commands(Context& context);
std::vector<CliCommand> routes_commands(Context& context);

// Every built-in command, in the order of `sluicectl --help`.
inline std::vector<CliCommand> builtin_commands(Context& context) {
  std::vector<CliCommand> all;
  for (auto group : {version_commands, ifstate_commands, counters_commands, log_level_commands,
                     plugins_commands, monitor_commands, routes_commands})
    for (auto& command : group(context)) all.push_back(std::move(command));
  return all;
}

}  // namespace sluice::ctl
