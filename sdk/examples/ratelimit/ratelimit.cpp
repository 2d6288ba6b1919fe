// ratelimit — an example third-party Sluice plugin: per-source-IP token
// buckets, built out of tree against the installed SDK (see README.md).
//
// [plugins.ratelimit]
//   rate       = 100                   packets per second per source (1..10000000)
//   burst      = 100                   bucket size in packets (1..1000000; default: rate)
//   roles      = ["workload", "data"]  interface roles whose chains get the stage
//   hooks      = ["ingress"]           ingress (arriving) and/or egress
//   order      = 150                   position in the chains (before policy, 200)
//   exemptions = ["10.0.0.0/8", "fd00::/8"]   sources never limited (up to 256)
//   reason     = 0                     drop reason plugin-<n>, n = 0..7
#include <arpa/inet.h>
#include <time.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <cstring>
#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include <sluice/config.hpp>
#include <sluice/maps.hpp>
#include <sluice/output.hpp>
#include <sluice/clock.hpp>
#include <sluice/plugin.hpp>
#include <sluice/skeleton.hpp>

#include "ratelimit.skel.h"
#include "ratelimit_layout.h"

namespace {

using sluice::ConfigError;
using sluice::config::Table;

constexpr int kDefaultOrder = 150;  // after conntrack (100), before policy (200)

struct Exemption {
  std::string text;
  rl_exempt_key key{};
};

// The LPM key of a prefix ("10.0.0.0/8", "10.1.2.3", "fd00::/8"; parsed
// with <sluice/parse.hpp>, host bits refused).
rl_exempt_key exempt_key(const sluice::IpPrefix& prefix) {
  rl_exempt_key key{};
  key.family = prefix.addr.family;
  std::memcpy(key.addr, prefix.addr.words.data(), sizeof(key.addr));
  key.prefixlen = 32 + prefix.length;  // the family word, then the address bits
  return key;
}

std::string address_text(const rl_key& key) {
  return sluice::output::address_text(key.family != 4, key.addr);
}

// A list of names, each checked against `allowed`, errors at the item.
std::uint32_t parse_bits(const Table& table, const char* key,
                         const std::vector<std::pair<std::string, std::uint32_t>>& allowed,
                         std::uint32_t fallback) {
  const toml::node* node = table.node(key);
  if (!node) return fallback;
  if (!node->is_array() || node->as_array()->empty())
    table.fail(key, "expected a non-empty list of strings");
  std::uint32_t bits = 0;
  for (const toml::node& item : *node->as_array()) {
    if (!item.is_string()) table.fail_at(&item, key, "expected a list of strings");
    std::string value(item.as_string()->get());
    std::string names;
    bool found = false;
    for (const auto& [name, bit] : allowed) {
      names += (names.empty() ? "" : ", ") + name;
      if (name == value) bits |= bit, found = true;
    }
    if (!found) table.fail_at(&item, key, "'" + value + "' is not one of: " + names);
  }
  return bits;
}


class RateLimitPlugin final : public sluice::Plugin {
 public:
  std::string description() const override {
    return "per-source-IP token-bucket rate limiting (example third-party plugin)";
  }

