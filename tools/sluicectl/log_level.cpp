// `sluicectl log-level [off|info|debug]`: the BPF trace log level in
// sl_settings, read by every entry program per packet, so a change takes
// effect at once without reloading anything.
#include <bpf/bpf.h>

#include <iostream>

#include "cli.hpp"
#include "pinned_maps.hpp"
#include "sluice/core/bpf_loader.hpp"
#include "sluice/core/error.hpp"

namespace sluice::ctl {

namespace {

constexpr const char* kTracePipe = "/sys/kernel/tracing/trace_pipe";

std::string level_text(std::uint32_t level) {
  return level <= SL_LOG_DEBUG ? log_level_name(static_cast<sl_log_level>(level))
                               : "level-" + std::to_string(level);
}

sl_settings read_settings(PinnedMaps& maps) {
  __u32 zero = 0;
  sl_settings settings{};
  if (bpf_map_lookup_elem(maps.fd(SL_MAP_SETTINGS, sizeof(sl_settings)), &zero, &settings) != 0)
    throw CtlError("cannot read " + maps.path(SL_MAP_SETTINGS) + ": " + errno_text(errno));
  return settings;
}

int run_log_level(Context& context, const CliValues& values) {
  PinnedMaps maps(context.config());
  maps.require_compatible();
  sl_settings settings = read_settings(maps);
  std::string previous = level_text(settings.log_level);

  if (!values.has("level")) {
    if (context.json()) {
      Json out = Json::object();
      out["log_level"] = previous;
      out["trace_pipe"] = kTracePipe;
      sluice::output::print(std::cout, out);
    } else {
      std::cout << "log level: " << previous << "\n";
      if (settings.log_level != SL_LOG_OFF)
        std::cout << "read the trace with: cat " << kTracePipe << "\n";
    }
    return kExitOk;
  }

  std::string wanted = values.text("level");
  auto level = log_level_from_name(wanted);
  if (!level)
    throw CtlError("unknown log level '" + wanted + "' (use off, info or debug)", kExitUsage);
  settings.log_level = *level;
  __u32 zero = 0;
  if (bpf_map_update_elem(maps.fd(SL_MAP_SETTINGS, sizeof(sl_settings)), &zero, &settings,
                          BPF_ANY) != 0)
    throw CtlError("cannot write " + maps.path(SL_MAP_SETTINGS) + ": " + errno_text(errno));
  // The trace lines are only readable with tracefs mounted; mount it the
  // way sluiced does rather than leave the operator staring at nothing.
  std::string tracefs_problem;
  if (*level != SL_LOG_OFF) {
    try {
      ensure_tracefs();
    } catch (const std::exception& error) {
      tracefs_problem = error.what();
    }
  }

  if (context.json()) {
    Json out = Json::object();
    out["log_level"] = log_level_name(*level);
    out["previous"] = previous;
    out["trace_pipe"] = kTracePipe;
    sluice::output::print(std::cout, out);
  } else {
    std::cout << "log level: " << log_level_name(*level) << " (was " << previous << ")\n";
    if (*level != SL_LOG_OFF)
      std::cout << "read the trace with: cat " << kTracePipe << "\n";
    std::cout << "sluiced sets [bpf] log_level from its configuration again when it restarts\n";
  }
  if (!tracefs_problem.empty())
    std::cerr << "warning: " << tracefs_problem << "\n";
  return kExitOk;
}

}  // namespace

std::vector<CliCommand> log_level_commands(Context& context) {
  CliCommand log_level;
  log_level.path = {"log-level"};
  log_level.summary = "show or set the BPF trace log level";
  log_level.description =
      "Without an argument, prints the log level of Sluice's BPF programs. With one,\n"
      "sets it, effective from the next packet and without reloading any program:\n"
      "\n"
      "  off    no trace lines\n"
      "  info   one line per packet: its final verdict and the time it took\n"
      "  debug  every step of every stage\n"
      "\n"
      "Trace lines go to " +
      std::string(kTracePipe) +
      ", prefixed with the interface name\n"
      "padded with dashes and -I: (ingress) or -E: (egress), e.g. 'cali1----------I:'.\n"
      "The level is reset to [bpf] log_level of the configuration when sluiced\n"
      "restarts. Debug output costs CPU on every packet: switch it off again.\n"
      "\n"
      "Examples:\n"
      "  sluicectl log-level\n"
      "  sluicectl log-level debug && cat /sys/kernel/tracing/trace_pipe";
  log_level.options = {{"level", CliValueKind::text,
                        "off, info or debug (may be given without --level)", "",
                        "off|info|debug", /*positional=*/true}};
  log_level.run = builtin(context, run_log_level);
  return {log_level};
}

}  // namespace sluice::ctl
