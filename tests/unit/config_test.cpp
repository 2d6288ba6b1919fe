#include <gtest/gtest.h>

#include <fstream>

#include "sluice/core/config.hpp"

using namespace sluice;

namespace {

// Parses `text` and returns the ConfigError it must raise.
ConfigError expect_error(const std::string& text) {
  try {
    parse_config(text, "node.toml");
  } catch (const ConfigError& error) {
    return error;
  }
  ADD_FAILURE() << "no error for:\n" << text;
  return ConfigError("", 0, 0, "", "");
}

}  // namespace

TEST(Config, DefaultsWhenEmpty) {
  NodeConfig cfg = parse_config("", "empty.toml");
  EXPECT_EQ(cfg.bpf_root, "/sys/fs/bpf");
  EXPECT_EQ(cfg.instance, "sluice");
  EXPECT_EQ(cfg.pin_dir(), "/sys/fs/bpf/sluice");
  EXPECT_EQ(cfg.map_pin_dir(), "/sys/fs/bpf/sluice/maps");
  EXPECT_EQ(cfg.log_level, SL_LOG_OFF);
  EXPECT_EQ(cfg.interfaces.by_role[SL_ROLE_WORKLOAD], std::vector<std::string>{"cali*"});
  EXPECT_EQ(cfg.interfaces.by_role[SL_ROLE_DATA],
            (std::vector<std::string>{"eth*", "ens*", "en*"}));
  EXPECT_EQ(cfg.interfaces.by_role[SL_ROLE_TUNNEL], std::vector<std::string>{"vxlan.sluice"});
  EXPECT_EQ(cfg.interfaces.by_role[SL_ROLE_L3], std::vector<std::string>{"wg*"});
  EXPECT_EQ(cfg.rules[SL_ROLE_WORKLOAD].missed_tail_call, SL_FAULT_DROP);
  EXPECT_EQ(cfg.rules[SL_ROLE_DATA].missed_tail_call, SL_FAULT_PASS);
  EXPECT_TRUE(cfg.enabled_plugins.empty());
  EXPECT_FALSE(cfg.node_name.empty());
  EXPECT_EQ(cfg.metrics_listen, "127.0.0.1:9464");
}

TEST(Config, ReadsEveryDocumentedKey) {
  NodeConfig cfg = parse_config(R"(
[node]
name = "n1"
[bpf]
root = "/run/bpf/"
instance = "lab-n1"
log_level = "debug"
[interfaces]
workload = ["veth*"]
data = ["uplink0"]
tunnel = ["vx*"]
l3 = ["tun*"]
ignore = ["veth-skip*"]
[pipeline.data]
malformed = "drop"
missed_tail_call = "drop"
[plugins]
dir = "/opt/sluice/plugins"
enabled = ["log", "other"]
[plugins.log]
order = 10
[state]
source = "file"
dir = "/var/lib/sluice"
[metrics]
listen = "[::1]:9100"
)",
                                "full.toml");
  EXPECT_EQ(cfg.node_name, "n1");
  EXPECT_EQ(cfg.bpf_root, "/run/bpf");  // trailing slash dropped
  EXPECT_EQ(cfg.pin_dir(), "/run/bpf/lab-n1");
  EXPECT_EQ(cfg.log_level, SL_LOG_DEBUG);
  EXPECT_EQ(cfg.interfaces.ignore, std::vector<std::string>{"veth-skip*"});
  EXPECT_EQ(cfg.rules[SL_ROLE_DATA].malformed, SL_FAULT_DROP);
  EXPECT_EQ(cfg.rules[SL_ROLE_WORKLOAD].malformed, SL_FAULT_DROP);
  EXPECT_EQ(cfg.plugin_dir, "/opt/sluice/plugins");
  EXPECT_EQ(cfg.enabled_plugins, (std::vector<std::string>{"log", "other"}));
  EXPECT_EQ(cfg.state_dir, "/var/lib/sluice");
  EXPECT_EQ(cfg.metrics_listen, "[::1]:9100");
}

TEST(Config, UnknownTopLevelKeyNamesLineColumnAndKey) {
  ConfigError e = expect_error("[node]\nname = \"x\"\n\n[bpff]\nroot = \"/x\"\n");
  EXPECT_EQ(e.file, "node.toml");
  EXPECT_EQ(e.line, 4u);
  EXPECT_EQ(e.key, "bpff");
  EXPECT_NE(std::string(e.what()).find("unknown key"), std::string::npos);
}

TEST(Config, UnknownNestedKeyIsAnError) {
  ConfigError e = expect_error("[bpf]\nroot = \"/sys/fs/bpf\"\nlog_levle = \"debug\"\n");
  EXPECT_EQ(e.line, 3u);
  EXPECT_EQ(e.column, 1u);
  EXPECT_EQ(e.key, "bpf.log_levle");
  EXPECT_NE(std::string(e.what()).find("log_level"), std::string::npos)
      << "the message lists the allowed keys";
}

TEST(Config, WrongTypeNamesTheKey) {
  ConfigError e = expect_error("[interfaces]\nworkload = \"cali*\"\n");
  EXPECT_EQ(e.line, 2u);
  EXPECT_EQ(e.key, "interfaces.workload");
  EXPECT_NE(std::string(e.what()).find("list of strings"), std::string::npos);
}

TEST(Config, BadChoiceListsTheChoices) {
  ConfigError e = expect_error("[bpf]\nlog_level = \"verbose\"\n");
  EXPECT_EQ(e.key, "bpf.log_level");
  EXPECT_NE(std::string(e.what()).find("off, info, debug"), std::string::npos);
  ConfigError rule = expect_error("[pipeline.workload]\nmalformed = \"accept\"\n");
  EXPECT_EQ(rule.key, "pipeline.workload.malformed");
  EXPECT_EQ(rule.line, 2u);
}

