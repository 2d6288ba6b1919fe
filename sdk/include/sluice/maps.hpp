// Typed handles for pinned BPF maps, from C++ (header-only, libbpf's bpf.h).
// For plugin CLI commands and metrics that read their maps by pin path, and
// for tests.
//
//   auto buckets = sluice::PinnedMap<rl_key, rl_bucket>::open(dir + "/ratelimit_buckets");
//   if (auto b = buckets.lookup(key)) ...;
//   buckets.for_each([](const rl_key& k, const rl_bucket& b) { ... });
//
//   auto counters = sluice::PerCpuMap<__u32, __u64>::open(dir + "/ratelimit_counters");
//   __u64 dropped = sluice::sum(counters.lookup(1).value_or({}));
//
// open() checks the map's key and value sizes (and per-CPU-ness) against the
// C++ types and throws sluice::MapError naming the path on a mismatch, so a
// layout change is a clear error instead of garbage. File descriptors are
// closed by the destructors (handles are movable, not copyable).
//
// A plugin's CLI command or metrics opens its maps with open_in_pins(), which
// also checks that the directory holds Sluice's pins of this SDK's layout
// (the sl_meta marker beside them): a map pinned there by something else,
// or by another layout, is refused before anything reads or deletes in it.
//
//   auto table = sluice::PinnedMap<sl_ct_key, sl_ct_value>::open_in_pins(map_pin_dir, "sl_conntrack");
#pragma once

#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/bpf.h>

#include <sluice/bpf/layout.h>
#include <sluice/error.hpp>
#include <sluice/unique_fd.hpp>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace sluice {

struct MapError : Error {
  MapError(std::string path_, int error_, const std::string& message)
      : Error(message), path(std::move(path_)), error(error_) {}
  std::string path;
  int error;  // errno, or 0 for a layout mismatch
};

using UniqueMapFd = UniqueFd;  // <sluice/unique_fd.hpp>

namespace detail {

inline bool is_percpu_type(__u32 type) {
  return type == BPF_MAP_TYPE_PERCPU_HASH || type == BPF_MAP_TYPE_PERCPU_ARRAY ||
         type == BPF_MAP_TYPE_LRU_PERCPU_HASH || type == BPF_MAP_TYPE_PERCPU_CGROUP_STORAGE;
}

inline std::string errno_string(int err) { return std::strerror(err); }

// Opens a pinned map and checks its geometry.
inline std::pair<UniqueMapFd, bpf_map_info> open_checked(const std::string& path,
                                                         std::size_t key_size,
                                                         std::size_t value_size, bool percpu,
                                                         bool read_only) {
  LIBBPF_OPTS(bpf_obj_get_opts, opts, .file_flags = read_only ? static_cast<__u32>(BPF_F_RDONLY) : 0u);
  int fd = bpf_obj_get_opts(path.c_str(), &opts);
  if (fd < 0) {
    int err = errno;
    throw MapError(path, err,
                   "cannot open pinned map " + path + ": " + errno_string(err) +
                       (err == ENOENT ? " (is the plugin loaded, and the pin dir right?)" : ""));
  }
  UniqueMapFd owned(fd);
  bpf_map_info info{};
  __u32 len = sizeof(info);
  if (bpf_obj_get_info_by_fd(fd, &info, &len) != 0) {  // libbpf 1.0 name
    int err = errno;
    throw MapError(path, err, "cannot query map " + path + ": " + errno_string(err));
  }
  std::string name = std::string(info.name);
  if (info.key_size != key_size || info.value_size != value_size)
    throw MapError(path, 0,
                   "map " + path + " (" + name + ") has key/value size " +
                       std::to_string(info.key_size) + "/" + std::to_string(info.value_size) +
                       " bytes, but the C++ types are " + std::to_string(key_size) + "/" +
                       std::to_string(value_size) + " bytes: layout mismatch");
  if (is_percpu_type(info.type) != percpu)
    throw MapError(path, 0,
                   "map " + path + " (" + name + ") is " +
                       (percpu ? "not a per-CPU map: use sluice::PinnedMap"
                               : "a per-CPU map: use sluice::PerCpuMap"));
  return {std::move(owned), info};
}

}  // namespace detail