  void configure(const sluice::ConfigSource& source) override {
    sluice::config::PluginTable plugin_table(source);
    const Table& table = plugin_table.table();
    table.expect_only({"rate", "burst", "roles", "hooks", "order", "exemptions", "reason"});
    rate_ = static_cast<std::uint64_t>(table.get_int("rate", 100, 1, 10'000'000));
    burst_ = static_cast<std::uint64_t>(table.get_int(
        "burst", static_cast<std::int64_t>(std::min<std::uint64_t>(rate_, 1'000'000)), 1,
        1'000'000));
    order_ = static_cast<int>(table.get_int("order", kDefaultOrder, 0, 65535));
    reason_ = SL_R_PLUGIN_0 + static_cast<std::uint32_t>(table.get_int("reason", 0, 0, 7));
    roles_ = parse_bits(table, "roles",
                        {{"workload", sluice::role_bit(SL_ROLE_WORKLOAD)},
                         {"data", sluice::role_bit(SL_ROLE_DATA)},
                         {"tunnel", sluice::role_bit(SL_ROLE_TUNNEL)},
                         {"l3", sluice::role_bit(SL_ROLE_L3)}},
                        sluice::role_bit(SL_ROLE_WORKLOAD) | sluice::role_bit(SL_ROLE_DATA));
    hooks_ = parse_bits(table, "hooks",
                        {{"ingress", sluice::hook_bit(SL_HOOK_INGRESS)},
                         {"egress", sluice::hook_bit(SL_HOOK_EGRESS)}},
                        sluice::hook_bit(SL_HOOK_INGRESS));

    exemptions_.clear();
    if (const toml::node* node = table.node("exemptions")) {
      if (!node->is_array()) table.fail("exemptions", "expected a list of prefixes");
      for (const toml::node& item : *node->as_array()) {
        Exemption e;
        e.text = table.string_at(item, "exemptions",
                                 "expected a prefix string such as \"10.0.0.0/8\"");
        e.key = exempt_key(table.prefix_at(item, "exemptions"));
        if (exemptions_.size() == RL_MAX_EXEMPTIONS)
          table.fail_at(&item, "exemptions",
                        "too many exemptions: at most " + std::to_string(RL_MAX_EXEMPTIONS));
        exemptions_.push_back(e);
      }
    }
  }

  std::vector<sluice::StageSpec> stages() const override {
    return {{"ratelimit", "ratelimit", roles_, hooks_, order_}};
  }

  void load(sluice::Host& host) override {
    map_pin_dir_ = host.map_pin_dir();
    LIBBPF_OPTS(bpf_object_open_opts, opts, .pin_root_path = map_pin_dir_.c_str());
    skel_.reset(ratelimit__open_opts(&opts));
    if (!skel_)
      throw sluice::Error("ratelimit: cannot open the BPF object: " + sluice::errno_text(errno),
                          "reinstall ratelimit.so: the object is embedded in it");
    skel_->rodata->rl_rate = rate_;
    skel_->rodata->rl_burst = burst_;
    skel_->rodata->rl_fill_ns = burst_ * RL_TOKEN / rate_;
    skel_->rodata->rl_reason = reason_;
    skel_->rodata->rl_has_exemptions = exemptions_.empty() ? 0 : 1;
    host.load_bpf("ratelimit", [&] { return ratelimit__load(skel_.get()); });
    std::uint8_t one = 1;
    for (const auto& e : exemptions_)
      if (bpf_map__update_elem(skel_->maps.ratelimit_exempt, &e.key, sizeof(e.key), &one,
                               sizeof(one), BPF_ANY) != 0)
        throw sluice::Error("ratelimit: cannot add exemption " + e.text + ": " +
                            sluice::errno_text(errno));
    host.log(sluice::LogLevel::info,
             "ratelimit: " + std::to_string(rate_) + " packets/s per source, burst " +
                 std::to_string(burst_) + ", " + std::to_string(exemptions_.size()) +
                 " exemption(s)");
  }

  int stage_fd(std::string_view stage) const override {
    if (stage != "ratelimit" || !skel_) return -1;
    return bpf_program__fd(skel_->progs.ratelimit);
  }

  // Lets the core load the stage once per chain position, with direct tail
  // calls to the next stage (sdk/ABI.md, "Direct tail calls").
  bool stage_object(std::string_view stage, sluice::StageObject& out) const override {
    return stage == "ratelimit" && sluice::describe_skeleton(skel_.get(), out);
  }

  void shutdown(bool cleanup) override {
    skel_.reset();
    if (cleanup && !map_pin_dir_.empty()) {
      ::unlink((map_pin_dir_ + "/ratelimit_buckets").c_str());
      ::unlink((map_pin_dir_ + "/ratelimit_counters").c_str());
    }
  }

