#include "sluice/core/pipeline.hpp"

#include <fnmatch.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <map>

#include "sluice/core/error.hpp"

namespace sluice {

namespace {
bool matches_any(const std::vector<std::string>& patterns, const std::string& name) {
  for (const auto& pattern : patterns)
    if (fnmatch(pattern.c_str(), name.c_str(), 0) == 0) return true;
  return false;
}
}  // namespace

std::optional<sl_role> classify_interface(const InterfacePatterns& patterns,
                                          const std::string& ifname) {
  if (ifname == "lo" || matches_any(patterns.ignore, ifname)) return std::nullopt;
  for (sl_role role : {SL_ROLE_TUNNEL, SL_ROLE_L3, SL_ROLE_WORKLOAD, SL_ROLE_DATA})
    if (matches_any(patterns.by_role[role], ifname)) return role;
  return std::nullopt;
}

namespace {

// sl_registry keeps StageSpec::fast_path_may_bypass_egress as a high bit of
// `may`, which no SL_MAY_* takes.
constexpr std::uint32_t kRecordedBypassesEgress = 1u << 31;

bool sees_every_packet(const DeclaredStage& stage, sl_hook hook) {
  return (stage.spec.every_packet_hooks & hook_bit(hook)) != 0;
}

std::string stage_text(const DeclaredStage& stage) {
  return "stage '" + stage.plugin + "/" + stage.spec.name + "'";
}

std::string chain_text(const Chain& chain) {
  return std::string("the ") + role_name(chain.role) + " " + hook_name(chain.hook) + " chain";
}

std::string slot_text(unsigned slot) {
  const char* name = "?";
  switch (slot) {
#define SL_SCRATCH(id, number, text, owner, description) \
  case number:                                           \
    name = text;                                         \
    break;
#include <sluice/bpf/scratch.def>
#undef SL_SCRATCH
  }
  return std::string("scratch word ") + std::to_string(slot) + " (" + name + ")";
}

// A reader in one lane needs a writer before it in the same lane.
void check_readers(const Chain& chain, const std::vector<std::size_t>& lane,
                   const char* lane_name) {
  std::uint32_t written = 0;
  bool after_hole = false;
  for (std::size_t index : lane) {
    const DeclaredStage& stage = chain.stages[index];
    if (is_hole(stage)) after_hole = true;  // fails closed: what it wrote is moot
    std::uint32_t missing = stage.spec.scratch_reads & ~written;
    for (unsigned slot = 0; slot < SL_SCRATCH_SLOTS && missing && !after_hole; ++slot)
      if (missing & (1u << slot))
        throw Error(stage_text(stage) + " reads " + slot_text(slot) + " in " + chain_text(chain) +
                    " (" + lane_name + "), but no stage before it there writes it: enable "
                    "the plugin that owns the word, or give the writer an earlier order "
                    "(and make it see every packet if the reader does)");
    written |= stage.spec.scratch_writes;
  }
}

}  // namespace

void record_stage(sl_registry_entry& entry, const StageSpec& spec) {
  std::snprintf(entry.name, sizeof(entry.name), "%s", spec.name.c_str());
  entry.roles = spec.roles;
  entry.hooks = spec.hooks;
  entry.order = spec.order;
  entry.every_packet_hooks = spec.every_packet_hooks;
  entry.may = spec.may;
  entry.scratch_reads = spec.scratch_reads;
  entry.scratch_writes = spec.scratch_writes;
  if (spec.fast_path_may_bypass_egress) entry.may |= kRecordedBypassesEgress;
}

StageSpec recorded_stage(const sl_registry_entry& entry) {
  StageSpec spec;
  spec.name.assign(entry.name, strnlen(entry.name, sizeof(entry.name)));
  spec.roles = entry.roles;
  spec.hooks = entry.hooks;
  spec.order = entry.order;
  spec.every_packet_hooks = entry.every_packet_hooks;
  spec.may = entry.may & ~kRecordedBypassesEgress;
  spec.scratch_reads = entry.scratch_reads;
  spec.scratch_writes = entry.scratch_writes;
  spec.fast_path_may_bypass_egress = (entry.may & kRecordedBypassesEgress) != 0;
  return spec;
}

bool is_judge(const DeclaredStage& stage, sl_hook hook) {
  return !sees_every_packet(stage, hook) && (stage.spec.may & SL_MAY_DROP);
}

std::array<std::uint8_t, SL_MAX_STAGES> Chain::established_positions() const {
  std::array<std::uint8_t, SL_MAX_STAGES> positions;
  positions.fill(0xff);
  for (std::size_t lane1 = 0; lane1 < established.size(); ++lane1)
    positions[established[lane1]] = static_cast<std::uint8_t>(lane1);
  return positions;
}

void check_chain_protocol(const std::array<Chain, SL_CHAINS>& chains) {
  std::map<unsigned, std::string> writer_of;  // scratch word -> plugin
  for (const Chain& chain : chains) {
    std::vector<std::size_t> all(chain.stages.size());
    for (std::size_t i = 0; i < all.size(); ++i) all[i] = i;
    for (const DeclaredStage& stage : chain.stages) {
      if ((stage.spec.may & SL_MAY_VOTE_ESTABLISHED) && !sees_every_packet(stage, chain.hook))
        throw Error(stage_text(stage) + " may vote flows established but does not see every "
                    "packet on " + hook_name(chain.hook) + ": a voter must be in lane 1 "
                    "(every_packet_hooks) so the established lane goes on after it");
      for (unsigned slot = 0; slot < SL_SCRATCH_SLOTS; ++slot) {
        if (!(stage.spec.scratch_writes & (1u << slot))) continue;
        auto [it, fresh] = writer_of.emplace(slot, stage.plugin);
        if (!fresh && it->second != stage.plugin)
          throw Error(stage_text(stage) + " writes " + slot_text(slot) + ", which plugin '" +
                      it->second + "' writes too: a scratch word has one owner "
                      "(sluice/bpf/scratch.def); third-party plugins take one of plugin-0..3 "
                      "that no other enabled plugin uses");
      }
    }
    check_readers(chain, all, "lane 0, first packets");
    check_readers(chain, chain.established, "lane 1, established flows");
  }
}

std::array<Chain, SL_CHAINS> compute_chains(const std::vector<DeclaredStage>& stages) {
  std::array<Chain, SL_CHAINS> chains;
  for (unsigned r = 0; r < SL_ROLE_COUNT; ++r)
    for (unsigned h = 0; h < SL_HOOK_COUNT; ++h) {
      auto& chain = chains[chain_index(static_cast<sl_role>(r), static_cast<sl_hook>(h))];
      chain.role = static_cast<sl_role>(r);
      chain.hook = static_cast<sl_hook>(h);
      for (const auto& stage : stages)
        if ((stage.spec.roles & role_bit(chain.role)) && (stage.spec.hooks & hook_bit(chain.hook)))
          chain.stages.push_back(stage);
      std::stable_sort(chain.stages.begin(), chain.stages.end(),
                       [](const DeclaredStage& a, const DeclaredStage& b) {
                         if (a.spec.order != b.spec.order) return a.spec.order < b.spec.order;
                         if (a.plugin != b.plugin) return a.plugin < b.plugin;
                         return a.spec.name < b.spec.name;
                       });
      if (chain.stages.size() > SL_MAX_STAGES - 1)
        throw Error("the " + std::string(role_name(chain.role)) + " " +
                    hook_name(chain.hook) + " chain would have " +
                    std::to_string(chain.stages.size()) + " stages; at most " +
                    std::to_string(SL_MAX_STAGES - 1) +
                    " fit. Disable a plugin or narrow a stage's roles.");
    }
  lay_out_lanes(chains);
  return chains;
}

void lay_out_lanes(std::array<Chain, SL_CHAINS>& chains) {
  for (Chain& chain : chains) {
    chain.established.clear();
    chain.flags = 0;
    chain.last_judge = 0xff;
    for (std::size_t i = 0; i < chain.stages.size(); ++i) {
      if (sees_every_packet(chain.stages[i], chain.hook)) chain.established.push_back(i);
      if (is_judge(chain.stages[i], chain.hook)) {
        chain.flags |= SL_CHAIN_F_JUDGED;
        chain.last_judge = static_cast<std::uint8_t>(i);
      }
    }
  }
  // The fast path skips a workload's egress hook when it goes straight into
  // the peer: every chain learns whether that hook has a stage that must see
  // every packet there.
  bool peer_egress_watched = false;
  for (const DeclaredStage& stage : chains[chain_index(SL_ROLE_WORKLOAD, SL_HOOK_EGRESS)].stages)
    if (sees_every_packet(stage, SL_HOOK_EGRESS) && !stage.spec.fast_path_may_bypass_egress)
      peer_egress_watched = true;
  if (peer_egress_watched)
    for (Chain& chain : chains) chain.flags |= SL_CHAIN_F_PEER_EGRESS_WATCHED;
  check_chain_protocol(chains);
}

}  // namespace sluice
