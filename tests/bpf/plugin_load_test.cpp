// Plugins loaded the way sluiced loads them, against a real kernel: a stage
// the verifier refuses is reported with the verifier's log, naming the
// plugin, and the other plugins still load.
#include <gtest/gtest.h>

#include <sluice/core/node_host.hpp>
#include <sluice/core/plugin_host.hpp>

#include "test_util.hpp"

using namespace sluice;
using namespace sluice::testing;

TEST(PluginLoad, VerifierRejectionIsReportedWithTheVerifierLog) {
  Testbed bed;
  NodeConfig config = parse_config(
      "[bpf]\nroot = \"" + bed.bpf_root() + "\"\ninstance = \"" + bed.instance() +
          "\"\n[plugins]\ndir = \"" SLUICE_FIXTURE_PLUGIN_DIR
          "\"\nenabled = [\"verifier_reject\", \"good_plugin\"]\n",
      "<test>");
  NodeHost host(config);
  PluginHost plugins(config, host);
  plugins.open_and_configure(true);
  plugins.load_bpf();
  ASSERT_EQ(plugins.plugins().size(), 2u);
  const LoadedPlugin& bad = plugins.plugins()[0];
  EXPECT_EQ(bad.name, "verifier_reject");
  EXPECT_EQ(bad.state, PluginState::failed);
  std::cout << "reported: " << bad.error << "\n";
  EXPECT_NE(bad.error.find("plugin 'verifier_reject' failed to load its BPF programs"),
            std::string::npos)
      << bad.error;
  EXPECT_NE(bad.error.find("verifier"), std::string::npos) << bad.error;
  EXPECT_NE(bad.error.find("invalid access to packet"), std::string::npos)
      << "the kernel's own words are in the error:\n"
      << bad.error;
  // The other plugin is unaffected by its neighbour's failure (it fails on
  // its own account: the fixture loads no program).
  EXPECT_EQ(plugins.plugins()[1].name, "good_plugin");
  EXPECT_EQ(plugins.plugins()[1].error.find("verifier_reject"), std::string::npos);
}
