// Connect-time load balancing for processes on the node itself: the cgroup
// socket programs of nat_connect.bpf.c ([plugins.nat] connect_time_lb, see
// README.md), attached to a cgroup v2 directory through bpf_links that are
// pinned under <pin dir>/nat/connect_time_lb/<hook>, so they keep running
// while sluiced is down and a restart replaces their programs in place.
#pragma once

#include <array>
#include <cstdint>
#include <compare>
#include <memory>
#include <set>
#include <string>

#include <sluice/config.hpp>
#include <sluice/plugin.hpp>

#include "nat_layout.h"

namespace nat {

// Where the programs attach unless connect_time_lb_cgroup says otherwise:
// the root of the cgroup v2 hierarchy, i.e. every process of the machine
// (the programs themselves only act in sluiced's network namespace).
inline constexpr const char* kDefaultConnectTimeLbCgroup = "/sys/fs/cgroup";

// [plugins.nat] connect_time_lb and connect_time_lb_cgroup.
struct ConnectTimeLbConfig {
  std::string mode = "all";  // "off" | "tcp" | "udp" | "all", as written
  // The NAT_CTLB_* protocols `mode` balances (0: off).
  std::uint32_t protocols() const {
    return mode == "off"   ? 0
           : mode == "tcp" ? NAT_CTLB_TCP
           : mode == "udp" ? NAT_CTLB_UDP
                           : NAT_CTLB_TCP | NAT_CTLB_UDP;
  }
  std::string cgroup = kDefaultConnectTimeLbCgroup;
};

// Reads both keys from the [plugins.nat] table; a bad value throws
// sluice::ConfigError with file, line, column and key. The caller lists the
// keys in its expect_only().
ConnectTimeLbConfig read_connect_time_lb_config(const sluice::config::Table& nat_table);

// The attached programs of one sluiced run. Destroying it closes file
// descriptors only: the pinned links keep the programs attached.
class ConnectTimeLb {
 public:
  ConnectTimeLb();
  ~ConnectTimeLb();
  ConnectTimeLb(const ConnectTimeLb&) = delete;
  ConnectTimeLb& operator=(const ConnectTimeLb&) = delete;

  // Makes the kernel match `config`. Off: detaches and unpins whatever a
  // previous run pinned. On: loads the programs (maps reused by pin from
  // host.map_pin_dir()), then per hook swaps the program of the pinned link
  // (bpf_link_update: no moment without a program), or attaches and pins a
  // new link; hooks the mode does not need are detached and unpinned.
  // Throws sluice::Error naming the key, the path or the hook and what
  // to do; hooks handled before the failure keep their new programs, the
  // others their old ones (both read the same maps).
  void apply(sluice::Host& host, const ConnectTimeLbConfig& config);

  // A UDP backend that left its service (address in network order, IPv4 in
  // [0]; port in network order).
  struct GoneUdpBackend {
    std::uint8_t family;
    std::array<std::uint32_t, 4> addr;
    std::uint16_t port;
    auto operator<=>(const GoneUdpBackend&) const = default;
  };
  // Connected UDP sockets that connect() pointed at one of `gone` (found by
  // their cookies in nat_sock_reverse: sockets a process connected to such
  // an address itself are not touched) are aborted with sock_diag's
  // SOCK_DESTROY: the process gets ECONNABORTED and reconnects to a live
  // backend, instead of sending into the void until it does so by itself.
  // Returns how many; throws sluice::Error if the kernel refuses (no
  // CONFIG_INET_DIAG_DESTROY, say). Nothing to do before apply().
  std::size_t abort_udp_sockets(const std::set<GoneUdpBackend>& gone);

  // Detaches every program this plugin pinned under host's pin dir and
  // removes the pins and the nat_sock_reverse and nat_node_addrs maps
  // (shutdown with cleanup, or the switch turned off). Does nothing before
  // apply().
  void remove();

 private:
  struct Attached;
  std::unique_ptr<Attached> attached_;
  std::string link_pin_dir_;  // <pin dir>/nat/connect_time_lb; empty before apply()
  std::string map_pin_dir_;
};

}  // namespace nat
