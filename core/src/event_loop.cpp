#include "sluice/core/event_loop.hpp"

#include <fcntl.h>
#include <linux/netlink.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <map>
#include <vector>

#include "sluice/core/error.hpp"
#include "sluice/core/unique_fd.hpp"

namespace sluice {

namespace {

enum class Kind { timer, fd, netlink };

struct Entry {
  Kind kind;
  UniqueFd fd;  // the timerfd, the netlink socket, or a duplicate of the watched fd
  std::function<void()> callback;
  std::string label;
};

}  // namespace

struct EventLoop::State {
  UniqueFd epoll;
  std::function<void(const std::string&)> on_error;
  std::uint64_t next_id = 1;
  std::map<std::uint64_t, std::shared_ptr<Entry>> entries;  // by id: subscription order

  void cancel(std::uint64_t id) {
    auto it = entries.find(id);
    if (it == entries.end()) return;
    epoll_ctl(epoll.get(), EPOLL_CTL_DEL, it->second->fd.get(), nullptr);
    // A callback running now keeps its entry (and itself) alive until it returns.
    entries.erase(it);
  }

  void invoke(const std::shared_ptr<Entry>& entry) {
    try {
      entry->callback();
    } catch (const std::exception& error) {
      on_error(entry->label + " failed: " + error.what() + " (it runs again next time)");
    } catch (...) {
      on_error(entry->label + " failed with an unknown exception (it runs again next time)");
    }
  }
};

namespace {

class Token final : public Subscription::Token {
 public:
  Token(std::weak_ptr<EventLoop::State> state, std::uint64_t id)
      : state_(std::move(state)), id_(id) {}
  ~Token() override {
    if (auto state = state_.lock()) state->cancel(id_);
  }

 private:
  std::weak_ptr<EventLoop::State> state_;
  std::uint64_t id_;
};

}  // namespace

EventLoop::EventLoop(std::function<void(const std::string&)> on_error)
    : state_(std::make_shared<State>()) {
  state_->on_error = std::move(on_error);
  state_->epoll.reset(epoll_create1(EPOLL_CLOEXEC));
  if (!state_->epoll)
    throw Error("cannot create the event loop (epoll_create1): " + errno_text(errno));
}

EventLoop::~EventLoop() = default;

int EventLoop::fd() const { return state_->epoll.get(); }

std::size_t EventLoop::size() const { return state_->entries.size(); }

namespace {

Subscription add(const std::shared_ptr<EventLoop::State>& state, Kind kind, UniqueFd fd,
                 std::function<void()> callback, std::string label) {
  if (!callback) throw Error(label + ": no callback given");
  std::uint64_t id = state->next_id++;
  epoll_event event{};
  event.events = EPOLLIN;
  event.data.u64 = id;
  if (epoll_ctl(state->epoll.get(), EPOLL_CTL_ADD, fd.get(), &event) != 0)
    throw Error("cannot watch " + label + " (epoll_ctl): " + errno_text(errno));
  state->entries.emplace(
      id, std::make_shared<Entry>(
              Entry{kind, std::move(fd), std::move(callback), std::move(label)}));
  return Subscription(std::make_unique<Token>(state, id));
}

}  // namespace

Subscription EventLoop::every(std::chrono::milliseconds interval, std::function<void()> callback,
                              std::string label) {
  if (interval.count() <= 0)
    throw Error(label + ": a timer needs an interval above zero, not " +
                std::to_string(interval.count()) + " ms");
  UniqueFd timer(timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC));
  if (!timer) throw Error("cannot create " + label + " (timerfd_create): " + errno_text(errno));
  itimerspec spec{};
  spec.it_interval.tv_sec = interval.count() / 1000;
  spec.it_interval.tv_nsec = (interval.count() % 1000) * 1000000;
  spec.it_value = spec.it_interval;
  if (timerfd_settime(timer.get(), 0, &spec, nullptr) != 0)
    throw Error("cannot arm " + label + " (timerfd_settime): " + errno_text(errno));
  return add(state_, Kind::timer, std::move(timer), std::move(callback), std::move(label));
}

