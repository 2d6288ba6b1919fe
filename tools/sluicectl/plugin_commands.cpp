#include "plugin_commands.hpp"

#include <algorithm>
#include <cctype>
#include <ostream>

#include "sluice/core/command_line.hpp"

namespace sluice::ctl {

namespace {

bool valid_word(const std::string& word) {
  if (word.empty() || word[0] == '-') return false;
  return std::all_of(word.begin(), word.end(), [](unsigned char c) {
    return std::isalnum(c) || c == '-' || c == '_' || c == '.';
  });
}

// The built-in command or group the path would hide, if any.
std::string shadowed_builtin(const std::vector<std::string>& path,
                             const std::vector<CliCommand>& builtins) {
  for (const auto& spec : builtins)
    if (!spec.path.empty() && spec.path.front() == path.front()) return join(spec.path, " ");
  return {};
}

}  // namespace

PluginCommands::PluginCommands(const NodeConfig& config,
                               const std::vector<CliCommand>& builtins, std::ostream& warnings)
    : host_(config), plugins_(config, host_) {
  plugins_.open_and_configure(false);
  for (auto& p : plugins_.plugins()) {
    if (p.state == PluginState::failed || !p.plugin) continue;
    std::vector<CliCommand> offered;
    try {
      offered = p.plugin.cli_commands();
    } catch (const std::exception& error) {
      p.state = PluginState::failed;
      p.error = "plugin '" + p.name + "': cli_commands() failed: " + error.what();
      continue;
    }
    for (auto& command : offered) {
      std::string text = join(command.path, " ");
      auto refuse = [&](const std::string& why) {
        warnings << "sluicectl: plugin '" << p.name << "' offers command '" << text
                 << "', which " << why << ": the command is ignored\n";
      };
      if (command.path.empty() ||
          !std::all_of(command.path.begin(), command.path.end(), valid_word)) {
        refuse("is not a valid command path (words of letters, digits, '-', '_', '.')");
        continue;
      }
      if (!command.run) {
        refuse("has nothing to run");
        continue;
      }
      if (std::string problem = cli_declaration_problem(command); !problem.empty()) {
        refuse("declares its options wrongly (" + problem + ")");
        continue;
      }
      if (std::string builtin = shadowed_builtin(command.path, builtins); !builtin.empty()) {
        refuse("would shadow sluicectl's built-in command '" + builtin + "'");
        continue;
      }
      auto clash = std::find_if(commands_.begin(), commands_.end(), [&](const PluginCommand& c) {
        const auto& a = c.command.path;
        const auto& b = command.path;
        auto n = std::min(a.size(), b.size());
        return std::equal(a.begin(), a.begin() + static_cast<std::ptrdiff_t>(n), b.begin());
      });
      if (clash != commands_.end()) {
        refuse("clashes with '" + join(clash->command.path, " ") + "' of plugin '" +
               clash->plugin + "'");
        continue;
      }
      commands_.push_back({p.name, std::move(command)});
    }
  }
}

PluginCommands::~PluginCommands() { commands_.clear(); }

std::vector<const LoadedPlugin*> PluginCommands::failed() const {
  std::vector<const LoadedPlugin*> out;
  for (const auto& p : plugins_.plugins())
    if (p.state == PluginState::failed) out.push_back(&p);
  return out;
}

const LoadedPlugin* PluginCommands::failed_plugin(const std::string& name) const {
  for (const auto* p : failed())
    if (p->name == name) return p;
  return nullptr;
}

}  // namespace sluice::ctl
