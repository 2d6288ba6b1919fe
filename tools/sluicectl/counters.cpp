// `sluicectl counters dump|flush|reasons`: per interface, hook and reason
// packet and byte counts from the per-CPU sl_counters map, and the list of
// reasons they are counted under (reasons.def).
#include <iostream>

#include "cli.hpp"
#include "pinned_maps.hpp"
#include "sluice/core/counters.hpp"

namespace sluice::ctl {

namespace {

int counters_fd(PinnedMaps& maps) { return maps.fd(SL_MAP_COUNTERS, sizeof(sl_counter)); }

const CliOption kIfaceOption{"iface,i", CliValueKind::text,
                             "only this interface (as named in `sluicectl ifstate dump`)", "",
                             "NAME"};

int run_counters_dump(Context& context, const CliValues& values) {
  PinnedMaps maps(context.config());
  maps.require_compatible();
  auto interfaces = select_interfaces(maps, values.text_or("iface", ""));
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
      entry["description"] = row.reason.description;
      entry["packets"] = row.total.packets;
      entry["bytes"] = row.total.bytes;
      out.push_back(std::move(entry));
    }
    sluice::output::print(std::cout, out);
    return kExitOk;
  }
  if (rows.empty()) {
    std::cout << (interfaces.empty() ? "no managed interfaces, so nothing is counted\n"
                                     : "no packets counted yet\n");
    return kExitOk;
  }
  bool describe = values.flag("describe");
  std::vector<Table::Column> columns = {{"INTERFACE"},
                                        {"HOOK"},
                                        {"REASON"},
                                        {"VERDICT"},
                                        {"PACKETS", Table::Align::right},
                                        {"BYTES", Table::Align::right}};
  if (describe) columns.push_back({"DESCRIPTION"});
  Table table(columns);
  for (const auto& row : rows) {
    std::vector<std::string> cells = {row.iface->name, hook_name(row.hook),
                                      reason_name(row.reason), verdict_name(row.reason.verdict),
                                      std::to_string(row.total.packets),
                                      std::to_string(row.total.bytes)};
    if (describe) cells.push_back(row.reason.description);
    table.add_row(cells);
  }
  table.print(std::cout);
  return kExitOk;
}

std::string owner_range(unsigned id) {
  for (const auto& block : reason_blocks())
    if (id >= block.first && id <= block.last)
      return std::string(block.owner) + " " + std::to_string(block.first) + "-" +
             std::to_string(block.last);
  return "unassigned";
}

// Reads no map: the list is compiled in, so it works without sluiced or bpffs.
int run_counters_reasons(Context& context, const CliValues&) {
  if (context.json()) {
    Json out = Json::array();
    for (const auto& reason : known_reasons()) {
      Json entry = Json::object();
      entry["reason_id"] = reason.id;
      entry["reason"] = reason.name;
      entry["verdict"] = verdict_name(reason.verdict);
      entry["owner"] = reason_owner(reason.id);
      entry["description"] = reason.description;
      out.push_back(std::move(entry));
    }
    sluice::output::print(std::cout, out);
    return kExitOk;
  }
  Table table({{"ID", Table::Align::right}, {"REASON"}, {"VERDICT"}, {"OWNER"}, {"DESCRIPTION"}});
  for (const auto& reason : known_reasons())
    table.add_row({std::to_string(reason.id), reason.name, verdict_name(reason.verdict),
                   owner_range(reason.id), reason.description});
  table.print(std::cout);
  return kExitOk;
}

int run_counters_flush(Context& context, const CliValues& values) {
  PinnedMaps maps(context.config());
  maps.require_compatible();
  auto interfaces = select_interfaces(maps, values.text_or("iface", ""));
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
    sluice::output::print(std::cout, out);
  } else {
    std::cout << "zeroed the counters of " << flushed.size() << " interface(s)"
              << (flushed.empty() ? "" : ": " + join(flushed, ", ")) << "\n";
  }
  return kExitOk;
}

}  // namespace

std::vector<CliCommand> counters_commands(Context& context) {
  CliCommand dump;
  dump.path = {"counters", "dump"};
  dump.summary = "packets and bytes per interface, hook and reason";
  dump.description =
      "Prints Sluice's counters, summed over all CPUs: for every managed interface and\n"
      "hook (ingress: arriving on the interface, egress: leaving through it), one line\n"
      "per reason with a non-zero count. VERDICT is 'accept' for packets passed or\n"
      "redirected, 'drop' for packets dropped; REASON says why (accepted, policy,\n"
      "malformed-ihl, missed-tail-call, ...). The 'passed-*' reasons count packets a\n"
      "role's [pipeline] rule let through although they were malformed or met a hole\n"
      "in the chain. --describe adds each reason's description; `sluicectl counters\n"
      "reasons` lists them all.\n"
      "\n"
      "JSON: an array of {interface, ifindex, hook, reason, reason_id, verdict,\n"
      "description, packets, bytes}.\n"
      "\n"
      "Examples:\n"
      "  sluicectl counters dump\n"
      "  sluicectl counters dump --describe\n"
      "  sluicectl counters dump --iface cali1 -o json";
  dump.options = {kIfaceOption,
                  {"describe,d", CliValueKind::flag, "add a column with each reason's description"}};
  dump.run = builtin(context, run_counters_dump);

  CliCommand flush;
  flush.path = {"counters", "flush"};
  flush.summary = "zero the counters";
  flush.description =
      "Sets the counters of every managed interface (or of --iface NAME) to zero,\n"
      "on every CPU. Packets in flight while flushing may still be counted.\n"
      "\n"
      "Examples:\n"
      "  sluicectl counters flush\n"
      "  sluicectl counters flush --iface eth0";
  flush.options = {kIfaceOption};
  flush.run = builtin(context, run_counters_flush);
  CliCommand reasons;
  reasons.path = {"counters", "reasons"};
  reasons.summary = "the reasons packets are counted under";
  reasons.description =
      "Lists every reason this sluicectl knows (sdk/include/sluice/bpf/reasons.def):\n"
      "its number (the counters map's index), name, verdict, owner with the owner's\n"
      "block of numbers, and a one-line description. Reasons marked 'reserved for'\n"
      "are defined for features still to come and not counted yet. Reads no map.\n"
      "\n"
      "JSON: an array of {reason_id, reason, verdict, owner, description}.\n"
      "\n"
      "Examples:\n"
      "  sluicectl counters reasons\n"
      "  sluicectl counters reasons -o json";
  reasons.run = builtin(context, run_counters_reasons);
  return {dump, flush, reasons};
}

}  // namespace sluice::ctl
