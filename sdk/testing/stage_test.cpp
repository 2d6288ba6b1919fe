// The stage test harness (sluice/testing/stage_test.hpp) over the core's
// Dataplane and EntryProgram. Built into libsluice_testing.so, which links
// the core statically and exports only sluice::testing.
#include "sluice/testing/stage_test.hpp"

#include <dlfcn.h>
#include <sched.h>
#include <signal.h>
#include <unistd.h>

#include <bpf/bpf.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <map>
#include <mutex>
#include <stdexcept>

#include <sluice/core/bpf_loader.hpp>
#include <sluice/core/config.hpp>
#include <sluice/core/dataplane.hpp>
#include <sluice/core/error.hpp>
#include <sluice/core/event_loop.hpp>
#include <sluice/core/pipeline.hpp>
#include <sluice/core/plugin_handle.hpp>

namespace sluice::testing {

const char* verdict_name(int verdict) {
  switch (verdict) {
    case TC_ACT_OK: return "TC_ACT_OK";
    case TC_ACT_SHOT: return "TC_ACT_SHOT";
    case TC_ACT_REDIRECT: return "TC_ACT_REDIRECT";
    default: return "?";
  }
}

const char* reason_name(std::uint32_t reason) {
  switch (reason) {
#define SL_REASON(id, num, name, kind, description) \
  case num: return name;
#include <sluice/bpf/reasons.def>
#undef SL_REASON
    default: return "unused";
  }
}

std::uint16_t l3_protocol_of(const Bytes& pkt) {
  if (pkt.size() < 14) return 0;
  return static_cast<std::uint16_t>((pkt[12] << 8) | pkt[13]);
}

namespace {

constexpr const char* kInstancePrefix = "sltest-bpf-";

// Instances left by test processes that died without cleaning up.
void remove_stale_instances(const std::string& bpf_root) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const std::size_t prefix_len = std::strlen(kInstancePrefix);
  for (const auto& entry : fs::directory_iterator(bpf_root, ec)) {
    std::string name = entry.path().filename().string();
    if (name.rfind(kInstancePrefix, 0) != 0) continue;
    int pid = std::atoi(name.c_str() + prefix_len);
    if (pid <= 0 || pid == ::getpid() || ::kill(pid, 0) == 0 || errno != ESRCH) continue;
    fs::remove_all(entry.path(), ec);
  }
}

int pin_to_one_cpu() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) != 0) throw Error("sched_getaffinity failed");
  int cpu = sched_getcpu();
  if (cpu < 0 || !CPU_ISSET(cpu, &set)) {
    cpu = 0;
    while (cpu < CPU_SETSIZE && !CPU_ISSET(cpu, &set)) ++cpu;
  }
  cpu_set_t one;
  CPU_ZERO(&one);
  CPU_SET(cpu, &one);
  if (sched_setaffinity(0, sizeof(one), &one) != 0) throw Error("sched_setaffinity failed");
  return cpu;
}

}  // namespace

struct Testbed::Impl {
  std::unique_ptr<NodeConfig> config;
  std::unique_ptr<Dataplane> dataplane;
  std::unique_ptr<EntryProgram> entry;
  std::array<std::vector<ChainStage>, SL_CHAINS> chains{};
  bool dirty = true;
  std::uint32_t slot = 0;
  sl_hook last_hook = SL_HOOK_INGRESS;
  int cpu = 0;
};

Testbed::Testbed(const std::string& bpf_root) : impl_(std::make_unique<Impl>()) {
  remove_stale_instances(bpf_root);
  static std::atomic<unsigned> counter{0};
  std::string instance =
      kInstancePrefix + std::to_string(::getpid()) + "-" + std::to_string(counter++);
  impl_->config = std::make_unique<NodeConfig>(parse_config(
      "[node]\nname = \"testbed\"\n[bpf]\nroot = \"" + bpf_root + "\"\ninstance = \"" +
          instance + "\"\n",
      "<testbed>"));
  impl_->cpu = pin_to_one_cpu();
  try {
    impl_->dataplane = std::make_unique<Dataplane>(*impl_->config);
    install_chains();
  } catch (...) {
    impl_->dataplane.reset();
    Dataplane::cleanup(*impl_->config);
    throw;
  }
}

