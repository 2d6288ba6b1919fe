// The node's own addresses in nat_node_addrs, for connect-time balancing of
// node ports (nat_connect.bpf.c): filled from getifaddrs() when created and
// again whenever netlink reports an address added or removed in this network
// namespace (a Host::watch_netlink subscription: run on sluiced's event loop,
// no thread of its own).
#pragma once

#include <string>

#include <sluice/plugin.hpp>
#include <sluice/unique_fd.hpp>

namespace nat {

class NodeAddresses {
 public:
  // map_fd: nat_node_addrs (duplicated; the caller keeps its own). Watches
  // the daemon's network namespace through `host`, which also hears (as a
  // warning) of an update that failed, the map then keeping what it held.
  // Throws sluice::Error if the addresses cannot be read or watched at all.
  NodeAddresses(int map_fd, sluice::Host& host);
  ~NodeAddresses() = default;  // cancels the watch; the map keeps the last addresses
  NodeAddresses(const NodeAddresses&) = delete;
  NodeAddresses& operator=(const NodeAddresses&) = delete;

 private:
  // Makes the map hold exactly the namespace's addresses now; throws on a
  // failure to read them or to write the map.
  void sync();
  void on_change();

  sluice::Host& host_;
  sluice::UniqueFd map_;
  sluice::Subscription watch_;  // last: cancelled before the map's fd closes
};

}  // namespace nat
