// Where a failed plugin's holes go in the chains (hole_placement.hpp), seen
// through compute_chains() as sluiced uses them.
#include <gtest/gtest.h>

#include "sluice/core/hole_placement.hpp"
#include "sluice/core/pipeline.hpp"

using namespace sluice;

namespace {

StageSpec spec(std::string name, int order, std::uint32_t roles = kAllRoles,
               std::uint32_t hooks = kBothHooks) {
  return StageSpec{name, name + "_prog", roles, hooks, order};
}

std::vector<StageSpec> never_recorded() {
  ADD_FAILURE() << "the registry was read although the answer did not need it";
  return {};
}

// The chains with conntrack (loaded) and the failed policy plugin's holes.
std::array<Chain, SL_CHAINS> chains_with(const FailedPluginHoles& holes) {
  std::vector<DeclaredStage> stages{{"conntrack", spec("conntrack", order::kConntrack)}};
  for (const auto& s : holes.stages) stages.push_back({"policy", s});
  return compute_chains(stages);
}

std::vector<std::string> names(const Chain& chain) {
  std::vector<std::string> out;
  for (const auto& s : chain.stages) out.push_back(s.plugin + "/" + s.spec.name);
  return out;
}

const Chain& chain(const std::array<Chain, SL_CHAINS>& chains, sl_role role, sl_hook hook) {
  return chains[chain_index(role, hook)];
}

TEST(HolePlacement, DeclaredStagesAreTheHolesAtTheirPlaces) {
  std::vector<StageSpec> declared{
      spec("policy", order::kPolicy, role_bit(SL_ROLE_WORKLOAD), hook_bit(SL_HOOK_EGRESS))};
  FailedPluginHoles holes = place_failed_plugin_holes(false, declared, never_recorded);
  EXPECT_EQ(holes.placement, HolePlacement::declared);
  auto chains = chains_with(holes);
  EXPECT_EQ(names(chain(chains, SL_ROLE_WORKLOAD, SL_HOOK_EGRESS)),
            (std::vector<std::string>{"conntrack/conntrack", "policy/policy"}));
  EXPECT_EQ(names(chain(chains, SL_ROLE_DATA, SL_HOOK_EGRESS)),
            (std::vector<std::string>{"conntrack/conntrack"}));
}

TEST(HolePlacement, RecordedStagesTakeTheirPlacesOfTheLastRun) {
  bool asked = false;
  FailedPluginHoles holes = place_failed_plugin_holes(false, {}, [&] {
    asked = true;
    return std::vector<StageSpec>{spec("policy", order::kPolicy, role_bit(SL_ROLE_DATA),
                                       hook_bit(SL_HOOK_INGRESS))};
  });
  EXPECT_TRUE(asked);
  EXPECT_EQ(holes.placement, HolePlacement::recorded);
  auto chains = chains_with(holes);
  EXPECT_EQ(names(chain(chains, SL_ROLE_DATA, SL_HOOK_INGRESS)),
            (std::vector<std::string>{"conntrack/conntrack", "policy/policy"}));
  EXPECT_EQ(names(chain(chains, SL_ROLE_WORKLOAD, SL_HOOK_INGRESS)),
            (std::vector<std::string>{"conntrack/conntrack"}));
}

TEST(HolePlacement, UnknownStagesPutAHoleAtTheHeadOfEveryChain) {
  FailedPluginHoles holes =
      place_failed_plugin_holes(false, {}, [] { return std::vector<StageSpec>{}; });
  EXPECT_EQ(holes.placement, HolePlacement::heads_every_chain);
  auto chains = chains_with(holes);
  for (const auto& c : chains) {
    ASSERT_EQ(c.stages.size(), 2u) << role_name(c.role) << " " << hook_name(c.hook);
    EXPECT_EQ(c.stages[0].plugin, "policy");  // before conntrack, before everything
    EXPECT_EQ(c.stages[1].plugin, "conntrack");
  }
}

TEST(HolePlacement, OptionalPluginLeavesNoHole) {
  std::vector<StageSpec> declared{spec("policy", order::kPolicy)};
  FailedPluginHoles holes = place_failed_plugin_holes(true, declared, never_recorded);
  EXPECT_EQ(holes.placement, HolePlacement::left_out);
  EXPECT_TRUE(holes.stages.empty());
  for (const auto& c : chains_with(holes))
    EXPECT_EQ(names(c), (std::vector<std::string>{"conntrack/conntrack"}));
}

}  // namespace
