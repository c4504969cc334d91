// RFC 9112 / 9110 strictness and resource bounds of the front door (issue 12, items 4-8b).
// Each test fails without its fix. Clients record; assertions run on the test thread.
#include <catch2/catch.hpp>
#include <poll.h>
#include <sys/resource.h>

#include <asio/use_awaitable.hpp>
#include <filesystem>
#include <future>

#include "dog/websocket.h"
#include "http_fixture.h"

using dog::http::Request;
using dog::http::Response;
using dog::node::HttpConfig;
using dog::node::HttpServer;
using dog::node::Loop;
using dog::test::eventually;
using dog::test::RawClient;
using dog::test::with_server;
using dog::test::WsClient;
namespace ws = dog::http::ws;

namespace {

struct Echo : dog::http::WebSocketHandler {
  void on_message(const std::shared_ptr<dog::http::WebSocket>& s, std::string_view d, bool t) override { s->send(d, t); }
};

// "/headers" answers the request's header names; "/split*" return forbidden header bytes;
// "/big" answers 300 KiB; "/ws" accepts a WebSocket; anything else echoes the body size.
dog::http::Handler handler() {
  return [](Request& req) -> asio::awaitable<Response> {
    auto path = req.path();
    if (path == "/headers") {
      std::string names;
      for (const auto& h : req.headers) names += h.name + ";";
      co_return Response::text(200, "[" + names + "]");
    }
    if (path == "/split-value") {
      auto r = Response::text(200, "x");
      r.headers.add("X-Note", "a\r\nSet-Cookie: evil=1");
      co_return r;
    }
    if (path == "/split-name") {
      auto r = Response::text(200, "x");
      r.headers.add("X-Bad\r\nSet-Cookie", "evil=1");
      co_return r;
    }
    if (path == "/split-ws") {
      auto r = Response::accept_websocket(std::make_shared<Echo>());
      r.headers.add("Sec-WebSocket-Protocol", "chat\r\nSet-Cookie: evil=1");
      co_return r;
    }
    if (path == "/405") co_return Response::method_not_allowed("GET, HEAD");
    if (path == "/426") co_return Response::text(426, "use a WebSocket");
    if (path == "/big") co_return Response::text(200, std::string(300 << 10, 'b'));
    if (path == "/ws") co_return Response::accept_websocket(std::make_shared<Echo>());
    co_return Response::text(200, "body " + std::to_string(req.body.size()) + ";");
  };
}

std::string status_line(const std::string& r) { return r.substr(0, r.find("\r\n")); }
std::string head_of(const std::string& r) { return r.substr(0, r.find("\r\n\r\n") + 4); }

// One request on a fresh connection; returns everything until the server closes (or 5 s).
std::string roundtrip(uint16_t port, const std::string& bytes) {
  RawClient c(port);
  c.send(bytes);
  std::string got;
  c.read_to_close(&got);
  return got;
}

}  // namespace

TEST_CASE("item 4: trailer fields are dropped, not merged into the request headers", "[http][rfc]") {
  Loop loop;
  HttpServer server(loop, HttpConfig::testing(), handler());
  std::string got;
  with_server(loop, server, [&](uint16_t port) {
    RawClient c(port);
    c.send("POST /headers HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
           "3\r\nabc\r\n0\r\nX-Dog-Forged: 1\r\nX-Last: 2\r\n\r\n");
    got = c.read_until("]");
  });
  CHECK(status_line(got) == "HTTP/1.1 200 OK");
  CHECK(got.find("[Host;Transfer-Encoding;]") != std::string::npos);
  CHECK(got.find("X-Dog-Forged") == std::string::npos);
  CHECK(got.find("X-Last") == std::string::npos);
}

