// sluice-rr: TCP request/response rate over one established connection (the
// netperf TCP_RR pattern), for tools/bench/rr_bench.sh.
//
//   sluice-rr server <ip> <port> [size]
//       echoes fixed-size messages on every connection (one thread each)
//   sluice-rr client <ip> <port> <seconds> [size] [warmup_ms]
//       connects, exchanges request/responses for warmup_ms (default 300),
//       then counts them for <seconds> and prints
//       "transactions N seconds S rate R" (R in transactions/s)
//
// TCP_NODELAY on both sides; one request in flight at a time.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

namespace {

[[noreturn]] void die(const std::string& what) {
  std::fprintf(stderr, "sluice-rr: %s: %s\n", what.c_str(), std::strerror(errno));
  std::exit(1);
}

sockaddr_in address(const char* ip, const char* port) {
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(static_cast<std::uint16_t>(std::atoi(port)));
  if (inet_pton(AF_INET, ip, &sa.sin_addr) != 1) {
    std::fprintf(stderr, "sluice-rr: '%s' is not an IPv4 address\n", ip);
    std::exit(2);
  }
  return sa;
}

void no_delay(int fd) {
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

// Reads exactly n bytes; false on EOF or error.
bool read_all(int fd, char* buf, std::size_t n) {
  while (n) {
    ssize_t got = read(fd, buf, n);
    if (got <= 0) return false;
    buf += got;
    n -= static_cast<std::size_t>(got);
  }
  return true;
}

bool write_all(int fd, const char* buf, std::size_t n) {
  while (n) {
    ssize_t put = write(fd, buf, n);
    if (put <= 0) return false;
    buf += put;
    n -= static_cast<std::size_t>(put);
  }
  return true;
}

int server(const char* ip, const char* port, std::size_t size) {
  sockaddr_in sa = address(ip, port);
  int lfd = socket(AF_INET, SOCK_STREAM, 0);
  int one = 1;
  setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (bind(lfd, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) != 0) die("bind");
  if (listen(lfd, 16) != 0) die("listen");
  std::printf("listening on %s:%s\n", ip, port);
  std::fflush(stdout);
  for (;;) {
    int fd = accept(lfd, nullptr, nullptr);
    if (fd < 0) continue;
    no_delay(fd);
    std::thread([fd, size] {
      std::vector<char> buf(size);
      while (read_all(fd, buf.data(), size) && write_all(fd, buf.data(), size)) {
      }
      close(fd);
    }).detach();
  }
}

int client(const char* ip, const char* port, double seconds, std::size_t size, int warmup_ms) {
  sockaddr_in sa = address(ip, port);
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) != 0) die("connect");
  no_delay(fd);
  std::vector<char> buf(size, 'r');
  using clock = std::chrono::steady_clock;
  auto exchange = [&] {
    if (!write_all(fd, buf.data(), size) || !read_all(fd, buf.data(), size)) die("exchange");
  };
  auto warm_end = clock::now() + std::chrono::milliseconds(warmup_ms);
  while (clock::now() < warm_end) exchange();
  std::uint64_t n = 0;
  auto start = clock::now();
  auto end = start + std::chrono::duration_cast<clock::duration>(
                         std::chrono::duration<double>(seconds));
  clock::time_point now;
  do {
    for (int i = 0; i < 64; ++i) exchange();
    n += 64;
    now = clock::now();
  } while (now < end);
  double spent = std::chrono::duration<double>(now - start).count();
  std::printf("transactions %llu seconds %.3f rate %.0f\n", static_cast<unsigned long long>(n),
              spent, static_cast<double>(n) / spent);
  close(fd);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::string mode = argc > 1 ? argv[1] : "";
  if (mode == "server" && (argc == 4 || argc == 5))
    return server(argv[2], argv[3], argc == 5 ? std::strtoul(argv[4], nullptr, 10) : 64);
  if (mode == "client" && argc >= 5 && argc <= 7)
    return client(argv[2], argv[3], std::atof(argv[4]),
                  argc >= 6 ? std::strtoul(argv[5], nullptr, 10) : 64,
                  argc == 7 ? std::atoi(argv[6]) : 300);
  std::fprintf(stderr,
               "usage: sluice-rr server <ip> <port> [size]\n"
               "       sluice-rr client <ip> <port> <seconds> [size] [warmup_ms]\n");
  return 2;
}
