#include <gtest/gtest.h>
#include <poll.h>

#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "sluice/core/state_dir.hpp"

using namespace sluice;
namespace fs = std::filesystem;

namespace {

// Records what it is handed; refuses files that say `bad = true`.
class RecordingPlugin final : public Plugin {
 public:
  explicit RecordingPlugin(std::string kind = "service") : kind_(std::move(kind)) {}
  std::string description() const override { return "records resource changes"; }
  void configure(const ConfigSource&) override {}
  std::vector<StageSpec> stages() const override { return {}; }
  void load(Host&) override {}
  int stage_fd(std::string_view) const override { return -1; }
  std::vector<std::string> resource_kinds() const override { return {kind_}; }
  void reconcile(const ResourceChange& change) override {
    for (const auto& file : change.upserted)
      if (file.text.find("bad = true") != std::string::npos)
        throw ConfigError(file.path, 2, 1, "service[0].bad", "refused");
    changes.push_back(change);
  }
  std::vector<ResourceChange> changes;

 private:
  std::string kind_;
};

// What spdlog's default logger prints while it lives.
class LogCapture {
 public:
  LogCapture() : previous_(spdlog::default_logger()) {
    spdlog::set_default_logger(std::make_shared<spdlog::logger>(
        "capture", std::make_shared<spdlog::sinks::ostream_sink_mt>(text_)));
  }
  ~LogCapture() { spdlog::set_default_logger(previous_); }
  std::string text() const { return text_.str(); }

 private:
  std::shared_ptr<spdlog::logger> previous_;
  std::ostringstream text_;
};

std::vector<std::string> names(const std::vector<ResourceFile>& files) {
  std::vector<std::string> out;
  for (const auto& f : files) out.push_back(fs::path(f.path).filename().string());
  return out;
}
std::vector<std::string> names(const std::vector<std::string>& paths) {
  std::vector<std::string> out;
  for (const auto& p : paths) out.push_back(fs::path(p).filename().string());
  return out;
}

class Resources : public ::testing::Test {
 protected:
  void SetUp() override {
    dir = fs::temp_directory_path() / ("sluice-state-" + std::to_string(::getpid()));
    fs::remove_all(dir);
    fs::create_directories(dir);
    auto& entry = plugins.emplace_back();
    entry.name = "recorder";
    entry.state = PluginState::loaded;
    auto recorder = std::make_unique<RecordingPlugin>();
    recorders.push_back(recorder.get());
    entry.plugin = PluginHandle(std::move(recorder), entry.name, kPluginAbiMinor);
  }
  void TearDown() override { fs::remove_all(dir); }
  void write(const std::string& name, const std::string& text) {
    std::ofstream(dir / name) << text;
  }
  std::string path(const std::string& name) const { return (dir / name).string(); }
  RecordingPlugin& recorder() { return *recorders[0]; }
  RecordingPlugin& add_recorder(const std::string& kind) {
    auto& entry = plugins.emplace_back();
    entry.name = kind + "-recorder";
    entry.state = PluginState::loaded;
    auto recorder = std::make_unique<RecordingPlugin>(kind);
    recorders.push_back(recorder.get());
    entry.plugin = PluginHandle(std::move(recorder), entry.name, kPluginAbiMinor);
    return *recorders.back();
  }

  fs::path dir;
  std::vector<LoadedPlugin> plugins;
  std::vector<RecordingPlugin*> recorders;  // the objects plugins[i].plugin owns
};

}  // namespace

TEST_F(Resources, FirstLoadHandsOverTheFilesOfTheConsumedKinds) {
  write("a.toml", "[[service]]\nname = \"web\"\n");
  write("b.toml", "[[endpoint]]\nname = \"pod\"\n");
  write("c.toml", "[[service]\nname = ");  // syntax error: ignored, reported
  write(".hidden.toml", "[[service]]\n");
  write("notes.txt", "[[service]]\n");
  StateDirectory state(dir.string());
  ResourceRouter router(plugins);
  router.load_all(state);
  ASSERT_EQ(recorder().changes.size(), 1u);
  EXPECT_TRUE(recorder().changes[0].full);
  EXPECT_EQ(names(recorder().changes[0].upserted), std::vector<std::string>{"a.toml"});
}

