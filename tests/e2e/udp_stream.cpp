// A paced UDP stream with sequence numbers, to prove that no datagram is lost
// while sluiced restarts.
//   udp_stream send <ip> <port> <count> <interval_us>
//   udp_stream recv <port> <count> <timeout_s>   -> prints "received R of N, missing M"
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

namespace {

int usage() {
  std::fprintf(stderr,
               "usage: udp_stream send <ip> <port> <count> <interval_us>\n"
               "       udp_stream recv <port> <count> <timeout_s>\n");
  return 2;
}

int send_stream(const char* ip, int port, std::uint32_t count, int interval_us) {
  int fd = socket(AF_INET, SOCK_DGRAM, 0);
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_port = htons(static_cast<std::uint16_t>(port));
  if (inet_pton(AF_INET, ip, &to.sin_addr) != 1) return usage();
  auto next = std::chrono::steady_clock::now();
  for (std::uint32_t seq = 0; seq < count; ++seq) {
    std::uint32_t wire = htonl(seq);
    if (sendto(fd, &wire, sizeof(wire), 0, reinterpret_cast<sockaddr*>(&to), sizeof(to)) < 0)
      std::fprintf(stderr, "send %u: %s\n", seq, std::strerror(errno));
    next += std::chrono::microseconds(interval_us);
    std::this_thread::sleep_until(next);
  }
  close(fd);
  return 0;
}

int receive_stream(int port, std::uint32_t count, int timeout_s) {
  int fd = socket(AF_INET, SOCK_DGRAM, 0);
  int size = 4 << 20;
  setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof(size));
  sockaddr_in at{};
  at.sin_family = AF_INET;
  at.sin_port = htons(static_cast<std::uint16_t>(port));
  if (bind(fd, reinterpret_cast<sockaddr*>(&at), sizeof(at)) != 0) {
    std::perror("bind");
    return 1;
  }
  std::printf("listening\n");
  std::fflush(stdout);
  std::vector<bool> seen(count, false);
  std::uint32_t received = 0;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(timeout_s);
  while (received < count) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) break;
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, static_cast<int>(left.count())) <= 0) continue;
    std::uint32_t wire = 0;
    if (recv(fd, &wire, sizeof(wire), 0) != sizeof(wire)) continue;
    std::uint32_t seq = ntohl(wire);
    if (seq < count && !seen[seq]) {
      seen[seq] = true;
      ++received;
    }
  }
  std::string missing;
  std::uint32_t missing_count = 0;
  for (std::uint32_t i = 0; i < count; ++i)
    if (!seen[i]) {
      if (++missing_count <= 20) missing += " " + std::to_string(i);
    }
  std::printf("received %u of %u, missing %u%s%s\n", received, count, missing_count,
              missing_count ? ":" : "", missing.c_str());
  close(fd);
  return received == count ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 6 && std::string(argv[1]) == "send")
    return send_stream(argv[2], std::atoi(argv[3]), std::strtoul(argv[4], nullptr, 10),
                       std::atoi(argv[5]));
  if (argc == 5 && std::string(argv[1]) == "recv")
    return receive_stream(std::atoi(argv[2]), std::strtoul(argv[3], nullptr, 10),
                          std::atoi(argv[4]));
  return usage();
}
