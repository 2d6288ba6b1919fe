// A plugin that subscribes a timer in load() and keeps its handle: its
// callback throws; with fail_load = true, load() throws after subscribing.
#include <stdexcept>

#include <sluice/config.hpp>
#include <sluice/plugin.hpp>

namespace {
class TimerPlugin final : public sluice::Plugin {
 public:
  std::string description() const override { return "test fixture: a timer"; }
  void configure(const sluice::ConfigSource& source) override {
    sluice::config::PluginTable table(source);
    table.table().expect_only({"fail_load"});
    fail_load_ = table.table().get_bool("fail_load", false);
  }
  std::vector<sluice::StageSpec> stages() const override { return {}; }
  void load(sluice::Host& host) override {
    timer_ = host.every(std::chrono::hours(1), [] {
      throw sluice::Error("the fixture's timer failed", "nothing to do");
    });
    if (fail_load_) throw sluice::Error("the fixture's load failed");
  }
  int stage_fd(std::string_view) const override { return -1; }

 private:
  bool fail_load_ = false;
  sluice::Subscription timer_;  // kept past shutdown on purpose
};
}  // namespace

SLUICE_PLUGIN(TimerPlugin, "timer_plugin", "1.0.0")
