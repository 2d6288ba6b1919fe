#include "sluice/core/plugin_handle.hpp"

#include "sluice/core/struct_as_built.hpp"

namespace sluice {

namespace {

// Collects what a plugin hands over, each element read at the size the
// plugin built it.
template <class T>
class CollectingSink final : public Sink<T> {
 public:
  explicit CollectingSink(std::string what) : what_(std::move(what)) {}
  std::vector<T> take() { return std::move(items_); }

 private:
  void add_as_built(const T& item, std::size_t size_as_built) override {
    items_.push_back(read_as_built(item, size_as_built, what_));
  }

  std::string what_;
  std::vector<T> items_;
};

}  // namespace

PluginHandle::PluginHandle(std::unique_ptr<Plugin> plugin, std::string name,
                           std::uint16_t minor_as_built)
    : plugin_(std::move(plugin)), name_(std::move(name)), minor_as_built_(minor_as_built) {}

std::vector<StageSpec> PluginHandle::stages() const {
  CollectingSink<StageSpec> sink("plugin '" + name_ + "': a StageSpec");
  plugin_->declare_stages(sink);
  return sink.take();
}

std::vector<CliCommand> PluginHandle::cli_commands() const {
  CollectingSink<CliCommand> sink("plugin '" + name_ + "': a CliCommand");
  plugin_->declare_cli_commands(sink);
  return sink.take();
}

}  // namespace sluice
