// The pinned conntrack table and its statistics, read by fd or by pin path.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <sluice/cli.hpp>
#include <sluice/unique_fd.hpp>

#include "conntrack_layout.h"
#include "ct_format.hpp"

namespace ct {

using Fd = sluice::UniqueFd;

std::vector<Entry> read_entries(int fd);
// <map pin dir>/sl_conntrack
std::string table_pin(const std::string& map_pin_dir);
// Open the pinned table / statistics for a CLI command, refusing maps that
// are not Sluice's (no sl_meta layout marker, another layout, other key or
// value sizes); say why not on context.err.
int open_table(const sluice::CliContext& context, Fd& fd);
int open_stats(const sluice::CliContext& context, Fd& fd);
std::uint32_t max_entries_of(int fd);
// The max_entries of an already pinned table, if any.
std::optional<std::uint32_t> pinned_size(const std::string& map_pin_dir);
// ct_stats summed over the CPUs.
ct_stats read_stats(int fd);

}  // namespace ct
