// WebSockets through the front door, spoken to over raw sockets.
#include <catch2/catch.hpp>

#include <set>

#include "dog/websocket.h"
#include "http_fixture.h"

using dog::http::Request;
using dog::http::Response;
using dog::http::WebSocket;
using dog::node::HttpConfig;
using dog::node::HttpServer;
using dog::node::Loop;
using dog::test::Frame;
using dog::test::RawClient;
using dog::test::with_server;
using dog::test::WsClient;
namespace ws = dog::http::ws;

namespace {

// Echoes every message; "flood:N" makes the server send N 1 KiB messages back at once.
struct Echo : dog::http::WebSocketHandler {
  int opened = 0;
  std::vector<int> close_codes;
  std::vector<bool> close_errors;  // ended_by_error() as on_close saw it
  size_t max_buffered = 0;
  int sends = 0;
  void on_open(const std::shared_ptr<WebSocket>&) override { ++opened; }
  void on_message(const std::shared_ptr<WebSocket>& s, std::string_view data, bool text) override {
    if (data.rfind("flood:", 0) == 0) {
      int n = std::stoi(std::string(data.substr(6)));
      std::string kib(1024, 'f');
      for (int i = 0; i < n; ++i) {
        bool queued = s->send(kib);
        // Sampled after every send, the refused one too: a send past the cap must not queue.
        max_buffered = std::max(max_buffered, s->buffered_bytes());
        ++sends;
        if (!queued) break;
      }
      return;
    }
    if (data == "throw") throw std::runtime_error("hook bug");
    if (data == "close-me") return s->close(4000, "as you wish");
    s->send(data, text);
  }
  void on_close(const std::shared_ptr<WebSocket>& s, uint16_t code, std::string_view) override {
    close_codes.push_back(code);
    close_errors.push_back(s->ended_by_error());
  }
};

dog::http::Handler ws_handler(std::shared_ptr<Echo> echo) {
  return [echo](Request& req) -> asio::awaitable<Response> {
    if (req.path() == "/ws") co_return Response::accept_websocket(echo);
    co_return Response::text(200, "plain");
  };
}

}  // namespace

TEST_CASE("the upgrade answers 101 with the RFC 6455 accept key, and messages echo", "[ws]") {
  Loop loop;
  auto echo = std::make_shared<Echo>();
  HttpServer server(loop, HttpConfig::testing(), ws_handler(echo));
  std::string response;
  std::vector<Frame> got;
  with_server(loop, server, [&](uint16_t port) {
    WsClient c(port);
    response = c.response;
    c.send(ws::Opcode::kText, "hello");
    c.send(ws::Opcode::kBinary, std::string("\x00\x01\x02", 3));
    c.send(ws::Opcode::kText, "frag", false);
    c.send(ws::Opcode::kContinuation, "ment", true);
    c.send(ws::Opcode::kPing, "are you there");
    for (int i = 0; i < 4; ++i) got.push_back(c.next());
  });
  CHECK(response.rfind("HTTP/1.1 101 Switching Protocols\r\n", 0) == 0);
  // The sample key and accept value from RFC 6455 §1.3.
  CHECK(response.find("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n") != std::string::npos);
  REQUIRE(got.size() == 4);
  CHECK((got[0].op == ws::Opcode::kText && got[0].payload == "hello"));
  CHECK((got[1].op == ws::Opcode::kBinary && got[1].payload == std::string("\x00\x01\x02", 3)));
  CHECK((got[2].op == ws::Opcode::kText && got[2].payload == "fragment"));
  CHECK((got[3].op == ws::Opcode::kPong && got[3].payload == "are you there"));
  CHECK(echo->opened == 1);
}