// Throws MapError unless <map_pin_dir> carries Sluice's layout marker
// (sl_meta) for the layout this SDK was built for. `reading` names the map
// about to be opened, for the message. A marker not yet written (magic 0) is
// a daemon still starting: its maps are Sluice's.
inline void require_sluice_layout(const std::string& map_pin_dir, const std::string& reading) {
  const std::string marker = map_pin_dir + "/" SL_MAP_META;
  UniqueMapFd fd(bpf_obj_get(marker.c_str()));
  if (!fd) {
    int err = errno;
    throw MapError(marker, err,
                   err == ENOENT
                       ? "refusing to use " + reading + ": the layout marker " + marker +
                             " is missing, so these pins were not made by sluiced (or the [bpf] "
                             "root/instance is wrong); start sluiced with this configuration, or "
                             "remove what pinned there"
                       : "cannot open the layout marker " + marker + ": " + detail::errno_string(err));
  }
  bpf_map_info info{};
  __u32 len = sizeof(info);
  if (bpf_obj_get_info_by_fd(fd.get(), &info, &len) != 0) {
    int err = errno;
    throw MapError(marker, err, "cannot query " + marker + ": " + detail::errno_string(err));
  }
  // Read with the pinned value size: magic and layout lead in every layout.
  if (info.type != BPF_MAP_TYPE_ARRAY || info.key_size != sizeof(__u32) ||
      info.value_size < 2 * sizeof(__u32))
    throw MapError(marker, 0,
                   "refusing to use " + reading + ": " + marker +
                       " is not Sluice's layout marker (type " + std::to_string(info.type) +
                       ", key/value size " + std::to_string(info.key_size) + "/" +
                       std::to_string(info.value_size) + "); remove what pinned there");
  std::vector<unsigned char> value(info.value_size);
  __u32 zero = 0;
  if (bpf_map_lookup_elem(fd.get(), &zero, value.data()) != 0) {
    int err = errno;
    throw MapError(marker, err, "cannot read " + marker + ": " + detail::errno_string(err));
  }
  __u32 magic = 0, layout = 0;
  std::memcpy(&magic, value.data(), sizeof(magic));
  std::memcpy(&layout, value.data() + sizeof(magic), sizeof(layout));
  if (magic == 0) return;
  if (magic != SL_LAYOUT_MAGIC)
    throw MapError(marker, 0,
                   "refusing to use " + reading + ": " + marker +
                       " does not carry Sluice's layout magic; remove what pinned there");
  if (layout != SL_LAYOUT_VERSION)
    throw MapError(marker, 0,
                   "refusing to use " + reading + ": the pins use map layout " +
                       std::to_string(layout) + ", this plugin reads layout " +
                       std::to_string(SL_LAYOUT_VERSION) +
                       "; use the sluicectl and plugins that came with the running sluiced");
}

// True when `error` says a map is not pinned while Sluice's layout marker
// is: the plugin that makes the map is not loaded.
inline bool is_missing_map(const MapError& error, const std::string& map_pin_dir) {
  return error.error == ENOENT && error.path != map_pin_dir + "/" SL_MAP_META;
}

// Number of possible CPUs, the length of every per-CPU value.
inline std::size_t possible_cpus() {
  int n = libbpf_num_possible_cpus();
  return n > 0 ? static_cast<std::size_t>(n) : 1;
}