TEST_F(Resources, ChangesAreIncrementalAndRejectedOnesChangeNothing) {
  write("a.toml", "[[service]]\nname = \"web\"\n");
  write("b.toml", "[[service]]\nname = \"db\"\n");
  StateDirectory state(dir.string());
  ResourceRouter router(plugins);
  router.load_all(state);

  write("a.toml", "[[service]]\nname = \"web2\"\n");
  router.apply({path("a.toml")});
  ASSERT_EQ(recorder().changes.size(), 2u);
  EXPECT_FALSE(recorder().changes[1].full);
  EXPECT_EQ(names(recorder().changes[1].upserted), std::vector<std::string>{"a.toml"});

  write("b.toml", "[[service]]\nbad = true\n");
  router.apply({path("b.toml")});
  EXPECT_EQ(recorder().changes.size(), 2u) << "a refused change is not recorded as applied";

  // A file that stops holding services is removed for this plugin.
  write("a.toml", "[[endpoint]]\nname = \"pod\"\n");
  router.apply({path("a.toml")});
  ASSERT_EQ(recorder().changes.size(), 3u);
  EXPECT_EQ(names(recorder().changes[2].removed), std::vector<std::string>{"a.toml"});

  fs::remove(dir / "b.toml");
  router.apply({path("b.toml")});
  ASSERT_EQ(recorder().changes.size(), 4u);
  EXPECT_EQ(names(recorder().changes[3].removed), std::vector<std::string>{"b.toml"});

  // A syntax error keeps the plugin's previous view: nothing is handed over.
  write("c.toml", "[[service]]\nname = \"x\"\n");
  router.apply({path("c.toml")});
  write("c.toml", "[[service]\n");
  router.apply({path("c.toml")});
  EXPECT_EQ(recorder().changes.size(), 5u);
}

// A file of many [[service]] blocks; block `odd` (if any) is replaced by `odd_text`.
std::string big_file(int services, int odd = -1, const std::string& odd_text = "") {
  std::string text = "# generated\n\n";
  for (int i = 0; i < services; ++i)
    text += i == odd ? odd_text
                     : "[[service]]\nname = \"s" + std::to_string(i) +
                           "\"\nports = [{ port = 80 }]\n\n";
  return text;
}

TEST_F(Resources, AChangedBlockOfABigFileDeliversTheFilesKinds) {
  RecordingPlugin& endpoints = add_recorder("endpoint");
  const std::string endpoint = "[[endpoint]]\nname = \"pod\"\nips = [\"10.0.0.1\"]\n\n";
  write("big.toml", big_file(40, 20, endpoint));
  StateDirectory state(dir.string());
  ResourceRouter router(plugins);
  router.load_all(state);
  ASSERT_EQ(recorder().changes.size(), 1u);
  ASSERT_EQ(endpoints.changes.size(), 1u);

  // The endpoint block becomes a policy: the file no longer holds endpoints.
  write("big.toml", big_file(40, 20, "[[policy]]\nname = \"deny\"\n\n"));
  router.apply({path("big.toml")});
  ASSERT_EQ(endpoints.changes.size(), 2u);
  EXPECT_EQ(names(endpoints.changes[1].removed), std::vector<std::string>{"big.toml"});
  ASSERT_EQ(recorder().changes.size(), 2u);
  ASSERT_EQ(recorder().changes[1].upserted.size(), 1u);
  EXPECT_EQ(recorder().changes[1].upserted[0].text, big_file(40, 20, "[[policy]]\nname = \"deny\"\n\n"))
      << "the plugin gets the whole text";

  // And back: only the endpoint plugin's view changes kind.
  write("big.toml", big_file(40, 20, endpoint));
  router.apply({path("big.toml")});
  ASSERT_EQ(endpoints.changes.size(), 3u);
  EXPECT_EQ(names(endpoints.changes[2].upserted), std::vector<std::string>{"big.toml"});

  // A header-like line inside a multi-line string is no block of its own
  // (though the text after it parses alone: the string's end is a comment
  // there): the file holds no endpoint, whatever the cut saw.
  const std::string tricky = "[[service]]\nname = \"s20\"\nports = [{ port = 80 }]\n"
                             "note = '''\n[[endpoint]]\nname = \"fake\"\n# '''\n\n";
  write("big.toml", big_file(40, 20, tricky));
  router.apply({path("big.toml")});
  ASSERT_EQ(endpoints.changes.size(), 4u);
  EXPECT_EQ(names(endpoints.changes[3].removed), std::vector<std::string>{"big.toml"});
  EXPECT_TRUE(endpoints.changes[3].upserted.empty());
}

