// The conntrack plugin on the real kernel: packets run through the entry
// program and the conntrack stage (BPF_PROG_TEST_RUN), then the pinned
// sl_conntrack table, the result word in the packet context, the CLI
// commands and the cleaner are checked.
#include <arpa/inet.h>
#include <net/if.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <gtest/gtest.h>

#include <chrono>
#include <cstring>
#include <sstream>
#include <stdexcept>
#include <thread>
#include <string>
#include <vector>

#include <sluice/bpf/conntrack.h>
#include <sluice/testing/cli.hpp>
#include <sluice/testing/gtest.hpp>
#include <sluice/testing/netns.hpp>
#include <sluice/testing/stage_test.hpp>

#include "conntrack_layout.h"

namespace {

using namespace sluice::testing;

constexpr const char* kA = "10.0.0.9";
constexpr const char* kB = "10.96.0.50";

// The packets below are made up and "arrive" on lo, from addresses the node
// does not route back there: the workload source check is off unless a test
// is about it (WorkloadSourceCheck).
std::string config(const std::string& body) {
  bool about_it = body.find("workload_source_check") != std::string::npos;
  return "[plugins.conntrack]\n" + std::string(about_it ? "" : "workload_source_check = false\n") +
         body;
}

struct Bed {
  Testbed bed;
  decltype(bed.load_plugin("", "")) plugin;
  int table = -1;

  explicit Bed(const std::string& body = "")
      : plugin(bed.load_plugin(CONNTRACK_PLUGIN, config(body))) {
    bed.set_chain(SL_ROLE_WORKLOAD, SL_HOOK_INGRESS, {plugin.stage_fd("conntrack")});
    bed.load_entry(SL_ROLE_WORKLOAD);
    table = bpf_obj_get((bed.map_pin_dir() + "/" SL_MAP_CONNTRACK).c_str());
    if (table < 0) throw std::runtime_error("sl_conntrack is not pinned");
  }
  ~Bed() {
    if (table >= 0) close(table);
  }

  // Runs a packet; returns the conntrack result word.
  std::uint64_t run(const Packet& pkt, int want_verdict = TC_ACT_OK) {
    RunResult r = bed.run(pkt);
    EXPECT_EQ(r.verdict, want_verdict) << verdict_name(r.verdict) << " / "
                                       << reason_name(r.reason);
    return bed.context().scratch[SL_CT_SCRATCH];
  }

  std::vector<std::pair<sl_ct_key, sl_ct_value>> entries() const {
    std::vector<std::pair<sl_ct_key, sl_ct_value>> out;
    sl_ct_key key{}, next{};
    const sl_ct_key* prev = nullptr;
    while (bpf_map_get_next_key(table, prev, &next) == 0) {
      sl_ct_value value{};
      if (bpf_map_lookup_elem(table, &next, &value) == 0) out.emplace_back(next, value);
      key = next;
      prev = &key;
    }
    return out;
  }

