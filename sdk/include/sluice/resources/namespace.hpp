// The [[namespace]] schema: a namespace and its labels (policies select
// namespaces by them). Header-only.
//
//   [[namespace]]
//   name = "shop"               required
//   labels = { team = "a" }
#pragma once

#include <map>
#include <string>

#include <sluice/resources/fields.hpp>

namespace sluice::resources {

struct NamespaceRecord {
  std::uint32_t size = sizeof(NamespaceRecord);  // grows at the end only
  std::string name;
  std::map<std::string, std::string> labels;
  ResourcePosition at;
  const std::string& key() const { return name; }
};

// Throws ConfigError (file, line, column, key) on bad input.
inline NamespaceRecord parse_namespace(const config::Table& t) {
  t.expect_only({"name", "labels"});
  NamespaceRecord n;
  n.at = position_of(t);
  n.name = read_name(t, "a namespace");
  n.labels = read_labels(t);
  return n;
}

}  // namespace sluice::resources
