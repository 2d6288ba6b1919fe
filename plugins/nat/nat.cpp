// The nat plugin: service load balancing (kube-proxy replacement) on top of
// the conntrack table. The stage (nat_stage.bpf.c, order 300) DNATs new flows
// to a backend and reverse-NATs replies; this file turns [[service]] tables
// of the state files into the nat_frontends / nat_backends maps, as a diff,
// and offers `sluicectl nat dump` / `nat aff`. See README.md.
//
// [plugins.nat]
//   no_backend = "reject"   new flows to a service without a backend: "reject"
//                           (ICMP / ICMPv6 port unreachable back to the client) or "drop"
//   connect_time_lb = "all" processes on the node: backends picked at connect time
//                           ("off" | "tcp" | "udp" | "all"; connect_lb.hpp)
//   connect_time_lb_cgroup = "/sys/fs/cgroup"   the cgroup v2 directory it applies to
#include <arpa/inet.h>
#include <netinet/in.h>
#include <time.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <ostream>
#include <set>
#include <span>
#include <string>
#include <tuple>
#include <vector>

#include <sluice/bpf/conntrack.h>
#include <sluice/cli.hpp>
#include <sluice/config.hpp>
#include <sluice/metrics.hpp>
#include <sluice/output.hpp>
#include <sluice/clock.hpp>
#include <sluice/plugin.hpp>
#include <sluice/unique_fd.hpp>
#include <sluice/resource_blocks.hpp>
#include <sluice/resources.hpp>

#include "connect_lb.hpp"
#include <sluice/maps.hpp>

#include "map_key.hpp"
#include "nat_layout.h"
#include "nat_stage.skel.h"

