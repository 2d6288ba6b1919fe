// A fluent builder of test packets: Ethernet / ARP / IPv4 (+options,
// fragments) / IPv6 (+extension headers, fragments) / TCP / UDP / ICMP /
// ICMPv6 with correct checksums, plus knobs that corrupt the result the way
// the entry parser must cope with (truncation, bad IHL, bad lengths, bad
// version, short TCP data offset).
//
//   auto pkt = PacketBuilder().ipv4("10.0.0.1", "10.0.0.2").udp(1234, 53)
//                  .payload(18).build();
//
// Header-only, no kernel needed; namespace sluice::testing. Part of the
// installed SDK: #include <sluice/testing/packet.hpp>.
#pragma once

#include <arpa/inet.h>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace sluice::testing {

using Bytes = std::vector<std::uint8_t>;

inline constexpr std::uint8_t kTcpFin = 0x01, kTcpSyn = 0x02, kTcpRst = 0x04, kTcpPsh = 0x08,
                              kTcpAck = 0x10, kTcpUrg = 0x20;

// IPv6 extension header numbers (uapi names are macros in <netinet/in.h> too).
inline constexpr std::uint8_t kIpv6HopOpts = 0, kIpv6Routing = 43, kIpv6Fragment = 44,
                              kIpv6DstOpts = 60, kIpv6NoNext = 59;

// A built packet and where its headers start (offsets into `bytes`).
struct Packet {
  Bytes bytes;
  std::size_t l3_off = 0;
  std::size_t l4_off = 0;  // 0 when there is no L4 header
  std::size_t size() const { return bytes.size(); }
  const std::uint8_t* data() const { return bytes.data(); }
};

// RFC 1071 one's-complement sum, folded, not inverted.
inline std::uint32_t csum_add(std::uint32_t sum, const std::uint8_t* p, std::size_t n) {
  for (std::size_t i = 0; i + 1 < n; i += 2) sum += (std::uint32_t(p[i]) << 8) | p[i + 1];
  if (n & 1) sum += std::uint32_t(p[n - 1]) << 8;
  return sum;
}
inline std::uint16_t csum_fold(std::uint32_t sum) {
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<std::uint16_t>(~sum & 0xffff);
}
// True when a region holding its own checksum sums to zero (a valid one).
inline bool csum_ok(const std::uint8_t* p, std::size_t n, std::uint32_t seed = 0) {
  return csum_fold(csum_add(seed, p, n)) == 0;
}

class PacketBuilder {
 public:
  // ---- layer 2 -------------------------------------------------------------
  // On by default; no_eth() builds a bare IP packet (an L3 device's view).
  PacketBuilder& no_eth() { eth_ = false; return *this; }
  PacketBuilder& ethertype(std::uint16_t type) { ethertype_ = type; return *this; }
  // An ARP request (who-has `target` tell `sender`).
  PacketBuilder& arp(const std::string& sender = "10.0.0.1",
                     const std::string& target = "10.0.0.2") {
    l3_ = L3::arp;
    v4addr(sender, src_);
    v4addr(target, dst_);
    return *this;
  }

  // ---- layer 3 -------------------------------------------------------------
  PacketBuilder& ipv4(const std::string& src, const std::string& dst) {
    l3_ = L3::v4;
    v4addr(src, src_);
    v4addr(dst, dst_);
    return *this;
  }
  PacketBuilder& ipv6(const std::string& src, const std::string& dst) {
    l3_ = L3::v6;
    if (inet_pton(AF_INET6, src.c_str(), src_) != 1 || inet_pton(AF_INET6, dst.c_str(), dst_) != 1)
      throw std::invalid_argument("bad IPv6 address");
    return *this;
  }
  PacketBuilder& ttl(std::uint8_t ttl) { ttl_ = ttl; return *this; }
  // IPv4 options (padded with EOL to a multiple of 4 bytes).
  PacketBuilder& ip_options(Bytes options) { ip_options_ = std::move(options); return *this; }
  // IPv6 extension header (hop-by-hop, routing, destination options) of
  // `len` bytes (a multiple of 8, at least 8), in the order added.
  PacketBuilder& ipv6_ext(std::uint8_t type, std::size_t len = 8) {
    if (len < 8 || len % 8) throw std::invalid_argument("IPv6 extension length must be 8*n");
    exts_.push_back({type, len, 0, false});
    return *this;
  }
  // A fragment: `offset` in bytes (multiple of 8), `more` = MF. IPv4 sets
  // frag_off; IPv6 appends a fragment extension header. A non-zero offset
  // carries no L4 header (only payload).
  PacketBuilder& fragment(std::uint16_t offset, bool more) {
    if (offset % 8) throw std::invalid_argument("fragment offset must be a multiple of 8");
    frag_ = Frag{offset, more};
    return *this;
  }
  // Raw IP protocol with no header built for it (e.g. 47 GRE, 89 OSPF).
  PacketBuilder& ip_proto(std::uint8_t proto) { l4_ = L4::raw; proto_ = proto; return *this; }

