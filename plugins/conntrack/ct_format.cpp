#include "ct_format.hpp"

#include <netinet/in.h>

#include <cstdio>

#include <sluice/parse.hpp>

namespace ct {

using sluice::output::Json;

std::string proto_name(int proto) {
  switch (proto) {
    case IPPROTO_TCP: return "TCP";
    case IPPROTO_UDP: return "UDP";
    case IPPROTO_ICMP: return "ICMP";
    case IPPROTO_ICMPV6: return "ICMPv6";
    case IPPROTO_SCTP: return "SCTP";
  }
  return std::to_string(proto);
}

std::optional<int> parse_proto(const std::string& text) {
  if (text == "any") return -1;
  if (auto proto = sluice::parse::protocol(text)) return *proto;
  return std::nullopt;
}

std::string state_name(std::uint32_t state) {
  switch (state) {
    case SL_CT_ST_ACTIVE: return "ACTIVE";
    case SL_CT_ST_SYN_SENT: return "SYN-SENT";
    case SL_CT_ST_SYN_RECV: return "SYN-RECV";
    case SL_CT_ST_ESTABLISHED: return "ESTABLISHED";
    case SL_CT_ST_FIN_WAIT: return "FIN-WAIT";
    case SL_CT_ST_CLOSED: return "CLOSED";
    case SL_CT_ST_RESET: return "RESET";
  }
  return "?";
}

std::string type_name(std::uint32_t type) {
  switch (type) {
    case SL_CT_TYPE_NORMAL: return "NORMAL";
    case SL_CT_TYPE_NAT_FWD: return "NAT_FWD";
    case SL_CT_TYPE_NAT_REV: return "NAT_REV";
  }
  return std::to_string(type);
}

std::vector<std::string> flag_names(std::uint32_t flags) {
  static const std::pair<std::uint32_t, const char*> names[] = {
      {SL_CT_F_NAT_OUT, "nat-out"}, {SL_CT_F_DSR, "fwd-dsr"},     {SL_CT_F_NP_FWD, "np-fwd"},
      {SL_CT_F_EXT_LOCAL, "ext-local"}, {SL_CT_F_BA, "B-A"}, {SL_CT_F_SVC_SELF, "svc-self"},
      {SL_CT_F_SRC_NAT, "src-nat"}, {SL_CT_F_PORT_NAT, "port-nat"},     {SL_CT_F_NODE_ADDR, "node-addr"},
      {SL_CT_F_MIDSTREAM, "midstream"}};
  std::vector<std::string> out;
  for (const auto& [bit, name] : names)
    if (flags & bit) out.emplace_back(name);
  for (std::uint32_t bit = 1; bit; bit <<= 1) {
    bool known = false;
    for (const auto& [b, name] : names) known = known || b == bit;
    if ((flags & bit) && !known) {
      char text[16];
      std::snprintf(text, sizeof(text), "0x%x", bit);
      out.emplace_back(text);
    }
  }
  return out;
}

std::string leg_flag_text(std::uint32_t flags) {
  std::string out;
  auto add = [&](std::uint32_t bit, const char* name) {
    if (flags & bit) out += (out.empty() ? "" : ",") + std::string(name);
  };
  add(SL_CT_LEG_SYN, "syn");
  add(SL_CT_LEG_ACK, "ack");
  add(SL_CT_LEG_FIN, "fin");
  add(SL_CT_LEG_RST, "rst");
  add(SL_CT_LEG_APPROVED, "approved");
  return out.empty() ? "-" : out;
}

std::string address(std::uint8_t family, const __be32* words) {
  return sluice::output::address_text(family == 6, words);
}

std::string endpoint(std::uint8_t family, const __be32* words, __be16 port) {
  return sluice::output::endpoint_text(family == 6, words, port);
}

std::string seconds_text(std::uint64_t ns) {
  char text[32];
  std::snprintf(text, sizeof(text), "%.1fs", static_cast<double>(ns) / 1e9);
  return text;
}


namespace {

bool has_ports(std::uint8_t proto) {
  return proto == IPPROTO_TCP || proto == IPPROTO_UDP || proto == IPPROTO_SCTP;
}

Json leg_json(const sl_ct_leg& leg) {
  Json out = Json::object();
  out["packets"] = static_cast<unsigned long long>(leg.packets);
  out["bytes"] = static_cast<unsigned long long>(leg.bytes);
  out["ifindex"] = leg.ifindex;
  Json flags = Json::array();
  for (auto [bit, name] : {std::pair{SL_CT_LEG_SYN, "syn"}, {SL_CT_LEG_ACK, "ack"},
                           {SL_CT_LEG_FIN, "fin"}, {SL_CT_LEG_RST, "rst"},
                           {SL_CT_LEG_APPROVED, "approved"}})
    if (leg.flags & bit) flags.push_back(name);
  out["flags"] = std::move(flags);
  return out;
}

Json key_json(const sl_ct_key& key) {
  Json out = Json::object();
  out["proto"] = static_cast<int>(key.proto);
  out["a"] = address(key.family, key.addr_a);
  out["port_a"] = static_cast<int>(ntohs(key.port_a));
  out["b"] = address(key.family, key.addr_b);
  out["port_b"] = static_cast<int>(ntohs(key.port_b));
  return out;
}


}  // namespace

// The opener's side first: "TCP 10.0.0.9:42642 -> 10.96.0.50:8385"; a
// source-NATed flow (svc-self, src-nat, port-nat) shows the client before its NAT.
std::string flow_text(const sl_ct_key& key, const sl_ct_value& value) {
  bool ba = value.flags & SL_CT_F_BA;
  const __be32* src = ba ? key.addr_b : key.addr_a;
  const __be32* dst = ba ? key.addr_a : key.addr_b;
  __be16 sport = ba ? key.port_b : key.port_a, dport = ba ? key.port_a : key.port_b;
  std::string out = proto_name(key.proto) + " ";
  if (has_ports(key.proto)) {
    if (value.type == SL_CT_TYPE_NAT_REV && (value.flags & SL_CT_F_SOURCE_NATED))
      out += endpoint(key.family, value.orig_src, value.orig_sport) + " (as " +
             endpoint(key.family, src, sport) + ") -> ";
    else
      out += endpoint(key.family, src, sport) + " -> ";
    if (value.type == SL_CT_TYPE_NAT_REV)
      out += endpoint(key.family, value.orig_dst, value.orig_dport) + " -> ";
    out += endpoint(key.family, dst, dport);
  } else {
    out += address(key.family, src) + " -> " + address(key.family, dst);
    if (key.proto == IPPROTO_ICMP || key.proto == IPPROTO_ICMPV6)
      out += " id " + std::to_string(ntohs(key.port_a));
  }
  return out;
}

Json entry_json(const Entry& e, std::uint64_t now) {
  const sl_ct_key& key = e.key;
  const sl_ct_value& v = e.value;
  Json out = Json::object();
  out["proto"] = proto_name(key.proto);
  out["family"] = key.family == 6 ? "ipv6" : "ipv4";
  out["type"] = type_name(v.type);
  out["key"] = key_json(key);
  Json flags = Json::array();
  for (auto& name : flag_names(v.flags)) flags.push_back(name);
  out["flags"] = std::move(flags);
  if (v.type == SL_CT_TYPE_NAT_FWD) {
    out["rev_key"] = key_json(v.rev_key);
    return out;
  }
  bool ba = v.flags & SL_CT_F_BA;
  out["src"] = address(key.family, ba ? key.addr_b : key.addr_a);
  out["sport"] = static_cast<int>(ntohs(ba ? key.port_b : key.port_a));
  out["dst"] = address(key.family, ba ? key.addr_a : key.addr_b);
  out["dport"] = static_cast<int>(ntohs(ba ? key.port_a : key.port_b));
  out["state"] = state_name(sl_ct_state_of(key.proto, &v));
  out["last_seen_ago_ms"] = static_cast<unsigned long long>((now - v.last_seen_ns) / 1000000);
  out["age_ms"] = static_cast<unsigned long long>((now - v.created_ns) / 1000000);
  out["a_to_b"] = leg_json(v.legs[0]);
  out["b_to_a"] = leg_json(v.legs[1]);
  if (v.type == SL_CT_TYPE_NAT_REV) {
    out["orig_dst"] = address(key.family, v.orig_dst);
    out["orig_dport"] = static_cast<int>(ntohs(v.orig_dport));
    if (v.flags & SL_CT_F_SOURCE_NATED) {
      out["orig_src"] = address(key.family, v.orig_src);
      out["orig_sport"] = static_cast<int>(ntohs(v.orig_sport));
    }
  }
  if (v.flags & SL_CT_F_NP_FWD) out["tun_ip"] = address(key.family, v.tun_ip);
  return out;
}

std::string raw_text(const Entry& e, std::uint64_t now) {
  const sl_ct_key& key = e.key;
  const sl_ct_value& v = e.value;
  std::string flags;
  for (auto& name : flag_names(v.flags)) flags += " " + name;
  char head[64];
  std::snprintf(head, sizeof(head), "Flags:0x%x", v.flags);
  std::string out = "ConntrackKey{proto=" + std::to_string(key.proto) + " " +
                    endpoint(key.family, key.addr_a, key.port_a) + " <-> " +
                    endpoint(key.family, key.addr_b, key.port_b) + "} -> Entry{Type:" +
                    std::to_string(v.type) + " (" + type_name(v.type) + "), " + head + flags;
  if (v.type == SL_CT_TYPE_NAT_FWD) {
    return out + ", RevKey:{proto=" + std::to_string(v.rev_key.proto) + " " +
           endpoint(v.rev_key.family, v.rev_key.addr_a, v.rev_key.port_a) + " <-> " +
           endpoint(v.rev_key.family, v.rev_key.addr_b, v.rev_key.port_b) + "}}";
  }
  auto leg = [](const sl_ct_leg& l) {
    return "{packets:" + std::to_string(l.packets) + " bytes:" + std::to_string(l.bytes) +
           " ifindex:" + std::to_string(l.ifindex) + " " + leg_flag_text(l.flags) + "}";
  };
  out += ", Created:" + seconds_text(now - v.created_ns) + " ago, LastSeen:" +
         seconds_text(now - v.last_seen_ns) + " ago, State:" +
         state_name(sl_ct_state_of(key.proto, &v)) + ", A2B:" + leg(v.legs[0]) +
         ", B2A:" + leg(v.legs[1]);
  if (v.flags & SL_CT_F_NP_FWD) out += ", TunIP:" + address(key.family, v.tun_ip);
  if (v.type == SL_CT_TYPE_NAT_REV)
    out += ", OrigDst:" + endpoint(key.family, v.orig_dst, v.orig_dport);
  if (v.type == SL_CT_TYPE_NAT_REV && (v.flags & SL_CT_F_SOURCE_NATED))
    out += ", OrigSrc:" + endpoint(key.family, v.orig_src, v.orig_sport);
  return out + "}";
}

}  // namespace ct
