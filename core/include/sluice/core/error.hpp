#pragma once

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <string>

namespace sluice {

// An operational failure with its context (what, on which object, what the
// kernel said).
struct Error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

inline std::string errno_text(int err) {
  if (err < 0) err = -err;
  return std::string(std::strerror(err)) + " (errno " + std::to_string(err) + ")";
}

}  // namespace sluice