// fn(const Key&, const Value&) for every entry of the (non-per-CPU) map
// behind fd, for maps held by fd rather than opened by pin path; entries
// that vanish while walking are skipped. False when the walk ended on an
// error other than the end of the map (errno says which).
template <class Key, class Value, class Fn>
bool for_each_entry(int fd, Fn&& fn) {
  Key key{}, next{};
  const Key* prev = nullptr;
  while (bpf_map_get_next_key(fd, prev, &next) == 0) {
    Value value{};
    if (bpf_map_lookup_elem(fd, &next, &value) == 0) fn(next, value);
    key = next;
    prev = &key;
  }
  return errno == ENOENT;
}

template <class Key, class Value>
class PinnedMap {
  static_assert(std::is_trivially_copyable_v<Key> && std::is_trivially_copyable_v<Value>,
                "map keys and values are plain data");

 public:
  static PinnedMap open(const std::string& path, bool read_only = false) {
    auto [fd, info] =
        detail::open_checked(path, sizeof(Key), sizeof(Value), false, read_only);
    return PinnedMap(std::move(fd), info, path);
  }
  // <map_pin_dir>/<name>, after require_sluice_layout(map_pin_dir).
  static PinnedMap open_in_pins(const std::string& map_pin_dir, const std::string& name,
                                bool read_only = false) {
    const std::string path = map_pin_dir + "/" + name;
    require_sluice_layout(map_pin_dir, path);
    return open(path, read_only);
  }

  std::optional<Value> lookup(const Key& key) const {
    Value value{};
    if (bpf_map_lookup_elem(fd_.get(), &key, &value) == 0) return value;
    if (errno == ENOENT) return std::nullopt;
    fail("lookup");
  }
  // flags: BPF_ANY, BPF_NOEXIST, BPF_EXIST
  void update(const Key& key, const Value& value, std::uint64_t flags = BPF_ANY) {
    if (bpf_map_update_elem(fd_.get(), &key, &value, flags) != 0) fail("update");
  }
  // False when the key was not there.
  bool erase(const Key& key) {
    if (bpf_map_delete_elem(fd_.get(), &key) == 0) return true;
    if (errno == ENOENT) return false;
    fail("delete");
  }
  // fn(const Key&, const Value&) for every entry (entries that vanish while
  // iterating are skipped).
  template <class Fn>
  void for_each(Fn&& fn) const {
    if (!for_each_entry<Key, Value>(fd_.get(), fn)) fail("iterate");
  }
  std::vector<std::pair<Key, Value>> entries() const {
    std::vector<std::pair<Key, Value>> out;
    for_each([&](const Key& k, const Value& v) { out.emplace_back(k, v); });
    return out;
  }

  int fd() const { return fd_.get(); }
  // Hands the fd over, for code that keeps a plain fd; the handle is empty after.
  UniqueMapFd release() { return std::move(fd_); }
  const std::string& path() const { return path_; }
  const bpf_map_info& info() const { return info_; }
  std::uint32_t max_entries() const { return info_.max_entries; }

 private:
  PinnedMap(UniqueMapFd fd, const bpf_map_info& info, std::string path)
      : fd_(std::move(fd)), info_(info), path_(std::move(path)) {}
  [[noreturn]] void fail(const char* what) const {
    int err = errno;
    throw MapError(path_, err, std::string(what) + " on map " + path_ + ": " +
                                   detail::errno_string(err));
  }
  UniqueMapFd fd_;
  bpf_map_info info_{};
  std::string path_;
};

// A per-CPU map: every value is one Value per possible CPU.
template <class Key, class Value>
class PerCpuMap {
  static_assert(std::is_trivially_copyable_v<Key> && std::is_trivially_copyable_v<Value>,
                "map keys and values are plain data");

 public:
  using Values = std::vector<Value>;

  static PerCpuMap open(const std::string& path, bool read_only = false) {
    auto [fd, info] = detail::open_checked(path, sizeof(Key), sizeof(Value), true, read_only);
    return PerCpuMap(std::move(fd), info, path);
  }
  // <map_pin_dir>/<name>, after require_sluice_layout(map_pin_dir).
  static PerCpuMap open_in_pins(const std::string& map_pin_dir, const std::string& name,
                                bool read_only = false) {
    const std::string path = map_pin_dir + "/" + name;
    require_sluice_layout(map_pin_dir, path);
    return open(path, read_only);
  }

