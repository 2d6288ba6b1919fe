// The nat plugin on the real kernel: the entry program, the conntrack stage
// and the nat stage in one chain (BPF_PROG_TEST_RUN). Checks the rewritten
// bytes (addresses, ports, checksums recomputed here), the conntrack
// NAT_FWD/NAT_REV pair, backend selection, and reconcile of service files.
#include <arpa/inet.h>
#include <net/if.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <functional>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <sluice/bpf/conntrack.h>
#include <sluice/testing/gtest.hpp>
#include <sluice/testing/cli.hpp>
#include <sluice/testing/netns.hpp>
#include <sluice/testing/stage_test.hpp>

#include "nat_layout.h"

namespace {

using namespace sluice::testing;

constexpr const char* kClient = "10.65.0.9";
constexpr const char* kVip = "10.96.0.10";
constexpr const char* kBackend1 = "10.65.0.2";
constexpr const char* kBackend2 = "10.65.1.3";
constexpr const char* kBackend3 = "10.65.2.4";

// A state file with one service; `extra` goes into the [[service]] table.
std::string service(const std::string& name, const std::string& vip, int port,
                    const std::string& backends, const std::string& extra = "",
                    const std::string& protocol = "tcp") {
  return "[[service]]\nname = \"" + name + "\"\nnamespace = \"default\"\ncluster_ip = \"" + vip +
         "\"\nports = [{ port = " + std::to_string(port) + ", protocol = \"" + protocol +
         "\", target_port = 8080 }]\n" + extra + "backends = [" + backends + "]\n";
}
std::string backend(const char* ip, const std::string& more = "") {
  return "{ ip = \"" + std::string(ip) + "\"" + more + " },";
}

std::uint32_t ip4(const Bytes& b, std::size_t off) {
  std::uint32_t v;
  std::memcpy(&v, &b[off], 4);
  return v;
}
std::uint16_t port_at(const Bytes& b, std::size_t off) {
  return static_cast<std::uint16_t>((b[off] << 8) | b[off + 1]);
}

// Recomputes the IPv4 header and TCP/UDP checksums of an Ethernet/IPv4
// packet: true when both are valid (a zero UDP checksum counts as valid).
::testing::AssertionResult checksums_ok(const Bytes& b) {
  const std::size_t l3 = 14;
  std::size_t ihl = (b[l3] & 0x0f) * 4u;
  if (!csum_ok(&b[l3], ihl)) return ::testing::AssertionFailure() << "bad IPv4 header checksum";
  std::size_t total = port_at(b, l3 + 2);
  std::size_t l4 = l3 + ihl, len = total - ihl;
  std::uint8_t proto = b[l3 + 9];
  if (proto == IPPROTO_UDP && port_at(b, l4 + 6) == 0) return ::testing::AssertionSuccess();
  std::uint32_t pseudo = csum_add(0, &b[l3 + 12], 8) + proto + static_cast<std::uint32_t>(len);
  if (!csum_ok(&b[l4], len, pseudo))
    return ::testing::AssertionFailure() << "bad L4 checksum (proto " << int(proto) << ")";
  return ::testing::AssertionSuccess();
}

Packet tcp(const char* src, const char* dst, std::uint16_t sport, std::uint16_t dport,
           std::uint8_t flags = kTcpSyn) {
  return PacketBuilder().ipv4(src, dst).tcp(sport, dport, flags).payload(20).build();
}

// Runs `body` in a network namespace of its own with an uplink of addresses
// 10.64.0.1/24 and 192.168.1.10 (the node's, for node ports), and (with_routes) a default route via 10.64.0.254:
// BPF_PROG_TEST_RUN's bpf_fib_lookup() answers from the caller's namespace,
// and the source NAT to the node for remote backends needs a route (and the
// node's address on it).
void in_routed_netns(const std::function<void()>& body, bool with_routes = true) {
  std::string setup =
      "ip link add up0 type veth peer name up1 && ip addr add 10.64.0.1/24 dev up0 && "
      "ip addr add 192.168.1.10/32 dev up0 && ip link set up0 up && ip link set up1 up";
  if (with_routes) setup += " && ip route add default via 10.64.0.254";
  ScopedNetns ns(setup);
  body();
}

struct Bed {
  Testbed bed;
  PluginUnderTest ct;
  PluginUnderTest nat;
  int table = -1;

  // Connect-time load balancing stays off: these tests run packets through
  // the tc programs only, and its programs would attach to the machine's
  // root cgroup (connect_lb_test.cpp tests it in a cgroup of its own).
  // Conntrack's fast path too, unless a test asks for it: most look at the
  // packet the nat stage hands on, not at where it is redirected. The made-up
  // packets "arrive" on lo from addresses routed elsewhere, so conntrack's
  // workload source check is off (conntrack_test.cpp and e2e.source_check test it).
  explicit Bed(const std::string& nat_body = "", bool fast_path = false,
               const std::string& ct_body = "")
      : ct(bed.load_plugin(CONNTRACK_PLUGIN, std::string("[plugins.conntrack]\nfast_path = ") +
                                                 (fast_path ? "true" : "false") +
                                                 "\nworkload_source_check = false\n" + ct_body)),
        nat(bed.load_plugin(NAT_PLUGIN,
                            "[plugins.nat]\nconnect_time_lb = \"off\"\n" + nat_body)) {
    std::vector<int> chain = {ct.stage_fd("conntrack"), nat.stage_fd("nat")};
    bed.set_chain(SL_ROLE_WORKLOAD, SL_HOOK_INGRESS, chain);
    bed.set_chain(SL_ROLE_DATA, SL_HOOK_INGRESS, chain);
    bed.load_entry(SL_ROLE_WORKLOAD);
    table = bpf_obj_get((bed.map_pin_dir() + "/" SL_MAP_CONNTRACK).c_str());
    if (table < 0) throw std::runtime_error("sl_conntrack is not pinned");
  }
  ~Bed() {
    if (table >= 0) close(table);
  }

  void apply(std::vector<std::pair<std::string, std::string>> files,
             std::vector<std::string> removed = {}, bool full = false) {
    sluice::ResourceChange change;
    change.full = full;
    for (auto& [path, text] : files) change.upserted.push_back({path, text});
    change.removed = std::move(removed);
    nat.plugin().reconcile(change);
  }

  RunResult run(const Packet& pkt, int want = TC_ACT_OK) {
    RunResult r = bed.run(pkt);
    EXPECT_EQ(r.verdict, want) << verdict_name(r.verdict) << " / " << reason_name(r.reason);
    return r;
  }

  // Sends a SYN from kClient:sport to kVip:80 and returns the backend chosen.
  std::string backend_for(std::uint16_t sport, const char* client = kClient,
                          const char* vip = kVip, int vport = 80) {
    RunResult r = run(tcp(client, vip, sport, static_cast<std::uint16_t>(vport)));
    in_addr a{ip4(r.out, 14 + 16)};
    return inet_ntoa(a);
  }

  template <class K, class V>
  std::vector<std::pair<K, V>> dump(const char* name) const {
    std::vector<std::pair<K, V>> out;
    int fd = bpf_obj_get((bed.map_pin_dir() + "/" + name).c_str());
    if (fd < 0) throw std::runtime_error(std::string("no pin ") + name);
    K key{}, next{};
    const K* prev = nullptr;
    while (bpf_map_get_next_key(fd, prev, &next) == 0) {
      V value{};
      if (bpf_map_lookup_elem(fd, &next, &value) == 0) out.emplace_back(next, value);
      key = next;
      prev = &key;
    }
    close(fd);
    return out;
  }
  auto ct_entries() const { return dump<sl_ct_key, sl_ct_value>(SL_MAP_CONNTRACK); }
  auto frontends() const { return dump<nat_fe_key, nat_fe_value>(NAT_MAP_FRONTENDS); }
  auto backends() const { return dump<nat_be_key, nat_be_value>(NAT_MAP_BACKENDS); }

