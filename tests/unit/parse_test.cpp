// sluice/parse.hpp (the text parsers every plugin, sluiced and sluicectl
// share) and the config::Table readers built on them: accepted inputs, and
// the exact message (and file:line:column and key) of refused ones.
#include <gtest/gtest.h>

#include <netinet/in.h>

#include <chrono>
#include <string>

#include <sluice/config.hpp>
#include <sluice/parse.hpp>

using namespace std::chrono_literals;
using namespace sluice;

namespace {

// --- the text parsers -----------------------------------------------------------

struct Case {
  const char* text;
  std::string want;  // the value as text, or the exact error message
};

void PrintTo(const Case& c, std::ostream* os) { *os << "'" << c.text << "'"; }

template <class T, class Parse, class Show>
void expect_case(const Case& c, Parse parse, Show show) {
  Parsed<T> got = parse(c.text);
  EXPECT_EQ(got ? show(*got) : got.error(), c.want) << "input '" << c.text << "'";
  EXPECT_EQ(got.has_value(), got.error().empty());
}

class IpAddressParse : public ::testing::TestWithParam<Case> {};
TEST_P(IpAddressParse, ValueOrMessage) {
  expect_case<IpAddress>(GetParam(), parse::ip_address, [](const IpAddress& a) {
    return "v" + std::to_string(a.family) + " " + parse::ip_text(a);
  });
}
INSTANTIATE_TEST_SUITE_P(
    Table, IpAddressParse,
    ::testing::Values(Case{"10.0.0.1", "v4 10.0.0.1"}, Case{"0.0.0.0", "v4 0.0.0.0"},
                      Case{"fd00::1", "v6 fd00::1"}, Case{"::ffff:10.1.2.3", "v6 ::ffff:10.1.2.3"},
                      Case{"FD00:0::A", "v6 fd00::a"},
                      Case{"10.0.0", "'10.0.0' is not an IPv4 or IPv6 address"},
                      Case{"10.0.0.256", "'10.0.0.256' is not an IPv4 or IPv6 address"},
                      Case{" 10.0.0.1", "' 10.0.0.1' is not an IPv4 or IPv6 address"},
                      Case{"10.0.0.1/32", "'10.0.0.1/32' is not an IPv4 or IPv6 address"},
                      Case{"", "'' is not an IPv4 or IPv6 address"},
                      Case{"fd00:::1", "'fd00:::1' is not an IPv4 or IPv6 address"}));

class IpPrefixParse : public ::testing::TestWithParam<Case> {};
TEST_P(IpPrefixParse, ValueOrMessage) {
  expect_case<IpPrefix>(GetParam(), [](const char* t) { return parse::ip_prefix(t); },
                        parse::prefix_text);
}
INSTANTIATE_TEST_SUITE_P(
    Table, IpPrefixParse,
    ::testing::Values(
        Case{"10.0.0.0/8", "10.0.0.0/8"}, Case{"10.1.2.3", "10.1.2.3/32"},
        Case{"0.0.0.0/0", "0.0.0.0/0"}, Case{"10.1.2.3/32", "10.1.2.3/32"},
        Case{"fd00::/64", "fd00::/64"}, Case{"fd00::1", "fd00::1/128"}, Case{"::/0", "::/0"},
        Case{"10.0.0.1/24", "'10.0.0.1/24' has host bits set: did you mean 10.0.0.0/24?"},
        Case{"fd00::1/64", "'fd00::1/64' has host bits set: did you mean fd00::/64?"},
        Case{"10.0.0.0/33",
             "'10.0.0.0/33' is not a CIDR prefix: the length of an IPv4 prefix is 0-32"},
        Case{"fd00::/129",
             "'fd00::/129' is not a CIDR prefix: the length of an IPv6 prefix is 0-128"},
        Case{"10.0.0.0/", "'10.0.0.0/' is not a CIDR prefix: the length of an IPv4 prefix is 0-32"},
        Case{"10.0.0.0/-1",
             "'10.0.0.0/-1' is not a CIDR prefix: the length of an IPv4 prefix is 0-32"},
        Case{"10.0.0.0/+8",
             "'10.0.0.0/+8' is not a CIDR prefix: the length of an IPv4 prefix is 0-32"},
        Case{"10.0.0.0/99999999999999999999",
             "'10.0.0.0/99999999999999999999' is not a CIDR prefix: the length of an IPv4 "
             "prefix is 0-32"},
        Case{"10.0.0/8",
             "'10.0.0/8' is not a CIDR prefix: write ADDRESS/LENGTH, e.g. 10.0.0.0/8 or "
             "fd00::/64"},
        Case{"", "'' is not a CIDR prefix: write ADDRESS/LENGTH, e.g. 10.0.0.0/8 or fd00::/64"}));

TEST(IpPrefixParse, HostBitsCanBeCleared) {
  auto p = parse::ip_prefix("10.1.2.3/8", parse::HostBits::clear);
  ASSERT_TRUE(p) << p.error();
  EXPECT_EQ(parse::prefix_text(*p), "10.0.0.0/8");
  auto v6 = parse::ip_prefix("fd00:1:2:3::9/33", parse::HostBits::clear);
  ASSERT_TRUE(v6) << v6.error();
  EXPECT_EQ(parse::prefix_text(*v6), "fd00:1::/33");
}

class ProtocolParse : public ::testing::TestWithParam<Case> {};
TEST_P(ProtocolParse, ValueOrMessage) {
  expect_case<std::uint8_t>(GetParam(), parse::protocol,
                            [](std::uint8_t p) { return std::to_string(p); });
}
INSTANTIATE_TEST_SUITE_P(
    Table, ProtocolParse,
    ::testing::Values(
        Case{"tcp", "6"}, Case{"TCP", "6"}, Case{"Udp", "17"}, Case{"sctp", "132"},
        Case{"icmp", "1"}, Case{"icmpv6", "58"}, Case{"ICMPv6", "58"}, Case{"47", "47"},
        Case{"0", "0"}, Case{"255", "255"},
        Case{"256", "'256' is not a protocol: use tcp, udp, sctp, icmp, icmpv6 or a number 0-255"},
        Case{"-1", "'-1' is not a protocol: use tcp, udp, sctp, icmp, icmpv6 or a number 0-255"},
        Case{"tcpx",
             "'tcpx' is not a protocol: use tcp, udp, sctp, icmp, icmpv6 or a number 0-255"},
        Case{"", "'' is not a protocol: use tcp, udp, sctp, icmp, icmpv6 or a number 0-255"}));

TEST(ProtocolParse, NamesBack) {
  EXPECT_EQ(parse::protocol_text(IPPROTO_TCP), "tcp");
  EXPECT_EQ(parse::protocol_text(IPPROTO_ICMPV6), "icmpv6");
  EXPECT_EQ(parse::protocol_text(47), "47");
  EXPECT_TRUE(parse::has_ports(IPPROTO_SCTP));
  EXPECT_FALSE(parse::has_ports(IPPROTO_ICMP));
}

class PortParse : public ::testing::TestWithParam<Case> {};
TEST_P(PortParse, ValueOrMessage) {
  expect_case<std::uint16_t>(GetParam(), parse::port,
                             [](std::uint16_t p) { return std::to_string(p); });
}
INSTANTIATE_TEST_SUITE_P(
    Table, PortParse,
    ::testing::Values(Case{"80", "80"}, Case{"1", "1"}, Case{"65535", "65535"},
                      Case{"0", "'0' is not a port: use a number 1-65535"},
                      Case{"65536", "'65536' is not a port: use a number 1-65535"},
                      Case{"-80", "'-80' is not a port: use a number 1-65535"},
                      Case{"80x", "'80x' is not a port: use a number 1-65535"},
                      Case{"", "'' is not a port: use a number 1-65535"}));

TEST(PortParse, IntegersAreCheckedToo) {
  EXPECT_EQ(*parse::port_number(443), 443);
  EXPECT_EQ(parse::port_number(0).error(), "0 is not a port: use a number 1-65535");
  EXPECT_EQ(parse::port_number(70000).error(), "70000 is not a port: use a number 1-65535");
}

constexpr const char* kRangeRule = ": use PORT or FIRST-LAST with ports 1-65535, e.g. 8000-8100";

class PortRangeParse : public ::testing::TestWithParam<Case> {};
TEST_P(PortRangeParse, ValueOrMessage) {
  expect_case<PortRange>(GetParam(), parse::port_range, parse::port_range_text);
}
INSTANTIATE_TEST_SUITE_P(
    Table, PortRangeParse,
    ::testing::Values(
        Case{"80", "80"}, Case{"8000-8100", "8000-8100"}, Case{"1-65535", "1-65535"},
        Case{"53-53", "53"},
        Case{"8100-8000",
             "'8100-8000' is not a port range: it ends before it starts (did you mean "
             "8000-8100?)"},
        Case{"0-80", (std::string("'0-80' is not a port range") + kRangeRule)},
        Case{"80-65536", (std::string("'80-65536' is not a port range") + kRangeRule)},
        Case{"80-", (std::string("'80-' is not a port range") + kRangeRule)},
        Case{"-80", (std::string("'-80' is not a port range") + kRangeRule)},
        Case{"80-90-100", (std::string("'80-90-100' is not a port range") + kRangeRule)},
        Case{"http", (std::string("'http' is not a port range") + kRangeRule)}));

class DurationParse : public ::testing::TestWithParam<Case> {};
TEST_P(DurationParse, ValueOrMessage) {
  expect_case<std::chrono::nanoseconds>(GetParam(), parse::duration, parse::duration_text);
}
constexpr const char* kNotADuration =
    " is not a duration: use a whole number with ns, us, ms, s, m or h, e.g. '90s'";
INSTANTIATE_TEST_SUITE_P(
    Table, DurationParse,
    ::testing::Values(
        Case{"90s", "90s"}, Case{"120s", "2m"}, Case{"5m", "5m"}, Case{"1h", "1h"},
        Case{"1500ms", "1500ms"}, Case{"250us", "250us"}, Case{"7ns", "7ns"}, Case{"0s", "0s"},
        Case{"2562047h", "2562047h"},
        Case{"2562048h", "'2562048h' is too long a duration: at most 2562047h"},
        Case{"99999999999999999999999s",
             "'99999999999999999999999s' is too long a duration: at most 9223372036s"},
        Case{"90x", (std::string("'90x'") + kNotADuration)},
        Case{"30d", (std::string("'30d'") + kNotADuration)},
        Case{"30", (std::string("'30'") + kNotADuration)},
        Case{"s", (std::string("'s'") + kNotADuration)},
        Case{"-5s", (std::string("'-5s'") + kNotADuration)},
        Case{"1.5s", (std::string("'1.5s'") + kNotADuration)},
        Case{"1h30m", (std::string("'1h30m'") + kNotADuration)},
        Case{"", (std::string("''") + kNotADuration)}));

// --- the positioned readers of config::Table --------------------------------------

struct Positioned {
  const char* toml;  // the [t] table's lines
  std::uint32_t line, column;
  const char* key;
  const char* message;
};

void PrintTo(const Positioned& c, std::ostream* os) { *os << c.toml; }

// Parses "[plugins.demo]\n" + toml from /etc/sluice/demo.toml and reads it
// with `read`; returns the error.
template <class Read>
ConfigError error_of(const std::string& toml, Read read) {
  const std::string text = "[plugins.demo]\n" + toml + "\n";
  toml::table root = config::parse(text, "/etc/sluice/demo.toml");
  config::Table table(*root["plugins"]["demo"].as_table(), "/etc/sluice/demo.toml",
                      "plugins.demo");
  try {
    read(table);
  } catch (const ConfigError& error) {
    return error;
  }
  ADD_FAILURE() << "accepted: " << toml;
  return ConfigError("", 0, 0, "", "");
}

void read_all(const config::Table& t) {
  t.get_ip_address("address");
  t.get_ip_address_list("addresses");
  t.get_prefix("prefix");
  t.get_prefix_list("prefixes");
  t.get_prefix_list("lenient", parse::HostBits::clear);
  t.get_protocol("protocol", IPPROTO_TCP);
  t.get_port("port", 0);
  t.get_port_range("ports", {});
  t.get_duration("timeout", 10s, 1s, 1h);
  t.get_duration("interval", 100ms, 1ms, 1min);
}

class PositionedErrors : public ::testing::TestWithParam<Positioned> {};
TEST_P(PositionedErrors, NameFileLineColumnKeyAndWhatIsAccepted) {
  const Positioned& c = GetParam();
  ConfigError error = error_of(c.toml, read_all);
  EXPECT_EQ(error.file, "/etc/sluice/demo.toml");
  EXPECT_EQ(error.line, c.line) << error.what();
  EXPECT_EQ(error.column, c.column) << error.what();
  EXPECT_EQ(error.key, c.key) << error.what();
  EXPECT_STREQ(error.what(), c.message);
}
INSTANTIATE_TEST_SUITE_P(
    Table, PositionedErrors,
    ::testing::Values(
        Positioned{"address = \"10.0.0\"", 2, 11, "plugins.demo.address",
                   "'10.0.0' is not an IPv4 or IPv6 address"},
        Positioned{"address = 10", 2, 11, "plugins.demo.address",
                   "expected an IP address (a string)"},
        Positioned{"addresses = [\"10.0.0.1\",\n  \"fd00::g\"]", 3, 3, "plugins.demo.addresses",
                   "'fd00::g' is not an IPv4 or IPv6 address"},
        Positioned{"addresses = \"10.0.0.1\"", 2, 13, "plugins.demo.addresses",
                   "expected a list of IP addresses"},
        Positioned{"prefix = \"10.0.0.1/24\"", 2, 10, "plugins.demo.prefix",
                   "'10.0.0.1/24' has host bits set: did you mean 10.0.0.0/24?"},
        Positioned{"prefixes = [\"10.0.0.0/8\", \"10.0.0.0/40\"]", 2, 27, "plugins.demo.prefixes",
                   "'10.0.0.0/40' is not a CIDR prefix: the length of an IPv4 prefix is 0-32"},
        Positioned{"prefixes = [8]", 2, 13, "plugins.demo.prefixes",
                   "expected a CIDR prefix (a string)"},
        Positioned{"lenient = [\"10.0.0.1/8\", \"x\"]", 2, 26, "plugins.demo.lenient",
                   "'x' is not a CIDR prefix: write ADDRESS/LENGTH, e.g. 10.0.0.0/8 or fd00::/64"},
        Positioned{"protocol = \"gre2\"", 2, 12, "plugins.demo.protocol",
                   "'gre2' is not a protocol: use tcp, udp, sctp, icmp, icmpv6 or a number 0-255"},
        Positioned{"protocol = 300", 2, 12, "plugins.demo.protocol",
                   "300 is not a protocol number: use 0-255"},
        Positioned{"protocol = true", 2, 12, "plugins.demo.protocol",
                   "expected a protocol: a name (tcp, udp, sctp, icmp, icmpv6) or a number 0-255"},
        Positioned{"port = 0", 2, 8, "plugins.demo.port", "0 is not a port: use a number 1-65535"},
        Positioned{"port = \"80\"", 2, 8, "plugins.demo.port",
                   "expected a port number (an integer 1-65535)"},
        Positioned{"ports = \"8100-8000\"", 2, 9, "plugins.demo.ports",
                   "'8100-8000' is not a port range: it ends before it starts (did you mean "
                   "8000-8100?)"},
        Positioned{"ports = 65536", 2, 9, "plugins.demo.ports",
                   "65536 is not a port: use a number 1-65535"},
        Positioned{"timeout = \"90x\"", 2, 11, "plugins.demo.timeout",
                   "'90x' is not a duration: use a whole number with ns, us, ms, s, m or h, e.g. "
                   "'90s'"},
        Positioned{"timeout = \"1500ms\"", 2, 11, "plugins.demo.timeout",
                   "'1500ms' is not a whole number of seconds"},
        Positioned{"timeout = \"2h\"", 2, 11, "plugins.demo.timeout",
                   "duration 2h is out of range [1s, 1h]"},
        Positioned{"timeout = 0", 2, 11, "plugins.demo.timeout",
                   "duration 0s is out of range [1s, 1h]"},
        Positioned{"timeout = -5", 2, 11, "plugins.demo.timeout",
                   "duration -5s is out of range [1s, 1h]"},
        Positioned{"timeout = 1.5", 2, 11, "plugins.demo.timeout",
                   "expected a duration: a string such as \"30s\", or a whole number of seconds"},
        Positioned{"interval = \"500us\"", 2, 12, "plugins.demo.interval",
                   "'500us' is not a whole number of milliseconds"},
        Positioned{"interval = 60001", 2, 12, "plugins.demo.interval",
                   "duration 60001ms is out of range [1ms, 1m]"}));

TEST(PositionedReaders, AcceptedValues) {
  toml::table root = config::parse(
      "address = \"fd00::1\"\nprefixes = [\"10.0.0.0/8\", \"fd00::/64\"]\n"
      "lenient = [\"10.1.2.3/8\"]\nprotocol = \"UDP\"\nport = 443\nports = \"8000-8100\"\n"
      "single = 53\ntimeout = \"5m\"\nplain = 30\ninterval = \"2s\"\nnumbered = 47\n",
      "t.toml");
  config::Table t(root, "t.toml", "");
  EXPECT_EQ(parse::ip_text(*t.get_ip_address("address")), "fd00::1");
  EXPECT_FALSE(t.get_ip_address("missing"));
  auto prefixes = t.get_prefix_list("prefixes");
  ASSERT_EQ(prefixes.size(), 2u);
  EXPECT_EQ(parse::prefix_text(prefixes[1]), "fd00::/64");
  EXPECT_EQ(parse::prefix_text(t.get_prefix_list("lenient", parse::HostBits::clear).at(0)),
            "10.0.0.0/8");
  EXPECT_EQ(t.get_protocol("protocol", IPPROTO_TCP), IPPROTO_UDP);
  EXPECT_EQ(t.get_protocol("numbered", IPPROTO_TCP), 47);
  EXPECT_EQ(t.get_protocol("missing", IPPROTO_TCP), IPPROTO_TCP);
  EXPECT_EQ(t.get_port("port", 0), 443);
  EXPECT_EQ(t.get_port("missing", 7), 7);
  EXPECT_EQ(t.get_port_range("ports", {}), (PortRange{8000, 8100}));
  EXPECT_EQ(t.get_port_range("single", {}), (PortRange{53, 53}));
  EXPECT_EQ(t.get_duration("timeout", 1s, 1s, 1h), 300s);
  EXPECT_EQ(t.get_duration("plain", 1s, 1s, 1h), 30s);
  EXPECT_EQ(t.get_duration("interval", 1ms, 1ms, 1min), 2000ms);
  EXPECT_EQ(t.get_duration("missing", 9s, 1s, 1h), 9s);
}

// A block of a resource file parsed alone keeps the file's line numbers.
TEST(PositionedReaders, LineOffsetIsTheFiles) {
  toml::table root = config::parse("ip = \"10.0.0\"\n", "/state/a.toml");
  config::Table t(root, "/state/a.toml", "endpoint[3]", 40);
  try {
    t.get_ip_address("ip");
    FAIL() << "accepted";
  } catch (const ConfigError& error) {
    EXPECT_EQ(error.line, 41u);
    EXPECT_EQ(error.column, 6u);
    EXPECT_EQ(error.key, "endpoint[3].ip");
  }
}

}  // namespace
