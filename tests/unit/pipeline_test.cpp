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

// ---- the chain protocol: lanes, flags and the checks --------------------------------

namespace {

DeclaredStage declared(std::string plugin, std::string name, int order,
                       std::uint32_t every_packet_hooks, std::uint32_t may = SL_MAY_DROP,
                       std::uint32_t reads = 0, std::uint32_t writes = 0) {
  DeclaredStage s = stage(std::move(plugin), std::move(name), order);
  s.spec.every_packet_hooks = every_packet_hooks;
  s.spec.may = may;
  s.spec.scratch_reads = reads;
  s.spec.scratch_writes = writes;
  return s;
}

const std::uint32_t kCt = scratch_bit(SL_SCRATCH_CT_RESULT);

std::vector<DeclaredStage> conntrack_policy_nat() {
  return {declared("conntrack", "ct", 100, kBothHooks, SL_MAY_DROP | SL_MAY_VOTE_ESTABLISHED, 0,
                   kCt),
          declared("policy", "policy", 200, 0, SL_MAY_DROP, kCt),
          declared("nat", "nat", 300, kBothHooks, SL_MAY_DROP | SL_MAY_REWRITE, kCt)};
}

}  // namespace

TEST(ChainProtocol, EstablishedLaneHoldsTheEveryPacketStages) {
  auto chains = compute_chains(conntrack_policy_nat());
  const Chain& chain = chains[chain_index(SL_ROLE_WORKLOAD, SL_HOOK_INGRESS)];
  ASSERT_EQ(chain.stages.size(), 3u);
  EXPECT_EQ(chain.established, (std::vector<std::size_t>{0, 2}));
  auto positions = chain.established_positions();
  EXPECT_EQ(positions[0], 0);
  EXPECT_EQ(positions[1], 0xff) << "policy sees first packets only";
  EXPECT_EQ(positions[2], 1);
  EXPECT_EQ(positions[3], 0xff);
  EXPECT_TRUE(chain.flags & SL_CHAIN_F_JUDGED) << "policy may drop: flows skip it once approved";
  EXPECT_EQ(chain.last_judge, 1);
}

TEST(ChainProtocol, ObserversAreNoJudges) {
  auto chains = compute_chains({declared("log", "log", 900, 0, 0)});
  const Chain& chain = chains[chain_index(SL_ROLE_DATA, SL_HOOK_EGRESS)];
  EXPECT_TRUE(chain.established.empty());
  EXPECT_FALSE(chain.flags & SL_CHAIN_F_JUDGED);
  EXPECT_EQ(chain.last_judge, 0xff);
}

TEST(ChainProtocol, AWatchedWorkloadEgressIsMarkedOnEveryChain) {
  auto quiet = compute_chains(conntrack_policy_nat());
  EXPECT_TRUE(quiet[chain_index(SL_ROLE_WORKLOAD, SL_HOOK_INGRESS)].flags &
              SL_CHAIN_F_PEER_EGRESS_WATCHED)
      << "nat sees every packet on workload egress in this declaration";
  auto stages = conntrack_policy_nat();
  stages[2].spec.hooks = hook_bit(SL_HOOK_INGRESS);
  auto with_bypass = stages;
  with_bypass[0].spec.fast_path_may_bypass_egress = true;
  auto chains = compute_chains(with_bypass);
  for (const Chain& chain : chains) EXPECT_FALSE(chain.flags & SL_CHAIN_F_PEER_EGRESS_WATCHED);
  stages.push_back(declared("third", "counter", 250, kBothHooks));
  chains = compute_chains(stages);
  for (const Chain& chain : chains) EXPECT_TRUE(chain.flags & SL_CHAIN_F_PEER_EGRESS_WATCHED);
}

TEST(ChainProtocol, AVoterMustSeeEveryPacket) {
  try {
    compute_chains({declared("conntrack", "ct", 100, hook_bit(SL_HOOK_INGRESS),
                             SL_MAY_VOTE_ESTABLISHED)});
    FAIL() << "a voter missing from lane 1 on egress was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("stage 'conntrack/ct' may vote flows established"),
              std::string::npos)
        << e.what();
    EXPECT_NE(std::string(e.what()).find("egress"), std::string::npos) << e.what();
  }
}

TEST(ChainProtocol, AScratchWordHasOneOwner) {
  auto stages = conntrack_policy_nat();
  stages.push_back(declared("rogue", "r", 150, kBothHooks, SL_MAY_DROP, 0, kCt));
  try {
    compute_chains(stages);
    FAIL() << "two plugins writing ct-result were accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("'rogue/r' writes scratch word 0 (ct-result), which "
                                         "plugin 'conntrack' writes too"),
              std::string::npos)
        << e.what();
  }
}

TEST(ChainProtocol, AReaderNeedsAWriterBeforeItInItsLane) {
  // No conntrack at all.
  EXPECT_THROW(compute_chains({declared("nat", "nat", 300, kBothHooks, SL_MAY_DROP, kCt)}), Error);
  // The writer after the reader.
  EXPECT_THROW(compute_chains({declared("nat", "nat", 50, kBothHooks, SL_MAY_DROP, kCt),
                               declared("conntrack", "ct", 100, kBothHooks, 0, 0, kCt)}),
               Error);
  // The writer only on first packets, the reader on every packet.
  try {
    compute_chains({declared("a", "writer", 100, 0, 0, 0, scratch_bit(SL_SCRATCH_PLUGIN_0)),
                    declared("b", "reader", 200, kBothHooks, 0, scratch_bit(SL_SCRATCH_PLUGIN_0))});
    FAIL() << "a lane-1 reader of a lane-0-only word was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("lane 1"), std::string::npos) << e.what();
  }
  EXPECT_NO_THROW(compute_chains(conntrack_policy_nat()));
}

TEST(ChainProtocol, AHoleExcusesTheReadersAfterIt) {
  // A failed conntrack (a hole, no program) fails closed: nat after it is not
  // refused for want of its word.
  auto stages = conntrack_policy_nat();
  stages[0].spec.program.clear();
  stages[0].spec.scratch_writes = 0;  // an unknown placeholder records nothing
  EXPECT_NO_THROW(compute_chains(stages));
}

TEST(ChainProtocol, RegistryRecordsRoundTrip) {
  DeclaredStage s = declared("conntrack", "ct", 100, hook_bit(SL_HOOK_INGRESS),
                             SL_MAY_DROP | SL_MAY_VOTE_ESTABLISHED, kCt, kCt);
  s.spec.fast_path_may_bypass_egress = true;
  sl_registry_entry entry{};
  record_stage(entry, s.spec);
  StageSpec back = recorded_stage(entry);
  EXPECT_EQ(back.name, "ct");
  EXPECT_EQ(back.program, "") << "a recorded stage is a placeholder";
  EXPECT_EQ(back.order, 100);
  EXPECT_EQ(back.every_packet_hooks, hook_bit(SL_HOOK_INGRESS));
  EXPECT_EQ(back.may, SL_MAY_DROP | SL_MAY_VOTE_ESTABLISHED);
  EXPECT_EQ(back.scratch_reads, kCt);
  EXPECT_EQ(back.scratch_writes, kCt);
  EXPECT_TRUE(back.fast_path_may_bypass_egress);
}
