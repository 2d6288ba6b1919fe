// The parts of the conntrack plugin that need no kernel: its configuration
// (positioned errors), entry formatting, and the CLI's argument checks
// (refused before any map is opened). No root: labelled unit.
#include <arpa/inet.h>
#include <netinet/in.h>

#include <gtest/gtest.h>

#include <sstream>

#include <sluice/plugin.hpp>

#include "ct_cli.hpp"
#include "sluice/core/command_line.hpp"
#include "ct_config.hpp"
#include "ct_format.hpp"

namespace {

using sluice::ConfigError;

ct::Settings settings(const std::string& table_text) {
  sluice::ConfigSource source{"/etc/sluice/sluice.toml",
                              "[plugins.conntrack]\n" + table_text, "plugins.conntrack"};
  sluice::config::PluginTable table(source);
  return ct::parse_settings(table.table());
}

ConfigError settings_error(const std::string& table_text) {
  try {
    settings(table_text);
  } catch (const ConfigError& error) {
    return error;
  }
  ADD_FAILURE() << "no error for: " << table_text;
  return ConfigError("", 0, 0, "", "");
}

TEST(ConntrackConfig, DefaultsAreCalicos) {
  ct::Settings s = settings("");
  EXPECT_EQ(s.table_size, SL_CT_DEFAULT_ENTRIES);
  EXPECT_EQ(s.table_full, CT_FULL_DROP_NEW);
  EXPECT_EQ(s.timeouts[SL_CT_TO_TCP_ESTABLISHED], 3600u);
  EXPECT_EQ(s.timeouts[SL_CT_TO_UDP], 60u);
  EXPECT_EQ(s.clean_interval, 10u);
}

TEST(ConntrackConfig, DurationsTakeUnits) {
  ct::Settings s = settings("clean_interval = \"2m\"\n[plugins.conntrack.timeouts]\nudp = \"1h\"\n");
  EXPECT_EQ(s.clean_interval, 120u);
  EXPECT_EQ(s.timeouts[SL_CT_TO_UDP], 3600u);
}

TEST(ConntrackConfig, BadDurationIsPositioned) {
  ConfigError error = settings_error("[plugins.conntrack.timeouts]\ntcp_fin = \"30d\"\n");
  EXPECT_EQ(error.line, 3u);
  EXPECT_EQ(error.column, 11u);
  EXPECT_EQ(error.key, "plugins.conntrack.timeouts.tcp_fin");
  EXPECT_NE(std::string(error.what()).find("'30d' is not a duration"), std::string::npos);
}

TEST(ConntrackConfig, DurationMessagesSayWhatIsAccepted) {
  struct Bad {
    const char* table;
    const char* key;
    const char* message;
  };
  const Bad cases[] = {
      {"[plugins.conntrack.timeouts]\ntcp_established = \"90x\"\n",
       "plugins.conntrack.timeouts.tcp_established",
       "'90x' is not a duration: use a whole number with ns, us, ms, s, m or h, e.g. '90s'"},
      {"[plugins.conntrack.timeouts]\nudp = \"1500ms\"\n", "plugins.conntrack.timeouts.udp",
       "'1500ms' is not a whole number of seconds"},
      {"[plugins.conntrack.timeouts]\nother = \"169h\"\n", "plugins.conntrack.timeouts.other",
       "duration 169h is out of range [1s, 168h]"},
      {"clean_interval = 0\n", "plugins.conntrack.clean_interval",
       "duration 0s is out of range [1s, 1h]"},
      {"clean_interval = \"soon\"\n", "plugins.conntrack.clean_interval",
       "'soon' is not a duration: use a whole number with ns, us, ms, s, m or h, e.g. '90s'"},
  };
  for (const Bad& c : cases) {
    ConfigError error = settings_error(c.table);
    EXPECT_EQ(error.key, c.key) << c.table;
    EXPECT_STREQ(error.what(), c.message) << c.table;
  }
  EXPECT_EQ(settings("clean_interval = \"3000ms\"\n").clean_interval, 3u);
}

TEST(ConntrackConfig, OutOfRangeAndUnknownKeysAreRefused) {
  EXPECT_EQ(settings_error("clean_interval = 0\n").key, "plugins.conntrack.clean_interval");
  EXPECT_EQ(settings_error("table_ful = \"drop-new\"\n").key, "plugins.conntrack.table_ful");
}

TEST(ConntrackFormat, ProtocolNamesBothWays) {
  EXPECT_EQ(ct::parse_proto("TCP"), IPPROTO_TCP);
  EXPECT_EQ(ct::parse_proto("icmpv6"), IPPROTO_ICMPV6);
  EXPECT_EQ(ct::parse_proto("any"), -1);
  EXPECT_EQ(ct::parse_proto("47"), 47);
  EXPECT_FALSE(ct::parse_proto("256"));
  EXPECT_FALSE(ct::parse_proto("tcpx"));
  EXPECT_EQ(ct::proto_name(IPPROTO_SCTP), "SCTP");
  EXPECT_EQ(ct::proto_name(99), "99");
}

TEST(ConntrackFormat, FlowShowsTheOpenerFirst) {
  sl_ct_key k{};
  k.family = 4;
  k.proto = IPPROTO_TCP;
  k.addr_a[0] = inet_addr("10.96.0.50");
  k.port_a = htons(8385);
  k.addr_b[0] = inet_addr("10.0.0.9");
  k.port_b = htons(42642);
  sl_ct_value v{};
  v.flags = SL_CT_F_BA;  // B opened the flow
  EXPECT_EQ(ct::flow_text(k, v).rfind("TCP 10.0.0.9:42642 -> 10.96.0.50:8385", 0), 0u)
      << ct::flow_text(k, v);
  EXPECT_EQ(ct::leg_flag_text(SL_CT_LEG_SYN | SL_CT_LEG_ACK), "syn,ack");
  EXPECT_EQ(ct::leg_flag_text(0), "-");
  EXPECT_EQ(ct::seconds_text(1'250'000'000), "1.2s");
}

struct CliRun {
  int rc;
  std::string err;
};

// Runs `conntrack <name>` as sluicectl does: parsed against its declared
// options first (sluice/core/command_line.hpp).
CliRun run(const std::string& name, std::vector<std::string> args) {
  for (const auto& command : ct::conntrack_cli_commands(ct::default_settings())) {
    if (command.path.back() != name) continue;
    std::ostringstream out, err;
    sluice::CliContext context;
    context.map_pin_dir = "/nonexistent";
    context.out = &out;
    context.err = &err;
    return {sluice::run_cli_command(command, args, context), err.str()};
  }
  ADD_FAILURE() << "no command conntrack " << name;
  return {-1, ""};
}

TEST(ConntrackCli, BadArgumentsAreUsageErrors) {
  auto dump = run("dump", {"--bogus"});
  EXPECT_EQ(dump.rc, sluice::kCliUsage);
  EXPECT_NE(dump.err.find("conntrack dump: unrecognised option '--bogus'"), std::string::npos)
      << dump.err;
  EXPECT_EQ(run("stats", {"x"}).rc, sluice::kCliUsage);
  auto missing = run("remove", {"tcp"});
  EXPECT_EQ(missing.rc, sluice::kCliUsage);
  EXPECT_NE(missing.err.find("argument <ip> is missing"), std::string::npos) << missing.err;
  auto proto = run("remove", {"gre2", "10.0.0.1"});
  EXPECT_EQ(proto.rc, sluice::kCliUsage);
  EXPECT_NE(proto.err.find("'gre2' is not a protocol"), std::string::npos);
  auto ip = run("remove", {"tcp", "10.0.0.1", "10.0.0"});
  EXPECT_EQ(ip.rc, sluice::kCliUsage);
  EXPECT_NE(ip.err.find("'10.0.0' is not an IPv4 or IPv6 address"), std::string::npos);
  EXPECT_EQ(run("remove", {"tcp", "10.0.0.1", "10.0.0.2", "10.0.0.3"}).rc, sluice::kCliUsage);
  auto clean = run("clean", {"--everything"});
  EXPECT_EQ(clean.rc, sluice::kCliUsage);
  EXPECT_NE(clean.err.find("'--everything'"), std::string::npos) << clean.err;
}

TEST(ConntrackCli, MissingTableIsAFailureNamingThePin) {
  auto dump = run("dump", {});
  EXPECT_EQ(dump.rc, sluice::kCliFailure);
  EXPECT_NE(dump.err.find("/nonexistent/sl_conntrack"), std::string::npos);
}

}  // namespace
