// The Prometheus exposition writer and the HTTP side of sluiced's metrics
// server: escaping, HELP/TYPE once per name, grouping, status codes, and a
// real scrape over a loopback socket.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <stdexcept>
#include <thread>

#include "sluice/core/exposition.hpp"
#include "sluice/core/metrics_server.hpp"
#include "sluice/core/unique_fd.hpp"

using namespace sluice;

namespace {

std::size_t count(const std::string& text, const std::string& needle) {
  std::size_t n = 0;
  for (auto at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) ++n;
  return n;
}

}  // namespace

TEST(Exposition, EscapesLabelValues) {
  EXPECT_EQ(escape_label_value("plain"), "plain");
  EXPECT_EQ(escape_label_value("a\"b"), "a\\\"b");
  EXPECT_EQ(escape_label_value("back\\slash"), "back\\\\slash");
  EXPECT_EQ(escape_label_value("two\nlines"), "two\\nlines");
  EXPECT_EQ(escape_label_value("tab\tstays"), "tab\tstays");
  EXPECT_EQ(escape_help("a \"quoted\" \\ help\nline"), "a \"quoted\" \\\\ help\\nline");

  ExpositionWriter out;
  out.gauge("x_info", "h", {{"name", "eth\"0\\\n"}}, 1);
  EXPECT_EQ(out.text(), "# HELP x_info h\n# TYPE x_info gauge\nx_info{name=\"eth\\\"0\\\\\\n\"} 1\n");
}

TEST(Exposition, HelpAndTypeOncePerNameWithSamplesGrouped) {
  ExpositionWriter out;
  out.counter("sluice_packets_total", "Packets", {{"interface", "cali1"}}, 5);
  out.gauge("sluice_interfaces_managed", "Interfaces", {}, 3);
  out.counter("sluice_packets_total", "Packets (ignored second help)", {{"interface", "cali2"}},
              7);
  std::string text = out.text();
  EXPECT_EQ(count(text, "# HELP sluice_packets_total"), 1u) << text;
  EXPECT_EQ(count(text, "# TYPE sluice_packets_total counter"), 1u) << text;
  EXPECT_EQ(count(text, "# TYPE sluice_interfaces_managed gauge"), 1u) << text;
  EXPECT_EQ(text,
            "# HELP sluice_packets_total Packets\n"
            "# TYPE sluice_packets_total counter\n"
            "sluice_packets_total{interface=\"cali1\"} 5\n"
            "sluice_packets_total{interface=\"cali2\"} 7\n"
            "# HELP sluice_interfaces_managed Interfaces\n"
            "# TYPE sluice_interfaces_managed gauge\n"
            "sluice_interfaces_managed 3\n");
}

TEST(Exposition, FormatsValues) {
  EXPECT_EQ(format_sample_value(0), "0");
  EXPECT_EQ(format_sample_value(123456789012.0), "123456789012");
  EXPECT_EQ(format_sample_value(-2), "-2");
  EXPECT_EQ(format_sample_value(0.5), "0.5");
  EXPECT_EQ(format_sample_value(std::numeric_limits<double>::infinity()), "+Inf");
  EXPECT_EQ(format_sample_value(-std::numeric_limits<double>::infinity()), "-Inf");
  EXPECT_EQ(format_sample_value(std::nan("")), "NaN");
}

TEST(Exposition, RefusesInvalidNamesAndTypeChanges) {
  ExpositionWriter out;
  EXPECT_THROW(out.counter("1bad", "h", {}, 1), std::invalid_argument);
  EXPECT_THROW(out.counter("bad-name", "h", {}, 1), std::invalid_argument);
  EXPECT_THROW(out.counter("ok", "h", {{"bad-label", "v"}}, 1), std::invalid_argument);
  EXPECT_THROW(out.counter("ok", "h", {{"__reserved", "v"}}, 1), std::invalid_argument);
  EXPECT_THROW(out.counter("ok", "h", {{"a", "1"}, {"a", "2"}}, 1), std::invalid_argument);
  out.counter("ns:ok_total", "h", {{"_a1", "v"}}, 1);
  EXPECT_THROW(out.gauge("ns:ok_total", "h", {}, 1), std::invalid_argument);
  EXPECT_EQ(out.text(), "# HELP ns:ok_total h\n# TYPE ns:ok_total counter\nns:ok_total{_a1=\"v\"} 1\n");
}