Subscription EventLoop::watch_fd(int fd, std::function<void()> on_readable, std::string label) {
  // Our own duplicate: the same fd may be watched twice, and a plugin that
  // closes its fd before cancelling cannot make epoll watch another file.
  UniqueFd own(fcntl(fd, F_DUPFD_CLOEXEC, 0));
  if (!own)
    throw Error("cannot watch " + label + ": fd " + std::to_string(fd) + ": " +
                errno_text(errno));
  return add(state_, Kind::fd, std::move(own), std::move(on_readable), std::move(label));
}

Subscription EventLoop::watch_netlink(int protocol, std::uint32_t groups,
                                      std::function<void()> on_change, std::string label) {
  UniqueFd socket_fd(socket(AF_NETLINK, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, protocol));
  if (!socket_fd)
    throw Error("cannot open a netlink socket (protocol " + std::to_string(protocol) + ") for " +
                label + ": " + errno_text(errno));
  sockaddr_nl local{};
  local.nl_family = AF_NETLINK;
  local.nl_groups = groups;
  if (bind(socket_fd.get(), reinterpret_cast<sockaddr*>(&local), sizeof(local)) != 0)
    throw Error("cannot subscribe " + label + " to netlink groups 0x" +
                [&] {
                  char hex[16];
                  std::snprintf(hex, sizeof(hex), "%x", groups);
                  return std::string(hex);
                }() + ": " + errno_text(errno));
  return add(state_, Kind::netlink, std::move(socket_fd), std::move(on_change), std::move(label));
}

std::size_t EventLoop::run_once(std::chrono::milliseconds timeout) {
  epoll_event events[32];
  int n = epoll_wait(state_->epoll.get(), events, 32, static_cast<int>(timeout.count()));
  if (n < 0) {
    if (errno == EINTR) return 0;
    throw Error("event loop: epoll_wait: " + errno_text(errno));
  }
  // Keeps the state alive if a callback destroys the loop's owner's handles.
  std::shared_ptr<State> state = state_;
  std::size_t ran = 0;
  for (int i = 0; i < n; ++i) {
    // Looked up per event: a callback earlier in this batch may have
    // cancelled this one, which then must not run.
    auto it = state->entries.find(events[i].data.u64);
    if (it == state->entries.end()) continue;
    std::shared_ptr<Entry> entry = it->second;
    if (entry->kind == Kind::timer) {
      std::uint64_t expirations = 0;
      if (read(entry->fd.get(), &expirations, sizeof(expirations)) != sizeof(expirations))
        continue;  // nothing expired after all
    } else if (entry->kind == Kind::netlink) {
      alignas(nlmsghdr) char buffer[8192];
      bool changed = false;
      for (;;) {
        ssize_t got = recv(entry->fd.get(), buffer, sizeof(buffer), MSG_DONTWAIT);
        if (got > 0 || (got < 0 && errno == ENOBUFS)) {
          changed = true;
          continue;
        }
        if (got < 0 && errno == EINTR) continue;
        break;
      }
      if (!changed) continue;
    }
    state->invoke(entry);
    ++ran;
  }
  return ran;
}

std::size_t EventLoop::fire_timers() {
  std::shared_ptr<State> state = state_;
  std::vector<std::uint64_t> timers;
  for (const auto& [id, entry] : state->entries)
    if (entry->kind == Kind::timer) timers.push_back(id);
  std::size_t ran = 0;
  for (std::uint64_t id : timers) {
    auto it = state->entries.find(id);
    if (it == state->entries.end()) continue;
    std::shared_ptr<Entry> entry = it->second;
    state->invoke(entry);
    ++ran;
  }
  return ran;
}

}  // namespace sluice
