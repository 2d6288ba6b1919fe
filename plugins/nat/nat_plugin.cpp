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
#include <string.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <cerrno>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include <sluice/bpf/conntrack.h>
#include <sluice/config.hpp>
#include <sluice/conntrack.hpp>
#include <sluice/maps.hpp>
#include <sluice/plugin.hpp>
#include <sluice/skeleton.hpp>
#include <sluice/resources.hpp>

#include "connect_lb.hpp"
#include "id_pool.hpp"
#include "nat_cli.hpp"
#include "nat_entries.hpp"
#include "nat_maps.hpp"
#include "nat_metrics.hpp"
#include "nat_stage.skel.h"
#include "service_blocks.hpp"

namespace {

using namespace nat;
using sluice::config::Table;

using StageSkeleton = sluice::Skeleton<nat_stage, nat_stage__destroy>;

// Cilium's service loopback address for IPv4; for IPv6 a unique local
// address of our own. Neither is ever a real peer of a workload.
constexpr const char* kDefaultHairpinV4 = "169.254.42.1";
constexpr const char* kDefaultHairpinV6 = "fd5c:1ce:0:42::1";

// The source address hairpin flows get; "" turns hairpin handling off.
Address read_hairpin_source(const Table& table, std::string_view key, const char* fallback,
                            std::uint8_t family) {
  std::string text = table.get_string(key, fallback);
  if (text.empty()) return Address{};
  auto a = sluice::parse::ip_address(text);
  if (!a || a->family != family)
    table.fail(key, "'" + text + "' is not an IPv" + std::to_string(family) +
                        " address (\"\" turns hairpin source NAT off)");
  return *a;
}

// A change read and validated, not yet applied (NatPlugin::validate): the
// files as it leaves them, the services it recomputes and their entries.
// Dropped without commit, it leaves the plugin as it was: kept blocks that
// moved go back to their places, new ids back to the pool.
struct NatChange {
  NatChange(IdPool& ids, const EndpointIndex& endpoints) : named{endpoints, {}}, pool(ids) {}
  NatChange(const NatChange&) = delete;
  NatChange& operator=(const NatChange&) = delete;
  ~NatChange() {
    if (!committed)
      for (const auto& [label, id] : new_ids) pool.give_back(id);
  }
  std::map<std::string, FileChange> files;
  std::optional<MovedBlocks> moved;  // after files: it shifts blocks nat holds
  std::set<std::string> changed;     // services whose entries may change
  NamedPorts named;                  // endpoints' addresses as the change leaves them
  std::map<std::string, std::uint32_t> new_ids;           // port label -> id taken
  std::map<std::string, ServiceEntries> desired;          // of the changed services
  std::int64_t fe_delta = 0, be_delta = 0, range_delta = 0;  // entries the maps gain
  bool full = false;
  IdPool& pool;
  bool committed = false;
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
      throw sluice::Error("nat: the conntrack table " + pin_root + "/" SL_MAP_CONNTRACK +
                              " is not pinned",
                          "enable the conntrack plugin ([plugins] enabled): it must load first");
    LIBBPF_OPTS(bpf_object_open_opts, opts, .pin_root_path = pin_root.c_str());
    StageSkeleton stage(nat_stage__open_opts(&opts));
    if (!stage)
      throw sluice::Error("nat: cannot open the nat stage BPF object: " +
                          sluice::errno_text(errno));
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

