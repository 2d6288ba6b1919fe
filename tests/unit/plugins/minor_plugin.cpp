// Built twice (tests/unit/CMakeLists.txt): as minor0_plugin, whose
// descriptor says ABI <major>.0 although its vtable has the minor-1 virtual
// (so a host that skipped the check would get an answer, not a crash), and
// as minor1_plugin, which says <major>.1. Its constructor writes a marker
// file: a host refusing it before dlopen never lets that run.
#include <cstdio>
#include <cstdlib>

#include "minor_fixture.hpp"

namespace {
class MinorPlugin final : public sluice::test::PluginWithMinor1Virtual {
 public:
  std::string description() const override { return "test fixture"; }
  void configure(const sluice::ConfigSource&) override {}
  std::vector<sluice::StageSpec> stages() const override { return {}; }
  void load(sluice::Host&) override {}
  int stage_fd(std::string_view) const override { return -1; }
  int added_in_minor_1() const override { return sluice::test::kAddedVirtualAnswer; }
};

struct MarkOnLoad {
  MarkOnLoad() {
    if (const char* path = std::getenv("SLUICE_TEST_CTOR_MARKER")) {
      if (FILE* f = std::fopen(path, "w")) std::fclose(f);
    }
  }
} mark_on_load;
}  // namespace

extern "C" BOOST_SYMBOL_EXPORT const sluice::PluginAbiDescriptor sluice_plugin_abi;
const sluice::PluginAbiDescriptor sluice_plugin_abi = {
    sluice::kPluginAbiMagic, sluice::kPluginAbiMajor, SLUICE_FIXTURE_MINOR,
    sizeof(sluice::PluginAbiDescriptor), sluice::kCxxAbiTag, SL_LAYOUT_VERSION,
    SLUICE_FIXTURE_NAME, "0.0.1"};
extern "C" BOOST_SYMBOL_EXPORT sluice::Plugin* sluice_plugin_create();
sluice::Plugin* sluice_plugin_create() { return new MinorPlugin(); }
