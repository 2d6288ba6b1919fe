// sluicectl: the operator CLI of Sluice.
//
// Parsing happens in two passes so that global options may appear anywhere
// (`sluicectl counters dump -o json` as well as `sluicectl -o json counters
// dump`): the first pass takes the global options and the command words, the
// second parses what is left with the chosen command's own options.
#include <boost/program_options.hpp>
#include <bpf/libbpf.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <iostream>
#include <memory>
#include <optional>

#include "cli.hpp"
#include "sluice/core/command_line.hpp"
#include "plugin_commands.hpp"
#include "sluice/core/config.hpp"

using namespace sluice;
using namespace sluice::ctl;
namespace po = boost::program_options;

namespace {

constexpr const char* kDefaultConfig = "/etc/sluice/sluice.toml";

constexpr const char* kOverview =
    "sluicectl - inspect and steer the Sluice dataplane of this node\n"
    "\n"
    "Usage: sluicectl [GLOBAL OPTIONS] COMMAND [COMMAND OPTIONS]\n"
    "\n"
    "sluicectl reads Sluice's pinned BPF maps directly, under\n"
    "<bpf.root>/<bpf.instance>/maps/ as set in the node configuration, so it works\n"
    "while sluiced is stopped or restarting. It needs root (or CAP_BPF and access to\n"
    "bpffs). Run it in the network namespace sluiced runs in to see attached filters\n"
    "(e.g. nsenter --net=/run/netns/NAME sluicectl ...); `ip netns exec` remounts /sys\n"
    "and hides bpffs.\n";

constexpr const char* kFooter =
    "Exit status:\n"
    "  0  success\n"
    "  1  operational failure: nothing pinned, unknown interface, kernel error\n"
    "  2  bad command line or invalid configuration\n"
    "\n"
    "Run 'sluicectl COMMAND --help' for a command's options and examples.\n";

po::options_description global_options() {
  po::options_description options("Global options");
  options.add_options()("help,h", "show help for sluicectl or for the given command")(
      "config,c", po::value<std::string>()->value_name("PATH"),
      "node configuration of the sluiced to inspect (default /etc/sluice/sluice.toml); "
      "sluicectl takes [bpf] root and instance from it")(
      "output,o", po::value<std::string>()->value_name("FORMAT"),
      "'table' (default: aligned columns for people) or 'json' (stable, for scripts)");
  return options;
}

std::string path_text(const std::vector<std::string>& path) { return join(path, " "); }

bool starts_with(const std::vector<std::string>& path, const std::vector<std::string>& prefix) {
  return prefix.size() <= path.size() && std::equal(prefix.begin(), prefix.end(), path.begin());
}

void print_command_list(std::ostream& out, const std::vector<CliCommand>& commands,
                        const std::vector<std::string>& prefix) {
  out << "Commands:\n";
  Table table({{""}, {""}});
  for (const auto& spec : commands)
    if (starts_with(spec.path, prefix))
      table.add_row({"  " + cli_synopsis(spec), spec.summary});
  table.print(out, /*with_header=*/false);
}

// "Plugin commands (from <plugin>):" sections, one per plugin, for the
// commands under `prefix`.
void print_plugin_command_lists(std::ostream& out, const PluginCommands* plugins,
                                const std::vector<std::string>& prefix) {
  if (!plugins) return;
  std::vector<std::string> order;
  for (const auto& entry : plugins->commands())
    if (starts_with(entry.command.path, prefix) &&
        std::find(order.begin(), order.end(), entry.plugin) == order.end())
      order.push_back(entry.plugin);
  for (const auto& plugin : order) {
    out << "\nPlugin commands (from " << plugin << "):\n";
    Table table({{""}, {""}});
    for (const auto& entry : plugins->commands())
      if (entry.plugin == plugin && starts_with(entry.command.path, prefix))
        table.add_row({"  " + cli_synopsis(entry.command), entry.command.summary});
    table.print(out, /*with_header=*/false);
  }
}

void print_overview(std::ostream& out, const std::vector<CliCommand>& commands,
                    const PluginCommands* plugins) {
  out << kOverview << "\n";
  print_command_list(out, commands, {});
  print_plugin_command_lists(out, plugins, {});
  out << "\n" << global_options() << "\n" << kFooter;
}

void print_group_help(std::ostream& out, const std::vector<CliCommand>& commands,
                      const std::vector<std::string>& group) {
  out << "Usage: sluicectl [GLOBAL OPTIONS] " << path_text(group) << " SUBCOMMAND\n\n";
  print_command_list(out, commands, group);
  out << "\n" << global_options() << "\nRun 'sluicectl " << path_text(group)
      << " SUBCOMMAND --help' for details.\n";
}

// `sluicectl <command> --help`, for built-in and plugin commands alike;
// `plugin` names the plugin a command comes from.
void print_command_help(std::ostream& out, const CliCommand& command,
                        const std::string& plugin = {}) {
  out << cli_command_help(command);
  if (!plugin.empty()) out << "\n(a command of the plugin '" << plugin << "')\n";
  out << "\n" << global_options() << "\n" << kFooter;
}

// The words pass 1 did not take, minus the command's path: its own.
std::vector<std::string> own_arguments(const po::parsed_options& parsed, const CliCommand& command) {
  std::vector<std::string> args = po::collect_unrecognized(parsed.options, po::include_positional);
  for (const auto& word : command.path) {
    auto it = std::find(args.begin(), args.end(), word);
    if (it != args.end()) args.erase(it);
  }
  return args;
}

// The command whose path is the longest prefix of `words`.
const CliCommand* find_command(const std::vector<CliCommand>& commands,
                                const std::vector<std::string>& words) {
  const CliCommand* best = nullptr;
  for (const auto& spec : commands)
    if (starts_with(words, spec.path) && (!best || spec.path.size() > best->path.size()))
      best = &spec;
  return best;
}

// True when `words` names a group of commands (e.g. "counters").
bool is_group(const std::vector<CliCommand>& commands, const std::vector<std::string>& words) {
  if (words.empty()) return false;
  return std::any_of(commands.begin(), commands.end(), [&](const CliCommand& spec) {
    return spec.path.size() > words.size() && starts_with(spec.path, words);
  });
}

int usage_error(const std::string& message, const std::string& help_hint) {
  std::cerr << "sluicectl: " << message << "\nTry 'sluicectl " << help_hint << "--help'.\n";
  return kExitUsage;
}

// The plugin command whose path is the longest prefix of `words`.
const PluginCommand* find_plugin_command(const PluginCommands& plugins,
                                         const std::vector<std::string>& words) {
  const PluginCommand* best = nullptr;
  for (const auto& entry : plugins.commands())
    if (starts_with(words, entry.command.path) &&
        (!best || entry.command.path.size() > best->command.path.size()))
      best = &entry;
  return best;
}

bool is_plugin_group(const PluginCommands& plugins, const std::vector<std::string>& words) {
  return std::any_of(plugins.commands().begin(), plugins.commands().end(),
                     [&](const PluginCommand& entry) {
                       return entry.command.path.size() > words.size() &&
                              starts_with(entry.command.path, words);
                     });
}

struct GlobalSettings {
  std::string config_path;
  bool config_given = false;
  OutputFormat format = OutputFormat::table;
};

// Loads the plugins for the overview (`sluicectl --help`); quiet when the
// configuration cannot be read: the built-in commands are listed anyway.
std::unique_ptr<PluginCommands> plugins_for_overview(const GlobalSettings& settings,
                                                     const std::vector<CliCommand>& builtins,
                                                     NodeConfig& config) {
  try {
    config = load_config(settings.config_path);
    return std::make_unique<PluginCommands>(config, builtins, std::cerr);
  } catch (const std::exception&) {
    return nullptr;
  }
}

// Everything that is not a built-in command: a plugin's command, its help,
// the help of a plugin's group, or an unknown command.
int run_plugin_command(const GlobalSettings& settings, const std::vector<CliCommand>& builtins,
                       const std::vector<std::string>& words, bool help,
                       const po::parsed_options& parsed) {
  NodeConfig config;
  try {
    config = load_config(settings.config_path);
  } catch (const ConfigError& error) {
    std::cerr << "sluicectl: '" << words.front()
              << "' is not a built-in command, and plugin commands are unavailable: invalid "
                 "configuration: "
              << format_config_error(error) << "\n";
    return kExitUsage;
  }
  PluginCommands plugins(config, builtins, std::cerr);

  const PluginCommand* found = find_plugin_command(plugins, words);
  if (!found) {
    if (is_plugin_group(plugins, words)) {
      std::ostream& out = help ? std::cout : std::cerr;
      if (!help) out << "sluicectl: '" << path_text(words) << "' needs a subcommand\n\n";
      out << "Usage: sluicectl [GLOBAL OPTIONS] " << path_text(words) << " SUBCOMMAND\n";
      print_plugin_command_lists(out, &plugins, words);
      out << "\n" << global_options() << "\nRun 'sluicectl " << path_text(words)
          << " SUBCOMMAND --help' for details.\n";
      return help ? kExitOk : kExitUsage;
    }
    // Plugin commands conventionally start with the plugin's name.
    if (const LoadedPlugin* failed = plugins.failed_plugin(words.front())) {
      std::cerr << "sluicectl: plugin '" << failed->name
                << "' could not be loaded, so its commands are unavailable: " << failed->error
                << "\n";
      return kExitFailure;
    }
    std::vector<std::string> group = words;
    while (!group.empty() && !is_plugin_group(plugins, group)) group.pop_back();
    std::cerr << "sluicectl: unknown command '" << path_text(words) << "'\n";
    for (const LoadedPlugin* failed : plugins.failed())
      std::cerr << "  (plugin '" << failed->name
                << "' could not be loaded; it may provide it: " << failed->error << ")\n";
    std::cerr << "Try 'sluicectl " << (group.empty() ? "" : path_text(group) + " ")
              << "--help'.\n";
    return kExitUsage;
  }

  const CliCommand& command = found->command;
  const std::string name = path_text(command.path);
  if (help) {
    print_command_help(std::cout, command, found->plugin);
    return kExitOk;
  }
  CliContext context;
  context.config_path = config.file;
  context.pin_dir = config.pin_dir();
  context.map_pin_dir = config.map_pin_dir();
  context.format = settings.format;
  context.out = &std::cout;
  context.err = &std::cerr;
  try {
    int rc = run_cli_command(command, own_arguments(parsed, command), context);
    std::cout.flush();
    return rc;
  } catch (const std::exception& error) {
    std::cout.flush();
    std::cerr << "sluicectl: " << name << " (plugin '" << found->plugin
              << "'): " << error.what() << "\n";
  } catch (...) {
    std::cout.flush();
    std::cerr << "sluicectl: " << name << " (plugin '" << found->plugin
              << "'): failed with an unknown exception\n";
  }
  return kExitFailure;
}

int run(int argc, char** argv) {
  Context context;
  const auto commands = builtin_commands(context);
  const auto style = po::command_line_style::default_style &
                     ~po::command_line_style::allow_guessing;

  // Pass 1: global options and the command words.
  po::options_description first_pass = global_options();
  first_pass.add_options()("words", po::value<std::vector<std::string>>(), "");
  po::positional_options_description words_position;
  words_position.add("words", -1);
  po::variables_map globals;
  po::parsed_options parsed(nullptr);
  try {
    parsed = po::command_line_parser(argc, argv)
                 .options(first_pass)
                 .positional(words_position)
                 .style(style)
                 .allow_unregistered()
                 .run();
    po::store(parsed, globals);
    po::notify(globals);
  } catch (const po::error& error) {
    return usage_error(error.what(), "");
  }
  std::vector<std::string> words;
  if (globals.count("words")) words = globals["words"].as<std::vector<std::string>>();
  bool help = globals.count("help") != 0;

  GlobalSettings settings;
  settings.config_given = globals.count("config") != 0;
  settings.config_path =
      settings.config_given ? globals["config"].as<std::string>() : kDefaultConfig;
  const std::string output =
      globals.count("output") ? globals["output"].as<std::string>() : "table";
  if (output == "json")
    settings.format = OutputFormat::json;
  else if (output != "table")
    return usage_error("unknown output format '" + output + "' (use 'table' or 'json')", "");

  const CliCommand* spec = find_command(commands, words);
  if (!spec) {
    if (words.empty()) {
      NodeConfig config;
      auto plugins = plugins_for_overview(settings, commands, config);
      print_overview(help ? std::cout : std::cerr, commands, plugins.get());
      return help ? kExitOk : kExitUsage;
    }
    // The longest prefix that names a group decides which help to point to.
    std::vector<std::string> group;
    for (const auto& word : words) {
      group.push_back(word);
      if (!is_group(commands, group)) {
        group.pop_back();
        break;
      }
    }
    if (!group.empty() && (help || group.size() == words.size())) {
      if (!help) std::cerr << "sluicectl: '" << path_text(group) << "' needs a subcommand\n\n";
      print_group_help(help ? std::cout : std::cerr, commands, group);
      return help ? kExitOk : kExitUsage;
    }
    if (group.empty()) return run_plugin_command(settings, commands, words, help, parsed);
    std::string unknown = words[group.size()];
    return usage_error("unknown command '" + path_text(group) + (group.empty() ? "" : " ") +
                           unknown + "'",
                       group.empty() ? "" : path_text(group) + " ");
  }

  if (help) {
    print_command_help(std::cout, *spec);
    return kExitOk;
  }
  context.format = settings.format;
  try {
    context.set_config(load_config(settings.config_path));
  } catch (const ConfigError& error) {
    // `version` must answer even on a host without a configuration (a
    // command that needs it fails on Context::config()); an explicitly named
    // file that is broken is an error for every command.
    if (settings.config_given) {
      std::cerr << "sluicectl: invalid configuration: " << format_config_error(error) << "\n";
      return kExitUsage;
    }
    context.set_config_error(format_config_error(error));
  }
  // Pass 2, as for plugin commands: the command's own options, from what
  // pass 1 did not recognise minus the command words themselves.
  CliContext cli;
  cli.config_path = settings.config_path;
  if (context.config_loaded()) {
    cli.pin_dir = context.config().pin_dir();
    cli.map_pin_dir = context.config().map_pin_dir();
  }
  cli.format = settings.format;
  cli.out = &std::cout;
  cli.err = &std::cerr;
  return run_cli_command(*spec, own_arguments(parsed, *spec), cli);
}

}  // namespace

int main(int argc, char** argv) {
  // libbpf's own messages (e.g. about absent qdiscs while probing filters)
  // would be noise: every failure sluicectl reports carries its own context.
  libbpf_set_print(nullptr);
  // The core library reports what it did itself (e.g. mounting tracefs)
  // through spdlog; make those lines look like sluicectl's own.
  spdlog::set_pattern("sluicectl: %v");
  spdlog::set_level(spdlog::level::info);
  try {
    return run(argc, argv);
  } catch (const CtlError& error) {
    std::cerr << "sluicectl: " << error.what() << "\n";
    return error.exit_code;
  } catch (const std::exception& error) {
    std::cerr << "sluicectl: " << error.what() << "\n";
    return kExitFailure;
  }
}