  // ---- layer 4 -------------------------------------------------------------
  PacketBuilder& tcp(std::uint16_t sport, std::uint16_t dport, std::uint8_t flags = kTcpSyn,
                     std::uint32_t seq = 1000, std::uint32_t ack = 0) {
    l4_ = L4::tcp;
    proto_ = 6;
    sport_ = sport;
    dport_ = dport;
    tcp_flags_ = flags;
    seq_ = seq;
    ack_ = ack;
    return *this;
  }
  // TCP options (padded with EOL to a multiple of 4 bytes).
  PacketBuilder& tcp_options(Bytes options) { tcp_options_ = std::move(options); return *this; }
  PacketBuilder& udp(std::uint16_t sport, std::uint16_t dport) {
    l4_ = L4::udp;
    proto_ = 17;
    sport_ = sport;
    dport_ = dport;
    return *this;
  }
  // ICMP (IPv4) or ICMPv6, by the L3 chosen; echo by default.
  PacketBuilder& icmp(std::uint8_t type = 8, std::uint8_t code = 0, std::uint16_t id = 0x4242,
                      std::uint16_t seq = 1) {
    l4_ = L4::icmp;
    proto_ = 1;
    icmp_type_ = type;
    icmp_code_ = code;
    sport_ = id;
    dport_ = seq;
    return *this;
  }
  PacketBuilder& icmpv6(std::uint8_t type = 128, std::uint8_t code = 0, std::uint16_t id = 0x4242,
                        std::uint16_t seq = 1) {
    icmp(type, code, id, seq);
    l4_ = L4::icmpv6;
    proto_ = 58;
    return *this;
  }
  PacketBuilder& payload(std::size_t n, std::uint8_t fill = 0xab) {
    payload_.assign(n, fill);
    return *this;
  }
  PacketBuilder& payload(Bytes bytes) { payload_ = std::move(bytes); return *this; }

  // ---- corruption (applied after checksums, except where noted) ------------
  // Cut the finished packet to its first n bytes (lengths keep their values).
  PacketBuilder& truncate(std::size_t n) { truncate_ = n; return *this; }
  // IPv4 IHL field (the header is still built from ip_options()).
  PacketBuilder& bad_ihl(std::uint8_t ihl) { ihl_ = ihl; return *this; }
  // IPv4 tot_len / IPv6 payload_len field.
  PacketBuilder& ip_len(std::uint16_t len) { ip_len_ = len; return *this; }
  // The IP version nibble.
  PacketBuilder& ip_version(std::uint8_t v) { version_ = v; return *this; }
  // The TCP data offset field, in 32-bit words.
  PacketBuilder& tcp_doff(std::uint8_t doff) { doff_ = doff; return *this; }