  int cli(const std::vector<std::string>& path, std::vector<std::string> args, std::string& out,
          bool json = false) {
    int rc = sluice::testing::run_plugin_command(
        nat, bed, path, std::move(args), out,
        json ? sluice::OutputFormat::json : sluice::OutputFormat::table);
    if (rc < 0) ADD_FAILURE() << out;
    return rc;
  }
};

// Raw map contents, for "nothing changed" checks.
std::string snapshot(const Bed& t) {
  std::string out;
  auto add = [&](const void* p, std::size_t n) {
    out.append(static_cast<const char*>(p), n);
  };
  std::map<std::string, std::string> sorted;
  for (const auto& [k, v] : t.frontends()) {
    std::string s;
    s.append(reinterpret_cast<const char*>(&k), sizeof(k));
    s.append(reinterpret_cast<const char*>(&v), sizeof(v));
    sorted["f" + s] = s;
  }
  for (const auto& [k, v] : t.backends()) {
    std::string s;
    s.append(reinterpret_cast<const char*>(&k), sizeof(k));
    s.append(reinterpret_cast<const char*>(&v), sizeof(v));
    sorted["b" + s] = s;
  }
  for (const auto& [k, v] : sorted) add(v.data(), v.size());
  return out;
}

TEST(Nat, NewTcpFlowIsDnatedAndTheReplyReverseNated) {
  Bed t;
  t.apply({{"/state/web.toml", service("web", kVip, 80, backend(kBackend1))}});

  Packet syn = tcp(kClient, kVip, 40000, 80);
  RunResult r = t.run(syn);
  EXPECT_EQ(ip4(r.out, 14 + 16), inet_addr(kBackend1));
  EXPECT_EQ(ip4(r.out, 14 + 12), inet_addr(kClient));
  EXPECT_EQ(port_at(r.out, syn.l4_off + 2), 8080);
  EXPECT_EQ(port_at(r.out, syn.l4_off), 40000);
  EXPECT_TRUE(checksums_ok(syn.bytes));  // the test's own check holds for the input
  EXPECT_TRUE(checksums_ok(r.out));
  Bytes broken = r.out;  // the check can fail: one flipped address bit breaks both sums
  broken[14 + 16] ^= 1;
  EXPECT_FALSE(checksums_ok(broken));
  // Later stages see the packet as it now is.
  sl_pkt_ctx ctx = t.bed.context();
  EXPECT_EQ(ctx.daddr[0], inet_addr(kBackend1));
  EXPECT_EQ(ntohs(ctx.dport), 8080);
  // ...and the conntrack result names the NAT_REV entry: client 10.65.0.9 is
  // B of (10.65.0.2, 10.65.0.9), so the packet travels B->A.
  std::uint64_t res = ctx.scratch[SL_CT_SCRATCH];
  EXPECT_EQ(sl_ct_result_verdict(res), SL_CT_NEW);
  EXPECT_EQ(sl_ct_result_type(res), SL_CT_TYPE_NAT_REV);
  EXPECT_TRUE(sl_ct_result_has(res, SL_CT_RES_LEG_BA));

  // The conntrack entry became a NAT_FWD stub + NAT_REV pair.
  int fwd = 0, rev = 0;
  for (const auto& [k, v] : t.ct_entries()) {
    if (v.type == SL_CT_TYPE_NAT_FWD) {
      ++fwd;
      EXPECT_TRUE(k.addr_a[0] == inet_addr(kVip) || k.addr_b[0] == inet_addr(kVip));
    } else if (v.type == SL_CT_TYPE_NAT_REV) {
      ++rev;
      EXPECT_EQ(v.orig_dst[0], inet_addr(kVip));
      EXPECT_EQ(ntohs(v.orig_dport), 80);
      EXPECT_TRUE(k.addr_a[0] == inet_addr(kBackend1) || k.addr_b[0] == inet_addr(kBackend1));
    } else {
      ADD_FAILURE() << "unexpected entry type " << int(v.type);
    }
  }
  EXPECT_EQ(fwd, 1);
  EXPECT_EQ(rev, 1);

  // The backend answers: the source becomes the service again.
  Packet synack = tcp(kBackend1, kClient, 8080, 40000, kTcpSyn | kTcpAck);
  r = t.run(synack);
  EXPECT_EQ(ip4(r.out, 14 + 12), inet_addr(kVip));
  EXPECT_EQ(port_at(r.out, synack.l4_off), 80);
  EXPECT_EQ(ip4(r.out, 14 + 16), inet_addr(kClient));
  EXPECT_TRUE(checksums_ok(r.out));
  EXPECT_EQ(sl_ct_result_verdict(t.bed.context().scratch[SL_CT_SCRATCH]), SL_CT_REPLY);

  // A reply already reverse-NATed (service -> client) that meets the stage
  // again is left as it is (conntrack finds it through the NAT_FWD stub too).
  Packet natted_reply = tcp(kVip, kClient, 80, 40000, kTcpSyn | kTcpAck);
  r = t.run(natted_reply);
  EXPECT_EQ(r.out, natted_reply.bytes);

  // The client's next packet goes to the same backend through NAT_FWD.
  Packet ack = tcp(kClient, kVip, 40000, 80, kTcpAck);
  r = t.run(ack);
  EXPECT_EQ(ip4(r.out, 14 + 16), inet_addr(kBackend1));
  EXPECT_EQ(port_at(r.out, ack.l4_off + 2), 8080);
  EXPECT_TRUE(checksums_ok(r.out));
  for (const auto& [k, v] : t.ct_entries())
    if (v.type == SL_CT_TYPE_NAT_REV) {
      EXPECT_EQ(sl_ct_state_of(k.proto, &v), SL_CT_ST_ESTABLISHED);
    }
}

// Two services sharing a backend, one client port (Linux reuses a source port
// towards different destinations): both map to one post-DNAT tuple. The
// second flow moves to another source port (port-nat) instead of taking the
// first one's NAT_REV entry; each flow's packets and replies keep their own
// service (issue 10, defect 3).
TEST(Nat, TwoServicesSharingABackendFromOneClientPortStayApart) {
  Bed t;
  const char* vip2 = "10.96.0.11";
  t.apply({{"/state/a.toml", service("a", kVip, 80, backend(kBackend1))},
           {"/state/b.toml", service("b", vip2, 80, backend(kBackend1))}});

  RunResult r = t.run(tcp(kClient, kVip, 40000, 80));
  EXPECT_EQ(port_at(r.out, 14 + 20), 40000);
  r = t.run(tcp(kClient, vip2, 40000, 80));
  EXPECT_EQ(ip4(r.out, 14 + 16), inet_addr(kBackend1));
  const std::uint16_t moved = port_at(r.out, 14 + 20);
  EXPECT_NE(moved, 40000);
  EXPECT_GE(moved, 32768);
  EXPECT_TRUE(checksums_ok(r.out));
  EXPECT_TRUE(sl_ct_result_flags(t.bed.context().scratch[SL_CT_SCRATCH]) & SL_CT_F_PORT_NAT);
  std::set<std::uint32_t> services;
  for (const auto& [k, v] : t.ct_entries())
    if (v.type == SL_CT_TYPE_NAT_REV) {
      services.insert(v.orig_dst[0]);
      EXPECT_EQ(bool(v.flags & SL_CT_F_PORT_NAT), v.orig_dst[0] == inet_addr(vip2));
    }
  EXPECT_EQ(services, (std::set<std::uint32_t>{inet_addr(kVip), inet_addr(vip2)}));

  // Each flow's later packets keep their own tuple...
  r = t.run(tcp(kClient, kVip, 40000, 80, kTcpAck));
  EXPECT_EQ(port_at(r.out, 14 + 20), 40000);
  r = t.run(tcp(kClient, vip2, 40000, 80, kTcpAck));
  EXPECT_EQ(port_at(r.out, 14 + 20), moved);
  EXPECT_TRUE(checksums_ok(r.out));
  // ...and each reply comes back from its own service, to the client's port.
  r = t.run(tcp(kBackend1, kClient, 8080, 40000, kTcpSyn | kTcpAck));
  EXPECT_EQ(ip4(r.out, 14 + 12), inet_addr(kVip));
  EXPECT_EQ(port_at(r.out, 14 + 22), 40000);
  r = t.run(tcp(kBackend1, kClient, 8080, moved, kTcpSyn | kTcpAck));
  EXPECT_EQ(ip4(r.out, 14 + 12), inet_addr(vip2));
  EXPECT_EQ(port_at(r.out, 14 + 20), 80);
  EXPECT_EQ(port_at(r.out, 14 + 22), 40000);
  EXPECT_TRUE(checksums_ok(r.out));
}

// The reply on its way to the client, after reverse NAT (service -> client),
// meets conntrack again at the client veth's egress hook. conntrack finds it
// through the NAT_FWD stub (the pre-DNAT tuple), whose B-A flag tells the
// client's side of that key: the packet is a reply, counted in the backend's
// leg of the NAT_REV entry, not the client's.
TEST(Nat, AReverseNatedReplyIsAReplyAtTheClientsEgress) {
  Bed t;
  t.bed.set_chain(SL_ROLE_WORKLOAD, SL_HOOK_EGRESS, {t.ct.stage_fd("conntrack")});
  t.bed.load_entry(SL_ROLE_WORKLOAD);
  t.apply({{"/state/web.toml", service("web", kVip, 80, backend(kBackend1))}});

  // NAT_REV key (10.65.0.2:8080, 10.65.0.9:40000): the backend is A, the
  // client (the opener) B. The backend's leg is legs[0], the client's legs[1].
  auto rev = [&t]() {
    for (const auto& [k, v] : t.ct_entries())
      if (v.type == SL_CT_TYPE_NAT_REV) return v;
    ADD_FAILURE() << "no NAT_REV entry";
    return sl_ct_value{};
  };

  t.run(tcp(kClient, kVip, 40000, 80));  // the client's veth ingress: DNAT
  Packet synack = tcp(kBackend1, kClient, 8080, 40000, kTcpSyn | kTcpAck);
  RunResult r = t.run(synack);  // the backend's veth ingress: reverse NAT
  EXPECT_EQ(ip4(r.out, 14 + 12), inet_addr(kVip));
  std::uint64_t res = t.bed.context().scratch[SL_CT_SCRATCH];
  EXPECT_EQ(sl_ct_result_verdict(res), SL_CT_REPLY);
  EXPECT_FALSE(sl_ct_result_has(res, SL_CT_RES_LEG_BA));
  sl_ct_value before = rev();
  EXPECT_EQ(before.legs[0].packets, 1u);
  EXPECT_EQ(before.legs[1].packets, 1u);

  // The same packet, reverse-NATed, at the client's veth egress.
  r = t.bed.run(r.out, SL_HOOK_EGRESS);
  EXPECT_EQ(r.verdict, TC_ACT_OK) << verdict_name(r.verdict);
  res = t.bed.context().scratch[SL_CT_SCRATCH];
  EXPECT_EQ(sl_ct_result_verdict(res), SL_CT_REPLY);
  EXPECT_FALSE(sl_ct_result_has(res, SL_CT_RES_LEG_BA));  // the backend's leg, A->B
  EXPECT_TRUE(sl_ct_result_has(res, SL_CT_RES_VIA_NAT_FWD));
  EXPECT_EQ(sl_ct_result_type(res), SL_CT_TYPE_NAT_REV);
  EXPECT_EQ(sl_ct_result_state(res), SL_CT_ST_SYN_RECV);
  sl_ct_value after = rev();
  EXPECT_EQ(after.legs[0].packets, 2u);  // counted at both hooks
  EXPECT_EQ(after.legs[0].bytes, 2 * before.legs[0].bytes);
  EXPECT_EQ(after.legs[1].packets, 1u);  // the client's leg: untouched
  EXPECT_EQ(after.legs[1].bytes, before.legs[1].bytes);

  // The client's ACK, through the stub too, is the opener's direction
  // (ESTABLISHED, the client's leg, B->A) and completes the handshake.
  r = t.run(tcp(kClient, kVip, 40000, 80, kTcpAck));
  EXPECT_EQ(ip4(r.out, 14 + 16), inet_addr(kBackend1));
  res = t.bed.context().scratch[SL_CT_SCRATCH];
  EXPECT_EQ(sl_ct_result_verdict(res), SL_CT_ESTABLISHED);
  EXPECT_TRUE(sl_ct_result_has(res, SL_CT_RES_LEG_BA));
  EXPECT_TRUE(sl_ct_result_has(res, SL_CT_RES_VIA_NAT_FWD));
  EXPECT_EQ(sl_ct_result_state(res), SL_CT_ST_ESTABLISHED);
  after = rev();
  EXPECT_EQ(after.legs[0].packets, 2u);
  EXPECT_EQ(after.legs[1].packets, 2u);

  // Data from the backend, reverse-NATed, at the client's egress: a reply.
  r = t.run(tcp(kBackend1, kClient, 8080, 40000, kTcpAck));
  r = t.bed.run(r.out, SL_HOOK_EGRESS);
  res = t.bed.context().scratch[SL_CT_SCRATCH];
  EXPECT_EQ(sl_ct_result_verdict(res), SL_CT_REPLY);
  EXPECT_FALSE(sl_ct_result_has(res, SL_CT_RES_LEG_BA));
  EXPECT_EQ(rev().legs[0].packets, 4u);
  EXPECT_EQ(rev().legs[1].packets, 2u);
}

TEST(Nat, UdpChecksumsAndZeroChecksumStaysZero) {
  Bed t;
  t.apply({{"/state/dns.toml", service("dns", kVip, 53, backend(kBackend1), "", "udp")}});
  Packet p = PacketBuilder().ipv4(kClient, kVip).udp(5353, 53).payload(30).build();
  RunResult r = t.run(p);
  EXPECT_EQ(ip4(r.out, 14 + 16), inet_addr(kBackend1));
  EXPECT_EQ(port_at(r.out, p.l4_off + 2), 8080);
  EXPECT_NE(port_at(r.out, p.l4_off + 6), 0);
  EXPECT_TRUE(checksums_ok(r.out));

  Packet z = PacketBuilder().ipv4(kClient, kVip).udp(5354, 53).payload(30).build();
  z.bytes[z.l4_off + 6] = 0;
  z.bytes[z.l4_off + 7] = 0;
  r = t.run(z);
  EXPECT_EQ(ip4(r.out, 14 + 16), inet_addr(kBackend1));
  EXPECT_EQ(port_at(r.out, z.l4_off + 6), 0);  // still "no checksum"
  EXPECT_TRUE(checksums_ok(r.out));
}

TEST(Nat, Ipv6FlowIsDnatedWithAValidChecksum) {
  Bed t;
  t.apply({{"/state/v6.toml", service("v6", "fd00:96::10", 80,
                                       "{ ip = \"fd00:65::2\" },")}});
  Packet p = PacketBuilder().ipv6("fd00:65::9", "fd00:96::10").tcp(40000, 80, kTcpSyn)
                 .payload(9).build();
  RunResult r = t.run(p);
  in6_addr want{};
  inet_pton(AF_INET6, "fd00:65::2", &want);
  EXPECT_EQ(std::memcmp(&r.out[p.l3_off + 24], &want, 16), 0);
  EXPECT_EQ(port_at(r.out, p.l4_off + 2), 8080);
  std::size_t len = r.out.size() - p.l4_off;
  std::uint32_t pseudo = csum_add(0, &r.out[p.l3_off + 8], 32) + IPPROTO_TCP +
                         static_cast<std::uint32_t>(len);
  EXPECT_TRUE(csum_ok(&r.out[p.l4_off], len, pseudo));
}

// An ICMP error from `src` to `dst` quoting the first 28 bytes of `quoted`'s IP
// packet (type 3 code 4: fragmentation needed, next-hop MTU 1400).
Packet icmp_error(const char* src, const char* dst, const Packet& quoted) {
  Bytes quote(quoted.bytes.begin() + 14, quoted.bytes.begin() + 14 + 28);
  return PacketBuilder().ipv4(src, dst).icmp(3, 4, 0, 1400).payload(quote).build();
}

::testing::AssertionResult icmp_checksums_ok(const Bytes& b) {
  if (!csum_ok(&b[14], 20)) return ::testing::AssertionFailure() << "bad outer IP checksum";
  if (!csum_ok(&b[34], b.size() - 34)) return ::testing::AssertionFailure() << "bad ICMP checksum";
  if (!csum_ok(&b[42], 20)) return ::testing::AssertionFailure() << "bad quoted IP checksum";
  return ::testing::AssertionSuccess();
}

// A (translated) ICMP error as it should leave: outer source and
// destination, the quoted packet's endpoints, and every checksum right.
::testing::AssertionResult icmp_error_is(const Bytes& b, const char* from, const char* to,
                                         const char* quote_src, int quote_sport,
                                         const char* quote_dst, int quote_dport) {
  auto addr = [&](std::size_t at) {
    char text[INET_ADDRSTRLEN] = "";
    inet_ntop(AF_INET, &b[at], text, sizeof(text));
    return std::string(text);
  };
  std::string got = addr(14 + 12) + " -> " + addr(14 + 16) + " quoting " + addr(42 + 12) + ":" +
                    std::to_string(port_at(b, 62)) + " -> " + addr(42 + 16) + ":" +
                    std::to_string(port_at(b, 64));
  std::string want = std::string(from) + " -> " + to + " quoting " + quote_src + ":" +
                     std::to_string(quote_sport) + " -> " + quote_dst + ":" +
                     std::to_string(quote_dport);
  if (got != want) return ::testing::AssertionFailure() << "got " << got << ", want " << want;
  return icmp_checksums_ok(b);
}

TEST(Nat, IcmpErrorsAboutNatedFlowsAreTranslated) {
  Bed t;
  t.apply({{"/state/web.toml", service("web", kVip, 80, backend(kBackend1))}});
  t.run(tcp(kClient, kVip, 40000, 80));

  // From the backend to the client, quoting client -> backend: the client
  // must see an error from the service about its packet to the service.
  Packet quoted = tcp(kClient, kBackend1, 40000, 8080, kTcpAck);
  Packet err = icmp_error(kBackend1, kClient, quoted);
  ASSERT_TRUE(icmp_checksums_ok(err.bytes));
  RunResult r = t.run(err);
  EXPECT_EQ(sl_ct_result_verdict(t.bed.context().scratch[SL_CT_SCRATCH]), SL_CT_RELATED);
  // From the backend: its leg of the NAT_REV entry, A->B.
  EXPECT_FALSE(sl_ct_result_has(t.bed.context().scratch[SL_CT_SCRATCH], SL_CT_RES_LEG_BA));
  EXPECT_TRUE(icmp_error_is(r.out, kVip, kClient, kClient, 40000, kVip, 80));
  Bytes broken = r.out;
  broken[42 + 16] ^= 1;
  EXPECT_FALSE(icmp_checksums_ok(broken));

  // From a router on the way: the outer source stays the router's.
  r = t.run(icmp_error("10.0.0.1", kClient, quoted));
  EXPECT_EQ(ip4(r.out, 14 + 12), inet_addr("10.0.0.1"));
  EXPECT_EQ(ip4(r.out, 42 + 16), inet_addr(kVip));
  EXPECT_TRUE(icmp_checksums_ok(r.out));

  // From the client's side, quoting a reply service -> client: it goes to the
  // backend, about the backend's packet.
  Packet reply = tcp(kVip, kClient, 80, 40000, kTcpAck);
  r = t.run(icmp_error(kClient, kVip, reply));
  // conntrack found the quote through the NAT_FWD stub: the error travels
  // from the client, whose leg of the NAT_REV entry is B->A.
  EXPECT_EQ(sl_ct_result_verdict(t.bed.context().scratch[SL_CT_SCRATCH]), SL_CT_RELATED);
  EXPECT_TRUE(sl_ct_result_has(t.bed.context().scratch[SL_CT_SCRATCH], SL_CT_RES_LEG_BA));
  EXPECT_TRUE(icmp_error_is(r.out, kClient, kBackend1, kBackend1, 8080, kClient, 40000));

  // About a flow that is not NATed: untouched.
  t.run(tcp(kClient, "10.65.7.7", 41000, 22));
  Packet plain = tcp(kClient, "10.65.7.7", 41000, 22, kTcpAck);
  Packet plain_err = icmp_error("10.65.7.7", kClient, plain);
  r = t.run(plain_err);
  EXPECT_EQ(r.out, plain_err.bytes);
}

TEST(Nat, Icmpv6ErrorsAboutNatedFlowsAreTranslated) {
  Bed t;
  const char* client = "fd00:65::9";
  const char* vip = "fd00:96::10";
  const char* be = "fd00:65::2";
  t.apply({{"/state/v6.toml", service("v6", vip, 80, "{ ip = \"fd00:65::2\" },")}});
  t.run(PacketBuilder().ipv6(client, vip).tcp(40000, 80, kTcpSyn).build());
  auto v6 = [](const char* text) {
    Bytes b(16);
    inet_pton(AF_INET6, text, b.data());
    return b;
  };
  auto at = [](const Bytes& b, std::size_t off) { return Bytes(b.begin() + off, b.begin() + off + 16); };
  // ICMPv6 checksum over pseudo-header (outer addresses) + message.
  auto icmp6_ok = [](const Bytes& b) {
    std::size_t len = b.size() - 54;
    std::uint32_t pseudo = csum_add(0, &b[14 + 8], 32) + 58 + static_cast<std::uint32_t>(len);
    return csum_ok(&b[54], len, pseudo);
  };
  auto error = [](const char* src, const char* dst, const Packet& quoted) {
    Bytes quote(quoted.bytes.begin() + 14, quoted.bytes.begin() + 14 + 48);
    return PacketBuilder().ipv6(src, dst).icmpv6(2, 0, 0, 1280).payload(quote).build();  // too big
  };

  // From the backend, quoting client -> backend.
  Packet quoted = PacketBuilder().ipv6(client, be).tcp(40000, 8080, kTcpAck).payload(20).build();
  Packet err = error(be, client, quoted);
  ASSERT_TRUE(icmp6_ok(err.bytes));
  RunResult r = t.run(err);
  EXPECT_EQ(sl_ct_result_verdict(t.bed.context().scratch[SL_CT_SCRATCH]), SL_CT_RELATED);
  EXPECT_EQ(at(r.out, 14 + 8), v6(vip));         // outer source
  EXPECT_EQ(at(r.out, 62 + 24), v6(vip));        // quoted destination
  EXPECT_EQ(port_at(r.out, 62 + 40 + 2), 80);
  EXPECT_TRUE(icmp6_ok(r.out));
  Bytes broken = r.out;
  broken[62 + 24] ^= 1;
  EXPECT_FALSE(icmp6_ok(broken));

  // From the client's side, quoting service -> client.
  Packet reply = PacketBuilder().ipv6(vip, client).tcp(80, 40000, kTcpAck).payload(20).build();
  r = t.run(error(client, vip, reply));
  EXPECT_EQ(at(r.out, 14 + 24), v6(be));         // outer destination
  EXPECT_EQ(at(r.out, 62 + 8), v6(be));          // quoted source
  EXPECT_EQ(port_at(r.out, 62 + 40), 8080);
  EXPECT_TRUE(icmp6_ok(r.out));

  // Hairpin (the backend through its own service, source-NATed to the IPv6
  // hairpin address): its error about the hairpin packet goes back to it,
  // from the service, about its own packet to the service.
  const char* hairpin = "fd5c:1ce:0:42::1";  // the default hairpin_snat_ipv6
  t.run(PacketBuilder().ipv6(be, vip).tcp(40001, 80, kTcpSyn).build(), TC_ACT_REDIRECT);
  Packet hairpin_quoted =
      PacketBuilder().ipv6(hairpin, be).tcp(40001, 8080, kTcpAck).payload(20).build();
  r = t.run(error(be, hairpin, hairpin_quoted), TC_ACT_REDIRECT);
  EXPECT_EQ(at(r.out, 14 + 8), v6(vip));   // outer source
  EXPECT_EQ(at(r.out, 14 + 24), v6(be));   // outer destination
  EXPECT_EQ(at(r.out, 62 + 8), v6(be));    // quoted source
  EXPECT_EQ(port_at(r.out, 62 + 40), 40001);
  EXPECT_EQ(at(r.out, 62 + 24), v6(vip));  // quoted destination
  EXPECT_EQ(port_at(r.out, 62 + 40 + 2), 80);
  EXPECT_TRUE(icmp6_ok(r.out));
}

TEST(Nat, UdpFlowsToARemovedBackendAreForgotten) {
  Bed t;
  t.apply({{"/state/dns.toml",
            service("dns", kVip, 53, backend(kBackend1) + backend(kBackend2), "", "udp")}});
  auto send = [&](std::uint16_t sport) {
    RunResult r = t.run(PacketBuilder().ipv4(kClient, kVip).udp(sport, 53).payload(12).build());
    in_addr a{ip4(r.out, 14 + 16)};
    return std::string(inet_ntoa(a));
  };
  std::uint16_t on1 = 0, on2 = 0;
  for (std::uint16_t sport = 5000; sport < 5100 && (!on1 || !on2); ++sport) {
    std::string be = send(sport);
    if (be == kBackend1 && !on1) on1 = sport;
    if (be == kBackend2 && !on2) on2 = sport;
  }
  ASSERT_TRUE(on1 && on2);
  EXPECT_EQ(send(on1), kBackend1);  // the flow sticks while backend 1 exists
  std::size_t before = t.ct_entries().size();

  t.apply({{"/state/dns.toml", service("dns", kVip, 53, backend(kBackend2), "", "udp")}});
  // Flows to backend 1 lost their NAT_FWD/NAT_REV pair; the others kept theirs.
  std::size_t after = t.ct_entries().size();
  EXPECT_LT(after, before);
  EXPECT_GT(after, 0u);
  for (const auto& [k, v] : t.ct_entries())
    if (v.type == SL_CT_TYPE_NAT_REV) {
      EXPECT_TRUE(k.addr_a[0] != inet_addr(kBackend1) && k.addr_b[0] != inet_addr(kBackend1));
    }
  EXPECT_EQ(send(on1), kBackend2);  // the same client port, now a new flow
  EXPECT_EQ(send(on2), kBackend2);
}

TEST(Nat, FlowsSpreadOverTheBackends) {
  Bed t;
  t.apply({{"/state/web.toml",
            service("web", kVip, 80, backend(kBackend1) + backend(kBackend2) + backend(kBackend3))}});
  std::map<std::string, int> hits;
  for (std::uint16_t sport = 30000; sport < 30090; ++sport) hits[t.backend_for(sport)]++;
  EXPECT_EQ(hits.size(), 3u);
  for (const auto& [ip, n] : hits) {
    EXPECT_TRUE(ip == kBackend1 || ip == kBackend2 || ip == kBackend3) << ip;
    EXPECT_GE(n, 10) << ip;  // 90 flows over 3 backends
  }
}

TEST(Nat, SessionAffinityKeepsAClientOnOneBackend) {
  Bed t;
  t.apply({{"/state/web.toml",
            service("web", kVip, 80, backend(kBackend1) + backend(kBackend2) + backend(kBackend3),
                    "session_affinity = \"client_ip\"\nsession_affinity_timeout = 600\n")}});
  std::set<std::string> chosen;
  for (std::uint16_t sport = 30000; sport < 30030; ++sport) chosen.insert(t.backend_for(sport));
  EXPECT_EQ(chosen.size(), 1u);
  std::set<std::string> others;  // other clients still spread
  for (int c = 1; c < 40; ++c) {
    std::string client = "10.65.9." + std::to_string(c);
    others.insert(t.backend_for(1000, client.c_str()));
  }
  EXPECT_GT(others.size(), 1u);

  std::string out;
  ASSERT_EQ(t.cli({"nat", "aff"}, {}, out, true), 0) << out;
  EXPECT_NE(out.find("\"client\": \"10.65.0.9\""), std::string::npos) << out;
  EXPECT_NE(out.find("\"backend\": \"" + *chosen.begin() + "\""), std::string::npos) << out;
  ASSERT_EQ(t.cli({"nat", "dump"}, {}, out, true), 0) << out;
  EXPECT_NE(out.find("\"flags\": [\n      \"affinity\"\n    ]"), std::string::npos) << out;
  EXPECT_NE(out.find("\"affinity_timeout\": 600"), std::string::npos) << out;
  EXPECT_EQ(t.cli({"nat", "dump"}, {"--bogus"}, out), sluice::kCliUsage);
  ASSERT_EQ(t.cli({"nat", "aff"}, {}, out), 0) << out;
  EXPECT_NE(out.find("client 10.65.0.9 svc 1 (default/web:80/tcp) -> " + *chosen.begin() + ":8080"),
            std::string::npos)
      << out;
}

TEST(Nat, NoReadyBackendDropsWithNoBackend) {
  Bed t("no_backend = \"drop\"\n");
  t.apply({{"/state/web.toml",
            service("web", kVip, 80, backend(kBackend1, ", ready = false"))}});
  RunResult r = t.run(tcp(kClient, kVip, 40000, 80), TC_ACT_SHOT);
  EXPECT_EQ(r.reason, SL_R_NO_BACKEND);
  EXPECT_EQ(t.bed.counter(SL_R_NO_BACKEND).packets, 1u);
  r = t.run(tcp(kClient, kVip, 40000, 80), TC_ACT_SHOT);  // the retry is refused too
  EXPECT_EQ(r.reason, SL_R_NO_BACKEND);
  EXPECT_TRUE(t.ct_entries().empty());
  // Traffic to other addresses is not the stage's business.
  r = t.run(tcp(kClient, "10.96.0.11", 40000, 80));
  EXPECT_EQ(ip4(r.out, 14 + 16), inet_addr("10.96.0.11"));
}

TEST(Nat, NoBackendRejectsWithIcmpPortUnreachable) {
  Bed t;  // no_backend = "reject" is the default
  t.apply({{"/state/web.toml", service("web", kVip, 80, "")}});
  Packet syn = tcp(kClient, kVip, 40000, 80);
  RunResult r = t.run(syn, TC_ACT_REDIRECT);
  EXPECT_EQ(r.reason, SL_R_NO_BACKEND);
  EXPECT_EQ(t.bed.counter(SL_R_NO_BACKEND).packets, 1u);
  // TCP quotes its whole 20-byte header (sluice/bpf/icmp.h: a real client's
  // SYN carries a checksum still to be filled in, which the kernel refuses to
  // cut into; e2e.service_reject).
  ASSERT_EQ(r.out.size(), 14u + 20 + 8 + 20 + 20);
  // Ethernet addresses swapped: back to the sender.
  EXPECT_TRUE(std::equal(r.out.begin(), r.out.begin() + 6, syn.bytes.begin() + 6));
  EXPECT_TRUE(std::equal(r.out.begin() + 6, r.out.begin() + 12, syn.bytes.begin()));
  EXPECT_EQ(port_at(r.out, 12), 0x0800);
  // IPv4 from the service address to the client, ICMP 3/3.
  EXPECT_EQ(r.out[14], 0x45);
  EXPECT_EQ(port_at(r.out, 16), 68);
  EXPECT_EQ(r.out[14 + 9], IPPROTO_ICMP);
  EXPECT_EQ(ip4(r.out, 14 + 12), inet_addr(kVip));
  EXPECT_EQ(ip4(r.out, 14 + 16), inet_addr(kClient));
  EXPECT_TRUE(csum_ok(&r.out[14], 20));
  EXPECT_EQ(r.out[34], 3);
  EXPECT_EQ(r.out[35], 3);
  EXPECT_TRUE(csum_ok(&r.out[34], 48));
  // It quotes the refused packet's IP header and its TCP header.
  EXPECT_TRUE(std::equal(r.out.begin() + 42, r.out.end(), syn.bytes.begin() + 14));
  // The refused flow is forgotten: once the service has a backend, the
  // retransmitted SYN is a new flow and gets DNATed.
  EXPECT_TRUE(t.ct_entries().empty());
  t.apply({{"/state/web.toml", service("web", kVip, 80, backend(kBackend1))}});
  r = t.run(syn);
  EXPECT_EQ(ip4(r.out, 14 + 16), inet_addr(kBackend1));
  EXPECT_TRUE(checksums_ok(r.out));

  // IPv6: ICMPv6 port unreachable (type 1 code 4).
  t.apply({{"/state/v6.toml", service("v6", "fd00:96::10", 80, "")}});
  Packet syn6 = PacketBuilder().ipv6("fd00:65::9", "fd00:96::10").tcp(40000, 80, kTcpSyn)
                    .payload(100).build();
  r = t.run(syn6, TC_ACT_REDIRECT);
  EXPECT_EQ(r.reason, SL_R_NO_BACKEND);
  ASSERT_EQ(r.out.size(), 14u + 40 + 8 + 40 + 20);
  EXPECT_TRUE(std::equal(r.out.begin(), r.out.begin() + 6, syn6.bytes.begin() + 6));
  EXPECT_EQ(port_at(r.out, 12), 0x86dd);
  EXPECT_EQ(r.out[14] >> 4, 6);
  EXPECT_EQ(port_at(r.out, 14 + 4), 68);
  EXPECT_EQ(r.out[14 + 6], 58);
  EXPECT_TRUE(std::equal(r.out.begin() + 22, r.out.begin() + 38, syn6.bytes.begin() + 38));
  EXPECT_TRUE(std::equal(r.out.begin() + 38, r.out.begin() + 54, syn6.bytes.begin() + 22));
  EXPECT_EQ(r.out[54], 1);
  EXPECT_EQ(r.out[55], 4);
  std::uint32_t pseudo = csum_add(0, &r.out[22], 32) + 58 + 68;
  EXPECT_TRUE(csum_ok(&r.out[54], 68, pseudo));
  EXPECT_TRUE(std::equal(r.out.begin() + 62, r.out.end(), syn6.bytes.begin() + 14));

  // UDP quotes 8 bytes of its header, as RFC 792 asks at the least.
  t.apply({{"/state/dns.toml", service("dns", "10.96.0.53", 53, "", "", "udp")}});
  Packet query = PacketBuilder().ipv4(kClient, "10.96.0.53").udp(40001, 53).payload(40).build();
  r = t.run(query, TC_ACT_REDIRECT);
  EXPECT_EQ(r.reason, SL_R_NO_BACKEND);
  ASSERT_EQ(r.out.size(), 14u + 20 + 8 + 20 + 8);
  EXPECT_TRUE(csum_ok(&r.out[34], 36));
  EXPECT_TRUE(std::equal(r.out.begin() + 42, r.out.end(), query.bytes.begin() + 14));
}

TEST(Nat, ExternalTrafficPolicyLocalUsesOnlyLocalBackends) {
  Bed t;
  // node "testbed" is the harness's node name.
  std::string extra =
      "external_ips = [\"192.0.2.10\"]\nexternal_traffic_policy = \"local\"\n";
  t.apply({{"/state/web.toml",
            service("web", kVip, 80,
                    backend(kBackend1, ", node = \"other\"") +
                        backend(kBackend2, ", node = \"testbed\"") +
                        backend(kBackend3, ", node = \"other\""),
                    extra)},
           {"/state/remote.toml",
            service("remote", "10.96.0.20", 80, backend(kBackend3, ", node = \"other\""),
                    "external_ips = [\"192.0.2.20\"]\nexternal_traffic_policy = \"local\"\n")}});
  t.bed.load_entry(SL_ROLE_DATA);
  for (std::uint16_t sport = 30000; sport < 30030; ++sport)
    EXPECT_EQ(t.backend_for(sport, "198.51.100.7", "192.0.2.10"), kBackend2);
  // An external client of a service without a local backend is refused...
  RunResult r = t.run(tcp("198.51.100.7", "192.0.2.20", 30000, 80), TC_ACT_REDIRECT);
  EXPECT_EQ(r.reason, SL_R_NO_BACKEND);
  EXPECT_EQ(r.out[14 + 9], IPPROTO_ICMP);
  // ...while the cluster IP (internal traffic) still uses every backend.
  t.bed.load_entry(SL_ROLE_WORKLOAD);
  EXPECT_EQ(t.backend_for(30000, kClient, "10.96.0.20"), kBackend3);
  std::set<std::string> chosen;
  for (std::uint16_t sport = 30000; sport < 30060; ++sport) chosen.insert(t.backend_for(sport));
  EXPECT_EQ(chosen.size(), 3u);
}

// Node port 30080 of service "np", backend kBackend1.
const std::string kNodePortService =
    "[[service]]\nname = \"np\"\ncluster_ip = \"10.96.0.30\"\n"
    "ports = [{ port = 80, target_port = 8080, node_port = 30080 }]\n"
    "backends = [{ ip = \"10.65.0.2\", node = \"testbed\" }]\n";

// A private network namespace where the node holds 192.168.1.10 on np0 and
// the external client 192.168.1.77 is a permanent neighbour there, so FIB
// lookups have known answers (packets run as if they arrived on lo).
struct NodeAddressNetns {
  ScopedNetns ns{
      "ip link add np0 type veth peer name np1 && ip addr add 192.168.1.10/24 dev np0 && "
      "ip link set np0 address 02:00:00:00:00:10 && ip link set np0 up && ip link set np1 up && "
      "ip neigh replace 192.168.1.77 lladdr 02:00:00:00:00:77 dev np0 nud permanent"};
  unsigned np0 = if_nametoindex("np0");
};

// Node ports answer on the node's own addresses, from outside and from
// workloads; the same port of any other host is left alone.
TEST(Nat, NodePortsAnswerOnTheNodesAddresses) {
  NodeAddressNetns ns;
  Bed t;
  t.apply({{"/state/np.toml", kNodePortService}});
  t.bed.load_entry(SL_ROLE_DATA);
  EXPECT_EQ(t.backend_for(40000, "198.51.100.7", "192.168.1.10", 30080), kBackend1);
  EXPECT_EQ(t.backend_for(40001, "198.51.100.7", "192.168.1.99", 30080), "192.168.1.99");
  t.bed.load_entry(SL_ROLE_WORKLOAD);
  EXPECT_EQ(t.backend_for(40002, kClient, "192.168.1.10", 30080), kBackend1);
  EXPECT_EQ(t.backend_for(40003, kClient, "192.168.1.99", 30080), "192.168.1.99");
}

// A node port's reply from a local backend has one of the node's own
// addresses as its source after reverse NAT; the kernel would drop it as a
// martian on the backend's veth, so the stage routes it out itself.
TEST(Nat, NodePortRepliesFromANodeAddressAreRoutedByTheStage) {
  NodeAddressNetns ns;
  Bed t;
  t.apply({{"/state/np.toml", kNodePortService}});
  t.bed.load_entry(SL_ROLE_DATA);
  EXPECT_EQ(t.backend_for(40000, "192.168.1.77", "192.168.1.10", 30080), kBackend1);
  // ...and a cluster IP flow (never a node address) is not flagged.
  t.apply({{"/state/web.toml",
            service("web", kVip, 80, backend(kBackend1, ", node = \"testbed\""))}});
  EXPECT_EQ(t.backend_for(40001, "192.168.1.77"), kBackend1);
  std::map<std::uint16_t, std::uint32_t> flags_by_client_port;
  for (const auto& [k, v] : t.ct_entries())
    if (v.type == SL_CT_TYPE_NAT_REV)
      flags_by_client_port[ntohs(k.addr_a[0] == inet_addr(kBackend1) ? k.port_b : k.port_a)] =
          v.flags;
  EXPECT_TRUE(flags_by_client_port.at(40000) & SL_CT_F_NODE_ADDR);
  EXPECT_FALSE(flags_by_client_port.at(40001) & SL_CT_F_NODE_ADDR);

  // The backend answers on its veth: reverse NAT, then routed to the client's
  // neighbour out of np0 (Ethernet addresses written, TTL decremented).
  t.bed.load_entry(SL_ROLE_WORKLOAD);
  Packet synack = tcp(kBackend1, "192.168.1.77", 8080, 40000, kTcpSyn | kTcpAck);
  RunResult r = t.run(synack, TC_ACT_REDIRECT);
  EXPECT_EQ(r.reason, SL_R_REDIRECTED) << reason_name(r.reason);
  EXPECT_EQ(t.bed.context().redirect_ifindex, ns.np0);
  EXPECT_EQ(ip4(r.out, 14 + 12), inet_addr("192.168.1.10"));
  EXPECT_EQ(port_at(r.out, synack.l4_off), 30080);
  EXPECT_EQ(r.out[14 + 8], synack.bytes[14 + 8] - 1);
  EXPECT_TRUE(checksums_ok(r.out));
  EXPECT_EQ(Bytes(r.out.begin(), r.out.begin() + 12),
            (Bytes{0x02, 0, 0, 0, 0, 0x77, 0x02, 0, 0, 0, 0, 0x10}));

  // So is the backend's ICMP error about the client's packet: its source is
  // the node's address after the translation.
  Packet quoted = tcp("192.168.1.77", kBackend1, 40000, 8080, kTcpAck);
  r = t.run(icmp_error(kBackend1, "192.168.1.77", quoted), TC_ACT_REDIRECT);
  EXPECT_EQ(t.bed.context().redirect_ifindex, ns.np0);
  EXPECT_TRUE(icmp_error_is(r.out, "192.168.1.10", "192.168.1.77", "192.168.1.77", 40000,
                            "192.168.1.10", 30080));

  // The cluster IP flow's reply is only reverse-NATed, for the kernel to forward.
  Packet other = tcp(kBackend1, "192.168.1.77", 8080, 40001, kTcpSyn | kTcpAck);
  r = t.run(other, TC_ACT_OK);
  EXPECT_EQ(ip4(r.out, 14 + 12), inet_addr(kVip));
  EXPECT_EQ(r.out[14 + 8], other.bytes[14 + 8]);
}

// With conntrack's fast path (its default), a NAT flow's first packet is
// DNATed and handed on; from the backend's answer on, the nat stage rewrites
// each packet from the conntrack entry and redirects it itself.
TEST(Nat, FastPathRewritesAndRedirectsFromTheAnswerOn) {
  NodeAddressNetns ns;
  Bed t("", /*fast_path=*/true);
  t.apply({{"/state/web.toml",
            service("web", kVip, 80, backend(kBackend1, ", node = \"testbed\""))}});
  Packet syn = tcp("192.168.1.77", kVip, 40000, 80, kTcpSyn);
  RunResult r = t.run(syn, TC_ACT_OK);
  EXPECT_EQ(ip4(r.out, 14 + 16), inet_addr(kBackend1));
  EXPECT_EQ(r.out[14 + 8], syn.bytes[14 + 8]) << "the first packet is the kernel's to forward";

  Packet synack = tcp(kBackend1, "192.168.1.77", 8080, 40000, kTcpSyn | kTcpAck);
  r = t.run(synack, TC_ACT_REDIRECT);
  EXPECT_EQ(r.reason, SL_R_REDIRECTED) << reason_name(r.reason);
  EXPECT_EQ(ip4(r.out, 14 + 12), inet_addr(kVip));
  EXPECT_EQ(port_at(r.out, synack.l4_off), 80);
  EXPECT_EQ(r.out[14 + 8], synack.bytes[14 + 8] - 1);
  EXPECT_TRUE(checksums_ok(r.out));

  // A retransmitted SYN is a first packet again.
  r = t.run(syn, TC_ACT_OK);
  EXPECT_EQ(ip4(r.out, 14 + 16), inet_addr(kBackend1));
}

TEST(Nat, TerminatingBackendGetsNoNewFlowsButKeepsItsOwn) {
  Bed t;
  t.apply({{"/state/web.toml", service("web", kVip, 80, backend(kBackend1) + backend(kBackend2))}});
  // Find a flow that landed on backend 1.
  std::uint16_t on1 = 0;
  for (std::uint16_t sport = 30000; sport < 30100 && !on1; ++sport)
    if (t.backend_for(sport) == kBackend1) on1 = sport;
  ASSERT_NE(on1, 0);
  t.apply({{"/state/web.toml", service("web", kVip, 80,
                                       backend(kBackend1, ", terminating = true") +
                                           backend(kBackend2))}});
  for (std::uint16_t sport = 31000; sport < 31040; ++sport)
    EXPECT_EQ(t.backend_for(sport), kBackend2);
  // The existing flow continues to its backend.
  RunResult r = t.run(tcp(kClient, kVip, on1, 80, kTcpAck));
  EXPECT_EQ(ip4(r.out, 14 + 16), inet_addr(kBackend1));

  // Once that flow is closed, a new connection from the same client port is a
  // new flow: it does not go to the terminating backend.
  t.run(tcp(kClient, kVip, on1, 80, kTcpFin | kTcpAck));
  t.run(tcp(kBackend1, kClient, 8080, on1, kTcpFin | kTcpAck));
  EXPECT_EQ(t.backend_for(on1), kBackend2);
  r = t.run(tcp(kBackend2, kClient, 8080, on1, kTcpSyn | kTcpAck));
  EXPECT_EQ(ip4(r.out, 14 + 12), inet_addr(kVip));  // its reply is reverse-NATed

  std::string out;
  ASSERT_EQ(t.cli({"nat", "dump"}, {}, out), 0) << out;
  EXPECT_NE(out.find("10.96.0.10 port 80 proto 6 id 1 count 1 local 0"), std::string::npos) << out;
  EXPECT_NE(out.find("\t1:0\t 10.65.1.3:8080"), std::string::npos) << out;
  EXPECT_NE(out.find("\t1:1\t 10.65.0.2:8080 terminating"), std::string::npos) << out;
  ASSERT_EQ(t.cli({"nat", "dump"}, {"--group-by-service"}, out, true), 0) << out;
  EXPECT_NE(out.find("\"service\": \"default/web:80/tcp\""), std::string::npos) << out;
}

TEST(Nat, ReconcileChangesOnlyTheChangedService) {
  Bed t;
  t.apply({{"/state/a.toml", service("a", "10.96.0.1", 80, backend(kBackend1))},
           {"/state/b.toml", service("b", "10.96.0.2", 80, backend(kBackend2))}},
          {}, true);
  ASSERT_EQ(t.frontends().size(), 2u);
  ASSERT_EQ(t.backends().size(), 2u);
  // Mark b's backend entry behind the plugin's back: a reconcile that
  // rewrote it would erase the mark.
  std::uint32_t b_id = 0;
  for (const auto& [k, v] : t.frontends())
    if (k.addr[0] == inet_addr("10.96.0.2")) b_id = v.id;
  ASSERT_NE(b_id, 0u);
  int fd = bpf_obj_get((t.bed.map_pin_dir() + "/" NAT_MAP_BACKENDS).c_str());
  ASSERT_GE(fd, 0);
  nat_be_key bk{b_id, 0};
  nat_be_value marked{};
  ASSERT_EQ(bpf_map_lookup_elem(fd, &bk, &marked), 0);
  marked.port = htons(1);
  ASSERT_EQ(bpf_map_update_elem(fd, &bk, &marked, BPF_ANY), 0);

  // a gains a backend; b is in an untouched file.
  t.apply({{"/state/a.toml", service("a", "10.96.0.1", 80, backend(kBackend1) + backend(kBackend3))}});
  EXPECT_EQ(t.backends().size(), 3u);
  nat_be_value now{};
  ASSERT_EQ(bpf_map_lookup_elem(fd, &bk, &now), 0);
  EXPECT_EQ(ntohs(now.port), 1) << "b's entry was rewritten";
  for (const auto& [k, v] : t.frontends())
    if (k.addr[0] == inet_addr("10.96.0.1")) {
      EXPECT_EQ(v.count, 2u);
    }

  // Rewriting b's file with the same content changes nothing either.
  t.apply({{"/state/b.toml", service("b", "10.96.0.2", 80, backend(kBackend2))}});
  ASSERT_EQ(bpf_map_lookup_elem(fd, &bk, &now), 0);
  EXPECT_EQ(ntohs(now.port), 1);
  close(fd);

  // A removed file takes its services with it.
  t.apply({}, {"/state/a.toml"});
  auto fes = t.frontends();
  ASSERT_EQ(fes.size(), 1u);
  EXPECT_EQ(fes[0].first.addr[0], inet_addr("10.96.0.2"));
  EXPECT_EQ(t.backends().size(), 1u);
  RunResult r = t.run(tcp(kClient, "10.96.0.1", 40000, 80));
  EXPECT_EQ(ip4(r.out, 14 + 16), inet_addr("10.96.0.1"));  // no longer a service
}

TEST(Nat, ARestartKeepsServiceIdsAndRemovesWhatIsGone) {
  Bed t;
  t.apply({{"/state/a.toml", service("a", "10.96.0.1", 80, backend(kBackend1))},
           {"/state/b.toml", service("b", "10.96.0.2", 80, backend(kBackend2))},
           {"/state/c.toml", service("c", "10.96.0.3", 80, backend(kBackend3))}},
          {}, true);
  std::map<std::uint32_t, std::uint32_t> id_of;  // frontend address -> id
  for (const auto& [k, v] : t.frontends()) id_of[k.addr[0]] = v.id;
  ASSERT_EQ(id_of.size(), 3u);

  // A second instance of the plugin on the same pins, as a restarted sluiced:
  // its first full reconcile lists the files in another order and lacks a.
  PluginUnderTest again = t.bed.load_plugin(NAT_PLUGIN, "[plugins.nat]\n");
  sluice::ResourceChange change;
  change.full = true;
  change.upserted.push_back({"/state/c.toml", service("c", "10.96.0.3", 80, backend(kBackend3))});
  change.upserted.push_back({"/state/b.toml", service("b", "10.96.0.2", 80, backend(kBackend2))});
  again.plugin().reconcile(change);
  auto fes = t.frontends();
  ASSERT_EQ(fes.size(), 2u);  // a's frontend was swept
  for (const auto& [k, v] : fes) EXPECT_EQ(v.id, id_of[k.addr[0]]) << "renumbered";
  auto bes = t.backends();
  ASSERT_EQ(bes.size(), 2u);
  for (const auto& [k, v] : bes)
    EXPECT_EQ(k.id, v.addr[0] == inet_addr(kBackend2) ? id_of[inet_addr("10.96.0.2")]
                                                      : id_of[inet_addr("10.96.0.3")]);
  auto names = t.dump<std::uint32_t, nat_service_name>(NAT_MAP_SERVICES);
  EXPECT_EQ(names.size(), 2u);
}

TEST(Nat, BadFileIsRejectedWholeWithItsPosition) {
  Bed t;
  t.apply({{"/state/a.toml", service("a", "10.96.0.1", 80, backend(kBackend1))}});
  std::string before = snapshot(t);
  // A valid change of a plus a broken second service in the same file.
  std::string text = service("a", "10.96.0.1", 80, backend(kBackend1) + backend(kBackend2)) +
                     "\n[[service]]\nname = \"bad\"\ncluster_ip = \"10.96.0.300\"\n"
                     "ports = [{ port = 80 }]\n";
  try {
    t.apply({{"/state/a.toml", text}});
    FAIL() << "no error";
  } catch (const sluice::ConfigError& e) {
    EXPECT_EQ(e.file, "/state/a.toml");
    EXPECT_EQ(e.line, 10u);  // cluster_ip of the second [[service]]
    EXPECT_EQ(e.key, "service[1].cluster_ip");
    EXPECT_NE(std::string(e.what()).find("10.96.0.300"), std::string::npos) << e.what();
  }
  EXPECT_EQ(snapshot(t), before);

  // Conflicts between files are errors too, and change nothing.
  try {
    t.apply({{"/state/c.toml", service("c", "10.96.0.1", 80, backend(kBackend3))}});
    FAIL() << "no error";
  } catch (const sluice::ConfigError& e) {
    EXPECT_EQ(e.file, "/state/c.toml");
    EXPECT_NE(std::string(e.what()).find("also a frontend of default/a"), std::string::npos)
        << e.what();
  }
  EXPECT_EQ(snapshot(t), before);

  // More backends than the map holds: refused before anything is written.
  std::string many;
  for (int i = 0; i < 263000; ++i)
    many += "{ ip = \"10." + std::to_string(100 + i / 65536) + "." +
            std::to_string((i / 256) % 256) + "." + std::to_string(i % 256) + "\" },";
  try {
    t.apply({{"/state/big.toml", service("big", "10.96.0.9", 80, many)}});
    FAIL() << "no error";
  } catch (const sluice::ConfigError& e) {
    EXPECT_EQ(e.file, "/state/big.toml");
    EXPECT_EQ(e.line, 1u);
    EXPECT_NE(std::string(e.what()).find("the maps hold 65536, 262144 and 65536"), std::string::npos)
        << e.what();
  }
  EXPECT_EQ(snapshot(t), before);

  // Unknown keys are refused with their position.
  try {
    t.apply({{"/state/d.toml", "[[service]]\nname = \"d\"\ncluster_ip = \"10.96.0.4\"\n"
                               "ports = [{ port = 80, protocl = \"udp\" }]\n"}});
    FAIL() << "no error";
  } catch (const sluice::ConfigError& e) {
    EXPECT_EQ(e.line, 4u);
    EXPECT_EQ(e.key, "service[0].ports[0].protocl");
  }
  EXPECT_EQ(snapshot(t), before);
}

struct Samples final : sluice::MetricsWriter {
  std::map<std::string, double> values;
  void counter(std::string_view name, std::string_view, const sluice::MetricLabels& labels,
               double value) override {
    add(name, labels, value);
  }
  void gauge(std::string_view name, std::string_view, const sluice::MetricLabels& labels,
             double value) override {
    add(name, labels, value);
  }
  void add(std::string_view name, const sluice::MetricLabels& labels, double value) {
    std::string key(name);
    for (const auto& [k, v] : labels) key += "," + k + "=" + v;
    values[key] = value;
  }
};

TEST(Nat, TheExampleFileIsValidAndMetricsCountIt) {
  Bed t;
  std::ifstream in(NAT_EXAMPLE);
  std::stringstream text;
  text << in.rdbuf();
  ASSERT_FALSE(text.str().empty());
  t.apply({{NAT_EXAMPLE, text.str()}}, {}, true);
  // web: 2 ports x (cluster IP, external IP) + 1 node port; kube-dns: 2; sessions: 1;
  // ingress: cluster IP + load-balancer IP; diameter: 1; api (named target port): 1.
  EXPECT_EQ(t.frontends().size(), 12u);
  bool named_resolved = false;  // api's "http-api" -> its endpoint's 8088
  for (const auto& [k, v] : t.backends()) named_resolved = named_resolved || ntohs(v.port) == 8088;
  EXPECT_TRUE(named_resolved);
  EXPECT_EQ((t.dump<nat_src_range_key, std::uint8_t>(NAT_MAP_SRC_RANGES).size()), 2u);
  Samples samples;
  t.nat.plugin().write_metrics(samples);
  EXPECT_EQ(samples.values["sluice_nat_services"], 6);
  EXPECT_EQ(samples.values["sluice_nat_backends,state=ready"], 2 * 2 + 2 * 1 + 2 + 1 + 1 + 1);
  EXPECT_EQ(samples.values["sluice_nat_backends,state=terminating"], 2);
  EXPECT_EQ(samples.values["sluice_nat_backends,state=not_ready"], 2);

  std::string out;
  ASSERT_EQ(t.cli({"nat", "dump"}, {"--group-by-service"}, out), 0) << out;
  EXPECT_NE(out.find("service shop/web:http id "), std::string::npos) << out;
  EXPECT_NE(out.find("* port 30080 proto 6"), std::string::npos) << out;
  t.apply({}, {NAT_EXAMPLE});
  EXPECT_TRUE(t.frontends().empty());
  EXPECT_TRUE(t.backends().empty());
  samples.values.clear();
  t.nat.plugin().write_metrics(samples);
  EXPECT_EQ(samples.values["sluice_nat_services"], 0);
}

}  // namespace

