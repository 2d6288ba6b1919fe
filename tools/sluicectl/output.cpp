#include "output.hpp"

#include <algorithm>
#include <ctime>
#include <ostream>
#include <stdexcept>

namespace sluice::ctl {

std::string join(const std::vector<std::string>& parts, const std::string& separator) {
  std::string out;
  for (std::size_t i = 0; i < parts.size(); ++i) {
    if (i) out += separator;
    out += parts[i];
  }
  return out;
}

std::string format_utc(std::uint64_t realtime_ns) {
  if (realtime_ns == 0) return "-";
  std::time_t seconds = static_cast<std::time_t>(realtime_ns / 1000000000ull);
  std::tm tm{};
  gmtime_r(&seconds, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

}  // namespace sluice::ctl