  std::vector<sluice::CliCommand> cli_commands() const override {
    sluice::CliCommand dump;
    dump.path = {"ratelimit", "dump"};
    // Declared, not parsed by hand: sluicectl checks the value, and
    // `sluicectl ratelimit dump --help` lists the option.
    dump.options = {{"top", sluice::CliValueKind::unsigned_integer,
                     "show at most N sources (0 = all)", "20"}};
    dump.summary = "show rate-limited sources: tokens left, packets passed and dropped";
    dump.description =
        "Lists the sources the ratelimit stage is tracking, most dropped first, with\n"
        "the tokens they have now (refilled to the current time), and the plugin's\n"
        "totals. Reads the pinned maps, so it works while sluiced is down.";
    dump.run = [this](const sluice::CliContext& ctx, const sluice::CliValues& values) {
      return run_dump(ctx, values);
    };
    return {dump};
  }

  void write_metrics(sluice::MetricsWriter& out) const override {
    if (map_pin_dir_.empty()) return;
    try {
      auto totals = read_totals(map_pin_dir_);
      const char* help = "Packets seen by the ratelimit stage, by result.";
      out.counter("sluice_ratelimit_packets_total", help, {{"result", "passed"}},
                  static_cast<double>(totals[RL_CTR_PASSED]));
      out.counter("sluice_ratelimit_packets_total", help, {{"result", "dropped"}},
                  static_cast<double>(totals[RL_CTR_DROPPED]));
      out.counter("sluice_ratelimit_packets_total", help, {{"result", "exempt"}},
                  static_cast<double>(totals[RL_CTR_EXEMPT]));
      auto buckets = sluice::PinnedMap<rl_key, rl_bucket>::open(
          map_pin_dir_ + "/ratelimit_buckets", true);
      std::size_t sources = 0;
      buckets.for_each([&](const rl_key&, const rl_bucket&) { ++sources; });
      out.gauge("sluice_ratelimit_sources", "Sources with a token bucket.", {},
                static_cast<double>(sources));
      out.gauge("sluice_ratelimit_rate_packets_per_second",
                "Configured packets per second per source.", {}, static_cast<double>(rate_));
    } catch (const sluice::MapError&) {
      // Not loaded (yet): no samples rather than a broken scrape.
    }
  }

 private:
  static std::array<std::uint64_t, RL_CTR_COUNT> read_totals(const std::string& dir) {
    auto counters =
        sluice::PerCpuMap<__u32, __u64>::open_in_pins(dir, "ratelimit_counters", true);
    std::array<std::uint64_t, RL_CTR_COUNT> totals{};
    for (__u32 i = 0; i < RL_CTR_COUNT; ++i)
      totals[i] = sluice::sum(counters.lookup(i).value_or(std::vector<__u64>{}));
    return totals;
  }

