#include "sluice/core/metrics_server.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>

#include <spdlog/spdlog.h>

#include <cerrno>
#include <cstring>

#include "sluice/core/error.hpp"
#include "sluice/core/exposition.hpp"

namespace sluice {

namespace {

using Clock = std::chrono::steady_clock;

const char* status_text(int status) {
  switch (status) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
  }
  return "Error";
}

HttpResponse plain(int status, std::string body) {
  return {status, "text/plain; charset=utf-8", std::move(body)};
}

int remaining_ms(Clock::time_point deadline) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
  return left.count() > 0 ? static_cast<int>(left.count()) : 0;
}

// Waits until fd is ready for `events` or the deadline passes.
bool wait_for(int fd, short events, Clock::time_point deadline) {
  for (;;) {
    pollfd p{fd, events, 0};
    int ready = ::poll(&p, 1, remaining_ms(deadline));
    if (ready < 0 && errno == EINTR) continue;
    return ready > 0;
  }
}

std::string describe_peer(const sockaddr_storage& peer) {
  char text[INET6_ADDRSTRLEN] = "?";
  if (peer.ss_family == AF_INET)
    inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in&>(peer).sin_addr, text, sizeof(text));
  else if (peer.ss_family == AF_INET6)
    inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6&>(peer).sin6_addr, text,
              sizeof(text));
  return text;
}

}  // namespace

HttpResponse answer_http_request(std::string_view request,
                                 const std::function<std::string()>& render) {
  auto line_end = request.find("\r\n");
  std::string_view line = request.substr(0, line_end);
  auto first_space = line.find(' ');
  auto second_space =
      first_space == std::string_view::npos ? first_space : line.find(' ', first_space + 1);
  if (first_space == 0 || second_space == std::string_view::npos ||
      line.find(' ', second_space + 1) != std::string_view::npos)
    return plain(400, "malformed request line\n");
  std::string_view method = line.substr(0, first_space);
  std::string_view target = line.substr(first_space + 1, second_space - first_space - 1);
  std::string_view version = line.substr(second_space + 1);
  if (target.empty() || version.substr(0, 5) != "HTTP/")
    return plain(400, "malformed request line\n");
  std::string_view path = target.substr(0, target.find('?'));
  if (method != "GET" && method != "HEAD") {
    HttpResponse response = plain(405, "only GET is supported\n");
    return response;
  }
  if (path != "/metrics") return plain(404, "not found: Sluice serves /metrics\n");
  try {
    return {200, kExpositionContentType, render()};
  } catch (const std::exception& error) {
    return plain(500, std::string("cannot collect metrics: ") + error.what() + "\n");
  }
}

std::string serialize_http_response(const HttpResponse& response, bool head_only) {
  std::string out = "HTTP/1.1 " + std::to_string(response.status) + " " +
                    status_text(response.status) + "\r\n";
  out += "Content-Type: " + response.content_type + "\r\n";
  out += "Content-Length: " + std::to_string(response.body.size()) + "\r\n";
  if (response.status == 405) out += "Allow: GET, HEAD\r\n";
  out += "Connection: close\r\n\r\n";
  if (!head_only) out += response.body;
  return out;
}

MetricsServer::MetricsServer(const ListenAddress& address, std::function<std::string()> render)
    : MetricsServer(address, std::move(render), Limits{}) {}