TEST_CASE("bad handshakes get 400 or 426 and never reach the handler", "[ws]") {
  Loop loop;
  auto echo = std::make_shared<Echo>();
  HttpServer server(loop, HttpConfig::testing(), ws_handler(echo));
  std::string no_key, bad_key, old_version, post, plain_get;
  auto upgrade = [](std::string method, std::string extra) {
    return method + " /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" + extra + "\r\n";
  };
  with_server(loop, server, [&](uint16_t port) {
    { RawClient c(port); c.send(upgrade("GET", "Sec-WebSocket-Version: 13\r\n")); no_key = c.read_until("\r\n\r\n"); }
    { RawClient c(port); c.send(upgrade("GET", "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: c2hvcnQ=\r\n")); bad_key = c.read_until("\r\n\r\n"); }
    { RawClient c(port); c.send(upgrade("GET", "Sec-WebSocket-Version: 8\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n")); old_version = c.read_until("\r\n\r\n"); }
    { RawClient c(port); c.send(upgrade("POST", "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nContent-Length: 0\r\n")); post = c.read_until("\r\n\r\n"); }
    { RawClient c(port); c.send("GET /ws HTTP/1.1\r\nHost: x\r\n\r\n"); plain_get = c.read_until("\r\n\r\n"); }
  });
  CHECK(no_key.rfind("HTTP/1.1 400", 0) == 0);
  CHECK(bad_key.rfind("HTTP/1.1 400", 0) == 0);
  CHECK(old_version.rfind("HTTP/1.1 426", 0) == 0);
  CHECK(old_version.find("Sec-WebSocket-Version: 13\r\n") != std::string::npos);
  CHECK(post.rfind("HTTP/1.1 400", 0) == 0);
  CHECK(plain_get.rfind("HTTP/1.1 426", 0) == 0);  // the route wants a WebSocket
  CHECK(echo->opened == 0);
}

TEST_CASE("protocol errors close with 1002, 1007 or 1009 and leave other sockets alone", "[ws]") {
  Loop loop;
  auto echo = std::make_shared<Echo>();
  HttpServer server(loop, HttpConfig::testing(), ws_handler(echo));  // 64 KiB message cap
  struct Outcome { Frame frame; bool closed = false; };
  std::vector<Outcome> outcomes;
  Frame bystander;
  with_server(loop, server, [&](uint16_t port) {
    WsClient ok(port);
    auto run = [&](const std::function<void(WsClient&)>& misbehave) {
      WsClient c(port);
      misbehave(c);
      Outcome o;
      o.frame = c.next();
      o.closed = c.closed_by_server();
      outcomes.push_back(o);
    };
    run([](WsClient& c) { std::string f; ws::encode_frame(f, ws::Opcode::kText, "unmasked"); c.send_raw(f); });
    run([](WsClient& c) { c.send(ws::Opcode::kPing, "x", /*fin=*/false); });
    run([](WsClient& c) { c.send(ws::Opcode::kText, "bad \xc0\xaf utf8"); });
    run([](WsClient& c) { c.send(ws::Opcode::kBinary, std::string(65 << 10, 'b')); });
    ok.send(ws::Opcode::kText, "still fine");
    bystander = ok.next();
  });
  REQUIRE(outcomes.size() == 4);
  int expected[] = {1002, 1002, 1007, 1009};
  for (size_t i = 0; i < 4; ++i) {
    INFO("case " << i);
    CHECK(outcomes[i].frame.op == ws::Opcode::kClose);
    CHECK(outcomes[i].frame.close_code == expected[i]);
    CHECK(outcomes[i].closed);
  }
  CHECK(bystander.payload == "still fine");
  CHECK(server.stats().ws_protocol_errors == 4);
  // The handler is told these connections ended by an error, not by the client's close frame.
  REQUIRE(echo->close_errors.size() >= 4);
  for (size_t i = 0; i < 4; ++i) CHECK(echo->close_errors[i]);
}

