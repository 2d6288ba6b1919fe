#include "sluice/core/command_line.hpp"

#include <boost/program_options.hpp>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <ostream>
#include <sstream>

#include <sluice/output.hpp>

namespace sluice {

namespace po = boost::program_options;

namespace {

std::string long_name(const CliOption& option) {
  return option.name.substr(0, option.name.find(','));
}

std::string path_text(const CliCommand& command) {
  std::string out;
  for (const auto& word : command.path) out += (out.empty() ? "" : " ") + word;
  return out;
}

std::string value_name(const CliOption& option) {
  if (!option.value_name.empty()) return option.value_name;
  if (option.positional) return long_name(option);
  switch (option.kind) {
    case CliValueKind::integer:
    case CliValueKind::unsigned_integer: return "N";
    case CliValueKind::number: return "NUMBER";
    default: return "VALUE";
  }
}

const char* kind_text(CliValueKind kind) {
  switch (kind) {
    case CliValueKind::integer: return "an integer";
    case CliValueKind::unsigned_integer: return "a non-negative integer";
    case CliValueKind::number: return "a number";
    default: return "a value";
  }
}

// How an error names the option: '--top', or <ip> for a positional argument.
std::string label(const CliOption& option) {
  return option.positional ? "<" + value_name(option) + ">" : "'--" + long_name(option) + "'";
}

template <class T>
bool parse_integer(const std::string& text, T& out) {
  if (text.empty() || (std::is_unsigned_v<T> && text[0] == '-')) return false;
  const char* begin = text.data() + (text[0] == '+' ? 1 : 0);
  auto [end, ec] = std::from_chars(begin, text.data() + text.size(), out);
  return ec == std::errc() && end == text.data() + text.size();
}

CliValue typed_value(const CliCommand& command, const CliOption& option, const std::string& text) {
  bool ok = true;
  CliValue value;
  switch (option.kind) {
    case CliValueKind::flag:
    case CliValueKind::text: return text;
    case CliValueKind::integer: {
      std::int64_t n = 0;
      ok = parse_integer(text, n);
      value = n;
      break;
    }
    case CliValueKind::unsigned_integer: {
      std::uint64_t n = 0;
      ok = parse_integer(text, n);
      value = n;
      break;
    }
    case CliValueKind::number: {
      char* end = nullptr;
      double d = text.empty() ? 0 : std::strtod(text.c_str(), &end);
      ok = !text.empty() && end == text.c_str() + text.size() && std::isfinite(d);
      value = d;
      break;
    }
  }
  if (!ok)
    throw CliUsageError(path_text(command) + ": the argument ('" + text + "') for " +
                        (option.positional ? "" : "option ") + label(option) +
                        " is invalid: it wants " + kind_text(option.kind));
  return value;
}

}  // namespace

std::string cli_declaration_problem(const CliCommand& command) {
  std::vector<std::string> seen;
  bool optional_positional = false;
  for (const auto& option : command.options) {
    std::string name = long_name(option);
    if (name.empty() || name[0] == '-')
      return "an option has no name (write \"top\" or \"top,n\", without dashes)";
    if (name == "help" || option.name == "help,h" || option.name.ends_with(",h"))
      return "option '" + option.name + "' is sluicectl's own (--help, -h)";
    if (std::find(seen.begin(), seen.end(), name) != seen.end())
      return "option '" + name + "' is declared twice";
    seen.push_back(name);
    if (option.positional && option.kind == CliValueKind::flag)
      return "positional argument '" + name + "' is a flag (give it a value kind)";
    if (option.positional && option.required && optional_positional)
      return "required positional argument '" + name + "' follows an optional one";
    if (option.positional && !option.required) optional_positional = true;
  }
  return {};
}

CliValues parse_cli_arguments(const CliCommand& command, const std::vector<std::string>& args) {
  po::options_description own;
  po::positional_options_description positional;
  std::size_t positional_count = 0;
  for (const auto& option : command.options) {
    if (option.kind == CliValueKind::flag) {
      own.add_options()(option.name.c_str(), po::bool_switch(), option.help.c_str());
    } else {
      auto* value = po::value<std::string>()->value_name(value_name(option));
      if (!option.default_value.empty()) value->default_value(option.default_value);
      own.add_options()(option.name.c_str(), value, option.help.c_str());
    }
    if (option.positional) {
      positional.add(long_name(option).c_str(), 1);
      ++positional_count;
    }
  }
  const auto style =
      po::command_line_style::default_style & ~po::command_line_style::allow_guessing;
  po::variables_map vm;
  try {
    po::store(po::command_line_parser(args).options(own).positional(positional).style(style).run(),
              vm);
  } catch (const po::too_many_positional_options_error&) {
    throw CliUsageError(path_text(command) + ": too many arguments (it takes " +
                        (positional_count ? "at most " + std::to_string(positional_count)
                                          : std::string("none")) +
                        "; usage: " + cli_synopsis(command) + ")");
  } catch (const po::error& error) {
    throw CliUsageError(path_text(command) + ": " + error.what());
  }

  CliValues values;
  for (const auto& option : command.options) {
    std::string name = long_name(option);
    if (option.kind == CliValueKind::flag) {
      values.set(name, vm.count(name) ? vm[name].as<bool>() : false);
      continue;
    }
    if (!vm.count(name)) {
      if (option.required)
        throw CliUsageError(path_text(command) + ": " + (option.positional ? "argument " : "option ") +
                            label(option) + " is missing (usage: " + cli_synopsis(command) + ")");
      continue;
    }
    values.set(name, typed_value(command, option, vm[name].as<std::string>()));
  }
  return values;
}

std::string cli_synopsis(const CliCommand& command) {
  std::string out = path_text(command);
  for (const auto& option : command.options) {
    if (option.positional) continue;
    std::string word = "--" + long_name(option);
    if (option.kind != CliValueKind::flag) word += " " + value_name(option);
    out += " " + (option.required ? word : "[" + word + "]");
  }
  for (const auto& option : command.options)
    if (option.positional)
      out += " " + (option.required ? "<" + value_name(option) + ">" : "[" + value_name(option) + "]");
  return out;
}

std::string cli_option_help(const CliCommand& command) {
  std::ostringstream out;
  output::Table arguments({{""}, {""}});
  po::options_description options("Options");
  for (const auto& option : command.options) {
    std::string help = option.help;
    if (!option.default_value.empty()) help += " (default " + option.default_value + ")";
    if (option.positional) {
      arguments.add_row({"  " + value_name(option), help});
    } else if (option.kind == CliValueKind::flag) {
      options.add_options()(option.name.c_str(), option.help.c_str());
    } else {
      options.add_options()(option.name.c_str(),
                            po::value<std::string>()->value_name(value_name(option)),
                            help.c_str());
    }
  }
  if (!arguments.empty()) {
    out << "Arguments:\n";
    arguments.print(out, /*with_header=*/false);
  }
  if (!options.options().empty()) out << (arguments.empty() ? "" : "\n") << options;
  return out.str();
}

std::string cli_command_help(const CliCommand& command) {
  std::string options = cli_option_help(command);
  return "Usage: sluicectl [GLOBAL OPTIONS] " + cli_synopsis(command) + "\n\n" +
         command.description + "\n" + (options.empty() ? "" : "\n" + options);
}

int run_cli_command(const CliCommand& command, const std::vector<std::string>& args,
                    const CliContext& context) {
  if (std::any_of(args.begin(), args.end(),
                  [](const std::string& a) { return a == "--help" || a == "-h"; })) {
    *context.out << cli_command_help(command);
    return kCliOk;
  }
  CliValues values;
  try {
    values = parse_cli_arguments(command, args);
  } catch (const CliUsageError& error) {
    *context.err << "sluicectl: " << error.what() << "\nTry 'sluicectl " << path_text(command)
                 << " --help'.\n";
    return kCliUsage;
  }
  return command.run(context, values);
}

}  // namespace sluice
