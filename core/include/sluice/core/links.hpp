// Network interfaces of the daemon's network namespace: initial dump and
// live add/change/remove events (libnl-route-3 cache manager).
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "sluice/core/unique_fd.hpp"

namespace sluice {

struct LinkInfo {
  int ifindex = 0;
  std::string name;
  bool has_ethernet = true;  // false for L3 devices (tun, wireguard): no L2 header
  bool up = false;
};

enum class LinkEvent { added, changed, removed };

class LinkWatcher {
 public:
  using Callback = std::function<void(LinkEvent, const LinkInfo&)>;
  explicit LinkWatcher(Callback callback);
  ~LinkWatcher();
  LinkWatcher(const LinkWatcher&) = delete;
  LinkWatcher& operator=(const LinkWatcher&) = delete;

  std::vector<LinkInfo> snapshot() const;
  int fd() const;             // poll for readability, then call process()
  // Delivers pending events to the callback. Returns false when events were
  // lost (socket overrun): the caller must reconcile against snapshot().
  bool process();
  // Refreshes the view from a fresh dump (a safety net against events lost
  // without the kernel telling) and returns it.
  std::vector<LinkInfo> resync();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Notice of any change that can alter a route lookup's answer: routes,
// rules, neighbours, addresses, links, forwarding settings (netlink groups,
// no parsing: the only reaction is "cached routes are stale").
class RoutingEvents {
 public:
  RoutingEvents();
  int fd() const { return fd_.get(); }  // poll for readability, then drain()
  // Reads what is queued; true if there was anything (or the socket overran).
  bool drain();

 private:
  UniqueFd fd_;
};

// One-shot dump without watching (sluicectl, cleanup).
std::vector<LinkInfo> list_links();

}  // namespace sluice
