// The C++ side of the shared conntrack table (sluice/bpf/conntrack.h) for
// plugins whose BPF objects include it: they load after conntrack and size
// their copy of the map declaration to the pinned table before load.
#pragma once

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <cstdint>
#include <cstring>
#include <optional>
#include <vector>
#include <stdexcept>
#include <string>

#include <sluice/bpf/conntrack.h>
#include <sluice/error.hpp>
#include <sluice/maps.hpp>
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

// For a plugin that makes `addr`:`port` (protocol `proto`) translated from
// now on (a new or changed service frontend): deletes the NORMAL entries of
// flows conntrack tracks untranslated towards it, so their next packet is a
// new flow the plugin sees. Without this, a client that was already sending
// keeps its untranslated entry refreshed by every packet and is never
// translated. Like kube-proxy for UDP, every such UDP (and other
// connectionless) flow goes; a TCP or SCTP flow only when its responder
// never answered (the client's retried SYN is then translated), so a
// working connection to a real host at that address is not broken.
// `ct_fd`: sl_conntrack (the plugin's reused declaration or the pin).
// Returns how many entries it deleted.
inline std::size_t forget_untranslated_flows_towards(int ct_fd, std::uint8_t family,
                                                     std::uint8_t proto, const __be32 addr[4],
                                                     __be16 port) {
  std::vector<sl_ct_key> doomed;
  for_each_entry<sl_ct_key, sl_ct_value>(ct_fd, [&](const sl_ct_key& k, const sl_ct_value& v) {
    if (v.type != SL_CT_TYPE_NORMAL || k.family != family || k.proto != proto) return;
    const bool opener_b = v.flags & SL_CT_F_BA;  // the responder is the other side
    const __be32* responder = opener_b ? k.addr_a : k.addr_b;
    const __be16 responder_port = opener_b ? k.port_a : k.port_b;
    if (responder_port != port || std::memcmp(responder, addr, sizeof(k.addr_a)) != 0) return;
    const bool connection = proto == 6 /* TCP */ || proto == 132 /* SCTP */;
    const sl_ct_leg& answers = v.legs[opener_b ? 0 : 1];  // responder -> opener
    if (connection && answers.packets != 0) return;
    doomed.push_back(k);
  });
  std::size_t deleted = 0;
  for (const auto& k : doomed) deleted += bpf_map_delete_elem(ct_fd, &k) == 0;
  return deleted;
}

}  // namespace sluice
