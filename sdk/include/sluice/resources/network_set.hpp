// The [[network_set]] (namespaced) and [[global_network_set]] schemas: named
// lists of CIDR prefixes with labels, selected by policies' rules.
// Header-only.
//
//   [[network_set]]                     [[global_network_set]]: no namespace
//   name = "partners"                   required
//   namespace = "shop"                  default "default"
//   nets = ["198.51.100.0/24"]          at least one
//   labels = { role = "partner" }
#pragma once

#include <map>
#include <string>
#include <vector>

#include <sluice/resources/fields.hpp>

namespace sluice::resources {

struct NetworkSetRecord {
  std::uint32_t size = sizeof(NetworkSetRecord);  // grows at the end only
  bool global = false;                            // a [[global_network_set]]
  std::string namespace_;                         // empty when global
  std::string name;
  std::vector<IpPrefix> nets;
  std::map<std::string, std::string> labels;
  ResourcePosition at;
  std::string key() const { return global ? name : namespace_ + "/" + name; }
};

// `global`: the table is a [[global_network_set]] (no namespace key).
// Throws ConfigError (file, line, column, key) on bad input.
inline NetworkSetRecord parse_network_set(const config::Table& t, bool global = false) {
  if (global) t.expect_only({"name", "nets", "labels"});
  else t.expect_only({"name", "namespace", "nets", "labels"});
  NetworkSetRecord s;
  s.global = global;
  s.at = position_of(t);
  s.name = read_name(t, global ? "a global network set" : "a network set");
  if (!global) s.namespace_ = read_namespace(t);
  s.nets = read_prefix_list(t, "nets");
  if (s.nets.empty())
    t.fail_at(t.node("nets"), "nets", "a network set needs nets = [\"<CIDR>\", ...]");
  s.labels = read_labels(t);
  return s;
}

}  // namespace sluice::resources
