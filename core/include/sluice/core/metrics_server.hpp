// A minimal HTTP/1.1 server for Prometheus scrapes, driven by sluiced's
// poll() loop: one listening socket; when it is readable, serve_one() accepts
// a connection, reads the request (bounded in size and time), answers and
// closes. It never blocks the daemon for longer than its timeouts and never
// throws from serve_one().
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include "sluice/core/config.hpp"
#include "sluice/core/unique_fd.hpp"

namespace sluice {

struct HttpResponse {
  int status = 200;
  std::string content_type;
  std::string body;
};

// The answer to one raw request (request line and headers): GET /metrics
// (query string ignored) -> 200 with render()'s text, other paths -> 404,
// other methods -> 405, anything unparsable -> 400. An exception from
// render() becomes a 500 carrying its message.
HttpResponse answer_http_request(std::string_view request,
                                 const std::function<std::string()>& render);
// The bytes on the wire (status line, headers, body; Connection: close).
std::string serialize_http_response(const HttpResponse& response, bool head_only = false);

class MetricsServer {
 public:
  struct Limits {
    std::chrono::milliseconds read_timeout{500};   // whole request head
    std::chrono::milliseconds write_timeout{1000};  // whole response
    std::size_t max_request = 8192;                  // bytes of request head
  };

  // Binds and listens (non-blocking, close-on-exec); throws Error naming the
  // address and what the kernel said. Port 0 picks a free port (tests).
  MetricsServer(const ListenAddress& address, std::function<std::string()> render);
  MetricsServer(const ListenAddress& address, std::function<std::string()> render,
                Limits limits);

  int fd() const { return listen_fd_.get(); }
  std::uint16_t port() const { return port_; }
  // The address as configured, e.g. "127.0.0.1:9464".
  const std::string& endpoint() const { return endpoint_; }

  // Accepts and serves one waiting connection, if any. Never throws:
  // problems with a client are logged at debug level and the client dropped.
  void serve_one();

 private:
  UniqueFd listen_fd_;
  std::uint16_t port_ = 0;
  std::string endpoint_;
  std::function<std::string()> render_;
  Limits limits_;
};

}  // namespace sluice
