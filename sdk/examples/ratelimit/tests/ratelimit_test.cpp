// The ratelimit stage on the real kernel, through Sluice's entry program and
// chain (BPF_PROG_TEST_RUN), with the plugin loaded from ratelimit.so the way
// sluiced loads it. Needs root.
#include <arpa/inet.h>
#include <gtest/gtest.h>

#include <chrono>
#include <map>
#include <optional>
#include <sstream>
#include <thread>

#include <sluice/maps.hpp>
#include <sluice/testing/cli.hpp>
#include <sluice/testing/gtest.hpp>
#include <sluice/testing/packet.hpp>
#include <sluice/testing/stage_test.hpp>

#include "ratelimit_layout.h"

using namespace sluice::testing;

namespace {

class RateLimit : public ::testing::Test {
 protected:
  // Loads ratelimit.so with `table` as [plugins.ratelimit] and chains its
  // stage alone on workload ingress.
  void start(const std::string& table) {
    plugin.emplace(bed.load_plugin(RATELIMIT_PLUGIN, "[plugins.ratelimit]\n" + table + "\n"));
    bed.set_chain(SL_ROLE_WORKLOAD, SL_HOOK_INGRESS, {plugin->stage_fd("ratelimit")});
    bed.load_entry(SL_ROLE_WORKLOAD);
  }
  static Packet udp_from(const std::string& src) {
    if (src.find(':') != std::string::npos)
      return PacketBuilder().ipv6(src, "2001:db8::ff").udp(4000, 53).payload(16).build();
    return PacketBuilder().ipv4(src, "10.9.9.9").udp(4000, 53).payload(16).build();
  }
  sluice::PinnedMap<rl_key, rl_bucket> buckets() {
    return sluice::PinnedMap<rl_key, rl_bucket>::open(bed.map_pin_dir() + "/ratelimit_buckets");
  }
  std::uint64_t total(rl_counter which) {
    auto counters =
        sluice::PerCpuMap<__u32, __u64>::open(bed.map_pin_dir() + "/ratelimit_counters");
    return sluice::sum(counters.lookup(which).value_or(std::vector<__u64>{}));
  }
  static rl_key v4_key(const char* addr) {
    rl_key k{};
    k.family = 4;
    inet_pton(AF_INET, addr, &k.addr[0]);
    return k;
  }