// Hairpin: a backend reaching itself through its service. Its packets come
// back to it from the hairpin address (not from itself, which its kernel
// would drop as a martian) and leave straight back out of the interface
// they came in by; its replies become the service's again.
TEST(Nat, HairpinIsSourceNatedAndReflected) {
  Bed t;
  t.apply({{"/state/web.toml", service("web", kVip, 80, backend(kBackend1))}});
  constexpr const char* kHairpin = "169.254.42.1";  // the default hairpin_snat_ipv4

  Packet syn = tcp(kBackend1, kVip, 41000, 80);
  RunResult r = t.run(syn, TC_ACT_REDIRECT);
  EXPECT_EQ(ip4(r.out, 14 + 12), inet_addr(kHairpin));
  EXPECT_EQ(port_at(r.out, syn.l4_off), 41000);
  EXPECT_EQ(ip4(r.out, 14 + 16), inet_addr(kBackend1));
  EXPECT_EQ(port_at(r.out, syn.l4_off + 2), 8080);
  EXPECT_TRUE(checksums_ok(r.out));
  // Back to the sender: the Ethernet addresses are swapped.
  EXPECT_TRUE(std::equal(r.out.begin(), r.out.begin() + 6, syn.bytes.begin() + 6));
  EXPECT_TRUE(std::equal(r.out.begin() + 6, r.out.begin() + 12, syn.bytes.begin()));
  bool svc_self = false;
  for (const auto& [k, v] : t.ct_entries())
    if (v.type == SL_CT_TYPE_NAT_REV) {
      svc_self = v.flags & SL_CT_F_SVC_SELF;
      EXPECT_EQ(v.orig_src[0], inet_addr(kBackend1));
      EXPECT_EQ(ntohs(v.orig_sport), 41000);
    }
  EXPECT_TRUE(svc_self);

  // The backend's answer to the hairpin address: from the service, to its
  // own client socket.
  Packet synack = tcp(kBackend1, kHairpin, 8080, 41000, kTcpSyn | kTcpAck);
  r = t.run(synack, TC_ACT_REDIRECT);
  EXPECT_EQ(ip4(r.out, 14 + 12), inet_addr(kVip));
  EXPECT_EQ(port_at(r.out, synack.l4_off), 80);
  EXPECT_EQ(ip4(r.out, 14 + 16), inet_addr(kBackend1));
  EXPECT_EQ(port_at(r.out, synack.l4_off + 2), 41000);
  EXPECT_TRUE(checksums_ok(r.out));

  // The client's next packet: both rewrites again, from the entries.
  Packet ack = tcp(kBackend1, kVip, 41000, 80, kTcpAck);
  r = t.run(ack, TC_ACT_REDIRECT);
  EXPECT_EQ(ip4(r.out, 14 + 12), inet_addr(kHairpin));
  EXPECT_EQ(ip4(r.out, 14 + 16), inet_addr(kBackend1));
  EXPECT_EQ(port_at(r.out, ack.l4_off + 2), 8080);
  EXPECT_TRUE(checksums_ok(r.out));

  // The backend's ICMP error about the hairpin packet (UDP port unreachable,
  // say) goes back to the same workload as its client: from the service,
  // about its packet to the service.
  Packet quoted = tcp(kHairpin, kBackend1, 41000, 8080, kTcpAck);
  r = t.run(icmp_error(kBackend1, kHairpin, quoted), TC_ACT_REDIRECT);
  EXPECT_TRUE(icmp_error_is(r.out, kVip, kBackend1, kBackend1, 41000, kVip, 80));

  // Another client of the same service is not source-NATed.
  r = t.run(tcp(kClient, kVip, 41001, 80));
  EXPECT_EQ(ip4(r.out, 14 + 12), inet_addr(kClient));
}