TEST_F(Resources, ASyntaxErrorInAMiddleBlockIsReportedAtItsLineInTheFile) {
  write("big.toml", big_file(40));
  StateDirectory state(dir.string());
  ResourceRouter router(plugins);
  router.load_all(state);
  ASSERT_EQ(recorder().changes.size(), 1u);

  // Block 25 (header on line 2 + 4 * 25 + 1 = 103) loses a closing quote on
  // its name line: refused at that line of the file, nothing handed over.
  auto refused_at_line_104 = [&](const std::string& text) {
    write("big.toml", text);
    LogCapture log;
    router.apply({path("big.toml")});
    EXPECT_NE(log.text().find(path("big.toml") + ":104:"), std::string::npos) << log.text();
    EXPECT_EQ(recorder().changes.size(), 1u) << "a syntax error reached the plugin";
  };
  const std::string broken = "[[service]]\nname = \"s25\nports = [{ port = 80 }]\n\n";
  const std::string v2 = big_file(40, 25, broken);
  refused_at_line_104(v2);

  // Another block changes as well: the broken one still differs from the
  // last readable version, so it is parsed again and refused again.
  std::string v3 = v2;
  v3.replace(v3.find("name = \"s3\""), 11, "name = \"x3\"");
  refused_at_line_104(v3);

  // Fixed: handed over.
  v3.replace(v3.find("name = \"s25\n"), 11, "name = \"s25\"");
  write("big.toml", v3);
  router.apply({path("big.toml")});
  ASSERT_EQ(recorder().changes.size(), 2u);
  EXPECT_NE(recorder().changes[1].upserted.at(0).text.find("x3"), std::string::npos);
}

TEST_F(Resources, InotifyReportsWrittenRenamedAndDeletedFiles) {
  StateDirectory state(dir.string());
  ASSERT_GE(state.fd(), 0);
  write("x.toml", "[[service]]\n");
  write(".tmp", "[[service]]\n");
  fs::rename(dir / ".tmp", dir / "y.toml");
  fs::remove(dir / "x.toml");
  pollfd p{state.fd(), POLLIN, 0};
  ASSERT_EQ(poll(&p, 1, 1000), 1);
  std::set<std::string> changed = state.take_changed_paths();
  EXPECT_EQ(changed, (std::set<std::string>{path("x.toml"), path("y.toml")}));
}

TEST(ResourcesMissingDir, IsNotAnError) {
  StateDirectory state("/nonexistent/sluice-state");
  EXPECT_EQ(state.fd(), -1);
  EXPECT_TRUE(state.list().empty());
}

// A file rewritten in two pieces is handed over once, after the directory
// has been quiet; a directory that never goes quiet is still handed over.
TEST(SettlingChanges, WaitsUntilTheDirectoryIsQuiet) {
  using namespace std::chrono_literals;
  SettlingChanges changes(300ms, 3000ms);
  const auto t0 = SettlingChanges::Clock::time_point{} + 1h;
  EXPECT_EQ(changes.wait_ms(t0), -1);
  changes.add({"/s/a.toml"}, t0);
  EXPECT_EQ(changes.wait_ms(t0), 300);
  EXPECT_TRUE(changes.take_due(t0 + 200ms).empty());
  changes.add({"/s/a.toml", "/s/b.toml"}, t0 + 200ms);  // the second piece
  EXPECT_TRUE(changes.take_due(t0 + 400ms).empty());
  EXPECT_EQ(changes.wait_ms(t0 + 400ms), 100);
  EXPECT_EQ(changes.take_due(t0 + 500ms), (std::set<std::string>{"/s/a.toml", "/s/b.toml"}));
  EXPECT_EQ(changes.wait_ms(t0 + 500ms), -1);
  changes.add({}, t0 + 600ms);
  EXPECT_EQ(changes.wait_ms(t0 + 600ms), -1);
}

TEST(SettlingChanges, NeverWaitsLongerThanTheLongestWait) {
  using namespace std::chrono_literals;
  SettlingChanges changes(300ms, 1000ms);
  const auto t0 = SettlingChanges::Clock::time_point{} + 1h;
  for (auto t = 0ms; t < 1000ms; t += 100ms) {
    changes.add({"/s/busy.toml"}, t0 + t);
    EXPECT_TRUE(changes.take_due(t0 + t).empty()) << "at " << t.count() << " ms";
  }
  EXPECT_EQ(changes.wait_ms(t0 + 900ms), 100);
  EXPECT_EQ(changes.take_due(t0 + 1000ms), (std::set<std::string>{"/s/busy.toml"}));
}