TEST(Config, RejectsBadValues) {
  EXPECT_EQ(expect_error("[bpf]\nroot = \"relative/path\"\n").key, "bpf.root");
  EXPECT_EQ(expect_error("[bpf]\ninstance = \"a/b\"\n").key, "bpf.instance");
  EXPECT_EQ(expect_error("[bpf]\ninstance = \"..\"\n").key, "bpf.instance");
  EXPECT_EQ(expect_error("[plugins]\nenabled = [\"log\", \"log\"]\n").key, "plugins.enabled");
  EXPECT_EQ(expect_error("[plugins]\nenabled = [\"../evil\"]\n").key, "plugins.enabled");
  EXPECT_EQ(expect_error("[plugins]\nfoo = 1\n").key, "plugins.foo");
  EXPECT_EQ(expect_error("[state]\nsource = \"etcd\"\n").key, "state.source");
  EXPECT_EQ(expect_error("[interfaces]\nignore = [\"\"]\n").key, "interfaces.ignore");
}

TEST(Config, SyntaxErrorHasAPosition) {
  ConfigError e = expect_error("[bpf]\nroot = \"/sys/fs/bpf\n");
  EXPECT_EQ(e.file, "node.toml");
  EXPECT_EQ(e.line, 2u);
  EXPECT_GT(e.column, 0u);
  std::string formatted = format_config_error(e);
  EXPECT_EQ(formatted.rfind("node.toml:2:", 0), 0u) << formatted;
}

TEST(Config, MissingFileIsAClearError) {
  try {
    load_config("/nonexistent/sluice.toml");
    FAIL() << "no error";
  } catch (const ConfigError& e) {
    EXPECT_EQ(e.file, "/nonexistent/sluice.toml");
    EXPECT_NE(std::string(e.what()).find("cannot read"), std::string::npos);
  }
}

TEST(Config, ShippedConfigIsValid) {
  NodeConfig cfg = load_config(SLUICE_SOURCE_DIR "/configs/sluice.toml");
  EXPECT_EQ(cfg.enabled_plugins, std::vector<std::string>{"log"});
  EXPECT_EQ(cfg.instance, "sluice");
  EXPECT_EQ(cfg.metrics_listen, "127.0.0.1:9464");
}

TEST(Config, MetricsListenEmptyDisables) {
  EXPECT_EQ(parse_config("[metrics]\nlisten = \"\"\n", "m.toml").metrics_listen, "");
  EXPECT_EQ(parse_config("[metrics]\nlisten = \"10.0.0.1:9464\"\n", "m.toml").metrics_listen,
            "10.0.0.1:9464");
}

TEST(Config, MetricsListenMustBeAnExplicitAddressAndPort) {
  for (const char* bad : {"9464", ":9464", "127.0.0.1", "127.0.0.1:", "127.0.0.1:0",
                          "127.0.0.1:70000", "127.0.0.1:94x", "0.0.0.0:9464", "[::]:9464",
                          "example.com:9464", "::1:9464", "[zz::1]:9464"}) {
    ConfigError e = expect_error(std::string("[node]\nname = \"n\"\n[metrics]\nlisten = \"") +
                                 bad + "\"\n");
    EXPECT_EQ(e.key, "metrics.listen") << bad;
    EXPECT_EQ(e.line, 4u) << bad;
    EXPECT_EQ(e.file, "node.toml") << bad;
  }
  ConfigError unknown = expect_error("[metrics]\nport = 9464\n");
  EXPECT_EQ(unknown.key, "metrics.port");
  EXPECT_NE(std::string(unknown.what()).find("listen"), std::string::npos);
  EXPECT_NE(std::string(expect_error("[metrics]\nlisten = \"0.0.0.0:1\"\n").what())
                .find("every address"),
            std::string::npos);
}

TEST(Config, ParsesListenAddresses) {
  std::string why;
  auto v4 = parse_listen_address("127.0.0.1:9464", why);
  ASSERT_TRUE(v4);
  EXPECT_EQ(v4->address, "127.0.0.1");
  EXPECT_EQ(v4->port, 9464);
  EXPECT_FALSE(v4->ipv6);
  EXPECT_TRUE(v4->loopback);
  auto v6 = parse_listen_address("[::1]:1", why);
  ASSERT_TRUE(v6);
  EXPECT_EQ(v6->address, "::1");
  EXPECT_TRUE(v6->ipv6);
  EXPECT_TRUE(v6->loopback);
  auto local = parse_listen_address("localhost:65535", why);
  ASSERT_TRUE(local);
  EXPECT_EQ(local->address, "127.0.0.1");
  EXPECT_EQ(local->port, 65535);
  auto other = parse_listen_address("192.0.2.7:80", why);
  ASSERT_TRUE(other);
  EXPECT_FALSE(other->loopback);
  EXPECT_FALSE(parse_listen_address("", why));
  EXPECT_FALSE(why.empty());
}

TEST(Config, OptionalPluginsMustBeEnabled) {
  NodeConfig cfg = parse_config("[plugins]\nenabled = [\"log\", \"policy\"]\noptional = [\"log\"]\n",
                                "node.toml");
  EXPECT_TRUE(cfg.plugin_optional("log"));
  EXPECT_FALSE(cfg.plugin_optional("policy"));
  ConfigError e = expect_error("[plugins]\nenabled = [\"log\"]\noptional = [\"lgo\"]\n");
  EXPECT_EQ(e.key, "plugins.optional");
  EXPECT_EQ(e.line, 3u);
}
