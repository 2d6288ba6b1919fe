// The packet builder itself (no kernel): layout, lengths and checksums.
#include <gtest/gtest.h>

#include <sluice/testing/packet.hpp>

using namespace sluice::testing;

namespace {

std::uint16_t be16(const Bytes& b, std::size_t at) {
  return static_cast<std::uint16_t>(b[at] << 8 | b[at + 1]);
}

std::uint32_t pseudo(const Bytes& b, std::size_t src, std::size_t addr_len, std::uint8_t proto,
                     std::size_t len) {
  std::uint32_t sum = csum_add(0, &b[src], addr_len * 2);
  return sum + proto + static_cast<std::uint32_t>(len);
}

TEST(PacketBuilder, Ipv4UdpLayoutAndChecksums) {
  Packet p = PacketBuilder().ipv4("10.0.0.1", "10.0.0.2").udp(1234, 53).payload(22).build();
  const Bytes& b = p.bytes;
  ASSERT_EQ(p.size(), 14u + 20 + 8 + 22);
  EXPECT_EQ(p.l3_off, 14u);
  EXPECT_EQ(p.l4_off, 34u);
  EXPECT_EQ(be16(b, 12), 0x0800);
  EXPECT_EQ(b[14], 0x45);
  EXPECT_EQ(be16(b, 16), 20 + 8 + 22);
  EXPECT_EQ(b[23], 17);
  EXPECT_TRUE(csum_ok(&b[14], 20)) << "IPv4 header checksum";
  EXPECT_EQ(be16(b, 34), 1234);
  EXPECT_EQ(be16(b, 38), 30);
  EXPECT_TRUE(csum_ok(&b[34], 30, pseudo(b, 26, 4, 17, 30))) << "UDP checksum";
}

TEST(PacketBuilder, Ipv4TcpWithOptions) {
  Packet p = PacketBuilder().ipv4("1.2.3.4", "5.6.7.8").ip_options({0x94, 4, 0, 0})
                 .tcp(80, 8080, kTcpSyn).tcp_options({2, 4, 5, 0xb4, 1}).payload(7).build();
  const Bytes& b = p.bytes;
  EXPECT_EQ(b[14], 0x46);
  EXPECT_EQ(p.l4_off, 14u + 24);
  EXPECT_TRUE(csum_ok(&b[14], 24));
  EXPECT_EQ(b[p.l4_off + 12] >> 4, 7) << "20 + 8 bytes of options";
  EXPECT_EQ(b[p.l4_off + 13], kTcpSyn);
  std::size_t l4_len = b.size() - p.l4_off;
  EXPECT_EQ(l4_len, 28u + 7);
  EXPECT_TRUE(csum_ok(&b[p.l4_off], l4_len, pseudo(b, 26, 4, 6, l4_len)));
}

TEST(PacketBuilder, Icmp) {
  Packet p = PacketBuilder().ipv4("10.0.0.1", "10.0.0.2").icmp(8, 0, 0x1234, 9).payload(5).build();
  EXPECT_EQ(p.bytes[p.l4_off], 8);
  EXPECT_EQ(be16(p.bytes, p.l4_off + 4), 0x1234);
  EXPECT_TRUE(csum_ok(&p.bytes[p.l4_off], 13));
}

TEST(PacketBuilder, Ipv6ExtensionsAndIcmpv6) {
  Packet p = PacketBuilder().ipv6("fe80::1", "ff02::1").ipv6_ext(kIpv6HopOpts).ipv6_ext(kIpv6DstOpts, 16)
                 .icmpv6(128, 0, 1, 2).payload(4).build();
  const Bytes& b = p.bytes;
  EXPECT_EQ(be16(b, 12), 0x86dd);
  EXPECT_EQ(b[14] >> 4, 6);
  EXPECT_EQ(be16(b, 18), 8 + 16 + 8 + 4);
  EXPECT_EQ(b[20], kIpv6HopOpts);
  EXPECT_EQ(b[54], kIpv6DstOpts);
  EXPECT_EQ(b[55], 0);
  EXPECT_EQ(b[62], 58);
  EXPECT_EQ(b[63], 1);
  EXPECT_EQ(p.l4_off, 14u + 40 + 24);
  EXPECT_TRUE(csum_ok(&b[p.l4_off], 12, pseudo(b, 22, 16, 58, 12)));
}

TEST(PacketBuilder, Fragments) {
  Packet v4 = PacketBuilder().ipv4("10.0.0.1", "10.0.0.2").fragment(1480, true).udp(1, 2)
                  .payload(8).build();
  EXPECT_EQ(be16(v4.bytes, 20), 0x2000 | 185);
  EXPECT_EQ(v4.l4_off, 0u) << "a later fragment has no L4 header";
  EXPECT_EQ(v4.size(), 14u + 20 + 8);
  Packet v6 = PacketBuilder().ipv6("::1", "::2").fragment(8, false).udp(1, 2).payload(8).build();
  EXPECT_EQ(v6.bytes[20], kIpv6Fragment);
  EXPECT_EQ(v6.bytes[54], 17);
  EXPECT_EQ(be16(v6.bytes, 56), 8);
}

TEST(PacketBuilder, CorruptionKnobs) {
  auto base = [] { return PacketBuilder().ipv4("10.0.0.1", "10.0.0.2").tcp(1, 2); };
  EXPECT_EQ(base().truncate(20).build().size(), 20u);
  EXPECT_EQ(base().bad_ihl(3).build().bytes[14], 0x43);
  EXPECT_EQ(be16(base().ip_len(999).build().bytes, 16), 999);
  EXPECT_EQ(base().ip_version(6).build().bytes[14] >> 4, 6);
  EXPECT_EQ(base().tcp_doff(2).build().bytes[34 + 12], 0x20);
  EXPECT_EQ(be16(PacketBuilder().ipv6("::1", "::2").udp(1, 2).ip_len(7).build().bytes, 18), 7);
  Packet bare = PacketBuilder().no_eth().ipv4("8.0.0.1", "10.0.0.2").udp(1, 2).build();
  EXPECT_EQ(bare.l3_off, 0u);
  EXPECT_EQ(bare.bytes[0], 0x45);
  EXPECT_EQ(PacketBuilder().arp().build().size(), 14u + 28);
}

}  // namespace
