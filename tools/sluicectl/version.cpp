// `sluicectl version`: what this binary speaks, and what the pins say.
#include <iostream>

#include <sluice/plugin.hpp>

#include "cli.hpp"
#include "pinned_maps.hpp"
#include "sluice/core/version.hpp"

namespace sluice::ctl {

namespace {

std::string abi_text() {
  return std::to_string(kPluginAbiMajor) + "." + std::to_string(kPluginAbiMinor);
}

int run_version(Context& context, const CliValues&) {
  std::optional<sl_meta> meta;
  std::string pins_note;
  if (!context.config_loaded()) {
    pins_note = "not inspected: " + context.config_error();
  } else {
    // The binary's versions are worth printing even when the pins cannot
    // be read (e.g. without root): report why instead of failing.
    try {
      PinnedMaps maps(context.config());
      if (!maps.anything_pinned())
        pins_note = "nothing pinned under " + maps.pin_dir();
      else if (!(meta = maps.read_meta()))
        pins_note = maps.pin_dir() + " holds no initialised " SL_MAP_META;
    } catch (const CtlError& error) {
      pins_note = error.what();
    }
  }

  if (context.json()) {
    Json out = Json::object();
    out["sluicectl"] = kSluiceVersion;
    out["plugin_abi"] = abi_text();
    out["map_layout"] = SL_LAYOUT_VERSION;
    if (context.config_loaded()) out["pin_dir"] = context.config().pin_dir();
    Json pinned;  // null when there is nothing to describe
    if (meta) {
      pinned = Json::object();
      pinned["layout"] = meta->layout;
      pinned["layout_matches"] = meta->magic == SL_LAYOUT_MAGIC && meta->layout == SL_LAYOUT_VERSION;
      pinned["node"] = fixed_string(meta->node);
      pinned["active_bank"] = meta->active_bank;
      pinned["generation"] = meta->generation;
      pinned["installed_ns"] = meta->installed_ns;
      pinned["installed"] = format_utc(meta->installed_ns);
    }
    out["pinned"] = std::move(pinned);
    if (!meta) out["pins_note"] = pins_note;
    sluice::output::print(std::cout, out);
    return kExitOk;
  }

  Table table({{"WHAT"}, {"VALUE"}});
  table.add_row({"sluicectl", kSluiceVersion});
  table.add_row({"plugin ABI", abi_text()});
  table.add_row({"map layout", std::to_string(SL_LAYOUT_VERSION)});
  if (context.config_loaded()) table.add_row({"pin dir", context.config().pin_dir()});
  if (meta) {
    std::string layout = std::to_string(meta->layout);
    if (meta->magic != SL_LAYOUT_MAGIC || meta->layout != SL_LAYOUT_VERSION)
      layout += " (differs from this sluicectl: use the one that came with sluiced)";
    table.add_row({"pinned layout", layout});
    table.add_row({"node", fixed_string(meta->node)});
    table.add_row({"active bank", std::to_string(meta->active_bank)});
    table.add_row({"generation", std::to_string(meta->generation)});
    table.add_row({"installed", format_utc(meta->installed_ns)});
  } else {
    table.add_row({"pins", pins_note});
  }
  table.print(std::cout);
  return kExitOk;
}

}  // namespace

std::vector<CliCommand> version_commands(Context& context) {
  CliCommand version;
  version.path = {"version"};
  version.summary = "versions of sluicectl and of the pinned dataplane";
  version.description =
      "Prints the version of sluicectl, the plugin ABI and the map layout it was built\n"
      "for. When Sluice's maps are pinned, also prints what sl_meta records: the layout\n"
      "the pins were made with, the node name, the active chain bank, how many times\n"
      "chains were installed (generation) and when the last install happened (UTC).\n"
      "\n"
      "Works without pins, and without a configuration file when --config is not\n"
      "given; then only the binary's versions are shown.\n"
      "\n"
      "Examples:\n"
      "  sluicectl version\n"
      "  sluicectl -o json version";
  version.run = builtin(context, run_version);
  return {version};
}

}  // namespace sluice::ctl
