#include "nat_cli.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <bpf/bpf.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <map>
#include <ostream>

#include <sluice/clock.hpp>
#include <sluice/maps.hpp>
#include <sluice/output.hpp>
#include <sluice/unique_fd.hpp>

#include "resource_fields.hpp"

namespace nat {

using sluice::output::Json;
using Fd = sluice::UniqueFd;

std::vector<std::string> fe_flag_names(std::uint32_t flags) {
  std::vector<std::string> out;
  if (flags & NAT_FE_F_EXTERNAL_LOCAL) out.emplace_back("external-local");
  if (flags & NAT_FE_F_AFFINITY) out.emplace_back("affinity");
  if (flags & NAT_FE_F_EXTERNAL) out.emplace_back("external");
  if (flags & NAT_FE_F_NODE_PORT) out.emplace_back("node-port");
  if (flags & NAT_FE_F_INTERNAL_LOCAL) out.emplace_back("internal-local");
  if (flags & NAT_FE_F_SOURCE_RANGES) out.emplace_back("source-ranges");
  return out;
}

std::vector<std::string> be_flag_names(std::uint32_t flags) {
  std::vector<std::string> out;
  if (flags & NAT_BE_F_LOCAL) out.emplace_back("local");
  if (flags & NAT_BE_F_TERMINATING) out.emplace_back("terminating");
  if (flags & NAT_BE_F_NOT_READY) out.emplace_back("not-ready");
  return out;
}

Json string_list(const std::vector<std::string>& items) {
  Json out = Json::array();
  for (const auto& s : items) out.push_back(s);
  return out;
}

std::string frontend_addr(const nat_fe_key& k) {
  if (k.addr[0] == 0 && k.addr[1] == 0 && k.addr[2] == 0 && k.addr[3] == 0)
    return k.family == 6 ? "*v6" : "*";  // node port: any local address
  return address_text(k.family, k.addr);
}

struct CliMaps {
  Fd frontends, backends, affinity, services;
};

// Every map is checked (Sluice's layout marker beside it, key and value
// sizes) before anything reads it: a foreign map is an error, not garbage.
int open_maps(const sluice::CliContext& context, CliMaps& maps) {
  const std::string& dir = context.map_pin_dir;
  try {
    maps.frontends =
        sluice::PinnedMap<nat_fe_key, nat_fe_value>::open_in_pins(dir, NAT_MAP_FRONTENDS).release();
    maps.backends =
        sluice::PinnedMap<nat_be_key, nat_be_value>::open_in_pins(dir, NAT_MAP_BACKENDS).release();
    maps.affinity =
        sluice::PinnedMap<nat_aff_key, nat_aff_value>::open_in_pins(dir, NAT_MAP_AFFINITY).release();
    maps.services =
        sluice::PinnedMap<__u32, nat_service_name>::open_in_pins(dir, NAT_MAP_SERVICES).release();
    return sluice::kCliOk;
  } catch (const sluice::MapError& error) {
    *context.err << "nat: " << error.what()
                 << (sluice::is_missing_map(error, dir) ? " (is the nat plugin loaded by sluiced?)" : "") << "\n";
    return sluice::kCliFailure;
  }
}

std::string service_name(int fd, std::uint32_t id) {
  nat_service_name name{};
  if (bpf_map_lookup_elem(fd, &id, &name) != 0) return "";
  name.name[sizeof(name.name) - 1] = 0;
  return name.name;
}

std::string frontend_line(const nat_fe_key& k, const nat_fe_value& v) {
  std::string line = frontend_addr(k) + " port " + std::to_string(ntohs(k.port)) + " proto " +
                     std::to_string(k.proto) + " id " + std::to_string(v.id) + " count " +
                     std::to_string(v.count) + " local " + std::to_string(v.local);
  auto flags = fe_flag_names(v.flags);
  if (!flags.empty()) {
    line += " flags";
    for (const auto& f : flags) line += " " + f;
  }
  if (v.flags & NAT_FE_F_AFFINITY) line += " affinity-timeout " + std::to_string(v.affinity_timeout) + "s";
  return line;
}

std::string backend_line(std::uint32_t id, std::uint32_t ordinal,
                       const std::optional<nat_be_value>& v) {
  std::string line = "\t" + std::to_string(id) + ":" + std::to_string(ordinal) + "\t ";
  if (!v) return line + "is missing";
  line += endpoint_text(v->family, v->addr, v->port);
  for (const auto& f : be_flag_names(v->flags)) line += " " + f;
  return line;
}

int run_dump(const sluice::CliContext& context, const sluice::CliValues& values) {
  const bool group = values.flag("group-by-service");
  CliMaps maps;
  if (int rc = open_maps(context, maps)) return rc;
  std::vector<std::pair<nat_fe_key, nat_fe_value>> frontends;
  sluice::for_each_entry<nat_fe_key, nat_fe_value>(maps.frontends.get(), [&](const nat_fe_key& k, const nat_fe_value& v) {
    frontends.emplace_back(k, v);
  });
  std::sort(frontends.begin(), frontends.end(), [](const auto& a, const auto& b) {
    if (a.second.id != b.second.id) return a.second.id < b.second.id;
    return std::memcmp(&a.first, &b.first, sizeof(a.first)) < 0;
  });
  auto backend_list = [&](const nat_fe_value& fe) {
    std::vector<std::pair<std::uint32_t, std::optional<nat_be_value>>> out;
    for (std::uint32_t i = 0; i < fe.total && i < 65536; ++i) {
      nat_be_key k{fe.id, i};
      nat_be_value v{};
      out.emplace_back(i, bpf_map_lookup_elem(maps.backends.get(), &k, &v) == 0
                              ? std::optional<nat_be_value>(v)
                              : std::nullopt);
    }
    return out;
  };
  auto backend_json = [](std::uint32_t ordinal, const std::optional<nat_be_value>& v) {
    Json b = Json::object();
    b["ordinal"] = ordinal;
    if (!v) {
      b["missing"] = true;
      return b;
    }
    b["addr"] = address_text(v->family, v->addr);
    b["port"] = static_cast<int>(ntohs(v->port));
    b["flags"] = string_list(be_flag_names(v->flags));
    return b;
  };
  auto frontend_json = [&](const nat_fe_key& k, const nat_fe_value& v) {
    Json f = Json::object();
    f["addr"] = frontend_addr(k);
    f["port"] = static_cast<int>(ntohs(k.port));
    f["proto"] = static_cast<int>(k.proto);
    f["id"] = v.id;
    f["count"] = v.count;
    f["local"] = v.local;
    f["total"] = v.total;
    f["affinity_timeout"] = v.affinity_timeout;
    f["flags"] = string_list(fe_flag_names(v.flags));
    return f;
  };

  if (!group) {
    if (context.json()) {
      Json out = Json::array();
      for (const auto& [k, v] : frontends) {
        Json f = frontend_json(k, v);
        f["service"] = service_name(maps.services.get(), v.id);
        Json bes = Json::array();
        for (const auto& [i, b] : backend_list(v)) bes.push_back(backend_json(i, b));
        f["backends"] = std::move(bes);
        out.push_back(std::move(f));
      }
      sluice::output::print(*context.out, out);
      return sluice::kCliOk;
    }
    for (const auto& [k, v] : frontends) {
      *context.out << frontend_line(k, v) << "\n";
      for (const auto& [i, b] : backend_list(v)) *context.out << backend_line(v.id, i, b) << "\n";
    }
    return sluice::kCliOk;
  }

  // Grouped: one block per service id, its frontends, then its backends once.
  std::map<std::uint32_t, std::vector<std::size_t>> by_id;
  for (std::size_t n = 0; n < frontends.size(); ++n) by_id[frontends[n].second.id].push_back(n);
  Json out = Json::array();
  for (const auto& [id, indexes] : by_id) {
    std::string name = service_name(maps.services.get(), id);
    const nat_fe_value& first = frontends[indexes[0]].second;
    if (context.json()) {
      Json s = Json::object();
      s["id"] = id;
      s["service"] = name;
      Json fes = Json::array();
      for (auto n : indexes) fes.push_back(frontend_json(frontends[n].first, frontends[n].second));
      s["frontends"] = std::move(fes);
      Json bes = Json::array();
      for (const auto& [i, b] : backend_list(first)) bes.push_back(backend_json(i, b));
      s["backends"] = std::move(bes);
      out.push_back(std::move(s));
      continue;
    }
    *context.out << "service " << (name.empty() ? "?" : name) << " id " << id << "\n";
    for (auto n : indexes)
      *context.out << "  " << frontend_line(frontends[n].first, frontends[n].second) << "\n";
    for (const auto& [i, b] : backend_list(first)) *context.out << backend_line(id, i, b) << "\n";
  }
  if (context.json()) sluice::output::print(*context.out, out);
  return sluice::kCliOk;
}

int run_aff(const sluice::CliContext& context, const sluice::CliValues&) {
  CliMaps maps;
  if (int rc = open_maps(context, maps)) return rc;
  std::uint64_t now = sluice::monotonic_ns();
  Json out = Json::array();
  sluice::for_each_entry<nat_aff_key, nat_aff_value>(maps.affinity.get(), [&](const nat_aff_key& k,
                                                             const nat_aff_value& v) {
    std::string name = service_name(maps.services.get(), k.id);
    std::uint64_t age_ms = now > v.last_ns ? (now - v.last_ns) / 1000000 : 0;
    std::string client = address_text(static_cast<std::uint8_t>(k.family), k.client);
    if (context.json()) {
      Json a = Json::object();
      a["client"] = client;
      a["id"] = k.id;
      a["service"] = name;
      a["backend"] = address_text(v.backend.family, v.backend.addr);
      a["backend_port"] = static_cast<int>(ntohs(v.backend.port));
      a["ordinal"] = v.ordinal;
      a["last_used_ago_ms"] = static_cast<unsigned long long>(age_ms);
      out.push_back(std::move(a));
      return;
    }
    char ago[32];
    std::snprintf(ago, sizeof(ago), "%.1fs", static_cast<double>(age_ms) / 1000.0);
    *context.out << "client " << client << " svc " << k.id << " (" << (name.empty() ? "?" : name)
                 << ") -> " << endpoint_text(v.backend.family, v.backend.addr, v.backend.port)
                 << " ordinal " << v.ordinal << " last used " << ago << " ago\n";
  });
  if (context.json()) sluice::output::print(*context.out, out);
  return sluice::kCliOk;
}


std::vector<sluice::CliCommand> nat_cli_commands() {
sluice::CliCommand dump;
dump.path = {"nat", "dump"};
dump.options = {{"group-by-service", sluice::CliValueKind::flag,
                 "one block per service port: its frontends, then its backends once"}};
dump.summary = "list service frontends and their backends";
dump.description =
    "Prints every frontend of the pinned nat_frontends map as calico-bpf does, then its\n"
    "backends by ordinal (selectable local ones first, terminating / not-ready ones\n"
    "after `count`):\n"
    "  10.96.0.10 port 53 proto 17 id 6 count 2 local 0 flags affinity\n"
    "  \t6:0\t 10.65.0.2:53\n"
    "A node port shows as address * (any local address). --group-by-service prints one\n"
    "block per service port (id) with its name, its frontends, then its backends once.\n"
    "\n"
    "JSON: [{addr, port, proto, id, count, local, total, affinity_timeout, flags, service,\n"
    "backends: [{ordinal, addr, port, flags}]}]; grouped: [{id, service, frontends,\n"
    "backends}]\n"
    "\n"
    "Examples:\n"
    "  sluicectl nat dump\n"
    "  sluicectl nat dump --group-by-service -o json";
dump.run = run_dump;

sluice::CliCommand aff;
aff.path = {"nat", "aff"};
aff.summary = "list session affinity entries (client -> backend)";
aff.description =
    "Prints the nat_affinity map: which backend each client of a service with\n"
    "session_affinity = \"client_ip\" is kept on, and when it was last used.\n"
    "\n"
    "JSON: [{client, id, service, backend, backend_port, ordinal, last_used_ago_ms}]";
aff.run = run_aff;
return {dump, aff};
}

}  // namespace nat
