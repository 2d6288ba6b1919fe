// reasons.def is the one list of verdict reasons: these tests keep it sound
// (every number inside its owner's block, of the block's kind, names unique,
// every reason described), check the map from layout 1's numbers, and compare
// the name table the BPF programs carry (sl_reason_names, read from the
// entry program's object) with the C++ one.
#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include <gtest/gtest.h>

#include <cstring>
#include <memory>
#include <set>
#include <string>

#include "entry_bpf.skel.h"
#include "sluice/core/counters.hpp"

namespace {

using namespace sluice;

// sluice.h's SL_REASON_NAME_LEN (a BPF header, not includable here); the
// size check of the BPF table below fails if the two part.
constexpr std::size_t kBpfReasonNameLen = 32;

TEST(Reasons, FitTheCountersMapAndAreInNumberOrder) {
  unsigned previous = 0;
  bool first = true;
  for (const auto& reason : known_reasons()) {
    EXPECT_LT(reason.id, SL_REASON_COUNT) << reason.name;
    if (!first) {
      EXPECT_GT(reason.id, previous) << reason.name;
    }
    previous = reason.id;
    first = false;
  }
  EXPECT_GE(SL_REASON_COUNT, 128u);
  EXPECT_EQ(SL_REASON_COUNT & (SL_REASON_COUNT - 1), 0u) << "sl_count() masks with COUNT - 1";
}

TEST(Reasons, BlocksCoverEveryNumberOnce) {
  unsigned next = 0;
  for (const auto& block : reason_blocks()) {
    EXPECT_EQ(block.first, next) << block.owner << " leaves a gap or overlaps";
    EXPECT_GE(block.last, block.first) << block.owner;
    next = block.last + 1;
  }
  EXPECT_EQ(next, SL_REASON_COUNT);
}

TEST(Reasons, EachIsInsideItsOwnersBlockAndOfItsKind) {
  for (const auto& reason : known_reasons()) {
    std::string owner = reason_owner(reason.id);
    EXPECT_NE(owner, "unassigned") << reason.name;
    EXPECT_NE(owner, "reserved") << reason.name << " sits in the block kept for future built-ins";
    // Only the accept block holds accepts, and it holds nothing else.
    EXPECT_EQ(owner == "accept", reason.verdict == CounterVerdict::accept) << reason.name;
  }
  EXPECT_STREQ(reason_owner(SL_R_CT_TABLE_FULL), "conntrack");
  EXPECT_STREQ(reason_owner(SL_R_SNAT_PORTS_EXHAUSTED), "nat");
  EXPECT_STREQ(reason_owner(SL_R_POLICY), "policy");
  EXPECT_STREQ(reason_owner(SL_R_ENCAP_FAILED), "encap");
  EXPECT_STREQ(reason_owner(SL_R_FRAG_NO_FIRST), "fragments");
}

TEST(Reasons, ThirdPartyBlockIsPlugin0To15) {
  for (unsigned i = 0; i < 16; ++i) {
    CounterReason reason = counter_reason(SL_R_PLUGIN_0 + i);
    ASSERT_NE(reason.name, nullptr) << i;
    EXPECT_EQ(std::string(reason.name), "plugin-" + std::to_string(i));
    EXPECT_STREQ(reason_owner(reason.id), "third-party");
  }
  EXPECT_EQ(SL_R_PLUGIN_15, SL_REASON_COUNT - 1);
}

TEST(Reasons, NamesAreUniqueAndFitTheBpfTable) {
  std::set<std::string> seen;
  for (const auto& reason : known_reasons()) {
    ASSERT_NE(reason.name, nullptr);
    EXPECT_TRUE(seen.insert(reason.name).second) << "duplicate name " << reason.name;
    EXPECT_LT(std::strlen(reason.name), kBpfReasonNameLen)
        << reason.name << " does not fit sl_reason_names";
    EXPECT_FALSE(std::string(reason.name).empty()) << reason.id;
  }
}

TEST(Reasons, EachHasAOneLineDescription) {
  for (const auto& reason : known_reasons()) {
    std::string description = reason.description;
    EXPECT_FALSE(description.empty()) << reason.name;
    EXPECT_EQ(description.find('\n'), std::string::npos) << reason.name;
  }
}

TEST(Reasons, Layout1NumbersMapToTheReasonsOfTheSameName) {
  // Layout 1's numbering (SL_REASON_COUNT 64), as released.
  const std::pair<std::uint32_t, const char*> layout1[] = {
      {0, "accepted"}, {1, "redirected"}, {2, "passed-non-ip"}, {3, "passed-missed-tail-call"},
      {8, "passed-malformed-l3-short"}, {9, "passed-malformed-ihl"},
      {10, "passed-malformed-ip-length"}, {12, "passed-malformed-ip-version"},
      {13, "passed-malformed-l2-short"}, {16, "missed-tail-call"}, {17, "no-packet-context"},
      {24, "malformed-l3-short"}, {25, "malformed-ihl"}, {26, "malformed-ip-length"},
      {27, "malformed-l4-short"}, {28, "malformed-ip-version"}, {29, "malformed-l2-short"},
      {30, "malformed-ipv6-ext-headers"}, {32, "policy"}, {33, "no-backend"},
      {34, "conntrack-table-full"}, {35, "encap-failed"}, {36, "lb-source-range"},
      {37, "no-route"}, {48, "plugin-0"}, {49, "plugin-1"}, {50, "plugin-2"}, {51, "plugin-3"},
      {52, "plugin-4"}, {53, "plugin-5"}, {54, "plugin-6"}, {55, "plugin-7"}};
  std::set<std::uint32_t> named;
  for (const auto& [old_number, name] : layout1) {
    named.insert(old_number);
    auto now = reason_from_layout1(old_number);
    ASSERT_TRUE(now.has_value()) << name;
    CounterReason reason = counter_reason(*now);
    ASSERT_NE(reason.name, nullptr) << name;
    EXPECT_STREQ(reason.name, name) << "layout-1 number " << old_number;
  }
  for (std::uint32_t old_number = 0; old_number < 64; ++old_number)
    if (!named.count(old_number)) {
      EXPECT_FALSE(reason_from_layout1(old_number).has_value()) << old_number << " was unused";
    }
}

// The BPF programs name reasons in their trace lines from sl_reason_names
// (sluice.h), built from the same list by designated initializers: a number
// used twice would silently keep one name there. Read the table out of the
// entry program's .rodata (located by its BTF) and compare it entry by entry.
TEST(Reasons, BpfNameTableAgreesWithCxx) {
  std::size_t size = 0;
  const void* elf = entry_bpf__elf_bytes(&size);
  std::unique_ptr<bpf_object, decltype(&bpf_object__close)> obj(
      bpf_object__open_mem(elf, size, nullptr), bpf_object__close);
  ASSERT_TRUE(obj) << "cannot open the entry program's object";
  const btf* types = bpf_object__btf(obj.get());
  ASSERT_NE(types, nullptr);
  int var = btf__find_by_name_kind(types, "sl_reason_names", BTF_KIND_VAR);
  ASSERT_GT(var, 0) << "sl_reason_names is not in the entry program";
  int sec = btf__find_by_name_kind(types, ".rodata", BTF_KIND_DATASEC);
  ASSERT_GT(sec, 0);
  const btf_type* datasec = btf__type_by_id(types, sec);
  const btf_var_secinfo* vars = btf_var_secinfos(datasec);
  long offset = -1;
  unsigned table_size = 0;
  for (unsigned i = 0; i < btf_vlen(datasec); ++i)
    if (static_cast<int>(vars[i].type) == var) {
      offset = vars[i].offset;
      table_size = vars[i].size;
    }
  ASSERT_GE(offset, 0);
  ASSERT_EQ(table_size, SL_REASON_COUNT * kBpfReasonNameLen);
  bpf_map* rodata = bpf_object__find_map_by_name(obj.get(), ".rodata");
  ASSERT_NE(rodata, nullptr);
  std::size_t rodata_size = 0;
  const char* bytes = static_cast<const char*>(bpf_map__initial_value(rodata, &rodata_size));
  ASSERT_NE(bytes, nullptr);
  ASSERT_LE(offset + table_size, rodata_size);
  for (unsigned id = 0; id < SL_REASON_COUNT; ++id) {
    std::string bpf_name(bytes + offset + id * kBpfReasonNameLen,
                         strnlen(bytes + offset + id * kBpfReasonNameLen, kBpfReasonNameLen));
    CounterReason reason = counter_reason(id);
    EXPECT_EQ(bpf_name, reason.name ? reason.name : "") << "reason " << id;
  }
}

}  // namespace
