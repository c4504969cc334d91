// The HTTP/1.1 front door, spoken to over raw sockets. Client code runs on a second thread
// and only records what it saw; every assertion runs on the test thread afterwards.
#include <catch2/catch.hpp>

#include <poll.h>

#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>
#include <array>
#include <atomic>
#include <set>

#include "http_fixture.h"

using dog::http::Request;
using dog::http::Response;
using dog::node::HttpConfig;
using dog::node::HttpServer;
using dog::node::Loop;
using dog::test::RawClient;
using dog::test::with_server;

namespace {

// Echoes method, path and body; a few paths exercise special behaviour.
dog::http::Handler test_handler(Loop& loop) {
  return [&loop](Request& req) -> asio::awaitable<Response> {
    if (req.path() == "/throw") throw std::runtime_error("handler bug");
    if (req.path() == "/slow") {
      asio::steady_timer t(loop.io(), std::chrono::milliseconds(200));
      co_await t.async_wait(asio::use_awaitable);
      co_return Response::text(200, "slow done");
    }
    if (req.path() == "/stream") {
      auto n = std::make_shared<int>(0);
      Response r;
      r.headers.add("Content-Type", "text/plain");
      r.stream = [n]() -> asio::awaitable<std::optional<std::string>> {
        if (*n == 3) co_return std::nullopt;
        co_return "part" + std::to_string((*n)++) + ";";
      };
      co_return r;
    }
    co_return Response::text(200, req.method + " " + std::string(req.path()) + " [" + req.body + "]");
  };
}

std::string status_line(const std::string& resp) { return resp.substr(0, resp.find("\r\n")); }

}  // namespace

TEST_CASE("GET gets a response with Content-Length, and keep-alive serves a second request", "[http]") {
  Loop loop;
  HttpServer server(loop, HttpConfig::testing(), test_handler(loop));
  std::string first, second;
  with_server(loop, server, [&](uint16_t port) {
    RawClient c(port);
    c.send("GET /a HTTP/1.1\r\nHost: x\r\n\r\n");
    first = c.read_until("[]");
    c.send("POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello");
    second = c.read_until("[hello]");
  });
  CHECK(status_line(first) == "HTTP/1.1 200 OK");
  CHECK(first.find("Content-Length: 9\r\n") != std::string::npos);
  CHECK(first.find("GET /a []") != std::string::npos);
  CHECK(second.find("POST /b [hello]") != std::string::npos);
  CHECK(server.stats().connections_accepted == 1);
}

TEST_CASE("pipelined requests are answered in order", "[http]") {
  Loop loop;
  HttpServer server(loop, HttpConfig::testing(), test_handler(loop));
  std::string got;
  with_server(loop, server, [&](uint16_t port) {
    RawClient c(port);
    c.send("GET /1 HTTP/1.1\r\nHost: x\r\n\r\nGET /slow HTTP/1.1\r\nHost: x\r\n\r\nGET /3 HTTP/1.1\r\nHost: x\r\n\r\n");
    got = c.read_until("HTTP/1.1 200", 3);
    got += c.read_until("GET /3 []");
  });
  auto a = got.find("GET /1 []"), b = got.find("slow done"), c = got.find("GET /3 []");
  REQUIRE(a != std::string::npos);
  REQUIRE(b != std::string::npos);
  REQUIRE(c != std::string::npos);
  CHECK(a < b);
  CHECK(b < c);
}

TEST_CASE("a chunked request body is de-chunked and a streamed response is chunked", "[http]") {
  Loop loop;
  HttpServer server(loop, HttpConfig::testing(), test_handler(loop));
  std::string echoed, streamed;
  with_server(loop, server, [&](uint16_t port) {
    RawClient c(port);
    c.send("POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n4\r\ndefg\r\n0\r\n\r\n");
    echoed = c.read_until("]");
    c.send("GET /stream HTTP/1.1\r\nHost: x\r\n\r\n");
    streamed = c.read_until("0\r\n\r\n");
  });
  CHECK(echoed.find("POST /c [abcdefg]") != std::string::npos);
  CHECK(streamed.find("Transfer-Encoding: chunked\r\n") != std::string::npos);
  CHECK(streamed.find("Content-Length") == std::string::npos);
  CHECK(streamed.find("6\r\npart0;\r\n6\r\npart1;\r\n6\r\npart2;\r\n0\r\n\r\n") != std::string::npos);
}

