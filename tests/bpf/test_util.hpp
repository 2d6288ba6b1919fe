// Shared helpers of the BPF tests.
#pragma once

#include <gtest/gtest.h>

#include <array>
#include <string>

#include "sluice/testing/testbed.hpp"

namespace sluice::testing {

inline constexpr RoleRules kDropRules{SL_FAULT_DROP, SL_FAULT_DROP};
inline constexpr RoleRules kPassRules{SL_FAULT_PASS, SL_FAULT_PASS};

using CounterSnapshot = std::array<sl_counter, SL_REASON_COUNT>;

// Checks that exactly `reason` moved by one packet of `len` bytes between
// `before` and now, on (slot, hook), and that no other reason moved.
inline ::testing::AssertionResult counted_once(const Testbed& bed, const CounterSnapshot& before,
                                               std::uint32_t reason, std::size_t len,
                                               sl_hook hook = SL_HOOK_INGRESS,
                                               std::uint32_t slot = 0) {
  CounterSnapshot after = bed.counters(slot, hook);
  std::string errors;
  for (std::uint32_t r = 0; r < SL_REASON_COUNT; ++r) {
    std::uint64_t dp = after[r].packets - before[r].packets;
    std::uint64_t db = after[r].bytes - before[r].bytes;
    std::uint64_t want_p = r == reason ? 1 : 0;
    std::uint64_t want_b = r == reason ? len : 0;
    if (dp != want_p || db != want_b)
      errors += std::string("\n  reason ") + std::to_string(r) + " (" + reason_name(r) +
                "): +" + std::to_string(dp) + " packets +" + std::to_string(db) +
                " bytes, expected +" + std::to_string(want_p) + " +" + std::to_string(want_b);
  }
  if (errors.empty()) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "counters of slot " << slot << " hook " << hook
                                       << " after expecting only '" << reason_name(reason)
                                       << "':" << errors;
}

// Both hooks, every other slot untouched is not checked (the array is big);
// the other hook is checked to be all zero-delta.
inline ::testing::AssertionResult hook_untouched(const Testbed& bed, const CounterSnapshot& before,
                                                 sl_hook hook, std::uint32_t slot = 0) {
  CounterSnapshot after = bed.counters(slot, hook);
  for (std::uint32_t r = 0; r < SL_REASON_COUNT; ++r)
    if (after[r].packets != before[r].packets || after[r].bytes != before[r].bytes)
      return ::testing::AssertionFailure()
             << "hook " << hook << " reason " << reason_name(r) << " moved";
  return ::testing::AssertionSuccess();
}

}  // namespace sluice::testing