namespace {

using sluice::ConfigError;
using sluice::config::Table;
using sluice::output::Json;

// ---- addresses ------------------------------------------------------------------

struct Address {
  std::uint8_t family = 0;  // 4 or 6
  std::array<__be32, 4> words{};
  bool operator==(const Address&) const = default;
};

std::optional<Address> parse_address(const std::string& text) {
  Address a;
  if (inet_pton(AF_INET, text.c_str(), a.words.data()) == 1) {
    a.family = 4;
    return a;
  }
  a.words = {};
  if (inet_pton(AF_INET6, text.c_str(), a.words.data()) == 1) {
    a.family = 6;
    return a;
  }
  return std::nullopt;
}

std::string address_text(std::uint8_t family, const __be32* words) {
  return sluice::output::address_text(family == 6, words);
}

std::string endpoint_text(std::uint8_t family, const __be32* words, __be16 port) {
  return sluice::output::endpoint_text(family == 6, words, port);
}

struct Prefix {
  Address addr;
  std::uint8_t length = 0;
};

std::string proto_text(int proto) {
  return proto == IPPROTO_TCP    ? "tcp"
         : proto == IPPROTO_UDP  ? "udp"
         : proto == IPPROTO_SCTP ? "sctp"
                                 : std::to_string(proto);
}

// ---- the desired state of one service, as read from a file --------------------------

struct Position {
  std::string file;
  std::uint32_t line = 0, column = 0;
  std::string key;
};

[[noreturn]] void fail(const Position& at, const std::string& message) {
  throw ConfigError(at.file, at.line, at.column, at.key, message);
}

struct PortSpec {
  std::string name;
  std::uint16_t port = 0;
  std::uint8_t proto = IPPROTO_TCP;
  std::uint16_t target_port = 0;  // 0 with a named target port
  std::string target_port_name;   // resolved per backend from its endpoint's ports
  std::uint16_t node_port = 0;
};

// An [[endpoint]]: a workload with its addresses and named ports. The nat
// plugin reads it for one thing: services whose target_port is a name.
struct EndpointSpec {
  std::string namespace_, name;
  Position at;
  std::vector<Address> ips;
  std::map<std::pair<std::string, std::uint8_t>, std::uint16_t> ports;  // {name, proto} -> port
  std::string key() const { return namespace_ + "/" + name; }
};

struct BackendSpec {
  Address ip;
  std::optional<std::uint16_t> port;
  std::string node;
  bool ready = true;
  bool terminating = false;
};

struct ServiceSpec {
  std::string namespace_, name;
  Position at;  // the [[service]] table
  std::optional<Address> cluster_ip;
  std::vector<Address> external_ips, load_balancer_ips;
  std::vector<Prefix> source_ranges;  // load_balancer_source_ranges
  bool external_local = false;
  bool internal_local = false;
  bool affinity = false;
  std::uint32_t affinity_timeout = 10800;
  std::vector<PortSpec> ports;
  std::vector<BackendSpec> backends;
  std::string key() const { return namespace_ + "/" + name; }
  bool has_named_port() const {
    for (const auto& p : ports)
      if (!p.target_port_name.empty()) return true;
    return false;
  }
};

// A block kept from the previous version of its file (same text: its specs
// are reused) moves when lines, or blocks of its kind, are added or removed
// before it. Every Position a spec keeps moves with it: its line, and the
// list index its key path starts with (service[4123] -> service[4124]).
// A Position added to a spec must be shifted here.
struct BlockShift {
  std::int64_t lines = 0, index = 0;
  bool none() const { return lines == 0 && index == 0; }
  BlockShift back() const { return {-lines, -index}; }
};

void shift(Position& at, const BlockShift& by) {
  at.line = static_cast<std::uint32_t>(at.line + by.lines);
  if (by.index == 0) return;
  // In place, without allocating: every block after an inserted one moves.
  std::size_t open = at.key.find('['), close = at.key.find(']', open);
  if (open == std::string::npos || close == std::string::npos) return;
  std::int64_t index = 0;
  std::from_chars(at.key.data() + open + 1, at.key.data() + close, index);
  char digits[24];
  char* end = std::to_chars(digits, digits + sizeof(digits), index + by.index).ptr;
  at.key.replace(open + 1, close - open - 1, digits, static_cast<std::size_t>(end - digits));
}
void shift(ServiceSpec& s, const BlockShift& by) { shift(s.at, by); }
void shift(EndpointSpec& e, const BlockShift& by) { shift(e.at, by); }

Position position_of(const Table& table, const toml::node* node, std::string_view key) {
  toml::source_position where = table.where(node);
  return Position{table.file(), where.line, where.column, table.key_path(key)};
}

Address read_address(const Table& table, const toml::node& node, std::string_view key) {
  if (!node.is_string()) table.fail_at(&node, key, "expected an IP address (a string)");
  std::string text(node.as_string()->get());
  auto a = parse_address(text);
  if (!a) table.fail_at(&node, key, "'" + text + "' is not an IPv4 or IPv6 address");
  return *a;
}

std::vector<Address> read_address_list(const Table& table, std::string_view key) {
  std::vector<Address> out;
  const toml::node* node = table.node(key);
  if (!node) return out;
  if (!node->is_array()) table.fail_at(node, key, "expected a list of IP addresses");
  for (const toml::node& item : *node->as_array()) out.push_back(read_address(table, item, key));
  return out;
}

// "10.0.0.0/8", "2001:db8::/32"; a bare address is a host prefix.
std::vector<Prefix> read_prefix_list(const Table& table, std::string_view key) {
  std::vector<Prefix> out;
  const toml::node* node = table.node(key);
  if (!node) return out;
  if (!node->is_array()) table.fail_at(node, key, "expected a list of CIDR prefixes");
  for (const toml::node& item : *node->as_array()) {
    if (!item.is_string()) table.fail_at(&item, key, "expected a CIDR prefix (a string)");
    std::string text(item.as_string()->get());
    auto slash = text.find('/');
    auto a = parse_address(text.substr(0, slash));
    if (!a) table.fail_at(&item, key, "'" + text + "' is not a CIDR prefix like 10.0.0.0/8");
    Prefix p{*a, static_cast<std::uint8_t>(a->family == 4 ? 32 : 128)};
    if (slash != std::string::npos) {
      const std::string len = text.substr(slash + 1);
      int value = -1;
      if (!len.empty() && len.size() <= 3 &&
          std::all_of(len.begin(), len.end(), [](char c) { return c >= '0' && c <= '9'; }))
        value = std::stoi(len);
      if (value < 0 || value > p.length)
        table.fail_at(&item, key, "'" + text + "': the prefix length must be 0-" +
                                      std::to_string(p.length));
      p.length = static_cast<std::uint8_t>(value);
    }
    // Host bits are cleared, so "10.1.2.3/8" means 10.0.0.0/8.
    auto* bytes = reinterpret_cast<std::uint8_t*>(p.addr.words.data());
    for (int bit = p.length; bit < (a->family == 4 ? 32 : 128); ++bit)
      bytes[bit / 8] &= static_cast<std::uint8_t>(~(0x80u >> (bit % 8)));
    out.push_back(p);
  }
  return out;
}

// Where a resource table is, and its namespace and name (both required
// non-empty; namespace defaults to "default").
void read_identity(const Table& t, const char* what, Position& at, std::string& namespace_,
                   std::string& name) {
  at = position_of(t, nullptr, "");
  at.key = t.path();
  if (!t.has("name")) t.fail_at(nullptr, "name", std::string(what) + " needs a name");
  name = t.get_string("name", "");
  if (name.empty()) t.fail("name", "must not be empty");
  namespace_ = t.get_string("namespace", "default");
  if (namespace_.empty()) t.fail("namespace", "must not be empty");
}

std::uint8_t read_protocol(const Table& t) {
  std::string proto = t.get_choice("protocol", "tcp", {"tcp", "udp", "sctp", "TCP", "UDP", "SCTP"});
  if (proto == "udp" || proto == "UDP") return IPPROTO_UDP;
  if (proto == "sctp" || proto == "SCTP") return IPPROTO_SCTP;
  return IPPROTO_TCP;
}

ServiceSpec parse_service(const Table& t) {
  t.expect_only({"name", "namespace", "cluster_ip", "ports", "external_ips", "load_balancer_ips",
                 "load_balancer_source_ranges", "external_traffic_policy",
                 "internal_traffic_policy", "session_affinity", "session_affinity_timeout",
                 "backends"});
  ServiceSpec s;
  read_identity(t, "a service", s.at, s.namespace_, s.name);
  if (const toml::node* n = t.node("cluster_ip")) s.cluster_ip = read_address(t, *n, "cluster_ip");
  s.external_ips = read_address_list(t, "external_ips");
  s.load_balancer_ips = read_address_list(t, "load_balancer_ips");
  s.source_ranges = read_prefix_list(t, "load_balancer_source_ranges");
  if (!s.source_ranges.empty() && s.load_balancer_ips.empty())
    t.fail("load_balancer_source_ranges",
           "limits who may reach the load_balancer_ips, and the service has none");
  s.external_local =
      t.get_choice("external_traffic_policy", "cluster", {"cluster", "local"}) == "local";
  s.internal_local =
      t.get_choice("internal_traffic_policy", "cluster", {"cluster", "local"}) == "local";
  s.affinity = t.get_choice("session_affinity", "none", {"none", "client_ip"}) == "client_ip";
  s.affinity_timeout =
      static_cast<std::uint32_t>(t.get_int("session_affinity_timeout", 10800, 1, 86400));
  if (t.has("session_affinity_timeout") && !s.affinity)
    t.fail("session_affinity_timeout", "needs session_affinity = \"client_ip\"");

  auto ports = t.get_table_list("ports");
  if (ports.empty()) t.fail_at(t.node("ports"), "ports", "a service needs at least one port");
  std::set<std::pair<std::uint16_t, std::uint8_t>> seen_ports;
  std::set<std::string> seen_names;
  for (const Table& p : ports) {
    p.expect_only({"name", "port", "protocol", "target_port", "node_port"});
    PortSpec port;
    if (!p.has("port")) p.fail_at(nullptr, "port", "a port needs port = <1-65535>");
    port.port = static_cast<std::uint16_t>(p.get_int("port", 0, 1, 65535));
    port.proto = read_protocol(p);
    if (const toml::node* tp = p.node("target_port"); tp && tp->is_string()) {
      port.target_port_name = std::string(tp->as_string()->get());
      if (port.target_port_name.empty() || port.target_port_name.size() > 63)
        p.fail("target_port", "a named target port is 1-63 characters (a port name of the "
                              "backends' [[endpoint]] tables)");
      if (port.proto == IPPROTO_SCTP)
        p.fail("target_port", "an SCTP port cannot be translated (its CRC32c covers the ports): "
                              "give target_port = port, not a name");
    } else {
      port.target_port =
          static_cast<std::uint16_t>(p.get_int("target_port", port.port, 1, 65535));
    }
    port.node_port = static_cast<std::uint16_t>(p.get_int("node_port", 0, 1, 65535));
    // See nat_rewrite(): an SCTP port change would need the whole CRC32c.
    if (port.proto == IPPROTO_SCTP && port.target_port_name.empty() &&
        port.target_port != port.port)
      p.fail("target_port", "an SCTP port cannot be translated (its CRC32c covers the ports): "
                            "give target_port = port");
    if (port.proto == IPPROTO_SCTP && port.node_port)
      p.fail("node_port", "an SCTP port cannot be translated (its CRC32c covers the ports), so "
                          "SCTP services have no node ports");
    port.name = p.get_string("name", std::to_string(port.port) + "/" + proto_text(port.proto));
    if (!seen_ports.insert({port.port, port.proto}).second)
      p.fail("port", "port " + std::to_string(port.port) + "/" + proto_text(port.proto) +
                         " is listed twice");
    if (!seen_names.insert(port.name).second)
      p.fail("name", "port name '" + port.name + "' is used twice");
    s.ports.push_back(port);
  }

  std::set<std::pair<std::array<__be32, 4>, int>> seen_backends;
  std::vector<Position> backend_positions;  // for the family check below
  for (const Table& b : t.get_table_list("backends")) {
    b.expect_only({"ip", "port", "node", "ready", "terminating"});
    BackendSpec be;
    Position& at = backend_positions.emplace_back(position_of(b, nullptr, ""));
    at.key = b.path();
    const toml::node* ip = b.node("ip");
    if (!ip) b.fail_at(nullptr, "ip", "a backend needs ip = \"<address>\"");
    be.ip = read_address(b, *ip, "ip");
    if (b.has("port")) {
      for (const auto& p : s.ports)
        if (p.proto == IPPROTO_SCTP)
          b.fail("port", "an SCTP service keeps its port: backends take no port of their own");
      if (s.ports.size() > 1)
        b.fail("port", "a service with several ports sets target_port per port, not a port "
                       "per backend");
      be.port = static_cast<std::uint16_t>(b.get_int("port", 0, 1, 65535));
    }
    be.node = b.get_string("node", "");
    be.ready = b.get_bool("ready", true);
    be.terminating = b.get_bool("terminating", false);
    if (!seen_backends.insert({be.ip.words, be.port.value_or(0)}).second)
      b.fail("ip", "backend " + address_text(be.ip.family, be.ip.words.data()) +
                       " is listed twice");
    s.backends.push_back(be);
  }

  // One family per service: a frontend only ever gets backends of its family.
  std::uint8_t family = 0;
  auto check_family = [&](const Address& a, const Position& at) {
    if (!family) family = a.family;
    if (a.family != family)
      fail(at, "mixes IPv4 and IPv6 addresses: a service is of one family (declare a "
               "second service for the other)");
  };
  if (s.cluster_ip) check_family(*s.cluster_ip, position_of(t, t.node("cluster_ip"), "cluster_ip"));
  for (const auto& a : s.external_ips)
    check_family(a, position_of(t, t.node("external_ips"), "external_ips"));
  for (const auto& a : s.load_balancer_ips)
    check_family(a, position_of(t, t.node("load_balancer_ips"), "load_balancer_ips"));
  for (std::size_t i = 0; i < s.backends.size(); ++i)
    check_family(s.backends[i].ip, backend_positions[i]);
  for (const auto& r : s.source_ranges)
    check_family(r.addr, position_of(t, t.node("load_balancer_source_ranges"),
                                     "load_balancer_source_ranges"));
  bool any_node_port = false;
  for (const auto& p : s.ports) any_node_port = any_node_port || p.node_port;
  if (!s.cluster_ip && s.external_ips.empty() && s.load_balancer_ips.empty() && !any_node_port)
    t.fail_at(nullptr, "cluster_ip",
              "the service has no frontend: give cluster_ip, external_ips, load_balancer_ips "
              "or a node_port");
  return s;
}

EndpointSpec parse_endpoint(const Table& t) {
  t.expect_only({"name", "namespace", "interface", "ips", "labels", "ports", "node"});
  EndpointSpec e;
  read_identity(t, "an endpoint", e.at, e.namespace_, e.name);
  t.get_string("interface", "");  // the workload's veth: other plugins' business
  t.get_string("node", "");
  if (auto labels = t.table("labels"))
    for (const auto& [key, value] : labels->raw())
      if (!value.is_string())
        labels->fail(key.str(), "a label value is a string");
  e.ips = read_address_list(t, "ips");
  if (e.ips.empty()) t.fail_at(t.node("ips"), "ips", "an endpoint needs ips = [\"<address>\", ...]");
  for (const Table& p : t.get_table_list("ports")) {
    p.expect_only({"name", "port", "protocol"});
    if (!p.has("name")) p.fail_at(nullptr, "name", "a named port needs a name");
    if (!p.has("port")) p.fail_at(nullptr, "port", "a named port needs port = <1-65535>");
    std::string name = p.get_string("name", "");
    std::uint8_t number = read_protocol(p);
    auto port = static_cast<std::uint16_t>(p.get_int("port", 0, 1, 65535));
    if (!e.ports.emplace(std::make_pair(name, number), port).second)
      p.fail("name", "port name '" + name + "' (" + proto_text(number) + ") is listed twice");
  }
  return e;
}

// ---- state files, block by block ------------------------------------------------------

// What nat read from one [[kind]] block of a state file, or from a whole
// file that cannot be read block by block (sluice/resource_blocks.hpp).
struct FileBlock {
  std::vector<ServiceSpec> services;    // a block holds at most one; a whole file any
  std::vector<EndpointSpec> endpoints;  // (other kinds are other plugins')
};

void shift(FileBlock& block, const BlockShift& by) {
  for (auto& s : block.services) shift(s, by);
  for (auto& e : block.endpoints) shift(e, by);
}

// A state file as nat holds it. Read block by block: its text and its
// blocks (kind, first line, index and text: what the next version is
// compared with, contiguous so that comparing streams through memory), and
// what was read from each block. Otherwise (it could not be split, or a
// block could not be parsed alone): one FileBlock for the whole file.
struct FileSpecs {
  std::unique_ptr<std::string> text;                     // set when held by block
  std::vector<sluice::config::ResourceBlock> placement;  // views into *text
  std::vector<std::unique_ptr<FileBlock>> blocks;        // one per placement, or the whole file
  // The text buffer of an earlier version, reused for the next one
  // (sluice::config::spare_text_buffer() says why).
  std::unique_ptr<std::string> spare_text;
  bool by_block() const { return text != nullptr; }
};

void read_resource(std::string_view kind, const Table& table, FileBlock& into) {
  if (kind == "service") into.services.push_back(parse_service(table));
  else if (kind == "endpoint") into.endpoints.push_back(parse_endpoint(table));
}

std::unique_ptr<FileBlock> read_whole_file(const sluice::ResourceFile& file) {
  toml::table root = sluice::config::parse(file.text, file.path);
  Table top(root, file.path, "");
  auto whole = std::make_unique<FileBlock>();
  for (std::string_view kind : {"service", "endpoint"})
    for (const Table& t : top.get_table_list(kind)) read_resource(kind, t, *whole);
  return whole;
}

// What a change does to one file: its blocks between the unchanged ones at
// both ends are removed, `added` take their place, and the unchanged blocks
// after them may move.
struct FileChange {
  FileSpecs* before = nullptr;  // nullptr: nat did not hold the file
  bool gone = false;            // the file is removed
  sluice::config::UnchangedEnds kept;  // of before's blocks
  std::vector<std::unique_ptr<FileBlock>> added;
  std::vector<std::pair<FileBlock*, BlockShift>> moved;  // kept blocks at a new place
  // The new version, when it is read block by block.
  std::unique_ptr<std::string> text;
  std::vector<sluice::config::ResourceBlock> placement;  // views into *text