TEST_CASE("HEAD gets the GET headers and no body", "[http]") {
  Loop loop;
  HttpServer server(loop, HttpConfig::testing(), test_handler(loop));
  std::string head, after;
  with_server(loop, server, [&](uint16_t port) {
    RawClient c(port);
    c.send("HEAD /h HTTP/1.1\r\nHost: x\r\n\r\nGET /next HTTP/1.1\r\nHost: x\r\n\r\n");
    head = c.read_until("GET /next []");
  });
  // The first response is head only: the next bytes on the wire are the second response.
  auto second = head.find("HTTP/1.1 200", 1);
  REQUIRE(second != std::string::npos);
  std::string first = head.substr(0, second);
  CHECK(first.find("Content-Length: 10\r\n") != std::string::npos);  // length of "HEAD /h []"
  CHECK(first.substr(first.size() - 4) == "\r\n\r\n");
  CHECK(first.find("HEAD /h") == std::string::npos);
}

TEST_CASE("limits answer with clear statuses and close only the offending connection", "[http]") {
  Loop loop;
  HttpServer server(loop, HttpConfig::testing(), test_handler(loop));
  std::string long_url, big_headers, many_headers, big_body, big_chunked, garbage, bystander;
  bool closed_after_error = false;
  with_server(loop, server, [&](uint16_t port) {
    RawClient ok(port);  // a well-behaved neighbour, open throughout
    { RawClient c(port); c.send("GET /" + std::string(2000, 'a') + " HTTP/1.1\r\nHost: x\r\n\r\n"); long_url = c.read_until("\r\n"); }
    { RawClient c(port); c.send("GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(5000, 'b') + "\r\n\r\n"); big_headers = c.read_until("\r\n"); }
    {
      RawClient c(port);
      std::string req = "GET / HTTP/1.1\r\nHost: x\r\n";
      for (int i = 0; i < 40; ++i) req += "X-H" + std::to_string(i) + ": v\r\n";
      c.send(req + "\r\n");
      many_headers = c.read_until("\r\n");
    }
    { RawClient c(port); c.send("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n"); big_body = c.read_until("\r\n"); closed_after_error = c.read_to_close(); }
    {
      RawClient c(port);
      c.send("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n");
      std::string chunk = "8000\r\n" + std::string(0x8000, 'z') + "\r\n";
      for (int i = 0; i < 3; ++i) { std::error_code ec; asio::write(c.socket(), asio::buffer(chunk), ec); }
      big_chunked = c.read_until("\r\n");
    }
    { RawClient c(port); c.send("BLAH\x01 / HTTP/1.1\r\n\r\n"); garbage = c.read_until("\r\n"); }
    ok.send("GET /still-here HTTP/1.1\r\nHost: x\r\n\r\n");
    bystander = ok.read_until("]");
  });
  CHECK(status_line(long_url) == "HTTP/1.1 414 URI Too Long");
  CHECK(status_line(big_headers) == "HTTP/1.1 431 Request Header Fields Too Large");
  CHECK(status_line(many_headers) == "HTTP/1.1 431 Request Header Fields Too Large");
  CHECK(status_line(big_body) == "HTTP/1.1 413 Content Too Large");
  CHECK(closed_after_error);
  CHECK(status_line(big_chunked) == "HTTP/1.1 413 Content Too Large");
  CHECK(status_line(garbage) == "HTTP/1.1 400 Bad Request");
  CHECK(bystander.find("GET /still-here []") != std::string::npos);
  CHECK(server.stats().bad_requests == 6);
}

TEST_CASE("a client trickling headers is cut off at the header timeout", "[http]") {
  Loop loop;
  auto cfg = HttpConfig::testing();  // header_timeout 300 ms, idle_timeout 1 s
  HttpServer server(loop, cfg, test_handler(loop));
  std::string got;
  bool closed = false;
  int sent = 0;
  with_server(loop, server, [&](uint16_t port) {
    RawClient c(port, 20000);
    c.send("GET / HTTP/1.1\r\n");
    // One header byte every 50 ms, each well inside the idle timeout, until the server answers
    // or 400 bytes (20 s) have gone: without the header deadline it never would.
    for (; sent < 400; ++sent) {
      pollfd p{c.socket().native_handle(), POLLIN, 0};
      if (::poll(&p, 1, 50) > 0) break;  // the server answered or closed
      if (!c.send("X")) break;
    }
    closed = c.read_to_close(&got);
  });
  CHECK(status_line(got) == "HTTP/1.1 408 Request Timeout");
  CHECK(closed);
  CHECK(server.stats().timeouts == 1);
  // Cut off long before the trickle ran out. A count, not a time: a slow machine sends fewer.
  CHECK(sent < 200);
}

TEST_CASE("an idle keep-alive connection is closed after the idle timeout", "[http]") {
  Loop loop;
  HttpServer server(loop, HttpConfig::testing(), test_handler(loop));  // idle 1 s
  bool closed = false;
  std::chrono::milliseconds took{};
  with_server(loop, server, [&](uint16_t port) {
    RawClient c(port, 20000);  // a generous wait: only the server's timeout should end it
    c.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    c.read_until("[]");
    auto start = std::chrono::steady_clock::now();
    closed = c.read_to_close();
    took = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start);
  });
  CHECK(closed);
  CHECK(took >= std::chrono::milliseconds(900));  // not before the timeout
  CHECK(server.stats().timeouts == 1);
}

TEST_CASE("a throwing handler yields 500 and the connection keeps working", "[http]") {
  Loop loop;
  HttpServer server(loop, HttpConfig::testing(), test_handler(loop));
  std::string got;
  with_server(loop, server, [&](uint16_t port) {
    RawClient c(port);
    c.send("GET /throw HTTP/1.1\r\nHost: x\r\n\r\nGET /after HTTP/1.1\r\nHost: x\r\n\r\n");
    got = c.read_until("GET /after []");
  });
  CHECK(status_line(got) == "HTTP/1.1 500 Internal Server Error");
  CHECK(got.find("GET /after []") != std::string::npos);
  CHECK(server.stats().handler_errors == 1);
}

TEST_CASE("HTTP/1.0 closes after the response unless keep-alive is asked for", "[http]") {
  Loop loop;
  HttpServer server(loop, HttpConfig::testing(), test_handler(loop));
  std::string plain, kept;
  bool plain_closed = false;
  with_server(loop, server, [&](uint16_t port) {
    { RawClient c(port); c.send("GET /x HTTP/1.0\r\n\r\n"); plain_closed = c.read_to_close(&plain); }
    RawClient k(port);
    k.send("GET /y HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    kept = k.read_until("[]");
    k.send("GET /z HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    kept += k.read_until("[]");
  });
  CHECK(plain_closed);
  CHECK(plain.find("Connection: close") != std::string::npos);
  CHECK(kept.find("GET /y []") != std::string::npos);
  CHECK(kept.find("GET /z []") != std::string::npos);
}

TEST_CASE("graceful shutdown finishes in-flight requests, then stops accepting", "[http]") {
  Loop loop;
  HttpServer server(loop, HttpConfig::testing(), test_handler(loop));
  std::string inflight;
  bool idle_closed = false, drained = false, refused = false, in_handler = false;
  server.listen({asio::ip::make_address("127.0.0.1"), 0});
  uint16_t port = server.local_endpoint().port();
  std::thread t([&] {
    RawClient idle(port);
    RawClient busy(port);
    busy.send("GET /slow HTTP/1.1\r\nHost: x\r\n\r\n");
    // Shut down only once the slow request is in the handler.
    in_handler = dog::test::eventually(loop, [&] { return server.stats().requests == 1; });
    loop.post([&] { server.shutdown(std::chrono::seconds(2), [&] { drained = true; loop.stop(); }); });
    busy.read_to_close(&inflight);
    idle_closed = idle.read_to_close();
    try {
      RawClient late(port, 500);
      late.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
      refused = late.read_some().empty();
    } catch (const std::exception&) {
      refused = true;
    }
  });
  asio::steady_timer guard(loop.io(), std::chrono::seconds(10));
  guard.async_wait([&](std::error_code ec) { if (!ec) loop.stop(); });
  loop.run();
  t.join();
  CHECK(in_handler);
  CHECK(drained);
  CHECK(inflight.find("slow done") != std::string::npos);
  CHECK(inflight.find("Connection: close") != std::string::npos);
  CHECK(idle_closed);
  CHECK(refused);
}

TEST_CASE("parse_endpoint accepts HOST:PORT and explains bad input", "[http]") {
  auto ep = dog::node::parse_endpoint("127.0.0.1:8080");
  CHECK(ep.port() == 8080);
  CHECK(ep.address().to_string() == "127.0.0.1");
  CHECK(dog::node::parse_endpoint("[::1]:9").address().is_v6());
  CHECK(dog::node::parse_endpoint("localhost:1").address().to_string() == "127.0.0.1");
  CHECK_THROWS_WITH(dog::node::parse_endpoint("127.0.0.1"), Catch::Contains("HOST:PORT"));
  CHECK_THROWS_WITH(dog::node::parse_endpoint("1.2.3.4:99999"), Catch::Contains("out of range"));
  CHECK_THROWS_WITH(dog::node::parse_endpoint("1.2.3.4:8x"), Catch::Contains("bad port"));
  CHECK_THROWS_WITH(dog::node::parse_endpoint("nohost:80"), Catch::Contains("bad host"));
}

TEST_CASE("two loops on two threads share one port and each serves its own connections", "[http][loops]") {
  // N loops, one per core: each owns its server and connections; the kernel spreads accepts.
  auto cfg = HttpConfig::testing();
  cfg.reuse_port = true;
  uint16_t port = 0;
  std::atomic<int> ready{0};
  std::atomic<bool> stop{false};
  std::array<uint64_t, 2> served{};
  auto serve = [&](int idx) {
    Loop loop;
    HttpServer server(loop, cfg, [idx](Request&) -> asio::awaitable<Response> {
      co_return Response::text(200, "loop " + std::to_string(idx));
    });
    // The first loop picks the port; the second binds the same one.
    while (idx == 1 && ready.load() == 0) std::this_thread::yield();
    server.listen({asio::ip::make_address("127.0.0.1"), idx == 0 ? uint16_t(0) : port});
    if (idx == 0) port = server.local_endpoint().port();
    ready++;
    asio::steady_timer poll(loop.io());
    std::function<void()> check = [&] {
      if (stop) return loop.stop();
      poll.expires_after(std::chrono::milliseconds(5));
      poll.async_wait([&](std::error_code) { check(); });
    };
    check();
    loop.run();
    served[idx] = server.stats().requests;
  };
  std::thread a(serve, 0), b(serve, 1);
  for (int i = 0; i < 20000 && ready.load() < 2; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  std::set<std::string> answered_by;
  for (int i = 0; i < 64 && answered_by.size() < 2; ++i) {
    RawClient c(port);
    c.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    std::string r = c.read_until("loop ");
    r += c.read_some();
    auto at = r.find("loop ");
    if (at != std::string::npos) answered_by.insert(r.substr(at, 6));
  }
  stop = true;
  a.join();
  b.join();
  CHECK(answered_by == std::set<std::string>{"loop 0", "loop 1"});
  CHECK(served[0] + served[1] >= 2);
}