Testbed::~Testbed() {
  impl_->entry.reset();
  impl_->dataplane.reset();
  try {
    Dataplane::cleanup(*impl_->config);
  } catch (...) {
  }
}

const std::string& Testbed::bpf_root() const { return impl_->config->bpf_root; }
const std::string& Testbed::instance() const { return impl_->config->instance; }
std::string Testbed::pin_dir() const { return impl_->config->pin_dir(); }
std::string Testbed::map_pin_dir() const { return impl_->config->map_pin_dir(); }
int Testbed::cpu() const { return impl_->cpu; }
std::string Testbed::bpf_config() const {
  return "[bpf]\nroot = \"" + bpf_root() + "\"\ninstance = \"" + instance() + "\"\n";
}

std::unique_ptr<Testbed::OpenOpts> Testbed::open_opts() const {
  auto o = std::make_unique<OpenOpts>();
  o->pin_root = map_pin_dir();
  o->opts.sz = sizeof(o->opts);
  o->opts.pin_root_path = o->pin_root.c_str();
  return o;
}

void Testbed::set_chain(sl_role role, sl_hook hook, std::vector<int> stage_fds) {
  std::vector<ChainStage> stages;
  for (int fd : stage_fds) stages.push_back(ChainStage{fd, StageSpec{}});
  set_declared_chain(role, hook, std::move(stages));
}

void Testbed::set_declared_chain(sl_role role, sl_hook hook, std::vector<ChainStage> stages) {
  if (stages.size() >= SL_MAX_STAGES)
    throw std::invalid_argument("Testbed::set_chain: at most " +
                                std::to_string(SL_MAX_STAGES - 1) + " stages fit a chain");
  impl_->chains[chain_index(role, hook)] = std::move(stages);
  impl_->dirty = true;
}

void Testbed::install_chains() {
  std::array<Chain, SL_CHAINS> chains{};
  std::map<std::string, int> fds;
  for (unsigned r = 0; r < SL_ROLE_COUNT; ++r)
    for (unsigned h = 0; h < SL_HOOK_COUNT; ++h) {
      auto role = static_cast<sl_role>(r);
      auto hook = static_cast<sl_hook>(h);
      Chain& chain = chains[chain_index(role, hook)];
      chain.role = role;
      chain.hook = hook;
      const auto& list = impl_->chains[chain_index(role, hook)];
      for (std::size_t i = 0; i < list.size(); ++i) {
        std::string name =
            std::string(role_name(role)) + "-" + hook_name(hook) + "-" + std::to_string(i);
        StageSpec spec = list[i].spec;
        spec.name = name;
        spec.program = name;  // not a hole placeholder: fd -1 makes the hole
        spec.order = static_cast<int>(i);
        chain.stages.push_back({"testbed", spec});
        fds[name] = list[i].fd;
      }
    }
  lay_out_lanes(chains);
  impl_->dataplane->stage_chains(chains,
                                 [&](const DeclaredStage& s) { return fds.at(s.spec.name); });
  impl_->dirty = false;
}

void Testbed::delete_chain_slot(sl_role role, sl_hook hook, unsigned pos) {
  __u32 slot = sl_jump_base(impl_->dataplane->bank(), role, hook) + pos;
  bpf_map_delete_elem(impl_->dataplane->map_fd(SL_MAP_JUMP), &slot);
}

std::uint32_t Testbed::bank() const { return impl_->dataplane->bank(); }

