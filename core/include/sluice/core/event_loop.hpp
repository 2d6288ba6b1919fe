// The daemon's event loop for plugins' timers and file descriptors
// (Host::every, watch_fd, watch_netlink; sdk/ABI.md, "Timers and file
// descriptors"): one epoll instance, a timerfd per timer. sluiced polls fd()
// in its main loop and calls run_once() when it is readable, so every
// callback runs on the daemon's thread, between the other things it does.
// Single-threaded: subscribe, cancel and run on one thread.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include <sluice/subscription.hpp>

namespace sluice {

class EventLoop {
 public:
  // `on_error` hears of a callback that threw (its label and what()).
  explicit EventLoop(std::function<void(const std::string&)> on_error);
  ~EventLoop();  // cancels what is left; handles still held cancel nothing
  EventLoop(const EventLoop&) = delete;
  EventLoop& operator=(const EventLoop&) = delete;

  // The epoll fd: readable when run_once() has something to run.
  int fd() const;

  // See Host. `label` names the subscription in error messages. Throw
  // sluice::Error when the kernel refuses.
  Subscription every(std::chrono::milliseconds interval, std::function<void()> callback,
                     std::string label);
  Subscription watch_fd(int fd, std::function<void()> on_readable, std::string label);
  Subscription watch_netlink(int protocol, std::uint32_t groups, std::function<void()> on_change,
                             std::string label);

  // Waits up to `timeout` (0: not at all) for ready subscriptions and runs
  // their callbacks once each. Returns how many callbacks ran.
  std::size_t run_once(std::chrono::milliseconds timeout);
  // Runs every timer's callback once, now, in subscription order, whatever
  // its interval (tests: drive timers deterministically). Returns how many.
  std::size_t fire_timers();
  // Live subscriptions.
  std::size_t size() const;

  struct State;  // opaque; public so the handles can name it

 private:
  std::shared_ptr<State> state_;
};

}  // namespace sluice
