// sluicectl subcommands contributed by plugins (plugin ABI 2.0).
//
// sluicectl loads the enabled plugins (ABI-checked, configured with the node
// configuration) and offers their commands beside its own, e.g.
// `sluicectl ratelimit dump`. A command reads Sluice's pinned maps, so it
// works while sluiced is down. Output goes through <sluice/output.hpp> so
// tables and JSON look like sluicectl's own.
#pragma once

#include <functional>
#include <iosfwd>
#include <string>
#include <vector>

namespace sluice {

enum class OutputFormat { table, json };

// Exit codes shared with sluicectl.
inline constexpr int kCliOk = 0;
inline constexpr int kCliFailure = 1;  // operational: nothing pinned, kernel error
inline constexpr int kCliUsage = 2;    // bad arguments

struct CliContext {
  std::string config_path;
  std::string pin_dir;      // <bpf.root>/<bpf.instance>
  std::string map_pin_dir;  // where shared and plugin maps are pinned
  OutputFormat format = OutputFormat::table;
  std::vector<std::string> args;  // the words after the command path
  std::ostream* out = nullptr;
  std::ostream* err = nullptr;
  bool json() const { return format == OutputFormat::json; }
};

struct CliCommand {
  std::vector<std::string> path;  // e.g. {"ratelimit", "dump"}
  std::string arguments;          // synopsis after the path, e.g. "[--source IP]"
  std::string summary;            // one line for `sluicectl --help`
  std::string description;        // body of `sluicectl <path> --help`
  std::function<int(const CliContext&)> run;
};

}  // namespace sluice
