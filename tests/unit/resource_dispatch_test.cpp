// A change of the state directory is applied all or nothing: every plugin
// that consumes one of its kinds prepares (validates) it before any of them
// commits, and one refusal discards every prepared change.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "sluice/core/state_dir.hpp"

using namespace sluice;
namespace fs = std::filesystem;

namespace {

// What a consumer did with the changes it was handed.
struct Journal {
  int prepared = 0, committed = 0, discarded = 0, reconciled = 0;
  std::vector<std::string> applied_texts;
  std::vector<std::string> applied_removals;  // file names
};

// Prepares a change (refusing files that hold `refuse_marker`) and applies
// it only when the host commits.
class PreparingPlugin final : public Plugin {
 public:
  PreparingPlugin(Journal& journal, std::string refuse_marker)
      : journal_(journal), refuse_marker_(std::move(refuse_marker)) {}
  std::string description() const override { return "prepares resource changes"; }
  void configure(const ConfigSource&) override {}
  std::vector<StageSpec> stages() const override { return {}; }
  void load(Host&) override {}
  int stage_fd(std::string_view) const override { return -1; }
  std::vector<std::string> resource_kinds() const override { return {"endpoint"}; }
  void reconcile(const ResourceChange&) override { ++journal_.reconciled; }

  std::unique_ptr<PreparedChange> prepare(const ResourceChange& change) override {
    std::vector<std::string> texts;
    for (const auto& file : change.upserted) {
      if (file.text.find(refuse_marker_) != std::string::npos)
        throw ConfigError(file.path, 3, 1, "endpoint[0].ips", "refused by " + refuse_marker_);
      texts.push_back(file.text);
    }
    ++journal_.prepared;
    std::vector<std::string> removed;
    for (const auto& path : change.removed) removed.push_back(fs::path(path).filename().string());
    return std::make_unique<Prepared>(journal_, std::move(texts), std::move(removed));
  }

 private:
  class Prepared final : public PreparedChange {
   public:
    Prepared(Journal& journal, std::vector<std::string> texts, std::vector<std::string> removed)
        : journal_(journal), texts_(std::move(texts)), removed_(std::move(removed)) {}
    ~Prepared() override {
      if (!committed_) ++journal_.discarded;
    }
    void commit() override {
      committed_ = true;
      ++journal_.committed;
      for (auto& t : texts_) journal_.applied_texts.push_back(std::move(t));
      for (auto& r : removed_) journal_.applied_removals.push_back(std::move(r));
    }

   private:
    Journal& journal_;
    std::vector<std::string> texts_, removed_;
    bool committed_ = false;
  };
  Journal& journal_;
  std::string refuse_marker_;
};

// A plugin that only reconciles (does not override prepare()).
class ReconcilingPlugin final : public Plugin {
 public:
  explicit ReconcilingPlugin(Journal& journal) : journal_(journal) {}
  std::string description() const override { return "reconciles"; }
  void configure(const ConfigSource&) override {}
  std::vector<StageSpec> stages() const override { return {}; }
  void load(Host&) override {}
  int stage_fd(std::string_view) const override { return -1; }
  std::vector<std::string> resource_kinds() const override { return {"endpoint"}; }
  void reconcile(const ResourceChange&) override { ++journal_.reconciled; }

 private:
  Journal& journal_;
};

class ResourceDispatch : public ::testing::Test {
 protected:
  void SetUp() override {
    dir = fs::temp_directory_path() / ("sluice-dispatch-" + std::to_string(::getpid()));
    fs::remove_all(dir);
    fs::create_directories(dir);
  }
  void TearDown() override { fs::remove_all(dir); }
  void add(std::string name, std::unique_ptr<Plugin> plugin) {
    auto& entry = plugins.emplace_back();
    entry.name = std::move(name);
    entry.state = PluginState::loaded;
    entry.plugin = PluginHandle(std::move(plugin), entry.name, kPluginAbiMinor);
  }
  void write(const std::string& name, const std::string& text) {
    std::ofstream(dir / name) << text;
  }
  std::string path(const std::string& name) const { return (dir / name).string(); }

