#include "sluice/core/dataplane.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <set>
#include <thread>

#include "core_bpf.skel.h"
#include "entry_bpf.skel.h"
#include "sluice/core/bpf_loader.hpp"
#include "sluice/core/error.hpp"
#include "sluice/core/layout_migration.hpp"
#include "sluice/core/tc.hpp"

namespace sluice {

namespace {

std::uint64_t realtime_ns() {
  return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                        std::chrono::system_clock::now().time_since_epoch())
                                        .count());
}

template <std::size_t N>
void copy_name(char (&out)[N], const std::string& in) {
  std::memset(out, 0, N);
  std::memcpy(out, in.data(), std::min(in.size(), N - 1));
}

// Calico's trace prefix: the name padded with '-' to 15 characters, then
// "-I:" or "-E:" (the log macros add the space).
void log_prefix(volatile char* out, const std::string& ifname, sl_hook hook) {
  char prefix[SL_LOG_PREFIX_LEN] = {};
  std::memset(prefix, '-', 15);
  std::memcpy(prefix, ifname.data(), std::min<std::size_t>(ifname.size(), 15));
  std::memcpy(prefix + 15, hook == SL_HOOK_INGRESS ? "-I:" : "-E:", 3);
  for (std::size_t i = 0; i < SL_LOG_PREFIX_LEN; ++i) out[i] = prefix[i];
}

// One line for sluicectl's table (the registry keeps 127 characters): the
// verifier's verdict when there is one — the two lines before "processed N
// insns" — else the error's first line. The daemon's log has the whole text.
std::string registry_message(const std::string& error) {
  std::string first = error.substr(0, error.find('\n'));
  auto processed = error.find("\nprocessed ");
  if (processed == std::string::npos) return first;
  auto last = error.rfind('\n', processed - 1);
  auto before = last == std::string::npos ? std::string::npos : error.rfind('\n', last - 1);
  if (last == std::string::npos || before == std::string::npos) return first;
  return "verifier: " + error.substr(before + 1, last - before - 1) + "; " +
         error.substr(last + 1, processed - last - 1);
}

void update_or_throw(int map_fd, const void* key, const void* value, const char* what) {
  if (bpf_map_update_elem(map_fd, key, value, BPF_ANY) != 0)
    throw Error(std::string("cannot update map ") + what + ": " + errno_text(errno));
}

}  // namespace

EntryProgram::EntryProgram(const NodeConfig& config, const EntrySettings& settings) {
  std::string pin_root = config.map_pin_dir();
  LIBBPF_OPTS(bpf_object_open_opts, opts, .pin_root_path = pin_root.c_str());
  skel_ = entry_bpf__open_opts(&opts);
  if (!skel_) throw Error("cannot open the entry BPF object: " + errno_text(errno));
  auto* ro = skel_->rodata;
  ro->sl_cfg_slot = settings.slot;
  ro->sl_cfg_role = settings.role;
  ro->sl_cfg_l3_device = settings.has_ethernet ? 0 : 1;
  ro->sl_cfg_malformed_rule = settings.rules.malformed;
  ro->sl_cfg_missed_rule = settings.rules.missed_tail_call;
  for (unsigned h = 0; h < SL_HOOK_COUNT; ++h) {
    ro->sl_cfg_jump_base[h] = sl_jump_base(settings.bank, settings.role, h);
    ro->sl_cfg_est_jump_base[h] =
        sl_jump_lane_base(settings.bank, settings.role, h, SL_LANE_ESTABLISHED);
    const ChainLayout& chain = settings.chains[h];
    std::memcpy(const_cast<__u64*>(ro->sl_cfg_est_pos[h]), chain.established_positions.data(),
                SL_MAX_STAGES);
    ro->sl_cfg_chain_flags[h] = chain.flags;
    ro->sl_cfg_last_judge_pos[h] = chain.last_judge;
    log_prefix(ro->sl_cfg_log_prefix[h], settings.ifname, static_cast<sl_hook>(h));
  }
  try {
    load_with_verifier_log("loading the entry program for interface " + settings.ifname,
                           [&] { return entry_bpf__load(skel_); });
  } catch (...) {
    entry_bpf__destroy(skel_);
    throw;
  }
}

