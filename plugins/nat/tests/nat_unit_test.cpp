// The parts of the nat plugin that need no kernel: reading services and
// endpoints (positioned errors), the entries they ask for, block-by-block
// changes of a state file, and the CLI's formatting and argument checks.
// No root, no BPF: labelled unit.
#include <arpa/inet.h>
#include <netinet/in.h>

#include <gtest/gtest.h>

#include <sstream>

#include <sluice/config.hpp>

#include "endpoint_parse.hpp"
#include "nat_cli.hpp"
#include "sluice/core/command_line.hpp"
#include "nat_entries.hpp"
#include "service_blocks.hpp"
#include "service_parse.hpp"

namespace {

using sluice::ConfigError;
using sluice::config::Table;

// Parses the first [[kind]] table of `text` with `parse`, as a state file.
template <class Parse>
auto parse_first(const std::string& text, const char* kind, Parse parse) {
  toml::table root = sluice::config::parse(text, "/state/a.toml");
  Table top(root, "/state/a.toml", "");
  return parse(top.get_table_list(kind).at(0));
}

nat::ServiceSpec service(const std::string& text) {
  return parse_first(text, "service", nat::parse_service);
}

ConfigError service_error(const std::string& text) {
  try {
    service(text);
  } catch (const ConfigError& error) {
    return error;
  }
  ADD_FAILURE() << "no error for:\n" << text;
  return ConfigError("", 0, 0, "", "");
}

TEST(NatServiceParse, ReadsFrontendsPortsAndBackends) {
  auto s = service(
      "[[service]]\nname = \"web\"\nnamespace = \"shop\"\ncluster_ip = \"10.96.0.10\"\n"
      "ports = [{ port = 80, target_port = 8080 }]\n"
      "backends = [{ ip = \"10.65.0.2\", node = \"n1\" }, { ip = \"10.65.0.3\", ready = false }]\n");
  EXPECT_EQ(s.key(), "shop/web");
  ASSERT_TRUE(s.cluster_ip);
  ASSERT_EQ(s.ports.size(), 1u);
  EXPECT_EQ(s.ports[0].target_port, 8080);
  EXPECT_EQ(s.ports[0].proto, IPPROTO_TCP);
  EXPECT_EQ(s.ports[0].name, "80/tcp");
  ASSERT_EQ(s.backends.size(), 2u);
  EXPECT_FALSE(s.backends[1].ready);
  EXPECT_EQ(s.at.line, 1u);
  EXPECT_EQ(s.at.key, "service[0]");
}

TEST(NatServiceParse, BadAddressIsPositioned) {
  auto error = service_error("[[service]]\nname = \"web\"\ncluster_ip = \"10.96.0\"\n"
                             "ports = [{ port = 80 }]\n");
  EXPECT_EQ(error.file, "/state/a.toml");
  EXPECT_EQ(error.line, 3u);
  EXPECT_EQ(error.column, 14u);
  EXPECT_EQ(error.key, "service[0].cluster_ip");
  EXPECT_NE(std::string(error.what()).find("not an IPv4 or IPv6 address"), std::string::npos);
}

TEST(NatServiceParse, AffinityTimeoutIsADuration) {
  const std::string head =
      "[[service]]\nname = \"web\"\ncluster_ip = \"10.96.0.10\"\nports = [{ port = 80 }]\n"
      "session_affinity = \"client_ip\"\n";
  EXPECT_EQ(service(head + "session_affinity_timeout = 600\n").affinity_timeout, 600u);
  EXPECT_EQ(service(head + "session_affinity_timeout = \"3h\"\n").affinity_timeout, 10800u);
  auto error = service_error(head + "session_affinity_timeout = \"25h\"\n");
  EXPECT_EQ(error.line, 6u);
  EXPECT_EQ(error.column, 28u);
  EXPECT_EQ(error.key, "service[0].session_affinity_timeout");
  EXPECT_STREQ(error.what(), "duration 25h is out of range [1s, 24h]");
}

TEST(NatServiceParse, PortsAndProtocolsSayWhatIsAccepted) {
  auto port = service_error("[[service]]\nname = \"web\"\ncluster_ip = \"10.96.0.10\"\n"
                            "ports = [{ port = 0 }]\n");
  EXPECT_EQ(port.key, "service[0].ports[0].port");
  EXPECT_STREQ(port.what(), "0 is not a port: use a number 1-65535");
  auto proto = service_error("[[service]]\nname = \"web\"\ncluster_ip = \"10.96.0.10\"\n"
                             "ports = [{ port = 53, protocol = \"icmp\" }]\n");
  EXPECT_EQ(proto.key, "service[0].ports[0].protocol");
  EXPECT_STREQ(proto.what(), "protocol icmp has no ports: a port's protocol is tcp, udp or sctp");
  EXPECT_EQ(service("[[service]]\nname = \"dns\"\ncluster_ip = \"10.96.0.10\"\n"
                    "ports = [{ port = 53, protocol = \"UDP\" }]\n")
                .ports[0]
                .proto,
            IPPROTO_UDP);
}

TEST(NatServiceParse, MixedFamiliesAreRefusedAtTheBackend) {
  auto error = service_error(
      "[[service]]\nname = \"web\"\ncluster_ip = \"10.96.0.10\"\nports = [{ port = 80 }]\n"
      "[[service.backends]]\nip = \"fd00::2\"\n");
  EXPECT_EQ(error.line, 5u);
  EXPECT_EQ(error.key, "service[0].backends[0]");
  EXPECT_NE(std::string(error.what()).find("mixes IPv4 and IPv6"), std::string::npos);
}

TEST(NatServiceParse, ServiceWithoutFrontendIsRefused) {
  auto error = service_error("[[service]]\nname = \"web\"\nports = [{ port = 80 }]\n");
  EXPECT_EQ(error.key, "service[0].cluster_ip");
  EXPECT_NE(std::string(error.what()).find("no frontend"), std::string::npos);
}

TEST(NatServiceParse, SctpPortCannotBeTranslated) {
  auto error = service_error("[[service]]\nname = \"s\"\ncluster_ip = \"10.96.0.1\"\n"
                             "ports = [{ port = 80, protocol = \"sctp\", target_port = 81 }]\n");
  EXPECT_EQ(error.line, 4u);
  EXPECT_EQ(error.key, "service[0].ports[0].target_port");
}

TEST(NatEndpointParse, DuplicateNamedPortIsPositioned) {
  try {
    parse_first("[[endpoint]]\nname = \"db\"\nips = [\"10.65.0.9\"]\n"
                "[[endpoint.ports]]\nname = \"sql\"\nport = 5432\n"
                "[[endpoint.ports]]\nname = \"sql\"\nport = 5433\n",
                "endpoint", nat::parse_endpoint);
    FAIL() << "a port name listed twice was accepted";
  } catch (const ConfigError& error) {
    EXPECT_EQ(error.line, 8u);
    EXPECT_EQ(error.key, "endpoint[0].ports[1].name");
  }
}

TEST(NatEndpointParse, EndpointNeedsAddresses) {
  try {
    parse_first("[[endpoint]]\nname = \"db\"\n", "endpoint", nat::parse_endpoint);
    FAIL() << "an endpoint without ips was accepted";
  } catch (const ConfigError& error) {
    EXPECT_EQ(error.key, "endpoint[0].ips");
  }
}

TEST(NatEntries, SelectableLocalBackendsComeFirst) {
  auto s = service(
      "[[service]]\nname = \"web\"\ncluster_ip = \"10.96.0.10\"\nports = [{ port = 80 }]\n"
      "backends = [{ ip = \"10.65.0.2\", node = \"other\" }, { ip = \"10.65.0.3\", node = \"me\" },"
      " { ip = \"10.65.0.4\", terminating = true }]\n");
  nat::EndpointIndex none;
  nat::NamedPorts named{none, {}};
  nat::PortEntries e = nat::entries_of(s, s.ports[0], 7, "me", named);
  ASSERT_EQ(e.backends.size(), 3u);
  EXPECT_EQ(e.backends[0].addr[0], inet_addr("10.65.0.3"));
  EXPECT_TRUE(e.backends[0].flags & NAT_BE_F_LOCAL);
  EXPECT_EQ(e.backends[1].addr[0], inet_addr("10.65.0.2"));
  EXPECT_TRUE(e.backends[2].flags & NAT_BE_F_TERMINATING);
  EXPECT_EQ(e.ready, 2u);
  EXPECT_EQ(e.terminating, 1u);
  ASSERT_EQ(e.frontends.size(), 1u);
  const nat_fe_value& fe = e.frontends.begin()->second;
  EXPECT_EQ(fe.id, 7u);
  EXPECT_EQ(fe.count, 2u);
  EXPECT_EQ(fe.local, 1u);
  EXPECT_EQ(fe.total, 3u);
  EXPECT_EQ(e.label, "default/web:80/tcp");
}

TEST(NatEntries, NamedTargetPortResolvesThroughTheEndpoint) {
  auto s = service(
      "[[service]]\nname = \"db\"\ncluster_ip = \"10.96.0.11\"\n"
      "ports = [{ port = 5432, target_port = \"sql\" }]\n"
      "backends = [{ ip = \"10.65.0.9\" }, { ip = \"10.65.0.10\" }]\n");
  auto endpoint = parse_first("[[endpoint]]\nname = \"db-0\"\nips = [\"10.65.0.9\"]\n"
                              "ports = [{ name = \"sql\", port = 6432 }]\n",
                              "endpoint", nat::parse_endpoint);
  nat::EndpointIndex index{{{4, endpoint.ips[0].words}, &endpoint}};
  nat::NamedPorts named{index, {}};
  nat::PortEntries e = nat::entries_of(s, s.ports[0], 1, "", named);
  ASSERT_EQ(e.backends.size(), 2u);
  EXPECT_EQ(ntohs(e.backends[0].port), 6432);
  // The backend without the endpoint cannot serve the port: not selectable.
  EXPECT_TRUE(e.backends[1].flags & NAT_BE_F_NOT_READY);
  EXPECT_EQ(e.ready, 1u);
}

const char* kTwoServices =
    "[[service]]\nname = \"a\"\ncluster_ip = \"10.96.0.1\"\nports = [{ port = 80 }]\n"
    "[[service]]\nname = \"b\"\ncluster_ip = \"10.96.0.2\"\nports = [{ port = 80 }]\n";

TEST(NatServiceBlocks, NewFileIsReadBlockByBlock) {
  nat::FileChange change = nat::change_of({"/state/a.toml", kTwoServices}, nullptr);
  ASSERT_EQ(change.added.size(), 2u);
  EXPECT_EQ(change.added[1]->services.at(0).key(), "default/b");
  EXPECT_EQ(change.added[1]->services.at(0).at.line, 5u);
  EXPECT_TRUE(change.removed().empty());
}

TEST(NatServiceBlocks, ChangedBlockIsTheOnlyOneReread) {
  nat::FileChange first = nat::change_of({"/state/a.toml", kTwoServices}, nullptr);
  nat::FileSpecs held;
  held.text = std::move(first.text);
  held.placement = std::move(first.placement);
  for (auto& block : first.added) held.blocks.push_back(std::move(block));
  std::string edited = kTwoServices;
  edited.replace(edited.find("10.96.0.2"), 9, "10.96.0.3");
  nat::FileChange second = nat::change_of({"/state/a.toml", edited}, &held);
  EXPECT_EQ(second.kept.before, 1u);
  EXPECT_EQ(second.kept.after, 0u);
  ASSERT_EQ(second.added.size(), 1u);
  ASSERT_EQ(second.removed().size(), 1u);
  EXPECT_EQ(second.removed()[0]->services.at(0).key(), "default/b");
}

TEST(NatServiceBlocks, BadBlockIsReportedWithItsFilePosition) {
  std::string text = kTwoServices;
  text += "[[service]]\nname = \"c\"\ncluster_ip = \"nope\"\nports = [{ port = 80 }]\n";
  try {
    nat::change_of({"/state/a.toml", text}, nullptr);
    FAIL() << "a bad service was accepted";
  } catch (const ConfigError& error) {
    EXPECT_EQ(error.line, 11u);
    EXPECT_EQ(error.key, "service[2].cluster_ip");
  }
}

TEST(NatCli, FrontendAndBackendLines) {
  nat_fe_key k{};
  k.family = 4;
  k.proto = IPPROTO_UDP;
  k.port = htons(53);
  k.addr[0] = inet_addr("10.96.0.10");
  nat_fe_value v{};
  v.id = 6;
  v.count = 2;
  v.flags = NAT_FE_F_AFFINITY;
  v.affinity_timeout = 30;
  EXPECT_EQ(nat::frontend_line(k, v),
            "10.96.0.10 port 53 proto 17 id 6 count 2 local 0 flags affinity affinity-timeout 30s");
  nat_be_value b{};
  b.family = 4;
  b.addr[0] = inet_addr("10.65.0.2");
  b.port = htons(53);
  b.flags = NAT_BE_F_LOCAL;
  EXPECT_EQ(nat::backend_line(6, 0, b), "\t6:0\t 10.65.0.2:53 local");
  EXPECT_EQ(nat::backend_line(6, 1, std::nullopt), "\t6:1\t is missing");
  nat_fe_key node_port{};
  node_port.family = 4;
  EXPECT_EQ(nat::frontend_addr(node_port), "*");
}

TEST(NatCli, UnknownArgumentsAreUsageErrorsBeforeAnyMapIsOpened) {
  for (const auto& command : nat::nat_cli_commands()) {
    std::ostringstream out, err;
    sluice::CliContext context;
    context.map_pin_dir = "/nonexistent";
    context.out = &out;
    context.err = &err;
    EXPECT_EQ(sluice::run_cli_command(command, {"--bogus"}, context), sluice::kCliUsage);
    EXPECT_NE(err.str().find("nat " + command.path.back() + ": unrecognised option '--bogus'"),
              std::string::npos)
        << err.str();
    EXPECT_EQ(out.str(), "");
  }
}

}  // namespace
