#include "ct_cli.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <map>
#include <optional>
#include <ostream>

#include <sluice/clock.hpp>
#include <sluice/output.hpp>
#include <sluice/parse.hpp>

#include "ct_cleaner.hpp"
#include "ct_format.hpp"
#include "ct_table.hpp"

namespace ct {

using sluice::output::Json;

int run_dump(const sluice::CliContext& context, const sluice::CliValues& values) {
  const bool raw = values.flag("raw");
  Fd fd;
  if (int rc = open_table(context, fd)) return rc;
  std::vector<Entry> entries = read_entries(fd.get());
  std::uint64_t now = sluice::monotonic_ns();
  if (context.json()) {
    Json out = Json::array();
    for (const auto& e : entries)
      if (raw || e.value.type != SL_CT_TYPE_NAT_FWD) out.push_back(entry_json(e, now));
    sluice::output::print(*context.out, out);
    return sluice::kCliOk;
  }
  std::size_t shown = 0;
  for (const auto& e : entries) {
    if (raw) {
      *context.out << raw_text(e, now) << "\n";
      ++shown;
      continue;
    }
    if (e.value.type == SL_CT_TYPE_NAT_FWD) continue;  // shown through its NAT_REV
    std::string line = flow_text(e.key, e.value);
    if (e.key.proto == IPPROTO_TCP)
      line += " " + state_name(sl_ct_state_of(e.key.proto, &e.value));
    line += " Active ago " + seconds_text(now - e.value.last_seen_ns);
    std::vector<std::string> flags = flag_names(e.value.flags & ~SL_CT_F_BA);
    for (const auto& name : flags) line += " " + name;
    if (e.value.flags & SL_CT_F_NP_FWD)
      line += " via " + address(e.key.family, e.value.tun_ip);
    *context.out << line << "\n";
    ++shown;
  }
  if (shown == 0) *context.out << "no conntrack entries\n";
  return sluice::kCliOk;
}

int run_stats(const sluice::CliContext& context, const sluice::CliValues&) {
  Fd fd;
  if (int rc = open_table(context, fd)) return rc;
  std::vector<Entry> entries = read_entries(fd.get());
  std::uint32_t size = max_entries_of(fd.get());
  std::map<std::pair<std::string, std::string>, std::uint64_t> by;
  std::uint64_t nat_fwd = 0;
  for (const auto& e : entries) {
    if (e.value.type == SL_CT_TYPE_NAT_FWD) {
      ++nat_fwd;
      continue;
    }
    by[{proto_name(e.key.proto), state_name(sl_ct_state_of(e.key.proto, &e.value))}]++;
  }
  Fd stats_fd;
  if (int rc = open_stats(context, stats_fd)) return rc;
  ct_stats stats = read_stats(stats_fd.get());

  if (context.json()) {
    Json out = Json::object();
    out["table_size"] = size;
    out["entries"] = static_cast<unsigned long>(entries.size());
    out["nat_fwd_entries"] = static_cast<unsigned long long>(nat_fwd);
    Json list = Json::array();
    for (const auto& [k, n] : by) {
      Json row = Json::object();
      row["proto"] = k.first;
      row["state"] = k.second;
      row["entries"] = static_cast<unsigned long long>(n);
      list.push_back(std::move(row));
    }
    out["by_state"] = std::move(list);
    out["created_total"] = static_cast<unsigned long long>(stats.created);
    out["table_full_dropped_total"] = static_cast<unsigned long long>(stats.full_dropped);
    out["table_full_passed_total"] = static_cast<unsigned long long>(stats.full_passed);
    sluice::output::print(*context.out, out);
    return sluice::kCliOk;
  }
  char fill[32];
  std::snprintf(fill, sizeof(fill), "%.1f%%",
                size ? 100.0 * static_cast<double>(entries.size()) / size : 0.0);
  *context.out << "Conntrack table size: " << size << "\n"
               << "Total entries:        " << entries.size() << " (" << fill << " full)\n"
               << "NAT_FWD entries:      " << nat_fwd << "\n"
               << "Created (total):      " << stats.created << "\n"
               << "Table full, dropped:  " << stats.full_dropped << "\n"
               << "Table full, passed:   " << stats.full_passed << "\n\n";
  sluice::output::Table table({{"PROTO"}, {"STATE"}, {"ENTRIES", sluice::output::Table::Align::right}});
  for (const auto& [k, n] : by) table.add_row({k.first, k.second, std::to_string(n)});
  if (!table.empty()) table.print(*context.out);
  return sluice::kCliOk;
}

int run_remove(const sluice::CliContext& context, const sluice::CliValues& values) {
  std::vector<std::string> args = {values.text("proto"), values.text("ip")};
  if (values.has("peer")) args.push_back(values.text("peer"));
  std::optional<int> proto = parse_proto(args[0]);
  if (!proto) {
    *context.err << "conntrack remove: '" << args[0]
                 << "' is not a protocol (tcp, udp, icmp, icmpv6, sctp, a number or any)\n";
    return sluice::kCliUsage;
  }
  auto address1 = sluice::parse::ip_address(args[1]);
  auto address2 = args.size() == 3 ? sluice::parse::ip_address(args[2]) : address1;
  if (!address1 || !address2) {
    *context.err << "conntrack remove: " << (address1 ? address2 : address1).error() << "\n";
    return sluice::kCliUsage;
  }
  const std::uint8_t family1 = address1->family, family2 = address2->family;
  const std::array<__be32, 4>& ip1 = address1->words;
  const std::array<__be32, 4>& ip2 = address2->words;
  Fd fd;
  if (int rc = open_table(context, fd)) return rc;
  auto same = [](const __be32* a, const std::array<__be32, 4>& b) {
    return std::memcmp(a, b.data(), 16) == 0;
  };
  std::uint64_t removed = 0;
  for (const auto& e : read_entries(fd.get())) {
    const sl_ct_key& k = e.key;
    if (*proto >= 0 && k.proto != *proto) continue;
    if (k.family != family1) continue;
    bool match;
    if (args.size() == 3)
      match = k.family == family2 && ((same(k.addr_a, ip1) && same(k.addr_b, ip2)) ||
                                      (same(k.addr_a, ip2) && same(k.addr_b, ip1)));
    else
      match = same(k.addr_a, ip1) || same(k.addr_b, ip1);
    if (match && bpf_map_delete_elem(fd.get(), &k) == 0) ++removed;
  }
  if (context.json()) {
    Json out = Json::object();
    out["removed"] = static_cast<unsigned long long>(removed);
    sluice::output::print(*context.out, out);
  } else {
    *context.out << "removed " << removed << " entr" << (removed == 1 ? "y" : "ies") << "\n";
  }
  return sluice::kCliOk;
}

int run_clean(const sluice::CliContext& context, const sluice::CliValues& values,
              const Settings& settings) {
  const bool all = values.flag("all");
  Fd table;
  if (int rc = open_table(context, table)) return rc;
  std::string error;
  CleanerSkeleton skel = open_cleaner(context.map_pin_dir, max_entries_of(table.get()), settings, error);
  if (skel && conntrack_cleaner__load(skel.get()) != 0)
    error = std::string("cannot load the conntrack cleaner: ") + std::strerror(errno);
  CleanResult result;
  if (error.empty()) {
    if (int e = run_cleaner(bpf_program__fd(skel->progs.conntrack_clean), all, result))
      error = std::string("cleaner run failed: ") + std::strerror(e);
  }
  if (!error.empty()) {
    *context.err << "conntrack clean: " << error << "\n";
    return sluice::kCliFailure;
  }
  if (context.json()) {
    Json out = Json::object();
    out["scanned"] = result.scanned;
    out["removed"] = result.deleted;
    sluice::output::print(*context.out, out);
  } else {
    *context.out << "removed " << result.deleted << " of " << result.scanned
                 << (all ? " entries\n" : " entries (expired)\n");
  }
  return sluice::kCliOk;
}

std::vector<sluice::CliCommand> conntrack_cli_commands(const Settings& settings) {
sluice::CliCommand dump;
dump.path = {"conntrack", "dump"};
dump.options = {{"raw", sluice::CliValueKind::flag,
                 "every entry as stored, with its key, type, flags and both legs"}};
dump.summary = "list tracked connections";
dump.description =
    "Prints one line per connection from the pinned sl_conntrack table, opener first:\n"
    "  TCP 10.0.0.9:42642 -> 10.96.0.50:8385 ESTABLISHED Active ago 1.2s\n"
    "NAT_REV entries show the service address between client and backend; NAT_FWD\n"
    "stubs are hidden. --raw prints every entry with its key as stored (A <-> B),\n"
    "type, flags and both legs (packets, bytes, interface, syn/ack/fin/rst/approved).\n"
    "\n"
    "JSON: [{proto, family, type, key, flags, src, sport, dst, dport, state,\n"
    "last_seen_ago_ms, age_ms, a_to_b, b_to_a, ...}]\n"
    "\n"
    "Examples:\n"
    "  sluicectl conntrack dump\n"
    "  sluicectl conntrack dump --raw -o json";
dump.run = run_dump;

sluice::CliCommand stats;
stats.path = {"conntrack", "stats"};
stats.summary = "conntrack entries by protocol and state, table size, full-table counts";
stats.description =
    "Counts the entries of sl_conntrack by protocol and state, and prints the table\n"
    "size and how many new flows were dropped (table_full = \"drop-new\") or passed\n"
    "untracked because the table was full.\n"
    "\n"
    "JSON: {table_size, entries, nat_fwd_entries, by_state: [{proto, state, entries}],\n"
    "created_total, table_full_dropped_total, table_full_passed_total}";
stats.run = run_stats;

sluice::CliCommand remove;
remove.path = {"conntrack", "remove"};
remove.options = {
    {"proto", sluice::CliValueKind::text, "tcp, udp, icmp, icmpv6, sctp, a number, or any", "",
     "proto|any", true, true},
    {"ip", sluice::CliValueKind::text, "an address of the entries", "", "ip", true, true},
    {"peer", sluice::CliValueKind::text, "the other address (only entries between the two)", "",
     "ip", true, false}};
remove.summary = "delete the entries of one address, or of a pair of addresses";
remove.description =
    "Deletes every entry of protocol <proto> (tcp, udp, icmp, icmpv6, sctp, a number, or\n"
    "any) with <ip> as either endpoint, or with exactly the two addresses given. The\n"
    "next packet of a removed TCP flow is picked up mid-stream (tcp_midstream_pickup)\n"
    "or seen as invalid.\n"
    "\n"
    "Examples:\n"
    "  sluicectl conntrack remove tcp 10.65.0.3\n"
    "  sluicectl conntrack remove any 10.65.0.3 10.96.0.10";
remove.run = run_remove;

sluice::CliCommand clean;
clean.path = {"conntrack", "clean"};
clean.options = {{"all", sluice::CliValueKind::flag, "remove every entry, not only the expired ones"}};
clean.summary = "run the cleaner now (expired entries), or empty the table";
clean.description =
    "Runs one pass of the conntrack cleaner, with the timeouts of the configuration,\n"
    "and prints how many entries it removed. --all removes every entry.\n"
    "\n"
    "JSON: {scanned, removed}";
clean.run = [settings](const sluice::CliContext& context, const sluice::CliValues& values) {
  return run_clean(context, values, settings);
};
return {dump, stats, remove, clean};
}

}  // namespace ct
