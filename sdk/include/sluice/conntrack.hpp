// The C++ side of the shared conntrack table (sluice/bpf/conntrack.h) for
// plugins whose BPF objects include it: they load after conntrack and size
// their copy of the map declaration to the pinned table before load.
#pragma once

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>

#include <sluice/bpf/conntrack.h>
#include <sluice/error.hpp>
#include <sluice/unique_fd.hpp>

namespace sluice {

// max_entries of <map_pin_dir>/sl_conntrack, nullopt when it is not pinned.
inline std::optional<std::uint32_t> pinned_conntrack_size(const std::string& map_pin_dir) {
  UniqueFd fd(bpf_obj_get((map_pin_dir + "/" SL_MAP_CONNTRACK).c_str()));
  if (!fd) return std::nullopt;
  bpf_map_info info{};
  std::uint32_t len = sizeof(info);
  if (bpf_obj_get_info_by_fd(fd.get(), &info, &len) != 0) return std::nullopt;
  return info.max_entries;
}

// Sizes an object's sl_conntrack declaration to the pinned table, so libbpf
// reuses it; throws naming `plugin` when conntrack has not pinned it.
inline void size_to_pinned_conntrack(bpf_map* declared, const std::string& map_pin_dir,
                                     const std::string& plugin) {
  auto size = pinned_conntrack_size(map_pin_dir);
  if (!size)
    throw Error(plugin + ": the conntrack table " + map_pin_dir + "/" SL_MAP_CONNTRACK +
                    " is not pinned",
                "enable the conntrack plugin: it must load first (requires_plugins() = "
                "{\"conntrack\"})");
  bpf_map__set_max_entries(declared, *size);
}

}  // namespace sluice
