// The C++ plugin interface of Sluice (ABI 2.1). See sdk/ABI.md for the rules.
//
// A plugin is a shared library that exports two symbols:
//   sluice_plugin_abi     a PluginAbiDescriptor (plain data, checked first)
//   sluice_plugin_create  sluice::Plugin* () — called only after the check
// Use SLUICE_PLUGIN(ClassName, "name", "version") once in the plugin to
// define both.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <boost/config.hpp>

#include <sluice/bpf/layout.h>
#include <sluice/cli.hpp>
#include <sluice/error.hpp>
#include <sluice/metrics.hpp>
#include <sluice/resources.hpp>
#include <sluice/subscription.hpp>

struct bpf_object;


namespace sluice {

inline constexpr std::uint32_t kPluginAbiMagic = 0x534c5047;  // "SLPG"
inline constexpr std::uint16_t kPluginAbiMajor = 2;
inline constexpr std::uint16_t kPluginAbiMinor = 1;

// The C++ standard library ABI the plugin was compiled against: plugins and
// the daemon exchange std::string and std::vector, so these must agree.
#if defined(_GLIBCXX_USE_CXX11_ABI) && _GLIBCXX_USE_CXX11_ABI
inline constexpr std::uint32_t kCxxAbiTag = 0x6c696231;  // libstdc++, C++11 ABI
#else
inline constexpr std::uint32_t kCxxAbiTag = 0x6c696230;  // libstdc++, old ABI / other
#endif

// Plain data, readable before any of the plugin's code runs. Never reorder;
// a minor version may only append fields (size tells how many are present).
struct PluginAbiDescriptor {
  std::uint32_t magic;
  std::uint16_t major;
  std::uint16_t minor;
  std::uint32_t size;  // sizeof(PluginAbiDescriptor) as the plugin saw it
  std::uint32_t cxx_abi;
  std::uint32_t layout;  // SL_LAYOUT_VERSION of the BPF maps it was built for
  char name[32];
  char version[32];
};

// Where a stage runs.
inline constexpr std::uint32_t role_bit(sl_role role) { return 1u << role; }
inline constexpr std::uint32_t kAllRoles = (1u << SL_ROLE_COUNT) - 1;
inline constexpr std::uint32_t hook_bit(sl_hook hook) { return 1u << hook; }
inline constexpr std::uint32_t kBothHooks = (1u << SL_HOOK_COUNT) - 1;

// Order numbers reserved for built-in stages (sdk/ABI.md): third parties
// should pick values between them.
namespace order {
inline constexpr int kFirst = 0;
inline constexpr int kConntrack = 100;
inline constexpr int kPolicy = 200;
inline constexpr int kNat = 300;
inline constexpr int kEncap = 400;
inline constexpr int kLog = 900;
}  // namespace order

// Scratch words (sluice/bpf/scratch.def), for StageSpec::scratch_reads/writes.
inline constexpr std::uint32_t scratch_bit(sl_scratch_slot slot) { return 1u << slot; }

// A stage and its chain-protocol declarations (sdk/ABI.md, "The chain
// protocol"). The core builds the chains from them and refuses chains that
// break the protocol, naming the stage.
struct StageSpec {
  std::string name;     // unique within the plugin
  std::string program;  // SEC("tc") program name in the plugin's BPF object
  std::uint32_t roles = kAllRoles;
  std::uint32_t hooks = kBothHooks;
  int order = 500;
  // Hooks on which the stage sees every packet of an established flow (lane
  // 1). On its other hooks it sees a flow's packets until a stage votes the
  // flow established, and is skipped after. The default is the safe one.
  std::uint32_t every_packet_hooks = kBothHooks;
  // What it may do to a packet: SL_MAY_* (layout.h).
  std::uint32_t may = SL_MAY_DROP;
  // The scratch words it reads and writes (scratch_bit()).
  std::uint32_t scratch_reads = 0;
  std::uint32_t scratch_writes = 0;
  // For a stage that sees every packet on egress: the fast path may still
  // carry a packet from another interface's ingress straight into a workload,
  // past this hook, because the stage saw it where it entered the node
  // (conntrack). Without it, such packets go through the workload's egress hook.
  bool fast_path_may_bypass_egress = false;
};

// What Plugin::stage_object reports (built by the host, filled by the
// plugin: the host is never older than the plugin, so it holds every field
// the plugin knows). The plugin keeps both alive until shutdown().
struct StageObject {
  // The ELF file of the BPF object, as loaded (a skeleton embeds it).
  const void* elf = nullptr;
  std::size_t elf_size = 0;
  // The plugin's loaded object: every map of an instance is this object's
  // map of the same name, but for its ".rodata.sl_next".
  const struct bpf_object* loaded = nullptr;
};

// A configuration error with its position, thrown by Plugin::configure.
struct ConfigError : std::runtime_error {
  ConfigError(std::string file_, std::uint32_t line_, std::uint32_t column_, std::string key_,
              const std::string& message)
      : std::runtime_error(message),
        file(std::move(file_)),
        line(line_),
        column(column_),
        key(std::move(key_)) {}
  std::string file;
  std::uint32_t line;
  std::uint32_t column;
  std::string key;  // dotted path, e.g. plugins.log.order
};

// The node configuration as the plugin sees it: it parses `text` itself (with
// <sluice/config.hpp>) and reads its own [plugins.<name>] table, so no
// third-party C++ type crosses the plugin boundary.
struct ConfigSource {
  std::string path;
  std::string text;
  std::string table;  // "plugins.<name>"
};

// ---- Crossing the boundary (sdk/ABI.md, "Structs that cross") ---------------
//
// A std::vector<T> built by the plugin cannot be read by a daemon of a newer
// minor: its element stride is the sizeof(T) the plugin was compiled with,
// and T may have gained fields since. So lists the plugin builds cross one
// element at a time, each with the size it was built at, and the host reads
// what is there and defaults the fields the plugin never heard of. The size
// travels beside the element, not in it, so StageSpec and CliCommand keep
// their aggregate initialisation and no field can be left unset.
template <class T>
class Sink {
 public:
  // Compiled into the plugin (inline, hidden): sizeof(T) is the plugin's.
  void add(const T& item) { add_as_built(item, sizeof(T)); }

