// The fields nat's resources share: addresses, prefixes, protocols and the
// position of a resource in its file (so an error found after parsing, such
// as a duplicate, still names file, line, column and key) are the SDK's
// (sluice/resources/fields.hpp, sluice/parse.hpp), under nat's names.
#pragma once

#include <linux/types.h>

#include <cstdint>
#include <string>

#include <sluice/config.hpp>
#include <sluice/parse.hpp>
#include <sluice/resources/fields.hpp>

namespace nat {

using Address = sluice::IpAddress;
using Prefix = sluice::IpPrefix;
using Position = sluice::resources::ResourcePosition;

using sluice::parse::protocol_text;  // "tcp", "udp", "sctp", or the number
using sluice::resources::fail_at;
using sluice::resources::position_of;
using sluice::resources::read_ip;
using sluice::resources::read_ip_list;
// "10.0.0.0/8", "2001:db8::/32"; a bare address is a host prefix; host bits cleared.
using sluice::resources::read_prefix_list;
// protocol = "tcp" (default) | "udp" | "sctp", any case.
using sluice::resources::read_protocol;

std::string address_text(std::uint8_t family, const __be32* words);
std::string endpoint_text(std::uint8_t family, const __be32* words, __be16 port);

// Where a resource table is, and its namespace and name (both required
// non-empty; namespace defaults to "default").
inline void read_identity(const sluice::config::Table& t, const char* what, Position& at,
                          std::string& namespace_, std::string& name) {
  at = position_of(t);
  name = sluice::resources::read_name(t, what);
  namespace_ = sluice::resources::read_namespace(t);
}

}  // namespace nat
