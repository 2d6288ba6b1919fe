#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>

#include <spdlog/sinks/ringbuffer_sink.h>
#include <spdlog/spdlog.h>

#include "sluice/core/error.hpp"
#include "sluice/core/node_host.hpp"
#include "sluice/core/plugin_host.hpp"
#include "plugins/minor_fixture.hpp"

using namespace sluice;

namespace {

const std::string kFixtureDir = SLUICE_TEST_PLUGIN_DIR;

class NullHost final : public Host {
 public:
  std::string node_name() const override { return "test"; }
  std::string pin_dir() const override { return "/nonexistent"; }
  std::string map_pin_dir() const override { return "/nonexistent/maps"; }
  void load_bpf(std::string_view, const std::function<int()>& load) override { load(); }
  void log(LogLevel, std::string_view) override {}
  Subscription every(std::chrono::milliseconds, std::function<void()>) override { return {}; }
  Subscription watch_fd(int, std::function<void()>) override { return {}; }
  Subscription watch_netlink(int, std::uint32_t, std::function<void()>) override { return {}; }
};

NodeConfig config_with(const std::string& plugins_toml) {
  return parse_config("[plugins]\ndir = \"" + kFixtureDir + "\"\n" + plugins_toml, "node.toml");
}

const LoadedPlugin& find(const PluginHost& host, const std::string& name) {
  for (const auto& p : host.plugins())
    if (p.name == name) return p;
  throw std::runtime_error("no plugin " + name);
}

}  // namespace

TEST(PluginAbi, ReadsTheDescriptorFromTheFile) {
  PluginAbiDescriptor d = read_plugin_descriptor(kFixtureDir + "/good_plugin.so");
  EXPECT_EQ(d.magic, kPluginAbiMagic);
  EXPECT_EQ(d.major, kPluginAbiMajor);
  EXPECT_EQ(d.minor, kPluginAbiMinor);
  EXPECT_EQ(d.size, sizeof(PluginAbiDescriptor));
  EXPECT_STREQ(d.name, "good_plugin");
  EXPECT_STREQ(d.version, "1.2.3");
  EXPECT_EQ(check_plugin_abi(d, "good_plugin.so"), "");
}

TEST(PluginAbi, OlderMajorIsRefusedNamingBothVersionsAndTheFix) {
  PluginAbiDescriptor d = read_plugin_descriptor(kFixtureDir + "/old_major_plugin.so");
  EXPECT_EQ(d.major, 1);
  std::string why = check_plugin_abi(d, "old_major_plugin.so");
  EXPECT_NE(why.find("ABI 1.0"), std::string::npos) << why;
  EXPECT_NE(why.find("ABI 2." + std::to_string(kPluginAbiMinor)), std::string::npos) << why;
  EXPECT_NE(why.find("rebuild the plugin against the installed Sluice SDK"), std::string::npos)
      << why;
}

TEST(PluginAbi, NewerMinorIsRefusedSayingWhatToDo) {
  PluginAbiDescriptor d = read_plugin_descriptor(kFixtureDir + "/minor1_plugin.so");
  std::string why = check_plugin_abi(d, "minor1_plugin.so", 0);
  EXPECT_NE(why.find("needs plugin ABI 2.1, newer than this sluiced's 2.0"), std::string::npos)
      << why;
  EXPECT_NE(why.find("upgrade Sluice"), std::string::npos) << why;
  EXPECT_NE(why.find("rebuild the plugin against the installed Sluice SDK (ABI 2.0)"),
            std::string::npos)
      << why;
  EXPECT_EQ(check_plugin_abi(d, "minor1_plugin.so", 1), "") << "a 2.1 daemon takes it";
}

TEST(PluginAbi, NewerMinorLayoutAndToolchainAreRefused) {
  PluginAbiDescriptor d = read_plugin_descriptor(kFixtureDir + "/good_plugin.so");
  PluginAbiDescriptor newer = d;
  newer.minor = kPluginAbiMinor + 1;
  EXPECT_NE(check_plugin_abi(newer, "p.so").find("newer"), std::string::npos);
  PluginAbiDescriptor layout = d;
  layout.layout = SL_LAYOUT_VERSION + 1;
  EXPECT_NE(check_plugin_abi(layout, "p.so").find("layout"), std::string::npos);
  PluginAbiDescriptor toolchain = d;
  toolchain.cxx_abi ^= 1;
  EXPECT_NE(check_plugin_abi(toolchain, "p.so").find("C++ standard library"), std::string::npos);
}

