// A private network namespace for stage tests whose BPF helpers ask the
// kernel about the network (bpf_fib_lookup: routes, neighbours, local
// addresses), so their answers are known and the host's are untouched.
//
//   ScopedNetns ns("ip link add t0 type veth peer name t1 && ip addr add 10.0.0.1/24 dev t0 && "
//                  "ip link set t0 up");
//   auto r = bed.run(pkt);   // runs as if the packet arrived on lo of that namespace
#pragma once

#include <fcntl.h>
#include <sched.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>

namespace sluice::testing {

// Moves the calling thread into a fresh network namespace (lo up, IPv4
// forwarding on) and runs `setup` there with /bin/sh; the destructor moves
// the thread back, and the namespace goes away with it. BPF_PROG_TEST_RUN
// runs packets as if they arrived on lo (ifindex 1) of the thread's
// namespace. Create it before the Testbed, from the thread that runs it.
class ScopedNetns {
 public:
  explicit ScopedNetns(const std::string& setup = "") {
    saved_ = ::open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
    if (saved_ < 0 || ::unshare(CLONE_NEWNET) != 0)
      throw std::runtime_error(std::string("cannot enter a new network namespace: ") +
                               std::strerror(errno));
    std::string commands = "ip link set lo up && sysctl -qw net.ipv4.ip_forward=1";
    if (!setup.empty()) commands += " && " + setup;
    if (std::system(commands.c_str()) != 0)
      throw std::runtime_error("network namespace set-up failed: " + commands);
  }
  ~ScopedNetns() {
    if (saved_ < 0) return;
    ::setns(saved_, CLONE_NEWNET);
    ::close(saved_);
  }
  ScopedNetns(const ScopedNetns&) = delete;
  ScopedNetns& operator=(const ScopedNetns&) = delete;

 private:
  int saved_ = -1;
};

}  // namespace sluice::testing
