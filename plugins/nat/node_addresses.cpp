#include "node_addresses.hpp"

#include <fcntl.h>
#include <ifaddrs.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <bpf/bpf.h>

#include <cerrno>
#include <cstring>
#include <set>
#include <vector>

#include <sluice/error.hpp>
#include <sluice/maps.hpp>

#include "map_key.hpp"
#include "nat_layout.h"

namespace nat {

namespace {

[[noreturn]] void fail(const std::string& what, const std::string& what_to_do = "") {
  throw sluice::Error("nat: " + what + ": " + sluice::errno_text(errno), what_to_do);
}

using KeySet = std::set<nat_node_addr_key, BytewiseLess<nat_node_addr_key>>;

KeySet current_addresses() {
  ifaddrs* list = nullptr;
  if (getifaddrs(&list) != 0) fail("cannot list this namespace's addresses (getifaddrs)");
  KeySet out;
  for (ifaddrs* a = list; a; a = a->ifa_next) {
    if (!a->ifa_addr) continue;
    nat_node_addr_key key{};
    if (a->ifa_addr->sa_family == AF_INET) {
      key.family = 4;
      std::memcpy(key.addr, &reinterpret_cast<sockaddr_in*>(a->ifa_addr)->sin_addr, 4);
    } else if (a->ifa_addr->sa_family == AF_INET6) {
      key.family = 6;
      std::memcpy(key.addr, &reinterpret_cast<sockaddr_in6*>(a->ifa_addr)->sin6_addr, 16);
    } else {
      continue;
    }
    out.insert(key);
  }
  freeifaddrs(list);
  return out;
}

}  // namespace

NodeAddresses::NodeAddresses(int map_fd, sluice::Host& host)
    : host_(host), map_(fcntl(map_fd, F_DUPFD_CLOEXEC, 0)) {
  if (!map_) fail("cannot duplicate the " NAT_MAP_NODE_ADDRS " map's fd");
  // Subscribed first, then read: a change in between is not missed.
  watch_ = host.watch_netlink(NETLINK_ROUTE, RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR,
                              [this] { on_change(); });
  sync();
}

void NodeAddresses::sync() {
  KeySet want = current_addresses();
  std::vector<nat_node_addr_key> gone;
  sluice::for_each_entry<nat_node_addr_key, std::uint8_t>(
      map_.get(), [&](const nat_node_addr_key& k, std::uint8_t) {
        if (!want.count(k)) gone.push_back(k);
      });
  std::uint8_t one = 1;
  for (const auto& k : want)
    if (bpf_map_update_elem(map_.get(), &k, &one, BPF_ANY) != 0)
      fail("cannot write the " NAT_MAP_NODE_ADDRS " map",
           "the node may have more than " + std::to_string(NAT_MAX_NODE_ADDRS) +
               " addresses, which connect-time node ports cannot all answer on");
  for (const auto& k : gone) bpf_map_delete_elem(map_.get(), &k);
}

void NodeAddresses::on_change() {
  try {
    sync();
  } catch (const std::exception& error) {
    host_.log(sluice::LogLevel::warn,
              std::string(error.what()) +
                  "; node ports keep answering on the addresses known before, the next address "
                  "change tries again");
  }
}

}  // namespace nat