void Testbed::load_entry(sl_role role, EntryRules rules, bool has_ethernet, std::uint32_t slot,
                         const std::string& ifname) {
  if (impl_->dirty) install_chains();
  impl_->entry.reset();
  RoleRules core_rules;
  core_rules.malformed = rules.malformed;
  core_rules.missed_tail_call = rules.missed_tail_call;
  impl_->entry = std::make_unique<EntryProgram>(
      *impl_->config,
      EntrySettings{ifname, role, slot, impl_->dataplane->bank(), has_ethernet, core_rules,
                    impl_->dataplane->chain_layouts(role)});
  impl_->slot = slot;
}

int Testbed::entry_fd(sl_hook hook) const {
  if (!impl_->entry) throw std::logic_error("Testbed: load_entry() first");
  return impl_->entry->fd(hook);
}

std::uint32_t Testbed::slot() const { return impl_->slot; }

RunResult Testbed::run_chain(sl_role role, sl_hook hook, std::vector<int> stage_fds,
                             const Bytes& pkt, EntryRules rules) {
  set_chain(role, hook, std::move(stage_fds));
  load_entry(role, rules);
  return run(pkt, hook);
}

RunResult Testbed::run(const Bytes& pkt, sl_hook hook, std::uint32_t repeat) {
  CounterSnapshot before = counters(impl_->slot, hook);
  RunResult r;
  int err = try_run(entry_fd(hook), pkt, r, repeat);
  if (err) throw Error("BPF_PROG_TEST_RUN: " + errno_text(err));
  CounterSnapshot after = counters(impl_->slot, hook);
  unsigned moved = 0;
  for (std::uint32_t reason = 0; reason < SL_REASON_COUNT; ++reason)
    if (after[reason].packets != before[reason].packets) {
      ++moved;
      r.reason = reason;
    }
  if (moved != 1) r.reason = kNoReason;
  return r;
}

int Testbed::try_run(int prog_fd, const Bytes& pkt, RunResult& r, std::uint32_t repeat) {
  r.out.assign(pkt.size() + 256, 0);
  LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = pkt.data(), .data_out = r.out.data(),
              .data_size_in = static_cast<__u32>(pkt.size()),
              .data_size_out = static_cast<__u32>(r.out.size()),
              .repeat = static_cast<int>(repeat));
  if (bpf_prog_test_run_opts(prog_fd, &opts) != 0) return errno;
  r.out.resize(opts.data_size_out);
  r.verdict = static_cast<int>(opts.retval);
  r.duration_ns = opts.duration;
  return 0;
}

sl_counter Testbed::counter(std::uint32_t slot, sl_hook hook, std::uint32_t reason) const {
  std::vector<sl_counter> per_cpu(ncpus());
  __u32 index = sl_counter_base(slot, hook) + reason;
  sl_counter sum{};
  if (bpf_map_lookup_elem(impl_->dataplane->map_fd(SL_MAP_COUNTERS), &index, per_cpu.data()) != 0)
    throw Error("cannot read sl_counters: " + errno_text(errno));
  for (const auto& c : per_cpu) {
    sum.packets += c.packets;
    sum.bytes += c.bytes;
  }
  return sum;
}

sl_counter Testbed::counter(std::uint32_t reason, sl_hook hook) const {
  return counter(impl_->slot, hook, reason);
}

CounterSnapshot Testbed::counters(std::uint32_t slot, sl_hook hook) const {
  CounterSnapshot all{};
  for (std::uint32_t reason = 0; reason < SL_REASON_COUNT; ++reason)
    all[reason] = counter(slot, hook, reason);
  return all;
}

sl_pkt_ctx Testbed::context() const {
  constexpr std::size_t stride = sizeof(sl_pkt_ctx_slot);
  std::vector<std::uint8_t> raw(stride * ncpus());
  __u32 zero = 0;
  if (bpf_map_lookup_elem(impl_->dataplane->map_fd(SL_MAP_STATE), &zero, raw.data()) != 0)
    throw Error("cannot read sl_state: " + errno_text(errno));
  sl_pkt_ctx ctx{};
  std::memcpy(&ctx, raw.data() + stride * static_cast<std::size_t>(impl_->cpu), sizeof(ctx));
  return ctx;
}

