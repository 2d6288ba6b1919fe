// `sluicectl counters dump|flush`: per interface, hook and reason packet and
// byte counts from the per-CPU sl_counters map.
#include <iostream>

#include "cli.hpp"
#include "pinned_maps.hpp"
#include "sluice/core/counters.hpp"

namespace sluice::ctl {

namespace {

int counters_fd(PinnedMaps& maps) { return maps.fd(SL_MAP_COUNTERS, sizeof(sl_counter)); }

void add_iface_option(po::options_description& options, po::positional_options_description&) {
  options.add_options()("iface,i", po::value<std::string>()->value_name("NAME"),
                        "only this interface (as named in `sluicectl ifstate dump`)");
}

std::string iface_option(const po::variables_map& vm) {
  return vm.count("iface") ? vm["iface"].as<std::string>() : std::string();
}

int run_counters_dump(Context& context, const po::variables_map& vm) {
  PinnedMaps maps(context.config);
  maps.require_compatible();
  auto interfaces = select_interfaces(maps, iface_option(vm));
  auto rows = read_counters(counters_fd(maps), maps.path(SL_MAP_COUNTERS), interfaces);

  if (context.json()) {
    Json out = Json::array();
    for (const auto& row : rows) {
      Json entry = Json::object();
      entry["interface"] = row.iface->name;
      entry["ifindex"] = row.iface->ifindex;
      entry["hook"] = hook_name(row.hook);
      entry["reason"] = reason_name(row.reason);
      entry["reason_id"] = row.reason.id;
      entry["verdict"] = verdict_name(row.reason.verdict);
      entry["packets"] = row.total.packets;
      entry["bytes"] = row.total.bytes;
      out.push_back(std::move(entry));
    }
    std::cout << out.dump() << "\n";
    return kExitOk;
  }
  if (rows.empty()) {
    std::cout << (interfaces.empty() ? "no managed interfaces, so nothing is counted\n"
                                     : "no packets counted yet\n");
    return kExitOk;
  }
  Table table({{"INTERFACE"},
               {"HOOK"},
               {"REASON"},
               {"VERDICT"},
               {"PACKETS", Table::Align::right},
               {"BYTES", Table::Align::right}});
  for (const auto& row : rows)
    table.add_row({row.iface->name, hook_name(row.hook), reason_name(row.reason),
                   verdict_name(row.reason.verdict), std::to_string(row.total.packets),
                   std::to_string(row.total.bytes)});
  table.print(std::cout);
  return kExitOk;
}

int run_counters_flush(Context& context, const po::variables_map& vm) {
  PinnedMaps maps(context.config);
  maps.require_compatible();
  auto interfaces = select_interfaces(maps, iface_option(vm));
  int fd = counters_fd(maps);
  std::vector<std::string> flushed;
  for (const auto& iface : interfaces) {
    zero_counters(fd, maps.path(SL_MAP_COUNTERS), iface);
    flushed.push_back(iface.name);
  }
  if (context.json()) {
    Json out = Json::object();
    Json names = Json::array();
    for (auto& name : flushed) names.push_back(name);
    out["flushed"] = std::move(names);
    std::cout << out.dump() << "\n";
  } else {
    std::cout << "zeroed the counters of " << flushed.size() << " interface(s)"
              << (flushed.empty() ? "" : ": " + join(flushed, ", ")) << "\n";
  }
  return kExitOk;
}

}  // namespace

std::vector<CommandSpec> counters_commands() {
  CommandSpec dump;
  dump.path = {"counters", "dump"};
  dump.arguments = "[--iface NAME]";
  dump.summary = "packets and bytes per interface, hook and reason";
  dump.description =
      "Prints Sluice's counters, summed over all CPUs: for every managed interface and\n"
      "hook (ingress: arriving on the interface, egress: leaving through it), one line\n"
      "per reason with a non-zero count. VERDICT is 'accept' for packets passed or\n"
      "redirected, 'drop' for packets dropped; REASON says why (accepted, policy,\n"
      "malformed-ihl, missed-tail-call, ...). The 'passed-*' reasons count packets a\n"
      "role's [pipeline] rule let through although they were malformed or met a hole\n"
      "in the chain.\n"
      "\n"
      "JSON: an array of {interface, ifindex, hook, reason, reason_id, verdict,\n"
      "packets, bytes}.\n"
      "\n"
      "Examples:\n"
      "  sluicectl counters dump\n"
      "  sluicectl counters dump --iface cali1 -o json";
  dump.add_options = add_iface_option;
  dump.run = run_counters_dump;

  CommandSpec flush;
  flush.path = {"counters", "flush"};
  flush.arguments = "[--iface NAME]";
  flush.summary = "zero the counters";
  flush.description =
      "Sets the counters of every managed interface (or of --iface NAME) to zero,\n"
      "on every CPU. Packets in flight while flushing may still be counted.\n"
      "\n"
      "Examples:\n"
      "  sluicectl counters flush\n"
      "  sluicectl counters flush --iface eth0";
  flush.add_options = add_iface_option;
  flush.run = run_counters_flush;
  return {dump, flush};
}

}  // namespace sluice::ctl
