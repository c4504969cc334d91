// The WebSocket send path of issue 13: one shared frame buffer per fan-out, one sendmsg per
// socket per loop turn, no read buffer held by an idle socket.
#include <catch2/catch.hpp>

#include <algorithm>
#include <thread>

#include "dog/websocket.h"
#include "http_fixture.h"

using dog::http::Request;
using dog::http::Response;
using dog::http::WebSocket;
using dog::node::HttpConfig;
using dog::node::HttpServer;
using dog::node::Loop;
using dog::test::eventually;
using dog::test::Frame;
using dog::test::with_server;
using dog::test::WsClient;
namespace ws = dog::http::ws;

namespace {

// Keeps every socket. "bcast" sends one shared frame to all of them; "burst:N" sends N owned and
// N shared small frames to the sender; "big:N" sends N shared 16 KiB frames to the sender.
struct Room : dog::http::WebSocketHandler {
  std::vector<std::shared_ptr<WebSocket>> sockets;
  dog::http::SharedFrames last;
  long refs_after_queueing = 0;
  uint64_t calls_before = 0;
  const HttpServer* server = nullptr;
  void on_open(const std::shared_ptr<WebSocket>& s) override { sockets.push_back(s); }
  void on_message(const std::shared_ptr<WebSocket>& s, std::string_view d, bool) override {
    calls_before = server->stats().ws_write_calls;
    if (d == "bcast") {
      last = dog::http::make_frames("hello all");
      for (auto& r : sockets) r->send_shared(last);
      refs_after_queueing = last.use_count();
    } else if (d.rfind("burst:", 0) == 0) {
      int n = std::stoi(std::string(d.substr(6)));
      for (int i = 0; i < n; ++i) {
        s->send("own " + std::to_string(i));
        s->send_shared(dog::http::make_frames("shared " + std::to_string(i)));
      }
    } else if (d.rfind("big:", 0) == 0) {
      int n = std::stoi(std::string(d.substr(4)));
      for (int i = 0; i < n; ++i) s->send_shared(dog::http::make_frames(std::string(16 << 10, char('a' + i % 26)), false));
    }
  }
  void on_close(const std::shared_ptr<WebSocket>& s, uint16_t, std::string_view) override { std::erase(sockets, s); }
};

struct Fixture {
  Loop loop;
  std::shared_ptr<Room> room = std::make_shared<Room>();
  HttpServer server;
  explicit Fixture(HttpConfig cfg = HttpConfig::testing())
      : server(loop, cfg, [r = room](Request&) -> asio::awaitable<Response> { co_return Response::accept_websocket(r); }) {
    room->server = &server;
  }
};

}  // namespace

TEST_CASE("a broadcast queues one shared frame buffer on every recipient, no copies", "[ws][fanout]") {
  Fixture f;
  std::vector<std::string> got;
  bool released = false;
  with_server(f.loop, f.server, [&](uint16_t port) {
    std::vector<std::unique_ptr<WsClient>> clients;
    for (int i = 0; i < 5; ++i) clients.push_back(std::make_unique<WsClient>(port));
    REQUIRE(eventually(f.loop, [&] { return f.room->sockets.size() == 5; }));
    clients[0]->send(ws::Opcode::kText, "bcast");
    for (auto& c : clients) got.push_back(c->next().payload);
    // Once written, every queue has let go of the buffer.
    released = eventually(f.loop, [&] { return f.room->last.use_count() == 1; });
  });
  CHECK(f.room->refs_after_queueing == 6);  // ours + one per recipient's queue: the same buffer
  CHECK(got == std::vector<std::string>(5, "hello all"));
  CHECK(released);
}

TEST_CASE("frames queued in one turn leave in one sendmsg, owned and shared alike", "[ws][fanout]") {
  Fixture f;
  std::vector<std::string> got;
  uint64_t calls = 0;
  with_server(f.loop, f.server, [&](uint16_t port) {
    WsClient c(port);
    c.send(ws::Opcode::kText, "burst:30");
    for (int i = 0; i < 60; ++i) got.push_back(c.next().payload);
    REQUIRE(eventually(f.loop, [&] {
      calls = f.server.stats().ws_write_calls - f.room->calls_before;
      return calls >= 1;
    }));
  });
  CHECK(calls == 1);
  REQUIRE(got.size() == 60);
  for (int i = 0; i < 30; ++i) {
    CHECK(got[2 * i] == "own " + std::to_string(i));
    CHECK(got[2 * i + 1] == "shared " + std::to_string(i));
  }
}

