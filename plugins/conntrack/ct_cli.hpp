// sluicectl conntrack dump / stats / remove / clean, from the pinned table
// (they work while sluiced is down).
#pragma once

#include <vector>

#include <sluice/cli.hpp>

#include "ct_config.hpp"

namespace ct {

int run_dump(const sluice::CliContext& context, const sluice::CliValues& values);
int run_stats(const sluice::CliContext& context, const sluice::CliValues& values);
// <proto|any> <ip> [ip]
int run_remove(const sluice::CliContext& context, const sluice::CliValues& values);
// [--all]; runs the cleaner with the configuration's timeouts.
int run_clean(const sluice::CliContext& context, const sluice::CliValues& values,
              const Settings& settings);

// The commands, with their --help texts.
std::vector<sluice::CliCommand> conntrack_cli_commands(const Settings& settings);

}  // namespace ct
