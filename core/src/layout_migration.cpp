#include "sluice/core/layout_migration.hpp"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <spdlog/spdlog.h>

#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <filesystem>

#include "sluice/core/counters.hpp"
#include "sluice/core/error.hpp"
#include "sluice/core/unique_fd.hpp"

namespace sluice {

namespace fs = std::filesystem;

namespace {

// bpffs refuses names with a dot.
constexpr const char* kAsideSuffix = "__layout";

// Layout 1's geometry of what is carried over.
constexpr std::uint32_t kLayout1Reasons = 64;
constexpr std::size_t kLayout1RegistryEntry = sizeof(sl_registry_entry) - 8 * sizeof(__u32);

struct MapShape {
  std::uint32_t type, key_size, value_size, max_entries;
  bool operator==(const MapShape&) const = default;
};

MapShape pinned_shape(int fd) {
  bpf_map_info info{};
  __u32 len = sizeof(info);
  if (bpf_obj_get_info_by_fd(fd, &info, &len) != 0)
    throw Error("cannot read a pinned map's info: " + errno_text(errno));
  return {info.type, info.key_size, info.value_size, info.max_entries};
}

MapShape defined_shape(const bpf_map* map) {
  return {static_cast<std::uint32_t>(bpf_map__type(map)), bpf_map__key_size(map),
          bpf_map__value_size(map), bpf_map__max_entries(map)};
}

int possible_cpus() {
  int n = libbpf_num_possible_cpus();
  if (n <= 0) throw Error("cannot count the possible CPUs: " + errno_text(-n));
  return n;
}

// sl_counters: [slot][hook][reason] per CPU; layout 1 had 64 reasons a hook.
void carry_counters(int from, int to, const std::vector<int>& ifindexes, int ifstate_fd) {
  const int cpus = possible_cpus();
  std::vector<sl_counter> values(static_cast<std::size_t>(cpus));
  for (int ifindex : ifindexes) {
    sl_ifstate state{};
    __u32 key = static_cast<__u32>(ifindex);
    if (bpf_map_lookup_elem(ifstate_fd, &key, &state) != 0 || state.slot >= SL_MAX_IFACES)
      continue;
    for (__u32 hook = 0; hook < SL_HOOK_COUNT; ++hook)
      for (__u32 reason = 0; reason < kLayout1Reasons; ++reason) {
        __u32 old_index = (state.slot * SL_HOOK_COUNT + hook) * kLayout1Reasons + reason;
        if (bpf_map_lookup_elem(from, &old_index, values.data()) != 0) continue;
        bool any = false;
        for (const auto& v : values) any = any || v.packets || v.bytes;
        if (!any) continue;
        auto now = reason_from_layout1(reason);
        if (!now) continue;  // a number layout 1 never used
        __u32 new_index = sl_counter_base(state.slot, hook) + *now;
        if (bpf_map_update_elem(to, &new_index, values.data(), BPF_ANY) != 0)
          throw Error(std::string("cannot carry counters into " SL_MAP_COUNTERS ": ") +
                      errno_text(errno));
      }
  }
}

// sl_registry: layout 2 appended the stages' chain-protocol declarations;
// a stage recorded by layout 1 declared nothing, so it gets the safe
// defaults (sees every packet, may drop).
void carry_registry(int from, int to) {
  std::vector<char> old(kLayout1RegistryEntry);
  for (__u32 i = 0; i < SL_REGISTRY_SLOTS; ++i) {
    if (bpf_map_lookup_elem(from, &i, old.data()) != 0) continue;
    sl_registry_entry entry{};
    std::memcpy(&entry, old.data(), old.size());
    if (entry.kind == SL_REG_STAGE) {
      entry.every_packet_hooks = (1u << SL_HOOK_COUNT) - 1;
      entry.may = SL_MAY_DROP;
    }
    if (bpf_map_update_elem(to, &i, &entry, BPF_ANY) != 0)
      throw Error(std::string("cannot carry " SL_MAP_REGISTRY ": ") + errno_text(errno));
  }
}

}  // namespace

LayoutMigration::LayoutMigration(const NodeConfig& config, bpf_object* core, unsigned from)
    : map_dir_(config.map_pin_dir()), from_(from) {
  if (from != SL_LAYOUT_MIGRATES_FROM)
    throw Error("this sluiced migrates pins of layout " +
                std::to_string(SL_LAYOUT_MIGRATES_FROM) + " only, not " + std::to_string(from));
  bpf_map* map;
  bpf_object__for_each_map(map, core) {
    const char* pin = bpf_map__pin_path(map);
    if (!pin) continue;
    std::string name = bpf_map__name(map);
    std::error_code ec;
    if (fs::exists(aside_path(name), ec)) {  // an earlier attempt moved it
      moved_.push_back(name);
      continue;
    }
    UniqueFd fd(bpf_obj_get(pin));
    if (!fd) continue;  // not pinned yet: created afresh
    if (pinned_shape(fd.get()) == defined_shape(map)) continue;  // reused as it is
    // bpffs refuses rename(2): pin the map a second time, then unpin the name.
    if (bpf_obj_pin(fd.get(), aside_path(name).c_str()) != 0 || ::unlink(pin) != 0)
      throw Error("cannot move " + std::string(pin) + " aside for the layout migration: " +
                  errno_text(errno));
    moved_.push_back(name);
  }
  std::string names;
  for (const auto& name : moved_) names += (names.empty() ? "" : ", ") + name;
  spdlog::info("migrating pins of layout {} to layout {}: {} made anew, the rest reused",
               from, SL_LAYOUT_VERSION, names.empty() ? "no map" : names);
}

std::string LayoutMigration::aside_path(const std::string& name) const {
  return map_dir_ + "/" + name + kAsideSuffix + std::to_string(from_);
}

void LayoutMigration::carry_over(bpf_object* core, const std::vector<int>& recorded_ifindexes) {
  auto new_fd = [&](const char* name) {
    bpf_map* map = bpf_object__find_map_by_name(core, name);
    if (!map) throw Error(std::string("the core object has no map ") + name);
    return bpf_map__fd(map);
  };
  for (const auto& name : moved_) {
    UniqueFd old(bpf_obj_get(aside_path(name).c_str()));
    if (!old) continue;
    if (name == SL_MAP_COUNTERS)
      carry_counters(old.get(), new_fd(SL_MAP_COUNTERS), recorded_ifindexes,
                     new_fd(SL_MAP_IFSTATE));
    else if (name == SL_MAP_REGISTRY)
      carry_registry(old.get(), new_fd(SL_MAP_REGISTRY));
    // sl_state, sl_jump: nothing outlives a packet or a chain install.
  }
}

void LayoutMigration::finish() {
  for (const auto& name : moved_) {
    std::error_code ec;
    fs::remove(aside_path(name), ec);
  }
  spdlog::info("layout migration from {} done: every interface runs layout {}", from_,
               SL_LAYOUT_VERSION);
}

void remove_stale_migration_pins(const NodeConfig& config) {
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(config.map_pin_dir(), ec))
    if (entry.path().filename().string().find(kAsideSuffix) != std::string::npos) {
      spdlog::info("removing {}, left by an earlier layout migration", entry.path().string());
      fs::remove(entry.path(), ec);
    }
}

