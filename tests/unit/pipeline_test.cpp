#include <gtest/gtest.h>

#include "sluice/core/error.hpp"
#include "sluice/core/pipeline.hpp"

using namespace sluice;

namespace {

InterfacePatterns default_patterns() { return parse_config("", "t.toml").interfaces; }

DeclaredStage stage(std::string plugin, std::string name, int order,
                    std::uint32_t roles = kAllRoles, std::uint32_t hooks = kBothHooks) {
  return DeclaredStage{std::move(plugin), StageSpec{name, name + "_prog", roles, hooks, order}};
}

std::vector<std::string> names(const Chain& chain) {
  std::vector<std::string> out;
  for (const auto& s : chain.stages) out.push_back(s.plugin + "/" + s.spec.name);
  return out;
}

}  // namespace

TEST(Roles, DefaultPatterns) {
  auto p = default_patterns();
  EXPECT_EQ(classify_interface(p, "cali12345"), SL_ROLE_WORKLOAD);
  EXPECT_EQ(classify_interface(p, "eth0"), SL_ROLE_DATA);
  EXPECT_EQ(classify_interface(p, "ens4"), SL_ROLE_DATA);
  EXPECT_EQ(classify_interface(p, "enp0s3"), SL_ROLE_DATA);
  EXPECT_EQ(classify_interface(p, "vxlan.sluice"), SL_ROLE_TUNNEL);
  EXPECT_EQ(classify_interface(p, "wg0"), SL_ROLE_L3);
  EXPECT_EQ(classify_interface(p, "lo"), std::nullopt);
  EXPECT_EQ(classify_interface(p, "docker0"), std::nullopt);
  EXPECT_EQ(classify_interface(p, "vxlan.calico"), std::nullopt);
}

TEST(Roles, IgnoreWinsAndSpecificRolesBeatGeneric) {
  InterfacePatterns p;
  p.by_role[SL_ROLE_WORKLOAD] = {"*"};
  p.by_role[SL_ROLE_DATA] = {"eth*"};
  p.by_role[SL_ROLE_TUNNEL] = {"vx*"};
  p.by_role[SL_ROLE_L3] = {"tun?"};
  p.ignore = {"eth9", "keep*"};
  EXPECT_EQ(classify_interface(p, "vx0"), SL_ROLE_TUNNEL);
  EXPECT_EQ(classify_interface(p, "tun1"), SL_ROLE_L3);
  EXPECT_EQ(classify_interface(p, "tun12"), SL_ROLE_WORKLOAD);
  EXPECT_EQ(classify_interface(p, "eth0"), SL_ROLE_WORKLOAD) << "workload is tried before data";
  EXPECT_EQ(classify_interface(p, "eth9"), std::nullopt);
  EXPECT_EQ(classify_interface(p, "keepme"), std::nullopt);
  EXPECT_EQ(classify_interface(p, "lo"), std::nullopt) << "loopback is never managed";
}

TEST(Chains, EmptyWithoutStages) {
  auto chains = compute_chains({});
  for (const auto& c : chains) EXPECT_TRUE(c.stages.empty());
  EXPECT_EQ(chains[chain_index(SL_ROLE_L3, SL_HOOK_EGRESS)].role, SL_ROLE_L3);
  EXPECT_EQ(chains[chain_index(SL_ROLE_L3, SL_HOOK_EGRESS)].hook, SL_HOOK_EGRESS);
}

TEST(Chains, OrderedByOrderNumberWhateverTheDeclarationOrder) {
  auto chains = compute_chains(
      {stage("log", "log", 900), stage("policy", "policy", 200), stage("ct", "ct", 100)});
  for (const auto& c : chains)
    EXPECT_EQ(names(c), (std::vector<std::string>{"ct/ct", "policy/policy", "log/log"}));
}

TEST(Chains, TiesBrokenByPluginThenStageName) {
  auto chains = compute_chains({stage("zeta", "a", 100), stage("alpha", "z", 100),
                                stage("alpha", "b", 100)});
  EXPECT_EQ(names(chains[0]), (std::vector<std::string>{"alpha/b", "alpha/z", "zeta/a"}));
  // Same input in another order gives the same chains.
  auto again = compute_chains({stage("alpha", "b", 100), stage("zeta", "a", 100),
                               stage("alpha", "z", 100)});
  EXPECT_EQ(names(again[0]), names(chains[0]));
}

TEST(Chains, StagesOnlyJoinTheirRolesAndHooks) {
  auto chains = compute_chains(
      {stage("p", "wl-in", 1, role_bit(SL_ROLE_WORKLOAD), hook_bit(SL_HOOK_INGRESS)),
       stage("p", "data-both", 2, role_bit(SL_ROLE_DATA)), stage("p", "all", 3)});
  EXPECT_EQ(names(chains[chain_index(SL_ROLE_WORKLOAD, SL_HOOK_INGRESS)]),
            (std::vector<std::string>{"p/wl-in", "p/all"}));
  EXPECT_EQ(names(chains[chain_index(SL_ROLE_WORKLOAD, SL_HOOK_EGRESS)]),
            (std::vector<std::string>{"p/all"}));
  EXPECT_EQ(names(chains[chain_index(SL_ROLE_DATA, SL_HOOK_EGRESS)]),
            (std::vector<std::string>{"p/data-both", "p/all"}));
  EXPECT_EQ(names(chains[chain_index(SL_ROLE_TUNNEL, SL_HOOK_INGRESS)]),
            (std::vector<std::string>{"p/all"}));
}

TEST(Chains, TooManyStagesIsRefused) {
  std::vector<DeclaredStage> stages;
  for (unsigned i = 0; i < SL_MAX_STAGES; ++i) stages.push_back(stage("p", "s" + std::to_string(i), 1));
  EXPECT_THROW(compute_chains(stages), Error);
  stages.pop_back();
  EXPECT_NO_THROW(compute_chains(stages)) << "SL_MAX_STAGES - 1 stages plus the chain end fit";
}

TEST(Chains, JumpSlotsOfBanksAndChainsNeverOverlap) {
  std::set<unsigned> seen;
  for (unsigned bank = 0; bank < SL_BANKS; ++bank)
    for (unsigned r = 0; r < SL_ROLE_COUNT; ++r)
      for (unsigned h = 0; h < SL_HOOK_COUNT; ++h)
        for (unsigned pos = 0; pos < SL_MAX_STAGES; ++pos) {
          unsigned slot = sl_jump_base(bank, r, h) + pos;
          EXPECT_LT(slot, SL_JUMP_SLOTS);
          EXPECT_TRUE(seen.insert(slot).second) << "slot " << slot << " used twice";
        }
}
