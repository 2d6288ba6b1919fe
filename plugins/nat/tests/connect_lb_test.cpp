// Connect-time load balancing (nat_connect.bpf.c, connect_lb.cpp) on the real
// kernel. BPF_PROG_TEST_RUN does not run cgroup sock_addr programs (the
// kernel answers ENOTSUPP, 6.18 included), so these tests use real sockets:
// the test thread moves into a network namespace of its own (only lo) and
// the process into a cgroup of its own, the nat plugin attaches its programs
// to that cgroup (connect_time_lb_cgroup), and services point at listeners
// on loopback. Nothing else on the machine is affected: the programs act
// only on sockets of the cgroup's processes in the plugin's namespace.
#include <arpa/inet.h>
#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <gtest/gtest.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <sluice/maps.hpp>
#include <sluice/testing/stage_test.hpp>
#include <sluice/unique_fd.hpp>

#include "nat_layout.h"

namespace {

// Made-up packets "arrive" on lo from addresses routed elsewhere: conntrack's
// workload source check is off (conntrack_test.cpp and e2e.source_check test it).
constexpr const char* kConntrackConfig = "[plugins.conntrack]\nworkload_source_check = false\n";

using sluice::UniqueFd;
using sluice::testing::PluginUnderTest;
using sluice::testing::Testbed;

// 198.18.0.0/15 (benchmarking, RFC 2544) and fd00:5c7b::/64: addresses no
// real service uses.
constexpr const char* kTcpService = "198.18.0.10";
constexpr const char* kUdpService = "198.18.0.53";
constexpr const char* kTcpService6 = "fd00:5c7b::10";

const char* const kHookNames[] = {"connect4",     "connect6", "getpeername4", "getpeername6",
                                  "sendmsg4",     "sendmsg6", "recvmsg4",     "recvmsg6"};

[[noreturn]] void die(const std::string& what) {
  throw std::runtime_error(what + ": " + std::strerror(errno));
}

// Brings lo of the calling thread's network namespace up (no fork: also for
// a child of this multi-threaded process).
bool loopback_up() {
  UniqueFd sock(socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  ifreq request{};
  std::strncpy(request.ifr_name, "lo", sizeof(request.ifr_name) - 1);
  if (!sock || ioctl(sock.get(), SIOCGIFFLAGS, &request) != 0) return false;
  request.ifr_flags = static_cast<short>(request.ifr_flags | IFF_UP);
  return ioctl(sock.get(), SIOCSIFFLAGS, &request) == 0;
}

// The calling thread in a fresh network namespace with lo up, for the
// lifetime of the object.
struct PrivateNetns {
  int saved = -1;
  PrivateNetns() {
    saved = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
    if (saved < 0 || unshare(CLONE_NEWNET) != 0) die("cannot enter a new network namespace");
    if (!loopback_up()) die("cannot bring lo up");
  }
  ~PrivateNetns() {
    if (saved >= 0) {
      setns(saved, CLONE_NEWNET);
      close(saved);
    }
  }
};

void write_file(const std::string& path, const std::string& text) {
  std::ofstream out(path);
  out << text;
  out.flush();
  if (!out) die("cannot write " + path);
}

constexpr const char* kCgroupPrefix = "sluice-nat-ctlb-test-";

// The test process in a cgroup v2 directory of its own (under the first
// cgroup2 mount, or one this object mounts), moved back and removed after.
struct TestCgroup {
  std::string mount_point, path, previous;
  bool mounted_here = false;
  TestCgroup() {
    std::ifstream mounts("/proc/self/mounts");
    std::string device, dir, type, rest;
    while (mounts >> device >> dir >> type && std::getline(mounts, rest))
      if (type == "cgroup2") {
        mount_point = dir;
        break;
      }
    if (mount_point.empty()) {
      char tmpl[] = "/tmp/sluice-cgroup2-XXXXXX";
      if (!mkdtemp(tmpl)) die("mkdtemp");
      mount_point = tmpl;
      if (mount("cgroup2", tmpl, "cgroup2", 0, nullptr) != 0) die("cannot mount cgroup2");
      mounted_here = true;
    }
    // Cgroups of test processes that died before removing theirs.
    for (const auto& entry : std::filesystem::directory_iterator(mount_point)) {
      std::string name = entry.path().filename().string();
      if (name.rfind(kCgroupPrefix, 0) == 0 &&
          kill(std::atoi(name.c_str() + std::strlen(kCgroupPrefix)), 0) != 0 && errno == ESRCH)
        rmdir(entry.path().c_str());
    }
    std::ifstream self("/proc/self/cgroup");
    std::string line;
    while (std::getline(self, line))
      if (line.rfind("0::", 0) == 0) previous = mount_point + line.substr(3);
    path = mount_point + "/" + kCgroupPrefix + std::to_string(getpid());
    if (mkdir(path.c_str(), 0755) != 0 && errno != EEXIST) die("cannot create " + path);
    write_file(path + "/cgroup.procs", std::to_string(getpid()));
  }
  ~TestCgroup() {
    try {
      write_file(previous + "/cgroup.procs", std::to_string(getpid()));
    } catch (...) {
    }
    rmdir(path.c_str());
    if (mounted_here) {
      umount(mount_point.c_str());
      rmdir(mount_point.c_str());
    }
  }
};

// ---- sockets --------------------------------------------------------------------

struct Endpoint {
  std::string ip;
  std::uint16_t port = 0;
  bool operator==(const Endpoint&) const = default;
  bool operator<(const Endpoint& o) const { return std::tie(ip, port) < std::tie(o.ip, o.port); }
};
std::ostream& operator<<(std::ostream& out, const Endpoint& e) {
  return out << e.ip << " port " << e.port;
}

int family_of(const std::string& ip) { return ip.find(':') == std::string::npos ? AF_INET : AF_INET6; }

sockaddr_storage socket_address(const std::string& ip, std::uint16_t port, socklen_t& size) {
  sockaddr_storage ss{};
  if (family_of(ip) == AF_INET) {
    auto* sin = reinterpret_cast<sockaddr_in*>(&ss);
    sin->sin_family = AF_INET;
    sin->sin_port = htons(port);
    inet_pton(AF_INET, ip.c_str(), &sin->sin_addr);
    size = sizeof(*sin);
  } else {
    auto* sin6 = reinterpret_cast<sockaddr_in6*>(&ss);
    sin6->sin6_family = AF_INET6;
    sin6->sin6_port = htons(port);
    inet_pton(AF_INET6, ip.c_str(), &sin6->sin6_addr);
    size = sizeof(*sin6);
  }
  return ss;
}

Endpoint endpoint_of(const sockaddr_storage& ss) {
  char text[INET6_ADDRSTRLEN] = {};
  if (ss.ss_family == AF_INET) {
    const auto* sin = reinterpret_cast<const sockaddr_in*>(&ss);
    inet_ntop(AF_INET, &sin->sin_addr, text, sizeof(text));
    return {text, ntohs(sin->sin_port)};
  }
  const auto* sin6 = reinterpret_cast<const sockaddr_in6*>(&ss);
  inet_ntop(AF_INET6, &sin6->sin6_addr, text, sizeof(text));
  return {text, ntohs(sin6->sin6_port)};
}

Endpoint peer_of(int fd) {
  sockaddr_storage ss{};
  socklen_t size = sizeof(ss);
  if (getpeername(fd, reinterpret_cast<sockaddr*>(&ss), &size) != 0) die("getpeername");
  return endpoint_of(ss);
}

Endpoint local_of(int fd) {
  sockaddr_storage ss{};
  socklen_t size = sizeof(ss);
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &size) != 0) die("getsockname");
  return endpoint_of(ss);
}