TEST(Nat, HairpinSourceNatCanBeTurnedOff) {
  Bed t("hairpin_snat_ipv4 = \"\"\n");
  t.apply({{"/state/web.toml", service("web", kVip, 80, backend(kBackend1))}});
  RunResult r = t.run(tcp(kBackend1, kVip, 41000, 80));
  EXPECT_EQ(ip4(r.out, 14 + 12), inet_addr(kBackend1));
  EXPECT_EQ(ip4(r.out, 14 + 16), inet_addr(kBackend1));
}

TEST(Nat, ConfigErrorsArePositioned) {
  Testbed bed;
  PluginUnderTest ct = bed.load_plugin(CONNTRACK_PLUGIN, "[plugins.conntrack]\nworkload_source_check = false\n");
  auto error_of = [&](const std::string& text) {
    auto e = bed.config_error(NAT_PLUGIN, text);
    if (!e) ADD_FAILURE() << "no error for:\n" << text;
    return e.value_or(sluice::ConfigError("", 0, 0, "", ""));
  };
  auto e = error_of("[plugins.nat]\n\nhairpin_snat_ipv4 = \"fd00::1\"\n");
  EXPECT_EQ(e.line, 3u);
  EXPECT_EQ(e.key, "plugins.nat.hairpin_snat_ipv4");
  EXPECT_NE(std::string(e.what()).find("not an IPv4 address"), std::string::npos) << e.what();
  e = error_of("[plugins.nat]\nno_backend = \"ignore\"\n");
  EXPECT_EQ(e.line, 2u);
  EXPECT_EQ(e.key, "plugins.nat.no_backend");
}

