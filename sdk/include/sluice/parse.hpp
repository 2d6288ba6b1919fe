// Text parsers for the values every plugin, the daemon and sluicectl read:
// IP addresses, CIDR prefixes, IP protocols, ports, port ranges and
// durations. Header-only and pure (no TOML, no positions): each returns the
// value or a message that quotes the input and says what is accepted, e.g.
//
//   '90x' is not a duration: use a whole number with ns, us, ms, s, m or h, e.g. '90s'
//
// config::Table (sluice/config.hpp) wraps them into positioned ConfigErrors
// (file, line, column, dotted key); sluicectl prints the message as is.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>

#include <array>
#include <charconv>
#include <chrono>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

namespace sluice {

// An IPv4 or IPv6 address, network byte order in `words` (IPv4: words[0]).
struct IpAddress {
  std::uint8_t family = 0;  // 4 or 6; 0: none
  std::array<std::uint32_t, 4> words{};
  bool operator==(const IpAddress&) const = default;
  auto operator<=>(const IpAddress&) const = default;
  int max_prefix_length() const { return family == 6 ? 128 : 32; }
};

// A CIDR prefix; the address has no bits set past `length`.
struct IpPrefix {
  IpAddress addr;
  std::uint8_t length = 0;
  bool operator==(const IpPrefix&) const = default;
};

// A port range, both ends included; a single port has first == last.
struct PortRange {
  std::uint16_t first = 0, last = 0;
  bool operator==(const PortRange&) const = default;
};

// A parsed value, or why the text is not one.
template <class T>
class Parsed {
 public:
  Parsed(T value) : value_(std::move(value)) {}  // NOLINT: implicit on purpose
  static Parsed failure(std::string why) {
    Parsed p;
    p.error_ = std::move(why);
    return p;
  }
  explicit operator bool() const { return value_.has_value(); }
  bool has_value() const { return value_.has_value(); }
  const T& operator*() const { return *value_; }
  const T* operator->() const { return &*value_; }
  const T& value() const { return value_.value(); }
  const std::optional<T>& optional() const { return value_; }
  // Empty when there is a value.
  const std::string& error() const { return error_; }