int Testbed::map_fd(const char* name) const { return impl_->dataplane->map_fd(name); }

void Testbed::invalidate_routes() { impl_->dataplane->invalidate_routes(); }

std::size_t Testbed::ncpus() {
  int n = libbpf_num_possible_cpus();
  return n > 0 ? static_cast<std::size_t>(n) : 1;
}

// ---- plugins ------------------------------------------------------------------

namespace {

class TestHost final : public Host {
 public:
  TestHost(std::string pin_dir, std::string map_pin_dir, std::string* log)
      : pin_dir_(std::move(pin_dir)), map_pin_dir_(std::move(map_pin_dir)), log_(log) {}
  std::string node_name() const override { return "testbed"; }
  std::string pin_dir() const override { return pin_dir_; }
  std::string map_pin_dir() const override { return map_pin_dir_; }
  void load_bpf(std::string_view what, const std::function<int()>& load) override {
    load_with_verifier_log(what, load);
  }
  // Plugins may log from their own threads, as sluiced allows.
  void log(LogLevel level, std::string_view message) override {
    static const char* const names[] = {"debug", "info", "warn", "error"};
    static std::mutex appending;
    std::lock_guard lock(appending);
    *log_ += std::string(names[static_cast<int>(level)]) + ": " + std::string(message) + "\n";
  }
  // The same loop as sluiced's, driven by the test (PluginUnderTest::run_*).
  Subscription every(std::chrono::milliseconds interval, std::function<void()> callback) override {
    return events.every(interval, std::move(callback),
                        "the plugin's timer (every " + std::to_string(interval.count()) + " ms)");
  }
  Subscription watch_fd(int fd, std::function<void()> on_readable) override {
    return events.watch_fd(fd, std::move(on_readable), "the plugin's fd watcher");
  }
  Subscription watch_netlink(int protocol, std::uint32_t groups,
                             std::function<void()> on_change) override {
    return events.watch_netlink(protocol, groups, std::move(on_change),
                                "the plugin's netlink watcher");
  }

  EventLoop events{[this](const std::string& message) { log(LogLevel::error, message); }};

 private:
  std::string pin_dir_, map_pin_dir_;
  std::string* log_;
};

}  // namespace

struct PluginUnderTest::State {
  void* handle = nullptr;
  PluginHandle plugin;
  // The same object: tests call its 2.0 virtuals directly (plugin()).
  Plugin* raw_plugin = nullptr;
  std::vector<StageSpec> stages;
  std::string log;
  std::unique_ptr<TestHost> host;
  ~State() {
    if (plugin) {
      try {
        plugin.shutdown(true);
      } catch (...) {
      }
      plugin.reset();
    }
    // What the plugin did not cancel goes before its library (the callbacks' code).
    host.reset();
    if (handle) dlclose(handle);
  }
};

PluginUnderTest::PluginUnderTest(std::unique_ptr<State> state) : state_(std::move(state)) {}
PluginUnderTest::PluginUnderTest(PluginUnderTest&&) noexcept = default;
PluginUnderTest& PluginUnderTest::operator=(PluginUnderTest&&) noexcept = default;
PluginUnderTest::~PluginUnderTest() = default;
Plugin& PluginUnderTest::plugin() { return *state_->raw_plugin; }
const std::vector<StageSpec>& PluginUnderTest::stages() const { return state_->stages; }
std::vector<CliCommand> PluginUnderTest::cli_commands() const {
  return state_->plugin.cli_commands();
}
const std::string& PluginUnderTest::log() const { return state_->log; }

std::size_t PluginUnderTest::run_timers() { return state_->host->events.fire_timers(); }

