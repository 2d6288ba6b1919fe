// The command line of a sluicectl command (sluice::CliCommand, built-in or
// a plugin's): its declared options (CliOption) turned into
// Boost.Program_options, parsed into typed CliValues, and the synopsis and
// option list of its `--help`. sluicectl and the stage test harness both
// go through here, so every command parses the same way.
#pragma once

#include <stdexcept>
#include <string>
#include <vector>

#include <sluice/cli.hpp>

namespace sluice {

// A bad command line; the message names the command and what is wrong with
// which option, e.g. "ratelimit dump: unrecognised option '--bogus'".
struct CliUsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// What is wrong with the command's declaration (an option without a name, a
// positional flag, a name declared twice, ...); empty when nothing is.
std::string cli_declaration_problem(const CliCommand& command);

// Parses `args` (the words after the command's path) into the command's
// typed values. Throws CliUsageError.
CliValues parse_cli_arguments(const CliCommand& command, const std::vector<std::string>& args);

// "ratelimit dump [--top N]", "conntrack remove <proto|any> <ip> [ip]".
std::string cli_synopsis(const CliCommand& command);

// The argument and option lists of `--help` ("Arguments:", "Options:"
// sections), empty for a command without options.
std::string cli_option_help(const CliCommand& command);

// "Usage: sluicectl [GLOBAL OPTIONS] <synopsis>", the description and the
// option lists.
std::string cli_command_help(const CliCommand& command);

// Runs the command on `args` as sluicectl does: `--help` / `-h` prints its
// help on context.out; a bad command line is reported on context.err
// ("sluicectl: <message>" and where to find help) and gives kCliUsage;
// otherwise the command runs with the parsed values.
int run_cli_command(const CliCommand& command, const std::vector<std::string>& args,
                    const CliContext& context);

}  // namespace sluice
