// The Host that plugins see when the core loads them: node identity, pin
// paths, BPF loading with the verifier log, logging through spdlog. Used by
// sluiced, and by tests and benchmarks that load plugins the same way.
#pragma once

#include <spdlog/spdlog.h>

#include "sluice/core/bpf_loader.hpp"
#include "sluice/core/config.hpp"

namespace sluice {

class NodeHost final : public Host {
 public:
  explicit NodeHost(const NodeConfig& config) : config_(config) {}
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

 private:
  const NodeConfig& config_;
};

}  // namespace sluice
