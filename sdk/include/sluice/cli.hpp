// sluicectl commands (plugin ABI 2.0): one type for sluicectl's built-in
// commands and for the subcommands plugins contribute.
//
// A command declares its options as plain data (CliOption); sluicectl turns
// them into Boost.Program_options, so every command gets `--help`, errors
// that name the option and the command, and typed values. The command's run
// function gets the parsed values (CliValues) and a CliContext.
//
// sluicectl loads the enabled plugins (ABI-checked, configured with the node
// configuration) and offers their commands beside its own, e.g.
// `sluicectl ratelimit dump --top 5`. A command reads Sluice's pinned maps,
// so it works while sluiced is down. Output goes through <sluice/output.hpp>
// so tables and JSON look like sluicectl's own.
#pragma once

#include <cstdint>
#include <functional>
#include <iosfwd>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace sluice {

enum class OutputFormat { table, json };

// Exit codes shared with sluicectl.
inline constexpr int kCliOk = 0;
inline constexpr int kCliFailure = 1;  // operational: nothing pinned, kernel error
inline constexpr int kCliUsage = 2;    // bad arguments

// What an option's value is; sluicectl checks it before the command runs.
enum class CliValueKind : std::uint32_t {
  flag,              // --raw: no value; true when given
  text,              // --iface NAME
  integer,           // a signed 64-bit number
  unsigned_integer,  // an unsigned 64-bit number ("-1" is refused)
  number,            // a floating-point number (seconds, rates)
};

// One option or positional argument of a command, declared as plain data
// (it crosses the plugin boundary inside CliCommand::options, so it is
// frozen within a major version: see sdk/ABI.md).
struct CliOption {
  // "top" for --top, "top,n" for --top and -n. The long name is the key of
  // the value in CliValues.
  std::string name = {};
  CliValueKind kind = CliValueKind::flag;
  std::string help = {};           // one line for `--help`
  std::string default_value = {};  // as typed on the command line ("20"); empty: none
  std::string value_name = {};     // "N" in the synopsis and help; empty: from the kind
  bool positional = false;    // an argument by position (in declaration order), not --name
  bool required = false;      // must be given (positional arguments, mostly)
};
static_assert(sizeof(CliOption) == 4 * sizeof(std::string) + 16,
              "CliOption crosses the plugin boundary in a vector: it cannot grow within a "
              "major version (sdk/ABI.md)");

// A parsed, typed value.
using CliValue = std::variant<bool, std::string, std::int64_t, std::uint64_t, double>;

// The values of a command's options after parsing: built by the host, read
// by the command through these inline accessors. Every declared option with
// a value (given or defaulted) is present; flags are always present.
// Asking for an undeclared option, or as the wrong kind, is a bug in the
// command and throws std::logic_error naming the option.
class CliValues {
 public:
  struct Entry {
    std::string name;
    CliValue value;
  };

  bool has(std::string_view name) const { return find(name) != nullptr; }
  bool flag(std::string_view name) const {
    const Entry* e = find(name);
    return e && as<bool>(*e);
  }
  const std::string& text(std::string_view name) const { return as<std::string>(need(name)); }
  std::int64_t integer(std::string_view name) const { return as<std::int64_t>(need(name)); }
  std::uint64_t unsigned_integer(std::string_view name) const {
    return as<std::uint64_t>(need(name));
  }
  double number(std::string_view name) const { return as<double>(need(name)); }
  // The value, or `otherwise` when the option was neither given nor defaulted.
  std::string text_or(std::string_view name, std::string otherwise) const {
    return has(name) ? text(name) : otherwise;
  }

  // For the host (and tests): sets or replaces a value.
  void set(std::string name, CliValue value) {
    for (auto& e : entries_)
      if (e.name == name) {
        e.value = std::move(value);
        return;
      }
    entries_.push_back({std::move(name), std::move(value)});
  }
  const std::vector<Entry>& entries() const { return entries_; }

 private:
  const Entry* find(std::string_view name) const {
    for (const auto& e : entries_)
      if (e.name == name) return &e;
    return nullptr;
  }
  const Entry& need(std::string_view name) const {
    const Entry* e = find(name);
    if (!e) throw std::logic_error("option '" + std::string(name) + "' has no value (check has())");
    return *e;
  }
  template <class T>
  static const T& as(const Entry& e) {
    if (const T* value = std::get_if<T>(&e.value)) return *value;
    throw std::logic_error("option '" + e.name + "' is read as another kind than declared");
  }

  std::vector<Entry> entries_;
};
static_assert(sizeof(CliValues::Entry) == sizeof(std::string) + sizeof(CliValue),
              "CliValues::Entry crosses the plugin boundary in a vector: it cannot grow "
              "within a major version (sdk/ABI.md)");

struct CliContext {
  std::string config_path;
  std::string pin_dir;      // <bpf.root>/<bpf.instance>
  std::string map_pin_dir;  // where shared and plugin maps are pinned
  OutputFormat format = OutputFormat::table;
  std::ostream* out = nullptr;
  std::ostream* err = nullptr;
  bool json() const { return format == OutputFormat::json; }
};

using CliRun = std::function<int(const CliContext&, const CliValues&)>;

struct CliCommand {
  std::vector<std::string> path;   // e.g. {"ratelimit", "dump"}
  std::string summary;             // one line for `sluicectl --help`
  std::string description;         // body of `sluicectl <path> --help`
  std::vector<CliOption> options;  // the synopsis and the option list are made from these
  CliRun run;                      // kCliOk / kCliFailure / kCliUsage
};

}  // namespace sluice