MetricsServer::MetricsServer(const ListenAddress& address, std::function<std::string()> render,
                             Limits limits)
    : render_(std::move(render)), limits_(limits) {
  endpoint_ = (address.ipv6 ? "[" + address.address + "]" : address.address) + ":" +
              std::to_string(address.port);
  sockaddr_storage storage{};
  socklen_t length = 0;
  if (address.ipv6) {
    auto& sa = reinterpret_cast<sockaddr_in6&>(storage);
    sa.sin6_family = AF_INET6;
    sa.sin6_port = htons(address.port);
    if (inet_pton(AF_INET6, address.address.c_str(), &sa.sin6_addr) != 1)
      throw Error("metrics: '" + address.address + "' is not an IPv6 address");
    length = sizeof(sa);
  } else {
    auto& sa = reinterpret_cast<sockaddr_in&>(storage);
    sa.sin_family = AF_INET;
    sa.sin_port = htons(address.port);
    if (inet_pton(AF_INET, address.address.c_str(), &sa.sin_addr) != 1)
      throw Error("metrics: '" + address.address + "' is not an IPv4 address");
    length = sizeof(sa);
  }
  listen_fd_.reset(::socket(storage.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!listen_fd_) throw Error("metrics: socket: " + errno_text(errno));
  int one = 1;
  ::setsockopt(listen_fd_.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (address.ipv6) ::setsockopt(listen_fd_.get(), IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
  if (::bind(listen_fd_.get(), reinterpret_cast<sockaddr*>(&storage), length) != 0)
    throw Error("metrics: cannot bind " + endpoint_ + ": " + errno_text(errno));
  if (::listen(listen_fd_.get(), 16) != 0)
    throw Error("metrics: cannot listen on " + endpoint_ + ": " + errno_text(errno));
  sockaddr_storage bound{};
  socklen_t bound_length = sizeof(bound);
  if (::getsockname(listen_fd_.get(), reinterpret_cast<sockaddr*>(&bound), &bound_length) == 0)
    port_ = ntohs(bound.ss_family == AF_INET6
                      ? reinterpret_cast<sockaddr_in6&>(bound).sin6_port
                      : reinterpret_cast<sockaddr_in&>(bound).sin_port);
}

void MetricsServer::serve_one() {
  sockaddr_storage peer{};
  socklen_t peer_length = sizeof(peer);
  UniqueFd client(::accept4(listen_fd_.get(), reinterpret_cast<sockaddr*>(&peer), &peer_length,
                            SOCK_NONBLOCK | SOCK_CLOEXEC));
  if (!client) {
    if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR && errno != ECONNABORTED)
      spdlog::warn("metrics: accept on {}: {}", endpoint_, errno_text(errno));
    return;
  }
  const std::string who = describe_peer(peer);
  try {
    // The request head, until the empty line, bounded in size and time.
    std::string request;
    auto deadline = Clock::now() + limits_.read_timeout;
    HttpResponse response;
    bool have_response = false;
    for (;;) {
      if (request.find("\r\n\r\n") != std::string::npos) break;
      if (request.size() > limits_.max_request) {
        response = plain(431, "request head larger than " +
                                  std::to_string(limits_.max_request) + " bytes\n");
        have_response = true;
        break;
      }
      if (!wait_for(client.get(), POLLIN, deadline)) {
        spdlog::debug("metrics: {} sent no complete request in time", who);
        response = plain(408, "request not received in time\n");
        have_response = true;
        break;
      }
      char buffer[2048];
      ssize_t got = ::recv(client.get(), buffer, sizeof(buffer), 0);
      if (got < 0 && (errno == EAGAIN || errno == EINTR)) continue;
      if (got <= 0) {
        if (request.empty()) return;  // a probe that connects and closes
        break;                        // answer what we have (may be a 400)
      }
      request.append(buffer, static_cast<std::size_t>(got));
    }
    if (!have_response) response = answer_http_request(request, render_);
    bool head = request.rfind("HEAD ", 0) == 0;
    std::string wire = serialize_http_response(response, head);

    deadline = Clock::now() + limits_.write_timeout;
    std::size_t sent = 0;
    while (sent < wire.size()) {
      ssize_t n = ::send(client.get(), wire.data() + sent, wire.size() - sent, MSG_NOSIGNAL);
      if (n > 0) {
        sent += static_cast<std::size_t>(n);
        continue;
      }
      if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
        if (!wait_for(client.get(), POLLOUT, deadline)) {
          spdlog::debug("metrics: {} did not take the response in time", who);
          return;
        }
        continue;
      }
      spdlog::debug("metrics: sending to {}: {}", who, errno_text(errno));
      return;
    }
    // Unread request bytes (e.g. a body we ignore) would turn our close into
    // a reset that can discard the response: read what already arrived.
    ::shutdown(client.get(), SHUT_WR);
    char sink[4096];
    for (int rounds = 0; rounds < 16; ++rounds) {
      ssize_t n = ::recv(client.get(), sink, sizeof(sink), MSG_DONTWAIT);
      if (n <= 0) break;
    }
  } catch (const std::exception& error) {
    spdlog::warn("metrics: serving {}: {}", who, error.what());
  }
}

}  // namespace sluice
