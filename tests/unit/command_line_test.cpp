// Command lines of sluicectl commands (sluice/core/command_line.hpp): the
// declared options parsed into typed values, the errors naming the option
// and the command, `--help`; and a plugin command (crossing the plugin
// boundary) parsing exactly as a built-in one.
#include <gtest/gtest.h>

#include <algorithm>
#include <sstream>

#include "cli.hpp"
#include "plugin_commands.hpp"
#include "sluice/core/command_line.hpp"

using namespace sluice;

namespace {

CliCommand demo_command() {
  CliCommand command;
  command.path = {"demo", "show"};
  command.summary = "a command for the tests";
  command.description = "Shows what it was given.";
  command.options = {
      {"top", CliValueKind::unsigned_integer, "at most N", "20"},
      {"offset", CliValueKind::integer, "shift by N"},
      {"ratio,r", CliValueKind::number, "a fraction", "", "RATIO"},
      {"name,n", CliValueKind::text, "a name", "", "NAME"},
      {"verbose,v", CliValueKind::flag, "say more"},
      {"proto", CliValueKind::text, "a protocol", "", "proto", true, true},
      {"peer", CliValueKind::text, "another address", "", "ip", true, false},
  };
  command.run = [](const CliContext& context, const CliValues& values) {
    *context.out << "top=" << values.unsigned_integer("top") << "\n";
    return kCliOk;
  };
  return command;
}

std::string usage_error(const CliCommand& command, const std::vector<std::string>& args) {
  try {
    parse_cli_arguments(command, args);
  } catch (const CliUsageError& error) {
    return error.what();
  }
  return "(parsed)";
}

}  // namespace

TEST(CommandLine, ParsesTypedValuesAndDefaults) {
  CliValues values = parse_cli_arguments(
      demo_command(), {"tcp", "--offset", "-3", "-r", "0.25", "--name=web", "-v", "10.0.0.1"});
  EXPECT_EQ(values.unsigned_integer("top"), 20u);  // the default
  EXPECT_EQ(values.integer("offset"), -3);
  EXPECT_DOUBLE_EQ(values.number("ratio"), 0.25);
  EXPECT_EQ(values.text("name"), "web");
  EXPECT_TRUE(values.flag("verbose"));
  EXPECT_EQ(values.text("proto"), "tcp");
  EXPECT_EQ(values.text("peer"), "10.0.0.1");

  CliValues bare = parse_cli_arguments(demo_command(), {"udp", "--top", "5"});
  EXPECT_EQ(bare.unsigned_integer("top"), 5u);
  EXPECT_FALSE(bare.flag("verbose"));
  EXPECT_FALSE(bare.has("name"));
  EXPECT_FALSE(bare.has("peer"));
  EXPECT_EQ(bare.text_or("name", "-"), "-");
  EXPECT_THROW(bare.text("name"), std::logic_error);
  EXPECT_THROW(bare.text("top"), std::logic_error) << "read as another kind";
}

TEST(CommandLine, UnknownOptionNamesTheOptionAndTheCommand) {
  EXPECT_EQ(usage_error(demo_command(), {"tcp", "--bogus"}),
            "demo show: unrecognised option '--bogus'");
  EXPECT_EQ(usage_error(demo_command(), {"tcp", "-x"}), "demo show: unrecognised option '-x'");
  // No guessing: a prefix of an option is not the option.
  EXPECT_EQ(usage_error(demo_command(), {"tcp", "--verb"}),
            "demo show: unrecognised option '--verb'");
}

TEST(CommandLine, MissingValueNamesTheOption) {
  EXPECT_EQ(usage_error(demo_command(), {"tcp", "--top"}),
            "demo show: the required argument for option '--top' is missing");
  EXPECT_EQ(usage_error(demo_command(), {}),
            "demo show: argument <proto> is missing (usage: demo show [--top N] [--offset N] "
            "[--ratio RATIO] [--name NAME] [--verbose] <proto> [ip])");
}

