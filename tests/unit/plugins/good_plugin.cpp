// A minimal well-formed plugin: one stage, no BPF (load() does nothing).
#include <sluice/config.hpp>
#include <sluice/output.hpp>
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

  // Declares the options of sluicectl's `counters dump`, so tests can check
  // that a plugin command parses exactly as a built-in one. Prints its values.
  std::vector<sluice::CliCommand> cli_commands() const override {
    sluice::CliCommand dump;
    dump.path = {"good_plugin", "dump"};
    dump.summary = "test fixture command";
    dump.description = "Prints its parsed values as JSON.";
    dump.options = {{"iface,i", sluice::CliValueKind::text,
                     "only this interface (as named in `sluicectl ifstate dump`)", "", "NAME"},
                    {"describe,d", sluice::CliValueKind::flag,
                     "add a column with each reason's description"}};
    dump.run = [](const sluice::CliContext& context, const sluice::CliValues& values) {
      sluice::output::Json doc = sluice::output::Json::object();
      doc["iface"] = values.text_or("iface", "");
      doc["describe"] = values.flag("describe");
      sluice::output::print(*context.out, doc);
      return sluice::kCliOk;
    };
    return {dump};
  }

 private:
  int order_ = 500;
};
}  // namespace

SLUICE_PLUGIN(GoodPlugin, "good_plugin", "1.2.3")
