// The nat plugin's map entries seen from user space: walking a map held by
// fd (the SDK's PinnedMap::for_each needs a pin path), and keys and values
// compared byte for byte, as the kernel matches hash keys. Entries are
// zero-initialised, so padding compares equal.
#pragma once

#include <bpf/bpf.h>

#include <cstring>

namespace nat {

template <class T>
bool same_bytes(const T& a, const T& b) {
  return std::memcmp(&a, &b, sizeof(T)) == 0;
}

template <class T>
struct BytewiseLess {
  bool operator()(const T& a, const T& b) const { return std::memcmp(&a, &b, sizeof(T)) < 0; }
};

// A map key as a std::map / std::set key.
template <class T>
struct MapKey {
  T key{};
  bool operator<(const MapKey& o) const { return BytewiseLess<T>{}(key, o.key); }
  bool operator==(const MapKey& o) const { return same_bytes(key, o.key); }
};

// fn(const K&, const V&) for every entry; entries that vanish while walking
// are skipped.
template <class K, class V, class Fn>
void map_each(int fd, Fn&& fn) {
  K key{}, next{};
  const K* prev = nullptr;
  while (bpf_map_get_next_key(fd, prev, &next) == 0) {
    V value{};
    if (bpf_map_lookup_elem(fd, &next, &value) == 0) fn(next, value);
    key = next;
    prev = &key;
  }
}

}  // namespace nat
