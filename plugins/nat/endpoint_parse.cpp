#include "endpoint_parse.hpp"

namespace nat {

using sluice::ConfigError;
using sluice::config::Table;

EndpointSpec parse_endpoint(const Table& t) {
  t.expect_only({"name", "namespace", "interface", "ips", "labels", "ports", "node"});
  EndpointSpec e;
  read_identity(t, "an endpoint", e.at, e.namespace_, e.name);
  t.get_string("interface", "");  // the workload's veth: other plugins' business
  t.get_string("node", "");
  if (auto labels = t.table("labels"))
    for (const auto& [key, value] : labels->raw())
      if (!value.is_string())
        labels->fail(key.str(), "a label value is a string");
  e.ips = read_ip_list(t, "ips");
  if (e.ips.empty()) t.fail_at(t.node("ips"), "ips", "an endpoint needs ips = [\"<address>\", ...]");
  for (const Table& p : t.get_table_list("ports")) {
    p.expect_only({"name", "port", "protocol"});
    if (!p.has("name")) p.fail_at(nullptr, "name", "a named port needs a name");
    if (!p.has("port")) p.fail_at(nullptr, "port", "a named port needs port = <1-65535>");
    std::string name = p.get_string("name", "");
    std::uint8_t number = read_protocol(p);
    std::uint16_t port = p.get_port("port", 0);
    if (!e.ports.emplace(std::make_pair(name, number), port).second)
      p.fail("name", "port name '" + name + "' (" + protocol_text(number) + ") is listed twice");
  }
  return e;
}

}  // namespace nat