  Packet build() const {
    Packet p;
    Bytes& b = p.bytes;
    if (eth_) {
      const std::uint8_t dmac[6] = {0x02, 0, 0, 0, 0, 0x02}, smac[6] = {0x02, 0, 0, 0, 0, 0x01};
      b.insert(b.end(), dmac, dmac + 6);
      b.insert(b.end(), smac, smac + 6);
      std::uint16_t type = ethertype_ ? *ethertype_
                           : l3_ == L3::v4 ? 0x0800
                           : l3_ == L3::v6 ? 0x86dd
                           : l3_ == L3::arp ? 0x0806 : 0x88b5;  // local experimental
      put16(b, type);
    }
    p.l3_off = b.size();
    if (l3_ == L3::none) return finish(p);
    if (l3_ == L3::arp) {
      put16(b, 1);       // Ethernet
      put16(b, 0x0800);  // IPv4
      b.push_back(6);
      b.push_back(4);
      put16(b, 1);  // request
      const std::uint8_t smac[6] = {0x02, 0, 0, 0, 0, 0x01};
      b.insert(b.end(), smac, smac + 6);
      b.insert(b.end(), src_, src_ + 4);
      b.insert(b.end(), 6, 0);
      b.insert(b.end(), dst_, dst_ + 4);
      return finish(p);
    }

    const bool later_frag = frag_ && frag_->offset != 0;
    Bytes l4 = build_l4(later_frag);  // header + payload, checksum filled below
    std::size_t l4_hdr_len = later_frag ? 0 : l4_header_len();

    if (l3_ == L3::v4) {
      Bytes opts = ip_options_;
      while (opts.size() % 4) opts.push_back(0);
      std::size_t hlen = 20 + opts.size();
      std::size_t l3 = b.size();
      b.push_back(static_cast<std::uint8_t>(((version_ ? *version_ : 4) << 4) |
                                            ((ihl_ ? *ihl_ : hlen / 4) & 0x0f)));
      b.push_back(0);
      put16(b, ip_len_ ? *ip_len_ : static_cast<std::uint16_t>(hlen + l4.size()));
      put16(b, 0x1234);
      std::uint16_t frag = 0;
      if (frag_) frag = static_cast<std::uint16_t>((frag_->more ? 0x2000 : 0) | (frag_->offset / 8));
      put16(b, frag);
      b.push_back(ttl_);
      b.push_back(proto_);
      put16(b, 0);
      b.insert(b.end(), src_, src_ + 4);
      b.insert(b.end(), dst_, dst_ + 4);
      b.insert(b.end(), opts.begin(), opts.end());
      std::uint16_t c = csum_fold(csum_add(0, &b[l3], hlen));
      b[l3 + 10] = c >> 8;
      b[l3 + 11] = c & 0xff;
      if (!later_frag) fill_l4_checksum(l4, pseudo_v4(l4.size()));
    } else {
      // Extension headers (fragment header last, as the spec orders it
      // before upper layers but after the others here).
      struct Ext { std::uint8_t type; std::size_t len; };
      std::vector<Ext> chain;
      for (const auto& e : exts_) chain.push_back({e.type, e.len});
      if (frag_) chain.push_back({kIpv6Fragment, 8});
      std::size_t ext_len = 0;
      for (const auto& e : chain) ext_len += e.len;
      std::size_t payload_len = ext_len + l4.size();
      b.push_back(static_cast<std::uint8_t>((version_ ? *version_ : 6) << 4));
      b.push_back(0);
      put16(b, 0);
      put16(b, ip_len_ ? *ip_len_ : static_cast<std::uint16_t>(payload_len));
      b.push_back(chain.empty() ? proto_ : chain.front().type);
      b.push_back(ttl_);
      b.insert(b.end(), src_, src_ + 16);
      b.insert(b.end(), dst_, dst_ + 16);
      for (std::size_t i = 0; i < chain.size(); ++i) {
        std::uint8_t next = i + 1 < chain.size() ? chain[i + 1].type : proto_;
        std::size_t start = b.size();
        b.resize(start + chain[i].len, 0);
        b[start] = next;
        if (chain[i].type == kIpv6Fragment) {
          std::uint16_t fo = static_cast<std::uint16_t>(frag_->offset | (frag_->more ? 1 : 0));
          b[start + 2] = fo >> 8;
          b[start + 3] = fo & 0xff;
          b[start + 4] = 0x12;  // identification
        } else {
          b[start + 1] = static_cast<std::uint8_t>(chain[i].len / 8 - 1);
          if (chain[i].type != kIpv6Routing) {
            b[start + 2] = 1;  // PadN over the rest
            b[start + 3] = static_cast<std::uint8_t>(chain[i].len - 4);
          }
        }
      }
      if (!later_frag) fill_l4_checksum(l4, pseudo_v6(l4.size()));
    }
    p.l4_off = (l4_ == L4::none || l4_ == L4::raw || later_frag) ? 0 : b.size();
    (void)l4_hdr_len;
    b.insert(b.end(), l4.begin(), l4.end());
    if (doff_ && p.l4_off) b[p.l4_off + 12] = static_cast<std::uint8_t>((*doff_ & 0x0f) << 4);
    return finish(p);
  }

 private:
  enum class L3 { none, arp, v4, v6 };
  enum class L4 { none, raw, tcp, udp, icmp, icmpv6 };
  struct Frag { std::uint16_t offset; bool more; };
  struct ExtSpec { std::uint8_t type; std::size_t len; std::uint16_t off; bool more; };

