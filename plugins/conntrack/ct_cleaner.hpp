// The cleaner: a BPF program that walks the table and deletes expired
// entries, run on demand (sluicectl conntrack clean) or every
// clean_interval on sluiced's event loop (Host::every).
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include <sluice/plugin.hpp>

#include "conntrack_cleaner.skel.h"
#include "ct_config.hpp"

namespace ct {

// A named deleter, not sluice::Skeleton: the generated __destroy is static,
// so a Skeleton<..., conntrack_cleaner__destroy> would be a different type in
// each file that includes this header.
struct CleanerDestroyer {
  void operator()(conntrack_cleaner* skel) const { conntrack_cleaner__destroy(skel); }
};
using CleanerSkeleton = std::unique_ptr<conntrack_cleaner, CleanerDestroyer>;

// Opens (does not load) the cleaner against the pinned table (and only it);
// nullptr with `error` set on failure.
CleanerSkeleton open_cleaner(const std::string& map_pin_dir, std::uint32_t table_size,
                             const Settings& settings, std::string& error);

struct CleanResult {
  std::uint32_t scanned = 0;
  std::uint32_t deleted = 0;
};

// One pass: expired entries, or every entry with `all`. 0 or an errno.
int run_cleaner(int prog_fd, bool all, CleanResult& result);

// Runs the cleaner program every `interval` on the host's event loop until
// stopped (or destroyed), counting what it removed. A failing run is logged
// once. Everything runs on the daemon's thread (sdk/ABI.md), so no locks.
class PeriodicCleaner {
 public:
  void start(int prog_fd, std::chrono::seconds interval, sluice::Host& host);
  void stop() { timer_.cancel(); }
  std::uint64_t cleaned_total() const { return cleaned_total_; }

 private:
  sluice::Subscription timer_;
  bool warned_ = false;
  std::uint64_t cleaned_total_ = 0;
};

}  // namespace ct
