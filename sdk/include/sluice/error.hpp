// sluice::Error: the one error type of Sluice for failures an operator reads
// (sluiced's log, sluicectl's stderr). It carries what failed, with its
// context (which object, file or interface; what the kernel said), and,
// where there is one, what to do about it. Configuration input keeps its own
// type, ConfigError (<sluice/plugin.hpp>), which carries the position.
#pragma once

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <string>
#include <utility>

namespace sluice {

class Error : public std::runtime_error {
 public:
  // What failed, with its context; what() is exactly this text.
  explicit Error(const std::string& what_failed) : Error(what_failed, std::string()) {}
  explicit Error(const char* what_failed) : Error(std::string(what_failed)) {}
  // What failed and what to do: what() is "<what failed>; <what to do>".
  Error(const std::string& what_failed, const std::string& what_to_do)
      : std::runtime_error(what_to_do.empty() ? what_failed : what_failed + "; " + what_to_do),
        what_failed_(what_failed),
        what_to_do_(what_to_do) {}

  const std::string& what_failed() const noexcept { return what_failed_; }
  // Empty when there is nothing better to say than what failed.
  const std::string& what_to_do() const noexcept { return what_to_do_; }

 private:
  std::string what_failed_;
  std::string what_to_do_;
};

// "No such file or directory (errno 2)": the kernel's answer for a message.
// Takes errno or a negative libbpf return value.
inline std::string errno_text(int err) {
  if (err < 0) err = -err;
  return std::string(std::strerror(err)) + " (errno " + std::to_string(err) + ")";
}

}  // namespace sluice
