// Chains on the real kernel: empty chains, holes (missed tail calls) under
// both rules, stage verbs and stage order, through the entry program.
#include <gtest/gtest.h>

#include <optional>

#include "test_stages.skel.h"
#include "test_util.hpp"

using namespace sluice;
using namespace sluice::testing;

namespace {

struct StagesDeleter {
  void operator()(test_stages* s) const { test_stages__destroy(s); }
};

class Chains : public ::testing::Test {
 protected:
  void SetUp() override {
    bed.emplace();
    auto opts = bed->open_opts();
    stages.reset(test_stages__open_opts(&opts->opts));
    ASSERT_TRUE(stages) << "cannot open test_stages";
    ASSERT_EQ(test_stages__load(stages.get()), 0) << "cannot load test_stages";
  }
  void TearDown() override {
    stages.reset();
    bed.reset();
  }

  int fd(bpf_program* prog) { return bpf_program__fd(prog); }

  // Runs one UDP packet through the workload (drop rules) or data (pass
  // rules) ingress chain made of `chain`, checking verdict and sole reason.
  sl_pkt_ctx run_chain(std::vector<int> chain, bool pass, int verdict, std::uint32_t reason) {
    sl_role role = pass ? SL_ROLE_DATA : SL_ROLE_WORKLOAD;
    bed->set_chain(role, SL_HOOK_INGRESS, std::move(chain));
    bed->load_entry(role, pass ? kPassRules : kDropRules);
    return run_expect(verdict, reason);
  }
  sl_pkt_ctx run_expect(int verdict, std::uint32_t reason) {
    CounterSnapshot before = bed->counters(0, SL_HOOK_INGRESS);
    RunResult r = bed->run(pkt);
    EXPECT_EQ(r.verdict, verdict) << verdict_name(r.verdict);
    EXPECT_TRUE(counted_once(*bed, before, reason, pkt.size()));
    return bed->context();
  }