TEST(MetricsHttp, AnswersByMethodAndPath) {
  auto render = [] { return std::string("m 1\n"); };
  auto ok = answer_http_request("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", render);
  EXPECT_EQ(ok.status, 200);
  EXPECT_EQ(ok.body, "m 1\n");
  EXPECT_NE(ok.content_type.find("text/plain; version=0.0.4"), std::string::npos);
  EXPECT_EQ(answer_http_request("GET /metrics?x=1 HTTP/1.0\r\n\r\n", render).status, 200);
  EXPECT_EQ(answer_http_request("GET / HTTP/1.1\r\n\r\n", render).status, 404);
  EXPECT_EQ(answer_http_request("GET /metricsx HTTP/1.1\r\n\r\n", render).status, 404);
  EXPECT_EQ(answer_http_request("POST /metrics HTTP/1.1\r\n\r\n", render).status, 405);
  EXPECT_EQ(answer_http_request("DELETE / HTTP/1.1\r\n\r\n", render).status, 405);
  for (const char* garbage : {"", "\r\n\r\n", "GET\r\n\r\n", "GET /metrics\r\n\r\n",
                              "GET  /metrics HTTP/1.1\r\n\r\n", "\x01\x02\xff garbage",
                              "GET /metrics FTP/1 extra\r\n\r\n"}) {
    EXPECT_EQ(answer_http_request(garbage, render).status, 400) << garbage;
  }
  auto failing = answer_http_request("GET /metrics HTTP/1.1\r\n\r\n",
                                     []() -> std::string { throw std::runtime_error("boom"); });
  EXPECT_EQ(failing.status, 500);
  EXPECT_NE(failing.body.find("boom"), std::string::npos);

  std::string wire = serialize_http_response(ok);
  EXPECT_EQ(wire.rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << wire;
  EXPECT_NE(wire.find("Content-Length: 4\r\n"), std::string::npos);
  EXPECT_NE(wire.find("Connection: close\r\n\r\nm 1\n"), std::string::npos);
  EXPECT_NE(serialize_http_response(answer_http_request("PUT / HTTP/1.1\r\n\r\n", render))
                .find("Allow: GET"),
            std::string::npos);
}

namespace {

// Connects to 127.0.0.1:port, sends `request` and reads until the server
// closes, while `server` is served on this thread.
std::string talk_to(MetricsServer& server, const std::string& request, bool send_all = true) {
  UniqueFd client(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(server.port());
  inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
  EXPECT_EQ(::connect(client.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  if (send_all && !request.empty()) {
    EXPECT_EQ(::send(client.get(), request.data(), request.size(), MSG_NOSIGNAL),
              static_cast<ssize_t>(request.size()));
  }
  pollfd p{server.fd(), POLLIN, 0};
  EXPECT_EQ(::poll(&p, 1, 2000), 1);
  server.serve_one();
  std::string response;
  char buffer[4096];
  for (;;) {
    ssize_t n = ::recv(client.get(), buffer, sizeof(buffer), 0);
    if (n <= 0) break;
    response.append(buffer, static_cast<std::size_t>(n));
  }
  return response;
}

ListenAddress loopback_any_port() {
  ListenAddress address;
  address.address = "127.0.0.1";
  address.port = 0;
  address.loopback = true;
  return address;
}

}  // namespace

TEST(MetricsServer, ServesAScrapeOverLoopback) {
  int renders = 0;
  MetricsServer server(loopback_any_port(), [&] {
    ++renders;
    ExpositionWriter out;
    out.counter("sluice_test_total", "test", {{"a", "b"}}, 42);
    return out.text();
  });
  ASSERT_GT(server.port(), 0);
  std::string response = talk_to(server, "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
  EXPECT_EQ(response.rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << response;
  EXPECT_NE(response.find("Content-Type: text/plain; version=0.0.4"), std::string::npos);
  EXPECT_NE(response.find("\r\n\r\n# HELP sluice_test_total test\n"), std::string::npos);
  EXPECT_NE(response.find("sluice_test_total{a=\"b\"} 42\n"), std::string::npos);
  EXPECT_EQ(renders, 1);

  EXPECT_EQ(talk_to(server, "GET /nope HTTP/1.1\r\n\r\n").rfind("HTTP/1.1 404", 0), 0u);
  EXPECT_EQ(talk_to(server, "POST /metrics HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc")
                .rfind("HTTP/1.1 405", 0),
            0u);
  EXPECT_EQ(talk_to(server, std::string("\x16\x03\x01 binary\r\n\r\n")).rfind("HTTP/1.1 400", 0),
            0u);
  EXPECT_EQ(renders, 1) << "only GET /metrics collects metrics";
}

TEST(MetricsServer, SlowOrOversizedClientsAreCutOffQuickly) {
  MetricsServer::Limits limits;
  limits.read_timeout = std::chrono::milliseconds(100);
  limits.max_request = 1024;
  MetricsServer server(loopback_any_port(), [] { return std::string(); }, limits);

  // Connects and says nothing: answered 408 after the read timeout.
  auto start = std::chrono::steady_clock::now();
  std::string silent = talk_to(server, "", false);
  auto took = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(silent.rfind("HTTP/1.1 408", 0), 0u) << silent;
  EXPECT_LT(took, std::chrono::seconds(1));

  // A request head that never ends.
  std::string huge = "GET /metrics HTTP/1.1\r\nX: " + std::string(4000, 'a');
  EXPECT_EQ(talk_to(server, huge).rfind("HTTP/1.1 431", 0), 0u);
}

TEST(MetricsServer, BindFailureIsAnErrorNamingTheAddress) {
  MetricsServer first(loopback_any_port(), [] { return std::string(); });
  ListenAddress taken = loopback_any_port();
  taken.port = first.port();
  try {
    MetricsServer second(taken, [] { return std::string(); });
    FAIL() << "bound a port that is in use";
  } catch (const std::exception& error) {
    EXPECT_NE(std::string(error.what()).find("127.0.0.1:" + std::to_string(first.port())),
              std::string::npos)
        << error.what();
  }
}
