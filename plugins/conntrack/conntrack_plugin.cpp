// The conntrack plugin: owns Sluice's shared connection tracking table
// (sl_conntrack, layout in <sluice/bpf/conntrack.h>), adds the conntrack
// stage at order 100 to every chain and expires entries with a cleaner
// program run on sluiced's event loop (Host::every). See README.md.
//
// [plugins.conntrack]
//   table_size = 262144                 entries (fixed when the map is first created)
//   table_full = "drop-new"             or "pass-untracked"
//   tcp_midstream_pickup = true         track TCP flows seen without their SYN
//   clean_interval = 10                 seconds between cleaner passes
//   fast_path = true                    redirect answered flows past the host stack
//   workload_source_check = true        drop a workload's packets from addresses not its own
//   [plugins.conntrack.timeouts]        seconds (integer) or "30s", "5m", "1h"
//   tcp_syn = 20, tcp_established = 3600, tcp_fin = 30, tcp_rst = 40,
//   udp = 60, icmp = 5, other = 600
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include <sluice/config.hpp>
#include <sluice/plugin.hpp>
#include <sluice/skeleton.hpp>

#include "conntrack_stage.skel.h"
#include "ct_cleaner.hpp"
#include "ct_cli.hpp"
#include "ct_config.hpp"
#include "ct_metrics.hpp"
#include "ct_table.hpp"

namespace {

using ct::CleanerSkeleton;
using ct::open_cleaner;
using ct::pinned_size;

using StageSkeleton = sluice::Skeleton<conntrack_stage, conntrack_stage__destroy>;

class ConntrackPlugin final : public sluice::Plugin {
 public:
  ~ConntrackPlugin() override { cleaner_timer_.stop(); }

  std::string description() const override {
    return "connection tracking: the shared sl_conntrack table, TCP/UDP/ICMP state, cleaner";
  }

  void configure(const sluice::ConfigSource& source) override {
    sluice::config::PluginTable plugin_table(source);
    settings_ = ct::parse_settings(plugin_table.table());
  }

  std::vector<sluice::StageSpec> stages() const override {
    sluice::StageSpec stage{"conntrack", "conntrack_stage", sluice::kAllRoles,
                            sluice::kBothHooks, sluice::order::kConntrack};
    stage.every_packet_hooks = sluice::kBothHooks;
    stage.may = SL_MAY_DROP | SL_MAY_VOTE_ESTABLISHED;
    stage.scratch_writes = sluice::scratch_bit(SL_SCRATCH_CT_RESULT);
    // A packet the fast path carries into a workload was tracked where it
    // entered the node.
    stage.fast_path_may_bypass_egress = true;
    return {stage};
  }

  void load(sluice::Host& host) override {
    std::string pin_root = host.map_pin_dir();
    // A pinned table keeps its size (and its flows) across restarts: a new
    // table_size applies once the pin is gone (sluiced --cleanup).
    std::uint32_t size = settings_.table_size;
    if (auto pinned = pinned_size(pin_root); pinned && *pinned != size) {
      host.log(sluice::LogLevel::warn,
               "conntrack: the pinned table has " + std::to_string(*pinned) +
                   " entries, table_size asks for " + std::to_string(size) +
                   "; keeping the pinned table and its flows (the new size applies after "
                   "sluiced --cleanup)");
      size = *pinned;
    }
    table_size_ = size;

    LIBBPF_OPTS(bpf_object_open_opts, opts, .pin_root_path = pin_root.c_str());
    StageSkeleton stage(conntrack_stage__open_opts(&opts));
    if (!stage)
      throw sluice::Error("conntrack: cannot open the conntrack stage BPF object: " +
                              sluice::errno_text(errno),
                          "check that the plugin was installed whole (conntrack.so embeds it)");
    bpf_map__set_max_entries(stage->maps.sl_conntrack, size);
    stage->rodata->ct_table_full_rule = settings_.table_full;
    stage->rodata->ct_tcp_midstream = settings_.tcp_midstream ? 1 : 0;
    stage->rodata->ct_fast_path = settings_.fast_path ? 1 : 0;
    stage->rodata->ct_source_check = settings_.workload_source_check ? 1 : 0;
    host.load_bpf("conntrack stage", [&] { return conntrack_stage__load(stage.get()); });

    std::string error;
    CleanerSkeleton cleaner = open_cleaner(pin_root, size, settings_, error);
    if (!cleaner) throw sluice::Error("conntrack: " + error);
    host.load_bpf("conntrack cleaner", [&] { return conntrack_cleaner__load(cleaner.get()); });

    stage_ = std::move(stage);
    cleaner_ = std::move(cleaner);
    host.log(sluice::LogLevel::info,
             "conntrack: table of " + std::to_string(size) + " entries, table_full = " +
                 (settings_.table_full == CT_FULL_DROP_NEW ? "drop-new" : "pass-untracked") +
                 ", cleaner every " + std::to_string(settings_.clean_interval) + "s" +
                 (settings_.fast_path ? ", fast path on" : ""));
    cleaner_timer_.start(bpf_program__fd(cleaner_->progs.conntrack_clean),
                          std::chrono::seconds(settings_.clean_interval), host);
  }

  int stage_fd(std::string_view stage) const override {
    if (stage != "conntrack" || !stage_) return -1;
    return bpf_program__fd(stage_->progs.conntrack_stage);
  }

  bool stage_object(std::string_view stage, sluice::StageObject& out) const override {
    return stage == "conntrack" && sluice::describe_skeleton(stage_.get(), out);
  }

  void shutdown(bool cleanup) override {
    cleaner_timer_.stop();
    if (cleanup && stage_) {
      bpf_map__unpin(stage_->maps.sl_conntrack, nullptr);
      bpf_map__unpin(stage_->maps.ct_stats, nullptr);
    }
  }

  std::vector<sluice::CliCommand> cli_commands() const override {
    return ct::conntrack_cli_commands(settings_);
  }

  void write_metrics(sluice::MetricsWriter& out) const override {
    if (!stage_) return;
    ct::write_conntrack_metrics(out, bpf_map__fd(stage_->maps.sl_conntrack),
                                bpf_map__fd(stage_->maps.ct_stats), table_size_,
                                cleaner_timer_.cleaned_total());
  }

 private:
  ct::Settings settings_ = ct::default_settings();
  std::uint32_t table_size_ = 0;
  StageSkeleton stage_;
  ct::CleanerSkeleton cleaner_;
  ct::PeriodicCleaner cleaner_timer_;  // runs cleaner_'s program: cancelled before it goes
};

}  // namespace

SLUICE_PLUGIN(ConntrackPlugin, "conntrack", "0.1.0")
