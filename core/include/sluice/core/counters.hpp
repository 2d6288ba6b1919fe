// Reading Sluice's pinned per-interface state and counters (sl_ifstate,
// sl_counters): one implementation for sluicectl (`counters dump`) and for
// sluiced's Prometheus metrics.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include <sluice/bpf/layout.h>

namespace sluice {

enum class CounterVerdict { accept, drop };  // the kinds of reasons.def

struct CounterReason {
  unsigned id = 0;
  const char* name = nullptr;  // nullptr: a reason this binary does not know
  CounterVerdict verdict = CounterVerdict::accept;
};

// The reason with that number; one added by a newer Sluice is classified by
// the numbering rule of reasons.def (0..15 are accepts).
CounterReason counter_reason(unsigned id);
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