TEST(PluginAbi, LibraryWithoutDescriptorIsNotAPlugin) {
  try {
    read_plugin_descriptor(kFixtureDir + "/not_a_plugin.so");
    FAIL() << "accepted a library without a descriptor";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("not a Sluice plugin"), std::string::npos) << e.what();
  }
  EXPECT_THROW(read_plugin_descriptor("/etc/hostname"), Error);
}

TEST(PluginHostTest, LoadsAndConfiguresAGoodPlugin) {
  NullHost host;
  NodeConfig cfg = config_with("enabled = [\"good_plugin\"]\n[plugins.good_plugin]\norder = 42\n");
  PluginHost plugins(cfg, host);
  plugins.open_and_configure(false);
  const auto& p = find(plugins, "good_plugin");
  EXPECT_EQ(p.state, PluginState::configured) << p.error;
  EXPECT_EQ(p.version, "1.2.3");
  ASSERT_EQ(p.stages.size(), 1u);
  EXPECT_EQ(p.stages[0].order, 42);
}

TEST(PluginHostTest, OlderMajorIsRefusedBeforeAnyOfItsCodeRuns) {
  std::string marker = "/tmp/sluice-test-ctor-" + std::to_string(getpid());
  std::filesystem::remove(marker);
  setenv("SLUICE_TEST_CTOR_MARKER", marker.c_str(), 1);
  NullHost host;
  NodeConfig cfg = config_with("enabled = [\"old_major_plugin\", \"good_plugin\"]\n");
  PluginHost plugins(cfg, host);
  plugins.open_and_configure(false);
  const auto& bad = find(plugins, "old_major_plugin");
  EXPECT_EQ(bad.state, PluginState::failed);
  EXPECT_NE(bad.error.find("ABI 1.0"), std::string::npos) << bad.error;
  EXPECT_NE(bad.error.find("ABI 2." + std::to_string(kPluginAbiMinor)), std::string::npos) << bad.error;
  EXPECT_FALSE(std::filesystem::exists(marker)) << "the refused plugin's constructor ran";
  EXPECT_EQ(find(plugins, "good_plugin").state, PluginState::configured)
      << "one broken plugin does not stop the others";
  unsetenv("SLUICE_TEST_CTOR_MARKER");
}

TEST(PluginHostTest, MissingPluginFileNamesThePath) {
  NullHost host;
  NodeConfig cfg = config_with("enabled = [\"absent\"]\n");
  PluginHost plugins(cfg, host);
  plugins.open_and_configure(false);
  const auto& p = find(plugins, "absent");
  EXPECT_EQ(p.state, PluginState::failed);
  EXPECT_NE(p.error.find(kFixtureDir + "/absent.so"), std::string::npos) << p.error;
  EXPECT_THROW(plugins.open_and_configure(true), Error) << "--check-config is strict";
}

TEST(PluginHostTest, PluginConfigErrorNamesFileLineAndKey) {
  NullHost host;
  NodeConfig cfg = config_with(
      "enabled = [\"good_plugin\", \"failing_config_plugin\"]\n"
      "[plugins.failing_config_plugin]\n"
      "limit = 1000\n");
  {
    PluginHost plugins(cfg, host);
    plugins.open_and_configure(false);
    const auto& p = find(plugins, "failing_config_plugin");
    EXPECT_EQ(p.state, PluginState::failed);
    EXPECT_NE(p.error.find("node.toml:5:"), std::string::npos) << p.error;
    EXPECT_NE(p.error.find("plugins.failing_config_plugin.limit"), std::string::npos) << p.error;
  }
  PluginHost strict(cfg, host);
  try {
    strict.open_and_configure(true);
    FAIL() << "strict mode accepted a bad plugin table";
  } catch (const ConfigError& e) {
    EXPECT_EQ(e.line, 5u);
    EXPECT_EQ(e.key, "plugins.failing_config_plugin.limit");
  }
}

