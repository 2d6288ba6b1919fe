// `sluicectl plugins`: the loaded plugins and their stages (sl_registry),
// then each chain as the kernel runs it (sl_jump), checked against the order
// the registry implies.
#include <bpf/bpf.h>

#include <algorithm>
#include <iostream>
#include <map>

#include "cli.hpp"
#include "pinned_maps.hpp"
#include "sluice/core/error.hpp"
#include "sluice/core/pipeline.hpp"
#include "sluice/core/unique_fd.hpp"

namespace sluice::ctl {

namespace {

constexpr const char* kChainEndProgram = "sl_chain_end";

struct PluginRecord {
  std::string name;
  sl_registry_entry plugin{};  // kind SL_REG_PLUGIN; zeroed if only stages were recorded
  std::vector<sl_registry_entry> stages;
};

// Plugins in registry order, each with its stages.
std::vector<PluginRecord> group_by_plugin(const std::vector<sl_registry_entry>& registry) {
  std::vector<PluginRecord> out;
  for (const auto& entry : registry) {
    std::string name = fixed_string(entry.plugin);
    auto it = std::find_if(out.begin(), out.end(),
                           [&](const PluginRecord& record) { return record.name == name; });
    if (it == out.end()) it = out.insert(out.end(), PluginRecord{name, {}, {}});
    if (entry.kind == SL_REG_PLUGIN)
      it->plugin = entry;
    else if (entry.kind == SL_REG_STAGE)
      it->stages.push_back(entry);
  }
  return out;
}

std::string abi_text(const sl_registry_entry& plugin) {
  return std::to_string(plugin.abi_major) + "." + std::to_string(plugin.abi_minor);
}

// "log(900)" when the stage is named like its plugin, else "plugin/stage(order)".
std::string stage_text(const std::string& plugin, const std::string& stage, std::int32_t order) {
  return (plugin == stage ? stage : plugin + "/" + stage) + "(" + std::to_string(order) + ")";
}

// Kernel names and tags of programs by id (the chain end is recognised by
// its name; an instance of a stage by its tag).
class ProgramNames {
 public:
  std::string name_of(std::uint32_t id) { return identity_of(id).name; }

  // Whether program `id` is one of the instances sluiced loads of the
  // stage's program, one per chain position (sdk/ABI.md, "Direct tail
  // calls"): they share its instructions, so its tag. The registry holds
  // the tag, since the plugin's own program is gone once sluiced stops.
  bool is_instance_of(std::uint32_t id, const sl_registry_entry& stage) {
    const Identity& program = identity_of(id);
    bool recorded = std::any_of(std::begin(stage.prog_tag), std::end(stage.prog_tag),
                                [](unsigned char byte) { return byte != 0; });
    return program.known && recorded &&
           std::equal(program.tag.begin(), program.tag.end(), std::begin(stage.prog_tag));
  }

 private:
  struct Identity {
    bool known = false;
    std::string name;
    std::array<unsigned char, BPF_TAG_SIZE> tag{};
  };
  const Identity& identity_of(std::uint32_t id) {
    auto it = identities_.find(id);
    if (it != identities_.end()) return it->second;
    Identity identity;
    UniqueFd fd(bpf_prog_get_fd_by_id(id));
    bpf_prog_info info{};
    __u32 len = sizeof(info);
    if (fd && bpf_obj_get_info_by_fd(fd.get(), &info, &len) == 0) {
      identity.known = true;
      identity.name = fixed_string(info.name);
      std::copy(std::begin(info.tag), std::end(info.tag), identity.tag.begin());
    }
    return identities_[id] = identity;
  }
  std::map<std::uint32_t, Identity> identities_;
};

struct ChainSlot {
  enum class State { ok, missing, unknown };
  State state = State::ok;
  std::uint32_t prog_id = 0;
  std::string plugin, stage, prog_name;
  std::int32_t order = 0;

