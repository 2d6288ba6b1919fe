// Walking one of the nat plugin's maps by fd (the SDK's PinnedMap::for_each
// needs a pin path; these maps are held by fd).
#pragma once

#include <bpf/bpf.h>

namespace nat {

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
