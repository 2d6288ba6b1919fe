#include "sluice/core/counters.hpp"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <algorithm>
#include <cerrno>

#include "sluice/core/error.hpp"

namespace sluice {

namespace {

constexpr CounterReason kReasons[] = {
#define SL_REASON(id, num, name, kind, description) \
  {num, name, CounterVerdict::kind, description},
#define ACCEPT accept
#define DROP drop
#include <sluice/bpf/reasons.def>
#undef ACCEPT
#undef DROP
#undef SL_REASON
};

constexpr ReasonBlock kBlocks[] = {
#define SL_REASON(id, num, name, kind, description)
#define SL_REASON_BLOCK(first, last, owner) {first, last, owner},
#include <sluice/bpf/reasons.def>
#undef SL_REASON_BLOCK
#undef SL_REASON
};

struct Layout1Reason {
  std::uint32_t old_number;
  unsigned new_number;
};

constexpr Layout1Reason kLayout1[] = {
#define SL_REASON_LAYOUT1(old_number, new_id) {old_number, new_id},
#include <sluice/bpf/reasons_layout1.def>
#undef SL_REASON_LAYOUT1
};

// Calls fn(index, hook, reason) for every counter entry of the interface.
template <typename Fn>
void for_each_counter(const ManagedInterface& iface, Fn&& fn) {
  for (__u32 hook = 0; hook < SL_HOOK_COUNT; ++hook)
    for (__u32 reason = 0; reason < SL_REASON_COUNT; ++reason)
      fn(sl_counter_base(iface.state.slot, hook) + reason, static_cast<sl_hook>(hook), reason);
}

std::string entry_text(const std::string& map_path, __u32 index, const ManagedInterface& iface) {
  return "entry " + std::to_string(index) + " of " + map_path + " (interface " + iface.name +
         ", slot " + std::to_string(iface.state.slot) + ")";
}

}  // namespace

std::span<const CounterReason> known_reasons() { return kReasons; }

std::span<const ReasonBlock> reason_blocks() { return kBlocks; }

const char* reason_owner(unsigned id) {
  for (const auto& block : kBlocks)
    if (id >= block.first && id <= block.last) return block.owner;
  return "unassigned";
}

std::optional<unsigned> reason_from_layout1(std::uint32_t layout1_number) {
  for (const auto& entry : kLayout1)
    if (entry.old_number == layout1_number) return entry.new_number;
  return std::nullopt;
}

CounterReason counter_reason(unsigned id) {
  for (const auto& reason : kReasons)
    if (reason.id == id) return reason;
  return {id, nullptr, id < 16 ? CounterVerdict::accept : CounterVerdict::drop};
}

std::string reason_name(const CounterReason& reason) {
  return reason.name ? reason.name : "reason-" + std::to_string(reason.id);
}

const char* verdict_name(CounterVerdict verdict) {
  return verdict == CounterVerdict::accept ? "accept" : "drop";
}

std::size_t possible_cpus() {
  int cpus = libbpf_num_possible_cpus();
  if (cpus <= 0) throw Error("cannot count the possible CPUs: " + errno_text(cpus));
  return static_cast<std::size_t>(cpus);
}

std::vector<ManagedInterface> read_managed_interfaces(int ifstate_fd) {
  std::vector<ManagedInterface> out;
  __u32 key = 0;
  const __u32* prev = nullptr;
  __u32 next = 0;
  while (bpf_map_get_next_key(ifstate_fd, prev, &next) == 0) {
    ManagedInterface iface;
    iface.ifindex = next;
    if (bpf_map_lookup_elem(ifstate_fd, &next, &iface.state) == 0) {
      std::size_t len = 0;
      while (len < sizeof(iface.state.name) && iface.state.name[len] != '\0') ++len;
      iface.name.assign(iface.state.name, len);
      out.push_back(std::move(iface));
    }
    key = next;
    prev = &key;
  }
  std::sort(out.begin(), out.end(),
            [](const auto& a, const auto& b) { return a.ifindex < b.ifindex; });
  return out;
}

std::vector<CounterRow> read_counters(int counters_fd, const std::string& map_path,
                                      const std::vector<ManagedInterface>& interfaces) {
  std::vector<sl_counter> per_cpu(possible_cpus());
  std::vector<CounterRow> rows;
  for (const auto& iface : interfaces)
    for_each_counter(iface, [&](__u32 index, sl_hook hook, __u32 reason) {
      if (bpf_map_lookup_elem(counters_fd, &index, per_cpu.data()) != 0)
        throw Error("cannot read " + entry_text(map_path, index, iface) + ": " +
                    errno_text(errno));
      sl_counter total{};
      for (const auto& cpu : per_cpu) {
        total.packets += cpu.packets;
        total.bytes += cpu.bytes;
      }
      if (total.packets || total.bytes)
        rows.push_back({&iface, hook, counter_reason(reason), total});
    });
  return rows;
}

void zero_counters(int counters_fd, const std::string& map_path, const ManagedInterface& iface) {
  std::vector<sl_counter> zeros(possible_cpus());
  for_each_counter(iface, [&](__u32 index, sl_hook, __u32) {
    if (bpf_map_update_elem(counters_fd, &index, zeros.data(), BPF_ANY) != 0)
      throw Error("cannot zero " + entry_text(map_path, index, iface) + ": " + errno_text(errno));
  });
}

}  // namespace sluice