  std::span<const std::unique_ptr<FileBlock>> removed() const {
    if (!before) return {};
    return std::span(before->blocks).subspan(kept.before,
                                             before->blocks.size() - kept.before - kept.after);
  }
};

FileChange removal_of(FileSpecs* before) {
  FileChange change;
  change.before = before;
  change.gone = true;
  return change;
}

// Reads only the blocks that differ from the file's previous version (all
// of them for a new file), or the whole file when it cannot be read block
// by block. Throws ConfigError for a bad resource, positioned in the file.
FileChange change_of(const sluice::ResourceFile& file, FileSpecs* before) {
  FileChange change;
  change.before = before;
  // Kept if the file is read block by block: its blocks view this copy.
  std::unique_ptr<std::string> text;
  if (before) text = std::move(before->spare_text);
  if (!text) text = std::make_unique<std::string>();
  sluice::config::reserve_text_buffer(*text, file.text.size());
  text->assign(file.text);
  if (auto blocks = sluice::config::split_resource_blocks(*text)) {
    if (before && before->by_block())
      change.kept = sluice::config::unchanged_ends(before->placement, *blocks);
    // Every changed block must parse alone for any to be read alone: one
    // that does not may change what another means (resource_blocks.hpp).
    // So a bad resource is reported once all of them are known to parse.
    std::optional<ConfigError> bad_resource;
    bool by_block = true;
    const std::size_t changed_end = blocks->size() - change.kept.after;
    for (std::size_t i = change.kept.before; by_block && i < changed_end; ++i) {
      const sluice::config::ResourceBlock& at = (*blocks)[i];
      auto parsed = sluice::config::parse_resource_block(at, file.path);
      by_block = parsed.has_value();
      if (!by_block || bad_resource) continue;
      auto block = std::make_unique<FileBlock>();
      try {
        read_resource(at.kind, parsed->table(), *block);
      } catch (const ConfigError& error) {
        bad_resource = error;
      }
      change.added.push_back(std::move(block));
    }
    if (by_block) {
      if (bad_resource) throw *bad_resource;
      for (std::size_t k = 1; k <= change.kept.after; ++k) {
        const sluice::config::ResourceBlock& was = before->placement[before->placement.size() - k];
        const sluice::config::ResourceBlock& now = (*blocks)[blocks->size() - k];
        BlockShift by{static_cast<std::int64_t>(now.first_line) - was.first_line,
                      static_cast<std::int64_t>(now.index) - was.index};
        if (!by.none()) change.moved.emplace_back(before->blocks[before->blocks.size() - k].get(), by);
      }
      change.text = std::move(text);
      change.placement = std::move(*blocks);
      return change;
    }
    change.kept = {};
    change.added.clear();
  }
  change.added.push_back(read_whole_file(file));
  return change;
}

// Kept blocks that moved take their new place for the time of a reconcile,
// so errors name the lines and key paths of the new version; back unless
// the change is applied.
class MovedBlocks {
 public:
  explicit MovedBlocks(const std::map<std::string, FileChange>& files) {
    for (const auto& [path, change] : files)
      for (const auto& [block, by] : change.moved) {
        shift(*block, by);
        moved_.emplace_back(block, by);
      }
  }
  MovedBlocks(const MovedBlocks&) = delete;
  MovedBlocks& operator=(const MovedBlocks&) = delete;
  ~MovedBlocks() {
    if (!kept_)
      for (const auto& [block, by] : moved_) shift(*block, by.back());
  }
  void keep() { kept_ = true; }