TEST(Nat, InternalTrafficPolicyLocalUsesOnlyLocalBackends) {
  Bed t;
  t.apply({{"/state/web.toml",
            service("web", kVip, 80,
                    backend(kBackend1, ", node = \"other\"") +
                        backend(kBackend2, ", node = \"testbed\""),
                    "external_ips = [\"192.0.2.10\"]\ninternal_traffic_policy = \"local\"\n")},
           {"/state/remote.toml",
            service("remote", "10.96.0.20", 80, backend(kBackend3, ", node = \"other\""),
                    "internal_traffic_policy = \"local\"\n")}});
  for (std::uint16_t sport = 30000; sport < 30030; ++sport)
    EXPECT_EQ(t.backend_for(sport), kBackend2);
  // No local backend: refused, as kube-proxy drops it.
  RunResult r = t.run(tcp(kClient, "10.96.0.20", 30000, 80), TC_ACT_REDIRECT);
  EXPECT_EQ(r.reason, SL_R_NO_BACKEND);
  // External traffic (to the external IP) still uses every backend (the
  // remote one source-NATed to the node and sent on by the stage).
  t.bed.load_entry(SL_ROLE_DATA);
  std::set<std::string> chosen;
  in_routed_netns([&] {
    for (std::uint16_t sport = 30000; sport < 30060; ++sport) {
      RunResult r = t.bed.run(tcp("198.51.100.7", "192.0.2.10", sport, 80));
      in_addr a{ip4(r.out, 14 + 16)};
      chosen.insert(inet_ntoa(a));
    }
  });
  EXPECT_EQ(chosen.size(), 2u);
}