 private:
  Parsed() = default;
  std::optional<T> value_;
  std::string error_;
};

namespace parse {

inline std::string quoted(std::string_view text) { return "'" + std::string(text) + "'"; }

// The whole of `text` as an unsigned decimal number (no sign, no spaces),
// or nullopt (also on overflow).
template <class U>
std::optional<U> whole_number(std::string_view text) {
  U value{};
  if (text.empty() || text.front() < '0' || text.front() > '9') return std::nullopt;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return value;
}

// --- addresses and prefixes -------------------------------------------------

inline Parsed<IpAddress> ip_address(std::string_view text) {
  const std::string copy(text);  // inet_pton wants a terminated string
  IpAddress a;
  if (inet_pton(AF_INET, copy.c_str(), a.words.data()) == 1) {
    a.family = 4;
    return a;
  }
  a.words = {};
  if (inet_pton(AF_INET6, copy.c_str(), a.words.data()) == 1) {
    a.family = 6;
    return a;
  }
  return Parsed<IpAddress>::failure(quoted(text) + " is not an IPv4 or IPv6 address");
}

// "10.0.0.1", "fd00::1"; "" for an address of no family.
inline std::string ip_text(const IpAddress& a) {
  if (a.family != 4 && a.family != 6) return "";
  char text[INET6_ADDRSTRLEN] = "";
  inet_ntop(a.family == 6 ? AF_INET6 : AF_INET, a.words.data(), text, sizeof(text));
  return text;
}

inline std::string prefix_text(const IpPrefix& p) {
  return ip_text(p.addr) + "/" + std::to_string(p.length);
}

// `a` with every bit from `length` on cleared.
inline IpAddress network_of(IpAddress a, int length) {
  auto* bytes = reinterpret_cast<std::uint8_t*>(a.words.data());
  for (int bit = length; bit < a.max_prefix_length(); ++bit)
    bytes[bit / 8] &= static_cast<std::uint8_t>(~(0x80u >> (bit % 8)));
  return a;
}

// What a prefix with bits set past its length means.
enum class HostBits {
  refuse,  // an error naming the prefix meant: "did you mean 10.0.0.0/24?"
  clear,   // "10.1.2.3/8" is 10.0.0.0/8 (resources, as Kubernetes reads CIDRs)
};

// "10.0.0.0/8", "fd00::/64"; a bare address is a host prefix (/32, /128).
inline Parsed<IpPrefix> ip_prefix(std::string_view text, HostBits host_bits = HostBits::refuse) {
  const auto slash = text.find('/');
  auto a = ip_address(text.substr(0, slash));
  if (!a)
    return Parsed<IpPrefix>::failure(
        quoted(text) + " is not a CIDR prefix: write ADDRESS/LENGTH, e.g. 10.0.0.0/8 or fd00::/64");
  const int max = a->max_prefix_length();
  IpPrefix p{*a, static_cast<std::uint8_t>(max)};
  if (slash != std::string_view::npos) {
    auto length = whole_number<unsigned>(text.substr(slash + 1));
    if (!length || *length > static_cast<unsigned>(max))
      return Parsed<IpPrefix>::failure(quoted(text) + " is not a CIDR prefix: the length of an IPv" +
                                       std::to_string(a->family) + " prefix is 0-" +
                                       std::to_string(max));
    p.length = static_cast<std::uint8_t>(*length);
  }
  const IpAddress network = network_of(p.addr, p.length);
  if (network != p.addr && host_bits == HostBits::refuse)
    return Parsed<IpPrefix>::failure(quoted(text) + " has host bits set: did you mean " +
                                     prefix_text({network, p.length}) + "?");
  p.addr = network;
  return p;
}

// --- protocols ----------------------------------------------------------------

struct ProtocolName {
  const char* name;
  std::uint8_t number;
};
inline constexpr ProtocolName kProtocolNames[] = {
    {"tcp", IPPROTO_TCP},   {"udp", IPPROTO_UDP},       {"sctp", IPPROTO_SCTP},
    {"icmp", IPPROTO_ICMP}, {"icmpv6", IPPROTO_ICMPV6},
};

// "tcp", "udp", "sctp", "icmp", "icmpv6" (any case) or a number 0-255.
inline Parsed<std::uint8_t> protocol(std::string_view text) {
  std::string lower(text);
  for (char& c : lower)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  for (const auto& known : kProtocolNames)
    if (lower == known.name) return known.number;
  if (auto number = whole_number<unsigned>(text); number && *number <= 255)
    return static_cast<std::uint8_t>(*number);
  return Parsed<std::uint8_t>::failure(
      quoted(text) + " is not a protocol: use tcp, udp, sctp, icmp, icmpv6 or a number 0-255");
}

// "tcp", ..., or the number for protocols without a name here.
inline std::string protocol_text(int number) {
  for (const auto& known : kProtocolNames)
    if (known.number == number) return known.name;
  return std::to_string(number);
}

// Protocols with ports (the L4 header starts with source and destination).
inline bool has_ports(int number) {
  return number == IPPROTO_TCP || number == IPPROTO_UDP || number == IPPROTO_SCTP;
}

// --- ports ----------------------------------------------------------------------

inline constexpr const char* kPortRule = "use a number 1-65535";

// A port number already read as an integer (TOML 80).
inline Parsed<std::uint16_t> port_number(std::int64_t value) {
  if (value < 1 || value > 65535)
    return Parsed<std::uint16_t>::failure(std::to_string(value) + " is not a port: " + kPortRule);
  return static_cast<std::uint16_t>(value);
}

// "80".
inline Parsed<std::uint16_t> port(std::string_view text) {
  auto value = whole_number<unsigned>(text);
  if (!value || *value < 1 || *value > 65535)
    return Parsed<std::uint16_t>::failure(quoted(text) + " is not a port: " + kPortRule);
  return static_cast<std::uint16_t>(*value);
}

// "80" or "8000-8100" (both ends included, first <= last).
inline Parsed<PortRange> port_range(std::string_view text) {
  const auto dash = text.find('-');
  const std::string rule = ": use PORT or FIRST-LAST with ports 1-65535, e.g. 8000-8100";
  auto first = whole_number<unsigned>(text.substr(0, dash));
  auto last = dash == std::string_view::npos ? first : whole_number<unsigned>(text.substr(dash + 1));
  if (!first || !last || *first < 1 || *first > 65535 || *last < 1 || *last > 65535)
    return Parsed<PortRange>::failure(quoted(text) + " is not a port range" + rule);
  if (*first > *last)
    return Parsed<PortRange>::failure(quoted(text) + " is not a port range: it ends before it "
                                      "starts (did you mean " + std::to_string(*last) + "-" +
                                      std::to_string(*first) + "?)");
  return PortRange{static_cast<std::uint16_t>(*first), static_cast<std::uint16_t>(*last)};
}

inline std::string port_range_text(const PortRange& r) {
  return r.first == r.last ? std::to_string(r.first)
                           : std::to_string(r.first) + "-" + std::to_string(r.last);
}

// --- durations ------------------------------------------------------------------

struct DurationUnit {
  const char* suffix;
  std::int64_t nanoseconds;
  const char* plural;  // "seconds"
};
inline constexpr DurationUnit kDurationUnits[] = {
    {"ns", 1, "nanoseconds"},
    {"us", 1'000, "microseconds"},
    {"ms", 1'000'000, "milliseconds"},
    {"s", 1'000'000'000, "seconds"},
    {"m", 60'000'000'000, "minutes"},
    {"h", 3'600'000'000'000, "hours"},
};

// "90s", "500ms", "5m", "1h": a whole number and one unit (ns, us, ms, s,
// m, h). Overflowing std::chrono::nanoseconds (about 292 years) is refused.
inline Parsed<std::chrono::nanoseconds> duration(std::string_view text) {
  std::size_t digits = 0;
  while (digits < text.size() && text[digits] >= '0' && text[digits] <= '9') ++digits;
  const std::string_view suffix = text.substr(digits);
  for (const auto& unit : kDurationUnits) {
    if (digits == 0 || suffix != unit.suffix) continue;
    auto value = whole_number<std::uint64_t>(text.substr(0, digits));
    const auto limit = static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max() /
                                                  unit.nanoseconds);
    if (!value || *value > limit)
      return Parsed<std::chrono::nanoseconds>::failure(
          quoted(text) + " is too long a duration: at most " + std::to_string(limit) +
          unit.suffix);
    return std::chrono::nanoseconds(static_cast<std::int64_t>(*value) * unit.nanoseconds);
  }
  return Parsed<std::chrono::nanoseconds>::failure(
      quoted(text) + " is not a duration: use a whole number with ns, us, ms, s, m or h, e.g. '90s'");
}

// The duration in the largest unit that divides it exactly: "90s", "2m",
// "1500ms", "0s".
inline std::string duration_text(std::chrono::nanoseconds d) {
  const std::int64_t ns = d.count();
  if (ns == 0) return "0s";
  for (auto unit = std::rbegin(kDurationUnits); unit != std::rend(kDurationUnits); ++unit)
    if (ns % unit->nanoseconds == 0) return std::to_string(ns / unit->nanoseconds) + unit->suffix;
  return std::to_string(ns) + "ns";
}

// The unit whose length is `period` ("seconds"), for messages about a
// duration that must be a whole number of them.
inline const char* duration_unit_plural(std::chrono::nanoseconds period) {
  for (const auto& unit : kDurationUnits)
    if (unit.nanoseconds == period.count()) return unit.plural;
  return "units";
}

}  // namespace parse
}  // namespace sluice