  Testbed bed;
  std::optional<PluginUnderTest> plugin;
};

TEST_F(RateLimit, UnderTheLimitPasses) {
  start("rate = 1000\nburst = 5");
  Packet pkt = udp_from("10.0.0.1");
  for (int i = 0; i < 5; ++i) SL_EXPECT_RUN(bed.run(pkt)).passes().reason(SL_R_ACCEPTED);
  EXPECT_EQ(bed.counter(SL_R_ACCEPTED).packets, 5u);
  EXPECT_EQ(total(RL_CTR_PASSED), 5u);
  EXPECT_EQ(total(RL_CTR_DROPPED), 0u);
}

TEST_F(RateLimit, BurstThenDropsWithThePluginReason) {
  start("rate = 1\nburst = 3");
  Packet pkt = udp_from("10.0.0.1");
  auto before = bed.counters(0, SL_HOOK_INGRESS);
  for (int i = 0; i < 3; ++i) SL_EXPECT_RUN(bed.run(pkt)).passes();
  EXPECT_TRUE(counted_once(bed, before, SL_R_ACCEPTED, pkt.size(), SL_HOOK_INGRESS, 0, 3));
  SL_EXPECT_RUN(bed.run(pkt)).drops(SL_R_PLUGIN_0);
  SL_EXPECT_RUN(bed.run(pkt)).drops(SL_R_PLUGIN_0);
  EXPECT_EQ(bed.counter(SL_R_PLUGIN_0).packets, 2u);
  auto bucket = buckets().lookup(v4_key("10.0.0.1"));
  ASSERT_TRUE(bucket);
  EXPECT_EQ(bucket->passed, 3u);
  EXPECT_EQ(bucket->dropped, 2u);
  EXPECT_LT(bucket->credit, RL_TOKEN);
  EXPECT_EQ(total(RL_CTR_DROPPED), 2u);
  // Another source has its own bucket.
  SL_EXPECT_RUN(bed.run(udp_from("10.0.0.2"))).passes();
}

TEST_F(RateLimit, RefillsWithTime) {
  start("rate = 10\nburst = 2");
  Packet pkt = udp_from("10.0.0.1");
  SL_EXPECT_RUN(bed.run(pkt)).passes();
  SL_EXPECT_RUN(bed.run(pkt)).passes();
  SL_EXPECT_RUN(bed.run(pkt)).drops(SL_R_PLUGIN_0);
  // Pretend 150 ms went by (1.5 tokens at 10/s): move the bucket's clock back.
  auto map = buckets();
  rl_bucket b = map.lookup(v4_key("10.0.0.1")).value();
  b.last_ns -= 150'000'000;
  map.update(v4_key("10.0.0.1"), b, BPF_EXIST);
  SL_EXPECT_RUN(bed.run(pkt)).passes();
  SL_EXPECT_RUN(bed.run(pkt)).drops(SL_R_PLUGIN_0);
  // And with the real clock (bpf_ktime_get_ns): 10/s earns a token in 100 ms.
  std::this_thread::sleep_for(std::chrono::milliseconds(130));
  SL_EXPECT_RUN(bed.run(pkt)).passes();
}

TEST_F(RateLimit, ExemptPrefixesAreNeverDropped) {
  start("rate = 1\nburst = 1\nexemptions = [\"10.1.0.0/16\", \"fd00:1::/32\"]");
  for (int i = 0; i < 10; ++i) {
    SL_EXPECT_RUN(bed.run(udp_from("10.1.2.3"))).passes();
    SL_EXPECT_RUN(bed.run(udp_from("fd00:1::7"))).passes();
  }
  EXPECT_EQ(total(RL_CTR_EXEMPT), 20u);
  EXPECT_FALSE(buckets().lookup(v4_key("10.1.2.3"))) << "exempt sources get no bucket";
  // Just outside the prefixes.
  SL_EXPECT_RUN(bed.run(udp_from("10.2.0.1"))).passes();
  SL_EXPECT_RUN(bed.run(udp_from("10.2.0.1"))).drops(SL_R_PLUGIN_0);
  SL_EXPECT_RUN(bed.run(udp_from("fd00:2::7"))).passes();
  SL_EXPECT_RUN(bed.run(udp_from("fd00:2::7"))).drops(SL_R_PLUGIN_0);
}

TEST_F(RateLimit, LimitsIpv6Sources) {
  start("rate = 1\nburst = 2");
  SL_EXPECT_RUN(bed.run(udp_from("2001:db8::1"))).passes();
  SL_EXPECT_RUN(bed.run(udp_from("2001:db8::1"))).passes();
  SL_EXPECT_RUN(bed.run(udp_from("2001:db8::1"))).drops(SL_R_PLUGIN_0);
  SL_EXPECT_RUN(bed.run(udp_from("2001:db8::2"))).passes();
  rl_key key{};
  key.family = 6;
  inet_pton(AF_INET6, "2001:db8::1", key.addr);
  auto bucket = buckets().lookup(key);
  ASSERT_TRUE(bucket);
  EXPECT_EQ(bucket->dropped, 1u);
}

TEST_F(RateLimit, DropReasonIsConfigurable) {
  start("rate = 1\nburst = 1\nreason = 3");
  SL_EXPECT_RUN(bed.run(udp_from("10.0.0.1"))).passes();
  SL_EXPECT_RUN(bed.run(udp_from("10.0.0.1"))).drops(SL_R_PLUGIN_3);
}

TEST_F(RateLimit, DeclaresItsStageBeforePolicy) {
  start("roles = [\"workload\"]\nhooks = [\"ingress\", \"egress\"]");
  ASSERT_EQ(plugin->stages().size(), 1u);
  const auto& spec = plugin->stages()[0];
  EXPECT_EQ(spec.order, 150);
  EXPECT_EQ(spec.roles, sluice::role_bit(SL_ROLE_WORKLOAD));
  EXPECT_EQ(spec.hooks, sluice::kBothHooks);
}

TEST_F(RateLimit, DumpCommandListsTopSources) {
  start("rate = 1\nburst = 1");
  bed.run(udp_from("10.0.0.1"));
  bed.run(udp_from("10.0.0.1"));
  bed.run(udp_from("10.0.0.2"));
  auto commands = plugin->cli_commands();
  ASSERT_EQ(commands.size(), 1u);
  EXPECT_EQ(commands[0].path, (std::vector<std::string>{"ratelimit", "dump"}));
  const std::vector<std::string> dump = {"ratelimit", "dump"};
  std::string table;
  ASSERT_EQ(sluice::testing::run_plugin_command(*plugin, bed, dump, {}, table), sluice::kCliOk)
      << table;
  EXPECT_NE(table.find("dropped 1 (reason plugin-0)"), std::string::npos) << table;
  auto first = table.find("10.0.0.1"), second = table.find("10.0.0.2");
  ASSERT_NE(first, std::string::npos) << table;
  EXPECT_LT(first, second) << "most dropped first:\n" << table;

  std::string json;
  ASSERT_EQ(sluice::testing::run_plugin_command(*plugin, bed, dump, {"--top", "1"}, json,
                                                sluice::OutputFormat::json),
            sluice::kCliOk)
      << json;
  EXPECT_NE(json.find("\"source\": \"10.0.0.1\""), std::string::npos) << json;
  EXPECT_EQ(json.find("10.0.0.2"), std::string::npos) << "--top 1: " << json;
  EXPECT_NE(json.find("\"dropped\": 1"), std::string::npos) << json;

  // The declared option is checked before the command runs.
  std::string error;
  EXPECT_EQ(sluice::testing::run_plugin_command(*plugin, bed, dump, {"--bogus"}, error),
            sluice::kCliUsage);
  EXPECT_NE(error.find("ratelimit dump: unrecognised option '--bogus'"), std::string::npos)
      << error;
  EXPECT_EQ(sluice::testing::run_plugin_command(*plugin, bed, dump, {"--top", "-1"}, error),
            sluice::kCliUsage);
  EXPECT_NE(error.find("'--top' is invalid"), std::string::npos) << error;
  EXPECT_EQ(sluice::testing::run_plugin_command(*plugin, bed, dump, {"--help"}, error),
            sluice::kCliOk);
  EXPECT_NE(error.find("ratelimit dump [--top N]"), std::string::npos) << error;
}

TEST_F(RateLimit, MetricsCountResults) {
  start("rate = 1\nburst = 1");
  bed.run(udp_from("10.0.0.1"));
  bed.run(udp_from("10.0.0.1"));
  struct Capture : sluice::MetricsWriter {
    std::map<std::string, double> samples;
    void counter(std::string_view name, std::string_view, const sluice::MetricLabels& labels,
                 double value) override {
      samples[std::string(name) + (labels.empty() ? "" : "{" + labels[0].second + "}")] = value;
    }
    void gauge(std::string_view name, std::string_view, const sluice::MetricLabels&,
               double value) override {
      samples[std::string(name)] = value;
    }
  } capture;
  plugin->plugin().write_metrics(capture);
  EXPECT_EQ(capture.samples["sluice_ratelimit_packets_total{passed}"], 1);
  EXPECT_EQ(capture.samples["sluice_ratelimit_packets_total{dropped}"], 1);
  EXPECT_EQ(capture.samples["sluice_ratelimit_sources"], 1);
}

// Configuration errors name file, line, column and key.
struct BadConfig {
  const char* table;
  const char* key;
  unsigned line;
  const char* words;
};
void PrintTo(const BadConfig& c, std::ostream* os) { *os << c.table; }
class RateLimitConfig : public ::testing::TestWithParam<BadConfig> {};

TEST_P(RateLimitConfig, IsRefusedWithItsPosition) {
  Testbed bed;
  const BadConfig& c = GetParam();
  try {
    bed.load_plugin(RATELIMIT_PLUGIN, std::string("[plugins.ratelimit]\n") + c.table + "\n");
    FAIL() << "accepted: " << c.table;
  } catch (const sluice::ConfigError& e) {
    EXPECT_EQ(e.key, c.key) << e.what();
    EXPECT_EQ(e.line, c.line) << e.what();
    EXPECT_NE(std::string(e.what()).find(c.words), std::string::npos) << e.what();
  }
}

INSTANTIATE_TEST_SUITE_P(
    Keys, RateLimitConfig,
    ::testing::Values(
        BadConfig{"rate = 0", "plugins.ratelimit.rate", 2, "out of range"},
        BadConfig{"rate = 5\nburst = \"lots\"", "plugins.ratelimit.burst", 3, "integer"},
        BadConfig{"roles = [\"workload\",\n  \"bogus\"]", "plugins.ratelimit.roles", 3,
                  "'bogus' is not one of"},
        BadConfig{"exemptions = [\"10.0.0.1/8\"]", "plugins.ratelimit.exemptions", 2,
                  "host bits"},
        BadConfig{"reason = 8", "plugins.ratelimit.reason", 2, "out of range"},
        BadConfig{"rates = 5", "plugins.ratelimit.rates", 2, "unknown key"}),
    [](const auto& info) { return std::string(info.param.key).substr(18); });

}  // namespace
