// Reading structs at the size the plugin built them (Sink, struct_as_built.hpp).
#include <gtest/gtest.h>

#include <cstring>

#include "sluice/core/error.hpp"
#include "sluice/core/plugin_handle.hpp"
#include "sluice/core/struct_as_built.hpp"

namespace {

// A crossing struct as a daemon of a pretend minor 2 sees it: `flags` came
// in minor 1, `weight` in minor 2.
struct Grown {
  std::string name;
  int order = 500;
  alignas(std::max_align_t) std::uint32_t flags = 0x10;
  alignas(std::max_align_t) int weight = 3;
};

// The same struct as plugins of minor 0 and 1 compiled it.
struct BuiltAtMinor0 {
  std::string name;
  int order = 500;
};
struct BuiltAtMinor1 {
  std::string name;
  int order = 500;
  alignas(std::max_align_t) std::uint32_t flags = 0x10;
};

// An older object followed by bytes a reader that ignores the size would
// take for the missing fields.
template <class Built>
struct Poisoned {
  Built built;
  unsigned char poison[64];
  Poisoned() { std::memset(poison, 0xa5, sizeof(poison)); }
  const Grown& as_grown() const { return reinterpret_cast<const Grown&>(built); }
};

}  // namespace

template <>
struct sluice::AppendedFields<Grown> {
  static constexpr std::tuple appended{&Grown::flags, &Grown::weight};
  static constexpr auto last_base_field = &Grown::order;
  static Grown copy_base(const Grown& item) {
    Grown out;
    out.name = item.name;
    out.order = item.order;
    return out;
  }
};

using sluice::read_as_built;

TEST(StructAsBuilt, FieldsAnOlderPluginNeverHadReadAsDefaults) {
  Poisoned<BuiltAtMinor0> old;
  old.built.name = "meter";
  old.built.order = 150;
  Grown read = read_as_built(old.as_grown(), sizeof(BuiltAtMinor0), "test");
  EXPECT_EQ(read.name, "meter");
  EXPECT_EQ(read.order, 150);
  EXPECT_EQ(read.flags, 0x10u) << "read past the end of the plugin's object";
  EXPECT_EQ(read.weight, 3) << "read past the end of the plugin's object";
}

TEST(StructAsBuilt, FieldsOfTheMinorThePluginHadAreRead) {
  Poisoned<BuiltAtMinor1> middle;
  middle.built.name = "meter";
  middle.built.flags = 0x99;
  Grown read = read_as_built(middle.as_grown(), sizeof(BuiltAtMinor1), "test");
  EXPECT_EQ(read.name, "meter");
  EXPECT_EQ(read.flags, 0x99u);
  EXPECT_EQ(read.weight, 3) << "read past the end of the plugin's object";
}

TEST(StructAsBuilt, ACurrentObjectIsCopiedWhole) {
  Grown full{"meter", 150, 0x99, 8};
  Grown read = read_as_built(full, sizeof(Grown), "test");
  EXPECT_EQ(read.name, "meter");
  EXPECT_EQ(read.flags, 0x99u);
  EXPECT_EQ(read.weight, 8);
}

TEST(StructAsBuilt, SizesNoMinorOfThisMajorHadAreRefused) {
  Grown full;
  EXPECT_THROW(read_as_built(full, sizeof(Grown) + 8, "test"), sluice::Error);
  EXPECT_THROW(read_as_built(full, sizeof(std::string), "test"), sluice::Error);
}

TEST(StructAsBuilt, ABoundaryStructWithoutAppendedFieldsNeedsItsExactSize) {
  sluice::StageSpec spec{"s", "prog"};
  EXPECT_EQ(read_as_built(spec, sizeof(spec), "test").program, "prog");
  try {
    read_as_built(spec, sizeof(spec) - 8, "plugin 'p': a StageSpec");
    FAIL() << "accepted a StageSpec of a size no 2.x SDK builds";
  } catch (const sluice::Error& e) {
    EXPECT_NE(std::string(e.what()).find("plugin 'p': a StageSpec was built"), std::string::npos)
        << e.what();
    EXPECT_NE(std::string(e.what()).find("rebuild the plugin"), std::string::npos) << e.what();
  }
}
