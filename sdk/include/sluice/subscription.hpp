// sluice::Subscription: the handle of a timer or a watched file descriptor
// that a plugin asked the host for (Host::every, Host::watch_fd,
// Host::watch_netlink; sdk/ABI.md, "Timers and file descriptors").
// Destroying it (or cancel()) cancels the subscription: its callback never
// runs again, and everything the host held for it (the callback, a socket it
// opened) is released. The host also cancels what a plugin still holds when
// the plugin shuts down, before its library is unloaded.
#pragma once

#include <memory>
#include <utility>

namespace sluice {

class Subscription {
 public:
  // Implemented by the host: its destructor cancels. Built by the host,
  // destroyed by the plugin through the virtual destructor, so the host's
  // code does the cancelling. Frozen for the major (one pointer).
  class Token {
   public:
    virtual ~Token() = default;
  };

  Subscription() = default;
  explicit Subscription(std::unique_ptr<Token> token) : token_(std::move(token)) {}
  Subscription(Subscription&&) noexcept = default;
  Subscription& operator=(Subscription&&) noexcept = default;
  Subscription(const Subscription&) = delete;
  Subscription& operator=(const Subscription&) = delete;
  ~Subscription() = default;

  // Cancels now (also from inside the subscription's own callback).
  void cancel() { token_.reset(); }
  // True until cancelled (or moved from).
  explicit operator bool() const { return token_ != nullptr; }

 private:
  std::unique_ptr<Token> token_;
};

}  // namespace sluice
