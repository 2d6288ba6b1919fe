// `sluicectl routes dump|flush` and `sluicectl arp dump`: the fast path's
// route cache (sl_route_cache, layout.h), i.e. where established flows are
// forwarded without the host stack, and the neighbours they are sent to.
// When a flow goes somewhere unexpected, this says which FIB answer the fast
// path is using and whether it still trusts it.
#include <bpf/bpf.h>
#include <net/if.h>
#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <iostream>
#include <map>
#include <tuple>

#include "cli.hpp"
#include "pinned_maps.hpp"
#include "sluice/clock.hpp"
#include "sluice/maps.hpp"

namespace sluice::ctl {

namespace {

struct CachedRoute {
  sl_route_key key;
  sl_route_value value;
  std::uint64_t age_ns;
  std::string state;  // fresh, stale or expired: see state_of()
};

struct RouteCache {
  std::uint32_t epoch = 0;
  std::vector<CachedRoute> routes;  // by arrival interface, then destination
};

int epoch_fd(PinnedMaps& maps) { return maps.fd(SL_MAP_ROUTE_EPOCH, sizeof(std::uint32_t)); }

std::uint32_t read_epoch(PinnedMaps& maps) {
  std::uint32_t zero = 0, epoch = 0;
  if (bpf_map_lookup_elem(epoch_fd(maps), &zero, &epoch) != 0)
    throw CtlError("cannot read " + maps.path(SL_MAP_ROUTE_EPOCH) + ": " + std::strerror(errno));
  return epoch;
}

// Whether the fast path would still use an entry (sl_cached_route()).
std::string state_of(const sl_route_value& value, std::uint32_t epoch, std::uint64_t age_ns) {
  if (value.epoch != epoch) return "stale";  // routing changed (or a flush) since
  if (age_ns > SL_ROUTE_CACHE_MAX_AGE_NS) return "expired";
  return "fresh";
}

RouteCache read_route_cache(PinnedMaps& maps) {
  RouteCache cache;
  cache.epoch = read_epoch(maps);
  // bpf_ktime_get_coarse_ns()'s clock, which the fast path stamps entries with.
  const std::uint64_t now = sluice::clock_ns(CLOCK_MONOTONIC_COARSE);
  maps.fd(SL_MAP_ROUTE_CACHE, sizeof(sl_route_value));  // a clear error if it is not pinned
  auto routes = PinnedMap<sl_route_key, sl_route_value>::open(maps.path(SL_MAP_ROUTE_CACHE),
                                                               /*read_only=*/true);
  routes.for_each([&](const sl_route_key& key, const sl_route_value& value) {
    const std::uint64_t age = now > value.looked_up_ns ? now - value.looked_up_ns : 0;
    cache.routes.push_back({key, value, age, state_of(value, cache.epoch, age)});
  });
  auto order = [](const CachedRoute& r) {
    return std::make_tuple(r.key.ifindex, r.key.family, std::to_array(r.key.dst),
                           std::to_array(r.key.src), r.key.tos);
  };
  std::sort(cache.routes.begin(), cache.routes.end(),
            [&](const CachedRoute& a, const CachedRoute& b) { return order(a) < order(b); });
  return cache;
}


// Interface names: as sluiced recorded them for managed interfaces (right even
// from another network namespace), else as this namespace knows the index.
class InterfaceNames {
 public:
  explicit InterfaceNames(PinnedMaps& maps) {
    for (const auto& iface : read_interfaces(maps)) managed_[iface.ifindex] = iface.name;
  }
  std::string operator()(std::uint32_t ifindex) const {
    if (auto it = managed_.find(ifindex); it != managed_.end()) return it->second;
    char name[IF_NAMESIZE] = {};
    if (if_indextoname(ifindex, name)) return name;
    return "#" + std::to_string(ifindex);
  }