TEST_CASE("item 5: a handler header with CR/LF becomes a 500, on the 101 path too", "[http][rfc]") {
  Loop loop;
  HttpServer server(loop, HttpConfig::testing(), handler());
  std::string value, name, upgrade;
  with_server(loop, server, [&](uint16_t port) {
    value = roundtrip(port, "GET /split-value HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    name = roundtrip(port, "GET /split-name HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    WsClient w(port, "/split-ws");
    upgrade = w.response;
  });
  for (const auto* r : {&value, &name, &upgrade}) {
    INFO(*r);
    CHECK(status_line(*r) == "HTTP/1.1 500 Internal Server Error");
    CHECK(r->find("Set-Cookie") == std::string::npos);
  }
  CHECK(server.stats().handler_errors == 3);
  CHECK(server.stats().ws_opened == 0);
}

TEST_CASE("item 6: strict parsing rejects bare LF, obs-fold, CL+TE, duplicate Content-Length", "[http][rfc]") {
  Loop loop;
  HttpServer server(loop, HttpConfig::testing(), handler());
  const std::vector<std::string> bad = {
      "GET / HTTP/1.1\nHost: x\r\n\r\n",                       // bare LF after the request line
      "GET / HTTP/1.1\r\nHost: x\r\n\n",                       // bare LF ends the head
      "GET / HTTP/1.1\r\nHost: x\nX-A: b\r\n\r\n",             // bare LF between fields
      "GET / HTTP/1.1\r\nHost: x\r\nX-A: a\r\n  folded\r\n\r\n",  // obs-fold
      "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
      "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc",
      "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3, 3\r\n\r\nabc",
      "GET / HTTP/1.1\r\nHost : x\r\n\r\n",                    // whitespace before the colon
  };
  std::vector<std::string> got;
  std::string good;
  with_server(loop, server, [&](uint16_t port) {
    for (const auto& b : bad) got.push_back(roundtrip(port, b));
    good = roundtrip(port, "\r\nGET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");  // a leading CRLF is fine
  });
  for (size_t i = 0; i < bad.size(); ++i) {
    INFO("case " << i << ": " << got[i]);
    CHECK(status_line(got[i]) == "HTTP/1.1 400 Bad Request");
  }
  CHECK(status_line(good) == "HTTP/1.1 200 OK");
  CHECK(server.stats().requests == 1);
}

TEST_CASE("item 7: a body trickled inside the idle timeout still meets the body deadline", "[http][rfc]") {
  Loop loop;
  auto cfg = HttpConfig::testing();  // idle 1 s
  cfg.body_timeout = std::chrono::milliseconds(400);
  HttpServer server(loop, cfg, handler());
  std::string got;
  bool closed = false;
  with_server(loop, server, [&](uint16_t port) {
    RawClient c(port);
    c.send("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10000\r\n\r\n");
    // One byte every 50 ms: each arrives well inside the idle timeout. Give up after 10000
    // bytes or 20 s (without the deadline the server would wait for all of them).
    auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    for (int i = 0; i < 10000 && std::chrono::steady_clock::now() < give_up; ++i) {
      if (!c.send("z")) break;
      pollfd p{c.socket().native_handle(), POLLIN, 0};
      if (::poll(&p, 1, 50) > 0) break;  // the server answered (or closed)
    }
    closed = c.read_to_close(&got);
  });
  CHECK(status_line(got) == "HTTP/1.1 408 Request Timeout");
  CHECK(closed);
  CHECK(server.stats().timeouts == 1);
}

TEST_CASE("item 7: chunk extensions are bounded", "[http][rfc]") {
  Loop loop;
  HttpServer server(loop, HttpConfig::testing(), handler());  // 4 KiB of header bytes
  std::string got, ok;
  with_server(loop, server, [&](uint16_t port) {
    got = roundtrip(port, "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3;e=" +
                             std::string(5000, 'x') + "\r\nabc\r\n0\r\n\r\n");
    ok = roundtrip(port, "POST / HTTP/1.1\r\nHost: x\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n"
                        "3;e=1\r\nabc\r\n0\r\n\r\n");
  });
  CHECK(status_line(got) == "HTTP/1.1 400 Bad Request");
  CHECK(got.find("chunk extensions too long") != std::string::npos);
  CHECK(ok.find("body 3;") != std::string::npos);
}

TEST_CASE("item 7: the accept loop backs off on EMFILE instead of spinning, then recovers", "[http][rfc]") {
#if defined(__SANITIZE_ADDRESS__)
  // The sanitizers probe memory through a pipe they open on demand, which the exhausted
  // descriptor table refuses: a false report. The Release suite runs this test.
  WARN("skipped under the sanitizers: they need free descriptors");
  return;
#endif
  Loop loop;
  HttpServer server(loop, HttpConfig::testing(), handler());
  uint64_t errors_at_start = 0, errors_at_end = 0;
  std::chrono::milliseconds span{};
  std::string served;
  with_server(loop, server, [&](uint16_t port) {
    asio::io_context io;
    asio::ip::tcp::socket s(io);
    s.open(asio::ip::tcp::v4());  // the client's descriptor exists before the limit drops
    rlimit saved{};
    ::getrlimit(RLIMIT_NOFILE, &saved);
    int lowest_free = ::dup(0);
    ::close(lowest_free);
    rlimit tight = saved;
    tight.rlim_cur = static_cast<rlim_t>(lowest_free);  // no new descriptor can be made
    ::setrlimit(RLIMIT_NOFILE, &tight);
    struct Restore {
      rlimit r;
      ~Restore() { ::setrlimit(RLIMIT_NOFILE, &r); }
    } restore{saved};
    s.connect({asio::ip::make_address("127.0.0.1"), port});  // queued; accept() gets EMFILE
    auto errors = [&] { return server.stats().accept_errors; };
    REQUIRE(eventually(loop, [&] { return errors() >= 1; }));
    auto t0 = std::chrono::steady_clock::now();
    std::promise<uint64_t> first;
    loop.post([&] { first.set_value(errors()); });
    errors_at_start = first.get_future().get();
    REQUIRE(eventually(loop, [&] { return errors() >= errors_at_start + 4; }));
    span = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0);
    errors_at_end = errors_at_start + 4;
    ::setrlimit(RLIMIT_NOFILE, &saved);
    asio::write(s, asio::buffer(std::string("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")));
    std::error_code ec;
    char buf[4096];
    for (size_t n; (n = s.read_some(asio::buffer(buf), ec)) > 0 && !ec;) served.append(buf, n);
  });
  // Four more failures after the first need at least 10+20+40+80 ms of back-off; a spinning
  // loop makes thousands in that time. (A lower bound: a slow machine only makes it longer.)
  CHECK(span >= std::chrono::milliseconds(140));
  CHECK(errors_at_end > errors_at_start);
  CHECK(status_line(served) == "HTTP/1.1 200 OK");
}

