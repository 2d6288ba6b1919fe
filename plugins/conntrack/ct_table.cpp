#include "ct_table.hpp"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <cerrno>
#include <cstring>
#include <ostream>

#include <sluice/maps.hpp>

namespace ct {

std::vector<Entry> read_entries(int fd) {
  std::vector<Entry> out;
  sluice::for_each_entry<sl_ct_key, sl_ct_value>(
      fd, [&](const sl_ct_key& key, const sl_ct_value& value) { out.push_back({key, value}); });
  return out;
}

std::string table_pin(const std::string& map_pin_dir) {
  return map_pin_dir + "/" SL_MAP_CONNTRACK;
}

int open_table(const sluice::CliContext& context, Fd& fd) {
  try {
    fd = sluice::PinnedMap<sl_ct_key, sl_ct_value>::open_in_pins(context.map_pin_dir,
                                                                SL_MAP_CONNTRACK)
             .release();
    return sluice::kCliOk;
  } catch (const sluice::MapError& error) {
    *context.err << "conntrack: " << error.what()
                 << (sluice::is_missing_map(error, context.map_pin_dir) ? " (is the conntrack plugin loaded by sluiced?)" : "")
                 << "\n";
    return sluice::kCliFailure;
  }
}

int open_stats(const sluice::CliContext& context, Fd& fd) {
  try {
    fd = sluice::PerCpuMap<__u32, ct_stats>::open_in_pins(context.map_pin_dir, CT_MAP_STATS)
             .release();
    return sluice::kCliOk;
  } catch (const sluice::MapError& error) {
    *context.err << "conntrack: " << error.what() << "\n";
    return sluice::kCliFailure;
  }
}

std::uint32_t max_entries_of(int fd) {
  bpf_map_info info{};
  std::uint32_t len = sizeof(info);
  if (bpf_obj_get_info_by_fd(fd, &info, &len) != 0) return 0;
  return info.max_entries;
}

// The max_entries of an already pinned table, if any.
std::optional<std::uint32_t> pinned_size(const std::string& map_pin_dir) {
  Fd fd(bpf_obj_get(table_pin(map_pin_dir).c_str()));
  if (!fd) return std::nullopt;
  return max_entries_of(fd.get());
}

ct_stats read_stats(int fd) {
  ct_stats total{};
  int ncpus = libbpf_num_possible_cpus();
  if (ncpus <= 0) return total;
  std::vector<ct_stats> per_cpu(static_cast<std::size_t>(ncpus));
  std::uint32_t zero = 0;
  if (bpf_map_lookup_elem(fd, &zero, per_cpu.data()) != 0) return total;
  for (const auto& s : per_cpu) {
    total.created += s.created;
    total.full_dropped += s.full_dropped;
    total.full_passed += s.full_passed;
  }
  return total;
}

}  // namespace ct