// A socket bound to `ip` on a port the kernel picks (TCP: listening).
UniqueFd bound_socket(int type, const std::string& ip) {
  UniqueFd fd(socket(family_of(ip), type | SOCK_CLOEXEC, 0));
  socklen_t size = 0;
  sockaddr_storage ss = socket_address(ip, 0, size);
  if (!fd || bind(fd.get(), reinterpret_cast<sockaddr*>(&ss), size) != 0) die("bind " + ip);
  if (type == SOCK_STREAM && listen(fd.get(), 128) != 0) die("listen");
  return fd;
}

// connect() from a new socket of `family`: the socket, or the errno.
struct Connected {
  UniqueFd fd;
  int error = 0;
};
Connected connect_to(int family, int type, const std::string& ip, std::uint16_t port) {
  Connected c;
  c.fd.reset(socket(family, type | SOCK_CLOEXEC, 0));
  if (!c.fd) die("socket");
  timeval timeout{2, 0};
  setsockopt(c.fd.get(), SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof(timeout));
  setsockopt(c.fd.get(), SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
  socklen_t size = 0;
  sockaddr_storage ss = socket_address(ip, port, size);
  if (connect(c.fd.get(), reinterpret_cast<sockaddr*>(&ss), size) != 0) c.error = errno;
  return c;
}
Connected connect_to(int type, const std::string& ip, std::uint16_t port) {
  return connect_to(family_of(ip), type, ip, port);
}

// Accepts what is queued on a listener without waiting.
int drain_accepts(int listener) {
  fcntl(listener, F_SETFL, fcntl(listener, F_GETFL) | O_NONBLOCK);
  int n = 0;
  while (true) {
    UniqueFd conn(accept4(listener, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC));
    if (!conn) {
      if (errno == EINTR) continue;
      return n;
    }
    ++n;
  }
}

// sendto() of `text`: 0 or the errno.
int send_to(int fd, const std::string& text, const std::string& ip, std::uint16_t port) {
  socklen_t size = 0;
  sockaddr_storage ss = socket_address(ip, port, size);
  if (sendto(fd, text.data(), text.size(), 0, reinterpret_cast<sockaddr*>(&ss), size) < 0)
    return errno;
  return 0;
}

// recvfrom() with a timeout: the text and where it came from.
std::optional<std::pair<std::string, Endpoint>> receive(int fd) {
  timeval timeout{2, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
  char buffer[256];
  sockaddr_storage from{};
  socklen_t size = sizeof(from);
  ssize_t n = recvfrom(fd, buffer, sizeof(buffer), 0, reinterpret_cast<sockaddr*>(&from), &size);
  if (n < 0) return std::nullopt;
  return std::make_pair(std::string(buffer, static_cast<std::size_t>(n)), endpoint_of(from));
}

// The first of `fds` with something to read within 2 s, or -1.
int wait_readable(std::vector<int> fds) {
  std::vector<pollfd> polled;
  for (int fd : fds) polled.push_back({fd, POLLIN, 0});
  if (poll(polled.data(), polled.size(), 2000) <= 0) return -1;
  for (const auto& p : polled)
    if (p.revents & POLLIN) return p.fd;
  return -1;
}

// Two backends of one protocol on loopback, each on its own port.
struct TwoBackends {
  UniqueFd one, two;
  Endpoint first, second;
  explicit TwoBackends(int type)
      : one(bound_socket(type, "127.0.0.1")),
        two(bound_socket(type, "127.0.0.1")),
        first(local_of(one.get())),
        second(local_of(two.get())) {}
  std::vector<Endpoint> endpoints() const { return {first, second}; }
};

// ---- the bed ------------------------------------------------------------------

std::string backends_toml(const std::vector<Endpoint>& backends) {
  std::string out;
  for (const auto& b : backends)
    out += "{ ip = \"" + b.ip + "\", port = " + std::to_string(b.port) + " },";
  return out;
}

std::string service_toml(const std::string& name, const std::string& vip, int port,
                         const std::string& protocol, const std::vector<Endpoint>& backends,
                         const std::string& extra = "") {
  return "[[service]]\nname = \"" + name + "\"\ncluster_ip = \"" + vip + "\"\nports = [{ port = " +
         std::to_string(port) + ", protocol = \"" + protocol + "\" }]\n" + extra +
         "backends = [" + backends_toml(backends) + "]\n";
}

struct Bed {
  PrivateNetns netns;
  TestCgroup cgroup;
  Testbed bed;
  PluginUnderTest ct;
  std::optional<PluginUnderTest> nat;

  explicit Bed(const std::string& mode = "all")
      : ct(bed.load_plugin(CONNTRACK_PLUGIN, kConntrackConfig)) {
    nat.emplace(bed.load_plugin(NAT_PLUGIN, nat_config(mode)));
  }
  std::string nat_config(const std::string& mode) const {
    return "[plugins.nat]\nconnect_time_lb = \"" + mode + "\"\nconnect_time_lb_cgroup = \"" +
           cgroup.path + "\"\n";
  }

  void apply(const std::string& text) {
    sluice::ResourceChange change;
    change.upserted.push_back({"/state/services.toml", text});
    nat->plugin().reconcile(change);
  }

  std::string link_pin(const char* hook) const {
    return bed.pin_dir() + "/nat/connect_time_lb/" + hook;
  }
  // Program ids attached to the test cgroup for one hook.
  std::vector<std::uint32_t> attached(bpf_attach_type type) const {
    UniqueFd dir(open(cgroup.path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    std::uint32_t ids[16] = {}, count = 16;
    if (bpf_prog_query(dir.get(), type, 0, nullptr, ids, &count) != 0) die("bpf_prog_query");
    return std::vector<std::uint32_t>(ids, ids + count);
  }
};

// ---- tests -----------------------------------------------------------------------

TEST(ConnectTimeLb, TcpConnectionsSpreadOverBackendsAndTheirPeerIsTheService) {
  Bed t;
  TwoBackends backends(SOCK_STREAM);
  t.apply(service_toml("web", kTcpService, 80, "tcp", backends.endpoints()));

  std::vector<UniqueFd> clients;
  for (int i = 0; i < 40; ++i) {
    Connected c = connect_to(SOCK_STREAM, kTcpService, 80);
    ASSERT_EQ(c.error, 0) << "connect " << i << ": " << std::strerror(c.error);
    EXPECT_EQ(peer_of(c.fd.get()), (Endpoint{kTcpService, 80}));
    EXPECT_EQ(local_of(c.fd.get()).ip, "127.0.0.1");  // the route to the backend chose it
    clients.push_back(std::move(c.fd));
  }
  int to_one = drain_accepts(backends.one.get()), to_two = drain_accepts(backends.two.get());
  EXPECT_EQ(to_one + to_two, 40);
  EXPECT_GT(to_one, 5) << "connections were not spread: " << to_one << " / " << to_two;
  EXPECT_GT(to_two, 5) << "connections were not spread: " << to_one << " / " << to_two;

  // One reverse entry per socket, naming the service.
  auto reverse = sluice::PinnedMap<nat_sock_rev_key, nat_sock_rev_value>::open(
      t.bed.map_pin_dir() + "/" NAT_MAP_SOCK_REVERSE);
  int entries = 0;
  reverse.for_each([&](const nat_sock_rev_key&, const nat_sock_rev_value& value) {
    EXPECT_EQ(value.port, htons(80));
    EXPECT_EQ(value.family, 4);
    ++entries;
  });
  EXPECT_EQ(entries, 40);
}

TEST(ConnectTimeLb, OtherDestinationsAreLeftAlone) {
  Bed t;
  UniqueFd backend = bound_socket(SOCK_STREAM, "127.0.0.1");
  t.apply(service_toml("web", kTcpService, 80, "tcp", {local_of(backend.get())}));
  // Another port of the service address, and the backend itself: not frontends.
  Connected other_port = connect_to(SOCK_STREAM, kTcpService, 81);
  EXPECT_EQ(other_port.error, ENETUNREACH) << std::strerror(other_port.error);
  Connected direct = connect_to(SOCK_STREAM, "127.0.0.1", local_of(backend.get()).port);
  ASSERT_EQ(direct.error, 0);
  EXPECT_EQ(peer_of(direct.fd.get()), local_of(backend.get()));
}

// A node port answers on every address of the node — loopback's, and one
// added while the programs run (nat_node_addrs follows netlink) — and not on
// an address the node does not have.
TEST(ConnectTimeLb, NodePortsAnswerOnTheNodesAddresses) {
  Bed t;
  UniqueFd backend = bound_socket(SOCK_STREAM, "127.0.0.1");
  t.apply("[[service]]\nname = \"np\"\ncluster_ip = \"" + std::string(kTcpService) +
          "\"\nexternal_traffic_policy = \"local\"\n"
          "ports = [{ port = 80, protocol = \"tcp\", node_port = 30080 }]\n"
          "backends = [" +
          backends_toml({local_of(backend.get())}) + "]\n");

  Connected c = connect_to(SOCK_STREAM, "127.0.0.1", 30080);
  ASSERT_EQ(c.error, 0) << std::strerror(c.error);
  EXPECT_EQ(peer_of(c.fd.get()), (Endpoint{"127.0.0.1", 30080}));  // what it asked for
  EXPECT_EQ(drain_accepts(backend.get()), 1);

  // 198.18.1.1 is not the node's yet: left alone (nothing listens there).
  Connected before = connect_to(SOCK_STREAM, "198.18.1.1", 30080);
  EXPECT_NE(before.error, 0);
  ASSERT_EQ(std::system("ip addr add 198.18.1.1/32 dev lo"), 0);
  // The watcher is a netlink subscription on the host's event loop: the
  // harness runs it here, as sluiced runs it on its thread. The kernel
  // queued the notification before `ip` returned.
  EXPECT_EQ(t.nat->run_events(std::chrono::milliseconds(2000)), 1u);
  int error = connect_to(SOCK_STREAM, "198.18.1.1", 30080).error;
  EXPECT_EQ(error, 0) << "a node port on an address added later: " << std::strerror(error);
  EXPECT_EQ(drain_accepts(backend.get()), 1);

  // Removed again: no longer a node address.
  ASSERT_EQ(std::system("ip addr del 198.18.1.1/32 dev lo"), 0);
  EXPECT_EQ(t.nat->run_events(std::chrono::milliseconds(2000)), 1u);
  EXPECT_NE(connect_to(SOCK_STREAM, "198.18.1.1", 30080).error, 0);
}

TEST(ConnectTimeLb, UdpRepliesComeFromTheServiceAndOneSocketKeepsItsBackend) {
  Bed t;
  TwoBackends backends(SOCK_DGRAM);
  t.apply(service_toml("dns", kUdpService, 53, "udp", backends.endpoints()));

  std::map<Endpoint, int> sockets_per_backend;
  for (int s = 0; s < 16; ++s) {
    UniqueFd client(socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    std::set<Endpoint> backends_seen;
    for (int d = 0; d < 4; ++d) {
      ASSERT_EQ(send_to(client.get(), "q", kUdpService, 53), 0);
      // Whichever backend got it answers, as a DNS server would.
      int server = wait_readable({backends.one.get(), backends.two.get()});
      ASSERT_GE(server, 0) << "socket " << s << " datagram " << d << " was lost";
      auto query = receive(server);
      ASSERT_TRUE(query);
      backends_seen.insert(server == backends.one.get() ? backends.first : backends.second);
      ASSERT_EQ(send_to(server, "a", query->second.ip, query->second.port), 0);
      auto answer = receive(client.get());
      ASSERT_TRUE(answer) << "no answer on socket " << s;
      EXPECT_EQ(answer->second, (Endpoint{kUdpService, 53})) << "the reply's source";
    }
    EXPECT_EQ(backends_seen.size(), 1u) << "one socket's datagrams went to several backends";
    sockets_per_backend[*backends_seen.begin()]++;
  }
  EXPECT_EQ(sockets_per_backend.size(), 2u) << "sockets were not spread over both backends";
}

TEST(ConnectTimeLb, ConnectedUdpSocketsSeeTheServiceAsPeerAndSource) {
  Bed t;
  UniqueFd backend = bound_socket(SOCK_DGRAM, "127.0.0.1");
  t.apply(service_toml("dns", kUdpService, 53, "udp", {local_of(backend.get())}));
  Connected c = connect_to(SOCK_DGRAM, kUdpService, 53);
  ASSERT_EQ(c.error, 0) << std::strerror(c.error);
  EXPECT_EQ(peer_of(c.fd.get()), (Endpoint{kUdpService, 53}));
  ASSERT_EQ(send(c.fd.get(), "q", 1, 0), 1);
  auto query = receive(backend.get());
  ASSERT_TRUE(query);
  ASSERT_EQ(send_to(backend.get(), "a", query->second.ip, query->second.port), 0);
  auto answer = receive(c.fd.get());
  ASSERT_TRUE(answer);
  EXPECT_EQ(answer->second, (Endpoint{kUdpService, 53}));
}

// A connected UDP socket of a backend that leaves its service is aborted
// (ECONNABORTED), so its process reconnects to a live one; a socket on the
// backend that stays, and one a process connected to the gone backend's
// address itself, are left alone.
TEST(ConnectTimeLb, ConnectedUdpSocketsOfARemovedBackendAreAborted) {
  Bed t;
  TwoBackends backends(SOCK_DGRAM);
  t.apply(service_toml("dns", kUdpService, 53, "udp", backends.endpoints()));
  // Sockets until both backends have one (the choice is a hash per socket).
  std::map<int, UniqueFd> by_backend;  // backend fd -> client socket
  for (int i = 0; i < 64 && by_backend.size() < 2; ++i) {
    Connected c = connect_to(SOCK_DGRAM, kUdpService, 53);
    ASSERT_EQ(c.error, 0) << std::strerror(c.error);
    ASSERT_EQ(send(c.fd.get(), "q", 1, 0), 1);
    int got = wait_readable({backends.one.get(), backends.two.get()});
    ASSERT_GE(got, 0) << "no backend got the datagram";
    ASSERT_TRUE(receive(got));
    by_backend.emplace(got, std::move(c.fd));
  }
  ASSERT_EQ(by_backend.size(), 2u) << "64 sockets all landed on one backend";
  Connected direct = connect_to(SOCK_DGRAM, backends.first.ip, backends.first.port);
  ASSERT_EQ(direct.error, 0);

  t.apply(service_toml("dns", kUdpService, 53, "udp", {backends.second}));
  auto error_of = [](int fd) {
    int error = 0;
    socklen_t size = sizeof(error);
    getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &size);
    return error;
  };
  EXPECT_EQ(error_of(by_backend.at(backends.one.get()).get()), ECONNABORTED);
  EXPECT_EQ(error_of(by_backend.at(backends.two.get()).get()), 0);
  EXPECT_EQ(send(by_backend.at(backends.two.get()).get(), "q", 1, 0), 1);
  EXPECT_EQ(error_of(direct.fd.get()), 0);
  EXPECT_EQ(send(direct.fd.get(), "q", 1, 0), 1);
  EXPECT_NE(t.nat->log().find("aborted 1 connected UDP socket"), std::string::npos)
      << t.nat->log();
}

TEST(ConnectTimeLb, AServiceWithoutBackendsRefusesAtOnce) {
  Bed t;
  t.apply(service_toml("web", kTcpService, 80, "tcp", {}) +
          service_toml("dns", kUdpService, 53, "udp", {}));
  Connected tcp = connect_to(SOCK_STREAM, kTcpService, 80);
  EXPECT_EQ(tcp.error, ECONNREFUSED) << std::strerror(tcp.error);
  UniqueFd udp(socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  EXPECT_EQ(send_to(udp.get(), "q", kUdpService, 53), ECONNREFUSED);
}

TEST(ConnectTimeLb, Ipv6AndIpv4MappedDestinations) {
  Bed t;
  UniqueFd six = bound_socket(SOCK_STREAM, "::1");
  UniqueFd four = bound_socket(SOCK_STREAM, "127.0.0.1");
  t.apply(service_toml("web6", kTcpService6, 80, "tcp", {local_of(six.get())}) +
          service_toml("web", kTcpService, 80, "tcp", {local_of(four.get())}));

  Connected c6 = connect_to(SOCK_STREAM, kTcpService6, 80);
  ASSERT_EQ(c6.error, 0) << std::strerror(c6.error);
  EXPECT_EQ(peer_of(c6.fd.get()), (Endpoint{kTcpService6, 80}));
  EXPECT_EQ(drain_accepts(six.get()), 1);

  // A dual-stack socket asking for ::ffff:198.18.0.10 reaches the IPv4 backend.
  std::string mapped = std::string("::ffff:") + kTcpService;
  Connected dual = connect_to(AF_INET6, SOCK_STREAM, mapped, 80);
  ASSERT_EQ(dual.error, 0) << std::strerror(dual.error);
  EXPECT_EQ(peer_of(dual.fd.get()), (Endpoint{mapped, 80}));
  EXPECT_EQ(drain_accepts(four.get()), 1);
}

TEST(ConnectTimeLb, SessionAffinityKeepsTheNodeOnOneBackend) {
  Bed t;
  TwoBackends backends(SOCK_STREAM);
  t.apply(service_toml("web", kTcpService, 80, "tcp", backends.endpoints(),
                       "session_affinity = \"client_ip\"\n"));
  std::vector<UniqueFd> clients;
  for (int i = 0; i < 12; ++i) {
    Connected c = connect_to(SOCK_STREAM, kTcpService, 80);
    ASSERT_EQ(c.error, 0) << std::strerror(c.error);
    clients.push_back(std::move(c.fd));
  }
  int to_one = drain_accepts(backends.one.get()), to_two = drain_accepts(backends.two.get());
  EXPECT_TRUE((to_one == 12 && to_two == 0) || (to_one == 0 && to_two == 12))
      << to_one << " / " << to_two;
  // The node is one client: the all-zero address.
  UniqueFd affinity(bpf_obj_get((t.bed.map_pin_dir() + "/" NAT_MAP_AFFINITY).c_str()));
  nat_aff_key key{};
  ASSERT_EQ(bpf_map_get_next_key(affinity.get(), nullptr, &key), 0);
  EXPECT_EQ(key.family, 4u);
  EXPECT_EQ(key.client[0] | key.client[1] | key.client[2] | key.client[3], 0u);
}

TEST(ConnectTimeLb, OnlySocketsOfThePluginsNetworkNamespaceAreBalanced) {
  Bed t;
  UniqueFd backend = bound_socket(SOCK_STREAM, "127.0.0.1");
  t.apply(service_toml("web", kTcpService, 80, "tcp", {local_of(backend.get())}));
  // A child in the same cgroup but another namespace (lo up, no listener):
  // left alone, its connect finds no route (rewritten to 127.0.0.1, it would
  // be refused).
  pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    if (unshare(CLONE_NEWNET) != 0 || !loopback_up()) _exit(100);
    Connected c = connect_to(SOCK_STREAM, kTcpService, 80);
    _exit(c.error == ENETUNREACH ? 0 : c.error ? c.error : 101);
  }
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0) << "the other namespace's connect ended with "
                                    << std::strerror(WEXITSTATUS(status));
}

TEST(ConnectTimeLb, TcpModeLeavesUdpAloneAndAttachesOnlyWhatItNeeds) {
  Bed t("tcp");
  UniqueFd tcp_backend = bound_socket(SOCK_STREAM, "127.0.0.1");
  UniqueFd udp_backend = bound_socket(SOCK_DGRAM, "127.0.0.1");
  t.apply(service_toml("web", kTcpService, 80, "tcp", {local_of(tcp_backend.get())}) +
          service_toml("dns", kUdpService, 53, "udp", {local_of(udp_backend.get())}));
  EXPECT_EQ(connect_to(SOCK_STREAM, kTcpService, 80).error, 0);
  UniqueFd udp(socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  EXPECT_EQ(send_to(udp.get(), "q", kUdpService, 53), ENETUNREACH);
  EXPECT_EQ(connect_to(SOCK_DGRAM, kUdpService, 53).error, ENETUNREACH);

  for (const char* hook : {"connect4", "connect6", "getpeername4", "getpeername6"})
    EXPECT_TRUE(std::filesystem::exists(t.link_pin(hook))) << hook;
  for (const char* hook : {"sendmsg4", "sendmsg6", "recvmsg4", "recvmsg6"})
    EXPECT_FALSE(std::filesystem::exists(t.link_pin(hook))) << hook;
  EXPECT_EQ(t.attached(BPF_CGROUP_INET4_CONNECT).size(), 1u);
  EXPECT_EQ(t.attached(BPF_CGROUP_UDP4_SENDMSG).size(), 0u);
}

TEST(ConnectTimeLb, LinksArePinnedAndCleanupDetachesThem) {
  Bed t;
  for (const char* hook : kHookNames) EXPECT_TRUE(std::filesystem::exists(t.link_pin(hook))) << hook;
  const bpf_attach_type all_types[] = {
      BPF_CGROUP_INET4_CONNECT, BPF_CGROUP_INET6_CONNECT, BPF_CGROUP_INET4_GETPEERNAME,
      BPF_CGROUP_INET6_GETPEERNAME, BPF_CGROUP_UDP4_SENDMSG, BPF_CGROUP_UDP6_SENDMSG,
      BPF_CGROUP_UDP4_RECVMSG, BPF_CGROUP_UDP6_RECVMSG};
  for (auto type : all_types) EXPECT_EQ(t.attached(type).size(), 1u) << type;

  t.nat.reset();  // shutdown(cleanup = true)
  for (const char* hook : kHookNames) EXPECT_FALSE(std::filesystem::exists(t.link_pin(hook))) << hook;
  for (auto type : all_types) EXPECT_EQ(t.attached(type).size(), 0u) << type;
  EXPECT_FALSE(std::filesystem::exists(t.bed.map_pin_dir() + "/" NAT_MAP_SOCK_REVERSE));
}

TEST(ConnectTimeLb, AMissingCgroupIsReportedAndTheStageStillLoads) {
  PrivateNetns netns;
  Testbed bed;
  PluginUnderTest ct = bed.load_plugin(CONNTRACK_PLUGIN, kConntrackConfig);
  PluginUnderTest nat = bed.load_plugin(
      NAT_PLUGIN, "[plugins.nat]\nconnect_time_lb_cgroup = \"/nonexistent/sluice-cgroup\"\n");
  EXPECT_GE(nat.stage_fd("nat"), 0);
  EXPECT_NE(nat.log().find("error: nat: [plugins.nat] connect_time_lb_cgroup: "
                           "/nonexistent/sluice-cgroup is not a directory of a cgroup v2 "
                           "hierarchy"),
            std::string::npos)
      << nat.log();
}

TEST(ConnectTimeLb, ConfigurationErrorsNameTheKey) {
  Testbed bed;
  PluginUnderTest ct = bed.load_plugin(CONNTRACK_PLUGIN, kConntrackConfig);
  auto error_of = [&](const std::string& table) -> std::string {
    try {
      bed.load_plugin(NAT_PLUGIN, "[plugins.nat]\n" + table);
    } catch (const sluice::ConfigError& e) {
      return e.key + " at " + std::to_string(e.line) + ":" + std::to_string(e.column) + ": " +
             e.what();
    }
    return "no error";
  };
  EXPECT_EQ(error_of("connect_time_lb = \"yes\"\n"),
            "plugins.nat.connect_time_lb at 2:19: 'yes' is not one of: off, tcp, udp, all");
  EXPECT_EQ(error_of("connect_time_lb_cgroup = \"sys/fs/cgroup\"\n"),
            "plugins.nat.connect_time_lb_cgroup at 2:26: 'sys/fs/cgroup' is not an absolute "
            "path; give a cgroup v2 directory (default /sys/fs/cgroup, the root: every process "
            "of the node)");
}

}  // namespace