TEST_CASE("item 7: buffers shrink back after one large request, response and message", "[http][rfc]") {
  Loop loop;
  auto cfg = HttpConfig::testing();
  cfg.max_body_bytes = 1 << 20;
  cfg.max_ws_message_bytes = 1 << 20;
  cfg.max_ws_send_queue_bytes = 1 << 20;
  HttpServer server(loop, cfg, handler());
  bool http_small = false, ws_small = false;
  size_t http_peak = 0;
  std::string echoed;
  with_server(loop, server, [&](uint16_t port) {
    RawClient c(port);
    c.send("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 512000\r\n\r\n" + std::string(512000, 'p'));
    c.read_until("body 512000;");
    c.send("GET /big HTTP/1.1\r\nHost: x\r\n\r\n");
    std::string big = c.read_until(std::string(1024, 'b'));
    while (big.size() < (300 << 10)) big += c.read_some();
    http_small = eventually(loop, [&] {
      http_peak = server.buffer_bytes();
      return http_peak < (64 << 10);
    });
    WsClient w(port);
    w.send(ws::Opcode::kBinary, std::string(512000, 'm'));
    echoed = w.next().payload;
    ws_small = eventually(loop, [&] { return server.buffer_bytes() < (2 * (64 << 10)); });
  });
  INFO("connection buffers: " << http_peak);
  CHECK(http_small);
  CHECK(echoed.size() == 512000);
  CHECK(ws_small);
}