  int cli(const std::vector<std::string>& path, std::vector<std::string> args, std::string& out,
          bool json = false) {
    int rc = sluice::testing::run_plugin_command(
        plugin, bed, path, std::move(args), out,
        json ? sluice::OutputFormat::json : sluice::OutputFormat::table);
    if (rc < 0) ADD_FAILURE() << out;
    return rc;
  }
};

Packet tcp(const char* src, const char* dst, std::uint16_t sport, std::uint16_t dport,
           std::uint8_t flags, std::size_t payload = 0) {
  return PacketBuilder().ipv4(src, dst).tcp(sport, dport, flags).payload(payload).build();
}
Packet udp(const char* src, const char* dst, std::uint16_t sport, std::uint16_t dport) {
  return PacketBuilder().ipv4(src, dst).udp(sport, dport).payload(10).build();
}

::testing::AssertionResult is(std::uint64_t r, std::uint32_t verdict, std::uint32_t state) {
  if (sl_ct_result_verdict(r) == verdict && sl_ct_result_state(r) == state)
    return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "verdict " << sl_ct_result_verdict(r) << " state "
                                       << sl_ct_result_state(r) << ", expected verdict "
                                       << verdict << " state " << state;
}

TEST(Conntrack, TcpHandshakeAndFinTeardownOnOneEntry) {
  Bed t;
  auto r = t.run(tcp(kA, kB, 42642, 8385, kTcpSyn));
  EXPECT_TRUE(is(r, SL_CT_NEW, SL_CT_ST_SYN_SENT));
  EXPECT_FALSE(sl_ct_result_has(r, SL_CT_RES_LEG_BA));  // 10.0.0.9 < 10.96.0.50: A
  r = t.run(tcp(kB, kA, 8385, 42642, kTcpSyn | kTcpAck));
  EXPECT_TRUE(is(r, SL_CT_REPLY, SL_CT_ST_SYN_RECV));
  EXPECT_TRUE(sl_ct_result_has(r, SL_CT_RES_LEG_BA));
  r = t.run(tcp(kA, kB, 42642, 8385, kTcpAck));
  EXPECT_TRUE(is(r, SL_CT_ESTABLISHED, SL_CT_ST_ESTABLISHED));
  r = t.run(tcp(kB, kA, 8385, 42642, kTcpAck | kTcpPsh, 100));
  EXPECT_TRUE(is(r, SL_CT_REPLY, SL_CT_ST_ESTABLISHED));

  auto entries = t.entries();
  ASSERT_EQ(entries.size(), 1u);
  const auto& [key, value] = entries[0];
  EXPECT_EQ(key.proto, 6);
  EXPECT_EQ(key.family, 4);
  EXPECT_EQ(key.addr_a[0], inet_addr(kA));
  EXPECT_EQ(key.addr_b[0], inet_addr(kB));
  EXPECT_EQ(ntohs(key.port_a), 42642);
  EXPECT_EQ(ntohs(key.port_b), 8385);
  EXPECT_EQ(value.type, SL_CT_TYPE_NORMAL);
  EXPECT_EQ(value.flags & SL_CT_F_BA, 0u);
  EXPECT_EQ(value.legs[0].packets, 2u);
  EXPECT_EQ(value.legs[1].packets, 2u);
  EXPECT_GT(value.legs[1].bytes, value.legs[0].bytes);  // the payload went B->A

  r = t.run(tcp(kA, kB, 42642, 8385, kTcpFin | kTcpAck));
  EXPECT_TRUE(is(r, SL_CT_ESTABLISHED, SL_CT_ST_FIN_WAIT));
  r = t.run(tcp(kB, kA, 8385, 42642, kTcpFin | kTcpAck));
  EXPECT_TRUE(is(r, SL_CT_REPLY, SL_CT_ST_CLOSED));
  r = t.run(tcp(kA, kB, 42642, 8385, kTcpAck));
  EXPECT_TRUE(is(r, SL_CT_ESTABLISHED, SL_CT_ST_CLOSED));

  // A new SYN on the closed tuple starts a new flow, opened by B this time.
  r = t.run(tcp(kB, kA, 8385, 42642, kTcpSyn));
  EXPECT_TRUE(is(r, SL_CT_NEW, SL_CT_ST_SYN_SENT));
  entries = t.entries();
  ASSERT_EQ(entries.size(), 1u);
  EXPECT_NE(entries[0].second.flags & SL_CT_F_BA, 0u);
  EXPECT_EQ(entries[0].second.legs[0].packets, 0u);
  EXPECT_EQ(entries[0].second.legs[1].packets, 1u);
}

TEST(Conntrack, RstResets) {
  Bed t;
  t.run(tcp(kB, kA, 5000, 80, kTcpSyn));
  auto r = t.run(tcp(kA, kB, 80, 5000, kTcpRst | kTcpAck));
  EXPECT_TRUE(is(r, SL_CT_REPLY, SL_CT_ST_RESET));
  auto entries = t.entries();
  ASSERT_EQ(entries.size(), 1u);
  EXPECT_NE(entries[0].second.flags & SL_CT_F_BA, 0u);  // B (10.96.0.50) opened
  EXPECT_NE(entries[0].second.legs[0].flags & SL_CT_LEG_RST, 0u);
}

TEST(Conntrack, TcpMidstreamPickupIsConfigurable) {
  {
    Bed t;
    auto r = t.run(tcp(kA, kB, 1234, 80, kTcpAck));
    EXPECT_TRUE(is(r, SL_CT_NEW, SL_CT_ST_SYN_RECV));
    EXPECT_NE(sl_ct_result_flags(r) & SL_CT_F_MIDSTREAM, 0u);
    r = t.run(tcp(kB, kA, 80, 1234, kTcpAck));
    EXPECT_TRUE(is(r, SL_CT_REPLY, SL_CT_ST_ESTABLISHED));
    // A bare RST never opens a flow.
    r = t.run(tcp(kA, kB, 1235, 80, kTcpRst));
    EXPECT_EQ(sl_ct_result_verdict(r), SL_CT_INVALID);
  }
  {
    Bed t("tcp_midstream_pickup = false\n");
    auto r = t.run(tcp(kA, kB, 1234, 80, kTcpAck));
    EXPECT_EQ(sl_ct_result_verdict(r), SL_CT_INVALID);
    EXPECT_TRUE(t.entries().empty());
  }
}

TEST(Conntrack, UdpBothDirectionsOneEntry) {
  Bed t;
  auto r = t.run(udp(kB, kA, 53, 40000));
  EXPECT_TRUE(is(r, SL_CT_NEW, SL_CT_ST_ACTIVE));
  EXPECT_TRUE(sl_ct_result_has(r, SL_CT_RES_LEG_BA));
  r = t.run(udp(kA, kB, 40000, 53));
  EXPECT_TRUE(is(r, SL_CT_REPLY, SL_CT_ST_ACTIVE));
  r = t.run(udp(kB, kA, 53, 40000));
  EXPECT_TRUE(is(r, SL_CT_ESTABLISHED, SL_CT_ST_ACTIVE));
  auto entries = t.entries();
  ASSERT_EQ(entries.size(), 1u);
  EXPECT_EQ(entries[0].second.legs[1].packets, 2u);
  EXPECT_EQ(entries[0].second.legs[0].packets, 1u);
}

TEST(Conntrack, Ipv6UsesTheWholeAddress) {
  Bed t;
  auto r = t.run(PacketBuilder().ipv6("fd00::2", "fd00::1").udp(1000, 2000).build());
  EXPECT_TRUE(is(r, SL_CT_NEW, SL_CT_ST_ACTIVE));
  EXPECT_TRUE(sl_ct_result_has(r, SL_CT_RES_LEG_BA));
  r = t.run(PacketBuilder().ipv6("fd00::1", "fd00::2").udp(2000, 1000).build());
  EXPECT_EQ(sl_ct_result_verdict(r), SL_CT_REPLY);
  auto entries = t.entries();
  ASSERT_EQ(entries.size(), 1u);
  EXPECT_EQ(entries[0].first.family, 6);
}

TEST(Conntrack, IcmpEchoAndErrors) {
  Bed t;
  // A reply without its request matches nothing and creates nothing.
  auto r = t.run(PacketBuilder().ipv4(kB, kA).icmp(0, 0, 7).build());
  EXPECT_EQ(sl_ct_result_verdict(r), SL_CT_INVALID);
  EXPECT_TRUE(t.entries().empty());

  r = t.run(PacketBuilder().ipv4(kA, kB).icmp(8, 0, 7).build());
  EXPECT_TRUE(is(r, SL_CT_NEW, SL_CT_ST_ACTIVE));
  r = t.run(PacketBuilder().ipv4(kB, kA).icmp(0, 0, 7).build());
  EXPECT_EQ(sl_ct_result_verdict(r), SL_CT_REPLY);
  // Another identifier is another flow.
  r = t.run(PacketBuilder().ipv4(kA, kB).icmp(8, 0, 8).build());
  EXPECT_EQ(sl_ct_result_verdict(r), SL_CT_NEW);
  EXPECT_EQ(t.entries().size(), 2u);

  // Port unreachable about a tracked UDP flow: related, no entry of its own.
  t.run(udp(kA, kB, 40000, 53));
  Bytes inner = PacketBuilder().no_eth().ipv4(kA, kB).udp(40000, 53).build().bytes;
  inner.resize(28);
  r = t.run(PacketBuilder().ipv4(kB, kA).icmp(3, 3, 0, 0).payload(inner).build());
  EXPECT_EQ(sl_ct_result_verdict(r), SL_CT_RELATED);
  EXPECT_TRUE(sl_ct_result_has(r, SL_CT_RES_LEG_BA));
  EXPECT_EQ(t.entries().size(), 3u);
  // ... and about an unknown flow: invalid.
  Bytes other = PacketBuilder().no_eth().ipv4(kA, kB).udp(40001, 53).build().bytes;
  other.resize(28);
  r = t.run(PacketBuilder().ipv4(kB, kA).icmp(3, 3, 0, 0).payload(other).build());
  EXPECT_EQ(sl_ct_result_verdict(r), SL_CT_INVALID);
  // Types that are not tracked (timestamp) are marked so.
  r = t.run(PacketBuilder().ipv4(kA, kB).icmp(13, 0, 1).build());
  EXPECT_EQ(sl_ct_result_verdict(r), SL_CT_UNTRACKED);
  EXPECT_EQ(t.entries().size(), 3u);
}

TEST(Conntrack, FullTableDropsNewFlowsOnlyAndCountsThem) {
  Bed t("table_size = 2\n");
  t.run(udp(kA, kB, 1, 53));
  t.run(udp(kA, kB, 2, 53));
  auto before = t.bed.counter(SL_R_CT_TABLE_FULL);
  RunResult r = t.bed.run(udp(kA, kB, 3, 53));
  EXPECT_EQ(r.verdict, TC_ACT_SHOT);
  EXPECT_EQ(r.reason, SL_R_CT_TABLE_FULL);
  EXPECT_EQ(t.bed.counter(SL_R_CT_TABLE_FULL).packets, before.packets + 1);
  // Existing flows go on.
  auto res = t.run(udp(kB, kA, 53, 1));
  EXPECT_EQ(sl_ct_result_verdict(res), SL_CT_REPLY);
  EXPECT_EQ(t.entries().size(), 2u);

  std::string out;
  ASSERT_EQ(t.cli({"conntrack", "stats"}, {}, out, true), 0) << out;
  EXPECT_NE(out.find("\"table_size\": 2"), std::string::npos) << out;
  EXPECT_NE(out.find("\"table_full_dropped_total\": 1"), std::string::npos) << out;
}

TEST(Conntrack, FullTableCanPassUntracked) {
  Bed t("table_size = 1\ntable_full = \"pass-untracked\"\n");
  t.run(udp(kA, kB, 1, 53));
  auto r = t.run(udp(kA, kB, 2, 53), TC_ACT_OK);
  EXPECT_EQ(sl_ct_result_verdict(r), SL_CT_UNTRACKED);
  EXPECT_EQ(t.entries().size(), 1u);
}

TEST(Conntrack, CleanerRemovesExpiredAndKeepsFreshEntries) {
  Bed t("[plugins.conntrack.timeouts]\nudp = 30\ntcp_established = \"1h\"\n");
  t.run(udp(kA, kB, 1, 53));
  t.run(udp(kA, kB, 2, 53));
  t.run(tcp(kA, kB, 3, 80, kTcpSyn));
  t.run(tcp(kB, kA, 80, 3, kTcpSyn | kTcpAck));
  t.run(tcp(kA, kB, 3, 80, kTcpAck));
  // Age two entries: UDP port 1 by 31 s (past its 30 s), the established TCP
  // flow by 100 s (well within 1 h).
  for (auto [key, value] : t.entries()) {
    if (key.proto == 17 && ntohs(key.port_a) == 1) value.last_seen_ns -= 31'000'000'000ull;
    else if (key.proto == 6) value.last_seen_ns -= 100'000'000'000ull;
    else continue;
    ASSERT_EQ(bpf_map_update_elem(t.table, &key, &value, BPF_EXIST), 0);
  }
  std::string out;
  ASSERT_EQ(t.cli({"conntrack", "clean"}, {}, out), 0) << out;
  EXPECT_EQ(out, "removed 1 of 3 entries (expired)\n");
  auto entries = t.entries();
  ASSERT_EQ(entries.size(), 2u);
  for (const auto& [key, value] : entries)
    EXPECT_FALSE(key.proto == 17 && ntohs(key.port_a) == 1);

  ASSERT_EQ(t.cli({"conntrack", "clean"}, {"--all"}, out, true), 0) << out;
  EXPECT_NE(out.find("\"removed\": 2"), std::string::npos) << out;
  EXPECT_TRUE(t.entries().empty());
}

// One packet must not leave an entry for an hour: a FIN|ACK picked up
// mid-stream (FIN-WAIT) that the peer never answers lives no longer than a
// handshake (tcp_syn); once answered, FIN-WAIT keeps the established timeout.
TEST(Conntrack, AnUnansweredFlowLivesNoLongerThanAHandshake) {
  Bed t("[plugins.conntrack.timeouts]\ntcp_syn = 20\ntcp_established = \"1h\"\n");
  t.run(tcp(kA, kB, 5000, 80, kTcpFin | kTcpAck));  // unanswered
  t.run(tcp(kA, kB, 5001, 80, kTcpFin | kTcpAck));  // answered below
  t.run(tcp(kB, kA, 80, 5001, kTcpAck));
  for (auto [key, value] : t.entries()) {
    EXPECT_EQ(sl_ct_state_of(key.proto, &value), SL_CT_ST_FIN_WAIT);
    value.last_seen_ns -= 21'000'000'000ull;  // past tcp_syn, well within 1 h
    ASSERT_EQ(bpf_map_update_elem(t.table, &key, &value, BPF_EXIST), 0);
  }
  std::string out;
  ASSERT_EQ(t.cli({"conntrack", "clean"}, {}, out), 0) << out;
  EXPECT_EQ(out, "removed 1 of 2 entries (expired)\n");
  auto entries = t.entries();
  ASSERT_EQ(entries.size(), 1u);
  EXPECT_TRUE(entries[0].first.port_a == htons(5001) || entries[0].first.port_b == htons(5001));
}

// Flag combinations no TCP connection sends are dropped, counted, and leave
// no entry; the valid ones (with PSH, ECE, CWR or URG beside them) pass.
TEST(Conntrack, InvalidTcpFlagCombinationsAreDropped) {
  Bed t;
  constexpr std::uint8_t kEce = 0x40, kCwr = 0x80;
  const std::uint8_t invalid[] = {0,
                                  kTcpSyn | kTcpFin,
                                  kTcpSyn | kTcpRst,
                                  kTcpSyn | kTcpFin | kTcpAck,
                                  kTcpFin,
                                  kTcpFin | kTcpPsh | kTcpUrg,  // "Xmas"
                                  kTcpRst | kTcpFin | kTcpAck,
                                  kTcpPsh};
  std::uint16_t port = 6000;
  for (std::uint8_t flags : invalid) {
    SCOPED_TRACE(::testing::Message() << "flags 0x" << std::hex << int(flags));
    RunResult r = t.bed.run(tcp(kA, kB, port++, 80, flags));
    EXPECT_EQ(r.verdict, TC_ACT_SHOT) << verdict_name(r.verdict);
    EXPECT_EQ(r.reason, SL_R_CT_INVALID_FLAGS) << reason_name(r.reason);
  }
  EXPECT_TRUE(t.entries().empty()) << "an invalid segment created an entry";
  const std::uint8_t valid[] = {kTcpSyn | kEce | kCwr, kTcpSyn | kTcpAck | kEce, kTcpAck | kTcpPsh,
                                kTcpFin | kTcpAck | kTcpPsh, kTcpRst | kTcpAck, kTcpAck | kTcpUrg};
  for (std::uint8_t flags : valid) {
    SCOPED_TRACE(::testing::Message() << "flags 0x" << std::hex << int(flags));
    EXPECT_EQ(t.bed.run(tcp(kA, kB, port++, 80, flags)).verdict, TC_ACT_OK);
  }
}

// The plugin's own cleaner is a timer of the host's event loop (no thread):
// the harness runs it when the test says so, and its metric counts what it removed.
TEST(Conntrack, TheCleanerTimerRemovesExpiredEntries) {
  Bed t("clean_interval = 3600\n[plugins.conntrack.timeouts]\nudp = 30\n");
  t.run(udp(kA, kB, 1, 53));
  t.run(udp(kA, kB, 2, 53));
  for (auto [key, value] : t.entries()) {
    if (!(key.proto == 17 && ntohs(key.port_a) == 1)) continue;
    value.last_seen_ns -= 31'000'000'000ull;
    ASSERT_EQ(bpf_map_update_elem(t.table, &key, &value, BPF_EXIST), 0);
  }
  EXPECT_EQ(t.plugin.subscriptions(), 1u) << "one timer, no thread";
  EXPECT_EQ(t.plugin.run_events(std::chrono::milliseconds(0)), 0u) << "not due for an hour";
  ASSERT_EQ(t.entries().size(), 2u);
  EXPECT_EQ(t.plugin.run_timers(), 1u);
  auto entries = t.entries();
  ASSERT_EQ(entries.size(), 1u);
  EXPECT_EQ(ntohs(entries.begin()->first.port_a), 2);
  t.plugin.plugin().shutdown(false);
  EXPECT_EQ(t.plugin.subscriptions(), 0u) << "shutdown cancels the timer";
}

TEST(Conntrack, CliDumpAndRemove) {
  Bed t;
  t.run(tcp(kA, kB, 42642, 8385, kTcpSyn));
  t.run(tcp(kB, kA, 8385, 42642, kTcpSyn | kTcpAck));
  t.run(tcp(kA, kB, 42642, 8385, kTcpAck));
  t.run(udp(kB, "10.0.0.1", 53, 4000));
  std::string out;
  ASSERT_EQ(t.cli({"conntrack", "dump"}, {}, out), 0) << out;
  EXPECT_NE(out.find("TCP 10.0.0.9:42642 -> 10.96.0.50:8385 ESTABLISHED Active ago "),
            std::string::npos)
      << out;
  EXPECT_NE(out.find("UDP 10.96.0.50:53 -> 10.0.0.1:4000 Active ago "), std::string::npos)
      << out;
  ASSERT_EQ(t.cli({"conntrack", "dump"}, {"--raw"}, out), 0) << out;
  EXPECT_NE(out.find("ConntrackKey{proto=6 10.0.0.9:42642 <-> 10.96.0.50:8385} -> "
                     "Entry{Type:0 (NORMAL), Flags:0x0"),
            std::string::npos)
      << out;
  EXPECT_NE(out.find("A2B:{packets:2"), std::string::npos) << out;
  ASSERT_EQ(t.cli({"conntrack", "dump"}, {}, out, true), 0) << out;
  EXPECT_NE(out.find("\"state\": \"ESTABLISHED\""), std::string::npos) << out;
  EXPECT_EQ(t.cli({"conntrack", "dump"}, {"--bogus"}, out), sluice::kCliUsage);

  EXPECT_EQ(t.cli({"conntrack", "remove"}, {"tcp", "not-an-ip"}, out), sluice::kCliUsage);
  ASSERT_EQ(t.cli({"conntrack", "remove"}, {"udp", kA}, out), 0) << out;
  EXPECT_EQ(out, "removed 0 entries\n");
  ASSERT_EQ(t.cli({"conntrack", "remove"}, {"any", kB, kA}, out), 0) << out;
  EXPECT_EQ(out, "removed 1 entry\n");
  ASSERT_EQ(t.entries().size(), 1u);
  EXPECT_EQ(t.entries()[0].first.proto, 17);
}

// ---- fast path ------------------------------------------------------------------

// A private network namespace for the fast path tests: forwarding on, a veth
// fp0 (10.96.0.1/24, peer fp1) with 10.96.0.50 a permanent neighbour, so the
// fast path's FIB lookup has a known answer (packets run as if they arrived
// on lo).
struct FibNetns {
  ScopedNetns ns{
      "ip link add fp0 type veth peer name fp1 && ip addr add 10.96.0.1/24 dev fp0 && "
      "ip link set fp0 address 02:00:00:00:00:01 && ip link set fp0 up && ip link set fp1 up && "
      "ip neigh replace 10.96.0.50 lladdr 02:00:00:00:00:50 dev fp0 nud permanent"};
  unsigned fp0 = if_nametoindex("fp0");
};

std::uint8_t ttl_of(const Bytes& pkt) { return pkt.at(14 + 8); }
bool ipv4_checksum_ok(const Bytes& pkt) {
  std::uint32_t sum = 0;
  for (std::size_t i = 14; i < 14 + 20; i += 2) sum += (pkt.at(i) << 8) | pkt.at(i + 1);
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return sum == 0xffff;
}
Bytes mac_of(const Bytes& pkt, std::size_t at) { return Bytes(pkt.begin() + at, pkt.begin() + at + 6); }

// A workload's packet from an address the node routes elsewhere is dropped
// before it can touch an entry (the e2e test source_check does it with a
// forged reply from a real workload); IPv6 link-local sources belong to the
// link (neighbour discovery) and pass.
TEST(WorkloadSourceCheck, ForgedSourceIsDroppedLinkLocalPasses) {
  FibNetns ns;  // 10.96.0.50 is routed out of fp0, not lo where packets arrive
  Bed t("workload_source_check = true\n");
  RunResult r = t.bed.run(udp(kB, kA, 53, 40000));
  EXPECT_EQ(r.verdict, TC_ACT_SHOT) << verdict_name(r.verdict);
  EXPECT_EQ(r.reason, SL_R_RPF_FAILED) << reason_name(r.reason);
  EXPECT_TRUE(t.entries().empty()) << "a forged packet created an entry";
  r = t.bed.run(PacketBuilder().ipv6("fe80::1", "ff02::1").udp(5353, 5353).build());
  EXPECT_EQ(r.verdict, TC_ACT_OK) << reason_name(r.reason);
  Bed off("workload_source_check = false\n");
  EXPECT_EQ(off.bed.run(udp(kB, kA, 53, 40000)).verdict, TC_ACT_OK);
}

// A flow picked up mid-stream is not answered until its peer sends: the
// opener's further packets are not voted onto the fast path.
TEST(ConntrackFastPath, UnansweredMidstreamFlowIsNotForwarded) {
  FibNetns ns;
  Bed t;
  t.run(tcp(kA, kB, 40000, 80, kTcpAck));
  RunResult r = t.bed.run(tcp(kA, kB, 40000, 80, kTcpAck, 100));
  EXPECT_EQ(r.verdict, TC_ACT_OK) << verdict_name(r.verdict);
  EXPECT_EQ(r.reason, SL_R_ACCEPTED) << reason_name(r.reason);
  t.run(tcp(kB, kA, 80, 40000, kTcpAck));  // the peer answers
  r = t.bed.run(tcp(kA, kB, 40000, 80, kTcpAck, 100));
  EXPECT_EQ(r.reason, SL_R_REDIRECTED) << reason_name(r.reason);
}

TEST(ConntrackFastPath, OffWhenConfiguredSo) {
  FibNetns ns;
  Bed t("fast_path = false\n");
  t.run(tcp(kA, kB, 40000, 80, kTcpSyn));
  t.run(tcp(kB, kA, 80, 40000, kTcpSyn | kTcpAck));
  RunResult r = t.bed.run(tcp(kA, kB, 40000, 80, kTcpAck));
  EXPECT_EQ(r.verdict, TC_ACT_OK);
  EXPECT_EQ(r.reason, SL_R_ACCEPTED) << reason_name(r.reason);
}

TEST(ConntrackFastPath, AnsweredFlowsAreRedirectedFirstPacketsAreNot) {
  FibNetns ns;
  Bed t;  // on by default
  t.bed.set_chain(SL_ROLE_WORKLOAD, SL_HOOK_EGRESS, {t.plugin.stage_fd("conntrack")});
  t.bed.load_entry(SL_ROLE_WORKLOAD);

  // The handshake goes through the chain and the kernel.
  t.run(tcp(kA, kB, 40000, 80, kTcpSyn));
  t.run(tcp(kB, kA, 80, 40000, kTcpSyn | kTcpAck));

  // Established, towards an interface Sluice does not manage: bpf_redirect_neigh
  // (L2 left to the neighbour table), TTL decremented with a valid checksum.
  Packet ack = tcp(kA, kB, 40000, 80, kTcpAck, 100);
  RunResult r = t.bed.run(ack);
  EXPECT_EQ(r.verdict, TC_ACT_REDIRECT) << verdict_name(r.verdict);
  EXPECT_EQ(r.reason, SL_R_REDIRECTED) << reason_name(r.reason);
  EXPECT_EQ(ttl_of(r.out), ttl_of(ack.bytes) - 1);
  EXPECT_TRUE(ipv4_checksum_ok(r.out));
  EXPECT_EQ(mac_of(r.out, 0), mac_of(ack.bytes, 0));
  EXPECT_TRUE(is(t.bed.context().scratch[SL_CT_SCRATCH], SL_CT_ESTABLISHED,
                 SL_CT_ST_ESTABLISHED));

  // No route back to 10.0.0.9: the reply continues the chain unchanged.
  r = t.bed.run(tcp(kB, kA, 80, 40000, kTcpAck, 10));
  EXPECT_EQ(r.verdict, TC_ACT_OK);
  EXPECT_EQ(r.reason, SL_R_ACCEPTED) << reason_name(r.reason);

  // The route's interface is a managed workload: bpf_redirect_peer, with the
  // Ethernet addresses of the FIB result written.
  int ifstate = t.bed.map_fd(SL_MAP_IFSTATE);
  ASSERT_GE(ifstate, 0);
  sl_ifstate st{};
  st.role = SL_ROLE_WORKLOAD;
  std::strncpy(st.name, "fp0", sizeof(st.name) - 1);
  std::uint32_t key = ns.fp0;
  ASSERT_EQ(bpf_map_update_elem(ifstate, &key, &st, BPF_ANY), 0) << std::strerror(errno);
  // The route was cached with what sl_ifstate said then (not a workload), and
  // it holds until the daemon says routing changed.
  r = t.bed.run(ack);
  EXPECT_EQ(r.reason, SL_R_REDIRECTED) << reason_name(r.reason);
  EXPECT_EQ(mac_of(r.out, 0), mac_of(ack.bytes, 0)) << "the cached answer was not used";
  t.bed.invalidate_routes();
  r = t.bed.run(ack);
  EXPECT_EQ(r.verdict, TC_ACT_REDIRECT) << verdict_name(r.verdict);
  EXPECT_EQ(r.reason, SL_R_REDIRECTED) << reason_name(r.reason);
  EXPECT_EQ(mac_of(r.out, 0), (Bytes{0x02, 0, 0, 0, 0, 0x50}));
  EXPECT_EQ(mac_of(r.out, 6), (Bytes{0x02, 0, 0, 0, 0, 0x01}));
  EXPECT_EQ(ttl_of(r.out), ttl_of(ack.bytes) - 1);
  EXPECT_TRUE(ipv4_checksum_ok(r.out));

  // A neighbour change: the same, the new MAC once routes are invalidated.
  ASSERT_EQ(std::system("ip neigh replace 10.96.0.50 lladdr 02:00:00:00:00:51 dev fp0 "
                        "nud permanent"),
            0);
  r = t.bed.run(ack);
  EXPECT_EQ(mac_of(r.out, 0), (Bytes{0x02, 0, 0, 0, 0, 0x50}));
  t.bed.invalidate_routes();
  r = t.bed.run(ack);
  EXPECT_EQ(mac_of(r.out, 0), (Bytes{0x02, 0, 0, 0, 0, 0x51}));
  // Without an invalidation (no daemon), a cached answer lasts 1 s at most.
  ASSERT_EQ(std::system("ip neigh replace 10.96.0.50 lladdr 02:00:00:00:00:52 dev fp0 "
                        "nud permanent"),
            0);
  r = t.bed.run(ack);
  EXPECT_EQ(mac_of(r.out, 0), (Bytes{0x02, 0, 0, 0, 0, 0x51}));
  std::this_thread::sleep_for(std::chrono::nanoseconds(SL_ROUTE_CACHE_MAX_AGE_NS) +
                              std::chrono::milliseconds(100));
  r = t.bed.run(ack);
  EXPECT_EQ(mac_of(r.out, 0), (Bytes{0x02, 0, 0, 0, 0, 0x52})) << "the cached route outlived 1 s";

  // What stays on the slow path: a TTL about to expire, the egress hook.
  r = t.bed.run(PacketBuilder().ipv4(kA, kB).ttl(1).tcp(40000, 80, kTcpAck).build());
  EXPECT_EQ(r.reason, SL_R_ACCEPTED) << reason_name(r.reason);
  r = t.bed.run(ack, SL_HOOK_EGRESS);
  EXPECT_EQ(r.reason, SL_R_ACCEPTED) << reason_name(r.reason);

  // The teardown of an answered flow is fast too; a SYN on its tuple (a new
  // connection, maybe) is a first packet again.
  r = t.bed.run(tcp(kA, kB, 40000, 80, kTcpFin | kTcpAck));
  EXPECT_EQ(r.reason, SL_R_REDIRECTED) << reason_name(r.reason);
  r = t.bed.run(ack);
  EXPECT_EQ(r.reason, SL_R_REDIRECTED) << reason_name(r.reason);
  r = t.bed.run(tcp(kA, kB, 40000, 80, kTcpSyn));
  EXPECT_EQ(r.reason, SL_R_ACCEPTED) << reason_name(r.reason);

  // A new flow's SYN goes to the kernel; the responder's SYN-ACK (towards B,
  // which has a route) is the answer, and fast.
  r = t.bed.run(tcp(kA, kB, 40001, 80, kTcpSyn));
  EXPECT_EQ(r.reason, SL_R_ACCEPTED) << reason_name(r.reason);
  r = t.bed.run(tcp(kB, kA, 5555, 22, kTcpSyn));
  EXPECT_EQ(r.reason, SL_R_ACCEPTED) << reason_name(r.reason);
  r = t.bed.run(tcp(kA, kB, 22, 5555, kTcpSyn | kTcpAck));
  EXPECT_EQ(r.reason, SL_R_REDIRECTED) << reason_name(r.reason);

  // UDP, once both directions were seen.
  r = t.bed.run(udp(kA, kB, 5000, 53));
  EXPECT_EQ(r.reason, SL_R_ACCEPTED) << reason_name(r.reason);
  r = t.bed.run(udp(kA, kB, 5000, 53));
  EXPECT_EQ(r.reason, SL_R_ACCEPTED) << reason_name(r.reason);
  r = t.bed.run(udp(kB, kA, 53, 5000));
  EXPECT_EQ(r.reason, SL_R_ACCEPTED) << reason_name(r.reason);
  r = t.bed.run(udp(kA, kB, 5000, 53));
  EXPECT_EQ(r.reason, SL_R_REDIRECTED) << reason_name(r.reason);

  // A datagram larger than the route's MTU (fp0: 1500) is the kernel's to
  // answer with "fragmentation needed", even with the route cached by the
  // small ones before it.
  r = t.bed.run(PacketBuilder().ipv4(kA, kB).udp(5000, 53).payload(1600).build());
  EXPECT_EQ(r.reason, SL_R_ACCEPTED) << reason_name(r.reason);
  r = t.bed.run(udp(kA, kB, 5000, 53));
  EXPECT_EQ(r.reason, SL_R_REDIRECTED) << reason_name(r.reason);
}

TEST(Conntrack, ConfigErrorsArePositioned) {
  Testbed bed;
  auto error_of = [&](const std::string& text) {
    auto e = bed.config_error(CONNTRACK_PLUGIN, text);
    if (!e) ADD_FAILURE() << "no error for:\n" << text;
    return e.value_or(sluice::ConfigError("", 0, 0, "", ""));
  };
  auto e = error_of("[plugins.conntrack]\ntable_full = \"drop\"\n");
  EXPECT_EQ(e.line, 2u);
  EXPECT_EQ(e.key, "plugins.conntrack.table_full");
  EXPECT_NE(std::string(e.what()).find("drop-new, pass-untracked"), std::string::npos);

  e = error_of("[plugins.conntrack]\n\n[plugins.conntrack.timeouts]\nudp = \"ten\"\n");
  EXPECT_EQ(e.line, 4u);
  EXPECT_EQ(e.key, "plugins.conntrack.timeouts.udp");

  e = error_of("[plugins.conntrack.timeouts]\ntcp_fin = 0\n");
  EXPECT_EQ(e.line, 2u);
  EXPECT_NE(std::string(e.what()).find("out of range"), std::string::npos) << e.what();

  e = error_of("[plugins.conntrack]\ntable_size = 10\ntimeout = 5\n");
  EXPECT_EQ(e.line, 3u);
  EXPECT_EQ(e.column, 1u);
  EXPECT_EQ(e.key, "plugins.conntrack.timeout");

  e = error_of("[plugins.conntrack]\ntable_size = 0\n");
  EXPECT_EQ(e.line, 2u);
  EXPECT_EQ(e.key, "plugins.conntrack.table_size");

  e = error_of("[plugins.conntrack]\nfast_path = \"yes\"\n");
  EXPECT_EQ(e.line, 2u);
  EXPECT_EQ(e.key, "plugins.conntrack.fast_path");
}

}  // namespace
