#include "pinned_maps.hpp"

#include <bpf/bpf.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include "cli.hpp"
#include "sluice/core/error.hpp"

namespace sluice::ctl {

namespace fs = std::filesystem;

namespace {

std::string permission_hint(int err) {
  return err == EPERM || err == EACCES
             ? "; reading Sluice's maps needs root (or CAP_BPF and access to bpffs)"
             : "";
}

}  // namespace

PinnedMaps::PinnedMaps(const NodeConfig& config)
    : pin_dir_(config.pin_dir()), map_dir_(config.map_pin_dir()), config_file_(config.file) {}

bool PinnedMaps::anything_pinned() const {
  std::error_code ec;
  bool found = fs::is_directory(map_dir_, ec) && !fs::is_empty(map_dir_, ec);
  if (ec && ec != std::errc::no_such_file_or_directory)
    throw CtlError("cannot look into " + map_dir_ + ": " + ec.message() +
                   permission_hint(ec.value()));
  return found;
}

void PinnedMaps::require_compatible() {
  if (!anything_pinned())
    throw CtlError("nothing is pinned under " + pin_dir_ +
                   " (is sluiced configured with this [bpf] root/instance? start it with: "
                   "sluiced --config " +
                   config_file_ + ")");
  auto meta = read_meta();
  if (!meta) return;  // the daemon is still initialising; the maps are ours
  if (meta->magic != SL_LAYOUT_MAGIC || meta->layout != SL_LAYOUT_VERSION)
    throw CtlError("the pins under " + pin_dir_ + " use map layout " +
                   std::to_string(meta->layout) + " but this sluicectl reads layout " +
                   std::to_string(SL_LAYOUT_VERSION) +
                   ": use the sluicectl that came with the running sluiced");
}

std::string PinnedMaps::path(const char* name) const { return map_dir_ + "/" + name; }

bool PinnedMaps::has(const char* name) const {
  std::error_code ec;
  return fs::exists(path(name), ec);
}

int PinnedMaps::fd(const char* name, std::uint32_t value_size) {
  auto cached = fds_.find(name);
  if (cached != fds_.end()) return cached->second.get();

  std::string pin = path(name);
  UniqueFd fd(bpf_obj_get(pin.c_str()));
  if (!fd) {
    int err = errno;
    if (err == ENOENT)
      throw CtlError("map " + std::string(name) + " is not pinned (" + pin +
                     " is missing): is sluiced running with this configuration, and does it "
                     "load what creates this map?");
    throw CtlError("cannot open map " + pin + ": " + errno_text(err) + permission_hint(err));
  }
  if (value_size != 0) {
    bpf_map_info info{};
    __u32 info_len = sizeof(info);
    if (bpf_obj_get_info_by_fd(fd.get(), &info, &info_len) != 0)
      throw CtlError("cannot inspect map " + pin + ": " + errno_text(errno));
    if (info.value_size != value_size)
      throw CtlError("map " + pin + " has " + std::to_string(info.value_size) +
                     "-byte values; this sluicectl (layout " + std::to_string(SL_LAYOUT_VERSION) +
                     ") expects " + std::to_string(value_size) +
                     ": use the sluicectl that came with the running sluiced");
  }
  int raw = fd.get();
  fds_.emplace(name, std::move(fd));
  return raw;
}

std::optional<sl_meta> PinnedMaps::read_meta() {
  if (!has(SL_MAP_META)) return std::nullopt;
  // Read with the pinned value size, not ours: an older or newer layout must
  // still show which layout it is, and magic/layout lead in every version.
  int meta_fd = fd(SL_MAP_META, 0);
  bpf_map_info info{};
  __u32 info_len = sizeof(info);
  if (bpf_obj_get_info_by_fd(meta_fd, &info, &info_len) != 0)
    throw CtlError("cannot inspect map " + path(SL_MAP_META) + ": " + errno_text(errno));
  std::vector<char> value(std::max<std::size_t>(info.value_size, sizeof(sl_meta)));
  __u32 zero = 0;
  if (bpf_map_lookup_elem(meta_fd, &zero, value.data()) != 0)
    throw CtlError("cannot read " + path(SL_MAP_META) + ": " + errno_text(errno));
  sl_meta meta{};
  std::memcpy(&meta, value.data(), sizeof(meta));
  if (meta.magic == 0) return std::nullopt;
  return meta;
}

std::vector<ManagedInterface> read_interfaces(PinnedMaps& maps) {
  return read_managed_interfaces(maps.fd(SL_MAP_IFSTATE, sizeof(sl_ifstate)));
}

std::vector<ManagedInterface> select_interfaces(PinnedMaps& maps, const std::string& name) {
  auto all = read_interfaces(maps);
  if (name.empty()) return all;
  std::vector<ManagedInterface> selected;
  std::vector<std::string> known;
  for (auto& iface : all) {
    known.push_back(iface.name);
    if (iface.name == name) selected.push_back(iface);
  }
  if (selected.empty())
    throw CtlError("no managed interface is named '" + name + "' (" +
                   (known.empty() ? std::string("sluiced manages none yet")
                                  : "managed: " + join(known, ", ")) +
                   ")");
  return selected;
}

std::vector<sl_registry_entry> read_registry(PinnedMaps& maps) {
  int fd = maps.fd(SL_MAP_REGISTRY, sizeof(sl_registry_entry));
  std::vector<sl_registry_entry> out;
  for (__u32 slot = 0; slot < SL_REGISTRY_SLOTS; ++slot) {
    sl_registry_entry entry{};
    if (bpf_map_lookup_elem(fd, &slot, &entry) != 0)
      throw CtlError("cannot read slot " + std::to_string(slot) + " of " +
                     maps.path(SL_MAP_REGISTRY) + ": " + errno_text(errno));
    if (entry.kind != SL_REG_EMPTY) out.push_back(entry);
  }
  return out;
}

std::string role_text(std::uint32_t role) {
  return role < SL_ROLE_COUNT ? role_name(static_cast<sl_role>(role))
                              : "role-" + std::to_string(role);
}

std::string hook_text(std::uint32_t hook) {
  return hook < SL_HOOK_COUNT ? hook_name(static_cast<sl_hook>(hook))
                              : "hook-" + std::to_string(hook);
}

std::vector<std::string> role_names(std::uint32_t roles) {
  std::vector<std::string> out;
  for (std::uint32_t r = 0; r < SL_ROLE_COUNT; ++r)
    if (roles & (1u << r)) out.push_back(role_text(r));
  return out;
}

std::vector<std::string> hook_names(std::uint32_t hooks) {
  std::vector<std::string> out;
  for (std::uint32_t h = 0; h < SL_HOOK_COUNT; ++h)
    if (hooks & (1u << h)) out.push_back(hook_text(h));
  return out;
}

}  // namespace sluice::ctl