TEST(Nat, LoadBalancerSourceRangesAdmitOnlyTheirClients) {
  Bed t;
  t.apply({{"/state/lb.toml",
            service("lb", kVip, 80, backend(kBackend1, ", node = \"testbed\""),
                    "load_balancer_ips = [\"192.0.2.50\"]\n"
                    "load_balancer_source_ranges = [\"198.51.100.0/24\", \"203.0.113.7\"]\n")}});
  t.bed.load_entry(SL_ROLE_DATA);
  EXPECT_EQ(t.backend_for(30000, "198.51.100.7", "192.0.2.50"), kBackend1);
  EXPECT_EQ(t.backend_for(30001, "203.0.113.7", "192.0.2.50"), kBackend1);
  RunResult r = t.run(tcp("203.0.113.8", "192.0.2.50", 30002, 80), TC_ACT_SHOT);
  EXPECT_EQ(r.reason, SL_R_LB_SOURCE_RANGE);
  // The cluster IP is not limited.
  EXPECT_EQ(t.backend_for(30003, "203.0.113.8"), kBackend1);
  std::string out;
  t.cli({"nat", "dump"}, {}, out);
  EXPECT_NE(out.find("source-ranges"), std::string::npos) << out;

  // Ranges follow edits: the /24 goes, its clients are refused.
  t.apply({{"/state/lb.toml",
            service("lb", kVip, 80, backend(kBackend1, ", node = \"testbed\""),
                    "load_balancer_ips = [\"192.0.2.50\"]\n"
                    "load_balancer_source_ranges = [\"203.0.113.7/32\"]\n")}});
  r = t.run(tcp("198.51.100.7", "192.0.2.50", 30004, 80), TC_ACT_SHOT);
  EXPECT_EQ(r.reason, SL_R_LB_SOURCE_RANGE);
  EXPECT_EQ((t.dump<nat_src_range_key, std::uint8_t>(NAT_MAP_SRC_RANGES).size()), 1u);
  // ...and go with their service.
  t.apply({}, {"/state/lb.toml"});
  EXPECT_TRUE((t.dump<nat_src_range_key, std::uint8_t>(NAT_MAP_SRC_RANGES).empty()));
}

TEST(Nat, SctpServiceIsDnatedWithoutTouchingItsPorts) {
  Bed t;
  t.apply({{"/state/sctp.toml",
            "[[service]]\nname = \"sig\"\ncluster_ip = \"10.96.0.40\"\n"
            "ports = [{ port = 3868, protocol = \"sctp\" }]\n"
            "backends = [{ ip = \"10.65.0.2\" }]\n"}});
  auto sctp = [](const char* src, const char* dst, std::uint16_t sport, std::uint16_t dport) {
    // Common header (ports, verification tag, CRC32c) + one chunk's worth.
    Bytes l4 = {static_cast<std::uint8_t>(sport >> 8), static_cast<std::uint8_t>(sport),
                static_cast<std::uint8_t>(dport >> 8), static_cast<std::uint8_t>(dport),
                0x11, 0x22, 0x33, 0x44, 0xde, 0xad, 0xbe, 0xef};
    l4.resize(l4.size() + 20, 0x01);
    return PacketBuilder().ipv4(src, dst).ip_proto(IPPROTO_SCTP).payload(l4).build();
  };
  const std::size_t l4 = 14 + 20;
  Packet init = sctp(kClient, "10.96.0.40", 5000, 3868);
  RunResult r = t.run(init);
  EXPECT_EQ(ip4(r.out, 14 + 16), inet_addr(kBackend1));
  EXPECT_EQ(port_at(r.out, l4 + 2), 3868);
  // Everything after the IP header is untouched: the CRC32c stays valid.
  ASSERT_EQ(r.out.size(), init.bytes.size());
  EXPECT_TRUE(std::equal(r.out.begin() + l4, r.out.end(), init.bytes.begin() + l4));
  EXPECT_TRUE(csum_ok(&r.out[14], 20));
  // The reply is reverse-NATed.
  Packet reply = sctp(kBackend1, kClient, 3868, 5000);
  r = t.run(reply);
  EXPECT_EQ(ip4(r.out, 14 + 12), inet_addr("10.96.0.40"));
  EXPECT_TRUE(csum_ok(&r.out[14], 20));
}

TEST(Nat, ServiceKeyErrorsArePositioned) {
  Bed t;
  auto error_of = [&](const std::string& text) {
    try {
      t.apply({{"/state/x.toml", text}});
    } catch (const sluice::ConfigError& e) {
      return std::make_pair(e.line, std::string(e.key) + ": " + e.what());
    }
    ADD_FAILURE() << "no error for:\n" << text;
    return std::make_pair(0u, std::string());
  };
  auto [line, what] = error_of(
      "[[service]]\nname = \"s\"\ncluster_ip = \"10.96.0.40\"\n"
      "ports = [{ port = 3868, protocol = \"sctp\", target_port = 3869 }]\n");
  EXPECT_EQ(line, 4u);
  EXPECT_NE(what.find("target_port"), std::string::npos) << what;
  EXPECT_NE(what.find("CRC32c"), std::string::npos) << what;
  std::tie(line, what) = error_of(
      "[[service]]\nname = \"s\"\ncluster_ip = \"10.96.0.40\"\nports = [{ port = 80 }]\n"
      "load_balancer_ips = [\"192.0.2.1\"]\n"
      "load_balancer_source_ranges = [\"10.0.0.0/33\"]\n");
  EXPECT_EQ(line, 6u);
  EXPECT_NE(what.find("0-32"), std::string::npos) << what;
  std::tie(line, what) = error_of(
      "[[service]]\nname = \"s\"\ncluster_ip = \"10.96.0.40\"\nports = [{ port = 80 }]\n"
      "load_balancer_source_ranges = [\"10.0.0.0/8\"]\n");
  EXPECT_EQ(line, 5u);
  EXPECT_NE(what.find("has none"), std::string::npos) << what;
  std::tie(line, what) = error_of(
      "[[service]]\nname = \"s\"\ncluster_ip = \"10.96.0.40\"\nports = [{ port = 80 }]\n"
      "internal_traffic_policy = \"nearby\"\n");
  EXPECT_EQ(line, 5u);
  EXPECT_NE(what.find("cluster"), std::string::npos) << what;
}

