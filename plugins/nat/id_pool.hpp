// Service-port ids of the nat maps.
#pragma once

#include <cstdint>
#include <set>

namespace nat {

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

}  // namespace nat
