// The log plugin's stage through the entry, loaded from log.so the way
// sluiced loads it (PluginHost). Skipped when the build has no log plugin.
#include <arpa/inet.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <optional>

#include <sluice/core/node_host.hpp>
#include <sluice/core/plugin_host.hpp>

#include "test_util.hpp"

using namespace sluice;
using namespace sluice::testing;

namespace {

constexpr const char* kFilterAll = "filter = \"all\"";
// The stage runs and evaluates a rule that the test's TCP packet misses.
constexpr const char* kFilterMatchesNothing =
    "filter = \"match\"\n[[plugins.log.match]]\nprotocol = \"sctp\"";


class LogStage : public ::testing::TestWithParam<const char*> {
 protected:
  void SetUp() override {
    if (!std::filesystem::exists(default_plugin_dir() + "/log.so"))
      GTEST_SKIP() << "log plugin not built (" << default_plugin_dir() << "/log.so)";
    bed.emplace();
    config = std::make_unique<NodeConfig>(parse_config(
        "[node]\nname = \"t\"\n[bpf]\nroot = \"" + bed->bpf_root() +
            "\"\ninstance = \"" + bed->instance() +
            "\"\n[plugins]\nenabled = [\"log\"]\n[plugins.log]\n" + GetParam() + "\n",
        "<test>"));
    host = std::make_unique<NodeHost>(*config);
    plugins = std::make_unique<PluginHost>(*config, *host);
    plugins->open_and_configure(true);
    plugins->load_bpf();
    ASSERT_EQ(plugins->plugins().size(), 1u);
    auto& p = plugins->plugins()[0];
    ASSERT_EQ(p.state, PluginState::loaded) << p.error;
    stage_fd = p.plugin.stage_fd("log");
    ASSERT_GE(stage_fd, 0);
  }
  void TearDown() override {
    plugins.reset();
    bed.reset();
  }

  std::vector<sl_packet_event> drain_events() {
    std::vector<sl_packet_event> events;
    ring_buffer* rb = ring_buffer__new(
        bed->map_fd(SL_MAP_EVENTS),
        [](void* out, void* data, size_t size) {
          sl_packet_event ev{};
          std::memcpy(&ev, data, std::min(size, sizeof(ev)));
          static_cast<std::vector<sl_packet_event>*>(out)->push_back(ev);
          return 0;
        },
        &events, nullptr);
    EXPECT_NE(rb, nullptr);
    if (rb) {
      ring_buffer__consume(rb);
      ring_buffer__free(rb);
    }
    return events;
  }

