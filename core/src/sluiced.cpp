// sluiced: the Sluice node daemon.
#include <poll.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <boost/program_options.hpp>
#include <spdlog/spdlog.h>

#include <iostream>

#include "sluice/core/bpf_loader.hpp"
#include "sluice/core/config.hpp"
#include "sluice/core/dataplane.hpp"
#include "sluice/core/error.hpp"
#include "sluice/core/node_host.hpp"
#include "sluice/core/pipeline.hpp"
#include "sluice/core/plugin_host.hpp"
#include "sluice/core/version.hpp"

namespace po = boost::program_options;
using namespace sluice;

namespace {


class Daemon {
 public:
  explicit Daemon(const NodeConfig& config)
      : config_(config), host_(config), plugins_(config, host_) {}

  int run(char** argv) {
    InstanceLock lock(config_, 15);
    dataplane_.emplace(config_);
    dataplane_->set_log_level(config_.log_level);
    install_pipeline();

    LinkWatcher watcher([this](LinkEvent event, const LinkInfo& link) { on_link(event, link); });
    reconcile_links(watcher.snapshot());
    dataplane_->commit_bank();
    spdlog::info("sluiced ready: node {}, instance {}, {} interface(s) managed, pins under {}",
                 config_.node_name, config_.instance, dataplane_->attachments().size(),
                 config_.pin_dir());

    sigset_t signals;
    sigemptyset(&signals);
    for (int sig : {SIGTERM, SIGINT, SIGHUP}) sigaddset(&signals, sig);
    UniqueFd signal_fd(signalfd(-1, &signals, SFD_CLOEXEC));
    if (!signal_fd) throw Error("signalfd: " + errno_text(errno));

    for (;;) {
      pollfd fds[2] = {{watcher.fd(), POLLIN, 0}, {signal_fd.get(), POLLIN, 0}};
      if (poll(fds, 2, -1) < 0) {
        if (errno == EINTR) continue;
        throw Error("poll: " + errno_text(errno));
      }
      if (fds[0].revents & POLLIN) {
        if (!watcher.process()) reconcile_links(watcher.snapshot());
      }
      if (fds[1].revents & POLLIN) {
        signalfd_siginfo info{};
        if (read(signal_fd.get(), &info, sizeof(info)) != sizeof(info)) continue;
        if (info.ssi_signo == SIGHUP) {
          if (reload_allowed()) {
            spdlog::info("SIGHUP: restarting in place with the new configuration");
            plugins_.shutdown(false);
            execv("/proc/self/exe", argv);
            spdlog::error("re-exec failed: {}; keeping the running configuration",
                          errno_text(errno));
          }
          continue;
        }
        spdlog::info("signal {}: exiting; programs stay attached and maps pinned",
                     info.ssi_signo);
        plugins_.shutdown(false);
        return 0;
      }
    }
  }

 private:
  void install_pipeline() {
    plugins_.open_and_configure(false);
    plugins_.load_bpf();
    std::vector<DeclaredStage> stages;
    for (const auto& p : plugins_.plugins()) {
      if (p.state == PluginState::failed)
        spdlog::error("{}", p.error.empty() ? "plugin '" + p.name + "' failed" : p.error);
      else
        spdlog::info("plugin {} {} loaded ({} stage(s))", p.name, p.version, p.stages.size());
      // A failed plugin's known stages stay in the chains as holes, so hooks
      // that enforce policy fail closed instead of silently skipping it.
      for (const auto& stage : p.stages) stages.push_back({p.name, stage});
    }
    auto chains = compute_chains(stages);
    dataplane_->stage_chains(chains, [this](const DeclaredStage& stage) {
      for (const auto& p : plugins_.plugins())
        if (p.name == stage.plugin && p.state == PluginState::loaded)
          return p.plugin->stage_fd(stage.spec.name);
      return -1;
    });
    dataplane_->write_registry(plugins_.plugins(), chains);
  }

  void manage(const LinkInfo& link) {
    auto role = classify_interface(config_.interfaces, link.name);
    const auto& attached = dataplane_->attachments();
    auto it = attached.find(link.ifindex);
    try {
      if (!role) {
        if (it != attached.end()) dataplane_->detach(link.ifindex);
        return;
      }
      if (it != attached.end() && it->second.role == *role && it->second.name == link.name &&
          it->second.has_ethernet == link.has_ethernet && it->second.bank == dataplane_->bank())
        return;
      dataplane_->attach(link, *role);
    } catch (const std::exception& error) {
      spdlog::error("interface {} (ifindex {}): {}", link.name, link.ifindex, error.what());
    }
  }