// A node port reached from outside and given a backend on another node: the
// source becomes the node's address towards it (the backend's reply must
// come back here to be reverse-NATed), the port only if the tuple is taken,
// and the stage routes the packet itself, both ways.
TEST(Nat, ExternalClientOfARemoteBackendIsSourceNatedToTheNode) {
  Bed t;
  t.apply({{"/state/np.toml",
            "[[service]]\nname = \"np\"\ncluster_ip = \"10.96.0.30\"\n"
            "ports = [{ port = 80, target_port = 8080, node_port = 30080 }]\n"
            "backends = [{ ip = \"10.65.0.2\", node = \"other\" }]\n"}});
  t.bed.load_entry(SL_ROLE_DATA);
  const char* kNode = "10.64.0.1";
  in_routed_netns([&] {
    Packet syn = tcp("198.51.100.7", "192.168.1.10", 40000, 30080);
    RunResult r = t.run(syn, TC_ACT_REDIRECT);
    EXPECT_EQ(ip4(r.out, 14 + 16), inet_addr(kBackend1));
    EXPECT_EQ(port_at(r.out, syn.l4_off + 2), 8080);
    EXPECT_EQ(ip4(r.out, 14 + 12), inet_addr(kNode));
    EXPECT_EQ(port_at(r.out, syn.l4_off), 40000);  // free: kept
    EXPECT_TRUE(checksums_ok(r.out));
    bool src_nat = false;
    for (const auto& [k, v] : t.ct_entries())
      if (v.type == SL_CT_TYPE_NAT_REV) {
        src_nat = v.flags & SL_CT_F_SRC_NAT;
        EXPECT_EQ(v.orig_src[0], inet_addr("198.51.100.7"));
      }
    EXPECT_TRUE(src_nat);

    // A second client with the same source port: the node's tuple is
    // taken, so it gets another port.
    r = t.run(tcp("198.51.100.8", "192.168.1.10", 40000, 30080), TC_ACT_REDIRECT);
    EXPECT_EQ(ip4(r.out, 14 + 12), inet_addr(kNode));
    std::uint16_t second_port = port_at(r.out, syn.l4_off);
    EXPECT_NE(second_port, 40000);
    EXPECT_GE(second_port, 32768);

    // The backend answers the node; the reply leaves from the node port to
    // the first client.
    Packet synack = tcp(kBackend1, kNode, 8080, 40000, kTcpSyn | kTcpAck);
    r = t.run(synack, TC_ACT_REDIRECT);
    EXPECT_EQ(ip4(r.out, 14 + 12), inet_addr("192.168.1.10"));
    EXPECT_EQ(port_at(r.out, synack.l4_off), 30080);
    EXPECT_EQ(ip4(r.out, 14 + 16), inet_addr("198.51.100.7"));
    EXPECT_EQ(port_at(r.out, synack.l4_off + 2), 40000);
    EXPECT_TRUE(checksums_ok(r.out));
    // ...and to the second one on its own port.
    r = t.run(tcp(kBackend1, kNode, 8080, second_port, kTcpSyn | kTcpAck), TC_ACT_REDIRECT);
    EXPECT_EQ(ip4(r.out, 14 + 16), inet_addr("198.51.100.8"));
    EXPECT_EQ(port_at(r.out, synack.l4_off + 2), 40000);

    // The first client's next packet: both rewrites from the entries.
    r = t.run(tcp("198.51.100.7", "192.168.1.10", 40000, 30080, kTcpAck), TC_ACT_REDIRECT);
    EXPECT_EQ(ip4(r.out, 14 + 12), inet_addr(kNode));
    EXPECT_EQ(ip4(r.out, 14 + 16), inet_addr(kBackend1));
    EXPECT_TRUE(checksums_ok(r.out));

    // An ICMP error from the backend to the node about the second client's
    // packet reaches that client, about its own packet to the node port, and
    // is routed by the stage (the kernel would take it for the node).
    Packet quoted = tcp(kNode, kBackend1, second_port, 8080, kTcpAck);
    r = t.run(icmp_error(kBackend1, kNode, quoted), TC_ACT_REDIRECT);
    EXPECT_TRUE(icmp_error_is(r.out, "192.168.1.10", "198.51.100.8", "198.51.100.8", 40000,
                              "192.168.1.10", 30080));
    // One from the client's side about the node port's reply reaches the
    // backend, about its packet to the node.
    Packet reply = tcp("192.168.1.10", "198.51.100.7", 30080, 40000, kTcpAck);
    r = t.run(icmp_error("198.51.100.7", "192.168.1.10", reply), TC_ACT_REDIRECT);
    EXPECT_TRUE(icmp_error_is(r.out, kNode, kBackend1, kBackend1, 8080, kNode, 40000));
  });
  // Without a route to the backend a new flow cannot be sent on: dropped.
  // An established one's next packet is dropped as no-route (the stage
  // routes these flows itself; the kernel would drop it silently).
  in_routed_netns(
      [&] {
        RunResult r = t.run(tcp("198.51.100.9", "192.168.1.10", 40001, 30080), TC_ACT_SHOT);
        // The service has its backend: what is missing is the way to it.
        EXPECT_EQ(r.reason, SL_R_NO_ROUTE) << reason_name(r.reason);
        EXPECT_EQ(t.bed.counter(SL_R_NO_BACKEND).packets, 0u);
        r = t.run(tcp("198.51.100.7", "192.168.1.10", 40000, 30080, kTcpAck), TC_ACT_SHOT);
        EXPECT_EQ(r.reason, SL_R_NO_ROUTE) << reason_name(r.reason);
      },
      false);
}

// Drops a source NAT to the node can meet, each counted under its own cause:
// the node's tuples towards the backend all taken, a conntrack table without
// room for the NAT entries, an SCTP port that would have to change.
const char* kRemoteNodePort =
    "[[service]]\nname = \"np\"\ncluster_ip = \"10.96.0.30\"\n"
    "ports = [{ port = 80, target_port = 8080, node_port = 30080 }]\n"
    "backends = [{ ip = \"10.65.0.2\", node = \"other\" }]\n";

TEST(Nat, SourceNatWithEverySourcePortTakenDropsAsSnatPortsExhausted) {
  Bed t;
  t.apply({{"/state/np.toml", kRemoteNodePort}});
  t.bed.load_entry(SL_ROLE_DATA);
  // Every tuple node:port -> backend:8080 the port search may pick is
  // another flow's (the client's own port 40000 lies in the range too).
  sl_ct_value taken{};
  taken.type = SL_CT_TYPE_NORMAL;
  __be32 node[4] = {inet_addr("10.64.0.1")}, be[4] = {inet_addr(kBackend1)};
  for (std::uint32_t port = 32768; port < 32768 + 28232; ++port) {
    sl_ct_key key{};
    sl_ct_key_fill(&key, 4, IPPROTO_TCP, node, be, htons(static_cast<std::uint16_t>(port)),
                   htons(8080));
    ASSERT_EQ(bpf_map_update_elem(t.table, &key, &taken, BPF_ANY), 0) << port;
  }
  in_routed_netns([&] {
    RunResult r = t.run(tcp("198.51.100.7", "192.168.1.10", 40000, 30080), TC_ACT_SHOT);
    EXPECT_EQ(r.reason, SL_R_SNAT_PORTS_EXHAUSTED) << reason_name(r.reason);
    EXPECT_EQ(t.bed.counter(SL_R_SNAT_PORTS_EXHAUSTED).packets, 1u);
    EXPECT_EQ(t.bed.counter(SL_R_CT_TABLE_FULL).packets, 0u);
  });
}

TEST(Nat, AConntrackTableWithoutRoomForTheNatEntriesDropsAsTableFull) {
  // One entry: the flow conntrack opens for the SYN fills it.
  Bed t("", false, "table_size = 1\n");
  t.apply({{"/state/a.toml", service("a", kVip, 80, backend(kBackend1))}});
  RunResult r = t.run(tcp(kClient, kVip, 40000, 80), TC_ACT_SHOT);
  EXPECT_EQ(r.reason, SL_R_CT_TABLE_FULL) << reason_name(r.reason);
  EXPECT_EQ(t.bed.counter(SL_R_CT_TABLE_FULL).packets, 1u);
}

TEST(Nat, SourceNatThatWouldChangeAnSctpPortDropsAsSctpPortChange) {
  Bed t;
  t.apply({{"/state/sctp.toml",
            "[[service]]\nname = \"sig\"\ncluster_ip = \"10.96.0.40\"\n"
            "external_ips = [\"192.168.1.10\"]\n"
            "ports = [{ port = 3868, protocol = \"sctp\" }]\n"
            "backends = [{ ip = \"10.65.0.2\", node = \"other\" }]\n"}});
  t.bed.load_entry(SL_ROLE_DATA);
  auto sctp = [](const char* src, std::uint16_t sport) {
    Bytes l4 = {static_cast<std::uint8_t>(sport >> 8), static_cast<std::uint8_t>(sport), 0x0f,
                0x1c, 0x11, 0x22, 0x33, 0x44, 0xde, 0xad, 0xbe, 0xef};
    l4.resize(l4.size() + 20, 0x01);
    return PacketBuilder().ipv4(src, "192.168.1.10").ip_proto(IPPROTO_SCTP).payload(l4).build();
  };
  in_routed_netns([&] {
    // The first client keeps its port on the node's address...
    RunResult r = t.run(sctp("198.51.100.7", 5000), TC_ACT_REDIRECT);
    EXPECT_EQ(ip4(r.out, 14 + 12), inet_addr("10.64.0.1"));
    // ...a second one with the same port would need another: SCTP cannot.
    r = t.run(sctp("198.51.100.8", 5000), TC_ACT_SHOT);
    EXPECT_EQ(r.reason, SL_R_NAT_SCTP_PORT) << reason_name(r.reason);
    EXPECT_EQ(t.bed.counter(SL_R_NAT_SCTP_PORT).packets, 1u);
    // Nothing of the refused flow stays behind: one pair, the first's.
    std::size_t nat_rev = 0;
    for (const auto& [k, v] : t.ct_entries()) nat_rev += v.type == SL_CT_TYPE_NAT_REV;
    EXPECT_EQ(nat_rev, 1u);
  });
}

// target_port given as a name: each backend's port comes from the
// [[endpoint]] with its address; endpoint edits move it, a backend without
// that name gets no flows, and two endpoints cannot share an address.
TEST(Nat, NamedTargetPortsComeFromEndpoints) {
  Bed t;
  auto endpoint = [](const char* name, const char* ip, int port) {
    return "[[endpoint]]\nname = \"" + std::string(name) + "\"\ninterface = \"cali-" + name +
           "\"\nips = [\"" + ip + "\"]\nlabels = { app = \"web\" }\nports = [{ name = \"http\", "
           "port = " + std::to_string(port) + " }]\n";
  };
  t.apply({{"/state/web.toml",
            "[[service]]\nname = \"web\"\ncluster_ip = \"10.96.0.10\"\n"
            "ports = [{ port = 80, target_port = \"http\" }]\n"
            "backends = [{ ip = \"10.65.0.2\" }]\n"},
           {"/state/pod-a.toml", endpoint("a", kBackend1, 8081)}});
  Packet syn = tcp(kClient, kVip, 40000, 80);
  RunResult r = t.run(syn);
  EXPECT_EQ(ip4(r.out, 14 + 16), inet_addr(kBackend1));
  EXPECT_EQ(port_at(r.out, syn.l4_off + 2), 8081);

  // The endpoint's port changes: new flows follow, the service file untouched.
  t.apply({{"/state/pod-a.toml", endpoint("a", kBackend1, 9090)}});
  r = t.run(tcp(kClient, kVip, 40001, 80));
  EXPECT_EQ(port_at(r.out, syn.l4_off + 2), 9090);

  // Without its endpoint the backend has no port of that name: no backend.
  t.apply({}, {"/state/pod-a.toml"});
  r = t.run(tcp(kClient, kVip, 40002, 80), TC_ACT_REDIRECT);
  EXPECT_EQ(r.reason, SL_R_NO_BACKEND);
  std::string out;
  t.cli({"nat", "dump"}, {}, out);
  EXPECT_NE(out.find("not-ready"), std::string::npos) << out;

  // Two endpoints with one address: refused with both positions.
  t.apply({{"/state/pod-a.toml", endpoint("a", kBackend1, 8081)}});
  try {
    t.apply({{"/state/pod-b.toml", endpoint("b", kBackend1, 8082)}});
    FAIL() << "no error";
  } catch (const sluice::ConfigError& e) {
    EXPECT_EQ(e.file, "/state/pod-b.toml");
    EXPECT_NE(std::string(e.what()).find("also an address of endpoint default/a"),
              std::string::npos)
        << e.what();
  }
  r = t.run(tcp(kClient, kVip, 40003, 80));
  EXPECT_EQ(port_at(r.out, syn.l4_off + 2), 8081);
}

// ---- one big file, block by block --------------------------------------------------

namespace {

// Service s<i> of a big file: cluster IP 10.96.1.<i>, backends 10.66.<i>.<1..count>.
std::string numbered_service(int i, int backend_count = 1, const std::string& name = "") {
  std::string backends;
  for (int b = 1; b <= backend_count; ++b)
    backends += "{ ip = \"10.66." + std::to_string(i) + "." + std::to_string(b) + "\" },";
  return service(name.empty() ? "s" + std::to_string(i) : name,
                 "10.96.1." + std::to_string(i), 80, backends) +
         "\n";
}

std::string numbered_services(int count) {
  std::string text;
  for (int i = 0; i < count; ++i) text += numbered_service(i);
  return text;
}

// The line `needle` is on in `text` (1-based).
std::uint32_t line_of(const std::string& text, const std::string& needle) {
  std::size_t at = text.find(needle);
  EXPECT_NE(at, std::string::npos) << needle;
  return static_cast<std::uint32_t>(std::count(text.begin(), text.begin() + at, '\n') + 1);
}

// cluster IP -> the frontend's value.
std::map<std::string, nat_fe_value> frontends_by_ip(const Bed& t) {
  std::map<std::string, nat_fe_value> out;
  for (const auto& [k, v] : t.frontends()) {
    in_addr a{k.addr[0]};
    out[inet_ntoa(a)] = v;
  }
  return out;
}

// Sets port 1 on every backend entry behind the plugin's back: an entry the
// next reconcile rewrites loses the mark.
void mark_backends(const Bed& t) {
  int fd = bpf_obj_get((t.bed.map_pin_dir() + "/" NAT_MAP_BACKENDS).c_str());
  ASSERT_GE(fd, 0);
  for (auto [k, v] : t.backends()) {
    v.port = htons(1);
    ASSERT_EQ(bpf_map_update_elem(fd, &k, &v, BPF_ANY), 0);
  }
  close(fd);
}

// service id -> how many of its backend entries still carry the mark.
std::map<std::uint32_t, int> marks_by_id(const Bed& t) {
  std::map<std::uint32_t, int> out;
  for (const auto& [k, v] : t.backends()) out[k.id] += ntohs(v.port) == 1;
  return out;
}

sluice::ConfigError error_of(Bed& t, const std::string& path, const std::string& text) {
  try {
    t.apply({{path, text}});
  } catch (const sluice::ConfigError& e) {
    return e;
  }
  ADD_FAILURE() << "no error for " << path;
  return sluice::ConfigError("", 0, 0, "", "");
}

}  // namespace

