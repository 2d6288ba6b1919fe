// Output helpers of sluicectl; tables and JSON come from <sluice/output.hpp>.
//
// Every command builds its result once as rows (tables) or a Json value, so
// the two formats cannot drift apart in what they report.
#pragma once

#include <cstdint>
#include <iosfwd>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include <sluice/cli.hpp>
#include <sluice/output.hpp>

namespace sluice::ctl {

using sluice::OutputFormat;  // <sluice/cli.hpp>

using sluice::output::Json;
using sluice::output::Table;

// Text of a fixed-size, possibly unterminated char array from a map value.
template <std::size_t N>
std::string fixed_string(const char (&chars)[N]) {
  std::size_t len = 0;
  while (len < N && chars[len] != '\0') ++len;
  return std::string(chars, len);
}

std::string join(const std::vector<std::string>& parts, const std::string& separator);

// CLOCK_REALTIME nanoseconds as "2024-05-01T12:00:00Z" (UTC); "-" for 0.
std::string format_utc(std::uint64_t realtime_ns);

}  // namespace sluice::ctl