  fs::path dir;
  std::vector<LoadedPlugin> plugins;
  Journal nat, policy, legacy;
};

const char* kGood = "[[endpoint]]\nname = \"pod\"\nips = [\"10.65.0.2\"]\n";

TEST_F(ResourceDispatch, EveryConsumerCommitsAValidChange) {
  add("nat", std::make_unique<PreparingPlugin>(nat, "nat-refuses"));
  add("policy", std::make_unique<PreparingPlugin>(policy, "policy-refuses"));
  write("a.toml", kGood);
  StateDirectory state(dir.string());
  ResourceRouter router(plugins);
  router.load_all(state);
  EXPECT_EQ(nat.committed, 1);
  EXPECT_EQ(policy.committed, 1);
  EXPECT_EQ(nat.reconciled + policy.reconciled, 0) << "prepared changes are not reconciled";
  ASSERT_EQ(policy.applied_texts.size(), 1u);
  EXPECT_EQ(policy.applied_texts[0], kGood) << "a later consumer sees the same text";
}

TEST_F(ResourceDispatch, OneRefusalAndNoConsumerApplies) {
  add("nat", std::make_unique<PreparingPlugin>(nat, "nat-refuses"));
  add("policy", std::make_unique<PreparingPlugin>(policy, "policy-refuses"));
  add("legacy", std::make_unique<ReconcilingPlugin>(legacy));
  write("a.toml", kGood);
  StateDirectory state(dir.string());
  ResourceRouter router(plugins);
  router.load_all(state);
  ASSERT_EQ(nat.committed, 1);
  ASSERT_EQ(legacy.reconciled, 1);

  // The second consumer refuses: the first, which accepted, applies nothing.
  write("a.toml", std::string(kGood) + "# policy-refuses\n");
  router.apply({path("a.toml")});
  EXPECT_EQ(nat.prepared, 2);
  EXPECT_EQ(nat.committed, 1) << "nat applied a change policy refused";
  EXPECT_EQ(nat.discarded, 1);
  EXPECT_EQ(policy.committed, 1);
  EXPECT_EQ(legacy.reconciled, 1) << "a reconcile-only consumer got a refused change";

  // The first refuses: the second is not applied either.
  write("a.toml", std::string(kGood) + "# nat-refuses\n");
  router.apply({path("a.toml")});
  EXPECT_EQ(policy.committed, 1);
  EXPECT_EQ(legacy.reconciled, 1);

  // Fixed: both apply it, and the change still covers the file.
  write("a.toml", std::string(kGood) + "# fixed\n");
  router.apply({path("a.toml")});
  EXPECT_EQ(nat.committed, 2);
  EXPECT_EQ(policy.committed, 2);
  EXPECT_EQ(legacy.reconciled, 2);
  EXPECT_EQ(nat.applied_texts.back(), std::string(kGood) + "# fixed\n");
}

TEST_F(ResourceDispatch, RefusedRemovalKeepsTheFileForEveryConsumer) {
  add("nat", std::make_unique<PreparingPlugin>(nat, "nat-refuses"));
  add("policy", std::make_unique<PreparingPlugin>(policy, "policy-refuses"));
  write("a.toml", kGood);
  write("b.toml", kGood);
  StateDirectory state(dir.string());
  ResourceRouter router(plugins);
  router.load_all(state);
  // One change: a.toml removed, b.toml refused by policy. Nothing applies.
  fs::remove(dir / "a.toml");
  write("b.toml", std::string(kGood) + "# policy-refuses\n");
  router.apply({path("a.toml"), path("b.toml")});
  EXPECT_EQ(nat.committed, 1);
  // The next change hands the removal over again, with the fixed file.
  write("b.toml", std::string(kGood) + "# fixed\n");
  router.apply({path("b.toml")});
  EXPECT_EQ(nat.committed, 2);
  EXPECT_EQ(policy.committed, 2);
  EXPECT_EQ(nat.applied_removals, std::vector<std::string>{"a.toml"});
  EXPECT_EQ(policy.applied_removals, std::vector<std::string>{"a.toml"});
}

}  // namespace
