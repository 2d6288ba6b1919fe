// `sluicectl ifstate dump`: the interfaces sluiced manages (sl_ifstate), and
// whether the kernel really has our filters on them.
#include <net/if.h>

#include <cstdio>
#include <iostream>

#include "cli.hpp"
#include "pinned_maps.hpp"
#include "sluice/core/tc.hpp"

namespace sluice::ctl {

namespace {

std::vector<std::string> flag_names(std::uint32_t flags) {
  static constexpr std::pair<std::uint32_t, const char*> kFlags[] = {
      {SL_IF_F_QDISC_OURS, "qdisc-ours"},
      {SL_IF_F_INGRESS, "ingress"},
      {SL_IF_F_EGRESS, "egress"},
      {SL_IF_F_L3, "l3"},
  };
  std::vector<std::string> out;
  for (auto [bit, name] : kFlags)
    if (flags & bit) out.push_back(name);
  std::uint32_t unknown =
      flags & ~(SL_IF_F_QDISC_OURS | SL_IF_F_INGRESS | SL_IF_F_EGRESS | SL_IF_F_L3);
  if (unknown) {  // set by a newer sluiced: show rather than hide
    char hex[16];
    std::snprintf(hex, sizeof(hex), "0x%x", unknown);
    out.push_back(hex);
  }
  return out;
}

// Filters can only be queried in the interface's own network namespace; an
// ifindex there may belong to another device here, so the name must match.
bool visible_here(const ManagedInterface& iface) {
  char name[IF_NAMESIZE] = {};
  return if_indextoname(iface.ifindex, name) && iface.name == name;
}

struct AttachedPrograms {
  bool visible = false;
  unsigned ingress = 0;  // kernel program id, 0: no filter of ours
  unsigned egress = 0;
};

AttachedPrograms query_attached(const ManagedInterface& iface) {
  AttachedPrograms out;
  out.visible = visible_here(iface);
  if (out.visible) {
    out.ingress = query_tc_filter(static_cast<int>(iface.ifindex), SL_HOOK_INGRESS);
    out.egress = query_tc_filter(static_cast<int>(iface.ifindex), SL_HOOK_EGRESS);
  }
  return out;
}

int run_ifstate_dump(Context& context, const CliValues&) {
  PinnedMaps maps(context.config());
  maps.require_compatible();
  auto interfaces = read_interfaces(maps);

  bool any_invisible = false;
  Json json = Json::array();
  Table table({{"IFINDEX", Table::Align::right},
               {"NAME"},
               {"ROLE"},
               {"SLOT", Table::Align::right},
               {"FLAGS"},
               {"BANK", Table::Align::right},
               {"ATTACHED"},
               {"INGRESS-PROG", Table::Align::right},
               {"EGRESS-PROG", Table::Align::right}});
  for (const auto& iface : interfaces) {
    const sl_ifstate& s = iface.state;
    AttachedPrograms attached = query_attached(iface);
    any_invisible |= !attached.visible;
    if (context.json()) {
      Json row = Json::object();
      row["ifindex"] = iface.ifindex;
      row["name"] = iface.name;
      row["role"] = role_text(s.role);
      row["slot"] = s.slot;
      Json flags = Json::array();
      for (auto& flag : flag_names(s.flags)) flags.push_back(flag);
      row["flags"] = std::move(flags);
      row["bank"] = s.bank;
      row["attached_ns"] = s.attached_ns;
      row["attached"] = format_utc(s.attached_ns);
      // null: not queryable from this network namespace; 0: no filter.
      row["ingress_prog_id"] = attached.visible ? Json(attached.ingress) : Json();
      row["egress_prog_id"] = attached.visible ? Json(attached.egress) : Json();
      json.push_back(std::move(row));
    } else {
      auto prog = [&](unsigned id) {
        return !attached.visible ? std::string("?") : id ? std::to_string(id) : "none";
      };
      auto flags = flag_names(s.flags);
      table.add_row({std::to_string(iface.ifindex), iface.name, role_text(s.role),
                     std::to_string(s.slot), flags.empty() ? "-" : join(flags, ","),
                     std::to_string(s.bank), format_utc(s.attached_ns), prog(attached.ingress),
                     prog(attached.egress)});
    }
  }

  if (context.json()) {
    sluice::output::print(std::cout, json);
  } else if (interfaces.empty()) {
    std::cout << "no managed interfaces (sl_ifstate is empty): sluiced found none matching "
                 "[interfaces] yet\n";
  } else {
    table.print(std::cout);
  }
  if (any_invisible)
    std::cerr << "note: some interfaces are not in this network namespace, so their filters "
                 "cannot be checked ('?'); run sluicectl where sluiced runs, e.g. nsenter "
                 "--net=/run/netns/NAME sluicectl ...\n";
  return kExitOk;
}

}  // namespace

std::vector<CliCommand> ifstate_commands(Context& context) {
  CliCommand dump;
  dump.path = {"ifstate", "dump"};
  dump.summary = "managed interfaces and the filters attached to them";
  dump.description =
      "Lists every interface recorded in sl_ifstate, one per line:\n"
      "\n"
      "  IFINDEX, NAME    the interface\n"
      "  ROLE             workload, data, tunnel or l3 (from [interfaces] patterns)\n"
      "  SLOT             its slot in the counters map\n"
      "  FLAGS            qdisc-ours: Sluice created the clsact qdisc (cleanup deletes\n"
      "                   it); ingress/egress: entry programs attached; l3: no\n"
      "                   Ethernet header\n"
      "  BANK             the chain bank its entry programs jump into\n"
      "  ATTACHED         when Sluice first attached to it (UTC)\n"
      "  INGRESS-PROG,    the kernel program id of Sluice's tc filter as the kernel\n"
      "  EGRESS-PROG      reports it now: 'none' means the filter is gone (someone\n"
      "                   removed it), '?' that the interface is in another network\n"
      "                   namespace than sluicectl (JSON: null)\n"
      "\n"
      "Examples:\n"
      "  sluicectl ifstate dump\n"
      "  nsenter --net=/run/netns/node1 sluicectl -o json ifstate dump";
  dump.run = builtin(context, run_ifstate_dump);
  return {dump};
}

}  // namespace sluice::ctl
