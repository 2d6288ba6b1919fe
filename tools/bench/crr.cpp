// sluice-crr: new TCP connections per second and how long each takes (the
// netperf TCP_CRR pattern), for tools/bench/kubeproxy_bench.sh.
//
//   sluice-crr server <ip> <port> [size]
//       serves one connection at a time: reads one request of <size> bytes
//       (default 64), answers with <size> bytes, waits for the client to
//       close. One at a time is enough: the client has one connection open.
//   sluice-crr client <ip> <port> <seconds> [size] [warmup_ms]
//       in a loop: socket, connect, one request, one response, close; for
//       warmup_ms (default 300) untimed, then for <seconds>. Prints one line
//         connections N seconds S rate R connect_p50_us A connect_p99_us B
//         response_p50_us C response_p99_us D failed F
//       rate = connections/s; connect = connect() call to its return (the
//       SYN through the service address and the SYN-ACK back: the packet a
//       service proxy has to look up); response = connect() call to the
//       whole response read (the first exchange of a new connection).
//       Exits 1 when no connection succeeded.
//
// The client closes with SO_LINGER 0 (an RST, no FIN handshake), so neither
// side keeps a TIME_WAIT socket: thousands of connections a second would
// otherwise run out of ephemeral ports. Connect, send and receive time out
// after 2 s, so a broken path shows up as failed connections, not as a hang.
#include <sys/time.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "tcp_util.hpp"

namespace {

using namespace sluice::bench;
using Clock = std::chrono::steady_clock;

constexpr timeval kIoTimeout{2, 0};

void set_io_timeouts(int fd) {
  // SO_SNDTIMEO also bounds a blocking connect().
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &kIoTimeout, sizeof(kIoTimeout));
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &kIoTimeout, sizeof(kIoTimeout));
}

int server(const char* ip, const char* port, std::size_t size) {
  int lfd = listen_on(ip, port, 1024);
  std::vector<char> buf(size, 's');
  for (;;) {
    int fd = accept4(lfd, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) continue;
    set_no_delay(fd);
    set_io_timeouts(fd);
    if (read_all(fd, buf.data(), size) && write_all(fd, buf.data(), size)) {
      // Wait for the client's RST (read fails) or FIN (read returns 0), so
      // the server never closes first and never holds a TIME_WAIT socket.
      char sink;
      while (read(fd, &sink, 1) > 0) {
      }
    }
    close(fd);
  }
}

// Latency samples of one run, in microseconds.
struct Samples {
  std::vector<double> connect_us, response_us;
};

// Nearest rank: the smallest sample with at least p % of the samples <= it.
double percentile(std::vector<double>& v, double p) {
  if (v.empty()) return 0;
  auto rank = std::max<std::size_t>(
      1, static_cast<std::size_t>(std::ceil(p / 100.0 * static_cast<double>(v.size()))));
  std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(rank - 1), v.end());
  return v[rank - 1];
}

double us_between(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double, std::micro>(b - a).count();
}

// One connection: connect, request, response, close with an RST. Records
// the latencies when `samples` is given; false if any step failed.
bool one_connection(const sockaddr_in& sa, std::vector<char>& buf, Samples* samples,
                    std::string& error) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) die("socket");
  set_no_delay(fd);
  set_io_timeouts(fd);
  linger reset_on_close{1, 0};
  setsockopt(fd, SOL_SOCKET, SO_LINGER, &reset_on_close, sizeof(reset_on_close));

  auto start = Clock::now();
  bool ok = connect(fd, reinterpret_cast<const sockaddr*>(&sa), sizeof(sa)) == 0;
  auto connected = Clock::now();
  if (!ok) error = std::string("connect: ") + std::strerror(errno);
  errno = 0;  // read_all() returning false on EOF leaves errno as it was
  if (ok && !(write_all(fd, buf.data(), buf.size()) && read_all(fd, buf.data(), buf.size()))) {
    ok = false;
    error = std::string("request/response: ") + (errno ? std::strerror(errno) : "closed by peer");
  }
  auto answered = Clock::now();
  close(fd);
  if (ok && samples) {
    samples->connect_us.push_back(us_between(start, connected));
    samples->response_us.push_back(us_between(start, answered));
  }
  return ok;
}

int client(const char* ip, const char* port, double seconds, std::size_t size, int warmup_ms) {
  sockaddr_in sa = ipv4_address(ip, port);
  std::vector<char> buf(size, 'c');
  std::string error;
  std::uint64_t failed = 0;

  auto warm_end = Clock::now() + std::chrono::milliseconds(warmup_ms);
  while (Clock::now() < warm_end) failed += !one_connection(sa, buf, nullptr, error);

  Samples samples;
  samples.connect_us.reserve(1 << 16);
  samples.response_us.reserve(1 << 16);
  auto start = Clock::now();
  auto end = start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
  Clock::time_point now;
  do {
    failed += !one_connection(sa, buf, &samples, error);
    now = Clock::now();
  } while (now < end);

  double spent = std::chrono::duration<double>(now - start).count();
  std::size_t done = samples.connect_us.size();
  if (failed) std::fprintf(stderr, "sluice-crr: %llu connections failed, last: %s\n",
                           static_cast<unsigned long long>(failed), error.c_str());
  std::printf("connections %zu seconds %.3f rate %.0f connect_p50_us %.1f connect_p99_us %.1f "
              "response_p50_us %.1f response_p99_us %.1f failed %llu\n",
              done, spent, static_cast<double>(done) / spent, percentile(samples.connect_us, 50),
              percentile(samples.connect_us, 99), percentile(samples.response_us, 50),
              percentile(samples.response_us, 99), static_cast<unsigned long long>(failed));
  return done ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  return sluice::bench::run_server_or_client(argc, argv, server, client);
}
