// Reading Sluice's pinned per-interface state and counters (sl_ifstate,
// sl_counters): one implementation for sluicectl (`counters dump`) and for
// sluiced's Prometheus metrics.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include <sluice/bpf/layout.h>

namespace sluice {

enum class CounterVerdict { accept, drop };  // the kinds of reasons.def

struct CounterReason {
  unsigned id = 0;
  const char* name = nullptr;  // nullptr: a reason this binary does not know
  CounterVerdict verdict = CounterVerdict::accept;
  const char* description = "";  // one line, from reasons.def
};

// A block of reason numbers and its owner (SL_REASON_BLOCK of reasons.def).
struct ReasonBlock {
  unsigned first = 0;
  unsigned last = 0;
  const char* owner = "";
};

// Every reason of reasons.def, in number order.
std::span<const CounterReason> known_reasons();
// The owner blocks of reasons.def, in number order; together they cover
// 0..SL_REASON_COUNT-1.
std::span<const ReasonBlock> reason_blocks();
// The owner of reason number `id` ("conntrack"), "unassigned" past the blocks.
const char* reason_owner(unsigned id);

// The reason with that number; one added by a newer Sluice is classified by
// the numbering rule of reasons.def (0..15 are accepts).
CounterReason counter_reason(unsigned id);

// The current number of the reason that layout 1 (64 reasons, numbered
// otherwise) counted under `layout1_number`, for the migration of the
// counters map (reasons_layout1.def); nullopt for a number layout 1 left
// unused, which carries no counts.
std::optional<unsigned> reason_from_layout1(std::uint32_t layout1_number);
// "policy", or "reason-<id>" for an unknown one.
std::string reason_name(const CounterReason& reason);
const char* verdict_name(CounterVerdict verdict);

// The number of possible CPUs: a per-CPU map value holds one struct per CPU.
// Throws Error when libbpf cannot tell.
std::size_t possible_cpus();

// A row of sl_ifstate.
struct ManagedInterface {
  std::uint32_t ifindex = 0;
  sl_ifstate state{};
  std::string name;
};

// Every interface recorded in the sl_ifstate map `ifstate_fd`, ordered by
// ifindex. An entry deleted while iterating is skipped.
std::vector<ManagedInterface> read_managed_interfaces(int ifstate_fd);

struct CounterRow {
  const ManagedInterface* iface;  // points into the interfaces passed in
  sl_hook hook;
  CounterReason reason;
  sl_counter total;  // summed over all CPUs
};

// The non-zero counters of `interfaces` from the per-CPU sl_counters map
// `counters_fd`, in interface, hook, reason order. `map_path` names the map
// in errors (Error: which entry, which interface, what the kernel said).
std::vector<CounterRow> read_counters(int counters_fd, const std::string& map_path,
                                      const std::vector<ManagedInterface>& interfaces);

// Zeroes every counter of `iface` on every CPU.
void zero_counters(int counters_fd, const std::string& map_path, const ManagedInterface& iface);

}  // namespace sluice
