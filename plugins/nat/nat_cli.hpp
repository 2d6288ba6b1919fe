// sluicectl nat dump / nat aff: the pinned nat maps as tables or JSON
// (they work while sluiced is down).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <sluice/cli.hpp>

#include "nat_layout.h"

namespace nat {

std::vector<std::string> fe_flag_names(std::uint32_t flags);
std::vector<std::string> be_flag_names(std::uint32_t flags);
// The frontend's address; a node port's (all zero) shows as * / *v6.
std::string frontend_addr(const nat_fe_key& k);
// "10.96.0.10 port 53 proto 17 id 6 count 2 local 0 flags affinity ..."
std::string frontend_line(const nat_fe_key& k, const nat_fe_value& v);
// "\t6:0\t 10.65.0.2:53 local"; a missing backend says so.
std::string backend_line(std::uint32_t id, std::uint32_t ordinal,
                         const std::optional<nat_be_value>& v);

int run_dump(const sluice::CliContext& context, const sluice::CliValues& values);
int run_aff(const sluice::CliContext& context, const sluice::CliValues& values);

// The commands, with their --help texts.
std::vector<sluice::CliCommand> nat_cli_commands();

}  // namespace nat