  static void put16(Bytes& b, std::uint16_t v) {
    b.push_back(v >> 8);
    b.push_back(v & 0xff);
  }
  static void put32(Bytes& b, std::uint32_t v) {
    put16(b, v >> 16);
    put16(b, v & 0xffff);
  }
  static void v4addr(const std::string& s, std::uint8_t* out) {
    if (inet_pton(AF_INET, s.c_str(), out) != 1) throw std::invalid_argument("bad IPv4 address " + s);
  }

  std::size_t l4_header_len() const {
    switch (l4_) {
      case L4::tcp: return 20 + ((tcp_options_.size() + 3) / 4) * 4;
      case L4::udp: return 8;
      case L4::icmp:
      case L4::icmpv6: return 8;
      default: return 0;
    }
  }

  Bytes build_l4(bool later_frag) const {
    Bytes l4;
    if (!later_frag) {
      switch (l4_) {
        case L4::tcp: {
          Bytes opts = tcp_options_;
          while (opts.size() % 4) opts.push_back(0);
          put16(l4, sport_);
          put16(l4, dport_);
          put32(l4, seq_);
          put32(l4, ack_);
          l4.push_back(static_cast<std::uint8_t>(((20 + opts.size()) / 4) << 4));
          l4.push_back(tcp_flags_);
          put16(l4, 65535);
          put16(l4, 0);  // checksum
          put16(l4, 0);  // urgent
          l4.insert(l4.end(), opts.begin(), opts.end());
          break;
        }
        case L4::udp:
          put16(l4, sport_);
          put16(l4, dport_);
          put16(l4, static_cast<std::uint16_t>(8 + payload_.size()));
          put16(l4, 0);
          break;
        case L4::icmp:
        case L4::icmpv6:
          l4.push_back(icmp_type_);
          l4.push_back(icmp_code_);
          put16(l4, 0);
          put16(l4, sport_);
          put16(l4, dport_);
          break;
        default: break;
      }
    }
    l4.insert(l4.end(), payload_.begin(), payload_.end());
    return l4;
  }

  std::uint32_t pseudo_v4(std::size_t len) const {
    std::uint32_t sum = csum_add(0, src_, 4);
    sum = csum_add(sum, dst_, 4);
    return sum + proto_ + static_cast<std::uint32_t>(len);
  }
  std::uint32_t pseudo_v6(std::size_t len) const {
    std::uint32_t sum = csum_add(0, src_, 16);
    sum = csum_add(sum, dst_, 16);
    return sum + proto_ + static_cast<std::uint32_t>(len);
  }

  void fill_l4_checksum(Bytes& l4, std::uint32_t pseudo) const {
    std::size_t at;
    std::uint32_t seed = pseudo;
    switch (l4_) {
      case L4::tcp: at = 16; break;
      case L4::udp: at = 6; break;
      case L4::icmp: at = 2; seed = 0; break;  // ICMPv4: no pseudo-header
      case L4::icmpv6: at = 2; break;
      default: return;
    }
    std::uint16_t c = csum_fold(csum_add(seed, l4.data(), l4.size()));
    if (l4_ == L4::udp && c == 0) c = 0xffff;
    l4[at] = c >> 8;
    l4[at + 1] = c & 0xff;
  }

  Packet finish(Packet& p) const {
    if (truncate_ && *truncate_ < p.bytes.size()) p.bytes.resize(*truncate_);
    return std::move(p);
  }

  bool eth_ = true;
  std::optional<std::uint16_t> ethertype_;
  L3 l3_ = L3::none;
  L4 l4_ = L4::none;
  std::uint8_t src_[16] = {}, dst_[16] = {};
  std::uint8_t ttl_ = 64;
  std::uint8_t proto_ = 59;  // "no next header"
  Bytes ip_options_;
  std::vector<ExtSpec> exts_;
  std::optional<Frag> frag_;
  std::uint16_t sport_ = 0, dport_ = 0;
  std::uint8_t tcp_flags_ = 0;
  std::uint32_t seq_ = 0, ack_ = 0;
  Bytes tcp_options_;
  std::uint8_t icmp_type_ = 0, icmp_code_ = 0;
  Bytes payload_;
  std::optional<std::size_t> truncate_;
  std::optional<std::uint8_t> ihl_;
  std::optional<std::uint16_t> ip_len_;
  std::optional<std::uint8_t> version_;
  std::optional<std::uint8_t> doff_;
};

}  // namespace sluice::testing