EntryProgram::~EntryProgram() { entry_bpf__destroy(skel_); }

int EntryProgram::fd(sl_hook hook) const {
  return bpf_program__fd(hook == SL_HOOK_INGRESS ? skel_->progs.sl_entry_ingress
                                                 : skel_->progs.sl_entry_egress);
}

int Dataplane::map_fd(const char* name) const {
  struct bpf_map* map = bpf_object__find_map_by_name(core_->obj, name);
  if (!map) throw Error(std::string("the core object has no map ") + name);
  return bpf_map__fd(map);
}

int Dataplane::chain_end_fd() const { return bpf_program__fd(core_->progs.sl_chain_end); }

void Dataplane::CoreSkeleton::operator()(core_bpf* skel) const { core_bpf__destroy(skel); }

InstanceLock::InstanceLock(const NodeConfig& config, int wait_seconds) {
  make_dirs("/run/sluice");
  // Named after the directory's real identity: "/sys/fs/bpf/.", a trailing
  // "//" or a symlinked root reach the same pins and must meet the same lock.
  std::error_code ec;
  std::string id = std::filesystem::weakly_canonical(config.pin_dir(), ec).string();
  if (ec || id.empty()) id = std::filesystem::path(config.pin_dir()).lexically_normal().string();
  while (id.size() > 1 && id.back() == '/') id.pop_back();
  for (char& c : id)
    if (c == '/') c = '_';
  std::string path = "/run/sluice/" + id + ".lock";
  fd_.reset(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
  if (!fd_) throw Error("cannot open lock file " + path + ": " + errno_text(errno));
  for (int tries = 0;; ++tries) {
    if (flock(fd_.get(), LOCK_EX | LOCK_NB) == 0) return;
    if (tries == 0)
      spdlog::info("another sluiced holds instance {}; waiting up to {}s for it to exit",
                   config.pin_dir(), wait_seconds);
    if (tries >= wait_seconds * 10)
      throw Error("another sluiced is running for " + config.pin_dir() + " (lock " + path +
                  "): stop it first, or give this one another [bpf] instance");
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
}

Dataplane::Dataplane(const NodeConfig& config) : config_(config) {
  install_libbpf_logging();
  ensure_bpffs(config.bpf_root);
  unsigned layout = pinned_layout(config);
  make_dirs(config.map_pin_dir());

  std::string pin_root = config.map_pin_dir();
  LIBBPF_OPTS(bpf_object_open_opts, opts, .pin_root_path = pin_root.c_str());
  core_.reset(core_bpf__open_opts(&opts));
  if (!core_) throw Error("cannot open the core BPF object: " + errno_text(errno));
  if (layout != 0 && layout != SL_LAYOUT_VERSION)
    migration_ = std::make_unique<LayoutMigration>(config, core_->obj, layout);
  else
    remove_stale_migration_pins(config);
  load_with_verifier_log("loading the core BPF object",
                         [&] { return core_bpf__load(core_.get()); });

  __u32 zero = 0;
  sl_meta meta{};
  bpf_map_lookup_elem(bpf_map__fd(core_->maps.sl_meta), &zero, &meta);
  if (migration_) {
    migration_->carry_over(core_->obj, recorded_interfaces());
    // The new sl_jump is empty: either bank is free.
    meta.layout = SL_LAYOUT_VERSION;
    meta.active_bank = 1;
  }
  if (meta.magic != SL_LAYOUT_MAGIC) {
    meta = sl_meta{};
    meta.magic = SL_LAYOUT_MAGIC;
    meta.layout = SL_LAYOUT_VERSION;
    meta.active_bank = 1;  // so the first install stages bank 0
  }
  copy_name(meta.node, config.node_name);
  update_or_throw(bpf_map__fd(core_->maps.sl_meta), &zero, &meta, SL_MAP_META);
  bank_ = meta.active_bank;
  // Routes may have changed while no daemon watched them.
  invalidate_routes();
}

void Dataplane::invalidate_routes() {
  __u32 zero = 0, epoch = 0;
  int fd = bpf_map__fd(core_->maps.sl_route_epoch);
  bpf_map_lookup_elem(fd, &zero, &epoch);
  ++epoch;
  update_or_throw(fd, &zero, &epoch, SL_MAP_ROUTE_EPOCH);
}

Dataplane::~Dataplane() = default;

std::vector<int> Dataplane::recorded_interfaces() const {
  std::vector<int> out;
  int fd = bpf_map__fd(core_->maps.sl_ifstate);
  __u32 key = 0, next = 0;
  const __u32* prev = nullptr;
  while (bpf_map_get_next_key(fd, prev, &next) == 0) {
    out.push_back(static_cast<int>(next));
    key = next;
    prev = &key;
  }
  return out;
}

bool Dataplane::is_recorded(int ifindex) const {
  sl_ifstate state{};
  __u32 key = static_cast<__u32>(ifindex);
  return bpf_map_lookup_elem(bpf_map__fd(core_->maps.sl_ifstate), &key, &state) == 0;
}

std::vector<StageSpec> Dataplane::recorded_stages(const std::string& plugin) const {
  std::vector<StageSpec> out;
  int fd = bpf_map__fd(core_->maps.sl_registry);
  for (__u32 i = 0; i < SL_REGISTRY_SLOTS; ++i) {
    sl_registry_entry entry{};
    if (bpf_map_lookup_elem(fd, &i, &entry) != 0 || entry.kind != SL_REG_STAGE) continue;
    entry.plugin[SL_REG_NAME_LEN - 1] = '\0';
    if (plugin != entry.plugin) continue;
    out.push_back(recorded_stage(entry));
  }
  return out;
}

void Dataplane::set_log_level(sl_log_level level) {
  __u32 zero = 0;
  sl_settings settings{};
  bpf_map_lookup_elem(bpf_map__fd(core_->maps.sl_settings), &zero, &settings);
  settings.log_level = level;
  update_or_throw(bpf_map__fd(core_->maps.sl_settings), &zero, &settings, SL_MAP_SETTINGS);
  if (level != SL_LOG_OFF) ensure_tracefs();
}

void Dataplane::stage_chains(const std::array<Chain, SL_CHAINS>& chains,
                             const std::function<int(const DeclaredStage&)>& fd_of,
                             const InstanceOf& instance_of) {
  // Stage into the bank no attached entry program uses. Normally that is the
  // one sl_meta does not mark active; after a start that died half-way (or
  // an attach that failed) interfaces may still use either, and overwriting
  // a live bank slot by slot would let packets see half-written chains.
  __u32 zero = 0;
  sl_meta meta{};
  bpf_map_lookup_elem(bpf_map__fd(core_->maps.sl_meta), &zero, &meta);
  std::uint32_t bank = meta.active_bank == 0 ? 1 : 0;
  bool used[SL_BANKS] = {};
  int ifstate_fd = bpf_map__fd(core_->maps.sl_ifstate);
  // Interfaces still on the previous layout's programs use its sl_jump, not
  // this one.
  for (int ifindex : migration_ ? std::vector<int>{} : recorded_interfaces()) {
    sl_ifstate state{};
    __u32 key = static_cast<__u32>(ifindex);
    if (bpf_map_lookup_elem(ifstate_fd, &key, &state) == 0 && state.bank < SL_BANKS)
      used[state.bank] = true;
  }
  if (used[bank] && !used[1 - bank]) bank = 1 - bank;
  if (used[0] && used[1])
    spdlog::warn("interfaces use both chain banks (an earlier start stopped half-way); "
                 "staging bank {} may briefly expose partly written chains to the "
                 "interfaces still on it",
                 bank);
  int jump_fd = bpf_map__fd(core_->maps.sl_jump);
  int end_fd = bpf_program__fd(core_->progs.sl_chain_end);
  shared_positions_.clear();
  instantiated_ = 0;
  auto put = [&](__u32 slot, int fd) {
    if (fd >= 0)
      update_or_throw(jump_fd, &slot, &fd, SL_MAP_JUMP);
    else
      bpf_map_delete_elem(jump_fd, &slot);
  };
  for (const Chain& chain : chains) {
    const __u32 base[SL_LANES] = {
        sl_jump_lane_base(bank, chain.role, chain.hook, SL_LANE_ALL),
        sl_jump_lane_base(bank, chain.role, chain.hook, SL_LANE_ESTABLISHED)};
    const auto lane1_positions = chain.established_positions();
    // Each stage at its lane-0 position and, if it sees every packet, its
    // lane-1 position: one program for both, which knows where each lane
    // goes on (a hole where fd_of has none).
    for (std::size_t pos = 0; pos < chain.stages.size(); ++pos) {
      const DeclaredStage& stage = chain.stages[pos];
      const std::uint8_t lane1 = lane1_positions[pos];
      NextSlots next = {base[SL_LANE_ALL] + static_cast<__u32>(pos) + 1,
                        lane1 == 0xff ? SL_NEXT_SLOT_AT_RUN_TIME : base[SL_LANE_ESTABLISHED] + lane1 + 1u};
      const std::array<std::uint32_t, SL_LANES> slots = {
          base[SL_LANE_ALL] + static_cast<__u32>(pos),
          lane1 == 0xff ? SL_NEXT_SLOT_AT_RUN_TIME : base[SL_LANE_ESTABLISHED] + lane1};
      int fd = fd_of(stage);
      UniqueFd instance;
      if (fd >= 0 && instance_of) instance = instance_of(stage, next);
      if (instance) {
        fd = instance.get();
        ++instantiated_;
      } else if (fd >= 0)
        shared_positions_.push_back({stage, chain.role, slots, next});
      for (std::uint32_t slot : slots)
        if (slot != SL_NEXT_SLOT_AT_RUN_TIME) put(slot, fd);
    }
    // Then the chain end, and empty slots up to each lane's end.
    const std::size_t length[SL_LANES] = {chain.stages.size(), chain.established.size()};
    for (unsigned lane = 0; lane < SL_LANES; ++lane) {
      put(base[lane] + static_cast<__u32>(length[lane]), end_fd);
      for (__u32 pos = static_cast<__u32>(length[lane]) + 1; pos < SL_MAX_STAGES; ++pos)
        put(base[lane] + pos, -1);
    }
    layouts_[chain.role][chain.hook] =
        ChainLayout{chain.established_positions(), chain.flags, chain.last_judge};
  }
  bank_ = bank;
}

bool Dataplane::has_interface_of(sl_role role) const {
  for (const auto& [ifindex, attachment] : attached_)
    if (attachment.role == role) return true;
  return false;
}

bool Dataplane::has_positions_to_instantiate() const {
  for (const SharedPosition& position : shared_positions_)
    if (has_interface_of(position.role)) return true;
  return false;
}

bool Dataplane::instantiate_next(const InstanceOf& instance_of) {
  auto it = std::find_if(shared_positions_.begin(), shared_positions_.end(),
                         [&](const SharedPosition& p) { return has_interface_of(p.role); });
  if (it == shared_positions_.end()) return false;
  SharedPosition position = std::move(*it);
  shared_positions_.erase(it);
  UniqueFd instance = instance_of(position.stage, position.next);
  if (!instance) return true;  // it keeps the plugin's own program
  int jump_fd = bpf_map__fd(core_->maps.sl_jump);
  int fd = instance.get();
  for (std::uint32_t slot : position.slots)
    if (slot != SL_NEXT_SLOT_AT_RUN_TIME) update_or_throw(jump_fd, &slot, &fd, SL_MAP_JUMP);
  ++instantiated_;
  return true;
}

void Dataplane::commit_bank() {
  __u32 zero = 0;
  sl_meta meta{};
  bpf_map_lookup_elem(bpf_map__fd(core_->maps.sl_meta), &zero, &meta);
  meta.active_bank = bank_;
  meta.generation++;
  meta.installed_ns = realtime_ns();
  update_or_throw(bpf_map__fd(core_->maps.sl_meta), &zero, &meta, SL_MAP_META);
  if (migration_) {
    migration_->finish();
    migration_.reset();
  }
}

void Dataplane::write_registry(const std::vector<LoadedPlugin>& plugins) {
  int fd = bpf_map__fd(core_->maps.sl_registry);
  std::vector<sl_registry_entry> entries;
  for (const auto& p : plugins) {
    sl_registry_entry e{};
    e.kind = SL_REG_PLUGIN;
    e.status = p.state == PluginState::loaded ? 0 : 1;
    copy_name(e.plugin, p.name);
    copy_name(e.version, p.version);
    copy_name(e.message, registry_message(p.error));
    e.abi_major = p.abi_major;
    e.abi_minor = p.abi_minor;
    entries.push_back(e);
    for (const auto& stage : p.stages) {
      sl_registry_entry s{};
      s.kind = SL_REG_STAGE;
      s.status = e.status;
      copy_name(s.plugin, p.name);
      record_stage(s, stage);
      if (p.state == PluginState::loaded) {
        struct bpf_prog_info info {};
        __u32 len = sizeof(info);
        if (bpf_obj_get_info_by_fd(p.plugin.stage_fd(stage.name), &info, &len) == 0) {
          s.prog_id = info.id;
          static_assert(sizeof(s.prog_tag) == sizeof(info.tag));
          std::memcpy(s.prog_tag, info.tag, sizeof(s.prog_tag));
        }
      }
      entries.push_back(s);
    }
  }
  if (entries.size() > SL_REGISTRY_SLOTS)
    throw Error("too many plugins and stages for the registry (" +
                std::to_string(entries.size()) + " > " + std::to_string(SL_REGISTRY_SLOTS) + ")");
  entries.resize(SL_REGISTRY_SLOTS);
  for (__u32 i = 0; i < SL_REGISTRY_SLOTS; ++i)
    update_or_throw(fd, &i, &entries[i], SL_MAP_REGISTRY);
}

std::uint32_t Dataplane::allocate_slot() {
  std::set<std::uint32_t> used;
  int fd = bpf_map__fd(core_->maps.sl_ifstate);
  for (int ifindex : recorded_interfaces()) {
    sl_ifstate state{};
    __u32 key = static_cast<__u32>(ifindex);
    if (bpf_map_lookup_elem(fd, &key, &state) == 0) used.insert(state.slot);
  }
  for (std::uint32_t slot = 0; slot < SL_MAX_IFACES; ++slot)
    if (!used.count(slot)) return slot;
  throw Error("all " + std::to_string(SL_MAX_IFACES) + " interface slots are in use");
}

void Dataplane::zero_counters(std::uint32_t slot) {
  int fd = bpf_map__fd(core_->maps.sl_counters);
  int cpus = libbpf_num_possible_cpus();
  std::vector<sl_counter> zeros(static_cast<std::size_t>(cpus > 0 ? cpus : 1));
  for (__u32 hook = 0; hook < SL_HOOK_COUNT; ++hook)
    for (__u32 reason = 0; reason < SL_REASON_COUNT; ++reason) {
      __u32 index = sl_counter_base(slot, hook) + reason;
      bpf_map_update_elem(fd, &index, zeros.data(), BPF_ANY);
    }
}

void Dataplane::attach(const LinkInfo& link, sl_role role) {
  int ifstate_fd = bpf_map__fd(core_->maps.sl_ifstate);
  __u32 key = static_cast<__u32>(link.ifindex);
  sl_ifstate state{};
  bool known = bpf_map_lookup_elem(ifstate_fd, &key, &state) == 0;
  if (!known) {
    state.slot = allocate_slot();
    state.attached_ns = realtime_ns();
    zero_counters(state.slot);
  }

  EntryProgram entry(config_, EntrySettings{link.name, role, state.slot, bank_,
                                            link.has_ethernet, config_.rules[role],
                                            layouts_[role]});
  ClsactQdisc qdisc(link.ifindex, link.name);
  unsigned previous_ingress = query_tc_filter(link.ifindex, SL_HOOK_INGRESS);
  attach_tc_filter(link.ifindex, link.name, SL_HOOK_INGRESS, entry.fd(SL_HOOK_INGRESS));
  try {
    attach_tc_filter(link.ifindex, link.name, SL_HOOK_EGRESS, entry.fd(SL_HOOK_EGRESS));
  } catch (...) {
    // Never leave the hooks on different programs: put ingress back as it was.
    UniqueFd previous(previous_ingress ? bpf_prog_get_fd_by_id(previous_ingress) : -1);
    if (previous)
      attach_tc_filter(link.ifindex, link.name, SL_HOOK_INGRESS, previous.get());
    else
      detach_tc_filter(link.ifindex, SL_HOOK_INGRESS);
    throw;
  }
  qdisc.keep();

  state.role = role;
  state.bank = bank_;
  state.flags |= SL_IF_F_INGRESS | SL_IF_F_EGRESS;
  if (qdisc.created()) state.flags |= SL_IF_F_QDISC_OURS;
  state.flags = link.has_ethernet ? (state.flags & ~SL_IF_F_L3) : (state.flags | SL_IF_F_L3);
  copy_name(state.name, link.name);
  update_or_throw(ifstate_fd, &key, &state, SL_MAP_IFSTATE);
  invalidate_routes();  // cached routes carry the interface's role
  attached_[link.ifindex] = Attachment{role, link.name, link.has_ethernet, bank_};
  spdlog::info("attached to {} (ifindex {}) as {}, slot {}{}", link.name, link.ifindex,
               role_name(role), state.slot, qdisc.created() ? ", created clsact" : "");
}

void Dataplane::detach(int ifindex) {
  int ifstate_fd = bpf_map__fd(core_->maps.sl_ifstate);
  __u32 key = static_cast<__u32>(ifindex);
  sl_ifstate state{};
  bool known = bpf_map_lookup_elem(ifstate_fd, &key, &state) == 0;
  bool gone = detach_tc_filter(ifindex, SL_HOOK_INGRESS);
  gone = detach_tc_filter(ifindex, SL_HOOK_EGRESS) && gone;
  if (!gone) {
    // Keep the record: its counter slot is still counted into.
    spdlog::error("interface {} (ifindex {}): could not detach Sluice's filters; keeping it "
                  "recorded, retry with sluiced --cleanup",
                  known ? state.name : "?", ifindex);
    return;
  }
  if (known && (state.flags & SL_IF_F_QDISC_OURS)) destroy_clsact(ifindex);
  bpf_map_delete_elem(ifstate_fd, &key);
  invalidate_routes();
  attached_.erase(ifindex);
  spdlog::info("detached from {} (ifindex {})", known ? state.name : "?", ifindex);
}

void Dataplane::forget(int ifindex) {
  __u32 key = static_cast<__u32>(ifindex);
  bpf_map_delete_elem(bpf_map__fd(core_->maps.sl_ifstate), &key);
  invalidate_routes();
  auto it = attached_.find(ifindex);
  if (it != attached_.end()) {
    spdlog::info("forgot {} (ifindex {}): the interface is gone", it->second.name, ifindex);
    attached_.erase(it);
  }
}

void Dataplane::cleanup(const NodeConfig& config) {
  namespace fs = std::filesystem;
  std::error_code ec;
  std::string ifstate_path = config.map_pin_dir() + "/" SL_MAP_IFSTATE;
  std::set<int> live;
  for (const auto& link : list_links()) live.insert(link.ifindex);
  if (fs::exists(ifstate_path, ec)) {
    UniqueFd fd(bpf_obj_get(ifstate_path.c_str()));
    if (!fd) throw Error("cannot open " + ifstate_path + ": " + errno_text(errno));
    __u32 key = 0, next = 0;
    const __u32* prev = nullptr;
    while (bpf_map_get_next_key(fd.get(), prev, &next) == 0) {
      sl_ifstate state{};
      if (bpf_map_lookup_elem(fd.get(), &next, &state) == 0 && live.count(next)) {
        detach_tc_filter(static_cast<int>(next), SL_HOOK_INGRESS);
        detach_tc_filter(static_cast<int>(next), SL_HOOK_EGRESS);
        if (state.flags & SL_IF_F_QDISC_OURS) destroy_clsact(static_cast<int>(next));
        spdlog::info("removed Sluice from {} (ifindex {}){}", state.name, next,
                     (state.flags & SL_IF_F_QDISC_OURS) ? " and its clsact qdisc" : "");
      }
      key = next;
      prev = &key;
    }
  }
  if (fs::exists(config.pin_dir(), ec)) {
    fs::remove_all(config.pin_dir(), ec);
    if (ec) throw Error("cannot remove " + config.pin_dir() + ": " + ec.message());
    spdlog::info("removed pins under {}", config.pin_dir());
  }
}

}  // namespace sluice
