// Rejects any configuration key, to test that the error names file:line.
#include <sluice/config.hpp>
#include <sluice/plugin.hpp>

namespace {
class FailingConfigPlugin final : public sluice::Plugin {
 public:
  std::string description() const override { return "test fixture"; }
  std::vector<std::string> requires_plugins() const override { return {"good_plugin"}; }
  void configure(const sluice::ConfigSource& source) override {
    sluice::config::PluginTable table(source);
    table.table().expect_only({"limit"});
    table.table().get_int("limit", 1, 1, 100);
  }
  std::vector<sluice::StageSpec> stages() const override {
    return {{"strict", "strict_prog", sluice::role_bit(SL_ROLE_WORKLOAD), sluice::kBothHooks, 50}};
  }
  void load(sluice::Host&) override {}
  int stage_fd(std::string_view) const override { return -1; }
};
}  // namespace

SLUICE_PLUGIN(FailingConfigPlugin, "failing_config_plugin", "0.0.1")
