// clsact qdisc and direct-action BPF filters (libbpf's bpf_tc_* API).
//
// Sluice's filters outlive the daemon on purpose (restart without loss), so
// ownership is explicit: a ClsactQdisc created during an attach that then
// fails is removed again by its destructor; once the attach succeeded the
// caller keep()s it and records in sl_ifstate that Sluice created it.
#pragma once

#include <linux/bpf.h>

#include <string>

#include <sluice/bpf/layout.h>

namespace sluice {

// Our filters' identity on every hook. Priority 1 runs before filters that
// other tools add with default priorities.
inline constexpr unsigned kFilterHandle = 0x51ce;
inline constexpr unsigned kFilterPriority = 1;

class ClsactQdisc {
 public:
  // Ensures a clsact qdisc exists on ifindex; created() tells whether this
  // call made it.
  ClsactQdisc(int ifindex, const std::string& ifname);
  ClsactQdisc(const ClsactQdisc&) = delete;
  ClsactQdisc& operator=(const ClsactQdisc&) = delete;
  ~ClsactQdisc();

  bool created() const { return created_; }
  void keep() { keep_ = true; }

 private:
  int ifindex_;
  bool created_ = false;
  bool keep_ = false;
};

// Attaches prog_fd as our filter on the hook, atomically replacing the
// previous program if our filter is already there (no window without one).
void attach_tc_filter(int ifindex, const std::string& ifname, sl_hook hook, int prog_fd);

// Removes our filter from the hook. True when it is gone (a missing filter
// or device counts as gone).
bool detach_tc_filter(int ifindex, sl_hook hook);

// Removes the clsact qdisc (and with it every filter on it).
void destroy_clsact(int ifindex);

// Kernel id of the program in our filter, or 0 when there is none.
unsigned query_tc_filter(int ifindex, sl_hook hook);

}  // namespace sluice