TEST_CASE("after a partial write the rest leaves in few calls, in order and intact", "[ws][fanout]") {
  auto cfg = HttpConfig::testing();
  cfg.max_ws_send_queue_bytes = 32 << 20;
  Fixture f(cfg);
  bool intact = true;
  size_t frames = 0;
  uint64_t calls = 0;
  with_server(f.loop, f.server, [&](uint16_t port) {
    WsClient c(port);
    int window = 64 << 10;  // small enough to fill, large enough not to stall on delayed ACKs
    ::setsockopt(c.raw().socket().native_handle(), SOL_SOCKET, SO_RCVBUF, &window, sizeof window);
    c.send(ws::Opcode::kText, "big:1024");  // 16 MiB: far more than the socket buffers hold
    for (int i = 0; i < 1024; ++i) {
      Frame fr = c.next();
      if (fr.payload != std::string(16 << 10, char('a' + i % 26))) intact = false;
      else ++frames;
    }
    REQUIRE(eventually(f.loop, [&] { return f.server.stats().ws_write_calls > f.room->calls_before; }));
    std::promise<uint64_t> p;
    f.loop.post([&] { p.set_value(f.server.stats().ws_write_calls - f.room->calls_before); });
    calls = p.get_future().get();
  });
  CHECK(intact);
  CHECK(frames == 1024);
  // Each call after a partial write carries everything still queued: far fewer calls than
  // frames (one call per frame is what a per-frame write would cost).
  INFO("sendmsg calls: " << calls);
  CHECK(calls < 512);
}

TEST_CASE("idle WebSockets hold no read buffer of their own", "[ws][fanout]") {
  Fixture f;
  size_t held = 0;
  with_server(f.loop, f.server, [&](uint16_t port) {
    std::vector<std::unique_ptr<WsClient>> clients;
    for (int i = 0; i < 50; ++i) clients.push_back(std::make_unique<WsClient>(port));
    REQUIRE(eventually(f.loop, [&] { return f.room->sockets.size() == 50; }));
    for (auto& c : clients) c->send(ws::Opcode::kText, "x");  // each has read once
    REQUIRE(eventually(f.loop, [&] {
      held = f.server.buffer_bytes();
      return true;
    }));
  });
  INFO("bytes held by 50 idle sockets: " << held);
  CHECK(held / 50 < 1024);
}

TEST_CASE("idle HTTP keep-alive connections hold no read buffer either", "[http][fanout]") {
  Loop loop;
  HttpServer server(loop, HttpConfig::testing(), [](Request& req) -> asio::awaitable<Response> {
    co_return Response::text(200, "ok " + std::string(req.path()));
  });
  size_t held = 0, open = 0;
  std::string pipelined;
  with_server(loop, server, [&](uint16_t port) {
    std::vector<std::unique_ptr<dog::test::RawClient>> clients;
    for (int i = 0; i < 20; ++i) {
      clients.push_back(std::make_unique<dog::test::RawClient>(port));
      clients.back()->send("GET /a HTTP/1.1\r\nHost: x\r\n\r\n");
      clients.back()->read_until("ok /a");
    }
    // Pipelined requests still work: the unparsed rest survives the handler's await.
    clients[0]->send("GET /1 HTTP/1.1\r\nHost: x\r\n\r\nGET /2 HTTP/1.1\r\nHost: x\r\n\r\nGET /3 HTTP/1.1\r\nHost: x\r\n\r\n");
    pipelined = clients[0]->read_until("ok /3");
    REQUIRE(eventually(loop, [&] {
      held = server.buffer_bytes();
      open = server.stats().connections_open;
      return true;
    }));
  });
  INFO("bytes held by " << open << " idle connections: " << held);
  CHECK(open == 20);
  CHECK(held / 20 < 1024);
  CHECK(pipelined.find("ok /1") < pipelined.find("ok /2"));
  CHECK(pipelined.find("ok /2") < pipelined.find("ok /3"));
}

