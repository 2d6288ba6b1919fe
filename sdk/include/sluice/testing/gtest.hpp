// GoogleTest assertions for the stage harness (header-only; include after
// linking GTest yourself).
//
//   SL_EXPECT_RUN(bed.run(pkt)).verdict(TC_ACT_SHOT).reason(SL_R_PLUGIN_0);
//   SL_EXPECT_RUN(bed.run(pkt)).passes().bytes(pkt.bytes);   // unchanged packet
//   auto before = bed.counters(0, SL_HOOK_INGRESS);
//   ... run ...
//   EXPECT_TRUE(counted_once(bed, before, SL_R_ACCEPTED, pkt.size()));
#pragma once

#include <gtest/gtest.h>

#include <cstdio>
#include <string>

#include <sluice/testing/stage_test.hpp>

namespace sluice::testing {

// "0x0000: 02 00 ..." lines, 16 bytes each; marks the first difference.
inline std::string hex_diff(const Bytes& got, const Bytes& want) {
  std::size_t first = 0;
  while (first < got.size() && first < want.size() && got[first] == want[first]) ++first;
  std::string out = "first difference at byte " + std::to_string(first) + " (got " +
                    std::to_string(got.size()) + " bytes, want " + std::to_string(want.size()) +
                    ")\n";
  auto dump = [&](const char* label, const Bytes& b) {
    out += label;
    out += ":\n";
    std::size_t from = first / 16 * 16;
    for (std::size_t row = from; row < b.size() && row < from + 64; row += 16) {
      char line[16];
      std::snprintf(line, sizeof(line), "  0x%04zx:", row);
      out += line;
      for (std::size_t i = row; i < row + 16 && i < b.size(); ++i) {
        std::snprintf(line, sizeof(line), "%s%02x", i == first ? ">" : " ", b[i]);
        out += line;
      }
      out += "\n";
    }
  };
  dump("got", got);
  dump("want", want);
  return out;
}

inline ::testing::AssertionResult bytes_equal(const Bytes& got, const Bytes& want) {
  if (got == want) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << hex_diff(got, want);
}

// Exactly `reason` moved by `packets` packets of `len` bytes each between
// `before` and now on (slot, hook), and no other reason moved.
inline ::testing::AssertionResult counted_once(const Testbed& bed, const CounterSnapshot& before,
                                               std::uint32_t reason, std::size_t len,
                                               sl_hook hook = SL_HOOK_INGRESS,
                                               std::uint32_t slot = 0,
                                               std::uint64_t packets = 1) {
  CounterSnapshot after = bed.counters(slot, hook);
  std::string errors;
  for (std::uint32_t r = 0; r < SL_REASON_COUNT; ++r) {
    std::uint64_t dp = after[r].packets - before[r].packets;
    std::uint64_t db = after[r].bytes - before[r].bytes;
    std::uint64_t want_p = r == reason ? packets : 0;
    std::uint64_t want_b = r == reason ? len * packets : 0;
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

// No counter of (slot, hook) moved since `before`.
inline ::testing::AssertionResult hook_untouched(const Testbed& bed, const CounterSnapshot& before,
                                                 sl_hook hook, std::uint32_t slot = 0) {
  CounterSnapshot after = bed.counters(slot, hook);
  for (std::uint32_t r = 0; r < SL_REASON_COUNT; ++r)
    if (after[r].packets != before[r].packets || after[r].bytes != before[r].bytes)
      return ::testing::AssertionFailure()
             << "hook " << hook << " reason " << reason_name(r) << " moved";
  return ::testing::AssertionSuccess();
}

// Fluent, non-fatal checks of one run, reported at the caller's line.
class RunExpectation {
 public:
  RunExpectation(RunResult result, const char* file, int line)
      : r_(std::move(result)), file_(file), line_(line) {}

  RunExpectation& verdict(int want) {
    if (r_.verdict != want)
      fail(std::string("verdict ") + verdict_name(r_.verdict) + " (" +
           std::to_string(r_.verdict) + "), expected " + verdict_name(want) + " (" +
           std::to_string(want) + "), counted as '" + name(r_.reason) + "'");
    return *this;
  }
  RunExpectation& passes() { return verdict(TC_ACT_OK); }
  RunExpectation& drops() { return verdict(TC_ACT_SHOT); }
  RunExpectation& reason(std::uint32_t want) {
    if (r_.reason != want)
      fail(std::string("counted as '") + name(r_.reason) + "', expected '" + name(want) + "'");
    return *this;
  }
  // A drop with a reason: verdict TC_ACT_SHOT counted under `why`.
  RunExpectation& drops(std::uint32_t why) { return drops().reason(why); }
  RunExpectation& bytes(const Bytes& want) {
    if (r_.out != want) fail("output packet differs: " + hex_diff(r_.out, want));
    return *this;
  }
  const RunResult& result() const { return r_; }

 private:
  static const char* name(std::uint32_t reason) {
    return reason == kNoReason ? "(none or several)" : reason_name(reason);
  }
  void fail(const std::string& text) const { ADD_FAILURE_AT(file_, line_) << text; }
  RunResult r_;
  const char* file_;
  int line_;
};

}  // namespace sluice::testing

#define SL_EXPECT_RUN(result) ::sluice::testing::RunExpectation((result), __FILE__, __LINE__)