TEST(CommandLine, WrongTypeNamesTheOptionAndWhatItWants) {
  EXPECT_EQ(usage_error(demo_command(), {"tcp", "--top", "many"}),
            "demo show: the argument ('many') for option '--top' is invalid: it wants a "
            "non-negative integer");
  EXPECT_EQ(usage_error(demo_command(), {"tcp", "--top", "-1"}),
            "demo show: the argument ('-1') for option '--top' is invalid: it wants a "
            "non-negative integer");
  EXPECT_EQ(usage_error(demo_command(), {"tcp", "--offset", "1.5"}),
            "demo show: the argument ('1.5') for option '--offset' is invalid: it wants an "
            "integer");
  EXPECT_EQ(usage_error(demo_command(), {"tcp", "--ratio", "half"}),
            "demo show: the argument ('half') for option '--ratio' is invalid: it wants a "
            "number");
  EXPECT_EQ(usage_error(demo_command(), {"tcp", "10.0.0.1", "10.0.0.2"}),
            "demo show: too many arguments (it takes at most 2; usage: demo show [--top N] "
            "[--offset N] [--ratio RATIO] [--name NAME] [--verbose] <proto> [ip])");
}

TEST(CommandLine, HelpListsArgumentsAndOptionsWithoutRunning) {
  CliCommand command = demo_command();
  bool ran = false;
  command.run = [&](const CliContext&, const CliValues&) {
    ran = true;
    return kCliOk;
  };
  std::ostringstream out, err;
  CliContext context;
  context.out = &out;
  context.err = &err;
  EXPECT_EQ(run_cli_command(command, {"--help"}, context), kCliOk);
  EXPECT_FALSE(ran);
  std::string help = out.str();
  EXPECT_EQ(help.rfind("Usage: sluicectl [GLOBAL OPTIONS] demo show [--top N]", 0), 0u) << help;
  EXPECT_NE(help.find("Shows what it was given."), std::string::npos) << help;
  EXPECT_NE(help.find("Arguments:\n  proto  a protocol\n"), std::string::npos) << help;
  EXPECT_NE(help.find("--top N"), std::string::npos) << help;
  EXPECT_NE(help.find("at most N (default 20)"), std::string::npos) << help;
  EXPECT_NE(help.find("-r [ --ratio ] RATIO"), std::string::npos) << help;

  // A bad command line: the message, where to find help, exit 2, no run.
  std::ostringstream out2, err2;
  context.out = &out2;
  context.err = &err2;
  EXPECT_EQ(run_cli_command(command, {"tcp", "--bogus"}, context), kCliUsage);
  EXPECT_FALSE(ran);
  EXPECT_EQ(err2.str(),
            "sluicectl: demo show: unrecognised option '--bogus'\n"
            "Try 'sluicectl demo show --help'.\n");
}

TEST(CommandLine, BadDeclarationsAreNamed) {
  CliCommand command = demo_command();
  EXPECT_EQ(cli_declaration_problem(command), "");
  command.options.push_back({"top", CliValueKind::flag, "again"});
  EXPECT_EQ(cli_declaration_problem(command), "option 'top' is declared twice");
  command.options = {{"raw", CliValueKind::flag, "", "", "", true}};
  EXPECT_EQ(cli_declaration_problem(command),
            "positional argument 'raw' is a flag (give it a value kind)");
  command.options = {{"help", CliValueKind::flag, ""}};
  EXPECT_EQ(cli_declaration_problem(command), "option 'help' is sluicectl's own (--help, -h)");
  command.options = {{"--top", CliValueKind::text, ""}};
  EXPECT_NE(cli_declaration_problem(command), "");
}