 protected:
  ~Sink() = default;

 private:
  virtual void add_as_built(const T& item, std::size_t size_as_built) = 0;
};
using StageSink = Sink<StageSpec>;
using CliCommandSink = Sink<CliCommand>;

// Structs the host builds and hands to the plugin by reference
// (ConfigSource, ResourceChange, CliContext) need no size: a plugin is never
// newer than its daemon (a newer minor is refused), so the host's struct
// always holds every field the plugin knows. Elements of a vector the host
// builds are read with the plugin's stride, so they never grow within a
// major: ResourceFile is checked in <sluice/resources.hpp>.

enum class LogLevel { debug, info, warn, error };

// Services the daemon offers to plugins.
class Host {
 public:
  virtual ~Host() = default;
  virtual std::string node_name() const = 0;
  // <bpf.root>/<bpf.instance>: plugins pin their own maps below it.
  virtual std::string pin_dir() const = 0;
  // Where Sluice's shared maps are pinned. Open every BPF object with
  // bpf_object_open_opts.pin_root_path = map_pin_dir() so the shared maps
  // (and the plugin's own LIBBPF_PIN_BY_NAME maps) are reused across
  // restarts instead of created anew.
  virtual std::string map_pin_dir() const = 0;
  // Runs `load` (e.g. [&] { return my_bpf__load(skel); }) while capturing
  // libbpf's output; a non-zero result throws sluice::Error carrying
  // the verifier log, naming `what`.
  virtual void load_bpf(std::string_view what, const std::function<int()>& load) = 0;
  // Safe to call from any thread.
  virtual void log(LogLevel level, std::string_view message) = 0;

  // ---- The event loop (sdk/ABI.md, "Timers and file descriptors") --------
  // sluiced runs one event loop on its thread: the callbacks below run there,
  // one at a time, on the same thread as load(), prepare()/commit()/
  // reconcile() and write_metrics(), so a plugin needs no lock between them
  // (and no thread of its own). A callback must not block; an exception it
  // throws is logged naming the plugin and the subscription stays. Subscribe
  // and cancel only on that thread (in load(), a callback, a resource
  // change, shutdown()). Every call throws sluice::Error if the kernel
  // refuses the timer, the fd or the socket.
  //
  // Appended at the end of Host: Host is implemented by the daemon (and the
  // test harness) only, so a plugin built against this minor finds these
  // slots in every daemon that accepts it.