TEST_CASE("the close handshake echoes the code and the server closes TCP", "[ws]") {
  Loop loop;
  auto echo = std::make_shared<Echo>();
  HttpServer server(loop, HttpConfig::testing(), ws_handler(echo));
  Frame reply, server_initiated, after;
  bool closed = false;
  with_server(loop, server, [&](uint16_t port) {
    {
      WsClient c(port);
      c.send(ws::Opcode::kClose, ws::close_payload(1000, "done"));
      reply = c.next();
      closed = c.closed_by_server();
    }
    WsClient c(port);
    c.send(ws::Opcode::kText, "close-me");
    server_initiated = c.next();
    c.send(ws::Opcode::kText, "ignored while closing");
    c.send(ws::Opcode::kClose, ws::close_payload(4000, ""));
    after = c.next();  // nothing more than EOF after the server's close
  });
  CHECK(reply.op == ws::Opcode::kClose);
  CHECK(reply.close_code == 1000);
  CHECK(closed);
  CHECK(server_initiated.op == ws::Opcode::kClose);
  CHECK(server_initiated.close_code == 4000);
  CHECK(server_initiated.payload == "as you wish");
  CHECK(after.eof());  // the server closed TCP: no echo of the ignored message (not a timeout)
  REQUIRE(echo->close_codes.size() == 2);
  CHECK(echo->close_codes[0] == 1000);
  CHECK(echo->close_codes[1] == 4000);
  CHECK(echo->close_errors == std::vector<bool>{false, false});  // both ended with a close frame
}

TEST_CASE("a client's close frame with an error code is still a clean end, a vanished client is not", "[ws]") {
  Loop loop;
  auto echo = std::make_shared<Echo>();
  HttpServer server(loop, HttpConfig::testing(), ws_handler(echo));
  with_server(loop, server, [&](uint16_t port) {
    {
      WsClient c(port);
      c.send(ws::Opcode::kClose, ws::close_payload(1011, "client trouble"));
      c.next();
    }
    { WsClient gone(port); }  // TCP closed without a close frame
    CHECK(dog::test::eventually(loop, [&] { return echo->close_codes.size() == 2; }));
  });
  REQUIRE(echo->close_codes.size() == 2);
  CHECK(echo->close_codes[0] == 1011);
  CHECK_FALSE(echo->close_errors[0]);
  CHECK(echo->close_codes[1] == 1006);
  CHECK(echo->close_errors[1]);
}

