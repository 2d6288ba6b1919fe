// The nat plugin's map keys and values compared byte for byte, as the kernel
// matches hash keys. Entries are zero-initialised, so padding compares equal.
// (Walking a map held by fd: sluice::for_each_entry, <sluice/maps.hpp>.)
#pragma once

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


}  // namespace nat
