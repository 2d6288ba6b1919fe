#include "nat_maps.hpp"

#include <bpf/libbpf.h>

#include <cstdio>
#include <cstring>
#include <stdexcept>
#include <vector>

#include <sluice/bpf/conntrack.h>
#include <sluice/error.hpp>
#include <sluice/maps.hpp>
#include <sluice/unique_fd.hpp>

namespace nat {

[[noreturn]] void map_failure(const char* what, const char* map) {
  throw sluice::Error(std::string("nat: cannot ") + what + " an entry of " + map + ": " +
                      sluice::errno_text(errno));
}

void apply_port(const MapFds& maps, const PortEntries* old, const PortEntries* now) {
  static const std::uint8_t kAllowed = 1;
  if (now) {
    for (const auto& range : now->source_ranges)
      if (!old || !old->source_ranges.count(range))
        map_put(maps.src_ranges, NAT_MAP_SRC_RANGES, range.key, kAllowed);
    for (std::uint32_t i = 0; i < now->backends.size(); ++i)
      if (!old || old->id != now->id || i >= old->backends.size() ||
          !nat::same_bytes(old->backends[i], now->backends[i]))
        map_put(maps.backends, NAT_MAP_BACKENDS, nat_be_key{now->id, i}, now->backends[i]);
    for (const auto& [key, value] : now->frontends) {
      auto it = old ? old->frontends.find(key) : decltype(old->frontends.end()){};
      if (!old || it == old->frontends.end() || !nat::same_bytes(it->second, value))
        map_put(maps.frontends, NAT_MAP_FRONTENDS, key.key, value);
    }
    if (!old || old->label != now->label || old->id != now->id) {
      nat_service_name name{};
      std::snprintf(name.name, sizeof(name.name), "%s", now->label.c_str());
      map_put(maps.services, NAT_MAP_SERVICES, now->id, name);
    }
  }
  if (old) {
    for (const auto& [key, value] : old->frontends)
      if (!now || !now->frontends.count(key)) map_del(maps.frontends, NAT_MAP_FRONTENDS, key.key);
    for (const auto& range : old->source_ranges)
      if (!now || !now->source_ranges.count(range))
        map_del(maps.src_ranges, NAT_MAP_SRC_RANGES, range.key);
    std::uint32_t keep = now && now->id == old->id ? static_cast<std::uint32_t>(now->backends.size()) : 0;
    for (std::uint32_t i = keep; i < old->backends.size(); ++i)
      map_del(maps.backends, NAT_MAP_BACKENDS, nat_be_key{old->id, i});
    if (!now || now->id != old->id) {
      map_del(maps.services, NAT_MAP_SERVICES, old->id);
      // Affinity of a gone id must not steer a later user of the id.
      std::vector<nat_aff_key> stale;
      sluice::for_each_entry<nat_aff_key, nat_aff_value>(maps.affinity, [&](const nat_aff_key& k, const nat_aff_value&) {
        if (k.id == old->id) stale.push_back(k);
      });
      for (const auto& k : stale) map_del(maps.affinity, NAT_MAP_AFFINITY, k);
    }
  }
}

std::set<std::uint32_t> sweep_stale_entries(const MapFds& maps,
                                            const std::map<std::string, ServiceEntries>& applied) {
  std::set<FeKey> want_fe;
  std::set<std::pair<std::uint32_t, std::uint32_t>> want_be;
  std::set<std::uint32_t> want_ids;
  std::set<RangeKey> want_ranges;
  for (const auto& [key, ports] : applied)
    for (const auto& [label, e] : ports) {
      want_ranges.insert(e.source_ranges.begin(), e.source_ranges.end());
      for (const auto& [fe, v] : e.frontends) want_fe.insert(fe);
      for (std::uint32_t i = 0; i < e.backends.size(); ++i) want_be.insert({e.id, i});
      want_ids.insert(e.id);
    }
  std::vector<nat_fe_key> fe_gone;
  sluice::for_each_entry<nat_fe_key, nat_fe_value>(maps.frontends, [&](const nat_fe_key& k, const nat_fe_value&) {
    if (!want_fe.count(FeKey{k})) fe_gone.push_back(k);
  });
  for (const auto& k : fe_gone) map_del(maps.frontends, NAT_MAP_FRONTENDS, k);
  std::vector<nat_be_key> be_gone;
  sluice::for_each_entry<nat_be_key, nat_be_value>(maps.backends, [&](const nat_be_key& k, const nat_be_value&) {
    if (!want_be.count({k.id, k.ordinal})) be_gone.push_back(k);
  });
  for (const auto& k : be_gone) map_del(maps.backends, NAT_MAP_BACKENDS, k);
  std::vector<std::uint32_t> ids_gone;
  sluice::for_each_entry<std::uint32_t, nat_service_name>(maps.services, [&](const std::uint32_t& id, const nat_service_name&) {
    if (!want_ids.count(id)) ids_gone.push_back(id);
  });
  for (auto id : ids_gone) map_del(maps.services, NAT_MAP_SERVICES, id);
  std::vector<nat_src_range_key> ranges_gone;
  sluice::for_each_entry<nat_src_range_key, std::uint8_t>(
      maps.src_ranges, [&](const nat_src_range_key& k, const std::uint8_t&) {
        if (!want_ranges.count(RangeKey{k})) ranges_gone.push_back(k);
      });
  for (const auto& k : ranges_gone) map_del(maps.src_ranges, NAT_MAP_SRC_RANGES, k);
  return want_ids;
}

std::optional<std::uint32_t> pinned_ct_size(const std::string& map_pin_dir) {
  sluice::UniqueFd fd(bpf_obj_get((map_pin_dir + "/" SL_MAP_CONNTRACK).c_str()));
  if (!fd) return std::nullopt;
  bpf_map_info info{};
  std::uint32_t len = sizeof(info);
  if (bpf_obj_get_info_by_fd(fd.get(), &info, &len) != 0) return std::nullopt;
  return info.max_entries;
}

std::size_t flush_udp_flows(int ct_fd, const std::set<GoneBackend>& gone) {
  std::vector<sl_ct_key> doomed;
  sluice::for_each_entry<sl_ct_key, sl_ct_value>(ct_fd, [&](const sl_ct_key& k, const sl_ct_value& v) {
    if (v.type != SL_CT_TYPE_NAT_REV || k.proto != IPPROTO_UDP) return;
    bool opener_b = v.flags & SL_CT_F_BA;  // the client; the backend is the other side
    GoneBackend be{k.family, {}, opener_b ? k.port_a : k.port_b, v.orig_dport};
    std::memcpy(be.addr.data(), opener_b ? k.addr_a : k.addr_b, sizeof(k.addr_a));
    if (!gone.count(be)) return;
    doomed.push_back(k);
    sl_ct_key fwd{};
    sl_ct_key_fill(&fwd, k.family, k.proto, v.orig_src, v.orig_dst, v.orig_sport, v.orig_dport);
    sl_ct_value stub{};
    if (bpf_map_lookup_elem(ct_fd, &fwd, &stub) == 0 && stub.type == SL_CT_TYPE_NAT_FWD &&
        std::memcmp(&stub.rev_key, &k, sizeof(k)) == 0)
      doomed.push_back(fwd);
  });
  std::size_t n = 0;
  for (const auto& k : doomed) n += bpf_map_delete_elem(ct_fd, &k) == 0;
  return n;
}

}  // namespace nat
