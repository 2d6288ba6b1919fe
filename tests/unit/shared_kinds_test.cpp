// The schemas of the shared resource kinds (sluice/resources/*.hpp): what
// they read and where they say a value is wrong.
#include <gtest/gtest.h>

#include <sluice/plugin.hpp>
#include <sluice/resources/endpoint.hpp>
#include <sluice/resources/host_endpoint.hpp>
#include <sluice/resources/namespace.hpp>
#include <sluice/resources/network_set.hpp>
#include <sluice/resources/node.hpp>

using namespace sluice;
using namespace sluice::resources;

namespace {

template <class Parse>
auto parse_first(const std::string& text, const char* kind, Parse parse) {
  toml::table root = config::parse(text, "/state/a.toml");
  config::Table top(root, "/state/a.toml", "");
  return parse(top.get_table_list(kind).at(0));
}

struct Where {
  std::uint32_t line, column;
  std::string key;
  std::string message_part;
};

template <class Parse>
void expect_error(const std::string& text, const char* kind, Parse parse, const Where& want) {
  try {
    parse_first(text, kind, parse);
    ADD_FAILURE() << "accepted:\n" << text;
  } catch (const ConfigError& e) {
    EXPECT_EQ(e.file, "/state/a.toml");
    EXPECT_EQ(e.line, want.line) << e.what();
    if (want.column) {
      EXPECT_EQ(e.column, want.column) << e.what();
    }
    EXPECT_EQ(e.key, want.key) << e.what();
    EXPECT_NE(std::string(e.what()).find(want.message_part), std::string::npos) << e.what();
  }
}

TEST(EndpointSchema, ReadsEveryField) {
  auto e = parse_first("[[endpoint]]\nname = \"web-0\"\nnamespace = \"shop\"\n"
                       "interface = \"cali1\"\nnode = \"n1\"\nips = [\"10.65.0.2\", \"fd00::2\"]\n"
                       "labels = { app = \"web\" }\n"
                       "ports = [{ name = \"http\", port = 8080 }, "
                       "{ name = \"dns\", port = 53, protocol = \"udp\" }]\n",
                       "endpoint", parse_endpoint);
  EXPECT_EQ(e.size, sizeof(EndpointRecord));
  EXPECT_EQ(e.key(), "shop/web-0");
  EXPECT_EQ(e.interface, "cali1");
  EXPECT_EQ(e.node, "n1");
  ASSERT_EQ(e.ips.size(), 2u);
  EXPECT_EQ(ip_text(e.ips[1]), "fd00::2");
  EXPECT_EQ(e.labels.at("app"), "web");
  ASSERT_EQ(e.ports.size(), 2u);
  EXPECT_EQ(e.ports[1].protocol, IPPROTO_UDP);
  EXPECT_EQ(e.at.line, 1u);
  EXPECT_EQ(e.at.key, "endpoint[0]");
}

TEST(EndpointSchema, ErrorsArePositioned) {
  expect_error("[[endpoint]]\nnamespace = \"a\"\nips = [\"10.0.0.1\"]\n", "endpoint",
               parse_endpoint, {1, 0, "endpoint[0].name", "an endpoint needs a name"});
  expect_error("[[endpoint]]\nname = \"a\"\nips = [\"10.0.0.300\"]\n", "endpoint", parse_endpoint,
               {3, 8, "endpoint[0].ips", "'10.0.0.300' is not an IPv4 or IPv6 address"});
  expect_error("[[endpoint]]\nname = \"a\"\nips = []\n", "endpoint", parse_endpoint,
               {3, 0, "endpoint[0].ips", "needs ips"});
  expect_error("[[endpoint]]\nname = \"a\"\nips = [\"10.0.0.1\"]\nlabels = { app = 1 }\n",
               "endpoint", parse_endpoint,
               {4, 0, "endpoint[0].labels.app", "a label value is a string"});
  expect_error("[[endpoint]]\nname = \"a\"\nips = [\"10.0.0.1\"]\nports = [{ name = \"h\", "
               "port = 1 }, { name = \"h\", port = 2 }]\n",
               "endpoint", parse_endpoint,
               {4, 0, "endpoint[0].ports[1].name", "port name 'h' (tcp) is listed twice"});
  expect_error("[[endpoint]]\nname = \"a\"\nips = [\"10.0.0.1\"]\nveth = \"x\"\n", "endpoint",
               parse_endpoint, {4, 1, "endpoint[0].veth", ""});
}

TEST(NamespaceSchema, ReadsAndRefuses) {
  auto n = parse_first("[[namespace]]\nname = \"shop\"\nlabels = { team = \"a\" }\n",
                       "namespace", parse_namespace);
  EXPECT_EQ(n.name, "shop");
  EXPECT_EQ(n.labels.at("team"), "a");
  expect_error("[[namespace]]\nname = \"\"\n", "namespace", parse_namespace,
               {2, 8, "namespace[0].name", "must not be empty"});
  expect_error("[[namespace]]\nname = \"a\"\nlabel = {}\n", "namespace", parse_namespace,
               {3, 1, "namespace[0].label", ""});
}

TEST(NodeSchema, ReadsAddressesBlocksAndTunnel) {
  auto n = parse_first("[[node]]\nname = \"n2\"\naddresses = [\"192.168.1.12\"]\n"
                       "workload_blocks = [\"10.65.2.7/24\"]\ntunnel = \"vxlan\"\n"
                       "tunnel_address = \"10.65.2.1\"\n",
                       "node", parse_node);
  EXPECT_EQ(n.tunnel, TunnelType::vxlan);
  ASSERT_EQ(n.workload_blocks.size(), 1u);
  EXPECT_EQ(ip_text(n.workload_blocks[0].addr), "10.65.2.0") << "host bits are cleared";
  EXPECT_EQ(n.workload_blocks[0].length, 24u);
  ASSERT_TRUE(n.tunnel_address);
}

TEST(NodeSchema, ErrorsArePositioned) {
  expect_error("[[node]]\nname = \"n\"\n", "node", parse_node,
               {1, 0, "node[0].addresses", "needs addresses"});
  expect_error("[[node]]\nname = \"n\"\naddresses = [\"10.0.0.1\"]\ntunnel = \"gre\"\n", "node",
               parse_node, {4, 10, "node[0].tunnel", "'gre' is not one of"});
  expect_error("[[node]]\nname = \"n\"\naddresses = [\"10.0.0.1\"]\ntunnel = \"ipip\"\n", "node",
               parse_node, {1, 0, "node[0].tunnel_address", "needs tunnel_address"});
  expect_error("[[node]]\nname = \"n\"\naddresses = [\"10.0.0.1\"]\ntunnel_address = \"10.0.0.9\"\n",
               "node", parse_node, {4, 18, "node[0].tunnel_address", "needs tunnel"});
  expect_error("[[node]]\nname = \"n\"\naddresses = [\"10.0.0.1\"]\n"
               "workload_blocks = [\"10.65.0.0/33\"]\n",
               "node", parse_node,
               {4, 20, "node[0].workload_blocks", "'10.65.0.0/33' is not a CIDR prefix"});
}

TEST(NetworkSetSchema, NamespacedAndGlobal) {
  auto s = parse_first("[[network_set]]\nname = \"p\"\nnamespace = \"shop\"\n"
                       "nets = [\"198.51.100.0/24\"]\n",
                       "network_set", [](const config::Table& t) { return parse_network_set(t); });
  EXPECT_EQ(s.key(), "shop/p");
  auto g = parse_first("[[global_network_set]]\nname = \"p\"\nnets = [\"198.51.100.0/24\"]\n",
                       "global_network_set",
                       [](const config::Table& t) { return parse_network_set(t, true); });
  EXPECT_EQ(g.key(), "p");
  expect_error("[[global_network_set]]\nname = \"p\"\nnamespace = \"x\"\nnets = [\"10.0.0.0/8\"]\n",
               "global_network_set",
               [](const config::Table& t) { return parse_network_set(t, true); },
               {3, 1, "global_network_set[0].namespace", ""});
  expect_error("[[network_set]]\nname = \"p\"\nnets = []\n", "network_set",
               [](const config::Table& t) { return parse_network_set(t); },
               {3, 0, "network_set[0].nets", "needs nets"});
}

TEST(HostEndpointSchema, ReadsAndRefuses) {
  auto h = parse_first("[[host_endpoint]]\nname = \"n1-eth0\"\ninterface = \"eth0\"\n"
                       "expected_ips = [\"192.168.1.11\"]\n",
                       "host_endpoint", parse_host_endpoint);
  EXPECT_EQ(h.interface, "eth0");
  ASSERT_EQ(h.expected_ips.size(), 1u);
  expect_error("[[host_endpoint]]\nname = \"n1-eth0\"\n", "host_endpoint", parse_host_endpoint,
               {1, 0, "host_endpoint[0].interface", "needs interface"});
  expect_error("[[host_endpoint]]\nname = \"h\"\ninterface = \"eth0\"\nexpected_ips = \"1.2.3.4\"\n",
               "host_endpoint", parse_host_endpoint,
               {4, 16, "host_endpoint[0].expected_ips", "expected a list of IP addresses"});
}

}  // namespace