  std::optional<Values> lookup(const Key& key) const {
    std::vector<std::uint8_t> raw(stride() * cpus_);
    if (bpf_map_lookup_elem(fd_.get(), &key, raw.data()) != 0) {
      if (errno == ENOENT) return std::nullopt;
      fail("lookup");
    }
    return unpack(raw);
  }
  // `values` has one entry per possible CPU (possible_cpus()).
  void update(const Key& key, const Values& values, std::uint64_t flags = BPF_ANY) {
    if (values.size() != cpus_)
      throw MapError(path_, EINVAL,
                     "update on per-CPU map " + path_ + ": " + std::to_string(values.size()) +
                         " values for " + std::to_string(cpus_) + " possible CPUs");
    std::vector<std::uint8_t> raw(stride() * cpus_);
    for (std::size_t cpu = 0; cpu < cpus_; ++cpu)
      std::memcpy(raw.data() + cpu * stride(), &values[cpu], sizeof(Value));
    if (bpf_map_update_elem(fd_.get(), &key, raw.data(), flags) != 0) fail("update");
  }
  bool erase(const Key& key) {
    if (bpf_map_delete_elem(fd_.get(), &key) == 0) return true;
    if (errno == ENOENT) return false;
    fail("delete");
  }
  template <class Fn>
  void for_each(Fn&& fn) const {
    Key key{}, next{};
    const Key* prev = nullptr;
    std::vector<std::uint8_t> raw(stride() * cpus_);
    while (bpf_map_get_next_key(fd_.get(), prev, &next) == 0) {
      if (bpf_map_lookup_elem(fd_.get(), &next, raw.data()) == 0) fn(next, unpack(raw));
      key = next;
      prev = &key;
    }
    if (errno != ENOENT) fail("iterate");
  }

  int fd() const { return fd_.get(); }
  // Hands the fd over, for code that keeps a plain fd; the handle is empty after.
  UniqueMapFd release() { return std::move(fd_); }
  const std::string& path() const { return path_; }
  const bpf_map_info& info() const { return info_; }
  std::size_t cpus() const { return cpus_; }

 private:
  PerCpuMap(UniqueMapFd fd, const bpf_map_info& info, std::string path)
      : fd_(std::move(fd)), info_(info), path_(std::move(path)), cpus_(possible_cpus()) {}
  static constexpr std::size_t stride() { return (sizeof(Value) + 7) & ~std::size_t{7}; }
  Values unpack(const std::vector<std::uint8_t>& raw) const {
    Values out(cpus_);
    for (std::size_t cpu = 0; cpu < cpus_; ++cpu)
      std::memcpy(&out[cpu], raw.data() + cpu * stride(), sizeof(Value));
    return out;
  }
  [[noreturn]] void fail(const char* what) const {
    int err = errno;
    throw MapError(path_, err, std::string(what) + " on per-CPU map " + path_ + ": " +
                                   detail::errno_string(err));
  }
  UniqueMapFd fd_;
  bpf_map_info info_{};
  std::string path_;
  std::size_t cpus_;
};

// Sum of per-CPU values with operator+ (integers), or with `add` for structs:
//   sum(values, [](sl_counter a, const sl_counter& b) { a.packets += b.packets; ... return a; })
template <class Value>
Value sum(const std::vector<Value>& values) {
  Value total{};
  for (const auto& v : values) total = total + v;
  return total;
}
template <class Value, class Add>
Value sum(const std::vector<Value>& values, Add add) {
  Value total{};
  for (const auto& v : values) total = add(std::move(total), v);
  return total;
}

}  // namespace sluice