std::size_t PluginUnderTest::run_events(std::chrono::milliseconds timeout) {
  return state_->host->events.run_once(timeout);
}

bool PluginUnderTest::run_events_until(const std::function<bool()>& done,
                                       std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!done()) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return done();
    state_->host->events.run_once(std::min(left, std::chrono::milliseconds(100)));
  }
  return true;
}

std::size_t PluginUnderTest::subscriptions() const { return state_->host->events.size(); }

ChainStage PluginUnderTest::chain_stage(std::string_view stage) const {
  for (const auto& spec : state_->stages)
    if (spec.name == stage) return ChainStage{state_->plugin.stage_fd(stage), spec};
  throw std::invalid_argument("plugin has no stage '" + std::string(stage) + "'");
}

int PluginUnderTest::stage_fd(std::string_view stage) const {
  for (const auto& spec : state_->stages)
    if (spec.name == stage) return state_->plugin.stage_fd(stage);
  std::string names;
  for (const auto& spec : state_->stages) names += (names.empty() ? "" : ", ") + spec.name;
  throw std::invalid_argument("plugin declares no stage '" + std::string(stage) +
                              "' (declared: " + (names.empty() ? "none" : names) + ")");
}

PluginUnderTest Testbed::load_plugin(const std::string& so_path, const std::string& config_text) {
  std::string name = std::filesystem::path(so_path).stem().string();
  auto state = std::make_unique<PluginUnderTest::State>();
  state->handle = dlopen(so_path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!state->handle) throw Error("cannot load plugin " + so_path + ": " + dlerror());
  auto* abi = static_cast<const PluginAbiDescriptor*>(dlsym(state->handle, "sluice_plugin_abi"));
  auto create = reinterpret_cast<Plugin* (*)()>(dlsym(state->handle, "sluice_plugin_create"));
  if (!abi || !create)
    throw Error(so_path + " is not a Sluice plugin (no sluice_plugin_abi/sluice_plugin_create)");
  if (abi->magic != kPluginAbiMagic || abi->major != kPluginAbiMajor ||
      abi->minor > kPluginAbiMinor ||
      abi->layout != SL_LAYOUT_VERSION || abi->cxx_abi != kCxxAbiTag)
    throw Error(so_path + " was built for another plugin ABI (" + std::to_string(abi->major) +
                "." + std::to_string(abi->minor) + ", layout " + std::to_string(abi->layout) +
                "); this harness is " + std::to_string(kPluginAbiMajor) + "." +
                std::to_string(kPluginAbiMinor) + ", layout " +
                std::to_string(SL_LAYOUT_VERSION));
  if (name != abi->name)
    throw Error(so_path + ": file name must be <name>.so for plugin '" + abi->name + "'");
  // A failure unloads the plugin (state's handle) while the exception
  // unwinds: an exception object whose vtable lives in the plugin would then
  // crash the test that catches it. Rethrow copies made here instead.
  try {
    state->raw_plugin = create();
    state->plugin = PluginHandle(std::unique_ptr<Plugin>(state->raw_plugin), name, abi->minor);
    state->plugin.configure(ConfigSource{"<test>", config_text, "plugins." + name});
    state->stages = state->plugin.stages();
    state->host = std::make_unique<TestHost>(pin_dir(), map_pin_dir(), &state->log);
    state->plugin.load(*state->host);
  } catch (const ConfigError& e) {
    throw ConfigError(e.file, e.line, e.column, e.key, e.what());
  } catch (const std::exception& e) {
    throw std::runtime_error(e.what());
  }
  return PluginUnderTest(std::move(state));
}

std::optional<ConfigError> Testbed::config_error(const std::string& so_path,
                                                const std::string& config_text) {
  try {
    load_plugin(so_path, config_text);
  } catch (const ConfigError& e) {
    return e;
  }
  return std::nullopt;
}

}  // namespace sluice::testing
