// Connect-time load balancing: configuration, the cgroup v2 directory, and
// the pinned bpf_links of nat_connect.bpf.c (see connect_lb.hpp, README.md).
#include "connect_lb.hpp"

#include <fcntl.h>
#include <linux/inet_diag.h>
#include <linux/magic.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <set>
#include <stdexcept>
#include <system_error>
#include <vector>

#include <sluice/skeleton.hpp>
#include <sluice/unique_fd.hpp>

#include <sluice/maps.hpp>

#include "nat_connect.skel.h"
#include "node_addresses.hpp"

namespace nat {

namespace {

constexpr const char* kCgroupKey = "[plugins.nat] connect_time_lb_cgroup";
// Where the cgroup v2 hierarchy is mounted when /sys/fs/cgroup is not one
// (a legacy or hybrid cgroup layout), as Cilium and Calico do under /run.
constexpr const char* kOwnCgroup2Mount = "/run/sluice/cgroup2";

struct CgroupHook {
  const char* name;  // the pin's name; the program is nat_<name>
  bpf_attach_type attach_type;
  std::uint32_t needed_by;  // the NAT_CTLB_* protocols that need the hook
};

// connect and getpeername serve both protocols (TCP, connected UDP); the
// programs check the socket's protocol against nat_ctlb_protocols.
constexpr CgroupHook kHooks[] = {
    {"connect4", BPF_CGROUP_INET4_CONNECT, NAT_CTLB_TCP | NAT_CTLB_UDP},
    {"connect6", BPF_CGROUP_INET6_CONNECT, NAT_CTLB_TCP | NAT_CTLB_UDP},
    {"getpeername4", BPF_CGROUP_INET4_GETPEERNAME, NAT_CTLB_TCP | NAT_CTLB_UDP},
    {"getpeername6", BPF_CGROUP_INET6_GETPEERNAME, NAT_CTLB_TCP | NAT_CTLB_UDP},
    {"sendmsg4", BPF_CGROUP_UDP4_SENDMSG, NAT_CTLB_UDP},
    {"sendmsg6", BPF_CGROUP_UDP6_SENDMSG, NAT_CTLB_UDP},
    {"recvmsg4", BPF_CGROUP_UDP4_RECVMSG, NAT_CTLB_UDP},
    {"recvmsg6", BPF_CGROUP_UDP6_RECVMSG, NAT_CTLB_UDP},
};

using ConnectSkeleton = sluice::Skeleton<nat_connect, nat_connect__destroy>;

// Closes our descriptor of a link: a pinned link stays attached.
struct LinkCloser {
  void operator()(bpf_link* link) const { bpf_link__destroy(link); }
};
using LinkHandle = std::unique_ptr<bpf_link, LinkCloser>;

std::string errno_text(int err) { return std::strerror(err); }

[[noreturn]] void fail(const std::string& message) { throw sluice::Error("nat: " + message); }

bool on_cgroup2(const std::string& path) {
  struct statfs fs {};
  return statfs(path.c_str(), &fs) == 0 &&
         static_cast<unsigned long>(fs.f_type) == CGROUP2_SUPER_MAGIC;
}

// The cgroup directory to attach to. The default (/sys/fs/cgroup) that is
// not cgroup v2 holds v1 hierarchies (or nothing): mounting over it would
// hide them, so the v2 hierarchy — one root wherever it is mounted — is
// mounted on a directory of our own instead, as the core mounts bpffs.
std::string cgroup_directory(const ConnectTimeLbConfig& config, sluice::Host& host) {
  if (on_cgroup2(config.cgroup)) return config.cgroup;
  if (config.cgroup != kDefaultConnectTimeLbCgroup)
    fail(std::string(kCgroupKey) + ": " + config.cgroup +
         " is not a directory of a cgroup v2 hierarchy; create the cgroup (mkdir) under a "
         "cgroup2 mount, or mount one there (mount -t cgroup2 none " +
         config.cgroup + ")");
  if (on_cgroup2(kOwnCgroup2Mount)) return kOwnCgroup2Mount;
  std::error_code ec;
  std::filesystem::create_directories(kOwnCgroup2Mount, ec);
  if (ec || mount("cgroup2", kOwnCgroup2Mount, "cgroup2", 0, nullptr) != 0)
    fail(std::string(kCgroupKey) + ": " + kDefaultConnectTimeLbCgroup +
         " is not cgroup v2 and mounting cgroup2 at " + kOwnCgroup2Mount + " failed (" +
         (ec ? ec.message() : errno_text(errno)) +
         "). Mount it yourself (mount -t cgroup2 none DIR) and set connect_time_lb_cgroup = "
         "\"DIR\", or set connect_time_lb = \"off\"");
  host.log(sluice::LogLevel::info, std::string("nat: mounted cgroup2 at ") + kOwnCgroup2Mount +
                                       " (" + kDefaultConnectTimeLbCgroup +
                                       " is not cgroup v2) for connect-time load balancing");
  return kOwnCgroup2Mount;
}

// The id the kernel reports in a cgroup link's info.
std::uint64_t cgroup_id_of(const std::string& directory) {
  union {
    file_handle handle;
    char bytes[sizeof(file_handle) + sizeof(std::uint64_t)];
  } buffer{};
  buffer.handle.handle_bytes = sizeof(std::uint64_t);
  int mount_id = 0;
  if (name_to_handle_at(AT_FDCWD, directory.c_str(), &buffer.handle, &mount_id, 0) != 0)
    fail(std::string(kCgroupKey) + ": cannot read the cgroup id of " + directory + ": " +
         errno_text(errno));
  std::uint64_t id = 0;
  std::memcpy(&id, buffer.handle.f_handle, sizeof(id));
  return id;
}

// The network namespace sluiced manages: only its sockets are balanced.
std::uint64_t own_netns_cookie() {
  sluice::UniqueFd sock(socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  std::uint64_t cookie = 0;
  socklen_t size = sizeof(cookie);
  if (!sock || getsockopt(sock.get(), SOL_SOCKET, SO_NETNS_COOKIE, &cookie, &size) != 0)
    fail("cannot read this network namespace's cookie (SO_NETNS_COOKIE, Linux 5.14 or "
         "later): " +
         errno_text(errno) +
         "; connect-time load balancing needs it to act in this namespace only. Set "
         "[plugins.nat] connect_time_lb = \"off\"");
  return cookie;
}

bpf_program* program_of(const nat_connect* skeleton, const CgroupHook& hook) {
  std::string name = std::string("nat_") + hook.name;
  bpf_program* program = bpf_object__find_program_by_name(skeleton->obj, name.c_str());
  if (!program) fail("nat_connect.bpf.c has no program " + name + " (a build mismatch)");
  return program;
}

// The link pinned at `path` by a previous run, if any. Anything else at that
// path (the directory is ours) is removed.
LinkHandle open_pinned_link(const std::string& path) {
  LinkHandle link(bpf_link__open(path.c_str()));
  if (link) return link;
  int open_error = errno;
  if (open_error == ENOENT) return nullptr;
  if (unlink(path.c_str()) != 0 && errno != ENOENT)
    fail("cannot remove " + path + ", which is not a usable link (" + errno_text(open_error) +
         "): " + errno_text(errno));
  return nullptr;
}

bool attached_to(const bpf_link* link, std::uint64_t cgroup_id, bpf_attach_type attach_type) {
  bpf_link_info info{};
  std::uint32_t size = sizeof(info);
  if (bpf_obj_get_info_by_fd(bpf_link__fd(link), &info, &size) != 0) return false;
  // A detached link reports cgroup id 0.
  return info.type == BPF_LINK_TYPE_CGROUP && info.cgroup.cgroup_id == cgroup_id &&
         info.cgroup.attach_type == static_cast<std::uint32_t>(attach_type);
}

// Detaches the program of the link pinned at `path` (whoever else holds the
// link) and removes the pin. False: nothing was pinned there.
bool remove_pinned_link(const std::string& path) {
  LinkHandle link = open_pinned_link(path);
  if (!link) return false;
  bpf_link__detach(link.get());  // fails only on a link already detached
  if (bpf_link__unpin(link.get()) != 0 && errno != ENOENT)
    fail("cannot remove the pinned link " + path + ": " + errno_text(errno));
  return true;
}

void remove_file(const std::string& path) {
  if (unlink(path.c_str()) != 0 && errno != ENOENT)
    fail("cannot remove " + path + ": " + errno_text(errno));
}

}  // namespace

ConnectTimeLbConfig read_connect_time_lb_config(const sluice::config::Table& nat_table) {
  ConnectTimeLbConfig config;
  config.mode = nat_table.get_choice("connect_time_lb", "all", {"off", "tcp", "udp", "all"});
  std::string cgroup = nat_table.get_string("connect_time_lb_cgroup", kDefaultConnectTimeLbCgroup);
  if (cgroup.empty() || cgroup.front() != '/')
    nat_table.fail("connect_time_lb_cgroup",
                   "'" + cgroup +
                       "' is not an absolute path; give a cgroup v2 directory (default " +
                       kDefaultConnectTimeLbCgroup + ", the root: every process of the node)");
  // One spelling per directory, so the default is recognised as such.
  std::string normal = std::filesystem::path(cgroup).lexically_normal().string();
  while (normal.size() > 1 && normal.back() == '/') normal.pop_back();
  config.cgroup = normal;
  return config;
}

struct ConnectTimeLb::Attached {
  ConnectSkeleton skeleton;
  std::vector<LinkHandle> links;
  std::unique_ptr<NodeAddresses> node_addresses;
};

ConnectTimeLb::ConnectTimeLb() = default;
ConnectTimeLb::~ConnectTimeLb() = default;

void ConnectTimeLb::apply(sluice::Host& host, const ConnectTimeLbConfig& config) {
  link_pin_dir_ = host.pin_dir() + "/nat/connect_time_lb";
  map_pin_dir_ = host.map_pin_dir();
  if (!config.protocols()) {
    remove();
    host.log(sluice::LogLevel::info,
             "nat: connect-time load balancing is off (connect_time_lb = \"off\"): processes "
             "on the node do not reach services");
    return;
  }
  std::string cgroup = cgroup_directory(config, host);
  sluice::UniqueFd cgroup_fd(open(cgroup.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!cgroup_fd)
    fail(std::string(kCgroupKey) + ": cannot open " + cgroup + ": " + errno_text(errno));
  std::uint64_t cgroup_id = cgroup_id_of(cgroup);

  LIBBPF_OPTS(bpf_object_open_opts, opts, .pin_root_path = map_pin_dir_.c_str());
  ConnectSkeleton skeleton(nat_connect__open_opts(&opts));
  if (!skeleton)
    fail("cannot open the connect-time load balancing BPF object: " + errno_text(errno));
  skeleton->rodata->nat_ctlb_netns_cookie = own_netns_cookie();
  skeleton->rodata->nat_ctlb_protocols = config.protocols();
  for (const auto& hook : kHooks)
    bpf_program__set_autoload(program_of(skeleton.get(), hook),
                              (config.protocols() & hook.needed_by) != 0);
  host.load_bpf("nat connect-time load balancing (nat_connect.bpf.c)",
                [&] { return nat_connect__load(skeleton.get()); });

  std::error_code ec;
  std::filesystem::create_directories(link_pin_dir_, ec);
  if (ec) fail("cannot create " + link_pin_dir_ + " for the pinned links: " + ec.message());
  auto attached = std::make_unique<Attached>();
  int updated = 0, created = 0, removed = 0;
  for (const auto& hook : kHooks) {
    std::string path = link_pin_dir_ + "/" + hook.name;
    if (!(config.protocols() & hook.needed_by)) {
      removed += remove_pinned_link(path);
      continue;
    }
    bpf_program* program = program_of(skeleton.get(), hook);
    LinkHandle previous = open_pinned_link(path);
    if (previous && attached_to(previous.get(), cgroup_id, hook.attach_type)) {
      // A restart: the link stays, its program is swapped atomically.
      if (bpf_link__update_program(previous.get(), program) != 0)
        fail(std::string("cannot replace the program of the pinned ") + hook.name + " link " +
             path + ": " + errno_text(errno) +
             " (sluiced --cleanup removes the pins; then start again)");
      attached->links.push_back(std::move(previous));
      ++updated;
      continue;
    }
    LinkHandle link(bpf_program__attach_cgroup(program, cgroup_fd.get()));
    if (!link)
      fail(std::string("cannot attach the ") + hook.name + " program to the cgroup " + cgroup +
           ": " + errno_text(errno) + " (" + kCgroupKey + ")");
    if (previous) {
      // Attached elsewhere by a previous run (connect_time_lb_cgroup
      // changed): the new link already runs, so the old one can go.
      bpf_link__detach(previous.get());
      bpf_link__unpin(previous.get());
    }
    if (bpf_link__pin(link.get(), path.c_str()) != 0)
      fail(std::string("cannot pin the ") + hook.name + " link at " + path + ": " +
           errno_text(errno));
    attached->links.push_back(std::move(link));
    ++created;
  }
  attached->node_addresses =
      std::make_unique<NodeAddresses>(bpf_map__fd(skeleton->maps.nat_node_addrs), host);
  attached->skeleton = std::move(skeleton);
  attached_ = std::move(attached);
  host.log(sluice::LogLevel::info,
           "nat: connect-time load balancing (connect_time_lb = \"" + config.mode +
               "\") for processes in this network namespace, cgroup " + cgroup + ": " +
               std::to_string(updated) + " pinned link(s) took the new programs, " +
               std::to_string(created) + " attached, " + std::to_string(removed) +
               " removed (pins under " + link_pin_dir_ + ")");
}

namespace {

// One sock_diag request on `fd` (NETLINK_SOCK_DIAG); calls on_socket for
// every inet_diag_msg a dump answers. Returns the error the kernel answered
// (0: none); throws if the socket itself fails.
template <class OnSocket>
int sock_diag_request(int fd, const inet_diag_req_v2& request, std::uint16_t type,
                      std::uint16_t flags, OnSocket on_socket) {
  struct {
    nlmsghdr header;
    inet_diag_req_v2 body;
  } message{};
  message.header.nlmsg_len = sizeof(message);
  message.header.nlmsg_type = type;
  message.header.nlmsg_flags = NLM_F_REQUEST | flags;
  message.body = request;
  if (send(fd, &message, sizeof(message), 0) != static_cast<ssize_t>(sizeof(message)))
    fail("sock_diag: cannot send a request: " + errno_text(errno));
  alignas(nlmsghdr) char buffer[32768];
  for (;;) {
    ssize_t n = recv(fd, buffer, sizeof(buffer), 0);
    if (n < 0) fail("sock_diag: cannot read the answer: " + errno_text(errno));
    for (auto* h = reinterpret_cast<nlmsghdr*>(buffer); NLMSG_OK(h, static_cast<unsigned>(n));
         h = NLMSG_NEXT(h, n)) {
      if (h->nlmsg_type == NLMSG_DONE) return 0;
      if (h->nlmsg_type == NLMSG_ERROR) return -reinterpret_cast<nlmsgerr*>(NLMSG_DATA(h))->error;
      if (h->nlmsg_type == SOCK_DIAG_BY_FAMILY)
        on_socket(*reinterpret_cast<const inet_diag_msg*>(NLMSG_DATA(h)));
    }
  }
}

}  // namespace

std::size_t ConnectTimeLb::abort_udp_sockets(const std::set<GoneUdpBackend>& gone) {
  if (!attached_ || gone.empty()) return 0;
  // The sockets connect() pointed at a gone backend, by cookie.
  int reverse = bpf_map__fd(attached_->skeleton->maps.nat_sock_reverse);
  std::set<std::uint64_t> cookies;
  std::set<std::uint8_t> families;
  sluice::for_each_entry<nat_sock_rev_key, nat_sock_rev_value>(
      reverse, [&](const nat_sock_rev_key& k, const nat_sock_rev_value&) {
        GoneUdpBackend backend{k.family, {}, k.port};
        std::memcpy(backend.addr.data(), k.addr, sizeof(k.addr));
        if (gone.count(backend)) {
          cookies.insert(k.cookie);
          families.insert(k.family);
        }
      });
  if (cookies.empty()) return 0;

  sluice::UniqueFd diag(socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_SOCK_DIAG));
  if (!diag) fail("cannot open a sock_diag socket: " + errno_text(errno));
  std::vector<inet_diag_msg> doomed;
  for (std::uint8_t family : families) {
    inet_diag_req_v2 dump{};
    dump.sdiag_family = family == 4 ? AF_INET : AF_INET6;
    dump.sdiag_protocol = IPPROTO_UDP;
    dump.idiag_states = ~0u;
    int error = sock_diag_request(
        diag.get(), dump, SOCK_DIAG_BY_FAMILY, NLM_F_DUMP, [&](const inet_diag_msg& socket) {
          std::uint64_t cookie = (static_cast<std::uint64_t>(socket.id.idiag_cookie[1]) << 32) |
                                 socket.id.idiag_cookie[0];
          if (cookies.count(cookie)) doomed.push_back(socket);
        });
    if (error) fail("sock_diag: cannot list the UDP sockets: " + errno_text(error));
  }
  for (const auto& socket : doomed) {
    inet_diag_req_v2 destroy{};
    destroy.sdiag_family = socket.idiag_family;
    destroy.sdiag_protocol = IPPROTO_UDP;
    destroy.idiag_states = ~0u;
    destroy.id = socket.id;
    int error =
        sock_diag_request(diag.get(), destroy, SOCK_DESTROY, NLM_F_ACK, [](const inet_diag_msg&) {});
    if (error == ENOENT) continue;  // closed meanwhile
    if (error)
      fail("sock_diag: cannot abort a UDP socket of a removed backend: " + errno_text(error) +
           " (it needs CONFIG_INET_DIAG_DESTROY)");
  }
  return doomed.size();
}

void ConnectTimeLb::remove() {
  if (link_pin_dir_.empty()) return;
  attached_.reset();
  for (const auto& hook : kHooks) remove_pinned_link(link_pin_dir_ + "/" + hook.name);
  remove_file(map_pin_dir_ + "/" NAT_MAP_SOCK_REVERSE);
  remove_file(map_pin_dir_ + "/" NAT_MAP_NODE_ADDRS);
  // Empty directories only; anything else someone put there stays.
  rmdir(link_pin_dir_.c_str());
  rmdir(std::filesystem::path(link_pin_dir_).parent_path().c_str());
}

}  // namespace nat