TEST(PluginHostTest, DependenciesComeFirstAndMissingOnesAreNamed) {
  NullHost host;
  {
    NodeConfig cfg = config_with("enabled = [\"failing_config_plugin\", \"good_plugin\"]\n");
    PluginHost plugins(cfg, host);
    plugins.open_and_configure(false);
    ASSERT_EQ(plugins.plugins().size(), 2u);
    EXPECT_EQ(plugins.plugins()[0].name, "good_plugin");
    EXPECT_EQ(plugins.plugins()[1].name, "failing_config_plugin");
    EXPECT_EQ(plugins.plugins()[1].state, PluginState::configured) << plugins.plugins()[1].error;
  }
  {
    NodeConfig cfg = config_with("enabled = [\"failing_config_plugin\"]\n");
    PluginHost plugins(cfg, host);
    plugins.open_and_configure(false);
    const auto& p = find(plugins, "failing_config_plugin");
    EXPECT_EQ(p.state, PluginState::failed);
    EXPECT_NE(p.error.find("needs plugin 'good_plugin', which is not enabled"), std::string::npos)
        << p.error;
  }
}

// Issue 11, item 2: a dependency that is not enabled is a configuration
// error, refused by --check-config (and so by the SIGHUP pre-check) and by a
// start, positioned at [plugins] enabled.
TEST(PluginHostTest, DependencyNotEnabledIsAPositionedConfigError) {
  NullHost host;
  NodeConfig cfg = config_with("enabled = [\"failing_config_plugin\"]\n");
  PluginHost strict(cfg, host);
  try {
    strict.open_and_configure(true);
    FAIL() << "--check-config accepted a plugin whose dependency is not enabled";
  } catch (const ConfigError& e) {
    EXPECT_EQ(e.line, 3u);
    EXPECT_EQ(e.key, "plugins.enabled");
    EXPECT_NE(std::string(e.what()).find("needs plugin 'good_plugin'"), std::string::npos)
        << e.what();
  }
  PluginHost lenient(cfg, host);
  lenient.open_and_configure(false);
  EXPECT_THROW(lenient.refuse_invalid_configuration(), ConfigError)
      << "a start must be able to refuse what the check refuses";
}

// A plugin that is missing is not a configuration error: a start keeps its
// holes (fail closed) instead of refusing.
TEST(PluginHostTest, MissingPluginIsNotRefusedAsConfiguration) {
  NullHost host;
  NodeConfig cfg = config_with("enabled = [\"absent\"]\n");
  PluginHost plugins(cfg, host);
  plugins.open_and_configure(false);
  EXPECT_NO_THROW(plugins.refuse_invalid_configuration());
}

namespace {

// What a daemon at the pretend minor 1 would do: call the minor-1 virtual
// through the handle's guard, with the answer of a plugin that lacks it.
int ask_added_virtual(const PluginHandle& handle) {
  return handle.call_since(test::kMinorOfAddedVirtual, -1, [](Plugin& plugin) {
    return static_cast<const test::PluginWithMinor1Virtual&>(plugin).added_in_minor_1();
  });
}

}  // namespace

TEST(PluginHostTest, VirtualOfANewerMinorIsNotCalledOnAnOlderPlugin) {
  NullHost host;
  NodeConfig cfg = config_with("enabled = [\"minor0_plugin\", \"minor1_plugin\"]\n");
  PluginHost plugins(cfg, host, test::kMinorOfAddedVirtual);
  plugins.open_and_configure(false);
  const auto& older = find(plugins, "minor0_plugin");
  const auto& current = find(plugins, "minor1_plugin");
  ASSERT_EQ(older.state, PluginState::configured) << older.error;
  ASSERT_EQ(current.state, PluginState::configured) << current.error;
  EXPECT_FALSE(older.plugin.supports(test::kMinorOfAddedVirtual));
  EXPECT_EQ(ask_added_virtual(older.plugin), -1)
      << "the host called a virtual the plugin's descriptor says it does not have";
  EXPECT_TRUE(current.plugin.supports(test::kMinorOfAddedVirtual));
  EXPECT_EQ(ask_added_virtual(current.plugin), test::kAddedVirtualAnswer);
}