namespace {

const std::string kFixtureDir = SLUICE_TEST_PLUGIN_DIR;

const CliCommand& command_at(const std::vector<CliCommand>& commands,
                             const std::vector<std::string>& path) {
  auto it = std::find_if(commands.begin(), commands.end(),
                         [&](const CliCommand& c) { return c.path == path; });
  if (it == commands.end()) throw std::runtime_error("no such command");
  return *it;
}

// The result of parsing, with the command's own path taken out of messages.
std::string parse_result(const CliCommand& command, const std::vector<std::string>& args) {
  std::string path = command.path[0] + " " + command.path[1];
  try {
    std::string out;
    CliValues values = parse_cli_arguments(command, args);
    for (const auto& [name, value] : values.entries()) {
      out += name + "=";
      if (const auto* b = std::get_if<bool>(&value)) out += *b ? "true" : "false";
      if (const auto* s = std::get_if<std::string>(&value)) out += "'" + *s + "'";
      out += " ";
    }
    return out;
  } catch (const CliUsageError& error) {
    std::string message = error.what();
    for (auto at = message.find(path); at != std::string::npos; at = message.find(path))
      message.replace(at, path.size(), "COMMAND");
    return message;
  }
}

}  // namespace

TEST(CommandLine, PluginCommandParsesAsTheBuiltInOneDeclaringTheSameOptions) {
  ctl::Context context;
  std::vector<CliCommand> builtins = ctl::builtin_commands(context);
  for (const auto& command : builtins)
    EXPECT_EQ(cli_declaration_problem(command), "") << command.path[0];
  const CliCommand& counters_dump = command_at(builtins, {"counters", "dump"});

  // The plugin's command as sluicectl gets it: loaded, configured, handed
  // over through the Sink and checked.
  NodeConfig config =
      parse_config("[plugins]\ndir = \"" + kFixtureDir + "\"\nenabled = [\"good_plugin\"]\n",
                   "node.toml");
  std::ostringstream warnings;
  ctl::PluginCommands plugins(config, builtins, warnings);
  EXPECT_EQ(warnings.str(), "");
  ASSERT_EQ(plugins.commands().size(), 1u) << warnings.str();
  const CliCommand& plugin_dump = plugins.commands()[0].command;
  EXPECT_EQ(cli_synopsis(plugin_dump), "good_plugin dump [--iface NAME] [--describe]");
  EXPECT_EQ(cli_synopsis(counters_dump), "counters dump [--iface NAME] [--describe]");

  const std::vector<std::vector<std::string>> lines = {
      {},          {"--iface", "cali1"}, {"-i", "cali1", "-d"}, {"--iface=cali1", "--describe"},
      {"--bogus"}, {"--iface"},          {"extra"},             {"-d", "-d"},
      {"--if", "x"}};
  for (const auto& args : lines) {
    std::string plugin = parse_result(plugin_dump, args), builtin = parse_result(counters_dump, args);
    EXPECT_EQ(plugin, builtin) << "args: " << (args.empty() ? "" : args[0]);
  }
  EXPECT_EQ(parse_result(plugin_dump, {"-i", "cali1", "-d"}), "iface='cali1' describe=true ");
  EXPECT_EQ(parse_result(plugin_dump, {"--bogus"}), "COMMAND: unrecognised option '--bogus'");
  EXPECT_EQ(cli_option_help(plugin_dump), cli_option_help(counters_dump));

  // And it runs with the values parsed on the host's side.
  std::ostringstream out, err;
  CliContext cli;
  cli.out = &out;
  cli.err = &err;
  EXPECT_EQ(run_cli_command(plugin_dump, {"-d", "--iface", "eth0"}, cli), kCliOk) << err.str();
  EXPECT_EQ(out.str(), "{\n  \"iface\": \"eth0\",\n  \"describe\": true\n}\n");
}

TEST(CommandLine, BuiltInSynopsesAreMadeFromTheirOptions) {
  ctl::Context context;
  std::vector<CliCommand> builtins = ctl::builtin_commands(context);
  EXPECT_EQ(cli_synopsis(command_at(builtins, {"counters", "flush"})),
            "counters flush [--iface NAME]");
  EXPECT_EQ(cli_synopsis(command_at(builtins, {"log-level"})), "log-level [off|info|debug]");
  EXPECT_EQ(cli_synopsis(command_at(builtins, {"monitor"})),
            "monitor [--count N] [--timeout SECONDS]");
  EXPECT_EQ(usage_error(command_at(builtins, {"monitor"}), {"--count", "ten"}),
            "monitor: the argument ('ten') for option '--count' is invalid: it wants a "
            "non-negative integer");
}
