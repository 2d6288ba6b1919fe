// Claims plugin ABI 1.0, the major before this one. The host must refuse it
// from the file alone: its constructor below writes a marker file that the
// test expects never to see.
#include <cstdio>
#include <cstdlib>

#include <sluice/plugin.hpp>

extern "C" BOOST_SYMBOL_EXPORT const sluice::PluginAbiDescriptor sluice_plugin_abi;
const sluice::PluginAbiDescriptor sluice_plugin_abi = {
    sluice::kPluginAbiMagic, sluice::kPluginAbiMajor - 1, 0, sizeof(sluice::PluginAbiDescriptor),
    sluice::kCxxAbiTag, SL_LAYOUT_VERSION, "old_major_plugin", "9.9.9"};

namespace {
struct MarkOnLoad {
  MarkOnLoad() {
    if (const char* path = std::getenv("SLUICE_TEST_CTOR_MARKER")) {
      if (FILE* f = std::fopen(path, "w")) std::fclose(f);
    }
  }
} mark_on_load;
}  // namespace
