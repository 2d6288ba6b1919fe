#include <gtest/gtest.h>
#include <poll.h>

#include <filesystem>
#include <fstream>

#include "sluice/core/state_dir.hpp"

using namespace sluice;
namespace fs = std::filesystem;

namespace {

// Records what it is handed; refuses files that say `bad = true`.
class RecordingPlugin final : public Plugin {
 public:
  std::string description() const override { return "records resource changes"; }
  void configure(const ConfigSource&) override {}
  std::vector<StageSpec> stages() const override { return {}; }
  void load(Host&) override {}
  int stage_fd(std::string_view) const override { return -1; }
  std::vector<std::string> resource_kinds() const override { return {"service"}; }
  void reconcile(const ResourceChange& change) override {
    for (const auto& file : change.upserted)
      if (file.text.find("bad = true") != std::string::npos)
        throw ConfigError(file.path, 2, 1, "service[0].bad", "refused");
    changes.push_back(change);
  }
  std::vector<ResourceChange> changes;
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
    entry.plugin = std::make_unique<RecordingPlugin>();
  }
  void TearDown() override { fs::remove_all(dir); }
  void write(const std::string& name, const std::string& text) {
    std::ofstream(dir / name) << text;
  }
  std::string path(const std::string& name) const { return (dir / name).string(); }
  RecordingPlugin& recorder() { return static_cast<RecordingPlugin&>(*plugins[0].plugin); }

  fs::path dir;
  std::vector<LoadedPlugin> plugins;
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