  std::optional<Testbed> bed;
  std::unique_ptr<NodeConfig> config;
  std::unique_ptr<NodeHost> host;
  std::unique_ptr<PluginHost> plugins;
  int stage_fd = -1;
};

TEST_P(LogStage, ContinuesTheChainAndEmitsPerFilter) {
  bool all = std::string(GetParam()) == kFilterAll;
  drain_events();
  bed->set_chain(SL_ROLE_WORKLOAD, SL_HOOK_EGRESS, {stage_fd});
  bed->load_entry(SL_ROLE_WORKLOAD, kDropRules);
  Packet pkt = PacketBuilder().ipv4("10.0.0.1", "10.0.0.2").tcp(4321, 80, kTcpSyn).payload(6).build();
  CounterSnapshot before = bed->counters(0, SL_HOOK_EGRESS);
  EXPECT_EQ(bed->run(pkt, SL_HOOK_EGRESS).verdict, TC_ACT_OK);
  EXPECT_TRUE(counted_once(*bed, before, SL_R_ACCEPTED, pkt.size(), SL_HOOK_EGRESS));
  EXPECT_EQ(bed->context().stage_pos, 1) << "the chain end ran after the log stage";
  auto events = drain_events();
  if (!all) {
    EXPECT_TRUE(events.empty());
    return;
  }
  ASSERT_EQ(events.size(), 1u);
  const sl_packet_event& ev = events[0];
  EXPECT_EQ(ev.kind, SL_EV_PACKET);
  EXPECT_EQ(ev.hook, SL_HOOK_EGRESS);
  EXPECT_EQ(ev.role, SL_ROLE_WORKLOAD);
  EXPECT_EQ(ev.ip_proto, IPPROTO_TCP);
  EXPECT_EQ(ev.tcp_flags, kTcpSyn);
  EXPECT_EQ(ev.l3_proto, 0x0800);
  EXPECT_EQ(ntohs(ev.sport), 4321);
  EXPECT_EQ(ntohs(ev.dport), 80);
  EXPECT_EQ(ev.len, pkt.size());
  EXPECT_EQ(ev.stage_pos, 0);
  EXPECT_EQ(ev.verdict, SL_EV_CONTINUE);
  EXPECT_STREQ(ev.emitter, "log");
  in_addr src{};
  inet_pton(AF_INET, "10.0.0.1", &src);
  EXPECT_EQ(ev.saddr[0], src.s_addr);
}

INSTANTIATE_TEST_SUITE_P(Filter, LogStage, ::testing::Values(kFilterAll, kFilterMatchesNothing));

TEST(LogStageOff, DeclaresNoStageSoItCostsNothing) {
  if (!std::filesystem::exists(default_plugin_dir() + "/log.so"))
    GTEST_SKIP() << "log plugin not built";
  NodeConfig config = parse_config("[plugins]\nenabled = [\"log\"]\n[plugins.log]\nfilter = \"off\"\n", "<test>");
  NodeHost host(config);
  PluginHost plugins(config, host);
  plugins.open_and_configure(true);
  ASSERT_EQ(plugins.plugins().size(), 1u);
  EXPECT_EQ(plugins.plugins()[0].state, PluginState::configured) << plugins.plugins()[0].error;
  EXPECT_TRUE(plugins.plugins()[0].stages.empty());
}

// Bad rules are refused by configure() with the shared parsers' messages
// (sluice/parse.hpp), at the value: line 2 of the table, after "[[plugins.log.match]]".
struct BadRule {
  const char* rule;
  std::uint32_t column;
  const char* key;
  const char* message;
};
void PrintTo(const BadRule& r, std::ostream* os) { *os << r.rule; }

class LogConfig : public ::testing::TestWithParam<BadRule> {};
TEST_P(LogConfig, BadRuleIsRefusedAtItsValue) {
  if (!std::filesystem::exists(default_plugin_dir() + "/log.so"))
    GTEST_SKIP() << "log plugin not built";
  const BadRule& r = GetParam();
  NodeConfig config = parse_config(std::string("[plugins]\nenabled = [\"log\"]\n[plugins.log]\n"
                                               "[[plugins.log.match]]\n") + r.rule + "\n",
                                   "<test>");
  NodeHost host(config);
  PluginHost plugins(config, host);
  try {
    plugins.open_and_configure(true);
    FAIL() << "accepted: " << r.rule;
  } catch (const ConfigError& e) {
    EXPECT_EQ(e.line, 5u) << e.what();
    EXPECT_EQ(e.column, r.column) << e.what();
    EXPECT_EQ(e.key, r.key) << e.what();
    EXPECT_STREQ(e.what(), r.message);
  }
}
INSTANTIATE_TEST_SUITE_P(
    Rules, LogConfig,
    ::testing::Values(
        BadRule{"source = \"10.0.0.1/24\"", 10, "plugins.log.match[0].source",
                "'10.0.0.1/24' has host bits set: did you mean 10.0.0.0/24?"},
        BadRule{"destination = \"fd00::/200\"", 15, "plugins.log.match[0].destination",
                "'fd00::/200' is not a CIDR prefix: the length of an IPv6 prefix is 0-128"},
        BadRule{"protocol = \"gre2\"", 12, "plugins.log.match[0].protocol",
                "'gre2' is not a protocol: use tcp, udp, sctp, icmp, icmpv6 or a number 0-255"},
        BadRule{"protocol = 0", 12, "plugins.log.match[0].protocol",
                "protocol 0 is not matched by the log stage: use tcp, udp, sctp, icmp, icmpv6 "
                "or a number 1-255"},
        BadRule{"destination_port = 70000", 20, "plugins.log.match[0].destination_port",
                "70000 is not a port: use a number 1-65535"}),
    [](const auto& info) { return std::to_string(info.index); });

}  // namespace