  std::string label() const {
    switch (state) {
      case State::ok: return stage_text(plugin, stage, order);
      case State::missing: return "MISSING(" + plugin + "/" + stage + ")";
      case State::unknown:
        return "UNKNOWN(prog " + std::to_string(prog_id) +
               (prog_name.empty() ? "" : " " + prog_name) + ")";
    }
    return {};
  }
};

struct ChainView {
  sl_role role;
  sl_hook hook;
  std::vector<ChainSlot> slots;
  bool terminated = false;  // the chain end program is in place
  std::vector<std::string> expected;  // labels the registry implies
  bool order_matches = false;         // the stages (holes included) are the expected ones
  bool matches_registry = false;      // ... and the chain is terminated
};

std::string state_name(ChainSlot::State state) {
  switch (state) {
    case ChainSlot::State::ok: return "ok";
    case ChainSlot::State::missing: return "missing";
    case ChainSlot::State::unknown: return "unknown";
  }
  return {};
}

// The chains the registry's stages imply, computed exactly as sluiced does.
std::array<Chain, SL_CHAINS> expected_chains(const std::vector<sl_registry_entry>& registry) {
  std::vector<DeclaredStage> stages;
  for (const auto& entry : registry)
    if (entry.kind == SL_REG_STAGE)
      stages.push_back({fixed_string(entry.plugin), recorded_stage(entry)});
  return compute_chains(stages);
}

const sl_registry_entry* stage_by_prog(const std::vector<sl_registry_entry>& registry,
                                       std::uint32_t prog_id, ProgramNames& names) {
  for (const auto& entry : registry)
    if (entry.kind == SL_REG_STAGE && entry.prog_id == prog_id) return &entry;
  for (const auto& entry : registry)
    if (entry.kind == SL_REG_STAGE && names.is_instance_of(prog_id, entry)) return &entry;
  return nullptr;
}

// One lane of a chain as the kernel holds it, against the stages the
// registry implies for it (`want`, in order).
ChainView read_lane(int jump_fd, std::uint32_t base, const Chain& chain,
                    const std::vector<const DeclaredStage*>& want,
                    const std::vector<sl_registry_entry>& registry, ProgramNames& names) {
  ChainView view{chain.role, chain.hook, {}, false, {}, false, false};
  for (const DeclaredStage* stage : want)
    view.expected.push_back(stage_text(stage->plugin, stage->spec.name, stage->spec.order));

  for (std::uint32_t pos = 0; pos < SL_MAX_STAGES; ++pos) {
    __u32 slot = base + pos;
    __u32 prog_id = 0;
    // From user space a PROG_ARRAY lookup yields the program's id; ENOENT
    // means the slot is empty.
    if (bpf_map_lookup_elem(jump_fd, &slot, &prog_id) != 0) prog_id = 0;

    if (prog_id == 0) {
      if (pos >= want.size()) break;  // no chain end: an unterminated chain
      const DeclaredStage& missing = *want[pos];
      view.slots.push_back({ChainSlot::State::missing, 0, missing.plugin, missing.spec.name, "",
                            missing.spec.order});
      continue;
    }
    if (names.name_of(prog_id) == kChainEndProgram) {
      view.terminated = true;
      break;
    }
    if (const auto* entry = stage_by_prog(registry, prog_id, names))
      view.slots.push_back({ChainSlot::State::ok, prog_id, fixed_string(entry->plugin),
                            fixed_string(entry->name), names.name_of(prog_id), entry->order});
    else
      view.slots.push_back(
          {ChainSlot::State::unknown, prog_id, "", "", names.name_of(prog_id), 0});
  }

  std::vector<std::string> actual;
  for (const auto& slot : view.slots)
    // A hole where the registry expects a stage is reported as MISSING, but
    // it is the expected stage's place: it does not make the order differ.
    actual.push_back(slot.state == ChainSlot::State::missing
                         ? stage_text(slot.plugin, slot.stage, slot.order)
                         : slot.label());
  view.order_matches = actual == view.expected;
  view.matches_registry = view.terminated && view.order_matches;
  return view;
}

// Both lanes of a chain: every stage, and what an established flow runs.
std::pair<ChainView, ChainView> read_chain(int jump_fd, std::uint32_t bank, const Chain& expected,
                                           const std::vector<sl_registry_entry>& registry,
                                           ProgramNames& names) {
  std::vector<const DeclaredStage*> all, established;
  for (const auto& stage : expected.stages) all.push_back(&stage);
  for (std::size_t index : expected.established) established.push_back(&expected.stages[index]);
  return {read_lane(jump_fd, sl_jump_lane_base(bank, expected.role, expected.hook, SL_LANE_ALL),
                    expected, all, registry, names),
          read_lane(jump_fd,
                    sl_jump_lane_base(bank, expected.role, expected.hook, SL_LANE_ESTABLISHED),
                    expected, established, registry, names)};
}

// What a stage sees: "every" packet on its hooks, "first" packets only, or
// every packet on some hooks ("every:ingress").
std::string sees_text(const sl_registry_entry& stage) {
  std::uint32_t every = stage.every_packet_hooks & stage.hooks;
  if (every == 0) return "first";
  if (every == stage.hooks) return "every";
  return "every:" + join(hook_names(every), ",");
}

std::vector<std::string> may_names(std::uint32_t may) {
  std::vector<std::string> out;
  static const std::pair<std::uint32_t, const char*> kNames[] = {
      {SL_MAY_DROP, "drop"},
      {SL_MAY_REWRITE, "rewrite"},
      {SL_MAY_REDIRECT, "redirect"},
      {SL_MAY_VOTE_ESTABLISHED, "vote"},
      {SL_MAY_APPROVE, "approve"}};
  for (const auto& [bit, name] : kNames)
    if (may & bit) out.push_back(name);
  return out;
}

std::string chain_text(const std::vector<std::string>& labels, bool terminated) {
  std::string text = labels.empty() ? "(empty)" : join(labels, " -> ");
  return text + (terminated ? " -> [end]"
                            : " -> (no chain end: packets meet the missed-tail-call rule)");
}

Json plugins_json(const std::vector<PluginRecord>& plugins) {
  Json out = Json::array();
  for (const auto& record : plugins) {
    const auto& p = record.plugin;
    Json plugin = Json::object();
    plugin["name"] = record.name;
    plugin["version"] = fixed_string(p.version);
    plugin["abi"] = abi_text(p);
    plugin["status"] = p.status == 0 ? "ok" : "failed";
    plugin["message"] = fixed_string(p.message);
    Json stages = Json::array();
    for (const auto& s : record.stages) {
      Json stage = Json::object();
      stage["name"] = fixed_string(s.name);
      Json roles = Json::array();
      for (auto& role : role_names(s.roles)) roles.push_back(role);
      stage["roles"] = std::move(roles);
      Json hooks = Json::array();
      for (auto& hook : hook_names(s.hooks)) hooks.push_back(hook);
      stage["hooks"] = std::move(hooks);
      stage["order"] = s.order;
      stage["prog_id"] = s.prog_id;
      stage["sees"] = sees_text(s);
      Json may = Json::array();
      for (auto& name : may_names(s.may)) may.push_back(name);
      stage["may"] = std::move(may);
      stages.push_back(std::move(stage));
    }
    plugin["stages"] = std::move(stages);
    out.push_back(std::move(plugin));
  }
  return out;
}

Json lane_json(const ChainView& chain) {
    Json entry = Json::object();
    Json stages = Json::array();
    for (std::size_t pos = 0; pos < chain.slots.size(); ++pos) {
      const auto& slot = chain.slots[pos];
      Json stage = Json::object();
      stage["position"] = pos;
      stage["state"] = state_name(slot.state);
      stage["plugin"] = slot.plugin;
      stage["stage"] = slot.stage;
      stage["order"] = slot.order;
      stage["prog_id"] = slot.prog_id;
      stage["prog_name"] = slot.prog_name;
      stages.push_back(std::move(stage));
    }
    entry["stages"] = std::move(stages);
    entry["terminated"] = chain.terminated;
    entry["matches_registry"] = chain.matches_registry;
    return entry;
}

Json chains_json(const std::vector<std::pair<ChainView, ChainView>>& chains) {
  Json out = Json::array();
  for (const auto& [all, established] : chains) {
    Json entry = lane_json(all);
    entry["role"] = role_name(all.role);
    entry["hook"] = hook_name(all.hook);
    entry["established"] = lane_json(established);
    out.push_back(std::move(entry));
  }
  return out;
}

void print_tables(const std::vector<PluginRecord>& plugins) {
  if (plugins.empty()) {
    std::cout << "no plugins loaded (enable them in [plugins] enabled)\n";
    return;
  }
  Table plugin_table({{"PLUGIN"}, {"VERSION"}, {"ABI"}, {"STATUS"}, {"MESSAGE"}});
  Table stage_table({{"PLUGIN"},
                     {"STAGE"},
                     {"ROLES"},
                     {"HOOKS"},
                     {"ORDER", Table::Align::right},
                     {"SEES"},
                     {"MAY"},
                     {"PROG-ID", Table::Align::right}});
  for (const auto& record : plugins) {
    const auto& p = record.plugin;
    plugin_table.add_row({record.name, fixed_string(p.version), abi_text(p),
                          p.status == 0 ? "ok" : "failed", fixed_string(p.message)});
    for (const auto& s : record.stages)
      stage_table.add_row({fixed_string(s.plugin), fixed_string(s.name),
                           (s.roles & kAllRoles) == kAllRoles ? std::string("all")
                                                              : join(role_names(s.roles), ","),
                           join(hook_names(s.hooks), ","), std::to_string(s.order),
                           sees_text(s), s.may ? join(may_names(s.may), ",") : "-",
                           s.prog_id ? std::to_string(s.prog_id) : "-"});
  }
  plugin_table.print(std::cout);
  if (!stage_table.empty()) {
    std::cout << "\n";
    stage_table.print(std::cout);
  }
}

int run_plugins(Context& context, const CliValues&) {
  PinnedMaps maps(context.config());
  maps.require_compatible();
  auto registry = read_registry(maps);
  auto plugins = group_by_plugin(registry);
  auto meta = maps.read_meta();

  std::vector<std::pair<ChainView, ChainView>> chains;
  std::string expected_problem;
  if (meta) {
    std::array<Chain, SL_CHAINS> expected;
    try {
      expected = expected_chains(registry);
    } catch (const Error& error) {
      // Still show what the kernel runs; only the comparison is lost.
      expected_problem = error.what();
      for (unsigned r = 0; r < SL_ROLE_COUNT; ++r)
        for (unsigned h = 0; h < SL_HOOK_COUNT; ++h)
        {
          Chain& chain = expected[chain_index(static_cast<sl_role>(r), static_cast<sl_hook>(h))];
          chain = Chain{};
          chain.role = static_cast<sl_role>(r);
          chain.hook = static_cast<sl_hook>(h);
        }
    }
    int jump_fd = maps.fd(SL_MAP_JUMP, sizeof(__u32));
    ProgramNames names;
    for (const auto& chain : expected)
      chains.push_back(read_chain(jump_fd, meta->active_bank, chain, registry, names));
  }

  if (context.json()) {
    Json out = Json::object();
    out["plugins"] = plugins_json(plugins);
    out["active_bank"] = meta ? Json(meta->active_bank) : Json();
    out["generation"] = meta ? Json(meta->generation) : Json();
    out["chains"] = chains_json(chains);
    sluice::output::print(std::cout, out);
    return kExitOk;
  }

  print_tables(plugins);
  std::cout << "\n";
  if (!meta) {
    std::cout << "no chains installed yet (" SL_MAP_META " is not initialised)\n";
    return kExitOk;
  }
  std::cout << "Chains (bank " << meta->active_bank << ", generation " << meta->generation
            << "):\n";
  Table chain_table({{""}, {""}});
  auto lane_line = [&](const ChainView& lane) {
    std::vector<std::string> labels;
    for (const auto& slot : lane.slots) labels.push_back(slot.label());
    std::string line = chain_text(labels, lane.terminated);
    if (!lane.order_matches && expected_problem.empty())
      line += "   [registry expects: " + chain_text(lane.expected, true) + "]";
    return line;
  };
  for (const auto& [all, established] : chains) {
    chain_table.add_row({"  " + role_text(all.role) + " " + hook_text(all.hook) + ":", lane_line(all)});
    // Shown when an established flow skips something.
    if (established.expected != all.expected || !established.matches_registry)
      chain_table.add_row({"    established:", lane_line(established)});
  }
  chain_table.print(std::cout, /*with_header=*/false);
  if (!expected_problem.empty())
    std::cerr << "note: cannot compute the expected chains from the registry: "
              << expected_problem << "\n";
  return kExitOk;
}

}  // namespace

std::vector<CliCommand> plugins_commands(Context& context) {
  CliCommand plugins;
  plugins.path = {"plugins"};
  plugins.summary = "loaded plugins, their stages and the resulting chains";
  plugins.description =
      "Shows what sluiced recorded in sl_registry at its last chain install: every\n"
      "plugin with its version, the plugin ABI it was built for and its status (ok, or\n"
      "failed with the reason), and every stage with the roles and hooks it runs on,\n"
      "its order number and its kernel program id.\n"
      "\n"
      "Then the resulting chain per role and direction, read from the kernel's jump\n"
      "map (sl_jump, active bank), e.g.\n"
      "\n"
      "  workload ingress:  conntrack(100) -> policy(200) -> nat(300) -> [end]\n"
      "    established:     conntrack(100) -> nat(300) -> [end]\n"
      "\n"
      "The 'established' line is the lane an established flow runs once conntrack\n"
      "voted it (the chain protocol, sdk/ABI.md): the stages that see every packet;\n"
      "it is shown when it differs from the full chain. Stages are listed with what\n"
      "they SEE (every packet, first packets only, or every packet on some hooks) and\n"
      "what they MAY do (drop, rewrite, redirect, vote, approve).\n"
      "\n"
      "  name(order)        a stage, as 'stage' or 'plugin/stage'\n"
      "  MISSING(p/s)       the registry places stage s of plugin p here but its slot is\n"
      "                     empty (the plugin failed): packets meet the role's\n"
      "                     missed_tail_call rule in [pipeline.<role>]\n"
      "  UNKNOWN(prog N)    a program the registry does not know\n"
      "  [end]              the chain end: a recorded redirect, the fast path for a\n"
      "                     packet voted forwardable, else the kernel\n"
      "  (empty)            no stages: packets go straight to the chain end\n"
      "\n"
      "A chain that differs from the order the registry implies is followed by what\n"
      "the registry expects.\n"
      "\n"
      "Examples:\n"
      "  sluicectl plugins\n"
      "  sluicectl -o json plugins";
  plugins.run = builtin(context, run_plugins);
  return {plugins};
}

}  // namespace sluice::ctl
