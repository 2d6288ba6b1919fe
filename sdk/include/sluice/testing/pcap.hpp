// Classic pcap files (not pcapng) for test fixtures: read the packets of a
// capture (`tcpdump -w`, Wireshark "pcap" format) to replay them through a
// stage, write what a stage produced to look at it in Wireshark.
//
//   for (const auto& rec : sluice::testing::read_pcap("fixtures/dns.pcap"))
//     bed.run(rec.bytes);
//   sluice::testing::write_pcap("out.pcap", {result.out});
//
// Both byte orders and both timestamp resolutions (micro, nano) are read;
// files are written little-endian, microseconds. Link types: Ethernet (1) and
// raw IP (101, for L3 devices). Header-only; errors throw std::runtime_error
// naming the file.
#pragma once

#include <cstdint>
#include <cstring>
#include <fstream>
#include <iterator>
#include <stdexcept>
#include <string>
#include <vector>

#include <sluice/testing/packet.hpp>

namespace sluice::testing {

inline constexpr std::uint32_t kPcapLinkEthernet = 1;
inline constexpr std::uint32_t kPcapLinkRaw = 101;

struct PcapRecord {
  std::uint64_t ts_ns = 0;     // capture time
  std::uint32_t orig_len = 0;  // length on the wire (>= bytes.size() if snapped)
  Bytes bytes;
};

struct PcapFile {
  std::uint32_t linktype = kPcapLinkEthernet;
  std::uint32_t snaplen = 65535;
  std::vector<PcapRecord> records;
};

namespace detail {
inline std::uint32_t pcap_u32(const std::uint8_t* p, bool swap) {
  std::uint32_t v;
  std::memcpy(&v, p, 4);
  return swap ? __builtin_bswap32(v) : v;
}
}  // namespace detail

inline PcapFile read_pcap_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("pcap: cannot open " + path);
  Bytes data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (data.size() < 24) throw std::runtime_error("pcap: " + path + ": too short for a pcap header");
  std::uint32_t magic;
  std::memcpy(&magic, data.data(), 4);
  bool swap = false, nano = false;
  switch (magic) {
    case 0xa1b2c3d4: break;
    case 0xd4c3b2a1: swap = true; break;
    case 0xa1b23c4d: nano = true; break;
    case 0x4d3cb2a1: swap = nano = true; break;
    case 0x0a0d0d0a:
      throw std::runtime_error("pcap: " + path + " is pcapng; convert it with "
                               "`editcap -F pcap in.pcapng out.pcap`");
    default: throw std::runtime_error("pcap: " + path + " is not a pcap file (bad magic)");
  }
  PcapFile file;
  file.snaplen = detail::pcap_u32(&data[16], swap);
  file.linktype = detail::pcap_u32(&data[20], swap) & 0x0fffffff;
  std::size_t off = 24;
  while (off < data.size()) {
    if (data.size() - off < 16)
      throw std::runtime_error("pcap: " + path + ": truncated record header at offset " +
                               std::to_string(off));
    PcapRecord rec;
    std::uint64_t sec = detail::pcap_u32(&data[off], swap);
    std::uint64_t frac = detail::pcap_u32(&data[off + 4], swap);
    std::uint32_t incl = detail::pcap_u32(&data[off + 8], swap);
    rec.orig_len = detail::pcap_u32(&data[off + 12], swap);
    rec.ts_ns = sec * 1000000000ull + (nano ? frac : frac * 1000ull);
    off += 16;
    if (data.size() - off < incl)
      throw std::runtime_error("pcap: " + path + ": truncated packet at offset " +
                               std::to_string(off));
    rec.bytes.assign(data.begin() + static_cast<std::ptrdiff_t>(off),
                     data.begin() + static_cast<std::ptrdiff_t>(off + incl));
    off += incl;
    file.records.push_back(std::move(rec));
  }
  return file;
}

// Just the packets.
inline std::vector<PcapRecord> read_pcap(const std::string& path) {
  return read_pcap_file(path).records;
}

inline void write_pcap_file(const std::string& path, const PcapFile& file) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) throw std::runtime_error("pcap: cannot create " + path);
  auto put32 = [&](std::uint32_t v) { out.write(reinterpret_cast<const char*>(&v), 4); };
  auto put16 = [&](std::uint16_t v) { out.write(reinterpret_cast<const char*>(&v), 2); };
  put32(0xa1b2c3d4);
  put16(2);
  put16(4);
  put32(0);  // thiszone
  put32(0);  // sigfigs
  put32(file.snaplen);
  put32(file.linktype);
  for (const auto& rec : file.records) {
    put32(static_cast<std::uint32_t>(rec.ts_ns / 1000000000ull));
    put32(static_cast<std::uint32_t>(rec.ts_ns % 1000000000ull / 1000ull));
    put32(static_cast<std::uint32_t>(rec.bytes.size()));
    put32(rec.orig_len ? rec.orig_len : static_cast<std::uint32_t>(rec.bytes.size()));
    out.write(reinterpret_cast<const char*>(rec.bytes.data()),
              static_cast<std::streamsize>(rec.bytes.size()));
  }
  if (!out) throw std::runtime_error("pcap: write to " + path + " failed");
}

// Packets one millisecond apart, Ethernet unless `linktype` says otherwise.
inline void write_pcap(const std::string& path, const std::vector<Bytes>& packets,
                       std::uint32_t linktype = kPcapLinkEthernet) {
  PcapFile file;
  file.linktype = linktype;
  std::uint64_t ts = 0;
  for (const auto& p : packets) {
    file.records.push_back({ts, static_cast<std::uint32_t>(p.size()), p});
    ts += 1000000;
  }
  write_pcap_file(path, file);
}

}  // namespace sluice::testing