  void reconcile_links(const std::vector<LinkInfo>& links) {
    std::set<int> present;
    for (const auto& link : links) {
      present.insert(link.ifindex);
      manage(link);
    }
    for (int ifindex : dataplane_->recorded_interfaces())
      if (!present.count(ifindex)) dataplane_->forget(ifindex);
  }

  void on_link(LinkEvent event, const LinkInfo& link) {
    if (event == LinkEvent::removed) {
      dataplane_->forget(link.ifindex);
      return;
    }
    manage(link);
  }

  bool reload_allowed() {
    try {
      NodeConfig next = load_config(config_.file);
      (void)next;
      return true;
    } catch (const ConfigError& error) {
      spdlog::error("SIGHUP: the new configuration is invalid, keeping the running one: {}",
                    format_config_error(error));
      return false;
    }
  }

  const NodeConfig& config_;
  NodeHost host_;
  PluginHost plugins_;
  std::optional<Dataplane> dataplane_;
};

int check_config(const NodeConfig& config) {
  NodeHost host(config);
  PluginHost plugins(config, host);
  plugins.open_and_configure(true);
  std::vector<DeclaredStage> stages;
  for (const auto& p : plugins.plugins())
    for (const auto& stage : p.stages) stages.push_back({p.name, stage});
  compute_chains(stages);
  std::cout << config.file << ": OK (node " << config.node_name << ", pins under "
            << config.pin_dir() << ", " << plugins.plugins().size() << " plugin(s))\n";
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  po::options_description options(
      "sluiced — the Sluice node daemon.\n\n"
      "Attaches Sluice's BPF pipeline to the interfaces of the network namespace it runs\n"
      "in and keeps it in step with the configuration. Stopping it (SIGTERM) leaves the\n"
      "dataplane running; starting it again takes over without dropping traffic.\n"
      "SIGHUP re-reads the configuration the same way.\n\nOptions");
  options.add_options()("help,h", "show this help")(
      "config,c", po::value<std::string>()->default_value("/etc/sluice/sluice.toml"),
      "node configuration file (TOML)")("check-config",
                                        "validate the configuration (and plugin tables) and exit")(
      "cleanup", "remove every filter, the clsact qdiscs Sluice created and all pins, then exit")(
      "version", "print the version and exit")(
      "verbose,v", "log debug messages of the daemon itself");
  po::variables_map vm;
  try {
    po::store(po::parse_command_line(argc, argv, options), vm);
    po::notify(vm);
  } catch (const po::error& error) {
    std::cerr << "sluiced: " << error.what() << "\nTry 'sluiced --help'.\n";
    return 2;
  }
  if (vm.count("help")) {
    std::cout << options << "\n";
    return 0;
  }
  if (vm.count("version")) {
    std::cout << "sluiced " << kSluiceVersion << " (plugin ABI " << kPluginAbiMajor << "."
              << kPluginAbiMinor << ", map layout " << SL_LAYOUT_VERSION << ")\n";
    return 0;
  }
  spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ %v");
  spdlog::set_level(vm.count("verbose") ? spdlog::level::debug : spdlog::level::info);

  NodeConfig config;
  try {
    config = load_config(vm["config"].as<std::string>());
  } catch (const ConfigError& error) {
    std::cerr << "sluiced: invalid configuration: " << format_config_error(error)
              << "\nNothing was changed.\n";
    return 2;
  }
  try {
    if (vm.count("check-config")) return check_config(config);
    if (vm.count("cleanup")) {
      InstanceLock lock(config, 15);
      Dataplane::cleanup(config);
      return 0;
    }
    sigset_t signals;
    sigemptyset(&signals);
    for (int sig : {SIGTERM, SIGINT, SIGHUP}) sigaddset(&signals, sig);
    sigprocmask(SIG_BLOCK, &signals, nullptr);
    Daemon daemon(config);
    return daemon.run(argv);
  } catch (const ConfigError& error) {
    std::cerr << "sluiced: invalid configuration: " << format_config_error(error)
              << "\nNothing was changed.\n";
    return 2;
  } catch (const std::exception& error) {
    std::cerr << "sluiced: " << error.what() << "\n";
    return 1;
  }
}
