// The Host that plugins see when the core loads them: node identity, pin
// paths, BPF loading with the verifier log, logging through spdlog, and the
// event loop of timers and watched fds (events(): sluiced runs it on its
// thread). Used by sluiced, and by tests and benchmarks that load plugins
// the same way.
#pragma once

#include <spdlog/spdlog.h>

#include "sluice/core/bpf_loader.hpp"
#include "sluice/core/config.hpp"
#include "sluice/core/event_loop.hpp"

namespace sluice {

class NodeHost final : public Host {
 public:
  explicit NodeHost(const NodeConfig& config)
      : config_(config),
        events_([](const std::string& message) { spdlog::error("{}", message); }) {}
  std::string node_name() const override { return config_.node_name; }
  std::string pin_dir() const override { return config_.pin_dir(); }
  std::string map_pin_dir() const override { return config_.map_pin_dir(); }
  void load_bpf(std::string_view what, const std::function<int()>& load) override {
    load_with_verifier_log(what, load);
  }
  void log(LogLevel level, std::string_view message) override {
    switch (level) {
      case LogLevel::debug: spdlog::debug("{}", message); break;
      case LogLevel::info: spdlog::info("{}", message); break;
      case LogLevel::warn: spdlog::warn("{}", message); break;
      case LogLevel::error: spdlog::error("{}", message); break;
    }
  }
  Subscription every(std::chrono::milliseconds interval, std::function<void()> callback) override {
    return events_.every(interval, std::move(callback),
                         "a timer (every " + std::to_string(interval.count()) + " ms)");
  }
  Subscription watch_fd(int fd, std::function<void()> on_readable) override {
    return events_.watch_fd(fd, std::move(on_readable), "fd " + std::to_string(fd));
  }
  Subscription watch_netlink(int protocol, std::uint32_t groups,
                             std::function<void()> on_change) override {
    return events_.watch_netlink(protocol, groups, std::move(on_change),
                                 "a netlink subscription (protocol " + std::to_string(protocol) +
                                     ")");
  }

  EventLoop& events() { return events_; }

 private:
  const NodeConfig& config_;
  EventLoop events_;
};

}  // namespace sluice