 private:
  std::map<std::uint32_t, std::string> managed_;
};

bool is_ipv6(std::uint8_t family) { return family == AF_INET6; }

std::string age_text(std::uint64_t ns) {
  char text[32];
  std::snprintf(text, sizeof(text), "%.1fs", static_cast<double>(ns) / 1e9);
  return text;
}

int run_routes_dump(Context& context, const CliValues&) {
  PinnedMaps maps(context.config());
  maps.require_compatible();
  RouteCache cache = read_route_cache(maps);
  InterfaceNames names(maps);

  Json rows = Json::array();
  Table table({{"IN"},
               {"SOURCE"},
               {"DESTINATION"},
               {"OUT"},
               {"NEXT-HOP"},
               {"DST-MAC"},
               {"SRC-MAC"},
               {"VIA"},
               {"AGE", Table::Align::right},
               {"STATE"}});
  for (const auto& [key, value, age, state] : cache.routes) {
    const bool v6 = is_ipv6(key.family);
    const char* via = value.workload ? "peer" : "neigh";
    if (context.json()) {
      Json row = Json::object();
      row["in_interface"] = names(key.ifindex);
      row["in_ifindex"] = key.ifindex;
      row["family"] = v6 ? 6 : 4;
      row["src"] = output::address_text(v6, key.src);
      row["dst"] = output::address_text(v6, key.dst);
      row["tos"] = key.tos;
      row["out_interface"] = names(value.ifindex);
      row["out_ifindex"] = value.ifindex;
      row["next_hop"] = output::address_text(v6, value.nexthop);
      row["dst_mac"] = output::mac_text(value.dmac);
      row["src_mac"] = output::mac_text(value.smac);
      row["via"] = via;
      row["epoch"] = value.epoch;
      row["age_ms"] = static_cast<unsigned long long>(age / 1000000);
      row["state"] = state;
      rows.push_back(std::move(row));
    } else {
      table.add_row({names(key.ifindex), output::address_text(v6, key.src),
                     output::address_text(v6, key.dst), names(value.ifindex),
                     output::address_text(v6, value.nexthop), output::mac_text(value.dmac),
                     output::mac_text(value.smac), via, age_text(age), state});
    }
  }
  if (context.json()) {
    Json out = Json::object();
    out["epoch"] = cache.epoch;
    out["max_age_ms"] = static_cast<unsigned long long>(SL_ROUTE_CACHE_MAX_AGE_NS / 1000000);
    out["routes"] = std::move(rows);
    sluice::output::print(std::cout, out);
    return kExitOk;
  }
  std::cout << "route cache epoch " << cache.epoch << ", " << cache.routes.size() << " route(s)\n";
  if (!table.empty()) table.print(std::cout);
  return kExitOk;
}

int run_routes_flush(Context& context, const CliValues&) {
  PinnedMaps maps(context.config());
  maps.require_compatible();
  // The daemon's invalidation, done the same way: entries stay in the LRU
  // map and are replaced by the next lookup of their flow.
  std::uint32_t zero = 0, before = read_epoch(maps), after = before + 1;
  if (bpf_map_update_elem(epoch_fd(maps), &zero, &after, BPF_ANY) != 0)
    throw CtlError("cannot write " + maps.path(SL_MAP_ROUTE_EPOCH) + ": " + std::strerror(errno));
  if (context.json()) {
    Json out = Json::object();
    out["epoch_before"] = before;
    out["epoch"] = after;
    sluice::output::print(std::cout, out);
  } else {
    std::cout << "route cache epoch " << before << " -> " << after
              << ": every cached route is stale; each flow's next packet asks the FIB again\n";
  }
  return kExitOk;
}

// The neighbours the fast path writes frames for: one line per next hop and
// interface, the freshest of its routes deciding its state.
int run_arp_dump(Context& context, const CliValues&) {
  PinnedMaps maps(context.config());
  maps.require_compatible();
  RouteCache cache = read_route_cache(maps);
  InterfaceNames names(maps);

  struct Neighbour {
    std::uint32_t ifindex;
    std::uint8_t family;
    std::array<__be32, 4> next_hop;
    std::uint8_t dmac[6], smac[6];
    std::size_t routes = 0;
    bool fresh = false;
    bool workload = false;
  };
  std::map<std::tuple<std::uint32_t, std::uint8_t, std::array<__be32, 4>>, Neighbour> neighbours;
  for (const auto& [key, value, age, state] : cache.routes) {
    auto next_hop = std::to_array(value.nexthop);
    auto [it, added] = neighbours.try_emplace({value.ifindex, key.family, next_hop});
    Neighbour& n = it->second;
    const bool fresh = state == "fresh";
    if (added || (fresh && !n.fresh)) {  // the MACs of a route the fast path still uses
      n.ifindex = value.ifindex;
      n.family = key.family;
      n.next_hop = next_hop;
      std::copy(std::begin(value.dmac), std::end(value.dmac), n.dmac);
      std::copy(std::begin(value.smac), std::end(value.smac), n.smac);
      n.workload = value.workload;
    }
    n.fresh |= fresh;
    ++n.routes;
  }

  Json rows = Json::array();
  Table table({{"INTERFACE"},
               {"IFINDEX", Table::Align::right},
               {"NEXT-HOP"},
               {"SRC-MAC"},
               {"DST-MAC"},
               {"ROUTES", Table::Align::right},
               {"STATE"}});
  for (const auto& [where, n] : neighbours) {
    const bool v6 = is_ipv6(n.family);
    const std::string state = n.fresh ? "fresh" : "stale";
    if (context.json()) {
      Json row = Json::object();
      row["interface"] = names(n.ifindex);
      row["ifindex"] = n.ifindex;
      row["next_hop"] = output::address_text(v6, n.next_hop.data());
      row["src_mac"] = output::mac_text(n.smac);
      row["dst_mac"] = output::mac_text(n.dmac);
      row["workload"] = n.workload;
      row["routes"] = static_cast<unsigned long long>(n.routes);
      row["state"] = state;
      rows.push_back(std::move(row));
    } else {
      table.add_row({names(n.ifindex), std::to_string(n.ifindex),
                     output::address_text(v6, n.next_hop.data()), output::mac_text(n.smac),
                     output::mac_text(n.dmac), std::to_string(n.routes), state});
    }
  }
  if (context.json())
    sluice::output::print(std::cout, rows);
  else if (table.empty())
    std::cout << "no neighbours: the route cache is empty (no established flow took the fast "
                 "path yet)\n";
  else
    table.print(std::cout);
  return kExitOk;
}

}  // namespace

std::vector<CliCommand> routes_commands(Context& context) {
  CliCommand dump;
  dump.path = {"routes", "dump"};
  dump.summary = "the fast path's cached routes: where established flows are forwarded";
  dump.description =
      "Lists sl_route_cache: the bpf_fib_lookup() answers the fast path forwards\n"
      "established flows by, without the host stack. One line per (arrival interface,\n"
      "source, destination):\n"
      "\n"
      "  IN               the interface the flow's packets arrive on\n"
      "  SOURCE,          the packet's addresses, as looked up\n"
      "  DESTINATION\n"
      "  OUT, NEXT-HOP    the route: the interface packets leave by and the next hop\n"
      "                   (the destination itself when it is on the link)\n"
      "  DST-MAC,         the Ethernet addresses written into the packets\n"
      "  SRC-MAC\n"
      "  VIA              peer: into a managed workload's namespace\n"
      "                   (bpf_redirect_peer); neigh: out of the interface\n"
      "  AGE              since the FIB was asked\n"
      "  STATE            fresh: in use; stale: routes, rules, neighbours, addresses,\n"
      "                   links or managed interfaces changed since (or `routes\n"
      "                   flush`), expired: older than 1 s. Either way the flow's next\n"
      "                   packet asks the FIB again.\n"
      "\n"
      "JSON: {epoch, max_age_ms, routes: [{in_interface, in_ifindex, family, src, dst,\n"
      "tos, out_interface, out_ifindex, next_hop, dst_mac, src_mac, via, epoch, age_ms,\n"
      "state}]}\n"
      "\n"
      "Examples:\n"
      "  sluicectl routes dump\n"
      "  sluicectl -o json routes dump";
  dump.run = builtin(context, run_routes_dump);

  CliCommand flush;
  flush.path = {"routes", "flush"};
  flush.summary = "make every cached route stale, so flows look their route up again";
  flush.description =
      "Bumps sl_route_epoch, as sluiced does on every routing change it sees: each\n"
      "established flow's next packet asks the FIB again. Works while sluiced is down.\n"
      "Use it to rule the cache out when a flow does not follow a routing change.\n"
      "\n"
      "JSON: {epoch_before, epoch}";
  flush.run = builtin(context, run_routes_flush);

  CliCommand arp;
  arp.path = {"arp", "dump"};
  arp.summary = "the neighbours (next hop -> MACs) the fast path sends to";
  arp.description =
      "Lists the next hops of the cached routes (see `routes dump`) with the source\n"
      "and destination MACs the fast path writes for them, the number of routes\n"
      "through each, and whether any of those routes is still fresh.\n"
      "\n"
      "JSON: [{interface, ifindex, next_hop, src_mac, dst_mac, workload, routes, state}]\n"
      "\n"
      "Examples:\n"
      "  sluicectl arp dump";
  arp.run = builtin(context, run_arp_dump);
  return {dump, flush, arp};
}

}  // namespace sluice::ctl
