// The node's own addresses in nat_node_addrs, for connect-time balancing of
// node ports (nat_connect.bpf.c): filled from getifaddrs() when created and
// again, from a thread, whenever netlink reports an address added or removed
// in this network namespace.
#pragma once

#include <functional>
#include <string>
#include <thread>

#include <sluice/unique_fd.hpp>

namespace nat {

class NodeAddresses {
 public:
  // map_fd: nat_node_addrs (duplicated; the caller keeps its own). Watches
  // the network namespace of the calling thread; `warn` hears (from the
  // watching thread) of an update that failed, the map then keeping what it
  // held. Throws std::runtime_error if the addresses cannot be read or
  // watched at all.
  NodeAddresses(int map_fd, std::function<void(const std::string&)> warn);
  ~NodeAddresses();  // stops the thread; the map keeps the last addresses
  NodeAddresses(const NodeAddresses&) = delete;
  NodeAddresses& operator=(const NodeAddresses&) = delete;

 private:
  // Makes the map hold exactly the namespace's addresses now; throws on a
  // failure to read them or to write the map.
  void sync();
  void watch();

  std::function<void(const std::string&)> warn_;
  sluice::UniqueFd map_;
  sluice::UniqueFd events_;  // netlink, address groups
  sluice::UniqueFd stop_;    // eventfd
  std::thread thread_;
};

}  // namespace nat