// The overload policy as a handler (the runtime's lives in node/runtime/fanout_pressure): the
// first socket publishes, the others receive. When a receiver's queue passes 128 KiB the
// publisher's socket stops being read; once every receiver has drained (on_drain) or is gone
// (on_close, e.g. closed with 1013), it is read again. Nothing is dropped by the handler.
struct Relay : dog::http::WebSocketHandler {
  std::shared_ptr<WebSocket> publisher;
  std::vector<std::shared_ptr<WebSocket>> receivers;
  bool paused = false;
  int pauses = 0, resumes = 0;
  size_t max_queued = 0;
  size_t kHigh = 128 << 10;
  std::vector<int> close_codes;  // receivers'
  void on_open(const std::shared_ptr<WebSocket>& s) override {
    if (!publisher) publisher = s;
    else receivers.push_back(s);
  }
  void on_message(const std::shared_ptr<WebSocket>& s, std::string_view d, bool) override {
    if (s != publisher) return;
    auto frames = dog::http::make_frames(d);
    bool behind = false;
    for (auto& r : std::vector(receivers)) {  // a send may close a receiver
      r->send_shared(frames);
      max_queued = std::max(max_queued, r->buffered_bytes());
      behind = behind || r->buffered_bytes() > kHigh;
    }
    if (behind && !paused) {
      paused = true;
      ++pauses;
      publisher->pause_reading();
    }
  }
  void on_close(const std::shared_ptr<WebSocket>& s, uint16_t code, std::string_view) override {
    if (s == publisher) publisher.reset();  // sockets hold the handler: no cycle left behind
    else close_codes.push_back(code);
    std::erase(receivers, s);
    release_if_caught_up();
  }
  void on_drain(const std::shared_ptr<WebSocket>&) override { release_if_caught_up(); }
  void release_if_caught_up() {
    for (auto& r : receivers)
      if (r->buffered_bytes() > kHigh) return;
    if (paused && publisher) {
      paused = false;
      ++resumes;
      publisher->resume_reading();
    }
  }
};

// Sends `n` numbered 16 KiB messages from `pub` (on a thread of its own: the server pauses it).
std::thread publish(WsClient& pub, int n) {
  timeval limit{10, 0};  // a broken server must fail the test, not hang the writer
  ::setsockopt(pub.raw().socket().native_handle(), SOL_SOCKET, SO_SNDTIMEO, &limit, sizeof limit);
  return std::thread([&pub, n] {
    for (int i = 0; i < n; ++i) {
      std::string m(16 << 10, 'a' + i % 26);
      m.replace(0, 6, std::to_string(100000 + i));
      pub.send(ws::Opcode::kText, m);
    }
  });
}

TEST_CASE("overload: a publisher is paused while a receiver is behind and released on drain", "[ws][fanout]") {
  // The fan-out policy lives in the handler (as in the runtime): when a recipient's queue passes
  // 128 KiB the publisher's socket stops being read; on_drain releases it. Nothing is dropped.
  Loop loop;
  auto relay = std::make_shared<Relay>();
  auto cfg = HttpConfig::testing();
  cfg.max_ws_send_queue_bytes = 64 << 20;  // the cap is not what bounds memory here
  HttpServer server(loop, cfg, [relay](Request&) -> asio::awaitable<Response> { co_return Response::accept_websocket(relay); });
  const int kMessages = 512;  // 8 MiB through one slow receiver
  int received = 0;
  bool in_order = true;
  with_server(loop, server, [&](uint16_t port) {
    WsClient pub(port);
    REQUIRE(eventually(loop, [&] { return relay->publisher != nullptr; }));
    WsClient slow(port);
    int window = 64 << 10;
    ::setsockopt(slow.raw().socket().native_handle(), SOL_SOCKET, SO_RCVBUF, &window, sizeof window);
    REQUIRE(eventually(loop, [&] { return relay->receivers.size() == 1; }));
    // The publisher writes everything at once; the receiver reads only after the server paused
    // the publisher.
    std::thread writer = publish(pub, kMessages);
    bool was_paused = eventually(loop, [&] { return relay->pauses > 0; });
    for (int i = 0; i < kMessages; ++i) {
      Frame f = slow.next();
      if (f.op != ws::Opcode::kText) break;
      if (f.payload.substr(0, 6) != std::to_string(100000 + i)) in_order = false;
      ++received;
    }
    writer.join();
    CHECK(was_paused);
  });
  CHECK(received == kMessages);
  CHECK(in_order);
  CHECK(relay->pauses >= 1);
  CHECK(relay->resumes >= 1);
  // Without the pause the whole 8 MiB would pile up in the receiver's queue.
  INFO("largest queue: " << relay->max_queued);
  CHECK(relay->max_queued < (2 << 20));
}