  int run_dump(const sluice::CliContext& ctx, const sluice::CliValues& values) const {
    const std::uint64_t top = values.unsigned_integer("top");  // checked by sluicectl

    struct Row {
      rl_key key;
      rl_bucket bucket;
    };
    std::vector<Row> rows;
    std::array<std::uint64_t, RL_CTR_COUNT> totals{};
    try {
      totals = read_totals(ctx.map_pin_dir);
      auto buckets = sluice::PinnedMap<rl_key, rl_bucket>::open_in_pins(
          ctx.map_pin_dir, "ratelimit_buckets", true);
      buckets.for_each([&](const rl_key& k, const rl_bucket& b) { rows.push_back({k, b}); });
    } catch (const sluice::MapError& e) {
      *ctx.err << "ratelimit: " << e.what() << "\n";
      return sluice::kCliFailure;
    }
    std::sort(rows.begin(), rows.end(), [](const Row& a, const Row& b) {
      if (a.bucket.dropped != b.bucket.dropped) return a.bucket.dropped > b.bucket.dropped;
      if (a.bucket.passed != b.bucket.passed) return a.bucket.passed > b.bucket.passed;
      return std::memcmp(&a.key, &b.key, sizeof(rl_key)) < 0;
    });
    std::size_t total_sources = rows.size();
    if (top && rows.size() > top) rows.resize(top);

    const std::uint64_t now = sluice::monotonic_ns();
    auto tokens_now = [&](const rl_bucket& b) {
      std::uint64_t full = burst_ * RL_TOKEN;
      std::uint64_t elapsed = now > b.last_ns ? now - b.last_ns : 0;
      std::uint64_t credit =
          elapsed >= burst_ * RL_TOKEN / rate_ ? full : std::min<std::uint64_t>(full, b.credit + elapsed * rate_);
      return credit / RL_TOKEN;
    };
    auto idle_s = [&](const rl_bucket& b) {
      return now > b.last_ns ? static_cast<double>(now - b.last_ns) / 1e9 : 0.0;
    };

    if (ctx.json()) {
      sluice::output::Json doc = sluice::output::Json::object();
      doc["rate"] = rate_;
      doc["burst"] = burst_;
      doc["reason"] = std::string("plugin-") + std::to_string(reason_ - SL_R_PLUGIN_0);
      doc["passed"] = totals[RL_CTR_PASSED];
      doc["dropped"] = totals[RL_CTR_DROPPED];
      doc["exempt"] = totals[RL_CTR_EXEMPT];
      doc["sources_tracked"] = total_sources;
      sluice::output::Json list = sluice::output::Json::array();
      for (const Row& r : rows) {
        sluice::output::Json item = sluice::output::Json::object();
        item["source"] = address_text(r.key);
        item["tokens"] = tokens_now(r.bucket);
        item["passed"] = r.bucket.passed;
        item["dropped"] = r.bucket.dropped;
        item["idle_ms"] = static_cast<std::uint64_t>(idle_s(r.bucket) * 1000);
        list.push_back(std::move(item));
      }
      doc["sources"] = std::move(list);
      sluice::output::print(*ctx.out, doc);
      return sluice::kCliOk;
    }

    *ctx.out << "rate " << rate_ << "/s per source, burst " << burst_ << "; passed "
             << totals[RL_CTR_PASSED] << ", dropped " << totals[RL_CTR_DROPPED]
             << " (reason plugin-" << reason_ - SL_R_PLUGIN_0 << "), exempt "
             << totals[RL_CTR_EXEMPT] << "; " << total_sources << " source(s) tracked\n";
    using Align = sluice::output::Table::Align;
    sluice::output::Table out({{"SOURCE", Align::left},
                               {"TOKENS", Align::right},
                               {"PASSED", Align::right},
                               {"DROPPED", Align::right},
                               {"IDLE", Align::right}});
    for (const Row& r : rows) {
      char idle[32];
      std::snprintf(idle, sizeof(idle), "%.1fs", idle_s(r.bucket));
      out.add_row({address_text(r.key), std::to_string(tokens_now(r.bucket)),
                   std::to_string(r.bucket.passed), std::to_string(r.bucket.dropped), idle});
    }
    if (!out.empty()) out.print(*ctx.out);
    return sluice::kCliOk;
  }

  std::uint64_t rate_ = 100;
  std::uint64_t burst_ = 100;
  int order_ = kDefaultOrder;
  std::uint32_t reason_ = SL_R_PLUGIN_0;
  std::uint32_t roles_ = 0;
  std::uint32_t hooks_ = 0;
  std::vector<Exemption> exemptions_;
  std::string map_pin_dir_;
  sluice::Skeleton<ratelimit, ratelimit__destroy> skel_;
};

}  // namespace

SLUICE_PLUGIN(RateLimitPlugin, "ratelimit", "0.1.0")
