#include "node_addresses.hpp"

#include <fcntl.h>
#include <ifaddrs.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <bpf/bpf.h>

#include <cerrno>
#include <cstring>
#include <set>
#include <stdexcept>
#include <vector>

#include <sluice/maps.hpp>

#include "map_key.hpp"
#include "nat_layout.h"

namespace nat {

namespace {

[[noreturn]] void fail(const std::string& what) {
  throw std::runtime_error("nat: " + what + ": " + std::strerror(errno));
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

NodeAddresses::NodeAddresses(int map_fd, std::function<void(const std::string&)> warn)
    : warn_(std::move(warn)),
      map_(fcntl(map_fd, F_DUPFD_CLOEXEC, 0)),
      events_(socket(AF_NETLINK, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, NETLINK_ROUTE)),
      stop_(eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) {
  if (!map_) fail("cannot duplicate the " NAT_MAP_NODE_ADDRS " map's fd");
  if (!events_ || !stop_) fail("cannot open a netlink socket to watch the node's addresses");
  sockaddr_nl local{};
  local.nl_family = AF_NETLINK;
  local.nl_groups = RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR;
  if (bind(events_.get(), reinterpret_cast<sockaddr*>(&local), sizeof(local)) != 0)
    fail("cannot watch the node's addresses (netlink)");
  // Subscribed first, then read: a change in between is not missed.
  sync();
  thread_ = std::thread([this] { watch(); });
}

NodeAddresses::~NodeAddresses() {
  std::uint64_t one = 1;
  if (write(stop_.get(), &one, sizeof(one)) < 0) {
    // The thread then stops at the next address event or never; either way
    // it must not outlive the object.
  }
  if (thread_.joinable()) thread_.join();
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
      fail("cannot write the " NAT_MAP_NODE_ADDRS " map (more than " +
           std::to_string(NAT_MAX_NODE_ADDRS) + " addresses?)");
  for (const auto& k : gone) bpf_map_delete_elem(map_.get(), &k);
}

void NodeAddresses::watch() {
  char buffer[8192];
  for (;;) {
    pollfd fds[2] = {{events_.get(), POLLIN, 0}, {stop_.get(), POLLIN, 0}};
    if (poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      return;
    }
    if (fds[1].revents) return;
    bool changed = false;
    for (;;) {
      ssize_t n = recv(events_.get(), buffer, sizeof(buffer), MSG_DONTWAIT);
      if (n > 0 || (n < 0 && errno == ENOBUFS)) {
        changed = true;
        continue;
      }
      break;
    }
    if (!changed) continue;
    try {
      sync();
    } catch (const std::exception& error) {
      warn_(std::string(error.what()) +
            "; node ports keep answering on the addresses known before, the next address "
            "change tries again");
    }
  }
}

}  // namespace nat
