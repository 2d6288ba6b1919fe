// Conntrack entries as text and JSON (sluicectl conntrack ..., metrics
// labels), and protocol names both ways. Pure: no maps.
#pragma once

#include <linux/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <sluice/bpf/conntrack.h>
#include <sluice/output.hpp>

namespace ct {

struct Entry {
  sl_ct_key key;
  sl_ct_value value;
};

std::string proto_name(int proto);  // "TCP", "UDP", ..., or the number
// "tcp", "udp", "icmp", "icmpv6", "sctp" (any case), a number 0-255, or
// "any" (-1); nullopt for anything else.
std::optional<int> parse_proto(const std::string& text);
std::string state_name(std::uint32_t state);  // "ESTABLISHED", ...
std::string type_name(std::uint32_t type);    // "NORMAL", "NAT_FWD", "NAT_REV"
std::vector<std::string> flag_names(std::uint32_t flags);  // unknown bits as 0x...
std::string leg_flag_text(std::uint32_t flags);            // "syn,ack" or "-"
std::string seconds_text(std::uint64_t ns);                // "1.2s"
std::string address(std::uint8_t family, const __be32* words);
std::string endpoint(std::uint8_t family, const __be32* words, __be16 port);  // addr:port

// The opener's side first: "TCP 10.0.0.9:42642 -> 10.96.0.50:8385"; a
// source-NATed flow (svc-self, src-nat) shows the client before its NAT.
std::string flow_text(const sl_ct_key& key, const sl_ct_value& value);
// One entry as stored, key A <-> B, type, flags and both legs (--raw).
std::string raw_text(const Entry& e, std::uint64_t now);
sluice::output::Json entry_json(const Entry& e, std::uint64_t now);

}  // namespace ct