 private:
  std::vector<std::pair<FileBlock*, BlockShift>> moved_;
  bool kept_ = false;
};

// The endpoint holding each address: where backends find their named ports.
using AddressKey = std::pair<std::uint8_t, std::array<__be32, 4>>;
using EndpointIndex = std::map<AddressKey, const EndpointSpec*>;

// The endpoints' addresses as a change leaves them: `changes` (nullptr: no
// endpoint holds the address any more) over the held index.
struct NamedPorts {
  const EndpointIndex& held;
  EndpointIndex changes;
  const EndpointSpec* endpoint_at(const Address& ip) const {
    AddressKey key{ip.family, ip.words};
    if (auto it = changes.find(key); it != changes.end()) return it->second;
    auto it = held.find(key);
    return it == held.end() ? nullptr : it->second;
  }
};

// ---- map entries ----------------------------------------------------------------------

using FeKey = nat::MapKey<nat_fe_key>;
using RangeKey = nat::MapKey<nat_src_range_key>;

// The entries of one service port (one service id).
struct PortEntries {
  std::uint32_t id = 0;
  std::string label;  // "namespace/name:port-name"
  std::map<FeKey, nat_fe_value> frontends;
  std::vector<nat_be_value> backends;  // by ordinal
  std::set<RangeKey> source_ranges;    // nat_src_ranges keys of this id
  std::uint32_t ready = 0, terminating = 0, not_ready = 0;
  bool operator==(const PortEntries& o) const {
    if (id != o.id || frontends.size() != o.frontends.size() ||
        backends.size() != o.backends.size() || source_ranges != o.source_ranges)
      return false;
    for (auto a = frontends.begin(), b = o.frontends.begin(); a != frontends.end(); ++a, ++b)
      if (!(a->first == b->first) || !nat::same_bytes(a->second, b->second)) return false;
    for (std::size_t i = 0; i < backends.size(); ++i)
      if (!nat::same_bytes(backends[i], o.backends[i])) return false;
    return true;
  }
};

using ServiceEntries = std::map<std::string, PortEntries>;  // by label

std::string port_label(const ServiceSpec& s, const PortSpec& p) { return s.key() + ":" + p.name; }

// The frontend keys of a service (one per address and port), with whether
// they face outside the cluster.
std::vector<std::pair<FeKey, std::uint32_t>> frontends_of(const ServiceSpec& s,
                                                          const PortSpec& p) {
  std::vector<std::pair<FeKey, std::uint32_t>> out;
  auto add = [&](std::uint8_t family, const __be32* words, std::uint16_t port,
                 std::uint32_t flags) {
    FeKey k;
    k.key.family = family;
    k.key.proto = p.proto;
    k.key.port = htons(port);
    if (words) std::memcpy(k.key.addr, words, sizeof(k.key.addr));
    out.emplace_back(k, flags);
  };
  std::uint8_t family = 4;
  if (s.cluster_ip) family = s.cluster_ip->family;
  else if (!s.external_ips.empty()) family = s.external_ips[0].family;
  else if (!s.load_balancer_ips.empty()) family = s.load_balancer_ips[0].family;
  else if (!s.backends.empty()) family = s.backends[0].ip.family;
  if (s.cluster_ip)
    add(family, s.cluster_ip->words.data(), p.port, s.internal_local ? NAT_FE_F_INTERNAL_LOCAL : 0);
  for (const auto& a : s.external_ips) add(family, a.words.data(), p.port, NAT_FE_F_EXTERNAL);
  for (const auto& a : s.load_balancer_ips)
    add(family, a.words.data(), p.port,
        NAT_FE_F_EXTERNAL | (s.source_ranges.empty() ? 0 : NAT_FE_F_SOURCE_RANGES));
  if (p.node_port) add(family, nullptr, p.node_port, NAT_FE_F_EXTERNAL | NAT_FE_F_NODE_PORT);
  return out;
}

// The backend's port for service port p: its own port, the number, or its
// endpoint's port of that name (0: it has none, so it cannot serve p).
std::uint16_t backend_port(const BackendSpec& b, const PortSpec& p, const NamedPorts& named) {
  if (b.port) return *b.port;
  if (p.target_port_name.empty()) return p.target_port;
  const EndpointSpec* endpoint = named.endpoint_at(b.ip);
  if (!endpoint) return 0;
  auto port = endpoint->ports.find({p.target_port_name, p.proto});
  return port == endpoint->ports.end() ? 0 : port->second;
}

PortEntries entries_of(const ServiceSpec& s, const PortSpec& p, std::uint32_t id,
                       const std::string& node, const NamedPorts& named) {
  PortEntries e;
  e.id = id;
  e.label = port_label(s, p);
  // Ordinals: selectable local, selectable remote, then the rest (nat_layout.h).
  enum Group { kSelectableLocal, kSelectableRemote, kUnselectable };
  std::array<std::vector<nat_be_value>, 3> groups;
  for (const auto& b : s.backends) {
    const std::uint16_t port = backend_port(b, p, named);
    const bool local = !b.node.empty() && b.node == node;
    // A backend without the named port cannot take this port's flows.
    const bool selectable = b.ready && !b.terminating && port != 0;
    nat_be_value v{};
    v.family = b.ip.family;
    std::memcpy(v.addr, b.ip.words.data(), sizeof(v.addr));
    v.port = htons(port);
    if (local) v.flags |= NAT_BE_F_LOCAL;
    if (b.terminating) v.flags |= NAT_BE_F_TERMINATING;
    if (!b.ready || !port) v.flags |= NAT_BE_F_NOT_READY;
    groups[!selectable ? kUnselectable : local ? kSelectableLocal : kSelectableRemote].push_back(v);
    if (b.terminating) ++e.terminating;
    else if (!selectable) ++e.not_ready;
  }
  const auto local = static_cast<std::uint32_t>(groups[kSelectableLocal].size());
  const auto count = local + static_cast<std::uint32_t>(groups[kSelectableRemote].size());
  e.backends.reserve(s.backends.size());
  for (auto& group : groups) e.backends.insert(e.backends.end(), group.begin(), group.end());
  e.ready = count;
  for (const auto& r : s.source_ranges) {
    RangeKey k;
    k.key.prefixlen = 32u + r.length;
    k.key.id = id;
    std::memcpy(k.key.addr, r.addr.words.data(), sizeof(k.key.addr));
    e.source_ranges.insert(k);
  }
  for (const auto& [key, kind] : frontends_of(s, p)) {
    nat_fe_value v{};
    v.id = id;
    v.count = count;
    v.local = local;
    v.total = static_cast<std::uint32_t>(e.backends.size());
    v.flags = kind;
    if ((kind & NAT_FE_F_EXTERNAL) && s.external_local) v.flags |= NAT_FE_F_EXTERNAL_LOCAL;
    if (s.affinity) {
      v.flags |= NAT_FE_F_AFFINITY;
      v.affinity_timeout = s.affinity_timeout;
    }
    e.frontends[key] = v;
  }
  return e;
}

// ---- the plugin's maps --------------------------------------------------------------

using Fd = sluice::UniqueFd;

struct StageDestroyer {
  void operator()(nat_stage* skel) const { nat_stage__destroy(skel); }
};
using StageSkeleton = std::unique_ptr<nat_stage, StageDestroyer>;

[[noreturn]] void map_failure(const char* what, const char* map) {
  throw std::runtime_error(std::string("nat: cannot ") + what + " an entry of " + map + ": " +
                           std::strerror(errno));
}

template <class K, class V>
void map_put(int fd, const char* name, const K& key, const V& value) {
  if (bpf_map_update_elem(fd, &key, &value, BPF_ANY) != 0) map_failure("write", name);
}

template <class K>
void map_del(int fd, const char* name, const K& key) {
  if (bpf_map_delete_elem(fd, &key) != 0 && errno != ENOENT) map_failure("delete", name);
}


struct MapFds {
  int frontends = -1, backends = -1, affinity = -1, services = -1, src_ranges = -1;
};

// Writes what differs between `old` (nullptr: nothing applied) and `now`
// (nullptr: remove). Order keeps every frontend pointing at written backends.
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

// ---- CLI -------------------------------------------------------------------------------

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

int open_maps(const sluice::CliContext& context, CliMaps& maps) {
  auto open = [&](const char* name, Fd& fd) {
    std::string path = context.map_pin_dir + "/" + name;
    fd.reset(bpf_obj_get(path.c_str()));
    if (!fd) {
      *context.err << "nat: cannot open " << path << ": " << std::strerror(errno)
                   << " (is the nat plugin loaded by sluiced?)\n";
      return false;
    }
    return true;
  };
  if (!open(NAT_MAP_FRONTENDS, maps.frontends) || !open(NAT_MAP_BACKENDS, maps.backends) ||
      !open(NAT_MAP_AFFINITY, maps.affinity) || !open(NAT_MAP_SERVICES, maps.services))
    return sluice::kCliFailure;
  return sluice::kCliOk;
}

std::string service_name(int fd, std::uint32_t id) {
  nat_service_name name{};
  if (bpf_map_lookup_elem(fd, &id, &name) != 0) return "";
  name.name[sizeof(name.name) - 1] = 0;
  return name.name;
}

int run_dump(const sluice::CliContext& context) {
  bool group = false;
  for (const auto& arg : context.args) {
    if (arg == "--group-by-service") {
      group = true;
    } else {
      *context.err << "nat dump: unknown argument '" << arg
                   << "' (usage: nat dump [--group-by-service])\n";
      return sluice::kCliUsage;
    }
  }
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
  auto frontend_line = [&](const nat_fe_key& k, const nat_fe_value& v) {
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
  };
  auto backend_line = [&](std::uint32_t id, std::uint32_t ordinal,
                          const std::optional<nat_be_value>& v) {
    std::string line = "\t" + std::to_string(id) + ":" + std::to_string(ordinal) + "\t ";
    if (!v) return line + "is missing";
    line += endpoint_text(v->family, v->addr, v->port);
    for (const auto& f : be_flag_names(v->flags)) line += " " + f;
    return line;
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
      *context.out << out.dump() << "\n";
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
  if (context.json()) *context.out << out.dump() << "\n";
  return sluice::kCliOk;
}

int run_aff(const sluice::CliContext& context) {
  if (!context.args.empty()) {
    *context.err << "nat aff: unexpected argument '" << context.args[0] << "'\n";
    return sluice::kCliUsage;
  }
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
  if (context.json()) *context.out << out.dump() << "\n";
  return sluice::kCliOk;
}

// The max_entries of the pinned conntrack table (the conntrack plugin sets
// it from its configuration before we load).
std::optional<std::uint32_t> pinned_ct_size(const std::string& map_pin_dir) {
  Fd fd(bpf_obj_get((map_pin_dir + "/" SL_MAP_CONNTRACK).c_str()));
  if (!fd) return std::nullopt;
  bpf_map_info info{};
  std::uint32_t len = sizeof(info);
  if (bpf_obj_get_info_by_fd(fd.get(), &info, &len) != 0) return std::nullopt;
  return info.max_entries;
}

// A backend that left a UDP service port: its conntrack flows are removed, so
// a client that keeps its source port (a UDP flow never goes idle while it
// sends) is not held on a backend that is gone. TCP flows are left: the
// client sees the failure and reconnects on a new port.
struct GoneBackend {
  std::uint8_t family;
  std::array<__be32, 4> addr;
  __be16 port;
  __be16 service_port;  // frontend port the flows were addressed to
  bool operator<(const GoneBackend& o) const {
    return std::tie(family, addr, port, service_port) <
           std::tie(o.family, o.addr, o.port, o.service_port);
  }
};

void collect_gone_udp_backends(const PortEntries& old, const PortEntries* now,
                               std::set<GoneBackend>& out) {
  std::set<std::pair<std::array<__be32, 4>, __be16>> kept;
  if (now)
    for (const auto& b : now->backends) {
      std::array<__be32, 4> a{};
      std::memcpy(a.data(), b.addr, sizeof(b.addr));
      kept.insert({a, b.port});
    }
  for (const auto& [fe, v] : old.frontends) {
    if (fe.key.proto != IPPROTO_UDP) continue;
    for (const auto& b : old.backends) {
      std::array<__be32, 4> a{};
      std::memcpy(a.data(), b.addr, sizeof(b.addr));
      if (!kept.count({a, b.port})) out.insert(GoneBackend{b.family, a, b.port, fe.key.port});
    }
  }
}

// Deletes the UDP NAT_REV entries to `gone` backends and their NAT_FWD stubs.
// One pass over the conntrack table; runs only when a UDP backend went away.
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

// ---- the plugin -------------------------------------------------------------------------

// Cilium's service loopback address for IPv4; for IPv6 a unique local
// address of our own. Neither is ever a real peer of a workload.
constexpr const char* kDefaultHairpinV4 = "169.254.42.1";
constexpr const char* kDefaultHairpinV6 = "fd5c:1ce:0:42::1";

// The source address hairpin flows get; "" turns hairpin handling off.
Address read_hairpin_source(const Table& table, std::string_view key, const char* fallback,
                            std::uint8_t family) {
  std::string text = table.get_string(key, fallback);
  if (text.empty()) return Address{};
  auto a = parse_address(text);
  if (!a || a->family != family)
    table.fail(key, "'" + text + "' is not an IPv" + std::to_string(family) +
                        " address (\"\" turns hairpin source NAT off)");
  return *a;
}

// Service-port ids: the lowest free id is reused, so ids stay dense (they
// index nothing, but small numbers read well in `sluicectl nat dump`).
class IdPool {
 public:
  std::uint32_t take_lowest() {
    if (free_below_next_.empty()) return next_++;
    std::uint32_t id = *free_below_next_.begin();
    free_below_next_.erase(free_below_next_.begin());
    return id;
  }
  void take(std::uint32_t id) {
    if (id < next_) {
      free_below_next_.erase(id);
      return;
    }
    for (std::uint32_t gap = next_; gap < id; ++gap) free_below_next_.insert(gap);
    next_ = id + 1;
  }
  void give_back(std::uint32_t id) { free_below_next_.insert(id); }

 private:
  std::set<std::uint32_t> free_below_next_;
  std::uint32_t next_ = 1;  // 0 is never an id
};

class NatPlugin final : public sluice::Plugin {
 public:
  std::string description() const override {
    return "service load balancing: frontends, backends, session affinity, DNAT and reverse NAT";
  }

  std::vector<std::string> requires_plugins() const override { return {"conntrack"}; }

  void configure(const sluice::ConfigSource& source) override {
    sluice::config::PluginTable plugin_table(source);
    const Table& table = plugin_table.table();
    table.expect_only({"no_backend", "hairpin_snat_ipv4", "hairpin_snat_ipv6", "connect_time_lb",
                       "connect_time_lb_cgroup"});
    reject_ = table.get_choice("no_backend", "reject", {"reject", "drop"}) == "reject";
    hairpin_v4_ = read_hairpin_source(table, "hairpin_snat_ipv4", kDefaultHairpinV4, 4);
    hairpin_v6_ = read_hairpin_source(table, "hairpin_snat_ipv6", kDefaultHairpinV6, 6);
    connect_time_lb_config_ = nat::read_connect_time_lb_config(table);
  }

  std::vector<sluice::StageSpec> stages() const override {
    sluice::StageSpec stage{"nat", "nat_stage",
                            sluice::role_bit(SL_ROLE_WORKLOAD) | sluice::role_bit(SL_ROLE_DATA),
                            sluice::hook_bit(SL_HOOK_INGRESS), sluice::order::kNat};
    // Every packet of a NAT flow is rewritten.
    stage.every_packet_hooks = sluice::hook_bit(SL_HOOK_INGRESS);
    stage.may = SL_MAY_DROP | SL_MAY_REWRITE | SL_MAY_REDIRECT;
    stage.scratch_reads = sluice::scratch_bit(SL_SCRATCH_CT_RESULT);
    return {stage};
  }

  void load(sluice::Host& host) override {
    std::string pin_root = host.map_pin_dir();
    auto ct_size = pinned_ct_size(pin_root);
    if (!ct_size)
      throw std::runtime_error("nat: the conntrack table " + pin_root + "/" SL_MAP_CONNTRACK +
                               " is not pinned (the conntrack plugin must load first)");
    LIBBPF_OPTS(bpf_object_open_opts, opts, .pin_root_path = pin_root.c_str());
    StageSkeleton stage(nat_stage__open_opts(&opts));
    if (!stage)
      throw std::runtime_error("cannot open the nat stage BPF object: " +
                               std::string(std::strerror(errno)));
    bpf_map__set_max_entries(stage->maps.sl_conntrack, *ct_size);
    stage->rodata->nat_no_backend_reject = reject_ ? 1 : 0;
    stage->rodata->nat_hairpin_v4 = hairpin_v4_.words[0];
    for (int i = 0; i < 4; ++i) stage->rodata->nat_hairpin_v6[i] = hairpin_v6_.words[i];
    host.load_bpf("nat stage", [&] { return nat_stage__load(stage.get()); });
    // After the stage: its load pinned the service maps the programs share.
    // They serve processes on the node only; workloads' services must not
    // depend on them, so a failure is reported and the stage goes on.
    try {
      connect_time_lb_.apply(host, connect_time_lb_config_);
    } catch (const std::exception& error) {
      host.log(sluice::LogLevel::error,
               std::string(error.what()) +
                   "; connect-time load balancing is not running: processes on the node "
                   "cannot reach services (workloads still can, through the nat stage)");
    }
    std::lock_guard lock(mutex_);
    host_ = &host;
    stage_ = std::move(stage);
    node_ = host.node_name();
    maps_.frontends = bpf_map__fd(stage_->maps.nat_frontends);
    maps_.backends = bpf_map__fd(stage_->maps.nat_backends);
    maps_.affinity = bpf_map__fd(stage_->maps.nat_affinity);
    maps_.services = bpf_map__fd(stage_->maps.nat_services);
    maps_.src_ranges = bpf_map__fd(stage_->maps.nat_src_ranges);
    // Re-adopt the ids a previous run gave to service ports (they are pinned
    // with their names), so a restart rewrites every entry with the value it
    // already has instead of renumbering under live traffic.
    sluice::for_each_entry<std::uint32_t, nat_service_name>(
        maps_.services, [&](const std::uint32_t& id, const nat_service_name& name) {
          std::string label(name.name, strnlen(name.name, sizeof(name.name)));
          if (!label.empty() && id && ids_.emplace(label, id).second) free_ids_.take(id);
        });
  }

  int stage_fd(std::string_view stage) const override {
    if (stage != "nat" || !stage_) return -1;
    return bpf_program__fd(stage_->progs.nat_stage);
  }

  void shutdown(bool cleanup) override {
    if (cleanup) connect_time_lb_.remove();
    if (cleanup && stage_) {
      bpf_map__unpin(stage_->maps.nat_frontends, nullptr);
      bpf_map__unpin(stage_->maps.nat_backends, nullptr);
      bpf_map__unpin(stage_->maps.nat_affinity, nullptr);
      bpf_map__unpin(stage_->maps.nat_services, nullptr);
      bpf_map__unpin(stage_->maps.nat_src_ranges, nullptr);
    }
  }

  // Endpoints for the named ports services may use as target_port.
  std::vector<std::string> resource_kinds() const override { return {"service", "endpoint"}; }

  // Work follows the change: only the blocks of a file that differ from its
  // previous version are parsed (the whole file when it cannot be read
  // block by block, see sluice/resource_blocks.hpp), and only the services
  // of removed and added blocks are recomputed. What still reads a whole
  // touched file is cheap next to parsing: cutting it into blocks and
  // comparing them with memcmp (see plugins/nat/README.md).
  void reconcile(const sluice::ResourceChange& change) override {
    std::lock_guard lock(mutex_);
    if (!stage_) throw std::logic_error("nat: reconcile before load");

    // 1. Read and validate everything; nothing is applied on an error.
    std::map<std::string, FileChange> files;
    for (const auto& file : change.upserted) files[file.path] = change_of(file, held(file.path));
    for (const auto& path : change.removed)
      if (!files.count(path)) files[path] = removal_of(held(path));
    if (change.full)
      for (auto& [path, specs] : files_)
        if (!files.count(path)) files[path] = removal_of(&specs);
    MovedBlocks moved(files);

    // Services whose entries may change: those of removed blocks, and those
    // of added blocks. A service in both is changed.
    std::set<std::string> changed;
    std::set<std::string> undeclared;  // their declaration is in a removed block
    bool endpoints_touched = false;
    for (const auto& [path, file] : files) {
      for (const auto& block : file.removed()) {
        for (const auto& s : block->services) {
          changed.insert(s.key());
          undeclared.insert(s.key());
        }
        endpoints_touched = endpoints_touched || !block->endpoints.empty();
      }
      for (const auto& block : file.added)
        endpoints_touched = endpoints_touched || !block->endpoints.empty();
    }
    std::map<std::string, const ServiceSpec*> now_declared;  // to (re)compute
    for (const auto& [path, file] : files)
      for (const auto& block : file.added)
        for (const auto& s : block->services) {
          const ServiceSpec* other = nullptr;
          if (auto it = now_declared.find(s.key()); it != now_declared.end()) other = it->second;
          else if (auto d = declared_.find(s.key()); d != declared_.end() && !undeclared.count(s.key()))
            other = d->second;
          if (other) refuse_second_declaration(s, *other);
          now_declared.emplace(s.key(), &s);
          changed.insert(s.key());
        }
    // Endpoints: only named target ports depend on them, so an endpoint change
    // recomputes the services that use a name (and nothing else).
    NamedPorts named{endpoint_at_, {}};
    if (endpoints_touched) {
      stage_endpoints(files, named);
      for (const auto& key : named_services_)
        if (changed.insert(key).second) now_declared.emplace(key, declared_.at(key));
    }
    // A frontend belongs to one service: new frontends of the changed
    // services may collide with each other or with an untouched service's.
    std::map<FeKey, const ServiceSpec*> claimed;
    for (const auto& [key, spec] : now_declared)
      for (const auto& p : spec->ports)
        for (const auto& [fe, kind] : frontends_of(*spec, p)) {
          const ServiceSpec* owner = nullptr;
          if (auto c = claimed.find(fe); c != claimed.end()) owner = c->second;
          else if (auto o = fe_owner_.find(fe); o != fe_owner_.end() && !changed.count(o->second))
            owner = declared_.at(o->second);
          if (owner)
            fail(spec->at, "frontend " + frontend_addr(fe.key) + ":" +
                               std::to_string(ntohs(fe.key.port)) + "/" +
                               proto_text(fe.key.proto) + " of service " + key +
                               " is also a frontend of " +
                               (owner == spec ? "this service (listed twice)"
                                              : owner->key() + " (" + place(owner->at) + ")"));
          claimed.emplace(fe, spec);
        }

    // 2. Desired entries of the changed services. A port keeps its id (by
    // label); new labels take the lowest free ids, given back if this change
    // is refused below.
    std::map<std::string, std::uint32_t> new_ids;
    struct IdRollback {
      IdPool& pool;
      std::map<std::string, std::uint32_t>& ids;
      bool committed = false;
      ~IdRollback() {
        if (!committed)
          for (const auto& [label, id] : ids) pool.give_back(id);
      }
    } rollback{free_ids_, new_ids};
    auto allocate = [&](const std::string& label) {
      if (auto it = ids_.find(label); it != ids_.end()) return it->second;
      if (auto it = new_ids.find(label); it != new_ids.end()) return it->second;
      return new_ids[label] = free_ids_.take_lowest();
    };
    std::map<std::string, ServiceEntries> desired;
    for (const auto& [key, spec] : now_declared) {
      ServiceEntries entries;
      for (const auto& p : spec->ports) {
        std::string label = port_label(*spec, p);
        entries[label] = entries_of(*spec, p, allocate(label), node_, named);
      }
      desired[key] = std::move(entries);
    }

    // The maps must hold the result: a change that would fill them is refused
    // before anything is written (counts kept incrementally).
    std::int64_t fe_delta = 0, be_delta = 0, range_delta = 0;
    const ServiceSpec* grown = nullptr;
    for (const auto& key : changed) {
      std::int64_t fe = 0, be = 0, ranges = 0;
      if (auto it = desired.find(key); it != desired.end())
        for (const auto& [label, e] : it->second) {
          fe += static_cast<std::int64_t>(e.frontends.size());
          be += static_cast<std::int64_t>(e.backends.size());
          ranges += static_cast<std::int64_t>(e.source_ranges.size());
        }
      if (auto it = applied_.find(key); it != applied_.end())
        for (const auto& [label, e] : it->second) {
          fe -= static_cast<std::int64_t>(e.frontends.size());
          be -= static_cast<std::int64_t>(e.backends.size());
          ranges -= static_cast<std::int64_t>(e.source_ranges.size());
        }
      if ((fe > 0 || be > 0 || ranges > 0) && !grown) grown = now_declared.at(key);
      fe_delta += fe;
      be_delta += be;
      range_delta += ranges;
    }
    if (grown && (fe_total_ + fe_delta > NAT_MAX_FRONTENDS || be_total_ + be_delta > NAT_MAX_BACKENDS ||
                  range_total_ + range_delta > NAT_MAX_SRC_RANGES))
      fail(grown->at, "the services would need " + std::to_string(fe_total_ + fe_delta) +
                          " frontends, " + std::to_string(be_total_ + be_delta) +
                          " backend entries and " + std::to_string(range_total_ + range_delta) +
                          " source ranges; the maps hold " + std::to_string(NAT_MAX_FRONTENDS) +
                          ", " + std::to_string(NAT_MAX_BACKENDS) + " and " +
                          std::to_string(NAT_MAX_SRC_RANGES));

    // 3. Apply, service by service; unchanged ports are not touched.
    ids_.insert(new_ids.begin(), new_ids.end());
    rollback.committed = true;
    std::set<GoneBackend> gone_udp;
    for (const auto& key : changed) {
      static const ServiceEntries kNone;
      auto old_it = applied_.find(key);
      const ServiceEntries& old = old_it == applied_.end() ? kNone : old_it->second;
      auto new_it = desired.find(key);
      const ServiceEntries& now = new_it == desired.end() ? kNone : new_it->second;
      for (const auto& [label, entries] : old)
        for (const auto& [fe, v] : entries.frontends) fe_owner_.erase(fe);
      for (const auto& [label, entries] : now) {
        for (const auto& [fe, v] : entries.frontends) fe_owner_[fe] = key;
        auto o = old.find(label);
        if (o != old.end() && o->second == entries) continue;
        if (o != old.end()) collect_gone_udp_backends(o->second, &entries, gone_udp);
        apply_port(maps_, o == old.end() ? nullptr : &o->second, &entries);
      }
      for (const auto& [label, entries] : old)
        if (!now.count(label)) {
          collect_gone_udp_backends(entries, nullptr, gone_udp);
          apply_port(maps_, &entries, nullptr);
          if (auto it = ids_.find(label); it != ids_.end()) {
            free_ids_.give_back(it->second);
            ids_.erase(it);
          }
        }
      if (now.empty()) applied_.erase(key);
      else applied_[key] = now;
    }
    if (!gone_udp.empty()) {
      flush_udp_flows(bpf_map__fd(stage_->maps.sl_conntrack), gone_udp);
      abort_udp_sockets(gone_udp);
    }

    // 4. Remember what each file holds: declarations of removed blocks go,
    // those of added blocks come (in that order: a service may move).
    moved.keep();
    for (const auto& [path, file] : files)
      for (const auto& block : file.removed())
        for (const auto& s : block->services) {
          declared_.erase(s.key());
          named_services_.erase(s.key());
        }
    for (const auto& [path, file] : files)
      for (const auto& block : file.added)
        for (const auto& s : block->services) {
          declared_[s.key()] = &s;
          if (s.has_named_port()) named_services_.insert(s.key());
        }
    for (const auto& [address, endpoint] : named.changes) {
      if (endpoint) endpoint_at_[address] = endpoint;
      else endpoint_at_.erase(address);
    }
    for (auto& [path, file] : files) hold(path, file);
    fe_total_ += fe_delta;
    be_total_ += be_delta;
    range_total_ += range_delta;
    if (change.full && !swept_) sweep_stale();
    swept_ = true;
  }

  std::vector<sluice::CliCommand> cli_commands() const override {
    sluice::CliCommand dump;
    dump.path = {"nat", "dump"};
    dump.arguments = "[--group-by-service]";
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

  void write_metrics(sluice::MetricsWriter& out) const override {
    std::lock_guard lock(mutex_);
    std::uint64_t ready = 0, terminating = 0, not_ready = 0;
    for (const auto& [key, ports] : applied_)
      for (const auto& [label, e] : ports) {
        ready += e.ready;
        terminating += e.terminating;
        not_ready += e.not_ready;
      }
    out.gauge("sluice_nat_services", "Services with frontends in the nat maps", {},
              static_cast<double>(applied_.size()));
    const char* help = "Backend entries of all service ports, by state";
    out.gauge("sluice_nat_backends", help, {{"state", "ready"}}, static_cast<double>(ready));
    out.gauge("sluice_nat_backends", help, {{"state", "terminating"}},
              static_cast<double>(terminating));
    out.gauge("sluice_nat_backends", help, {{"state", "not_ready"}},
              static_cast<double>(not_ready));
  }

 private:
  // After the maps no longer select them: sockets the node's processes
  // connected to gone UDP backends learn it (ConnectTimeLb). The change is
  // applied by then, so a failure is only reported.
  void abort_udp_sockets(const std::set<GoneBackend>& gone) {
    std::set<nat::ConnectTimeLb::GoneUdpBackend> backends;  // one per address, any service port
    for (const auto& b : gone) backends.insert({b.family, b.addr, b.port});
    try {
      std::size_t aborted = connect_time_lb_.abort_udp_sockets(backends);
      if (aborted)
        host_->log(sluice::LogLevel::info,
                   "nat: aborted " + std::to_string(aborted) +
                       " connected UDP socket(s) of the node pointed at removed backends");
    } catch (const std::exception& error) {
      host_->log(sluice::LogLevel::warn,
                 std::string(error.what()) +
                     "; those sockets keep sending to the removed backends until their "
                     "processes reconnect");
    }
  }

  FileSpecs* held(const std::string& path) {
    auto it = files_.find(path);
    return it == files_.end() ? nullptr : &it->second;
  }

  // The file as the change leaves it: kept blocks at both ends around the
  // added ones; the removed blocks are freed.
  void hold(const std::string& path, FileChange& change) {
    if (change.gone) {
      files_.erase(path);
      return;
    }
    FileSpecs after;
    after.text = std::move(change.text);
    after.placement = std::move(change.placement);
    if (change.before) after.spare_text = std::move(change.before->text);
    if (after.text && !after.spare_text)
      after.spare_text =
          std::make_unique<std::string>(sluice::config::spare_text_buffer(after.text->size()));
    std::vector<std::unique_ptr<FileBlock>> none;
    auto& before = change.before ? change.before->blocks : none;
    auto keep = [&](std::size_t from, std::size_t to) {
      for (std::size_t i = from; i < to; ++i) after.blocks.push_back(std::move(before[i]));
    };
    keep(0, change.kept.before);
    for (auto& block : change.added) after.blocks.push_back(std::move(block));
    keep(before.size() - change.kept.after, before.size());
    files_[path] = std::move(after);
  }

  static std::string place(const Position& at) { return at.file + ":" + std::to_string(at.line); }

  // A service declared twice. Blamed, as a whole-file parse reads them, on
  // the later of the two when both are in one file; else on the one this
  // change brings.
  [[noreturn]] static void refuse_second_declaration(const ServiceSpec& added,
                                                     const ServiceSpec& other) {
    bool other_is_later = other.at.file == added.at.file && other.at.line > added.at.line;
    const ServiceSpec& second = other_is_later ? other : added;
    const ServiceSpec& first = other_is_later ? added : other;
    fail(second.at, "service " + second.key() + " is already declared in " + place(first.at));
  }

  // The addresses of removed endpoints are released, those of added ones
  // taken: one address, one endpoint (refused with both positions).
  static void stage_endpoints(const std::map<std::string, FileChange>& files, NamedPorts& named) {
    for (const auto& [path, file] : files)
      for (const auto& block : file.removed())
        for (const auto& e : block->endpoints)
          for (const auto& ip : e.ips) named.changes[{ip.family, ip.words}] = nullptr;
    for (const auto& [path, file] : files)
      for (const auto& block : file.added)
        for (const auto& e : block->endpoints)
          for (const auto& ip : e.ips) {
            if (const EndpointSpec* other = named.endpoint_at(ip))
              fail(e.at, "endpoint " + e.key() + ": address " +
                             address_text(ip.family, ip.words.data()) +
                             " is also an address of endpoint " + other->key() + " (" +
                             place(other->at) + ")");
            named.changes[{ip.family, ip.words}] = &e;
          }
  }

  // First full reconcile after a start: entries the previous run left in the
  // pinned maps that the state no longer has are removed.
  void sweep_stale() {
    std::set<FeKey> want_fe;
    std::set<std::pair<std::uint32_t, std::uint32_t>> want_be;
    std::set<std::uint32_t> want_ids;
    std::set<RangeKey> want_ranges;
    for (const auto& [key, ports] : applied_)
      for (const auto& [label, e] : ports) {
        want_ranges.insert(e.source_ranges.begin(), e.source_ranges.end());
        for (const auto& [fe, v] : e.frontends) want_fe.insert(fe);
        for (std::uint32_t i = 0; i < e.backends.size(); ++i) want_be.insert({e.id, i});
        want_ids.insert(e.id);
      }
    std::vector<nat_fe_key> fe_gone;
    sluice::for_each_entry<nat_fe_key, nat_fe_value>(maps_.frontends, [&](const nat_fe_key& k, const nat_fe_value&) {
      if (!want_fe.count(FeKey{k})) fe_gone.push_back(k);
    });
    for (const auto& k : fe_gone) map_del(maps_.frontends, NAT_MAP_FRONTENDS, k);
    std::vector<nat_be_key> be_gone;
    sluice::for_each_entry<nat_be_key, nat_be_value>(maps_.backends, [&](const nat_be_key& k, const nat_be_value&) {
      if (!want_be.count({k.id, k.ordinal})) be_gone.push_back(k);
    });
    for (const auto& k : be_gone) map_del(maps_.backends, NAT_MAP_BACKENDS, k);
    std::vector<std::uint32_t> ids_gone;
    sluice::for_each_entry<std::uint32_t, nat_service_name>(maps_.services, [&](const std::uint32_t& id, const nat_service_name&) {
      if (!want_ids.count(id)) ids_gone.push_back(id);
    });
    for (auto id : ids_gone) map_del(maps_.services, NAT_MAP_SERVICES, id);
    std::vector<nat_src_range_key> ranges_gone;
    sluice::for_each_entry<nat_src_range_key, std::uint8_t>(
        maps_.src_ranges, [&](const nat_src_range_key& k, const std::uint8_t&) {
          if (!want_ranges.count(RangeKey{k})) ranges_gone.push_back(k);
        });
    for (const auto& k : ranges_gone) map_del(maps_.src_ranges, NAT_MAP_SRC_RANGES, k);
    for (auto it = ids_.begin(); it != ids_.end();) {
      if (want_ids.count(it->second)) {
        ++it;
        continue;
      }
      free_ids_.give_back(it->second);
      it = ids_.erase(it);
    }
  }

  mutable std::mutex mutex_;
  bool reject_ = true;
  Address hairpin_v4_, hairpin_v6_;  // all zero: hairpin not handled
  nat::ConnectTimeLbConfig connect_time_lb_config_;
  nat::ConnectTimeLb connect_time_lb_;
  sluice::Host* host_ = nullptr;  // from load(), with stage_; outlives the plugin
  StageSkeleton stage_;
  std::string node_;
  MapFds maps_;
  bool swept_ = false;
  std::map<std::string, FileSpecs> files_;                  // desired state per file
  std::map<std::string, const ServiceSpec*> declared_;      // service key -> its spec in files_
  EndpointIndex endpoint_at_;                               // address -> its endpoint in files_
  std::set<std::string> named_services_;                    // services with a named target port
  std::map<std::string, ServiceEntries> applied_;           // by service key
  std::map<std::string, std::uint32_t> ids_;                // port label -> id
  IdPool free_ids_;                                         // ids not in ids_
  std::map<FeKey, std::string> fe_owner_;                   // frontend -> service key
  std::int64_t fe_total_ = 0, be_total_ = 0, range_total_ = 0;  // entries in applied_
};

}  // namespace

SLUICE_PLUGIN(NatPlugin, "nat", "0.1.0")