TEST_CASE("item 8: Connection: close with pipelined input unread does not reset the response", "[http][rfc]") {
  // Closing a socket with unread input sends RST at once, discarding whatever of the response
  // is still queued. A client that reads slowly (small receive buffer) loses the tail.
  Loop loop;
  HttpServer server(loop, HttpConfig::testing(), handler());
  std::string got;
  std::error_code end;
  with_server(loop, server, [&](uint16_t port) {
    RawClient c(port);
    int small = 4096;
    ::setsockopt(c.socket().native_handle(), SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    c.send("GET /big HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n" +
           std::string(64 << 10, 'j'));
    // Give the server time to finish with the request (a reset shows up as POLLERR here).
    pollfd p{c.socket().native_handle(), POLLRDHUP, 0};
    ::poll(&p, 1, 1500);
    char buf[65536];
    for (int i = 0; i < 100000; ++i) {
      size_t n = c.socket().read_some(asio::buffer(buf), end);
      if (end) break;
      got.append(buf, n);
    }
  });
  CHECK(status_line(got) == "HTTP/1.1 200 OK");
  CHECK(got.size() > (300 << 10));
  CHECK(got.substr(got.size() - 100) == std::string(100, 'b'));
  CHECK(end == asio::error::eof);  // a reset would be connection_reset
}

TEST_CASE("item 8: 100 Continue goes to HTTP/1.1 clients only, and responses carry Date", "[http][rfc]") {
  Loop loop;
  HttpServer server(loop, HttpConfig::testing(), handler());
  std::string v10, v11, err;
  with_server(loop, server, [&](uint16_t port) {
    v10 = roundtrip(port, "POST / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\nabc");
    v11 = roundtrip(port, "POST / HTTP/1.1\r\nHost: x\r\nConnection: close\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\nabc");
    err = roundtrip(port, "BLAH\x01 / HTTP/1.1\r\n\r\n");
  });
  CHECK(status_line(v10) == "HTTP/1.1 200 OK");
  CHECK(v10.find("100 Continue") == std::string::npos);
  CHECK(v11.rfind("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n", 0) == 0);
  for (const auto* r : {&v10, &v11, &err}) {
    auto at = r->find("\r\nDate: ");
    INFO(*r);
    REQUIRE(at != std::string::npos);
    std::string date = r->substr(at + 8, r->find("\r\n", at + 2) - at - 8);
    CHECK(date.size() == 29);  // IMF-fixdate: "Sun, 06 Nov 1994 08:49:37 GMT"
    CHECK(date.substr(25) == " GMT");
  }
}

TEST_CASE("item 8b: Host is required once in HTTP/1.1, 405 has Allow, 426 has Upgrade", "[http][rfc]") {
  Loop loop;
  HttpServer server(loop, HttpConfig::testing(), handler());
  std::string no_host, two_hosts, old_no_host, allow, plain_ws, bad_version, handler_426;
  with_server(loop, server, [&](uint16_t port) {
    no_host = roundtrip(port, "GET / HTTP/1.1\r\n\r\n");
    two_hosts = roundtrip(port, "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n");
    old_no_host = roundtrip(port, "GET / HTTP/1.0\r\n\r\n");
    allow = roundtrip(port, "DELETE /405 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    plain_ws = roundtrip(port, "GET /ws HTTP/1.1\r\nHost: x\r\n\r\n");
    bad_version = roundtrip(port, "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                                 "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8\r\n\r\n");
    handler_426 = roundtrip(port, "GET /426 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  });
  CHECK(status_line(no_host) == "HTTP/1.1 400 Bad Request");
  CHECK(status_line(two_hosts) == "HTTP/1.1 400 Bad Request");
  CHECK(status_line(old_no_host) == "HTTP/1.1 200 OK");
  CHECK(status_line(allow) == "HTTP/1.1 405 Method Not Allowed");
  CHECK(head_of(allow).find("\r\nAllow: GET, HEAD\r\n") != std::string::npos);
  for (const auto* r : {&plain_ws, &bad_version, &handler_426}) {
    INFO(*r);
    CHECK(status_line(*r) == "HTTP/1.1 426 Upgrade Required");
    CHECK(head_of(*r).find("\r\nUpgrade: websocket\r\n") != std::string::npos);
    CHECK(head_of(*r).find("\r\nConnection: upgrade") != std::string::npos);
  }
}

TEST_CASE("item 8b: the Upgrade token is matched case-insensitively, also in a list", "[http][rfc]") {
  Loop loop;
  HttpServer server(loop, HttpConfig::testing(), handler());
  std::string mixed, listed;
  auto upgrade = [](std::string value) {
    return "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: " + value + "\r\nConnection: keep-alive, Upgrade\r\n"
           "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
  };
  with_server(loop, server, [&](uint16_t port) {
    { RawClient c(port); c.send(upgrade("WebSocket")); mixed = c.read_until("\r\n\r\n"); }
    { RawClient c(port); c.send(upgrade("h2c, WEBSOCKET")); listed = c.read_until("\r\n\r\n"); }
  });
  CHECK(status_line(mixed) == "HTTP/1.1 101 Switching Protocols");
  CHECK(status_line(listed) == "HTTP/1.1 101 Switching Protocols");
}

TEST_CASE("item 12: Headers::set replaces every same-named header, so forged duplicates go", "[http][rfc]") {
  dog::http::Headers h;
  h.add("Host", "x");
  h.add("X-Dog-Client-Identifier", "forged-1");
  h.add("Accept", "*/*");
  h.add("x-dog-client-identifier", "forged-2");
  h.set("x-dog-client-identifier", "real");
  std::vector<std::string> values;
  for (const auto& f : h)
    if (dog::http::iequals(f.name, "x-dog-client-identifier")) values.push_back(f.value);
  CHECK(values == std::vector<std::string>{"real"});
  CHECK(h.get("X-DOG-CLIENT-IDENTIFIER") == std::optional<std::string_view>("real"));
  CHECK(h.size() == 3);
  CHECK(h.get("accept") == std::optional<std::string_view>("*/*"));
}
