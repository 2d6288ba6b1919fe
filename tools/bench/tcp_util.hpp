// Small blocking-socket helpers shared by the TCP benchmark tools
// (sluice-rr, sluice-crr). Header-only: each tool is a single source file.
#pragma once

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

namespace sluice::bench {

// Prints "<program>: <what>: <strerror(errno)>" and exits 1.
[[noreturn]] inline void die(const std::string& what) {
  std::fprintf(stderr, "%s: %s: %s\n", program_invocation_short_name, what.c_str(),
               std::strerror(errno));
  std::exit(1);
}

// An IPv4 socket address; exits 2 (usage error) when `ip` is not IPv4.
inline sockaddr_in ipv4_address(const char* ip, const char* port) {
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(static_cast<std::uint16_t>(std::atoi(port)));
  if (inet_pton(AF_INET, ip, &sa.sin_addr) != 1) {
    std::fprintf(stderr, "%s: '%s' is not an IPv4 address\n", program_invocation_short_name, ip);
    std::exit(2);
  }
  return sa;
}

// Small messages go out at once instead of waiting for Nagle's timer.
inline void set_no_delay(int fd) {
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

// Moves exactly n bytes with read(2) or write(2) (`io`), however many calls
// that takes; false on EOF or error.
template <class Byte, class Io>
bool transfer_all(int fd, Byte* buf, std::size_t n, Io io) {
  while (n) {
    ssize_t moved = io(fd, buf, n);
    if (moved <= 0) return false;
    buf += moved;
    n -= static_cast<std::size_t>(moved);
  }
  return true;
}

inline bool read_all(int fd, char* buf, std::size_t n) { return transfer_all(fd, buf, n, ::read); }

// read_all without ever sleeping: polls with MSG_DONTWAIT until the bytes are
// there, so the caller's CPU never switches to another task and the receiver
// is never woken (for measuring the network path without scheduler costs).
inline bool read_all_spinning(int fd, char* buf, std::size_t n) {
  while (n) {
    ssize_t moved = ::recv(fd, buf, n, MSG_DONTWAIT);
    if (moved < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) continue;
    if (moved <= 0) return false;
    buf += moved;
    n -= static_cast<std::size_t>(moved);
  }
  return true;
}
inline bool write_all(int fd, const char* buf, std::size_t n) {
  return transfer_all(fd, buf, n, ::write);
}

// A listening TCP socket on ip:port (SO_REUSEADDR); exits on failure.
inline int listen_on(const char* ip, const char* port, int backlog) {
  sockaddr_in sa = ipv4_address(ip, port);
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) die("socket");
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) != 0) die("bind");
  if (listen(fd, backlog) != 0) die("listen");
  std::printf("listening on %s:%s\n", ip, port);
  std::fflush(stdout);
  return fd;
}

// The command line of the client/server tools:
//   <tool> server <ip> <port> [size]
//   <tool> client <ip> <port> <seconds> [size] [warmup_ms]
// size defaults to 64 bytes, warmup_ms to 300; prints the usage and returns
// 2 on anything else.
template <class Server, class Client>
int run_server_or_client(int argc, char** argv, Server server, Client client) {
  std::string mode = argc > 1 ? argv[1] : "";
  if (mode == "server" && (argc == 4 || argc == 5))
    return server(argv[2], argv[3], argc == 5 ? std::strtoul(argv[4], nullptr, 10) : 64);
  if (mode == "client" && argc >= 5 && argc <= 7)
    return client(argv[2], argv[3], std::atof(argv[4]),
                  argc >= 6 ? std::strtoul(argv[5], nullptr, 10) : 64,
                  argc == 7 ? std::atoi(argv[6]) : 300);
  std::fprintf(stderr,
               "usage: %s server <ip> <port> [size]\n"
               "       %s client <ip> <port> <seconds> [size] [warmup_ms]\n",
               program_invocation_short_name, program_invocation_short_name);
  return 2;
}

}  // namespace sluice::bench