TEST(PluginHostTest, NewerMinorIsRefusedBeforeAnyOfItsCodeRuns) {
  std::string marker = "/tmp/sluice-test-ctor-minor-" + std::to_string(getpid());
  std::filesystem::remove(marker);
  setenv("SLUICE_TEST_CTOR_MARKER", marker.c_str(), 1);
  NullHost host;
  NodeConfig cfg = config_with("enabled = [\"minor1_plugin\"]\n");
  PluginHost plugins(cfg, host, 0);
  plugins.open_and_configure(false);
  const auto& newer = find(plugins, "minor1_plugin");
  EXPECT_EQ(newer.state, PluginState::failed);
  EXPECT_NE(newer.error.find("needs plugin ABI 2.1"), std::string::npos) << newer.error;
  EXPECT_FALSE(std::filesystem::exists(marker)) << "the refused plugin's constructor ran";
  unsetenv("SLUICE_TEST_CTOR_MARKER");
  std::filesystem::remove(marker);
}

TEST(PluginHostTest, StagesCrossElementByElement) {
  NullHost host;
  NodeConfig cfg = config_with("enabled = [\"good_plugin\"]\n[plugins.good_plugin]\norder = 7\n");
  PluginHost plugins(cfg, host);
  plugins.open_and_configure(false);
  const auto& p = find(plugins, "good_plugin");
  ASSERT_EQ(p.state, PluginState::configured) << p.error;
  std::vector<StageSpec> stages = p.plugin.stages();
  ASSERT_EQ(stages.size(), 1u);
  EXPECT_EQ(stages[0].name, "good");
  EXPECT_EQ(stages[0].program, "good_prog");
  EXPECT_EQ(stages[0].order, 7);
}

namespace {
// Captures what spdlog's default logger says while it lives.
struct CapturedLog {
  std::shared_ptr<spdlog::sinks::ringbuffer_sink_mt> sink =
      std::make_shared<spdlog::sinks::ringbuffer_sink_mt>(64);
  std::shared_ptr<spdlog::logger> previous = spdlog::default_logger();
  CapturedLog() { spdlog::set_default_logger(std::make_shared<spdlog::logger>("test", sink)); }
  ~CapturedLog() { spdlog::set_default_logger(previous); }
  std::string text() const {
    std::string out;
    for (const auto& line : sink->last_formatted()) out += line;
    return out;
  }
};
}  // namespace

// A plugin's timer runs on the host's loop; what it throws is logged naming
// the plugin; shutdown cancels it although the plugin still holds its handle.
TEST(PluginHostTest, APluginsTimerIsNamedWhenItFailsAndCancelledAtShutdown) {
  CapturedLog log;
  NodeConfig cfg = config_with("enabled = [\"timer_plugin\"]\n");
  NodeHost host(cfg);
  PluginHost plugins(cfg, host);
  plugins.open_and_configure(false);
  plugins.load_bpf();
  ASSERT_EQ(plugins.plugins().at(0).state, PluginState::loaded) << plugins.plugins()[0].error;
  EXPECT_EQ(host.events().size(), 1u);
  EXPECT_EQ(host.events().fire_timers(), 1u);
  EXPECT_NE(log.text().find("plugin 'timer_plugin': its timer (every 3600000 ms) failed: the "
                            "fixture's timer failed; nothing to do"),
            std::string::npos)
      << log.text();
  EXPECT_EQ(host.events().fire_timers(), 1u) << "a failing callback keeps its subscription";
  plugins.shutdown(false);
  EXPECT_EQ(host.events().size(), 0u);
  EXPECT_EQ(host.events().fire_timers(), 0u);
}

TEST(PluginHostTest, APluginThatFailsToLoadLeavesNoTimerBehind) {
  NodeConfig cfg =
      config_with("enabled = [\"timer_plugin\"]\n[plugins.timer_plugin]\nfail_load = true\n");
  NodeHost host(cfg);
  PluginHost plugins(cfg, host);
  plugins.open_and_configure(false);
  plugins.load_bpf();
  ASSERT_EQ(plugins.plugins().at(0).state, PluginState::failed);
  EXPECT_NE(plugins.plugins()[0].error.find("the fixture's load failed"), std::string::npos)
      << plugins.plugins()[0].error;
  EXPECT_EQ(host.events().size(), 0u);
}