  bool stage_object(std::string_view stage, sluice::StageObject& out) const override {
    return stage == "nat" && sluice::describe_skeleton(stage_.get(), out);
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
  std::unique_ptr<sluice::PreparedChange> prepare(const sluice::ResourceChange& change) override {
    std::lock_guard lock(mutex_);
    return std::make_unique<Prepared>(*this, validate(change));
  }

  // Tests (and consumers reconciled directly) hand changes over this way.
  void reconcile(const sluice::ResourceChange& change) override {
    std::lock_guard lock(mutex_);
    commit(*validate(change));
  }

  std::vector<sluice::CliCommand> cli_commands() const override { return nat::nat_cli_commands(); }

  void write_metrics(sluice::MetricsWriter& out) const override {
    std::lock_guard lock(mutex_);
    nat::write_nat_metrics(out, applied_);
  }

 private:
  // A validated change, held until the host commits or discards it.
  class Prepared final : public sluice::PreparedChange {
   public:
    Prepared(NatPlugin& plugin, std::unique_ptr<NatChange> change)
        : plugin_(plugin), change_(std::move(change)) {}
    void commit() override {
      std::lock_guard lock(plugin_.mutex_);
      plugin_.commit(*change_);
    }

   private:
    NatPlugin& plugin_;
    std::unique_ptr<NatChange> change_;  // discarded with it unless committed
  };

  // Reads and validates a change against what is applied; writes nothing
  // and changes nothing that its discard does not undo. Throws ConfigError.
  std::unique_ptr<NatChange> validate(const sluice::ResourceChange& change) {
    if (!stage_) throw std::logic_error("nat: reconcile before load");

    // 1. Read and validate everything; nothing is applied here.
    auto prepared = std::make_unique<NatChange>(free_ids_, endpoint_at_);
    prepared->full = change.full;
    auto& files = prepared->files;
    for (const auto& file : change.upserted) files[file.path] = change_of(file, held(file.path));
    for (const auto& path : change.removed)
      if (!files.count(path)) files[path] = removal_of(held(path));
    if (change.full)
      for (auto& [path, specs] : files_)
        if (!files.count(path)) files[path] = removal_of(&specs);
    prepared->moved.emplace(files);

    // Services whose entries may change: those of removed blocks, and those
    // of added blocks. A service in both is changed.
    auto& changed = prepared->changed;
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
    NamedPorts& named = prepared->named;
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
            fail_at(spec->at, "frontend " + frontend_addr(fe.key) + ":" +
                               std::to_string(ntohs(fe.key.port)) + "/" +
                               protocol_text(fe.key.proto) + " of service " + key +
                               " is also a frontend of " +
                               (owner == spec ? "this service (listed twice)"
                                              : owner->key() + " (" + place(owner->at) + ")"));
          claimed.emplace(fe, spec);
        }

    // 2. Desired entries of the changed services. A port keeps its id (by
    // label); new labels take the lowest free ids, given back if this change
    // is refused below or discarded.
    auto& new_ids = prepared->new_ids;
    auto allocate = [&](const std::string& label) {
      if (auto it = ids_.find(label); it != ids_.end()) return it->second;
      if (auto it = new_ids.find(label); it != new_ids.end()) return it->second;
      return new_ids[label] = free_ids_.take_lowest();
    };
    auto& desired = prepared->desired;
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
    std::int64_t& fe_delta = prepared->fe_delta;
    std::int64_t& be_delta = prepared->be_delta;
    std::int64_t& range_delta = prepared->range_delta;
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
      fail_at(grown->at, "the services would need " + std::to_string(fe_total_ + fe_delta) +
                          " frontends, " + std::to_string(be_total_ + be_delta) +
                          " backend entries and " + std::to_string(range_total_ + range_delta) +
                          " source ranges; the maps hold " + std::to_string(NAT_MAX_FRONTENDS) +
                          ", " + std::to_string(NAT_MAX_BACKENDS) + " and " +
                          std::to_string(NAT_MAX_SRC_RANGES));

    return prepared;
  }

  // Applies a validated change: writes the maps, then remembers what each
  // file holds. Nothing here refuses input.
  void commit(NatChange& prepared) {
    // 3. Apply, service by service; unchanged ports are not touched.
    auto& [files, moved, changed, named, new_ids, desired, fe_delta, be_delta, range_delta,
           full, pool, committed] = prepared;
    ids_.insert(new_ids.begin(), new_ids.end());
    committed = true;
    std::set<GoneBackend> gone_udp;
    std::set<FeKey> new_frontends;
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
        for (const auto& [fe, v] : entries.frontends)
          if (o == old.end() || !o->second.frontends.count(fe)) new_frontends.insert(fe);
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
    // After the frontends are in the map: a flow that was already going to
    // a new frontend, untranslated, is translated from its next packet on.
    // (Node-port frontends match any local address; flows to them are not
    // looked for.)
    for (const auto& fe : new_frontends) {
      const nat_fe_key& k = fe.key;
      bool node_port = true;
      for (__be32 word : k.addr) node_port = node_port && word == 0;
      if (node_port) continue;
      sluice::forget_untranslated_flows_towards(bpf_map__fd(stage_->maps.sl_conntrack), k.family,
                                                k.proto, k.addr, k.port);
    }

    // 4. Remember what each file holds: declarations of removed blocks go,
    // those of added blocks come (in that order: a service may move).
    moved->keep();
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
    if (full && !swept_) sweep_stale();
    swept_ = true;
  }

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
    fail_at(second.at, "service " + second.key() + " is already declared in " + place(first.at));
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
              fail_at(e.at, "endpoint " + e.key() + ": address " +
                             address_text(ip.family, ip.words.data()) +
                             " is also an address of endpoint " + other->key() + " (" +
                             place(other->at) + ")");
            named.changes[{ip.family, ip.words}] = &e;
          }
  }

  // First full reconcile after a start: entries the previous run left in the
  // pinned maps that the state no longer has are removed, and their ids freed.
  void sweep_stale() {
    std::set<std::uint32_t> want_ids = nat::sweep_stale_entries(maps_, applied_);
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
