// The clocks of BPF timestamps, read from user space: bpf_ktime_get_ns() is
// CLOCK_MONOTONIC, bpf_ktime_get_coarse_ns() CLOCK_MONOTONIC_COARSE. Ages of
// map entries must be taken against the same clock the program used.
#pragma once

#include <time.h>

#include <cstdint>

namespace sluice {

inline std::uint64_t clock_ns(clockid_t clock) {
  timespec now{};
  clock_gettime(clock, &now);
  return static_cast<std::uint64_t>(now.tv_sec) * 1000000000ull +
         static_cast<std::uint64_t>(now.tv_nsec);
}

// bpf_ktime_get_ns()'s clock.
inline std::uint64_t monotonic_ns() { return clock_ns(CLOCK_MONOTONIC); }

}  // namespace sluice