TEST(Nat, OneChangedServiceOfABigFileRewritesOnlyItsEntries) {
  Bed t;
  const std::string path = "/state/big.toml";
  t.apply({{path, numbered_services(6)}}, {}, true);
  auto before = frontends_by_ip(t);
  ASSERT_EQ(before.size(), 6u);
  mark_backends(t);

  // s3 gains a backend, in the middle of the file.
  std::string text;
  for (int i = 0; i < 6; ++i) text += numbered_service(i, i == 3 ? 2 : 1);
  t.apply({{path, text}});
  auto after = frontends_by_ip(t);
  ASSERT_EQ(after.size(), 6u);
  auto marks = marks_by_id(t);
  for (int i = 0; i < 6; ++i) {
    std::string vip = "10.96.1." + std::to_string(i);
    EXPECT_EQ(after[vip].id, before[vip].id) << vip << " was renumbered";
    if (i == 3) {
      EXPECT_EQ(after[vip].count, 2u);
      EXPECT_EQ(marks[after[vip].id], 1) << "the new backend is written, the kept one is not";
    } else {
      EXPECT_EQ(std::memcmp(&after[vip], &before[vip], sizeof(nat_fe_value)), 0) << vip;
      EXPECT_EQ(marks[after[vip].id], 1) << vip << "'s backend entry was rewritten";
    }
  }
  EXPECT_EQ(t.backends().size(), 7u);
  EXPECT_EQ(t.backend_for(40000, kClient, "10.96.1.5"), "10.66.5.1");
}

TEST(Nat, AMovedBlockIsReportedAtItsPlaceInTheWholeFile) {
  Bed t;
  const std::string path = "/state/big.toml";
  const std::string v1 = numbered_services(3);
  t.apply({{path, v1}});
  // A service with extra lines is added first: s0..s2 move down by its
  // lines and by one index, and are not parsed again.
  const std::string added = "# the new one\n\n" + numbered_service(9) + "\n\n";
  const std::string v2 = added + v1;
  t.apply({{path, v2}});
  std::string before = snapshot(t);

  // Another block first, declaring s2 again: the kept block of s2 (moved
  // again) is the second declaration in the file, blamed as a whole-file
  // parse would read it: its new line and key path.
  const std::string v3 = numbered_service(7, 1, "s2") + v2;
  sluice::ConfigError e = error_of(t, path, v3);
  EXPECT_EQ(e.file, path);
  EXPECT_EQ(e.line, line_of(v3, "[[service]]\nname = \"s2\"\nnamespace = \"default\"\ncluster_ip = \"10.96.1.2\""));
  EXPECT_EQ(e.key, "service[4]");
  EXPECT_NE(std::string(e.what()).find("already declared in " + path + ":1"), std::string::npos)
      << e.what();
  EXPECT_EQ(snapshot(t), before);

  // Refused: s1's block is back at its v2 place. A new block at the end
  // declaring s1 again names that place.
  const std::string v4 = v2 + numbered_service(8, 1, "s1");
  e = error_of(t, path, v4);
  EXPECT_EQ(e.line, line_of(v4, "name = \"s1\"\nnamespace = \"default\"\ncluster_ip = \"10.96.1.8\"") - 1);
  EXPECT_EQ(e.key, "service[4]");
  EXPECT_NE(std::string(e.what()).find(path + ":" + std::to_string(line_of(v2, "name = \"s1\"") - 1)),
            std::string::npos)
      << e.what();
  EXPECT_EQ(snapshot(t), before);

  // A frontend collision with a moved block names its new place too.
  const std::string v5 = "\n\n" + service("thief", "10.96.1.2", 80, backend(kBackend1)) + v2;
  e = error_of(t, path, v5);
  EXPECT_EQ(e.line, 3u);
  EXPECT_EQ(e.key, "service[0]");
  EXPECT_NE(std::string(e.what()).find("also a frontend of default/s2 (" + path + ":" +
                                       std::to_string(line_of(v5, "name = \"s2\"") - 1) + ")"),
            std::string::npos)
      << e.what();
  EXPECT_EQ(snapshot(t), before);

  // A kept block's own errors are found when the file is read from scratch:
  // the same positions as from the blocks.
  Bed fresh;
  e = error_of(fresh, path, v3);
  EXPECT_EQ(e.line, line_of(v3, "[[service]]\nname = \"s2\"\nnamespace = \"default\"\ncluster_ip = \"10.96.1.2\""));
  EXPECT_EQ(e.key, "service[4]");
}

TEST(Nat, ADuplicateOfAKeptBlockInTheSameFileIsRefusedWithBothPositions) {
  Bed t;
  const std::string path = "/state/big.toml";
  const std::string v1 = numbered_services(4);
  t.apply({{path, v1}});
  std::string before = snapshot(t);
  // The new block (valid on its own) repeats s1 after it.
  const std::string v2 = v1 + numbered_service(20, 1, "s1");
  sluice::ConfigError e = error_of(t, path, v2);
  EXPECT_EQ(e.file, path);
  EXPECT_EQ(e.line, line_of(v2, "cluster_ip = \"10.96.1.20\"") - 3);  // its [[service]]
  EXPECT_EQ(e.key, "service[4]");
  EXPECT_NE(std::string(e.what()).find("service default/s1 is already declared in " + path + ":" +
                                       std::to_string(line_of(v1, "name = \"s1\"") - 1)),
            std::string::npos)
      << e.what();
  EXPECT_EQ(snapshot(t), before) << "something was applied";
  EXPECT_EQ(frontends_by_ip(t).count("10.96.1.20"), 0u);
}

TEST(Nat, ARemovedBlockTakesOnlyItsServiceAndTheOthersMoveUp) {
  Bed t;
  const std::string path = "/state/big.toml";
  t.apply({{path, numbered_services(4)}});
  auto before = frontends_by_ip(t);
  mark_backends(t);
  const std::string v2 = numbered_service(0) + numbered_service(2) + numbered_service(3);
  t.apply({{path, v2}});
  auto after = frontends_by_ip(t);
  EXPECT_EQ(after.size(), 3u);
  EXPECT_EQ(after.count("10.96.1.1"), 0u);
  auto marks = marks_by_id(t);
  EXPECT_EQ(marks.size(), 3u);
  for (const char* vip : {"10.96.1.0", "10.96.1.2", "10.96.1.3"}) {
    EXPECT_EQ(after[vip].id, before[vip].id);
    EXPECT_EQ(marks[after[vip].id], 1) << vip << " was rewritten";
  }
  // s3 moved up a block: another file declaring it names its new place.
  sluice::ConfigError e = error_of(t, "/state/other.toml", numbered_service(30, 1, "s3"));
  EXPECT_NE(std::string(e.what()).find(path + ":" + std::to_string(line_of(v2, "name = \"s3\"") - 1)),
            std::string::npos)
      << e.what();
}

TEST(Nat, AFileThatCannotBeSplitIsReadWhole) {
  Bed t;
  const std::string path = "/state/whole.toml";
  // Content before the first [[service]]: not splittable.
  const std::string v1 = "schema = 1\n" + numbered_services(3);
  t.apply({{path, v1}});
  EXPECT_EQ(frontends_by_ip(t).size(), 3u);
  std::string text = "schema = 1\n";
  for (int i = 0; i < 3; ++i) text += numbered_service(i, i == 2 ? 2 : 1);
  t.apply({{path, text}});
  EXPECT_EQ(frontends_by_ip(t)["10.96.1.2"].count, 2u);
  // Errors keep their positions.
  std::string bad = text;
  bad.replace(bad.find("10.96.1.1\""), 9, "10.96.1.x");
  sluice::ConfigError e = error_of(t, path, bad);
  EXPECT_EQ(e.line, line_of(bad, "10.96.1.x"));
  EXPECT_EQ(e.key, "service[1].cluster_ip");

  // A header-like line inside a multi-line string: the cut sees a service
  // that is none (its block even parses alone: the string's end is a
  // comment there); the block before it does not, so the whole file decides.
  const std::string note =
      "[[note]]\ntext = '''\n[[service]]\nname = \"fake\"\ncluster_ip = \"10.96.9.9\"\n"
      "ports = [{ port = 80 }]\n# '''\n";
  const std::string v2 = numbered_service(0) + note + numbered_service(1);
  t.apply({{path, v2}}, {}, true);
  auto fes = frontends_by_ip(t);
  EXPECT_EQ(fes.size(), 2u);
  EXPECT_EQ(fes.count("10.96.9.9"), 0u) << "a string was read as a service";
  // And back to a file that splits: same services, same ids.
  t.apply({{path, numbered_service(0) + numbered_service(1)}});
  auto again = frontends_by_ip(t);
  ASSERT_EQ(again.size(), 2u);
  EXPECT_EQ(again["10.96.1.0"].id, fes["10.96.1.0"].id);
}

TEST(Nat, AnEndpointBlockRecomputesTheServicesUsingNamesInTheSameFile) {
  Bed t;
  const std::string path = "/state/mixed.toml";
  auto endpoint = [](int port) {
    return "[[endpoint]]\nname = \"pod\"\nips = [\"" + std::string(kBackend1) +
           "\"]\nports = [{ name = \"http\", port = " + std::to_string(port) + " }]\n\n";
  };
  const std::string named =
      "[[service]]\nname = \"web\"\ncluster_ip = \"10.96.0.10\"\n"
      "ports = [{ port = 80, target_port = \"http\" }]\nbackends = [{ ip = \"10.65.0.2\" }]\n\n";
  t.apply({{path, numbered_services(3) + named + endpoint(8081)}});
  Packet syn = tcp(kClient, kVip, 40000, 80);
  EXPECT_EQ(port_at(t.run(syn).out, syn.l4_off + 2), 8081);
  t.apply({{path, numbered_services(3) + named + endpoint(9090)}});
  EXPECT_EQ(port_at(t.run(tcp(kClient, kVip, 40001, 80)).out, syn.l4_off + 2), 9090);
}

// All or nothing across plugins (sluice/resources.hpp): nat prepares a
// change without touching its maps; a change another plugin refused is
// discarded and leaves nat as it was, and a bad endpoint refuses the
// whole change.
TEST(Nat, APreparedChangeWritesNothingUntilCommittedAndADiscardLeavesNoTrace) {
  Bed t;
  auto endpoint = [](const char* ip, int port) {
    return "[[endpoint]]\nname = \"pod\"\nips = [\"" + std::string(ip) +
           "\"]\nports = [{ name = \"http\", port = " + std::to_string(port) + " }]\n";
  };
  const std::string web = "[[service]]\nname = \"web\"\ncluster_ip = \"10.96.0.10\"\n"
                          "ports = [{ port = 80, target_port = \"http\" }]\n"
                          "backends = [{ ip = \"10.65.0.2\" }]\n";
  t.apply({{"/state/web.toml", web}, {"/state/pod.toml", endpoint(kBackend1, 8081)}});
  const std::string before = snapshot(t);

  auto change_of = [](std::vector<std::pair<std::string, std::string>> files) {
    sluice::ResourceChange change;
    for (auto& [path, text] : files) change.upserted.push_back({path, text});
    return change;
  };
  // A valid change (a new service, the endpoint's port) prepared, then
  // discarded as when another consumer refuses it.
  sluice::ResourceChange valid =
      change_of({{"/state/db.toml", service("db", "10.96.0.20", 5432, backend(kBackend2))},
                 {"/state/pod.toml", endpoint(kBackend1, 9090)}});
  {
    std::unique_ptr<sluice::PreparedChange> prepared = t.nat.plugin().prepare(valid);
    ASSERT_TRUE(prepared) << "nat does not prepare changes";
    EXPECT_EQ(snapshot(t), before) << "preparing wrote the maps";
  }
  EXPECT_EQ(snapshot(t), before) << "a discarded change left entries";
  Packet syn = tcp(kClient, kVip, 40000, 80);
  EXPECT_EQ(port_at(t.run(syn).out, syn.l4_off + 2), 8081);

  // A bad endpoint refuses the change whole, with its position.
  sluice::ResourceChange bad =
      change_of({{"/state/db.toml", service("db", "10.96.0.20", 5432, backend(kBackend2))},
                 {"/state/pod.toml", "[[endpoint]]\nname = \"pod\"\nips = [\"10.65.0.999\"]\n"}});
  try {
    t.nat.plugin().prepare(bad);
    FAIL() << "a bad endpoint was accepted";
  } catch (const sluice::ConfigError& e) {
    EXPECT_EQ(e.file, "/state/pod.toml");
    EXPECT_EQ(e.line, 3u);
    EXPECT_EQ(e.key, "endpoint[0].ips");
  }
  EXPECT_EQ(snapshot(t), before);

  // Committed, the same valid change applies, with the ids a discard gave back.
  t.nat.plugin().prepare(valid)->commit();
  EXPECT_NE(snapshot(t), before);
  EXPECT_EQ(port_at(t.run(tcp(kClient, kVip, 40001, 80)).out, syn.l4_off + 2), 9090);
  std::set<std::uint32_t> ids;
  for (const auto& [k, v] : t.frontends()) ids.insert(v.id);
  EXPECT_EQ(ids, (std::set<std::uint32_t>{1, 2})) << "a discarded change kept an id";
}
