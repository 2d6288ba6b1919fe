#include "sluice/core/links.hpp"

#include <linux/if.h>
#include <linux/if_arp.h>
#include <netlink/cache.h>
#include <netlink/netlink.h>
#include <netlink/route/link.h>

#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <sys/socket.h>

#include <cerrno>

#include "sluice/core/error.hpp"

namespace sluice {

namespace {

constexpr int kEventBufferBytes = 8 << 20;

LinkInfo to_info(struct rtnl_link* link) {
  LinkInfo info;
  info.ifindex = rtnl_link_get_ifindex(link);
  const char* name = rtnl_link_get_name(link);
  info.name = name ? name : "";
  unsigned arptype = rtnl_link_get_arptype(link);
  info.has_ethernet = arptype == ARPHRD_ETHER;
  info.up = (rtnl_link_get_flags(link) & IFF_UP) != 0;
  return info;
}

std::string nl_error(int err) { return nl_geterror(err); }

// Reads and discards what is queued on a non-blocking read; true if there
// was anything, or the socket had overrun (ENOBUFS: events were lost).
bool drain_socket(int fd) {
  bool any = false;
  char buffer[16384];
  for (;;) {
    ssize_t n = recv(fd, buffer, sizeof(buffer), MSG_DONTWAIT);
    if (n > 0 || (n < 0 && errno == ENOBUFS)) {
      any = true;
      continue;
    }
    return any;
  }
}

}  // namespace

struct LinkWatcher::Impl {
  Callback callback;
  struct nl_sock* events = nullptr;  // ours: the manager does not free a given socket
  struct nl_cache_mngr* manager = nullptr;
  struct nl_cache* cache = nullptr;

  ~Impl() {
    if (manager) nl_cache_mngr_free(manager);  // frees the cache too
    if (events) nl_socket_free(events);
  }

  // Reads and discards what is queued: the kernel keeps a socket that
  // overflowed in its "congested" state, silently dropping further events,
  // until its queue has been emptied.
  void drain() { drain_socket(nl_socket_get_fd(events)); }

  void refill() {
    if (struct nl_sock* sock = nl_socket_alloc()) {
      if (nl_connect(sock, NETLINK_ROUTE) == 0) nl_cache_refill(sock, cache);
      nl_socket_free(sock);
    }
  }

  static void on_change(struct nl_cache*, struct nl_object* object, int action, void* arg) {
    auto* self = static_cast<Impl*>(arg);
    auto* link = reinterpret_cast<struct rtnl_link*>(object);
    LinkEvent event = action == NL_ACT_NEW   ? LinkEvent::added
                      : action == NL_ACT_DEL ? LinkEvent::removed
                                             : LinkEvent::changed;
    self->callback(event, to_info(link));
  }
};

LinkWatcher::LinkWatcher(Callback callback) : impl_(std::make_unique<Impl>()) {
  impl_->callback = std::move(callback);
  impl_->events = nl_socket_alloc();
  if (!impl_->events) throw Error("cannot allocate a netlink socket");
  int rc = nl_cache_mngr_alloc(impl_->events, NETLINK_ROUTE, NL_AUTO_PROVIDE, &impl_->manager);
  if (rc < 0) throw Error("cannot open a netlink route socket: " + nl_error(rc));
  rc = nl_cache_mngr_add(impl_->manager, "route/link", &Impl::on_change, impl_.get(),
                         &impl_->cache);
  if (rc < 0) throw Error("cannot subscribe to link events over netlink: " + nl_error(rc));
  // A burst of pods creates veths faster than we attach; a large queue keeps
  // the events (SO_RCVBUFFORCE: above rmem_max, we run as root).
  int size = kEventBufferBytes;
  if (setsockopt(nl_socket_get_fd(impl_->events), SOL_SOCKET, SO_RCVBUFFORCE, &size,
                 sizeof(size)) != 0)
    nl_socket_set_buffer_size(impl_->events, size, 0);
}

LinkWatcher::~LinkWatcher() = default;

std::vector<LinkInfo> LinkWatcher::snapshot() const {
  std::vector<LinkInfo> out;
  for (auto* obj = nl_cache_get_first(impl_->cache); obj; obj = nl_cache_get_next(obj))
    out.push_back(to_info(reinterpret_cast<struct rtnl_link*>(obj)));
  return out;
}

int LinkWatcher::fd() const { return nl_cache_mngr_get_fd(impl_->manager); }

bool LinkWatcher::process() {
  int rc = nl_cache_mngr_data_ready(impl_->manager);
  if (rc >= 0) return true;
  // Lost events (ENOBUFS under load): empty the queue so the kernel delivers
  // again, then take a fresh dump; queued messages older than the dump must
  // not be applied on top of it. The caller reconciles against snapshot().
  impl_->drain();
  impl_->refill();
  return false;
}

std::vector<LinkInfo> LinkWatcher::resync() {
  impl_->refill();
  return snapshot();
}

std::vector<LinkInfo> list_links() {
  struct nl_sock* sock = nl_socket_alloc();
  if (!sock) throw Error("cannot allocate a netlink socket");
  std::unique_ptr<struct nl_sock, void (*)(struct nl_sock*)> sock_guard(sock, nl_socket_free);
  int rc = nl_connect(sock, NETLINK_ROUTE);
  if (rc < 0) throw Error("cannot connect to netlink: " + nl_error(rc));
  struct nl_cache* cache = nullptr;
  rc = rtnl_link_alloc_cache(sock, AF_UNSPEC, &cache);
  if (rc < 0) throw Error("cannot list network interfaces: " + nl_error(rc));
  std::unique_ptr<struct nl_cache, void (*)(struct nl_cache*)> cache_guard(cache, nl_cache_free);
  std::vector<LinkInfo> out;
  for (auto* obj = nl_cache_get_first(cache); obj; obj = nl_cache_get_next(obj))
    out.push_back(to_info(reinterpret_cast<struct rtnl_link*>(obj)));
  return out;
}

RoutingEvents::RoutingEvents()
    : fd_(socket(AF_NETLINK, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, NETLINK_ROUTE)) {
  if (!fd_) throw Error("cannot open a netlink route socket: " + errno_text(errno));
  sockaddr_nl local{};
  local.nl_family = AF_NETLINK;
  if (bind(fd_.get(), reinterpret_cast<sockaddr*>(&local), sizeof(local)) != 0)
    throw Error("cannot bind a netlink route socket: " + errno_text(errno));
  for (unsigned group : {RTNLGRP_LINK, RTNLGRP_NEIGH, RTNLGRP_IPV4_IFADDR, RTNLGRP_IPV4_ROUTE,
                         RTNLGRP_IPV4_RULE, RTNLGRP_IPV4_NETCONF, RTNLGRP_IPV6_IFADDR,
                         RTNLGRP_IPV6_ROUTE, RTNLGRP_IPV6_RULE, RTNLGRP_IPV6_NETCONF})
    if (setsockopt(fd_.get(), SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, &group, sizeof(group)) != 0)
      throw Error("cannot join netlink group " + std::to_string(group) + ": " +
                  errno_text(errno));
}

bool RoutingEvents::drain() { return drain_socket(fd_.get()); }

}  // namespace sluice