unsigned pinned_layout(const NodeConfig& config) {
  std::error_code ec;
  if (!fs::exists(config.pin_dir(), ec)) return 0;
  std::string meta_path = config.map_pin_dir() + "/" SL_MAP_META;
  if (!fs::exists(meta_path, ec)) {
    // Only directories (e.g. maps/ from a start that died before loading):
    // nothing to misread, start afresh.
    bool only_directories = true;
    for (const auto& entry : fs::recursive_directory_iterator(config.pin_dir(), ec))
      if (!entry.is_directory()) only_directories = false;
    if (only_directories) return 0;
    throw Error(config.pin_dir() + " exists but holds no Sluice layout marker (" + meta_path +
                "): it is not Sluice's, or an interrupted start left it. Pick another [bpf] "
                "instance, or remove it (sluiced --cleanup) if it is Sluice's.");
  }
  UniqueFd fd(bpf_obj_get(meta_path.c_str()));
  if (!fd) throw Error("cannot open " + meta_path + ": " + errno_text(errno));
  struct bpf_map_info info {};
  __u32 info_len = sizeof(info);
  if (bpf_obj_get_info_by_fd(fd.get(), &info, &info_len) != 0 ||
      info.value_size < offsetof(sl_meta, active_bank))
    throw Error(meta_path + " is not a Sluice layout marker");
  std::vector<char> value(info.value_size);
  __u32 zero = 0;
  if (bpf_map_lookup_elem(fd.get(), &zero, value.data()) != 0)
    throw Error("cannot read " + meta_path + ": " + errno_text(errno));
  sl_meta meta{};
  std::memcpy(&meta, value.data(), std::min<std::size_t>(value.size(), sizeof(meta)));
  if (meta.magic == 0) return 0;  // created but never initialised: reuse
  if (meta.magic == SL_LAYOUT_MAGIC && info.value_size == sizeof(sl_meta) &&
      (meta.layout == SL_LAYOUT_VERSION || meta.layout == SL_LAYOUT_MIGRATES_FROM))
    return meta.layout;
  throw Error("the pins under " + config.pin_dir() + " use map layout " +
                std::to_string(meta.layout) + "; this sluiced uses layout " +
                std::to_string(SL_LAYOUT_VERSION) +
                " and migrates only from layout " + std::to_string(SL_LAYOUT_MIGRATES_FROM) +
                ". Reusing them would misread live state. Upgrade through a release of layout " +
                std::to_string(SL_LAYOUT_MIGRATES_FROM) + ", remove them with the sluiced "
                "that made them (sluiced --cleanup), or use another [bpf] instance.");
}


}  // namespace sluice
