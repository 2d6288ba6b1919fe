// A minimal well-formed plugin: one stage, no BPF (load() does nothing).
#include <sluice/config.hpp>
#include <sluice/plugin.hpp>

namespace {
class GoodPlugin final : public sluice::Plugin {
 public:
  std::string description() const override { return "test fixture"; }
  void configure(const sluice::ConfigSource& source) override {
    sluice::config::PluginTable table(source);
    table.table().expect_only({"order"});
    order_ = static_cast<int>(table.table().get_int("order", 500, 0, 10000));
  }
  std::vector<sluice::StageSpec> stages() const override {
    return {{"good", "good_prog", sluice::kAllRoles, sluice::kBothHooks, order_}};
  }
  void load(sluice::Host&) override {}
  int stage_fd(std::string_view) const override { return -1; }

 private:
  int order_ = 500;
};
}  // namespace

SLUICE_PLUGIN(GoodPlugin, "good_plugin", "1.2.3")