  Packet pkt = PacketBuilder().ipv4("10.0.0.1", "10.0.0.2").udp(1111, 2222).payload(22).build();
  std::optional<Testbed> bed;
  std::unique_ptr<test_stages, StagesDeleter> stages;
};

TEST_F(Chains, EmptyChainAccepts) {
  sl_pkt_ctx c = run_chain({}, false, TC_ACT_OK, SL_R_ACCEPTED);
  EXPECT_EQ(c.stage_pos, 0);
}

TEST_F(Chains, EmptyChainAcceptsOnEveryRoleAndHook) {
  for (unsigned r = 0; r < SL_ROLE_COUNT; ++r) {
    auto role = static_cast<sl_role>(r);
    bed->load_entry(role, kDropRules);
    for (sl_hook hook : {SL_HOOK_INGRESS, SL_HOOK_EGRESS}) {
      CounterSnapshot before = bed->counters(0, hook);
      EXPECT_EQ(bed->run(pkt, hook).verdict, TC_ACT_OK) << role_name(role) << " " << hook;
      EXPECT_TRUE(counted_once(*bed, before, SL_R_ACCEPTED, pkt.size(), hook))
          << role_name(role) << " " << hook_name(hook);
    }
  }
}

TEST_F(Chains, HoleDropsOnADropRole) {
  sl_pkt_ctx c = run_chain({-1}, false, TC_ACT_SHOT, SL_R_MISSED_TAIL_CALL);
  EXPECT_EQ(c.stage_pos, 0);
}

TEST_F(Chains, HolePassesOnAPassRole) {
  run_chain({-1}, true, TC_ACT_OK, SL_R_PASSED_MISSED_TAIL_CALL);
}

TEST_F(Chains, HoleAfterAStageDropsOnADropRole) {
  sl_pkt_ctx c = run_chain({fd(stages->progs.t_next_1), -1, fd(stages->progs.t_drop_plugin0)},
                           false, TC_ACT_SHOT, SL_R_MISSED_TAIL_CALL);
  EXPECT_EQ(c.scratch[0], 1u) << "the first stage ran, the one after the hole did not";
  EXPECT_EQ(c.stage_pos, 1);
}

TEST_F(Chains, HoleAfterAStagePassesOnAPassRole) {
  sl_pkt_ctx c = run_chain({fd(stages->progs.t_next_1), -1}, true, TC_ACT_OK,
                           SL_R_PASSED_MISSED_TAIL_CALL);
  EXPECT_EQ(c.scratch[0], 1u);
}

TEST_F(Chains, SlotDeletedUnderALoadedEntry) {
  run_chain({fd(stages->progs.t_next_1)}, false, TC_ACT_OK, SL_R_ACCEPTED);
  bed->delete_chain_slot(SL_ROLE_WORKLOAD, SL_HOOK_INGRESS, 0);
  run_expect(TC_ACT_SHOT, SL_R_MISSED_TAIL_CALL);
}

TEST_F(Chains, ChainRewrittenUnderALoadedEntry) {
  // The entry's jump into the first slot may be patched into a direct jump
  // (constant key): rewriting the slot must still take effect at once.
  run_chain({}, false, TC_ACT_OK, SL_R_ACCEPTED);
  bed->set_chain(SL_ROLE_WORKLOAD, SL_HOOK_INGRESS, {fd(stages->progs.t_drop_plugin0)});
  bed->install_chains();
  run_expect(TC_ACT_SHOT, SL_R_PLUGIN_0);
  bed->set_chain(SL_ROLE_WORKLOAD, SL_HOOK_INGRESS, {fd(stages->progs.t_next_1)});
  bed->install_chains();
  EXPECT_EQ(run_expect(TC_ACT_OK, SL_R_ACCEPTED).scratch[0], 1u);
  bed->set_chain(SL_ROLE_WORKLOAD, SL_HOOK_INGRESS, {-1});
  bed->install_chains();
  run_expect(TC_ACT_SHOT, SL_R_MISSED_TAIL_CALL);
}

TEST_F(Chains, ChainEndDeletedUnderALoadedPassEntry) {
  run_chain({fd(stages->progs.t_next_1)}, true, TC_ACT_OK, SL_R_ACCEPTED);
  bed->delete_chain_slot(SL_ROLE_DATA, SL_HOOK_INGRESS, 1);
  sl_pkt_ctx c = run_expect(TC_ACT_OK, SL_R_PASSED_MISSED_TAIL_CALL);
  EXPECT_EQ(c.scratch[0], 1u);
}

TEST_F(Chains, StageDropsWithItsReason) {
  sl_pkt_ctx c = run_chain({fd(stages->progs.t_drop_plugin0)}, false, TC_ACT_SHOT, SL_R_PLUGIN_0);
  EXPECT_EQ(c.scratch[0], 3u);
  // The stage sees what the entry parsed.
  EXPECT_EQ(ntohs(c.dport), 2222);
}

TEST_F(Chains, StageDropIgnoresThePassRule) {
  // Rules are about faults, not about a stage's decision.
  run_chain({fd(stages->progs.t_drop_plugin0)}, true, TC_ACT_SHOT, SL_R_PLUGIN_0);
}

TEST_F(Chains, StagesRunInChainOrder) {
  sl_pkt_ctx c = run_chain({fd(stages->progs.t_next_1), fd(stages->progs.t_next_2),
                            fd(stages->progs.t_judge_order)},
                           false, TC_ACT_SHOT, SL_R_PLUGIN_1);
  EXPECT_EQ(c.scratch[0], 124u);
  EXPECT_EQ(c.stage_pos, 2);
}

TEST_F(Chains, ReversedChainRunsReversed) {
  sl_pkt_ctx c = run_chain({fd(stages->progs.t_next_2), fd(stages->progs.t_next_1),
                            fd(stages->progs.t_judge_order)},
                           false, TC_ACT_SHOT, SL_R_PLUGIN_2);
  EXPECT_EQ(c.scratch[0], 214u);
}

TEST_F(Chains, OrderComesFromComputeChains) {
  // The pipeline's ordering (order number, then plugin, then stage name)
  // decides the slots: stage "b" (order 10) runs before "a" (order 20).
  std::vector<DeclaredStage> declared = {
      {"p", StageSpec{"a", "t_next_1", role_bit(SL_ROLE_WORKLOAD), kBothHooks, 20}},
      {"p", StageSpec{"b", "t_next_2", role_bit(SL_ROLE_WORKLOAD), kBothHooks, 10}},
      {"p", StageSpec{"z", "t_judge_order", kAllRoles, kBothHooks, 900}},
  };
  auto chains = compute_chains(declared);
  for (const Chain& chain : chains) {
    std::vector<int> fds;
    for (const DeclaredStage& s : chain.stages) {
      bpf_program* prog = bpf_object__find_program_by_name(stages->obj, s.spec.program.c_str());
      fds.push_back(prog ? bpf_program__fd(prog) : -1);
    }
    bed->set_chain(chain.role, chain.hook, fds);
  }
  bed->load_entry(SL_ROLE_WORKLOAD, kDropRules);
  sl_pkt_ctx c = run_expect(TC_ACT_SHOT, SL_R_PLUGIN_2);
  EXPECT_EQ(c.scratch[0], 214u);
  // The data role got only the judge: it saw nothing before it.
  bed->load_entry(SL_ROLE_DATA, kPassRules);
  c = run_expect(TC_ACT_SHOT, SL_R_PLUGIN_3);
  EXPECT_EQ(c.scratch[0], 4u);
}

TEST_F(Chains, AllStagesContinueThenChainEndAccepts) {
  sl_pkt_ctx c = run_chain({fd(stages->progs.t_next_1), fd(stages->progs.t_next_2)}, false,
                           TC_ACT_OK, SL_R_ACCEPTED);
  EXPECT_EQ(c.scratch[0], 12u);
  EXPECT_EQ(c.stage_pos, 2) << "the chain end ran at position 2";
}

// The chain protocol's lanes: a stage that sees only first packets is
// skipped once a stage voted the flow established; one that sees every
// packet is not; a voter without a route leaves the packet to the host.
ChainStage declared(int fd, std::uint32_t every_packet_hooks, std::uint32_t may = SL_MAY_DROP) {
  StageSpec spec;
  spec.every_packet_hooks = every_packet_hooks;
  spec.may = may;
  return ChainStage{fd, spec};
}

TEST_F(Chains, VoteSkipsFirstPacketStagesOnly) {
  bed->set_declared_chain(SL_ROLE_WORKLOAD, SL_HOOK_INGRESS,
                 std::vector<ChainStage>{
                     declared(fd(stages->progs.t_next_1), kBothHooks),
                     declared(fd(stages->progs.t_vote), kBothHooks, SL_MAY_VOTE_ESTABLISHED),
                     declared(fd(stages->progs.t_drop_plugin0), 0),  // first packets: skipped
                     declared(fd(stages->progs.t_next_2), kBothHooks),
                 });
  bed->load_entry(SL_ROLE_WORKLOAD, kDropRules);
  // No route for 10.0.0.2 in the test's namespace: the fast path declines
  // and the chain end passes the packet to the host.
  sl_pkt_ctx c = run_expect(TC_ACT_OK, SL_R_ACCEPTED);
  EXPECT_EQ(c.scratch[0], 152u) << "the drop stage sees only first packets";
  EXPECT_EQ(c.votes, SL_VOTE_ESTABLISHED | SL_VOTE_FORWARD);
  EXPECT_EQ(c.jump_base, sl_jump_lane_base(bed->bank(), SL_ROLE_WORKLOAD, SL_HOOK_INGRESS,
                                           SL_LANE_ESTABLISHED));
}

TEST_F(Chains, WithoutAVoteEveryStageRuns) {
  bed->set_declared_chain(SL_ROLE_WORKLOAD, SL_HOOK_INGRESS,
                 std::vector<ChainStage>{
                     declared(fd(stages->progs.t_next_1), kBothHooks),
                     declared(fd(stages->progs.t_drop_plugin0), 0),
                 });
  bed->load_entry(SL_ROLE_WORKLOAD, kDropRules);
  sl_pkt_ctx c = run_expect(TC_ACT_SHOT, SL_R_PLUGIN_0);
  EXPECT_EQ(c.scratch[0], 13u);
}

TEST_F(Chains, EveryPacketStageAfterAVoteCanStillDrop) {
  bed->set_declared_chain(SL_ROLE_WORKLOAD, SL_HOOK_INGRESS,
                 std::vector<ChainStage>{
                     declared(fd(stages->progs.t_vote), kBothHooks, SL_MAY_VOTE_ESTABLISHED),
                     declared(fd(stages->progs.t_drop_plugin0), kBothHooks),
                 });
  bed->load_entry(SL_ROLE_WORKLOAD, kDropRules);
  sl_pkt_ctx c = run_expect(TC_ACT_SHOT, SL_R_PLUGIN_0);
  EXPECT_EQ(c.scratch[0], 53u);
}

TEST_F(Chains, TheLanesFollowTheHook) {
  // Seen every packet on egress only: on ingress the stage is first-packet.
  bed->set_declared_chain(SL_ROLE_WORKLOAD, SL_HOOK_INGRESS,
                 std::vector<ChainStage>{
                     declared(fd(stages->progs.t_vote), kBothHooks, SL_MAY_VOTE_ESTABLISHED),
                     declared(fd(stages->progs.t_drop_plugin0), hook_bit(SL_HOOK_EGRESS)),
                 });
  bed->set_declared_chain(SL_ROLE_WORKLOAD, SL_HOOK_EGRESS,
                 std::vector<ChainStage>{
                     declared(fd(stages->progs.t_vote), kBothHooks, SL_MAY_VOTE_ESTABLISHED),
                     declared(fd(stages->progs.t_drop_plugin0), hook_bit(SL_HOOK_EGRESS)),
                 });
  bed->load_entry(SL_ROLE_WORKLOAD, kDropRules);
  EXPECT_EQ(bed->run(pkt, SL_HOOK_INGRESS).verdict, TC_ACT_OK);
  EXPECT_EQ(bed->context().scratch[0], 5u);
  EXPECT_EQ(bed->run(pkt, SL_HOOK_EGRESS).verdict, TC_ACT_SHOT);
  EXPECT_EQ(bed->context().scratch[0], 53u);
}

TEST_F(Chains, AHoleInTheEstablishedLaneIsNeverSilent) {
  bed->set_declared_chain(SL_ROLE_WORKLOAD, SL_HOOK_INGRESS,
                 std::vector<ChainStage>{
                     declared(fd(stages->progs.t_vote), kBothHooks, SL_MAY_VOTE_ESTABLISHED),
                     declared(-1, kBothHooks),
                 });
  bed->load_entry(SL_ROLE_WORKLOAD, kDropRules);
  run_expect(TC_ACT_SHOT, SL_R_MISSED_TAIL_CALL);
}

TEST_F(Chains, PendingRedirectIsAppliedAtChainEnd) {
  sl_pkt_ctx c = run_chain({fd(stages->progs.t_set_redirect), fd(stages->progs.t_next_1)}, false,
                           TC_ACT_REDIRECT, SL_R_REDIRECTED);
  EXPECT_EQ(c.scratch[0], 61u);
  EXPECT_EQ(c.redirect_ifindex, 1u);
}

TEST_F(Chains, PendingRedirectCanStillBeDropped) {
  run_chain({fd(stages->progs.t_set_redirect), fd(stages->progs.t_drop_plugin0)}, false,
            TC_ACT_SHOT, SL_R_PLUGIN_0);
}

TEST_F(Chains, MalformedPacketsNeverReachTheChain) {
  bed->set_chain(SL_ROLE_DATA, SL_HOOK_INGRESS, {fd(stages->progs.t_drop_plugin0)});
  bed->load_entry(SL_ROLE_DATA, kPassRules);
  Packet bad = PacketBuilder().ipv4("10.0.0.1", "10.0.0.2").udp(1, 2).bad_ihl(3).build();
  CounterSnapshot before = bed->counters(0, SL_HOOK_INGRESS);
  EXPECT_EQ(bed->run(bad).verdict, TC_ACT_OK);
  EXPECT_TRUE(counted_once(*bed, before, SL_R_PASSED_MALFORMED_IHL, bad.size()));
  EXPECT_EQ(bed->context().scratch[0], 0u);
}

TEST_F(Chains, NonIpNeverReachesTheChain) {
  bed->set_chain(SL_ROLE_WORKLOAD, SL_HOOK_INGRESS, {fd(stages->progs.t_drop_plugin0)});
  bed->load_entry(SL_ROLE_WORKLOAD, kDropRules);
  Packet arp = PacketBuilder().arp().build();
  CounterSnapshot before = bed->counters(0, SL_HOOK_INGRESS);
  EXPECT_EQ(bed->run(arp).verdict, TC_ACT_OK);
  EXPECT_TRUE(counted_once(*bed, before, SL_R_NON_IP, arp.size()));
}

TEST_F(Chains, EachHookHasItsOwnChain) {
  bed->set_chain(SL_ROLE_WORKLOAD, SL_HOOK_EGRESS, {fd(stages->progs.t_drop_plugin0)});
  bed->load_entry(SL_ROLE_WORKLOAD, kDropRules);
  CounterSnapshot in = bed->counters(0, SL_HOOK_INGRESS);
  CounterSnapshot out = bed->counters(0, SL_HOOK_EGRESS);
  EXPECT_EQ(bed->run(pkt, SL_HOOK_INGRESS).verdict, TC_ACT_OK);
  EXPECT_EQ(bed->run(pkt, SL_HOOK_EGRESS).verdict, TC_ACT_SHOT);
  EXPECT_TRUE(counted_once(*bed, in, SL_R_ACCEPTED, pkt.size(), SL_HOOK_INGRESS));
  EXPECT_TRUE(counted_once(*bed, out, SL_R_PLUGIN_0, pkt.size(), SL_HOOK_EGRESS));
}

TEST_F(Chains, LongestChainRuns) {
  // SL_MAX_STAGES - 1 stages plus the chain end.
  std::vector<int> chain(SL_MAX_STAGES - 1, fd(stages->progs.t_next_1));
  sl_pkt_ctx c = run_chain(chain, false, TC_ACT_OK, SL_R_ACCEPTED);
  EXPECT_EQ(c.stage_pos, SL_MAX_STAGES - 1);
  EXPECT_EQ(c.scratch[0], 111111111111111ull);
}

}  // namespace