TEST_CASE("a peer that never reads is closed with 1013 at the send-queue cap, memory stays bounded", "[ws]") {
  Loop loop;
  auto echo = std::make_shared<Echo>();
  auto cfg = HttpConfig::testing();  // 256 KiB send queue
  HttpServer server(loop, cfg, ws_handler(echo));
  bool dropped = false;
  std::string drained;
  with_server(loop, server, [&](uint16_t port) {
    WsClient c(port);
    // Shrink our receive buffer so the kernel cannot absorb the flood for us.
    int small = 4096;
    ::setsockopt(c.raw().socket().native_handle(), SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    c.send(ws::Opcode::kText, "flood:20000");  // 20 MiB, never read
    dropped = c.raw().read_to_close(&drained);
  });
  CHECK(dropped);
  CHECK(server.stats().ws_overflow_drops == 1);
  CHECK(echo->max_buffered <= cfg.max_ws_send_queue_bytes);
  CHECK(echo->sends > 1);      // some sends were queued...
  CHECK(echo->sends < 20000);  // ...and one was refused, sampled above
  REQUIRE(echo->close_codes.size() == 1);
  CHECK(echo->close_codes[0] == 1013);
  // What the kernel had not started on was dropped, and a close frame 1013 ended the stream.
  const std::string close_frame = std::string("\x88\x13\x03\xf5") + "receiver too slow";
  CHECK(drained.size() < cfg.max_ws_send_queue_bytes + (1 << 20));
  CHECK(drained.size() >= close_frame.size());
  CHECK(drained.substr(drained.size() - std::min(drained.size(), close_frame.size())) == close_frame);
}

TEST_CASE("a hook whose send overflows the cap survives its own socket's teardown", "[ws][lifetime]") {
  // The session is the handler's only owner; an overflowing send() inside on_open/on_message
  // closes the session, which drops its handler. The hook must still be able to touch its own
  // members afterwards (ASan reports a heap-use-after-free if the session let go mid-call).
  struct Record {
    int after_open = 0, after_message = 0;
    std::vector<int> close_codes;
  };
  struct Overflower : dog::http::WebSocketHandler {
    std::shared_ptr<Record> rec;
    bool in_open;
    std::string note = "still mine";
    Overflower(std::shared_ptr<Record> r, bool open) : rec(std::move(r)), in_open(open) {}
    void flood(const std::shared_ptr<WebSocket>& s) {
      std::string kib64(64 << 10, 'o');
      for (int i = 0; i < 1000 && s->send(kib64); ++i) {}
    }
    void on_open(const std::shared_ptr<WebSocket>& s) override {
      if (!in_open) return;
      flood(s);
      note += "!";  // touches this handler after the overflow
      rec->after_open++;
    }
    void on_message(const std::shared_ptr<WebSocket>& s, std::string_view, bool) override {
      flood(s);
      note += "!";
      rec->after_message++;
    }
    void on_close(const std::shared_ptr<WebSocket>&, uint16_t code, std::string_view) override {
      rec->close_codes.push_back(code);
    }
  };
  Loop loop;
  auto rec = std::make_shared<Record>();
  HttpServer server(loop, HttpConfig::testing(), [rec](Request& req) -> asio::awaitable<Response> {
    co_return Response::accept_websocket(std::make_shared<Overflower>(rec, req.path() == "/open"));
  });
  bool open_dropped = false, message_dropped = false;
  with_server(loop, server, [&](uint16_t port) {
    {
      WsClient c(port, "/open");
      open_dropped = c.upgraded() && c.closed_by_server();
    }
    WsClient c(port, "/message");
    c.send(ws::Opcode::kText, "go");
    message_dropped = c.upgraded() && c.closed_by_server();
  });
  CHECK(open_dropped);
  CHECK(message_dropped);
  CHECK(rec->after_open == 1);
  CHECK(rec->after_message == 1);
  CHECK(rec->close_codes == std::vector<int>{1013, 1013});
  CHECK(server.stats().ws_overflow_drops == 2);
}

TEST_CASE("a throwing message hook closes that socket with 1011, not the node", "[ws]") {
  Loop loop;
  auto echo = std::make_shared<Echo>();
  HttpServer server(loop, HttpConfig::testing(), ws_handler(echo));
  Frame f, other;
  with_server(loop, server, [&](uint16_t port) {
    WsClient ok(port);
    WsClient c(port);
    c.send(ws::Opcode::kText, "throw");
    f = c.next();
    ok.send(ws::Opcode::kText, "alive");
    other = ok.next();
  });
  CHECK(f.op == ws::Opcode::kClose);
  CHECK(f.close_code == 1011);
  CHECK(other.payload == "alive");
}

TEST_CASE("server shutdown says 1001 going away to open sockets", "[ws]") {
  Loop loop;
  auto echo = std::make_shared<Echo>();
  HttpServer server(loop, HttpConfig::testing(), ws_handler(echo));
  server.listen({asio::ip::make_address("127.0.0.1"), 0});
  uint16_t port = server.local_endpoint().port();
  Frame f;
  bool drained = false;
  std::thread t([&] {
    WsClient c(port);
    c.send(ws::Opcode::kText, "hi");
    c.next();
    loop.post([&] { server.shutdown(std::chrono::seconds(2), [&] { drained = true; loop.stop(); }); });
    f = c.next();
    c.send(ws::Opcode::kClose, ws::close_payload(1001, ""));
    c.closed_by_server();
  });
  asio::steady_timer guard(loop.io(), std::chrono::seconds(10));
  guard.async_wait([&](std::error_code ec) { if (!ec) loop.stop(); });
  loop.run();
  t.join();
  CHECK(f.op == ws::Opcode::kClose);
  CHECK(f.close_code == 1001);
  CHECK(drained);
}

TEST_CASE("a handler that keeps its WebSocket does not leak the connection after close", "[ws]") {
  // Regression: session -> handler -> socket -> session was a cycle, so shutdown never drained.
  struct Keeper : dog::http::WebSocketHandler {
    std::vector<std::shared_ptr<WebSocket>> kept;
    void on_open(const std::shared_ptr<WebSocket>& s) override { kept.push_back(s); }
    void on_message(const std::shared_ptr<WebSocket>& s, std::string_view d, bool t) override { s->send(d, t); }
  };
  Loop loop;
  // One handler per connection, holding its socket: the shape the DOG runtime uses.
  HttpServer server(loop, HttpConfig::testing(), [](Request&) -> asio::awaitable<Response> {
    co_return Response::accept_websocket(std::make_shared<Keeper>());
  });
  with_server(loop, server, [&](uint16_t port) {
    WsClient c(port);
    c.send(ws::Opcode::kClose, ws::close_payload(1000, ""));
    c.next();
    c.closed_by_server();
  });
  for (int i = 0; i < 10; ++i) {  // let the aborted read complete and release the session
    loop.io().restart();
    loop.io().poll();
  }
  CHECK(server.stats().ws_open == 0);
}

TEST_CASE("pause_reading stops delivery until resume_reading, and nothing is lost", "[ws][flow]") {
  struct Pauser : dog::http::WebSocketHandler {
    Loop* loop = nullptr;
    std::vector<std::string> got;
    std::unique_ptr<asio::steady_timer> t;
    size_t seen_while_paused = 0;
    bool paused = false;
    void on_message(const std::shared_ptr<WebSocket>& s, std::string_view d, bool) override {
      got.emplace_back(d);
      if (paused) ++seen_while_paused;
      if (got.size() == 1) {
        s->pause_reading();
        paused = true;
        s->send("paused");  // tells the client m0 was handled alone
        t = std::make_unique<asio::steady_timer>(loop->io(), std::chrono::milliseconds(150));
        t->async_wait([this, s](std::error_code) {
          paused = false;
          s->resume_reading();
        });
      }
      if (got.size() == 6) s->send("all six");
    }
  };
  Loop loop;
  auto h = std::make_shared<Pauser>();
  h->loop = &loop;
  HttpServer server(loop, HttpConfig::testing(), [h](Request&) -> asio::awaitable<Response> {
    co_return Response::accept_websocket(h);
  });
  Frame done, paused_ack;
  with_server(loop, server, [&](uint16_t port) {
    WsClient c(port);
    c.send(ws::Opcode::kText, "m0");
    paused_ack = c.next();  // the server paused after m0: the rest stay in the socket buffer
    for (int i = 1; i < 6; ++i) c.send(ws::Opcode::kText, "m" + std::to_string(i));
    done = c.next();
  });
  CHECK(paused_ack.payload == "paused");
  CHECK(h->seen_while_paused == 0);
  CHECK(done.payload == "all six");
  CHECK(h->got == std::vector<std::string>{"m0", "m1", "m2", "m3", "m4", "m5"});
}

TEST_CASE("a paused WebSocket that its handler holds only weakly stays open until resumed", "[ws][flow]") {
  // Regression: with no read, write or timer pending, nothing owned a paused session, so it was
  // freed and its connection cut without a close frame. The runtime's relay of a client socket
  // to a Replica on another node holds its WebSocket weakly and pauses it under load.
  struct WeakPauser : dog::http::WebSocketHandler {
    Loop* loop = nullptr;
    std::weak_ptr<WebSocket> ws;
    std::vector<std::string> got;
    std::unique_ptr<asio::steady_timer> t;
    bool gone_while_paused = false;
    void on_open(const std::shared_ptr<WebSocket>& s) override { ws = s; }
    void on_message(const std::shared_ptr<WebSocket>& s, std::string_view d, bool) override {
      got.emplace_back(d);
      if (got.size() == 1) {
        s->pause_reading();
        s->send("paused");
        t = std::make_unique<asio::steady_timer>(loop->io(), std::chrono::milliseconds(150));
        t->async_wait([this](std::error_code) {
          if (auto w = ws.lock()) w->resume_reading();
          else gone_while_paused = true;
        });
      }
      if (got.size() == 3) s->send("all three");
    }
  };
  Loop loop;
  auto h = std::make_shared<WeakPauser>();
  h->loop = &loop;
  HttpServer server(loop, HttpConfig::testing(), [h](Request&) -> asio::awaitable<Response> {
    co_return Response::accept_websocket(h);
  });
  Frame done, paused_ack;
  with_server(loop, server, [&](uint16_t port) {
    WsClient c(port);
    c.send(ws::Opcode::kText, "m0");
    paused_ack = c.next();
    c.send(ws::Opcode::kText, "m1");
    c.send(ws::Opcode::kText, "m2");
    done = c.next();
  });
  CHECK(paused_ack.payload == "paused");
  CHECK_FALSE(h->gone_while_paused);
  CHECK(done.payload == "all three");
  CHECK(h->got == std::vector<std::string>{"m0", "m1", "m2"});
}

TEST_CASE("keepalive pings a silent peer and drops one that never answers", "[ws][keepalive]") {
  Loop loop;
  auto echo = std::make_shared<Echo>();
  auto cfg = HttpConfig::testing();
  cfg.ws_ping_interval = std::chrono::milliseconds(100);
  HttpServer server(loop, cfg, ws_handler(echo));
  Frame first;
  bool dropped = false;
  with_server(loop, server, [&](uint16_t port) {
    WsClient mute(port);
    first = mute.next();                // a ping arrives after one silent interval or two
    dropped = mute.closed_by_server();  // and, unanswered, the connection is dropped
  });
  CHECK(first.op == ws::Opcode::kPing);
  CHECK(dropped);
  CHECK(server.stats().timeouts == 1);
  REQUIRE(echo->close_codes.size() == 1);
  CHECK(echo->close_codes[0] == 1006);
}

TEST_CASE("keepalive leaves a chatty peer alone over many intervals", "[ws][keepalive]") {
  Loop loop;
  auto echo = std::make_shared<Echo>();
  auto cfg = HttpConfig::testing();
  cfg.ws_ping_interval = std::chrono::milliseconds(300);
  HttpServer server(loop, cfg, ws_handler(echo));
  int echoed = 0, rounds = 0;
  bool lost = false;
  with_server(loop, server, [&](uint16_t port) {
    WsClient answerer(port);
    // Round trips back to back for at least four intervals (a lower bound: a slow machine only
    // makes it longer); any inbound bytes count as life. Pings, if any, are answered.
    auto until = std::chrono::steady_clock::now() + 4 * cfg.ws_ping_interval;
    while (!lost && (std::chrono::steady_clock::now() < until || rounds < 10) && rounds < 1'000'000) {
      ++rounds;
      answerer.send(ws::Opcode::kText, "beat");
      for (int i = 0; i < 10; ++i) {
        Frame f = answerer.next();
        if (f.op == ws::Opcode::kPing) answerer.send(ws::Opcode::kPong, f.payload);
        if (f.op == ws::Opcode::kText) {
          echoed++;
          break;
        }
        if (f.op == ws::Opcode::kContinuation || f.op == ws::Opcode::kClose) {
          lost = true;
          break;
        }
      }
    }
  });
  CHECK_FALSE(lost);
  CHECK(echoed == rounds);  // every beat echoed
  CHECK(server.stats().timeouts == 0);
}

TEST_CASE("frames sent in the same packet as the upgrade request are delivered", "[ws]") {
  // The bytes behind the request head are read into the loop's shared buffer; they must survive
  // the handler's await (kept privately) and reach the new session.
  Loop loop;
  auto echo = std::make_shared<Echo>();
  HttpServer server(loop, HttpConfig::testing(), ws_handler(echo));
  std::string head;
  std::vector<std::string> got;
  with_server(loop, server, [&](uint16_t port) {
    RawClient c(port);
    std::string bytes = "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
    for (int i = 0; i < 3; ++i)
      ws::encode_frame(bytes, ws::Opcode::kText, "early " + std::to_string(i), true, ws::Role::kClient, 0x1234567);
    c.send(bytes);
    std::string all = c.read_until("early 2");
    head = all.substr(0, all.find("\r\n\r\n") + 4);
    struct Sink : ws::FrameSink {
      std::vector<std::string>* out;
      void on_message(std::string_view p, bool) override { out->emplace_back(p); }
      void on_ping(std::string_view) override {}
      void on_pong(std::string_view) override {}
      void on_close(uint16_t, std::string_view) override {}
      void on_protocol_error(uint16_t, std::string_view) override {}
    } sink;
    sink.out = &got;
    ws::Decoder d(ws::Role::kClient, 1 << 20);
    d.feed(std::string_view(all).substr(head.size()), sink);
  });
  CHECK(head.rfind("HTTP/1.1 101", 0) == 0);
  CHECK(got == std::vector<std::string>{"early 0", "early 1", "early 2"});
}

TEST_CASE("max_connections counts an upgraded socket once: that many WebSockets open, one more is refused", "[ws]") {
  Loop loop;
  auto echo = std::make_shared<Echo>();
  HttpConfig config = HttpConfig::testing();
  config.max_connections = 3;
  // Counted at each on_open, while the upgrading connection object still exists: the socket
  // must count once, as its session.
  std::vector<size_t> counted_at_open;
  HttpServer* srv = nullptr;
  struct Counting : Echo {
    std::function<void()> hook;
    void on_open(const std::shared_ptr<WebSocket>& s) override {
      hook();
      Echo::on_open(s);
    }
  };
  auto counting = std::make_shared<Counting>();
  counting->hook = [&] { counted_at_open.push_back(srv->open_count()); };
  echo = counting;
  HttpServer server(loop, config, ws_handler(echo));
  srv = &server;
  std::vector<std::string> echoed;
  bool fourth_refused = false;
  with_server(loop, server, [&](uint16_t port) {
    std::vector<std::unique_ptr<WsClient>> open;
    for (int i = 0; i < 3; ++i) {
      open.push_back(std::make_unique<WsClient>(port));
      open.back()->send(ws::Opcode::kText, "n" + std::to_string(i));
      echoed.push_back(open.back()->next().payload);
    }
    RawClient extra(port);
    extra.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    std::string answer;
    fourth_refused = extra.read_to_close(&answer) && answer.empty();  // accepted and closed at once
  });
  CHECK(echoed == std::vector<std::string>{"n0", "n1", "n2"});
  CHECK(counted_at_open == std::vector<size_t>{1, 2, 3});
  CHECK(fourth_refused);
  CHECK(server.stats().connections_rejected == 1);
}

TEST_CASE("an upgrade accepted after shutdown began still hears 1001 going away", "[ws]") {
  Loop loop;
  auto echo = std::make_shared<Echo>();
  HttpServer* srv = nullptr;
  bool drained = false;
  // The handler starts the drain while this upgrade is in flight, then accepts it.
  HttpServer server(loop, HttpConfig::testing(), [&](Request&) -> asio::awaitable<Response> {
    srv->shutdown(std::chrono::seconds(5), [&] { drained = true; loop.stop(); });
    co_return Response::accept_websocket(echo);
  });
  srv = &server;
  server.listen({asio::ip::make_address("127.0.0.1"), 0});
  uint16_t port = server.local_endpoint().port();
  Frame f;
  bool upgraded = false;
  std::thread t([&] {
    WsClient c(port);
    upgraded = c.upgraded();
    f = c.next();
    c.send(ws::Opcode::kClose, ws::close_payload(1001, ""));
    c.closed_by_server();
  });
  asio::steady_timer guard(loop.io(), std::chrono::seconds(20));
  guard.async_wait([&](std::error_code ec) { if (!ec) loop.stop(); });
  loop.run();
  t.join();
  CHECK(upgraded);
  CHECK(f.op == ws::Opcode::kClose);
  CHECK(f.close_code == 1001);  // not a cut connection at the drain deadline
  CHECK(drained);
}