  // Runs `callback` every `interval` (> 0), the first time one interval from
  // now. Runs late rather than twice when the loop was busy.
  virtual Subscription every(std::chrono::milliseconds interval,
                             std::function<void()> callback) = 0;
  // Runs `on_readable` whenever `fd` is readable (level-triggered: read what
  // is there, or it runs again at once). The plugin keeps owning `fd` and
  // must cancel the subscription before closing it.
  virtual Subscription watch_fd(int fd, std::function<void()> on_readable) = 0;
  // Opens a netlink socket of `protocol` (NETLINK_ROUTE, ...) subscribed to
  // the multicast `groups` (RTMGRP_* bits) in the daemon's network namespace
  // and runs `on_change` after every batch of messages, which it drains (an
  // overrun, ENOBUFS, counts as a change: messages were lost). Meant for
  // "something changed: read the state again"; subscribe first, then read
  // the state, and no change goes unseen. The subscription owns the socket.
  virtual Subscription watch_netlink(int protocol, std::uint32_t groups,
                                     std::function<void()> on_change) = 0;
};

class Plugin {
 public:
  virtual ~Plugin() = default;
  virtual std::string description() const = 0;
  // Plugins that must be loaded before this one (their maps, their stages).
  virtual std::vector<std::string> requires_plugins() const { return {}; }
  // Validate [plugins.<name>]; throw ConfigError naming the key on bad input.
  virtual void configure(const ConfigSource& config) = 0;
  // What the host calls for the stages: hands stages() over one by one
  // (see Sink). Override stages(), not this.
  virtual void declare_stages(StageSink& sink) const {
    for (const auto& stage : stages()) sink.add(stage);
  }
  // Load BPF (through host.load_bpf_object) and fill maps from config.
  virtual void load(Host& host) = 0;
  // File descriptor of a loaded stage program, by StageSpec::name.
  virtual int stage_fd(std::string_view stage) const = 0;
  // The daemon is stopping. Leave the dataplane running unless `cleanup`.
  virtual void shutdown(bool cleanup) { (void)cleanup; }
  // What sluicectl calls for the commands: hands cli_commands() over one
  // by one (see Sink). Override cli_commands(), not this.
  virtual void declare_cli_commands(CliCommandSink& sink) const {
    for (const auto& command : cli_commands()) sink.add(command);
  }
  // Prometheus samples, written on every scrape of sluiced's metrics
  // endpoint (after load(), on the daemon's thread).
  virtual void write_metrics(MetricsWriter& out) const { (void)out; }
  // Resource kinds this plugin consumes (e.g. {"service", "endpoint"}).
  virtual std::vector<std::string> resource_kinds() const { return {}; }
  // Applies a change of the state files holding those kinds (after load()).
  // Validate first, throw ConfigError on bad input, apply only if all is
  // valid: see <sluice/resources.hpp>.
  virtual void reconcile(const ResourceChange& change) { (void)change; }

  // Resources all or nothing (sdk/ABI.md, "The plugin's life" 9):
  // Reads and validates `change` without applying any of it and returns it
  // ready to commit (PreparedChange, <sluice/resources.hpp>); throws
  // ConfigError on bad input. The host commits only when every consumer of
  // the change prepared it. nullptr (the default): the plugin does not
  // prepare, and the host calls reconcile() once every preparing consumer
  // accepted the change.
  virtual std::unique_ptr<PreparedChange> prepare(const ResourceChange& change) {
    (void)change;
    return nullptr;
  }

 protected:
  // Plugin-side only: the host never reads these vectors (their stride is
  // the plugin's), it calls declare_stages / declare_cli_commands.
  // The stages this plugin contributes, given its configuration.
  virtual std::vector<StageSpec> stages() const = 0;
  // sluicectl subcommands (called after configure(), without load(): they
  // work from pinned maps while sluiced may be down).
  virtual std::vector<CliCommand> cli_commands() const { return {}; }

  // Virtuals of a later 2.x minor go here, below everything above: vtable
  // slots follow declaration order (sdk/ABI.md, "What a minor version may
  // change").

 public:
  // ---- ABI 2.1 ----
  // The BPF object a stage's program comes from (after load()), so the core
  // can load one instance of the program per chain it is in, each with its
  // next slots as constants: direct tail calls (sdk/ABI.md, "Direct tail
  // calls"). Fill `out` (describe_skeleton() does it for a bpftool
  // skeleton) and return true; false keeps the one program of stage_fd()
  // in every chain, reached by an indirect tail call.
  virtual bool stage_object(std::string_view stage, StageObject& out) const {
    (void)stage;
    (void)out;
    return false;
  }
};

// For Plugin::stage_object: the ELF a bpftool skeleton embeds, and its
// loaded object.
template <class Skeleton>
bool describe_skeleton(const Skeleton* skeleton, StageObject& out) {
  if (!skeleton || !skeleton->skeleton || !skeleton->obj) return false;
  out.elf = skeleton->skeleton->data;
  out.elf_size = skeleton->skeleton->data_sz;
  out.loaded = skeleton->obj;
  return true;
}

}  // namespace sluice

#define SLUICE_PLUGIN(ClassName, NameLiteral, VersionLiteral)                                   \
  extern "C" BOOST_SYMBOL_EXPORT const ::sluice::PluginAbiDescriptor sluice_plugin_abi;         \
  const ::sluice::PluginAbiDescriptor sluice_plugin_abi = {                                     \
      ::sluice::kPluginAbiMagic, ::sluice::kPluginAbiMajor,  ::sluice::kPluginAbiMinor,        \
      sizeof(::sluice::PluginAbiDescriptor), ::sluice::kCxxAbiTag, SL_LAYOUT_VERSION,           \
      NameLiteral,               VersionLiteral};                                               \
  extern "C" BOOST_SYMBOL_EXPORT ::sluice::Plugin* sluice_plugin_create();                      \
  ::sluice::Plugin* sluice_plugin_create() { return new ClassName(); }
