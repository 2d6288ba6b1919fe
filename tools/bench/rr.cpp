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
// TCP_NODELAY on both sides; one request in flight at a time. With
// SLUICE_RR_SPIN=1 in the environment both sides poll for the next message
// instead of sleeping in read(2): no context switch and no wake-up per
// message, so what is left to measure is the network path (the way
// busy-polling, latency-bound applications run; each side needs a CPU).
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "tcp_util.hpp"

namespace {

using namespace sluice::bench;

bool receive(int fd, char* buf, std::size_t n) {
  static const bool spin = [] {
    const char* v = std::getenv("SLUICE_RR_SPIN");
    return v && std::string(v) == "1";
  }();
  return spin ? read_all_spinning(fd, buf, n) : read_all(fd, buf, n);
}

int server(const char* ip, const char* port, std::size_t size) {
  int lfd = listen_on(ip, port, 16);
  for (;;) {
    int fd = accept(lfd, nullptr, nullptr);
    if (fd < 0) continue;
    set_no_delay(fd);
    std::thread([fd, size] {
      std::vector<char> buf(size);
      while (receive(fd, buf.data(), size) && write_all(fd, buf.data(), size)) {
      }
      close(fd);
    }).detach();
  }
}

int client(const char* ip, const char* port, double seconds, std::size_t size, int warmup_ms) {
  sockaddr_in sa = ipv4_address(ip, port);
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) != 0) die("connect");
  set_no_delay(fd);
  std::vector<char> buf(size, 'r');
  using clock = std::chrono::steady_clock;
  auto exchange = [&] {
    if (!write_all(fd, buf.data(), size) || !receive(fd, buf.data(), size)) die("exchange");
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
  return sluice::bench::run_server_or_client(argc, argv, server, client);
}
