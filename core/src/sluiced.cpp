// sluiced: the Sluice node daemon.
#include <poll.h>
#include <signal.h>
#include <fcntl.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/program_options.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <iostream>

#include <bpf/bpf.h>

#include "sluice/core/bpf_loader.hpp"
#include "sluice/core/config.hpp"
#include "sluice/core/counters.hpp"
#include "sluice/core/dataplane.hpp"
#include "sluice/core/error.hpp"
#include "sluice/core/exposition.hpp"
#include "sluice/core/hole_placement.hpp"
#include "sluice/core/metrics_server.hpp"
#include "sluice/core/node_host.hpp"
#include "sluice/core/pipeline.hpp"
#include "sluice/core/plugin_host.hpp"
#include "sluice/core/state_dir.hpp"
#include "sluice/core/version.hpp"

namespace po = boost::program_options;
using namespace sluice;

namespace {


class Daemon {
 public:
  Daemon(const NodeConfig& config, bool allow_invalid_plugin_config)
      : config_(config),
        allow_invalid_plugin_config_(allow_invalid_plugin_config),
        host_(config),
        plugins_(config, host_) {}

  int run(char** argv) {
    // Before anything touches the pins or the interfaces (and before waiting
    // for a running daemon's lock): a configuration that --check-config
    // refuses must not take over a running dataplane.
    plugins_.open_and_configure(false);
    if (!allow_invalid_plugin_config_) plugins_.refuse_invalid_configuration();
    InstanceLock lock(config_, 15);
    dataplane_.emplace(config_);
    dataplane_->set_log_level(config_.log_level);
    install_pipeline();

    // Opened before the links are read, so no change in between goes unseen.
    RoutingEvents routing;
    LinkWatcher watcher([this](LinkEvent event, const LinkInfo& link) { on_link(event, link); });
    reconcile_links(watcher.snapshot());
    dataplane_->commit_bank();
    StateDirectory state(config_.state_dir);
    ResourceRouter resources(plugins_.plugins());
    resources.load_all(state);
    SettlingChanges state_changes(kStateQuiet, kStateLongestWait);
    spdlog::info("sluiced ready: node {}, instance {}, {} interface(s) managed, pins under {}",
                 config_.node_name, config_.instance, dataplane_->attachments().size(),
                 config_.pin_dir());

    sigset_t signals;
    sigemptyset(&signals);
    for (int sig : {SIGTERM, SIGINT, SIGHUP, SIGUSR1, SIGUSR2}) sigaddset(&signals, sig);
    UniqueFd signal_fd(signalfd(-1, &signals, SFD_CLOEXEC));
    if (!signal_fd) throw Error("signalfd: " + errno_text(errno));
    start_metrics();

    for (;;) {
      // fds[5]: the plugins' timers and watched fds (Host::every, ...), run
      // here on this thread like everything else.
      pollfd fds[6] = {{watcher.fd(), POLLIN, 0},
                       {signal_fd.get(), POLLIN, 0},
                       {metrics_ ? metrics_->fd() : -1, POLLIN, 0},
                       {state.fd(), POLLIN, 0},
                       {routing.fd(), POLLIN, 0},
                       {host_.events().fd(), POLLIN, 0}};
      const int state_wait = state_changes.wait_ms(SettlingChanges::Clock::now());
      const bool instances_due = dataplane_->has_positions_to_instantiate();
      int ready = poll(fds, 6, instances_due  ? 0
                               : state_wait < 0 ? kResyncIntervalMs
                                                : std::min(state_wait, kResyncIntervalMs));
      if (ready < 0) {
        if (errno == EINTR) continue;
        throw Error("poll: " + errno_text(errno));
      }
      // Between events, one position at a time: the loop stays responsive.
      if (ready == 0 && instances_due) {
        try {
          dataplane_->instantiate_next(
              [this](const DeclaredStage& stage, const NextSlots& next) {
                return stage_instance(stage, next);
              });
          if (!dataplane_->has_positions_to_instantiate())
            spdlog::info("chains: direct tail calls in place ({} position(s) with a program of "
                         "their own)",
                         dataplane_->instantiated_positions());
        } catch (const std::exception& error) {
          spdlog::error("direct tail calls: {}; the position keeps its program", error.what());
        }
      } else if (ready == 0 && state_wait < 0) {
        // Safety net: events can be lost without the kernel saying so.
        reconcile_links(watcher.resync());
        dataplane_->invalidate_routes();  // the same safety net for routes
        continue;
      }
      if (fds[0].revents & POLLIN) {
        if (!watcher.process()) reconcile_links(watcher.snapshot());
      }
      // After the link events, which may attach (that bumps the epoch too).
      if ((fds[4].revents & POLLIN) && routing.drain()) dataplane_->invalidate_routes();
      if (metrics_ && (fds[2].revents & POLLIN)) metrics_->serve_one();
      if (fds[3].revents & POLLIN)
        state_changes.add(state.take_changed_paths(), SettlingChanges::Clock::now());
      if (auto due = state_changes.take_due(SettlingChanges::Clock::now()); !due.empty())
        resources.apply(due);
      if (fds[5].revents & POLLIN) host_.events().run_once(std::chrono::milliseconds(0));
      if (fds[1].revents & POLLIN) {
        signalfd_siginfo info{};
        if (read(signal_fd.get(), &info, sizeof(info)) != sizeof(info)) continue;
        if (info.ssi_signo == SIGHUP) {
          if (reload_allowed()) {
            // The binary's path, not /proc/self/exe: after a package upgrade
            // SIGHUP then starts the new version, taking over the same way.
            spdlog::info("SIGHUP: restarting in place ({}) with the new configuration",
                         executable_);
            execv(executable_.c_str(), argv);
            spdlog::error("re-exec of {} failed: {}; keeping the running configuration",
                          executable_, errno_text(errno));
          }
          continue;
        }
        if (info.ssi_signo == SIGUSR1 || info.ssi_signo == SIGUSR2) {
          // No action is bound to them; their default (terminate) would take
          // the daemon down without a word.
          spdlog::warn("signal {} ({}) from pid {}: ignored (sluiced acts on SIGHUP, SIGTERM "
                       "and SIGINT only)",
                       info.ssi_signo, strsignal(static_cast<int>(info.ssi_signo)),
                       info.ssi_pid);
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
    plugins_.load_bpf();
    std::vector<DeclaredStage> stages;
    for (auto& p : plugins_.plugins()) {
      if (p.state == PluginState::failed) {
        spdlog::error("{}", p.error.empty() ? "plugin '" + p.name + "' failed" : p.error);
        place_failed_plugin(p);
      } else {
        spdlog::info("plugin {} {} loaded ({} stage(s))", p.name, p.version, p.stages.size());
      }
      // A failed plugin's stages stay in the chains as holes, so hooks that
      // enforce policy fail closed instead of silently skipping it.
      for (const auto& stage : p.stages) stages.push_back({p.name, stage});
    }
    auto chains = compute_chains(stages);
    // The plugins' own programs first, so the chains go live at once; each
    // position gets its instance with direct tail calls afterwards, from
    // the loop (stage_instance()).
    dataplane_->stage_chains(chains, [this](const DeclaredStage& stage) {
      const LoadedPlugin* p = loaded_plugin(stage);
      return p ? p->plugin.stage_fd(stage.spec.name) : -1;
    });
    dataplane_->write_registry(plugins_.plugins());
  }

  const LoadedPlugin* loaded_plugin(const DeclaredStage& stage) const {
    for (const auto& p : plugins_.plugins())
      if (p.name == stage.plugin && p.state == PluginState::loaded) return &p;
    return nullptr;
  }

  // One chain position's program with direct tail calls (Dataplane::
  // instantiate_next), or none: the plugin predates ABI 2.1 or the load
  // failed, and its own program stays.
  UniqueFd stage_instance(const DeclaredStage& stage, const NextSlots& next) const {
    const LoadedPlugin* p = loaded_plugin(stage);
    StageObject object;
    if (!p || !p->plugin.stage_object(stage.spec.name, object)) return UniqueFd();
    try {
      return load_stage_instance(object, stage.spec.program, next,
                                 "stage '" + stage.plugin + "/" + stage.spec.name + "'");
    } catch (const Error& e) {
      // Slower, not wrong: indirect tail calls from this position.
      spdlog::warn("{}; the plugin's own program stays there", e.what());
      return UniqueFd();
    }
  }

  // A failed plugin's holes, placed by place_failed_plugin_holes()
  // (hole_placement.hpp); this says what happened.
  void place_failed_plugin(LoadedPlugin& p) {
    FailedPluginHoles holes =
        place_failed_plugin_holes(config_.plugin_optional(p.name), p.stages,
                                  [&] { return dataplane_->recorded_stages(p.name); });
    p.stages = std::move(holes.stages);
    switch (holes.placement) {
      case HolePlacement::left_out:
        spdlog::warn("plugin '{}' is optional: its stages are left out", p.name);
        break;
      case HolePlacement::declared:
        break;
      case HolePlacement::recorded:
        spdlog::error("plugin '{}': its {} stage(s) recorded by the last run stay as holes",
                      p.name, p.stages.size());
        break;
      case HolePlacement::heads_every_chain:
        spdlog::error("plugin '{}' failed before declaring its stages and no earlier run "
                      "recorded them: a hole heads every chain (hooks whose missed_tail_call "
                      "rule is \"drop\" drop everything) until it loads; list it in [plugins] "
                      "optional if its absence may be tolerated",
                      p.name);
        break;
    }
  }

  void manage(const LinkInfo& link) {
    auto role = classify_interface(config_.interfaces, link.name);
    const auto& attached = dataplane_->attachments();
    auto it = attached.find(link.ifindex);
    try {
      if (!role) {
        // Also what an earlier run attached: the patterns may have changed.
        if (it != attached.end() || dataplane_->is_recorded(link.ifindex))
          dataplane_->detach(link.ifindex);
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

  // A new configuration must pass everything the new process would check —
  // including the plugins' own tables and chain limits — before we exec
  // into it; that check runs plugin code, so it runs in a child.
  bool reload_allowed() {
    NodeConfig next;
    try {
      next = load_config(config_.file);
    } catch (const ConfigError& error) {
      spdlog::error("SIGHUP: the new configuration is invalid, keeping the running one: {}",
                    format_config_error(error));
      return false;
    }
    if (next.pin_dir() != config_.pin_dir()) {
      spdlog::error("SIGHUP: [bpf] root/instance changed ({} -> {}); that needs sluiced "
                    "--cleanup and a fresh start, keeping the running configuration",
                    config_.pin_dir(), next.pin_dir());
      return false;
    }
    pid_t child = fork();
    if (child == 0) {
      int devnull = open("/dev/null", O_WRONLY);
      if (devnull >= 0) dup2(devnull, STDOUT_FILENO);
      execl(executable_.c_str(), executable_.c_str(), "--check-config", "--config",
            config_.file.c_str(), static_cast<char*>(nullptr));
      _exit(127);
    }
    int status = 0;
    if (child < 0 || waitpid(child, &status, 0) < 0 || !WIFEXITED(status) ||
        WEXITSTATUS(status) != 0) {
      spdlog::error("SIGHUP: {} --check-config refused the new configuration (see above); "
                    "keeping the running one",
                    executable_);
      return false;
    }
    return true;
  }

  // Metrics are optional: a port that cannot be bound must never stop the
  // daemon from managing traffic.
  void start_metrics() {
    if (config_.metrics_listen.empty()) {
      spdlog::info("metrics: disabled ([metrics] listen = \"\")");
      return;
    }
    std::string why;
    auto address = parse_listen_address(config_.metrics_listen, why);
    if (!address) {  // load_config validated it already
      spdlog::error("metrics: {}; running without metrics", why);
      return;
    }
    try {
      metrics_.emplace(*address, [this] { return render_metrics(); });
      spdlog::info("metrics: serving Prometheus metrics on http://{}/metrics",
                   metrics_->endpoint());
    } catch (const std::exception& error) {
      spdlog::error("{}; sluiced keeps managing traffic but serves no metrics (fix [metrics] "
                    "listen in {} and send SIGHUP)",
                    error.what(), config_.file);
    }
  }

  std::string render_metrics() {
    ExpositionWriter out;
    write_core_metrics(out);
    for (const auto& p : plugins_.plugins()) {
      if (p.state != PluginState::loaded || !p.plugin) continue;
      ExpositionWriter before = out;  // a failing plugin contributes nothing
      try {
        p.plugin.write_metrics(out);
      } catch (const std::exception& error) {
        out = std::move(before);
        spdlog::warn("metrics: plugin '{}' failed to write its metrics: {}", p.name,
                     error.what());
      } catch (...) {
        out = std::move(before);
        spdlog::warn("metrics: plugin '{}' failed to write its metrics", p.name);
      }
    }
    return out.text();
  }

  void write_core_metrics(ExpositionWriter& out) {
    try {
      auto interfaces = read_managed_interfaces(dataplane_->map_fd(SL_MAP_IFSTATE));
      auto rows = read_counters(dataplane_->map_fd(SL_MAP_COUNTERS),
                                config_.map_pin_dir() + "/" SL_MAP_COUNTERS, interfaces);
      auto labels = [](const CounterRow& row) {
        return MetricLabels{{"interface", row.iface->name},
                            {"hook", hook_name(row.hook)},
                            {"reason", reason_name(row.reason)},
                            {"verdict", verdict_name(row.reason.verdict)}};
      };
      for (const auto& row : rows)
        out.counter("sluice_packets_total",
                    "Packets seen by Sluice's entry programs, by interface, hook, reason and "
                    "verdict (non-zero series only)",
                    labels(row), static_cast<double>(row.total.packets));
      for (const auto& row : rows)
        out.counter("sluice_bytes_total",
                    "Bytes seen by Sluice's entry programs, by interface, hook, reason and "
                    "verdict (non-zero series only)",
                    labels(row), static_cast<double>(row.total.bytes));
    } catch (const std::exception& error) {
      spdlog::warn("metrics: cannot read the counters: {}", error.what());
    }
    out.gauge("sluice_interfaces_managed", "Interfaces with Sluice's entry programs attached",
              {}, static_cast<double>(dataplane_->attachments().size()));
    for (const auto& p : plugins_.plugins())
      out.gauge("sluice_plugin_up", "1 when the plugin is loaded, 0 when it failed",
                {{"plugin", p.name}, {"version", p.version}},
                p.state == PluginState::loaded ? 1 : 0);
    sl_meta meta{};
    __u32 zero = 0;
    int meta_fd = -1;
    try {
      meta_fd = dataplane_->map_fd(SL_MAP_META);
    } catch (const std::exception& error) {
      spdlog::warn("metrics: {}", error.what());
    }
    if (meta_fd >= 0 && bpf_map_lookup_elem(meta_fd, &zero, &meta) == 0)
      out.gauge("sluice_chain_generation",
                "Chain installs since the pins were created (bumped by every start and reload)",
                {}, meta.generation);
    out.gauge("sluice_build_info", "The running sluiced", {{"version", kSluiceVersion}}, 1);
  }

  static constexpr int kResyncIntervalMs = 30000;
  // State files are applied once the directory has been quiet this long
  // (SettlingChanges): long enough for a writer's pieces, short for people.
  static constexpr std::chrono::milliseconds kStateQuiet{300};
  static constexpr std::chrono::milliseconds kStateLongestWait{3000};

  static std::string executable_path() {
    std::error_code ec;
    std::string path = std::filesystem::read_symlink("/proc/self/exe", ec).string();
    const std::string deleted = " (deleted)";
    if (path.size() > deleted.size() &&
        path.compare(path.size() - deleted.size(), deleted.size(), deleted) == 0)
      path.resize(path.size() - deleted.size());
    return ec ? "/proc/self/exe" : path;
  }

  const NodeConfig& config_;
  bool allow_invalid_plugin_config_;
  std::string executable_ = executable_path();
  NodeHost host_;
  PluginHost plugins_;
  std::optional<Dataplane> dataplane_;
  std::optional<MetricsServer> metrics_;
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
      "allow-invalid-plugin-config",
      "start even when a plugin's table or dependencies are invalid: that plugin fails and "
      "its stages stay in the chains as holes (fail closed). Without it such a "
      "configuration is refused before the running dataplane is touched")(
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
    for (int sig : {SIGTERM, SIGINT, SIGHUP, SIGUSR1, SIGUSR2}) sigaddset(&signals, sig);
    sigprocmask(SIG_BLOCK, &signals, nullptr);
    // A peer that goes away (metrics scrape, control socket) must cost an
    // EPIPE on that write, not the daemon.
    signal(SIGPIPE, SIG_IGN);
    Daemon daemon(config, vm.count("allow-invalid-plugin-config") > 0);
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