TEST_CASE("overload: a receiver that stays behind is closed with 1013, the others get everything", "[ws][fanout]") {
  // The publisher is paused for the stuck receiver; after ws_slow_timeout that receiver is closed
  // with 1013 (counted), its close releases the publisher, and the reading receiver gets all.
  Loop loop;
  auto relay = std::make_shared<Relay>();
  auto cfg = HttpConfig::testing();
  cfg.max_ws_send_queue_bytes = 64 << 20;  // the slow-receiver deadline acts here, not the cap
  cfg.ws_slow_timeout = std::chrono::milliseconds(300);
  cfg.ws_close_timeout = std::chrono::seconds(20);  // the close frame waits for the stuck reader
  HttpServer server(loop, cfg, [relay](Request&) -> asio::awaitable<Response> { co_return Response::accept_websocket(relay); });
  const int kMessages = 256;  // 4 MiB
  int received = 0;
  bool in_order = true;
  Frame stuck_end;
  int stuck_frames = 0;
  with_server(loop, server, [&](uint16_t port) {
    WsClient pub(port);
    REQUIRE(eventually(loop, [&] { return relay->publisher != nullptr; }));
    WsClient stuck(port);
    int window = 64 << 10;  // small, so the server's queue backs up (not much smaller: the final
                            // read of everything in flight would crawl)
    ::setsockopt(stuck.raw().socket().native_handle(), SOL_SOCKET, SO_RCVBUF, &window, sizeof window);
    REQUIRE(eventually(loop, [&] { return relay->receivers.size() == 1; }));
    WsClient fast(port);
    REQUIRE(eventually(loop, [&] { return relay->receivers.size() == 2; }));
    std::thread writer = publish(pub, kMessages);
    for (int i = 0; i < kMessages; ++i) {
      Frame f = fast.next();
      if (f.op != ws::Opcode::kText) break;
      if (f.payload.substr(0, 6) != std::to_string(100000 + i)) in_order = false;
      ++received;
    }
    writer.join();
    // The stuck receiver, reading at last, finds a close frame after what was already in flight.
    for (int i = 0; i < 100000; ++i, ++stuck_frames) {
      stuck_end = stuck.next();
      if (stuck_end.op == ws::Opcode::kClose || stuck_end.end != Frame::End::kNone) break;
    }
    stuck.send(ws::Opcode::kClose, std::string("\x03\xf5", 2));  // completes the handshake
    CHECK(eventually(loop, [&] { return !relay->close_codes.empty(); }));
  });
  CHECK(received == kMessages);
  CHECK(in_order);
  CHECK(relay->pauses >= 1);
  CHECK(relay->resumes >= 1);
  INFO("stuck receiver: " << stuck_frames << " frames, then end " << int(stuck_end.end));
  CHECK(stuck_end.op == ws::Opcode::kClose);
  CHECK(stuck_end.close_code == 1013);
  CHECK(server.stats().ws_overflow_drops == 1);
  REQUIRE_FALSE(relay->close_codes.empty());
  CHECK(relay->close_codes[0] == 1013);  // the stuck one, first (the others go at teardown)
  CHECK(std::count(relay->close_codes.begin(), relay->close_codes.end(), 1013) == 1);
}
